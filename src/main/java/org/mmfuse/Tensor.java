package org.mmfuse;

import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A dense, row-major, contiguous tensor on the host or on a CUDA device.
 *
 * <p>Ownership: a tensor owns its memory. Every tensor an operation or {@link #to} returns is new and
 * belongs to the caller, who closes it when done ({@code try (Tensor t = ...)}); closing twice does
 * nothing, and using a closed tensor throws {@link IllegalStateException}. Device memory of a tensor
 * that is dropped without being closed is freed once the garbage collector finds it unreachable,
 * which may be late: close device tensors. Host tensors created by {@link #of} share the caller's
 * array, no copy is made. The array of a closed host tensor that the library allocated is recycled for
 * later tensors: keep no reference to {@link #array()} past {@link #close()}.
 *
 * <p>Copies between devices happen only in {@link #to} and {@link #toArray}; operations never move
 * data between devices behind the caller's back.
 */
public final class Tensor implements AutoCloseable {
    private final long[] shape;
    private final DType dtype;
    private final Device device;
    private final DeviceMemory memory; // CUDA tensors, else null
    private volatile float[] host;     // host tensors, null once closed
    private final boolean recycled;    // host array from HostArrays, given back on close
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Tensor base;         // the owner of a view's memory, else null

    private Tensor(long[] shape, DType dtype, Device device, float[] host, DeviceMemory memory, boolean recycled,
            Tensor base) {
        this.shape = shape;
        this.dtype = dtype;
        this.device = device;
        this.host = host;
        this.memory = memory;
        this.recycled = recycled;
        this.base = base;
    }

    private Tensor(long[] shape, DType dtype, Device device, float[] host, DeviceMemory memory, boolean recycled) {
        this(shape, dtype, device, host, memory, recycled, null);
    }

    /** A host tensor over {@code data} (not copied) with the given shape; data.length must equal the element count. */
    public static Tensor of(float[] data, long... shape) {
        Objects.requireNonNull(data, "data");
        long[] s = checkedShape(shape);
        long n = Shapes.numel("shape", s);
        if (n != data.length) {
            throw new IllegalArgumentException("data has " + data.length + " elements but shape " + Shapes.toString(s)
                    + " needs " + n);
        }
        return new Tensor(s, DType.F32, Device.CPU, data, null, false);
    }

    /** A new host tensor of zeros. */
    public static Tensor zeros(long... shape) {
        Tensor t = empty(shape);
        java.util.Arrays.fill(t.host, 0f);
        return t;
    }

    /**
     * A new host tensor with unspecified contents (as {@code torch.empty}): for outputs that will be
     * overwritten whole, it saves zeroing the memory.
     */
    public static Tensor empty(long... shape) {
        long[] s = checkedShape(shape);
        long n = Shapes.numel("shape", s);
        if (n > Shapes.MAX_HOST_ELEMENTS) {
            throw new IllegalArgumentException("shape " + Shapes.toString(s) + " has " + n
                    + " elements, more than a host tensor holds (" + Shapes.MAX_HOST_ELEMENTS + ")");
        }
        return new Tensor(s, DType.F32, Device.CPU, HostArrays.take((int) n), null, true);
    }

    /**
     * A device tensor over {@code memory}, which it then owns. For backends and interop; the memory
     * must hold at least the shape's element count of {@code dtype}.
     */
    public static Tensor wrap(DeviceMemory memory, DType dtype, long... shape) {
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(dtype, "dtype");
        long[] s = checkedShape(shape);
        long n = Shapes.numel("shape", s);
        if (n > memory.bytes() / dtype.bytes()) {
            throw new IllegalArgumentException("shape " + Shapes.toString(s) + " of " + dtype + " needs "
                    + Math.multiplyExact(n, (long) dtype.bytes()) + " bytes, memory has " + memory.bytes());
        }
        return new Tensor(s, dtype, memory.device(), null, memory, false);
    }

    private static long[] checkedShape(long[] shape) {
        Objects.requireNonNull(shape, "shape");
        return shape.clone();
    }

    /**
     * The same elements under another shape of the same element count ({@code torch.Tensor.view} of a
     * contiguous tensor): no copy, the memory is shared. The view does not own it: closing the view
     * frees nothing, and the view is unusable once the tensor owning the memory is closed (this one, or
     * for a view of a view, the tensor the first view was made from).
     */
    public Tensor view(long... shape) {
        checkOpen("tensor");
        long[] s = checkedShape(shape);
        if (Shapes.numel("shape", s) != numel()) {
            throw new IllegalArgumentException("view: shape " + Shapes.toString(s) + " has " + Shapes.numel("shape", s)
                    + " elements, " + describe() + " has " + numel());
        }
        Tensor owner = base == null ? this : base;
        return new Tensor(s, dtype, device, host, memory, false, owner);
    }

    /** The sizes, outermost first (a copy). */
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** The size along {@code axis}; negative axes count from the end. */
    public long size(int axis) {
        if (shape.length == 0) throw new IllegalArgumentException("size(" + axis + "): a scalar tensor has no dimensions");
        return shape[Shapes.axis("axis", axis, shape.length)];
    }

    public long numel() {
        return Shapes.product(shape, 0, shape.length);
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return device;
    }

    public boolean isClosed() {
        return closed.get() || base != null && base.closed.get();
    }

    /** The backing array of a host tensor (no copy): writes to it change the tensor. */
    public float[] array() {
        if (!device.isCpu()) throw new IllegalStateException("tensor on " + device + " has no host array; use toArray()");
        float[] data = host;
        if (data == null || isClosed()) throw new IllegalStateException("tensor " + describe() + " is closed");
        return data;
    }

    /** The device memory of a CUDA tensor (no copy). */
    public DeviceMemory deviceMemory() {
        if (memory == null) throw new IllegalStateException("tensor on " + device + " has no device memory");
        checkOpen("tensor");
        return memory;
    }

    /**
     * A new host array with the tensor's elements (for a CUDA tensor, after this thread's queued work);
     * BF16 and F16 elements are widened to float, exactly.
     */
    public float[] toArray() {
        checkOpen("tensor");
        if (device.isCpu()) return array().clone();
        long n = numel();
        if (n > Shapes.MAX_HOST_ELEMENTS) throw new IllegalStateException(describe() + " is too large for a host array");
        if (dtype == DType.F32) {
            float[] out = new float[(int) n];
            memory.copyToHost(out);
            return out;
        }
        short[] bits = new short[(int) n];
        memory.copyToHost(bits);
        return HalfFloats.decode(bits, dtype);
    }

    /**
     * A copy of this tensor on {@code target}, of the same dtype, owned by the caller (also when
     * target is this tensor's device). Host tensors are F32: a BF16 or F16 tensor comes back widened.
     */
    public Tensor to(Device target) {
        return to(target, target.isCpu() ? DType.F32 : dtype);
    }

    /**
     * A copy on {@code target} in {@code dtype}, rounding to nearest (ties to even) when narrowing
     * to BF16 or F16; those live on devices only, so a host target takes F32. Conversions run on the
     * host: a device-to-device copy goes through it.
     */
    public Tensor to(Device target, DType dtype) {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(dtype, "dtype");
        checkOpen("tensor");
        if (target.isCpu()) {
            if (dtype != DType.F32) {
                throw new IllegalArgumentException("to: host tensors are F32; " + describe() + " cannot become "
                        + dtype + " on the cpu");
            }
            return Tensor.of(toArray(), shape);
        }
        DeviceMemory copy = MMFuse.allocate(target, Math.multiplyExact(numel(), (long) dtype.bytes()));
        try {
            float[] values = device.isCpu() ? array() : toArray();
            if (dtype == DType.F32) {
                copy.copyFromHost(values);
            } else {
                copy.copyFromHost(HalfFloats.encode(values, dtype));
            }
            return wrap(copy, dtype, shape);
        } catch (RuntimeException e) {
            copy.close();
            throw e;
        }
    }

    /** Throws {@link IllegalStateException} naming {@code argument} if this tensor is closed. */
    public void checkOpen(String argument) {
        if (isClosed()) throw new IllegalStateException(argument + " " + describe() + " is closed");
    }

    /** Frees the tensor's memory; idempotent and safe to race (the memory is released once). */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) return;
        float[] array = host;
        host = null;
        if (base != null) return; // a view frees nothing
        if (recycled && array != null) HostArrays.give(array);
        if (memory != null) memory.close();
    }

    /** {@code Tensor[2, 3] f32 cpu}. */
    public String describe() {
        return "Tensor" + Arrays.toString(shape) + " " + dtype.name().toLowerCase() + " " + device;
    }

    @Override
    public String toString() {
        return describe() + (isClosed() ? " (closed)" : "");
    }
}
