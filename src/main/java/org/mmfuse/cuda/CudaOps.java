package org.mmfuse.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F_FAST_16BF;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F_FAST_16F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F_FAST_TF32;
import static org.bytedeco.cuda.global.cublas.CUBLAS_GEMM_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_SUCCESS;
import static org.bytedeco.cuda.global.cublas.cublasCreate_v2;
import static org.bytedeco.cuda.global.cublas.cublasDestroy_v2;
import static org.bytedeco.cuda.global.cublas.cublasGetStatusName;
import static org.bytedeco.cuda.global.cublas.cublasSetStream_v2;
import static org.bytedeco.cuda.global.cublas.cublasGemmEx;
import static org.bytedeco.cuda.global.cublas.cublasGemmStridedBatchedEx;
import static org.bytedeco.cuda.global.cufft.CUFFT_C2R;
import static org.bytedeco.cuda.global.cufft.CUFFT_R2C;
import static org.bytedeco.cuda.global.cufft.CUFFT_SUCCESS;
import static org.bytedeco.cuda.global.cufft.cufftDestroy;
import static org.bytedeco.cuda.global.cufft.cufftExecC2R;
import static org.bytedeco.cuda.global.cufft.cufftExecR2C;
import static org.bytedeco.cuda.global.cufft.cufftPlan1d;
import static org.bytedeco.cuda.global.cufft.cufftSetStream;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;
import static org.bytedeco.cuda.global.cudart.cudaDevAttrMultiProcessorCount;
import static org.bytedeco.cuda.global.cudart.cudaDeviceGetAttribute;
import static org.bytedeco.cuda.global.cudart.cudaGetDeviceProperties;
import static org.bytedeco.cuda.global.cudart.cudaMemGetInfo;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyAsync;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyDeviceToDevice;
import static org.bytedeco.cuda.global.cudart.cudaMemsetAsync;
import static org.bytedeco.cuda.global.cudart.cudaDeviceSynchronize;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;
import static org.bytedeco.cuda.global.cudart.cudaStreamSynchronize;

import java.lang.ref.Reference;
import java.util.List;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.cudart.float2;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;
import org.mmfuse.Activation;
import org.mmfuse.Backend;
import org.mmfuse.CountSketch;
import org.mmfuse.CudaException;
import org.mmfuse.DType;
import org.mmfuse.Device;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.MatmulPrecision;
import org.mmfuse.Ops;
import org.mmfuse.PoolingOptions;
import org.mmfuse.SequencePooling;
import org.mmfuse.DeviceMemory;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;
import org.mmfuse.backend.AbstractOps;
import org.mmfuse.backend.AttentionShape;
import org.mmfuse.backend.BilinearShape;
import org.mmfuse.backend.BlockCopy;
import org.mmfuse.backend.FactorizedShape;
import org.mmfuse.backend.Gemm;
import org.mmfuse.backend.PoolShape;

/**
 * The CUDA backend: libmmfuse's kernels on one device. Work is queued on the calling thread's
 * per-thread default stream and not waited for; {@link Tensor#toArray()} and {@link Tensor#to}
 * wait for the calling thread's queued work. Hand a device tensor to another thread only after that
 * thread's work is done (e.g. after a {@code toArray()}).
 *
 * <p>Every method that queues work ends with a reachability fence on its tensors: a tensor the caller
 * never closed (allowed: its memory's cleaner frees it) is otherwise unreachable once its address is
 * read, and a collection in that window would free the memory before the kernel that reads it is queued.
 * The cleaner's cudaFree waits for the device, so after queueing nothing more is needed.
 *
 * <p>Use only after the probe found a device: the first touch of this class loads the CUDA presets.
 */
public final class CudaOps extends AbstractOps {
    private final Device device;
    private final MatmulPrecision precision;
    /** cuBLAS's compute type for {@link #precision}. */
    private final int computeType;
    /** Scratch device memory per thread (concat tables, attention's split-KV partials and lse); safe to reuse
     *  since each thread has one stream. Shared with the other precisions' instances. */
    private final ThreadLocal<CudaMemory> workspace;
    /** cuBLAS handles per thread, each bound to that thread's stream; shared as the workspace is. */
    private final ThreadLocal<cublasContext> cublas;
    /** cuFFT plans per thread, by size and batch; shared as the workspace is. */
    private final ThreadLocal<java.util.Map<String, Integer>> fftPlans;
    /**
     * Count sketches' device tables, made on a sketch's first use and kept while it is reachable (a model
     * keeps its two): making them costs four uploads, each a stream synchronisation. A collected sketch's
     * tables go by the cleaner's cudaFree, which waits for the device, so no queued kernel still reads them.
     */
    private final java.util.Map<CountSketch, SketchTables> sketchTables;
    /** The device's SM count, 0 until {@link #smCount()} looks it up. */
    private int smCount;

    public CudaOps(int deviceIndex) {
        this(Device.cuda(deviceIndex), MatmulPrecision.FP32, new ThreadLocal<>(), new ThreadLocal<>(),
                ThreadLocal.withInitial(() -> newPlanCache(deviceIndex)), new java.util.WeakHashMap<>());
    }

