"""The one-step diffusion decoder (paper §3.3, Fig. 4): per-frame head tokens -> smooth SMPL θ.

Data flow for a clip of T frames (head tokens (T, C) and the head's betas):

1. windows of F frames (paper: 243) — a clip shorter than F is resampled to F frames and back; a
   longer one is split into windows of stride F − overlap; the tail is either covered by a last window
   ending at frame T (``tail="shift"``, default) or resampled (``tail="resample"``); overlapping frames
   are blended with hat weights (docs/AMBIGUITIES.md #15: overlap and interpolation are not stated; linear
   interpolation of tokens in and features out);
2. one DDIM step from pure noise at t = T (trailing spacing) conditioned on the window's tokens (and,
   for a denoiser with ``cond_pose_dims`` > 0, the head's pose features: :func:`pose_condition`) ->
   ẑ0 = −v̂ (more steps optional);
3. VAE decoder -> normalised features -> unnormalise -> unit (cos, sin) twists;
4. HybrIK analytic IK with the head's β -> SMPL local rotations (global orientation first).

:class:`StreamingDecoder` does the same over frames pushed one chunk at a time (non-overlapping windows;
the tail is resampled when the stream is flushed).
"""

from __future__ import annotations

from pathlib import Path

import roma
import torch
from torch import Tensor, nn

from ..body.hybrik import FeatureStats, HybrIKBody, twist_unit
from ..body.smpl import per_frame_betas
from .denoiser import LatentDenoiser
from .schedule import make_scheduler, sample
from .vae import MotionVAE

TAILS = ("shift", "resample")


# ----------------------------------------------------------------------------------------------------
# condition


def pose_condition(body: HybrIKBody, stats: FeatureStats, rotmat: Tensor, betas: Tensor, dims: int) -> Tensor:
    """The head's pose as denoiser condition channels: rotmat (T,24,3,3) + betas (T,K) or (K,) -> the first
    ``dims`` z-normalised features (T, dims) (87: the 29 joints in metres; the twists are left out because
    the GT twists' spread is tiny, so a head's twists land far outside it after the normalisation)."""
    rotmat = torch.as_tensor(rotmat, dtype=torch.float32)
    if rotmat.ndim != 4 or rotmat.shape[1:] != (24, 3, 3):
        raise ValueError(f"rotmat must be (T,24,3,3) head rotations, got {tuple(rotmat.shape)}")
    T = rotmat.shape[0]
    dev = body.rest_template.device
    b = per_frame_betas(torch.as_tensor(betas, dtype=torch.float32), T)
    f = body.encode(rotmat.to(dev), b.to(dev)).cpu()
    return stats.normalize(f)[:, :dims]


def head_condition(
    body: HybrIKBody,
    stats: FeatureStats,
    tokens: Tensor,
    rotmat: Tensor | None,
    betas: Tensor,
    pose_dims: int,
) -> Tensor:
    """A clip's denoiser condition: head tokens (T,C), then (``pose_dims`` > 0) :func:`pose_condition` of the
    head's rotmat (T,24,3,3) and betas -> (T, C + pose_dims). The one place training and decoding build it."""
    tokens = torch.as_tensor(tokens, dtype=torch.float32)
    if not pose_dims:
        return tokens
    return torch.cat([tokens, pose_condition(body, stats, rotmat, betas, pose_dims)], 1)


# ----------------------------------------------------------------------------------------------------
# windowing (pure)


