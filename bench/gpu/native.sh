# Sourced by the bench/gpu scripts that start from source on a GPU machine: gets libmmfuse and the harness
# (native-build.sh), prints the device, and runs the harness (every kernel against its CPU reference) into
# $out/harness.log. Sets build and out.
source bench/gpu/native-build.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || true
"$build/mmfuse_harness" 2>&1 | grep -v "^|" | tee "$out/harness.log"
