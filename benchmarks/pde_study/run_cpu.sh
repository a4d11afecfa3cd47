#!/usr/bin/env bash
# The whole PDE study on a 2-core machine: two studies at a time (one torch thread each), each in its own
# resumable folder under WORKDIR; a study that extends another (more seeds, a wider grid, variants) takes the
# runs it shares with it through --reuse instead of training them again. Then the reports: docs/results/<study>/.
# Usage: bash benchmarks/pde_study/run_cpu.sh [WORKDIR]    (about 15 h on 2 cores; rerun to continue)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/pde_study}
S=benchmarks/pde_study
mkdir -p "$W"
study() {  # study [studies it extends ...]
  local name=$1 reuse=()
  shift
  for other in "$@"; do  # its working folder, else its published runs (a parent that did not run here)
    if [ -d "$W/$other/runs" ] || [ ! -f "docs/results/$other/runs.tar.gz" ]; then reuse+=(--reuse "$W/$other")
    else reuse+=(--reuse "docs/results/$other"); fi
  done
  modelbalance experiment --config "$S/$name.toml" --out "$W/$name" --resume "${reuse[@]}" \
    --no-plots --no-progress --threads 1 --workers "${STUDY_WORKERS:-1}" > "$W/$name.log" 2>&1 \
    || echo "study $name exited $?"
}
study burgers_fno & study darcy_fno & wait
study burgers_fno_10seeds burgers_fno & study darcy_fno_10seeds darcy_fno & wait
study darcy_unet & study burgers_fno_explore burgers_fno_10seeds & wait
study burgers_fno_fixed_lr burgers_fno_10seeds & study burgers_fno_fixed_lr_1e-2 burgers_fno_10seeds & wait
study darcy_fno_fixed_lr darcy_fno_10seeds & study burgers_fno_wide & wait
study burgers_fno_long
# the paper's CFD regime (autoregressive 1D-CFD, 500 epochs StepLR): one study at a time on both cores (~1.6 h, ~0.4 h,
# ~0.8 h; the UNet ~1.3 h and ~0.4 h)
STUDY_WORKERS=2 study cfd1d_fno_54
STUDY_WORKERS=2 study cfd1d_fno_54_fixed_lr cfd1d_fno_54
STUDY_WORKERS=2 study cfd1d_fno_54_controls cfd1d_fno_54_fixed_lr
STUDY_WORKERS=2 study cfd1d_unet_54
STUDY_WORKERS=2 study cfd1d_unet_54_controls cfd1d_unet_54
STUDY_WORKERS=2 study cfd1d_fno_225_fixed_lr  # the paper's 2.5%: ~1,150 s a run, ~1.7 h
STUDY_WORKERS=2 study cfd1d_fno_54_strength cfd1d_fno_54  # s tuned with the rate, as the paper did: ~1 h
STUDY_WORKERS=2 study cfd1d_fno_54_strength_controls cfd1d_fno_54_strength  # ~0.8 h
STUDY_WORKERS=2 study cfd1d_fno_225_tuned_cpu cfd1d_fno_225_fixed_lr  # 2.5% tuned: 8 tuning runs + 10 test, ~2.5 h
STUDY_WORKERS=2 study cfd1d_fno_225_controls_cpu cfd1d_fno_225_tuned_cpu  # its controls at the shared pick: ~1.4 h
# the controls tuned on the whole 5-rate grid, and baseline and TB's tuning at 3e-4: 12 new runs, ~2 h (more if a
# control picks another rate than 1e-2)
STUDY_WORKERS=2 study cfd1d_fno_225 cfd1d_fno_225_tuned_cpu cfd1d_fno_225_controls_cpu cfd1d_fno_225_fixed_lr
# every pick strictly inside its grid: the three single-step studies whose picks sat on an edge, on wider grids
# (their runs at the shared rates reused): ~0.5 h
study darcy_fno_10seeds_lr_wide darcy_fno_10seeds & study darcy_fno_lr_wide darcy_fno & wait
study burgers_fno_lr_wide burgers_fno
for s in burgers_fno burgers_fno_10seeds darcy_fno darcy_fno_10seeds darcy_unet burgers_fno_explore \
  burgers_fno_fixed_lr burgers_fno_fixed_lr_1e-2 darcy_fno_fixed_lr burgers_fno_wide burgers_fno_long \
  cfd1d_fno_54 cfd1d_fno_54_fixed_lr cfd1d_fno_54_controls cfd1d_unet_54 \
  cfd1d_unet_54_controls cfd1d_fno_225_fixed_lr cfd1d_fno_54_strength cfd1d_fno_54_strength_controls \
  cfd1d_fno_225_tuned_cpu cfd1d_fno_225_controls_cpu cfd1d_fno_225 darcy_fno_10seeds_lr_wide darcy_fno_lr_wide \
  burgers_fno_lr_wide; do
  rm -rf "docs/results/$s"
  python benchmarks/pde_study/merge.py --config "$S/$s.toml" --out "docs/results/$s" "$W/$s" > "$W/merge_$s.log" 2>&1
  tar -czf "docs/results/$s/runs.tar.gz" -C "docs/results/$s" runs && rm -rf "docs/results/$s/runs"
done
# the CFD cells at a glance, from the published folders
python benchmarks/reports/overview.py --cells "$S/overview.toml" --out docs/results/cfd1d_overview > "$W/overview.log" 2>&1
