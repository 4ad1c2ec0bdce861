/*
 * mmfuse.h - the C ABI of MMFuse's CUDA kernels.
 *
 * Every kernel is reached through this header: from Java (JavaCPP binds it, see
 * org.mmfuse.cuda.MmfNative), from the native harness (native/harness), and from Python
 * on a GPU machine (ctypes). Conventions:
 *   - every function returns an mmf_status; on failure mmf_last_error() gives a message and, for
 *     MMF_ERR_CUDA, mmf_last_cuda_error() the cudaError_t (both per calling thread);
 *   - tensors are row-major and contiguous; pointers passed to kernels are device pointers;
 *   - work is enqueued on the given stream (a cudaStream_t; NULL is the legacy default stream)
 *     and nothing synchronises it: the caller does;
 *   - nothing allocates device memory: launchers that need scratch take a caller-provided
 *     workspace, sized by the matching *_workspace_bytes function.
 */
#ifndef MMFUSE_H
#define MMFUSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMF_VERSION_MAJOR 0
#define MMF_VERSION_MINOR 1
#define MMF_VERSION_PATCH 0

typedef enum mmf_status {
    MMF_OK = 0,
    MMF_ERR_INVALID_ARGUMENT = 1, /* a precondition of the call does not hold; nothing was enqueued */
    MMF_ERR_CUDA = 2,             /* the CUDA runtime reported an error; see mmf_last_cuda_error() */
    MMF_ERR_WORKSPACE = 3,        /* the workspace is missing or smaller than *_workspace_bytes asks */
    MMF_ERR_UNSUPPORTED = 4       /* valid, but beyond what this device can run (e.g. its shared memory) */
} mmf_status;

/* MAJOR * 10000 + MINOR * 100 + PATCH of this library. Needs no device. */
int mmf_version(void);

/* The CUDA runtime version this library runs with (e.g. 13000). Needs no device or driver. */
int mmf_cuda_runtime_version(int* version);

/* Number of CUDA devices. Without a driver or a device this fails with MMF_ERR_CUDA and
 * mmf_last_cuda_error() says why (cudaErrorInsufficientDriver, cudaErrorNoDevice, ...). */
int mmf_device_count(int* count);

/* The message of this thread's last failed call ("" if none). Valid until the thread's next call. */
const char* mmf_last_error(void);

/* The cudaError_t of this thread's last MMF_ERR_CUDA (0 if none) and its name ("cudaErrorNoDevice"). */
int mmf_last_cuda_error(void);
const char* mmf_cuda_error_name(int cuda_error);

/* ---- concatenation and split (fp32) ----------------------------------------------------------
 * Both move blocks between one "whole" tensor viewed as [rows, whole_width] and n pieces viewed as
 * [rows, piece_widths[i]], piece i occupying columns [sum of earlier widths, + piece_widths[i]).
 * For torch.cat(pieces, dim): rows = product of the sizes before dim, piece_widths[i] = size of
 * piece i along dim times the product of the sizes after dim. The widths must sum to whole_width.
 * One kernel launch moves all pieces, however many. Pieces and whole must not overlap. */
size_t mmf_concat_workspace_bytes(int n_pieces);

int mmf_concat_f32(int n_pieces, const float* const* pieces, const int64_t* piece_widths,
                   int64_t rows, float* whole, int64_t whole_width,
                   void* workspace, size_t workspace_bytes, void* stream);

int mmf_split_f32(int n_pieces, float* const* pieces, const int64_t* piece_widths,
                  int64_t rows, const float* whole, int64_t whole_width,
                  void* workspace, size_t workspace_bytes, void* stream);

