"""Paper numbers (eval/paper_tables.py) and the table builders of notebook 05 (eval/tables.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from fasthmr_lib import io as fio
from fasthmr_lib.eval import paper_tables as PT
from fasthmr_lib.eval import tables as T
from fasthmr_lib.eval.paper_tables import PAPER_BASELINES, PAPER_TABLE2


def test_paper_tables_single_source_and_claims():
    t1 = PT.paper_table(1).set_index("model")
    assert len(t1) == 16
    # baseline rows come from PAPER_BASELINES (not repeated)
    assert t1.loc["HMR 2.0†", "fps"] == PAPER_BASELINES.set_index("model").loc["HMR 2.0", "fps"] == 65.2
    assert t1.loc["CameraHMR†", "emdb_mpjpe"] == 73.3
    # the paper's speed-ups: 150.0 / 65.2 = 2.30x, 103.4 / 54.5 = 1.90x
    assert t1.loc["FastHMR-HMR2.0 (M=1)", "fps"] / t1.loc["HMR 2.0†", "fps"] == pytest.approx(2.30, abs=0.005)
    assert PT.SETTINGS["speedup"]["CameraHMR"] == pytest.approx(1.897, abs=0.001)
    assert PT.paper_table(2) is not PAPER_TABLE2 and PT.TABLE2 is PAPER_TABLE2
    t12 = PT.paper_table(12).set_index(["model", "config"])
    assert t12.loc[("HMR2.0", "baseline"), "params_M"] == 670.2
    assert t12.loc[("HMR2.0", "eclm_masktome"), "macs_G"] == 52.8
    # Table 12 arithmetic: 4 merged ViT-H blocks of ~19.7 M each
    assert (670.2 - t12.loc[("HMR2.0", "eclm"), "params_M"]) / 4 == pytest.approx(19.7, abs=0.05)
    assert PT.TABLE6.set_index("component").loc["diffusion decoder", "fps"] == 8211.0
    assert list(PT.TABLE10.n_l.dropna()) == [10, 20, 40, 60, 80, 100]
    f1 = PT.fig1_points()  # rows with both an fps and an EMDB MPJPE
    assert "POTTER" not in set(f1.model) and "HMDiff* (M=25)" not in set(f1.model) and len(f1) == 12
    with pytest.raises(KeyError, match="13"):
        PT.paper_table(13)


def test_pareto_front_hand_case():
    df = pd.DataFrame(
        {"images_per_s": [1.0, 2.0, 2.0, 3.0, 0.5, np.nan], "mpjpe": [50.0, 60.0, 55.0, 70.0, 40.0, 10.0]}
    )
    # (2, 60) is dominated by (2, 55); NaN rows never on the front
    assert T.pareto_front(df).tolist() == [True, False, True, True, True, False]


def test_manifest_columns_and_write_table(tmp_path):
    man = fio.manifest({"profile": "tiny", "x": 1}, seed=3, notebook="05")
    df = T.with_manifest(pd.DataFrame({"a": [1.0, 2.0]}), man, "ours", tmp_path / "m.json")
    assert list(df.columns) == ["a", *T.MANIFEST_COLUMNS]
    assert (df.seed == 3).all() and df.git.iloc[0] == man["git"] and "torch" in df.versions.iloc[0]
    assert json.loads(df.params.iloc[0]) == {"profile": "tiny", "x": 1}
    paper = T.paper_rows(pd.DataFrame({"a": [9.0]}), 2)
    assert paper.source.iloc[0] == "paper Table 2" and paper.git.iloc[0] == ""
    csv, md = T.write_table(pd.concat([df, paper], ignore_index=True), tmp_path / "05_x")
    back = pd.read_csv(csv)
    assert len(back) == 3 and "params" in back.columns and back.seed.iloc[0] == 3
    text = md.read_text()
    assert "params" not in text.splitlines()[0] and "Provenance" in text and man["git"] in text
    from fasthmr_lib.paths import REPO_ROOT

    inside = T.with_manifest(pd.DataFrame({"a": [1.0]}), man, "ours", REPO_ROOT / "results" / "m.json")
    assert inside.manifest_file.iloc[0] == "results/m.json"  # repo-relative, the same on every machine


def test_markdown_copy_is_narrow_with_units(tmp_path):
    """The .md shows at most ten columns, units in the headers, and names the rest; the CSV keeps all."""
    cols = {f"c{i}": [float(i)] for i in range(12)}
    df = pd.DataFrame({"mpjpe": [70.0], "paper_accel": [5.4], "tau_mm": [0.1], **cols})
    csv, md = T.write_table(df, tmp_path / "t")
    header = md.read_text().splitlines()[0]
    assert header.count("|") == T.MAX_MD_COLUMNS + 1
    assert "MPJPE (mm)" in header and "paper Accel (m/s²)" in header and "tau (mm)" in header
    assert "More columns in `t.csv`: `c7`, `c8`" in md.read_text()
    assert list(pd.read_csv(csv).columns) == list(df.columns)
    _, md = T.write_table(df, tmp_path / "u", md_columns=["c3", "mpjpe"])
    assert [h.strip() for h in md.read_text().splitlines()[0].split("|")[1:3]] == ["c3", "MPJPE (mm)"]
    with pytest.raises(ValueError, match="md_columns.*'nope'"):
        T.write_table(df, tmp_path / "v", md_columns=["nope"])
    assert T.md_header("paper_mpjpe_3dpw") == "paper MPJPE 3DPW (mm)" and T.md_header("frames") == "frames"


def test_load_inputs_found_and_missing(tmp_path):
    spec = T.expected_inputs("small", "small_small")
    pd.DataFrame({"tau_mm": [np.nan, 0.1], "test_mpjpe": [50.0, 51.0]}).to_csv(
        tmp_path / "02_eclm_tau_sweep_small.csv", index=False
    )
    fio.write_json(tmp_path / "02_eclm_small_manifest.json", fio.manifest({"taus": [0.1]}, 0))
    inp = T.load_inputs(tmp_path, spec)
    assert inp["eclm_tau_sweep"].found and inp["eclm_tau_sweep"].manifest["params"] == {"taus": [0.1]}
    assert not inp["decoder_table5"].found
    note = inp["decoder_table5"].note()
    assert "04_table5_objective_small_small.csv is missing" in note and "04_diffusion_decoder" in note
    inv = T.inventory(inp)
    assert inv.set_index("input").loc["eclm_tau_sweep", "found"] and inv.found.sum() == 1
    (tmp_path / "01_baseline_small_metrics.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="01_baseline_small_metrics.csv"):
        T.load_inputs(tmp_path, spec)


def test_table1_relative_columns():
    ours = pd.DataFrame(
        {
            "model": ["baseline", "FastHMR"],
            "fps": [10.0, 25.0],
            "pa_mpjpe": [40.0, 38.0],
            "mpjpe": [80.0, 76.0],
            "pve": [90.0, 88.0],
            "accel": [20.0, 5.0],
        }
    )
    t = T.table1(T.with_manifest(ours, None, "ours"))
    o = t[t.source == "ours"].set_index("model")
    assert o.loc["FastHMR", "speedup"] == 2.5 and o.loc["FastHMR", "mpjpe_change_pct"] == pytest.approx(-5.0)
    assert o.loc["FastHMR", "accel_ratio"] == 0.25
    p = t[(t.source == "paper Table 1") & (t.dataset == "3DPW (paper)")].set_index("model")
    assert p.loc["FastHMR-HMR2.0 (M=1)", "speedup"] == pytest.approx(150.0 / 65.2)
    assert p.loc["FastHMR-HMR2.0 (M=1)", "mpjpe_change_pct"] == pytest.approx(100 * (65.8 / 69.8 - 1))
    assert p.loc["FastHMR-CameraHMR (M=1)", "accel_ratio"] == pytest.approx(5.4 / 16.8)
    assert p.loc["FastHMR-CameraHMR (M=1)", "accel_ms2"] == 5.4  # the paper's unit, not ours (mm/frame²)
    assert p["accel"].isna().all() and T.md_header("accel_ms2") == "Accel (m/s²)"
    assert len(t) == 2 + 8


def _bench_row(cfg, bb, head, seg=None, dec=None, pipe=None):
    comp = {"segmenter": seg, "backbone": bb, "head": head, "decoder": dec}
    return {
        "config": cfg,
        "batch": 4,
        "peak_mem_mb": 100.0,
        "decoder_peak_mem_mb": 5.0,
        "components_ms_per_image": comp,
        "components_fps": {k: (1000 / v if v else None) for k, v in comp.items()},
        "pipeline": {"fps": pipe},
    }


def test_table6_from_bench_rows():
    rows = [
        _bench_row("baseline", 80.0, 20.0, pipe=10.0),
        _bench_row("eclm", 70.0, 20.0, pipe=11.1),
        _bench_row("eclm_masktome", 30.0, 10.0, pipe=25.0),
        _bench_row("decoder", None, None, dec=0.5, pipe=2000.0),
        _bench_row("fasthmr", 30.0, 10.0, dec=0.5, pipe=24.7),
    ]
    t = T.table6(rows, {"baseline": 50.0, "eclm_masktome": 60.0}).set_index("component")
    assert t.loc["backbone + head (baseline)", "fps"] == pytest.approx(10.0)
    assert t.loc["backbone + head + ECLM + Mask-ToMe", "ratio_to_baseline"] == pytest.approx(2.5)
    assert t.loc["backbone + head + ECLM + Mask-ToMe", "mpjpe"] == 60.0
    assert t.loc["diffusion decoder (per frame)", "fps"] == pytest.approx(2000.0)
    assert t.loc["diffusion decoder (per frame)", "paper_fps"] == 8211.0
    assert t.loc["backbone + head + ECLM", "paper_ratio_to_baseline"] == pytest.approx(83.3 / 68.2)
    assert not t.loc["front end: segmenter (YOLO11n-seg)", "present"]
    assert t.loc["FastHMR pipeline", "fps"] == 24.7 and t.loc["FastHMR pipeline", "paper_fps"] == 103.4
    with pytest.raises(ValueError, match="timed"):
        T.table6([dict(rows[0], batch=None)])


def test_table12_from_bench_counts():
    from fasthmr_lib import bench

    rows = bench.benchmark("tiny", ["baseline", "eclm", "decoder"], options=bench.BenchOptions(timing=False))
    t = T.table12(rows, "tiny").set_index("config")
    assert t.loc["baseline", "paper_params_M"] == 670.2 and t.loc["eclm", "paper_macs_G"] == 107.5
    assert t.loc["eclm", "macs_reduction"] == pytest.approx(
        t.loc["baseline", "macs_G_linear_conv"] / t.loc["eclm", "macs_G_linear_conv"]
    )
    assert t.loc["eclm", "paper_macs_reduction"] == pytest.approx(122.6 / 107.5)
    assert t.loc["decoder", "paper_params_M"] == 29.5 and t.loc["decoder", "decoder_macs_G_per_window"] > 0
    assert np.isnan(t.loc["decoder", "paper_macs_reduction"])


def test_tables_8_10_11():
    summ = pd.DataFrame(
        {
            "variant": [
                "baseline",
                "baseline",
                "eclm_masktome",
                "eclm_masktome",
                "eclm_tome_nomask",
                "eclm_tome_nomask",
            ],
            "method": ["head", "decoder"] * 3,
            "mpjpe": [50.0, 48.0, 55.0, 52.0, 70.0, 65.0],
            "pa_mpjpe": [30.0, 29.0, 33.0, 31.0, 40.0, 38.0],
            "pve": [60.0, 58.0, 66.0, 62.0, 80.0, 77.0],
        }
    )
    t8 = T.table8(summ).set_index("method")
    assert t8.loc["w/o merging", "mpjpe"] == 48.0 and t8.loc["w/ merging (ECLM + Mask-ToMe)", "mpjpe"] == 52.0
    assert t8.loc["w/o merging", "paper_mpjpe_emdb"] == 72.6
    t11 = T.table11(summ)
    assert t11.mpjpe.tolist() == [70.0, 65.0, 55.0, 52.0] and t11.paper_mpjpe.tolist() == [
        98.1,
        75.0,
        84.0,
        71.6,
    ]
    t10 = T.table10(pd.DataFrame({"n_l": [20, 40], "mpjpe": [61.0, 60.0]}), base_mpjpe=50.0)
    assert np.isnan(t10.n_l.iloc[0]) and t10.mpjpe.iloc[0] == 50.0 and t10.paper_mpjpe_emdb.iloc[0] == 73.3
    r40 = t10[t10.n_l == 40].iloc[0]
    assert r40.mpjpe == 60.0 and r40.paper_mpjpe_emdb == 84.0
    assert np.isnan(t10[t10.n_l == 100].mpjpe.iloc[0])  # paper rows without ours are kept


def test_decoder_ablations_from_04_csvs(tmp_path):
    pd.DataFrame(
        {
            "objective": ["eps", "v"],
            "pa_mpjpe": [90.0, 40.0],
            "mpjpe": [150.0, 60.0],
            "paper_pa_mpjpe": [97.0, 39.1],
            "paper_mpjpe": [181.8, 62.5],
        }
    ).to_csv(tmp_path / "04_table5_objective_tiny_tiny.csv", index=False)
    pd.DataFrame(
        {
            "latent": ["2x32", "9x256"],
            "recon_mpjpe": [12.0, 6.6],
            "source": ["ours (synthetic test clips)", "paper (AMASS)"],
        }
    ).to_csv(tmp_path / "04_table3_latent_tiny_tiny.csv", index=False)
    inp = T.load_inputs(tmp_path, T.expected_inputs("tiny", "tiny_tiny"))
    d = T.decoder_ablations(inp)
    t5 = d[d.table == "Table 5"]
    assert len(t5) == 4 and t5[(t5.setting == "v") & (t5.metric == "mpjpe")].paper.iloc[0] == 62.5
    t3 = d[d.table == "Table 3"]
    assert t3[t3.setting == "2x32"].ours.iloc[0] == 12.0 and len(t3) == 1 + 4
    assert set(d.source) == {
        "notebook 04 (04_table5_objective_tiny_tiny.csv)",
        "notebook 04 (04_table3_latent_tiny_tiny.csv)",
    }
    assert T.decoder_ablations({}).empty


def test_table10_from_notebook03_sweep():
    nb03 = pd.DataFrame(
        {
            "setting": ["baseline", "n_l=20", "n_l=40", "no mask (ToMe)"],
            "n_l": [np.nan, 20, 40, 40],
            "mask": [np.nan, True, True, False],
            "MPJPE": [50.0, 57.0, 56.0, 70.0],
        }
    )
    rows, base = T.table10_inputs_from_03(pd.read_csv(io.StringIO(nb03.to_csv(index=False))))  # as read back
    assert base == 50.0 and rows.n_l.tolist() == [20.0, 40.0] and rows.mpjpe.tolist() == [57.0, 56.0]
    t = T.table10(rows, base).set_index("n_l", drop=False)
    assert t.loc[40.0, "mpjpe"] == 56.0 and t.loc[40.0, "paper_mpjpe_emdb"] == 84.0
    with pytest.raises(ValueError, match="MPJPE"):
        T.table10_inputs_from_03(pd.DataFrame({"x": [1]}))


def test_cpu_lever_table_ratios_deviations_and_mpjpe_changes():
    dev = {"head_token_rel_rms": 0.01, "rotmat_max_abs": 0.02, "cam_max_abs": 0.0}
    rows = [
        {"config": "baseline", "batch": 8, "images_per_s": 2.0, "lever_deviation": None},
        {"config": "baseline_math", "batch": 8, "images_per_s": 1.6,
         "lever_deviation": {"head_token_rel_rms": 1e-7}},
        {"config": "int8_mlp", "batch": 8, "images_per_s": 3.0, "lever_deviation": dev},
        {"config": "fasthmr_cpu", "batch": 8, "images_per_s": 8.0, "lever_deviation": dev},
        {"config": "fasthmr_cpu", "batch": 1, "images_per_s": 1.0, "lever_deviation": dev},  # other batch
    ]  # fmt: skip
    summary = pd.DataFrame(
        [("eclm_masktome", "head", 100.0), ("eclm_masktome", "decoder", 90.0), ("fasthmr_cpu", "head", 100.5),
         ("fasthmr_cpu", "decoder", 89.0), ("fasthmr_math_attn", "head", 100.0)],
        columns=["variant", "method", "mpjpe"],
    )  # fmt: skip
    t = T.cpu_lever_table(rows, summary).set_index("lever")
    assert list(t.index) == [  # int8 (all) and fasthmr were not benchmarked: no rows
        "PyTorch SDPA (vs HMR 2.0's explicit attention)", "int8 backbone, MLP linears (shipped)",
        "fasthmr_cpu = FastHMR + int8 MLPs",
    ]  # fmt: skip
    sdpa, mlp, cpu = (t.iloc[i] for i in range(3))
    assert sdpa["speed_ratio"] == pytest.approx(1.25) and sdpa["head_token_rel_rms"] == pytest.approx(1e-7)
    assert sdpa["d_mpjpe_head_mm"] == 0.0 and np.isnan(sdpa["d_mpjpe_decoder_mm"])
    assert mlp["speed_ratio"] == pytest.approx(1.5) and mlp["rotmat_max_abs"] == 0.02
    assert cpu["speed_ratio"] == pytest.approx(4.0) and cpu["batch"] == 8
    assert cpu["d_mpjpe_head_mm"] == pytest.approx(0.5) and cpu["d_mpjpe_decoder_mm"] == pytest.approx(-1.0)
