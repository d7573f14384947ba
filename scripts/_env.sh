# Sourced by the two entry scripts: creates (or reuses) the project virtualenv and installs the
# exact, tested package set from requirements.lock, then this library in editable mode.
#
# Why a venv of its own: the machine's local torch 2.13.0 CPU wheel has no matching torchvision,
# and timm imports torchvision at import time; PyPI's torchvision does not load beside that wheel.
# The PyPI pair torch 2.14.1 + torchvision 0.29.1 (CUDA builds, ~5 GB) runs on CPU as well, so the
# lock pins that pair. GPU users need no change: the same pair is CUDA-enabled.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FASTHMR_VENV="${FASTHMR_VENV:-$HOME/.cache/fasthmr/venv}"
PYTHON_BIN="${PYTHON_BIN:-python3}"
export ANNY_CACHE_DIR="${ANNY_CACHE_DIR:-$HOME/.cache/fasthmr/anny}"
export MPLBACKEND="${MPLBACKEND:-Agg}"

lock_hash="$(cat "$REPO_ROOT/requirements.lock" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
stamp="$FASTHMR_VENV/.fasthmr-lock-$lock_hash"
if [ ! -x "$FASTHMR_VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $FASTHMR_VENV"
  "$PYTHON_BIN" -m venv "$FASTHMR_VENV"
fi
if [ ! -f "$stamp" ]; then
  echo "[setup] installing requirements.lock into $FASTHMR_VENV (first run: several minutes)"
  "$FASTHMR_VENV/bin/python" -m pip install --upgrade --quiet pip
  "$FASTHMR_VENV/bin/python" -m pip install --quiet -r "$REPO_ROOT/requirements.lock"
  "$FASTHMR_VENV/bin/python" -m pip install --quiet --no-deps -e "$REPO_ROOT"
  rm -f "$FASTHMR_VENV"/.fasthmr-lock-*
  touch "$stamp"
fi
# The checkout may have moved since the editable install: re-point it cheaply when needed.
if ! (cd / && "$FASTHMR_VENV/bin/python" -c "import fasthmr_lib, pathlib, sys; sys.exit(pathlib.Path(fasthmr_lib.__file__).resolve().parents[1] != pathlib.Path('$REPO_ROOT').resolve())" 2>/dev/null); then
  "$FASTHMR_VENV/bin/python" -m pip install --quiet --no-deps -e "$REPO_ROOT"
fi
export PATH="$FASTHMR_VENV/bin:$PATH"
cd "$REPO_ROOT"
