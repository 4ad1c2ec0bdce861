package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention for a handful of queries (one query over a ViT's tokens, a few latents), without the
 * weights. A task takes a batch element's run of heads and walks the keys in blocks of
 * {@link #KEY_BLOCK}, all its heads at once, so that it reads consecutive rows (one task per head, the
 * keys transposed by gathers, ran 256,8,1,577,64 at 3.6 GFLOP/s; this runs it at 9).
 *
 * <p>Per head and block: each query's scores for the block's keys (where vectors have 16 or 8 lanes, sums
 * of products over d added up by a tree of lane exchanges, {@link #dotScores}; else from the keys
 * transposed), the online softmax step (running maximum, denominator, rescaling of what was
 * accumulated), then P V with lanes over Dv. On AVX2 the trees (they replaced an 8 x 8 transposition per
 * 8 keys) and four FMA chains in P V instead of one took 256,8,1,577,64 from 4.0 to 8.7 GFLOP/s and
 * 2,8,1,577,64 from 11 to 15 (2026-11-24, JDK 25, one JVM). With so few queries the per-query steps,
 * chains of dependent reductions and exponentials, cost as much as the products: on AVX-512,
 * 32,8,4,196,64 ran no faster with its inputs in L2 than from memory. Four queries (and on AVX-512 three or
 * seven) go four at a time instead ({@link #quads}): one load of a key row for four queries' sums, and the
 * softmax step on whole vectors.
 */
final class FewQueryAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /**
     * Queries from which {@link QueryLaneAttention} (2L query lanes, whatever Lq) is faster: measured at L / 2
     * on AVX-512, and on AVX2 at 6 (2026-11-24, JDK 25, one JVM, GFLOP/s here vs there, after the query-lane
     * kernel's P V went to query lanes): Lq = 4 32,8,4,196 13.2 vs 12.6 and 64,12,4,128 21.8 vs 18.4; Lq = 5
     * 25.0 vs 25.0, 16.9 vs 14.4 and 16,8,5,577 25.6 vs 18.6; Lq = 6 25.8 vs 33.2 and 25.4 vs 24.5; Lq = 8 28.6
     * vs 43.2 and 27.9 vs 31.2.
     */
    static final int QUERIES = L == 8 ? 6 : Math.max(2, L / 2);
    /** Scores by sums of products over d ({@link #dotScores}) where vectors have 16 or 8 lanes and divide Dh (a masked
     *  last vector in that method made C2 give up its vector intrinsics: 20 times slower), else from transposed keys. */
    private static final boolean SUM_TREES = L == 16 || L == 8;
    private static final VectorShuffle<Float> SWAP8 = swap(8), SWAP4 = swap(4), SWAP2 = swap(2), SWAP1 = swap(1);
    private static final VectorMask<Float> BIT8 = bitSet(8), BIT4 = bitSet(4), BIT2 = bitSet(2), BIT1 = bitSet(1);
    /** Keys per block: one transposition's worth. */
    private static final int KEY_BLOCK = 16;
    /** Tasks wanted per thread: heads are split into runs only when there are fewer batch elements. */
    private static final int TASKS_PER_THREAD = 4;
    /** Below this many flops one thread finishes before a second would have started. */
    private static final long PARALLEL_FLOPS = 1 << 18;
    /**
     * From this many bytes of keys and values a task first sweeps each block's rows of its heads in memory
     * order (see {@link #sweep}). It replaced copying them there, measured from 16 MB on 2026-11-24 (AVX2,
     * GFLOP/s in place vs copied, B,8,1,577,64: B = 2 (4.7 MB) 25.7 vs 16.2; 4 (9.4 MB) 10.7 vs 7.3; 8 (19 MB) 9.8
     * vs 10.0; 256 (605 MB) 8.0 vs 9.8): on AVX-512, 2026-12-07, fresh JVMs alternating, 256,8,1,577,64 in
     * place 9.0 and copied 10.6, then copied 9.5/9.5/9.1 and swept 11.5/11.8/12.4. Between 16 and 32 MB it
     * depends on how much of the shared L3 the machine's other work leaves: 2026-12-08 (AVX-512, 32 MB L3,
     * 8,8,1,577,64, 19 MB, swept vs in place) 18.5/19.1/21.0 vs 23.4/22.3/22.5 in a quiet spell, where the
     * rows came from L3, and 10.3/14.6/11.4 vs 13.0/9.9/8.5 an hour later, when they no longer did.
     */
    private static final long SWEEP_FROM_BYTES = 16L << 20;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    /** Per-thread scratch, grown on demand and reused. */
    private static final class Workspace {
        float[] keysT = new float[0], scores = new float[0], alpha = new float[0];
        float[] output = new float[0], max = new float[0], sum = new float[0];
        /** What {@link #sweep} read, kept so that the reads are not compiled away. */
        float swept;
    }

    private FewQueryAttention() {}

    /** Lane i takes lane i ^ bit (where the lanes are 16; unused otherwise). */
    private static VectorShuffle<Float> swap(int bit) {
        return VectorShuffle.fromOp(S, i -> (i ^ bit) & (L - 1));
    }

    /** The lanes whose index has {@code bit} set. */
    private static VectorMask<Float> bitSet(int bit) {
        boolean[] set = new boolean[L];
        for (int i = 0; i < L; i++) set[i] = (i & bit) != 0;
        return VectorMask.fromArray(S, set, 0);
    }

    /**
     * Whether this kernel takes the call: fewer than {@link #QUERIES} queries, no weights asked. Measured
     * against {@link QueryLaneAttention}, which computes 2L query lanes whatever Lq (GFLOP/s, 2 cores,
     * AVX-512, this kernel before its dot-product scores and three passes): Lq = 1 (256,8,1,577,64) 8.4
     * vs 2.9; Lq = 4 (64,12,4,128,64) 30 vs 18; Lq = 8 (32,8,8,196,64) 38 vs 57.
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
        boolean sweepRows = (long) s.batch * s.keys * s.heads * (s.headDim + s.valueDim) * Float.BYTES >= SWEEP_FROM_BYTES;
        boolean byQuads = takesQuads(s);
        CpuThreads.SHARED.run(parallel ? tasks : 1, t -> {
            for (int task = parallel ? t : 0; task < (parallel ? t + 1 : tasks); task++) {
                int b = task / groups, h0 = task % groups * perGroup, h1 = Math.min(s.heads, h0 + perGroup);
                if (h0 >= h1) continue;
                if (byQuads) quads(s, b, h0, h1, q, k, v, mask, bias, out, lse, sweepRows, WORKSPACE.get());
                else heads(s, b, h0, h1, q, k, v, mask, bias, out, lse, sweepRows, WORKSPACE.get());
            }
        });
    }

    /** Whether {@link #quads} takes the call (see there for the measurements behind the rule). */
    static boolean takesQuads(AttentionShape s) {
        int padding = (4 - s.queries % 4) % 4; // queries the last quad would repeat
        return SUM_TREES && s.headDim % L == 0 && s.queries >= 3 && (padding == 0 || L == 16 && padding == 1);
    }

    /**
     * Heads [h0, h1) of batch element b, key block after key block. With {@code sweepRows} each block's rows of
     * these heads are first read in memory order ({@link #sweep}): read head by head, a head's rows lie H Dh
     * floats apart, a pattern the prefetchers miss when the rows come from memory.
     */
    private static void heads(AttentionShape s, int b, int h0, int h1, float[] q, float[] k, float[] v, float[] mask,
            float[] bias, float[] out, float[] lse, boolean sweepRows, Workspace w) {
        int dh = s.headDim, dv = s.valueDim, lq = s.queries, states = (h1 - h0) * lq;
        float[] kT = w.keysT = Scratch.atLeast(w.keysT, dh * KEY_BLOCK);
        float[] sc = w.scores = Scratch.atLeast(w.scores, lq * KEY_BLOCK), alpha = w.alpha = Scratch.atLeast(w.alpha, lq);
        float[] acc = w.output = Scratch.atLeast(w.output, states * dv);
        float[] max = w.max = Scratch.atLeast(w.max, states), sum = w.sum = Scratch.atLeast(w.sum, states);
        Arrays.fill(acc, 0, states * dv, 0f);
        Arrays.fill(max, 0, states, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0, states, 0f);
        int lastKey = s.lastKey(lq - 1); // the last query sees the most keys
        boolean trees = SUM_TREES && dh % L == 0;
        int kRow = s.heads * dh, vRow = s.heads * dv; // a head's rows, in place
        for (int j0 = 0; j0 <= lastKey; j0 += KEY_BLOCK) {
            int n = Math.min(KEY_BLOCK, lastKey + 1 - j0);
            int kFirst = ((b * s.keys + j0) * s.heads + h0) * dh, vFirst = ((b * s.keys + j0) * s.heads + h0) * dv;
            if (sweepRows) {
                w.swept += sweep(k, kFirst, kRow, n, (h1 - h0) * dh) + sweep(v, vFirst, vRow, n, (h1 - h0) * dv);
            }
            for (int h = h0; h < h1; h++) {
                int kAt = kFirst + (h - h0) * dh, vAt = vFirst + (h - h0) * dv;
                if (!trees) transposeKeys(k, kAt, kRow, n, dh, kT);
                // in three passes over the queries, each query's scores in their own row of sc: a query's
                // steps are a chain of dependent reductions, and the queries' chains may then overlap
                for (int i = 0; i < lq; i++) {
                    int qAt = queryAt(s, b, h, i);
                    if (trees) {
                        dotScores(q, qAt, s.scale, k, kAt, kRow, n, dh, sc, i * KEY_BLOCK);
                    } else {
                        scores(q, qAt, s.scale, dh, kT, sc, i * KEY_BLOCK);
                    }
                    maskScores(s, b, h, i, j0, n, mask, bias, sc, i * KEY_BLOCK, 1);
                }
                for (int i = 0; i < lq; i++) { // the online softmax step: new maximum, rescaling alpha, p in place
                    int state = (h - h0) * lq + i;
                    float newMax = Math.max(max[state], maxOf(sc, i * KEY_BLOCK));
                    float base = newMax == Float.NEGATIVE_INFINITY ? 0f : newMax; // nothing attended yet: p = 0
                    alpha[i] = (float) Math.exp(max[state] - base);
                    sum[state] = sum[state] * alpha[i] + exponentials(sc, i * KEY_BLOCK, base);
                    max[state] = newMax;
                }
                for (int i = 0; i < lq; i++) {
                    addValues(n, sc, i * KEY_BLOCK, 1, v, vAt, vRow, dv, acc, ((h - h0) * lq + i) * dv, alpha[i]);
                }
            }
        }
        for (int h = h0; h < h1; h++) {
            for (int i = 0; i < lq; i++) {
                int state = (h - h0) * lq + i;
                finish(s, b, h, i, acc, state * dv, max[state], sum[state], out, lse);
            }
        }
    }

    /**
     * {@link #heads} for three or more queries, taken four at a time (a quad; the last one padded by repeating
     * its last query): each key row loaded feeds the four queries' sums, the softmax step runs on whole
     * vectors of the quad's scores, and P V reads each value row once per quad ({@link QueryLaneAttention#values4}).
     * A quad's scores for a block lie key-major, p(j, x) at 4 j + x, so that a vector holds L / 4 keys of all
     * four queries, and the running maximum and denominator of query x sit in the lanes l with l % 4 == x.
     * Taken where the padding is at most one query with 16 lanes, none with 8: fresh JVMs alternating query by
     * query / by quads (2026-12-07, Zen 4, 2 cores, JDK 25), GFLOP/s, 32,8,Lq,196,64: AVX-512 Lq = 3 25.5 / 28.1,
     * Lq = 4 28.3 / 34.4 (JMH 35.5 against 25.4-29.2 before), Lq = 7 38.4 / 40.6; but Lq = 2 (64,12,2,128) 19.1 /
     * 15.2, Lq = 5 (16,8,5,577) 31.6 / 29.7, Lq = 6 35.1 / 29.7. Vectors capped at 256 bits: Lq = 4 25.0 / 27.2,
     * 25.2 / 31.7, but Lq = 3 24.1 / 21.6, 22.3 / 20.5.
     */
    private static void quads(AttentionShape s, int b, int h0, int h1, float[] q, float[] k, float[] v, float[] mask,
            float[] bias, float[] out, float[] lse, boolean sweepRows, Workspace w) {
        int dh = s.headDim, dv = s.valueDim, lq = s.queries, quads = (lq + 3) / 4, states = (h1 - h0) * quads;
        float[] sc = w.scores = Scratch.atLeast(w.scores, 4 * KEY_BLOCK + L), alpha = w.alpha = Scratch.atLeast(w.alpha, L);
        float[] acc = w.output = Scratch.atLeast(w.output, states * 4 * dv);
        float[] max = w.max = Scratch.atLeast(w.max, states * L), sum = w.sum = Scratch.atLeast(w.sum, states * L);
        Arrays.fill(acc, 0, states * 4 * dv, 0f);
        Arrays.fill(max, 0, states * L, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0, states * L, 0f);
        int lastKey = s.lastKey(lq - 1);
        boolean masks = mask != null || bias != null || s.causal;
        int kRow = s.heads * dh, vRow = s.heads * dv;
        for (int j0 = 0; j0 <= lastKey; j0 += KEY_BLOCK) {
            int n = Math.min(KEY_BLOCK, lastKey + 1 - j0);
            int kFirst = ((b * s.keys + j0) * s.heads + h0) * dh, vFirst = ((b * s.keys + j0) * s.heads + h0) * dv;
            if (sweepRows) {
                w.swept += sweep(k, kFirst, kRow, n, (h1 - h0) * dh) + sweep(v, vFirst, vRow, n, (h1 - h0) * dv);
            }
            for (int h = h0; h < h1; h++) {
                int kAt = kFirst + (h - h0) * dh, vAt = vFirst + (h - h0) * dv;
                for (int g = 0; g < quads; g++) {
                    int i0 = 4 * g, state = (h - h0) * quads + g;
                    int q0 = queryAt(s, b, h, i0), q1 = queryAt(s, b, h, Math.min(i0 + 1, lq - 1));
                    int q2 = queryAt(s, b, h, Math.min(i0 + 2, lq - 1)), q3 = queryAt(s, b, h, Math.min(i0 + 3, lq - 1));
                    // keys past n read the last one again: their scores are masked below
                    quadScores(q, q0, q1, q2, q3, s.scale, k, kAt, kRow, n, dh, sc);
                    if (masks || n < KEY_BLOCK) { // the padding's repeats of query Lq - 1 masked as it is
                        for (int x = 0; x < 4; x++) maskScores(s, b, h, Math.min(i0 + x, lq - 1), j0, n, mask, bias, sc, x, 4);
                    }
                    softmaxQuad(sc, max, sum, state * L, alpha);
                    int oAt = state * 4 * dv, c = 0;
                    for (; c + 2 * L <= dv; c += 2 * L) {
                        QueryLaneAttention.values4(n, sc, 0, 4, 1, v, vAt + c, vRow, acc, oAt + c, dv, alpha, 0);
                    }
                    for (int x = 0; c < dv && x < 4; x++) {
                        addValues(n, sc, x, 4, v, vAt + c, vRow, dv - c, acc, oAt + x * dv + c, alpha[x]);
                    }
                }
            }
        }
        for (int h = h0; h < h1; h++) {
            for (int i = 0; i < lq; i++) {
                int state = (h - h0) * quads + i / 4;
                float denominator = 0f; // the query's lanes' sums (see softmaxQuad), in lane order
                for (int lane = state * L + i % 4; lane < (state + 1) * L; lane += 4) denominator += sum[lane];
                finish(s, b, h, i, acc, (state * 4 + i % 4) * dv, max[state * L + i % 4], denominator, out, lse);
            }
        }
    }

    /** Query i of head (b, h) from its accumulated row acc[accAt ..+ Dv], running maximum and denominator: its
     *  output row, and its log-sum-exp when lse is asked for. */
    private static void finish(AttentionShape s, int b, int h, int i, float[] acc, int accAt, float max, float sum,
            float[] out, float[] lse) {
        int dv = s.valueDim, oAt = ((b * s.queries + i) * s.heads + h) * dv;
        // A row with no key gets zeros even where a masked key's NaN reached its accumulator (0 * NaN).
        if (sum == 0f) Arrays.fill(out, oAt, oAt + dv, 0f);
        else VectorAttention.scaleInto(acc, accAt, 1f / sum, out, oAt, dv);
        if (lse != null) lse[(b * s.heads + h) * s.queries + i] = sum == 0f ? Float.NEGATIVE_INFINITY : max + (float) Math.log(sum);
    }

    /** Where query i of head (b, h) starts in q. */
    private static int queryAt(AttentionShape s, int b, int h, int i) {
        return ((b * s.queries + i) * s.heads + h) * s.headDim;
    }

    /**
     * The scores of a block's keys (rows kAt + j kRow of k, j < KEY_BLOCK; past n the last row again, which the
     * caller masks) for the 4 queries of a quad (rows q0..q3 of q): sc[4 j + x] = scale · Σ_d q[qx + d] k[kj + d].
     * L / 4 keys at a time (16 lanes: four keys, sixteen vectors of products over d; 8 lanes: two keys, eight
     * vectors), then their lane sums by the tree of {@link #dotScores} (its stage s = 8 only with 16 lanes; L
     * is a constant, so C2 drops the other width's code); vector 4 j + x is (key j, query x). The loop over
     * the block is in here, not in the caller: a call per four keys paid its argument checks and spills each
     * time (alternating JVMs, 8,8,4,196 median GFLOP/s 58.5/58.6/56.0/59.9/72.8/58.1 -> 68.7/65.2/62.2/66.6/
     * 69.0/66.4). The tree is written out here and in dotScores: as a method of its own it would take sixteen
     * vectors, past the bytecode size C2 inlines, and vectors passed to a call are boxed.
     */
    private static void quadScores(float[] q, int q0, int q1, int q2, int q3, float scale, float[] k, int kAt,
            int kRow, int n, int dh, float[] sc) {
        for (int j = 0; j < KEY_BLOCK; j += L / 4) {
            int k0 = kAt + Math.min(j, n - 1) * kRow, k1 = kAt + Math.min(j + 1, n - 1) * kRow;
            int k2 = kAt + Math.min(j + 2, n - 1) * kRow, k3 = kAt + Math.min(j + 3, n - 1) * kRow, at = 4 * j;
            FloatVector v0 = FloatVector.zero(S), v1 = v0, v2 = v0, v3 = v0, v4 = v0, v5 = v0, v6 = v0, v7 = v0;
            FloatVector v8 = v0, v9 = v0, v10 = v0, v11 = v0, v12 = v0, v13 = v0, v14 = v0, v15 = v0;
            for (int d = 0; d < dh; d += L) {
                FloatVector x0 = FloatVector.fromArray(S, q, q0 + d), x1 = FloatVector.fromArray(S, q, q1 + d);
                FloatVector x2 = FloatVector.fromArray(S, q, q2 + d), x3 = FloatVector.fromArray(S, q, q3 + d);
                FloatVector y = FloatVector.fromArray(S, k, k0 + d);
                v0 = x0.fma(y, v0);
                v1 = x1.fma(y, v1);
                v2 = x2.fma(y, v2);
                v3 = x3.fma(y, v3);
                y = FloatVector.fromArray(S, k, k1 + d);
                v4 = x0.fma(y, v4);
                v5 = x1.fma(y, v5);
                v6 = x2.fma(y, v6);
                v7 = x3.fma(y, v7);
                if (L == 16) {
                    y = FloatVector.fromArray(S, k, k2 + d);
                    v8 = x0.fma(y, v8);
                    v9 = x1.fma(y, v9);
                    v10 = x2.fma(y, v10);
                    v11 = x3.fma(y, v11);
                    y = FloatVector.fromArray(S, k, k3 + d);
                    v12 = x0.fma(y, v12);
                    v13 = x1.fma(y, v13);
                    v14 = x2.fma(y, v14);
                    v15 = x3.fma(y, v15);
                }
            }
            if (L == 16) { // s = 8
                v0 = v0.blend(v8, BIT8).add(v8.blend(v0, BIT8).rearrange(SWAP8));
                v1 = v1.blend(v9, BIT8).add(v9.blend(v1, BIT8).rearrange(SWAP8));
                v2 = v2.blend(v10, BIT8).add(v10.blend(v2, BIT8).rearrange(SWAP8));
                v3 = v3.blend(v11, BIT8).add(v11.blend(v3, BIT8).rearrange(SWAP8));
                v4 = v4.blend(v12, BIT8).add(v12.blend(v4, BIT8).rearrange(SWAP8));
                v5 = v5.blend(v13, BIT8).add(v13.blend(v5, BIT8).rearrange(SWAP8));
                v6 = v6.blend(v14, BIT8).add(v14.blend(v6, BIT8).rearrange(SWAP8));
                v7 = v7.blend(v15, BIT8).add(v15.blend(v7, BIT8).rearrange(SWAP8));
            }
            // s = 4
            v0 = v0.blend(v4, BIT4).add(v4.blend(v0, BIT4).rearrange(SWAP4));
            v1 = v1.blend(v5, BIT4).add(v5.blend(v1, BIT4).rearrange(SWAP4));
            v2 = v2.blend(v6, BIT4).add(v6.blend(v2, BIT4).rearrange(SWAP4));
            v3 = v3.blend(v7, BIT4).add(v7.blend(v3, BIT4).rearrange(SWAP4));
            // s = 2
            v0 = v0.blend(v2, BIT2).add(v2.blend(v0, BIT2).rearrange(SWAP2));
            v1 = v1.blend(v3, BIT2).add(v3.blend(v1, BIT2).rearrange(SWAP2));
            // s = 1
            v0 = v0.blend(v1, BIT1).add(v1.blend(v0, BIT1).rearrange(SWAP1));
            v0.mul(scale).intoArray(sc, at);
        }
    }

    /**
     * The online softmax step for a quad's block of scores, on whole vectors: the block's maximum per query
     * (lanewise over the block's vectors, then across the lanes of the same query), the rescaling alpha
     * (its first four lanes to {@code alpha}, for P V), the exponentials in place, the new denominators.
     * max and sum hold L lanes per quad from {@code at}: max the query's maximum in each of its lanes, sum
     * each lane's own share of the denominator, rescaled as the whole would be and added up across the
     * query's lanes only at the end (one lane exchange fewer a block). sc has room for one vector past the
     * block's 4 KEY_BLOCK scores.
     */
    private static void softmaxQuad(float[] sc, float[] max, float[] sum, int at, float[] alpha) {
        FloatVector m = FloatVector.fromArray(S, sc, 0);
        for (int c = L; c < 4 * KEY_BLOCK; c += L) m = m.max(FloatVector.fromArray(S, sc, c));
        // the maximum over the lanes of each query (lane l: query l % 4), in all of them
        if (L == 16) m = m.max(m.rearrange(SWAP8));
        m = m.max(m.rearrange(SWAP4));
        FloatVector oldMax = FloatVector.fromArray(S, max, at), newMax = oldMax.max(m);
        // a query with nothing attended yet keeps base 0: its exponentials are exp(-inf) = 0
        FloatVector base = newMax.blend(0f, newMax.compare(VectorOperators.EQ, Float.NEGATIVE_INFINITY));
        // The rescaling exp(oldMax - base) rides along as a last vector of scores: one inlined exp, not two (JDK
        // 25's node budget left parts of the second to the Vector API's Java fallback), and the sum in a loop of
        // its own (JDK 17 ran an add under a condition in the exponentials' loop through the fallback).
        oldMax.intoArray(sc, 4 * KEY_BLOCK);
        for (int c = 0; c <= 4 * KEY_BLOCK; c += L) VectorMath.exp(FloatVector.fromArray(S, sc, c).sub(base)).intoArray(sc, c);
        FloatVector total = FloatVector.fromArray(S, sc, 0);
        for (int c = L; c < 4 * KEY_BLOCK; c += L) total = total.add(FloatVector.fromArray(S, sc, c));
        FloatVector rescale = FloatVector.fromArray(S, sc, 4 * KEY_BLOCK);
        FloatVector.fromArray(S, sum, at).mul(rescale).add(total).intoArray(sum, at);
        newMax.intoArray(max, at);
        rescale.intoArray(alpha, 0);
    }

    /**
     * Reads one float from every cache line of n rows of {@code width} floats, {@code stride} apart from
     * a[from]: the block's rows of a task's heads in memory order, each row one run, which the hardware
     * prefetchers follow ahead of the loads; the kernels then find them in cache. Java has no prefetch
     * instruction; copying the rows instead (System.arraycopy into a buffer, 11-14 GB/s on one core here
     * against 22 for reading alone) wrote what this only reads. Floats, not vectors: a float[]'s elements
     * do not start at a line (a large array's, after its 16-byte header, 16 bytes into one), so a vector of
     * 16 spans two lines; read so, the sweep lost to none at all on JDK 17 (alternating JVMs, Zen 5,
     * 2026-12-08, 32,8,2,196 GFLOP/s: vectors 11.0/11.9, none 22.1/21.6, floats 34.7/35.3; JDK 25: 24.7/21.0,
     * 22.9/21.4, 37.5/33.6). A row's last float may lie one line past the steps of 16. Returns the sum, for
     * the caller to keep.
     */
    private static float sweep(float[] a, int from, int stride, int n, int width) {
        if (width == 0) return 0f;
        float even = 0f, odd = 0f; // two chains of adds, which the loads' latencies need not wait on one by one
        for (int j = 0, at = from; j < n; j++, at += stride) {
            int c = 0;
            for (; c + 32 <= width; c += 32) {
                even += a[at + c];
                odd += a[at + c + 16];
            }
            if (c < width) even += a[at + c];
            odd += a[at + width - 1];
        }
        return even + odd;
    }

    /** kT[d * KEY_BLOCK + j] = k[first + j * rowStride + d] for j < n, 0 for j in [n, KEY_BLOCK). */
    private static void transposeKeys(float[] k, int first, int rowStride, int n, int dh, float[] kT) {
        int d0 = 0;
        if (Transpose.AVAILABLE && n == KEY_BLOCK) {
            int size = Transpose.SIZE;
            for (; d0 + size <= dh; d0 += size) {
                for (int j0 = 0; j0 < KEY_BLOCK; j0 += size) {
                    Transpose.block(k, first + j0 * rowStride + d0, rowStride, 1f, kT, d0 * KEY_BLOCK + j0, KEY_BLOCK);
                }
            }
        }
        for (int j = 0; j < KEY_BLOCK; j++) {
            for (int d = d0, at = first + j * rowStride; d < dh; d++) kT[d * KEY_BLOCK + j] = j < n ? k[at + d] : 0f;
        }
    }

    /**
     * sc[scAt + j] = scale · Σ_d q[qAt + d] k[kAt + j kRow + d] for the block's keys j < n, Dh a multiple of L: per key a
     * vector of products over d, then the L vectors' lane sums at once by a tree of lane exchanges, so
     * that lane j of the result holds key j's sum. Stage s (8, 4, 2, 1) pairs vector x with vector x + s
     * and adds the halves that differ in lane bit s: lanes with that bit clear keep x's partial sums,
     * the others x + s's. No transposition of the keys (which costs more than the products for so few
     * queries), and the sums in a fixed order. L keys at a time: the block's 16 at once with 16 lanes, two
     * runs of 8 with 8 lanes, whose tree has no stage s = 8 (L is a constant, so C2 drops the other
     * width's code, as in {@link #quadScores}). Keys at or past n read the last one again: maskScores puts
     * -infinity in their lanes.
     */
    private static void dotScores(float[] q, int qAt, float scale, float[] k, int kAt, int kRow, int n, int dh,
            float[] sc, int scAt) {
        for (int first = 0; first < KEY_BLOCK; first += L) {
            int r0 = kAt + Math.min(first, n - 1) * kRow, r1 = kAt + Math.min(first + 1, n - 1) * kRow;
            int r2 = kAt + Math.min(first + 2, n - 1) * kRow, r3 = kAt + Math.min(first + 3, n - 1) * kRow;
            int r4 = kAt + Math.min(first + 4, n - 1) * kRow, r5 = kAt + Math.min(first + 5, n - 1) * kRow;
            int r6 = kAt + Math.min(first + 6, n - 1) * kRow, r7 = kAt + Math.min(first + 7, n - 1) * kRow;
            int r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
            if (L == 16) {
                r8 = kAt + Math.min(first + 8, n - 1) * kRow;
                r9 = kAt + Math.min(first + 9, n - 1) * kRow;
                r10 = kAt + Math.min(first + 10, n - 1) * kRow;
                r11 = kAt + Math.min(first + 11, n - 1) * kRow;
                r12 = kAt + Math.min(first + 12, n - 1) * kRow;
                r13 = kAt + Math.min(first + 13, n - 1) * kRow;
                r14 = kAt + Math.min(first + 14, n - 1) * kRow;
                r15 = kAt + Math.min(first + 15, n - 1) * kRow;
            }
            FloatVector v0 = FloatVector.zero(S), v1 = v0, v2 = v0, v3 = v0, v4 = v0, v5 = v0, v6 = v0, v7 = v0;
            FloatVector v8 = v0, v9 = v0, v10 = v0, v11 = v0, v12 = v0, v13 = v0, v14 = v0, v15 = v0;
            for (int d = 0; d + L <= dh; d += L) {
                FloatVector x = FloatVector.fromArray(S, q, qAt + d);
                v0 = x.fma(FloatVector.fromArray(S, k, r0 + d), v0);
                v1 = x.fma(FloatVector.fromArray(S, k, r1 + d), v1);
                v2 = x.fma(FloatVector.fromArray(S, k, r2 + d), v2);
                v3 = x.fma(FloatVector.fromArray(S, k, r3 + d), v3);
                v4 = x.fma(FloatVector.fromArray(S, k, r4 + d), v4);
                v5 = x.fma(FloatVector.fromArray(S, k, r5 + d), v5);
                v6 = x.fma(FloatVector.fromArray(S, k, r6 + d), v6);
                v7 = x.fma(FloatVector.fromArray(S, k, r7 + d), v7);
                if (L == 16) {
                    v8 = x.fma(FloatVector.fromArray(S, k, r8 + d), v8);
                    v9 = x.fma(FloatVector.fromArray(S, k, r9 + d), v9);
                    v10 = x.fma(FloatVector.fromArray(S, k, r10 + d), v10);
                    v11 = x.fma(FloatVector.fromArray(S, k, r11 + d), v11);
                    v12 = x.fma(FloatVector.fromArray(S, k, r12 + d), v12);
                    v13 = x.fma(FloatVector.fromArray(S, k, r13 + d), v13);
                    v14 = x.fma(FloatVector.fromArray(S, k, r14 + d), v14);
                    v15 = x.fma(FloatVector.fromArray(S, k, r15 + d), v15);
                }
            }
            if (L == 16) { // s = 8
                v0 = v0.blend(v8, BIT8).add(v8.blend(v0, BIT8).rearrange(SWAP8));
                v1 = v1.blend(v9, BIT8).add(v9.blend(v1, BIT8).rearrange(SWAP8));
                v2 = v2.blend(v10, BIT8).add(v10.blend(v2, BIT8).rearrange(SWAP8));
                v3 = v3.blend(v11, BIT8).add(v11.blend(v3, BIT8).rearrange(SWAP8));
                v4 = v4.blend(v12, BIT8).add(v12.blend(v4, BIT8).rearrange(SWAP8));
                v5 = v5.blend(v13, BIT8).add(v13.blend(v5, BIT8).rearrange(SWAP8));
                v6 = v6.blend(v14, BIT8).add(v14.blend(v6, BIT8).rearrange(SWAP8));
                v7 = v7.blend(v15, BIT8).add(v15.blend(v7, BIT8).rearrange(SWAP8));
            }
            // s = 4
            v0 = v0.blend(v4, BIT4).add(v4.blend(v0, BIT4).rearrange(SWAP4));
            v1 = v1.blend(v5, BIT4).add(v5.blend(v1, BIT4).rearrange(SWAP4));
            v2 = v2.blend(v6, BIT4).add(v6.blend(v2, BIT4).rearrange(SWAP4));
            v3 = v3.blend(v7, BIT4).add(v7.blend(v3, BIT4).rearrange(SWAP4));
            // s = 2
            v0 = v0.blend(v2, BIT2).add(v2.blend(v0, BIT2).rearrange(SWAP2));
            v1 = v1.blend(v3, BIT2).add(v3.blend(v1, BIT2).rearrange(SWAP2));
            // s = 1
            v0 = v0.blend(v1, BIT1).add(v1.blend(v0, BIT1).rearrange(SWAP1));
            v0.mul(scale).intoArray(sc, scAt + first);
        }
    }

    /** sc[scAt + j] = scale · Σ_d q[qAt + d] kT[d, j], in four partial sums over d (one would be a chain of FMA latencies). */
    private static void scores(float[] q, int qAt, float scale, int dh, float[] kT, float[] sc, int scAt) {
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
            a0.add(a1).add(a2.add(a3)).mul(scale).intoArray(sc, scAt + c);
        }
    }

    /** In query i's scores of the block, key j at sc[at + j stride] (stride 1 in a row, 4 in a quad's key-major
     *  scores): adds the bias, and puts -infinity at masked keys, keys past query i's causal limit and past the
     *  block's n. */
    private static void maskScores(AttentionShape s, int b, int h, int i, int j0, int n, float[] mask, float[] bias,
            float[] sc, int at, int stride) {
        int last = Math.min(n - 1, s.lastKey(i) - j0);
        for (int j = Math.max(last + 1, 0); j < KEY_BLOCK; j++) sc[at + j * stride] = Float.NEGATIVE_INFINITY;
        if (bias != null) {
            for (int j = 0, x = s.biasAt(b, h, i) + j0 * s.biasStride(3); j <= last; j++, x += s.biasStride(3)) {
                sc[at + j * stride] += bias[x];
            }
        }
        if (mask != null) {
            for (int j = 0; j <= last; j++) {
                if (mask[b * s.keys + j0 + j] == 0f) sc[at + j * stride] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    /** The largest of sc's row at {@code at}. */
    private static float maxOf(float[] sc, int at) {
        FloatVector m = FloatVector.fromArray(S, sc, at);
        for (int c = L; c < KEY_BLOCK; c += L) m = m.max(FloatVector.fromArray(S, sc, at + c));
        return m.reduceLanes(VectorOperators.MAX); // exact in any order
    }

    /** sc[at + j] = e^(sc[at + j] - base) in place; returns their sum, added in a fixed order. */
    private static float exponentials(float[] sc, int at, float base) {
        FloatVector total = FloatVector.zero(S);
        for (int c = 0; c < KEY_BLOCK; c += L) {
            FloatVector p = VectorMath.exp(FloatVector.fromArray(S, sc, at + c).sub(base));
            p.intoArray(sc, at + c);
            total = total.add(p);
        }
        return VectorMath.sum(total);
    }

    /** acc[at ..+ dv] = acc · alpha + Σ_{j < n} p[pAt + j pStride] · v[vAt + j vRow ..]. */
    private static void addValues(int n, float[] p, int pAt, int pStride, float[] v, int vAt, int vRow, int dv,
            float[] acc, int at, float alpha) {
        int c = 0;
        // four columns' vectors at a time: four independent chains of FMAs instead of one
        for (; c + 4 * L <= dv; c += 4 * L) {
            FloatVector o0 = FloatVector.fromArray(S, acc, at + c).mul(alpha);
            FloatVector o1 = FloatVector.fromArray(S, acc, at + c + L).mul(alpha);
            FloatVector o2 = FloatVector.fromArray(S, acc, at + c + 2 * L).mul(alpha);
            FloatVector o3 = FloatVector.fromArray(S, acc, at + c + 3 * L).mul(alpha);
            for (int j = 0; j < n; j++) {
                FloatVector x = FloatVector.broadcast(S, p[pAt + j * pStride]);
                int row = vAt + j * vRow + c;
                o0 = x.fma(FloatVector.fromArray(S, v, row), o0);
                o1 = x.fma(FloatVector.fromArray(S, v, row + L), o1);
                o2 = x.fma(FloatVector.fromArray(S, v, row + 2 * L), o2);
                o3 = x.fma(FloatVector.fromArray(S, v, row + 3 * L), o3);
            }
            o0.intoArray(acc, at + c);
            o1.intoArray(acc, at + c + L);
            o2.intoArray(acc, at + c + 2 * L);
            o3.intoArray(acc, at + c + 3 * L);
        }
        for (; c + L <= dv; c += L) {
            FloatVector o = FloatVector.fromArray(S, acc, at + c).mul(alpha);
            for (int j = 0; j < n; j++) o = FloatVector.broadcast(S, p[pAt + j * pStride]).fma(FloatVector.fromArray(S, v, vAt + j * vRow + c), o);
            o.intoArray(acc, at + c);
        }
        for (; c < dv; c++) {
            float o = acc[at + c] * alpha;
            for (int j = 0; j < n; j++) o += p[pAt + j * pStride] * v[vAt + j * vRow + c];
            acc[at + c] = o;
        }
    }
}
