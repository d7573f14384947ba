"""Dense part labels drawn over a crop: which SMPL part each visible pixel shows (left and right distinct)
and whether it is the front or the back of the body (``part_labels`` of the synthetic world)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def part_label_images(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """labels (H, W) uint8 (0 = not the subject, 1 + part + 24 * back) -> (part (H, W) float with NaN
    off the subject, 0..23; back (H, W) float with NaN off the subject, 0 = front / 1 = back)."""
    lab = np.asarray(labels).astype(int)
    on = lab > 0
    part = np.where(on, (lab - 1) % 24, np.nan)
    back = np.where(on, (lab - 1) // 24, np.nan)
    return part, back


def plot_part_labels(
    crops: list[np.ndarray],
    labels: list[np.ndarray],
    path: str | Path | None = None,
    titles: list[str] | None = None,
) -> Any:
    """One row per crop: the crop (H, W, 3) uint8, its part labels (24 SMPL parts; left/right in different
    colours), and front (blue) / back (orange) over a grey copy of the crop; the backbone's 16 x 12 token grid
    is drawn on the label panels (columns 32..224)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from .save import save_matplotlib

    n = len(crops)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3.1 * n), squeeze=False)
    cmap = plt.get_cmap("tab20b", 24)
    fb = ListedColormap(["tab:blue", "tab:orange"])
    for r, (img, lab) in enumerate(zip(crops, labels, strict=True)):
        part, back = part_label_images(lab)
        grey = np.asarray(img, np.float32).mean(-1) / 255.0
        axes[r, 0].imshow(np.asarray(img, np.uint8))
        axes[r, 1].imshow(grey, cmap="gray", vmin=0, vmax=1.6)
        im = axes[r, 1].imshow(part, cmap=cmap, vmin=-0.5, vmax=23.5, interpolation="nearest")
        axes[r, 2].imshow(grey, cmap="gray", vmin=0, vmax=1.6)
        axes[r, 2].imshow(back, cmap=fb, vmin=-0.5, vmax=1.5, interpolation="nearest", alpha=0.85)
        for ax in axes[r, 1:]:
            for x in range(32, 225, 16):
                ax.axvline(x - 0.5, color="w", lw=0.3)
            for y in range(-2, 257, 16):
                ax.axhline(y - 0.5, color="w", lw=0.3)
        axes[r, 0].set_title(titles[r] if titles else "crop", fontsize=9)
        axes[r, 1].set_title("SMPL part (left / right distinct)", fontsize=9)
        axes[r, 2].set_title("front (blue) / back (orange) of the body", fontsize=9)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[r, 1], fraction=0.046, ticks=[0, 6, 12, 18, 23], label="SMPL joint id")
    fig.tight_layout()
    save_matplotlib(fig, path, dpi=100, tight=False)
    return fig
