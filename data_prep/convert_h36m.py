"""Convert Human3.6M (NeuralAnnot SMPL) into clip records: ``python -m data_prep.convert_h36m SRC OUT``.

SRC is the Human3.6M folder in the layout of mks0601's parsed release (I2L-MeshNet_RELEASE /
Pose2Pose / Hand4Whole_RELEASE ``data/Human36M``; field names read from their
``data/Human36M/Human36M.py`` loaders):

    SRC/annotations/Human36M_subject{S}_data.json     COCO-style: images [{id, file_name, width, height,
        subject, action_idx, subaction_idx, cam_idx, frame_idx}], annotations [{image_id, bbox (x,y,w,h)}]
    SRC/annotations/Human36M_subject{S}_camera.json   {cam_idx: {R (3,3), t (3,) mm, f (2,), c (2,)}},
        world -> camera ``x_cam = R x_world + t``
    SRC/annotations/Human36M_subject{S}_SMPL_NeuralAnnot.json  (or the older ``_smpl_param.json``)
        {action_idx: {subaction_idx: {frame_idx: {pose (72,), shape (10,), trans (3,)}}}}, world frame, m
    SRC/images/<file_name>   e.g. s_01_act_02_subact_01_ca_01/s_01_act_02_subact_01_ca_01_000001.jpg

Output: one clip per (subject, action, subaction, camera), id ``s_01_act_02_subact_01_ca_01``, frames
``frame_idx % stride == 0`` that have a SMPL fit (``frame_ids`` keeps them), fps = 50 / stride (default
stride 2: 25 fps, as FastHMR's training data). Split ``train`` for S1, S5, S6, S7, S8 and ``test`` for S9,
S11. Global orientation / translation moved to the camera frame with the exact SMPL rule (neutral body
model, as the NeuralAnnot fits). Boxes from the projected body model (``--box-source dataset``: the
annotation boxes). No masks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .convert_common import (
    ConversionError,
    base_parser,
    body_cli_kwargs,
    camera_entry,
    check_box_source,
    coco_images,
    get_field,
    load_json,
    neuralannot_groups,
    open_clip_dataset,
    require_dir,
    run_cli,
    static_camera_clip,
)

SOURCE = "h36m"
SRC_FPS = 50.0
TRAIN_SUBJECTS = (1, 5, 6, 7, 8)
TEST_SUBJECTS = (9, 11)
SMPL_FILES = ("Human36M_subject{}_SMPL_NeuralAnnot.json", "Human36M_subject{}_smpl_param.json")
_IMAGE_KEYS = ("subject", "action_idx", "subaction_idx", "cam_idx", "frame_idx")


def split_of(subject: int) -> str:
    return "test" if subject in TEST_SUBJECTS else "train"


def annotation_dir(src: Path) -> Path:
    return src / "annotations" if (src / "annotations").is_dir() else src


def find_subjects(ann: Path) -> list[int]:
    out = []
    for p in ann.glob("Human36M_subject*_data.json"):
        m = re.fullmatch(r"Human36M_subject(\d+)_data\.json", p.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def convert(
    src_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    subjects: Sequence[int] | None = None,
    cameras: Sequence[int] | None = None,
    stride: int = 2,
    src_fps: float = SRC_FPS,
    images_dir: str | os.PathLike | None = None,
    smpl_dir: str | os.PathLike | None = None,
    box_source: str = "vertices",
    relative_paths: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Convert the Human3.6M subjects ``subjects`` (default: every ``_data.json`` present) into
    ``out_root``; returns the clip paths. ``meta.json`` is written last."""
    src = require_dir(src_dir, "Human3.6M folder")
    check_box_source(box_source)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    ann = annotation_dir(src)
    images = Path(images_dir) if images_dir is not None else src / "images"
    subjects = list(subjects) if subjects is not None else find_subjects(ann)
    if not subjects:
        raise ConversionError(f"{ann}: no Human36M_subject<S>_data.json annotation files found")
    params = {
        "src_dir": str(src.resolve()),
        "images_dir": str(images.resolve()),
        "subjects": subjects,
        "cameras": None if cameras is None else list(cameras),
        "stride": int(stride),
        "src_fps": float(src_fps),
        "box_source": box_source,
        "relative_paths": relative_paths,
        "smpl_dir": None if smpl_dir is None else str(smpl_dir),
    }
    models, writer = open_clip_dataset(out_root, SOURCE, params, smpl_dir)
    fps = float(src_fps) / stride
    out, missing_fit = [], 0
    for s in tqdm(subjects, desc="Human3.6M subjects", unit="subject", disable=not progress):
        data_path = ann / f"Human36M_subject{s}_data.json"
        cam_path = ann / f"Human36M_subject{s}_camera.json"
        smpl_path = next((ann / n.format(s) for n in SMPL_FILES if (ann / n.format(s)).is_file()), None)
        if smpl_path is None:
            raise ConversionError(f"{ann / SMPL_FILES[0].format(s)}: SMPL annotation file not found")
        if not cam_path.is_file():
            raise ConversionError(f"{cam_path}: camera file not found")
        cams = load_json(cam_path)
        groups, missing = neuralannot_groups(
            coco_images(data_path), data_path,
            fields=_IMAGE_KEYS, group=("action_idx", "subaction_idx", "cam_idx"),
            fit_keys=("action_idx", "subaction_idx", "frame_idx"), fits=load_json(smpl_path),
            fits_path=smpl_path, image_file=lambda im: images / str(im["file_name"]), stride=stride,
            keep=None if cameras is None else (lambda v: v["cam_idx"] in cameras),
        )  # fmt: skip
        missing_fit += missing
        for (a, b, c), frames in sorted(groups.items()):
            K, R, T = camera_entry(get_field(cams, str(c), cam_path), cam_path, str(c), "f", "c")
            clip_id = f"s_{s:02d}_act_{a:02d}_subact_{b:02d}_ca_{c:02d}"
            split = split_of(s)
            clip, info = static_camera_clip(
                models, clip_id=clip_id, split=split, source=SOURCE, frames=frames, K=K, cam_R=R, cam_T=T,
                fps=fps, box_source=box_source, clip_path=writer.clip_path(split, clip_id),
                relative_paths=relative_paths,
            )  # fmt: skip
            info.update(src=str(data_path), subject=s, action=a, subaction=b, camera=c)
            out.append(writer.write_clip(clip, info))
    if not out:
        raise ConversionError(f"{ann}: no frame with a SMPL fit found for subjects {subjects}")
    writer.finish(
        fps=fps, body_model=models.info(), masks=False, occlusion="unknown (0)",
        frames_without_smpl_fit=missing_fit,
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--subjects", type=int, nargs="+", default=None, help="default: all present")
    ap.add_argument("--cameras", type=int, nargs="+", default=None, help="default: all (1..4)")
    ap.add_argument("--stride", type=int, default=2, help="keep every n-th frame (default 2: 25 fps)")
    ap.add_argument("--images-dir", type=Path, default=None, help="default: SRC/images")
    a = ap.parse_args(argv)
    run_cli(
        ap, convert, a, subjects=a.subjects, cameras=a.cameras, stride=a.stride, images_dir=a.images_dir,
        **body_cli_kwargs(a),
    )  # fmt: skip


if __name__ == "__main__":
    main()
