// kernels.h - what native/src's launchers see of kernels/: plain structs and launch functions.
// Host-only code includes this header; it needs <cuda_runtime.h> and nothing else.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace mmf {

// Division of an unsigned 32-bit n < 2^31 by a fixed d in [1, 2^31) with one multiply-high
// (Granlund and Montgomery's round-up method): n / d == (umulhi(n, magic) + n) >> shift, where
// shift = ceil(log2 d) and magic = floor(2^32 (2^shift - d) / d) + 1, computed once on the host.
struct FastDivider {
    uint32_t magic;
    uint32_t shift;

    static FastDivider of(uint32_t d) {
        uint32_t shift = 0;
        while ((uint64_t{1} << shift) < d) ++shift;
        const uint64_t magic = ((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1;
        return FastDivider{static_cast<uint32_t>(magic), shift};
    }
#ifdef __CUDACC__
    __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, magic) + n) >> shift; }
#endif
};

// One piece of a concatenation, as the block-copy kernel reads it from its table in device memory.
// The host fills one per non-empty piece, in column order.
struct BlockCopyPiece {
    float* data;          // the piece, [rows, width] row-major
    int64_t width;        // floats per row of the piece
    int64_t offset;       // first column of the piece in the whole
    int64_t first_tile;   // index of the piece's first tile in the grid (prefix sum over pieces)
    FastDivider row_of;   // divides a unit index by the width in units (valid below 2^31 units)
    int32_t vec;          // floats per access: 4 (16-byte path) or 1
    int32_t pad_;
};

// Units (float or float4) a block moves: tiles are the grid's unit of work.
constexpr int kBlockCopyThreads = 256;
constexpr int kBlockCopyUnitsPerThread = 4;
constexpr int64_t kBlockCopyTileUnits = kBlockCopyThreads * kBlockCopyUnitsPerThread;

// Enqueues the copy of all pieces into (gather, concat) or out of (scatter, split) the whole.
// table: n_pieces non-empty entries in device memory; total_tiles: the sum of all pieces' tiles,
// in [1, 2^31); wide_index: true when some piece has 2^31 units or more (64-bit division path).
cudaError_t launch_block_copy(bool gather, const BlockCopyPiece* table, int n_pieces, int64_t rows,
                              int64_t total_tiles, float* whole, int64_t whole_width, bool wide_index,
                              cudaStream_t stream);

// ---- attention ------------------------------------------------------------------------------------

// Element types of attention inputs and outputs (the values of mmf_dtype in mmfuse.h).
enum class ElementType : int32_t { kF32 = 0, kBF16 = 1, kF16 = 2 };

// One scaled dot-product attention call, as every attention kernel reads it (passed by value).
// q [B, Lq, H, Dh], k [B, Lk, H, Dh], v [B, Lk, H, Dv] and out [B, Lq, H, Dv] are contiguous, of
// `type`; mask [B, Lk] (nonzero = attend), bias (fp32, element (b, h, i, j) at the dot product of
// bias_stride with (b, h, i, j)), lse [B, H, Lq] and weights [B, H, Lq, Lk] are fp32 and optional.
struct AttentionParams {
    const void* q;
    const void* k;
    const void* v;
    const float* mask;
    const float* bias;
    void* out;
    float* lse;
    float* weights;
    float* partial_out;  // split-KV scratch: [splits, B, H, Lq, Dv], each split's normalised output
    float* partial_lse;  // split-KV scratch: [splits, B, H, Lq]
    int64_t bias_stride[4];
    int32_t batch, queries, keys, heads, head_dim, value_dim;
    float scale_log2;        // the softmax scale times log2(e): scores are kept in base 2
    int32_t causal;          // keys j > i + Lk - Lq are masked (bottom-right aligned)
    int32_t splits;          // key ranges computed by separate blocks and combined (split-KV), >= 1
    int32_t tiles_per_split; // key tiles of kAttentionKeyTile keys per split
    ElementType type;
    int32_t tf32;            // fp32 inputs may run on tensor cores in TF32
    int32_t narrow_rows;     // tensor-core blocks take at most 64 query rows (MMF_ATTENTION_ROWS_64)
};

// Keys per tile, in every attention kernel: the unit of split-KV ranges.
constexpr int kAttentionKeyTile = 64;
// Query rows per block of the fp32 (SIMT) kernel.
constexpr int kAttentionSimtRows = 32;

