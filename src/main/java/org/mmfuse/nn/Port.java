package org.mmfuse.nn;

/**
 * What flows between layers, as far as shapes go: {@code dim} features per item, one vector per sample
 * ([B, dim]) or a sequence per sample ([B, N, dim], N given at run time, with an optional mask).
 */
record Port(long dim, boolean sequence) {
    Port {
        if (dim <= 0) throw new IllegalArgumentException("a layer's width must be positive, got " + dim);
    }

    @Override
    public String toString() {
        return sequence ? "[B, N, " + dim + "]" : "[B, " + dim + "]";
    }
}
