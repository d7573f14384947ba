"""The ``camerahmr`` convention (fasthmr_lib/models/camera.py) against an independent port of CameraHMR.

The port below is written from CameraHMR's code (github.com/pixelite1201/CameraHMR):
``core/datasets/dataset.py`` (``bbox_scale = (x2y2 - x1y1) / 200``, ``BBOX_SHAPE = None``, ``bbox_size =
max(scale * 200)``, ``generate_image_patch_cv2`` / ``gen_trans_from_patch_cv``, no blur),
``core/camerahmr_model.py`` (``bbox_info``), ``mesh_estimator.convert_to_full_img_cam`` and
``core/utils/train_utils.perspective_projection`` with ``cam_int = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]]``.
The network itself is ours (its equality to CameraHMR's is tested with the checkpoint loaders).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from fasthmr_lib.config import get_preset
from fasthmr_lib.data.crops import CAMERAHMR_CROP, HMR2_CROP, make_crop
from fasthmr_lib.eval.evaluate import call_model
from fasthmr_lib.fasthmr import FastHMR
from fasthmr_lib.models.camera import CropCamera, convention_of, crop_rule_for
from fasthmr_lib.models.checkpoints import load_camerahmr
from fasthmr_lib.models.hmr import HMR

MEAN, STD = 255.0 * np.array([0.485, 0.456, 0.406]), 255.0 * np.array([0.229, 0.224, 0.225])


# ----------------------------------------------------------------------------- the port of CameraHMR
def port_crop(img: np.ndarray, box: np.ndarray) -> dict:
    """CameraHMR ``Dataset.__getitem__`` for one detector box (x1, y1, x2, y2)."""
    center = (box[2:4] + box[0:2]) / 2.0
    scale = (box[2:4] - box[0:2]) / 200.0
    bbox_size = (scale * 200).max()  # expand_to_aspect_ratio(..., None) returns its input
    src_w = src_h = bbox_size * 1.0
    src = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([0, src_h * 0.5], np.float32)
    src[2] = center + np.array([src_w * 0.5, 0], np.float32)
    dst = np.array([[128, 128], [128, 256], [256, 128]], np.float32)
    trans = cv2.getAffineTransform(np.float32(src), np.float32(dst))
    patch = cv2.warpAffine(img, trans, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    x = patch.transpose(2, 0, 1).astype(np.float32)
    for c in range(3):
        x[c] = (x[c] - MEAN[c]) / STD[c]
    return {"img": torch.from_numpy(x), "box_center": center, "box_size": bbox_size, "trans": trans}


def port_forward(model: HMR, img: torch.Tensor, center, size, img_hw, fl) -> dict:
    """CameraHMR ``forward`` + ``get_output_mesh`` + ``perspective_projection`` (our network and body)."""
    B = img.shape[0]
    center = torch.as_tensor(np.asarray(center), dtype=torch.float64).reshape(B, 2).float()
    b = torch.as_tensor(np.asarray(size), dtype=torch.float64).reshape(B).float()
    img_h, img_w = float(img_hw[0]), float(img_hw[1])
    fl = torch.as_tensor(np.asarray(fl), dtype=torch.float64).reshape(B).float()
    cam_int = torch.zeros(B, 3, 3)
    cam_int[:, 0, 0], cam_int[:, 1, 1] = fl, fl
    cam_int[:, 0, 2], cam_int[:, 1, 2], cam_int[:, 2, 2] = img_w / 2.0, img_h / 2.0, 1.0
    info = torch.stack([center[:, 0] - img_w / 2.0, center[:, 1] - img_h / 2.0, b], dim=-1)
    info[:, :2] /= cam_int[:, 0, 0].unsqueeze(-1)
    info[:, 2] /= cam_int[:, 0, 0]
    tokens, _ = model.forward_features(img)
    h = model.head(tokens, bbox_info=info.float())
    s, tx, ty = h["cam"][:, 0], h["cam"][:, 1], h["cam"][:, 2]
    tz = 2.0 * fl / (b * s)
    cx = 2.0 * (center[:, 0] - img_w / 2.0) / (s * b)
    cy = 2.0 * (center[:, 1] - img_h / 2.0) / (s * b)
    cam_t = torch.stack([tx + cx, ty + cy, tz], dim=-1)
    rot = h["rotmat"]
    joints = model.smpl(rot[:, :1], rot[:, 1:], h["betas"])["joints44"]
    pts = joints + cam_t.unsqueeze(1)
    pts = pts / pts[:, :, -1].unsqueeze(-1)
    j2d = torch.einsum("bij,bkj->bki", cam_int, pts.float())[:, :, :-1]
    return {"cam_t": cam_t, "joints2d_px": j2d, "bbox_info": info, "cam": h["cam"]}


# ----------------------------------------------------------------------------- fixtures
def bbox_cfg():
    cfg = get_preset("tiny")
    return cfg.replace(
        name="tiny_bbox", head=dataclasses.replace(cfg.head, token_input="bbox", kp_readout=88)
    )


@pytest.fixture
def camerahmr_model(tmp_path, fake_body):
    """A made checkpoint in CameraHMR's layout, loaded with load_camerahmr."""
    torch.manual_seed(0)
    ref = HMR(bbox_cfg(), smpl=fake_body).eval()
    with torch.no_grad():
        ref.head.init_cam.copy_(torch.tensor([[0.9, 0.05, -0.1]]))
    sd = {("smpl_head." + k[5:] if k.startswith("head.") else k): v for k, v in ref.state_dict().items()}
    path = tmp_path / "camerahmr_checkpoint_cleaned.ckpt"
    torch.save({"state_dict": sd}, path)
    return load_camerahmr(path, cfg=bbox_cfg(), smpl=fake_body)


