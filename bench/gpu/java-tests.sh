#!/bin/bash
# On a GPU machine (device tool, carry [".gpu"] from bench/gpu/bundle.sh): the Java tests that reach the
# CUDA backend, one JVM per class under a time limit each, so that a slow or hung class is named rather
# than eating the whole call (a class past its limit prints its threads, SIGQUIT, then is killed).
# Usage: java-tests.sh [seconds per class, default 90] [Class or Class#method ...] (names under org.mmfuse).
# Prints a table row per class as it ends; a failing class's log stays in $OUT/tests-<class>.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -x .gpu/jre/bin/java ] || { echo "no .gpu/ bundle: run bench/gpu/bundle.sh on the build machine and carry .gpu" >&2; exit 2; }
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
out=${OUT:-/tmp}
limit=${1:-90}
shift || true
classes=("$@")
[ ${#classes[@]} -gt 0 ] || classes=(CudaTest cuda.CudaContextTest NativeBindingTest NativeMemoryTest ProbeTest
    ForcedBackendTest ConcatTest ConcatErrorsTest GemmTest AttentionTest BilinearTest ElementwiseTest
    FusionHelpersTest ConcurrencyTest FuzzTest TensorTest nn.FusionModelsTest nn.FusionSequencesTest
    nn.FactorizedFusionTest nn.MultiHeadCrossAttentionTest nn.ModelTest nn.ModelFuzzTest nn.PythonExportTest
    cli.StressTest) # PythonExportTest: the device has Python with torch; TorchParityTest needs libtorch, not bundled
status=0
echo "| class | verdict | seconds | tests |"
echo "|---|---|---|---|"
for class in "${classes[@]}"; do
    select="--select-class"
    [[ $class == *"#"* ]] && select="--select-method" # Class#method: one test
    log="$out/tests-$class.log" start=$SECONDS
    timeout -k 5 -s QUIT "$limit" .gpu/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
        -jar .gpu/junit/junit-platform-console-standalone-*.jar execute --disable-banner --details=summary \
        --class-path ".gpu/test-classes:$(ls .gpu/lib/*.jar | tr '\n' ':')" $select "org.mmfuse.$class" \
        > "$log" 2>&1
    rc=$?
    case $rc in 0) verdict=passed ;; 124|137) verdict="TIMED OUT"; status=1 ;; *) verdict="FAILED ($rc)"; status=1 ;; esac
    counts=$(grep -oE "[0-9]+ tests (successful|failed|skipped|aborted)" "$log" | tr '\n' ' ')
    echo "| $class | $verdict | $((SECONDS - start)) | $counts |"
    [ $rc = 0 ] && rm -f "$log"
done
exit $status
