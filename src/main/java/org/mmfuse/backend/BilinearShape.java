package org.mmfuse.backend;

/** One checked {@code nn.Bilinear} call: x1 [rows, in1], x2 [rows, in2], weight [out, in1, in2], result [rows, out]. */
public record BilinearShape(int rows, int in1, int in2, int out) {
    /** A multiply and an add per (row, out, i, j) term. */
    public long flops() {
        return 2L * rows * out * in1 * in2;
    }
}
