"""Paper-style tables with the paper's numbers beside ours (notebook 05), and their provenance.

* :func:`load_inputs` finds the CSVs notebooks 00–04 wrote under ``results/tables`` (and their manifests),
  and reports each missing one with the notebook that writes it.
* Builders (pure DataFrame in, DataFrame out): :func:`table1`, :func:`table2`, :func:`table6`,
  :func:`table8`, :func:`table10`, :func:`table11`, :func:`table12`, :func:`decoder_ablations`;
  the paper's numbers come from :mod:`fasthmr_lib.eval.paper_tables`.
* :func:`with_manifest` gives every row its provenance (source, git hash, seed, versions, machine,
  params, manifest file); :func:`write_table` writes the CSV (all columns) and a Markdown copy (the
  long provenance columns summarised in a footnote).
* :func:`pareto_front`: the speed–accuracy front (its figures, Fig. 1 and the Pareto sweep, are in
  :mod:`fasthmr_lib.viz.speed_accuracy`).

Numbers measured on the synthetic world / this machine are not comparable with the paper's 3DPW/EMDB /
RTX 3090 numbers; the tables put them side by side and add the *relative* quantities (speed-up, error
change vs the baseline) that can be compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import repo_relative
from . import paper_tables as PT
from .markdown import MAX_MD_COLUMNS, md_header, write_table  # noqa: F401 (notebook 05 calls T.write_table)

NOTEBOOKS = {
    "00": "00_setup_and_data",
    "01": "01_baseline_hmr",
    "02": "02_eclm_layer_analysis",
    "03": "03_mask_tome",
    "04": "04_diffusion_decoder",
}
# the benchmark's Markdown copy (its CSV has ~60 columns: every MAC, parameter and component count)
BENCH_MD_COLUMNS = (
    "config", "label", "depth", "batch", "latency_ms_median", "images_per_s", "speedup", "peak_mem_mb",
    "macs_per_image.all", "params.total",
)  # fmt: skip
MANIFEST_COLUMNS = ("source", "git", "seed", "created", "machine", "versions", "params", "manifest_file")


# --------------------------------------------------------------------------------------------- inputs
@dataclass
class Input:
    """One expected result file: ``name``, the ``notebook`` prefix that writes it, its ``path`` (None if
    missing), the table (``df``), its manifest dict and manifest path (None if none was found)."""

    name: str
    notebook: str
    pattern: str
    path: Path | None = None
    df: pd.DataFrame | None = None
    manifest: dict[str, Any] | None = None
    manifest_path: Path | None = None

    @property
    def found(self) -> bool:
        return self.df is not None

    def note(self) -> str:
        nb = NOTEBOOKS.get(self.notebook, self.notebook)
        if self.found:
            return f"{self.name}: {self.path.name} ({len(self.df)} rows)"
        return (
            f"{self.name}: results/tables/{self.pattern} is missing -> run notebook {nb}.ipynb "
            f"(python -m fasthmr_lib.workbook --profile <profile> --only {self.notebook})"
        )


def expected_inputs(model_preset: str, decoder_tag: str, cost_preset: str = "hmr2") -> dict[str, tuple]:
    """name -> (notebook prefix, CSV glob, manifest glob) of what notebooks 00–04 write (their file names)."""
    p, t = model_preset, decoder_tag
    return {
        "world_stats": ("00", "00_world_stats.csv", "../00_setup_and_data.json"),
        "baseline_metrics": ("01", f"01_baseline_{p}_metrics.csv", f"01_baseline_{p}_manifest.json"),
        "baseline_cost": ("01", f"01_cost_{cost_preset}.csv", f"01_baseline_{p}_manifest.json"),
        "eclm_tau_sweep": ("02", f"02_eclm_tau_sweep_{p}.csv", f"02_eclm_{p}_manifest.json"),
        "eclm_rules": ("02", f"02_eclm_rules_{p}.csv", f"02_eclm_{p}_manifest.json"),
        "masktome_nl": ("03", "03_table10_nl_sweep.csv", "03_mask_tome_manifest.json"),
        "masktome_mask": ("03", "03_table11_mask.csv", "03_mask_tome_manifest.json"),
        "masktome_macs": ("03", "03_table12_macs.csv", "03_mask_tome_manifest.json"),
        "decoder_vs_head": ("04", f"04_decoder_vs_head_{t}.csv", f"04_diffusion_decoder_{t}_manifest.json"),
        "decoder_table3": ("04", f"04_table3_latent_{t}.csv", f"04_diffusion_decoder_{t}_manifest.json"),
        "decoder_table5": ("04", f"04_table5_objective_{t}.csv", f"04_diffusion_decoder_{t}_manifest.json"),
        "decoder_table7": (
            "04",
            f"04_table7_representation_{t}.csv",
            f"04_diffusion_decoder_{t}_manifest.json",
        ),
        "decoder_cost": ("04", f"04_cost_{t}.csv", f"04_diffusion_decoder_{t}_manifest.json"),
    }


def _first(folder: Path, pattern: str) -> Path | None:
    hits = sorted(folder.glob(pattern))
    return hits[0] if hits else None


def load_inputs(tables_dir: str | Path, spec: Mapping[str, tuple]) -> dict[str, Input]:
    """Read every CSV of ``spec`` (see :func:`expected_inputs`) that exists under ``tables_dir``, with its
    manifest JSON when one is found. Missing files give ``Input.found == False`` (never an error); an
    unreadable CSV raises ``ValueError`` naming it."""
    folder = Path(tables_dir)
    out: dict[str, Input] = {}
    for name, (nb, pattern, man_pattern) in spec.items():
        inp = Input(name, nb, pattern)
        path = _first(folder, pattern) if folder.is_dir() else None
        if path is not None:
            try:
                inp.df = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
                raise ValueError(f"{path}: not a readable CSV table ({e}); re-run notebook {nb}") from e
            inp.path = path
            mp = (
                (folder / man_pattern).resolve()
                if man_pattern.startswith("..")
                else _first(folder, man_pattern)
            )
            if mp is not None and mp.is_file():
                try:
                    inp.manifest, inp.manifest_path = json.loads(mp.read_text()), mp
                except (OSError, json.JSONDecodeError):
                    inp.manifest = None
        out[name] = inp
    return out


def inventory(inputs: Mapping[str, Input]) -> pd.DataFrame:
    """One row per expected input: name, notebook, found, file, rows, has_manifest, note."""
    return pd.DataFrame(
        [
            {
                "input": i.name,
                "notebook": NOTEBOOKS.get(i.notebook, i.notebook),
                "found": i.found,
                "file": i.path.name if i.path else i.pattern,
                "rows": len(i.df) if i.found else 0,
                "has_manifest": i.manifest is not None,
                "note": "" if i.found else i.note().split(": ", 1)[1],
            }
            for i in inputs.values()
        ]
    )


# --------------------------------------------------------------------------------------------- provenance
def _short_machine(m: Mapping[str, Any] | None) -> str:
    if not m:
        return ""
    acc = m.get("cuda") or "cpu"
    return (
        f"{m.get('processor', '?')} x{m.get('cpu_count', '?')} ({m.get('torch_threads', '?')} threads), {acc}"
    )


def manifest_columns(
    man: Mapping[str, Any] | None, source: str, manifest_file: str | Path | None = None
) -> dict:
    """Provenance columns of a row from a manifest (:func:`fasthmr_lib.io.manifest`); empty for paper rows."""
    man = man or {}
    vers = man.get("versions") or {}
    return {
        "source": source,
        "git": man.get("git", ""),
        "seed": man.get("seed"),
        "created": man.get("created", ""),
        "machine": _short_machine(man.get("machine")),
        "versions": ", ".join(
            f"{k} {v}" for k, v in vers.items() if k in ("torch", "numpy", "pandas", "smplx", "diffusers")
        ),
        "params": json.dumps(man.get("params", {}), default=str, sort_keys=True) if man else "",
        "manifest_file": str(repo_relative(str(manifest_file))) if manifest_file else "",
    }


def with_manifest(
    df: pd.DataFrame, man: Mapping[str, Any] | None, source: str, manifest_file: str | Path | None = None
) -> pd.DataFrame:
    """``df`` with the provenance columns appended (same values on every row); existing ones are kept."""
    cols = manifest_columns(man, source, manifest_file)
    out = df.copy()
    for k, v in cols.items():
        if k not in out.columns:
            out[k] = [v] * len(out)
    return out


def paper_rows(df: pd.DataFrame, table: int | str) -> pd.DataFrame:
    """Paper rows: ``source = "paper Table N"`` and empty provenance columns."""
    return with_manifest(df, None, f"paper Table {table}")


# --------------------------------------------------------------------------------------------- builders
def _rel(ours: pd.Series, base: float | None) -> pd.Series:
    return ours / base if base not in (None, 0) and base == base else pd.Series(np.nan, index=ours.index)


def table1(ours: pd.DataFrame, *, paper_models: Sequence[str] = ("HMR 2.0†", "FastHMR-HMR2.0 (M=1)",
           "CameraHMR†", "FastHMR-CameraHMR (M=1)")) -> pd.DataFrame:  # fmt: skip
    """Table 1 analog. ``ours``: rows with ``model`` (first row = our baseline), ``fps``, ``pa_mpjpe``,
    ``mpjpe``, ``pve``, ``accel`` (mm/frame²) and/or ``accel_ms2`` (m/s²) and provenance columns. Paper rows:
    ``paper_models`` on 3DPW and on EMDB, their Accel in ``accel_ms2`` (the paper's unit, m/s²).
    Added per group (ours; paper per dataset and pipeline): ``speedup`` (fps / the group's baseline fps),
    ``mpjpe_change_pct`` and ``accel_ratio`` vs the baseline."""
    metrics = ["fps", "pa_mpjpe", "mpjpe", "pve"]
    o = ours.copy()
    o.insert(1, "dataset", o.pop("dataset") if "dataset" in o else "synthetic test (ours)")
    b = o.iloc[0]
    o["speedup"] = _rel(o["fps"], b["fps"])
    o["mpjpe_change_pct"] = 100 * (_rel(o["mpjpe"], b["mpjpe"]) - 1)
    acc = "accel" if "accel" in o.columns else "accel_ms2"
    o["accel_ratio"] = _rel(o[acc], b[acc])
    rows = []
    t1 = PT.TABLE1.set_index("model")
    for ds, prefix in (("3DPW (paper)", "3dpw_"), ("EMDB (paper)", "emdb_")):
        for pair in (paper_models[:2], paper_models[2:]):
            base = t1.loc[pair[0]]
            for m in pair:
                r = t1.loc[m]
                row = {"model": m, "dataset": ds, "fps": r["fps"]}
                row.update({k: r[prefix + k] for k in metrics[1:]})
                row["accel_ms2"] = r[prefix + "accel"]
                row["speedup"] = r["fps"] / base["fps"]
                row["mpjpe_change_pct"] = 100 * (r[prefix + "mpjpe"] / base[prefix + "mpjpe"] - 1)
                row["accel_ratio"] = r[prefix + "accel"] / base[prefix + "accel"]
                rows.append(row)
    p = paper_rows(pd.DataFrame(rows), 1)
    return pd.concat([o, p], ignore_index=True)


def table2(sweep: pd.DataFrame) -> pd.DataFrame:
    """Table 2 analog from notebook 02's τ sweep (which already carries ``paper_mpjpe`` / ``paper_blocks``
    merged on τ); adds the paper rows missing there and the relative MPJPE change of ours."""
    s = sweep.copy()
    if "paper_mpjpe" not in s.columns:
        s = s.merge(PT.TABLE2, on="tau_mm", how="left")
    if "test_mpjpe" in s.columns and len(s):
        base = s.loc[s["tau_mm"].isna(), "test_mpjpe"]
        b = float(base.iloc[0]) if len(base) else float(s["test_mpjpe"].iloc[0])
        s["test_mpjpe_delta"] = s["test_mpjpe"] - b
    return s


def table6(
    bench_rows: Sequence[Mapping[str, Any]],
    mpjpe: Mapping[str, float] | None = None,
    *,
    batch: int | None = None,
) -> pd.DataFrame:
    """Table 6 analog: per-component throughput (fps), memory (MB) and MPJPE, ours (this machine, one batch
    size of :func:`fasthmr_lib.bench.benchmark` rows) beside the paper's (RTX 3090). ``mpjpe`` maps a bench
    config name (``baseline``, ``eclm``, ``eclm_masktome``, ``fasthmr``) to our measured MPJPE.
    ``ratio_to_baseline`` = fps / the baseline model's fps (ours and paper alike)."""
    timed = [r for r in bench_rows if r.get("batch") is not None]
    if not timed:
        raise ValueError("table6 needs timed benchmark rows (benchmark with BenchOptions(timing=True))")
    b = batch if batch is not None else timed[0]["batch"]
    rows = {r["config"]: r for r in timed if r["batch"] == b}
    mpjpe = dict(mpjpe or {})
    paper = PT.TABLE6.set_index("component")
    spec = [  # (our component, bench config, which fps, paper component)
        ("front end: segmenter (YOLO11n-seg)", None, "segmenter", "segmentation model"),
        ("backbone + head (baseline)", "baseline", "model", "backbone"),
        ("backbone + head + ECLM", "eclm", "model", "backbone + ECLM"),
        ("backbone + head + ECLM + Mask-ToMe", "eclm_masktome", "model", "backbone + ECLM + Mask-ToMe"),
        ("diffusion decoder (per frame)", "decoder", "decoder", "diffusion decoder"),
        ("baseline pipeline", "baseline", "pipeline", "full pipeline"),
        ("FastHMR pipeline", "fasthmr", "pipeline", "FastHMR-CameraHMR"),
    ]
    out = []
    base_fps = None
    any_row = next(iter(rows.values()))
    for comp, cfg, kind, pcomp in spec:
        r = rows.get(cfg) if cfg else any_row
        fps = mem = None
        if r is not None:
            if kind == "segmenter":
                fps = r["components_fps"].get("segmenter")
            elif kind == "model":
                c = r["components_ms_per_image"]
                fps = 1000.0 / (c["backbone"] + c["head"]) if c.get("backbone") else None
                mem = r.get("peak_mem_mb")
            elif kind == "decoder":
                fps = r["components_fps"].get("decoder")
                mem = r.get("decoder_peak_mem_mb", r.get("peak_mem_mb"))
            else:
                fps = r["pipeline"]["fps"]
                mem = r.get("peak_mem_mb")
        if cfg == "baseline" and kind == "model":
            base_fps = fps
        p = paper.loc[pcomp]
        out.append(
            {
                "component": comp,
                "fps": fps,
                "peak_mem_mb": mem,
                "mpjpe": mpjpe.get(cfg) if kind in ("model", "pipeline") else None,
                "paper_component": f"{p['pipeline']}: {pcomp}",
                "paper_fps": p["fps"],
                "paper_memory_mb": p["memory_mb"],
                "paper_mpjpe": p["mpjpe"],
                "batch": b,
                "present": fps is not None,
            }
        )
    df = pd.DataFrame(out)
    df["ratio_to_baseline"] = df["fps"].astype(float) / base_fps if base_fps else np.nan
    df["paper_ratio_to_baseline"] = df["paper_fps"] / paper.loc["backbone", "fps"]
    return df


def table12(bench_rows: Sequence[Mapping[str, Any]], preset: str) -> pd.DataFrame:
    """Table 12 analog: params (M) and MACs (G, linear+conv = the paper's convention, and all ops) of each
    configuration (one row per config; the decoder's MACs per frame and per window), beside the paper's row
    for the same configuration of HMR2.0 (``camerahmr`` preset: CameraHMR)."""
    pm = "CameraHMR" if preset == "camerahmr" else "HMR2.0"
    paper = PT.TABLE12
    seen, out = set(), []
    for r in bench_rows:
        if r["config"] in seen:
            continue
        seen.add(r["config"])
        p = paper[(paper.config == r["config"]) & (paper.model.isin([pm, "diffusion decoder"]))]
        if r["config"] == "fasthmr":
            p = paper[(paper.config == "eclm_masktome") & (paper.model == pm)]
        macs = r["macs_per_image"]
        row = {
            "config": r["config"],
            "label": r.get("label", r["config"]),
            "preset": preset,
            "depth": r.get("depth"),
            "params_M": r["params"]["total"] / 1e6,
            "macs_G_linear_conv": macs["linear_conv"] / 1e9,
            "macs_G_all": macs["all"] / 1e9,
            "tokens_last_block": (r.get("tokens_per_block") or [None])[-1],
        }
        if r.get("decoder_macs_per_frame"):
            row["decoder_macs_G_per_frame"] = r["decoder_macs_per_frame"]["linear_conv"] / 1e9
            row["decoder_macs_G_per_window"] = r["decoder_macs_per_window"]["linear_conv"] / 1e9
            row["decoder_params_M"] = r["decoder_params"]["total"] / 1e6
        row["paper_model"] = p["model"].iloc[0] if len(p) else None
        row["paper_params_M"] = p["params_M"].iloc[0] if len(p) else np.nan
        row["paper_macs_G"] = p["macs_G"].iloc[0] if len(p) else np.nan
        out.append(row)
    df = pd.DataFrame(out)
    base = df.loc[df.config == "baseline", "macs_G_linear_conv"]
    if len(base):
        df["macs_reduction"] = float(base.iloc[0]) / df["macs_G_linear_conv"].replace(0, np.nan)
    pb = PT.TABLE12[(PT.TABLE12.model == pm) & (PT.TABLE12.config == "baseline")]["macs_G"].iloc[0]
    df["paper_macs_reduction"] = (pb / df["paper_macs_G"]).where(df["config"] != "decoder")
    return df


def table8(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 8 analog: the decoder on merged vs unmerged features. ``summary`` rows with ``variant`` and
    ``method`` ("decoder") and ``mpjpe``; variants ``baseline`` (w/o merging) and ``eclm_masktome``."""
    d = summary[summary["method"] == "decoder"].set_index("variant")
    pick = [("w/ merging (ECLM + Mask-ToMe)", "eclm_masktome"), ("w/o merging", "baseline")]
    rows = []
    for label, v in pick:
        p = PT.TABLE8.set_index("method").loc[label]
        rows.append(
            {
                "method": label,
                "mpjpe": float(d.loc[v, "mpjpe"]) if v in d.index else np.nan,
                "pa_mpjpe": float(d.loc[v, "pa_mpjpe"]) if v in d.index else np.nan,
                "paper_mpjpe_3dpw": p["mpjpe_3dpw"],
                "paper_mpjpe_emdb": p["mpjpe_emdb"],
            }
        )
    return pd.DataFrame(rows)


def table10(sweep: pd.DataFrame, base_mpjpe: float | None = None) -> pd.DataFrame:
    """Table 10 analog: MPJPE vs tokens merged per layer n_l (M' fixed). ``sweep`` rows with ``n_l`` and
    ``mpjpe`` (one M' and τ); ``base_mpjpe`` = the unmerged model (the table's "Baseline" row)."""
    s = sweep[["n_l", "mpjpe"]].copy()
    if base_mpjpe is not None:
        s = pd.concat([pd.DataFrame({"n_l": [np.nan], "mpjpe": [base_mpjpe]}), s], ignore_index=True)
    paper = PT.TABLE10.rename(columns={"mpjpe_3dpw": "paper_mpjpe_3dpw", "mpjpe_emdb": "paper_mpjpe_emdb"})
    s = s.merge(paper,
                on="n_l", how="outer").sort_values("n_l", na_position="first")  # fmt: skip
    return s.reset_index(drop=True)


def table10_inputs_from_03(df: pd.DataFrame) -> tuple[pd.DataFrame, float | None]:
    """Notebook 03's n_l sweep (columns ``setting``, ``n_l``, ``mask``, ``MPJPE``) -> (rows ``n_l``,
    ``mpjpe`` of the masked settings, the ``baseline`` setting's MPJPE) for :func:`table10`."""
    err = "MPJPE" if "MPJPE" in df.columns else "mpjpe"
    if err not in df.columns or "n_l" not in df.columns:
        raise ValueError(f"notebook 03 n_l table: expected columns n_l and MPJPE, got {list(df.columns)}")
    masked = (
        df["mask"].astype(str).str.lower().isin(["true", "1", "1.0"])
        if "mask" in df.columns
        else df.n_l.notna()
    )
    rows = df[masked & df["n_l"].notna()][["n_l", err]].rename(columns={err: "mpjpe"})
    base = df.loc[df.get("setting", pd.Series(dtype=str)).astype(str) == "baseline", err]
    return rows.astype(float).reset_index(drop=True), (float(base.iloc[0]) if len(base) else None)


def table11(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 11 analog: with / without the person mask (plain ToMe), each ± decoder. ``summary`` rows with
    ``variant`` in {``eclm_tome_nomask``, ``eclm_masktome``}, ``method`` in {``head``, ``decoder``},
    and metrics."""
    s = summary.set_index(["variant", "method"])
    rows = []
    for _, p in PT.TABLE11.iterrows():
        key = ("eclm_masktome" if p["mask"] else "eclm_tome_nomask", "decoder" if p["decoder"] else "head")
        have = key in s.index
        rows.append(
            {
                "label": p["label"],
                "mask": bool(p["mask"]),
                "decoder": bool(p["decoder"]),
                "pa_mpjpe": float(s.loc[key, "pa_mpjpe"]) if have else np.nan,
                "mpjpe": float(s.loc[key, "mpjpe"]) if have else np.nan,
                "pve": float(s.loc[key, "pve"]) if have else np.nan,
                "paper_pa_mpjpe": p["pa_mpjpe"],
                "paper_mpjpe": p["mpjpe"],
                "paper_mve": p["mve"],
            }
        )
    return pd.DataFrame(rows)


#: CPU levers (issue "beyond the paper on CPU"): (label, bench config with the lever, bench config
#: without it, evaluated variant with it, variant without it). Speed: images/s ratio with / without;
#: output deviation: the bench row's ``lever_deviation`` on the bench preset (random weights); ΔMPJPE:
#: with − without on the evaluated model (head and decoder).
CPU_LEVERS = (
    ("PyTorch SDPA (vs HMR 2.0's explicit attention)", "baseline", "baseline_math", "eclm_masktome",
     "fasthmr_math_attn"),
    ("int8 backbone, all linears", "int8", "baseline", "fasthmr_cpu_all", "eclm_masktome"),
    ("int8 backbone, MLP linears (shipped)", "int8_mlp", "baseline", "fasthmr_cpu", "eclm_masktome"),
    ("FastHMR (ECLM + Mask-ToMe + decoder)", "fasthmr", "baseline", None, None),
    ("fasthmr_cpu = FastHMR + int8 MLPs", "fasthmr_cpu", "baseline", "fasthmr_cpu", "eclm_masktome"),
)  # fmt: skip


def cpu_lever_table(bench_rows: Sequence[Mapping[str, Any]], summary: pd.DataFrame) -> pd.DataFrame:
    """One row per CPU lever (:data:`CPU_LEVERS`): ``speed_ratio`` (images/s with / without, measured
    side by side in one bench run, at its first batch size), ``batch``, the output deviation of the lever
    on the bench preset (``head_token_rel_rms``, ``rotmat_max_abs``) and the MPJPE change it causes on
    the evaluated model (``d_mpjpe_head_mm``, ``d_mpjpe_decoder_mm``; NaN where not evaluated).
    ``bench_rows``: :func:`fasthmr_lib.bench.benchmark` rows; ``summary``: rows variant, method, mpjpe."""
    timed = [r for r in bench_rows if r.get("images_per_s")]
    batch = timed[0]["batch"] if timed else None
    speed = {r["config"]: r for r in timed if r["batch"] == batch}
    s = summary.set_index(["variant", "method"])["mpjpe"] if len(summary) else pd.Series(dtype=float)

    def d_mpjpe(on: str | None, off: str | None, method: str) -> float:
        if on is None or (on, method) not in s.index or (off, method) not in s.index:
            return np.nan
        return float(s[(on, method)] - s[(off, method)])

    rows = []
    for label, b_on, b_off, v_on, v_off in CPU_LEVERS:
        if b_on not in speed or b_off not in speed:
            continue
        dev = speed[b_on].get("lever_deviation") or speed[b_off].get("lever_deviation") or {}
        rows.append({
            "lever": label, "bench": f"{b_on} / {b_off}", "batch": batch,
            "speed_ratio": speed[b_on]["images_per_s"] / speed[b_off]["images_per_s"],
            "head_token_rel_rms": dev.get("head_token_rel_rms", np.nan),
            "rotmat_max_abs": dev.get("rotmat_max_abs", np.nan),
            "d_mpjpe_head_mm": d_mpjpe(v_on, v_off, "head"),
            "d_mpjpe_decoder_mm": d_mpjpe(v_on, v_off, "decoder"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _seed_spread(row: pd.Series, metric: str) -> dict[str, float]:
    """``ours_std`` / ``n_seeds`` of a row of notebook 04's seeded tables (NaN for one-seed tables)."""
    return {"ours_std": row.get(f"{metric}_std", np.nan), "n_seeds": row.get("n_seeds", np.nan)}


def decoder_ablations(inputs: Mapping[str, Input]) -> pd.DataFrame:
    """One long table of notebook 04's decoder ablations (Tables 3, 5, 7 analogs and the head-vs-decoder
    comparison) with the paper's numbers: columns table, setting, metric, ours (the mean over seeds for the
    seeded ablations), paper, ours_std and n_seeds (NaN where 04 ran one seed) + provenance."""
    spec = [  # (input, paper table, setting column, {our metric: paper column in 04's CSV})
        ("decoder_vs_head", "Table 1 head vs decoder (paper: HMR 2.0, 3DPW)", "method",
         {"mpjpe": "paper_mpjpe", "pa_mpjpe": "paper_pa_mpjpe", "pve": "paper_pve", "accel": None,
          "accel_ms2": "paper_accel"}),  # the paper's Accel is m/s²
        ("decoder_table3", "Table 3", "latent", {"recon_mpjpe": None}),
        ("decoder_table5", "Table 5", "objective", {"pa_mpjpe": "paper_pa_mpjpe", "mpjpe": "paper_mpjpe"}),
        ("decoder_table7", "Table 7", "representation",
         {"pa_mpjpe": "paper_pa_mpjpe", "mpjpe": "paper_mpjpe", "pve": "paper_mve"}),
    ]  # fmt: skip
    parts = []
    for name, tab, key, metrics in spec:
        inp = inputs.get(name)
        if inp is None or not inp.found:
            continue
        df, rows = inp.df, []
        if name == "decoder_table3":  # 04 stacks our rows and the paper's (column "source")
            paper = PT.TABLE3.set_index("latent")["recon_mpjpe"]
            ours = df[~df.get("source", pd.Series("", index=df.index)).astype(str).str.startswith("paper")]
            for _, r in ours.iterrows():
                rows.append({"setting": r[key], "metric": "recon_mpjpe", "ours": r["recon_mpjpe"],
                             "paper": paper.get(str(r[key]), np.nan),
                             **_seed_spread(r, "recon_mpjpe")})  # fmt: skip
            for lat, v in paper.items():
                rows.append(
                    {"setting": f"{lat} (paper)", "metric": "recon_mpjpe", "ours": np.nan, "paper": v}
                )
        else:
            for _, r in df.iterrows():
                for m, pc in metrics.items():
                    if m in df.columns:
                        rows.append({"setting": r[key], "metric": m, "ours": r[m], "paper": r.get(pc, np.nan),
                                     **_seed_spread(r, m)})  # fmt: skip
        part = pd.DataFrame(rows)
        part.insert(0, "table", tab)
        parts.append(with_manifest(part, inp.manifest, f"notebook 04 ({inp.path.name})", inp.manifest_path))
    if not parts:
        return pd.DataFrame(
            columns=["table", "setting", "metric", "ours", "paper", "ours_std", "n_seeds", *MANIFEST_COLUMNS]
        )
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------ speed vs accuracy
def pareto_front(df: pd.DataFrame, speed: str = "images_per_s", error: str = "mpjpe") -> pd.Series:
    """Boolean mask of the rows no other row dominates (at least as fast **and** at most as wrong, one of
    them strictly). Rows with NaN in either column are never on the front."""
    s, e = df[speed].to_numpy(float), df[error].to_numpy(float)
    ok = ~(np.isnan(s) | np.isnan(e))
    front = np.zeros(len(df), bool)
    for i in np.flatnonzero(ok):
        dom = ok & (s >= s[i]) & (e <= e[i]) & ((s > s[i]) | (e < e[i]))
        front[i] = not dom.any()
    return pd.Series(front, index=df.index, name="pareto")
