"""SMPL transformer-decoder head of HMR2.0 (4D-Humans ``hmr2/models/heads/smpl_head.py`` +
``components/pose_transformer.py``), written anew with the same parameter names so a released
``smpl_head.*`` state dict loads unchanged:

``transformer.to_token_embedding``, ``transformer.pos_embedding``,
``transformer.transformer.layers.{i}.{0: self-attn, 1: cross-attn, 2: feed-forward}.{norm, fn.*}``
(``fn.to_qkv``, ``fn.to_q``, ``fn.to_kv``, ``fn.to_out.0``, ``fn.net.0``, ``fn.net.3``),
``decpose`` / ``decshape`` / ``deccam`` (+ ``deckp`` for CameraHMR), buffers ``init_body_pose``
(1, 144), ``init_betas`` (1, 10), ``init_cam`` (1, 3).

One query token; six pre-norm layers of [self-attention, cross-attention to the backbone tokens,
feed-forward], each residual, no final norm. The read-out is one residual step on the SMPL mean
parameters (HMR2.0 ``IEF_ITERS = 1``): ``pose6d = decpose(t) + init_body_pose`` etc.

Query-token input:
* ``token_input="zero"`` (HMR2.0): a zero scalar per sample, ``token_dim = 1``.
* ``token_input="bbox"`` (CameraHMR ``core/heads/smpl_head_cliff.py``): the CLIFF box info (3 numbers,
  see :func:`fasthmr_lib.models.hmr.cliff_bbox_info`) concatenated with the mean pose (144), mean betas (10)
  and mean camera (3): ``token_dim = 160``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import roma
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..body.smpl import load_mean_params
from ..config import HeadConfig


def rot6d_to_rotmat(x: Tensor) -> Tensor:
    """6D rotation (Zhou et al. 2019, HMR2.0 layout) -> rotation matrix.

    x: (..., 6) = two 3-vectors a1 = x[..., :3], a2 = x[..., 3:] that become the first two columns
    after Gram-Schmidt; the third column is their cross product. Returns (..., 3, 3).
    """
    m = x.reshape(*x.shape[:-1], 2, 3).transpose(-1, -2)  # (..., 3, 2): columns a1, a2
    return roma.special_gramschmidt(m, epsilon=1e-12)  # same clamp as F.normalize in HMR2.0


def identity_mean_params(num_joints: int = 24, num_betas: int = 10) -> dict[str, np.ndarray]:
    """Fallback mean parameters: identity rotations (6D), zero betas, camera (0.9, 0, 0)."""
    pose = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), num_joints)
    return {
        "pose": pose,
        "shape": np.zeros(num_betas, np.float32),
        "cam": np.array([0.9, 0.0, 0.0], np.float32),
    }


class PreNorm(nn.Module):
    """LayerNorm then ``fn`` (4D-Humans ``PreNorm``: attributes ``norm`` and ``fn``)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor, **kw) -> Tensor:
        return self.fn(self.norm(x), **kw)


def _out_proj(inner: int, dim: int, heads: int, dim_head: int, dropout: float) -> nn.Module:
    # 4D-Humans skips the output projection only when heads == 1 and dim_head == dim.
    if heads == 1 and dim_head == dim:
        return nn.Identity()
    return nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))


class SelfAttention(nn.Module):
    """Multi-head self-attention, fused bias-free ``to_qkv``: (B, N, dim) -> (B, N, dim)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head**-0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = _out_proj(inner, dim, heads, dim_head, dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, N, _ = x.shape
        q, k, v = (t.reshape(B, N, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(out.transpose(1, 2).reshape(B, N, -1))


class CrossAttention(nn.Module):
    """Queries (B, N, dim) attend to context (B, M, context_dim); ``to_kv`` / ``to_q`` bias-free.

    ``bias`` (optional) is added to the attention logits, broadcastable to (B, heads, N, M)
    (e.g. log token sizes after token merging)."""

    def __init__(self, dim: int, context_dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head**-0.5
        self.to_kv = nn.Linear(context_dim, inner * 2, bias=False)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_out = _out_proj(inner, dim, heads, dim_head, dropout)

    def forward(self, x: Tensor, context: Tensor, bias: Tensor | None = None) -> Tensor:
        B, N, _ = x.shape
        M = context.shape[1]
        k, v = (t.reshape(B, M, self.heads, -1).transpose(1, 2) for t in self.to_kv(context).chunk(2, dim=-1))
        q = self.to_q(x).reshape(B, N, self.heads, -1).transpose(1, 2)
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.to_out(out.transpose(1, 2).reshape(B, N, -1))


class FeedForward(nn.Module):
    """``net = [Linear, GELU, Dropout, Linear, Dropout]`` (indices 0 and 3 hold weights)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CrossAttnStack(nn.Module):
    """``layers.{i}`` = ModuleList[PreNorm(SelfAttention), PreNorm(CrossAttention), PreNorm(FeedForward)]."""

    def __init__(self, cfg: HeadConfig, dropout: float = 0.0):
        super().__init__()
        d = cfg.dim
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(d, SelfAttention(d, cfg.heads, cfg.dim_head, dropout)),
                    PreNorm(d, CrossAttention(d, cfg.context_dim, cfg.heads, cfg.dim_head, dropout)),
                    PreNorm(d, FeedForward(d, cfg.mlp_dim, dropout)),
                ]
            )
            for _ in range(cfg.depth)
        )

    def forward(self, x: Tensor, context: Tensor, bias: Tensor | None = None) -> Tensor:
        for sa, ca, ff in self.layers:
            x = sa(x) + x
            x = ca(x, context=context, bias=bias) + x
            x = ff(x) + x
        return x


