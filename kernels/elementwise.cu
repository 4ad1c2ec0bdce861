// elementwise.cu - activations, layer norm, softmax, the fusion helpers and the sum of a split product's
// partials: memory-bound passes, one block per row for the row reductions (fixed-order sums:
// bit-identical results run to run).
#include <math.h>

#include <algorithm>

#include "common.cuh"

namespace mmf {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridX = 2147483647;  // gridDim.x's limit

__global__ void activation_kernel(const float* x, int64_t n, int activation, float* out) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        out[i] = activated(x[i], activation);
    }
}

// Sum (or max) over the block in a fixed order; every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float v, float* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float other = __shfl_down_sync(0xffffffffu, v, offset);
        v = kMax ? fmaxf(v, other) : v + other;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // the previous reduction's readers are done with shared
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = shared[0];
        for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) total = kMax ? fmaxf(total, shared[w]) : total + shared[w];
        shared[32] = total;
    }
    __syncthreads();
    return shared[32];
}

// One block per row: the mean, the biased variance of the deviations, then the affine map.
__global__ void layer_norm_kernel(const float* x, int dim, const float* weight, const float* bias, float eps, float* out) {
    __shared__ float shared[33];
    const float* row = x + static_cast<int64_t>(blockIdx.x) * dim;
    float* to = out + static_cast<int64_t>(blockIdx.x) * dim;
    float s = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s += row[i];
    const float mean = block_reduce<false>(s, shared) / dim;
    float q = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) q += (row[i] - mean) * (row[i] - mean);
    const float inverse = rsqrtf(block_reduce<false>(q, shared) / dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = (row[i] - mean) * inverse;
        if (weight != nullptr) v *= weight[i];
        if (bias != nullptr) v += bias[i];
        to[i] = v;
    }
}

// One block per row: the max (NaN if any value is NaN, as torch), then e^(x - max) summed, then scaled.
__global__ void softmax_kernel(const float* x, int dim, float* out) {
    __shared__ float shared[33];
    const float* row = x + static_cast<int64_t>(blockIdx.x) * dim;
    float* to = out + static_cast<int64_t>(blockIdx.x) * dim;
    float m = -INFINITY;
    bool nan = false;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        m = fmaxf(m, row[i]);
        nan |= row[i] != row[i];
    }
    float max = block_reduce<true>(nan ? NAN : m, shared);
    if (__syncthreads_or(nan)) max = NAN;  // fmaxf drops NaN: carry it explicitly
    float s = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float e = expf(row[i] - max);
        to[i] = e;
        s += e;
    }
    const float inverse = 1.f / block_reduce<false>(s, shared);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) to[i] *= inverse;
}

__global__ void binary_kernel(int op, const float* a, const float* b, int64_t n, int64_t b_n, float* out) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float y = b[b_n == n ? i : i % b_n];
        out[i] = op == kBinaryAdd ? a[i] + y : op == kBinarySubtract ? a[i] - y : a[i] * y;
    }
}

// One thread per (sample, channel), walking the positions in order: neighbouring threads read
// neighbouring channels, so each position's row is read coalesced.
__global__ void pool_sequence_kernel(const float* x, const float* mask, int64_t batch, int64_t length, int64_t channels,
                                     int mode, float* out) {
    const int64_t positions = mode == kPoolFirst && length > 1 ? 1 : length;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < batch * channels;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = i / channels, c = i % channels;
        float acc = mode == kPoolMax ? -INFINITY : 0.f;
        int64_t kept = 0;
        for (int64_t p = 0; p < positions; ++p) {
            if (mask != nullptr && mask[b * length + p] == 0.f) continue;
            const float v = x[(b * length + p) * channels + c];
            acc = mode == kPoolMax ? (v != v || acc != acc ? NAN : fmaxf(acc, v)) : acc + v;  // fmaxf drops NaN
            ++kept;
        }
        out[i] = kept == 0 ? 0.f : mode == kPoolMean ? acc * (1.f / static_cast<float>(kept)) : acc;
    }
}

