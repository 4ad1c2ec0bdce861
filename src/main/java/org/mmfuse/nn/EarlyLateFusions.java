package org.mmfuse.nn;

import static org.mmfuse.nn.Fusions.dim;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Activation;
import org.mmfuse.Tensor;

/** Early fusion (concatenation and an MLP), the gated multimodal unit, and late fusion of per-modality scores. */
final class EarlyLateFusions {
    private EarlyLateFusions() {}

    /** block.bootstrap's ConcatMLP on vectors: the inputs side by side through {@code mlp} (dimensions + [output_dim]). */
    static Plan<Fusion> concatMlp(Options o, List<Port> in) {
        Fusions.vectors(o, in, 1, Integer.MAX_VALUE);
        int out = o.positive("output_dim", null);
        List<Integer> dims = new ArrayList<>(o.positiveList("dimensions", List.of(500, 500)));
        Activation activation = o.activation("activation", Activation.RELU);
        Fusions.dropouts(o, "dropout");
        long width = 0;
        for (Port p : in) width += p.dim();
        dims.add(out);
        return Fusions.throughMlp(width, dims, activation, (ops, xs, t) -> t.add(ops.concat(xs, 1)));
    }

    /**
     * Arevalo et al.'s gated multimodal unit. Two vectors: h = z tanh(W0 x0) + (1 - z) tanh(W1 x1) with the
     * gate z = sigmoid(Wz [x0; x1]) (tensors hidden0, hidden1, gate), computed as h1 + z (h0 - h1). More
     * inputs (the paper's extension): h = Σ_i z_i tanh(W_i x_i), z_i = sigmoid(W_zi [x_0; ...]) (tensors
     * hidden<i>, gate<i>).
     */
    static Plan<Fusion> gmu(Options o, List<Port> in) {
        Fusions.vectors(o, in, 2, 3);
        int out = o.positive("output_dim", null);
        boolean bias = o.bool("bias", false);
        long joined = 0;
        for (Port p : in) joined += p.dim();
        Plan<Fusion> plan = new Plan<>(new Port(out, false));
        for (int i = 0; i < in.size(); i++) plan.linear("hidden" + i, dim(in, i), out, bias);
        if (in.size() == 2) {
            plan.linear("gate", joined, out, bias);
        } else {
            for (int i = 0; i < in.size(); i++) plan.linear("gate" + i, joined, out, bias);
        }
        return plan.builder(p -> {
            List<Linear> hidden = new ArrayList<>(), gates = new ArrayList<>();
            for (int i = 0; i < in.size(); i++) hidden.add(p.linear("hidden" + i));
            if (in.size() == 2) {
                gates.add(p.linear("gate"));
            } else {
                for (int i = 0; i < in.size(); i++) gates.add(p.linear("gate" + i));
            }
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor joint = t.add(ops.concat(xs, 1));
                    List<Tensor> h = new ArrayList<>(), z = new ArrayList<>();
                    for (int i = 0; i < xs.size(); i++) h.add(t.add(ops.activation(t.add(hidden.get(i).apply(ops, xs.get(i))), Activation.TANH)));
                    for (Linear g : gates) z.add(t.add(ops.activation(t.add(g.apply(ops, joint)), Activation.SIGMOID)));
                    if (xs.size() == 2) {
                        return ops.add(h.get(1), t.add(ops.multiply(z.get(0), t.add(ops.subtract(h.get(0), h.get(1))))));
                    }
                    Tensor sum = t.add(ops.multiply(z.get(0), h.get(0)));
                    for (int i = 1; i < xs.size(); i++) {
                        Tensor next = ops.add(sum, t.add(ops.multiply(z.get(i), h.get(i))));
                        sum = i == xs.size() - 1 ? next : t.add(next);
                    }
                    return sum;
                }
            };
        });
    }

    /**
     * Late fusion of per-modality scores [B, K]: per sample, the weighted mean over the modalities present
     * of their logits (mean_logits), their softmax probabilities (mean_probs) or their one-hot argmax votes
     * (vote: the result holds each class's weighted share of the votes; ties go to the lower class).
     * Weights are fixed (a list; equal by default) or learned (a {@code weights} [M] tensor), used as they
     * are and normalised over the modalities present. A sample with none present gets zeros.
     */
    static Plan<Fusion> late(Options o, List<Port> in) {
        Fusions.vectors(o, in, 1, Integer.MAX_VALUE);
        String combine = o.choice("combine", "mean_logits", "mean_logits", "mean_probs", "vote");
        long classes = dim(in, 0);
        for (Port p : in) {
            if (p.dim() != classes) throw o.failure("every input must score the same " + classes + " classes, got " + in);
        }
        int m = in.size();
        Object given = o.raw("weights");
        boolean learned = "learned".equals(given);
        double[] fixed = new double[m];
        java.util.Arrays.fill(fixed, 1);
        if (given != null && !learned) {
            if (!(given instanceof List) || ((List<?>) given).size() != m) {
                throw o.error("weights", "must be \"learned\" or " + m + " numbers, got " + given);
            }
            for (int i = 0; i < m; i++) {
                Object w = ((List<?>) given).get(i);
                double v = w instanceof Number ? ((Number) w).doubleValue() : Double.NaN;
                if (!(v >= 0) || Double.isInfinite(v)) throw o.error("weights", "must hold finite numbers >= 0, got " + given);
                fixed[i] = v;
            }
        }
        Plan<Fusion> plan = new Plan<>(new Port(classes, false));
        if (learned) plan.parameter("weights", m);
        return plan.builder(p -> {
            double[] weights = fixed.clone();
            if (learned) {
                float[] w = p.host("weights").array();
                for (int i = 0; i < m; i++) {
                    if (!(w[i] >= 0) || Float.isInfinite(w[i])) {
                        throw o.failure("learned weights must be finite numbers >= 0, as fixed ones, got "
                                + java.util.Arrays.toString(w));
                    }
                    weights[i] = w[i];
                }
            }
            return (ops, xs, masks, present) -> {
                int batch = (int) xs.get(0).size(0);
                float[] rowWeights = new float[batch * m];
                for (int b = 0; b < batch; b++) {
                    double total = 0;
                    for (int i = 0; i < m; i++) if (present.get(i) == null || present.get(i)[b]) total += weights[i];
                    for (int i = 0; i < m; i++) {
                        boolean here = present.get(i) == null || present.get(i)[b];
                        rowWeights[b * m + i] = here && total != 0 ? (float) (weights[i] / total) : 0f;
                    }
                }
                try (Temporaries t = new Temporaries()) {
                    List<Tensor> scores = new ArrayList<>();
                    for (Tensor x : xs) {
                        scores.add(combine.equals("mean_logits") ? x : combine.equals("mean_probs") ? t.add(ops.softmax(x))
                                : votes(ops, x, t));
                    }
                    return ops.weightedSum(scores, t.upload(ops, rowWeights, batch, m));
                }
            };
        });
    }

    /**
     * One-hot rows of each sample's highest score (the lowest class on ties; NaN never wins), on the
     * backend's device, closed with t.
     */
    private static Tensor votes(org.mmfuse.Ops ops, Tensor x, Temporaries t) {
        int batch = (int) x.size(0), classes = (int) x.size(1);
        float[] s = x.device().isCpu() ? x.array() : x.toArray(), out = new float[s.length];
        for (int b = 0; b < batch; b++) {
            int best = -1;
            for (int k = 0; k < classes; k++) {
                float v = s[b * classes + k];
                if (!Float.isNaN(v) && (best < 0 || v > s[b * classes + best])) best = k;
            }
            if (best >= 0) out[b * classes + best] = 1f;
        }
        return t.upload(ops, out, batch, classes);
    }
}
