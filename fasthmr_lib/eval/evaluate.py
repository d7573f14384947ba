"""Evaluation harness: model x dataset -> per-frame DataFrame -> per-split summary.

The same code serves the notebooks (synthetic world and real 3DPW/EMDB records), the ECLM search
(:func:`mpjpe_evaluator`) and the training script. Ground-truth joints and vertices are the body model
applied to the GT (θ, β) of each frame (not stored in the records); metrics come from
:mod:`fasthmr_lib.eval.metrics` (metres in, millimetres out).

Reference predictor: :class:`MeanPoseModel` always outputs the training-set mean pose and shape; the
baseline's acceptance criterion is "test MPJPE at most half of the mean-pose predictor's".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import roma
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..body.orientation import facing_deg_of
from ..body.smpl import GenderedBodies
from ..config import ModelConfig
from ..models.camera import CropCamera, convention_of
from ..models.losses import gt_body
from . import metrics as M
from .markdown import write_table  # noqa: F401 (notebooks call ev.write_table)
from .paper_tables import PAPER_BASELINES

METRIC_COLUMNS = ("mpjpe", "pa_mpjpe", "pve", "accel", "accel_ms2")


# --------------------------------------------------------------------------- helpers
def person_token_count(person_mask: Tensor, coverage: float = 0.5, patch: int = 16, pad: int = 2) -> Tensor:
    """Number of backbone tokens whose patch is at least ``coverage`` covered by the person mask.

    person_mask: (B, 256, 256) crop-aligned; the backbone sees columns 32:-32 (256x192) through a
    k16/s16/pad2 patch convolution -> a 16x12 grid. Returns (B,) int64.
    """
    m = person_mask.float()[:, None, :, 32:-32]
    m = F.pad(m, (pad, pad, pad, pad))
    frac = F.avg_pool2d(m, patch, patch)  # floor((H + 2p - 16) / 16) + 1 cells like the conv
    return (frac >= coverage).flatten(1).sum(1)


def _pred_joints(out: dict[str, Any], smpl: nn.Module, protocol: M.Protocol) -> Tensor | None:
    if protocol.from_mesh:  # joints regressed from out["vertices"] by the protocol
        return None
    if protocol.select_from_44 is not None:
        return out["joints3d"].float()
    if "joints24" in out:
        return out["joints24"].float()
    rot = out["rotmat"].float()
    return smpl(rot[:, :1], rot[:, 1:], out["betas"].float())["joints24"]


def get_smpl(model: nn.Module, smpl: nn.Module | None) -> nn.Module:
    if smpl is not None:
        return smpl
    s = getattr(model, "smpl", None)
    if s is None:
        raise ValueError("evaluate: the model has no .smpl body model; pass smpl=...")
    return s


_CAMERA_KEYS = ("crop_center", "crop_scale", "img_size", "focal")


def box_conditioned(model: nn.Module) -> bool:
    """Whether ``model`` follows CameraHMR's camera convention (:func:`~..models.camera.convention_of`)."""
    cfg = getattr(model, "cfg", None)
    return isinstance(cfg, ModelConfig) and convention_of(cfg) == "camerahmr"


def crop_camera_of(model: nn.Module, batch: dict[str, Any]) -> CropCamera | None:
    """The :class:`~..models.camera.CropCamera` a CameraHMR-convention ``model`` runs a batch with: from
    the items' ``crop_center``, ``crop_scale``, ``img_size`` and ``focal`` (CropDataset items: full-image
    ``cam_t``, 2D joints with K), else from their ``bbox_info`` (focal-length units); ``None`` for an
    HMR2.0-convention model."""
    if not box_conditioned(model):
        return None
    if all(k in batch for k in _CAMERA_KEYS):
        return CropCamera(*(batch[k].float() for k in _CAMERA_KEYS))
    if "bbox_info" in batch:
        return CropCamera.from_bbox_info(batch["bbox_info"].float())
    raise ValueError(
        "evaluate: a box-conditioned (camerahmr) model needs 'crop_center', 'crop_scale', "
        "'img_size', 'focal' (CropDataset items) or 'bbox_info' (B,3) in the items"
    )


