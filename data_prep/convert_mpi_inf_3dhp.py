"""Convert MPI-INF-3DHP (NeuralAnnot SMPL) into clips: ``python -m data_prep.convert_mpi_inf_3dhp SRC OUT``.

SRC is the MPI-INF-3DHP training-set folder in the layout of mks0601's parsed release
(Pose2Pose / Hand4Whole_RELEASE ``data/MPI_INF_3DHP/data``; field names read from their
``data/MPI_INF_3DHP/MPI_INF_3DHP.py`` loader):

    SRC/MPI-INF-3DHP_1k.json            COCO-style: images [{id, file_name, width, height, subject_idx,
                                        seq_idx, cam_idx, frame_idx}],
                                        annotations [{image_id, bbox (x,y,w,h)}]
    SRC/MPI-INF-3DHP_camera_1k.json     {subject_idx: {seq_idx: {cam_idx: {R (3,3), t (3,) mm, focal (2,),
                                        princpt (2,)}}}}, world -> camera ``x_cam = R x_world + t``
    SRC/MPI-INF-3DHP_SMPL_NeuralAnnot.json  {subject_idx: {seq_idx: {frame_idx: {pose (72,), shape (10,),
                                        trans (3,)}}}}, world frame, m
    SRC/images_1k/S{subject}/Seq{seq}/imageSequence/<file_name>

Output: one clip per (subject, sequence, camera), id ``S1_Seq1_cam00``, frames ``frame_idx % stride == 0``
with a SMPL fit (``frame_ids`` keeps them), fps = 25 / stride, split ``train`` (NeuralAnnot covers the
training subjects S1-S8). Global orientation / translation moved to the camera frame with the exact SMPL
rule (neutral body model); boxes from the projected body model (``--box-source dataset``: the annotation
boxes). No masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .convert_common import (
    BodyModels,
    ConversionError,
    DatasetWriter,
    base_parser,
    body_cli_kwargs,
    camera_entry,
    check_box_source,
    coco_images,
    load_json,
    lookup,
    neuralannot_groups,
    require_dir,
    run_cli,
    static_camera_clip,
)

SOURCE = "mpi_inf_3dhp"
SRC_FPS = 25.0
DATA_FILE = "MPI-INF-3DHP_1k.json"
CAMERA_FILE = "MPI-INF-3DHP_camera_1k.json"
SMPL_FILE = "MPI-INF-3DHP_SMPL_NeuralAnnot.json"
_IMAGE_KEYS = ("subject_idx", "seq_idx", "cam_idx", "frame_idx")


def image_file(images: Path, im: dict) -> Path:
    folder = images / f"S{int(im['subject_idx'])}" / f"Seq{int(im['seq_idx'])}" / "imageSequence"
    return folder / str(im["file_name"])


def convert(
    src_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    subjects: Sequence[int] | None = None,
    cameras: Sequence[int] | None = None,
    stride: int = 1,
    src_fps: float = SRC_FPS,
    split: str = "train",
    images_dir: str | os.PathLike | None = None,
    smpl_dir: str | os.PathLike | None = None,
    box_source: str = "vertices",
    relative_paths: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Convert the MPI-INF-3DHP training frames with NeuralAnnot fits into ``out_root``/``split``;
    returns the clip paths. ``meta.json`` is written last."""
    src = require_dir(src_dir, "MPI-INF-3DHP folder")
    check_box_source(box_source)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    data_path, cam_path, smpl_path = src / DATA_FILE, src / CAMERA_FILE, src / SMPL_FILE
    images = Path(images_dir) if images_dir is not None else src / "images_1k"
    params = {
        "src_dir": str(src.resolve()),
        "images_dir": str(images.resolve()),
        "subjects": None if subjects is None else list(subjects),
        "cameras": None if cameras is None else list(cameras),
        "stride": int(stride),
        "src_fps": float(src_fps),
        "split": split,
        "box_source": box_source,
        "relative_paths": relative_paths,
        "smpl_dir": None if smpl_dir is None else str(smpl_dir),
    }
    imgs = coco_images(data_path)
    cams = load_json(cam_path)
    fits = load_json(smpl_path)
    models = BodyModels(smpl_dir)
    models.get("neutral")

    def keep(v: dict[str, int]) -> bool:
        return (subjects is None or v["subject_idx"] in subjects) and (
            cameras is None or v["cam_idx"] in cameras
        )

    groups, missing = neuralannot_groups(
        imgs, data_path, fields=_IMAGE_KEYS, group=("subject_idx", "seq_idx", "cam_idx"),
        fit_keys=("subject_idx", "seq_idx", "frame_idx"), fits=fits, fits_path=smpl_path,
        image_file=lambda im: image_file(images, im), stride=stride, keep=keep,
    )  # fmt: skip
    if not groups:
        raise ConversionError(f"{data_path}: no frame with a SMPL fit in {smpl_path.name} found")
    writer = DatasetWriter(out_root, SOURCE, params)
    fps = float(src_fps) / stride
    out = []
    for (s, q, c), frames in tqdm(
        sorted(groups.items()), desc="MPI-INF-3DHP videos", unit="video", disable=not progress
    ):
        cam = lookup(cams, (str(s), str(q), str(c)), cam_path)
        if cam is None:
            raise ConversionError(f"{cam_path}: missing key '{s}.{q}.{c}' (subject.seq.camera)")
        K, R, T = camera_entry(cam, cam_path, f"{s}.{q}.{c}", "focal", "princpt")
        clip_id = f"S{s}_Seq{q}_cam{c:02d}"
        clip, info = static_camera_clip(
            models, clip_id=clip_id, split=split, source=SOURCE, frames=frames, K=K, cam_R=R, cam_T=T,
            fps=fps, box_source=box_source, clip_path=writer.clip_path(split, clip_id),
            relative_paths=relative_paths,
        )  # fmt: skip
        info.update(src=str(data_path), subject=s, seq=q, camera=c)
        out.append(writer.write_clip(clip, info))
    writer.finish(
        fps=fps, body_model=models.info(), masks=False, occlusion="unknown (0)",
        frames_without_smpl_fit=missing,
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--subjects", type=int, nargs="+", default=None, help="default: all")
    ap.add_argument("--cameras", type=int, nargs="+", default=None, help="default: all")
    ap.add_argument("--stride", type=int, default=1, help="keep every n-th frame (default 1: 25 fps)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--images-dir", type=Path, default=None, help="default: SRC/images_1k")
    a = ap.parse_args(argv)
    run_cli(
        ap, convert, a, subjects=a.subjects, cameras=a.cameras, stride=a.stride, split=a.split,
        images_dir=a.images_dir, **body_cli_kwargs(a),
    )  # fmt: skip


if __name__ == "__main__":
    main()
