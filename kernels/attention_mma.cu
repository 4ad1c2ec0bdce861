// attention_mma.cu - fused scaled dot-product attention on tensor cores (mma.sync, fp32
// accumulation; sm_80 and later): bf16 and fp16 inputs (m16n8k16), and fp32 inputs computed in TF32
// when the caller allows it (m16n8k8; inputs enter the multiplier truncated to TF32's 10-bit
// mantissa, probabilities rounded to it).
//
// One block of 4 warps owns 16, 32, 64 or 128 query rows of one (batch, head) (see
// attention_query_tile): up to 64 rows, each group of 16 rows has 4, 2 or 1 warps, which split every
// key tile between them; with 128 rows each warp owns 32, two 16-row tiles, so that every key and
// value fragment it loads from shared memory feeds two mma instead of one (shared memory, not the
// tensor cores, bounded the 64-row kernel on long sequences). Keys stream through shared memory in
// tiles of 64, double-buffered with cp.async so the next tile's loads overlap this tile's math. Per
// tile a warp computes its rows' scores S = Q Kᵀ against its keys in registers, updates the online
// softmax in base 2, and feeds the probabilities straight back as the A operand of O += P V, so P
// never goes through shared memory (the FlashAttention-2 scheme).
//
// Fragment layouts (PTX ISA), lane = 4 g + t. With 16-bit inputs (m16n8k16):
//   A 16x16: a0 (row g, cols 2t..2t+1), a1 (row g+8, same cols), a2 (row g, cols 8+2t..), a3 (row g+8, ...)
//   B 16x8:  b0 (rows 2t..2t+1, col g), b1 (rows 8+2t.., col g)
//   C 16x8:  c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, cols 2t, 2t+1)
// so the accumulators of two adjacent 8-key blocks are, packed in pairs, the A fragment of one
// 16-key step. With TF32 (m16n8k8): A 16x8 a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4);
// B 8x8 b0 (row t, col g), b1 (row t+4, col g). There the P V step over 8 keys takes its keys in
// the order 0, 2, 4, 6, 1, 3, 5, 7 (a sum does not care), which makes an 8-key block's accumulators
// c0, c2, c1, c3 exactly its A fragment; V's B fragment is read in the same order.
// ldmatrix moves 16-byte rows, which are 8 16-bit or 4 fp32 elements: the same addressing serves
// both. Shared rows are padded by 16 bytes, so the 8 rows one ldmatrix reads hit distinct banks.
//
// Taken on sm_80 and later for 16-bit inputs, or fp32 with TF32 allowed, when Dh and Dv are
// multiples of 8 up to 128, q, k and v are 16-byte aligned, the output is aligned to two elements
// (stored in pairs) and the shared memory fits the device (attention_mma_supports); the SIMT kernel
// covers everything else.
#include <math.h>

#include <type_traits>

#include "attention_common.cuh"

