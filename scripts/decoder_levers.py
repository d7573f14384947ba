"""Decoder data / regulariser levers: one denoiser per variant on a frozen VAE, scored on the default
world's test AND train clips (the gap is how much it memorised). Appends one row per (variant, split) to
``results/diagnostics/decoder_levers.csv`` (+ a manifest); head tokens are cached per world under
``data/decoder_levers/`` (keyed by the baseline weights' sha256 prefix)::

    python scripts/decoder_levers.py --name d32 --world default
    python scripts/decoder_levers.py --name d192_reg --world default train_motion \\
        --dropout 0.1 --cond-noise 0.5
    python scripts/decoder_levers.py --name d32_headpose --world default --dropout 0.2 --cond-noise 1.0 \\
        --cond-head-pose
    python scripts/decoder_levers.py --name d32_flip --world default --dropout 0.2 --cond-noise 1.0 \\
        --flip-pairs

``--flip-pairs``: every training clip also mirrored left-right (crops flipped before the frozen baseline, so
new head tokens; GT pose mirrored with ``data.augment.flip_pose_aa``), doubling the (token, motion) pairs.

``--cond-head-pose`` (a lever, not the paper's decoder): the denoiser's condition per frame is the head
token followed by the per-frame head's own pose as HybrIK features (its θ and β encoded, z-normalised with
the VAE's feature stats), in training and at test (the library's ``DenoiserConfig.cond_pose_dims``;
``--cond-noise`` then noises the token channels only).
``--ema D`` / ``--lr-schedule cosine``: the training loop's EMA of the exported weights and cosine lr decay
(``diffusion.training.LoopConfig``), both off by default.
``--cond-pool-mode linear``: the pooled path maps a chunk's frames in order (``DenoiserConfig``).
``--drop-tokens`` (with ``--cond-head-pose``): the head tokens are zeroed in training and at test, so the
condition is the head's pose alone (how much the tokens add beyond it).
``--cond-head-pose joints``: only the 29 joints (87 numbers) of those features; the twist channels' GT spread
is so small that the head's twists land several standard deviations out after the z-normalisation.

Each run is notebook 04's denoiser training (``diffusion.training.train_denoiser``, 1,500 steps x 32,
lr 3e-4, p_terminal 0.25: the default profile's settings) on the given worlds' training clips, with the
VAE of ``--vae`` (default: the shipped one), evaluated with ``eval.metrics.evaluate_poses`` (3DPW-14).
"""

from __future__ import annotations

import argparse
import fcntl
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fasthmr_lib import paths
from fasthmr_lib.body.hybrik import FeatureStats, HybrIKBody
from fasthmr_lib.body.smpl import load_body_model
from fasthmr_lib.data.augment import flip_pose_aa
from fasthmr_lib.data.datasets import CropDataset, world_root
from fasthmr_lib.diffusion import decoder as D
from fasthmr_lib.diffusion import training as TR
from fasthmr_lib.eval.metrics import evaluate_poses
from fasthmr_lib.eval.pipeline import clip_ground_truth
from fasthmr_lib.io import atomic_path, manifest, repo_relative, sha256_file, write_json
from fasthmr_lib.models.checkpoints import load_checkpoint

OUT = Path("results/diagnostics/decoder_levers.csv")
COND_NAMES = {None: "tokens", "all": "tokens+head_pose", "joints": "tokens+head_joints"}


def head_tokens(v: dict, drop: bool) -> np.ndarray:
    """A clip's head tokens (T, C), or zeros of that shape with ``drop`` (``--drop-tokens``)."""
    t = np.asarray(v["tokens"], np.float32)
    return np.zeros_like(t) if drop else t


def condition(v: dict, hb: HybrIKBody, stats: FeatureStats, dims: int, drop: bool = False) -> np.ndarray:
    """A clip's training condition (T, C + dims): ``diffusion.decoder.head_condition``, what the decoder
    builds at test time (the head tokens, then the first ``dims`` normalised HybrIK features of its θ, β)."""
    rot = torch.as_tensor(np.asarray(v["rotmat"]))
    with torch.no_grad():
        c = D.head_condition(hb, stats, head_tokens(v, drop), rot, np.asarray(v["betas"]), dims)
    return c.numpy()


