"""Provenance helpers (fasthmr_lib/io.py): atomic writes keep the usual file mode, manifests cite
repository-relative paths, and a run's own outputs under results/ do not mark the code dirty."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

from fasthmr_lib import io
from fasthmr_lib.paths import REPO_ROOT


def test_atomic_write_has_umask_mode_and_leaves_nothing_on_error(tmp_path):
    old = os.umask(0o022)
    try:
        p = io.atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644  # not mkstemp's 0600
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_manifest_paths_are_repo_relative():
    inside = REPO_ROOT / "checkpoints" / "small"
    m = io.manifest({"checkpoint": str(inside), "nested": [inside, "/elsewhere/x"], "n": 3}, seed=1,
                    world=str(REPO_ROOT / "data" / "world"))  # fmt: skip
    assert m["params"]["checkpoint"] == "checkpoints/small"
    assert m["params"]["nested"] == [Path("checkpoints/small"), "/elsewhere/x"]  # outside: kept as is
    assert m["params"]["n"] == 3 and m["world"] == "data/world"


def test_git_hash_ignores_results_outputs(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.csv").write_text("x\n1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = io.git_hash(tmp_path)
    assert len(clean) == 40
    (tmp_path / "results" / "t.csv").write_text("x\n2\n")  # a run rewrote its table
    assert io.git_hash(tmp_path) == clean
    (tmp_path / "code.py").write_text("a = 2\n")  # the code changed
    assert io.git_hash(tmp_path) == clean + "-dirty"
