package org.mmfuse.cuda;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.mmfuse.CudaException;

/**
 * The bookkeeping of sticky CUDA errors, on a context of its own (no GPU needed; the GPU case, a real
 * illegal address in a child JVM, is CudaTest's).
 */
class CudaContextTest {
    @Test
    void anErrorThatLeavesTheContextWorkingChangesNothing() {
        CudaContext context = new CudaContext();
        CudaException e = context.failure("allocate", 2, "cudaErrorMemoryAllocation", "1 PiB");
        assertEquals("allocate", e.operation());
        assertEquals("cudaErrorMemoryAllocation", e.errorName());
        assertDoesNotThrow(() -> context.ensureUsable("gemm"));
    }

    @Test
    void aStickyErrorRefusesEveryLaterOperationNamingTheFirst() {
        CudaContext context = new CudaContext();
        CudaException first = context.failure("attention", 700, "cudaErrorIllegalAddress", "mmf_attention: launch");
        assertEquals("attention: cudaErrorIllegalAddress (mmf_attention: launch)", first.getMessage());
        context.failure("synchronize", 719, "cudaErrorLaunchFailure", null); // a second one: the first stays
        CudaException later = assertThrows(CudaException.class, () -> context.ensureUsable("gemm"));
        assertEquals("gemm", later.operation());
        assertEquals("cudaErrorIllegalAddress", later.errorName());
        assertTrue(later.getMessage().contains("attention: cudaErrorIllegalAddress") && later.getMessage().contains("unusable"),
                later.getMessage());
    }

    @Test
    void everyDocumentedStickyErrorCounts() {
        for (int error : new int[] {700, 702, 710, 714, 715, 716, 717, 718, 719, 721, 810}) {
            CudaContext context = new CudaContext();
            context.failure("op", error, "error " + error, null);
            assertThrows(CudaException.class, () -> context.ensureUsable("next"), "error " + error);
        }
        CudaContext context = new CudaContext();
        for (int error : new int[] {1, 2, 98, 100, 209, 700 - 1, 999}) context.failure("op", error, "error " + error, null);
        assertDoesNotThrow(() -> context.ensureUsable("next"));
    }

    @Test
    void thisProcessHasLostNothing() {
        assertNull(CudaContext.lossReason()); // the contexts above were their own
    }
}
