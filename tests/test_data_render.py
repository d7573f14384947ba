"""Synthetic-world renderer and world build, on a small SMPL-format "ellipsoid body" written here (24 parts,
one ellipsoid per bone, rigid skinning; loadable by smplx exactly like a real SMPL folder; no real files).

Checks: rendered masks agree with the projected mesh rebuilt from the stored camera-frame labels, crowded
scenes are self-consistent (masks, occlusion, visibility, box), generation is deterministic for a seed, the
tiny world builds, is idempotent, rebuilds when parameters change, and does not depend on the workers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import trimesh

from data_prep.build_world import build_world, clip_specs
from data_prep.render import (
    RenderConfig,
    degrade_mask,
    face_part_labels,
    look_at,
    person_face_colors,
    project,
    render_clip,
    to_camera_params,
)
from fasthmr_lib.data import motion as M
from fasthmr_lib.data.crops import make_crop
from fasthmr_lib.data.datasets import CropDataset
from fasthmr_lib.data.records import load_clip, read_meta, validate_arrays

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
# rough SMPL T-pose joints (m): x = body's left, y up, z forward
TPOSE = np.array([
    [0, 0, 0], [.06, -.09, 0], [-.06, -.09, 0], [0, .11, 0], [.1, -.47, 0], [-.1, -.47, 0], [0, .25, 0],
    [.09, -.87, 0], [-.09, -.87, 0], [0, .31, 0], [.11, -.93, .12], [-.11, -.93, .12], [0, .52, 0],
    [.08, .42, 0], [-.08, .42, 0], [0, .62, .03], [.19, .43, 0], [-.19, .43, 0], [.45, .43, 0],
    [-.45, .43, 0], [.7, .43, 0], [-.7, .43, 0], [.8, .43, 0], [-.8, .43, 0],
])  # fmt: skip


def write_ellipsoid_body(folder):
    """An SMPL-format folder whose mesh is one closed ellipsoid per bone (joint -> its first child), each
    rigidly skinned to its joint; the 24 joints are extra unconnected vertices picked by J_regressor."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sphere = trimesh.creation.icosphere(subdivisions=2)
    verts, faces, w = [], [], []
    n = 0
    for j in range(24):
        kids = [k for k, p in enumerate(SMPL_PARENTS) if p == j]
        a = TPOSE[j]
        b = (
            TPOSE[kids[0]]
            if kids
            else a + np.array([0, 0.1 if j == 15 else 0.0, 0.05 if j in (10, 11) else 0])
        )
        if j in (22, 23):
            b = a + np.sign(a[0]) * np.array([0.08, 0, 0])
        axis = b - a
        L = max(np.linalg.norm(axis), 0.08)
        u = axis / max(np.linalg.norm(axis), 1e-9) if np.linalg.norm(axis) > 1e-6 else np.array([0, 1.0, 0])
        e1 = np.cross(u, [0.3, 0.5, 0.8]) / np.linalg.norm(np.cross(u, [0.3, 0.5, 0.8]))
        e2 = np.cross(u, e1)
        r = 0.11 if j in (0, 3, 6, 9) else 0.07
        v = sphere.vertices
        verts.append(
            (a + b) / 2 + np.outer(v[:, 0] * L / 2, u) + np.outer(v[:, 1] * r, e1) + np.outer(v[:, 2] * r, e2)
        )
        faces.append(sphere.faces + n)
        n += len(v)
        w.append(np.repeat(np.eye(24)[j][None], len(v), 0))
    verts.append(TPOSE)
    w.append(np.eye(24))
    V = np.concatenate(verts)
    J_reg = np.zeros((24, len(V)))
    J_reg[np.arange(24), n + np.arange(24)] = 1.0
    np.savez(folder / "SMPL_NEUTRAL.npz", v_template=V, shapedirs=rng.normal(0, 0.003, (len(V), 3, 10)),
             posedirs=np.zeros((len(V), 3, 207)), J_regressor=J_reg, weights=np.concatenate(w),
             kintree_table=np.stack([SMPL_PARENTS, np.arange(24)]).astype(np.int64),
             f=np.concatenate(faces).astype(np.int64))  # fmt: skip
    j19 = np.zeros((19, len(V)), np.float32)
    j19[np.arange(19), rng.choice(n, 19, replace=False)] = 1.0
    np.save(folder / "SMPL_to_J19.npy", j19)
    from fasthmr_lib.body.smpl import VERTEX_PICK_NAMES as names

    picks = {k: int(i) for k, i in zip(names, rng.choice(n, 21, replace=False))}
    (folder / "vertex_picks.json").write_text(json.dumps(picks))
    return folder