__global__ void fill_absent_kernel(const float* x, const float* present, const float* fill, int64_t rows,
                                   int64_t inner, float* out) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * inner;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        out[i] = present[i / inner] != 0.f ? x[i] : fill != nullptr ? fill[i % inner] : 0.f;
    }
}

// out (+)= weights[row, term] x, the first term writing; a zero weight adds nothing and never reads x.
__global__ void weighted_accumulate_kernel(const float* x, const float* weights, int64_t count, int64_t term,
                                           int64_t rows, int64_t inner, float* out) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * inner;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float w = weights[(i / inner) * count + term];
        const float before = term == 0 ? 0.f : out[i];
        out[i] = w == 0.f ? before : __fadd_rn(before, __fmul_rn(w, x[i]));  // unfused, as on the CPU
    }
}

// out = bias + partials[0] + partials[1] + ..., one element per thread; neighbouring threads read
// neighbouring elements of each partial.
__global__ void sum_slices_kernel(const float* partials, int slices, int64_t count, int64_t cols, const float* bias,
                                  float* out) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        float sum = bias != nullptr ? bias[i % cols] : 0.f;
        for (int s = 0; s < slices; ++s) sum += partials[s * count + i];
        out[i] = sum;
    }
}

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }

}  // namespace

cudaError_t launch_binary(int op, const float* a, const float* b, int64_t n, int64_t b_n, float* out,
                          cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (n == 0) return cudaSuccess;
    binary_kernel<<<grid_for(n), kThreads, 0, stream>>>(op, a, b, n, b_n, out);
    return cudaGetLastError();
}

cudaError_t launch_sum_slices(const float* partials, int slices, int64_t rows, int64_t cols, const float* bias,
                              float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (rows * cols == 0) return cudaSuccess;
    sum_slices_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(partials, slices, rows * cols, cols, bias, out);
    return cudaGetLastError();
}

cudaError_t launch_pool_sequence(const float* x, const float* mask, int64_t batch, int64_t length, int64_t channels,
                                 int mode, float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (batch * channels == 0) return cudaSuccess;
    pool_sequence_kernel<<<grid_for(batch * channels), kThreads, 0, stream>>>(x, mask, batch, length, channels, mode, out);
    return cudaGetLastError();
}

cudaError_t launch_fill_absent(const float* x, const float* present, const float* fill, int64_t rows, int64_t inner,
                               float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (rows * inner == 0) return cudaSuccess;
    fill_absent_kernel<<<grid_for(rows * inner), kThreads, 0, stream>>>(x, present, fill, rows, inner, out);
    return cudaGetLastError();
}

cudaError_t launch_weighted_accumulate(const float* x, const float* weights, int64_t count, int64_t term, int64_t rows,
                                       int64_t inner, float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (rows * inner == 0) return cudaSuccess;
    weighted_accumulate_kernel<<<grid_for(rows * inner), kThreads, 0, stream>>>(x, weights, count, term, rows, inner, out);
    return cudaGetLastError();
}

cudaError_t launch_activation(const float* x, int64_t n, int activation, float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (n == 0) return cudaSuccess;
    const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
    activation_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, n, activation, out);
    return cudaGetLastError();
}

cudaError_t launch_layer_norm(const float* x, int64_t rows, int dim, const float* weight, const float* bias, float eps,
                              float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (rows == 0 || dim == 0) return cudaSuccess;
    for (int64_t start = 0; start < rows; start += kMaxGridX) {  // one block a row, in slabs of gridDim.x's limit
        const auto slab = static_cast<unsigned>(std::min(kMaxGridX, rows - start));
        layer_norm_kernel<<<slab, kThreads, 0, stream>>>(x + start * dim, dim, weight, bias, eps, out + start * dim);
    }
    return cudaGetLastError();
}

cudaError_t launch_softmax(const float* x, int64_t rows, int dim, float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (rows == 0 || dim == 0) return cudaSuccess;
    for (int64_t start = 0; start < rows; start += kMaxGridX) {
        const auto slab = static_cast<unsigned>(std::min(kMaxGridX, rows - start));
        softmax_kernel<<<slab, kThreads, 0, stream>>>(x + start * dim, dim, out + start * dim);
    }
    return cudaGetLastError();
}

}  // namespace mmf
