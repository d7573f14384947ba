"""Speed-accuracy figures of notebook 05 (viz/speed_accuracy.py): Fig. 1 analog and the Pareto sweep."""

from __future__ import annotations

import pandas as pd

from fasthmr_lib.viz import speed_accuracy as VS


def test_plots_write_png_and_html(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ours = pd.DataFrame({"model": ["baseline", "FastHMR"], "fps": [5.0, 11.0], "mpjpe": [60.0, 58.0]})
    VS.plot_fig1(ours, tmp_path / "f1.png", tmp_path / "f1.html")
    sweep = pd.DataFrame(
        {"label": ["a", "b", "c"], "images_per_s": [1.0, 2.0, 1.5], "mpjpe": [50.0, 55.0, 60.0]}
    )
    VS.plot_pareto(sweep, tmp_path / "p.png", tmp_path / "p.html")
    for f in ("f1.png", "p.png"):
        assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
    assert "plotly.min.js" in (tmp_path / "f1.html").read_text() and (tmp_path / "plotly.min.js").is_file()
