package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Scaled dot-product attention on every backend against a double-precision definition. */
class AttentionTest {
    static Stream<Ops> backends() {
        return TestSupport.backends();
    }

    /** softmax(scale q kᵀ + masks) v by its definition, per (b, h, i); also the lse and the weights. */
    private static final class Reference {
        final double[] out, lse, weights;
        /** The largest scale · sum |q_d k_d| of any query-key pair: how large an error fp32 scores carry. */
        double logitMagnitude;

        Reference(float[] q, float[] k, float[] v, float[] mask, Tensor bias, int b, int lq, int lk, int h, int dh,
                int dv, double scale, boolean causal) {
            out = new double[b * lq * h * dv];
            lse = new double[b * h * lq];
            weights = new double[b * h * lq * lk];
            for (int bi = 0; bi < b; bi++) for (int hi = 0; hi < h; hi++) for (int i = 0; i < lq; i++) {
                double[] s = new double[lk];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < lk; j++) {
                    boolean masked = (mask != null && mask[bi * lk + j] == 0) || (causal && j > i + lk - lq);
                    double dot = 0, magnitude = 0;
                    for (int d = 0; d < dh; d++) {
                        double term = (double) q[((bi * lq + i) * h + hi) * dh + d] * k[((bi * lk + j) * h + hi) * dh + d];
                        dot += term;
                        magnitude += Math.abs(term);
                    }
                    logitMagnitude = Math.max(logitMagnitude, scale * magnitude);
                    s[j] = masked ? Double.NEGATIVE_INFINITY : scale * dot + biasAt(bias, bi, hi, i, j);
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < lk; j++) sum += max == Double.NEGATIVE_INFINITY ? 0 : Math.exp(s[j] - max);
                int row = (bi * h + hi) * lq + i;
                lse[row] = sum == 0 ? Double.NEGATIVE_INFINITY : max + Math.log(sum);
                for (int j = 0; j < lk; j++) {
                    double w = sum == 0 ? 0 : Math.exp(s[j] - max) / sum;
                    weights[row * lk + j] = w;
                    for (int d = 0; d < dv; d++) out[((bi * lq + i) * h + hi) * dv + d] += w * v[((bi * lk + j) * h + hi) * dv + d];
                }
            }
        }
    }

    /** bias[b, h, i, j] under broadcasting: an index is 0 along every size-1 (or missing) leading dimension. */
    private static double biasAt(Tensor bias, int b, int h, int i, int j) {
        if (bias == null) return 0;
        long[] shape = bias.shape();
        int[] index = {b, h, i, j};
        long flat = 0;
        for (int d = 0; d < shape.length; d++) {
            int full = 4 - shape.length + d;
            flat = flat * shape[d] + (shape[d] == 1 ? 0 : index[full]);
        }
        return bias.array()[(int) flat];
    }

    /** Zeros on the backend's device. */
    private static Tensor zeros(Ops ops, long... shape) {
        return TestSupport.on(ops, Tensor.zeros(shape));
    }

    private static void assertClose(double[] expected, float[] got, double tolerance, String what) {
        assertEquals(expected.length, got.length, what);
        for (int i = 0; i < got.length; i++) {
            boolean same = expected[i] == got[i] || Math.abs(expected[i] - got[i]) <= tolerance;
            if (!same) fail(what + ": element " + i + " is " + got[i] + ", expected " + expected[i]);
        }
    }

    /** One random problem; values of q scaled by {@code logitScale} to push the logits. */
    private static void check(Ops ops, Random rng, int b, int lq, int lk, int h, int dh, int dv, boolean causal,
            boolean masked, boolean packed, double logitScale) {
        check(ops, rng, b, lq, lk, h, dh, dv, causal, masked, packed, logitScale, null);
    }

    private static void check(Ops ops, Random rng, int b, int lq, int lk, int h, int dh, int dv, boolean causal,
            boolean masked, boolean packed, double logitScale, Tensor bias) {
        Tensor q = TestSupport.random(rng, b, lq, h, dh), k = TestSupport.random(rng, b, lk, h, dh);
        Tensor v = TestSupport.random(rng, b, lk, h, dv);
        // q and k in [-1, 1]: logits of a few units, times logitScale
        for (int i = 0; i < q.array().length; i++) q.array()[i] *= (float) (0.1 * logitScale);
        for (int i = 0; i < k.array().length; i++) k.array()[i] *= 0.1f;
        float[] maskData = null;
        if (masked) {
            maskData = new float[b * lk];
            for (int i = 0; i < maskData.length; i++) maskData[i] = rng.nextInt(3) == 0 ? 0f : 1f;
            for (int j = 0; j < lk; j++) maskData[j] = 0f; // batch 0: every key masked
        }
        Reference ref = new Reference(q.array(), k.array(), v.array(), maskData, bias, b, lq, lk, h, dh, dv,
                1 / Math.sqrt(dh), causal);
        AttentionOptions options = AttentionOptions.DEFAULT.causal(causal).bias(bias).withLogSumExp().withWeights();
        if (packed) {
            options = options.heads(h);
            q = Tensor.of(q.array(), b, lq, (long) h * dh);
            k = Tensor.of(k.array(), b, lk, (long) h * dh);
            v = Tensor.of(v.array(), b, lk, (long) h * dv);
        }
        Tensor mask = masked ? TestSupport.on(ops, Tensor.of(maskData, b, lk)) : null;
        if (bias != null) options = options.bias(TestSupport.on(ops, bias));
        q = TestSupport.on(ops, q);
        k = TestSupport.on(ops, k);
        v = TestSupport.on(ops, v);
        String what = ops.backend() + " b=" + b + " lq=" + lq + " lk=" + lk + " h=" + h + " dh=" + dh + " dv=" + dv
                + " causal=" + causal + " masked=" + masked + " packed=" + packed + " logits x" + logitScale;
        try (AttentionResult r = ops.attention(q, k, v, mask == null ? options : options.keyPaddingMask(mask))) {
            assertArrayEquals(packed ? new long[] {b, lq, (long) h * dv} : new long[] {b, lq, h, dv}, r.output().shape());
            // An fp32 score is off by up to dh ulps of its magnitude, and a weight by as much relatively;
            // the output adds the error of a sum of |v| <= 10 terms.
            double scoreError = 4 * dh * 6e-8 * ref.logitMagnitude + 1e-6;
            assertClose(ref.weights, r.weights().toArray(), scoreError, what + " weights");
            assertClose(ref.out, r.output().toArray(), 10 * scoreError, what + " output");
            assertClose(ref.lse, r.logSumExp().toArray(), scoreError * 10, what + " lse");
        }
        // without the weights (a CPU backend may then take another kernel: lanes over queries)
        AttentionOptions withoutWeights = AttentionOptions.DEFAULT.causal(causal).bias(options.bias())
                .withLogSumExp().heads(options.heads());
        if (mask != null) withoutWeights = withoutWeights.keyPaddingMask(mask);
        try (AttentionResult r = ops.attention(q, k, v, withoutWeights)) {
            double scoreError = 4 * dh * 6e-8 * ref.logitMagnitude + 1e-6;
            assertClose(ref.out, r.output().toArray(), 10 * scoreError, what + " output (no weights)");
            assertClose(ref.lse, r.logSumExp().toArray(), scoreError * 10, what + " lse (no weights)");
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void randomShapes(Ops ops) {
        Random rng = new Random(31);
        int[] dhs = {32, 64, 80, 128, 3};
        for (int trial = 0; trial < 40; trial++) {
            int dh = dhs[trial % dhs.length];
            int dv = trial % 3 == 0 ? dh : 1 + rng.nextInt(70);
            check(ops, rng, 1 + rng.nextInt(3), 1 + rng.nextInt(40), 1 + rng.nextInt(150), 1 + rng.nextInt(3), dh, dv,
                    trial % 4 == 1, trial % 5 == 2, trial % 6 == 3, 1);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void edgeLengths(Ops ops) {
        Random rng = new Random(32);
        check(ops, rng, 2, 1, 1, 1, 64, 64, false, false, false, 1);     // one query, one key
        check(ops, rng, 1, 1, 300, 2, 64, 32, false, true, false, 1);    // one query, long keys, masks
        check(ops, rng, 1, 70, 1, 2, 32, 32, false, false, false, 1);    // many queries, one key
        check(ops, rng, 2, 16, 16, 4, 64, 64, true, false, false, 1);    // causal, square
        check(ops, rng, 2, 5, 37, 2, 64, 16, true, true, false, 1);      // causal, Lq < Lk: bottom-right
        check(ops, rng, 1, 9, 4, 1, 32, 8, true, false, false, 1);       // causal, Lq > Lk: early queries see nothing
        check(ops, rng, 1, 3, 65, 2, 128, 128, false, false, true, 1);   // packed
        check(ops, rng, 4, 130, 50, 3, 32, 24, true, true, false, 1);    // many query tiles, causal, masks
        check(ops, rng, 1, 40, 33, 12, 16, 16, false, true, false, 1);   // many heads
        check(ops, rng, 3, 70, 45, 8, 64, 24, true, true, false, 1);     // runs of heads whose rows a CPU task copies
        check(ops, rng, 1, 5, 300, 12, 80, 24, true, true, false, 1);    // few queries, one batch element, many heads
        // a CPU backend takes four queries four at a time, and with 16 lanes three or seven (the last four padded)
        check(ops, rng, 2, 4, 37, 3, 64, 40, true, true, false, 1);      // causal, masks, Dv past whole vector pairs
        check(ops, rng, 2, 7, 53, 2, 32, 70, true, true, false, 1);
        check(ops, rng, 3, 3, 16, 2, 128, 8, false, false, false, 1);    // one whole key block
        check(ops, rng, 1, 4, 2, 2, 32, 16, true, false, false, 1);      // causal, Lq > Lk: early queries see nothing
        // few queries over keys and values past 16 MB, which a CPU task reads ahead block by block: a head per
        // task (the rows of one head), then all the heads of a batch element per task (one run)
        check(ops, rng, 2, 1, 4100, 4, 128, 128, false, true, false, 1);
        check(ops, rng, 9, 2, 1801, 2, 128, 120, true, true, false, 1);
        check(ops, rng, 9, 4, 1801, 2, 128, 120, true, true, false, 1);
        check(ops, rng, 9, 7, 1801, 2, 128, 120, true, true, false, 1);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void valueWidthsOfEveryKernelRun(Ops ops) {
        Random rng = new Random(38);
        // A CPU backend's query-lane P V covers Dv in runs of five columns, then four, then single ones (a
        // different mix below 16), and writes whole 8 x 8 blocks of a tile's output, then the rest one by
        // one: 19 queries leave a partial tile, 150 keys two softmax blocks.
        for (int dv : new int[] {1, 3, 4, 5, 7, 9, 15, 16, 17, 19, 21, 33, 64, 67}) {
            check(ops, rng, 2, 19, 150, 2, 32, dv, false, dv % 2 == 1, false, 1);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void additiveBiasBroadcasts(Ops ops) {
        Random rng = new Random(37);
        int b = 2, h = 3, lk = 70;
        for (int lq : new int[] {17, 3, 4}) { // a CPU backend has a kernel for few queries, four at a time for 4
            for (long[] shape : new long[][] {{lq, lk}, {b, 1, lq, lk}, {1, h, 1, lk}, {b, h, lq, lk}, {lk}}) {
                Tensor bias = TestSupport.random(rng, shape);
                for (int x = 0; x < bias.array().length; x += 7) bias.array()[x] = Float.NEGATIVE_INFINITY; // masks too
                check(ops, rng, b, lq, lk, h, 32, 16, false, true, false, 1, bias);
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ops.attention(
                zeros(ops, 2, 3, 4, 8), zeros(ops, 2, 5, 4, 8), zeros(ops, 2, 5, 4, 8),
                AttentionOptions.DEFAULT.bias(zeros(ops, 4, 5))));
        assertTrue(e.getMessage().contains("bias [4, 5] does not broadcast to [B, H, Lq, Lk] = [2, 4, 3, 5]"),
                e.getMessage());
    }

    @ParameterizedTest
    @MethodSource("backends")
    void largeLogitsDoNotOverflow(Ops ops) {
        Random rng = new Random(33);
        // logits in the thousands: exp would overflow without subtracting the running maximum
        check(ops, rng, 1, 4, 200, 2, 64, 64, false, false, false, 3000);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void badInputsAreRefused(Ops ops) {
        Tensor q = zeros(ops, 2, 3, 4, 8), k = zeros(ops, 2, 5, 4, 8), v = zeros(ops, 2, 5, 4, 6);
        AttentionOptions o = AttentionOptions.DEFAULT;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ops.attention(q, zeros(ops, 2, 5, 4, 7), v, o));
        assertTrue(e.getMessage().contains("k [2, 5, 4, 7]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ops.attention(q, k, zeros(ops, 2, 5, 3, 6), o));
        assertTrue(e.getMessage().contains("v [2, 5, 3, 6]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ops.attention(q, zeros(ops, 3, 5, 4, 8), v, o));
        assertTrue(e.getMessage().contains("k [3, 5, 4, 8]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> ops.attention(q, k, v, o.keyPaddingMask(zeros(ops, 2, 4))));
        assertTrue(e.getMessage().contains("keyPaddingMask must be [B, Lk] = [2, 5], got [2, 4]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> ops.attention(zeros(ops, 2, 3, 32), zeros(ops, 2, 5, 32), zeros(ops, 2, 5, 32), o));
        assertTrue(e.getMessage().contains("packed inputs need options.heads(H)"), e.getMessage());
        assertThrows(NullPointerException.class, () -> ops.attention(q, k, v, null));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void nanPropagates(Ops ops) {
        // two queries; then four of 32 wide, which a CPU backend computes together (one vector holds all four's scores)
        for (int[] shape : new int[][] {{2, 8}, {4, 32}}) {
            int lq = shape[0], dh = shape[1];
            Tensor q = TestSupport.random(new Random(34), 1, lq, 1, dh), k = TestSupport.random(new Random(35), 1, 3, 1, dh);
            Tensor v = TestSupport.random(new Random(36), 1, 3, 1, 4);
            q.array()[0] = Float.NaN; // query 0 only
            try (AttentionResult r = ops.attention(TestSupport.on(ops, q), TestSupport.on(ops, k), TestSupport.on(ops, v),
                    AttentionOptions.DEFAULT)) {
                float[] out = r.output().toArray();
                for (int d = 0; d < 4; d++) assertTrue(Float.isNaN(out[d]), "query 0 is NaN, lq " + lq);
                for (int d = 4; d < 4 * lq; d++) assertTrue(Float.isFinite(out[d]), "queries past 0 are untouched, lq " + lq);
            }
        }
    }

    /**
     * NaN in the keys and values the padding mask hides: a row whose keys are all hidden gives zeros whatever
     * they hold; a hidden key still enters P V with weight 0, as in PyTorch, so a NaN in its value row reaches
     * the rows that attend beside it (0 x NaN). Lengths on both sides of the kernels' tiles.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void nanBehindThePaddingMask(Ops ops) {
        for (int lq : new int[] {1, 3, 40}) {
            for (int lk : new int[] {5, 70}) {
                Tensor q = TestSupport.random(new Random(37), 2, lq, 2, 8), k = TestSupport.random(new Random(38), 2, lk, 2, 8);
                Tensor v = TestSupport.random(new Random(39), 2, lk, 2, 8);
                float[] mask = new float[2 * lk];
                java.util.Arrays.fill(mask, 0, lk, 1f);
                mask[1] = 0; // batch 0: key 1 hidden, its key and value rows NaN
                java.util.Arrays.fill(k.array(), 16, 32, Float.NaN);
                java.util.Arrays.fill(v.array(), 16, 32, Float.NaN);
                java.util.Arrays.fill(k.array(), lk * 16, 2 * lk * 16, Float.NaN); // batch 1: every key hidden, all NaN
                java.util.Arrays.fill(v.array(), lk * 16, 2 * lk * 16, Float.NaN);
                try (AttentionResult r = ops.attention(TestSupport.on(ops, q), TestSupport.on(ops, k), TestSupport.on(ops, v),
                        AttentionOptions.DEFAULT.keyPaddingMask(TestSupport.on(ops, Tensor.of(mask, 2, lk))))) {
                    float[] out = r.output().toArray();
                    int half = out.length / 2;
                    for (int i = 0; i < half; i++) assertTrue(Float.isNaN(out[i]), ops.backend() + " lq " + lq + " lk " + lk + " at " + i);
                    for (int i = half; i < out.length; i++) assertEquals(0f, out[i], ops.backend() + " lq " + lq + " lk " + lk + " at " + i);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void cudaTensorsAreRefusedHere(Ops ops) {
        assumeTrue(ops.device().isCpu());
        Tensor foreign = Tensor.wrap(new ConcatErrorsTest.UntouchableMemory(Device.cuda(0)), DType.F32, 1, 2, 1, 8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ops.attention(foreign, Tensor.zeros(1, 2, 1, 8), Tensor.zeros(1, 2, 1, 8), AttentionOptions.DEFAULT));
        assertTrue(e.getMessage().contains("q"), e.getMessage());
        List.of(foreign).forEach(Tensor::close);
    }
}
