# Sourced by the two entry scripts: makes this checkout's interpreter `.venv/bin/python` (git-ignored)
# and puts it first on PATH.
#
# Two layers, so that clones never cross and nothing is downloaded twice:
# * the package set: a virtualenv at $FASTHMR_VENV (default ~/.cache/fasthmr/venv) holding the exact,
#   tested third-party packages of requirements.lock and NOT this library. It is shared by every clone
#   on the machine and reinstalled only when requirements.lock or pyproject.toml change.
# * the checkout: `.venv/` in this repository, a small virtualenv whose site-packages holds one .pth
#   file: this checkout's root first, then the package set. Its `python`, its console scripts (jupyter,
#   papermill, pytest, ruff, ...) and every kernel they start (jupyter_client runs kernels with the
#   interpreter it runs in) import `fasthmr_lib` from this checkout, whatever other clones do.
#
# Why a package set of its own: the machine's local torch 2.13.0 CPU wheel has no matching torchvision,
# and timm imports torchvision at import time; PyPI's torchvision does not load beside that wheel.
# The PyPI pair torch 2.14.1 + torchvision 0.29.1 (CUDA builds, ~5 GB) runs on CPU as well, so the
# lock pins that pair. GPU users need no change: the same pair is CUDA-enabled.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FASTHMR_VENV="${FASTHMR_VENV:-$HOME/.cache/fasthmr/venv}"
CHECKOUT_VENV="$REPO_ROOT/.venv"
PYTHON_BIN="${PYTHON_BIN:-python3}"
export ANNY_CACHE_DIR="${ANNY_CACHE_DIR:-$HOME/.cache/fasthmr/anny}"
export MPLBACKEND="${MPLBACKEND:-Agg}"

lock_hash="$(cat "$REPO_ROOT/requirements.lock" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
stamp="$FASTHMR_VENV/.fasthmr-lock-$lock_hash"
if [ ! -x "$FASTHMR_VENV/bin/python" ]; then
  echo "[setup] creating the package virtualenv $FASTHMR_VENV"
  "$PYTHON_BIN" -m venv "$FASTHMR_VENV"
fi
if [ ! -f "$stamp" ]; then
  echo "[setup] installing requirements.lock into $FASTHMR_VENV (first run: several minutes)"
  "$FASTHMR_VENV/bin/python" -m pip install --upgrade --quiet pip
  "$FASTHMR_VENV/bin/python" -m pip install --quiet -r "$REPO_ROOT/requirements.lock"
  rm -f "$FASTHMR_VENV"/.fasthmr-lock-*
  touch "$stamp"
fi
# An older layout installed this library (editable) into the shared set, pointing at one clone: remove it.
if [ -n "$(ls "$FASTHMR_VENV"/lib/python3*/site-packages/__editable__*fasthmr_lib* 2>/dev/null)" ]; then
  echo "[setup] removing the shared editable install of fasthmr_lib (each checkout now has .venv/)"
  "$FASTHMR_VENV/bin/python" -m pip uninstall --quiet --yes fasthmr_lib
fi

overlay_id="$FASTHMR_VENV $lock_hash $REPO_ROOT"
if [ ! -x "$CHECKOUT_VENV/bin/python" ] || [ "$(cat "$CHECKOUT_VENV/.fasthmr-overlay" 2>/dev/null)" != "$overlay_id" ]; then
  echo "[setup] making $CHECKOUT_VENV (this checkout's interpreter over the package set)"
  rm -rf "$CHECKOUT_VENV"
  "$FASTHMR_VENV/bin/python" -m venv --without-pip "$CHECKOUT_VENV"
  purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
  shared_site="$(purelib "$FASTHMR_VENV/bin/python")"
  printf '%s\nimport site; site.addsitedir(%s)\n' "$REPO_ROOT" "'$shared_site'" \
    > "$(purelib "$CHECKOUT_VENV/bin/python")/fasthmr_checkout.pth"
  # console scripts of the package set, re-pointed at this interpreter; native tools (ruff) linked
  for tool in "$FASTHMR_VENV"/bin/*; do
    name="$(basename "$tool")"
    [ -e "$CHECKOUT_VENV/bin/$name" ] || [ ! -f "$tool" ] || [ ! -x "$tool" ] && continue
    case "$name" in activate*|Activate*|pip*|python*) continue ;; esac
    if [ "$(head -c 2 "$tool")" = "#!" ]; then
      { echo "#!$CHECKOUT_VENV/bin/python"; tail -n +2 "$tool"; } > "$CHECKOUT_VENV/bin/$name"
      chmod +x "$CHECKOUT_VENV/bin/$name"
    else
      ln -s "$tool" "$CHECKOUT_VENV/bin/$name"
    fi
  done
  # JupyterLab's application files, the widget / plotly extensions and the server config live under the
  # interpreter's prefix: share them.
  mkdir -p "$CHECKOUT_VENV/share" "$CHECKOUT_VENV/etc"
  [ -d "$FASTHMR_VENV/share/jupyter" ] && ln -s "$FASTHMR_VENV/share/jupyter" "$CHECKOUT_VENV/share/jupyter"
  [ -d "$FASTHMR_VENV/etc/jupyter" ] && ln -s "$FASTHMR_VENV/etc/jupyter" "$CHECKOUT_VENV/etc/jupyter"
  echo "$overlay_id" > "$CHECKOUT_VENV/.fasthmr-overlay"
fi
export VIRTUAL_ENV="$CHECKOUT_VENV"
export PATH="$CHECKOUT_VENV/bin:$PATH"
cd "$REPO_ROOT"
