package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Tensor;

/** The intermediate tensors of one forward pass, closed together at its end (the result is kept apart). */
final class Temporaries implements AutoCloseable {
    private final List<Tensor> tensors = new ArrayList<>();

    /** Registers t (null passes through) and returns it. */
    Tensor add(Tensor t) {
        if (t != null) tensors.add(t);
        return t;
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
