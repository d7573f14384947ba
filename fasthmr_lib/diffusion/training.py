"""Training of the diffusion decoder (paper §3.3 / §4): stage 1 motion VAE, stage 2 latent denoiser.

* Stage 1 (:func:`train_vae`): the VAE on F-frame windows of normalised pose features of motion
  sequences (procedural SMPL motion by default, :func:`procedural_motion`; any list of
  ``{global_orient (T,3), body_pose (T,69), betas (10,)|(T,10)}`` works — AMASS/H36M converters give the
  same arrays). MSE + KL, Adam, lr 1e-4 (paper Table 15 training line).
* Stage 2 (:func:`train_denoiser`): the denoiser on pre-extracted head tokens (frozen HMR, extracted
  once with :func:`extract_head_tokens` from *any* callable ``model(img[, person_mask]) -> head_token``)
  paired with GT motion; the frozen VAE encoder gives the target latents (μ by default,
  docs/AMBIGUITIES.md #12), scaled by ``latent_scale`` = 1 / std(μ) (computed once, saved); AdamW, lr 1e-4.
* Both: time-reversal and time-warp augmentation (p = 0.5 each; the paper applies them in stage 2),
  checkpoints every N steps into ``out_dir`` (``model.safetensors`` + ``config.json`` export, and
  ``train_state.pt`` with weights, optimizer state, step and history for resuming), a tqdm bar and
  ``loss_history.csv``. Every step seeds its own RNGs from (seed, step), so a run interrupted and resumed
  gives the same weights as an uninterrupted one. ``device`` is a parameter (cpu / cuda). Options (off by
  default): ``lr_schedule="cosine"`` and ``ema_decay`` (the export is an EMA of the weights).
* Under ``torchrun`` (an initialised process group, :mod:`fasthmr_lib.dist`) both stages run as PyTorch
  DDP: ``batch_size`` is the global batch; every rank draws the whole global batch's windows, timesteps
  and noise from the same (seed, step) RNGs and trains on its ``batch_size / world`` slice; gradients
  are averaged, logged losses are all-reduced means, rank 0 writes the files. With dropout 0 this equals
  the 1-process run (dropout masks are each rank's own). :func:`extract_head_tokens` shards the frames
  over the ranks and gathers the tokens on every rank.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import roma
import torch
from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import dist
from ..body.hybrik import FeatureStats, HybrIKBody
from ..data import motion
from ..io import atomic_path, read_json, write_json
from ..precision import autocast_dtype
from .denoiser import DENOISER_PRESETS, DenoiserConfig, LatentDenoiser, denoiser_config
from .schedule import OBJECTIVES, diffusion_loss, make_scheduler, noisy_and_targets
from .vae import MotionVAE, VAEConfig, vae_config, vae_loss

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "train_state.pt"
HISTORY_FILE = "loss_history.csv"
VAE_FORMAT = "fasthmr-motion-vae"
DENOISER_FORMAT = "fasthmr-latent-denoiser"


# ----------------------------------------------------------------------------------------------------
# motion data


def procedural_motion(
    n_clips: int, n_frames: int = 300, seed: int = 0, kinds: Sequence[str] | None = None
) -> list[dict[str, np.ndarray]]:
    """``n_clips`` procedural clips (:mod:`fasthmr_lib.data.motion`; world frame, Y up, 30 fps)."""
    kinds = tuple(kinds or motion.KINDS)
    return [
        motion.generate_clip(kinds[i % len(kinds)], n_frames, seed=seed * 100_003 + i) for i in range(n_clips)
    ]


@torch.no_grad()
def gt_motion(g: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A ground-truth clip ``{"pose" (T,72) axis-angle, "betas" (T,10)}`` (a world record's camera-frame
    SMPL θ, β) as the motion dict :func:`clips_to_features` reads."""
    pose = np.asarray(g["pose"])
    return {"global_orient": pose[:, :3], "body_pose": pose[:, 3:], "betas": np.asarray(g["betas"])}