/* ---- scaled dot-product attention -------------------------------------------------------------
 * out = softmax(scale q kᵀ + bias + masks) v per (batch b, head h), with the semantics of PyTorch's
 * F.scaled_dot_product_attention, except that a query row whose keys are all masked gets zeros
 * (PyTorch gives NaN), lse = -inf and zero weights.
 *   q [B, Lq, H, Dh], k [B, Lk, H, Dh], v [B, Lk, H, Dv], out [B, Lq, H, Dv]: contiguous, of `dtype`
 *     (the packed [B, L, H*D] layout is the same memory); Dh, Dv <= MMF_ATTENTION_MAX_HEAD_DIM.
 *   key_mask [B, Lk] fp32 or NULL: key j of batch b is attended where key_mask[b, j] != 0.
 *   bias fp32 or NULL: added to the scaled scores; element (b, h, i, j) at
 *     b*bias_strides[0] + h*bias_strides[1] + i*bias_strides[2] + j*bias_strides[3] (0 to broadcast).
 *   causal: key j is masked for query i when j > i + Lk - Lq (bottom-right aligned, as PyTorch's
 *     causal_lower_right; for Lq == Lk the usual lower triangle).
 *   lse [B, H, Lq] fp32 or NULL: natural-log log-sum-exp of each row's scores.
 *   weights [B, H, Lq, Lk] fp32 or NULL: the softmax probabilities (a second pass over q kᵀ).
 *   splits: key ranges for split-KV (at most 64 and one per 64 keys are used), 0 to let the library
 *     choose from the device's SM count.
 *   flags: 0, or MMF_ATTENTION_TF32 to let fp32 inputs run on tensor cores in TF32 (about 1e-3
 *     relative error instead of fp32's 1e-6); MMF_ATTENTION_ROWS_64 (below).
 *   workspace: 16-byte aligned, of mmf_attention_workspace_bytes (given the same flags).
 * bf16, fp16 and (with MMF_ATTENTION_TF32) fp32 inputs run on tensor cores with fp32 accumulation
 * on sm_80 and later when Dh and Dv are multiples of 8 up to 128, q, k, v are 16-byte aligned, out is
 * aligned to two elements and the kernel's shared memory fits the device; everything else runs on CUDA cores in fp32. Dh or Dv above
 * 128 on CUDA cores need 175 KB of shared memory per block: on devices with less (an A100 has 163 KB)
 * the call fails with MMF_ERR_UNSUPPORTED. */
typedef enum mmf_dtype { MMF_F32 = 0, MMF_BF16 = 1, MMF_F16 = 2 } mmf_dtype;

#define MMF_ATTENTION_TF32 1
/* Tensor-core blocks take at most 64 query rows, as before 128-row blocks (two 16-row tiles a warp, for
 * 16-bit inputs from Lq = 128 on): for comparing the two. */
#define MMF_ATTENTION_ROWS_64 2

#define MMF_ATTENTION_MAX_HEAD_DIM 256

size_t mmf_attention_workspace_bytes(int dtype, int flags, int batch, int queries, int keys, int heads,
                                     int value_dim, int with_weights, int splits);

int mmf_attention(int dtype, int flags, int batch, int queries, int keys, int heads, int head_dim, int value_dim,
                  const void* q, const void* k, const void* v, const float* key_mask, const float* bias,
                  const int64_t* bias_strides, float scale, int causal, void* out, float* lse, float* weights,
                  int splits, void* workspace, size_t workspace_bytes, void* stream);

/* ---- products with few output tiles: split along k ----------------------------------------------------
 * cuBLAS computes c [m, n] = a [m, k] b in tiles of c. A product with few rows (a linear layer on a small
 * batch) has few tiles and leaves most SMs idle however long k is, so the caller cuts k into slices,
 * multiplies each into its own partial [m, n] (one strided-batched cuBLAS call) and adds the partials with
 * mmf_sum_slices. */

/* How to cut k for c [m, n] = a [m, k] b on a device of `sms` SMs: *slices (1: don't) and *slice_k, the
 * length of every slice but the last, which takes the rest (1 to slice_k). The partials take
 * slices * m * n floats, fewer than 16 * 4096 * sms. Needs no device. */
int mmf_gemm_k_split(int64_t m, int64_t n, int64_t k, int sms, int* slices, int64_t* slice_k);

