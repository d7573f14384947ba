"""Dense part head (training only): target sampling on the token grid, the logits' layout, and that the
token hook never changes what the HMR model outputs."""

from __future__ import annotations

import pytest
import torch

from fasthmr_lib.models.dense import (
    DenseHead,
    capture_tokens,
    dense_fg_loss,
    dense_loss,
    dense_targets,
    front_back_loss,
    part_accuracy,
)


def test_targets_are_sampled_at_the_sub_cell_centres_of_the_padded_patch_grid():
    # label = f(row) or g(col) of the 256 x 256 crop; the backbone sees columns 32..223
    rows = torch.arange(256)[None, :, None].expand(1, 256, 256)
    cols = torch.arange(256)[None, None, :].expand(1, 256, 256)
    t_rows = dense_targets(rows.to(torch.uint8), (16, 12), sub=4)
    t_cols = dense_targets(cols.to(torch.uint8), (16, 12), sub=4)
    assert t_rows.shape == (1, 64, 48) and t_rows.dtype == torch.int64
    # token i covers rows 16 i - 2 .. 16 i + 13 (padding 2); its 4-px sub-cell k is centred at 16 i + 4 k
    assert t_rows[0, :, 0].tolist() == [16 * i + 4 * k for i in range(16) for k in range(4)]
    assert t_cols[0, 0, :].tolist() == [32 + 16 * j + 4 * k for j in range(12) for k in range(4)]
    # one label per token (sub=1): the token's centre pixel 16 i + 6, clipped at the image edge
    t1 = dense_targets(rows.to(torch.uint8), (16, 12), sub=1)
    assert t1[0, :, 0].tolist() == [16 * i + 6 for i in range(16)]
    with pytest.raises(ValueError, match="expected"):
        dense_targets(torch.zeros(256, 256, dtype=torch.uint8))


def test_head_logits_are_laid_out_on_the_image_grid():
    torch.manual_seed(0)
    head = DenseHead(dim=8, grid=(3, 2), sub=2, num_classes=5)
    tok = torch.randn(2, 6, 8)
    out = head(tok)
    assert out.shape == (2, 5, 6, 4)
    per_token = head.proj(tok).view(2, 6, 2, 2, 5)  # (B, token, sub-row, sub-col, class)
    for i in range(3):
        for j in range(2):
            for a in range(2):
                for b in range(2):
                    torch.testing.assert_close(out[:, :, 2 * i + a, 2 * j + b], per_token[:, 2 * i + j, a, b])
    with pytest.raises(ValueError, match="expected 6 tokens"):
        head(torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="sub must divide"):
        DenseHead(8, (3, 2), sub=3)


def test_loss_and_accuracy_of_perfect_and_wrong_predictions():
    target = torch.tensor([[[0, 5, 29], [17, 0, 41]]])  # front part 4, back part 4, front 16, back 16
    perfect = torch.nn.functional.one_hot(target, 49).permute(0, 3, 1, 2).float() * 50
    assert float(dense_loss(perfect, target)) < 1e-6
    acc = part_accuracy(perfect, target)
    assert acc == {"fg": 1.0, "part_lr": 1.0, "front_back": 1.0}
    # the same parts with front and back exchanged: parts right, sides all wrong
    swapped = torch.where(target > 0, (target - 1 + 24) % 48 + 1, target)
    acc = part_accuracy(torch.nn.functional.one_hot(swapped, 49).permute(0, 3, 1, 2).float(), target)
    assert acc == {"fg": 0.0, "part_lr": 1.0, "front_back": 0.0}


