#!/usr/bin/env bash
# PDE studies (default: the Darcy FNO and Darcy UNet ones) on a one-GPU machine with many CPU cores (a lent H100/H200): 12 sweep
# slices (study x fraction x half of the study's methods) run side by side on the GPU, each stopped after $SLICE_S
# seconds; every finished run is already saved as JSON, so what did not finish is simply missing. The slices'
# runs are merged and reported on this machine afterwards (benchmarks/pde_study/merge.py).
# Usage: bash benchmarks/pde_study/run_device.sh OUTDIR   (needs neuraloperator; .whl/ holds it where absent)
set -u
OUT=${1:?output folder}
SLICE_S=${SLICE_S:-200}
DEVICE=${DEVICE:-cuda}
CONFIGS=${CONFIGS:-benchmarks/pde_study}
STUDIES=${STUDIES:-darcy_fno darcy_unet}
if ! python3 -c "import neuralop" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} MODELBALANCE_CACHE=/tmp/mbcache OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
W=${W:-/tmp/study}; mkdir -p "$W" "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/device.txt" 2>&1
python3 benchmarks/gpu_check.py > "$OUT/gpu_check.jsonl" 2> "$W/gpu_check.err" &
for s in $STUDIES; do   # generate (and cache) the data once, before the slices start
  python3 -m modelbalance.cli.main experiment --config $CONFIGS/$s.toml --out "$W/dry_$s" --dry-run \
    > "$W/dry_$s.log" 2>&1
done
jobs_file=$W/jobs.txt; : > "$jobs_file"
for s in $STUDIES; do
  read -r fr halves < <(python3 -c "import tomllib; c = tomllib.load(open('$CONFIGS/$s.toml', 'rb')); m = c['methods']
print(','.join(map(str, c['fractions'])), ','.join(m[:len(m) // 2 + 1]), ','.join(m[len(m) // 2 + 1:]))")
  for f in ${fr//,/ }; do
    set -- $halves
    echo "$s $f $1 a" >> "$jobs_file"
    [ -n "${2:-}" ] && echo "$s $f $2 b" >> "$jobs_file"
  done
done
xargs -P ${PARALLEL:-12} -L 1 bash -c 'timeout '"$SLICE_S"' python3 -m modelbalance.cli.main experiment \
  --config '"$CONFIGS"'/$0.toml --fractions $1 --methods $2 --out '"$W"'/$0_$1_$3 --device '"$DEVICE"' \
  --no-plots --no-progress --threads 1 > '"$W"'/$0_$1_$3.log 2>&1; echo "$0 $1 $3 exit $?"' < "$jobs_file" \
  > "$OUT/slices.txt"
wait
tar czf "$OUT/study.tgz" -C "$W" --exclude='dry_*' .
ls -la "$OUT"
