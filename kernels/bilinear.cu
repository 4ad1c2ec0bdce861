// bilinear.cu - the bilinear family's own kernels. Their products (X^T Y, x2 W^T, projections) are
// cuBLAS GEMMs and their transforms cuFFT, called by the host; these kernels are what sits between:
// the finishing of pooled rows, the bilinear layer's row dots, the count sketches, the spectrum product
// and factorized pooling. Compact pooling of vectors has its own transforms in one kernel (compact_fft.h)
// where the length allows. Every reduction has a fixed order (no atomics): results are bit-identical
// run to run.
#include <algorithm>

#include "common.cuh"
#include "compact_fft.h"

namespace mmf {
namespace {

constexpr int kThreads = 256;

// Block-wide sum in a fixed order: warp shuffles, then warp 0 over the warps' sums. All threads call it;
// thread 0 gets the total. shared holds blockDim.x / 32 values.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : T(0);
    if (warp == 0) {
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Pass 1 of finishing: each block scales (and roots) one chunk of one row in place and writes the
// chunk's sum of squares to partial[row * chunks + chunk]. grid (chunks, rows). The squares are summed in
// double: a float's square overflows float from |v| = 1.8e19, and the norm of such a row is still finite.
__global__ void finish_chunks(float* z, int64_t cols, int64_t chunk_cols, float scale, int root, float eps,
                              double* partial) {
    __shared__ double shared[32];
    const int64_t row = blockIdx.y, first = blockIdx.x * chunk_cols;
    const int64_t last = min(cols, first + chunk_cols);
    double squares = 0;
    for (int64_t c = first + threadIdx.x; c < last; c += blockDim.x) {
        float v = z[row * cols + c] * scale;
        if (root) v = signed_sqrt(v, eps);
        z[row * cols + c] = v;
        squares += static_cast<double>(v) * v;
    }
    squares = block_sum(squares, shared);
    if (partial != nullptr && threadIdx.x == 0) partial[row * gridDim.x + blockIdx.x] = squares;
}

// Pass 2: every block sums its row's partials in order and divides its chunk by max(norm, 1e-12).
__global__ void normalize_chunks(float* z, int64_t cols, int64_t chunk_cols, const double* partial) {
    __shared__ double inverse;
    const int64_t row = blockIdx.y, first = blockIdx.x * chunk_cols;
    if (threadIdx.x == 0) {
        double sum = 0;
        for (unsigned i = 0; i < gridDim.x; ++i) sum += partial[row * gridDim.x + i];
        inverse = inverse_norm(sum);
    }
    __syncthreads();
    const int64_t last = min(cols, first + chunk_cols);
    for (int64_t c = first + threadIdx.x; c < last; c += blockDim.x) {
        z[row * cols + c] = static_cast<float>(z[row * cols + c] * inverse);
    }
}

// y[r * ldy + k] = x1[r, :] . t[r, k, :] + bias[k], one warp per output; t is x2 W^T viewed [rows, outs, in1].
__global__ void row_dots(const float* x1, const float* t, const float* bias, float* y, int64_t rows, int outs,
                         int in1, int64_t ldy) {
    const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (warp >= rows * outs) return;
    const int64_t r = warp / outs;
    const int k = static_cast<int>(warp % outs);
    const float* a = x1 + r * in1;
    const float* b = t + warp * in1;
    float sum = 0.f;
    for (int i = lane; i < in1; i += 32) sum = fmaf(a[i], b[i], sum);
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane == 0) y[r * ldy + k] = sum + (bias != nullptr ? bias[k] : 0.f);
}

// Count sketch by gathering: out[item, u] = sum over the input units i of bucket u (CSR: units
// [offsets[u], offsets[u + 1]) of `units`) of sign[i] x[item, i]. One thread per output.
__global__ void sketch_gather(const float* x, int64_t items, int dim, const int* offsets, const int* units,
                              const float* sign, int d, float* out) {
    const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (index >= items * d) return;
    const int64_t item = index / d;
    const int u = static_cast<int>(index % d);
    bool nonfinite_input = false;  // exact_rows marks the sample; the sum below is what matters here
    const float sum = sketch_bucket(x + item * dim, offsets, units, sign, u, nonfinite_input);
    // A batched cuFFT may transform two samples as one complex sequence, so a NaN would reach a neighbour;
    // the sample of a non-finite input is made NaN after the transforms (exact_rows). A sum that overflows
    // from finite inputs (|x| near float's limit) is zeroed too, and its sample not marked.
    out[index] = isfinite(sum) ? sum : 0.f;
}

// p = a * b / d, complex, elementwise over n values (the spectra of two sketches; 1/d is irfft's scale).
__global__ void spectrum_product(const float2* a, const float2* b, float2* p, int64_t n, float inverse_d) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float2 u = a[i], v = b[i];
    p[i] = make_float2((u.x * v.x - u.y * v.y) * inverse_d, (u.x * v.y + u.y * v.x) * inverse_d);
}

// The count sketch of each sample's outer-product sum Z [c1, c2]: out[b, k] = sum over i of
// s1[i] sum over j in bucket (k - h1[i]) mod d of y's sketch (CSR offsets2/units2) of s2[j] Z[b, i, j].
// One thread per output; each (i, j) is read by exactly one thread.
__global__ void outer_sketch_gather(const float* z, int64_t samples, int c1, int c2, const int* hash1,
                                    const float* sign1, const int* offsets2, const int* units2, const float* sign2,
                                    int d, float* out) {
    const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (index >= samples * d) return;
    const int64_t b = index / d;
    const int k = static_cast<int>(index % d);
    const float* zb = z + b * c1 * c2;
    float sum = 0.f;
    for (int i = 0; i < c1; ++i) {
        int bucket = k - hash1[i];
        if (bucket < 0) bucket += d;
        float row = 0.f;
        for (int e = offsets2[bucket]; e < offsets2[bucket + 1]; ++e) {
            row = fmaf(sign2[units2[e]], zb[static_cast<int64_t>(i) * c2 + units2[e]], row);
        }
        sum = fmaf(sign1[i], row, sum);
    }
    out[index] = sum;
}

// Factorized pooling: out[r, s, p] = sum over t < factor of e_s[p * factor + t], with
// e_s = prod over s' <= s of act(x[r, s', u]) act(y[r, s', u]). One thread per output.
__global__ void factorized_sums(const float* x, const float* y, int64_t rows, int stages, int units, int factor,
                                int activation, float* out) {
    const int pooled = units / factor;
    const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (index >= rows * stages * pooled) return;
    const int64_t r = index / (static_cast<int64_t>(stages) * pooled);
    const int s = static_cast<int>(index / pooled % stages);
    const int p = static_cast<int>(index % pooled);
    const int64_t width = static_cast<int64_t>(stages) * units;
    float sum = 0.f;
    for (int t = 0; t < factor; ++t) {
        const int u = p * factor + t;
        float e = 1.f;
        for (int stage = 0; stage <= s; ++stage) {
            const int64_t at = r * width + static_cast<int64_t>(stage) * units + u;
            e *= activated(x[at], activation) * activated(y[at], activation);
        }
        sum += e;
    }
    out[index] = sum;
}

// out[b, :] = NaN for every sample b whose x [x_len] or y [y_len] values hold a NaN or an infinity, else 0
// where its x or y is all zeros. One block per sample.
__global__ void exact_rows(const float* x, int64_t x_len, const float* y, int64_t y_len, float* out, int64_t d) {
    const int64_t b = blockIdx.x;
    bool bad = false, some_x = false, some_y = false;
    for (int64_t i = threadIdx.x; i < x_len; i += blockDim.x) {
        bad |= !isfinite(x[b * x_len + i]);
        some_x |= x[b * x_len + i] != 0.f;
    }
    for (int64_t i = threadIdx.x; i < y_len; i += blockDim.x) {
        bad |= !isfinite(y[b * y_len + i]);
        some_y |= y[b * y_len + i] != 0.f;
    }
    bad = __syncthreads_or(bad);
    some_x = __syncthreads_or(some_x);
    some_y = __syncthreads_or(some_y);
    if (!bad && some_x && some_y) return;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) out[b * d + i] = bad ? __int_as_float(0x7fc00000) : 0.f;
}

