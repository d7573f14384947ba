"""Where the decoder loses accuracy (eval/decoder_analysis.py) and the seeded ablations
(eval/decoder_ablations.py): stages with known answers on the fake body, seed aggregation, ordering
verdicts, the seed loop's per-seed cache, and notebook 04 on the tiny profile writing the new tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import roma
import torch

from fasthmr_lib.body.hybrik import FeatureStats
from fasthmr_lib.diffusion import decoder as D
from fasthmr_lib.diffusion.vae import MotionVAE
from fasthmr_lib.eval import decoder_ablations as DAB
from fasthmr_lib.eval import decoder_analysis as DAN


def _gt_clip(seed: int, T: int = 20) -> dict[str, np.ndarray]:
    from fasthmr_lib.data import motion as M

    c = M.generate_clip("blend", T, seed=seed)
    pose = np.concatenate([c["global_orient"], c["body_pose"]], 1).astype(np.float32)
    return {"pose": pose, "betas": np.broadcast_to(c["betas"], (T, 10)).astype(np.float32).copy()}


@pytest.fixture
def clips():
    """Two GT clips and head outputs: tokens random, head θ = GT body pose with the facing direction turned
    by 180° about the vertical, head β = GT β (so only the head's facing direction is wrong)."""
    gt, tok = {}, {}
    flip = roma.rotvec_to_rotmat(torch.tensor([0.0, math.pi, 0.0]))
    for k, cid in enumerate(("a", "b")):
        g = _gt_clip(k)
        gt[cid] = g
        R = roma.rotvec_to_rotmat(torch.as_tensor(g["pose"]).reshape(-1, 24, 3))
        R[:, 0] = flip @ R[:, 0]
        frames = np.arange(2, 20) if cid == "b" else np.arange(20)  # clip b: the first frames not evaluated
        t = torch.randn(len(frames), 64, generator=torch.Generator().manual_seed(k)).numpy()
        tok[cid] = {"tokens": t,
                    "betas": g["betas"][frames], "rotmat": R[frames].numpy(), "frames": frames}  # fmt: skip
    return gt, tok


def test_accuracy_loss_stages_known_answers(fake_body, tiny_decoder, clips):
    gt, tok = clips
    frames = DAN.accuracy_loss_frames(fake_body, tiny_decoder, tok, gt, protocol="3dpw14", seed=1)
    summary, per_joint = DAN.accuracy_loss_tables(frames)
    s = summary.set_index("stage")
    assert list(summary.stage) == list(DAN.STAGE_NAMES) and s.frames.eq(20 + 18).all()
    # the representation's floor: GT -> features -> IK gives the GT back
    assert s.loc["hybrik_roundtrip", "mpjpe"] < 1.0 and s.loc["hybrik_roundtrip", "orient_deg"] < 0.1
    # the head's body pose and shape are the GT's, its facing direction is turned by 180°
    assert s.loc["head", "orient_deg"] == pytest.approx(180.0, abs=0.1)
    assert s.loc["head", "pa_mpjpe"] < 1.0 and s.loc["head", "mpjpe"] > 50.0
    assert s.loc["head_oracle_orient", "mpjpe"] < 1e-3 and s.loc["head_oracle_orient", "orient_deg"] < 1e-3
    # the GT facing direction swapped in: zero orientation error, PA-MPJPE unchanged (rotation invariant)
    for st in ("decoder_oracle_orient", "decoder_oracle_orient_betas"):
        assert s.loc[st, "orient_deg"] < 1e-3
    assert s.loc["decoder", "orient_deg"] > 1.0
    assert s.loc["decoder_oracle_orient", "pa_mpjpe"] == pytest.approx(s.loc["decoder", "pa_mpjpe"], rel=1e-4)
    # per joint: a stage's joints average to its MPJPE; 14 LSP joints per stage
    pj = per_joint.groupby("stage", sort=False)["mpjpe_mm"].mean()
    np.testing.assert_allclose(pj.reindex(summary.stage).to_numpy(), summary.mpjpe.to_numpy(), rtol=1e-5)
    assert (per_joint.groupby("stage").size() == 14).all() and per_joint.joint.iloc[0] == "R ankle"


def test_stage_predictions_match_the_pipeline_parts(tiny_decoder, clips):
    gt, tok = clips
    p = DAN.stage_predictions(tiny_decoder, tok, gt, seed=1)
    v, fr = tok["b"], tok["b"]["frames"]
    gb = torch.as_tensor(gt["b"]["betas"][fr])
    Rg = roma.rotvec_to_rotmat(torch.as_tensor(gt["b"]["pose"][fr]).reshape(-1, 24, 3))
    hb = tiny_decoder.body
    rec = D.reconstruct_features(tiny_decoder.vae, tiny_decoder.stats, hb.encode(Rg, gb))
    torch.testing.assert_close(p["vae_recon"]["b"]["rotmat"], hb.decode(rec, gb))
    d = tiny_decoder(torch.as_tensor(v["tokens"]), torch.as_tensor(v["betas"]), seed=1)
    torch.testing.assert_close(p["decoder"]["b"]["rotmat"], d["rotmat"])
    torch.testing.assert_close(p["decoder_oracle_orient"]["b"]["rotmat"][:, 1:], d["rotmat"][:, 1:])
    torch.testing.assert_close(p["decoder_oracle_orient"]["b"]["rotmat"][:, 0], Rg[:, 0])
    R_gb = tiny_decoder.features_to_pose(d["features"], gb)["rotmat"]  # IK redone with the GT shape
    torch.testing.assert_close(p["decoder_oracle_orient_betas"]["b"]["rotmat"][:, 1:], R_gb[:, 1:])
    torch.testing.assert_close(p["decoder_oracle_orient_betas"]["b"]["betas"], gb)
    with pytest.raises(ValueError, match="unknown stages"):
        DAN.stage_predictions(tiny_decoder, tok, gt, stages=("nope",))


def test_gaussian_smooth_known_answers():
    x = torch.zeros(21, 2)
    x[10, 0] = 1.0  # an impulse -> the normalised kernel, centred; a constant channel stays constant
    x[:, 1] = 3.0
    y = DAN.gaussian_smooth(x, 2.0)
    k = torch.exp(-0.5 * (torch.arange(-8, 9, dtype=torch.float32) / 2.0) ** 2)
    torch.testing.assert_close(y[2:19, 0], k / k.sum())
    torch.testing.assert_close(y[:, 1], x[:, 1])
    ramp = torch.arange(30.0)[:, None]  # a linear ramp is kept in the interior (symmetric kernel)
    torch.testing.assert_close(DAN.gaussian_smooth(ramp, 2.0)[9:21], ramp[9:21])
    torch.testing.assert_close(DAN.gaussian_smooth(x, 0.0), x)


def test_head_smoothed_stage_is_the_filtered_head(tiny_decoder, clips):
    gt, tok = clips
    p = DAN.stage_predictions(tiny_decoder, tok, gt, stages=("head", "head_smoothed"))
    hb, v = tiny_decoder.body, tok["a"]
    Rh, b = torch.as_tensor(v["rotmat"]), torch.as_tensor(v["betas"])
    f = DAN.gaussian_smooth(hb.encode(Rh, b), DAN.HEAD_SMOOTH_SIGMA)
    torch.testing.assert_close(p["head_smoothed"]["a"]["rotmat"], hb.decode(D.twist_unit(f), b))
    assert (p["head_smoothed"]["a"]["rotmat"] - p["head"]["a"]["rotmat"]).abs().max() > 1e-3


def test_aggregate_seeds_mean_std_and_format():
    per = pd.DataFrame({"objective": ["v", "v", "v", "eps"], "seed": [0, 1, 2, 0],
                        "mpjpe": [10.0, 12.0, 14.0, 50.0]})  # fmt: skip
    a = DAB.aggregate_seeds(per, "objective", ["mpjpe"]).set_index("objective")
    assert list(a.index) == ["v", "eps"]
    assert a.loc["v", "mpjpe"] == 12.0 and a.loc["v", "mpjpe_std"] == pytest.approx(2.0)  # ddof 1
    assert (
        a.loc["v", "mpjpe_pm"] == "12.0 ± 2.0"
        and a.loc["v", "n_seeds"] == 3
        and a.loc["v", "seeds"] == "0,1,2"
    )
    assert math.isnan(a.loc["eps", "mpjpe_std"]) and a.loc["eps", "mpjpe_pm"] == "50.0"
    with pytest.raises(KeyError, match="lack columns"):
        DAB.aggregate_seeds(per, "objective", ["pa_mpjpe"])
    assert DAB.seed_list(3, 2) == [3, 4]
    with pytest.raises(ValueError, match="ablation_seeds"):
        DAB.seed_list(0, 0)


def test_ordering_verdicts_on_a_constructed_case():
    agg = pd.DataFrame({"objective": ["eps", "v", "v+eps"], "mpjpe": [100.0, 60.0, 61.0],
                        "mpjpe_std": [5.0, 1.0, 1.0]})  # fmt: skip
    paper = {"eps": 181.8, "v": 62.5, "v+eps": 62.2}  # v and v+eps: a tie in the paper (0.3 mm <= 0.5)
    o = DAB.ordering(agg, "objective", "mpjpe", paper).set_index(["better", "worse"])
    assert o.loc[("v", "eps"), "verdict"] == "reproduces"  # 40 mm > sqrt(1 + 25)
    assert o.loc[("v+eps", "eps"), "verdict"] == "reproduces"
    assert o.loc[("v+eps", "v"), "verdict"] == "reproduces (tie)"  # |1.0| <= sqrt(2)
    assert o.loc[("v", "eps"), "spread"] == pytest.approx(math.sqrt(26.0))
    # ours the other way beyond the spread, and within it
    rev = agg.assign(mpjpe=[50.0, 60.0, 70.0])
    r = DAB.ordering(rev, "objective", "mpjpe", paper).set_index(["better", "worse"])
    assert r.loc[("v", "eps"), "verdict"] == "reversed"
    assert r.loc[("v+eps", "v"), "verdict"] == "differs (paper: tie)"
    near = agg.assign(mpjpe=[62.0, 60.0, 61.0])
    assert DAB.ordering(near, "objective", "mpjpe", paper).set_index(["better", "worse"]).loc[
        ("v", "eps"), "verdict"] == "tie within seed spread"  # fmt: skip
    line = DAB.ordering_line(DAB.ordering(agg, "objective", "mpjpe", paper), "Table 5")
    assert line.startswith("**Table 5**: reproduces 3/3 pairs")
    assert "v+eps ≈ v (mpjpe: ours 61.0 vs 60.0, spread 1.4): reproduces (tie)" in line
    assert "v < eps (mpjpe: ours 60.0 vs 100.0, spread 5.1): reproduces" in line


def test_table5_over_seeds_caches_each_seed(fake_body, tmp_path):
    torch.manual_seed(0)
    vae = MotionVAE("tiny").eval()
    stats = FeatureStats(torch.zeros(133), torch.full((133,), 0.1))
    gt = {c: _gt_clip(k, 24) for k, c in enumerate(("t0", "t1", "x0"))}
    tok = {c: {"tokens": np.random.default_rng(k).normal(size=(24, 16)).astype(np.float32),
               "betas": gt[c]["betas"], "frames": np.arange(24)} for k, c in enumerate(gt)}  # fmt: skip
    setup = DAB.AblationSetup(
        body=fake_body, vae=vae, stats=stats, motion=[], preset="tiny", steps=2, cache_dir=tmp_path,
        tokens_train={c: tok[c] for c in ("t0", "t1")}, gt_train={c: gt[c] for c in ("t0", "t1")},
        tokens_test={"x0": tok["x0"]}, gt_test={"x0": gt["x0"]}, loop={"batch_size": 2},
    )  # fmt: skip
    res = DAB.table5(setup, [0, 1])
    t = res.table.set_index("objective")
    assert list(t.index) == ["eps", "v", "v+eps"] and (t.n_seeds == 2).all()
    assert len(res.per_seed) == 6 and set(res.per_seed.seed) == {0, 1}
    np.testing.assert_allclose(t.mpjpe.to_numpy(), res.per_seed.groupby("objective", sort=False).mpjpe.mean())
    assert t.loc["v", "paper_mpjpe"] == 62.5 and set(res.order.metric) == {"pa_mpjpe", "mpjpe"}
    assert res.line.startswith("**Table 5 (objective)**") and set(res.md_columns) <= set(res.table.columns)
    state = tmp_path / "seed1" / "den_v" / "train_state.pt"
    assert state.is_file() and (tmp_path / "seed0" / "den_eps" / "train_state.pt").is_file()
    mtime = state.stat().st_mtime_ns
    again = DAB.table5(setup, [0, 1])  # cached: reloaded, not retrained; same numbers
    assert state.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(again.per_seed, res.per_seed)


@pytest.mark.timeout(600)
def test_notebook04_tiny_writes_accuracy_loss_and_seeded_tables(tmp_path):
    from fasthmr_lib.workbook import run_workbook

    man = run_workbook(
        "tiny", only=["04"], output_dir=tmp_path / "tiny", progress=False, execution_timeout=600
    )
    assert man["status"] == "ok"
    tables = tmp_path / "tiny" / "results" / "tables"
    acc = pd.read_csv(tables / "04_accuracy_loss_tiny_tiny.csv")
    assert list(acc.stage) == list(DAN.STAGE_NAMES) and {"orient_deg", "pve", "accel_ms2"} <= set(acc.columns)
    assert acc.set_index("stage").loc["hybrik_roundtrip", "mpjpe"] < 1.0
    pj = pd.read_csv(tables / "04_accuracy_loss_per_joint_tiny_tiny.csv")
    assert set(pj.stage) == set(DAN.STAGE_NAMES)
    t5 = pd.read_csv(tables / "04_table5_objective_tiny_tiny.csv")
    assert (t5.n_seeds == 2).all() and {"mpjpe_std", "mpjpe_pm", "paper_mpjpe"} <= set(t5.columns)
    t7 = pd.read_csv(tables / "04_table7_representation_tiny_tiny.csv")
    assert (t7.n_seeds == 2).all() and "paper_mve" in t7.columns
    t3 = pd.read_csv(tables / "04_table3_latent_tiny_tiny.csv")
    assert (t3[t3.source.str.startswith("ours")].n_seeds == 2).all()
    orders = pd.read_csv(tables / "04_ablation_orderings_tiny_tiny.csv")
    assert set(orders.table) == {"Table 5 (objective)", "Table 3 (latent size)", "Table 7 (representation)"}
    assert (tables / "04_ablations_per_seed_tiny_tiny.csv").is_file()


def test_notebook05_reader_carries_the_seed_spread(tmp_path):
    from fasthmr_lib.eval import tables as T

    per = pd.DataFrame({"objective": ["v", "v", "eps", "eps"], "seed": [0, 1, 0, 1],
                        "mpjpe": [60.0, 62.0, 90, 94], "pa_mpjpe": [40.0, 40.0, 70.0, 72.0]})  # fmt: skip
    agg = DAB.aggregate_seeds(per, "objective", ["pa_mpjpe", "mpjpe"]).assign(paper_mpjpe=[62.5, 181.8])
    agg.to_csv(tmp_path / "04_table5_objective_tiny_tiny.csv", index=False)
    d = T.decoder_ablations(T.load_inputs(tmp_path, T.expected_inputs("tiny", "tiny_tiny")))
    r = d[(d.setting == "eps") & (d.metric == "mpjpe")].iloc[0]
    assert r.ours == 92.0 and r.ours_std == pytest.approx(math.sqrt(8.0)) and r.n_seeds == 2
    assert r.paper == 181.8
