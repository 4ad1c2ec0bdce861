// api.cpp - the C ABI of mmfuse.h: argument checks, per-thread error state, and the host side of
// each launch (tables built on the host, copied into the caller's workspace, then one launch).
#include "mmfuse.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <vector>

#include "kernels.h"

namespace {

thread_local char last_error[512] = "";
thread_local int last_cuda_error = 0;

int fail(mmf_status status, const char* format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return status;
}

int fail_cuda(cudaError_t error, const char* operation) {
    last_cuda_error = static_cast<int>(error);
    return fail(MMF_ERR_CUDA, "%s: %s (%s)", operation, cudaGetErrorName(error), cudaGetErrorString(error));
}

int succeed() {
    last_error[0] = '\0';
    last_cuda_error = 0;
    return MMF_OK;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Builds the block-copy table for concat (gather) or split (scatter) and launches one kernel.
int block_copy(const char* operation, bool gather, int n_pieces, float* const* pieces, const int64_t* widths,
               int64_t rows, float* whole, int64_t whole_width, void* workspace, size_t workspace_bytes,
               cudaStream_t stream) {
    if (n_pieces < 0) return fail(MMF_ERR_INVALID_ARGUMENT, "%s: n_pieces = %d < 0", operation, n_pieces);
    if (n_pieces > 0 && (pieces == nullptr || widths == nullptr))
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: pieces or piece_widths is NULL", operation);
    if (rows < 0 || whole_width < 0)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: rows = %lld, whole_width = %lld must be >= 0", operation,
                    static_cast<long long>(rows), static_cast<long long>(whole_width));

    int64_t width_sum = 0;
    for (int i = 0; i < n_pieces; ++i) {
        if (widths[i] < 0 || widths[i] > whole_width - width_sum)
            return fail(MMF_ERR_INVALID_ARGUMENT, "%s: piece_widths[%d] = %lld is negative or past whole_width = %lld",
                        operation, i, static_cast<long long>(widths[i]), static_cast<long long>(whole_width));
        width_sum += widths[i];
    }
    if (width_sum != whole_width)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: piece widths sum to %lld, whole_width is %lld", operation,
                    static_cast<long long>(width_sum), static_cast<long long>(whole_width));

    std::vector<mmf::BlockCopyPiece> table;
    table.reserve(n_pieces);
    int64_t offset = 0, tiles = 0;
    bool wide_index = false;
    const bool whole_vectorizable = aligned16(whole) && whole_width % 4 == 0;
    for (int i = 0; i < n_pieces; offset += widths[i], ++i) {
        const int64_t width = widths[i];
        if (width == 0 || rows == 0) continue;  // nothing to move; keeps the table to non-empty pieces
        if (pieces[i] == nullptr) return fail(MMF_ERR_INVALID_ARGUMENT, "%s: pieces[%d] is NULL", operation, i);
        mmf::BlockCopyPiece p{};
        p.data = pieces[i];
        p.width = width;
        p.offset = offset;
        p.first_tile = tiles;
        p.vec = whole_vectorizable && aligned16(pieces[i]) && width % 4 == 0 && offset % 4 == 0 ? 4 : 1;
        const int64_t width_units = width / p.vec;
        if (rows > INT64_MAX / width_units)
            return fail(MMF_ERR_INVALID_ARGUMENT, "%s: piece %d has more than 2^63 elements", operation, i);
        const int64_t units = rows * width_units;
        if (units > 0x7fffffff) {
            wide_index = true;
        } else {
            p.row_of = mmf::FastDivider::of(static_cast<uint32_t>(width_units));
        }
        tiles += (units + mmf::kBlockCopyTileUnits - 1) / mmf::kBlockCopyTileUnits;
        table.push_back(p);
    }
    if (table.empty()) return succeed();  // nothing to move
    if (whole == nullptr) return fail(MMF_ERR_INVALID_ARGUMENT, "%s: whole is NULL", operation);
    if (tiles > 0x7fffffff)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: %lld tiles exceed one grid", operation, static_cast<long long>(tiles));
    const size_t table_bytes = table.size() * sizeof(mmf::BlockCopyPiece);
    if (workspace == nullptr || workspace_bytes < table_bytes)
        return fail(MMF_ERR_WORKSPACE, "%s: workspace of %zu bytes, %zu needed", operation, workspace_bytes,
                    table_bytes);

