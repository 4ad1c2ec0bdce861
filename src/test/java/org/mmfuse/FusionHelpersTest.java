package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The small operations the fusion layers are built from (elementwise arithmetic, sequence pooling,
 * missing-modality fills, weighted sums, row normalisation) on every backend against their definitions.
 */
class FusionHelpersTest {
    static Stream<Ops> backends() {
        return TestSupport.backends();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void arithmeticIsElementwise(Ops ops) {
        Random rng = new Random(71);
        for (long[] shape : new long[][] {{1}, {7}, {3, 5}, {0, 4}, {2, 3, 17}}) {
            Tensor a = TestSupport.random(rng, shape), b = TestSupport.random(rng, shape);
            try (Tensor da = a.to(ops.device()); Tensor db = b.to(ops.device()); Tensor sum = ops.add(da, db);
                    Tensor difference = ops.subtract(da, db); Tensor product = ops.multiply(da, db)) {
                float[] s = sum.toArray(), d = difference.toArray(), p = product.toArray();
                for (int i = 0; i < s.length; i++) {
                    assertEquals(a.array()[i] + b.array()[i], s[i], 0f);
                    assertEquals(a.array()[i] - b.array()[i], d[i], 0f);
                    assertEquals(a.array()[i] * b.array()[i], p[i], 0f);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void poolSequenceReadsOnlyKeptPositions(Ops ops) {
        Random rng = new Random(72);
        for (int[] size : new int[][] {{1, 1, 1}, {3, 5, 7}, {2, 1, 33}, {4, 9, 130}, {0, 3, 4}, {2, 0, 5}}) {
            int batch = size[0], length = size[1], channels = size[2];
            Tensor x = TestSupport.random(rng, batch, length, channels);
            float[] keep = new float[batch * length];
            for (int i = 0; i < keep.length; i++) keep[i] = rng.nextInt(3) == 0 ? 0 : 1;
            if (batch > 1) java.util.Arrays.fill(keep, length, 2 * length, 0f); // sample 1 keeps nothing
            for (int i = 0; i < keep.length; i++) if (keep[i] == 0) x.array()[i * channels] = Float.NaN; // never read
            Tensor mask = Tensor.of(keep, batch, length);
            for (SequencePooling mode : SequencePooling.values()) {
                try (Tensor dx = x.to(ops.device()); Tensor dm = mask.to(ops.device());
                        Tensor y = ops.poolSequence(dx, dm, mode)) {
                    assertArrayEquals(new long[] {batch, channels}, y.shape());
                    float[] got = y.toArray();
                    for (int b = 0; b < batch; b++) {
                        for (int c = 0; c < channels; c++) {
                            double want = pooled(x.array(), keep, b, c, length, channels, mode);
                            assertEquals(want, got[b * channels + c], 1e-5 * (1 + Math.abs(want)),
                                    ops.backend() + " " + mode + " sample " + b + " channel " + c);
                        }
                    }
                }
            }
        }
        // without a mask every position counts, NaN included (MAX propagates it as torch.max does)
        Tensor x = Tensor.of(new float[] {1, 5, Float.NaN, 2, 3, 4}, 1, 3, 2);
        try (Tensor dx = x.to(ops.device()); Tensor max = ops.poolSequence(dx, null, SequencePooling.MAX);
                Tensor mean = ops.poolSequence(dx, null, SequencePooling.MEAN)) {
            float[] m = max.toArray(), a = mean.toArray();
            assertTrue(Float.isNaN(m[0]), "max over a NaN gave " + m[0]);
            assertEquals(5f, m[1], 0f);
            assertEquals(11f / 3, a[1], 1e-6f);
        }
    }

    private static double pooled(float[] x, float[] keep, int b, int c, int length, int channels, SequencePooling mode) {
        double sum = 0, max = Double.NEGATIVE_INFINITY;
        int kept = 0;
        for (int p = 0; p < (mode == SequencePooling.FIRST ? Math.min(1, length) : length); p++) {
            if (keep[b * length + p] == 0) continue;
            double v = x[(b * length + p) * channels + c];
            sum += v;
            max = Math.max(max, v);
            kept++;
        }
        if (kept == 0) return 0;
        return mode == SequencePooling.MEAN ? sum / kept : mode == SequencePooling.MAX ? max : sum;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void fillAbsentReplacesRowsWithoutReadingThem(Ops ops) {
        Random rng = new Random(73);
        Tensor x = TestSupport.random(rng, 5, 2, 3), fill = TestSupport.random(rng, 2, 3);
        float[] present = {1, 0, 1, 0, 0};
        for (int b = 0; b < 5; b++) if (present[b] == 0) x.array()[b * 6 + 1] = Float.NaN;
        for (boolean withFill : new boolean[] {true, false}) {
            try (Tensor dx = x.to(ops.device()); Tensor dp = Tensor.of(present, 5).to(ops.device());
                    Tensor df = fill.to(ops.device()); Tensor y = ops.fillAbsent(dx, dp, withFill ? df : null)) {
                float[] got = y.toArray();
                for (int b = 0; b < 5; b++) {
                    for (int i = 0; i < 6; i++) {
                        float want = present[b] != 0 ? x.array()[b * 6 + i] : withFill ? fill.array()[i] : 0f;
                        assertEquals(want, got[b * 6 + i], 0f, ops.backend() + " row " + b + " at " + i);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void weightedSumSkipsZeroWeights(Ops ops) {
        Random rng = new Random(74);
        int rows = 6, width = 37, m = 3;
        List<Tensor> xs = List.of(TestSupport.random(rng, rows, width), TestSupport.random(rng, rows, width),
                TestSupport.random(rng, rows, width));
        float[] w = new float[rows * m];
        for (int i = 0; i < w.length; i++) w[i] = rng.nextFloat();
        w[1 * m + 2] = 0;
        java.util.Arrays.fill(w, 4 * m, 5 * m, 0f); // row 4: nothing
        xs.get(2).array()[1 * width + 5] = Float.NaN; // weight 0 there: must not reach the output
        List<Tensor> on = TestSupport.on(ops, xs);
        try (Tensor dw = Tensor.of(w, rows, m).to(ops.device()); Tensor y = ops.weightedSum(on, dw)) {
            float[] got = y.toArray();
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < width; j++) {
                    double want = 0;
                    for (int k = 0; k < m; k++) if (w[r * m + k] != 0) want += (double) w[r * m + k] * xs.get(k).array()[r * width + j];
                    assertEquals(want, got[r * width + j], 1e-5 * (1 + Math.abs(want)), ops.backend() + " row " + r + " at " + j);
                }
            }
        } finally {
            TestSupport.closeAll(on);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void normalizeRowsTakesTheSignedRootThenL2(Ops ops) {
        Random rng = new Random(75);
        Tensor x = TestSupport.random(rng, 4, 3, 21);
        java.util.Arrays.fill(x.array(), 0, 21, 0f); // a zero row stays zero
        PoolingOptions options = PoolingOptions.NONE.signedSqrt(0).l2Normalize(true);
        try (Tensor dx = x.to(ops.device()); Tensor y = ops.normalizeRows(dx, options)) {
            float[] got = y.toArray(), a = x.array();
            for (int r = 0; r < 12; r++) {
                double norm = 0;
                for (int j = 0; j < 21; j++) norm += Math.abs(a[r * 21 + j]);
                norm = Math.sqrt(norm);
                for (int j = 0; j < 21; j++) {
                    double v = a[r * 21 + j], want = norm == 0 ? 0 : Math.signum(v) * Math.sqrt(Math.abs(v)) / norm;
                    assertEquals(want, got[r * 21 + j], 1e-6, ops.backend() + " row " + r + " at " + j);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void badArgumentsAreRefused(Ops ops) {
        try (Tensor a = Tensor.zeros(3, 4).to(ops.device()); Tensor b = Tensor.zeros(4, 3).to(ops.device());
                Tensor seq = Tensor.zeros(2, 5, 3).to(ops.device()); Tensor mask = Tensor.zeros(2, 4).to(ops.device());
                Tensor present = Tensor.zeros(2).to(ops.device()); Tensor w = Tensor.zeros(3, 3).to(ops.device())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ops.add(a, b));
            assertTrue(e.getMessage().contains("[3, 4]") && e.getMessage().contains("[4, 3]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ops.poolSequence(seq, mask, SequencePooling.MEAN));
            assertTrue(e.getMessage().contains("mask") && e.getMessage().contains("[2, 4]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ops.poolSequence(a, null, SequencePooling.MEAN));
            e = assertThrows(IllegalArgumentException.class, () -> ops.fillAbsent(a, present, null));
            assertTrue(e.getMessage().contains("present"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ops.fillAbsent(seq, present, a));
            e = assertThrows(IllegalArgumentException.class, () -> ops.weightedSum(List.of(a, a), w));
            assertTrue(e.getMessage().contains("weights"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ops.weightedSum(List.of(a, b), w));
            assertThrows(IllegalArgumentException.class, () -> ops.weightedSum(List.of(), w));
            assertThrows(IllegalArgumentException.class, () -> ops.normalizeRows(a, PoolingOptions.BILINEAR_CNN));
            assertThrows(NullPointerException.class, () -> ops.poolSequence(seq, null, null));
            // projectedAttention checks q before projecting the keys and values
            Tensor closedQ = Tensor.zeros(2, 4, 3).to(ops.device());
            closedQ.close();
            IllegalStateException c = assertThrows(IllegalStateException.class, () -> ops.projectedAttention(closedQ, seq, w, null,
                    seq, w, null, org.mmfuse.AttentionOptions.DEFAULT.heads(1)));
            assertTrue(c.getMessage().contains("projectedAttention: q"), c.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ops.split(a, new long[] {Long.MAX_VALUE, 1}, 0));
            assertTrue(e.getMessage().contains("add up past the input's size 3"), e.getMessage());
            // an empty batch whose C1 x C2 (2.5e9) passes any array: an empty result on every backend
            try (Tensor none = Tensor.of(new float[0], 0, 1, 50_000).to(ops.device()); Tensor z = ops.bilinearPool(none, none,
                    PoolingOptions.BILINEAR_CNN)) {
                assertArrayEquals(new long[] {0, 2_500_000_000L}, z.shape());
            }
            // empty tensors may have a dimension past 2^31, which the kernels' int sizes would wrap
            try (Tensor wide = Tensor.of(new float[0], 0, 1L << 32).to(ops.device());
                    Tensor longQ = Tensor.of(new float[0], 1, 1L << 33, 1, 0).to(ops.device());
                    Tensor oneKey = Tensor.of(new float[0], 1, 1, 1, 0).to(ops.device())) {
                e = assertThrows(IllegalArgumentException.class, () -> ops.softmax(wide));
                assertTrue(e.getMessage().contains("softmax: the last dimension = 4294967296"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> ops.attention(longQ, oneKey, oneKey, org.mmfuse.AttentionOptions.DEFAULT));
                assertTrue(e.getMessage().contains("attention: Lq = 8589934592") && e.getMessage().contains("[1, 8589934592, 1, 0]"),
                        e.getMessage());
            }
        }
    }

    /**
     * A NaN in the key projection's bias makes its head's scores NaN, so that head's outputs: also where the CPU
     * folds the projections into the products, which drops a finite key bias (it shifts a query's scores evenly).
     */
    @ParameterizedTest
    @MethodSource("backends")
    void aNanKeyBiasShowsInProjectedAttention(Ops ops) {
        Random rng = new Random(44);
        try (Tensor q = TestSupport.on(ops, TestSupport.random(rng, 2, 2, 16)); Tensor key = TestSupport.on(ops, TestSupport.random(rng, 2, 300, 96));
                Tensor kw = TestSupport.on(ops, TestSupport.random(rng, 16, 96)); Tensor vw = TestSupport.on(ops, TestSupport.random(rng, 16, 96))) {
            Tensor kb = TestSupport.random(rng, 16);
            kb.array()[3] = Float.NaN;
            try (Tensor kBias = TestSupport.on(ops, kb); AttentionResult r = ops.projectedAttention(q, key, kw, kBias, key, vw, null,
                    AttentionOptions.DEFAULT.heads(2))) {
                float[] out = r.output().toArray(); // [2, 2, 16]: head 0's 8 values, then head 1's
                for (int i = 0; i < out.length; i++) {
                    assertEquals(i % 16 < 8, Float.isNaN(out[i]), ops.backend() + " at " + i + ": " + out[i]);
                }
            }
        }
    }

    @Test
    void viewsShareMemoryAndDieWithTheirOwner() {
        Tensor t = Tensor.zeros(2, 6);
        Tensor v = t.view(3, 4);
        assertArrayEquals(new long[] {3, 4}, v.shape());
        v.array()[5] = 7f;
        assertEquals(7f, t.array()[5]);
        v.close(); // frees nothing
        assertEquals(7f, t.array()[5]);
        Tensor w = t.view(12);
        t.close();
        assertTrue(w.isClosed());
        assertThrows(IllegalStateException.class, w::array);
        assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(2, 3).view(5));
    }
}
