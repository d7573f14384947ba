"""The training recipe of the HMR baselines: :class:`TrainConfig` (everything that defines a run, stored as
a checkpoint's ``recipe``), :func:`recipe_of` (read it back from a checkpoint) and :func:`training_command`
(the ``python -m fasthmr_lib.train`` line that reproduces it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.augment import AugmentConfig
from ..io import read_json
from .losses import LossWeights

# The command-line entry point (fasthmr_lib/train.py) whose flags :func:`training_command` writes.
TRAIN_COMMAND = "python -m fasthmr_lib.train"
NO_AUGMENT = AugmentConfig(
    flip_rate=0.0, occluder_rate=0.0, trans_rate=0.0, scale_factor=0.0, color_scale=0.0
)


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
        f"{TRAIN_COMMAND} --preset {cfg.preset} --world {cfg.world} --steps {cfg.steps} "
        f"--batch {cfg.batch} --device {cfg.device} --lr {cfg.lr} --warmup {cfg.warmup} --seed {cfg.seed}"
        f"{extra} --out {out}"
    )
