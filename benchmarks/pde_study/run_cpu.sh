#!/usr/bin/env bash
# The PDE study on this 2-core machine: two sweep slices at a time (one torch thread each), then merge + report.
# Usage: bash benchmarks/pde_study/run_cpu.sh [WORKDIR]  -> docs/results/<study>/ (results.csv, summary.md, plots)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/pde_study}
S=benchmarks/pde_study
mkdir -p "$W"
slice() {  # study fractions methods name
  modelbalance experiment --config "$S/$1.toml" --fractions "$2" --methods "$3" --out "$W/$1_$4" \
    --no-plots --no-progress --threads 1 --resume > "$W/$1_$4.log" 2>&1 || echo "slice $1 $4 exited $?"
}
slice burgers_fno 0.0125,0.05,0.2 baseline,tb,tb_rel,tb_norm a &
slice burgers_fno 0.0125,0.05,0.2 tb_type,tb_frozen,tb_shuffle,llrd b &
wait
slice darcy_fno 0.025,0.1 baseline,tb,tb_rel,tb_frozen,tb_shuffle a &
slice burgers_unet 0.0125,0.05 baseline,tb,tb_rel,tb_frozen,tb_shuffle a &
wait
for s in burgers_fno darcy_fno burgers_unet; do
  rm -rf "docs/results/$s"
  python benchmarks/pde_study/merge.py --config "$S/$s.toml" --out "docs/results/$s" "$W/$s"_* > "$W/merge_$s.log" 2>&1
done
