"""Linear CKA between backbone block outputs (the FastHMR Fig. 2 analysis, after SLM's CKA plots).

Linear CKA (Kornblith et al., ICML 2019, Eq. for the linear kernel): with column-centred X (n, p) and
Y (n, q),  CKA(X, Y) = ||Yᵀ X||_F² / (||Xᵀ X||_F · ||Yᵀ Y||_F)  — equivalently with Gram matrices
K = XXᵀ, L = YYᵀ (centred), CKA = <K, L>_F / (||K||_F ||L||_F). It is 1 for identical features and
invariant to orthogonal transforms and isotropic scaling of either side.

Examples (rows) for block outputs (B, N, C): ``mode="tokens"`` — every token of every image is an
example (B·N rows; needs the same N in every block, i.e. no token merging); ``"mean"`` — tokens
averaged per image (B rows); ``"flatten"`` — one row of N·C values per image (B rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

MODES = ("tokens", "mean", "flatten")


def _center(x: Tensor) -> Tensor:
    return x - x.mean(0, keepdim=True)


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of two feature matrices with the same examples: x (n, p), y (n, q) -> float in [0, 1].

    Computed in float64, with whichever of the feature-space / Gram-space forms is cheaper."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"linear_cka needs (n, p) and (n, q) with the same n, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError("linear_cka needs at least 2 examples")
    x, y = _center(x.double()), _center(y.double())
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    if n < max(p, q):
        k, l_ = x @ x.T, y @ y.T
        num = (k * l_).sum()
        den = torch.linalg.norm(k) * torch.linalg.norm(l_)
    else:
        num = torch.linalg.norm(y.T @ x) ** 2
        den = torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)
    if den <= 0:
        raise ValueError("linear_cka: a feature matrix is constant (zero variance)")
    return float(num / den)


def as_examples(feat: Tensor, mode: str = "tokens") -> Tensor:
    """Block output (B, N, C) (or already (n, p)) -> example matrix per ``mode`` (see module doc)."""
    if mode not in MODES:
        raise ValueError(f"unknown CKA mode {mode!r}; expected one of {MODES}")
    if feat.ndim == 2:
        return feat
    if feat.ndim != 3:
        raise ValueError(f"block output must be (B, N, C), got {tuple(feat.shape)}")
    if mode == "tokens":
        return feat.reshape(-1, feat.shape[-1])
    if mode == "mean":
        return feat.mean(1)
    return feat.reshape(feat.shape[0], -1)


def cka_matrix(features: Sequence[Tensor], mode: str = "tokens") -> np.ndarray:
    """Pairwise linear CKA between D feature tensors (each (B, N, C) or (n, p)) -> (D, D) symmetric
    array with ones on the diagonal (up to rounding)."""
    mats = [as_examples(f, mode) for f in features]
    ns = {m.shape[0] for m in mats}
    if len(ns) != 1:
        raise ValueError(
            f"CKA mode {mode!r}: blocks give different numbers of examples {sorted(ns)} "
            "(token merging active? use mode='mean')"
        )
    d = len(mats)
    out = np.eye(d)
    for i in range(d):
        for j in range(i + 1, d):
            out[i, j] = out[j, i] = linear_cka(mats[i], mats[j])
    return out


def _blocks_of(model: nn.Module) -> nn.ModuleList:
    from ..merging.eclm import get_blocks

    return get_blocks(model)


@torch.no_grad()
def block_outputs(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    device: str | torch.device = "cpu",
    max_images: int | None = None,
) -> list[Tensor]:
    """Run ``model`` over ``batches`` and collect each block's output with forward hooks.

    ``batches``: dicts with ``img`` (B,3,256,256) (and optionally ``person_mask``; passed on when the
    model is an HMR) or plain image tensors. For an HMR the full model runs (so token-merging patches
    act as deployed); a bare ViT gets ``forward_tokens(img)`` with images (B,3,256,192) or 256×256
    crops trimmed by 32 px each side. Returns D tensors (n_images, N_d, C) on the CPU (float32)."""
    blocks = _blocks_of(model)
    store: list[list[Tensor]] = [[] for _ in blocks]
    hooks = [
        blk.register_forward_hook(lambda _m, _i, out, k=k: store[k].append(out.detach().float().cpu()))
        for k, blk in enumerate(blocks)
    ]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for b in batches:
            img = b["img"] if isinstance(b, dict) else b
            img = img.to(device)
            if max_images is not None:
                if seen >= max_images:
                    break
                img = img[: max_images - seen]
            mask = b.get("person_mask") if isinstance(b, dict) else None
            if hasattr(model, "backbone"):
                kw = {"person_mask": mask[: img.shape[0]].to(device)} if mask is not None else {}
                model(img, **kw)
            else:
                x = img[:, :, :, 32:-32] if img.shape[-1] == img.shape[-2] else img
                model.forward_tokens(x)
            seen += img.shape[0]
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if seen == 0:
        raise ValueError("block_outputs: no images were given")
    return [torch.cat(s, 0) for s in store]


def block_cka(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    mode: str = "tokens",
    device: str | torch.device = "cpu",
    max_images: int | None = None,
) -> np.ndarray:
    """(D, D) linear-CKA matrix between the outputs of the D backbone blocks of ``model`` on ``batches``
    (see :func:`block_outputs`). Memory: D × n_images × N × C floats are held on the CPU."""
    return cka_matrix(block_outputs(model, batches, device=device, max_images=max_images), mode)
