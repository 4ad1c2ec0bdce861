package org.mmfuse.backend;

import static org.mmfuse.backend.TileProduct.NR;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.mmfuse.AttentionOptions;
import org.mmfuse.DType;
import org.mmfuse.Device;
import org.mmfuse.Tensor;

/**
 * Multi-head attention over projected keys and values with the projections folded into the products,
 * for one modality attending to another's wide features (text tokens to 2048-wide image regions).
 * With q_h the queries of head h, W_h its rows of a projection and X the key or value inputs:
 *
 * <pre>
 * scores_h = q_h (X W_kᵀ + b_k)_hᵀ = (q_h W_k,h) Xᵀ + (q_h · b_k,h per query: the same for every key, so no
 *            change to the softmax)
 * out_h    = P_h (X W_vᵀ + b_v)_h   = (P_h X) W_v,hᵀ + b_v,h (times Σ_j P_h = 1, or 0 for a query with no key)
 * </pre>
 *
 * Per batch element, the heads' queries stacked as M = H Lq rows: A = [q_h W_k,h] [M, kdim], S = A Xᵀ
 * (computed transposed, see {@link #probabilities}), P = softmax(S), T = P X [M, vdim], then each head's
 * T_h W_v,hᵀ. That is 2 M (kdim (Dh + Lk) + vdim (Lk + Dh)) flops against 2 Lk E (kdim + vdim) for
 * projecting the keys and values ({@link #flops}): fewer when Lq is short beside Lk and kdim, vdim wide
 * (8 heads of 32 queries over 196 regions of 2048: 545 against 835 MFLOP). Averaged over the queries
 * ({@link #runMean}), T needs one row per head, p̄_h X, instead of M. Threads take whole batch elements,
 * or with fewer elements than threads and more heads than elements, heads; every product is a
 * {@link TileProduct}.
 */
