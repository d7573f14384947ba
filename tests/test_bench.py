"""bench CLI on the tiny preset: JSON rows, depth, side-by-side comparison, Mask-ToMe hook."""

import json

import pytest
import torch

from fasthmr_lib import bench
from fasthmr_lib.eval import profile as P


def _rows(capsys, argv):
    rc = bench.main(argv)
    out = capsys.readouterr()
    return rc, [json.loads(line) for line in out.out.splitlines() if line.strip()], out.err


def test_no_time_json_fields(capsys):
    rc, rows, _ = _rows(capsys, ["--preset", "tiny", "--no-time", "--json", "--depth", "3"])
    assert rc == 0 and len(rows) == 1
    r = rows[0]
    assert r["preset"] == "tiny" and r["depth"] == 3 and r["batch"] is None
    assert set(r["params"]) == {"backbone", "head", "total"}
    assert r["params"]["total"] == r["params"]["backbone"] + r["params"]["head"]
    macs = r["macs_per_image"]
    assert macs["all"] > macs["linear_conv"] > 0 and set(macs["by_component"]) == {"backbone", "head"}
    assert r["tokens_per_block"] == [192, 192, 192]
    assert "images_per_s" not in r


def test_compare_side_by_side_with_speedup(capsys):
    argv = [
        "--preset",
        "tiny",
        "--compare",
        "baseline",
        "eclm",
        "--batch",
        "1",
        "2",
        "--repeats",
        "1",
        "--json",
    ]
    rc, rows, _ = _rows(capsys, argv)
    assert rc == 0
    assert [(r["config"], r["batch"]) for r in rows] == [
        ("baseline", 1),
        ("eclm", 1),
        ("baseline", 2),
        ("eclm", 2),
    ]
    assert rows[0]["speedup"] == 1.0 and rows[2]["speedup"] == 1.0
    assert rows[0]["depth"] == 4 and rows[1]["depth"] == 3
    assert rows[1]["macs_per_image"]["linear_conv"] < rows[0]["macs_per_image"]["linear_conv"]
    for r in rows:
        assert r["images_per_s"] > 0 and r["threads"] >= 1 and r["repeats"] == 1


def test_bad_arguments(capsys):
    assert bench.main(["--preset", "nope", "--no-time"]) == 2
    assert "unknown model preset" in capsys.readouterr().err


def test_mask_tome_hook(capsys):
    argv = ["--preset", "tiny", "--mask-tome", "3,40,100", "--no-time", "--json"]  # 192 -> 152 -> 112 -> 100
    rc, rows, _ = _rows(capsys, argv)
    assert rc == 0
    tpb = rows[0]["tokens_per_block"]
    assert tpb == [152, 112, 100, 100]  # floor M' = 100 binds in the third block
    base = _rows(capsys, ["--preset", "tiny", "--no-time", "--json"])[1][0]
    assert rows[0]["macs_per_image"]["linear_conv"] < base["macs_per_image"]["linear_conv"]


def test_compare_all_expands_and_decoder_rows(capsys, monkeypatch):
    """'all' = baseline eclm eclm_masktome decoder fasthmr; the decoder alone is one timed window / F."""
    argv = ["--preset", "tiny", "--compare", "all", "--batch", "2", "--repeats", "1", "--json"]
    rc, rows, _ = _rows(capsys, argv)
    assert rc == 0
    assert [r["config"] for r in rows] == list(bench.ALL_CONFIGS)
    dec = next(r for r in rows if r["config"] == "decoder")
    assert dec["decoder_preset"] == "tiny" and dec["decoder_frames_per_window"] == 16
    assert dec["params"]["total"] == dec["decoder_params"]["total"] > 0
    # per-frame decoder time = window time / F, and the decoder alone runs at 1 / that
    c = dec["components_ms_per_image"]
    assert c["decoder"] == pytest.approx(dec["decoder_window_ms"] / 16)
    assert dec["images_per_s"] == pytest.approx(1000 / c["decoder"])
    assert dec["pipeline"]["components"] == {"decoder": pytest.approx(1000 / c["decoder"])}
    for r in rows:
        assert r["warmup"] == 1 and r["repeats"] == 1 and r["threads"] >= 1
        assert r["mem_kind"].startswith("cpu_") and r["peak_mem_mb"] >= 0
        assert "segmenter/detector" in r["pipeline"]["missing"]  # ultralytics is not installed here
        assert r["segmenter"].startswith("absent")
        if r["config"] in ("baseline", "eclm"):
            c = r["components_ms_per_image"]
            assert c["backbone"] > 0 and c["head"] > 0 and c["decoder"] is None
            assert c["backbone"] + c["head"] <= r["latency_ms_median"] / 2 * 1.0001
            assert r["pipeline"]["fps"] == pytest.approx(r["images_per_s"])


def test_fasthmr_row_amortises_decoder(monkeypatch):
    """images/s of a decoder configuration = B / (t_model + B * t_window / F), checked from its fields."""
    rows = bench.benchmark("tiny", ["baseline", "fasthmr"], [4], bench.BenchOptions(repeats=1, warmup=1))
    r = rows[1]
    model_ms = r["latency_ms_median"] - 4 * r["decoder_window_ms"] / 16
    assert model_ms > 0
    assert r["images_per_s"] == pytest.approx(4000 / (model_ms + 4 * r["decoder_window_ms"] / 16))
    assert r["speedup"] == pytest.approx(r["images_per_s"] / rows[0]["images_per_s"])
    assert r["throughput_note"].startswith("decoder amortised")
    comps = r["pipeline"]["components"]
    assert set(comps) == {"model", "decoder"}
    assert r["pipeline"]["fps"] == pytest.approx(1 / (1 / comps["model"] + 1 / comps["decoder"]))