// The block's threads as compact_fft.h's lanes: each takes every blockDim.x-th item of a step.
struct BlockLanes {
    double* shared;  // 32 doubles

    __device__ int first() const { return threadIdx.x; }
    __device__ int step() const { return blockDim.x; }
    __device__ void sync() const { __syncthreads(); }
    __device__ bool any(bool v) const { return __syncthreads_or(v) != 0; }
    __device__ double sum(double v) const {  // the block's total, to every thread
        v = block_sum(v, shared);
        if (threadIdx.x == 0) shared[0] = v;  // after warp 0 has read shared[] in block_sum
        __syncthreads();
        v = shared[0];
        __syncthreads();  // read by all before a next sum writes shared[]
        return v;
    }
};

constexpr int kCompactThreads = 1024;
constexpr size_t kCompactStaticShared = 32 * sizeof(double);  // BlockLanes' scratch

// One block per sample; dynamic shared memory: plan.n complex values.
__global__ void __launch_bounds__(kCompactThreads) compact_pool(CompactPoolParams p, FftPlan plan) {
    extern __shared__ float2 spectrum[];
    __shared__ double shared[kCompactStaticShared / sizeof(double)];
    compact_pool_sample(BlockLanes{shared}, spectrum, plan, p, blockIdx.x);
}

// Blocks of kThreads covering `threads`; past gridDim.x's 2^31 - 1 limit, 0, so that the launch fails with
// cudaErrorInvalidConfiguration instead of a wrapped count running on part of the output.
unsigned blocks_for(int64_t threads) {
    const int64_t blocks = (threads + kThreads - 1) / kThreads;
    return blocks > INT32_MAX ? 0u : static_cast<unsigned>(blocks);
}

}  // namespace

