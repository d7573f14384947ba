"""FastHMR reproducibility workbook library.

Subpackages: ``body`` (SMPL layer, HybrIK), ``models`` (HMR2.0 backbone/head, checkpoints),
``merging`` (Mask-ToMe, ECLM), ``diffusion`` (motion VAE, latent denoiser, one-step decoder),
``data`` (frame records, crops), ``eval`` (metrics, evaluation, profiling), ``viz``.
"""

__version__ = "0.1.0"
