"""Command line for the paper's cost numbers: params, MACs (two conventions), throughput, memory,
per-component times (Table 6) and their harmonic combination.

Examples::

    python -m fasthmr_lib.bench --preset hmr2 --no-time                 # counts only (meta device)
    python -m fasthmr_lib.bench --preset hmr2 --batch 1 8               # + CPU throughput
    python -m fasthmr_lib.bench --preset hmr2 --depth 28 --mask-tome 3,40,90 --no-time --json
    python -m fasthmr_lib.bench --preset hmr2 --compare baseline fasthmr --batch 8 --json
    python -m fasthmr_lib.bench --preset hmr2 --compare all --batch 1 8 32
    python -m fasthmr_lib.bench --preset small --train-step fp32 bf16 --batch 16   # training step cost

Models carry random weights (speed and MACs do not depend on the values). The per-frame model is the
backbone + SMPL head (:class:`fasthmr_lib.eval.profile.BackboneHead`; the SMPL layer is not included,
as in Table 12). Named configurations for ``--compare`` (``all`` = the issue's five, in this order:
baseline, eclm, eclm_masktome, decoder, fasthmr):

* ``baseline``       all blocks, 192 tokens;
* ``eclm``           the first 28 blocks (``hmr2``; 26 for ``camerahmr``) as a stand-in for ECLM's depth
                     (with random weights a merged window costs exactly one block);
* ``masktome``       all blocks + Mask-ToMe (3 layers, 40 per layer, keep 90) with a synthetic mask;
* ``eclm_masktome``  ECLM depth + Mask-ToMe (Table 6 "backbone + ECLM + Mask-ToMe");
* ``decoder``        the diffusion decoder alone, per frame (Table 6 "diffusion decoder");
* ``fasthmr``        ECLM depth + Mask-ToMe + the diffusion decoder;
* ``int8``           all blocks, every linear layer of the backbone in dynamic int8 (``models/quantize.py``);
* ``int8_mlp``       all blocks, only the backbone's MLP linears (fc1 / fc2) in dynamic int8;
* ``fasthmr_cpu``    ``fasthmr`` with the int8 backbone as ``FastHMR(int8=True)`` runs it (the layer set
                     ``models.quantize.CPU_LAYERS``: MLP only): the CPU configuration;
* ``fasthmr_cpu_all`` ``fasthmr`` with every backbone linear in int8;
* ``baseline_math``  ``baseline`` with HMR 2.0's explicit attention instead of PyTorch SDPA (every other
                     configuration uses SDPA): the SDPA lever's reference.

How the decoder is timed: it decodes windows of F frames (paper preset: F = 243); one window is timed
interleaved with the per-frame models and its per-frame cost is the window time / F. A configuration
with the decoder reports ``images_per_s = B / (t_model(B) + B · t_window / F)`` — the decoder's cost
amortised over its window (decoding every batch of B < F frames as a whole window would charge the full
window to each batch). ``pipeline`` combines per-component throughputs harmonically,
1 / Σ 1/fps_i, the rule that reproduces the paper's Table 1 baseline fps from Table 6's components
(CameraHMR: 1/(1/1500 + 1/333.3 + 1/68.2) = 54.5). The segmenter (YOLO11n-seg from its model config,
random weights) is timed only when the optional ``ultralytics`` package is importable; otherwise it is
reported as absent. ``speedup`` is the images/s ratio to the first configuration at the same batch size.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import torch

from .config import get_preset
from .diffusion.cost import bench_decoder, decoder_cost
from .eval import profile as P
from .merging import patch
from .merging.patch import MaskToMeConfig
from .models.camera import convention_of
from .models.quantize import CPU_LAYERS, quantize_int8
from .models.vit import set_fused_attention

ECLM_DEPTH = {"hmr2": 28, "camerahmr": 26}  # paper Table 12: 4 / 6 blocks merged away
PAPER_MASKTOME = (3, 40, 90)
ALL_CONFIGS = ("baseline", "eclm", "eclm_masktome", "decoder", "fasthmr")
DECODER_PRESETS = {"hmr2": "paper", "camerahmr": "paper", "small": "small", "tiny": "tiny"}
DECODER_DESC = "fasthmr_lib.diffusion.cost.bench_decoder: one window timed, cost per frame = window time / F"
LABELS = {
    "baseline": "baseline",
    "eclm": "+ECLM",
    "masktome": "+Mask-ToMe",
    "eclm_masktome": "+ECLM +Mask-ToMe",
    "decoder": "diffusion decoder (alone)",
    "fasthmr": "+ECLM +Mask-ToMe +decoder (FastHMR)",
    "int8": "+int8 backbone (all linears)",
    "int8_mlp": "+int8 backbone (MLP linears)",
    "fasthmr_cpu": "FastHMR +int8 backbone MLPs (CPU)",
    "fasthmr_cpu_all": "FastHMR +int8 backbone, all linears",
    "baseline_math": "baseline, explicit attention (HMR 2.0 code)",
    "custom": "custom",
}


@dataclass
class BenchConfig:
    """One configuration to count and time.

    depth: keep the first ``depth`` backbone blocks (``None``: all).
    mask_tome: Mask-ToMe settings installed with ``merging.patch.apply`` (``None``: no token merging).
    decoder: add the diffusion decoder (amortised over its window, see the module docstring).
    model: ``False``: the decoder alone, no per-frame model.
    int8: the backbone's linear layers in dynamic int8 (CPU); int8_layers: which ("all" | "mlp").
    sdpa: ``False``: the backbone's attention as HMR 2.0's explicit softmax(q kᵀ) v, not PyTorch SDPA.
    """

    name: str
    depth: int | None = None
    mask_tome: MaskToMeConfig | None = None
    decoder: bool = False
    model: bool = True
    int8: bool = False
    int8_layers: str = CPU_LAYERS
    sdpa: bool = True


@dataclass
class BenchOptions:
    """How :func:`benchmark` measures (the CLI flags of the same names).

    device: where models run; warmup / repeats: untimed / timed interleaved runs per configuration;
    threads: torch threads (0: leave the default); timing: ``False`` counts only (no rows per batch);
    decoder_preset: VAE/denoiser preset (default from :data:`DECODER_PRESETS`); segmenter: time
    YOLO11n-seg when available; progress: progress bars; log: a text file (e.g. ``sys.stderr``) that gets
    a comparison table per batch size; profile_ops: > 0 adds ``op_profile`` (the top operators by self
    time of one call at the first batch size) to each timed row.
    """

    device: str = "cpu"
    warmup: int = 1
    repeats: int = 3
    threads: int = 0
    timing: bool = True
    decoder_preset: str | None = None
    segmenter: bool = True
    progress: bool = False
    log: TextIO | None = None
    profile_ops: int = 0


def mask_tome_config(lnm: Sequence[int], use_mask: bool = True, prop_attn: bool = False) -> MaskToMeConfig:
    """``(L, N_L, M)`` — merge N_L tokens in each of the first L blocks, keep at least M — as a
    :class:`MaskToMeConfig` (paper: ``PAPER_MASKTOME`` = (3, 40, 90))."""
    layers, per_layer, min_tokens = lnm
    return MaskToMeConfig(
        layers=layers, per_layer=per_layer, min_tokens=min_tokens, use_mask=use_mask, prop_attn=prop_attn
    )


def named_config(name: str, preset: str, args: argparse.Namespace | None = None) -> BenchConfig:
    full = get_preset(preset).vit.depth
    eclm = ECLM_DEPTH.get(preset, full - max(1, full // 8))
    use_mask = not getattr(args, "no_mask", False)
    prop = bool(getattr(args, "prop_attn", False))
    mt = {"mask_tome": mask_tome_config(PAPER_MASKTOME, use_mask, prop)}
    table = {
        "baseline": BenchConfig("baseline"),
        "eclm": BenchConfig("eclm", depth=eclm),
        "masktome": BenchConfig("masktome", **mt),
        "eclm_masktome": BenchConfig("eclm_masktome", depth=eclm, **mt),
        "decoder": BenchConfig("decoder", decoder=True, model=False),
        "fasthmr": BenchConfig("fasthmr", depth=eclm, decoder=True, **mt),
        "int8": BenchConfig("int8", int8=True, int8_layers="all"),
        "int8_mlp": BenchConfig("int8_mlp", int8=True, int8_layers="mlp"),
        "fasthmr_cpu": BenchConfig("fasthmr_cpu", depth=eclm, decoder=True, int8=True, **mt),
        "fasthmr_cpu_all": BenchConfig(
            "fasthmr_cpu_all", depth=eclm, decoder=True, int8=True, int8_layers="all", **mt
        ),
        "baseline_math": BenchConfig("baseline_math", sdpa=False),
    }
    if name not in table:
        raise SystemExit(
            f"--compare: unknown configuration {name!r}; expected some of {sorted(table)} or 'all'"
        )
    return table[name]


def parse_mask_tome(text: str) -> tuple[int, int, int]:
    try:
        a, b, c = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--mask-tome expects L,N_L,M (three integers), got {text!r}"
        ) from None
    return a, b, c


def build(base: P.BackboneHead, cfg: BenchConfig) -> P.BackboneHead:
    """``cfg``'s model from the random-weight ``base`` (weights shared, ``base`` left untouched)."""
    m = P.shallow_clone(base)
    P.truncate_depth(m, cfg.depth)
    if not cfg.sdpa:
        for blk in m.backbone.blocks:  # the clone's own attention objects (weights still shared)
            blk.attn = set_fused_attention(copy.copy(blk.attn), False)
    if cfg.mask_tome is not None:
        patch.apply(m, cfg.mask_tome)
    return m.eval()


