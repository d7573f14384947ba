"""ViTPose-style backbone exactly as in HMR2.0 (4D-Humans ``hmr2/models/backbones/vit.py``),
with two hooks the FastHMR methods need:

* every :class:`Block` takes the forward's :class:`TokenState` (or ``None``) and runs the pure merge
  step :func:`~fasthmr_lib.merging.mask_tome.block_step` **between attention and MLP** (ToMe
  placement); what it merges is decided by the state's config, so blocks hold no merging settings;
* the block list is a plain ``nn.ModuleList`` that layer merging (ECLM) may replace.

Parameter names follow the released checkpoint (``patch_embed.proj``, ``pos_embed``,
``blocks.{i}.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2``, ``last_norm``) so a 4D-Humans
``state_dict`` under ``backbone.`` loads without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from ..config import ViTConfig
from ..merging.mask_tome import block_step
from ..merging.state import TokenState


class PatchEmbed(nn.Module):
    """Conv patch embedding: (B, 3, H, W) -> (B, N, C), N = rows * cols (16 x 12 for 256x192).

    ``stem="patch"`` is HMR2.0's one strided convolution (``proj``). ``stem="conv"`` (Xiao et al.,
    NeurIPS 2021) puts log2(patch_size) stride-2 3x3 conv + BatchNorm + ReLU layers (widths doubling up
    to embed_dim) before a 1x1 ``proj``: the same token grid with a convolutional inductive bias.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.grid = cfg.grid
        if cfg.stem == "patch":
            self.stem = nn.Identity()
            self.proj = nn.Conv2d(
                3, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size, padding=cfg.patch_padding
            )
            return
        n = cfg.patch_size.bit_length() - 1
        widths = [max(cfg.embed_dim // 2 ** (n - 1 - i), 8) for i in range(n)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip([3, *widths[:-1]], widths):
            conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False)
            layers += [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(widths[-1], cfg.embed_dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(self.stem(x))
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (HMR2.0 / timm 0.4 layout).

    Returns the output and the keys averaged over heads (ToMe's similarity metric). ``fused=True``
    (default) runs PyTorch's scaled-dot-product attention with the additive bias as its mask;
    ``fused=False`` runs the explicit ``softmax(q kᵀ · scale + bias) v`` of HMR2.0's own code (same
    result within float rounding; kept as the reference for the CPU-speed levers).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.fused = True

    def forward(self, x: Tensor, attn_bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, N, C); attn_bias: broadcastable to (B, heads, N, N), added to the logits.

        Returns (out (B, N, C), keys averaged over heads (B, N, C // heads))."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, h, N, d)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=self.scale)
        else:  # HMR2.0 ``Attention.forward`` (4D-Humans vit.py): q * scale @ kᵀ, softmax, @ v
            logits = (q * self.scale) @ k.transpose(-2, -1)
            out = (logits if attn_bias is None else logits + attn_bias).softmax(dim=-1) @ v
        out = out.transpose(1, 2).reshape(B, N, C)
        return self.proj(out), k.mean(1)


def set_fused_attention(model: nn.Module, fused: bool) -> nn.Module:
    """Switch every :class:`Attention` in ``model`` between PyTorch SDPA (``True``) and the explicit
    HMR2.0 attention (``False``), in place; returns ``model``."""
    for m in model.modules():
        if isinstance(m, Attention):
            m.fused = bool(fused)
    return model


class Block(nn.Module):
    """Pre-norm transformer block; with a token state, the merge step runs between attention and MLP."""

    def __init__(self, cfg: ViTConfig, drop_path: float = 0.0):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = Attention(dim, cfg.num_heads, qkv_bias=cfg.qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * cfg.mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: Tensor, state: TokenState | None = None) -> Tensor:
        """x: (B, N, C) -> (B, N', C); N' < N only when ``state.merging`` merges in this block."""
        h, metric = self.attn(self.norm1(x), attn_bias=state.log_size() if state is not None else None)
        x = x + self.drop_path(h)
        if state is not None:
            x = block_step(x, metric, state)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViT(nn.Module):
    """HMR2.0 backbone: (B, 3, 256, 192) -> tokens (B, N', C) or feature map (B, C, 16, 12)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        # 192 patch slots + 1 slot kept from the class-token pretraining; HMR2.0 adds the extra slot
        # to every token (``pos_embed[:, 1:] + pos_embed[:, :1]``) and never interpolates.
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens + 1, cfg.embed_dim))
        dpr = torch.linspace(0, cfg.drop_path_rate, cfg.depth).tolist()
        self.blocks = nn.ModuleList([Block(cfg, drop_path=dpr[i]) for i in range(cfg.depth)])
        self.last_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def check_input(self, x: Tensor) -> None:
        h, w = self.cfg.img_size
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (h, w):
            raise ValueError(
                f"backbone input must be (B, 3, {h}, {w}) (a 256x256 crop with 32 px trimmed "
                f"on each side), got {tuple(x.shape)}"
            )

    def forward_tokens(self, x: Tensor, state: TokenState | None = None) -> Tensor:
        """x: (B, 3, H, W) normalised image -> (B, N', C) tokens after ``last_norm``.

        ``state`` carries token sizes / protection through merging blocks (updated in place)."""
        self.check_input(x)
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for blk in self.blocks:
            x = blk(x, state)
        return self.last_norm(x)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 3, 256, 192) -> feature map (B, C, 16, 12), as HMR2.0 returns it (no merging)."""
        t = self.forward_tokens(x)
        rows, cols = self.cfg.grid
        if t.shape[1] != rows * cols:
            raise RuntimeError("feature map requested but tokens were merged; use forward_tokens")
        return t.transpose(1, 2).reshape(t.shape[0], -1, rows, cols)
