"""Install / remove Mask-ToMe (or plain ToMe) on a model — the thin adapter around ``mask_tome``.

Supported models:

* our :class:`~fasthmr_lib.models.hmr.HMR`: ``apply`` sets ``model.token_merging`` (one
  :class:`MaskToMeConfig`); each forward then builds one :class:`TokenState` from it and the person
  mask (``HMR.token_state``), every block runs :func:`~fasthmr_lib.merging.mask_tome.block_step`
  between attention and MLP, and the SMPL head cross-attends to the N′ remaining tokens;
* our bare :class:`~fasthmr_lib.models.vit.ViT` (call ``vit.forward_tokens(x, token_state(...))``);
* any timm ``VisionTransformer`` (class / prefix tokens protected like person tokens; no mask): its
  blocks get a forward that calls the same ``block_step`` on a state held by the model.

``MaskToMeConfig(use_mask=False)`` is plain ToMe with the same schedule; ``schedule="constant"``
is ToMe's own recipe (r tokens in every block). ``remove(model)`` restores the unpatched model.
With nothing to merge (``per_layer=0`` / ``r=0``) the patched model is bit-identical to the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from .mask_tome import SCHEDULES, MaskToMeConfig, block_step, person_tokens_grid, token_state
from .state import TokenState
from .tokens import initial_source, restore_tokens


def apply(model: nn.Module, cfg: MaskToMeConfig | None = None) -> nn.Module:
    """Install Mask-ToMe in place (re-applying replaces earlier settings); returns ``model``.

    Works before or after ECLM (the setting lives on the model, not on its blocks)."""
    cfg = cfg or MaskToMeConfig()
    if not isinstance(cfg, MaskToMeConfig):
        raise TypeError(f"Mask-ToMe settings must be a MaskToMeConfig, got {type(cfg).__name__}")
    remove(model)
    if isinstance(model, VisionTransformer):
        return _apply_timm(model, cfg)
    if not hasattr(model, "token_merging"):
        raise TypeError(
            f"Mask-ToMe: {type(model).__name__} has no token_merging setting (expected an HMR model or a "
            "timm VisionTransformer; for a bare ViT pass token_state(...) to forward_tokens)"
        )
    model.token_merging = cfg
    return model


def remove(model: nn.Module) -> nn.Module:
    """Undo :func:`apply` (no-op on an unpatched model)."""
    if isinstance(model, VisionTransformer):
        _remove_timm(model)
    elif hasattr(model, "token_merging"):
        model.token_merging = None
    return model


def config_of(model: nn.Module) -> MaskToMeConfig | None:
    """The Mask-ToMe settings installed on ``model`` (``None`` when unpatched)."""
    return getattr(model, "token_merging", None)


def restore_grid(values: Tensor, source: Tensor, grid: tuple[int, int] = (16, 12)) -> Tensor:
    """Map per-token values (B, N′, C) or (B, N′) back onto the token grid → (B, gh, gw, C) / (B, gh, gw),
    every original patch taking the value of the merged token that holds it (``source`` (B,N′,gh·gw))."""
    squeeze = values.dim() == 2
    v = values[..., None] if squeeze else values
    out = restore_tokens(v, source).reshape(v.shape[0], grid[0], grid[1], v.shape[-1])
    return out[..., 0] if squeeze else out


def group_ids(source: Tensor, grid: tuple[int, int] = (16, 12)) -> Tensor:
    """(B, N′, N0) source map -> (B, gh, gw) long: the index of the merged token each patch is in."""
    idx = torch.arange(source.shape[1], device=source.device, dtype=torch.float32)
    ids = restore_grid(idx.expand(source.shape[0], -1), source, grid)
    return ids.round().long()


# ------------------------------------------------------------------------------------------ timm
class _TimmToMeBlock(nn.Module):
    """A timm ``vision_transformer.Block`` whose forward merges tokens between attention and MLP.
    (Installed by swapping ``__class__``; weights and submodules are the block's own.)"""

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        state: TokenState = self._tome_holder["state"]
        h, metric = _timm_attention(self.attn, self.norm1(x), state.log_size())
        x = x + self.drop_path1(self.ls1(h))
        x = block_step(x, metric, state)
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def _timm_attention(attn: nn.Module, x: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """timm ``Attention`` forward (same ops) that also returns the keys averaged over heads."""
    B, N, _ = x.shape
    gate = attn.gate(x).sigmoid() if getattr(attn, "gate", None) is not None else None
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    out = out.transpose(1, 2).reshape(B, N, -1)
    out = attn.norm(out)
    if gate is not None:
        out = out * gate
    return attn.proj_drop(attn.proj(out)), k.mean(1)


def _apply_timm(model: VisionTransformer, cfg: MaskToMeConfig) -> nn.Module:
    """ToMe's timm patch: one state per forward, kept in a dict the blocks share (as ToMe's
    ``_tome_info``), made fresh by a pre-hook on ``model.blocks`` (so ``forward_features`` works too)."""
    holder: dict[str, TokenState] = {}
    n_prefix = int(getattr(model, "num_prefix_tokens", 1))

    def pre_hook(mod: nn.Module, args: tuple) -> None:
        x = args[0]
        n = x.shape[1]
        protected = torch.zeros(x.shape[0], n, dtype=torch.bool, device=x.device)
        protected[:, :n_prefix] = True  # class / register tokens, protected like person tokens
        src = initial_source(x.shape[0], n, x.device) if cfg.trace_source else None
        holder["state"] = TokenState(merging=cfg, protected=protected, source=src, prefix_tokens=n_prefix)

    for blk in model.blocks:
        blk._tome_orig_class = blk.__class__
        blk._tome_holder = holder
        blk.__class__ = type("ToMe" + blk.__class__.__name__, (_TimmToMeBlock, blk.__class__), {})
    model._tome_hook = model.blocks.register_forward_pre_hook(pre_hook)
    model._tome_holder = holder
    model.token_merging = cfg
    return model


def _remove_timm(model: VisionTransformer) -> None:
    for blk in model.blocks:
        if isinstance(blk, _TimmToMeBlock):
            blk.__class__ = blk._tome_orig_class
            del blk._tome_orig_class, blk._tome_holder
    h = getattr(model, "_tome_hook", None)
    if h is not None:
        h.remove()
        del model._tome_hook
    model.token_merging = None


def last_state(model: nn.Module) -> TokenState | None:
    """The token state of the last forward of a patched timm model (tokens per block etc.)."""
    return getattr(model, "_tome_holder", {}).get("state")


__all__ = [
    "MaskToMeConfig",
    "apply",
    "remove",
    "config_of",
    "token_state",
    "restore_grid",
    "group_ids",
    "last_state",
    "person_tokens_grid",
    "SCHEDULES",
]
