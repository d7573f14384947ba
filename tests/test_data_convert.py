"""Real-dataset converters (``data_prep/convert_*.py``): tiny source trees in each documented format are
converted and read back with the records API; world -> camera geometry, 2D keypoints, resampling,
error messages (file + field) and the writer's meta.json / atomicity contract are checked."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import fake_smpl_arrays, write_smpl_dir

from data_prep import (
    convert_3dpw,
    convert_amass,
    convert_bedlam,
    convert_common,
    convert_emdb,
    convert_h36m,
    convert_mpi_inf_3dhp,
)
from data_prep.convert_common import (
    BodyModels,
    ConversionError,
    boxes_from_points,
    camera_to_world,
    check_array,
    get_array,
    get_field,
    load_pickle,
    normalize_gender,
    project_points,
    resample_linear,
    resample_positions,
    resample_rotvecs,
    rotvec_to_rotmat,
    sanitize_id,
    to_str,
    world_to_camera,
)
from data_prep.paper_standins import K640  # noqa: E402
from data_prep.paper_standins import amass_file as _amass_file  # noqa: E402
from data_prep.paper_standins import camera_looking_at as _camera_looking_at  # noqa: E402
from data_prep.paper_standins import dump_pickle as _dump  # noqa: E402
from data_prep.paper_standins import emdb_sequence as _emdb_sequence  # noqa: E402
from data_prep.paper_standins import pw3d_sequence as _pw3d_sequence  # noqa: E402
from data_prep.paper_standins import rot as _rot  # noqa: E402
from data_prep.paper_standins import smpl_world as _smpl_world  # noqa: E402
from data_prep.paper_standins import write_image as _write_image  # noqa: E402
from fasthmr_lib.body.smpl import load_body_model
from fasthmr_lib.data.records import load_clip, read_meta, split_clip_ids, split_clip_paths

# ------------------------------------------------------------------------------------ helpers

_BODIES: dict[tuple[str, str], object] = {}


def _body(smpl_dir, gender="neutral"):
    key = (str(smpl_dir), gender)
    if key not in _BODIES:
        _BODIES[key] = load_body_model(smpl_dir, gender).eval()
    return _BODIES[key]


@torch.no_grad()
def _posed(body, go, bp, betas, transl):
    """joints44 (T,44,3), vertices (T,V,3) float64 of axis-angle SMPL parameters."""
    go = np.asarray(go, np.float64).reshape(-1, 3)
    T = len(go)
    pose = np.concatenate([go, np.asarray(bp, np.float64).reshape(T, 69)], 1)
    betas = np.broadcast_to(np.asarray(betas, np.float64).reshape(-1, 10), (T, 10))
    out = body.from_axis_angle(
        torch.tensor(pose, dtype=torch.float32),
        torch.tensor(np.ascontiguousarray(betas), dtype=torch.float32),
        torch.tensor(np.asarray(transl, np.float64).reshape(T, 3), dtype=torch.float32),
    )
    return out["joints44"].double().numpy(), out["vertices"].double().numpy()


def _pinhole(K, X):
    """Independent pinhole projection (u = fx x/z + cx, v = fy y/z + cy) and in-front flags."""
    z = X[..., 2]
    return np.stack([K[0, 0] * X[..., 0] / z + K[0, 2], K[1, 1] * X[..., 1] / z + K[1, 2]], -1), z > 1e-6


def _assert_projection(clip, j_cam, v_cam, size, expect_hidden=False):
    """joints2d = K-projection of the camera-frame joints (visible = in front and inside the (W,H) image);
    boxes = tight clipped box of the projected vertices."""
    assert np.all(j_cam[..., 2] > 0.5) and np.all(v_cam[..., 2] > 0.5)  # the test scenes keep people in front
    uv, front = _pinhole(clip.K.astype(np.float64), j_cam)
    np.testing.assert_allclose(clip.joints2d[..., :2], uv, atol=0.05)
    W, H = size
    inside = front & (uv[..., 0] >= 0) & (uv[..., 0] <= W - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= H - 1)
    border = np.minimum.reduce([uv[..., 0], W - 1 - uv[..., 0], uv[..., 1], H - 1 - uv[..., 1]])
    clear = np.abs(border) > 0.5  # joints not within half a pixel of the image border
    np.testing.assert_array_equal(clip.joints2d[..., 2][clear], inside[clear].astype(np.float32))
    assert inside.any()
    if expect_hidden:
        assert (~inside).any(), "the test scene should put some joints outside the image"
    uvv, fv = _pinhole(clip.K.astype(np.float64), v_cam)
    np.testing.assert_allclose(clip.boxes, boxes_from_points(uvv, fv, size), atol=0.05)


def _assert_world_consistent(clip, body, go_w, bp, betas, tr_w, R, T, size, expect_hidden=False):
    """The stored camera-frame parameters pose the body exactly as the world-frame ones moved by (R,T)."""
    R = np.broadcast_to(R, (len(go_w), 3, 3))
    T = np.broadcast_to(T, (len(go_w), 3))
    np.testing.assert_allclose(clip.cam_R, R, atol=1e-6)
    np.testing.assert_allclose(clip.cam_T, T, atol=1e-6)
    np.testing.assert_allclose(clip.body_pose, np.asarray(bp).reshape(-1, 69), atol=1e-6)
    np.testing.assert_allclose(
        clip.betas, np.broadcast_to(np.asarray(betas)[..., :10], clip.betas.shape), atol=1e-6
    )
    jw, vw = _posed(body, go_w, bp, betas, tr_w)
    jc, vc = _posed(body, clip.global_orient, clip.body_pose, clip.betas, clip.transl)
    np.testing.assert_allclose(jc, np.einsum("tij,tnj->tni", R, jw) + T[:, None], atol=2e-4)
    np.testing.assert_allclose(vc, np.einsum("tij,tnj->tni", R, vw) + T[:, None], atol=2e-4)
    _assert_projection(clip, jc, vc, size, expect_hidden)


def _clips(out, split):
    return {p.stem: load_clip(p) for p in split_clip_paths(out, split)}


def _assert_no_temp_files(root):
    assert not [p for p in Path(root).rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def gendered_smpl_dir(tmp_path_factory):
    """Fake SMPL folder with a neutral and a (different) male model; no female model."""
    d = write_smpl_dir(tmp_path_factory.mktemp("smpl_mn"))
    np.savez(d / "SMPL_MALE.npz", **fake_smpl_arrays(seed=1))
    return d


# ------------------------------------------------------------------------------------ convert_common


def test_world_to_camera_is_the_exact_smpl_rule_and_round_trips(fake_smpl_dir):
    rng = np.random.default_rng(0)
    body = _body(fake_smpl_dir)
    pose, trans, betas = _smpl_world(rng, 4, [0.3, -0.2, 1.0])
    R = _rot(rng.normal(0, 0.8, (4, 3)))
    T = rng.normal(0, 1.0, (4, 3))
    pelvis = BodyModels(fake_smpl_dir).rest_pelvis("neutral", np.tile(betas, (4, 1)))
    assert pelvis.shape == (4, 3) and np.linalg.norm(pelvis[0]) > 1e-3
    go_c, t_c = world_to_camera(pose[:, :3], trans, R, T, pelvis)
    jw, _ = _posed(body, pose[:, :3], pose[:, 3:], betas, trans)
    jc, _ = _posed(body, go_c, pose[:, 3:], betas, t_c)
    np.testing.assert_allclose(jc, np.einsum("tij,tnj->tni", R, jw) + T[:, None], atol=2e-4)
    # without the rest-pelvis offset the joints are off by (R - I) J0: the offset matters
    go0, t0 = world_to_camera(pose[:, :3], trans, R, T, np.zeros(3))
    j0, _ = _posed(body, go0, pose[:, 3:], betas, t0)
    assert np.abs(j0 - jc).max() > 1e-3
    # camera_to_world inverts it (per-frame and shared (3,3)/(3,) cameras)
    go_w, t_w = camera_to_world(go_c, t_c, R, T, pelvis)
    np.testing.assert_allclose(rotvec_to_rotmat(go_w), rotvec_to_rotmat(pose[:, :3]), atol=1e-9)
    np.testing.assert_allclose(t_w, trans, atol=1e-9)
    go1, t1 = world_to_camera(pose[:, :3], trans, R[0], T[0], pelvis[0])
    go2, t2 = camera_to_world(go1, t1, R[0], T[0], pelvis[0])
    np.testing.assert_allclose(t2, trans, atol=1e-9)
    np.testing.assert_allclose(rotvec_to_rotmat(go2), rotvec_to_rotmat(pose[:, :3]), atol=1e-9)
    # an identity camera leaves the parameters unchanged
    goi, ti = world_to_camera(pose[:, :3], trans, np.eye(3), np.zeros(3), pelvis)
    np.testing.assert_allclose(goi, pose[:, :3], atol=1e-9)
    np.testing.assert_allclose(ti, trans, atol=1e-12)
    # hand-checked translation: t' = R (J0 + t) + T - J0
    Rz = _rot([0, 0, np.pi / 2])
    _, tt = world_to_camera(np.zeros((1, 3)), np.array([[1.0, 0, 0]]), Rz, [0, 0, 5.0], [0, 1.0, 0])
    np.testing.assert_allclose(tt, [[-1.0, 0.0, 5.0]], atol=1e-12)


def test_resample_positions_and_linear():
    np.testing.assert_array_equal(resample_positions(9, 120, 30), [0, 4, 8])
    np.testing.assert_array_equal(resample_positions(12, 120, 30), [0, 4, 8])
    np.testing.assert_allclose(resample_positions(11, 100, 30), [0, 10 / 3, 20 / 3, 10], atol=1e-9)
    np.testing.assert_allclose(resample_positions(3, 25, 50), [0, 0.5, 1, 1.5, 2])
    np.testing.assert_array_equal(resample_positions(5, 30, 30), np.arange(5))
    with pytest.raises(ValueError, match="frame rates"):
        resample_positions(5, 0, 30)
    x = np.array([[0.0, 10.0], [1.0, 20.0], [3.0, 40.0]])
    np.testing.assert_allclose(
        resample_linear(x, np.array([0, 0.5, 1.25, 2])), [[0, 10], [0.5, 15], [1.5, 25], [3, 40]]
    )


def test_resample_rotvecs_endpoints_midpoints_and_shortest_arc():
    rng = np.random.default_rng(1)
    rv = rng.normal(0, 0.6, (5, 4, 3))
    pos = np.arange(5.0)
    np.testing.assert_allclose(resample_rotvecs(rv, pos), rv, atol=1e-9)  # integer frames: exact
    np.testing.assert_allclose(resample_rotvecs(rv, np.array([4.0])), rv[4:], atol=1e-9)  # last frame
    # same axis: the angle is interpolated linearly
    ax = np.array([0.0, 0.6, 0.8])
    seq = np.stack([0.2 * ax, 1.0 * ax])
    np.testing.assert_allclose(resample_rotvecs(seq, np.array([0.25])), [0.4 * ax], atol=1e-9)
    # shortest arc: +170 deg -> -170 deg about z passes through 180 deg, not through 0
    z = np.array([0.0, 0.0, 1.0])
    mid = resample_rotvecs(np.stack([np.deg2rad(170) * z, np.deg2rad(-170) * z]), np.array([0.5]))
    np.testing.assert_allclose(rotvec_to_rotmat(mid)[0], _rot(np.pi * z), atol=1e-9)


def test_project_points_and_boxes():
    K = np.array([[100.0, 0, 50], [0, 200.0, 40], [0, 0, 1]])
    X = np.array([[0.0, 0, 2], [1.0, -0.5, 2], [1.0, 1.0, -1.0], [0.0, 0.0, 0.0]])
    uv, front = project_points(K, X)
    np.testing.assert_allclose(uv, [[50, 40], [100, -10], [0, 0], [0, 0]])
    np.testing.assert_array_equal(front, [True, True, False, False])
    assert np.all(np.isfinite(uv))
    pts = np.array([[[10.0, 5.0], [30.0, 50.0], [-5.0, 20.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    valid = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(boxes_from_points(pts, valid, None), [[10, 5, 30, 50], [0, 0, 0, 0]])
    np.testing.assert_allclose(
        boxes_from_points(pts, np.ones((2, 3), bool), (20, 40)), [[0, 5, 19, 39], [1, 1, 3, 3]]
    )


def test_source_file_readers_name_file_and_field(tmp_path):
    p = _dump(tmp_path / "a.pkl", {"x": np.arange(3)})
    assert load_pickle(p)["x"].tolist() == [0, 1, 2]
    # Python-3 protocol-2 pickles store an empty array's data as bytes(): must load
    e = load_pickle(_dump(tmp_path / "e.pkl", {"idx": np.array([], np.int64), "b": b""}, protocol=2))
    assert e["idx"].shape == (0,) and e["idx"].dtype == np.int64 and e["b"] == b""
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(ConversionError, match=r"a\.pkl: not a readable pickle"):
        load_pickle(p)
    (tmp_path / "t.pkl").write_text("hello, not a pickle")
    with pytest.raises(ConversionError, match=r"t\.pkl: not a readable pickle"):
        load_pickle(tmp_path / "t.pkl")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    _dump(tmp_path / "evil.pkl", {"x": Evil()})
    with pytest.raises(ConversionError, match=r"evil\.pkl"):
        load_pickle(tmp_path / "evil.pkl")
    with pytest.raises(ConversionError, match=r"missing\.pkl: pickle file not found"):
        load_pickle(tmp_path / "missing.pkl")
    d = {"smpl": {"trans": np.zeros((4, 2)), "poses": np.zeros((4, 3))}}
    with pytest.raises(ConversionError, match=r"f\.pkl: missing key 'smpl\.betas'"):
        get_field(d["smpl"], "betas", "f.pkl", "smpl")
    with pytest.raises(
        ConversionError, match=r"f\.pkl: key 'smpl\.trans' has shape \(4, 2\), expected \(n, 3\)"
    ):
        get_array(d["smpl"], "trans", "f.pkl", ("n", 3), parent="smpl")
    dims: dict[str, int] = {}
    check_array(np.zeros((4, 3)), "f.pkl", "a", ("n", 3), dims)
    with pytest.raises(ConversionError, match=r"key 'b' has shape \(5, 3\), expected \(n, 3\) with n = 4"):
        check_array(np.zeros((5, 3)), "f.pkl", "b", ("n", 3), dims)
    with pytest.raises(ConversionError, match="NaN or inf"):
        check_array([1.0, np.nan], "f.pkl", "c", (2,))
    with pytest.raises(ConversionError, match="not numeric"):
        check_array(["a", "b"], "f.pkl", "d", (2,))
    with pytest.raises(ConversionError, match="top level is a list"):
        get_field([1, 2], "k", "f.pkl")
    assert normalize_gender(b"m") == "male" and normalize_gender(np.array(["f"])) == "female"
    assert normalize_gender("other") == "neutral" and to_str(np.array(b"abc")) == "abc"
    assert sanitize_id("CMU", "01 a/b", "") == "CMU__01_a_b"


# ------------------------------------------------------------------------------------ 3DPW


@pytest.fixture(scope="module")
def pw3d(tmp_path_factory, fake_smpl_dir):
    rng = np.random.default_rng(3)
    src = tmp_path_factory.mktemp("3dpw")
    data = {
        "courtyard_walk_00": ("test", _pw3d_sequence(rng, "courtyard_walk_00", 5, ["m", "f"], {1: [1, 3]})),
        "outdoors_fencing_01": ("train", _pw3d_sequence(rng, "outdoors_fencing_01", 4, ["f"])),
    }
    for name, (split, d) in data.items():
        _dump(src / "sequenceFiles" / split / f"{name}.pkl", d)
    _write_image(convert_3dpw.image_file(src, "outdoors_fencing_01", 0), (400, 300))  # size from the image
    out = src.parent / (src.name + "_out")
    paths = convert_3dpw.convert(src, out, smpl_dir=fake_smpl_dir, progress=False)
    return SimpleNamespace(src=src, out=out, paths=paths, data=data)


def test_3dpw_clips_splits_frames_and_meta(pw3d):
    meta = read_meta(pw3d.out)
    assert meta["source"] == "3dpw" and meta["kind"] == "clips"
    assert meta["splits"] == {
        "test": ["courtyard_walk_00_p0", "courtyard_walk_00_p1"],
        "train": ["outdoors_fencing_01_p0"],
    }
    assert meta["frames"] == {"test": 5 + 3, "train": 4}
    assert meta["body_model"]["gender_fallback_to_neutral"] == ["female", "male"]
    assert meta["clips"]["courtyard_walk_00_p0"]["image_size_from"] == "K"
    assert meta["clips"]["outdoors_fencing_01_p0"]["image_size_from"] == "image"
    assert meta["clips"]["outdoors_fencing_01_p0"]["image_size"] == [400, 300]
    assert sorted(p.name for p in pw3d.paths) == sorted(
        f"{i}.npz" for v in meta["splits"].values() for i in v
    )
    test = _clips(pw3d.out, "test")
    c0, c1 = test["courtyard_walk_00_p0"], test["courtyard_walk_00_p1"]
    assert (c0.n_frames, c1.n_frames) == (5, 3)
    assert c1.extras["frame_ids"].tolist() == [0, 2, 4]  # campose_valid
    assert (c0.gender, c1.gender, c0.source, c0.split, c0.fps) == ("male", "female", "3dpw", "test", 30.0)
    assert [Path(p).name for p in c1.image_paths] == ["image_00000.jpg", "image_00002.jpg", "image_00004.jpg"]
    assert all(Path(p).is_absolute() for p in c1.image_paths)
    assert c0.joints2d.shape == (5, 44, 3) and c0.K.shape == (3, 3) and c0.cam_R.shape == (5, 3, 3)
    np.testing.assert_allclose(c0.K, K640, atol=1e-4)
    assert np.all(c0.occlusion == 0) and c0.mask is None


def test_3dpw_world_to_camera_and_keypoints(pw3d, fake_smpl_dir):
    body = _body(fake_smpl_dir)
    for name, (split, d) in pw3d.data.items():
        clips = _clips(pw3d.out, split)
        for p in range(len(d["poses"])):
            clip = clips[f"{name}_p{p}"]
            keep = np.flatnonzero(d["campose_valid"][p])
            cam = d["cam_poses"][keep]
            pose, tr = d["poses"][p][keep], d["trans"][p][keep]
            size = (400, 300) if name == "outdoors_fencing_01" else (640, 480)
            _assert_world_consistent(
                clip,
                body,
                pose[:, :3],
                pose[:, 3:],
                d["betas"][p],
                tr,
                cam[:, :3, :3],
                cam[:, :3, 3],
                size,
                expect_hidden=size == (400, 300),
            )


def test_3dpw_uses_the_gender_model_for_the_pelvis(tmp_path, gendered_smpl_dir):
    rng = np.random.default_rng(4)
    d = _pw3d_sequence(rng, "downtown_x_00", 3, ["m", "f"])
    _dump(tmp_path / "src" / "sequenceFiles" / "validation" / "downtown_x_00.pkl", d)
    convert_3dpw.convert(tmp_path / "src", tmp_path / "out", smpl_dir=gendered_smpl_dir, progress=False)
    meta = read_meta(tmp_path / "out")
    assert meta["clips"]["downtown_x_00_p0"]["body_gender"] == "male"
    assert meta["clips"]["downtown_x_00_p1"]["body_gender"] == "neutral"
    assert meta["body_model"]["gender_fallback_to_neutral"] == ["female"]
    models = BodyModels(gendered_smpl_dir)
    b = np.tile(d["betas"][0], (1, 1))
    assert np.abs(models.rest_pelvis("male", b) - models.rest_pelvis("neutral", b)).max() > 5e-3
    clips = _clips(tmp_path / "out", "validation")
    cam = d["cam_poses"]
    for p, gender in ((0, "male"), (1, "neutral")):
        pose = d["poses"][p]
        _assert_world_consistent(
            clips[f"downtown_x_00_p{p}"],
            _body(gendered_smpl_dir, gender),
            pose[:, :3],
            pose[:, 3:],
            d["betas"][p],
            d["trans"][p],
            cam[:, :3, :3],
            cam[:, :3, 3],
            (640, 480),
        )


def test_3dpw_cli_dataset_boxes_all_frames_relative_paths(pw3d, fake_smpl_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    convert_3dpw.main(
        [
            str(pw3d.src),
            str(out),
            "--smpl-dir",
            str(fake_smpl_dir),
            "--box-source",
            "dataset",
            "--all-frames",
            "--relative-paths",
        ]
    )
    assert "wrote 3 records" in capsys.readouterr().out
    meta = read_meta(out)
    assert meta["params"]["box_source"] == "dataset" and meta["params"]["valid_only"] is False
    assert meta["frames"] == {"test": 10, "train": 4}
    for name, (split, d) in pw3d.data.items():
        size = (400, 300) if name == "outdoors_fencing_01" else (640, 480)
        for p in range(len(d["poses"])):
            clip = load_clip(out / split / f"{name}_p{p}.npz")
            kp = np.swapaxes(d["poses2d"][p], 1, 2)  # (N,18,3)
            vis = kp[..., 2] > 0
            lo = np.where(vis[..., None], kp[..., :2], np.inf).min(1)
            hi = np.where(vis[..., None], kp[..., :2], -np.inf).max(1)
            want = np.clip(np.concatenate([lo, hi], 1), 0, [size[0] - 1, size[1] - 1] * 2)
            np.testing.assert_allclose(clip.boxes, want, atol=1e-3)
            assert clip.extras["frame_ids"].tolist() == list(range(len(d["poses"][p])))
            assert not Path(clip.image_paths[0]).is_absolute()
    fencing = load_clip(out / "train" / "outdoors_fencing_01_p0.npz")
    assert fencing.image(0).shape == (300, 400, 3)  # relative path resolved against the clip folder
    assert fencing.image_size_hw == (300, 400)


def _pw3d_break(name):
    def missing_key(d):
        del d["cam_poses"]

    def wrong_pose_shape(d):
        d["poses"][1] = d["poses"][1][:, :69]

    def short_trans(d):
        d["trans"][0] = d["trans"][0][:4]

    def genders_count(d):
        d["genders"] = ["m"]

    def nan_pose(d):
        d["poses"][0][2, 5] = np.nan

    return {
        "missing_key": (missing_key, r"missing key 'cam_poses'"),
        "wrong_pose_shape": (wrong_pose_shape, r"key 'poses\[1\]' has shape \(5, 69\), expected \(N, 72\)"),
        "short_trans": (short_trans, r"key 'trans\[0\]' has shape \(4, 3\), expected \(N, 3\) with N = 5"),
        "genders_count": (genders_count, r"key 'genders' has 1 entries, key 'poses' has 2"),
        "nan_pose": (nan_pose, r"key 'poses\[0\]' contains NaN"),
    }[name]


@pytest.mark.parametrize(
    "case", ["missing_key", "wrong_pose_shape", "short_trans", "genders_count", "nan_pose"]
)
def test_3dpw_malformed_sequence_names_file_and_field(tmp_path, fake_smpl_dir, case):
    d = _pw3d_sequence(np.random.default_rng(5), "bad_seq", 5, ["m", "f"])
    fn, msg = _pw3d_break(case)
    fn(d)
    pkl = _dump(tmp_path / "src" / "sequenceFiles" / "test" / "bad_seq.pkl", d)
    with pytest.raises(ConversionError, match=msg) as e:
        convert_3dpw.convert(tmp_path / "src", tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    assert str(pkl) in str(e.value)
    assert not (tmp_path / "out" / "meta.json").exists()


def test_3dpw_failure_leaves_no_meta_and_no_partial_files(pw3d, fake_smpl_dir, tmp_path, capsys):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(pw3d.src, src)
    out = tmp_path / "out"
    convert_3dpw.convert(src, out, splits=["test"], smpl_dir=fake_smpl_dir, progress=False)
    assert (out / "meta.json").is_file()
    # a truncated sequence file (sorted after the good one): the run fails, meta.json is gone
    bad = src / "sequenceFiles" / "test" / "zz_truncated.pkl"
    good = (src / "sequenceFiles" / "test" / "courtyard_walk_00.pkl").read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(ConversionError, match=r"zz_truncated\.pkl: not a readable pickle"):
        convert_3dpw.convert(src, out, splits=["test"], smpl_dir=fake_smpl_dir, progress=False)
    assert not (out / "meta.json").exists()
    with pytest.raises(FileNotFoundError):
        read_meta(out)
    _assert_no_temp_files(out)
    for p in out.rglob("*.npz"):
        load_clip(p)  # whatever was written is complete
    # the CLI reports it as one line, exit status 2
    with pytest.raises(SystemExit) as e:
        convert_3dpw.main([str(src), str(out), "--smpl-dir", str(fake_smpl_dir), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "ConversionError:" in err and "zz_truncated.pkl" in err and "Traceback" not in err
    bad.unlink()
    # a failure while a clip file is being written leaves neither that file nor its temp file
    real = np.savez_compressed
    calls = []

    def flaky(fh, **arrays):
        calls.append(1)
        if len(calls) == 2:
            fh.write(b"PK\x03\x04partial")
            raise OSError("disk full")
        return real(fh, **arrays)

    shutil.rmtree(out)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "savez_compressed", flaky)
        with pytest.raises(OSError, match="disk full"):
            convert_3dpw.convert(src, out, splits=["test"], smpl_dir=fake_smpl_dir, progress=False)
    assert sorted(p.name for p in out.rglob("*.npz")) == ["courtyard_walk_00_p0.npz"]
    assert not (out / "meta.json").exists()
    _assert_no_temp_files(out)


def test_writer_keeps_other_splits_removes_stale_and_refuses_other_source(pw3d, fake_smpl_dir, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(pw3d.src, src)
    out = tmp_path / "out"
    convert_3dpw.convert(src, out, splits=["train"], smpl_dir=fake_smpl_dir, progress=False)
    convert_3dpw.convert(src, out, splits=["test"], smpl_dir=fake_smpl_dir, progress=False)
    meta = read_meta(out)
    assert split_clip_ids(out, "train") == ["outdoors_fencing_01_p0"]
    assert split_clip_ids(out, "test") == ["courtyard_walk_00_p0", "courtyard_walk_00_p1"]
    assert meta["frames"] == {"test": 8, "train": 4}
    assert meta["clips"]["outdoors_fencing_01_p0"]["n_frames"] == 4
    # the sequence is re-annotated with one actor: the clip of the second one is stale and deleted
    d = pw3d.data["courtyard_walk_00"][1]
    d1 = {k: (v[:1] if isinstance(v, list) else v) for k, v in d.items()}
    _dump(src / "sequenceFiles" / "test" / "courtyard_walk_00.pkl", d1)
    convert_3dpw.convert(src, out, splits=["test"], smpl_dir=fake_smpl_dir, progress=False)
    assert split_clip_ids(out, "test") == ["courtyard_walk_00_p0"]
    assert not (out / "test" / "courtyard_walk_00_p1.npz").exists()
    assert (out / "train" / "outdoors_fencing_01_p0.npz").exists()
    with pytest.raises(ConversionError, match="already holds a converted '3dpw' dataset"):
        convert_common.DatasetWriter(out, "emdb", {})


def test_3dpw_missing_folders(tmp_path, fake_smpl_dir):
    with pytest.raises(ConversionError, match=r"nope: 3DPW folder not found"):
        convert_3dpw.convert(tmp_path / "nope", tmp_path / "out", smpl_dir=fake_smpl_dir)
    (tmp_path / "src").mkdir()
    with pytest.raises(ConversionError, match=r"sequenceFiles: 3DPW 'sequenceFiles' folder not found"):
        convert_3dpw.convert(tmp_path / "src", tmp_path / "out", smpl_dir=fake_smpl_dir)
    (tmp_path / "src" / "sequenceFiles" / "test").mkdir(parents=True)
    with pytest.raises(ConversionError, match=r"no sequence files"):
        convert_3dpw.convert(tmp_path / "src", tmp_path / "out", smpl_dir=fake_smpl_dir)


# ------------------------------------------------------------------------------------ EMDB


@pytest.fixture(scope="module")
def emdb(tmp_path_factory, fake_smpl_dir):
    rng = np.random.default_rng(6)
    src = tmp_path_factory.mktemp("emdb")
    data = {
        "P1_01_walk": _emdb_sequence(rng, "P1_01_walk", 6, True, False, good=[0, 1, 1, 1, 1, 1]),
        "P2_03_run": _emdb_sequence(rng, "P2_03_run", 4, False, True, gender="male"),
        "P3_05_none": _emdb_sequence(rng, "P3_05_none", 3, True, True, good=[0, 0, 0]),
    }
    for name, d in data.items():
        k, seq = name.split("_", 1)
        _dump(src / k / seq / f"{name}_data.pkl", d, protocol=4)
    out = src.parent / (src.name + "_out")
    paths = convert_emdb.convert(src, out, smpl_dir=fake_smpl_dir, progress=False)
    return SimpleNamespace(src=src, out=out, paths=paths, data=data)


def test_emdb_protocol_good_frames_and_geometry(emdb, fake_smpl_dir):
    meta = read_meta(emdb.out)
    assert meta["splits"] == {"test": ["P1_01_walk"]}  # emdb1 only; P3 has no good frame
    assert meta["skipped_no_good_frames"] == [str(emdb.src / "P3" / "05_none" / "P3_05_none_data.pkl")]
    assert len(emdb.paths) == 1
    clip = load_clip(emdb.paths[0])
    d = emdb.data["P1_01_walk"]
    assert clip.n_frames == 5 and clip.extras["frame_ids"].tolist() == [1, 2, 3, 4, 5]
    assert (clip.clip_id, clip.gender, clip.source, clip.fps) == ("P1_01_walk", "female", "emdb", 30.0)
    assert Path(clip.image_paths[0]) == emdb.src / "P1" / "01_walk" / "images" / "00001.jpg"
    assert meta["clips"]["P1_01_walk"]["image_size"] == [600, 300]
    assert meta["clips"]["P1_01_walk"]["image_size_from"] == "annotation"
    s, ext = d["smpl"], d["camera"]["extrinsics"][1:]
    _assert_world_consistent(
        clip,
        _body(fake_smpl_dir),
        s["poses_root"][1:],
        s["poses_body"][1:],
        s["betas"],
        s["trans"][1:],
        ext[:, :3, :3],
        ext[:, :3, 3],
        (600, 300),
        expect_hidden=True,
    )


def test_emdb_cli_protocols_and_dataset_boxes(emdb, fake_smpl_dir, tmp_path):
    out = tmp_path / "o2"
    convert_emdb.main(
        [
            str(emdb.src),
            str(out),
            "--protocol",
            "all",
            "--smpl-dir",
            str(fake_smpl_dir),
            "--box-source",
            "dataset",
            "--all-frames",
            "--split",
            "val",
            "--quiet",
        ]
    )
    meta = read_meta(out)
    assert meta["splits"] == {"val": ["P1_01_walk", "P2_03_run", "P3_05_none"]}
    assert meta["frames"] == {"val": 6 + 4 + 3}
    for name, d in emdb.data.items():
        clip = load_clip(out / "val" / f"{name}.npz")
        np.testing.assert_allclose(clip.boxes, d["bboxes"]["bboxes"], atol=1e-4)
        assert clip.split == "val"
    convert_emdb.convert(emdb.src, out, protocol="emdb2", smpl_dir=fake_smpl_dir, progress=False)
    assert split_clip_ids(out, "test") == ["P2_03_run"]


def test_emdb_identity_camera_leaves_parameters_unchanged(tmp_path, fake_smpl_dir):
    d = _emdb_sequence(np.random.default_rng(7), "P9_00_id", 3, True, False, identity=True)
    pkl = _dump(tmp_path / "P9" / "00_id" / "P9_00_id_data.pkl", d)
    clip, info = convert_emdb.read_sequence(pkl, "test", BodyModels(fake_smpl_dir))
    np.testing.assert_allclose(clip.global_orient, d["smpl"]["poses_root"], atol=1e-6)
    np.testing.assert_allclose(clip.transl, d["smpl"]["trans"], atol=1e-6)
    np.testing.assert_allclose(clip.cam_R, np.tile(np.eye(3), (3, 1, 1)))
    assert info["body_gender"] == "neutral" and clip.gender == "female"


def _emdb_break(d, case):
    if case == "missing_trans":
        del d["smpl"]["trans"]
    elif case == "extrinsics_3x4":
        d["camera"]["extrinsics"] = d["camera"]["extrinsics"][:, :3]
    elif case == "mask_length":
        d["good_frames_mask"] = np.ones(5, bool)
    elif case == "short_betas":
        d["smpl"]["betas"] = np.zeros(8)
    elif case == "camera_not_dict":
        d["camera"] = [1, 2]


@pytest.mark.parametrize(
    "case, msg",
    [
        ("missing_trans", r"missing key 'smpl\.trans'"),
        ("extrinsics_3x4", r"key 'camera\.extrinsics' has shape \(4, 3, 4\), expected \(n, 4, 4\)"),
        ("mask_length", r"key 'good_frames_mask' has shape \(5,\), expected \(n\) with n = 4"),
        ("short_betas", r"key 'smpl\.betas' has 8 values, expected >= 10"),
        ("camera_not_dict", r"field 'camera' is a list, expected a dict"),
    ],
)
def test_emdb_malformed_names_file_and_field(tmp_path, fake_smpl_dir, case, msg):
    d = _emdb_sequence(np.random.default_rng(8), "P1_00_bad", 4, True, False)
    _emdb_break(d, case)
    pkl = _dump(tmp_path / "src" / "P1" / "00_bad" / "P1_00_bad_data.pkl", d)
    with pytest.raises(ConversionError, match=msg) as e:
        convert_emdb.convert(tmp_path / "src", tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    assert str(pkl) in str(e.value)


# ------------------------------------------------------------------------------------ AMASS


@pytest.fixture(scope="module")
def amass(tmp_path_factory):
    rng = np.random.default_rng(9)
    src = tmp_path_factory.mktemp("amass")
    data = {
        "CMU/01/01_01_poses.npz": _amass_file(src / "CMU/01/01_01_poses.npz", rng, 9, 120.0),
        "HumanEva/S1/Walking_1_poses.npz": _amass_file(src / "HumanEva/S1/Walking_1_poses.npz", rng, 7, 60.0),
        "Transitions/mazen/jump_stageii.npz": _amass_file(
            src / "Transitions/mazen/jump_stageii.npz", rng, 5, 30.0, smplx=True, gender="female"
        ),
    }
    np.savez(src / "CMU/01/shape.npz", betas=np.zeros(16))
    np.savez(src / "Transitions/mazen/mazen_stagei.npz", betas=np.zeros(16))
    out = src.parent / (src.name + "_out")
    paths = convert_amass.convert(src, out, progress=False)
    return SimpleNamespace(src=src, out=out, paths=paths, data=data)


RX = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # -90 deg about x


def test_amass_splits_resampling_and_y_up(amass):
    assert np.allclose(convert_amass.Z_UP_TO_Y_UP, RX) and np.allclose(_rot([-np.pi / 2, 0, 0]), RX)
    meta = read_meta(amass.out)
    assert meta["kind"] == "motion" and meta["source"] == "amass"
    files = {
        "train": ("CMU__01__01_01_poses", "CMU/01/01_01_poses.npz"),
        "val": ("HumanEva__S1__Walking_1_poses", "HumanEva/S1/Walking_1_poses.npz"),
        "test": ("Transitions__mazen__jump_stageii", "Transitions/mazen/jump_stageii.npz"),
    }
    assert meta["splits"] == {k: [v[0]] for k, v in files.items()}  # shape files skipped
    assert meta["frames"] == {"train": 3, "val": 4, "test": 5}  # 9 @120 -> 3, 7 @60 -> 4, 5 @30 -> 5
    assert meta["clips"]["CMU__01__01_01_poses"]["src_fps"] == 120.0
    step = {"train": 4, "val": 2, "test": 1}
    for split, (cid, rel) in files.items():
        (m,) = convert_amass.load_motions(amass.out, split)
        z = amass.data[rel]
        sel = z["poses"][:: step[split]]
        n = len(sel)
        assert (m["clip_id"], m["split"], m["source"], m["fps"]) == (cid, split, "amass", 30.0)
        assert m["gender"] == normalize_gender(z["gender"])
        assert (
            m["global_orient"].shape == (n, 3)
            and m["body_pose"].shape == (n, 69)
            and m["betas"].shape == (10,)
        )
        np.testing.assert_allclose(m["betas"], z["betas"][:10], atol=1e-6)
        np.testing.assert_allclose(m["body_pose"][:, :63], sel[:, 3:66], atol=1e-5)  # exact frames, 21 joints
        np.testing.assert_array_equal(m["body_pose"][:, 63:], 0.0)  # SMPL hand joints 22/23
        np.testing.assert_allclose(
            rotvec_to_rotmat(m["global_orient"]), RX @ rotvec_to_rotmat(sel[:, :3]), atol=1e-5
        )
        np.testing.assert_allclose(
            m["transl"], z["trans"][:: step[split]] @ RX.T, atol=1e-5
        )  # no pelvis: about 0


def test_amass_cli_fractional_fps_and_exact_pelvis(amass, tmp_path, fake_smpl_dir):
    out = tmp_path / "o"
    convert_amass.main(
        [
            str(amass.src),
            str(out),
            "--splits",
            "train",
            "--fps",
            "50",
            "--smpl-dir",
            str(fake_smpl_dir),
            "--quiet",
        ]
    )
    meta = read_meta(out)
    assert meta["splits"] == {"train": ["CMU__01__01_01_poses"]} and meta["fps"] == 50.0
    (m,) = convert_amass.load_motions(out, "train")
    z = amass.data["CMU/01/01_01_poses.npz"]
    pos = np.array([0, 2.4, 4.8, 7.2])  # 9 frames at 120 fps sampled at 50 fps
    assert m["fps"] == 50.0 and len(m["global_orient"]) == 4
    rot = np.concatenate([z["poses"][:, :66], np.zeros((9, 6))], 1).reshape(9, 24, 3)
    rot_r = resample_rotvecs(rot, pos)
    np.testing.assert_allclose(
        rotvec_to_rotmat(m["body_pose"].reshape(4, 23, 3)), rotvec_to_rotmat(rot_r[:, 1:]), atol=1e-5
    )
    tr = np.stack(
        [
            z["trans"][0],
            0.6 * z["trans"][2] + 0.4 * z["trans"][3],
            0.2 * z["trans"][4] + 0.8 * z["trans"][5],
            0.8 * z["trans"][7] + 0.2 * z["trans"][8],
        ]
    )
    # exact rule with the rest pelvis: the posed body is the AMASS body rotated into the Y-up world
    body = _body(fake_smpl_dir)
    j_amass, _ = _posed(body, rot_r[:, 0], rot_r[:, 1:], z["betas"][:10], tr)
    j_y, _ = _posed(body, m["global_orient"], m["body_pose"], m["betas"], m["transl"])
    np.testing.assert_allclose(j_y, j_amass @ RX.T, atol=2e-4)
    assert meta["body_model"]["gender_fallback_to_neutral"] == ["male"]


def test_amass_min_seconds_skips_short(amass, tmp_path):
    convert_amass.convert(amass.src, tmp_path / "o", min_seconds=0.1, progress=False)
    meta = read_meta(tmp_path / "o")
    # 3 frames @30 = 0.067 s, 4 frames = 0.1 s, 5 frames = 0.133 s
    assert meta["splits"] == {
        "val": ["HumanEva__S1__Walking_1_poses"],
        "test": ["Transitions__mazen__jump_stageii"],
    }
    assert meta["skipped_short"] == ["CMU/01/01_01_poses.npz"]


@pytest.mark.parametrize(
    "case, msg",
    [
        ("no_trans", r"missing key 'trans'"),
        ("narrow_poses", r"key 'poses' has shape \(6, 30\), expected \(T, 156\) or \(T, 165\)"),
        ("no_rate", r"missing key 'mocap_framerate' \(or 'mocap_frame_rate'\)"),
        ("one_frame", r"key 'poses' has 1 frame\(s\), expected >= 2"),
        ("trans_length", r"key 'trans' has shape \(5, 3\), expected \(T, 3\) with T = 6"),
        ("corrupt", r"not a readable \.npz file"),
    ],
)
def test_amass_malformed_names_file_and_key(tmp_path, case, msg):
    f = tmp_path / "src" / "CMU" / "02" / "02_01_poses.npz"
    z = _amass_file(f, np.random.default_rng(10), 6, 120.0)
    if case == "no_trans":
        del z["trans"]
    elif case == "narrow_poses":
        z["poses"] = z["poses"][:, :30]
    elif case == "no_rate":
        del z["mocap_framerate"]
    elif case == "one_frame":
        z["poses"], z["trans"] = z["poses"][:1], z["trans"][:1]
    elif case == "trans_length":
        z["trans"] = z["trans"][:5]
    np.savez(f, **z)
    if case == "corrupt":
        f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ConversionError, match=msg) as e:
        convert_amass.convert(tmp_path / "src", tmp_path / "out", progress=False)
    assert str(f) in str(e.value)


# ------------------------------------------------------------------------------------ Human3.6M


def _h36m_subject(ann, rng, subject, cams, frames, old_format=False, drop_fit=()):
    """Write the three annotation files of one subject (action 2, subaction 1); returns world fits and
    cameras (R, T m, K)."""
    images, anns, fits, cam_json, cameras = [], [], {}, {}, {}
    for c, rv in cams.items():
        R, T = _camera_looking_at(rv, [0.0, 0.2, 5.0], 4.5)
        f, cc = np.array([1145.0, 1143.0]) * 0.5, np.array([500.0, 500.0]) * 0.5
        cam_json[str(c)] = {"R": R.tolist(), "t": (T * 1000).tolist(), "f": f.tolist(), "c": cc.tolist()}
        cameras[c] = (R, T, np.array([[f[0], 0, cc[0]], [0, f[1], cc[1]], [0, 0, 1.0]]))
    betas = rng.normal(0, 1, 10)
    world = {}
    for fr in frames:
        pose, tr, _ = _smpl_world(rng, 1, [0.0, 0.2, 5.0], betas)
        world[fr] = (pose[0], tr[0])
        if fr in drop_fit:
            continue
        e = {"pose": pose[0].tolist(), "shape": betas.tolist(), "trans": tr[0].tolist()}
        fits.setdefault("2", {}).setdefault("1", {})[str(fr)] = {"smpl_param": e} if old_format else e
    for c in cams:
        for fr in frames:
            name = f"s_{subject:02d}_act_02_subact_01_ca_{c:02d}"
            iid = len(images)
            images.append(
                {
                    "id": iid,
                    "file_name": f"{name}/{name}_{fr + 1:06d}.jpg",
                    "width": 500,
                    "height": 500,
                    "subject": subject,
                    "action_idx": 2,
                    "subaction_idx": 1,
                    "cam_idx": c,
                    "frame_idx": fr,
                }
            )
            anns.append({"id": iid, "image_id": iid, "bbox": [10.0 + fr, 20.0, 100.0 + c, 200.0]})
    ann.mkdir(parents=True, exist_ok=True)
    (ann / f"Human36M_subject{subject}_data.json").write_text(
        json.dumps({"images": images, "annotations": anns})
    )
    (ann / f"Human36M_subject{subject}_camera.json").write_text(json.dumps(cam_json))
    smpl_name = convert_h36m.SMPL_FILES[1 if old_format else 0].format(subject)
    (ann / smpl_name).write_text(json.dumps(fits))
    return world, betas, cameras


@pytest.fixture(scope="module")
def h36m(tmp_path_factory, fake_smpl_dir):
    rng = np.random.default_rng(11)
    src = tmp_path_factory.mktemp("h36m")
    ann = src / "annotations"
    s1 = _h36m_subject(ann, rng, 1, {1: [0.1, 0.3, 0.0], 2: [0.0, -0.6, 0.1]}, range(7), drop_fit=(4,))
    s9 = _h36m_subject(ann, rng, 9, {3: [0.2, 1.2, 0.0]}, range(4), old_format=True)
    out = src.parent / (src.name + "_out")
    paths = convert_h36m.convert(src, out, smpl_dir=fake_smpl_dir, progress=False)
    return SimpleNamespace(src=src, out=out, paths=paths, subjects={1: s1, 9: s9})


def test_h36m_clips_stride_fps_and_geometry(h36m, fake_smpl_dir):
    meta = read_meta(h36m.out)
    assert meta["splits"] == {
        "train": ["s_01_act_02_subact_01_ca_01", "s_01_act_02_subact_01_ca_02"],
        "test": ["s_09_act_02_subact_01_ca_03"],
    }
    assert meta["fps"] == 25.0 and meta["frames_without_smpl_fit"] == 2  # frame 4 of S1, both cameras
    body = _body(fake_smpl_dir)
    for s, split, frames in ((1, "train", [0, 2, 6]), (9, "test", [0, 2])):
        world, betas, cameras = h36m.subjects[s]
        for c, (R, T, K) in cameras.items():
            clip = load_clip(h36m.out / split / f"s_{s:02d}_act_02_subact_01_ca_{c:02d}.npz")
            assert clip.extras["frame_ids"].tolist() == frames and clip.fps == 25.0 and clip.source == "h36m"
            name = f"s_{s:02d}_act_02_subact_01_ca_{c:02d}"
            assert Path(clip.image_paths[1]) == h36m.src / "images" / name / f"{name}_000003.jpg"
            np.testing.assert_allclose(clip.K, K, atol=1e-4)
            pose = np.stack([world[f][0] for f in frames])
            tr = np.stack([world[f][1] for f in frames])
            _assert_world_consistent(clip, body, pose[:, :3], pose[:, 3:], betas, tr, R, T, (500, 500))
    assert meta["clips"]["s_09_act_02_subact_01_ca_03"]["image_size_from"] == "annotation"


def test_h36m_cli_cameras_stride_and_dataset_boxes(h36m, fake_smpl_dir, tmp_path):
    out = tmp_path / "o"
    convert_h36m.main(
        [
            str(h36m.src),
            str(out),
            "--subjects",
            "1",
            "--cameras",
            "2",
            "--stride",
            "1",
            "--box-source",
            "dataset",
            "--smpl-dir",
            str(fake_smpl_dir),
            "--quiet",
        ]
    )
    meta = read_meta(out)
    assert meta["splits"] == {"train": ["s_01_act_02_subact_01_ca_02"]} and meta["fps"] == 50.0
    clip = load_clip(out / "train" / "s_01_act_02_subact_01_ca_02.npz")
    fr = np.array([0, 1, 2, 3, 5, 6])
    assert clip.extras["frame_ids"].tolist() == fr.tolist()
    want = np.stack([10.0 + fr, np.full(6, 20.0), 10.0 + fr + 102.0, np.full(6, 220.0)], 1)
    np.testing.assert_allclose(clip.boxes, want)


@pytest.mark.parametrize(
    "case, file, msg",
    [
        ("no_camera_file", "Human36M_subject1_camera.json", r"camera file not found"),
        ("no_smpl_file", "Human36M_subject1_SMPL_NeuralAnnot.json", r"SMPL annotation file not found"),
        ("fit_without_pose", "Human36M_subject1_SMPL_NeuralAnnot.json", r"missing key '2\.1\.0\.pose'"),
        ("camera_without_f", "Human36M_subject1_camera.json", r"missing key '1\.f'"),
        ("camera_t_shape", "Human36M_subject1_camera.json", r"key '1\.t' has shape \(2,\), expected \(3\)"),
        ("bad_json", "Human36M_subject1_data.json", r"not valid JSON"),
        ("image_without_frame", "Human36M_subject1_data.json", r"missing key 'images\[1\]\.frame_idx'"),
    ],
)
def test_h36m_malformed_names_file_and_field(tmp_path, fake_smpl_dir, case, file, msg):
    ann = tmp_path / "src" / "annotations"
    _h36m_subject(ann, np.random.default_rng(12), 1, {1: [0.0, 0.2, 0.0]}, range(3))
    f = ann / file
    if case.startswith("no_"):
        f.unlink()
    elif case == "bad_json":
        f.write_text(f.read_text()[:-5])
    else:
        d = json.loads(f.read_text())
        if case == "fit_without_pose":
            del d["2"]["1"]["0"]["pose"]
        elif case == "camera_without_f":
            del d["1"]["f"]
        elif case == "camera_t_shape":
            d["1"]["t"] = d["1"]["t"][:2]
        elif case == "image_without_frame":
            del d["images"][1]["frame_idx"]
        f.write_text(json.dumps(d))
    with pytest.raises(ConversionError, match=msg) as e:
        convert_h36m.convert(tmp_path / "src", tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    assert str(f) in str(e.value)
    assert not (tmp_path / "out" / "meta.json").exists()


# ------------------------------------------------------------------------------------ MPI-INF-3DHP


def _mpi_tree(src, rng, videos, frames):
    """videos: {(subject, seq): {cam: rotvec}}; writes the three json files; returns world fits, cameras."""
    images, anns, cam_json, fits, world, cameras = [], [], {}, {}, {}, {}
    for (s, q), cams in videos.items():
        betas = rng.normal(0, 1, 10)
        for fr in frames:
            pose, tr, _ = _smpl_world(rng, 1, [0.2, 0.0, 3.0], betas)
            world[(s, q, fr)] = (pose[0], tr[0], betas)
            fits.setdefault(str(s), {}).setdefault(str(q), {})[str(fr)] = {
                "pose": pose[0].tolist(),
                "shape": betas.tolist(),
                "trans": tr[0].tolist(),
            }
        for c, rv in cams.items():
            R, T = _camera_looking_at(rv, [0.2, 0.0, 3.0], 4.0)
            cam_json.setdefault(str(s), {}).setdefault(str(q), {})[str(c)] = {
                "R": R.tolist(),
                "t": (T * 1000).tolist(),
                "focal": [600.0, 610.0],
                "princpt": [256.0, 250.0],
            }
            cameras[(s, q, c)] = (R, T)
            for fr in frames:
                iid = len(images)
                images.append(
                    {
                        "id": iid,
                        "file_name": f"video_{c}/frame_{fr:06d}.jpg",
                        "width": 512,
                        "height": 512,
                        "subject_idx": s,
                        "seq_idx": q,
                        "cam_idx": c,
                        "frame_idx": fr,
                    }
                )
                anns.append({"id": iid, "image_id": iid, "bbox": [5.0, 6.0, 50.0, 60.0]})
    src.mkdir(parents=True, exist_ok=True)
    (src / convert_mpi_inf_3dhp.DATA_FILE).write_text(json.dumps({"images": images, "annotations": anns}))
    (src / convert_mpi_inf_3dhp.CAMERA_FILE).write_text(json.dumps(cam_json))
    (src / convert_mpi_inf_3dhp.SMPL_FILE).write_text(json.dumps(fits))
    return world, cameras


def test_mpi_inf_3dhp_convert_and_geometry(tmp_path, fake_smpl_dir):
    src = tmp_path / "src"
    world, cameras = _mpi_tree(
        src,
        np.random.default_rng(13),
        {(1, 1): {0: [0.1, 0.2, 0.0], 8: [0.0, 1.0, 0.1]}, (2, 2): {4: [0.0, -0.4, 0.0]}},
        range(4),
    )
    paths = convert_mpi_inf_3dhp.convert(src, tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    meta = read_meta(tmp_path / "out")
    assert meta["splits"] == {"train": ["S1_Seq1_cam00", "S1_Seq1_cam08", "S2_Seq2_cam04"]}
    assert len(paths) == 3 and meta["fps"] == 25.0 and meta["frames"] == {"train": 12}
    body = _body(fake_smpl_dir)
    for (s, q, c), (R, T) in cameras.items():
        clip = load_clip(tmp_path / "out" / "train" / f"S{s}_Seq{q}_cam{c:02d}.npz")
        assert clip.extras["frame_ids"].tolist() == [0, 1, 2, 3] and clip.source == "mpi_inf_3dhp"
        assert Path(clip.image_paths[2]) == src / "images_1k" / f"S{s}" / f"Seq{q}" / "imageSequence" / (
            f"video_{c}/frame_000002.jpg"
        )
        np.testing.assert_allclose(clip.K, [[600, 0, 256], [0, 610, 250], [0, 0, 1]], atol=1e-4)
        pose = np.stack([world[(s, q, f)][0] for f in range(4)])
        tr = np.stack([world[(s, q, f)][1] for f in range(4)])
        _assert_world_consistent(
            clip, body, pose[:, :3], pose[:, 3:], world[(s, q, 0)][2], tr, R, T, (512, 512)
        )
    # CLI: subject / camera filter, stride, split name
    out2 = tmp_path / "out2"
    convert_mpi_inf_3dhp.main(
        [
            str(src),
            str(out2),
            "--subjects",
            "1",
            "--cameras",
            "8",
            "--stride",
            "2",
            "--split",
            "calib",
            "--smpl-dir",
            str(fake_smpl_dir),
            "--quiet",
        ]
    )
    meta2 = read_meta(out2)
    assert meta2["splits"] == {"calib": ["S1_Seq1_cam08"]} and meta2["fps"] == 12.5
    assert load_clip(out2 / "calib" / "S1_Seq1_cam08.npz").extras["frame_ids"].tolist() == [0, 2]


def test_mpi_inf_3dhp_errors(tmp_path, fake_smpl_dir):
    src = tmp_path / "src"
    _mpi_tree(src, np.random.default_rng(14), {(1, 1): {0: [0.0, 0.0, 0.0]}}, range(2))
    cam_file = src / convert_mpi_inf_3dhp.CAMERA_FILE
    cam = json.loads(cam_file.read_text())
    cam["1"]["1"]["7"] = cam["1"]["1"].pop("0")
    cam_file.write_text(json.dumps(cam))
    with pytest.raises(ConversionError, match=r"missing key '1\.1\.0' \(subject\.seq\.camera\)") as e:
        convert_mpi_inf_3dhp.convert(src, tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    assert str(cam_file) in str(e.value)
    (src / convert_mpi_inf_3dhp.SMPL_FILE).unlink()
    with pytest.raises(ConversionError, match=r"MPI-INF-3DHP_SMPL_NeuralAnnot\.json: JSON file not found"):
        convert_mpi_inf_3dhp.convert(src, tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    (src / convert_mpi_inf_3dhp.SMPL_FILE).write_text(json.dumps({"3": {}}))
    with pytest.raises(ConversionError, match=r"no frame with a SMPL fit"):
        convert_mpi_inf_3dhp.convert(src, tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    assert not (tmp_path / "out" / "meta.json").exists()


# ------------------------------------------------------------------------------------ BEDLAM


def _bedlam_rows(rng, seq, who, n, K_change_at=None, width=72):
    rows = []
    for f in range(n):
        K = K640.copy()
        if K_change_at is not None and f >= K_change_at:
            K[0, 0] = K[1, 1] = 800.0
        ext = np.eye(4)
        ext[:3, :3] = _rot([0.0, 0.3, 0.0])
        ext[:3, 3] = [-0.3, 0.1, 2.0]
        pose = np.concatenate([rng.normal(0, 0.3, 3) + [np.pi, 0, 0], rng.normal(0, 0.2, width - 3)])
        rows.append(
            {
                "imgname": f"{seq}/{seq}_{f:04d}.png",
                "center": rng.uniform(200, 300, 2),
                "scale": rng.uniform(1, 2),
                "pose_cam": pose,
                "shape": rng.normal(0, 1, 11 if width == 165 else 10),
                "trans_cam": rng.normal(0, 0.1, 3) + [0.0, 0.0, 2.0],
                "cam_int": K,
                "cam_ext": ext,
                "sub": who,
                "gtkps": rng.normal(size=(127, 3)),
                "gender": "neutral",
            }
        )
    return rows


def _bedlam_npz(path, rows, with_sub=True):
    keys = [k for k in rows[0] if with_sub or k != "sub"]
    np.savez(path, **{k: np.stack([np.asarray(r[k]) for r in rows]) for k in keys})


@pytest.fixture(scope="module")
def bedlam(tmp_path_factory, fake_smpl_dir):
    rng = np.random.default_rng(15)
    root = tmp_path_factory.mktemp("bedlam")
    src = root / "training_labels" / "all_npz_12_training"
    src.mkdir(parents=True)
    a = "20221010_3_1000_batch01hand_6fps"
    rows_a = (
        _bedlam_rows(rng, "seq_000000", "rp_a", 3)
        + _bedlam_rows(rng, "seq_000000", "rp_b", 3)
        + _bedlam_rows(rng, "seq_000001", "rp_c", 4, K_change_at=2)
    )
    order = rng.permutation(len(rows_a))  # label files are not sorted by frame
    _bedlam_npz(src / f"{a}.npz", [rows_a[i] for i in order])
    b = "20221011_1_250_batch01hand_30fps"  # SMPL-X labels, no 'sub': people by their order per image
    rows_b = [
        r
        for pair in zip(
            _bedlam_rows(rng, "seq_000002", "x", 2, width=165),
            _bedlam_rows(rng, "seq_000002", "y", 2, width=165),
        )
        for r in pair
    ]
    _bedlam_npz(src / f"{b}.npz", rows_b, with_sub=False)
    (src / "20221012_1_250_batch01hand_closeup_suburb_a_6fps.npz").write_bytes(b"not read")
    (src / "agora_0.npz").write_bytes(b"not read")
    _write_image(root / "training_images" / a / "png" / "seq_000000" / "seq_000000_0000.png", (400, 300))
    out = root / "out"
    paths = convert_bedlam.convert(src, out, smpl_dir=fake_smpl_dir, progress=False)
    return SimpleNamespace(src=src, root=root, out=out, paths=paths, rows={a: rows_a, b: rows_b}, a=a, b=b)


def test_bedlam_tracks_zoom_cuts_smplx_and_camera_frame(bedlam, fake_smpl_dir):
    a, b = bedlam.a, bedlam.b
    meta = read_meta(bedlam.out)
    ids = {
        f"{a}__seq_000000__rp_a": ("rp_a", "seq_000000", [0, 1, 2], 6.0, (400, 300)),
        f"{a}__seq_000000__rp_b": ("rp_b", "seq_000000", [0, 1, 2], 6.0, (400, 300)),
        f"{a}__seq_000001__rp_c__k0": ("rp_c", "seq_000001", [0, 1], 6.0, (640, 480)),
        f"{a}__seq_000001__rp_c__k1": ("rp_c", "seq_000001", [2, 3], 6.0, (640, 480)),
        f"{b}__seq_000002__person0": ("x", "seq_000002", [0, 1], 30.0, (640, 480)),
        f"{b}__seq_000002__person1": ("y", "seq_000002", [0, 1], 30.0, (640, 480)),
    }
    assert meta["splits"] == {"train": sorted(ids)}
    assert sorted(meta["skipped"]) == ["20221012_1_250_batch01hand_closeup_suburb_a_6fps.npz", "agora_0.npz"]
    assert meta["smplx_labels_approximated"] == [f"{b}.npz"]
    body = _body(fake_smpl_dir)
    for cid, (who, _seq, frames, fps, size) in ids.items():
        clip = load_clip(bedlam.out / "train" / f"{cid}.npz")
        scene = a if cid.startswith(a) else b
        rows = [r for r in bedlam.rows[scene] if r["sub"] == who]
        assert [int(r["imgname"][-8:-4]) for r in rows] == list(range(len(rows)))
        rows = [rows[f] for f in frames]
        assert clip.extras["frame_ids"].tolist() == frames and clip.fps == fps and clip.source == "bedlam"
        assert (
            Path(clip.image_paths[0]) == bedlam.root / "training_images" / scene / "png" / rows[0]["imgname"]
        )
        np.testing.assert_allclose(clip.K, rows[0]["cam_int"], atol=1e-4)
        pose = np.stack([r["pose_cam"] for r in rows])
        ext = np.stack([r["cam_ext"] for r in rows])
        np.testing.assert_allclose(clip.global_orient, pose[:, :3], atol=1e-5)  # already camera frame
        np.testing.assert_allclose(clip.body_pose[:, :63], pose[:, 3:66], atol=1e-5)
        np.testing.assert_allclose(clip.body_pose[:, 63:], 0.0 if scene == b else pose[:, 66:72], atol=1e-5)
        np.testing.assert_allclose(clip.betas, np.stack([r["shape"][:10] for r in rows]), atol=1e-5)
        tr = np.stack([r["trans_cam"] for r in rows]) + ext[:, :3, 3]  # BEDLAM loader's rule
        np.testing.assert_allclose(clip.transl, tr, atol=1e-5)
        np.testing.assert_allclose(clip.cam_R, ext[:, :3, :3], atol=1e-6)
        jc, vc = _posed(body, clip.global_orient, clip.body_pose, clip.betas, clip.transl)
        _assert_projection(clip, jc, vc, size, expect_hidden=size == (400, 300))


def test_bedlam_cli_dataset_boxes(bedlam, fake_smpl_dir, tmp_path):
    out = tmp_path / "o"
    convert_bedlam.main(
        [
            str(bedlam.src),
            str(out),
            "--box-source",
            "dataset",
            "--split",
            "test",
            "--images-dir",
            str(tmp_path / "none"),
            "--smpl-dir",
            str(fake_smpl_dir),
            "--quiet",
        ]
    )
    clip = load_clip(out / "test" / f"{bedlam.a}__seq_000000__rp_b.npz")
    rows = sorted((r for r in bedlam.rows[bedlam.a] if r["sub"] == "rp_b"), key=lambda r: r["imgname"])
    c = np.stack([r["center"] for r in rows])
    half = np.array([r["scale"] for r in rows])[:, None] * 100.0 / 1.2
    np.testing.assert_allclose(clip.boxes, np.concatenate([c - half, c + half], 1), atol=1e-3)
    assert str(clip.image_paths[0]).startswith(str(tmp_path / "none"))
    assert read_meta(out)["clips"][clip.clip_id]["image_size_from"] == "K"


@pytest.mark.parametrize(
    "case, msg",
    [
        ("no_trans", r"missing key 'trans_cam'"),
        ("K_shape", r"key 'cam_int' has shape \(3, 3\), expected \(N, 3, 3\)"),
        ("sub_count", r"key 'sub' has 2 entries, key 'imgname' has 3"),
        ("narrow_pose", r"key 'pose_cam' has shape \(3, 60\), expected \(N, 72\) or \(N, 165\)"),
        ("no_imgname", r"missing key 'imgname'"),
    ],
)
def test_bedlam_malformed_names_file_and_key(tmp_path, fake_smpl_dir, case, msg):
    src = tmp_path / "labels"
    src.mkdir()
    f = src / "scene_6fps.npz"
    rows = _bedlam_rows(np.random.default_rng(16), "seq_000000", "p", 3)
    z = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    if case == "no_trans":
        del z["trans_cam"]
    elif case == "K_shape":
        z["cam_int"] = z["cam_int"][0]
    elif case == "sub_count":
        z["sub"] = z["sub"][:2]
    elif case == "narrow_pose":
        z["pose_cam"] = z["pose_cam"][:, :60]
    elif case == "no_imgname":
        del z["imgname"]
    np.savez(f, **z)
    with pytest.raises(ConversionError, match=msg) as e:
        convert_bedlam.convert(src, tmp_path / "out", smpl_dir=fake_smpl_dir, progress=False)
    assert str(f) in str(e.value)


def test_every_converter_cli_reports_a_missing_source(tmp_path, fake_smpl_dir, capsys):
    mods = (convert_3dpw, convert_emdb, convert_amass, convert_h36m, convert_mpi_inf_3dhp, convert_bedlam)
    for mod in mods:
        with pytest.raises(SystemExit) as e:
            mod.main(
                [str(tmp_path / "absent"), str(tmp_path / "out"), "--smpl-dir", str(fake_smpl_dir), "--quiet"]
            )
        assert e.value.code == 2, mod.__name__
        err = capsys.readouterr().err
        assert err.startswith("ConversionError: ") and str(tmp_path / "absent") in err, (mod.__name__, err)
    assert not (tmp_path / "out").exists()
    assert convert_common.FORMAT_VERSION == 1
