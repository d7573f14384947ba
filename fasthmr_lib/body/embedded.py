"""Helpers for the embedded SMPL-format body model (built by ``data_prep/build_body_model.py``).

Pure array code (no anny, no files) plus the writer of the SMPL-folder file layout that
:mod:`fasthmr_lib.body.smpl` and ``smplx`` read:

* ``SMPL_NEUTRAL.npz`` — smplx keys ``v_template`` (V,3), ``shapedirs`` (V,3,10), ``posedirs``
  (V,3,207), ``J_regressor`` (24,V) dense, ``weights`` (V,24), ``kintree_table`` (2,24) int64
  (row 0 = SMPL parents, row 1 = joint ids), ``f`` (F,3) int64. Plain arrays (no pickled objects).
  smplx 0.1.28's ``SMPL`` opens only ``.pkl`` by itself; pass the npz through
  ``smplx.utils.Struct(**np.load(path))`` as ``data_struct=`` (what ``body.smpl`` does).
* ``SMPL_mean_params.npz`` — ``pose`` (144,) 24 x 6D (two first rotation-matrix columns,
  HMR2's ``rot6d_to_rotmat`` convention), ``shape`` (10,), ``cam`` (3,).
* ``SMPL_to_J19.pkl`` — a pickled (19, V) float32 numpy array (4D-Humans' layout).
* ``vertex_picks.json`` — smplx ``VertexJointSelector`` names -> vertex id, plus ``hybrik_leaf``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls
from smplx.lbs import batch_rigid_transform

from ..io import atomic_path, atomic_write_text, sha256_file

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# SPIN / ProHMR / 4D-Humans "J19" order.
J19_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck_lsp", "head_top_lsp",
    "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m",
)  # fmt: skip
VERTEX_PICK_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)  # fmt: skip
HYBRIK_LEAF_NAMES = ("head_top", "left_hand_tip", "right_hand_tip", "left_toe", "right_toe")
MODEL_FILES = (
    "SMPL_NEUTRAL.npz", "SMPL_mean_params.npz", "SMPL_to_J19.pkl", "vertex_picks.json", "PROVENANCE.md",
    "LICENSE",
)  # fmt: skip


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of the smallest rotation taking direction ``a`` (3,) onto direction ``b`` (3,)."""
    a = np.asarray(a, np.float64) / np.linalg.norm(a)
    b = np.asarray(b, np.float64) / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-12:
        if c > 0:
            return np.zeros(3)
        raise ValueError("rotation_between: opposite directions, axis undefined")
    return axis / s * np.arctan2(s, c)