def resample_time(x: Tensor, n: int) -> Tensor:
    """Linear resampling along dim 0 with aligned end points: (T, ...) -> (n, ...)."""
    T = x.shape[0]
    if n < 1 or T < 1:
        raise ValueError(f"resample_time needs T >= 1 and n >= 1, got T={T}, n={n}")
    if T == n:
        return x.clone()
    if T == 1:
        return x.expand(n, *x.shape[1:]).clone()
    pos = torch.linspace(0, T - 1, n, dtype=torch.float64, device=x.device)
    i0 = pos.floor().long().clamp(max=T - 2)
    w = (pos - i0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return x[i0] * (1 - w) + x[i0 + 1] * w


def window_plan(T: int, F: int, overlap: int = 0, tail: str = "shift") -> list[tuple[int, int]]:
    """Frame ranges [start, stop) of the windows covering T frames with windows of F frames.

    T <= F: one (resampled) window. Else windows of stride F − overlap; the tail is covered by a window
    ending at T (``"shift"``) or by a shorter window resampled to F (``"resample"``)."""
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {TAILS}, got {tail!r}")
    if not 0 <= overlap < F:
        raise ValueError(f"overlap must be in [0, F={F}), got {overlap}")
    if T < 1:
        raise ValueError("a clip needs at least one frame")
    if T <= F:
        return [(0, T)]
    stride = F - overlap
    plan = [(s, s + F) for s in range(0, T - F + 1, stride)]
    if plan[-1][1] < T:
        plan.append((T - F, T) if tail == "shift" else (plan[-1][1] - overlap, T))
    return plan


def split_windows(x: Tensor, F: int, plan: list[tuple[int, int]]) -> Tensor:
    """(T, ...) -> (W, F, ...) following ``plan``; windows shorter than F are resampled to F."""
    return torch.stack([resample_time(x[a:b], F) for a, b in plan])


def merge_windows(y: Tensor, plan: list[tuple[int, int]], T: int) -> Tensor:
    """(W, F, ...) -> (T, ...): each window resampled back to its length, overlaps blended with hat
    weights min(k + 1, n − k)."""
    out = y.new_zeros(T, *y.shape[2:])
    wsum = y.new_zeros(T, *([1] * (y.ndim - 2)))
    for w, (a, b) in enumerate(plan):
        n = b - a
        seg = resample_time(y[w], n)
        k = torch.arange(n, device=y.device, dtype=y.dtype)
        hat = torch.minimum(k + 1, n - k).reshape(n, *([1] * (y.ndim - 2)))
        out[a:b] += seg * hat
        wsum[a:b] += hat
    return out / wsum


# ----------------------------------------------------------------------------------------------------
# decoder


class DiffusionDecoder(nn.Module):
    """Head tokens (T, C) + betas -> SMPL θ through the one-step latent diffusion decoder.

    Args:
        vae: trained :class:`MotionVAE` (its decoder is used).
        denoiser: trained :class:`LatentDenoiser` (works in scaled latent space ``z · latent_scale``).
        body: :class:`HybrIKBody` (representation must match the VAE's features).
        stats: normalisation of the features the VAE was trained on.
        objective: training objective of the denoiser (selects the scheduler, see ``schedule``).
        num_steps: DDIM steps (1 = the paper's one-step decoder).
    """

    def __init__(
        self,
        vae: MotionVAE,
        denoiser: LatentDenoiser,
        body: HybrIKBody,
        stats: FeatureStats,
        *,
        objective: str = "v+eps",
        latent_scale: float = 1.0,
        num_steps: int = 1,
        overlap: int = 0,
        tail: str = "shift",
        batch_size: int = 16,
    ):
        super().__init__()
        if vae.cfg.nfeats != body.dim:
            raise ValueError(
                f"VAE features ({vae.cfg.nfeats}) != body representation {body.representation!r} ({body.dim})"
            )
        if (denoiser.cfg.latent_len, denoiser.cfg.latent_dim, denoiser.cfg.num_frames) != (
            vae.cfg.latent_len,
            vae.cfg.latent_dim,
            vae.cfg.num_frames,
        ):
            raise ValueError(
                "denoiser latent/frames do not match the VAE's (latent_len, latent_dim, num_frames)"
            )
        self.vae, self.denoiser, self.body, self.stats = vae, denoiser, body, stats
        self.objective = objective
        self.scheduler = make_scheduler(objective)
        self.latent_scale = float(latent_scale)
        self.num_steps, self.overlap, self.tail, self.batch_size = num_steps, overlap, tail, batch_size

    @property
    def num_frames(self) -> int:
        return self.vae.cfg.num_frames

    @property
    def cond_dim(self) -> int:
        """Width of the denoiser's condition per frame (head token + pose channels)."""
        return self.denoiser.cfg.cond_dim

    @property
    def pose_dims(self) -> int:
        """Condition channels that are the head's pose features (0: tokens only, the paper's decoder)."""
        return self.denoiser.cfg.cond_pose_dims

    @property
    def token_dim(self) -> int:
        """Width of the head token the decoder takes."""
        return self.cond_dim - self.pose_dims

    def condition(self, tokens: Tensor, betas: Tensor, rotmat: Tensor | None = None) -> Tensor:
        """tokens (T, token_dim) [+ the head's rotmat (T,24,3,3) and betas when ``pose_dims`` > 0] -> the
        denoiser's condition (T, cond_dim)."""
        tokens = torch.as_tensor(tokens, dtype=torch.float32)
        if tokens.ndim != 2 or tokens.shape[1] != self.token_dim:
            raise ValueError(f"tokens must be (T,{self.token_dim}) head tokens, got {tuple(tokens.shape)}")
        if not self.pose_dims:
            return tokens
        if rotmat is None:
            raise ValueError(
                f"this decoder is conditioned on the head's pose too ({self.pose_dims} channels): pass the "
                "head's rotmat (T,24,3,3)"
            )
        if len(rotmat) != len(tokens):
            raise ValueError(f"rotmat has {len(rotmat)} frames, tokens {len(tokens)}")
        return head_condition(self.body, self.stats, tokens, rotmat, betas, self.pose_dims)

    def _noise(self, n_windows: int, seed: int, first_window: int = 0) -> Tensor:
        c = self.vae.cfg
        out = []
        for w in range(first_window, first_window + n_windows):
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + w)
            out.append(torch.randn((c.latent_len, c.latent_dim), generator=g))
        return torch.stack(out)

    @torch.no_grad()
    def latents(self, cond: Tensor, noise: Tensor) -> Tensor:
        """cond (W,F,C) head tokens, noise (W,L,D) -> VAE latents ẑ0 (W,L,D)."""
        dev = next(self.denoiser.parameters()).device
        outs = []
        for i in range(0, cond.shape[0], self.batch_size):
            c = cond[i : i + self.batch_size].to(dev)
            z = sample(
                lambda z, t, c=c: self.denoiser(z, t, c),
                tuple(noise[i : i + self.batch_size].shape),
                self.scheduler,
                self.num_steps,
                device=dev,
                noise=noise[i : i + self.batch_size].to(dev),
            )
            outs.append(z / self.latent_scale)
        return torch.cat(outs)

    @torch.no_grad()
    def decode_windows(self, cond: Tensor, seed: int = 0, first_window: int = 0) -> Tensor:
        """cond (W,F,C) -> unnormalised features (W,F,dim) (twists on the unit circle)."""
        if cond.ndim != 3 or cond.shape[1:] != (self.num_frames, self.cond_dim):
            raise ValueError(f"cond must be (W,{self.num_frames},{self.cond_dim}), got {tuple(cond.shape)}")
        z = self.latents(cond, self._noise(cond.shape[0], seed, first_window))
        feats = torch.cat(
            [self.vae.decode(z[i : i + self.batch_size]) for i in range(0, len(z), self.batch_size)]
        )
        feats = self.stats.unnormalize(feats.cpu())
        return twist_unit(feats) if self.body.representation == "hybrik" else feats

    @torch.no_grad()
    def features_to_pose(self, feats: Tensor, betas: Tensor) -> dict[str, Tensor]:
        """feats (T,dim) + betas (T,K) or (K,) -> rotmat (T,24,3,3), global_orient (T,3), body_pose (T,69)."""
        T = feats.shape[0]
        betas = per_frame_betas(betas, T)
        dev = self.body.rest_template.device
        R = self.body.decode(feats.to(dev), betas.to(dev)).cpu()
        aa = roma.rotmat_to_rotvec(R)
        return {
            "rotmat": R,
            "global_orient": aa[:, 0],
            "body_pose": aa[:, 1:].reshape(T, 69),
            "features": feats,
        }

    @torch.no_grad()
    def forward(
        self, tokens: Tensor, betas: Tensor, seed: int = 0, rotmat: Tensor | None = None
    ) -> dict[str, Tensor]:
        """tokens (T,C) per-frame head tokens, betas (T,K) or (K,), and for a decoder with ``pose_dims`` > 0
        the head's rotmat (T,24,3,3) -> dict (see :meth:`features_to_pose`)."""
        cond = self.condition(tokens, betas, rotmat)
        T, F = cond.shape[0], self.num_frames
        plan = window_plan(T, F, self.overlap, self.tail)
        feats = merge_windows(self.decode_windows(split_windows(cond, F, plan), seed), plan, T)
        if self.body.representation == "hybrik":
            feats = twist_unit(feats)
        return self.features_to_pose(feats, torch.as_tensor(betas, dtype=torch.float32))

    def stream(self, seed: int = 0) -> StreamingDecoder:
        return StreamingDecoder(self, seed)

    @classmethod
    def from_checkpoints(
        cls, vae_dir: str | Path, denoiser_dir: str | Path, body_model: nn.Module, **kw
    ) -> DiffusionDecoder:
        """Load a trained pair (see :mod:`fasthmr_lib.diffusion.training`) onto an SMPL body model."""
        from .training import load_denoiser, load_vae

        vae, stats, vmeta = load_vae(vae_dir)
        den, dmeta = load_denoiser(denoiser_dir)
        body = HybrIKBody.from_smpl(
            body_model, leaf_ids=tuple(vmeta["leaf_ids"]), representation=vmeta["representation"]
        )
        kw.setdefault("objective", dmeta["objective"])
        kw.setdefault("latent_scale", dmeta["latent_scale"])
        return cls(vae.eval(), den.eval(), body, stats, **kw)


