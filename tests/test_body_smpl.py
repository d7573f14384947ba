"""Body model: HMR2.0 44-joint layout, vertex picks, folder resolution and errors, chumpy-free .pkl."""

import json
import pickle
import sys

import numpy as np
import pytest
import roma
import torch
from conftest import fake_smpl_arrays, fake_vertex_picks

from data_prep import paper_standins as PS
from fasthmr_lib.body.smpl import (
    PELVIS_INDEX,
    BodyModelNotFound,
    load_body_model,
    read_smpl_pkl,
    resolve_smpl_dir,
)


def random_pose(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = roma.rotvec_to_rotmat(0.4 * torch.randn(B, 24, 3, generator=g))
    return R[:, :1], R[:, 1:], torch.randn(B, 10, generator=g)


def test_joints44_layout(fake_body, fake_smpl_dir):
    go, bp, betas = random_pose(3)
    out = fake_body(go, bp, betas)
    assert out["vertices"].shape == (3, 6890, 3)
    assert out["joints24"].shape == (3, 24, 3)
    assert out["joints44"].shape == (3, 44, 3)
    j19 = torch.as_tensor(np.load(fake_smpl_dir / "SMPL_to_J19.npy"))
    # pelvis (index 39) is J19 joint 14 regressed from the vertices
    assert PELVIS_INDEX == 39
    torch.testing.assert_close(out["joints44"][:, 39], torch.einsum("v,bvc->bc", j19[14], out["vertices"]))
    torch.testing.assert_close(out["joints44"][:, 25:], torch.einsum("jv,bvc->bjc", j19, out["vertices"]))
    # OpenPose part: mid-hip (8) = SMPL pelvis (0); neck (1) = SMPL joint 12; R wrist (4) = SMPL 21
    for op, sj in ((8, 0), (1, 12), (4, 21), (12, 1)):
        torch.testing.assert_close(out["joints44"][:, op], out["joints24"][:, sj])
    # vertex-picked joints come from vertex_picks.json (not smplx's defaults)
    picks = json.loads((fake_smpl_dir / "vertex_picks.json").read_text())
    assert picks == fake_vertex_picks(0)
    for op, name in ((0, "nose"), (15, "reye"), (19, "LBigToe"), (24, "RHeel")):
        torch.testing.assert_close(out["joints44"][:, op], out["vertices"][:, picks[name]])


def test_without_vertex_picks_file_smplx_defaults_are_used(make_smpl_dir, tmp_path):
    body = load_body_model(make_smpl_dir(tmp_path / "p", picks=False))
    out = body(*random_pose(1))
    torch.testing.assert_close(out["joints44"][:, 0], out["vertices"][:, 332])  # smplx SMPL-H nose id


def test_rest_pose_hand_case_and_translation(fake_body):
    a = fake_smpl_arrays(0)
    eye = torch.eye(3).expand(2, 24, 3, 3)
    betas = torch.zeros(2, 10)
    betas[1, 3] = 2.0
    out = fake_body(eye[:, :1], eye[:, 1:], betas)
    v_expect = a["v_template"] + 2.0 * a["shapedirs"][:, :, 3]
    torch.testing.assert_close(out["vertices"][0], torch.as_tensor(a["v_template"], dtype=torch.float32))
    torch.testing.assert_close(out["vertices"][1], torch.as_tensor(v_expect, dtype=torch.float32))
    torch.testing.assert_close(
        out["joints24"][1],
        torch.as_tensor(a["J_regressor"] @ v_expect, dtype=torch.float32),
        atol=1e-5,
        rtol=0,
    )
    t = torch.tensor([[0.5, -1.0, 3.0], [0.0, 0.0, 1.0]])
    moved = fake_body(eye[:, :1], eye[:, 1:], betas, transl=t)
    for k in ("vertices", "joints24", "joints44"):
        torch.testing.assert_close(moved[k], out[k] + t[:, None], atol=1e-5, rtol=0)


def test_from_axis_angle_matches_rotation_matrices(fake_body):
    g = torch.Generator().manual_seed(3)
    aa = 0.5 * torch.randn(2, 72, generator=g)
    betas = torch.randn(2, 10, generator=g)
    R = roma.rotvec_to_rotmat(aa.reshape(2, 24, 3))
    a = fake_body.from_axis_angle(aa, betas)
    b = fake_body(R[:, 0], R[:, 1:], betas)
    torch.testing.assert_close(a["joints44"], b["joints44"])
    assert fake_body.faces.shape == (13776, 3) and fake_body.faces.dtype == np.int64
    assert fake_body.num_vertices == 6890


def test_resolve_order_and_missing_model_message(fake_smpl_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("FASTHMR_SMPL_DIR", raising=False)
    monkeypatch.setenv("FASTHMR_DATA", str(tmp_path / "data"))
    with pytest.raises(BodyModelNotFound) as e:
        resolve_smpl_dir()
    msg = str(e.value)
    assert "SMPL_NEUTRAL.pkl" in msg and "FASTHMR_SMPL_DIR" in msg and "build_body_model" in msg
    assert str(tmp_path / "data" / "body_model") in msg
    monkeypatch.setenv("FASTHMR_SMPL_DIR", str(fake_smpl_dir))
    assert resolve_smpl_dir() == fake_smpl_dir.resolve()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BodyModelNotFound, match="SMPL_NEUTRAL"):
        resolve_smpl_dir(empty)  # the argument wins over the environment variable
    with pytest.raises(ValueError, match="gender"):
        resolve_smpl_dir(fake_smpl_dir, gender="other")


def test_missing_j19_regressor_is_named(make_smpl_dir, tmp_path):
    d = make_smpl_dir(tmp_path / "noj19")
    (d / "SMPL_to_J19.npy").unlink()
    with pytest.raises(BodyModelNotFound, match="SMPL_to_J19"):
        load_body_model(d)


# --------------------------------------------------------------------------------------------
# a pickle with the structure of the official SMPL files (chumpy arrays, scipy sparse regressor):
# data_prep.paper_standins.write_chumpy_smpl_pkl


def write_chumpy_smpl_pkl(path, monkeypatch, seed=0, shift=0.0):
    a = PS.write_chumpy_smpl_pkl(path, seed=seed, shift=shift)
    assert "chumpy" not in sys.modules
    return a


def test_chumpy_pickle_converts_without_chumpy(make_smpl_dir, fake_smpl_dir, tmp_path, monkeypatch):
    d = make_smpl_dir(tmp_path / "real_like")
    (d / "SMPL_NEUTRAL.npz").unlink()
    a = write_chumpy_smpl_pkl(d / "SMPL_NEUTRAL.pkl", monkeypatch)
    with pytest.raises(ImportError):
        __import__("chumpy")
    arrays = read_smpl_pkl(d / "SMPL_NEUTRAL.pkl")
    for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
        np.testing.assert_allclose(arrays[k], a[k], rtol=0, atol=1e-12, err_msg=k)
    monkeypatch.setenv("FASTHMR_CACHE", str(tmp_path / "cache"))
    before = sorted(p.name for p in d.iterdir())
    body = load_body_model(d)  # converts once, into the user's cache
    assert sorted(p.name for p in d.iterdir()) == before  # nothing written into the user's folder
    assert len(list((tmp_path / "cache" / "smpl").glob("*/SMPL_NEUTRAL.npz"))) == 1
    ref = load_body_model(fake_smpl_dir)  # same arrays written directly as .npz
    pose = random_pose(2, seed=5)
    torch.testing.assert_close(body(*pose)["joints44"], ref(*pose)["joints44"], atol=0, rtol=0)
    torch.testing.assert_close(body(*pose)["vertices"], ref(*pose)["vertices"], atol=0, rtol=0)


def test_replaced_pickle_is_used_not_a_stale_conversion(make_smpl_dir, tmp_path, monkeypatch):
    """A pickle replaced after a conversion (or beside an older .npz) is the model that loads."""
    import os

    d = make_smpl_dir(tmp_path / "user")
    monkeypatch.setenv("FASTHMR_CACHE", str(tmp_path / "cache"))
    old_npz = d / "SMPL_NEUTRAL.npz"  # an older .npz (e.g. left by an earlier converter)
    os.utime(old_npz, ns=(1_000_000_000, 1_000_000_000))
    a = write_chumpy_smpl_pkl(d / "SMPL_NEUTRAL.pkl", monkeypatch, seed=0)
    first = load_body_model(d).v_template.clone()
    np.testing.assert_allclose(first.numpy(), a["v_template"], atol=1e-6)
    # the user replaces the pickle: the template moves by 1 m
    b = write_chumpy_smpl_pkl(d / "SMPL_NEUTRAL.pkl", monkeypatch, seed=0, shift=1.0)
    second = load_body_model(d).v_template
    np.testing.assert_allclose(second.numpy(), b["v_template"], atol=1e-6)
    torch.testing.assert_close(second - first, torch.full_like(first, 1.0), atol=1e-5, rtol=0)
    assert len(list((tmp_path / "cache" / "smpl").glob("*/SMPL_NEUTRAL.npz"))) == 2  # keyed by content
    # a user-made .npz newer than the pickle wins
    os.utime(d / "SMPL_NEUTRAL.pkl", ns=(2_000_000_000, 2_000_000_000))
    os.utime(old_npz, ns=(3_000_000_000, 3_000_000_000))
    torch.testing.assert_close(load_body_model(d).v_template, first, atol=1e-6, rtol=0)


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("should never run",))

    p = tmp_path / "SMPL_NEUTRAL.pkl"
    p.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global .*print"):
        read_smpl_pkl(p)
