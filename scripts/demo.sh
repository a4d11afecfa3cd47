#!/usr/bin/env bash
# Install modelbalance into .venv and run the low-data demo: the pretrained MiniLM-L6 fine-tuned on SpamAssassin at
# two training sizes, baseline vs TempBalance, 2 seeds (`--track pde` for the FNO one). Prints the table and where the
# plots are. Extra args go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh "all"
modelbalance demo "$@"
