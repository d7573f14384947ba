"""One prepared long training run for a short GPU lease (issue 16): everything inside a wall-clock budget.

    python scripts/gpu_long_run.py --budget 480 --export $OUT -- <python -m fasthmr_lib.train flags>

1. renders the training world (``--world``, default ``train_wide``) with every CPU core, time-boxed to
   ``--render-frac`` of the budget (``data_prep.build_world``'s ``max_seconds``: the world of the clips
   finished in time, with its own data version);
2. caches its crops in this process (a first version read them with 14 loader processes and ran out of
   file descriptors on the H200 machine: every item's tensors travel as file descriptors);
3. measures the real step rate (loader, dense head and all): 20 steps, then resumed to 40 and to 80, the
   last two timed apart (the first call carries one-time CUDA costs);
4. trains the number of steps that fits what is left (the recipe's cosine schedule over exactly those);
5. exports the shipped checkpoint (fp16 safetensors, cut into <= 15 MiB pieces: the lease brings back
   files of at most 16 MiB), its ``config.json``, ``train_run.json``, ``loss_history.csv`` and
   ``gpu_run.json`` (the budget, clips rendered, step rate, steps) to ``--export``.

A watchdog exports the last periodic training state if the budget runs out anyway. Join the pieces with
``cat model.safetensors.part* > model.safetensors``. The flags after ``--`` are ``python -m
fasthmr_lib.train``'s (``--steps`` is set here; ``--out`` defaults to ``results/checkpoints/<preset>_gpu``);
nothing is evaluated here (the default world's test split is evaluated where the checkpoint is brought back).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

T0 = time.perf_counter()
PIECE = 15 * 2**20


def log(msg: str) -> None:
    print(f"[gpu_long_run {time.perf_counter() - T0:7.1f} s] {msg}", flush=True)


def export(run_dir: Path, dest: Path, info: dict) -> None:
    """Copy the run's shipped files to ``dest``, the weights cut into pieces of at most 15 MiB."""
    dest.mkdir(parents=True, exist_ok=True)
    w = run_dir / "model.safetensors"
    if w.exists():
        data = w.read_bytes()
        for i in range(0, len(data), PIECE):
            (dest / f"model.safetensors.part{i // PIECE}").write_bytes(data[i : i + PIECE])
    for name in ("config.json", "train_run.json", "loss_history.csv"):
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, dest / name)
    (dest / "gpu_run.json").write_text(json.dumps(info, indent=1))


def export_state(state_path: Path, cfg, run_dir: Path, dest: Path, info: dict, version: str) -> None:
    """The watchdog's export: the model weights of the last periodic training state, as a shipped
    checkpoint (``save_final``'s files; ``gpu_run.json`` records the step it stopped at)."""
    import torch

    from fasthmr_lib.models.train import model_for, save_final

    st = torch.load(state_path, weights_only=False, map_location="cpu")
    model = model_for(cfg)
    model.load_state_dict(st["model"])
    save_final(model, run_dir, cfg, data_version=version, train_wall_s=float(st.get("wall_s", 0.0)))
    export(run_dir, dest, {**info, "watchdog_step": int(st["step"])})


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    ours, train_flags = argv[:cut], argv[cut + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, required=True, help="wall-clock seconds for everything")
    ap.add_argument("--render-frac", type=float, default=0.3, help="share of the budget for rendering")
    ap.add_argument("--world", default="train_wide", help="build_world profile to render and train on")
    ap.add_argument("--render-workers", type=int, default=os.cpu_count() or 2, help="render processes")
    ap.add_argument(
        "--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="data-loader processes"
    )
    ap.add_argument("--reserve", type=float, default=45.0, help="seconds kept for saving and export")
    ap.add_argument("--export", type=Path, required=True, help="folder the shipped files are copied to")
    a = ap.parse_args(ours)
    deadline = T0 + a.budget

    import torch

    from data_prep.build_world import build_world
    from fasthmr_lib import train as cli
    from fasthmr_lib.data.crop_cache import build_crop_cache, world_data_version
    from fasthmr_lib.data.datasets import CropDataset
    from fasthmr_lib.models.train import STATE_FILE, train

    torch.multiprocessing.set_sharing_strategy("file_system")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    info: dict = {"budget_s": a.budget, "world": a.world, "workers": a.workers, "train_flags": train_flags}
    info["argv"] = argv
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["torch"] = torch.__version__
    log(f"torch {torch.__version__}, device {info.get('gpu', 'cpu')}, {a.workers} workers")

    root = build_world(a.world, workers=a.render_workers, max_seconds=a.render_frac * a.budget)
    meta = json.loads((root / "meta.json").read_text())
    info["clips"] = meta["params"]["n_clips"]
    info["clip_ids"] = meta["splits"]  # which clips the time box rendered (the world's data)
    info["render_s"] = meta["generation"]["seconds"]
    log(f"world {root}: {meta['frames']} frames")

    flags = [*train_flags, "--world", a.world, "--workers", str(a.workers), "--eval-split", ""]
    if "--out" not in flags:
        preset = cli.parse_args([*flags, "--out", "-"])[0].preset
        flags += ["--out", f"results/checkpoints/{preset}_gpu"]
    cfg, ns = cli.parse_args(flags)
    cache = build_crop_cache(CropDataset(root, cfg.split, mask_kind=cfg.mask_kind))
    version = world_data_version(root)
    log(f"{len(cache)} crops cached")

    # the real step rate: A trains 20 steps (first-call costs: CUDA context, kernels), then B resumes to 40
    # and C to 80: C - B is 20 steps at the steady rate, the set-up of a resumed call cancelling out
    probe = Path(ns.out + "_probe")
    shutil.rmtree(probe, ignore_errors=True)
    pcfg = cli.parse_args([*flags, "--steps", "100000", "--save-every", "100000"])[0]
    times = []
    for stop in (20, 40, 80):
        t = time.perf_counter()
        train(pcfg, probe, dataset=cache, stop_at=stop, resume=stop > 20, progress=False, final_save=False)
        times.append(time.perf_counter() - t)
    s_step = max((times[2] - times[1]) / 20, times[2] / 40 / 4)
    left = deadline - time.perf_counter() - a.reserve - times[1]
    steps = max(1, int(left / (s_step * 1.1)))
    info.update(probe_s=[round(x, 2) for x in times], s_per_step=round(s_step, 4), steps=steps)
    log(f"{s_step * 1e3:.1f} ms/step (probe {times} s): {steps} steps fit in {left:.0f} s")
    shutil.rmtree(probe, ignore_errors=True)

    cfg, ns = cli.parse_args([*flags, "--steps", str(steps)])
    run_dir = Path(ns.out)
    shutil.rmtree(run_dir, ignore_errors=True)

    def watchdog() -> None:  # the budget ran out anyway: export the last periodic state and stop
        while time.perf_counter() < deadline - 20:
            time.sleep(1)
        log("budget exhausted: exporting the last periodic training state")
        if (run_dir / STATE_FILE).exists():
            export_state(run_dir / STATE_FILE, cfg, run_dir, a.export, info, version)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    res = train(cfg, run_dir, dataset=cache, final_save=False, data_version=version)
    cli.save_final(res.model, run_dir, cfg, data_version=version, train_wall_s=res.wall_s)
    info["train_wall_s"] = round(res.wall_s, 1)
    info["total_s"] = round(time.perf_counter() - T0, 1)
    export(run_dir, a.export, info)
    log(f"done: {steps} steps in {res.wall_s:.0f} s; exported to {a.export}")


if __name__ == "__main__":
    main()
