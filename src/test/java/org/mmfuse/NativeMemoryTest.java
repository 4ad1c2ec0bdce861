package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.mmfuse.cuda.CudaOps;

/**
 * Native memory stays flat over 100,000 mixed calls: JavaCPP's accounted bytes (the JNI glue's
 * arguments, the CUDA backend's staging buffers and tables) and, on a GPU, the device's memory in use
 * (cudaMemGetInfo). Every result is closed, as the ownership rule asks; CudaTest shows that device
 * tensors never closed are reclaimed too.
 */
class NativeMemoryTest {
    private static final int CALLS = 100_000;
    /** The device's count includes its memory pool, which settles after the warm-up but moves a little. */
    private static final long DEVICE_SLACK = 64L << 20;

    static Stream<Ops> backends() {
        return TestSupport.backends();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void hundredThousandMixedCallsKeepNativeMemoryFlat(Ops ops) {
        Random rng = new Random(6);
        Tensor a = TestSupport.on(ops, TestSupport.random(rng, 5, 7)), b = TestSupport.on(ops, TestSupport.random(rng, 7, 3));
        Tensor c = TestSupport.on(ops, TestSupport.random(rng, 5, 3)), w = TestSupport.on(ops, TestSupport.random(rng, 4, 7));
        Tensor q = TestSupport.on(ops, TestSupport.random(rng, 2, 3, 2, 8)), k = TestSupport.on(ops, TestSupport.random(rng, 2, 5, 2, 8));
        List<Supplier<AutoCloseable>> calls = List.of(
                () -> ops.concat(List.of(a, c), 1),
                () -> ops.matmul(a, b),
                () -> ops.linear(a, w, null),
                () -> ops.activation(c, Activation.GELU),
                () -> ops.softmax(a),
                () -> ops.add(c, c),
                () -> ops.layerNorm(a, null, null, 1e-5),
                () -> ops.attention(q, k, k, AttentionOptions.DEFAULT));
        try {
            run(calls, 2_000); // warm-up: thread-local workspaces, the device's memory pool
            ops.synchronize();
            long native0 = Pointer.totalBytes(), device0 = deviceBytes(ops);
            run(calls, CALLS);
            ops.synchronize();
            assertEquals(native0, Pointer.totalBytes(), "JavaCPP's native bytes after " + CALLS + " calls on " + ops.backend());
            long grown = deviceBytes(ops) - device0;
            assertTrue(grown <= DEVICE_SLACK, "device memory grew by " + (grown >> 20) + " MB over " + CALLS + " calls");
        } finally {
            TestSupport.closeAll(List.of(a, b, c, w, q, k));
        }
    }

    /**
     * Threads that come and go: each leaves a cuBLAS handle and cuFFT plans (device memory: cuBLAS keeps a
     * workspace per handle), which go once the thread is collected. GPU only: the CPU backends keep no
     * per-thread native state.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void threadsThatComeAndGoLeaveNoDeviceMemory(Ops ops) throws Exception {
        assumeTrue(ops.backend() == Backend.CUDA, "per-thread device state exists on the CUDA backend only");
        Random rng = new Random(7);
        Tensor x = TestSupport.on(ops, TestSupport.random(rng, 4, 16)), w = TestSupport.on(ops, TestSupport.random(rng, 8, 16));
        CountSketch sketch = CountSketch.random(16, 30, 3);
        Runnable work = () -> {
            try (Tensor y = ops.linear(x, w, null); Tensor z = ops.compactBilinearPool(x, x, sketch, sketch, PoolingOptions.NONE)) {
                ops.synchronize();
            }
        };
        try {
            for (int round = 0; round < 4; round++) startAndJoin(work, 8); // warm-up: the memory pool
            long device0 = settledDeviceBytes(ops, Long.MAX_VALUE);
            for (int round = 0; round < 8; round++) startAndJoin(work, 8);
            long grown = settledDeviceBytes(ops, device0 + DEVICE_SLACK) - device0;
            assertTrue(grown <= DEVICE_SLACK, "device memory grew by " + (grown >> 20) + " MB over 64 threads");
        } finally {
            TestSupport.closeAll(List.of(x, w));
        }
    }

    private static void startAndJoin(Runnable work, int threads) throws InterruptedException {
        Thread[] started = new Thread[threads];
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        for (int t = 0; t < threads; t++) {
            started[t] = new Thread(work);
            started[t].setUncaughtExceptionHandler((thread, e) -> failure.set(e));
            started[t].start();
        }
        for (Thread t : started) t.join();
        if (failure.get() != null) throw new AssertionError("a thread failed", failure.get());
    }

    /** Device memory in use once collections have let the cleaners run: at most {@code target}, or after 5 s. */
    private static long settledDeviceBytes(Ops ops, long target) throws InterruptedException {
        long bytes = deviceBytes(ops);
        for (int i = 0; i < 50 && bytes > target; i++) {
            System.gc();
            Thread.sleep(100);
            bytes = deviceBytes(ops);
        }
        if (target == Long.MAX_VALUE) { // a baseline: let whatever is pending go first
            System.gc();
            Thread.sleep(500);
            bytes = deviceBytes(ops);
        }
        return bytes;
    }

    /** The JNI glue: every entry point (JniChecks) called over and over, its pointer arguments freed each time. */
    @Test
    void jniCallsKeepNativeMemoryFlat() {
        assumeTrue(NativeMemoryTest.class.getResource("/org/mmfuse/cuda/linux-x86_64/libjnimmfuse.so") != null,
                "libjnimmfuse.so was not built (no nvcc at build time)");
        assertEquals(List.of(), JniChecks.failures());
        long native0 = Pointer.totalBytes();
        for (int i = 0; i < 2_000; i++) JniChecks.failures(); // 2,000 rounds of every entry point
        assertEquals(native0, Pointer.totalBytes());
    }

    private static void run(List<Supplier<AutoCloseable>> calls, int count) {
        for (int i = 0; i < count; i++) {
            try (AutoCloseable result = calls.get(i % calls.size()).get()) {
                // only made and closed
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }
    }

    private static long deviceBytes(Ops ops) {
        return ops.backend() == Backend.CUDA ? CudaOps.deviceMemoryInUse(ops.device().index()) : 0;
    }
}
