package org.mmfuse.nn;

import static org.mmfuse.nn.Fusions.dim;

import java.util.List;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;

/**
 * Attention between modalities as fusion layers: cross-attention (the first input's positions query the
 * second's) and co-attention (both directions, as in ViLBERT's co-attentional layers), each
 * {@code nn.MultiheadAttention} followed by pooling over the querying positions.
 */
final class AttentionFusions {
    private AttentionFusions() {}

    /** cross_attention (one direction, {@code attention.*}) or co_attention (both: {@code a_to_b.*}, {@code b_to_a.*}). */
    static Plan<Fusion> crossAttention(Options o, List<Port> in, boolean both) {
        if (in.size() != 2) throw o.failure("takes two inputs, got " + in);
        int heads = o.positive("num_heads", null);
        boolean bias = o.bool("bias", true);
        SequencePooling pool = SequencePooling.valueOf(o.choice("pool", "mean", "mean", "sum", "max", "first").toUpperCase());
        boolean product = both && o.choice("combine", "concat", "concat", "product").equals("product");
        Fusions.dropouts(o, "dropout");
        long a = dim(in, 0), b = dim(in, 1);
        for (long e : both ? new long[] {a, b} : new long[] {a}) {
            if (e % heads != 0) throw o.error("num_heads", heads + " must divide the querying width " + e + " (" + in + ")");
        }
        if (product && a != b) throw o.error("combine", "product needs inputs of one width, got " + in);
        Plan<Fusion> plan = new Plan<>(new Port(both && !product ? a + b : a, false));
        declareAttention(plan, both ? "a_to_b." : "attention.", a, b, bias);
        if (both) declareAttention(plan, "b_to_a.", b, a, bias);
        if (!both && pool == SequencePooling.MEAN) {
            // Averaged over the queries, the attention needs one row of values per head: with linear
            // encoders folded into the projections it reads the raw features, a few queries' worth of
            // products instead of encoding every position. Which costs less depends on the lengths, so
            // both forms are kept and each call takes the cheaper.
            plan.foldingEncoders((p, encoders) -> {
                MultiHeadCrossAttention plain = p.own(MultiHeadCrossAttention.fromStateDict(p.ops,
                        p.scope("attention").stateDict(), (int) a, heads, (int) b, (int) b, bias));
                MultiHeadCrossAttention folded = p.own(plain.afterEncoders(encoders.get(0), encoders.get(1)));
                Linear queryEncoder = encoders.get(0), contextEncoder = encoders.get(1);
                return (ops, xs, masks, present) -> {
                    Tensor x = Fusions.asSequence(xs.get(0)), y = Fusions.asSequence(xs.get(1));
                    if (foldingPays(x, y, queryEncoder, contextEncoder, a, b, heads)) {
                        return folded.forwardMean(x, y, y, masks.get(1), masks.get(0));
                    }
                    try (Temporaries t = new Temporaries()) {
                        Tensor queries = queryEncoder == null ? x : t.add(queryEncoder.apply(ops, x));
                        Tensor context = contextEncoder == null ? y : t.add(contextEncoder.apply(ops, y));
                        return plain.forwardMean(queries, context, context, masks.get(1), masks.get(0));
                    }
                };
            });
        }
        return plan.builder(p -> {
            MultiHeadCrossAttention ab = p.own(MultiHeadCrossAttention.fromStateDict(p.ops,
                    p.scope(both ? "a_to_b" : "attention").stateDict(), (int) a, heads, (int) b, (int) b, bias));
            MultiHeadCrossAttention ba = !both ? null : p.own(MultiHeadCrossAttention.fromStateDict(p.ops,
                    p.scope("b_to_a").stateDict(), (int) b, heads, (int) a, (int) a, bias));
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor x = Fusions.asSequence(xs.get(0)), y = Fusions.asSequence(xs.get(1));
                    Tensor xMask = masks.get(0), yMask = masks.get(1);
                    // a mean commutes with the output projection and the values: the modules pool first
                    boolean mean = pool == SequencePooling.MEAN;
                    Tensor fromX = mean ? ab.forwardMean(x, y, y, yMask, xMask)
                            : ops.poolSequence(t.add(ab.forwardAttending(x, y, y, yMask)), xMask, pool);
                    if (!both) return fromX;
                    t.add(fromX);
                    Tensor fromY = t.add(mean ? ba.forwardMean(y, x, x, xMask, yMask)
                            : ops.poolSequence(t.add(ba.forwardAttending(y, x, x, xMask)), yMask, pool));
                    return product ? ops.multiply(fromX, fromY) : ops.concat(List.of(fromX, fromY), 1);
                }
            };
        });
    }

    /**
     * Whether the folded form of a mean-pooled cross-attention costs fewer multiply-adds per batch element
     * than encoding first, for queries x [B, Lq, ...] over context y [B, Lk, ...] (raw where an encoder is
     * folded). Folded: the query projection from the raw queries, then per head Lq (Dh + Lk) products of
     * the raw context's width, and one row of values per head. Encoding first: the encoders, the query
     * projection, then the cheaper of the same fold at the encoded width and projecting every position.
     */
    private static boolean foldingPays(Tensor x, Tensor y, Linear queryEncoder, Linear contextEncoder, long embed,
            long encoded, int heads) {
        double lq = x.size(1), lk = y.size(1), queryWidth = x.size(2), width = y.size(2), dh = embed / heads;
        double folded = lq * queryWidth * embed + heads * lq * width * (dh + lk) + heads * width * (lk + dh);
        double encoders = (queryEncoder == null ? 0 : lq * queryWidth * embed) + (contextEncoder == null ? 0 : lk * width * encoded);
        double attention = Math.min(heads * lq * encoded * (dh + lk) + heads * encoded * (lk + dh),
                2 * lk * embed * encoded + 2 * heads * lq * lk * dh);
        return folded <= encoders + lq * embed * embed + attention;
    }

    /** nn.MultiheadAttention(embed, heads, kdim=vdim=context)'s tensors: packed in_proj_weight when context == embed. */
    private static void declareAttention(Plan<Fusion> plan, String prefix, long embed, long context, boolean bias) {
        if (context == embed) {
            plan.parameter(prefix + "in_proj_weight", 3 * embed, embed);
        } else {
            plan.parameter(prefix + "q_proj_weight", embed, embed).parameter(prefix + "k_proj_weight", embed, context)
                    .parameter(prefix + "v_proj_weight", embed, context);
        }
        if (bias) plan.parameter(prefix + "in_proj_bias", 3 * embed);
        plan.parameter(prefix + "out_proj.weight", embed, embed);
        if (bias) plan.parameter(prefix + "out_proj.bias", embed);
    }
}
