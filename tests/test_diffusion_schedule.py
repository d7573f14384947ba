"""Diffusion schedule and objectives (fasthmr_lib/diffusion/schedule.py) against diffusers."""

from __future__ import annotations

import pytest
import torch

from fasthmr_lib.diffusion import schedule as S


def test_paper_scheduler_config():
    s = S.make_scheduler()
    c = s.config
    assert (c.num_train_timesteps, c.beta_start, c.beta_end, c.beta_schedule) == (
        1000,
        0.00085,
        0.012,
        "scaled_linear",
    )
    assert c.prediction_type == "v_prediction" and c.rescale_betas_zero_snr and not c.clip_sample
    assert s.alphas_cumprod[-1].item() == 0.0  # zero terminal SNR
    s.set_timesteps(1)
    assert s.timesteps.tolist() == [999]  # trailing spacing
    e = S.make_scheduler("eps")
    assert e.config.prediction_type == "epsilon" and e.alphas_cumprod[-1].item() == pytest.approx(
        0.0047, abs=2e-4
    )
    with pytest.raises(ValueError, match="objective"):
        S.make_scheduler("x0")


def test_one_step_returns_minus_v_hat_through_diffusers():
    s = S.make_scheduler()
    v_hat = torch.randn(3, 4, 8)
    seen = []

    def model(z, t):
        seen.append(int(t))
        return v_hat

    z0 = S.sample(model, (3, 4, 8), s, num_steps=1, generator=torch.Generator().manual_seed(0))
    assert seen == [999]
    torch.testing.assert_close(z0, -v_hat, atol=0, rtol=0)
    # more steps are available and call the model once per step
    seen.clear()
    S.sample(model, (3, 4, 8), s, num_steps=4)
    assert len(seen) == 4 and seen[0] == 999


def test_eps_from_v_and_x0_from_v_identities():
    s = S.make_scheduler()
    z0, noise = torch.randn(5, 3, 6), torch.randn(5, 3, 6)
    t = torch.tensor([0, 10, 500, 998, 999])
    z_t, v = S.noisy_and_targets(s, z0, noise, t)
    torch.testing.assert_close(S.eps_from_v(s, v, z_t, t), noise, atol=1e-5, rtol=0)
    torch.testing.assert_close(S.x0_from_v(s, v, z_t, t), z0, atol=1e-5, rtol=0)
    torch.testing.assert_close(v[-1], -z0[-1])  # t = T: v = -z0


@pytest.mark.parametrize("objective", S.OBJECTIVES)
def test_loss_zero_for_perfect_prediction_positive_otherwise(objective):
    s = S.make_scheduler(objective)
    z0, noise = torch.randn(4, 3, 6), torch.randn(4, 3, 6)
    t = torch.tensor([1, 200, 700, 990])
    z_t, v = S.noisy_and_targets(s, z0, noise, t)
    perfect = noise if objective == "eps" else v
    out = S.diffusion_loss(s, perfect, z_t, noise, v, t, objective)
    assert out["loss"].item() < 1e-9
    bad = S.diffusion_loss(s, perfect + 0.1, z_t, noise, v, t, objective)
    assert bad["loss"].item() > 1e-4


def test_hybrid_loss_is_sum_of_terms():
    s = S.make_scheduler()
    z0, noise = torch.randn(4, 3, 6), torch.randn(4, 3, 6)
    t = torch.tensor([3, 300, 600, 999])
    z_t, v = S.noisy_and_targets(s, z0, noise, t)
    v_hat = v + 0.3 * torch.randn_like(v)
    out = S.diffusion_loss(s, v_hat, z_t, noise, v, t, "v+eps")
    lv = ((v_hat - v) ** 2).mean()
    eps_hat = S.eps_from_v(s, v_hat, z_t, t)
    le = ((eps_hat - noise) ** 2).mean()
    torch.testing.assert_close(out["loss"], lv + le)
    torch.testing.assert_close(S.diffusion_loss(s, v_hat, z_t, noise, v, t, "v")["loss"], lv)
