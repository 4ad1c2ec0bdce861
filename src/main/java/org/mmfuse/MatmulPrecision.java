package org.mmfuse;

/**
 * How far the matrix products of F32 tensors may round their inputs, as PyTorch's
 * {@code torch.set_float32_matmul_precision} lets them: tensors stay F32 and the sums are always
 * accumulated in fp32; only the products' inputs are narrowed, inside the GEMM, for tensor cores.
 * Set it per backend with {@link Ops#withMatmulPrecision}. The CPU backends compute in fp32 whatever is
 * set.
 */
public enum MatmulPrecision {
    /** fp32 products (the default). */
    FP32,
    /** Inputs rounded to TF32 (a 10-bit mantissa, fp32's range): relative errors about 1e-3. */
    TF32,
    /** Inputs rounded to bfloat16 (8-bit mantissa, fp32's range): relative errors about 1e-2. */
    BF16,
    /**
     * Inputs rounded to IEEE half (10-bit mantissa, largest value 65504: larger inputs overflow to
     * infinity): relative errors about 1e-3 within that range.
     */
    FP16
}
