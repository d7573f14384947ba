"""Latent denoiser (FastHMR stage 2, paper Table 14): MLD-style ``trans_enc`` denoiser with long skips.

Tokens = [L noisy latent tokens ; 1 timestep token ; F condition tokens] + learned positional embedding
-> skip-transformer encoder (post-norm, GELU) -> the first L outputs are the prediction (v̂ for the
paper's v-prediction). The timestep token is ``Timesteps(time_dim, flip_sin_to_cos, freq_shift)`` +
``TimestepEmbedding(time_dim → D)`` from diffusers (MLD's choice, time_dim = the condition width);
condition tokens are the per-frame HMR head tokens projected ``Linear(cond_dim → D)`` (MLD puts a ReLU
before it for text features; the head token is signed, so no ReLU by default — ``cond_relu`` switches
it on). The condition outputs are discarded (paper Fig. 4 legend).

``cond_pose_dims`` (0 = the paper's decoder): the last ``cond_pose_dims`` channels of each frame's condition
are the per-frame head's own pose, its first z-normalised HybrIK features (87 = the 29 joints), after the
head token (:func:`~fasthmr_lib.diffusion.decoder.pose_condition` builds them; ``cond_dim`` counts both).
The head's pose is a fixed readout of the same token, so the condition carries no new image information;
it hands the denoiser the head's per-frame pose, which it could not learn as well from the embedded
world's few training motions (README, "Why the decoder's body pose was worse").

``cond_pool`` (for a VAE with ``latent_layout="temporal"``, where latent token k describes frames
[kF/L, (k+1)F/L)): latent token k's input also gets the mean of its chunk's projected condition tokens, a
direct local path from the frames to the latent that describes them (attention can still use every frame).
``cond_pool_mode="linear"``: instead of the mean, a linear map of the chunk's F/L projected condition tokens
in order (ViT's patch embedding along time), so which frame of the chunk had which pose survives; it starts
as the mean (its weight is F/L copies of I / (F/L)) and learns from there.

Paper preset: F=243, L×D_latent = 27×512, D=512, 5 layers, 4 heads, FF 1024, dropout 0.001, cond 1024.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import Tensor, nn

from .vae import LearnedPositionalEmbedding, SkipTransformer, encoder_layer

COND_POOL_MODES = ("mean", "linear")


@dataclass(frozen=True)
class DenoiserConfig:
    latent_len: int = 27
    latent_dim: int = 512  # width of the VAE latent tokens
    d_model: int = 512
    cond_dim: int = 1024  # head-token width (1024 for HMR2.0 / CameraHMR; narrower for small presets)
    num_frames: int = 243
    num_layers: int = 5
    num_heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.001
    activation: str = "gelu"
    normalize_before: bool = False
    flip_sin_to_cos: bool = True
    freq_shift: float = 0.0
    time_dim: int | None = None  # sinusoid width; None -> cond_dim (MLD)
    cond_relu: bool = False
    cond_pool: bool = False  # add the mean projected condition of chunk k to latent token k
    cond_pool_mode: str = "mean"  # "mean" | "linear" (a learned map of the chunk's frames in order)
    cond_pose_dims: int = 0  # trailing condition channels that are the head's pose features (0: tokens only)

    def replace(self, **kw) -> DenoiserConfig:
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> DenoiserConfig:
        return DenoiserConfig(**d)


DENOISER_PRESETS: dict[str, DenoiserConfig] = {
    "paper": DenoiserConfig(),
    "small": DenoiserConfig(  # cond_pool: the small VAE's latent is temporal
        latent_len=8,
        latent_dim=128,
        d_model=128,
        cond_dim=256,
        num_frames=64,
        num_layers=3,
        ff_dim=256,
        cond_pool=True,
    ),  # fmt: skip
    "tiny": DenoiserConfig(
        latent_len=2,
        latent_dim=32,
        d_model=32,
        cond_dim=64,
        num_frames=16,
        num_layers=3,
        num_heads=2,
        ff_dim=64,
    ),
}


def denoiser_config(preset: str | DenoiserConfig, **overrides) -> DenoiserConfig:
    if isinstance(preset, DenoiserConfig):
        return preset.replace(**overrides) if overrides else preset
    if preset not in DENOISER_PRESETS:
        raise ValueError(f"unknown denoiser preset {preset!r}; choose one of {sorted(DENOISER_PRESETS)}")
    return DENOISER_PRESETS[preset].replace(**overrides)


class LatentDenoiser(nn.Module):
    """forward(z_t (B,L,latent_dim), t (B,) or scalar, cond (B,F,cond_dim)) -> (B,L,latent_dim)."""

    def __init__(self, cfg: DenoiserConfig | str = "paper"):
        super().__init__()
        cfg = denoiser_config(cfg)
        if cfg.cond_pool and cfg.num_frames % cfg.latent_len:
            raise ValueError(
                f"cond_pool needs latent_len ({cfg.latent_len}) to divide num_frames ({cfg.num_frames})"
            )
        if cfg.cond_pool_mode not in COND_POOL_MODES:
            raise ValueError(f"cond_pool_mode must be one of {COND_POOL_MODES}, got {cfg.cond_pool_mode!r}")
        self.cfg = cfg
        D = cfg.d_model
        if cfg.cond_pool and cfg.cond_pool_mode == "linear":
            k = cfg.num_frames // cfg.latent_len
            self.cond_patch = nn.Linear(k * D, D)
            with torch.no_grad():  # starts as the mean over the chunk's k frames
                self.cond_patch.weight.copy_(torch.eye(D).repeat(1, k) / k)
                self.cond_patch.bias.zero_()
        tdim = cfg.time_dim or cfg.cond_dim
        self.time_proj = Timesteps(tdim, cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(tdim, D)
        self.emb_proj = (
            nn.Sequential(nn.ReLU(), nn.Linear(cfg.cond_dim, D))
            if cfg.cond_relu
            else nn.Linear(cfg.cond_dim, D)
        )
        self.pose_embd = nn.Linear(cfg.latent_dim, D) if cfg.latent_dim != D else nn.Identity()
        self.query_pos = LearnedPositionalEmbedding(cfg.latent_len + 1 + cfg.num_frames, D)
        args = (D, cfg.num_heads, cfg.ff_dim, cfg.dropout, cfg.activation, cfg.normalize_before)
        self.encoder = SkipTransformer(lambda: encoder_layer(*args), cfg.num_layers, D)
        self.pose_proj = nn.Linear(D, cfg.latent_dim)

    def forward(self, z_t: Tensor, t: Tensor | int, cond: Tensor) -> Tensor:
        c = self.cfg
        B = z_t.shape[0]
        if z_t.shape[1:] != (c.latent_len, c.latent_dim):
            raise ValueError(f"z_t must be (B,{c.latent_len},{c.latent_dim}), got {tuple(z_t.shape)}")
        if cond.ndim != 3 or cond.shape[0] != B or cond.shape[1:] != (c.num_frames, c.cond_dim):
            raise ValueError(
                f"cond must be ({B},{c.num_frames},{c.cond_dim}) head tokens, got {tuple(cond.shape)}"
            )
        t = torch.as_tensor(t, device=z_t.device)
        if t.ndim == 0:
            t = t.expand(B)
        temb = self.time_embedding(self.time_proj(t).to(z_t.dtype))[:, None]  # (B,1,D)
        c_emb = self.emb_proj(cond)  # (B,F,D)
        lat = self.pose_embd(z_t)  # (B,L,D)
        if c.cond_pool:
            chunks = c_emb.reshape(B, c.latent_len, c.num_frames // c.latent_len, -1)  # (B,L,F/L,D)
            if c.cond_pool_mode == "linear":
                lat = lat + self.cond_patch(chunks.flatten(2))
            else:
                lat = lat + chunks.mean(2)
        x = torch.cat([lat, temb, c_emb], dim=1)
        h = self.encoder(self.query_pos(x))
        return self.pose_proj(h[:, : c.latent_len])
