"""Learnability harness: variants are one-lever overrides of one base recipe; a proxy run on the tiny world
trains with the dense labels, scores against the mean pose and appends/replaces its row; the figure draws."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from fasthmr_lib.eval import learnability as L


def test_variants_change_one_lever_and_scale_with_the_budget():
    base = L.variant_config("base")
    assert base == L.BASE
    dense = L.variant_config("dense")
    assert dense.loss_weights.dense_parts > 0
    assert dataclasses.replace(dense, loss_weights=L.BASE.loss_weights) == L.BASE  # nothing else moved
    assert dense.loss_weights.global_orient == L.BASE.loss_weights.global_orient
    pre = L.variant_config("dense_pretrain", steps=900)
    assert pre.steps == 900 and pre.pretrain_steps == 300  # a third of the run at any budget
    cur = L.variant_config("facing_curriculum", steps=1200, batch=8)
    assert cur.curriculum_steps == 1200 and cur.batch == 8 and cur.facing_kappa > 0
    with pytest.raises(KeyError, match="unknown learnability variant"):
        L.variant_config("nope")
    with pytest.raises(SystemExit, match="--variants: unknown"):
        L.main(["--variants", "base", "nope"])


def test_fine_tune_variants_share_one_recipe_and_change_one_term():
    ctrl = L.variant_config("ft_control")
    assert ctrl.lr < L.BASE.lr
    assert ctrl.loss_weights.keypoints_3d == 0 and ctrl.loss_weights.keypoints_3d_body > 0
    cases = (("ft_orient_w", {"global_orient"}), ("ft_kp3d_orient", {"keypoints_3d_orient"}),
             ("ft_orient_both", {"global_orient", "keypoints_3d_orient"}),
             ("ft_dense_fg", {"dense_fg"}), ("ft_front_back", {"dense_front_back"}),
             ("ft_orient_chord", {"global_orient", "global_orient_chord"}),
             ("ft_front_back_crop", {"front_back_crop"}))  # fmt: skip
    for name, changed in cases:
        cfg = L.variant_config(name, init_from="ckpt")
        assert cfg.init_from == "ckpt"
        moved = {f.name for f in dataclasses.fields(cfg.loss_weights)
                 if getattr(cfg.loss_weights, f.name) != getattr(ctrl.loss_weights, f.name)}  # fmt: skip
        assert moved == changed, name
        assert dataclasses.replace(cfg, loss_weights=ctrl.loss_weights, init_from="") == ctrl


def test_rows_are_appended_and_a_rerun_replaces_its_row(tmp_path):
    row = {"variant": "a", "steps": 10, "batch": 2, "seed": 0, "mpjpe_mm": 300.0, "pa_mpjpe_mm": 120.0,
           "orient_median_deg": 80.0, "mean_pose_mpjpe_mm": 330.0, "mean_pose_pa_mpjpe_mm": 90.0,
           "mean_pose_orient_median_deg": 75.0}  # fmt: skip
    csv = tmp_path / "d" / "learnability.csv"
    L.append_row(row, csv)
    L.append_row({**row, "variant": "b", "mpjpe_mm": 200.0}, csv)
    df = L.append_row({**row, "mpjpe_mm": 250.0}, csv)  # same variant / budget / seed: replaced
    assert list(df["variant"]) == ["b", "a"] and list(df["mpjpe_mm"]) == [200.0, 250.0]
    assert list(pd.read_csv(csv)["mpjpe_mm"]) == [200.0, 250.0]  # what is on disk
    L.append_row({**row, "steps": 20}, csv)  # another budget: a new row
    assert len(pd.read_csv(csv)) == 3
    L.append_row({**row, "init_from": "data/x"}, csv)  # a fine-tune from a checkpoint: a new row
    df = L.append_row({**row, "init_from": "data/x", "mpjpe_mm": 100.0}, csv)  # ... which a rerun replaces
    assert len(df) == 4 and df["mpjpe_mm"].iloc[-1] == 100.0 and df["mpjpe_mm"].iloc[1] == 250.0
    L.plot(pd.read_csv(csv), tmp_path / "d" / "fig.png")
    assert (tmp_path / "d" / "fig.png").stat().st_size > 10_000


def test_a_proxy_run_on_the_tiny_world_scores_against_the_mean_pose(tmp_path, embedded_body_dir):
    from data_prep.build_world import build_world

    build_world("tiny", progress=False)  # notebook 00's job (idempotent); has dense part labels
    row = L.run_variant("dense", eval_world="tiny", runs_dir=tmp_path, progress=False, preset="tiny",
                        world="tiny", steps=3, batch=2, precision="fp32")  # fmt: skip
    assert row["variant"] == "dense" and row["steps"] == 3 and row["test_frames"] > 0
    for k in ("mpjpe_mm", "pa_mpjpe_mm", "orient_median_deg", "mean_pose_mpjpe_mm", "final_dense_loss"):
        assert row[k] > 0, k
    assert 0 <= row["probe_backbone_deg"] <= 180 and 0 <= row["probe_head_deg"] <= 180
    assert row["mpjpe_ratio"] == pytest.approx(row["mpjpe_mm"] / row["mean_pose_mpjpe_mm"])
    assert (tmp_path / "dense_s3_b2_seed0" / "train_state.pt").exists()
    for k in ("dense_fg_acc", "dense_part_acc", "dense_front_back_acc"):  # the dense head's test accuracies
        assert 0 <= row[k] <= 1, k
    # --resume: a finished variant is scored again without training, one never started starts fresh
    kw = dict(eval_world="tiny", runs_dir=tmp_path, progress=False, preset="tiny", world="tiny", batch=2,
              precision="fp32", probe_frames=0, resume=True)  # fmt: skip
    again = L.run_variant("dense", steps=3, **kw)
    assert again["mpjpe_mm"] == pytest.approx(row["mpjpe_mm"]) and again["train_s"] == pytest.approx(
        row["train_s"], abs=1
    )
    fresh = L.run_variant("base", steps=2, **kw)
    assert fresh["steps"] == 2 and "dense_fg_acc" not in fresh
