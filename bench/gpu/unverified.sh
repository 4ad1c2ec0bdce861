#!/bin/bash
# On a GPU machine, the first call of a session: what has landed since the last GPU run, checked and timed in
# one call (no carry needed; with .gpu carried from bench/gpu/bundle.sh it skips nvcc). The native harness
# checks every kernel against its CPU reference (the one-kernel compact pooling, the exact rows, the sum of
# a product's k slices and the 128-row attention blocks among them); then the bilinear family beside
# PyTorch's composites (bilinear.py: compact pooling in one kernel, MFB with its projections split along
# k and the slice count swept) and the 16-bit attention beside PyTorch's SDPA, with the 64-row blocks
# beside the 128-row ones (attention.py). With .gpu carried, then the Java tests of the shipped CUDA calls
# (GemmTest and CudaTest: the k split at every matmul precision, matmul's B not transposed as well as
# linear's; verify.sh runs them all). The tables are last. Logs in $OUT when it is set.
# Exit status 1 on any mismatch.
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/gpu/native-build.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || true
status=0
"$build/mmfuse_harness" --checks-only > "$out/harness.log" 2>&1 || status=1
grep -E "device|passed|failed|FAIL" "$out/harness.log" | head -40
PYTHONUNBUFFERED=1 python3 bench/gpu/bilinear.py "$build" > "$out/bilinear.log" 2>&1 || status=1
PYTHONUNBUFFERED=1 MMFUSE_DTYPES="bfloat16,bfloat16 64 rows" python3 bench/gpu/attention.py "$build" \
    > "$out/attention.log" 2>&1 || status=1
grep -E -A3 "FAIL|Traceback|Error" "$out/bilinear.log" "$out/attention.log" | head -20
tests=""
if [ -x .gpu/jre/bin/java ]; then
    tests=$(bash bench/gpu/java-tests.sh 90 GemmTest CudaTest) || status=1
fi
echo
grep -E "^\||: product " "$out/bilinear.log"
echo
grep -E "^\|" "$out/attention.log"
[ -n "$tests" ] && { echo; echo "$tests"; }
echo "exit status $status"
exit $status
