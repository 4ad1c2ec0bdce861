package org.mmfuse.backend;

import static org.mmfuse.backend.TileProduct.MR;
import static org.mmfuse.backend.TileProduct.NR;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.mmfuse.CountSketch;
import org.mmfuse.PoolingOptions;

/**
 * Compact bilinear pooling on the Vector API, by whichever of two exact routes costs less for the shape:
 *
 * <ul>
 *   <li><b>Transforms</b> (Tensor Sketch as published): both sketches of a location packed into one
 *       complex sequence x̂ + i ŷ, one FFT for the two ({@link BatchFft}, a batch of locations in the
 *       lanes), their spectra separated by symmetry and multiplied, summed over the sample's locations,
 *       and one inverse FFT per two samples (two real results in one complex transform).
 *   <li><b>Outer product</b>: Σ_n x_n y_nᵀ as {@link TileProduct} tiles, each term scattered straight
 *       from the tile to its sketch bucket (h_x(i) + h_y(j)) mod d with sign s_x(i) s_y(j). The same
 *       sum without any transform, and cheaper when C1 x C2 is small beside the transforms of N
 *       locations (spatial maps: 196 locations of 512 channels). No C1 x C2 matrix is stored.
 * </ul>
 *
 * Neither forms a [B, N, d] intermediate: the transforms keep one spectrum per sample.
 */
final class VectorCompactBilinear {
    private static final VectorSpecies<Float> S = BatchFft.S;
    private static final int LANES = BatchFft.LANES;

    enum Route { TRANSFORMS, OUTER_PRODUCT }

    private VectorCompactBilinear() {}

    /**
     * The cheaper route by a rough cost model, in nanoseconds per sample on one core of this machine:
     * the outer product's micro-kernel at about 125 flops/ns plus 1 ns per term scattered into the sketch;
     * the batched FFT at about 18 flops/ns counting 5 n log2 n flops per complex transform (64 x 2048 ->
     * 16000 does 107 MFLOP of transforms in 3.0 ms on 2 cores), one per location plus half of one per
     * sample for the inverse, and the sketching. Both routes compute the same sum exactly; only time
     * depends on the choice.
     */
    static Route choose(PoolShape s, int d) {
        double outer = 2.0 * s.locations() * s.xDim() * s.yDim() / 125 + (double) s.xDim() * s.yDim();
        double transform = transformFlops(d) / 18;
        double transforms = (s.locations() + 0.5) * transform + (double) s.locations() * (s.xDim() + s.yDim());
        return outer < transforms ? Route.OUTER_PRODUCT : Route.TRANSFORMS;
    }

    /**
     * Flops of one complex transform of length n by {@link BatchFft}: 5 n log2 p per stage of radix p up to 5
     * (5 n log2 n for the smooth lengths), 8 n p for a larger prime factor p, which is a direct p-point DFT:
     * a prime d such as 8191 costs as much as its square, and the outer product wins.
     */
    static double transformFlops(int n) {
        double flops = 0;
        int rest = n;
        for (int p = 2; rest > 1; p++) {
            if ((long) p * p > rest) p = rest; // what remains is prime
            for (; rest % p == 0; rest /= p) flops += p <= 5 ? 5.0 * n * Math.log(p) / Math.log(2) : 8.0 * n * p;
        }
        return flops;
    }

    static void pool(PoolShape s, float[] x, float[] y, CountSketch sx, CountSketch sy, PoolingOptions o, float[] out,
            Route route) {
        int d = sx.outputDim();
        if (s.batch() == 0) return;
        if (route == Route.OUTER_PRODUCT) outerProduct(s, x, y, sx, sy, out); else transforms(s, x, y, sx, sy, out);
        int xLength = s.locations() * s.xDim(), yLength = s.locations() * s.yDim();
        CpuThreads.SHARED.run(s.batch(), b -> {
            // Both routes give the transforms' answer to a non-finite input: the whole sample NaN.
            if (!finite(x, b * xLength, xLength) || !finite(y, b * yLength, yLength)) Arrays.fill(out, b * d, (b + 1) * d, Float.NaN);
            VectorBilinear.finish(out, b * d, d, s.locations(), o);
        });
    }

