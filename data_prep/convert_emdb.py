"""Convert EMDB into clip records: ``python -m data_prep.convert_emdb SRC OUT [--protocol emdb1]``.

SRC is the EMDB root (Kaufmann et al., ICCV 2023; layout and fields from eth-ait/emdb ``dataset.md``):

    SRC/P<k>/<seq>/P<k>_<seq>_data.pkl
    SRC/P<k>/<seq>/images/%05d.jpg

Each ``*_data.pkl`` is a dict: ``gender`` str, ``name`` ``"P<k>_<seq>"``, ``emdb1`` / ``emdb2`` bool,
``n_frames`` int, ``good_frames_mask`` (n,) bool, ``camera`` {``intrinsics`` (3,3), ``extrinsics`` (n,4,4)
world -> camera, ``width``, ``height``}, ``smpl`` {``poses_root`` (n,3), ``poses_body`` (n,69), ``trans``
(n,3), ``betas`` (10,)} in the world frame, ``kp2d`` (n,24,2), ``bboxes`` {``bboxes`` (n,4) x1,y1,x2,y2,
``invalid_idxs``}.

Protocol ``emdb1`` (default; the paper's EMDB test set, "EMDB-1": the sequences flagged ``emdb1``),
``emdb2`` (sequences flagged ``emdb2``) or ``all``. Output: one clip per selected sequence, id = ``name``,
in split ``test`` (``--split``), with the good frames only (``good_frames_mask``; ``frame_ids`` keeps their
indices), 30 fps, global orientation / translation moved to the camera frame with the exact SMPL rule.
``joints2d`` and boxes from projecting the body model (``--box-source dataset``: EMDB's own boxes). No masks.
"""

from __future__ import annotations

import os
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
    build_clip,
    check_box_source,
    get_array,
    get_field,
    int_field,
    load_pickle,
    normalize_gender,
    open_clip_dataset,
    require_dir,
    run_cli,
    to_str,
    world_to_camera,
)

SOURCE = "emdb"
PROTOCOLS = ("emdb1", "emdb2", "all")
FPS = 30.0


def find_sequence_files(src_dir: Path) -> list[Path]:
    """``P*/<seq>/*_data.pkl`` under the EMDB root (any depth as a fallback)."""
    files = sorted(src_dir.glob("P*/*/*_data.pkl"))
    return files or sorted(src_dir.rglob("*_data.pkl"))


def selected(data: Any, pkl: Path, protocol: str) -> bool:
    """Whether a sequence belongs to ``protocol`` (its ``emdb1`` / ``emdb2`` flag)."""
    if protocol == "all":
        return True
    return bool(np.asarray(get_field(data, protocol, pkl)).item())


