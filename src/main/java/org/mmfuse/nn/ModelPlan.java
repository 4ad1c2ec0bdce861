package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** A {@link ModelSpec} worked out: each part's plan, the ports between them, and every tensor by full name. */
final class ModelPlan {
    final ModelSpec spec;
    final Map<String, Plan<Sequential>> encoders = new LinkedHashMap<>();
    /** What each input gives the fusion, in input order. */
    final List<Port> fusionInputs = new ArrayList<>();
    final Plan<Fusion> fusion;
    final Plan<Sequential> head;
    /** Required tensors, full names. */
    final Map<String, long[]> parameters = new LinkedHashMap<>();
    /** Tensors that may be present (the missing-modality vectors, shared modules' second names), full names. */
    final Map<String, long[]> optional = new LinkedHashMap<>();
    final Set<String> indices = new java.util.HashSet<>();

    ModelPlan(ModelSpec spec) {
        this.spec = spec;
        for (ModelSpec.Input in : spec.inputs()) {
            Plan<Sequential> p = Sequential.plan("encoders." + in.name(), spec.encoder(in.name()),
                    new Port(in.dim(), in.sequence()));
            encoders.put(in.name(), p);
            fusionInputs.add(p.output);
            add("encoders." + in.name() + ".", p);
            if (!p.output.sequence()) optional.put("missing." + in.name(), new long[] {p.output.dim()});
        }
        fusion = Fusions.plan(spec.fusion(), fusionInputs);
        add("fusion.", fusion);
        head = Sequential.plan("head", spec.head(), fusion.output);
        add("head.", head);
        if (head.output.sequence()) {
            throw new IllegalArgumentException("the model's output would be a sequence " + head.output + "; end with a pool step");
        }
    }

    private void add(String prefix, Plan<?> p) {
        p.parameters.forEach((name, shape) -> parameters.put(prefix + name, shape));
        p.aliases.forEach((name, shape) -> optional.put(prefix + name, shape));
        for (String name : p.indices) indices.add(prefix + name);
    }

    boolean isLate() {
        return spec.fusion().type().equals("late");
    }
}
