#!/usr/bin/env bash
# Set up the environment and run the demo workflow end to end on synthetic data:
# synthesize -> convert -> masks -> train -> predict -> extract -> evaluate -> summary.
# Results land in results/ (summary table: results/summary.csv; errors by cause:
# results/errors.csv; held-out test samples: results/test.csv). At the end it prints the
# configuration chosen on validation, how it does on the test samples, and where the time went.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# the demo needs the runtime only (scripts/test.sh adds the test tools)
SYNFUL_EXTRAS="${SYNFUL_EXTRAS-}" bash scripts/setup_env.sh
venv="${SYNFUL_VENV:-.venv}"
export PATH="$PWD/$venv/bin:$PATH"
snakemake --cores "${CORES:-all}" "$@"
echo
python -m synful.summary results
echo
echo "Where the time went (Snakemake job benchmarks in benchmarks_out/; jobs run in parallel):"
python -m synful.timing benchmarks_out --wall "$(( $(date +%s) - start ))"
