"""Figures of ECLM (notebook 02): which consecutive backbone blocks each search merged
(:mod:`fasthmr_lib.merging.eclm`) and the CKA similarity of block outputs (:mod:`fasthmr_lib.eval.cka`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..merging.eclm import Window


def plot_windows(rows: Mapping[str, Sequence[Window]], depth: int, title: str = "ECLM windows") -> Any:
    """Plotly figure: one row per label, the block axis 0..depth-1, each merged window as a bar
    (kept single blocks as light ticks)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = list(rows)
    for y, label in enumerate(labels):
        ws = sorted(tuple(w) for w in rows[label])
        fig.add_trace(
            go.Scatter(
                x=list(range(depth)), y=[label] * depth, mode="markers",
                marker={"color": "lightgrey", "size": 8}, showlegend=False, hoverinfo="x",
            )
        )  # fmt: skip
        for lo, hi in ws:
            fig.add_shape(
                type="rect", x0=lo - 0.4, x1=hi + 0.4, y0=y - 0.3, y1=y + 0.3,
                fillcolor="tomato", opacity=0.6, line={"width": 1},
            )  # fmt: skip
            fig.add_annotation(x=(lo + hi) / 2, y=label, text=f"[{lo},{hi}]", showarrow=False)
    fig.update_layout(
        title=title, xaxis_title="block index (original numbering)", height=120 + 45 * len(labels),
        xaxis={"range": [-0.7, depth - 0.3], "dtick": 1}, yaxis={"type": "category"},
    )  # fmt: skip
    return fig


def cka_heatmap(matrix: np.ndarray, title: str = "Linear CKA between block outputs") -> Any:
    """Plotly heatmap of a (D, D) CKA matrix (block index on both axes; the paper's Fig. 2 layout)."""
    import plotly.graph_objects as go

    d = matrix.shape[0]
    fig = go.Figure(
        go.Heatmap(z=matrix, x=list(range(d)), y=list(range(d)), zmin=0, zmax=1, colorscale="Viridis")
    )
    fig.update_layout(
        title=title, xaxis_title="block", yaxis_title="block", yaxis_autorange="reversed", width=560,
        height=520,
    )  # fmt: skip
    return fig
