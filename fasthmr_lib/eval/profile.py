"""Parameters, MACs and throughput of HMR-style models.

MAC counting lives in :mod:`fasthmr_lib.macs` (``count_macs``, re-exported here).

The timing harness runs several named configurations **interleaved** (A, B, C, A, B, C, ...) so
that drifts of a shared machine hit all of them alike, and reports median, inter-quartile range,
images/s and the ratio to the first configuration.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ModelConfig, get_preset
from ..macs import LINEAR_CONV_OPS, MacCount, count_macs  # noqa: F401 (re-exported)
from ..merging.state import TokenState
from ..models.camera import CropCamera
from ..models.hmr import HMR


class BackboneHead(HMR):
    """:class:`~fasthmr_lib.models.hmr.HMR` without the SMPL layer (the part Table 12 counts and the
    part whose speed token merging changes), timed per stage when asked.

    ``forward(img (B,3,256,256), person_mask=None, bbox_info=None, stage_times=None)`` -> the head's
    outputs (``rotmat``, ``pose6d``, ``betas``, ``cam``, ``cam_t``, ``head_token``) plus
    ``tokens_per_block`` (list[int], recorded also when merging is off)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg, with_body=False)

    def forward(
        self,
        img: Tensor,
        person_mask: Tensor | None = None,
        bbox_info: Tensor | None = None,
        stage_times: dict[str, list[float]] | None = None,
        camera: CropCamera | None = None,
    ) -> dict[str, Any]:
        """``stage_times`` (optional): seconds of the ``backbone`` stage (token state incl. mask pooling +
        ViT) and the ``head`` stage are appended to its lists (device synchronised at the boundaries)."""
        clock = _StageClock(img.device, stage_times)
        state = self.token_state(person_mask, img.shape[0]) or TokenState()
        tokens, state = self.forward_features(img, state=state)
        clock.mark("backbone")
        h = self.forward_head(tokens, state, bbox_info, camera)
        clock.mark("head")
        return self.outputs(h, state)


class _StageClock:
    """Appends the seconds since the previous mark to ``times[name]`` (no-op when ``times`` is None)."""

    def __init__(self, device: torch.device, times: dict[str, list[float]] | None):
        self.device, self.times = device, times
        if times is not None:
            _sync(device)
            self.t = time.perf_counter()

    def mark(self, name: str) -> None:
        if self.times is None:
            return
        _sync(self.device)
        now = time.perf_counter()
        self.times.setdefault(name, []).append(now - self.t)
        self.t = now


def build_bench_model(preset: str | ModelConfig, depth: int | None = None, seed: int = 0) -> BackboneHead:
    """Random-weight :class:`BackboneHead` for a preset; ``depth`` keeps the first ``depth`` blocks
    (a stand-in for an ECLM-merged depth when weights are random)."""
    cfg = get_preset(preset) if isinstance(preset, str) else preset
    torch.manual_seed(seed)
    model = BackboneHead(cfg)
    truncate_depth(model, depth)
    return model.eval()


def build_meta_model(preset: str | ModelConfig, depth: int | None = None) -> BackboneHead:
    """A :class:`BackboneHead` on the ``meta`` device (no memory, no init time) for counting
    parameters and MACs of the full-size presets. Built from a 1-block CPU model whose block is
    replicated ``depth`` times (blocks are identical in structure; drop-path is off in eval)."""
    import copy

    cfg = get_preset(preset) if isinstance(preset, str) else preset
    full = cfg.vit.depth
    depth = full if depth is None else depth
    if not 1 <= depth <= full:
        raise ValueError(f"depth must be in 1..{full}, got {depth}")
    small = cfg.replace(vit=dataclasses.replace(cfg.vit, depth=1, drop_path_rate=0.0))
    model = BackboneHead(small).to("meta")
    model.cfg = cfg
    blk = model.backbone.blocks[0]
    model.backbone.blocks = nn.ModuleList([copy.deepcopy(blk) for _ in range(depth)])
    return model.eval()


