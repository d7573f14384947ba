"""Figures of the per-frame evaluation (notebook 01): mesh overlays, error per joint, error against
occlusion, global-orientation error (tables from :mod:`fasthmr_lib.eval.evaluate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..data.augment import normalized_to_hwc255
from ..eval import evaluate as ev
from ..models.hmr import project_crop
from .save import save_matplotlib


@torch.no_grad()
def plot_overlays(
    model: nn.Module,
    dataset: Dataset,
    indices: list[int],
    *,
    titles: list[str] | None = None,
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    use_mask: bool = True,
    ncols: int = 4,
    focal_length: float = 5000.0,
) -> Any:
    """Predicted meshes drawn over their test crops (vertices projected with ``cam_t`` and the crop
    camera, focal ``focal_length`` px at 256 px, HMR2.0 convention; a CameraHMR-convention model's
    full-image ``cam_t`` with its image K; faces painted far-to-near)."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    items = [dataset[i] for i in indices]
    batch = torch.utils.data.default_collate(items)
    b = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in batch.items()}
    model.eval().to(device)
    out = ev.call_model(model, b, use_mask)
    S = int(b["img"].shape[-1])
    camera = ev.crop_camera_of(model, b)  # CameraHMR: full-image cam_t, projected with K into the crop
    if camera is None:
        uv = (project_crop(out["vertices"].float(), out["cam_t"].float(), focal_length, S) + 0.5) * S
    else:
        uv = (camera.project(out["vertices"].float(), out["cam_t"].float())["joints2d"] + 0.5) * S
    depth = (out["vertices"].float() + out["cam_t"].float()[:, None])[..., 2]
    faces = torch.as_tensor(np.asarray(ev.get_smpl(model, None).faces), dtype=torch.long)
    n = len(indices)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(np.clip(normalized_to_hwc255(items[k]["img"]) / 255.0, 0, 1))
        tri = uv[k][faces].cpu().numpy()  # (F, 3, 2)
        order = np.argsort(-depth[k][faces].mean(-1).cpu().numpy())
        ax.add_collection(PolyCollection(tri[order], facecolors=(0.35, 0.6, 1.0, 0.35), edgecolors="none"))
        ax.set_xlim(0, S)
        ax.set_ylim(S, 0)
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    save_matplotlib(fig, path)
    return fig


def plot_per_joint(
    df: pd.DataFrame, path: str | Path | None = None, names: tuple[str, ...] | None = None
) -> Any:
    import matplotlib.pyplot as plt

    t = ev.per_joint_table(df, names)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(t["joint"], t["error_mm"], color="tab:blue")
    ax.set_ylabel("mean error (mm)")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    save_matplotlib(fig, path)
    return fig


def plot_error_vs_occlusion(df: pd.DataFrame, path: str | Path | None = None, bins: int = 6) -> Any:
    """MPJPE per frame against the occluded fraction of the subject (left) and the number of person
    tokens (right), with binned means."""
    import matplotlib.pyplot as plt

    panels = [c for c in ("occlusion", "person_tokens") if c in df.columns]
    if not panels:
        raise ValueError("plot_error_vs_occlusion: df has neither 'occlusion' nor 'person_tokens'")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, col in zip(axes.flat, panels):
        x, y = df[col].to_numpy(float), df["mpjpe"].to_numpy(float)
        ax.scatter(x, y, s=4, alpha=0.3, color="tab:gray")
        if np.ptp(x) > 0:
            edges = np.linspace(x.min(), x.max(), bins + 1)
            which = np.clip(np.digitize(x, edges[1:-1]), 0, bins - 1)
            mids = 0.5 * (edges[1:] + edges[:-1])
            means = [y[which == k].mean() if (which == k).any() else np.nan for k in range(bins)]
            ax.plot(mids, means, "o-", color="tab:red", label="bin mean")
            ax.legend(fontsize=8)
        ax.set_xlabel(
            {"occlusion": "occluded fraction of the subject", "person_tokens": "person tokens (of 192)"}[col]
        )
        ax.set_ylabel("MPJPE (mm)")
    fig.tight_layout()
    save_matplotlib(fig, path)
    return fig


def plot_facing_scatter(frames: dict[str, pd.DataFrame], path: str | Path | None = None) -> Any:
    """Predicted against true facing angle (degrees, 0 = facing the camera, +-180 = from behind), one panel
    per predictor (name -> evaluate() DataFrame with ``facing_deg`` / ``pred_facing_deg``). Points on the
    diagonal are right; the dashed lines are the front/back confusion (a person at phi seen as one at
    +-180 - phi, same side towards the camera), the dotted ones side-on (+-90)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(3.6 * len(frames), 3.6), squeeze=False)
    x = np.linspace(-180, 180, 2)
    for ax, (name, df) in zip(axes[0], frames.items(), strict=True):
        ax.scatter(df["facing_deg"], df["pred_facing_deg"], s=4, alpha=0.5)
        ax.plot(x, x, color="k", lw=1, label="right")
        ax.plot([0, 180], [180, 0], color="tab:red", ls="--", lw=1, label="front/back swapped")
        ax.plot([-180, 0], [0, -180], color="tab:red", ls="--", lw=1)
        for y in (-90, 90):
            ax.axhline(y, color="gray", ls=":", lw=1)
        ticks = np.arange(-180, 181, 90)
        ax.set(xlim=(-180, 180), ylim=(-180, 180), xticks=ticks, yticks=ticks)
        ax.set_xlabel("true facing angle (deg)")
        ax.set_title(name, fontsize=9)
    axes[0, 0].set_ylabel("predicted facing angle (deg)")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_matplotlib(fig, path)
    return fig


def plot_orientation_error(
    frames: dict[str, pd.DataFrame], path: str | Path | None = None, bins: int = 18
) -> Any:
    """Histogram of the global-orientation error (``orient_deg``, 0..180°, 10° bins by default) per
    predictor (name -> evaluate() DataFrame). A model that reads the facing direction piles up near
    0°; one that ignores it spreads like a constant prediction."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    edges = np.linspace(0, 180, bins + 1)
    for name, df in frames.items():
        ax.hist(df["orient_deg"].to_numpy(float), bins=edges, histtype="step", linewidth=1.8, label=name,
                weights=np.full(len(df), 100.0 / max(1, len(df))))  # fmt: skip
    ax.set_xlabel("global-orientation error (deg)")
    ax.set_ylabel("% of frames")
    ax.set_xticks(np.arange(0, 181, 30))
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_matplotlib(fig, path)
    return fig
