#!/usr/bin/env bash
# Set up the environment and run every check: ruff, snakefmt, snakemake --lint, pytest.
# SYNFUL_EXTRAS=dev,slurm,tf (as .ci/run sets) also installs TensorFlow for tests/test_tf_import.py,
# which is skipped without it outside CI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
venv="${SYNFUL_VENV:-.venv}"
export PATH="$PWD/$venv/bin:$PATH"
ruff check synful tests benchmarks workflow_scripts
snakefmt --check .
snakemake --lint --cores 1
pytest "$@"
