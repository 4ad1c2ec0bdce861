package org.mmfuse.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import java.util.Arrays;
import org.mmfuse.Activation;
import org.mmfuse.PoolingOptions;
import org.mmfuse.SequencePooling;

/**
 * Activations, layer norm, softmax and the small fusion helpers (sequence pooling, weighted sums, row
 * normalisation) on the CPU: memory-bound passes spread over the cores by rows.
 */
final class VectorElementwise {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Elements per task: enough to outweigh handing a task to another core. */
    private static final int CHUNK = 1 << 15;

    private VectorElementwise() {}

    static void activation(float[] x, Activation activation, float[] out) {
        int n = x.length, tasks = CpuThreads.tasks(n, CHUNK);
        CpuThreads.SHARED.run(tasks, t -> {
            int end = CpuThreads.end(n, t, CHUNK);
            for (int i = t * CHUNK; i < end; i += L) {
                VectorMask<Float> m = S.indexInRange(i, end);
                VectorMath.activate(FloatVector.fromArray(S, x, i, m), activation).intoArray(out, i, m);
            }
        });
    }

    /** Row by row: the mean, the biased variance of the deviations (two passes, no cancellation), the affine map. */
    static void layerNorm(float[] x, int rows, int dim, float[] weight, float[] bias, float eps, float[] out) {
        int rowsPerTask = Math.max(1, CHUNK / Math.max(dim, 1)), tasks = CpuThreads.tasks(rows, rowsPerTask);
        CpuThreads.SHARED.run(tasks, t -> {
            for (int r = t * rowsPerTask; r < CpuThreads.end(rows, t, rowsPerTask); r++) {
                int at = r * dim;
                float mean = sum(x, at, dim) / dim;
                float inverse = (float) (1 / Math.sqrt(squaredDeviations(x, at, dim, mean) / dim + eps));
                normalize(x, at, dim, mean, inverse, weight, bias, out);
            }
        });
    }

    private static float sum(float[] x, int at, int n) {
        FloatVector acc = FloatVector.zero(S);
        for (int i = 0; i < n; i += L) acc = acc.add(FloatVector.fromArray(S, x, at + i, S.indexInRange(i, n)));
        return VectorMath.sum(acc);
    }

    /** Σ (x - mean)² over the row. */
    private static float squaredDeviations(float[] x, int at, int n, float mean) {
        FloatVector acc = FloatVector.zero(S);
        for (int i = 0; i < n; i += L) {
            VectorMask<Float> m = S.indexInRange(i, n);
            FloatVector d = FloatVector.fromArray(S, x, at + i, m).sub(mean).blend(0f, m.not());
            acc = d.fma(d, acc);
        }
        return VectorMath.sum(acc);
    }

    private static void normalize(float[] x, int at, int n, float mean, float inverse, float[] weight, float[] bias,
            float[] out) {
        for (int i = 0; i < n; i += L) {
            VectorMask<Float> m = S.indexInRange(i, n);
            FloatVector v = FloatVector.fromArray(S, x, at + i, m).sub(mean).mul(inverse);
            if (weight != null) v = v.mul(FloatVector.fromArray(S, weight, i, m));
            if (bias != null) v = v.add(FloatVector.fromArray(S, bias, i, m));
            v.intoArray(out, at + i, m);
        }
    }

    /** Row by row: the max, then e^(x - max) stored and summed, then scaled by the sum's inverse. */
    static void softmax(float[] x, int rows, int dim, float[] out) {
        int rowsPerTask = Math.max(1, CHUNK / Math.max(dim, 1)), tasks = CpuThreads.tasks(rows, rowsPerTask);
        CpuThreads.SHARED.run(tasks, t -> {
            for (int r = t * rowsPerTask; r < CpuThreads.end(rows, t, rowsPerTask); r++) {
                int at = r * dim;
                float max = max(x, at, dim);
                float inverse = 1f / exponentials(x, at, dim, max, out);
                VectorAttention.scaleInto(out, at, inverse, out, at, dim);
            }
        });
    }

