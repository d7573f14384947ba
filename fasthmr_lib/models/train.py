"""Training recipe for the HMR baselines on the embedded synthetic world (HMR2.0-style losses).

One command trains a preset from scratch::

    python -m fasthmr_lib.models.train --preset tiny --world default --steps 600 --batch 16 \\
        --device cpu --out checkpoints/tiny

and ``--resume`` continues exactly where the last saved step left off (model, optimizer, scheduler,
RNG states, loss history). The data order and each sample's augmentation are pure functions of
``(seed, epoch, index)``, so resumption needs no data-loader state and does not depend on the number
of workers.

Losses (HMR2.0 ``hmr2/models/hmr2.py`` + ``losses.py``; weights from ``hmr_vit_transformer.yaml``):
L1 on 44 3D keypoints after pelvis (index 39) alignment, visibility-weighted L1 on 44 2D keypoints
(normalised crop coordinates), MSE on rotation matrices (global orient, body pose) and betas. GT 3D
keypoints are the body model applied to GT (θ, β). The adversarial term is not used (full GT here).
Per-sample losses are summed over joints/coordinates and averaged over the batch (HMR2.0 sums over the
batch too; with Adam this only rescales the effective learning rate).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import roma
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..body.orientation import facing_cos
from ..config import get_preset
from ..data.augment import (
    AugmentConfig,
    augment_sample,
    hwc255_to_normalized,
    label_dtype,
    normalized_to_hwc255,
)
from ..io import atomic_path, manifest, read_json, write_json
from ..paths import data_dir
from .dense import DenseHead, capture_tokens, dense_loss, dense_targets

PELVIS_INDEX = 39
STATE_FILE = "train_state.pt"
LOSS_CURVE_TERMS = (
    "total", "keypoints_3d", "keypoints_2d", "global_orient", "body_pose", "rot6d_norm", "dense_parts",
)  # fmt: skip
HISTORY_FILE = "loss_history.csv"
CURVE_FILE = "loss_curve.png"
LABEL_KEYS = ("global_orient", "body_pose", "betas", "transl", "joints2d", "occlusion")
NO_AUGMENT = AugmentConfig(
    flip_rate=0.0, occluder_rate=0.0, trans_rate=0.0, scale_factor=0.0, color_scale=0.0
)


@dataclass(frozen=True)
class LossWeights:
    """HMR2.0 ``LOSS_WEIGHTS`` (hmr_vit_transformer.yaml), adversarial term dropped."""

    keypoints_3d: float = 0.05
    keypoints_2d: float = 0.01
    global_orient: float = 0.001
    body_pose: float = 0.001
    betas: float = 0.0005
    # Not in HMR2.0: pulls the norm of each predicted 6D column towards 1 (see compute_losses).
    rot6d_norm: float = 0.0
    # Not in HMR2.0: cross-entropy of the training-only dense part head (models/dense.py); 0 = no head.
    dense_parts: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored as the checkpoint's ``recipe``)."""

    preset: str = "tiny"
    stem: str = ""  # "" = the preset's patch embedding; "patch" | "conv" overrides it (ViTConfig.stem)
    world: str = "default"
    split: str = "train"
    mask_kind: str = "mask"
    steps: int = 600
    batch: int = 16
    # HMR2.0 fine-tunes a pretrained ViTPose at lr 1e-5; from scratch on small data that is far too
    # slow, so the default is 10x larger with warm-up + cosine decay (wd as HMR2.0).
    lr: float = 1e-4
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" | "constant"
    warmup: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (fp16 only with cuda; uses a GradScaler)
    num_workers: int = 0
    save_every: int = 100
    log_every: int = 10
    cache: bool = True  # preload crops once into a uint8 tensor file under data/cache/
    # > 0: train on this many crops drawn (seeded) from the split - the "overfit a small set" probe
    subset: int = 0
    # dense part head (LossWeights.dense_parts > 0): sub-cells per token side (4 -> 64x48 label grid)
    dense_sub: int = 4
    # backbone pretraining: the first N steps train on the dense part loss alone (HMR losses off)
    pretrain_steps: int = 0
    # facing-direction distribution: crops drawn with weight exp(kappa * cos(phi)), phi = 0 facing the
    # camera (von Mises); kappa decays linearly to 0 (uniform) over curriculum_steps (0 = held constant)
    facing_kappa: float = 0.0
    curriculum_steps: int = 0
    # warm start: a shipped checkpoint folder (checkpoints.save_checkpoint) whose weights initialise the
    # model (a later stage with a fresh schedule; the dense head, if any, starts anew); "" = random init
    init_from: str = ""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        aug = AugmentConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("augment", {}).items()}
        )
        lw = LossWeights(**d.pop("loss_weights", {}))
        return TrainConfig(augment=aug, loss_weights=lw, **d)


