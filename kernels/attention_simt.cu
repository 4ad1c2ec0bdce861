// attention_simt.cu - fused scaled dot-product attention on CUDA cores (fp32 arithmetic for any
// input type), the split-KV combine pass, and the dispatch between this kernel and the tensor-core
// one (attention_mma.cu).
//
// One block of 128 threads owns 32 query rows of one (batch, head) and streams the keys in tiles of
// 64 through shared memory, with the online softmax of flash attention: the 32 x 64 score tile lives
// in registers (a 4 x 4 patch per thread), then as probabilities in shared memory for the P V
// product, and the Lq x Lk matrix is never stored. Thread t owns rows 4 (t / 16) .. + 3; its keys are
// t % 16 + 16 kk (interleaved, so the float4 reads of 8 neighbouring threads fall in distinct banks)
// and its output columns are (t % 16 + 16 g) * vec .. + vec - 1. Scores are kept in base 2 (q is
// scaled by scale * log2 e when loaded) so the exponentials are exp2.
//
// The same kernel, with kWeights, is the weights pass: it recomputes each score tile and writes
// exp(s - lse) using the lse of the first pass, which costs one more q kᵀ but no Lq x Lk scratch.
#include <math.h>

#include "attention_common.cuh"

namespace mmf {

namespace {

constexpr int kSimtThreads = 128;

// Floats per shared-memory row for head dimension D: +4 moves each row by 4 banks.
template <int D>
__host__ __device__ constexpr int smem_stride() { return D + 4; }
constexpr int kProbStride = kAttentionKeyTile + 4;

template <int D, bool kWeights>
constexpr size_t simt_smem_bytes() {
    return sizeof(float) * (kAttentionSimtRows * smem_stride<D>() + kAttentionKeyTile * smem_stride<D>() +
                            (kWeights ? 0 : kAttentionKeyTile * smem_stride<D>() + kAttentionSimtRows * kProbStride));
}

// Copies rows [0, valid_rows) x columns [0, width) of a [*, H, width] tensor, starting at element
// `first` with `row_stride` elements per row, into dst (stride D + 4, as float, times `factor`);
// everything else of the D-wide tile is zeroed. `vec`: width % 4 == 0 and the base allows 4-element
// loads, decided once per launch.
template <typename T, int D>
__device__ __forceinline__ void load_tile(float* dst, int rows, const T* src, int64_t first, int64_t row_stride,
                                          int valid_rows, int width, bool vec, float factor) {
    constexpr int kGroups = D / 4;
    for (int e = threadIdx.x; e < rows * kGroups; e += kSimtThreads) {
        const int r = e / kGroups, d = (e % kGroups) * 4;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r < valid_rows && d < width) {
            const T* at = src + first + r * row_stride + d;
            if (vec) {
                if constexpr (sizeof(T) == 4) {
                    x = *reinterpret_cast<const float4*>(at);
                } else {
                    const uint2 raw = *reinterpret_cast<const uint2*>(at);
                    const T* h = reinterpret_cast<const T*>(&raw);
                    x = make_float4(to_float(h[0]), to_float(h[1]), to_float(h[2]), to_float(h[3]));
                }
            } else {
                x.x = to_float(at[0]);
                if (d + 1 < width) x.y = to_float(at[1]);
                if (d + 2 < width) x.z = to_float(at[2]);
                if (d + 3 < width) x.w = to_float(at[3]);
            }
        }
        x.x *= factor, x.y *= factor, x.z *= factor, x.w *= factor;
        *reinterpret_cast<float4*>(dst + r * smem_stride<D>() + d) = x;
    }
}

// Output columns of a thread: kColGroups groups of kVec adjacent columns, (c + 16 g) * kVec + e.
template <int D>
struct SimtColumns {
    static constexpr int kCols = D / 16;
    static constexpr int kVec = kCols < 4 ? kCols : 4;
    static constexpr int kColGroups = kCols / kVec;
};

// One tile of the online softmax and of O += P V for a thread's 4 rows: each row's max over the 16
// threads that share it, the rescale of the running sum and output, then the product with the
// probabilities staged in shared memory.
template <int D>
__device__ __forceinline__ void softmax_and_pv(float (&s)[4][4], float (&max2)[4], float (&sum)[4],
                                               float (&o)[4][D / 16], float* p_s, const float* v_s, int row0, int c) {
    using Cols = SimtColumns<D>;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        float tile_max = fmaxf(fmaxf(s[r][0], s[r][1]), fmaxf(s[r][2], s[r][3]));
#pragma unroll
        for (int lane_bit = 8; lane_bit > 0; lane_bit /= 2)
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, lane_bit));
        const float new_max = fmaxf(max2[r], tile_max);
        const float base = new_max == -INFINITY ? 0.f : new_max;  // a row with nothing to attend yet
        const float rescale = exp2f(max2[r] - base);
        max2[r] = new_max;
        float row_sum = 0.f;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            const float prob = exp2f(s[r][kk] - base);
            row_sum += prob;
            p_s[(row0 + r) * kProbStride + c + 16 * kk] = prob;
        }
        sum[r] = sum[r] * rescale + row_sum;  // this thread's share; the 16 shares are added at the end