namespace mmf {

namespace {

constexpr int kMmaThreads = 128;

// Elements per 16-byte chunk: the unit of cp.async, of ldmatrix rows and of the row padding.
template <typename T>
__host__ __device__ constexpr int chunk() { return 16 / static_cast<int>(sizeof(T)); }

// Elements per shared-memory row for head dimension D.
template <typename T, int D>
__host__ __device__ constexpr int mma_stride() { return D + chunk<T>(); }

// The k extent of one mma: 16 for 16-bit inputs, 8 for TF32.
template <typename T>
__host__ __device__ constexpr int mma_k() { return 2 * chunk<T>(); }

template <typename T, int D, int kRows>
constexpr size_t mma_smem_bytes() {
    return sizeof(T) * size_t{mma_stride<T, D>()} * (kRows + 4 * kAttentionKeyTile);  // Q, 2 K, 2 V
}

__device__ __forceinline__ uint32_t smem_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (src is then not read).
__device__ __forceinline__ void copy16_async(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void copy_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void copy_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// row_address: this lane's row in the shared window (smem_address). The kernel passes a base per lane
// plus compile-time offsets, which the compiler folds into the instruction instead of keeping an
// address per fragment in registers.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t row_address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row_address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t row_address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row_address));
}

// 2^x in one MUFU instruction (exp2f adds a range fix-up for results below 2^-126, which the softmax
// can flush to zero: they are negligible next to the row's maximum, whose term is 1).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// c += a b for one 16 x 8 x mma_k<T>() step.
template <typename T>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (std::is_same_v<T, float>) {
        asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// Two floats as the 16-bit pair of an A fragment register (lower column in the low half).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    uint32_t r;
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        const __nv_bfloat162 x = __floats2bfloat162_rn(lo, hi);
        memcpy(&r, &x, 4);
    } else {
        const __half2 x = __floats2half2_rn(lo, hi);
        memcpy(&r, &x, 4);
    }
    return r;
}

// A float rounded to TF32 (nearest, ties away), as the bits of an A fragment register.
__device__ __forceinline__ uint32_t to_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

// Queues the copy of `rows` rows (row `r` at src + r * row_stride) of `width` elements into a
// [rows, mma_stride] shared tile; rows past `valid_rows` and columns past `width` become zeros.
// Thread t moves chunk t % kChunks of rows t / kChunks + i * (threads / kChunks): its column is the
// same for every i, so the addresses advance by fixed steps (this runs for every key tile).
template <typename T, int D>
__device__ __forceinline__ void load_tile_async(T* dst, int rows, const T* src, int64_t row_stride, int valid_rows,
                                                int width) {
    constexpr int kChunks = D / chunk<T>();  // 16-byte chunks per row
    static_assert(kMmaThreads % kChunks == 0, "a thread keeps its column");
    constexpr int kRowStep = kMmaThreads / kChunks;
    const int row = threadIdx.x / kChunks, d = threadIdx.x % kChunks * chunk<T>();
    const bool column_valid = d < width;
    T* to = dst + row * mma_stride<T, D>() + d;
    const T* from = src + row * row_stride + d;
    const int64_t from_step = kRowStep * row_stride;
    for (int r = row; r < rows; r += kRowStep, to += kRowStep * mma_stride<T, D>(), from += from_step) {
        const bool valid = column_valid && r < valid_rows;
        copy16_async(to, valid ? from : src, valid);
    }
}

// Merges the online-softmax states of the kKeyWarps warps that shared a row group's keys into the
// group's first warp (kw == 0): the block's shared memory is free by now (every copy has landed and
// every warp is past its last tile) and holds each warp's state in fragment order, so that every
// lane reads back exactly the cells it owns. Every thread of the block must call it.
template <int D, int kKeyWarps>
__device__ __forceinline__ void merge_key_warps(float4* smem, int warp, int kw, int lane, float (&max2)[2],
                                                float (&sum)[2], float (&o)[D / 8][4]) {
    constexpr int kValueBlocks = D / 8;
    constexpr int kPerWarp = 32 * (kValueBlocks + 1);  // float4s: the output fragments, then max and sum
    __syncthreads();
    float4* mine = smem + warp * kPerWarp;
#pragma unroll
    for (int vb = 0; vb < kValueBlocks; ++vb) mine[vb * 32 + lane] = make_float4(o[vb][0], o[vb][1], o[vb][2], o[vb][3]);
    mine[kValueBlocks * 32 + lane] = make_float4(max2[0], max2[1], sum[0], sum[1]);
    __syncthreads();
    if (kw != 0) return;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        float new_max = max2[half];
        for (int other = 1; other < kKeyWarps; ++other) {
            const float4 state = smem[(warp + other) * kPerWarp + kValueBlocks * 32 + lane];
            new_max = fmaxf(new_max, half == 0 ? state.x : state.y);
        }
        const float base = new_max == -INFINITY ? 0.f : new_max;
        const float own = exp2f(max2[half] - base);
        sum[half] *= own;
#pragma unroll
        for (int vb = 0; vb < kValueBlocks; ++vb) o[vb][2 * half] *= own, o[vb][2 * half + 1] *= own;
        for (int other = 1; other < kKeyWarps; ++other) {
            const float4* theirs = smem + (warp + other) * kPerWarp;
            const float4 state = theirs[kValueBlocks * 32 + lane];
            const float scale = exp2f((half == 0 ? state.x : state.y) - base);
            sum[half] += scale * (half == 0 ? state.z : state.w);
#pragma unroll
            for (int vb = 0; vb < kValueBlocks; ++vb) {
                const float4 x = theirs[vb * 32 + lane];
                o[vb][2 * half] += scale * (half == 0 ? x.x : x.z);
                o[vb][2 * half + 1] += scale * (half == 0 ? x.y : x.w);
            }
        }
        max2[half] = new_max;
    }
}

