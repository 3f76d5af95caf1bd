#!/usr/bin/env bash
# Set up the environment and run every check: ruff (lint and format), snakefmt,
# snakemake --lint, pytest.
# The test environment includes the tf extra (TensorFlow + tf-keras, about a minute from PyPI)
# for tests/test_tf_import.py, which writes real TensorFlow 1 checkpoints (skipped without it
# outside CI), and the cluster extra (dask-jobqueue) whose job scripts the cluster tests
# render; SYNFUL_EXTRAS=dev,slurm leaves both out.
set -euo pipefail
cd "$(dirname "$0")/.."
export SYNFUL_EXTRAS="${SYNFUL_EXTRAS:-dev,slurm,tf,cluster}"
bash scripts/setup_env.sh
venv="${SYNFUL_VENV:-.venv}"
export PATH="$PWD/$venv/bin:$PATH"
ruff check synful tests benchmarks workflow_scripts
ruff format --check synful tests benchmarks workflow_scripts
snakefmt --check .
snakemake --lint --cores 1
# two test processes (pytest-xdist): the workflow tests wait on subprocesses much of the time;
# SYNFUL_TEST_WORKERS=0 runs everything in this process
pytest -n "${SYNFUL_TEST_WORKERS:-2}" --dist worksteal "$@"
