package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.mmfuse.AttentionOptions;
import org.mmfuse.Device;
import org.mmfuse.Tensor;

/**
 * The folded kernel against attention over keys and values projected first, in double precision,
 * key bias included (the fold drops it: it cannot change a softmax). Odd sizes, one of everything,
 * masked keys and a batch element whose keys are all masked.
 */
class FoldedAttentionTest {
    @Test
    void foldedEqualsProjectingFirst() {
        Random rng = new Random(41);
        // {B, Lq, Lk, H, Dh, kdim, vdim, masked}
        int[][] shapes = {{2, 5, 37, 3, 7, 53, 41, 1}, {1, 1, 1, 1, 1, 1, 1, 0}, {3, 32, 196, 8, 16, 200, 120, 1},
            {2, 17, 9, 2, 13, 33, 16, 0}, {4, 1, 50, 4, 8, 64, 64, 1}, {2, 3, 5, 1, 3, 300, 7, 1}};
        for (int[] sh : shapes) {
            int b = sh[0], lq = sh[1], lk = sh[2], h = sh[3], dh = sh[4], kdim = sh[5], vdim = sh[6], e = h * dh;
            float[] q = random(rng, b * lq * e, 1), key = random(rng, b * lk * kdim, 1), value = random(rng, b * lk * vdim, 1);
            float[] kw = random(rng, e * kdim, 0.3f), vw = random(rng, e * vdim, 0.3f);
            float[] kb = random(rng, e, 1), vb = random(rng, e, 1);
            float[] attend = null;
            if (sh[7] == 1) {
                attend = new float[b * lk];
                for (int i = 0; i < attend.length; i++) attend[i] = rng.nextInt(4) == 0 ? 0f : 1f;
                Arrays.fill(attend, (b - 1) * lk, b * lk, 0f); // the last batch element attends to nothing
            }
            float scale = (float) (1 / Math.sqrt(dh));
            float[] out = new float[b * lq * e], weights = new float[b * h * lq * lk];
            FoldedAttention.run(b, lq, lk, h, dh, kdim, vdim, scale, q, key, kw, value, vw, vb, attend, out, weights);

            double[] k = project(key, kw, kb, b * lk, kdim, e), v = project(value, vw, vb, b * lk, vdim, e);
            for (int bi = 0; bi < b; bi++) {
                for (int hi = 0; hi < h; hi++) {
                    for (int i = 0; i < lq; i++) {
                        double[] p = new double[lk];
                        double max = Double.NEGATIVE_INFINITY, sum = 0;
                        for (int j = 0; j < lk; j++) {
                            if (attend != null && attend[bi * lk + j] == 0f) {
                                p[j] = Double.NEGATIVE_INFINITY;
                                continue;
                            }
                            double s = 0;
                            for (int d = 0; d < dh; d++) s += (double) q[(bi * lq + i) * e + hi * dh + d] * k[(bi * lk + j) * e + hi * dh + d];
                            p[j] = s * scale;
                            max = Math.max(max, p[j]);
                        }
                        for (int j = 0; j < lk; j++) sum += p[j] = max == Double.NEGATIVE_INFINITY ? 0 : Math.exp(p[j] - max);
                        String where = Arrays.toString(sh) + " b " + bi + " h " + hi + " query " + i;
                        for (int j = 0; j < lk; j++) {
                            double want = sum == 0 ? 0 : p[j] / sum;
                            assertEquals(want, weights[((bi * h + hi) * lq + i) * lk + j], 1e-5, where + " weight " + j);
                        }
                        double[] o = new double[dh];
                        double largest = 1e-30;
                        for (int d = 0; d < dh; d++) {
                            for (int j = 0; j < lk; j++) if (sum > 0) o[d] += p[j] / sum * v[(bi * lk + j) * e + hi * dh + d];
                            largest = Math.max(largest, Math.abs(o[d]));
                        }
                        for (int d = 0; d < dh; d++) {
                            float got = out[(bi * lq + i) * e + hi * dh + d];
                            if (sum == 0) assertEquals(0f, got, where + ": no key, zeros");
                            else assertEquals(o[d], got, 2e-5 * largest + 1e-5 * Math.abs(o[d]), where + " column " + d);
                        }
                    }
                }
            }
        }
    }

    @Test
    void takesOnlyWellFormedCallsThatSaveFlops() {
        Random rng = new Random(42);
        int threads = CpuThreads.SHARED.threads();
        Tensor q = tensor(rng, threads, 32, 512), regions = tensor(rng, threads, 196, 2048);
        Tensor kw = tensor(rng, 512, 2048), vw = tensor(rng, 512, 2048), bias = tensor(rng, 512);
        AttentionOptions eight = AttentionOptions.DEFAULT.heads(8);
        // the cross-attention model's shape: 0.65 of the flops
        assertTrue(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight, Device.CPU));
        assertTrue(FoldedAttention.takes(q, regions, kw, null, regions, vw, null, eight.withWeights(), Device.CPU));
        // what the kernel does not do, or does not do cheaper
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight.withLogSumExp(), Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight.causal(true), Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, AttentionOptions.DEFAULT, Device.CPU));
        Tensor longQueries = tensor(rng, threads, 1024, 512);
        assertFalse(FoldedAttention.takes(longQueries, regions, kw, bias, regions, vw, bias, eight, Device.CPU));
        // malformed: left to the projections and attention, which name the argument
        assertFalse(FoldedAttention.takes(q, regions, vw, bias, regions, tensor(rng, 512, 2047), bias, eight, Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, tensor(rng, 511), regions, vw, bias, eight, Device.CPU));
        Tensor closed = tensor(rng, 512, 2048);
        closed.close();
        assertFalse(FoldedAttention.takes(q, regions, closed, bias, regions, vw, bias, eight, Device.CPU));
    }

    /** rows of x [rows, in] times wᵀ (w [out, in]) plus bias, in double. */
    private static double[] project(float[] x, float[] w, float[] bias, int rows, int in, int out) {
        double[] y = new double[rows * out];
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double s = bias[o];
                for (int i = 0; i < in; i++) s += (double) x[r * in + i] * w[o * in + i];
                y[r * out + o] = s;
            }
        }
        return y;
    }

    private static float[] random(Random rng, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) rng.nextGaussian() * scale;
        return a;
    }

    private static Tensor tensor(Random rng, long... shape) {
        int n = 1;
        for (long s : shape) n *= (int) s;
        return Tensor.of(random(rng, n, 1), shape);
    }
}
