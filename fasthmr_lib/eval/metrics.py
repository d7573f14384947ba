"""Pose / mesh error metrics and the evaluation protocols used by the paper's tables.

Units: every function takes positions in **metres** and returns errors in **millimetres**
(``accel_error`` returns mm/frame², or m/s² when ``fps`` is given). Inputs may be torch tensors or
numpy arrays; the result has the same kind as the first argument.

Protocols (root alignment as in WHAM's evaluation code, ``lib/eval/eval_utils.py`` and the
per-dataset scripts; WHAM lib/eval/eval_utils.py):

* ``3dpw14``: 14 LSP-ordered joints (R ankle, R knee, R hip, L hip, L knee, L ankle, R wrist,
  R elbow, R shoulder, L shoulder, L elbow, L wrist, neck, head). From the 44-joint HMR2.0 layout
  these are ``[25..37, 43]`` (J19 indices 0-12 + 18, HMR2.0 ``KEYPOINT_LIST``). Pelvis = mean of
  the two hips (indices 2, 3 of the 14). Our variant: HMR2.0's J19 joints with WHAM's hip-mean root.
* ``emdb24``: the 24 SMPL joints (SMPL ``J_regressor``); pelvis = mean of the hips (indices 1, 2).
* ``hmr2_14``: HMR2.0's own evaluator: root-align on joint 39 of the 44 layout (J19 pelvis), then
  the same 14 joints as ``3dpw14``. Not comparable with WHAM-protocol numbers.
* ``wham_3dpw14``: WHAM's 3DPW evaluation (``lib/eval/evaluate_3dpw.py``), the protocol of the paper's
  Table 1 3DPW columns: the 14 joints are the H36M regressor (``J_regressor_h36m.npy``, 17 x V, a file
  the user supplies, see :func:`load_h36m_regressor`) applied to each **mesh**, rows
  ``H36M_TO_LSP14``; pelvis = mean of joints 2, 3 of the 14; vertices shifted by the same pelvis.
* ``wham_emdb24``: WHAM's EMDB evaluation (``lib/eval/evaluate_emdb.py``): the 24 SMPL joints, pelvis
  = mean of joints 1, 2 (as ``emdb24``); it differs from ``emdb24`` only in Accel (below).

Accel: every evaluation table carries ``accel`` (mm/frame²) and ``accel_ms2`` (m/s² at
:data:`EVAL_FPS` = 30 fps, the unit of the paper's Table 1, copied from WHAM's tables: WHAM multiplies
the metre/frame² error by 30²). The ``wham_*`` protocols compute it WHAM's way (``clip_accel``): over
the clip's evaluated frames in frame order without checking for gaps, dropping the first and last
second differences (WHAM ``compute_error_accel(...)[1:-1]``). The other protocols use only frames whose
two neighbours are the adjacent frames of the same clip.
WHAM builds the GT mesh of 3DPW / EMDB with the subject's **gendered** SMPL; ``evaluate_poses`` takes a
``gt_smpl`` (one or per clip) for that, and ``evaluate`` / ``pipeline.evaluate_clips`` a ``gt_bodies``
(:class:`~fasthmr_lib.body.smpl.GenderedBodies`) that poses each item with its record's ``gender``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import roma
import torch
from torch import Tensor, nn

from .. import paths
from ..body.smpl import per_frame_betas

ArrayLike = Any  # torch.Tensor | np.ndarray

#: indices of the 14 LSP-ordered evaluation joints in the 44-joint HMR2.0 layout
J44_TO_LSP14: tuple[int, ...] = (*range(25, 38), 43)
HMR2_PELVIS_44 = 39
#: rows of the 17-joint H36M regressor giving the 14 LSP-ordered joints (WHAM configs/constants.py
#: ``H36M_TO_J14`` = the first 14 of ``H36M_TO_J17``)
H36M_TO_LSP14: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
H36M_REGRESSOR_JOINTS = 17
#: frame rate of 3DPW and EMDB (and of our synthetic clips); WHAM converts Accel with 30² (m/s²)
EVAL_FPS = 30.0


def _t(x: ArrayLike) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return torch.as_tensor(np.asarray(x))


def _like(out: Tensor, ref: ArrayLike) -> ArrayLike:
    return out if isinstance(ref, Tensor) else out.detach().cpu().numpy()


def _check_pair(pred: Tensor, gt: Tensor, name: str) -> None:
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(
            f"{name}: pred and gt must both be (..., N, 3) with equal shapes, got "
            f"{tuple(pred.shape)} and {tuple(gt.shape)}"
        )


def root_align(joints: ArrayLike, root: int | tuple[int, ...]) -> ArrayLike:
    """Subtract the root joint (or the mean of several joints, e.g. the two hips) from (..., N, 3)."""
    j = _t(joints)
    idx = (root,) if isinstance(root, int) else tuple(root)
    r = j[..., list(idx), :].mean(dim=-2, keepdim=True)
    return _like(j - r, joints)


def mpjpe(pred: ArrayLike, gt: ArrayLike) -> ArrayLike:
    """Mean per-joint position error. pred, gt: (..., N, 3) metres -> (...,) millimetres.

    No alignment is done here; align both first (``root_align`` or a protocol)."""
    p, g = _t(pred), _t(gt)
    _check_pair(p, g, "mpjpe")
    return _like(per_joint_error(p, g).mean(-1), pred)


def similarity_procrustes(pred: ArrayLike, gt: ArrayLike) -> ArrayLike:
    """Align pred onto gt with the best similarity transform (scale s, rotation R, translation t).

    pred, gt: (..., N, 3). Returns ``s * R pred + t`` with the same shape. Umeyama / Kabsch via SVD
    with the reflection fix (det(R) = +1), as in HMR / SPIN / WHAM ``batch_compute_similarity_transform``.
    """
    X, Y = _t(pred), _t(gt)
    _check_pair(X, Y, "similarity_procrustes")
    dtype = X.dtype
    X, Y = X.double(), Y.double()
    mx, my = X.mean(-2, keepdim=True), Y.mean(-2, keepdim=True)
    X0, Y0 = X - mx, Y - my
    var = (X0**2).sum(dim=(-1, -2))
    K = X0.transpose(-1, -2) @ Y0  # (..., 3, 3) = sum_i x_i y_i^T
    U, S, Vh = torch.linalg.svd(K)
    V = Vh.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    Z = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = V @ Z @ U.transpose(-1, -2)  # rotation taking x to y
    scale = (S * torch.diagonal(Z, dim1=-2, dim2=-1)).sum(-1) / var.clamp_min(1e-12)
    aligned = scale[..., None, None] * (X0 @ R.transpose(-1, -2)) + my
    return _like(aligned.to(dtype), pred)


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike) -> ArrayLike:
    """Procrustes-aligned MPJPE: (..., N, 3) metres -> (...,) millimetres."""
    aligned = _t(similarity_procrustes(_t(pred), _t(gt)))
    return _like(_t(mpjpe(aligned, _t(gt))), pred)


def per_joint_error(pred: ArrayLike, gt: ArrayLike) -> ArrayLike:
    """Each joint's position error: pred, gt (..., N, 3) metres -> (..., N) millimetres (their mean over N is
    :func:`mpjpe`). No alignment is done here."""
    p, g = _t(pred), _t(gt)
    _check_pair(p, g, "per_joint_error")
    return _like(torch.linalg.norm(p - g, dim=-1) * 1000.0, pred)


def pve(pred_vertices: ArrayLike, gt_vertices: ArrayLike) -> ArrayLike:
    """Per-vertex error (PVE / MVE): (..., V, 3) metres -> (...,) mm. Align (root-subtract) first;
    WHAM subtracts the joint pelvis of each mesh from its vertices (see ``evaluate_frames``)."""
    return mpjpe(pred_vertices, gt_vertices)


def orientation_error(pred_rotmat: ArrayLike, gt_rotmat: ArrayLike) -> ArrayLike:
    """Geodesic angle between predicted and GT rotations (e.g. the global orientation), in **degrees**.

    pred_rotmat, gt_rotmat: (..., 3, 3) rotation matrices -> (...) degrees in [0, 180]. A person
    predicted facing the opposite way (yaw flipped) scores 180."""
    p, g = _t(pred_rotmat).double(), _t(gt_rotmat).double()
    if p.shape != g.shape or p.shape[-2:] != (3, 3):
        shapes = f"pred {tuple(p.shape)} and gt {tuple(g.shape)}"
        raise ValueError(f"orientation_error: {shapes} must be (..., 3, 3)")
    return _like(torch.rad2deg(roma.rotmat_geodesic_distance(p, g)).float(), pred_rotmat)


def accel_error(pred: ArrayLike, gt: ArrayLike, fps: float | None = None) -> ArrayLike:
    """Acceleration error over a sequence: pred, gt (T, N, 3) metres -> (T-2,) per middle frame.

    a_t = x_{t-1} - 2 x_t + x_{t+1} (second difference), error = mean over joints of
    ||a_pred - a_gt||. Returns mm/frame² (VIBE-style; WHAM ``compute_error_accel`` in mm); with ``fps``
    given returns m/s² (:func:`accel_ms2`: WHAM's / GVHMR's tables and the FastHMR paper's Table 1).
    """
    p, g = _t(pred), _t(gt)
    _check_pair(p, g, "accel_error")
    if p.ndim != 3 or p.shape[0] < 3:
        raise ValueError(f"accel_error needs (T>=3, N, 3) sequences, got {tuple(p.shape)}")
    ap = p[:-2] - 2 * p[1:-1] + p[2:]
    ag = g[:-2] - 2 * g[1:-1] + g[2:]
    err = torch.linalg.norm(ap - ag, dim=-1).mean(-1) * 1000.0
    if fps is not None:
        err = accel_ms2(err, fps)
    return _like(err, pred)


@dataclass(frozen=True)
class Protocol:
    """Which joints are compared, where they come from, how they are root-aligned, how Accel is taken."""

    name: str
    num_joints: int  # joints after selection
    select_from_44: tuple[int, ...] | None  # picks from the 44-joint layout (None: input already N)
    root: tuple[int, ...]  # root indices in the *selected* set (mean of them)
    root_44: int | None = None  # root in the 44 layout, applied before selection (HMR2.0 evaluator)
    from_mesh: bool = False  # joints = H36M regressor rows H36M_TO_LSP14 applied to the vertices (WHAM)
    wham_accel: bool = False  # Accel over the evaluated frames in order, WHAM's [1:-1] trim (clip_accel)

    @property
    def joints_key(self) -> str | None:
        """Body-model output the joints are read from (``joints44`` / ``joints24``); ``None``: the mesh."""
        if self.from_mesh:
            return None
        return "joints44" if self.select_from_44 is not None else "joints24"


PROTOCOLS: dict[str, Protocol] = {
    "3dpw14": Protocol("3dpw14", 14, J44_TO_LSP14, root=(2, 3)),
    "emdb24": Protocol("emdb24", 24, None, root=(1, 2)),
    "hmr2_14": Protocol("hmr2_14", 14, J44_TO_LSP14, root=(), root_44=HMR2_PELVIS_44),
    # WHAM lib/eval/evaluate_3dpw.py: pelvis_idxs = [2, 3]; evaluate_emdb.py: pelvis_idxs = [1, 2]
    "wham_3dpw14": Protocol("wham_3dpw14", 14, None, root=(2, 3), from_mesh=True, wham_accel=True),
    "wham_emdb24": Protocol("wham_emdb24", 24, None, root=(1, 2), wham_accel=True),
}


def get_protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        raise KeyError(f"unknown evaluation protocol {name!r}; expected one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


_H36M_HELP = (
    "The WHAM protocol {proto} regresses its 14 joints from the mesh with the H36M joint regressor "
    "J_regressor_h36m.npy: a ({n} x V) numpy array (V = 6890 for real SMPL) mapping SMPL vertices to the "
    "17 Human3.6M joints, shipped with the SPIN / VIBE / WHAM data downloads (WHAM: "
    "dataset/body_models/J_regressor_h36m.npy). Set FASTHMR_H36M_REGRESSOR=/path/to/J_regressor_h36m.npy "
    "or pass h36m_regressor=... ({what})."
)


@functools.lru_cache(maxsize=4)
def _read_regressor(path: str, mtime_ns: int) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a numpy .npy array of the H36M regressor (17, V): {e}") from e


def load_h36m_regressor(
    source: str | Path | ArrayLike | None = None,
    num_vertices: int | None = None,
    protocol: str = "wham_3dpw14",
) -> Tensor:
    """The H36M joint regressor as a (17, V) float32 tensor.

    source: a path to ``J_regressor_h36m.npy``, an array / tensor (17, V), or ``None`` -> the file named by
    ``FASTHMR_H36M_REGRESSOR`` (:func:`fasthmr_lib.paths.h36m_regressor_path`). ``num_vertices``: the body
    model's vertex count V the regressor must match (6890 for SMPL, the embedded model's own count).
    Raises FileNotFoundError naming the file and where it comes from when it is missing."""
    if source is None:
        source = paths.h36m_regressor_path()
        if source is None:
            what = "FASTHMR_H36M_REGRESSOR is not set and no h36m_regressor was given"
            raise FileNotFoundError(_H36M_HELP.format(proto=protocol, n=H36M_REGRESSOR_JOINTS, what=what))
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            what = f"not found: {path}"
            raise FileNotFoundError(_H36M_HELP.format(proto=protocol, n=H36M_REGRESSOR_JOINTS, what=what))
        reg, where = torch.from_numpy(_read_regressor(str(path), path.stat().st_mtime_ns)), str(path)
    else:
        reg, where = _t(source).float(), "the given h36m_regressor array"
    if reg.ndim != 2 or reg.shape[0] != H36M_REGRESSOR_JOINTS:
        raise ValueError(f"{where}: expected the H36M regressor of shape (17, V), got {tuple(reg.shape)}")
    if num_vertices is not None and reg.shape[1] != num_vertices:
        raise ValueError(
            f"{where}: the H36M regressor has {reg.shape[1]} vertex columns but the body model has "
            f"{num_vertices} vertices (real SMPL: 6890); use the regressor made for this body model"
        )
    return reg


def protocol_joints(
    joints: ArrayLike | None,
    protocol: str | Protocol,
    vertices: ArrayLike | None = None,
    h36m_regressor: str | Path | ArrayLike | None = None,
) -> tuple[Tensor, Tensor]:
    """Select (or regress from the mesh) and root-align joints for a protocol.

    joints: (..., 44, 3) (HMR2.0 layout) or (..., num_joints, 3) already in the protocol's set; ignored by
    mesh protocols (``wham_3dpw14``), which need ``vertices`` (..., V, 3) and the H36M regressor
    (:func:`load_h36m_regressor`). Returns (aligned joints (..., num_joints, 3), root (..., 1, 3)), metres."""
    pr = get_protocol(protocol)
    if pr.from_mesh:
        if vertices is None:
            raise ValueError(
                f"protocol {pr.name} regresses its joints from the mesh (WHAM's 3DPW evaluation): pass the "
                "vertices (..., V, 3); this call site has joints only"
            )
        v = _t(vertices)
        reg = load_h36m_regressor(h36m_regressor, v.shape[-2], pr.name)
        j = torch.einsum("jv,...vc->...jc", reg[list(H36M_TO_LSP14)].to(v), v)
    else:
        if joints is None:
            raise ValueError(f"protocol {pr.name}: joints are required (got None)")
        j = _t(joints)
    if j.ndim < 2 or j.shape[-1] != 3:
        raise ValueError(f"protocol {pr.name}: joints must be (..., N, 3), got {tuple(j.shape)}")
    n = j.shape[-2]
    if pr.root_44 is not None:
        if n != 44:
            raise ValueError(f"protocol {pr.name} needs the 44-joint HMR2.0 layout, got {n} joints")
        root = j[..., pr.root_44 : pr.root_44 + 1, :]
        return (j - root)[..., list(pr.select_from_44), :], root
    if n == 44 and pr.select_from_44 is not None:
        j = j[..., list(pr.select_from_44), :]
    elif n != pr.num_joints:
        raise ValueError(
            f"protocol {pr.name} expects {pr.num_joints} joints"
            + (" (or the 44-joint layout)" if pr.select_from_44 else "")
            + f", got {n}"
        )
    root = j[..., list(pr.root), :].mean(-2, keepdim=True)
    return j - root, root


def evaluate_frames(
    pred_joints: ArrayLike | None,
    gt_joints: ArrayLike | None,
    protocol: str | Protocol = "3dpw14",
    pred_vertices: ArrayLike | None = None,
    gt_vertices: ArrayLike | None = None,
    *,
    h36m_regressor: str | Path | ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame MPJPE / PA-MPJPE (and PVE when vertices are given) under a protocol, in mm.

    pred_joints, gt_joints: (B, N, 3) metres (``None`` allowed for mesh protocols); vertices (B, V, 3)
    metres, shifted by the same root as the joints (WHAM ``batch_align_by_pelvis``: the pelvis of each
    mesh's own joints). ``h36m_regressor``: for ``wham_3dpw14`` (see :func:`load_h36m_regressor`).
    Returns numpy arrays of shape (B,)."""
    return frame_errors(pred_joints, gt_joints, protocol, pred_vertices, gt_vertices, h36m_regressor)[0]