// kRowGroups groups of query rows per block (1, 2 or 4), each of kWarpTiles tiles of 16 rows (1, or
// 2 with 4 groups); the 4 / kRowGroups warps of a group share its rows and split each key tile
// between them (warp share `kw` takes 64 / kKeyWarps keys), each with its own online-softmax state,
// merged through shared memory at the end. With few queries this keeps all four warps busy instead
// of one.
// D = 64 with one tile per warp is held to 128 registers so that four blocks share an SM (a few bytes
// spill outside the key loop); two tiles per warp double the accumulators, so two blocks an SM;
// wider heads need their registers more than the occupancy.
template <typename T, int D, int kRowGroups, int kWarpTiles>
__global__ void __launch_bounds__(kMmaThreads, kWarpTiles == 2 ? 2 : D == 64 ? 4 : 1)
    attention_mma_kernel(const AttentionParams p) {
    static_assert(D % 32 == 0, "Q Kᵀ takes the head dimension 32 at a time");
    static_assert(kWarpTiles == 1 || kRowGroups == 4, "a warp takes two row tiles only with its keys to itself");
    constexpr int kWarpRows = 16 * kWarpTiles;
    constexpr int kRows = kWarpRows * kRowGroups;
    constexpr int kKeyWarps = 4 / kRowGroups;
    constexpr int kStride = mma_stride<T, D>();
    constexpr int kK = mma_k<T>();
    constexpr int kKeyBlocks = kAttentionKeyTile / 8 / kKeyWarps;  // this warp's 8-key blocks of S per tile
    constexpr int kValueBlocks = D / 8;                            // 8-column blocks of O
    extern __shared__ float4 smem_f4[];
    T* q_s = reinterpret_cast<T*>(smem_f4);
    T* k_s = q_s + kRows * kStride;                   // two buffers
    T* v_s = k_s + 2 * kAttentionKeyTile * kStride;   // two buffers

    const auto [b, h, q0] = block_rows(p, kRows);
    const int split = blockIdx.y;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int group = warp / kKeyWarps, kw = warp % kKeyWarps;
    const T* q = static_cast<const T*>(p.q);
    const T* k = static_cast<const T*>(p.k);
    const T* v = static_cast<const T*>(p.v);
    const int64_t qk_row = int64_t{p.heads} * p.head_dim, v_row = int64_t{p.heads} * p.value_dim;
    const int64_t k_base = (int64_t{b} * p.keys * p.heads + h) * p.head_dim;
    const int64_t v_base = (int64_t{b} * p.keys * p.heads + h) * p.value_dim;

    const KeyTiles tiles = key_tiles(p, split, q0, kRows);
    auto load_keys = [&](int tile, int buffer) {
        const int k0 = tile * kAttentionKeyTile;
        load_tile_async<T, D>(k_s + buffer * kAttentionKeyTile * kStride, kAttentionKeyTile,
                              k + k_base + k0 * qk_row, qk_row, p.keys - k0, p.head_dim);
        load_tile_async<T, D>(v_s + buffer * kAttentionKeyTile * kStride, kAttentionKeyTile,
                              v + v_base + k0 * v_row, v_row, p.keys - k0, p.value_dim);
    };
    load_tile_async<T, D>(q_s, kRows, q + ((int64_t{b} * p.queries + q0) * p.heads + h) * p.head_dim, qk_row,
                          p.queries - q0, p.head_dim);
    if (tiles.begin < tiles.end) load_keys(tiles.begin, 0);
    copy_commit();

    // per row tile mt of this warp: its rows g and g + 8
    float o[kWarpTiles][kValueBlocks][4] = {};
    float max2[kWarpTiles][2], sum[kWarpTiles][2];
#pragma unroll
    for (int mt = 0; mt < kWarpTiles; ++mt) max2[mt][0] = max2[mt][1] = -INFINITY, sum[mt][0] = sum[mt][1] = 0.f;
    const int warp_row0 = group * kWarpRows;               // the warp's first row in the block
    const int row_lo = q0 + warp_row0 + g;                 // query index of row g of tile 0 (tile mt: + 16 mt)
    const bool warp_idle = q0 + warp_row0 >= p.queries;    // all the warp's rows past Lq
    // This lane's ldmatrix rows, as shared addresses in bytes: of Q (A fragments: rows lane % 16 of a
    // 16-row tile, column half lane / 16), of K in buffer 0 (B fragments: key lane % 8 of an 8-key
    // block, 16-byte chunk lane / 8 along the head) and of V in buffer 0 (transposed: key lane % 16 of
    // a 16-key step, column half lane / 16). Fragments sit at constant offsets from these.
    const int key0 = kw * kKeyBlocks * 8;  // this warp's first key of every tile
    constexpr uint32_t kRowBytes = kStride * sizeof(T), kTileBytes = kAttentionKeyTile * kRowBytes;
    const uint32_t q_lane = smem_address(q_s) + (warp_row0 + lane % 16) * kRowBytes + lane / 16 * 16;
    const uint32_t k_lane = smem_address(k_s) + (key0 + lane % 8) * kRowBytes + lane / 8 * 16;
    const uint32_t v_lane = smem_address(v_s) + (key0 + lane % 16) * kRowBytes + lane / 16 * 16;

    for (int tile = tiles.begin; tile < tiles.end; ++tile) {
        const int buffer = (tile - tiles.begin) % 2;
        copy_wait_all();
        __syncthreads();  // this tile has landed for every thread, and the other buffer is free
        if (tile + 1 < tiles.end) load_keys(tile + 1, 1 - buffer);
        copy_commit();
        if (warp_idle) continue;  // loads and barriers above are the block's; the math below is the warp's

        // This warp's keys of the tile: 8-key blocks kw * kKeyBlocks + nb.
        const uint32_t k_frag = k_lane + buffer * kTileBytes;
        // S = Q Kᵀ, two k steps at a time: Q's fragments come from shared memory per tile (keeping
        // them in registers for the whole loop costs more occupancy than the reloads cost time).
        float s[kWarpTiles][kKeyBlocks][4] = {};
#pragma unroll
        for (int kp = 0; kp < D / (2 * kK); ++kp) {
            uint32_t qa[kWarpTiles][2][4];
#pragma unroll
            for (int mt = 0; mt < kWarpTiles; ++mt)
#pragma unroll
                for (int step = 0; step < 2; ++step)
                    ldmatrix_x4(qa[mt][step], q_lane + mt * 16 * kRowBytes + (2 * kp + step) * kK * sizeof(T));
#pragma unroll
            for (int nb = 0; nb < kKeyBlocks; ++nb) {
                uint32_t kb[4];
                ldmatrix_x4(kb, k_frag + nb * 8 * kRowBytes + 2 * kp * kK * sizeof(T));
#pragma unroll
                for (int mt = 0; mt < kWarpTiles; ++mt) {
                    mma<T>(s[mt][nb], qa[mt][0], kb[0], kb[1]);
                    mma<T>(s[mt][nb], qa[mt][1], kb[2], kb[3]);
                }
            }
        }

        // Plain tiles (no mask, bias, causal or ragged end; a positive scale) keep the raw q·k in s
        // and fold the scale into the FFMA that feeds the exponential; other tiles are scaled and
        // offset first.
        const int k0 = tile * kAttentionKeyTile + key0;
        const bool plain = p.mask == nullptr && p.bias == nullptr && !p.causal && p.scale_log2 > 0.f &&
                           tile * kAttentionKeyTile + kAttentionKeyTile <= p.keys;
        const float factor = plain ? p.scale_log2 : 1.f;
        if (!plain) {
#pragma unroll
            for (int mt = 0; mt < kWarpTiles; ++mt)
#pragma unroll
                for (int nb = 0; nb < kKeyBlocks; ++nb)
#pragma unroll
                    for (int x = 0; x < 4; ++x) {
                        const float offset =
                            score_offset(p, b, h, row_lo + mt * 16 + (x / 2) * 8, k0 + nb * 8 + 2 * t + x % 2);
                        // a hidden key stays hidden when a NaN query makes its product NaN (NaN plus -inf is NaN)
                        s[mt][nb][x] = offset == -INFINITY ? -INFINITY : s[mt][nb][x] * p.scale_log2 + offset;
                    }
        }

        // Online softmax for rows g (x = 0, 1) and g + 8 (x = 2, 3) of each tile; a row's scores sit in
        // the 4 lanes 4g .. 4g + 3.
#pragma unroll
        for (int mt = 0; mt < kWarpTiles; ++mt) {
            float rescale[2];
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                float tile_max = -INFINITY;
#pragma unroll
                for (int nb = 0; nb < kKeyBlocks; ++nb)
                    tile_max = fmaxf(tile_max, fmaxf(s[mt][nb][2 * half], s[mt][nb][2 * half + 1]));
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
                const float new_max = fmaxf(max2[mt][half], tile_max * factor);
                const float base = new_max == -INFINITY ? 0.f : new_max;
                rescale[half] = fast_exp2(max2[mt][half] - base);
                max2[mt][half] = new_max;
                float row_sum = 0.f;
#pragma unroll
                for (int nb = 0; nb < kKeyBlocks; ++nb) {
                    s[mt][nb][2 * half] = fast_exp2(fmaf(s[mt][nb][2 * half], factor, -base));
                    s[mt][nb][2 * half + 1] = fast_exp2(fmaf(s[mt][nb][2 * half + 1], factor, -base));
                    row_sum += s[mt][nb][2 * half] + s[mt][nb][2 * half + 1];
                }
                sum[mt][half] = sum[mt][half] * rescale[half] + row_sum;  // this lane's share
            }
#pragma unroll
            for (int vb = 0; vb < kValueBlocks; ++vb) {
                o[mt][vb][0] *= rescale[0], o[mt][vb][1] *= rescale[0];
                o[mt][vb][2] *= rescale[1], o[mt][vb][3] *= rescale[1];
            }
        }

        if constexpr (std::is_same_v<T, float>) {
            // TF32, one 8-key block per step, keys in the order 0, 2, 4, 6, 1, 3, 5, 7 (see the top).
            const T* v_tile = v_s + buffer * kAttentionKeyTile * kStride;
#pragma unroll
            for (int nb = 0; nb < kKeyBlocks; ++nb) {
                const float* v_even = v_tile + (key0 + nb * 8 + 2 * t) * kStride + g;
#pragma unroll
                for (int mt = 0; mt < kWarpTiles; ++mt) {
                    const uint32_t a[4] = {to_tf32(s[mt][nb][0]), to_tf32(s[mt][nb][2]), to_tf32(s[mt][nb][1]),
                                           to_tf32(s[mt][nb][3])};
#pragma unroll
                    for (int vb = 0; vb < kValueBlocks; ++vb)
                        mma<T>(o[mt][vb], a, __float_as_uint(v_even[vb * 8]), __float_as_uint(v_even[kStride + vb * 8]));
                }
            }
        } else {
            const uint32_t v_frag = v_lane + buffer * kTileBytes;
#pragma unroll
            for (int kc = 0; kc < kKeyBlocks / 2; ++kc) {
                uint32_t a[kWarpTiles][4];
#pragma unroll
                for (int mt = 0; mt < kWarpTiles; ++mt) {
                    a[mt][0] = pack2<T>(s[mt][2 * kc][0], s[mt][2 * kc][1]);
                    a[mt][1] = pack2<T>(s[mt][2 * kc][2], s[mt][2 * kc][3]);
                    a[mt][2] = pack2<T>(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
                    a[mt][3] = pack2<T>(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
                }
#pragma unroll
                for (int vp = 0; vp < kValueBlocks / 2; ++vp) {
                    uint32_t vb[4];
                    ldmatrix_x4_trans(vb, v_frag + kc * 16 * kRowBytes + vp * 16 * sizeof(T));
#pragma unroll
                    for (int mt = 0; mt < kWarpTiles; ++mt) {
                        mma<T>(o[mt][2 * vp], a[mt], vb[0], vb[1]);
                        mma<T>(o[mt][2 * vp + 1], a[mt], vb[2], vb[3]);
                    }
                }
            }
        }
    }
    copy_wait_all();  // no copy may outlive the block
#pragma unroll
    for (int mt = 0; mt < kWarpTiles; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            sum[mt][half] += __shfl_xor_sync(0xffffffffu, sum[mt][half], 1);
            sum[mt][half] += __shfl_xor_sync(0xffffffffu, sum[mt][half], 2);
        }
    if constexpr (kKeyWarps > 1) merge_key_warps<D, kKeyWarps>(smem_f4, warp, kw, lane, max2[0], sum[0], o[0]);
    if (kw != 0 || warp_idle) return;

#pragma unroll
    for (int mt = 0; mt < kWarpTiles; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int i = row_lo + mt * 16 + half * 8;
            if (i >= p.queries) continue;
            // a row that attended nothing stores zeros, not 0 x o: o may hold 0 x NaN from a hidden key's value
            const bool attended = sum[mt][half] != 0.f;
            const float inverse = attended ? 1.f / sum[mt][half] : 0.f;
#pragma unroll
            for (int vb = 0; vb < kValueBlocks; ++vb) {
                const int d = vb * 8 + 2 * t;
                if (d < p.value_dim)  // value_dim is a multiple of 8: d + 1 is in range too
                    store_output_pair<T>(p, b, h, i, split, d, attended ? o[mt][vb][2 * half] * inverse : 0.f,
                                         attended ? o[mt][vb][2 * half + 1] * inverse : 0.f);
            }
            if (t == 0) store_lse(p, b, h, i, split, row_lse(max2[mt][half], sum[mt][half]));
        }
}

template <typename T, int D, int kRowGroups, int kWarpTiles = 1>
cudaError_t launch_mma_for(const AttentionParams& p, cudaStream_t stream) {
    constexpr int kRows = 16 * kRowGroups * kWarpTiles;
    constexpr size_t smem = mma_smem_bytes<T, D, kRows>();
    static_assert(4 * 32 * (D / 8 + 1) * sizeof(float4) <= smem, "the warps' states fit for the merge");
    static_assert(smem == sizeof(T) * (D + 16 / sizeof(T)) * (kRows + 4 * kAttentionKeyTile),
                  "attention_mma_shared_bytes computes the same");
    auto kernel = attention_mma_kernel<T, D, kRowGroups, kWarpTiles>;
    if (smem > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess) return e;
    }
    const int64_t blocks = int64_t{p.batch} * p.heads * ((p.queries + kRows - 1) / kRows);
    const dim3 grid(static_cast<unsigned>(blocks), p.splits);
    kernel<<<grid, kMmaThreads, smem, stream>>>(p);
    return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launch_mma_rows(const AttentionParams& p, cudaStream_t stream) {
    switch (attention_query_tile(p.type, p.tf32, p.queries, p.narrow_rows)) {
        case 16: return launch_mma_for<T, D, 1>(p, stream);
        case 32: return launch_mma_for<T, D, 2>(p, stream);
        case 64: return launch_mma_for<T, D, 4>(p, stream);
        default:
            if constexpr (std::is_same_v<T, float>) return cudaErrorInvalidValue;  // TF32 takes at most 64 rows
            else return launch_mma_for<T, D, 4, 2>(p, stream);
    }
}

template <typename T>
cudaError_t launch_mma_typed(const AttentionParams& p, cudaStream_t stream) {
    const int widest = max(p.head_dim, p.value_dim);
    if (widest <= 32) return launch_mma_rows<T, 32>(p, stream);
    if (widest <= 64) return launch_mma_rows<T, 64>(p, stream);
    return launch_mma_rows<T, 128>(p, stream);
}

bool aligned16(const void* x) { return reinterpret_cast<uintptr_t>(x) % 16 == 0; }

}  // namespace

