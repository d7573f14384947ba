"""ECLM: merge rules (Eq. 4 vs the SLM code), Algorithm 1 on a fake error table, windows on disk."""

from __future__ import annotations

import copy
import zlib

import pytest
import torch

from fasthmr_lib.config import get_preset
from fasthmr_lib.merging import eclm
from fasthmr_lib.models.vit import ViT

LIN = eclm.LINEAR_WEIGHTS


def make_vit(depth: int = 4, seed: int = 0) -> ViT:
    torch.manual_seed(seed)
    cfg = get_preset("tiny").vit
    vit = ViT(type(cfg)(**{**cfg.__dict__, "depth": depth})).eval()
    # LayerNorms start at (1, 0) in every block; randomise so that rules that differ on norms differ here
    with torch.no_grad():
        for blk in vit.blocks:
            for n in (blk.norm1, blk.norm2):
                n.weight.normal_(1.0, 0.2)
                n.bias.normal_(0.0, 0.2)
    return vit


def sd(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_paper_two_block_window_equals_drop():
    vit = make_vit()
    a = eclm.merge_blocks(vit.blocks[1:3], "paper").state_dict()
    b = eclm.merge_blocks(vit.blocks[1:3], "drop").state_dict()
    last = vit.blocks[2].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(a[k], last[k], rtol=0, atol=1e-6)


def test_paper_three_block_window_is_difference_accumulation():
    vit = make_vit()
    t0, t1, t2 = (vit.blocks[i].state_dict() for i in (0, 1, 2))
    m = eclm.merge_blocks(vit.blocks[0:3], "paper").state_dict()
    assert set(m) == set(t0)
    for k in m:  # every tensor, norms and biases included
        torch.testing.assert_close(m[k], t1[k] + t2[k] - t0[k], rtol=1e-6, atol=1e-6)
    # and it is not simply the last block
    assert not torch.allclose(m["attn.qkv.weight"], t2["attn.qkv.weight"])


def test_slm_code_is_last_linear_weights_with_first_norms_and_biases():
    vit = make_vit()
    t0, t2 = vit.blocks[0].state_dict(), vit.blocks[2].state_dict()
    m = eclm.merge_blocks(vit.blocks[0:3], "slm_code").state_dict()
    for k in m:
        want = t2[k] if k in LIN else t0[k]
        torch.testing.assert_close(m[k], want, rtol=0, atol=1e-6, msg=k)
    assert {"norm1.weight", "norm2.bias", "attn.qkv.bias", "mlp.fc2.bias"} <= set(m) - set(LIN)
    # differs from the paper rule on a 3-block window
    p = eclm.merge_blocks(vit.blocks[0:3], "paper").state_dict()
    assert not torch.allclose(m["mlp.fc1.weight"], p["mlp.fc1.weight"])


def test_mean_rule_and_bad_rule():
    vit = make_vit()
    m = eclm.merge_blocks(vit.blocks[1:4], "mean").state_dict()
    ts = [vit.blocks[i].state_dict() for i in (1, 2, 3)]
    for k in m:
        torch.testing.assert_close(m[k], (ts[0][k] + ts[1][k] + ts[2][k]) / 3, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="unknown merge rule"):
        eclm.merge_blocks(vit.blocks[0:2], "avg")
    with pytest.raises(ValueError, match="at least 2"):
        eclm.merge_blocks(vit.blocks[0:1], "paper")


def test_apply_windows_never_modifies_original_and_shortens_depth():
    vit = make_vit(depth=6)
    before = sd(vit)
    new = eclm.apply_windows(vit, [(3, 5), (0, 1)], "paper")
    assert len(vit.blocks) == 6 and len(new.blocks) == 3
    for k, v in vit.state_dict().items():
        assert torch.equal(v, before[k]), k
    # merged block 1 of new = original block 2 (untouched), at a different storage
    assert torch.equal(new.blocks[1].attn.qkv.weight, vit.blocks[2].attn.qkv.weight)
    assert new.blocks[1].attn.qkv.weight.data_ptr() != vit.blocks[2].attn.qkv.weight.data_ptr()
    with torch.no_grad():
        new.blocks[1].attn.qkv.weight.add_(1.0)
    assert torch.equal(vit.blocks[2].attn.qkv.weight, before["blocks.2.attn.qkv.weight"])
    # window [3,5] under paper: θ4 + θ5 − θ3
    torch.testing.assert_close(
        new.blocks[2].mlp.fc1.weight,
        before["blocks.4.mlp.fc1.weight"]
        + before["blocks.5.mlp.fc1.weight"]
        - before["blocks.3.mlp.fc1.weight"],
    )


@pytest.mark.parametrize("bad", [[(2, 2)], [(0, 6)], [(1, 3), (3, 4)], [(-1, 2)]])
def test_bad_windows_are_rejected(bad):
    with pytest.raises(ValueError, match="window"):
        eclm.apply_windows(make_vit(depth=6), bad)


def test_save_reload_windows_gives_identical_outputs(tmp_path):
    vit = make_vit(depth=5)
    merged = eclm.apply_windows(vit, [(2, 4), (0, 1)], "slm_code")
    meta = {"tau_mm": 0.1}
    path = eclm.save_windows(tmp_path / "w.json", [(2, 4), (0, 1)], "slm_code", depth=5, metadata=meta)
    plan = eclm.load_windows(path)
    assert plan.windows == [(0, 1), (2, 4)] and plan.rule == "slm_code" and plan.depth == 5
    again = plan.apply(vit)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        assert torch.equal(merged.forward_tokens(x), again.forward_tokens(x))
        assert not torch.allclose(merged.forward_tokens(x), vit.forward_tokens(x))
    with pytest.raises(ValueError, match="3-block|5-block"):
        plan.apply(make_vit(depth=3))
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="bad.json"):
        eclm.load_windows(tmp_path / "bad.json")


