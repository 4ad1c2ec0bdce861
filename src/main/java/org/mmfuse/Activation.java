package org.mmfuse;

/** Elementwise activations, with PyTorch's definitions. */
public enum Activation {
    /** The identity. */
    NONE,
    /** max(x, 0); NaN stays NaN. */
    RELU,
    /** tanh(x). */
    TANH,
    /** 1 / (1 + e^-x). */
    SIGMOID;

    /** This activation of one value, in double (the references' precision). */
    public double apply(double x) {
        switch (this) {
            case RELU:
                return x > 0 || Double.isNaN(x) ? x : 0;
            case TANH:
                return Math.tanh(x);
            case SIGMOID:
                return 1 / (1 + Math.exp(-x));
            default:
                return x;
        }
    }
}
