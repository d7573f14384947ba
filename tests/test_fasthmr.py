"""FastHMR assembly (fasthmr_lib/fasthmr.py): from_parts, save/load as one artefact, video predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fasthmr_lib.body.hybrik import FeatureStats, HybrIKBody
from fasthmr_lib.data.crops import make_crop, normalize_image
from fasthmr_lib.diffusion.decoder import DiffusionDecoder
from fasthmr_lib.diffusion.denoiser import LatentDenoiser
from fasthmr_lib.diffusion.vae import MotionVAE
from fasthmr_lib.fasthmr import CONFIG_FILE, WEIGHTS_FILE, FastHMR
from fasthmr_lib.models.checkpoints import CheckpointError


@pytest.fixture
def tiny_decoder(fake_body):
    torch.manual_seed(1)
    vae, den = MotionVAE("tiny").eval(), LatentDenoiser("tiny").eval()  # F = 16 frames, cond 64 = tiny head
    stats = FeatureStats(torch.randn(133) * 0.1, torch.rand(133) + 0.5)
    return DiffusionDecoder(vae, den, HybrIKBody.from_smpl(fake_body), stats, latent_scale=1.3)


def _video(T=5, H=120, W=160, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    boxes = np.array([[40 + t, 20, 100 + t, 110] for t in range(T)], np.float64)
    masks = np.zeros((T, H, W), bool)
    for t in range(T):
        masks[t, 25:105, 45 + t : 95 + t] = True
    return frames, boxes, masks


def _crops(frames, boxes):
    return torch.stack([normalize_image(make_crop(f, b)["img"]) for f, b in zip(frames, boxes)])


def test_from_parts_identity_and_baseline_untouched(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    fm = FastHMR.from_parts(tiny_model)
    assert fm.depth == 4 and fm.windows == [] and fm.decoder is None and fm.mask_tome is None
    assert fm.hmr is not tiny_model
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        a, b = fm(x), tiny_model(x)
    torch.testing.assert_close(a["rotmat"], b["rotmat"], rtol=0, atol=0)
    torch.testing.assert_close(a["head_token"], b["head_token"], rtol=0, atol=0)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_from_parts_eclm_window_is_eq4(tiny_model):
    fm = FastHMR.from_parts(tiny_model, windows=[(1, 2)])
    assert fm.depth == 3 and fm.baseline_depth == 4 and fm.windows == [(1, 2)]
    assert len(tiny_model.backbone.blocks) == 4  # baseline untouched
    # Eq. 4 on a 2-block window: θ* = θ_1 + (θ_2 − θ_1) = θ_2
    merged = fm.hmr.backbone.blocks[1].state_dict()
    for k, v in tiny_model.backbone.blocks[2].state_dict().items():
        torch.testing.assert_close(merged[k], v)
    for i_new, i_old in ((0, 0), (2, 3)):
        for k, v in tiny_model.backbone.blocks[i_old].state_dict().items():
            assert torch.equal(fm.hmr.backbone.blocks[i_new].state_dict()[k], v)
    with pytest.raises(ValueError, match="window"):
        FastHMR.from_parts(tiny_model, windows=[(2, 4)])


def test_decoder_width_must_match_head(tiny_model, fake_body):
    from fasthmr_lib.diffusion.denoiser import denoiser_config

    vae = MotionVAE("tiny")
    den = LatentDenoiser(denoiser_config("tiny", cond_dim=32))
    dec = DiffusionDecoder(vae, den, HybrIKBody.from_smpl(fake_body), FeatureStats.identity(133))
    with pytest.raises(ValueError, match="head-token width"):
        FastHMR.from_parts(tiny_model, decoder=dec)


def test_save_load_roundtrip_exact(tiny_model, tiny_decoder, fake_body, tmp_path):
    fm = FastHMR.from_parts(tiny_model, windows=[(2, 3)], decoder=tiny_decoder, metadata={"note": "t"})
    d = fm.save(tmp_path / "fm")
    assert (d / WEIGHTS_FILE).is_file() and (d / CONFIG_FILE).is_file()
    doc = json.loads((d / CONFIG_FILE).read_text())
    assert doc["format"] == "fasthmr-model" and doc["dtype"] == "float32"
    assert doc["eclm"] == {"windows": [[2, 3]], "rule": "paper"} and doc["depth"] == 3
    assert doc["model"]["vit"]["depth"] == 3 and doc["baseline_depth"] == 4
    assert doc["decoder"]["num_frames"] == 16 and doc["decoder"]["latent_scale"] == pytest.approx(1.3)
    assert doc["metadata"] == {"note": "t"}
    back = FastHMR.load(d, smpl=fake_body)
    assert back.depth == 3 and back.windows == [(2, 3)] and back.baseline_depth == 4
    for k, v in fm.hmr.state_dict().items():
        if k.startswith(("backbone.", "head.")):
            assert torch.equal(back.hmr.state_dict()[k], v), k
    for k, v in fm.decoder.state_dict().items():
        assert torch.equal(back.decoder.state_dict()[k], v), k
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(back(x)["vertices"], fm(x)["vertices"], rtol=0, atol=0)
    tok, betas = torch.randn(20, 64), torch.randn(20, 10) * 0.3
    torch.testing.assert_close(
        back.decode(tok, betas)["rotmat"], fm.decode(tok, betas)["rotmat"], rtol=0, atol=0
    )


def test_save_fp16_and_errors(tiny_model, fake_body, tmp_path):
    fm = FastHMR.from_parts(tiny_model)
    d = fm.save(tmp_path / "h", fp16=True)
    assert json.loads((d / CONFIG_FILE).read_text())["dtype"] == "float16"
    back = FastHMR.load(d, smpl=fake_body)
    w = back.hmr.backbone.blocks[0].attn.qkv.weight
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, fm.hmr.backbone.blocks[0].attn.qkv.weight.half().float(), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="not found"):
        FastHMR.load(tmp_path / "nowhere", smpl=fake_body)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CONFIG_FILE).write_text(json.dumps({"format": "other", "model": {}}))
    with pytest.raises(CheckpointError, match="not a fasthmr-model"):
        FastHMR.load(tmp_path / "bad", smpl=fake_body)
    (d / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        FastHMR.load(d, smpl=fake_body)


def test_load_rejects_mismatched_weights(tiny_model, fake_body, tmp_path):
    d = FastHMR.from_parts(tiny_model, windows=[(0, 1)]).save(tmp_path / "m")
    doc = json.loads((d / CONFIG_FILE).read_text())
    doc["model"]["vit"]["depth"] = 4  # weights hold 3 blocks
    (d / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="missing keys"):
        FastHMR.load(d, smpl=fake_body)


def test_predict_without_decoder_equals_per_frame_model(tiny_model):
    frames, boxes, _ = _video(T=5)
    fm = FastHMR.from_parts(tiny_model)
    res = fm.predict(frames, boxes, batch_size=2)
    with torch.no_grad():
        ref = tiny_model(_crops(frames, boxes))
    assert not res["smoothed"].any()
    for k in ("rotmat", "betas", "cam_t", "joints3d", "vertices", "head_token"):
        torch.testing.assert_close(res[k], ref[k].float(), rtol=1e-5, atol=1e-6)
    assert res["rotmat"].shape == (5, 24, 3, 3) and res["body_pose"].shape == (5, 69)
    assert res["joints2d_px"].shape == (5, 44, 2) and res["crop_side"].shape == (5,)
    # the crop centre is the box centre (HMR2.0 crop)
    torch.testing.assert_close(res["crop_center"][0], torch.tensor([70.0, 65.0]))


def test_predict_short_video_with_decoder(tiny_model, tiny_decoder):
    frames, boxes, masks = _video(T=5)  # 5 < F = 16: resampled to one window and back
    fm = FastHMR.from_parts(tiny_model, decoder=tiny_decoder)
    res = fm.predict(frames, boxes, masks, batch_size=4, seed=3)
    assert res["smoothed"].all() and res["rotmat"].shape == (5, 24, 3, 3)
    direct = tiny_decoder(res["head_token"], res["betas"], seed=3)
    torch.testing.assert_close(res["rotmat"], direct["rotmat"])
    R = res["rotmat"]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(5, 24, 3, 3), atol=1e-4, rtol=0)
    body = tiny_model.smpl(R[:, :1], R[:, 1:], res["betas"])
    torch.testing.assert_close(res["vertices"], body["vertices"].float())
    assert not torch.equal(res["rotmat"], res["rotmat_head"])  # random decoder != head
    again = fm.predict(frames, boxes, masks, batch_size=5, seed=3)  # batching and seed: deterministic
    torch.testing.assert_close(again["rotmat"], res["rotmat"], rtol=0, atol=1e-3)  # float noise only
    short = fm.predict(frames[:2], boxes[:2], min_decoder_frames=3)
    assert not short["smoothed"].any()


def test_decoder_reading_the_head_pose_in_predict_and_save_load(
    tiny_model, tiny_decoder, fake_body, tmp_path
):
    """A denoiser whose condition is the head token + the head's joints (cond_pose_dims): FastHMR checks the
    token width, predict hands the head's rotmat to the decoder, and save/load keeps the condition."""
    from fasthmr_lib.diffusion.denoiser import denoiser_config

    torch.manual_seed(2)
    den = LatentDenoiser(denoiser_config("tiny", cond_dim=64 + 87, cond_pose_dims=87)).eval()
    t = tiny_decoder
    dec = DiffusionDecoder(t.vae, den, t.body, t.stats, latent_scale=1.3)
    fm = FastHMR.from_parts(tiny_model, decoder=dec)
    frames, boxes, masks = _video(T=5)
    res = fm.predict(frames, boxes, masks, batch_size=4, seed=3)
    direct = dec(res["head_token"], res["betas"], seed=3, rotmat=res["rotmat_head"])
    torch.testing.assert_close(res["rotmat"], direct["rotmat"])
    fm.save(tmp_path / "fm")
    back = FastHMR.load(tmp_path / "fm", smpl=fake_body)
    assert back.decoder.pose_dims == 87 and back.decoder.token_dim == 64
    again = back.predict(frames, boxes, masks, batch_size=4, seed=3)
    torch.testing.assert_close(again["rotmat"], res["rotmat"], rtol=0, atol=1e-4)


