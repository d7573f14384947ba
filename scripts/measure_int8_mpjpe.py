"""MPJPE of the int8 layer sets and of HMR 2.0's explicit attention on the shipped ``small`` + decoder
(ECLM tau = 0.1 windows + Mask-ToMe, default test split), per-frame head and decoder.

Usage: ``python scripts/measure_int8_mpjpe.py [threads] [out.csv]``. Result committed as
``results/diagnostics/bench_cpu/small_int8_layer_sets_mpjpe.csv`` (see the README there); notebook 05's
``05_cpu_levers_*`` table reports the same differences.
"""

import sys
import time
from pathlib import Path

import pandas as pd
import torch

from fasthmr_lib import paths
from fasthmr_lib.body.smpl import load_body_model
from fasthmr_lib.data.datasets import CropDataset, world_root
from fasthmr_lib.diffusion.decoder import DiffusionDecoder
from fasthmr_lib.eval import pipeline as PL
from fasthmr_lib.fasthmr import FastHMR
from fasthmr_lib.merging import eclm
from fasthmr_lib.merging.mask_tome import MaskToMeConfig
from fasthmr_lib.models.checkpoints import load_checkpoint
from fasthmr_lib.models.vit import set_fused_attention

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("int8_mpjpe.csv")
body = load_body_model()
base = load_checkpoint(paths.checkpoints_dir() / "small", smpl=body).eval()
windows = eclm.load_windows(
    paths.REPO_ROOT / "results/tables/02_eclm/02_small_paper_tau0.1_windows.json"
).windows
dd = paths.checkpoints_dir() / "diffusion_small"
decoder = DiffusionDecoder.from_checkpoints(dd / "vae", dd / "denoiser", body)
mt = MaskToMeConfig()
root = world_root("default")
test, gt = CropDataset(root, "test"), PL.clip_ground_truth(root, "test")
variants = {
    "fp32": FastHMR.from_parts(base, windows, mask_tome=mt, decoder=decoder),
    "int8_all": FastHMR.from_parts(base, windows, mask_tome=mt, decoder=decoder, int8="all"),
    "int8_mlp": FastHMR.from_parts(base, windows, mask_tome=mt, decoder=decoder, int8="mlp"),
    "math_attn": set_fused_attention(FastHMR.from_parts(base, windows, mask_tome=mt, decoder=decoder), False),
}
rows = []
for k, m in variants.items():
    t = time.time()
    rows.append(PL.evaluate_clips(m, test, gt, protocol="3dpw14", batch_size=32, seed=0).assign(variant=k))
    print(k, f"{time.time() - t:.0f}s", flush=True)
summary = PL.summarize(pd.concat(rows, ignore_index=True))
print(summary.to_string())
summary.to_csv(out, index=False)
