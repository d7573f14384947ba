"""Evaluation harness: an oracle model scores 0 mm, mean-pose reference, summaries, token counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import roma
import torch
from torch import nn

from fasthmr_lib.eval.evaluate import (
    MeanPoseModel,
    evaluate,
    facing_bins,
    mean_smpl_params,
    mpjpe_evaluator,
    orientation_summary,
    per_clip,
    person_token_count,
    summarize,
)
from fasthmr_lib.viz import evaluation as VE


class Frames(torch.utils.data.Dataset):
    """CropDataset-shaped items; the frame's global index is written into img[0, 0, 0] so an oracle
    model can look its GT up. Two clips of 5 frames; smooth poses along each clip."""

    split = "test"

    def __init__(self, n_per_clip: int = 5, same_pose: bool = False, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = 2 * n_per_clip
        t = np.arange(n, dtype=np.float32)[:, None]
        self.go = (rng.normal(0, 0.3, (1, 3)) + 0.05 * t).astype(np.float32)
        self.bp = (rng.normal(0, 0.2, (1, 69)) + 0.02 * np.sin(t + rng.normal(0, 1, (1, 69)))).astype(
            np.float32
        )
        self.betas = rng.normal(0, 1.0, (n, 10)).astype(np.float32)
        if same_pose:
            self.go[:], self.bp[:], self.betas[:] = self.go[0], self.bp[0], self.betas[0]
        self.n, self.k = n, n_per_clip

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        img = torch.zeros(3, 256, 256)
        img[0, 0, 0] = i
        return {
            "img": img,
            "person_mask": torch.ones(256, 256),
            "global_orient": torch.from_numpy(self.go[i]),
            "body_pose": torch.from_numpy(self.bp[i]),
            "betas": torch.from_numpy(self.betas[i]),
            "clip_id": f"clip{i // self.k}",
            "frame": i % self.k,
            "occlusion": torch.tensor(0.0),
        }


class Oracle(nn.Module):
    """Outputs the GT of the frame whose index is in img[:, 0, 0, 0] (optionally a fixed pose error)."""

    def __init__(self, ds: Frames, smpl, perturb: float = 0.0, head_shift: float = 0.0):
        super().__init__()
        self.ds, self.smpl, self.perturb, self.head_shift = ds, smpl, perturb, head_shift
        self.seen_mask = False

    def forward(self, img, person_mask=None, bbox_info=None):
        self.seen_mask = person_mask is not None
        idx = img[:, 0, 0, 0].round().long().tolist()
        pose = torch.stack(
            [torch.cat([torch.from_numpy(self.ds.go[i]), torch.from_numpy(self.ds.bp[i])]) for i in idx]
        )
        pose = pose.clone()
        pose[:, 3 * 18 + 2] += self.perturb  # bend the left elbow (SMPL joint 18) about z
        betas = torch.stack([torch.from_numpy(self.ds.betas[i]) for i in idx])
        R = roma.rotvec_to_rotmat(pose.view(-1, 24, 3))
        body = self.smpl(R[:, :1], R[:, 1:], betas)
        j = body["joints44"].clone()
        j[:, 43, 0] += self.head_shift  # 44-layout index 43 = H36M head = 14th LSP joint
        return {
            "rotmat": R,
            "betas": betas,
            "joints3d": j + 1.0,  # offset: root-aligned away
            "vertices": body["vertices"] + 1.0,
        }


def test_oracle_scores_zero_mm(fake_body):
    ds = Frames()
    model = Oracle(ds, fake_body)
    df = evaluate(model, ds, batch_size=3, progress=False)
    assert model.seen_mask  # person_mask is passed through
    assert len(df) == 10 and set(df["clip_id"]) == {"clip0", "clip1"}
    for c in ("mpjpe", "pa_mpjpe", "pve"):
        assert df[c].abs().max() < 1e-3, c
    # accel defined at the 3 interior frames of each 5-frame clip
    assert df["accel"].notna().sum() == 6 and df["accel"].max() < 1e-3
    assert (df["person_tokens"] == 192).all() and (df["split"] == "test").all()
    assert df["orient_deg"].abs().max() < 1e-2  # global orientation exact
    s = summarize(df)
    assert list(s["split"]) == ["test"] and int(s["frames"].iloc[0]) == 10 and int(s["clips"].iloc[0]) == 2
    df24 = evaluate(model, ds, batch_size=4, progress=False, protocol="emdb24", per_joint=True)
    assert df24["mpjpe"].max() < 1e-3 and "joint_23" in df24.columns


def test_errors_are_positive_and_per_joint_localised(fake_body):
    ds = Frames()
    df = evaluate(Oracle(ds, fake_body, perturb=0.5), ds, batch_size=4, progress=False, per_joint=True)
    assert (df["mpjpe"] > 1.0).all() and (df["pve"] > 0.1).all()
    joints = df[[f"joint_{k:02d}" for k in range(14)]]
    np.testing.assert_allclose(df["mpjpe"], joints.mean(axis=1), rtol=1e-4)
    # hand case: only the head joint is 14 mm off (hips, hence the root, untouched) -> MPJPE 1 mm, PVE 0
    d = evaluate(Oracle(ds, fake_body, head_shift=0.014), ds, batch_size=4, progress=False, per_joint=True)
    np.testing.assert_allclose(d["joint_13"], 14.0, atol=1e-3)
    np.testing.assert_allclose(d["mpjpe"], 1.0, atol=1e-3)
    assert d[[f"joint_{k:02d}" for k in range(13)]].abs().max().max() < 1e-3 and d["pve"].max() < 1e-3
    assert len(per_clip(df)) == 2
    f = mpjpe_evaluator(ds, batch_size=4)
    assert f(Oracle(ds, fake_body)) < 1e-3
    assert f(Oracle(ds, fake_body, perturb=0.5)) == pytest.approx(float(df["mpjpe"].mean()), rel=1e-5)


def test_mean_pose_predictor(fake_body):
    same = Frames(same_pose=True)
    ref = MeanPoseModel.from_dataset(fake_body, same)
    assert evaluate(ref, same, progress=False)["mpjpe"].max() < 1e-3  # the mean of one pose is that pose
    ds = Frames(seed=1)
    ref = MeanPoseModel.from_dataset(fake_body, ds)
    df = evaluate(ref, ds, progress=False)
    assert (df["mpjpe"] > 0).all()
    assert df["accel"].dropna().gt(0).all()  # constant prediction vs moving GT
    # chordal mean of +a and -a about the same axis is the identity
    go = torch.tensor([[0.0, 0.0, 0.4], [0.0, 0.0, -0.4]])
    R, b = mean_smpl_params(go, torch.zeros(2, 69), torch.tensor([[1.0] * 10, [3.0] * 10]))
    torch.testing.assert_close(R, torch.eye(3).expand(24, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(b, torch.full((10,), 2.0))


def test_person_token_count_hand_case():
    m = torch.zeros(2, 256, 256)
    m[1, :, 32 : 32 + 96] = 1.0  # left half of the 192 columns the backbone sees
    # patch column c covers trimmed columns [16c - 2, 16c + 14): c = 0..5 are >= 50 % covered
    assert person_token_count(m).tolist() == [0, 6 * 16]
    assert person_token_count(torch.ones(1, 256, 256)).tolist() == [192]


def test_mean_pose_from_clip_files(fake_body, tmp_path):
    (tmp_path / "train").mkdir()
    rng = np.random.default_rng(0)
    go, bp, be = (rng.normal(0, s, (6, n)).astype(np.float32) for s, n in ((0.3, 3), (0.2, 69), (1.0, 10)))
    for k in range(2):
        sl = slice(3 * k, 3 * k + 3)
        np.savez_compressed(
            tmp_path / "train" / f"c{k}.npz",
            global_orient=go[sl],
            body_pose=bp[sl],
            betas=be[sl],
            images=np.zeros((3, 4, 4, 3), np.uint8),
        )
    m = MeanPoseModel.from_clips(fake_body, tmp_path, "train")
    ref = MeanPoseModel.from_labels(fake_body, torch.tensor(go), torch.tensor(bp), torch.tensor(be))
    torch.testing.assert_close(m.rotmat, ref.rotmat)
    torch.testing.assert_close(m.betas, ref.betas)
    with pytest.raises(FileNotFoundError, match="no clip files"):
        MeanPoseModel.from_clips(fake_body, tmp_path, "test")


def test_orientation_summary_and_plot(fake_body, tmp_path):
    ds = Frames()
    exact = evaluate(Oracle(ds, fake_body), ds, batch_size=4, progress=False)
    flipped = exact.assign(orient_deg=180.0 - exact["orient_deg"])
    t = orientation_summary({"exact": exact, "flipped": flipped})
    assert list(t["predictor"]) == ["exact", "flipped"] and list(t["frames"]) == [10, 10]
    assert t["median_deg"].iloc[0] < 1e-2 and t["pct_over_90deg"].tolist() == [0.0, 100.0]
    VE.plot_orientation_error({"exact": exact}, path=tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no 'orient_deg' column"):
        orientation_summary({"bare": exact.drop(columns="orient_deg")})


def test_wham_mesh_protocol_through_evaluate(fake_body, tmp_path, monkeypatch):
    """wham_3dpw14 through evaluate / mpjpe_evaluator: joints regressed from the model's and the GT's
    meshes (the model's joints3d are ignored), WHAM's Accel rule, a clear error without the regressor."""
    from fasthmr_lib.eval import metrics as M

    rng = np.random.default_rng(0)
    reg = np.zeros((17, fake_body.num_vertices), np.float32)  # each joint on 30 random vertices
    for j in range(17):
        reg[j, rng.choice(fake_body.num_vertices, 30, replace=False)] = rng.random(30) + 0.1
    path = tmp_path / "J_regressor_h36m.npy"
    np.save(path, reg / reg.sum(1, keepdims=True))
    ds = Frames()
    df = evaluate(Oracle(ds, fake_body, head_shift=0.3), ds, progress=False, protocol="wham_3dpw14",
                  h36m_regressor=path)  # fmt: skip
    assert df[["mpjpe", "pa_mpjpe", "pve"]].abs().max().max() < 1e-3  # head_shift moves joints3d only
    assert df["accel_ms2"].notna().sum() == 2  # WHAM: [1:-1] of a 5-frame clip's 3 values -> frame 2
    assert df.loc[df["frame"] == 2, "accel_ms2"].abs().max() < 1e-3
    pert = evaluate(Oracle(ds, fake_body, perturb=0.5), ds, progress=False, protocol="wham_3dpw14",
                    h36m_regressor=path)  # fmt: skip
    R = roma.rotvec_to_rotmat(torch.from_numpy(np.concatenate([ds.go, ds.bp], 1)).view(-1, 24, 3))
    pose = torch.from_numpy(np.concatenate([ds.go, ds.bp], 1)).clone()
    pose[:, 3 * 18 + 2] += 0.5
    Rp = roma.rotvec_to_rotmat(pose.view(-1, 24, 3))
    b = torch.from_numpy(ds.betas)
    ref = M.evaluate_frames(None, None, "wham_3dpw14", fake_body(Rp[:, :1], Rp[:, 1:], b)["vertices"],
                            fake_body(R[:, :1], R[:, 1:], b)["vertices"], h36m_regressor=path)  # fmt: skip
    np.testing.assert_allclose(pert["mpjpe"], ref["mpjpe"], rtol=1e-4, atol=1e-3)
    assert (pert["mpjpe"] > 1.0).all()
    monkeypatch.setenv("FASTHMR_H36M_REGRESSOR", str(path))
    f = mpjpe_evaluator(ds, batch_size=4, protocol="wham_3dpw14")
    assert f(Oracle(ds, fake_body, perturb=0.5)) == pytest.approx(float(pert["mpjpe"].mean()), rel=1e-5)
    monkeypatch.delenv("FASTHMR_H36M_REGRESSOR")
    with pytest.raises(FileNotFoundError, match=r"J_regressor_h36m\.npy"):
        evaluate(Oracle(ds, fake_body), ds, progress=False, protocol="wham_3dpw14")


class GenderedFrames(Frames):
    """Frames whose clip 1 is annotated with the male model (clip 0: neutral)."""

    def __getitem__(self, i):
        return {**super().__getitem__(i), "gender": "male" if i >= self.k else "neutral"}


def test_gt_bodies_pose_each_item_with_its_gendered_model(tmp_path):
    """evaluate(gt_bodies=...) builds each frame's GT with its gender's body model (WHAM's 3DPW / EMDB GT):
    an oracle predicting with the male model scores 0 on the male clip only when the GT is gendered; a
    missing gender model falls back to the neutral one."""
    from conftest import fake_smpl_arrays, write_smpl_dir

    from fasthmr_lib.body.smpl import GenderedBodies, load_body_model

    d = write_smpl_dir(tmp_path / "smpl")
    np.savez(d / "SMPL_MALE.npz", **fake_smpl_arrays(seed=1))
    bodies = GenderedBodies(d)
    neutral, male = bodies.get("neutral")[0], bodies.get("m")[0]
    assert bodies.get("female") == (neutral, "neutral") and bodies.fallbacks == {"female"}
    ds = GenderedFrames()
    oracle_male = Oracle(ds, male)  # predicts the male body for every frame
    plain = evaluate(oracle_male, ds, batch_size=3, progress=False, smpl=neutral)
    gendered = evaluate(oracle_male, ds, batch_size=3, progress=False, smpl=neutral, gt_bodies=bodies)
    on_male = gendered["clip_id"] == "clip1"
    assert gendered.loc[on_male, "mpjpe"].max() < 1e-3 and gendered.loc[on_male, "pve"].max() < 1e-3
    assert plain.loc[plain["clip_id"] == "clip1", "pve"].min() > 1.0  # neutral GT: the male mesh is off
    assert gendered.loc[~on_male, "pve"].min() > 1.0  # neutral frames keep the neutral GT
    assert load_body_model(d, "male").v_template.shape == male.v_template.shape


def test_facing_columns_and_bins(fake_body, tmp_path):
    ds = Frames()
    exact = evaluate(Oracle(ds, fake_body), ds, batch_size=4, progress=False)
    # the oracle's facing angle is the GT's, which is facing_angle_deg of the labels
    from fasthmr_lib.body.orientation import facing_angle_deg

    np.testing.assert_allclose(exact["facing_deg"], facing_angle_deg(torch.tensor(ds.go)).numpy(), atol=1e-3)
    np.testing.assert_allclose(exact["pred_facing_deg"], exact["facing_deg"], atol=1e-2)
    # a hand-made frame table: people facing the camera (0..20°) predicted side-on (90°), one from behind
    # (170°) predicted at -170° (20° across the wrap-around)
    df = pd.DataFrame(
        {"facing_deg": [0.0, 10.0, 20.0, 170.0], "pred_facing_deg": [90.0, 90.0, 90.0, -170.0],
         "orient_deg": [90.0, 80.0, 70.0, 20.0]}
    )  # fmt: skip
    t = facing_bins(df, width=90).set_index("true_facing_deg")
    assert list(t.index) == ["[0, 90)", "[90, 180)"] and t["frames"].tolist() == [3, 1]
    assert t.loc["[0, 90)", "yaw_err_median_deg"] == 80.0 and t.loc["[0, 90)", "yaw_bias_deg"] == 80.0
    assert t.loc["[0, 90)", "pred_abs_facing_median_deg"] == 90.0
    assert t.loc["[90, 180)", "yaw_err_median_deg"] == pytest.approx(20.0)
    assert t.loc["[0, 90)", "pct_over_90deg"] == 0.0
    with pytest.raises(ValueError, match="no 'pred_facing_deg' column"):
        facing_bins(df.drop(columns="pred_facing_deg"))
    with pytest.raises(ValueError, match="width must divide 360"):
        facing_bins(df, width=50)
    VE.plot_facing_scatter({"exact": exact, "hand": df}, path=tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