    private static float max(float[] x, int at, int n) {
        FloatVector acc = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int i = 0; i < n; i += L) {
            VectorMask<Float> m = S.indexInRange(i, n);
            acc = acc.lanewise(VectorOperators.MAX, FloatVector.fromArray(S, x, at + i, m), m);
        }
        return acc.reduceLanes(VectorOperators.MAX);
    }

    /** out = e^(x - max) over the row; returns their sum. */
    private static float exponentials(float[] x, int at, int n, float max, float[] out) {
        FloatVector acc = FloatVector.zero(S);
        for (int i = 0; i < n; i += L) {
            VectorMask<Float> m = S.indexInRange(i, n);
            FloatVector e = VectorMath.exp(FloatVector.fromArray(S, x, at + i, m).sub(max)).blend(0f, m.not());
            e.intoArray(out, at + i, m);
            acc = acc.add(e);
        }
        return VectorMath.sum(acc);
    }

    /**
     * Pools each sample on its own task: the kept positions' rows added (or maxed) into the output row in
     * position order, so every channel sees the same order (plain loops over channels, which the JIT
     * vectorises).
     */
    static void poolSequence(float[] x, float[] mask, int batch, int length, int channels, SequencePooling mode,
            float[] out) {
        int positions = mode == SequencePooling.FIRST ? Math.min(length, 1) : length;
        CpuThreads.SHARED.run(batch, b -> {
            int at = b * channels, kept = 0;
            Arrays.fill(out, at, at + channels, mode == SequencePooling.MAX ? Float.NEGATIVE_INFINITY : 0f);
            for (int p = 0; p < positions; p++) {
                if (mask != null && mask[b * length + p] == 0) continue;
                int from = (b * length + p) * channels;
                if (mode == SequencePooling.MAX) {
                    for (int j = 0; j < channels; j++) out[at + j] = Math.max(out[at + j], x[from + j]);
                } else {
                    for (int j = 0; j < channels; j++) out[at + j] += x[from + j];
                }
                kept++;
            }
            if (kept == 0) {
                Arrays.fill(out, at, at + channels, 0f);
            } else if (mode == SequencePooling.MEAN) {
                float inverse = 1f / kept;
                for (int j = 0; j < channels; j++) out[at + j] *= inverse;
            }
        });
    }

    /** Row by row, the terms added in input order; a zero weight skips its input. */
    static void weightedSum(float[][] xs, float[] weights, int rows, int width, float[] out) {
        int m = xs.length, rowsPerTask = Math.max(1, CHUNK / Math.max(width, 1));
        CpuThreads.SHARED.run(CpuThreads.tasks(rows, rowsPerTask), t -> {
            for (int r = t * rowsPerTask; r < CpuThreads.end(rows, t, rowsPerTask); r++) {
                int at = r * width;
                Arrays.fill(out, at, at + width, 0f);
                for (int k = 0; k < m; k++) {
                    float w = weights[r * m + k];
                    if (w == 0) continue;
                    float[] x = xs[k];
                    for (int j = 0; j < width; j++) out[at + j] += w * x[at + j];
                }
            }
        });
    }

    /** Each row copied, then finished in place as pooled rows are. */
    static void normalizeRows(float[] x, int rows, int dim, PoolingOptions options, float[] out) {
        int rowsPerTask = Math.max(1, CHUNK / Math.max(dim, 1));
        CpuThreads.SHARED.run(CpuThreads.tasks(rows, rowsPerTask), t -> {
            for (int r = t * rowsPerTask; r < CpuThreads.end(rows, t, rowsPerTask); r++) {
                System.arraycopy(x, r * dim, out, r * dim, dim);
                VectorBilinear.finish(out, r * dim, dim, 1, options);
            }
        });
    }
}
