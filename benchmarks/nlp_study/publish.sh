#!/usr/bin/env bash
# Copy a finished study's report to docs/results/nlp_<study>/: summary, table, config, grid, plots, run records.
# Usage (from the repository root): bash benchmarks/nlp_study/publish.sh WORKDIR STUDY
set -euo pipefail
W=$1
name=$2
out="docs/results/nlp_$name"
if [ ! -f "$W/$name/summary.md" ]; then  # the study stopped before its report: keep what was published
  echo "publish: $W/$name has no summary.md (see $W/$name.log); docs/results/nlp_$name left as it was" >&2
  exit 0
fi
rm -rf "$out" && mkdir -p "$out"
cp -r "$W/$name"/{summary.md,results.csv,config.json} "$out"/
if [ -f "$W/$name/grid.csv" ]; then cp "$W/$name/grid.csv" "$out"/; fi
if [ -d "$W/$name/plots" ]; then cp -r "$W/$name/plots" "$out"/; fi
tar -czf "$out/runs.tar.gz" -C "$W/$name" runs
python benchmarks/nlp_study/alpha_report.py "$W/$name" > "$out/alphas.md" || echo "alpha report of $name failed"
