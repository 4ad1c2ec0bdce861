package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.util.Random;
import org.junit.jupiter.api.Test;

class HalfFloatsTest {
    /** Float.floatToFloat16 and float16ToFloat (Java 20 and later), or null on Java 17. */
    private static Method jdkToF16, jdkFromF16;

    static {
        try {
            jdkToF16 = Float.class.getMethod("floatToFloat16", float.class);
            jdkFromF16 = Float.class.getMethod("float16ToFloat", short.class);
        } catch (NoSuchMethodException e) {
            jdkToF16 = jdkFromF16 = null;
        }
    }

    @Test
    void knownHalves() {
        assertEquals((short) 0x3c00, HalfFloats.toF16(1f));
        assertEquals((short) 0xc000, HalfFloats.toF16(-2f));
        assertEquals((short) 0x7bff, HalfFloats.toF16(65504f)); // largest half
        assertEquals((short) 0x7c00, HalfFloats.toF16(65520f)); // halfway to 2^16 rounds to infinity
        assertEquals((short) 0x7bff, HalfFloats.toF16(65519f));
        assertEquals((short) 0x0001, HalfFloats.toF16(0x1p-24f)); // smallest subnormal
        assertEquals((short) 0x0000, HalfFloats.toF16(0x1p-25f)); // a tie: to even (zero)
        assertEquals((short) 0x0001, HalfFloats.toF16(0x1.8p-25f));
        assertEquals((short) 0x0400, HalfFloats.toF16(0x1p-14f)); // smallest normal
        assertEquals((short) 0x3c00, HalfFloats.toF16(1f + 0x1p-11f)); // a tie at 1: to even (down)
        assertEquals((short) 0x3c02, HalfFloats.toF16(1f + 3 * 0x1p-11f)); // a tie at odd: up
        assertEquals((short) 0x8000, HalfFloats.toF16(-0f));
        assertTrue(Float.isNaN(HalfFloats.fromF16(HalfFloats.toF16(Float.NaN))));
        assertEquals(Float.NEGATIVE_INFINITY, HalfFloats.fromF16(HalfFloats.toF16(Float.NEGATIVE_INFINITY)));
        assertEquals(0x1p-24f, HalfFloats.fromF16((short) 1));
        assertEquals(-65504f, HalfFloats.fromF16((short) 0xfbff));
    }

    @Test
    void everyHalfSurvivesARoundTrip() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = HalfFloats.fromF16((short) bits);
            if (Float.isNaN(f)) continue;
            assertEquals((short) bits, HalfFloats.toF16(f), "half " + Integer.toHexString(bits));
        }
    }

    /** On Java 20+, the JDK's own conversions are the reference: every half, and many floats. */
    @Test
    void matchesTheJdkWhereItHasHalves() throws Exception {
        if (jdkToF16 == null) return; // Java 17: the known values and round trips above stand alone
        for (int bits = 0; bits < 0x10000; bits++) {
            float ours = HalfFloats.fromF16((short) bits), theirs = (float) jdkFromF16.invoke(null, (short) bits);
            assertEquals(Float.floatToIntBits(theirs), Float.floatToIntBits(ours), "half " + Integer.toHexString(bits));
        }
        Random rng = new Random(7);
        for (int i = 0; i < 2_000_000; i++) {
            // bit patterns around the half range, where rounding and subnormals happen
            float f = Float.intBitsToFloat(i < 1_000_000 ? rng.nextInt() : (rng.nextInt(0x0c000000) + 0x30000000)
                    | (rng.nextBoolean() ? 0x80000000 : 0));
            if (Float.isNaN(f)) continue;
            short theirs = (short) jdkToF16.invoke(null, f);
            assertEquals(theirs, HalfFloats.toF16(f), "float " + f + " (" + Integer.toHexString(Float.floatToIntBits(f)) + ")");
        }
    }

    @Test
    void bf16RoundsToTheNearestTiesToEven() {
        Random rng = new Random(8);
        for (int i = 0; i < 1_000_000; i++) {
            float f = Float.intBitsToFloat(rng.nextInt());
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(HalfFloats.fromBf16(HalfFloats.toBf16(f))));
                continue;
            }
            int rounded = HalfFloats.toBf16(f) & 0xffff, bits = Float.floatToRawIntBits(f);
            int below = bits >>> 16, rest = bits & 0xffff;
            int expected = rest > 0x8000 || rest == 0x8000 && (below & 1) != 0 ? below + 1 : below;
            assertEquals(expected & 0xffff, rounded, "float " + f);
        }
        assertEquals((short) 0x3f80, HalfFloats.toBf16(1f));
        assertEquals((short) 0x7f80, HalfFloats.toBf16(Float.MAX_VALUE)); // rounds up to infinity
        assertEquals(1.5f, HalfFloats.fromBf16(HalfFloats.toBf16(1.5f)));
    }
}