def _box_info(preset: str, batch: int, device: str) -> dict[str, Any]:
    """``{"bbox_info": (batch, 3)}`` for a CameraHMR-convention preset (its head reads the CLIFF box info:
    here a centred box half the focal length wide), else ``{}``."""
    if convention_of(get_preset(preset)) != "camerahmr":
        return {}
    return {"bbox_info": torch.tensor([[0.0, 0.0, 0.5]], device=device).expand(batch, 3)}


def _inputs(cfg: BenchConfig, batch: int, device: str, preset: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """Random (batch, 3, 256, 256) crops, plus a synthetic person mask when Mask-ToMe protects persons
    and the box info of a CameraHMR-convention ``preset`` (:func:`_box_info`)."""
    img = torch.randn(batch, 3, 256, 256, device=device)
    kw: dict[str, Any] = _box_info(preset, batch, device)
    if cfg.mask_tome is not None and cfg.mask_tome.use_mask:
        kw["person_mask"] = P.synthetic_person_mask(batch).to(device)
    return img, kw


def _median_last(xs: list[float], n: int) -> float | None:
    xs = xs[-n:] if n else xs
    return statistics.median(xs) if xs else None


@dataclass
class _Shared:
    """What every configuration of one :func:`benchmark` call shares."""

    preset: str
    opts: BenchOptions
    num_tokens: int  # tokens per block without merging
    base: P.BackboneHead | None  # random-weight model on the device; None: counts on the meta device
    dec_preset: str
    dec_info: dict[str, Any] | None  # decoder_cost(dec_preset) when a configuration decodes
    seg_model: Callable[[torch.Tensor], Any] | None
    seg_desc: str
    missing_front: list[str]  # pipeline stages not measured


@dataclass
class _BatchTimes:
    """The timings of one batch size: results by call name, backbone / head stage times (s) by
    configuration, the segmenter's s per image and the decoder's s per frame (window / F)."""

    batch: int
    timed: dict[str, P.TimingResult]
    stages: dict[str, dict[str, list[float]]]
    seg_s: float | None
    dec_frame_s: float | None


def benchmark(
    preset: str,
    configs: Sequence[str | BenchConfig],
    batches: Sequence[int] = (1,),
    options: BenchOptions | None = None,
) -> list[dict[str, Any]]:
    """Count and (with ``options.timing``) time ``configs`` (names for :func:`named_config` or
    :class:`BenchConfig`) of ``preset`` side by side at each batch size in ``batches``.

    Returns one dict per (batch, config), batches outer (see the module docstring for the fields'
    meaning); without timing, one per config with ``batch=None``."""
    opts = options or BenchOptions()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cfgs = [c if isinstance(c, BenchConfig) else named_config(c, preset) for c in configs]
    if not cfgs:
        raise ValueError("benchmark: no configurations given")
    sh = _prepare(preset, cfgs, opts)
    rows: list[dict[str, Any]] = []
    models: dict[str, P.BackboneHead] = {}
    for cfg in cfgs:
        row, model = _count(sh, cfg)
        rows.append(row)
        if model is not None:
            models[cfg.name] = model
    if not opts.timing:
        return [dict(r, batch=None) for r in rows]
    results: list[dict[str, Any]] = []
    for batch in batches:
        profile = bool(opts.profile_ops) and batch == batches[0]
        results.extend(_time_batch(sh, cfgs, rows, models, batch, profile))
    return results


def _prepare(preset: str, cfgs: list[BenchConfig], opts: BenchOptions) -> _Shared:
    """The decoder's counts, the random-weight base model (only when something runs for real) and the
    segmenter (timed only when available)."""
    num_tokens = get_preset(preset).vit.num_tokens
    dec_preset = opts.decoder_preset or DECODER_PRESETS.get(preset, "tiny")
    dec_info = decoder_cost(dec_preset) if any(c.decoder for c in cfgs) else None
    need_real = opts.timing or any(c.mask_tome is not None for c in cfgs if c.model)
    base = P.build_bench_model(preset).to(opts.device) if need_real and any(c.model for c in cfgs) else None
    seg_model, seg_desc = (None, "not requested (--no-segmenter)")
    if opts.segmenter:
        if opts.timing:
            seg_model, seg_desc = P.build_segmenter(device=opts.device)
        else:
            seg_model, seg_desc = None, P.segmenter_status()
    missing_front = [] if seg_model is not None else ["segmenter/detector"]
    if preset == "camerahmr":
        missing_front.append("camera intrinsics (HumanFoV: fasthmr_lib.models.humanfov, not timed here)")
    return _Shared(preset, opts, num_tokens, base, dec_preset, dec_info, seg_model, seg_desc, missing_front)


# ---------------------------------------------------------------------------------------------
# counting: parameters and MACs per image


def _count(sh: _Shared, cfg: BenchConfig) -> tuple[dict[str, Any], P.BackboneHead | None]:
    """The counts row of one configuration and its model to time (``None``: the decoder alone)."""
    row: dict[str, Any] = {"preset": sh.preset, "config": cfg.name, "label": LABELS.get(cfg.name, cfg.name)}
    model = None
    if cfg.model:
        model, counts = _count_model(sh, cfg)
        row.update(counts)
    else:
        row.update(depth=None, mask_tome=None, use_mask=None, prop_attn=None, params={"total": 0},
                   macs_per_image={"all": 0.0, "linear_conv": 0.0, "by_component": {}},
                   tokens_per_block=None)  # fmt: skip
    row["decoder"] = DECODER_DESC if cfg.decoder else None
    if cfg.decoder and sh.dec_info is not None:
        info = sh.dec_info
        row.update(
            decoder_preset=sh.dec_preset,
            decoder_frames_per_window=info["num_frames"],
            decoder_params=info["params"],
            decoder_macs_per_frame=info["macs_per_frame"],
            decoder_macs_per_window=info["macs_per_window"],
        )
        row["params"] = dict(row["params"], decoder=info["params"]["total"])
        row["params"]["total"] = row["params"]["total"] + info["params"]["total"]
    row["segmenter"] = sh.seg_desc
    return row, model


def _count_model(sh: _Shared, cfg: BenchConfig) -> tuple[P.BackboneHead, dict[str, Any]]:
    """Parameters, MACs of one image (two conventions) and tokens per block of the per-frame model, on
    the meta device when nothing is timed; returns the model (int8 when asked) and the row fields."""
    if sh.base is None:
        m = P.build_meta_model(sh.preset, cfg.depth)
        img, kw = torch.randn(1, 3, 256, 256, device="meta"), _box_info(sh.preset, 1, "meta")
    else:
        m = build(sh.base, cfg)
        img, kw = _inputs(cfg, 1, sh.opts.device, sh.preset)
    mc = P.count_macs(m, img, **kw)  # int8 configurations: the same MACs, counted before quantising
    params = P.count_params(m)
    out = mc.output if isinstance(mc.output, dict) else {}
    if cfg.int8 and sh.base is not None:
        m = quantize_int8(m, layers=cfg.int8_layers)
    tpb = out.get("tokens_per_block") or [sh.num_tokens] * len(m.backbone.blocks)
    mt = cfg.mask_tome
    deviation = _lever_deviation(sh, cfg, m, img, kw, out) if sh.base is not None else None
    return m, dict(
        depth=len(m.backbone.blocks),
        mask_tome=[mt.layers, mt.per_layer, mt.min_tokens] if mt is not None else None,
        use_mask=mt.use_mask if mt is not None else None,
        prop_attn=mt.prop_attn if mt is not None else None,
        int8=cfg.int8,
        int8_layers=cfg.int8_layers if cfg.int8 else None,
        sdpa=cfg.sdpa,
        params=params,
        macs_per_image={"all": mc.all, "linear_conv": mc.linear_conv, "by_component": mc.by_component},
        tokens_per_block=tpb,
        lever_deviation=deviation,
    )


def _lever_deviation(
    sh: _Shared,
    cfg: BenchConfig,
    model: P.BackboneHead,
    img: torch.Tensor,
    kw: dict[str, Any],
    counted: dict[str, Any],
) -> dict[str, float] | None:
    """How far the CPU levers (int8, explicit attention) move ``cfg``'s outputs from the same
    configuration in fp32 with SDPA, on one random input (:func:`~fasthmr_lib.eval.profile.output_deviation`);
    ``None`` when no lever is on. ``counted``: the output of the MAC-counting forward on ``img`` (``cfg``'s
    model before quantising), reused as the reference (SDPA) or as the lever's output (no int8)."""
    ref_cfg = dataclasses.replace(cfg, int8=False, sdpa=True)
    if ref_cfg == cfg:
        return None
    with torch.no_grad():
        ref = counted if cfg.sdpa else build(sh.base, ref_cfg)(img, **kw)
        out = model(img.to(next(model.parameters()).device), **kw) if cfg.int8 else counted
    return P.output_deviation(ref, out)


# ---------------------------------------------------------------------------------------------
# timing: one batch size, every configuration interleaved


def _time_batch(
    sh: _Shared,
    cfgs: list[BenchConfig],
    rows: list[dict[str, Any]],
    models: dict[str, P.BackboneHead],
    batch: int,
    profile: bool,
) -> list[dict[str, Any]]:
    """Time every configuration at ``batch`` side by side -> the timed rows (``rows`` + times, speed-ups,
    pipeline; ``op_profile`` when ``profile``), printed to ``sh.opts.log`` as a table."""
    o = sh.opts
    calls, stages = _calls(sh, cfgs, models, batch)
    results = P.time_side_by_side(
        calls, batch, warmup=o.warmup, repeats=o.repeats, device=o.device, progress=o.progress
    )
    timed = {t.name: t for t in results}
    F = sh.dec_info["num_frames"] if sh.dec_info is not None else None
    bt = _BatchTimes(
        batch,
        timed,
        stages,
        seg_s=timed["segmenter"].median_s / batch if "segmenter" in timed else None,
        dec_frame_s=timed["decoder"].median_s / F if "decoder" in timed else None,
    )
    batch_rows = []
    for r, cfg in zip(rows, cfgs):
        d = _timed_row(sh, r, cfg, bt)
        if d is not None:
            batch_rows.append(d)
    _add_speedups(batch_rows)
    if profile:
        _profile_ops(sh, batch_rows, cfgs, calls, bt)
    if o.log is not None:
        print(format_rows(batch_rows), file=o.log)
    return batch_rows


def _calls(
    sh: _Shared, cfgs: list[BenchConfig], models: dict[str, P.BackboneHead], batch: int
) -> tuple[list[tuple[str, Callable[[], Any]]], dict[str, dict[str, list[float]]]]:
    """The calls timed at ``batch``, by name (configurations with a model, then ``decoder`` — one
    window of F frames — and ``segmenter``), and the stage-time lists the model calls fill."""
    device = sh.opts.device
    calls: list[tuple[str, Callable[[], Any]]] = []
    stages: dict[str, dict[str, list[float]]] = {}
    for cfg in cfgs:
        if not cfg.model:
            continue
        m = models[cfg.name]
        img, kw = _inputs(cfg, batch, device, sh.preset)
        st: dict[str, list[float]] = {}
        stages[cfg.name] = st

        def fn(m=m, img=img, kw=kw, st=st):
            m(img, stage_times=st, **kw)

        calls.append((cfg.name, fn))
    if sh.dec_info is not None:
        F = sh.dec_info["num_frames"]
        calls.append(("decoder", lambda: bench_decoder(F, device, sh.dec_preset)))
    if sh.seg_model is not None:
        seg_in = torch.rand(batch, 3, 640, 640, device=device)
        calls.append(("segmenter", lambda x=seg_in: sh.seg_model(x)))
    return calls, stages


# ---------------------------------------------------------------------------------------------
# result assembly: per-component times, amortised throughput, harmonic pipeline, speed-ups


def _timed_row(sh: _Shared, row: dict[str, Any], cfg: BenchConfig, bt: _BatchTimes) -> dict[str, Any] | None:
    """``row`` with the times of ``cfg`` at ``bt.batch`` (``None``: the decoder alone without decoder
    times). Latency and images/s include the decoder amortised over its window: B·t_window/F."""
    batch, timed = bt.batch, bt.timed
    comp: dict[str, float | None] = {"segmenter": bt.seg_s, "backbone": None, "head": None, "decoder": None}
    if cfg.model:
        t = timed[cfg.name]
        model_s = t.median_s
        comp["backbone"] = _median_last(bt.stages[cfg.name].get("backbone", []), sh.opts.repeats) / batch
        comp["head"] = _median_last(bt.stages[cfg.name].get("head", []), sh.opts.repeats) / batch
        iqr, mem = t.iqr_s, t.peak_mem_mb
    else:
        t = timed.get("decoder")
        model_s, iqr, mem = 0.0, 0.0, (t.peak_mem_mb if t is not None else None)
    total_s = model_s
    if cfg.decoder and bt.dec_frame_s is not None:
        comp["decoder"] = bt.dec_frame_s
        total_s += batch * bt.dec_frame_s
    if not cfg.model and bt.dec_frame_s is None:
        return None  # decoder alone but no decoder timing
    fps = {k: (1.0 / v if v else None) for k, v in comp.items()}
    d = dict(
        row,
        batch=batch,
        latency_ms_median=1000 * total_s,
        latency_ms_iqr=1000 * iqr,
        images_per_s=batch / total_s,
        repeats=sh.opts.repeats,
        warmup=sh.opts.warmup,
        peak_mem_mb=mem,
        mem_kind=t.mem_kind if t is not None else None,
        threads=torch.get_num_threads(),
        device=str(sh.opts.device),
        components_ms_per_image={k: (1000 * v if v is not None else None) for k, v in comp.items()},
        components_fps=fps,
        pipeline=_pipeline(sh, cfg, fps, batch / model_s if cfg.model else None),
    )
    if cfg.decoder and "decoder" in timed:
        d["decoder_window_ms"] = 1000 * timed["decoder"].median_s
        d["decoder_peak_mem_mb"] = timed["decoder"].peak_mem_mb
        d["throughput_note"] = "decoder amortised: B / (t_model(B) + B * t_window / F)"
    return d


def _pipeline(
    sh: _Shared, cfg: BenchConfig, fps: dict[str, float | None], model_fps: float | None
) -> dict[str, Any]:
    """Harmonic combination 1 / Σ 1/fps_i of the components ``cfg`` uses (segmenter, per-frame model,
    decoder per frame; :func:`fasthmr_lib.eval.profile.combine_components`) and what it misses."""
    used = {"front_end(segmenter)": fps["segmenter"]}
    if cfg.model:
        used["model"] = model_fps
    if cfg.decoder:
        used["decoder"] = fps["decoder"]
    pipe = P.combine_components(used)
    pipe["missing"] = sorted(set(pipe["missing"]) - {"front_end(segmenter)"}) + sh.missing_front
    return pipe


def _add_speedups(batch_rows: list[dict[str, Any]]) -> None:
    """``speedup`` / ``pipeline_speedup``: images/s and pipeline fps over the first row's (same batch)."""
    base_ips = batch_rows[0]["images_per_s"]
    base_pipe = batch_rows[0]["pipeline"]["fps"]
    for d in batch_rows:
        d["speedup"] = d["images_per_s"] / base_ips
        d["pipeline_speedup"] = d["pipeline"]["fps"] / base_pipe if base_pipe else None


def _profile_ops(
    sh: _Shared,
    batch_rows: list[dict[str, Any]],
    cfgs: list[BenchConfig],
    calls: list[tuple[str, Callable[[], Any]]],
    bt: _BatchTimes,
) -> None:
    """Add ``op_profile`` (top ``profile_ops`` operators by self time of one call, torch.profiler) to
    each timed row, and print them to ``sh.opts.log``."""
    n, log = sh.opts.profile_ops, sh.opts.log
    for d, cfg in zip(batch_rows, [c for c in cfgs if c.model or bt.dec_frame_s is not None]):
        fn = dict(calls).get(cfg.name if cfg.model else "decoder")
        if fn is None:
            continue
        d["op_profile"] = P.op_profile(fn, n, sh.opts.device)
        if log is None:
            continue
        print(f"-- {cfg.name}: top {n} ops by self time (one call, batch {bt.batch})", file=log)
        for o in d["op_profile"]:
            print(f"   {o['self_pct']:5.1f}%  {o['self_ms']:9.1f} ms  x{o['calls']:<5} {o['op']}", file=log)


# ---------------------------------------------------------------------------------------------
# command line


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The CLI flags as :class:`BenchOptions` (``--json`` turns progress bars off; the comparison tables
    go to stderr unless ``--json`` without ``--profile-ops``)."""
    return BenchOptions(
        device=args.device,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        timing=not args.no_time,
        decoder_preset=args.decoder_preset,
        segmenter=not args.no_segmenter,
        progress=not args.json,
        log=None if args.json and not args.profile_ops else sys.stderr,
        profile_ops=args.profile_ops,
    )


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    preset = args.preset
    if args.compare:
        names = [n for c in args.compare for n in (ALL_CONFIGS if c == "all" else (c,))]
        configs = [named_config(n, preset, args) for n in names]
    else:
        mt = None
        if args.mask_tome is not None:
            mt = mask_tome_config(args.mask_tome, use_mask=not args.no_mask, prop_attn=args.prop_attn)
        configs = [BenchConfig("custom", args.depth, mt)]
    return benchmark(preset, configs, args.batch, options_from_args(args))


def _g(x: float | None, scale: float = 1.0, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x * scale, fmt)


def format_rows(rows: list[dict[str, Any]]) -> str:
    """Table 6-style text table of timed rows of one batch size: img/s, speedup, ms per image per component,
    harmonic pipeline fps, memory."""
    if not rows:
        return "(no rows)"
    hdr = (
        f"{'config':<16} {'batch':>5} {'img/s':>8} {'speedup':>8} {'seg ms':>7} {'bb ms':>8} {'head ms':>8} "
        f"{'dec ms':>7} {'pipe fps':>9} {'mem MB':>8}"
    )
    lines = [hdr]
    for r in rows:
        c = r["components_ms_per_image"]
        lines.append(
            f"{r['config']:<16} {r['batch']:>5} {r['images_per_s']:>8.2f} {r['speedup']:>7.2f}x "
            f"{_g(c['segmenter'], fmt='.1f'):>7} {_g(c['backbone'], fmt='.1f'):>8} "
            f"{_g(c['head'], fmt='.1f'):>8} {_g(c['decoder'], fmt='.2f'):>7} "
            f"{_g(r['pipeline']['fps']):>9} {_g(r['peak_mem_mb'], fmt='.0f'):>8}"
        )
    r0 = rows[0]
    lines.append(
        f"(threads={r0['threads']}, device={r0['device']}, warm-up {r0['warmup']}, "
        f"{r0['repeats']} interleaved repeats; ms per image; decoder per frame; "
        f"memory: {r0['mem_kind']}; pipeline = harmonic combination, "
        f"missing: {', '.join(r0['pipeline']['missing']) or 'none'})"
    )
    return "\n".join(lines)


def _print_table(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        p = r["params"]
        macs = r["macs_per_image"]
        tpb = r.get("tokens_per_block")
        line = (
            f"{r['preset']}/{r['config']}: depth {r['depth']}, params {p['total'] / 1e6:.1f} M "
            f"(backbone {p.get('backbone', 0) / 1e6:.1f} M, head {p.get('head', 0) / 1e6:.1f} M"
            + (f", decoder {p['decoder'] / 1e6:.1f} M" if "decoder" in p else "")
            + f"), MACs/img linear+conv {macs['linear_conv'] / 1e9:.2f} G, all ops {macs['all'] / 1e9:.2f} G"
        )
        if tpb:
            line += f", tokens {tpb[0]}->{tpb[-1]}"
        if r.get("decoder_macs_per_frame"):
            dm = r["decoder_macs_per_frame"]
            line += f" | decoder MACs/frame {dm['linear_conv'] / 1e6:.1f} M (all {dm['all'] / 1e6:.1f} M)"
        if r.get("batch") is not None:
            line += (
                f" | batch {r['batch']}: {r['images_per_s']:.2f} img/s,"
                f" latency {r['latency_ms_median']:.0f} ms"
                f" (IQR {r['latency_ms_iqr']:.0f}), speedup {r['speedup']:.2f}x, threads {r['threads']},"
                f" pipeline {_g(r['pipeline']['fps'])} fps"
            )
        elif r.get("decoder"):
            line += f" | decoder {r['decoder']}"
        print(line)
    if rows:
        print(f"segmenter: {rows[0]['segmenter']}")


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fasthmr_lib.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="hmr2", help="model preset (hmr2, camerahmr, small, tiny)")
    ap.add_argument("--depth", type=int, default=None, help="keep the first N backbone blocks")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes to time (several allowed)")
    ap.add_argument("--no-time", action="store_true", help="counts only (params, MACs, tokens)")
    ap.add_argument("--json", action="store_true", help="one JSON object per configuration on stdout")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up runs per configuration")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mask-tome", type=parse_mask_tome, default=None, metavar="L,N_L,M")
    ap.add_argument("--no-mask", action="store_true", help="Mask-ToMe without person protection (plain ToMe)")
    ap.add_argument("--prop-attn", action="store_true", help="proportional attention (log-size bias)")
    ap.add_argument("--compare", nargs="+", default=None, metavar="NAME",
                    help="configurations timed side by side: baseline eclm masktome eclm_masktome decoder "
                         "fasthmr, or 'all'")  # fmt: skip
    ap.add_argument("--decoder-preset", default=None,
                    help="decoder VAE/denoiser preset (default: paper for hmr2, camerahmr)")  # fmt: skip
    ap.add_argument("--no-segmenter", action="store_true", help="do not time YOLO11n-seg even if available")
    ap.add_argument("--train-step", nargs="+", default=None, metavar="PRECISION",
                    help="instead: time one training step (forward, losses, backward, AdamW) of the preset "
                         "under each autocast precision (fp32 bf16 fp16), side by side")  # fmt: skip
    ap.add_argument("--profile-ops", type=int, default=0, metavar="N",
                    help="also print the top-N operators by self time of one forward per configuration "
                         "(torch.profiler; first batch size) to stderr")  # fmt: skip
    return ap


def train_step_main(args: argparse.Namespace) -> int:
    """``--train-step``: seconds per training step of ``--preset`` (HMR with the SMPL layer, random
    weights) per precision, one row each."""
    from .models.hmr import build_model
    from .models.train import time_train_steps

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        torch.manual_seed(0)
        model = build_model(args.preset)
        rows = [
            r
            for b in args.batch
            for r in time_train_steps(
                model,
                args.train_step,
                b,
                repeats=args.repeats,
                warmup=args.warmup,
                device=args.device,
            )
        ]
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for r in rows:
        text = (
            f"{args.preset} train step, batch {r['batch']}, {r['precision']}: {r['s_per_step']:.3f} s "
            f"({r['samples_per_s']:.1f} samples/s), speedup {r['speedup']:.2f}x, threads {r['threads']}"
        )
        print(json.dumps({"preset": args.preset, **r}) if args.json else text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        get_preset(args.preset)
    except KeyError as e:
        print(f"error: --preset: {e.args[0]}", file=sys.stderr)
        return 2
    if any(b < 1 for b in args.batch) or args.repeats < 1:
        print("error: --batch values and --repeats must be >= 1", file=sys.stderr)
        return 2
    if args.train_step:
        return train_step_main(args)
    try:
        rows = run(args)
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        _print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
