"""Training command of the diffusion decoder (notebook 04's training cells as one command)::

    python -m fasthmr_lib.train_decoder --checkpoint checkpoints/small --world default --preset small \\
        --vae-steps 3000 --denoiser-steps 3000 --batch 32 --lr 3e-4 --out results/checkpoints/diffusion_small

1. head tokens of the frozen baseline (``--checkpoint``) over ``--split`` of ``--world``
   (:func:`~fasthmr_lib.diffusion.training.extract_head_tokens`), paired with the clips' GT motion;
2. stage 1, the motion VAE on procedural motion + that split's GT motion (``<out>/vae``);
3. stage 2, the latent denoiser on (tokens, GT) clips (``<out>/denoiser``).

Both stages resume from ``<out>`` unless ``--restart``. The same command runs data-parallel under
``torchrun --nproc_per_node N -m fasthmr_lib.train_decoder ...`` (PyTorch DDP, :mod:`fasthmr_lib.dist`):
the token extraction is sharded over the processes, ``--batch`` is the global batch of both stages
(each process trains on batch / N windows) and rank 0 writes the checkpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import dist
from .body.hybrik import HybrIKBody
from .body.smpl import load_body_model
from .diffusion import training as TR


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fasthmr_lib.train_decoder", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--checkpoint", required=True, help="frozen baseline checkpoint folder (e.g. checkpoints/small)"
    )
    p.add_argument("--world", default="default", help="world profile under data/world/")
    p.add_argument("--split", default="train", help="split whose clips give tokens + GT motion")
    p.add_argument("--preset", default="small", help="VAE / denoiser preset (tiny, small, paper)")
    p.add_argument("--motion-clips", type=int, default=256, help="procedural motion clips for the VAE")
    p.add_argument("--motion-frames", type=int, default=128)
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--denoiser-steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32, help="global batch (windows per step, all processes)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--p-terminal", type=float, default=0.25, help="extra probability of t = T (stage 2)")
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
    """(tokens (T,C), GT features (T,133)) per clip of ``a.split`` (sorted by clip id), and the GT features
    per clip; the extraction is sharded over the DDP ranks."""
    from .data.datasets import CropDataset, world_root
    from .eval.pipeline import clip_ground_truth
    from .models.checkpoints import load_checkpoint

    root = world_root(a.world)
    model = load_checkpoint(a.checkpoint, smpl=load_body_model()).to(device).eval()
    crops = CropDataset(root, a.split)
    tokens = TR.extract_head_tokens(
        model, crops, batch_size=a.extract_batch, device=device, use_mask=not a.no_mask, keep=()
    )
    gt = clip_ground_truth(root, a.split)
    if set(gt) != set(tokens):
        raise ValueError(f"{root}/{a.split}: the clip ids of the crops and of the clips differ")
    feats = {
        c: TR.clips_to_features(
            [{"global_orient": g["pose"][:, :3], "body_pose": g["pose"][:, 3:], "betas": g["betas"]}], hb
        )[0]
        for c, g in gt.items()
    }
    return [(tokens[c]["tokens"], feats[c]) for c in sorted(tokens)], [feats[c] for c in sorted(feats)]


def main(argv: list[str] | None = None) -> Path:
    """Extract tokens, train the VAE, then the denoiser, per the command line; returns ``--out``."""
    a = build_parser().parse_args(argv)
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
        vae, stats, _ = TR.train_vae(
            motion + gt_feats, hb, TR.VAETrainConfig(preset=a.preset, steps=a.vae_steps, **loop), out / "vae",
            world_frame=[True] * len(motion) + [False] * len(gt_feats), resume=not a.restart,
            progress=state.is_main,
        )  # fmt: skip
        dcfg = TR.DenoiserTrainConfig(
            preset=a.preset, steps=a.denoiser_steps, p_terminal=a.p_terminal, **loop
        )
        TR.train_denoiser(
            pairs, vae, stats, dcfg, out / "denoiser", resume=not a.restart, progress=state.is_main
        )
    finally:
        if not joined:
            dist.shutdown()
    return out


if __name__ == "__main__":
    main()
