#!/usr/bin/env bash
# PDE studies (default: the Darcy FNO and Darcy UNet ones) on a one-GPU machine with many CPU cores (a lent H100/H200):
# one sweep per study, its runs packed onto the GPU by the runner itself (--workers W --runs-per-gpu W, one CPU thread
# each), the studies one after another, each stopped after $STUDY_S seconds with SIGINT (the workers stop, every
# finished run is already saved, none half-written). For each W of $WORKERS the studies run in their own folders, so
# "WORKERS='1 12'" measures runs per hour at W=12 against one run at a time (throughput.tsv). Report on this
# machine afterwards: python benchmarks/pde_study/merge.py --config S.toml --out docs/results/S OUTDIR/w12/S
# Usage: bash benchmarks/pde_study/run_device.sh OUTDIR   (needs neuraloperator; .whl/ holds it where absent)
set -u
OUT=${1:?output folder}
STUDY_S=${STUDY_S:-300}
WORKERS=${WORKERS:-12}
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
for s in $STUDIES; do   # generate (and cache) the data once, before the workers load it
  python3 -m modelbalance.cli.main experiment --config $CONFIGS/$s.toml --out "$W/dry_$s" --dry-run \
    > "$W/dry_$s.log" 2>&1
done
printf 'study\tworkers\truns_ok\truns_failed\tseconds\truns_per_hour\n' > "$OUT/throughput.tsv"
for w in $WORKERS; do
  for s in $STUDIES; do
    folder=$W/w$w/$s; mkdir -p "$W/w$w"
    start=$(date +%s.%N)
    timeout -s INT -k 60 "$STUDY_S" python3 -m modelbalance.cli.main experiment --config $CONFIGS/$s.toml \
      --out "$folder" --device "$DEVICE" --workers "$w" --runs-per-gpu "$w" --threads 1 --no-plots --no-progress \
      > "$folder.log" 2>&1
    echo "$s workers=$w exit $?" >> "$OUT/studies.txt"
    python3 - "$s" "$w" "$folder" "$start" "$(date +%s.%N)" >> "$OUT/throughput.tsv" <<'EOF'
import json, pathlib, sys
study, workers, folder, start, end = sys.argv[1:]
status = [json.loads(p.read_text()).get("status") for p in pathlib.Path(folder, "runs").glob("*.json")]
ok, seconds = status.count("ok"), float(end) - float(start)
print(f"{study}\t{workers}\t{ok}\t{len(status) - ok}\t{seconds:.0f}\t{3600 * ok / seconds:.0f}")
EOF
  done
done
wait
tar czf "$OUT/study.tgz" -C "$W" --exclude='dry_*' .
cat "$OUT/throughput.tsv"
ls -la "$OUT"