final class FoldedAttention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Fewer flops than this fraction of projecting first, or the projections run first. */
    private static final double CHEAPER = 0.8;
    /** Floats of one thread's largest intermediate (M rows of kdim or vdim) at most: 16 MB. */
    private static final long MAX_INTERMEDIATE = 1 << 22;

    /** Per-thread arrays, grown on demand and reused. */
    private static final class Workspace {
        float[] queries = new float[0], packedQueries = new float[0], stackedT = new float[0], packedKeys = new float[0];
        float[] scores = new float[0], packedScores = new float[0], packedValues = new float[0], mixed = new float[0];
        float[] meanRows = new float[0];
        final float[] tile = new float[TileProduct.MR * NR];
    }

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);
    /** The calling thread's packed weights (see {@link #packWeights}). */
    private static final ThreadLocal<float[]> PACKED_WEIGHTS = ThreadLocal.withInitial(() -> new float[0]);

    private FoldedAttention() {}

    /**
     * Whether the folded route takes the call: every argument well-formed for it (F32 on {@code device},
     * open, shapes that agree; no attention bias, causal mask or log-sum-exp), intermediates within
     * bounds, and fewer flops per busy thread than projecting first (a thread takes a batch element, or
     * with fewer elements than threads and more heads than elements, a head). With {@code mean}, the call is
     * {@link org.mmfuse.Ops#projectedAttentionMean} over the queries {@code queryMask} keeps (null: all),
     * which averages the probabilities before the values. Anything else takes the projections and
     * attention one after the other, which check and report every argument.
     */
    static boolean takes(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value, Tensor vWeight, Tensor vBias,
            AttentionOptions o, boolean mean, Tensor queryMask, Device device) {
        for (Tensor t : new Tensor[] {q, key, kWeight, value, vWeight, kBias, vBias, o.keyPaddingMask(), queryMask}) {
            if (t == null) continue;
            if (t.isClosed() || !t.device().equals(device) || t.dtype() != DType.F32) return false;
        }
        if (q == null || key == null || kWeight == null || value == null || vWeight == null) return false;
        if (o.bias() != null || o.causal() || o.returnsLogSumExp() || o.heads() <= 0) return false;
        if (mean && o.returnsWeights()) return false;
        if (q.rank() != 3 || key.rank() != 3 || value.rank() != 3 || kWeight.rank() != 2 || vWeight.rank() != 2) return false;
        long batch = q.size(0), lq = q.size(1), e = q.size(2), lk = key.size(1), kdim = key.size(2), vdim = value.size(2);
        long heads = o.heads(), dh = e / heads;
        boolean shapes = e % heads == 0 && dh > 0 && key.size(0) == batch && value.size(0) == batch && value.size(1) == lk
                && kWeight.size(0) == e && kWeight.size(1) == kdim && vWeight.size(0) == e && vWeight.size(1) == vdim
                && (kBias == null || kBias.rank() == 1 && kBias.size(0) == e)
                && (vBias == null || vBias.rank() == 1 && vBias.size(0) == e)
                && (o.keyPaddingMask() == null || o.keyPaddingMask().rank() == 2 && o.keyPaddingMask().size(0) == batch
                        && o.keyPaddingMask().size(1) == lk)
                && (queryMask == null || queryMask.rank() == 2 && queryMask.size(0) == batch && queryMask.size(1) == lq);
        if (!shapes || batch == 0 || lq == 0 || lk == 0 || kdim == 0 || vdim == 0) return false;
        // the fold drops the key bias, which shifts each query's scores evenly, unless it is not finite (NaN must show)
        if (kBias != null && !allFinite(kBias.array())) return false;
        long rows = heads * lq;
        if (rows * Math.max(Math.max(kdim, vdim), lk) > MAX_INTERMEDIATE) return false;
        double packedWeights = (double) e * (kdim + vdim) + NR * (e + heads * vdim); // with panel padding
        if (q.numel() > Integer.MAX_VALUE || key.numel() > Integer.MAX_VALUE || value.numel() > Integer.MAX_VALUE
                || batch * rows * lk > Integer.MAX_VALUE || packedWeights > Integer.MAX_VALUE) {
            return false;
        }
        int threads = CpuThreads.SHARED.threads();
        long busy = spreadsHeads(batch, heads, threads) ? Math.min(threads, heads) : Math.min(batch, threads);
        double projectFirst = 2.0 * batch * lk * e * (kdim + vdim) + 4.0 * batch * heads * lq * lk * dh;
        double folded = mean ? meanFlops(batch, lq, lk, heads, dh, kdim, vdim) : flops(batch, lq, lk, heads, dh, kdim, vdim);
        return folded / busy < CHEAPER * projectFirst / threads;
    }

    private static boolean allFinite(float[] values) {
        for (float v : values) if (!Float.isFinite(v)) return false;
        return true;
    }

    /** Whether {@link #run} and {@link #runMean} take the batch elements one at a time, their heads across the threads. */
    private static boolean spreadsHeads(long batch, long heads, int threads) {
        return batch < threads && heads > batch;
    }

    /** The folded route's flops (see the class comment). */
    static double flops(long batch, long lq, long lk, long heads, long dh, long kdim, long vdim) {
        return 2.0 * batch * heads * lq * (kdim * (dh + lk) + vdim * (lk + dh));
    }

    /** The folded route's flops with the probabilities averaged over the queries before the values. */
    static double meanFlops(long batch, long lq, long lk, long heads, long dh, long kdim, long vdim) {
        return 2.0 * batch * heads * (lq * kdim * (dh + lk) + lq * lk + vdim * (lk + dh));
    }

    /**
     * out [B, Lq, E] = the attention of q [B, Lq, E] (H heads of Dh) over key [B, Lk, kdim] W_kᵀ and
     * value [B, Lk, vdim] W_vᵀ + b_v, keys scaled by {@code scale}; {@code attend} [B, Lk] (non-zero =
     * attend) or null; the probabilities into weights [B, H, Lq, Lk] unless null. The key bias changes
     * nothing (see the class comment) and is not taken.
     */
    static void run(int batch, int lq, int lk, int heads, int dh, int kdim, int vdim, float scale, float[] q, float[] key,
            float[] kWeight, float[] value, float[] vWeight, float[] vBias, float[] attend, float[] out, float[] weights) {
        float[] packed = packWeights(heads, dh, kdim, vdim, kWeight, vWeight);
        forEachElement(batch, heads, (w, b) -> {
            packKeys(w, b, lk, kdim, key);
            packValues(w, b, lk, vdim, value);
            return true;
        }, (w, shared, b, h0, h1) -> outputHeads(w, shared.packedKeys, shared.packedValues, b, h0, h1, heads, lq, lk, dh,
                kdim, vdim, scale, q, packed, vBias, attend, out, weights));
    }

    /** Packs what batch element b's heads share into w; false when the element has nothing to compute. */
    private interface ElementSetup {
        boolean prepare(Workspace w, int b);
    }

    /** Heads [h0, h1) of batch element b, in the thread's own workspace, reading what setup packed in shared. */
    private interface HeadRange {
        void compute(Workspace own, Workspace shared, int b, int h0, int h1);
    }

    /**
     * Every batch element through setup, then its heads: each thread takes whole elements, or with fewer
     * elements than threads and more heads than elements ({@link #spreadsHeads}), the elements go one at
     * a time, set up in the caller's workspace, which every thread's heads read (and none writes).
     */
    private static void forEachElement(int batch, int heads, ElementSetup setup, HeadRange body) {
        if (!spreadsHeads(batch, heads, CpuThreads.SHARED.threads())) {
            CpuThreads.SHARED.run(batch, b -> {
                Workspace w = WORKSPACE.get();
                if (setup.prepare(w, b)) body.compute(w, w, b, 0, heads);
            });
            return;
        }
        Workspace caller = WORKSPACE.get();
        for (int b = 0; b < batch; b++) {
            if (!setup.prepare(caller, b)) continue;
            int element = b;
            CpuThreads.SHARED.run(heads, h -> body.compute(WORKSPACE.get(), caller, element, h, h + 1));
        }
    }

    /**
     * Heads [h0, h1) of batch element b for {@link #run}: their probabilities (into weights unless null),
     * T = P X and out[b, i, h Dh ..] = T_h W_v,hᵀ + b_v,h.
     */
    private static void outputHeads(Workspace w, float[] packedKeys, float[] packedValues, int b, int h0, int h1,
            int heads, int lq, int lk, int dh, int kdim, int vdim, float scale, float[] q, float[] packed, float[] vBias,
            float[] attend, float[] out, float[] weights) {
        int e = heads * dh, rows = (h1 - h0) * lq;
        int keyPanels = keyPanels(dh, kdim), valuePanels = TileProduct.packedBSize(vdim, dh);
        float[] scores = probabilities(w, packedKeys, b, h0, h1, lq, lk, e, dh, kdim, scale, q, packed, attend);
        boolean biased = vBias != null && anyKey(attend, b, lk);
        if (weights != null) System.arraycopy(scores, 0, weights, (b * heads + h0) * lq * lk, rows * lk);
        // T = P X: rows x vdim
        float[] mixed = w.mixed = Scratch.atLeast(w.mixed, rows * vdim);
        float[] packedScores = w.packedScores = Scratch.atLeast(w.packedScores, TileProduct.packedASize(rows, lk));
        TileProduct.packA(scores, 0, lk, 1, rows, lk, packedScores);
        TileProduct.multiply(rows, vdim, lk, packedScores, packedValues, w.tile,
                (t, row, col, n, m) -> store(t, n, m, 1f, mixed, row * vdim + col, vdim));
        // out[b, i, h Dh ..] = T_h W_v,hᵀ + b_v,h
        float[] queries = w.queries = Scratch.atLeast(w.queries, TileProduct.packedASize(lq, vdim));
        for (int h = h0; h < h1; h++) {
            int first = (h - h0) * lq, column = h * dh;
            TileProduct.packA(mixed, first * vdim, vdim, 1, lq, vdim, queries);
            TileProduct.multiply(lq, dh, vdim, queries, packed, heads * keyPanels + h * valuePanels, w.tile,
                    (t, row, col, n, m) -> {
                        for (int i = 0; i < n; i++) {
                            int to = (b * lq + row + i) * e + column + col;
                            for (int j = 0; j < m; j++) out[to + j] = t[i * NR + j] + (biased ? vBias[column + col + j] : 0f);
                        }
                    });
        }
    }

    /**
     * out [B, E] = {@link #run}'s output averaged over each batch element's queries that
     * {@code queryMask} [B, Lq] keeps (non-zero; null keeps all), zeros where it keeps none, computed as
     * p̄_h = the kept queries' mean probability row of head h, then (p̄_h X) W_v,hᵀ + b_v,h: one row of
     * values per head instead of Lq. With fewer batch elements than threads and more heads than elements,
     * the elements go one at a time, their heads across the threads (batch 1 would leave all but one
     * thread idle).
     */
    static void runMean(int batch, int lq, int lk, int heads, int dh, int kdim, int vdim, float scale, float[] q,
            float[] key, float[] kWeight, float[] value, float[] vWeight, float[] vBias, float[] attend,
            float[] queryMask, float[] out) {
        float[] packed = packWeights(heads, dh, kdim, 0, kWeight, null);
        int e = heads * dh;
        forEachElement(batch, heads, (w, b) -> {
            Arrays.fill(out, b * e, (b + 1) * e, 0f);
            if (kept(queryMask, b, lq) == 0 || !anyKey(attend, b, lk)) return false; // zeros
            packKeys(w, b, lk, kdim, key);
            return true;
        }, (w, shared, b, h0, h1) -> meanHeads(w, shared.packedKeys, b, h0, h1, lq, lk, e, dh, kdim, vdim, scale, q,
                packed, value, vWeight, vBias, attend, queryMask, out));
    }

    /**
     * Heads [h0, h1) of batch element b (which keeps a query and has a key) for {@link #runMean}: their
     * probabilities, mean rows p̄_h, T_h = p̄_h X and out[b, h Dh ..].
     */
    private static void meanHeads(Workspace w, float[] packedKeys, int b, int h0, int h1, int lq, int lk, int e, int dh,
            int kdim, int vdim, float scale, float[] q, float[] packed, float[] value, float[] vWeight, float[] vBias,
            float[] attend, float[] queryMask, float[] out) {
        int heads = h1 - h0;
        float[] scores = probabilities(w, packedKeys, b, h0, h1, lq, lk, e, dh, kdim, scale, q, packed, attend);
        // p̄ [heads, Lk]: each head's mean probability row over the kept queries
        float[] meanRows = w.meanRows = Scratch.atLeast(w.meanRows, heads * lk);
        Arrays.fill(meanRows, 0, heads * lk, 0f);
        float share = 1f / kept(queryMask, b, lq);
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < lq; i++) {
                if (queryMask == null || queryMask[b * lq + i] != 0f) {
                    VectorMath.axpy(share, scores, (h * lq + i) * lk, meanRows, h * lk, lk);
                }
            }
        }
        // T = p̄ X [heads, vdim], reading each value row once
        float[] mixed = w.mixed = Scratch.atLeast(w.mixed, heads * vdim);
        Arrays.fill(mixed, 0, heads * vdim, 0f);
        for (int j = 0; j < lk; j++) {
            for (int h = 0; h < heads; h++) {
                float p = meanRows[h * lk + j];
                if (p != 0f) VectorMath.axpy(p, value, (b * lk + j) * vdim, mixed, h * vdim, vdim);
            }
        }
        // out[b, h Dh + d] = T_h · W_v[h Dh + d] + b_v
        for (int h = 0; h < heads; h++) {
            for (int d = 0; d < dh; d++) {
                int unit = (h0 + h) * dh + d;
                out[b * e + unit] = VectorMath.dot(mixed, h * vdim, vWeight, unit * vdim, vdim)
                        + (vBias == null ? 0f : vBias[unit]);
            }
        }
    }

    /** How many of batch element b's queries the mask keeps (all without one). */
    private static int kept(float[] queryMask, int b, int lq) {
        if (queryMask == null) return lq;
        int kept = 0;
        for (int i = 0; i < lq; i++) if (queryMask[b * lq + i] != 0f) kept++;
        return kept;
    }

    /** Whether batch element b attends to any key (the mask is per element: every query alike). */
    private static boolean anyKey(float[] attend, int b, int lk) {
        if (attend == null) return true;
        for (int j = 0; j < lk; j++) if (attend[b * lk + j] != 0f) return true;
        return false;
    }

    /** Floats of one head's packed W_k,hᵀ. */
    private static int keyPanels(int dh, int kdim) {
        return TileProduct.packedASize(kdim, dh);
    }

    /**
     * The calling thread's packed weights: each head's W_k,hᵀ as A [kdim, Dh], then (for vdim > 0) each
     * head's W_v,hᵀ as B [vdim, Dh].
     */
    private static float[] packWeights(int heads, int dh, int kdim, int vdim, float[] kWeight, float[] vWeight) {
        int keyPanels = keyPanels(dh, kdim), valuePanels = vdim == 0 ? 0 : TileProduct.packedBSize(vdim, dh);
        float[] packed = Scratch.atLeast(PACKED_WEIGHTS.get(), heads * (keyPanels + valuePanels));
        PACKED_WEIGHTS.set(packed);
        // Heads in parallel: a head's last full panel step, written as one vector, runs L - MR floats into
        // the next head's first panel, with the very values that head writes there (W_k,hᵀ continues into
        // W_k,h+1ᵀ): a race only in name.
        CpuThreads.SHARED.run(heads, h -> {
            TileProduct.packA(kWeight, h * dh * kdim, 1, kdim, kdim, dh, packed, h * keyPanels);
            if (vdim > 0) {
                TileProduct.packB(vWeight, h * dh * vdim, 1, vdim, vdim, dh, packed, heads * keyPanels + h * valuePanels);
            }
        });
        return packed;
    }

    /** Batch element b's values X [Lk, vdim] as B panels, in w.packedValues. */
    private static void packValues(Workspace w, int b, int lk, int vdim, float[] value) {
        w.packedValues = Scratch.atLeast(w.packedValues, TileProduct.packedBSize(lk, vdim));
        TileProduct.packB(value, b * lk * vdim, vdim, 1, lk, vdim, w.packedValues);
    }

    /** Batch element b's keys X [Lk, kdim] as A panels, in w.packedKeys. */
    private static void packKeys(Workspace w, int b, int lk, int kdim, float[] key) {
        w.packedKeys = Scratch.atLeast(w.packedKeys, TileProduct.packedASize(lk, kdim));
        TileProduct.packA(key, b * lk * kdim, kdim, 1, lk, kdim, w.packedKeys);
    }

    /**
     * The attention probabilities of batch element b's heads [h0, h1), P [(h1 - h0) Lq, Lk] in w.scores
     * (masked-out keys 0, all 0 without a key), computed transposed so that no product's output needs
     * repacking: Aᵀ = [W_k,hᵀ (scale q_h)ᵀ] [kdim, rows] goes straight into the B panels of
     * Sᵀ = X Aᵀ [Lk, rows] (X from {@link #packKeys}), whose tiles land transposed in S; then P = softmax(S).
     */
    private static float[] probabilities(Workspace w, float[] packedKeys, int b, int h0, int h1, int lq, int lk, int e,
            int dh, int kdim, float scale, float[] q, float[] packed, float[] attend) {
        int rows = (h1 - h0) * lq, keyPanels = keyPanels(dh, kdim);
        float[] tile = w.tile;
        float[] stackedT = w.stackedT = Scratch.atLeast(w.stackedT, TileProduct.packedBSize(kdim, rows));
        float[] queries = w.packedQueries = Scratch.atLeast(w.packedQueries, TileProduct.packedBSize(dh, lq));
        for (int h = h0; h < h1; h++) {
            int first = (h - h0) * lq;
            TileProduct.packB(q, b * lq * e + h * dh, 1, e, dh, lq, queries);
            TileProduct.multiply(kdim, lq, dh, packed, h * keyPanels, queries, 0, tile,
                    (t, row, col, n, m) -> storeAsPanels(t, n, m, scale, stackedT, kdim, row, first + col));
        }
        float[] scores = w.scores = Scratch.atLeast(w.scores, rows * lk);
        TileProduct.multiply(lk, rows, kdim, packedKeys, stackedT, tile, (t, row, col, n, m) -> {
            for (int j = 0; j < m; j++) {
                for (int i = 0, to = (col + j) * lk + row; i < n; i++) scores[to + i] = t[i * NR + j];
            }
        });
        for (int r = 0; r < rows; r++) softmaxRow(scores, r * lk, lk, attend, b * lk);
        return scores;
    }

    /**
     * A finished tile of Aᵀ (rows: kdim positions from {@code step}; columns: stacked queries from
     * {@code column}), times {@code scale}, into B panels of NR columns over k = kdim steps.
     */
    private static void storeAsPanels(float[] tile, int rows, int cols, float scale, float[] panels, int kdim, int step,
            int column) {
        int lane = column % NR, panel = column / NR;
        if (lane == 0 && cols == NR) {
            // a whole panel row per tile row: the common case (Lq a multiple of NR)
            for (int i = 0, to = (panel * kdim + step) * NR; i < rows; i++, to += NR) {
                for (int j = 0; j < NR; j += L) FloatVector.fromArray(S, tile, i * NR + j).mul(scale).intoArray(panels, to + j);
            }
            return;
        }
        for (int j = 0; j < cols; j++) {
            int g = column + j, at = (g / NR * kdim + step) * NR + g % NR;
            for (int i = 0; i < rows; i++) panels[at + i * NR] = tile[i * NR + j] * scale;
        }
    }

    /** A finished tile's rows x cols, times {@code scale}, to c[at ..] with rows ldc apart. */
    private static void store(float[] tile, int rows, int cols, float scale, float[] c, int at, int ldc) {
        for (int i = 0; i < rows; i++) {
            int j = 0, to = at + i * ldc;
            for (; j + L <= cols; j += L) FloatVector.fromArray(S, tile, i * NR + j).mul(scale).intoArray(c, to + j);
            for (; j < cols; j++) c[to + j] = tile[i * NR + j] * scale;
        }
    }

    /**
     * Softmax in place over a[at .. at + n), the keys with attend[maskAt + j] == 0 (when there is a mask)
     * taking 0; a row without a key is all zeros.
     */
    private static void softmaxRow(float[] a, int at, int n, float[] attend, int maskAt) {
        float max = Float.NEGATIVE_INFINITY;
        boolean any = false;
        for (int j = 0; j < n; j++) {
            if (attend != null && attend[maskAt + j] == 0f) {
                a[at + j] = Float.NEGATIVE_INFINITY;
                continue;
            }
            any = true;
            max = Math.max(max, a[at + j]);
        }
        if (!any) {
            Arrays.fill(a, at, at + n, 0f);
            return;
        }
        FloatVector sums = FloatVector.zero(S);
        int j = 0;
        for (; j + L <= n; j += L) {
            FloatVector x = VectorMath.exp(FloatVector.fromArray(S, a, at + j).sub(max));
            x.intoArray(a, at + j);
            sums = sums.add(x);
        }
        float sum = VectorMath.sum(sums);
        for (; j < n; j++) {
            a[at + j] = (float) Math.exp(a[at + j] - max);
            sum += a[at + j];
        }
        VectorBilinear.scaleRange(a, at, n, 1f / sum);
    }
}
