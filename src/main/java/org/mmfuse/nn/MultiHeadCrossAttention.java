package org.mmfuse.nn;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.mmfuse.AttentionOptions;
import org.mmfuse.AttentionResult;
import org.mmfuse.Ops;
import org.mmfuse.SequencePooling;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;

/**
 * {@code nn.MultiheadAttention(embed_dim, num_heads, kdim=, vdim=, bias=, batch_first=True)} at
 * inference: queries of one modality [B, Lq, E] attend to keys [B, Lk, kdim] and values [B, Lk, vdim]
 * of another. The query and output projections go through {@link Ops#linear} (the shared GEMM), the
 * key and value projections and the heads through {@link Ops#projectedAttention} on the packed
 * [B, L, H*Dh] layout (which may fold those projections into the attention), so the module runs
 * wherever those run.
 *
 * <p>Weights come from a PyTorch state dict by PyTorch's names: {@code in_proj_weight} [3E, E] when
 * kdim == vdim == E, else {@code q_proj_weight} [E, E], {@code k_proj_weight} [E, kdim],
 * {@code v_proj_weight} [E, vdim]; {@code in_proj_bias} [3E] and {@code out_proj.bias} [E] when
 * bias=True; {@code out_proj.weight} [E, E]. The module owns copies of them: close it when done.
 * On the CUDA backend the key padding mask is inverted and the weights averaged over heads on the
 * host (small next to the attention; those two paths have not yet run on a GPU).
 */
public final class MultiHeadCrossAttention implements AutoCloseable {
    /** How state-dict errors name this module. */
    private static final String NAME = "MultiHeadCrossAttention";

    private final Ops ops;
    private final int embedDim, heads, queryDim, keyDim, valueDim; // queryDim: embedDim unless an encoder is folded in
    private final Tensor qWeight, kWeight, vWeight, outWeight;
    private final Tensor qBias, kBias, vBias, outBias; // null without bias

    private MultiHeadCrossAttention(Ops ops, int embedDim, int heads, int queryDim, int keyDim, int valueDim,
            Tensor[] weights, Tensor[] biases) {
        this.ops = ops;
        this.embedDim = embedDim;
        this.heads = heads;
        this.queryDim = queryDim;
        this.keyDim = keyDim;
        this.valueDim = valueDim;
        qWeight = weights[0];
        kWeight = weights[1];
        vWeight = weights[2];
        outWeight = weights[3];
        qBias = biases[0];
        kBias = biases[1];
        vBias = biases[2];
        outBias = biases[3];
    }

    /**
     * Builds the module from PyTorch state-dict tensors (host or on the backend's device), checking
     * every name and shape; the tensors are copied, the map is left as it was.
     *
     * @throws IllegalArgumentException naming a missing, unexpected or misshapen tensor
     */
    public static MultiHeadCrossAttention fromStateDict(Ops ops, Map<String, Tensor> state, int embedDim, int heads,
            int keyDim, int valueDim, boolean bias) {
        Objects.requireNonNull(ops, "ops");
        Objects.requireNonNull(state, "state");
        if (embedDim <= 0 || heads <= 0 || embedDim % heads != 0 || keyDim <= 0 || valueDim <= 0) {
            throw new IllegalArgumentException("MultiHeadCrossAttention: embedDim " + embedDim + " must be a positive"
                    + " multiple of heads " + heads + ", kdim " + keyDim + " and vdim " + valueDim + " positive");
        }
        boolean packed = keyDim == embedDim && valueDim == embedDim && state.containsKey("in_proj_weight");
        List<String> expected = new java.util.ArrayList<>(packed ? List.of("in_proj_weight", "out_proj.weight")
                : List.of("q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"));
        if (bias) expected.addAll(List.of("in_proj_bias", "out_proj.bias"));
        StateDicts.onlyExpected(NAME, state, expected);
        Tensor[] weights = new Tensor[4], biases = new Tensor[4];
        try {
            if (packed) {
                splitRows(ops, StateDicts.checked(NAME, state, "in_proj_weight", 3L * embedDim, embedDim), embedDim,
                        weights);
            } else {
                weights[0] = StateDicts.checked(NAME, state, "q_proj_weight", embedDim, embedDim).to(ops.device());
                weights[1] = StateDicts.checked(NAME, state, "k_proj_weight", embedDim, keyDim).to(ops.device());
                weights[2] = StateDicts.checked(NAME, state, "v_proj_weight", embedDim, valueDim).to(ops.device());
            }
            weights[3] = StateDicts.checked(NAME, state, "out_proj.weight", embedDim, embedDim).to(ops.device());
            if (bias) {
                splitRows(ops, StateDicts.checked(NAME, state, "in_proj_bias", 3L * embedDim), embedDim, biases);
                biases[3] = StateDicts.checked(NAME, state, "out_proj.bias", embedDim).to(ops.device());
            }
            ops.synchronize(); // the split weights are ready before another thread uses the module
            return new MultiHeadCrossAttention(ops, embedDim, heads, embedDim, keyDim, valueDim, weights, biases);
        } catch (RuntimeException e) {
            for (Tensor t : weights) if (t != null) t.close();
            for (Tensor t : biases) if (t != null) t.close();
            throw e;
        }
    }