def test_hmr_model_and_token_merging_setting_survive(tiny_model):
    """HMR (`.backbone.blocks`): the merged copy keeps the model's token_merging setting, and merging
    runs on the merged depth (block positions of the new model)."""
    from fasthmr_lib.merging import patch
    from fasthmr_lib.merging.mask_tome import MaskToMeConfig

    m = tiny_model
    cfg = MaskToMeConfig(use_mask=False, layers=2, per_layer=40, min_tokens=90)
    patch.apply(m, cfg)
    before = sd(m)
    new = eclm.apply_windows(m, [(1, 3)], "paper")
    assert len(new.backbone.blocks) == 2 and len(m.backbone.blocks) == 4
    assert new.token_merging == cfg
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    with torch.no_grad():
        out = new(torch.randn(1, 3, 256, 256))
    assert out["joints3d"].shape == (1, 44, 3)
    assert out["tokens_per_block"] == [152, 112]


# --------------------------------------------------------------------------- Algorithm 1
class FakeEvaluator:
    """MPJPE = 50 + table[frozenset(windows)] (unknown configurations must never be asked for)."""

    def __init__(self, table):
        self.table = {frozenset(k): v for k, v in table.items()}
        self.calls = []

    def __call__(self, model):
        ws = frozenset(tuple(w) for w in getattr(model, "eclm_windows", []))
        self.calls.append(sorted(ws, reverse=True))
        if ws not in self.table:
            raise AssertionError(f"unexpected candidate {sorted(ws)}")
        return 50.0 + self.table[ws]


# Worked by hand for L = 6, tau = 1.0:
#  [4,5] +0.2 grow | [3,5] +0.5 grow | [2,5] +1.5 fail -> commit [3,5], high=2 low=1
#  [1,2] (on top of [3,5]) +2.0 fail, 2-block -> slide high=1 low=0
#  [0,1] (on top of [3,5]) +0.9 grow -> low=-1: loop ends with [0,1] pending
TABLE = {
    (): 0.0,
    ((4, 5),): 0.2,
    ((3, 5),): 0.5,
    ((2, 5),): 1.5,
    ((3, 5), (1, 2)): 2.0,
    ((3, 5), (0, 1)): 0.9,
}


