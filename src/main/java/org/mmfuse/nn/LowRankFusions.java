package org.mmfuse.nn;

import static org.mmfuse.nn.Fusions.POWER_NORM;
import static org.mmfuse.nn.Fusions.activated;
import static org.mmfuse.nn.Fusions.dim;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Activation;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.PoolingOptions;
import org.mmfuse.Tensor;

/**
 * Fusions that project both inputs and multiply them elementwise (low-rank bilinear models):
 * block.bootstrap's LinearSum (the additive baseline), MLB, MFB, MFH, Mutan and Block, and LMF. The
 * products and their group sums run in {@link org.mmfuse.Ops#factorizedPool}; sums strided over a rank
 * (Mutan, Block, LMF) are made consecutive by reordering the projections' rows at load.
 */
final class LowRankFusions {
    private LowRankFusions() {}

    static Plan<Fusion> linearSum(Options o, List<Port> in) {
        Fusions.vectors(o, in, 2, 2);
        int out = o.positive("output_dim", null), mm = o.positive("mm_dim", 1200);
        Activation activIn = o.activation("activ_input", Activation.RELU), activOut = o.activation("activ_output", Activation.RELU);
        boolean normalize = o.bool("normalize", false);
        Fusions.dropouts(o, "dropout_input", "dropout_pre_lin", "dropout_output");
        Plan<Fusion> plan = new Plan<Fusion>(new Port(out, false)).linear("linear0", dim(in, 0), mm, true)
                .linear("linear1", dim(in, 1), mm, true).linear("linear_out", mm, out, true);
        return plan.builder(p -> {
            Linear l0 = p.linear("linear0"), l1 = p.linear("linear1"), lOut = p.linear("linear_out");
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor x0 = activated(ops, t.add(l0.apply(ops, xs.get(0))), activIn, t);
                    Tensor x1 = activated(ops, t.add(l1.apply(ops, xs.get(1))), activIn, t);
                    Tensor z = t.add(ops.add(x0, x1));
                    if (normalize) z = t.add(ops.normalizeRows(z, POWER_NORM));
                    Tensor y = t.add(lOut.apply(ops, z));
                    return t.keep(activated(ops, y, activOut, t));
                }
            };
        });
    }

    /** MLB (one stage, no factor), MFB (one stage) and MFH (two) on {@link FactorizedFusion}. */
    static Plan<Fusion> factorized(Options o, List<Port> in, int stages, boolean hasFactor) {
        Fusions.vectors(o, in, 2, 2);
        int out = o.positive("output_dim", null), mm = o.positive("mm_dim", 1200);
        int factor = hasFactor ? o.positive("factor", 2) : 1;
        Activation activIn = o.activation("activ_input", Activation.RELU), activOut = o.activation("activ_output", Activation.RELU);
        boolean normalize = o.bool("normalize", false);
        Fusions.dropouts(o, "dropout_input", hasFactor && stages == 1 ? "dropout_pre_norm" : "dropout_pre_lin", "dropout_output");
        long units = (long) mm * factor;
        Plan<Fusion> plan = new Plan<>(new Port(out, false));
        for (int s = 0; s < stages; s++) {
            String suffix = stages == 1 ? "" : "_" + s;
            plan.linear("linear0" + suffix, dim(in, 0), units, true).linear("linear1" + suffix, dim(in, 1), units, true);
        }
        plan.linear("linear_out", (long) stages * mm, out, true);
        return plan.builder(p -> {
            FactorizedFusion f = FactorizedFusion.fromParams(p, stages, mm, factor, activIn, activOut, normalize);
            return (ops, xs, masks, present) -> f.forward(xs.get(0), xs.get(1));
        });
    }

    static Plan<Fusion> mutan(Options o, List<Port> in) {
        Fusions.vectors(o, in, 2, 2);
        int out = o.positive("output_dim", null), mm = o.positive("mm_dim", 1600), rank = o.positive("rank", 15);
        boolean shared = o.bool("shared", false), normalize = o.bool("normalize", false);
        Fusions.dropouts(o, "dropout_input", "dropout_pre_lin", "dropout_output");
        if (shared && dim(in, 0) != dim(in, 1)) throw o.error("shared", "needs inputs of one width, got " + in);
        Plan<Fusion> plan = new Plan<Fusion>(new Port(out, false)).linear("linear0", dim(in, 0), mm, true)
                .linear("merge_linear0", mm, (long) mm * rank, true);
        if (shared) {
            plan.sharedLinear("linear1", dim(in, 1), mm).sharedLinear("merge_linear1", mm, (long) mm * rank);
        } else {
            plan.linear("linear1", dim(in, 1), mm, true).linear("merge_linear1", mm, (long) mm * rank, true);
        }
        plan.linear("linear_out", mm, out, true);
        FactorizedPoolOptions pool = FactorizedPoolOptions.DEFAULT.factor(rank)
                .pooling(normalize ? POWER_NORM : PoolingOptions.NONE);
        return plan.builder(p -> {
            Linear l0 = p.linear("linear0"), l1 = shared ? l0 : p.linear("linear1"), lOut = p.linear("linear_out");
            Linear m0 = Fusions.interleavedLinear(p, "merge_linear0", rank);
            Linear m1 = shared ? m0 : Fusions.interleavedLinear(p, "merge_linear1", rank);
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor a = t.add(m0.apply(ops, t.add(l0.apply(ops, xs.get(0)))));
                    Tensor b = t.add(m1.apply(ops, t.add(l1.apply(ops, xs.get(1)))));
                    return lOut.apply(ops, t.add(ops.factorizedPool(a, b, pool)));
                }
            };
        });
    }

    /**
     * Block: per chunk, Linear layers merge_linears0.c / merge_linears1.c to size * rank units, their
     * product, sums over the rank (strided there, consecutive here after the rows' reordering).
     */
    static Plan<Fusion> block(Options o, List<Port> in) {
        int rank = o.positive("rank", 15);
        boolean shared = o.bool("shared", false);
        FactorizedPoolOptions pool = FactorizedPoolOptions.DEFAULT.factor(rank);
        return Fusions.chunked(o, in, new Fusions.ChunkCore() {
            @Override
            public void declare(Plan<Fusion> plan, int c, long size) {
                plan.linear("merge_linears0." + c, size, size * rank, true);
                if (shared) {
                    plan.sharedLinear("merge_linears1." + c, size, size * rank);
                } else {
                    plan.linear("merge_linears1." + c, size, size * rank, true);
                }
            }

            @Override
            public Fusions.ChunkProduct build(Params p, int c) {
                Linear m0 = Fusions.interleavedLinear(p, "merge_linears0." + c, rank);
                Linear m1 = shared ? m0 : Fusions.interleavedLinear(p, "merge_linears1." + c, rank);
                return (ops, a, b, t) -> t.add(ops.factorizedPool(t.add(m0.apply(ops, a)), t.add(m1.apply(ops, b)), pool));
            }
        });
    }

    /**
     * Liu et al.'s LMF: per modality m a factor [rank, C_m + 1, out] applied to [1; x_m], the products over
     * modalities, a weighted sum over the rank, plus a bias. [1; x] F is a Linear layer (row 0 of F the
     * bias), so each factor becomes one, its rows ordered (output, rank) and modality 0's scaled by the
     * rank's fusion weight, leaving the product and the rank sums to factorizedPool.
     */
    static Plan<Fusion> lmf(Options o, List<Port> in) {
        Fusions.vectors(o, in, 2, 3);
        int out = o.positive("output_dim", null), rank = o.positive("rank", 4);
        Fusions.dropouts(o, "dropout");
        Plan<Fusion> plan = new Plan<>(new Port(out, false));
        for (int m = 0; m < in.size(); m++) plan.parameter("factor" + m, rank, dim(in, m) + 1, out);
        plan.parameter("fusion_weights", 1, rank).parameter("fusion_bias", 1, out);
        FactorizedPoolOptions pool = FactorizedPoolOptions.DEFAULT.factor(rank);
        return plan.builder(p -> {
            float[] weights = p.host("fusion_weights").array();
            List<Linear> factors = new ArrayList<>();
            for (int m = 0; m < in.size(); m++) factors.add(lmfFactor(p, "factor" + m, rank, out, m == 0 ? weights : null));
            Tensor bias = p.upload(Tensor.of(p.host("fusion_bias").array().clone(), out));
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor a = t.add(factors.get(0).apply(ops, xs.get(0))), b = t.add(factors.get(1).apply(ops, xs.get(1)));
                    if (xs.size() == 3) a = t.add(ops.multiply(a, t.add(factors.get(2).apply(ops, xs.get(2)))));
                    return ops.add(t.add(ops.factorizedPool(a, b, pool)), bias);
                }
            };
        });
    }

    /** Factor [rank, C + 1, out] as a Linear with rows o * rank + r, each scaled by scale[r] where given. */
    private static Linear lmfFactor(Params p, String name, int rank, int out, float[] scale) {
        Tensor f = p.host(name);
        int inputs = (int) f.size(1) - 1;
        float[] v = f.array(), w = new float[out * rank * inputs], b = new float[out * rank];
        for (int r = 0; r < rank; r++) {
            float s = scale == null ? 1f : scale[r];
            for (int o = 0; o < out; o++) {
                int row = o * rank + r;
                b[row] = v[(r * (inputs + 1)) * out + o] * s;
                for (int c = 0; c < inputs; c++) w[row * inputs + c] = v[(r * (inputs + 1) + 1 + c) * out + o] * s;
            }
        }
        return new Linear(p.upload(Tensor.of(w, (long) out * rank, inputs)), p.upload(Tensor.of(b, (long) out * rank)));
    }
}
