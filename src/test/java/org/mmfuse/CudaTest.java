package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.mmfuse.cuda.MmfNative;

/**
 * What only a GPU can show: device copies, pointers that are not 16-byte aligned, device faults.
 * (ConcatTest and ConcatErrorsTest also run on the CUDA backend when it is available.)
 * Skipped, with the probe's reasons, on machines without a GPU.
 */
class CudaTest {
    @BeforeEach
    void cudaAvailable() {
        assumeTrue(MMFuse.report().isAvailable(Backend.CUDA), () -> "no CUDA backend here:\n" + MMFuse.report());
    }

    private static Ops cuda() {
        return MMFuse.ops(Backend.CUDA);
    }

    @Test
    void hostDeviceRoundTrip() {
        Tensor host = TestSupport.random(new Random(1), 3, 1001);
        try (Tensor device = host.to(Device.cuda(0)); Tensor back = device.to(Device.CPU)) {
            assertEquals(Device.cuda(0), device.device());
            assertArrayEquals(host.array(), back.array());
        }
    }

    /** A view of device memory starting {@code shift} bytes in: gives the kernel pointers off 16-byte alignment. */
    private static final class ShiftedMemory implements DeviceMemory {
        private final DeviceMemory base;
        private final long shift;

        ShiftedMemory(DeviceMemory base, long shift) {
            this.base = base;
            this.shift = shift;
        }

        private Pointer pointer() {
            return new Pointer() {
                {
                    address = base.address() + shift;
                }
            };
        }

        @Override public long address() { return base.address() + shift; }
        @Override public long bytes() { return base.bytes() - shift; }
        @Override public Device device() { return base.device(); }
        @Override public void close() { base.close(); }

        @Override
        public void copyFromHost(float[] src) {
            try (FloatPointer staging = new FloatPointer(src)) {
                assertEquals(0, cudart.cudaMemcpy(pointer(), staging, src.length * 4L, cudart.cudaMemcpyHostToDevice));
            }
        }

        @Override
        public void copyToHost(float[] dst) {
            try (FloatPointer staging = new FloatPointer(dst.length)) {
                assertEquals(0, cudart.cudaDeviceSynchronize());
                assertEquals(0, cudart.cudaMemcpy(staging, pointer(), dst.length * 4L, cudart.cudaMemcpyDeviceToHost));
                staging.get(dst);
            }
        }

        @Override
        public void copyFromHost(short[] src) {
            throw new UnsupportedOperationException("the shifted view is for F32 tests");
        }

        @Override
        public void copyToHost(short[] dst) {
            throw new UnsupportedOperationException("the shifted view is for F32 tests");
        }
    }

    private static Tensor shifted(Tensor host) {
        DeviceMemory base = org.mmfuse.cuda.CudaOps.allocate(Device.cuda(0), host.numel() * 4 + 16);
        Tensor t = Tensor.wrap(new ShiftedMemory(base, 4), DType.F32, host.shape());
        t.deviceMemory().copyFromHost(host.array());
        return t;
    }

    @Test
    void unalignedPointersTakeTheScalarPath() {
        Random rng = new Random(2);
        List<Tensor> host = List.of(TestSupport.random(rng, 33, 64), TestSupport.random(rng, 33, 128));
        try (Tensor a = shifted(host.get(0)); Tensor b = host.get(1).to(Device.cuda(0));
                Tensor out = cuda().concat(List.of(a, b), 1)) {
            assertArrayEquals(TestSupport.referenceConcat(host, 1), out.toArray());
            try (Tensor outShifted = shifted(Tensor.zeros(33, 192))) {
                cuda().concatInto(outShifted, List.of(a, b), 1);
                assertArrayEquals(TestSupport.referenceConcat(host, 1), outShifted.toArray());
            }
        }
    }