def frame_errors(
    pred_joints: ArrayLike | None,
    gt_joints: ArrayLike | None,
    protocol: str | Protocol = "3dpw14",
    pred_vertices: ArrayLike | None = None,
    gt_vertices: ArrayLike | None = None,
    h36m_regressor: str | Path | ArrayLike | None = None,
) -> tuple[dict[str, np.ndarray], Tensor, Tensor]:
    """:func:`evaluate_frames`' metrics plus the root-aligned protocol joints they were computed on,
    (pred (B, N, 3), gt (B, N, 3)) metres — what Accel is taken on, so callers need not select (or, for
    mesh protocols, regress) the joints a second time."""
    pr = get_protocol(protocol)
    if (pred_vertices is None) != (gt_vertices is None):
        raise ValueError("evaluate_frames: give both pred_vertices and gt_vertices, or neither")
    pj, pr_root = protocol_joints(pred_joints, pr, pred_vertices, h36m_regressor)
    gj, gt_root = protocol_joints(gt_joints, pr, gt_vertices, h36m_regressor)
    out = {
        "mpjpe": np.asarray(_t(mpjpe(pj, gj)).detach().cpu().numpy()),
        "pa_mpjpe": np.asarray(_t(pa_mpjpe(pj, gj)).detach().cpu().numpy()),
    }
    if pred_vertices is not None:
        pv = _t(pred_vertices) - pr_root.to(_t(pred_vertices).dtype)
        gv = _t(gt_vertices) - gt_root.to(_t(gt_vertices).dtype)
        out["pve"] = _t(pve(pv, gv)).detach().cpu().numpy()
    return out, pj, gj


