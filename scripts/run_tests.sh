#!/usr/bin/env bash
# Set-up command 2 of 2: install (if needed) and run every check: ruff lint + format, notebook
# hygiene, and the whole pytest suite (including `slow` tests; `browser` tests run when Chromium and
# playwright are present). Extra arguments go to pytest, e.g. `-k eclm`.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
echo "[tests] ruff"
ruff check .
ruff format --check .
echo "[tests] notebook hygiene"
python -m fasthmr_lib.hygiene notebooks
# The JupyterLab browser test drives Debian's Chromium through playwright (no browser download).
# Install Chromium when missing and possible (root + apt); with it present the test must run.
if ! command -v chromium >/dev/null 2>&1 && [ "${FASTHMR_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  echo "[tests] installing Debian chromium for the JupyterLab browser test (FASTHMR_NO_APT=1 skips)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "[tests] WARNING: could not install chromium; the browser test will be SKIPPED"
fi
if command -v chromium >/dev/null 2>&1; then export FASTHMR_REQUIRE_BROWSER=1; fi
echo "[tests] pytest"
# Exit code 5 (no tests collected) is a failure like any other non-zero code.
python -m pytest -q "$@"