def pose_vertices(
    vertices: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor, rotmats: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear blend skinning with explicit joints (SMPL's LBS without blend shapes).

    vertices (B,V,3) rest vertices, joints (B,24,3) rest joints, weights (V,24) skinning weights,
    rotmats (B,24,3,3) local joint rotations (SMPL convention: rest frames aligned with the world).
    Returns posed vertices (B,V,3) and posed joints (B,24,3)."""
    parents = torch.tensor(SMPL_PARENTS, dtype=torch.long)
    posed_joints, A = batch_rigid_transform(rotmats, joints, parents, dtype=vertices.dtype)
    T = torch.einsum("vj,bjkl->bvkl", weights.to(vertices.dtype), A)  # (B,V,4,4)
    v = torch.einsum("bvkl,bvl->bvk", T[..., :3, :3], vertices) + T[..., :3, 3]
    return v, posed_joints


def fit_convex_regressor(
    vertices: np.ndarray, targets: np.ndarray, candidates: np.ndarray, sum_weight: float = 100.0
) -> tuple[np.ndarray, float]:
    """Non-negative weights over ``candidates`` vertices, summing to 1, that best regress ``targets``.

    vertices (S,V,3) metres over S body shapes, targets (S,3) the point to regress in each shape,
    candidates (K,) vertex ids. Solved by NNLS with the sum-to-one constraint as a heavily weighted
    extra row (as SMPL's joint regressor: a sparse convex combination of vertices around a joint).
    Returns (weights (V,) summing to 1, RMS error in metres)."""
    cand = np.asarray(candidates, np.int64)
    if cand.size == 0:
        raise ValueError("fit_convex_regressor: no candidate vertices")
    X = vertices[:, cand, :].transpose(0, 2, 1).reshape(-1, cand.size).astype(np.float64)  # (S*3,K)
    y = targets.reshape(-1).astype(np.float64)
    A = np.vstack([X, sum_weight * np.ones((1, cand.size))])
    b = np.concatenate([y, [sum_weight]])
    w, _ = nnls(A, b, maxiter=50 * cand.size)
    if w.sum() <= 0:
        raise RuntimeError("fit_convex_regressor: degenerate solution")
    w = w / w.sum()
    rms = float(np.sqrt(np.mean((X @ w - y) ** 2) * 3))
    out = np.zeros(vertices.shape[1], np.float64)
    out[cand] = w
    return out, rms


def constrained_min_change(w0: np.ndarray, C: np.ndarray, d: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """The weights closest to ``w0`` (K,) (Euclidean) that satisfy ``C @ w = d`` exactly (C (M,K), d (M,))."""
    r = d - C @ w0
    lam = np.linalg.lstsq(C @ C.T, r, rcond=rcond)[0]
    return w0 + C.T @ lam


def matrix_to_6d(R: np.ndarray) -> np.ndarray:
    """(...,3,3) rotation matrices -> (...,6): column 0 then column 1, the 6D layout HMR2's
    ``rot6d_to_rotmat`` reads (``reshape(-1,2,3).permute(0,2,1)``: a1 = x[0:3], a2 = x[3:6])."""
    R = np.asarray(R)
    return np.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)


def check_smpl_arrays(arrays: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` naming the key when the SMPL arrays are inconsistent."""
    V = arrays["v_template"].shape[0]
    expect = {
        "v_template": (V, 3), "shapedirs": (V, 3, 10), "posedirs": (V, 3, 207), "J_regressor": (24, V),
        "weights": (V, 24), "kintree_table": (2, 24),
    }  # fmt: skip
    for k, shp in expect.items():
        if tuple(arrays[k].shape) != shp:
            raise ValueError(f"SMPL array {k!r} has shape {arrays[k].shape}, expected {shp}")
    f = arrays["f"]
    if f.ndim != 2 or f.shape[1] != 3 or f.min() < 0 or f.max() >= V:
        raise ValueError(f"SMPL array 'f' must be (F,3) vertex ids in [0,{V}), got shape {f.shape}")
    for k in ("J_regressor",):
        if not np.allclose(arrays[k].sum(1), 1.0, atol=1e-5):
            raise ValueError(f"SMPL array {k!r}: rows must sum to 1")
    if not np.allclose(arrays["weights"].sum(1), 1.0, atol=1e-5):
        raise ValueError("SMPL array 'weights': rows must sum to 1")


def write_body_model_dir(
    out_dir: str | Path,
    smpl_arrays: dict[str, np.ndarray],
    mean_params: dict[str, np.ndarray],
    j19: np.ndarray,
    vertex_picks: dict[str, object],
    provenance_md: str,
    license_text: str,
) -> dict[str, str]:
    """Write the SMPL-folder layout (see module docstring) atomically; return {file name: sha256}."""
    out_dir = Path(out_dir)
    check_smpl_arrays(smpl_arrays)
    V = smpl_arrays["v_template"].shape[0]
    if j19.shape != (19, V):
        raise ValueError(f"J19 regressor has shape {j19.shape}, expected (19, {V})")
    missing = set(VERTEX_PICK_NAMES) - set(vertex_picks)
    if missing:
        raise ValueError(f"vertex_picks lacks {sorted(missing)}")
    arrays = {
        "v_template": smpl_arrays["v_template"].astype(np.float32),
        "shapedirs": smpl_arrays["shapedirs"].astype(np.float32),
        "posedirs": smpl_arrays["posedirs"].astype(np.float32),
        "J_regressor": smpl_arrays["J_regressor"].astype(np.float32),
        "weights": smpl_arrays["weights"].astype(np.float32),
        "kintree_table": smpl_arrays["kintree_table"].astype(np.int64),
        "f": smpl_arrays["f"].astype(np.int64),
    }
    with atomic_path(out_dir / "SMPL_NEUTRAL.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with atomic_path(out_dir / "SMPL_mean_params.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v, np.float32) for k, v in mean_params.items()})
    with atomic_path(out_dir / "SMPL_to_J19.pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump(np.ascontiguousarray(j19, np.float32), fh, protocol=2)
    atomic_write_text(out_dir / "vertex_picks.json", json.dumps(vertex_picks, indent=1) + "\n")
    atomic_write_text(out_dir / "LICENSE", license_text)
    atomic_write_text(out_dir / "PROVENANCE.md", provenance_md)
    for name in MODEL_FILES:
        (out_dir / name).chmod(0o644)  # mkstemp files are private; these are shared read-only data
    return {name: sha256_file(out_dir / name) for name in MODEL_FILES}
