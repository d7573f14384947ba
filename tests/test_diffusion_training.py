"""Training of the diffusion decoder (fasthmr_lib/diffusion/training.py): data windows, augmentation,
checkpoints, and resuming an interrupted run with identical results."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
import roma
import torch

from fasthmr_lib.body.hybrik import HybrIKBody
from fasthmr_lib.diffusion import training as TR
from fasthmr_lib.diffusion.decoder import DiffusionDecoder


@pytest.fixture
def hb(fake_body):
    return HybrIKBody.from_smpl(fake_body)


@pytest.fixture(scope="module")
def motion():
    return TR.procedural_motion(3, n_frames=40, seed=0, kinds=("walk", "wave", "squat"))


def test_window_positions_properties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = TR.window_positions(rng, 100, 16, p_reverse=0.5, p_warp=0.5)
        assert p.shape == (16,) and p.min() >= 0 and p.max() <= 99
        d = np.diff(p)
        assert (d > 0).all() or (d < 0).all()  # monotonic (forward or reversed)
    p = TR.window_positions(rng, 8, 16, 0.0, 0.0)  # short clip: resampled over the whole clip
    np.testing.assert_allclose(p, np.linspace(0, 7, 16))
    p = TR.window_positions(np.random.default_rng(1), 8, 16, 1.0, 0.0)
    np.testing.assert_allclose(p, np.linspace(7, 0, 16))
    x = torch.arange(10.0)[:, None]
    torch.testing.assert_close(
        TR.gather_positions(x, np.array([0.5, 3.25, 9.0])), torch.tensor([[0.5], [3.25], [9.0]])
    )


def test_rotate_features_matches_rotated_global_orient(hb, motion):
    c = motion[0]
    f = TR.clips_to_features([c], hb)[0]
    assert f.shape == (40, 133)
    R = TR.view_rotation(np.random.default_rng(3))
    torch.testing.assert_close(R @ R.T, torch.eye(3), atol=1e-6, rtol=0)
    go = roma.rotmat_to_rotvec(R @ roma.rotvec_to_rotmat(torch.as_tensor(c["global_orient"])))
    f2 = TR.clips_to_features([dict(c, global_orient=go.numpy())], hb)[0]
    torch.testing.assert_close(TR.rotate_features(f, R), f2, atol=1e-5, rtol=0)


def _vae_cfg(**kw):
    base = dict(
        preset="tiny", steps=6, batch_size=4, lr=1e-3, ckpt_every=3, seed=1, p_reverse=0.5, p_warp=0.5
    )
    return TR.VAETrainConfig(**(base | kw))


def test_vae_resume_identical(hb, motion, tmp_path):
    feats = TR.clips_to_features(motion, hb)
    full, _, r_full = TR.train_vae(feats, hb, _vae_cfg(), tmp_path / "full", progress=False)
    assert r_full.complete and r_full.step == 6
    part, _, r1 = TR.train_vae(feats, hb, _vae_cfg(stop_after=3), tmp_path / "part", progress=False)
    assert (r1.step, r1.complete) == (3, False)
    assert TR.read_json(tmp_path / "part" / "config.json")["step"] == 3
    resumed, _, r2 = TR.train_vae(feats, hb, _vae_cfg(), tmp_path / "part", progress=False)
    assert (r2.step, r2.complete) == (6, True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=k)
    h1 = pd.read_csv(tmp_path / "full" / "loss_history.csv")
    h2 = pd.read_csv(tmp_path / "part" / "loss_history.csv")
    pd.testing.assert_frame_equal(h1, h2)
    assert list(h1["step"]) == [1, 2, 3, 4, 5, 6] and {"loss", "rec", "kl"} <= set(h1.columns)
    # a different config refuses to resume into the same folder
    with pytest.raises(ValueError, match="different configuration"):
        TR.train_vae(feats, hb, _vae_cfg(lr=5e-4), tmp_path / "part", progress=False)
    # reload the export
    vae, stats, meta = TR.load_vae(tmp_path / "full")
    assert meta["representation"] == "hybrik" and meta["leaf_ids"] == list(hb.leaf_ids) and meta["complete"]
    for a, b in zip(full.state_dict().values(), vae.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_denoiser_training_resume_and_decoder_load(fake_body, hb, motion, tmp_path):
    feats = TR.clips_to_features(motion, hb)
    vae, stats, _ = TR.train_vae(feats, hb, _vae_cfg(steps=3), tmp_path / "vae", progress=False)
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(f.shape[0], 64, generator=g), f) for f in feats]
    base = dict(preset="tiny", steps=4, batch_size=3, ckpt_every=2, seed=2, lr=1e-3, p_terminal=0.3)
    den_full, scale, r = TR.train_denoiser(
        pairs, vae, stats, TR.DenoiserTrainConfig(**base), tmp_path / "d1", progress=False
    )
    assert r.complete and scale > 0
    TR.train_denoiser(
        pairs, vae, stats, TR.DenoiserTrainConfig(**base, stop_after=2), tmp_path / "d2", progress=False
    )
    den_res, scale2, r2 = TR.train_denoiser(
        pairs, vae, stats, TR.DenoiserTrainConfig(**base), tmp_path / "d2", progress=False
    )
    assert r2.step == 4 and scale2 == scale
    for a, b in zip(den_full.state_dict().values(), den_res.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    meta = TR.read_json(tmp_path / "d1" / "config.json")
    assert meta["objective"] == "v+eps" and meta["scheduler"]["rescale_betas_zero_snr"]
    dec = DiffusionDecoder.from_checkpoints(tmp_path / "vae", tmp_path / "d1", fake_body)
    out = dec(pairs[0][0], torch.zeros(10))
    assert out["rotmat"].shape == (40, 24, 3, 3) and torch.isfinite(out["rotmat"]).all()
    # a decoder folder records which head tokens (baseline) its denoiser was trained on (notebook 04's reuse)
    ship = tmp_path / "ship"
    shutil.copytree(tmp_path / "vae", ship / "vae")
    assert TR.shipped_decoder_condition(ship) is None  # no denoiser yet
    cfg = TR.DenoiserTrainConfig(**base, condition="abc123", stop_after=2)
    TR.train_denoiser(pairs, vae, stats, cfg, ship / "denoiser", progress=False)
    assert TR.shipped_decoder_condition(ship) is None  # incomplete
    cfg = dataclasses.replace(cfg, stop_after=None)
    TR.train_denoiser(pairs, vae, stats, cfg, ship / "denoiser", progress=False)
    assert TR.shipped_decoder_condition(ship) == "abc123"
    shutil.copytree(tmp_path / "d1", ship / "old" / "denoiser")
    shutil.copytree(tmp_path / "vae", ship / "old" / "vae")
    assert TR.shipped_decoder_condition(ship / "old") == ""  # trained without a recorded condition
    assert TR.decoder_for([ship / "old", ship], "abc123") == ship and TR.decoder_for([ship], "zzz") is None
    with pytest.raises(ValueError, match="different configuration.*condition"):  # another baseline's run
        TR.train_denoiser(pairs, vae, stats, dataclasses.replace(cfg, condition="zzz"), ship / "denoiser")
    # a run saved before a config field existed: the field counts as its default there
    state_file = tmp_path / "d1" / "train_state.pt"
    st = torch.load(state_file, weights_only=True)
    del st["config"]["condition"]
    torch.save(st, state_file)
    TR.train_denoiser(pairs, vae, stats, TR.DenoiserTrainConfig(**base), tmp_path / "d1", progress=False)
    with pytest.raises(ValueError, match="different configuration.*condition"):
        TR.train_denoiser(pairs, vae, stats, cfg, tmp_path / "d1", progress=False)
    with pytest.raises(FileNotFoundError, match="config.json"):
        TR.load_vae(tmp_path / "nothing")
    with pytest.raises(ValueError, match="format"):
        TR.load_vae(tmp_path / "d1")


def test_denoiser_condition_noise_is_seeded_resumable_and_off_by_default(hb, motion, tmp_path):
    """cond_noise (the regulariser against memorising the training clips' tokens): 0 by default; when on,
    the same seed gives the same weights, an interrupted run resumes to them exactly, and the weights
    differ from the run without it."""
    assert TR.DenoiserTrainConfig().cond_noise == 0.0
    feats = TR.clips_to_features(motion, hb)
    vae, stats, _ = TR.train_vae(feats, hb, _vae_cfg(steps=2), tmp_path / "vae", progress=False)
    g = torch.Generator().manual_seed(1)
    pairs = [(torch.randn(f.shape[0], 64, generator=g), f) for f in feats]
    base = dict(preset="tiny", steps=4, batch_size=3, ckpt_every=2, seed=5, lr=1e-3)

    def run(name, **kw):
        cfg = TR.DenoiserTrainConfig(**(base | kw))
        return TR.train_denoiser(pairs, vae, stats, cfg, tmp_path / name, progress=False)[0].state_dict()

    off, on, again = run("off"), run("on", cond_noise=0.5), run("again", cond_noise=0.5)
    run("resumed", cond_noise=0.5, stop_after=2)
    resumed = run("resumed", cond_noise=0.5)
    for k in on:
        torch.testing.assert_close(on[k], again[k], atol=0, rtol=0)
        torch.testing.assert_close(on[k], resumed[k], atol=0, rtol=0)
    assert any(not torch.equal(on[k], off[k]) for k in on)
    meta = TR.read_json(tmp_path / "on" / "config.json")
    assert meta["train"]["cond_noise"] == 0.5


def test_temporal_vae_and_pooled_denoiser_train_save_and_load(fake_body, hb, motion, tmp_path):
    """The temporal latent layout and the pooled condition go through both stages, their configs are saved
    and the decoder loads them; pooling follows the VAE's layout unless set; a pooled denoiser on a
    token-layout VAE is refused."""
    feats = TR.clips_to_features(motion, hb)
    vcfg = dataclasses.replace(_vae_cfg(steps=2), overrides={"latent_layout": "temporal"})
    vae, stats, _ = TR.train_vae(feats, hb, vcfg, tmp_path / "vae", progress=False)
    assert vae.cfg.latent_layout == "temporal"
    assert TR.read_json(tmp_path / "vae" / "config.json")["vae"]["latent_layout"] == "temporal"
    g = torch.Generator().manual_seed(1)
    pairs = [(torch.randn(f.shape[0], 64, generator=g), f) for f in feats]
    dcfg = TR.DenoiserTrainConfig(
        preset="tiny", steps=2, batch_size=3, ckpt_every=2, seed=5, overrides={"cond_pool": True}
    )
    TR.train_denoiser(pairs, vae, stats, dcfg, tmp_path / "den", progress=False)
    dec = DiffusionDecoder.from_checkpoints(tmp_path / "vae", tmp_path / "den", fake_body)
    assert dec.vae.cfg.latent_layout == "temporal" and dec.denoiser.cfg.cond_pool
    out = dec(pairs[0][0], torch.zeros(10), seed=0)
    assert out["rotmat"].shape == (feats[0].shape[0], 24, 3, 3) and torch.isfinite(out["rotmat"]).all()
    tok_vae, tok_stats, _ = TR.train_vae(feats, hb, _vae_cfg(steps=1), tmp_path / "vae_tok", progress=False)
    with pytest.raises(ValueError, match="latent_layout='temporal'"):
        TR.train_denoiser(pairs, tok_vae, tok_stats, dcfg, tmp_path / "den_tok", progress=False)
    # not set: on for the temporal VAE, off for the token one (the small preset's cond_pool=True included)
    for v, s, want in ((vae, stats, True), (tok_vae, tok_stats, False)):
        for preset in ("tiny", "small"):
            cfg = dataclasses.replace(dcfg, preset=preset, overrides={}, steps=1)
            den = TR.train_denoiser(pairs, v, s, cfg, tmp_path / f"d_{want}_{preset}", progress=False)[0]
            assert den.cfg.cond_pool is want, (preset, want)
    off = dataclasses.replace(dcfg, overrides={"cond_pool": False}, steps=1)
    assert not TR.train_denoiser(pairs, vae, stats, off, tmp_path / "d_off", progress=False)[0].cfg.cond_pool
    # the saved run records the resolved pooling: a run saved with it explicit resumes under the default
    assert TR.read_json(tmp_path / "d_True_tiny" / "config.json")["train"]["overrides"] == {"cond_pool": True}
    two = dataclasses.replace(dcfg, steps=2)
    TR.train_denoiser(pairs, vae, stats, dataclasses.replace(two, stop_after=1), tmp_path / "d_res")
    r = TR.train_denoiser(pairs, vae, stats, dataclasses.replace(two, overrides={}), tmp_path / "d_res")
    assert r[2].complete and r[2].step == 2
    # a run saved before the pooling was recorded (overrides without cond_pool: its preset's value) resumes
    # when that matches the VAE's default, and is refused when it does not
    small = dataclasses.replace(two, preset="small", overrides={})
    for name, v, s in (("old_t", vae, stats), ("old_tok", tok_vae, tok_stats)):
        TR.train_denoiser(pairs, v, s, dataclasses.replace(small, stop_after=1), tmp_path / name)
        st = torch.load(tmp_path / name / "train_state.pt", weights_only=True)
        st["config"]["overrides"] = {}  # as saved before: the small preset pooled (cond_pool=True)
        torch.save(st, tmp_path / name / "train_state.pt")
    assert TR.train_denoiser(pairs, vae, stats, small, tmp_path / "old_t")[2].complete
    with pytest.raises(ValueError, match="different configuration.*overrides"):
        TR.train_denoiser(pairs, tok_vae, tok_stats, small, tmp_path / "old_tok")


def test_token_noise_skips_the_head_pose_channels():
    g = torch.Generator().manual_seed(0)
    toks = [torch.randn(30, 6, generator=g) * torch.arange(1.0, 7.0), torch.randn(20, 6, generator=g)]
    assert TR.token_noise_std(toks, 0.0) is None
    full = TR.token_noise_std(toks, 1.0)
    torch.testing.assert_close(full, torch.cat(toks).std(0))
    part = TR.token_noise_std(toks, 1.0, pose_dims=2)
    torch.testing.assert_close(part[:4], full[:4])
    assert part[4:].eq(0).all() and full[4:].gt(0).all()


def test_extract_head_tokens_groups_and_orders():
    class Frames(torch.utils.data.Dataset):
        items = [("b", 1), ("a", 2), ("a", 0), ("b", 0), ("a", 1)]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            cid, fr = self.items[i]
            img = torch.full((3, 4, 4), float(fr) + (10 if cid == "b" else 0))
            return {"img": img, "person_mask": torch.ones(4, 4), "clip_id": cid, "frame": fr}

    calls = []

    def model(img, mask=None):
        calls.append(mask is not None)
        v = img.mean((1, 2, 3))
        return {"head_token": torch.stack([v, 2 * v], 1), "betas": v[:, None].expand(-1, 10)}

    out = TR.extract_head_tokens(model, Frames(), batch_size=2, progress=False)
    assert sorted(out) == ["a", "b"] and all(calls)
    np.testing.assert_allclose(out["a"]["tokens"][:, 0], [0, 1, 2])
    np.testing.assert_allclose(out["b"]["tokens"][:, 1], [20, 22])
    assert out["a"]["betas"].shape == (3, 10) and list(out["a"]["frames"]) == [0, 1, 2]
    out2 = TR.extract_head_tokens(lambda img: img.mean((2, 3)), Frames(), use_mask=False, progress=False)
    assert out2["a"]["tokens"].shape == (3, 3) and "betas" not in out2["a"]


def test_loop_precision_bf16_autocasts_and_fp16_is_refused(hb, motion, tmp_path):
    feats = TR.clips_to_features(motion, hb)
    cfg = dict(steps=2, ckpt_every=2, p_reverse=0.0, p_warp=0.0)
    _, _, r32 = TR.train_vae(feats, hb, _vae_cfg(**cfg), tmp_path / "fp32", progress=False)
    _, _, r16 = TR.train_vae(feats, hb, _vae_cfg(**cfg, precision="bf16"), tmp_path / "bf16", progress=False)
    h32, h16 = r32.history["loss"].to_numpy(), r16.history["loss"].to_numpy()
    assert np.isfinite(h16).all() and not np.array_equal(h32, h16)  # the forward ran in bf16
    np.testing.assert_allclose(h16, h32, rtol=0.05)
    with pytest.raises(ValueError, match="fp32 or bf16"):
        TR.train_vae(feats, hb, _vae_cfg(**cfg, precision="fp16"), tmp_path / "fp16", progress=False)


def test_cosine_lr_schedule_values_and_bad_name():
    cfg = TR.DenoiserTrainConfig(steps=10, lr=2e-3, lr_schedule="cosine")
    got = [TR.lr_at(cfg, s) for s in (0, 5, 10)]
    np.testing.assert_allclose(got, [2e-3, 1e-3, 0.0], atol=1e-12)
    assert TR.lr_at(dataclasses.replace(cfg, lr_schedule="constant"), 7) == 2e-3
    with pytest.raises(ValueError, match="lr_schedule"):
        TR.lr_at(dataclasses.replace(cfg, lr_schedule="linear"), 0)


def test_ema_export_is_the_moving_average_and_resumes_exactly(hb, motion, tmp_path):
    """ema_decay > 0: the exported (and returned) weights after 2 steps are d w1 + (1 - d) w2 with timm's
    warm-up decay d = 1 - 2^(-2/3) at the 2nd update (the 1st copies w1); the trained weights are unchanged
    by the EMA; an interrupted run resumes to the same EMA; a bad lr_schedule fails before training."""
    feats = TR.clips_to_features(motion, hb)
    vae, stats, _ = TR.train_vae(feats, hb, _vae_cfg(steps=2), tmp_path / "vae", progress=False)
    g = torch.Generator().manual_seed(3)
    pairs = [(torch.randn(f.shape[0], 64, generator=g), f) for f in feats]
    base = dict(preset="tiny", steps=2, batch_size=3, ckpt_every=1, seed=4, lr=1e-2, lr_schedule="cosine")

    def run(name, **kw):
        cfg = TR.DenoiserTrainConfig(**(base | kw))
        return TR.train_denoiser(pairs, vae, stats, cfg, tmp_path / name, progress=False)[0].state_dict()

    w1 = {k: v.clone() for k, v in run("raw1", steps=2, stop_after=1).items()}
    w2 = run("raw2")
    ema = run("ema", ema_decay=0.9)
    d = 1 - 2 ** (-2 / 3)
    for k in w2:
        if w2[k].is_floating_point():
            torch.testing.assert_close(ema[k], d * w1[k] + (1 - d) * w2[k], rtol=1e-5, atol=1e-6, msg=k)
    assert any(not torch.equal(ema[k], w2[k]) for k in w2)
    st = torch.load(tmp_path / "ema" / "train_state.pt", weights_only=True)
    for k in w2:  # the trained weights are the run without EMA's
        torch.testing.assert_close(st["model"][k], w2[k], atol=0, rtol=0)
    exported = TR.load_file(str(tmp_path / "ema" / "model.safetensors"))
    weights = {k.removeprefix("model."): v for k, v in exported.items() if k.startswith("model.")}
    assert weights.keys() == ema.keys()
    for k, v in weights.items():
        torch.testing.assert_close(v.float(), ema[k].float(), msg=k)
    run("ema_resumed", ema_decay=0.9, stop_after=1)
    resumed = run("ema_resumed", ema_decay=0.9)
    for k in ema:
        torch.testing.assert_close(resumed[k], ema[k], atol=0, rtol=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        run("bad", lr_schedule="warmup")
