package org.mmfuse.backend;

import java.util.List;
import org.mmfuse.Backend;
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
                        double biased = add == null ? 0 : add[s.biasAt(b, h, i) + j * s.biasStrides[3]];
                        score[j] = attends ? s.scale * dot + biased : Double.NEGATIVE_INFINITY;
                        max = Math.max(max, score[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < s.keys; j++) {
                        score[j] = max == Double.NEGATIVE_INFINITY ? 0 : Math.exp(score[j] - max);
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
                        for (int j = 0; j < s.keys; j++) w[row * s.keys + j] = sum == 0 ? 0f : (float) (score[j] / sum);
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
}
