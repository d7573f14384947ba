"""The paper path end to end on format-faithful stand-ins (``notebooks/profiles/paper_smoke.yaml``).

The stand-ins (``data_prep.paper_standins``) are a 4D-Humans release-layout checkpoint and a CameraHMR one
(tiny widths), the official-style chumpy SMPL pickle, raw 3DPW / EMDB sequences with images and AMASS files
converted with the data_prep converters, and an H36M regressor. The notebooks read them through the
``FASTHMR_*`` variables, exactly as under the ``paper`` profile.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from data_prep import paper_standins as PS
from fasthmr_lib import paper_inputs as PI
from fasthmr_lib import workbook as W


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    """The stand-in folder and its FASTHMR_* environment (12 frames per 3DPW / EMDB sequence)."""
    out = tmp_path_factory.mktemp("paper_standins")
    old = os.environ.get("FASTHMR_CACHE")
    os.environ["FASTHMR_CACHE"] = str(out / "cache")  # the SMPL pickle's .npz conversion goes here
    try:
        env = PS.make_all(out, frames=12)
    finally:
        if old is None:
            os.environ.pop("FASTHMR_CACHE", None)
        else:
            os.environ["FASTHMR_CACHE"] = old
    return out, env | {"FASTHMR_CACHE": str(out / "cache")}


@pytest.fixture
def paper_env(standins, monkeypatch):
    for k in PI.ENV_VARS.values():
        monkeypatch.delenv(k, raising=False)
    for k, v in standins[1].items():
        monkeypatch.setenv(k, v)
    return standins


def test_standins_have_the_release_formats(standins):
    out, env = standins
    ckpt = env["FASTHMR_HMR2_CKPT"]
    assert ckpt.endswith("logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt")
    assert (out / "raw/hmr2/logs/train/multiruns/hmr2/0/model_config.yaml").is_file()
    assert env["FASTHMR_CAMERAHMR_CKPT"].endswith("data/pretrained-models/camerahmr_checkpoint_cleaned.ckpt")
    assert (out / "raw/smpl/SMPL_NEUTRAL.pkl").read_bytes()[:2] == b"\x80\x02"  # Python-2 pickle protocol
    assert not (out / "raw/smpl/SMPL_NEUTRAL.npz").exists()
    assert np.load(env["FASTHMR_H36M_REGRESSOR"]).shape == (17, PS.NUM_VERTICES)
    meta = json.loads((out / "records/3dpw/meta.json").read_text())
    assert set(meta["splits"]) == {"train", "validation", "test"} and meta["masks"] is False
    assert json.loads((out / "records/emdb/meta.json").read_text())["splits"]["test"] == [
        "P0_09_outdoor_walk",
        "P2_20_outdoor_walk",
    ]  # fmt: skip  (EMDB-1 only: the sequence flagged emdb2 alone is left out)


def test_resolve_lists_every_missing_or_wrong_input_in_one_message(paper_env, tmp_path, monkeypatch):
    monkeypatch.delenv("FASTHMR_HMR2_CKPT")
    bad = tmp_path / "reg.npy"
    np.save(bad, np.zeros((24, 10)))
    given = {"real_emdb_dir": str(tmp_path / "nope"), "h36m_regressor": str(bad)}
    with pytest.raises(PI.PaperInputsError) as e:
        PI.resolve(
            "real", given, ["real_checkpoint", "real_emdb_dir", "smpl_dir"], optional=["h36m_regressor"]
        )
    msg = str(e.value)
    assert msg.startswith("3 paper input(s) missing or wrong")
    assert "real_checkpoint (FASTHMR_HMR2_CKPT): not set" in msg
    assert f"real_emdb_dir (FASTHMR_EMDB_DIR): {tmp_path / 'nope'}: no meta.json" in msg
    assert "h36m_regressor (FASTHMR_H36M_REGRESSOR)" in msg and "of shape (17, V), got (24, 10)" in msg
    assert "smpl_dir" not in msg  # the stand-in SMPL folder is fine
    # the parameter wins over the variable; embedded checks nothing
    ok = PI.resolve("real", {"real_emdb_dir": paper_env[1]["FASTHMR_EMDB_DIR"]}, ["real_emdb_dir"])
    assert ok.real and ok["real_emdb_dir"].name == "emdb"
    assert PI.resolve("embedded", {}, ["real_checkpoint"]).real is False


def test_resolve_checks_splits_masks_and_wham_protocols(paper_env):
    env = paper_env[1]
    with pytest.raises(PI.PaperInputsError, match=r"no clips in split\(s\) \['calib'\]"):
        PI.for_notebook("02", {"data_source": "real", "selection_split": "calib"})
    with pytest.raises(PI.PaperInputsError, match="have no person masks.*add_person_masks"):
        PI.resolve("real", {}, ["real_emdb_dir"], mask_kind="mask")
    inp = PI.for_notebook("02", {"data_source": "real", "selection_split": "validation"})
    assert (
        inp["real_calib_dir"] == inp.paths["real_calib_dir"] and inp.splits["real_calib_dir"] == "validation"
    )
    assert str(inp["real_calib_dir"]) == env["FASTHMR_3DPW_DIR"]  # default: the 3DPW records
    assert "h36m_regressor" in PI.for_notebook("05", {"data_source": "real", "protocol": "wham_emdb14"}).paths


def test_paper_smoke_profile_runs_every_notebook(paper_env, tmp_path):
    """All six notebooks under paper_smoke on the stand-ins; wall time per notebook in the manifest."""
    man = W.run_workbook("paper_smoke", output_dir=tmp_path / "run", progress=False)
    times = {e["notebook"][:2]: round(e["wall_s"], 1) for e in man["notebooks"]}
    print("paper_smoke wall s per notebook:", times, "total", round(man["wall_s"], 1))
    assert man["status"] == "ok" and len(times) == len(W.list_notebooks(W.paths.notebooks_dir()))
    tables = tmp_path / "run" / "results" / "tables"
    real = pd.read_csv(tables / "01_real_baselines.csv")
    assert sorted(zip(real.model, real.split)) == [
        ("CameraHMR", "3dpw"), ("CameraHMR", "emdb"), ("HMR 2.0", "3dpw"), ("HMR 2.0", "emdb")
    ]  # fmt: skip
    assert real.paper_mpjpe.notna().all() and (real.mpjpe > 0).all()


def test_missing_input_stops_the_notebook_with_one_message(paper_env, tmp_path, monkeypatch):
    monkeypatch.delenv("FASTHMR_EMDB_DIR")
    monkeypatch.setenv("FASTHMR_HMR2_CKPT", str(tmp_path / "missing.ckpt"))
    with pytest.raises(W.WorkbookError) as e:
        W.run_workbook("paper_smoke", only=["01"], output_dir=tmp_path / "run", progress=False)
    msg = str(e.value)
    assert "PaperInputsError" in msg and "2 paper input(s)" in msg
    assert "missing.ckpt: file not found" in msg and "real_emdb_dir (FASTHMR_EMDB_DIR): not set" in msg
    assert not (tmp_path / "run" / "results" / "tables" / "01_real_baselines.csv").exists()


def _halves_segmenter(image: np.ndarray) -> np.ndarray:
    """A stand-in segmenter: two 'instances', the left and the right half of the frame."""
    H, W = image.shape[:2]
    left = np.zeros((H, W), bool)
    left[:, : W // 2] = True
    return np.stack([left, ~left])


def test_pick_person_mask_takes_the_instance_that_best_matches_the_box():
    from data_prep.add_person_masks import pick_person_mask

    H, W = 40, 60
    a, b = np.zeros((H, W), bool), np.zeros((H, W), bool)
    a[5:20, 5:20] = True  # the person inside the box
    b[0:40, 10:60] = True  # a larger region covering the box too, but mostly outside it
    box = (4.2, 4.6, 20.0, 21.0)
    assert np.array_equal(pick_person_mask(np.stack([b, a]), box, (H, W)), a)
    assert not pick_person_mask(np.stack([b, a]), (50, 30, 58, 38), (H, W))[:, :10].any()
    assert not pick_person_mask(np.zeros((0, H, W), bool), box, (H, W)).any()  # no instance: empty mask
    assert not pick_person_mask(np.stack([a]), (40, 25, 58, 39), (H, W)).any()  # no overlap: empty mask
    with pytest.raises(ValueError, match=r"expected \(N, 40, 60\)"):
        pick_person_mask(np.zeros((1, 10, 10), bool), box, (H, W))


def test_add_person_masks_fills_records_and_the_mask_kind_then_resolves(paper_env, tmp_path, capsys):
    """The segmenter step writes each clip's `mask` (the instance matching its box), records it in meta.json,
    skips finished clips on a rerun, and the records then pass the paper inputs' check with mask kind
    'mask'."""
    import shutil

    from data_prep import add_person_masks as AM
    from data_prep.add_person_masks import pick_person_mask
    from fasthmr_lib.data.datasets import CropDataset
    from fasthmr_lib.data.records import load_clip, split_clip_paths

    root = tmp_path / "emdb"
    shutil.copytree(paper_env[1]["FASTHMR_EMDB_DIR"], root)
    with pytest.raises(PI.PaperInputsError, match="have no person masks"):
        PI.resolve("real", {"real_emdb_dir": str(root)}, ["real_emdb_dir"], mask_kind="mask")
    spec = f"{__name__}:_halves_segmenter"
    assert AM.main([str(root), "--segmenter", spec, "--split", "test"]) == {"written": 2, "skipped": 0}
    meta = json.loads((root / "meta.json").read_text())
    assert meta["masks"] == {"kind": "mask", "segmenter": spec, "splits": ["test"]}
    for path in split_clip_paths(root, "test"):
        clip = load_clip(path)
        for t in (0, clip.n_frames - 1):
            want = pick_person_mask(_halves_segmenter(clip.image(t)), clip.boxes[t], clip.image_size_hw)
            assert want.any() and np.array_equal(clip.mask[t], want)
    assert AM.main([str(root), "--segmenter", spec]) == {"written": 0, "skipped": 2}  # rerun: nothing redone
    inp = PI.resolve("real", {"real_emdb_dir": str(root)}, ["real_emdb_dir"], mask_kind="mask")
    item = CropDataset(inp["real_emdb_dir"], "test", mask_kind="mask")[0]
    assert 0 < float(item["person_mask"].mean()) < 1
    with pytest.raises(ValueError, match="cannot import"):
        AM.load_segmenter("no_such_module_xyz:segment")
    with pytest.raises(ValueError, match="expected 'ultralytics"):
        AM.load_segmenter("just-a-name")
