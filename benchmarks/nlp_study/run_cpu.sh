#!/usr/bin/env bash
# The NLP study on a 2-core machine: pretrained MiniLM-L6 fine-tuned on the offline text tasks, every study in its
# own resumable folder under WORKDIR, then its report copied to docs/results/nlp_<study>/.
# Usage: bash benchmarks/nlp_study/run_cpu.sh [WORKDIR] [STUDY ...]   (rerun to continue; default: every study)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/nlp_study}
shift || true
S=benchmarks/nlp_study
STUDIES=("$@")
[ ${#STUDIES[@]} -gt 0 ] || STUDIES=(spam_k4 spam_k16 spam_k4_explore wordnet_full spam_lora spam_k64 pairs_full spam_k256 spam_k64_controls
  spam_k512_fixed_lr spam_lora_k64)
WORKERS=${WORKERS:-1}
THREADS=${THREADS:-2}
mkdir -p "$W"
python -m modelbalance.experiments.text.assets install spam wordnet
for name in "${STUDIES[@]}"; do
  reuse=()  # an exploration or a controls study reuses its parent study's baseline and tb runs
  case $name in
    *_explore) reuse=(--reuse "$W/${name%_explore}") ;;
    *_controls) reuse=(--reuse "$W/${name%_controls}") ;;
  esac
  modelbalance experiment --config "$S/$name.toml" --out "$W/$name" --resume --no-progress \
    --threads "$THREADS" --workers "$WORKERS" "${reuse[@]}" > "$W/$name.log" 2>&1 || echo "study $name exited $?"
  bash "$S/publish.sh" "$W" "$name"
done