def clips_to_features(
    clips: Sequence[dict[str, Any]], body: HybrIKBody, chunk: int = 4096, progress: bool = False
) -> list[Tensor]:
    """Per clip (T, dim) pose features (unnormalised) from ``global_orient`` (T,3), ``body_pose`` (T,69)
    axis-angle and ``betas`` (10,) or (T,10)."""
    out = []
    for c in tqdm(clips, desc="pose features", disable=not progress):
        for k in ("global_orient", "body_pose", "betas"):
            if k not in c:
                raise KeyError(
                    f"motion clip lacks {k!r} (needs global_orient (T,3), body_pose (T,69), betas)"
                )
        go = torch.as_tensor(np.asarray(c["global_orient"]), dtype=torch.float32).reshape(-1, 3)
        bp = torch.as_tensor(np.asarray(c["body_pose"]), dtype=torch.float32).reshape(-1, 69)
        T = go.shape[0]
        be = torch.as_tensor(np.asarray(c["betas"]), dtype=torch.float32)
        be = be[None].expand(T, -1) if be.ndim == 1 else be.reshape(T, -1)
        dev = body.rest_template.device
        parts = [
            body.encode_axis_angle(
                go[i : i + chunk].to(dev), bp[i : i + chunk].to(dev), be[i : i + chunk].to(dev)
            )
            for i in range(0, T, chunk)
        ]
        out.append(torch.cat(parts).cpu())
    return out


def view_rotation(rng: np.random.Generator, max_tilt_deg: float = 15.0) -> Tensor:
    """A random camera-like view of Y-up world motion: yaw ~ U(−π, π) about Y, then Y-up -> camera
    (x right, y down, z forward: diag(1,−1,−1)) and a tilt ~ U(±max_tilt) about x. Returns (3,3)."""
    yaw = roma.rotvec_to_rotmat(torch.tensor([0.0, rng.uniform(-math.pi, math.pi), 0.0]))
    tilt = roma.rotvec_to_rotmat(
        torch.tensor([math.radians(rng.uniform(-max_tilt_deg, max_tilt_deg)), 0.0, 0.0])
    )
    return tilt @ torch.diag(torch.tensor([1.0, -1.0, -1.0])) @ yaw


def rotate_features(feats: Tensor, R: Tensor, representation: str = "hybrik") -> Tensor:
    """Apply a global rotation R (3,3) to unnormalised features (..., dim): hybrik joints rotate (twists are
    local and do not change); for rot6d the root rotation's two columns rotate."""
    R = R.to(feats)
    if representation == "hybrik":
        j = feats[..., :87].reshape(*feats.shape[:-1], 29, 3) @ R.T
        return torch.cat([j.flatten(-2), feats[..., 87:]], -1)
    root = (R @ feats[..., :6].reshape(*feats.shape[:-1], 2, 3).transpose(-1, -2)).transpose(-1, -2)
    return torch.cat([root.flatten(-2), feats[..., 6:]], -1)


def window_positions(
    rng: np.random.Generator,
    T: int,
    F: int,
    p_reverse: float = 0.5,
    p_warp: float = 0.5,
    max_speed: float = 1.4,
) -> np.ndarray:
    """Fractional source frames (F,) of one training window from a T-frame clip.

    Clips shorter than F are resampled to F (the decoder does the same). Time warp (p_warp): a smooth
    monotonic speed profile s_k = s0·(1 + a·sin(2πfk/F + φ)), s0 ~ U(1/max_speed, max_speed), a ≤ 0.3,
    f ≤ 1.5 (shrunk to fit the clip). Time reversal (p_reverse): the window runs backwards."""
    if T <= F:
        pos = np.linspace(0.0, T - 1.0, F)
    else:
        speed = np.ones(F - 1)
        if rng.random() < p_warp:
            s0 = math.exp(rng.uniform(-math.log(max_speed), math.log(max_speed)))
            k = np.arange(F - 1)
            speed = s0 * (
                1
                + rng.uniform(0, 0.3)
                * np.sin(2 * math.pi * rng.uniform(0, 1.5) * k / F + rng.uniform(0, 6.3))
            )
        span = float(speed.sum())
        if span > T - 1:
            speed *= (T - 1) / span
            span = T - 1.0
        start = rng.uniform(0.0, T - 1.0 - span)
        pos = start + np.concatenate([[0.0], np.cumsum(speed)])
        pos = np.clip(pos, 0.0, T - 1.0)
    if rng.random() < p_reverse:
        pos = pos[::-1].copy()
    return pos