def video(T=3, H=150, W=200, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    boxes = np.array([[50 + 3 * t, 20, 110 + 3 * t, 140 - t] for t in range(T)], np.float64)
    return frames, boxes


# ----------------------------------------------------------------------------- tests
def test_convention_follows_the_head():
    assert (
        convention_of(get_preset("camerahmr")) == "camerahmr" and convention_of(get_preset("hmr2")) == "hmr2"
    )
    assert crop_rule_for(get_preset("camerahmr")) is CAMERAHMR_CROP
    assert crop_rule_for(get_preset("hmr2")) is HMR2_CROP and crop_rule_for(get_preset("small")) is HMR2_CROP
    with pytest.raises(ValueError, match="unknown crop rule 'cliff'"):
        make_crop(np.zeros((10, 10, 3), np.uint8), np.array([1.0, 1, 5, 5]), rule="cliff")


@pytest.mark.parametrize(
    "box",
    [[50.0, 20.0, 110.0, 140.0], [10.5, 40.0, 190.0, 90.0], [-30.0, 60.0, 80.0, 230.0], [40, 20, 960, 1320]],
)
def test_crop_rule_is_camerahmrs(box):
    img = np.random.default_rng(1).integers(0, 256, size=(1400, 1000, 3), dtype=np.uint8)
    box = np.array(box, np.float64)
    ours, port = make_crop(img, box, rule="camerahmr"), port_crop(img, box)
    np.testing.assert_allclose(ours["center"], port["box_center"], rtol=0, atol=1e-5)
    assert float(ours["side"]) == pytest.approx(port["box_size"], abs=1e-4)
    np.testing.assert_allclose(ours["A"], port["trans"], atol=2e-4)  # float32 getAffineTransform
    diff = np.abs(ours["img"].astype(int) - cv2.warpAffine(img, port["trans"], (256, 256)).astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05  # same warp, no blur (the last box shrinks 5.1x)
    hmr2 = make_crop(img, box)  # HMR 2.0's rule: x1.2 and 192:256, a different crop box
    assert float(hmr2["side"]) > 1.15 * float(ours["side"])


def test_forward_with_camera_equals_camerahmr(camerahmr_model):
    frames, boxes = video()
    crops = [port_crop(f, b) for f, b in zip(frames, boxes)]
    img = torch.stack([c["img"] for c in crops])
    centers = np.stack([c["box_center"] for c in crops])
    sizes = np.array([c["box_size"] for c in crops])
    fl = np.array([310.0, 250.0, 420.0])
    cam = CropCamera.from_numpy(centers, sizes, np.tile([150.0, 200.0], (3, 1)), fl)
    with torch.no_grad():
        out = camerahmr_model(img, camera=cam)
        want = port_forward(camerahmr_model, img, centers, sizes, (150, 200), fl)
    torch.testing.assert_close(cam.bbox_info(), want["bbox_info"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out["cam_t"], want["cam_t"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["joints2d_px"], want["joints2d_px"], rtol=1e-5, atol=1e-3)
    crop_norm = (want["joints2d_px"] - cam.box_center[:, None]) / cam.box_size[:, None, None]
    torch.testing.assert_close(out["joints2d"], crop_norm, rtol=1e-5, atol=1e-5)
    hmr2_tz = 2 * 5000.0 / (256 * out["cam"][:, 0])  # what HMR 2.0's crop formula would have said
    assert (out["cam_t"][:, 2] - hmr2_tz).abs().min() > 1.0
    with torch.no_grad():  # box info alone: the same translation and crop joints, no image pixels
        info_only = camerahmr_model(img, bbox_info=cam.bbox_info())
    torch.testing.assert_close(info_only["cam_t"], out["cam_t"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(info_only["joints2d"], out["joints2d"], rtol=1e-4, atol=1e-5)
    assert "joints2d_px" not in info_only
    with pytest.raises(ValueError, match="not both"):
        camerahmr_model(img, bbox_info=cam.bbox_info(), camera=cam)
    with pytest.raises(ValueError, match="bbox_info"):
        camerahmr_model(img)


def test_predict_equals_camerahmr_pipeline(camerahmr_model):
    frames, boxes = video()
    fm = FastHMR.from_parts(camerahmr_model)
    res = fm.predict(frames, boxes, focal_px=333.0, batch_size=2)
    crops = [port_crop(f, b) for f, b in zip(frames, boxes)]
    img = torch.stack([c["img"] for c in crops])
    centers = np.stack([c["box_center"] for c in crops])
    sizes = np.array([c["box_size"] for c in crops])
    with torch.no_grad():
        want = port_forward(camerahmr_model, img, centers, sizes, (150, 200), np.full(3, 333.0))
    np.testing.assert_allclose(res["crop_center"].numpy(), centers, atol=1e-5)
    np.testing.assert_allclose(res["crop_side"].numpy(), sizes, atol=1e-4)
    # measured: cam_t within 4.8e-7 m, joints within 9.2e-5 px (the port's float32 affine moves a few
    # crop pixels by one grey level)
    torch.testing.assert_close(res["cam_t"], want["cam_t"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(res["joints2d_px"], want["joints2d_px"], rtol=0, atol=1e-3)
    assert res["focal_source"] == "given" and torch.all(res["focal_px"] == 333.0)
    diag = fm.predict(frames, boxes, batch_size=3)
    assert diag["focal_source"] == "image_diagonal"
    torch.testing.assert_close(diag["focal_px"], torch.full((3,), float(np.hypot(150, 200))))


def test_predict_hmr2_names_its_crop_camera(tiny_model):
    frames, boxes = video(T=2)
    res = FastHMR.from_parts(tiny_model).predict(frames, boxes, focal_px=333.0)
    assert res["focal_source"] == "crop_5000"
    torch.testing.assert_close(res["focal_px"], res["crop_side"] * (5000.0 / 256.0))
    torch.testing.assert_close(res["cam_t"][:, 2], 2 * 5000.0 / (256 * res["cam"][:, 0] + 1e-9))


def test_evaluate_builds_the_camera_from_crop_items(camerahmr_model, tiny_model):
    batch = {
        "img": torch.randn(2, 3, 256, 256),
        "crop_center": torch.tensor([[90.0, 80.0], [120.0, 70.0]]),
        "crop_scale": torch.tensor([120.0, 90.0]),
        "img_size": torch.tensor([[150.0, 200.0], [150.0, 200.0]]),
        "focal": torch.tensor([300.0, 500.0]),
    }
    cam = CropCamera(batch["crop_center"], batch["crop_scale"], batch["img_size"], batch["focal"])
    with torch.no_grad():
        out = call_model(camerahmr_model, batch, use_mask=False)
        ref = camerahmr_model(batch["img"], camera=cam)
        hmr2 = call_model(tiny_model, batch, use_mask=False)  # HMR 2.0: camera items unused
        plain = tiny_model(batch["img"])
    torch.testing.assert_close(out["cam_t"], ref["cam_t"], rtol=0, atol=0)
    torch.testing.assert_close(out["joints2d_px"], ref["joints2d_px"], rtol=0, atol=0)
    torch.testing.assert_close(hmr2["cam_t"], plain["cam_t"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="crop_center"):
        call_model(camerahmr_model, {"img": batch["img"]}, use_mask=False)


def test_smoothed_joints_use_the_same_full_image_camera(camerahmr_model, fake_body):
    from fasthmr_lib.body.hybrik import FeatureStats, HybrIKBody
    from fasthmr_lib.diffusion.decoder import DiffusionDecoder
    from fasthmr_lib.diffusion.denoiser import LatentDenoiser
    from fasthmr_lib.diffusion.vae import MotionVAE

    torch.manual_seed(1)
    vae, den = MotionVAE("tiny").eval(), LatentDenoiser("tiny").eval()
    stats = FeatureStats(torch.randn(133) * 0.1, torch.rand(133) + 0.5)
    dec = DiffusionDecoder(vae, den, HybrIKBody.from_smpl(fake_body), stats, latent_scale=1.3)
    frames, boxes = video()
    res = FastHMR.from_parts(camerahmr_model, decoder=dec).predict(frames, boxes, focal_px=333.0)
    assert bool(res["smoothed"].all())
    cam = CropCamera(
        res["crop_center"], res["crop_side"], torch.tensor([[150.0, 200.0]] * 3), res["focal_px"]
    )
    want = cam.project(res["joints3d"], res["cam_t"])
    torch.testing.assert_close(res["joints2d_px"], want["joints2d_px"], rtol=0, atol=1e-4)
    torch.testing.assert_close(res["joints2d"], want["joints2d"], rtol=0, atol=1e-6)
    assert not torch.allclose(res["rotmat"], res["rotmat_head"])  # the decoder's poses were projected


def test_crop_camera_of_and_overlays_use_the_full_image_camera(camerahmr_model, tiny_model):
    import matplotlib

    matplotlib.use("Agg")
    from fasthmr_lib.eval.evaluate import crop_camera_of
    from fasthmr_lib.viz.evaluation import plot_overlays

    item = {
        "img": torch.randn(3, 256, 256),
        "crop_center": torch.tensor([90.0, 80.0]),
        "crop_scale": torch.tensor(120.0),
        "img_size": torch.tensor([150.0, 200.0]),
        "focal": torch.tensor(300.0),
    }
    batch = torch.utils.data.default_collate([item])
    assert crop_camera_of(tiny_model, batch) is None
    from_info = crop_camera_of(camerahmr_model, {"bbox_info": torch.tensor([[0.1, -0.2, 0.4]])})
    assert not from_info.in_pixels and float(from_info.focal[0]) == 1.0
    fig = plot_overlays(camerahmr_model, [item], [0], use_mask=False, ncols=1)
    with torch.no_grad():
        out = call_model(camerahmr_model, batch, use_mask=False)
    cam = crop_camera_of(camerahmr_model, batch)
    uv = (cam.project(out["vertices"], out["cam_t"])["joints2d"][0] + 0.5) * 256
    faces = torch.as_tensor(np.asarray(camerahmr_model.smpl.faces), dtype=torch.long)
    drawn = np.concatenate([p.vertices[:3] for p in fig.axes[0].collections[0].get_paths()])
    want = uv[faces].reshape(-1, 2).numpy()
    np.testing.assert_allclose(np.sort(drawn, axis=0), np.sort(want, axis=0), atol=1e-3)
