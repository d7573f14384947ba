"""Where the one-step diffusion decoder loses accuracy (issue 17 item 2), in one table.

Every stage poses SMPL θ for the same test frames and is scored by
:func:`fasthmr_lib.eval.metrics.evaluate_poses` (MPJPE / PA-MPJPE / PVE in mm, Accel in mm/frame² and m/s²,
the global orientation's geodesic error in degrees, and per protocol joint), the code that scores notebook
04's decoder-vs-head table. From the representation's floor to the full model:

* ``hybrik_roundtrip``: GT θ -> HybrIK features -> analytic IK with the GT β (the representation's floor);
* ``vae_recon``: GT features -> VAE encoder (posterior mean μ) -> VAE decoder -> IK with the GT β, windowed
  like the decoder (:func:`~fasthmr_lib.diffusion.decoder.reconstruct_features`). This is also the
  latent oracle: the denoiser is trained to output exactly this μ (docs/AMBIGUITIES.md #12), so a perfect
  denoiser scores this row;
* ``decoder_oracle_orient_betas``: the decoder's output on the model's head tokens, IK redone with the GT β
  and the GT global orientation swapped in: what is left is the decoder's body pose (its local joint
  rotations);
* ``decoder_oracle_orient``: the same with the head's β (the IK's and the mesh's shape from the head), so
  the step from the row above is the shape's share;
* ``decoder``: the decoder as deployed (head tokens, head β);
* ``head_oracle_orient``: the per-frame head's θ with the GT global orientation (head β): beside
  ``decoder_oracle_orient``, whose body pose is better;
* ``head``: the per-frame head (the reference row);
* ``head_smoothed``: the per-frame head's HybrIK features smoothed over time by a Gaussian of
  :data:`HEAD_SMOOTH_SIGMA` frames (edges replicated), then IK with the head's β: a training-free temporal
  filter, the bar any temporal decoder should clear (it cuts Accel without learning anything; it cannot
  fix a frame's pose error that persists over neighbouring frames).

Oracle choice: swaps after the denoiser (as ``scripts/measure_pose_parts.py`` does for the per-frame
model) need no training and separate the facing direction's loss from the body pose's — the baseline's
known weakness is its facing direction (README, issue 16). A denoiser conditioned on GT features would
need its own training run and says less: how well the denoiser can map *some* condition to the latent is
bounded by ``vae_recon`` already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import roma
import torch
from torch import Tensor, nn

from ..body.hybrik import twist_unit
from ..diffusion.decoder import DiffusionDecoder, reconstruct_features
from .evaluate import LSP14_NAMES, SMPL24_NAMES
from .metrics import evaluate_poses

#: the stages in order, from the representation's floor to the full model, with what each one takes from
#: the ground truth: (stage, θ's source, global orientation, β)
STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("hybrik_roundtrip", "GT θ -> HybrIK features -> IK", "GT (round trip)", "GT"),
    ("vae_recon", "GT features -> VAE (μ) -> IK", "GT (through the VAE)", "GT"),
    ("decoder_oracle_orient_betas", "decoder on head tokens, IK with GT β", "GT", "GT"),
    ("decoder_oracle_orient", "decoder on head tokens", "GT", "head"),
    ("decoder", "decoder on head tokens", "decoder", "head"),
    ("head_oracle_orient", "per-frame head", "GT", "head"),
    ("head", "per-frame head", "head", "head"),
    ("head_smoothed", "per-frame head, features Gaussian-smoothed over time", "head (smoothed)", "head"),
)
#: σ (frames) of ``head_smoothed``'s Gaussian, 2 frames at 30 fps. Measured on the default test split with the
#: stage-6 ``small``, σ = 1 / 2 / 3 / 5: Accel 17.3 / 8.0 / 5.7 / 4.7 mm/frame², PA-MPJPE 56.8 / 57.0 / 57.3 /
#: 58.2 mm (the head: 55.6, 56.4)
HEAD_SMOOTH_SIGMA = 2.0
STAGE_NAMES = tuple(s[0] for s in STAGES)
SUMMARY_METRICS = ("mpjpe", "pa_mpjpe", "pve", "accel", "accel_ms2", "orient_deg")
#: the summary's columns shown in its Markdown copy (the CSV has all)
MD_COLUMNS = ("stage", "global_orient", "betas", "mpjpe", "pa_mpjpe", "pve", "accel_ms2", "orient_deg",
              "orient_median_deg")  # fmt: skip


def gaussian_smooth(x: Tensor, sigma: float) -> Tensor:
    """x (T, ...) filtered along time (dim 0) by a normalised Gaussian of ``sigma`` frames (radius ⌈4σ⌉,
    edge frames replicated); ``sigma`` <= 0 returns x."""
    if sigma <= 0 or x.shape[0] < 2:
        return x
    r = int(np.ceil(4 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    flat = x.reshape(x.shape[0], -1).T[:, None]  # (C,1,T)
    idx = torch.arange(-r, x.shape[0] + r).clamp(0, x.shape[0] - 1)
    out = torch.nn.functional.conv1d(flat[..., idx], k.flip(0)[None, None])
    return out[:, 0].T.reshape(x.shape)


def _with_gt_orient(rotmat: Tensor, gt_rotmat: Tensor) -> Tensor:
    """rotmat (T,24,3,3) with joint 0 (the global orientation) replaced by gt_rotmat's (T,24,3,3)."""
    return torch.cat([gt_rotmat[:, :1], rotmat[:, 1:]], 1)