/* out [rows, cols] = bias (one value per column, repeated on every row; NULL: 0) + partials[0] + ... +
 * partials[slices - 1], each partial [rows, cols] and stored one after another, added in that order.
 * out must not overlap partials. */
int mmf_sum_slices(const float* partials, int slices, int64_t rows, int64_t cols, const float* bias, float* out,
                   void* stream);

/* ---- bilinear family --------------------------------------------------------------------------------
 * The kernels between the products (cuBLAS, called by the host: X^T Y, x2 W^T, the projections) and the
 * transforms (cuFFT). Row-major fp32 device arrays; reductions in a fixed order (bit-identical results).
 * NULL arrays are allowed only where their size is 0. */

/* Scratch bytes mmf_finish_rows needs for rows x cols with l2 set. */
size_t mmf_finish_rows_workspace_bytes(int64_t rows, int64_t cols);

/* In place on z [rows, cols]: v = scale * z; if signed_sqrt, v = sign(v) sqrt(|v| + eps); if l2, each row
 * divided by max(its L2 norm, 1e-12). */
int mmf_finish_rows(float* z, int64_t rows, int64_t cols, float scale, int signed_sqrt, float eps, int l2,
                    void* workspace, size_t workspace_bytes, void* stream);

/* nn.Bilinear's last step: y[r * ldy + k] = x1[r, :] . t[r, k, :] + bias[k] for r < rows, k < outs (bias
 * may be NULL), where t [rows, outs, in1] = x2 W^T for W viewed as [outs * in1, in2]; ldy >= outs lets a
 * range of outputs write into a wider y. */
int mmf_bilinear_row_dots(const float* x1, const float* t, const float* bias, float* y, int64_t ldy, int64_t rows,
                          int outs, int in1, void* stream);

/* The count sketch out [items, d] of x [items, dim]: bucket u sums sign[i] x[item, i] over the input units
 * units[offsets[u] .. offsets[u + 1]) (the sketch's hash inverted, offsets [d + 1], units [dim]). A bucket
 * whose sum is not finite holds 0: the caller marks the samples of non-finite inputs
 * (mmf_compact_exact_rows); a sum that overflows from finite inputs is lost unmarked. */
int mmf_sketch(const float* x, int64_t items, int dim, const int* offsets, const int* units, const float* sign,
               int d, float* out, void* stream);

/* p = a * b / d elementwise over n complex values, each an interleaved (re, im) float pair. */
int mmf_spectrum_product(const float* a, const float* b, float* p, int64_t n, float inverse_d, void* stream);

/* Compact bilinear pooling of vectors in one kernel: out [batch, d] = the circular convolution of the count
 * sketches of x [batch, dim_x] and y [batch, dim_y] (each sketch inverted, as for mmf_sketch), finished as
 * mmf_finish_rows does (scale, signed square root, L2); a sample with a NaN or an infinity in its x or y gets
 * a NaN row. Each sample's transforms run in one block's shared memory, so d must have no prime factor
 * above 5 and d complex values must fit the device's shared memory per block (d up to about 20,000 on an
 * A100, 29,000 on an H100): mmf_compact_pool_supported says whether the current device takes d; where it
 * does not, mmf_compact_pool fails with MMF_ERR_UNSUPPORTED. */
int mmf_compact_pool_supported(int d, int* supported);

int mmf_compact_pool(const float* x, const float* y, int64_t batch, int dim_x, int dim_y, const int* offsets_x,
                     const int* units_x, const float* sign_x, const int* offsets_y, const int* units_y,
                     const float* sign_y, int d, float scale, int signed_sqrt, float eps, int l2, float* out,
                     void* stream);

/* The count sketch out [samples, d] of each z [c1, c2] (sums of outer products) under the hash
 * (hash1[i] + h2(j)) mod d and sign sign1[i] sign2[j], y's sketch given inverted as for mmf_sketch. */
int mmf_outer_sketch(const float* z, int64_t samples, int c1, int c2, const int* hash1, const float* sign1,
                     const int* offsets2, const int* units2, const float* sign2, int d, float* out, void* stream);