def test_no_time_counts_decoder_macs(capsys):
    rc, rows, _ = _rows(
        capsys, ["--preset", "tiny", "--compare", "baseline", "decoder", "--no-time", "--json"]
    )
    assert rc == 0
    from fasthmr_lib.diffusion.cost import decoder_cost

    ref = decoder_cost("tiny")
    dec = rows[1]
    assert dec["decoder_macs_per_frame"]["linear_conv"] == pytest.approx(
        ref["macs_per_window"]["linear_conv"] / 16
    )
    assert dec["batch"] is None and "images_per_s" not in dec


def test_train_step_timing_per_precision(capsys, monkeypatch, fake_smpl_dir):
    monkeypatch.setenv("FASTHMR_SMPL_DIR", str(fake_smpl_dir))
    argv = ["--preset", "tiny", "--train-step", "fp32", "bf16", "--batch", "2", "--repeats", "2", "--json"]
    rc, rows, err = _rows(capsys, [*argv, "--warmup", "0"])
    assert rc == 0, err
    assert [r["precision"] for r in rows] == ["fp32", "bf16"] and all(r["batch"] == 2 for r in rows)
    assert rows[0]["speedup"] == 1.0 and all(r["s_per_step"] > 0 for r in rows)
    assert rows[1]["speedup"] == pytest.approx(rows[0]["s_per_step"] / rows[1]["s_per_step"])
    assert rows[1]["samples_per_s"] == pytest.approx(2 / rows[1]["s_per_step"])
    rc, _, err = _rows(capsys, ["--preset", "tiny", "--train-step", "fp16", "--repeats", "1"])
    assert rc == 1 and "fp16 needs a cuda device" in err
    rc, _, err = _rows(capsys, ["--preset", "tiny", "--train-step", "fp8", "--repeats", "1"])
    assert rc == 1 and "precision must be one of" in err


def test_fasthmr_cpu_row_is_int8_with_float_counts(capsys):
    """`fasthmr_cpu` = `fasthmr` with the int8 backbone: same MACs and parameters (counted before
    quantising), rows name their configuration and carry the int8 flag and a speed-up."""
    argv = ["--preset", "tiny", "--compare", "baseline", "fasthmr", "fasthmr_cpu",
            "--batch", "2", "--repeats", "1", "--json", "--no-segmenter"]  # fmt: skip
    rc, rows, _ = _rows(capsys, argv)
    assert rc == 0 and [r["config"] for r in rows] == ["baseline", "fasthmr", "fasthmr_cpu"]
    assert [r["int8"] for r in rows] == [False, False, True]
    fast, cpu = rows[1], rows[2]
    assert cpu["macs_per_image"] == fast["macs_per_image"] and cpu["params"] == fast["params"]
    assert cpu["tokens_per_block"] == fast["tokens_per_block"] and cpu["speedup"] > 0
    # int8 moves the outputs measurably but not far (random weights; relative RMS of the head token)
    assert fast["lever_deviation"] is None and 1e-6 < cpu["lever_deviation"]["head_token_rel_rms"] < 0.2


def test_baseline_math_row_uses_explicit_attention_and_leaves_base_fused(capsys):
    """`baseline_math`: HMR 2.0's explicit attention (the SDPA lever's reference): same counts in the
    linear/conv convention, flagged ``sdpa: false``; the shared random-weight model keeps SDPA."""
    argv = ["--preset", "tiny", "--compare", "baseline", "baseline_math", "--batch", "2", "--repeats", "1",
            "--json", "--no-segmenter"]  # fmt: skip
    rc, rows, _ = _rows(capsys, argv)
    assert rc == 0 and [r["sdpa"] for r in rows] == [True, False]
    assert rows[0]["lever_deviation"] is None  # no lever on
    dev = rows[1]["lever_deviation"]  # explicit vs SDPA attention: float rounding only
    assert dev["head_token_rel_rms"] < 1e-5 and dev["rotmat_max_abs"] < 1e-4
    assert rows[0]["macs_per_image"]["linear_conv"] == rows[1]["macs_per_image"]["linear_conv"]
    base = P.build_bench_model("tiny")
    m = bench.build(base, bench.BenchConfig("x", sdpa=False))
    assert all(not b.attn.fused for b in m.backbone.blocks)
    assert all(b.attn.fused for b in base.backbone.blocks)
    img = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(m(img)["pose6d"], base(img)["pose6d"], atol=1e-5, rtol=1e-5)


def test_camerahmr_preset_counts_with_box_info(capsys):
    # the box-conditioned head needs its CLIFF box info: without it the camerahmr bench stopped with an error
    rc, rows, _ = _rows(capsys, ["--preset", "camerahmr", "--no-time", "--json", "--depth", "2"])
    assert rc == 0 and rows[0]["preset"] == "camerahmr" and rows[0]["depth"] == 2
    assert rows[0]["params"]["head"] == 39_800_053  # 39,547,037 + 159 x 1024 (160-wide token) + deckp 90,200
    assert bench._box_info("hmr2", 2, "cpu") == {}
    assert bench._box_info("camerahmr", 2, "cpu")["bbox_info"].shape == (2, 3)
