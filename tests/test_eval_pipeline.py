"""End-to-end evaluation of FastHMR variants (fasthmr_lib/eval/pipeline.py)."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
from torch import nn

from fasthmr_lib.body.hybrik import FeatureStats, HybrIKBody
from fasthmr_lib.config import get_preset
from fasthmr_lib.diffusion.decoder import DiffusionDecoder
from fasthmr_lib.diffusion.denoiser import LatentDenoiser
from fasthmr_lib.diffusion.vae import MotionVAE
from fasthmr_lib.eval import pipeline as PL
from fasthmr_lib.fasthmr import FastHMR


class Frames(torch.utils.data.Dataset):
    """Two clips of 6 frames; the global frame index is written into img[0, 0, 0]."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        t = np.arange(12, dtype=np.float32)[:, None]
        self.pose = (rng.normal(0, 0.2, (1, 72)) + 0.03 * t).astype(np.float32)
        self.betas = np.repeat(rng.normal(0, 0.5, (1, 10)).astype(np.float32), 12, 0)
        self.index = [(i // 6, i % 6) for i in range(12)]

    def __len__(self):
        return 12

    def __getitem__(self, i):
        img = torch.zeros(3, 256, 256)
        img[0, 0, 0] = i
        return {"img": img, "person_mask": torch.ones(256, 256), "clip_id": f"c{i // 6}", "frame": i % 6}

    def gt(self):
        return {
            f"c{c}": {"pose": self.pose[6 * c : 6 * c + 6], "betas": self.betas[6 * c : 6 * c + 6]}
            for c in (0, 1)
        }


class Oracle(nn.Module):
    """A per-frame 'model' that returns the ground-truth θ, β of the frame and a random head token."""

    def __init__(self, ds, smpl):
        super().__init__()
        self.ds, self.smpl, self.cfg = ds, smpl, get_preset("tiny")
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, img, person_mask=None, bbox_info=None):
        idx = img[:, 0, 0, 0].round().long()
        R = roma.rotvec_to_rotmat(torch.from_numpy(self.ds.pose[idx.numpy()]).view(-1, 24, 3))
        g = torch.Generator().manual_seed(int(idx.sum()))
        return {"rotmat": R, "betas": torch.from_numpy(self.ds.betas[idx.numpy()]),
                "head_token": torch.randn(len(idx), 64, generator=g)}  # fmt: skip


@pytest.fixture
def tiny_decoder(fake_body):
    torch.manual_seed(1)
    return DiffusionDecoder(
        MotionVAE("tiny").eval(), LatentDenoiser("tiny").eval(), HybrIKBody.from_smpl(fake_body),
        FeatureStats.identity(133),
    )  # fmt: skip


def test_evaluate_clips_oracle_head_scores_zero(fake_body, tiny_decoder):
    ds = Frames()
    fm = FastHMR(Oracle(ds, fake_body), tiny_decoder, baseline_depth=1)
    df = PL.evaluate_clips(fm, ds, ds.gt(), batch_size=5)
    assert sorted(df.method.unique()) == ["decoder", "head"] and len(df) == 24
    head = df[df.method == "head"]
    assert head.mpjpe.max() < 1e-3 and head.pve.max() < 1e-3 and head.pa_mpjpe.max() < 1e-3
    assert head.accel.isna().sum() == 4 and head.accel.max() < 1e-3  # clip ends (2 clips x 2)
    dec = df[df.method == "decoder"]
    assert dec.mpjpe.min() > 1.0 and np.isfinite(dec.mpjpe).all()  # a random decoder is not the oracle
    s = PL.summarize(df.assign(variant="oracle"))
    assert s.frames.tolist() == [12, 12] and s.loc[s.method == "head", "mpjpe"].iloc[0] < 1e-3
    only_head = PL.evaluate_clips(fm, ds, ds.gt(), decode=False)
    assert set(only_head.method) == {"head"}
    with pytest.raises(KeyError, match="no ground truth"):
        PL.evaluate_clips(fm, ds, {"c0": ds.gt()["c0"]})


def test_evaluate_clips_wham_protocol(fake_body, tiny_decoder, tmp_path):
    """wham_3dpw14 through evaluate_clips: the regressor passed through, WHAM's Accel rule (6-frame clips:
    values at frames 2, 3), m/s² beside mm/frame², and the summary carries both."""
    rng = np.random.default_rng(0)
    reg = rng.random((17, fake_body.num_vertices)).astype(np.float32)
    path = tmp_path / "J_regressor_h36m.npy"
    np.save(path, reg / reg.sum(1, keepdims=True))
    ds = Frames()
    fm = FastHMR(Oracle(ds, fake_body), tiny_decoder, baseline_depth=1)
    df = PL.evaluate_clips(fm, ds, ds.gt(), batch_size=5, protocol="wham_3dpw14", h36m_regressor=path)
    head = df[df.method == "head"]
    assert head.mpjpe.max() < 1e-3 and sorted(head.loc[head.accel.notna(), "frame"]) == [2, 2, 3, 3]
    dec = df[df.method == "decoder"]
    np.testing.assert_allclose(dec.accel_ms2, dec.accel * 0.9, rtol=1e-9)
    assert (dec.accel_ms2.dropna() > 0).all()
    s = PL.summarize(df.assign(variant="v"))
    assert {"accel", "accel_ms2"} <= set(s.columns)


def test_clip_subset_keeps_whole_clips():
    ds = Frames()
    sub = PL.clip_subset(ds, 1)
    assert len(sub) == 6 and {sub[i]["clip_id"] for i in range(6)} == {"c0"}
    assert PL.clip_subset(ds, 0) is ds
    with pytest.raises(TypeError, match="CropDataset"):
        PL.clip_subset([1, 2], 1)


def test_time_variants_amortises_decoder(tiny_model, tiny_decoder):
    v = {"base": FastHMR.from_parts(tiny_model), "eclm": FastHMR.from_parts(tiny_model, windows=[(2, 3)])}
    t = PL.time_variants(v, batch=2, repeats=1, decoder=tiny_decoder).set_index("variant")
    assert list(t.index) == ["base", "eclm"] and (t.images_per_s > 0).all()
    for k in t.index:  # B / (t_model + B t_frame) == 1 / (1/ips + 1/dec)
        r = t.loc[k]
        assert r.images_per_s_decoder == pytest.approx(1 / (1 / r.images_per_s + 1 / r.decoder_frames_per_s))


def test_backbone_head_macs_excludes_smpl(tiny_model):
    from fasthmr_lib.eval import profile as P

    fm = FastHMR.from_parts(tiny_model)
    m = PL.backbone_head_macs(fm)
    ref = P.count_macs(P.build_bench_model("tiny"), torch.zeros(1, 3, 256, 256))
    assert m["linear_conv"] == pytest.approx(ref.linear_conv)


def test_mask_tome_schedule_and_sweep(tiny_model, fake_body):
    pytest.importorskip("fasthmr_lib.merging.patch", reason="Mask-ToMe module not present yet")
    cfg = PL.mask_tome_for(40, 90)
    assert (cfg.layers, cfg.per_layer, cfg.min_tokens) == (3, 40, 90)  # the paper's 192 -> 152 -> 112 -> 90
    assert PL.mask_tome_for(60, 90).layers == 2 and PL.mask_tome_for(10, 90).layers == 11
    with pytest.raises(ValueError, match="M'"):
        PL.mask_tome_for(40, 200)
    ds = Frames()
    base = Oracle(ds, fake_body)  # not an HMR: the sweep needs the real model
    with pytest.raises(TypeError):
        PL.speed_accuracy_sweep(base, {0.1: []}, [40], [90], ds, ds.gt())


def test_speed_accuracy_sweep_rows(tiny_model, monkeypatch):
    pytest.importorskip("fasthmr_lib.merging.patch", reason="Mask-ToMe module not present yet")

    class Crops(Frames):  # real-looking crops for the tiny HMR; GT as Frames
        def __getitem__(self, i):
            item = super().__getitem__(i)
            g = torch.Generator().manual_seed(i)
            item["img"] = torch.randn(3, 256, 256, generator=g)
            item["person_mask"] = torch.zeros(256, 256)
            item["person_mask"][40:220, 80:176] = 1
            return item

    ds = Crops()
    calls = []
    real = PL.evaluate_clips

    def counting(model, *a, **k):
        calls.append(model)
        return real(model, *a, **k)

    monkeypatch.setattr(PL, "evaluate_clips", counting)
    wbt = {None: [], 0.1: [(2, 3)], 0.5: [(2, 3)]}  # two τ's that chose the same windows: one model
    df = PL.speed_accuracy_sweep(tiny_model, wbt, [40], [90], ds, ds.gt(), batch=2,
                                 repeats=1, eval_batch=6, progress=False)  # fmt: skip
    labels = ["baseline", "no ECLM n_l=40 M'=90", "tau=0.1 n_l=40 M'=90", "tau=0.5 n_l=40 M'=90"]
    assert df.label.tolist() == labels
    assert len(calls) == 3  # the duplicate is evaluated (and timed) once
    dup, src = df.iloc[3], df.iloc[2]
    assert dup.same_as == labels[2] and df.same_as.iloc[:3].tolist() == ["", "", ""]
    assert dup.tau_mm == 0.5 and dup.windows == src.windows
    for col in ("mpjpe", "pa_mpjpe", "macs_G", "images_per_s", "speedup", "depth"):
        assert dup[col] == src[col]
    df = df.iloc[:3]
    assert df.depth.tolist() == [4, 4, 3] and df.layers.tolist() == [0, 3, 3]
    assert np.isnan(df.tau_mm.iloc[1]) and df.tau_mm.iloc[2] == 0.1 and df.windows.iloc[2] == "[[2, 3]]"
    m = df.macs_G.tolist()
    assert m[0] > m[1] > m[2] > 0  # fewer tokens, then fewer blocks
    assert df.speedup.iloc[0] == 1.0 and (df.images_per_s > 0).all() and np.isfinite(df.mpjpe).all()
