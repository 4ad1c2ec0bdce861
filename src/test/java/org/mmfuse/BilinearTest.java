package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bilinear family (full, nn.Bilinear, compact, factorized) on every backend against
 * double-precision computations of their definitions written here, independent of the backends.
 */
class BilinearTest {
    static Stream<Ops> backends() {
        return TestSupport.backends();
    }

    private static final PoolingOptions[] FINISHES = {
        PoolingOptions.NONE, PoolingOptions.BILINEAR_CNN, PoolingOptions.NONE.signedSqrt(true),
        PoolingOptions.NONE.l2Normalize(true), PoolingOptions.NONE.mean(true).signedSqrt(0.5)
    };

    /** A pooled row in double before its finish: the sums and, per element, the sum of |terms| (its fp32 error scale). */
    private static final class Raw {
        final double[] sum, magnitude;

        Raw(int length) {
            sum = new double[length];
            magnitude = new double[length];
        }

        void add(int at, double term) {
            sum[at] += term;
            magnitude[at] += Math.abs(term);
        }
    }

    /**
     * Checks a finished row against its raw sums by undoing the finish: the L2 norm multiplied back, then,
     * with a signed square root, sign(r) (r² - eps). Comparing the roots themselves would magnify rounding
     * near zero (the root of a 1e-7 error is 3e-4), and with eps > 0 a sum that is zero in exact arithmetic
     * but 1e-9 after an FFT's rounding has the root -sqrt(eps), however right the sum.
     */
    private static void assertFinished(Raw raw, int terms, PoolingOptions o, float[] got, int at, double extraTolerance,
            String what) {
        int n = raw.sum.length;
        double[] v = new double[n], tol = new double[n];
        double maxMagnitude = 0;
        for (int i = 0; i < n; i++) maxMagnitude = Math.max(maxMagnitude, raw.magnitude[i]);
        double scale = o.mean() && terms > 0 ? 1.0 / terms : 1;
        double normSquared = 0;
        for (int i = 0; i < n; i++) {
            v[i] = raw.sum[i] * scale;
            tol[i] = (1e-5 * raw.magnitude[i] + extraTolerance * maxMagnitude) * scale + 1e-30;
            double finished = o.signedSqrt() ? Math.abs(v[i]) + o.eps() : v[i] * v[i]; // the root's square
            tol[i] += 1e-6 * (Math.abs(v[i]) + (o.signedSqrt() ? o.eps() : 0)); // float rounding of the finish
            normSquared += finished;
        }
        double norm = o.l2Normalize() ? Math.max(Math.sqrt(normSquared), 1e-12) : 1;
        for (int i = 0; i < n; i++) {
            double g = got[at + i], r = g * norm;
            double undone = o.signedSqrt() ? Math.signum(r) * (r * r - o.eps()) : r;
            if (!(Math.abs(undone - v[i]) <= tol[i])) {
                fail(what + ": element " + i + " is " + g + " (undone " + undone + "), expected " + v[i] + " within "
                        + tol[i] + " (" + o + ")");
            }
        }
    }

