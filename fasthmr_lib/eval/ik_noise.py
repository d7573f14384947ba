"""How the HybrIK inverse kinematics (body/hybrik.py) degrades with noisy joints, per IK method.

For random SMPL poses (uniform global orientation, body joints ~ N(0, 0.45 rad) per axis-angle
component) and shapes of the given body model, the 29 joints are perturbed with isotropic Gaussian noise
and decoded with each method; the table reports the joint error of the decoded pose against the clean
joints and the rotation errors against the clean rotations.

    python -m fasthmr_lib.eval.ik_noise            # embedded body -> results/diagnostics/hybrik_ik_noise.csv
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import roma
import torch

from ..body import hybrik as H


def random_poses(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,24,3,3) rotations and (n,10) betas ~ N(0, 0.5²)."""
    g = torch.Generator().manual_seed(seed)
    rv = torch.randn(n, 24, 3, generator=g) * 0.45
    rv[:, 0] = roma.random_rotvec(n, generator=g)
    return roma.rotvec_to_rotmat(rv), 0.5 * torch.randn(n, 10, generator=g)


def ik_noise_table(
    hb: H.HybrIKBody, n: int = 2000, noises_m: Sequence[float] = (0.005, 0.01, 0.02), seed: int = 0
) -> pd.DataFrame:
    """One row per (noise, method): joint error (mm), mean / spine3 geodesic rotation error (deg)."""
    R, betas = random_poses(n, seed)
    j, cs = H.split_features(hb.encode(R, betas))
    rest = hb.rest_joints(betas)
    rows = []
    for noise in noises_m:
        g = torch.Generator().manual_seed(seed + 1)
        jn = j + noise * torch.randn(j.shape, generator=g)
        for method in H.IK_METHODS:
            Rn = H.inverse_kinematics(jn, cs, rest, method=method)
            jf = hb.joints(Rn, betas)
            geo = torch.rad2deg(roma.rotmat_geodesic_distance(Rn, R))  # (n, 24)
            rows.append({
                "noise_mm": 1000 * noise, "method": method,
                "joint_error_mm": 1000 * (jf - jf[:, :1] - j).norm(dim=-1).mean().item(),
                "rotation_error_deg": geo.mean().item(), "spine3_error_deg": geo[:, H.SPINE3].mean().item(),
                "worst_joint_error_deg": geo.mean(0).max().item(), "poses": n,
            })  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    from ..body.smpl import load_body_model
    from ..io import manifest, write_json
    from ..paths import results_dir
    from .markdown import write_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=results_dir() / "diagnostics" / "hybrik_ik_noise")
    args = ap.parse_args(argv)
    df = ik_noise_table(H.HybrIKBody.from_smpl(load_body_model()), args.n, seed=args.seed)
    write_table(df, args.out, floatfmt=".2f")
    write_json(args.out.with_name(args.out.name + "_manifest.json"), manifest(vars(args), args.seed))
    print(df.to_string(index=False))
    return df


if __name__ == "__main__":
    main()
