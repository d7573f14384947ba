"""bench CLI on the tiny preset: JSON rows, depth, side-by-side comparison, Mask-ToMe hook."""

import json

from fasthmr_lib import bench


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
    argv = ["--preset", "tiny", "--mask-tome", "2,40,100", "--no-time", "--json"]
    try:
        from fasthmr_lib.merging import patch  # noqa: F401  (helper C's module)
    except ImportError:
        rc, rows, err = _rows(capsys, argv)
        assert rc == 1 and "fasthmr_lib.merging.patch is not available" in err
        return
    rc, rows, _ = _rows(capsys, argv)
    assert rc == 0
    tpb = rows[0]["tokens_per_block"]
    assert tpb[:2] == [152, 112] and tpb[-1] == 100
    base = _rows(capsys, ["--preset", "tiny", "--no-time", "--json"])[1][0]
    assert rows[0]["macs_per_image"]["linear_conv"] < base["macs_per_image"]["linear_conv"]
