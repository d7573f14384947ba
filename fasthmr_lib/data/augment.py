"""Augmentation for a crop regressor (HMR2.0-style, applied to an already-made 256x256 crop).

Operations (each drawn from an explicit ``numpy.random.Generator`` so a sample's augmentation is a
pure function of its seed):

* **scale / translate jitter** — a zoom ``s`` about a shifted centre, the same affine warp applied to
  image, person mask and 2D keypoints (HMR2.0 ``SCALE_FACTOR 0.3``, ``TRANS_FACTOR 0.02``);
  3D targets are unchanged (the camera absorbs it, as in HMR2.0).
* **colour** — per-channel gain in ``[1 - c, 1 + c]`` (HMR2.0 ``COLOR_SCALE 0.2``).
* **horizontal flip** — image and mask mirrored; 2D keypoints ``x -> -x`` and left/right swapped with
  the 44-joint permutation; SMPL pose swapped with the 24-joint permutation and the axis-angle
  ``y, z`` components negated (reflection ``diag(-1, 1, 1)`` conjugation, as in SPIN/HMR2.0
  ``flip_pose``); camera-frame translation ``x -> -x``.
* **synthetic occluders** — random rectangles of flat colour or noise pasted over the crop; the
  person mask is cleared under them (it marks *visible* person pixels).

A ``part_labels`` (S, S) uint8 map among the labels (dense body-part targets) is warped with the image
(nearest neighbour), mirrored with left and right parts swapped (front/back kept), and cleared under
synthetic occluders, like the mask.

Keypoint convention: normalised crop coordinates in ``[-0.5, 0.5]`` with continuous pixel
coordinates ``u = (x + 0.5) * 256`` (pixel ``i`` covers ``[i, i + 1)``), so a mirror is ``x -> -x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

# HMR2.0 44-joint layout = OpenPose BODY_25 + J19 (4D-Humans: hmr2/datasets/utils.py flip permutation,
# SMPL_to_J19).
_OP25_FLIP = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21]
_J19_FLIP = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18]
FLIP_PERM_44: tuple[int, ...] = tuple(_OP25_FLIP + [25 + i for i in _J19_FLIP])
# SMPL 24-joint left/right permutation (SPIN constants.SMPL_JOINTS_FLIP_PERM, as joint indices).
FLIP_PERM_SMPL24: tuple[int, ...] = (
    0,
    2,
    1,
    3,
    5,
    4,
    6,
    8,
    7,
    9,
    11,
    10,
    12,
    14,
    13,
    15,
    17,
    16,
    19,
    18,
    21,
    20,
    23,
    22,
)

# Dense part labels (``part_labels`` maps: 0 = not the subject, 1 + part + 24 * back, see
# ``data_prep.render.face_part_labels``): a mirror swaps left and right parts and keeps front/back.
NUM_PART_LABELS = 49
PART_LABEL_FLIP: np.ndarray = np.array(
    [0] + [1 + FLIP_PERM_SMPL24[(v - 1) % 24] + 24 * ((v - 1) // 24) for v in range(1, NUM_PART_LABELS)],
    np.uint8,
)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


# --------------------------------------------------------------------------- pure label transforms
def flip_pose_aa(pose: np.ndarray) -> np.ndarray:
    """Mirror an SMPL axis-angle pose.

    pose: (..., 72) or (..., 24, 3) — global orient first. Returns the same shape: joints swapped
    left/right (``FLIP_PERM_SMPL24``) and the y, z components negated. Applying it twice is identity.
    """
    arr = np.asarray(pose)
    shape = arr.shape
    if shape[-1] == 72:
        p = arr.reshape(*shape[:-1], 24, 3)
    elif shape[-2:] == (24, 3):
        p = arr
    else:
        raise ValueError(f"flip_pose_aa: expected pose of shape (...,72) or (...,24,3), got {shape}")
    p = p[..., list(FLIP_PERM_SMPL24), :].copy()
    p[..., 1:] *= -1
    return p.reshape(shape)


def flip_keypoints2d(kp: np.ndarray) -> np.ndarray:
    """Mirror 44-joint normalised keypoints (44, 2|3): x -> -x, left/right swapped (vis kept)."""
    kp = np.asarray(kp)
    if kp.shape[-2] != 44:
        raise ValueError(f"flip_keypoints2d: expected (...,44,2|3) keypoints, got {kp.shape}")
    out = kp[..., list(FLIP_PERM_44), :].copy()
    out[..., 0] *= -1
    return out


def flip_joints3d(j: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Mirror 44-joint 3D joints (..., 44, 3) in the camera frame: x -> -x, left/right swapped."""
    idx = list(FLIP_PERM_44)
    out = j[..., idx, :].clone() if isinstance(j, torch.Tensor) else np.asarray(j)[..., idx, :].copy()
    out[..., 0] *= -1
    return out


