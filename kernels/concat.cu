// concat.cu - the block-copy kernel behind concatenation (gather) and split (scatter).
//
// The whole tensor is [rows, W]; piece i is [rows, w_i] and sits at columns [off_i, off_i + w_i).
// Work is cut per piece into tiles of kBlockCopyTileUnits units (a unit is a float, or a float4 when
// the piece allows 16-byte accesses); one block moves one tile, so a single launch covers any number
// of pieces and the grid stays balanced however unequal their sizes. A block finds its piece with a
// warp-wide search over the table's prefix tile counts (a few broadcast loads even for thousands of
// pieces), then each thread moves kBlockCopyUnitsPerThread units: all loads first, then all stores.
// Walking the piece contiguously keeps the piece side of every copy fully coalesced; with small
// slices (a concat along the last axis of [B, 3] and [B, 5]) the whole side gets short runs of
// consecutive addresses instead of one row per block, and every tile still has full work.
//
// Unit u of a piece lies at row u / (w_i / vec), column u % (w_i / vec); the division uses the
// piece's FastDivider when every piece has fewer than 2^31 units, else 64-bit division.
#include "common.cuh"
#include "kernels.h"

namespace mmf {

namespace {

// This block's piece, found by warp 0 and shared with the block.
__device__ __forceinline__ int find_piece(const BlockCopyPiece* table, int n_pieces, int64_t tile) {
    __shared__ int piece;
    if (threadIdx.x < 32) {
        const int found = warp_upper_search(n_pieces, tile, [&](int i) { return table[i].first_tile; });
        if (threadIdx.x == 0) piece = found;
    }
    __syncthreads();
    return piece;
}

template <bool kGather, bool kWideIndex, typename Unit>
__device__ __forceinline__ void move_tile(const BlockCopyPiece& p, int64_t tile, int64_t rows, float* whole,
                                          int64_t whole_width) {
    constexpr int kVec = sizeof(Unit) / sizeof(float);
    const int64_t width_units = p.width / kVec;
    const int64_t piece_units = rows * width_units;
    const int64_t whole_width_units = whole_width / kVec;
    const int64_t offset_units = p.offset / kVec;
    Unit* piece = reinterpret_cast<Unit*>(p.data);
    Unit* whole_units = reinterpret_cast<Unit*>(whole);

    int64_t piece_at[kBlockCopyUnitsPerThread];
    int64_t whole_at[kBlockCopyUnitsPerThread];
    Unit value[kBlockCopyUnitsPerThread];
    const int64_t first_unit = tile * kBlockCopyTileUnits + threadIdx.x;
#pragma unroll
    for (int k = 0; k < kBlockCopyUnitsPerThread; ++k) {
        const int64_t u = first_unit + int64_t{k} * kBlockCopyThreads;
        const int64_t row = kWideIndex ? u / width_units : int64_t{p.row_of.div(static_cast<uint32_t>(u))};
        piece_at[k] = u < piece_units ? u : -1;
        whole_at[k] = row * whole_width_units + offset_units + (u - row * width_units);
    }
#pragma unroll
    for (int k = 0; k < kBlockCopyUnitsPerThread; ++k) {
        if (piece_at[k] >= 0) value[k] = kGather ? __ldg(piece + piece_at[k]) : __ldg(whole_units + whole_at[k]);
    }
#pragma unroll
    for (int k = 0; k < kBlockCopyUnitsPerThread; ++k) {
        if (piece_at[k] < 0) continue;
        if (kGather) {
            whole_units[whole_at[k]] = value[k];
        } else {
            piece[piece_at[k]] = value[k];
        }
    }
}

// One block per tile; the direction and the index width are fixed for the grid, the access width
// is chosen per piece.
template <bool kGather, bool kWideIndex>
__global__ void __launch_bounds__(kBlockCopyThreads)
block_copy_kernel(const BlockCopyPiece* __restrict__ table, int n_pieces, int64_t rows, float* whole,
                  int64_t whole_width) {
    const int64_t tile = blockIdx.x;
    const BlockCopyPiece& p = table[find_piece(table, n_pieces, tile)];
    const int64_t piece_tile = tile - p.first_tile;
    if (p.vec == 4) {
        move_tile<kGather, kWideIndex, float4>(p, piece_tile, rows, whole, whole_width);
    } else {
        move_tile<kGather, kWideIndex, float>(p, piece_tile, rows, whole, whole_width);
    }
}

template <bool kGather>
cudaError_t launch_direction(const BlockCopyPiece* table, int n_pieces, int64_t rows, int64_t total_tiles,
                             float* whole, int64_t whole_width, bool wide_index, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>(total_tiles));
    (void)cudaGetLastError();  // a stale error of an earlier call is not this launch's
    if (wide_index) {
        block_copy_kernel<kGather, true><<<grid, kBlockCopyThreads, 0, stream>>>(table, n_pieces, rows, whole,
                                                                               whole_width);
    } else {
        block_copy_kernel<kGather, false><<<grid, kBlockCopyThreads, 0, stream>>>(table, n_pieces, rows, whole,
                                                                                whole_width);
    }
    return cudaGetLastError();
}

}  // namespace

cudaError_t launch_block_copy(bool gather, const BlockCopyPiece* table, int n_pieces, int64_t rows,
                              int64_t total_tiles, float* whole, int64_t whole_width, bool wide_index,
                              cudaStream_t stream) {
    if (total_tiles <= 0 || total_tiles > 0x7fffffff || n_pieces <= 0) return cudaErrorInvalidValue;
    return gather ? launch_direction<true>(table, n_pieces, rows, total_tiles, whole, whole_width, wide_index, stream)
                  : launch_direction<false>(table, n_pieces, rows, total_tiles, whole, whole_width, wide_index,
                                            stream);
}

}  // namespace mmf