class TransformerDecoder(nn.Module):
    """Token embedding + learned position embedding + :class:`CrossAttnStack` (no final norm)."""

    def __init__(self, cfg: HeadConfig, token_dim: int):
        super().__init__()
        self.to_token_embedding = nn.Linear(token_dim, cfg.dim)
        self.pos_embedding = nn.Parameter(torch.randn(1, 1, cfg.dim))
        self.transformer = CrossAttnStack(cfg)

    def forward(self, inp: Tensor, context: Tensor, bias: Tensor | None = None) -> Tensor:
        """inp (B, 1, token_dim), context (B, M, context_dim) -> (B, 1, dim)."""
        x = self.to_token_embedding(inp) + self.pos_embedding[:, : inp.shape[1]]
        return self.transformer(x, context, bias)


class SMPLHead(nn.Module):
    """HMR2.0 / CameraHMR SMPL head: backbone tokens -> 24 rotmats, 10 betas, weak-perspective cam.

    Args:
        cfg: head sizes (``hmr2``: dim 1024, depth 6, 8 heads x 64, mlp 1024, context 1280).
        mean_params: dict with ``pose`` (144,) 6D, ``shape`` (10,), ``cam`` (3,), or a path to
            ``SMPL_mean_params.npz``; ``None`` -> identity pose / zero betas / cam (0.9, 0, 0) with a warning
            (the released checkpoints carry the real values in the ``init_*`` buffers).
    """

    def __init__(self, cfg: HeadConfig, mean_params: Mapping[str, np.ndarray] | str | Path | None = None):
        super().__init__()
        if cfg.token_input not in ("zero", "bbox"):
            raise ValueError(f"HeadConfig.token_input must be 'zero' or 'bbox', got {cfg.token_input!r}")
        self.cfg = cfg
        self.npose = 6 * cfg.num_joints
        if cfg.token_input == "zero":
            token_dim = 1
        else:  # CameraHMR: [bbox_info (3), pose (144), betas (10), cam (3)]
            token_dim = 3 + self.npose + cfg.num_betas + 3
        self.transformer = TransformerDecoder(cfg, token_dim)
        self.decpose = nn.Linear(cfg.dim, self.npose)
        self.decshape = nn.Linear(cfg.dim, cfg.num_betas)
        self.deccam = nn.Linear(cfg.dim, 3)
        if cfg.kp_readout:
            self.deckp = nn.Linear(cfg.dim, cfg.kp_readout)

        if mean_params is None:
            warnings.warn(
                "SMPLHead built without SMPL mean parameters; using identity pose, zero betas and "
                "cam (0.9, 0, 0). Loading a checkpoint overwrites them (init_* buffers).",
                stacklevel=2,
            )
            mean_params = identity_mean_params(cfg.num_joints, cfg.num_betas)
        elif isinstance(mean_params, (str, Path)):
            mean_params = load_mean_params(mean_params)
        for key, n, name in (("pose", self.npose, "init_body_pose"), ("shape", cfg.num_betas, "init_betas"),
                             ("cam", 3, "init_cam")):  # fmt: skip
            v = torch.as_tensor(np.asarray(mean_params[key], np.float32).reshape(-1))
            if v.numel() != n:
                raise ValueError(f"mean parameter {key!r} must have {n} numbers, got {v.numel()}")
            self.register_buffer(name, v[None].clone())

    def forward(
        self, context: Tensor, bbox_info: Tensor | None = None, context_bias: Tensor | None = None
    ) -> dict[str, Tensor]:
        """context: backbone tokens (B, M, C) or a feature map (B, C, H, W) (flattened row-major, as
        HMR2.0's ``b c h w -> b (h w) c``); bbox_info (B, 3) for ``token_input="bbox"``; context_bias
        broadcastable to (B, heads, 1, M), added to the cross-attention logits.

        Returns ``pose6d`` (B, 144), ``rotmat`` (B, 24, 3, 3) [global orient first], ``betas`` (B, 10),
        ``cam`` (B, 3) weak perspective (s, tx, ty), ``token`` (B, dim) the query token after the last
        layer, and ``kp`` (B, kp_readout) when the head has ``deckp``.
        """
        if context.ndim == 4:
            context = context.flatten(2).transpose(1, 2)
        if context.ndim != 3 or context.shape[-1] != self.cfg.context_dim:
            raise ValueError(
                f"SMPLHead context must be (B, M, {self.cfg.context_dim}) tokens, got {tuple(context.shape)}"
            )
        B = context.shape[0]
        pose0 = self.init_body_pose.expand(B, -1)
        betas0 = self.init_betas.expand(B, -1)
        cam0 = self.init_cam.expand(B, -1)
        if self.cfg.token_input == "zero":
            token = context.new_zeros(B, 1, 1)
        else:
            if bbox_info is None or bbox_info.shape != (B, 3):
                got = None if bbox_info is None else tuple(bbox_info.shape)
                raise ValueError(
                    f"this head (token_input='bbox', CameraHMR) needs bbox_info (B, 3); got {got}"
                )
            token = torch.cat([bbox_info.to(context.dtype), pose0, betas0, cam0], dim=1)[:, None]
        t = self.transformer(token, context, context_bias)[:, 0]
        pose6d = self.decpose(t) + pose0
        out = {
            "pose6d": pose6d,
            "rotmat": rot6d_to_rotmat(pose6d.reshape(B, -1, 6)),
            "betas": self.decshape(t) + betas0,
            "cam": self.deccam(t) + cam0,
            "token": t,
        }
        if self.cfg.kp_readout:
            out["kp"] = self.deckp(t)
        return out
