"""Token-merge heatmaps over the crop (plotly), an ipywidgets explorer, and static copies.

All grids are the ViT's 16×12 token grid; a token (i, j) is drawn over its receptive field in the
256×256 crop (HMR2.0: columns 32:224 are seen, patch conv k16 s16 pad 2 → centre (38+16j, 6+16i)).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from ..io import atomic_path
from ..merging.patch import MaskToMeConfig
from ..merging.trace import MergeTrace, merge_trace
from .save import save_matplotlib, save_plotly_html

PANELS = ("person tokens", "merge groups", "token size", "head query attention")


def _np(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _group_colours(groups: np.ndarray, seed: int = 0) -> np.ndarray:
    """(16,12) group ids -> (16,12) float in [0,1): one random value per group; singletons NaN."""
    ids, counts = np.unique(groups, return_counts=True)
    rng = np.random.default_rng(seed)
    lut = dict(zip(ids.tolist(), rng.random(len(ids)).tolist(), strict=True))
    out = np.vectorize(lut.get)(groups).astype(float)
    singles = set(ids[counts == 1].tolist())
    out[np.isin(groups, list(singles))] = np.nan
    return out


def panel_values(trace: MergeTrace, block: int) -> list[np.ndarray]:
    """The four (16,12) arrays drawn for ``block`` (clamped to the traced depth)."""
    b = min(max(block, 0), len(trace.groups) - 1)
    person = _np(trace.person).astype(float)
    groups = _group_colours(_np(trace.groups[b]))
    size = _np(trace.sizes[b]).astype(float)
    att = _np(trace.head_attention) if trace.head_attention is not None else np.zeros_like(person)
    return [person, groups, size, att]


def crop_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) crop as uint8 for drawing. Floats are read as 0..255 when any value exceeds 1.5, else
    as 0..1 (matplotlib clips a float image to [0, 1], so a 0..255 float crop would draw white)."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    scale = 1.0 if np.nanmax(a, initial=0.0) > 1.5 else 255.0
    return np.clip(np.round(a * scale), 0, 255).astype(np.uint8)


def forced_person_patches(trace: MergeTrace, block: int) -> np.ndarray:
    """(16,12) bool: person patches that share a merged token with another patch after ``block``
    (Mask-ToMe's forced merges when the background cannot cover the budget, paper failure case iii)."""
    b = min(max(block, 0), len(trace.groups) - 1)
    groups = _np(trace.groups[b])
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return _np(trace.person).astype(bool) & (counts[inverse.reshape(groups.shape)] > 1)


# per panel: plotly / matplotlib colour map, colour-bar title, hover text (%{z} = the value drawn)
_SCALES = ("Reds", "Turbo", "Viridis", "Hot")
_CMAPS = ("Reds", "turbo", "viridis", "hot")
_BAR_TITLES = ("person (1 = protected)", "", "patches per token", "attention per patch")
_HOVERS = (
    "token row %{y}, col %{x}<br>person token: %{z}<extra></extra>",
    "token row %{y}, col %{x}<br>merge group %{customdata[0]} (%{customdata[1]} patches)<extra></extra>",
    "token row %{y}, col %{x}<br>token size: %{z} patches<extra></extra>",
    "token row %{y}, col %{x}<br>head query attention per patch: %{z:.4f}<extra></extra>",
)


def _group_customdata(trace: MergeTrace, block: int) -> np.ndarray:
    """(16,12,2): merge group id of each patch and how many patches that group holds."""
    b = min(max(block, 0), len(trace.groups) - 1)
    groups = _np(trace.groups[b])
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return np.stack([groups, counts[inverse.reshape(groups.shape)]], axis=-1)


def trace_figure(image: np.ndarray, trace: MergeTrace, block: int, title: str = "") -> go.Figure:
    """2×2 plotly figure over the crop ``image`` (256,256,3; uint8 or float 0..255): person tokens, merge
    groups after ``block`` (one colour per merged group, unmerged patches clear, forced person merges
    marked ×), token sizes, head attention. Each value panel has a colour bar; hovering names the value.
    Traces per panel: image, heatmap; the merge-group panel adds the forced-merge markers (9 traces)."""
    gh, gw = _np(trace.person).shape
    xs, ys = 38 + 16 * np.arange(gw), 6 + 16 * np.arange(gh)
    fig = make_subplots(rows=2, cols=2, subplot_titles=PANELS, horizontal_spacing=0.1, vertical_spacing=0.08)
    img = crop_uint8(image)
    for k, vals in enumerate(panel_values(trace, block)):
        r, c = k // 2 + 1, k % 2 + 1
        fig.add_trace(go.Image(z=img, hoverinfo="skip"), row=r, col=c)
        bar = dict(
            title=dict(text=_BAR_TITLES[k], side="right"), x=0.45 + 0.55 * (c - 1), y=0.79 - 0.56 * (r - 1),
            len=0.4, thickness=10,
        )  # fmt: skip
        fig.add_trace(
            go.Heatmap(
                z=vals, x=xs, y=ys, colorscale=_SCALES[k], opacity=0.55, showscale=k != 1, colorbar=bar,
                zmin=0.0 if k != 2 else 1.0, zmax=1.0 if k < 2 else None, hovertemplate=_HOVERS[k],
                customdata=_group_customdata(trace, block) if k == 1 else None,
            ),
            row=r, col=c,
        )  # fmt: skip
        if k == 1:
            fi, fj = np.nonzero(forced_person_patches(trace, block))
            fig.add_trace(
                go.Scatter(
                    x=xs[fj], y=ys[fi], mode="markers", marker=dict(symbol="x", size=9, color="black"),
                    name="forced person merge", showlegend=False,
                    hovertemplate="forced person merge<extra></extra>",
                ),
                row=r, col=c,
            )  # fmt: skip
    n = trace.tokens_per_block[min(block, len(trace.tokens_per_block) - 1)]
    forced = int(forced_person_patches(trace, block).sum())
    fig.update_layout(
        title=f"{title} block {block}: {n} tokens, {forced} person patches force-merged (×)",
        height=720,
        width=760,
        margin=dict(l=10, r=10, t=60, b=10),
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig


def save_figure(fig: go.Figure, stem: str | Path) -> list[Path]:
    """Write ``<stem>.html`` (plotly.js in the same folder, offline) and, when kaleido is installed,
    ``<stem>.png``; returns the written paths."""
    stem = Path(stem)
    out = [save_plotly_html(fig, stem.with_suffix(".html"))]
    try:
        with atomic_path(stem.with_suffix(".png")) as tmp:
            fig.write_image(str(tmp), format="png")
        out.append(stem.with_suffix(".png"))
    except (ValueError, ImportError, RuntimeError):
        pass
    return out


def save_trace_png(image: np.ndarray, trace: MergeTrace, blocks: Sequence[int], path: str | Path) -> Path:
    """Static matplotlib copy (no kaleido needed): rows = ``blocks``, columns = the four panels, each
    value panel with its colour bar; forced person merges marked ×. ``image`` as in :func:`trace_figure`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.4 * len(blocks)))
    axes = fig.subplots(len(blocks), 4, squeeze=False)
    img = crop_uint8(image)
    gh, gw = _np(trace.person).shape
    xs, ys = 38 + 16 * np.arange(gw), 6 + 16 * np.arange(gh)
    for row, b in enumerate(blocks):
        for k, vals in enumerate(panel_values(trace, b)):
            ax = axes[row, k]
            ax.imshow(img)
            vmin, vmax = (0.0, 1.0) if k < 2 else (1.0 if k == 2 else 0.0, None)
            im = ax.imshow(
                vals, extent=(30, 222, 254, -2), cmap=_CMAPS[k], alpha=0.55, interpolation="nearest",
                vmin=vmin, vmax=vmax,
            )  # fmt: skip
            if k == 1:
                fi, fj = np.nonzero(forced_person_patches(trace, b))
                ax.scatter(xs[fj], ys[fi], marker="x", s=14, c="black", linewidths=0.8)
            else:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).set_label(_BAR_TITLES[k], fontsize=7)
            ax.set_xlim(0, 256)
            ax.set_ylim(256, 0)
            ax.set_axis_off()
            n = trace.tokens_per_block[min(b, len(trace.tokens_per_block) - 1)]
            ax.set_title(f"{PANELS[k]} (block {b}, {n} tok)", fontsize=8)
    fig.tight_layout()
    return save_matplotlib(fig, path, dpi=80, tight=False)


def _json_safe(z: Any) -> Any:
    """Heatmap ``z`` for a widget comm: NaN (transparent cells) -> None, since Jupyter messages are strict
    JSON (a NaN makes the kernel drop the update with "Out of range float values")."""
    if z is None or np.ndim(z) != 2:  # images (H, W, 3) hold no NaN
        return z
    return [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(z, dtype=float)]


def explorer(
    model: Any,
    crops: Sequence[tuple[Tensor, Tensor, np.ndarray, str]],
    cfg: MaskToMeConfig | None = None,
) -> Any:
    """ipywidgets explorer: image picker, block slider, n_l and M′ sliders, mask on/off, over a live
    plotly ``FigureWidget``. ``crops``: (img (1,3,256,256), mask (1,256,256), image uint8, label)."""
    import ipywidgets as W

    cfg = cfg or MaskToMeConfig()
    depth = len(model.backbone.blocks)
    pick = W.Dropdown(options=[(c[3], i) for i, c in enumerate(crops)], value=0, description="image")
    block = W.IntSlider(value=min(2, depth - 1), min=0, max=depth - 1, description="block")
    n_l = W.IntSlider(value=cfg.per_layer, min=0, max=100, step=10, description="n_l")
    keep = W.IntSlider(value=cfg.min_tokens, min=10, max=192, step=10, description="M′")
    use_mask = W.Checkbox(value=cfg.use_mask, description="person mask")
    cache: dict[tuple, MergeTrace] = {}

    def current() -> MergeTrace:
        key = (pick.value, n_l.value, keep.value, use_mask.value)
        if key not in cache:
            c = crops[pick.value]
            run = MaskToMeConfig(
                layers=cfg.layers, per_layer=n_l.value, min_tokens=keep.value, use_mask=use_mask.value,
                prop_attn=cfg.prop_attn, head_size_bias=cfg.head_size_bias, coverage=cfg.coverage,
            )  # fmt: skip
            cache[key] = merge_trace(model, c[0], c[1], run)
        return cache[key]

    first = trace_figure(crops[0][2], current(), block.value, crops[0][3])
    for t in first.data:
        if t.type != "scatter":
            t.z = _json_safe(t.z)
    fw = go.FigureWidget(first)

    def redraw(_: Any = None) -> None:
        tr = current()
        new = trace_figure(crops[pick.value][2], tr, block.value, crops[pick.value][3])
        with fw.batch_update():
            for old, upd in zip(fw.data, new.data, strict=True):
                if upd.type == "scatter":  # forced-merge markers
                    old.x, old.y = upd.x, upd.y
                    continue
                old.z = _json_safe(upd.z)
                if upd.type == "heatmap" and upd.customdata is not None:
                    old.customdata = np.asarray(upd.customdata).tolist()
            fw.layout.title = new.layout.title

    for w in (pick, block, n_l, keep, use_mask):
        w.observe(redraw, names="value")
    return W.VBox([W.HBox([pick, use_mask]), W.HBox([block, n_l, keep]), fw])
