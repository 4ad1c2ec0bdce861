package org.mmfuse.backend;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention on the Vector API, flash-style: keys in blocks, an online softmax (running maximum and
 * denominator per query, the accumulated output rescaled when the maximum grows), no Lq x Lk buffer
 * unless the weights are asked for. Tasks are (batch, head, run of query tiles), claimed by all cores.
 *
 * <p>This kernel takes the calls that want the weights; {@link FewQueryAttention} those with a handful
 * of queries, {@link QueryLaneAttention} the others. Per block of QB queries and KEY_BLOCK keys, two register-tiled micro-kernels do the arithmetic,
 * as in the GEMM: {@code scoreTile} computes QB x 2L of the scores (twice per block) from the queries packed d-major
 * and the head's keys transposed to kᵀ [Dh, Lk] (vector lanes over keys, no horizontal sums), and
 * {@code valueTile} adds P · V into a QB x 2L slice of the output accumulator (lanes over Dv). Between
 * them, the masks, the row maxima and the exponentials ({@link VectorMath#exp}) run over the
 * score tile.
 */
final class VectorAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Queries per tile: 14 x 2 accumulators fill AVX-512's 32 registers (see VectorGemm); 4 x 2 on 16 (AVX2). */
    private static final int QB = L >= 16 ? 14 : 4;
    /** Keys per tile: four vectors, scored in two halves; the softmax's row reductions are per tile. */
    private static final int KEY_BLOCK = 4 * L;
    /** Tasks wanted per thread: heads are split into runs of query tiles only below this. */
    private static final int TASKS_PER_THREAD = 4;
    /** Below this many flops one thread finishes before a second would have started. */
    private static final long PARALLEL_FLOPS = 1 << 18;

    /** Per-thread scratch, fetched once per task and grown on demand: fresh arrays would be zeroed in
     *  cold memory for every task. */
    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    private static final class Workspace {
        float[] keysT = new float[0], queries = new float[0], output = new float[0];
        final float[] scores = new float[QB * KEY_BLOCK];
        final float[] max = new float[QB], sum = new float[QB], alpha = new float[QB]; // alpha: a block's rescaling
        final float[] lanes = new float[L]; // one vector's lanes, summed in a fixed order

        private int[] gather = new int[L];
        private int gatherStride = -1;

        /** {0, stride, 2 stride, ...}: the index map that gathers one element from each of L rows. */
        int[] gatherIndex(int stride) {
            if (stride != gatherStride) {
                for (int l = 0; l < L; l++) gather[l] = l * stride;
                gatherStride = stride;
            }
            return gather;
        }
    }

    private VectorAttention() {}

    static void run(AttentionShape s, float[] q, float[] k, float[] v, float[] mask, float[] bias, float[] out,
            float[] lse, float[] weights) {
        if (s.batch == 0 || s.heads == 0 || s.queries == 0) return;
        if (FewQueryAttention.takes(s, weights != null)) {
            FewQueryAttention.run(s, q, k, v, mask, bias, out, lse);
            return;
        }
        if (QueryLaneAttention.takes(s, weights != null)) {
            QueryLaneAttention.run(s, q, k, v, mask, bias, out, lse);
            return;
        }
        // A task is a head's run of query tiles; one run per head (one transposition of its keys) unless
        // there are too few heads to keep every thread busy.
        int tiles = (s.queries + QB - 1) / QB, heads = s.batch * s.heads;
        int wanted = TASKS_PER_THREAD * CpuThreads.SHARED.threads();
        int runs = Math.min(tiles, Math.max(1, (wanted + heads - 1) / heads));
        int tilesPerRun = (tiles + runs - 1) / runs;
        int tasks = heads * runs;
        boolean parallel = s.flops() >= PARALLEL_FLOPS;
        CpuThreads.SHARED.run(parallel ? tasks : 1, t -> {
            for (int task = parallel ? t : 0; task < (parallel ? t + 1 : tasks); task++) {
                int b = task / (s.heads * runs), h = task / runs % s.heads, run = task % runs;
                int i0 = run * tilesPerRun * QB, i1 = Math.min(s.queries, i0 + tilesPerRun * QB);
                if (i0 >= i1) continue;
                Workspace w = WORKSPACE.get();
                Head head = new Head(s, b, h, k, w);
                for (int i = i0; i < i1; i += QB) {
                    tile(s, head, w, i, Math.min(QB, i1 - i), q, v, mask, bias, out, lse, weights);
                }
            }
        });
    }

    /** One head's keys transposed to kᵀ [Dh, stride], stride = Lk rounded up to a key block, zero-padded. */
    private static final class Head {
        final int b, h, stride;
        final float[] keysT;

        Head(AttentionShape s, int b, int h, float[] k, Workspace w) {
            this.b = b;
            this.h = h;
            stride = (s.keys + KEY_BLOCK - 1) / KEY_BLOCK * KEY_BLOCK;
            keysT = w.keysT = Scratch.atLeast(w.keysT, s.headDim * stride);
            for (int d = 0; d < s.headDim; d++) Arrays.fill(keysT, d * stride + s.keys, (d + 1) * stride, 0f);
            // L keys at a time: one gather per d collects their d-th elements into kᵀ's row d
            int rowStride = s.heads * s.headDim, first = (b * s.keys * s.heads + h) * s.headDim;
            int[] rows = w.gatherIndex(rowStride);
            int j0 = 0;
            for (; j0 + L <= s.keys; j0 += L) {
                int at = first + j0 * rowStride;
                for (int d = 0; d < s.headDim; d++) FloatVector.fromArray(S, k, at + d, rows, 0).intoArray(keysT, d * stride + j0);
            }
            for (int j = j0; j < s.keys; j++) {
                for (int d = 0, at = first + j * rowStride; d < s.headDim; d++) keysT[d * stride + j] = k[at + d];
            }
        }
    }

    /** Queries [i0, i0 + rows) of one head, rows <= QB; the rows past them are zero and ignored. */
    private static void tile(AttentionShape s, Head head, Workspace w, int i0, int rows, float[] q, float[] v,
            float[] mask, float[] bias, float[] out, float[] lse, float[] weights) {
        int b = head.b, h = head.h, dv = s.valueDim;
        int ldo = (dv + 2 * L - 1) / (2 * L) * (2 * L); // valueTile's slices are 2L wide
        float[] packedQ = w.queries = Scratch.atLeast(w.queries, s.headDim * QB);
        float[] acc = w.output = Scratch.atLeast(w.output, QB * ldo);
        float[] sc = w.scores, max = w.max, sum = w.sum, alpha = w.alpha;
        // the tile's queries, scaled, row after row; rows past the tile's are zero
        Arrays.fill(packedQ, rows * s.headDim, QB * s.headDim, 0f);
        for (int i = 0; i < rows; i++) {
            scaleInto(q, ((b * s.queries + i0 + i) * s.heads + h) * s.headDim, s.scale, packedQ, i * s.headDim, s.headDim);
        }
        Arrays.fill(acc, 0, QB * ldo, 0f);
        Arrays.fill(max, 0, QB, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0, QB, 0f);
        int lastKey = s.lastKey(i0 + rows - 1); // the tile's last query sees the most keys
        int vStride = s.heads * dv;
        for (int j0 = 0; j0 <= lastKey; j0 += KEY_BLOCK) {
            int n = Math.min(KEY_BLOCK, lastKey + 1 - j0);
            for (int c0 = 0; c0 < n; c0 += 2 * L) {
                if (QB == 14) scoreTile(s.headDim, packedQ, head.keysT, head.stride, j0, c0, sc);
                else QueryLaneAttention.scores4(s.headDim, head.keysT, j0 + c0, head.stride, packedQ, 0, s.headDim,
                        2 * s.headDim, 3 * s.headDim, sc, c0, KEY_BLOCK);
            }
            maskTile(s, b, h, i0, rows, j0, n, mask, bias, sc);
            if (weights != null) {
                for (int i = 0; i < rows; i++) {
                    System.arraycopy(sc, i * KEY_BLOCK, weights, ((b * s.heads + h) * s.queries + i0 + i) * s.keys + j0, n);
                }
            }
            softmaxStep(rows, max, sum, alpha, sc, w.lanes);
            int vAt = (b * s.keys + j0) * vStride + h * dv;
            int c0 = 0;
            for (; c0 + 2 * L <= dv; c0 += 2 * L) {
                if (QB == 14) valueTile(n, sc, v, vAt, vStride, c0, acc, ldo, alpha);
                else QueryLaneAttention.values4(n, sc, 0, 1, KEY_BLOCK, v, vAt + c0, vStride, acc, c0, ldo, alpha, 0);
            }
            for (int i = 0; i < QB; i++) { // columns past the last whole pair of vectors
                for (int c = c0; c < dv; c++) {
                    float o = acc[i * ldo + c] * alpha[i];
                    for (int j = 0; j < n; j++) o += sc[i * KEY_BLOCK + j] * v[vAt + j * vStride + c];
                    acc[i * ldo + c] = o;
                }
            }
        }
        for (int i = 0; i < rows; i++) {
            int row = (b * s.heads + h) * s.queries + i0 + i;
            float inverse = sum[i] == 0f ? 0f : 1f / sum[i];
            int oAt = ((b * s.queries + i0 + i) * s.heads + h) * dv;
            // A row with no key gets zeros even where a masked key's NaN reached its accumulator (0 * NaN).
            if (sum[i] == 0f) Arrays.fill(out, oAt, oAt + dv, 0f); else scaleInto(acc, i * ldo, inverse, out, oAt, dv);
            if (lse != null) lse[row] = sum[i] == 0f ? Float.NEGATIVE_INFINITY : max[i] + (float) Math.log(sum[i]);
            if (weights != null) normaliseWeights(weights, row * s.keys, s.keys, s.lastKey(i0 + i), max[i], inverse);
        }
    }

    /**
     * Adds the bias, and puts -infinity where a row may not look: past its causal limit, at masked keys,
     * past the block's n keys.
     */
    private static void maskTile(AttentionShape s, int b, int h, int i0, int rows, int j0, int n, float[] mask,
            float[] bias, float[] sc) {
        for (int i = 0; i < QB; i++) {
            int last = i < rows ? Math.min(n - 1, s.lastKey(i0 + i) - j0) : -1;
            for (int c = Math.max(last + 1, 0); c < KEY_BLOCK; c++) sc[i * KEY_BLOCK + c] = Float.NEGATIVE_INFINITY;
            if (bias != null && last >= 0) {
                int at = s.biasAt(b, h, i0 + i) + j0 * s.biasStride(3), step = s.biasStride(3);
                for (int c = 0; c <= last; c++, at += step) sc[i * KEY_BLOCK + c] += bias[at];
            }
            if (mask != null) {
                for (int c = 0; c <= last; c++) {
                    if (mask[b * s.keys + j0 + c] == 0f) sc[i * KEY_BLOCK + c] = Float.NEGATIVE_INFINITY;
                }
            }
        }
    }

    /**
     * The online softmax over one score tile: per row, the new running maximum, the factor alpha that
     * rescales what was accumulated so far, the exponentials in place of the scores, and the new
     * denominator. A row with nothing attended yet keeps zeros.
     */
    private static void softmaxStep(int rows, float[] max, float[] sum, float[] alpha, float[] sc, float[] lanes) {
        for (int i = 0; i < QB; i++) {
            int at = i * KEY_BLOCK;
            FloatVector s0 = FloatVector.fromArray(S, sc, at), s1 = FloatVector.fromArray(S, sc, at + L);
            FloatVector s2 = FloatVector.fromArray(S, sc, at + 2 * L), s3 = FloatVector.fromArray(S, sc, at + 3 * L);
            float newMax = Math.max(max[i], s0.max(s1).max(s2.max(s3)).reduceLanes(VectorOperators.MAX));
            if (newMax == Float.NEGATIVE_INFINITY || i >= rows) {
                Arrays.fill(sc, at, at + KEY_BLOCK, 0f);
                alpha[i] = 1f;
                continue;
            }
            FloatVector e0 = VectorMath.exp(s0.sub(newMax)), e1 = VectorMath.exp(s1.sub(newMax));
            FloatVector e2 = VectorMath.exp(s2.sub(newMax)), e3 = VectorMath.exp(s3.sub(newMax));
            e0.intoArray(sc, at);
            e1.intoArray(sc, at + L);
            e2.intoArray(sc, at + 2 * L);
            e3.intoArray(sc, at + 3 * L);
            float rescale = (float) Math.exp(max[i] - newMax); // 0 while nothing was attended
            alpha[i] = rescale;
            // the lanes summed in memory in a fixed order: the same bits interpreted or compiled (reduceLanes'
            // order is the JIT's choice), and no call on a vector inside this loop
            e0.add(e1).add(e2.add(e3)).intoArray(lanes, 0);
            float blockSum = 0f;
            for (int l = 0; l < L; l++) blockSum += lanes[l];
            sum[i] = sum[i] * rescale + blockSum;
            max[i] = newMax;
        }
    }

    /** sc[i * KEY_BLOCK + c0 + c] = Σ_d qp[i * dh + d] · kT[d * stride + j0 + c0 + c] for i < QB, c < 2L. */
    private static void scoreTile(int dh, float[] qp, float[] kT, int stride, int j0, int c0, float[] sc) {
        FloatVector s00 = FloatVector.zero(S), s01 = s00, s10 = s00, s11 = s00, s20 = s00;
        FloatVector s21 = s00, s30 = s00, s31 = s00, s40 = s00, s41 = s00, s50 = s00;
        FloatVector s51 = s00, s60 = s00, s61 = s00, s70 = s00, s71 = s00, s80 = s00;
        FloatVector s81 = s00, s90 = s00, s91 = s00, s100 = s00, s101 = s00, s110 = s00;
        FloatVector s111 = s00, s120 = s00, s121 = s00, s130 = s00, s131 = s00;
        for (int d = 0, at = j0 + c0; d < dh; d++, at += stride) {
            FloatVector k0 = FloatVector.fromArray(S, kT, at), k1 = FloatVector.fromArray(S, kT, at + L);
            FloatVector x = FloatVector.broadcast(S, qp[d]);
            s00 = x.fma(k0, s00);
            s01 = x.fma(k1, s01);
            x = FloatVector.broadcast(S, qp[1 * dh + d]);
            s10 = x.fma(k0, s10);
            s11 = x.fma(k1, s11);
            x = FloatVector.broadcast(S, qp[2 * dh + d]);
            s20 = x.fma(k0, s20);
            s21 = x.fma(k1, s21);
            x = FloatVector.broadcast(S, qp[3 * dh + d]);
            s30 = x.fma(k0, s30);
            s31 = x.fma(k1, s31);
            x = FloatVector.broadcast(S, qp[4 * dh + d]);
            s40 = x.fma(k0, s40);
            s41 = x.fma(k1, s41);
            x = FloatVector.broadcast(S, qp[5 * dh + d]);
            s50 = x.fma(k0, s50);
            s51 = x.fma(k1, s51);
            x = FloatVector.broadcast(S, qp[6 * dh + d]);
            s60 = x.fma(k0, s60);
            s61 = x.fma(k1, s61);
            x = FloatVector.broadcast(S, qp[7 * dh + d]);
            s70 = x.fma(k0, s70);
            s71 = x.fma(k1, s71);
            x = FloatVector.broadcast(S, qp[8 * dh + d]);
            s80 = x.fma(k0, s80);
            s81 = x.fma(k1, s81);
            x = FloatVector.broadcast(S, qp[9 * dh + d]);
            s90 = x.fma(k0, s90);
            s91 = x.fma(k1, s91);
            x = FloatVector.broadcast(S, qp[10 * dh + d]);
            s100 = x.fma(k0, s100);
            s101 = x.fma(k1, s101);
            x = FloatVector.broadcast(S, qp[11 * dh + d]);
            s110 = x.fma(k0, s110);
            s111 = x.fma(k1, s111);
            x = FloatVector.broadcast(S, qp[12 * dh + d]);
            s120 = x.fma(k0, s120);
            s121 = x.fma(k1, s121);
            x = FloatVector.broadcast(S, qp[13 * dh + d]);
            s130 = x.fma(k0, s130);
            s131 = x.fma(k1, s131);
        }
        s00.intoArray(sc, 0 * KEY_BLOCK + c0);
        s01.intoArray(sc, 0 * KEY_BLOCK + c0 + L);
        s10.intoArray(sc, 1 * KEY_BLOCK + c0);
        s11.intoArray(sc, 1 * KEY_BLOCK + c0 + L);
        s20.intoArray(sc, 2 * KEY_BLOCK + c0);
        s21.intoArray(sc, 2 * KEY_BLOCK + c0 + L);
        s30.intoArray(sc, 3 * KEY_BLOCK + c0);
        s31.intoArray(sc, 3 * KEY_BLOCK + c0 + L);
        s40.intoArray(sc, 4 * KEY_BLOCK + c0);
        s41.intoArray(sc, 4 * KEY_BLOCK + c0 + L);
        s50.intoArray(sc, 5 * KEY_BLOCK + c0);
        s51.intoArray(sc, 5 * KEY_BLOCK + c0 + L);
        s60.intoArray(sc, 6 * KEY_BLOCK + c0);
        s61.intoArray(sc, 6 * KEY_BLOCK + c0 + L);
        s70.intoArray(sc, 7 * KEY_BLOCK + c0);
        s71.intoArray(sc, 7 * KEY_BLOCK + c0 + L);
        s80.intoArray(sc, 8 * KEY_BLOCK + c0);
        s81.intoArray(sc, 8 * KEY_BLOCK + c0 + L);
        s90.intoArray(sc, 9 * KEY_BLOCK + c0);
        s91.intoArray(sc, 9 * KEY_BLOCK + c0 + L);
        s100.intoArray(sc, 10 * KEY_BLOCK + c0);
        s101.intoArray(sc, 10 * KEY_BLOCK + c0 + L);
        s110.intoArray(sc, 11 * KEY_BLOCK + c0);
        s111.intoArray(sc, 11 * KEY_BLOCK + c0 + L);
        s120.intoArray(sc, 12 * KEY_BLOCK + c0);
        s121.intoArray(sc, 12 * KEY_BLOCK + c0 + L);
        s130.intoArray(sc, 13 * KEY_BLOCK + c0);
        s131.intoArray(sc, 13 * KEY_BLOCK + c0 + L);
    }

    /**
     * Columns [c0, c0 + 2L) of o [QB, ldo]: o[i] = o[i] · alpha[i] + Σ_j p[i * KEY_BLOCK + j] · v[vAt + j · vStride + c0]
     * over the block's keys j < n.
     */
    private static void valueTile(int n, float[] p, float[] v, int vAt, int vStride, int c0, float[] o, int ldo,
            float[] alpha) {
        FloatVector a0 = FloatVector.broadcast(S, alpha[0]);
        FloatVector o00 = FloatVector.fromArray(S, o, 0 * ldo + c0).mul(a0), o01 = FloatVector.fromArray(S, o, 0 * ldo + c0 + L).mul(a0);
        FloatVector a1 = FloatVector.broadcast(S, alpha[1]);
        FloatVector o10 = FloatVector.fromArray(S, o, 1 * ldo + c0).mul(a1), o11 = FloatVector.fromArray(S, o, 1 * ldo + c0 + L).mul(a1);
        FloatVector a2 = FloatVector.broadcast(S, alpha[2]);
        FloatVector o20 = FloatVector.fromArray(S, o, 2 * ldo + c0).mul(a2), o21 = FloatVector.fromArray(S, o, 2 * ldo + c0 + L).mul(a2);
        FloatVector a3 = FloatVector.broadcast(S, alpha[3]);
        FloatVector o30 = FloatVector.fromArray(S, o, 3 * ldo + c0).mul(a3), o31 = FloatVector.fromArray(S, o, 3 * ldo + c0 + L).mul(a3);
        FloatVector a4 = FloatVector.broadcast(S, alpha[4]);
        FloatVector o40 = FloatVector.fromArray(S, o, 4 * ldo + c0).mul(a4), o41 = FloatVector.fromArray(S, o, 4 * ldo + c0 + L).mul(a4);
        FloatVector a5 = FloatVector.broadcast(S, alpha[5]);
        FloatVector o50 = FloatVector.fromArray(S, o, 5 * ldo + c0).mul(a5), o51 = FloatVector.fromArray(S, o, 5 * ldo + c0 + L).mul(a5);
        FloatVector a6 = FloatVector.broadcast(S, alpha[6]);
        FloatVector o60 = FloatVector.fromArray(S, o, 6 * ldo + c0).mul(a6), o61 = FloatVector.fromArray(S, o, 6 * ldo + c0 + L).mul(a6);
        FloatVector a7 = FloatVector.broadcast(S, alpha[7]);
        FloatVector o70 = FloatVector.fromArray(S, o, 7 * ldo + c0).mul(a7), o71 = FloatVector.fromArray(S, o, 7 * ldo + c0 + L).mul(a7);
        FloatVector a8 = FloatVector.broadcast(S, alpha[8]);
        FloatVector o80 = FloatVector.fromArray(S, o, 8 * ldo + c0).mul(a8), o81 = FloatVector.fromArray(S, o, 8 * ldo + c0 + L).mul(a8);
        FloatVector a9 = FloatVector.broadcast(S, alpha[9]);
        FloatVector o90 = FloatVector.fromArray(S, o, 9 * ldo + c0).mul(a9), o91 = FloatVector.fromArray(S, o, 9 * ldo + c0 + L).mul(a9);
        FloatVector a10 = FloatVector.broadcast(S, alpha[10]);
        FloatVector o100 = FloatVector.fromArray(S, o, 10 * ldo + c0).mul(a10), o101 = FloatVector.fromArray(S, o, 10 * ldo + c0 + L).mul(a10);
        FloatVector a11 = FloatVector.broadcast(S, alpha[11]);
        FloatVector o110 = FloatVector.fromArray(S, o, 11 * ldo + c0).mul(a11), o111 = FloatVector.fromArray(S, o, 11 * ldo + c0 + L).mul(a11);
        FloatVector a12 = FloatVector.broadcast(S, alpha[12]);
        FloatVector o120 = FloatVector.fromArray(S, o, 12 * ldo + c0).mul(a12), o121 = FloatVector.fromArray(S, o, 12 * ldo + c0 + L).mul(a12);
        FloatVector a13 = FloatVector.broadcast(S, alpha[13]);
        FloatVector o130 = FloatVector.fromArray(S, o, 13 * ldo + c0).mul(a13), o131 = FloatVector.fromArray(S, o, 13 * ldo + c0 + L).mul(a13);
        for (int j = 0, at = vAt + c0; j < n; j++, at += vStride) {
            FloatVector v0 = FloatVector.fromArray(S, v, at), v1 = FloatVector.fromArray(S, v, at + L);
            FloatVector x = FloatVector.broadcast(S, p[j]);
            o00 = x.fma(v0, o00);
            o01 = x.fma(v1, o01);
            x = FloatVector.broadcast(S, p[1 * KEY_BLOCK + j]);
            o10 = x.fma(v0, o10);
            o11 = x.fma(v1, o11);
            x = FloatVector.broadcast(S, p[2 * KEY_BLOCK + j]);
            o20 = x.fma(v0, o20);
            o21 = x.fma(v1, o21);
            x = FloatVector.broadcast(S, p[3 * KEY_BLOCK + j]);
            o30 = x.fma(v0, o30);
            o31 = x.fma(v1, o31);
            x = FloatVector.broadcast(S, p[4 * KEY_BLOCK + j]);
            o40 = x.fma(v0, o40);
            o41 = x.fma(v1, o41);
            x = FloatVector.broadcast(S, p[5 * KEY_BLOCK + j]);
            o50 = x.fma(v0, o50);
            o51 = x.fma(v1, o51);
            x = FloatVector.broadcast(S, p[6 * KEY_BLOCK + j]);
            o60 = x.fma(v0, o60);
            o61 = x.fma(v1, o61);
            x = FloatVector.broadcast(S, p[7 * KEY_BLOCK + j]);
            o70 = x.fma(v0, o70);
            o71 = x.fma(v1, o71);
            x = FloatVector.broadcast(S, p[8 * KEY_BLOCK + j]);
            o80 = x.fma(v0, o80);
            o81 = x.fma(v1, o81);
            x = FloatVector.broadcast(S, p[9 * KEY_BLOCK + j]);
            o90 = x.fma(v0, o90);
            o91 = x.fma(v1, o91);
            x = FloatVector.broadcast(S, p[10 * KEY_BLOCK + j]);
            o100 = x.fma(v0, o100);
            o101 = x.fma(v1, o101);
            x = FloatVector.broadcast(S, p[11 * KEY_BLOCK + j]);
            o110 = x.fma(v0, o110);
            o111 = x.fma(v1, o111);
            x = FloatVector.broadcast(S, p[12 * KEY_BLOCK + j]);
            o120 = x.fma(v0, o120);
            o121 = x.fma(v1, o121);
            x = FloatVector.broadcast(S, p[13 * KEY_BLOCK + j]);
            o130 = x.fma(v0, o130);
            o131 = x.fma(v1, o131);
        }
        o00.intoArray(o, 0 * ldo + c0);
        o01.intoArray(o, 0 * ldo + c0 + L);
        o10.intoArray(o, 1 * ldo + c0);
        o11.intoArray(o, 1 * ldo + c0 + L);
        o20.intoArray(o, 2 * ldo + c0);
        o21.intoArray(o, 2 * ldo + c0 + L);
        o30.intoArray(o, 3 * ldo + c0);
        o31.intoArray(o, 3 * ldo + c0 + L);
        o40.intoArray(o, 4 * ldo + c0);
        o41.intoArray(o, 4 * ldo + c0 + L);
        o50.intoArray(o, 5 * ldo + c0);
        o51.intoArray(o, 5 * ldo + c0 + L);
        o60.intoArray(o, 6 * ldo + c0);
        o61.intoArray(o, 6 * ldo + c0 + L);
        o70.intoArray(o, 7 * ldo + c0);
        o71.intoArray(o, 7 * ldo + c0 + L);
        o80.intoArray(o, 8 * ldo + c0);
        o81.intoArray(o, 8 * ldo + c0 + L);
        o90.intoArray(o, 9 * ldo + c0);
        o91.intoArray(o, 9 * ldo + c0 + L);
        o100.intoArray(o, 10 * ldo + c0);
        o101.intoArray(o, 10 * ldo + c0 + L);
        o110.intoArray(o, 11 * ldo + c0);
        o111.intoArray(o, 11 * ldo + c0 + L);
        o120.intoArray(o, 12 * ldo + c0);
        o121.intoArray(o, 12 * ldo + c0 + L);
        o130.intoArray(o, 13 * ldo + c0);
        o131.intoArray(o, 13 * ldo + c0 + L);
    }

    /** to[toAt ..] = factor · from[fromAt ..], n floats. */
    static void scaleInto(float[] from, int fromAt, float factor, float[] to, int toAt, int n) {
        int c = 0;
        for (; c <= n - L; c += L) FloatVector.fromArray(S, from, fromAt + c).mul(factor).intoArray(to, toAt + c);
        for (; c < n; c++) to[toAt + c] = from[fromAt + c] * factor;
    }

    /** The stored scaled scores of one query become softmax weights; keys past the causal limit get 0. */
    private static void normaliseWeights(float[] w, int at, int keys, int lastKey, float max, float inverse) {
        int visible = inverse == 0f ? 0 : Math.max(0, Math.min(keys, lastKey + 1)), j = 0;
        // vectorised: a scalar Math.exp per weight was a third of the time of 32,8,32,196 with weights
        for (; j + L <= visible; j += L) {
            FloatVector x = FloatVector.fromArray(S, w, at + j);
            VectorMath.exp(x.sub(max)).mul(inverse).blend(0f, x.compare(VectorOperators.EQ, Float.NEGATIVE_INFINITY))
                    .intoArray(w, at + j);
        }
        for (; j < visible; j++) { // masked keys get 0 even in a NaN row
            w[at + j] = w[at + j] == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(w[at + j] - max) * inverse;
        }
        Arrays.fill(w, at + visible, at + keys, 0f);
    }
}
