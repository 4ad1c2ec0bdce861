package org.mmfuse;

import java.util.Arrays;

/** Shape arithmetic shared by tensors and operations: element counts without overflow, axes, printing. */
public final class Shapes {
    /** The most elements a host tensor can hold (a Java array's practical limit). */
    public static final long MAX_HOST_ELEMENTS = Integer.MAX_VALUE - 8;

    private Shapes() {}

    /**
     * The product of the sizes, checked: every size must be >= 0 and the product must fit in a long.
     *
     * @param name what the shape belongs to, for the exception message
     */
    public static long numel(String name, long... shape) {
        long n = 1;
        for (long size : shape) {
            if (size < 0) throw new IllegalArgumentException(name + ": negative size in shape " + Arrays.toString(shape));
            try {
                n = Math.multiplyExact(n, size);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException(name + ": shape " + Arrays.toString(shape) + " has more than 2^63 elements");
            }
        }
        return n;
    }

    /** The product of shape[from, to). Callers have checked the whole shape with {@link #numel}. */
    public static long product(long[] shape, int from, int to) {
        long n = 1;
        for (int i = from; i < to; i++) n *= shape[i];
        return n;
    }

    /**
     * Wraps a possibly negative axis into [0, rank), as PyTorch does; the message follows torch's
     * "Dimension out of range (expected to be in range of [-2, 1], but got 2)".
     */
    public static int axis(String name, int axis, int rank) {
        int lo = -Math.max(rank, 1), hi = Math.max(rank, 1) - 1;
        if (axis < lo || axis > hi) {
            throw new IllegalArgumentException(name + ": dimension out of range (expected to be in range of ["
                    + lo + ", " + hi + "], but got " + axis + ")");
        }
        return axis < 0 ? axis + Math.max(rank, 1) : axis;
    }

    /** {@code [2, 3, 4]}. */
    public static String toString(long[] shape) {
        return Arrays.toString(shape);
    }
}
