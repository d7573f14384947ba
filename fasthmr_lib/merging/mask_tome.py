"""Mask-ToMe (FastHMR §3): ToMe merging that protects person tokens, and its merge schedule.

* :func:`person_tokens` pools a crop-aligned person mask onto the ViT token grid with the patch
  conv's geometry (HMR2.0: the backbone sees crop columns 32:224, kernel 16, stride 16, padding 2 →
  16×12 tokens); a token is "person" when the covered fraction of its receptive field ≥ ``coverage``.
* :func:`merge_budget` is the schedule: merge ``per_layer`` tokens in each of the first ``layers``
  blocks but keep at least ``min_tokens`` (paper: l=3, n_l=40, M′=90 → 192→152→112→90).
* :func:`mask_tome_step` is one merge step on (x, metric, TokenState); the mask, sizes and source
  map follow the tokens. Batch handling: r is the same for the whole batch; with
  ``shortfall="force"`` (the paper: fixed M′ so frames batch) crops with too few background tokens
  merge person tokens too and the count is recorded in ``state.forced_person_merges``; with
  ``shortfall="clamp"`` r is clamped to the smallest mergeable count in the batch instead.

Pure tensor code: no model, file or notebook knowledge.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .state import TokenState
from .tokens import bipartite_soft_matching, merge_source, merge_wavg, mergeable_pairs

SHORTFALL = ("force", "clamp")


def person_tokens(
    mask: Tensor,
    coverage: float = 0.5,
    *,
    crop_cols: tuple[int, int] | None = (32, 224),
    patch: int = 16,
    padding: int = 2,
) -> Tensor:
    """Pool a person mask onto the token grid.

    Args:
        mask: (B, H, W) bool/float in [0, 1], aligned with the network input crop (HMR2.0: 256×256).
        coverage: a token is "person" when ≥ this fraction of its k×k receptive field is covered.
        crop_cols: columns the backbone sees (HMR2.0 ``x[:, :, :, 32:-32]``); ``None`` = all.
        patch, padding: the patch conv's kernel/stride and zero padding.

    Returns:
        (B, gh·gw) bool in row-major grid order (HMR2.0: 16×12 = 192), the token order of the ViT.
    """
    if mask.dim() != 3:
        raise ValueError(f"person_tokens: mask must be (B, H, W), got shape {tuple(mask.shape)}")
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"person_tokens: coverage must be in (0, 1], got {coverage}")
    m = mask.float()
    if crop_cols is not None:
        m = m[:, :, crop_cols[0] : crop_cols[1]]
    frac = F.avg_pool2d(m[:, None], patch, patch, padding=padding, count_include_pad=True)[:, 0]
    return (frac >= coverage - 1e-6).flatten(1)


def merge_budget(n_tokens: int, block: int, *, layers: int, per_layer: int, min_tokens: int) -> int:
    """Tokens to merge in ``block`` (0-based) entering with ``n_tokens``: ``per_layer`` in the first
    ``layers`` blocks, never going below ``min_tokens`` (and at most ⌊N/2⌋, ToMe's bound)."""
    if block >= layers:
        return 0
    return max(0, min(per_layer, n_tokens - min_tokens, n_tokens // 2))


def mask_tome_step(x: Tensor, metric: Tensor, state: TokenState, r: int, shortfall: str = "force") -> Tensor:
    """Merge ``r`` tokens of x (B, N, C) using ``metric`` (B, N, Ck); updates ``state`` in place
    (size, protected, source, forced_person_merges). Returns (B, N − r', C), r' ≤ r."""
    if shortfall not in SHORTFALL:
        raise ValueError(f"shortfall must be one of {SHORTFALL}, got {shortfall!r}")
    B, N, _ = x.shape
    if state.protected is not None and state.protected.shape != (B, N):
        raise ValueError(
            f"token state: protected mask {tuple(state.protected.shape)} does not match tokens {(B, N)}"
        )
    if shortfall == "clamp" and state.protected is not None and state.protected.device.type != "meta":
        r = min(r, int(mergeable_pairs(state.protected, N, B).min()))
    if r <= 0:
        state.forced_person_merges.append(0)
        return x
    merge, _, forced = bipartite_soft_matching(metric, r, state.protected, state.prefix_tokens)
    x, state.size = merge_wavg(merge, x, state.size)
    if state.protected is not None:
        state.protected = merge(state.protected[..., None].float(), mode="amax")[..., 0] > 0.5
    if state.source is not None:
        state.source = merge_source(merge, state.source)
    # (meta tensors: MAC counting without memory -- the count is unknown there)
    state.forced_person_merges.append(int(forced.sum()) if forced.device.type != "meta" else -1)
    return x
