package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention for a handful of queries (one query over a ViT's tokens, a few latents), without the
 * weights. Each key and value is used by so few queries that the call is bound by reading
 * them: what matters is reading them at the memory's speed. In the [B, L, H, D] layout one head's rows
 * lie H D floats apart, a pattern the prefetchers do not follow (one task per head ran 256,8,1,577,64
 * at 3.6 GFLOP/s, 7 GB/s); so a task takes a batch element's run of heads and walks the keys in blocks
 * of {@link #KEY_BLOCK}, all its heads at once, reading consecutive rows.
 *
 * <p>Per head and block: the block's keys transposed to kᵀ [Dh, KEY_BLOCK] (16 x 16 in registers where
 * vectors have 16 lanes), each query's scores as vectors over the keys, the online softmax (running
 * maximum, denominator, rescaling of what was accumulated), then P V with lanes over Dv.
 */
final class FewQueryAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Queries from which {@link QueryLaneAttention} (2L query lanes, whatever Lq) is faster: measured at L / 2. */
    static final int QUERIES = Math.max(2, L / 2);
    /** Keys per block: one transposition's worth. */
    private static final int KEY_BLOCK = 16;
    /** Tasks wanted per thread: heads are split into runs only when there are fewer batch elements. */
    private static final int TASKS_PER_THREAD = 4;
    /** Below this many flops one thread finishes before a second would have started. */
    private static final long PARALLEL_FLOPS = 1 << 18;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    /** Per-thread scratch, grown on demand and reused. */
    private static final class Workspace {
        float[] keysT = new float[0], scores = new float[0], output = new float[0], max = new float[0], sum = new float[0];

        static float[] atLeast(float[] buffer, int n) {
            return buffer.length >= n ? buffer : new float[n];
        }
    }

    private FewQueryAttention() {}

    /**
     * Whether this kernel takes the call: fewer than {@link #QUERIES} queries, no weights asked. Measured
     * against {@link QueryLaneAttention}, which computes 2L query lanes whatever Lq (GFLOP/s, 2 cores,
     * AVX-512): Lq = 1 (256,8,1,577,64) 8.4 vs 2.9; Lq = 4 (64,12,4,128,64) 30 vs 18; Lq = 8
     * (32,8,8,196,64) 38 vs 57.
     */
    static boolean takes(AttentionShape s, boolean weights) {
        return !weights && s.queries < QUERIES;
    }

    static void run(AttentionShape s, float[] q, float[] k, float[] v, float[] mask, float[] bias, float[] out,
            float[] lse) {
        int wanted = TASKS_PER_THREAD * CpuThreads.SHARED.threads();
        int groups = Math.min(s.heads, Math.max(1, (wanted + s.batch - 1) / s.batch));
        int perGroup = (s.heads + groups - 1) / groups, tasks = s.batch * groups;
        boolean parallel = s.flops() >= PARALLEL_FLOPS;
        CpuThreads.SHARED.run(parallel ? tasks : 1, t -> {
            for (int task = parallel ? t : 0; task < (parallel ? t + 1 : tasks); task++) {
                int b = task / groups, h0 = task % groups * perGroup, h1 = Math.min(s.heads, h0 + perGroup);
                if (h0 < h1) heads(s, b, h0, h1, q, k, v, mask, bias, out, lse, WORKSPACE.get());
            }
        });
    }

    /** Heads [h0, h1) of batch element b, key block after key block. */
    private static void heads(AttentionShape s, int b, int h0, int h1, float[] q, float[] k, float[] v, float[] mask,
            float[] bias, float[] out, float[] lse, Workspace w) {
        int dh = s.headDim, dv = s.valueDim, lq = s.queries, states = (h1 - h0) * lq;
        float[] kT = w.keysT = Workspace.atLeast(w.keysT, dh * KEY_BLOCK);
        float[] sc = w.scores = Workspace.atLeast(w.scores, KEY_BLOCK);
        float[] acc = w.output = Workspace.atLeast(w.output, states * dv);
        float[] max = w.max = Workspace.atLeast(w.max, states), sum = w.sum = Workspace.atLeast(w.sum, states);
        Arrays.fill(acc, 0, states * dv, 0f);
        Arrays.fill(max, 0, states, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0, states, 0f);
        int lastKey = s.lastKey(lq - 1); // the last query sees the most keys
        for (int j0 = 0; j0 <= lastKey; j0 += KEY_BLOCK) {
            int n = Math.min(KEY_BLOCK, lastKey + 1 - j0);
            for (int h = h0; h < h1; h++) {
                transposeKeys(k, ((b * s.keys + j0) * s.heads + h) * dh, s.heads * dh, n, dh, kT);
                int vAt = ((b * s.keys + j0) * s.heads + h) * dv;
                for (int i = 0; i < lq; i++) {
                    int state = (h - h0) * lq + i;
                    scores(q, ((b * lq + i) * s.heads + h) * dh, s.scale, dh, kT, sc);
                    maskScores(s, b, h, i, j0, n, mask, bias, sc);
                    // the online softmax step: new maximum, the rescaling of what was accumulated, p in place
                    float blockMax = maxOf(sc);
                    float newMax = Math.max(max[state], blockMax);
                    float base = newMax == Float.NEGATIVE_INFINITY ? 0f : newMax; // nothing attended yet: p = 0
                    float alpha = (float) Math.exp(max[state] - base);
                    float blockSum = exponentials(sc, base);
                    sum[state] = sum[state] * alpha + blockSum;
                    max[state] = newMax;
                    addValues(n, sc, v, vAt, s.heads * dv, dv, acc, state * dv, alpha);
                }
            }
        }
        for (int h = h0; h < h1; h++) {
            for (int i = 0; i < lq; i++) {
                int state = (h - h0) * lq + i, oAt = ((b * lq + i) * s.heads + h) * dv;
                // A row with no key gets zeros even where a masked key's NaN reached its accumulator (0 * NaN).
                if (sum[state] == 0f) Arrays.fill(out, oAt, oAt + dv, 0f);
                else VectorAttention.scaleInto(acc, state * dv, 1f / sum[state], out, oAt, dv);
                if (lse != null) {
                    lse[(b * s.heads + h) * lq + i] =
                            sum[state] == 0f ? Float.NEGATIVE_INFINITY : max[state] + (float) Math.log(sum[state]);
                }
            }
        }
    }

    /** kT[d * KEY_BLOCK + j] = k[first + j * rowStride + d] for j < n, 0 for j in [n, KEY_BLOCK). */
    private static void transposeKeys(float[] k, int first, int rowStride, int n, int dh, float[] kT) {
        int d0 = 0;
        if (Transpose16.AVAILABLE && n == KEY_BLOCK) {
            for (; d0 + 16 <= dh; d0 += 16) Transpose16.block(k, first + d0, rowStride, 1f, kT, d0 * KEY_BLOCK, KEY_BLOCK);
        }
        for (int j = 0; j < KEY_BLOCK; j++) {
            for (int d = d0, at = first + j * rowStride; d < dh; d++) kT[d * KEY_BLOCK + j] = j < n ? k[at + d] : 0f;
        }
    }

    /** sc[j] = scale · Σ_d q[qAt + d] kT[d, j], in four partial sums over d (one would be a chain of FMA latencies). */
    private static void scores(float[] q, int qAt, float scale, int dh, float[] kT, float[] sc) {
        for (int c = 0; c < KEY_BLOCK; c += L) {
            FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
            int d = 0;
            for (; d + 4 <= dh; d += 4) {
                a0 = FloatVector.broadcast(S, q[qAt + d]).fma(FloatVector.fromArray(S, kT, d * KEY_BLOCK + c), a0);
                a1 = FloatVector.broadcast(S, q[qAt + d + 1]).fma(FloatVector.fromArray(S, kT, (d + 1) * KEY_BLOCK + c), a1);
                a2 = FloatVector.broadcast(S, q[qAt + d + 2]).fma(FloatVector.fromArray(S, kT, (d + 2) * KEY_BLOCK + c), a2);
                a3 = FloatVector.broadcast(S, q[qAt + d + 3]).fma(FloatVector.fromArray(S, kT, (d + 3) * KEY_BLOCK + c), a3);
            }
            for (; d < dh; d++) a0 = FloatVector.broadcast(S, q[qAt + d]).fma(FloatVector.fromArray(S, kT, d * KEY_BLOCK + c), a0);
            a0.add(a1).add(a2.add(a3)).mul(scale).intoArray(sc, c);
        }
    }

    /** Adds the bias, and puts -infinity at masked keys, keys past query i's causal limit and past the block's n. */
    private static void maskScores(AttentionShape s, int b, int h, int i, int j0, int n, float[] mask, float[] bias,
            float[] sc) {
        int last = Math.min(n - 1, s.lastKey(i) - j0);
        for (int j = Math.max(last + 1, 0); j < KEY_BLOCK; j++) sc[j] = Float.NEGATIVE_INFINITY;
        if (bias != null) {
            for (int j = 0, at = s.biasAt(b, h, i) + j0 * s.biasStrides[3]; j <= last; j++, at += s.biasStrides[3]) {
                sc[j] += bias[at];
            }
        }
        if (mask != null) {
            for (int j = 0; j <= last; j++) if (mask[b * s.keys + j0 + j] == 0f) sc[j] = Float.NEGATIVE_INFINITY;
        }
    }

    private static float maxOf(float[] sc) {
        FloatVector m = FloatVector.fromArray(S, sc, 0);
        for (int c = L; c < KEY_BLOCK; c += L) m = m.max(FloatVector.fromArray(S, sc, c));
        return m.reduceLanes(VectorOperators.MAX); // exact in any order
    }

    /** sc[j] = e^(sc[j] - base) in place; returns their sum, added in a fixed order. */
    private static float exponentials(float[] sc, float base) {
        FloatVector total = FloatVector.zero(S);
        for (int c = 0; c < KEY_BLOCK; c += L) {
            FloatVector p = VectorMath.exp(FloatVector.fromArray(S, sc, c).sub(base));
            p.intoArray(sc, c);
            total = total.add(p);
        }
        return VectorMath.sum(total);
    }

    /** acc[at ..+ dv] = acc · alpha + Σ_{j < n} p[j] · v[vAt + j vRow ..]. */
    private static void addValues(int n, float[] p, float[] v, int vAt, int vRow, int dv, float[] acc, int at,
            float alpha) {
        int c = 0;
        for (; c + L <= dv; c += L) {
            FloatVector o = FloatVector.fromArray(S, acc, at + c).mul(alpha);
            for (int j = 0; j < n; j++) o = FloatVector.broadcast(S, p[j]).fma(FloatVector.fromArray(S, v, vAt + j * vRow + c), o);
            o.intoArray(acc, at + c);
        }
        for (; c < dv; c++) {
            float o = acc[at + c] * alpha;
            for (int j = 0; j < n; j++) o += p[j] * v[vAt + j * vRow + c];
            acc[at + c] = o;
        }
    }
}