def shallow_clone(model: BackboneHead) -> BackboneHead:
    """A copy sharing every weight tensor but with its own block objects and block list, so that
    depth truncation or token-merge hooks on the clone leave ``model`` untouched."""
    import copy

    def _own(m: nn.Module) -> nn.Module:
        c = copy.copy(m)
        c._modules = dict(m._modules)
        c._parameters = dict(m._parameters)
        c._buffers = dict(m._buffers)
        return c

    new = _own(model)
    new.backbone = _own(model.backbone)
    new.backbone.blocks = nn.ModuleList([_own(b) for b in model.backbone.blocks])
    new.token_merging = None
    return new


def truncate_depth(model: nn.Module, depth: int | None) -> nn.Module:
    """Keep the first ``depth`` backbone blocks (in place). ``None`` keeps all."""
    if depth is None:
        return model
    blocks = model.backbone.blocks if hasattr(model, "backbone") else model.blocks
    if not 1 <= depth <= len(blocks):
        raise ValueError(f"depth must be in 1..{len(blocks)}, got {depth}")
    owner = model.backbone if hasattr(model, "backbone") else model
    owner.blocks = nn.ModuleList(list(blocks)[:depth])
    return model


def count_params(model: nn.Module, exclude: Sequence[str] = ("smpl", "discriminator")) -> dict[str, int]:
    """Parameters per top-level child plus ``total`` (children named in ``exclude`` are listed
    but left out of the total; SMPL holds only buffers anyway). Parameters registered directly on
    ``model`` go under ``other``."""
    out: dict[str, int] = {}
    for name, child in model.named_children():
        out[name] = sum(p.numel() for p in child.parameters())
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        out["other"] = own
    out["total"] = sum(v for k, v in out.items() if k not in exclude)
    return out


def output_deviation(ref: dict[str, Any], out: dict[str, Any]) -> dict[str, float]:
    """How far ``out`` is from ``ref`` (two per-frame model outputs on the same input): the relative
    RMS error of the head token (``head_token``: the decoder's input), the largest absolute difference of
    the joint rotation matrices (``rotmat`` entries, unitless) and of the weak-perspective camera
    (``cam``)."""
    tok_ref, tok = ref["head_token"].float(), out["head_token"].float()
    return {
        "head_token_rel_rms": float((tok - tok_ref).norm() / tok_ref.norm().clamp_min(1e-12)),
        "rotmat_max_abs": float((out["rotmat"].float() - ref["rotmat"].float()).abs().max()),
        "cam_max_abs": float((out["cam"].float() - ref["cam"].float()).abs().max()),
    }


def synthetic_person_mask(batch: int, size: int = 256, rx: float = 0.22, ry: float = 0.42) -> Tensor:
    """(B, size, size) float 0/1: a centred upright ellipse (semi-axes rx, ry as fractions of the
    crop side), a stand-in for a person mask when benchmarking Mask-ToMe."""
    yy, xx = torch.meshgrid(torch.linspace(-0.5, 0.5, size), torch.linspace(-0.5, 0.5, size), indexing="ij")
    m = ((xx / rx) ** 2 + (yy / ry) ** 2 <= 1.0).float()
    return m.expand(batch, size, size).clone()


# --------------------------------------------------------------------------------------------
# throughput


