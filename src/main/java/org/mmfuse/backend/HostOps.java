package org.mmfuse.backend;

import java.util.Arrays;
import org.mmfuse.Device;
import org.mmfuse.Tensor;

/** What the CPU backends share: host tensors over float[]. */
abstract class HostOps extends AbstractOps {
    @Override
    public final Device device() {
        return Device.CPU;
    }

    @Override
    public final void synchronize() {}

    @Override
    public final void synchronizeDevice() {}

    @Override
    protected final Tensor allocate(long[] shape) {
        return Tensor.empty(shape); // every operation overwrites its outputs whole
    }

    @Override
    protected final boolean overlaps(Tensor a, Tensor b) {
        return a.array() == b.array();
    }

    // Exact elementwise operations: one float operation per element gives the same bits in any precision,
    // so the reference and the fast backend share them (plain loops, which the JIT vectorises).

    @Override
    protected final void binary(Binary op, Tensor a, Tensor b, Tensor out) {
        float[] x = a.array(), y = b.array(), o = out.array();
        if (y.length == 0) return; // then a is empty too
        for (int at = 0; at < o.length; at += y.length) { // b repeats along a
            switch (op) {
                case ADD:
                    for (int i = 0; i < y.length; i++) o[at + i] = x[at + i] + y[i];
                    break;
                case SUBTRACT:
                    for (int i = 0; i < y.length; i++) o[at + i] = x[at + i] - y[i];
                    break;
                default:
                    for (int i = 0; i < y.length; i++) o[at + i] = x[at + i] * y[i];
            }
        }
    }

    @Override
    protected final void fillAbsent(long rows, long inner, Tensor x, Tensor present, Tensor fill, Tensor out) {
        float[] in = x.array(), p = present.array(), o = out.array(), f = fill == null ? null : fill.array();
        int width = (int) inner;
        for (int r = 0; r < rows; r++) {
            if (p[r] != 0) {
                System.arraycopy(in, r * width, o, r * width, width);
            } else if (f != null) {
                System.arraycopy(f, 0, o, r * width, width);
            } else {
                Arrays.fill(o, r * width, (r + 1) * width, 0f);
            }
        }
    }
}
