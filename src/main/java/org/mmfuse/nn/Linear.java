package org.mmfuse.nn;

import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/** {@code nn.Linear}'s tensors on the backend's device: weight [out, in], bias [out] or null. */
record Linear(Tensor weight, Tensor bias) {
    Tensor apply(Ops ops, Tensor x) {
        return ops.linear(x, weight, bias);
    }
}
