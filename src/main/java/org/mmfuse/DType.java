package org.mmfuse;

/** Element types. Host tensors hold {@link #F32}; the half types are reserved for GPU tensor-core paths. */
public enum DType {
    F32(4),
    BF16(2),
    F16(2);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }
}