// Query rows per block for a call: 32 for fp32 on CUDA cores; on tensor cores 16, 32 or 64, the
// fewest that cover Lq, since the kernel's warps share the keys of rows it does not have; and for
// 16-bit inputs from Lq = 128 on, 128 (two 16-row tiles a warp), unless `narrow`. (16-bit calls that
// fall back to CUDA cores, misaligned or with Dh % 8 != 0, run 32 rows: the split-KV choice, made
// from this, then counts up to 4 times fewer blocks than run and may split a grid that needs no
// splitting: slower, never wrong.)
inline int attention_query_tile(ElementType type, bool tf32, int queries, bool narrow) {
    if (type == ElementType::kF32 && !tf32) return kAttentionSimtRows;
    if (type != ElementType::kF32 && !narrow && queries >= 128) return 128;
    return queries <= 16 ? 16 : queries <= 32 ? 32 : 64;
}

// Whether the 128-row blocks of a 16-bit call with these head dimensions fit a device that lets a
// block opt in to shared_optin bytes: an A100's or H100's up to Dh = Dv = 128, the 99 KB of sm_86,
// sm_89 and sm_120 only up to 64. Where not, the call is narrow (64-row blocks, which fit).
bool attention_wide_rows_fit(int head_dim, int value_dim, int shared_optin);

// Most key ranges of one split-KV call.
constexpr int kAttentionMaxSplits = 64;

// Split-KV choice, from the number of blocks without splitting (B H ceil(Lq / rows), rows from
// attention_query_tile) and the device's SM count: when the blocks cannot fill one wave, cut the
// keys into ranges so that every SM gets about two blocks, keeping at least four key tiles per range
// and at most kAttentionMaxSplits ranges. Measured on an H100 (bench/gpu/attention.py with
// MMFUSE_SPLIT_SWEEP=1): splitting a grid that fills a wave, or ranges of fewer than four tiles, cost
// more in the combine pass than it gained; 16 latents over 4096 keys ran 3x faster with 16 ranges.
int attention_splits(int64_t blocks, int key_tiles, int sm_count);

// Shared memory per block of the kernels attention_launch would run for p on a device of compute
// capability compute_major.x that lets a block opt in to shared_optin bytes.
size_t attention_shared_bytes(const AttentionParams& p, int compute_major, int shared_optin);

// Query rows per block of the kernel attention_launch would run for p on that device: the tensor cores'
// attention_query_tile where attention_mma.cu takes the call, else the CUDA cores' kAttentionSimtRows.
int attention_block_rows(const AttentionParams& p, int compute_major, int shared_optin);

// Enqueues the attention on that device: the fused kernel (tensor cores where attention_mma.cu takes
// the shape and its shared memory fits, else SIMT), split over p.splits key ranges and combined
// through the partial_* scratch when p.splits > 1; then, when p.weights is set, the weights pass,
// which reads p.lse (the caller supplies scratch for it if it did not ask for it).
cudaError_t attention_launch(const AttentionParams& p, int compute_major, int shared_optin, cudaStream_t stream);

// ---- bilinear family ----------------------------------------------------------------------------------

// Columns of a row that one block of the finishing kernels takes.
constexpr int64_t kFinishChunk = 8192;
// Activations (the values of mmf_activation in mmfuse.h).
constexpr int kActivationNone = 0, kActivationRelu = 1, kActivationTanh = 2, kActivationSigmoid = 3, kActivationGelu = 4;

// Blocks per row of launch_finish_rows: its partial buffer holds rows * this many doubles.
int64_t finish_chunks_per_row(int64_t cols);

// In place on z [rows, cols]: v = scale * z, then sign(v) sqrt(|v| + eps) if root, then (if l2) each row
// divided by max(its L2 norm, 1e-12); partial: rows * finish_chunks_per_row(cols) doubles of scratch.
cudaError_t launch_finish_rows(float* z, int64_t rows, int64_t cols, float scale, int root, float eps, int l2,
                               double* partial, cudaStream_t stream);

// y[r * ldy + k] = x1[r, :in1] . t[r, k, :in1] + bias[k] for r < rows, k < outs (bias may be NULL).
cudaError_t launch_row_dots(const float* x1, const float* t, const float* bias, float* y, int64_t ldy, int64_t rows,
                            int outs, int in1, cudaStream_t stream);

// out [items, d] = the count sketch of x [items, dim]: bucket u gathers units[offsets[u] .. offsets[u + 1]).
cudaError_t launch_sketch_gather(const float* x, int64_t items, int dim, const int* offsets, const int* units,
                                 const float* sign, int d, float* out, cudaStream_t stream);

// p = a * b / d over n complex values (interleaved float pairs).
cudaError_t launch_spectrum_product(const void* a, const void* b, void* p, int64_t n, float inverse_d,
                                    cudaStream_t stream);

