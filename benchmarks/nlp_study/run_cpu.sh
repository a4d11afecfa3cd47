#!/usr/bin/env bash
# The NLP study on a 2-core machine: pretrained MiniLM-L6 fine-tuned on the offline text tasks, every study in its
# own resumable folder under WORKDIR, then its report copied to docs/results/nlp_<study>/.
# Usage: bash benchmarks/nlp_study/run_cpu.sh [WORKDIR] [STUDY ...]   (rerun to continue; default: every study)
# A study that extends another takes the runs it shares with it (--reuse) from the other's working folder, or from
# its published folder on a fresh machine. FROM_PUBLISHED=1 also takes a study's own published runs: extending a
# committed study (more seeds, another method, a wider grid) trains only what it lacks.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/nlp_study}
shift || true
S=benchmarks/nlp_study
STUDIES=("$@")
# spam_lora is not among the defaults: its tb_delta variant is now refused (a rank-8 update cannot be fit; see
# spam_lora.toml), so that published study stays as it was run.
[ ${#STUDIES[@]} -gt 0 ] || STUDIES=(spam_k4 spam_k16 spam_k4_explore wordnet_full spam_k64 pairs_full spam_k256
  spam_k64_controls spam_k512_fixed_lr spam_lora_k64 spam_k4_strength spam_k4_metric wordnet_k8 pairs_k128
  wordnet_k8_controls wordnet_k8_confirm wordnet_k32 wordnet_k8_fine
  wordnet_k32_controls wordnet_k8_fine_tb_llrd wordnet_k32_llrd wordnet_full_llrd wordnet_k32_confirm
  wordnet_k32_llrd_rate wordnet_k32_repick wordnet_k8_llrd_confirm wordnet_k8_lora wordnet_k8_lora_controls
  pairs_k128_lora spam_lora_llrd pairs_k128_lora_controls
  pairs_k128_lora_confirm pairs_k32_lora pairs_k512_lora_fixed_lr pairs_k32_lora_confirm
  pairs_k512_lora_confirm spam_k256_controls pairs_full_llrd pairs_k128_llrd spam_k256_llrd
  pairs_full_llrd_confirm pairs_k32_lora_r32 pairs_k32_lora_r32_delta mpnet_k4_cpu
  mpnet_k4_cpu_llrd mpnet_k16_cpu mpnet_pairs_k32_lora_cpu mpnet_pairs_k32_lora_cpu_controls
  mpnet_pairs_k32_lora_cpu_fixed_lr mpnet_pairs_k32_lora_cpu_llrd pairs_k512_lora pairs_k512_lora_llrd
  wordnet_k32_lora wordnet_k2_lora wordnet_k32_lora_controls wordnet_k2_lora_fixed_lr wordnet_n3328_fixed_lr
  wordnet_k2_lora_controls spam_lora_k4 spam_lora_confirm spam_lora_k256 spam_lora_k4_fixed_lr
  spam_lora_k4_mcc wordnet_k2_lora_controls_tuned spam_lora_k64_llrd mpnet_k4_cpu_controls
  mpnet_k16_cpu_controls spam_lora_k256_llrd spam_k256_controls_tuned wordnet_n3328_fixed_lr_seed4 wordnet_n3328
  wordnet_n3328_lr_wide spam_k256_llrd_wide spam_k256_lr_wide mpnet_k16_cpu_llrd
  mpnet_wordnet_k2_cpu)
WORKERS=${WORKERS:-1}
THREADS=${THREADS:-2}
mkdir -p "$W"
python -m modelbalance.experiments.text.assets install spam wordnet
runs_of() {  # where a study's runs are: its working folder, else its published folder (runs.tar.gz)
  if [ -d "$W/$1/runs" ] || [ ! -f "docs/results/nlp_$1/runs.tar.gz" ]; then echo "$W/$1"; else echo "docs/results/nlp_$1"; fi
}
for name in "${STUDIES[@]}"; do
  reuse=()  # an exploration, controls, strength, metric, finer-grid or LLRD study reuses its parent's runs
  parents=()
  case $name in
    # the named studies come before the suffix patterns: bash takes the first pattern that matches
    wordnet_k32_llrd_rate) parents=(wordnet_k32_llrd wordnet_k32_confirm) ;;  # seeds 0-4 and 5-9 at 1e-4
    wordnet_k32_repick) parents=(wordnet_k32_llrd wordnet_k32_confirm wordnet_k32_llrd_rate) ;;
    wordnet_k8_llrd_confirm) parents=(wordnet_k8_confirm) ;;  # baseline and tb at 3e-4 on seeds 10-19
    pairs_k32_lora_r32_delta) parents=(pairs_k32_lora_r32) ;;  # baseline and tb at rank 32
    mpnet_pairs_k32_lora_cpu_fixed_lr) parents=(mpnet_pairs_k32_lora_cpu) ;;  # the baseline at 3e-3
    wordnet_k2_lora_fixed_lr) parents=(wordnet_k2_lora) ;;  # the baseline at 1e-2
    spam_lora_k4_fixed_lr) parents=(spam_lora_k4) ;;  # any method that picked 1e-2 there
    spam_lora_k4_mcc) parents=(spam_lora_k4 spam_lora_k4_fixed_lr) ;;  # every tuning run; the test runs at 1e-2
    wordnet_k2_lora_controls) parents=(wordnet_k2_lora wordnet_k2_lora_fixed_lr) ;;  # baseline and tb at 1e-2
    pairs_k512_lora) parents=(pairs_k512_lora_fixed_lr pairs_k512_lora_confirm) ;;  # seeds 0-4 and 5-9 at 1e-3
    wordnet_k2_lora_controls_tuned) parents=(wordnet_k2_lora wordnet_k2_lora_controls) ;;  # its controls at 1e-2
    mpnet_k4_cpu_controls) parents=(mpnet_k4_cpu_llrd) ;;  # baseline and tb on its 6 rates
    spam_k256_controls_tuned) parents=(spam_k256 spam_k256_controls) ;;  # the placebo at 1e-4
    wordnet_n3328) parents=(wordnet_n3328_fixed_lr wordnet_n3328_fixed_lr_seed4) ;;  # seeds 0-4 at 1e-4
    wordnet_n3328_lr_wide) parents=(wordnet_n3328) ;;  # its folder holds the test runs it reused too
    spam_k256_llrd_wide) parents=(spam_k256_llrd spam_k256_controls_tuned) ;;  # baseline and tb at 1e-3
    spam_k256_lr_wide) parents=(spam_k256_controls_tuned spam_k256_llrd_wide) ;;
    *_explore) parents=("${name%_explore}") ;;
    *_controls) parents=("${name%_controls}") ;;
    *_strength) parents=("${name%_strength}") ;;
    *_metric) parents=("${name%_metric}") ;;
    *_fine) parents=("${name%_fine}") ;;
    *_tb_llrd) parents=("${name%_tb_llrd}") ;;
    *_llrd) parents=("${name%_llrd}") ;;
  esac
  for parent in "${parents[@]}"; do reuse+=(--reuse "$(runs_of "$parent")"); done
  if [ "${FROM_PUBLISHED:-0}" = 1 ] && [ -f "docs/results/nlp_$name/runs.tar.gz" ]; then
    reuse+=(--reuse "docs/results/nlp_$name")  # a published study's own runs: only what it lacks is trained
  fi
  modelbalance experiment --config "$S/$name.toml" --out "$W/$name" --resume --no-progress \
    --threads "$THREADS" --workers "$WORKERS" "${reuse[@]}" > "$W/$name.log" 2>&1 || echo "study $name exited $?"
  bash "$S/publish.sh" "$W" "$name"
done
# every cell at a glance, from the published folders
python benchmarks/reports/overview.py --cells "$S/overview.toml" --out docs/results/nlp_overview > "$W/overview.log" 2>&1 || echo "overview exited $?"