    // Pageable source: cudaMemcpyAsync returns once the table is staged, so `table` may die after it.
    cudaError_t error = cudaMemcpyAsync(workspace, table.data(), table_bytes, cudaMemcpyHostToDevice, stream);
    if (error != cudaSuccess) return fail_cuda(error, operation);
    error = mmf::launch_block_copy(gather, static_cast<const mmf::BlockCopyPiece*>(workspace),
                                   static_cast<int>(table.size()), rows, tiles, whole, whole_width, wide_index, stream);
    if (error != cudaSuccess) return fail_cuda(error, operation);
    return succeed();
}

// What the launchers need to know of the calling thread's current device, looked up once per device.
struct DeviceTraits {
    int sm_count = 0;       // 0 when the device could not be queried
    int compute_major = 0;
    int shared_optin = 0;   // the most shared memory a block may opt in to, bytes
    cudaError_t error = cudaSuccess;  // why the device could not be queried
};

DeviceTraits current_device_traits() {
    // One word per device (so a reader never sees half an entry): SMs in bits 0-15, the compute
    // capability's major in 16-23, shared memory in KiB in 24-47; 0 = not looked up yet.
    constexpr int kCached = 64;
    static std::atomic<uint64_t> cache[kCached];
    int device = 0;
    DeviceTraits traits;
    if ((traits.error = cudaGetDevice(&device)) != cudaSuccess) return traits;
    const uint64_t known = device < kCached ? cache[device].load(std::memory_order_relaxed) : 0;
    if (known != 0)
        return {static_cast<int>(known & 0xffff), static_cast<int>(known >> 16 & 0xff),
                static_cast<int>(known >> 24 & 0xffffff) * 1024};
    if ((traits.error = cudaDeviceGetAttribute(&traits.sm_count, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess ||
        (traits.error = cudaDeviceGetAttribute(&traits.compute_major, cudaDevAttrComputeCapabilityMajor, device)) !=
            cudaSuccess ||
        (traits.error = cudaDeviceGetAttribute(&traits.shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device)) !=
            cudaSuccess)
        return DeviceTraits{0, 0, 0, traits.error};
    if (device < kCached)
        cache[device].store(uint64_t(traits.sm_count & 0xffff) | uint64_t(traits.compute_major & 0xff) << 16 |
                                uint64_t(traits.shared_optin / 1024 & 0xffffff) << 24,
                            std::memory_order_relaxed);
    return traits;
}

// Split-KV ranges for an attention call whose blocks take `rows` queries: the caller's count (at most one
// per key tile and kAttentionMaxSplits), or the heuristic's for a device of sm_count SMs (1 when unknown).
int attention_split_count(int rows, int batch, int queries, int keys, int heads, int requested, int sm_count) {
    const int key_tiles = static_cast<int>((int64_t{keys} + mmf::kAttentionKeyTile - 1) / mmf::kAttentionKeyTile);
    if (key_tiles <= 1) return 1;
    if (requested > 0) return std::min({requested, key_tiles, mmf::kAttentionMaxSplits});
    const int64_t blocks = int64_t{batch} * heads * ((int64_t{queries} + rows - 1) / rows);
    return sm_count > 0 ? mmf::attention_splits(blocks, key_tiles, sm_count) : 1;
}

// The attention workspace, in 256-byte aligned parts: partial outputs and lse per split (split-KV
// only), then the lse the weights pass reads when the caller did not ask for it.
struct AttentionWorkspace {
    size_t partial_out = 0, partial_lse = 0, lse = 0, total = 0;

    AttentionWorkspace(int batch, int queries, int heads, int value_dim, bool with_weights, int splits) {
        const size_t rows = size_t(batch) * heads * queries;
        auto part = [this](size_t floats) {
            const size_t at = total;
            total += (floats * sizeof(float) + 255) / 256 * 256;
            return at;
        };
        if (splits > 1) {
            partial_out = part(size_t(splits) * rows * value_dim);
            partial_lse = part(size_t(splits) * rows);
        }
        if (with_weights) lse = part(rows);
    }
};

}  // namespace

extern "C" {

int mmf_version(void) { return MMF_VERSION_MAJOR * 10000 + MMF_VERSION_MINOR * 100 + MMF_VERSION_PATCH; }

int mmf_cuda_runtime_version(int* version) {
    if (version == nullptr) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_cuda_runtime_version: version is NULL");
    const cudaError_t error = cudaRuntimeGetVersion(version);
    return error == cudaSuccess ? succeed() : fail_cuda(error, "cudaRuntimeGetVersion");
}

int mmf_device_count(int* count) {
    if (count == nullptr) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_device_count: count is NULL");
    *count = 0;
    const cudaError_t error = cudaGetDeviceCount(count);
    if (error != cudaSuccess) {
        *count = 0;
        return fail_cuda(error, "cudaGetDeviceCount");
    }
    return succeed();
}

const char* mmf_last_error(void) { return last_error; }

int mmf_last_cuda_error(void) { return last_cuda_error; }

const char* mmf_cuda_error_name(int cuda_error) { return cudaGetErrorName(static_cast<cudaError_t>(cuda_error)); }

size_t mmf_concat_workspace_bytes(int n_pieces) {
    return n_pieces <= 0 ? 0 : static_cast<size_t>(n_pieces) * sizeof(mmf::BlockCopyPiece);
}

int mmf_concat_f32(int n_pieces, const float* const* pieces, const int64_t* piece_widths, int64_t rows, float* whole,
                   int64_t whole_width, void* workspace, size_t workspace_bytes, void* stream) {
    // The kernel only reads the pieces when gathering; the table type is shared with split.
    return block_copy("mmf_concat_f32", true, n_pieces, const_cast<float* const*>(pieces), piece_widths, rows, whole,
                      whole_width, workspace, workspace_bytes, static_cast<cudaStream_t>(stream));
}

int mmf_split_f32(int n_pieces, float* const* pieces, const int64_t* piece_widths, int64_t rows, const float* whole,
                  int64_t whole_width, void* workspace, size_t workspace_bytes, void* stream) {
    // The kernel only reads the whole when scattering.
    return block_copy("mmf_split_f32", false, n_pieces, pieces, piece_widths, rows, const_cast<float*>(whole),
                      whole_width, workspace, workspace_bytes, static_cast<cudaStream_t>(stream));
}

// Without the head dimension and the pointers this assumes tensor cores and 128-row blocks wherever the
// call may take them: a call that must take 64 rows (attention_wide_rows_fit) or CUDA cores (32) has
// more blocks, so no more splits and no more scratch.
size_t mmf_attention_workspace_bytes(int dtype, int flags, int batch, int queries, int keys, int heads,
                                     int value_dim, int with_weights, int splits) {
    if (batch <= 0 || queries <= 0 || keys <= 0 || heads <= 0 || value_dim < 0) return 0;
    const bool tf32 = (flags & MMF_ATTENTION_TF32) != 0, narrow = (flags & MMF_ATTENTION_ROWS_64) != 0;
    const int rows = mmf::attention_query_tile(static_cast<mmf::ElementType>(dtype), tf32, queries, narrow);
    const int chosen = attention_split_count(rows, batch, queries, keys, heads, splits, current_device_traits().sm_count);
    return AttentionWorkspace(batch, queries, heads, value_dim, with_weights != 0, chosen).total;
}

int mmf_attention(int dtype, int flags, int batch, int queries, int keys, int heads, int head_dim, int value_dim,
                  const void* q, const void* k, const void* v, const float* key_mask, const float* bias,
                  const int64_t* bias_strides, float scale, int causal, void* out, float* lse, float* weights,
                  int splits, void* workspace, size_t workspace_bytes, void* stream) {
    const char* op = "mmf_attention";
    if (dtype != MMF_F32 && dtype != MMF_BF16 && dtype != MMF_F16)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: dtype %d is not MMF_F32, MMF_BF16 or MMF_F16", op, dtype);
    if (batch < 0 || queries < 0 || keys < 0 || heads < 0 || head_dim < 0 || value_dim < 0)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: negative size in B=%d Lq=%d Lk=%d H=%d Dh=%d Dv=%d", op, batch,
                    queries, keys, heads, head_dim, value_dim);
    if (head_dim > MMF_ATTENTION_MAX_HEAD_DIM || value_dim > MMF_ATTENTION_MAX_HEAD_DIM)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: Dh = %d, Dv = %d: at most %d", op, head_dim, value_dim,
                    MMF_ATTENTION_MAX_HEAD_DIM);
    if (queries > 0x7fffffff - 64 || keys > 0x7fffffff - 64)  // the kernels round lengths up to their tiles
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: Lq = %d or Lk = %d is within 64 of 2^31", op, queries, keys);
    const int64_t blocks = int64_t{batch} * heads * ((int64_t{queries} + 15) / 16);  // the smallest query tile
    if (blocks > 0x7fffffff)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: B * H * ceil(Lq / 16) = %lld blocks exceed one grid", op,
                    static_cast<long long>(blocks));
    if (splits < 0) return fail(MMF_ERR_INVALID_ARGUMENT, "%s: splits = %d < 0", op, splits);
    if ((flags & ~(MMF_ATTENTION_TF32 | MMF_ATTENTION_ROWS_64)) != 0)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: unknown flags %#x", op, flags);
    const bool tf32 = (flags & MMF_ATTENTION_TF32) != 0;
    if (batch == 0 || queries == 0 || heads == 0 || (value_dim == 0 && weights == nullptr && lse == nullptr))
        return succeed();  // nothing to compute
    if (q == nullptr || k == nullptr || v == nullptr || out == nullptr)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: q, k, v or out is NULL", op);
    if (bias != nullptr && bias_strides == nullptr)
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: bias without bias_strides", op);

    const DeviceTraits traits = current_device_traits();
    if (traits.error != cudaSuccess) return fail_cuda(traits.error, op);  // not "unsupported": the query failed
    const bool narrow = (flags & MMF_ATTENTION_ROWS_64) != 0 ||
                        !mmf::attention_wide_rows_fit(head_dim, value_dim, traits.shared_optin);
    mmf::AttentionParams p{};
    p.q = q, p.k = k, p.v = v, p.mask = key_mask, p.bias = bias, p.out = out, p.weights = weights;
    for (int i = 0; i < 4 && bias != nullptr; ++i) p.bias_stride[i] = bias_strides[i];
    p.batch = batch, p.queries = queries, p.keys = keys, p.heads = heads, p.head_dim = head_dim,
    p.value_dim = value_dim;
    p.scale_log2 = scale * 1.4426950408889634f;
    p.causal = causal != 0;
    p.type = static_cast<mmf::ElementType>(dtype);
    p.tf32 = tf32;
    p.narrow_rows = narrow;
    // the blocks of the kernel that will run: a 16-bit call on CUDA cores (wide heads, misaligned pointers,
    // before sm_80) has blocks of 32 rows, not the tensor cores' up to 128, so more of them and fewer splits
    const int rows = mmf::attention_block_rows(p, traits.compute_major, traits.shared_optin);
    const int chosen = attention_split_count(rows, batch, queries, keys, heads, splits, traits.sm_count);
    // the weights pass reads the lse: scratch for it when the caller did not ask (and there are keys)
    const bool lse_scratch = weights != nullptr && lse == nullptr && keys > 0;
    const AttentionWorkspace parts(batch, queries, heads, value_dim, lse_scratch, chosen);
    if (parts.total > 0 && (workspace == nullptr || workspace_bytes < parts.total))
        return fail(MMF_ERR_WORKSPACE, "%s: workspace of %zu bytes, %zu needed", op, workspace_bytes, parts.total);
    if (parts.total > 0 && !aligned16(workspace))
        return fail(MMF_ERR_INVALID_ARGUMENT, "%s: the workspace is not 16-byte aligned", op);

    char* scratch = static_cast<char*>(workspace);
    p.lse = lse_scratch ? reinterpret_cast<float*>(scratch + parts.lse) : lse;
    if (chosen > 1) {
        p.partial_out = reinterpret_cast<float*>(scratch + parts.partial_out);
        p.partial_lse = reinterpret_cast<float*>(scratch + parts.partial_lse);
    }
    p.splits = chosen;
    const int key_tiles = (keys + mmf::kAttentionKeyTile - 1) / mmf::kAttentionKeyTile;
    p.tiles_per_split = (key_tiles + chosen - 1) / chosen;
    const size_t shared = mmf::attention_shared_bytes(p, traits.compute_major, traits.shared_optin);
    if (shared > static_cast<size_t>(traits.shared_optin))
        return fail(MMF_ERR_UNSUPPORTED, "%s: Dh = %d, Dv = %d need %zu bytes of shared memory per block, the device "
                    "allows %d", op, head_dim, value_dim, shared, traits.shared_optin);
    const cudaError_t error = mmf::attention_launch(p, traits.compute_major, traits.shared_optin,
                                                    static_cast<cudaStream_t>(stream));
    return error == cudaSuccess ? succeed() : fail_cuda(error, op);
}

}  // extern "C"

