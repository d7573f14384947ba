"""Dynamic int8 (the CPU switch): which layers, how close to fp32, and Mask-ToMe still protects persons."""

import pytest
import torch
from torch import nn

from fasthmr_lib.merging import patch
from fasthmr_lib.merging.mask_tome import MaskToMeConfig
from fasthmr_lib.models.quantize import CPU_LAYERS, is_int8, quantize_int8


def _float_linears(model: nn.Module) -> set[str]:
    return {n.rsplit(".", 1)[-1] for n, m in model.backbone.named_modules() if type(m) is nn.Linear}


def _inputs(B: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img = torch.randn(B, 3, 256, 256, generator=g)
    mask = torch.zeros(B, 256, 256)
    mask[:, 40:220, 90:170] = 1.0
    return img, mask


@pytest.mark.parametrize("layers, still_float", [("all", set()), ("mlp", {"qkv", "proj"})])
def test_layer_sets_and_closeness_to_fp32(tiny_model, layers, still_float):
    q = quantize_int8(tiny_model, layers=layers)
    assert is_int8(q) and not is_int8(tiny_model) and q.int8_layers == layers
    assert _float_linears(q) == still_float and _float_linears(tiny_model) == {"qkv", "proj", "fc1", "fc2"}
    assert all(type(m) is nn.Linear for m in q.head.modules() if isinstance(m, nn.Linear))  # head stays float
    img, _ = _inputs()
    with torch.no_grad():
        ref, out = tiny_model(img), q(img)
    assert out["joints3d"].shape == ref["joints3d"].shape
    rel = (out["head_token"] - ref["head_token"]).norm() / ref["head_token"].norm()
    assert 0 < rel < 0.05, float(rel)  # int8 rounding moves the outputs, but only a little


def test_int8_with_mask_tome_never_merges_person_tokens(tiny_model):
    img, mask = _inputs()
    patch.apply(tiny_model, MaskToMeConfig(layers=3, per_layer=40, min_tokens=90, trace_source=True))
    q = quantize_int8(tiny_model, layers=CPU_LAYERS)
    assert q.token_merging == tiny_model.token_merging  # the setting travels with the copy
    state = q.token_state(mask, 2)
    person = state.protected.clone()
    with torch.no_grad():
        q.forward_features(img, state=state)
    assert state.tokens_per_block == [152, 112, 90, 90]
    members = state.source.sum(1)  # (B, 192): how many merged tokens hold each patch (always 1)
    assert torch.equal(members, torch.ones_like(members))
    holder = state.source.argmax(1)  # (B, 192): the token holding each patch
    for b in range(2):
        held = holder[b][person[b]]
        assert held.unique().numel() == int(person[b].sum())  # every person patch alone in its token
        assert torch.all(state.source[b].sum(-1)[held] == 1)


def test_unknown_layer_set_is_refused(tiny_model):
    with pytest.raises(ValueError, match="layers must be one of"):
        quantize_int8(tiny_model, layers="attention")


def test_quantising_shares_weights_but_leaves_the_model_as_it_was(tiny_model):
    """The int8 copy shares the float model's tensors (no deep copy of the weights) yet quantising it
    changes nothing in the original, and gives what quantising a full deep copy gives, bit for bit."""
    import copy
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    img, _ = _inputs()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with torch.no_grad():
        ref = tiny_model(img)["head_token"]
    q = quantize_int8(tiny_model, layers="all")
    norm = dict(tiny_model.named_parameters())["backbone.last_norm.weight"]
    assert dict(q.named_parameters())["backbone.last_norm.weight"] is norm  # shared, not copied
    assert _float_linears(tiny_model) == {"qkv", "proj", "fc1", "fc2"}
    after = tiny_model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert torch.equal(tiny_model(img)["head_token"], ref)
        out = q(img)["head_token"]
    full = copy.deepcopy(tiny_model).eval()  # the former way: a deep copy, quantised by quantize_dynamic
    linears = [n for n, m in full.backbone.named_modules() if isinstance(m, nn.Linear)]
    spec = {n: per_channel_dynamic_qconfig for n in linears}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full.backbone = quantize_dynamic(full.backbone, spec)
    with torch.no_grad():
        assert torch.equal(full(img)["head_token"], out)
