"""Metrics: hand-computed cases and invariances (units: metres in, millimetres out)."""

import numpy as np
import pytest
import roma
import torch

from fasthmr_lib.eval import metrics as M


def _rot(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def test_mpjpe_hand_computed():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[0.003, 0.004, 0.0], [0.0, 0.0, 0.001]]])  # errors 5 mm and 1 mm
    assert M.mpjpe(pred, gt) == pytest.approx([3.0])
    assert isinstance(M.mpjpe(pred, gt), np.ndarray)
    assert isinstance(M.mpjpe(torch.tensor(pred), torch.tensor(gt)), torch.Tensor)


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match="equal shapes"):
        M.mpjpe(np.zeros((2, 14, 3)), np.zeros((2, 24, 3)))


def test_pa_mpjpe_invariant_to_similarity_transform():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 14, 3)) * 0.3
    R = _rot([0.3, 1.0, -0.2], 1.1)
    pred = 2.7 * gt @ R.T + np.array([0.5, -1.0, 3.0])
    assert np.allclose(M.pa_mpjpe(pred, gt), 0.0, atol=1e-6)
    assert M.mpjpe(pred, gt).min() > 100  # the raw error is large
    # adding noise: PA error is below the root-aligned error and unchanged by transforming pred
    noisy = gt + rng.normal(size=gt.shape) * 0.01
    a = M.pa_mpjpe(noisy, gt)
    b = M.pa_mpjpe(0.5 * noisy @ R.T + 1.0, gt)
    assert np.allclose(a, b, atol=1e-6)
    assert np.all(a <= M.mpjpe(M.root_align(noisy, 0), M.root_align(gt, 0)) + 1e-9)


def test_procrustes_hand_case_and_reflection_fix():
    gt = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 0]])[None]
    # 90 degrees about z, scale 2, shift: alignment must recover gt exactly
    R = _rot([0, 0, 1], np.pi / 2)
    pred = 2 * gt @ R.T + 5
    assert np.allclose(M.similarity_procrustes(pred, gt), gt, atol=1e-9)
    # a mirrored skeleton cannot be aligned by a proper rotation: error must stay > 0
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    aligned = M.similarity_procrustes(mirrored, gt)
    X = aligned[0] - aligned[0].mean(0)
    P = mirrored[0] - mirrored[0].mean(0)
    # the transform applied is a rotation (det +1), not the reflection
    T, *_ = np.linalg.lstsq(P, X, rcond=None)
    assert np.linalg.det(T) > 0
    assert M.pa_mpjpe(mirrored, gt)[0] > 1.0


def test_accel_zero_for_constant_velocity_and_hand_case():
    t = np.arange(10)[:, None, None].astype(float)
    gt = np.zeros((10, 3, 3)) + t * np.array([0.01, 0.0, 0.02])  # constant velocity
    pred = gt + np.array([0.3, -0.1, 0.0])  # constant offset
    err = M.accel_error(pred, gt)
    assert err.shape == (8,) and np.allclose(err, 0.0)
    # one joint jumps by 1 mm at frame 5 -> second difference 1, -2, 1 mm at middles 4, 5, 6 (idx 3,4,5)
    pred2 = gt.copy()
    pred2[5, 0, 0] += 0.001
    e = M.accel_error(pred2, gt)
    assert np.allclose(e[[3, 4, 5]], [1 / 3, 2 / 3, 1 / 3])
    assert np.allclose(np.delete(e, [3, 4, 5]), 0)
    assert np.allclose(M.accel_error(pred2, gt, fps=30)[4], 2 / 3 * 900 / 1000)


def test_protocols_select_and_align():
    rng = np.random.default_rng(1)
    j44 = rng.normal(size=(3, 44, 3))
    aligned, root = M.protocol_joints(j44, "3dpw14")
    sel = j44[:, list(M.J44_TO_LSP14)]
    assert np.allclose(root.numpy()[:, 0], (sel[:, 2] + sel[:, 3]) / 2)
    assert np.allclose(aligned.numpy(), sel - root.numpy())
    a2, r2 = M.protocol_joints(j44, "hmr2_14")
    assert np.allclose(r2.numpy()[:, 0], j44[:, 39])
    j24 = rng.normal(size=(3, 24, 3))
    a3, r3 = M.protocol_joints(j24, "emdb24")
    assert np.allclose(r3.numpy()[:, 0], (j24[:, 1] + j24[:, 2]) / 2)
    with pytest.raises(ValueError, match="expects 24 joints"):
        M.protocol_joints(j44[:, :30], "emdb24")
    with pytest.raises(KeyError, match="unknown evaluation protocol"):
        M.protocol_joints(j44, "h36m")


def test_evaluate_frames_translation_invariant_and_pve():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(5, 24, 3))
    verts = rng.normal(size=(5, 50, 3))
    shift = np.array([1.0, 2.0, -3.0])
    out = M.evaluate_frames(gt + shift, gt, "emdb24", verts + shift, verts)
    for k in ("mpjpe", "pa_mpjpe", "pve"):
        assert out[k].shape == (5,) and np.allclose(out[k], 0, atol=1e-6), k
    pred = gt.copy()
    pred[:, 10] += [0.024, 0, 0]  # one non-root joint off by 24 mm -> MPJPE 1 mm
    out = M.evaluate_frames(pred, gt, "emdb24")
    assert np.allclose(out["mpjpe"], 1.0)


def test_orientation_error_degrees():
    import roma

    g = roma.random_rotmat(5, generator=torch.Generator().manual_seed(0))
    yaw = roma.rotvec_to_rotmat(torch.tensor([0.0, np.pi, 0.0]))
    assert M.orientation_error(g, g).abs().max() < 1e-3
    flipped = M.orientation_error(g @ yaw, g)  # float32 inputs: acos near -1 costs ~0.05 deg
    torch.testing.assert_close(flipped, torch.full((5,), 180.0), atol=0.1, rtol=0)
    quarter = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, np.pi / 2]))
    out = M.orientation_error((g @ quarter).numpy(), g.numpy())
    assert isinstance(out, np.ndarray) and np.allclose(out, 90.0, atol=1e-3)
    with pytest.raises(ValueError, match=r"must be \(\.\.\., 3, 3\)"):
        M.orientation_error(g[:, :2], g[:, :2])


def test_evaluate_poses_zero_for_gt_and_pa_invariant(fake_body):
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(6, 72, generator=g) * 0.3
    betas = torch.randn(6, 10, generator=g)
    gt = {"c": {"pose": pose, "betas": betas}}
    R = roma.rotvec_to_rotmat(pose.reshape(6, 24, 3))
    df = M.evaluate_poses(fake_body, {"c": {"rotmat": R, "betas": betas}}, gt, method="gt")
    assert len(df) == 6 and df["method"].eq("gt").all() and np.isnan(df["accel"].iloc[[0, -1]]).all()
    assert df[["mpjpe", "pa_mpjpe", "pve"]].abs().max().max() < 1e-3 and df["accel"].abs().max() < 1e-3
    R2 = R.clone()
    R2[:, 0] = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.4, 0.0])) @ R[:, 0]  # a global rotation
    df2 = M.evaluate_poses(fake_body, {"c": {"rotmat": R2, "betas": betas}}, gt, protocol="emdb24")
    assert df2["mpjpe"].min() > 1.0 and df2["pa_mpjpe"].max() < 1e-2