def _rss_peak_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def _rss_now_mb() -> float | None:
    """Current resident set size of this process (MB) from ``/proc/self/statm``; None where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``) so RSS growth reflects new memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class RSSPeakSampler:
    """Peak resident memory growth during a block (CPU), sampled by a background thread.

    ``with RSSPeakSampler() as s: ...`` then ``s.peak_delta_mb`` = max RSS seen while the block ran minus
    the RSS at entry (MB). PyTorch releases the GIL inside its kernels, so the thread keeps sampling while
    a forward runs; allocations shorter than ``interval_s`` can be missed, and memory the allocator reuses
    does not show (glibc's ``malloc_trim`` runs at entry to limit that): a lower bound. Where
    ``/proc/self/statm`` is missing it falls back to the growth of ``ru_maxrss`` (``kind`` says which)."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.kind = "cpu_rss_peak_minus_start_sampled" if _rss_now_mb() is not None else "cpu_peak_rss_growth"
        self.peak_delta_mb: float = 0.0

    def __enter__(self) -> RSSPeakSampler:
        import threading

        self._stop = threading.Event()
        gc.collect()
        _malloc_trim()
        if self.kind == "cpu_peak_rss_growth":
            self._start = _rss_peak_mb()
            return self
        self._start = self._peak = _rss_now_mb() or 0.0

        def run() -> None:
            while not self._stop.is_set():
                v = _rss_now_mb()
                if v is not None and v > self._peak:
                    self._peak = v
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.kind == "cpu_peak_rss_growth":
            self.peak_delta_mb = max(0.0, _rss_peak_mb() - self._start)
            return
        self._thread.join()
        v = _rss_now_mb()
        self._peak = max(self._peak, v or 0.0)
        self.peak_delta_mb = max(0.0, self._peak - self._start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class TimingResult:
    name: str
    batch: int
    times_s: list[float]
    peak_mem_mb: float | None
    mem_kind: str
    threads: int
    device: str

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def iqr_s(self) -> float:
        if len(self.times_s) < 2:
            return 0.0
        q = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return q[2] - q[0]

    @property
    def images_per_s(self) -> float:
        return self.batch / self.median_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "batch": self.batch,
            "latency_ms_median": 1000 * self.median_s,
            "latency_ms_iqr": 1000 * self.iqr_s,
            "images_per_s": self.images_per_s,
            "repeats": len(self.times_s),
            "peak_mem_mb": self.peak_mem_mb,
            "mem_kind": self.mem_kind,
            "threads": self.threads,
            "device": self.device,
        }


def time_side_by_side(
    configs: Sequence[tuple[str, Callable[[], Any]]],
    batch: int,
    *,
    warmup: int = 2,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[TimingResult]:
    """Time several zero-argument callables (each runs one forward of ``batch`` images) interleaved.

    Each config is warmed up ``warmup`` times and its peak memory measured then, **beyond what was
    allocated before** (weights excluded): CUDA ``max_memory_allocated`` minus ``memory_allocated``
    before the warm-up (``mem_kind="cuda_max_allocated"``), or on CPU the peak resident set size sampled
    every 2 ms during the warm-up minus the RSS at its start (:class:`RSSPeakSampler`,
    ``mem_kind="cpu_rss_peak_minus_start_sampled"``; a lower bound, since the allocator may reuse memory
    freed earlier). Then ``repeats`` rounds run every config once in turn."""
    if not configs:
        raise ValueError("time_side_by_side: no configurations given")
    device = torch.device(device)
    threads = torch.get_num_threads()
    mem: dict[str, float | None] = {}
    kind = "cuda_max_allocated"
    for name, fn in configs:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            with torch.no_grad():
                for _ in range(max(1, warmup)):
                    fn()
            _sync(device)
            mem[name] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        else:
            with RSSPeakSampler() as sampler, torch.no_grad():
                for _ in range(max(1, warmup)):
                    fn()
            mem[name] = sampler.peak_delta_mb
            kind = sampler.kind
    times: dict[str, list[float]] = {n: [] for n, _ in configs}
    rounds = range(repeats)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=f"timing batch {batch}", leave=False)
    with torch.no_grad():
        for _ in rounds:
            for name, fn in configs:
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - t0)
    return [TimingResult(n, batch, times[n], mem[n], kind, threads, str(device)) for n, _ in configs]