// ---- bilinear family -----------------------------------------------------------------------------------

namespace {

// Null is an error only where the array has elements.
bool missing(const void* p, int64_t elements) { return p == nullptr && elements > 0; }

int launched(cudaError_t error, const char* operation) {
    return error == cudaSuccess ? succeed() : fail_cuda(error, operation);
}

}  // namespace

size_t mmf_finish_rows_workspace_bytes(int64_t rows, int64_t cols) {
    if (rows <= 0 || cols < 0) return 0;
    return static_cast<size_t>(rows) * mmf::finish_chunks_per_row(cols) * sizeof(double);
}

int mmf_finish_rows(float* z, int64_t rows, int64_t cols, float scale, int signed_sqrt, float eps, int l2,
                    void* workspace, size_t workspace_bytes, void* stream) {
    if (rows < 0 || cols < 0 || !(eps >= 0.f))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_finish_rows: rows = %lld, cols = %lld, eps = %g", (long long)rows,
                    (long long)cols, eps);
    if (missing(z, rows * cols)) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_finish_rows: z is NULL");
    if (l2 && rows * cols > 0 && (workspace == nullptr || workspace_bytes < mmf_finish_rows_workspace_bytes(rows, cols)))
        return fail(MMF_ERR_WORKSPACE, "mmf_finish_rows: needs %zu bytes of workspace, got %zu",
                    mmf_finish_rows_workspace_bytes(rows, cols), workspace_bytes);
    return launched(mmf::launch_finish_rows(z, rows, cols, scale, signed_sqrt, eps, l2, static_cast<double*>(workspace),
                                            static_cast<cudaStream_t>(stream)),
                    "mmf_finish_rows");
}