    private CudaOps(Device device, MatmulPrecision precision, ThreadLocal<CudaMemory> workspace,
            ThreadLocal<cublasContext> cublas, ThreadLocal<java.util.Map<String, Integer>> fftPlans,
            java.util.Map<CountSketch, SketchTables> sketchTables) {
        this.device = device;
        this.precision = precision;
        this.computeType = switch (precision) {
            case FP32 -> CUBLAS_COMPUTE_32F;
            case TF32 -> CUBLAS_COMPUTE_32F_FAST_TF32;
            case BF16 -> CUBLAS_COMPUTE_32F_FAST_16BF;
            case FP16 -> CUBLAS_COMPUTE_32F_FAST_16F;
        };
        this.workspace = workspace;
        this.cublas = cublas;
        this.fftPlans = fftPlans;
        this.sketchTables = sketchTables;
    }

    @Override
    public MatmulPrecision matmulPrecision() {
        return precision;
    }

    @Override
    public Ops withMatmulPrecision(MatmulPrecision precision) {
        java.util.Objects.requireNonNull(precision, "withMatmulPrecision: precision is null");
        return precision == this.precision ? this : new CudaOps(device, precision, workspace, cublas, fftPlans, sketchTables);
    }

    /** New device memory of {@code bytes} on {@code device}, owned by the caller. */
    public static DeviceMemory allocate(Device device, long bytes) {
        return CudaMemory.allocate(device, bytes);
    }

    /**
     * Bytes in use on a device as the driver counts them (total - free, {@code cudaMemGetInfo}): every
     * process's, and what the memory pools keep for reuse after frees.
     */
    public static long deviceMemoryInUse(int index) {
        try (SizeTPointer free = new SizeTPointer(1); SizeTPointer total = new SizeTPointer(1)) {
            Cuda.enter(Device.cuda(index), "deviceMemoryInUse");
            Cuda.check(cudaMemGetInfo(free, total), "deviceMemoryInUse (cudaMemGetInfo)");
            return total.get() - free.get();
        }
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
        Cuda.enter(device, "synchronize");
        Cuda.check(cudaStreamSynchronize(Cuda.stream()), "synchronize (cudaStreamSynchronize)");
    }

    @Override
    public void synchronizeDevice() {
        Cuda.enter(device, "synchronizeDevice");
        Cuda.check(cudaDeviceSynchronize(), "synchronizeDevice (cudaDeviceSynchronize)");
    }

    @Override
    protected Tensor allocate(long[] shape) {
        return allocate(shape, DType.F32);
    }

    @Override
    protected Tensor allocate(long[] shape, DType dtype) {
        long bytes = Math.multiplyExact(Shapes.numel("shape", shape), (long) dtype.bytes());
        return Tensor.wrap(CudaMemory.allocate(device, bytes), dtype, shape);
    }

