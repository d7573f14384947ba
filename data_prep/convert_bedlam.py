"""Convert BEDLAM's processed labels into clip records: ``python -m data_prep.convert_bedlam SRC OUT``.

SRC holds BEDLAM's processed ``.npz`` labels, one per scene (Black et al., CVPR 2023; keys as written by
pixelite1201/BEDLAM ``data_processing/df_full_body*.py`` and read by ``train/dataset/dataset*.py``):
``imgname`` (N,) ``"seq_000000/seq_000000_0000.png"``, ``center`` (N,2) px and ``scale`` (N,) (box side / 200,
x1.2), ``pose_cam`` (N,72) SMPL -- or (N,165) SMPL-X -- axis-angle with the global orientation in the
camera frame, ``shape`` (N,10|11), ``trans_cam`` (N,3), ``cam_int`` (N,3,3), ``cam_ext`` (N,4,4) world ->
camera, ``gtkps``, ``gender``, ``sub`` (person id), ``pose_world``, ``trans_world``. As in BEDLAM's loader,
the camera-frame translation is ``trans_cam + cam_ext[:3, 3]``. Images are
``IMAGES/<npz stem>/png/<imgname>`` (``--images-dir``, default ``SRC/../../training_images``: BEDLAM's
``data/training_labels/all_npz_12_training`` next to ``data/training_images``).

Output: one clip per (scene, sequence, person) -- cut where the intrinsics change (zoom scenes), since
a clip has one K --, frames sorted by image name (``frame_ids`` = the frame
number in the name), fps 6 or 30 from the ``_6fps`` / ``_30fps`` name suffix, split ``train``. SMPL-X
labels keep the 21 body joints (hands zero) and the first 10 betas -- an approximation of SMPL, flagged
in ``meta.json``. Skipped (listed in ``meta.json``): ``closeup`` scenes, whose images are stored rotated
by 90 deg relative to the labels, and AGORA files (``agora*.npz``). Boxes from the projected body model
(``--box-source dataset``: the square center/scale box, divided by BEDLAM's 1.2 enlargement). No masks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .convert_common import (
    BodyModels,
    ConversionError,
    DatasetWriter,
    base_parser,
    body_cli_kwargs,
    build_clip,
    check_box_source,
    get_array,
    load_npz,
    open_clip_dataset,
    require_dir,
    run_cli,
    sanitize_id,
    to_str,
)

SOURCE = "bedlam"
BOX_ENLARGE = 1.2  # SCALE_FACTOR_BBOX of BEDLAM's data processing
_KEYS = ("imgname", "center", "scale", "pose_cam", "shape", "trans_cam", "cam_int", "cam_ext", "sub")


def scene_fps(stem: str, default: float) -> float:
    m = re.search(r"_(\d+)fps$", stem)
    return float(m.group(1)) if m else float(default)


def frame_number(imgname: str) -> int:
    m = re.search(r"(\d+)\.\w+$", imgname)
    return int(m.group(1)) if m else -1


def read_scene(
    npz: str | os.PathLike,
    images_dir: Path,
    split: str,
    models: BodyModels,
    writer: DatasetWriter | None = None,
    *,
    fps: float = 30.0,
    gender: str = "neutral",
    box_source: str = "vertices",
    relative_paths: bool = False,
) -> tuple[list[tuple[Any, dict[str, Any]]], bool]:
    """The clips of one scene file and whether its labels are SMPL-X; errors name the file and the key."""
    npz = Path(npz)
    z = load_npz(npz, _KEYS)
    dims: dict[str, int] = {}
    if "imgname" not in z:
        raise ConversionError(f"{npz}: missing key 'imgname'")
    names = [to_str(n) for n in np.asarray(z["imgname"]).reshape(-1)]
    dims["N"] = len(names)
    pose = get_array(z, "pose_cam", npz, ("N", None), dims)
    if pose.shape[1] < 66:
        raise ConversionError(f"{npz}: key 'pose_cam' has shape {pose.shape}, expected (N, 72) or (N, 165)")
    smplx = pose.shape[1] != 72
    shape = get_array(z, "shape", npz, ("N", None), dims)
    if shape.shape[1] < 10:
        raise ConversionError(f"{npz}: key 'shape' has shape {shape.shape}, expected (N, >= 10)")
    trans = get_array(z, "trans_cam", npz, ("N", 3), dims)
    K = get_array(z, "cam_int", npz, ("N", 3, 3), dims)
    ext = get_array(z, "cam_ext", npz, ("N", 4, 4), dims)
    center = scale = None
    if box_source == "dataset":
        center = get_array(z, "center", npz, ("N", 2), dims)
        scale = get_array(z, "scale", npz, ("N",), dims)
    subs = [to_str(s) for s in np.asarray(z["sub"]).reshape(-1)] if "sub" in z else None
    if subs is not None and len(subs) != len(names):
        raise ConversionError(f"{npz}: key 'sub' has {len(subs)} entries, key 'imgname' has {len(names)}")
    # tracks: (sequence folder, person); without 'sub', the k-th person of each image
    tracks: dict[tuple[str, str], list[int]] = {}
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        seq = str(Path(n).parent)
        if subs is not None:
            who = subs[i]
        else:
            who = f"person{seen.get(n, 0)}"
            seen[n] = seen.get(n, 0) + 1
        tracks.setdefault((seq, who), []).append(i)
    body_pose = np.zeros((len(names), 69))
    body_pose[:, :63] = pose[:, 3:66]
    if not smplx:
        body_pose = pose[:, 3:72]
    clips = []
    for (seq, who), idx in sorted(tracks.items()):
        idx = np.array(sorted(idx, key=lambda i: (frame_number(names[i]), names[i])))
        # one K per clip: a track whose intrinsics change (BEDLAM's zoom scenes) is cut where K changes
        cuts = [0] + [
            j for j in range(1, len(idx)) if not np.allclose(K[idx[j]], K[idx[j - 1]], rtol=1e-5, atol=1e-6)
        ] + [len(idx)]  # fmt: skip
        for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            seg = idx[a:b]
            clip_id = sanitize_id(npz.stem, seq, who) + (f"__k{k}" if len(cuts) > 2 else "")
            R, T = ext[seg, :3, :3], ext[seg, :3, 3]
            boxes = None
            if center is not None:
                half = scale[seg, None] * 200.0 / BOX_ENLARGE / 2.0
                boxes = np.concatenate([center[seg] - half, center[seg] + half], 1)
            clip, info = build_clip(
                models,
                clip_id=clip_id,
                split=split,
                source=SOURCE,
                gender=gender,
                image_files=[images_dir / npz.stem / "png" / names[i] for i in seg],
                K=K[seg[0]],
                cam_R=R,
                cam_T=T,
                global_orient=pose[seg, :3],
                body_pose=body_pose[seg],
                betas=shape[seg, :10],
                transl=trans[seg] + T,  # BEDLAM's loader: translation = cam_ext[:3, 3] + trans_cam
                fps=fps,
                boxes=boxes,
                extras={"frame_ids": np.array([frame_number(names[i]) for i in seg], np.int64)},
                clip_path=writer.clip_path(split, clip_id) if writer is not None else None,
                relative_paths=relative_paths,
            )
            info.update(src=str(npz), sequence=seq, person=who, smplx_labels=smplx)
            clips.append((clip, info))
    return clips, smplx


def convert(
    src_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    split: str = "train",
    images_dir: str | os.PathLike | None = None,
    fps: float = 30.0,
    gender: str = "neutral",
    skip_closeup: bool = True,
    smpl_dir: str | os.PathLike | None = None,
    box_source: str = "vertices",
    relative_paths: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Convert every BEDLAM scene label file ``src_dir/*.npz`` into ``out_root``/``split``; returns the
    clip paths. ``fps`` is used when a file name has no ``_<n>fps`` suffix; ``gender``: the body model the
    labels were fitted with (BEDLAM: neutral). ``meta.json`` is written last."""
    src = require_dir(src_dir, "BEDLAM label folder")
    check_box_source(box_source)
    images = Path(images_dir) if images_dir is not None else src.parent.parent / "training_images"
    files = sorted(src.glob("*.npz"))
    if not files:
        raise ConversionError(f"{src}: no BEDLAM label files *.npz found")
    params = {
        "src_dir": str(src.resolve()),
        "images_dir": str(images.resolve()),
        "split": split,
        "fps_default": float(fps),
        "gender": gender,
        "skip_closeup": skip_closeup,
        "box_source": box_source,
        "relative_paths": relative_paths,
        "smpl_dir": None if smpl_dir is None else str(smpl_dir),
    }
    models, writer = open_clip_dataset(out_root, SOURCE, params, smpl_dir)
    out, skipped, smplx_files = [], [], []
    for f in tqdm(files, desc="BEDLAM scenes", unit="scene", disable=not progress):
        if f.name.lower().startswith("agora") or (skip_closeup and "closeup" in f.stem):
            skipped.append(f.name)
            continue
        clips, smplx = read_scene(
            f, images, split, models, writer, fps=scene_fps(f.stem, fps), gender=gender,
            box_source=box_source, relative_paths=relative_paths,
        )  # fmt: skip
        if smplx:
            smplx_files.append(f.name)
        out.extend(writer.write_clip(c, i) for c, i in clips)
    if not out:
        raise ConversionError(f"{src}: no convertible BEDLAM scene (skipped: {skipped})")
    writer.finish(
        body_model=models.info(), masks=False, occlusion="unknown (0)", skipped=skipped,
        smplx_labels_approximated=smplx_files,
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--images-dir", type=Path, default=None, help="default: SRC/../../training_images")
    ap.add_argument("--split", default="train")
    ap.add_argument("--fps", type=float, default=30.0, help="frame rate when a name has no _<n>fps suffix")
    ap.add_argument("--include-closeup", action="store_true", help="also convert the rotated closeup scenes")
    a = ap.parse_args(argv)
    run_cli(
        ap, convert, a, split=a.split, images_dir=a.images_dir, fps=a.fps,
        skip_closeup=not a.include_closeup, **body_cli_kwargs(a),
    )  # fmt: skip


if __name__ == "__main__":
    main()
