"""Training recipe: losses fall on a made tiny world, interrupt + resume == uninterrupted, final save."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from fasthmr_lib.body.orientation import facing_angle_deg, facing_cos
from fasthmr_lib.config import get_preset
from fasthmr_lib.data.augment import hwc255_to_normalized
from fasthmr_lib.models.train import (
    NO_AUGMENT,
    AugmentedCrops,
    FacingBatchSampler,
    LossWeights,
    StepBatchSampler,
    TrainConfig,
    build_crop_cache,
    compute_losses,
    gt_body,
    parse_args,
    recipe_of,
    train,
    training_command,
)

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


def test_step_batch_sampler_is_resumable_and_covers_epochs():
    full = list(StepBatchSampler(n=5, batch=3, seed=1, start=0, total=6))
    tail = list(StepBatchSampler(n=5, batch=3, seed=1, start=4, total=6))
    assert full[4:] == tail
    flat = [k for b in full for k in b]
    for e in range(3):  # 18 samples = 3 full epochs + 3; every epoch is a permutation
        assert sorted(i for i, ep in flat if ep == e) == list(range(5))
    assert [ep for _, ep in flat[:5]] == [0] * 5


def test_losses_are_zero_for_perfect_predictions(fake_body):
    ds = FakeCrops(fake_body, n=4)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    import roma

    rot = roma.rotvec_to_rotmat(torch.cat([batch["global_orient"], batch["body_pose"]], -1).view(4, 24, 3))
    j = fake_body.from_axis_angle(torch.cat([batch["global_orient"], batch["body_pose"]], -1), batch["betas"])
    pose6d = torch.cat([rot[..., 0], rot[..., 1]], -1).reshape(4, 144)  # unit columns a1, a2
    out = {
        "rotmat": rot,
        "pose6d": pose6d,
        "betas": batch["betas"],
        "joints3d": j["joints44"] + 3.0,  # offset removed by pelvis
        "joints2d": batch["joints2d"][..., :2],
    }
    losses = compute_losses(out, batch, j["joints44"])
    for k, v in losses.items():
        assert float(v) < 1e-5, k
    out["joints2d"] = out["joints2d"] + 0.01  # 44 joints x 2 coords x 0.01 = 0.88 (all visible)
    assert float(compute_losses(out, batch, j["joints44"])["keypoints_2d"]) == pytest.approx(0.88, rel=1e-4)


def test_rot6d_norm_term_penalises_only_the_scale_of_the_6d_columns(fake_body):
    """Scaling the raw 6D output leaves the rotation (Gram-Schmidt) and so every HMR2.0 term unchanged;
    only the 6D-norm term sees it: 24 joints x 2 columns x (3 - 1)^2 = 192 per sample."""
    from fasthmr_lib.models.head import rot6d_to_rotmat

    ds = FakeCrops(fake_body, n=4)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    pose6d = torch.randn(4, 144, generator=torch.Generator().manual_seed(0))
    unit = torch.nn.functional.normalize(pose6d.view(4, 24, 2, 3), dim=-1).reshape(4, 144)
    pose = torch.cat([batch["global_orient"], batch["body_pose"]], -1)
    gt = fake_body.from_axis_angle(pose, batch["betas"])
    losses = {}
    for scale in (1.0, 3.0):
        p6 = unit * scale
        rot = rot6d_to_rotmat(p6.view(4, 24, 6))
        j = fake_body(rot[:, :1], rot[:, 1:], batch["betas"])["joints44"]
        out = {"rotmat": rot, "pose6d": p6, "betas": batch["betas"], "joints3d": j, "joints2d": j[..., :2]}
        losses[scale] = compute_losses(out, batch, gt["joints44"], LossWeights(rot6d_norm=0.5))
    for k in ("keypoints_3d", "keypoints_2d", "global_orient", "body_pose", "betas"):
        assert float(losses[3.0][k]) == pytest.approx(float(losses[1.0][k]), rel=1e-4), k
    assert float(losses[1.0]["rot6d_norm"]) < 1e-8
    assert float(losses[3.0]["rot6d_norm"]) == pytest.approx(192.0, rel=1e-4)
    d_total = float(losses[3.0]["total"] - losses[1.0]["total"])
    assert d_total == pytest.approx(0.5 * 192.0, rel=1e-3)
    # HMR2.0's weights (rot6d_norm = 0): the term is logged but does not enter the total
    default = compute_losses(out, batch, gt["joints44"])
    assert float(default["rot6d_norm"]) == pytest.approx(192.0, rel=1e-4)
    assert float(default["total"]) == pytest.approx(float(losses[3.0]["total"]) - 0.5 * 192.0, rel=1e-3)


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
    assert "python -m fasthmr_lib.models.train" in meta["recipe"]["command"]
    m = load_checkpoint(tmp_path / "ck", smpl=fake_body)
    w0 = res.model.state_dict()["backbone.blocks.0.attn.qkv.weight"]
    torch.testing.assert_close(m.state_dict()["backbone.blocks.0.attn.qkv.weight"], w0, atol=1e-3, rtol=1e-3)


def test_recipe_of_a_checkpoint_reproduces_its_recipe(fake_body, tmp_path):
    ds = FakeCrops(fake_body, n=4)
    lw = LossWeights(global_orient=0.02, body_pose=0.005)
    cfg = TrainConfig(steps=1, batch=2, lr=3e-4, warmup=7, loss_weights=lw)
    train(cfg, tmp_path / "ck", model=_model(fake_body), dataset=ds, progress=False, data_version="x")
    cmd = json.loads((tmp_path / "ck" / "config.json").read_text())["metadata"]["recipe"]["command"]
    assert "--loss-weights global_orient=0.02,body_pose=0.005" in cmd and "--warmup 7" in cmd
    assert "--eval-world" not in cmd
    with_eval = training_command(cfg, tmp_path, eval_world="test_world")
    assert with_eval.endswith(f"--eval-world test_world --out {tmp_path}")
    assert "--eval-world" not in training_command(cfg, tmp_path, eval_world=cfg.world)
    again = recipe_of(tmp_path / "ck", steps=9, world="other", batch=None)
    assert again == TrainConfig(steps=9, batch=2, lr=3e-4, warmup=7, loss_weights=lw, world="other")
    assert recipe_of(tmp_path / "missing", steps=3) == TrainConfig(steps=3)  # no checkpoint: defaults
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        recipe_of(tmp_path / "ck", stepz=3)


def test_recorded_command_parses_back_to_the_same_recipe(tmp_path):
    """The command stored with a checkpoint is a faithful reproduction: the CLI parses it back to the
    same TrainConfig, for the defaults and for every recipe field set away from its default."""
    lw = LossWeights(global_orient=0.02, body_pose=0.005)
    cfgs = [
        TrainConfig(),
        TrainConfig(preset="small", stem="conv", world="w", split="calib", mask_kind="mask_union", steps=50,
                    batch=4, lr=3e-4, weight_decay=0.01, schedule="constant", warmup=7, grad_clip=0.5, seed=3,
                    precision="bf16", subset=64, augment=NO_AUGMENT, loss_weights=lw),
    ]  # fmt: skip
    for cfg in cfgs:
        argv = shlex.split(training_command(cfg, tmp_path / "out", eval_world="elsewhere"))[3:]
        parsed, rest = parse_args(argv)
        assert parsed == cfg, training_command(cfg, tmp_path / "out")
        assert rest.out == str(tmp_path / "out") and rest.eval_world == "elsewhere"
    assert "--precision bf16" in training_command(cfgs[1], tmp_path)
    assert "--precision" not in training_command(cfgs[0], tmp_path)


def test_stem_override_builds_the_conv_stem(fake_body):
    from fasthmr_lib.models.train import model_for

    assert model_for(TrainConfig(preset="tiny"), smpl=fake_body).cfg.vit.stem == "patch"
    model = model_for(TrainConfig(preset="tiny", stem="conv"), smpl=fake_body)
    assert model.cfg.vit.stem == "conv" and len(model.backbone.patch_embed.stem) == 12
    assert "--stem conv" in training_command(TrainConfig(stem="conv"), Path("out"))


def test_cli_rejects_unknown_loss_weight_names():
    from fasthmr_lib.models.train import main

    with pytest.raises(SystemExit, match="--loss-weights: expected name=value"):
        main(["--out", "unused", "--loss-weights", "global_orinet=0.1"])


def test_augmented_items_are_deterministic_per_sample(fake_body):
    cache = build_crop_cache(FakeCrops(fake_body, n=4), progress=False)
    ds = AugmentedCrops(cache, TrainConfig().augment, seed=0)
    a, b, c = ds[(1, 0)], ds[(1, 0)], ds[(1, 1)]
    assert torch.equal(a["img"], b["img"]) and torch.equal(a["body_pose"], b["body_pose"])
    assert not torch.equal(a["img"], c["img"])  # another epoch draws another augmentation
    assert a["img"].shape == (3, 256, 256) and a["person_mask"].shape == (256, 256)


def test_cli_trains_caches_evaluates_and_saves(fake_smpl_dir, fake_body, tmp_path, monkeypatch):
    """The one-command recipe end to end on a made world, with a stand-in for the data module's
    ``CropDataset`` / ``world_root`` (items of FakeCrops): crop cache under data/cache/, data version
    from meta.json, test metrics in config.json, resumable state."""
    import sys
    import types

    from fasthmr_lib.models.train import main

    root = tmp_path / "data" / "world" / "mini"
    root.mkdir(parents=True)
    (root / "meta.json").write_text('{"splits": {"train": ["c0"], "test": ["c1"]}}')
    fake = types.ModuleType("fasthmr_lib.data.datasets")
    fake.world_root = lambda profile="default": tmp_path / "data" / "world" / profile
    fake.CropDataset = lambda r, split, mask_kind="mask", **kw: FakeCrops(
        fake_body, n=6, seed=split == "test"
    )
    monkeypatch.setitem(sys.modules, "fasthmr_lib.data.datasets", fake)
    monkeypatch.setenv("FASTHMR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FASTHMR_SMPL_DIR", str(fake_smpl_dir))
    out = tmp_path / "ck"
    args = ["--preset", "tiny", "--world", "mini", "--steps", "4", "--batch", "2", "--out", str(out)]
    main([*args, "--stop-at", "2"])
    assert not (out / "config.json").exists() and (out / "train_state.pt").exists()
    assert len(list((tmp_path / "data" / "cache").glob("crops_mini_train_mask_*.pt"))) == 1
    res = main([*args, "--resume"])
    assert res.steps_done == 4
    meta = json.loads((out / "config.json").read_text())["metadata"]
    assert meta["data_version"] == hashlib.sha256((root / "meta.json").read_bytes()).hexdigest()[:16]
    assert meta["metrics"]["test_mpjpe"] > 0 and np.isfinite(meta["metrics"]["test_pve"])


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


def test_facing_cos_and_the_facing_sampler():
    import roma

    # SMPL faces +z; pi about x makes it upright in the OpenCV camera (y down), facing the camera (-z)
    front = roma.rotvec_to_rotmat(torch.tensor([[np.pi, 0.0, 0.0]]))
    turn = {a: roma.rotvec_to_rotmat(torch.tensor([[0.0, a, 0.0]])) for a in (np.pi, np.pi / 2)}
    go = roma.rotmat_to_rotvec(torch.cat([front, front @ turn[np.pi], front @ turn[np.pi / 2]]))
    torch.testing.assert_close(facing_cos(go), torch.tensor([1.0, -1.0, 0.0]), atol=1e-5, rtol=0)
    angle = facing_angle_deg(go).abs()
    torch.testing.assert_close(angle, torch.tensor([0.0, 180.0, 90.0]), atol=1e-3, rtol=0)
    cos = torch.linspace(-1, 1, 101)
    full = list(FacingBatchSampler(cos, 8, seed=2, start=0, total=40, kappa=4.0, curriculum_steps=0))
    tail = list(FacingBatchSampler(cos, 8, seed=2, start=30, total=40, kappa=4.0, curriculum_steps=0))
    assert full[30:] == tail and [t for _, t in full[5]] == [5] * 8  # resumable; item 'epoch' = step
    drawn = cos[[i for b in full for i, _ in b]]
    assert float(drawn.mean()) > 0.5  # concentrated on crops facing the camera
    cur = FacingBatchSampler(cos, 8, seed=2, start=0, total=400, kappa=4.0, curriculum_steps=200)
    assert cur.kappa_at(0) == 4.0 and cur.kappa_at(100) == 2.0 and cur.kappa_at(300) == 0.0
    torch.testing.assert_close(cur.weights_at(250), torch.ones(101, dtype=torch.float64))  # uniform after
    late = cos[[i for b in list(cur)[200:] for i, _ in b]]
    assert abs(float(late.mean())) < 0.15


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