    /** BF16, F16 and TF32 attention (tensor cores) against a double reference on the rounded inputs. */
    @Test
    void tensorCoreAttentionMatchesTheReferenceOnRoundedInputs() {
        Ops ops = cuda();
        Random rng = new Random(5);
        int b = 2, lq = 37, lk = 150, h = 3, d = 64;
        for (DType dtype : new DType[] {DType.BF16, DType.F16, DType.F32}) {
            boolean tf32 = dtype == DType.F32;
            Tensor[] host = {TestSupport.random(rng, b, lq, h, d), TestSupport.random(rng, b, lk, h, d),
                    TestSupport.random(rng, b, lk, h, d)};
            for (Tensor t : host) for (int i = 0; i < t.array().length; i++) t.array()[i] *= 0.1f;
            Tensor q = host[0].to(ops.device(), dtype), k = host[1].to(ops.device(), dtype), v = host[2].to(ops.device(), dtype);
            AttentionOptions options = AttentionOptions.DEFAULT.causal(true).withLogSumExp().allowTf32(tf32);
            try (AttentionResult r = ops.attention(q, k, v, options)) {
                assertEquals(dtype, r.output().dtype());
                float[] qr = q.toArray(), kr = k.toArray(), vr = v.toArray(), out = r.output().toArray();
                double worst = 0;
                for (int bi = 0; bi < b; bi++) for (int hi = 0; hi < h; hi++) for (int i = 0; i < lq; i++) {
                    double[] w = new double[lk];
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j <= i + lk - lq; j++) {
                        double dot = 0;
                        for (int x = 0; x < d; x++) dot += (double) qr[((bi * lq + i) * h + hi) * d + x] * kr[((bi * lk + j) * h + hi) * d + x];
                        w[j] = dot / Math.sqrt(d);
                        max = Math.max(max, w[j]);
                    }
                    for (int j = 0; j <= i + lk - lq; j++) sum += w[j] = Math.exp(w[j] - max);
                    for (int x = 0; x < d; x++) {
                        double expected = 0;
                        for (int j = 0; j <= i + lk - lq; j++) expected += w[j] / sum * vr[((bi * lk + j) * h + hi) * d + x];
                        worst = Math.max(worst, Math.abs(expected - out[((bi * lq + i) * h + hi) * d + x]));
                    }
                }
                // |v| <= 1: the probabilities and the output are rounded once each (2^-9 for bf16);
                // TF32 truncates q, k, v to 10-bit mantissas in the products (logits here are below 1)
                double tolerance = dtype == DType.BF16 ? 8e-3 : dtype == DType.F16 ? 2e-3 : 3e-3;
                assertTrue(worst < tolerance, dtype + (tf32 ? " (tf32)" : "") + ": worst error " + worst);
                assertTrue(tf32 ? worst > 1e-6 : true, "TF32 rounding shows (" + worst + "): the tensor-core path ran");
            } finally {
                for (Tensor t : new Tensor[] {q, k, v}) t.close();
            }
        }
    }

    /**
     * Linear and bilinear pooling at each matmul precision against a double reference, the error measured
     * against the sum of |terms| of each element: rounding the inputs to an m-bit mantissa moves each
     * term by at most 2^-m of its size (2 ^ -(m - 1) for the two factors), fp32 accumulation adds little.
     * The second linear layer (8 rows, k = 2048) has too few output tiles to fill a device, so it is split
     * along k (asserted below on this device's SM count): the split path at every precision.
     */
    @Test
    void reducedMatmulPrecisionsStayWithinTheirRounding() {
        Ops fp32 = cuda();
        assertEquals(MatmulPrecision.FP32, fp32.matmulPrecision());
        assertTrue(fp32.withMatmulPrecision(MatmulPrecision.FP32) == fp32, "FP32 asked of an FP32 backend returns it");
        int[] sms = new int[1];
        assertEquals(0, cudart.cudaDeviceGetAttribute(sms, cudart.cudaDevAttrMultiProcessorCount, 0), "SM count");
        int[] slices = new int[1];
        assertEquals(MmfNative.MMF_OK, MmfNative.mmf_gemm_k_split(8, 45, 2048, sms[0], slices, new long[1]));
        assertTrue(slices[0] > 1, "8 x 2048 -> 45 split along k on " + sms[0] + " SMs, got " + slices[0] + " slice");
        Random rng = new Random(6);
        int out = 45, n = 13, c1 = 33, c2 = 21;
        Tensor[] xs = {TestSupport.random(rng, 70, 300), TestSupport.random(rng, 8, 2048)};
        Tensor[] ws = {TestSupport.random(rng, out, 300), TestSupport.random(rng, out, 2048)};
        Tensor bias = TestSupport.random(rng, out);
        Tensor px = TestSupport.random(rng, 2, n, c1), py = TestSupport.random(rng, 2, n, c2);
        Map<MatmulPrecision, Double> bound = Map.of(MatmulPrecision.FP32, 1e-5, MatmulPrecision.TF32, 2.5e-3,
                MatmulPrecision.FP16, 2.5e-3, MatmulPrecision.BF16, 1e-2);
        for (MatmulPrecision precision : MatmulPrecision.values()) {
            Ops ops = fp32.withMatmulPrecision(precision);
            assertEquals(precision, ops.matmulPrecision());
            assertEquals(MatmulPrecision.FP32, fp32.matmulPrecision(), "the original is unchanged");
            double worst = 0;
            for (int layer = 0; layer < xs.length; layer++) {
                Tensor x = xs[layer], w = ws[layer];
                int rows = (int) x.size(0), in = (int) x.size(1);
                try (Tensor dx = x.to(ops.device()); Tensor dw = w.to(ops.device()); Tensor db = bias.to(ops.device());
                        Tensor y = ops.linear(dx, dw, db)) {
                    float[] got = y.toArray();
                    for (int r = 0; r < rows; r++) {
                        for (int o = 0; o < out; o++) {
                            double sum = bias.array()[o], size = Math.abs(sum);
                            for (int i = 0; i < in; i++) {
                                double term = (double) x.array()[r * in + i] * w.array()[o * in + i];
                                sum += term;
                                size += Math.abs(term);
                            }
                            worst = Math.max(worst, Math.abs(got[r * out + o] - sum) / size);
                        }
                    }
                }
            }
            try (Tensor dx = px.to(ops.device()); Tensor dy = py.to(ops.device());
                    Tensor z = ops.bilinearPool(dx, dy, PoolingOptions.NONE)) {
                float[] got = z.toArray();
                for (int s = 0; s < 2; s++) {
                    for (int i = 0; i < c1; i++) {
                        for (int j = 0; j < c2; j++) {
                            double sum = 0, size = 0;
                            for (int l = 0; l < n; l++) {
                                double term = (double) px.array()[(s * n + l) * c1 + i] * py.array()[(s * n + l) * c2 + j];
                                sum += term;
                                size += Math.abs(term);
                            }
                            worst = Math.max(worst, Math.abs(got[(s * c1 + i) * c2 + j] - sum) / size);
                        }
                    }
                }
            }
            assertTrue(worst < bound.get(precision), precision + ": worst relative error " + worst);
        }
    }

    @Test
    void attentionHeadDimensionsPastTheKernelsAreRefusedBeforeLaunch() {
        Ops ops = cuda();
        try (Tensor q = TestSupport.on(ops, Tensor.zeros(1, 2, 1, 300)); Tensor v = TestSupport.on(ops, Tensor.zeros(1, 2, 1, 8))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ops.attention(q, q, v, AttentionOptions.DEFAULT));
            assertTrue(e.getMessage().contains("up to 256, got Dh = 300"), e.getMessage());
        }
    }

    @Test
    void outOfMemoryIsAnExceptionAndTheBackendStaysUsable() {
        CudaException e = assertThrows(CudaException.class,
                () -> org.mmfuse.cuda.CudaOps.allocate(Device.cuda(0), 1L << 50)); // 1 PiB
        assertEquals("cudaErrorMemoryAllocation", e.errorName());
        Random rng = new Random(3);
        List<Tensor> host = List.of(TestSupport.random(rng, 4, 5), TestSupport.random(rng, 4, 6));
        List<Tensor> inputs = TestSupport.on(cuda(), host);
        try (Tensor out = cuda().concat(inputs, 1)) {
            assertArrayEquals(TestSupport.referenceConcat(host, 1), out.toArray());
        } finally {
            TestSupport.closeAll(inputs);
        }
    }

    @Test
    void allocatingUntilTheDeviceIsFullFailsCleanlyAndFreesEverything() {
        List<DeviceMemory> held = new ArrayList<>();
        CudaException full = null;
        try {
            for (int gib = 0; gib < 1024 && full == null; gib++) { // ends at the device's memory, far below 1 TiB
                try {
                    held.add(org.mmfuse.cuda.CudaOps.allocate(Device.cuda(0), 1L << 30));
                } catch (CudaException e) {
                    full = e;
                }
            }
        } finally {
            held.forEach(DeviceMemory::close);
        }
        assertTrue(full != null && !held.isEmpty(), "allocated " + held.size() + " GiB without failing");
        assertEquals("cudaErrorMemoryAllocation", full.errorName());
        Random rng = new Random(4); // usable again, the memory given back
        List<Tensor> host = List.of(TestSupport.random(rng, 3, 7), TestSupport.random(rng, 3, 2));
        List<Tensor> inputs = TestSupport.on(cuda(), host);
        try (Tensor out = cuda().concat(inputs, 1); DeviceMemory again = org.mmfuse.cuda.CudaOps.allocate(Device.cuda(0),
                (held.size() - 1) * (1L << 30))) {
            assertArrayEquals(TestSupport.referenceConcat(host, 1), out.toArray());
        } finally {
            TestSupport.closeAll(inputs);
        }
    }

    /** In a JVM of its own, since a sticky error ends CUDA for the whole process: see {@link StickyErrorCheck}. */
    @Test
    void aStickyErrorIsReportedAndMarksTheBackendUnusable() throws IOException, InterruptedException {
        TestSupport.ChildJvm run = TestSupport.runJava(null, Map.of(), StickyErrorCheck.class);
        assertEquals(0, run.exitStatus(), run.output());
        assertTrue(run.output().contains("sticky error: handled"), run.output());
    }

    /**
     * Device tensors dropped without close(): their memory comes back through the cleaner when the device
     * fills (the allocation collects and retries), so more than the device holds allocates.
     */
    @Test
    void tensorsNeverClosedAreReclaimed() {
        long chunk = 256L << 20;
        for (long allocated = 0; allocated < 200L << 30; allocated += chunk) { // 200 GiB: more than an H200 holds
            Tensor.wrap(org.mmfuse.cuda.CudaOps.allocate(Device.cuda(0), chunk), DType.F32, chunk / 4); // dropped
        }
        Tensor x = TestSupport.random(new Random(5), 4, 4);
        try (Tensor onDevice = x.to(Device.cuda(0)); Tensor back = onDevice.to(Device.CPU)) {
            assertArrayEquals(x.array(), back.array());
        }
    }
}
