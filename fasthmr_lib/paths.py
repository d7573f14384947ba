"""Repository-anchored paths with environment overrides.

Every path the library writes or reads by default comes from here, so notebooks run the same
from JupyterLab (cwd = notebooks/) and from papermill (any cwd).

Environment variables:
    FASTHMR_DATA       generated / converted data (default ``<repo>/data``)
    FASTHMR_RESULTS    results root (default ``<repo>/results``)
    FASTHMR_SMPL_DIR   folder holding a real ``SMPL_NEUTRAL.pkl`` / ``.npz`` (default: unset ->
                       the embedded body model under ``<data>/body_model``)
    FASTHMR_CHECKPOINTS shipped / trained checkpoints (default ``<repo>/checkpoints``)
    FASTHMR_HUMANFOV   CameraHMR's HumanFoV checkpoint (``cam_model_cleaned.ckpt``): the focal-length
                       estimate of the ``camerahmr`` preset when no K is given (default: unset -> the
                       image diagonal, named ``image_diagonal`` in outputs and tables)
    FASTHMR_CACHE      derived files made from a user's inputs, e.g. SMPL pickles converted to .npz
                       (default ``$XDG_CACHE_HOME/fasthmr`` or ``~/.cache/fasthmr``)
    FASTHMR_H36M_REGRESSOR  the H36M joint regressor ``J_regressor_h36m.npy`` (17 x V, V = 6890 for real
                       SMPL) that WHAM's protocols (``wham_3dpw14``) apply to the mesh; a file the user
                       supplies (SPIN / VIBE / WHAM data downloads). Default: unset -> those protocols
                       need the file passed explicitly.

The paper path's inputs (read by :mod:`fasthmr_lib.paper_inputs` when a notebook runs with
``data_source: real``; a notebook parameter of the same input wins over its variable):
    FASTHMR_HMR2_CKPT       4D-Humans HMR 2.0 release ``.ckpt`` (``model_config.yaml`` two folders up)
    FASTHMR_CAMERAHMR_CKPT  CameraHMR ``camerahmr_checkpoint_cleaned.ckpt``
    FASTHMR_SMPL_DIR        (above) also the paper path's SMPL folder
    FASTHMR_3DPW_DIR        3DPW records from ``python -m data_prep.convert_3dpw``
    FASTHMR_EMDB_DIR        EMDB-1 records from ``python -m data_prep.convert_emdb``
    FASTHMR_CALIB_DIR       ECLM calibration records (default: the 3DPW records, split ``validation``)
    FASTHMR_AMASS_DIR       AMASS motion records from ``python -m data_prep.convert_amass``
    FASTHMR_H36M_REGRESSOR  (above) ``J_regressor_h36m.npy`` for the wham_* protocols
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(var: str, default: Path) -> Path:
    v = os.environ.get(var)
    return Path(v).expanduser().resolve() if v else default


def data_dir() -> Path:
    return _env_path("FASTHMR_DATA", REPO_ROOT / "data")


def results_dir() -> Path:
    return _env_path("FASTHMR_RESULTS", REPO_ROOT / "results")


def profile_results_dir(profile: str) -> Path:
    """Where a notebook run with ``profile`` writes its tables, figures and manifests: ``FASTHMR_RESULTS``
    when set (the papermill driver sets it), else ``results/`` for the ``default`` profile (the shipped
    workbook results) and ``results/runs/<profile>/results/`` for every other profile, so running a
    notebook by hand with ``profile: tiny`` never overwrites the shipped default tables."""
    root = results_dir()
    if os.environ.get("FASTHMR_RESULTS") or profile == "default":
        return root
    return root / "runs" / profile / "results"


def checkpoints_dir() -> Path:
    return _env_path("FASTHMR_CHECKPOINTS", REPO_ROOT / "checkpoints")


def cache_dir() -> Path:
    """The user's cache folder: derived files never go into the user's own data folders."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return _env_path("FASTHMR_CACHE", (Path(xdg) if xdg else Path.home() / ".cache") / "fasthmr")


def smpl_dir() -> Path | None:
    """A user-given real SMPL folder, or ``None`` (use the embedded body model)."""
    v = os.environ.get("FASTHMR_SMPL_DIR")
    return Path(v).expanduser().resolve() if v else None


def humanfov_checkpoint() -> Path | None:
    """A user-given HumanFoV checkpoint (``FASTHMR_HUMANFOV``), or ``None`` (image-diagonal focal)."""
    v = os.environ.get("FASTHMR_HUMANFOV")
    return Path(v).expanduser().resolve() if v else None


def h36m_regressor_path() -> Path | None:
    """The user's ``J_regressor_h36m.npy`` from ``FASTHMR_H36M_REGRESSOR``, or ``None`` when unset."""
    v = os.environ.get("FASTHMR_H36M_REGRESSOR")
    return Path(v).expanduser().resolve() if v else None


def embedded_body_dir() -> Path:
    return data_dir() / "body_model"


def notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"
