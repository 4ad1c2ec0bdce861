package org.mmfuse.backend;

/**
 * One matrix product as the backends compute it: C [m, n] = A [m, k] · B (+ bias [n] on every row),
 * all row-major; B is [k, n], or with {@code transposedB} the [n, k] matrix whose transpose is B (a
 * Linear layer's weight). The checked shapes of a matmul or linear call.
 */
public final class Gemm {
    public final long m;
    public final long n;
    public final long k;
    public final boolean transposedB;

    Gemm(long m, long n, long k, boolean transposedB) {
        this.m = m;
        this.n = n;
        this.k = k;
        this.transposedB = transposedB;
    }

    /** Floating-point operations: a multiply and an add per term. */
    public long flops() {
        return 2 * m * n * k;
    }
}
