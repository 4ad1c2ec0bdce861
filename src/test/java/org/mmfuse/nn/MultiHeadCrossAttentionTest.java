package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.mmfuse.AttentionResult;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/** The module against nn.MultiheadAttention's formula computed by hand in double, on every backend. */
class MultiHeadCrossAttentionTest {
    static Stream<Ops> backends() {
        return Stream.of(Backend.SCALAR, Backend.VECTOR, Backend.CUDA).filter(b -> MMFuse.report().isAvailable(b))
                .map(MMFuse::ops);
    }

    /** A host tensor's copy on the backend's device. */
    private static Tensor on(Ops ops, Tensor host) {
        return host.to(ops.device());
    }

    private static Tensor random(Random rng, long... shape) {
        float[] data = new float[(int) org.mmfuse.Shapes.numel("shape", shape)];
        for (int i = 0; i < data.length; i++) data[i] = rng.nextFloat() - 0.5f;
        return Tensor.of(data, shape);
    }

    /** x [n, in] · wᵀ + b, in double. */
    private static double[] project(float[] x, int n, int in, float[] w, int out, float[] b) {
        double[] y = new double[n * out];
        for (int r = 0; r < n; r++) {
            for (int o = 0; o < out; o++) {
                double sum = b == null ? 0 : b[o];
                for (int i = 0; i < in; i++) sum += (double) x[r * in + i] * w[o * in + i];
                y[r * out + o] = sum;
            }
        }
        return y;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void matchesTheFormulaWithDifferentKeyAndValueWidths(Ops ops) {
        Random rng = new Random(41);
        checkFormula(ops, rng, 2, 3, 5, 16, 4, 10, 6);
        // few queries over many wide keys and values: the Vector backend folds the projections into the products
        checkFormula(ops, rng, 4, 2, 9, 8, 2, 40, 24);
    }

    private static void checkFormula(Ops ops, Random rng, int b, int lq, int lk, int e, int h, int kdim, int vdim) {
        int dh = e / h;
        Map<String, Tensor> state = new HashMap<>();
        state.put("q_proj_weight", random(rng, e, e));
        state.put("k_proj_weight", random(rng, e, kdim));
        state.put("v_proj_weight", random(rng, e, vdim));
        state.put("in_proj_bias", random(rng, 3 * e));
        state.put("out_proj.weight", random(rng, e, e));
        state.put("out_proj.bias", random(rng, e));
        Tensor query = random(rng, b, lq, e), key = random(rng, b, lk, kdim), value = random(rng, b, lk, vdim);
        float[] ignore = new float[b * lk];
        ignore[1] = 1f; // batch 0 ignores key 1
        for (int j = 0; j < lk; j++) ignore[lk + j] = j >= 3 ? 1f : 0f; // batch 1 ignores keys 3 and on

        float[] inBias = state.get("in_proj_bias").array();
        float[] bq = java.util.Arrays.copyOfRange(inBias, 0, e), bk = java.util.Arrays.copyOfRange(inBias, e, 2 * e);
        float[] bv = java.util.Arrays.copyOfRange(inBias, 2 * e, 3 * e);
        double[] q = project(query.array(), b * lq, e, state.get("q_proj_weight").array(), e, bq);
        double[] k = project(key.array(), b * lk, kdim, state.get("k_proj_weight").array(), e, bk);
        double[] v = project(value.array(), b * lk, vdim, state.get("v_proj_weight").array(), e, bv);
        double[] heads = new double[b * lq * e], averaged = new double[b * lq * lk];
        for (int bi = 0; bi < b; bi++) for (int hi = 0; hi < h; hi++) for (int i = 0; i < lq; i++) {
            double[] w = new double[lk];
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j < lk; j++) {
                double dot = 0;
                for (int d = 0; d < dh; d++) dot += q[(bi * lq + i) * e + hi * dh + d] * k[(bi * lk + j) * e + hi * dh + d];
                w[j] = ignore[bi * lk + j] != 0 ? Double.NEGATIVE_INFINITY : dot / Math.sqrt(dh);
                max = Math.max(max, w[j]);
            }
            for (int j = 0; j < lk; j++) sum += (w[j] = Math.exp(w[j] - max));
            for (int j = 0; j < lk; j++) {
                averaged[(bi * lq + i) * lk + j] += w[j] / sum / h;
                for (int d = 0; d < dh; d++) heads[(bi * lq + i) * e + hi * dh + d] += w[j] / sum * v[(bi * lk + j) * e + hi * dh + d];
            }
        }
        float[] headsF = new float[heads.length];
        for (int i = 0; i < heads.length; i++) headsF[i] = (float) heads[i];
        double[] expected = project(headsF, b * lq, e, state.get("out_proj.weight").array(), e,
                state.get("out_proj.bias").array());

        try (MultiHeadCrossAttention mha = MultiHeadCrossAttention.fromStateDict(ops, state, e, h, kdim, vdim, true);
                AttentionResult out = mha.forward(on(ops, query), on(ops, key), on(ops, value),
                        on(ops, Tensor.of(ignore, b, lk)), true, true)) {
            assertArrayEquals(new long[] {b, lq, e}, out.output().shape());
            float[] got = out.output().toArray();
            for (int i = 0; i < got.length; i++) assertEquals(expected[i], got[i], 1e-5, "output " + i);
            float[] weights = out.weights().toArray();
            assertArrayEquals(new long[] {b, lq, lk}, out.weights().shape());
            for (int i = 0; i < weights.length; i++) assertEquals(averaged[i], weights[i], 1e-6, "weight " + i);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void packedInProjectionEqualsSeparateWeights(Ops ops) {
        Random rng = new Random(42);
        int e = 12, h = 3;
        Tensor inProj = random(rng, 3 * e, e), outProj = random(rng, e, e), inBias = random(rng, 3 * e);
        Tensor outBias = random(rng, e);
        float[] w = inProj.array();
        Map<String, Tensor> packed = Map.of("in_proj_weight", inProj, "out_proj.weight", outProj,
                "in_proj_bias", inBias, "out_proj.bias", outBias);
        Map<String, Tensor> separate = Map.of(
                "q_proj_weight", Tensor.of(java.util.Arrays.copyOfRange(w, 0, e * e), e, e),
                "k_proj_weight", Tensor.of(java.util.Arrays.copyOfRange(w, e * e, 2 * e * e), e, e),
                "v_proj_weight", Tensor.of(java.util.Arrays.copyOfRange(w, 2 * e * e, 3 * e * e), e, e),
                "out_proj.weight", outProj, "in_proj_bias", inBias, "out_proj.bias", outBias);
        Tensor query = random(rng, 2, 4, e), memory = random(rng, 2, 7, e);
        try (MultiHeadCrossAttention a = MultiHeadCrossAttention.fromStateDict(ops, packed, e, h, e, e, true);
                MultiHeadCrossAttention b = MultiHeadCrossAttention.fromStateDict(ops, separate, e, h, e, e, true);
                AttentionResult x = a.forward(on(ops, query), on(ops, memory), on(ops, memory), null, true, false);
                AttentionResult y = b.forward(on(ops, query), on(ops, memory), on(ops, memory), null, true, false)) {
            // both with the weights: a CPU backend takes another kernel without them, which rounds differently
            assertArrayEquals(x.output().toArray(), y.output().toArray());
            assertArrayEquals(x.weights().toArray(), y.weights().toArray());
            assertArrayEquals(new long[] {2, h, 4, 7}, y.weights().shape());
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void everyKeyIgnoredGivesTheOutputBias(Ops ops) {
        Random rng = new Random(43);
        int e = 8;
        Map<String, Tensor> state = Map.of("in_proj_weight", random(rng, 3 * e, e), "out_proj.weight", random(rng, e, e),
                "in_proj_bias", random(rng, 3 * e), "out_proj.bias", random(rng, e));
        float[] ignoreAll = {1, 1, 1};
        try (MultiHeadCrossAttention mha = MultiHeadCrossAttention.fromStateDict(ops, state, e, 2, e, e, true);
                AttentionResult out = mha.forward(on(ops, random(rng, 1, 2, e)), on(ops, random(rng, 1, 3, e)),
                        on(ops, random(rng, 1, 3, e)), on(ops, Tensor.of(ignoreAll, 1, 3)), false, true)) {
            float[] bias = state.get("out_proj.bias").array(), got = out.output().toArray();
            for (int i = 0; i < 2 * e; i++) assertEquals(bias[i % e], got[i], 1e-7);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void badStateDictsAreRefused(Ops ops) {
        Random rng = new Random(44);
        Map<String, Tensor> state = new HashMap<>(Map.of("q_proj_weight", random(rng, 8, 8),
                "k_proj_weight", random(rng, 8, 5), "v_proj_weight", random(rng, 8, 6), "out_proj.weight", random(rng, 8, 8)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadCrossAttention.fromStateDict(ops, state, 8, 2, 5, 7, false));
        assertTrue(e.getMessage().contains("'v_proj_weight' has shape [8, 6], expected [8, 7]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadCrossAttention.fromStateDict(ops, state, 8, 2, 5, 6, true));
        assertTrue(e.getMessage().contains("missing tensor 'in_proj_bias'"), e.getMessage());
        state.put("extra", random(rng, 1));
        e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadCrossAttention.fromStateDict(ops, state, 8, 2, 5, 6, false));
        assertTrue(e.getMessage().contains("unexpected tensor 'extra'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadCrossAttention.fromStateDict(ops, state, 8, 3, 5, 6, false));
        assertTrue(e.getMessage().contains("multiple of heads 3"), e.getMessage());
    }
}