size_t attention_mma_shared_bytes(const AttentionParams& p) {
    const int widest = max(p.head_dim, p.value_dim), d = widest <= 32 ? 32 : widest <= 64 ? 64 : 128;
    const int rows = attention_query_tile(p.type, p.tf32, p.queries, p.narrow_rows);
    const size_t element = p.type == ElementType::kF32 ? 4 : 2, padding = 16 / element;
    return element * (d + padding) * (rows + 4 * kAttentionKeyTile);  // as mma_smem_bytes
}

bool attention_wide_rows_fit(int head_dim, int value_dim, int shared_optin) {
    const int widest = max(head_dim, value_dim), d = widest <= 32 ? 32 : widest <= 64 ? 64 : 128;
    return size_t{2} * (d + 8) * (128 + 4 * kAttentionKeyTile) <= static_cast<size_t>(shared_optin);  // as mma_smem_bytes
}

bool attention_mma_supports(const AttentionParams& p, int compute_major, int shared_optin) {
    const uintptr_t pair_bytes = p.type == ElementType::kF32 ? 8 : 4;  // the output is stored two elements at a time
    return compute_major >= 8 && (p.type != ElementType::kF32 || p.tf32) && p.head_dim > 0 && p.head_dim % 8 == 0 &&
           p.value_dim % 8 == 0 && p.value_dim > 0 && max(p.head_dim, p.value_dim) <= 128 && aligned16(p.q) &&
           aligned16(p.k) && aligned16(p.v) && reinterpret_cast<uintptr_t>(p.out) % pair_bytes == 0 &&
           attention_mma_shared_bytes(p) <= static_cast<size_t>(shared_optin);
}

cudaError_t launch_attention_mma(const AttentionParams& p, cudaStream_t stream) {
    switch (p.type) {
        case ElementType::kBF16: return launch_mma_typed<__nv_bfloat16>(p, stream);
        case ElementType::kF16: return launch_mma_typed<__half>(p, stream);
        case ElementType::kF32: return launch_mma_typed<float>(p, stream);
    }
    return cudaErrorInvalidValue;
}

}  // namespace mmf