def recipe_of(checkpoint_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The training recipe stored in a checkpoint's ``config.json`` (``metadata.recipe``), with
    ``overrides`` (TrainConfig fields; ``None`` values keep the stored one) applied; the defaults of
    :class:`TrainConfig` when the folder has no recipe. Retraining a shipped baseline with its own recipe
    makes the result comparable."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg_path = Path(checkpoint_dir) / "config.json"
    d: dict[str, Any] = {}
    if cfg_path.exists():
        d = dict(read_json(cfg_path).get("metadata", {}).get("recipe", {}))
        d.pop("command", None)
    unknown = set(overrides) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"recipe_of: unknown TrainConfig fields {sorted(unknown)}")
    return TrainConfig.from_dict({**d, **overrides})


# --------------------------------------------------------------------------- data
@dataclass
class CropCache:
    """All crops of one split preloaded in memory (uint8 images, labels as float32 tensors).

    images (N,S,S,3) uint8 RGB; masks (N,S,S) uint8 0..255; global_orient (N,3); body_pose (N,69);
    betas (N,10); transl (N,3); joints2d (N,44,3); occlusion (N,); clip_id list[str]; frame (N,) int64;
    parts (N,S,S) uint8 dense part labels (``None`` when the world has none).
    """

    images: Tensor
    masks: Tensor
    labels: dict[str, Tensor]
    clip_id: list[str]
    frame: Tensor
    parts: Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, n: int, seed: int) -> CropCache:
        """``n`` crops drawn without replacement by a generator seeded with ``seed`` (same order for the
        same ``(n, seed)``); ``n`` must be in 1..len(self)."""
        if not 0 < n <= len(self):
            raise ValueError(f"subset: n must be in 1..{len(self)} (crops in the split), got {n}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return CropCache(
            images=self.images[idx].clone(),
            masks=self.masks[idx].clone(),
            labels={k: v[idx].clone() for k, v in self.labels.items()},
            clip_id=[self.clip_id[int(i)] for i in idx],
            frame=self.frame[idx].clone(),
            parts=None if self.parts is None else self.parts[idx].clone(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "masks": self.masks,
            "labels": self.labels,
            "clip_id": self.clip_id,
            "frame": self.frame,
            "parts": self.parts,
        }


def build_crop_cache(dataset: Dataset, *, progress: bool = True, desc: str = "caching crops") -> CropCache:
    """Iterate a ``CropDataset``-like dataset once (no augmentation) and keep its crops as uint8."""
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("build_crop_cache: the dataset is empty")
    imgs, masks, frames, clips, parts = [], [], [], [], []
    labels: dict[str, list] = {k: [] for k in LABEL_KEYS}
    for i in tqdm(range(n), desc=desc, disable=not progress):
        it = dataset[i]
        hwc = normalized_to_hwc255(it["img"])
        imgs.append(torch.from_numpy(np.clip(np.rint(hwc), 0, 255).astype(np.uint8)))
        m = it.get("person_mask")
        m = torch.zeros(hwc.shape[:2]) if m is None else torch.as_tensor(m, dtype=torch.float32)
        masks.append((m.clamp(0, 1) * 255).round().to(torch.uint8))
        for k in LABEL_KEYS:
            labels[k].append(torch.as_tensor(np.asarray(it[k], dtype=np.float32)))
        frames.append(int(it.get("frame", i)))
        clips.append(str(it.get("clip_id", "")))
        if "part_labels" in it:
            parts.append(torch.as_tensor(it["part_labels"], dtype=torch.uint8))
    if parts and len(parts) != n:
        raise ValueError("build_crop_cache: some items have 'part_labels' and some do not (mixed worlds?)")
    return CropCache(
        images=torch.stack(imgs),
        masks=torch.stack(masks),
        labels={k: torch.stack(v) for k, v in labels.items()},
        clip_id=clips,
        frame=torch.tensor(frames, dtype=torch.int64),
        parts=torch.stack(parts) if parts else None,
    )


def world_data_version(root: str | Path) -> str:
    """Short sha256 of a world's ``meta.json`` (the data version stored with checkpoints)."""
    meta = Path(root) / "meta.json"
    if not meta.exists():
        raise FileNotFoundError(f"{meta}: world meta.json missing (world incomplete or wrong --world root)")
    return hashlib.sha256(meta.read_bytes()).hexdigest()[:16]


def load_or_build_cache(
    root: str | Path,
    split: str,
    *,
    mask_kind: str = "mask",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> CropCache:
    """Cached crops of ``<root>/<split>`` in ``data/cache/`` keyed by world version, split and mask kind."""
    from ..data.datasets import CropDataset

    cache_dir = Path(cache_dir) if cache_dir is not None else data_dir() / "cache"
    key = f"crops_{Path(root).name}_{split}_{mask_kind}_{world_data_version(root)}.pt"
    path = cache_dir / key
    if path.exists():
        d = torch.load(path, weights_only=True)
        return CropCache(**d)
    cache = build_crop_cache(
        CropDataset(root, split, mask_kind=mask_kind), progress=progress, desc=f"caching {split} crops"
    )
    with atomic_path(path) as tmp:
        torch.save(cache.to_dict(), tmp)
    return cache


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's augmentation: a pure function of (seed, epoch, index)."""
    return np.random.default_rng([seed, epoch, index])


class AugmentedCrops(Dataset):
    """Training view of a :class:`CropCache`; items are addressed by ``(index, epoch)`` pairs."""

    def __init__(self, cache: CropCache, augment: AugmentConfig | None, seed: int):
        self.cache, self.augment, self.seed = cache, augment, seed

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Tensor]:
        idx, epoch = key if isinstance(key, tuple) else (key, 0)
        c = self.cache
        img = c.images[idx].numpy()
        mask = c.masks[idx].numpy().astype(np.float32) / 255.0
        lab = {k: v[idx].numpy() for k, v in c.labels.items()}
        if c.parts is not None:
            lab["part_labels"] = c.parts[idx].numpy()
        if self.augment is not None:
            img, mask, lab = augment_sample(img, mask, lab, sample_rng(self.seed, epoch, idx), self.augment)
        out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=label_dtype(k))) for k, v in lab.items()}
        out["img"] = hwc255_to_normalized(np.asarray(img))
        out["person_mask"] = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
        return out


