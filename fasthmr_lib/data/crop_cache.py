"""Crop cache for training: every crop of one split preloaded once as uint8 tensors, and its augmented view.

:func:`load_or_build_cache` keeps the crops of ``<world>/<split>`` in ``data/cache/`` keyed by the world's
data version (:func:`world_data_version`), split and mask kind; :class:`AugmentedCrops` serves them to the
training loop with each sample's augmentation a pure function of ``(seed, epoch, index)``
(:func:`sample_rng`), so a resumed run needs no data-loader state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..io import atomic_path
from ..paths import data_dir
from .augment import AugmentConfig, augment_sample, hwc255_to_normalized, label_dtype, normalized_to_hwc255

LABEL_KEYS = ("global_orient", "body_pose", "betas", "transl", "joints2d", "occlusion")


@dataclass
class CropCache:
    """All crops of one split preloaded in memory (uint8 images, labels as float32 tensors).

    images (N,S,S,3) uint8 RGB; masks (N,S,S) uint8 0..255; global_orient (N,3); body_pose (N,69);
    betas (N,10); transl (N,3); joints2d (N,44,3); occlusion (N,); clip_id list[str]; frame (N,) int64;
    parts (N,S,S) uint8 dense part labels (``None`` when the world has none).
    """

    images: Tensor
    masks: Tensor
    labels: dict[str, Tensor]
    clip_id: list[str]
    frame: Tensor
    parts: Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, n: int, seed: int) -> CropCache:
        """``n`` crops drawn without replacement by a generator seeded with ``seed`` (same order for the
        same ``(n, seed)``); ``n`` must be in 1..len(self)."""
        if not 0 < n <= len(self):
            raise ValueError(f"subset: n must be in 1..{len(self)} (crops in the split), got {n}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return CropCache(
            images=self.images[idx].clone(),
            masks=self.masks[idx].clone(),
            labels={k: v[idx].clone() for k, v in self.labels.items()},
            clip_id=[self.clip_id[int(i)] for i in idx],
            frame=self.frame[idx].clone(),
            parts=None if self.parts is None else self.parts[idx].clone(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "masks": self.masks,
            "labels": self.labels,
            "clip_id": self.clip_id,
            "frame": self.frame,
            "parts": self.parts,
        }


def build_crop_cache(dataset: Dataset, *, progress: bool = True, desc: str = "caching crops") -> CropCache:
    """Iterate a ``CropDataset``-like dataset once (no augmentation) and keep its crops as uint8."""
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("build_crop_cache: the dataset is empty")
    imgs, masks, frames, clips, parts = [], [], [], [], []
    labels: dict[str, list] = {k: [] for k in LABEL_KEYS}
    for i in tqdm(range(n), desc=desc, disable=not progress):
        it = dataset[i]
        hwc = normalized_to_hwc255(it["img"])
        imgs.append(torch.from_numpy(np.clip(np.rint(hwc), 0, 255).astype(np.uint8)))
        m = it.get("person_mask")
        m = torch.zeros(hwc.shape[:2]) if m is None else torch.as_tensor(m, dtype=torch.float32)
        masks.append((m.clamp(0, 1) * 255).round().to(torch.uint8))
        for k in LABEL_KEYS:
            labels[k].append(torch.as_tensor(np.asarray(it[k], dtype=np.float32)))
        frames.append(int(it.get("frame", i)))
        clips.append(str(it.get("clip_id", "")))
        if "part_labels" in it:
            parts.append(torch.as_tensor(it["part_labels"], dtype=torch.uint8))
    if parts and len(parts) != n:
        raise ValueError("build_crop_cache: some items have 'part_labels' and some do not (mixed worlds?)")
    return CropCache(
        images=torch.stack(imgs),
        masks=torch.stack(masks),
        labels={k: torch.stack(v) for k, v in labels.items()},
        clip_id=clips,
        frame=torch.tensor(frames, dtype=torch.int64),
        parts=torch.stack(parts) if parts else None,
    )


def world_data_version(root: str | Path) -> str:
    """Short sha256 of a world's ``meta.json`` (the data version stored with checkpoints)."""
    meta = Path(root) / "meta.json"
    if not meta.exists():
        raise FileNotFoundError(f"{meta}: world meta.json missing (world incomplete or wrong --world root)")
    return hashlib.sha256(meta.read_bytes()).hexdigest()[:16]


def load_or_build_cache(
    root: str | Path,
    split: str,
    *,
    mask_kind: str = "mask",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> CropCache:
    """Cached crops of ``<root>/<split>`` in ``data/cache/`` keyed by world version, split and mask kind."""
    from .datasets import CropDataset

    cache_dir = Path(cache_dir) if cache_dir is not None else data_dir() / "cache"
    key = f"crops_{Path(root).name}_{split}_{mask_kind}_{world_data_version(root)}.pt"
    path = cache_dir / key
    if path.exists():
        d = torch.load(path, weights_only=True)
        return CropCache(**d)
    cache = build_crop_cache(
        CropDataset(root, split, mask_kind=mask_kind), progress=progress, desc=f"caching {split} crops"
    )
    with atomic_path(path) as tmp:
        torch.save(cache.to_dict(), tmp)
    return cache


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's augmentation: a pure function of (seed, epoch, index)."""
    return np.random.default_rng([seed, epoch, index])


class AugmentedCrops(Dataset):
    """Training view of a :class:`CropCache`; items are addressed by ``(index, epoch)`` pairs."""

    def __init__(self, cache: CropCache, augment: AugmentConfig | None, seed: int):
        self.cache, self.augment, self.seed = cache, augment, seed

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Tensor]:
        idx, epoch = key if isinstance(key, tuple) else (key, 0)
        c = self.cache
        img = c.images[idx].numpy()
        mask = c.masks[idx].numpy().astype(np.float32) / 255.0
        lab = {k: v[idx].numpy() for k, v in c.labels.items()}
        if c.parts is not None:
            lab["part_labels"] = c.parts[idx].numpy()
        if self.augment is not None:
            img, mask, lab = augment_sample(img, mask, lab, sample_rng(self.seed, epoch, idx), self.augment)
        out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=label_dtype(k))) for k, v in lab.items()}
        out["img"] = hwc255_to_normalized(np.asarray(img))
        out["person_mask"] = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
        return out
