package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.mmfuse.io.Json;

/**
 * A fusion model's architecture: named modality inputs (each a vector [B, C] or a sequence [B, N, C]
 * with an optional mask), an optional encoder per modality, one fusion, a head, and the output
 * function. Immutable; built in Java with {@link #builder()} or read from JSON ({@link #fromJson}),
 * the form a model file keeps in its metadata under {@link #METADATA_KEY}:
 *
 * <pre>{@code
 * {"format": "mmfuse.model", "version": 1,
 *  "inputs": [{"name": "image", "dim": 2048, "sequence": true}, {"name": "text", "dim": 768}],
 *  "encoders": {"image": [{"type": "pool", "mode": "mean"}]},
 *  "fusion": {"type": "mfb", "output_dim": 1000, "mm_dim": 1200, "factor": 5},
 *  "head": [{"type": "linear", "out": 10}],
 *  "output": "softmax"}
 * }</pre>
 *
 * Tensor names follow a PyTorch module with {@code encoders} (an nn.ModuleDict of nn.Sequential),
 * {@code fusion} and {@code head} (an nn.Sequential): {@code encoders.image.1.weight},
 * {@code fusion.linear0.weight}, {@code head.0.bias}; an optional {@code missing.<input>} [C] holds the
 * learned vector that stands for an absent modality at the fusion's input. Widths flow from the inputs:
 * a step's input width and the fusion's input_dims are implied (and checked where given).
 */
public final class ModelSpec {
    /** The safetensors metadata key holding a model file's architecture JSON. */
    public static final String METADATA_KEY = "mmfuse.model";
    /** The longest architecture JSON {@link #fromJson} reads. */
    public static final int MAX_JSON_CHARS = 1 << 20;

    /** What the head's output goes through. */
    public enum Output {
        NONE, SOFTMAX, SIGMOID
    }

    /** One modality input: its name, its feature width, and whether it is a sequence [B, N, dim]. */
    public record Input(String name, int dim, boolean sequence) {
        public Input {
            Objects.requireNonNull(name, "name");
            if (!name.matches("[A-Za-z_][A-Za-z0-9_]*")) {
                throw new IllegalArgumentException("input name '" + name + "' must be an identifier (letters, digits, _)");
            }
            if (dim <= 0) throw new IllegalArgumentException("input '" + name + "': dim must be positive, got " + dim);
        }
    }

    private final List<Input> inputs;
    private final Map<String, List<LayerSpec>> encoders;
    private final FusionSpec fusion;
    private final List<LayerSpec> head;
    private final Output output;

