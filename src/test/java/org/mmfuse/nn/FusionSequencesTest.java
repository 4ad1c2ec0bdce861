package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.mmfuse.Activation;
import org.mmfuse.Ops;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;

/**
 * Models over sequences with masks: encoders (layer norm, linear, gelu, pooling, mlp), the
 * attention fusions, bilinear pooling of feature maps and compact pooling of maps, heads with softmax and
 * sigmoid, each against its formula in double on every backend.
 */
class FusionSequencesTest {
    static Stream<Ops> backends() {
        return FusionModelsTest.backends();
    }

    static final int B = 3, LQ = 4, LK = 5;

    /** [B, n, dim] gaussian values. */
    private static Tensor sequence(Random rng, int n, int dim) {
        float[] v = new float[B * n * dim];
        for (int i = 0; i < v.length; i++) v[i] = (float) rng.nextGaussian();
        return Tensor.of(v, B, n, dim);
    }

    /** A mask with sample 1 keeping only its position 0 and sample 2 nothing (its rows then NaN: never read). */
    private static Tensor mask(Tensor x) {
        int n = (int) x.size(1), dim = (int) x.size(2);
        float[] m = new float[B * n];
        java.util.Arrays.fill(m, 0, n, 1f);
        m[1] = 0; // sample 0: position 1 dropped
        m[n] = 1; // sample 1: position 0 only
        for (int b = 0; b < B; b++) {
            for (int p = 0; p < n; p++) if (m[b * n + p] == 0) java.util.Arrays.fill(x.array(), (b * n + p) * dim, (b * n + p + 1) * dim, Float.NaN);
        }
        return Tensor.of(m, B, n);
    }

    private static boolean[] kept(Tensor mask, int b) {
        int n = (int) mask.size(1);
        boolean[] k = new boolean[n];
        for (int p = 0; p < n; p++) k[p] = mask.array()[b * n + p] != 0;
        return k;
    }

    /** Sample b's positions [n][dim], all of them (dropped ones hold NaN). */
    private static double[][] positions(Tensor x, int b) {
        int n = (int) x.size(1), dim = (int) x.size(2);
        double[][] out = new double[n][dim];
        for (int p = 0; p < n; p++) for (int c = 0; c < dim; c++) out[p][c] = x.array()[(b * n + p) * dim + c];
        return out;
    }

    /** Pooling over the kept rows (zeros when none), as Ops.poolSequence defines it. */
    private static double[] pool(double[][] rows, boolean[] keep, SequencePooling mode) {
        double[] out = new double[rows[0].length];
        java.util.Arrays.fill(out, mode == SequencePooling.MAX ? Double.NEGATIVE_INFINITY : 0);
        int count = 0;
        for (int p = 0; p < rows.length; p++) {
            if (!keep[p] || mode == SequencePooling.FIRST && p > 0) continue;
            for (int c = 0; c < out.length; c++) out[c] = mode == SequencePooling.MAX ? Math.max(out[c], rows[p][c]) : out[c] + rows[p][c];
            count++;
        }
        for (int c = 0; c < out.length; c++) out[c] = count == 0 ? 0 : mode == SequencePooling.MEAN ? out[c] / count : out[c];
        return out;
    }

