package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Activations, layer norm and softmax on every backend against their definitions in double. */
class ElementwiseTest {
    static Stream<Ops> backends() {
        return TestSupport.backends();
    }

    private static final long[][] SHAPES = {{1}, {7}, {3, 1}, {2, 33}, {5, 17, 3}, {0, 4}, {4, 100}, {1, 1000}};

    @ParameterizedTest
    @MethodSource("backends")
    void activationsFollowTheirDefinitions(Ops ops) {
        Random rng = new Random(41);
        for (long[] shape : SHAPES) {
            Tensor x = TestSupport.random(rng, shape);
            float[] a = x.array();
            if (a.length > 3) {
                a[0] = Float.NaN;
                a[1] = -100f; // sigmoid's e^100 and tanh's saturation
                a[2] = 95f;
            }
            if (a.length > 8) { // the extremes: infinities, and magnitudes whose squares overflow
                a[3] = Float.POSITIVE_INFINITY;
                a[4] = Float.NEGATIVE_INFINITY;
                a[5] = 1e20f;
                a[6] = -1e20f;
                a[7] = 70001.5f;
            }
            for (Activation act : Activation.values()) {
                try (Tensor dx = x.to(ops.device()); Tensor y = ops.activation(dx, act)) {
                    assertArrayEquals(shape, y.shape());
                    float[] got = y.toArray();
                    for (int i = 0; i < a.length; i++) {
                        double want = act.apply(a[i]);
                        if (Double.isNaN(want)) {
                            assertTrue(Float.isNaN(got[i]), act + " of " + a[i] + " gave " + got[i] + ", not NaN");
                        } else if (Double.isInfinite(want)) {
                            assertEquals(want, got[i], 0, ops.backend() + " " + act + "(" + a[i] + ")");
                        } else {
                            assertEquals(want, got[i], 2e-6 * Math.abs(want) + 1e-30, ops.backend() + " " + act + "(" + a[i] + ")");
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void layerNormFollowsTorch(Ops ops) {
        Random rng = new Random(42);
        for (long[] shape : SHAPES) {
            Tensor x = TestSupport.random(rng, shape);
            // a large common offset: a one-pass variance would cancel catastrophically
            for (int i = 0; i < x.array().length; i++) x.array()[i] += 1000f;
            int dim = (int) shape[shape.length - 1];
            Tensor w = TestSupport.random(rng, dim), b = TestSupport.random(rng, dim);
            for (boolean affine : new boolean[] {true, false}) {
                try (Tensor dx = x.to(ops.device()); Tensor dw = w.to(ops.device()); Tensor db = b.to(ops.device());
                        Tensor y = ops.layerNorm(dx, affine ? dw : null, affine ? db : null, 1e-5)) {
                    float[] got = y.toArray(), a = x.array();
                    for (int r = 0; r < a.length / Math.max(dim, 1); r++) {
                        double mean = 0, variance = 0;
                        for (int i = 0; i < dim; i++) mean += a[r * dim + i];
                        mean /= dim;
                        for (int i = 0; i < dim; i++) variance += (a[r * dim + i] - mean) * (a[r * dim + i] - mean);
                        double inverse = 1 / Math.sqrt(variance / dim + 1e-5);
                        for (int i = 0; i < dim; i++) {
                            double want = (a[r * dim + i] - mean) * inverse * (affine ? w.array()[i] : 1) + (affine ? b.array()[i] : 0);
                            // the inputs carry 1000 +- 10 in float: their own rounding is 6e-5 of the spread
                            assertEquals(want, got[r * dim + i], 2e-4 * (1 + Math.abs(want)),
                                    ops.backend() + " " + Shapes.toString(shape) + " row " + r + " at " + i);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void softmaxFollowsTorch(Ops ops) {
        Random rng = new Random(43);
        for (long[] shape : SHAPES) {
            Tensor x = TestSupport.random(rng, shape);
            float[] a = x.array();
            for (int i = 0; i < a.length; i++) a[i] *= 10; // logits up to +-100: no overflow allowed
            if (a.length > 8) a[3] = Float.NEGATIVE_INFINITY;
            try (Tensor dx = x.to(ops.device()); Tensor y = ops.softmax(dx)) {
                float[] got = y.toArray();
                int dim = (int) shape[shape.length - 1];
                for (int r = 0; r < a.length / Math.max(dim, 1); r++) {
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int i = 0; i < dim; i++) max = Math.max(max, a[r * dim + i]);
                    for (int i = 0; i < dim; i++) sum += Math.exp(a[r * dim + i] - max);
                    for (int i = 0; i < dim; i++) {
                        double want = Math.exp(a[r * dim + i] - max) / sum;
                        assertEquals(want, got[r * dim + i], 1e-5 * want + 1e-9, ops.backend() + " row " + r + " at " + i);
                    }
                }
            }
        }
        // a row with no finite logit, and one with a NaN, give NaN as in torch
        try (Tensor x = Tensor.of(new float[] {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY, 1, Float.NaN}, 2, 2)
                .to(ops.device()); Tensor y = ops.softmax(x)) {
            for (float v : y.toArray()) assertTrue(Float.isNaN(v), "expected NaN, got " + v);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void badArgumentsAreRefused(Ops ops) {
        try (Tensor x = Tensor.zeros(3, 4).to(ops.device()); Tensor w = Tensor.zeros(5).to(ops.device());
                Tensor scalar = Tensor.zeros().to(ops.device())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ops.layerNorm(x, w, null, 1e-5));
            assertTrue(e.getMessage().contains("[5]") && e.getMessage().contains("[3, 4]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ops.layerNorm(x, null, null, 0));
            for (double eps : new double[] {1e-50, 1e300}) { // positive and finite, but 0 and inf as the float the kernels take
                assertTrue(assertThrows(IllegalArgumentException.class, () -> ops.layerNorm(x, null, null, eps)).getMessage()
                        .contains("eps"));
            }
            assertThrows(IllegalArgumentException.class, () -> ops.layerNorm(scalar, null, null, 1e-5));
            assertThrows(IllegalArgumentException.class, () -> ops.softmax(scalar));
            assertThrows(NullPointerException.class, () -> ops.activation(x, null));
            assertThrows(NullPointerException.class, () -> ops.activation(null, Activation.RELU));
        }
    }
}