def gather_positions(x: Tensor, pos: np.ndarray) -> Tensor:
    """Linear interpolation of x (T, ...) at fractional frames pos (F,) -> (F, ...)."""
    T = x.shape[0]
    p = torch.as_tensor(pos, dtype=torch.float64)
    if T == 1:
        return x[[0] * len(pos)].clone()
    i0 = p.floor().long().clamp(0, T - 2)
    w = (p - i0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return x[i0] * (1 - w) + x[i0 + 1] * w


# ----------------------------------------------------------------------------------------------------
# checkpoints


def _save_export(out_dir: Path, tensors: dict[str, Tensor], config: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    write_json(out_dir / CONFIG_FILE, config)


def _load_export(directory: str | Path, fmt: str) -> tuple[dict[str, Tensor], dict]:
    d = Path(directory)
    if not (d / CONFIG_FILE).is_file() or not (d / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{d}: expected {CONFIG_FILE} + {WEIGHTS_FILE} of a {fmt} checkpoint (train one with "
            f"fasthmr_lib.diffusion.training)"
        )
    cfg = read_json(d / CONFIG_FILE)
    if cfg.get("format") != fmt:
        raise ValueError(f"{d / CONFIG_FILE}: format is {cfg.get('format')!r}, expected {fmt!r}")
    return load_file(str(d / WEIGHTS_FILE)), cfg


def vae_export(vae: MotionVAE, stats: FeatureStats, body: HybrIKBody, **meta: Any) -> tuple[dict, dict]:
    tensors = {f"model.{k}": v for k, v in vae.state_dict().items()} | stats.to_tensors()
    cfg = {
        "format": VAE_FORMAT,
        "vae": vae.cfg.to_dict(),
        "representation": body.representation,
        "leaf_ids": list(body.leaf_ids),
        **meta,
    }
    return tensors, cfg


def load_vae(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[MotionVAE, FeatureStats, dict]:
    """-> (VAE in eval mode, feature stats, config dict with representation / leaf_ids / training info)."""
    tensors, cfg = _load_export(directory, VAE_FORMAT)
    vae = MotionVAE(VAEConfig.from_dict(cfg["vae"]))
    vae.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return vae.to(device).eval(), FeatureStats.from_tensors(tensors), cfg


def denoiser_export(
    den: LatentDenoiser, objective: str, latent_scale: float, **meta: Any
) -> tuple[dict, dict]:
    tensors = {f"model.{k}": v for k, v in den.state_dict().items()}
    cfg = {
        "format": DENOISER_FORMAT,
        "denoiser": den.cfg.to_dict(),
        "objective": objective,
        "latent_scale": float(latent_scale),
        "scheduler": dict(make_scheduler(objective).config),
        **meta,
    }
    return tensors, cfg


def load_denoiser(directory: str | Path, device: str | torch.device = "cpu") -> tuple[LatentDenoiser, dict]:
    tensors, cfg = _load_export(directory, DENOISER_FORMAT)
    den = LatentDenoiser(DenoiserConfig.from_dict(cfg["denoiser"]))
    den.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return den.to(device).eval(), cfg


def denoiser_condition(directory: str | Path) -> str | None:
    """The ``condition`` recorded by the denoiser run in ``directory`` (complete or not; ``""`` if it was
    trained before conditions were recorded), or ``None`` when there is no run."""
    cfg = Path(directory) / CONFIG_FILE
    return str(read_json(cfg).get("train", {}).get("condition", "")) if cfg.exists() else None


def shipped_decoder_condition(directory: str | Path) -> str | None:
    """What the decoder in ``directory`` (``vae/`` + ``denoiser/``) was conditioned on: its denoiser's
    recorded ``condition`` (e.g. the baseline weights' sha256 prefix; ``""`` if trained before it was
    recorded), or ``None`` when either part is missing or incomplete."""
    d = Path(directory)
    cfgs = [d / part / CONFIG_FILE for part in ("vae", "denoiser")]
    if not all(c.exists() and read_json(c).get("complete") for c in cfgs):
        return None
    return denoiser_condition(d / "denoiser")


def decoder_for(candidates: Sequence[str | Path], condition: str) -> Path | None:
    """The first of ``candidates`` (decoder folders) holding a complete decoder trained on ``condition``
    (:func:`shipped_decoder_condition`), or ``None``: a decoder trained on another baseline's head tokens
    reads tokens it never saw."""
    return next((Path(c) for c in candidates if shipped_decoder_condition(c) == condition), None)


# ----------------------------------------------------------------------------------------------------
# the resumable loop


@dataclass
class LoopConfig:
    """Optimisation settings shared by both stages."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" (paper, VAE) | "adamw" (paper, denoiser)
    grad_clip: float | None = 1.0
    ckpt_every: int = 200
    log_every: int = 1
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" | "bf16" (autocast of the forward; fp16 would need a GradScaler)
    p_reverse: float = 0.5
    p_warp: float = 0.5
    stop_after: int | None = None  # stop this run after that many steps (simulates an interruption)
    # > 0: the exported weights are an exponential moving average of the trained ones (timm's ModelEmaV3
    # with its warm-up, decay 1 - (1 + step)^(-2/3) capped at ema_decay); 0 = the trained weights
    ema_decay: float = 0.0
    lr_schedule: str = "constant"  # "constant" | "cosine" (lr x 0.5 (1 + cos(pi step / steps)))


@dataclass
class VAETrainConfig(LoopConfig):
    preset: str = "small"
    overrides: dict = field(default_factory=dict)  # VAEConfig fields
    representation: str = "hybrik"
    view_aug: bool = True  # random camera-like view of world-frame motion (procedural / AMASS)
    p_reverse: float = 0.0
    p_warp: float = 0.0


@dataclass
class DenoiserTrainConfig(LoopConfig):
    preset: str = "small"
    overrides: dict = field(default_factory=dict)  # DenoiserConfig fields
    objective: str = "v+eps"
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    use_mu: bool = True  # target latents: VAE posterior mean (True) or a sample
    p_terminal: float = 0.0  # extra probability of drawing t = T (the one-step inference timestep)
    # condition noise: Gaussian noise of cond_noise x each token channel's std over the training clips is
    # added to the head tokens of every training window (a regulariser against memorising the training
    # clips' tokens; not in the paper, 0 = off)
    cond_noise: float = 0.0
    # what produced the conditioning tokens (notebook 04: the baseline weights' sha256 prefix); recorded in
    # config.json so a decoder trained on another baseline's head tokens is not reused (tokens differ)
    condition: str = ""


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    complete: bool
    history: pd.DataFrame
    wall_s: float


def _optimizer(model: nn.Module, cfg: LoopConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'adamw', got {cfg.optimizer!r}")


def _step_seed(seed: int, step: int) -> int:
    return (int(seed) * 1_000_003 + int(step) * 7_919 + 12_345) % (2**63 - 1)


def _write_history(out_dir: Path, history: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(history)
    with atomic_path(out_dir / HISTORY_FILE) as tmp:
        df.to_csv(tmp, index=False)
    return df


LR_SCHEDULES = ("constant", "cosine")


def lr_at(cfg: LoopConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) under ``cfg.lr_schedule``: a pure function of
    the step, so a resumed run continues the schedule exactly."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":  # SGDR's cosine annealing without restarts (Loshchilov & Hutter 2017)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {cfg.lr_schedule!r}")


def _load_state(
    state_path: Path,
    cfg: LoopConfig,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    ema: nn.Module | None = None,
    upgrade: Callable[[dict], dict] | None = None,
) -> tuple[int, list[dict], float]:
    """Load a saved run into ``model`` / ``opt`` (/ the EMA weights ``ema``); returns (step, history,
    wall s). Raises when it was made with another configuration (but ``stop_after``)."""
    st = torch.load(state_path, map_location=cfg.device, weights_only=True)
    if upgrade is not None:  # a run saved by an older version, in today's terms
        st["config"] = upgrade(dict(st["config"]))
    now = {k: v for k, v in asdict(cfg).items() if k != "stop_after"}
    # a field added after the run was saved counts as its default there (e.g. a new DenoiserTrainConfig
    # ``condition`` set now differs from a run saved without one)
    defaults = asdict(type(cfg)())
    saved = {k: st["config"].get(k, defaults.get(k)) for k in now} | {
        k: v for k, v in st["config"].items() if k not in now and k != "stop_after"
    }
    diff = sorted(k for k in saved if now.get(k) != saved[k])
    if diff:
        raise ValueError(
            f"{state_path}: the saved run used a different configuration ({diff}); "
            "use another out_dir or resume=False"
        )
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["optimizer"])
    if ema is not None:
        ema.load_state_dict(st["ema"])
    return int(st["step"]), list(st["history"]), float(st["wall_s"])


def _run_loop(
    model: nn.Module,
    step_fn: Callable[[np.random.Generator, nn.Module], dict[str, Tensor]],
    export_fn: Callable[[nn.Module, int, bool, float], tuple[dict, dict]],
    cfg: LoopConfig,
    out_dir: Path,
    resume: bool,
    progress: bool,
    desc: str,
    upgrade: Callable[[dict], dict] | None = None,
) -> TrainResult:
    """Optimise ``model`` for ``cfg.steps`` steps; ``step_fn(rng, net)`` returns this process's losses
    (``loss`` is optimised) with the forward through ``net`` (``model``, or its DDP wrapper under
    ``torchrun``); ``export_fn(module, step, complete, wall_s)`` gives the exported tensors + config of
    ``module`` (``model``, or its EMA copy when ``cfg.ema_decay`` > 0, which ``model`` holds on return)."""
    state = dist.current()
    state.batch_slice(cfg.batch_size, "batch_size")  # the global batch must split evenly over the ranks
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = dist.wrap(model, state, dist.local_device(cfg.device, state))
    opt = _optimizer(model, cfg)
    lr_at(cfg, 0)  # a bad schedule name fails before any step
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema_decay > 0 else None
    if cfg.precision == "fp16":
        raise ValueError("the decoder trains in precision fp32 or bf16 (fp16 would need a GradScaler)")
    dev_type = torch.device(cfg.device).type
    amp = autocast_dtype(cfg.precision, torch.device(cfg.device))
    state_path = out_dir / STATE_FILE
    step, history, wall = 0, [], 0.0
    if resume and state_path.is_file():
        step, history, wall = _load_state(
            state_path, cfg, model, opt, None if ema is None else ema.module, upgrade
        )

    def save(complete: bool) -> None:
        tensors, conf = export_fn(model if ema is None else ema.module, step, complete, wall)
        _save_export(out_dir, tensors, conf)
        state = {
            **({} if ema is None else {"ema": ema.module.state_dict()}),
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "history": history,
            "config": asdict(cfg),
            "wall_s": wall,
        }
        with atomic_path(state_path) as tmp:
            torch.save(state, tmp)
        _write_history(out_dir, history)

    start_step = step
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, disable=not (progress and state.is_main))
    while step < cfg.steps:
        if cfg.stop_after is not None and step - start_step >= cfg.stop_after:
            break
        t0 = time.perf_counter()
        torch.manual_seed(_step_seed(cfg.seed, step))
        rng = np.random.default_rng([cfg.seed, step])
        model.train()
        with torch.autocast(dev_type, dtype=amp, enabled=amp is not None):
            losses = step_fn(rng, net)
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()  # under DDP: the ranks' average gradient (= the global batch's)
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses = state.mean(losses)  # the global batch's means (the same on every rank)
        step += 1
        if ema is not None:
            ema.update(model, step=step)
        wall += time.perf_counter() - t0
        if step % cfg.log_every == 0 or step == cfg.steps:
            history.append({"step": step, **{k: float(v.detach()) for k, v in losses.items()}})
            bar.set_postfix(loss=f"{float(losses['loss'].detach()):.4g}")
        bar.update(1)
        if state.is_main and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            save(step == cfg.steps)
    bar.close()
    if state.is_main and step < cfg.steps and step % cfg.ckpt_every != 0:
        save(False)
    state.barrier()  # every rank returns once rank 0's files are written
    if ema is not None:  # the caller gets what was exported
        model.load_state_dict(ema.module.state_dict())
    model.eval()
    return TrainResult(out_dir, step, step >= cfg.steps, pd.DataFrame(history), wall)


# ----------------------------------------------------------------------------------------------------
# stage 1


def train_vae(
    features: Sequence[Tensor],
    body: HybrIKBody,
    cfg: VAETrainConfig,
    out_dir: str | Path,
    *,
    stats: FeatureStats | None = None,
    world_frame: Sequence[bool] | None = None,
    resume: bool = True,
    progress: bool = True,
) -> tuple[MotionVAE, FeatureStats, TrainResult]:
    """Stage 1. ``features``: per clip (T, dim) unnormalised features (:func:`clips_to_features`) in the
    world frame (``view_aug`` rotates each window to a random camera-like view) or already camera-like
    (set ``view_aug=False``, or mark clips with ``world_frame[i] = False``: only world-frame clips get the
    random view). Stats are computed from the (view-augmented) training features unless given."""
    vcfg = vae_config(cfg.preset, nfeats=body.dim, **cfg.overrides)
    if body.representation != cfg.representation:
        raise ValueError(
            f"body representation {body.representation!r} != cfg.representation {cfg.representation!r}"
        )
    feats = [torch.as_tensor(f, dtype=torch.float32) for f in features]
    if not feats:
        raise ValueError("train_vae: no motion clips given")
    world = (
        [bool(cfg.view_aug)] * len(feats)
        if world_frame is None
        else [cfg.view_aug and w for w in world_frame]
    )
    if len(world) != len(feats):
        raise ValueError(f"world_frame has {len(world)} flags for {len(feats)} clips")
    if stats is None:
        rng = np.random.default_rng([cfg.seed, 999_331])
        views = [
            rotate_features(f, view_rotation(rng), body.representation) if w else f
            for f, w in zip(feats, world)
        ]
        stats = FeatureStats.compute(
            torch.cat(
                views
                + [
                    rotate_features(f, view_rotation(rng), body.representation)
                    for f, w in zip(feats, world)
                    if w
                ]
            )
        )
    torch.manual_seed(cfg.seed)
    vae = MotionVAE(vcfg).to(cfg.device)
    F = vcfg.num_frames
    state = dist.current()
    sl = state.batch_slice(cfg.batch_size, "batch_size")

    def step_fn(rng: np.random.Generator, net: nn.Module) -> dict[str, Tensor]:
        xs = []
        for j in range(cfg.batch_size):  # every rank draws the global batch, keeps its slice
            i = int(rng.integers(len(feats)))
            pos = window_positions(rng, feats[i].shape[0], F, cfg.p_reverse, cfg.p_warp)
            R = view_rotation(rng) if world[i] else None
            if sl.start <= j < sl.stop:
                w = gather_positions(feats[i], pos)
                xs.append(w if R is None else rotate_features(w, R, body.representation))
        x = stats.normalize(torch.stack(xs)).to(cfg.device)
        if not state.active:
            return vae_loss(x, net(x), vcfg.kl_weight)
        # the global batch's reparameterisation noise (where one process draws it when dropout is 0)
        eps = torch.randn((cfg.batch_size, vcfg.latent_len, vcfg.latent_dim), device=x.device)[sl]
        dist.decorrelate(state, int(rng.integers(2**62)))
        return vae_loss(x, net(x, eps=eps), vcfg.kl_weight)

    def export(m: nn.Module, step: int, complete: bool, wall: float) -> tuple[dict, dict]:
        return vae_export(m, stats, body, step=step, complete=complete, train=asdict(cfg), wall_s=wall)

    res = _run_loop(vae, step_fn, export, cfg, Path(out_dir), resume, progress, "VAE (stage 1)")
    return vae, stats, res


# ----------------------------------------------------------------------------------------------------
# stage 2


@torch.no_grad()
def extract_head_tokens(
    model: Callable[..., Any],
    dataset: torch.utils.data.Dataset,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    use_mask: bool = True,
    keep: Sequence[str] = ("betas",),
    progress: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Run a frozen per-frame model once over a frame dataset (items with ``img``, ``clip_id``, ``frame``,
    optionally ``person_mask``) and group the head tokens per clip.

    ``model(img)`` or ``model(img, person_mask)`` may return the head token (B,C) or a dict with
    ``head_token`` and the per-frame outputs named in ``keep`` (e.g. ``betas``, ``rotmat``). Returns
    ``{clip_id: {"tokens" (T,C), "frames" (T,), <keep keys present>}}`` sorted by frame.

    Under ``torchrun`` (:mod:`fasthmr_lib.dist`) rank r runs frames r, r+W, ... and every rank gets
    the gathered result (the same dict as one process)."""
    state = dist.current()
    if state.active:
        dataset = torch.utils.data.Subset(dataset, dist.shard_indices(len(dataset), state))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    acc: dict[str, dict[str, list]] = {}
    if isinstance(model, nn.Module):
        model.eval()
    for batch in tqdm(loader, desc="head tokens", disable=not progress):
        img = batch["img"].to(device)
        if use_mask and "person_mask" in batch:
            out = model(img, batch["person_mask"].to(device))
        else:
            out = model(img)
        tok = out["head_token"] if isinstance(out, dict) else out
        extra = {k: out[k] for k in keep if isinstance(out, dict) and k in out}
        for i, (cid, fr) in enumerate(zip(batch["clip_id"], batch["frame"].tolist())):
            d = acc.setdefault(str(cid), {"tokens": [], "frames": []})
            d["tokens"].append(tok[i].float().cpu().numpy())
            d["frames"].append(int(fr))
            for k, v in extra.items():
                d.setdefault(k, []).append(v[i].float().cpu().numpy())
    res = {}
    for cid, d in _merge_shards(state.all_gather(acc)).items():
        order = np.argsort(d["frames"])
        res[cid] = {k: np.asarray(np.stack(v) if k != "frames" else v)[order] for k, v in d.items()}
    return res


def _merge_shards(parts: list[dict[str, dict[str, list]]]) -> dict[str, dict[str, list]]:
    """The per-clip lists of every rank's extraction, concatenated in rank order (one part: as is)."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, dict[str, list]] = {}
    for part in parts:
        for cid, d in part.items():
            dst = out.setdefault(cid, {})
            for k, v in d.items():
                dst.setdefault(k, []).extend(v)
    return out


@torch.no_grad()
def latent_scale_of(vae: MotionVAE, windows: Tensor) -> float:
    """1 / std of the VAE posterior means of normalised windows (N,F,dim) (like Stable Diffusion's scale)."""
    vae.eval()
    mu = torch.cat([vae.encode(windows[i : i + 64])[0] for i in range(0, len(windows), 64)])
    return float(1.0 / mu.std().clamp_min(1e-6))


def token_noise_std(toks: Sequence[Tensor], cond_noise: float, pose_dims: int = 0) -> Tensor | None:
    """Per-channel std (C,) of the training conditions (T_i, C) that ``cond_noise`` scales, or None when the
    noise is off; the trailing ``pose_dims`` head-pose channels get 0 (the noise regularises the token)."""
    if cond_noise <= 0:
        return None
    std = torch.cat(list(toks)).std(0)
    if pose_dims:
        std[-pose_dims:] = 0.0
    return std


def train_denoiser(
    pairs: Sequence[tuple[Tensor, Tensor]],
    vae: MotionVAE,
    stats: FeatureStats,
    cfg: DenoiserTrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
) -> tuple[LatentDenoiser, float, TrainResult]:
    """Stage 2. ``pairs``: per clip (head tokens (T,C), GT features (T,dim) unnormalised, same frame rate
    and frames). The VAE is frozen; it sets the denoiser's latent shape and, unless ``cfg.overrides`` says
    otherwise, ``cond_pool`` (on for a temporal latent). Returns (denoiser, latent_scale, result)."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
    if not pairs:
        raise ValueError("train_denoiser: no (tokens, features) clips given")
    toks = [torch.as_tensor(np.asarray(t), dtype=torch.float32) for t, _ in pairs]
    feats = [stats.normalize(torch.as_tensor(np.asarray(f), dtype=torch.float32)) for _, f in pairs]
    for i, (t, f) in enumerate(zip(toks, feats)):
        if t.shape[0] != f.shape[0]:
            raise ValueError(f"clip {i}: {t.shape[0]} token frames vs {f.shape[0]} feature frames")
    v = vae.cfg
    # from the VAE: the latent's shape, and pooling (latent token k describes chunk k only in the temporal
    # layout, so that is where its chunk's condition is pooled into it); cfg.overrides can still set both.
    # The resolved pooling is recorded in cfg.overrides, so a saved run says what it trained; a run saved
    # before that (no cond_pool in its overrides) pooled as its preset said, and resumes if that matches
    cfg = replace(cfg, overrides={"cond_pool": v.latent_layout == "temporal"} | dict(cfg.overrides))

    def upgrade(saved: dict) -> dict:
        over = dict(saved.get("overrides") or {})
        if "cond_pool" not in over and saved.get("preset") in DENOISER_PRESETS:
            over["cond_pool"] = DENOISER_PRESETS[saved["preset"]].cond_pool
        return saved | {"overrides": over}

    shapes = {"latent_len": v.latent_len, "latent_dim": v.latent_dim, "num_frames": v.num_frames}
    dcfg = denoiser_config(cfg.preset, **(shapes | {"cond_dim": toks[0].shape[1]} | cfg.overrides))
    if dcfg.cond_pool and v.latent_layout != "temporal":
        raise ValueError(
            "cond_pool pools chunk k's condition into latent token k, which needs a VAE with "
            f"latent_layout='temporal' (this VAE: {v.latent_layout!r})"
        )
    vae = vae.to(cfg.device).eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    F = v.num_frames
    rng0 = np.random.default_rng([cfg.seed, 424_242])
    probe = torch.stack(
        [gather_positions(f, window_positions(rng0, f.shape[0], F, 0, 0)) for f in feats for _ in range(2)]
    )
    scale = latent_scale_of(vae, probe.to(cfg.device))
    scheduler = make_scheduler(cfg.objective)
    n_t = scheduler.config.num_train_timesteps
    torch.manual_seed(cfg.seed)
    den = LatentDenoiser(dcfg).to(cfg.device)
    state = dist.current()
    sl = state.batch_slice(cfg.batch_size, "batch_size")
    B, shape = cfg.batch_size, (cfg.batch_size, v.latent_len, v.latent_dim)
    tok_std = token_noise_std(toks, cfg.cond_noise, dcfg.cond_pose_dims)
    tok_std = None if tok_std is None else tok_std.to(cfg.device)

    def step_fn(rng: np.random.Generator, net: nn.Module) -> dict[str, Tensor]:
        cs, xs = [], []
        for j in range(B):  # every rank draws the global batch (windows, t, noise), keeps its slice
            i = int(rng.integers(len(feats)))
            pos = window_positions(rng, feats[i].shape[0], F, cfg.p_reverse, cfg.p_warp)
            if sl.start <= j < sl.stop:
                cs.append(gather_positions(toks[i], pos))
                xs.append(gather_positions(feats[i], pos))
        cond, x = torch.stack(cs).to(cfg.device), torch.stack(xs).to(cfg.device)
        if tok_std is not None:  # the global batch's noise, this rank's slice
            cond_eps = torch.randn((B, *cond.shape[1:]), device=cond.device, dtype=cond.dtype)[sl]
            cond = cond + cfg.cond_noise * tok_std * cond_eps
        with torch.no_grad():
            mu, logvar = vae.encode(x)
            eps = None if cfg.use_mu else torch.randn(shape, device=mu.device, dtype=mu.dtype)[sl]
            z0 = (mu if cfg.use_mu else vae.reparameterize(mu, logvar, eps=eps)) * scale
        t = torch.randint(0, n_t, (B,), device=cfg.device)
        if cfg.p_terminal > 0:
            t = torch.where(torch.rand(B, device=cfg.device) < cfg.p_terminal, torch.full_like(t, n_t - 1), t)
        noise = torch.randn(shape, device=z0.device, dtype=z0.dtype)
        t, noise = t[sl], noise[sl]
        z_t, vel = noisy_and_targets(scheduler, z0, noise, t)
        if state.active:
            dist.decorrelate(state, int(rng.integers(2**62)))
        return diffusion_loss(scheduler, net(z_t, t, cond), z_t, noise, vel, t, cfg.objective)

    def export(m: nn.Module, step: int, complete: bool, wall: float) -> tuple[dict, dict]:
        return denoiser_export(
            m, cfg.objective, scale, step=step, complete=complete, train=asdict(cfg), wall_s=wall
        )

    res = _run_loop(
        den,
        step_fn,
        export,
        cfg,
        Path(out_dir),
        resume,
        progress,
        f"denoiser {cfg.objective} (stage 2)",
        upgrade,
    )
    return den, scale, res
