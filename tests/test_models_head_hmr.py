"""SMPL head and HMR model: exact HMR2.0 sizes/names, 6D rotations, camera formulas, output contract."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fasthmr_lib.config import get_preset
from fasthmr_lib.merging.mask_tome import MaskToMeConfig
from fasthmr_lib.merging.state import TokenState
from fasthmr_lib.models.head import CrossAttention, SMPLHead, rot6d_to_rotmat
from fasthmr_lib.models.hmr import (
    HMR,
    cam_crop_to_full,
    cliff_bbox_info,
    project_crop,
    weak_cam_to_translation,
)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def tiny_bbox_cfg():
    cfg = get_preset("tiny")
    return cfg.replace(
        name="tiny_bbox", head=dataclasses.replace(cfg.head, token_input="bbox", kp_readout=88)
    )


@pytest.fixture
def mean_params():
    return {"pose": torch.randn(144).numpy(), "shape": torch.randn(10).numpy(), "cam": [0.9, 0.1, -0.1]}


def test_hmr2_head_parameter_count_and_key_names(mean_params):
    head = SMPLHead(get_preset("hmr2").head, mean_params)
    assert n_params(head) == 39_547_037  # HMR2.0 smpl_head (parameters only; init_* are buffers)
    sd = head.state_dict()
    assert len(sd) == 114  # 4D-Humans: 114 ``smpl_head.`` entries
    expect = {
        "init_body_pose": (1, 144),
        "init_betas": (1, 10),
        "init_cam": (1, 3),
        "transformer.pos_embedding": (1, 1, 1024),
        "transformer.to_token_embedding.weight": (1024, 1),
        "transformer.transformer.layers.5.0.fn.to_qkv.weight": (1536, 1024),
        "transformer.transformer.layers.0.0.fn.to_out.0.weight": (1024, 512),
        "transformer.transformer.layers.0.1.fn.to_kv.weight": (1024, 1280),
        "transformer.transformer.layers.0.1.fn.to_q.weight": (512, 1024),
        "transformer.transformer.layers.0.2.fn.net.0.weight": (1024, 1024),
        "transformer.transformer.layers.0.2.fn.net.3.bias": (1024,),
        "transformer.transformer.layers.3.1.norm.weight": (1024,),
        "decpose.weight": (144, 1024),
        "decshape.weight": (10, 1024),
        "deccam.weight": (3, 1024),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k


def test_camerahmr_head_adds_bbox_token_and_keypoint_readout(mean_params):
    head = SMPLHead(get_preset("camerahmr").head, mean_params)
    # token = [bbox 3, pose 144, betas 10, cam 3] = 160 inputs instead of 1; deckp Linear(1024, 88)
    assert n_params(head) == 39_547_037 + 159 * 1024 + (1024 * 88 + 88)
    assert tuple(head.transformer.to_token_embedding.weight.shape) == (1024, 160)


def hmr2_rot6d(x):  # 4D-Humans hmr2/utils/geometry.py rot6d_to_rotmat, written out for comparison
    x = x.reshape(-1, 2, 3).permute(0, 2, 1)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = F.normalize(a1)
    b2 = F.normalize(a2 - torch.einsum("bi,bi->b", b1, a2).unsqueeze(-1) * b1)
    return torch.stack((b1, b2, torch.cross(b1, b2, dim=-1)), dim=-1)


def test_rot6d_to_rotmat_is_orthonormal_and_matches_hmr2_layout():
    torch.manual_seed(0)
    x = torch.randn(50, 6)
    R = rot6d_to_rotmat(x)
    eye = torch.eye(3).expand(50, 3, 3)
    torch.testing.assert_close(R.transpose(1, 2) @ R, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(50), atol=1e-5, rtol=0)
    torch.testing.assert_close(R, hmr2_rot6d(x), atol=1e-6, rtol=0)
    # hand case: a1 = (2,0,0), a2 = (1,3,0) -> columns e1, e2, e3
    torch.testing.assert_close(rot6d_to_rotmat(torch.tensor([2.0, 0, 0, 1, 3, 0])), torch.eye(3))
    # a1 = (0,0,5), a2 = (0,1,1) -> b1 = e3, b2 = e2, b3 = e3 x e2 = -e1
    R = rot6d_to_rotmat(torch.tensor([0.0, 0, 5, 0, 1, 1]))
    torch.testing.assert_close(R, torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]))


def test_camera_formulas_hand_cases():
    cam = torch.tensor([[0.5, 0.1, -0.2]])
    t = weak_cam_to_translation(cam, 5000.0, 256.0)
    torch.testing.assert_close(t, torch.tensor([[0.1, -0.2, 2 * 5000 / (256 * 0.5)]]))  # tz = 78.125
    assert t[0, 2].item() == pytest.approx(78.125)
    p = project_crop(torch.tensor([[[1.0, 2.0, 3.0]]]), torch.tensor([[0.0, 0.0, 7.0]]), 5000.0, 256.0)
    torch.testing.assert_close(p, torch.tensor([[[0.1, 0.2]]]) * (5000 / 256))
    # CLIFF box info: box centred at (700, 300) in a 1000x600 (W x H) image, size 200, f = 1000
    center, size, hw = torch.tensor([[700.0, 300.0]]), torch.tensor([200.0]), torch.tensor([[600.0, 1000.0]])
    info = cliff_bbox_info(center, size, hw, torch.tensor([1000.0]))
    torch.testing.assert_close(info, torch.tensor([[0.2, 0.0, 0.2]]))
    # crop -> full: s = 1, b = 200 -> tz = 2F/200; tx' = tx + 2 * 200 / 200
    full = cam_crop_to_full(torch.tensor([[1.0, 0.5, 0.0]]), center, size, hw, 1000.0)
    torch.testing.assert_close(full, torch.tensor([[2.5, 0.0, 10.0]]))


def test_hmr_outputs_contract(tiny_model, fake_body):
    torch.manual_seed(1)
    img = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        out = tiny_model(img)
    shapes = {
        "rotmat": (2, 24, 3, 3), "betas": (2, 10), "cam": (2, 3), "cam_t": (2, 3), "joints3d": (2, 44, 3),
        "vertices": (2, 6890, 3), "joints2d": (2, 44, 2), "head_token": (2, 64), "pose6d": (2, 144),
    }  # fmt: skip
    for k, s in shapes.items():
        assert tuple(out[k].shape) == s, k
    assert "tokens_per_block" not in out
    torch.testing.assert_close(out["cam_t"], weak_cam_to_translation(out["cam"]))
    torch.testing.assert_close(out["joints2d"], project_crop(out["joints3d"], out["cam_t"]))
    # the SMPL outputs are the body model's for the predicted parameters
    ref = fake_body(out["rotmat"][:, :1], out["rotmat"][:, 1:], out["betas"])
    torch.testing.assert_close(out["joints3d"], ref["joints44"])
    torch.testing.assert_close(out["vertices"], ref["vertices"])
    with pytest.raises(ValueError, match="256"):
        tiny_model(torch.randn(1, 3, 256, 192))


def test_backbone_sees_only_the_central_192_columns(tiny_model):
    torch.manual_seed(2)
    img = torch.randn(1, 3, 256, 256)
    img2 = img.clone()
    img2[..., :32] = 5.0
    img2[..., -32:] = -5.0
    with torch.no_grad():
        a, b = tiny_model(img), tiny_model(img2)
    torch.testing.assert_close(a["head_token"], b["head_token"], atol=0, rtol=0)
    img2[..., 100] += 1.0
    with torch.no_grad():
        c = tiny_model(img2)
    assert not torch.allclose(a["head_token"], c["head_token"])


def test_head_starts_from_the_mean_parameters(fake_body):
    torch.manual_seed(0)
    model = HMR(get_preset("tiny"), smpl=fake_body).eval()
    for lin in (model.head.decpose, model.head.decshape, model.head.deccam):
        torch.nn.init.zeros_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
    with torch.no_grad():
        out = model(torch.randn(3, 3, 256, 256))
    mp = fake_body.mean_params
    torch.testing.assert_close(out["pose6d"], torch.as_tensor(mp["pose"]).expand(3, -1))
    torch.testing.assert_close(out["betas"], torch.as_tensor(mp["shape"]).expand(3, -1))
    torch.testing.assert_close(out["cam"], torch.as_tensor(mp["cam"]).expand(3, -1))


def test_token_merging_setting_builds_one_state_per_forward(tiny_model):
    """``token_merging`` set -> forward builds a TokenState from it and the mask, reports the counts;
    forward_features + forward_head is the same computation as forward."""
    tiny_model.token_merging = MaskToMeConfig(layers=1, per_layer=40, min_tokens=90)
    mask = torch.zeros(2, 256, 256)
    mask[:, 64:192, 96:160] = 1
    img = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        out = tiny_model(img, person_mask=mask)
        tokens, state = tiny_model.forward_features(img, mask)
        head = tiny_model.forward_head(tokens, state)
    assert out["tokens_per_block"] == [152] * 4 == state.tokens_per_block
    assert state.merging is tiny_model.token_merging and state.protected.shape == (2, 152)
    torch.testing.assert_close(head["token"], out["head_token"])
    torch.testing.assert_close(head["cam_t"], out["cam_t"])
    with pytest.raises(ValueError, match="needs person_mask"):
        tiny_model(img)


def test_cross_attention_log_size_bias_equals_duplicated_tokens():
    """ToMe proportional attention: one token with size 2 + bias log 2 == the token present twice."""
    torch.manual_seed(0)
    ca = CrossAttention(dim=16, context_dim=8, heads=2, dim_head=4)
    x = torch.randn(3, 1, 16)
    a, b = torch.randn(3, 1, 8), torch.randn(3, 1, 8)
    dup = ca(x, torch.cat([a, b, b], 1))
    size = torch.tensor([1.0, 2.0]).expand(3, 2)
    merged = ca(x, torch.cat([a, b], 1), bias=torch.log(size)[:, None, None, :])
    torch.testing.assert_close(dup, merged, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(dup, ca(x, torch.cat([a, b], 1)), atol=1e-4)


def test_head_size_bias_is_used_only_when_enabled(tiny_model):
    size = torch.ones(1, 192, 1)
    size[:, :50] = 3.0
    img = torch.randn(1, 3, 256, 256)
    off = MaskToMeConfig(per_layer=0, use_mask=False)
    on = MaskToMeConfig(per_layer=0, use_mask=False, head_size_bias=True)

    def head_token(cfg, sizes):
        with torch.no_grad():
            tokens, state = tiny_model.forward_features(img, state=TokenState(merging=cfg))
            state.size = sizes  # as if merged
            return tiny_model.forward_head(tokens, state)["token"]

    plain = head_token(off, size)
    assert not torch.allclose(plain, head_token(on, size))
    # sizes all 1 -> log 1 = 0 -> no change
    torch.testing.assert_close(head_token(on, torch.ones(1, 192, 1)), plain)


def test_bbox_conditioned_head_needs_and_uses_bbox_info(fake_body):
    torch.manual_seed(0)
    model = HMR(tiny_bbox_cfg(), smpl=fake_body).eval()
    img = torch.randn(2, 3, 256, 256)
    with pytest.raises(ValueError, match="bbox_info"):
        model(img)
    with torch.no_grad():
        a = model(img, bbox_info=torch.zeros(2, 3))
        b = model(img, bbox_info=torch.tensor([[0.3, -0.1, 0.5]] * 2))
    assert not torch.allclose(a["head_token"], b["head_token"])
    assert a["rotmat"].shape == (2, 24, 3, 3)
