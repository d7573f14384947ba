"""Person crops: box -> square 256x256 crop, with masks and 2D keypoints warped identically.

Two crop rules (:class:`CropRule`; a model's rule comes from
:func:`fasthmr_lib.models.camera.crop_rule_for`):

* :data:`HMR2_CROP` follows 4D-Humans (``hmr2/datasets/utils.py`` / ``vitdet_dataset.py``): the box
  (centre, size) is scaled by ``rescale`` (1.2), expanded to the aspect ratio w:h = 192:256
  (``MODEL.BBOX_SHAPE``), the larger side becomes the side of a square crop box; a Gaussian blur
  anti-aliases strong down-scaling.
* :data:`CAMERAHMR_CROP` follows CameraHMR (``core/datasets/dataset.py``, ``dataset_val.py``: ``scale =
  (w, h) / 200``, ``BBOX_SHAPE = None``, ``bbox_size = max(scale * 200)``): the square side is the box's
  longer side as is (no enlargement, no aspect expansion, no blur).

Either crop box is warped with ``cv2.warpAffine`` (bilinear, constant border 0) to 256x256; the
backbone later uses only the middle 192 columns. Normalised keypoints are ``crop_px / 256 - 0.5``
(HMR2.0's convention, range [-0.5, 0.5]). Images are ImageNet-normalised.

Coordinates: pixel centres at integer coordinates (OpenCV's convention) in image and crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
BBOX_SHAPE = (192, 256)  # (w, h) target aspect of HMR2.0
CROP_SIZE = 256


@dataclass(frozen=True)
class CropRule:
    """How a person box becomes a square crop box: ``side = max(expand_to_aspect(rescale * (w, h)))``
    (no expansion when ``aspect`` is ``None``), centred on the box; ``antialias``: Gaussian blur before
    strong down-scaling (:func:`warp_image`)."""

    name: str
    rescale: float
    aspect: tuple[int, int] | None
    antialias: bool


HMR2_CROP = CropRule("hmr2", 1.2, BBOX_SHAPE, True)
CAMERAHMR_CROP = CropRule("camerahmr", 1.0, None, False)
CROP_RULES = {r.name: r for r in (HMR2_CROP, CAMERAHMR_CROP)}


def get_crop_rule(rule: str | CropRule) -> CropRule:
    """A :class:`CropRule` or its name (``hmr2`` / ``camerahmr``) -> the rule."""
    if isinstance(rule, CropRule):
        return rule
    if rule not in CROP_RULES:
        raise ValueError(f"unknown crop rule {rule!r}; expected one of {sorted(CROP_RULES)}")
    return CROP_RULES[rule]


def expand_to_aspect_ratio(wh: np.ndarray, target_wh: tuple[int, int] = BBOX_SHAPE) -> np.ndarray:
    """Grow a box size (w, h) to the aspect ratio ``target_wh`` without shrinking either side
    (HMR2.0 ``expand_to_aspect_ratio``). wh (..., 2) px -> (..., 2) px."""
    wh = np.asarray(wh, np.float64)
    w, h = wh[..., 0], wh[..., 1]
    wt, ht = target_wh
    taller = h / np.maximum(w, 1e-9) > ht / wt  # box narrower than the target: widen
    w_new = np.where(taller, np.maximum(h * wt / ht, w), w)
    h_new = np.where(taller, h, np.maximum(w * ht / wt, h))
    return np.stack([w_new, h_new], -1)


def box_to_center_scale(
    box: np.ndarray, rescale: float = 1.2, aspect: tuple[int, int] | None = BBOX_SHAPE
) -> tuple[np.ndarray, np.ndarray]:
    """Box x1,y1,x2,y2 (..., 4) px -> crop centre (..., 2) px and square crop side (...,) px:
    ``side = max(expand_to_aspect(rescale * (w, h)))`` (``aspect=None``: ``max(rescale * (w, h))``)."""
    box = np.asarray(box, np.float64)
    if box.shape[-1] != 4:
        raise ValueError(f"box must have shape (..., 4) x1,y1,x2,y2, got {box.shape}")
    center = np.stack([(box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2], -1)
    wh = np.stack([box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]], -1) * rescale
    wh = np.maximum(wh, 1.0)
    side = (wh if aspect is None else expand_to_aspect_ratio(wh, aspect)).max(-1)
    return center, side


def cliff_bbox_info(
    box_center: torch.Tensor, box_size: torch.Tensor, img_size_hw: torch.Tensor, focal: torch.Tensor
) -> torch.Tensor:
    """CameraHMR's query-token conditioning (``core/camerahmr_model.py``, from CLIFF):
    ``[(cx - W/2) / f, (cy - H/2) / f, b / f]`` (the one place of this formula; the datasets and
    :class:`fasthmr_lib.models.camera.CropCamera` call it).

    box_center (B, 2) px, box_size (B,) px (side of the square crop box), img_size_hw (B, 2) = (H, W) px,
    focal (B,) px (fx of the full-image intrinsics). Returns (B, 3) float."""
    f = focal.to(torch.float32)
    cx, cy = box_center[:, 0], box_center[:, 1]
    h, w = img_size_hw[:, 0], img_size_hw[:, 1]
    return torch.stack([(cx - w / 2.0) / f, (cy - h / 2.0) / f, box_size / f], dim=-1).float()


def crop_matrix(center: np.ndarray, side: float, out_size: int = CROP_SIZE) -> np.ndarray:
    """2x3 affine A mapping image px -> crop px: ``q = out/side * (p - center) + out/2`` (the box centre
    lands on the crop centre, as in HMR2.0's ``gen_trans_from_patch_cv`` without rotation)."""
    c = np.asarray(center, np.float64).reshape(2)
    if not side > 0:
        raise ValueError(f"crop side must be > 0 px, got {side}")
    s = out_size / float(side)
    return np.array([[s, 0.0, out_size / 2 - s * c[0]], [0.0, s, out_size / 2 - s * c[1]]])


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(A, np.float64))


