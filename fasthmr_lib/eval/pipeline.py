"""End-to-end evaluation of assembled FastHMR variants on clips (notebook 05): accuracy of the per-frame
head and of the diffusion decoder, measured throughput, and the speed–accuracy sweep over (τ, n_l, M′).

Everything goes through :class:`fasthmr_lib.fasthmr.FastHMR` (the deployed model), the head-token
extraction of :mod:`fasthmr_lib.diffusion.training` and the clip metrics of
:func:`fasthmr_lib.eval.metrics.evaluate_poses` (MPJPE / PA-MPJPE / PVE per frame, Accel per clip),
so head and decoder rows are scored by the same code.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset

from ..fasthmr import FastHMR
from ..models.quantize import on_cpu
from . import profile as P

METRICS = ("mpjpe", "pa_mpjpe", "pve", "accel", "accel_ms2")


def clip_subset(dataset: Any, max_clips: int = 0) -> Dataset:
    """The frames of the first ``max_clips`` clips of a :class:`~fasthmr_lib.data.datasets.CropDataset`
    (whole clips, so the decoder sees contiguous frames); ``0`` keeps everything."""
    if not max_clips:
        return dataset
    index = getattr(dataset, "index", None)
    if not isinstance(index, (list, tuple)):
        raise TypeError("clip_subset needs a CropDataset (with .index of (clip, frame) pairs)")
    return Subset(dataset, [i for i, (ci, _) in enumerate(index) if ci < max_clips])


def clip_ground_truth(root: Any, split: str) -> dict[str, dict[str, np.ndarray]]:
    """``{clip_id: {"pose" (T,72), "betas" (T,10)}}`` of a world split (camera-frame SMPL θ, β)."""
    from ..data.datasets import ClipDataset

    cds = ClipDataset(root, split)
    return {p.stem: cds.poses(i) for i, p in enumerate(cds.paths)}


@torch.no_grad()
def _cpu_copy(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` itself when its tensors are on the CPU, else a CPU copy (never moves the caller's)."""
    return module if on_cpu(module) else copy.deepcopy(module).cpu()


def evaluate_clips(
    model: FastHMR,
    dataset: Dataset,
    gt: Mapping[str, Mapping[str, np.ndarray]],
    *,
    protocol: str = "3dpw14",
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    use_mask: bool = True,
    decode: bool = True,
    seed: int = 0,
    progress: bool = False,
    h36m_regressor: Any = None,
    gt_bodies: Any = None,
) -> pd.DataFrame:
    """Per-frame errors of ``model`` on the clips of a frame dataset.

    One pass of the per-frame model (head tokens, β, head θ per clip), then rows ``method="head"`` (the
    per-frame head's θ) and, when the model has a decoder and ``decode``, ``method="decoder"`` (θ from the
    one-step decoder over the clip, β from the head). Columns: clip_id, frame, method, mpjpe, pa_mpjpe, pve
    (mm), accel (mm/frame², NaN at clip ends), accel_ms2 (m/s² at 30 fps). ``h36m_regressor``: path or
    (17, V) array for ``protocol="wham_3dpw14"`` (default: ``FASTHMR_H36M_REGRESSOR``). ``gt_bodies``
    (:class:`~fasthmr_lib.body.smpl.GenderedBodies`): pose each clip's GT with its ``gender``'s model (``gt``
    entries from :func:`clip_ground_truth` carry it), as WHAM does for 3DPW / EMDB."""
    from ..diffusion.training import extract_head_tokens
    from .metrics import evaluate_poses

    tok = extract_head_tokens(
        model, dataset, batch_size=batch_size, device=device, use_mask=use_mask,
        keep=("betas", "rotmat"), progress=progress,
    )  # fmt: skip
    missing = sorted(set(tok) - set(gt))
    if missing:
        raise KeyError(f"evaluate_clips: no ground truth for clips {missing[:5]}")
    g = {
        c: {"pose": gt[c]["pose"][v["frames"]], "betas": gt[c]["betas"][v["frames"]]} for c, v in tok.items()
    }
    body = _cpu_copy(model.smpl)
    head = {c: {"rotmat": torch.as_tensor(v["rotmat"]), "betas": v["betas"]} for c, v in tok.items()}
    kw: dict[str, Any] = {"protocol": protocol, "h36m_regressor": h36m_regressor}
    if gt_bodies is not None:
        # one CPU body per gender (nn.Module.cpu() moves in place: the caller's models stay where they are)
        genders = {c: str(gt[c].get("gender", "neutral")) for c in tok}
        cpu = {g: _cpu_copy(gt_bodies.get(g)[0]) for g in set(genders.values())}
        kw["gt_smpl"] = {c: cpu[g] for c, g in genders.items()}
    out = [evaluate_poses(body, head, g, method="head", **kw)]
    if decode and model.decoder is not None:
        dec = {
            c: {
                "rotmat": model.decode(
                    torch.as_tensor(v["tokens"]),
                    torch.as_tensor(v["betas"]),
                    seed=seed,
                    rotmat=torch.as_tensor(v["rotmat"]),
                )["rotmat"],  # fmt: skip
                "betas": v["betas"],
            }
            for c, v in tok.items()
        }
        out.append(evaluate_poses(body, dec, g, method="decoder", **kw))
    return pd.concat(out, ignore_index=True)


