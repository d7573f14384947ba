"""Motion VAE (FastHMR stage 1, paper Table 15): a transformer VAE over F-frame windows of per-frame pose
features (133-d HybrIK) with a latent of L tokens × D, trained with MSE reconstruction + KL.

Structure follows MLD's ``MldVae`` (Chen et al., CVPR 2023; arch ``encoder_decoder``), written here
from its description (the paper's motion-VAE description and Table 15; MLD, Chen et al. CVPR 2023):

* encoder: ``Linear(nfeats → D)`` per frame; 2L learnable distribution tokens are prepended; learned
  positional embedding; a skip-transformer encoder (U-Net-like long skips: (n−1)/2 input blocks, one
  middle block, (n−1)/2 output blocks, each output block sees ``Linear(concat(x, skip))``) + LayerNorm;
  the first L outputs are μ, the next L are log σ²;
* decoder: F zero queries + learned positional embedding, a skip-transformer *decoder* cross-attending
  to z (L×D), LayerNorm, ``Linear(D → nfeats)``.

Latent layout (``latent_layout``; the paper's "27 encoded frames" for 243 frames reads either way,
docs/AMBIGUITIES.md #10):

* ``"tokens"`` (MLD): the L latent tokens are the outputs of 2L learnable distribution tokens; every
  latent token may describe any part of the window;
* ``"temporal"``: latent token k summarises frames [kF/L, (k+1)F/L) (F/L-times temporal downsampling):
  the encoder runs over the F frames and mean-pools each chunk (``Linear`` heads give μ, log σ²); the
  decoder's query of frame f is latent token ⌊fL/F⌋ (+ learned positional embedding), cross-attending to
  all of z. A local latent is easier to reconstruct and lets the denoiser map each chunk's condition
  frames to its own latent token (``DenoiserConfig.cond_pool``).

Presets: ``paper`` (F=243, latent 27×512, 9 layers, 4 heads, FF 1024, dropout 0.1, GELU, post-norm; MLD's
token layout), ``small`` (embedded default; temporal layout) and ``tiny`` (tests/CI; token layout) — the same
code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class VAEConfig:
    nfeats: int = 133
    num_frames: int = 243
    latent_len: int = 27
    latent_dim: int = 512
    ff_dim: int = 1024
    num_layers: int = 9
    num_heads: int = 4
    dropout: float = 0.1
    activation: str = "gelu"
    normalize_before: bool = False
    kl_weight: float = 1e-4  # not given by the paper; MLD's value (docs/AMBIGUITIES.md #12)
    latent_layout: str = "tokens"  # "tokens" (MLD distribution tokens) or "temporal" (chunk k -> token k)

    def replace(self, **kw) -> VAEConfig:
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> VAEConfig:
        return VAEConfig(**d)


VAE_PRESETS: dict[str, VAEConfig] = {
    "paper": VAEConfig(),
    # the embedded default: the temporal layout (test floor 22.4 / 18.3 mm MPJPE / PA-MPJPE against the
    # token layout's 57.4 / 45.3 on the default world; README "Why the decoder's body pose was worse")
    "small": VAEConfig(
        num_frames=64,
        latent_len=8,
        latent_dim=128,
        ff_dim=256,
        num_layers=3,
        num_heads=4,
        latent_layout="temporal",
    ),
    "tiny": VAEConfig(num_frames=16, latent_len=2, latent_dim=32, ff_dim=64, num_layers=3, num_heads=2),
}


def vae_config(preset: str | VAEConfig, **overrides) -> VAEConfig:
    if isinstance(preset, VAEConfig):
        return preset.replace(**overrides) if overrides else preset
    if preset not in VAE_PRESETS:
        raise ValueError(f"unknown VAE preset {preset!r}; choose one of {sorted(VAE_PRESETS)}")
    return VAE_PRESETS[preset].replace(**overrides)


class LearnedPositionalEmbedding(nn.Module):
    """x (B,N,D) + P[:N] with a learned table P (max_len, D) (MLD ``PositionEmbeddingLearned1D``)."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len = max_len
        self.pe = nn.Parameter(torch.empty(max_len, dim).uniform_(-0.1, 0.1))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence of {x.shape[1]} tokens exceeds the positional table ({self.max_len})")
        return x + self.pe[: x.shape[1]]


