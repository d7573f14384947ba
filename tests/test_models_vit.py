"""Backbone: exact HMR2.0 sizes, token grid, the merge hook's placement, and presets."""

import pytest
import torch

from fasthmr_lib.config import PRESETS, get_preset
from fasthmr_lib.merging.state import TokenState
from fasthmr_lib.models.vit import ViT


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


def test_token_merge_hook_runs_between_attention_and_mlp():
    cfg = get_preset("tiny").vit
    torch.manual_seed(0)
    vit = ViT(cfg).eval()
    seen = []

    def drop_last_half(x, metric, state):
        seen.append((x.shape[1], metric.shape))
        return x[:, : x.shape[1] // 2]

    vit.blocks[0].token_merge = drop_last_half
    x = torch.randn(1, 3, 256, 192)
    state = TokenState()
    out = vit.forward_tokens(x, state)
    assert seen[0][0] == 192 and seen[0][1][1] == 192
    assert out.shape[1] == 96
    assert state.tokens_per_block == [96] + [96] * (cfg.depth - 1)


def test_unknown_preset_names_the_choices():
    with pytest.raises(KeyError, match="tiny"):
        get_preset("nope")
    assert {"hmr2", "camerahmr", "small", "tiny"} <= set(PRESETS)