@pytest.fixture(scope="module")
def body_dir(tmp_path_factory):
    return write_ellipsoid_body(tmp_path_factory.mktemp("ellipsoid_body"))


ALONE = RenderConfig(distractor_probs=(1.0,), occluder_prob=0.0)
CROWD = RenderConfig(distractor_probs=(0, 0, 0, 1.0), overlap_prob=1.0, occluder_prob=1.0)


def _camera_mesh(body, c, t):
    """Subject vertices / joints44 in the camera frame from the stored camera-frame labels of frame t."""
    pose = torch.from_numpy(np.concatenate([c["global_orient"][t], c["body_pose"][t]])[None])
    with torch.no_grad():
        out = body.from_axis_angle(
            pose, torch.from_numpy(c["betas"][t][None]), torch.from_numpy(c["transl"][t][None])
        )
    return out["vertices"][0].double().numpy(), out["joints44"][0].double().numpy()


def _triangles(uv, H, W):
    """For each projected triangle (F,3,2): its index, the pixel box (y0, y1, x0, x1) and the pixels of that
    box whose centre lies inside it (edge-function test), clipped to the image."""
    for f, p in enumerate(uv):
        x0, y0 = np.floor(p.min(0)).astype(int)
        x1, y1 = np.ceil(p.max(0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W - 1), min(y1, H - 1)
        if x1 < x0 or y1 < y0:
            continue
        yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
        e = [(p[(i + 1) % 3, 0] - p[i, 0]) * (yy - p[i, 1]) - (p[(i + 1) % 3, 1] - p[i, 1]) * (xx - p[i, 0])
             for i in range(3)]  # fmt: skip
        inside = ((e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0)) | ((e[0] <= 0) & (e[1] <= 0) & (e[2] <= 0))
        yield f, (slice(y0, y1 + 1), slice(x0, x1 + 1)), inside


def _raster(body, V, K, H, W):
    """Reference silhouette: pixels whose centre lies inside a projected front-of-camera triangle."""
    uv = project(K.astype(np.float64), V)[np.asarray(body.faces)]  # (F,3,2)
    out = np.zeros((H, W), bool)
    for _, box, inside in _triangles(uv, H, W):
        out[box] |= inside
    return out


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def clips(body_dir):
    from fasthmr_lib.body.smpl import load_body_model

    body = load_body_model(body_dir)
    return (
        body,
        render_clip(body, "walk", 4, seed=3, cfg=ALONE),
        render_clip(body, "wave", 4, seed=5, cfg=CROWD),
    )


def test_look_at_and_camera_frame_labels():
    R, T = look_at(np.array([0.0, 1.0, -4.0]), np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R @ np.array([0.0, 1.0, 0.0]) + T, [0, 0, 4], atol=1e-12)  # target ahead
    np.testing.assert_allclose(R @ np.array([0.0, 1.0, 0.0]), [0, -1, 0], atol=1e-12)  # world up = image up
    # SMPL root transform moved to the camera frame: R (R_g (v - J0) + J0 + t) + T == R_c (v - J0) + J0 + t_c
    rng = np.random.default_rng(0)
    go, tr, J0, v = rng.normal(size=(1, 3)), rng.normal(size=(1, 3)), rng.normal(size=3), rng.normal(size=3)
    from roma import rotvec_to_rotmat

    Rg = rotvec_to_rotmat(torch.as_tensor(go))[0].numpy()
    go_c, t_c = to_camera_params(go, tr, J0, R[None], T[None])
    Rc = rotvec_to_rotmat(torch.as_tensor(go_c, dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(R @ (Rg @ (v - J0) + J0 + tr[0]) + T, Rc @ (v - J0) + J0 + t_c[0], atol=1e-5)


def test_rendered_mask_matches_projected_mesh(clips):
    body, c, _ = clips
    validate_arrays(c, "rendered")
    H, W = c["mask"].shape[1:]
    for t in range(c["mask"].shape[0]):
        V, J = _camera_mesh(body, c, t)
        np.testing.assert_allclose(J, c["joints3d"][t], atol=1e-4)  # labels reproduce the rendered body
        np.testing.assert_allclose(project(c["K"].astype(np.float64), J), c["joints2d"][t, :, :2], atol=1e-2)
        sil = _raster(body, V, c["K"], H, W)
        m = c["mask"][t]
        assert sil.sum() > 500
        assert _iou(sil, m) > 0.99, f"frame {t}: IoU {_iou(sil, m):.4f}"
        # any disagreement is on the silhouette's 1-px boundary
        k = np.ones((3, 3), np.uint8)
        inner = cv2.erode(sil.astype(np.uint8), k).astype(bool)
        outer = cv2.dilate(sil.astype(np.uint8), k).astype(bool)
        assert not (inner & ~m).any() and not (m & ~outer).any()
        assert c["occlusion"][t] == 0.0  # alone, no occluders
        np.testing.assert_array_equal(c["mask_union"][t], c["mask"][t])
        ys, xs = np.nonzero(c["mask"][t])
        b = c["boxes"][t]
        assert xs.min() >= b[0] - 1 and xs.max() <= b[2] + 1 and ys.min() >= b[1] - 1 and ys.max() <= b[3] + 1


def test_crowded_scene_is_consistent(clips):
    body, _, c = clips
    assert int(c["n_distractors"]) == 3
    H, W = c["mask"].shape[1:]
    k = np.ones((3, 3), np.uint8)
    ious = []
    for t in range(c["mask"].shape[0]):
        m, u = c["mask"][t], c["mask_union"][t]
        assert not (m & ~u).any(), "subject mask must lie inside the union mask"
        assert u.sum() > m.sum()
        V, _ = _camera_mesh(body, c, t)
        sil = cv2.dilate(_raster(body, V, c["K"], H, W).astype(np.uint8), k).astype(bool)
        assert not (m & ~sil).any(), "visible subject pixels outside the projected subject mesh"
        assert c["occlusion"][t] == pytest.approx(1 - m.sum() / c["silhouette_px"][t], abs=1e-6)
        ious.append(_iou(c["mask_degraded"][t], m))
        # visible keypoints project into the image
        vis = c["joints2d"][t, :, 2] > 0
        uv = c["joints2d"][t, vis, :2]
        assert ((uv >= -0.5) & (uv <= [W - 0.5, H - 0.5])).all()
    assert c["occlusion"].max() > 0.02
    assert 0.5 < np.mean(ious) < 0.995, ious  # degraded: clearly perturbed, still the same person


def _label_cover(body, V, K, H, W) -> np.ndarray:
    """(49, H, W) bool: pixels covered by a projected, camera-facing face of each dense label (reference
    for the ray caster's per-pixel labels, from the camera-frame mesh and the rest-pose face labels)."""
    faces = np.asarray(body.faces, np.int64)
    lab = face_part_labels(body.lbs_weights.numpy(), body.v_template.numpy(), faces)
    tri = V[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    facing = (n * tri.mean(1)).sum(1) < 0  # normal towards the camera at the origin
    uv, lab = project(K.astype(np.float64), V)[faces][facing], lab[facing]
    out = np.zeros((49, H, W), bool)
    for f, box, inside in _triangles(uv, H, W):
        out[(lab[f], *box)] |= inside
    return out


def test_strong_front_back_cues_recolour_the_same_draws(body_dir):
    """RenderConfig.front_cues: "strong" draws the same random numbers as "subtle" (the two proxy worlds
    show the same scenes) and only recolours the torso, thighs and head: every shirt front gets a print far
    from the shirt's colour; "subtle" leaves the build parameters of older worlds unchanged."""
    from data_prep.render import _Body
    from fasthmr_lib.body.smpl import load_body_model

    bc = _Body(load_body_model(body_dir))
    part = bc.lbs.argmax(1)[bc.faces[:, 0]]
    z = bc.v_template[bc.faces, 2].mean(1)
    torso = np.isin(part, (0, 3, 6, 9, 13, 14))
    front = torso & (z > np.median(z[torso]))
    untouched = ~np.isin(part, (0, 3, 6, 9, 13, 14, 1, 2, 15))  # torso, thighs, head
    for seed in range(6):
        ra, rb = np.random.default_rng(seed), np.random.default_rng(seed)
        sub = person_face_colors(ra, bc.lbs, bc.v_template, bc.faces)
        strong = person_face_colors(rb, bc.lbs, bc.v_template, bc.faces, strong=True)
        assert ra.uniform() == rb.uniform()  # the same draws consumed
        assert np.array_equal(sub[untouched], strong[untouched])
        assert not np.array_equal(sub, strong)
        cols = np.unique(strong[front], axis=0)  # shirt (or stripes) and the print: >= 97 apart per channel
        assert (np.abs(cols[:, None] - cols[None]).min(-1) >= 97).any()
    assert "front_cues" not in RenderConfig().to_dict()
    assert RenderConfig(front_cues="strong").to_dict()["front_cues"] == "strong"
    with pytest.raises(ValueError, match="front_cues"):
        RenderConfig(front_cues="loud")


def test_face_labels_mark_the_front_and_back_of_the_rest_pose():
    """SMPL bodies face +z: on an outward-wound sphere skinned to one part, faces on the +z half are
    'front' (1 + part), on the -z half 'back' (25 + part); left and right parts keep distinct labels."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    faces = np.asarray(sphere.faces, np.int64)
    z = sphere.vertices[faces].mean(1)[:, 2]
    for part in (3, 16, 17):
        lbs = np.zeros((len(sphere.vertices), 24))
        lbs[:, part] = 1.0
        lab = face_part_labels(lbs, np.asarray(sphere.vertices), faces)
        assert (lab[z > 0.05] == 1 + part).all() and (lab[z < -0.05] == 25 + part).all()


def test_part_labels_agree_with_the_masks_and_the_projected_parts(clips):
    """Dense labels: nonzero exactly on the visible-subject mask (alone and crowded); every labelled pixel
    is covered by a camera-facing face of its own part and front/back side (the ellipsoid body's parts
    are rigid, so the rest-pose normal's side is the face's side)."""
    body, alone, crowd = clips
    for c in (alone, crowd):
        lab = c["part_labels"]
        assert lab.dtype == np.uint8 and lab.shape == c["mask"].shape and lab.max() <= 48
        np.testing.assert_array_equal(lab > 0, c["mask"])
    H, W = alone["mask"].shape[1:]
    k = np.ones((3, 3), np.uint8)
    sides = set()
    for t in range(alone["mask"].shape[0]):
        V, _ = _camera_mesh(body, alone, t)
        cover = _label_cover(body, V, alone["K"], H, W)
        lab = alone["part_labels"][t]
        ys, xs = np.nonzero(lab)
        ok = np.array(
            [cv2.dilate(cover[v].astype(np.uint8), k)[y, x] for y, x, v in zip(ys, xs, lab[ys, xs])]
        )
        assert ok.mean() > 0.995, f"frame {t}: {ok.mean():.4f} of labelled pixels on their own part/side"
        assert len(np.unique((lab[ys, xs] - 1) % 24)) >= 8  # many parts are seen, not one blob
        sides |= set(np.unique((lab[ys, xs] - 1) // 24).tolist())
    assert sides == {0, 1}  # both the front and the back of the body are labelled somewhere


def test_flipped_crop_swaps_left_and_right_parts_and_keeps_front_back(clips):
    """A mirrored crop's label map is the mirrored map with left/right parts exchanged; the left forearm's
    pixels sit at the left elbow-wrist keypoints before and after the flip (keypoints swap too)."""
    from fasthmr_lib.data.augment import PART_LABEL_FLIP, AugmentConfig, augment_sample

    flip = AugmentConfig(scale_factor=0.0, trans_rate=0.0, color_scale=0.0, flip_rate=1.0, occluder_rate=0.0)
    _, c, _ = clips
    checked = 0
    for t in range(c["mask"].shape[0]):
        cr = make_crop(c["images"][t], c["boxes"][t], masks={"m": c["mask"][t]},
                       labels={"p": c["part_labels"][t]}, keypoints=c["joints2d"][t])  # fmt: skip
        lab = {"part_labels": cr["p"], "joints2d": cr["keypoints"]}
        _, m2, lab2 = augment_sample(cr["img"], cr["m"], lab, np.random.default_rng(0), flip)
        np.testing.assert_array_equal(lab2["part_labels"], PART_LABEL_FLIP[cr["p"][:, ::-1]])
        np.testing.assert_array_equal(lab2["part_labels"] > 0, m2 > 0.5)
        front = lambda a: np.where(a > 0, (a.astype(int) - 1) // 24, -1)  # noqa: E731
        np.testing.assert_array_equal(front(lab2["part_labels"]), front(cr["p"])[:, ::-1])
        for labels, kp in ((cr["p"], cr["keypoints"]), (lab2["part_labels"], lab2["joints2d"])):
            fore = {side: np.argwhere(np.isin((labels.astype(int) - 1) % 24, [j]) & (labels > 0))
                    for side, j in (("left", 18), ("right", 19))}  # fmt: skip
            if min(len(v) for v in fore.values()) < 20:
                continue
            xy = (kp[:, :2] + 0.5) * 256
            elbow_wrist = {
                "left": xy[[6, 7]].mean(0),
                "right": xy[[3, 4]].mean(0),
            }  # OpenPose L/R elbow+wrist
            for side, pix in fore.items():
                centre = pix.mean(0)[::-1]
                other = "right" if side == "left" else "left"
                assert np.linalg.norm(centre - elbow_wrist[side]) < np.linalg.norm(
                    centre - elbow_wrist[other]
                )
            checked += 1
    assert checked >= 2


def test_crop_of_a_rendered_frame_aligns_mask_and_keypoints(clips):
    _, c, _ = clips
    t = 1
    out = make_crop(c["images"][t], c["boxes"][t], masks={"m": c["mask"][t]}, keypoints=c["joints2d"][t])
    kp = (out["keypoints"][:, :2] + 0.5) * 256
    # the pelvis-area joints (OpenPose mid-hip 8, J19 pelvis 39, spine 41) lie on the warped subject mask
    dil = cv2.dilate(out["m"].astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    for j in (8, 39, 41):
        x, y = np.rint(kp[j]).astype(int)
        assert dil[y, x], f"joint {j} at {(x, y)} is off the warped mask"
    # the mask's pixels are in the central 192 columns (aspect 192:256 padding is outside)
    ys, xs = np.nonzero(out["m"])
    assert xs.min() >= 32 - 2 and xs.max() <= 256 - 32 + 2


def test_degrade_mask_strength_zero_is_identity():
    m = np.zeros((40, 40), bool)
    m[10:30, 12:28] = True
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(degrade_mask(m, m, rng, 0.0), m)
    d = degrade_mask(m, m, np.random.default_rng(1), 1.0)
    assert d.dtype == bool and 0.3 < _iou(d, m) < 1.0


def test_render_is_deterministic_for_a_seed(clips):
    body, c, _ = clips
    again = render_clip(body, "walk", 4, seed=3, cfg=ALONE)
    for k, v in c.items():
        np.testing.assert_array_equal(np.asarray(again[k]), np.asarray(v), err_msg=k)
    other = render_clip(body, "walk", 4, seed=4, cfg=ALONE)
    assert not np.array_equal(other["images"], c["images"])


def test_strided_clip_renders_every_kth_frame_of_the_longer_motion(clips):
    body = clips[0]
    kind, n, seed, k = "squat", 3, 7, 4
    c = render_clip(body, kind, n, seed=seed, cfg=ALONE, frame_stride=k)
    assert c["images"].shape[0] == n and float(c["fps"]) == M.FPS / k
    # the subject's motion is the 12-frame motion the renderer draws, sampled every 4th frame
    rng = np.random.default_rng(np.random.SeedSequence([seed, M.KINDS.index(kind), n, 7]))
    full = M.generate_clip(kind, n * k, seed=int(rng.integers(2**31)))
    np.testing.assert_allclose(c["body_pose"], full["body_pose"][::k], atol=1e-6)
    assert not np.allclose(c["body_pose"], full["body_pose"][:n], atol=1e-3)  # not the first 3 frames
    with pytest.raises(ValueError, match="frame_stride"):
        render_clip(body, kind, n, seed=seed, cfg=ALONE, frame_stride=0)


def test_tiny_world_builds_idempotent_and_worker_independent(tmp_path, monkeypatch, body_dir):
    monkeypatch.setenv("FASTHMR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FASTHMR_SMPL_DIR", str(body_dir))
    root = build_world("tiny", seed=0, workers=2, progress=False)
    assert root == tmp_path / "data" / "world" / "tiny"
    meta = read_meta(root)
    assert {s: len(v) for s, v in meta["splits"].items()} == {"train": 4, "calib": 2, "test": 2}
    assert meta["frames"]["train"] == 4 * 24 and meta["params"]["seed"] == 0
    ids = [i for v in meta["splits"].values() for i in v]
    assert len(set(ids)) == len(ids) == 8  # splits are disjoint by clip
    assert len(CropDataset(root, "train")) == 96
    files = sorted(root.rglob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    # idempotent: nothing rewritten
    build_world("tiny", seed=0, workers=2, progress=False)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    # a clip rendered in this process equals the one the worker pool wrote
    spec = clip_specs(meta["params"]["n_clips"], 24, 0)[5]
    from fasthmr_lib.body.smpl import load_body_model

    mine = render_clip(load_body_model(body_dir), spec["kind"], 24, spec["seed"], clip_id=spec["clip_id"],
                       split=spec["split"])  # fmt: skip
    disk = load_clip(root / spec["split"] / f"{spec['clip_id']}.npz")
    np.testing.assert_array_equal(disk.images, mine["images"])
    np.testing.assert_array_equal(disk.joints2d, mine["joints2d"])
    # changed parameters: rebuilt, stale clips removed, meta rewritten
    assert "frame_stride" not in meta["params"] and meta["fps"] == 30.0  # plain worlds: as before
    build_world(
        "tiny", seed=0, workers=1, progress=False, n_clips={"train": 1, "calib": 1, "test": 1}, n_frames=2,
        frame_stride=3,
    )  # fmt: skip
    meta2 = read_meta(root)
    assert meta2["params"]["n_frames"] == 2 and len(list(root.rglob("*.npz"))) == 3
    assert meta2["params"]["frame_stride"] == 3 and meta2["fps"] == 10.0
    assert float(load_clip(next(root.rglob("*.npz"))).fps) == 10.0


def test_a_time_boxed_world_holds_the_clips_finished_and_resumes_to_the_full_profile(
    tmp_path, monkeypatch, body_dir
):
    monkeypatch.setenv("FASTHMR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FASTHMR_SMPL_DIR", str(body_dir))
    kw = {"workers": 1, "progress": False, "n_clips": {"train": 3, "calib": 0, "test": 0}, "n_frames": 2}
    root = build_world("tiny", seed=0, max_seconds=0.0, **kw)  # stops after the first clip
    meta = read_meta(root)
    assert meta["params"]["n_clips"] == {"train": 1, "calib": 0, "test": 0}
    assert meta["params"]["time_boxed"]["n_clips"] == {"train": 3, "calib": 0, "test": 0}
    assert len(meta["splits"]["train"]) == 1 and meta["frames"]["train"] == 2
    assert len(CropDataset(root, "train")) == 2
    first = root / "train" / f"{meta['splits']['train'][0]}.npz"
    mtime = first.stat().st_mtime_ns
    build_world("tiny", seed=0, **kw)  # no limit: the rest is rendered, the finished clip kept
    full = read_meta(root)
    assert len(full["splits"]["train"]) == 3 and "time_boxed" not in full["params"]
    assert first.stat().st_mtime_ns == mtime and full["generation"]["clips_rendered"] == 2
