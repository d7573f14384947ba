"""Backbone: exact HMR2.0 sizes, token grid, the merge hook's placement, and presets."""

import pytest
import torch

from fasthmr_lib.config import PRESETS, get_preset
from fasthmr_lib.merging.mask_tome import MaskToMeConfig, mask_tome_step
from fasthmr_lib.merging.state import TokenState
from fasthmr_lib.models.vit import Attention, ViT, set_fused_attention


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.slow
def test_hmr2_backbone_parameter_count_is_exact():
    vit = ViT(get_preset("hmr2").vit)
    assert n_params(vit) == 630_912_000


@pytest.mark.parametrize("name", ["small", "tiny"])
def test_small_presets_keep_192_tokens(name):
    cfg = get_preset(name).vit
    torch.manual_seed(0)
    vit = ViT(cfg).eval()
    x = torch.randn(2, 3, 256, 192)
    tokens = vit.forward_tokens(x, None)
    assert tokens.shape == (2, 192, cfg.embed_dim)
    assert vit(x).shape == (2, cfg.embed_dim, 16, 12)


def test_merge_step_runs_between_attention_and_mlp():
    """The block merges after attention: block 0's MLP already sees the merged count, and the merged
    tokens equal the hand-run sequence attention -> merge step -> MLP."""
    cfg = get_preset("tiny").vit
    torch.manual_seed(0)
    vit = ViT(cfg).eval()
    x = torch.randn(1, 3, 256, 192)
    merging = MaskToMeConfig(use_mask=False, schedule="constant", r=96)
    state = TokenState(merging=merging)
    with torch.no_grad():
        out = vit.forward_tokens(x, state)
        t = vit.patch_embed(x) + vit.pos_embed[:, 1:] + vit.pos_embed[:, :1]
        blk = vit.blocks[0]
        h, metric = blk.attn(blk.norm1(t))
        ref_state = TokenState(merging=merging)
        t = mask_tome_step(t + h, metric, ref_state, 96)
        t = t + blk.mlp(blk.norm2(t))
    assert out.shape[1] == 12  # 192 -> 96 -> 48 -> 24 -> 12
    assert state.tokens_per_block == [96, 48, 24, 12]
    with torch.no_grad():
        first = vit.blocks[0](
            vit.patch_embed(x) + vit.pos_embed[:, 1:] + vit.pos_embed[:, :1], TokenState(merging=merging)
        )
    torch.testing.assert_close(first, t)


def test_unknown_preset_names_the_choices():
    with pytest.raises(KeyError, match="tiny"):
        get_preset("nope")
    assert {"hmr2", "camerahmr", "small", "tiny"} <= set(PRESETS)


def test_conv_stem_keeps_the_token_grid_and_checkpoints_round_trip(tmp_path, fake_body):
    """stem='conv' (Xiao et al. 2021): four stride-2 3x3 convs reach HMR2.0's 16 x 12 grid; the
    BatchNorm statistics travel with an fp16 checkpoint; the patch stem keeps HMR2.0's names."""
    import dataclasses

    from fasthmr_lib.config import ViTConfig
    from fasthmr_lib.models.checkpoints import load_checkpoint, save_checkpoint
    from fasthmr_lib.models.hmr import HMR

    base = get_preset("tiny")
    cfg = base.replace(vit=dataclasses.replace(base.vit, stem="conv"))
    assert cfg.vit.grid == (16, 12)
    torch.manual_seed(0)
    model = HMR(cfg, smpl=fake_body)
    convs = [m for m in model.backbone.patch_embed.stem if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4
    assert convs[-1].out_channels == cfg.vit.embed_dim
    model.train()
    model(torch.randn(4, 3, 256, 256))  # one training-mode pass moves the BatchNorm statistics
    model.eval()
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        ref = model(x)["joints3d"]
        assert model.backbone.forward_tokens(x[..., 32:-32]).shape == (2, 192, cfg.vit.embed_dim)
    out = save_checkpoint(model, tmp_path / "conv", fp16=True)
    loaded = load_checkpoint(out, smpl=fake_body)
    assert loaded.cfg.vit.stem == "conv"
    bn = loaded.backbone.patch_embed.stem[1]
    assert int(bn.num_batches_tracked) == 1
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    with torch.no_grad():
        assert torch.allclose(loaded(x)["joints3d"], ref, atol=2e-2)
    names = {k for k, _ in ViT(get_preset("tiny").vit).named_parameters()}
    assert {"patch_embed.proj.weight", "patch_embed.proj.bias"} <= names
    assert not any("stem" in n for n in names)
    with pytest.raises(ValueError, match="stem"):
        ViTConfig(stem="resnet")
    with pytest.raises(ValueError, match="power-of-2"):
        ViTConfig(stem="conv", patch_size=12)


@pytest.mark.parametrize("with_bias", [False, True])
def test_sdpa_equals_hmr2_explicit_attention(with_bias):
    """PyTorch SDPA with the proportional-attention log-size bias as additive mask == HMR 2.0's explicit
    softmax(q kᵀ · scale + bias) v (1e-5), for outputs and for the keys ToMe reads."""
    torch.manual_seed(0)
    attn = Attention(64, 4).eval()
    x = torch.randn(2, 37, 64)
    bias = torch.log(torch.rand(2, 1, 1, 37) * 3 + 1) if with_bias else None
    with torch.no_grad():
        fused, k1 = attn(x, bias)
        set_fused_attention(attn, False)
        explicit, k2 = attn(x, bias)
    assert not attn.fused
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k1, k2)
    if with_bias:  # the bias matters: dropping it changes the output
        assert not torch.allclose(explicit, attn(x)[0], atol=1e-4)