def test_predict_long_video_windows(tiny_model, tiny_decoder):
    frames, boxes, _ = _video(T=21, H=96, W=128)  # 21 > F = 16: windows (0,16), (5,21)
    fm = FastHMR.from_parts(tiny_model, decoder=tiny_decoder)
    res = fm.predict(frames, boxes, batch_size=8)
    assert res["rotmat"].shape == (21, 24, 3, 3) and res["smoothed"].all()
    torch.testing.assert_close(res["rotmat"], tiny_decoder(res["head_token"], res["betas"])["rotmat"])


def test_predict_bad_inputs(tiny_model):
    frames, boxes, masks = _video(T=3)
    fm = FastHMR.from_parts(tiny_model)
    with pytest.raises(ValueError, match="boxes"):
        fm.predict(frames, boxes[:2])
    with pytest.raises(ValueError, match="uint8"):
        fm.predict(frames.astype(np.float32), boxes)
    with pytest.raises(ValueError, match="mask"):
        fm.predict(frames, boxes, masks[:, :10])
    with pytest.raises(RuntimeError, match="no diffusion decoder"):
        fm.decode(torch.zeros(3, 64), torch.zeros(3, 10))


def test_mask_tome_assembly_and_roundtrip(tiny_model, fake_body, tmp_path):
    patch = pytest.importorskip("fasthmr_lib.merging.patch", reason="Mask-ToMe module not present yet")
    cfg = patch.MaskToMeConfig(layers=2, per_layer=40, min_tokens=112)
    fm = FastHMR.from_parts(tiny_model, windows=[(2, 3)], mask_tome=cfg)
    assert tiny_model.token_merging is None  # baseline untouched
    frames, boxes, masks = _video(T=3)
    with pytest.raises(ValueError, match="masks"):
        fm.predict(frames, boxes)
    res = fm.predict(frames, boxes, masks)
    assert res["tokens_per_block"] == [152, 112, 112]
    back = FastHMR.load(fm.save(tmp_path / "mt"), smpl=fake_body)
    assert back.mask_tome == cfg
    res2 = back.predict(frames, boxes, masks)
    torch.testing.assert_close(res2["rotmat"], res["rotmat"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="already has token merging"):
        FastHMR.from_parts(fm.hmr)


def test_int8_cpu_switch(tiny_model, tiny_decoder, fake_body, tmp_path):
    """FastHMR(int8=True): the backbone's MLP linears run in dynamic int8 (``int8="all"``: every linear),
    the outputs stay close to the
    float model's, person tokens are still never merged, the merge schedule is unchanged, the float
    model is not touched, and an int8 model is loaded from the float artefact rather than saved."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from fasthmr_lib.merging import patch
    from fasthmr_lib.merging.trace import merge_trace

    cfg = patch.MaskToMeConfig(layers=2, per_layer=40, min_tokens=112)
    fp = FastHMR.from_parts(tiny_model, mask_tome=cfg, decoder=tiny_decoder)
    q = FastHMR.from_parts(tiny_model, mask_tome=cfg, decoder=tiny_decoder, int8=True)
    blk = q.hmr.backbone.blocks[0]  # the shipped layer set (CPU_LAYERS): the MLPs in int8, attention float
    assert isinstance(blk.mlp.fc1, QLinear) and isinstance(blk.mlp.fc2, QLinear) and q.describe()["int8"]
    assert not isinstance(blk.attn.qkv, QLinear) and not isinstance(blk.attn.proj, QLinear)
    q_all = FastHMR.from_parts(tiny_model, mask_tome=cfg, int8="all")
    assert isinstance(q_all.hmr.backbone.blocks[0].attn.qkv, QLinear)
    assert isinstance(fp.hmr.backbone.blocks[0].attn.qkv, torch.nn.Linear)  # float model untouched
    assert not isinstance(q.hmr.head.decpose, QLinear)  # the head stays float
    img = torch.randn(3, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(3, 256, 256)
    mask[:, 40:220, 80:180] = 1
    with torch.no_grad():
        a, b = fp(img, person_mask=mask), q(img, person_mask=mask)
    assert a["tokens_per_block"] == b["tokens_per_block"] == [152, 112, 112, 112]
    dev = (a["joints3d"] - b["joints3d"]).abs().max().item()
    assert 0 < dev < 0.05, dev  # lossy, but metres-scale outputs stay within centimetres
    tr = merge_trace(q.hmr, img[:1], mask[:1], cfg)
    assert torch.all(tr.sizes[-1][tr.person] == 1)  # person tokens never merged in int8 either
    with pytest.raises(ValueError, match="int8 model is not saved"):
        q.save(tmp_path / "q")
    back = FastHMR.load(fp.save(tmp_path / "f"), smpl=fake_body, int8=True)
    with torch.no_grad():
        torch.testing.assert_close(back(img, person_mask=mask)["joints3d"], b["joints3d"], atol=1e-5, rtol=0)
