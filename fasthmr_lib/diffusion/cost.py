"""Cost of the one-step diffusion decoder for the benchmark (paper Table 6: 8211 fps, 351 MB; Table 12:
29.5 M parameters, 6.8 GMACs — per frame or per clip not stated).

The decoder works on windows of F head tokens (paper F = 243): one denoiser step + the VAE decoder per
window, then HybrIK's analytic IK per frame. Its per-frame cost is the window's cost / F (non-overlapping
windows). Weights are random (speed and MACs do not depend on them); the HybrIK body is a random
SMPL-sized body (the IK cost depends only on the 29-joint skeleton, not on the mesh), so nothing licensed
is needed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..body.hybrik import FeatureStats, HybrIKBody
from ..macs import count_macs
from .decoder import DiffusionDecoder
from .denoiser import LatentDenoiser
from .vae import MotionVAE

#: VAE parameters only used by the encoder (not part of the deployed decoder; notebook 04 counts the same)
VAE_ENCODER_PARTS = (
    "skel_embedding",
    "global_motion_token",
    "query_pos_encoder",
    "encoder.",
    "mu_head",
    "logvar_head",
)
_CACHE: dict[tuple[str, str], DiffusionDecoder] = {}


def random_body(num_vertices: int = 6890, seed: int = 0) -> HybrIKBody:
    """A HybrIK body from random SMPL-shaped arrays (V vertices, 10 shape directions, 24-joint regressor
    with convex rows); enough for timing the IK."""
    g = torch.Generator().manual_seed(seed)
    V = num_vertices
    vt = torch.rand(V, 3, generator=g) * torch.tensor([0.6, 1.7, 0.3]) - torch.tensor([0.3, 0.9, 0.15])
    sd = torch.randn(V, 3, 10, generator=g) * 0.01
    jr = torch.rand(24, V, generator=g)
    jr = jr / jr.sum(1, keepdim=True)
    return HybrIKBody(vt, sd, jr, leaf_ids=(0, 1, 2, 3, 4))


def build_decoder(
    preset: str = "paper", device: str | torch.device = "cpu", seed: int = 0, body: nn.Module | None = None
) -> DiffusionDecoder:
    """A random-weight :class:`DiffusionDecoder` of a VAE/denoiser preset (``paper``: F = 243, latent
    27 × 512, condition 1024) in eval mode, one DDIM step; on ``body`` (an SMPL body model) or, by default,
    on :func:`random_body`. Random weights: for timing, and for CI runs without a trained decoder only."""
    torch.manual_seed(seed)
    vae, den = MotionVAE(preset).eval(), LatentDenoiser(preset).eval()
    hb = HybrIKBody.from_smpl(body) if body is not None else random_body(seed=seed)
    dec = DiffusionDecoder(vae, den, hb, FeatureStats.identity(vae.cfg.nfeats))
    return dec.to(device).eval()


def cached_decoder(preset: str = "paper", device: str | torch.device = "cpu") -> DiffusionDecoder:
    key = (preset, str(torch.device(device)))
    if key not in _CACHE:
        _CACHE[key] = build_decoder(preset, device)
    return _CACHE[key]


@torch.no_grad()
def bench_decoder(batch: int, device: str | torch.device = "cpu", preset: str = "paper") -> dict[str, Tensor]:
    """Decode a clip of ``batch`` frames of random head tokens with the ``preset`` decoder (built once and
    cached per device): ⌈batch / F⌉ windows (a clip shorter than F costs one full window — the paper resamples
    it to F), each one denoiser step + VAE decoder, then HybrIK IK for every frame. Call it with
    ``batch = F`` (:func:`window_frames`) to time one window; per-frame cost = that time / F."""
    dec = cached_decoder(preset, device)
    g = torch.Generator().manual_seed(0)
    tok = torch.randn(batch, dec.token_dim, generator=g)
    betas = torch.zeros(batch, 10)
    return dec(tok, betas, seed=0)


def window_frames(preset: str = "paper") -> int:
    """F, the decoder's window length in frames."""
    from .vae import vae_config

    return vae_config(preset).num_frames


class _DecoderCore(nn.Module):
    """One denoiser step + VAE decoder on one window (what the MAC count covers; IK has no matmuls)."""

    def __init__(self, vae: MotionVAE, denoiser: LatentDenoiser):
        super().__init__()
        self.denoiser, self.vae = denoiser, vae

    def forward(self, cond: Tensor) -> Tensor:
        c = self.vae.cfg
        z = cond.new_zeros(cond.shape[0], c.latent_len, c.latent_dim)
        t = torch.full((cond.shape[0],), 999, device=cond.device)
        return self.vae.decode(self.denoiser(z, t, cond))


def decoder_cost(preset: str = "paper") -> dict[str, Any]:
    """Parameters and MACs of the deployed decoder (denoiser + VAE decoder; the VAE encoder is only used in
    training): ``params`` {denoiser, vae_decoder, total}, ``macs_per_window`` / ``macs_per_frame``
    {all, linear_conv} (the conventions of :func:`fasthmr_lib.macs.count_macs`), ``num_frames``.
    Counted on the ``meta`` device (no memory, no compute). Note: counting a real CPU/CUDA model in eval
    mode undercounts, because ``nn.TransformerEncoderLayer`` then runs a fused fast path
    (``aten._transformer_encoder_layer_fwd``) that ``FlopCounterMode`` does not attribute; meta tensors
    take the regular path."""
    with torch.device("meta"):
        vae, den = MotionVAE(preset).eval(), LatentDenoiser(preset).eval()
    p_den = sum(p.numel() for p in den.parameters())
    p_vae = sum(p.numel() for n, p in vae.named_parameters() if not n.startswith(VAE_ENCODER_PARTS))
    F = vae.cfg.num_frames
    cond = torch.zeros(1, F, den.cfg.cond_dim, device="meta")
    mc = count_macs(_DecoderCore(vae, den), cond)
    per_window = {"all": mc.all, "linear_conv": mc.linear_conv}
    return {
        "preset": preset,
        "num_frames": F,
        "params": {"denoiser": p_den, "vae_decoder": p_vae, "total": p_den + p_vae},
        "macs_per_window": per_window,
        "macs_per_frame": {k: v / F for k, v in per_window.items()},
        "by_component_per_window": mc.by_component,
    }