    @Override
    protected boolean takesHalfAttention() {
        return true;
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

    /**
     * cuBLAS GEMM through the presets, in fp32 or at the allowed {@link #matmulPrecision}. cuBLAS is
     * column-major: a row-major C [m, n] is a column-major [n, m] matrix, Cᵀ = Bᵀ · Aᵀ, so B goes first.
     * The bias is written into C's rows first (copies doubling the filled rows) and the product is added
     * with beta = 1. Products with too few output tiles to fill the device are split along k instead
     * ({@link #gemmSplitK}).
     */
    @Override
    protected void gemm(Gemm g, Tensor a, Tensor b, Tensor bias, Tensor c) {
        try {
            if (g.m > Integer.MAX_VALUE || g.n > Integer.MAX_VALUE || g.k > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("cuBLAS takes int dimensions: m = " + g.m + ", n = " + g.n + ", k = " + g.k);
            }
            int m = (int) g.m, n = (int) g.n, k = (int) g.k;
            if (m == 0 || n == 0) return;
            Cuda.enter(device, "gemm");
            int[] slices = new int[1];
            long[] sliceK = new long[1];
            checkStatus(MmfNative.mmf_gemm_k_split(m, n, k, smCount(), slices, sliceK), "gemm");
            if (slices[0] > 1) {
                gemmSplitK(g, a, b, bias, c, slices[0], (int) sliceK[0]);
                return;
            }
            long cAddress = c.deviceMemory().address();
            if (bias != null) {
                fillRows(cAddress, bias.deviceMemory().address(), m, n * 4L);
            } else if (k == 0) {
                Cuda.check(cudaMemsetAsync(Cuda.at(cAddress), 0, (long) m * n * 4, Cuda.stream()), "cudaMemsetAsync");
            }
            if (k == 0) return;
            try (FloatPointer one = new FloatPointer(1f); FloatPointer beta = new FloatPointer(bias == null ? 0f : 1f)) {
                int status = cublasGemmEx(cublasHandle(), g.transposedB ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, n, m, k,
                        one, Cuda.at(b.deviceMemory().address()), CUDA_R_32F, g.transposedB ? k : n,
                        Cuda.at(a.deviceMemory().address()), CUDA_R_32F, k, beta, Cuda.at(cAddress), CUDA_R_32F, n,
                        computeType, CUBLAS_GEMM_DEFAULT);
                checkCublas(status, (g.transposedB ? "linear" : "matmul") + " (cublasGemmEx, " + precision + ")");
            }
        } finally {
            Reference.reachabilityFence(new Object[] {a, b, bias, c});
        }
    }

    /**
     * C = A · B (+ bias) as {@code slices} products over consecutive ranges of k of {@code sliceK} steps (the
     * last one the rest), each into its own partial [m, n] in this thread's workspace, which libmmfuse then
     * adds in order, bias first. A product with few rows has few tiles of C and leaves most SMs idle however
     * long k is; its slices run side by side. One strided-batched call takes the slices of full length, one
     * more call the last when it is shorter.
     */
    private void gemmSplitK(Gemm g, Tensor a, Tensor b, Tensor bias, Tensor c, int slices, int sliceK) {
        int m = (int) g.m, n = (int) g.n, k = (int) g.k;
        long partialFloats = (long) m * n;
        long partials = workspace(slices * partialFloats * 4).address();
        long aAddress = a.deviceMemory().address(), bAddress = b.deviceMemory().address();
        // where slice s starts: a [m, k] at column s sliceK; b [n, k] (transposed) at column s sliceK, b [k, n] at row
        long bSliceStride = g.transposedB ? sliceK : (long) sliceK * n;
        int whole = k % sliceK == 0 ? slices : slices - 1, rest = k - whole * sliceK;
        int opB = g.transposedB ? CUBLAS_OP_T : CUBLAS_OP_N, ldb = g.transposedB ? k : n;
        String op = (g.transposedB ? "linear" : "matmul") + " split along k";
        try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
            int status = cublasGemmStridedBatchedEx(cublasHandle(), opB, CUBLAS_OP_N, n, m, sliceK, one, Cuda.at(bAddress),
                    CUDA_R_32F, ldb, bSliceStride, Cuda.at(aAddress), CUDA_R_32F, k, sliceK, zero, Cuda.at(partials),
                    CUDA_R_32F, n, partialFloats, whole, computeType, CUBLAS_GEMM_DEFAULT);
            checkCublas(status, op + " (cublasGemmStridedBatchedEx, " + precision + ")");
            if (rest > 0) {
                status = cublasGemmEx(cublasHandle(), opB, CUBLAS_OP_N, n, m, rest, one,
                        Cuda.at(bAddress + whole * bSliceStride * 4), CUDA_R_32F, ldb,
                        Cuda.at(aAddress + (long) whole * sliceK * 4), CUDA_R_32F, k, zero,
                        Cuda.at(partials + whole * partialFloats * 4), CUDA_R_32F, n, computeType, CUBLAS_GEMM_DEFAULT);
                checkCublas(status, op + " (cublasGemmEx, " + precision + ")");
            }
        }
        checkStatus(MmfNative.mmf_sum_slices(Cuda.at(partials), slices, m, n, at(bias), at(c), Cuda.stream()), op);
    }

    /** The device's SM count, which decides {@link #gemmSplitK}; looked up once (a race only repeats the lookup). */
    private int smCount() {
        if (smCount == 0) {
            int[] count = new int[1];
            Cuda.check(cudaDeviceGetAttribute(count, cudaDevAttrMultiProcessorCount, device.index()),
                    "cudaDeviceGetAttribute");
            smCount = count[0];
        }
        return smCount;
    }

    /**
     * The fused attention kernels of libmmfuse: F32 inputs run on CUDA cores with fp32 arithmetic,
     * BF16 and F16 (and F32 where TF32 is allowed) on tensor cores with fp32 accumulation; the output
     * has the inputs' dtype.
     * Split-KV is chosen by the library from the device's SM count; its scratch, and the lse the
     * weights pass needs when the caller did not ask for it, come from this thread's workspace.
     */
    @Override
    protected void attention(AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor mask, Tensor bias, Tensor out,
            Tensor lse, Tensor weights) {
        try {
            int limit = MmfNative.MMF_ATTENTION_MAX_HEAD_DIM;
            if (s.headDim > limit || s.valueDim > limit) {
                throw new IllegalArgumentException("attention: the CUDA kernels take head dimensions up to " + limit
                        + ", got Dh = " + s.headDim + ", Dv = " + s.valueDim + " (q " + Shapes.toString(q.shape()) + ", v "
                        + Shapes.toString(v.shape()) + ")");
            }
            long blocks = (long) s.batch * s.heads * ((s.queries + 15L) / 16);
            if (blocks > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("attention: B * H * ceil(Lq / 16) = " + blocks + " blocks exceed one CUDA"
                        + " grid (B = " + s.batch + ", H = " + s.heads + ", Lq = " + s.queries + ")");
            }
            Cuda.enter(device, "attention");
            int dtype = q.dtype() == DType.BF16 ? MmfNative.MMF_BF16 : q.dtype() == DType.F16 ? MmfNative.MMF_F16
                    : MmfNative.MMF_F32;
            int flags = s.allowTf32 ? MmfNative.MMF_ATTENTION_TF32 : 0;
            long workspaceBytes = MmfNative.mmf_attention_workspace_bytes(dtype, flags, s.batch, s.queries, s.keys,
                    s.heads, s.valueDim, weights != null && lse == null ? 1 : 0, 0);
            Pointer scratch = workspaceBytes == 0 ? null : Cuda.at(workspace(workspaceBytes).address());
            try (LongPointer biasStrides = bias == null ? null : new LongPointer(4)) {
                if (biasStrides != null) for (int i = 0; i < 4; i++) biasStrides.put(i, s.biasStrides[i]);
                int status = MmfNative.mmf_attention(dtype, flags, s.batch, s.queries, s.keys, s.heads, s.headDim, s.valueDim,
                        at(q), at(k), at(v), at(mask), at(bias), biasStrides, s.scale, s.causal ? 1 : 0, at(out), at(lse),
                        at(weights), 0, scratch, workspaceBytes, Cuda.stream());
                checkStatus(status, "attention");
            }
        } finally {
            Reference.reachabilityFence(new Object[] {q, k, v, mask, bias, out, lse, weights});
        }
    }