/* Compact pooling's rows whose value is known exactly, set after transforms that may pair two samples in one
 * complex sequence (and so carry one's NaN or round-off into the other): out[b, :d] = NaN for every sample b
 * whose x[b, :x_len] or y[b, :y_len] hold a NaN or an infinity, else zeros where x[b] or y[b] is all zeros;
 * other rows untouched. (A sketch that cancels to zero from non-zero inputs, or one far smaller than the
 * sample it is paired with, still takes round-off from it: mmf_compact_pool scales its sequences instead.) */
int mmf_compact_exact_rows(const float* x, int64_t x_len, const float* y, int64_t y_len, float* out, int64_t samples,
                           int64_t d, void* stream);

typedef enum mmf_activation {
    MMF_ACTIVATION_NONE = 0,
    MMF_ACTIVATION_RELU = 1,
    MMF_ACTIVATION_TANH = 2,
    MMF_ACTIVATION_SIGMOID = 3,
    MMF_ACTIVATION_GELU = 4 /* x Φ(x), the erf form */
} mmf_activation;

/* Factorized (MLB/MFB/MFH) pooling before finishing: x, y [rows, stages * units], out [rows, stages *
 * units / factor] with out[r, s, p] = sum over t < factor of prod over s' <= s of act(x) act(y) at
 * [r, s', p * factor + t]. */
int mmf_factorized_sums(const float* x, const float* y, int64_t rows, int stages, int units, int factor,
                        int activation, float* out, void* stream);

/* ---- activations, layer norm, softmax ----------------------------------------------------------------- */

/* out[i] = activation(x[i]) for i < n (mmf_activation); out may be x. */
int mmf_activate(const float* x, int64_t n, int activation, float* out, void* stream);

/* F.layer_norm over the last dimension of x [rows, dim] (biased variance); weight and bias [dim] may be NULL. */
int mmf_layer_norm(const float* x, int64_t rows, int dim, const float* weight, const float* bias, float eps, float* out,
                   void* stream);

/* Softmax over the last dimension of x [rows, dim]; a row holding NaN gives NaN. */
int mmf_softmax(const float* x, int64_t rows, int dim, float* out, void* stream);

/* ---- fusion helpers ----------------------------------------------------------------------------------- */

typedef enum mmf_binary_op { MMF_ADD = 0, MMF_SUBTRACT = 1, MMF_MULTIPLY = 2 } mmf_binary_op;

/* out[i] = a[i] op b[i % b_n] for i < n (mmf_binary_op): b repeats along a (b_n divides n; b_n = n for none). */
int mmf_binary(int op, const float* a, const float* b, int64_t n, int64_t b_n, float* out, void* stream);

typedef enum mmf_sequence_pooling {
    MMF_POOL_MEAN = 0, /* over the kept positions */
    MMF_POOL_SUM = 1,
    MMF_POOL_MAX = 2,  /* NaN if a kept value is NaN */
    MMF_POOL_FIRST = 3 /* position 0 if kept */
} mmf_sequence_pooling;

/* out [batch, channels] pools x [batch, length, channels] over the positions whose mask [batch, length]
 * entry is nonzero (mask NULL: all); dropped positions are not read; a sample with none kept gets 0. */
int mmf_pool_sequence(const float* x, const float* mask, int64_t batch, int64_t length, int64_t channels, int mode,
                      float* out, void* stream);

/* out [rows, inner] = x's row where present[row] != 0, else fill [inner] (NULL: zeros); absent rows of x are
 * not read. */
int mmf_fill_absent(const float* x, const float* present, const float* fill, int64_t rows, int64_t inner, float* out,
                    void* stream);

/* One term of a weighted sum over `count` inputs: out [rows, inner] = (term == 0 ? 0 : out) +
 * weights[row, term] x, where a zero weight leaves out as it is and x unread; weights [rows, count]. */
int mmf_weighted_accumulate(const float* x, const float* weights, int64_t count, int64_t term, int64_t rows,
                            int64_t inner, float* out, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* MMFUSE_H */
