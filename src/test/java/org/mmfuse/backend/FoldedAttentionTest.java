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
    // {B, Lq, Lk, H, Dh, kdim, vdim, masked}; batch 1 (fewer elements than threads) spreads the mean's heads
    private static final int[][] SHAPES = {{2, 5, 37, 3, 7, 53, 41, 1}, {1, 1, 1, 1, 1, 1, 1, 0},
        {3, 32, 196, 8, 16, 200, 120, 1}, {2, 17, 9, 2, 13, 33, 16, 0}, {4, 1, 50, 4, 8, 64, 64, 1},
        {2, 3, 5, 1, 3, 300, 7, 1}, {1, 7, 30, 5, 6, 40, 33, 0}};

    @Test
    void foldedEqualsProjectingFirst() {
        Random rng = new Random(41);
        for (int[] sh : SHAPES) {
            Case c = new Case(rng, sh);
            float[] out = new float[c.b * c.lq * c.e], weights = new float[c.b * c.h * c.lq * c.lk];
            FoldedAttention.run(c.b, c.lq, c.lk, c.h, c.dh, c.kdim, c.vdim, c.scale, c.q, c.key, c.kw, c.value, c.vw, c.vb,
                    c.attend, out, weights);
            for (int bi = 0; bi < c.b; bi++) {
                for (int i = 0; i < c.lq; i++) {
                    String where = Arrays.toString(sh) + " b " + bi + " query " + i;
                    for (int hi = 0; hi < c.h; hi++) {
                        for (int j = 0; j < c.lk; j++) {
                            int at = ((bi * c.h + hi) * c.lq + i) * c.lk + j;
                            assertEquals(c.weights[at], weights[at], 1e-5, where + " head " + hi + " weight " + j);
                        }
                    }
                    int row = (bi * c.lq + i) * c.e;
                    assertRow(c.out, row, out, row, c.e, c.attends(bi), where);
                }
            }
        }
    }

    @Test
    void meanOverQueriesEqualsTheMeanOfTheOutputs() {
        Random rng = new Random(43);
        for (int[] sh : SHAPES) {
            Case c = new Case(rng, sh);
            // some queries dropped; the first batch element keeps none when there is more than one
            float[] queryMask = new float[c.b * c.lq];
            for (int i = 0; i < queryMask.length; i++) queryMask[i] = rng.nextInt(3) == 0 ? 0f : 1f;
            if (c.b > 1) Arrays.fill(queryMask, 0, c.lq, 0f);
            for (float[] kept : new float[][] {null, queryMask}) {
                float[] out = new float[c.b * c.e];
                Arrays.fill(out, Float.NaN); // every element written
                FoldedAttention.runMean(c.b, c.lq, c.lk, c.h, c.dh, c.kdim, c.vdim, c.scale, c.q, c.key, c.kw, c.value,
                        c.vw, c.vb, c.attend, kept, out);
                double[] mean = new double[c.b * c.e];
                boolean[] any = new boolean[c.b];
                for (int bi = 0; bi < c.b; bi++) {
                    int count = 0;
                    for (int i = 0; i < c.lq; i++) {
                        if (kept != null && kept[bi * c.lq + i] == 0f) continue;
                        count++;
                        for (int u = 0; u < c.e; u++) mean[bi * c.e + u] += c.out[(bi * c.lq + i) * c.e + u];
                    }
                    for (int u = 0; u < c.e; u++) mean[bi * c.e + u] /= Math.max(count, 1);
                    any[bi] = count > 0 && c.attends(bi);
                }
                for (int bi = 0; bi < c.b; bi++) {
                    assertRow(mean, bi * c.e, out, bi * c.e, c.e, any[bi],
                            Arrays.toString(sh) + (kept == null ? "" : " with a query mask") + " b " + bi);
                }
            }
        }
    }

    /** got[at ..] against want[from ..], e values, or all zeros where {@code attends} is false. */
    private static void assertRow(double[] want, int from, float[] got, int at, int e, boolean attends, String where) {
        double largest = 1e-30;
        for (int u = 0; u < e; u++) largest = Math.max(largest, Math.abs(want[from + u]));
        for (int u = 0; u < e; u++) {
            if (!attends) assertEquals(0f, got[at + u], where + ": no key or no query, zeros");
            else assertEquals(want[from + u], got[at + u], 2e-5 * largest + 1e-5 * Math.abs(want[from + u]), where + " unit " + u);
        }
    }

    /**
     * Random inputs of one shape (the last batch element's keys all masked where the shape masks) and the
     * attention over keys and values projected first, in double precision: out [B, Lq, E] (zeros for a
     * query with no key) and weights [B, H, Lq, Lk].
     */
    private static final class Case {
        final int b, lq, lk, h, dh, kdim, vdim, e;
        final float scale;
        final float[] q, key, value, kw, vw, kb, vb, attend;
        final double[] out, weights;

        Case(Random rng, int[] sh) {
            b = sh[0];
            lq = sh[1];
            lk = sh[2];
            h = sh[3];
            dh = sh[4];
            kdim = sh[5];
            vdim = sh[6];
            e = h * dh;
            q = random(rng, b * lq * e, 1);
            key = random(rng, b * lk * kdim, 1);
            value = random(rng, b * lk * vdim, 1);
            kw = random(rng, e * kdim, 0.3f);
            vw = random(rng, e * vdim, 0.3f);
            kb = random(rng, e, 1);
            vb = random(rng, e, 1);
            if (sh[7] == 1) {
                attend = new float[b * lk];
                for (int i = 0; i < attend.length; i++) attend[i] = rng.nextInt(4) == 0 ? 0f : 1f;
                Arrays.fill(attend, (b - 1) * lk, b * lk, 0f); // the last batch element attends to nothing
            } else {
                attend = null;
            }
            scale = (float) (1 / Math.sqrt(dh));
            out = new double[b * lq * e];
            weights = new double[b * h * lq * lk];
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
                        if (sum == 0) continue;
                        for (int j = 0; j < lk; j++) {
                            weights[((bi * h + hi) * lq + i) * lk + j] = p[j] / sum;
                            for (int d = 0; d < dh; d++) {
                                out[(bi * lq + i) * e + hi * dh + d] += p[j] / sum * v[(bi * lk + j) * e + hi * dh + d];
                            }
                        }
                    }
                }
            }
        }

        boolean attends(int bi) {
            if (attend == null) return true;
            for (int j = 0; j < lk; j++) if (attend[bi * lk + j] != 0f) return true;
            return false;
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
        assertTrue(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight, false, null, Device.CPU));
        assertTrue(FoldedAttention.takes(q, regions, kw, null, regions, vw, null, eight.withWeights(), false, null, Device.CPU));
        // averaged over the queries, with or without a query mask; never with weights
        assertTrue(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight, true, null, Device.CPU));
        Tensor kept = tensor(rng, threads, 32);
        assertTrue(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight, true, kept, Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight.withWeights(), true, null,
                Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight, true, tensor(rng, threads, 31),
                Device.CPU));
        // what the kernel does not do, or does not do cheaper
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight.withLogSumExp(), false, null, Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, eight.causal(true), false, null, Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, bias, regions, vw, bias, AttentionOptions.DEFAULT, false, null, Device.CPU));
        Tensor longQueries = tensor(rng, threads, 1024, 512);
        assertFalse(FoldedAttention.takes(longQueries, regions, kw, bias, regions, vw, bias, eight, false, null, Device.CPU));
        // malformed: left to the projections and attention, which name the argument
        assertFalse(FoldedAttention.takes(q, regions, vw, bias, regions, tensor(rng, 512, 2047), bias, eight, false, null, Device.CPU));
        assertFalse(FoldedAttention.takes(q, regions, kw, tensor(rng, 511), regions, vw, bias, eight, false, null, Device.CPU));
        Tensor closed = tensor(rng, 512, 2048);
        closed.close();
        assertFalse(FoldedAttention.takes(q, regions, closed, bias, regions, vw, bias, eight, false, null, Device.CPU));
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