int mmf_bilinear_row_dots(const float* x1, const float* t, const float* bias, float* y, int64_t ldy, int64_t rows,
                          int outs, int in1, void* stream) {
    if (rows < 0 || outs < 0 || in1 < 0 || ldy < outs)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_bilinear_row_dots: rows = %lld, outs = %d, in1 = %d, ldy = %lld",
                    (long long)rows, outs, in1, (long long)ldy);
    if (missing(x1, rows * in1) || missing(t, rows * outs * in1) || missing(y, rows * outs))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_bilinear_row_dots: x1, t or y is NULL");
    return launched(mmf::launch_row_dots(x1, t, bias, y, ldy, rows, outs, in1, static_cast<cudaStream_t>(stream)),
                    "mmf_bilinear_row_dots");
}

int mmf_sketch(const float* x, int64_t items, int dim, const int* offsets, const int* units, const float* sign,
               int d, float* out, void* stream) {
    if (items < 0 || dim < 0 || d <= 0)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_sketch: items = %lld, dim = %d, d = %d", (long long)items, dim, d);
    if (missing(x, items * dim) || offsets == nullptr || missing(units, dim) || missing(sign, dim) ||
        missing(out, items * d))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_sketch: x, offsets, units, sign or out is NULL");
    return launched(mmf::launch_sketch_gather(x, items, dim, offsets, units, sign, d, out,
                                              static_cast<cudaStream_t>(stream)),
                    "mmf_sketch");
}

