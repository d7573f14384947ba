"""ToMe bipartite soft matching core (merging/tokens.py) and the Mask-ToMe step (merging/mask_tome.py)."""

import pytest
import torch

from fasthmr_lib.merging.mask_tome import mask_tome_step, merge_budget, person_tokens
from fasthmr_lib.merging.state import TokenState
from fasthmr_lib.merging.tokens import (
    bipartite_soft_matching,
    initial_source,
    merge_source,
    merge_wavg,
    mergeable_pairs,
    restore_tokens,
)


def test_hand_computed_merge_pairs_most_similar_tokens():
    # tokens 0..5: A = 0,2,4 ; B = 1,3,5. Token 2 equals token 5 exactly -> the top edge.
    m = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0], [0.0, -1.0], [0.6, 0.8]]])
    merge, unmerge, forced = bipartite_soft_matching(m, r=1)
    x = torch.arange(6.0).reshape(1, 6, 1)
    out = merge(x, mode="mean")
    assert out.shape == (1, 5, 1)
    # unmerged A (0 and 4, in edge order) then B tokens 1, 3, (5 averaged with 2 -> 3.5)
    assert sorted(out[0, :2, 0].tolist()) == [0.0, 4.0]
    assert out[0, 2:, 0].tolist() == [1.0, 3.0, 3.5]
    back = unmerge(out)
    assert back[0, :, 0].tolist() == [0.0, 1.0, 3.5, 3.0, 4.0, 3.5]
    assert forced.tolist() == [0]


def test_merging_identical_tokens_is_lossless():
    torch.manual_seed(0)
    base = torch.randn(2, 8, 16)
    x = base.repeat_interleave(2, dim=1)  # tokens 2i and 2i+1 identical -> A_i pairs with B_i
    merge, unmerge, _ = bipartite_soft_matching(x, r=8)
    merged, size = merge_wavg(merge, x)
    assert merged.shape == (2, 8, 16)
    torch.testing.assert_close(unmerge(merged), x)
    assert torch.all(size == 2)


def test_sizes_sum_to_original_count_and_source_is_a_partition():
    torch.manual_seed(1)
    B, N = 3, 192
    x = torch.randn(B, N, 8)
    size, src = None, initial_source(B, N)
    for r in (40, 40, 22):
        merge, _, _ = bipartite_soft_matching(x, r)
        x, size = merge_wavg(merge, x, size)
        src = merge_source(merge, src)
    assert x.shape[1] == 90
    torch.testing.assert_close(size.sum(1)[:, 0], torch.full((B,), float(N)))
    assert torch.all(src.sum(1) == 1)  # every original patch in exactly one token
    torch.testing.assert_close(src.sum(-1), size[..., 0])  # a token's size = patches it holds
    # restore_tokens puts every original patch back: restoring the token index gives a valid id
    ids = restore_tokens(torch.arange(90.0).expand(B, 90)[..., None], src)[..., 0]
    assert ids.shape == (B, N) and ids.min() >= 0 and ids.max() <= 89


def test_protected_tokens_never_merge_when_budget_allows():
    torch.manual_seed(2)
    B, N = 4, 64
    x = torch.randn(B, N, 8)
    protected = torch.rand(B, N) < 0.3
    for r in range(0, int(mergeable_pairs(protected, N, B).min()) + 1):
        merge, _, forced = bipartite_soft_matching(x, r, protected)
        src = merge_source(merge, initial_source(B, N))
        assert forced.sum() == 0
        # a protected original patch must sit alone in its token
        per_token = src.sum(-1)  # (B, N')
        holder = src.argmax(1)  # (B, N0): token of each patch
        for b in range(B):
            for p in torch.nonzero(protected[b])[:, 0]:
                assert per_token[b, holder[b, p]] == 1


def test_forced_merges_counted_when_person_fills_the_crop():
    x = torch.randn(1, 20, 4)
    protected = torch.ones(1, 20, dtype=torch.bool)
    protected[0, :4] = False  # 2 free A, 2 free B
    merge, _, forced = bipartite_soft_matching(x, 5, protected)
    assert merge(x).shape == (1, 15, 4)
    assert forced.item() >= 3  # at most 2 merges are background-only


def test_person_tokens_pools_with_patch_conv_geometry():
    mask = torch.zeros(2, 256, 256)
    # columns 32:224 are what the backbone sees; with pad 2 token (0,0) covers rows -2..13, cols 30..45
    mask[0, 0:14, 32:46] = 1.0  # the whole in-image part of token (0, 0): 14*14/256 = 0.77
    grid = person_tokens(mask, coverage=0.5).reshape(2, 16, 12)
    assert grid[0, 0, 0] and grid[0].sum() == 1
    assert not grid[1].any()
    full = person_tokens(torch.ones(1, 256, 256), coverage=0.5)
    assert full.shape == (1, 192) and full.all()
    with pytest.raises(ValueError, match="coverage"):
        person_tokens(mask, coverage=0.0)


def test_merge_budget_paper_schedule():
    n, seen = 192, []
    for blk in range(8):
        n -= merge_budget(n, blk, layers=3, per_layer=40, min_tokens=90)
        seen.append(n)
    assert seen == [152, 112, 90, 90, 90, 90, 90, 90]


def test_clamp_shortfall_uses_smallest_mergeable_count_in_batch():
    torch.manual_seed(3)
    B, N = 2, 40
    x, metric = torch.randn(B, N, 8), torch.randn(B, N, 8)
    protected = torch.zeros(B, N, dtype=torch.bool)
    protected[1, :34] = True  # second crop: almost all person -> 3 free A tokens
    st = TokenState(protected=protected.clone())
    out = mask_tome_step(x, metric, st, r=15, shortfall="clamp")
    assert out.shape[1] == N - 3 and st.forced_person_merges == [0]
    st2 = TokenState(protected=protected.clone())
    out2 = mask_tome_step(x, metric, st2, r=15, shortfall="force")
    assert out2.shape[1] == N - 15 and st2.forced_person_merges[0] > 0
    # the protected mask followed the tokens: crop 0 still has no person token
    assert not st2.protected[0].any()
