"""Training recipe: read back from a checkpoint, and the recorded command that reproduces it."""

from __future__ import annotations

import json

import pytest
from test_models_train import FakeCrops, _model

from fasthmr_lib.models.losses import LossWeights
from fasthmr_lib.models.recipe import TrainConfig, recipe_of, training_command
from fasthmr_lib.models.train import train


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