int mmf_spectrum_product(const float* a, const float* b, float* p, int64_t n, float inverse_d, void* stream) {
    if (n < 0) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_spectrum_product: n = %lld", (long long)n);
    if (missing(a, n) || missing(b, n) || missing(p, n))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_spectrum_product: a, b or p is NULL");
    return launched(mmf::launch_spectrum_product(a, b, p, n, inverse_d, static_cast<cudaStream_t>(stream)),
                    "mmf_spectrum_product");
}

namespace {

// Whether compact pooling of length d runs in one block on a device that lets a block opt in to shared_optin bytes.
bool compact_pool_fits(int d, int shared_optin) {
    const size_t shared = mmf::compact_pool_shared_bytes(d);
    return shared > 0 && shared <= static_cast<size_t>(shared_optin);
}

}  // namespace

int mmf_compact_pool_supported(int d, int* supported) {
    if (supported == nullptr) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_compact_pool_supported: supported is NULL");
    *supported = 0;
    const DeviceTraits traits = current_device_traits();
    if (traits.error != cudaSuccess) return fail_cuda(traits.error, "mmf_compact_pool_supported");
    *supported = compact_pool_fits(d, traits.shared_optin);
    return succeed();
}

int mmf_compact_pool(const float* x, const float* y, int64_t batch, int dim_x, int dim_y, const int* offsets_x,
                     const int* units_x, const float* sign_x, const int* offsets_y, const int* units_y,
                     const float* sign_y, int d, float scale, int signed_sqrt, float eps, int l2, float* out,
                     void* stream) {
    if (batch < 0 || batch > INT32_MAX || dim_x < 0 || dim_y < 0 || d <= 0 || !(eps >= 0.f))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_compact_pool: batch = %lld, dim_x = %d, dim_y = %d, d = %d, eps = %g",
                    (long long)batch, dim_x, dim_y, d, eps);
    if (missing(x, batch * dim_x) || missing(y, batch * dim_y) || offsets_x == nullptr || missing(units_x, dim_x) ||
        missing(sign_x, dim_x) || offsets_y == nullptr || missing(units_y, dim_y) || missing(sign_y, dim_y) ||
        missing(out, batch * d))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_compact_pool: an array is NULL");
    const DeviceTraits traits = current_device_traits();
    if (traits.error != cudaSuccess) return fail_cuda(traits.error, "mmf_compact_pool");
    if (!compact_pool_fits(d, traits.shared_optin))
        return fail(MMF_ERR_UNSUPPORTED, "mmf_compact_pool: d = %d has a prime factor above 5 or needs %zu bytes of "
                    "shared memory per block, more than this device allows", d, mmf::compact_pool_shared_bytes(d));
    const mmf::CompactPoolParams p{x, y, offsets_x, units_x, sign_x, offsets_y, units_y, sign_y, out, batch,
                                   dim_x, dim_y, d, scale, eps, signed_sqrt, l2};
    return launched(mmf::launch_compact_pool(p, traits.shared_optin, static_cast<cudaStream_t>(stream)),
                    "mmf_compact_pool");
}

