#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv with torch and synful installed.
#
#   SYNFUL_VENV   where to put the environment (default: .venv in the checkout)
#   TORCH_SPEC    the torch requirement to install when the environment has no torch yet
#                 (default: torch==2.13.0, a CPU wheel on the build machines). An environment
#                 that already has torch (e.g. your own CUDA build) keeps it.
#   SYNFUL_EXTRAS extras to install (default: dev,slurm)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SYNFUL_VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi
"$venv/bin/python" -m pip install --quiet -e ".[${SYNFUL_EXTRAS:-dev,slurm}]"
"$venv/bin/python" -c "import torch, synful; print(f'synful {synful.__version__} with torch {torch.__version__} in $venv')"