#pragma unroll
        for (int x = 0; x < Cols::kCols; ++x) o[r][x] *= rescale;
    }
    __syncthreads();

#pragma unroll 2
    for (int j = 0; j < kAttentionKeyTile; j += 4) {
        float4 prob[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) prob[r] = *reinterpret_cast<const float4*>(p_s + (row0 + r) * kProbStride + j);
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
            const float* v_row_s = v_s + (j + jj) * smem_stride<D>();
#pragma unroll
            for (int g = 0; g < Cols::kColGroups; ++g) {
                float vv[Cols::kVec];
                if constexpr (Cols::kVec == 4) {
                    const float4 x = *reinterpret_cast<const float4*>(v_row_s + (c + 16 * g) * 4);
                    vv[0] = x.x, vv[1] = x.y, vv[2] = x.z, vv[3] = x.w;
                } else {
                    const float2 x = *reinterpret_cast<const float2*>(v_row_s + (c + 16 * g) * 2);
                    vv[0] = x.x, vv[1] = x.y;
                }
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const float pj = jj == 0 ? prob[r].x : jj == 1 ? prob[r].y : jj == 2 ? prob[r].z : prob[r].w;
#pragma unroll
                    for (int e = 0; e < Cols::kVec; ++e) o[r][g * Cols::kVec + e] += pj * vv[e];
                }
            }
        }
    }
}

// A thread's rows, normalised, to the output (or its split's scratch), and their lse.
template <typename T, int D>
__device__ __forceinline__ void store_rows(const AttentionParams& p, int b, int h, int q0, int split, int row0, int c,
                                           const float (&max2)[4], float (&sum)[4], const float (&o)[4][D / 16]) {
    using Cols = SimtColumns<D>;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int lane_bit = 8; lane_bit > 0; lane_bit /= 2) sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], lane_bit);
        const int i = q0 + row0 + r;
        if (i >= p.queries) continue;
        // a row that attended nothing stores zeros, not 0 x o: o may hold 0 x NaN from a hidden key's value
        const bool attended = sum[r] != 0.f;
        const float inverse = attended ? 1.f / sum[r] : 0.f;
#pragma unroll
        for (int g = 0; g < Cols::kColGroups; ++g)
#pragma unroll
            for (int e = 0; e < Cols::kVec; ++e) {
                const int d = (c + 16 * g) * Cols::kVec + e;
                if (d < p.value_dim) store_output<T>(p, b, h, i, split, d, attended ? o[r][g * Cols::kVec + e] * inverse : 0.f);
            }
        if (c == 0) store_lse(p, b, h, i, split, row_lse(max2[r], sum[r]));
    }
}

