package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A matrix product whose result is consumed, not stored: C = A · B over the whole k at once, one
 * MR x NR tile at a time into a small scratch tile that an {@link Epilogue} reads while it is in L1.
 * Bilinear pooling finishes its tiles there (mean, signed square root, sums of squares), the bilinear
 * layer dots them with x2, compact pooling scatters them into a sketch, and none of them writes C.
 *
 * <p>A and B are packed first into {@link VectorGemm}'s panel layouts (MR rows of A, NR columns of B,
 * zero-padded at the edges) from any pair of strides, so a transposed operand costs nothing extra.
 * Runs on the calling thread: the callers parallelise over independent products (samples, outputs).
 */
final class TileProduct {
    static final int MR = VectorGemm.MR;
    static final int NR = VectorGemm.NR;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ThreadLocal<int[]> GATHER = ThreadLocal.withInitial(() -> new int[L]);
    /** Per thread: one L x L block of a transposition. */
    private static final ThreadLocal<float[]> BLOCK = ThreadLocal.withInitial(() -> new float[L * L]);

    /** Reads one finished tile: {@code tile[i * NR + j]} is C[row + i, col + j] for i < rows, j < cols. */
    interface Epilogue {
        void accept(float[] tile, int row, int col, int rows, int cols);
    }

    private TileProduct() {}

    /** Floats that {@link #packA} writes for m rows. */
    static int packedASize(int m, int k) {
        return packedSize((long) panels(m, MR) * MR, k);
    }

    /** Floats that {@link #packB} writes for n columns. */
    static int packedBSize(int k, int n) {
        return packedSize((long) panels(n, NR) * NR, k);
    }

    /**
     * rows x k floats of a packed operand (its rows padded to whole panels), or, past a Java array's size,
     * an IllegalArgumentException: the padding can take a long, narrow operand past 2^31 floats.
     */
    static int packedSize(long rows, long k) {
        long floats = rows * k;
        if (floats > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a packed operand of " + rows + " x " + k + " floats (its rows padded to"
                    + " whole panels) passes a Java array's size; split the call along the long dimension");
        }
        return (int) floats;
    }

    static int panels(int size, int width) {
        return (size + width - 1) / width;
    }

    /**
     * A [m, k] with A[i, p] = src[at + i * rowStride + p * colStride] into panels of MR rows, each k x MR
     * with a row's MR values together; rows past m are zero.
     */
    static void packA(float[] src, int at, int rowStride, int colStride, int m, int k, float[] dst) {
        packA(src, at, rowStride, colStride, m, k, dst, 0);
    }

    /** As {@link #packA(float[], int, int, int, int, int, float[])}, the panels from dst[dstAt] on. */
    static void packA(float[] src, int at, int rowStride, int colStride, int m, int k, float[] dst, int dstAt) {
        pack(src, at, rowStride, colStride, m, k, MR, dst, dstAt);
    }

    /** B [k, n] with B[p, j] = src[at + p * rowStride + j * colStride] into panels of NR columns. */
    static void packB(float[] src, int at, int rowStride, int colStride, int k, int n, float[] dst) {
        packB(src, at, rowStride, colStride, k, n, dst, 0);
    }

    /** As {@link #packB(float[], int, int, int, int, int, float[])}, the panels from dst[dstAt] on. */
    static void packB(float[] src, int at, int rowStride, int colStride, int k, int n, float[] dst, int dstAt) {
        pack(src, at, colStride, rowStride, n, k, NR, dst, dstAt);
    }