def hflip_crop(item: dict) -> dict:
    """A CropDataset item mirrored left-right (image and person mask; the labels are mirrored per clip)."""
    out = dict(item)
    out["img"] = torch.flip(item["img"], [-1])
    if "person_mask" in item:
        out["person_mask"] = torch.flip(item["person_mask"], [-1])
    return out


def cached_tokens(ckpt: Path, world: str, split: str, hb: HybrIKBody, flip: bool = False) -> dict:
    """{"tokens": head tokens (+ betas, rotmat) per clip, "gt": {clip: pose, betas}, "feats": HybrIK}.
    ``flip``: the clips mirrored left-right (the crops flipped, the GT pose by ``flip_pose_aa``), as clips of
    their own (ids ``<clip>_flip``)."""
    base = sha256_file(ckpt / "model.safetensors")[:8]
    f = paths.data_dir() / "decoder_levers" / f"tokens_{world}_{split}_{base}{'_flip' if flip else ''}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    root = world_root(world)
    model = load_checkpoint(ckpt, smpl=load_body_model()).eval()
    crops = CropDataset(root, split, mask_kind="mask", augment=hflip_crop if flip else None)
    tok = TR.extract_head_tokens(model, crops, batch_size=32, use_mask=True, keep=("betas", "rotmat"))
    gt = clip_ground_truth(root, split)
    if flip:
        gt = {c: dict(g, pose=flip_pose_aa(g["pose"])) for c, g in gt.items()}
        tok = {f"{c}_flip": v for c, v in tok.items()}
        gt = {f"{c}_flip": g for c, g in gt.items()}
    feats = dict(zip(gt, TR.clips_to_features([TR.gt_motion(g) for g in gt.values()], hb)))
    d = {"tokens": tok, "gt": gt, "feats": feats}
    with atomic_path(f) as tmp:
        tmp.write_bytes(pickle.dumps(d))
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--world", nargs="+", default=["default"], help="worlds whose train clips train it")
    ap.add_argument("--checkpoint", type=Path, default=paths.checkpoints_dir() / "small")
    ap.add_argument("--vae", type=Path, default=paths.checkpoints_dir() / "diffusion_small" / "vae")
    ap.add_argument("--dropout", type=float, default=None)
    ap.add_argument("--cond-noise", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--p-terminal", type=float, default=0.25, help="extra probability of t = T in training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--cond-head-pose", nargs="?", const="all", default=None, choices=["all", "joints"],
        help="condition on tokens + the head's pose features (all 133, or the 87 joint numbers)",
    )  # fmt: skip
    ap.add_argument("--flip-pairs", action="store_true", help="add every training clip mirrored left-right")
    ap.add_argument(
        "--cond-pool", action="store_true", help="latent token k also gets its chunk's mean condition"
    )
    ap.add_argument("--cond-pool-mode", default="mean", choices=["mean", "linear"], help="with --cond-pool")
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay of the exported weights (0 = off)")
    ap.add_argument("--lr-schedule", default="constant", choices=TR.LR_SCHEDULES)
    ap.add_argument(
        "--drop-tokens", action="store_true", help="zero the head tokens (with --cond-head-pose: pose only)"
    )
    a = ap.parse_args()
    if a.drop_tokens and not a.cond_head_pose:
        ap.error("--drop-tokens leaves no condition without --cond-head-pose")
    torch.set_num_threads(a.threads)
    body = load_body_model()
    hb = HybrIKBody.from_smpl(body)
    vae, stats, _ = TR.load_vae(a.vae)
    dims = {None: 0, "all": hb.dim, "joints": 87}[a.cond_head_pose]
    pairs = []
    for w in a.world:
        for flip in (False, True) if a.flip_pairs else (False,):
            d = cached_tokens(a.checkpoint, w, "train", hb, flip=flip)
            for c in sorted(d["tokens"]):
                pairs.append((condition(d["tokens"][c], hb, stats, dims, a.drop_tokens), d["feats"][c]))
    overrides = {} if a.dropout is None else {"dropout": a.dropout}
    overrides["cond_pool"] = a.cond_pool  # explicit (train_denoiser's default follows the VAE's layout)
    overrides["cond_pool_mode"] = a.cond_pool_mode
    if dims:  # the decoder builds the pose channels itself from the head's rotmat; token noise skips them
        overrides["cond_pose_dims"] = dims
    cfg = TR.DenoiserTrainConfig(
        preset="small", steps=a.steps, p_terminal=a.p_terminal, batch_size=32, lr=3e-4, seed=a.seed,
        ckpt_every=500, cond_noise=a.cond_noise, overrides=overrides, ema_decay=a.ema,
        lr_schedule=a.lr_schedule,
    )  # fmt: skip
    run_dir = paths.data_dir() / "decoder_levers" / "runs" / f"{a.name}_seed{a.seed}"
    t0 = time.perf_counter()
    TR.train_denoiser(pairs, vae, stats, cfg, run_dir / "denoiser")
    dec = D.DiffusionDecoder.from_checkpoints(a.vae, run_dir / "denoiser", body)
    rows = []
    for split in ("test", "train"):
        d = cached_tokens(a.checkpoint, "default", split, hb)
        pred = {
            c: {
                "rotmat": dec(
                    torch.as_tensor(head_tokens(v, a.drop_tokens)),
                    torch.as_tensor(v["betas"]),
                    seed=0,
                    rotmat=torch.as_tensor(np.asarray(v["rotmat"])),
                )["rotmat"],
                "betas": v["betas"],
            }
            for c, v in d["tokens"].items()
        }
        m = evaluate_poses(body, pred, d["gt"], protocol="3dpw14", method=a.name)
        rows.append(
            {"variant": a.name, "seed": a.seed, "eval_split": split, "train_clips": len(pairs),
             "dropout": a.dropout, "cond_noise": a.cond_noise, "vae": str(repo_relative(str(a.vae))),
             "cond": COND_NAMES[a.cond_head_pose], "flip_pairs": a.flip_pairs,
             "latent_layout": vae.cfg.latent_layout, "cond_pool": a.cond_pool, "p_terminal": a.p_terminal,
             "ema_decay": a.ema, "lr_schedule": a.lr_schedule, "drop_tokens": a.drop_tokens,
             "cond_pool_mode": a.cond_pool_mode,
             **m[["mpjpe", "pa_mpjpe", "pve", "accel"]].mean().round(2).to_dict(),
             "wall_s": round(time.perf_counter() - t0)}
        )  # fmt: skip
    new = pd.DataFrame(rows)
    print(new.to_string(index=False))
    lock_file = paths.data_dir() / "decoder_levers" / "table.lock"  # parallel runs append to one table
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        append_rows(new)
    man = manifest(vars(a), seed=a.seed)
    write_json(OUT.with_name(f"decoder_levers_{a.name}_seed{a.seed}_manifest.json"), man)


def append_rows(new: pd.DataFrame) -> None:
    """Add ``new`` to the table at ``OUT`` (atomically replaced)."""
    old = pd.read_csv(OUT) if OUT.exists() else None
    # rows from before an option: its off value (head tokens only, no mirrored clips)
    for col, before in {
        "cond": "tokens",
        "flip_pairs": False,
        "latent_layout": "tokens",
        "cond_pool": False,
        "p_terminal": 0.25,
        "ema_decay": 0.0,
        "lr_schedule": "constant",
        "drop_tokens": False,
        "cond_pool_mode": "mean",
    }.items():
        if old is not None and col not in old:
            old[col] = before
    table = new if old is None else pd.concat([old, new], ignore_index=True)
    with atomic_path(OUT) as tmp:
        table.to_csv(tmp, index=False)


if __name__ == "__main__":
    main()
