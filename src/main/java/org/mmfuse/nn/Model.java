package org.mmfuse.nn;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.mmfuse.DType;
import org.mmfuse.Ops;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;
import org.mmfuse.io.SafeTensors;

/**
 * A fusion model at inference: a {@link ModelSpec} with its weights on one backend. Immutable and safe
 * to share across threads; weights are placed on the backend once, when the model is built, and never
 * copied per call; per-call temporaries come from the backends' pools (recycled host arrays, CUDA's
 * stream-ordered allocator). Close the model to free its weights: close waits for the predictions under
 * way on other threads (and, on a GPU, for the work they queued), and later ones throw.
 *
 * <p>Masks: the positions a sequence's mask drops are set to zero before its encoder, so padding may
 * hold anything (NaN included) without reaching a result. Missing modalities: an absent sample's input
 * is replaced by zeros before its encoder (so NaN in it never spreads), and its encoder output, at the fusion's input, by the learned vector
 * {@code missing.<input>} if the weights have one, else by zeros; an absent sequence also has every
 * position masked. Late fusion instead drops the absent modality from that sample's weighted mean.
 *
 * <p>Folded encoders: on the Vector backend a fusion that can (cross_attention pooled by its mean) takes
 * a sequence's encoder into itself when that encoder is a single linear layer, multiplying the weights
 * together at build time (W_k W_enc and so on): it then reads the raw features, and its folded attention
 * (see {@link org.mmfuse.Ops#projectedAttentionMean}) never encodes every position. Exact algebra, so the
 * results differ from the other backends by float rounding only.
 */
public final class Model implements AutoCloseable {
    private final Ops ops;
    private final ModelSpec spec;
    private final ModelPlan plan;
    private final Map<String, Tensor> state;   // the checked host weights, as given (by name)
    private final List<AutoCloseable> owned;   // device copies and derived tensors
    private final Map<String, Sequential> encoders = new LinkedHashMap<>();
    private final Map<String, Tensor> missing = new LinkedHashMap<>();
    private final Fusion fusion;
    private final Sequential head;
    /** Predictions hold it shared, close exclusively: weights are never freed under a running prediction. */
    private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
    private boolean closed; // guarded by lifecycle

    private Model(Ops ops, ModelSpec spec, Map<String, Tensor> state) {
        this.ops = ops;
        this.spec = spec;
        this.plan = spec.plan();
        this.state = state;
        this.owned = new ArrayList<>();
        Set<String> read = new HashSet<>();
        Params root = new Params(ops, state, owned, read);
        try {
            List<Linear> folded = new ArrayList<>();
            for (ModelSpec.Input in : spec.inputs()) {
                Params encoder = root.scope("encoders").scope(in.name());
                boolean folds = foldsEncoder(ops, in);
                folded.add(folds ? encoder.linear("0") : null);
                encoders.put(in.name(), folds ? Sequential.IDENTITY : plan.encoders.get(in.name()).build(encoder));
                if (state.containsKey("missing." + in.name())) missing.put(in.name(), root.scope("missing").device(in.name()));
            }
            fusion = folded.stream().anyMatch(l -> l != null) ? plan.fusion.build(root.scope("fusion"), folded)
                    : plan.fusion.build(root.scope("fusion"));
            head = plan.head.build(root.scope("head"));
            // weights derived on the device (splits, joins) are queued on this thread's stream: finished
            // before any other thread may read them
            ops.synchronize();
        } catch (RuntimeException | Error e) {
            Params.closeAll(owned);
            throw e;
        }
        Set<String> unread = new HashSet<>(plan.parameters.keySet());
        unread.removeAll(read);
        if (!unread.isEmpty()) {
            Params.closeAll(owned);
            throw new IllegalStateException("the model's layers did not use the tensors they declared: " + unread);
        }
    }