    /** The device address of a tensor, or null for an absent optional one. */
    private static Pointer at(Tensor t) {
        return t == null ? null : Cuda.at(t.deviceMemory().address());
    }

    /** Copies {@code rowBytes} from {@code source} into each of {@code rows} rows at {@code target}. */
    private static void fillRows(long target, long source, int rows, long rowBytes) {
        Cuda.check(cudaMemcpyAsync(Cuda.at(target), Cuda.at(source), rowBytes, cudaMemcpyDeviceToDevice, Cuda.stream()),
                "cudaMemcpyAsync(bias)");
        for (long filled = 1; filled < rows; filled *= 2) {
            long count = Math.min(filled, rows - filled);
            Cuda.check(cudaMemcpyAsync(Cuda.at(target + filled * rowBytes), Cuda.at(target), count * rowBytes,
                    cudaMemcpyDeviceToDevice, Cuda.stream()), "cudaMemcpyAsync(bias)");
        }
    }

    /** This thread's cuBLAS handle, bound to its stream (a handle must not be shared by concurrent threads). */
    private cublasContext cublasHandle() {
        cublasContext handle = cublas.get();
        if (handle == null) {
            handle = new cublasContext();
            checkCublas(cublasCreate_v2(handle), "cublasCreate");
            checkCublas(cublasSetStream_v2(handle, Cuda.stream()), "cublasSetStream");
            cublas.set(handle);
            cublasContext made = handle;
            int index = device.index();
            PER_THREAD.register(Thread.currentThread(), () -> {
                cudaSetDevice(index);
                cublasDestroy_v2(made);
            });
        }
        return handle;
    }

    private static void checkCublas(int status, String op) {
        if (status != CUBLAS_STATUS_SUCCESS) throw new CudaException(op, cublasGetStatusName(status).getString(), null);
    }

    private void blockCopy(String op, boolean gather, BlockCopy plan, List<Tensor> pieces, Tensor whole) {
        try {
            if (plan.elements() == 0) return;
            int n = plan.pieces();
            Cuda.enter(device, op);
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
        } finally {
            Reference.reachabilityFence(new Object[] {pieces, whole});
        }
    }

    private DeviceMemory workspace(long bytes) {
        CudaMemory current = workspace.get();
        if (current == null || current.bytes() < bytes) {
            // forget the old buffer before freeing it: if the larger one cannot be had, no later call
            // may be handed memory the pool has given to someone else
            workspace.remove();
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
            int error = MmfNative.mmf_last_cuda_error();
            throw CudaContext.PROCESS.failure(op, error, MmfNative.mmf_cuda_error_name(error), MmfNative.mmf_last_error());
        }
        if (status == MmfNative.MMF_ERR_UNSUPPORTED) { // a device limit (shared memory), not an argument error
            throw new UnsupportedOperationException(op + " on this device: " + MmfNative.mmf_last_error());
        }
        // The Java checks should have caught every argument error: reaching here is a bug in MMFuse.
        throw new IllegalStateException(op + ": libmmfuse refused the call (status " + status + "): "
                + MmfNative.mmf_last_error());
    }

    // ---- bilinear family: cuBLAS products and cuFFT transforms around libmmfuse's kernels ----------------

    /**
     * Σ_n x_n y_nᵀ per sample as one strided-batched GEMM straight into out (mean folded into alpha), then
     * the finishing kernels in place. The symmetric case computes the full product here (a SYRK half and
     * a mirror would save half the flops: not done yet).
     */
    @Override
    protected void bilinearPool(PoolShape s, Tensor x, Tensor y, boolean symmetric, PoolingOptions options, Tensor out) {
        try {
            long width = (long) s.xDim() * s.yDim();
            if (s.batch() == 0 || width == 0) return;
            Cuda.enter(device, "bilinearPool");
            outerProductSums(s, s.batch(), x.deviceMemory().address(), y.deviceMemory().address(),
                    out.deviceMemory().address(), options.mean() && s.locations() > 0 ? 1f / s.locations() : 1f,
                    "bilinearPool");
            finish(out.deviceMemory().address(), s.batch(), width, 1f, options, "bilinearPool");
        } finally {
            Reference.reachabilityFence(new Object[] {x, y, out});
        }
    }

