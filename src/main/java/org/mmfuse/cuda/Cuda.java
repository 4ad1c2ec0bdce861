package org.mmfuse.cuda;

import static org.bytedeco.cuda.global.cudart.cudaGetErrorName;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;
import static org.bytedeco.cuda.global.cudart.cudaSuccess;

import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.mmfuse.CudaException;
import org.mmfuse.Device;

/** Small helpers over the CUDA presets: status checks, the stream work is queued on, raw device pointers. */
final class Cuda {
    private Cuda() {}

    /**
     * The stream MMFuse queues work on: the calling thread's per-thread default stream, so that
     * threads do not serialise on one stream and each thread's operations run in the order it issued them.
     */
    static CUstream_st stream() {
        return cudart.cudaStreamPerThread();
    }

    /**
     * Throws {@link CudaException} with the error's name if {@code status} is not cudaSuccess (a sticky
     * error also marks the context lost, see {@link CudaContext}).
     */
    static void check(int status, String operation) {
        if (status != cudaSuccess) {
            // The runtime also keeps a non-sticky error as the thread's "last error"; it is reported
            // here, so consume it, or the next launch check would blame itself for it.
            cudart.cudaGetLastError();
            throw CudaContext.PROCESS.failure(operation, status, cudaGetErrorName(status).getString(), null);
        }
    }

    /** The start of every CUDA operation: refused once the context is lost, else the device made current. */
    static void enter(Device device, String operation) {
        CudaContext.PROCESS.ensureUsable(operation);
        check(cudaSetDevice(device.index()), operation + " (cudaSetDevice)");
    }

    /** A JavaCPP pointer to a device address (no ownership: freeing stays with the memory's owner). */
    static Pointer at(long address) {
        return new DevicePointer(address);
    }

    /** The same, typed for APIs that take float* (cuBLAS). */
    static FloatPointer floatsAt(long address) {
        return new DeviceFloats(address);
    }

    private static final class DevicePointer extends Pointer {
        DevicePointer(long address) {
            this.address = address;
        }
    }

    private static final class DeviceFloats extends FloatPointer {
        DeviceFloats(long address) {
            this.address = address;
        }
    }
}