class SkipTransformer(nn.Module):
    """Transformer stack with U-Net-like long skips (MLD ``SkipTransformerEncoder/Decoder``; U-ViT).

    ``num_layers`` must be odd: (n−1)/2 input blocks, a middle block, (n−1)/2 output blocks; output
    block k receives ``Linear(concat(x, skip_k))`` with the matching input block's output. Works with
    ``nn.TransformerEncoderLayer`` (``memory=None``) and ``nn.TransformerDecoderLayer`` (``memory`` given).
    """

    def __init__(
        self, make_layer: Callable[[], nn.Module], num_layers: int, dim: int, final_norm: bool = True
    ):
        super().__init__()
        if num_layers < 1 or num_layers % 2 == 0:
            raise ValueError(f"SkipTransformer needs an odd number of layers, got {num_layers}")
        nb = (num_layers - 1) // 2
        self.input_blocks = nn.ModuleList([make_layer() for _ in range(nb)])
        self.middle_block = make_layer()
        self.output_blocks = nn.ModuleList([make_layer() for _ in range(nb)])
        self.linear_blocks = nn.ModuleList([nn.Linear(2 * dim, dim) for _ in range(nb)])
        self.norm = nn.LayerNorm(dim) if final_norm else nn.Identity()

    def _layer(self, layer: nn.Module, x: Tensor, memory: Tensor | None) -> Tensor:
        return layer(x) if memory is None else layer(x, memory)

    def forward(self, x: Tensor, memory: Tensor | None = None) -> Tensor:
        skips = []
        for blk in self.input_blocks:
            x = self._layer(blk, x, memory)
            skips.append(x)
        x = self._layer(self.middle_block, x, memory)
        for blk, lin in zip(self.output_blocks, self.linear_blocks):
            x = lin(torch.cat([x, skips.pop()], dim=-1))
            x = self._layer(blk, x, memory)
        return self.norm(x)


def encoder_layer(d: int, heads: int, ff: int, dropout: float, act: str, pre_norm: bool) -> nn.Module:
    return nn.TransformerEncoderLayer(d, heads, ff, dropout, act, batch_first=True, norm_first=pre_norm)


def decoder_layer(d: int, heads: int, ff: int, dropout: float, act: str, pre_norm: bool) -> nn.Module:
    return nn.TransformerDecoderLayer(d, heads, ff, dropout, act, batch_first=True, norm_first=pre_norm)


LATENT_LAYOUTS = ("tokens", "temporal")


def check_layout(cfg: VAEConfig) -> None:
    """Raise unless ``cfg.latent_layout`` is known and, for ``"temporal"``, L divides F."""
    if cfg.latent_layout not in LATENT_LAYOUTS:
        raise ValueError(f"latent_layout must be one of {LATENT_LAYOUTS}, got {cfg.latent_layout!r}")
    if cfg.latent_layout == "temporal" and cfg.num_frames % cfg.latent_len:
        raise ValueError(
            f"latent_layout 'temporal' needs latent_len ({cfg.latent_len}) to divide "
            f"num_frames ({cfg.num_frames})"
        )


