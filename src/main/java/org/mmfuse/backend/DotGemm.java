package org.mmfuse.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * c [m, n] = a [m, k] · wᵀ (+ bias) for a weight w [n, k] (a Linear layer's layout) and a batch small
 * enough to stay in L2, when {@link WeightStreamGemm} does not pay: fewer than two dozen rows, or a
 * weight that fits in L2. Dot products along k, with no packing: every weight row is read once, in
 * place. It reaches about 160 GFLOP/s on 2 cores whatever k (256 to 2048), a third of the 512-bit FMA
 * peak: its loads bound it (ten per 24 FMAs).
 *
 * <pre>
 * for j0 in n, step 6 (AVX2: 2)  six weight rows: k-long streams, kept in L1/L2 for the next loop
 *   for i0 in m, step 4          four rows of a, from L2
 *     24 vector accumulators along k (AVX2: 8), then as many lane sums
 * </pre>
 *
 * Threads take runs of weight rows. Edges (rows past a multiple of 4, weight rows past a multiple of COLS)
 * use one-by-one dot products.
 */
final class DotGemm {
    /**
     * 256-bit vectors even where 512 are preferred: ten loads per 24 FMAs make the kernel load-bound, and a
     * 64-byte load from a Java array (16-byte aligned) mostly straddles two cache lines. Measured on 2 AVX-512
     * cores: 141 GFLOP/s with 512-bit vectors, 161 with 256 (64 x 256 -> 600, in cache; 144 vs 164 at
     * 64 x 2048 -> 6000). The register tiling is not the limit: 4x4, 4x5, 2x8 and 6x4 all ran within 10%.
     */
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED.length() > 8 ? FloatVector.SPECIES_256
            : FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Rows of a and weight rows of a kernel call: 4 x 6 where there are 32 vector registers (AVX-512); 4 x 2
     *  where there are 16 (AVX2), whose 24 accumulators would spill (see VectorGemm's kernel4). */
    private static final int ROWS = 4, COLS = FloatVector.SPECIES_PREFERRED.length() > 8 ? 6 : 2;
    /** Per-thread room for one kernel call's accumulators. */
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[ROWS * COLS * L]);

    private DotGemm() {}

    static void multiply(int m, int n, int k, float[] a, float[] w, float[] bias, float[] c, int threads) {
        int blocks = (n + COLS - 1) / COLS;
        int runs = Math.min(blocks, 4 * threads);
        CpuThreads.SHARED.run(threads == 1 ? 1 : runs, t -> {
            int runCount = threads == 1 ? 1 : runs;
            for (int block = CpuThreads.split(blocks, t, runCount); block < CpuThreads.split(blocks, t + 1, runCount); block++) {
                int j0 = block * COLS, cols = Math.min(COLS, n - j0);
                int i0 = 0;
                if (cols == COLS) {
                    float[] lanes = LANES.get();
                    for (; i0 + ROWS <= m; i0 += ROWS) {
                        if (COLS == 6) kernel(k, a, i0 * k, w, j0 * k, bias, j0, c, i0 * n + j0, n, lanes);
                        else kernel2(k, a, i0 * k, w, j0 * k, bias, j0, c, i0 * n + j0, n, lanes);
                    }
                }
                for (int i = i0; i < m; i++) {
                    for (int j = j0; j < j0 + cols; j++) {
                        c[i * n + j] = dot(a, i * k, w, j * k, k) + (bias == null ? 0f : bias[j]);
                    }
                }
            }
        });
    }

    /** c[4, 6] at co = a rows [ao, ao + 4k) · w rows [wo, wo + 6k)ᵀ (+ bias[j0 ..]). */
    private static void kernel(int k, float[] a, int ao, float[] w, int wo, float[] bias, int j0, float[] c, int co,
            int ldc, float[] lanes) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00, c03 = c00, c04 = c00, c05 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00, c14 = c00, c15 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00, c24 = c00, c25 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00, c34 = c00, c35 = c00;
        int vectorEnd = k - k % L;
        for (int p = 0; p < vectorEnd; p += L) {
            FloatVector a0 = FloatVector.fromArray(S, a, ao + p), a1 = FloatVector.fromArray(S, a, ao + k + p);
            FloatVector a2 = FloatVector.fromArray(S, a, ao + 2 * k + p), a3 = FloatVector.fromArray(S, a, ao + 3 * k + p);
            FloatVector b = FloatVector.fromArray(S, w, wo + p);
            c00 = a0.fma(b, c00);
            c10 = a1.fma(b, c10);
            c20 = a2.fma(b, c20);
            c30 = a3.fma(b, c30);
            b = FloatVector.fromArray(S, w, wo + k + p);
            c01 = a0.fma(b, c01);
            c11 = a1.fma(b, c11);
            c21 = a2.fma(b, c21);
            c31 = a3.fma(b, c31);
            b = FloatVector.fromArray(S, w, wo + 2 * k + p);
            c02 = a0.fma(b, c02);
            c12 = a1.fma(b, c12);
            c22 = a2.fma(b, c22);
            c32 = a3.fma(b, c32);
            b = FloatVector.fromArray(S, w, wo + 3 * k + p);
            c03 = a0.fma(b, c03);
            c13 = a1.fma(b, c13);
            c23 = a2.fma(b, c23);
            c33 = a3.fma(b, c33);
            b = FloatVector.fromArray(S, w, wo + 4 * k + p);
            c04 = a0.fma(b, c04);
            c14 = a1.fma(b, c14);
            c24 = a2.fma(b, c24);
            c34 = a3.fma(b, c34);
            b = FloatVector.fromArray(S, w, wo + 5 * k + p);
            c05 = a0.fma(b, c05);
            c15 = a1.fma(b, c15);
            c25 = a2.fma(b, c25);
            c35 = a3.fma(b, c35);
        }
        // The accumulators go to memory and are summed there, lane by lane in a fixed order: no call on vectors
        // here (a call C2 does not inline boxes them), and the same bits interpreted or compiled.
        c00.intoArray(lanes, 0);
        c01.intoArray(lanes, L);
        c02.intoArray(lanes, 2 * L);
        c03.intoArray(lanes, 3 * L);
        c04.intoArray(lanes, 4 * L);
        c05.intoArray(lanes, 5 * L);
        c10.intoArray(lanes, 6 * L);
        c11.intoArray(lanes, 7 * L);
        c12.intoArray(lanes, 8 * L);
        c13.intoArray(lanes, 9 * L);
        c14.intoArray(lanes, 10 * L);
        c15.intoArray(lanes, 11 * L);
        c20.intoArray(lanes, 12 * L);
        c21.intoArray(lanes, 13 * L);
        c22.intoArray(lanes, 14 * L);
        c23.intoArray(lanes, 15 * L);
        c24.intoArray(lanes, 16 * L);
        c25.intoArray(lanes, 17 * L);
        c30.intoArray(lanes, 18 * L);
        c31.intoArray(lanes, 19 * L);
        c32.intoArray(lanes, 20 * L);
        c33.intoArray(lanes, 21 * L);
        c34.intoArray(lanes, 22 * L);
        c35.intoArray(lanes, 23 * L);
        sumLanes(lanes, bias, j0, c, co, ldc);
        if (vectorEnd < k) addTails(k, vectorEnd, a, ao, w, wo, c, co, ldc);
    }

    /** c[4, 2] at co: {@link #kernel} for 16 vector registers. */
    private static void kernel2(int k, float[] a, int ao, float[] w, int wo, float[] bias, int j0, float[] c, int co,
            int ldc, float[] lanes) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00;
        FloatVector c31 = c00;
        int vectorEnd = k - k % L;
        for (int p = 0; p < vectorEnd; p += L) {
            FloatVector b0 = FloatVector.fromArray(S, w, wo + p), b1 = FloatVector.fromArray(S, w, wo + k + p);
            FloatVector x = FloatVector.fromArray(S, a, ao + p);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.fromArray(S, a, ao + k + p);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.fromArray(S, a, ao + 2 * k + p);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.fromArray(S, a, ao + 3 * k + p);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
        }
        c00.intoArray(lanes, 0);
        c01.intoArray(lanes, L);
        c10.intoArray(lanes, 2 * L);
        c11.intoArray(lanes, 3 * L);
        c20.intoArray(lanes, 4 * L);
        c21.intoArray(lanes, 5 * L);
        c30.intoArray(lanes, 6 * L);
        c31.intoArray(lanes, 7 * L);
        sumLanes(lanes, bias, j0, c, co, ldc);
        if (vectorEnd < k) addTails(k, vectorEnd, a, ao, w, wo, c, co, ldc);
    }

    /** c[i, j] at co = the sum of the L lanes at lanes[(i COLS + j) L] (+ bias[j0 + j]), lane by lane in order. */
    private static void sumLanes(float[] lanes, float[] bias, int j0, float[] c, int co, int ldc) {
        for (int i = 0; i < ROWS; i++) {
            for (int j = 0; j < COLS; j++) {
                float sum = 0f;
                for (int l = 0; l < L; l++) sum += lanes[(i * COLS + j) * L + l];
                c[co + i * ldc + j] = sum + (bias == null ? 0f : bias[j0 + j]);
            }
        }
    }

    /** The last k % L terms of each of the ROWS x COLS dot products, which the vector loop left out. */
    private static void addTails(int k, int from, float[] a, int ao, float[] w, int wo, float[] c, int co, int ldc) {
        for (int i = 0; i < ROWS; i++) {
            for (int j = 0; j < COLS; j++) {
                float sum = 0;
                for (int p = from; p < k; p++) sum += a[ao + i * k + p] * w[wo + j * k + p];
                c[co + i * ldc + j] += sum;
            }
        }
    }

    private static float dot(float[] x, int xo, float[] y, int yo, int k) {
        FloatVector acc = FloatVector.zero(S);
        for (int p = 0; p < k; p += L) {
            VectorMask<Float> m = S.indexInRange(p, k);
            acc = FloatVector.fromArray(S, x, xo + p, m).fma(FloatVector.fromArray(S, y, yo + p, m), acc);
        }
        return VectorMath.sum(acc);
    }
}