    /** Whether a[from .. from + length) holds no NaN or infinity: x - x is 0 for every finite x, NaN otherwise. */
    private static boolean finite(float[] a, int from, int length) {
        FloatVector check = FloatVector.zero(S);
        int i = 0;
        for (; i <= length - LANES; i += LANES) {
            FloatVector v = FloatVector.fromArray(S, a, from + i);
            check = check.add(v.sub(v));
        }
        float tail = 0f;
        for (; i < length; i++) tail += a[from + i] - a[from + i];
        return check.reduceLanes(VectorOperators.ADD) + tail == 0f; // order-free: zeros or NaN
    }

    // ---- outer product ---------------------------------------------------------------------------------

    private static void outerProduct(PoolShape s, float[] x, float[] y, CountSketch sx, CountSketch sy, float[] out) {
        int n = s.locations(), c1 = s.xDim(), c2 = s.yDim(), d = sx.outputDim();
        int[] hx = sx.hashes(), hy = sy.hashes();
        float[] signX = sx.signs(), signY = sy.signs();
        int panels = TileProduct.panels(c1, MR);
        int pieces = VectorBilinear.piecesPerItem(s.batch(), panels);
        float[] partial = pieces == 1 ? null : new float[s.batch() * pieces * d];
        CpuThreads.SHARED.run(s.batch() * pieces, t -> {
            int b = t / pieces, piece = t % pieces;
            float[] sketch = partial == null ? out : partial;
            int at = partial == null ? b * d : t * d;
            Arrays.fill(sketch, at, at + d, 0f);
            int row0 = panels * piece / pieces * MR, row1 = Math.min(c1, panels * (piece + 1) / pieces * MR);
            if (row1 <= row0 || c2 == 0 || n == 0) return;
            float[] pa = VectorBilinear.scratch(0, TileProduct.packedASize(row1 - row0, n));
            float[] pb = VectorBilinear.scratch(1, TileProduct.packedBSize(n, c2));
            TileProduct.packA(x, b * n * c1 + row0, 1, c1, row1 - row0, n, pa);
            TileProduct.packB(y, b * n * c2, c2, 1, n, c2, pb);
            TileProduct.multiply(row1 - row0, c2, n, pa, pb, VectorBilinear.tile(), (tile, row, col, rows, cols) -> {
                for (int i = 0; i < rows; i++) {
                    int unit = row0 + row + i;
                    scatterRow(tile, i * NR, cols, hx[unit], signX[unit], hy, signY, col, d, sketch, at);
                }
            });
        });
        if (partial == null) return;
        CpuThreads.SHARED.run(s.batch(), b -> {
            for (int piece = 0; piece < pieces; piece++) {
                int from = (b * pieces + piece) * d;
                for (int k = 0; k < d; k++) out[b * d + k] = piece == 0 ? partial[from + k] : out[b * d + k] + partial[from + k];
            }
        });
    }

    /** One tile row of x_i y_j terms into the sketch: bucket (h_x(i) + h_y(j)) mod d, sign s_x(i) s_y(j). */
    private static void scatterRow(float[] tile, int t, int cols, int hash, float sign, int[] hy, float[] signY, int col,
            int d, float[] sketch, int at) {
        for (int j = 0; j < cols; j++) {
            int bucket = hash + hy[col + j];
            if (bucket >= d) bucket -= d;
            sketch[at + bucket] += sign * signY[col + j] * tile[t + j];
        }
    }

    // ---- transforms ----------------------------------------------------------------------------------

