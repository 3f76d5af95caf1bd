#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv with torch and synful installed.
#
#   SYNFUL_VENV   where to put the environment (default: .venv in the checkout)
#   TORCH_SPEC    the torch requirement to install when the environment has no torch yet, or
#                 one older than 2.6 (default: torch==2.13.0, a CPU wheel on the build
#                 machines). An environment whose torch is 2.6 or newer (e.g. your own CUDA
#                 build) keeps it. Before 2.6, torch.load(weights_only=True) can still run code
#                 from a crafted checkpoint (CVE-2025-32434), so an older torch is upgraded.
#   SYNFUL_EXTRAS extras to install (unset: dev,slurm; empty: none, the runtime only)
set -euo pipefail

# the oldest torch synful accepts (pyproject.toml says the same)
MIN_TORCH=2.6

# Succeeds when version $1 (e.g. 2.5.1+cu121) is older than $2 (default: MIN_TORCH). Release
# numbers compare numerically, a local label (+cu121) is ignored, and a pre-release or dev
# build of a release (2.6.0a0, 2.6.0rc1, 2.6.0.dev20241112) is older than the release itself.
version_older() {
  local version="${1%%+*}" minimum="${2:-$MIN_TORCH}"
  local release="${version%%[!0-9.]*}"
  local rest="${version#"$release"}"
  release="${release%.}"
  local -a have want
  IFS=. read -r -a have <<<"$release"
  IFS=. read -r -a want <<<"$minimum"
  local i h w
  for i in 0 1 2 3; do
    h="${have[i]:-0}"
    w="${want[i]:-0}"
    if ((10#$h < 10#$w)); then return 0; fi
    if ((10#$h > 10#$w)); then return 1; fi
  done
  case "$rest" in
    "" | post* | .post*) return 1 ;;
    *) return 0 ;;
  esac
}

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local venv="${SYNFUL_VENV:-.venv}" python="${PYTHON:-python3}"
  local spec="${TORCH_SPEC:-torch==2.13.0}" have
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  if ! have=$("$venv/bin/python" -c "import torch, sys; sys.stdout.write(torch.__version__)" 2>/dev/null); then
    "$venv/bin/python" -m pip install --quiet "$spec"
  elif version_older "$have"; then
    echo "torch $have is older than $MIN_TORCH (weights_only checkpoint loading is unsafe before $MIN_TORCH): installing $spec" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade "$spec"
  fi
  local extras="${SYNFUL_EXTRAS-dev,slurm}"
  "$venv/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
  "$venv/bin/python" -c "import torch, synful; print(f'synful {synful.__version__} with torch {torch.__version__} in $venv')"
}

# `source scripts/setup_env.sh` defines the functions only (the tests call version_older)
if ! (return 0 2>/dev/null); then
  main "$@"
fi