def read_sequence(
    pkl: str | os.PathLike,
    split: str,
    models: BodyModels,
    writer: DatasetWriter | None = None,
    *,
    box_source: str = "vertices",
    relative_paths: bool = False,
    good_frames_only: bool = True,
    data: Any = None,
) -> tuple[Clip, dict[str, Any]] | None:
    """The clip of one EMDB sequence (``None`` when it has no good frame); errors name file and field."""
    pkl = Path(pkl)
    data = load_pickle(pkl) if data is None else data
    name = to_str(get_field(data, "name", pkl))
    gender = normalize_gender(get_field(data, "gender", pkl))
    n = int_field(data, "n_frames", pkl)
    dims = {"n": n}
    good = get_array(data, "good_frames_mask", pkl, ("n",), dims, kind="b")
    camera = get_field(data, "camera", pkl)
    K = get_array(camera, "intrinsics", pkl, (3, 3), parent="camera")
    ext = get_array(camera, "extrinsics", pkl, ("n", 4, 4), dims, parent="camera")
    size = None
    if isinstance(camera, dict) and "width" in camera and "height" in camera:
        size = (int_field(camera, "width", pkl, "camera"), int_field(camera, "height", pkl, "camera"))
    smpl = get_field(data, "smpl", pkl)
    root = get_array(smpl, "poses_root", pkl, ("n", 3), dims, parent="smpl")
    body = get_array(smpl, "poses_body", pkl, ("n", 69), dims, parent="smpl")
    trans = get_array(smpl, "trans", pkl, ("n", 3), dims, parent="smpl")
    betas = get_array(smpl, "betas", pkl, (None,), parent="smpl")
    if betas.shape[0] < 10:
        raise ConversionError(f"{pkl}: key 'smpl.betas' has {betas.shape[0]} values, expected >= 10")
    boxes_all = None
    if box_source == "dataset":
        bb = get_field(data, "bboxes", pkl)
        boxes_all = get_array(bb, "bboxes", pkl, ("n", 4), dims, parent="bboxes")
    keep = np.flatnonzero(good) if good_frames_only else np.arange(n)
    if len(keep) == 0:
        return None
    R, T = ext[keep, :3, :3], ext[keep, :3, 3]
    betas_t = np.broadcast_to(betas[:10], (len(keep), 10))
    go, tr = world_to_camera(root[keep], trans[keep], R, T, models.rest_pelvis(gender, betas_t))
    clip, info = build_clip(
        models,
        clip_id=name,
        split=split,
        source=SOURCE,
        gender=gender,
        image_files=[pkl.parent / "images" / f"{int(i):05d}.jpg" for i in keep],
        K=K,
        cam_R=R,
        cam_T=T,
        global_orient=go,
        body_pose=body[keep],
        betas=betas_t,
        transl=tr,
        fps=FPS,
        image_size=size,
        boxes=None if boxes_all is None else boxes_all[keep],
        extras={"frame_ids": keep.astype(np.int64)},
        clip_path=writer.clip_path(split, name) if writer is not None else None,
        relative_paths=relative_paths,
    )
    info.update(src=str(pkl), emdb1=bool(np.asarray(data.get("emdb1", False)).item()))
    return clip, info


def convert(
    src_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    protocol: str = "emdb1",
    split: str = "test",
    smpl_dir: str | os.PathLike | None = None,
    box_source: str = "vertices",
    relative_paths: bool = False,
    good_frames_only: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Convert the EMDB sequences of ``protocol`` under ``src_dir`` into ``out_root``/``split``; returns
    the clip paths. ``meta.json`` is written last."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    check_box_source(box_source)
    src = require_dir(src_dir, "EMDB folder")
    files = find_sequence_files(src)
    if not files:
        raise ConversionError(f"{src}: no EMDB sequence files P*/<sequence>/*_data.pkl found")
    params = {
        "src_dir": str(src.resolve()),
        "protocol": protocol,
        "split": split,
        "box_source": box_source,
        "relative_paths": relative_paths,
        "good_frames_only": good_frames_only,
        "smpl_dir": None if smpl_dir is None else str(smpl_dir),
    }
    models, writer = open_clip_dataset(out_root, SOURCE, params, smpl_dir)
    out, skipped = [], []
    for pkl in tqdm(files, desc="EMDB sequences", unit="seq", disable=not progress):
        data = load_pickle(pkl)
        if not selected(data, pkl, protocol):
            continue
        res = read_sequence(
            pkl, split, models, writer, box_source=box_source, relative_paths=relative_paths,
            good_frames_only=good_frames_only, data=data,
        )  # fmt: skip
        if res is None:
            skipped.append(str(pkl))
            continue
        out.append(writer.write_clip(*res))
    if not out:
        raise ConversionError(f"{src}: no sequence of protocol {protocol!r} (with good frames) found")
    writer.finish(
        fps=FPS, body_model=models.info(), masks=False, occlusion="unknown (0)",
        skipped_no_good_frames=skipped,
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--protocol", choices=PROTOCOLS, default="emdb1")
    ap.add_argument("--split", default="test", help="split name of the output (default: test)")
    ap.add_argument("--all-frames", action="store_true", help="keep frames outside good_frames_mask")
    a = ap.parse_args(argv)
    run_cli(
        ap, convert, a, protocol=a.protocol, split=a.split, good_frames_only=not a.all_frames,
        **body_cli_kwargs(a),
    )  # fmt: skip


if __name__ == "__main__":
    main()
