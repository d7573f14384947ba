"""Result tables on disk: the CSV keeps every column under its machine-readable name; the Markdown copy
is for reading (at most ten columns, units in the headers, provenance in a footnote)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..io import atomic_path, atomic_write_text

_MD_HIDDEN = ("machine", "versions", "params", "manifest_file", "created", "git", "seed")
# Markdown headers carry units; the CSV keeps the machine-readable column names.
MAX_MD_COLUMNS = 10
_METRIC_NAMES = {
    "mpjpe": "MPJPE (mm)", "pa_mpjpe": "PA-MPJPE (mm)", "pve": "PVE (mm)", "mve": "MVE (mm)",
    "accel": "Accel (mm/frame²)", "accel_ms2": "Accel (m/s²)", "fps": "fps (1/s)", "images_per_s": "images/s",
    "decoder_frames_per_s": "decoder frames/s", "images_per_s_decoder": "images/s incl. decoder",
    "latency_ms_median": "latency (ms, median)", "macs_per_image.all": "MACs/image (G)",
    "params.total": "params (M)", "mpjpe_change_pct": "MPJPE change (%)",
    "pct_over_90deg": "frames > 90° (%)", "calib_delta": "calib ΔMPJPE (mm)", "mpjpe_delta": "ΔMPJPE (mm)",
    "speed_ratio": "speed (×)", "head_token_rel_rms": "head-token deviation (rel. RMS)",
    "rotmat_max_abs": "rotation deviation (max abs)", "d_mpjpe_head_mm": "ΔMPJPE head (mm)",
    "d_mpjpe_decoder_mm": "ΔMPJPE decoder (mm)",
    "macs_G": "MACs (G)", "macs_G_all": "MACs, all ops (G)", "macs_G_linear_conv": "MACs, linear+conv (G)",
}  # fmt: skip
_DATASETS = ("3dpw", "emdb", "h36m")
# The paper's Accel (Table 1, copied from WHAM's tables) is in m/s² (WHAM: metres/frame² x 30²), so paper
# columns named ``accel`` carry that unit; ours are named ``accel`` (mm/frame²) and ``accel_ms2`` (m/s²).
_PAPER_ACCEL = "Accel (m/s²)"
_METRIC_PREFIXES = ("test_", "calib_", "paper_", "recon_", "baseline_")
_UNIT_SUFFIXES = (
    ("_mm", "mm"), ("_deg", "°"), ("deg", "°"), ("_ms", "ms"), ("_mb", "MB"), ("_M", "M"), ("_G", "G"),
    ("_pct", "%"),
)  # fmt: skip
_MD_SCALE = {"macs_per_image.all": 1e-9, "params.total": 1e-6}  # shown in G / M


def md_header(col: str) -> str:
    """Markdown header with units for a CSV column name: ``mpjpe`` -> ``MPJPE (mm)``, ``paper_accel`` ->
    ``paper Accel (m/s²)``, ``3dpw_mpjpe`` (paper Table 1) -> ``3DPW MPJPE (mm)``, ``tau_mm`` ->
    ``tau (mm)``, ``median_deg`` -> ``median (°)``, ``mpjpe_pm`` -> ``MPJPE (mm), mean ± std``; names
    without a known unit are returned unchanged."""
    if col in _METRIC_NAMES:
        return _METRIC_NAMES[col]
    for suffix, what in (("_pm", "mean ± std"), ("_std", "std")):  # seeded tables (eval.decoder_ablations)
        base = col.removesuffix(suffix)
        if base != col and md_header(base) != base:
            return f"{md_header(base)}, {what}"
    ds, _, rest = col.partition("_")
    if ds in _DATASETS and rest in _METRIC_NAMES:  # the paper's Table 1 columns: 3dpw_mpjpe, emdb_accel
        return f"{ds.upper()} {_PAPER_ACCEL if rest == 'accel' else _METRIC_NAMES[rest]}"
    for pre in _METRIC_PREFIXES:
        rest = col.removeprefix(pre)
        if rest == col:
            continue
        if rest in _METRIC_NAMES:
            return f"{pre[:-1]} {_PAPER_ACCEL if (pre, rest) == ('paper_', 'accel') else _METRIC_NAMES[rest]}"
        # paper_mpjpe_3dpw -> paper MPJPE 3DPW (mm)
        for metric in sorted(_METRIC_NAMES, key=len, reverse=True):
            if rest.startswith(metric + "_"):
                full = _PAPER_ACCEL if (pre, metric) == ("paper_", "accel") else _METRIC_NAMES[metric]
                name, unit = full.split(" (", 1)
                tail = rest[len(metric) + 1 :]
                return f"{pre[:-1]} {name} {tail.upper() if tail in _DATASETS else tail} ({unit}"
    for suffix, unit in _UNIT_SUFFIXES:
        if col.endswith(suffix) and len(col) > len(suffix):
            return f"{col[: -len(suffix)].rstrip('_').replace('_', ' ')} ({unit})"
    return col


def write_table(
    df: pd.DataFrame,
    path_stem: str | Path,
    *,
    floatfmt: str = ".2f",
    md_columns: Sequence[str] | None = None,
    max_columns: int = MAX_MD_COLUMNS,
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (every column) and ``<stem>.md`` atomically; returns both paths.

    The Markdown copy is for reading: at most ``max_columns`` columns (``md_columns`` picks them, else
    the first ones; the rest are named below the table), units in the headers (:func:`md_header`),
    and the provenance columns summarised in a footnote per ``source``."""
    stem = Path(path_stem)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    hidden = set(_MD_HIDDEN)
    candidates = [c for c in df.columns if c not in hidden]
    if md_columns is not None:
        missing = [c for c in md_columns if c not in df.columns]
        if missing:
            raise ValueError(f"write_table({stem.name}): md_columns {missing} not in the table's columns")
        candidates = list(md_columns)
    shown_cols = candidates[:max_columns]
    shown = df[shown_cols].copy()
    for c in shown_cols:
        if c in _MD_SCALE and pd.api.types.is_numeric_dtype(shown[c]):
            shown[c] = shown[c] * _MD_SCALE[c]
    shown.columns = [md_header(c) for c in shown_cols]
    text = shown.to_markdown(index=False, floatfmt=floatfmt) + "\n"
    rest = [c for c in df.columns if c not in shown_cols and c not in hidden]
    if rest:
        text += f"\nMore columns in `{csv.name}`: " + ", ".join(f"`{c}`" for c in rest) + "\n"
    if "source" in df.columns:
        notes = []
        for src, g in df.groupby("source", sort=False):
            r = g.iloc[0]
            if str(r.get("git", "")):
                notes.append(
                    f"- `{src}`: git {r.get('git')}, seed {r.get('seed')}, {r.get('created', '')}, "
                    f"{r.get('machine', '')}; {r.get('versions', '')}; "
                    f"manifest {r.get('manifest_file') or '(inline in CSV)'}"
                )
        if notes:
            text += "\nProvenance (full parameters in the CSV's `params` column):\n" + "\n".join(notes) + "\n"
    atomic_write_text(md, text)
    return csv, md
