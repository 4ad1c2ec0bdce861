package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention on the Vector API with the vector lanes over queries: a tile of QL = 2L queries is held
 * transposed, qᵀ [Dh, QL], so that one key row broadcast element by element against it gives that
 * key's scores for all QL queries at once. The keys and values are read row by row (no transposed
 * copy of the head's keys, which {@link VectorAttention} needs for its key lanes), each head's keys
 * once per tile of QL queries: in place when there are one or two tiles, else from a plain copy of a run of
 * heads' rows (see {@link #headsPerCopy}); the online softmax is elementwise over the lanes (no
 * horizontal reductions). P V keeps the lanes over the queries on AVX2, accumulating oᵀ [Dv, QL] with one value
 * row's elements broadcast, transposed into the output at the end; on AVX-512 it turns to lanes over Dv,
 * reading the probabilities as broadcast scalars (see {@link #VALUES_BY_QUERY_LANES}). Taken without weights
 * from {@link FewQueryAttention#QUERIES} queries (see {@link #takes}).
 *
 * <p>Register-tiled micro-kernels, 8 x 2 vectors each on AVX-512, 5 x 2 on AVX2: {@code scores8} (8 keys x QL
 * queries, over Dh), {@code values8} (8 queries x 2L output columns, over a block's keys) and {@code valuesT5}
 * (5 output columns x QL queries). Written out without helpers taking vectors, which C2 would not inline at
 * this size (see VectorGemm).
 */
final class QueryLaneAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Queries per tile: two vectors. */
    private static final int QL = 2 * L;
    /**
     * Key rows of a scores kernel call: 8 (x 2 vectors) where there are 32 vector registers (AVX-512); 5 where
     * there are 16 (AVX2), so that no accumulator spills. Five rather than four: one-JVM A/B (2026-11-24,
     * Zen 4, JDK 25), 32,8,32,196 58 -> 65 GFLOP/s, 64,12,128,128 79 -> 88, 4,8,1024,1024,128 82 -> 90;
     * JDK 17 37 -> 43 and 68 -> 72. Six keys (a block of 126) ran 20% slower inside the kernel, although
     * faster alone.
     */
    private static final int KEY_ROWS = L >= 16 ? 8 : 5;
    /**
     * Keys per softmax block at most: the scores of a block are exponentiated and applied together. An 8 KiB
     * block of scores whatever the width (64 keys x 32 lanes on AVX-512, 128 x 16 on AVX2): fewer blocks
     * mean fewer rescalings of the output accumulator.
     */
    private static final int KEY_BLOCK = 2048 / QL;
    /**
     * Whether P V keeps the lanes over the queries (16 vector registers, AVX2): oᵀ [Dv, QL] accumulates in
     * 5 x 2 kernels shaped like the scores kernel ({@link #valuesByQueryLanes}). With the lanes over Dv, the
     * registers allowed 4 x 2 kernels only (five queries do not divide a tile's 16), and P V ran at half the
     * speed of the scores. One-JVM A/B (2026-11-24, Zen 4), GFLOP/s before / after: JDK 25 32,8,32,196 83 / 98,
     * 64,12,128,128 98 / 104, 8,8,64,256 86 / 97, 4,8,1024,1024,128 98 / 106; JDK 17 45 / 50 and 69 / 71;
     * outputs bit-identical (the same sums in the same order). AVX-512 keeps its 8 x 2 kernels over Dv.
     */
    private static final boolean VALUES_BY_QUERY_LANES = L < 16;
    /** Tasks wanted per thread, when a task is a run of heads whose rows it copies. */
    private static final int TASKS_PER_THREAD = 4;
    /** Tasks per thread when the rows are read in place: runs of consecutive tiles. */
    private static final int RUNS_PER_THREAD = 8;
    /** Bytes of keys and values a task copies at most: half of a 2 MiB L2. */
    private static final long COPY_BYTES = 1 << 20;
    /** Below this many flops one thread finishes before a second would have started. */
    private static final long PARALLEL_FLOPS = 1 << 18;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    /** Per-thread scratch, grown on demand and reused (fresh arrays are zeroed in cold memory). */
    private static final class Workspace {
        float[] queriesT = new float[0], output = new float[0], keys = new float[0], values = new float[0];
        /** A block's scores, pᵀ [keys, QL]; its last call of the scores kernel may write past KEY_BLOCK keys. */
        final float[] scoresT = new float[(KEY_BLOCK + KEY_ROWS - 1) * QL];
        /** Per query lane: the running maximum and denominator, and the last block's rescaling. */
        final float[] max = new float[QL], sum = new float[QL], alpha = new float[QL];
        final int[] keyRows = new int[KEY_ROWS];
        final int[] biasIndex = new int[L];
        final float[] biasLanes = new float[L];
    }

    private QueryLaneAttention() {}

    /** Whether this kernel takes the call: no weights asked, and too many queries for {@link FewQueryAttention}. */
    static boolean takes(AttentionShape s, boolean weights) {
        return !weights && s.queries >= FewQueryAttention.QUERIES;
    }

    static void run(AttentionShape s, float[] q, float[] k, float[] v, float[] mask, float[] bias, float[] out,
            float[] lse) {
        int tiles = (s.queries + QL - 1) / QL, group = headsPerCopy(s);
        boolean parallel = s.flops() >= PARALLEL_FLOPS;
        if (group == 0) {
            // Reading the keys and values in place, a task is a run of consecutive (batch, head, tile) items:
            // a core going from head h to h + 1 reads the cache lines next to those it just read, which its
            // prefetchers fetch ahead (tasks of one tile, alternating between the cores, ran 32,8,32,196
            // at 141 GFLOP/s, runs of them at 168).
            int items = s.batch * s.heads * tiles;
            int perTask = Math.max(1, items / (RUNS_PER_THREAD * CpuThreads.SHARED.threads()));
            int tasks = (items + perTask - 1) / perTask;
            CpuThreads.SHARED.run(parallel ? tasks : 1, t -> {
                int first = parallel ? t * perTask : 0, last = parallel ? Math.min(items, first + perTask) : items;
                for (int item = first; item < last; item++) {
                    int b = item / tiles / s.heads, h = item / tiles % s.heads;
                    int kAt = (b * s.keys * s.heads + h) * s.headDim, vAt = (b * s.keys * s.heads + h) * s.valueDim;
                    tile(s, b, h, item % tiles * QL, q, k, kAt, s.heads * s.headDim, v, vAt, s.heads * s.valueDim,
                            mask, bias, out, lse, WORKSPACE.get());
                }
            });
            return;
        }
        int groups = (s.heads + group - 1) / group, tasks = s.batch * groups;
        CpuThreads.SHARED.run(parallel ? tasks : 1, t -> {
            for (int task = parallel ? t : 0; task < (parallel ? t + 1 : tasks); task++) {
                int b = task / groups, h0 = task % groups * group, h1 = Math.min(s.heads, h0 + group);
                Workspace w = WORKSPACE.get();
                copyHeads(s, b, h0, h1, k, v, w);
                for (int h = h0; h < h1; h++) {
                    int kAt = (h - h0) * s.keys * s.headDim, vAt = (h - h0) * s.keys * s.valueDim;
                    for (int i = 0; i < s.queries; i += QL) {
                        tile(s, b, h, i, q, w.keys, kAt, s.headDim, w.values, vAt, s.valueDim, mask, bias, out, lse, w);
                    }
                }
            }
        });
    }

    /**
     * How many heads a task copies the keys and values of before it computes them (0: none, read in
     * place): as many as fit {@link #COPY_BYTES}, and few enough for {@link #TASKS_PER_THREAD} tasks a
     * thread. In place, a head's rows lie H Dh floats apart, and each head of each tile starts by
     * missing in cache on rows the hardware prefetchers do not see coming (for B=64, H=12,
     * Lq=Lk=128, Dh=64, K and V of one batch element kept in L2 ran 25% faster); one batch element's
     * rows over a run of heads are long contiguous runs that they do.
     */
    private static int headsPerCopy(AttentionShape s) {
        // One tile reads each row once: a copy would only add to it. With two, the second finds the rows in L2;
        // the copy was neutral for 8,8,64,256 on AVX-512 and took 15% of 32,8,32,196's samples on AVX2.
        if (s.queries <= 2 * QL) return 0;
        long perHead = (long) s.keys * (s.headDim + s.valueDim) * Float.BYTES;
        long wanted = (long) TASKS_PER_THREAD * CpuThreads.SHARED.threads();
        long fit = COPY_BYTES / Math.max(1, perHead), spread = (long) s.batch * s.heads / wanted;
        return (int) Math.min(s.heads, Math.min(fit, spread));
    }

    /** Keys and values of heads [h0, h1) of batch element b, row after row, to kc [h1 - h0, Lk, Dh] and
     *  vc [h1 - h0, Lk, Dv] in the workspace. */
    private static void copyHeads(AttentionShape s, int b, int h0, int h1, float[] k, float[] v, Workspace w) {
        int heads = h1 - h0, dh = s.headDim, dv = s.valueDim;
        float[] kc = w.keys = Scratch.atLeast(w.keys, heads * s.keys * dh);
        float[] vc = w.values = Scratch.atLeast(w.values, heads * s.keys * dv);
        for (int j = 0; j < s.keys; j++) {
            int kFrom = ((b * s.keys + j) * s.heads + h0) * dh, vFrom = ((b * s.keys + j) * s.heads + h0) * dv;
            for (int h = 0; h < heads; h++) {
                System.arraycopy(k, kFrom + h * dh, kc, (h * s.keys + j) * dh, dh);
                System.arraycopy(v, vFrom + h * dv, vc, (h * s.keys + j) * dv, dv);
            }
        }
    }

    /** Queries [i0, i0 + QL) of head (b, h); lanes past Lq compute on zeros and are not written. */
    private static void tile(AttentionShape s, int b, int h, int i0, float[] q, float[] k, int kFirst, int kRow,
            float[] v, int vFirst, int vRow, float[] mask, float[] bias, float[] out, float[] lse, Workspace w) {
        int dh = s.headDim, dv = s.valueDim, rows = Math.min(QL, s.queries - i0);
        float[] qT = w.queriesT = Scratch.atLeast(w.queriesT, dh * QL);
        int ldo = Math.max(dv, 1);
        float[] o = w.output = Scratch.atLeast(w.output, QL * ldo);
        float[] sT = w.scoresT, max = w.max, sum = w.sum, alpha = w.alpha;
        packQueries(q, ((b * s.queries + i0) * s.heads + h) * dh, s.heads * dh, rows, dh, s.scale, qT);
        Arrays.fill(o, 0, QL * ldo, 0f);
        Arrays.fill(max, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0f);

        int lastKey = s.lastKey(i0 + rows - 1); // the tile's last query sees the most keys
        // blocks of equal length (a whole number of KEY_ROWS): no short last block paying a block's fixed costs
        int blocks = Math.max(1, (lastKey + KEY_BLOCK) / KEY_BLOCK), perBlock = (lastKey + blocks) / blocks;
        perBlock = Math.min(KEY_BLOCK, (perBlock + KEY_ROWS - 1) / KEY_ROWS * KEY_ROWS);
        for (int j0 = 0; j0 <= lastKey; j0 += perBlock) {
            int n = Math.min(perBlock, lastKey + 1 - j0);
            int[] keyRows = w.keyRows;
            for (int j = 0; j < n; j += KEY_ROWS) {
                // KEY_ROWS keys at a time; past the block's n keys the last row is read again, and never used
                for (int x = 0; x < KEY_ROWS; x++) keyRows[x] = kFirst + Math.min(j0 + j + x, j0 + n - 1) * kRow;
                if (KEY_ROWS == 8) {
                    scores8(dh, qT, k, keyRows[0], keyRows[1], keyRows[2], keyRows[3], keyRows[4], keyRows[5],
                            keyRows[6], keyRows[7], sT, j * QL);
                } else {
                    scores5(dh, qT, k, keyRows[0], keyRows[1], keyRows[2], keyRows[3], keyRows[4], sT, j * QL);
                }
            }
            maskBlock(s, b, h, i0, j0, n, mask, bias, sT, w);

            softmaxBlock(n, sT, max, sum, alpha);
            int vAt = vFirst + j0 * vRow;
            if (VALUES_BY_QUERY_LANES) valuesByQueryLanes(n, sT, v, vAt, vRow, dv, o, alpha);
            else valuesByColumnLanes(n, sT, rows, v, vAt, vRow, dv, o, ldo, alpha);
        }

        if (VALUES_BY_QUERY_LANES) writeTransposed(s, b, h, i0, rows, o, sum, out);
        else writeRows(s, b, h, i0, rows, o, ldo, sum, out);
        if (lse != null) {
            for (int i = 0; i < rows; i++) {
                lse[(b * s.heads + h) * s.queries + i0 + i] =
                        sum[i] == 0f ? Float.NEGATIVE_INFINITY : max[i] + (float) Math.log(sum[i]);
            }
        }
    }

    // The transposition and the vector kernels are methods of their own, which keeps tile() small:
    // C2 gives up intrinsifying Vector API calls inlined into a method past its node budget.

    /** qᵀ[d, i] = scale · q[first + i qRow + d] for i < rows, 0 for the lanes past them. In blocks
     *  transposed in registers ({@link Transpose}), element by element for the rest (read
     *  row by row: with d outer, the loads would walk q at a stride of H Dh floats, which maps its rows
     *  onto a few L1 sets). This copy was a sixth of the time of B=64, H=12, Lq=Lk=128 element by element. */
    private static void packQueries(float[] q, int first, int qRow, int rows, int dh, float scale, float[] qT) {
        int size = Transpose.SIZE, blockRows = size > 0 ? rows / size * size : 0, blockCols = size > 0 ? dh / size * size : 0;
        for (int i = 0; i < blockRows; i += size) {
            for (int d = 0; d < blockCols; d += size) Transpose.block(q, first + i * qRow + d, qRow, scale, qT, d * QL + i, QL);
        }
        for (int i = 0, from = first; i < rows; i++, from += qRow) {
            for (int d = i < blockRows ? blockCols : 0; d < dh; d++) qT[d * QL + i] = q[from + d] * scale;
        }
        for (int d = 0; d < dh; d++) Arrays.fill(qT, d * QL + rows, (d + 1) * QL, 0f);
    }

    /**
     * The online softmax over one block of scores, elementwise over the query lanes: the new running
     * maxima, the factors alpha that rescale what was accumulated, the exponentials in place of the
     * scores, the new denominators. A lane with nothing attended yet keeps base 0, so its
     * exponentials are exp(-inf) = 0.
     */
    private static void softmaxBlock(int n, float[] sT, float[] max, float[] sum, float[] alpha) {
        for (int lanes = 0; lanes < QL; lanes += L) {
            // four running maxima: Java's max (NaN and -0 rules) compiles to a chain of about 12 cycles a step
            FloatVector oldMax = FloatVector.fromArray(S, max, lanes), m0 = oldMax, m1 = oldMax, m2 = oldMax, m3 = oldMax;
            int j = 0;
            for (; j + 4 <= n; j += 4) {
                m0 = m0.max(FloatVector.fromArray(S, sT, j * QL + lanes));
                m1 = m1.max(FloatVector.fromArray(S, sT, (j + 1) * QL + lanes));
                m2 = m2.max(FloatVector.fromArray(S, sT, (j + 2) * QL + lanes));
                m3 = m3.max(FloatVector.fromArray(S, sT, (j + 3) * QL + lanes));
            }
            for (; j < n; j++) m0 = m0.max(FloatVector.fromArray(S, sT, j * QL + lanes));
            FloatVector newMax = m0.max(m1).max(m2.max(m3));
            FloatVector base = newMax.blend(0f, newMax.compare(VectorOperators.EQ, Float.NEGATIVE_INFINITY));
            FloatVector rescale = VectorMath.exp(oldMax.sub(base));
            FloatVector blockSum = FloatVector.zero(S);
            for (j = 0; j < n; j++) {
                FloatVector p = VectorMath.exp(FloatVector.fromArray(S, sT, j * QL + lanes).sub(base));
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
        if (bias != null && s.biasStride(2) != 0) {
            biasIndex = w.biasIndex;
            for (int l = 0; l < L; l++) biasIndex[l] = l * s.biasStride(2);
        }
        for (int j = 0; j < n; j++) {
            int key = j0 + j, at = j * QL;
            if (mask != null && mask[b * s.keys + key] == 0f) {
                Arrays.fill(sT, at, at + QL, Float.NEGATIVE_INFINITY);
                continue;
            }
            FloatVector s0 = FloatVector.fromArray(S, sT, at), s1 = FloatVector.fromArray(S, sT, at + L);
            if (bias != null) {
                int first = s.biasAt(b, h, i0) + key * s.biasStride(3);
                if (biasIndex == null) {
                    s0 = s0.add(bias[first]);
                    s1 = s1.add(bias[first]);
                } else {
                    s0 = s0.add(FloatVector.fromArray(S, biasLanes(bias, first, biasIndex, s.queries - i0, w.biasLanes), 0));
                    s1 = s1.add(FloatVector.fromArray(S, biasLanes(bias, first + L * s.biasStride(2), biasIndex,
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

    /** scores8 for 5 key rows (16 vector registers: ten accumulators, two query vectors, a broadcast). */
    private static void scores5(int dh, float[] qT, float[] k, int k0, int k1, int k2, int k3, int k4, float[] sT, int at) {
        FloatVector a00 = FloatVector.zero(S), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00;
        FloatVector a31 = a00, a40 = a00, a41 = a00;
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
    }

    /**
     * A 4 x 2 scores kernel for 16 vector registers (see VectorGemm's kernel4), written for any layout:
     * out[outAt + x outStride ..+ 2L) = Σ_{d < dh} rows[rx + d] · panel[panelAt + d panelStride ..+ 2L) for the 4
     * rows x. VectorAttention's weights path passes its queries as the rows and kᵀ as the panel.
     */
    static void scores4(int dh, float[] panel, int panelAt, int panelStride, float[] rows, int r0, int r1, int r2,
            int r3, float[] out, int outAt, int outStride) {
        FloatVector a00 = FloatVector.zero(S), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00;
        FloatVector a31 = a00;
        for (int d = 0, at = panelAt; d < dh; d++, at += panelStride) {
            FloatVector q0 = FloatVector.fromArray(S, panel, at), q1 = FloatVector.fromArray(S, panel, at + L);
            FloatVector x = FloatVector.broadcast(S, rows[r0 + d]);
            a00 = x.fma(q0, a00);
            a01 = x.fma(q1, a01);
            x = FloatVector.broadcast(S, rows[r1 + d]);
            a10 = x.fma(q0, a10);
            a11 = x.fma(q1, a11);
            x = FloatVector.broadcast(S, rows[r2 + d]);
            a20 = x.fma(q0, a20);
            a21 = x.fma(q1, a21);
            x = FloatVector.broadcast(S, rows[r3 + d]);
            a30 = x.fma(q0, a30);
            a31 = x.fma(q1, a31);
        }
        a00.intoArray(out, outAt);
        a01.intoArray(out, outAt + L);
        a10.intoArray(out, outAt + outStride);
        a11.intoArray(out, outAt + outStride + L);
        a20.intoArray(out, outAt + 2 * outStride);
        a21.intoArray(out, outAt + 2 * outStride + L);
        a30.intoArray(out, outAt + 3 * outStride);
        a31.intoArray(out, outAt + 3 * outStride + L);
    }

    /**
     * o[g + x][c .. c + 2L) = o[g + x][..] · alpha[g + x] + Σ_{j < n} pᵀ[j, g + x] · v[vAt + j vRow ..] for the
     * 8 queries g + x (o's rows are ldo apart, from oAt). In the tile's last group the rows past Lq
     * accumulate what their zero queries give and are never written out; o has room for all QL rows.
     */
    private static void values8(int n, float[] pT, int g, float[] v, int vAt, int vRow, float[] o, int oAt, int ldo,
            float[] alpha) {
        FloatVector o00 = FloatVector.fromArray(S, o, oAt).mul(alpha[g]);
        FloatVector o01 = FloatVector.fromArray(S, o, oAt + L).mul(alpha[g]);
        FloatVector o10 = FloatVector.fromArray(S, o, oAt + ldo).mul(alpha[g + 1]);
        FloatVector o11 = FloatVector.fromArray(S, o, oAt + ldo + L).mul(alpha[g + 1]);
        FloatVector o20 = FloatVector.fromArray(S, o, oAt + 2 * ldo).mul(alpha[g + 2]);
        FloatVector o21 = FloatVector.fromArray(S, o, oAt + 2 * ldo + L).mul(alpha[g + 2]);
        FloatVector o30 = FloatVector.fromArray(S, o, oAt + 3 * ldo).mul(alpha[g + 3]);
        FloatVector o31 = FloatVector.fromArray(S, o, oAt + 3 * ldo + L).mul(alpha[g + 3]);
        FloatVector o40 = FloatVector.fromArray(S, o, oAt + 4 * ldo).mul(alpha[g + 4]);
        FloatVector o41 = FloatVector.fromArray(S, o, oAt + 4 * ldo + L).mul(alpha[g + 4]);
        FloatVector o50 = FloatVector.fromArray(S, o, oAt + 5 * ldo).mul(alpha[g + 5]);
        FloatVector o51 = FloatVector.fromArray(S, o, oAt + 5 * ldo + L).mul(alpha[g + 5]);
        FloatVector o60 = FloatVector.fromArray(S, o, oAt + 6 * ldo).mul(alpha[g + 6]);
        FloatVector o61 = FloatVector.fromArray(S, o, oAt + 6 * ldo + L).mul(alpha[g + 6]);
        FloatVector o70 = FloatVector.fromArray(S, o, oAt + 7 * ldo).mul(alpha[g + 7]);
        FloatVector o71 = FloatVector.fromArray(S, o, oAt + 7 * ldo + L).mul(alpha[g + 7]);
        for (int j = 0, at = vAt, p = g; j < n; j++, at += vRow, p += QL) {
            FloatVector v0 = FloatVector.fromArray(S, v, at), v1 = FloatVector.fromArray(S, v, at + L);
            FloatVector x = FloatVector.broadcast(S, pT[p]);
            o00 = x.fma(v0, o00);
            o01 = x.fma(v1, o01);
            x = FloatVector.broadcast(S, pT[p + 1]);
            o10 = x.fma(v0, o10);
            o11 = x.fma(v1, o11);
            x = FloatVector.broadcast(S, pT[p + 2]);
            o20 = x.fma(v0, o20);
            o21 = x.fma(v1, o21);
            x = FloatVector.broadcast(S, pT[p + 3]);
            o30 = x.fma(v0, o30);
            o31 = x.fma(v1, o31);
            x = FloatVector.broadcast(S, pT[p + 4]);
            o40 = x.fma(v0, o40);
            o41 = x.fma(v1, o41);
            x = FloatVector.broadcast(S, pT[p + 5]);
            o50 = x.fma(v0, o50);
            o51 = x.fma(v1, o51);
            x = FloatVector.broadcast(S, pT[p + 6]);
            o60 = x.fma(v0, o60);
            o61 = x.fma(v1, o61);
            x = FloatVector.broadcast(S, pT[p + 7]);
            o70 = x.fma(v0, o70);
            o71 = x.fma(v1, o71);
        }
        o00.intoArray(o, oAt);
        o01.intoArray(o, oAt + L);
        o10.intoArray(o, oAt + ldo);
        o11.intoArray(o, oAt + ldo + L);
        o20.intoArray(o, oAt + 2 * ldo);
        o21.intoArray(o, oAt + 2 * ldo + L);
        o30.intoArray(o, oAt + 3 * ldo);
        o31.intoArray(o, oAt + 3 * ldo + L);
        o40.intoArray(o, oAt + 4 * ldo);
        o41.intoArray(o, oAt + 4 * ldo + L);
        o50.intoArray(o, oAt + 5 * ldo);
        o51.intoArray(o, oAt + 5 * ldo + L);
        o60.intoArray(o, oAt + 6 * ldo);
        o61.intoArray(o, oAt + 6 * ldo + L);
        o70.intoArray(o, oAt + 7 * ldo);
        o71.intoArray(o, oAt + 7 * ldo + L);
    }

    /**
     * values8 for 4 queries, for 16 vector registers, written for any layout of the probabilities:
     * o[oAt + x ldo ..+ 2L) = o[..] · alpha[alphaAt + x] + Σ_{j < n} p[pAt + j pKey + x pQuery] · v[vAt + j vRow ..+ 2L)
     * for the 4 queries x. VectorAttention's weights path passes [QB, KEY_BLOCK] rows (pKey = 1, pQuery =
     * KEY_BLOCK), FewQueryAttention's quads their key-major scores (pKey = 4, pQuery = 1).
     */
    static void values4(int n, float[] p, int pAt, int pKey, int pQuery, float[] v, int vAt, int vRow, float[] o,
            int oAt, int ldo, float[] alpha, int alphaAt) {
        FloatVector o00 = FloatVector.fromArray(S, o, oAt).mul(alpha[alphaAt]);
        FloatVector o01 = FloatVector.fromArray(S, o, oAt + L).mul(alpha[alphaAt]);
        FloatVector o10 = FloatVector.fromArray(S, o, oAt + ldo).mul(alpha[alphaAt + 1]);
        FloatVector o11 = FloatVector.fromArray(S, o, oAt + ldo + L).mul(alpha[alphaAt + 1]);
        FloatVector o20 = FloatVector.fromArray(S, o, oAt + 2 * ldo).mul(alpha[alphaAt + 2]);
        FloatVector o21 = FloatVector.fromArray(S, o, oAt + 2 * ldo + L).mul(alpha[alphaAt + 2]);
        FloatVector o30 = FloatVector.fromArray(S, o, oAt + 3 * ldo).mul(alpha[alphaAt + 3]);
        FloatVector o31 = FloatVector.fromArray(S, o, oAt + 3 * ldo + L).mul(alpha[alphaAt + 3]);
        int p1 = pAt + pQuery, p2 = pAt + 2 * pQuery, p3 = pAt + 3 * pQuery;
        for (int j = 0, at = vAt, pj = 0; j < n; j++, at += vRow, pj += pKey) {
            FloatVector v0 = FloatVector.fromArray(S, v, at), v1 = FloatVector.fromArray(S, v, at + L);
            FloatVector x = FloatVector.broadcast(S, p[pAt + pj]);
            o00 = x.fma(v0, o00);
            o01 = x.fma(v1, o01);
            x = FloatVector.broadcast(S, p[p1 + pj]);
            o10 = x.fma(v0, o10);
            o11 = x.fma(v1, o11);
            x = FloatVector.broadcast(S, p[p2 + pj]);
            o20 = x.fma(v0, o20);
            o21 = x.fma(v1, o21);
            x = FloatVector.broadcast(S, p[p3 + pj]);
            o30 = x.fma(v0, o30);
            o31 = x.fma(v1, o31);
        }
        o00.intoArray(o, oAt);
        o01.intoArray(o, oAt + L);
        o10.intoArray(o, oAt + ldo);
        o11.intoArray(o, oAt + ldo + L);
        o20.intoArray(o, oAt + 2 * ldo);
        o21.intoArray(o, oAt + 2 * ldo + L);
        o30.intoArray(o, oAt + 3 * ldo);
        o31.intoArray(o, oAt + 3 * ldo + L);
    }

    /**
     * oᵀ[d, ..QL) = oᵀ[d, ..] · alpha + Σ_{j < n} v[vAt + j vRow + d] · pᵀ[j, ..QL) for all d < dv: the scores
     * kernel's shape (5 rows of Dv x 2 query vectors), with whole vectors of pᵀ and broadcasts along one value row.
     * Dv in runs of five rows, then of four (as many as leave a multiple of five for the fives, where Dv >= 16),
     * then single rows.
     */
    private static void valuesByQueryLanes(int n, float[] pT, float[] v, int vAt, int vRow, int dv, float[] oT,
            float[] alpha) {
        int fives = dv >= 16 ? (dv - 4 * (4 * dv % 5)) / 5 : 0, d = 0;
        for (int g = 0; g < fives; g++, d += 5) valuesT5(n, pT, v, vAt + d, vRow, oT, d * QL, alpha);
        for (; d + 4 <= dv; d += 4) valuesT4(n, pT, v, vAt + d, vRow, oT, d * QL, alpha);
        for (; d < dv; d++) valuesT1(n, pT, v, vAt + d, vRow, oT, d * QL, alpha);
    }

    /** Five rows of oᵀ, from oAt on (QL floats apart), for the five value columns from vAt on in each key's row. */
    private static void valuesT5(int n, float[] pT, float[] v, int vAt, int vRow, float[] oT, int oAt, float[] alpha) {
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
    }

    /** valuesT5 for 4 rows of Dv. */
    private static void valuesT4(int n, float[] pT, float[] v, int vAt, int vRow, float[] oT, int oAt, float[] alpha) {
        FloatVector r0 = FloatVector.fromArray(S, alpha, 0), r1 = FloatVector.fromArray(S, alpha, L);
        FloatVector o00 = FloatVector.fromArray(S, oT, oAt).mul(r0), o01 = FloatVector.fromArray(S, oT, oAt + L).mul(r1);
        FloatVector o10 = FloatVector.fromArray(S, oT, oAt + QL).mul(r0);
        FloatVector o11 = FloatVector.fromArray(S, oT, oAt + QL + L).mul(r1);
        FloatVector o20 = FloatVector.fromArray(S, oT, oAt + 2 * QL).mul(r0);
        FloatVector o21 = FloatVector.fromArray(S, oT, oAt + 2 * QL + L).mul(r1);
        FloatVector o30 = FloatVector.fromArray(S, oT, oAt + 3 * QL).mul(r0);
        FloatVector o31 = FloatVector.fromArray(S, oT, oAt + 3 * QL + L).mul(r1);
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
        }
        o00.intoArray(oT, oAt);
        o01.intoArray(oT, oAt + L);
        o10.intoArray(oT, oAt + QL);
        o11.intoArray(oT, oAt + QL + L);
        o20.intoArray(oT, oAt + 2 * QL);
        o21.intoArray(oT, oAt + 2 * QL + L);
        o30.intoArray(oT, oAt + 3 * QL);
        o31.intoArray(oT, oAt + 3 * QL + L);
    }

    /** valuesT5 for one row of Dv. */
    private static void valuesT1(int n, float[] pT, float[] v, int vAt, int vRow, float[] oT, int oAt, float[] alpha) {
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

    /**
     * The tile's output from oᵀ [Dv, QL]: each query's column divided by its denominator (zeros where it
     * attended no key), transposed into out's rows, H Dv floats apart, by {@link Transpose} blocks.
     */
    private static void writeTransposed(AttentionShape s, int b, int h, int i0, int rows, float[] oT, float[] sum,
            float[] out) {
        int dv = s.valueDim, outRow = s.heads * dv, first = ((b * s.queries + i0) * s.heads + h) * dv;
        FloatVector one = FloatVector.broadcast(S, 1f);
        FloatVector s0 = FloatVector.fromArray(S, sum, 0), s1 = FloatVector.fromArray(S, sum, L);
        FloatVector inv0 = one.div(s0).blend(0f, s0.eq(0f)), inv1 = one.div(s1).blend(0f, s1.eq(0f));
        for (int d = 0; d < dv; d++) {
            FloatVector.fromArray(S, oT, d * QL).mul(inv0).intoArray(oT, d * QL);
            FloatVector.fromArray(S, oT, d * QL + L).mul(inv1).intoArray(oT, d * QL + L);
        }
        int size = Transpose.SIZE;
        int blockRows = size > 0 ? rows / size * size : 0, blockCols = size > 0 ? dv / size * size : 0;
        for (int i = 0; i < blockRows; i += size) {
            for (int d = 0; d < blockCols; d += size) {
                Transpose.block(oT, d * QL + i, QL, 1f, out, first + i * outRow + d, outRow);
            }
        }
        for (int i = 0, at = first; i < rows; i++, at += outRow) {
            for (int d = i < blockRows ? blockCols : 0; d < dv; d++) out[at + d] = oT[d * QL + i];
            // A row with no key gets zeros even where a masked key's NaN reached its accumulator (0 * NaN).
            if (sum[i] == 0f) Arrays.fill(out, at, at + dv, 0f);
        }
    }

    /** o = o · alpha + P V with lanes over Dv (AVX-512): groups of 8 queries times 2L columns, then the rest. */
    private static void valuesByColumnLanes(int n, float[] pT, int rows, float[] v, int vAt, int vRow, int dv,
            float[] o, int ldo, float[] alpha) {
        int c = 0;
        for (; c + 2 * L <= dv; c += 2 * L) {
            for (int g = 0; g < rows; g += 8) values8(n, pT, g, v, vAt + c, vRow, o, g * ldo + c, ldo, alpha);
        }
        if (c < dv) valuesTail(n, pT, rows, v, vAt, vRow, c, dv, o, ldo, alpha);
    }

    /** The tile's output from o [QL, ldo]: each query's row divided by its denominator (zeros where it attended no key). */
    private static void writeRows(AttentionShape s, int b, int h, int i0, int rows, float[] o, int ldo, float[] sum,
            float[] out) {
        int dv = s.valueDim;
        for (int i = 0; i < rows; i++) {
            int oAt = ((b * s.queries + i0 + i) * s.heads + h) * dv;
            // A row with no key gets zeros even where a masked key's NaN reached its accumulator (0 * NaN).
            if (sum[i] == 0f) Arrays.fill(out, oAt, oAt + dv, 0f);
            else VectorAttention.scaleInto(o, i * ldo, 1f / sum[i], out, oAt, dv);
        }
    }

    /** values8 for columns [c0, dv), the ones past the last whole 2L, query by query. */
    private static void valuesTail(int n, float[] pT, int rows, float[] v, int vAt, int vRow, int c0, int dv, float[] o,
            int ldo, float[] alpha) {
        for (int i = 0; i < rows; i++) {
            for (int c = c0; c < dv; c++) {
                float acc = o[i * ldo + c] * alpha[i];
                for (int j = 0, at = vAt + c; j < n; j++, at += vRow) acc += pT[j * QL + i] * v[at];
                o[i * ldo + c] = acc;
            }
        }
    }
}
