package org.mmfuse.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;
import org.mmfuse.Activation;

/**
 * Vector functions faster than their {@link VectorOperators} counterparts (which call a math library
 * per vector) for the softmax, which can afford a couple of ulps.
 */
final class VectorMath {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final float LOG2E = 1.44269504088896341f;
    /** Adding and subtracting 1.5 * 2^23 rounds a float below 2^22 in magnitude to an integer. */
    private static final float ROUND = 0x1.8p23f;
    /** ln 2 in two parts (Cody and Waite): LN2_HI has few bits, so n · LN2_HI is exact. */
    private static final float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    // e^r - 1 - r = r^2 (P5 + P4 r + ...) on |r| <= ln(2)/2: Cephes' expf coefficients
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /** 127 in the exponent bits. A constant vector: {@code add(127 << 23)} made JDK 25 compile the softmax's
     *  block five times slower (it broadcasts the scalar inside the loop). */
    private static final IntVector EXPONENT_BIAS = IntVector.broadcast(IntVector.SPECIES_PREFERRED, 127 << 23);

    private VectorMath() {}

    /**
     * e^x lane by lane, within 2 ulps: x = n ln 2 + r with n an integer and |r| <= ln(2)/2, e^r by a
     * polynomial, times 2^n. Below 2^-126 (x < -87.3) the result is 0 or off by at most 2^-126
     * (-infinity gives 0); NaN stays NaN. For x <= 88 (the softmax's x are <= 0).
     */
    static FloatVector exp(FloatVector x) {
        FloatVector t = x.mul(LOG2E);
        FloatVector rounded = t.add(ROUND), n = rounded.sub(ROUND);
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), x).add(n.mul(-LN2_LO));
        FloatVector y = r.fma(P0, P1).fma(r, FloatVector.broadcast(S, P2)).fma(r, FloatVector.broadcast(S, P3))
                .fma(r, FloatVector.broadcast(S, P4)).fma(r, FloatVector.broadcast(S, P5));
        y = y.fma(r.mul(r), r).add(1f);
        // 2^n built from its bits without a float-to-int conversion (which JDK 17 does not compile to vector
        // instructions: the whole function ran 25 times slower there): the bits of t + 1.5 * 2^23 are those
        // of 1.5 * 2^23 plus n, and 1.5 * 2^23's vanish when shifted left by 23. Multiplied, not added into
        // y's exponent bits: a NaN stays NaN whatever its payload makes of the shifted bits.
        IntVector pow2 = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS);
        return y.mul(pow2.reinterpretAsFloats()).blend(0f, t.compare(VectorOperators.LT, -126f));
    }

    /**
     * The activation lane by lane; NaN stays NaN. Only arithmetic and {@link #exp}: the library's TANH and EXP
     * lanewise operations may round differently compiled and interpreted, and results must not change
     * from one call to the next.
     */
    static FloatVector activate(FloatVector v, Activation activation) {
        switch (activation) {
            case RELU:
                return v.blend(0f, v.compare(VectorOperators.LT, 0f));
            case TANH:
                return tanh(v);
            case SIGMOID:
                return sigmoid(v);
            case GELU:
                return gelu(v);
            default:
                return v;
        }
    }

    // erfc(z) = t e^(-z² + Q(t)), t = 1 / (1 + z/2), z >= 0: the Chebyshev fit of Press et al., Numerical
    // Recipes 2nd ed. §6.2 (erfcc), fractional error below 1.2e-7 on all z >= 0.
    private static final float[] ERFC_Q = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
            0.27886807f, -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};

    /**
     * x Φ(x) = x erfc(-x/√2) / 2, with erfc of |x|/√2 by the fit above and erfc(-z) = 2 - erfc(z): relative
     * accuracy also in the negative tail, where 1 + erf would cancel. Far in that tail (x below about -13)
     * e^(-x²/2) is 0 in float, and so is the result.
     */
    static FloatVector gelu(FloatVector x) {
        // beyond |x| = 14, Φ is 1 or below 1e-44 in float: clamping there keeps x² finite (no inf - inf = NaN
        // for x = +inf, no overflowing exponent for huge x); NaN passes through max and min
        FloatVector c = x.max(-14f).min(14f);
        FloatVector z = c.abs().mul(0.70710678118654752f);
        FloatVector t = FloatVector.broadcast(x.species(), 1f).div(z.mul(0.5f).add(1f));
        FloatVector q = FloatVector.broadcast(x.species(), ERFC_Q[ERFC_Q.length - 1]);
        for (int i = ERFC_Q.length - 2; i >= 0; i--) q = q.fma(t, FloatVector.broadcast(x.species(), ERFC_Q[i]));
        // e^(-z²) with z² = x²/2 split exactly into hi + lo (fma), as e^(-hi/2) e^(q - lo/2): in one exp the
        // rounding of q - z² would cost 6e-8 z² of relative accuracy (3e-6 at x = 10)
        FloatVector hi = c.mul(c), lo = c.fma(c, hi.neg());
        FloatVector erfc = t.mul(exp(hi.mul(-0.5f))).mul(exp(q.sub(lo.mul(0.5f))));
        FloatVector phi = erfc.blend(FloatVector.broadcast(x.species(), 2f).sub(erfc), c.compare(VectorOperators.GT, 0f));
        return x.mul(phi).mul(0.5f);
    }

    // tanh on |x| < 0.625: x + x z P(z), z = x²: Cephes' tanhf coefficients (about 2 ulps)
    private static final float T0 = -5.70498872745e-3f, T1 = 2.06390887954e-2f, T2 = -5.37397155531e-2f;
    private static final float T3 = 1.33314422036e-1f, T4 = -3.33332819422e-1f;

    /** tanh: the polynomial near 0, else sign(x) (1 - 2 / (e^{2|x|} + 1)), |x| capped at 44 (tanh is 1 there in float). */
    static FloatVector tanh(FloatVector x) {
        FloatVector a = x.abs().min(44f);
        FloatVector z = x.mul(x);
        FloatVector small = z.fma(T0, T1).fma(z, FloatVector.broadcast(x.species(), T2))
                .fma(z, FloatVector.broadcast(x.species(), T3)).fma(z, FloatVector.broadcast(x.species(), T4)).mul(z).fma(x, x);
        FloatVector large = FloatVector.broadcast(x.species(), 1f).sub(FloatVector.broadcast(x.species(), 2f)
                .div(exp(a.mul(2f)).add(1f)));
        large = large.blend(large.neg(), x.compare(VectorOperators.LT, 0f));
        return large.blend(small, a.compare(VectorOperators.LT, 0.625f)).blend(x, x.compare(VectorOperators.NE, x));
    }

    /** 1 / (1 + e^-x) with e = e^{-|x|} (never overflows): 1 / (1 + e) for x >= 0, e / (1 + e) below. */
    static FloatVector sigmoid(FloatVector x) {
        FloatVector e = exp(x.abs().neg());
        FloatVector inverse = FloatVector.broadcast(x.species(), 1f).div(e.add(1f));
        return inverse.blend(e.mul(inverse), x.compare(VectorOperators.LT, 0f));
    }

    /** Rotations by half, a quarter, ... of a vector, for {@link #sum}: preferred species, then 256-bit. */
    private static final VectorShuffle<Float>[] HALVES = halves(S), HALVES_256 = halves(FloatVector.SPECIES_256);

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] halves(VectorSpecies<Float> species) {
        int steps = Integer.numberOfTrailingZeros(species.length());
        VectorShuffle<Float>[] shuffles = new VectorShuffle[steps];
        for (int i = 0, half = species.length() / 2; i < steps; i++, half /= 2) {
            shuffles[i] = VectorShuffle.iota(species, half, 1, true);
        }
        return shuffles;
    }

    /**
     * The sum of the lanes in a fixed order: lane i + lane i + L/2, then the same on the halves, down to
     * lane 0. {@code reduceLanes(ADD)} leaves the order to the implementation, and the JIT's differs
     * from the interpreter's: a method's first calls and its compiled ones gave results a few ulps apart
     * (the same linear layer, different bits, run to run). Vectors of the preferred or the 256-bit species.
     */
    static float sum(FloatVector v) {
        VectorShuffle<Float>[] shuffles = v.species() == S ? HALVES : HALVES_256;
        for (VectorShuffle<Float> shuffle : shuffles) v = v.add(v.rearrange(shuffle));
        return v.lane(0);
    }

    /** x[xo .. xo + k) · y[yo .. yo + k), two accumulators, then the tail in order. */
    static float dot(float[] x, int xo, float[] y, int yo, int k) {
        FloatVector acc0 = FloatVector.zero(S), acc1 = acc0;
        int p = 0;
        for (; p <= k - 2 * L; p += 2 * L) {
            acc0 = FloatVector.fromArray(S, x, xo + p).fma(FloatVector.fromArray(S, y, yo + p), acc0);
            acc1 = FloatVector.fromArray(S, x, xo + p + L).fma(FloatVector.fromArray(S, y, yo + p + L), acc1);
        }
        float sum = sum(acc0.add(acc1));
        for (; p < k; p++) sum += x[xo + p] * y[yo + p];
        return sum;
    }

    /** y[yo .. yo + n) += a x[xo .. xo + n). */
    static void axpy(float a, float[] x, int xo, float[] y, int yo, int n) {
        FloatVector av = FloatVector.broadcast(S, a);
        int j = 0;
        for (; j <= n - L; j += L) {
            FloatVector.fromArray(S, x, xo + j).fma(av, FloatVector.fromArray(S, y, yo + j)).intoArray(y, yo + j);
        }
        for (; j < n; j++) y[yo + j] += a * x[xo + j];
    }
}
