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

}  // namespace mmf
