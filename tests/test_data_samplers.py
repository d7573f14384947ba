"""Training batch samplers: deterministic, resumable at any step; the facing-weighted curriculum."""

from __future__ import annotations

import numpy as np
import torch

from fasthmr_lib.body.orientation import facing_angle_deg, facing_cos
from fasthmr_lib.data.samplers import FacingBatchSampler, StepBatchSampler


def test_step_batch_sampler_is_resumable_and_covers_epochs():
    full = list(StepBatchSampler(n=5, batch=3, seed=1, start=0, total=6))
    tail = list(StepBatchSampler(n=5, batch=3, seed=1, start=4, total=6))
    assert full[4:] == tail
    flat = [k for b in full for k in b]
    for e in range(3):  # 18 samples = 3 full epochs + 3; every epoch is a permutation
        assert sorted(i for i, ep in flat if ep == e) == list(range(5))
    assert [ep for _, ep in flat[:5]] == [0] * 5


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
