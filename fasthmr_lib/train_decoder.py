"""Training command of the diffusion decoder (notebook 04's training cells as one command)::

    python -m fasthmr_lib.train_decoder --checkpoint checkpoints/small --world default --preset small \\
        --vae-steps 3000 --denoiser-steps 3000 --batch 32 --lr 3e-4 --out results/checkpoints/diffusion_small

1. head tokens of the frozen baseline (``--checkpoint``) over ``--split`` of each ``--world``
   (:func:`~fasthmr_lib.diffusion.training.extract_head_tokens`), paired with the clips' GT motion;
   several worlds pool their clips (e.g. ``--world default train_motion``: the notebook's 32 training
   clips + 160 more from ``python -m data_prep.build_world --profile train_motion``);
2. stage 1, the motion VAE on procedural motion + those clips' GT motion (``<out>/vae``);
3. stage 2, the latent denoiser on (tokens, GT) clips (``<out>/denoiser``), its run recording the
   baseline weights' sha256 prefix as its ``condition`` (notebooks 04/05 use a decoder only with the
   baseline it was trained on); with ``--cond-head-joints`` its condition is the token followed by the
   head's own pose (``DenoiserConfig.cond_pose_dims``).

The command line and provenance go to ``<out>/train_run.json``.

Both stages resume from ``<out>`` unless ``--restart``. The same command runs data-parallel under
``torchrun --nproc_per_node N -m fasthmr_lib.train_decoder ...`` (PyTorch DDP, :mod:`fasthmr_lib.dist`):
the token extraction is sharded over the processes, ``--batch`` is the global batch of both stages
(each process trains on batch / N windows) and rank 0 writes the checkpoints.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from . import dist
from .body.hybrik import HybrIKBody
from .body.smpl import load_body_model
from .diffusion import training as TR
from .diffusion.decoder import head_condition
from .io import manifest, sha256_file, write_json

#: ``--cond-head-joints``: the head pose channels of the condition (the 29 joints' 87 numbers)
HEAD_JOINT_DIMS = 87


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fasthmr_lib.train_decoder", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--checkpoint", required=True, help="frozen baseline checkpoint folder (e.g. checkpoints/small)"
    )
    p.add_argument(
        "--world", nargs="+", default=["default"], help="world profile(s) under data/world/; clips are pooled"
    )
    p.add_argument("--split", default="train", help="split whose clips give tokens + GT motion")
    p.add_argument("--preset", default="small", help="VAE / denoiser preset (tiny, small, paper)")
    p.add_argument("--motion-clips", type=int, default=256, help="procedural motion clips for the VAE")
    p.add_argument("--motion-frames", type=int, default=128)
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--denoiser-steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32, help="global batch (windows per step, all processes)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--p-terminal", type=float, default=0.25, help="extra probability of t = T (stage 2)")
    p.add_argument(
        "--cond-noise", type=float, default=0.0, help="stage 2: head-token noise (x channel std; 0 = off)"
    )
    p.add_argument(
        "--dropout", type=float, default=None, help="stage 2: the denoiser's dropout (default: the preset's)"
    )
    p.add_argument("--vae", default="", help="a trained VAE folder to reuse (stage 1 is skipped)")
    p.add_argument(
        "--latent-layout",
        default=None,
        choices=["tokens", "temporal"],
        help="stage 1: the VAE's latent layout (default: the preset's; see diffusion.vae)",
    )
    p.add_argument(
        "--cond-head-joints",
        action="store_true",
        help="stage 2: condition on the head token + the head's own pose (its 29 joints as z-normalised "
        "HybrIK features, DenoiserConfig.cond_pose_dims = 87); decoding then needs the head's rotmat",
    )
    p.add_argument(
        "--cond-pool",
        default=None,
        choices=["on", "off"],
        help="stage 2: add chunk k's mean condition to latent token k (default: on for a temporal VAE)",
    )
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--extract-batch", type=int, default=32, help="frames per forward of the token extraction")
    p.add_argument("--no-mask", action="store_true", help="do not pass person masks to the baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: this process's GPU)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="autocast of both stages")
    p.add_argument("--restart", action="store_true", help="train anew instead of resuming from --out")
    p.add_argument("--out", required=True, help="output folder (vae/ and denoiser/ are written there)")
    return p


def token_pairs(a: argparse.Namespace, hb: HybrIKBody, device: str) -> tuple[list, list]:
    """(head outputs {"tokens" (T,C), "betas" (T,10), "rotmat" (T,24,3,3)}, GT features (T,133)) per clip of
    ``a.split`` of each world in ``a.world`` (worlds in the given order, clips sorted by id), and the GT
    features per clip; the extraction is sharded over the DDP ranks."""
    from .data.datasets import CropDataset, world_root
    from .eval.pipeline import clip_ground_truth
    from .models.checkpoints import load_checkpoint

    model = load_checkpoint(a.checkpoint, smpl=load_body_model()).to(device).eval()
    pairs, gt_feats = [], []
    for world in a.world:
        root = world_root(world)
        if not (root / a.split).is_dir():
            raise FileNotFoundError(
                f"--world {world}: no split {a.split!r} under {root}; build it with "
                f"`python -m data_prep.build_world --profile {world}`"
            )
        crops = CropDataset(root, a.split)
        tokens = TR.extract_head_tokens(
            model, crops, batch_size=a.extract_batch, device=device, use_mask=not a.no_mask,
            keep=("betas", "rotmat"),
        )  # fmt: skip
        gt = clip_ground_truth(root, a.split)
        if set(gt) != set(tokens):
            raise ValueError(f"{root}/{a.split}: the clip ids of the crops and of the clips differ")
        ids = sorted(tokens)
        feats = TR.clips_to_features([TR.gt_motion(gt[c]) for c in ids], hb)
        pairs += [(tokens[c], f) for c, f in zip(ids, feats)]
        gt_feats += feats
    return pairs, gt_feats


def main(argv: list[str] | None = None) -> Path:
    """Extract tokens, train the VAE, then the denoiser, per the command line; returns ``--out``."""
    a = build_parser().parse_args(argv)
    if a.vae and a.latent_layout is not None:
        raise ValueError(
            "--latent-layout shapes a VAE trained here; --vae reuses a trained one (its own layout)"
        )
    joined = dist.current().active  # a caller's process group is left to the caller
    state = dist.init_from_env(a.device)
    device = a.device  # a bare "cuda" is this process's GPU (init_from_env set it); resumable configs match
    try:
        hb = HybrIKBody.from_smpl(load_body_model())
        pairs, gt_feats = token_pairs(a, hb, device)
        motion = TR.clips_to_features(TR.procedural_motion(a.motion_clips, a.motion_frames, seed=a.seed), hb)
        loop = dict(batch_size=a.batch, lr=a.lr, seed=a.seed, device=device, precision=a.precision,
                    ckpt_every=a.ckpt_every)  # fmt: skip
        out = Path(a.out)
        if a.vae:  # stage 1 done already: reuse that VAE (copied to <out>/vae, so <out> is a whole decoder)
            vae, stats, _ = TR.load_vae(a.vae, device)
            if state.is_main and Path(a.vae).resolve() != (out / "vae").resolve():
                (out / "vae").mkdir(parents=True, exist_ok=True)
                for f in (TR.WEIGHTS_FILE, TR.CONFIG_FILE, TR.HISTORY_FILE):
                    if (Path(a.vae) / f).exists():
                        shutil.copyfile(Path(a.vae) / f, out / "vae" / f)
        else:
            vae_over = {} if a.latent_layout is None else {"latent_layout": a.latent_layout}
            vae_cfg = TR.VAETrainConfig(preset=a.preset, steps=a.vae_steps, overrides=vae_over, **loop)
            vae, stats, _ = TR.train_vae(
                motion + gt_feats, hb, vae_cfg,
                out / "vae", world_frame=[True] * len(motion) + [False] * len(gt_feats),
                resume=not a.restart, progress=state.is_main,
            )  # fmt: skip
        condition = sha256_file(Path(a.checkpoint) / "model.safetensors")[:8]
        den_over = {} if a.dropout is None else {"dropout": a.dropout}
        pose_dims = HEAD_JOINT_DIMS if a.cond_head_joints else 0  # the head's pose after its token
        if pose_dims:
            den_over["cond_pose_dims"] = pose_dims
        pairs = [
            (head_condition(hb, stats, h["tokens"], h["rotmat"], h["betas"], pose_dims), f) for h, f in pairs
        ]
        if a.cond_pool is not None:
            den_over["cond_pool"] = a.cond_pool == "on"
        dcfg = TR.DenoiserTrainConfig(
            preset=a.preset, steps=a.denoiser_steps, p_terminal=a.p_terminal, condition=condition,
            cond_noise=a.cond_noise, overrides=den_over, **loop,
        )  # fmt: skip
        TR.train_denoiser(
            pairs, vae, stats, dcfg, out / "denoiser", resume=not a.restart, progress=state.is_main
        )
        if state.is_main:
            args = argv if argv is not None else sys.argv[1:]
            command = "python -m fasthmr_lib.train_decoder " + shlex.join(args)
            run = {"command": command, "clips": len(pairs), "frames": int(sum(len(f) for f in gt_feats))}
            write_json(out / "train_run.json", manifest(vars(a), seed=a.seed, **run))
    finally:
        if not joined:
            dist.shutdown()
    return out


if __name__ == "__main__":
    main()
