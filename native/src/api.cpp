// api.cpp - the C ABI of mmfuse.h: argument checks, per-thread error state, and the host side of
// each launch (tables built on the host, copied into the caller's workspace, then one launch).
#include "mmfuse.h"

#include <cuda_runtime.h>

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

}  // extern "C"
