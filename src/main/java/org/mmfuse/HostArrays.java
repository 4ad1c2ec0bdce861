package org.mmfuse;

import java.util.Queue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Recycles the arrays of closed host tensors, as a native allocator recycles freed blocks. A fresh
 * Java array is zeroed in memory the cache has not seen for a while (here about 10 GB/s, a third of a
 * warm copy), which would cost a concatenation more than the copy itself; a recycled one is warm and
 * needs no zeroing when the operation overwrites it whole. Only arrays the library allocated come back
 * here, never one a caller passed to {@link Tensor#of}. Bounded to 1/16 of the heap.
 *
 * <p>With the system property {@code mmfuse.poisonRecycled} set (the tests set it), arrays are filled
 * with NaN as they come back, so that an operation which leaves part of its output unwritten shows NaN
 * there instead of an earlier call's values: the tests run the same inputs on every backend in turn, and
 * a recycled array could otherwise hold the right answer already.
 */
final class HostArrays {
    /** Smaller arrays are cheap to allocate; pooling them would cost more than it saves. */
    private static final int MIN_POOLED = 1024;
    private static final long CAPACITY_BYTES = Runtime.getRuntime().maxMemory() / 16;
    private static final boolean POISON = Boolean.getBoolean("mmfuse.poisonRecycled");

    private static final ConcurrentHashMap<Integer, Queue<float[]>> FREE = new ConcurrentHashMap<>();
    private static final AtomicLong POOLED_BYTES = new AtomicLong();

    private HostArrays() {}

    /** An array of n floats with unspecified contents. */
    static float[] take(int n) {
        if (n >= MIN_POOLED) {
            Queue<float[]> queue = FREE.get(n);
            float[] a = queue == null ? null : queue.poll();
            if (a != null) {
                POOLED_BYTES.addAndGet(-4L * n);
                return a;
            }
        }
        return new float[n];
    }

    /** Takes back an array nothing else refers to any more. */
    static void give(float[] a) {
        if (a.length < MIN_POOLED) return;
        if (POOLED_BYTES.addAndGet(4L * a.length) > CAPACITY_BYTES) {
            POOLED_BYTES.addAndGet(-4L * a.length);
            return;
        }
        if (POISON) java.util.Arrays.fill(a, Float.NaN);
        FREE.computeIfAbsent(a.length, k -> new ConcurrentLinkedQueue<>()).offer(a);
    }
}