    private static void check(Ops ops, ModelSpec spec, Map<String, Tensor> state, ModelInput input, double[][] want, String what) {
        try (Model model = Model.build(ops, spec, state); Tensor y = model.predict(input)) {
            float[] got = y.toArray();
            int w = want[0].length;
            assertEquals(B * w, got.length, what);
            for (int b = 0; b < B; b++) {
                for (int i = 0; i < w; i++) {
                    assertEquals(want[b][i], got[b * w + i], 2e-4 * (1 + Math.abs(want[b][i])),
                            ops.backend() + " " + what + " sample " + b + " output " + i);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void crossAttentionWithEncodersAndSoftmaxHead(Ops ops) {
        Random rng = new Random(91);
        ModelSpec spec = ModelSpec.builder().sequence("text", 8).sequence("image", 6)
                .encoder("text", LayerSpec.layerNorm())
                .encoder("image", LayerSpec.linear(10), LayerSpec.activation(Activation.GELU))
                .fusion(FusionSpec.of("cross_attention", Map.of("num_heads", 2, "pool", "max")))
                .head(LayerSpec.linear(3)).output(ModelSpec.Output.SOFTMAX).build();
        Map<String, Tensor> s = FusionModelsTest.randomState(spec, rng);
        Tensor text = sequence(rng, LQ, 8), image = sequence(rng, LK, 6);
        Tensor textMask = mask(text), imageMask = mask(image);
        double[][] want = new double[B][];
        for (int b = 0; b < B; b++) {
            double[][] q = layerNorm(positions(text, b), s, "encoders.text.0");
            double[][] ctx = Ref.act(Ref.linear(s, "encoders.image.0", positions(image, b)), Activation.GELU);
            double[][] attended = Ref.attention(s, "fusion.attention", q, ctx, kept(imageMask, b), 2);
            double[] pooled = pool(attended, kept(textMask, b), SequencePooling.MAX);
            want[b] = Ref.softmax(Ref.linear(s, "head.0", new double[][] {pooled}))[0];
        }
        ModelInput input = new ModelInput().put("text", text).put("image", image).mask("text", textMask).mask("image", imageMask);
        check(ops, spec, s, input, want, "cross_attention");
    }

    @ParameterizedTest
    @MethodSource("backends")
    void crossAttentionMeanOverTheText(Ops ops) {
        // mean pooling averages the attention before the output projection (and on the Vector backend its
        // probabilities before the values: wide regions, a few text positions); sample 2 keeps no text
        // position, so its output is zeros, not the output projection's bias
        Random rng = new Random(93);
        ModelSpec spec = ModelSpec.builder().sequence("text", 16).sequence("regions", 40)
                .fusion(FusionSpec.of("cross_attention", Map.of("num_heads", 2))).build();
        Map<String, Tensor> s = FusionModelsTest.randomState(spec, rng);
        for (boolean masked : new boolean[] {false, true}) {
            Tensor text = sequence(rng, LQ, 16), regions = sequence(rng, LK, 40);
            Tensor textMask = masked ? mask(text) : null, regionMask = masked ? mask(regions) : null;
            double[][] want = new double[B][];
            for (int b = 0; b < B; b++) {
                boolean[] all = new boolean[LK];
                java.util.Arrays.fill(all, true);
                boolean[] textKept = new boolean[LQ];
                java.util.Arrays.fill(textKept, true);
                double[][] attended = Ref.attention(s, "fusion.attention", positions(text, b), positions(regions, b),
                        masked ? kept(regionMask, b) : all, 2);
                want[b] = pool(attended, masked ? kept(textMask, b) : textKept, SequencePooling.MEAN);
            }
            ModelInput input = new ModelInput().put("text", text).put("regions", regions);
            if (masked) input.mask("text", textMask).mask("regions", regionMask);
            check(ops, spec, s, input, want, "cross_attention mean" + (masked ? ", masked" : ""));
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void crossAttentionFoldsLinearEncoders(Ops ops) {
        // mean-pooled cross-attention with one linear encoder per sequence: the Vector backend folds the
        // encoders into the attention's projections where that costs less (24 regions of 40 for 4 queries)
        // and encodes first where it does not (5 regions); same formula, masks, and a sample without regions
        Random rng = new Random(94);
        ModelSpec spec = ModelSpec.builder().sequence("text", 12).sequence("regions", 40)
                .encoder("text", LayerSpec.linear(16)).encoder("regions", LayerSpec.linear(16))
                .fusion(FusionSpec.of("cross_attention", Map.of("num_heads", 4))).head(LayerSpec.linear(3)).build();
        Map<String, Tensor> s = FusionModelsTest.randomState(spec, rng);
        for (int regionCount : new int[] {LK, 24}) {
            Tensor text = sequence(rng, LQ, 12), regions = sequence(rng, regionCount, 40);
            Tensor textMask = mask(text), regionMask = mask(regions);
            boolean[] regionsPresent = {true, false, true};
            double[][] want = new double[B][];
            for (int b = 0; b < B; b++) {
                double[][] q = Ref.linear(s, "encoders.text.0", positions(text, b));
                double[][] ctx = Ref.linear(s, "encoders.regions.0", positions(regions, b));
                boolean[] keys = kept(regionMask, b);
                if (!regionsPresent[b]) java.util.Arrays.fill(keys, false);
                double[] pooled = pool(Ref.attention(s, "fusion.attention", q, ctx, keys, 4), kept(textMask, b),
                        SequencePooling.MEAN);
                want[b] = Ref.linear(s, "head.0", new double[][] {pooled})[0];
            }
            ModelInput input = new ModelInput().put("text", text).put("regions", regions).mask("text", textMask)
                    .mask("regions", regionMask).present("regions", regionsPresent);
            check(ops, spec, s, input, want, "cross_attention with linear encoders over " + regionCount + " regions");
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void coAttentionBothWays(Ops ops) {
        Random rng = new Random(92);
        for (String combine : new String[] {"concat", "product"}) {
            ModelSpec spec = ModelSpec.builder().sequence("a", 8).sequence("b", 8)
                    .fusion(FusionSpec.of("co_attention", Map.of("num_heads", 4, "combine", combine))).build();
            Map<String, Tensor> s = FusionModelsTest.randomState(spec, rng);
            Tensor a = sequence(rng, LQ, 8), bSeq = sequence(rng, LK, 8);
            Tensor aMask = mask(a), bMask = mask(bSeq);
            double[][] want = new double[B][];
            for (int b = 0; b < B; b++) {
                double[] fromA = pool(Ref.attention(s, "fusion.a_to_b", positions(a, b), positions(bSeq, b), kept(bMask, b), 4),
                        kept(aMask, b), SequencePooling.MEAN);
                double[] fromB = pool(Ref.attention(s, "fusion.b_to_a", positions(bSeq, b), positions(a, b), kept(aMask, b), 4),
                        kept(bMask, b), SequencePooling.MEAN);
                want[b] = combine.equals("concat") ? Ref.concat(new double[][] {fromA}, new double[][] {fromB})[0]
                        : Ref.map2(new double[][] {fromA}, new double[][] {fromB}, (x, y) -> x * y)[0];
            }
            check(ops, spec, s, new ModelInput().put("a", a).put("b", bSeq).mask("a", aMask).mask("b", bMask), want,
                    "co_attention " + combine);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void bilinearAndCompactPoolingOfMaskedMaps(Ops ops) {
        Random rng = new Random(93);
        ModelSpec full = ModelSpec.builder().sequence("x", 6).sequence("y", 4)
                .fusion(FusionSpec.of("bilinear_pool", Map.of("output_dim", 5))).build();
        ModelSpec compact = ModelSpec.builder().sequence("x", 6).sequence("y", 4)
                .fusion(FusionSpec.of("mcb", Map.of("output_dim", 5, "mm_dim", 11, "activ_output", "none"))).build();
        for (ModelSpec spec : new ModelSpec[] {full, compact}) {
            Map<String, Tensor> s = FusionModelsTest.randomState(spec, rng);
            Tensor x = sequence(rng, LK, 6), y = sequence(rng, LK, 4);
            Tensor m = mask(x);
            float[] nanY = y.array();
            for (int i = 0; i < m.array().length; i++) if (m.array()[i] == 0) java.util.Arrays.fill(nanY, i * 4, i * 4 + 4, Float.NaN);
            double[][] want = new double[B][];
            for (int b = 0; b < B; b++) {
                boolean[] keep = kept(m, b);
                double[][] xs = positions(x, b), ys = positions(y, b);
                if (spec == full) {
                    double[] z = new double[24];
                    for (int p = 0; p < LK; p++) {
                        if (!keep[p]) continue;
                        for (int i = 0; i < 6; i++) for (int j = 0; j < 4; j++) z[i * 4 + j] += xs[p][i] * ys[p][j] / LK;
                    }
                    double norm = 0;
                    for (int i = 0; i < z.length; i++) {
                        z[i] = Math.signum(z[i]) * Math.sqrt(Math.abs(z[i]) + 1e-12);
                        norm += z[i] * z[i];
                    }
                    for (int i = 0; i < z.length; i++) z[i] /= Math.max(Math.sqrt(norm), 1e-12);
                    want[b] = Ref.linear(s, "fusion.linear_out", new double[][] {z})[0];
                } else {
                    double[] z = new double[11];
                    for (int p = 0; p < LK; p++) {
                        if (!keep[p]) continue;
                        double[] c = FusionModelsTest.circularConvolution(s, new double[][] {xs[p]}, new double[][] {ys[p]}, 11)[0];
                        for (int i = 0; i < 11; i++) z[i] += c[i];
                    }
                    want[b] = Ref.linear(s, "fusion.linear_out", new double[][] {z})[0];
                }
            }
            ModelInput input = new ModelInput().put("x", x).put("y", y).mask("x", m).mask("y", m);
            check(ops, spec, s, input, want, spec.fusion().type());
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void pooledEncodersIntoMfbWithSigmoidHead(Ops ops) {
        Random rng = new Random(94);
        ModelSpec spec = ModelSpec.builder().sequence("regions", 9).vector("question", 5)
                .encoder("regions", LayerSpec.pool(SequencePooling.MEAN), LayerSpec.linear(7))
                .encoder("question", LayerSpec.mlp(List.of(6, 4), Activation.TANH))
                .fusion(FusionSpec.of("mfb", Map.of("output_dim", 6, "mm_dim", 3, "factor", 2)))
                .head(LayerSpec.of("dropout", Map.of("p", 0.1)), LayerSpec.linear(2), LayerSpec.of("softmax", Map.of()))
                .output(ModelSpec.Output.SIGMOID).build();
        Map<String, Tensor> s = FusionModelsTest.randomState(spec, rng);
        Tensor regions = sequence(rng, LK, 9);
        Tensor m = mask(regions);
        float[] q = new float[B * 5];
        for (int i = 0; i < q.length; i++) q[i] = (float) rng.nextGaussian();
        Tensor question = Tensor.of(q, B, 5);
        double[][] want = new double[B][];
        for (int b = 0; b < B; b++) {
            double[][] r = Ref.linear(s, "encoders.regions.1", new double[][] {pool(positions(regions, b), kept(m, b), SequencePooling.MEAN)});
            double[][] t = Ref.mlp(s, "encoders.question.0", new double[][] {java.util.Arrays.copyOfRange(Ref.values(question), b * 5, b * 5 + 5)}, 2, Activation.TANH);
            double[][] e = Ref.map2(Ref.act(Ref.linear(s, "fusion.linear0", r), Activation.RELU),
                    Ref.act(Ref.linear(s, "fusion.linear1", t), Activation.RELU), (x, y) -> x * y);
            double[][] z = Ref.act(Ref.linear(s, "fusion.linear_out", Ref.sumConsecutive(e, 2)), Activation.RELU);
            want[b] = Ref.act(Ref.softmax(Ref.linear(s, "head.1", z)), Activation.SIGMOID)[0];
        }
        check(ops, spec, s, new ModelInput().put("regions", regions).put("question", question).mask("regions", m), want, "mfb");
    }

    /** F.layer_norm over each row with the step's weight and bias, eps 1e-5. */
    private static double[][] layerNorm(double[][] x, Map<String, Tensor> s, String name) {
        double[] w = Ref.values(s.get(name + ".weight")), bias = Ref.values(s.get(name + ".bias"));
        double[][] y = new double[x.length][];
        for (int r = 0; r < x.length; r++) {
            double mean = 0, var = 0;
            for (double v : x[r]) mean += v;
            mean /= x[r].length;
            for (double v : x[r]) var += (v - mean) * (v - mean);
            var /= x[r].length;
            y[r] = new double[x[r].length];
            for (int i = 0; i < x[r].length; i++) y[r][i] = (x[r][i] - mean) / Math.sqrt(var + 1e-5) * w[i] + bias[i];
        }
        return y;
    }
}