template <typename T, int D, bool kWeights>
__global__ void __launch_bounds__(kSimtThreads) attention_simt_kernel(const AttentionParams p, bool vec_qk,
                                                                      bool vec_v) {
    constexpr int kStride = smem_stride<D>();
    extern __shared__ float4 smem_f4[];
    float* q_s = reinterpret_cast<float*>(smem_f4);
    float* k_s = q_s + kAttentionSimtRows * kStride;
    float* v_s = k_s + kAttentionKeyTile * kStride;  // (not in the weights pass)
    float* p_s = v_s + kAttentionKeyTile * kStride;

    const auto [b, h, q0] = block_rows(p, kAttentionSimtRows);
    const int split = blockIdx.y;
    const int row0 = (threadIdx.x / 16) * 4, c = threadIdx.x % 16;
    const T* q = static_cast<const T*>(p.q);
    const T* k = static_cast<const T*>(p.k);
    const T* v = static_cast<const T*>(p.v);
    const int64_t qk_row = int64_t{p.heads} * p.head_dim, v_row = int64_t{p.heads} * p.value_dim;

    load_tile<T, D>(q_s, kAttentionSimtRows, q, ((int64_t{b} * p.queries + q0) * p.heads + h) * p.head_dim, qk_row,
                    p.queries - q0, p.head_dim, vec_qk, p.scale_log2);

    float max2[4], sum[4], lse2[4], o[4][D / 16];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        max2[r] = -INFINITY, sum[r] = 0.f, lse2[r] = -INFINITY;
#pragma unroll
        for (int x = 0; x < D / 16; ++x) o[r][x] = 0.f;
        if (kWeights && q0 + row0 + r < p.queries)
            lse2[r] = p.lse[(int64_t{b} * p.heads + h) * p.queries + q0 + row0 + r] * kLog2e;
    }

    // The weights pass visits every key: the ones the causal mask hides still get their zeros.
    const KeyTiles tiles = kWeights ? KeyTiles{0, (p.keys + kAttentionKeyTile - 1) / kAttentionKeyTile}
                                    : key_tiles(p, split, q0, kAttentionSimtRows);
    const int dot_len = (p.head_dim + 3) & ~3;
    for (int tile = tiles.begin; tile < tiles.end; ++tile) {
        const int k0 = tile * kAttentionKeyTile;
        __syncthreads();  // the previous tile's readers are done
        load_tile<T, D>(k_s, kAttentionKeyTile, k, ((int64_t{b} * p.keys + k0) * p.heads + h) * p.head_dim, qk_row,
                        p.keys - k0, p.head_dim, vec_qk, 1.f);
        if (!kWeights)
            load_tile<T, D>(v_s, kAttentionKeyTile, v, ((int64_t{b} * p.keys + k0) * p.heads + h) * p.value_dim,
                            v_row, p.keys - k0, p.value_dim, vec_v, 1.f);
        __syncthreads();

        float s[4][4] = {};
#pragma unroll 2
        for (int d = 0; d < dot_len; d += 4) {
            float4 qv[4], kv[4];
#pragma unroll
            for (int r = 0; r < 4; ++r) qv[r] = *reinterpret_cast<const float4*>(q_s + (row0 + r) * kStride + d);
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) kv[kk] = *reinterpret_cast<const float4*>(k_s + (c + 16 * kk) * kStride + d);
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int kk = 0; kk < 4; ++kk)
                    s[r][kk] += qv[r].x * kv[kk].x + qv[r].y * kv[kk].y + qv[r].z * kv[kk].z + qv[r].w * kv[kk].w;
        }
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                const float offset = score_offset(p, b, h, q0 + row0 + r, k0 + c + 16 * kk);
                // a hidden key stays hidden when a NaN query makes its product NaN (NaN plus -inf is NaN)
                s[r][kk] = offset == -INFINITY ? -INFINITY : s[r][kk] + offset;
            }

        if constexpr (kWeights) {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int i = q0 + row0 + r;
                if (i >= p.queries) continue;
                float* w = p.weights + ((int64_t{b} * p.heads + h) * p.queries + i) * p.keys;
#pragma unroll
                for (int kk = 0; kk < 4; ++kk) {
                    const int j = k0 + c + 16 * kk;
                    // a hidden key's weight is 0 also in a NaN query's row, whose lse is NaN
                    if (j < p.keys) w[j] = lse2[r] == -INFINITY || s[r][kk] == -INFINITY ? 0.f : exp2f(s[r][kk] - lse2[r]);
                }
            }
        } else {
            softmax_and_pv<D>(s, max2, sum, o, p_s, v_s, row0, c);
        }
    }
    if constexpr (!kWeights) store_rows<T, D>(p, b, h, q0, split, row0, c, max2, sum, o);
}

