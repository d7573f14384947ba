"""Small I/O helpers used everywhere: atomic writes, JSON, run manifests, seeding.

Nothing is half written: every file goes to a temporary sibling first and is renamed into place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .paths import REPO_ROOT

TRACKED_PACKAGES = (
    "torch", "torchvision", "timm", "smplx", "roma", "diffusers", "numpy", "pandas",
    "papermill", "plotly", "ipywidgets", "trimesh", "embreex", "anny",
)  # fmt: skip


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600; give the file the mode a plain open() would
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy / torch scalars and paths converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, (np.integer, np.floating)):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, torch.Tensor):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return atomic_write_text(path, json.dumps(obj, indent=2, default=default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def git_hash(root: Path = REPO_ROOT) -> str:
    """Current commit of the repository, or 'unknown'; ``-dirty`` when tracked files outside
    ``results/`` differ from it (results are what a run writes, so they do not make the code dirty)."""
    try:
        h = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        return (h + ("-dirty" if dirty else "")) if h else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "absent"
    return out


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def repo_relative(obj: Any) -> Any:
    """``obj`` with every absolute path inside the repository (str or Path, nested in dicts, lists and
    tuples) written relative to the repository root, so a manifest reads the same on every machine."""
    if isinstance(obj, dict):
        return {k: repo_relative(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(repo_relative(v) for v in obj)
    if isinstance(obj, (str, Path)) and os.path.isabs(str(obj)):
        path = Path(os.path.normpath(obj))
        for p, root in ((path, REPO_ROOT), (path.resolve(), REPO_ROOT.resolve())):  # as given, resolved
            if p.is_relative_to(root):
                rel = p.relative_to(root)
                return str(rel) if isinstance(obj, str) else rel
        return obj
    return obj


def manifest(params: dict[str, Any] | None = None, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance record for one result: parameters, seed, versions, git hash, machine, time.
    Paths inside the repository are recorded relative to its root."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_hash(),
        "seed": seed,
        "params": repo_relative(params or {}),
        "versions": package_versions(),
        "machine": machine_info(),
        **repo_relative(extra),
    }


def seed_everything(seed: int, deterministic: bool = True) -> np.random.Generator:
    """Seed python, numpy and torch; return a numpy Generator to pass around explicitly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seed legacy global RNG for third-party code)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)