    private ModelSpec(List<Input> inputs, Map<String, List<LayerSpec>> encoders, FusionSpec fusion, List<LayerSpec> head,
            Output output) {
        this.inputs = List.copyOf(inputs);
        this.encoders = new LinkedHashMap<>();
        encoders.forEach((k, v) -> this.encoders.put(k, List.copyOf(v)));
        this.fusion = Objects.requireNonNull(fusion, "a model needs a fusion");
        this.head = List.copyOf(head);
        this.output = Objects.requireNonNull(output, "output");
        if (inputs.isEmpty()) throw new IllegalArgumentException("a model needs at least one input");
        Set<String> names = new LinkedHashSet<>();
        for (Input in : inputs) {
            if (names.contains(in.name())) throw new IllegalArgumentException("input '" + in.name() + "' is declared twice");
            names.add(in.name());
        }
        for (String name : encoders.keySet()) {
            if (!names.contains(name)) throw new IllegalArgumentException("an encoder for '" + name + "', which is not an input " + names);
        }
        plan(); // every width and option checked now, not at the first call
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Collects a spec; {@link #build} checks it whole. */
    public static final class Builder {
        private final List<Input> inputs = new ArrayList<>();
        private final Map<String, List<LayerSpec>> encoders = new LinkedHashMap<>();
        private FusionSpec fusion;
        private final List<LayerSpec> head = new ArrayList<>();
        private Output output = Output.NONE;

        public Builder vector(String name, int dim) {
            inputs.add(new Input(name, dim, false));
            return this;
        }

        public Builder sequence(String name, int dim) {
            inputs.add(new Input(name, dim, true));
            return this;
        }

        public Builder encoder(String input, LayerSpec... steps) {
            encoders.computeIfAbsent(input, k -> new ArrayList<>()).addAll(List.of(steps));
            return this;
        }

        public Builder fusion(FusionSpec spec) {
            this.fusion = spec;
            return this;
        }

        public Builder head(LayerSpec... steps) {
            head.addAll(List.of(steps));
            return this;
        }

        public Builder output(Output output) {
            this.output = output;
            return this;
        }

        public ModelSpec build() {
            return new ModelSpec(inputs, encoders, fusion, head, output);
        }
    }

    public List<Input> inputs() {
        return inputs;
    }

    public FusionSpec fusion() {
        return fusion;
    }

    public Output output() {
        return output;
    }

    /** The steps of an input's encoder (empty for none). */
    public List<LayerSpec> encoder(String input) {
        return encoders.getOrDefault(input, List.of());
    }

    public List<LayerSpec> head() {
        return head;
    }

    /** Every tensor the model needs, by full name, with its shape, in model order (optional ones excluded). */
    public Map<String, long[]> parameters() {
        return new LinkedHashMap<>(plan().parameters);
    }

    /** The width of the model's output. */
    public long outputDim() {
        return plan().head.output.dim();
    }

    /** The whole model's plan: encoders, fusion and head, with their tensors under their prefixes. */
    ModelPlan plan() {
        return new ModelPlan(this);
    }

    /** The JSON form (see the class comment). */
    public String toJson() {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("format", "mmfuse.model");
        root.put("version", 1);
        List<Object> ins = new ArrayList<>();
        for (Input in : inputs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", in.name());
            m.put("dim", in.dim());
            if (in.sequence()) m.put("sequence", true);
            ins.add(m);
        }
        root.put("inputs", ins);
        Map<String, Object> enc = new LinkedHashMap<>();
        encoders.forEach((name, steps) -> enc.put(name, steps(steps)));
        if (!enc.isEmpty()) root.put("encoders", enc);
        root.put("fusion", fusion.toJson());
        if (!head.isEmpty()) root.put("head", steps(head));
        root.put("output", output.name().toLowerCase());
        return Json.write(root);
    }

    private static List<Object> steps(List<LayerSpec> steps) {
        List<Object> out = new ArrayList<>();
        for (LayerSpec s : steps) out.add(s.toJson());
        return out;
    }

    /**
     * A spec from its JSON form; any unknown key, wrong type or inconsistent width is an error naming it. At
     * most {@link #MAX_JSON_CHARS} characters: an architecture takes a few kilobytes, and a file's metadata
     * must not make the loader build millions of layers.
     */
    @SuppressWarnings("unchecked")
    public static ModelSpec fromJson(String json) {
        if (json.length() > MAX_JSON_CHARS) {
            throw new IllegalArgumentException("model JSON: " + json.length() + " characters; an architecture is at most "
                    + MAX_JSON_CHARS);
        }
        Object parsed = Json.parse(json);
        if (!(parsed instanceof Map)) throw new IllegalArgumentException("model JSON: expected an object");
        Map<String, Object> root = (Map<String, Object>) parsed;
        for (String key : root.keySet()) {
            if (!List.of("format", "version", "inputs", "encoders", "fusion", "head", "output").contains(key)) {
                throw new IllegalArgumentException("model JSON: unknown key '" + key + "'");
            }
        }
        if (!"mmfuse.model".equals(root.get("format")) || !Long.valueOf(1).equals(root.get("version"))) {
            throw new IllegalArgumentException("model JSON: expected \"format\": \"mmfuse.model\", \"version\": 1, got "
                    + root.get("format") + ", " + root.get("version"));
        }
        Builder b = builder();
        for (Object item : list(root.get("inputs"), "inputs")) {
            Map<String, Object> in = object(item, "an input");
            for (String key : in.keySet()) {
                if (!List.of("name", "dim", "sequence").contains(key)) throw new IllegalArgumentException("model JSON: input key '" + key + "'");
            }
            if (!(in.get("name") instanceof String) || !(in.get("dim") instanceof Long) || (Long) in.get("dim") > Integer.MAX_VALUE
                    || in.containsKey("sequence") && !(in.get("sequence") instanceof Boolean)) {
                throw new IllegalArgumentException("model JSON: an input needs a string name, an integer dim and an optional"
                        + " boolean sequence, got " + in);
            }
            int dim = (int) (long) (Long) in.get("dim");
            if (Boolean.TRUE.equals(in.get("sequence"))) {
                b.sequence((String) in.get("name"), dim);
            } else {
                b.vector((String) in.get("name"), dim);
            }
        }
        if (root.get("encoders") != null) {
            for (Map.Entry<String, Object> e : object(root.get("encoders"), "encoders").entrySet()) {
                b.encoder(e.getKey(), layers(e.getValue(), "encoders." + e.getKey()).toArray(new LayerSpec[0]));
            }
        }
        Map<String, Object> f = object(root.get("fusion"), "fusion");
        if (!(f.get("type") instanceof String)) throw new IllegalArgumentException("model JSON: fusion needs a string type");
        Map<String, Object> options = new LinkedHashMap<>(f);
        options.remove("type");
        b.fusion(FusionSpec.of((String) f.get("type"), options));
        if (root.get("head") != null) b.head(layers(root.get("head"), "head").toArray(new LayerSpec[0]));
        Object out = root.getOrDefault("output", "none");
        if (!List.of("none", "softmax", "sigmoid").contains(out)) {
            throw new IllegalArgumentException("model JSON: output must be none, softmax or sigmoid, got " + out);
        }
        b.output(Output.valueOf(((String) out).toUpperCase()));
        return b.build();
    }

    private static List<LayerSpec> layers(Object value, String where) {
        List<LayerSpec> out = new ArrayList<>();
        for (Object item : list(value, where)) {
            Map<String, Object> m = object(item, "a step of " + where);
            if (!(m.get("type") instanceof String)) throw new IllegalArgumentException("model JSON: a step of " + where + " needs a string type");
            Map<String, Object> options = new LinkedHashMap<>(m);
            options.remove("type");
            out.add(LayerSpec.of((String) m.get("type"), options));
        }
        return out;
    }

    private static List<?> list(Object value, String what) {
        if (!(value instanceof List)) throw new IllegalArgumentException("model JSON: " + what + " must be a list, got " + value);
        return (List<?>) value;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> object(Object value, String what) {
        if (!(value instanceof Map)) throw new IllegalArgumentException("model JSON: " + what + " must be an object, got " + value);
        return (Map<String, Object>) value;
    }

    @Override
    public String toString() {
        return toJson();
    }
}
