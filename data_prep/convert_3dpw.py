"""Convert 3DPW into clip records: ``python -m data_prep.convert_3dpw SRC OUT [--splits test ...]``.

SRC is the public 3DPW folder (von Marcard et al., ECCV 2018; layout and fields from its readme):

    SRC/sequenceFiles/{train,validation,test}/<sequence>.pkl   (Python-2 pickles, latin1)
    SRC/imageFiles/<sequence>/image_%05d.jpg

Each pickle is a dict; per-person fields are lists with one entry per actor (one or two):
``sequence`` str, ``genders`` ['m'|'f'], ``betas`` [(10+,)], ``poses`` [(N,72)] world-frame axis-angle,
``trans`` [(N,3)] m, ``poses2d`` [(N,3,18)] COCO-18 x/y/confidence, ``campose_valid`` [(N,)] bool,
``jointPositions`` [(N,72)]; shared: ``cam_poses`` (N,4,4) world -> camera, ``cam_intrinsics`` (3,3),
``img_frame_ids`` (N,). Frame i of a sequence is ``image_{i:05d}.jpg``.

Output: one clip per (sequence, person), ``<sequence>_p<k>`` in split ``train`` / ``validation`` /
``test``, holding the frames whose camera pose is valid (``campose_valid``, as in the usual 3DPW
protocol; ``frame_ids`` keeps their indices), 30 fps. Global orientation and translation are moved to the
camera frame with the exact SMPL rule (:func:`convert_common.world_to_camera`, rest pelvis from the
body model of the actor's gender, neutral when that model is absent). ``joints2d`` (44-joint layout) and
the boxes come from projecting the body model; ``--box-source dataset`` takes boxes from the ``poses2d``
keypoints instead. No masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fasthmr_lib.data.records import Clip

from .convert_common import (
    BodyModels,
    ConversionError,
    DatasetWriter,
    base_parser,
    body_cli_kwargs,
    boxes_from_points,
    build_clip,
    check_array,
    check_box_source,
    get_array,
    get_field,
    load_pickle,
    normalize_gender,
    open_clip_dataset,
    require_dir,
    resolve_image_size,
    run_cli,
    to_str,
    world_to_camera,
)

SOURCE = "3dpw"
SPLITS = ("train", "validation", "test")
FPS = 30.0
_PER_PERSON = ("poses", "trans", "betas", "genders", "campose_valid")


def image_file(src_dir: Path, sequence: str, frame: int) -> Path:
    return src_dir / "imageFiles" / sequence / f"image_{frame:05d}.jpg"


def _per_person(data: Any, key: str, path: Path, n_people: int | None) -> list:
    v = get_field(data, key, path)
    if not isinstance(v, (list, tuple)) and not (isinstance(v, np.ndarray) and v.dtype == object):
        v = list(v) if isinstance(v, np.ndarray) and v.ndim >= 1 else [v]
    v = list(v)
    if n_people is not None and len(v) != n_people:
        raise ConversionError(f"{path}: key {key!r} has {len(v)} entries, key 'poses' has {n_people}")
    return v


def read_sequence(
    pkl: str | os.PathLike,
    split: str,
    src_dir: str | os.PathLike,
    models: BodyModels,
    writer: DatasetWriter | None = None,
    *,
    box_source: str = "vertices",
    relative_paths: bool = False,
    valid_only: bool = True,
) -> list[tuple[Clip, dict[str, Any]]]:
    """The clips (one per person) of one 3DPW sequence file; errors name the file and the field."""
    pkl, src_dir = Path(pkl), Path(src_dir)
    data = load_pickle(pkl)
    seq = to_str(get_field(data, "sequence", pkl))
    dims: dict[str, int] = {}
    K = get_array(data, "cam_intrinsics", pkl, (3, 3))
    cam = get_array(data, "cam_poses", pkl, ("N", 4, 4), dims)
    poses = _per_person(data, "poses", pkl, None)
    P = len(poses)
    per = {k: _per_person(data, k, pkl, P) for k in _PER_PERSON[1:]}
    poses2d = _per_person(data, "poses2d", pkl, P) if box_source == "dataset" else None
    size, size_from = resolve_image_size(None, image_file(src_dir, seq, 0), K)
    clips = []
    for p in range(P):
        pose = check_array(poses[p], pkl, f"poses[{p}]", ("N", 72), dims)
        trans = check_array(per["trans"][p], pkl, f"trans[{p}]", ("N", 3), dims)
        betas = check_array(per["betas"][p], pkl, f"betas[{p}]", (None,))
        if len(betas) < 10:
            raise ConversionError(f"{pkl}: key 'betas[{p}]' has {len(betas)} values, expected >= 10")
        valid = check_array(per["campose_valid"][p], pkl, f"campose_valid[{p}]", ("N",), dims, kind="b")
        gender = normalize_gender(per["genders"][p])
        keep = np.flatnonzero(valid) if valid_only else np.arange(dims["N"])
        if len(keep) == 0:
            continue
        betas_t = np.broadcast_to(betas[:10], (len(keep), 10))
        R, T = cam[keep, :3, :3], cam[keep, :3, 3]
        pelvis = models.rest_pelvis(gender, betas_t)
        go, tr = world_to_camera(pose[keep, :3], trans[keep], R, T, pelvis)
        boxes = None
        if poses2d is not None:
            kp = check_array(poses2d[p], pkl, f"poses2d[{p}]", ("N", 3, 18), dims)
            kp = np.swapaxes(kp[keep], 1, 2)  # (T,18,3)
            boxes = boxes_from_points(kp[..., :2], kp[..., 2] > 0, size)
        clip_id = f"{seq}_p{p}"
        clip, info = build_clip(
            models,
            clip_id=clip_id,
            split=split,
            source=SOURCE,
            gender=gender,
            image_files=[image_file(src_dir, seq, int(i)) for i in keep],
            K=K,
            cam_R=R,
            cam_T=T,
            global_orient=go,
            body_pose=pose[keep, 3:],
            betas=betas_t,
            transl=tr,
            fps=FPS,
            image_size=size,
            boxes=boxes,
            extras={"frame_ids": keep.astype(np.int64)},
            clip_path=writer.clip_path(split, clip_id) if writer is not None else None,
            relative_paths=relative_paths,
        )
        info.update(src=str(pkl), sequence=seq, person=p, image_size_from=size_from)
        clips.append((clip, info))
    return clips


def convert(
    src_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    smpl_dir: str | os.PathLike | None = None,
    box_source: str = "vertices",
    relative_paths: bool = False,
    valid_only: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Convert the sequence files of ``splits`` (default: every split folder present) under
    ``src_dir/sequenceFiles`` into ``out_root``; returns the clip paths. ``meta.json`` is written last."""
    src = require_dir(src_dir, "3DPW folder")
    seq_root = require_dir(src / "sequenceFiles", "3DPW 'sequenceFiles' folder")
    check_box_source(box_source)
    if splits is None:
        splits = [s for s in SPLITS if (seq_root / s).is_dir()]
    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"3DPW split must be one of {SPLITS}, got {s!r}")
        require_dir(seq_root / s, f"3DPW split folder {s!r}")
    files = [(s, p) for s in splits for p in sorted((seq_root / s).glob("*.pkl"))]
    if not files:
        raise ConversionError(f"{seq_root}: no sequence files <split>/*.pkl found for splits {list(splits)}")
    params = {
        "src_dir": str(src.resolve()),
        "splits": list(splits),
        "box_source": box_source,
        "relative_paths": relative_paths,
        "valid_only": valid_only,
        "smpl_dir": None if smpl_dir is None else str(smpl_dir),
    }
    models, writer = open_clip_dataset(out_root, SOURCE, params, smpl_dir)
    out = []
    for split, pkl in tqdm(files, desc="3DPW sequences", unit="seq", disable=not progress):
        for clip, info in read_sequence(
            pkl, split, src, models, writer,
            box_source=box_source, relative_paths=relative_paths, valid_only=valid_only,
        ):  # fmt: skip
            out.append(writer.write_clip(clip, info))
    writer.finish(fps=FPS, body_model=models.info(), masks=False, occlusion="unknown (0)")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--splits", nargs="+", choices=SPLITS, default=None, help="default: all present")
    ap.add_argument("--all-frames", action="store_true", help="keep frames with an invalid camera pose")
    a = ap.parse_args(argv)
    run_cli(ap, convert, a, splits=a.splits, valid_only=not a.all_frames, **body_cli_kwargs(a))


if __name__ == "__main__":
    main()
