"""Shared code of the real-dataset converters (``data_prep/convert_*.py``).

The converters turn public annotation formats into the clip records of :mod:`fasthmr_lib.data.records`
(one ``.npz`` per clip under ``<out>/<split>/<clip_id>.npz``; real data keep ``image_paths`` instead of
``images`` and have no masks) and write ``<out>/meta.json`` last, with the same ``splits`` layout as the
embedded world's.

What lives here (used by every converter, so no converter repeats it):

* reading source files with errors that name the file and the field (:class:`ConversionError`,
  :func:`load_pickle` -- a restricted unpickler that imports nothing but numpy's array reconstruction --,
  :func:`load_json`, :func:`load_npz`, :func:`get_field`, :func:`get_array`);
* SMPL geometry (pure numpy/roma): :func:`world_to_camera` / :func:`camera_to_world` (exact, with the
  rest-pose pelvis offset), :func:`project_points`, :func:`boxes_from_points`, rotation resampling
  (:func:`resample_positions`, :func:`resample_rotvecs`, :func:`resample_linear`);
* :class:`BodyModels` (per-gender body models with a neutral fallback) and :func:`build_clip`, which
  computes the 44-joint 2D keypoints and subject boxes by projecting the body model;
* :class:`DatasetWriter` (atomic clip files, stale-file clean-up, ``meta.json`` last) and the CLI helpers
  :func:`base_parser` / :func:`run_cli`.

Conventions: camera frame OpenCV (x right, y down, z forward), extrinsics world -> camera
``x_cam = R x_world + T`` (metres), axis-angle SMPL parameters.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import roma
import torch

from fasthmr_lib import io as fio
from fasthmr_lib.body.smpl import GenderedBodies, normalize_gender
from fasthmr_lib.data.records import Clip, save_clip

FORMAT_VERSION = 1
BOX_SOURCES = ("vertices", "dataset")
_DEFAULT_CHUNK = 256


class ConversionError(ValueError):
    """A source file of a dataset is missing or malformed; the message names the file and the field."""


# ------------------------------------------------------------------------------------ source files


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path; :class:`ConversionError` naming it when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: {what} not found")
    return path


def require_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ConversionError(f"{path}: {what} not found")
    return path


def load_pickle(path: str | os.PathLike) -> Any:
    """Read a dataset pickle (Python-2 pickles too: ``encoding='latin1'``) with a restricted unpickler
    that only rebuilds numpy arrays and builtin containers (:class:`fasthmr_lib.body.smpl.SafeSMPLUnpickler`);
    any other global, a truncated or a non-pickle file raise :class:`ConversionError` naming the file."""
    import pickle

    from fasthmr_lib.body.smpl import SafeSMPLUnpickler

    class _DatasetUnpickler(SafeSMPLUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            # Python 3 writes empty bytes (e.g. the data of an empty numpy array) as ``bytes()`` in protocol 2
            if module in ("builtins", "__builtin__") and name == "bytes":
                return bytes
            return super().find_class(module, name)

    path = require_file(path, "pickle file")
    try:
        with open(path, "rb") as fh:
            return _DatasetUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise ConversionError(f"{path}: not a readable pickle ({e})") from e


def load_json(path: str | os.PathLike) -> Any:
    path = require_file(path, "JSON file")
    try:
        return fio.read_json(path)
    except ValueError as e:
        raise ConversionError(str(e)) from e


def load_npz(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` (those present; string arrays stored as objects are allowed)."""
    path = require_file(path, ".npz file")
    try:
        with np.load(path, allow_pickle=True) as z:
            return {k: z[k] for k in keys if k in z.files}
    except Exception as e:  # zipfile / pickle / value errors from a damaged file
        raise ConversionError(f"{path}: not a readable .npz file ({e})") from e


def _name(key: str, parent: str) -> str:
    return f"{parent}.{key}" if parent else key


def get_field(d: Any, key: str, path: Any, parent: str = "") -> Any:
    """``d[key]``; :class:`ConversionError` ``"<path>: missing key 'parent.key'"`` when absent."""
    if not isinstance(d, Mapping):
        where = f"field {parent!r}" if parent else "top level"
        raise ConversionError(f"{path}: {where} is a {type(d).__name__}, expected a dict")
    if key not in d:
        raise ConversionError(f"{path}: missing key {_name(key, parent)!r}")
    return d[key]


