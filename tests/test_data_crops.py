"""HMR2.0-style crops: hand-computed boxes, the image/mask/keypoint warps agree, inverse, normalisation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from fasthmr_lib.data.crops import (
    IMAGENET_MEAN,
    apply_affine,
    box_to_center_scale,
    crop_matrix,
    crop_to_image_points,
    denormalize_image,
    expand_to_aspect_ratio,
    keypoints_to_crop,
    make_crop,
    normalize_image,
    warp_mask,
)


def test_box_to_center_scale_hand_computed():
    # tall box 40 x 100 -> x1.2 = 48 x 120 -> aspect 192:256 widens to 90 x 120 -> side 120
    c, s = box_to_center_scale(np.array([10, 20, 50, 120]))
    np.testing.assert_allclose(c, [30, 70])
    assert s == pytest.approx(120)
    # wide box 100 x 30 -> 120 x 36 -> heightens to 120 x 160 -> side 160
    c, s = box_to_center_scale(np.array([0, 0, 100, 30]))
    np.testing.assert_allclose(c, [50, 15])
    assert s == pytest.approx(160)
    # exact aspect is kept
    np.testing.assert_allclose(expand_to_aspect_ratio(np.array([192.0, 256.0])), [192, 256])
    # batched boxes
    cs, ss = box_to_center_scale(np.array([[10, 20, 50, 120], [0, 0, 100, 30]]), rescale=1.0)
    np.testing.assert_allclose(ss, [100, 400 / 3])
    with pytest.raises(ValueError, match="x1,y1,x2,y2"):
        box_to_center_scale(np.zeros(3))


def test_crop_matrix_maps_box_centre_and_corners():
    A = crop_matrix(np.array([30.0, 70.0]), 120.0)
    np.testing.assert_allclose(apply_affine(A, np.array([30.0, 70.0])), [128, 128])
    # the square crop box's corners land on the crop's corners
    np.testing.assert_allclose(
        apply_affine(A, np.array([[-30.0, 10.0], [90.0, 130.0]])), [[0, 0], [256, 256]], atol=1e-9
    )
    kp = np.array([[30.0, 70.0, 1.0], [90.0, 130.0, 0.0]])
    np.testing.assert_allclose(keypoints_to_crop(kp, A), [[0, 0, 1], [0.5, 0.5, 0]])
    back = crop_to_image_points(keypoints_to_crop(kp, A), np.array([30.0, 70.0]), 120.0)
    np.testing.assert_allclose(back, kp, atol=1e-9)


def test_image_mask_and_keypoints_warp_identically():
    """Discs drawn at keypoints in the image: after the crop, each disc's centroid in the warped image and
    in the warped mask coincides with the warped keypoint."""
    rng = np.random.default_rng(0)
    H, W = 200, 260
    kps = np.array([[70.0, 60.0], [150.0, 120.0], [200.0, 90.0]])
    box = np.array([60.0, 40.0, 215.0, 150.0])
    for i, (x, y) in enumerate(kps):
        img = np.zeros((H, W, 3), np.uint8)
        mask = np.zeros((H, W), bool)
        cv2.circle(img, (int(x), int(y)), 6, (255, 255, 255), -1)
        cv2.circle(mask.view(np.uint8), (int(x), int(y)), 6, 1, -1)
        out = make_crop(img, box, masks={"m": mask}, keypoints=kps[i : i + 1])
        q = (out["keypoints"][0, :2] + 0.5) * 256
        ys, xs = np.nonzero(out["m"])
        np.testing.assert_allclose([xs.mean(), ys.mean()], q, atol=1.0)
        w = out["img"][..., 0].astype(float)
        yy, xx = np.mgrid[0:256, 0:256]
        np.testing.assert_allclose([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()], q, atol=0.75)
    # mask warping is nearest-neighbour: values stay binary
    m = rng.uniform(size=(H, W)) > 0.5
    wm = warp_mask(m, crop_matrix(np.array([100.0, 100.0]), 77.0))
    assert wm.dtype == bool


def test_out_of_image_regions_are_black_and_outside_mask():
    img = np.full((50, 50, 3), 200, np.uint8)
    out = make_crop(img, np.array([0.0, 0.0, 20.0, 49.0]), masks={"m": np.ones((50, 50), bool)})
    # the crop box reaches left of x=0: those columns are border 0 in image and mask
    assert out["img"][:, :5].max() == 0 and not out["m"][:, :5].any()
    assert out["img"][128, 128].tolist() == [200, 200, 200] and out["m"][128, 128]


def test_imagenet_normalisation_round_trip():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:] = np.rint(IMAGENET_MEAN * 255).astype(np.uint8)
    x = normalize_image(img)
    assert x.shape == (3, 4, 4) and x.dtype == torch.float32
    assert x.abs().max() < 0.01  # the mean colour maps to ~0
    white = normalize_image(np.full((2, 2, 3), 255, np.uint8))
    np.testing.assert_allclose(white[:, 0, 0].numpy(), (1 - IMAGENET_MEAN) / [0.229, 0.224, 0.225], rtol=1e-5)
    rnd = np.random.default_rng(1).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(denormalize_image(normalize_image(rnd)), rnd)


def test_box_mask_covers_the_clipped_box_and_crops_like_a_mask(tmp_path):
    """mask_kind 'box' (records without masks): the person mask is the box, clipped to the image."""
    from fasthmr_lib.data.crops import box_mask

    m = box_mask(np.array([-5.0, 2.2, 3.5, 40.0]), (10, 8))
    assert m.shape == (10, 8) and m.dtype == bool
    assert m[2:10, 0:4].all() and m.sum() == 8 * 4  # rows 2..9 (y2 clipped to H), columns 0..3 (x2 = 3.5)
    assert not box_mask(np.array([20.0, 20.0, 30.0, 30.0]), (10, 8)).any()  # outside the image
