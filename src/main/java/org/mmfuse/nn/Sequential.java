package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Activation;
import org.mmfuse.Ops;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;

/** Encoders and heads: {@link LayerSpec} steps applied in order. */
final class Sequential {
    /** One built step: x (and, for sequences, its mask [B, N] or null) to a new tensor, or x itself. */
    interface Step {
        Tensor apply(Ops ops, Tensor x, Tensor mask);
    }

    /** No step: the input itself. */
    static final Sequential IDENTITY = new Sequential(List.of());

    private final List<Step> steps;

    private Sequential(List<Step> steps) {
        this.steps = steps;
    }

    /** The plan of {@code specs} on {@code input}; {@code where} names the Sequential in messages. */
    static Plan<Sequential> plan(String where, List<LayerSpec> specs, Port input) {
        List<Plan<Step>> plans = new ArrayList<>();
        Port at = input;
        for (int i = 0; i < specs.size(); i++) {
            Plan<Step> p = step(where + "[" + i + "] " + specs.get(i).type(), specs.get(i), at);
            plans.add(p);
            at = p.output;
        }
        Plan<Sequential> plan = new Plan<>(at);
        for (int i = 0; i < plans.size(); i++) plan.include(i + ".", plans.get(i));
        return plan.builder(params -> {
            List<Step> steps = new ArrayList<>();
            for (int i = 0; i < plans.size(); i++) steps.add(plans.get(i).build(params.scope(Integer.toString(i))));
            return new Sequential(steps);
        });
    }

    /** x through every step; intermediate tensors are closed, x is not; the result may be x itself. */
    Tensor apply(Ops ops, Tensor x, Tensor mask) {
        Tensor at = x;
        try {
            for (Step step : steps) {
                Tensor next = step.apply(ops, at, mask);
                if (at != x && next != at) at.close();
                at = next;
            }
            return at;
        } catch (RuntimeException | Error e) {
            if (at != x) at.close();
            throw e;
        }
    }

    boolean isEmpty() {
        return steps.isEmpty();
    }

    private static Plan<Step> step(String where, LayerSpec spec, Port in) {
        Options o = new Options(where, spec.options());
        Plan<Step> plan;
        switch (spec.type()) {
            case "linear": {
                int out = o.positive("out", null);
                o.mustMatch("in", in.dim());
                plan = new Plan<Step>(new Port(out, in.sequence())).linear("", in.dim(), out, o.bool("bias", true));
                plan.builder(p -> {
                    Linear l = p.linear("");
                    return (ops, x, mask) -> l.apply(ops, x);
                });
                break;
            }
            case "layer_norm": {
                double eps = o.number("eps", 1e-5);
                if (!(eps > 0)) throw o.error("eps", "must be > 0, got " + eps);
                boolean affine = o.bool("elementwise_affine", true);
                plan = new Plan<>(in);
                if (affine) plan.parameter("weight", in.dim()).parameter("bias", in.dim());
                plan.builder(p -> {
                    Tensor w = affine ? p.device("weight") : null, b = affine ? p.device("bias") : null;
                    return (ops, x, mask) -> ops.layerNorm(x, w, b, eps);
                });
                break;
            }
            case "relu": case "tanh": case "sigmoid": case "gelu": {
                Activation a = Activation.valueOf(spec.type().toUpperCase());
                plan = new Plan<Step>(in).builder(p -> (ops, x, mask) -> ops.activation(x, a));
                break;
            }
            case "softmax": {
                plan = new Plan<Step>(in).builder(p -> (ops, x, mask) -> ops.softmax(x));
                break;
            }
            case "dropout": {
                double rate = o.number("p", 0.5);
                if (!(rate >= 0 && rate < 1)) throw o.error("p", "must be in [0, 1), got " + rate);
                plan = new Plan<Step>(in).builder(p -> (ops, x, mask) -> x);
                break;
            }
            case "pool": {
                SequencePooling mode = SequencePooling.valueOf(o.choice("mode", "mean", "mean", "sum", "max", "first")
                        .toUpperCase());
                if (!in.sequence()) throw new IllegalArgumentException(where + ": pools a sequence, but its input is " + in);
                plan = new Plan<Step>(new Port(in.dim(), false)).builder(p -> (ops, x, mask) -> ops.poolSequence(x, mask, mode));
                break;
            }
            case "mlp": {
                List<Integer> dims = o.positiveList("dimensions", null);
                if (dims.isEmpty()) throw o.error("dimensions", "is empty");
                Activation a = o.activation("activation", Activation.RELU);
                o.number("dropout", 0);
                Plan<Mlp> mlp = Mlp.plan(in, dims, a);
                plan = new Plan<>(mlp.output);
                plan.include("", mlp);
                plan.builder(p -> {
                    Mlp m = mlp.build(p);
                    return m::apply;
                });
                break;
            }
            default:
                throw new IllegalArgumentException(where + ": unknown layer type '" + spec.type()
                        + "' (linear, layer_norm, relu, tanh, sigmoid, gelu, softmax, dropout, pool, mlp)");
        }
        o.checkAllRead();
        return plan;
    }
}
