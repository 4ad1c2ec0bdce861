#!/bin/bash
# On a GPU machine (device tool; carry [".gpu"] from bench/gpu/bundle.sh for the Java part, optional):
# every kernel under compute-sanitizer's four tools. The native harness's kernel checks (concat/split,
# attention, the bilinear family; no timing) under memcheck, racecheck, initcheck and synccheck; then,
# with a .gpu bundle, the Java tests of the elementwise, model and fusion operations on the CUDA
# backend under memcheck (their kernels have no harness check). A table of the tools' verdicts is last.
# Logs in $OUT (sanitizer-<tool>.log) when it is set. Exit status 1 if any tool reported an error.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/gpu/native-build.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
compute-sanitizer --version | head -2

declare -A verdict
status=0
for tool in memcheck racecheck initcheck synccheck; do
    log="$out/sanitizer-$tool.log"
    if compute-sanitizer --tool "$tool" --error-exitcode 9 "$build/mmfuse_harness" --checks-only > "$log" 2>&1; then
        verdict[$tool]="clean"
    else
        verdict[$tool]="FAILED (exit $?)"
        status=1
    fi
    verdict[$tool]="${verdict[$tool]}; $(grep -m1 'SUMMARY' "$log" || echo 'no summary')"
done

java_verdict="not run (no .gpu bundle)"
if [ -x .gpu/jre/bin/java ]; then
    export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
    log="$out/sanitizer-java-memcheck.log"
    # Only CUDA's allocations and kernels are watched; the JVM's own memory is not device memory.
    if compute-sanitizer --tool memcheck --error-exitcode 9 --target-processes all \
        .gpu/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
        -jar .gpu/junit/junit-platform-console-standalone-*.jar execute \
        --class-path ".gpu/test-classes:$(ls .gpu/lib/*.jar | tr '\n' ':')" \
        --select-class org.mmfuse.ElementwiseTest --select-class org.mmfuse.FusionHelpersTest \
        --select-class org.mmfuse.nn.FusionModelsTest --select-class org.mmfuse.nn.FusionSequencesTest \
        > "$log" 2>&1; then
        java_verdict="clean"
    else
        java_verdict="FAILED (exit $?)"
        status=1
    fi
    java_verdict="$java_verdict; $(grep -m1 'SUMMARY' "$log" || echo 'no summary'); $(grep -m1 'tests successful' "$log" || true)"
fi

echo
echo "| run | verdict |"
echo "|---|---|"
for tool in memcheck racecheck initcheck synccheck; do echo "| harness checks, $tool | ${verdict[$tool]} |"; done
echo "| Java CUDA tests (elementwise, models), memcheck | $java_verdict |"
exit $status
