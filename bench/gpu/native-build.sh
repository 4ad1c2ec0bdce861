# Sourced by the bench/gpu scripts on a GPU machine: puts libmmfuse and the native harness into $build
# and sets build and out. With a carried .gpu bundle (bench/gpu/bundle.sh) it takes the harness and the
# library built on the build machine, saving the device minutes of nvcc; otherwise nvcc builds them here.
export PATH=/usr/local/cuda/bin:$PATH
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
build=/tmp/mmfuse-native
out=${OUT:-/tmp}
if [ -x .gpu/native/mmfuse_harness ]; then
    mkdir -p "$build"
    cp .gpu/native/mmfuse_harness "$build/"
    # The library travels once, inside the jar; the harness finds it beside itself ($ORIGIN).
    python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("org/mmfuse/cuda/linux-x86_64/libmmfuse.so"))' \
        .gpu/lib/mmfuse-*.jar "$build/libmmfuse.so"
else
    bash native/build.sh --native-only "$build"
fi
