package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/** The intermediate tensors of one forward pass, closed together at its end (the result is kept apart). */
final class Temporaries implements AutoCloseable {
    private final List<Tensor> tensors = new ArrayList<>();

    /** Registers t (null passes through) and returns it. */
    Tensor add(Tensor t) {
        if (t != null) tensors.add(t);
        return t;
    }

    /** Values made on the host, as a tensor of the shape on the backend's device, closed with the others. */
    Tensor upload(Ops ops, float[] values, long... shape) {
        Tensor host = add(Tensor.of(values, shape));
        return ops.device().isCpu() ? host : add(host.to(ops.device()));
    }

    /** Stops tracking t: the caller now owns it. */
    Tensor keep(Tensor t) {
        tensors.remove(t);
        return t;
    }

    @Override
    public void close() {
        for (Tensor t : tensors) t.close();
        tensors.clear();
    }
}
