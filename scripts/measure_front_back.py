"""Can a model tell the front of a person from the back? Probes and short learning runs (issue 16).

The shipped ``small`` tells which side of the body faces the camera but not front from back: its predictions
for people facing the camera or away from it pile up near side-on (``ev.facing_bins``, notebook 01). Two
measurements, each appending one row per run to ``results/diagnostics/front_back.csv`` (+ a manifest):

``probe``: ridge probes (fitted on the default world's ``train`` crops, scored on its clip-disjoint ``test``
crops) of the front/back bit (|facing angle| < 90° = front) from a checkpoint's features: the mean backbone
token, the mean of the subject's tokens, the head token, and per subject token its own front/back label
(the dense part labels). 0.5 is chance. The model's own output is scored too.

``learn``: how fast the bit is learned with a direct target: ``--net vit`` fine-tunes a checkpoint's backbone
(lr 1e-4) with a fresh linear classifier on the mean subject token (lr 1e-3); ``--net resnet18`` trains a
torchvision ResNet-18 from scratch (lr 1e-3) on the same 256 x 192 crops. Binary cross-entropy, batches
drawn as in training (``train_wide``, augmented, seeded); test accuracy every ``--eval-every`` steps.

    python scripts/measure_front_back.py probe --checkpoint checkpoints/small
    python scripts/measure_front_back.py learn --net vit --checkpoint checkpoints/small --steps 300
    python scripts/measure_front_back.py learn --net resnet18 --steps 600
    # the same on the proxy worlds with subtle and strong front/back cues (data_prep.build_world profiles)
    python scripts/measure_front_back.py learn --net resnet18 --steps 600 --world front_back_strong \
        --eval-world front_back_strong
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from fasthmr_lib.body.orientation import facing_deg_of, seen_from_behind
from fasthmr_lib.body.smpl import load_body_model
from fasthmr_lib.data.datasets import CropDataset, world_root
from fasthmr_lib.io import atomic_path, manifest, write_json
from fasthmr_lib.models.checkpoints import load_checkpoint
from fasthmr_lib.models.dense import capture_tokens, dense_targets
from fasthmr_lib.models.recipe import TrainConfig
from fasthmr_lib.models.train import training_crops, training_loader
from fasthmr_lib.paths import results_dir

CSV = results_dir() / "diagnostics" / "front_back.csv"
TRIM = slice(32, 224)  # the 192 columns the HMR backbone sees of a 256 x 256 crop


def is_front(global_orient: Tensor) -> Tensor:
    """(B, 3) camera-frame axis-angle -> (B,) bool: the body faces the camera (|facing angle| < 90°)."""
    return ~seen_from_behind(global_orient)


def subject_tokens(model: nn.Module, batch: dict[str, Any]) -> tuple[dict[str, Any], Tensor, Tensor]:
    """Forward ``model`` on a batch; returns (outputs, backbone tokens (B, 192, C), token labels (B, 192):
    the dense part label at each token's centre, 0 = not the subject)."""
    with capture_tokens(model) as box:
        out = model(batch["img"], person_mask=batch["person_mask"])
    return out, box["tokens"].float(), dense_targets(batch["part_labels"], model.cfg.vit.grid, 1).flatten(1)


def masked_mean(tokens: Tensor, labels: Tensor) -> Tensor:
    """Mean of the subject's tokens (labels > 0); tokens (B, N, C), labels (B, N) -> (B, C)."""
    fg = (labels > 0).float()[..., None]
    return (tokens * fg).sum(1) / fg.sum(1).clamp(min=1)


def ridge_classify(x_fit: Tensor, y_fit: Tensor, x_eval: Tensor, lam: float = 100.0) -> Tensor:
    """Ridge regression to ±1 on standardised features, thresholded at 0. x (N, D), y_fit (N,) bool ->
    (M,) bool."""
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6

    def design(x: Tensor) -> Tensor:
        return torch.cat([(x - mu) / sd, torch.ones(len(x), 1)], 1).double()

    a = design(x_fit)
    w = torch.linalg.solve(
        a.T @ a + lam * torch.eye(a.shape[1], dtype=a.dtype), a.T @ (2.0 * y_fit - 1)[:, None]
    )
    return (design(x_eval) @ w)[:, 0] > 0


@torch.no_grad()
def _features(model: nn.Module, world: str, split: str, every: int) -> dict[str, Tensor]:
    ds = CropDataset(world_root(world), split)
    f: dict[str, list[Tensor]] = {
        k: [] for k in ("all", "subject", "head", "front", "pred_front", "tok", "tok_back")
    }
    for b in tqdm(
        DataLoader(Subset(ds, list(range(0, len(ds), every))), batch_size=32), desc=f"features {split}"
    ):
        out, tok, lab = subject_tokens(model, b)
        f["all"].append(tok.mean(1))
        f["subject"].append(masked_mean(tok, lab))
        f["head"].append(out["head_token"].float())
        f["front"].append(is_front(b["global_orient"]))
        f["pred_front"].append(facing_deg_of(out["rotmat"][:, 0].float()).abs() < 90)
        sel = lab > 0
        f["tok"].append(tok[sel][::3])  # every third subject token keeps the fit small
        f["tok_back"].append(((lab[sel] - 1) // 24 == 1)[::3])
    return {k: torch.cat(v) for k, v in f.items()}


def probe(checkpoint: str, eval_world: str = "default") -> list[dict[str, Any]]:
    """Front/back accuracies (fractions) of the model's output and of ridge probes on its features (fitted
    on ``eval_world``'s train crops, scored on its test crops)."""
    model = load_checkpoint(checkpoint, smpl=load_body_model()).eval()
    fit, held = _features(model, eval_world, "train", 2), _features(model, eval_world, "test", 1)
    acc = {"model output": float((held["pred_front"] == held["front"]).float().mean())}
    for key, name in (("all", "probe: mean backbone token"), ("subject", "probe: mean subject token"),
                      ("head", "probe: head token")):  # fmt: skip
        pred = ridge_classify(fit[key], fit["front"].float(), held[key])
        acc[name] = float((pred == held["front"]).float().mean())
    pred = ridge_classify(fit["tok"], fit["tok_back"].float(), held["tok"])
    acc["probe: each subject token's own label"] = float((pred == held["tok_back"]).float().mean())
    share = float(held["front"].float().mean())
    n = len(held["front"])
    return [{"kind": "probe", "net": "vit", "checkpoint": checkpoint, "world": eval_world,
             "eval_world": eval_world, "predictor": k, "test_acc": v, "test_front_share": share,
             "test_frames": n} for k, v in acc.items()]  # fmt: skip


def learn(
    net: str,
    checkpoint: str,
    steps: int,
    batch: int,
    seed: int,
    eval_every: int,
    world: str = "train_wide",
    eval_world: str = "default",
) -> list[dict[str, Any]]:
    """Train the front/back bit directly on ``world``'s train crops; one row per evaluation on
    ``eval_world``'s test crops (accuracy, train loss of the last ``eval_every`` steps)."""
    torch.manual_seed(seed)
    if net == "vit":
        model = load_checkpoint(checkpoint, smpl=load_body_model())
        clf = nn.Linear(model.cfg.vit.embed_dim, 1)
        opt = torch.optim.AdamW(
            [{"params": model.backbone.parameters(), "lr": 1e-4}, {"params": clf.parameters(), "lr": 1e-3}],
            weight_decay=1e-4,
        )
        params = list(model.backbone.parameters()) + list(clf.parameters())

        def logit(b: dict[str, Any]) -> Tensor:  # > 0: seen from behind
            _, tok, lab = subject_tokens(model, b)
            return clf(masked_mean(tok, lab))[:, 0]

        train_mode = [model]
    elif net == "resnet18":
        import torchvision

        model = torchvision.models.resnet18(num_classes=1)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        params = list(model.parameters())

        def logit(b: dict[str, Any]) -> Tensor:
            return model(b["img"][..., TRIM])[:, 0]

        train_mode, checkpoint = [model], ""
    else:
        raise SystemExit(f"--net: expected vit or resnet18, got {net!r}")
    cfg = TrainConfig(preset="small", world=world, batch=batch, seed=seed, steps=steps)
    cache, _ = training_crops(cfg, None, progress=False)
    test = CropDataset(world_root(eval_world), "test")

    @torch.no_grad()
    def test_acc() -> float:
        for m in train_mode:
            m.eval()
        ok = [
            ((logit(b) < 0) == is_front(b["global_orient"])).float() for b in DataLoader(test, batch_size=32)
        ]
        for m in train_mode:
            m.train()
        return float(torch.cat(ok).mean())

    share = float(torch.cat([is_front(b["global_orient"]) for b in DataLoader(test, 64)]).float().mean())
    rows, losses, t0 = [], [], time.perf_counter()

    def row(step: int) -> dict[str, Any]:
        loss = float(np.mean(losses[-eval_every:])) if losses else float("nan")
        return {"kind": "learn", "net": net, "checkpoint": checkpoint, "world": world,
                "eval_world": eval_world, "predictor": f"{net} step {step}", "step": step,
                "test_acc": test_acc(), "train_loss": loss,
                "train_s": round(time.perf_counter() - t0, 1), "test_front_share": share,
                "test_frames": len(test)}  # fmt: skip

    rows.append(row(0))
    for m in train_mode:
        m.train()
    for step, b in enumerate(
        tqdm(training_loader(cfg, cache, 0, steps, torch.device("cpu")), total=steps), 1
    ):
        back = (~is_front(b["global_orient"])).float()
        loss = F.binary_cross_entropy_with_logits(logit(b), back)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss))
        if step % eval_every == 0 or step == steps:
            rows.append(row(step))
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("probe", "learn"))
    ap.add_argument("--checkpoint", default="checkpoints/small")
    ap.add_argument("--net", default="vit", help="learn: vit (fine-tune --checkpoint's backbone) or resnet18")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--world", default="train_wide", help="learn: the world trained on (train split)")
    ap.add_argument(
        "--eval-world", default="default", help="the world whose test split scores (probe: also fit)"
    )
    ap.add_argument("--out", type=Path, default=CSV)
    a = ap.parse_args(argv)
    if a.mode == "probe":
        rows = probe(a.checkpoint, a.eval_world)
    else:
        rows = learn(a.net, a.checkpoint, a.steps, a.batch, a.seed, a.eval_every, a.world, a.eval_world)
    new = pd.DataFrame(rows).assign(created=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"))
    df = pd.concat([pd.read_csv(a.out), new], ignore_index=True) if a.out.exists() else new
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(a.out) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4g")
    tag = f"{a.mode}_{a.net if a.mode == 'learn' else Path(a.checkpoint).name}_{a.world}_{a.eval_world}"
    write_json(
        a.out.with_name(f"front_back_{tag}_manifest.json"),
        manifest(vars(a) | {"out": str(a.out)}, seed=a.seed),
    )
    print(new.drop(columns=["created"]).round(3).to_string(index=False))
    return df


if __name__ == "__main__":
    main()