def clip_accel(
    pred: ArrayLike, gt: ArrayLike, frames: ArrayLike, protocol: str | Protocol = "3dpw14"
) -> np.ndarray:
    """Per-frame Accel error of one clip, mm/frame² (NaN where undefined).

    pred, gt: (T, N, 3) root-aligned protocol joints in metres, in frame order; frames: (T,) frame numbers.
    Default protocols: the value at a frame whose neighbours are the adjacent frames (no gap). WHAM
    protocols: the evaluated frames as one sequence (gaps not checked) and WHAM's
    ``compute_error_accel(...)[1:-1]``, i.e. values at positions 2..T-3. Returns (T,) float64."""
    pr = get_protocol(protocol)
    T = len(pred)
    acc = np.full(T, np.nan)
    if T < 3:
        return acc
    e = np.asarray(_t(accel_error(_t(pred).double(), _t(gt).double())).cpu().numpy(), np.float64)
    if pr.wham_accel:
        acc[2:-2] = e[1:-1]
        return acc
    fr = np.asarray(frames)
    ok = (fr[1:-1] - fr[:-2] == 1) & (fr[2:] - fr[1:-1] == 1)
    mid = acc[1:-1]
    mid[ok] = e[ok]
    return acc


def accel_ms2(accel_mm_per_frame2: ArrayLike, fps: float = EVAL_FPS) -> ArrayLike:
    """mm/frame² -> m/s² at ``fps`` (× fps² / 1000; 30 fps: × 0.9), the unit of the paper's Table 1."""
    return accel_mm_per_frame2 * (float(fps) ** 2 / 1000.0)