    /**
     * z_b = alpha Σ_n x_b,n y_b,nᵀ [xDim, yDim] for {@code samples} samples from the given addresses:
     * row-major z is column-major zᵀ = Y_bᵀ X_b, so y goes first, and x transposed.
     */
    private void outerProductSums(PoolShape s, int samples, long x, long y, long z, float alpha, String op) {
        long width = (long) s.xDim() * s.yDim();
        if (width == 0) return; // cuBLAS refuses the leading dimension 0 of an empty operand
        if (s.locations() == 0) {
            Cuda.check(cudaMemsetAsync(Cuda.at(z), 0, samples * width * 4, Cuda.stream()), "cudaMemsetAsync");
            return;
        }
        try (FloatPointer a = new FloatPointer(alpha); FloatPointer zero = new FloatPointer(0f)) {
            int status = cublasGemmStridedBatchedEx(cublasHandle(), CUBLAS_OP_N, CUBLAS_OP_T, s.yDim(), s.xDim(),
                    s.locations(), a, Cuda.at(y), CUDA_R_32F, s.yDim(), (long) s.locations() * s.yDim(), Cuda.at(x),
                    CUDA_R_32F, s.xDim(), (long) s.locations() * s.xDim(), zero, Cuda.at(z), CUDA_R_32F, s.yDim(), width,
                    samples, computeType, CUBLAS_GEMM_DEFAULT);
            checkCublas(status, op + " (cublasGemmStridedBatchedEx, " + precision + ")");
        }
    }

    /** Finishes z [rows, cols] in place: scale, signed square root and L2 normalisation as the options say. */
    private void finish(long z, long rows, long cols, float scale, PoolingOptions options, String op) {
        long bytes = MmfNative.mmf_finish_rows_workspace_bytes(rows, cols);
        Pointer scratch = options.l2Normalize() && bytes > 0 ? Cuda.at(workspace(bytes).address()) : null;
        checkStatus(MmfNative.mmf_finish_rows(Cuda.at(z), rows, cols, scale, options.signedSqrt() ? 1 : 0,
                (float) options.eps(), options.l2Normalize() ? 1 : 0, scratch, bytes, Cuda.stream()), op);
    }

    /** Floats of x2 Wᵀ (the bilinear layer's intermediate) kept at once: outputs are taken in groups that fit. */
    private static final long BILINEAR_CHUNK_FLOATS = 16L << 20;

    /**
     * nn.Bilinear as t = x2 Wᵀ for W viewed [K * in1, in2] (one GEMM per group of outputs, t [rows,
     * group, in1] in a temporary of at most 64 MB), then y[r, k] = x1[r] · t[r, k] + b[k] by one warp each.
     */
    @Override
    protected void bilinear(BilinearShape s, Tensor x1, Tensor x2, Tensor weight, Tensor bias, Tensor out) {
        try {
            int rows = s.rows(), in1 = s.in1(), in2 = s.in2(), outs = s.out();
            if (rows == 0 || outs == 0) return;
            Cuda.enter(device, "bilinear");
            long perOutput = (long) rows * Math.max(in1, 1);
            int group = (int) Math.max(1, Math.min(outs, BILINEAR_CHUNK_FLOATS / perOutput));
            long w = weight.deviceMemory().address(), y = out.deviceMemory().address();
            try (CudaMemory t = CudaMemory.allocate(device, (long) group * perOutput * 4);
                    FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
                for (int k0 = 0; k0 < outs; k0 += group) {
                    int count = Math.min(group, outs - k0);
                    if (in1 > 0 && in2 > 0) {
                        int status = cublasGemmEx(cublasHandle(), CUBLAS_OP_T, CUBLAS_OP_N, count * in1, rows, in2, one,
                                Cuda.at(w + (long) k0 * in1 * in2 * 4), CUDA_R_32F, in2, Cuda.at(x2.deviceMemory().address()),
                                CUDA_R_32F, in2, zero, Cuda.at(t.address()), CUDA_R_32F, count * in1, computeType,
                                CUBLAS_GEMM_DEFAULT);
                        checkCublas(status, "bilinear (cublasGemmEx, " + precision + ")");
                    }
                    // with an empty input dimension the sum is empty: the bias alone, as on the CPU (no 0 * NaN)
                    checkStatus(MmfNative.mmf_bilinear_row_dots(at(x1), Cuda.at(t.address()),
                            bias == null ? null : Cuda.at(bias.deviceMemory().address() + k0 * 4L), Cuda.at(y + k0 * 4L), outs,
                            rows, count, in2 == 0 ? 0 : in1, Cuda.stream()), "bilinear");
                }
            }
        } finally {
            Reference.reachabilityFence(new Object[] {x1, x2, weight, bias, out});
        }
    }

