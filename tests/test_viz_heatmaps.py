"""Merge trace (merging/trace.py) and the token heatmap figures / explorer (viz/heatmaps.py)."""

import numpy as np
import torch

from fasthmr_lib.merging import patch
from fasthmr_lib.merging.patch import MaskToMeConfig
from fasthmr_lib.merging.trace import merge_trace
from fasthmr_lib.viz import heatmaps as H


def _crop():
    img = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 256, 256)
    mask[0, 30:230, 90:170] = 1.0
    return img, mask, np.zeros((256, 256, 3), np.uint8)


def test_merge_trace_records_groups_sizes_attention(tiny_model):
    img, mask, _ = _crop()
    tr = merge_trace(tiny_model, img, mask, MaskToMeConfig())
    assert tr.tokens_per_block == [152, 112, 90, 90]
    assert len(tr.groups) == 4 and tr.groups[0].shape == (16, 12)
    # sizes on the grid: a token of size k covers k patches -> sum over patches of 1/size = #tokens
    for b, n in enumerate(tr.tokens_per_block):
        assert abs((1.0 / tr.sizes[b]).sum().item() - n) < 1e-3
        assert len(torch.unique(tr.groups[b])) == n
    # person patches are never grouped with others (budget allows it here)
    assert torch.all(tr.sizes[-1][tr.person] == 1)
    torch.testing.assert_close(tr.head_attention.sum(), torch.tensor(1.0))
    assert tiny_model.token_merging is None  # left unpatched, as found


def test_trace_figure_explorer_and_static_copies(tiny_model, tmp_path):
    img, mask, image = _crop()
    tr = merge_trace(tiny_model, img, mask, MaskToMeConfig(use_mask=False))
    fig = H.trace_figure(image, tr, 2, "t")
    assert len(fig.data) == 9 and "90 tokens" in fig.layout.title.text
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert [t.showscale for t in heat] == [True, False, True, True]  # colour bars (group ids have none)
    assert all("%{" in t.hovertemplate for t in heat)  # hover names the value
    assert np.asarray(heat[1].customdata).shape == (16, 12, 2)
    paths = H.save_figure(fig, tmp_path / "fig")
    assert paths[0].exists() and (tmp_path / "plotly.min.js").exists()
    png = H.save_trace_png(image, tr, [0, 2], tmp_path / "trace.png")
    assert png.stat().st_size > 1000
    box = H.explorer(tiny_model, [(img, mask, image, "a"), (img, mask * 0, image, "b")])
    fw = box.children[-1]
    before = np.array(fw.data[3].z, dtype=float).copy()
    box.children[1].children[0].value = 0  # block slider -> block 0 (152 tokens)
    assert "152 tokens" in fw.layout.title.text
    after = np.array(fw.data[3].z, dtype=float)
    assert not np.array_equal(np.nan_to_num(before), np.nan_to_num(after))
    assert patch.remove(tiny_model) is tiny_model


def test_crop_drawn_as_photo_not_clipped_white():
    """A float 0..255 crop (what normalized_to_hwc255 returns) is drawn as the photo, not clipped to 1."""
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    np.testing.assert_array_equal(H.crop_uint8(u8.astype(np.float32)), u8)
    np.testing.assert_array_equal(H.crop_uint8(u8), u8)
    np.testing.assert_array_equal(H.crop_uint8(u8 / 255.0), u8)  # 0..1 floats are scaled up
    assert H.crop_uint8(u8.astype(np.float32)).dtype == np.uint8


def test_forced_person_merges_are_marked(tiny_model, tmp_path):
    """A crop that is all person leaves no background: person patches are forced to merge, and the
    figure marks exactly those patches (person & in a group of more than one patch)."""
    img, _, image = _crop()
    mask = torch.ones(1, 256, 256)
    tr = merge_trace(tiny_model, img, mask, MaskToMeConfig())
    assert sum(tr.forced_person_merges) > 0
    forced = H.forced_person_patches(tr, 2)
    sizes = tr.sizes[2].numpy()
    np.testing.assert_array_equal(forced, tr.person.numpy() & (sizes > 1))
    fig = H.trace_figure(image.astype(np.float32), tr, 2, "crowded")
    marks = [t for t in fig.data if t.type == "scatter"][0]
    assert len(marks.x) == int(forced.sum()) > 0
    assert f"{int(forced.sum())} person patches force-merged" in fig.layout.title.text
    assert H.save_trace_png(image, tr, [2], tmp_path / "t.png").stat().st_size > 1000
