#!/usr/bin/env bash
# Install modelbalance into .venv and run the low-data demo: FNO on Burgers with a few training-set sizes,
# baseline vs TempBalance, several seeds. Prints the table and where the plots are. Extra args go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh "all"
modelbalance demo "$@"
