"""Learnability harness: which training lever makes the from-scratch baseline learn, at one fixed budget.

Every variant is the same short proxy run — ``steps`` optimizer steps of ``batch`` crops of the training
world, the same seed, the same evaluation — changed in one lever only (a :class:`TrainConfig` override).
Each run is scored on the clip-disjoint ``test`` split of the evaluation world (other people, motions and
cameras) by MPJPE / PA-MPJPE (mm) and the global-orientation error (degrees; the baseline's failure is the
facing direction), next to the mean pose of the evaluation world's ``train`` split. One row per variant is
appended to ``results/diagnostics/learnability.csv`` (a rerun of the same variant, budget and seed replaces
its row) and the figure ``learnability.png`` is redrawn::

    python -m fasthmr_lib.eval.learnability --variants base dense dense_pretrain facing_curriculum

Runs live in ``data/learnability/<variant>/`` (git-ignored) and resume with ``--resume``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..io import atomic_path, git_hash
from ..models.losses import LossWeights
from ..models.recipe import TrainConfig
from ..models.train import STATE_FILE, train
from ..paths import data_dir, results_dir

CSV_NAME = "learnability.csv"
FIG_NAME = "learnability.png"

# The proxy's common recipe: the shipped small's recipe (loss weights, lr, warm-up; fp32: bf16 autocast
# is emulated, ~10x slower, on CPUs without AVX512-BF16/AMX such as this AVX2 machine) on the wide
# training world (2,048 clips; its seeds are disjoint from the evaluation world's).
BASE = TrainConfig(
    preset="small",
    world="train_wide",
    steps=300,
    batch=16,
    lr=2e-4,
    warmup=30,
    save_every=50,
    loss_weights=LossWeights(global_orient=0.02, body_pose=0.005),
)

# The fine-tune proxies' common recipe: stage 3 of the shipped small (README) at a lower learning rate.
FT: dict[str, Any] = {
    "lr": 1e-4,
    "warmup": 10,
    "loss_weights": {"keypoints_3d": 0.0, "keypoints_3d_body": 0.05, "dense_parts": 0.5},
}


def _ft(**weights: float) -> dict[str, Any]:
    """:data:`FT` with these loss weights changed."""
    return FT | {"loss_weights": FT["loss_weights"] | weights}


# variant name -> (what it changes, TrainConfig overrides; "loss_weights" entries update BASE's weights)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "base": ("the shipped recipe (HMR2.0 losses, orientation/pose weights raised)", {}),
    "dense": (
        "+ dense part head: 49-way part (L/R) x front/back labels per 4x4-px sub-cell",
        {"loss_weights": {"dense_parts": 0.5}},
    ),
    "dense_w2": ("+ dense part head, weight 2.0", {"loss_weights": {"dense_parts": 2.0}}),
    "dense_pretrain": (
        "+ dense part head; first third of the steps on the dense loss alone (backbone pretraining)",
        {"loss_weights": {"dense_parts": 0.5}, "pretrain_steps": 100},
    ),
    "facing_curriculum": (
        "facing curriculum: crops drawn ~ exp(2 (cos phi - 1)), annealed to uniform over the run",
        {"facing_kappa": 2.0, "curriculum_steps": 300},
    ),
    "kp3d_body": (
        "3D keypoint loss in each body's own frame, not the camera frame (facing errors don't bend the body)",
        {"loss_weights": {"keypoints_3d": 0.0, "keypoints_3d_body": 0.05}},
    ),
    "kp3d_split": (
        "3D keypoints split: body-frame term for the body, camera-frame term for the facing direction only",
        {"loss_weights": {"keypoints_3d": 0.0, "keypoints_3d_body": 0.05, "keypoints_3d_orient": 0.05}},
    ),
    "kp3d_body_add": (
        "+ body-frame 3D keypoint loss beside HMR2.0's camera-frame one (weight 0.05 each)",
        {"loss_weights": {"keypoints_3d_body": 0.05}},
    ),
    "dense_facing": (
        "+ dense part head + facing curriculum",
        {"loss_weights": {"dense_parts": 0.5}, "facing_kappa": 2.0, "curriculum_steps": 300},
    ),
    "lr5e-4": ("learning rate 5e-4 (2.5x)", {"lr": 5e-4}),
    "dense_lr5e-4": (
        "+ dense part head, learning rate 5e-4",
        {"loss_weights": {"dense_parts": 0.5}, "lr": 5e-4},
    ),
    "bf16": ("bf16 autocast instead of fp32 (fast only with bf16 matrix units)", {"precision": "bf16"}),
    # Fine-tune proxies (``--init-from`` a body-frame-trained checkpoint, e.g. stage 3 of the shipped small):
    # its body pose beats the mean pose, its facing direction (yaw) does not; which term teaches the yaw?
    "ft_control": ("fine-tune: stage 3's recipe continued (body-frame 3D keypoints, dense head)", FT),
    "ft_orient_w": (
        "fine-tune: global-orientation rotation loss weight 10x (0.02 -> 0.2)",
        _ft(global_orient=0.2),
    ),
    "ft_kp3d_orient": (
        "fine-tune: + camera-frame 3D keypoints whose gradient reaches the facing direction only",
        _ft(keypoints_3d_orient=0.05),
    ),
    "ft_orient_both": (
        "fine-tune: rotation loss weight 10x + orientation-only camera-frame 3D keypoints",
        _ft(global_orient=0.2, keypoints_3d_orient=0.05),
    ),
    # Stage 3's dense head had the front/back bit at chance (README): its loss is a mean over all cells,
    # ~85 % background. Do the subject's cells, or the front/back bit itself, teach the facing direction?
    "ft_dense_fg": (
        "fine-tune: + dense cross-entropy over the subject's cells only (weight 0.5)",
        _ft(dense_fg=0.5),
    ),
    "ft_front_back": (
        "fine-tune: + front/back binary cross-entropy on the subject's cells (weight 0.5)",
        _ft(dense_front_back=0.5),
    ),
    # The shipped small hedges: people facing the camera or away from it come out side-on (ev.facing_bins).
    # HMR2.0's squared rotation loss is indifferent between hedging and committing when front and back are
    # at even odds; the unsquared chord prefers committing (losses.py). Weight 0.6 ~ the 10x squared term's
    # gradient at a typical chord of 1.5 (2 x 1.5 x 0.2), so the comparison with ft_orient_w is the shape.
    "ft_orient_chord": (
        "fine-tune: global-orientation loss unsquared (chord |R - R_gt|, weight 0.6) instead of squared",
        _ft(global_orient=0.0, global_orient_chord=0.6),
    ),
    # A direct target for the bit: the stage-3 backbone fine-tuned on it alone was at chance for 600 steps,
    # then 0.76 at 900 (scripts/measure_front_back.py): does it, beside the HMR losses, reach the yaw?
    "ft_front_back_crop": (
        "fine-tune: + crop-level seen-from-behind bit (linear on the mean subject token, weight 0.5)",
        _ft(front_back_crop=0.5),
    ),
}


def variant_config(name: str, base: TrainConfig = BASE, **budget: Any) -> TrainConfig:
    """``base`` with variant ``name``'s overrides, then ``budget`` fields (``steps``, ``batch``, ``seed``...).
    A ``curriculum_steps`` or ``pretrain_steps`` of a variant scales with ``steps`` when it changes."""
    if name not in VARIANTS:
        raise KeyError(f"unknown learnability variant {name!r}; expected one of {sorted(VARIANTS)}")
    over = dict(VARIANTS[name][1])
    lw = dataclasses.replace(base.loss_weights, **over.pop("loss_weights", {}))
    cfg = dataclasses.replace(base, loss_weights=lw, **over)
    steps = int(budget.get("steps", cfg.steps))
    scale = steps / base.steps
    for key in ("curriculum_steps", "pretrain_steps"):
        if getattr(cfg, key):
            cfg = dataclasses.replace(cfg, **{key: int(round(getattr(cfg, key) * scale))})
    return dataclasses.replace(cfg, **budget)


def _tail_mean(history: pd.DataFrame, col: str, frac: float = 0.2) -> float:
    if col not in history or not len(history):
        return float("nan")
    n = max(1, int(round(len(history) * frac)))
    return float(history[col].iloc[-n:].mean())


def dense_accuracy(
    model: Any, aux: Any, dataset: Any, *, device: str = "cpu", batch: int = 32
) -> dict[str, float]:
    """Sub-cell accuracies of the training-only dense part head ``aux`` on every crop of ``dataset``
    (``part_labels`` needed): ``dense_fg_acc`` (exact label on the subject's cells), ``dense_part_acc`` (the
    part, left and right distinct), ``dense_front_back_acc`` (the front/back bit; 0.5 = chance), fractions;
    with a facing read-out (``front_back_crop``) also ``facing_crop_acc``: its crop-level "seen from behind"
    bit against the GT facing direction."""
    from torch.utils.data import DataLoader

    from ..body.orientation import seen_from_behind
    from ..models.dense import capture_tokens, dense_targets, label_accuracy, subject_tokens

    preds, targets, facing_ok = [], [], []
    model.eval().to(device)
    aux.eval().to(device)
    with torch.no_grad():
        for b in DataLoader(dataset, batch_size=batch):
            with capture_tokens(model) as box:
                model(b["img"].to(device), person_mask=b["person_mask"].to(device))
            preds.append(aux(box["tokens"]).argmax(1).to(torch.uint8).cpu())
            targets.append(dense_targets(b["part_labels"], aux.grid, aux.sub).to(torch.uint8))
            if aux.facing is not None:
                subject = subject_tokens(b["part_labels"], aux.grid).to(device)
                behind = aux.facing_logit(box["tokens"], subject).cpu() > 0
                facing_ok.append(behind == seen_from_behind(b["global_orient"]))
    acc = label_accuracy(torch.cat(preds).long(), torch.cat(targets).long())
    out = {f"dense_{k if k != 'part_lr' else 'part'}_acc": v for k, v in acc.items()}
    if facing_ok:
        out["facing_crop_acc"] = float(torch.cat(facing_ok).float().mean())
    return out


def score(
    model: Any,
    eval_world: str,
    *,
    device: str = "cpu",
    progress: bool = True,
    probe_frames: int = 1024,
    aux: Any = None,
) -> dict[str, float]:
    """Test-split metrics of ``model`` and of the mean pose (mm, degrees) on ``eval_world``, and the
    facing-direction probes (:mod:`.probe`: ridge from the head token / mean backbone token, fitted on
    ``probe_frames`` crops of the ``train`` split; median yaw error on the test split, degrees; 0 = skip):
    an early sign of whether the features carry the facing direction before the output does. With the
    training-only dense head ``aux``, also its test-split accuracies (:func:`dense_accuracy`)."""
    from ..data.datasets import CropDataset, world_root
    from . import probe
    from .evaluate import MeanPoseModel, evaluate

    root = world_root(eval_world)
    ds = CropDataset(root, "test")
    out: dict[str, float] = {}
    mean_pose = MeanPoseModel.from_clips(model.smpl, root, "train")
    for prefix, m in (("", model), ("mean_pose_", mean_pose)):
        df = evaluate(m, ds, batch_size=32, device=device, progress=progress)
        o = df["orient_deg"].to_numpy(float)
        out |= {
            f"{prefix}mpjpe_mm": float(df["mpjpe"].mean()),
            f"{prefix}pa_mpjpe_mm": float(df["pa_mpjpe"].mean()),
            f"{prefix}orient_median_deg": float(np.median(o)),
            f"{prefix}orient_over90_pct": float(100 * (o > 90).mean()),
        }
    if probe_frames:
        fit = probe.collect_features(model, CropDataset(root, "train"), probe_frames, device=device)
        held = probe.collect_features(model, ds, 0, device=device)
        p = probe.facing_probe(fit, held).set_index("predictor")["median_deg"]
        out["probe_head_deg"] = float(p["probe: head token"])
        out["probe_backbone_deg"] = float(p["probe: mean backbone token"])
    if aux is not None:
        out |= dense_accuracy(model, aux, ds, device=device)
    out["mpjpe_ratio"] = out["mpjpe_mm"] / out["mean_pose_mpjpe_mm"]
    out["pa_mpjpe_ratio"] = out["pa_mpjpe_mm"] / out["mean_pose_pa_mpjpe_mm"]
    out["test_frames"] = len(ds)
    return out


def run_variant(
    name: str,
    *,
    eval_world: str = "default",
    runs_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    probe_frames: int = 1024,
    **budget: Any,
) -> dict[str, Any]:
    """Train variant ``name`` at ``budget`` (TrainConfig fields) and score it; returns its table row."""
    cfg = variant_config(name, **budget)
    out = Path(runs_dir) if runs_dir is not None else data_dir() / "learnability"
    init = f"_from-{Path(cfg.init_from).name}" if cfg.init_from else ""
    out = out / f"{name}_s{cfg.steps}_b{cfg.batch}_seed{cfg.seed}{init}"
    t0 = time.perf_counter()
    # --resume continues the variants that were started and starts the others
    resume = resume and (out / STATE_FILE).exists()
    res = train(cfg, out, resume=resume, progress=progress, final_save=False)
    train_s = res.wall_s
    metrics = score(
        res.model, eval_world, device=cfg.device, progress=progress, probe_frames=probe_frames, aux=res.aux
    )
    h = res.history
    return {
        "variant": name,
        "lever": VARIANTS[name][0],
        "steps": cfg.steps,
        "batch": cfg.batch,
        "seed": cfg.seed,
        "train_world": cfg.world,
        "eval_world": eval_world,
        "init_from": cfg.init_from or "",
        **metrics,
        "final_orient_loss": _tail_mean(h, "global_orient"),
        "final_kp3d_loss": _tail_mean(h, "keypoints_3d"),
        "final_dense_loss": _tail_mean(h, "dense_parts"),
        "final_dense_fg_loss": _tail_mean(h, "dense_fg"),
        "final_front_back_loss": _tail_mean(h, "dense_front_back"),
        "final_facing_crop_loss": _tail_mean(h, "front_back_crop"),
        "final_orient_chord_loss": _tail_mean(h, "global_orient_chord"),
        "train_s": round(train_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "git": git_hash(),
        "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }


def append_row(row: dict[str, Any], csv_path: str | Path) -> pd.DataFrame:
    """Add ``row`` to the CSV (replacing a row of the same variant, steps, batch, seed and init); atomic."""
    path = Path(csv_path)
    df = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if len(df):
        same = (
            (df["variant"] == row["variant"])
            & (df["steps"] == row["steps"])
            & (df["batch"] == row["batch"])
            & (df["seed"] == row["seed"])
            & (df.get("init_from", pd.Series("", index=df.index)).fillna("") == row.get("init_from", ""))
        )
        df = df[~same]
    df = pd.concat([df, pd.DataFrame([row])], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4g")
    return df


def plot(df: pd.DataFrame, path: str | Path | None = None) -> Any:
    """Bars per variant (one budget each): test MPJPE (mm) and median orientation error (degrees), with
    the mean pose as a dashed line; the done-when targets (0.5 x mean pose MPJPE, 30°) dotted."""
    import matplotlib.pyplot as plt

    d = df.sort_values(["steps", "mpjpe_mm"])
    labels = [f"{v}\n({s} st)" for v, s in zip(d["variant"], d["steps"], strict=True)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(d) + 2), sharey=True)
    panels = (
        ("mpjpe_mm", "test MPJPE (mm)", 0.5),
        ("pa_mpjpe_mm", "test PA-MPJPE (mm)", 0.75),
        ("orient_median_deg", "median orientation error (deg)", None),
    )
    for ax, (col, title, target) in zip(axes, panels, strict=True):
        y = np.arange(len(d))
        ax.barh(y, d[col], color="tab:blue")
        ref = float(d[f"mean_pose_{col}"].median())
        ax.axvline(ref, color="k", ls="--", lw=1, label="mean pose")
        ax.axvline(
            30.0 if target is None else target * ref, color="tab:green", ls=":", lw=1.5, label="target"
        )
        ax.set_title(title)
        ax.set_yticks(y, labels, fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Learnability proxy: one lever per row, same budget and seed, clip-disjoint test split")
    fig.tight_layout()
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    return fig


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(
        prog="python -m fasthmr_lib.eval.learnability", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--variants", nargs="+", default=["base", "dense"], help=f"of {sorted(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=BASE.steps)
    ap.add_argument("--batch", type=int, default=BASE.batch)
    ap.add_argument("--seed", type=int, default=BASE.seed)
    ap.add_argument("--world", default=BASE.world, help="training world profile")
    ap.add_argument("--eval-world", default="default")
    ap.add_argument("--device", default=BASE.device)
    ap.add_argument("--out", type=Path, default=results_dir() / "diagnostics")
    ap.add_argument("--resume", action="store_true", help="continue interrupted runs (others start fresh)")
    ap.add_argument("--init-from", default="", help="checkpoint folder to fine-tune from (the ft_* variants)")
    ap.add_argument(
        "--probe-frames", type=int, default=1024, help="train crops for the facing probes (0 = no probes)"
    )
    a = ap.parse_args(argv)
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; expected names from {sorted(VARIANTS)}")
    df = pd.DataFrame()
    for v in a.variants:
        row = run_variant(
            v, eval_world=a.eval_world, resume=a.resume, steps=a.steps, batch=a.batch, seed=a.seed,
            world=a.world, device=a.device, init_from=a.init_from, probe_frames=a.probe_frames,
        )  # fmt: skip
        df = append_row(row, a.out / CSV_NAME)
        import matplotlib.pyplot as plt

        plt.close(plot(df, a.out / FIG_NAME))
        cols = ["variant", "steps", "mpjpe_mm", "pa_mpjpe_mm", "orient_median_deg", "mpjpe_ratio", "train_s"]
        print(df[cols].to_string(index=False))
    return df


if __name__ == "__main__":
    main()
