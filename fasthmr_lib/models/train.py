"""The training loop of the HMR baselines on the embedded synthetic world (HMR2.0-style losses).

:func:`train` trains (or resumes) one model from a :class:`~fasthmr_lib.models.recipe.TrainConfig`; the
command line is ``python -m fasthmr_lib.train`` (:mod:`fasthmr_lib.train`, which also evaluates the
result). ``resume=True`` continues exactly where the last saved step left off (model, optimizer, scheduler,
RNG states, loss history). The data order and each sample's augmentation are pure functions of
``(seed, epoch, index)`` (:mod:`fasthmr_lib.data.samplers`, :mod:`fasthmr_lib.data.crop_cache`), so
resumption needs no data-loader state and does not depend on the number of workers. The losses are in
:mod:`.losses`.

Under ``torchrun`` (:mod:`fasthmr_lib.dist`) the same loop runs as PyTorch DDP: ``cfg.batch`` is the global
batch, each rank trains on its ``batch / world`` slice of the same global sample order, gradients are
averaged (= the 1-process gradient: every loss term is a per-sample mean), the logged losses are
all-reduced means, rank 0 writes the state and history files and ``resume`` restores every rank.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from .. import dist
from ..body.orientation import facing_cos, seen_from_behind
from ..config import get_preset
from ..data.crop_cache import (
    AugmentedCrops,
    CropCache,
    build_crop_cache,
    load_or_build_cache,
    world_data_version,
)
from ..data.samplers import FacingBatchSampler, RankSlice, StepBatchSampler, worker_init
from ..io import atomic_path, manifest, write_json
from ..precision import autocast_dtype
from .dense import (
    DenseHead,
    capture_tokens,
    dense_fg_loss,
    dense_loss,
    dense_targets,
    facing_loss,
    front_back_loss,
    subject_tokens,
)
from .losses import HMR2_LOSS_WEIGHTS, LossWeights, compute_losses, gt_body
from .recipe import TrainConfig, training_command

STATE_FILE = "train_state.pt"
# the loss weights that train the training-only dense head (DenseHead): any > 0 builds it; they alone are
# kept in the dense-only pretraining steps
HEAD_LOSS_TERMS = ("dense_parts", "dense_fg", "dense_front_back", "front_back_crop")
LOSS_CURVE_TERMS = (
    "total", "keypoints_3d", "keypoints_2d", "global_orient", "body_pose", "rot6d_norm", "dense_parts",
    "keypoints_3d_body", "keypoints_3d_orient", "dense_fg", "dense_front_back",
    "global_orient_chord", "front_back_crop",
)  # fmt: skip
HISTORY_FILE = "loss_history.csv"
CURVE_FILE = "loss_curve.png"


# --------------------------------------------------------------------------- optimisation


class ModelAndHead(nn.Module):
    """The HMR and its training-only dense part head as one module (so one DDP wrapper averages the
    gradients of both). forward(img (B,3,256,256), person_mask, subject) -> (HMR outputs, dense logits or
    None, crop-level facing log-odds (B,) or None: only with a facing head and ``subject`` (B, N) bool)."""

    def __init__(self, model: nn.Module, aux: DenseHead | None = None):
        super().__init__()
        self.model, self.aux = model, aux

    def forward(
        self, img: Tensor, person_mask: Tensor | None = None, subject: Tensor | None = None
    ) -> tuple[dict, Tensor | None, Tensor | None]:
        if self.aux is None:
            return self.model(img, person_mask=person_mask), None, None
        with capture_tokens(self.model) as box:
            pred = self.model(img, person_mask=person_mask)
        facing = None
        if self.aux.facing is not None and subject is not None:
            facing = self.aux.facing_logit(box["tokens"], subject)
        return pred, self.aux(box["tokens"]), facing


def train_step(
    model: nn.Module,
    batch: dict[str, Tensor],
    opt: torch.optim.Optimizer,
    *,
    amp_dtype: torch.dtype | None = None,
    weights: LossWeights = HMR2_LOSS_WEIGHTS,
    grad_clip: float = 0.0,
    scaler: Any = None,
    aux: DenseHead | None = None,
    net: nn.Module | None = None,
) -> dict[str, Tensor]:
    """One optimizer step: GT joints from the body model, forward under autocast ``amp_dtype``, HMR2.0
    losses, backward (through ``scaler`` for fp16), gradient clipping at ``grad_clip`` (> 0), step.
    batch: a collated training batch on the model's device (``img`` (B,3,256,256), GT θ/β, ``joints2d``,
    optional ``person_mask``, ``part_labels`` (B,256,256) with ``aux``). ``aux``: the training-only dense
    part head on the backbone tokens (its cross-entropy is added with ``weights.dense_parts``; ``opt`` must
    hold its parameters). ``net``: the module the forward runs through, the DDP wrapper of
    ``ModelAndHead(model, aux)`` (default: that module itself, single-process); its gradients are then
    the ranks' average before clipping. Returns the loss terms of :func:`compute_losses` (+
    ``dense_parts``, and ``dense_fg`` / ``dense_front_back`` / ``front_back_crop`` when weighted), means
    over this process's batch."""
    with torch.no_grad():
        gt = gt_body(model.smpl, batch)["joints44"].float()
    fwd = net if net is not None else ModelAndHead(model, aux)
    subject = None
    if aux is not None:
        if "part_labels" not in batch:
            raise KeyError("train_step: the dense part head needs 'part_labels' in the batch")
        if aux.facing is not None:
            subject = subject_tokens(batch["part_labels"], aux.grid)
    with torch.autocast(batch["img"].device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        pred, logits, facing = fwd(batch["img"], person_mask=batch.get("person_mask"), subject=subject)
    losses = compute_losses(pred, batch, gt, weights)
    if aux is not None:
        target = dense_targets(batch["part_labels"], aux.grid, aux.sub)
        losses["dense_parts"] = dense_loss(logits, target)
        losses["total"] = losses["total"] + weights.dense_parts * losses["dense_parts"]
        for key, fn in (("dense_fg", dense_fg_loss), ("dense_front_back", front_back_loss)):
            if getattr(weights, key) > 0:
                losses[key] = fn(logits, target)
                losses["total"] = losses["total"] + getattr(weights, key) * losses[key]
        if facing is not None:
            losses["front_back_crop"] = facing_loss(facing, seen_from_behind(batch["global_orient"]))
            losses["total"] = losses["total"] + weights.front_back_crop * losses["front_back_crop"]
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


# --------------------------------------------------------------------------- state
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
    rng_ranks: list[dict[str, Any]] | None = None,
) -> None:
    """Atomic resumable state: model, training-only head ``aux``, optimizer, scheduler, scaler, RNG
    states (this process's; under DDP also every rank's, ``rng_ranks``), step, history, config,
    cumulative training wall time (s)."""
    state = {
        **({"rng_ranks": rng_ranks} if rng_ranks else {}),
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
    aux: DenseHead | None = None  # the training-only dense part head (not part of the model), if any


@dataclass
class _Trainables:
    """What one optimizer step updates: the model, the training-only dense head, optimizer, scheduler and
    (fp16) gradient scaler."""

    model: nn.Module
    aux: DenseHead | None
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any
    net: nn.Module | None = None  # the DDP wrapper of ModelAndHead(model, aux); None single-process


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


def training_crops(
    cfg: TrainConfig,
    dataset: Dataset | CropCache | None,
    *,
    progress: bool = True,
    data_version: str | None = None,
) -> tuple[CropCache, str | None]:
    """The crops a run trains on and the data version recorded with the run.

    dataset: a prepared :class:`CropCache`, a CropDataset-like dataset (cached here) or ``None`` (the
    world ``cfg.world``'s ``cfg.split``, via the crop cache in ``data/cache/`` when ``cfg.cache``).
    ``cfg.subset`` > 0 keeps that many seeded crops. Returns (cache, ``data_version``, which defaults to
    :func:`world_data_version` of the world when the crops are read from it)."""
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
    return cache, data_version


def dense_head_for(cfg: TrainConfig, model: nn.Module, cache: CropCache) -> DenseHead | None:
    """The training-only dense part head of the recipe (on ``model``'s backbone tokens), or ``None`` when
    the dense loss weights (``dense_parts``, ``dense_fg``, ``dense_front_back``, ``front_back_crop``: the
    crop-level facing read-out, built only then) and ``cfg.pretrain_steps`` are 0; raises when the recipe
    asks for it inconsistently or the crops have no part labels (they mark the subject's tokens)."""
    w = cfg.loss_weights
    dense = max(getattr(w, k) for k in HEAD_LOSS_TERMS)
    if dense <= 0 and cfg.pretrain_steps <= 0:
        return None
    if dense <= 0:
        raise ValueError(
            "pretrain_steps > 0 trains on the dense part loss: set loss weight dense_parts (or dense_fg, "
            "dense_front_back) > 0"
        )
    if cache.parts is None:
        raise ValueError(
            f"a dense loss weight > 0 needs dense part labels, but the world {cfg.world!r} has none: "
            "rebuild it with this version of data_prep (python -m data_prep.build_world --profile ...)"
        )
    return DenseHead(model.cfg.vit.embed_dim, model.cfg.vit.grid, cfg.dense_sub, facing=w.front_back_crop > 0)


def _trainables(
    cfg: TrainConfig, model: nn.Module | None, cache: CropCache, device: torch.device
) -> _Trainables:
    """Model (``model_for(cfg)``, warm-started from ``cfg.init_from``, unless given), dense head, AdamW +
    schedule and the fp16 gradient scaler, on ``device``."""
    if model is None:
        model = model_for(cfg)
        if cfg.init_from:
            model = warm_start(model, cfg.init_from)
    model.to(device)
    aux = dense_head_for(cfg, model, cache)
    if aux is not None:
        aux = aux.to(device)
    opt, sched = make_optimizer(model, cfg, aux)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    return _Trainables(model, aux, opt, sched, scaler)


def _resume_state(
    state_path: Path, cfg: TrainConfig, t: _Trainables, state: dist.DistState = dist.SINGLE
) -> tuple[int, list[dict], float]:
    """Load the resumable state at ``state_path`` into ``t`` and the global RNGs (under DDP: this rank's
    saved RNG state when the world size is the one saved, else rank 0's reseeded per rank); returns
    (step, history, cumulative wall time s). Raises when it is missing or was made with other ``steps``
    / ``seed``."""
    if not state_path.exists():
        raise FileNotFoundError(
            f"--resume: no {STATE_FILE} in {state_path.parent} (train without --resume first)"
        )
    # on the CPU: RNG states must stay CPU ByteTensors; load_state_dict moves the rest to the params
    st = torch.load(state_path, weights_only=False, map_location="cpu")
    if st["config"]["steps"] != cfg.steps or st["config"]["seed"] != cfg.seed:
        raise ValueError(
            f"--resume: {state_path} was made with steps={st['config']['steps']}, "
            f"seed={st['config']['seed']}; got steps={cfg.steps}, seed={cfg.seed}"
        )
    t.model.load_state_dict(st["model"])
    if t.aux is not None:
        t.aux.load_state_dict(st["aux"])
    t.opt.load_state_dict(st["optimizer"])
    t.sched.load_state_dict(st["scheduler"])
    if t.scaler is not None and st.get("scaler"):
        t.scaler.load_state_dict(st["scaler"])
    _set_rng_state(st["rng"])
    ranks = st.get("rng_ranks") or []
    if state.active and len(ranks) == state.world:
        _set_rng_state(ranks[state.rank])
    elif state.active:
        dist.decorrelate(state, cfg.seed + int(st["step"]))
    return int(st["step"]), list(st["history"]), float(st.get("wall_s", 0.0))


def training_loader(
    cfg: TrainConfig,
    cache: CropCache,
    start: int,
    end: int,
    device: torch.device,
    state: dist.DistState = dist.SINGLE,
) -> DataLoader:
    """Augmented batches of ``cache`` for steps ``start .. end-1`` (facing-weighted when
    ``cfg.facing_kappa`` > 0, else epoch permutations), deterministic in ``cfg.seed``; under DDP this
    rank's ``cfg.batch / world`` slice of each global batch (:class:`RankSlice`)."""
    ds = AugmentedCrops(cache, cfg.augment, cfg.seed)
    if cfg.facing_kappa > 0:
        sampler: Sampler = FacingBatchSampler(
            facing_cos(cache.labels["global_orient"]), cfg.batch, cfg.seed, start, end, cfg.facing_kappa,
            cfg.curriculum_steps,
        )  # fmt: skip
    else:
        sampler = StepBatchSampler(len(ds), cfg.batch, cfg.seed, start, end)
    if state.active:
        sampler = RankSlice(sampler, cfg.batch, state.rank, state.world)
    return DataLoader(
        ds,
        batch_sampler=sampler,
        num_workers=cfg.num_workers,
        worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(cfg.seed),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def _pretrain_weights(cfg: TrainConfig, aux: DenseHead | None) -> LossWeights | None:
    """The loss weights of the dense-only pretraining steps (every HMR term 0), ``None`` without a head."""
    if not aux:
        return None
    zero = LossWeights(**{k: 0.0 for k in dataclasses.asdict(cfg.loss_weights)})
    w = cfg.loss_weights
    return dataclasses.replace(zero, **{k: getattr(w, k) for k in HEAD_LOSS_TERMS})


def _run_steps(
    cfg: TrainConfig,
    t: _Trainables,
    loader: DataLoader,
    out: Path,
    *,
    step: int,
    end: int,
    history: list[dict],
    wall_prev: float,
    amp_dtype: torch.dtype | None,
    progress: bool,
    device: torch.device,
    state: dist.DistState = dist.SINGLE,
) -> tuple[int, float]:
    """Optimizer steps ``step .. end-1`` over ``loader``: loss history (all-reduced means under DDP)
    every ``cfg.log_every`` steps, the resumable state and history files (rank 0) every
    ``cfg.save_every`` steps and at ``end`` (``history`` is appended in place). Returns (steps done,
    cumulative wall time s)."""
    pretrain_weights = _pretrain_weights(cfg, t.aux)
    t.model.train()
    if t.aux is not None:
        t.aux.train()
    t0 = time.perf_counter()
    bar = tqdm(total=end, initial=step, desc=f"train {cfg.preset}", disable=not (progress and state.is_main))
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        weights = pretrain_weights if step < cfg.pretrain_steps else cfg.loss_weights
        losses = train_step(
            t.model, batch, t.opt, amp_dtype=amp_dtype, weights=weights, grad_clip=cfg.grad_clip,
            scaler=t.scaler, aux=t.aux, net=t.net,
        )  # fmt: skip
        losses = state.mean(losses)  # the global batch's means (the same on every rank)
        t.sched.step()
        step += 1
        if not torch.isfinite(losses["total"]):
            raise FloatingPointError(f"non-finite loss at step {step}: {losses['total'].item()}")
        if step % cfg.log_every == 0 or step == end:
            history.append(
                {
                    "step": step,
                    "lr": t.sched.get_last_lr()[0],
                    **{k: float(v.detach()) for k, v in losses.items()},
                }
            )
            bar.set_postfix(loss=f"{history[-1]['total']:.4f}")
        bar.update(1)
        if step % cfg.save_every == 0 or step == end:
            rng_ranks = state.all_gather(_rng_state()) if state.active else None
            if state.is_main:
                save_train_state(
                    out / STATE_FILE, t.model, t.opt, t.sched, t.scaler, step, history, cfg,
                    wall_prev + time.perf_counter() - t0, aux=t.aux, rng_ranks=rng_ranks,
                )  # fmt: skip
                write_history(out, history)
    bar.close()
    return step, wall_prev + time.perf_counter() - t0  # cumulative over resumed runs


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

    Under DDP (an initialised process group, :func:`fasthmr_lib.dist.current`) every rank calls this
    with the same arguments; ``cfg.device`` ``cuda`` means this rank's GPU; rank 0 builds the crop
    cache file first and writes every output file. Dropout/drop-path masks come from each rank's own
    torch RNG (reseeded per rank), so only a run without them equals the 1-process run numerically.
    """
    state = dist.current()
    state.batch_slice(cfg.batch, "batch")  # the global batch must split evenly over the ranks
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = dist.local_device(cfg.device, state)
    amp_dtype = autocast_dtype(cfg.precision, device)
    _seed_all(cfg.seed)
    with dist.rank_zero_first(state):  # one process writes data/cache/, the others then read it
        cache, data_version = training_crops(
            cfg, dataset, progress=progress and state.is_main, data_version=data_version
        )
    t = _trainables(cfg, model, cache, device)
    t.net = dist.wrap(ModelAndHead(t.model, t.aux), state, device) if state.active else None
    dist.decorrelate(state, cfg.seed)
    step, history, wall_prev = 0, [], 0.0
    if resume:
        step, history, wall_prev = _resume_state(out / STATE_FILE, cfg, t, state)
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    loader = training_loader(cfg, cache, step, end, device, state)
    step, wall = _run_steps(
        cfg, t, loader, out, step=step, end=end, history=history, wall_prev=wall_prev, amp_dtype=amp_dtype,
        progress=progress, device=device, state=state,
    )  # fmt: skip
    hist = pd.DataFrame(history)
    if state.is_main:
        hist = write_history(out, history)
        if final_save and step >= cfg.steps:
            save_final(t.model, out, cfg, data_version=data_version, train_wall_s=wall)
    state.barrier()  # every rank returns once rank 0's files are written
    return TrainResult(model=t.model, history=hist, out_dir=out, steps_done=step, wall_s=wall, aux=t.aux)


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