class StepBatchSampler(Sampler):
    """Batches for steps ``start .. total-1``: sample position ``p = step*B + j`` -> epoch ``p // N``,
    index ``perm_epoch[p % N]`` with ``perm_epoch = randperm(N, seed + epoch)``. Yields lists of
    ``(index, epoch)``; deterministic and resumable at any step."""

    def __init__(self, n: int, batch: int, seed: int, start: int, total: int):
        self.n, self.batch, self.seed, self.start, self.total = n, batch, seed, start, total
        self._perms: dict[int, Tensor] = {}

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g)}
        return self._perms[epoch]

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            out = []
            for p in range(step * self.batch, (step + 1) * self.batch):
                e = p // self.n
                out.append((int(self._perm(e)[p % self.n]), e))
            yield out


class FacingBatchSampler(Sampler):
    """Batches for steps ``start .. total-1`` drawn with replacement, with weight
    ``exp(kappa_t (cos phi - 1))`` per crop (a von Mises density of the facing angle phi around facing
    the camera); ``kappa_t`` decays linearly from ``kappa`` to 0 (uniform) over ``curriculum_steps``
    (0 = constant). Step ``t``'s draw is a pure function of ``(seed, t)``, so it resumes at any step;
    items are ``(index, t)`` (the step is the augmentation 'epoch')."""

    def __init__(
        self,
        cos_phi: Tensor,
        batch: int,
        seed: int,
        start: int,
        total: int,
        kappa: float,
        curriculum_steps: int,
    ):
        self.cos = cos_phi.double()
        self.batch, self.seed, self.start, self.total = batch, seed, start, total
        self.kappa, self.curriculum = float(kappa), int(curriculum_steps)

    def kappa_at(self, step: int) -> float:
        if self.curriculum <= 0:
            return self.kappa
        return self.kappa * max(0.0, 1.0 - step / self.curriculum)

    def weights_at(self, step: int) -> Tensor:
        return torch.exp(self.kappa_at(step) * (self.cos - 1.0))

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 17)
            idx = torch.multinomial(self.weights_at(step), self.batch, replacement=True, generator=g)
            yield [(int(i), step) for i in idx]


def _worker_init(worker_id: int) -> None:
    # augmentation draws from per-sample generators; seed the rest anyway for library code in workers
    s = torch.initial_seed() % 2**32
    np.random.seed(s)  # noqa: NPY002 (legacy global RNG of library code)
    random.seed(s)


