"""Facing-direction distributions: which way the people of a world face the camera, and how the training
sampler re-weights them (``TrainConfig.facing_kappa``; ``data.samplers.FacingBatchSampler``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..body.orientation import facing_angle_deg
from ..data.datasets import ClipDataset


def world_facing_angles(root: str | Path, split: str) -> np.ndarray:
    """Facing angle (degrees, 0 = facing the camera, +-180 = from behind) of every frame of a world split
    (reads only the ``global_orient`` labels of ``<root>/<split>/*.npz``). Returns (N,) float."""
    ds = ClipDataset(root, split, keys=("global_orient",))
    go = [torch.from_numpy(np.asarray(ds[i].global_orient, np.float32)) for i in range(len(ds))]
    return facing_angle_deg(torch.cat(go)).numpy()


def plot_facing_histogram(
    angles: Mapping[str, np.ndarray], kappas: tuple[float, ...] = (), path: str | Path | None = None
) -> Any:
    """Normalised histograms (density per degree) of facing angles per named set, and for each
    ``kappa`` the distribution a uniform set takes under the sampler's weight exp(kappa (cos phi - 1))."""
    import matplotlib.pyplot as plt

    from .save import save_matplotlib

    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.linspace(-180, 180, 37)
    for name, a in angles.items():
        ax.hist(a, bins=bins, density=True, histtype="step", lw=1.8, label=f"{name} ({len(a)} frames)")
    phi = np.linspace(-180, 180, 361)
    for k in kappas:
        w = np.exp(k * (np.cos(np.deg2rad(phi)) - 1))
        ax.plot(phi, w / np.trapezoid(w, phi), ls="--", label=f"sampler start, kappa={k:g} (uniform input)")
    ax.axhline(1 / 360, color="grey", lw=0.8, ls=":", label="uniform")
    ax.set_xlabel("facing angle (deg; 0 = facing the camera, ±180 = seen from behind)")
    ax.set_ylabel("density (1/deg)")
    ax.set_xlim(-180, 180)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_matplotlib(fig, path, dpi=110, tight=False)
    return fig
