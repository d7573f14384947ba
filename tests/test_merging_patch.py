"""Mask-ToMe installed in models (merging/patch.py): HMR, bare ViT, timm VisionTransformer."""

import pytest
import torch

from fasthmr_lib.eval import profile as P
from fasthmr_lib.merging import patch
from fasthmr_lib.merging.patch import MaskToMeConfig
from fasthmr_lib.models.vit import Attention


def _inputs(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(B, 3, 256, 256, generator=g)
    mask = torch.zeros(B, 256, 256)
    mask[0, 40:220, 100:160] = 1.0  # a thin person
    mask[1, 10:250, 40:220] = 1.0  # a person filling most of the crop
    return img, mask


def test_merging_off_is_bit_identical(tiny_model):
    img, mask = _inputs()
    with torch.no_grad():
        ref = tiny_model(img)
        patch.apply(tiny_model, MaskToMeConfig(per_layer=0))
        off = tiny_model(img, person_mask=mask)
        patch.remove(tiny_model)
        again = tiny_model(img)
    for k in ("vertices", "rotmat", "head_token", "cam"):
        assert torch.equal(off[k], ref[k]), k
        assert torch.equal(again[k], ref[k]), k
    assert off["tokens_per_block"] == [192] * tiny_model.backbone.depth


def test_tokens_per_block_and_person_tokens_never_merged(tiny_model):
    img, mask = _inputs()
    cfg = MaskToMeConfig(layers=3, per_layer=40, min_tokens=90, trace_source=True, shortfall="clamp")
    patch.apply(tiny_model, cfg)
    state = tiny_model.token_state(mask, 2)
    person = state.protected.clone()
    with torch.no_grad():
        tok = tiny_model.backbone.forward_tokens(img[:, :, :, 32:-32], state)
    # crop 1 has few background tokens: clamping keeps every person token unmerged
    per_token = state.source.sum(-1)
    holder = state.source.argmax(1)
    for b in range(2):
        ids = torch.nonzero(person[b])[:, 0]
        assert torch.all(per_token[b, holder[b, ids]] == 1)
    assert tok.shape[1] == state.tokens_per_block[-1]
    assert state.forced_person_merges == [0] * len(state.forced_person_merges)


def test_paper_schedule_on_tiny_model_and_forced_merges_reported(tiny_model):
    img, mask = _inputs()
    patch.apply(tiny_model, MaskToMeConfig())  # shortfall="force": fixed token count for the batch
    with torch.no_grad():
        out = tiny_model(img, person_mask=mask)
    assert out["tokens_per_block"] == [152, 112, 90, 90]
    with pytest.raises(ValueError, match="person_mask"):
        tiny_model(img)


def test_mask_off_equals_plain_tome(tiny_model):
    img, _ = _inputs()
    empty = torch.zeros(2, 256, 256)  # no person: Mask-ToMe has nothing to protect
    with torch.no_grad():
        patch.apply(tiny_model, MaskToMeConfig(use_mask=True))
        a = tiny_model(img, person_mask=empty)
        patch.apply(tiny_model, MaskToMeConfig(use_mask=False))
        b = tiny_model(img)
    torch.testing.assert_close(a["vertices"], b["vertices"], rtol=0, atol=0)


def test_proportional_attention_equals_duplicated_tokens():
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(1, 6, 32)
    k = 3  # token 5 stands for 3 identical patches
    dup = torch.cat([x, x[:, 5:6].expand(1, k - 1, 32)], 1)
    size = torch.ones(1, 6, 1)
    size[0, 5] = k
    bias = torch.log(size)[:, None, None, :, 0]
    with torch.no_grad():
        merged, _ = attn(x, attn_bias=bias)
        full, _ = attn(dup)
    torch.testing.assert_close(merged, full[:, :6], atol=1e-5, rtol=1e-5)


def test_restore_grid_and_group_ids(tiny_model):
    img, mask = _inputs()
    patch.apply(tiny_model, MaskToMeConfig(trace_source=True))
    state = tiny_model.token_state(mask, 2)
    with torch.no_grad():
        tiny_model.backbone.forward_tokens(img[:, :, :, 32:-32], state)
    grid = patch.restore_grid(state.size[..., 0], state.source)
    assert grid.shape == (2, 16, 12)
    ids = patch.group_ids(state.source)
    # each patch's group has as many patches as the restored size says
    for b in range(2):
        counts = torch.bincount(ids[b].flatten(), minlength=90)
        torch.testing.assert_close(counts[ids[b]].float(), grid[b])


def test_timm_vit_class_token_protected_and_off_identical():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    kw = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=5)
    vit = VisionTransformer(**kw).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = vit(x)
        patch.apply(vit, MaskToMeConfig(schedule="constant", r=0))
        assert torch.equal(vit(x), ref)
        patch.apply(vit, MaskToMeConfig(schedule="constant", r=4, trace_source=True))
        out = vit(x)
        st = patch.last_state(vit)
        patch.remove(vit)
        again = vit(x)
    assert out.shape == ref.shape and not torch.equal(out, ref)
    assert st.tokens_per_block == [13, 9, 5]
    assert st.source[:, 0, 0].eq(1).all() and st.source[:, 0].sum(-1).eq(1).all()  # class token alone
    assert torch.equal(again, ref)