    /**
     * This module with linear encoders folded into its input projections: a new module (this one stays as
     * it is) whose queries come from the query encoder's inputs and whose keys and values from the
     * context encoder's, W' = W W_enc and b' = W b_enc + b for each projection; either encoder may be
     * null (not folded). One projection of the raw features instead of two (and, with the Vector
     * backend's fold, products with the raw context in place of projecting every position).
     */
    MultiHeadCrossAttention afterEncoders(Linear queryEncoder, Linear contextEncoder) {
        Tensor[] weights = new Tensor[4], biases = new Tensor[4];
        try {
            weights[0] = composed(qWeight, queryEncoder);
            biases[0] = composedBias(qWeight, qBias, queryEncoder);
            weights[1] = composed(kWeight, contextEncoder);
            biases[1] = composedBias(kWeight, kBias, contextEncoder);
            weights[2] = composed(vWeight, contextEncoder);
            biases[2] = composedBias(vWeight, vBias, contextEncoder);
            weights[3] = outWeight.to(ops.device());
            biases[3] = outBias == null ? null : outBias.to(ops.device());
            ops.synchronize(); // ready before another thread uses the module
            int queries = (int) weights[0].size(1), keys = (int) weights[1].size(1), values = (int) weights[2].size(1);
            return new MultiHeadCrossAttention(ops, embedDim, heads, queries, keys, values, weights, biases);
        } catch (RuntimeException e) {
            for (Tensor t : weights) if (t != null) t.close();
            for (Tensor t : biases) if (t != null) t.close();
            throw e;
        }
    }

    /** W W_enc [E, encoder input], or a copy of W without an encoder. */
    private Tensor composed(Tensor weight, Linear encoder) {
        return encoder == null ? weight.to(ops.device()) : ops.matmul(weight, encoder.weight());
    }

    /** W b_enc + b [E], or a copy of b (null without a bias) without an encoder. */
    private Tensor composedBias(Tensor weight, Tensor bias, Linear encoder) {
        if (encoder == null || encoder.bias() == null) return bias == null ? null : bias.to(ops.device());
        long out = weight.size(0);
        try (Tensor row = ops.linear(encoder.bias().view(1, encoder.bias().size(0)), weight, bias)) {
            return row.view(out).to(ops.device());
        }
    }

    /** PyTorch's packed q, k, v rows [3E, ...] as three tensors on the backend's device, into into[0..2]. */
    private static void splitRows(Ops ops, Tensor packed, int rows, Tensor[] into) {
        try (Tensor onDevice = packed.to(ops.device())) {
            List<Tensor> parts = ops.split(onDevice, rows, 0);
            for (int i = 0; i < 3; i++) into[i] = parts.get(i);
        }
    }

    /**
     * The forward pass. {@code keyPaddingMask} [B, Lk] follows {@code nn.MultiheadAttention}: non-zero
     * marks a key to IGNORE (the opposite of {@link AttentionOptions#keyPaddingMask}); null for none.
     * A query whose keys are all ignored attends to nothing: zeros before the output projection, so
     * the output bias after it (PyTorch gives NaN).
     *
     * @param needWeights also return the attention weights
     * @param averageWeights average them over heads (PyTorch's default) instead of per head
     * @return the output [B, Lq, E] and, on request, the weights, averaged [B, Lq, Lk] or per head
     *     [B, H, Lq, Lk]; no log-sum-exp
     */
    public AttentionResult forward(Tensor query, Tensor key, Tensor value, Tensor keyPaddingMask, boolean needWeights,
            boolean averageWeights) {
        checkLast("query", query, queryDim);
        checkLast("key", key, keyDim);
        checkLast("value", value, valueDim);
        try (Tensor attend = keyPaddingMask == null ? null : invert(keyPaddingMask, ops)) {
            return run(query, key, value, attend, needWeights, averageWeights);
        }
    }

    /**
     * The output [B, Lq, E] with the mask in {@link AttentionOptions#keyPaddingMask}'s convention
     * (non-zero = attend, used as given: no host round trip), for the fusion layers.
     */
    Tensor forwardAttending(Tensor query, Tensor key, Tensor value, Tensor attendMask) {
        checkLast("query", query, queryDim);
        checkLast("key", key, keyDim);
        checkLast("value", value, valueDim);
        return run(query, key, value, attendMask, false, false).output(); // no weights, no lse: nothing else to close
    }

