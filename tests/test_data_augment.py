"""Crop-regressor augmentation: flips (twice = identity, left/right swaps), affine consistency."""

from __future__ import annotations

import numpy as np
import roma
import torch

from fasthmr_lib.data.augment import (
    FLIP_PERM_44,
    FLIP_PERM_SMPL24,
    AugmentConfig,
    CropAugment,
    affine_keypoints,
    augment_sample,
    flip_keypoints2d,
    flip_labels,
    flip_pose_aa,
    hwc255_to_normalized,
)

NO_AUG = AugmentConfig(scale_factor=0.0, trans_rate=0.0, color_scale=0.0, flip_rate=0.0, occluder_rate=0.0)


def _labels(rng):
    return {
        "joints2d": np.concatenate([rng.uniform(-0.5, 0.5, (44, 2)), rng.integers(0, 2, (44, 1))], 1).astype(
            np.float32
        ),
        "global_orient": rng.normal(0, 0.5, 3).astype(np.float32),
        "body_pose": rng.normal(0, 0.3, 69).astype(np.float32),
        "transl": np.array([0.3, 0.1, 5.0], np.float32),
        "betas": rng.normal(0, 1, 10).astype(np.float32),
    }


def test_permutations_are_involutions_with_named_pairs():
    p44, p24 = np.array(FLIP_PERM_44), np.array(FLIP_PERM_SMPL24)
    assert sorted(p44) == list(range(44)) and (p44[p44] == np.arange(44)).all()
    assert sorted(p24) == list(range(24)) and (p24[p24] == np.arange(24)).all()
    # OpenPose: R shoulder 2 <-> L shoulder 5, R hip 9 <-> L hip 12, nose/neck/mid-hip fixed
    assert p44[2] == 5 and p44[9] == 12 and p44[0] == 0 and p44[1] == 1 and p44[8] == 8
    # J19 (offset 25): R ankle 25 <-> L ankle 30, R wrist 31 <-> L wrist 36, pelvis 39 fixed
    assert p44[25] == 30 and p44[31] == 36 and p44[39] == 39
    # SMPL: L hip 1 <-> R hip 2, L wrist 20 <-> R wrist 21, spine/neck/head fixed
    assert p24[1] == 2 and p24[20] == 21 and p24[3] == 3 and p24[12] == 12 and p24[15] == 15


def test_flip_twice_is_identity():
    rng = np.random.default_rng(0)
    lab = _labels(rng)
    twice = flip_labels(flip_labels(lab))
    for k, v in lab.items():
        np.testing.assert_allclose(twice[k], v, atol=0, err_msg=k)
    img = rng.uniform(0, 255, (256, 256, 3)).astype(np.float32)
    cfg = AugmentConfig(scale_factor=0.0, trans_rate=0.0, color_scale=0.0, flip_rate=1.0, occluder_rate=0.0)
    i1, m1, l1 = augment_sample(img, img[..., 0] > 128, lab, np.random.default_rng(1), cfg)
    i2, m2, l2 = augment_sample(i1, m1, l1, np.random.default_rng(2), cfg)
    np.testing.assert_array_equal(i2, img)
    np.testing.assert_array_equal(m2, (img[..., 0] > 128).astype(np.float32))
    np.testing.assert_array_equal(i1, img[:, ::-1])


def test_flip_swaps_left_right_keypoints():
    kp = np.zeros((44, 3), np.float32)
    kp[2] = [-0.2, 0.1, 1]  # right shoulder on the image left
    kp[5] = [0.25, 0.1, 0]  # left shoulder
    f = flip_keypoints2d(kp)
    np.testing.assert_allclose(f[5], [0.2, 0.1, 1])  # the right shoulder becomes the left one, mirrored
    np.testing.assert_allclose(f[2], [-0.25, 0.1, 0])


