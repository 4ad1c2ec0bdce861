package org.mmfuse.backend;

/**
 * One checked factorized pooling call: x and y [rows, stages * units], result [rows, stages * units / factor];
 * stage s takes columns [s * units, (s + 1) * units) of both.
 */
public record FactorizedShape(int rows, int stages, int units, int factor) {
    /** Outputs per stage. */
    public int pooled() {
        return units / factor;
    }
}
