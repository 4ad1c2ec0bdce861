package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.mmfuse.nn.Ref.concat;
import static org.mmfuse.nn.Ref.linear;
import static org.mmfuse.nn.Ref.map2;
import static org.mmfuse.nn.Ref.powerNorm;
import static org.mmfuse.nn.Ref.rows;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.mmfuse.Activation;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/**
 * Every fusion type in a model against its formula written out in double ({@link Ref}) on random
 * weights and inputs of odd sizes, on every backend (so the backends also agree with each other).
 */
class FusionModelsTest {
    static Stream<Ops> backends() {
        return Stream.of(Backend.SCALAR, Backend.VECTOR, Backend.CUDA).filter(b -> MMFuse.report().isAvailable(b))
                .map(MMFuse::ops);
    }

    static final int B = 3, C0 = 7, C1 = 5, C2 = 4, OUT = 6;

    /** A fusion's formula: state dict and the batch's inputs (host) to the expected [B, out]. */
    interface Formula {
        double[][] of(Map<String, Tensor> s, List<Tensor> x);
    }

    record Case(String name, ModelSpec spec, Formula formula) {
        @Override
        public String toString() {
            return name;
        }
    }

    private static ModelSpec vectors(String type, Map<String, Object> options, int... dims) {
        ModelSpec.Builder b = ModelSpec.builder();
        for (int i = 0; i < dims.length; i++) b.vector("m" + i, dims[i]);
        return b.fusion(FusionSpec.of(type, options)).build();
    }