    // ---- full bilinear pooling ------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void bilinearPoolMatchesTheSumOfOuterProducts(Ops ops) {
        Random rng = new Random(11);
        int[][] shapes = {{1, 1, 1, 1}, {2, 3, 5, 7}, {3, 1, 17, 9}, {2, 49, 33, 31}, {1, 196, 64, 40}, {5, 7, 15, 29},
            {2, 0, 4, 3}, {0, 3, 4, 5}, {1, 300, 3, 70}};
        for (int[] sh : shapes) {
            int b = sh[0], n = sh[1], c1 = sh[2], c2 = sh[3];
            Tensor x = TestSupport.random(rng, b, n, c1), y = TestSupport.random(rng, b, n, c2);
            for (PoolingOptions o : FINISHES) {
                try (Tensor dx = x.to(ops.device()); Tensor dy = y.to(ops.device()); Tensor z = ops.bilinearPool(dx, dy, o)) {
                    assertArrayEquals(new long[] {b, (long) c1 * c2}, z.shape());
                    float[] got = z.toArray();
                    for (int s = 0; s < b; s++) {
                        assertFinished(outerSums(x.array(), y.array(), s, n, c1, c2), n, o, got, s * c1 * c2, 0,
                                ops.backend() + " " + java.util.Arrays.toString(sh) + " sample " + s);
                    }
                }
            }
        }
    }

    private static Raw outerSums(float[] x, float[] y, int s, int n, int c1, int c2) {
        Raw raw = new Raw(c1 * c2);
        for (int l = 0; l < n; l++) {
            for (int i = 0; i < c1; i++) {
                for (int j = 0; j < c2; j++) raw.add(i * c2 + j, (double) x[(s * n + l) * c1 + i] * y[(s * n + l) * c2 + j]);
            }
        }
        return raw;
    }

    /** x with itself takes the symmetric path (half the tiles, mirrored), which must equal the general one. */
    @ParameterizedTest
    @MethodSource("backends")
    void selfPoolingMatchesPoolingWithACopy(Ops ops) {
        Random rng = new Random(12);
        for (int[] sh : new int[][] {{1, 5, 1}, {2, 9, 13}, {3, 49, 40}, {2, 20, 97}, {1, 3, 130}}) {
            Tensor x = TestSupport.random(rng, sh[0], sh[1], sh[2]);
            for (PoolingOptions o : FINISHES) {
                try (Tensor dx = x.to(ops.device()); Tensor copy = x.to(ops.device());
                        Tensor self = ops.bilinearPool(dx, dx, o); Tensor general = ops.bilinearPool(dx, copy, o)) {
                    float[] got = self.toArray();
                    for (int s = 0; s < sh[0]; s++) {
                        assertFinished(outerSums(x.array(), x.array(), s, sh[1], sh[2], sh[2]), sh[1], o, got,
                                s * sh[2] * sh[2], 0, ops.backend() + " self " + java.util.Arrays.toString(sh));
                    }
                    float[] reference = general.toArray();
                    for (int i = 0; i < got.length; i++) {
                        assertEquals(reference[i], got[i], 1e-5 * Math.abs(reference[i]) + 1e-6, "self vs general at " + i);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void zeroInputsPoolToZerosNotNaN(Ops ops) {
        try (Tensor x = Tensor.zeros(2, 3, 4).to(ops.device()); Tensor y = Tensor.zeros(2, 3, 5).to(ops.device());
                Tensor z = ops.bilinearPool(x, y, PoolingOptions.BILINEAR_CNN)) {
            for (float v : z.toArray()) assertEquals(0f, v);
        }
    }

    /** A NaN in one sample makes that sample's L2-normalised row NaN (its norm is NaN), and leaves the others finite. */
    @ParameterizedTest
    @MethodSource("backends")
    void aNaNInputMakesItsNormalisedRowNaN(Ops ops) {
        Random rng = new Random(17);
        Tensor x = TestSupport.random(rng, 3, 4, 6), y = TestSupport.random(rng, 3, 4, 5);
        y.array()[4 * 5 + 7] = Float.NaN; // sample 1, location 1, unit 2
        for (PoolingOptions o : new PoolingOptions[] {PoolingOptions.NONE.l2Normalize(true), PoolingOptions.BILINEAR_CNN}) {
            try (Tensor dx = x.to(ops.device()); Tensor dy = y.to(ops.device()); Tensor z = ops.bilinearPool(dx, dy, o)) {
                float[] got = z.toArray();
                for (int i = 0; i < got.length; i++) {
                    boolean poisoned = i / 30 == 1;
                    assertEquals(poisoned, Float.isNaN(got[i]), ops.backend() + " " + o + " element " + i + " is " + got[i]);
                }
            }
        }
    }

    /**
     * Sums of squares past float's range (|v| from 1.8e19) while the norm is finite: the vector still comes
     * out normalised, not zero. Inputs of 1e10 pool to 1e20; rows of 3e37 have norms past 2^126.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void hugeValuesStillNormalise(Ops ops) {
        Random rng = new Random(13);
        PoolingOptions l2 = PoolingOptions.NONE.l2Normalize(true);
        for (int[] sh : new int[][] {{2, 3, 7, 9}, {1, 5, 40, 33}, {2, 4, 24, 24}}) {
            int b = sh[0], n = sh[1], c1 = sh[2], c2 = sh[3];
            Tensor x = TestSupport.random(rng, b, n, c1), y = TestSupport.random(rng, b, n, c2);
            for (float[] a : new float[][] {x.array(), y.array()}) {
                for (int i = 0; i < a.length; i++) a[i] *= 1e9f;
            }
            for (boolean self : new boolean[] {false, true}) {
                Tensor second = self ? x : y;
                int width = self ? c1 : c2;
                try (Tensor dx = x.to(ops.device()); Tensor dy = second.to(ops.device());
                        Tensor z = ops.bilinearPool(dx, self ? dx : dy, l2)) {
                    float[] got = z.toArray();
                    for (int s = 0; s < b; s++) {
                        assertFinished(outerSums(x.array(), second.array(), s, n, c1, width), n, l2, got, s * c1 * width, 0,
                                ops.backend() + " " + java.util.Arrays.toString(sh) + " self " + self + " sample " + s);
                    }
                }
            }
        }
        Tensor rows = TestSupport.random(rng, 3, 101);
        for (int i = 0; i < rows.array().length; i++) rows.array()[i] *= 3e36f;
        for (PoolingOptions o : new PoolingOptions[] {l2, PoolingOptions.NONE.signedSqrt(0).l2Normalize(true)}) {
            try (Tensor d = rows.to(ops.device()); Tensor z = ops.normalizeRows(d, o)) {
                float[] got = z.toArray();
                for (int r = 0; r < 3; r++) {
                    Raw raw = new Raw(101);
                    for (int j = 0; j < 101; j++) raw.add(j, rows.array()[r * 101 + j]);
                    assertFinished(raw, 1, o, got, r * 101, 0, ops.backend() + " normalizeRows row " + r + " " + o);
                }
            }
        }
    }

    // ---- nn.Bilinear -------------------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void bilinearLayerMatchesTheFormula(Ops ops) {
        Random rng = new Random(13);
        // 24 to 96 rows take the streamed outer products: {90, 37, 300, 13} a block of 64 rows and one of 26,
        // chunks of 4 of in1 and a last one of 1, a last output block of 1; {40, 3, 5000, 7} one i per chunk
        int[][] shapes = {{1, 1, 1, 1}, {3, 4, 5, 2}, {64, 17, 23, 9}, {7, 40, 33, 1}, {33, 30, 1, 5}, {0, 4, 4, 4},
            {5, 0, 3, 2}, {2, 3, 4, 0}, {90, 37, 300, 13}, {40, 3, 5000, 7}, {24, 2, 3, 6}, {130, 20, 30, 8}};
        for (int[] sh : shapes) {
            int rows = sh[0], in1 = sh[1], in2 = sh[2], out = sh[3];
            Tensor x1 = TestSupport.random(rng, rows, in1), x2 = TestSupport.random(rng, rows, in2);
            Tensor w = TestSupport.random(rng, out, in1, in2), bias = TestSupport.random(rng, out);
            for (boolean withBias : new boolean[] {true, false}) {
                try (Tensor a = x1.to(ops.device()); Tensor c = x2.to(ops.device()); Tensor dw = w.to(ops.device());
                        Tensor db = bias.to(ops.device()); Tensor y = ops.bilinear(a, c, dw, withBias ? db : null)) {
                    assertArrayEquals(new long[] {rows, out}, y.shape());
                    float[] got = y.toArray();
                    for (int r = 0; r < rows; r++) {
                        for (int k = 0; k < out; k++) {
                            double sum = withBias ? bias.array()[k] : 0, magnitude = Math.abs(sum);
                            for (int i = 0; i < in1; i++) {
                                for (int j = 0; j < in2; j++) {
                                    double term = (double) x1.array()[r * in1 + i] * w.array()[(k * in1 + i) * in2 + j]
                                            * x2.array()[r * in2 + j];
                                    sum += term;
                                    magnitude += Math.abs(term);
                                }
                            }
                            assertEquals(sum, got[r * out + k], 1e-5 * magnitude + 1e-30,
                                    ops.backend() + " " + java.util.Arrays.toString(sh) + " at (" + r + ", " + k + ")");
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void bilinearLayerTakesLeadingDimensions(Ops ops) {
        Random rng = new Random(14);
        Tensor x1 = TestSupport.random(rng, 2, 3, 6), x2 = TestSupport.random(rng, 2, 3, 5);
        Tensor w = TestSupport.random(rng, 4, 6, 5), b = TestSupport.random(rng, 4);
        try (Tensor y = ops.bilinear(x1.to(ops.device()), x2.to(ops.device()), w.to(ops.device()), b.to(ops.device()));
                Tensor flat = ops.bilinear(Tensor.of(x1.array(), 6, 6).to(ops.device()),
                        Tensor.of(x2.array(), 6, 5).to(ops.device()), w.to(ops.device()), b.to(ops.device()))) {
            assertArrayEquals(new long[] {2, 3, 4}, y.shape());
            assertArrayEquals(flat.toArray(), y.toArray());
        }
    }

    // ---- compact bilinear pooling ----------------------------------------------------------------------

    /**
     * The definition: count sketches of x and y (d buckets each), their circular convolution computed
     * directly in O(d²), summed over locations.
     */
    private static Raw sketchConvolution(float[] x, float[] y, int s, int n, int c1, int c2, CountSketch sx, CountSketch sy) {
        int d = sx.outputDim();
        Raw raw = new Raw(d);
        for (int l = 0; l < n; l++) {
            double[] a = new double[d], b = new double[d];
            for (int i = 0; i < c1; i++) a[sx.hash(i)] += sx.sign(i) * (double) x[(s * n + l) * c1 + i];
            for (int j = 0; j < c2; j++) b[sy.hash(j)] += sy.sign(j) * (double) y[(s * n + l) * c2 + j];
            for (int u = 0; u < d; u++) {
                if (a[u] == 0) continue; // an empty bucket adds nothing (and a wide d has mostly empty ones)
                for (int k = 0; k < d; k++) raw.add(k, a[u] * b[Math.floorMod(k - u, d)]);
            }
        }
        return raw;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void compactPoolingIsTheConvolutionOfTheSketches(Ops ops) {
        Random rng = new Random(15);
        // {B, N (0: vectors), C1, C2, d}: d not a power of two, prime, 1; C larger and smaller than d; MCB's
        // 16,000 (on CUDA, lengths with factors 2, 3 and 5 take the one-kernel route, 77 and 13 cuFFT's)
        int[][] shapes = {{2, 0, 7, 5, 16}, {3, 0, 33, 20, 30}, {1, 4, 9, 11, 49}, {2, 3, 17, 8, 1}, {17, 0, 40, 30, 77},
            {2, 5, 6, 70, 125}, {1, 0, 1, 1, 13}, {0, 0, 3, 3, 8}, {20, 0, 300, 200, 64}, {3, 0, 500, 400, 2400},
            {2, 0, 2048, 768, 16000}};
        for (int[] sh : shapes) {
            int b = sh[0], n = Math.max(sh[1], 1), c1 = sh[2], c2 = sh[3], d = sh[4];
            Tensor x = sh[1] == 0 ? TestSupport.random(rng, b, c1) : TestSupport.random(rng, b, n, c1);
            Tensor y = sh[1] == 0 ? TestSupport.random(rng, b, c2) : TestSupport.random(rng, b, n, c2);
            CountSketch sx = CountSketch.random(c1, d, rng.nextLong()), sy = CountSketch.random(c2, d, rng.nextLong());
            for (PoolingOptions o : FINISHES) {
                try (Tensor dx = x.to(ops.device()); Tensor dy = y.to(ops.device());
                        Tensor z = ops.compactBilinearPool(dx, dy, sx, sy, o)) {
                    assertArrayEquals(new long[] {b, d}, z.shape());
                    float[] got = z.toArray();
                    for (int s = 0; s < b; s++) {
                        assertFinished(sketchConvolution(x.array(), y.array(), s, n, c1, c2, sx, sy), n, o, got, s * d, 1e-5,
                                ops.backend() + " " + java.util.Arrays.toString(sh) + " sample " + s);
                    }
                }
            }
        }
    }

    /**
     * A NaN or an infinity in a sample's x or y makes that sample's row NaN, whatever the finish, and leaves
     * the others as they are without it; for vectors and maps, at lengths of every CUDA route.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void compactPoolingMarksASampleWithANonFiniteInput(Ops ops) {
        Random rng = new Random(18);
        for (int[] sh : new int[][] {{0, 30}, {0, 77}, {0, 8}, {3, 30}}) {
            int n = Math.max(sh[0], 1), d = sh[1], c1 = 9, c2 = 7;
            CountSketch sx = CountSketch.random(c1, d, 5), sy = CountSketch.random(c2, d, 6);
            for (float bad : new float[] {Float.NaN, Float.NEGATIVE_INFINITY}) {
                for (PoolingOptions o : new PoolingOptions[] {PoolingOptions.NONE, PoolingOptions.NONE.l2Normalize(true)}) {
                    Tensor x = sh[0] == 0 ? TestSupport.random(rng, 3, c1) : TestSupport.random(rng, 3, n, c1);
                    Tensor y = sh[0] == 0 ? TestSupport.random(rng, 3, c2) : TestSupport.random(rng, 3, n, c2);
                    float[] clean;
                    try (Tensor z = ops.compactBilinearPool(x.to(ops.device()), y.to(ops.device()), sx, sy, o)) {
                        clean = z.toArray();
                    }
                    boolean inX = rng.nextBoolean();
                    int width = n * (inX ? c1 : c2);
                    (inX ? x.array() : y.array())[width + rng.nextInt(width)] = bad; // in sample 1
                    try (Tensor z = ops.compactBilinearPool(x.to(ops.device()), y.to(ops.device()), sx, sy, o)) {
                        float[] got = z.toArray();
                        for (int i = 0; i < got.length; i++) {
                            String what = ops.backend() + " " + java.util.Arrays.toString(sh) + " " + bad + " " + o + " element " + i;
                            if (i / d == 1) {
                                assertTrue(Float.isNaN(got[i]), what + " is " + got[i]);
                            } else { // transforms may pair samples: the rounding of the others may change
                                float rowMax = 0;
                                for (int k = i / d * d; k < (i / d + 1) * d; k++) rowMax = Math.max(rowMax, Math.abs(clean[k]));
                                assertEquals(clean[i], got[i], 1e-5 * rowMax, what);
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * Operands of very different sizes (|x| about 1e-6 of |y|) keep fp32's relative error: the one-kernel CUDA
     * route transforms both sketches as one complex sequence, whose rounding would otherwise be relative to
     * the larger.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void compactPoolingOfOperandsOfVeryDifferentSizes(Ops ops) {
        Random rng = new Random(19);
        int c1 = 300, c2 = 200, d = 1000;
        Tensor x = TestSupport.random(rng, 2, c1), y = TestSupport.random(rng, 2, c2);
        for (int i = 0; i < x.array().length; i++) x.array()[i] *= 1e-6f;
        CountSketch sx = CountSketch.random(c1, d, 7), sy = CountSketch.random(c2, d, 8);
        try (Tensor z = ops.compactBilinearPool(x.to(ops.device()), y.to(ops.device()), sx, sy, PoolingOptions.NONE)) {
            float[] got = z.toArray();
            for (int s = 0; s < 2; s++) {
                assertFinished(sketchConvolution(x.array(), y.array(), s, 1, c1, c2, sx, sy), 1, PoolingOptions.NONE, got,
                        s * d, 1e-5, ops.backend() + " sample " + s);
            }
        }
    }

    /**
     * A sample whose x or y is all zeros pools to exact zeros, also after the signed root and the L2
     * normalisation, whatever its batch neighbours hold: a missing modality filled with zeros must not come
     * out as normalised round-off of the other operand or of another sample.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void compactPoolingOfAZeroOperandIsZero(Ops ops) {
        Random rng = new Random(20);
        // vectors; maps of 2 locations (the transforms' route on the CPU too); on CUDA, d = 1001 takes cuFFT's route
        for (int[] nd : new int[][] {{0, 1000}, {2, 1000}, {0, 1001}}) {
            int n = nd[0], d = nd[1], c1 = 300, c2 = 200, b = 2 * 8 + 3; // more samples than one group of vector lanes
            Tensor x = n == 0 ? TestSupport.random(rng, b, c1) : TestSupport.random(rng, b, n, c1);
            Tensor y = n == 0 ? TestSupport.random(rng, b, c2) : TestSupport.random(rng, b, n, c2);
            int wx = Math.max(n, 1) * c1, wy = Math.max(n, 1) * c2;
            java.util.Arrays.fill(x.array(), wx, 2 * wx, 0f);  // sample 1: x is zero
            java.util.Arrays.fill(y.array(), 10 * wy, 11 * wy, 0f); // sample 10: y is zero
            CountSketch sx = CountSketch.random(c1, d, 9), sy = CountSketch.random(c2, d, 10);
            try (Tensor z = ops.compactBilinearPool(x.to(ops.device()), y.to(ops.device()), sx, sy, PoolingOptions.BILINEAR_CNN)) {
                float[] got = z.toArray();
                for (int sample : new int[] {1, 10}) {
                    for (int k = 0; k < d; k++) {
                        assertEquals(0f, got[sample * d + k], ops.backend() + " N=" + n + " d=" + d + " sample " + sample + " element " + k);
                    }
                }
            }
        }
    }

    /** Tensor Sketch preserves inner products in expectation: E <TS(x⊗y), TS(x'⊗y')> = <x, x'> <y, y'>. */
    @ParameterizedTest
    @MethodSource("backends")
    void compactPoolingKeepsInnerProductsOnAverage(Ops ops) {
        Random rng = new Random(16);
        int c1 = 24, c2 = 20, d = 512, draws = 60;
        Tensor x = TestSupport.random(rng, 2, c1), y = TestSupport.random(rng, 2, c2);
        float[] xa = x.array(), ya = y.array();
        double dotX = 0, dotY = 0;
        for (int i = 0; i < c1; i++) dotX += (double) xa[i] * xa[c1 + i];
        for (int j = 0; j < c2; j++) dotY += (double) ya[j] * ya[c2 + j];
        double expected = dotX * dotY, mean = 0;
        for (int draw = 0; draw < draws; draw++) {
            CountSketch sx = CountSketch.random(c1, d, 1000 + draw), sy = CountSketch.random(c2, d, 2000 + draw);
            try (Tensor z = ops.compactBilinearPool(x.to(ops.device()), y.to(ops.device()), sx, sy, PoolingOptions.NONE)) {
                float[] got = z.toArray();
                double dot = 0;
                for (int k = 0; k < d; k++) dot += (double) got[k] * got[d + k];
                mean += dot / draws;
            }
        }
        double normX = 0, normY = 0;
        for (int i = 0; i < 2 * c1; i++) normX += xa[i] * xa[i];
        for (int j = 0; j < 2 * c2; j++) normY += ya[j] * ya[j];
        // Each draw's error is about ||x|| ||x'|| ||y|| ||y'|| / sqrt(d); the mean of 60 draws is sqrt(60) times closer.
        double spread = normX / 2 * normY / 2 / Math.sqrt(d) / Math.sqrt(draws);
        assertTrue(Math.abs(mean - expected) < 4 * spread, "mean " + mean + " vs " + expected + " (spread " + spread + ")");
    }

    @org.junit.jupiter.api.Test
    void randomSketchesAreReproducibleAndInRange() {
        CountSketch a = CountSketch.random(1000, 77, 42), b = CountSketch.random(1000, 77, 42), c = CountSketch.random(1000, 77, 43);
        assertArrayEquals(a.hashes(), b.hashes());
        assertArrayEquals(a.signs(), b.signs());
        assertTrue(!java.util.Arrays.equals(a.hashes(), c.hashes()));
        int[] counts = new int[77];
        int positive = 0;
        for (int i = 0; i < 1000; i++) {
            counts[a.hash(i)]++;
            if (a.sign(i) > 0) positive++;
        }
        for (int k = 0; k < 77; k++) assertTrue(counts[k] < 40, "bucket " + k + " has " + counts[k] + " of 1000");
        assertTrue(positive > 400 && positive < 600, positive + " positive signs of 1000");
    }

    @org.junit.jupiter.api.Test
    void sketchesFromTensorsCheckTheirValues() {
        CountSketch s = CountSketch.of(Tensor.of(new float[] {0, 4, 2}, 3), Tensor.of(new float[] {1, -1, 1}, 3), 5);
        assertArrayEquals(new int[] {0, 4, 2}, s.hashes());
        assertThrows(IllegalArgumentException.class, () -> CountSketch.of(new int[] {0, 5}, new int[] {1, 1}, 5));
        assertThrows(IllegalArgumentException.class, () -> CountSketch.of(new int[] {0, -1}, new int[] {1, 1}, 5));
        assertThrows(IllegalArgumentException.class, () -> CountSketch.of(new int[] {0, 1}, new int[] {1, 0}, 5));
        assertThrows(IllegalArgumentException.class, () -> CountSketch.of(new int[] {0, 1}, new int[] {1}, 5));
        assertThrows(IllegalArgumentException.class, () -> CountSketch.of(new int[] {0}, new int[] {1}, 0));
        assertThrows(IllegalArgumentException.class, () -> CountSketch.random(3, -2, 1));
        assertThrows(IllegalArgumentException.class,
                () -> CountSketch.of(Tensor.of(new float[] {0.5f}, 1), Tensor.of(new float[] {1}, 1), 5));
    }

    // ---- factorized pooling -------------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void factorizedPoolMatchesMfbAndMfh(Ops ops) {
        Random rng = new Random(17);
        // {rows, stages, units, factor}
        int[][] shapes = {{1, 1, 1, 1}, {4, 1, 30, 5}, {3, 2, 20, 4}, {5, 3, 21, 7}, {2, 1, 17, 1}, {0, 1, 10, 5},
            {7, 2, 1200, 5}};
        for (int[] sh : shapes) {
            int rows = sh[0], stages = sh[1], units = sh[2], k = sh[3];
            Tensor x = TestSupport.random(rng, rows, stages * units), y = TestSupport.random(rng, rows, stages * units);
            // keep products of up to three stages inside float range comfortably: scale the inputs down
            for (float[] a : new float[][] {x.array(), y.array()}) for (int i = 0; i < a.length; i++) a[i] *= 0.2f;
            for (Activation act : Activation.values()) {
                for (PoolingOptions o : FINISHES) {
                    FactorizedPoolOptions options = FactorizedPoolOptions.DEFAULT.factor(k).stages(stages).activation(act).pooling(o);
                    try (Tensor z = ops.factorizedPool(x.to(ops.device()), y.to(ops.device()), options)) {
                        assertArrayEquals(new long[] {rows, stages * units / k}, z.shape());
                        float[] got = z.toArray();
                        for (int r = 0; r < rows; r++) {
                            double[] expansion = new double[units];
                            for (int s = 0; s < stages; s++) {
                                Raw raw = new Raw(units / k);
                                for (int u = 0; u < units; u++) {
                                    int at = r * stages * units + s * units + u;
                                    double e = act.apply(x.array()[at]) * act.apply(y.array()[at]);
                                    expansion[u] = s == 0 ? e : expansion[u] * e;
                                    raw.add(u / k, expansion[u]);
                                }
                                assertFinished(raw, k, o, got, (r * stages + s) * (units / k), 1e-6,
                                        ops.backend() + " " + java.util.Arrays.toString(sh) + " " + act + " stage " + s);
                            }
                        }
                    }
                }
            }
        }
    }

    // ---- bad inputs ------------------------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void badShapesAreRefusedWithTheShapes(Ops ops) {
        Tensor x = zeros(ops, 2, 3, 4), y = zeros(ops, 2, 5, 4), y2 = zeros(ops, 3, 3, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ops.bilinearPool(x, y, PoolingOptions.NONE));
        assertTrue(e.getMessage().contains("[2, 3, 4]") && e.getMessage().contains("[2, 5, 4]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ops.bilinearPool(x, y2, PoolingOptions.NONE));
        assertThrows(IllegalArgumentException.class, () -> ops.bilinearPool(zeros(ops, 2, 4), zeros(ops, 2, 4), PoolingOptions.NONE));
        assertThrows(NullPointerException.class, () -> ops.bilinearPool(x, x, null));

        Tensor w = zeros(ops, 6, 4, 5);
        e = assertThrows(IllegalArgumentException.class, () -> ops.bilinear(zeros(ops, 3, 4), zeros(ops, 3, 6), w, null));
        assertTrue(e.getMessage().contains("[6, 4, 5]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ops.bilinear(zeros(ops, 3, 4), zeros(ops, 2, 5), w, null));
        assertThrows(IllegalArgumentException.class, () -> ops.bilinear(zeros(ops, 3, 4), zeros(ops, 3, 5), w, zeros(ops, 5)));
        assertThrows(IllegalArgumentException.class, () -> ops.bilinear(zeros(ops, 3, 4), zeros(ops, 3, 5), zeros(ops, 4, 5), null));

        CountSketch s4 = CountSketch.random(4, 16, 1), s5 = CountSketch.random(5, 16, 2), s5d = CountSketch.random(5, 17, 3);
        Tensor a = zeros(ops, 2, 4), b = zeros(ops, 2, 5);
        assertThrows(IllegalArgumentException.class, () -> ops.compactBilinearPool(a, b, s4, s4, PoolingOptions.NONE));
        e = assertThrows(IllegalArgumentException.class, () -> ops.compactBilinearPool(a, b, s4, s5d, PoolingOptions.NONE));
        assertTrue(e.getMessage().contains("17"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ops.compactBilinearPool(a, zeros(ops, 3, 5), s4, s5, PoolingOptions.NONE));
        assertThrows(IllegalArgumentException.class,
                () -> ops.compactBilinearPool(zeros(ops, 2, 3, 4), zeros(ops, 2, 2, 5), s4, s5, PoolingOptions.NONE));
        assertThrows(IllegalArgumentException.class, () -> ops.compactBilinearPool(a, zeros(ops, 2, 1, 5), s4, s5, PoolingOptions.NONE));

        FactorizedPoolOptions mfb = FactorizedPoolOptions.DEFAULT.factor(5);
        e = assertThrows(IllegalArgumentException.class, () -> ops.factorizedPool(zeros(ops, 2, 12), zeros(ops, 2, 12), mfb));
        assertTrue(e.getMessage().contains("[2, 12]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ops.factorizedPool(zeros(ops, 2, 10), zeros(ops, 2, 15), mfb));
        assertThrows(IllegalArgumentException.class,
                () -> ops.factorizedPool(zeros(ops, 2, 10), zeros(ops, 2, 10), mfb.stages(3)));
        assertThrows(IllegalArgumentException.class, () -> FactorizedPoolOptions.DEFAULT.factor(0));
        assertThrows(IllegalArgumentException.class, () -> PoolingOptions.NONE.signedSqrt(-1));
    }

    /** Zeros on the backend's device, so that its shape checks, not its device check, meet the call. */
    private static Tensor zeros(Ops ops, long... shape) {
        return Tensor.zeros(shape).to(ops.device());
    }
}
