package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention on the Vector API with the vector lanes over queries: a tile of QL = 2L queries is held
 * transposed, qᵀ [Dh, QL], so that one key row broadcast element by element against it gives that
 * key's scores for all QL queries at once. The keys and values are read in place, row by row (no
 * transposed copy of the head's keys, which {@link VectorAttention} needs for its key lanes), each
 * head's keys once per tile of QL queries; the online softmax is elementwise over the lanes (no
 * horizontal reductions); the output accumulates transposed, oᵀ [Dv, QL], and is written back once
 * per tile. Taken for at least L queries and no weights (see {@link #takes}).
 *
 * <p>Two register-tiled micro-kernels, 8 x 2 vectors each: {@code scores8} (8 keys x QL queries,
 * over Dh) and {@code values8} (8 output columns x QL queries, over a block's keys). Written out
 * without helpers taking vectors, which C2 would not inline at this size (see VectorGemm).
 */
final class QueryLaneAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Queries per tile: two vectors. */
    private static final int QL = 2 * L;
    /** Keys per softmax block: the scores of a block are exponentiated and applied together. */
    private static final int KEY_BLOCK = 64;
    /** Below this many flops one thread finishes before a second would have started. */
    private static final long PARALLEL_FLOPS = 1 << 18;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    /** Per-thread scratch, grown on demand and reused (fresh arrays are zeroed in cold memory). */
    private static final class Workspace {
        float[] queriesT = new float[0], outputT = new float[0];
        final float[] scoresT = new float[KEY_BLOCK * QL];
        /** Per query lane: the running maximum and denominator, and the last block's rescaling. */
        final float[] max = new float[QL], sum = new float[QL], alpha = new float[QL];
        final int[] keyRows = new int[8];
        final int[] rowIndex = new int[L];
        final int[] biasIndex = new int[L];
        final float[] biasLanes = new float[L];
    }

    private QueryLaneAttention() {}

    /** Whether this kernel takes the call: a full vector of queries at least, and no weights asked. */
    static boolean takes(AttentionShape s, boolean weights) {
        return !weights && s.queries >= L;
    }

    static void run(AttentionShape s, float[] q, float[] k, float[] v, float[] mask, float[] bias, float[] out,
            float[] lse) {
        int tiles = (s.queries + QL - 1) / QL, tasks = s.batch * s.heads * tiles;
        boolean parallel = s.flops() >= PARALLEL_FLOPS;
        CpuThreads.SHARED.run(parallel ? tasks : 1, t -> {
            for (int task = parallel ? t : 0; task < (parallel ? t + 1 : tasks); task++) {
                int bh = task / tiles, i0 = task % tiles * QL;
                tile(s, bh / s.heads, bh % s.heads, i0, q, k, v, mask, bias, out, lse, WORKSPACE.get());
            }
        });
    }

    /** Queries [i0, i0 + QL) of head (b, h); lanes past Lq compute on zeros and are not written. */
    private static void tile(AttentionShape s, int b, int h, int i0, float[] q, float[] k, float[] v, float[] mask,
            float[] bias, float[] out, float[] lse, Workspace w) {
        int dh = s.headDim, dv = s.valueDim, rows = Math.min(QL, s.queries - i0);
        float[] qT = w.queriesT = w.queriesT.length >= dh * QL ? w.queriesT : new float[dh * QL];
        int dvPadded = (dv + 7) / 8 * 8;
        float[] oT = w.outputT = w.outputT.length >= dvPadded * QL ? w.outputT : new float[dvPadded * QL];
        float[] sT = w.scoresT, max = w.max, sum = w.sum, alpha = w.alpha;
        packQueries(q, ((b * s.queries + i0) * s.heads + h) * dh, s.heads * dh, rows, dh, s.scale, qT, w.rowIndex);
        Arrays.fill(oT, 0, dvPadded * QL, 0f);
        Arrays.fill(max, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0f);

        int kRow = s.heads * dh, vRow = s.heads * dv;
        int kFirst = (b * s.keys * s.heads + h) * dh, vFirst = (b * s.keys * s.heads + h) * dv;
        int lastKey = s.lastKey(i0 + rows - 1); // the tile's last query sees the most keys
        for (int j0 = 0; j0 <= lastKey; j0 += KEY_BLOCK) {
            int n = Math.min(KEY_BLOCK, lastKey + 1 - j0);
            int[] keyRows = w.keyRows;
            for (int j = 0; j < n; j += 8) {
                // 8 keys at a time; past the block's n keys the last row is read again, and never used
                for (int x = 0; x < 8; x++) keyRows[x] = kFirst + Math.min(j0 + j + x, j0 + n - 1) * kRow;
                scores8(dh, qT, k, keyRows[0], keyRows[1], keyRows[2], keyRows[3], keyRows[4], keyRows[5],
                        keyRows[6], keyRows[7], sT, j * QL);
            }
            maskBlock(s, b, h, i0, j0, n, mask, bias, sT, w);

            softmaxBlock(n, sT, max, sum, alpha);
            int vAt = vFirst + j0 * vRow, c = 0;
            for (; c + 8 <= dv; c += 8) values8(n, sT, v, vAt + c, vRow, oT, c * QL, alpha);
            for (; c < dv; c++) valuesOne(n, sT, v, vAt + c, vRow, oT, c * QL, alpha);
        }

        for (int i = 0; i < rows; i++) alpha[i] = sum[i] == 0f ? 0f : 1f / sum[i]; // alpha is free by now
        unpackOutput(oT, alpha, rows, dv, out, ((b * s.queries + i0) * s.heads + h) * dv, s.heads * dv, w.rowIndex);
        for (int i = 0; lse != null && i < rows; i++) {
            lse[(b * s.heads + h) * s.queries + i0 + i] =
                    sum[i] == 0f ? Float.NEGATIVE_INFINITY : max[i] + (float) Math.log(sum[i]);
        }
    }

    // The transpositions and the vector kernels are methods of their own, which keeps tile() small:
    // C2 gives up intrinsifying Vector API calls inlined into a method past its node budget.

    /**
     * qᵀ[d, i] = scale · q[first + i qRow + d] for i < rows, 0 for the lanes past them. A full tile
     * gathers each row of qᵀ (two gathers per d); a partial one goes element by element.
     */
    private static void packQueries(float[] q, int first, int qRow, int rows, int dh, float scale, float[] qT,
            int[] rowIndex) {
        if (rows == QL) {
            for (int l = 0; l < L; l++) rowIndex[l] = l * qRow;
            for (int d = 0; d < dh; d++) {
                FloatVector.fromArray(S, q, first + d, rowIndex, 0).mul(scale).intoArray(qT, d * QL);
                FloatVector.fromArray(S, q, first + L * qRow + d, rowIndex, 0).mul(scale).intoArray(qT, d * QL + L);
            }
            return;
        }
        for (int i = 0, from = first; i < rows; i++, from += qRow) {
            for (int d = 0; d < dh; d++) qT[d * QL + i] = q[from + d] * scale;
        }
        for (int d = 0; d < dh; d++) Arrays.fill(qT, d * QL + rows, (d + 1) * QL, 0f);
    }

    /** out[first + i oRow + c] = oᵀ[c, i] · inverse[i] for i < rows: scatters for a full tile. */
    private static void unpackOutput(float[] oT, float[] inverse, int rows, int dv, float[] out, int first, int oRow,
            int[] rowIndex) {
        if (rows == QL) {
            for (int l = 0; l < L; l++) rowIndex[l] = l * oRow;
            FloatVector inverse0 = FloatVector.fromArray(S, inverse, 0), inverse1 = FloatVector.fromArray(S, inverse, L);
            for (int c = 0; c < dv; c++) {
                FloatVector.fromArray(S, oT, c * QL).mul(inverse0).intoArray(out, first + c, rowIndex, 0);
                FloatVector.fromArray(S, oT, c * QL + L).mul(inverse1).intoArray(out, first + L * oRow + c, rowIndex, 0);
            }
            return;
        }
        for (int c = 0; c < dv; c++) {
            int at = c * QL;
            for (int i = 0, to = first + c; i < rows; i++, to += oRow) out[to] = oT[at + i] * inverse[i];
        }
    }

    /**
     * The online softmax over one block of scores, elementwise over the query lanes: the new running
     * maxima, the factors alpha that rescale what was accumulated, the exponentials in place of the
     * scores, the new denominators. A lane with nothing attended yet keeps base 0, so its
     * exponentials are exp(-inf) = 0.
     */
    private static void softmaxBlock(int n, float[] sT, float[] max, float[] sum, float[] alpha) {
        for (int lanes = 0; lanes < QL; lanes += L) {
            FloatVector oldMax = FloatVector.fromArray(S, max, lanes), newMax = oldMax;
            for (int j = 0; j < n; j++) newMax = newMax.max(FloatVector.fromArray(S, sT, j * QL + lanes));
            FloatVector base = newMax.blend(0f, newMax.compare(VectorOperators.EQ, Float.NEGATIVE_INFINITY));
            FloatVector rescale = oldMax.sub(base).lanewise(VectorOperators.EXP);
            FloatVector blockSum = FloatVector.zero(S);
            for (int j = 0; j < n; j++) {
                FloatVector p = FloatVector.fromArray(S, sT, j * QL + lanes).sub(base).lanewise(VectorOperators.EXP);
                p.intoArray(sT, j * QL + lanes);
                blockSum = blockSum.add(p);
            }
            FloatVector.fromArray(S, sum, lanes).mul(rescale).add(blockSum).intoArray(sum, lanes);
            newMax.intoArray(max, lanes);
            rescale.intoArray(alpha, lanes);
        }
    }

    /** Puts -infinity where a query may not look (masked keys, keys after its causal limit) and adds the bias. */
    private static void maskBlock(AttentionShape s, int b, int h, int i0, int j0, int n, float[] mask, float[] bias,
            float[] sT, Workspace w) {
        if (mask == null && bias == null && !s.causal) return;
        FloatVector lane0 = FloatVector.zero(S).addIndex(1).add(i0), lane1 = lane0.add(L); // query indices
        int[] biasIndex = null; // lane l reads the bias of query i0 + l; null when the bias is the same for all
        if (bias != null && s.biasStrides[2] != 0) {
            biasIndex = w.biasIndex;
            for (int l = 0; l < L; l++) biasIndex[l] = l * s.biasStrides[2];
        }
        for (int j = 0; j < n; j++) {
            int key = j0 + j, at = j * QL;
            if (mask != null && mask[b * s.keys + key] == 0f) {
                Arrays.fill(sT, at, at + QL, Float.NEGATIVE_INFINITY);
                continue;
            }
            FloatVector s0 = FloatVector.fromArray(S, sT, at), s1 = FloatVector.fromArray(S, sT, at + L);
            if (bias != null) {
                int first = s.biasAt(b, h, i0) + key * s.biasStrides[3];
                if (biasIndex == null) {
                    s0 = s0.add(bias[first]);
                    s1 = s1.add(bias[first]);
                } else {
                    s0 = s0.add(FloatVector.fromArray(S, biasLanes(bias, first, biasIndex, s.queries - i0, w.biasLanes), 0));
                    s1 = s1.add(FloatVector.fromArray(S, biasLanes(bias, first + L * s.biasStrides[2], biasIndex,
                            s.queries - i0 - L, w.biasLanes), 0));
                }
            }
            if (s.causal) { // query i attends key j iff j <= i + Lk - Lq
                float firstQuery = key - (s.keys - s.queries);
                VectorMask<Float> hidden0 = lane0.lt(firstQuery), hidden1 = lane1.lt(firstQuery);
                s0 = s0.blend(Float.NEGATIVE_INFINITY, hidden0);
                s1 = s1.blend(Float.NEGATIVE_INFINITY, hidden1);
            }
            s0.intoArray(sT, at);
            s1.intoArray(sT, at + L);
        }
    }

    /** {@code lanes} = the bias of L consecutive queries from {@code first}; lanes at or past {@code valid}
     *  (queries past Lq, whose bias may lie past the array) read 0. */
    private static float[] biasLanes(float[] bias, int first, int[] index, int valid, float[] lanes) {
        for (int l = 0; l < L; l++) lanes[l] = l < valid ? bias[first + index[l]] : 0f;
        return lanes;
    }

    /** sT[at + x QL .. + QL) = Σ_d qT[d QL ..] · k[kx + d] for the 8 key rows kx. */
    private static void scores8(int dh, float[] qT, float[] k, int k0, int k1, int k2, int k3, int k4, int k5, int k6,
            int k7, float[] sT, int at) {
        FloatVector a00 = FloatVector.zero(S), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00;
        FloatVector a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        for (int d = 0; d < dh; d++) {
            FloatVector q0 = FloatVector.fromArray(S, qT, d * QL), q1 = FloatVector.fromArray(S, qT, d * QL + L);
            FloatVector x = FloatVector.broadcast(S, k[k0 + d]);
            a00 = x.fma(q0, a00);
            a01 = x.fma(q1, a01);
            x = FloatVector.broadcast(S, k[k1 + d]);
            a10 = x.fma(q0, a10);
            a11 = x.fma(q1, a11);
            x = FloatVector.broadcast(S, k[k2 + d]);
            a20 = x.fma(q0, a20);
            a21 = x.fma(q1, a21);
            x = FloatVector.broadcast(S, k[k3 + d]);
            a30 = x.fma(q0, a30);
            a31 = x.fma(q1, a31);
            x = FloatVector.broadcast(S, k[k4 + d]);
            a40 = x.fma(q0, a40);
            a41 = x.fma(q1, a41);
            x = FloatVector.broadcast(S, k[k5 + d]);
            a50 = x.fma(q0, a50);
            a51 = x.fma(q1, a51);
            x = FloatVector.broadcast(S, k[k6 + d]);
            a60 = x.fma(q0, a60);
            a61 = x.fma(q1, a61);
            x = FloatVector.broadcast(S, k[k7 + d]);
            a70 = x.fma(q0, a70);
            a71 = x.fma(q1, a71);
        }
        a00.intoArray(sT, at);
        a01.intoArray(sT, at + L);
        a10.intoArray(sT, at + QL);
        a11.intoArray(sT, at + QL + L);
        a20.intoArray(sT, at + 2 * QL);
        a21.intoArray(sT, at + 2 * QL + L);
        a30.intoArray(sT, at + 3 * QL);
        a31.intoArray(sT, at + 3 * QL + L);
        a40.intoArray(sT, at + 4 * QL);
        a41.intoArray(sT, at + 4 * QL + L);
        a50.intoArray(sT, at + 5 * QL);
        a51.intoArray(sT, at + 5 * QL + L);
        a60.intoArray(sT, at + 6 * QL);
        a61.intoArray(sT, at + 6 * QL + L);
        a70.intoArray(sT, at + 7 * QL);
        a71.intoArray(sT, at + 7 * QL + L);
    }

    /**
     * Rows [oAt / QL, + 8) of oᵀ: oᵀ[c] = oᵀ[c] · alpha + Σ_{j < n} pᵀ[j] · v[vAt + j vRow + c - c0] for
     * the 8 columns from the one at vAt.
     */
    private static void values8(int n, float[] pT, float[] v, int vAt, int vRow, float[] oT, int oAt, float[] alpha) {
        FloatVector r0 = FloatVector.fromArray(S, alpha, 0), r1 = FloatVector.fromArray(S, alpha, L);
        FloatVector o00 = FloatVector.fromArray(S, oT, oAt).mul(r0), o01 = FloatVector.fromArray(S, oT, oAt + L).mul(r1);
        FloatVector o10 = FloatVector.fromArray(S, oT, oAt + QL).mul(r0);
        FloatVector o11 = FloatVector.fromArray(S, oT, oAt + QL + L).mul(r1);
        FloatVector o20 = FloatVector.fromArray(S, oT, oAt + 2 * QL).mul(r0);
        FloatVector o21 = FloatVector.fromArray(S, oT, oAt + 2 * QL + L).mul(r1);
        FloatVector o30 = FloatVector.fromArray(S, oT, oAt + 3 * QL).mul(r0);
        FloatVector o31 = FloatVector.fromArray(S, oT, oAt + 3 * QL + L).mul(r1);
        FloatVector o40 = FloatVector.fromArray(S, oT, oAt + 4 * QL).mul(r0);
        FloatVector o41 = FloatVector.fromArray(S, oT, oAt + 4 * QL + L).mul(r1);
        FloatVector o50 = FloatVector.fromArray(S, oT, oAt + 5 * QL).mul(r0);
        FloatVector o51 = FloatVector.fromArray(S, oT, oAt + 5 * QL + L).mul(r1);
        FloatVector o60 = FloatVector.fromArray(S, oT, oAt + 6 * QL).mul(r0);
        FloatVector o61 = FloatVector.fromArray(S, oT, oAt + 6 * QL + L).mul(r1);
        FloatVector o70 = FloatVector.fromArray(S, oT, oAt + 7 * QL).mul(r0);
        FloatVector o71 = FloatVector.fromArray(S, oT, oAt + 7 * QL + L).mul(r1);
        for (int j = 0, at = vAt; j < n; j++, at += vRow) {
            FloatVector p0 = FloatVector.fromArray(S, pT, j * QL), p1 = FloatVector.fromArray(S, pT, j * QL + L);
            FloatVector x = FloatVector.broadcast(S, v[at]);
            o00 = x.fma(p0, o00);
            o01 = x.fma(p1, o01);
            x = FloatVector.broadcast(S, v[at + 1]);
            o10 = x.fma(p0, o10);
            o11 = x.fma(p1, o11);
            x = FloatVector.broadcast(S, v[at + 2]);
            o20 = x.fma(p0, o20);
            o21 = x.fma(p1, o21);
            x = FloatVector.broadcast(S, v[at + 3]);
            o30 = x.fma(p0, o30);
            o31 = x.fma(p1, o31);
            x = FloatVector.broadcast(S, v[at + 4]);
            o40 = x.fma(p0, o40);
            o41 = x.fma(p1, o41);
            x = FloatVector.broadcast(S, v[at + 5]);
            o50 = x.fma(p0, o50);
            o51 = x.fma(p1, o51);
            x = FloatVector.broadcast(S, v[at + 6]);
            o60 = x.fma(p0, o60);
            o61 = x.fma(p1, o61);
            x = FloatVector.broadcast(S, v[at + 7]);
            o70 = x.fma(p0, o70);
            o71 = x.fma(p1, o71);
        }
        o00.intoArray(oT, oAt);
        o01.intoArray(oT, oAt + L);
        o10.intoArray(oT, oAt + QL);
        o11.intoArray(oT, oAt + QL + L);
        o20.intoArray(oT, oAt + 2 * QL);
        o21.intoArray(oT, oAt + 2 * QL + L);
        o30.intoArray(oT, oAt + 3 * QL);
        o31.intoArray(oT, oAt + 3 * QL + L);
        o40.intoArray(oT, oAt + 4 * QL);
        o41.intoArray(oT, oAt + 4 * QL + L);
        o50.intoArray(oT, oAt + 5 * QL);
        o51.intoArray(oT, oAt + 5 * QL + L);
        o60.intoArray(oT, oAt + 6 * QL);
        o61.intoArray(oT, oAt + 6 * QL + L);
        o70.intoArray(oT, oAt + 7 * QL);
        o71.intoArray(oT, oAt + 7 * QL + L);
    }

    /** values8 for one column (the last Dv % 8). */
    private static void valuesOne(int n, float[] pT, float[] v, int vAt, int vRow, float[] oT, int oAt, float[] alpha) {
        FloatVector o0 = FloatVector.fromArray(S, oT, oAt).mul(FloatVector.fromArray(S, alpha, 0));
        FloatVector o1 = FloatVector.fromArray(S, oT, oAt + L).mul(FloatVector.fromArray(S, alpha, L));
        for (int j = 0, at = vAt; j < n; j++, at += vRow) {
            FloatVector x = FloatVector.broadcast(S, v[at]);
            o0 = x.fma(FloatVector.fromArray(S, pT, j * QL), o0);
            o1 = x.fma(FloatVector.fromArray(S, pT, j * QL + L), o1);
        }
        o0.intoArray(oT, oAt);
        o1.intoArray(oT, oAt + L);
    }
}
