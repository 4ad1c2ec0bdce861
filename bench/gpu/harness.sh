#!/bin/bash
# On a GPU machine (device tool, no carry needed): builds libmmfuse and the native harness with nvcc,
# checks every kernel against its CPU reference on random shapes, then prints the timing table.
# Log in $OUT/harness.log when OUT is set. Exit status 1 on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/gpu/native-build.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader || true
"$build/mmfuse_harness" 2>&1 | tee "${OUT:-/tmp}/harness.log"