    /**
     * Forward: groups of LANES items (locations; for vectors, samples) in the lanes, each item's two
     * sketches as one complex sequence, one FFT, the product of the separated spectra (scaled by 1/d, the
     * inverse's normalisation) added to its sample's half spectrum, kept lane-major per group of LANES
     * samples. Inverse: two groups of samples per complex transform, as Q = P_a + i P_b.
     */
    private static void transforms(PoolShape s, float[] x, float[] y, CountSketch sx, CountSketch sy, float[] out) {
        int d = sx.outputDim(), half = d / 2 + 1, batch = s.batch(), n = s.locations();
        BatchFft fft = BatchFft.of(d);
        int groups = (batch + LANES - 1) / LANES;
        // Half spectra, lane-major per group of samples: the calling thread's scratch (its slot 2 is used by
        // no task), reused across calls instead of 2 x 2 MB zeroed afresh each time.
        int specLength = groups * half * LANES;
        float[] spec = VectorBilinear.scratch(2, 2 * specLength);
        if (n == 1) {
            // Items are samples: a group of samples is transformed together and writes its spectra whole.
            CpuThreads.SHARED.run(groups, g -> {
                Workspace w = Workspace.get(fft);
                w.sketch(x, y, sx, sy, s, g * LANES, 0, Math.min(LANES, batch - g * LANES), true);
                w.forward();
                w.addProducts(spec, g * half * LANES, spec, specLength + g * half * LANES, false);
            });
        } else {
            // Items are one sample's locations: its groups of locations add into one lane of its spectrum.
            // Lanes past the batch must hold a zero spectrum: the inverse pairs each lane with the same lane
            // of another group, and only a spectrum of a real sequence (like 0) cancels out of its partner's part.
            Arrays.fill(spec, 0, 2 * specLength, 0f);
            CpuThreads.SHARED.run(batch, b -> {
                Workspace w = Workspace.get(fft);
                float[] laneRe = VectorBilinear.scratch(0, half * LANES), laneIm = VectorBilinear.scratch(1, half * LANES);
                Arrays.fill(laneRe, 0, half * LANES, 0f);
                Arrays.fill(laneIm, 0, half * LANES, 0f);
                for (int first = 0; first < n; first += LANES) {
                    w.sketch(x, y, sx, sy, s, b, first, Math.min(LANES, n - first), false);
                    w.forward();
                    w.addProducts(laneRe, 0, laneIm, 0, true);
                }
                int g = b / LANES, lane = b % LANES;
                for (int k = 0; k < half; k++) {
                    int at = (g * half + k) * LANES + lane;
                    spec[at] = VectorMath.sum(FloatVector.fromArray(S, laneRe, k * LANES));
                    spec[specLength + at] = VectorMath.sum(FloatVector.fromArray(S, laneIm, k * LANES));
                }
            });
        }
        int pairs = (groups + 1) / 2;
        int[] unreached = unreachedBuckets(sx, sy);
        CpuThreads.SHARED.run(pairs, p -> {
            Workspace w = Workspace.get(fft);
            int ga = 2 * p, gb = 2 * p + 1 < groups ? 2 * p + 1 : -1;
            w.inverse(spec, specLength, ga, gb, half);
            w.store(out, ga * LANES, Math.min(LANES, batch - ga * LANES), false, w.restoreA);
            if (gb >= 0) w.store(out, gb * LANES, Math.min(LANES, batch - gb * LANES), true, w.restoreB);
            for (int b = ga * LANES; b < Math.min(batch, (ga + 2) * LANES); b++) {
                for (int k : unreached) out[b * d + k] = 0f;
            }
        });
    }

    /** The last pair of sketches asked about and its answer: a model asks about the same pair every call. */
    private record Reach(CountSketch x, CountSketch y, int[] unreached) {}

    private static volatile Reach lastReach;