    /**
     * Vectors by transforms: where d has no prime factor above 5 and fits a block's shared memory, all of it
     * in one kernel, a block per sample (kernels/compact_fft.h); otherwise both count sketches gathered (no
     * atomics), batched cuFFT R2C transforms, the spectrum product and one C2R into out. Maps by the
     * outer-product route, as on the CPU: Σ_n x_n y_nᵀ per sample by a batched GEMM (samples taken in
     * groups whose products fit 256 MB) and its count sketch gathered bucket by bucket; no [B, N, d]
     * tensor in any.
     */
    @Override
    protected void compactBilinearPool(PoolShape s, Tensor x, Tensor y, CountSketch sx, CountSketch sy,
            PoolingOptions options, Tensor out) {
        try {
            int d = sx.outputDim(), batch = s.batch();
            if (batch == 0) return;
            Cuda.enter(device, "compactBilinearPool");
            long o = out.deviceMemory().address();
            SketchTables tx = tablesOf(sx), ty = tablesOf(sy);
            if (s.locations() == 1 && oneKernelTakes(d)) { // finished and NaN-marked in the kernel too
                checkStatus(MmfNative.mmf_compact_pool(at(x), at(y), batch, s.xDim(), s.yDim(), Cuda.at(tx.offsets.address()),
                        Cuda.at(tx.units.address()), Cuda.at(tx.sign.address()), Cuda.at(ty.offsets.address()),
                        Cuda.at(ty.units.address()), Cuda.at(ty.sign.address()), d, 1f, options.signedSqrt() ? 1 : 0,
                        (float) options.eps(), options.l2Normalize() ? 1 : 0, Cuda.at(o), Cuda.stream()), "compactBilinearPool");
                return;
            }
            if (s.locations() == 1 && d >= 16) { // shorter transforms cost more to plan than the outer products
                long spectrum = (long) batch * (d / 2 + 1);
                try (CudaMemory a = CudaMemory.allocate(device, (long) batch * d * 4);
                        CudaMemory b = CudaMemory.allocate(device, (long) batch * d * 4);
                        CudaMemory fa = CudaMemory.allocate(device, spectrum * 8);
                        CudaMemory fb = CudaMemory.allocate(device, spectrum * 8)) {
                    tx.sketch(x.deviceMemory().address(), batch, s.xDim(), a.address());
                    ty.sketch(y.deviceMemory().address(), batch, s.yDim(), b.address());
                    int forward = fftPlan(d, batch, CUFFT_R2C), inverse = fftPlan(d, batch, CUFFT_C2R);
                    checkCufft(cufftExecR2C(forward, Cuda.floatsAt(a.address()), new float2(Cuda.at(fa.address()))), "R2C");
                    checkCufft(cufftExecR2C(forward, Cuda.floatsAt(b.address()), new float2(Cuda.at(fb.address()))), "R2C");
                    checkStatus(MmfNative.mmf_spectrum_product(Cuda.at(fa.address()), Cuda.at(fb.address()),
                            Cuda.at(fa.address()), spectrum, 1f / d, Cuda.stream()), "compactBilinearPool");
                    checkCufft(cufftExecC2R(inverse, new float2(Cuda.at(fa.address())), Cuda.floatsAt(o)), "C2R");
                }
            } else {
                long product = (long) s.xDim() * s.yDim();
                int group = (int) Math.max(1, Math.min(batch, (64L << 20) / Math.max(product, 1)));
                try (CudaMemory z = CudaMemory.allocate(device, group * product * 4)) {
                    for (int b0 = 0; b0 < batch; b0 += group) {
                        int count = Math.min(group, batch - b0);
                        outerProductSums(s, count, x.deviceMemory().address() + (long) b0 * s.locations() * s.xDim() * 4,
                                y.deviceMemory().address() + (long) b0 * s.locations() * s.yDim() * 4, z.address(), 1f,
                                "compactBilinearPool");
                        checkStatus(MmfNative.mmf_outer_sketch(Cuda.at(z.address()), count, s.xDim(), s.yDim(),
                                Cuda.at(tx.hash.address()), Cuda.at(tx.sign.address()), Cuda.at(ty.offsets.address()),
                                Cuda.at(ty.units.address()), Cuda.at(ty.sign.address()), d, Cuda.at(o + (long) b0 * d * 4),
                                Cuda.stream()), "compactBilinearPool");
                    }
                }
            }
            // A non-finite input makes its sample's row NaN, as the CPU backends define it, and an all-zero x or y
            // zeros: cuFFT may transform two samples as one complex sequence, which leaks between them.
            checkStatus(MmfNative.mmf_compact_exact_rows(at(x), (long) s.locations() * s.xDim(), at(y),
                    (long) s.locations() * s.yDim(), Cuda.at(o), batch, d, Cuda.stream()), "compactBilinearPool");
            finish(o, batch, d, options.mean() && s.locations() > 0 ? 1f / s.locations() : 1f, options, "compactBilinearPool");
        } finally {
            Reference.reachabilityFence(new Object[] {x, y, sx, sy, out});
        }
    }

    /** Whether the current device runs compact pooling of length d in one kernel. */
    private static boolean oneKernelTakes(int d) {
        int[] supported = new int[1];
        checkStatus(MmfNative.mmf_compact_pool_supported(d, supported), "compactBilinearPool");
        return supported[0] != 0;
    }

