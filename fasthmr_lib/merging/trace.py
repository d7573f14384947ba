"""Record what Mask-ToMe does inside one forward of an HMR model (for figures and widgets).

:func:`merge_trace` runs one crop through a model patched with a given :class:`MaskToMeConfig`
and returns, on the 16×12 token grid: the person tokens, after every block the merge group of each
patch and its token size, and the SMPL head's query attention over the remaining tokens (last
cross-attention layer, heads averaged, spread evenly over the patches of each merged token).
The model is not modified: the trace runs ``forward_features`` / ``forward_head`` with its own
recording :class:`TokenState`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import patch
from .mask_tome import MaskToMeConfig, token_state
from .state import TokenState


@dataclass
class MergeTrace:
    """Per-crop record of one forward. Grids are (16, 12) tensors (row-major token layout)."""

    person: Tensor  # bool: person tokens (protected when the mask is on)
    groups: list[Tensor]  # per block: long id of the merged token holding each patch
    sizes: list[Tensor]  # per block: float size of that token
    tokens_per_block: list[int]
    forced_person_merges: list[int]
    head_attention: Tensor | None  # float, sums to 1 over the grid


def _cross_attentions(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.head.modules() if type(m).__name__ == "CrossAttention"]


@torch.no_grad()
def merge_trace(model: nn.Module, img: Tensor, mask: Tensor, cfg: MaskToMeConfig) -> MergeTrace:
    """img (1, 3, 256, 256) normalised crop, mask (1, 256, 256) crop-aligned -> :class:`MergeTrace`.

    Runs ``model.forward_features`` / ``forward_head`` with a state built from ``cfg`` that records its
    history; the model's own ``token_merging`` setting is not used or changed."""
    if img.shape[0] != 1 or mask.shape[0] != 1:
        raise ValueError(f"merge_trace takes one crop, got img {tuple(img.shape)}, mask {tuple(mask.shape)}")
    grid = tuple(model.backbone.cfg.grid)
    state = token_state(dataclasses.replace(cfg, trace_source=True), mask, 1, grid[0] * grid[1], img.device)
    state.history = []
    tokens, state = model.forward_features(img, state=state)
    captured = _head_with_captured_attention(model, tokens, state)
    groups = [patch.group_ids(src, grid)[0] for _, src in state.history]
    sizes = [
        patch.restore_grid(size[..., 0], src, grid)[0]
        if size is not None
        else torch.ones(grid, device=img.device)
        for size, src in state.history
    ]
    head_att = None
    if captured:
        att = _query_attention(_cross_attentions(model)[-1], captured)
        per_patch = att / state.size[..., 0] if state.size is not None else att
        head_att = patch.restore_grid(per_patch, state.source, grid)[0]
    return MergeTrace(
        person=patch.person_tokens_grid(mask, cfg.coverage, grid)[0],
        groups=groups,
        sizes=sizes,
        tokens_per_block=list(state.tokens_per_block),
        forced_person_merges=list(state.forced_person_merges),
        head_attention=head_att,
    )


def _head_with_captured_attention(model: nn.Module, tokens: Tensor, state: TokenState) -> dict[str, Tensor]:
    """Run the head on ``tokens``; return the inputs of its last cross-attention ({} when it has none)."""
    captured: dict[str, Tensor] = {}
    xattn = _cross_attentions(model)

    def grab(mod: nn.Module, args: tuple, kwargs: dict) -> None:
        names = ("x", "context", "bias")
        got = dict(zip(names, args, strict=False)) | {k: v for k, v in kwargs.items() if k in names}
        captured.update(x=got["x"], context=got["context"], bias=got.get("bias"))

    hook = xattn[-1].register_forward_pre_hook(grab, with_kwargs=True) if xattn else None
    try:
        model.forward_head(tokens, state)
    finally:
        if hook is not None:
            hook.remove()
    return captured


def _query_attention(mod: nn.Module, captured: dict[str, Tensor]) -> Tensor:
    """The head query's attention over the context tokens (B, M), heads averaged, recomputed from the
    captured inputs of cross-attention ``mod`` (its ``to_q`` / ``to_kv`` / ``scale``)."""
    ctx, x = captured["context"], captured["x"]
    B, M, _ = ctx.shape
    k = mod.to_kv(ctx).chunk(2, dim=-1)[0].reshape(B, M, mod.heads, -1).transpose(1, 2)
    q = mod.to_q(x).reshape(B, x.shape[1], mod.heads, -1).transpose(1, 2)
    logits = (q @ k.transpose(-1, -2)) * mod.scale
    if captured.get("bias") is not None:
        logits = logits + captured["bias"]
    return logits.softmax(-1).mean(1)[:, 0]  # the query token, heads averaged
