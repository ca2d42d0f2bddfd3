#!/usr/bin/env bash
# One command for a GPU machine: build the CUDA ops, run their parity tests, print CUDA vs reference timings.
# Usage: bash scripts/gpu_check.sh [--skip-tests] [--iters N]      (PYTHON=... to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
# Without `make venv` (which runs `pip install -e .`), e.g. on a lent GPU machine, the checkout is the package path.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" scripts/gpu_check.py "$@"