    /** The sketch's device tables (see {@link #sketchTables}). */
    private SketchTables tablesOf(CountSketch sketch) {
        synchronized (sketchTables) { // CountSketch keeps identity equality: a WeakHashMap keys it by identity
            return sketchTables.computeIfAbsent(sketch, SketchTables::new);
        }
    }

    /**
     * A count sketch on the device: its hashes and signs, and the hash inverted (bucket u holds input
     * units units[offsets[u] .. offsets[u + 1]), in increasing order) so that kernels gather each bucket.
     */
    private final class SketchTables {
        final CudaMemory hash, sign, offsets, units;

        SketchTables(CountSketch sketch) {
            int n = sketch.inputDim(), d = sketch.outputDim();
            int[] h = sketch.hashes(), start = new int[d + 1], order = new int[n];
            for (int i = 0; i < n; i++) start[h[i] + 1]++;
            for (int u = 0; u < d; u++) start[u + 1] += start[u];
            int[] next = java.util.Arrays.copyOf(start, d);
            for (int i = 0; i < n; i++) order[next[h[i]]++] = i;
            CudaMemory[] made = new CudaMemory[4];
            try {
                made[0] = CudaMemory.allocate(device, n * 4L);
                made[1] = CudaMemory.allocate(device, n * 4L);
                made[2] = CudaMemory.allocate(device, (d + 1) * 4L);
                made[3] = CudaMemory.allocate(device, n * 4L);
                made[0].copyFromHost(h);
                made[1].copyFromHost(sketch.signs());
                made[2].copyFromHost(start);
                made[3].copyFromHost(order);
            } catch (RuntimeException e) { // out of device memory part way: free what was had
                for (CudaMemory m : made) if (m != null) m.close();
                throw e;
            }
            hash = made[0];
            sign = made[1];
            offsets = made[2];
            units = made[3];
        }

        /** out [items, d] = this sketch of x [items, dim]. */
        void sketch(long x, long items, int dim, long out) {
            checkStatus(MmfNative.mmf_sketch(Cuda.at(x), items, dim, Cuda.at(offsets.address()), Cuda.at(units.address()),
                    Cuda.at(sign.address()), (int) ((offsets.bytes() / 4) - 1), Cuda.at(out), Cuda.stream()),
                    "compactBilinearPool");
        }
    }

    /**
     * Destroys a thread's cuBLAS handle and cuFFT plans once the thread is gone (a server's pool may replace
     * its threads; each handle and plan holds device memory). Runs on the cleaner's thread, after the dead
     * thread's last call: nothing uses them any more.
     */
    private static final java.lang.ref.Cleaner PER_THREAD = java.lang.ref.Cleaner.create();

    /** Plans kept per thread: each holds its own device work area, so the least recently used are destroyed. */
    private static final int FFT_PLANS_KEPT = 8;

