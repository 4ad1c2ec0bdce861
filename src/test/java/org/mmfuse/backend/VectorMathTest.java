package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

class VectorMathTest {
    private static final int L = FloatVector.SPECIES_PREFERRED.length();

    private static float[] exp(float[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i += L) {
            VectorMath.exp(FloatVector.fromArray(FloatVector.SPECIES_PREFERRED, x, i)).intoArray(out, i);
        }
        return out;
    }

    @Test
    void matchesMathExpWithinTwoUlps() {
        Random rng = new Random(9);
        float[] x = new float[1 << 16];
        for (int i = 0; i < x.length; i++) x[i] = i < 64 ? -i / 8f : (rng.nextFloat() - 0.9f) * 100f; // [-90, 10)
        float[] got = exp(x);
        for (int i = 0; i < x.length; i++) {
            double expected = Math.exp(x[i]);
            if (x[i] < -87.3f) { // 0, or the value itself: below the smallest normal float either way
                assertTrue(got[i] == 0f || Math.abs(got[i] - expected) <= 1.2e-38, "x = " + x[i] + ": " + got[i]);
                continue;
            }
            assertEquals(expected, got[i], 2 * Math.ulp((float) expected), "x = " + x[i]);
        }
    }

    @Test
    void edgesAreExact() {
        float[] x = new float[2 * L];
        x[0] = 0f;
        x[1] = Float.NEGATIVE_INFINITY;
        x[2] = Float.NaN;
        x[3] = -1000f;
        x[4] = -0f;
        x[5] = Float.intBitsToFloat(0x7fc001ff); // NaNs with payloads in their low bits
        x[6] = Float.intBitsToFloat(0xff800001);
        float[] got = exp(x);
        assertEquals(1f, got[0]);
        assertEquals(0f, got[1]);
        assertTrue(Float.isNaN(got[2]));
        assertEquals(0f, got[3]);
        assertEquals(1f, got[4]);
        assertTrue(Float.isNaN(got[5]) && Float.isNaN(got[6]), got[5] + ", " + got[6]);
    }
}