    /**
     * The buckets that no pair (i, j) reaches, (h_x(i) + h_y(j)) mod d: their exact sum is 0, where the
     * transforms leave round-off of about 1e-6 of the largest bucket, which a signed square root would
     * raise to about 1e-3. Only sketches with few distinct hashes beside d leave any (few channels, or
     * a fuzzed shape); the search stops as soon as every bucket is reached.
     */
    static int[] unreachedBuckets(CountSketch sx, CountSketch sy) {
        Reach last = lastReach;
        if (last != null && last.x == sx && last.y == sy) return last.unreached;
        int d = sx.outputDim();
        int[] fromX = distinct(sx.hashes(), d), fromY = distinct(sy.hashes(), d);
        boolean[] reached = new boolean[d];
        int count = 0;
        search:
        for (int a : fromX) {
            for (int b : fromY) {
                int bucket = a + b >= d ? a + b - d : a + b;
                if (!reached[bucket]) {
                    reached[bucket] = true;
                    if (++count == d) break search;
                }
            }
        }
        int[] unreached = new int[d - count];
        for (int k = 0, u = 0; k < d && u < unreached.length; k++) if (!reached[k]) unreached[u++] = k;
        lastReach = new Reach(sx, sy, unreached);
        return unreached;
    }

    /** The distinct values of hashes in [0, d), ascending. */
    private static int[] distinct(int[] hashes, int d) {
        boolean[] seen = new boolean[d];
        for (int h : hashes) seen[h] = true;
        int[] values = new int[d];
        int count = 0;
        for (int k = 0; k < d; k++) if (seen[k]) values[count++] = k;
        return Arrays.copyOf(values, count);
    }

    /** laneExponents' mark of a lane that holds only zeros. */
    private static final int ZERO = Integer.MIN_VALUE;

    /**
     * Per lane of {@code vectors} lane-major vectors of a from aFrom (and as many of b from bFrom, unless b is
     * null): the e with 2^e just above the root of the lane's sum of squares, so that scaling by 2^-e, which is
     * exact, brings the root into [0.5, 1); kept within float's range, 0 for a sum that is not finite, and
     * {@link #ZERO} for a lane of zeros. Summed in float, the vector way; a lane whose squares leave float's
     * range is summed again in double.
     */
    static void laneExponents(float[] a, int aFrom, float[] b, int bFrom, int vectors, int[] e) {
        FloatVector sum = FloatVector.zero(S), max = FloatVector.zero(S);
        for (int v = 0; v < vectors; v++) {
            FloatVector x = FloatVector.fromArray(S, a, aFrom + v * LANES);
            sum = x.fma(x, sum);
            max = max.max(x.abs());
            if (b != null) {
                FloatVector y = FloatVector.fromArray(S, b, bFrom + v * LANES);
                sum = y.fma(y, sum);
                max = max.max(y.abs());
            }
        }
        for (int lane = 0; lane < LANES; lane++) {
            double squares = sum.lane(lane);
            if (max.lane(lane) == 0f) {
                e[lane] = ZERO;
                continue;
            }
            if (!(squares >= 0x1p-100 && squares <= Float.MAX_VALUE)) { // overflowed, or short of bits
                squares = 0;
                for (int v = 0; v < vectors; v++) {
                    double x = a[aFrom + v * LANES + lane], y = b == null ? 0 : b[bFrom + v * LANES + lane];
                    squares += x * x + y * y;
                }
            }
            e[lane] = squares <= Double.MAX_VALUE ? Math.max(-120, Math.min(120, Math.getExponent(Math.sqrt(squares)) + 1)) : 0;
        }
    }

    /**
     * One thread's transform arrays for one length.
     *
     * <p>Both transforms carry two real sequences in one complex one, and a transform's rounding is relative
     * to the norm of all it carries: with one sequence far smaller than its partner (a zero modality, a
     * sample of small features beside a large one), the small one's result would be round-off of the other.
     * So every sequence is first scaled by a power of two (exactly) to a norm in [0.5, 1), and its result
     * scaled back; a zero sequence gives exact zeros.
     */
    private static final class Workspace {
        private static final ThreadLocal<Workspace> CURRENT = new ThreadLocal<>();
        final BatchFft fft;
        final float[] re, im, re2, im2;
        /** Which pair holds the last transform's result. */
        float[] resultRe, resultIm;
        /** Per lane: what the spectrum product is multiplied by (1 / d and the sketches' scales undone; 0 for a zero sketch). */
        private final float[] productScale = new float[LANES];
        /** Per lane, for the inverse: the scale of each group's spectrum, and what its result is multiplied by. */
        private final float[] scaleA = new float[LANES], scaleB = new float[LANES];
        final float[] restoreA = new float[LANES], restoreB = new float[LANES];
        private final int[] exponentX = new int[LANES], exponentY = new int[LANES];
        private final float[] factorX = new float[LANES], factorY = new float[LANES];