    private static Map<String, Object> opts(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    static List<Case> cases() {
        List<Case> c = new ArrayList<>();
        c.add(new Case("concat_mlp", vectors("concat_mlp", opts("output_dim", OUT, "dimensions", List.of(9, 4)), C0, C1),
                (s, x) -> Ref.mlp(s, "fusion.mlp", concat(rows(x.get(0)), rows(x.get(1))), 3, Activation.RELU)));
        c.add(new Case("linear_sum normalized", vectors("linear_sum", opts("output_dim", OUT, "mm_dim", 8, "normalize", true), C0, C1),
                (s, x) -> Ref.act(linear(s, "fusion.linear_out", powerNorm(map2(
                        Ref.act(linear(s, "fusion.linear0", rows(x.get(0))), Activation.RELU),
                        Ref.act(linear(s, "fusion.linear1", rows(x.get(1))), Activation.RELU), Double::sum))), Activation.RELU)));
        c.add(new Case("mlb tanh out", vectors("mlb", opts("output_dim", OUT, "mm_dim", 8, "activ_output", "tanh"), C0, C1),
                (s, x) -> Ref.act(linear(s, "fusion.linear_out", map2(
                        Ref.act(linear(s, "fusion.linear0", rows(x.get(0))), Activation.RELU),
                        Ref.act(linear(s, "fusion.linear1", rows(x.get(1))), Activation.RELU), (a, b) -> a * b)), Activation.TANH)));
        c.add(new Case("mfb normalized", vectors("mfb", opts("output_dim", OUT, "mm_dim", 4, "factor", 3, "normalize", true), C0, C1),
                (s, x) -> Ref.act(linear(s, "fusion.linear_out", powerNorm(Ref.sumConsecutive(map2(
                        Ref.act(linear(s, "fusion.linear0", rows(x.get(0))), Activation.RELU),
                        Ref.act(linear(s, "fusion.linear1", rows(x.get(1))), Activation.RELU), (a, b) -> a * b), 3))),
                        Activation.RELU)));
        c.add(new Case("mfh", vectors("mfh", opts("output_dim", OUT, "mm_dim", 4, "factor", 2, "activ_input", "tanh"), C0, C1),
                (s, x) -> {
                    double[][] e0 = map2(Ref.act(linear(s, "fusion.linear0_0", rows(x.get(0))), Activation.TANH),
                            Ref.act(linear(s, "fusion.linear1_0", rows(x.get(1))), Activation.TANH), (a, b) -> a * b);
                    double[][] e1 = map2(e0, map2(Ref.act(linear(s, "fusion.linear0_1", rows(x.get(0))), Activation.TANH),
                            Ref.act(linear(s, "fusion.linear1_1", rows(x.get(1))), Activation.TANH), (a, b) -> a * b), (a, b) -> a * b);
                    return Ref.act(linear(s, "fusion.linear_out", concat(Ref.sumConsecutive(e0, 2), Ref.sumConsecutive(e1, 2))),
                            Activation.RELU);
                }));
        c.add(new Case("mutan normalized", vectors("mutan", opts("output_dim", OUT, "mm_dim", 5, "rank", 3, "normalize", true), C0, C1),
                (s, x) -> linear(s, "fusion.linear_out", powerNorm(Ref.sumStrided(map2(
                        linear(s, "fusion.merge_linear0", linear(s, "fusion.linear0", rows(x.get(0)))),
                        linear(s, "fusion.merge_linear1", linear(s, "fusion.linear1", rows(x.get(1)))), (a, b) -> a * b), 3)))));
        c.add(new Case("mutan shared", vectors("mutan", opts("output_dim", OUT, "mm_dim", 5, "rank", 2, "shared", true), C0, C0),
                (s, x) -> linear(s, "fusion.linear_out", Ref.sumStrided(map2(
                        linear(s, "fusion.merge_linear0", linear(s, "fusion.linear0", rows(x.get(0)))),
                        linear(s, "fusion.merge_linear0", linear(s, "fusion.linear0", rows(x.get(1)))), (a, b) -> a * b), 2))));
        c.add(new Case("tucker", vectors("tucker", opts("output_dim", OUT, "mm_dim", 5), C0, C1),
                (s, x) -> linear(s, "fusion.linear_out", Ref.bilinear(s, "fusion.bilinear",
                        linear(s, "fusion.linear0", rows(x.get(0))), linear(s, "fusion.linear1", rows(x.get(1)))))));
        for (String pos : new String[] {"before_cat", "after_cat"}) {
            c.add(new Case("block " + pos, vectors("block", opts("output_dim", OUT, "mm_dim", 10, "chunks", 3, "rank", 2,
                    "pos_norm", pos), C0, C1), (s, x) -> {
                        double[][] a = linear(s, "fusion.linear0", rows(x.get(0))), b = linear(s, "fusion.linear1", rows(x.get(1)));
                        int[] bounds = {0, 4, 8, 10}; // get_sizes_list(10, 3) = [4, 4, 2]
                        double[][] z = new double[B][0];
                        for (int k = 0; k < 3; k++) {
                            double[][] m = map2(linear(s, "fusion.merge_linears0." + k, Ref.columns(a, bounds[k], bounds[k + 1])),
                                    linear(s, "fusion.merge_linears1." + k, Ref.columns(b, bounds[k], bounds[k + 1])), (p, q) -> p * q);
                            double[][] zk = Ref.sumStrided(m, 2);
                            z = concat(z, pos.equals("before_cat") ? powerNorm(zk) : zk);
                        }
                        return linear(s, "fusion.linear_out", pos.equals("before_cat") ? z : powerNorm(z));
                    }));
        }
        c.add(new Case("block_tucker", vectors("block_tucker", opts("output_dim", OUT, "mm_dim", 7, "chunks", 3), C0, C1),
                (s, x) -> {
                    double[][] a = linear(s, "fusion.linear0", rows(x.get(0))), b = linear(s, "fusion.linear1", rows(x.get(1)));
                    int[] bounds = {0, 3, 6, 7}; // get_sizes_list(7, 3) = [3, 3, 1]
                    double[][] z = new double[B][0];
                    for (int k = 0; k < 3; k++) {
                        z = concat(z, powerNorm(Ref.bilinear(s, "fusion.bilinears." + k, Ref.columns(a, bounds[k], bounds[k + 1]),
                                Ref.columns(b, bounds[k], bounds[k + 1]))));
                    }
                    return linear(s, "fusion.linear_out", z);
                }));
        c.add(new Case("mcb", vectors("mcb", opts("output_dim", OUT, "mm_dim", 11), C0, C1),
                (s, x) -> Ref.act(linear(s, "fusion.linear_out", circularConvolution(s, rows(x.get(0)), rows(x.get(1)), 11)),
                        Activation.RELU)));
        c.add(new Case("tfn three", vectors("tfn", opts("output_dim", OUT, "dimensions", List.of(5)), C0, C1, C2),
                (s, x) -> Ref.mlp(s, "fusion.mlp", outerWithOnes(rows(x.get(0)), rows(x.get(1)), rows(x.get(2))), 2, Activation.RELU)));
        c.add(new Case("lmf two", vectors("lmf", opts("output_dim", OUT, "rank", 3), C0, C1), FusionModelsTest::lmf));
        c.add(new Case("lmf three", vectors("lmf", opts("output_dim", OUT, "rank", 2), C0, C1, C2), FusionModelsTest::lmf));
        c.add(new Case("gmu", vectors("gmu", opts("output_dim", OUT, "bias", true), C0, C1), (s, x) -> {
            double[][] h0 = Ref.act(linear(s, "fusion.hidden0", rows(x.get(0))), Activation.TANH);
            double[][] h1 = Ref.act(linear(s, "fusion.hidden1", rows(x.get(1))), Activation.TANH);
            double[][] z = Ref.act(linear(s, "fusion.gate", concat(rows(x.get(0)), rows(x.get(1)))), Activation.SIGMOID);
            double[][] out = new double[B][OUT];
            for (int r = 0; r < B; r++) for (int i = 0; i < OUT; i++) out[r][i] = z[r][i] * h0[r][i] + (1 - z[r][i]) * h1[r][i];
            return out;
        }));
        c.add(new Case("gmu three", vectors("gmu", opts("output_dim", OUT), C0, C1, C2), (s, x) -> {
            double[][] joint = concat(concat(rows(x.get(0)), rows(x.get(1))), rows(x.get(2)));
            double[][] out = new double[B][OUT];
            for (int m = 0; m < 3; m++) {
                double[][] h = Ref.act(linear(s, "fusion.hidden" + m, rows(x.get(m))), Activation.TANH);
                double[][] z = Ref.act(linear(s, "fusion.gate" + m, joint), Activation.SIGMOID);
                for (int r = 0; r < B; r++) for (int i = 0; i < OUT; i++) out[r][i] += z[r][i] * h[r][i];
            }
            return out;
        }));
        c.add(new Case("late mean_probs fixed weights", vectors("late", opts("combine", "mean_probs", "weights", List.of(1, 2, 0.5)),
                OUT, OUT, OUT), (s, x) -> {
                    double[] w = {1, 2, 0.5};
                    double[][] out = new double[B][OUT];
                    for (int m = 0; m < 3; m++) {
                        double[][] p = Ref.softmax(rows(x.get(m)));
                        for (int r = 0; r < B; r++) for (int i = 0; i < OUT; i++) out[r][i] += w[m] / 3.5 * p[r][i];
                    }
                    return out;
                }));
        c.add(new Case("late vote learned", vectors("late", opts("combine", "vote", "weights", "learned"), OUT, OUT), (s, x) -> {
            double[] w = Ref.values(s.get("fusion.weights"));
            double[][] out = new double[B][OUT];
            for (int m = 0; m < 2; m++) {
                double[][] v = rows(x.get(m));
                for (int r = 0; r < B; r++) {
                    int best = 0;
                    for (int i = 1; i < OUT; i++) if (v[r][i] > v[r][best]) best = i;
                    out[r][best] += w[m] / (w[0] + w[1]);
                }
            }
            return out;
        }));
        return c;
    }

    /** The compact bilinear pooling of one pair of vectors by its definition: the sketches' circular convolution. */
    static double[][] circularConvolution(Map<String, Tensor> s, double[][] x, double[][] y, int d) {
        double[] h1 = Ref.values(s.get("fusion.mcb.sketch1.h")), s1 = Ref.values(s.get("fusion.mcb.sketch1.s"));
        double[] h2 = Ref.values(s.get("fusion.mcb.sketch2.h")), s2 = Ref.values(s.get("fusion.mcb.sketch2.s"));
        double[][] out = new double[x.length][d];
        for (int r = 0; r < x.length; r++) {
            double[] px = new double[d], py = new double[d];
            for (int i = 0; i < x[r].length; i++) px[(int) h1[i]] += s1[i] * x[r][i];
            for (int i = 0; i < y[r].length; i++) py[(int) h2[i]] += s2[i] * y[r][i];
            for (int k = 0; k < d; k++) for (int i = 0; i < d; i++) out[r][k] += px[i] * py[((k - i) % d + d) % d];
        }
        return out;
    }

    /** [1; a] ⊗ [1; b] ⊗ [1; c] flattened, a's index outermost. */
    static double[][] outerWithOnes(double[][] a, double[][] b, double[][] c) {
        double[][] out = new double[a.length][];
        for (int r = 0; r < a.length; r++) {
            int na = a[r].length + 1, nb = b[r].length + 1, nc = c[r].length + 1;
            out[r] = new double[na * nb * nc];
            for (int i = 0; i < na; i++) {
                for (int j = 0; j < nb; j++) {
                    for (int k = 0; k < nc; k++) {
                        out[r][(i * nb + j) * nc + k] = (i == 0 ? 1 : a[r][i - 1]) * (j == 0 ? 1 : b[r][j - 1]) * (k == 0 ? 1 : c[r][k - 1]);
                    }
                }
            }
        }
        return out;
    }

    /** Liu et al.'s LMF forward: Σ_r w_r Π_m ([1; x_m] F_m[r]) + bias. */
    static double[][] lmf(Map<String, Tensor> s, List<Tensor> x) {
        double[] w = Ref.values(s.get("fusion.fusion_weights")), bias = Ref.values(s.get("fusion.fusion_bias"));
        int rank = w.length;
        double[][] out = new double[B][OUT];
        for (int b = 0; b < B; b++) {
            for (int o = 0; o < OUT; o++) {
                double sum = 0;
                for (int r = 0; r < rank; r++) {
                    double product = w[r];
                    for (int m = 0; m < x.size(); m++) {
                        double[] f = Ref.values(s.get("fusion.factor" + m)), v = rows(x.get(m))[b];
                        int n = v.length + 1;
                        double proj = f[(r * n) * OUT + o];
                        for (int c = 0; c < v.length; c++) proj += v[c] * f[(r * n + 1 + c) * OUT + o];
                        product *= proj;
                    }
                    sum += product;
                }
                out[b][o] = sum + bias[o];
            }
        }
        return out;
    }

    /** Random weights for every tensor the spec declares: N(0, 1/fan-in) values, hashes in [0, d), signs +-1. */
    static Map<String, Tensor> randomState(ModelSpec spec, Random rng) {
        Map<String, Tensor> state = new LinkedHashMap<>();
        ModelPlan plan = spec.plan();
        plan.parameters.forEach((name, shape) -> {
            int n = (int) org.mmfuse.Shapes.numel(name, shape);
            float[] v = new float[n];
            double scale = 1 / Math.sqrt(Math.max(1, shape[shape.length - 1]));
            for (int i = 0; i < n; i++) {
                if (plan.indices.contains(name)) {
                    v[i] = rng.nextInt(11); // the mcb cases' mm_dim
                } else if (name.endsWith(".s") && name.contains("sketch")) {
                    v[i] = rng.nextBoolean() ? 1 : -1;
                } else if (name.endsWith("fusion_weights") || name.endsWith("fusion.weights")) {
                    v[i] = 0.25f + rng.nextFloat();
                } else {
                    v[i] = (float) (rng.nextGaussian() * scale);
                }
            }
            state.put(name, Tensor.of(v, shape));
        });
        return state;
    }

    static List<Tensor> randomInputs(ModelSpec spec, Random rng) {
        List<Tensor> xs = new ArrayList<>();
        for (ModelSpec.Input in : spec.inputs()) {
            float[] v = new float[B * in.dim()];
            for (int i = 0; i < v.length; i++) v[i] = (float) rng.nextGaussian();
            xs.add(Tensor.of(v, B, in.dim()));
        }
        return xs;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void everyFusionFollowsItsFormula(Ops ops) {
        Random rng = new Random(81);
        for (Case c : cases()) {
            Map<String, Tensor> state = randomState(c.spec(), rng);
            List<Tensor> xs = randomInputs(c.spec(), rng);
            double[][] want = c.formula().of(state, xs);
            ModelInput input = new ModelInput();
            for (int i = 0; i < xs.size(); i++) input.put("m" + i, xs.get(i));
            try (Model model = Model.build(ops, c.spec(), state); Tensor y = model.predict(input)) {
                assertArrayEquals(new long[] {B, want[0].length}, y.shape(), c.name());
                float[] got = y.toArray();
                for (int r = 0; r < B; r++) {
                    for (int i = 0; i < want[r].length; i++) {
                        assertEquals(want[r][i], got[r * want[r].length + i], 2e-4 * (1 + Math.abs(want[r][i])),
                                ops.backend() + " " + c.name() + " sample " + r + " output " + i);
                    }
                }
            }
        }
    }
}
