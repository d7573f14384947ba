"""The library's evaluation protocols against small independent ports of the code behind the paper's
numbers: WHAM's evaluation (``lib/eval/evaluate_3dpw.py``, ``evaluate_emdb.py``, ``eval_utils.py``) for
``wham_3dpw14`` / ``wham_emdb24``, and 4D-Humans' evaluator (``hmr2/utils/pose_utils.py`` ``Evaluator`` /
``eval_pose``, ``datasets_eval.yaml`` 3DPW-TEST ``KEYPOINT_LIST``, ``PELVIS_IND: 39``) for ``hmr2_14``.

The ports below are written from those sources' formulas in plain numpy, without the library's code, on a
random SMPL-format body (tests/conftest.py) and a random H36M regressor file of matching shape."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from fasthmr_lib.eval import metrics as M

# ------------------------------------------------------------------------------------------------ ports
# WHAM configs/constants.py: H36M_TO_J17, and H36M_TO_J14 = its first 14 entries
WHAM_H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
WHAM_H36M_TO_J14 = WHAM_H36M_TO_J17[:14]
# 4D-Humans hmr2/configs/datasets_eval.yaml (3DPW-TEST) and configs_hydra/experiment/default.yaml
HMR2_KEYPOINT_LIST = [25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 43]
HMR2_PELVIS_IND = 39


def port_similarity(S1: np.ndarray, S2: np.ndarray) -> np.ndarray:
    """WHAM / HMR ``batch_compute_similarity_transform``: S1, S2 (B, N, 3) -> S1_hat (B, N, 3)."""
    out = np.empty_like(S1)
    for b in range(S1.shape[0]):
        X, Y = S1[b].T, S2[b].T  # 3 x N
        mu1, mu2 = X.mean(1, keepdims=True), Y.mean(1, keepdims=True)
        X1, X2 = X - mu1, Y - mu2
        var1 = np.sum(X1**2)
        K = X1 @ X2.T
        U, _, Vh = np.linalg.svd(K)
        V = Vh.T
        Z = np.eye(3)
        Z[-1, -1] *= np.sign(np.linalg.det(U @ V.T))
        R = V @ Z @ U.T
        scale = np.trace(R @ K) / var1
        t = mu2 - scale * (R @ mu1)
        out[b] = (scale * (R @ X) + t).T
    return out


def port_compute_error_accel(joints_gt: np.ndarray, joints_pred: np.ndarray) -> np.ndarray:
    """WHAM ``compute_error_accel`` without visibility: (N, J, 3) -> (N-2,) in the input's unit/frame²."""
    accel_gt = joints_gt[:-2] - 2 * joints_gt[1:-1] + joints_gt[2:]
    accel_pred = joints_pred[:-2] - 2 * joints_pred[1:-1] + joints_pred[2:]
    return np.mean(np.linalg.norm(accel_pred - accel_gt, axis=2), axis=1)


def port_wham_sequence(pred_j3d, target_j3d, pred_verts, target_verts, pelvis_idxs) -> dict[str, np.ndarray]:
    """The per-sequence block of WHAM's evaluate_3dpw.py / evaluate_emdb.py (metres in)."""
    m2mm = 1e3
    pp = pred_j3d[:, pelvis_idxs].mean(1, keepdims=True)
    tp = target_j3d[:, pelvis_idxs].mean(1, keepdims=True)
    pred_j3d, target_j3d = pred_j3d - pp, target_j3d - tp
    pred_verts, target_verts = pred_verts - pp, target_verts - tp
    S1_hat = port_similarity(pred_j3d, target_j3d)
    return {
        "pa_mpjpe": np.sqrt(((S1_hat - target_j3d) ** 2).sum(-1)).mean(-1) * m2mm,
        "mpjpe": np.sqrt(((pred_j3d - target_j3d) ** 2).sum(-1)).mean(-1) * m2mm,
        "pve": np.sqrt(((pred_verts - target_verts) ** 2).sum(-1)).mean(-1) * m2mm,
        "accel": port_compute_error_accel(target_j3d, pred_j3d)[1:-1] * (30**2),  # "per s^2"
    }


