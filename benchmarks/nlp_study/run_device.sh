#!/usr/bin/env bash
# The NLP study's device protocol: MPNet-base on SpamAssassin (mpnet_device.toml; mpnet_k4.toml and mpnet_k16.toml
# are its sizes as separate sweeps) on a GPU machine, several runs packed onto each GPU by the runner's own
# executor (--workers, --runs-per-gpu), resumable; then the report goes to docs/results/nlp_<study>/. Check it on
# the CPU first with the tiny config:
#   bash benchmarks/nlp_study/run_device.sh /tmp/nlp_tiny tiny
# Usage: bash benchmarks/nlp_study/run_device.sh [WORKDIR] [STUDY]      (STUDY default: mpnet_device)
# Environment: RUNS_PER_GPU (default 4), STUDY_S (stop the sweep with SIGINT after this many seconds: every finished
# run is saved, none half-written, and a rerun resumes), PUBLISH=0 (leave docs/results alone).
# Works from a checkout without an install (a lent machine): src/ goes on PYTHONPATH when modelbalance is missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/nlp_device}
STUDY=${2:-mpnet_device}
S=benchmarks/nlp_study
PY=$(command -v python3 || command -v python)
if ! "$PY" -c "import modelbalance" 2>/dev/null; then
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
mkdir -p "$W"
"$PY" -m modelbalance.experiments.text.assets install spam || exit 1
if [[ "$STUDY" == mpnet* ]]; then
  "$PY" -c "from modelbalance.experiments.models.mpnet import mpnet_path; print(mpnet_path())" || exit 1
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -gt 0 ]; then
  # MPNet-base at batch 16 x 128 tokens needs ~5 GB: 4 runs share one large GPU, each with 1 CPU thread
  FLAGS=(--workers "$((GPUS * ${RUNS_PER_GPU:-4}))" --runs-per-gpu "${RUNS_PER_GPU:-4}" --threads 1)
else
  FLAGS=(--threads "$(nproc)")
fi
LIMIT=()
[ -n "${STUDY_S:-}" ] && LIMIT=(timeout -s INT -k 60 "$STUDY_S")
"${LIMIT[@]}" "$PY" -m modelbalance.cli.main experiment --config "$S/$STUDY.toml" --out "$W/$STUDY" --resume \
  --no-progress "${FLAGS[@]}" 2>&1 | tee "$W/$STUDY.log"
status=${PIPESTATUS[0]}
echo "run_device: $STUDY exit $status"
[ "$STUDY" = tiny ] && exit "$status"  # the smoke test publishes nothing
[ "${PUBLISH:-1}" = 0 ] && exit "$status"
bash "$S/publish.sh" "$W" "$STUDY"
exit "$status"
