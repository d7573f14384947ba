"""Fill converted records with person masks from a segmenter:
``python -m data_prep.add_person_masks ROOT --segmenter SPEC [--split test ...] [--overwrite]``.

Converted 3DPW / EMDB / H36M / BEDLAM records carry no person masks (``meta.json`` ``masks: false``; EMDB's
release has none either), so Mask-ToMe would fall back to the person's box (``mask_kind: box``). This step
runs a segmenter on every frame of the chosen splits, keeps for each frame the instance that best matches
the record's person box, and writes it as the clip's ``mask`` (T,H,W) bool — the key the embedded world
uses — so ``CropDataset(mask_kind="mask")`` and ``real_mask_kind: mask`` read it.

The segmenter is pluggable (``SPEC``):

* ``ultralytics:<weights.pt>`` — an Ultralytics YOLO segmentation model (e.g. ``yolo11n-seg.pt``, the
  segmenter whose speed the paper's Table 6 counts); needs the optional ``ultralytics`` package and the
  weights file (nothing is downloaded here). Only the COCO ``person`` class (0) is kept.
* ``<module>:<function>`` — any importable callable ``f(image) -> masks``: ``image`` (H,W,3) uint8 RGB,
  ``masks`` (N,H,W) bool instance masks (N may be 0).

Each clip is rewritten atomically after its frames are segmented; an interrupted run continues where it
stopped (clips that already hold a ``mask`` are skipped unless ``--overwrite``). ``meta.json`` then records
``masks: {"kind": "mask", "segmenter": SPEC, "splits": [...]}``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fasthmr_lib import io as fio
from fasthmr_lib.data.crops import box_mask
from fasthmr_lib.data.records import load_clip, read_meta, save_clip, split_clip_paths

Segmenter = Callable[[np.ndarray], np.ndarray]  # (H,W,3) uint8 RGB -> (N,H,W) bool instance masks
COCO_PERSON = 0


def pick_person_mask(instances: np.ndarray, box: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """The instance mask that best matches a person box: highest IoU between the mask and the box's pixels.

    instances: (N,H,W) bool; box: (4,) x1, y1, x2, y2 in pixels; shape: (H, W). Returns (H,W) bool, all
    False when no instance overlaps the box (the frame then has no person tokens to protect)."""
    H, W = shape
    out = np.zeros((H, W), bool)
    inst = np.asarray(instances, bool)
    if inst.size == 0:
        return out
    if inst.ndim != 3 or inst.shape[1:] != (H, W):
        raise ValueError(f"segmenter masks: expected (N, {H}, {W}) bool, got {inst.shape}")
    boxm = box_mask(np.asarray(box), (H, W))
    inter = (inst & boxm).reshape(len(inst), -1).sum(1)
    union = (inst | boxm).reshape(len(inst), -1).sum(1)
    iou = inter / np.maximum(union, 1)
    best = int(np.argmax(iou))
    return inst[best].copy() if inter[best] > 0 else out


def _ultralytics_segmenter(weights: str) -> Segmenter:
    try:
        from ultralytics import YOLO
    except ImportError as e:
        raise SystemExit(
            "--segmenter ultralytics:...: the optional 'ultralytics' package is not installed "
            "(pip install ultralytics; AGPL), or pass a <module>:<function> segmenter"
        ) from e
    if not Path(weights).is_file():
        raise SystemExit(f"--segmenter ultralytics:{weights}: weights file not found (nothing is downloaded)")
    model = YOLO(weights)

    def segment(image: np.ndarray) -> np.ndarray:
        H, W = image.shape[:2]
        res = model.predict(image[..., ::-1].copy(), classes=[COCO_PERSON], retina_masks=True, verbose=False)[
            0
        ]
        if res.masks is None:
            return np.zeros((0, H, W), bool)
        return res.masks.data.cpu().numpy()[:, :H, :W] > 0.5

    return segment


def load_segmenter(spec: str) -> Segmenter:
    """``ultralytics:<weights.pt>`` or ``<module>:<function>`` (see the module docstring) -> a segmenter."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(
            f"--segmenter {spec!r}: expected 'ultralytics:<weights.pt>' or '<module>:<function>'"
        )
    if kind == "ultralytics":
        return _ultralytics_segmenter(rest)
    try:
        fn = getattr(importlib.import_module(kind), rest)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--segmenter {spec!r}: cannot import {rest!r} from module {kind!r} ({e})") from e
    if not callable(fn):
        raise ValueError(f"--segmenter {spec!r}: {kind}.{rest} is not callable")
    return fn


def mask_clip(path: Path, segment: Segmenter, overwrite: bool = False) -> bool:
    """Segment every frame of one clip file and write its ``mask`` atomically; False when skipped."""
    clip = load_clip(path)
    if clip.mask is not None and not overwrite:
        return False
    H, W = clip.image_size_hw
    masks = np.stack(
        [pick_person_mask(segment(clip.image(t)), clip.boxes[t], (H, W)) for t in range(clip.n_frames)]
    )
    arrays = clip.to_arrays()
    arrays["mask"] = masks
    save_clip(path, arrays)
    return True


def add_person_masks(
    root: str | Path, segment: Segmenter, splits: Sequence[str], spec: str, overwrite: bool = False
) -> dict[str, Any]:
    """Masks for every clip of ``splits`` of the record root ``root``; updates ``meta.json``'s ``masks``.
    Returns {"written": n, "skipped": n} (clips)."""
    root = Path(root)
    meta = read_meta(root)
    missing = [s for s in splits if s not in meta["splits"]]
    if missing:
        raise KeyError(f"{root / 'meta.json'}: no split(s) {missing} (has {sorted(meta['splits'])})")
    counts = {"written": 0, "skipped": 0}
    for split in splits:
        for path in tqdm(split_clip_paths(root, split), desc=f"masks {split}"):
            counts["written" if mask_clip(path, segment, overwrite) else "skipped"] += 1
    done = meta.get("masks") if isinstance(meta.get("masks"), dict) else {}
    meta["masks"] = {"kind": "mask", "segmenter": spec, "splits": sorted({*done.get("splits", []), *splits})}
    fio.write_json(root / "meta.json", meta)
    return counts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        prog="python -m data_prep.add_person_masks", description=__doc__.split("\n")[0]
    )
    ap.add_argument("root", type=Path, help="record root written by a data_prep converter (has meta.json)")
    ap.add_argument("--segmenter", required=True, help="ultralytics:<weights.pt> or <module>:<function>")
    ap.add_argument("--split", nargs="+", default=["test"], help="splits to fill (default: test)")
    ap.add_argument("--overwrite", action="store_true", help="recompute clips that already have masks")
    a = ap.parse_args(argv)
    counts = add_person_masks(a.root, load_segmenter(a.segmenter), a.split, a.segmenter, a.overwrite)
    print(f"{a.root}: masks written for {counts['written']} clips, {counts['skipped']} already had them")
    return counts


if __name__ == "__main__":
    main()
