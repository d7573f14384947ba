"""Crop cache and its augmented training view: each sample's augmentation is a pure function of its key."""

from __future__ import annotations

import torch
from test_models_train import FakeCrops

from fasthmr_lib.data.crop_cache import AugmentedCrops, build_crop_cache
from fasthmr_lib.models.recipe import TrainConfig


def test_augmented_items_are_deterministic_per_sample(fake_body):
    cache = build_crop_cache(FakeCrops(fake_body, n=4), progress=False)
    ds = AugmentedCrops(cache, TrainConfig().augment, seed=0)
    a, b, c = ds[(1, 0)], ds[(1, 0)], ds[(1, 1)]
    assert torch.equal(a["img"], b["img"]) and torch.equal(a["body_pose"], b["body_pose"])
    assert not torch.equal(a["img"], c["img"])  # another epoch draws another augmentation
    assert a["img"].shape == (3, 256, 256) and a["person_mask"].shape == (256, 256)
