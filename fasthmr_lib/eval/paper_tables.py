"""The paper's numbers, in one place (FastHMR, arXiv 2510.10868v1; open points in docs/AMBIGUITIES.md).

Units: mm for errors; Accel in m/s² (Table 1 follows WHAM's evaluation, whose Accel is metres/frame² x 30²
= m/s², WHAM lib/eval/evaluate_3dpw.py; see README "Evaluation protocols"); fps on one RTX 3090, MB,
M parameters, G MACs. Every number is written once: the HMR 2.0 / CameraHMR baseline rows
(:data:`PAPER_BASELINES`) feed Tables 1 and 12
and the baseline comparison of :mod:`fasthmr_lib.eval.evaluate`; Table 2 is :data:`PAPER_TABLE2`.
Use :func:`paper_table` to get one by number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NA = np.nan

#: the paper's baseline rows (FastHMR, arXiv 2510.10868: Table 1 accuracy/fps on an RTX 3090,
#: Table 12 parameters/MACs); mm, fps, M, G
PAPER_BASELINES = pd.DataFrame(
    [
        {"model": "HMR 2.0", "params_M": 670.2, "macs_G": 122.6, "fps": 65.2, "3dpw_pa_mpjpe": 44.4,
         "3dpw_mpjpe": 69.8, "3dpw_pve": 82.2, "3dpw_accel": 18.1, "emdb_pa_mpjpe": 62.1, "emdb_mpjpe": 100.7,
         "emdb_pve": 122.8, "emdb_accel": 20.7},
        {"model": "CameraHMR", "params_M": 737.1, "macs_G": 144.0, "fps": 54.5, "3dpw_pa_mpjpe": 38.5,
         "3dpw_mpjpe": 62.1, "3dpw_pve": 72.9, "3dpw_accel": 16.8, "emdb_pa_mpjpe": 44.4, "emdb_mpjpe": 73.3,
         "emdb_pve": 85.2, "emdb_accel": 16.4},
    ]
)  # fmt: skip

#: Table 2 — ECLM alone on CameraHMR (32 blocks), MPJPE on full EMDB (mm); selection on EMDB test.
#: Columns tau_mm (NaN = baseline), paper_mpjpe, paper_blocks.
PAPER_TABLE2 = pd.DataFrame(
    {
        "tau_mm": [np.nan, 1.0, 0.5, 0.3, 0.2, 0.1],
        "paper_mpjpe": [73.3, 74.7, 73.9, 73.7, 73.6, 73.1],
        "paper_blocks": [32, 27, 26, 28, 27, 26],
    }
)

_T1_COLS = ["model", "type", "fps", "3dpw_pa_mpjpe", "3dpw_mpjpe", "3dpw_pve", "3dpw_accel",
            "emdb_pa_mpjpe", "emdb_mpjpe", "emdb_pve", "emdb_accel"]  # fmt: skip

# Table 1 (∗ trained with 3DPW train; † reproduced from released checkpoints; M = number of hypotheses).
_T1_OTHERS = [
    ("TCMR*", "det.", 7.1, 52.7, 86.5, 101.4, 6.0, 79.8, 127.7, 150.2, 5.3),
    ("MPS-Net*", "det.", 22.6, 52.1, 84.3, 99.0, 6.5, 81.4, 123.3, 143.9, 6.2),
    ("VIBE*", "det.", 34.4, 51.9, 82.9, 98.4, 18.5, 81.6, 126.1, 149.9, 26.5),
    ("GLoT*", "det.", 11.5, 50.6, 80.7, 96.4, 6.0, 79.1, 119.9, 140.8, 5.4),
    ("POTTER", "det.", 83.3, 44.8, 75.0, 87.4, NA, NA, NA, NA, NA),
    ("WHAM*", "det.", 4.6, 35.9, 57.8, 68.7, 6.6, 50.4, 79.7, 94.4, 5.3),
    ("ScoreHMR", "prob.", 23.4, 51.1, NA, NA, NA, 76.4, NA, NA, NA),
    ("HuManiFlow (M=1)", "prob.", 3.6, 53.9, 83.1, 98.6, NA, 76.4, 113.9, 133.0, NA),
    ("HMDiff* (M=25)", "prob.", NA, 44.5, 72.7, 82.4, NA, NA, NA, NA, NA),
    ("DiffMesh*", "prob.", 25.9, 40.1, 67.8, 78.4, 6.3, NA, NA, NA, NA),
    ("ScoreHypo* (M=1)", "prob.", 18.3, 44.5, 72.4, 84.6, NA, 77.9, 112.4, 131.5, NA),
    ("ScoreHypo* (M=100)", "prob.", 2.2, 37.6, 63.0, 73.4, NA, 58.5, 87.4, 99.6, NA),
    ("FastHMR-HMR2.0 (M=1)", "prob.", 150.0, 41.2, 65.8, 78.9, 5.4, 53.5, 91.9, 104.8, 3.4),
    ("FastHMR-CameraHMR (M=1)", "prob.", 103.4, 39.1, 62.2, 73.9, 5.4, 46.7, 71.6, 82.4, 3.4),
]
_baselines_t1 = PAPER_BASELINES.assign(
    model=PAPER_BASELINES["model"].map({"HMR 2.0": "HMR 2.0†", "CameraHMR": "CameraHMR†"}), type="det."
)[_T1_COLS]
TABLE1 = pd.concat(
    [
        pd.DataFrame(_T1_OTHERS[:5], columns=_T1_COLS),
        _baselines_t1,
        pd.DataFrame(_T1_OTHERS[5:], columns=_T1_COLS),
    ],
    ignore_index=True,
)

#: Table 2 (:data:`PAPER_TABLE2`, under the numbered name the other tables use).
TABLE2 = PAPER_TABLE2

#: Table 3 — VAE latent size: reconstruction error on AMASS, recovery error on 3DPW (mm).
TABLE3 = pd.DataFrame(
    {
        "latent": ["9x256", "9x512", "9x1024", "27x512"],
        "recon_mpjpe": [6.6, 4.9, 4.3, 3.6],
        "recovery_mpjpe": [63.1, 62.7, 62.3, 62.2],
    }
)

#: Table 4 — decoder training data with / without BEDLAM (FastHMR-CameraHMR, 3DPW).
TABLE4 = pd.DataFrame(
    {
        "training_data": ["w/o BEDLAM", "w/ BEDLAM"],
        "pa_mpjpe": [42.4, 39.1],
        "mpjpe": [65.5, 62.2],
        "pve": [77.9, 73.9],
    }
)

#: Table 5 — training objective of the one-step decoder (FastHMR-CameraHMR, 3DPW).
TABLE5 = pd.DataFrame(
    {"objective": ["eps", "v", "v+eps"], "pa_mpjpe": [97.0, 39.1, 39.1], "mpjpe": [181.8, 62.5, 62.2]}
)

#: Table 6 — per-component analysis (EMDB); fps, MB, mm. ``stage`` names the component kind.
TABLE6 = pd.DataFrame(
    [
        ("CameraHMR", "2D bbox detection", "front_end", 1500.0, 10.0, NA),
        ("CameraHMR", "camera intrinsics estimation", "intrinsics", 333.3, 260.0, NA),
        ("CameraHMR", "backbone", "model", 68.2, 2628.0, 73.3),
        ("CameraHMR", "full pipeline", "pipeline", 54.5, 2898.0, 73.3),
        ("FastHMR", "segmentation model", "front_end", 1000.0, 11.0, NA),
        ("FastHMR", "camera intrinsics estimation", "intrinsics", 333.3, 260.0, NA),
        ("FastHMR", "backbone + ECLM", "model", 83.3, 2165.0, 73.1),
        ("FastHMR", "backbone + ECLM + Mask-ToMe", "model", 176.5, NA, 84.0),
        ("FastHMR", "diffusion decoder", "decoder", 8211.0, 351.0, 71.6),
        ("FastHMR", "FastHMR-CameraHMR", "pipeline", 103.4, 2787.0, 71.6),
    ],
    columns=["pipeline", "component", "stage", "fps", "memory_mb", "mpjpe"],
)

#: Table 7 — pose representation of the VAE (3DPW, one step).
TABLE7 = pd.DataFrame(
    {
        "representation": ["rot6d", "hybrik"],
        "label": ["w/o HybrIK (SMPL rotations)", "w/ HybrIK"],
        "pa_mpjpe": [58.1, 37.0],
        "mpjpe": [95.1, 62.1],
        "mve": [109.2, 72.6],
    }
)

#: Table 8 — diffusion decoder with / without merging (FastHMR-CameraHMR), MPJPE.
TABLE8 = pd.DataFrame(
    {
        "method": ["w/ merging (ECLM + Mask-ToMe)", "w/o merging"],
        "mpjpe_3dpw": [62.2, 60.3],
        "mpjpe_emdb": [71.6, 72.6],
    }
)

#: Table 9 — segmenter choice (3DPW).
TABLE9 = pd.DataFrame(
    {"segmenter": ["YOLO11n-seg", "YOLO11x-seg"], "fps": [1500.0, 300.0], "mpjpe": [62.2, 61.7]}
)

#: Table 10 — tokens merged per layer n_l (M' = 90; CameraHMR, MLP head, no decoder); n_l NaN = baseline.
TABLE10 = pd.DataFrame(
    {
        "n_l": [NA, 10, 20, 40, 60, 80, 100],
        "mpjpe_3dpw": [62.1, 74.8, 74.7, 73.6, 73.1, 74.2, 80.2],
        "mpjpe_emdb": [73.3, 85.3, 85.0, 84.0, 83.8, 85.3, 93.5],
    }
)

#: Table 11 — person mask vs plain ToMe, ± decoder (EMDB, FastHMR-CameraHMR).
TABLE11 = pd.DataFrame(
    {
        "mask": [False, False, True, True],
        "decoder": [False, True, False, True],
        "label": ["w/o person mask", "+ diffusion decoder", "w/ person mask", "+ diffusion decoder"],
        "pa_mpjpe": [67.2, 51.0, 54.8, 46.7],
        "mpjpe": [98.1, 75.0, 84.0, 71.6],
        "mve": [112.9, 84.2, 96.7, 82.4],
    }
)

_t12_base = PAPER_BASELINES.set_index("model")[["params_M", "macs_G"]]
#: Table 12 — parameters (M) and MACs (G); ``config`` in the bench's naming.
TABLE12 = pd.DataFrame(
    [
        ("HMR2.0", "baseline", *_t12_base.loc["HMR 2.0"]),
        ("HMR2.0", "eclm", 591.5, 107.5),
        ("HMR2.0", "eclm_masktome", 591.5, 52.8),
        ("CameraHMR", "baseline", *_t12_base.loc["CameraHMR"]),
        ("CameraHMR", "eclm", 619.0, 121.3),
        ("CameraHMR", "eclm_masktome", 619.0, 70.7),
        ("diffusion decoder", "decoder", 29.5, 6.8),
    ],
    columns=["model", "config", "params_M", "macs_G"],
)

#: Settings the paper uses (ECLM τ, Mask-ToMe l / n_l / M', decoder window and latent).
SETTINGS = {
    "eclm_tau_mm": 0.1,
    "eclm_blocks": {"HMR2.0": 28, "CameraHMR": 26},
    "mask_tome": {"layers": 3, "per_layer": 40, "min_tokens": 90},
    "decoder": {"num_frames": 243, "latent": "27x512", "steps": 1},
    "speedup": {"HMR2.0": 150.0 / 65.2, "CameraHMR": 103.4 / 54.5},
    "gpu": "RTX 3090",
}

_TABLES = {1: TABLE1, 2: TABLE2, 3: TABLE3, 4: TABLE4, 5: TABLE5, 6: TABLE6, 7: TABLE7, 8: TABLE8,
           9: TABLE9, 10: TABLE10, 11: TABLE11, 12: TABLE12}  # fmt: skip


def paper_table(number: int) -> pd.DataFrame:
    """A copy of the paper's Table ``number`` (1–12)."""
    if number not in _TABLES:
        raise KeyError(f"paper table {number} is not stored; available: {sorted(_TABLES)}")
    return _TABLES[number].copy()


