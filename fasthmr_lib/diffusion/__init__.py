"""The one-step latent diffusion decoder (paper §3.3): VAE, denoiser, schedule, decoder, training.

``bench_decoder(batch, device)`` is the hook :mod:`fasthmr_lib.bench` looks for (see :mod:`.cost`);
imported lazily so that ``import fasthmr_lib.diffusion`` stays cheap.
"""

from __future__ import annotations

from typing import Any


def bench_decoder(batch: int, device: Any = "cpu", preset: str = "paper") -> Any:
    """Decode ``batch`` frames with the random-weight ``preset`` decoder (see :func:`.cost.bench_decoder`)."""
    from .cost import bench_decoder as _bench

    return _bench(batch, device, preset)
