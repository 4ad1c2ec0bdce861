package org.mmfuse.backend;

/** The kernels' per-thread scratch arrays: kept and reused, grown only when a call needs more (a fresh
 *  array is zeroed, in cold memory, on every call). */
final class Scratch {
    /**
     * A buffer larger than this (64 MB) is kept only while calls use at least half of it: otherwise one
     * huge call would pin its scratch on every thread for good. A call that needs that much does tens of
     * milliseconds of work, so allocating again after a smaller one costs little.
     */
    static final int KEPT_FLOATS = 1 << 24;

    private Scratch() {}

    /** {@code buffer} when it holds at least n floats (and is not far larger than n and huge), else a new array of n. */
    static float[] atLeast(float[] buffer, int n) {
        boolean fits = buffer.length >= n, oversized = buffer.length > KEPT_FLOATS && buffer.length / 2 > n;
        return fits && !oversized ? buffer : new float[n];
    }
}
