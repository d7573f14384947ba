#!/usr/bin/env bash
# Set-up command 1 of 2: install (if needed), build the embedded synthetic world (if missing) and
# run every notebook with papermill on the given profile (default: `default`; `tiny` is the CI
# smoke profile, `paper` uses real checkpoints/datasets at the paths set in notebooks/profiles/).
# Executed notebooks, tables, figures and manifests land under results/.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
python -m fasthmr_lib.workbook --profile "${1:-default}" "${@:2}"
