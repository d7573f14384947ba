"""Mask-ToMe (FastHMR §3): ToMe merging that protects person tokens, and its merge schedule.

* :func:`person_tokens` pools a crop-aligned person mask onto the ViT token grid with the patch
  conv's geometry (HMR2.0: the backbone sees crop columns 32:224, kernel 16, stride 16, padding 2 →
  16×12 tokens); a token is "person" when the covered fraction of its receptive field ≥ ``coverage``.
* :func:`merge_budget` is the schedule: merge ``per_layer`` tokens in each of the first ``layers``
  blocks but keep at least ``min_tokens`` (paper: l=3, n_l=40, M′=90 → 192→152→112→90).
* :class:`MaskToMeConfig` holds every setting (the model's ``token_merging``); :func:`token_state`
  builds the per-forward :class:`TokenState` from it and a person mask;
* :func:`block_step` is what every ViT block calls between attention and MLP (ToMe's placement):
  the block's budget from the schedule, then :func:`mask_tome_step`, one merge step on
  (x, metric, TokenState); the mask, sizes and source map follow the tokens. Batch handling: r is
  the same for the whole batch; with
  ``shortfall="force"`` (the paper: fixed M′ so frames batch) crops with too few background tokens
  merge person tokens too and the count is recorded in ``state.forced_person_merges``; with
  ``shortfall="clamp"`` r is clamped to the smallest mergeable count in the batch instead.

Pure tensor code: no model, file or notebook knowledge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from .state import TokenState
from .tokens import bipartite_soft_matching, initial_source, merge_source, merge_wavg, mergeable_pairs

SHORTFALL = ("force", "clamp")
SCHEDULES = ("paper", "constant")


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


@dataclass(frozen=True)
class MaskToMeConfig:
    """Mask-ToMe settings (paper: l=3, n_l=40, M′=90, mask on).

    layers / per_layer / min_tokens: merge ``per_layer`` tokens in each of the first ``layers`` blocks,
        keeping at least ``min_tokens`` (schedule "paper").
    schedule: "paper" | "constant" (ToMe: ``r`` tokens in every block, no floor but ⌊N/2⌋).
    use_mask: protect person tokens (False = plain ToMe).
    prop_attn: ToMe proportional attention (log-size bias in every later self-attention).
    head_size_bias: the SMPL head's cross-attention also gets the log-size bias.
    coverage: fraction of a token's receptive field the mask must cover to make it a person token.
    shortfall: "force" (paper: person tokens merge when the budget exceeds the background) | "clamp".
    trace_source: keep the (B, N, 192) source map (needed for restore_grid / visualisation).
    """

    layers: int = 3
    per_layer: int = 40
    min_tokens: int = 90
    use_mask: bool = True
    prop_attn: bool = False
    head_size_bias: bool = False
    coverage: float = 0.5
    schedule: str = "paper"
    r: int = 0
    shortfall: str = "force"
    trace_source: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"MaskToMeConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.shortfall not in SHORTFALL:
            raise ValueError(f"MaskToMeConfig.shortfall must be one of {SHORTFALL}, got {self.shortfall!r}")
        for k in ("layers", "per_layer", "min_tokens", "r"):
            if getattr(self, k) < 0:
                raise ValueError(f"MaskToMeConfig.{k} must be >= 0, got {getattr(self, k)}")

    def budget(self, n_tokens: int, block: int) -> int:
        """Tokens merged in ``block`` when ``n_tokens`` enter it."""
        if self.schedule == "constant":
            return min(self.r, n_tokens // 2)
        return merge_budget(
            n_tokens, block, layers=self.layers, per_layer=self.per_layer, min_tokens=self.min_tokens
        )

    def tokens_per_block(self, n_tokens: int, depth: int) -> list[int]:
        """Token count after each block's merge (the MLP's token count), without running a model."""
        out = []
        for i in range(depth):
            n_tokens -= self.budget(n_tokens, i)
            out.append(n_tokens)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def token_state(
    cfg: MaskToMeConfig, person_mask: Tensor | None, batch: int, n_tokens: int, device: Any = None
) -> TokenState:
    """A fresh :class:`TokenState` for one forward with ``cfg`` as its schedule: person tokens from
    ``person_mask`` (B,H,W) when ``cfg.use_mask`` (a clear error when it is missing), sizes 1, optional
    source map (``cfg.trace_source``)."""
    protected = None
    if cfg.use_mask:
        if person_mask is None:
            raise ValueError(
                "Mask-ToMe (use_mask=True) needs person_mask (B, 256, 256) crop-aligned; pass "
                "model(img, person_mask=...) or apply MaskToMeConfig(use_mask=False) for plain ToMe"
            )
        if person_mask.shape[0] != batch:
            raise ValueError(f"person_mask has batch {person_mask.shape[0]}, images have {batch}")
        protected = person_tokens(person_mask.to(device), cfg.coverage)
        if protected.shape[1] != n_tokens:
            raise ValueError(
                f"person_mask {tuple(person_mask.shape)} pools to {protected.shape[1]} tokens, the backbone "
                f"has {n_tokens} (expected a 256x256 crop-aligned mask)"
            )
    source = initial_source(batch, n_tokens, device) if cfg.trace_source else None
    return TokenState(merging=cfg, protected=protected, source=source)


def block_step(x: Tensor, metric: Tensor, state: TokenState) -> Tensor:
    """The step every ViT block runs between attention and MLP (ToMe's placement).

    x (B, N, C) tokens, metric (B, N, Ck) keys averaged over heads. Merges the schedule's budget for
    this block (``state.merging``; nothing when it is ``None``), records the token count leaving the
    step and, when ``state.history`` is a list, the (size, source) after it. Returns (B, N′, C)."""
    cfg = state.merging
    if cfg is not None:
        x = mask_tome_step(x, metric, state, cfg.budget(x.shape[1], state.block), cfg.shortfall)
    state.tokens_per_block.append(x.shape[1])
    if state.history is not None:
        state.history.append((state.size, state.source))
    return x


def person_tokens_grid(mask: Tensor, coverage: float = 0.5, grid: tuple[int, int] = (16, 12)) -> Tensor:
    """(B, 256, 256) crop-aligned mask -> (B, gh, gw) bool person tokens (see :func:`person_tokens`)."""
    return person_tokens(mask, coverage).reshape(mask.shape[0], grid[0], grid[1])
