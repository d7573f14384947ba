"""Speed–accuracy figures of notebook 05 (matplotlib PNG + plotly HTML each): Fig. 1's throughput vs
MPJPE, the paper's beside ours (:func:`plot_fig1`), and the sweep over (τ, n_l, M') with its Pareto front
(:func:`plot_pareto`, front from :func:`fasthmr_lib.eval.tables.pareto_front`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..eval import paper_tables as PT
from ..eval.tables import pareto_front
from .save import save_matplotlib, save_plotly_html


def plot_fig1(
    ours: pd.DataFrame, png_path: str | Path | None = None, html_path: str | Path | None = None
) -> tuple[Any, Any]:
    """Fig. 1 analog: left, the paper's throughput vs EMDB MPJPE (Table 1, RTX 3090); right, ours (measured
    fps on this machine vs MPJPE on the synthetic test split; columns ``model``, ``fps``, ``mpjpe``).
    Returns (matplotlib figure, plotly figure); the PNG comes from matplotlib (no browser needed), the
    HTML from plotly (plotly.js in a ``plotly.min.js`` next to it)."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    paper = PT.fig1_points()
    fast = paper["model"].str.startswith("FastHMR")
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (
        (paper, "emdb_mpjpe", fast, "paper Fig. 1 / Table 1 (EMDB, RTX 3090)", "throughput (fps)",
         "EMDB MPJPE (mm)"),
        (ours, "mpjpe", ours["model"].str.contains("FastHMR|decoder", case=False),
         "ours (synthetic test split, this machine)", "throughput (images/s, measured)", "MPJPE (mm)"),
    )  # fmt: skip
    for a, (d, ycol, hl, title, xl, yl) in zip(ax, panels):
        a.scatter(d["fps"], d[ycol], c=np.where(hl, "crimson", "steelblue"), s=36, zorder=3)
        for _, r in d.iterrows():
            a.annotate(
                str(r["model"]), (r["fps"], r[ycol]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        a.set_xscale("log")
        a.set_xlabel(xl)
        a.set_ylabel(yl)
        a.set_title(title, fontsize=9)
        a.grid(alpha=0.3)
    fig.tight_layout()
    save_matplotlib(fig, png_path)

    pf = make_subplots(
        rows=1, cols=2, subplot_titles=("paper (EMDB, RTX 3090)", "ours (synthetic, this machine)")
    )
    pf.add_trace(go.Scatter(x=paper["fps"], y=paper["emdb_mpjpe"], mode="markers+text", text=paper["model"],
                            textposition="top center", name="paper"), 1, 1)  # fmt: skip
    pf.add_trace(go.Scatter(x=ours["fps"], y=ours["mpjpe"], mode="markers+text", text=ours["model"],
                            textposition="top center", name="ours"), 1, 2)  # fmt: skip
    pf.update_xaxes(type="log", title_text="throughput (fps)")
    pf.update_yaxes(title_text="MPJPE (mm)")
    pf.update_layout(height=450, width=1000, showlegend=False, title="Throughput vs MPJPE (Fig. 1 analog)")
    save_plotly_html(pf, html_path)
    return fig, pf


def plot_pareto(
    df: pd.DataFrame,
    png_path: str | Path | None = None,
    html_path: str | Path | None = None,
    *,
    speed: str = "images_per_s",
    error: str = "mpjpe",
    label: str = "label",
) -> tuple[Any, Any]:
    """Speed–accuracy sweep: every configuration a dot, the Pareto front (:func:`pareto_front`) as a line.
    Returns (matplotlib figure, plotly figure)."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    front = pareto_front(df, speed, error)
    f = df[front].sort_values(speed)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.scatter(df[speed], df[error], s=24, c=np.where(front, "crimson", "gray"), zorder=3)
    ax.plot(f[speed], f[error], "-", color="crimson", lw=1)
    for _, r in f.iterrows():
        ax.annotate(
            str(r[label]), (r[speed], r[error]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlabel(speed.replace("_", " "))
    ax.set_ylabel(f"{error} (mm)")
    ax.set_title("speed-accuracy sweep over (tau, n_l, M'): Pareto front in red", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_matplotlib(fig, png_path)
    pf = go.Figure()
    pf.add_trace(go.Scatter(x=df[speed], y=df[error], mode="markers", text=df[label], name="configs",
                            marker={"color": np.where(front, "crimson", "gray")}))  # fmt: skip
    pf.add_trace(
        go.Scatter(x=f[speed], y=f[error], mode="lines", name="Pareto front", line={"color": "crimson"})
    )
    pf.update_layout(xaxis_title=speed, yaxis_title=f"{error} (mm)", height=420, width=700,
                     title="Speed-accuracy sweep (tau, n_l, M')")  # fmt: skip
    save_plotly_html(pf, html_path)
    return fig, pf
