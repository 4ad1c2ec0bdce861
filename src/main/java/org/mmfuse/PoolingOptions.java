package org.mmfuse;

/**
 * How a pooled feature vector is finished, in this order: divided by the number of pooled terms
 * ({@link #mean}), signed square root {@code sign(z) * sqrt(|z| + eps)} ({@link #signedSqrt}), and L2
 * normalisation per sample ({@code z / max(||z||, 1e-12)}, as {@code F.normalize}). Immutable.
 *
 * <p>sign(0) is 0, so zeros stay zero whatever eps is, and an all-zero vector normalises to zeros, not
 * NaN. The default eps, 1e-12, moves sqrt(|z|) by at most 1e-12 / (2 sqrt|z|): below float precision
 * for any |z| above 1e-12. block.bootstrap writes the signed square root without eps
 * ({@code sqrt(relu(z)) - sqrt(relu(-z))}); {@code signedSqrt(0)} reproduces it exactly.
 */
public final class PoolingOptions {
    /** The raw pooled sum: nothing applied. */
    public static final PoolingOptions NONE = new PoolingOptions(false, false, 1e-12, false);
    /** The bilinear CNN recipe (Lin et al.): mean over locations, signed square root, L2 normalisation. */
    public static final PoolingOptions BILINEAR_CNN = new PoolingOptions(true, true, 1e-12, true);

    private final boolean mean;
    private final boolean signedSqrt;
    private final double eps;
    private final boolean l2Normalize;

    private PoolingOptions(boolean mean, boolean signedSqrt, double eps, boolean l2Normalize) {
        this.mean = mean;
        this.signedSqrt = signedSqrt;
        this.eps = eps;
        this.l2Normalize = l2Normalize;
    }

    /** Divide the sum by the number of pooled terms (locations; for factorized pooling, the factor). */
    public PoolingOptions mean(boolean mean) {
        return new PoolingOptions(mean, signedSqrt, eps, l2Normalize);
    }

    /** Apply {@code sign(z) * sqrt(|z| + eps)} with the current eps. */
    public PoolingOptions signedSqrt(boolean on) {
        return new PoolingOptions(mean, on, eps, l2Normalize);
    }

    /** Apply {@code sign(z) * sqrt(|z| + eps)} with this eps (>= 0, finite). */
    public PoolingOptions signedSqrt(double eps) {
        if (!(eps >= 0) || Double.isInfinite(eps)) {
            throw new IllegalArgumentException("signedSqrt: eps must be finite and >= 0, got " + eps);
        }
        return new PoolingOptions(mean, true, eps, l2Normalize);
    }

    /** Divide each sample's vector by its L2 norm (at least 1e-12). */
    public PoolingOptions l2Normalize(boolean on) {
        return new PoolingOptions(mean, signedSqrt, eps, on);
    }

    public boolean mean() {
        return mean;
    }

    public boolean signedSqrt() {
        return signedSqrt;
    }

    /** The signed square root's eps (used only when {@link #signedSqrt()} is on). */
    public double eps() {
        return eps;
    }

    public boolean l2Normalize() {
        return l2Normalize;
    }

    @Override
    public String toString() {
        return "PoolingOptions[mean=" + mean + ", signedSqrt=" + signedSqrt + (signedSqrt ? " (eps " + eps + ")" : "")
                + ", l2Normalize=" + l2Normalize + "]";
    }
}
