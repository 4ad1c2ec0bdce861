package org.mmfuse.nn;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/** What {@link LayerSpec} and {@link FusionSpec} are: a type name and its options, as their JSON form holds them. */
abstract class TypedSpec {
    private final String type;
    private final Map<String, Object> options;

    TypedSpec(String type, Map<String, Object> options) {
        this.type = Objects.requireNonNull(type, "type");
        this.options = new LinkedHashMap<>(options == null ? Map.of() : options);
    }

    public String type() {
        return type;
    }

    /** The options (a copy). */
    public Map<String, Object> options() {
        return new LinkedHashMap<>(options);
    }

    /** The JSON form: the options with "type" first. */
    Map<String, Object> toJson() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("type", type);
        out.putAll(options);
        return out;
    }

    @Override
    public String toString() {
        return type + (options.isEmpty() ? "" : options.toString());
    }
}
