#!/bin/bash
# On a GPU machine (device tool, carry [".gpu"] from bench/gpu/bundle.sh): the soak of issue 6, random
# calls of every operation on the CUDA backend from every core for SECONDS (default 120), one in eight
# checked against the scalar reference, native and device memory printed each second. Exit status as
# `mmfuse stress`: 1 on a mismatch, 2 on memory growth. Log in $OUT/stress.log when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .gpu/jre/bin/java ] || { echo "no .gpu/ bundle: run bench/gpu/bundle.sh on the build machine and carry .gpu" >&2; exit 2; }
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
status=0
.gpu/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Dmmfuse.backend=cuda \
    -cp ".gpu/lib/*" org.mmfuse.cli.Main stress --seconds "${1:-120}" 2>&1 | tee "${OUT:-/tmp}/stress.log" || status=$?
echo
echo "| seconds | first line | last line | summary |"
echo "|---|---|---|---|"
log="${OUT:-/tmp}/stress.log"
echo "| ${1:-120} | $(grep -m1 'calls/s' "$log" || true) | $(grep 'calls/s' "$log" | tail -1 || true) | $(grep '^stress:' "$log" | tail -1 || true) |"
exit $status
