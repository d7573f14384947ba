"""Every notebook of the workbook runs on the tiny profile through the papermill driver."""

import re

import pytest

from fasthmr_lib import paths
from fasthmr_lib.workbook import list_notebooks, run_workbook


@pytest.mark.timeout(900)
def test_every_notebook_runs_on_tiny_profile(tmp_path):
    nb_dir = paths.notebooks_dir()
    all_nbs = sorted(p.name for p in nb_dir.glob("*.ipynb"))
    assert all_nbs, f"no notebooks in {nb_dir}: the workbook must ship notebooks/NN_*.ipynb"
    bad = [n for n in all_nbs if not re.match(r"^\d\d_.+\.ipynb$", n)]
    assert not bad, f"notebooks not named NN_*.ipynb are never run by the driver: {bad}"
    man = run_workbook("tiny", output_dir=tmp_path / "tiny", progress=False, execution_timeout=600)
    assert man["status"] == "ok"
    assert [e["notebook"] for e in man["notebooks"]] == [p.name for p in list_notebooks(nb_dir)]
    for e in man["notebooks"]:
        assert (tmp_path / "tiny" / e["notebook"]).exists()
    # a non-default profile writes its tables under the run folder, never into the workbook's results/
    assert man["results_dir"] == str((tmp_path / "tiny" / "results").resolve())
    assert list((tmp_path / "tiny" / "results" / "tables").glob("*.csv")), "the tiny run wrote no tables"
    # the executed notebooks hold their figures (inline backend), also when the shell says MPLBACKEND=Agg
    import json

    figure_kinds = ("image/png", "application/vnd.plotly.v1+json")  # matplotlib inline, plotly
    expected = {"00": 4, "01": 3, "02": 1, "03": 2, "04": 2, "05": 2}
    for e in man["notebooks"]:
        name = e["notebook"]
        cells = json.loads((tmp_path / "tiny" / name).read_text())["cells"]
        outs = [o.get("data", {}) for c in cells for o in c.get("outputs", [])]
        n = sum(any(k in d for k in figure_kinds) for d in outs)
        at_least = expected[name[:2]]
        assert n >= at_least, f"{name}: {n} figures in the executed notebook, expected >= {at_least}"