def affine_keypoints(kp: np.ndarray, scale: float, center: tuple[float, float]) -> np.ndarray:
    """New-crop coordinates of normalised keypoints (N, 2|3) for a zoom ``scale`` about ``center``
    (normalised coordinates of the new crop's centre in the old crop): ``x' = (x - c) * s``."""
    out = np.array(kp, dtype=np.float32, copy=True)
    out[..., 0] = (out[..., 0] - center[0]) * scale
    out[..., 1] = (out[..., 1] - center[1]) * scale
    return out


def _affine_matrix(size: int, scale: float, center: tuple[float, float]) -> np.ndarray:
    """2x3 cv2 matrix (integer pixel-centre convention) for ``affine_keypoints``' mapping."""
    # continuous coordinates u = (x + 0.5) * size; cv2 pixel index p = u - 0.5.
    # u' = s * (u - size/2 - c*size) + size/2  ->  p' = s * (p + 0.5 - size/2 - c*size) + size/2 - 0.5
    cx, cy = center
    tx = scale * (0.5 - size / 2 - cx * size) + size / 2 - 0.5
    ty = scale * (0.5 - size / 2 - cy * size) + size / 2 - 0.5
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]], np.float32)


# --------------------------------------------------------------------------- the augmenter
@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges (defaults follow HMR2.0's yacs defaults where they exist)."""

    scale_factor: float = 0.3  # zoom s = clip(1 + N(0,1) * f, 1 - f, 1 + f)
    trans_factor: float = 0.02  # centre shift ~ N(0, f) (fraction of the crop)
    trans_rate: float = 0.5
    color_scale: float = 0.2
    flip_rate: float = 0.5
    occluder_rate: float = 0.3
    occluder_max: int = 2
    occluder_size: tuple[float, float] = (0.1, 0.4)  # side as a fraction of the crop

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def augment_sample(
    img: np.ndarray,
    mask: np.ndarray | None,
    labels: dict[str, np.ndarray],
    rng: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Augment one crop.

    img: (S, S, 3) uint8 or float32 RGB in 0..255; mask: (S, S) float/bool visible-person mask or None;
    labels: any of ``joints2d`` (44, 3) normalised + vis, ``global_orient`` (3,), ``body_pose`` (69,),
    ``transl`` (3,), ``betas`` (10,) (others passed through).
    Returns (img float32 (S,S,3) 0..255, mask float32 or None, labels) — new arrays, inputs untouched.
    """
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
        raise ValueError(f"augment_sample: expected img (S,S,3), got {img.shape}")
    size = img.shape[0]
    out = img.astype(np.float32, copy=True)
    m = None if mask is None else np.asarray(mask, dtype=np.float32).copy()
    lab = {k: np.array(v, copy=True) for k, v in labels.items()}

    # scale / translate jitter
    s = float(
        np.clip(1.0 + rng.standard_normal() * cfg.scale_factor, 1 - cfg.scale_factor, 1 + cfg.scale_factor)
    )
    if rng.random() < cfg.trans_rate:
        c = (float(rng.standard_normal() * cfg.trans_factor), float(rng.standard_normal() * cfg.trans_factor))
    else:
        c = (0.0, 0.0)
    if s != 1.0 or c != (0.0, 0.0):
        M = _affine_matrix(size, s, c)
        out = cv2.warpAffine(out, M, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        if m is not None:
            m = cv2.warpAffine(m, M, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
        if "joints2d" in lab:
            lab["joints2d"] = affine_keypoints(lab["joints2d"], s, c)
        if "part_labels" in lab:
            lab["part_labels"] = cv2.warpAffine(
                np.ascontiguousarray(lab["part_labels"], np.uint8), M, (size, size),
                flags=cv2.INTER_NEAREST, borderValue=0,
            )  # fmt: skip

    # colour
    gain = rng.uniform(1 - cfg.color_scale, 1 + cfg.color_scale, size=3).astype(np.float32)
    out = np.clip(out * gain, 0.0, 255.0)

    # flip
    if rng.random() < cfg.flip_rate:
        out = out[:, ::-1].copy()
        if m is not None:
            m = m[:, ::-1].copy()
        lab = flip_labels(lab)

    # synthetic occluders
    if rng.random() < cfg.occluder_rate:
        for _ in range(int(rng.integers(1, cfg.occluder_max + 1))):
            w, h = (rng.uniform(*cfg.occluder_size, size=2) * size).astype(int)
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if rng.random() < 0.5:
                out[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 255, size=3).astype(np.float32)
            else:
                out[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 255, size=(h, w, 3)).astype(np.float32)
            if m is not None:
                m[y0 : y0 + h, x0 : x0 + w] = 0.0
            if "part_labels" in lab:
                lab["part_labels"][y0 : y0 + h, x0 : x0 + w] = 0
    return out, m, lab


def flip_labels(lab: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mirror the label dict of one sample (see the module docstring); unknown keys pass through."""
    lab = dict(lab)
    if "joints2d" in lab:
        lab["joints2d"] = flip_keypoints2d(lab["joints2d"])
    if "global_orient" in lab and "body_pose" in lab:
        pose = np.concatenate([lab["global_orient"].reshape(3), lab["body_pose"].reshape(69)])
        pose = flip_pose_aa(pose)
        lab["global_orient"], lab["body_pose"] = pose[:3].copy(), pose[3:].copy()
    if "transl" in lab:
        t = np.array(lab["transl"], copy=True)
        t[..., 0] *= -1
        lab["transl"] = t
    if "part_labels" in lab:
        lab["part_labels"] = PART_LABEL_FLIP[np.asarray(lab["part_labels"])[:, ::-1]]
    return lab


def hwc255_to_normalized(img: np.ndarray) -> torch.Tensor:
    """(S,S,3) RGB 0..255 -> (3,S,S) float32 ImageNet-normalised tensor."""
    return torch.from_numpy(
        ((img.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy()
    )


def normalized_to_hwc255(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3,S,S) ImageNet-normalised -> (S,S,3) float32 RGB 0..255 (inverse of ``hwc255_to_normalized``)."""
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    return a.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN


def label_dtype(key: str) -> type:
    """numpy dtype of an augmented label: uint8 for the ``part_labels`` map, float32 otherwise."""
    return np.uint8 if key == "part_labels" else np.float32


_LABEL_KEYS = ("joints2d", "global_orient", "body_pose", "transl", "betas", "part_labels")


class CropAugment:
    """Callable for ``CropDataset(augment=...)`` items and the trainer's cached crops.

    ``aug(item, rng=None)``: item is a CropDataset dict (``img`` (3,S,S) normalised tensor,
    ``person_mask`` (S,S), labels as tensors). Without ``rng`` an internal generator seeded with
    ``seed`` is used (deterministic per process; the trainer passes a per-sample generator instead).
    """

    def __init__(self, cfg: AugmentConfig = AugmentConfig(), seed: int = 0):
        self.cfg = cfg
        self._rng = np.random.default_rng(seed)

    def __call__(self, item: dict[str, Any], rng: np.random.Generator | None = None) -> dict[str, Any]:
        rng = self._rng if rng is None else rng
        img = normalized_to_hwc255(item["img"])
        mask = item.get("person_mask")
        mask_np = (
            None if mask is None else (mask.numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask))
        )
        labels = {
            k: (item[k].numpy() if isinstance(item[k], torch.Tensor) else np.asarray(item[k]))
            for k in _LABEL_KEYS
            if k in item
        }
        img2, mask2, lab2 = augment_sample(img, mask_np, labels, rng, self.cfg)
        out = dict(item)
        out["img"] = hwc255_to_normalized(img2)
        if mask2 is not None:
            out["person_mask"] = torch.from_numpy(mask2.astype(np.float32))
        for k, v in lab2.items():
            out[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=label_dtype(k)))
        return out
