"""Profiler: parameter counts, MACs in both conventions (hand-computed), side-by-side timing harness."""

import pytest
import torch
from torch import nn

from fasthmr_lib.config import get_preset
from fasthmr_lib.eval import profile as P
from fasthmr_lib.merging.mask_tome import MaskToMeConfig


def _head_linear_macs(h, M):
    """Hand count of the SMPL head's nn.Linear MACs for one image, M context tokens."""
    D, inner, C = h.dim, h.heads * h.dim_head, h.context_dim
    per_layer = (D * 3 * inner + inner * D) + (D * inner + C * 2 * inner * M + inner * D) + 2 * D * h.mlp_dim
    return 1 * D + h.depth * per_layer + D * (6 * h.num_joints + h.num_betas + 3)


def _head_attn_macs(h, M):
    inner = h.heads * h.dim_head
    return h.depth * (2 * 1 * 1 * inner + 2 * 1 * M * inner)


def test_macs_tiny_match_hand_count_both_conventions():
    cfg = get_preset("tiny")
    v, N = cfg.vit, cfg.vit.num_tokens
    model = P.build_bench_model("tiny")
    mc = P.count_macs(model, torch.randn(2, 3, 256, 256))
    backbone_lc = v.depth * 12 * v.embed_dim**2 * N + 3 * v.patch_size**2 * v.embed_dim * N
    backbone_attn = v.depth * 2 * N * N * v.embed_dim
    assert mc.by_component["backbone"]["linear_conv"] == backbone_lc
    assert mc.by_component["backbone"]["all"] == backbone_lc + backbone_attn
    assert mc.by_component["head"]["linear_conv"] == _head_linear_macs(cfg.head, N)
    assert mc.by_component["head"]["all"] == _head_linear_macs(cfg.head, N) + _head_attn_macs(cfg.head, N)
    assert mc.linear_conv == backbone_lc + _head_linear_macs(cfg.head, N)
    assert mc.output["tokens_per_block"] == [N] * v.depth
    # the meta-device model counts the same without allocating weights
    meta = P.count_macs(P.build_meta_model("tiny"), torch.randn(2, 3, 256, 256, device="meta"))
    assert meta.linear_conv == mc.linear_conv
    assert P.count_params(P.build_meta_model("tiny")) == P.count_params(model)


def test_count_params_components_and_exclusion():
    m = nn.Module()
    m.backbone = nn.Linear(3, 4)  # 16
    m.head = nn.Linear(4, 2)  # 10
    m.smpl = nn.Linear(2, 2)  # 6, excluded from the total
    m.scale = nn.Parameter(torch.zeros(5))
    c = P.count_params(m)
    assert c == {"backbone": 16, "head": 10, "smpl": 6, "other": 5, "total": 31}


def test_truncate_and_shallow_clone_share_weights():
    base = P.build_bench_model("tiny")
    clone = P.shallow_clone(base)
    P.truncate_depth(clone, 2)
    assert len(base.backbone.blocks) == 4 and len(clone.backbone.blocks) == 2
    assert clone.backbone.blocks[0].attn.qkv.weight is base.backbone.blocks[0].attn.qkv.weight
    clone.token_merging = MaskToMeConfig()
    assert base.token_merging is None
    with pytest.raises(ValueError, match="depth must be in 1..4"):
        P.truncate_depth(P.build_bench_model("tiny"), 9)


def test_synthetic_mask_centred_ellipse():
    m = P.synthetic_person_mask(2, size=256, rx=0.2, ry=0.4)
    assert m.shape == (2, 256, 256) and m[0, 128, 128] == 1 and m[0, 0, 0] == 0
    assert torch.equal(m, m.flip(-1))
    assert abs(m[0].mean().item() - torch.pi * 0.2 * 0.4) < 0.01


