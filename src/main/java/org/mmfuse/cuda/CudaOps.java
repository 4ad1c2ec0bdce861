package org.mmfuse.cuda;

import static org.bytedeco.cuda.global.cudart.cudaGetDeviceProperties;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;
import static org.bytedeco.cuda.global.cudart.cudaStreamSynchronize;

import java.util.List;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.mmfuse.Backend;
import org.mmfuse.CudaException;
import org.mmfuse.DType;
import org.mmfuse.Device;
import org.mmfuse.DeviceMemory;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;
import org.mmfuse.backend.AbstractOps;
import org.mmfuse.backend.BlockCopy;

/**
 * The CUDA backend: libmmfuse's kernels on one device. Work is queued on the calling thread's
 * per-thread default stream and not waited for; {@link Tensor#toArray()} and {@link Tensor#to}
 * wait for the calling thread's queued work. Hand a device tensor to another thread only after that
 * thread's work is done (e.g. after a {@code toArray()}).
 *
 * <p>Use only after the probe found a device: the first touch of this class loads the CUDA presets.
 */
public final class CudaOps extends AbstractOps {
    private final Device device;
    /** Scratch device memory per thread (kernel tables); safe to reuse since each thread has one stream. */
    private final ThreadLocal<CudaMemory> workspace = new ThreadLocal<>();

    public CudaOps(int deviceIndex) {
        this.device = Device.cuda(deviceIndex);
    }

    /** New device memory of {@code bytes} on {@code device}, owned by the caller. */
    public static DeviceMemory allocate(Device device, long bytes) {
        return CudaMemory.allocate(device, bytes);
    }

    /** One line on a device: name, compute capability, SMs, memory. */
    public static String describeDevice(int index) {
        try (cudaDeviceProp prop = new cudaDeviceProp()) {
            Cuda.check(cudaGetDeviceProperties(prop, index), "cudaGetDeviceProperties");
            return String.format("cuda:%d %s, sm_%d%d, %d SMs, %.1f GiB", index, prop.name().getString(), prop.major(),
                    prop.minor(), prop.multiProcessorCount(), prop.totalGlobalMem() / (double) (1L << 30));
        }
    }

    @Override
    public Backend backend() {
        return Backend.CUDA;
    }

    @Override
    public String description() {
        return "cuda on " + describeDevice(device.index());
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public void synchronize() {
        Cuda.check(cudaSetDevice(device.index()), "cudaSetDevice");
        Cuda.check(cudaStreamSynchronize(Cuda.stream()), "cudaStreamSynchronize");
    }

    @Override
    protected Tensor allocate(long[] shape) {
        long bytes = Math.multiplyExact(Shapes.numel("shape", shape), (long) DType.F32.bytes());
        return Tensor.wrap(CudaMemory.allocate(device, bytes), DType.F32, shape);
    }

    @Override
    protected boolean overlaps(Tensor a, Tensor b) {
        DeviceMemory x = a.deviceMemory(), y = b.deviceMemory();
        long xEnd = x.address() + a.numel() * 4, yEnd = y.address() + b.numel() * 4;
        return x.address() < yEnd && y.address() < xEnd;
    }

    @Override
    protected void gather(BlockCopy plan, List<Tensor> pieces, Tensor whole) {
        blockCopy("concat", true, plan, pieces, whole);
    }

    @Override
    protected void scatter(BlockCopy plan, Tensor whole, List<Tensor> pieces) {
        blockCopy("split", false, plan, pieces, whole);
    }

    private void blockCopy(String op, boolean gather, BlockCopy plan, List<Tensor> pieces, Tensor whole) {
        if (plan.elements() == 0) return;
        int n = plan.pieces();
        Cuda.check(cudaSetDevice(device.index()), "cudaSetDevice");
        try (PointerPointer<Pointer> pointers = new PointerPointer<>(n);
                LongPointer widths = new LongPointer(plan.widths())) {
            for (int i = 0; i < n; i++) pointers.put(i, Cuda.at(pieces.get(i).deviceMemory().address()));
            long workspaceBytes = MmfNative.mmf_concat_workspace_bytes(n);
            Pointer scratch = Cuda.at(workspace(workspaceBytes).address());
            Pointer wholePointer = Cuda.at(whole.deviceMemory().address());
            int status = gather
                    ? MmfNative.mmf_concat_f32(n, pointers, widths, plan.rows, wholePointer, plan.wholeWidth, scratch,
                            workspaceBytes, Cuda.stream())
                    : MmfNative.mmf_split_f32(n, pointers, widths, plan.rows, wholePointer, plan.wholeWidth, scratch,
                            workspaceBytes, Cuda.stream());
            checkStatus(status, op);
        }
    }

    private DeviceMemory workspace(long bytes) {
        CudaMemory current = workspace.get();
        if (current == null || current.bytes() < bytes) {
            if (current != null) current.close();
            current = CudaMemory.allocate(device, Math.max(bytes, 4096));
            workspace.set(current);
        }
        return current;
    }

    /** Turns a libmmfuse status into an exception naming the operation (and the CUDA error, if any). */
    static void checkStatus(int status, String op) {
        if (status == MmfNative.MMF_OK) return;
        if (status == MmfNative.MMF_ERR_CUDA) {
            throw new CudaException(op, MmfNative.mmf_cuda_error_name(MmfNative.mmf_last_cuda_error()),
                    MmfNative.mmf_last_error());
        }
        // The Java checks should have caught every argument error: reaching here is a bug in MMFuse.
        throw new IllegalStateException(op + ": libmmfuse refused the call (status " + status + "): "
                + MmfNative.mmf_last_error());
    }
}
