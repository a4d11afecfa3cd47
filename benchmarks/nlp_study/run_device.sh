#!/usr/bin/env bash
# The NLP study's device protocol: MPNet-base on SpamAssassin (mpnet_device.toml) on a GPU machine, several runs
# packed onto each GPU by the runner's own executor (--workers, --runs-per-gpu), resumable; then the report goes to
# docs/results/nlp_<study>/. Check it on the CPU first with the tiny config:
#   bash benchmarks/nlp_study/run_device.sh /tmp/nlp_tiny tiny
# Usage: bash benchmarks/nlp_study/run_device.sh [WORKDIR] [STUDY]      (STUDY default: mpnet_device)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/nlp_device}
STUDY=${2:-mpnet_device}
S=benchmarks/nlp_study
mkdir -p "$W"
python -m modelbalance.experiments.text.assets install spam
if [ "$STUDY" = mpnet_device ]; then
  python -c "from modelbalance.experiments.models.mpnet import mpnet_path; print(mpnet_path())"
fi
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -gt 0 ]; then
  # MPNet-base at batch 16 x 128 tokens needs ~5 GB: 4 runs share one large GPU, each with 2 CPU threads
  FLAGS=(--workers "$((GPUS * ${RUNS_PER_GPU:-4}))" --runs-per-gpu "${RUNS_PER_GPU:-4}" --threads 2)
else
  FLAGS=(--threads "$(nproc)")
fi
modelbalance experiment --config "$S/$STUDY.toml" --out "$W/$STUDY" --resume --no-progress "${FLAGS[@]}" \
  2>&1 | tee "$W/$STUDY.log"
[ "$STUDY" = tiny ] && exit 0  # the smoke test publishes nothing
bash "$S/publish.sh" "$W" "$STUDY"
