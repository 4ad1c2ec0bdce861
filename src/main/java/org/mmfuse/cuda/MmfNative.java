package org.mmfuse.cuda;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * The JavaCPP binding of {@code native/include/mmfuse.h}, one method per C function, same names.
 * The build generates {@code libjnimmfuse.so} from this class and packs it with {@code libmmfuse.so}
 * under {@code org/mmfuse/cuda/linux-x86_64/} in the jar, where {@link Loader} finds both.
 *
 * <p>This library needs the CUDA runtime but not the driver, so it loads on machines without a GPU,
 * where {@link #mmf_device_count} answers with the reason. Loading it is the probe's job; other code
 * reaches this class only after the probe succeeded.
 */
@Platform(include = "mmfuse.h", link = "mmfuse", library = "jnimmfuse")
public final class MmfNative {
    static {
        Loader.load();
    }

    private MmfNative() {}

    public static final int MMF_OK = 0;
    public static final int MMF_ERR_INVALID_ARGUMENT = 1;
    public static final int MMF_ERR_CUDA = 2;
    public static final int MMF_ERR_WORKSPACE = 3;
    public static final int MMF_ERR_UNSUPPORTED = 4;

    public static native int mmf_version();

    public static native int mmf_cuda_runtime_version(int[] version);

    public static native int mmf_device_count(int[] count);

    public static native @Cast("const char*") String mmf_last_error();

    public static native int mmf_last_cuda_error();

    public static native @Cast("const char*") String mmf_cuda_error_name(int cudaError);

    public static native @Cast("size_t") long mmf_concat_workspace_bytes(int nPieces);

    public static native int mmf_concat_f32(int nPieces, @Cast("const float*const*") PointerPointer<?> pieces,
            @Cast("const int64_t*") LongPointer pieceWidths, long rows, @Cast("float*") Pointer whole, long wholeWidth,
            Pointer workspace, @Cast("size_t") long workspaceBytes, Pointer stream);

    public static native int mmf_split_f32(int nPieces, @Cast("float*const*") PointerPointer<?> pieces,
            @Cast("const int64_t*") LongPointer pieceWidths, long rows, @Cast("const float*") Pointer whole,
            long wholeWidth, Pointer workspace, @Cast("size_t") long workspaceBytes, Pointer stream);

    public static final int MMF_F32 = 0;
    public static final int MMF_BF16 = 1;
    public static final int MMF_F16 = 2;
    public static final int MMF_ATTENTION_MAX_HEAD_DIM = 256;
    public static final int MMF_ATTENTION_TF32 = 1;

    public static native @Cast("size_t") long mmf_attention_workspace_bytes(int dtype, int flags, int batch,
            int queries, int keys, int heads, int valueDim, int withWeights, int splits);

    public static native int mmf_attention(int dtype, int flags, int batch, int queries, int keys, int heads, int headDim,
            int valueDim, @Cast("const void*") Pointer q, @Cast("const void*") Pointer k, @Cast("const void*") Pointer v,
            @Cast("const float*") Pointer keyMask, @Cast("const float*") Pointer bias,
            @Cast("const int64_t*") LongPointer biasStrides, float scale, int causal, Pointer out,
            @Cast("float*") Pointer lse, @Cast("float*") Pointer weights, int splits, Pointer workspace,
            @Cast("size_t") long workspaceBytes, Pointer stream);

    public static native @Cast("size_t") long mmf_finish_rows_workspace_bytes(long rows, long cols);

    public static native int mmf_finish_rows(@Cast("float*") Pointer z, long rows, long cols, float scale, int signedSqrt,
            float eps, int l2, Pointer workspace, @Cast("size_t") long workspaceBytes, Pointer stream);

    public static native int mmf_bilinear_row_dots(@Cast("const float*") Pointer x1, @Cast("const float*") Pointer t,
            @Cast("const float*") Pointer bias, @Cast("float*") Pointer y, long ldy, long rows, int outs, int in1,
            Pointer stream);

    public static native int mmf_sketch(@Cast("const float*") Pointer x, long items, int dim,
            @Cast("const int*") Pointer offsets, @Cast("const int*") Pointer units, @Cast("const float*") Pointer sign,
            int d, @Cast("float*") Pointer out, Pointer stream);

    public static native int mmf_spectrum_product(@Cast("const float*") Pointer a, @Cast("const float*") Pointer b,
            @Cast("float*") Pointer p, long n, float inverseD, Pointer stream);

    public static native int mmf_compact_pool_supported(int d, int[] supported);

    public static native int mmf_compact_pool(@Cast("const float*") Pointer x, @Cast("const float*") Pointer y, long batch,
            int dimX, int dimY, @Cast("const int*") Pointer offsetsX, @Cast("const int*") Pointer unitsX,
            @Cast("const float*") Pointer signX, @Cast("const int*") Pointer offsetsY, @Cast("const int*") Pointer unitsY,
            @Cast("const float*") Pointer signY, int d, float scale, int signedSqrt, float eps, int l2,
            @Cast("float*") Pointer out, Pointer stream);

    public static native int mmf_outer_sketch(@Cast("const float*") Pointer z, long samples, int c1, int c2,
            @Cast("const int*") Pointer hash1, @Cast("const float*") Pointer sign1, @Cast("const int*") Pointer offsets2,
            @Cast("const int*") Pointer units2, @Cast("const float*") Pointer sign2, int d, @Cast("float*") Pointer out,
            Pointer stream);

    public static native int mmf_compact_exact_rows(@Cast("const float*") Pointer x, long xLength,
            @Cast("const float*") Pointer y, long yLength, @Cast("float*") Pointer out, long samples, long d,
            Pointer stream);

    public static native int mmf_gemm_k_split(long m, long n, long k, int sms, int[] slices,
            @Cast("int64_t*") long[] sliceK);

    public static native int mmf_sum_slices(@Cast("const float*") Pointer partials, int slices, long rows, long cols,
            @Cast("const float*") Pointer bias, @Cast("float*") Pointer out, Pointer stream);

    public static final int MMF_ACTIVATION_NONE = 0;
    public static final int MMF_ACTIVATION_RELU = 1;
    public static final int MMF_ACTIVATION_TANH = 2;
    public static final int MMF_ACTIVATION_SIGMOID = 3;
    public static final int MMF_ACTIVATION_GELU = 4;

    public static native int mmf_factorized_sums(@Cast("const float*") Pointer x, @Cast("const float*") Pointer y,
            long rows, int stages, int units, int factor, int activation, @Cast("float*") Pointer out, Pointer stream);

    public static native int mmf_activate(@Cast("const float*") Pointer x, long n, int activation,
            @Cast("float*") Pointer out, Pointer stream);

    public static native int mmf_layer_norm(@Cast("const float*") Pointer x, long rows, int dim,
            @Cast("const float*") Pointer weight, @Cast("const float*") Pointer bias, float eps,
            @Cast("float*") Pointer out, Pointer stream);

    public static native int mmf_softmax(@Cast("const float*") Pointer x, long rows, int dim, @Cast("float*") Pointer out,
            Pointer stream);

    public static final int MMF_ADD = 0, MMF_SUBTRACT = 1, MMF_MULTIPLY = 2;

    public static native int mmf_binary(int op, @Cast("const float*") Pointer a, @Cast("const float*") Pointer b, long n,
            long bN, @Cast("float*") Pointer out, Pointer stream);

    public static final int MMF_POOL_MEAN = 0, MMF_POOL_SUM = 1, MMF_POOL_MAX = 2, MMF_POOL_FIRST = 3;

    public static native int mmf_pool_sequence(@Cast("const float*") Pointer x, @Cast("const float*") Pointer mask,
            long batch, long length, long channels, int mode, @Cast("float*") Pointer out, Pointer stream);

    public static native int mmf_fill_absent(@Cast("const float*") Pointer x, @Cast("const float*") Pointer present,
            @Cast("const float*") Pointer fill, long rows, long inner, @Cast("float*") Pointer out, Pointer stream);

    public static native int mmf_weighted_accumulate(@Cast("const float*") Pointer x, @Cast("const float*") Pointer weights,
            long count, long term, long rows, long inner, @Cast("float*") Pointer out, Pointer stream);
}