// One warp per query row: out = sum over splits of exp(lse_s - lse) * out_s, lse = logsumexp(lse_s).
// The lanes first turn the splits' lse into weights (in shared memory), then each lane sums its
// columns over the splits with the loads unrolled, so they are in flight together rather than one
// memory latency per split.
template <typename T>
__global__ void __launch_bounds__(256) attention_combine_kernel(const AttentionParams p) {
    __shared__ float split_weight[8][kAttentionMaxSplits];
    const int64_t rows = int64_t{p.batch} * p.heads * p.queries;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row = int64_t{blockIdx.x} * 8 + warp;
    if (row >= rows) return;
    static_assert(kAttentionMaxSplits == 64, "two splits per lane");
    const float lse_a = lane < p.splits ? p.partial_lse[lane * rows + row] : -INFINITY;
    const float lse_b = lane + 32 < p.splits ? p.partial_lse[(lane + 32) * rows + row] : -INFINITY;
    float max_lse = fmaxf(lse_a, lse_b);
    for (int bit = 16; bit > 0; bit /= 2) max_lse = fmaxf(max_lse, __shfl_xor_sync(0xffffffffu, max_lse, bit));
    const float base = max_lse == -INFINITY ? 0.f : max_lse;
    const float weight_a = __expf(lse_a - base), weight_b = __expf(lse_b - base);
    float total = weight_a + weight_b;
    for (int bit = 16; bit > 0; bit /= 2) total += __shfl_xor_sync(0xffffffffu, total, bit);
    const float lse = total == 0.f ? -INFINITY : base + __logf(total);
    const float scale = total == 0.f ? 0.f : 1.f / total;
    split_weight[warp][lane] = weight_a * scale;
    split_weight[warp][lane + 32] = weight_b * scale;
    __syncwarp();

    const int i = static_cast<int>(row % p.queries);
    const int bh = static_cast<int>(row / p.queries), b = bh / p.heads, h = bh % p.heads;
    T* out = static_cast<T*>(p.out) + ((int64_t{b} * p.queries + i) * p.heads + h) * p.value_dim;
    const int64_t split_stride = rows * p.value_dim;
    for (int d = lane; d < p.value_dim; d += 32) {
        const float* partial = p.partial_out + row * p.value_dim + d;
        float acc = 0.f;
#pragma unroll 8
        for (int s = 0; s < p.splits; ++s) acc += split_weight[warp][s] * partial[s * split_stride];
        out[d] = from_float<T>(acc);
    }
    if (lane == 0 && p.lse != nullptr) p.lse[row] = lse;
}

bool aligned(const void* x, int bytes) { return reinterpret_cast<uintptr_t>(x) % bytes == 0; }

template <typename T, int D, bool kWeights>
cudaError_t launch_simt_for(const AttentionParams& p, cudaStream_t stream) {
    constexpr size_t smem = simt_smem_bytes<D, kWeights>();
    auto kernel = attention_simt_kernel<T, D, kWeights>;
    // Above 48 KiB a kernel must opt in; the call is cheap and idempotent, so it is made per launch.
    if (smem > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess) return e;
    }
    const int vec_bytes = 4 * static_cast<int>(sizeof(T));
    const bool vec_qk = p.head_dim % 4 == 0 && aligned(p.q, vec_bytes) && aligned(p.k, vec_bytes);
    const bool vec_v = p.value_dim % 4 == 0 && aligned(p.v, vec_bytes);
    const int64_t blocks = int64_t{p.batch} * p.heads * ((p.queries + kAttentionSimtRows - 1) / kAttentionSimtRows);
    const dim3 grid(static_cast<unsigned>(blocks), kWeights ? 1 : p.splits);
    kernel<<<grid, kSimtThreads, smem, stream>>>(p, vec_qk, vec_v);
    return cudaGetLastError();
}