def summarize(frames: pd.DataFrame, by: Sequence[str] = ("variant", "method")) -> pd.DataFrame:
    """Mean metrics per group (Accel over clip-interior frames), with the frame count."""
    g = frames.groupby(list(by), sort=False)
    s = g[list(METRICS)].mean()
    s["frames"] = g.size()
    return s.reset_index()


def time_variants(
    variants: Mapping[str, FastHMR],
    batch: int = 8,
    *,
    warmup: int = 1,
    repeats: int = 3,
    device: str | torch.device = "cpu",
    decoder: Any = None,
) -> pd.DataFrame:
    """Throughput of the per-frame models (random crops + a synthetic centred person mask, interleaved) and,
    with ``decoder``, of one decoder window; per variant ``images_per_s`` (head) and
    ``images_per_s_decoder`` = B / (t_model + B · t_window / F) (the decoder amortised over its window)."""
    img = torch.randn(batch, 3, 256, 256, device=device)
    mask = P.synthetic_person_mask(batch).to(device)
    calls = [(k, (lambda m=m: m(img, person_mask=mask))) for k, m in variants.items()]
    F = None
    if decoder is not None:
        F = decoder.num_frames
        tok, betas = torch.randn(F, decoder.token_dim), torch.zeros(F, 10)
        rot = (
            torch.eye(3).expand(F, 24, 3, 3) if decoder.pose_dims else None
        )  # the head's pose, if it is read
        calls.append(("__decoder__", lambda: decoder(tok, betas, rotmat=rot)))
    res = {
        t.name: t for t in P.time_side_by_side(calls, batch, warmup=warmup, repeats=repeats, device=device)
    }
    rows = []
    dec_frame = res["__decoder__"].median_s / F if F else None
    for k in variants:
        t = res[k]
        row = {"variant": k, "batch": batch, "images_per_s": t.images_per_s, "latency_ms": 1000 * t.median_s,
               "peak_mem_mb": t.peak_mem_mb, "mem_kind": t.mem_kind, "threads": t.threads}  # fmt: skip
        if dec_frame is not None:
            row["decoder_frames_per_s"] = 1.0 / dec_frame
            row["images_per_s_decoder"] = batch / (t.median_s + batch * dec_frame)
        rows.append(row)
    return pd.DataFrame(rows)


def mask_tome_for(n_l: int, m_prime: int, num_tokens: int = 192, **kw: Any) -> Any:
    """The paper's schedule for (n_l, M′): merge n_l tokens in each of the first l = ⌈(N − M′) / n_l⌉ blocks,
    the last one fewer, down to M′ (paper: n_l = 40, M′ = 90 → l = 3, 192 → 152 → 112 → 90)."""
    from ..merging import patch

    if not 0 < m_prime < num_tokens or n_l < 1:
        raise ValueError(f"need 0 < M' < {num_tokens} and n_l >= 1, got M'={m_prime}, n_l={n_l}")
    layers = math.ceil((num_tokens - m_prime) / n_l)
    return patch.MaskToMeConfig(layers=layers, per_layer=n_l, min_tokens=m_prime, **kw)


