#!/bin/bash
# On a GPU machine (device tool, carry [".gpu"] made by bench/gpu/bundle.sh): the Java tests that reach the
# CUDA backend (java-tests.sh: one JVM per class, a table), then the CUDA benchmarks (concatenation,
# attention, the bilinear family) from Java; the tables are last.
# Logs go to $OUT (the device tool brings them back) when it is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .gpu/jre/bin/java ] || { echo "no .gpu/ bundle: run bench/gpu/bundle.sh on the build machine and carry .gpu" >&2; exit 2; }
out=${OUT:-/tmp}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
java=(.gpu/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
"${java[@]}" -cp ".gpu/lib/*" org.mmfuse.cli.Main info | tee "$out/info.log"
status=0
bash bench/gpu/java-tests.sh 2>&1 | tee "$out/java-tests.log" || status=$?
"${java[@]}" -cp ".gpu/bench-classes:.gpu/bench-lib/*:.gpu/lib/*" org.mmfuse.bench.QuickBench ConcatCudaBench AttentionCudaBench BilinearCudaBench 2>&1 \
    | tee "$out/java-bench.log"
exit $status
