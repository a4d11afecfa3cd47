#!/usr/bin/env bash
# Install everything the tests need into .venv, lint, and run the test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh "all,test"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ruff check src tests benchmarks
python -m pytest -q "$@"
