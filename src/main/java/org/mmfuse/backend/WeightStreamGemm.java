package org.mmfuse.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * c [m, n] = a [m, k] · wᵀ (+ bias) for a Linear layer's weight w [n, k] and a batch of a few dozen
 * rows, computed transposed: cᵀ = w · aᵀ. The weight, by far the larger operand (49 MB at 6000 x 2048),
 * is read once, in place, as broadcasts along its rows; the batch is what gets packed, aᵀ in blocks of
 * {@code 4 L} rows [k, 4 L] (2 L on AVX2), small enough to stay in L2 for every weight row.
 *
 * <pre>
 * for j0 in n, step 6                  six weight rows: six sequential streams, from memory
 *   for each block of 4 L batch rows   aᵀ block: L2
 *     6 x 4 vector accumulators over all of k, then the 6 x 4 L tile into c, transposed
 * </pre>
 *
 * That is AVX-512's; there a last block of at most 2 L rows takes a 6 x 2 kernel. On 16 vector registers
 * (AVX2) every block takes a 4 x 2 kernel: four weight rows, two vectors of batch rows (2 L).
 * Threads take runs of ROWS-row weight blocks; weight rows past a multiple of ROWS are copied into a
 * whole block first. The bilinear layer runs the same products with a sink of its own ({@link #products}).
 *
 * <p>Why not the packed {@link VectorGemm} or dot products: packing the weight costs as much as a
 * product that uses each of its elements only m times, and dot products along k are bound by their
 * loads ({@link DotGemm}: about 160 GFLOP/s on 2 cores). Measured 2026-11-23 at 64 x 2048 -> 6000 (2 cores,
 * median of 21 calls, one JVM a kernel): 6 x 4 here 257 GFLOP/s on JDK 25 and 277 on JDK 17; 13 x 2 ran
 * as fast on JDK 25 but at 108 on JDK 17, whose C2 loads all 13 broadcasts ahead of the FMAs and spills
 * accumulators; 8 x 2: 222 and 259.
 */
final class WeightStreamGemm {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Whether the 6 x 4 kernel's 24 accumulators fit in the registers: 32 of them (AVX-512), not 16 (AVX2). */
    private static final boolean WIDE_FITS = L >= 16;
    /** Weight rows of a kernel call: 6, or 4 on 16 registers (see {@link VectorGemm}'s kernel4 for why not 6 x 2). */
    static final int ROWS = WIDE_FITS ? 6 : 4;
    /** Batch rows of the wide kernel (four vectors) and of the narrow ones (two). */
    private static final int WIDE = 4 * L, NARROW = 2 * L;

    /** Per-thread kernel output tile, copy of the last weight rows, and packed batch. */
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[ROWS * WIDE]);
    private static final ThreadLocal<float[]> LAST_ROWS = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> PACKED = ThreadLocal.withInitial(() -> new float[0]);

    private WeightStreamGemm() {}

    /**
     * Receives each finished tile of cᵀ: weight rows [j0, j0 + cols) for batch rows [i0, i0 + valid), the
     * product of weight row j0 + j and batch row i0 + i at tile[j · width + i]. The batch rows' block starts
     * at i0 · k in the packed batch and at i0 in anything laid out like it.
     */
    interface TileSink {
        void accept(float[] tile, int width, int j0, int cols, int i0, int valid);
    }

    static void multiply(int m, int n, int k, float[] a, float[] w, float[] bias, float[] c, int threads) {
        float[] packed = pack(a, m, k, PACKED.get());
        PACKED.set(packed);
        int blocks = (n + ROWS - 1) / ROWS;
        int runs = threads == 1 ? 1 : Math.min(blocks, 4 * threads);
        CpuThreads.SHARED.run(runs, t -> products(m, n, k, packed, w, 0, k, CpuThreads.split(blocks, t, runs),
                CpuThreads.split(blocks, t + 1, runs),
                (tile, width, j0, cols, i0, valid) -> store(tile, width, valid, cols, bias, j0, c, i0 * n + j0, n)));
    }

    /**
     * The tiles of weight-row blocks [blockFrom, blockTo) (ROWS rows each) times every block of the packed
     * batch (m rows of k), handed to the sink one by one on this thread. Weight row j is the k floats at
     * w[wo + j · ldw]: a whole [n, k] weight, or a range of k columns of a wider one.
     */
    static void products(int m, int n, int k, float[] packed, float[] w, int wo, int ldw, int blockFrom, int blockTo,
            TileSink sink) {
        float[] tile = TILE.get();
        for (int block = blockFrom; block < blockTo; block++) {
            int j0 = block * ROWS, cols = Math.min(ROWS, n - j0);
            float[] rows = w;
            int at = wo + j0 * ldw, stride = ldw;
            if (cols < ROWS) {
                rows = lastRows(w, at, ldw, cols, k);
                at = 0;
                stride = k;
            }
            for (int i0 = 0; i0 < m; ) {
                int width = blockWidth(m, i0);
                if (width == WIDE) {
                    kernelWide(k, rows, at, stride, packed, i0 * k, tile);
                } else if (ROWS == 6) {
                    kernelNarrow(k, rows, at, stride, packed, i0 * k, tile);
                } else {
                    kernelFour(k, rows, at, stride, packed, i0 * k, tile);
                }
                sink.accept(tile, width, j0, cols, i0, Math.min(width, m - i0));
                i0 += width;
            }
        }
    }

    /** The width of the packed block that starts at batch row i0: four vectors, or two for a last few rows
     *  (and for all of them where the wide kernel would spill). */
    static int blockWidth(int m, int i0) {
        return WIDE_FITS && m - i0 > NARROW ? WIDE : NARROW;
    }

    /** Floats in the packed form of m rows of k: the rows rounded up to whole blocks (see TileProduct.packedSize). */
    static int packedSize(int m, int k) {
        int rows = 0;
        while (rows < m) rows += blockWidth(m, rows);
        return TileProduct.packedSize(rows, k);
    }

    /**
     * aᵀ in blocks into {@code buffer} (or a larger array, returned): each block of {@link #blockWidth}
     * batch rows as [k, width], the block of row i0
     * at i0 · k. Lanes past m are left as they are: their products are never stored.
     */
    static float[] pack(float[] a, int m, int k, float[] buffer) {
        float[] packed = Scratch.atLeast(buffer, packedSize(m, k));
        for (int i0 = 0; i0 < m; ) {
            int width = blockWidth(m, i0), rows = Math.min(width, m - i0), at = i0 * k;
            int j = 0;
            int size = Transpose.SIZE;
            if (size > 0) { // blocks transposed in registers, then the k % size last columns
                for (; j + size <= rows; j += size) {
                    int p = 0;
                    for (; p + size <= k; p += size) Transpose.block(a, (i0 + j) * k + p, k, 1f, packed, at + p * width + j, width);
                    for (; p < k; p++) {
                        for (int r = j; r < j + size; r++) packed[at + p * width + r] = a[(i0 + r) * k + p];
                    }
                }
            }
            for (int p = 0; p < k; p++) {
                int to = at + p * width;
                for (int r = j; r < rows; r++) packed[to + r] = a[(i0 + r) * k + p];
            }
            i0 += width;
        }
        return packed;
    }

    /**
     * The last weight rows (fewer than ROWS) where the kernel reads ROWS: the rows after them hold
     * whatever the scratch held, and their products are never used.
     */
    private static float[] lastRows(float[] w, int wo, int ldw, int cols, int k) {
        float[] rows = Scratch.atLeast(LAST_ROWS.get(), ROWS * k);
        LAST_ROWS.set(rows);
        for (int j = 0; j < cols; j++) System.arraycopy(w, wo + j * ldw, rows, j * k, k);
        return rows;
    }

    /** c[i, j0 + j] = tile[j, i] (+ bias[j0 + j]) for the valid batch rows i and weight rows j. */
    private static void store(float[] tile, int width, int valid, int cols, float[] bias, int j0, float[] c, int co,
            int ldc) {
        for (int j = 0; j < cols; j++) {
            float b = bias == null ? 0f : bias[j0 + j];
            for (int i = 0; i < valid; i++) c[co + i * ldc + j] = tile[j * width + i] + b;
        }
    }

    /** tile [6, 4 L] = six weight rows (k floats each, ldw apart from wo) · the packed block at {@code at}. */
    private static void kernelWide(int k, float[] w, int wo, int ldw, float[] a, int at, float[] tile) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00;
        FloatVector c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00;
        FloatVector c33 = c00, c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00;
        FloatVector c53 = c00;
        int w0 = wo, w1 = wo + ldw, w2 = wo + 2 * ldw, w3 = wo + 3 * ldw, w4 = wo + 4 * ldw, w5 = wo + 5 * ldw;
        for (int p = 0, o = at; p < k; p++, o += WIDE) {
            FloatVector b0 = FloatVector.fromArray(S, a, o), b1 = FloatVector.fromArray(S, a, o + L);
            FloatVector b2 = FloatVector.fromArray(S, a, o + 2 * L), b3 = FloatVector.fromArray(S, a, o + 3 * L);
            FloatVector x = FloatVector.broadcast(S, w[w0 + p]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            c02 = x.fma(b2, c02);
            c03 = x.fma(b3, c03);
            x = FloatVector.broadcast(S, w[w1 + p]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            c12 = x.fma(b2, c12);
            c13 = x.fma(b3, c13);
            x = FloatVector.broadcast(S, w[w2 + p]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            c22 = x.fma(b2, c22);
            c23 = x.fma(b3, c23);
            x = FloatVector.broadcast(S, w[w3 + p]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            c32 = x.fma(b2, c32);
            c33 = x.fma(b3, c33);
            x = FloatVector.broadcast(S, w[w4 + p]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            c42 = x.fma(b2, c42);
            c43 = x.fma(b3, c43);
            x = FloatVector.broadcast(S, w[w5 + p]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
            c52 = x.fma(b2, c52);
            c53 = x.fma(b3, c53);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, L);
        c02.intoArray(tile, 2 * L);
        c03.intoArray(tile, 3 * L);
        c10.intoArray(tile, WIDE);
        c11.intoArray(tile, WIDE + L);
        c12.intoArray(tile, WIDE + 2 * L);
        c13.intoArray(tile, WIDE + 3 * L);
        c20.intoArray(tile, 2 * WIDE);
        c21.intoArray(tile, 2 * WIDE + L);
        c22.intoArray(tile, 2 * WIDE + 2 * L);
        c23.intoArray(tile, 2 * WIDE + 3 * L);
        c30.intoArray(tile, 3 * WIDE);
        c31.intoArray(tile, 3 * WIDE + L);
        c32.intoArray(tile, 3 * WIDE + 2 * L);
        c33.intoArray(tile, 3 * WIDE + 3 * L);
        c40.intoArray(tile, 4 * WIDE);
        c41.intoArray(tile, 4 * WIDE + L);
        c42.intoArray(tile, 4 * WIDE + 2 * L);
        c43.intoArray(tile, 4 * WIDE + 3 * L);
        c50.intoArray(tile, 5 * WIDE);
        c51.intoArray(tile, 5 * WIDE + L);
        c52.intoArray(tile, 5 * WIDE + 2 * L);
        c53.intoArray(tile, 5 * WIDE + 3 * L);
    }

    /** tile [6, 2 L] = six weight rows (k floats each, ldw apart from wo) · the packed block at {@code at}. */
    private static void kernelNarrow(int k, float[] w, int wo, int ldw, float[] a, int at, float[] tile) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        int w0 = wo, w1 = wo + ldw, w2 = wo + 2 * ldw, w3 = wo + 3 * ldw, w4 = wo + 4 * ldw, w5 = wo + 5 * ldw;
        for (int p = 0, o = at; p < k; p++, o += NARROW) {
            FloatVector b0 = FloatVector.fromArray(S, a, o), b1 = FloatVector.fromArray(S, a, o + L);
            FloatVector x = FloatVector.broadcast(S, w[w0 + p]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, w[w1 + p]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, w[w2 + p]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, w[w3 + p]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, w[w4 + p]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, w[w5 + p]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, L);
        c10.intoArray(tile, NARROW);
        c11.intoArray(tile, NARROW + L);
        c20.intoArray(tile, 2 * NARROW);
        c21.intoArray(tile, 2 * NARROW + L);
        c30.intoArray(tile, 3 * NARROW);
        c31.intoArray(tile, 3 * NARROW + L);
        c40.intoArray(tile, 4 * NARROW);
        c41.intoArray(tile, 4 * NARROW + L);
        c50.intoArray(tile, 5 * NARROW);
        c51.intoArray(tile, 5 * NARROW + L);
    }

    /** tile [4, 2 L] = four weight rows · the packed block at {@code at}: kernelNarrow for 16 registers. */
    private static void kernelFour(int k, float[] w, int wo, int ldw, float[] a, int at, float[] tile) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00;
        FloatVector c31 = c00;
        int w0 = wo, w1 = wo + ldw, w2 = wo + 2 * ldw, w3 = wo + 3 * ldw;
        for (int p = 0, o = at; p < k; p++, o += NARROW) {
            FloatVector b0 = FloatVector.fromArray(S, a, o), b1 = FloatVector.fromArray(S, a, o + L);
            FloatVector x = FloatVector.broadcast(S, w[w0 + p]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, w[w1 + p]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, w[w2 + p]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, w[w3 + p]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, L);
        c10.intoArray(tile, NARROW);
        c11.intoArray(tile, NARROW + L);
        c20.intoArray(tile, 2 * NARROW);
        c21.intoArray(tile, 2 * NARROW + L);
        c30.intoArray(tile, 3 * NARROW);
        c31.intoArray(tile, 3 * NARROW + L);
    }
}