// out [samples, d] = the count sketch of each z [c1, c2] under hash (h1(i) + h2(j)) mod d, sign s1(i) s2(j);
// y's sketch as CSR buckets (offsets2 [d + 1], units2 [c2]).
cudaError_t launch_outer_sketch_gather(const float* z, int64_t samples, int c1, int c2, const int* hash1,
                                       const float* sign1, const int* offsets2, const int* units2,
                                       const float* sign2, int d, float* out, cudaStream_t stream);

// out[b, :d] = NaN for each of `samples` samples whose x[b, :x_len] or y[b, :y_len] hold a NaN or infinity,
// else 0 where x[b] or y[b] is all zeros.
cudaError_t launch_exact_rows(const float* x, int64_t x_len, const float* y, int64_t y_len, float* out,
                              int64_t samples, int64_t d, cudaStream_t stream);

// out [rows, stages, units / factor]: the group sums of factorized pooling (before finishing).
cudaError_t launch_factorized_sums(const float* x, const float* y, int64_t rows, int stages, int units, int factor,
                                   int activation, float* out, cudaStream_t stream);

// Compact bilinear pooling of vectors in one kernel, one block per sample (compact_fft.h): out [batch, d] =
// finish(the circular convolution of x's and y's count sketches), where finish scales by `scale`, takes the
// signed square root if signed_sqrt, and L2-normalises each row if l2, as launch_finish_rows does; a sample
// with a NaN or an infinity in its x or y gets a NaN row. The sketches come inverted, as for
// launch_sketch_gather.
struct CompactPoolParams {
    const float* x;  // [batch, dim_x]
    const float* y;  // [batch, dim_y]
    const int* offsets_x;
    const int* units_x;
    const float* sign_x;
    const int* offsets_y;
    const int* units_y;
    const float* sign_y;
    float* out;
    int64_t batch;
    int32_t dim_x, dim_y, d;
    float scale, eps;
    int32_t signed_sqrt, l2;
};

// Most stages of an FFT plan (a length of 3^19 has 19).
constexpr int kFftMaxStages = 20;

// Shared memory per block of launch_compact_pool for length d: 0 when d has a prime factor above 5.
size_t compact_pool_shared_bytes(int d);

// Enqueues it on a device that lets a block opt in to shared_optin bytes of shared memory; cudaErrorInvalidValue
// where compact_pool_shared_bytes(p.d) is 0 or more than that.
cudaError_t launch_compact_pool(const CompactPoolParams& p, int shared_optin, cudaStream_t stream);

// ---- products split along k (see mmfuse.h; elementwise.cu) --------------------------------------------

// out [rows, cols] = bias (per column; may be NULL) + the sum of `slices` partials [rows, cols], in order.
cudaError_t launch_sum_slices(const float* partials, int slices, int64_t rows, int64_t cols, const float* bias,
                              float* out, cudaStream_t stream);

// ---- activations, layer norm, softmax (elementwise.cu) ------------------------------------------------

// out[i] = activation(x[i]) for i < n.
cudaError_t launch_activation(const float* x, int64_t n, int activation, float* out, cudaStream_t stream);

// Layer norm of each row of x [rows, dim] (biased variance); weight and bias [dim] may be NULL.
cudaError_t launch_layer_norm(const float* x, int64_t rows, int dim, const float* weight, const float* bias, float eps,
                              float* out, cudaStream_t stream);

// Softmax of each row of x [rows, dim] (rows < 2^31).
cudaError_t launch_softmax(const float* x, int64_t rows, int dim, float* out, cudaStream_t stream);

// ---- fusion helpers (see mmfuse.h) ---------------------------------------------------------------------

// Binary operations and sequence poolings (the values of mmf_binary_op and mmf_sequence_pooling).
constexpr int kBinaryAdd = 0, kBinarySubtract = 1, kBinaryMultiply = 2;
constexpr int kPoolMean = 0, kPoolSum = 1, kPoolMax = 2, kPoolFirst = 3;

cudaError_t launch_binary(int op, const float* a, const float* b, int64_t n, int64_t b_n, float* out, cudaStream_t stream);
cudaError_t launch_pool_sequence(const float* x, const float* mask, int64_t batch, int64_t length, int64_t channels,
                                 int mode, float* out, cudaStream_t stream);
cudaError_t launch_fill_absent(const float* x, const float* present, const float* fill, int64_t rows, int64_t inner,
                               float* out, cudaStream_t stream);
cudaError_t launch_weighted_accumulate(const float* x, const float* weights, int64_t count, int64_t term, int64_t rows,
                                       int64_t inner, float* out, cudaStream_t stream);

}  // namespace mmf
