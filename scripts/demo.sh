#!/usr/bin/env bash
# Set up the environment and run the demo workflow end to end on synthetic data:
# synthesize -> convert -> masks -> train -> predict -> extract -> evaluate -> summary.
# Results land in results/ (summary table: results/summary.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
venv="${SYNFUL_VENV:-.venv}"
export PATH="$PWD/$venv/bin:$PATH"
snakemake --cores "${CORES:-all}" "$@"
