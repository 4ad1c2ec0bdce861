package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class TensorTest {
    @Test
    void wrapsTheCallersArray() {
        float[] data = {1, 2, 3, 4, 5, 6};
        Tensor t = Tensor.of(data, 2, 3);
        assertSame(data, t.array());
        assertArrayEquals(new long[] {2, 3}, t.shape());
        assertEquals(3, t.size(-1));
        assertEquals(6, t.numel());
        assertEquals("Tensor[2, 3] f32 cpu", t.describe());
        Tensor scalar = Tensor.of(new float[] {5});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> scalar.size(0));
        assertTrue(e.getMessage().contains("a scalar tensor has no dimensions"), e.getMessage());
    }

    @Test
    void shapeMustMatchData() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[5], 2, 3));
        assertTrue(e.getMessage().contains("5 elements") && e.getMessage().contains("[2, 3]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(2, -1));
        assertTrue(e.getMessage().contains("negative size"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(1L << 32, 1L << 32));
        assertTrue(e.getMessage().contains("more than 2^63") || e.getMessage().contains("more than a host tensor"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(1L << 20, 1L << 12));
        assertTrue(e.getMessage().contains("more than a host tensor holds"), e.getMessage());
    }

    @Test
    void closedTensorsRefuseUse() {
        Tensor t = Tensor.zeros(3);
        t.close();
        t.close();
        assertTrue(t.isClosed());
        assertThrows(IllegalStateException.class, t::array);
        assertThrows(IllegalStateException.class, t::toArray);
        assertThrows(IllegalStateException.class, () -> t.to(Device.CPU));
    }

    @Test
    void zerosAreZeroEvenFromARecycledArray() {
        Tensor dirty = Tensor.empty(8192); // large enough to be recycled
        java.util.Arrays.fill(dirty.array(), 7f);
        dirty.close();
        try (Tensor z = Tensor.zeros(8192)) {
            for (float x : z.array()) assertEquals(0f, x);
        }
    }

    @Test
    void callersArraysAreNeverRecycled() {
        float[] mine = new float[8192];
        Tensor.of(mine, 8192).close();
        for (int i = 0; i < 4; i++) {
            try (Tensor t = Tensor.empty(8192)) {
                assertNotSame(mine, t.array());
            }
        }
    }

    @Test
    void racingClosesReleaseTheArrayOnce() throws InterruptedException {
        for (int trial = 0; trial < 20; trial++) {
            Tensor t = Tensor.empty(12345);
            Thread[] closers = new Thread[4];
            for (int i = 0; i < closers.length; i++) closers[i] = new Thread(t::close);
            for (Thread c : closers) c.start();
            for (Thread c : closers) c.join();
            // were the array pooled twice, two live tensors would share it
            try (Tensor a = Tensor.empty(12345); Tensor b = Tensor.empty(12345)) {
                assertNotSame(a.array(), b.array());
            }
        }
    }

    /** Device memory in a Java array: what a tensor writes and reads through it, without a GPU. */
    private static final class ArrayMemory implements DeviceMemory {
        final short[] halves;

        ArrayMemory(short[] halves) {
            this.halves = halves;
        }

        @Override public long address() { return 0x1000; }
        @Override public long bytes() { return halves.length * 2L; }
        @Override public Device device() { return Device.cuda(0); }
        @Override public void copyFromHost(float[] src) { throw new AssertionError("F32 path"); }
        @Override public void copyToHost(float[] dst) { throw new AssertionError("F32 path"); }
        @Override public void copyFromHost(short[] src) { System.arraycopy(src, 0, halves, 0, src.length); }
        @Override public void copyToHost(short[] dst) { System.arraycopy(halves, 0, dst, 0, dst.length); }
        @Override public void close() {}
    }

    @Test
    void halfPrecisionDeviceTensorsWidenOnTheWayHome() {
        short[] bits = {HalfFloats.toBf16(1.5f), HalfFloats.toBf16(-3.25f), HalfFloats.toBf16(1f / 3), (short) 0x7f80};
        Tensor bf16 = Tensor.wrap(new ArrayMemory(bits), DType.BF16, 2, 2);
        float[] back = bf16.toArray();
        assertArrayEquals(new float[] {1.5f, -3.25f, HalfFloats.fromBf16(HalfFloats.toBf16(1f / 3)),
                Float.POSITIVE_INFINITY}, back);
        assertTrue(Math.abs(back[2] - 1f / 3) < 1f / 3 * 0x1p-8, "rounded to 8 significant bits");
        try (Tensor host = bf16.to(Device.CPU)) {
            assertEquals(DType.F32, host.dtype());
            assertArrayEquals(back, host.array());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bf16.to(Device.CPU, DType.BF16));
        assertTrue(e.getMessage().contains("host tensors are F32"), e.getMessage());
    }

    @Test
    void toCpuCopies() {
        Tensor t = Tensor.of(new float[] {1.5f, -2f}, 2);
        try (Tensor copy = t.to(Device.CPU)) {
            assertNotSame(t.array(), copy.array());
            assertArrayEquals(t.array(), copy.array());
        }
    }

    @Test
    void toCudaWithoutCudaSaysWhy() {
        if (MMFuse.report().isAvailable(Backend.CUDA)) return; // the GPU tests cover the other case
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Tensor.zeros(2).to(Device.cuda(0)));
        assertTrue(e.getMessage().contains("cuda backend is unavailable"), e.getMessage());
    }
}
