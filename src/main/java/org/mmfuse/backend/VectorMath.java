package org.mmfuse.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.mmfuse.Activation;

/**
 * Vector functions faster than their {@link VectorOperators} counterparts (which call a math library
 * per vector) for the softmax, which can afford a couple of ulps.
 */
final class VectorMath {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final float LOG2E = 1.44269504088896341f;
    /** Adding and subtracting 1.5 * 2^23 rounds a float below 2^22 in magnitude to an integer. */
    private static final float ROUND = 0x1.8p23f;
    /** ln 2 in two parts (Cody and Waite): LN2_HI has few bits, so n · LN2_HI is exact. */
    private static final float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    // e^r - 1 - r = r^2 (P5 + P4 r + ...) on |r| <= ln(2)/2: Cephes' expf coefficients
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    private VectorMath() {}

    /**
     * e^x lane by lane, within 2 ulps: x = n ln 2 + r with n an integer and |r| <= ln(2)/2, e^r by a
     * polynomial, 2^n added into the exponent bits. Below 2^-126 (x < -87.3) the result is 0 or off
     * by at most 2^-126 (-infinity gives 0); NaN stays NaN. For x <= 88 (the softmax's x are <= 0).
     */
    static FloatVector exp(FloatVector x) {
        FloatVector t = x.mul(LOG2E);
        FloatVector n = t.add(ROUND).sub(ROUND);
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), x).add(n.mul(-LN2_LO));
        FloatVector y = r.fma(P0, P1).fma(r, FloatVector.broadcast(S, P2)).fma(r, FloatVector.broadcast(S, P3))
                .fma(r, FloatVector.broadcast(S, P4)).fma(r, FloatVector.broadcast(S, P5));
        y = y.fma(r.mul(r), r).add(1f);
        IntVector exponent = ((IntVector) n.convert(VectorOperators.F2I, 0)).lanewise(VectorOperators.LSHL, 23);
        FloatVector scaled = y.reinterpretAsInts().add(exponent).reinterpretAsFloats();
        return scaled.blend(0f, t.compare(VectorOperators.LT, -126f));
    }

    /** The activation lane by lane; NaN stays NaN. Sigmoid uses the library exp: its inputs are unbounded. */
    static FloatVector activate(FloatVector v, Activation activation) {
        switch (activation) {
            case RELU:
                return v.blend(0f, v.compare(VectorOperators.LT, 0f));
            case TANH:
                return v.lanewise(VectorOperators.TANH);
            case SIGMOID:
                return FloatVector.broadcast(S, 1f).div(v.neg().lanewise(VectorOperators.EXP).add(1f));
            default:
                return v;
        }
    }
}