int mmf_outer_sketch(const float* z, int64_t samples, int c1, int c2, const int* hash1, const float* sign1,
                     const int* offsets2, const int* units2, const float* sign2, int d, float* out, void* stream) {
    if (samples < 0 || c1 < 0 || c2 < 0 || d <= 0)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_outer_sketch: samples = %lld, c1 = %d, c2 = %d, d = %d",
                    (long long)samples, c1, c2, d);
    if (missing(z, samples * c1 * c2) || missing(hash1, c1) || missing(sign1, c1) || offsets2 == nullptr ||
        missing(units2, c2) || missing(sign2, c2) || missing(out, samples * d))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_outer_sketch: an array is NULL");
    return launched(mmf::launch_outer_sketch_gather(z, samples, c1, c2, hash1, sign1, offsets2, units2, sign2, d, out,
                                                    static_cast<cudaStream_t>(stream)),
                    "mmf_outer_sketch");
}

int mmf_compact_exact_rows(const float* x, int64_t x_len, const float* y, int64_t y_len, float* out, int64_t samples,
                           int64_t d, void* stream) {
    if (x_len < 0 || y_len < 0 || samples < 0 || d < 0 || samples > INT32_MAX)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_compact_exact_rows: x_len = %lld, y_len = %lld, samples = %lld, d = %lld",
                    (long long)x_len, (long long)y_len, (long long)samples, (long long)d);
    if (missing(x, samples * x_len) || missing(y, samples * y_len) || missing(out, samples * d))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_compact_exact_rows: x, y or out is NULL");
    return launched(mmf::launch_exact_rows(x, x_len, y, y_len, out, samples, d, static_cast<cudaStream_t>(stream)),
                    "mmf_compact_exact_rows");
}

