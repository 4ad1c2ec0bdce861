package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
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

/** MFB and MFH against block.bootstrap's forward written out in double, on every backend. */
class FactorizedFusionTest {
    static Stream<Ops> backends() {
        return Stream.of(Backend.SCALAR, Backend.VECTOR, Backend.CUDA).filter(b -> MMFuse.report().isAvailable(b))
                .map(MMFuse::ops);
    }

    private static Tensor random(Random rng, long... shape) {
        long n = 1;
        for (long s : shape) n *= s;
        float[] data = new float[(int) n];
        for (int i = 0; i < data.length; i++) data[i] = (float) (rng.nextGaussian() * 0.5);
        return Tensor.of(data, shape);
    }

    /** y = x Wᵀ + b in double: [rows, out]. */
    private static double[][] linear(double[][] x, Tensor w, Tensor b) {
        int out = (int) w.size(0), in = (int) w.size(1);
        double[][] y = new double[x.length][out];
        for (int r = 0; r < x.length; r++) {
            for (int o = 0; o < out; o++) {
                double s = b.array()[o];
                for (int i = 0; i < in; i++) s += x[r][i] * w.array()[o * in + i];
                y[r][o] = s;
            }
        }
        return y;
    }

    private static double[][] rows(Tensor t) {
        int n = (int) t.size(0), d = (int) t.size(1);
        double[][] r = new double[n][d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) r[i][j] = t.array()[i * d + j];
        return r;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void matchesBlockBootstrapsForward(Ops ops) {
        Random rng = new Random(51);
        int batch = 5, in0 = 13, in1 = 9, out = 7, mm = 6;
        for (int variant = 0; variant < 3; variant++) { // MFB, MFH, and MLB (one stage, factor 1)
            int stages = variant == 1 ? 2 : 1, factor = variant == 2 ? 1 : 3;
            for (boolean normalize : new boolean[] {false, true}) {
                for (Activation act : new Activation[] {Activation.RELU, Activation.TANH, Activation.NONE}) {
                    Map<String, Tensor> state = new LinkedHashMap<>();
                    for (int s = 0; s < stages; s++) {
                        String suffix = stages == 1 ? "" : "_" + s;
                        state.put("linear0" + suffix + ".weight", random(rng, mm * factor, in0));
                        state.put("linear0" + suffix + ".bias", random(rng, mm * factor));
                        state.put("linear1" + suffix + ".weight", random(rng, mm * factor, in1));
                        state.put("linear1" + suffix + ".bias", random(rng, mm * factor));
                    }
                    state.put("linear_out.weight", random(rng, out, stages * mm));
                    state.put("linear_out.bias", random(rng, out));
                    Tensor x0 = random(rng, batch, in0), x1 = random(rng, batch, in1);

                    // block.bootstrap's forward, step by step
                    double[][] z = new double[batch][stages * mm];
                    double[][] skip = null;
                    for (int s = 0; s < stages; s++) {
                        String suffix = stages == 1 ? "" : "_" + s;
                        double[][] a = linear(rows(x0), state.get("linear0" + suffix + ".weight"), state.get("linear0" + suffix + ".bias"));
                        double[][] b = linear(rows(x1), state.get("linear1" + suffix + ".weight"), state.get("linear1" + suffix + ".bias"));
                        double[][] product = new double[batch][mm * factor];
                        for (int r = 0; r < batch; r++) {
                            for (int u = 0; u < mm * factor; u++) {
                                product[r][u] = act.apply(a[r][u]) * act.apply(b[r][u]) * (skip == null ? 1 : skip[r][u]);
                            }
                        }
                        skip = product;
                        for (int r = 0; r < batch; r++) {
                            double norm = 0;
                            double[] pooled = new double[mm];
                            for (int p = 0; p < mm; p++) {
                                for (int t = 0; t < factor; t++) pooled[p] += product[r][p * factor + t];
                                if (normalize) pooled[p] = Math.sqrt(Math.max(pooled[p], 0)) - Math.sqrt(Math.max(-pooled[p], 0));
                                norm += pooled[p] * pooled[p];
                            }
                            for (int p = 0; p < mm; p++) z[r][s * mm + p] = normalize ? pooled[p] / Math.max(Math.sqrt(norm), 1e-12) : pooled[p];
                        }
                    }
                    double[][] want = linear(z, state.get("linear_out.weight"), state.get("linear_out.bias"));

                    try (FactorizedFusion fusion = FactorizedFusion.fromStateDict(ops, state, stages, in0, in1, out, mm, factor,
                            act, Activation.RELU, normalize);
                            Tensor d0 = x0.to(ops.device()); Tensor d1 = x1.to(ops.device()); Tensor y = fusion.forward(d0, d1)) {
                        assertArrayEquals(new long[] {batch, out}, y.shape());
                        float[] got = y.toArray();
                        for (int r = 0; r < batch; r++) {
                            for (int o = 0; o < out; o++) {
                                double expected = Math.max(want[r][o], 0); // activ_output='relu'
                                assertEquals(expected, got[r * out + o], 1e-4 * (1 + Math.abs(expected)),
                                        ops.backend() + " stages " + stages + " factor " + factor + " normalize " + normalize
                                                + " " + act);
                            }
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void loadingChecksEveryTensor(Ops ops) {
        Random rng = new Random(52);
        Map<String, Tensor> state = new LinkedHashMap<>();
        state.put("linear0.weight", random(rng, 8, 3));
        state.put("linear0.bias", random(rng, 8));
        state.put("linear1.weight", random(rng, 8, 5));
        state.put("linear1.bias", random(rng, 8));
        state.put("linear_out.weight", random(rng, 2, 4));
        state.put("linear_out.bias", random(rng, 2));
        FactorizedFusion.fromStateDict(ops, state, 1, 3, 5, 2, 4, 2, Activation.RELU, Activation.RELU, false).close();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FactorizedFusion.fromStateDict(ops, state, 1, 3, 5, 2, 4, 3, Activation.RELU, Activation.RELU, false));
        assertTrue(e.getMessage().contains("linear0.weight") && e.getMessage().contains("[8, 3]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> FactorizedFusion.fromStateDict(ops, state, 2, 3, 5, 2, 4, 2, Activation.RELU, Activation.RELU, false));
        assertTrue(e.getMessage().contains("unexpected tensor 'linear0.weight'"), e.getMessage());
        Map<String, Tensor> missing = new LinkedHashMap<>(state);
        missing.remove("linear1.bias");
        e = assertThrows(IllegalArgumentException.class,
                () -> FactorizedFusion.fromStateDict(ops, missing, 1, 3, 5, 2, 4, 2, Activation.RELU, Activation.RELU, false));
        assertTrue(e.getMessage().contains("missing tensor 'linear1.bias'"), e.getMessage());
    }
}