def call_model(model: nn.Module, batch: dict[str, Any], use_mask: bool) -> dict[str, Any]:
    """``model(batch["img"], ...)`` with ``person_mask`` (when ``use_mask``) and, for a CameraHMR-convention
    model, its camera (:func:`crop_camera_of`)."""
    kw: dict[str, Any] = {}
    if use_mask and "person_mask" in batch:
        kw["person_mask"] = batch["person_mask"]
    camera = crop_camera_of(model, batch)
    if camera is not None:
        kw["camera"] = camera
    return model(batch["img"], **kw)


def _gt_body(smpl: nn.Module, batch: dict[str, Any], gt_bodies: GenderedBodies | None) -> dict[str, Tensor]:
    """GT body of a batch: posed by ``smpl``, or with ``gt_bodies`` by each item's ``gender`` model (3DPW /
    EMDB annotations are gendered SMPL parameters; WHAM's evaluation poses them with the gendered model)."""
    genders = batch.get("gender")
    if gt_bodies is None or genders is None:
        return gt_body(smpl, batch)
    genders = [str(g) for g in genders]
    out: dict[str, Tensor] = {}
    for g in sorted(set(genders)):
        idx = torch.tensor([i for i, x in enumerate(genders) if x == g], device=batch["betas"].device)
        sub = {k: batch[k][idx] for k in ("global_orient", "body_pose", "betas")}
        body = gt_bodies.get(g)[0].to(batch["betas"].device)
        for k, v in gt_body(body, sub).items():
            out.setdefault(k, v.new_zeros((len(genders), *v.shape[1:])))[idx] = v
    return out


