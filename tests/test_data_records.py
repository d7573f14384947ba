"""Clip record format: round trip, validation errors naming file + key, partial loads, world layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fasthmr_lib.data.datasets import ClipDataset, CropDataset
from fasthmr_lib.data.records import (
    Clip,
    ClipFormatError,
    load_clip,
    read_meta,
    save_clip,
    split_clip_ids,
    split_clip_paths,
    world_root,
)


def make_arrays(
    T: int = 3, H: int = 48, W: int = 40, seed: int = 0, clip_id: str = "c0", split: str = "train"
):
    rng = np.random.default_rng(seed)
    mask = np.zeros((T, H, W), bool)
    mask[:, 10:40, 12:28] = True
    K = np.array([[50.0, 0, (W - 1) / 2], [0, 50.0, (H - 1) / 2], [0, 0, 1]], np.float32)
    j2d = np.concatenate([rng.uniform(12, 28, (T, 44, 2)), np.ones((T, 44, 1))], -1).astype(np.float32)
    return {
        "images": rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        "boxes": np.tile(np.array([12, 10, 27, 39], np.float32), (T, 1)),
        "mask": mask,
        "mask_union": mask.copy(),
        "mask_degraded": mask.copy(),
        "global_orient": rng.normal(0, 0.3, (T, 3)).astype(np.float32),
        "body_pose": rng.normal(0, 0.2, (T, 69)).astype(np.float32),
        "betas": np.tile(rng.normal(0, 1, 10).astype(np.float32), (T, 1)),
        "transl": np.tile(np.array([0, 0, 5.0], np.float32), (T, 1)),
        "K": K,
        "cam_R": np.tile(np.eye(3, dtype=np.float32), (T, 1, 1)),
        "cam_T": np.zeros((T, 3), np.float32),
        "joints2d": j2d,
        "fps": np.array(30.0, np.float32),
        "occlusion": np.linspace(0, 0.5, T).astype(np.float32),
        "clip_id": np.array(clip_id),
        "split": np.array(split),
        "source": np.array("synthetic"),
        "gender": np.array("neutral"),
        "joints3d": rng.normal(0, 1, (T, 44, 3)).astype(np.float32),
        "kind": np.array("walk"),
    }


def test_round_trip_keeps_every_array_and_attribute(tmp_path):
    a = make_arrays()
    p = save_clip(tmp_path / "train" / "c0.npz", a)
    c = load_clip(p)
    assert isinstance(c, Clip) and c.clip_id == "c0" and c.split == "train" and c.gender == "neutral"
    assert c.n_frames == 3 and c.fps == 30.0 and c.image_size_hw == (48, 40)
    for k, v in a.items():
        if k in ("clip_id", "split", "source", "gender", "fps"):
            continue
        got = c.extras[k] if k in ("joints3d", "kind") else getattr(c, k)
        np.testing.assert_array_equal(got, v, err_msg=k)
    assert c.get_mask("degraded") is c.mask_degraded
    # saving the Clip object again gives the same arrays
    p2 = save_clip(tmp_path / "again.npz", c)
    c2 = load_clip(p2)
    np.testing.assert_array_equal(c2.images, c.images)
    np.testing.assert_array_equal(c2.extras["joints3d"], c.extras["joints3d"])
    assert not list(tmp_path.rglob("*.tmp")), "atomic write left a temp file"


def test_partial_load_reads_only_asked_keys(tmp_path):
    p = save_clip(tmp_path / "c.npz", make_arrays(T=4))
    c = load_clip(p, keys=("boxes", "body_pose"))
    assert c.images is None and c.mask is None and c.global_orient is None
    assert c.boxes.shape == (4, 4) and c.body_pose.shape == (4, 69) and c.n_frames == 4
    with pytest.raises(ClipFormatError, match=r"c\.npz.*'nonexistent'.*missing"):
        load_clip(p, keys=("nonexistent",))


@pytest.mark.parametrize(
    "key, bad, pattern",
    [
        ("body_pose", None, r"'body_pose'.*missing"),
        ("body_pose", np.zeros((3, 72), np.float32), r"'body_pose'.*expected shape \(T,69\)"),
        ("joints2d", np.zeros((2, 44, 3), np.float32), r"'joints2d'.*2 frames"),
        ("mask", np.zeros((3, 48, 40), np.uint8), r"'mask'.*bool"),
        ("mask", np.zeros((3, 10, 10), bool), r"'mask'.*differs from the image size"),
        ("images", np.zeros((3, 48, 40, 3), np.float32), r"'images'.*uint8"),
        ("K", np.eye(4, dtype=np.float32), r"'K'.*\(3,3\)"),
        ("transl", np.full((3, 3), np.nan, np.float32), r"'transl'.*NaN"),
        ("clip_id", None, r"'clip_id'.*missing"),
    ],
)
def test_bad_clip_errors_name_file_and_key(tmp_path, key, bad, pattern):
    a = make_arrays()
    if bad is None:
        del a[key]
    else:
        a[key] = bad
    # writing refuses it (and leaves nothing behind) ...
    with pytest.raises(ClipFormatError, match=pattern):
        save_clip(tmp_path / "bad.npz", a)
    assert not (tmp_path / "bad.npz").exists()
    # ... and reading a file written without validation reports file and key
    path = tmp_path / "raw_bad.npz"
    np.savez_compressed(path, **a)
    with pytest.raises(ClipFormatError, match="raw_bad.npz: key " + pattern):
        load_clip(path)


def test_unreadable_and_missing_files(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a zip file")
    with pytest.raises(ClipFormatError, match="junk.npz"):
        load_clip(p)
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_clip(tmp_path / "nothere.npz")
    a = make_arrays()
    a["kind"] = np.array([{"x": 1}], dtype=object)  # needs pickle: refused
    np.savez(tmp_path / "obj.npz", **a)
    with pytest.raises(ClipFormatError, match=r"obj.npz: key 'kind'"):
        load_clip(tmp_path / "obj.npz")


def _write_world(root, n=(2, 1, 1), T=3):
    splits = {}
    for s, k in zip(("train", "calib", "test"), n):
        splits[s] = []
        for i in range(k):
            cid = f"{s}_{i}"
            save_clip(root / s / f"{cid}.npz", make_arrays(T=T, seed=i, clip_id=cid, split=s))
            splits[s].append(cid)
    (root / "meta.json").write_text(json.dumps({"profile": "x", "splits": splits}))
    return splits


def test_world_root_meta_and_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTHMR_DATA", str(tmp_path))
    assert world_root("tiny") == tmp_path / "world" / "tiny"
    root = world_root("x")
    with pytest.raises(FileNotFoundError, match=r"meta.json.*build_world --profile x"):
        read_meta(root)
    splits = _write_world(root)
    assert read_meta(root)["splits"] == splits
    assert split_clip_ids(root, "train") == ["train_0", "train_1"]
    with pytest.raises(KeyError, match="no split 'val'"):
        split_clip_ids(root, "val")
    (root / "train" / "train_1.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"train_1.npz.*listed in"):
        split_clip_paths(root, "train")


def test_crop_dataset_items_and_clip_dataset(tmp_path):
    root = tmp_path / "w"
    _write_world(root, n=(2, 1, 1), T=3)
    ds = CropDataset(root, "train", mask_kind="union")
    assert len(ds) == 6
    it = ds[4]
    assert it["img"].shape == (3, 256, 256) and it["img"].dtype == torch.float32
    assert it["person_mask"].shape == (256, 256) and set(it["person_mask"].unique().tolist()) <= {0.0, 1.0}
    assert it["joints2d"].shape == (44, 3) and it["clip_id"] == "train_1" and it["frame"] == 1
    shapes = {"global_orient": (3,), "body_pose": (69,), "betas": (10,), "transl": (3,), "crop_center": (2,),
              "crop_scale": (), "K": (3, 3), "bbox_info": (3,)}  # fmt: skip
    for k, shape in shapes.items():
        assert tuple(it[k].shape) == shape, k
    # box (12,10)-(27,39): w 15, h 29 -> x1.2 -> 18 x 34.8; aspect 192:256 -> side = 34.8
    assert float(it["crop_scale"]) == pytest.approx(34.8, abs=1e-4)
    np.testing.assert_allclose(it["crop_center"].numpy(), [19.5, 24.5])
    assert float(it["occlusion"]) == pytest.approx(0.25)
    assert it["focal_source"] == "record_K" and float(it["focal"]) == pytest.approx(float(it["K"][0, 0]))
    # CameraHMR's rule: the box's longer side as is (29), same centre; bbox_info follows the crop box
    cam = CropDataset(root, "train", mask_kind="union", crop_rule="camerahmr")[4]
    assert float(cam["crop_scale"]) == pytest.approx(29.0, abs=1e-5)
    np.testing.assert_allclose(cam["crop_center"].numpy(), [19.5, 24.5])
    assert float(cam["bbox_info"][2]) == pytest.approx(29.0 / float(cam["K"][0, 0]), rel=1e-6)
    # keypoints were drawn inside the box -> inside the crop's [-0.5, 0.5]
    assert it["joints2d"][:, :2].abs().max() <= 0.5
    seen = []
    ds_aug = CropDataset(root, "train", augment=lambda d: (seen.append(d["frame"]), {**d, "tag": 1})[1])
    assert ds_aug[2]["tag"] == 1 and seen == [2]
    assert "person_mask" not in CropDataset(root, "test", mask_kind=None)[0]
    with pytest.raises(ValueError, match="mask_kind"):
        CropDataset(root, "test", mask_kind="silhouette")
    cd = ClipDataset(root, "train")
    c = cd[1]
    assert len(cd) == 2 and c.images is None and c.body_pose.shape == (3, 69)
    assert cd.poses(0)["pose"].shape == (3, 72)
    assert ClipDataset(root, "train", with_images=True)[0].images.shape == (3, 48, 40, 3)
