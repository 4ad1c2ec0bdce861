package org.mmfuse.backend;

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
    protected final Tensor allocate(long[] shape) {
        return Tensor.empty(shape); // every operation overwrites its outputs whole
    }

    @Override
    protected final boolean overlaps(Tensor a, Tensor b) {
        return a.array() == b.array();
    }
}