def backbone_head_macs(model: FastHMR, device: str | torch.device = "cpu") -> dict[str, float]:
    """MACs per image of the backbone + head (no SMPL layer, as Table 12), both conventions, with a synthetic
    centred person mask."""
    img = torch.zeros(1, 3, 256, 256, device=device)
    mc = P.count_macs(model.hmr, img, person_mask=P.synthetic_person_mask(1).to(device))
    parts = [mc.by_component.get(k, {"all": 0.0, "linear_conv": 0.0}) for k in ("backbone", "head")]
    return {c: sum(p[c] for p in parts) for c in ("all", "linear_conv")}


def speed_accuracy_sweep(
    baseline: Any,
    windows_by_tau: Mapping[float | None, Sequence[Sequence[int]]],
    n_ls: Sequence[int],
    m_primes: Sequence[int],
    dataset: Dataset,
    gt: Mapping[str, Mapping[str, np.ndarray]],
    *,
    batch: int = 8,
    repeats: int = 2,
    device: str | torch.device = "cpu",
    protocol: str = "3dpw14",
    eval_batch: int = 32,
    rule: str = "paper",
    progress: bool = True,
) -> pd.DataFrame:
    """Every (τ, n_l, M′): FastHMR per-frame model (head only) built from ``baseline`` with the ECLM windows
    selected at τ (key ``None``: no ECLM) and Mask-ToMe (n_l, M′) → MPJPE / PA-MPJPE on ``dataset``, MACs
    per image (linear+conv) and measured images/s (all configurations timed interleaved). Also the
    unmerged baseline (τ, n_l, M′ = NaN). τ's whose windows are equal give the same model: each distinct
    (windows, n_l, M′) is built, evaluated and timed once and its numbers fill every row that names it
    (``same_as``: the label of the row measured, else empty)."""
    from tqdm.auto import tqdm

    N = baseline.cfg.vit.num_tokens
    # (label, row fields, the model's identity, windows): the baseline first
    configs: list[tuple[str, dict[str, Any], tuple[Any, ...], list[list[int]]]] = [
        ("baseline", {"tau_mm": np.nan, "n_l": np.nan, "m_prime": np.nan, "windows": "[]"}, (), [])
    ]
    for tau, ws in windows_by_tau.items():
        for n_l in n_ls:
            for m in m_primes:
                label = f"{'no ECLM' if tau is None else f'tau={tau:g}'} n_l={n_l} M'={m}"
                windows = [list(w) for w in ws]
                info = {"tau_mm": np.nan if tau is None else float(tau), "n_l": int(n_l), "m_prime": int(m),
                        "windows": str(windows)}  # fmt: skip
                configs.append((label, info, (str(sorted(windows)), int(n_l), int(m)), windows))
    measured_as: dict[tuple[Any, ...], str] = {}  # identity -> the label of the row that is measured
    models: dict[str, FastHMR] = {}
    for label, _, key, windows in configs:
        if key in measured_as:
            continue
        measured_as[key] = label
        models[label] = (
            FastHMR.from_parts(baseline) if not key
            else FastHMR.from_parts(baseline, windows, mask_tome=mask_tome_for(key[1], key[2], N), rule=rule)
        )  # fmt: skip
    measured: dict[str, dict[str, Any]] = {}
    for label, fm in tqdm(models.items(), desc="sweep (tau, n_l, M')", disable=not progress):
        s = summarize(evaluate_clips(fm, dataset, gt, protocol=protocol, batch_size=eval_batch, device=device,
                                     decode=False).assign(variant=label))  # fmt: skip
        macs = backbone_head_macs(fm, device)
        layers = fm.mask_tome.layers if fm.mask_tome else 0
        measured[label] = {"depth": fm.depth, "layers": layers,
                           "mpjpe": float(s.mpjpe.iloc[0]), "pa_mpjpe": float(s.pa_mpjpe.iloc[0]),
                           "macs_G": macs["linear_conv"] / 1e9, "macs_G_all": macs["all"] / 1e9}  # fmt: skip
    timing = time_variants(models, batch, repeats=repeats, device=device).set_index("variant")
    rows = []
    for label, info, key, _ in configs:
        src = measured_as[key]
        rows.append({"label": label, **info, **measured[src],
                     "images_per_s": float(timing.loc[src, "images_per_s"]),
                     "same_as": "" if src == label else src})  # fmt: skip
    df = pd.DataFrame(rows)
    df["speedup"] = df["images_per_s"] / float(df.loc[df.label == "baseline", "images_per_s"].iloc[0])
    return df
