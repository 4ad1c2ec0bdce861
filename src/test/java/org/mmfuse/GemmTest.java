package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** matmul and linear on every backend against a double-precision product, at awkward sizes. */
class GemmTest {
    static Stream<Ops> backends() {
        return TestSupport.backends();
    }

    /** c = a · op(b) (+ bias) summed in double, with the magnitude sum |a||b| per element for the tolerance. */
    private static double[][] reference(float[] a, float[] b, float[] bias, int m, int n, int k, boolean transposedB) {
        double[] value = new double[m * n], magnitude = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = bias == null ? 0 : bias[j], abs = bias == null ? 0 : Math.abs(bias[j]);
                for (int p = 0; p < k; p++) {
                    double term = (double) a[i * k + p] * (transposedB ? b[j * k + p] : b[p * n + j]);
                    sum += term;
                    abs += Math.abs(term);
                }
                value[i * n + j] = sum;
                magnitude[i * n + j] = abs;
            }
        }
        return new double[][] {value, magnitude};
    }

    /** fp32 accumulation: relative to the sum of magnitudes, 1e-5 holds for k in the thousands. */
    private static void assertClose(double[][] expected, float[] got, String what) {
        for (int i = 0; i < got.length; i++) {
            double error = Math.abs(got[i] - expected[0][i]);
            if (!(error <= 1e-5 * expected[1][i] + 1e-30)) {
                fail(what + ": element " + i + " is " + got[i] + ", expected " + expected[0][i] + " (error " + error
                        + ", magnitude " + expected[1][i] + ")");
            }
        }
    }

    private static void checkMatmul(Ops ops, Random rng, int m, int n, int k) {
        Tensor a = TestSupport.random(rng, m, k), b = TestSupport.random(rng, k, n);
        try (Tensor da = TestSupport.on(ops, a); Tensor db = TestSupport.on(ops, b); Tensor c = ops.matmul(da, db)) {
            assertArrayEquals(new long[] {m, n}, c.shape());
            assertClose(reference(a.array(), b.array(), null, m, n, k, false), c.toArray(),
                    ops.backend() + " matmul m=" + m + " n=" + n + " k=" + k);
        }
    }

    private static void checkLinear(Ops ops, Random rng, long[] xShape, int out, boolean withBias) {
        int in = (int) xShape[xShape.length - 1];
        Tensor x = TestSupport.random(rng, xShape), w = TestSupport.random(rng, out, in);
        Tensor bias = withBias ? TestSupport.random(rng, out) : null;
        int rows = (int) (Shapes.numel("x", xShape) / Math.max(in, 1));
        if (in == 0) rows = (int) Shapes.product(xShape, 0, xShape.length - 1);
        try (Tensor dx = TestSupport.on(ops, x); Tensor dw = TestSupport.on(ops, w);
                Tensor db = withBias ? TestSupport.on(ops, bias) : null; Tensor y = ops.linear(dx, dw, db)) {
            long[] expectedShape = xShape.clone();
            expectedShape[expectedShape.length - 1] = out;
            assertArrayEquals(expectedShape, y.shape());
            assertClose(reference(x.array(), w.array(), withBias ? bias.array() : null, rows, out, in, true), y.toArray(),
                    ops.backend() + " linear x=" + Shapes.toString(xShape) + " out=" + out + " bias=" + withBias);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void matmulAtAwkwardSizes(Ops ops) {
        Random rng = new Random(11);
        int[] ms = {1, 2, 5, 6, 7, 13, 97, 130};
        int[] ns = {1, 3, 17, 31, 32, 33, 100};
        int[] ks = {1, 7, 255, 256, 257, 600};
        for (int m : ms) for (int n : ns) checkMatmul(ops, rng, m, n, ks[rng.nextInt(ks.length)]);
        for (int k : ks) checkMatmul(ops, rng, 1 + rng.nextInt(40), 1 + rng.nextInt(70), k);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void matmulWithEmptyDimensions(Ops ops) {
        Random rng = new Random(12);
        checkMatmul(ops, rng, 0, 5, 3);
        checkMatmul(ops, rng, 4, 0, 3);
        checkMatmul(ops, rng, 4, 5, 0); // zeros, whatever the output held before
    }

    @ParameterizedTest
    @MethodSource("backends")
    void largeEnoughForEveryBlockAndThread(Ops ops) {
        Random rng = new Random(13);
        checkMatmul(ops, rng, 203, 4200, 300); // several M blocks, two N panels of 4096, two K blocks
        checkMatmul(ops, rng, 5, 3000, 700);   // fewer rows than the micro-kernel: edge tiles only
        checkMatmul(ops, rng, 3, 3000, 700);   // a batch of three: the unpacked path
        checkMatmul(ops, rng, 37, 45, 2100);   // k past two K blocks at every vector width
    }

    @ParameterizedTest
    @MethodSource("backends")
    void linearFollowsTorch(Ops ops) {
        Random rng = new Random(14);
        checkLinear(ops, rng, new long[] {7, 33}, 19, true);
        checkLinear(ops, rng, new long[] {2, 3, 64}, 40, true);   // batched [B, T, in]
        checkLinear(ops, rng, new long[] {1, 300}, 129, false);   // batch of one
        checkLinear(ops, rng, new long[] {3, 2000}, 700, true);   // a batch of three, large enough for threads
        checkLinear(ops, rng, new long[] {4, 2, 300}, 129, true);
        checkLinear(ops, rng, new long[] {130, 257}, 70, true);
        checkLinear(ops, rng, new long[] {2, 150, 301}, 257, true); // 300 rows: M blocks balanced over the threads
        checkLinear(ops, rng, new long[] {200, 258}, 45, true);   // gathered panels; a last K block of 2 steps
        checkLinear(ops, rng, new long[] {64, 2047}, 1201, true); // the weight streamed: tails of k and of weight rows
        checkLinear(ops, rng, new long[] {37, 1100}, 1000, false); // streamed: one 64-row block, mostly padding
        checkLinear(ops, rng, new long[] {3, 30, 1031}, 1025, true); // streamed: blocks of 64 and a last one of 26
        checkLinear(ops, rng, new long[] {191, 1024}, 1030, true); // streamed: three blocks of 64, the last part padding
        checkLinear(ops, rng, new long[] {2, 150, 700}, 1603, true); // 300 rows, a weight over twice as tall: streamed on AVX2
        checkLinear(ops, rng, new long[] {23, 2047}, 1201, true); // too few rows to stream: dot products, threads, tails
        checkLinear(ops, rng, new long[] {64, 300}, 129, true);   // a weight in L2: dot products
        checkLinear(ops, rng, new long[] {128, 16}, 6, false);
        checkLinear(ops, rng, new long[] {4, 15}, 12, true);      // k shorter than a vector: tails only
        checkLinear(ops, rng, new long[] {3, 0}, 5, true);        // in = 0: the bias alone
        checkLinear(ops, rng, new long[] {0, 8}, 5, true);        // no rows
        checkLinear(ops, rng, new long[] {9}, 4, true);           // a single vector
    }

    /**
     * Few rows and a long k: on CUDA these products are split along k (mmf_gemm_k_split) into slices of one
     * length (k = 4096) or with a shorter last one (k = 4097, 513), the partials summed with the bias.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void fewRowsAndALongK(Ops ops) {
        Random rng = new Random(15);
        checkMatmul(ops, rng, 5, 33, 4096);
        checkMatmul(ops, rng, 1, 70, 4097);
        checkMatmul(ops, rng, 64, 300, 513);
        checkLinear(ops, rng, new long[] {5, 4097}, 33, true);
        checkLinear(ops, rng, new long[] {2, 32, 4096}, 300, true);
        checkLinear(ops, rng, new long[] {1, 1000}, 129, false);
    }

    /** The CPU backends take any matmul precision and stay fp32 (CudaTest checks the CUDA ones). */
    @ParameterizedTest
    @MethodSource("backends")
    void cpuBackendsComputeInFp32WhateverPrecisionIsAllowed(Ops ops) {
        if (ops.backend() == Backend.CUDA) return;
        for (MatmulPrecision precision : MatmulPrecision.values()) {
            assertSame(ops, ops.withMatmulPrecision(precision));
            assertEquals(MatmulPrecision.FP32, ops.withMatmulPrecision(precision).matmulPrecision());
        }
        assertThrows(NullPointerException.class, () -> ops.withMatmulPrecision(null));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void badShapesAreRefused(Ops ops) {
        List<Tensor> t = TestSupport.on(ops, List.of(Tensor.zeros(2, 3), Tensor.zeros(4, 5), Tensor.zeros(5, 3),
                Tensor.zeros(4), Tensor.zeros(3)));
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ops.matmul(t.get(0), t.get(1)));
            assertTrue(e.getMessage().contains("a [2, 3] and b [4, 5] cannot be multiplied"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ops.matmul(t.get(3), t.get(1)));
            assertTrue(e.getMessage().contains("a [4]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ops.linear(t.get(1), t.get(2), null));
            assertTrue(e.getMessage().contains("x [4, 5] must end in the weight's in = 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ops.linear(t.get(0), t.get(2), t.get(3)));
            assertTrue(e.getMessage().contains("bias must be [5]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ops.linear(t.get(0), t.get(4), null));
            assertTrue(e.getMessage().contains("weight must be [out, in], got [3]"), e.getMessage());
            assertThrows(NullPointerException.class, () -> ops.matmul(null, t.get(1)));
        } finally {
            TestSupport.closeAll(t);
        }
    }
}
