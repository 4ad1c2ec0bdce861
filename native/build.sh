#!/bin/bash
# Builds MMFuse's native side; Maven runs it after compiling the Java classes (process-classes).
#   1. nvcc: kernels/*.cu + native/src/*.cpp -> libmmfuse.so (sm_80 and sm_90 code, compute_90 PTX for
#      newer GPUs), linked against the shared CUDA runtime, the one the JavaCPP CUDA presets load;
#   2. g++: native/harness -> mmfuse_harness (checks and times every kernel on a GPU, no Java needed),
#      and mmfuse_harness_sanitized: the harness with the C ABI's host code (native/src) built under
#      AddressSanitizer and UBSan, linked with the same kernel objects (its host checks run anywhere);
#   3. JavaCPP: the JNI glue of org.mmfuse.cuda.MmfNative -> libjnimmfuse.so (warnings are errors, but for
#      the JNI signatures' unused env/class parameters);
#   4. the JNI glue and the C ABI's host code again under AddressSanitizer and UBSan, in
#      <native build dir>/sanitized (not in the jar), for a JVM started with the ASan runtime preloaded
#      (NativeHarnessTest).
# Both libraries go to <classes>/org/mmfuse/cuda/linux-x86_64/, where JavaCPP's Loader finds them in
# the jar. Without nvcc nothing is built and the library runs CPU-only.
# Usage: native/build.sh <javacpp.jar> <classes dir> <native build dir>   (Maven)
#        native/build.sh --native-only <native build dir>                  (steps 1-2, e.g. on a GPU machine)
set -euo pipefail
if [ "${1:-}" = "--native-only" ]; then
    javacpp_jar="" classes="" out=$2
else
    javacpp_jar=$1 classes=$2 out=$3
fi
root=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v nvcc >/dev/null 2>&1; then
    echo "mmfuse: nvcc not found: building CPU-only (no CUDA kernels, no JNI library)"
    exit 0
fi
cuda_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
[ -f "$cuda_home/include/cuda_runtime.h" ] || cuda_home=/usr/local/cuda
mkdir -p "$out"

# Hopper-only kernels (wgmma, TMA) will add -gencode arch=compute_90a,code=sm_90a.
arch="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"
warn="-Wall,-Wextra"
# The kernels once, as objects both the library and the sanitized harness link.
mkdir -p "$out/kernels"
for cu in "$root"/kernels/*.cu; do
    nvcc -std=c++17 -O3 --threads 0 -Xcompiler -fPIC,$warn -Werror all-warnings $arch -I"$root/native/include" \
        -I"$root/kernels" -c -o "$out/kernels/$(basename "$cu" .cu).o" "$cu"
done
nvcc -std=c++17 -O3 -Xcompiler -fPIC,$warn -Werror all-warnings -I"$root/native/include" -I"$root/kernels" \
    -cudart shared -shared -Xlinker -rpath,'$ORIGIN':"$cuda_home/lib64" \
    -o "$out/libmmfuse.so" "$out"/kernels/*.o "$root"/native/src/*.cpp
g++ -std=c++17 -O2 -Wall -Wextra -Werror -I"$root/native/include" -I"$cuda_home/include" \
    -I"$root/kernels" "$root"/native/harness/*.cpp -L"$out" -lmmfuse -L"$cuda_home/lib64" -lcudart \
    -Wl,-rpath,'$ORIGIN' -o "$out/mmfuse_harness"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
sanitizers=0
if echo 'int main() {}' | g++ $sanitize -x c++ - -o "$out/.sanitizer-probe" 2>/dev/null; then
    sanitizers=1
    g++ -std=c++17 -O1 -g $sanitize -Wall -Wextra -Werror -I"$root/native/include" -I"$cuda_home/include" \
        -I"$root/kernels" "$root"/native/harness/*.cpp "$root"/native/src/*.cpp "$out"/kernels/*.o \
        -L"$cuda_home/lib64" -lcudart -Wl,-rpath,"$cuda_home/lib64" -o "$out/mmfuse_harness_sanitized"
else
    echo "mmfuse: g++ has no AddressSanitizer/UBSan runtime here: no sanitized harness"
fi
rm -f "$out/.sanitizer-probe"
[ -n "$classes" ] || { echo "mmfuse: built $out/libmmfuse.so and $out/mmfuse_harness"; exit 0; }

libdir="$classes/org/mmfuse/cuda/linux-x86_64"
mkdir -p "$libdir"
cp "$out/libmmfuse.so" "$libdir/"
java -cp "$javacpp_jar:$classes" org.bytedeco.javacpp.tools.Builder \
    -d "$libdir" -Dplatform.includepath="$root/native/include" -Dplatform.linkpath="$out" \
    -Xcompiler -Wall -Xcompiler -Wextra -Xcompiler -Wno-unused-parameter -Xcompiler -Werror \
    org.mmfuse.cuda.MmfNative > "$out/javacpp.log" 2>&1 || { cat "$out/javacpp.log"; exit 1; }
if [ $sanitizers = 1 ]; then
    sanitized="$out/sanitized/org/mmfuse/cuda/linux-x86_64"
    mkdir -p "$sanitized"
    g++ -std=c++17 -O1 -g -shared -fPIC $sanitize -Wall -Wextra -Werror -I"$root/native/include" \
        -I"$cuda_home/include" -I"$root/kernels" "$root"/native/src/*.cpp "$out"/kernels/*.o \
        -L"$cuda_home/lib64" -lcudart -Wl,-rpath,"$cuda_home/lib64" -o "$sanitized/libmmfuse.so"
    sanitize_glue=""
    for flag in $sanitize; do sanitize_glue="$sanitize_glue -Xcompiler $flag"; done
    java -cp "$javacpp_jar:$classes" org.bytedeco.javacpp.tools.Builder \
        -d "$sanitized" -Dplatform.includepath="$root/native/include" -Dplatform.linkpath="$sanitized" \
        -Xcompiler -Wall -Xcompiler -Wextra -Xcompiler -Wno-unused-parameter -Xcompiler -Werror $sanitize_glue \
        org.mmfuse.cuda.MmfNative > "$out/javacpp-sanitized.log" 2>&1 || { cat "$out/javacpp-sanitized.log"; exit 1; }
fi
echo "mmfuse: built libmmfuse.so (sm_80, sm_90, compute_90 PTX) and its JNI glue with $(nvcc --version | grep -o 'release [0-9.]*')"
