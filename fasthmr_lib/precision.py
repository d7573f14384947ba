"""Training precision: the ``--precision`` names (fp32 / bf16 / fp16) and their autocast dtypes, shared by
the baseline loop (:mod:`fasthmr_lib.models.train`) and the decoder loop
(:mod:`fasthmr_lib.diffusion.training`)."""

from __future__ import annotations

import torch

AMP_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a ``--precision`` name (``None`` = fp32, autocast off); fp16 only on cuda."""
    if precision not in AMP_DTYPES:
        raise ValueError(f"precision must be one of {sorted(AMP_DTYPES)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a cuda device (--device cuda; use bf16 or fp32 on cpu)")
    return AMP_DTYPES[precision]
