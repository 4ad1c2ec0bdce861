package org.mmfuse.backend;

import java.util.List;
import org.mmfuse.Activation;
import org.mmfuse.Backend;
import org.mmfuse.CountSketch;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.PoolingOptions;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;

/** Plain loops on one thread: the readable reference that every other backend is tested against. */
final class ScalarOps extends HostOps {
    @Override
    public Backend backend() {
        return Backend.SCALAR;
    }

    @Override
    protected void gather(BlockCopy plan, List<Tensor> pieces, Tensor whole) {
        if (plan.elements() == 0) return; // also spares a loop over rows of nothing
        float[] out = whole.array();
        int wholeWidth = (int) plan.wholeWidth;
        for (int r = 0; r < plan.rows; r++) {
            for (int i = 0; i < pieces.size(); i++) {
                float[] in = pieces.get(i).array();
                int width = (int) plan.width(i), offset = (int) plan.offset(i);
                for (int c = 0; c < width; c++) out[r * wholeWidth + offset + c] = in[r * width + c];
            }
        }
    }

    /** Each output is a dot product summed in double: slow, but the most accurate reference of the three. */
    @Override
    protected void gemm(Gemm g, Tensor a, Tensor b, Tensor bias, Tensor c) {
        float[] x = a.array(), y = b.array(), out = c.array(), add = bias == null ? null : bias.array();
        int m = (int) g.m, n = (int) g.n, k = (int) g.k;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = add == null ? 0 : add[j];
                for (int p = 0; p < k; p++) {
                    float yv = g.transposedB ? y[j * k + p] : y[p * n + j];
                    sum += (double) x[i * k + p] * yv;
                }
                out[i * n + j] = (float) sum;
            }
        }
    }

    /** Each query's scores, softmax and weighted sum in double, two passes over its keys. */
    @Override
    protected void attention(AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor mask, Tensor bias, Tensor out,
            Tensor lse, Tensor weights) {
        float[] qa = q.array(), ka = k.array(), va = v.array(), o = out.array();
        float[] m = mask == null ? null : mask.array(), add = bias == null ? null : bias.array();
        float[] logSumExp = lse == null ? null : lse.array(), w = weights == null ? null : weights.array();
        double[] score = new double[s.keys];
        for (int b = 0; b < s.batch; b++) {
            for (int h = 0; h < s.heads; h++) {
                for (int i = 0; i < s.queries; i++) {
                    int qAt = ((b * s.queries + i) * s.heads + h) * s.headDim;
                    double max = Double.NEGATIVE_INFINITY;
                    int lastKey = s.lastKey(i);
                    for (int j = 0; j < s.keys; j++) {
                        boolean attends = j <= lastKey && (m == null || m[b * s.keys + j] != 0);
                        double dot = 0;
                        int kAt = ((b * s.keys + j) * s.heads + h) * s.headDim;
                        for (int d = 0; d < s.headDim; d++) dot += (double) qa[qAt + d] * ka[kAt + d];
                        double biased = add == null ? 0 : add[s.biasAt(b, h, i) + j * s.biasStride(3)];
                        score[j] = attends ? s.scale * dot + biased : Double.NEGATIVE_INFINITY;
                        max = Math.max(max, score[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < s.keys; j++) {
                        // a key the row may not see weighs exactly 0, even when a NaN made the row's max NaN
                        score[j] = score[j] == Double.NEGATIVE_INFINITY ? 0 : Math.exp(score[j] - max);
                        sum += score[j];
                    }
                    int oAt = ((b * s.queries + i) * s.heads + h) * s.valueDim;
                    for (int d = 0; d < s.valueDim; d++) {
                        double acc = 0;
                        for (int j = 0; j < s.keys; j++) acc += score[j] * va[((b * s.keys + j) * s.heads + h) * s.valueDim + d];
                        o[oAt + d] = sum == 0 ? 0f : (float) (acc / sum);
                    }
                    int row = (b * s.heads + h) * s.queries + i;
                    if (logSumExp != null) logSumExp[row] = (float) (sum == 0 ? Double.NEGATIVE_INFINITY : max + Math.log(sum));
                    if (w != null) {
                        for (int j = 0; j < s.keys; j++) {
                            w[row * s.keys + j] = sum == 0 || score[j] == 0 ? 0f : (float) (score[j] / sum); // hidden: 0
                        }
                    }
                }
            }
        }
    }

    @Override
    protected void scatter(BlockCopy plan, Tensor whole, List<Tensor> pieces) {
        if (plan.elements() == 0) return;
        float[] in = whole.array();
        int wholeWidth = (int) plan.wholeWidth;
        for (int r = 0; r < plan.rows; r++) {
            for (int i = 0; i < pieces.size(); i++) {
                float[] out = pieces.get(i).array();
                int width = (int) plan.width(i), offset = (int) plan.offset(i);
                for (int c = 0; c < width; c++) out[r * width + c] = in[r * wholeWidth + offset + c];
            }
        }
    }

    /** Each sample's C1 x C2 sums in double, then finished in double. */
    @Override
    protected void bilinearPool(PoolShape s, Tensor x, Tensor y, boolean symmetric, PoolingOptions options, Tensor out) {
        float[] xa = x.array(), ya = y.array(), o = out.array();
        int n = s.locations(), c1 = s.xDim(), c2 = s.yDim();
        if (s.batch() == 0) return; // C1 x C2 may then pass an array's size: the result is empty
        double[] z = new double[c1 * c2];
        for (int b = 0; b < s.batch(); b++) {
            for (int i = 0; i < c1; i++) {
                for (int j = 0; j < c2; j++) {
                    double sum = 0;
                    for (int l = 0; l < n; l++) sum += (double) xa[(b * n + l) * c1 + i] * ya[(b * n + l) * c2 + j];
                    z[i * c2 + j] = sum;
                }
            }
            finish(z, n, options, o, b * z.length);
        }
    }

    /** y_k = Σ_i Σ_j x1_i W_kij x2_j + b_k in double. */
    @Override
    protected void bilinear(BilinearShape s, Tensor x1, Tensor x2, Tensor weight, Tensor bias, Tensor out) {
        float[] a = x1.array(), c = x2.array(), w = weight.array(), o = out.array();
        float[] add = bias == null ? null : bias.array();
        int in1 = s.in1(), in2 = s.in2();
        for (int r = 0; r < s.rows(); r++) {
            for (int k = 0; k < s.out(); k++) {
                double sum = add == null ? 0 : add[k];
                if (in1 == 0 || in2 == 0) { // an empty sum: the bias alone, whatever NaN the other input holds
                    o[r * s.out() + k] = (float) sum;
                    continue;
                }
                for (int i = 0; i < in1; i++) {
                    double inner = 0;
                    for (int j = 0; j < in2; j++) inner += (double) w[(k * in1 + i) * in2 + j] * c[r * in2 + j];
                    sum += a[r * in1 + i] * inner;
                }
                o[r * s.out() + k] = (float) sum;
            }
        }
    }

    /**
     * The count sketch of each location's outer product, summed over locations: term x_i y_j lands on
     * (h_x(i) + h_y(j)) mod d with sign s_x(i) s_y(j), which is the circular convolution of the two
     * sketches without any transform.
     */
    @Override
    protected void compactBilinearPool(PoolShape s, Tensor x, Tensor y, CountSketch sx, CountSketch sy,
            PoolingOptions options, Tensor out) {
        float[] xa = x.array(), ya = y.array(), o = out.array();
        int n = s.locations(), c1 = s.xDim(), c2 = s.yDim(), d = sx.outputDim();
        double[] z = new double[d];
        for (int b = 0; b < s.batch(); b++) {
            java.util.Arrays.fill(z, 0);
            for (int l = 0; l < n; l++) {
                int xAt = (b * n + l) * c1, yAt = (b * n + l) * c2;
                for (int i = 0; i < c1; i++) {
                    double xi = sx.sign(i) * (double) xa[xAt + i];
                    for (int j = 0; j < c2; j++) z[(sx.hash(i) + sy.hash(j)) % d] += xi * sy.sign(j) * ya[yAt + j];
                }
            }
            if (!finite(xa, b * n * c1, n * c1) || !finite(ya, b * n * c2, n * c2)) java.util.Arrays.fill(z, Double.NaN);
            finish(z, n, options, o, b * d);
        }
    }

    private static boolean finite(float[] a, int from, int length) {
        for (int i = from; i < from + length; i++) if (!Float.isFinite(a[i])) return false;
        return true;
    }

    @Override
    protected void factorizedPool(FactorizedShape s, Tensor x, Tensor y, FactorizedPoolOptions options, Tensor out) {
        float[] xa = x.array(), ya = y.array(), o = out.array();
        int width = s.stages() * s.units(), pooled = s.pooled(), k = s.factor();
        Activation act = options.activation();
        double[] expansion = new double[s.units()], z = new double[pooled];
        for (int r = 0; r < s.rows(); r++) {
            for (int st = 0; st < s.stages(); st++) {
                for (int u = 0; u < s.units(); u++) {
                    int at = r * width + st * s.units() + u;
                    double e = act.apply(xa[at]) * act.apply(ya[at]);
                    expansion[u] = st == 0 ? e : expansion[u] * e;
                }
                for (int p = 0; p < pooled; p++) {
                    double sum = 0;
                    for (int t = 0; t < k; t++) sum += expansion[p * k + t];
                    z[p] = sum;
                }
                finish(z, k, options.pooling(), o, r * s.stages() * pooled + st * pooled);
            }
        }
    }

    /** Mean over {@code terms}, signed square root, L2 normalisation as the options say, into out[at ..]. */
    private static void finish(double[] z, int terms, PoolingOptions options, float[] out, int at) {
        double sumOfSquares = 0;
        for (int i = 0; i < z.length; i++) {
            double v = options.mean() && terms > 0 ? z[i] / terms : z[i];
            if (options.signedSqrt()) v = Math.signum(v) * Math.sqrt(Math.abs(v) + options.eps());
            z[i] = v;
            sumOfSquares += v * v;
        }
        double scale = options.l2Normalize() ? 1 / Math.max(Math.sqrt(sumOfSquares), 1e-12) : 1;
        for (int i = 0; i < z.length; i++) out[at + i] = (float) (z[i] * scale);
    }

    @Override
    protected void activation(Tensor x, Activation activation, Tensor out) {
        float[] a = x.array(), o = out.array();
        for (int i = 0; i < a.length; i++) o[i] = (float) activation.apply(a[i]);
    }

    /** Mean, then the biased variance of the deviations, in double. */
    @Override
    protected void layerNorm(Tensor x, long rows, int dim, Tensor weight, Tensor bias, float eps, Tensor out) {
        float[] a = x.array(), o = out.array(), w = weight == null ? null : weight.array(), b = bias == null ? null : bias.array();
        for (int r = 0; r < rows; r++) {
            int at = r * dim;
            double mean = 0, variance = 0;
            for (int i = 0; i < dim; i++) mean += a[at + i];
            mean /= dim;
            for (int i = 0; i < dim; i++) variance += (a[at + i] - mean) * (a[at + i] - mean);
            double inverse = 1 / Math.sqrt(variance / dim + eps);
            for (int i = 0; i < dim; i++) {
                double v = (a[at + i] - mean) * inverse;
                o[at + i] = (float) (v * (w == null ? 1 : w[i]) + (b == null ? 0 : b[i]));
            }
        }
    }

    @Override
    protected void softmax(Tensor x, long rows, int dim, Tensor out) {
        float[] a = x.array(), o = out.array();
        for (int r = 0; r < rows; r++) {
            int at = r * dim;
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int i = 0; i < dim; i++) max = Math.max(max, a[at + i]);
            for (int i = 0; i < dim; i++) sum += Math.exp(a[at + i] - max);
            for (int i = 0; i < dim; i++) o[at + i] = (float) (Math.exp(a[at + i] - max) / sum);
        }
    }

    /** Sums (or the max) in double over the kept positions, position by position. */
    @Override
    protected void poolSequence(long batch, long length, long channels, Tensor x, Tensor mask, SequencePooling mode,
            Tensor out) {
        float[] in = x.array(), keep = mask == null ? null : mask.array(), o = out.array();
        int n = (int) length, c = (int) channels;
        for (int b = 0; b < batch; b++) {
            for (int j = 0; j < c; j++) {
                double acc = mode == SequencePooling.MAX ? Double.NEGATIVE_INFINITY : 0;
                int kept = 0;
                for (int p = 0; p < (mode == SequencePooling.FIRST ? Math.min(n, 1) : n); p++) {
                    if (keep != null && keep[b * n + p] == 0) continue;
                    double v = in[(b * n + p) * c + j];
                    acc = mode == SequencePooling.MAX ? Math.max(acc, v) : acc + v; // Math.max keeps NaN
                    kept++;
                }
                o[b * c + j] = kept == 0 ? 0f : (float) (mode == SequencePooling.MEAN ? acc / kept : acc);
            }
        }
    }

    @Override
    protected void weightedSum(long rows, long inner, List<Tensor> xs, Tensor weights, Tensor out) {
        float[] w = weights.array(), o = out.array();
        int m = xs.size(), width = (int) inner;
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < width; j++) {
                double sum = 0;
                for (int k = 0; k < m; k++) {
                    float weight = w[r * m + k];
                    if (weight != 0) sum += (double) weight * xs.get(k).array()[r * width + j];
                }
                o[r * width + j] = (float) sum;
            }
        }
    }

    @Override
    protected void normalizeRows(long rows, long dim, Tensor x, PoolingOptions options, Tensor out) {
        float[] in = x.array(), o = out.array();
        int d = (int) dim;
        double[] z = new double[d];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < d; j++) z[j] = in[r * d + j];
            finish(z, 1, options, o, r * d);
        }
    }
}
