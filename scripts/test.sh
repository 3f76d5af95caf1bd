#!/usr/bin/env bash
# Set up the environment and run every check: ruff, snakefmt, snakemake --lint, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
venv="${SYNFUL_VENV:-.venv}"
export PATH="$PWD/$venv/bin:$PATH"
ruff check synful tests benchmarks workflow_scripts
snakefmt --check .
snakemake --lint --cores 1
pytest "$@"
