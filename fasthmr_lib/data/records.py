"""One clip-record format shared by the synthetic world and converted real data.

A **clip** is one ``.npz`` file (``np.savez_compressed``) at ``<root>/<split>/<clip_id>.npz``; T frames.

==================  ================  =====================================================================
key                 shape / dtype     meaning
==================  ================  =====================================================================
images              (T,H,W,3) uint8   RGB frames (synthetic data) -- or ``image_paths`` (T,) str (real data;
                                      relative paths are resolved against the clip file's folder)
boxes               (T,4) float32     subject box x1,y1,x2,y2 in px
mask                (T,H,W) bool      visible subject mask (optional for real data)
mask_union          (T,H,W) bool      union of all people's visible masks (optional)
mask_degraded       (T,H,W) bool      "segmenter-like" degraded subject mask (optional)
part_labels         (T,H,W) uint8     dense labels of the visible subject: 1 + SMPL part + 24 * back-of-body,
                                      0 elsewhere (optional, synthetic worlds; training targets only)
global_orient       (T,3) float32     axis-angle, camera frame (OpenCV: x right, y down, z forward)
body_pose           (T,69) float32    axis-angle of SMPL joints 1..23
betas               (T,10) float32    SMPL shape
transl              (T,3) float32     SMPL translation in the camera frame (m)
K                   (3,3) float32     intrinsics in px (pixel centres at integer coordinates)
cam_R, cam_T        (T,3,3), (T,3)    world -> camera extrinsics, x_cam = R x_world + T
joints2d            (T,44,3) float32  HMR2.0 44-joint layout: px x, px y, visibility (0/1)
fps                 () float          frame rate
occlusion           (T,) float32      fraction of the subject's silhouette hidden by others/occluders
clip_id, split,     () str            attributes (0-d arrays)
source, gender
==================  ================  =====================================================================

Any other key is kept in :attr:`Clip.extras` (e.g. ``joints3d`` (T,44,3) camera-frame metres, ``kind``).
GT 3D joints / vertices are recomputed from (theta, beta) with the body model at evaluation time.

A world root holds ``meta.json`` (profile, seed, splits ``{train, calib, test: [clip_ids]}``, body-model
hash, generation time, versions), written last and atomically: its presence means the world is complete.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths
from ..io import atomic_path, read_json

SPLITS = ("train", "calib", "test")
ATTRIBUTE_KEYS = ("clip_id", "split", "source", "gender")
MASK_KINDS = ("mask", "mask_union", "mask_degraded")
_MASK_ALIASES = {"subject": "mask", "union": "mask_union", "degraded": "mask_degraded"}
NUM_JOINTS2D = 44
# limbs of the OpenPose BODY_25 part (joints 0..24) of the 44-joint layout, for drawing skeletons
OPENPOSE25_EDGES = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
    (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22), (22, 23),
    (11, 24),
)  # fmt: skip

# numeric per-frame key -> trailing shape after T
_ARRAY_SPEC: dict[str, tuple[int, ...]] = {
    "boxes": (4,),
    "global_orient": (3,),
    "body_pose": (69,),
    "betas": (10,),
    "transl": (3,),
    "cam_R": (3, 3),
    "cam_T": (3,),
    "joints2d": (NUM_JOINTS2D, 3),
    "occlusion": (),
}


class ClipFormatError(ValueError):
    """A clip file is missing a key or holds an array of the wrong shape / dtype."""


@dataclass
class Clip:
    """All arrays of one clip (see the module docstring for shapes and units)."""

    clip_id: str
    split: str
    source: str = "synthetic"
    gender: str = "neutral"
    # required in a file; ``None`` only after a partial load (``load_clip(path, keys=...)``)
    boxes: np.ndarray = None  # type: ignore[assignment]
    global_orient: np.ndarray = None  # type: ignore[assignment]
    body_pose: np.ndarray = None  # type: ignore[assignment]
    betas: np.ndarray = None  # type: ignore[assignment]
    transl: np.ndarray = None  # type: ignore[assignment]
    K: np.ndarray = None  # type: ignore[assignment]
    cam_R: np.ndarray = None  # type: ignore[assignment]
    cam_T: np.ndarray = None  # type: ignore[assignment]
    joints2d: np.ndarray = None  # type: ignore[assignment]
    occlusion: np.ndarray = None  # type: ignore[assignment]
    fps: float = 30.0
    images: np.ndarray | None = None
    image_paths: np.ndarray | None = None
    mask: np.ndarray | None = None
    mask_union: np.ndarray | None = None
    mask_degraded: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None  # file it was read from (not saved)

    @property
    def n_frames(self) -> int:
        for k in ("boxes", "global_orient", "body_pose", "joints2d", "occlusion", "images", "image_paths"):
            v = getattr(self, k)
            if v is not None:
                return int(v.shape[0])
        raise ValueError(f"{self.path}: clip {self.clip_id!r} has no per-frame array loaded")

    @property
    def image_size_hw(self) -> tuple[int, int]:
        """(H, W) px of the frames (reads the first image for path-based clips)."""
        if self.images is not None:
            return int(self.images.shape[1]), int(self.images.shape[2])
        return tuple(self.image(0).shape[:2])  # type: ignore[return-value]

    def image(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H,W,3) uint8 RGB."""
        if self.images is not None:
            return self.images[t]
        if self.image_paths is None:
            raise ClipFormatError(
                f"{self.path}: clip {self.clip_id!r} has neither 'images' nor 'image_paths'"
            )
        import cv2

        p = Path(str(self.image_paths[t]))
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{self.path}: image_paths[{t}] = {p} could not be read")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def get_mask(self, kind: str = "mask") -> np.ndarray | None:
        """(T,H,W) bool mask of ``kind`` ('mask' | 'mask_union' | 'mask_degraded', or the aliases
        'subject' | 'union' | 'degraded'); ``None`` when the clip has none of that kind."""
        return getattr(self, normalize_mask_kind(kind))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays written to the ``.npz`` (``None`` fields omitted)."""
        out: dict[str, np.ndarray] = {}
        for f in fields(self):
            if f.name in ("extras", "path"):
                continue
            v = getattr(self, f.name)
            if v is None:
                continue
            if f.name in ATTRIBUTE_KEYS:
                out[f.name] = np.array(str(v))
            elif f.name == "fps":
                out[f.name] = np.array(float(v), np.float32)
            else:
                out[f.name] = np.asarray(v)
        for k, v in self.extras.items():
            out[k] = np.asarray(v)
        return out


def normalize_mask_kind(kind: str) -> str:
    k = _MASK_ALIASES.get(kind, kind)
    if k not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS} (or {tuple(_MASK_ALIASES)}), got {kind!r}")
    return k


def _err(path: Any, key: str, msg: str) -> ClipFormatError:
    return ClipFormatError(f"{path}: key {key!r}: {msg}")


def validate_arrays(arrays: dict[str, np.ndarray], path: Any = "<clip>", partial: bool = False) -> None:
    """Check keys, shapes and dtypes of a clip's arrays; raise :class:`ClipFormatError` naming ``path``
    and the key. ``partial=True`` checks only the keys present (for loads of a key subset)."""
    T = None
    for key in ("boxes", "joints2d", "global_orient", "body_pose", "occlusion"):
        if key in arrays:
            T = int(np.asarray(arrays[key]).shape[0]) if np.asarray(arrays[key]).ndim else None
            break
    if not partial:
        for key in ATTRIBUTE_KEYS + ("K", "fps"):
            if key not in arrays:
                raise _err(path, key, "missing")
        if "images" not in arrays and "image_paths" not in arrays:
            raise _err(path, "images", "missing (a clip needs 'images' or 'image_paths')")
    for key, trail in _ARRAY_SPEC.items():
        if key not in arrays:
            if not partial:
                raise _err(path, key, f"missing (expected shape (T,{','.join(map(str, trail))}))")
            continue
        a = np.asarray(arrays[key])
        if a.dtype.kind not in "fiu":
            raise _err(path, key, f"expected a numeric array, got dtype {a.dtype}")
        if a.ndim != 1 + len(trail) or tuple(a.shape[1:]) != trail:
            want = "(T" + "".join(f",{d}" for d in trail) + ")"
            raise _err(path, key, f"expected shape {want}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise _err(path, key, "contains NaN or inf")
        if T is not None and a.shape[0] != T:
            raise _err(path, key, f"has {a.shape[0]} frames, other keys have {T}")
    if "K" in arrays:
        K = np.asarray(arrays["K"])
        if K.shape != (3, 3):
            raise _err(path, "K", f"expected shape (3,3), got {K.shape}")
    if "fps" in arrays and np.asarray(arrays["fps"]).shape != ():
        raise _err(path, "fps", f"expected a scalar, got shape {np.asarray(arrays['fps']).shape}")
    HW = None
    if "images" in arrays:
        im = np.asarray(arrays["images"])
        if im.dtype != np.uint8 or im.ndim != 4 or im.shape[-1] != 3:
            raise _err(path, "images", f"expected (T,H,W,3) uint8, got {im.shape} {im.dtype}")
        if T is not None and im.shape[0] != T:
            raise _err(path, "images", f"has {im.shape[0]} frames, other keys have {T}")
        HW = im.shape[1:3]
    if "image_paths" in arrays:
        ip = np.asarray(arrays["image_paths"])
        if ip.dtype.kind != "U" or ip.ndim != 1 or (T is not None and ip.shape[0] != T):
            raise _err(path, "image_paths", f"expected (T,) str, got {ip.shape} {ip.dtype}")
    for key in MASK_KINDS:
        if key not in arrays:
            continue
        m = np.asarray(arrays[key])
        if m.dtype != np.bool_ or m.ndim != 3:
            raise _err(path, key, f"expected (T,H,W) bool, got {m.shape} {m.dtype}")
        if T is not None and m.shape[0] != T:
            raise _err(path, key, f"has {m.shape[0]} frames, other keys have {T}")
        if HW is not None and m.shape[1:] != HW:
            raise _err(path, key, f"mask size {m.shape[1:]} differs from the image size {HW}")
    for key in ATTRIBUTE_KEYS:
        if key in arrays and np.asarray(arrays[key]).shape != ():
            raise _err(path, key, f"expected a 0-d string array, got shape {np.asarray(arrays[key]).shape}")


def _clip_from_arrays(arrays: dict[str, np.ndarray], path: Path | None) -> Clip:
    known = {f.name for f in fields(Clip)} - {"extras", "path"}
    kw: dict[str, Any] = {}
    extras = {}
    for k, v in arrays.items():
        if k in ATTRIBUTE_KEYS:
            kw[k] = str(v)
        elif k == "fps":
            kw[k] = float(v)
        elif k in known:
            kw[k] = v
        else:
            extras[k] = v
    for k in _ARRAY_SPEC:
        if k in kw and k != "occlusion":
            kw[k] = np.asarray(kw[k], np.float32)
    if "occlusion" in kw:
        kw["occlusion"] = np.asarray(kw["occlusion"], np.float32)
    if "K" in kw:
        kw["K"] = np.asarray(kw["K"], np.float32)
    return Clip(**kw, extras=extras, path=path)


def load_clip(path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> Clip:
    """Read and validate one clip file.

    ``keys``: load only these array keys (plus the attributes, K and fps) -- e.g. without ``images`` for
    motion-only use; fields not loaded are ``None``/empty. Raises ``FileNotFoundError`` or
    :class:`ClipFormatError` naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clip file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            want = (
                names
                if keys is None
                else [k for k in names if k in set(keys) | {*ATTRIBUTE_KEYS, "K", "fps"}]
            )
            arrays = {}
            for k in want:
                try:
                    arrays[k] = z[k]
                except ValueError as e:  # object arrays need pickle: not allowed in a clip
                    raise _err(path, k, f"cannot be read without pickle ({e})") from e
    except ClipFormatError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ClipFormatError(f"{path}: not a readable .npz clip file ({e})") from e
    if keys is not None:
        missing = [k for k in keys if k not in names]
        if missing:
            raise _err(path, missing[0], "missing")
    validate_arrays(arrays, path, partial=keys is not None)
    return _clip_from_arrays(arrays, path)


