"""Linear probe of the facing direction: do a model's features encode which way the person faces?

A diagnostic for the baseline's known limitation (README): if a ridge regression from the head token
(or the mean backbone token) to the body's yaw predicts held-out clips well while the model's own output
does not, the head fails to read what the backbone sees; if the probe is at chance too, the features
do not carry the facing direction. Fit on one split and evaluate on another with disjoint clips:
frames of one clip share person, camera and facing, so a frame-level split measures memorisation.

Yaw: the azimuth of the body's forward axis (SMPL faces +z at rest, so the third column of the global
rotation) about the camera's vertical axis, ``atan2(f_x, f_z)`` in the camera frame (y down).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import roma
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ..body.orientation import yaw_of

__all__ = ["angle_diff_deg", "collect_features", "facing_probe", "ridge_yaw", "yaw_of"]


def angle_diff_deg(a: Tensor, b: Tensor) -> Tensor:
    """Absolute difference of two angles (radians, any shape) in degrees, 0..180."""
    return torch.rad2deg(torch.remainder(a - b + torch.pi, 2 * torch.pi) - torch.pi).abs()


def ridge_yaw(x_fit: Tensor, yaw_fit: Tensor, x_eval: Tensor, lam: float = 100.0) -> Tensor:
    """Ridge regression of (cos, sin) of the yaw on standardised features; returns the yaw predicted for
    ``x_eval``. x_fit (N, D), yaw_fit (N,) radians, x_eval (M, D) -> (M,) radians."""
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6

    def design(x: Tensor) -> Tensor:
        return torch.cat([(x - mu) / sd, torch.ones(len(x), 1, dtype=x.dtype)], 1)

    a = design(x_fit.double())
    target = torch.stack([torch.cos(yaw_fit), torch.sin(yaw_fit)], 1).double()
    w = torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1], dtype=a.dtype), a.T @ target)
    p = design(x_eval.double()) @ w
    return torch.atan2(p[:, 1], p[:, 0]).to(x_eval.dtype)


@torch.no_grad()
def collect_features(
    model: nn.Module, dataset: Dataset, n: int, *, batch: int = 32, seed: int = 0, device: str = "cpu",
    desc: str = "features",
) -> dict[str, Tensor]:  # fmt: skip
    """Run an HMR model on ``n`` seeded random crops of ``dataset`` (all if ``n`` <= 0 or larger), in
    dataset order.

    Returns ``head_token`` (n, D), ``mean_token`` (n, C) (backbone tokens averaged), ``yaw_gt`` and
    ``yaw_pred`` (n,) radians."""
    idx = np.random.default_rng(seed).permutation(len(dataset))
    # the seeded random set, visited in dataset order: a CropDataset decodes a clip once per run of its
    # items, so random order decoded a whole clip per crop (notebook 01's probe cell: 145 s); the ridge
    # fit and the summaries do not depend on the order
    idx = np.sort(idx[:n] if 0 < n < len(idx) else idx)
    out: dict[str, list[Tensor]] = {"head_token": [], "mean_token": [], "yaw_gt": [], "yaw_pred": []}
    # the backbone's final tokens (output of ``last_norm``), caught during the one forward pass
    hook = model.backbone.last_norm.register_forward_hook(
        lambda _m, _i, tokens: out["mean_token"].append(tokens.float().mean(1).cpu())
    )
    was_training = model.training
    model.eval()
    try:
        for b in tqdm(DataLoader(Subset(dataset, idx.tolist()), batch_size=batch), desc=desc):
            pred = model(b["img"].to(device))
            out["head_token"].append(pred["head_token"].float().cpu())
            out["yaw_gt"].append(yaw_of(roma.rotvec_to_rotmat(b["global_orient"].float())))
            out["yaw_pred"].append(yaw_of(pred["rotmat"][:, 0].float().cpu()))
    finally:
        hook.remove()
        model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def _row(name: str, err: Tensor) -> dict:
    mod180 = torch.minimum(err, 180 - err)
    over = float(100 * (err > 90).double().mean())
    return {"predictor": name, "median_deg": float(err.median()), "pct_over_90deg": over,
            "median_mod180_deg": float(mod180.median()), "frames": len(err)}  # fmt: skip


def facing_probe(fit: dict[str, Tensor], held_out: dict[str, Tensor], lam: float = 100.0) -> pd.DataFrame:
    """Yaw error on ``held_out`` (a :func:`collect_features` dict) of: the model's own output, ridge probes
    fitted on ``fit`` from the head token and from the mean backbone token, and the constant circular
    mean of the fitted yaws. ``median_mod180_deg`` ignores front/back (45° is chance). Degrees."""
    gt = held_out["yaw_gt"]
    const = torch.atan2(torch.sin(fit["yaw_gt"]).mean(), torch.cos(fit["yaw_gt"]).mean()).expand_as(gt)
    rows = [_row("model output", angle_diff_deg(held_out["yaw_pred"], gt))]
    for key, name in (("head_token", "probe: head token"), ("mean_token", "probe: mean backbone token")):
        rows.append(_row(name, angle_diff_deg(ridge_yaw(fit[key], fit["yaw_gt"], held_out[key], lam), gt)))
    rows.append(_row("constant (mean yaw)", angle_diff_deg(const, gt)))
    return pd.DataFrame(rows)
