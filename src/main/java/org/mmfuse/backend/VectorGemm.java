package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * fp32 matrix product on the Vector API, blocked and packed after Goto and van de Geijn (BLIS's
 * loop order), on all cores.
 *
 * <pre>
 * for jc in n, step NC            B panel [KC, NC] packed once per (jc, pc): L3
 *   for pc in k, step KC
 *     for ic in m, step MC        A block [MC, KC] packed per thread: L2
 *       for jr in nc, step NR     B micro-panel [KC, NR]: L1 (L2 on AVX2, see KC)
 *         for ir in mc, step MR   MR x NR of C in 2 MR vector registers
 * </pre>
 *
 * The micro-kernel broadcasts one element of A per row and multiplies it into two vectors of B;
 * packed panels make every load in its loop sequential. Fewer than SKINNY_ROWS rows (a batch of one
 * to three) skip the packing, whose cost would match the product's: dot products against a transposed
 * B, row updates otherwise. Linear layers on a few dozen rows read their weight in place instead
 * ({@link WeightStreamGemm}, {@link DotGemm}); matrix products on a few hundred pack B a micro-panel at a
 * time ({@link #byPanels}).
 *
 * <p>Threads claim tasks one at a time: an M block each (packing their own copy of it), or, when there
 * is a single M block, packed once beforehand, a run of B micro-panels each.
 */
final class VectorGemm {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /**
     * Rows of the micro-kernel: as many as the vector registers hold accumulators for. On AVX-512 (32
     * registers) 13 x 2 rather than 14 x 2: JDK 25's C2 keeps three broadcasts live and spilled two of
     * 14 x 2's 28 accumulators to the stack in the loop (153 GFLOP/s of a 195 GFLOP/s core; 13 x 2 has
     * no spill, 175; JDK 17 runs both at 193-197). On AVX2's 16, which JDK compiles the kernel decides
     * (see kernel4 and kernel5): 5 x 2 from JDK 25, 4 x 2 before.
     */
    static final int MR = S.vectorBitSize() >= 512 ? 13 : Runtime.version().feature() >= 25 ? 5 : 4;
    static final int NR = 2 * L;
    /**
     * Steps of k per packed block. 1024 on AVX2, where fewer passes over C beat keeping the B micro-panel
     * in L1 (it streams from L2). Measured 2026-11-23 (Zen 4, 2 cores, JDK 25), two values side by side in
     * one JVM, GFLOP/s: 256 vs 512: 6272 x 2048 -> 512 (linear) 83 vs 88, 1024^3 90 vs 91, 2048^3 81 vs
     * 89; 512 vs 1024: 94 vs 105, 107 vs 110, 79 vs 80, 512^3 80 vs 84; 1024 vs 2048: 107 vs 109, 96 vs 109,
     * 90 vs 96 (2048 would double the packed B panel to 16 MB a thread). 256 elsewhere, not measured again
     * on AVX-512 or 128-bit vectors.
     */
    static final int KC = S.vectorBitSize() == 256 ? 1024 : 256;
    static final int MC = MR == 13 ? 7 * MR : 24 * MR;
    static final int NC = 128 * NR;
    /** Below this many flops one thread finishes before a second would have started. */
    private static final long PARALLEL_FLOPS = 1 << 18;
    /** Fewer rows than this go unpacked: packing B would cost as much as the product. */
    private static final int SKINNY_ROWS = 4;
    /**
     * Linear layers (B transposed) on up to this many rows take {@link DotGemm}, which never packs the
     * weight. Measured on 2 cores (2026-11-23, JDK 25, median of 15 calls after 3 s, one JVM per shape),
     * GFLOP/s dot vs packed (the weight gathered into panels): 32 x 768 -> 512: 170 vs 109; 64 x 2048 ->
     * 1200: 166 vs 140; 96 x 2048 -> 6000: 156 vs 133; 128 x 2048 -> 6000: 160 vs 149, but 128 x 768 -> 512:
     * 168 vs 201 and 150 x 2048 -> 1200: 101 vs 177 (a [m, k] past half of L2 streams from L3). On AVX2
     * (Zen 4, 2026-11-23, both in one JVM): 32 x 768 -> 512: 74 vs 51; 64 x 768 -> 512: 66 vs 64; 96 x 512
     * -> 512: 66 vs 70.
     */
    private static final int DOT_ROWS = 96;
    /**
     * Linear layers on this many rows whose weight is past L2 take {@link WeightStreamGemm}, which reads the
     * weight once, unpacked, and packs the batch instead. Measured as above (2026-11-23, later), GFLOP/s streamed
     * vs dot or packed: 24 x 2048 -> 6000: 188 vs 166 (dot); 64 x 2048 -> 6000: 246 vs 188 (dot), on JDK 17
     * 270 vs 99; 128 x 2048 -> 6000: 243 vs 178 (packed); 192 x 2048 -> 1200: 221 vs 207; 256 x 2048 -> 6000:
     * 206 vs 207. Below 24 rows its 32-row kernel computes mostly padding (16 x 2048 -> 6000: 111 vs 160);
     * a weight that fits in L2 is read fast enough either way (64 x 768 -> 512: 194 vs 203). All on AVX-512;
     * on AVX2 (as for DOT_ROWS), streamed vs dot: 24 x 2048 -> 6000: 73 vs 67; 32 x 2048 -> 6000: 99 vs 66;
     * 64 x 2048 -> 1200: 80 vs 47; 128 x 2048 -> 6000: 143 vs 96 (packed).
     */
    private static final int STREAM_MIN_ROWS = 24, STREAM_MAX_ROWS = 192;
    private static final long STREAM_MIN_WEIGHT = 1 << 20;
    /**
     * On AVX2 the stream also wins past STREAM_MAX_ROWS, up to this many rows, while the weight has at least
     * twice as many rows as the batch: packing the weight is the larger cost there. Measured 2026-11-23 (Zen 4,
     * AVX2, 2 cores, JDK 25, both kernels in one JVM, median of 8 rounds), GFLOP/s streamed vs packed:
     * 256 x 2048 -> 6000: 100 vs 73; 256 x 1200 -> 3000: 91 vs 58; 512 x 2048 -> 1200: 88 vs 68; 768 x 2048
     * -> 3000: 103 vs 84; 1024 x 2048 -> 6000: 95 vs 76; but 1024 x 2048 -> 1024: 88 vs 98 and 6272 x 2048 ->
     * 512: 43 vs 82. The limit also bounds the packed batch each thread keeps (m k floats). Not measured on
     * AVX-512 (where 256 x 2048 -> 6000 ran as fast either way) nor on 128-bit vectors.
     */
    private static final int STREAM_WIDE_MAX_ROWS = S.vectorBitSize() == 256 ? 1024 : STREAM_MAX_ROWS;

    /**
     * Matrix products (B [k, n] row-major) of up to PANEL_ROWS rows whose A is at most PANEL_A_FLOATS go
     * {@link #byPanels}: B packed one micro-panel at a time by the task that uses it, not all at once.
     * Measured 2026-12-07 (Zen 4 with AVX-512, 2 cores, JDK 25), fresh JVMs alternating this and the packed
     * path, GFLOP/s once warm: 32 x 768 -> 512: 119, 108, 112 vs 82, 82, 89; 64 x 2048 -> 1200: 132, 126, 124
     * vs 87, 116, 107; 96 x 1024 -> 1024: 133, 115 vs 116, 112; 256 x 1024 -> 1024: 140, 154 vs 134, 142. With
     * 256-bit vectors (-XX:MaxVectorSize=32): 83, 115 vs 100, 69; 82, 98 vs 79, 43; 86, 119 vs 63, 50 (this
     * VM's slow spells are as large as the difference). Reading B in place instead (ldb = n) was faster
     * with 512-bit vectors but with 256-bit ones lost to packing by up to half where B's rows, 4 KB apart,
     * share cache sets (96 x 1024 -> 1024: 86 vs 143 GFLOP/s, in one JVM).
     */
    private static final int PANEL_ROWS = 256;
    private static final long PANEL_A_FLOATS = 1 << 18;

    /** Per-thread packing buffers, reused: fresh arrays would be zeroed in cold memory on every call. */
    private static final ThreadLocal<float[]> PACKED_A = ThreadLocal.withInitial(() -> new float[MC * KC]);
    private static final ThreadLocal<float[]> PACKED_B = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> EDGE_TILE = ThreadLocal.withInitial(() -> new float[MR * NR]);

    private VectorGemm() {}

    /** c [m, n] = a [m, k] · b (+ bias), b being [k, n] or, transposed, [n, k]. */
    static void multiply(Gemm g, float[] a, float[] b, float[] bias, float[] c) {
        int m = (int) g.m, n = (int) g.n, k = (int) g.k;
        if (m == 0 || n == 0) return;
        if (k == 0) {
            for (int i = 0; i < m; i++) {
                if (bias == null) Arrays.fill(c, i * n, (i + 1) * n, 0f); else System.arraycopy(bias, 0, c, i * n, n);
            }
            return;
        }
        int threads = g.flops() < PARALLEL_FLOPS ? 1 : CpuThreads.SHARED.threads();
        if (m < SKINNY_ROWS) {
            skinny(g.transposedB, m, n, k, a, b, bias, c, threads);
            return;
        }
        boolean streamRows = m <= STREAM_MAX_ROWS || m <= STREAM_WIDE_MAX_ROWS && n >= 2L * m;
        if (g.transposedB && m >= STREAM_MIN_ROWS && streamRows && (long) n * k >= STREAM_MIN_WEIGHT) {
            WeightStreamGemm.multiply(m, n, k, a, b, bias, c, threads);
            return;
        }
        if (g.transposedB && m <= DOT_ROWS) {
            DotGemm.multiply(m, n, k, a, b, bias, c, threads);
            return;
        }
        if (!g.transposedB && m <= PANEL_ROWS && (long) m * k <= PANEL_A_FLOATS) {
            byPanels(m, n, k, a, b, bias, c, threads);
            return;
        }
        // grown to what the largest call so far needed, at most KC x NC (8 MB on AVX2)
        float[] packedB = Scratch.atLeast(PACKED_B.get(), Math.min(KC, k) * Math.min(NC, (n + NR - 1) / NR * NR));
        PACKED_B.set(packedB);
        // M blocks of at most MC rows, as many as a multiple of the threads, all of the same number of MR-row
        // panels give or take one, so that no thread idles through a short last block (3 blocks on 2 threads
        // left one a third of the work; 1024 rows in 11 blocks of 91 and one of 23 cost 1024 x 1024 x 1024 4%)
        final int rowPanels = (m + MR - 1) / MR;
        int mBlocks = (rowPanels + MC / MR - 1) / (MC / MR);
        if (threads > 1 && mBlocks > 1) mBlocks = Math.min(rowPanels, (mBlocks + threads - 1) / threads * threads);
        final int blocks = mBlocks;
        for (int jc = 0; jc < n; jc += NC) {
            int nc = Math.min(NC, n - jc);
            int panels = (nc + NR - 1) / NR;
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                final int j0 = jc, p0 = pc;
                int packTasks = Math.min(threads, panels);
                CpuThreads.SHARED.run(packTasks, t -> {
                    for (int q = panels * t / packTasks; q < panels * (t + 1) / packTasks; q++) {
                        packB(g.transposedB, b, n, k, p0, kc, j0 + q * NR, Math.min(NR, nc - q * NR), packedB,
                                q * kc * NR);
                    }
                });
                // Tasks are claimed one at a time, so threads that finish early take more: an M block each,
                // or with a single M block, a run of micro-panels each; that block is packed (and its C
                // rows initialised) once, here, for all tasks to share.
                boolean byBlock = blocks > 1 || threads == 1;
                int runs = byBlock ? blocks : Math.min(panels, 4 * threads);
                float[] sharedA = byBlock ? null : PACKED_A.get();
                if (!byBlock) {
                    packA(a, k, 0, m, p0, kc, sharedA);
                    if (p0 == 0) initialize(c, j0, n, m, nc, bias, j0);
                }
                CpuThreads.SHARED.run(runs, t -> {
                    int b0 = byBlock ? t : 0, b1 = byBlock ? t + 1 : 1;
                    int q0 = byBlock ? 0 : panels * t / runs, q1 = byBlock ? panels : panels * (t + 1) / runs;
                    float[] packedA = byBlock ? PACKED_A.get() : sharedA;
                    for (int block = b0; block < b1; block++) {
                        int ic = firstPanel(rowPanels, block, blocks) * MR;
                        int mc = Math.min(firstPanel(rowPanels, block + 1, blocks) * MR, m) - ic;
                        if (byBlock) {
                            packA(a, k, ic, mc, p0, kc, packedA);
                            if (p0 == 0) initialize(c, ic * n + j0, n, mc, nc, bias, j0);
                        }
                        for (int q = q0; q < q1; q++) {
                            int col = j0 + q * NR, nr = Math.min(NR, n - col);
                            for (int ir = 0; ir < mc; ir += MR) {
                                tile(kc, packedA, (ir / MR) * kc * MR, packedB, q * kc * NR, c, (ic + ir) * n + col, n,
                                        Math.min(MR, mc - ir), nr);
                            }
                        }
                    }
                });
            }
        }
    }

    /**
     * c [m, n] = a [m, k] · b [k, n] (+ bias) for a few rows: A packed once, all of k (it stays in L2), then
     * threads take runs of B's column micro-panels, each packing one (zero-padded past n) into its buffer,
     * where it stays in L1 or L2 while every row panel of A is multiplied into it.
     */
    private static void byPanels(int m, int n, int k, float[] a, float[] b, float[] bias, float[] c, int threads) {
        float[] packedA = Scratch.atLeast(PACKED_A.get(), TileProduct.packedASize(m, k));
        PACKED_A.set(packedA);
        packA(a, k, 0, m, 0, k, packedA);
        int panels = (n + NR - 1) / NR, tasks = threads == 1 ? 1 : Math.min(panels, 4 * threads);
        CpuThreads.SHARED.run(tasks, t -> {
            float[] panel = Scratch.atLeast(PACKED_B.get(), k * NR);
            PACKED_B.set(panel);
            for (int q = panels * t / tasks; q < panels * (t + 1) / tasks; q++) {
                int col = q * NR, nr = Math.min(NR, n - col);
                packB(false, b, n, k, 0, k, col, nr, panel, 0);
                initialize(c, col, n, m, nr, bias, col);
                for (int ir = 0; ir < m; ir += MR) {
                    tile(k, packedA, ir * k, panel, 0, c, ir * n + col, n, Math.min(MR, m - ir), nr);
                }
            }
        });
    }

    /** The first of a block's panels when {@code panels} are split into {@code blocks} as evenly as can be. */
    private static int firstPanel(int panels, int block, int blocks) {
        return (int) ((long) panels * block / blocks);
    }

    /** B[p0 .. p0+kc, col .. col+nr] into the micro-panel at {@code at}: NR values per k, zero beyond nr. */
    private static void packB(boolean transposed, float[] b, int n, int k, int p0, int kc, int col, int nr,
            float[] dst, int at) {
        if (transposed) { // b is [n, k]: B[p, j] = b[(col + j) k + p0 + p]
            TileProduct.packB(b, col * k + p0, 1, k, kc, nr, dst, at);
        } else {
            TileProduct.packB(b, p0 * n + col, n, 1, kc, nr, dst, at);
        }
    }

    /** A[ic .. ic+mc, p0 .. p0+kc] into row panels: MR values per k, zero beyond mc. */
    private static void packA(float[] a, int k, int ic, int mc, int p0, int kc, float[] dst) {
        TileProduct.packA(a, ic * k + p0, k, 1, mc, kc, dst);
    }

    /**
     * Adds one MR x NR tile of A · B to C: the micro-kernel straight into C when the tile is whole, else
     * into a scratch tile whose valid part is then added.
     */
    private static void tile(int kc, float[] pa, int ao, float[] pb, int bo, float[] c, int co, int ldc, int mr, int nr) {
        if (mr == MR && nr == NR) {
            kernel(kc, pa, ao, pb, bo, c, co, ldc);
            return;
        }
        float[] scratch = EDGE_TILE.get();
        kernel(kc, pa, ao, pb, bo, scratch, 0, NR, false);
        for (int i = 0; i < mr; i++) {
            for (int j = 0; j < nr; j++) c[co + i * ldc + j] += scratch[i * NR + j];
        }
    }

    /** C[rows, cols] at co = the bias on every row, or zeros: where the first k block's products are added. */
    private static void initialize(float[] c, int co, int ldc, int rows, int cols, float[] bias, int col) {
        for (int i = 0; i < rows; i++) {
            int at = co + i * ldc;
            if (bias == null) Arrays.fill(c, at, at + cols, 0f); else System.arraycopy(bias, col, c, at, cols);
        }
    }

    /** 13 x 2 vectors: 26 accumulators, for 512-bit vectors (32 registers). */
    private static void kernel13(int kc, float[] pa, int ao, float[] pb, int bo, int ldb, float[] c, int co, int ldc,
            boolean accumulate) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00;
        FloatVector c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00, c91 = c00, c100 = c00, c101 = c00;
        FloatVector c110 = c00, c111 = c00, c120 = c00, c121 = c00;
        for (int p = 0; p < kc; p++, ao += 13, bo += ldb) {
            FloatVector b0 = FloatVector.fromArray(S, pb, bo), b1 = FloatVector.fromArray(S, pb, bo + L);
            FloatVector x = FloatVector.broadcast(S, pa[ao]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, pa[ao + 1]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, pa[ao + 2]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, pa[ao + 3]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, pa[ao + 4]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, pa[ao + 5]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
            x = FloatVector.broadcast(S, pa[ao + 6]);
            c60 = x.fma(b0, c60);
            c61 = x.fma(b1, c61);
            x = FloatVector.broadcast(S, pa[ao + 7]);
            c70 = x.fma(b0, c70);
            c71 = x.fma(b1, c71);
            x = FloatVector.broadcast(S, pa[ao + 8]);
            c80 = x.fma(b0, c80);
            c81 = x.fma(b1, c81);
            x = FloatVector.broadcast(S, pa[ao + 9]);
            c90 = x.fma(b0, c90);
            c91 = x.fma(b1, c91);
            x = FloatVector.broadcast(S, pa[ao + 10]);
            c100 = x.fma(b0, c100);
            c101 = x.fma(b1, c101);
            x = FloatVector.broadcast(S, pa[ao + 11]);
            c110 = x.fma(b0, c110);
            c111 = x.fma(b1, c111);
            x = FloatVector.broadcast(S, pa[ao + 12]);
            c120 = x.fma(b0, c120);
            c121 = x.fma(b1, c121);
        }
        if (accumulate) {
            c00 = c00.add(FloatVector.fromArray(S, c, co));
            c01 = c01.add(FloatVector.fromArray(S, c, co + L));
            c10 = c10.add(FloatVector.fromArray(S, c, co + ldc));
            c11 = c11.add(FloatVector.fromArray(S, c, co + ldc + L));
            c20 = c20.add(FloatVector.fromArray(S, c, co + 2 * ldc));
            c21 = c21.add(FloatVector.fromArray(S, c, co + 2 * ldc + L));
            c30 = c30.add(FloatVector.fromArray(S, c, co + 3 * ldc));
            c31 = c31.add(FloatVector.fromArray(S, c, co + 3 * ldc + L));
            c40 = c40.add(FloatVector.fromArray(S, c, co + 4 * ldc));
            c41 = c41.add(FloatVector.fromArray(S, c, co + 4 * ldc + L));
            c50 = c50.add(FloatVector.fromArray(S, c, co + 5 * ldc));
            c51 = c51.add(FloatVector.fromArray(S, c, co + 5 * ldc + L));
            c60 = c60.add(FloatVector.fromArray(S, c, co + 6 * ldc));
            c61 = c61.add(FloatVector.fromArray(S, c, co + 6 * ldc + L));
            c70 = c70.add(FloatVector.fromArray(S, c, co + 7 * ldc));
            c71 = c71.add(FloatVector.fromArray(S, c, co + 7 * ldc + L));
            c80 = c80.add(FloatVector.fromArray(S, c, co + 8 * ldc));
            c81 = c81.add(FloatVector.fromArray(S, c, co + 8 * ldc + L));
            c90 = c90.add(FloatVector.fromArray(S, c, co + 9 * ldc));
            c91 = c91.add(FloatVector.fromArray(S, c, co + 9 * ldc + L));
            c100 = c100.add(FloatVector.fromArray(S, c, co + 10 * ldc));
            c101 = c101.add(FloatVector.fromArray(S, c, co + 10 * ldc + L));
            c110 = c110.add(FloatVector.fromArray(S, c, co + 11 * ldc));
            c111 = c111.add(FloatVector.fromArray(S, c, co + 11 * ldc + L));
            c120 = c120.add(FloatVector.fromArray(S, c, co + 12 * ldc));
            c121 = c121.add(FloatVector.fromArray(S, c, co + 12 * ldc + L));
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
        c60.intoArray(c, co + 6 * ldc);
        c61.intoArray(c, co + 6 * ldc + L);
        c70.intoArray(c, co + 7 * ldc);
        c71.intoArray(c, co + 7 * ldc + L);
        c80.intoArray(c, co + 8 * ldc);
        c81.intoArray(c, co + 8 * ldc + L);
        c90.intoArray(c, co + 9 * ldc);
        c91.intoArray(c, co + 9 * ldc + L);
        c100.intoArray(c, co + 10 * ldc);
        c101.intoArray(c, co + 10 * ldc + L);
        c110.intoArray(c, co + 11 * ldc);
        c111.intoArray(c, co + 11 * ldc + L);
        c120.intoArray(c, co + 12 * ldc);
        c121.intoArray(c, co + 12 * ldc + L);
    }

    /**
     * The 4 x 2 micro-kernel for 16 vector registers (AVX2) before JDK 25. 6 x 2 would fill them (12
     * accumulators), but JDK 25's C2 keeps three broadcasts live and spills an accumulator through the
     * stack in the loop: 36-39 GFLOP/s of a 70-80 GFLOP/s core (Zen 4, AVX2), against 70-83 for 4 x 2 on
     * JDK 17 and 25 alike (one core, L1-resident panels, 2026-11-23; 3 x 3 and 2 x 5 ran close, 6 x 2 on
     * JDK 17 70-76).
     */
    private static void kernel4(int kc, float[] pa, int ao, float[] pb, int bo, int ldb, float[] c, int co, int ldc,
            boolean accumulate) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00;
        FloatVector c31 = c00;
        for (int p = 0; p < kc; p++, ao += 4, bo += ldb) {
            FloatVector b0 = FloatVector.fromArray(S, pb, bo), b1 = FloatVector.fromArray(S, pb, bo + L);
            FloatVector x = FloatVector.broadcast(S, pa[ao]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, pa[ao + 1]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, pa[ao + 2]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, pa[ao + 3]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
        }
        if (accumulate) {
            c00 = c00.add(FloatVector.fromArray(S, c, co));
            c01 = c01.add(FloatVector.fromArray(S, c, co + L));
            c10 = c10.add(FloatVector.fromArray(S, c, co + ldc));
            c11 = c11.add(FloatVector.fromArray(S, c, co + ldc + L));
            c20 = c20.add(FloatVector.fromArray(S, c, co + 2 * ldc));
            c21 = c21.add(FloatVector.fromArray(S, c, co + 2 * ldc + L));
            c30 = c30.add(FloatVector.fromArray(S, c, co + 3 * ldc));
            c31 = c31.add(FloatVector.fromArray(S, c, co + 3 * ldc + L));
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
    }

    /**
     * The 5 x 2 micro-kernel for 16 vector registers on JDK 25 and later: ten accumulators leave room for
     * the broadcasts C2 hoists, and two more FMA chains than 4 x 2 hide more of the FMA latency. Measured
     * 2026-11-24 (Zen 4, AVX2, 2 cores), 5 x 2 against 4 x 2 in one JVM (medians of 15, GFLOP/s): on JDK 25
     * matmul 512^3 85 vs 78, 1024^3 105 vs 94, 2048^3 110 vs 103, bilinear pooling 8 x 49 x 2048 x 768 71
     * vs 64; on JDK 17 the reverse, 99 vs 113, 66 vs 74, 71 vs 86, hence 4 x 2 there. Not measured on the
     * JDKs between.
     * <p>Keep ldb a parameter: stepping B by the constant NR lets C2 drop the B loads' range checks, and then
     * it hoists all five broadcasts together, spills an accumulator to the stack and runs at half speed
     * (JDK 25, 2026-11-24: 1024^3 52 against 102 GFLOP/s). The checks are what keep its schedule in registers.
     */
    private static void kernel5(int kc, float[] pa, int ao, float[] pb, int bo, int ldb, float[] c, int co, int ldc,
            boolean accumulate) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00;
        FloatVector c31 = c00, c40 = c00, c41 = c00;
        for (int p = 0; p < kc; p++, ao += 5, bo += ldb) {
            FloatVector b0 = FloatVector.fromArray(S, pb, bo), b1 = FloatVector.fromArray(S, pb, bo + L);
            FloatVector x = FloatVector.broadcast(S, pa[ao]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, pa[ao + 1]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, pa[ao + 2]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, pa[ao + 3]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, pa[ao + 4]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
        }
        if (accumulate) {
            c00 = c00.add(FloatVector.fromArray(S, c, co));
            c01 = c01.add(FloatVector.fromArray(S, c, co + L));
            c10 = c10.add(FloatVector.fromArray(S, c, co + ldc));
            c11 = c11.add(FloatVector.fromArray(S, c, co + ldc + L));
            c20 = c20.add(FloatVector.fromArray(S, c, co + 2 * ldc));
            c21 = c21.add(FloatVector.fromArray(S, c, co + 2 * ldc + L));
            c30 = c30.add(FloatVector.fromArray(S, c, co + 3 * ldc));
            c31 = c31.add(FloatVector.fromArray(S, c, co + 3 * ldc + L));
            c40 = c40.add(FloatVector.fromArray(S, c, co + 4 * ldc));
            c41 = c41.add(FloatVector.fromArray(S, c, co + 4 * ldc + L));
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
    }

    /**
     * The micro-kernel: C[MR, NR] at co += A panel · B micro-panel over kc. Its stores are written out
     * in the kernels, not in a helper: past C2's node-count cutoff a helper is not inlined, and
     * accumulators passed to a call are boxed, which made the kernel ten times slower.
     */
    static void kernel(int kc, float[] pa, int ao, float[] pb, int bo, float[] c, int co, int ldc) {
        kernel(kc, pa, ao, pb, bo, c, co, ldc, true);
    }

    /** The micro-kernel storing A · B over C's tile instead of adding to it when not {@code accumulate}. */
    static void kernel(int kc, float[] pa, int ao, float[] pb, int bo, float[] c, int co, int ldc, boolean accumulate) {
        if (MR == 13) {
            kernel13(kc, pa, ao, pb, bo, NR, c, co, ldc, accumulate);
        } else if (MR == 5) {
            kernel5(kc, pa, ao, pb, bo, NR, c, co, ldc, accumulate);
        } else {
            kernel4(kc, pa, ao, pb, bo, NR, c, co, ldc, accumulate);
        }
    }

    /** m < SKINNY_ROWS rows: no packing; threads split the columns. */
    private static void skinny(boolean transposed, int m, int n, int k, float[] a, float[] b, float[] bias, float[] c,
            int threads) {
        CpuThreads.SHARED.run(threads, t -> {
            int j0 = CpuThreads.split(n, t, threads), j1 = CpuThreads.split(n, t + 1, threads);
            for (int i = 0; i < m; i++) {
                if (transposed) {
                    for (int j = j0; j < j1; j++) {
                        c[i * n + j] = VectorMath.dot(a, i * k, b, j * k, k) + (bias == null ? 0f : bias[j]);
                    }
                } else {
                    rowTimesMatrix(a, i * k, b, n, k, j0, j1, bias, c, i * n);
                }
            }
        });
    }

    /** c[j0 .. j1) of one row = x · B[:, j0 .. j1) (+ bias): a sum of B's rows scaled by x. */
    private static void rowTimesMatrix(float[] a, int xo, float[] b, int n, int k, int j0, int j1, float[] bias,
            float[] c, int co) {
        for (int j = j0; j < j1; j++) c[co + j] = bias == null ? 0f : bias[j];
        int vectorEnd = j0 + (j1 - j0) / L * L;
        for (int p = 0; p < k; p++) {
            FloatVector x = FloatVector.broadcast(S, a[xo + p]);
            int row = p * n;
            int j = j0;
            for (; j < vectorEnd; j += L) {
                FloatVector.fromArray(S, b, row + j).fma(x, FloatVector.fromArray(S, c, co + j)).intoArray(c, co + j);
            }
            for (; j < j1; j++) c[co + j] += a[xo + p] * b[row + j];
        }
    }
}