def test_flip_pose_is_a_mirror_of_the_rotations():
    """Mirroring by M = diag(-1,1,1) maps each rotation R to M R M; check on the matrices."""
    rng = np.random.default_rng(3)
    pose = rng.normal(0, 0.7, (24, 3)).astype(np.float64)
    f = flip_pose_aa(pose)
    R = roma.rotvec_to_rotmat(torch.from_numpy(pose))
    Rf = roma.rotvec_to_rotmat(torch.from_numpy(f))
    Mx = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    expect = Mx @ R[list(FLIP_PERM_SMPL24)] @ Mx
    torch.testing.assert_close(Rf, expect)
    assert flip_pose_aa(pose.reshape(72)).shape == (72,)


def test_affine_keypoints_match_the_warped_image():
    """A bright pixel at a keypoint lands where affine_keypoints puts the keypoint."""
    img = np.zeros((256, 256, 3), np.float32)
    u, v = 150, 90  # pixel indices (x, y); continuous centre (150.5, 90.5)
    img[v - 1 : v + 2, u - 1 : u + 2] = 255.0
    kp = np.zeros((44, 3), np.float32)
    kp[0] = [(u + 0.5) / 256 - 0.5, (v + 0.5) / 256 - 0.5, 1]
    cfg = AugmentConfig(
        scale_factor=0.3, trans_factor=0.05, trans_rate=1.0, color_scale=0.0, flip_rate=0.0, occluder_rate=0.0
    )
    out, _, lab = augment_sample(img, None, {"joints2d": kp}, np.random.default_rng(7), cfg)
    ys, xs = np.nonzero(out[..., 0] > 100)
    cx, cy = (xs.mean() + 0.5) / 256 - 0.5, (ys.mean() + 0.5) / 256 - 0.5
    np.testing.assert_allclose(lab["joints2d"][0, :2], [cx, cy], atol=1.0 / 256)
    np.testing.assert_allclose(affine_keypoints(kp, 2.0, (0.1, 0.0))[0, 0], (kp[0, 0] - 0.1) * 2.0)


def test_no_op_config_and_determinism_and_occluders_clear_mask():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    lab = _labels(rng)
    out, m, l2 = augment_sample(img, np.ones((64, 64)), lab, np.random.default_rng(1), NO_AUG)
    np.testing.assert_allclose(out, img)
    np.testing.assert_allclose(l2["body_pose"], lab["body_pose"])
    a = augment_sample(img, np.ones((64, 64)), lab, np.random.default_rng(5), AugmentConfig())
    b = augment_sample(img, np.ones((64, 64)), lab, np.random.default_rng(5), AugmentConfig())
    np.testing.assert_array_equal(a[0], b[0])
    occ = AugmentConfig(scale_factor=0.0, trans_rate=0.0, color_scale=0.0, flip_rate=0.0, occluder_rate=1.0)
    _, m, _ = augment_sample(img, np.ones((64, 64)), lab, np.random.default_rng(2), occ)
    assert 0 < (m == 0).sum() < m.size  # some of the person is now hidden


def test_crop_augment_on_dataset_items_round_trips_normalisation():
    rng = np.random.default_rng(0)
    lab = {k: torch.from_numpy(v) for k, v in _labels(rng).items()}
    img = hwc255_to_normalized(rng.uniform(0, 255, (256, 256, 3)))  # a valid 0..255 image, normalised
    item = {"img": img, "person_mask": torch.ones(256, 256), "clip_id": "c0", **lab}
    out = CropAugment(NO_AUG)(item)
    torch.testing.assert_close(out["img"], item["img"], atol=1e-4, rtol=0)
    assert out["clip_id"] == "c0"
    flip = AugmentConfig(scale_factor=0.0, trans_rate=0.0, color_scale=0.0, flip_rate=1.0, occluder_rate=0.0)
    out = CropAugment(flip)(item)
    torch.testing.assert_close(out["img"], item["img"].flip(-1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out["person_mask"], torch.ones(256, 256))
