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
    SIGMOID,
    /** x Φ(x) with Φ the standard normal CDF: {@code F.gelu}'s exact (erf) form, not the tanh approximation. */
    GELU;

    /** This activation of one value, in double (the references' precision). */
    public double apply(double x) {
        switch (this) {
            case RELU:
                return x > 0 || Double.isNaN(x) ? x : 0;
            case TANH:
                return Math.tanh(x);
            case SIGMOID:
                return 1 / (1 + Math.exp(-x));
            case GELU:
                return x * 0.5 * erfc(-x / Math.sqrt(2));
            default:
                return x;
        }
    }

    /**
     * The complementary error function to about 1e-13 relative: 1 - erf(z) by erf's Taylor series below 3
     * (where erfc(z) >= 2.2e-5, so the subtraction keeps ~9 digits), Laplace's continued fraction
     * e^{-z²}/√π · 1/(z + (1/2)/(z + (2/2)/(z + (3/2)/(z + ...)))) above, and erfc(-z) = 2 - erfc(z).
     */
    static double erfc(double z) {
        if (Double.isNaN(z)) return z;
        if (z < 0) return 2 - erfc(-z);
        if (z < 3) {
            double term = z, sum = z; // term n: (-1)^n z^(2n+1) / n!, summed divided by 2n+1
            for (int n = 1; n < 80; n++) {
                term *= -z * z / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
            }
            return 1 - 2 / Math.sqrt(Math.PI) * sum;
        }
        double fraction = z; // evaluated from the bottom: depth 120 converges to double precision for z >= 3
        for (int k = 120; k >= 1; k--) fraction = z + k / 2.0 / fraction;
        return Math.exp(-z * z) / Math.sqrt(Math.PI) / fraction;
    }
}