def fig1_points() -> pd.DataFrame:
    """Fig. 1 ("throughput vs MPJPE on EMDB, RTX 3090"): the Table 1 rows with both an fps and an EMDB MPJPE
    (the figure's exact points are not given in the text; docs/AMBIGUITIES.md)."""
    t = TABLE1.dropna(subset=["fps", "emdb_mpjpe"])
    return t[["model", "type", "fps", "emdb_mpjpe"]].reset_index(drop=True)


def beside_paper(
    ours: pd.DataFrame, metrics: tuple[str, ...] = ("mpjpe", "pa_mpjpe", "pve", "accel")
) -> pd.DataFrame:
    """``ours`` (rows with ``model`` in :data:`PAPER_BASELINES` -- 'HMR 2.0', 'CameraHMR' -- and ``split``
    '3dpw' or 'emdb'; metric columns in mm) with ``paper_<metric>`` columns: the paper's Table 1 value of
    that model on that dataset (NaN for other rows)."""
    base = PAPER_BASELINES.set_index("model")
    out = ours.copy()
    for m in metrics:
        out[f"paper_{m}"] = [
            base.loc[mod, f"{ds}_{m}"] if mod in base.index and f"{ds}_{m}" in base.columns else NA
            for mod, ds in zip(out["model"], out["split"])
        ]
    return out
