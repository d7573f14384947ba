"""Facing-direction probe: yaw convention, ridge recovery, and the probe table on a tiny model."""

import math

import pytest
import roma
import torch

from fasthmr_lib.eval.probe import angle_diff_deg, collect_features, facing_probe, ridge_yaw, yaw_of


def test_yaw_of_reads_the_forward_axis_about_the_vertical():
    for deg in (-150.0, -30.0, 0.0, 60.0, 179.0):
        r = roma.rotvec_to_rotmat(torch.tensor([0.0, math.radians(deg), 0.0]))  # about camera y
        assert math.degrees(float(yaw_of(r))) == pytest.approx(deg, abs=1e-4)
    # a tilt about x (camera elevation) leaves the yaw of a frontal body at 0
    assert float(yaw_of(roma.rotvec_to_rotmat(torch.tensor([0.3, 0.0, 0.0])))) == pytest.approx(0.0, abs=1e-6)
    assert float(
        angle_diff_deg(torch.tensor(math.radians(170)), torch.tensor(math.radians(-170)))
    ) == pytest.approx(20)


def test_ridge_recovers_a_linearly_encoded_yaw_and_not_noise():
    g = torch.Generator().manual_seed(0)
    yaw = torch.rand(600, generator=g) * 2 * math.pi - math.pi
    x = torch.cat([torch.stack([torch.cos(yaw), torch.sin(yaw)], 1) @ torch.randn(2, 8, generator=g),
                   torch.randn(600, 24, generator=g)], 1)  # fmt: skip
    err = angle_diff_deg(ridge_yaw(x[:400], yaw[:400], x[400:], lam=1.0), yaw[400:])
    assert float(err.median()) < 2.0
    noise = torch.randn(600, 32, generator=g)
    err = angle_diff_deg(ridge_yaw(noise[:400], yaw[:400], noise[400:]), yaw[400:])
    assert float(err.median()) > 60.0


def test_facing_probe_table_on_a_tiny_model(fake_body):
    from test_models_train import FakeCrops

    from fasthmr_lib.config import get_preset
    from fasthmr_lib.models.hmr import HMR

    torch.manual_seed(0)
    model = HMR(get_preset("tiny"), smpl=fake_body)
    feats = collect_features(model, FakeCrops(fake_body, n=12), 10, batch=4)
    assert feats["head_token"].shape == (10, 64) and feats["mean_token"].shape == (10, 64)
    assert feats["yaw_gt"].shape == feats["yaw_pred"].shape == (10,)
    table = facing_probe(feats, feats)
    assert list(table.predictor) == ["model output", "probe: head token", "probe: mean backbone token",
                                     "constant (mean yaw)"]  # fmt: skip
    assert table.median_deg.between(0, 180).all() and (table.median_mod180_deg <= 90).all()
    assert (table.frames == 10).all()


def test_collect_features_visits_the_seeded_subset_in_dataset_order(fake_body):
    """A CropDataset decodes a whole clip per run of its items: the probe's random frames must be read in
    order (random order decoded a clip per crop), and the set must stay the seeded one."""
    import numpy as np
    from test_models_train import FakeCrops

    from fasthmr_lib.config import get_preset
    from fasthmr_lib.models.hmr import HMR

    class Recording(FakeCrops):
        def __getitem__(self, i):
            seen.append(int(i))
            return super().__getitem__(i)

    seen: list[int] = []
    torch.manual_seed(0)
    model = HMR(get_preset("tiny"), smpl=fake_body)
    collect_features(model, Recording(fake_body, n=12), 7, batch=3, seed=5)
    assert seen == sorted(seen) and len(seen) == 7
    assert set(seen) == set(np.random.default_rng(5).permutation(12)[:7].tolist())