@torch.no_grad()
def reconstruct_features(
    vae: MotionVAE, stats: FeatureStats, feats: Tensor, *, overlap: int = 0, tail: str = "shift"
) -> Tensor:
    """VAE round trip of one clip (paper Table 3's reconstruction): unnormalised features (T,dim) ->
    windows -> μ -> decoder -> (T,dim) unnormalised (unit twists for the 133-d representation)."""
    F = vae.cfg.num_frames
    T = feats.shape[0]
    plan = window_plan(T, F, overlap, tail)
    dev = next(vae.parameters()).device
    x = stats.normalize(split_windows(torch.as_tensor(feats, dtype=torch.float32), F, plan)).to(dev)
    rec = stats.unnormalize(vae.decode(vae.encode(x)[0]).cpu())
    out = merge_windows(rec, plan, T)
    return twist_unit(out) if out.shape[-1] == 133 else out


class StreamingDecoder:
    """Push head tokens as they arrive; get poses back once a window of F frames is complete.

    ``push(tokens (n,C), betas (n,K)[, rotmat (n,24,3,3)])`` returns the decoded frames (dict as the
    decoder's forward, possibly with 0 frames; ``rotmat``: the head's, for a decoder with ``pose_dims``);
    ``flush()`` decodes the remaining < F frames (resampled to F and back). Latency: F frames. Windows are
    non-overlapping and seeded like the batch decoder with ``overlap=0, tail="resample"``, so the
    concatenated output equals that call's.
    """

    def __init__(self, decoder: DiffusionDecoder, seed: int = 0):
        self.decoder, self.seed = decoder, seed
        self._tok: list[Tensor] = []
        self._bet: list[Tensor] = []
        self._window = 0

    def _pending(self) -> int:
        return sum(t.shape[0] for t in self._tok)

    def _decode(self, n: int) -> dict[str, Tensor]:
        tok, bet = torch.cat(self._tok), torch.cat(self._bet)
        self._tok, self._bet = [tok[n:]], [bet[n:]]
        F = self.decoder.num_frames
        feats = self.decoder.decode_windows(resample_time(tok[:n], F)[None], self.seed, self._window)[0]
        self._window += 1
        feats = resample_time(feats, n)
        if self.decoder.body.representation == "hybrik":
            feats = twist_unit(feats)
        return self.decoder.features_to_pose(feats, bet[:n])

    def push(self, tokens: Tensor, betas: Tensor, rotmat: Tensor | None = None) -> dict[str, Tensor]:
        tokens = torch.as_tensor(tokens, dtype=torch.float32).reshape(-1, self.decoder.token_dim)
        betas = per_frame_betas(torch.as_tensor(betas, dtype=torch.float32), tokens.shape[0])
        self._tok.append(self.decoder.condition(tokens, betas, rotmat))
        self._bet.append(betas)
        F = self.decoder.num_frames
        outs = []
        while self._pending() >= F:
            outs.append(self._decode(F))
        return _cat(outs)

    def flush(self) -> dict[str, Tensor]:
        n = self._pending()
        return self._decode(n) if n else _cat([])


def _cat(outs: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    if not outs:
        return {}
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