int64_t finish_chunks_per_row(int64_t cols) { return cols == 0 ? 1 : (cols + kFinishChunk - 1) / kFinishChunk; }

cudaError_t launch_finish_rows(float* z, int64_t rows, int64_t cols, float scale, int root, float eps, int l2,
                               double* partial, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (rows == 0 || cols == 0) return cudaSuccess;
    const int64_t chunks = finish_chunks_per_row(cols), max_rows = 65535;  // gridDim.y's limit: slabs of rows
    for (int64_t start = 0; start < rows; start += max_rows) {
        const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(std::min(max_rows, rows - start)));
        float* slab = z + start * cols;
        double* sums = l2 ? partial + start * chunks : nullptr;
        finish_chunks<<<grid, kThreads, 0, stream>>>(slab, cols, kFinishChunk, scale, root, eps, sums);
        if (l2) normalize_chunks<<<grid, kThreads, 0, stream>>>(slab, cols, kFinishChunk, sums);
        const cudaError_t error = cudaGetLastError();
        if (error != cudaSuccess) return error;
    }
    return cudaSuccess;
}

cudaError_t launch_row_dots(const float* x1, const float* t, const float* bias, float* y, int64_t ldy, int64_t rows,
                            int outs, int in1, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (rows == 0 || outs == 0) return cudaSuccess;
    row_dots<<<blocks_for(rows * outs * 32), kThreads, 0, stream>>>(x1, t, bias, y, rows, outs, in1, ldy);
    return cudaGetLastError();
}

cudaError_t launch_sketch_gather(const float* x, int64_t items, int dim, const int* offsets, const int* units,
                                 const float* sign, int d, float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (items == 0) return cudaSuccess;
    sketch_gather<<<blocks_for(items * d), kThreads, 0, stream>>>(x, items, dim, offsets, units, sign, d, out);
    return cudaGetLastError();
}

cudaError_t launch_spectrum_product(const void* a, const void* b, void* p, int64_t n, float inverse_d,
                                    cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (n == 0) return cudaSuccess;
    spectrum_product<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const float2*>(a),
                                                               static_cast<const float2*>(b),
                                                               static_cast<float2*>(p), n, inverse_d);
    return cudaGetLastError();
}

cudaError_t launch_outer_sketch_gather(const float* z, int64_t samples, int c1, int c2, const int* hash1,
                                       const float* sign1, const int* offsets2, const int* units2,
                                       const float* sign2, int d, float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (samples == 0) return cudaSuccess;
    outer_sketch_gather<<<blocks_for(samples * d), kThreads, 0, stream>>>(z, samples, c1, c2, hash1, sign1,
                                                                           offsets2, units2, sign2, d, out);
    return cudaGetLastError();
}

cudaError_t launch_exact_rows(const float* x, int64_t x_len, const float* y, int64_t y_len, float* out,
                              int64_t samples, int64_t d, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (samples == 0 || d == 0) return cudaSuccess;
    exact_rows<<<static_cast<unsigned>(samples), kThreads, 0, stream>>>(x, x_len, y, y_len, out, d);
    return cudaGetLastError();
}

size_t compact_pool_shared_bytes(int d) {
    FftPlan plan;
    return make_fft_plan(d, &plan) ? static_cast<size_t>(d) * sizeof(float2) + kCompactStaticShared : 0;
}

cudaError_t launch_compact_pool(const CompactPoolParams& p, int shared_optin, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    FftPlan plan;
    const size_t dynamic = static_cast<size_t>(p.d) * sizeof(float2);
    if (!make_fft_plan(p.d, &plan) || dynamic + kCompactStaticShared > static_cast<size_t>(shared_optin))
        return cudaErrorInvalidValue;
    if (p.batch == 0) return cudaSuccess;
    // The kernel's limit is the device's, the same in every call: threads launching other lengths at the same
    // time cannot lower it under each other's launches.
    cudaError_t error = cudaFuncSetAttribute(compact_pool, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             shared_optin - static_cast<int>(kCompactStaticShared));
    if (error != cudaSuccess) return error;
    // A thread per four values (a radix-4 stage's butterflies, one each), in whole warps.
    const int threads = std::max(32, std::min(kCompactThreads, (p.d / 4 + 31) / 32 * 32));
    const unsigned blocks = p.batch > INT32_MAX ? 0u : static_cast<unsigned>(p.batch);
    compact_pool<<<blocks, threads, dynamic, stream>>>(p, plan);
    return cudaGetLastError();
}

cudaError_t launch_factorized_sums(const float* x, const float* y, int64_t rows, int stages, int units, int factor,
                                   int activation, float* out, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    const int64_t outputs = rows * stages * (units / factor);
    if (outputs == 0) return cudaSuccess;
    factorized_sums<<<blocks_for(outputs), kThreads, 0, stream>>>(x, y, rows, stages, units, factor, activation, out);
    return cudaGetLastError();
}

}  // namespace mmf
