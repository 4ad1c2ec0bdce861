package org.mmfuse.cuda;

import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import org.mmfuse.CudaException;

/**
 * Whether this process's CUDA context still works. A sticky error (an illegal address, a kernel that
 * trapped, a launch failure) corrupts the context: CUDA answers every later call with the same error
 * until the process ends. The first one is recorded here, and from then on every CUDA operation is
 * refused before it touches the device, naming the error and the operation that met it; automatic
 * backend selection ({@code MMFuse.ops()}) moves to the CPU. Kernels fail asynchronously, so the
 * operation that meets the error may be a later one than the kernel that caused it (run with
 * {@code CUDA_LAUNCH_BLOCKING=1} to find that kernel). The process should then end, and may not end by
 * itself: on an H100 (driver 580) the JVM spun in the CUDA runtime's exit handlers after such a fault
 * (README, "After a GPU fault").
 *
 * <p>Plain Java, no CUDA: loading this class needs neither a driver nor the presets.
 */
public final class CudaContext {
    /** The errors after which, says CUDA's documentation, "the process must be terminated and relaunched". */
    private static final Set<Integer> STICKY = Set.of(
            700, // cudaErrorIllegalAddress
            702, // cudaErrorLaunchTimeout
            710, // cudaErrorAssert
            714, // cudaErrorHardwareStackError
            715, // cudaErrorIllegalInstruction
            716, // cudaErrorMisalignedAddress
            717, // cudaErrorInvalidAddressSpace
            718, // cudaErrorInvalidPc
            719, // cudaErrorLaunchFailure
            721, // cudaErrorTensorMemoryLeak
            810); // cudaErrorMpsClientTerminated

    /** The process's context. */
    static final CudaContext PROCESS = new CudaContext();

    private final AtomicReference<CudaException> lost = new AtomicReference<>();

    CudaContext() {}

    /**
     * Why CUDA is unusable in this process (the first sticky error and the operation that met it), or
     * null while it works.
     */
    public static String lossReason() {
        CudaException first = PROCESS.lost.get();
        return first == null ? null : first.getMessage();
    }

    /** The exception for a failed CUDA call; a sticky error also marks the context lost. */
    CudaException failure(String operation, int error, String errorName, String message) {
        CudaException e = new CudaException(operation, errorName, message);
        if (STICKY.contains(error)) lost.compareAndSet(null, e);
        return e;
    }

    /** Refuses an operation once the context is lost. */
    void ensureUsable(String operation) {
        CudaException first = lost.get();
        if (first != null) {
            throw new CudaException(operation, first.errorName(), "the CUDA context was lost to an earlier error, "
                    + first.getMessage() + "; CUDA is unusable in this process until it restarts");
        }
    }
}
