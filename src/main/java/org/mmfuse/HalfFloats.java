package org.mmfuse;

/**
 * Conversions between float and the 16-bit formats of {@link DType#BF16} and {@link DType#F16}, as
 * bit patterns in a short: round to nearest, ties to even (as CUDA's {@code __float2bfloat16_rn} and
 * {@code __float2half_rn}); NaN stays NaN (quiet), overflow becomes infinity. Written out rather than
 * taken from {@code Float.floatToFloat16}, which Java 17 lacks.
 */
public final class HalfFloats {
    private HalfFloats() {}

    /** The bfloat16 nearest to {@code f}: its upper 16 bits, rounded. */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40); // NaN, kept quiet
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    public static float fromBf16(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    /** The IEEE half nearest to {@code f}. */
    public static short toF16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int exponent = (bits >>> 23) & 0xff;
        int mantissa = bits & 0x7fffff;
        if (exponent == 0xff) return (short) (sign | 0x7c00 | (mantissa != 0 ? 0x200 | mantissa >>> 13 : 0));
        int e = exponent - 127 + 15; // the half's biased exponent
        if (e >= 0x1f) return (short) (sign | 0x7c00);
        if (e <= 0) { // a half subnormal (or zero): the value in units of 2^-24
            if (e < -10) return (short) sign; // below half the smallest subnormal
            int full = mantissa | 0x800000;
            int shift = 14 - e;
            return (short) (sign | roundShift(full, shift));
        }
        return (short) (sign | ((e << 10) + roundShift(mantissa, 13))); // a carry moves into the exponent
    }

    public static float fromF16(short h) {
        int bits = h & 0xffff;
        int sign = (bits & 0x8000) << 16;
        int e = (bits >>> 10) & 0x1f;
        int mantissa = bits & 0x3ff;
        if (e == 0x1f) return Float.intBitsToFloat(sign | 0x7f800000 | mantissa << 13);
        if (e == 0) {
            float magnitude = mantissa * 0x1p-24f; // exact: subnormal halves are small multiples of 2^-24
            return sign != 0 ? -magnitude : magnitude;
        }
        return Float.intBitsToFloat(sign | (e - 15 + 127) << 23 | mantissa << 13);
    }

    /** Converts {@code src} to the bit patterns of {@code dtype} (BF16 or F16). */
    public static short[] encode(float[] src, DType dtype) {
        short[] out = new short[src.length];
        if (dtype == DType.BF16) {
            for (int i = 0; i < src.length; i++) out[i] = toBf16(src[i]);
        } else if (dtype == DType.F16) {
            for (int i = 0; i < src.length; i++) out[i] = toF16(src[i]);
        } else {
            throw new IllegalArgumentException("encode: " + dtype + " is not a 16-bit type");
        }
        return out;
    }

    /** Widens bit patterns of {@code dtype} (BF16 or F16) to floats (exact). */
    public static float[] decode(short[] src, DType dtype) {
        float[] out = new float[src.length];
        if (dtype == DType.BF16) {
            for (int i = 0; i < src.length; i++) out[i] = fromBf16(src[i]);
        } else if (dtype == DType.F16) {
            for (int i = 0; i < src.length; i++) out[i] = fromF16(src[i]);
        } else {
            throw new IllegalArgumentException("decode: " + dtype + " is not a 16-bit type");
        }
        return out;
    }

    /** value >> shift, rounded to nearest with ties to even. */
    private static int roundShift(int value, int shift) {
        int kept = value >>> shift;
        int rest = value & ((1 << shift) - 1);
        int half = 1 << (shift - 1);
        return rest > half || rest == half && (kept & 1) != 0 ? kept + 1 : kept;
    }
}