template <typename T, bool kWeights>
cudaError_t launch_simt_typed(const AttentionParams& p, cudaStream_t stream) {
    const int widest = max(p.head_dim, p.value_dim);
    if (widest <= 32) return launch_simt_for<T, 32, kWeights>(p, stream);
    if (widest <= 64) return launch_simt_for<T, 64, kWeights>(p, stream);
    if (widest <= 128) return launch_simt_for<T, 128, kWeights>(p, stream);
    if (widest <= 256) return launch_simt_for<T, 256, kWeights>(p, stream);
    return cudaErrorInvalidValue;  // the C ABI refuses head dimensions above MMF_ATTENTION_MAX_HEAD_DIM first
}

template <bool kWeights>
cudaError_t launch_simt_any(const AttentionParams& p, cudaStream_t stream) {
    switch (p.type) {
        case ElementType::kF32: return launch_simt_typed<float, kWeights>(p, stream);
        case ElementType::kBF16: return launch_simt_typed<__nv_bfloat16, kWeights>(p, stream);
        case ElementType::kF16: return launch_simt_typed<__half, kWeights>(p, stream);
    }
    return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launch_attention_simt(const AttentionParams& p, bool weights_pass, cudaStream_t stream) {
    return weights_pass ? launch_simt_any<true>(p, stream) : launch_simt_any<false>(p, stream);
}

cudaError_t launch_attention_combine(const AttentionParams& p, cudaStream_t stream) {
    const int64_t rows = int64_t{p.batch} * p.heads * p.queries;
    const dim3 grid(static_cast<unsigned>((rows + 7) / 8));
    switch (p.type) {
        case ElementType::kF32: attention_combine_kernel<float><<<grid, 256, 0, stream>>>(p); break;
        case ElementType::kBF16: attention_combine_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(p); break;
        case ElementType::kF16: attention_combine_kernel<__half><<<grid, 256, 0, stream>>>(p); break;
    }
    return cudaGetLastError();
}

int attention_splits(int64_t blocks, int key_tiles, int sm_count) {
    if (blocks <= 0 || blocks >= sm_count) return 1;
    const int64_t wanted = (2 * int64_t{sm_count} + blocks - 1) / blocks;
    const int64_t most = min(int64_t{kAttentionMaxSplits}, int64_t{key_tiles} / 4);
    return static_cast<int>(max(int64_t{1}, min(wanted, most)));
}

size_t attention_shared_bytes(const AttentionParams& p, int compute_major, int shared_optin) {
    if (attention_mma_supports(p, compute_major, shared_optin)) return attention_mma_shared_bytes(p);
    const int widest = max(p.head_dim, p.value_dim);  // the main pass's, above the weights pass's
    return widest <= 32 ? simt_smem_bytes<32, false>() : widest <= 64 ? simt_smem_bytes<64, false>()
                        : widest <= 128 ? simt_smem_bytes<128, false>() : simt_smem_bytes<256, false>();
}

int attention_block_rows(const AttentionParams& p, int compute_major, int shared_optin) {
    return attention_mma_supports(p, compute_major, shared_optin)
               ? attention_query_tile(p.type, p.tf32, p.queries, p.narrow_rows) : kAttentionSimtRows;
}

cudaError_t attention_launch(const AttentionParams& p, int compute_major, int shared_optin, cudaStream_t stream) {
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (p.batch == 0 || p.heads == 0 || p.queries == 0) return cudaSuccess;
    cudaError_t e = attention_mma_supports(p, compute_major, shared_optin) ? launch_attention_mma(p, stream) : launch_attention_simt(p, false, stream);
    if (e == cudaSuccess && p.splits > 1) e = launch_attention_combine(p, stream);
    if (e == cudaSuccess && p.weights != nullptr && p.keys > 0) {
        AttentionParams whole = p;
        whole.splits = 1;  // the weights pass visits every key tile itself
        e = launch_attention_simt(whole, true, stream);
    }
    return e;
}

}  // namespace mmf
