"""Figure writers: the file appears whole (no temporary left), in the format of its suffix."""

import plotly.graph_objects as go
from matplotlib.figure import Figure

from fasthmr_lib.viz.save import save_matplotlib, save_plotly_html


def test_save_matplotlib_png_and_svg(tmp_path):
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    png = save_matplotlib(fig, tmp_path / "a" / "f.png")
    svg = save_matplotlib(fig, tmp_path / "a" / "f.svg", dpi=50, tight=False)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:500]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f.png", "f.svg"]
    assert save_matplotlib(fig, None) is None


def test_save_plotly_html_offline(tmp_path):
    out = save_plotly_html(go.Figure(go.Bar(x=[1, 2], y=[3, 4])), tmp_path / "p.html")
    text = out.read_text()
    assert "plotly.min.js" in text and "cdn.plot.ly" not in text
    assert (tmp_path / "plotly.min.js").exists()
    assert save_plotly_html(go.Figure(), None) is None
