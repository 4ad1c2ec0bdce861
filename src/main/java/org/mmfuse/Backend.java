package org.mmfuse;

/** The implementations of {@link Ops}, in the order the probe prefers them. */
public enum Backend {
    /** CUDA kernels of libmmfuse on a GPU, cuBLAS and cuFFT through the JavaCPP CUDA presets. */
    CUDA,
    /** Pure Java on the Panama Vector API ({@code --add-modules jdk.incubator.vector}), on all cores. */
    VECTOR,
    /** Plain Java loops on one thread: the readable reference every other backend is tested against. */
    SCALAR;

    /** Parses {@code cuda}, {@code vector} or {@code scalar}, in any case. */
    public static Backend parse(String name) {
        for (Backend b : values()) {
            if (b.name().equalsIgnoreCase(name.trim())) return b;
        }
        throw new IllegalArgumentException("unknown backend '" + name + "': expected cuda, vector or scalar");
    }
}