@pytest.mark.parametrize("commit_pending", [True, False])
def test_search_matches_hand_worked_windows(tmp_path, commit_pending):
    vit = make_vit(depth=6)
    before = sd(vit)
    ev = FakeEvaluator(TABLE)
    res = eclm.search(
        vit, ev, 1.0, rule="paper", commit_pending=commit_pending, log_csv=tmp_path / "l.csv", progress=False
    )
    assert ev.calls == [[], [(4, 5)], [(3, 5)], [(2, 5)], [(3, 5), (1, 2)], [(3, 5), (0, 1)]]
    if commit_pending:
        assert res.windows == [(3, 5), (0, 1)] and res.pending_window is None
        assert res.depth_after == 3 and res.final_mpjpe == pytest.approx(50.9)
    else:
        assert res.windows == [(3, 5)] and res.pending_window == (0, 1)
        assert res.depth_after == 4 and res.final_mpjpe == pytest.approx(50.5)
    assert res.base_mpjpe == 50.0 and res.depth_before == 6
    log = res.log
    assert list(log.accepted) == [True, True, False, False, True]
    assert list(log.window_lo) == [4, 3, 2, 1, 0] and list(log.window_hi) == [5, 5, 5, 2, 1]
    assert list(log.blocks_left) == [5, 4, 3, 3, 3]
    assert log.delta.tolist() == pytest.approx([0.2, 0.5, 1.5, 2.0, 0.9])
    import pandas as pd

    on_disk = pd.read_csv(tmp_path / "l.csv")
    assert len(on_disk) == 5 and list(on_disk.columns) == list(eclm.LOG_COLUMNS)
    assert all(torch.equal(v, before[k]) for k, v in vit.state_dict().items())
    # rebuilding from the result gives the same depth
    assert len(res.apply(vit).blocks) == res.depth_after


def test_search_threshold_is_strict_and_all_fail_slides_to_bottom():
    vit = make_vit(depth=4)
    # every 2-block window has delta exactly tau -> rejected (MPJPE - base < tau is strict)
    ev = FakeEvaluator({(): 0.0, ((2, 3),): 0.5, ((1, 2),): 0.5, ((0, 1),): 0.5})  # exact in binary
    res = eclm.search(vit, ev, 0.5, progress=False)
    assert res.windows == [] and res.depth_after == 4 and res.final_mpjpe == 50.0
    assert list(res.log.action) == ["slide", "slide", "slide"]


def test_search_grows_to_block_zero_and_commits_whole_stack():
    vit = make_vit(depth=4)
    ev = FakeEvaluator({(): 0.0, ((2, 3),): 0.0, ((1, 3),): 0.05, ((0, 3),): 0.09})
    res = eclm.search(vit, ev, 0.1, progress=False)
    assert res.windows == [(0, 3)] and res.depth_after == 1
    res2 = eclm.search(vit, FakeEvaluator(ev.table), 0.1, progress=False, commit_pending=False)
    assert res2.windows == [] and res2.pending_window == (0, 3) and res2.final_mpjpe == 50.0


def test_search_with_a_real_evaluator_keeps_original():
    vit = make_vit(depth=4)
    before = sd(vit)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        ref = vit.forward_tokens(x)

    def evaluator(m):
        with torch.no_grad():
            return float((m.forward_tokens(x) - ref).norm(dim=-1).mean() * 1000)

    res = eclm.search(vit, evaluator, 1e9, progress=False)  # everything accepted
    assert res.windows == [(0, 3)]
    assert all(torch.equal(v, before[k]) for k, v in vit.state_dict().items())


def _algorithm1_literal(depth, mpjpe_of, tau, commit_pending):
    """Algorithm 1's pseudo-code on window lists only (``mpjpe_of``: windows -> MPJPE, mm); returns the
    committed windows, the pending window and the action of every candidate."""
    base = mpjpe_of([])
    committed, actions = [], []
    high, low = depth - 1, depth - 2
    while low >= 0:
        if mpjpe_of([*committed, (low, high)]) - base < tau:
            actions.append("grow")
            low -= 1
        elif low + 1 != high:
            actions.append(f"commit [{low + 1}, {high}]")
            committed.append((low + 1, high))
            high = low
            low = high - 1
        else:
            actions.append("slide")
            high -= 1
            low -= 1
    pending = (low + 1, high) if low + 1 != high else None
    if pending is not None and commit_pending:
        committed.append(pending)
        actions[-1] += f"; end of loop: commit pending [{pending[0]}, {pending[1]}]"
        pending = None
    return committed, pending, actions


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("commit_pending", [True, False])
def test_search_equals_literal_transcription_on_random_errors(seed, commit_pending):
    depth = 4 + seed % 3

    def mpjpe_of(ws):  # deterministic pseudo-random error in [50, 51) mm per configuration
        key = repr(sorted(tuple(w) for w in ws)).encode()
        return 50.0 + (zlib.crc32(key) * (seed + 1) % 1000) / 1000 if ws else 50.0

    want, want_pending, want_actions = _algorithm1_literal(depth, mpjpe_of, 0.5, commit_pending)
    res = eclm.search(
        make_vit(depth=depth),
        lambda m: mpjpe_of(getattr(m, "eclm_windows", [])),
        0.5,
        commit_pending=commit_pending,
        progress=False,
    )
    assert res.windows == want and res.pending_window == want_pending
    assert list(res.log.action) == want_actions and list(res.log.step) == list(range(len(want_actions)))
    assert res.final_mpjpe == mpjpe_of(want) and res.depth_after == eclm.depth_after(depth, want)