# --------------------------------------------------------------------------- losses
def gt_body(smpl: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """GT joints/vertices from the body model applied to GT (θ, β) (no translation)."""
    pose = torch.cat([batch["global_orient"], batch["body_pose"]], dim=-1)
    return smpl.from_axis_angle(pose, batch["betas"])


def compute_losses(
    out: dict[str, Tensor],
    batch: dict[str, Tensor],
    gt_joints44: Tensor,
    weights: LossWeights = LossWeights(),
) -> dict[str, Tensor]:
    """HMR2.0 loss terms (each a scalar, batch-mean of per-sample sums) and their weighted ``total``.

    out: model outputs ``rotmat`` (B,24,3,3), ``betas`` (B,10), ``joints3d`` (B,44,3) m,
    ``joints2d`` (B,44,2) normalised crop coords; batch: GT ``global_orient`` (B,3), ``body_pose``
    (B,69) axis-angle, ``betas`` (B,10), ``joints2d`` (B,44,3) normalised + visibility;
    gt_joints44: (B,44,3) m from the body model.
    """
    pred3d = out["joints3d"].float()
    pred3d = pred3d - pred3d[:, PELVIS_INDEX : PELVIS_INDEX + 1]
    gt3d = gt_joints44 - gt_joints44[:, PELVIS_INDEX : PELVIS_INDEX + 1]
    l3d = (pred3d - gt3d).abs().sum(dim=(1, 2)).mean()
    kp = batch["joints2d"]
    vis = kp[..., 2:3]
    l2d = (vis * (out["joints2d"].float() - kp[..., :2]).abs()).sum(dim=(1, 2)).mean()
    gt_rot = roma.rotvec_to_rotmat(
        torch.cat([batch["global_orient"], batch["body_pose"]], -1).view(-1, 24, 3)
    )
    rot = out["rotmat"].float()
    lgo = ((rot[:, 0] - gt_rot[:, 0]) ** 2).sum(dim=(1, 2)).mean()
    lbp = ((rot[:, 1:] - gt_rot[:, 1:]) ** 2).sum(dim=(1, 2, 3)).mean()
    lbe = ((out["betas"].float() - batch["betas"]) ** 2).sum(dim=1).mean()
    # 6D-norm term (ours, not HMR2.0). Gram-Schmidt (Zhou et al. CVPR 2019) is scale invariant, so
    # nothing bounds the norms of the two raw 6D columns; trained from scratch they drift (measured on
    # the shipped small: global orient |a1|, |a2| ~ 9), which divides every rotation gradient by that
    # norm. (Holding them at 1 alone did not make the small ViT learn the facing direction: README.)
    cols = out["pose6d"].float().reshape(rot.shape[0], -1, 2, 3).norm(dim=-1)  # (B, 24, 2): |a1|, |a2|
    lnorm = ((cols - 1.0) ** 2).sum(dim=(1, 2)).mean()
    w = weights
    total = (
        w.keypoints_3d * l3d
        + w.keypoints_2d * l2d
        + w.global_orient * lgo
        + w.body_pose * lbp
        + w.betas * lbe
        + w.rot6d_norm * lnorm
    )
    return {
        "total": total,
        "keypoints_3d": l3d,
        "keypoints_2d": l2d,
        "global_orient": lgo,
        "body_pose": lbp,
        "betas": lbe,
        "rot6d_norm": lnorm,
    }


# --------------------------------------------------------------------------- optimisation
AMP_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a ``--precision`` name (``None`` = fp32, autocast off); fp16 only on cuda."""
    if precision not in AMP_DTYPES:
        raise ValueError(f"precision must be one of {sorted(AMP_DTYPES)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a cuda device (--device cuda; use bf16 or fp32 on cpu)")
    return AMP_DTYPES[precision]


def train_step(
    model: nn.Module,
    batch: dict[str, Tensor],
    opt: torch.optim.Optimizer,
    *,
    amp_dtype: torch.dtype | None = None,
    weights: LossWeights = LossWeights(),
    grad_clip: float = 0.0,
    scaler: Any = None,
    aux: DenseHead | None = None,
) -> dict[str, Tensor]:
    """One optimizer step: GT joints from the body model, forward under autocast ``amp_dtype``, HMR2.0
    losses, backward (through ``scaler`` for fp16), gradient clipping at ``grad_clip`` (> 0), step.
    batch: a collated training batch on the model's device (``img`` (B,3,256,256), GT θ/β, ``joints2d``,
    optional ``person_mask``, ``part_labels`` (B,256,256) with ``aux``). ``aux``: the training-only dense
    part head on the backbone tokens (its cross-entropy is added with ``weights.dense_parts``; ``opt`` must
    hold its parameters). Returns the loss terms of :func:`compute_losses` (+ ``dense_parts``)."""
    with torch.no_grad():
        gt = gt_body(model.smpl, batch)["joints44"].float()
    with torch.autocast(batch["img"].device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        if aux is None:
            pred = model(batch["img"], person_mask=batch.get("person_mask"))
        else:
            with capture_tokens(model) as box:
                pred = model(batch["img"], person_mask=batch.get("person_mask"))
            logits = aux(box["tokens"])
    losses = compute_losses(pred, batch, gt, weights)
    if aux is not None:
        if "part_labels" not in batch:
            raise KeyError("train_step: the dense part head needs 'part_labels' in the batch")
        target = dense_targets(batch["part_labels"], aux.grid, aux.sub)
        losses["dense_parts"] = dense_loss(logits, target)
        losses["total"] = losses["total"] + weights.dense_parts * losses["dense_parts"]
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(losses["total"]).backward()
        scaler.unscale_(opt)
    else:
        losses["total"].backward()
    if grad_clip > 0:
        params = [p for g in opt.param_groups for p in g["params"]]
        nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    return losses


def model_for(cfg: TrainConfig, smpl: nn.Module | None = None) -> nn.Module:
    """A freshly initialised ``HMR`` of the recipe's preset (with its ``stem`` override, if any);
    ``smpl=None`` loads the body model."""
    from .hmr import build_model

    mcfg = get_preset(cfg.preset)
    if cfg.stem:
        mcfg = mcfg.replace(vit=dataclasses.replace(mcfg.vit, stem=cfg.stem))
    return build_model(mcfg, smpl=smpl)


def warm_start(model: nn.Module, checkpoint_dir: str | Path) -> nn.Module:
    """``model`` with the weights of the shipped checkpoint in ``checkpoint_dir`` (same architecture; a
    mismatch raises naming both configurations). The body model stays ``model``'s."""
    from .checkpoints import load_checkpoint

    src = load_checkpoint(checkpoint_dir, smpl=model.smpl)
    if src.cfg != model.cfg:
        raise ValueError(
            f"init_from {checkpoint_dir}: its model config {src.cfg} differs from the recipe's {model.cfg}"
        )
    model.load_state_dict(src.state_dict())
    return model


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, aux: nn.Module | None = None
) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the trainable parameters of ``model`` (then ``aux``, a training-only head) + LambdaLR
    (linear warm-up, then cosine to 0 or constant)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if aux is not None:
        params += [p for p in aux.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm, total, kind = cfg.warmup, cfg.steps, cfg.schedule
    if kind not in ("cosine", "constant"):
        raise ValueError(f"TrainConfig.schedule must be 'cosine' or 'constant', got {kind!r}")

    def factor(step: int) -> float:
        if warm > 0 and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _rng_state() -> dict[str, Any]:
    st = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])  # noqa: NPY002
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_train_state(
    path: Path,
    model,
    opt,
    sched,
    scaler,
    step: int,
    history: list[dict],
    cfg: TrainConfig,
    wall_s: float = 0.0,
    aux: nn.Module | None = None,
) -> None:
    """Atomic resumable state: model, training-only head ``aux``, optimizer, scheduler, scaler, RNG
    states, step, history, config, cumulative training wall time (s)."""
    state = {
        "model": model.state_dict(),
        "aux": aux.state_dict() if aux is not None else None,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": _rng_state(),
        "step": step,
        "history": history,
        "config": cfg.to_dict(),
        "wall_s": wall_s,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def write_history(out: Path, history: list[dict]) -> pd.DataFrame:
    """Loss history CSV + loss-curve PNG (atomic)."""
    df = pd.DataFrame(history)
    with atomic_path(out / HISTORY_FILE) as tmp:
        df.to_csv(tmp, index=False)
    if len(df):
        from matplotlib.figure import Figure  # no pyplot: the caller's backend (a notebook's) is untouched

        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        for col in LOSS_CURVE_TERMS:
            if col in df:
                ax.plot(df["step"], df[col], label=col)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (batch mean)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic_path(out / CURVE_FILE) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    return df


@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame
    out_dir: Path
    steps_done: int
    wall_s: float  # cumulative training wall time over resumed runs (s)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    model: nn.Module | None = None,
    dataset: Dataset | CropCache | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    final_save: bool = True,
    data_version: str | None = None,
) -> TrainResult:
    """Train (or resume) one model.

    model: an HMR-interface module (defaults to ``model_for(cfg)``); it must expose ``.smpl``
    with ``from_axis_angle`` for the GT joints. dataset: a CropDataset-like dataset or a prepared
    :class:`CropCache` (default: the world ``cfg.world``'s ``cfg.split`` via the crop cache).
    stop_at: stop (and save state) after this many total steps — simulates an interruption.
    final_save: write the shipped checkpoint (``checkpoints.save_checkpoint``) once ``cfg.steps`` is reached.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)  # noqa: NPY002
    random.seed(cfg.seed)

    # data
    if isinstance(dataset, CropCache):
        cache = dataset
    elif dataset is not None:
        cache = build_crop_cache(dataset, progress=progress)
    else:
        from ..data.datasets import world_root

        root = world_root(cfg.world)
        data_version = data_version or world_data_version(root)
        if cfg.cache:
            cache = load_or_build_cache(root, cfg.split, mask_kind=cfg.mask_kind, progress=progress)
        else:
            from ..data.datasets import CropDataset

            cache = build_crop_cache(CropDataset(root, cfg.split, mask_kind=cfg.mask_kind), progress=progress)

    if cfg.subset:
        cache = cache.subset(cfg.subset, cfg.seed)
    if model is None:
        model = model_for(cfg)
        if cfg.init_from:
            model = warm_start(model, cfg.init_from)
    model.to(device)
    aux = None
    if cfg.loss_weights.dense_parts > 0 or cfg.pretrain_steps > 0:
        if cfg.loss_weights.dense_parts <= 0:
            raise ValueError(
                "pretrain_steps > 0 trains on the dense part loss: set loss weight dense_parts > 0"
            )
        if cache.parts is None:
            raise ValueError(
                f"loss weight dense_parts > 0 needs dense part labels, but the world {cfg.world!r} has none: "
                "rebuild it with this version of data_prep (python -m data_prep.build_world --profile ...)"
            )
        aux = DenseHead(model.cfg.vit.embed_dim, model.cfg.vit.grid, cfg.dense_sub).to(device)
    opt, sched = make_optimizer(model, cfg, aux)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None

    step, history, wall_prev = 0, [], 0.0
    state_path = out / STATE_FILE
    if resume:
        if not state_path.exists():
            raise FileNotFoundError(f"--resume: no {STATE_FILE} in {out} (train without --resume first)")
        # on the CPU: RNG states must stay CPU ByteTensors; load_state_dict moves the rest to the params
        st = torch.load(state_path, weights_only=False, map_location="cpu")
        if st["config"]["steps"] != cfg.steps or st["config"]["seed"] != cfg.seed:
            raise ValueError(
                f"--resume: {state_path} was made with steps={st['config']['steps']}, "
                f"seed={st['config']['seed']}; got steps={cfg.steps}, seed={cfg.seed}"
            )
        model.load_state_dict(st["model"])
        if aux is not None:
            aux.load_state_dict(st["aux"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        if scaler is not None and st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
        _set_rng_state(st["rng"])
        step, history, wall_prev = int(st["step"]), list(st["history"]), float(st.get("wall_s", 0.0))

    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    ds = AugmentedCrops(cache, cfg.augment, cfg.seed)
    if cfg.facing_kappa > 0:
        sampler: Sampler = FacingBatchSampler(
            facing_cos(cache.labels["global_orient"]), cfg.batch, cfg.seed, step, end, cfg.facing_kappa,
            cfg.curriculum_steps,
        )  # fmt: skip
    else:
        sampler = StepBatchSampler(len(ds), cfg.batch, cfg.seed, step, end)
    loader = DataLoader(
        ds,
        batch_sampler=sampler,
        num_workers=cfg.num_workers,
        worker_init_fn=_worker_init,
        generator=torch.Generator().manual_seed(cfg.seed),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    model.train()
    if aux is not None:
        aux.train()
    pretrain_weights = LossWeights(**{k: 0.0 for k in dataclasses.asdict(cfg.loss_weights)}) if aux else None
    if pretrain_weights is not None:
        pretrain_weights = dataclasses.replace(pretrain_weights, dense_parts=cfg.loss_weights.dense_parts)
    t0 = time.perf_counter()
    bar = tqdm(total=end, initial=step, desc=f"train {cfg.preset}", disable=not progress)
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        weights = pretrain_weights if step < cfg.pretrain_steps else cfg.loss_weights
        losses = train_step(
            model, batch, opt, amp_dtype=amp_dtype, weights=weights, grad_clip=cfg.grad_clip,
            scaler=scaler, aux=aux,
        )  # fmt: skip
        sched.step()
        step += 1
        if not torch.isfinite(losses["total"]):
            raise FloatingPointError(f"non-finite loss at step {step}: {losses['total'].item()}")
        if step % cfg.log_every == 0 or step == end:
            history.append(
                {
                    "step": step,
                    "lr": sched.get_last_lr()[0],
                    **{k: float(v.detach()) for k, v in losses.items()},
                }
            )
            bar.set_postfix(loss=f"{history[-1]['total']:.4f}")
        bar.update(1)
        if step % cfg.save_every == 0 or step == end:
            save_train_state(
                state_path,
                model,
                opt,
                sched,
                scaler,
                step,
                history,
                cfg,
                wall_prev + time.perf_counter() - t0,
                aux=aux,
            )
            write_history(out, history)
    bar.close()
    wall = wall_prev + time.perf_counter() - t0  # cumulative over resumed runs
    hist = write_history(out, history)

    if final_save and step >= cfg.steps:
        save_final(model, out, cfg, data_version=data_version, train_wall_s=wall)
    return TrainResult(model=model, history=hist, out_dir=out, steps_done=step, wall_s=wall)


def save_final(
    model: nn.Module,
    out: Path,
    cfg: TrainConfig,
    *,
    data_version: str | None,
    train_wall_s: float,
    metrics: dict[str, float] | None = None,
    eval_world: str = "",
) -> Path:
    """Shipped checkpoint (safetensors fp16 + config.json) via ``models.checkpoints.save_checkpoint``;
    ``eval_world``: the world the ``metrics`` were measured on, when not ``cfg.world``."""
    from . import checkpoints

    recipe = {**cfg.to_dict(), "command": training_command(cfg, out, eval_world=eval_world)}
    extra = {
        "recipe": recipe,
        "data_version": data_version,
        "metrics": metrics or {},
        "train_wall_s": round(train_wall_s, 1),
        "manifest": manifest(cfg.to_dict(), seed=cfg.seed),
    }
    checkpoints.save_checkpoint(model, out, fp16=True, metadata=extra)
    write_json(out / "train_run.json", extra)
    return out


# TrainConfig field -> CLI flag, recorded by ``training_command`` when not the default
_RECIPE_FLAGS = (
    ("stem", "--stem"),
    ("split", "--split"),
    ("mask_kind", "--mask-kind"),
    ("weight_decay", "--weight-decay"),
    ("schedule", "--schedule"),
    ("grad_clip", "--grad-clip"),
    ("precision", "--precision"),
    ("subset", "--subset"),
    ("dense_sub", "--dense-sub"),
    ("pretrain_steps", "--pretrain-steps"),
    ("facing_kappa", "--facing-kappa"),
    ("curriculum_steps", "--curriculum-steps"),
    ("init_from", "--init-from"),
)


def training_command(cfg: TrainConfig, out: Path, eval_world: str = "") -> str:
    """The CLI line that reproduces ``cfg`` (loss weights only where they differ from HMR2.0's) and its
    evaluation world."""
    hmr2 = dataclasses.asdict(LossWeights())
    lw = {k: v for k, v in dataclasses.asdict(cfg.loss_weights).items() if v != hmr2[k]}
    extra = f" --loss-weights {','.join(f'{k}={v:g}' for k, v in lw.items())}" if lw else ""
    if eval_world and eval_world != cfg.world:
        extra += f" --eval-world {eval_world}"
    # every other recipe field the CLI sets, where it differs from the default (not logging/caching knobs)
    for name, flag in _RECIPE_FLAGS:
        value = getattr(cfg, name)
        if value != getattr(TrainConfig, name):
            extra += f" {flag} {value}"
    if cfg.augment == NO_AUGMENT:
        extra += " --no-augment"
    return (
        f"python -m fasthmr_lib.models.train --preset {cfg.preset} --world {cfg.world} --steps {cfg.steps} "
        f"--batch {cfg.batch} --device {cfg.device} --lr {cfg.lr} --warmup {cfg.warmup} --seed {cfg.seed}"
        f"{extra} --out {out}"
    )


def time_train_steps(
    model: nn.Module,
    precisions: tuple[str, ...] | list[str] = ("fp32", "bf16"),
    batch: int = 16,
    *,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Seconds per optimizer step (:func:`train_step`: GT joints, forward, HMR2.0 losses, backward, the
    recipe's gradient clipping, AdamW) of ``model`` under each autocast ``precision``, timed side by side:
    the precisions alternate within every repeat, on one synthetic batch (random (batch, 3, 256, 256)
    images; GT = an upright person facing the camera).

    Returns one dict per precision: ``precision``, ``batch``, ``s_per_step`` (median of ``repeats``),
    ``samples_per_s``, ``speedup`` (ratio to the first precision's time per step), ``threads``.
    The model's weights change (it trains); pass a copy if they matter.
    """
    dev = torch.device(device)
    dtypes = {prec: autocast_dtype(prec, dev) for prec in precisions}
    if batch < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"batch and repeats must be >= 1, warmup >= 0; got {batch}, {repeats}, {warmup}")
    model.to(dev).train()
    g = torch.Generator().manual_seed(0)
    lab = {
        "img": torch.randn(batch, 3, 256, 256, generator=g),
        "global_orient": torch.tensor([[math.pi, 0.0, 0.0]]).repeat(batch, 1),  # SMPL y-up -> camera y-down
        "body_pose": torch.zeros(batch, 69),
        "betas": torch.zeros(batch, 10),
        "joints2d": torch.cat([torch.zeros(batch, 44, 2), torch.ones(batch, 44, 1)], -1),
    }
    lab = {k: v.to(dev) for k, v in lab.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(prec: str) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        train_step(model, lab, opt, amp_dtype=dtypes[prec], grad_clip=TrainConfig.grad_clip)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {p: [] for p in precisions}
    for r in range(warmup + repeats):
        for prec in precisions:
            t = step(prec)
            if r >= warmup:
                times[prec].append(t)
    med = {p: float(np.median(v)) for p, v in times.items()}
    first = med[precisions[0]]
    return [
        {
            "precision": p,
            "batch": batch,
            "s_per_step": med[p],
            "samples_per_s": batch / med[p],
            "speedup": first / med[p],
            "threads": torch.get_num_threads(),
        }
        for p in precisions
    ]


# --------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """The CLI's :class:`TrainConfig` and the remaining options (``out``, ``resume``, ``eval_*`` ...)."""
    p = argparse.ArgumentParser(prog="python -m fasthmr_lib.models.train", description=__doc__.split("\n")[0])
    d = TrainConfig()
    p.add_argument("--preset", default=d.preset, help="model preset (tiny, small, ...)")
    p.add_argument(
        "--stem", default=d.stem, choices=["", "patch", "conv"], help="patch embedding (default: preset's)"
    )
    p.add_argument("--world", default=d.world, help="world profile under data/world/")
    p.add_argument("--split", default=d.split)
    p.add_argument("--mask-kind", default=d.mask_kind)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", default=d.schedule, choices=["cosine", "constant"])
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--precision", default=d.precision, choices=list(AMP_DTYPES))
    p.add_argument("--workers", type=int, default=d.num_workers)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--no-cache", action="store_true", help="do not preload crops into data/cache/")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument(
        "--subset", type=int, default=d.subset, help="train on N seeded random crops (overfit probe; 0 = all)"
    )
    p.add_argument(
        "--dense-sub", type=int, default=d.dense_sub, help="dense part head: sub-cells per token side"
    )
    p.add_argument(
        "--pretrain-steps", type=int, default=d.pretrain_steps,
        help="train the first N steps on the dense part loss alone (needs dense_parts > 0 in --loss-weights)",
    )  # fmt: skip
    p.add_argument(
        "--facing-kappa", type=float, default=d.facing_kappa,
        help="draw crops with weight exp(kappa*(cos(facing angle)-1)) (0 = uniform, as stored)",
    )  # fmt: skip
    p.add_argument(
        "--curriculum-steps", type=int, default=d.curriculum_steps,
        help="decay --facing-kappa linearly to 0 over this many steps (0 = constant)",
    )  # fmt: skip
    p.add_argument("--init-from", default=d.init_from, help="start from this shipped checkpoint's weights")
    p.add_argument("--out", required=True, help="output folder (e.g. checkpoints/tiny)")
    p.add_argument("--resume", action="store_true", help=f"continue from <out>/{STATE_FILE}")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this many steps (for testing)")
    p.add_argument("--eval-split", default="test", help="split evaluated after training ('' = none)")
    p.add_argument(
        "--eval-world", default="", help="world profile evaluated after training (default: --world)"
    )
    p.add_argument(
        "--loss-weights",
        default="",
        help="override LossWeights fields, e.g. 'global_orient=0.02,body_pose=0.005' (default: HMR2.0's)",
    )
    a = p.parse_args(argv)
    lw = {}
    for item in filter(None, (x.strip() for x in a.loss_weights.split(","))):
        k, sep, v = item.partition("=")
        if not sep or k not in LossWeights.__dataclass_fields__:
            names = sorted(LossWeights.__dataclass_fields__)
            raise SystemExit(f"--loss-weights: expected name=value with name in {names}, got {item!r}")
        lw[k] = float(v)
    cfg = TrainConfig(
        preset=a.preset,
        stem=a.stem,
        world=a.world,
        split=a.split,
        mask_kind=a.mask_kind,
        steps=a.steps,
        batch=a.batch,
        lr=a.lr,
        weight_decay=a.weight_decay,
        schedule=a.schedule,
        warmup=a.warmup,
        grad_clip=a.grad_clip,
        seed=a.seed,
        device=a.device,
        precision=a.precision,
        num_workers=a.workers,
        save_every=a.save_every,
        log_every=a.log_every,
        cache=not a.no_cache,
        subset=a.subset,
        dense_sub=a.dense_sub,
        pretrain_steps=a.pretrain_steps,
        facing_kappa=a.facing_kappa,
        curriculum_steps=a.curriculum_steps,
        init_from=a.init_from,
        augment=NO_AUGMENT if a.no_augment else AugmentConfig(),
        loss_weights=LossWeights(**lw),
    )
    return cfg, a


def main(argv: list[str] | None = None) -> TrainResult:
    cfg, a = parse_args(argv)
    res = train(cfg, a.out, resume=a.resume, stop_at=a.stop_at, final_save=False)
    if res.steps_done >= cfg.steps:
        from ..data.datasets import world_root

        root = world_root(cfg.world)
        metrics: dict[str, float] = {}
        if a.eval_split:
            from ..data.datasets import CropDataset
            from ..eval.evaluate import evaluate, summarize

            df = evaluate(
                res.model,
                CropDataset(world_root(a.eval_world or cfg.world), a.eval_split, mask_kind=cfg.mask_kind),
                batch_size=max(cfg.batch, 32),
                device=cfg.device,
            )
            s = summarize(df)
            row = s.iloc[0]
            metrics = {
                f"{a.eval_split}_{k}": float(row[k])
                for k in ("mpjpe", "pa_mpjpe", "pve", "accel")
                if k in row
            }
            print(s.to_string())
        save_final(
            res.model,
            res.out_dir,
            cfg,
            data_version=world_data_version(root),
            train_wall_s=res.wall_s,
            metrics=metrics,
            eval_world=a.eval_world if a.eval_split else "",
        )
    return res


if __name__ == "__main__":
    main()