# ----------------------------------------------------------------------------------------------------
# sequences of SMPL θ against ground truth (the decoder's and the per-frame head's outputs)


@torch.no_grad()
def evaluate_poses(
    smpl: nn.Module,
    pred: dict[str, dict[str, Tensor]],
    gt: dict[str, dict[str, Tensor]],
    *,
    protocol: str = "3dpw14",
    method: str = "",
    chunk: int = 256,
    h36m_regressor: str | Path | ArrayLike | None = None,
    gt_smpl: nn.Module | Mapping[str, nn.Module] | None = None,
    per_joint: bool = False,
    orientation: bool = False,
) -> pd.DataFrame:
    """Per-frame MPJPE / PA-MPJPE / PVE (mm) and Accel (``accel`` mm/frame², ``accel_ms2`` m/s² at
    :data:`EVAL_FPS`; NaN where :func:`clip_accel` leaves it undefined) of predicted clips.

    pred[clip_id]: ``rotmat`` (T,24,3,3), ``betas`` (T,10); gt[clip_id]: ``pose`` (T,72) axis-angle
    (global orient first), ``betas`` (T,10). Both are posed without translation and root-aligned by the
    protocol (:func:`evaluate_frames`); ``h36m_regressor`` for ``wham_3dpw14`` (:func:`load_h36m_regressor`).
    ``gt_smpl``: the body model posing the GT (one, or one per clip id: WHAM uses the subject's gendered
    SMPL); default ``smpl``. Returns rows clip_id, frame, method, mpjpe, pa_mpjpe, pve, accel, accel_ms2; with
    ``per_joint`` also ``joint_00..`` (each protocol joint's error after root alignment, mm; their mean is
    ``mpjpe``), with ``orientation`` also ``orient_deg`` (:func:`orientation_error` of the global orientation,
    degrees)."""
    rows = []
    pr = get_protocol(protocol)
    reg = None
    if pr.from_mesh:
        reg = load_h36m_regressor(h36m_regressor, getattr(smpl, "num_vertices", None), pr.name)
    key = pr.joints_key
    for cid, p in pred.items():
        if cid not in gt:
            raise KeyError(f"evaluate_poses: no ground truth for clip {cid!r}")
        g = gt[cid]
        gbody = smpl if gt_smpl is None else gt_smpl[cid] if isinstance(gt_smpl, Mapping) else gt_smpl
        R = torch.as_tensor(p["rotmat"], dtype=torch.float32)
        T = R.shape[0]
        Rg = roma.rotvec_to_rotmat(torch.as_tensor(g["pose"], dtype=torch.float32).reshape(T, 24, 3))
        bp = per_frame_betas(torch.as_tensor(p["betas"], dtype=torch.float32), T)
        bg = per_frame_betas(torch.as_tensor(g["betas"], dtype=torch.float32), T)
        res: dict[str, list] = {"mpjpe": [], "pa_mpjpe": [], "pve": []}
        pj_all, gj_all = [], []
        for a in range(0, T, chunk):
            op = smpl(R[a : a + chunk, :1], R[a : a + chunk, 1:], bp[a : a + chunk])
            og = gbody(Rg[a : a + chunk, :1], Rg[a : a + chunk, 1:], bg[a : a + chunk])
            pjk = None if key is None else op[key].float()
            gjk = None if key is None else og[key].float()
            pv, gv = op["vertices"].float(), og["vertices"].float()
            r, pa, ga = frame_errors(pjk, gjk, pr, pv, gv, reg)
            for k in res:
                res[k].append(r[k])
            pj_all.append(pa)
            gj_all.append(ga)
        df = pd.DataFrame({k: np.concatenate(v) for k, v in res.items()})
        pj_cat, gj_cat = torch.cat(pj_all), torch.cat(gj_all)
        if per_joint:
            err = per_joint_error(pj_cat, gj_cat).cpu().numpy()
            df = pd.concat(
                [df, pd.DataFrame(err, columns=[f"joint_{k:02d}" for k in range(err.shape[1])])], axis=1
            )
        if orientation:
            df["orient_deg"] = np.asarray(orientation_error(R[:, 0], Rg[:, 0]))
        df.insert(0, "method", method)
        df.insert(0, "frame", np.arange(T))
        df.insert(0, "clip_id", cid)
        df["accel"] = clip_accel(pj_cat, gj_cat, np.arange(T), pr)
        df["accel_ms2"] = accel_ms2(df["accel"].to_numpy())
        rows.append(df)
    return pd.concat(rows, ignore_index=True)
