package org.mmfuse;

import java.util.Objects;

/**
 * A count sketch from {@code inputDim} to {@code outputDim}: input unit i is added, times sign s(i) in
 * {-1, +1}, to output unit h(i) in [0, outputDim). Two of them define compact bilinear pooling (Tensor
 * Sketch, as in MCB). Immutable.
 *
 * <p>{@link #random} is reproducible from its seed on any platform: with SplitMix64 started at the seed
 * (state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z >>> 30) * 0xBF58476D1CE4E5B9;
 * z = (z ^ z >>> 27) * 0x94D049BB133111EB; z ^= z >>> 31), input unit i takes two draws in turn:
 * h(i) = (first >>> 1) mod outputDim, and s(i) = +1 if the second's top bit is 0, else -1. A model
 * trained elsewhere keeps its own hashes through {@link #of(int[], int[], int)} or {@link #of(Tensor, Tensor, int)}.
 */
public final class CountSketch {
    private final int[] hash;
    private final float[] sign;
    private final int outputDim;

    private CountSketch(int[] hash, float[] sign, int outputDim) {
        this.hash = hash;
        this.sign = sign;
        this.outputDim = outputDim;
    }

    /** Fresh hashes and signs from the seed, as the class comment describes. */
    public static CountSketch random(int inputDim, int outputDim, long seed) {
        checkDims(inputDim, outputDim);
        int[] hash = new int[inputDim];
        float[] sign = new float[inputDim];
        long state = seed;
        for (int i = 0; i < inputDim; i++) {
            state += 0x9E3779B97F4A7C15L;
            hash[i] = (int) Long.remainderUnsigned(mix(state) >>> 1, outputDim);
            state += 0x9E3779B97F4A7C15L;
            sign[i] = mix(state) < 0 ? -1f : 1f;
        }
        return new CountSketch(hash, sign, outputDim);
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Given hashes (each in [0, outputDim)) and signs (each -1 or +1), one per input unit; copied. */
    public static CountSketch of(int[] hash, int[] sign, int outputDim) {
        Objects.requireNonNull(hash, "CountSketch: hash is null");
        Objects.requireNonNull(sign, "CountSketch: sign is null");
        checkDims(hash.length, outputDim);
        if (sign.length != hash.length) {
            throw new IllegalArgumentException("CountSketch: hash has " + hash.length + " entries but sign has "
                    + sign.length + "; both need one per input unit");
        }
        float[] s = new float[sign.length];
        for (int i = 0; i < hash.length; i++) {
            if (hash[i] < 0 || hash[i] >= outputDim) {
                throw new IllegalArgumentException("CountSketch: hash[" + i + "] = " + hash[i] + " is outside [0, "
                        + outputDim + ")");
            }
            if (sign[i] != 1 && sign[i] != -1) {
                throw new IllegalArgumentException("CountSketch: sign[" + i + "] = " + sign[i] + " is not -1 or +1");
            }
            s[i] = sign[i];
        }
        return new CountSketch(hash.clone(), s, outputDim);
    }

    /**
     * From two 1-D host tensors of integer values (as a PyTorch model's int64 hash and float sign
     * buffers arrive after conversion to float32: exact below 2^24).
     */
    public static CountSketch of(Tensor hash, Tensor sign, int outputDim) {
        int[] h = integers("hash", hash), s = integers("sign", sign);
        return of(h, s, outputDim);
    }

    private static int[] integers(String name, Tensor t) {
        Objects.requireNonNull(t, "CountSketch: " + name + " is null");
        if (t.rank() != 1 || !t.device().equals(Device.CPU)) {
            throw new IllegalArgumentException("CountSketch: " + name + " must be a 1-D host tensor, got " + t.describe());
        }
        float[] values = t.toArray();
        int[] out = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            float v = values[i];
            if (v != Math.rint(v) || Math.abs(v) > 1 << 24) {
                throw new IllegalArgumentException("CountSketch: " + name + "[" + i + "] = " + v + " is not an integer below 2^24");
            }
            out[i] = (int) v;
        }
        return out;
    }

    private static void checkDims(int inputDim, int outputDim) {
        if (inputDim < 0) throw new IllegalArgumentException("CountSketch: inputDim must be >= 0, got " + inputDim);
        if (outputDim <= 0) throw new IllegalArgumentException("CountSketch: outputDim (d) must be > 0, got " + outputDim);
    }

    public int inputDim() {
        return hash.length;
    }

    public int outputDim() {
        return outputDim;
    }

    /** h(i), in [0, outputDim). */
    public int hash(int i) {
        return hash[i];
    }

    /** s(i), -1 or +1. */
    public float sign(int i) {
        return sign[i];
    }

    /** The hashes, a copy. */
    public int[] hashes() {
        return hash.clone();
    }

    /** The signs as floats, a copy. */
    public float[] signs() {
        return sign.clone();
    }
}
