"""Training recipe for the HMR baselines on the embedded synthetic world (HMR2.0-style losses).

One command trains a preset from scratch and evaluates it::

    python -m fasthmr_lib.train --preset tiny --world default --steps 600 --batch 16 \\
        --device cpu --out checkpoints/tiny

and ``--resume`` continues exactly where the last saved step left off (model, optimizer, scheduler,
RNG states, loss history; see :mod:`fasthmr_lib.models.train`). Once all ``--steps`` are done the model is
evaluated on ``--eval-split`` of ``--eval-world`` (:func:`fasthmr_lib.eval.evaluate.evaluate`) and saved as
a shipped checkpoint with its recipe, the command that reproduces it
(:func:`~fasthmr_lib.models.recipe.training_command`), the data version and the test metrics.

The same command runs data-parallel on N processes (PyTorch DDP, :mod:`fasthmr_lib.dist`)::

    torchrun --nproc_per_node 2 -m fasthmr_lib.train --preset small --batch 64 --device cuda ... --out ...

``--batch`` stays the global batch (each process trains on batch / N crops of it); rank 0 writes the
checkpoint, evaluates and ships the result.

Losses (:mod:`fasthmr_lib.models.losses`; HMR2.0 ``hmr2/models/hmr2.py`` + ``losses.py``, weights from
``hmr_vit_transformer.yaml``): L1 on 44 3D keypoints after pelvis alignment, visibility-weighted L1 on 44
2D keypoints, MSE on rotation matrices and betas; no adversarial term.
"""

from __future__ import annotations

import argparse

from . import dist
from .data.augment import AugmentConfig
from .data.crop_cache import world_data_version
from .eval.evaluate import evaluate, summarize
from .models.losses import LossWeights
from .models.recipe import NO_AUGMENT, TRAIN_COMMAND, TrainConfig
from .models.train import STATE_FILE, TrainResult, save_final, train
from .precision import AMP_DTYPES


def _add_recipe_args(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """The flags that set :class:`TrainConfig` fields (defaults: ``d``'s), but ``--loss-weights``."""
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


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """The flags of one invocation that are not part of the recipe (output, resumption, evaluation)."""
    p.add_argument("--out", required=True, help="output folder (e.g. checkpoints/tiny)")
    p.add_argument("--resume", action="store_true", help=f"continue from <out>/{STATE_FILE}")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this many steps (for testing)")
    p.add_argument("--eval-split", default="test", help="split evaluated after training ('' = none)")
    p.add_argument(
        "--eval-world", default="", help="world profile evaluated after training (default: --world)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m fasthmr_lib.train`` argument parser (every flag :func:`training_command` writes)."""
    p = argparse.ArgumentParser(prog=TRAIN_COMMAND, description=__doc__.split("\n")[0])
    _add_recipe_args(p, TrainConfig())
    _add_run_args(p)
    p.add_argument(  # last, as it always was in --help
        "--loss-weights",
        default="",
        help="override LossWeights fields, e.g. 'global_orient=0.02,body_pose=0.005' (default: HMR2.0's)",
    )
    return p


def parse_loss_weights(text: str) -> LossWeights:
    """``'name=value,...'`` (LossWeights fields) -> :class:`LossWeights` with those fields overridden
    (HMR2.0's elsewhere); exits with a message naming the valid fields on a bad item."""
    lw = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        k, sep, v = item.partition("=")
        if not sep or k not in LossWeights.__dataclass_fields__:
            names = sorted(LossWeights.__dataclass_fields__)
            raise SystemExit(f"--loss-weights: expected name=value with name in {names}, got {item!r}")
        lw[k] = float(v)
    return LossWeights(**lw)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed command-line flags."""
    return TrainConfig(
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
        loss_weights=parse_loss_weights(a.loss_weights),
    )


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """The CLI's :class:`TrainConfig` and the remaining options (``out``, ``resume``, ``eval_*`` ...)."""
    a = build_parser().parse_args(argv)
    return config_from_args(a), a


def evaluate_trained(
    res: TrainResult, cfg: TrainConfig, eval_split: str, eval_world: str
) -> dict[str, float]:
    """Evaluate a finished run on ``eval_split`` of ``eval_world`` (``''`` = ``cfg.world``) and print the
    summary; returns ``{<split>_mpjpe, <split>_pa_mpjpe, <split>_pve, <split>_accel}`` (mm; mm/frame² for
    accel), the metrics stored with the checkpoint."""
    from .data.datasets import CropDataset, world_root  # at call time: tests stand in for the module

    df = evaluate(
        res.model,
        CropDataset(world_root(eval_world or cfg.world), eval_split, mask_kind=cfg.mask_kind),
        batch_size=max(cfg.batch, 32),
        device=cfg.device,
    )
    s = summarize(df)
    row = s.iloc[0]
    metrics = {f"{eval_split}_{k}": float(row[k]) for k in ("mpjpe", "pa_mpjpe", "pve", "accel") if k in row}
    print(s.to_string())
    return metrics


def main(argv: list[str] | None = None) -> TrainResult:
    """Train (or resume) per the command line; once all steps are done, evaluate (unless
    ``--eval-split ''``) and write the shipped checkpoint with its recipe, data version and metrics.
    Under ``torchrun`` every process trains its share; rank 0 alone evaluates and writes."""
    cfg, a = parse_args(argv)
    joined = dist.current().active  # a caller's process group is left to the caller
    state = dist.init_from_env(cfg.device)
    try:
        res = train(cfg, a.out, resume=a.resume, stop_at=a.stop_at, final_save=False)
        if state.is_main:  # the others are done (no collective follows: no barrier timeout to hit)
            _finish(res, cfg, a)
    finally:
        if not joined:
            dist.shutdown()
    return res


def _finish(res: TrainResult, cfg: TrainConfig, a: argparse.Namespace) -> None:
    """Once all steps are done: evaluate (unless ``--eval-split ''``) and write the shipped checkpoint."""
    if res.steps_done >= cfg.steps:
        from .data.datasets import world_root

        root = world_root(cfg.world)
        metrics = evaluate_trained(res, cfg, a.eval_split, a.eval_world) if a.eval_split else {}
        save_final(
            res.model,
            res.out_dir,
            cfg,
            data_version=world_data_version(root),
            train_wall_s=res.wall_s,
            metrics=metrics,
            eval_world=a.eval_world if a.eval_split else "",
        )


if __name__ == "__main__":
    main()