        private Workspace(BatchFft fft) {
            this.fft = fft;
            int size = fft.arrayLength();
            re = new float[size];
            im = new float[size];
            re2 = new float[size];
            im2 = new float[size];
        }

        static Workspace get(BatchFft fft) {
            Workspace w = CURRENT.get();
            if (w == null || w.fft != fft) {
                w = new Workspace(fft);
                CURRENT.set(w);
            }
            return w;
        }

        /**
         * Items [first, first + count) into the lanes as x̂ + i ŷ, the rest zero: samples b + item when
         * {@code itemsAreSamples}, else locations of sample b.
         */
        void sketch(float[] x, float[] y, CountSketch sx, CountSketch sy, PoolShape s, int b, int first, int count,
                boolean itemsAreSamples) {
            Arrays.fill(re, 0f);
            Arrays.fill(im, 0f);
            int c1 = s.xDim(), c2 = s.yDim();
            for (int lane = 0; lane < count; lane++) {
                int item = itemsAreSamples ? b + lane : b * s.locations() + first + lane;
                // A non-finite item stays out (its sample's output is set to NaN at the end): the inverse
                // transform pairs lanes of two groups, and a NaN would leak into its partner's result.
                if (!finite(x, item * c1, c1) || !finite(y, item * c2, c2)) continue;
                for (int i = 0; i < c1; i++) re[sx.hash(i) * LANES + lane] += sx.sign(i) * x[item * c1 + i];
                for (int j = 0; j < c2; j++) im[sy.hash(j) * LANES + lane] += sy.sign(j) * y[item * c2 + j];
            }
            scaleToUnitNorms();
        }

        /**
         * Scales each lane's two sketches to norms in [0.5, 1) and records the product's scale; a lane where
         * either is zero (unused lanes too) is cleared, so that nothing of the other reaches its product.
         */
        private void scaleToUnitNorms() {
            int d = fft.n;
            laneExponents(re, 0, null, 0, d, exponentX);
            laneExponents(im, 0, null, 0, d, exponentY);
            for (int lane = 0; lane < LANES; lane++) {
                boolean zero = exponentX[lane] == ZERO || exponentY[lane] == ZERO;
                factorX[lane] = zero ? 0f : Math.scalb(1f, -exponentX[lane]);
                factorY[lane] = zero ? 0f : Math.scalb(1f, -exponentY[lane]);
                productScale[lane] = zero ? 0f : Math.scalb(0.25f / d, exponentX[lane] + exponentY[lane]);
            }
            FloatVector fx = FloatVector.fromArray(S, factorX, 0), fy = FloatVector.fromArray(S, factorY, 0);
            for (int u = 0; u < d * LANES; u += LANES) {
                FloatVector.fromArray(S, re, u).mul(fx).intoArray(re, u);
                FloatVector.fromArray(S, im, u).mul(fy).intoArray(im, u);
            }
        }

        void forward() {
            boolean second = fft.transform(re, im, re2, im2, false);
            resultRe = second ? re2 : re;
            resultIm = second ? im2 : im;
        }

