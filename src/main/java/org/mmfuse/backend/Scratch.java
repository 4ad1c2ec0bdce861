package org.mmfuse.backend;

/** The kernels' per-thread scratch arrays: kept and reused, grown only when a call needs more (a fresh
 *  array is zeroed, in cold memory, on every call). */
final class Scratch {
    private Scratch() {}

    /** {@code buffer} when it holds at least n floats, else a new array of n. */
    static float[] atLeast(float[] buffer, int n) {
        return buffer.length >= n ? buffer : new float[n];
    }
}