    /** A thread's cuFFT plans, by length, batch and type, bound to its stream; the least recently used go. */
    private static java.util.Map<String, Integer> newPlanCache(int deviceIndex) {
        java.util.Map<String, Integer> plans = new java.util.LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(java.util.Map.Entry<String, Integer> eldest) {
                if (size() <= FFT_PLANS_KEPT) return false;
                // transforms queued with the plan may still run: wait for them before its work area goes
                Cuda.check(cudaStreamSynchronize(Cuda.stream()), "cudaStreamSynchronize");
                cufftDestroy(eldest.getValue());
                return true;
            }
        };
        PER_THREAD.register(Thread.currentThread(), () -> { // made on the thread's first get(): it is the owner
            cudaSetDevice(deviceIndex);
            plans.values().forEach(plan -> cufftDestroy(plan));
        });
        return plans;
    }

    private int fftPlan(int d, int batch, int type) {
        return fftPlans.get().computeIfAbsent(d + "x" + batch + "/" + type, key -> {
            int[] plan = new int[1];
            checkCufft(cufftPlan1d(plan, d, type, batch), "cufftPlan1d");
            checkCufft(cufftSetStream(plan[0], Cuda.stream()), "cufftSetStream");
            return plan[0];
        });
    }

    private static void checkCufft(int status, String op) {
        if (status != CUFFT_SUCCESS) {
            throw new CudaException("compactBilinearPool (cufft " + op + ")", "cufftResult " + status, null);
        }
    }

    /** The group sums by one kernel (one thread per output), then the finishing kernels per (row, stage). */
    @Override
    protected void factorizedPool(FactorizedShape s, Tensor x, Tensor y, FactorizedPoolOptions options, Tensor out) {
        try {
            if (s.rows() == 0 || s.pooled() == 0) return;
            Cuda.enter(device, "factorizedPool");
            checkStatus(MmfNative.mmf_factorized_sums(at(x), at(y), s.rows(), s.stages(), s.units(), s.factor(),
                    code(options.activation()),
                    at(out), Cuda.stream()), "factorizedPool");
            PoolingOptions pooling = options.pooling();
            finish(out.deviceMemory().address(), (long) s.rows() * s.stages(), s.pooled(),
                    pooling.mean() ? 1f / s.factor() : 1f, pooling, "factorizedPool");
        } finally {
            Reference.reachabilityFence(new Object[] {x, y, out});
        }
    }

    // ---- activations, layer norm, softmax: libmmfuse's elementwise kernels --------------------------------

    private static int code(Activation activation) {
        return switch (activation) {
            case RELU -> MmfNative.MMF_ACTIVATION_RELU;
            case TANH -> MmfNative.MMF_ACTIVATION_TANH;
            case SIGMOID -> MmfNative.MMF_ACTIVATION_SIGMOID;
            case GELU -> MmfNative.MMF_ACTIVATION_GELU;
            case NONE -> MmfNative.MMF_ACTIVATION_NONE;
        };
    }

    @Override
    protected void activation(Tensor x, Activation activation, Tensor out) {
        try {
            Cuda.enter(device, "activation");
            checkStatus(MmfNative.mmf_activate(at(x), x.numel(), code(activation), at(out), Cuda.stream()), "activation");
        } finally {
            Reference.reachabilityFence(new Object[] {x, out});
        }
    }

    @Override
    protected void layerNorm(Tensor x, long rows, int dim, Tensor weight, Tensor bias, float eps, Tensor out) {
        try {
            Cuda.enter(device, "layerNorm");
            checkStatus(MmfNative.mmf_layer_norm(at(x), rows, dim, at(weight), at(bias), eps, at(out), Cuda.stream()), "layerNorm");
        } finally {
            Reference.reachabilityFence(new Object[] {x, weight, bias, out});
        }
    }

    @Override
    protected void softmax(Tensor x, long rows, int dim, Tensor out) {
        try {
            Cuda.enter(device, "softmax");
            checkStatus(MmfNative.mmf_softmax(at(x), rows, dim, at(out), Cuda.stream()), "softmax");
        } finally {
            Reference.reachabilityFence(new Object[] {x, out});
        }
    }

    // ---- fusion helpers: libmmfuse's elementwise kernels ----------------------------------------------------

    @Override
    protected void binary(Binary op, Tensor a, Tensor b, Tensor out) {
        try {
            Cuda.enter(device, "binary");
            int code = switch (op) {
                case ADD -> MmfNative.MMF_ADD;
                case SUBTRACT -> MmfNative.MMF_SUBTRACT;
                case MULTIPLY -> MmfNative.MMF_MULTIPLY;
            };
            checkStatus(MmfNative.mmf_binary(code, at(a), at(b), a.numel(), b.numel(), at(out), Cuda.stream()),
                    op.name().toLowerCase());
        } finally {
            Reference.reachabilityFence(new Object[] {a, b, out});
        }
    }

    @Override
    protected void poolSequence(long batch, long length, long channels, Tensor x, Tensor mask, SequencePooling mode,
            Tensor out) {
        try {
            Cuda.enter(device, "poolSequence");
            int code = switch (mode) {
                case MEAN -> MmfNative.MMF_POOL_MEAN;
                case SUM -> MmfNative.MMF_POOL_SUM;
                case MAX -> MmfNative.MMF_POOL_MAX;
                case FIRST -> MmfNative.MMF_POOL_FIRST;
            };
            checkStatus(MmfNative.mmf_pool_sequence(at(x), at(mask), batch, length, channels, code, at(out), Cuda.stream()),
                    "poolSequence");
        } finally {
            Reference.reachabilityFence(new Object[] {x, mask, out});
        }
    }

    @Override
    protected void fillAbsent(long rows, long inner, Tensor x, Tensor present, Tensor fill, Tensor out) {
        try {
            Cuda.enter(device, "fillAbsent");
            checkStatus(MmfNative.mmf_fill_absent(at(x), at(present), at(fill), rows, inner, at(out), Cuda.stream()),
                    "fillAbsent");
        } finally {
            Reference.reachabilityFence(new Object[] {x, present, fill, out});
        }
    }

    /** One accumulating launch per input, in input order. */
    @Override
    protected void weightedSum(long rows, long inner, List<Tensor> xs, Tensor weights, Tensor out) {
        try {
            Cuda.enter(device, "weightedSum");
            for (int m = 0; m < xs.size(); m++) {
                checkStatus(MmfNative.mmf_weighted_accumulate(at(xs.get(m)), at(weights), xs.size(), m, rows, inner, at(out),
                        Cuda.stream()), "weightedSum");
            }
        } finally {
            Reference.reachabilityFence(new Object[] {xs, weights, out});
        }
    }

    /** A device copy, then the pooling's finishing kernels in place. */
    @Override
    protected void normalizeRows(long rows, long dim, Tensor x, PoolingOptions options, Tensor out) {
        try {
            Cuda.enter(device, "normalizeRows");
            long bytes = x.numel() * Float.BYTES;
            if (bytes == 0) return;
            Cuda.check(cudaMemcpyAsync(at(out), at(x), bytes, cudaMemcpyDeviceToDevice, Cuda.stream()), "cudaMemcpyAsync");
            finish(out.deviceMemory().address(), rows, dim, 1f, options, "normalizeRows");
        } finally {
            Reference.reachabilityFence(new Object[] {x, out});
        }
    }
}
