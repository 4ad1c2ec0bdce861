#!/bin/bash
# On a GPU machine (device tool, no carry needed): builds libmmfuse and the harness with nvcc, runs the
# harness (every kernel against its CPU reference, the bilinear family's included), then times the
# bilinear family beside PyTorch's composites (bench/gpu/bilinear.py); the table is last.
# Logs in $OUT when it is set. Exit status 1 on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/gpu/native.sh
PYTHONUNBUFFERED=1 python3 bench/gpu/bilinear.py "$build" 2>&1 | tee "$out/bilinear.log"
