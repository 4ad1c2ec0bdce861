package org.mmfuse.nn;

import static org.mmfuse.nn.Fusions.POWER_NORM;
import static org.mmfuse.nn.Fusions.activated;
import static org.mmfuse.nn.Fusions.dim;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Activation;
import org.mmfuse.CountSketch;
import org.mmfuse.PoolingOptions;
import org.mmfuse.Tensor;

/**
 * Fusions built on full or compact bilinear products: Tucker and BlockTucker (nn.Bilinear cores),
 * MCB (compact bilinear pooling), full bilinear pooling of two feature maps, and the Tensor Fusion
 * Network's outer product.
 */
final class BilinearFusions {
    private BilinearFusions() {}

    static Plan<Fusion> tucker(Options o, List<Port> in) {
        Fusions.vectors(o, in, 2, 2);
        int out = o.positive("output_dim", null), mm = o.positive("mm_dim", 1600);
        o.bool("shared", false); // block.bootstrap's Tucker re-creates linear1 after sharing it: always two
        boolean normalize = o.bool("normalize", false);
        Fusions.dropouts(o, "dropout_input", "dropout_pre_lin", "dropout_output");
        Plan<Fusion> plan = new Plan<Fusion>(new Port(out, false)).linear("linear0", dim(in, 0), mm, true)
                .linear("linear1", dim(in, 1), mm, true).parameter("bilinear.weight", mm, mm, mm)
                .parameter("bilinear.bias", mm).linear("linear_out", mm, out, true);
        return plan.builder(p -> {
            Linear l0 = p.linear("linear0"), l1 = p.linear("linear1"), lOut = p.linear("linear_out");
            Tensor w = p.device("bilinear.weight"), b = p.device("bilinear.bias");
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor z = t.add(ops.bilinear(t.add(l0.apply(ops, xs.get(0))), t.add(l1.apply(ops, xs.get(1))), w, b));
                    if (normalize) z = t.add(ops.normalizeRows(z, POWER_NORM));
                    return lOut.apply(ops, z);
                }
            };
        });
    }

    /** BlockTucker: per chunk, an nn.Bilinear(size, size, size) named bilinears.c. */
    static Plan<Fusion> blockTucker(Options o, List<Port> in) {
        return Fusions.chunked(o, in, new Fusions.ChunkCore() {
            @Override
            public void declare(Plan<Fusion> plan, int c, long size) {
                plan.parameter("bilinears." + c + ".weight", size, size, size).parameter("bilinears." + c + ".bias", size);
            }

            @Override
            public Fusions.ChunkProduct build(Params p, int c) {
                Tensor w = p.device("bilinears." + c + ".weight"), bias = p.device("bilinears." + c + ".bias");
                return (ops, a, b, t) -> t.add(ops.bilinear(a, b, w, bias));
            }
        });
    }

    /** block.bootstrap's MCB: compact bilinear pooling with the module's own hashes, then linear_out. */
    static Plan<Fusion> mcb(Options o, List<Port> in) {
        int out = o.positive("output_dim", null), mm = o.positive("mm_dim", 16000);
        Activation activOut = o.activation("activ_output", Activation.RELU);
        Fusions.dropouts(o, "dropout_output");
        if (in.size() != 2 || in.get(0).sequence() != in.get(1).sequence()) {
            throw o.failure("takes two vectors or two sequences, got " + in);
        }
        Plan<Fusion> plan = new Plan<Fusion>(new Port(out, false)).indexParameter("mcb.sketch1.h", dim(in, 0))
                .parameter("mcb.sketch1.s", dim(in, 0)).indexParameter("mcb.sketch2.h", dim(in, 1))
                .parameter("mcb.sketch2.s", dim(in, 1)).linear("linear_out", mm, out, true);
        return plan.builder(p -> {
            CountSketch s1 = CountSketch.of(p.host("mcb.sketch1.h"), p.host("mcb.sketch1.s"), mm);
            CountSketch s2 = CountSketch.of(p.host("mcb.sketch2.h"), p.host("mcb.sketch2.s"), mm);
            Linear lOut = p.linear("linear_out");
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor x = xs.get(0), y = xs.get(1);
                    if (x.rank() == 3) {
                        x = Fusions.zeroMasked(ops, x, masks.get(0), t);
                        y = Fusions.zeroMasked(ops, y, masks.get(1), t);
                    }
                    Tensor z = t.add(ops.compactBilinearPool(x, y, s1, s2, PoolingOptions.NONE));
                    return t.keep(activated(ops, t.add(lOut.apply(ops, z)), activOut, t));
                }
            };
        });
    }

    /** Full bilinear pooling of two feature maps over their kept positions, optionally projected. */
    static Plan<Fusion> bilinearPool(Options o, List<Port> in) {
        if (in.size() != 2 || !in.get(0).sequence() || !in.get(1).sequence()) {
            throw o.failure("takes two sequences [B, N, C] (feature maps), got " + in);
        }
        PoolingOptions pooling = PoolingOptions.NONE.mean(o.bool("mean", true)).l2Normalize(o.bool("l2", true));
        double eps = o.number("eps", 1e-12);
        if (o.bool("signed_sqrt", true)) pooling = pooling.signedSqrt(eps);
        long pooled = dim(in, 0) * dim(in, 1);
        boolean project = o.has("output_dim");
        int out = project ? o.positive("output_dim", null) : 0;
        Plan<Fusion> plan = new Plan<>(new Port(project ? out : pooled, false));
        if (project) plan.linear("linear_out", pooled, out, true);
        PoolingOptions finish = pooling;
        return plan.builder(p -> {
            Linear lOut = project ? p.linear("linear_out") : null;
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    Tensor x = Fusions.zeroMasked(ops, xs.get(0), masks.get(0), t);
                    Tensor y = Fusions.zeroMasked(ops, xs.get(1), masks.get(1), t);
                    Tensor z = ops.bilinearPool(x, y, finish);
                    if (lOut == null) return z;
                    return lOut.apply(ops, t.add(z));
                }
            };
        });
    }

    /**
     * Zadeh et al.'s Tensor Fusion Network: the flattened outer product of [1; x_m] over 2 or 3 vectors
     * (x_0's index outermost), then an MLP ({@code mlp.linears.<j>}, its last layer to output_dim).
     */
    static Plan<Fusion> tfn(Options o, List<Port> in) {
        Fusions.vectors(o, in, 2, 3);
        int out = o.positive("output_dim", null);
        List<Integer> dims = new ArrayList<>(o.positiveList("dimensions", List.of(128)));
        Activation activation = o.activation("activation", Activation.RELU);
        Fusions.dropouts(o, "dropout");
        long[] widths = new long[in.size()];
        for (int m = 0; m < widths.length; m++) widths[m] = dim(in, m) + 1;
        long product = org.mmfuse.Shapes.numel("fusion tfn: the outer product of the inputs' widths + 1", widths);
        dims.add(out);
        return Fusions.throughMlp(product, dims, activation, (ops, xs, t) -> {
            long batch = xs.get(0).size(0);
            float[] ones = new float[(int) batch];
            java.util.Arrays.fill(ones, 1f);
            Tensor one = t.upload(ops, ones, batch, 1);
            Tensor z = null;
            for (Tensor x : xs) {
                Tensor lifted = t.add(ops.concat(List.of(one, x), 1));
                z = z == null ? lifted : t.add(ops.bilinearPool(z.view(batch, 1, z.size(1)),
                        lifted.view(batch, 1, lifted.size(1)), PoolingOptions.NONE));
            }
            return z;
        });
    }
}