def format_comparison(results: Sequence[TimingResult]) -> str:
    """A text table of timing results with the throughput ratio to the first row ("speedup")."""
    if not results:
        return "(no results)"
    base = results[0].images_per_s
    lines = [f"{'config':<12} {'batch':>5} {'img/s':>9} {'lat ms':>9} {'IQR ms':>8} {'speedup':>8}"]
    for r in results:
        lines.append(
            f"{r.name:<12} {r.batch:>5} {r.images_per_s:>9.2f} {1000 * r.median_s:>9.1f} "
            f"{1000 * r.iqr_s:>8.1f} {r.images_per_s / base:>7.2f}x"
        )
    lines.append(f"(threads={results[0].threads}, device={results[0].device}, interleaved repeats)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# pipelines: harmonic combination of per-component throughputs, the optional segmenter


def harmonic_fps(fps: Sequence[float]) -> float:
    """Throughput of components that each process every frame one after another: 1 / Σ 1/fps_i.

    This is how the paper's baseline fps follow from its Table 6 components (docs/AMBIGUITIES.md, facts):
    CameraHMR 1/(1/1500 + 1/333.3 + 1/68.2) = 54.5 fps, HMR 2.0 1/(1/1500 + 1/68.2) = 65.2 fps."""
    vals = [float(f) for f in fps]
    if not vals or any(not f > 0 for f in vals):
        raise ValueError(f"harmonic_fps needs positive throughputs, got {vals}")
    return 1.0 / sum(1.0 / f for f in vals)


def combine_components(components: dict[str, float | None]) -> dict[str, Any]:
    """``{"fps": harmonic combination of the present components, "components": {name: fps},
    "missing": [names whose fps is None]}`` (``fps`` is None when nothing is present)."""
    present = {k: float(v) for k, v in components.items() if v is not None}
    return {
        "fps": harmonic_fps(list(present.values())) if present else None,
        "components": present,
        "missing": [k for k, v in components.items() if v is None],
    }


def segmenter_status(name: str = "yolo11n-seg") -> str:
    """Whether the optional segmenter can be benchmarked here (``ultralytics`` importable)."""
    import importlib.util

    if importlib.util.find_spec("ultralytics") is None:
        return (
            f"absent: {name} needs the optional 'ultralytics' package (AGPL, not installed); "
            "the paper reports 1000 fps (Table 6) / 1500 fps (Table 9) on an RTX 3090"
        )
    return f"{name} available (ultralytics importable)"


def build_segmenter(
    name: str = "yolo11n-seg", device: str | torch.device = "cpu"
) -> tuple[nn.Module | None, str]:
    """(network, description) of YOLO11n-seg built from its **model config** with random weights (nothing is
    downloaded), or (None, why absent). The network's raw forward on (B, 3, 640, 640) is what gets timed
    (no pre-processing, NMS or mask post-processing), when the optional ``ultralytics`` package is
    installed."""
    status = segmenter_status(name)
    if status.startswith("absent"):
        return None, status
    try:
        from ultralytics import YOLO

        net = YOLO(f"{name}.yaml").model  # architecture from the packaged yaml; random initialisation
        net = net.to(device).eval()
    except Exception as e:  # an optional extra: report, never fail the benchmark
        return None, f"absent: building {name} from its config failed ({type(e).__name__}: {e})"
    n = sum(p.numel() for p in net.parameters())
    return (
        net,
        f"{name} from its model config, random weights ({n / 1e6:.2f} M params), raw forward at 640x640",
    )


def op_profile(
    fn: Callable[[], Any], top: int = 15, device: str | torch.device = "cpu"
) -> list[dict[str, Any]]:
    """Where the time of one call goes: ``torch.profiler`` over ``fn()`` (after one untimed call), the ``top``
    operators by self time as dicts {op, calls, self_ms, total_ms, self_pct}."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(device).type == "cuda" else [])
    with torch.no_grad():
        fn()
        with profile(activities=acts) as prof:
            fn()
            _sync(torch.device(device))
    ev = prof.key_averages()
    key = "self_device_time_total" if torch.device(device).type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, key) for e in ev) or 1.0
    rows = sorted(ev, key=lambda e: getattr(e, key), reverse=True)[:top]
    return [
        {
            "op": e.key,
            "calls": e.count,
            "self_ms": getattr(e, key) / 1000.0,
            "total_ms": (e.device_time_total if key.startswith("self_device") else e.cpu_time_total) / 1000.0,
            "self_pct": 100.0 * getattr(e, key) / total,
        }  # fmt: skip
        for e in rows
    ]
