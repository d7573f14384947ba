"""ECLM window figure (viz/eclm.py)."""

from __future__ import annotations

from fasthmr_lib.viz.eclm import plot_windows


def test_plot_windows_one_row_per_label_one_bar_per_window():
    fig = plot_windows({"tau=1": [(3, 5), (0, 1)], "tau=0.1": []}, 6, title="t")
    assert [tr.y[0] for tr in fig.data] == ["tau=1", "tau=0.1"] and all(len(tr.x) == 6 for tr in fig.data)
    assert [(s.x0, s.x1) for s in fig.layout.shapes] == [(-0.4, 1.4), (2.6, 5.4)]
    assert [a.text for a in fig.layout.annotations] == ["[0,1]", "[3,5]"]
    assert fig.layout.xaxis.title.text == "block index (original numbering)"