    /**
     * Lines [count] of length k (line i, step p at src[at + i * lineStride + p * stepStride]) into panels
     * of {@code width} lines interleaved by step, from dst[dstAt] on. The loop runs along whichever
     * stride is 1.
     */
    private static void pack(float[] src, int at, int lineStride, int stepStride, int count, int k, int width,
            float[] dst, int dstAt) {
        int panels = panels(count, width);
        if (lineStride == 1 && width == NR) {
            // B from a row-major source, step by step: each step's NR-wide lines copied as two vectors, in
            // one sequential run over the source row, which the prefetchers stream at full bandwidth (the
            // bilinear layer's 268 MB weight went 2.2x faster than panel by panel, 2 KB strides apart).
            for (int p = 0; p < k; p++) {
                int from = at + p * stepStride;
                for (int panel = 0, first = 0; panel < panels; panel++, first += width) {
                    int lines = Math.min(width, count - first), to = dstAt + (panel * k + p) * width;
                    if (lines == NR) {
                        FloatVector.fromArray(S, src, from + first).intoArray(dst, to);
                        FloatVector.fromArray(S, src, from + first + L).intoArray(dst, to + L);
                    } else {
                        System.arraycopy(src, from + first, dst, to, lines);
                        Arrays.fill(dst, to + lines, to + width, 0f);
                    }
                }
            }
            return;
        }
        // Panel by panel: each panel's destination written in order.
        boolean gathered = stepStride == 1 && k > 1 && (width <= L || width == 2 * L);
        // Steps one gather fills: two of a 4-line panel on 8 lanes (AVX2's A panels), else one.
        int steps = width < L && L % width == 0 ? L / width : 1;
        int[] across = gathered ? gatherIndex(lineStride, Math.min(width, L), steps) : null;
        float[] block = BLOCK.get();
        for (int panel = 0, first = 0; panel < panels; panel++, first += width) {
            int lines = Math.min(width, count - first), base = dstAt + panel * k * width;
            if (stepStride == 1 && width < L && Transpose.SIZE == L && lines == width && first + L <= count) {
                // Fewer lines than lanes (AVX2's A panels), row-major, with L lines to read from: L x L blocks
                // transposed in registers into a scratch block, then each step's `width` values stored. The
                // gathers below ran as Java code on AVX2 (JDK 25: a ninth of a 1024^3 product's time, packing
                // in all a fifth; this way packing took an eighth). Masked stores were slower than the whole
                // vectors stored here.
                int from = at + first * lineStride, p = 0;
                for (; p + L <= k; p += L) {
                    Transpose.block(src, from + p, lineStride, 1f, block, 0, L);
                    for (int c = 0; c < L; c++) {
                        int to = base + (p + c) * width;
                        // a whole vector: its lanes past `width` land in the next step's place, written after
                        if (p + c + 1 < k) FloatVector.fromArray(S, block, c * L).intoArray(dst, to);
                        else System.arraycopy(block, c * L, dst, to, width);
                    }
                }
                stepByStep(src, from, lineStride, width, p, k, dst, base);
                continue;
            }
            if (stepStride == 1 && width == 2 * L && Transpose.SIZE == L && lines == width && k >= L) {
                // Two vectors of lines (a Linear weight's rows as B's columns): the same transpositions, each
                // half of a step's lines written straight to its place
                int from = at + first * lineStride, second = from + L * lineStride, p = 0;
                for (; p + L <= k; p += L) {
                    Transpose.block(src, from + p, lineStride, 1f, dst, base + p * width, width);
                    Transpose.block(src, second + p, lineStride, 1f, dst, base + p * width + L, width);
                }
                stepByStep(src, from, lineStride, width, p, k, dst, base);
                continue;
            }
            if (gathered && lines == width) {
                // Row-major lines (A's rows, or a Linear weight's as B's columns): gathers collect each
                // step's element of every line (element by element, this transposition took 14% of a large
                // linear layer's time). Two vectors fill a step of 2L lines. A gather fills several steps of
                // fewer lines when they divide L (4 on AVX2: half as many gathers), else its lanes past the
                // lines land in the next step's place, written after. Steps a gather would overrun the panel
                // from go element by element.
                int from = at + first * lineStride;
                if (width == 2 * L) {
                    int second = from + L * lineStride;
                    for (int p = 0; p < k; p++) {
                        FloatVector.fromArray(S, src, from + p, across, 0).intoArray(dst, base + p * width);
                        FloatVector.fromArray(S, src, second + p, across, 0).intoArray(dst, base + p * width + L);
                    }
                    continue;
                }
                int p = 0;
                for (int last = steps > 1 ? k - steps : k - 2; p <= last; p += steps) {
                    FloatVector.fromArray(S, src, from + p, across, 0).intoArray(dst, base + p * width);
                }
                stepByStep(src, from, lineStride, width, p, k, dst, base);
                continue;
            }
            if (lineStride == 1) {
                for (int p = 0; p < k; p++) {
                    int from = at + first + p * stepStride, to = base + p * width;
                    if (lines == width && width <= L && from + L <= src.length && to + L <= dst.length) {
                        // One vector instead of an MR-float arraycopy call (a sixth of bilinear pooling's time):
                        // the floats it writes past this step belong to the next step, written after it.
                        FloatVector.fromArray(S, src, from).intoArray(dst, to);
                        continue;
                    }
                    System.arraycopy(src, from, dst, to, lines);
                    if (lines < width) Arrays.fill(dst, to + lines, to + width, 0f);
                }
                continue;
            }
            for (int i = 0; i < width; i++) {
                if (i < lines) {
                    int from = at + (first + i) * lineStride;
                    for (int p = 0; p < k; p++) dst[base + p * width + i] = src[from + p * stepStride];
                } else {
                    for (int p = 0; p < k; p++) dst[base + p * width + i] = 0f;
                }
            }
        }
    }

