"""The training command (python -m fasthmr_lib.train): parses the recorded command back, rejects bad
flags, trains + caches + evaluates + saves end to end and resumes."""

from __future__ import annotations

import hashlib
import json
import shlex

import numpy as np
import pytest
from test_models_train import FakeCrops

from fasthmr_lib.models.losses import LossWeights
from fasthmr_lib.models.recipe import NO_AUGMENT, TrainConfig, training_command
from fasthmr_lib.train import parse_args


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


def test_cli_rejects_unknown_loss_weight_names():
    from fasthmr_lib.train import main

    with pytest.raises(SystemExit, match="--loss-weights: expected name=value"):
        main(["--out", "unused", "--loss-weights", "global_orinet=0.1"])


def test_cli_trains_caches_evaluates_and_saves(fake_smpl_dir, fake_body, tmp_path, monkeypatch):
    """The one-command recipe end to end on a made world, with a stand-in for the data module's
    ``CropDataset`` / ``world_root`` (items of FakeCrops): crop cache under data/cache/, data version
    from meta.json, test metrics in config.json, resumable state."""
    import sys
    import types

    from fasthmr_lib.train import main

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