def test_hmr2_tokens_and_macs_match_paper():
    """On the exact hmr2 preset (meta device: no memory): 192/152/112/90 and 52.8 G MACs (Table 12)."""
    model = P.build_meta_model("hmr2", depth=28)  # ECLM: 32 -> 28 blocks
    patch.apply(model, MaskToMeConfig())
    img = torch.zeros(1, 3, 256, 256, device="meta")
    mc = P.count_macs(model, img, person_mask=P.synthetic_person_mask(1).to("meta"))
    assert mc.output["tokens_per_block"] == [152, 112] + [90] * 26
    assert abs(mc.linear_conv / 1e9 - 52.8) / 52.8 < 0.01, mc.linear_conv / 1e9
    assert MaskToMeConfig().tokens_per_block(192, 5) == [152, 112, 90, 90, 90]


def _tome_reference_matching(metric, r, class_token=True, distill_token=False):
    """ToMe's bipartite soft matching (Bolya et al. 2023; facebookresearch/ToMe tome/merge.py), restated
    here independently of fasthmr_lib: class token row and distillation column at −∞, kept A tokens
    sorted when there is a class token, distillation token put second."""
    protected = int(class_token) + int(distill_token)
    r = min(r, (metric.shape[1] - protected) // 2)
    if r <= 0:
        return lambda x, mode="mean": x
    m = metric / metric.norm(dim=-1, keepdim=True)
    scores = m[:, ::2] @ m[:, 1::2].transpose(-1, -2)
    if class_token:
        scores[:, 0, :] = -torch.inf
    if distill_token:
        scores[:, :, 0] = -torch.inf
    node_max, node_idx = scores.max(dim=-1)
    edges = node_max.argsort(dim=-1, descending=True)[..., None]
    unm_idx, src_idx = edges[:, r:], edges[:, :r]
    dst_idx = node_idx[..., None].gather(1, src_idx)
    if class_token:
        unm_idx = unm_idx.sort(dim=1)[0]

    def merge(x, mode="mean"):
        a, b = x[:, ::2], x[:, 1::2]
        n, t1, c = a.shape
        unm = a.gather(1, unm_idx.expand(n, t1 - r, c))
        b = b.scatter_reduce(1, dst_idx.expand(n, r, c), a.gather(1, src_idx.expand(n, r, c)), reduce=mode)
        if distill_token:
            return torch.cat([unm[:, :1], b[:, :1], unm[:, 1:], b[:, 1:]], dim=1)
        return torch.cat([unm, b], dim=1)

    return merge


def _tome_reference_forward(vit, img, r, distill=False):
    """timm VisionTransformer forward with ToMe's timm patch (ToMeBlock / ToMeAttention, prop_attn on)."""
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(img))))
    size = None
    for blk in vit.blocks:
        at, h = blk.attn, blk.norm1(x)
        B, N, C = h.shape
        q, k, v = at.qkv(h).reshape(B, N, 3, at.num_heads, C // at.num_heads).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) * at.scale
        if size is not None:
            logits = logits + size.log()[:, None, None, :, 0]
        out = at.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C))
        x = x + blk.ls1(out)
        merge = _tome_reference_matching(k.mean(1), r, True, distill)
        size = torch.ones_like(x[..., :1]) if size is None else size
        x = merge(x * size, mode="sum")
        size = merge(size, mode="sum")
        x = x / size
        x = x + blk.ls2(blk.mlp(blk.norm2(x)))
    return x


@pytest.mark.parametrize(
    ("img", "patch_size", "depth", "r"),
    [(32, 8, 3, 4), (40, 8, 4, 3), (48, 8, 5, 7), (56, 8, 2, 16), (64, 16, 3, 2), (48, 6, 4, 9)],
)
def test_timm_vit_matches_tome_outputs_and_order(img, patch_size, depth, r):
    """Same weights, same constant r: the patched timm ViT equals ToMe's apply_patch token for token
    (features of every kept token, in order, class token at 0) and in its logits."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(depth * 100 + r)
    vit = VisionTransformer(img_size=img, patch_size=patch_size, embed_dim=32, depth=depth, num_heads=2,
                            num_classes=5).eval()  # fmt: skip
    x = torch.randn(2, 3, img, img)
    with torch.no_grad():
        ref_tokens = _tome_reference_forward(vit, x, r)
        ref_logits = vit.forward_head(vit.norm(ref_tokens))
        patch.apply(vit, MaskToMeConfig(schedule="constant", r=r, prop_attn=True, trace_source=True))
        ours_tokens = vit.forward_features(x)
        ours_logits = vit(x)
        st = patch.last_state(vit)
        patch.remove(vit)
    # forward_features applies the final norm
    torch.testing.assert_close(ours_tokens, vit.norm(ref_tokens), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_logits, ref_logits, atol=1e-5, rtol=1e-5)
    assert st.source[:, 0, 0].eq(1).all() and st.source[:, 0].sum(-1).eq(1).all()  # class token at 0, alone


def test_timm_distilled_vit_keeps_both_prefix_tokens_first():
    """DeiT-style distillation token (num_prefix_tokens 2): ToMe's order [cls, dist, ...] and outputs."""
    from timm.models.deit import VisionTransformerDistilled

    torch.manual_seed(3)
    vit = VisionTransformerDistilled(img_size=40, patch_size=8, embed_dim=32, depth=3, num_heads=2,
                                     num_classes=5).eval()  # fmt: skip
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        ref = _tome_reference_forward(vit, x, 4, distill=True)
        patch.apply(vit, MaskToMeConfig(schedule="constant", r=4, prop_attn=True, trace_source=True))
        ours = vit.forward_features(x)
        st = patch.last_state(vit)
        patch.remove(vit)
    torch.testing.assert_close(ours, vit.norm(ref), atol=1e-5, rtol=1e-5)
    assert st.source[:, 0, 0].eq(1).all() and st.source[:, 1, 1].eq(1).all()
