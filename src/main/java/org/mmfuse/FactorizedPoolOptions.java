package org.mmfuse;

import java.util.Objects;

/**
 * Options of {@link Ops#factorizedPool}: the factor k (units summed per output), the number of MFH
 * stages, the activation applied to both projections, and how each stage's pooled vector is finished.
 * Immutable. The default, factor 1 and one stage without activation or normalisation, is the plain
 * Hadamard product of MLB.
 */
public final class FactorizedPoolOptions {
    public static final FactorizedPoolOptions DEFAULT = new FactorizedPoolOptions(1, 1, Activation.NONE, PoolingOptions.NONE);

    private final int factor;
    private final int stages;
    private final Activation activation;
    private final PoolingOptions pooling;

    private FactorizedPoolOptions(int factor, int stages, Activation activation, PoolingOptions pooling) {
        this.factor = factor;
        this.stages = stages;
        this.activation = activation;
        this.pooling = pooling;
    }

    /** Units summed into each output (MFB's k; 1 for MLB). */
    public FactorizedPoolOptions factor(int factor) {
        if (factor < 1) throw new IllegalArgumentException("factorizedPool: factor must be >= 1, got " + factor);
        return new FactorizedPoolOptions(factor, stages, activation, pooling);
    }

    /** MFH's number of cascaded MFB stages (1 for MFB). */
    public FactorizedPoolOptions stages(int stages) {
        if (stages < 1) throw new IllegalArgumentException("factorizedPool: stages must be >= 1, got " + stages);
        return new FactorizedPoolOptions(factor, stages, activation, pooling);
    }

    /** Applied to every element of both projections before the product (block.bootstrap's activ_input). */
    public FactorizedPoolOptions activation(Activation activation) {
        return new FactorizedPoolOptions(factor, stages, Objects.requireNonNull(activation, "activation"), pooling);
    }

    /** How each stage's pooled vector is finished; {@code mean} divides by the factor. */
    public FactorizedPoolOptions pooling(PoolingOptions pooling) {
        return new FactorizedPoolOptions(factor, stages, activation, Objects.requireNonNull(pooling, "pooling"));
    }

    public int factor() {
        return factor;
    }

    public int stages() {
        return stages;
    }

    public Activation activation() {
        return activation;
    }

    public PoolingOptions pooling() {
        return pooling;
    }
}
