package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Activation;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/**
 * block.bootstrap's {@code MLP(input_dim, dimensions, activation='relu')}: Linear layers
 * {@code linears.<j>} to each of {@code dimensions}, the activation between them and not after the last
 * (dropout is the identity at inference).
 */
final class Mlp {
    private final List<Linear> linears;
    private final Activation activation;

    private Mlp(List<Linear> linears, Activation activation) {
        this.linears = linears;
        this.activation = activation;
    }

    static Plan<Mlp> plan(Port in, List<Integer> dimensions, Activation activation) {
        Plan<Mlp> plan = new Plan<>(new Port(dimensions.get(dimensions.size() - 1), in.sequence()));
        long width = in.dim();
        for (int j = 0; j < dimensions.size(); j++) {
            plan.linear("linears." + j, width, dimensions.get(j), true);
            width = dimensions.get(j);
        }
        return plan.builder(p -> {
            List<Linear> linears = new ArrayList<>();
            for (int j = 0; j < dimensions.size(); j++) linears.add(p.linear("linears." + j));
            return new Mlp(linears, activation);
        });
    }

    /** x through the layers: a new tensor; x is not closed. */
    Tensor apply(Ops ops, Tensor x, Tensor unusedMask) {
        Tensor at = x;
        try {
            for (int j = 0; j < linears.size(); j++) {
                Tensor next = linears.get(j).apply(ops, at);
                if (at != x) at.close();
                at = next;
                if (j < linears.size() - 1 && activation != Activation.NONE) {
                    next = ops.activation(at, activation);
                    at.close();
                    at = next;
                }
            }
            return at;
        } catch (RuntimeException | Error e) {
            if (at != x) at.close();
            throw e;
        }
    }
}
