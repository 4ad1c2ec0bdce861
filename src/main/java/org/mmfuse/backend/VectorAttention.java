package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention on the Vector API, flash-style: keys in blocks, an online softmax (running maximum and
 * denominator, the accumulated output rescaled when the maximum grows), no Lq x Lk buffer unless the
 * weights are asked for. Tasks are (batch, head, block of queries), claimed by all cores.
 *
 * <p>Each task first transposes its head's keys to kᵀ [Dh, Lk] (padded to whole vectors), so that a
 * query's scores against a block of keys are vector FMAs over the keys with no horizontal sums; the
 * weighted sum of values is vector FMAs over Dv. The exponentials are vectorised
 * ({@link VectorOperators#EXP}).
 */
final class VectorAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Keys per block: the scores of one block stay in a few registers' worth of floats. */
    private static final int KEY_BLOCK = 4 * L;
    /** Queries per task: enough to amortise the transposition of the head's keys. */
    private static final int QUERY_BLOCK = 16;

    /** Per-thread scratch, grown on demand: fresh arrays would be zeroed in cold memory for every task. */
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[][] {
        new float[0], new float[KEY_BLOCK], new float[0]});

    private VectorAttention() {}

    /** This thread's buffer {@code which} (0: kᵀ, 1: scores, 2: output accumulator), at least n floats. */
    private static float[] scratch(int which, int n) {
        float[][] buffers = SCRATCH.get();
        if (buffers[which].length < n) buffers[which] = new float[n];
        return buffers[which];
    }

    static void run(AttentionShape s, float[] q, float[] k, float[] v, float[] mask, float[] out, float[] lse,
            float[] weights) {
        if (s.batch == 0 || s.heads == 0 || s.queries == 0) return;
        int queryBlocks = (s.queries + QUERY_BLOCK - 1) / QUERY_BLOCK;
        int tasks = s.batch * s.heads * queryBlocks;
        CpuThreads.SHARED.run(s.flops() < (1 << 18) ? 1 : tasks, t -> {
            int first = s.flops() < (1 << 18) ? 0 : t, last = s.flops() < (1 << 18) ? tasks : t + 1;
            for (int task = first; task < last; task++) {
                int b = task / (s.heads * queryBlocks), h = task / queryBlocks % s.heads, qb = task % queryBlocks;
                block(s, b, h, qb * QUERY_BLOCK, Math.min(s.queries, (qb + 1) * QUERY_BLOCK), q, k, v, mask, out, lse,
                        weights);
            }
        });
    }

    /** Queries [i0, i1) of head h in batch b. */
    private static void block(AttentionShape s, int b, int h, int i0, int i1, float[] q, float[] k, float[] v,
            float[] mask, float[] out, float[] lse, float[] weights) {
        int stride = (s.keys + L - 1) / L * L; // keys padded to whole vectors
        float[] keysT = scratch(0, s.headDim * stride);
        if (stride > s.keys) { // the padding lanes are computed and ignored, but must not hold NaN
            for (int d = 0; d < s.headDim; d++) Arrays.fill(keysT, d * stride + s.keys, (d + 1) * stride, 0f);
        }
        for (int j = 0; j < s.keys; j++) {
            int kAt = ((b * s.keys + j) * s.heads + h) * s.headDim;
            for (int d = 0; d < s.headDim; d++) keysT[d * stride + j] = k[kAt + d];
        }
        float[] scores = scratch(1, KEY_BLOCK);
        float[] acc = scratch(2, s.valueDim);
        for (int i = i0; i < i1; i++) {
            int qAt = ((b * s.queries + i) * s.heads + h) * s.headDim;
            int lastKey = s.lastKey(i);
            int row = (b * s.heads + h) * s.queries + i;
            Arrays.fill(acc, 0, s.valueDim, 0f);
            float max = Float.NEGATIVE_INFINITY, sum = 0f;
            for (int j0 = 0; j0 <= lastKey; j0 += KEY_BLOCK) {
                int j1 = Math.min(j0 + KEY_BLOCK, lastKey + 1);
                float blockMax = scores(s, q, qAt, keysT, stride, j0, j1, mask, b, scores);
                if (weights != null) System.arraycopy(scores, 0, weights, row * s.keys + j0, j1 - j0);
                if (blockMax == Float.NEGATIVE_INFINITY) continue; // every key of the block masked
                float newMax = Math.max(max, blockMax);
                float rescale = (float) Math.exp(max - newMax); // 0 while nothing was attended
                sum = sum * rescale + exponentials(scores, j1 - j0, newMax);
                scale(acc, s.valueDim, rescale);
                for (int j = j0; j < j1; j++) {
                    float p = scores[j - j0];
                    if (p != 0f) addScaled(acc, s.valueDim, p, v, ((b * s.keys + j) * s.heads + h) * s.valueDim);
                }
                max = newMax;
            }
            int oAt = ((b * s.queries + i) * s.heads + h) * s.valueDim;
            float inverse = sum == 0f ? 0f : 1f / sum;
            for (int d = 0; d < s.valueDim; d++) out[oAt + d] = acc[d] * inverse;
            if (lse != null) lse[row] = sum == 0f ? Float.NEGATIVE_INFINITY : max + (float) Math.log(sum);
            if (weights != null) normaliseWeights(weights, row * s.keys, s.keys, lastKey, max, inverse);
        }
    }

    /**
     * scores[0 .. j1-j0) = scale · q · kᵀ for keys [j0, j1), -infinity where masked; returns their maximum.
     * Vector lanes run over keys; lanes past j1 are computed and ignored.
     */
    private static float scores(AttentionShape s, float[] q, int qAt, float[] keysT, int stride, int j0, int j1,
            float[] mask, int b, float[] scores) {
        int n = j1 - j0;
        for (int c = 0; c < n; c += L) {
            FloatVector dot = FloatVector.zero(S);
            for (int d = 0; d < s.headDim; d++) {
                dot = FloatVector.broadcast(S, q[qAt + d]).fma(FloatVector.fromArray(S, keysT, d * stride + j0 + c), dot);
            }
            dot.mul(s.scale).intoArray(scores, c);
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < n; c++) {
            if (mask != null && mask[b * s.keys + j0 + c] == 0f) scores[c] = Float.NEGATIVE_INFINITY;
            max = Math.max(max, scores[c]);
        }
        return max;
    }

    /** scores[c] = exp(scores[c] - max) for c < n; returns their sum. */
    private static float exponentials(float[] scores, int n, float max) {
        float sum = 0f;
        int c = 0;
        for (; c <= n - L; c += L) {
            FloatVector e = FloatVector.fromArray(S, scores, c).sub(max).lanewise(VectorOperators.EXP);
            e.intoArray(scores, c);
            sum += e.reduceLanes(VectorOperators.ADD);
        }
        for (; c < n; c++) {
            scores[c] = (float) Math.exp(scores[c] - max);
            sum += scores[c];
        }
        return sum;
    }

    /** acc[0 .. n) *= factor. */
    private static void scale(float[] acc, int n, float factor) {
        if (factor == 1f) return;
        int d = 0;
        for (; d <= n - L; d += L) FloatVector.fromArray(S, acc, d).mul(factor).intoArray(acc, d);
        for (; d < n; d++) acc[d] *= factor;
    }

    /** acc[0 .. n) += p · v[at .. at + n). */
    private static void addScaled(float[] acc, int n, float p, float[] v, int at) {
        FloatVector pv = FloatVector.broadcast(S, p);
        int d = 0;
        for (; d <= n - L; d += L) {
            FloatVector.fromArray(S, v, at + d).fma(pv, FloatVector.fromArray(S, acc, d)).intoArray(acc, d);
        }
        for (; d < n; d++) acc[d] += p * v[at + d];
    }

    /** The stored scaled scores of one query become softmax weights; keys past the causal limit get 0. */
    private static void normaliseWeights(float[] w, int at, int keys, int lastKey, float max, float inverse) {
        for (int j = 0; j < keys; j++) {
            w[at + j] = j > lastKey || inverse == 0f ? 0f : (float) Math.exp(w[at + j] - max) * inverse;
        }
    }
}
