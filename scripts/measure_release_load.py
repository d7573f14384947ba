"""Peak memory of loading a 4D-Humans HMR 2.0 release checkpoint (issue: <= 1.5x the file size).

Makes a file in the release layout at full size (the ``hmr2`` preset's ViT-H + transformer head with random
weights, a Lightning dict with ``state_dict`` and a config object in ``hyper_parameters``, extra
``discriminator.*`` tensors), then loads it with ``load_4dhumans`` in a fresh process and reports that
process's peak resident memory next to the file size.

    python scripts/measure_release_load.py [--dir /tmp/release_ckpt]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import torch


def make_release_file(out_dir: Path) -> Path:
    from fasthmr_lib.body.smpl import load_body_model
    from fasthmr_lib.config import get_preset
    from fasthmr_lib.models.hmr import HMR

    ckpt = out_dir / "logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt"
    if ckpt.is_file():
        return ckpt
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    model = HMR(get_preset("hmr2"), smpl=load_body_model())
    sd = {("smpl_head." + k[5:] if k.startswith("head.") else k): v for k, v in model.state_dict().items()}
    sd["discriminator.D_conv1.weight"] = torch.randn(32, 9, 1, 1)
    yacs, sub = types.ModuleType("yacs"), types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    sub.CfgNode, yacs.config = CfgNode, sub
    sys.modules.update({"yacs": yacs, "yacs.config": sub})
    torch.save({"state_dict": sd, "hyper_parameters": {"cfg": CfgNode(MODEL={"IMAGE_SIZE": 256})}}, ckpt)
    del sys.modules["yacs"], sys.modules["yacs.config"]
    return ckpt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/fasthmr_release_ckpt"))
    args = ap.parse_args()
    ckpt = make_release_file(args.dir)
    code = (
        "import resource, torch; from fasthmr_lib.models.checkpoints import load_4dhumans; "
        f"m = load_4dhumans({str(ckpt)!r}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    imports_only = (
        "import resource, torch, fasthmr_lib.models.checkpoints; " + code.split("m = ")[-1].split("; ")[-1]
    )
    base = subprocess.run([sys.executable, "-c", imports_only], capture_output=True, text=True, check=True)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    size = ckpt.stat().st_size
    peak = int(out.stdout.split()[-1]) * 1024
    imports = int(base.stdout.split()[-1]) * 1024
    print(
        f"file {size / 2**30:.2f} GiB; peak RSS of the loading process {peak / 2**30:.2f} GiB "
        f"({peak / size:.2f}x the file; the interpreter and imports alone: {imports / 2**30:.2f} GiB)"
    )


if __name__ == "__main__":
    main()