    /** Steps [p0, k) of a panel of row-major lines, element by element: dst[base + p width + i] = line i's p-th. */
    private static void stepByStep(float[] src, int from, int lineStride, int width, int p0, int k, float[] dst, int base) {
        for (int p = p0; p < k; p++) {
            for (int i = 0; i < width; i++) dst[base + p * width + i] = src[from + i * lineStride + p];
        }
    }

    /** {0, stride, 2 stride, ..., 1, stride + 1, ...}: lane l gathers line l % lines at step l / lines, for
     *  {@code steps} steps; lanes past them gather the first line again, never kept. The calling thread's
     *  array, rewritten. */
    private static int[] gatherIndex(int stride, int lines, int steps) {
        int[] index = GATHER.get();
        for (int l = 0; l < L; l++) index[l] = l < lines * steps ? l % lines * stride + l / lines : 0;
        return index;
    }

    /**
     * Every tile of C [m, n] = A · B from packed panels. For each panel of B (kept in L1/L2 while it
     * lasts) the panels of A stream past it.
     *
     * @param tile scratch of MR * NR floats
     */
    static void multiply(int m, int n, int k, float[] packedA, float[] packedB, float[] tile,
            Epilogue epilogue) {
        multiply(m, n, k, packedA, packedB, 0, tile, epilogue);
    }

    /** As {@link #multiply(int, int, int, float[], float[], float[], Epilogue)}, B's panels from packedB[bFrom] on. */
    static void multiply(int m, int n, int k, float[] packedA, float[] packedB, int bFrom, float[] tile,
            Epilogue epilogue) {
        multiply(m, n, k, packedA, 0, packedB, bFrom, tile, epilogue);
    }

    /** As {@link #multiply(int, int, int, float[], float[], float[], Epilogue)}, A's and B's panels from aFrom and bFrom on. */
    static void multiply(int m, int n, int k, float[] packedA, int aFrom, float[] packedB, int bFrom, float[] tile,
            Epilogue epilogue) {
        for (int col = 0; col < n; col += NR) {
            int bAt = bFrom + col / NR * k * NR;
            for (int row = 0; row < m; row += MR) {
                VectorGemm.kernel(k, packedA, aFrom + row / MR * k * MR, packedB, bAt, tile, 0, NR, false);
                epilogue.accept(tile, row, col, Math.min(MR, m - row), Math.min(NR, n - col));
            }
        }
    }

    /**
     * As {@link #multiply}, row panel by row panel: each panel of A meets every panel of B in turn, so
     * an epilogue that stores the tiles writes C's rows in order (10% faster for bilinear pooling's
     * 6 MB per sample, measured; slower where B is the large operand). With {@code upperFrom} >= 0 the
     * rows are C's rows from upperFrom on, and tiles wholly below the diagonal are skipped (a symmetric
     * product's lower half).
     */
    static void multiplyByRows(int m, int n, int k, float[] packedA, float[] packedB, float[] tile, int upperFrom,
            Epilogue epilogue) {
        for (int row = 0; row < m; row += MR) {
            for (int col = 0; col < n; col += NR) {
                if (upperFrom >= 0 && col + NR <= upperFrom + row) continue;
                VectorGemm.kernel(k, packedA, row / MR * k * MR, packedB, col / NR * k * NR, tile, 0, NR, false);
                epilogue.accept(tile, row, col, Math.min(MR, m - row), Math.min(NR, n - col));
            }
        }
    }
}
