"""Torch datasets over a world root (``<root>/<split>/<clip_id>.npz``, see :mod:`.records`).

* :class:`CropDataset` -- one item per frame: an HMR2.0-style crop with its mask warped identically.
* :class:`ClipDataset` -- one item per clip (whole sequences; for the temporal decoder and Accel).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .crops import CROP_SIZE, CropRule, box_mask, cliff_bbox_info, get_crop_rule, make_crop, normalize_image
from .records import Clip, load_clip, normalize_mask_kind, split_clip_paths, world_root

__all__ = ["CropDataset", "ClipDataset", "world_root"]

_META_KEYS = ("boxes", "occlusion")
_FRAME_KEYS = ("global_orient", "body_pose", "betas", "transl")


class CropDataset(Dataset):
    """Frames of all clips of one split as person crops (HMR2.0's rule by default).

    Args:
        root: world / dataset root; split: 'train' | 'calib' | 'test' (or any split in meta.json).
        mask_kind: 'mask' (visible subject), 'mask_union', 'mask_degraded' (aliases 'subject', 'union',
            'degraded'), ``'box'`` (the person's box as its mask: records without masks, e.g. converted
            3DPW / EMDB) or ``None`` for no ``person_mask``.
        augment: optional callable ``item -> item`` applied last (e.g. :class:`.augment.CropAugment`).
        crop_rule: ``"hmr2"`` (default) or ``"camerahmr"`` (the box's longer side as is), or a
            :class:`~.crops.CropRule`; a model's rule is ``fasthmr_lib.models.camera.crop_rule_for(cfg)``.
        rescale: box enlargement overriding the rule's (HMR2.0: 1.2 before the 192:256 aspect expansion).
        cache_clips: how many decoded clips to keep in memory (sequential access decodes each clip once).

    Item (a dict): ``img`` (3,256,256) float ImageNet-normalised; ``person_mask`` (256,256) float {0,1};
    ``global_orient`` (3,), ``body_pose`` (69,), ``betas`` (10,), ``transl`` (3,) camera frame;
    ``joints2d`` (44,3) normalised crop coords [-0.5,0.5] + visibility; ``clip_id`` str, ``frame`` int,
    ``occlusion`` () float; ``crop_center`` (2,) px, ``crop_scale`` () square crop side px; ``K`` (3,3);
    ``box`` (4,) xyxy px; ``img_size`` (2,) (H,W); ``focal`` () px = K[0,0] and ``focal_source``
    ``"record_K"``; ``bbox_info`` (3,) CLIFF ``[(cx-W/2)/f, (cy-H/2)/f, side/f]``; ``part_labels``
    (256,256) uint8 dense body-part labels (see
    ``data_prep.render.face_part_labels``) when the clip has them (synthetic worlds).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        mask_kind: str | None = "mask",
        augment: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        rescale: float | None = None,
        out_size: int = CROP_SIZE,
        cache_clips: int = 2,
        crop_rule: str | CropRule = "hmr2",
    ):
        self.root = Path(root)
        self.split = split
        self.mask_kind = mask_kind if mask_kind in (None, "box") else normalize_mask_kind(mask_kind)
        self.augment = augment
        self.crop_rule = get_crop_rule(crop_rule)
        self.rescale = None if rescale is None else float(rescale)
        self.out_size = int(out_size)
        self.paths = split_clip_paths(self.root, split)
        index: list[tuple[int, int]] = []
        self.clip_ids: list[str] = []
        self.occlusion: list[np.ndarray] = []
        for ci, p in enumerate(self.paths):
            c = load_clip(p, keys=_META_KEYS)
            self.clip_ids.append(c.clip_id)
            self.occlusion.append(c.occlusion)
            index.extend((ci, t) for t in range(c.n_frames))
        self.index = index
        self._cache: OrderedDict[int, Clip] = OrderedDict()
        self._cache_size = max(1, int(cache_clips))

    def __len__(self) -> int:
        return len(self.index)

    def clip(self, ci: int) -> Clip:
        """Decoded clip ``ci`` (LRU-cached)."""
        if ci in self._cache:
            self._cache.move_to_end(ci)
            return self._cache[ci]
        c = load_clip(self.paths[ci])
        if self.mask_kind not in (None, "box") and c.get_mask(self.mask_kind) is None:
            raise KeyError(f"{self.paths[ci]}: key {self.mask_kind!r} missing (asked for mask_kind)")
        self._cache[ci] = c
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return c

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} frames")
        ci, t = self.index[i]
        c = self.clip(ci)
        img = c.image(t)
        masks = {}
        if self.mask_kind == "box":
            masks["person_mask"] = box_mask(c.boxes[t], img.shape[:2])
        elif self.mask_kind is not None:
            masks["person_mask"] = c.get_mask(self.mask_kind)[t]  # type: ignore[index]
        parts = c.extras.get("part_labels")
        cr = make_crop(
            img,
            c.boxes[t],
            masks=masks,
            labels=None if parts is None else {"part_labels": parts[t]},
            keypoints=c.joints2d[t],
            rescale=self.rescale,
            out_size=self.out_size,
            rule=self.crop_rule,
        )
        H, W = img.shape[:2]
        f = float(c.K[0, 0])
        center, side = cr["center"], float(cr["side"])
        item: dict[str, Any] = {
            "img": normalize_image(cr["img"]),
            "global_orient": torch.from_numpy(np.asarray(c.global_orient[t], np.float32)),
            "body_pose": torch.from_numpy(np.asarray(c.body_pose[t], np.float32)),
            "betas": torch.from_numpy(np.asarray(c.betas[t], np.float32)),
            "transl": torch.from_numpy(np.asarray(c.transl[t], np.float32)),
            "joints2d": torch.from_numpy(cr["keypoints"]),
            "clip_id": c.clip_id,
            "gender": c.gender,
            "frame": int(t),
            "occlusion": torch.tensor(float(c.occlusion[t])),
            "crop_center": torch.from_numpy(center),
            "crop_scale": torch.tensor(side, dtype=torch.float32),
            "K": torch.from_numpy(np.asarray(c.K, np.float32)),
            "box": torch.from_numpy(np.asarray(c.boxes[t], np.float32)),
            "img_size": torch.tensor([H, W], dtype=torch.float32),
            "focal": torch.tensor(f, dtype=torch.float32),
            "focal_source": "record_K",
            "bbox_info": cliff_bbox_info(
                torch.from_numpy(center)[None],
                torch.tensor([side]),
                torch.tensor([[H, W]]),
                torch.tensor([f]),
            )[0],
        }
        if self.mask_kind is not None:
            item["person_mask"] = torch.from_numpy(cr["person_mask"].astype(np.float32))
        if parts is not None:
            item["part_labels"] = torch.from_numpy(cr["part_labels"])
        if self.augment is not None:
            item = self.augment(item)
        return item


