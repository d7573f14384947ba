"""HMR2.0 training losses: zero for perfect predictions, the 6D-norm term sees only the 6D scale."""

from __future__ import annotations

import pytest
import torch
from test_models_train import FakeCrops

from fasthmr_lib.models.losses import LossWeights, compute_losses


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


def test_body_frame_keypoints_ignore_the_facing_direction_and_see_the_body_pose(fake_body):
    """keypoints_3d_body depends on body pose and shape only: turning the predicted body about its root
    leaves it at zero while the camera-frame keypoints_3d grows; a wrong elbow shows in both."""
    import roma

    ds = FakeCrops(fake_body, n=4)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    gt_pose = torch.cat([batch["global_orient"], batch["body_pose"]], -1)
    gt = fake_body.from_axis_angle(gt_pose, batch["betas"])

    def losses_for(pose: torch.Tensor) -> dict[str, torch.Tensor]:
        rot = roma.rotvec_to_rotmat(pose.view(4, 24, 3))
        j = fake_body(rot[:, :1], rot[:, 1:], batch["betas"])["joints44"]
        p6 = torch.cat([rot[..., 0], rot[..., 1]], -1).reshape(4, 144)
        out = {"rotmat": rot, "pose6d": p6, "betas": batch["betas"], "joints3d": j, "joints2d": j[..., :2]}
        return compute_losses(out, batch, gt["joints44"], LossWeights(keypoints_3d_body=1.0))

    turned = gt_pose.clone()
    turn = roma.rotvec_to_rotmat(torch.tensor([0.0, 3.0, 0.0]))  # ~172 deg about the vertical axis
    turned[:, :3] = roma.rotmat_to_rotvec(turn @ roma.rotvec_to_rotmat(gt_pose[:, :3]))
    facing = losses_for(turned)
    assert float(facing["keypoints_3d_body"]) < 1e-4
    assert float(facing["keypoints_3d"]) > 1.0
    bent = gt_pose.clone()
    bent[:, 18 * 3 : 18 * 3 + 3] += torch.tensor([0.0, 0.0, 1.0])  # left elbow (SMPL joint 18)
    elbow = losses_for(bent)
    assert float(elbow["keypoints_3d_body"]) > 0.05
    assert float(elbow["total"]) == pytest.approx(
        float(elbow["keypoints_3d_body"])
        + sum(
            float(w) * float(elbow[k])
            for k, w in (
                ("keypoints_3d", 0.05),
                ("keypoints_2d", 0.01),
                ("global_orient", 0.001),
                ("body_pose", 0.001),
                ("betas", 0.0005),
            )
        ),
        rel=1e-4,
    )


def test_orientation_only_keypoints_move_the_facing_direction_not_the_body(fake_body):
    """keypoints_3d_orient equals the camera-frame keypoint L1 in value, but its gradient reaches only the
    global orientation: the body-pose rotations get none."""
    import roma

    ds = FakeCrops(fake_body, n=4)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    gt_pose = torch.cat([batch["global_orient"], batch["body_pose"]], -1)
    gt = fake_body.from_axis_angle(gt_pose, batch["betas"])
    pose = (
        gt_pose + 0.3 * torch.randn(gt_pose.shape, generator=torch.Generator().manual_seed(0))
    ).requires_grad_()
    rot = roma.rotvec_to_rotmat(pose.view(4, 24, 3))
    j = fake_body(rot[:, :1], rot[:, 1:], batch["betas"])["joints44"]
    p6 = torch.cat([rot[..., 0], rot[..., 1]], -1).reshape(4, 144)
    out = {"rotmat": rot, "pose6d": p6, "betas": batch["betas"], "joints3d": j, "joints2d": j[..., :2]}
    losses = compute_losses(out, batch, gt["joints44"], LossWeights(keypoints_3d_orient=1.0))
    assert losses["keypoints_3d_orient"].item() == pytest.approx(losses["keypoints_3d"].item(), rel=1e-4)
    (g,) = torch.autograd.grad(losses["keypoints_3d_orient"], pose, retain_graph=True)
    assert g[:, :3].abs().sum() > 1e-3 and g[:, 3:].abs().max() < 1e-6
    (g_cam,) = torch.autograd.grad(losses["keypoints_3d"], pose)
    assert g_cam[:, 3:].abs().max() > 1e-3  # HMR2.0's term does bend the body


def test_chord_orientation_loss_prefers_committing_to_hedging_between_front_and_back(fake_body):
    """With the GT facing theta or theta + 180 deg at even odds, HMR2.0's squared rotation term costs the
    same for every predicted yaw (4 on average), while the unsquared chord costs sqrt(2) for committing to
    either direction and 2 for the side-on hedge; a perfect prediction costs 0 in both."""
    import math

    import roma

    ds = FakeCrops(fake_body, n=2)
    batch = torch.utils.data.default_collate([ds[i] for i in range(2)])
    gt_pose = torch.cat([batch["global_orient"], batch["body_pose"]], -1)
    gt = fake_body.from_axis_angle(gt_pose, batch["betas"])
    gt_go = roma.rotvec_to_rotmat(batch["global_orient"])
    # the second sample's GT is the first's turned 180 deg about the camera's vertical (y) axis
    gt_go[1] = roma.rotvec_to_rotmat(torch.tensor([0.0, math.pi, 0.0])) @ gt_go[0]
    batch["global_orient"] = roma.rotmat_to_rotvec(gt_go)
    batch["body_pose"][1] = batch["body_pose"][0]

    def losses_for(yaw_deg: float) -> dict[str, torch.Tensor]:
        turn = roma.rotvec_to_rotmat(torch.tensor([0.0, math.radians(yaw_deg), 0.0]))
        go = (turn @ gt_go[0]).expand(2, 3, 3)  # the same prediction for both samples
        rot = torch.cat([go[:, None], roma.rotvec_to_rotmat(batch["body_pose"].view(2, 23, 3))], 1)
        j = fake_body(rot[:, :1], rot[:, 1:], batch["betas"])["joints44"]
        p6 = torch.cat([rot[..., 0], rot[..., 1]], -1).reshape(2, 144)
        out = {"rotmat": rot, "pose6d": p6, "betas": batch["betas"], "joints3d": j, "joints2d": j[..., :2]}
        return compute_losses(
            out, batch, gt["joints44"], LossWeights(global_orient=0.0, global_orient_chord=1.0)
        )

    commit, hedge = losses_for(0.0), losses_for(90.0)
    assert float(commit["global_orient"]) == pytest.approx(4.0, abs=1e-4)
    assert float(hedge["global_orient"]) == pytest.approx(4.0, abs=1e-4)
    assert float(commit["global_orient_chord"]) == pytest.approx(math.sqrt(2.0), abs=1e-4)
    assert float(hedge["global_orient_chord"]) == pytest.approx(2.0, abs=1e-4)
    assert float(losses_for(180.0)["global_orient_chord"]) == pytest.approx(math.sqrt(2.0), abs=1e-4)
    # the weights: only the chord term enters the total here, beside HMR2.0's keypoint terms
    parts = ("keypoints_3d", 0.05), ("keypoints_2d", 0.01), ("body_pose", 0.001), ("betas", 0.0005)
    expect = float(hedge["global_orient_chord"]) + sum(w * float(hedge[k]) for k, w in parts)
    assert float(hedge["total"]) == pytest.approx(expect, rel=1e-5)