class MotionVAE(nn.Module):
    """x (B,F,nfeats) normalised pose features <-> z (B,L,D)."""

    def __init__(self, cfg: VAEConfig | str = "paper"):
        super().__init__()
        cfg = vae_config(cfg)
        check_layout(cfg)
        self.cfg = cfg
        D, L, F = cfg.latent_dim, cfg.latent_len, cfg.num_frames
        args = (D, cfg.num_heads, cfg.ff_dim, cfg.dropout, cfg.activation, cfg.normalize_before)
        self.skel_embedding = nn.Linear(cfg.nfeats, D)
        if cfg.latent_layout == "tokens":
            self.global_motion_token = nn.Parameter(torch.randn(2 * L, D))
            self.query_pos_encoder = LearnedPositionalEmbedding(2 * L + F, D)
        else:
            self.query_pos_encoder = LearnedPositionalEmbedding(F, D)
            self.mu_head, self.logvar_head = nn.Linear(D, D), nn.Linear(D, D)
        self.encoder = SkipTransformer(lambda: encoder_layer(*args), cfg.num_layers, D)
        self.query_pos_decoder = LearnedPositionalEmbedding(F, D)
        self.decoder = SkipTransformer(lambda: decoder_layer(*args), cfg.num_layers, D)
        self.final_layer = nn.Linear(D, cfg.nfeats)

    def _check(self, x: Tensor) -> None:
        c = self.cfg
        if x.ndim != 3 or x.shape[1] != c.num_frames or x.shape[2] != c.nfeats:
            raise ValueError(
                f"MotionVAE expects (B,{c.num_frames},{c.nfeats}) features, got {tuple(x.shape)}"
            )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B,F,nfeats) -> μ, log σ² each (B,L,D)."""
        self._check(x)
        c = self.cfg
        L = c.latent_len
        h = self.skel_embedding(x)
        if c.latent_layout == "temporal":
            h = self.encoder(self.query_pos_encoder(h))  # (B,F,D)
            h = h.reshape(h.shape[0], L, c.num_frames // L, -1).mean(2)  # chunk k -> token k
            return self.mu_head(h), self.logvar_head(h)
        tok = self.global_motion_token.expand(x.shape[0], -1, -1)
        h = self.encoder(self.query_pos_encoder(torch.cat([tok, h], dim=1)))
        return h[:, :L], h[:, L : 2 * L]

    def decode(self, z: Tensor) -> Tensor:
        """z (B,L,D) -> x̂ (B,F,nfeats)."""
        c = self.cfg
        if z.ndim != 3 or z.shape[1:] != (c.latent_len, c.latent_dim):
            raise ValueError(f"latent must be (B,{c.latent_len},{c.latent_dim}), got {tuple(z.shape)}")
        if c.latent_layout == "temporal":  # frame f's query starts from its chunk's latent token
            q = self.query_pos_decoder(z.repeat_interleave(c.num_frames // c.latent_len, dim=1))
        else:
            q = self.query_pos_decoder(z.new_zeros(z.shape[0], c.num_frames, c.latent_dim))
        return self.final_layer(self.decoder(q, memory=z))

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None, eps: Tensor | None = None
    ) -> Tensor:
        """z = μ + ε·σ (all (B,L,D)); ε ~ N(0, I) drawn here unless given (``eps``: drawn by the caller,
        e.g. for a whole global batch under DDP)."""
        if eps is None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, x: Tensor, sample: bool = True, eps: Tensor | None = None) -> dict[str, Tensor]:
        """x (B,F,nfeats) -> dict recon (B,F,nfeats), mu, logvar, z (B,L,D); ``eps`` (B,L,D): the
        reparameterisation noise (default: drawn from the global torch RNG)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps=eps) if sample else mu
        return {"recon": self.decode(z), "mu": mu, "logvar": logvar, "z": z}


def vae_loss(x: Tensor, out: dict[str, Tensor], kl_weight: float) -> dict[str, Tensor]:
    """MSE reconstruction + ``kl_weight`` · KL(N(μ,σ²) ‖ N(0,I)) (both means over elements)."""
    rec = torch.mean((out["recon"] - x) ** 2)
    mu, logvar = out["mu"], out["logvar"]
    kl = torch.mean(-0.5 * (1 + logvar - mu**2 - logvar.exp()))
    return {"loss": rec + kl_weight * kl, "rec": rec, "kl": kl}