int mmf_factorized_sums(const float* x, const float* y, int64_t rows, int stages, int units, int factor,
                        int activation, float* out, void* stream) {
    if (rows < 0 || stages < 1 || units < 0 || factor < 1 || units % factor != 0 || activation < 0 || activation > MMF_ACTIVATION_GELU)
        return fail(MMF_ERR_INVALID_ARGUMENT,
                    "mmf_factorized_sums: rows = %lld, stages = %d, units = %d, factor = %d, activation = %d",
                    (long long)rows, stages, units, factor, activation);
    if (missing(x, rows * stages * units) || missing(y, rows * stages * units) ||
        missing(out, rows * stages * (units / factor)))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_factorized_sums: x, y or out is NULL");
    return launched(mmf::launch_factorized_sums(x, y, rows, stages, units, factor, activation, out,
                                                static_cast<cudaStream_t>(stream)),
                    "mmf_factorized_sums");
}

// ---- activations, layer norm, softmax --------------------------------------------------------------------

int mmf_activate(const float* x, int64_t n, int activation, float* out, void* stream) {
    if (n < 0 || activation < 0 || activation > MMF_ACTIVATION_GELU)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_activate: n = %lld, activation = %d", (long long)n, activation);
    if (missing(x, n) || missing(out, n)) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_activate: x or out is NULL");
    return launched(mmf::launch_activation(x, n, activation, out, static_cast<cudaStream_t>(stream)), "mmf_activate");
}

int mmf_layer_norm(const float* x, int64_t rows, int dim, const float* weight, const float* bias, float eps, float* out,
                   void* stream) {
    if (rows < 0 || dim < 0 || !(eps > 0.f) || (dim > 0 && rows > INT64_MAX / dim))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_layer_norm: rows = %lld, dim = %d, eps = %g", (long long)rows, dim, eps);
    if (missing(x, rows * dim) || missing(out, rows * dim))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_layer_norm: x or out is NULL");
    return launched(mmf::launch_layer_norm(x, rows, dim, weight, bias, eps, out, static_cast<cudaStream_t>(stream)),
                    "mmf_layer_norm");
}

int mmf_softmax(const float* x, int64_t rows, int dim, float* out, void* stream) {
    if (rows < 0 || dim < 0 || (dim > 0 && rows > INT64_MAX / dim))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_softmax: rows = %lld, dim = %d", (long long)rows, dim);
    if (missing(x, rows * dim) || missing(out, rows * dim)) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_softmax: x or out is NULL");
    return launched(mmf::launch_softmax(x, rows, dim, out, static_cast<cudaStream_t>(stream)), "mmf_softmax");
}

// ---- fusion helpers -----------------------------------------------------------------------------------------

int mmf_binary(int op, const float* a, const float* b, int64_t n, int64_t b_n, float* out, void* stream) {
    if (n < 0 || b_n < 0 || (b_n == 0 ? n != 0 : n % b_n != 0) || op < MMF_ADD || op > MMF_MULTIPLY)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_binary: n = %lld, b_n = %lld, op = %d", (long long)n, (long long)b_n, op);
    if (missing(a, n) || missing(b, b_n) || missing(out, n)) return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_binary: a, b or out is NULL");
    return launched(mmf::launch_binary(op, a, b, n, b_n, out, static_cast<cudaStream_t>(stream)), "mmf_binary");
}

int mmf_pool_sequence(const float* x, const float* mask, int64_t batch, int64_t length, int64_t channels, int mode,
                      float* out, void* stream) {
    if (batch < 0 || length < 0 || channels < 0 || mode < MMF_POOL_MEAN || mode > MMF_POOL_FIRST ||
        (length > 0 && batch > INT64_MAX / length) || (channels > 0 && batch * length > INT64_MAX / channels) ||
        (channels > 0 && batch > INT64_MAX / channels))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_pool_sequence: batch = %lld, length = %lld, channels = %lld, mode = %d",
                    (long long)batch, (long long)length, (long long)channels, mode);
    if (missing(x, batch * length * channels) || missing(out, batch * channels))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_pool_sequence: x or out is NULL");
    return launched(mmf::launch_pool_sequence(x, mask, batch, length, channels, mode, out, static_cast<cudaStream_t>(stream)),
                    "mmf_pool_sequence");
}

