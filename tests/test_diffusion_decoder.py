"""Windowing and the one-step decoder (fasthmr_lib/diffusion/decoder.py)."""

from __future__ import annotations

import pytest
import roma
import torch

from fasthmr_lib.body.hybrik import FeatureStats, HybrIKBody
from fasthmr_lib.diffusion import decoder as D


def test_resample_linear_signal_roundtrip_exact():
    T, F = 37, 16
    t = torch.arange(T, dtype=torch.float64)
    x = torch.stack([2 * t + 1, -0.5 * t], 1)
    y = D.resample_time(x, F)
    torch.testing.assert_close(y[[0, -1]], x[[0, -1]])
    torch.testing.assert_close(D.resample_time(y, T), x)  # a linear-in-time signal survives T -> F -> T
    # a smooth signal comes back closely (short clip resampled up and back; end points exact)
    s = torch.sin(torch.linspace(0, 3, 10, dtype=torch.float64))[:, None]
    back = D.resample_time(D.resample_time(s, 243), 10)
    assert (back - s).abs().max() < 2e-3 and (back - s)[[0, -1]].abs().max() < 1e-12


def test_window_plan_cases():
    assert D.window_plan(10, 16) == [(0, 10)]
    assert D.window_plan(32, 16) == [(0, 16), (16, 32)]
    assert D.window_plan(40, 16) == [(0, 16), (16, 32), (24, 40)]
    assert D.window_plan(40, 16, tail="resample") == [(0, 16), (16, 32), (32, 40)]
    assert D.window_plan(40, 16, overlap=4) == [(0, 16), (12, 28), (24, 40)]
    with pytest.raises(ValueError, match="overlap"):
        D.window_plan(40, 16, overlap=16)
    with pytest.raises(ValueError, match="tail"):
        D.window_plan(40, 16, tail="pad")


@pytest.mark.parametrize(
    "T,overlap,tail",
    [(7, 0, "shift"), (16, 0, "shift"), (50, 0, "shift"), (50, 5, "shift"), (50, 3, "resample")],
)
def test_split_merge_roundtrip(T, overlap, tail):
    F = 16
    x = torch.randn(T, 5, dtype=torch.float64)
    plan = D.window_plan(T, F, overlap, tail)
    w = D.split_windows(x, F, plan)
    assert w.shape == (len(plan), F, 5)
    back = D.merge_windows(w, plan, T)
    short = [(a, b) for a, b in plan if b - a < F]  # resampled to F and back: end points exact
    full_end = short[0][0] if short else T
    torch.testing.assert_close(back[:full_end], x[:full_end])
    for a, b in short:
        torch.testing.assert_close(back[[a, b - 1]], x[[a, b - 1]])
    covered = torch.zeros(T, dtype=torch.bool)
    for a, b in plan:
        covered[a:b] = True
    assert covered.all()


def test_decoder_one_step_path(tiny_decoder):
    dec = tiny_decoder
    tokens, betas = torch.randn(40, 64), torch.randn(10)
    out = dec(tokens, betas, seed=3)
    assert out["rotmat"].shape == (40, 24, 3, 3) and out["body_pose"].shape == (40, 69)
    assert out["features"].shape == (40, 133)
    R = out["rotmat"]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)
    torch.testing.assert_close(roma.rotvec_to_rotmat(out["global_orient"]), R[:, 0], atol=1e-5, rtol=0)
    # deterministic for a seed
    torch.testing.assert_close(dec(tokens, betas, seed=3)["rotmat"], R)
    # the one-step latent is -v̂(z_T, 999, cond) / latent_scale, decoded by the VAE
    plan = D.window_plan(40, 16)
    cond = D.split_windows(tokens, 16, plan)
    noise = dec._noise(len(plan), 3)
    with torch.no_grad():
        z = -dec.denoiser(noise, torch.tensor(999), cond) / 2.0
        manual = dec.stats.unnormalize(dec.vae.decode(z))
    torch.testing.assert_close(dec.latents(cond, noise), z, atol=1e-6, rtol=0)
    from fasthmr_lib.body.hybrik import twist_unit

    torch.testing.assert_close(dec.decode_windows(cond, seed=3), twist_unit(manual), atol=1e-5, rtol=0)