def _frame_errors(
    out: dict[str, Any],
    batch: dict[str, Tensor],
    smpl: nn.Module,
    protocol: M.Protocol,
    per_joint: bool,
    h36m_regressor: Tensor | None = None,
    gt_bodies: GenderedBodies | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-frame metrics of one batch + aligned protocol joints (pred, gt) for Accel."""
    gt = _gt_body(smpl, batch, gt_bodies)
    gt_j = None if protocol.joints_key is None else gt[protocol.joints_key].float()
    pj = _pred_joints(out, smpl, protocol)
    pv, gv = out["vertices"].float(), gt["vertices"].float()
    res, pa, ga = M.frame_errors(pj, gt_j, protocol, pv, gv, h36m_regressor)
    if per_joint:
        err = M.per_joint_error(pa, ga).cpu().numpy()
        for k in range(err.shape[1]):
            res[f"joint_{k:02d}"] = err[:, k]
    return res, pa.cpu().numpy(), ga.cpu().numpy()


def _accel_per_frame(df: pd.DataFrame, pred: np.ndarray, gt: np.ndarray, protocol: M.Protocol) -> np.ndarray:
    """Accel error (mm/frame²) per row, each clip's rows in frame order through :func:`M.clip_accel`
    (default protocols: frames whose two neighbours are the adjacent frames; WHAM protocols: WHAM's
    sequence rule); NaN elsewhere."""
    acc = np.full(len(df), np.nan)
    frames = df["frame"].to_numpy()
    for _, idx in df.groupby("clip_id", sort=False).indices.items():
        idx = np.asarray(idx)
        order = idx[np.argsort(frames[idx], kind="stable")]
        acc[order] = M.clip_accel(pred[order], gt[order], frames[order], protocol)
    return acc


# --------------------------------------------------------------------------- public API
@torch.no_grad()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    *,
    device: str | torch.device = "cpu",
    use_mask: bool = True,
    protocol: str = "3dpw14",
    smpl: nn.Module | None = None,
    per_joint: bool = False,
    progress: bool = True,
    total: int | None = None,
    split: str | None = None,
    h36m_regressor: str | Path | Any | None = None,
    gt_bodies: GenderedBodies | None = None,
) -> pd.DataFrame:
    """Like :func:`evaluate` over already-collated batches (dicts of tensors / lists)."""
    pr = M.get_protocol(protocol)
    dev = torch.device(device)
    was_training = model.training
    model.eval().to(dev)
    body = get_smpl(model, smpl).to(dev)
    reg = None
    if pr.from_mesh:
        reg = M.load_h36m_regressor(h36m_regressor, getattr(body, "num_vertices", None), pr.name).to(dev)
    rows: list[pd.DataFrame] = []
    preds, gts = [], []
    for batch in tqdm(batches, total=total, desc="evaluate", disable=not progress):
        b = {k: (v.to(dev) if isinstance(v, Tensor) else v) for k, v in batch.items()}
        out = call_model(model, b, use_mask)
        res, pa, ga = _frame_errors(out, b, body, pr, per_joint, reg, gt_bodies)
        n = len(res["mpjpe"])
        part: dict[str, Any] = {
            "clip_id": [str(c) for c in b["clip_id"]] if "clip_id" in b else [""] * n,
            "frame": np.asarray(torch.as_tensor(b["frame"]).cpu()) if "frame" in b else np.arange(n),
            **res,
        }
        if "rotmat" in out and "global_orient" in b:
            gt_go = roma.rotvec_to_rotmat(b["global_orient"].float())
            part["orient_deg"] = M.orientation_error(out["rotmat"][:, 0].float(), gt_go).cpu().numpy()
            part["facing_deg"] = facing_deg_of(gt_go).cpu().numpy()
            part["pred_facing_deg"] = facing_deg_of(out["rotmat"][:, 0].float()).cpu().numpy()
        if "occlusion" in b:
            part["occlusion"] = b["occlusion"].float().cpu().numpy()
        if "person_mask" in b:
            part["person_tokens"] = person_token_count(b["person_mask"]).cpu().numpy()
        if "focal_source" in b and box_conditioned(model):
            part["focal_source"] = [str(x) for x in b["focal_source"]]
        if "tokens_per_block" in out:
            part["final_tokens"] = np.full(n, int(list(out["tokens_per_block"])[-1]))
        rows.append(pd.DataFrame(part))
        preds.append(pa)
        gts.append(ga)
    model.train(was_training)
    if not rows:
        raise ValueError("evaluate: the dataset yielded no frames")
    df = pd.concat(rows, ignore_index=True)
    df["accel"] = _accel_per_frame(df, np.concatenate(preds), np.concatenate(gts), pr)
    df["accel_ms2"] = M.accel_ms2(df["accel"].to_numpy())
    if split is not None:
        df.insert(0, "split", split)
    df.attrs["protocol"] = pr.name
    return df


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    use_mask: bool = True,
    progress: bool = True,
    protocol: str = "3dpw14",
    smpl: nn.Module | None = None,
    per_joint: bool = False,
    num_workers: int = 0,
    split: str | None = None,
    h36m_regressor: str | Path | Any | None = None,
    gt_bodies: GenderedBodies | None = None,
) -> pd.DataFrame:
    """Evaluate ``model`` on every frame of ``dataset`` (CropDataset items).

    Returns one row per frame: ``split`` (``split`` or the dataset's ``split`` attribute), ``clip_id``,
    ``frame``, ``mpjpe``, ``pa_mpjpe``, ``pve`` (mm, under ``protocol``: ``3dpw14`` (default),
    ``emdb24``, ``hmr2_14``, WHAM's ``wham_3dpw14`` / ``wham_emdb24`` — see :mod:`~fasthmr_lib.eval.metrics`;
    ``wham_3dpw14`` needs ``h36m_regressor`` or ``FASTHMR_H36M_REGRESSOR``), ``accel`` (mm/frame², at the
    frames :func:`~fasthmr_lib.eval.metrics.clip_accel` defines, else NaN), ``accel_ms2`` (the same in m/s²
    at 30 fps, the paper's unit), ``orient_deg`` (geodesic error of the global orientation,
    degrees; 180 = facing the opposite way), ``facing_deg`` / ``pred_facing_deg`` (true and predicted
    signed facing angle, degrees, 0 = facing the camera, +-180 = from behind), ``occlusion``,
    ``person_tokens`` (tokens ≥ 50 % covered by the person mask), ``final_tokens`` (token-merged models
    only), ``focal_source`` (CameraHMR-convention models: where the full-image focal length came from,
    ``record_K`` for CropDataset items) and, with ``per_joint=True``, ``joint_00..`` per-joint errors in
    mm. ``person_mask`` is passed to the model when ``use_mask`` (needed by Mask-ToMe-patched models).
    ``gt_bodies`` (:class:`~fasthmr_lib.body.smpl.GenderedBodies`): pose each item's GT with its
    ``gender``'s body model (real 3DPW / EMDB records; WHAM does) instead of the model's own (neutral) one.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return evaluate_batches(
        model,
        loader,
        device=device,
        use_mask=use_mask,
        protocol=protocol,
        smpl=smpl,
        per_joint=per_joint,
        progress=progress,
        total=len(loader),
        split=split if split is not None else getattr(dataset, "split", None),
        h36m_regressor=h36m_regressor,
        gt_bodies=gt_bodies,
    )


def summarize(df: pd.DataFrame, by: str | list[str] | None = "split") -> pd.DataFrame:
    """Means per group (default: per split): mpjpe, pa_mpjpe, pve (mm, frame means), accel
    (mm/frame², mean over valid frames), accel_ms2 (m/s²), frames, clips. Without the grouping
    column(s) one row 'all'."""
    keys = [by] if isinstance(by, str) else list(by or [])
    keys = [k for k in keys if k in df.columns]
    d = df if keys else df.assign(split="all")
    keys = keys or ["split"]
    cols = [c for c in METRIC_COLUMNS if c in d.columns]
    g = d.groupby(keys, sort=False)
    out = g[cols].mean()
    out["frames"] = g.size()
    out["clips"] = g["clip_id"].nunique() if "clip_id" in d.columns else np.nan
    return out.reset_index()


def per_clip(df: pd.DataFrame) -> pd.DataFrame:
    """Per-clip means (mpjpe, pa_mpjpe, pve, accel, occlusion)."""
    cols = [c for c in (*METRIC_COLUMNS, "occlusion") if c in df.columns]
    keys = [k for k in ("split", "clip_id") if k in df.columns]
    return df.groupby(keys, sort=False)[cols].mean().reset_index()


def mpjpe_evaluator(
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    use_mask: bool = True,
    protocol: str = "3dpw14",
    progress: bool = False,
    max_frames: int | None = None,
    h36m_regressor: str | Path | Any | None = None,
) -> Callable[[nn.Module], float]:
    """For ECLM: a callable ``f(model) -> mean MPJPE (mm)`` over ``dataset`` (first ``max_frames``).

    The crops are computed once (on the first call) and reused by every later call."""
    cache: list[dict[str, Any]] = []

    def _batches() -> list[dict[str, Any]]:
        if not cache:
            ds: Dataset = dataset
            if max_frames is not None:
                ds = torch.utils.data.Subset(dataset, range(min(max_frames, len(dataset))))  # type: ignore[arg-type]
            cache.extend(DataLoader(ds, batch_size=batch_size, shuffle=False))
        return cache

    def f(model: nn.Module) -> float:
        df = evaluate_batches(
            model, _batches(), device=device, use_mask=use_mask, protocol=protocol, progress=progress,
            h36m_regressor=h36m_regressor,
        )  # fmt: skip
        return float(df["mpjpe"].mean())

    return f


# --------------------------------------------------------------------------- mean-pose reference
def mean_smpl_params(global_orient: Tensor, body_pose: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
    """Mean pose and shape of a set of frames: per-joint chordal L2 mean rotation (projection of the
    mean rotation matrix onto SO(3)) and the arithmetic mean of betas.

    global_orient (N,3), body_pose (N,69) axis-angle; betas (N,10). Returns rotmat (24,3,3), betas (10,)."""
    pose = torch.cat([global_orient, body_pose], -1).double().view(-1, 24, 3)
    R = roma.rotvec_to_rotmat(pose).mean(0)
    return roma.special_procrustes(R).float(), betas.double().mean(0).float()


class MeanPoseModel(nn.Module):
    """Reference predictor that ignores the image and outputs fixed SMPL parameters (the training
    mean pose/shape). Same output keys as ``HMR`` for what the metrics use."""

    def __init__(self, smpl: nn.Module, rotmat: Tensor, betas: Tensor):
        super().__init__()
        if rotmat.shape != (24, 3, 3) or betas.shape != (10,):
            raise ValueError(
                f"MeanPoseModel: expected rotmat (24,3,3), betas (10,); got {tuple(rotmat.shape)}, "
                f"{tuple(betas.shape)}"
            )
        self.smpl = smpl
        self.register_buffer("rotmat", rotmat.float())
        self.register_buffer("betas", betas.float())

    @classmethod
    def from_labels(
        cls, smpl: nn.Module, global_orient: Tensor, body_pose: Tensor, betas: Tensor
    ) -> MeanPoseModel:
        return cls(
            smpl,
            *mean_smpl_params(
                torch.as_tensor(global_orient), torch.as_tensor(body_pose), torch.as_tensor(betas)
            ),
        )

    @classmethod
    def from_dataset(cls, smpl: nn.Module, dataset: Dataset, progress: bool = False) -> MeanPoseModel:
        """Mean over all items of a training dataset (CropDataset, or anything with labels ``global_orient``,
        ``body_pose``, ``betas``; a :class:`~fasthmr_lib.data.crop_cache.CropCache` is read directly)."""
        labels = getattr(dataset, "labels", None)
        if isinstance(labels, dict):
            return cls.from_labels(smpl, labels["global_orient"], labels["body_pose"], labels["betas"])
        go, bp, be = [], [], []
        for i in tqdm(range(len(dataset)), desc="mean pose", disable=not progress):  # type: ignore[arg-type]
            it = dataset[i]
            go.append(torch.as_tensor(it["global_orient"]))
            bp.append(torch.as_tensor(it["body_pose"]))
            be.append(torch.as_tensor(it["betas"]))
        return cls.from_labels(smpl, torch.stack(go), torch.stack(bp), torch.stack(be))

    @classmethod
    def from_clips(cls, smpl: nn.Module, root: str | Path, split: str = "train") -> MeanPoseModel:
        """Mean over every frame of the clip files ``<root>/<split>/*.npz`` (reads only the keys
        ``global_orient`` (T,3), ``body_pose`` (T,69), ``betas`` (T,10); no crops are made)."""
        files = sorted((Path(root) / split).glob("*.npz"))
        if not files:
            raise FileNotFoundError(f"MeanPoseModel.from_clips: no clip files {Path(root) / split}/*.npz")
        go, bp, be = [], [], []
        for f in files:
            with np.load(f, allow_pickle=False) as z:
                missing = [k for k in ("global_orient", "body_pose", "betas") if k not in z.files]
                if missing:
                    raise KeyError(f"{f}: clip file lacks keys {missing}")
                go.append(z["global_orient"].reshape(-1, 3))
                bp.append(z["body_pose"].reshape(-1, 69))
                be.append(z["betas"].reshape(-1, 10))
        cat = [torch.from_numpy(np.concatenate(a).astype(np.float32)) for a in (go, bp, be)]
        return cls.from_labels(smpl, *cat)

    def forward(
        self, img: Tensor, person_mask: Tensor | None = None, bbox_info: Tensor | None = None
    ) -> dict:
        B = img.shape[0]
        rot = self.rotmat.to(img.device)[None].expand(B, 24, 3, 3)
        betas = self.betas.to(img.device)[None].expand(B, 10)
        body = self.smpl(rot[:, :1], rot[:, 1:], betas)
        cam_t = torch.tensor([0.0, 0.0, 2 * 5000.0 / (256 * 0.9)], device=img.device).expand(B, 3)
        return {
            "rotmat": rot,
            "betas": betas,
            "joints3d": body["joints44"],
            "joints24": body["joints24"],
            "vertices": body["vertices"],
            "cam_t": cam_t,
            "joints2d": torch.zeros(B, 44, 2, device=img.device),
        }


# --------------------------------------------------------------------------- report helpers (tables, figures)
#: names of the 14 LSP joints of the ``3dpw14`` / ``hmr2_14`` protocols, in order
LSP14_NAMES = (
    "R ankle", "R knee", "R hip", "L hip", "L knee", "L ankle", "R wrist", "R elbow", "R shoulder",
    "L shoulder", "L elbow", "L wrist", "neck", "head",
)  # fmt: skip
SMPL24_NAMES = (
    "pelvis", "L hip", "R hip", "spine1", "L knee", "R knee", "spine2", "L ankle", "R ankle", "spine3",
    "L foot", "R foot", "neck", "L collar", "R collar", "head", "L shoulder", "R shoulder", "L elbow",
    "R elbow", "L wrist", "R wrist", "L hand", "R hand",
)  # fmt: skip


def compare_to_reference(
    summary: pd.DataFrame, reference: pd.DataFrame, names=("model", "mean pose")
) -> pd.DataFrame:
    """Both summaries side by side per split with the ratio model / reference for each metric."""
    a = summary.assign(predictor=names[0])
    b = reference.assign(predictor=names[1])
    both = pd.concat([a, b], ignore_index=True)
    cols = [c for c in METRIC_COLUMNS if c in summary.columns]
    ratio = summary.set_index("split")[cols] / reference.set_index("split")[cols]
    ratio = ratio.reset_index().assign(predictor=f"{names[0]} / {names[1]}")
    return pd.concat([both, ratio], ignore_index=True)[["predictor", "split", *cols, "frames"]]


def pick_cases(df: pd.DataFrame, n: int = 4, metric: str = "mpjpe") -> tuple[list[int], list[int]]:
    """Row positions (= dataset indices: evaluation keeps the order) of the ``n`` best and worst frames."""
    order = np.argsort(df[metric].to_numpy(), kind="stable")
    return [int(i) for i in order[:n]], [int(i) for i in order[::-1][:n]]


def per_joint_table(df: pd.DataFrame, names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean error (mm) per joint from ``evaluate(..., per_joint=True)`` columns ``joint_XX``."""
    cols = sorted(c for c in df.columns if c.startswith("joint_"))
    if not cols:
        raise ValueError("per_joint_table: no joint_XX columns; evaluate with per_joint=True")
    if names is None:
        names = LSP14_NAMES if len(cols) == 14 else SMPL24_NAMES if len(cols) == 24 else tuple(cols)
    return pd.DataFrame({"joint": list(names), "error_mm": df[cols].mean().to_numpy()})


def orientation_summary(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Global-orientation error per predictor: median / mean ``orient_deg`` (degrees) and the percentage
    of frames beyond 90° (facing more away than towards the truth). frames: name -> evaluate() DataFrame."""
    rows = []
    for name, df in frames.items():
        if "orient_deg" not in df.columns:
            raise ValueError(f"orientation_summary: {name!r} has no 'orient_deg' column (evaluate() output)")
        o = df["orient_deg"].to_numpy(float)
        rows.append({"predictor": name, "median_deg": float(np.median(o)), "mean_deg": float(o.mean()),
                     "pct_over_90deg": float(100 * (o > 90).mean()), "frames": len(o)})  # fmt: skip
    return pd.DataFrame(rows)


def facing_bins(df: pd.DataFrame, width: float = 45.0) -> pd.DataFrame:
    """Global-orientation error per bin of the true facing angle (``width`` degrees; evaluate() output with
    ``facing_deg`` / ``pred_facing_deg``): frames, ``orient_median_deg``, ``yaw_err_median_deg`` (|predicted
    - true facing|, wrapped, degrees), ``yaw_bias_deg`` (its signed mean: the direction errors lean),
    ``pct_over_90deg``, and the median |true| and |predicted| facing angle (degrees): a model that cannot
    tell front from back predicts ~90° (side-on) for people facing the camera or away from it."""
    for col in ("facing_deg", "pred_facing_deg", "orient_deg"):
        if col not in df.columns:
            raise ValueError(f"facing_bins: no {col!r} column (evaluate() output of a model with rotmat)")
    if not 0 < width <= 180 or 360 % width:
        raise ValueError(f"facing_bins: width must divide 360 and be in (0, 180], got {width}")
    d = df[["facing_deg", "pred_facing_deg", "orient_deg"]].astype(float).copy()
    d["dyaw"] = (d["pred_facing_deg"] - d["facing_deg"] + 180.0) % 360.0 - 180.0
    edges = np.arange(-180.0, 180.0 + width, width)
    d["bin"] = pd.cut(d["facing_deg"], edges, right=False)
    rows = []
    for b, g in d.groupby("bin", observed=True):
        rows.append({"true_facing_deg": f"[{b.left:.0f}, {b.right:.0f})", "frames": len(g),
                     "orient_median_deg": float(g["orient_deg"].median()),
                     "yaw_err_median_deg": float(g["dyaw"].abs().median()),
                     "yaw_bias_deg": float(g["dyaw"].mean()),
                     "pct_over_90deg": float(100 * (g["orient_deg"] > 90).mean()),
                     "true_abs_facing_median_deg": float(g["facing_deg"].abs().median()),
                     "pred_abs_facing_median_deg": float(g["pred_facing_deg"].abs().median())})  # fmt: skip
    return pd.DataFrame(rows)


def cost_table(
    preset: str = "hmr2", *, throughput: bool = True, batch: int = 1, repeats: int = 3, device: str = "cpu"
) -> pd.DataFrame:
    """Params (M, backbone + head), MACs (G, linear+conv convention = the paper's Table 12) and,
    optionally, measured throughput (images/s, random weights) of a preset, beside the paper's
    HMR 2.0 row (fps measured by the paper on an RTX 3090 — not comparable with a CPU)."""
    from . import profile as P

    meta = P.build_meta_model(preset)
    params = P.count_params(meta)["total"]
    img = torch.zeros(1, 3, 256, 256, device="meta")
    macs = P.count_macs(meta, img)
    row: dict[str, Any] = {"model": f"ours: {preset} preset (random weights)", "params_M": params / 1e6,
                           "macs_G": macs.linear_conv / 1e9, "fps": np.nan, "device": device}  # fmt: skip
    if throughput:
        model = P.build_bench_model(preset).to(device)
        x = torch.randn(batch, 3, 256, 256, device=device)
        res = P.time_side_by_side(
            [(preset, lambda: model(x))], batch, warmup=1, repeats=repeats, device=device
        )
        row["fps"] = res[0].images_per_s
        del model
    paper = PAPER_BASELINES.loc[PAPER_BASELINES["model"] == "HMR 2.0", ["model", "params_M", "macs_G", "fps"]]
    paper = paper.assign(model="paper: HMR 2.0 (Table 12; fps Table 1, RTX 3090)", device="RTX 3090")
    return pd.concat([pd.DataFrame([row]), paper], ignore_index=True)
