"""Training recipe: losses fall on a made tiny world, interrupt + resume == uninterrupted, final save."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from fasthmr_lib.config import get_preset
from fasthmr_lib.data.augment import hwc255_to_normalized
from fasthmr_lib.data.crop_cache import build_crop_cache
from fasthmr_lib.models.losses import LossWeights, compute_losses, gt_body
from fasthmr_lib.models.recipe import NO_AUGMENT, TrainConfig, recipe_of, training_command
from fasthmr_lib.models.train import train
from fasthmr_lib.train import parse_args

NO_AUG = NO_AUGMENT


class FakeCrops(torch.utils.data.Dataset):
    """CropDataset-shaped items on a fake body: random smooth images, GT 2D keypoints projected from
    the GT 3D joints with a fixed camera (10 m away), small random poses."""

    def __init__(self, body, n: int = 12, seed: int = 0, parts: bool = False):
        rng = np.random.default_rng(seed)
        self.parts = parts
        self.go = rng.normal(0, 0.3, (n, 3)).astype(np.float32)
        self.bp = rng.normal(0, 0.2, (n, 69)).astype(np.float32)
        self.betas = rng.normal(0, 1.0, (n, 10)).astype(np.float32)
        with torch.no_grad():
            j = body.from_axis_angle(
                torch.from_numpy(np.concatenate([self.go, self.bp], 1)), torch.from_numpy(self.betas)
            )["joints44"]
        cam_t = torch.tensor([0.0, 0.0, 10.0])
        pts = j + cam_t
        kp = pts[..., :2] / pts[..., 2:] * (5000.0 / 256.0)
        self.kp = torch.cat([kp, torch.ones(n, 44, 1)], -1).numpy().astype(np.float32)
        base = rng.uniform(0, 255, (n, 8, 8, 3)).astype(np.float32)
        self.imgs = [np.kron(b, np.ones((32, 32, 1), np.float32)) for b in base]
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        mask = torch.zeros(256, 256)
        mask[40:220, 80:176] = 1.0
        extra = {}
        if self.parts:  # dense labels on the mask: left upper arm | right upper arm, front or back by item
            lab = torch.zeros(256, 256, dtype=torch.uint8)
            lab[40:220, 80:128], lab[40:220, 128:176] = 17 + 24 * (i % 2), 18 + 24 * (i % 2)
            extra["part_labels"] = lab
        return {
            **extra,
            "img": hwc255_to_normalized(self.imgs[i]),
            "person_mask": mask,
            "global_orient": torch.from_numpy(self.go[i]),
            "body_pose": torch.from_numpy(self.bp[i]),
            "betas": torch.from_numpy(self.betas[i]),
            "transl": torch.tensor([0.0, 0.0, 10.0]),
            "joints2d": torch.from_numpy(self.kp[i]),
            "clip_id": f"c{i // 6}",
            "frame": i % 6,
            "occlusion": torch.tensor(0.1 * (i % 3)),
        }


def _model(body, drop_path: float = 0.0):
    from fasthmr_lib.models.hmr import HMR

    cfg = get_preset("tiny")
    cfg = cfg.replace(vit=type(cfg.vit)(**{**cfg.vit.__dict__, "drop_path_rate": drop_path}))
    torch.manual_seed(0)
    return HMR(cfg, smpl=body)


def _fixed_loss(model, ds) -> float:
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    model.eval()
    with torch.no_grad():
        gt = gt_body(model.smpl, batch)["joints44"].float()
        return float(compute_losses(model(batch["img"]), batch, gt)["total"])


def test_a_few_steps_reduce_the_loss(fake_body, tmp_path):
    ds = FakeCrops(fake_body, n=8)
    model = _model(fake_body)
    before = _fixed_loss(model, ds)
    cfg = TrainConfig(
        steps=30, batch=4, lr=2e-3, warmup=0, schedule="constant", log_every=1, save_every=100, augment=NO_AUG
    )
    res = train(cfg, tmp_path / "run", model=model, dataset=ds, progress=False, final_save=False)
    h = res.history["total"].to_numpy()
    assert len(h) == 30 and np.isfinite(h).all()
    after = _fixed_loss(res.model, ds)
    assert after < 0.5 * before, (before, after, h)
    assert (tmp_path / "run" / "loss_history.csv").exists() and (tmp_path / "run" / "loss_curve.png").exists()


def test_interrupt_and_resume_equals_uninterrupted(fake_body, tmp_path):
    ds = FakeCrops(fake_body, n=10)
    cache = build_crop_cache(ds, progress=False)
    # drop-path > 0 so the restored torch RNG state matters
    cfg = TrainConfig(steps=6, batch=3, lr=1e-3, warmup=2, log_every=1, save_every=2, seed=3)
    ref = train(
        cfg, tmp_path / "a", model=_model(fake_body, 0.2), dataset=cache, progress=False, final_save=False
    ).model
    part = train(
        cfg,
        tmp_path / "b",
        model=_model(fake_body, 0.2),
        dataset=cache,
        progress=False,
        stop_at=3,
        final_save=False,
    )
    assert part.steps_done == 3
    # a fresh model (different init) is fully overwritten by the saved state
    torch.manual_seed(99)
    res = train(
        cfg,
        tmp_path / "b",
        model=_model(fake_body, 0.2),
        dataset=cache,
        progress=False,
        resume=True,
        final_save=False,
    )
    assert res.steps_done == 6
    for (k, a), (_, b) in zip(ref.state_dict().items(), res.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert list(res.history["step"]) == list(range(1, 7))
    with pytest.raises(ValueError, match="steps"):
        train(
            TrainConfig(steps=7, batch=3),
            tmp_path / "b",
            model=_model(fake_body),
            dataset=cache,
            progress=False,
            resume=True,
        )


def test_final_checkpoint_has_recipe_and_loads(fake_body, tmp_path):
    from fasthmr_lib.models.checkpoints import load_checkpoint

    ds = FakeCrops(fake_body, n=6)
    cfg = TrainConfig(steps=2, batch=2, log_every=1)
    res = train(cfg, tmp_path / "ck", model=_model(fake_body), dataset=ds, progress=False, data_version="abc")
    doc = json.loads((tmp_path / "ck" / "config.json").read_text())
    meta = doc["metadata"]
    assert meta["recipe"]["steps"] == 2 and meta["data_version"] == "abc" and doc["dtype"] == "float16"
    assert meta["recipe"]["command"].startswith("python -m fasthmr_lib.train ")
    m = load_checkpoint(tmp_path / "ck", smpl=fake_body)
    w0 = res.model.state_dict()["backbone.blocks.0.attn.qkv.weight"]
    torch.testing.assert_close(m.state_dict()["backbone.blocks.0.attn.qkv.weight"], w0, atol=1e-3, rtol=1e-3)


def test_stem_override_builds_the_conv_stem(fake_body):
    from fasthmr_lib.models.train import model_for

    assert model_for(TrainConfig(preset="tiny"), smpl=fake_body).cfg.vit.stem == "patch"
    model = model_for(TrainConfig(preset="tiny", stem="conv"), smpl=fake_body)
    assert model.cfg.vit.stem == "conv" and len(model.backbone.patch_embed.stem) == 12
    assert "--stem conv" in training_command(TrainConfig(stem="conv"), Path("out"))


def test_subset_probe_trains_on_a_seeded_sample_and_is_recorded(fake_body, tmp_path):
    cache = build_crop_cache(FakeCrops(fake_body, n=10), progress=False)
    a, b = cache.subset(4, seed=3), cache.subset(4, seed=3)
    assert len(a) == 4 and torch.equal(a.images, b.images) and a.clip_id == b.clip_id
    c = cache.subset(4, seed=4)  # another seed, another draw
    assert not torch.equal(a.frame, c.frame) or a.clip_id != c.clip_id
    assert {tuple(x.tolist()) for x in a.labels["global_orient"]} <= {
        tuple(x.tolist()) for x in cache.labels["global_orient"]
    }
    with pytest.raises(ValueError, match=r"subset: n must be in 1\.\.10"):
        cache.subset(11, seed=0)
    cfg = TrainConfig(steps=2, batch=2, subset=4, schedule="constant", augment=NO_AUG, log_every=1)
    res = train(cfg, tmp_path / "p", model=_model(fake_body), dataset=cache, progress=False, data_version="x")
    assert res.steps_done == 2
    cmd = json.loads((tmp_path / "p" / "config.json").read_text())["metadata"]["recipe"]["command"]
    assert "--subset 4" in cmd and "--schedule constant" in cmd and "--no-augment" in cmd
    assert recipe_of(tmp_path / "p").subset == 4 and recipe_of(tmp_path / "p").augment == NO_AUG


def test_dense_head_training_resumes_exactly_and_ships_only_the_hmr_weights(fake_body, tmp_path):
    from fasthmr_lib.models.checkpoints import load_checkpoint

    cache = build_crop_cache(FakeCrops(fake_body, n=10, parts=True), progress=False)
    assert cache.parts is not None and cache.parts.dtype == torch.uint8
    lw = LossWeights(dense_parts=1.0)
    cfg = TrainConfig(steps=6, batch=3, lr=1e-3, warmup=2, log_every=1, save_every=2, seed=3, loss_weights=lw,
                      pretrain_steps=2, facing_kappa=1.0, curriculum_steps=4)  # fmt: skip
    ref = train(
        cfg, tmp_path / "a", model=_model(fake_body, 0.2), dataset=cache, progress=False, data_version="x"
    )
    h = ref.history
    assert (h["dense_parts"] > 0).all() and np.isfinite(h["total"]).all()
    # pretraining steps: the total is the dense term alone
    np.testing.assert_allclose(h["total"][:2], h["dense_parts"][:2], rtol=1e-6)
    assert not np.allclose(h["total"][2:], h["dense_parts"][2:])
    part = train(cfg, tmp_path / "b", model=_model(fake_body, 0.2), dataset=cache, progress=False, stop_at=3,
                 final_save=False)  # fmt: skip
    assert part.steps_done == 3
    res = train(cfg, tmp_path / "b", model=_model(fake_body, 0.2), dataset=cache, progress=False, resume=True,
                data_version="x")  # fmt: skip
    for (k, a), (_, b) in zip(ref.model.state_dict().items(), res.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # the shipped checkpoint is an HMR2.0-format HMR: exactly the plain model's keys, no dense head
    plain_keys = set(_model(fake_body).state_dict())
    shipped = load_checkpoint(tmp_path / "b", smpl=fake_body)
    assert set(shipped.state_dict()) == plain_keys
    from safetensors import safe_open

    with safe_open(str(next((tmp_path / "b").glob("*.safetensors"))), "pt") as f:
        assert not [k for k in f.keys() if "aux" in k or "dense" in k]
    cmd = json.loads((tmp_path / "b" / "config.json").read_text())["metadata"]["recipe"]["command"]
    assert "dense_parts=1" in cmd and "--pretrain-steps 2" in cmd and "--facing-kappa 1.0" in cmd
    argv = shlex.split(cmd)[3:]
    assert parse_args(argv)[0] == dataclasses.replace(cfg, save_every=100, log_every=10)  # not recorded


def test_dense_loss_needs_part_labels(fake_body, tmp_path):
    cache = build_crop_cache(FakeCrops(fake_body, n=4), progress=False)
    assert cache.parts is None
    cfg = TrainConfig(steps=1, batch=2, loss_weights=LossWeights(dense_parts=1.0))
    with pytest.raises(ValueError, match="needs dense part labels"):
        train(cfg, tmp_path / "x", model=_model(fake_body), dataset=cache, progress=False)
    with pytest.raises(ValueError, match="set loss weight dense_parts"):
        train(
            TrainConfig(steps=1, batch=2, pretrain_steps=1),
            tmp_path / "y",
            model=_model(fake_body),
            dataset=build_crop_cache(FakeCrops(fake_body, n=4, parts=True), progress=False),
            progress=False,
        )


def test_init_from_a_shipped_checkpoint_starts_from_its_weights(fake_body, tmp_path):
    ds = FakeCrops(fake_body, n=6)
    cfg0 = TrainConfig(preset="tiny", steps=2, batch=2, log_every=1)
    first = train(cfg0, tmp_path / "a", model=_model(fake_body), dataset=ds, progress=False, data_version="x")
    from fasthmr_lib.models.train import model_for, warm_start

    torch.manual_seed(123)  # another initialisation than the trained model's
    fresh = model_for(TrainConfig(preset="tiny"), smpl=fake_body)
    warm = warm_start(model_for(TrainConfig(preset="tiny"), smpl=fake_body), tmp_path / "a")
    w = "backbone.blocks.0.attn.qkv.weight"
    ref = first.model.state_dict()[w]
    torch.testing.assert_close(warm.state_dict()[w], ref, atol=1e-3, rtol=1e-3)  # fp16 round trip
    assert not torch.allclose(fresh.state_dict()[w], ref, atol=1e-3)
    with pytest.raises(ValueError, match="differs from the recipe"):
        warm_start(model_for(TrainConfig(preset="tiny", stem="conv"), smpl=fake_body), tmp_path / "a")
    cfg = TrainConfig(preset="tiny", steps=1, batch=2, init_from=str(tmp_path / "a"))
    cmd = training_command(cfg, tmp_path / "b")
    assert f"--init-from {tmp_path / 'a'}" in cmd and parse_args(shlex.split(cmd)[3:])[0] == cfg


def test_crop_level_facing_loss_trains_a_read_out_that_the_checkpoint_leaves_out(fake_body, tmp_path):
    from fasthmr_lib.models.checkpoints import load_checkpoint

    cache = build_crop_cache(FakeCrops(fake_body, n=6, parts=True), progress=False)
    cfg = TrainConfig(steps=3, batch=2, lr=1e-3, warmup=1, log_every=1, save_every=3, seed=0,
                      loss_weights=LossWeights(front_back_crop=1.0))  # fmt: skip
    res = train(cfg, tmp_path / "f", model=_model(fake_body), dataset=cache, progress=False, data_version="x")
    h = res.history
    assert res.aux is not None and res.aux.facing is not None
    assert (h["front_back_crop"] > 0).all() and np.isfinite(h["total"]).all()
    assert set(load_checkpoint(tmp_path / "f", smpl=fake_body).state_dict()) == set(
        _model(fake_body).state_dict()
    )
