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
