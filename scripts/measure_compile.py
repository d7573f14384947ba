"""torch.compile (inductor, CPU) as a CPU lever: eager vs compiled, timed side by side in one run.

Usage: ``python scripts/measure_compile.py PRESET BATCH [CONFIG]`` (CONFIG: a bench configuration name,
default ``eclm_masktome``; int8 configurations are quantised first, as the bench does). Prints the compile
time, the compiled model's deviation from eager (``eval.profile.output_deviation``) and both throughputs.
Result on ``small`` / batch 8: ``results/diagnostics/bench_cpu/compile_small_eclm_masktome.log``.
"""

import sys
import time

import torch

from fasthmr_lib import bench
from fasthmr_lib.eval import profile as P
from fasthmr_lib.models.quantize import quantize_int8

preset, batch = sys.argv[1], int(sys.argv[2])
cfg = bench.named_config(sys.argv[3] if len(sys.argv) > 3 else "eclm_masktome", preset)
m = bench.build(P.build_bench_model(preset), cfg)
if cfg.int8:
    m = quantize_int8(m, layers=cfg.int8_layers)
img = torch.randn(batch, 3, 256, 256)
kw = (
    {"person_mask": P.synthetic_person_mask(batch)}
    if cfg.mask_tome is not None and cfg.mask_tome.use_mask
    else {}
)
with torch.no_grad():
    ref = m(img, **kw)
    t = time.time()
    cm = torch.compile(m, backend="inductor", dynamic=False)
    out = cm(img, **kw)
    print(
        f"compile + first call {time.time() - t:.0f} s; deviation {P.output_deviation(ref, out)}", flush=True
    )
    calls = [("eager", lambda: m(img, **kw)), ("compiled", lambda: cm(img, **kw))]
    res = P.time_side_by_side(calls, batch, warmup=1, repeats=5)
for r in res:
    print(f"{r.name} {r.images_per_s:.3f} img/s  median {1000 * r.median_s:.0f} ms  iqr {1000 * r.iqr_s:.0f}")
print("speedup compiled/eager", res[1].images_per_s / res[0].images_per_s)