def check_array(
    value: Any,
    path: Any,
    name: str,
    shape: Sequence[int | str | None],
    dims: dict[str, int] | None = None,
    kind: str = "f",
) -> np.ndarray:
    """``value`` as a float64 (``kind="f"``), int64 (``"i"``) or bool (``"b"``) array of ``shape``.

    ``shape`` entries: an int (fixed), ``None`` (any) or a name (e.g. ``"N"``) bound in ``dims`` on first
    use, so arrays of one file must agree. Errors name ``path`` and the field ``name``."""
    try:
        a = np.asarray(value)
    except Exception as e:  # ragged lists
        raise ConversionError(f"{path}: key {name!r} is not an array ({e})") from e
    if a.dtype.kind not in "biuf":
        raise ConversionError(f"{path}: key {name!r} is not numeric (dtype {a.dtype})")
    dims = {} if dims is None else dims
    spec = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if a.ndim != len(shape):
        raise ConversionError(f"{path}: key {name!r} has shape {a.shape}, expected {spec}")
    for n, s in zip(a.shape, shape):
        if isinstance(s, int) and n != s:
            raise ConversionError(f"{path}: key {name!r} has shape {a.shape}, expected {spec}")
        if isinstance(s, str):
            if s in dims and dims[s] != n:
                raise ConversionError(
                    f"{path}: key {name!r} has shape {a.shape}, expected {spec} with {s} = {dims[s]}"
                )
            dims[s] = n
    if kind == "b":
        return a.astype(bool)
    if kind == "i":
        return a.astype(np.int64)
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ConversionError(f"{path}: key {name!r} contains NaN or inf")
    return a


def get_array(
    d: Any,
    key: str,
    path: Any,
    shape: Sequence[int | str | None],
    dims: dict[str, int] | None = None,
    kind: str = "f",
    parent: str = "",
) -> np.ndarray:
    """:func:`get_field` + :func:`check_array`."""
    return check_array(get_field(d, key, path, parent), path, _name(key, parent), shape, dims, kind)


def to_str(value: Any) -> str:
    """A string from str / bytes / 0-d or 1-element numpy string arrays."""
    a = np.asarray(value)
    if a.shape == (1,):
        a = a[0]
    v = a.item() if isinstance(a, np.ndarray) and a.shape == () else a
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def sanitize_id(*parts: str) -> str:
    """A file-name-safe clip id from path-like parts (other characters -> '_', parts joined by '__')."""
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p).strip("_") for p in parts if p)


# ------------------------------------------------------------------------------------ geometry


def rotvec_to_rotmat(rv: np.ndarray) -> np.ndarray:
    """(...,3) axis-angle -> (...,3,3) float64."""
    return roma.rotvec_to_rotmat(torch.as_tensor(np.asarray(rv, np.float64))).numpy()


def rotmat_to_rotvec(R: np.ndarray) -> np.ndarray:
    """(...,3,3) -> (...,3) axis-angle float64 (angle in [0, pi])."""
    return roma.rotmat_to_rotvec(torch.as_tensor(np.asarray(R, np.float64))).numpy()