@torch.no_grad()
def stage_predictions(
    decoder: DiffusionDecoder,
    tokens: Mapping[str, Mapping[str, np.ndarray]],
    gt: Mapping[str, Mapping[str, np.ndarray]],
    *,
    seed: int = 0,
    stages: tuple[str, ...] = STAGE_NAMES,
) -> dict[str, dict[str, dict[str, Tensor]]]:
    """{stage: {clip_id: {"rotmat" (T,24,3,3), "betas" (T,10)}}} for the stages of :data:`STAGES`.

    tokens[clip_id]: ``tokens`` (T,C), ``betas`` (T,10), ``rotmat`` (T,24,3,3) and ``frames`` (T,) as
    :func:`~fasthmr_lib.diffusion.training.extract_head_tokens` returns them (``keep=("betas", "rotmat")``);
    gt[clip_id]: ``pose`` (N,72) axis-angle and ``betas`` (N,10) of the whole clip (rows ``frames`` are
    used). The decoder runs once per clip (``seed``); its VAE, feature stats and HybrIK body serve the
    floors."""
    unknown = sorted(set(stages) - set(STAGE_NAMES))
    if unknown:
        raise ValueError(f"stage_predictions: unknown stages {unknown}; expected some of {STAGE_NAMES}")
    hb = decoder.body
    dev = hb.rest_template.device
    out: dict[str, dict[str, dict[str, Tensor]]] = {s: {} for s in stages}
    gt_fr = gt_at_frames(gt, tokens)
    for c, v in tokens.items():
        pose = torch.as_tensor(gt_fr[c]["pose"], dtype=torch.float32)
        gb = torch.as_tensor(gt_fr[c]["betas"], dtype=torch.float32)
        Rg = roma.rotvec_to_rotmat(pose.reshape(-1, 24, 3))
        hbeta = torch.as_tensor(np.asarray(v["betas"]), dtype=torch.float32)
        Rh = torch.as_tensor(np.asarray(v["rotmat"]), dtype=torch.float32)
        feats = hb.encode(Rg.to(dev), gb.to(dev)).cpu()
        cand = {}
        if "hybrik_roundtrip" in stages:
            cand["hybrik_roundtrip"] = (hb.decode(feats.to(dev), gb.to(dev)).cpu(), gb)
        if "vae_recon" in stages:
            rec = reconstruct_features(
                decoder.vae, decoder.stats, feats, overlap=decoder.overlap, tail=decoder.tail
            )
            cand["vae_recon"] = (hb.decode(rec.to(dev), gb.to(dev)).cpu(), gb)
        if any(s.startswith("decoder") for s in stages):
            tok = torch.as_tensor(np.asarray(v["tokens"]), dtype=torch.float32)
            d = decoder(tok, hbeta, seed=seed, rotmat=Rh)
            Rgb = decoder.features_to_pose(d["features"], gb)["rotmat"]
            cand["decoder_oracle_orient_betas"] = (_with_gt_orient(Rgb, Rg), gb)
            cand["decoder_oracle_orient"] = (_with_gt_orient(d["rotmat"], Rg), hbeta)
            cand["decoder"] = (d["rotmat"], hbeta)
        cand["head_oracle_orient"] = (_with_gt_orient(Rh, Rg), hbeta)
        cand["head"] = (Rh, hbeta)
        if "head_smoothed" in stages:
            fh = gaussian_smooth(hb.encode(Rh.to(dev), hbeta.to(dev)), HEAD_SMOOTH_SIGMA)
            if hb.representation == "hybrik":
                fh = twist_unit(fh)
            cand["head_smoothed"] = (hb.decode(fh, hbeta.to(dev)).cpu(), hbeta)
        for s in stages:
            R, b = cand[s]
            out[s][c] = {"rotmat": R, "betas": b}
    return out