def test_time_side_by_side_interleaves_and_reports_ratios():
    order = []
    configs = [("a", lambda: order.append("a")), ("b", lambda: order.append("b"))]
    res = P.time_side_by_side(configs, batch=4, warmup=2, repeats=3)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert [r.name for r in res] == ["a", "b"]
    d = res[0].as_dict()
    assert d["repeats"] == 3 and d["threads"] == torch.get_num_threads() and d["batch"] == 4
    assert d["images_per_s"] == pytest.approx(4 / res[0].median_s)
    txt = P.format_comparison(res)
    assert "speedup" in txt and "1.00x" in txt.splitlines()[1]
    with pytest.raises(ValueError, match="no configurations"):
        P.time_side_by_side([], batch=1)


@pytest.mark.slow
def test_hmr2_params_and_table12_macs():
    """Paper Table 12: HMR2.0 670.2 M params, 122.6 GMACs; 28 blocks 591.5 M, 107.5 G (linear+conv)."""
    for depth, paper_params, paper_macs in ((None, 670.2e6, 122.6e9), (28, 591.5e6, 107.5e9)):
        m = P.build_meta_model("hmr2", depth)
        c = P.count_params(m)
        if depth is None:
            assert c["backbone"] == 630_912_000 and c["head"] == 39_547_037
        assert abs(c["total"] / paper_params - 1) < 0.001
        mc = P.count_macs(m, torch.randn(1, 3, 256, 256, device="meta"))
        assert abs(mc.linear_conv / paper_macs - 1) < 0.01, mc.linear_conv
        assert mc.all > mc.linear_conv * 1.02  # attention matmuls add ~2.5 %


def test_harmonic_fps_reproduces_paper_baselines():
    """Table 1's baseline fps are the harmonic combination of Table 6's components (docs/AMBIGUITIES.md)."""
    assert P.harmonic_fps([1500.0, 333.3, 68.2]) == pytest.approx(
        54.5, abs=0.1
    )  # CameraHMR (54.56; text: 54.6)
    assert P.harmonic_fps([1500.0, 68.2]) == pytest.approx(65.2, abs=0.05)  # HMR 2.0
    assert P.harmonic_fps([10.0, 10.0]) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="positive"):
        P.harmonic_fps([10.0, 0.0])
    c = P.combine_components({"a": 10.0, "b": None, "c": 10.0})
    assert c["fps"] == pytest.approx(5.0) and c["missing"] == ["b"] and set(c["components"]) == {"a", "c"}
    assert P.combine_components({"a": None})["fps"] is None


def test_rss_sampler_sees_a_temporary_allocation():
    import time

    import numpy as np

    with P.RSSPeakSampler() as s:
        a = np.ones(64 * 2**20 // 8)  # 64 MB, touched
        a += 1
        time.sleep(0.05)  # let the sampling thread see it
        del a
    if s.kind == "cpu_rss_peak_minus_start_sampled":
        assert s.peak_delta_mb > 40  # freed before exit: only the sampling thread can have seen it
    with P.RSSPeakSampler() as s2:
        pass
    assert 0 <= s2.peak_delta_mb < 40


def test_stage_times_split_backbone_and_head():
    m = P.build_bench_model("tiny")
    st: dict = {}
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        a = m(x, stage_times=st)
        b = m(x)
    assert set(st) == {"backbone", "head"} and len(st["backbone"]) == 1 and st["head"][0] > 0
    torch.testing.assert_close(a["pose6d"], b["pose6d"], rtol=0, atol=0)


def test_segmenter_reported_absent_without_ultralytics():
    import importlib.util

    net, desc = P.build_segmenter()
    if importlib.util.find_spec("ultralytics") is None:
        assert net is None and desc.startswith("absent") and "ultralytics" in desc
    else:  # the optional extra is installed: a real network from its config
        assert net is not None and "random weights" in desc


def test_op_profile_lists_top_ops():
    m = P.build_bench_model("tiny")
    x = torch.randn(1, 3, 256, 256)
    ops = P.op_profile(lambda: m(x), top=5)
    assert 1 <= len(ops) <= 5 and all(o["self_ms"] >= 0 for o in ops)
    assert ops == sorted(ops, key=lambda o: o["self_ms"], reverse=True)
    assert any(o["op"] in ("aten::addmm", "aten::mm", "aten::linear") for o in ops)
