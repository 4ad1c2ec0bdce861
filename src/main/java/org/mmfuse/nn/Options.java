package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mmfuse.Activation;

/**
 * A layer's options as JSON gives them (block.bootstrap's constructor argument names), read with
 * defaults and checked: a wrong type or value throws naming the layer and the option, and so does an
 * option nothing read ({@link #checkAllRead}), so a misspelt key is an error rather than a silent default.
 */
final class Options {
    private final String layer;
    private final Map<String, Object> values;
    private final Set<String> read = new LinkedHashSet<>();

    Options(String layer, Map<String, Object> values) {
        this.layer = layer;
        this.values = values == null ? Map.of() : values;
    }

    /** A positive integer option. */
    int positive(String key, Integer fallback) {
        Object v = get(key);
        if (v == null) {
            if (fallback == null) throw error(key, "is required (a positive integer)");
            return fallback;
        }
        return positiveValue(key, v);
    }

    private int positiveValue(String key, Object v) {
        if (!(v instanceof Long || v instanceof Integer) || ((Number) v).longValue() <= 0
                || ((Number) v).longValue() > Integer.MAX_VALUE) {
            throw error(key, "must be a positive integer below 2^31, got " + v);
        }
        return ((Number) v).intValue();
    }

    /** A list of positive integers, or the fallback when absent. */
    List<Integer> positiveList(String key, List<Integer> fallback) {
        Object v = get(key);
        if (v == null) {
            if (fallback == null) throw error(key, "is required (a list of positive integers)");
            return fallback;
        }
        if (!(v instanceof List)) throw error(key, "must be a list of positive integers, got " + v);
        List<Integer> out = new ArrayList<>();
        for (Object item : (List<?>) v) out.add(positiveValue(key, item));
        return out;
    }

    /** A number option. */
    double number(String key, double fallback) {
        Object v = get(key);
        if (v == null) return fallback;
        if (!(v instanceof Number)) throw error(key, "must be a number, got " + v);
        return ((Number) v).doubleValue();
    }

    boolean bool(String key, boolean fallback) {
        Object v = get(key);
        if (v == null) return fallback;
        if (!(v instanceof Boolean)) throw error(key, "must be true or false, got " + v);
        return (Boolean) v;
    }

    /** One of the allowed strings. */
    String choice(String key, String fallback, String... allowed) {
        Object v = get(key);
        if (v == null) return fallback;
        for (String a : allowed) if (a.equals(v)) return a;
        throw error(key, "must be one of " + List.of(allowed) + ", got " + v);
    }

    /**
     * An activation by its {@code torch.nn.functional} name ("relu", "tanh", "sigmoid", "gelu"); JSON
     * null, "" or "none" for none, as block.bootstrap's {@code activ_*=None}.
     */
    Activation activation(String key, Activation fallback) {
        if (!values.containsKey(key)) return fallback;
        Object v = get(key);
        if (v == null || "".equals(v) || "none".equals(v)) return Activation.NONE;
        for (Activation a : Activation.values()) {
            if (a != Activation.NONE && a.name().toLowerCase().equals(v)) return a;
        }
        throw error(key, "must be relu, tanh, sigmoid, gelu or none, got " + v);
    }

    /** The option's JSON value as given (null if absent), for options of more than one form. */
    Object raw(String key) {
        return get(key);
    }

    /** Whether the option is given at all. */
    boolean has(String key) {
        return values.containsKey(key);
    }

    /** An option that must equal what the architecture implies (input_dims given for checking, say). */
    void mustMatch(String key, Object implied) {
        Object v = get(key);
        if (v != null && !normalized(v).equals(normalized(implied))) {
            throw error(key, "is " + v + " but the inputs give " + implied);
        }
    }

    private static Object normalized(Object v) {
        if (v instanceof Number) return ((Number) v).longValue();
        if (v instanceof List) {
            List<Object> out = new ArrayList<>();
            for (Object item : (List<?>) v) out.add(normalized(item));
            return out;
        }
        return v;
    }

    /** Throws naming every option no one read. */
    void checkAllRead() {
        Set<String> unknown = new LinkedHashSet<>(values.keySet());
        unknown.removeAll(read);
        unknown.remove("type");
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException(layer + ": unknown option" + (unknown.size() > 1 ? "s " : " ") + unknown);
        }
    }

    /** An error about the layer as a whole (its inputs, say), named as the option errors are. */
    IllegalArgumentException failure(String what) {
        return new IllegalArgumentException(layer + ": " + what);
    }

    IllegalArgumentException error(String key, String what) {
        return new IllegalArgumentException(layer + ": option '" + key + "' " + what);
    }

    private Object get(String key) {
        read.add(key);
        return values.get(key);
    }
}
