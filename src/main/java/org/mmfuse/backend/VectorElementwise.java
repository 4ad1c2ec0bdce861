package org.mmfuse.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.mmfuse.Activation;

/** Activations, layer norm and softmax on the Vector API: memory-bound passes spread over the cores by rows. */
final class VectorElementwise {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Elements per task: enough to outweigh handing a task to another core. */
    private static final int CHUNK = 1 << 15;

    private VectorElementwise() {}

    static void activation(float[] x, Activation activation, float[] out) {
        int n = x.length, tasks = (n + CHUNK - 1) / CHUNK;
        CpuThreads.SHARED.run(tasks, t -> {
            int end = Math.min(n, (t + 1) * CHUNK);
            for (int i = t * CHUNK; i < end; i += L) {
                VectorMask<Float> m = S.indexInRange(i, end);
                VectorMath.activate(FloatVector.fromArray(S, x, i, m), activation).intoArray(out, i, m);
            }
        });
    }

    /** Row by row: the mean, the biased variance of the deviations (two passes, no cancellation), the affine map. */
    static void layerNorm(float[] x, int rows, int dim, float[] weight, float[] bias, float eps, float[] out) {
        int rowsPerTask = Math.max(1, CHUNK / Math.max(dim, 1)), tasks = (rows + rowsPerTask - 1) / rowsPerTask;
        CpuThreads.SHARED.run(tasks, t -> {
            for (int r = t * rowsPerTask; r < Math.min(rows, (t + 1) * rowsPerTask); r++) {
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
        int rowsPerTask = Math.max(1, CHUNK / Math.max(dim, 1)), tasks = (rows + rowsPerTask - 1) / rowsPerTask;
        CpuThreads.SHARED.run(tasks, t -> {
            for (int r = t * rowsPerTask; r < Math.min(rows, (t + 1) * rowsPerTask); r++) {
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
}
