// attention_common.cuh - what every attention kernel shares: element conversions, the per-score
// masking rule, and the split-KV bookkeeping.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include <type_traits>

#include "kernels.h"

namespace mmf {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <typename T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float(float x) { return x; }
template <>
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <>
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_float(float x) { return __float2half_rn(x); }

// What query i's score against key j gets added (base 2): -inf where the key is masked (past Lk,
// padded, or after the causal diagonal, bottom-right aligned), else the bias times log2(e). Rows past
// Lq (a block's padding, computed and thrown away) get 0: their bias may lie past the tensor.
__device__ __forceinline__ float score_offset(const AttentionParams& p, int b, int h, int i, int j) {
    if (j >= p.keys) return -INFINITY;
    if (i >= p.queries) return 0.f;
    if (p.mask != nullptr && p.mask[int64_t{b} * p.keys + j] == 0.f) return -INFINITY;
    if (p.causal && j - p.keys > i - p.queries) return -INFINITY;  // j > i + Lk - Lq, which could overflow int
    if (p.bias == nullptr) return 0.f;
    const int64_t at = b * p.bias_stride[0] + h * p.bias_stride[1] + i * p.bias_stride[2] + j * p.bias_stride[3];
    return p.bias[at] * kLog2e;
}

// The (batch, head, first query) of this block. Grids are linear over (batch, head) x query blocks.
// Without the causal mask the query blocks vary fastest, so the blocks that read one head's keys
// and values run together and all but the first find them in L2. Under the causal mask later query
// blocks see more keys: the grid starts with the last query block of every head and ends with the
// first ones, so the short blocks fill its tail (measured on an H100: 1.4x faster than going head
// by head).
struct BlockRows {
    int b, h, q0;
};

__device__ __forceinline__ BlockRows block_rows(const AttentionParams& p, int rows) {
    const int query_blocks = (p.queries + rows - 1) / rows;
    const int heads = p.batch * p.heads;
    int bh, qb;
    if (p.causal) {
        bh = static_cast<int>(blockIdx.x % heads);
        qb = query_blocks - 1 - static_cast<int>(blockIdx.x / heads);
    } else {
        bh = static_cast<int>(blockIdx.x / query_blocks);
        qb = static_cast<int>(blockIdx.x % query_blocks);
    }
    return {bh / p.heads, bh % p.heads, qb * rows};
}

// The key tiles [begin, end) that split `split` of a block covering queries [q0, q0 + rows) visits:
// its share of all tiles, cut short where the causal mask hides every later key from the block.
struct KeyTiles {
    int begin, end;
};

__device__ __forceinline__ KeyTiles key_tiles(const AttentionParams& p, int split, int q0, int rows) {
    const int all = (p.keys + kAttentionKeyTile - 1) / kAttentionKeyTile;
    KeyTiles t{split * p.tiles_per_split, min(all, (split + 1) * p.tiles_per_split)};
    if (p.causal) {
        const int last_query = min(q0 + rows, p.queries) - 1;
        const int last_key = p.keys + (last_query - p.queries);  // may be negative: nothing to attend
        t.end = last_key < 0 ? t.begin : min(t.end, last_key / kAttentionKeyTile + 1);
    }
    return t;
}

// Where a query row's result goes: the output (splits == 1) or its split's slot in the scratch.
// value is the normalised output (0 for a row that attended nothing), lse in natural log.
template <typename T>
__device__ __forceinline__ void store_output(const AttentionParams& p, int b, int h, int i, int split, int d,
                                             float value) {
    if (p.splits == 1) {
        T* out = static_cast<T*>(p.out);
        out[((int64_t{b} * p.queries + i) * p.heads + h) * p.value_dim + d] = from_float<T>(value);
    } else {
        const int64_t row = (int64_t{split} * p.batch * p.heads + int64_t{b} * p.heads + h) * p.queries + i;
        p.partial_out[row * p.value_dim + d] = value;
    }
}

// store_output of elements d and d + 1 (d even) in one store: the output is aligned to two elements
// (attention_mma_supports), the split scratch to 256 bytes with rows of a multiple of 8 floats.
template <typename T>
__device__ __forceinline__ void store_output_pair(const AttentionParams& p, int b, int h, int i, int split, int d,
                                                  float first, float second) {
    if (p.splits == 1) {
        const int64_t at = ((int64_t{b} * p.queries + i) * p.heads + h) * p.value_dim + d;
        if constexpr (std::is_same_v<T, float>) {
            *reinterpret_cast<float2*>(static_cast<float*>(p.out) + at) = make_float2(first, second);
        } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
            *reinterpret_cast<__nv_bfloat162*>(static_cast<T*>(p.out) + at) = __floats2bfloat162_rn(first, second);
        } else {
            *reinterpret_cast<__half2*>(static_cast<T*>(p.out) + at) = __floats2half2_rn(first, second);
        }
    } else {
        const int64_t row = (int64_t{split} * p.batch * p.heads + int64_t{b} * p.heads + h) * p.queries + i;
        *reinterpret_cast<float2*>(p.partial_out + row * p.value_dim + d) = make_float2(first, second);
    }
}

__device__ __forceinline__ void store_lse(const AttentionParams& p, int b, int h, int i, int split, float lse) {
    if (p.splits == 1) {
        if (p.lse != nullptr) p.lse[(int64_t{b} * p.heads + h) * p.queries + i] = lse;
    } else {
        p.partial_lse[(int64_t{split} * p.batch * p.heads + int64_t{b} * p.heads + h) * p.queries + i] = lse;
    }
}

// Natural-log log-sum-exp of a row from its base-2 running max and sum; -inf if it attended nothing.
__device__ __forceinline__ float row_lse(float max2, float sum) {
    return sum == 0.f ? -INFINITY : (max2 + __log2f(sum)) * kLn2;
}

// Launchers of the kernels in attention_simt.cu and attention_mma.cu.
cudaError_t launch_attention_simt(const AttentionParams& p, bool weights_pass, cudaStream_t stream);
cudaError_t launch_attention_mma(const AttentionParams& p, cudaStream_t stream);
bool attention_mma_supports(const AttentionParams& p, int compute_major, int shared_optin);
size_t attention_mma_shared_bytes(const AttentionParams& p);
cudaError_t launch_attention_combine(const AttentionParams& p, cudaStream_t stream);

}  // namespace mmf
