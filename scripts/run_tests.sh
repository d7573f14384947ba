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
echo "[tests] pytest"
# Exit code 5 (no tests collected) is a failure like any other non-zero code.
python -m pytest -q "$@"
