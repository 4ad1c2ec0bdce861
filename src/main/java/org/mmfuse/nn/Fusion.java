package org.mmfuse.nn;

import java.util.List;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/** A built fusion layer: the modalities' tensors in the model's input order to one tensor. */
interface Fusion {
    /**
     * @param inputs [B, C] vectors or [B, N, C] sequences, as the fusion's plan accepted them
     * @param masks per input, the sequence's mask [B, N] (non-zero = keep) or null
     * @param present per input, which samples have it ([B] on the host), or null when all do; only
     *     late fusion reads it, every other fusion sees absent samples already filled in by the model
     * @return a new tensor the caller owns
     */
    Tensor forward(Ops ops, List<Tensor> inputs, List<Tensor> masks, List<boolean[]> present);
}