    /**
     * Whether the fusion takes this input's encoder into itself (see {@link Plan.FoldingBuilder}): on the
     * Vector backend, whose attention folds projections into its products, for a fusion that can, and a
     * sequence whose encoder is one linear layer. Only sequences: an absent sequence is masked out
     * whether encoded or not, while an absent vector's encoder output is replaced (by zeros or
     * {@code missing.<input>}), which a folded encoder could not do.
     */
    private boolean foldsEncoder(Ops ops, ModelSpec.Input in) {
        List<LayerSpec> encoder = spec.encoder(in.name());
        return ops.backend() == org.mmfuse.Backend.VECTOR && plan.fusion.foldsEncoders() && in.sequence()
                && encoder.size() == 1 && encoder.get(0).type().equals("linear");
    }

    /**
     * A model from an architecture and a state dict (host tensors or on any device, by PyTorch's names,
     * F32). Every tensor is checked first: a missing, unexpected or misshapen one fails the whole call
     * with one message listing them all. The model keeps host copies of the weights.
     */
    public static Model build(Ops ops, ModelSpec spec, Map<String, Tensor> state) {
        java.util.Objects.requireNonNull(ops, "ops");
        ModelPlan plan = spec.plan();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Map<String, String> dtypes = new LinkedHashMap<>();
        state.forEach((name, t) -> {
            shapes.put(name, t.shape());
            dtypes.put(name, t.dtype() == DType.F32 ? "F32" : t.dtype().name());
        });
        check(plan, shapes, dtypes, "the state dict");
        Map<String, Tensor> copies = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : state.entrySet()) copies.put(e.getKey(), e.getValue().to(org.mmfuse.Device.CPU));
            return new Model(ops, spec, copies);
        } catch (RuntimeException | Error e) {
            copies.values().forEach(Tensor::close);
            throw e;
        }
    }

    /** A model file: a safetensors file whose metadata holds the architecture under {@link ModelSpec#METADATA_KEY}. */
    public static Model load(Ops ops, Path file) throws IOException {
        try (SafeTensors st = SafeTensors.open(file)) {
            String json = st.metadata().get(ModelSpec.METADATA_KEY);
            if (json == null) {
                throw new IllegalArgumentException(file + " has no '" + ModelSpec.METADATA_KEY + "' metadata: a plain state"
                        + " dict; load it with load(ops, file, spec)");
            }
            return load(ops, st, file, ModelSpec.fromJson(json));
        }
    }

    /** A plain PyTorch state dict saved with safetensors, against an architecture given here. */
    public static Model load(Ops ops, Path weights, ModelSpec spec) throws IOException {
        try (SafeTensors st = SafeTensors.open(weights)) {
            return load(ops, st, weights, spec);
        }
    }

    private static Model load(Ops ops, SafeTensors st, Path file, ModelSpec spec) throws IOException {
        ModelPlan plan = spec.plan();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Map<String, String> dtypes = new LinkedHashMap<>();
        for (String name : st.names()) {
            shapes.put(name, st.entry(name).shape());
            dtypes.put(name, st.entry(name).dtype);
        }
        check(plan, shapes, dtypes, file.toString());
        Map<String, Tensor> state = new LinkedHashMap<>();
        try {
            for (String name : st.names()) {
                if (plan.indices.contains(name)) {
                    int[] values = st.readInts(name);
                    float[] f = new float[values.length];
                    for (int i = 0; i < f.length; i++) {
                        // the state holds every tensor as floats, exact for whole numbers up to 2^24
                        if (Math.abs(values[i]) > 1 << 24) {
                            throw new IllegalArgumentException(file + ": index tensor \"" + name + "\" holds " + values[i]
                                    + " at " + i + "; hashes and signs past 2^24 in size are not supported");
                        }
                        f[i] = values[i];
                    }
                    state.put(name, Tensor.of(f, st.entry(name).shape()));
                } else {
                    state.put(name, st.read(name));
                }
            }
            return new Model(ops, spec, state);
        } catch (RuntimeException | Error | IOException e) {
            state.values().forEach(Tensor::close);
            throw e;
        }
    }

    /**
     * Writes a model file: the architecture in the metadata, the state dict as F32 tensors, after the
     * same checks as {@link #build}. Python's {@code safetensors} reads it as a plain state dict.
     */
    public static void save(Path file, ModelSpec spec, Map<String, Tensor> state) throws IOException {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Map<String, String> dtypes = new LinkedHashMap<>();
        state.forEach((name, t) -> {
            shapes.put(name, t.shape());
            dtypes.put(name, "F32");
        });
        check(spec.plan(), shapes, dtypes, "the state dict");
        SafeTensors.write(file, state, Map.of(ModelSpec.METADATA_KEY, spec.toJson()));
    }

    private static final Set<String> FLOAT_DTYPES = Set.of("F32", "F16", "BF16", "F64");
    private static final Set<String> INDEX_DTYPES = Set.of("I64", "I32", "I16", "I8", "U8", "F32", "F64");

    /** Every problem with the tensors at once: missing, unexpected, misshapen, wrong dtype. */
    private static void check(ModelPlan plan, Map<String, long[]> shapes, Map<String, String> dtypes, String source) {
        List<String> missing = new ArrayList<>(), unexpected = new ArrayList<>(), wrong = new ArrayList<>();
        for (Map.Entry<String, long[]> e : plan.parameters.entrySet()) {
            if (!shapes.containsKey(e.getKey())) missing.add(e.getKey());
        }
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            String name = e.getKey();
            long[] expected = plan.parameters.containsKey(name) ? plan.parameters.get(name) : plan.optional.get(name);
            if (expected == null) {
                unexpected.add(name);
            } else if (!java.util.Arrays.equals(expected, e.getValue())) {
                wrong.add(name + " is " + Shapes.toString(e.getValue()) + ", expected " + Shapes.toString(expected));
            } else if (!(plan.indices.contains(name) ? INDEX_DTYPES : FLOAT_DTYPES).contains(dtypes.get(name))) {
                wrong.add(name + " has dtype " + dtypes.get(name) + ", expected " + (plan.indices.contains(name)
                        ? "an integer dtype" : "F32, F16, BF16 or F64"));
            }
        }
        if (missing.isEmpty() && unexpected.isEmpty() && wrong.isEmpty()) return;
        StringBuilder m = new StringBuilder(source + " does not fit the model (fusion " + plan.spec.fusion().type() + "):");
        if (!missing.isEmpty()) m.append("\n  missing: ").append(missing);
        if (!unexpected.isEmpty()) m.append("\n  unexpected: ").append(unexpected);
        for (String w : wrong) m.append("\n  ").append(w);
        throw new IllegalArgumentException(m.toString());
    }

    /** The same model on another backend (its own copy of the weights there); this one stays usable. */
    public Model to(Ops other) {
        Map<String, Tensor> copies = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : state.entrySet()) copies.put(e.getKey(), Tensor.of(e.getValue().array().clone(), e.getValue().shape()));
            return new Model(other, spec, copies);
        } catch (RuntimeException | Error e) {
            copies.values().forEach(Tensor::close);
            throw e;
        }
    }

    /**
     * The model's output for one batch: [B, outputDim] on this model's backend, owned by the caller.
     * Inputs on another device are copied here for the call.
     *
     * @throws IllegalArgumentException naming an unknown input, a wrong shape, a mask that does not fit, a
     *     presence array of the wrong length, or a batch with no input at all
     */
    public Tensor predict(ModelInput input) {
        lifecycle.readLock().lock();
        try {
            if (closed) throw new IllegalStateException("predict: the model is closed");
            return predictOpen(input);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    private Tensor predictOpen(ModelInput input) {
        List<ModelSpec.Input> inputs = spec.inputs();
        for (String name : input.tensors.keySet()) known(name, "an input");
        for (String name : input.masks.keySet()) known(name, "a mask");
        for (String name : input.present.keySet()) known(name, "a presence array");
        long batch = -1;
        for (Tensor t : input.tensors.values()) {
            if (t.rank() < 1) throw new IllegalArgumentException("predict: inputs are [B, C] or [B, N, C], got " + t.describe());
            if (batch >= 0 && t.size(0) != batch) {
                throw new IllegalArgumentException("predict: inputs disagree on the batch size: " + describe(input.tensors));
            }
            batch = t.size(0);
        }
        if (batch < 0) throw new IllegalArgumentException("predict: no input given (the model takes " + names() + ")");
        if (batch > Integer.MAX_VALUE) throw new IllegalArgumentException("predict: batch " + batch + " is too large");
        long length = 1; // an absent sequence's: that of a given one, so that fusions pairing maps get equal N
        for (ModelSpec.Input in : inputs) {
            Tensor x = input.tensors.get(in.name());
            if (in.sequence() && x != null && x.rank() == 3) {
                length = x.size(1);
                break;
            }
        }
        try (Temporaries t = new Temporaries()) {
            List<Tensor> fused = new ArrayList<>(), masks = new ArrayList<>();
            List<boolean[]> present = new ArrayList<>();
            for (ModelSpec.Input in : inputs) {
                Prepared p = prepare(in, input, (int) batch, length, t); // checked below 2^31 above
                Tensor encoded = encoders.get(in.name()).apply(ops, p.x, p.mask);
                if (encoded != p.x) t.add(encoded);
                Tensor fill = encoded.rank() == 2 ? missing.get(in.name()) : null;
                // prepare zeroed the absent samples of x: an encoder's output, or a learned fill, still needs it
                if (p.present != null && !plan.isLate() && (encoded != p.x || fill != null)) {
                    long rest = encoded.numel() / batch;
                    encoded = t.add(ops.fillAbsent(encoded.view(batch, rest), p.presentTensor, fill)).view(encoded.shape());
                }
                fused.add(encoded);
                masks.add(encoded.rank() == 3 ? p.mask : null); // a pooled encoder leaves no sequence to mask
                present.add(p.present);
            }
            Tensor z = t.add(fusion.forward(ops, fused, masks, present));
            Tensor y = head.apply(ops, z, null);
            if (y != z) t.add(y);
            Tensor out;
            switch (spec.output()) {
                case SOFTMAX: out = ops.softmax(y); break;
                case SIGMOID: out = ops.activation(y, org.mmfuse.Activation.SIGMOID); break;
                default: out = t.keep(y); // z itself when there is no head
            }
            return out;
        }
    }

    /** One input made ready for its encoder: on the device, absent samples zeroed, the mask covering them. */
    private record Prepared(Tensor x, Tensor mask, boolean[] present, Tensor presentTensor) {}

    private Prepared prepare(ModelSpec.Input in, ModelInput input, int batch, long length, Temporaries t) {
        String name = in.name();
        Tensor x = input.tensors.get(name), mask = input.masks.get(name);
        boolean[] present = input.present.get(name);
        if (present != null && present.length != batch) {
            throw new IllegalArgumentException("predict: presence of '" + name + "' has " + present.length + " entries for a batch of " + batch);
        }
        if (x == null) present = new boolean[batch]; // absent from every sample
        boolean allPresent = present == null;
        if (present != null) {
            allPresent = true;
            for (boolean p : present) allPresent &= p;
        }
        if (allPresent) present = null;
        if (x == null) {
            if (mask != null) throw new IllegalArgumentException("predict: a mask for '" + name + "' but no input");
            x = t.add(Tensor.zeros(in.sequence() ? new long[] {batch, length, in.dim()} : new long[] {batch, in.dim()}));
        }
        long[] s = x.shape();
        boolean fits = in.sequence() ? s.length == 3 && s[2] == in.dim() : s.length == 2 && s[1] == in.dim();
        if (!fits) {
            throw new IllegalArgumentException("predict: '" + name + "' must be " + (in.sequence() ? "[B, N, " + in.dim() + "]"
                    : "[B, " + in.dim() + "]") + ", got " + Shapes.toString(s));
        }
        if (mask != null && (!in.sequence() || mask.rank() != 2 || mask.size(0) != batch || mask.size(1) != s[1])) {
            throw new IllegalArgumentException("predict: the mask of '" + name + "' must be [B, N] = [" + batch + ", "
                    + (in.sequence() ? s[1] : "none: not a sequence") + "], got " + Shapes.toString(mask.shape()));
        }
        x = onDevice(x, t);
        mask = mask == null ? null : onDevice(mask, t);
        // padding may hold anything: zeroed, it cannot reach a result through a kernel that weighs it by 0
        if (mask != null) x = Fusions.zeroMasked(ops, x, mask, t);
        Tensor presentTensor = null;
        if (present != null) {
            float[] p = new float[batch];
            for (int b = 0; b < batch; b++) p[b] = present[b] ? 1f : 0f;
            presentTensor = t.upload(ops, p, batch);
            long rest = x.numel() / Math.max(batch, 1);
            x = t.add(ops.fillAbsent(x.view(batch, rest), presentTensor, null)).view(s);
            if (in.sequence()) {
                if (mask == null) {
                    if ((long) batch * s[1] > Shapes.MAX_HOST_ELEMENTS) {
                        throw new IllegalArgumentException("predict: '" + in.name() + "' " + Shapes.toString(s) + " with a presence"
                                + " array needs a mask, which would pass a host array's " + Shapes.MAX_HOST_ELEMENTS + " elements");
                    }
                    float[] ones = new float[(int) (batch * s[1])];
                    java.util.Arrays.fill(ones, 1f);
                    mask = t.upload(ops, ones, batch, s[1]);
                }
                mask = t.add(ops.fillAbsent(mask, presentTensor, null));
            }
        }
        return new Prepared(x, mask, present, presentTensor);
    }

    private Tensor onDevice(Tensor x, Temporaries t) {
        return x.device().equals(ops.device()) ? x : t.add(x.to(ops.device()));
    }

    private void known(String name, String what) {
        if (spec.inputs().stream().noneMatch(in -> in.name().equals(name))) {
            throw new IllegalArgumentException("predict: " + what + " for '" + name + "', which the model does not take ("
                    + names() + ")");
        }
    }

    private List<String> names() {
        List<String> out = new ArrayList<>();
        for (ModelSpec.Input in : spec.inputs()) out.add(in.name());
        return out;
    }

    private static String describe(Map<String, Tensor> tensors) {
        StringBuilder s = new StringBuilder();
        tensors.forEach((name, t) -> s.append(s.length() == 0 ? "" : ", ").append(name).append(' ').append(Shapes.toString(t.shape())));
        return s.toString();
    }

    public ModelSpec spec() {
        return spec;
    }

    public Ops ops() {
        return ops;
    }

    /** The number of weights (elements of every tensor the model holds by name). */
    public long parameterCount() {
        long n = 0;
        for (Tensor t : state.values()) n += t.numel();
        return n;
    }

    /** The architecture, every tensor with its shape, and the totals, as {@code ./mmfuse describe} prints them. */
    public String describe() {
        StringBuilder s = new StringBuilder();
        s.append("inputs:\n");
        for (ModelSpec.Input in : spec.inputs()) {
            Port encoded = plan.encoders.get(in.name()).output;
            s.append(String.format("  %-12s %s -> %s%s%n", in.name(), new Port(in.dim(), in.sequence()),
                    spec.encoder(in.name()).isEmpty() ? "" : spec.encoder(in.name()) + " -> ", encoded));
        }
        s.append("fusion: ").append(spec.fusion()).append(" -> ").append(plan.fusion.output).append('\n');
        if (!spec.head().isEmpty()) s.append("head: ").append(spec.head()).append(" -> ").append(plan.head.output).append('\n');
        s.append("output: ").append(spec.output().name().toLowerCase()).append('\n');
        s.append("tensors:\n");
        long total = 0;
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            long n = e.getValue().numel();
            total += n;
            s.append(String.format("  %-44s %-20s %,d%n", e.getKey(), Shapes.toString(e.getValue().shape()), n));
        }
        s.append(String.format("parameters: %,d (%,d bytes as F32) on %s%n", total, total * 4, ops.device()));
        return s.toString();
    }

    /** Frees the weights, once every prediction under way has returned and its queued device work is done. */
    @Override
    public void close() {
        lifecycle.writeLock().lock();
        try {
            if (closed) return;
            closed = true;
            try {
                ops.synchronizeDevice();
            } finally { // freed even when the device has failed: its error is what close throws
                Params.closeAll(owned);
                state.values().forEach(Tensor::close);
            }
        } finally {
            lifecycle.writeLock().unlock();
        }
    }
}
