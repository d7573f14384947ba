"""Record what Mask-ToMe does inside one forward of an HMR model (for figures and widgets).

:func:`merge_trace` runs one crop through a model patched with a given :class:`MaskToMeConfig`
and returns, on the 16×12 token grid: the person tokens, after every block the merge group of each
patch and its token size, and the SMPL head's query attention over the remaining tokens (last
cross-attention layer, heads averaged, spread evenly over the patches of each merged token).
The model is left patched as it was found.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import patch
from .patch import MaskToMeConfig


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
    """img (1, 3, 256, 256) normalised crop, mask (1, 256, 256) crop-aligned -> :class:`MergeTrace`."""
    if img.shape[0] != 1 or mask.shape[0] != 1:
        raise ValueError(f"merge_trace takes one crop, got img {tuple(img.shape)}, mask {tuple(mask.shape)}")
    before = getattr(model, "mask_tome_cfg", None)
    grid = tuple(model.backbone.cfg.grid)
    patch.apply(model, dataclasses.replace(cfg, trace_source=True))
    groups: list[Tensor] = []
    sizes: list[Tensor] = []
    for blk in model.backbone.blocks:
        inner = blk.token_merge

        def recording(x, metric, state, _inner=inner):
            x = _inner(x, metric, state)
            groups.append(patch.group_ids(state.source, grid)[0])
            size = state.size if state.size is not None else torch.ones_like(x[..., :1])
            sizes.append(patch.restore_grid(size[..., 0], state.source, grid)[0])
            return x

        blk.token_merge = recording
    captured: dict[str, Tensor] = {}
    xattn = _cross_attentions(model)
    hook = None
    if xattn:

        def grab(mod, args, kwargs):
            names = ("x", "context", "bias")
            got = dict(zip(names, args, strict=False)) | {k: v for k, v in kwargs.items() if k in names}
            captured.update(x=got["x"], context=got["context"], bias=got.get("bias"))

        hook = xattn[-1].register_forward_pre_hook(grab, with_kwargs=True)
    state_holder: dict[str, object] = {}
    make = model.make_token_state

    def make_and_keep(m, b):
        state_holder["s"] = make(m, b)
        return state_holder["s"]

    model.make_token_state = make_and_keep
    try:
        model(img, person_mask=mask)
    finally:
        if hook is not None:
            hook.remove()
        if before is not None:
            patch.apply(model, before)
        else:
            patch.remove(model)
    state = state_holder["s"]
    head_att = None
    if captured:
        mod = xattn[-1]
        ctx, x = captured["context"], captured["x"]
        B, M, _ = ctx.shape
        k = mod.to_kv(ctx).chunk(2, dim=-1)[0].reshape(B, M, mod.heads, -1).transpose(1, 2)
        q = mod.to_q(x).reshape(B, x.shape[1], mod.heads, -1).transpose(1, 2)
        logits = (q @ k.transpose(-1, -2)) * mod.scale
        if captured.get("bias") is not None:
            logits = logits + captured["bias"]
        att = logits.softmax(-1).mean(1)[:, 0]  # (B, M): the query token, heads averaged
        per_patch = att / state.size[..., 0] if state.size is not None else att
        head_att = patch.restore_grid(per_patch, state.source, grid)[0]
    person = patch.person_tokens_grid(mask, cfg.coverage, grid)[0]
    return MergeTrace(
        person=person,
        groups=groups,
        sizes=sizes,
        tokens_per_block=list(state.tokens_per_block),
        forced_person_merges=list(state.forced_person_merges),
        head_attention=head_att,
    )
