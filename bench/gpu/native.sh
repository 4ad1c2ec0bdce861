# Sourced by the bench/gpu scripts that start from source on a GPU machine: builds libmmfuse and the
# harness with nvcc into $build, prints the device, and runs the harness (every kernel against its CPU
# reference) into $out/harness.log. Sets build and out.
export PATH=/usr/local/cuda/bin:$PATH
build=/tmp/mmfuse-native
out=${OUT:-/tmp}
bash native/build.sh --native-only "$build"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || true
"$build/mmfuse_harness" 2>&1 | grep -v "^|" | tee "$out/harness.log"