        /**
         * For k <= d/2, P[k] = X[k] Y[k] / d with X = (Z[k] + conj Z[d-k]) / 2 and
         * Y = (Z[k] - conj Z[d-k]) / 2i, per lane (the sketches' scales undone), written (or with {@code add},
         * added) to re[reAt + k LANES] and im[imAt + k LANES].
         */
        void addProducts(float[] re, int reAt, float[] im, int imAt, boolean add) {
            int d = fft.n, half = d / 2 + 1;
            FloatVector scale = FloatVector.fromArray(S, productScale, 0);
            for (int k = 0; k < half; k++) {
                int m = (d - k) % d;
                FloatVector a = FloatVector.fromArray(S, resultRe, k * LANES), b = FloatVector.fromArray(S, resultIm, k * LANES);
                FloatVector c = FloatVector.fromArray(S, resultRe, m * LANES), e = FloatVector.fromArray(S, resultIm, m * LANES);
                // 2X = (a + c) + i (b - e); 2Y = (b + e) - i (a - c)
                FloatVector xr = a.add(c), xi = b.sub(e), yr = b.add(e), yi = c.sub(a);
                FloatVector pr = xr.mul(yr).sub(xi.mul(yi)).mul(scale), pi = xr.mul(yi).add(xi.mul(yr)).mul(scale);
                if (add) {
                    pr = pr.add(FloatVector.fromArray(S, re, reAt + k * LANES));
                    pi = pi.add(FloatVector.fromArray(S, im, imAt + k * LANES));
                }
                pr.intoArray(re, reAt + k * LANES);
                pi.intoArray(im, imAt + k * LANES);
            }
        }

        /**
         * Q = P_a + i P_b over the full length (P[d - k] = conj P[k]) from the half spectra of groups ga
         * and gb (gb < 0: none; real parts in spec, imaginary parts {@code imOffset} further), each lane's
         * spectra scaled to unit norms, then the inverse FFT; the real part is group a's result, the imaginary
         * b's, to be multiplied by restoreA and restoreB.
         */
        void inverse(float[] spec, int imOffset, int ga, int gb, int half) {
            int d = fft.n;
            unitScales(spec, imOffset, ga, half, exponentX, scaleA, restoreA);
            if (gb >= 0) unitScales(spec, imOffset, gb, half, exponentY, scaleB, restoreB);
            FloatVector zero = FloatVector.zero(S), fa = FloatVector.fromArray(S, scaleA, 0);
            FloatVector fb = gb < 0 ? zero : FloatVector.fromArray(S, scaleB, 0);
            for (int k = 0; k < d; k++) {
                boolean mirrored = k >= half;
                int kk = mirrored ? d - k : k;
                int a = (ga * half + kk) * LANES, b = (gb * half + kk) * LANES;
                FloatVector ar = FloatVector.fromArray(S, spec, a).mul(fa), ai = FloatVector.fromArray(S, spec, imOffset + a).mul(fa);
                FloatVector br = gb < 0 ? zero : FloatVector.fromArray(S, spec, b).mul(fb);
                FloatVector bi = gb < 0 ? zero : FloatVector.fromArray(S, spec, imOffset + b).mul(fb);
                if (mirrored) {
                    ai = ai.neg();
                    bi = bi.neg();
                }
                ar.sub(bi).intoArray(re, k * LANES);
                ai.add(br).intoArray(im, k * LANES);
            }
            boolean second = fft.transform(re, im, re2, im2, true);
            resultRe = second ? re2 : re;
            resultIm = second ? im2 : im;
        }

        /** Per lane of group g's half spectrum: 2^-e to bring its norm into [0.5, 1), and 2^e back (0 for a zero spectrum). */
        private static void unitScales(float[] spec, int imOffset, int g, int half, int[] e, float[] scale, float[] restore) {
            laneExponents(spec, g * half * LANES, spec, imOffset + g * half * LANES, half, e);
            for (int lane = 0; lane < LANES; lane++) {
                scale[lane] = e[lane] == ZERO ? 0f : Math.scalb(1f, -e[lane]);
                restore[lane] = e[lane] == ZERO ? 0f : Math.scalb(1f, e[lane]);
            }
        }

        /**
         * Lanes [0, count) of the last result's real (or imaginary) part, times restore[lane], to out rows first,
         * first + 1, ...
         */
        void store(float[] out, int first, int count, boolean imaginary, float[] restore) {
            float[] src = imaginary ? resultIm : resultRe;
            int d = fft.n;
            for (int lane = 0; lane < count; lane++) {
                int row = (first + lane) * d;
                for (int t = 0; t < d; t++) out[row + t] = src[t * LANES + lane] * restore[lane];
            }
        }
    }
}
