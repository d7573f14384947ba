"""Install / remove Mask-ToMe (or plain ToMe) on a model — the thin adapter around ``mask_tome``.

Supported models:

* our :class:`~fasthmr_lib.models.hmr.HMR` (``model.backbone.blocks``): every merging block gets a
  ``token_merge`` step (between attention and MLP) and the model a ``make_token_state(person_mask, B)``
  that pools the crop-aligned person mask onto the 16×12 grid; the SMPL head then cross-attends to
  the N′ remaining tokens (optionally with a log-size bias, ``head_size_bias``);
* our bare :class:`~fasthmr_lib.models.vit.ViT` (call ``vit.forward_tokens(x, token_state(...))``);
* any timm ``VisionTransformer`` (class / prefix tokens protected like person tokens; no mask).

``MaskToMeConfig(use_mask=False)`` is plain ToMe with the same schedule; ``schedule="constant"``
is ToMe's own recipe (r tokens in every block). ``remove(model)`` restores the unpatched model.
With nothing to merge (``per_layer=0`` / ``r=0``) the patched model is bit-identical to the original.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mask_tome import SHORTFALL, mask_tome_step, merge_budget, person_tokens
from .state import TokenState
from .tokens import initial_source, restore_tokens

SCHEDULES = ("paper", "constant")


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


def _blocks(model: nn.Module) -> nn.ModuleList:
    if hasattr(model, "backbone") and hasattr(model.backbone, "blocks"):
        return model.backbone.blocks
    if hasattr(model, "blocks"):
        return model.blocks
    raise TypeError(f"Mask-ToMe: {type(model).__name__} has neither .backbone.blocks nor .blocks")


def _is_timm_vit(model: nn.Module) -> bool:
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:  # pragma: no cover - timm is a dependency
        return False
    return isinstance(model, VisionTransformer)


def token_state(
    cfg: MaskToMeConfig, person_mask: Tensor | None, batch: int, n_tokens: int, device: Any = None
) -> TokenState:
    """A fresh :class:`TokenState` for one forward: person tokens from ``person_mask`` (B,H,W) when
    ``cfg.use_mask`` (a clear error when it is missing), sizes 1, optional source map."""
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
    return TokenState(protected=protected, source=source, prop_attn=cfg.prop_attn)


def _merge_fn(cfg: MaskToMeConfig, block: int):
    def token_merge(x: Tensor, metric: Tensor, state: TokenState) -> Tensor:
        return mask_tome_step(x, metric, state, cfg.budget(x.shape[1], block), cfg.shortfall)

    token_merge.block = block  # type: ignore[attr-defined]
    return token_merge


def apply(model: nn.Module, cfg: MaskToMeConfig | None = None) -> nn.Module:
    """Install Mask-ToMe in place (re-applying replaces earlier settings); returns ``model``.

    Apply it *after* ECLM (``eclm.apply_windows`` builds new blocks)."""
    cfg = cfg or MaskToMeConfig()
    remove(model)
    if _is_timm_vit(model):
        return _apply_timm(model, cfg)
    blocks = _blocks(model)
    for i, blk in enumerate(blocks):
        if not hasattr(blk, "token_merge"):
            raise TypeError(f"block {i} ({type(blk).__name__}) has no token_merge hook")
        blk.token_merge = _merge_fn(cfg, i)
    n_tokens = _grid_tokens(model)
    if hasattr(model, "make_token_state"):
        model.make_token_state = lambda mask, batch: token_state(cfg, mask, batch, n_tokens, _device(model))
        model.head_size_bias = cfg.head_size_bias
    model.mask_tome_cfg = cfg
    return model


def remove(model: nn.Module) -> nn.Module:
    """Undo :func:`apply` (no-op on an unpatched model)."""
    if _is_timm_vit(model):
        for blk in model.blocks:
            if isinstance(blk, _TimmToMeBlock):
                blk.__class__ = blk._tome_orig_class
                for k in ("_tome_orig_class", "_tome_merge", "_tome_holder"):
                    delattr(blk, k)
        h = getattr(model, "_tome_hook", None)
        if h is not None:
            h.remove()
            del model._tome_hook
    else:
        for blk in _blocks(model):
            if hasattr(blk, "token_merge"):
                blk.token_merge = None
        if hasattr(model, "make_token_state"):
            model.make_token_state = None
            model.head_size_bias = False
    if hasattr(model, "mask_tome_cfg"):
        del model.mask_tome_cfg
    return model


def _grid_tokens(model: nn.Module) -> int:
    vit = model.backbone if hasattr(model, "backbone") else model
    gh, gw = vit.cfg.grid
    return int(gh * gw)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


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
        x = self._tome_merge(x, metric, state)
        state.tokens_per_block.append(x.shape[1])
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


def _apply_timm(model: nn.Module, cfg: MaskToMeConfig) -> nn.Module:
    holder: dict[str, TokenState] = {}
    n_prefix = int(getattr(model, "num_prefix_tokens", 1))

    def pre_hook(mod: nn.Module, args: tuple) -> None:  # on model.blocks: forward and forward_features
        x = args[0]
        n = x.shape[1]
        protected = torch.zeros(x.shape[0], n, dtype=torch.bool, device=x.device)
        protected[:, :n_prefix] = True  # class / register tokens, protected like person tokens
        src = initial_source(x.shape[0], n, x.device) if cfg.trace_source else None
        holder["state"] = TokenState(
            protected=protected, source=src, prop_attn=cfg.prop_attn, prefix_tokens=n_prefix
        )

    for i, blk in enumerate(model.blocks):
        blk._tome_orig_class = blk.__class__
        blk._tome_merge = _merge_fn(cfg, i)
        blk._tome_holder = holder
        blk.__class__ = type("ToMe" + blk.__class__.__name__, (_TimmToMeBlock, blk.__class__), {})
    model._tome_hook = model.blocks.register_forward_pre_hook(pre_hook)
    model._tome_holder = holder
    model.mask_tome_cfg = cfg
    return model


def last_state(model: nn.Module) -> TokenState | None:
    """The token state of the last forward of a patched timm model (tokens per block etc.)."""
    return getattr(model, "_tome_holder", {}).get("state")


__all__ = [
    "MaskToMeConfig",
    "apply",
    "remove",
    "token_state",
    "restore_grid",
    "group_ids",
    "last_state",
    "person_tokens_grid",
    "SCHEDULES",
]


def person_tokens_grid(mask: Tensor, coverage: float = 0.5, grid: tuple[int, int] = (16, 12)) -> Tensor:
    """(B, 256, 256) crop-aligned mask -> (B, gh, gw) bool person tokens (see ``mask_tome.person_tokens``)."""
    return person_tokens(mask, coverage).reshape(mask.shape[0], grid[0], grid[1])
