"""Build the embedded world: ``python -m data_prep.build_world --profile <name> [--seed N]`` (the names:
:data:`PROFILES`, ``--help`` lists them).

Writes ``<data>/world/<profile>/{train,calib,test}/<clip_id>.npz`` (the record format of
:mod:`fasthmr_lib.data.records`) and, last and atomically, ``meta.json`` -- its presence means complete.

Idempotent: when ``meta.json`` records the same build parameters (profile, seed, clip counts, frames,
render config, body-model hash, format version) nothing is done. When they differ the world is rebuilt.
An interrupted build resumes: ``build_params.json`` (written first) says which parameters the clip files
on disk were made with, and readable clips of the same parameters are kept.

Clips are rendered by a pool of worker processes (2 by default, one torch thread each); clip ``i`` is a
pure function of (seed, i), so the result does not depend on the number of workers or their order.
Splits are by clip, fixed by the seed and recorded in ``meta.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fasthmr_lib import io as fio
from fasthmr_lib.data import motion as M
from fasthmr_lib.data.records import SPLITS, load_clip, save_clip, world_root

from .render import RENDER_VERSION, RenderConfig

FORMAT_VERSION = 1

# front/back learnability proxies (issue 16; scripts/measure_front_back.py): 448 short clips (384 train,
# 64 test: many people and facing directions), rendered with today's subtle front/back cues of the clothes
# and hair and with strong ones (RenderConfig.front_cues); one spec, so both profiles render the same
# scenes; ~6 min each
_FRONT_BACK: dict[str, Any] = {
    "n_clips": {"train": 384, "calib": 0, "test": 64},
    "n_frames": 8,
    "frame_stride": 12,
    "seed_offset": 3_000_000,
}

PROFILES: dict[str, dict[str, Any]] = {
    # CI: seconds; enough frames for every notebook to run end to end
    "tiny": {"n_clips": {"train": 4, "calib": 2, "test": 2}, "n_frames": 24},
    # the embedded workbook: ~3k frames, <= 5 min on 2 cores
    "default": {"n_clips": {"train": 32, "calib": 6, "test": 10}, "n_frames": 64},
    # training data for the shipped baselines (built only when retraining, ~8 min): many short clips
    # (people, motions, cameras) so a from-scratch ViT generalises; its clip seeds come from a stream
    # disjoint from the other profiles' (``seed_offset``), so no test person or motion is trained on
    "train": {"n_clips": {"train": 192, "calib": 0, "test": 0}, "n_frames": 48, "seed_offset": 1_000_000},
    # the same, 10x wider: 2,048 clips of 8 frames, each frame every 12th of a 3.2 s motion (a whole squat
    # or turn), so 10x the people, cameras and facing directions per rendered frame (~18 min); see the
    # README's "Known limitation" for what training on it gave
    "train_wide": {
        "n_clips": {"train": 2048, "calib": 0, "test": 0},
        "n_frames": 8,
        "frame_stride": 12,
        "seed_offset": 1_000_000,
    },
    # training motion for the diffusion decoder (built only when retraining it): whole 64-frame windows
    # (the small decoder's F) of 160 more people, motions and cameras, 5x the default world's 32 training
    # clips; its own seed stream, disjoint from every other profile's
    "train_motion": {
        "n_clips": {"train": 160, "calib": 0, "test": 0},
        "n_frames": 64,
        "seed_offset": 2_000_000,
    },
    # twice as much again (320 clips, ~15 min), for a decoder that would otherwise memorise its 192 clips:
    # train on ``--world default train_motion train_motion_more``
    "train_motion_more": {
        "n_clips": {"train": 320, "calib": 0, "test": 0},
        "n_frames": 64,
        "seed_offset": 4_000_000,
    },
    "front_back_subtle": _FRONT_BACK,
    "front_back_strong": {**_FRONT_BACK, "render": {"front_cues": "strong"}},
}


def clip_specs(
    n_clips: dict[str, int], n_frames: int, seed: int, frame_stride: int = 1
) -> list[dict[str, Any]]:
    """The clips of a world: kinds cycle through :data:`motion.KINDS`; clips are assigned to splits by a
    seeded permutation; clip i's render seed is ``SeedSequence([seed, i])``; every clip is rendered with
    ``frame_stride`` (see :func:`render.render_clip`)."""
    total = sum(n_clips[s] for s in SPLITS)
    order = np.random.default_rng(np.random.SeedSequence([seed, 991])).permutation(total)
    split_of = np.empty(total, object)
    start = 0
    for s in SPLITS:
        split_of[order[start : start + n_clips[s]]] = s
        start += n_clips[s]
    specs = []
    for i in range(total):
        kind = M.KINDS[i % len(M.KINDS)]
        specs.append(
            {
                "index": i,
                "kind": kind,
                "split": str(split_of[i]),
                "clip_id": f"{split_of[i]}_{i:03d}_{kind}",
                "seed": int(np.random.SeedSequence([seed, i]).generate_state(1)[0]),
                "n_frames": int(n_frames),
                "frame_stride": int(frame_stride),
            }
        )
    return specs


# --------------------------------------------------------------------------------- worker process

_WORKER: dict[str, Any] = {}


def _init_worker(smpl_dir: str | None, cfg: dict) -> None:
    import torch

    torch.set_num_threads(1)
    from fasthmr_lib.body.smpl import load_body_model

    from .render import _Body

    _WORKER["body"] = _Body(load_body_model(smpl_dir))
    _WORKER["cfg"] = RenderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})


def _render_one(job: tuple[dict, str]) -> dict[str, Any]:
    from .render import render_clip

    spec, out = job
    t0 = time.perf_counter()
    arrays = render_clip(
        _WORKER["body"], spec["kind"], spec["n_frames"], spec["seed"], _WORKER["cfg"],
        clip_id=spec["clip_id"], split=spec["split"], frame_stride=spec["frame_stride"],
    )  # fmt: skip
    save_clip(out, arrays)
    return {
        "clip_id": spec["clip_id"],
        "seconds": time.perf_counter() - t0,
        "bytes": Path(out).stat().st_size,
        "occlusion_mean": float(arrays["occlusion"].mean()),
        "n_distractors": int(arrays["n_distractors"]),
        "kind": str(arrays["kind"]),
    }


# ------------------------------------------------------------------------------------------ build


def body_model_info(smpl_dir: str | os.PathLike | None = None, build_embedded: bool = True) -> dict[str, str]:
    """Folder and sha256 of the body model the world is rendered with; builds the embedded model when no
    SMPL folder is configured and it is missing."""
    from fasthmr_lib.body.smpl import BodyModelNotFound, _find_model_file, resolve_smpl_dir
    from fasthmr_lib.io import sha256_file

    try:
        folder = resolve_smpl_dir(smpl_dir)
    except BodyModelNotFound:
        from fasthmr_lib import paths

        if smpl_dir is not None or paths.smpl_dir() is not None or not build_embedded:
            raise
        from .build_body_model import build_body_model

        build_body_model()
        folder = resolve_smpl_dir(None)
    f = _find_model_file(folder, "neutral")
    return {"dir": str(folder), "file": f.name, "sha256": sha256_file(f)}


def _build_params(profile: str, seed: int, cfg: RenderConfig, body: dict, spec: dict) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "render_version": RENDER_VERSION,
        "profile": profile,
        "seed": int(seed),
        "n_clips": dict(spec["n_clips"]),
        "n_frames": int(spec["n_frames"]),
        "seed_offset": int(spec.get("seed_offset", 0)),
        # recorded only when strided: the build parameters (and data versions) of plain worlds are unchanged
        **({"frame_stride": int(spec["frame_stride"])} if spec.get("frame_stride", 1) != 1 else {}),
        "render": json.loads(json.dumps(cfg.to_dict())),
        "body_model_sha256": body["sha256"],
    }


def _clip_ok(path: Path) -> bool:
    try:
        load_clip(path, keys=("boxes",))
        return True
    except Exception:
        return False


def build_world(
    profile: str = "default",
    seed: int = 0,
    *,
    root: str | os.PathLike | None = None,
    smpl_dir: str | os.PathLike | None = None,
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
    cfg: RenderConfig | None = None,
    n_clips: dict[str, int] | None = None,
    n_frames: int | None = None,
    frame_stride: int | None = None,
    max_seconds: float | None = None,
) -> Path:
    """Build (or verify) the world of ``profile`` at ``root`` (default ``world_root(profile)``).

    ``n_clips`` / ``n_frames`` / ``frame_stride`` / ``cfg`` override the profile's values (they become part of
    the build parameters). Returns the root. ``workers`` <= 1 renders in this process.

    ``max_seconds``: time-box the rendering (a GPU lease's budget, scripts/gpu_long_run.py): once it has
    passed, the workers are stopped and the world is written with the clips finished so far -- its
    ``meta.json`` then records those clip counts (``params.n_clips``) and the full ones
    (``params.time_boxed``), so it has its own data version and a later build without the limit resumes
    it to the full profile."""
    if profile not in PROFILES and (n_clips is None or n_frames is None):
        raise ValueError(
            f"profile must be one of {sorted(PROFILES)} (or give n_clips and n_frames), got {profile!r}"
        )
    spec = dict(PROFILES.get(profile, {}))
    if n_clips is not None:
        spec["n_clips"] = {s: int(n_clips.get(s, 0)) for s in SPLITS}
    if n_frames is not None:
        spec["n_frames"] = int(n_frames)
    if frame_stride is not None:
        spec["frame_stride"] = int(frame_stride)
    stride = int(spec.get("frame_stride", 1))
    if stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {stride!r}")
    cfg = cfg or RenderConfig(**spec.get("render", {}))
    root = Path(root) if root is not None else world_root(profile)
    body = body_model_info(smpl_dir)
    params = _build_params(profile, seed, cfg, body, spec)
    meta_path = root / "meta.json"
    if meta_path.exists() and not force:
        try:
            if fio.read_json(meta_path).get("params") == params:
                if progress:
                    print(f"world {root} is up to date ({meta_path.name} matches the build parameters)")
                return root
        except ValueError:
            pass
    # a rebuild starts by removing meta.json (the world is incomplete from here on)
    if meta_path.exists():
        meta_path.unlink()
    bp_path = root / "build_params.json"
    same = bp_path.exists() and not force and fio.read_json(bp_path) == params
    specs = clip_specs(spec["n_clips"], spec["n_frames"], seed + params["seed_offset"], frame_stride=stride)
    wanted = {(root / s["split"] / f"{s['clip_id']}.npz") for s in specs}
    for s in SPLITS:  # stale files of other parameters
        for p in (root / s).glob("*.npz") if (root / s).is_dir() else []:
            if not same or p not in wanted:
                p.unlink()
    fio.write_json(bp_path, params)
    jobs = [(s, str(root / s["split"] / f"{s['clip_id']}.npz")) for s in specs]
    todo = [j for j in jobs if not (Path(j[1]).exists() and _clip_ok(Path(j[1])))]
    t0 = time.perf_counter()
    stats: list[dict[str, Any]] = []
    body_dir = None if smpl_dir is None else str(smpl_dir)
    bar = tqdm(total=len(todo), desc=f"rendering world '{profile}'", unit="clip", disable=not progress)
    timed_out = False
    if workers <= 1 or len(todo) <= 1:
        _init_worker(body_dir, cfg.to_dict())
        for j in todo:
            stats.append(_render_one(j))
            bar.update()
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                timed_out = len(stats) < len(todo)
                break
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(
            min(workers, len(todo)), initializer=_init_worker, initargs=(body_dir, cfg.to_dict())
        ) as pool:
            for r in pool.imap_unordered(_render_one, todo):
                stats.append(r)
                bar.update()
                if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                    timed_out = len(stats) < len(todo)
                    pool.terminate()  # a clip file is written atomically: none is left half written
                    break
    bar.close()
    seconds = time.perf_counter() - t0
    if timed_out:  # the world of the clips finished in time (a pool may finish some after the last report)
        done = {j[1] for j in jobs if Path(j[1]).exists() and _clip_ok(Path(j[1]))}
        specs = [s for s, j in zip(specs, jobs, strict=True) if j[1] in done]
        jobs = [j for j in jobs if j[1] in done]
        full = params["n_clips"]
        params = {
            **params,
            "n_clips": {s: sum(sp["split"] == s for sp in specs) for s in SPLITS},
            "time_boxed": {"max_seconds": float(max_seconds or 0), "n_clips": full},
        }
    splits = {s: [sp["clip_id"] for sp in specs if sp["split"] == s] for s in SPLITS}
    frames = {s: spec["n_frames"] * len(v) for s, v in splits.items()}
    size = sum(Path(j[1]).stat().st_size for j in jobs)
    meta = {
        "profile": profile,
        "seed": int(seed),
        "params": params,
        "splits": splits,
        "frames": frames,
        "clips": {
            sp["clip_id"]: {"kind": sp["kind"], "split": sp["split"], "seed": sp["seed"]} for sp in specs
        },
        "image_size": [cfg.image_size, cfg.image_size],
        "fps": M.FPS / stride,
        "body_model": body,
        "generation": {
            "seconds": round(seconds, 2),
            "clips_rendered": len(stats),
            "workers": int(workers),
            "render_seconds_per_frame": round(
                sum(r["seconds"] for r in stats) / max(1, len(stats) * spec["n_frames"]), 4
            ),
        },
        "bytes": int(size),
        **{
            k: v
            for k, v in fio.manifest(params, seed).items()
            if k in ("created", "git", "versions", "machine")
        },
    }
    fio.write_json(meta_path, meta)  # last: the world is complete
    if progress:
        print(
            f"world {root}: {sum(frames.values())} frames in {sum(len(v) for v in splits.values())} clips "
            f"({frames}), {size / 1e6:.1f} MB, rendered {len(todo)} clips in {seconds:.1f} s"
        )
    return root


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=None, help="output folder (default: <data>/world/<profile>)")
    ap.add_argument(
        "--smpl-dir", type=Path, default=None, help="SMPL folder (default: $FASTHMR_SMPL_DIR or embedded)"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument(
        "--max-seconds", type=float, default=None,
        help="stop rendering after this many seconds and write the world of the clips finished",
    )  # fmt: skip
    a = ap.parse_args(argv)
    build_world(
        a.profile, a.seed, root=a.root, smpl_dir=a.smpl_dir, workers=a.workers, force=a.force,
        max_seconds=a.max_seconds,
    )  # fmt: skip


if __name__ == "__main__":
    main()
