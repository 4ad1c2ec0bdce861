package org.mmfuse;

/** A CUDA call failed. Carries the operation and the CUDA error's name (e.g. {@code cudaErrorMemoryAllocation}). */
public final class CudaException extends RuntimeException {
    private final String operation;
    private final String errorName;

    public CudaException(String operation, String errorName, String message) {
        super(operation + ": " + errorName + (message == null || message.isEmpty() ? "" : " (" + message + ")"));
        this.operation = operation;
        this.errorName = errorName;
    }

    /** The MMFuse or CUDA operation that failed, e.g. {@code concat} or {@code cudaMalloc}. */
    public String operation() {
        return operation;
    }

    /** The CUDA error's name, e.g. {@code cudaErrorIllegalAddress}. */
    public String errorName() {
        return errorName;
    }
}
