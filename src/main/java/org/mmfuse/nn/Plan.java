package org.mmfuse.nn;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mmfuse.Shapes;

/**
 * A layer worked out from its options and input widths before any weight is read: the state-dict
 * tensors it needs (names relative to the layer, shapes) and its output. Loading checks a whole model's
 * plans against a file first, then builds each layer from the tensors its plan named.
 */
final class Plan<T> {
    /** Builds the layer from its checked tensors. */
    interface Builder<T> {
        T build(Params params);
    }

    /**
     * Builds a fusion with the linear encoders of some inputs folded into it: {@code encoders} holds, per
     * input, that encoder's single {@code nn.Linear} (the fusion then gets the input's raw features) or
     * null (the encoded input, as usual).
     */
    interface FoldingBuilder<T> {
        T build(Params params, List<Linear> encoders);
    }

    /** The most tensors one layer may declare: real ones declare a few dozen (Block: a few per chunk). */
    static final int MAX_PARAMETERS = 1 << 16;

    final Port output;
    final Map<String, long[]> parameters = new LinkedHashMap<>();
    /**
     * Tensors a state dict may hold that the layer does not read: the second names of modules shared
     * between both inputs (PyTorch's state_dict lists a shared module under each name).
     */
    final Map<String, long[]> aliases = new LinkedHashMap<>();
    /** The parameters that hold indices (hash buckets), read from integer or whole-number tensors. */
    final java.util.Set<String> indices = new java.util.HashSet<>();
    private Builder<T> builder;
    private FoldingBuilder<T> foldingBuilder;

    Plan(Port output) {
        this.output = output;
    }

    /**
     * Declares a tensor; the shape's element count is checked against overflow here, before anything is read,
     * and so is the number of tensors (a hostile architecture could otherwise declare millions).
     */
    Plan<T> parameter(String name, long... shape) {
        Shapes.numel(name, shape);
        if (parameters.size() >= MAX_PARAMETERS) {
            throw new IllegalArgumentException("a layer declares more than " + MAX_PARAMETERS + " tensors (at " + name + ")");
        }
        parameters.put(name, shape);
        return this;
    }

    /** Declares a tensor of whole numbers (any integer dtype, or floats holding whole numbers). */
    Plan<T> indexParameter(String name, long... shape) {
        parameter(name, shape);
        indices.add(name);
        return this;
    }

    /**
     * Declares {@code nn.Linear(in, out, bias)} under {@code name}: name.weight [out, in], name.bias [out]
     * (plain weight and bias for the name "").
     */
    Plan<T> linear(String name, long in, long out, boolean bias) {
        String at = name.isEmpty() ? "" : name + ".";
        parameter(at + "weight", out, in);
        if (bias) parameter(at + "bias", out);
        return this;
    }

    /** Declares the second name of a shared {@code nn.Linear(in, out)} (see {@link #aliases}). */
    Plan<T> sharedLinear(String name, long in, long out) {
        aliases.put(name + ".weight", new long[] {out, in});
        aliases.put(name + ".bias", new long[] {out});
        return this;
    }

    Plan<T> builder(Builder<T> b) {
        this.builder = b;
        return this;
    }

    T build(Params params) {
        return builder.build(params);
    }

    /** Says that the layer can take the linear encoders of some inputs into itself (see {@link FoldingBuilder}). */
    Plan<T> foldingEncoders(FoldingBuilder<T> b) {
        this.foldingBuilder = b;
        return this;
    }

    boolean foldsEncoders() {
        return foldingBuilder != null;
    }

    T build(Params params, List<Linear> encoders) {
        return foldingBuilder.build(params, encoders);
    }

    /** Adds another plan's tensors under {@code prefix}. */
    void include(String prefix, Plan<?> other) {
        for (Map.Entry<String, long[]> e : other.parameters.entrySet()) parameters.put(prefix + e.getKey(), e.getValue());
        for (String name : other.indices) indices.add(prefix + name);
        other.aliases.forEach((name, shape) -> aliases.put(prefix + name, shape));
    }
}
