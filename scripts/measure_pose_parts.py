"""Which part of an HMR checkpoint's prediction loses accuracy: the facing direction or the body pose?

Evaluates a checkpoint on evenly spaced test crops of a world with parts of its prediction swapped for the
ground truth's or the mean pose's (the mean of the default world's train split) and prints / writes one row
per combination (MPJPE, PA-MPJPE, PVE in mm, 3DPW-14 protocol):

    python scripts/measure_pose_parts.py --checkpoint checkpoints/small --frames 320 \
        --out results/diagnostics/pose_parts/small.csv

``gt_orient+pred_body`` worse than ``gt_orient+mean_body`` means the predicted body pose is worse than a
constant (issue 16: the camera-frame 3D keypoint loss bends the body towards a wrongly turned GT).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import roma
import torch
from torch.utils.data import DataLoader, Subset

from fasthmr_lib.body.smpl import load_body_model
from fasthmr_lib.data.datasets import CropDataset, world_root
from fasthmr_lib.eval import evaluate as ev
from fasthmr_lib.eval import metrics as M
from fasthmr_lib.io import atomic_path, manifest, write_json
from fasthmr_lib.models.checkpoints import load_checkpoint
from fasthmr_lib.models.losses import gt_body
from fasthmr_lib.models.recipe import TrainConfig
from fasthmr_lib.models.train import model_for


def load_model(checkpoint: str, body: torch.nn.Module) -> torch.nn.Module:
    """A checkpoint folder (``save_checkpoint``) or a training run's ``train_state.pt`` (our own file: its
    recipe names the preset and stem, e.g. the learnability proxy's runs under ``data/learnability/``)."""
    if Path(checkpoint).is_dir():
        return load_checkpoint(checkpoint, smpl=body).eval()
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = model_for(TrainConfig.from_dict(state["config"]), smpl=body)
    model.load_state_dict(state["model"])
    return model.eval()


def measure(checkpoint: str, world: str, split: str, frames: int, batch: int = 16) -> pd.DataFrame:
    body = load_body_model()
    model = load_model(checkpoint, body)
    mean = ev.MeanPoseModel.from_clips(body, world_root("default"), "train")
    ds = CropDataset(world_root(world), split)
    idx = np.linspace(0, len(ds) - 1, min(frames, len(ds))).astype(int)
    proto = M.get_protocol("3dpw14")
    acc: dict[str, dict[str, list[np.ndarray]]] = {}
    with torch.no_grad():
        for b in DataLoader(Subset(ds, idx.tolist()), batch_size=batch):
            out = model(b["img"], person_mask=b["person_mask"])
            gt = gt_body(body, b)
            B = b["img"].shape[0]
            pose = torch.cat([b["global_orient"], b["body_pose"]], -1).view(B, 24, 3).float()
            gtrot, pr = roma.rotvec_to_rotmat(pose), out["rotmat"].float()
            mr, mb = mean.rotmat[None].expand(B, 24, 3, 3), mean.betas[None].expand(B, 10)
            variants = {
                "model": (pr, out["betas"]),
                "pred_orient+mean_body": (torch.cat([pr[:, :1], mr[:, 1:]], 1), out["betas"]),
                "gt_orient+pred_body": (torch.cat([gtrot[:, :1], pr[:, 1:]], 1), out["betas"]),
                "gt_orient+mean_body": (torch.cat([gtrot[:, :1], mr[:, 1:]], 1), mb),
                "mean_pose": (mr, mb),
            }
            for name, (rot, betas) in variants.items():
                o = body(rot[:, :1], rot[:, 1:], betas.float())
                r = M.evaluate_frames(
                    o["joints44"], gt["joints44"].float(), proto, o["vertices"], gt["vertices"].float()
                )
                for k, v in r.items():
                    acc.setdefault(name, {}).setdefault(k, []).append(np.asarray(v))
    rows = [
        {"prediction": n, **{f"{k}_mm": float(np.concatenate(v).mean()) for k, v in a.items()}}
        for n, a in acc.items()
    ]
    return pd.DataFrame(rows).assign(frames=len(idx))


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/small", help="checkpoint folder or a train_state.pt")
    ap.add_argument("--world", default="default")
    ap.add_argument("--split", default="test")
    ap.add_argument("--frames", type=int, default=320)
    ap.add_argument("--out", type=Path, default=None, help="CSV (+ _manifest.json beside it)")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    df = measure(a.checkpoint, a.world, a.split, a.frames)
    print(df.round(1).to_string(index=False))
    if a.out:
        with atomic_path(a.out) as tmp:
            df.round(2).to_csv(tmp, index=False)
        write_json(
            a.out.with_name(a.out.stem + "_manifest.json"), manifest(vars(a) | {"out": str(a.out)}, seed=0)
        )
    return df


if __name__ == "__main__":
    main()
