package org.mmfuse.backend;

import static org.mmfuse.backend.TileProduct.MR;
import static org.mmfuse.backend.TileProduct.NR;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.mmfuse.Activation;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.PoolingOptions;

/**
 * The bilinear family on the Vector API: full bilinear pooling and the bilinear layer as
 * {@link TileProduct}s with fused epilogues, and factorized (MLB/MFB/MFH) pooling. Compact bilinear
 * pooling is {@link VectorCompactBilinear}.
 */
final class VectorBilinear {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private static final ThreadLocal<float[][]> BUFFERS = ThreadLocal.withInitial(() -> new float[3][]);
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[MR * NR]);

    private VectorBilinear() {}

    /**
     * This thread's scratch array number {@code slot}, at least {@code size} floats, contents unspecified.
     * Slots 0 and 1 belong to the task running on the thread (packed panels, partial sums, lane spectra);
     * slot 2 to a call's own thread across its tasks (compact pooling's spectra), so nothing a task takes
     * is held by the call that spread it.
     */
    static float[] scratch(int slot, int size) {
        float[][] all = BUFFERS.get();
        if (all[slot] == null || all[slot].length < size) all[slot] = new float[size];
        return all[slot];
    }

    static float[] tile() {
        return TILE.get();
    }

    /** How many pieces to cut each of {@code items} into so that every thread gets about two tasks. */
    static int piecesPerItem(int items, int maxPieces) {
        int threads = CpuThreads.SHARED.threads();
        if (items >= 2 * threads) return 1;
        return Math.max(1, Math.min(maxPieces, (2 * threads + items - 1) / Math.max(items, 1)));
    }

    // ---- full bilinear pooling ---------------------------------------------------------------------------

    /**
     * Per sample, Xᵀ Y as tiles finished in the epilogue (mean and signed square root applied, squares
     * summed) and stored once; the L2 scale is a second pass over each sample's rows, by the task that
     * stored them, right after (its last tiles still in cache: 6% faster for 8 x 49 x 2048 x 768 than a
     * pass after every sample). Samples are cut into row ranges when there are too few of them to keep
     * every thread busy; those are scaled once all their pieces are done. Symmetric products compute the
     * tiles on or above the diagonal and mirror them.
     */
    static void pool(PoolShape s, float[] x, float[] y, boolean symmetric, PoolingOptions o, float[] out) {
        int n = s.locations(), c1 = s.xDim(), c2 = s.yDim();
        if (s.batch() == 0 || c1 == 0 || c2 == 0) return;
        int panels = TileProduct.panels(c1, MR);
        int pieces = piecesPerItem(s.batch(), panels);
        double[] squares = new double[s.batch() * pieces];
        float scale = o.mean() && n > 0 ? 1f / n : 1f;
        CpuThreads.SHARED.run(s.batch() * pieces, t -> {
            int b = t / pieces, piece = t % pieces;
            int row0 = panels * piece / pieces * MR, row1 = Math.min(c1, panels * (piece + 1) / pieces * MR);
            int rows = row1 - row0;
            if (rows <= 0) return;
            float[] pa = scratch(0, TileProduct.packedASize(rows, n)), pb = scratch(1, TileProduct.packedBSize(n, c2));
            TileProduct.packA(x, b * n * c1 + row0, 1, c1, rows, n, pa);
            TileProduct.packB(y, b * n * c2, c2, 1, n, c2, pb);
            PoolEpilogue e = new PoolEpilogue(out, (long) b * c1 * c2, c2, row0, scale, o, symmetric);
            TileProduct.multiplyByRows(rows, c2, n, pa, pb, tile(), symmetric ? row0 : -1, e);
            squares[t] = e.squares;
            // A whole sample: scale it now, while its last tiles are still in cache.
            if (pieces == 1 && o.l2Normalize()) divideByNorm(out, b * c1 * c2, c1 * c2, e.squares);
        });
        if (!o.l2Normalize() || pieces == 1) return;
        int length = c1 * c2;
        CpuThreads.SHARED.run(s.batch(), b -> {
            double sum = 0;
            for (int piece = 0; piece < pieces; piece++) sum += squares[b * pieces + piece];
            divideByNorm(out, b * length, length, sum);
        });
    }

    /** Finishes tiles of one sample's pooled matrix and stores them; keeps the sum of squares stored. */
    private static final class PoolEpilogue implements TileProduct.Epilogue {
        private final float[] out;
        private final int base;
        private final int width;
        private final int row0;
        private final float scale;
        private final boolean signedSqrt;
        private final float eps;
        private final boolean symmetric;
        double squares;

        PoolEpilogue(float[] out, long base, int width, int row0, float scale, PoolingOptions o, boolean symmetric) {
            this.out = out;
            this.base = (int) base;
            this.width = width;
            this.row0 = row0;
            this.scale = scale;
            this.signedSqrt = o.signedSqrt();
            this.eps = (float) o.eps();
            this.symmetric = symmetric;
        }

        @Override
        public void accept(float[] tile, int row, int col, int rows, int cols) {
            if (!symmetric && cols == NR) {
                squares += finishWholeRows(tile, rows, scale, signedSqrt, eps, out, base + (row0 + row) * width + col, width);
                return;
            }
            for (int i = 0; i < rows; i++) {
                int globalRow = row0 + row + i;
                // Symmetric: this row keeps columns >= its own index; those above the diagonal are mirrored.
                int first = symmetric ? Math.max(0, globalRow - col) : 0;
                if (first >= cols) continue;
                squares += finishRow(tile, i * NR, first, cols, scale, signedSqrt, eps, out, base + globalRow * width + col);
                if (symmetric) {
                    for (int j = Math.max(first, globalRow + 1 - col); j < cols; j++) {
                        float v = tile[i * NR + j];
                        out[base + (col + j) * width + globalRow] = v;
                        squares += (double) v * v;
                    }
                }
            }
        }
    }

    /**
     * A tile's rows, all NR columns of each, scaled, signed-square-rooted if asked and stored at
     * out[at + i · ldo ..]; returns the sum of their squares. The common case of {@link #finishRow} without
     * its masks, its write-back to the tile or a sum per row (a third of pooling 8 x 49 x 2048 x 768's time
     * went to those).
     */
    private static double finishWholeRows(float[] tile, int rows, float scale, boolean signedSqrt, float eps,
            float[] out, int at, int ldo) {
        FloatVector squares = FloatVector.zero(S);
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < NR; j += L) {
                FloatVector v = FloatVector.fromArray(S, tile, i * NR + j).mul(scale);
                if (signedSqrt) v = signedSqrt(v, eps);
                v.intoArray(out, at + i * ldo + j);
                squares = v.fma(v, squares);
            }
        }
        return VectorMath.sum(squares);
    }

    /**
     * One tile row's columns [first, cols): scaled, signed-square-rooted if asked, stored at out[at + j]
     * and written back to the tile (for mirroring); returns the sum of their squares.
     */
    private static double finishRow(float[] tile, int t, int first, int cols, float scale, boolean signedSqrt,
            float eps, float[] out, int at) {
        FloatVector squares = FloatVector.zero(S);
        for (int j = 0; j < NR; j += L) {
            if (j >= cols) break;
            VectorMask<Float> keep = S.indexInRange(j - first, NR).and(S.indexInRange(j, cols));
            FloatVector v = FloatVector.fromArray(S, tile, t + j).mul(scale);
            if (signedSqrt) v = signedSqrt(v, eps);
            v.intoArray(tile, t + j);
            v.intoArray(out, at + j, keep);
            squares = v.fma(v, squares).blend(squares, keep.not());
        }
        return VectorMath.sum(squares);
    }

    /**
     * sign(v) sqrt(|v| + eps), lane by lane: 0 stays 0 and NaN stays NaN, as with torch.sign. v's sign bit is
     * copied onto the root rather than chosen by a compare and a blend (pooling 8 x 49 x 2048 x 768, one JVM,
     * 2026-11-24: 76 -> 79 and 81 -> 88 GFLOP/s on JDK 25, 59 -> 63 on JDK 17).
     */
    static FloatVector signedSqrt(FloatVector v, float eps) {
        FloatVector root = v.abs().add(eps).sqrt();
        IntVector sign = v.reinterpretAsInts().and(0x80000000);
        return root.reinterpretAsInts().or(sign).reinterpretAsFloats().blend(0f, v.compare(VectorOperators.EQ, 0f));
    }

    /**
     * a[at .. at + length) divided by max(its L2 norm, 1e-12), given {@code squares}, the sum of its squares
     * as the caller's float lanes added them up. Those overflow from |v| = 1.8e19 although the norm is
     * finite, so an infinite sum is redone here in double, where it cannot overflow (at most 2^31 squares of
     * at most 1.2e77). Norms past 8.5e37 divide in double: their inverse is a float subnormal, short of bits.
     */
    static void divideByNorm(float[] a, int at, int length, double squares) {
        if (squares == Double.POSITIVE_INFINITY) {
            squares = 0;
            for (int i = at; i < at + length; i++) squares += (double) a[i] * a[i];
        }
        double norm = Math.max(Math.sqrt(squares), 1e-12);
        if (norm < 0x1p126) {
            scaleRange(a, at, length, (float) (1 / norm));
        } else {
            for (int i = at; i < at + length; i++) a[i] = (float) (a[i] / norm);
        }
    }

    /** a[at .. at + length) *= factor. */
    static void scaleRange(float[] a, int at, int length, float factor) {
        int i = 0;
        for (; i <= length - L; i += L) FloatVector.fromArray(S, a, at + i).mul(factor).intoArray(a, at + i);
        for (; i < length; i++) a[at + i] *= factor;
    }

    /**
     * Finishes a[at .. at + length) in place as the options say: divide by {@code terms} (mean), signed
     * square root, then L2 normalisation.
     */
    static void finish(float[] a, int at, int length, int terms, PoolingOptions o) {
        float scale = o.mean() && terms > 0 ? 1f / terms : 1f;
        float eps = (float) o.eps();
        FloatVector squares = FloatVector.zero(S);
        int i = 0;
        for (; i < length; i += L) {
            VectorMask<Float> m = S.indexInRange(i, length);
            FloatVector v = FloatVector.fromArray(S, a, at + i, m).mul(scale);
            if (o.signedSqrt()) v = signedSqrt(v, eps);
            v.intoArray(a, at + i, m);
            squares = v.fma(v, squares).blend(squares, m.not());
        }
        if (o.l2Normalize()) divideByNorm(a, at, length, VectorMath.sum(squares));
    }

    // ---- bilinear layer ---------------------------------------------------------------------------------

    /**
     * Floats of outer products built at a time: with the weight rows streaming past, they stay in L2. Half a
     * MB rather than one: the chunk being read and the one being built then fit a 1 MB L2 together (Zen 5,
     * 2026-12-08, 64 x 512 x 512 -> 256, fresh JVMs alternating, median ms: 38.3 at 1 MB [35.7-40.9], 35.0 at
     * 512 KB [32.0-43.1], 36.1 at 256 KB [35.7-39.3]).
     */
    private static final int OUTER_PRODUCT_FLOATS = 1 << 17;

    /**
     * Batches of this many rows take {@link #bilinearStreamed}, others {@link #bilinearByTiles}. Measured
     * 2026-11-23 (2 cores, JDK 25, median of 15 calls after 4 s, one JVM each), GFLOP/s streamed vs by
     * tiles, rows x 512 x 512 -> out: 64 -> 256: 227-235 vs 185; 32 x 300 x 200 -> 100: 145 vs 136;
     * 128 -> 256: 232 vs 238; 256 -> 256: 233 vs 281; 8 -> 256: 43 vs 51 (a block of 32 lanes for 8 rows).
     */
    private static final int STREAMED_MIN_ROWS = 24, STREAMED_MAX_ROWS = 96;

    /** {@code nn.Bilinear}: y[r, k] = x1[r]ᵀ W_k x2[r] + b_k, without a [rows, in1, in2] intermediate. */
    static void bilinear(BilinearShape s, float[] x1, float[] x2, float[] w, float[] bias, float[] out) {
        int rows = s.rows(), outs = s.out();
        if (rows == 0 || outs == 0) return;
        if (s.in1() == 0 || s.in2() == 0) { // an empty sum: the bias alone, whatever NaN the other input holds
            for (int r = 0; r < rows; r++) {
                for (int k = 0; k < outs; k++) out[r * outs + k] = bias == null ? 0f : bias[k];
            }
        } else if (rows >= STREAMED_MIN_ROWS && rows <= STREAMED_MAX_ROWS) {
            bilinearStreamed(s, x1, x2, w, bias, out);
        } else {
            bilinearByTiles(s, x1, x2, w, bias, out);
        }
    }

    /**
     * {@code nn.Bilinear} as a Linear layer over outer products: y[r, k] = Σ_ij x1[r, i] x2[r, j] W[k, i, j]
     * = Z[r] · W_k + b_k with Z[r] = x1[r] ⊗ x2[r] flattened, W seen as [out, in1 · in2]. Z is never
     * stored whole: for a few i at a time its packed block (batch rows in lanes, as
     * {@link WeightStreamGemm} packs a batch) is built from x1 and x2, packed once, and the weight
     * rows' matching columns stream past it, WeightStreamGemm.ROWS outputs at a time, each a run of in2 · (those i)
     * consecutive floats. W, the one large operand (268 MB at 256 x 512 x 512), is read once per call,
     * in place, in long sequential runs; per-output sums carry the partial products from chunk to chunk.
     */
    private static void bilinearStreamed(BilinearShape s, float[] x1, float[] x2, float[] w, float[] bias, float[] out) {
        int rows = s.rows(), in1 = s.in1(), in2 = s.in2(), outs = s.out();
        float[] x1p = WeightStreamGemm.pack(x1, rows, in1, new float[0]);
        float[] x2p = WeightStreamGemm.pack(x2, rows, in2, new float[0]);
        int padded = x1p.length / in1; // batch rows rounded up to whole blocks
        int chunk = Math.max(1, Math.min(in1, OUTER_PRODUCT_FLOATS / (padded * in2))); // values of i per chunk
        // Two chunks of outer products: the tasks that build the next one join those that use this one, so
        // that the threads finishing their share of the products early build instead of waiting.
        int chunkSize = WeightStreamGemm.packedSize(rows, chunk * in2);
        float[][] z = {new float[chunkSize], new float[chunkSize]};
        float[] sums = new float[outs * padded];
        int blocks = (outs + WeightStreamGemm.ROWS - 1) / WeightStreamGemm.ROWS;
        int runs = Math.min(blocks, 4 * CpuThreads.SHARED.threads());
        CpuThreads.SHARED.run(chunk, ii -> outerProducts(rows, in1, in2, x1p, ii, x2p, chunk * in2, ii, z[0]));
        for (int i0 = 0, c = 0; i0 < in1; i0 += chunk, c ^= 1) {
            int kc = Math.min(chunk, in1 - i0) * in2, first = i0, next = i0 + chunk;
            int nextCount = Math.max(0, Math.min(chunk, in1 - next));
            float[] now = z[c], later = z[c ^ 1];
            CpuThreads.SHARED.run(runs + nextCount, t -> {
                if (t >= runs) {
                    outerProducts(rows, in1, in2, x1p, next + t - runs, x2p, nextCount * in2, t - runs, later);
                    return;
                }
                WeightStreamGemm.products(rows, outs, kc, now, w, first * in2, in1 * in2, CpuThreads.split(blocks, t, runs),
                        CpuThreads.split(blocks, t + 1, runs),
                        (tile, width, j0, cols, b0, valid) -> addTile(tile, width, cols, sums, j0 * padded + b0, padded));
            });
        }
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < outs; k++) out[r * outs + k] = sums[k * padded + r] + (bias == null ? 0f : bias[k]);
        }
    }

    /**
     * Rows [ii · in2, (ii + 1) · in2) of the packed chunk z (kc rows in all): x1 column i times each x2
     * column, lane by lane, in every block of batch rows.
     */
    private static void outerProducts(int rows, int in1, int in2, float[] x1p, int i, float[] x2p, int kc, int ii,
            float[] z) {
        for (int b0 = 0; b0 < rows; ) {
            int width = WeightStreamGemm.blockWidth(rows, b0);
            for (int v = 0; v < width; v += L) {
                FloatVector x = FloatVector.fromArray(S, x1p, b0 * in1 + i * width + v);
                for (int j = 0; j < in2; j++) {
                    x.mul(FloatVector.fromArray(S, x2p, b0 * in2 + j * width + v))
                            .intoArray(z, b0 * kc + (ii * in2 + j) * width + v);
                }
            }
            b0 += width;
        }
    }

    /** sums[at + j · padded ..] += tile row j, for the tile's cols rows (outputs) and width lanes (batch rows). */
    private static void addTile(float[] tile, int width, int cols, float[] sums, int at, int padded) {
        for (int j = 0; j < cols; j++) {
            for (int v = 0; v < width; v += L) {
                int to = at + j * padded + v;
                FloatVector.fromArray(S, sums, to).add(FloatVector.fromArray(S, tile, j * width + v)).intoArray(sums, to);
            }
        }
    }

    /**
     * {@code nn.Bilinear} for other batches: for each output k, T = x1 W_k [rows, in2] as tiles, each tile
     * row multiplied lane by lane with x2's matching columns into per-row partial sums; T is never stored. x1 is packed
     * once for every k. W_k, the one large operand (268 MB at 256 x 512 x 512, read once per call), is
     * packed by one sequential pass over it: read in place, column panel by column panel, its rows 2 KB
     * apart defeated the prefetchers and the kernel waited on memory (2.2x slower, measured).
     */
    private static void bilinearByTiles(BilinearShape s, float[] x1, float[] x2, float[] w, float[] bias, float[] out) {
        int rows = s.rows(), in1 = s.in1(), in2 = s.in2(), outs = s.out();
        float[] pa = new float[TileProduct.packedASize(rows, in1)];
        TileProduct.packA(x1, 0, in1, 1, rows, in1, pa);
        CpuThreads.SHARED.run(outs, k -> {
            float[] pb = scratch(0, TileProduct.packedBSize(in1, in2)), partial = scratch(1, rows * L), tile = tile();
            TileProduct.packB(w, k * in1 * in2, in2, 1, in1, in2, pb);
            java.util.Arrays.fill(partial, 0, rows * L, 0f);
            TileProduct.multiply(rows, in2, in1, pa, pb, tile, (t, row, col, tileRows, cols) -> {
                for (int i = 0; i < tileRows; i++) multiplyRow(t, i * NR, x2, (row + i) * in2 + col, cols, partial, (row + i) * L);
            });
            float b = bias == null ? 0f : bias[k];
            for (int r = 0; r < rows; r++) {
                out[r * outs + k] = VectorMath.sum(FloatVector.fromArray(S, partial, r * L)) + b;
            }
        });
    }

    /** partial[at .. at + L) += tile row [0, cols) · x2 row [0, cols), lane by lane. */
    private static void multiplyRow(float[] tile, int t, float[] x2, int x, int cols, float[] partial, int at) {
        FloatVector sum = FloatVector.fromArray(S, partial, at);
        for (int j = 0; j < cols; j += L) {
            VectorMask<Float> m = S.indexInRange(j, cols);
            sum = FloatVector.fromArray(S, tile, t + j).fma(FloatVector.fromArray(S, x2, x + j, m), sum);
        }
        sum.intoArray(partial, at);
    }

    // ---- factorized pooling ---------------------------------------------------------------------------

    /** Row by row: the stage's expansion in a scratch row, its group sums, then the finish; rows spread over threads. */
    static void factorized(FactorizedShape s, float[] x, float[] y, FactorizedPoolOptions o, float[] out) {
        int units = s.units(), k = s.factor(), pooled = s.pooled(), width = s.stages() * units;
        int rowsPerTask = Math.max(1, 4096 / Math.max(width, 1));
        int tasks = CpuThreads.tasks(s.rows(), rowsPerTask);
        Activation act = o.activation();
        CpuThreads.SHARED.run(tasks, t -> {
            float[] expansion = scratch(0, units);
            for (int r = t * rowsPerTask; r < CpuThreads.end(s.rows(), t, rowsPerTask); r++) {
                for (int st = 0; st < s.stages(); st++) {
                    int in = r * width + st * units;
                    expand(x, y, in, units, act, st > 0, expansion);
                    int at = (r * s.stages() + st) * pooled;
                    for (int p = 0; p < pooled; p++) {
                        float sum = 0;
                        for (int u = p * k; u < (p + 1) * k; u++) sum += expansion[u];
                        out[at + p] = sum;
                    }
                    finish(out, at, pooled, k, o.pooling());
                }
            }
        });
    }

    /** e[u] (∘)= act(x[in + u]) * act(y[in + u]) for u < units; multiplies into e when {@code carry}. */
    private static void expand(float[] x, float[] y, int in, int units, Activation act, boolean carry, float[] e) {
        int u = 0;
        for (; u < units; u += L) {
            VectorMask<Float> m = S.indexInRange(u, units);
            FloatVector a = VectorMath.activate(FloatVector.fromArray(S, x, in + u, m), act);
            FloatVector b = VectorMath.activate(FloatVector.fromArray(S, y, in + u, m), act);
            FloatVector p = a.mul(b);
            if (carry) p = p.mul(FloatVector.fromArray(S, e, u, m));
            p.intoArray(e, u, m);
        }
    }
}
