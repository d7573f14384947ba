"""Noise schedule, training objective and sampling for the latent denoiser (paper §3.3, Table 13, Eq. 5–6).

The scheduler is diffusers' ``DDIMScheduler`` configured as the paper: 1000 training steps,
scaled-linear β from 0.00085 to 0.012 (MLD's settings), ``clip_sample=False``, zero-terminal-SNR
rescale (Lin et al. 2024: ᾱ_T = 0), v-prediction, and "trailing" timestep spacing so that a one-step
sampler uses t = T − 1 = 999 (checked: ``step(v, 999, z).pred_original_sample == -v``).

Objectives (Table 5 ablation):

* ``"v+eps"`` (paper Eq. 6): the network predicts v̂; loss ‖v̂ − v‖² + ‖ε̂ − ε‖² with
  ε̂ = √ᾱ_t v̂ + √(1−ᾱ_t) z_t (Eq. 5 rearranged: z_t = √ᾱ z0 + √(1−ᾱ) ε, v = √ᾱ ε − √(1−ᾱ) z0);
* ``"v"``: ‖v̂ − v‖² only;
* ``"eps"``: the network predicts ε̂, loss ‖ε̂ − ε‖². With ᾱ_T = 0 an ε-model cannot give z0 at t = T
  (x0 = (z − √(1−ᾱ)ε̂)/√ᾱ divides by 0), so this objective uses the same schedule *without* the
  zero-SNR rescale (ᾱ_999 ≈ 0.0047) — our choice; the paper does not say how its ε row was sampled.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler
from torch import Tensor

OBJECTIVES = ("v+eps", "v", "eps")
PAPER_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
    set_alpha_to_one=False,
    steps_offset=0,
)


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


def make_scheduler(objective: str = "v+eps", **overrides) -> DDIMScheduler:
    """The paper's DDIM scheduler for an objective (see module docstring); ``overrides`` go to diffusers."""
    _check_objective(objective)
    cfg = dict(PAPER_SCHEDULER)
    if objective == "eps":
        cfg.update(prediction_type="epsilon", rescale_betas_zero_snr=False)
    cfg.update(overrides)
    return DDIMScheduler(**cfg)


def _abar(scheduler: DDIMScheduler, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    ac = scheduler.alphas_cumprod.to(like.device, torch.float64)[t.to(like.device)]
    shape = (-1,) + (1,) * (like.ndim - 1)
    return ac.sqrt().reshape(shape).to(like.dtype), (1 - ac).sqrt().reshape(shape).to(like.dtype)


def noisy_and_targets(
    scheduler: DDIMScheduler, z0: Tensor, noise: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """z_t = √ᾱ z0 + √(1−ᾱ) ε and v = √ᾱ ε − √(1−ᾱ) z0 (diffusers ``add_noise``/``get_velocity``);
    z0, noise (B,...), t (B,) int."""
    return scheduler.add_noise(z0, noise, t), scheduler.get_velocity(z0, noise, t)


def eps_from_v(scheduler: DDIMScheduler, v_hat: Tensor, z_t: Tensor, t: Tensor) -> Tensor:
    """ε̂ = √ᾱ_t v̂ + √(1−ᾱ_t) z_t (paper Eq. 5)."""
    a, s = _abar(scheduler, t, z_t)
    return a * v_hat + s * z_t


def x0_from_v(scheduler: DDIMScheduler, v_hat: Tensor, z_t: Tensor, t: Tensor) -> Tensor:
    """ẑ0 = √ᾱ_t z_t − √(1−ᾱ_t) v̂ (= −v̂ at t = T with zero terminal SNR)."""
    a, s = _abar(scheduler, t, z_t)
    return a * z_t - s * v_hat


def diffusion_loss(
    scheduler: DDIMScheduler,
    model_out: Tensor,
    z_t: Tensor,
    noise: Tensor,
    v: Tensor,
    t: Tensor,
    objective: str = "v+eps",
    weights: tuple[float, float] = (1.0, 1.0),
) -> dict[str, Tensor]:
    """Loss for one batch (means over elements). ``model_out`` is v̂ (objectives "v", "v+eps") or ε̂ ("eps").
    Returns ``loss`` plus the ``v`` and ``eps`` terms for logging (the ε term derived from v̂ for v-models,
    the v term derived from ε̂ for the ε-model)."""
    _check_objective(objective)
    a, s = _abar(scheduler, t, z_t)
    if objective == "eps":
        eps_hat = model_out
        z0_hat = (z_t - s * eps_hat) / a.clamp_min(1e-8)
        v_hat = a * eps_hat - s * z0_hat
    else:
        v_hat = model_out
        eps_hat = a * v_hat + s * z_t
    lv = torch.mean((v_hat - v) ** 2)
    le = torch.mean((eps_hat - noise) ** 2)
    if objective == "v+eps":
        loss = weights[0] * lv + weights[1] * le
    elif objective == "v":
        loss = lv
    else:
        loss = le
    return {"loss": loss, "v": lv.detach(), "eps": le.detach()}


@torch.no_grad()
def sample(
    model_fn: Callable[[Tensor, Tensor], Tensor],
    shape: tuple[int, ...],
    scheduler: DDIMScheduler,
    num_steps: int = 1,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    noise: Tensor | None = None,
) -> Tensor:
    """DDIM sampling from pure noise; returns ẑ0 (the last step's ``pred_original_sample``).

    ``model_fn(z_t, t)`` returns the network output (v̂ or ε̂, matching ``scheduler.config.prediction_type``).
    With ``num_steps=1`` and trailing spacing this is the paper's one-step decoder: t = 999, ẑ0 = −v̂.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    scheduler.set_timesteps(num_steps, device=device)
    z = noise if noise is not None else torch.randn(shape, generator=generator, dtype=dtype).to(device)
    z0 = z
    for t in scheduler.timesteps:
        out = model_fn(z, t)
        res = scheduler.step(out, t, z, eta=0.0)
        z, z0 = res.prev_sample, res.pred_original_sample
    return z0
