#!/usr/bin/env bash
# One lent GPU session, fed by build_payload.sh's chunks: the machine takes one chunk per call (carry .dev, which
# holds this script's copy, SUMS, LAYOUT and that call's chunk.NN), and runs the device studies.
#   call 1:      bash .dev/session.sh first        checks the machine, unpacks the caches and wheels from chunk.00,
#                                                   starts the PDE study in the background (setsid: it outlives the call)
#   calls 2..N-1: bash .dev/session.sh recv        stores the chunk, prints the PDE study's progress
#   call N:      bash .dev/session.sh final SECS   stores the last chunk, checks every SHA-256, installs MPNet's parts,
#                                                   runs the NLP studies for at most SECS (SIGINT: finished runs kept),
#                                                   stops the PDE study the same way, and packs every sweep into $OUT
# Environment: PDE_STUDIES (default cfd1d_fno_225), PDE_WORKERS (6), NLP_STUDIES (mpnet_k4 mpnet_k16),
# NLP_RUNS_PER_GPU (5 6: one value per NLP study). Publish at home: benchmarks/nlp_study/publish.sh and
# benchmarks/pde_study/merge.py on the unpacked folders.
# Before the first call the working tree itself must fit beside a chunk: the published results (docs/results, ~67 MiB)
# are taken out of the index for the calls and put back after, with nothing committed in between:
#   printf '/.dev/\n/docs/results/\n' >> .git/info/exclude && git rm -r --cached -q docs/results
#   ... the calls ...;  git reset -q -- docs/results  (and drop the docs/results line from .git/info/exclude)
set -u
phase=$1
R=$PWD
K=/tmp/chunks
mkdir -p "$K"
for f in .dev/chunk.*; do [ -f "$f" ] && cp "$f" "$K/"; done
cp .dev/SUMS .dev/LAYOUT "$K/"
t0=$(date +%s)
export MODELBALANCE_CACHE=/tmp/mbcache OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONUNBUFFERED=1
progress() {
  for s in /tmp/study/w*/*/; do [ -d "$s/runs" ] && echo "$s: $(ls "$s/runs" | wc -l) runs"; done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
}
if [ "$phase" = first ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
  (cd "$K" && grep chunk.00 SUMS | sha256sum -c -) || exit 1
  head -c "$(awk '$1 == "A.tgz" {print $2}' "$K/LAYOUT")" "$K/chunk.00" > /tmp/A.tgz
  rm -rf /tmp/x && mkdir -p /tmp/x && tar xzf /tmp/A.tgz -C /tmp/x || exit 1
  rm -rf /tmp/mbcache && mv /tmp/x/mbcache /tmp/mbcache && mkdir -p .whl && cp /tmp/x/whl/*.whl .whl/
  PYTHONPATH=$R/src python3 -c "
from modelbalance.experiments.text.spam import load_spam
texts = load_spam().text
mean = sum(map(len, texts)) / len(texts)
print(f'spam: {len(texts)} messages, {mean:.0f} characters on average')
assert mean > 100, 'the parse cache did not answer: the corpus arrived as empty files'" || exit 1
  setsid nohup env STUDIES="${PDE_STUDIES:-cfd1d_fno_225}" WORKERS="${PDE_WORKERS:-6}" STUDY_S=3000 W=/tmp/study \
    bash benchmarks/pde_study/run_device.sh /tmp/pde_out > /tmp/pde.log 2>&1 < /dev/null &
  sleep 25
  cat /tmp/pde.log; progress
fi
[ "$phase" = recv ] && progress
if [ "$phase" = final ]; then
  limit=${2:?seconds for the NLP studies}
  (cd "$K" && sha256sum -c --quiet SUMS) || exit 1  # every chunk present and intact
  cat "$K"/chunk.* > /tmp/stream.bin
  mkdir -p /tmp/mpw && offset=0
  while read -r name size; do
    [ "$name" != A.tgz ] && tail -c +"$((offset + 1))" /tmp/stream.bin | head -c "$size" > "/tmp/mpw/$name"
    offset=$((offset + size))
  done < "$K/LAYOUT"
  rm -f /tmp/stream.bin
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/mpw/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$R/src
  python3 -c "from modelbalance.experiments.models.mpnet import mpnet_path; print(mpnet_path())" || exit 1
  echo "MPNet assembled after $(( $(date +%s) - t0 )) s"; progress
  left=$((limit - ($(date +%s) - t0)))
  read -r -a studies <<< "${NLP_STUDIES:-mpnet_k4 mpnet_k16}"
  read -r -a per_gpu <<< "${NLP_RUNS_PER_GPU:-5 6}"
  for i in "${!studies[@]}"; do
    PUBLISH=0 STUDY_S=$left RUNS_PER_GPU=${per_gpu[$i]:-4} \
      bash benchmarks/nlp_study/run_device.sh /tmp/nlp "${studies[$i]}" > "/tmp/nlp_${studies[$i]}.out" 2>&1 &
  done
  sleep 60; progress; top -bn1 | head -12
  wait
  echo "NLP studies ended after $(( $(date +%s) - t0 )) s"; tail -n 5 /tmp/nlp_*.out
  pkill -INT -f "cli.main experiment --config benchmarks/pde_study"
  for _ in $(seq 90); do pgrep -f "pde_study/run_device.sh" > /dev/null || break; sleep 1; done
  pkill -KILL -f "cli.main experiment"
  tail -n 20 /tmp/pde.log
  for s in "${studies[@]}"; do tar czf "$OUT/nlp_$s.tgz" -C /tmp/nlp "$s" "$s.log"; done
  tar czf "$OUT/pde.tgz" -C /tmp pde_out study pde.log
  tar czf "$OUT/logs.tgz" -C /tmp $(cd /tmp && ls nlp_*.out)
  ls -la "$OUT"
fi
echo "phase $phase done after $(( $(date +%s) - t0 )) s"
