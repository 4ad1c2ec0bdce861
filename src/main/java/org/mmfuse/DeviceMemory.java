package org.mmfuse;

/**
 * A block of accelerator memory with one owner: the tensor that holds it. {@link #close()} frees it;
 * memory whose owner becomes unreachable without being closed is freed by a cleaner.
 */
public interface DeviceMemory extends AutoCloseable {
    /** The device address (for interop, e.g. handing the buffer to another CUDA library). */
    long address();

    long bytes();

    Device device();

    /** Copies {@code src} into the start of this memory and waits for the copy to finish. */
    void copyFromHost(float[] src);

    /** Copies the start of this memory into {@code dst} after all work queued by this thread has finished. */
    void copyToHost(float[] dst);

    /** As {@link #copyFromHost(float[])}, for 16-bit elements (BF16 or F16 bit patterns). */
    void copyFromHost(short[] src);

    /** As {@link #copyToHost(float[])}, for 16-bit elements. */
    void copyToHost(short[] dst);

    /** Frees the memory; idempotent. */
    @Override
    void close();
}