    /**
     * The output averaged over each batch element's queries that {@code queryMask} [B, Lq] keeps
     * (non-zero; null keeps all), [B, E], zeros where it keeps none: what {@code poolSequence(...,
     * MEAN)} of {@link #forwardAttending} gives, computed as the mean of the attention before the output
     * projection (which is linear), through {@link Ops#projectedAttentionMean}.
     */
    Tensor forwardMean(Tensor query, Tensor key, Tensor value, Tensor attendMask, Tensor queryMask) {
        checkLast("query", query, queryDim);
        checkLast("key", key, keyDim);
        checkLast("value", value, valueDim);
        AttentionOptions options = AttentionOptions.DEFAULT.heads(heads).keyPaddingMask(attendMask);
        Tensor out;
        try (Tensor q = ops.linear(query, qWeight, qBias);
                Tensor mean = ops.projectedAttentionMean(q, key, kWeight, kBias, value, vWeight, vBias, queryMask, options)) {
            out = ops.linear(mean, outWeight, outBias);
        }
        if (queryMask == null || outBias == null) return out;
        // a batch element with no kept query pools to zeros, not to the output bias: the largest kept mask
        // entry (non-zero, or 0 when none is kept) marks the elements that have one
        long batch = queryMask.size(0), length = queryMask.size(1);
        try (out; Tensor any = ops.poolSequence(queryMask.view(batch, length, 1), queryMask, SequencePooling.MAX)) {
            return ops.fillAbsent(out, any.view(batch), null);
        }
    }

    private AttentionResult run(Tensor query, Tensor key, Tensor value, Tensor attend, boolean needWeights,
            boolean averageWeights) {
        Tensor weights = null;
        try (Tensor q = ops.linear(query, qWeight, qBias)) {
            AttentionOptions options = AttentionOptions.DEFAULT.heads(heads).keyPaddingMask(attend);
            if (needWeights) options = options.withWeights();
            try (AttentionResult r = ops.projectedAttention(q, key, kWeight, kBias, value, vWeight, vBias, options)) {
                if (needWeights) weights = averageWeights ? averageHeads(r.weights(), ops) : r.weights().to(ops.device());
                return new AttentionResult(ops.linear(r.output(), outWeight, outBias), null, weights);
            }
        } catch (RuntimeException e) {
            if (weights != null) weights.close();
            throw e;
        }
    }

    private static void checkLast(String name, Tensor t, int size) {
        Objects.requireNonNull(t, "MultiHeadCrossAttention: " + name + " is null");
        if (t.rank() != 3 || t.size(2) != size) {
            throw new IllegalArgumentException("MultiHeadCrossAttention: " + name + " must be [B, L, " + size + "], got "
                    + Shapes.toString(t.shape()));
        }
    }

    /** PyTorch's "true = ignore" mask as attention's "non-zero = attend", on the backend's device. */
    private static Tensor invert(Tensor ignore, Ops ops) {
        float[] in = hostValues(ignore), out = new float[in.length];
        for (int i = 0; i < in.length; i++) out[i] = in[i] != 0f ? 0f : 1f;
        return onDevice(Tensor.of(out, ignore.shape()), ops);
    }

    /** [B, H, Lq, Lk] -> [B, Lq, Lk], the mean over heads, on the backend's device. */
    private static Tensor averageHeads(Tensor perHead, Ops ops) {
        long[] s = perHead.shape();
        int b = (int) s[0], h = (int) s[1], lq = (int) s[2], lk = (int) s[3];
        float[] in = hostValues(perHead), out = new float[b * lq * lk];
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                int from = (bi * h + hi) * lq * lk, to = bi * lq * lk;
                for (int x = 0; x < lq * lk; x++) out[to + x] += in[from + x] / h;
            }
        }
        return onDevice(Tensor.of(out, b, lq, lk), ops);
    }

    /** A tensor's values on the host: its own array there, a copy from a device. */
    private static float[] hostValues(Tensor t) {
        return t.device().isCpu() ? t.array() : t.toArray();
    }

    /** {@code host} itself on a CPU backend, else a copy on the backend's device (closing {@code host}). */
    private static Tensor onDevice(Tensor host, Ops ops) {
        if (ops.device().isCpu()) return host;
        try (host) {
            return host.to(ops.device());
        }
    }

    @Override
    public void close() {
        for (Tensor t : new Tensor[] {qWeight, kWeight, vWeight, outWeight, qBias, kBias, vBias, outBias}) {
            if (t != null) t.close();
        }
    }
}