def test_streaming_equals_batch(tiny_decoder):
    dec = tiny_decoder
    dec.tail = "resample"
    tokens, betas = torch.randn(45, 64), torch.randn(45, 10)
    ref = dec(tokens, betas, seed=1)
    st = dec.stream(seed=1)
    outs = [st.push(tokens[i : i + 7], betas[i : i + 7]) for i in range(0, 45, 7)]
    outs.append(st.flush())
    got = torch.cat([o["features"] for o in outs if o])
    assert got.shape == (45, 133)
    torch.testing.assert_close(got, ref["features"], atol=1e-5, rtol=0)
    rot = torch.cat([o["rotmat"] for o in outs if o])
    torch.testing.assert_close(rot, ref["rotmat"], atol=1e-3, rtol=0)  # IK of random-network joints


def test_decoder_checks_shapes(tiny_decoder, fake_body):
    with pytest.raises(ValueError, match="tokens must be"):
        tiny_decoder(torch.randn(10, 63), torch.zeros(10))
    with pytest.raises(ValueError, match="VAE features"):
        D.DiffusionDecoder(
            tiny_decoder.vae, tiny_decoder.denoiser, HybrIKBody.from_smpl(fake_body, representation="rot6d"),
            FeatureStats.identity(144),
        )  # fmt: skip


@pytest.fixture
def pose_decoder(tiny_decoder):
    """The tiny decoder with a denoiser whose condition is 64 token channels + 87 head-pose channels."""
    from fasthmr_lib.diffusion.denoiser import LatentDenoiser, denoiser_config

    torch.manual_seed(1)
    den = LatentDenoiser(denoiser_config("tiny", dropout=0.0, cond_dim=64 + 87, cond_pose_dims=87)).eval()
    t = tiny_decoder
    return D.DiffusionDecoder(t.vae, den, t.body, t.stats, latent_scale=2.0, tail="resample")


def test_decoder_with_head_pose_condition(pose_decoder):
    dec = pose_decoder
    assert (dec.cond_dim, dec.token_dim, dec.pose_dims) == (151, 64, 87)
    g = torch.Generator().manual_seed(0)
    tokens, betas = torch.randn(40, 64, generator=g), torch.randn(40, 10, generator=g) * 0.3
    rot = roma.rotvec_to_rotmat(0.3 * torch.randn(40, 24, 3, generator=g))
    with pytest.raises(ValueError, match="pass the head's rotmat"):
        dec(tokens, betas)
    with pytest.raises(ValueError, match="tokens must be"):
        dec(torch.randn(40, 151), betas, rotmat=rot)
    # the condition: the token, then the head's joints (the first 87 HybrIK features, z-normalised)
    cond = dec.condition(tokens, betas, rot)
    f = dec.stats.normalize(dec.body.encode(rot, betas))
    torch.testing.assert_close(cond, torch.cat([tokens, f[:, :87]], 1))
    out = dec(tokens, betas, seed=2, rotmat=rot)
    plan = D.window_plan(40, 16, 0, "resample")
    ref = D.merge_windows(dec.decode_windows(D.split_windows(cond, 16, plan), seed=2), plan, 40)
    torch.testing.assert_close(out["features"], D.twist_unit(ref), atol=1e-5, rtol=0)
    other = dec(tokens, betas, seed=2, rotmat=rot.flip(0))  # the head's pose is read
    assert (other["features"] - out["features"]).abs().max() > 1e-4
    # streaming with the head's pose equals the batch call
    st = dec.stream(seed=2)
    outs = [st.push(tokens[i : i + 9], betas[i : i + 9], rot[i : i + 9]) for i in range(0, 40, 9)]
    outs.append(st.flush())
    got = torch.cat([o["features"] for o in outs if o])
    torch.testing.assert_close(got, out["features"], atol=1e-5, rtol=0)
