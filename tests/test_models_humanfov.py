"""CameraHMR's HumanFoV network (fasthmr_lib/models/humanfov.py): key layout, loader, preprocessing, focal.

The fingerprints below were computed from CameraHMR's own ``core/cam_model/fl_net.py`` +
``core/cam_model/backbone/hrnet.py`` (``hrnet_w48(downsample=True, use_conv=True)``, and the same
code at width 4) run once with its ``state_dict()``: number of entries and sha256 (first 16 hex digits)
of the sorted ``"key:shape"`` lines. The same run loaded the original width-8 network's random weights
(random BatchNorm statistics) into :class:`HumanFoV` strictly and got the same outputs (max |diff| 0.0).
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch

from fasthmr_lib.models.checkpoints import CheckpointError
from fasthmr_lib.models.humanfov import (
    HumanFoV,
    estimate_focal,
    focal_lengths,
    load_humanfov,
    preprocess_image,
)

CAMERAHMR_FINGERPRINTS = {4: (1874, "c5694a384520beea"), 48: (1874, "999f08d21b44c70a")}


def fingerprint(sd: dict[str, torch.Tensor]) -> tuple[int, str]:
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(sd.items()))
    return len(sd), hashlib.sha256(lines.encode()).hexdigest()[:16]


def random_humanfov(width: int = 4, seed: int = 0) -> HumanFoV:
    torch.manual_seed(seed)
    m = HumanFoV(width)
    for mod in m.modules():  # non-trivial BatchNorm statistics, so a wrong buffer mapping shows
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    return m.eval()


@pytest.mark.parametrize("width", [4, 48])
def test_key_layout_is_camerahmrs(width):
    with torch.device("meta"):
        model = HumanFoV(width)
    assert fingerprint(model.state_dict()) == CAMERAHMR_FINGERPRINTS[width]


def test_output_is_two_angles_and_skips_fc2():
    m = random_humanfov()
    x = torch.randn(2, 3, 64, 64)  # any multiple of 32 runs; small is fast
    with torch.no_grad():
        a = m(x)
        m.fc2.weight.add_(1.0)  # FLNet's forward never uses fc2
        b = m(x)
    assert a.shape == (2, 2)
    assert torch.equal(a, b)


def test_loader_round_trip_in_camerahmr_layout(tmp_path):
    ref = random_humanfov(4)
    path = tmp_path / "data" / "pretrained-models" / "cam_model_cleaned.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": ref.state_dict(), "epoch": 3}, path)
    model = load_humanfov(path)
    assert model.width == 4 and not model.training
    x = torch.randn(2, 3, 64, 64)  # any multiple of 32 runs; small is fast
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    prefixed = tmp_path / "prefixed.ckpt"  # CameraHMR's load_valid strips a leading "model."
    torch.save({"state_dict": {"model." + k: v for k, v in ref.state_dict().items()}}, prefixed)
    with torch.no_grad():
        torch.testing.assert_close(load_humanfov(prefixed)(x), ref(x), rtol=0, atol=0)
    trainer = tmp_path / "camerahmr_trainer.ckpt"  # CameraHMR's trainer: FLNet as cam_model beside the HMR
    sd = {"cam_model." + k: v for k, v in ref.state_dict().items()}
    sd |= {"backbone.patch_embed.proj.weight": torch.zeros(2), "smpl_head.deccam.weight": torch.zeros(2)}
    torch.save({"state_dict": sd}, trainer)
    with torch.no_grad():
        torch.testing.assert_close(load_humanfov(trainer)(x), ref(x), rtol=0, atol=0)


def test_loader_rejects_bad_keys(tmp_path):
    sd = random_humanfov(4).state_dict()
    renamed = dict(sd)
    renamed["backbone.stage2.0.branches.0.0.convX.weight"] = renamed.pop(
        "backbone.stage2.0.branches.0.0.conv1.weight"
    )
    bad = tmp_path / "renamed.ckpt"
    torch.save({"state_dict": renamed}, bad)
    with pytest.raises(CheckpointError, match=r"renamed\.ckpt.*missing keys.*conv1.*unexpected keys.*convX"):
        load_humanfov(bad)
    short = dict(sd, **{"fc1.weight": sd["fc1.weight"][:, :10]})
    torch.save({"state_dict": short}, bad)
    with pytest.raises(CheckpointError, match="shape mismatches.*fc1.weight"):
        load_humanfov(bad)
    no_fc2 = {k: v for k, v in sd.items() if not k.startswith("fc2.")}
    torch.save({"state_dict": no_fc2}, bad)
    with pytest.raises(CheckpointError, match=r"missing keys.*fc2\.bias"):
        load_humanfov(bad)
    torch.save({"state_dict": {"backbone.blocks.0.weight": torch.zeros(2)}}, bad)
    with pytest.raises(CheckpointError, match="not a CameraHMR HumanFoV"):
        load_humanfov(bad)


def camerahmr_resize_image(img: np.ndarray, target_size: int = 256) -> np.ndarray:
    """Port of CameraHMR ``mesh_estimator.resize_image`` (the canvas, without the aspect return)."""
    height, width = img.shape[:2]
    aspect_ratio = width / height
    if aspect_ratio > 1:
        new_width, new_height = target_size, int(target_size / aspect_ratio)
    else:
        new_width, new_height = int(target_size * aspect_ratio), target_size
    resized = cv2.resize(img, (new_width, new_height), interpolation=cv2.INTER_AREA)
    final = np.ones((target_size, target_size, 3), dtype=np.uint8) * 255
    sx, sy = (target_size - new_width) // 2, (target_size - new_height) // 2
    final[sy : sy + new_height, sx : sx + new_width] = resized
    return final


@pytest.mark.parametrize("hw", [(120, 200), (300, 170), (97, 97)])
def test_preprocessing_is_camerahmrs(hw):
    img = np.random.default_rng(0).integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    canvas = camerahmr_resize_image(img).astype(np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = torch.from_numpy(((canvas - mean) / std).transpose(2, 0, 1).astype(np.float32))
    torch.testing.assert_close(preprocess_image(img), want, rtol=0, atol=1e-6)


def test_focal_from_vertical_fov_and_sources(monkeypatch):
    m = random_humanfov(4)
    imgs = [np.random.default_rng(s).integers(0, 256, size=(120, 200, 3), dtype=np.uint8) for s in (1, 2)]
    with torch.no_grad():
        vfov = m(torch.stack([preprocess_image(im) for im in imgs]))[:, 1].double()
    want = (120 / (2 * torch.tan(vfov / 2))).numpy()  # mesh_estimator.get_cam_intrinsics
    np.testing.assert_allclose(estimate_focal(m, imgs), want, rtol=1e-12)
    monkeypatch.delenv("FASTHMR_HUMANFOV", raising=False)
    f, src = focal_lengths(imgs)
    assert src == "image_diagonal" and np.allclose(f, np.hypot(120, 200))
    f, src = focal_lengths(imgs, focal_px=800.0, humanfov=m)
    assert src == "given" and np.all(f == 800.0)
    f, src = focal_lengths(imgs, humanfov=m)
    assert src == "humanfov" and np.allclose(f, want)
    with pytest.raises(ValueError, match="focal_px"):
        focal_lengths(imgs, focal_px=0.0)


def test_env_var_names_the_checkpoint(tmp_path, monkeypatch):
    ref = random_humanfov(4)
    path = tmp_path / "cam_model_cleaned.ckpt"
    torch.save({"state_dict": ref.state_dict()}, path)
    monkeypatch.setenv("FASTHMR_HUMANFOV", str(path))
    img = np.random.default_rng(3).integers(0, 256, size=(90, 150, 3), dtype=np.uint8)
    f, src = focal_lengths([img])
    assert src == "humanfov"
    np.testing.assert_allclose(f, estimate_focal(ref, [img]), rtol=1e-12)
    monkeypatch.setenv("FASTHMR_HUMANFOV", str(tmp_path / "missing.ckpt"))
    with pytest.raises(CheckpointError, match="missing.ckpt"):
        focal_lengths([img])
