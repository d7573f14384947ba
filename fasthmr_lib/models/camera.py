"""Camera conventions of the two model families: the one place that says which crop, box conditioning,
translation and 2D projection a model config uses.

* ``hmr2`` (4D-Humans ``hmr2/models/hmr2.py``): the crop is the box x1.2 expanded to 192:256
  (:data:`fasthmr_lib.data.crops.HMR2_CROP`); the head predicts a weak-perspective camera (s, tx, ty) for
  the 256-px crop; ``cam_t = [tx, ty, 2 f / (S s + 1e-9)]`` with f = 5000 px, S = 256 px (crop camera);
  ``joints2d`` are the crop-camera projection (focal f / S, principal point 0: crop-normalised coords).
* ``camerahmr`` (CameraHMR ``mesh_estimator.py`` / ``core/camerahmr_trainer_smpl.py``): the crop is the
  box's longer side as is (:data:`fasthmr_lib.data.crops.CAMERAHMR_CROP`); the head's query token holds
  the CLIFF box info ``[(cx - W/2) / f, (cy - H/2) / f, b / f]`` (f: the full image's focal length);
  ``cam_t`` is the full-image translation (``convert_to_full_img_cam``) and the 2D joints are the
  projection with the image K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]] (``joints2d_px``, image px);
  ``joints2d`` are the same points in crop-normalised coords ``(px - centre) / side``.

A model's convention follows from its head: a box-conditioned head (``head.token_input == "bbox"``) is
CameraHMR's (:func:`convention_of`). Focal lengths come from a record's K (``record_K``), the caller
(``given``), CameraHMR's HumanFoV network (``humanfov``, :mod:`fasthmr_lib.models.humanfov`) or, without
those, the image diagonal (``image_diagonal``, CameraHMR's commented-out fallback in
``get_cam_intrinsics``); :data:`FOCAL_SOURCES` names them in outputs and tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..config import ModelConfig
from ..data.crops import CAMERAHMR_CROP, HMR2_CROP, CropRule, cliff_bbox_info  # noqa: F401 (re-exported)

CONVENTIONS = ("hmr2", "camerahmr")
FOCAL_SOURCES = ("record_K", "given", "humanfov", "image_diagonal", "crop_5000")


def convention_of(cfg: ModelConfig) -> str:
    """``"camerahmr"`` for a box-conditioned head (CLIFF query token), else ``"hmr2"``."""
    return "camerahmr" if cfg.head.token_input == "bbox" else "hmr2"


def crop_rule_for(cfg: ModelConfig) -> CropRule:
    """The crop rule of ``cfg``'s convention (:data:`HMR2_CROP` or :data:`CAMERAHMR_CROP`)."""
    return CAMERAHMR_CROP if convention_of(cfg) == "camerahmr" else HMR2_CROP


def image_diagonal_focal(img_hw: tuple[int, int]) -> float:
    """The fallback focal length without K or HumanFoV: the image diagonal ``sqrt(H^2 + W^2)`` px."""
    return float(np.hypot(float(img_hw[0]), float(img_hw[1])))


# ----------------------------------------------------------------------------- formulas
def weak_cam_to_translation(cam: Tensor, focal_length: float = 5000.0, image_size: float = 256.0) -> Tensor:
    """HMR2.0 ``pred_cam_t``: cam (B, 3) = (s, tx, ty) -> (B, 3) = (tx, ty, 2 f / (S s + 1e-9)) metres."""
    tz = 2 * focal_length / (image_size * cam[:, 0] + 1e-9)
    return torch.stack([cam[:, 1], cam[:, 2], tz], dim=-1)


def project_crop(
    points: Tensor, cam_t: Tensor, focal_length: float = 5000.0, image_size: float = 256.0
) -> Tensor:
    """HMR2.0 ``pred_keypoints_2d``: points (B, N, 3) + cam_t (B, 3), pinhole with focal f / S and
    principal point 0 -> (B, N, 2) crop-normalised coordinates."""
    p = points + cam_t[:, None]
    return p[..., :2] / p[..., 2:3] * (focal_length / image_size)


def cam_crop_to_full(
    cam: Tensor, box_center: Tensor, box_size: Tensor, img_size_hw: Tensor, focal: Tensor | float
) -> Tensor:
    """Weak-perspective crop camera -> full-image translation (HMR2.0 ``cam_crop_to_full``; CameraHMR
    ``convert_to_full_img_cam``): ``tz = 2 F / (b s)``, ``tx' = tx + 2 (cx - W/2) / (b s)``,
    ``ty' = ty + 2 (cy - H/2) / (b s)``. Shapes as :func:`cliff_bbox_info`; returns (B, 3) metres."""
    s, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    bs = box_size * s + 1e-9
    h, w = img_size_hw[:, 0], img_size_hw[:, 1]
    tz = 2 * focal / bs
    return torch.stack(
        [tx + 2 * (box_center[:, 0] - w / 2.0) / bs, ty + 2 * (box_center[:, 1] - h / 2.0) / bs, tz], -1
    )