def port_hmr2_eval_pose(pred_kp3d: np.ndarray, gt_kp3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4D-Humans ``Evaluator.__call__`` (mode sample) + ``eval_pose``: (B, 44, 3) metres -> mm."""
    pred = pred_kp3d - pred_kp3d[:, [HMR2_PELVIS_IND]]
    gt = gt_kp3d - gt_kp3d[:, [HMR2_PELVIS_IND]]
    pred, gt = pred[:, HMR2_KEYPOINT_LIST], gt[:, HMR2_KEYPOINT_LIST]
    mpjpe = np.sqrt(((pred - gt) ** 2).sum(-1)).mean(-1)
    re = np.sqrt(((port_similarity(pred, gt) - gt) ** 2).sum(-1)).mean(-1)
    return 1000 * mpjpe, 1000 * re


# ----------------------------------------------------------------------------------------------- fixtures
T = 10


def random_regressor(num_vertices: int, seed: int = 0) -> np.ndarray:
    """(17, V) non-negative rows summing to 1, each joint on a few random vertices (like the real one)."""
    rng = np.random.default_rng(seed)
    reg = np.zeros((17, num_vertices), np.float32)
    for j in range(17):
        idx = rng.choice(num_vertices, 30, replace=False)
        reg[j, idx] = rng.random(30) + 0.1
    return reg / reg.sum(1, keepdims=True)


@pytest.fixture
def regressor_file(tmp_path, fake_body):
    path = tmp_path / "J_regressor_h36m.npy"
    np.save(path, random_regressor(fake_body.num_vertices))
    return path


def clip(seed: int = 0):
    """Smooth GT clip (T frames) and a noisy prediction with other betas: (pred, gt) dicts."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float32)[:, None]
    pose = torch.randn(1, 72, generator=g) * 0.3 + 0.05 * torch.sin(t + torch.randn(1, 72, generator=g))
    betas = torch.randn(T, 10, generator=g)
    pred_pose = pose + torch.randn(T, 72, generator=g) * 0.08
    pred_betas = betas + torch.randn(T, 10, generator=g) * 0.3
    R = roma.rotvec_to_rotmat(pred_pose.reshape(T, 24, 3))
    return {"c": {"rotmat": R, "betas": pred_betas}}, {"c": {"pose": pose, "betas": betas}}


def bodies(body, pred, gt):
    """Body-model outputs of the clip: (pred out, gt out) as numpy float64 dicts."""
    R = pred["c"]["rotmat"]
    op = body(R[:, :1], R[:, 1:], pred["c"]["betas"])
    og = body.from_axis_angle(gt["c"]["pose"], gt["c"]["betas"])
    to_np = lambda o: {k: v.detach().double().numpy() for k, v in o.items()}  # noqa: E731
    return to_np(op), to_np(og)


def check_against(df, ref: dict[str, np.ndarray], accel_col: str = "accel_ms2") -> None:
    for k in ("mpjpe", "pa_mpjpe", "pve"):
        np.testing.assert_allclose(df[k].to_numpy(), ref[k], rtol=1e-4, atol=1e-3, err_msg=k)
    acc = df[accel_col].to_numpy()
    np.testing.assert_allclose(acc[2:-2], ref["accel"], rtol=1e-4, atol=1e-4)
    assert np.isnan(acc[[0, 1, -2, -1]]).all()


# ------------------------------------------------------------------------------------------------- tests
def test_wham_3dpw14_matches_port_of_wham(fake_body, regressor_file):
    pred, gt = clip()
    df = M.evaluate_poses(fake_body, pred, gt, protocol="wham_3dpw14", h36m_regressor=regressor_file)
    op, og = bodies(fake_body, pred, gt)
    J = np.load(regressor_file).astype(np.float64)[WHAM_H36M_TO_J14]
    ref = port_wham_sequence(
        np.einsum("jv,bvc->bjc", J, op["vertices"]),
        np.einsum("jv,bvc->bjc", J, og["vertices"]),
        op["vertices"],
        og["vertices"],
        [2, 3],
    )
    check_against(df, ref)
    assert ref["mpjpe"].mean() > 5.0  # a real error is being compared, not zeros
    # the mesh-regressed joints are not the J44 ones: the same meshes score differently under 3dpw14
    d14 = M.evaluate_poses(fake_body, pred, gt, protocol="3dpw14")
    assert np.abs(d14["mpjpe"].to_numpy() - ref["mpjpe"]).max() > 1.0


def test_wham_emdb24_matches_port_of_wham(fake_body):
    pred, gt = clip(seed=1)
    df = M.evaluate_poses(fake_body, pred, gt, protocol="wham_emdb24")
    op, og = bodies(fake_body, pred, gt)
    # WHAM evaluate_emdb.py: smpl(...).joints[:, :24], pelvis_idxs = [1, 2]
    ref = port_wham_sequence(op["joints24"], og["joints24"], op["vertices"], og["vertices"], [1, 2])
    check_against(df, ref)
    # emdb24 shares joints and root; only Accel's frame rule differs (consecutive-frame triples)
    e24 = M.evaluate_poses(fake_body, pred, gt, protocol="emdb24")
    np.testing.assert_allclose(e24["mpjpe"], df["mpjpe"], rtol=1e-6)
    assert e24["accel_ms2"].notna().sum() == T - 2 and df["accel_ms2"].notna().sum() == T - 4


def test_hmr2_14_matches_port_of_4d_humans_evaluator(fake_body):
    pred, gt = clip(seed=2)
    df = M.evaluate_poses(fake_body, pred, gt, protocol="hmr2_14")
    op, og = bodies(fake_body, pred, gt)
    mpjpe, re = port_hmr2_eval_pose(op["joints44"], og["joints44"])
    np.testing.assert_allclose(df["mpjpe"].to_numpy(), mpjpe, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(df["pa_mpjpe"].to_numpy(), re, rtol=1e-4, atol=1e-3)
    # 3dpw14 = the same 14 joints with WHAM's hip-mean root: PA-MPJPE agrees (translation-free), MPJPE not
    d14 = M.evaluate_poses(fake_body, pred, gt, protocol="3dpw14")
    np.testing.assert_allclose(d14["pa_mpjpe"].to_numpy(), re, rtol=1e-4, atol=1e-3)
    assert np.abs(d14["mpjpe"].to_numpy() - mpjpe).max() > 0.1


def test_regressor_from_env_var_and_frames_api(fake_body, regressor_file, monkeypatch):
    pred, gt = clip(seed=3)
    op, og = bodies(fake_body, pred, gt)
    monkeypatch.setenv("FASTHMR_H36M_REGRESSOR", str(regressor_file))
    t = lambda a: torch.from_numpy(a).float()  # noqa: E731
    out = M.evaluate_frames(None, None, "wham_3dpw14", t(op["vertices"]), t(og["vertices"]))
    ref = M.evaluate_poses(fake_body, pred, gt, protocol="wham_3dpw14")  # also from the env var
    np.testing.assert_allclose(out["mpjpe"], ref["mpjpe"], rtol=1e-5)
    assert out["pve"].shape == (T,)


def test_missing_or_mismatched_regressor_errors_name_the_file(fake_body, tmp_path, monkeypatch):
    pred, gt = clip()
    monkeypatch.delenv("FASTHMR_H36M_REGRESSOR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"J_regressor_h36m\.npy.*FASTHMR_H36M_REGRESSOR"):
        M.evaluate_poses(fake_body, pred, gt, protocol="wham_3dpw14")
    with pytest.raises(FileNotFoundError, match="not found: .*nowhere.npy"):
        M.evaluate_poses(fake_body, pred, gt, protocol="wham_3dpw14", h36m_regressor=tmp_path / "nowhere.npy")
    bad = tmp_path / "J_regressor_h36m.npy"
    np.save(bad, random_regressor(100))
    with pytest.raises(ValueError, match=r"100 vertex columns but the body model has 6890"):
        M.evaluate_poses(fake_body, pred, gt, protocol="wham_3dpw14", h36m_regressor=bad)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"junk.npy: not a numpy .npy array"):
        M.load_h36m_regressor(junk)
    with pytest.raises(ValueError, match=r"shape \(17, V\)"):
        M.load_h36m_regressor(np.zeros((14, 6890)))
    with pytest.raises(ValueError, match="regresses its joints from the mesh"):
        M.evaluate_frames(torch.zeros(2, 44, 3), torch.zeros(2, 44, 3), "wham_3dpw14", h36m_regressor=bad)


def test_clip_accel_frame_rules():
    rng = np.random.default_rng(0)
    pred, gt = rng.normal(size=(7, 3, 3)), rng.normal(size=(7, 3, 3))
    frames = np.array([0, 1, 2, 3, 5, 6, 7])  # a gap between 3 and 5
    e = port_compute_error_accel(gt, pred) * 1000.0  # mm/frame²
    a = M.clip_accel(pred, gt, frames, "emdb24")
    np.testing.assert_allclose(a[[1, 2, 5]], e[[0, 1, 4]])
    assert np.isnan(a[[0, 3, 4, 6]]).all()  # ends and the two frames next to the gap
    w = M.clip_accel(pred, gt, frames, "wham_emdb24")  # WHAM: frames as one sequence, [1:-1]
    np.testing.assert_allclose(w[2:-2], e[1:-1])
    assert np.isnan(w[[0, 1, 5, 6]]).all()
    assert M.accel_ms2(10.0) == pytest.approx(9.0)  # 30 fps: mm/frame² x 900 / 1000


def test_wham_3dpw14_on_the_embedded_body_model(embedded_body_dir, tmp_path):
    from fasthmr_lib.body.smpl import load_body_model

    body = load_body_model(embedded_body_dir)
    assert body.num_vertices != 6890  # the embedded model has its own vertex count
    path = tmp_path / "J_regressor_h36m.npy"
    np.save(path, random_regressor(body.num_vertices, seed=4))
    pred, gt = clip(seed=4)
    df = M.evaluate_poses(body, pred, gt, protocol="wham_3dpw14", h36m_regressor=path)
    op, og = bodies(body, pred, gt)
    J = np.load(path).astype(np.float64)[WHAM_H36M_TO_J14]
    jp, jg = np.einsum("jv,bvc->bjc", J, op["vertices"]), np.einsum("jv,bvc->bjc", J, og["vertices"])
    check_against(df, port_wham_sequence(jp, jg, op["vertices"], og["vertices"], [2, 3]))


def test_gendered_gt_body_per_clip(fake_body, make_smpl_dir, tmp_path):
    """WHAM poses the GT with the subject's gendered SMPL: ``gt_smpl`` (one model or one per clip) does that;
    the prediction stays on the neutral model."""
    from fasthmr_lib.body.smpl import load_body_model

    other = load_body_model(make_smpl_dir(tmp_path / "other", seed=5))  # stands in for a gendered model
    pred, gt = clip(seed=6)
    df = M.evaluate_poses(fake_body, pred, gt, protocol="wham_emdb24", gt_smpl={"c": other})
    op, _ = bodies(fake_body, pred, gt)
    _, og = bodies(other, pred, gt)
    ref = port_wham_sequence(op["joints24"], og["joints24"], op["vertices"], og["vertices"], [1, 2])
    check_against(df, ref)
    same = M.evaluate_poses(fake_body, pred, gt, protocol="wham_emdb24")
    assert np.abs(same["mpjpe"].to_numpy() - df["mpjpe"].to_numpy()).max() > 1.0