def test_subject_only_losses_ignore_the_background_and_score_the_front_back_bit():
    target = torch.tensor([[[0, 5, 29], [17, 0, 41]]])  # 4 subject cells: front, back, front, back
    torch.manual_seed(0)
    logits = torch.randn(1, 49, 2, 3, requires_grad=True)
    # by hand: cross-entropy of the 4 subject cells only
    cells = [(0, 1), (0, 2), (1, 0), (1, 2)]
    ce = torch.stack([-torch.log_softmax(logits[0, :, i, j], 0)[target[0, i, j]] for i, j in cells]).mean()
    torch.testing.assert_close(dense_fg_loss(logits, target), ce)
    # background logits get no gradient from either subject-only loss
    for fn in (dense_fg_loss, front_back_loss):
        (g,) = torch.autograd.grad(fn(logits, target), logits)
        assert float(g[0, :, 0, 0].abs().sum()) == 0.0 and float(g[0, :, 1, 1].abs().sum()) == 0.0
        assert float(g.abs().sum()) > 0
    # front/back: log-odds of "back" = lse(back labels) - lse(front labels); binary CE by hand
    bits = torch.tensor([0.0, 1.0, 0.0, 1.0])
    lse = torch.logsumexp
    odds = torch.stack([lse(logits[0, 25:, i, j], 0) - lse(logits[0, 1:25, i, j], 0) for i, j in cells])
    ref = torch.nn.functional.binary_cross_entropy_with_logits(odds, bits)
    torch.testing.assert_close(front_back_loss(logits, target), ref)
    # the right side with the wrong part costs nothing in front/back; the wrong side costs a lot
    right_side = torch.where(target > 0, (target - 1 + 3) % 24 + 1 + 24 * ((target - 1) // 24), target)
    wrong_side = torch.where(target > 0, (target - 1 + 24) % 48 + 1, target)
    hot = lambda t: torch.nn.functional.one_hot(t, 49).permute(0, 3, 1, 2).float() * 30  # noqa: E731
    assert float(front_back_loss(hot(right_side), target)) < 1e-6
    assert float(front_back_loss(hot(wrong_side), target)) > 10
    assert float(dense_fg_loss(hot(right_side), target)) > 10
    # no subject in the batch: zero, still differentiable
    empty = torch.zeros_like(target)
    for fn in (dense_fg_loss, front_back_loss):
        z = fn(logits, empty)
        assert float(z) == 0.0 and z.requires_grad


def test_token_hook_leaves_every_output_bit_exact(tiny_model):
    img = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = tiny_model(img)
        with capture_tokens(tiny_model) as box:
            hooked = tiny_model(img)
        after = tiny_model(img)
    assert box["tokens"].shape == (2, 192, tiny_model.cfg.vit.embed_dim)
    for k, v in plain.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, hooked[k]) and torch.equal(v, after[k]), k
    assert not tiny_model.backbone.last_norm._forward_hooks  # removed on exit


def test_facing_read_out_pools_the_subject_tokens_and_its_loss_is_the_binary_cross_entropy():
    from fasthmr_lib.models.dense import facing_loss

    torch.manual_seed(0)
    head = DenseHead(dim=8, grid=(3, 2), sub=2, num_classes=5, facing=True)
    tok = torch.randn(2, 6, 8)
    subject = torch.tensor([[True, True, False, False, False, False], [False] * 6])
    logit = head.facing_logit(tok, subject)
    torch.testing.assert_close(logit[0], head.facing(tok[0, :2].mean(0))[0])  # the subject's tokens only
    torch.testing.assert_close(logit[1], head.facing(tok[1].mean(0))[0])  # none marked: every token
    behind = torch.tensor([True, False])
    expect = -(torch.nn.functional.logsigmoid(logit[0]) + torch.nn.functional.logsigmoid(-logit[1])) / 2
    torch.testing.assert_close(facing_loss(logit, behind), expect)
    # without facing=True the head has no read-out (and its state dict is the one older runs saved)
    plain = DenseHead(dim=8, grid=(3, 2), sub=2, num_classes=5)
    assert set(plain.state_dict()) == {"proj.weight", "proj.bias"}
    with pytest.raises(ValueError, match="facing=True"):
        plain.facing_logit(tok, subject)


def test_the_subject_tokens_and_the_seen_from_behind_bit():
    import math

    from fasthmr_lib.body.orientation import seen_from_behind
    from fasthmr_lib.models.dense import subject_tokens

    lab = torch.zeros(1, 256, 256, dtype=torch.uint8)
    lab[0, 16:32, 32 + 16 : 32 + 32] = 7  # token (row 1, col 1) of the 16 x 12 grid (2 px pad per side)
    mask = subject_tokens(lab, (16, 12))
    assert mask.shape == (1, 192) and mask.sum() == 1 and bool(mask[0, 12 + 1])
    # SMPL bodies face +z in the rest pose, OpenCV cameras look along +z: the identity is seen from behind
    go = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.pi, 0.0], [0.0, math.radians(80), 0.0]])
    assert seen_from_behind(go).tolist() == [True, False, True]