def project_with_k(points: Tensor, cam_t: Tensor, K: Tensor) -> Tensor:
    """CameraHMR ``perspective_projection`` (``core/utils/train_utils.py``) without rotation: points
    (B, N, 3) + cam_t (B, 3) -> divide by depth -> K (B, 3, 3) -> (B, N, 2) image px."""
    p = points + cam_t[:, None]
    p = p / p[..., 2:3]
    return torch.einsum("bij,bkj->bki", K.to(p.dtype), p)[..., :2]


@dataclass(frozen=True)
class CropCamera:
    """Where square crops sit in their full images, and the images' pinhole focal lengths (principal
    point at the image centre, as CameraHMR assumes).

    box_center (B, 2) px, box_size (B,) px (crop side), img_hw (B, 2) = (H, W) px, focal (B,) px.
    :meth:`from_bbox_info` gives the same camera in units of the focal length (f = 1, image centre at 0):
    translations and crop-normalised joints are the same, image px are then not known."""

    box_center: Tensor
    box_size: Tensor
    img_hw: Tensor
    focal: Tensor
    in_pixels: bool = True  # False: built from box info alone (focal-length units)

    def __post_init__(self) -> None:
        B = self.box_center.shape[0]
        shapes = {"box_center": (B, 2), "box_size": (B,), "img_hw": (B, 2), "focal": (B,)}
        for name, want in shapes.items():
            got = tuple(getattr(self, name).shape)
            if got != want:
                raise ValueError(f"CropCamera.{name} must have shape {want}, got {got}")

    @classmethod
    def from_bbox_info(cls, bbox_info: Tensor) -> CropCamera:
        """The camera of CLIFF box info (B, 3) in focal-length units (f = 1, W = H = 0)."""
        B = bbox_info.shape[0]
        z = torch.zeros(B, 2, dtype=bbox_info.dtype, device=bbox_info.device)
        return cls(bbox_info[:, :2], bbox_info[:, 2], z, torch.ones_like(bbox_info[:, 2]), in_pixels=False)

    @classmethod
    def from_numpy(
        cls, centers: np.ndarray, sides: np.ndarray, img_hw: np.ndarray, focal: np.ndarray
    ) -> CropCamera:
        """From arrays (B, 2), (B,), (B, 2), (B,) (any float dtype) as float32 tensors."""
        t = [torch.as_tensor(np.asarray(a, np.float32)) for a in (centers, sides, img_hw, focal)]
        return cls(*t)

    def to(self, device: torch.device | str) -> CropCamera:
        t = (x.to(device) for x in (self.box_center, self.box_size, self.img_hw, self.focal))
        return CropCamera(*t, in_pixels=self.in_pixels)

    def bbox_info(self) -> Tensor:
        """(B, 3) CLIFF box info (:func:`cliff_bbox_info`)."""
        return cliff_bbox_info(self.box_center, self.box_size, self.img_hw, self.focal)

    def K(self) -> Tensor:
        """(B, 3, 3) intrinsics ``[[f, 0, W/2], [0, f, H/2], [0, 0, 1]]`` (CameraHMR ``cam_int``)."""
        B = self.focal.shape[0]
        K = torch.zeros(B, 3, 3, dtype=torch.float32, device=self.focal.device)
        K[:, 0, 0] = K[:, 1, 1] = self.focal
        K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = self.img_hw[:, 1] / 2.0, self.img_hw[:, 0] / 2.0, 1.0
        return K

    def translation(self, cam: Tensor) -> Tensor:
        """Full-image translation (B, 3) m of the crop camera ``cam`` (B, 3) (:func:`cam_crop_to_full`)."""
        return cam_crop_to_full(cam, self.box_center, self.box_size, self.img_hw, self.focal)

    def project(self, points: Tensor, cam_t: Tensor) -> dict[str, Tensor]:
        """points (B, N, 3) m + full-image cam_t (B, 3) -> ``joints2d_px`` (B, N, 2) image px (with
        :meth:`K`; only when :attr:`in_pixels`) and ``joints2d`` (B, N, 2) crop-normalised
        ``(px - centre) / side``."""
        px = project_with_k(points, cam_t, self.K())
        c, b = self.box_center.to(px.dtype), self.box_size.to(px.dtype)
        out = {"joints2d": (px - c[:, None]) / b[:, None, None]}
        if self.in_pixels:
            out["joints2d_px"] = px
        return out