def apply_affine(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points (..., 2) (extra columns after the first two are kept unchanged)."""
    pts = np.asarray(pts, np.float64)
    xy = pts[..., :2] @ A[:, :2].T + A[:, 2]
    return np.concatenate([xy, pts[..., 2:]], -1) if pts.shape[-1] > 2 else xy


def warp_image(
    img: np.ndarray, A: np.ndarray, out_size: int = CROP_SIZE, antialias: bool = True
) -> np.ndarray:
    """Crop an image (H,W,C) uint8/float with A (bilinear, border 0) -> (out,out,C) same dtype.

    ``antialias``: Gaussian blur first when the crop shrinks by > 2.2x (HMR2.0 demo:
    sigma = (factor/2 - 1)/2)."""
    factor = 1.0 / A[0, 0]
    if antialias and factor > 2.2:
        sigma = (factor / 2 - 1) / 2
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return cv2.warpAffine(
        img, A, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def warp_labels(labels: np.ndarray, A: np.ndarray, out_size: int = CROP_SIZE) -> np.ndarray:
    """Crop a label map (H,W) uint8 with A, nearest-neighbour (labels are never blended), border 0
    -> (out,out) uint8."""
    return cv2.warpAffine(
        np.asarray(labels, np.uint8), A, (out_size, out_size), flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip


def warp_mask(mask: np.ndarray, A: np.ndarray, out_size: int = CROP_SIZE) -> np.ndarray:
    """Crop a mask (H,W) bool with A, nearest-neighbour, border 0 -> (out,out) bool."""
    return warp_labels(mask, A, out_size).astype(bool)


def keypoints_to_crop(kp: np.ndarray, A: np.ndarray, out_size: int = CROP_SIZE) -> np.ndarray:
    """Image keypoints (..., 2 or 3) px (+ visibility) -> normalised crop coords ``crop_px/out - 0.5``
    (visibility column kept)."""
    q = apply_affine(A, kp)
    q[..., :2] = q[..., :2] / out_size - 0.5
    return q


def crop_to_image_points(pts_norm: np.ndarray, center: np.ndarray, side: float, out_size: int = CROP_SIZE):
    """Inverse of :func:`keypoints_to_crop`: normalised crop coords (..., 2+) -> image px."""
    q = np.array(pts_norm, np.float64, copy=True)
    q[..., :2] = (q[..., :2] + 0.5) * out_size
    return apply_affine(invert_affine(crop_matrix(center, side, out_size)), q)


def box_mask(box: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H,W) bool mask of the pixels inside ``box`` (x1,y1,x2,y2 px, clipped to the image): the person
    mask of records that have none (3DPW / EMDB as converted; Mask-ToMe then treats the box as the person)."""
    H, W = int(hw[0]), int(hw[1])
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    m = np.zeros((H, W), bool)
    c0, c1 = int(np.clip(np.floor(x1), 0, W)), int(np.clip(np.ceil(x2), 0, W))
    r0, r1 = int(np.clip(np.floor(y1), 0, H)), int(np.clip(np.ceil(y2), 0, H))
    m[r0:r1, c0:c1] = True
    return m


def normalize_image(img: np.ndarray) -> torch.Tensor:
    """(H,W,3) RGB uint8/float 0..255 -> (3,H,W) float32 ImageNet-normalised tensor."""
    x = (np.asarray(img, np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def denormalize_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize_image`: (3,H,W) -> (H,W,3) uint8."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    img = (a.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255.0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_crop(
    img: np.ndarray,
    box: np.ndarray,
    *,
    masks: dict[str, np.ndarray] | None = None,
    labels: dict[str, np.ndarray] | None = None,
    keypoints: np.ndarray | None = None,
    rescale: float | None = None,
    out_size: int = CROP_SIZE,
    rule: str | CropRule = HMR2_CROP,
) -> dict[str, np.ndarray]:
    """One crop by ``rule`` (default HMR2.0's; ``rescale`` overrides the rule's box scale). img (H,W,3),
    box (4,) xyxy px, masks name -> (H,W) bool, labels name -> (H,W) uint8 label maps, keypoints (K,2|3) px.

    Returns ``img`` (out,out,3) same dtype, each mask (out,out) bool, each label map (out,out) uint8,
    ``keypoints`` normalised crop coords, ``center`` (2,), ``side`` () px, ``A`` (2,3) image->crop matrix."""
    r = get_crop_rule(rule)
    center, side = box_to_center_scale(box, r.rescale if rescale is None else rescale, r.aspect)
    A = crop_matrix(center, float(side), out_size)
    out: dict[str, np.ndarray] = {
        "img": warp_image(img, A, out_size, antialias=r.antialias),
        "center": center.astype(np.float32),
        "side": np.float32(side),
        "A": A,
    }
    for k, m in (masks or {}).items():
        out[k] = warp_mask(m, A, out_size)
    for k, m in (labels or {}).items():
        out[k] = warp_labels(m, A, out_size)
    if keypoints is not None:
        out["keypoints"] = keypoints_to_crop(keypoints, A, out_size).astype(np.float32)
    return out