def gt_at_frames(
    gt: Mapping[str, Mapping[str, np.ndarray]], tokens: Mapping[str, Mapping[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """The GT ``pose`` / ``betas`` rows of each clip's evaluated ``frames`` (tokens[clip]["frames"])."""
    out = {}
    for c, v in tokens.items():
        if c not in gt:
            raise KeyError(f"no ground truth for clip {c!r}")
        fr = np.asarray(v["frames"])
        out[c] = {"pose": np.asarray(gt[c]["pose"])[fr], "betas": np.asarray(gt[c]["betas"])[fr]}
    return out


def joint_names(n: int) -> tuple[str, ...]:
    """Names of a protocol's n joints (14 LSP or 24 SMPL; else ``joint_XX``)."""
    return LSP14_NAMES if n == 14 else SMPL24_NAMES if n == 24 else tuple(f"joint_{k:02d}" for k in range(n))


def accuracy_loss_frames(
    smpl: nn.Module,
    decoder: DiffusionDecoder,
    tokens: Mapping[str, Mapping[str, np.ndarray]],
    gt: Mapping[str, Mapping[str, np.ndarray]],
    *,
    protocol: str = "3dpw14",
    seed: int = 0,
    stages: tuple[str, ...] = STAGE_NAMES,
    h36m_regressor: Any = None,
    gt_smpl: nn.Module | Mapping[str, nn.Module] | None = None,
) -> pd.DataFrame:
    """Per-frame errors of every stage (column ``method`` = stage): :func:`evaluate_poses` rows with
    ``orient_deg`` and ``joint_XX`` (mm) columns. Arguments as :func:`stage_predictions`; ``smpl`` poses
    the predictions (and the GT unless ``gt_smpl``)."""
    preds = stage_predictions(decoder, tokens, gt, seed=seed, stages=stages)
    g = gt_at_frames(gt, tokens)
    kw = dict(
        protocol=protocol, h36m_regressor=h36m_regressor, gt_smpl=gt_smpl, per_joint=True, orientation=True
    )
    return pd.concat(
        [evaluate_poses(smpl, p, g, method=s, **kw) for s, p in preds.items()], ignore_index=True
    )


def accuracy_loss_tables(frames: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, per_joint) of :func:`accuracy_loss_frames`' rows.

    summary: one row per stage in :data:`STAGES` order: ``stage``, ``theta``, ``global_orient``, ``betas``
    (what comes from where), mean ``mpjpe``, ``pa_mpjpe``, ``pve`` (mm), ``accel`` (mm/frame²), ``accel_ms2``
    (m/s²), ``orient_deg`` (mean) and ``orient_median_deg`` (degrees), ``frames``.
    per_joint: long form ``stage``, ``joint`` (name), ``joint_index``, ``mpjpe_mm`` (the joint's mean error
    after the protocol's root alignment; a stage's joints average to its ``mpjpe``)."""
    info = {s[0]: {"theta": s[1], "global_orient": s[2], "betas": s[3]} for s in STAGES}
    g = frames.groupby("method", sort=False)
    summary = g[[m for m in SUMMARY_METRICS if m in frames.columns]].mean()
    summary["orient_median_deg"] = g["orient_deg"].median()
    summary["frames"] = g.size()
    summary = summary.reset_index().rename(columns={"method": "stage"})
    order = {s: i for i, s in enumerate(STAGE_NAMES)}
    summary = summary.sort_values("stage", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    meta = pd.DataFrame([{"stage": s, **info.get(s, {})} for s in summary["stage"]])
    summary = meta.merge(summary, on="stage")
    jcols = sorted(c for c in frames.columns if c.startswith("joint_"))
    names = joint_names(len(jcols))
    pj = g[jcols].mean().reindex(summary["stage"])
    per_joint = pd.DataFrame(
        [
            {"stage": s, "joint": names[k], "joint_index": k, "mpjpe_mm": float(pj.loc[s, col])}
            for s in pj.index
            for k, col in enumerate(jcols)
        ]
    )
    return summary, per_joint