# --------------------------------------------------------------------------- selection data
def test_sample_per_clip_uniform_and_random():
    clips = ["a"] * 10 + ["b"] * 3 + ["c"] * 7
    idx = eclm.sample_per_clip(clips, 4)
    assert idx == [0, 3, 6, 9, 10, 11, 12, 13, 15, 17, 19]
    r1 = eclm.sample_per_clip(clips, 4, mode="random", seed=1)
    assert r1 == eclm.sample_per_clip(clips, 4, mode="random", seed=1)
    assert sum(1 for i in r1 if clips[i] == "a") == 4 and sum(1 for i in r1 if clips[i] == "b") == 3
    # the paper's numbers: 17 clips x 80 frames = 1,360
    assert len(eclm.sample_per_clip([f"c{i // 500}" for i in range(17 * 500)], 80)) == 1360


def test_selection_refuses_test_split():
    with pytest.raises(ValueError, match="calibration"):
        eclm.check_selection_split("test")
    assert eclm.check_selection_split("test", allow_test=True) == "test"
    assert eclm.check_selection_split("calib") == "calib"


def test_dropped_view_and_kept_blocks():
    assert eclm.dropped_view([(3, 5), (0, 1)]) == [0, 3, 4]
    assert eclm.kept_blocks(6, [(3, 5), (0, 1)]) == [[0, 1], [2], [3, 4, 5]]
    assert copy.deepcopy(eclm.RULES) == ("paper", "slm_code", "mean", "drop")


def test_sweep_measures_base_once_and_writes_logs(tmp_path):
    vit = make_vit(depth=6)
    ev = FakeEvaluator({**TABLE, ((3, 4),): 5.0, ((2, 3),): 5.0, ((1, 2),): 5.0, ((0, 1),): 5.0})
    res = eclm.sweep(vit, ev, [1.0, 0.1], log_dir=tmp_path, progress=False)
    assert [r.windows for r in res] == [[(3, 5), (0, 1)], []]
    assert ev.calls.count([]) == 1  # base evaluated once for the whole sweep
    plan = eclm.load_windows(tmp_path / "eclm_paper_tau1_windows.json")
    assert plan.windows == [(0, 1), (3, 5)] and plan.metadata["tau_mm"] == 1.0
    assert (tmp_path / "eclm_paper_tau0.1_log.csv").exists()
    row = res[0].summary()
    assert row["blocks_after"] == 3 and row["dropped_blocks"] == "[0, 3, 4]"


def test_a_shared_memo_evaluates_each_configuration_once_and_changes_no_decision(tmp_path):
    table = {**TABLE, ((3, 4),): 5.0, ((2, 3),): 5.0, ((1, 2),): 5.0, ((0, 1),): 5.0}
    vit = make_vit(depth=6)
    plain = [eclm.search(vit, FakeEvaluator(table), tau, progress=False) for tau in (1.0, 0.1, 1.0)]
    ev, memo = FakeEvaluator(table), {}
    swept = eclm.sweep(vit, ev, [1.0, 0.1], progress=False, memo=memo)
    again = eclm.search(vit, ev, 1.0, progress=False, memo=memo)  # e.g. the rule comparison after the sweep
    for a, b in zip(plain, [*swept, again], strict=True):
        assert a.windows == b.windows and a.final_mpjpe == b.final_mpjpe
        assert a.log.drop(columns="wall_s").equals(b.log.drop(columns="wall_s"))
    keys = [tuple(sorted(c)) for c in ev.calls]
    assert len(keys) == len(set(keys))  # nothing evaluated twice
    assert len(ev.calls) == len({k for k in memo})  # every evaluation is in the memo
    assert (again.log.wall_s == 0).all()  # all taken from the memo
