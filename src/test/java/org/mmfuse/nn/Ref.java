package org.mmfuse.nn;

import java.util.Map;
import org.mmfuse.Activation;
import org.mmfuse.Tensor;

/**
 * The fusion layers' formulas written out in double, as their reference implementations state them,
 * sharing no code with the library: rows are samples, {@code s} is the state dict by full name.
 */
final class Ref {
    private Ref() {}

    static double[] values(Tensor t) {
        float[] f = t.toArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    static double[][] rows(Tensor t) {
        int n = (int) t.size(0), w = (int) (t.numel() / Math.max(n, 1));
        double[] v = values(t);
        double[][] r = new double[n][w];
        for (int i = 0; i < n; i++) System.arraycopy(v, i * w, r[i], 0, w);
        return r;
    }

    /** nn.Linear {@code name}: x Wᵀ + b (b if the state has it). */
    static double[][] linear(Map<String, Tensor> s, String name, double[][] x) {
        Tensor w = s.get(name + ".weight");
        Tensor b = s.get(name + ".bias");
        int out = (int) w.size(0), in = (int) w.size(1);
        double[] wv = values(w), bv = b == null ? null : values(b);
        double[][] y = new double[x.length][out];
        for (int r = 0; r < x.length; r++) {
            for (int o = 0; o < out; o++) {
                double sum = bv == null ? 0 : bv[o];
                for (int i = 0; i < in; i++) sum += x[r][i] * wv[o * in + i];
                y[r][o] = sum;
            }
        }
        return y;
    }

    static double[][] act(double[][] x, Activation a) {
        double[][] y = new double[x.length][];
        for (int r = 0; r < x.length; r++) {
            y[r] = new double[x[r].length];
            for (int i = 0; i < x[r].length; i++) y[r][i] = a.apply(x[r][i]);
        }
        return y;
    }

    static double[][] map2(double[][] a, double[][] b, java.util.function.DoubleBinaryOperator f) {
        double[][] y = new double[a.length][];
        for (int r = 0; r < a.length; r++) {
            y[r] = new double[a[r].length];
            for (int i = 0; i < a[r].length; i++) y[r][i] = f.applyAsDouble(a[r][i], b[r][i]);
        }
        return y;
    }

    /** sqrt(relu(z)) - sqrt(relu(-z)), then z / max(||z||, 1e-12), row by row. */
    static double[][] powerNorm(double[][] z) {
        double[][] y = new double[z.length][];
        for (int r = 0; r < z.length; r++) {
            y[r] = new double[z[r].length];
            double norm = 0;
            for (int i = 0; i < z[r].length; i++) {
                y[r][i] = Math.sqrt(Math.max(z[r][i], 0)) - Math.sqrt(Math.max(-z[r][i], 0));
                norm += y[r][i] * y[r][i];
            }
            norm = Math.max(Math.sqrt(norm), 1e-12);
            for (int i = 0; i < z[r].length; i++) y[r][i] /= norm;
        }
        return y;
    }

    /** z.view(B, units, k).sum(2): sums of k consecutive values. */
    static double[][] sumConsecutive(double[][] z, int k) {
        double[][] y = new double[z.length][z[0].length / k];
        for (int r = 0; r < z.length; r++) for (int i = 0; i < z[r].length; i++) y[r][i / k] += z[r][i];
        return y;
    }

    /** z.view(B, groups, units).sum(1): sums strided by units. */
    static double[][] sumStrided(double[][] z, int groups) {
        int units = z[0].length / groups;
        double[][] y = new double[z.length][units];
        for (int r = 0; r < z.length; r++) for (int i = 0; i < z[r].length; i++) y[r][i % units] += z[r][i];
        return y;
    }

    static double[][] concat(double[][] a, double[][] b) {
        double[][] y = new double[a.length][];
        for (int r = 0; r < a.length; r++) {
            y[r] = new double[a[r].length + b[r].length];
            System.arraycopy(a[r], 0, y[r], 0, a[r].length);
            System.arraycopy(b[r], 0, y[r], a[r].length, b[r].length);
        }
        return y;
    }

    static double[][] columns(double[][] a, int from, int to) {
        double[][] y = new double[a.length][];
        for (int r = 0; r < a.length; r++) y[r] = java.util.Arrays.copyOfRange(a[r], from, to);
        return y;
    }

    /** nn.Bilinear {@code name}: y_k = aᵀ W_k b + bias_k. */
    static double[][] bilinear(Map<String, Tensor> s, String name, double[][] a, double[][] b) {
        Tensor w = s.get(name + ".weight");
        int k = (int) w.size(0), n1 = (int) w.size(1), n2 = (int) w.size(2);
        double[] wv = values(w), bv = values(s.get(name + ".bias"));
        double[][] y = new double[a.length][k];
        for (int r = 0; r < a.length; r++) {
            for (int o = 0; o < k; o++) {
                double sum = bv[o];
                for (int i = 0; i < n1; i++) for (int j = 0; j < n2; j++) sum += a[r][i] * wv[(o * n1 + i) * n2 + j] * b[r][j];
                y[r][o] = sum;
            }
        }
        return y;
    }

    /** block.bootstrap's MLP {@code name}: Linear layers linears.j, the activation between them. */
    static double[][] mlp(Map<String, Tensor> s, String name, double[][] x, int layers, Activation a) {
        for (int j = 0; j < layers; j++) {
            x = linear(s, name + ".linears." + j, x);
            if (j < layers - 1) x = act(x, a);
        }
        return x;
    }

    static double[][] softmax(double[][] x) {
        double[][] y = new double[x.length][];
        for (int r = 0; r < x.length; r++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (double v : x[r]) max = Math.max(max, v);
            y[r] = new double[x[r].length];
            for (int i = 0; i < x[r].length; i++) sum += y[r][i] = Math.exp(x[r][i] - max);
            for (int i = 0; i < x[r].length; i++) y[r][i] /= sum;
        }
        return y;
    }

    /**
     * nn.MultiheadAttention(batch_first=True) named {@code name}: query [Lq][E] of one sample attending to
     * context [Lk][C] (keys and values), keep[k] false hiding key k; a query with no key gets zeros
     * before out_proj (MMFuse's rule).
     */
    static double[][] attention(Map<String, Tensor> s, String name, double[][] query, double[][] context, boolean[] keep,
            int heads) {
        int e = query[0].length, dh = e / heads;
        double[][] q, k, v;
        if (s.containsKey(name + ".in_proj_weight")) {
            double[] w = values(s.get(name + ".in_proj_weight")), b = values(s.get(name + ".in_proj_bias"));
            q = project(query, w, b, 0, e);
            k = project(context, w, b, e, e);
            v = project(context, w, b, 2 * e, e);
        } else {
            double[] b = values(s.get(name + ".in_proj_bias"));
            q = project(query, values(s.get(name + ".q_proj_weight")), java.util.Arrays.copyOfRange(b, 0, e), 0, e);
            k = project(context, values(s.get(name + ".k_proj_weight")), java.util.Arrays.copyOfRange(b, e, 2 * e), 0, e);
            v = project(context, values(s.get(name + ".v_proj_weight")), java.util.Arrays.copyOfRange(b, 2 * e, 3 * e), 0, e);
        }
        double[][] heads_ = new double[query.length][e];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < query.length; i++) {
                double[] score = new double[context.length];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < context.length; j++) {
                    if (!keep[j]) continue;
                    double d = 0;
                    for (int c = 0; c < dh; c++) d += q[i][h * dh + c] * k[j][h * dh + c];
                    score[j] = d / Math.sqrt(dh);
                    max = Math.max(max, score[j]);
                }
                double sum = 0;
                for (int j = 0; j < context.length; j++) if (keep[j]) sum += score[j] = Math.exp(score[j] - max);
                for (int j = 0; j < context.length; j++) {
                    if (!keep[j]) continue;
                    for (int c = 0; c < dh; c++) heads_[i][h * dh + c] += score[j] / sum * v[j][h * dh + c];
                }
            }
        }
        return linear(s, name + ".out_proj", heads_);
    }

    /** rows [from, from + n) of a packed weight applied to x, plus the bias's same rows. */
    private static double[][] project(double[][] x, double[] w, double[] b, int from, int n) {
        int in = x[0].length;
        double[][] y = new double[x.length][n];
        for (int r = 0; r < x.length; r++) {
            for (int o = 0; o < n; o++) {
                double sum = b[from + o];
                for (int i = 0; i < in; i++) sum += x[r][i] * w[(from + o) * in + i];
                y[r][o] = sum;
            }
        }
        return y;
    }
}