def world_to_camera(
    global_orient: np.ndarray, transl: np.ndarray, cam_R: np.ndarray, cam_T: np.ndarray, pelvis: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """SMPL global orientation / translation from the world frame to the camera frame.

    SMPL rotates the body about its rest pelvis J0(beta): ``x_w = R_go (x - J0) + J0 + t``. With
    ``x_c = R x_w + T`` this gives ``R_go' = R R_go`` and ``t' = R (J0 + t) + T - J0`` -- the same rule
    as I2L-MeshNet's ``Human36M.get_smpl_coord`` (mks0601/I2L-MeshNet_RELEASE) and BEDLAM's
    ``get_global_orient`` (pixelite1201/BEDLAM data_processing/df_full_body_smpl.py).

    Args: global_orient (T,3) axis-angle, transl (T,3) m, cam_R (T,3,3) or (3,3), cam_T (T,3) or (3,),
    pelvis (T,3) or (3,) rest-pose pelvis J0 in metres. Returns (global_orient (T,3), transl (T,3)).
    """
    go = np.asarray(global_orient, np.float64).reshape(-1, 3)
    t = np.asarray(transl, np.float64).reshape(-1, 3)
    R = np.broadcast_to(np.asarray(cam_R, np.float64), (len(go), 3, 3))
    T = np.broadcast_to(np.asarray(cam_T, np.float64), (len(go), 3))
    J0 = np.broadcast_to(np.asarray(pelvis, np.float64), (len(go), 3))
    go_c = rotmat_to_rotvec(R @ rotvec_to_rotmat(go))
    t_c = np.einsum("tij,tj->ti", R, J0 + t) + T - J0
    return go_c, t_c


def camera_to_world(
    global_orient: np.ndarray, transl: np.ndarray, cam_R: np.ndarray, cam_T: np.ndarray, pelvis: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`world_to_camera` (same shapes)."""
    go = np.asarray(global_orient, np.float64).reshape(-1, 3)
    t = np.asarray(transl, np.float64).reshape(-1, 3)
    Rt = np.swapaxes(np.broadcast_to(np.asarray(cam_R, np.float64), (len(go), 3, 3)), -1, -2)
    T = np.broadcast_to(np.asarray(cam_T, np.float64), (len(go), 3))
    J0 = np.broadcast_to(np.asarray(pelvis, np.float64), (len(go), 3))
    go_w = rotmat_to_rotvec(Rt @ rotvec_to_rotmat(go))
    t_w = np.einsum("tij,tj->ti", Rt, t + J0 - T) - J0
    return go_w, t_w


def project_points(K: np.ndarray, X: np.ndarray, min_depth: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection. K (3,3) px, X (...,3) camera frame m -> (uv (...,2) px, in_front (...,) bool).
    Points at depth <= ``min_depth`` get uv = 0 (never inf)."""
    X = np.asarray(X, np.float64)
    z = X[..., 2]
    front = z > min_depth
    zs = np.where(front, z, 1.0)
    uv = np.stack([X[..., 0] / zs, X[..., 1] / zs], -1) @ np.asarray(K, np.float64)[:2, :2].T
    uv = uv + np.asarray(K, np.float64)[:2, 2]
    return np.where(front[..., None], uv, 0.0), front


def inside_image(uv: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(...,) bool: uv (...,2) px inside a (W, H) image."""
    W, H = image_size
    return (uv[..., 0] >= 0) & (uv[..., 0] <= W - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= H - 1)


def boxes_from_points(uv: np.ndarray, valid: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
    """Tight x1,y1,x2,y2 boxes (T,4) of the valid points uv (T,N,2), clipped to the (W,H) image when given
    (like the renderer's boxes); all-zero for frames without a valid point."""
    uv = np.asarray(uv, np.float64)
    valid = np.asarray(valid, bool)
    big = np.where(valid[..., None], uv, np.inf)
    small = np.where(valid[..., None], uv, -np.inf)
    lo, hi = big.min(-2), small.max(-2)
    boxes = np.concatenate([lo, hi], -1)
    if image_size is not None:
        W, H = image_size
        boxes = np.clip(boxes, 0, [W - 1, H - 1, W - 1, H - 1])
    boxes[~valid.any(-1)] = 0.0
    return boxes


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.float64)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], -1)


def resample_positions(n_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Fractional source frames (M,) sampling an ``n_frames`` sequence at ``dst_fps`` from time 0 to its
    last frame (M = floor((n-1) dst/src) + 1). Integer ratios (120 -> 30) give exact source frames."""
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"frame rates must be > 0, got src {src_fps}, dst {dst_fps}")
    ratio = float(src_fps) / float(dst_fps)
    m = int(np.floor((n_frames - 1) / ratio + 1e-6)) + 1
    pos = np.arange(m, dtype=np.float64) * ratio
    return np.minimum(pos, n_frames - 1)


def resample_linear(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of x (T,...) at fractional frames pos (M,)."""
    x = np.asarray(x, np.float64)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, max(len(x) - 2, 0))
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (pos - i0).reshape(-1, *([1] * (x.ndim - 1)))
    return x[i0] * (1 - w) + x[i1] * w


def resample_rotvecs(rv: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Slerp of axis-angle rotations rv (T,...,3) at fractional frames pos (M,) -> (M,...,3):
    ``R(w) = R0 exp(w log(R0^T R1))`` along the shortest arc."""
    rv = np.asarray(rv, np.float64)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, max(len(rv) - 2, 0))
    i1 = np.minimum(i0 + 1, len(rv) - 1)
    w = (pos - i0).reshape(-1, *([1] * (rv.ndim - 1)))
    R0, R1 = rotvec_to_rotmat(rv[i0]), rotvec_to_rotmat(rv[i1])
    rel = rotmat_to_rotvec(np.swapaxes(R0, -1, -2) @ R1)
    return rotmat_to_rotvec(R0 @ rotvec_to_rotmat(w * rel))


# ------------------------------------------------------------------------------------ body models


class BodyModels(GenderedBodies):
    """:class:`~fasthmr_lib.body.smpl.GenderedBodies` (per-gender models, neutral fallback) plus what the
    converters need: provenance (:meth:`info`), the rest pelvis and 2D annotation."""

    def info(self) -> dict[str, Any]:
        """Folder, model file and sha256 of the neutral model, and the genders that fell back to it."""
        from fasthmr_lib.body.smpl import _find_model_file
        from fasthmr_lib.io import sha256_file

        body, _ = self.get("neutral")
        f = _find_model_file(Path(body.source_dir), "neutral")
        return {
            "dir": str(body.source_dir),
            "file": f.name,
            "sha256": sha256_file(f),
            "gender_fallback_to_neutral": sorted(self.fallbacks),
        }

    @torch.no_grad()
    def rest_pelvis(self, gender: str, betas: np.ndarray) -> np.ndarray:
        """Rest-pose pelvis J0(beta) (T,3) m for betas (T,10): ``J_regressor[0] (v_template + S beta)``."""
        from smplx.lbs import blend_shapes, vertices2joints

        body, _ = self.get(gender)
        b = torch.as_tensor(np.asarray(betas, np.float32).reshape(-1, 10), dtype=body.shapedirs.dtype)
        v = body.v_template[None] + blend_shapes(b, body.shapedirs)
        return vertices2joints(body.J_regressor[:1], v)[:, 0].double().numpy()

    @torch.no_grad()
    def annotate_2d(
        self,
        gender: str,
        global_orient: np.ndarray,
        body_pose: np.ndarray,
        betas: np.ndarray,
        transl: np.ndarray,
        K: np.ndarray,
        image_size: tuple[int, int] | None,
        chunk: int = _DEFAULT_CHUNK,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Project the posed body (camera-frame parameters, (T,3)/(T,69)/(T,10)/(T,3)) with K (3,3).

        Returns joints2d (T,44,3) = px x, px y, visibility (in front of the camera and inside the image
        when its size is known) and boxes (T,4) = tight box of the projected vertices in front of the
        camera, clipped to the image."""
        body, _ = self.get(gender)
        T = len(global_orient)
        pose = np.concatenate(
            [np.asarray(global_orient).reshape(T, 3), np.asarray(body_pose).reshape(T, 69)], 1
        )
        j2d = np.zeros((T, 44, 3), np.float32)
        boxes = np.zeros((T, 4), np.float32)
        for s in range(0, T, chunk):
            sl = slice(s, min(T, s + chunk))
            out = body.from_axis_angle(
                torch.tensor(pose[sl], dtype=torch.float32),
                torch.tensor(np.asarray(betas)[sl], dtype=torch.float32),
                torch.tensor(np.asarray(transl)[sl], dtype=torch.float32),
            )
            uv, front = project_points(K, out["joints44"].double().numpy())
            vis = front if image_size is None else front & inside_image(uv, image_size)
            j2d[sl] = np.concatenate([uv, vis[..., None]], -1)
            uvv, frontv = project_points(K, out["vertices"].double().numpy())
            boxes[sl] = boxes_from_points(uvv, frontv, image_size)
        return j2d, boxes


def image_size_of(path: str | os.PathLike) -> tuple[int, int] | None:
    """(W, H) of an image file, or ``None`` when it is absent or unreadable."""
    p = Path(path)
    if not p.is_file():
        return None
    import cv2

    im = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    return None if im is None else (int(im.shape[1]), int(im.shape[0]))


def image_size_from_K(K: np.ndarray) -> tuple[int, int]:
    """(W, H) estimated from the principal point (2 cx, 2 cy) when no image can be read."""
    K = np.asarray(K, np.float64)
    return int(round(2 * K[0, 2])), int(round(2 * K[1, 2]))


def resolve_image_size(
    known: tuple[int, int] | None, first_image: str | os.PathLike | None, K: np.ndarray
) -> tuple[tuple[int, int], str]:
    """(W, H) and where it came from: ``"annotation"`` > ``"image"`` (first frame's file) > ``"K"``."""
    if known is not None:
        return (int(known[0]), int(known[1])), "annotation"
    if first_image is not None:
        s = image_size_of(first_image)
        if s is not None:
            return s, "image"
    return image_size_from_K(K), "K"


def build_clip(
    models: BodyModels,
    *,
    clip_id: str,
    split: str,
    source: str,
    gender: str,
    image_files: Sequence[str | os.PathLike],
    K: np.ndarray,
    cam_R: np.ndarray,
    cam_T: np.ndarray,
    global_orient: np.ndarray,
    body_pose: np.ndarray,
    betas: np.ndarray,
    transl: np.ndarray,
    fps: float,
    image_size: tuple[int, int] | None = None,
    boxes: np.ndarray | None = None,
    extras: dict[str, np.ndarray] | None = None,
    clip_path: Path | None = None,
    relative_paths: bool = False,
) -> tuple[Clip, dict[str, Any]]:
    """A :class:`Clip` from camera-frame SMPL parameters of T frames.

    ``image_files``: the T frame files; stored as absolute paths, or relative to ``clip_path``'s folder
    with ``relative_paths=True``.

    ``joints2d`` (HMR2.0 44-joint layout) and -- unless ``boxes`` (T,4) xyxy px are given -- the subject
    boxes come from projecting the body model of ``gender``. ``image_size`` (W,H): from the annotation,
    else read from the first image, else estimated from K. ``occlusion`` is unknown for real data and set
    to 0. Returns (clip, info) where info records image size source, body gender used, frames."""
    T = len(global_orient)
    betas = np.broadcast_to(np.asarray(betas, np.float64).reshape(-1, 10), (T, 10))
    cam_R = np.broadcast_to(np.asarray(cam_R, np.float64), (T, 3, 3))
    cam_T = np.broadcast_to(np.asarray(cam_T, np.float64), (T, 3))
    if len(image_files) != T:
        raise ValueError(f"clip {clip_id!r}: {len(image_files)} image files for {T} frames")
    if relative_paths and clip_path is None:
        raise ValueError("relative_paths=True needs clip_path")
    size, size_from = resolve_image_size(image_size, image_files[0] if T else None, K)
    _, used = models.get(gender)
    j2d, vboxes = models.annotate_2d(gender, global_orient, body_pose, betas, transl, K, size)
    clip = Clip(
        clip_id=clip_id,
        split=split,
        source=source,
        gender=normalize_gender(gender),
        boxes=(vboxes if boxes is None else np.asarray(boxes)).astype(np.float32),
        global_orient=np.asarray(global_orient, np.float32).reshape(T, 3),
        body_pose=np.asarray(body_pose, np.float32).reshape(T, 69),
        betas=betas.astype(np.float32),
        transl=np.asarray(transl, np.float32).reshape(T, 3),
        K=np.asarray(K, np.float32),
        cam_R=cam_R.astype(np.float32),
        cam_T=cam_T.astype(np.float32),
        joints2d=j2d,
        occlusion=np.zeros(T, np.float32),
        fps=float(fps),
        image_paths=np.array(
            [image_path_for(Path(p), clip_path, relative_paths) for p in image_files], dtype=str
        ),
        extras=dict(extras or {}),
    )
    info = {"n_frames": T, "image_size": list(size), "image_size_from": size_from, "body_gender": used}
    return clip, info


def check_box_source(box_source: str) -> str:
    if box_source not in BOX_SOURCES:
        raise ValueError(f"box_source must be one of {BOX_SOURCES}, got {box_source!r}")
    return box_source


# ---------------------------------------------------------------- NeuralAnnot-style annotations
# Human3.6M and MPI-INF-3DHP ship COCO-style image lists plus per-frame SMPL fits (NeuralAnnot, Moon et
# al. 2022) in the world frame and one static camera per view; read the same way as mks0601's loaders
# (I2L-MeshNet_RELEASE data/Human36M/Human36M.py, Hand4Whole_RELEASE data/MPI_INF_3DHP/MPI_INF_3DHP.py).


def int_field(d: Any, key: str, path: Any, parent: str = "") -> int:
    v = get_field(d, key, path, parent)
    try:
        return int(v)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{path}: key {_name(key, parent)!r} is not an integer ({v!r})") from e


def coco_images(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Images of a COCO-style annotation file (``{"images": [...], "annotations": [{"image_id", "bbox"}]}``)
    with each image's annotation ``bbox`` (x, y, w, h px; ``None`` when the image has no annotation) under
    the key ``"bbox"`` and its list index under ``"_index"``."""
    data = load_json(path)
    images = get_field(data, "images", path)
    anns = get_field(data, "annotations", path)
    if not isinstance(images, list) or not isinstance(anns, list):
        raise ConversionError(f"{path}: keys 'images' and 'annotations' must be lists")
    bbox_of: dict[int, Any] = {}
    for i, a in enumerate(anns):
        bbox_of[int_field(a, "image_id", path, f"annotations[{i}]")] = get_field(
            a, "bbox", path, f"annotations[{i}]"
        )
    out = []
    for i, im in enumerate(images):
        iid = int_field(im, "id", path, f"images[{i}]")
        b = bbox_of.get(iid)
        if b is not None:
            b = check_array(b, path, f"annotations[image_id={iid}].bbox", (4,))
        out.append({**im, "bbox": b, "_index": i})
    return out


def smpl_param_entry(entry: Any, path: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pose (72,), shape (10,), trans (3,)) of one NeuralAnnot SMPL fit ``{"pose", "shape", "trans"}``
    (or ``{"smpl_param": {...}}`` as in the per-annotation NeuralAnnot files)."""
    if isinstance(entry, Mapping) and "smpl_param" in entry:
        entry, name = entry["smpl_param"], f"{name}.smpl_param"
    pose = get_array(entry, "pose", path, (72,), parent=name)
    shape = get_array(entry, "shape", path, (None,), parent=name)
    if len(shape) < 10:
        raise ConversionError(f"{path}: key {name + '.shape'!r} has {len(shape)} values, expected >= 10")
    trans = get_array(entry, "trans", path, (3,), parent=name)
    return pose, shape[:10], trans


def lookup(d: Any, keys: Sequence[str], path: Any) -> Any:
    """``d[k0][k1]...`` or ``None`` when a key is absent; an intermediate that is not a dict is an error."""
    for i, k in enumerate(keys):
        if not isinstance(d, Mapping):
            where = ".".join(keys[:i]) or "top level"
            raise ConversionError(f"{path}: key {where!r} is a {type(d).__name__}, expected a dict")
        if k not in d:
            return None
        d = d[k]
    return d


def neuralannot_groups(
    images: Sequence[dict[str, Any]],
    data_path: Path,
    *,
    fields: Sequence[str],
    group: Sequence[str],
    fit_keys: Sequence[str],
    fits: Any,
    fits_path: Path,
    image_file: Callable[[dict[str, Any]], Path],
    stride: int = 1,
    keep: Callable[[dict[str, int]], bool] | None = None,
) -> tuple[dict[tuple[int, ...], list[dict[str, Any]]], int]:
    """Group the frames of a COCO-style image list into clips.

    Each image must have the integer ``fields`` (including ``frame_idx``) and ``file_name``; images with
    ``frame_idx % stride != 0`` or rejected by ``keep(fields)`` are dropped, the others are looked up in
    ``fits`` by the string values of ``fit_keys`` (frames without a fit are dropped and counted). Returns
    ({values of ``group``: frames sorted by frame}, number of frames without a fit); frame dicts as
    :func:`static_camera_clip` takes them."""
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    missing = 0
    for im in images:
        where = f"images[{im.get('_index', '?')}]"
        v = {k: int_field(im, k, data_path, where) for k in fields}
        get_field(im, "file_name", data_path, where)
        if v["frame_idx"] % stride or (keep is not None and not keep(v)):
            continue
        fk = [str(v[k]) for k in fit_keys]
        entry = lookup(fits, fk, fits_path)
        if entry is None:
            missing += 1
            continue
        pose, shape, trans = smpl_param_entry(entry, fits_path, ".".join(fk))
        size = None
        if "width" in im and "height" in im:
            size = (int_field(im, "width", data_path, where), int_field(im, "height", data_path, where))
        groups.setdefault(tuple(v[k] for k in group), []).append(
            {
                "image": image_file(im),
                "frame": v["frame_idx"],
                "pose": pose,
                "shape": shape,
                "trans": trans,
                "bbox": im.get("bbox"),
                "size": size,
            }  # fmt: skip
        )
    for frames in groups.values():
        frames.sort(key=lambda f: f["frame"])
    return groups, missing


def camera_entry(
    cam: Any, path: Any, name: str, focal_key: str, center_key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K (3,3) px, R (3,3), T (3,) m) of a camera ``{R (3,3), t (3,) mm, <focal_key> (2,),
    <center_key> (2,)}``, world -> camera ``x_cam = R x_world + t`` (Pose2Pose divides ``t`` by 1000 the
    same way)."""
    R = get_array(cam, "R", path, (3, 3), parent=name)
    t = get_array(cam, "t", path, (3,), parent=name)
    f = get_array(cam, focal_key, path, (2,), parent=name)
    c = get_array(cam, center_key, path, (2,), parent=name)
    K = np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])
    return K, R, t / 1000.0


def static_camera_clip(
    models: BodyModels,
    *,
    clip_id: str,
    split: str,
    source: str,
    frames: Sequence[dict[str, Any]],
    K: np.ndarray,
    cam_R: np.ndarray,
    cam_T: np.ndarray,
    fps: float,
    box_source: str,
    clip_path: Path,
    relative_paths: bool,
    gender: str = "neutral",
) -> tuple[Clip, dict[str, Any]]:
    """A clip from world-frame SMPL fits seen by one static camera.

    ``frames``: dicts with ``image`` (path), ``frame`` (int), ``pose`` (72,), ``shape`` (10,), ``trans``
    (3,) world frame, ``bbox`` (x,y,w,h px or None) and ``size`` ((W,H) or None). cam_R (3,3), cam_T (3,) m:
    world -> camera."""
    pose = np.stack([f["pose"] for f in frames])
    betas = np.stack([f["shape"] for f in frames])
    pelvis = models.rest_pelvis(gender, betas)
    go, tr = world_to_camera(pose[:, :3], np.stack([f["trans"] for f in frames]), cam_R, cam_T, pelvis)
    boxes = None
    if box_source == "dataset" and all(f["bbox"] is not None for f in frames):
        boxes = xywh_to_xyxy(np.stack([f["bbox"] for f in frames]))
    return build_clip(
        models,
        clip_id=clip_id,
        split=split,
        source=source,
        gender=gender,
        image_files=[f["image"] for f in frames],
        K=K,
        cam_R=cam_R,
        cam_T=cam_T,
        global_orient=go,
        body_pose=pose[:, 3:],
        betas=betas,
        transl=tr,
        fps=fps,
        image_size=frames[0].get("size"),
        boxes=boxes,
        extras={"frame_ids": np.array([f["frame"] for f in frames], np.int64)},
        clip_path=clip_path,
        relative_paths=relative_paths,
    )


# ------------------------------------------------------------------------------------ writing


class DatasetWriter:
    """Writes the clips of one conversion run under ``out_root`` and, last, ``meta.json``.

    ``meta.json`` is removed first (the root is incomplete while converting). When it held a conversion
    of the same ``source``, the splits this run does not write are kept (so e.g. 3DPW ``test`` and
    ``train`` can be converted one after the other); a different source is an error. Clip files of a
    split written in this run that this run did not produce are deleted (stale)."""

    def __init__(self, out_root: str | os.PathLike, source: str, params: dict[str, Any], kind: str = "clips"):
        self.root = Path(out_root)
        self.source = source
        self.params = params
        self.kind = kind
        self.t0 = time.perf_counter()
        self.splits: dict[str, list[str]] = {}
        self.frames: dict[str, int] = {}
        self.clips: dict[str, dict[str, Any]] = {}
        self._old: dict[str, Any] = {}
        meta = self.root / "meta.json"
        if meta.exists():
            try:
                old = fio.read_json(meta)
            except ValueError:
                old = {}
            if old.get("source") not in (None, source):
                raise ConversionError(
                    f"{meta}: {self.root} already holds a converted {old.get('source')!r} dataset; "
                    f"write {source!r} to another folder"
                )
            self._old = old if isinstance(old, dict) else {}
            meta.unlink()
        self.root.mkdir(parents=True, exist_ok=True)

    def clip_path(self, split: str, clip_id: str) -> Path:
        """Where the record ``clip_id`` of ``split`` is written."""
        return self.root / split / f"{clip_id}.npz"

    def _record(self, split: str, clip_id: str, n_frames: int, info: dict[str, Any]) -> Path:
        if clip_id in self.clips:
            raise ConversionError(f"two clips with the id {clip_id!r} (from {info.get('src')})")
        self.splits.setdefault(split, []).append(clip_id)
        self.frames[split] = self.frames.get(split, 0) + int(n_frames)
        self.clips[clip_id] = {"split": split, "n_frames": int(n_frames), **info}
        return self.clip_path(split, clip_id)

    def write_clip(self, clip: Clip, info: dict[str, Any] | None = None) -> Path:
        """Validate and save one clip atomically (:func:`fasthmr_lib.data.records.save_clip`)."""
        path = self._record(clip.split, clip.clip_id, clip.n_frames, dict(info or {}))
        return save_clip(path, clip)

    def write_arrays(
        self,
        split: str,
        clip_id: str,
        arrays: dict[str, np.ndarray],
        n_frames: int,
        info: dict[str, Any] | None = None,
    ) -> Path:
        """Save a non-clip record (e.g. AMASS motion) atomically as ``<split>/<clip_id>.npz``."""
        path = self._record(split, clip_id, n_frames, dict(info or {}))
        with fio.atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:  # a file object: savez must not append ".npz" to the temp name
                np.savez_compressed(fh, **arrays)
        return path

    def finish(self, **extra: Any) -> Path:
        """Delete stale clip files, merge kept splits of an earlier run, write ``meta.json``; returns it."""
        for split, ids in self.splits.items():
            keep = {f"{i}.npz" for i in ids}
            for p in (self.root / split).glob("*.npz"):
                if p.name not in keep:
                    p.unlink()
        splits = dict(self.splits)
        frames = dict(self.frames)
        clips = dict(self.clips)
        for split, ids in (self._old.get("splits") or {}).items():
            if split in splits:
                continue
            present = [i for i in ids if (self.root / split / f"{i}.npz").is_file()]
            if present:
                splits[split] = present
                old_clips = self._old.get("clips") or {}
                clips.update({i: old_clips[i] for i in present if i in old_clips})
                frames[split] = sum(int(clips.get(i, {}).get("n_frames", 0)) for i in present)
        size = sum(
            (self.root / c["split"] / f"{i}.npz").stat().st_size
            for i, c in clips.items()
            if (self.root / c["split"] / f"{i}.npz").is_file()
        )
        meta = {
            "source": self.source,
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "params": self.params,
            "splits": {k: sorted(v) for k, v in sorted(splits.items())},
            "frames": frames,
            "clips": clips,
            **extra,
            "generation": {"seconds": round(time.perf_counter() - self.t0, 2)},
            "bytes": int(size),
            **{
                k: v
                for k, v in fio.manifest(self.params).items()
                if k in ("created", "git", "versions", "machine")
            },
        }
        return fio.write_json(self.root / "meta.json", meta)


# ------------------------------------------------------------------------------------ CLI


def open_clip_dataset(
    out_root: str | os.PathLike, source: str, params: dict[str, Any], smpl_dir: str | os.PathLike | None
) -> tuple[BodyModels, DatasetWriter]:
    """Body models (the neutral one loaded now, so a missing body model fails before anything is
    written, with set-up instructions) and the writer of a clip-record dataset."""
    models = BodyModels(smpl_dir)
    models.get("neutral")
    return models, DatasetWriter(out_root, source, params)


def base_parser(doc: str | None, body_model: bool = True) -> argparse.ArgumentParser:
    """``SRC OUT [--smpl-dir D] [--box-source vertices|dataset] [--relative-paths] [--quiet]``."""
    ap = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    ap.add_argument("src", type=Path, help="dataset folder (see the module docstring for its layout)")
    ap.add_argument("out", type=Path, help="output record root (<out>/<split>/<clip_id>.npz + meta.json)")
    ap.add_argument(
        "--smpl-dir",
        type=Path,
        default=None,
        help="SMPL folder (default: $FASTHMR_SMPL_DIR or the embedded model)"
        if body_model
        else "SMPL folder for the exact pelvis offset of the axis change (default: none)",
    )
    if body_model:
        ap.add_argument(
            "--box-source",
            choices=BOX_SOURCES,
            default="vertices",
            help="subject boxes from the projected body model (default, like the synthetic world) or "
            "from the dataset's own boxes / keypoints",
        )
        ap.add_argument(
            "--relative-paths",
            action="store_true",
            help="store image paths relative to the clip file (default: absolute)",
        )
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def run_cli(parser: argparse.ArgumentParser, fn: Callable[..., Any], args: argparse.Namespace, **kw: Any):
    """Call ``fn(args.src, args.out, progress=not args.quiet, **kw)``; a conversion error exits with
    status 2 and ``ConversionError: <file>: <what>`` on stderr (no traceback)."""
    try:
        paths = fn(args.src, args.out, progress=not args.quiet, **kw)
    except (ConversionError, FileNotFoundError) as e:
        parser.exit(2, f"{type(e).__name__}: {e}\n")
    if not args.quiet:
        print(f"wrote {len(paths)} records to {args.out} (meta.json last)")
    return paths


def body_cli_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments :func:`base_parser`'s body-model options map to."""
    return {"smpl_dir": args.smpl_dir, "box_source": args.box_source, "relative_paths": args.relative_paths}


def image_path_for(path: Path, clip_path: Path | None, relative: bool) -> str:
    """The string stored in ``image_paths``: absolute, or relative to the clip file's folder."""
    path = Path(os.path.abspath(path))
    if relative and clip_path is not None:
        return os.path.relpath(path, os.path.abspath(clip_path.parent))
    return str(path)
