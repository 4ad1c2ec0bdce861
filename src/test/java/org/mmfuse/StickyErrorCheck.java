package org.mmfuse;

import java.util.Arrays;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.Pointer;
import org.mmfuse.cuda.CudaContext;
import org.mmfuse.cuda.MmfNative;

/**
 * A sticky CUDA error, made on purpose, and what must follow it; run by CudaTest in a JVM of its own,
 * since the error ends CUDA for the whole process. A kernel reads a never-mapped device address
 * (cudaErrorIllegalAddress); the next CUDA operation reports it by name, every later one is refused
 * naming it, and {@link MMFuse#ops()} moves to the CPU. Prints "sticky error: handled" when all of that held.
 */
public final class StickyErrorCheck {
    private StickyErrorCheck() {}

    public static void main(String[] args) {
        Ops cuda = MMFuse.ops(Backend.CUDA);
        float[] values = {-1f, 2f, -3f, 4f};
        try (Tensor x = Tensor.of(values, 2, 2).to(Device.cuda(0)); Tensor y = cuda.activation(x, Activation.RELU)) {
            check(Arrays.equals(y.toArray(), new float[] {0f, 2f, 0f, 4f}), "a call before the fault works");
            Pointer unmapped = new Pointer() {
                {
                    address = 4096; // the first pages of the device address space are never mapped
                }
            };
            // on the backend's stream (per thread): synchronize() waits for that stream, not the legacy default one
            // one element: a single faulting thread (a million of them kept the driver busy past the JVM's exit)
            int launched = MmfNative.mmf_activate(unmapped, 1, MmfNative.MMF_ACTIVATION_RELU, unmapped,
                    cudart.cudaStreamPerThread());
            check(launched == MmfNative.MMF_OK || launched == MmfNative.MMF_ERR_CUDA, "the launch: status " + launched);
            CudaException met = expectCudaException(cuda::synchronize);
            check(met.errorName().equals("cudaErrorIllegalAddress") && met.operation().startsWith("synchronize"),
                    "the fault reported with the error's and the operation's names: " + met.getMessage());
            check(CudaContext.lossReason() != null, "the context marked lost");
            CudaException refused = expectCudaException(() -> cuda.activation(x, Activation.TANH).close());
            // refused by the call's first CUDA step, its output's allocation
            check(refused.getMessage().contains("unusable")
                    && refused.errorName().equals("cudaErrorIllegalAddress"), "a later call refused: " + refused.getMessage());
            check(MMFuse.ops().backend() != Backend.CUDA, "automatic selection moved to " + MMFuse.ops().backend());
        } // closing the tensors after the loss reports nothing: frees have no caller to tell
        System.out.println("sticky error: handled");
        // After the fault the CUDA runtime's exit handlers spun forever (the main thread in sched_yield; an H100,
        // driver 580): halt skips them. See "After a GPU fault" in the README.
        Runtime.getRuntime().halt(0);
    }

    private static CudaException expectCudaException(Runnable call) {
        try {
            call.run();
        } catch (CudaException e) {
            return e;
        }
        throw new AssertionError("no CudaException");
    }

    private static void check(boolean holds, String what) {
        if (!holds) throw new AssertionError(what);
    }
}