int mmf_fill_absent(const float* x, const float* present, const float* fill, int64_t rows, int64_t inner, float* out,
                    void* stream) {
    if (rows < 0 || inner < 0 || (inner > 0 && rows > INT64_MAX / inner))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_fill_absent: rows = %lld, inner = %lld", (long long)rows, (long long)inner);
    if (missing(x, rows * inner) || missing(present, rows) || missing(out, rows * inner))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_fill_absent: x, present or out is NULL");
    return launched(mmf::launch_fill_absent(x, present, fill, rows, inner, out, static_cast<cudaStream_t>(stream)),
                    "mmf_fill_absent");
}

int mmf_weighted_accumulate(const float* x, const float* weights, int64_t count, int64_t term, int64_t rows,
                            int64_t inner, float* out, void* stream) {
    if (rows < 0 || inner < 0 || count < 1 || term < 0 || term >= count || (inner > 0 && rows > INT64_MAX / inner) ||
        rows > INT64_MAX / count)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_weighted_accumulate: rows = %lld, inner = %lld, count = %lld, term = %lld",
                    (long long)rows, (long long)inner, (long long)count, (long long)term);
    if (missing(x, rows * inner) || missing(weights, rows * count) || missing(out, rows * inner))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_weighted_accumulate: x, weights or out is NULL");
    return launched(mmf::launch_weighted_accumulate(x, weights, count, term, rows, inner, out,
                                                    static_cast<cudaStream_t>(stream)),
                    "mmf_weighted_accumulate");
}

// ---- products split along k ----------------------------------------------------------------------------

namespace {

// cuBLAS's fp32 kernels tile c at least 64 x 64, so a product of fewer such tiles than SMs cannot fill the
// device. A slice shorter than kMinSliceK costs more in its partial's traffic than it gains.
constexpr int64_t kGemmTileEdge = 64, kMinSliceK = 256, kMaxSlices = 16;

}  // namespace

int mmf_gemm_k_split(int64_t m, int64_t n, int64_t k, int sms, int* slices, int64_t* slice_k) {
    if (m < 0 || n < 0 || k < 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || sms < 1 || slices == nullptr ||
        slice_k == nullptr)
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_gemm_k_split: m = %lld, n = %lld, k = %lld, sms = %d", (long long)m,
                    (long long)n, (long long)k, sms);
    *slices = 1;
    *slice_k = k;
    const int64_t tiles = (m + kGemmTileEdge - 1) / kGemmTileEdge * ((n + kGemmTileEdge - 1) / kGemmTileEdge);
    if (tiles == 0 || tiles >= sms) return succeed();
    // about two tiles per SM
    const int64_t wanted = std::min({(2 * int64_t{sms} + tiles - 1) / tiles, k / kMinSliceK, kMaxSlices});
    if (wanted < 2) return succeed();
    // slices start a multiple of 16 floats apart, so each keeps its operands' 64-byte alignment
    const int64_t length = ((k + wanted - 1) / wanted + 15) / 16 * 16;
    *slice_k = length;
    *slices = static_cast<int>((k + length - 1) / length);
    return succeed();
}

int mmf_sum_slices(const float* partials, int slices, int64_t rows, int64_t cols, const float* bias, float* out,
                   void* stream) {
    if (slices < 1 || rows < 0 || cols < 0 || (cols > 0 && rows > INT64_MAX / cols / slices))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_sum_slices: slices = %d, rows = %lld, cols = %lld", slices,
                    (long long)rows, (long long)cols);
    if (missing(partials, rows * cols) || missing(out, rows * cols))
        return fail(MMF_ERR_INVALID_ARGUMENT, "mmf_sum_slices: partials or out is NULL");
    return launched(mmf::launch_sum_slices(partials, slices, rows, cols, bias, out, static_cast<cudaStream_t>(stream)),
                    "mmf_sum_slices");
}
