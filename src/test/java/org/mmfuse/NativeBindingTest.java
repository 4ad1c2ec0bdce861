package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Set;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerPointer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.mmfuse.backend.Probe;
import org.mmfuse.cuda.MmfNative;

/**
 * The whole chain Java -> JNI (JavaCPP) -> C ABI -> CUDA runtime, on any machine: calls that need
 * no device answer, and on a machine without a GPU the device query fails with the CUDA error's name.
 */
class NativeBindingTest {
    @BeforeEach
    void nativeLibraryBuilt() {
        assumeTrue(NativeBindingTest.class.getResource("/org/mmfuse/cuda/linux-x86_64/libjnimmfuse.so") != null,
                "libjnimmfuse.so was not built (no nvcc at build time): the JNI chain cannot be tested");
        Probe.JAVACPP.loadMmfuse();
    }

    @Test
    void versionsNeedNoDevice() {
        assertEquals(100, MmfNative.mmf_version()); // 0.1.0
        int[] runtime = {0};
        assertEquals(MmfNative.MMF_OK, MmfNative.mmf_cuda_runtime_version(runtime), MmfNative.mmf_last_error());
        assertTrue(runtime[0] >= 13000, "CUDA runtime " + runtime[0]);
    }

    @Test
    void deviceCountSaysNoDeviceWithoutAGpu() {
        int[] count = {-1};
        int status = MmfNative.mmf_device_count(count);
        if (ProbeTest.gpuDevicePresent()) {
            assertEquals(MmfNative.MMF_OK, status, MmfNative.mmf_last_error());
            assertTrue(count[0] > 0);
            return;
        }
        assertEquals(MmfNative.MMF_ERR_CUDA, status);
        assertEquals(0, count[0]);
        String name = MmfNative.mmf_cuda_error_name(MmfNative.mmf_last_cuda_error());
        assertTrue(Set.of("cudaErrorInsufficientDriver", "cudaErrorNoDevice").contains(name), name);
        assertTrue(MmfNative.mmf_last_error().contains(name), MmfNative.mmf_last_error());
    }

    @Test
    void theCAbiChecksItsArgumentsBeforeTouchingCuda() {
        try (PointerPointer<?> pieces = new PointerPointer<>(2); LongPointer widths = new LongPointer(3L, 4L)) {
            int status = MmfNative.mmf_concat_f32(-1, pieces, widths, 1, null, 7, null, 0, null);
            assertEquals(MmfNative.MMF_ERR_INVALID_ARGUMENT, status);
            assertTrue(MmfNative.mmf_last_error().contains("n_pieces = -1"), MmfNative.mmf_last_error());

            status = MmfNative.mmf_concat_f32(2, pieces, widths, 5, null, 8, null, 0, null);
            assertEquals(MmfNative.MMF_ERR_INVALID_ARGUMENT, status);
            assertTrue(MmfNative.mmf_last_error().contains("sum to 7, whole_width is 8"), MmfNative.mmf_last_error());

            // nothing to move: succeeds without any CUDA call, even without a device
            status = MmfNative.mmf_split_f32(2, pieces, widths, 0, null, 7, null, 0, null);
            assertEquals(MmfNative.MMF_OK, status, MmfNative.mmf_last_error());
            assertEquals("", MmfNative.mmf_last_error());
        }
    }

    /** Every entry point through the glue, with arguments the C side refuses or that need no device. */
    @Test
    void everyEntryPointAnswersThroughTheGlue() {
        assertEquals(List.of(), JniChecks.failures());
    }

    @Test
    void workspaceSizeGrowsWithThePieces() {
        assertEquals(0, MmfNative.mmf_concat_workspace_bytes(0));
        long one = MmfNative.mmf_concat_workspace_bytes(1);
        assertTrue(one > 0);
        assertEquals(3000 * one, MmfNative.mmf_concat_workspace_bytes(3000));
    }
}
