"""Convert AMASS into motion records for the diffusion prior: ``python -m data_prep.convert_amass SRC OUT``.

SRC is an AMASS root (Mahmood et al., ICCV 2019) with ``<dataset>/<subject>/<sequence>.npz`` files:
SMPL+H G ``*_poses.npz`` -- ``poses`` (T,156) axis-angle (root, 21 body joints, 2 x 15 hand joints),
``trans`` (T,3) m, ``betas`` (16,), ``mocap_framerate``, ``gender``, ``dmpls`` -- or SMPL-X N
``*_stageii.npz`` -- ``poses`` (T,165) (root, 21 body, jaw, 2 eyes, 2 x 15 hands), ``mocap_frame_rate``.
Shape-only files (``shape.npz``, ``*_stagei.npz``) are skipped. AMASS's world is Z up.

Output ``<OUT>/<split>/<id>.npz`` per sequence, in the motion format that
:mod:`fasthmr_lib.diffusion.training` consumes (the same dict as ``fasthmr_lib.data.motion.generate_clip``):
``global_orient`` (T,3) axis-angle in a **Y-up** world (AMASS rotated by -90 deg about x), ``body_pose``
(T,69) = SMPL joints 1..21 from AMASS + zero hand joints 22/23 (the SMPL-H/X finger joints have no SMPL
counterpart), ``betas`` (10,) (the first 10 of AMASS's 16 -- an approximation for SMPL), ``transl`` (T,3),
``fps`` () = 30 (resampled: slerp of rotations, linear translation; integer ratios such as 120 -> 30 pick
every 4th frame exactly) and the attributes ``clip_id``, ``split``, ``source`` = "amass", ``gender``.
Read them back with :func:`load_motions` -> ``list[dict]`` for ``training.clips_to_features`` /
``train_vae`` (world-frame clips: keep ``view_aug=True``).

Splits follow the AMASS protocol (AMASS paper; VPoser / HuMoR): ``val`` = HumanEva, MPI_HDM05 (HDM05), SFU,
MPI_mosh (MoSh); ``test`` = Transitions_mocap (Transitions), SSM_synced (SSM); ``train`` = all others.

The translation follows the exact SMPL rule for a rotated world (:func:`convert_common.world_to_camera`)
when ``--smpl-dir`` gives a body model for the rest pelvis; without one the pelvis offset is taken as 0
(transl is then rotated about the origin: a constant offset of <= 0.3 m, irrelevant to the motion prior,
which uses rotations only).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fasthmr_lib.data.records import split_clip_paths

from .convert_common import (
    BodyModels,
    ConversionError,
    DatasetWriter,
    base_parser,
    check_array,
    get_array,
    load_npz,
    normalize_gender,
    require_dir,
    resample_linear,
    resample_positions,
    resample_rotvecs,
    run_cli,
    sanitize_id,
    world_to_camera,
)

SOURCE = "amass"
FPS = 30.0
# Z-up (AMASS) -> Y-up (SMPL / procedural motion): rotation by -90 deg about x, (x, y, z) -> (x, z, -y).
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
SPLIT_DATASETS = {
    "val": ("humaneva", "mpi_hdm05", "hdm05", "sfu", "mpi_mosh", "mosh"),
    "test": ("transitions_mocap", "transitions", "ssm_synced", "ssm"),
}
SPLITS = ("train", "val", "test")
_KEYS = ("poses", "trans", "betas", "mocap_framerate", "mocap_frame_rate", "gender")
MOTION_KEYS = ("global_orient", "body_pose", "betas", "transl", "fps")


def split_of(rel_path: Path) -> str:
    """AMASS protocol split of a file from its top-level dataset folder."""
    top = rel_path.parts[0].lower() if len(rel_path.parts) > 1 else ""
    for split, names in SPLIT_DATASETS.items():
        if top in names:
            return split
    return "train"


def is_shape_file(p: Path) -> bool:
    return p.name == "shape.npz" or p.name.endswith("_stagei.npz")


def read_sequence(
    path: str | os.PathLike, fps: float = FPS, pelvis_fn: Any = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One AMASS file -> (motion arrays at ``fps``, Y up, info). ``pelvis_fn(gender, betas (T,10))`` gives
    the rest pelvis (T,3) for the exact translation rule (``None``: 0). Errors name the file and key."""
    path = Path(path)
    z = load_npz(path, _KEYS)
    dims: dict[str, int] = {}
    if "poses" not in z:
        raise ConversionError(f"{path}: missing key 'poses'")
    poses = check_array(z["poses"], path, "poses", ("T", None), dims)
    if poses.shape[1] < 66:
        raise ConversionError(f"{path}: key 'poses' has shape {poses.shape}, expected (T, 156) or (T, 165)")
    trans = get_array(z, "trans", path, ("T", 3), dims)
    betas = get_array(z, "betas", path, (None,))
    if betas.shape[0] < 10:
        raise ConversionError(f"{path}: key 'betas' has {betas.shape[0]} values, expected >= 10")
    rate_key = "mocap_framerate" if "mocap_framerate" in z else "mocap_frame_rate"
    src_fps = float(get_array(z, rate_key, path, ()).item()) if rate_key in z else None
    if src_fps is None:
        raise ConversionError(f"{path}: missing key 'mocap_framerate' (or 'mocap_frame_rate')")
    if src_fps <= 0:
        raise ConversionError(f"{path}: key {rate_key!r} must be > 0, got {src_fps}")
    gender = normalize_gender(z["gender"]) if "gender" in z else "neutral"
    T = poses.shape[0]
    if T < 2:
        raise ConversionError(f"{path}: key 'poses' has {T} frame(s), expected >= 2")
    rot = np.concatenate([poses[:, :66], np.zeros((T, 6))], 1).reshape(T, 24, 3)
    pos = resample_positions(T, src_fps, fps)
    rot = resample_rotvecs(rot, pos)
    trans = resample_linear(trans, pos)
    betas10 = betas[:10]
    pelvis = np.zeros(3) if pelvis_fn is None else pelvis_fn(gender, betas10[None])[0]
    go, tr = world_to_camera(rot[:, 0], trans, Z_UP_TO_Y_UP, np.zeros(3), pelvis)
    arrays = {
        "global_orient": go.astype(np.float32),
        "body_pose": rot[:, 1:].reshape(len(pos), 69).astype(np.float32),
        "betas": betas10.astype(np.float32),
        "transl": tr.astype(np.float32),
        "fps": np.array(fps, np.float32),
    }
    info = {"src": str(path), "src_fps": src_fps, "src_frames": T, "n_frames": len(pos), "gender": gender}
    return arrays, info


