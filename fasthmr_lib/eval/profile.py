"""Parameters, MACs and throughput of HMR-style models.

MAC conventions (``torch.utils.flop_counter.FlopCounterMode``; 1 MAC = 2 FLOPs):

* ``linear_conv``: only ``aten.mm`` / ``aten.addmm`` / ``aten.convolution`` (the nn.Linear and
  nn.Conv2d layers). This is the convention that reproduces the paper's Table 12 (HMR2.0: 122.6 G,
  with 28 blocks 107.5 G): per ViT-H block 12·d²·N MACs (qkv 3d², proj d², MLP 8d²) at N = 192,
  d = 1280, plus the patch conv and the head's linears (its cross-attention ``to_kv`` over the
  backbone tokens dominates the head). Attention score/value matmuls are *not* counted.
* ``all``: every op the counter knows, plus scaled-dot-product attention (the CPU flash kernel
  ``_scaled_dot_product_flash_attention_for_cpu`` is registered here with torch's own SDPA formula).

The timing harness runs several named configurations **interleaved** (A, B, C, A, B, C, ...) so
that drifts of a shared machine hit all of them alike, and reports median, inter-quartile range,
images/s and the ratio to the first configuration.
"""

from __future__ import annotations

import dataclasses
import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ..config import ModelConfig, get_preset
from ..merging.state import TokenState
from ..models.head import SMPLHead
from ..models.vit import ViT

LINEAR_CONV_OPS = ("aten.mm", "aten.addmm", "aten.convolution", "aten._convolution", "aten.addmv", "aten.mv")


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_CUSTOM = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _CUSTOM[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flop


class BackboneHead(nn.Module):
    """Backbone + SMPL head with :class:`~fasthmr_lib.models.hmr.HMR`'s call interface, without the
    SMPL layer (the part Table 12 counts and the part whose speed token merging changes).

    ``forward(img (B,3,256,256) or (B,3,256,192), person_mask=None)`` -> the head's dict plus
    ``tokens_per_block`` (list[int])."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = ViT(cfg.vit)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights: no mean params needed
            self.head = SMPLHead(cfg.head)
        self.make_token_state: Callable[[Tensor | None, int], TokenState] | None = None
        self.head_size_bias = False  # as HMR: add log(token size) to the head's cross-attention

    def forward(
        self, img: Tensor, person_mask: Tensor | None = None, bbox_info: Tensor | None = None
    ) -> dict[str, Any]:
        B = img.shape[0]
        if img.shape[-1] == img.shape[-2]:  # square crop: HMR2.0 trims 32 px each side
            img = img[:, :, :, 32:-32]
        state = self.make_token_state(person_mask, B) if self.make_token_state is not None else TokenState()
        tokens = self.backbone.forward_tokens(img, state)
        bias = None
        if self.head_size_bias and state.size is not None:
            bias = torch.log(state.size)[:, None, None, :, 0]  # (B, 1, 1, N')
        out = dict(self.head(tokens, bbox_info=bbox_info, context_bias=bias))
        out["tokens_per_block"] = list(state.tokens_per_block)
        return out


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
    new.make_token_state = None
    new.head_size_bias = False
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


@dataclass
class MacCount:
    """MACs for one forward pass, per image. ``by_component[name] = {"all": .., "linear_conv": ..}``."""

    all: float
    linear_conv: float
    by_component: dict[str, dict[str, float]] = field(default_factory=dict)
    by_op: dict[str, float] = field(default_factory=dict)
    batch: int = 1
    output: Any = None  # what the counted forward returned (e.g. to read ``tokens_per_block``)


def _split(op_counts: dict[Any, int]) -> tuple[float, float]:
    tot = sum(op_counts.values())
    lc = sum(c for op, c in op_counts.items() if str(op) in LINEAR_CONV_OPS)
    return tot / 2.0, lc / 2.0


def count_macs(model: nn.Module, *inputs: Any, **kwargs: Any) -> MacCount:
    """Run ``model(*inputs, **kwargs)`` once under ``FlopCounterMode`` (no grad) and return MACs per
    image (batch = ``inputs[0].shape[0]``) in both conventions, per top-level child module."""
    batch = int(inputs[0].shape[0])
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as fc:
        output = model(*inputs, **kwargs)
    counts = fc.get_flop_counts()
    glob = counts.get("Global", {})
    all_, lc = _split(glob)
    root = type(model).__name__
    keys = set(counts)
    by_comp: dict[str, dict[str, float]] = {}
    for name, _ in model.named_children():
        pref = f"{root}.{name}"
        if pref in keys:
            picked = [pref]
        else:  # child not called through __call__ (e.g. backbone.forward_tokens): sum its outermost
            picked = [
                k
                for k in keys
                if k.startswith(pref + ".")
                and not any(k.startswith(a + ".") for a in keys if a.startswith(pref + ".") and a != k)
            ]
        if not picked:
            continue
        ops: dict[Any, int] = {}
        for k in picked:
            for op, c in counts[k].items():
                ops[op] = ops.get(op, 0) + c
        a, l_ = _split(ops)
        by_comp[name] = {"all": a / batch, "linear_conv": l_ / batch}
    by_op = {str(op): c / 2.0 / batch for op, c in glob.items()}
    return MacCount(all_ / batch, lc / batch, by_comp, by_op, batch, output)


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
    before the warm-up, or on CPU the growth of the process' peak RSS (0 when an earlier config already
    reached a higher peak, so CPU values are a lower bound). Then ``repeats`` rounds run every config
    once in turn."""
    if not configs:
        raise ValueError("time_side_by_side: no configurations given")
    device = torch.device(device)
    threads = torch.get_num_threads()
    mem: dict[str, float | None] = {}
    for name, fn in configs:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            base = _rss_peak_mb()
        with torch.no_grad():
            for _ in range(max(1, warmup)):
                fn()
        _sync(device)
        if device.type == "cuda":
            mem[name] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        else:
            mem[name] = max(0.0, _rss_peak_mb() - base)
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
    kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss_growth"
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
