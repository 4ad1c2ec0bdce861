// common.cuh - device helpers shared by the kernels.
#pragma once

#include <math.h>
#include <stdint.h>

#include "kernels.h"

namespace mmf {

// The activations of mmf_activation, as PyTorch defines them; NaN stays NaN.
__device__ __forceinline__ float activated(float v, int activation) {
    switch (activation) {
        case kActivationRelu: return v > 0.f || v != v ? v : 0.f;
        case kActivationTanh: return tanhf(v);
        case kActivationSigmoid: return 1.f / (1.f + expf(-v));
        case kActivationGelu: return v * normcdff(v);
        default: return v;
    }
}

// Largest i in [0, n) with key(i) <= target, for keys ascending and key(0) <= target, found by the
// whole warp in log32(n) steps: each lane tests one of 32 evenly spaced candidates per step.
// Every lane of the warp must call it; all get the same answer.
template <typename KeyAt>
__device__ __forceinline__ int warp_upper_search(int n, int64_t target, KeyAt key) {
    const int lane = threadIdx.x & 31;
    int lo = 0, hi = n;  // the answer lies in [lo, hi)
    while (hi - lo > 1) {
        const int step = (hi - lo + 31) / 32;
        const int i = lo + lane * step;
        const bool fits = i < hi && key(i) <= target;
        const unsigned mask = __ballot_sync(0xffffffffu, fits);
        const int last = 31 - __clz(mask);  // lane 0 always fits, so mask != 0
        lo += last * step;
        hi = min(hi, lo + step);
    }
    return lo;
}

}  // namespace mmf