class ClipDataset(Dataset):
    """Whole clips of one split; item ``i`` is a :class:`.records.Clip`.

    ``with_images=False`` (default) loads only the label arrays (fast; motion / Accel use);
    ``keys`` overrides the set of array keys loaded."""

    LABEL_KEYS = (
        "boxes", "global_orient", "body_pose", "betas", "transl", "cam_R", "cam_T", "joints2d", "occlusion",
    )  # fmt: skip

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        with_images: bool = False,
        keys: tuple[str, ...] | None = None,
    ):
        self.root = Path(root)
        self.split = split
        self.paths = split_clip_paths(self.root, split)
        self.keys = None if with_images and keys is None else (keys or self.LABEL_KEYS)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Clip:
        return load_clip(self.paths[i], keys=self.keys)

    def poses(self, i: int) -> dict[str, np.ndarray]:
        """Motion of clip ``i``: ``pose`` (T,72) axis-angle (camera-frame global orient first),
        ``betas`` (T,10), ``transl`` (T,3), ``fps``, ``gender`` (the subject's body model)."""
        c = load_clip(self.paths[i], keys=("global_orient", "body_pose", "betas", "transl"))
        return {
            "pose": np.concatenate([c.global_orient, c.body_pose], 1),
            "betas": c.betas,
            "transl": c.transl,
            "fps": np.float32(c.fps),
            "gender": c.gender,
        }
