package org.mmfuse;

/**
 * Where a tensor's memory lives: the host ({@link #CPU}) or one CUDA device ({@code cuda(0)}).
 * Devices are values: two instances naming the same device are equal.
 */
public final class Device {
    public static final Device CPU = new Device(Kind.CPU, -1);

    public enum Kind { CPU, CUDA }

    private final Kind kind;
    private final int index;

    private Device(Kind kind, int index) {
        this.kind = kind;
        this.index = index;
    }

    /** The CUDA device with this ordinal. */
    public static Device cuda(int index) {
        if (index < 0) throw new IllegalArgumentException("CUDA device index must be >= 0, got " + index);
        return new Device(Kind.CUDA, index);
    }

    public Kind kind() {
        return kind;
    }

    /** The CUDA device ordinal; -1 for the CPU. */
    public int index() {
        return index;
    }

    public boolean isCpu() {
        return kind == Kind.CPU;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Device && ((Device) o).kind == kind && ((Device) o).index == index;
    }

    @Override
    public int hashCode() {
        return kind.hashCode() * 31 + index;
    }

    /** {@code cpu} or {@code cuda:N}, as PyTorch writes them. */
    @Override
    public String toString() {
        return isCpu() ? "cpu" : "cuda:" + index;
    }
}
