"""Figures of the diffusion decoder (notebook 04): its training curves and, per test clip, the per-frame
error over time of the per-frame head next to the decoder (jitter vs smoothness vs offset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .save import save_matplotlib


def plot_training_curves(curves: pd.DataFrame, path: str | Path | None = None, window: int = 25) -> Any:
    """``curves``: rows step, loss, stage (one stage per panel, e.g. "VAE", "denoiser"). Draws each loss
    (log scale) with its moving average over ``window`` steps. Returns the matplotlib Figure."""
    from matplotlib.figure import Figure

    stages = list(dict.fromkeys(curves["stage"]))
    fig = Figure(figsize=(4.2 * len(stages), 3.0))
    axes = fig.subplots(1, len(stages), squeeze=False)[0]
    for ax, stage in zip(axes, stages):
        c = curves[curves["stage"] == stage]
        ax.plot(c["step"], c["loss"], lw=0.6, alpha=0.35, color="tab:blue")
        ax.plot(c["step"], c["loss"].rolling(window, min_periods=1).mean(), lw=1.6, color="tab:blue")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"{stage} ({len(c)} steps)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_matplotlib(fig, path, dpi=90, tight=False)
    return fig


def plot_error_over_time(
    per_frame: pd.DataFrame, clips: list[str], metric: str = "mpjpe", path: str | Path | None = None
) -> Any:
    """``per_frame``: rows clip_id, frame, method, ``metric`` (mm), as ``eval.metrics.evaluate_poses``
    returns them. One panel per clip in ``clips``: the metric per frame for every method. Per-frame jitter
    shows as a ragged line, a smooth but offset decoder as a smooth line above or below."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(clips), 3.0))
    axes = fig.subplots(1, len(clips), squeeze=False)[0]
    for ax, cid in zip(axes, clips):
        c = per_frame[per_frame["clip_id"] == cid]
        for method, g in c.groupby("method", sort=False):
            ax.plot(g["frame"], g[metric], lw=1.2, label=f"{method} (mean {np.nanmean(g[metric]):.0f})")
        ax.set_xlabel("frame")
        ax.set_ylabel(f"{metric.upper().replace('_', '-')} (mm)")
        ax.set_title(cid, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_matplotlib(fig, path, dpi=90, tight=False)
    return fig


def plot_accuracy_loss(
    summary: pd.DataFrame,
    per_joint: pd.DataFrame,
    path: str | Path | None = None,
    metrics: tuple[str, ...] = ("mpjpe", "pa_mpjpe", "orient_deg"),
) -> Any:
    """Where the decoder loses accuracy (``eval.decoder_analysis.accuracy_loss_tables``): one bar panel per
    metric (one bar per stage, floor first) and a heatmap of the per-joint MPJPE (mm, stage x joint).
    Returns the matplotlib Figure."""
    from matplotlib.figure import Figure

    stages = list(summary["stage"])
    fig = Figure(figsize=(3.6 * len(metrics) + 6.5, 3.4))
    axes = fig.subplots(1, len(metrics) + 1, gridspec_kw={"width_ratios": [1] * len(metrics) + [2.2]})
    for ax, m in zip(axes, metrics):
        vals = summary[m].to_numpy(float)
        ax.barh(range(len(stages)), vals, color="tab:blue")
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=7)
        ax.set_yticks(range(len(stages)), stages if ax is axes[0] else [""] * len(stages), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(
            "orientation error (deg)" if m == "orient_deg" else f"{m.upper().replace('_', '-')} (mm)"
        )
        ax.grid(alpha=0.3, axis="x")
    grid = per_joint.pivot(index="stage", columns="joint_index", values="mpjpe_mm").reindex(stages)
    names = per_joint.drop_duplicates("joint_index").sort_values("joint_index")["joint"].tolist()
    ax = axes[-1]
    im = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(stages)), [""] * len(stages))
    ax.set_title("per-joint MPJPE (mm)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    save_matplotlib(fig, path, dpi=90, tight=False)
    return fig