def convert(
    src_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    fps: float = FPS,
    min_seconds: float = 0.0,
    smpl_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Path]:
    """Convert every AMASS sequence file under ``src_dir`` (of ``splits``, default all) into motion
    records under ``out_root``; sequences shorter than ``min_seconds`` are skipped. Returns the paths;
    ``meta.json`` is written last."""
    src = require_dir(src_dir, "AMASS folder")
    splits = list(splits or SPLITS)
    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"AMASS split must be one of {SPLITS}, got {s!r}")
    files = [p for p in sorted(src.rglob("*.npz")) if not is_shape_file(p)]
    if not files:
        raise ConversionError(f"{src}: no AMASS sequence files <dataset>/<subject>/*.npz found")
    params = {
        "src_dir": str(src.resolve()),
        "splits": splits,
        "fps": float(fps),
        "min_seconds": float(min_seconds),
        "smpl_dir": None if smpl_dir is None else str(smpl_dir),
        "world_up": "y",
    }
    models = BodyModels(smpl_dir) if smpl_dir is not None else None
    writer = DatasetWriter(out_root, SOURCE, params, kind="motion")
    out, short = [], []
    for p in tqdm(files, desc="AMASS sequences", unit="seq", disable=not progress):
        rel = p.relative_to(src)
        split = split_of(rel)
        if split not in splits:
            continue
        arrays, info = read_sequence(p, fps, None if models is None else models.rest_pelvis)
        if (info["n_frames"] - 1) / fps < min_seconds:
            short.append(str(rel))
            continue
        clip_id = sanitize_id(*rel.with_suffix("").parts)
        arrays |= {
            "clip_id": np.array(clip_id),
            "split": np.array(split),
            "source": np.array(SOURCE),
            "gender": np.array(info["gender"]),
        }
        out.append(writer.write_arrays(split, clip_id, arrays, info["n_frames"], info))
    writer.finish(
        fps=float(fps),
        format="motion: global_orient (T,3) Y-up world, body_pose (T,69), betas (10,), transl (T,3), fps",
        body_model=None if models is None else models.info(),
        skipped_short=short,
    )
    return out


def load_motion(path: str | os.PathLike) -> dict[str, Any]:
    """One motion record -> dict (``global_orient`` (T,3), ``body_pose`` (T,69), ``betas`` (10,), ``transl``
    (T,3), ``fps`` float, ``clip_id``, ``split``, ``source``, ``gender`` str); errors name file and key."""
    path = Path(path)
    z = load_npz(path, (*MOTION_KEYS, "clip_id", "split", "source", "gender"))
    dims: dict[str, int] = {}
    out: dict[str, Any] = {
        "global_orient": get_array(z, "global_orient", path, ("T", 3), dims).astype(np.float32),
        "body_pose": get_array(z, "body_pose", path, ("T", 69), dims).astype(np.float32),
        "betas": get_array(z, "betas", path, (10,)).astype(np.float32),
        "transl": get_array(z, "transl", path, ("T", 3), dims).astype(np.float32),
        "fps": float(get_array(z, "fps", path, ()).item()),
    }
    for k in ("clip_id", "split", "source", "gender"):
        out[k] = str(z[k]) if k in z else ""
    return out


def load_motions(root: str | os.PathLike, split: str = "train") -> list[dict[str, Any]]:
    """All motion records of ``split`` (listed in ``root/meta.json``), for
    :func:`fasthmr_lib.diffusion.training.clips_to_features`."""
    return [load_motion(p) for p in split_clip_paths(root, split)]


def main(argv: list[str] | None = None) -> None:
    ap = base_parser(__doc__, body_model=False)
    ap.add_argument("--splits", nargs="+", choices=SPLITS, default=None, help="default: all")
    ap.add_argument("--fps", type=float, default=FPS)
    ap.add_argument("--min-seconds", type=float, default=0.0)
    a = ap.parse_args(argv)
    run_cli(ap, convert, a, splits=a.splits, fps=a.fps, min_seconds=a.min_seconds, smpl_dir=a.smpl_dir)


if __name__ == "__main__":
    main()
