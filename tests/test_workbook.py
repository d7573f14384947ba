"""Papermill driver on throwaway notebooks: parameter injection, executed copies, manifest, failures."""

import json

import nbformat
import pytest
import yaml

from fasthmr_lib import workbook as W


def _nb(path, params_src, *cells):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params_src)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def _profile(d, name, data):
    (d / "profiles").mkdir(exist_ok=True)
    (d / "profiles" / f"{name}.yaml").write_text(yaml.safe_dump(data))


@pytest.fixture
def nbdir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    res = tmp_path / "res.txt"
    _nb(d / "00_first.ipynb", "seed = 1\nx = 2\nout = 'none'",
        "from pathlib import Path\nPath(out).write_text(str(x * seed))")  # fmt: skip
    _nb(d / "01_second.ipynb", "seed = 1\nout = 'none'",
        "from pathlib import Path\np = Path(out)\np.write_text(p.read_text() + '+' + str(seed))")  # fmt: skip
    _profile(d, "t", {"common": {"seed": 3, "not_declared_anywhere": 1},
                      "00": {"x": 7, "out": str(res)}, "01_second": {"out": str(res)}})  # fmt: skip
    return d, res


def test_runs_in_order_injects_parameters_and_writes_manifest(nbdir, tmp_path):
    d, res = nbdir
    out = tmp_path / "run"
    man = W.run_workbook("t", notebooks_dir=d, output_dir=out, progress=False)
    assert res.read_text() == "21+3"  # 00 ran with seed=3 (common), x=7; then 01 appended
    assert man["status"] == "ok"
    assert [e["notebook"] for e in man["notebooks"]] == ["00_first.ipynb", "01_second.ipynb"]
    assert man["notebooks"][0]["params"] == {"seed": 3, "x": 7, "out": str(res)}
    assert all(e["wall_s"] > 0 for e in man["notebooks"])
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["seed"] == 3 and "versions" in on_disk and "git" in on_disk
    executed = nbformat.read(str(out / "00_first.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 7" in injected[0].source
    # --only picks by prefix
    res.write_text("")
    man = W.run_workbook("t", only=["01"], notebooks_dir=d, output_dir=out, progress=False)
    assert [e["notebook"] for e in man["notebooks"]] == ["01_second.ipynb"] and res.read_text() == "+3"


def test_failing_cell_is_named_and_manifest_marks_failure(nbdir, tmp_path):
    d, _ = nbdir
    _nb(d / "02_broken.ipynb", "seed = 0", "a = 1", "raise ValueError('boom from cell')")
    out = tmp_path / "run"
    with pytest.raises(W.WorkbookError) as ei:
        W.run_workbook("t", notebooks_dir=d, output_dir=out, progress=False)
    msg = str(ei.value)
    assert "02_broken.ipynb" in msg and "cell" in msg and "ValueError" in msg and "boom from cell" in msg
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "failed"
    assert [e["status"] for e in man["notebooks"]] == ["ok", "ok", "failed"]
    assert man["notebooks"][2]["error"]["ename"] == "ValueError"
    assert (out / "02_broken.ipynb").exists()  # executed copy with papermill's error banner kept


def test_profile_errors_are_clear(nbdir, tmp_path):
    d, _ = nbdir
    _profile(d, "typo", {"00": {"xx": 1}})
    with pytest.raises(W.WorkbookError, match=r"00_first.ipynb sets \['xx'\]"):
        W.run_workbook("typo", notebooks_dir=d, output_dir=tmp_path / "o", progress=False)
    _profile(d, "stray", {"99_missing_nb": {"x": 1}})
    with pytest.raises(W.WorkbookError, match="match no notebook"):
        W.run_workbook("stray", notebooks_dir=d, output_dir=tmp_path / "o", progress=False)
    with pytest.raises(W.WorkbookError, match="not found"):
        W.run_workbook("absent", notebooks_dir=d, output_dir=tmp_path / "o", progress=False)
    with pytest.raises(W.WorkbookError, match="no notebook .*/07_"):
        W.run_workbook("t", only=["07"], notebooks_dir=d, output_dir=tmp_path / "o", progress=False)


def test_repo_profiles_are_valid_yaml_with_common_section():
    from fasthmr_lib import paths

    for name in W.PROFILES:
        prof = W.load_profile(name, paths.notebooks_dir() / "profiles")
        assert prof["common"]["profile"] == name and "seed" in prof["common"]
        assert all(k == "common" or (len(k) == 2 and k.isdigit()) or "_" in k for k in prof)


def test_repo_profiles_only_set_declared_parameters_and_paper_eclm_is_literal():
    """Every section of every shipped profile names parameters its notebook declares (the check the
    workbook runs before any work); under ``paper`` notebook 02 runs Algorithm 1 literally (no pending
    window committed) with the paper's 24-joint EMDB error."""
    from fasthmr_lib import paths

    nbs = W.list_notebooks(paths.notebooks_dir())
    for name in W.PROFILES:
        prof = W.load_profile(name, paths.notebooks_dir() / "profiles")
        params = {nb.name[:2]: W.notebook_parameters(nb, prof, name) for nb in nbs}
        if name == "paper":
            assert params["02"]["commit_pending"] is False and params["02"]["selection_protocol"] == "emdb24"


def test_notebook_kernels_import_this_checkout():
    """A kernel started the way papermill and JupyterLab start one (kernel spec ``python3``) imports
    ``fasthmr_lib`` from the checkout this test runs in, not from another clone's install."""
    from pathlib import Path

    from jupyter_client.manager import start_new_kernel

    from fasthmr_lib.paths import REPO_ROOT

    km, kc = start_new_kernel(kernel_name="python3")
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    try:
        code = "import fasthmr_lib; print(fasthmr_lib.__file__)"
        kc.execute_interactive(code, output_hook=hook, timeout=120)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert Path("".join(out).strip()).resolve().is_relative_to(REPO_ROOT.resolve())


def test_only_the_default_profile_writes_results(monkeypatch, tmp_path):
    """Run by hand (no driver, so no FASTHMR_RESULTS), a notebook of any profile but `default` writes
    under results/runs/<profile>/results/; every notebook takes its folder from that one function."""
    from pathlib import Path

    from fasthmr_lib import paths

    monkeypatch.delenv("FASTHMR_RESULTS", raising=False)
    root = paths.results_dir()
    assert paths.profile_results_dir("default") == root
    assert paths.profile_results_dir("tiny") == root / "runs" / "tiny" / "results"
    monkeypatch.setenv("FASTHMR_RESULTS", str(tmp_path))  # the driver's choice wins
    assert paths.profile_results_dir("tiny") == tmp_path.resolve()
    for nb in sorted(Path(paths.notebooks_dir()).glob("0*.ipynb")):
        src = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        assert "paths.profile_results_dir(profile)" in src and "paths.results_dir()" not in src, nb.name