def save_clip(path: str | os.PathLike, clip: Clip | dict[str, np.ndarray]) -> Path:
    """Validate and write one clip atomically (``np.savez_compressed`` to a temp file, then rename)."""
    path = Path(path)
    arrays = clip.to_arrays() if isinstance(clip, Clip) else {k: np.asarray(v) for k, v in clip.items()}
    validate_arrays(arrays, path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: savez must not append ".npz" to the temp name
            np.savez_compressed(fh, **arrays)
    return path


# ---------------------------------------------------------------------------------------------- worlds


def world_root(profile: str = "default") -> Path:
    """Root of the embedded synthetic world of a profile: ``paths.data_dir()/"world"/profile``."""
    return paths.data_dir() / "world" / profile


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    """``meta.json`` of a world / converted dataset root; a clear error when the world is incomplete."""
    root = Path(root)
    meta = root / "meta.json"
    if not meta.exists():
        raise FileNotFoundError(
            f"{meta}: missing -- the world at {root} is not built or incomplete; build it with "
            f"`python -m data_prep.build_world --profile {root.name}`"
        )
    m = read_json(meta)
    if not isinstance(m, dict) or "splits" not in m:
        raise ValueError(f"{meta}: expected a JSON object with key 'splits'")
    return m


def split_clip_ids(root: str | os.PathLike, split: str) -> list[str]:
    """Clip ids of ``split`` from ``meta.json`` (or, when a root has no meta.json, the files on disk)."""
    root = Path(root)
    if (root / "meta.json").exists():
        splits = read_meta(root)["splits"]
        if split not in splits:
            raise KeyError(f"{root / 'meta.json'}: no split {split!r} (has {sorted(splits)})")
        return list(splits[split])
    d = root / split
    if not d.is_dir():
        raise FileNotFoundError(
            f"{d}: split folder not found and {root / 'meta.json'} missing -- build the world with "
            f"`python -m data_prep.build_world --profile {root.name}`"
        )
    return sorted(p.stem for p in d.glob("*.npz"))


def split_clip_paths(root: str | os.PathLike, split: str) -> list[Path]:
    """Paths of the clip files of ``split`` (checked to exist)."""
    root = Path(root)
    out = []
    for cid in split_clip_ids(root, split):
        p = root / split / f"{cid}.npz"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: listed in {root / 'meta.json'} split {split!r} but missing")
        out.append(p)
    return out
