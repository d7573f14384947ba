"""Procedural SMPL motion (fasthmr_lib.data.motion): shapes, determinism, joint limits, smoothness,
semantics."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from fasthmr_lib.data import motion as M

T = 250  # > 243, the motion-prior window
MAX_SPEED = 15.0  # rad/s per joint (sprinting knees peak ~ 12-15 rad/s)
MAX_ACCEL = 300.0  # rad/s^2 per joint; a one-frame 0.5 rad pop gives ~ 900


def _is_smooth(clip) -> bool:
    speed, acc = M.angular_speed_accel(clip)
    tr_acc = np.linalg.norm(np.diff(clip["transl"], 2, axis=0), axis=1) * clip["fps"] ** 2
    return speed.max() <= MAX_SPEED and acc.max() <= MAX_ACCEL and tr_acc.max() <= 40.0


@pytest.fixture(scope="module")
def clips():
    return {(k, s): M.generate_clip(k, T, seed=s) for k in M.KINDS for s in range(3)}


def test_contract_shapes_and_dtypes(clips):
    for (kind, _), c in clips.items():
        assert c["global_orient"].shape == (T, 3) and c["body_pose"].shape == (T, 69)
        assert c["transl"].shape == (T, 3) and c["betas"].shape == (10,)
        assert c["fps"] == 30.0 and c["kind"].split(":")[0] == kind
        for k in ("global_orient", "body_pose", "transl", "betas"):
            assert c[k].dtype == np.float32 and np.isfinite(c[k]).all()


def test_deterministic_for_a_seed():
    a, b = M.generate_clip("blend", 100, seed=7), M.generate_clip("blend", 100, seed=7)
    for k in ("global_orient", "body_pose", "transl", "betas"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["kind"] == b["kind"]
    c = M.generate_clip("blend", 100, seed=8)
    assert not np.array_equal(a["body_pose"], c["body_pose"])
    d1, d2 = M.generate_dataset(10, 60, seed=3), M.generate_dataset(10, 60, seed=3)
    assert [c["kind"].split(":")[0] for c in d1] == [M.KINDS[i % len(M.KINDS)] for i in range(10)]
    for x, y in zip(d1, d2):
        np.testing.assert_array_equal(x["body_pose"], y["body_pose"])
    assert not np.array_equal(d1[0]["body_pose"][:60], M.generate_dataset(1, 60, seed=4)[0]["body_pose"])


def test_within_joint_limits(clips):
    lim = M.JOINT_LIMITS[1:]
    for key, c in clips.items():
        e = M.joint_euler(c["body_pose"])
        assert (e >= lim[None, :, :, 0] - 1e-4).all() and (e <= lim[None, :, :, 1] + 1e-4).all(), key
    # the limit check itself can fail: a hyper-extended knee is caught
    bad = clips[("walk", 0)]["body_pose"].copy()
    bad[10, 3 * 3 : 3 * 3 + 3] = [-0.5, 0, 0]  # body_pose joint 4 (index 3) = left knee, bent backwards
    assert (M.joint_euler(bad)[10, 3, 0]) < lim[3, 0, 0] - 0.1


def test_smooth_no_pops(clips):
    for key, c in clips.items():
        assert _is_smooth(c), key
        # axis-angle never wraps (|angle| < pi), so consecutive vectors stay close
        assert np.linalg.norm(c["global_orient"], axis=1).max() < np.pi - 0.05
        assert np.abs(np.diff(c["body_pose"], axis=0)).max() < 0.6
    popped = {**clips[("run", 1)], "body_pose": clips[("run", 1)]["body_pose"].copy()}
    popped["body_pose"][100, 48:51] += 0.5  # left elbow jumps by 0.5 rad in one frame
    assert not _is_smooth(popped)


def test_motion_semantics(clips):
    dur = (T - 1) / 30.0
    for s in range(3):
        walk, run = clips[("walk", s)]["transl"], clips[("run", s)]["transl"]
        w_dist = np.linalg.norm(walk[-1, [0, 2]] - walk[0, [0, 2]])
        r_dist = np.linalg.norm(run[-1, [0, 2]] - run[0, [0, 2]])
        assert 0.6 * dur < w_dist < 1.6 * dur and r_dist > 2.0 * dur  # ~1-1.5 m/s walking, >2 m/s running
        assert clips[("squat", s)]["transl"][:, 1].min() < -0.2  # the pelvis goes down
        assert clips[("sit", s)]["transl"][:, 1].min() < -0.2
        assert clips[("jump", s)]["transl"][:, 1].max() > 0.08  # flight
        assert abs(clips[("reach", s)]["transl"]).max() < 1e-6  # standing in place
        e = M.joint_euler(clips[("wave", s)]["body_pose"])
        assert np.abs(e[:, 17:19, 1]).max() > 1.2  # an elbow (18/19 -> index 17/18) bends for the wave
        # the heading turns by > 45 deg in a turn clip
        go = torch.as_tensor(clips[("turn", s)]["global_orient"], dtype=torch.float64)
        fwd = roma.rotvec_to_rotmat(go)[:, :, 2].numpy()  # body +Z in the world
        yaw = np.unwrap(np.arctan2(fwd[:, 0], fwd[:, 2]))
        assert np.ptp(yaw) > np.pi / 4
    # the walk gait alternates: left and right hip flexion are in anti-phase
    e = M.joint_euler(clips[("walk", 0)]["body_pose"])
    assert np.corrcoef(e[:, 0, 0], e[:, 1, 0])[0, 1] < -0.8


def test_blend_and_errors():
    c = M.generate_clip("blend", 120, seed=0, blend_of=("walk", "squat"))
    assert c["kind"] == "blend:walk>squat"
    assert c["transl"][:30, 1].min() > -0.1  # starts walking (no crouch)
    with pytest.raises(ValueError, match="kind"):
        M.generate_clip("moonwalk", 10)
    with pytest.raises(ValueError, match="blend_of"):
        M.generate_clip("blend", 10, blend_of=("walk", "fly"))
    with pytest.raises(ValueError, match="n_frames"):
        M.generate_clip("walk", 1)
    b = np.arange(10, dtype=np.float32) / 10
    np.testing.assert_array_equal(M.generate_clip("walk", 5, betas=b)["betas"], b)
