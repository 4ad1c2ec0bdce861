package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Activation;
import org.mmfuse.Ops;
import org.mmfuse.PoolingOptions;
import org.mmfuse.Tensor;

/** The fusion types by name, and what their plans share. */
final class Fusions {
    private Fusions() {}

    /** block.bootstrap's power normalisation: sqrt(relu(z)) - sqrt(relu(-z)) (no eps), then F.normalize. */
    static final PoolingOptions POWER_NORM = PoolingOptions.NONE.signedSqrt(0).l2Normalize(true);

    /** The plan of {@code spec} on the inputs. */
    static Plan<Fusion> plan(FusionSpec spec, List<Port> inputs) {
        String where = "fusion " + spec.type();
        Options o = new Options(where, spec.options());
        List<Long> dims = new ArrayList<>();
        for (Port p : inputs) dims.add(p.dim());
        o.mustMatch("input_dims", dims);
        Plan<Fusion> plan;
        switch (spec.type()) {
            case "concat_mlp": plan = EarlyLateFusions.concatMlp(o, inputs); break;
            case "gmu": plan = EarlyLateFusions.gmu(o, inputs); break;
            case "late": plan = EarlyLateFusions.late(o, inputs); break;
            case "linear_sum": plan = LowRankFusions.linearSum(o, inputs); break;
            case "mlb": plan = LowRankFusions.factorized(o, inputs, 1, false); break;
            case "mfb": plan = LowRankFusions.factorized(o, inputs, 1, true); break;
            case "mfh": plan = LowRankFusions.factorized(o, inputs, 2, true); break;
            case "mutan": plan = LowRankFusions.mutan(o, inputs); break;
            case "block": plan = LowRankFusions.block(o, inputs); break;
            case "lmf": plan = LowRankFusions.lmf(o, inputs); break;
            case "tucker": plan = BilinearFusions.tucker(o, inputs); break;
            case "block_tucker": plan = BilinearFusions.blockTucker(o, inputs); break;
            case "mcb": plan = BilinearFusions.mcb(o, inputs); break;
            case "bilinear_pool": plan = BilinearFusions.bilinearPool(o, inputs); break;
            case "tfn": plan = BilinearFusions.tfn(o, inputs); break;
            case "cross_attention": plan = AttentionFusions.crossAttention(o, inputs, false); break;
            case "co_attention": plan = AttentionFusions.crossAttention(o, inputs, true); break;
            default:
                throw new IllegalArgumentException("unknown fusion type '" + spec.type() + "' (concat_mlp, linear_sum, mlb,"
                        + " mfb, mfh, mutan, tucker, block, block_tucker, mcb, bilinear_pool, tfn, lmf, gmu, cross_attention,"
                        + " co_attention, late)");
        }
        o.checkAllRead();
        return plan;
    }

    /** Checks that there are min..max inputs, all vectors ([B, C]). */
    static void vectors(Options o, List<Port> inputs, int min, int max) {
        if (inputs.size() < min || inputs.size() > max) {
            throw o.failure("takes " + (min == max ? min : min + " to " + max) + " inputs, got " + inputs.size() + ": " + inputs);
        }
        for (Port p : inputs) {
            if (p.sequence()) {
                throw o.failure("fuses vectors [B, C]; pool the sequence input first (a pool step in its encoder), got " + inputs);
            }
        }
    }

    /** Reads the dropout options (the identity at inference), so that they are known and valid. */
    static void dropouts(Options o, String... keys) {
        for (String key : keys) {
            double p = o.number(key, 0);
            if (!(p >= 0 && p < 1)) throw o.error(key, "must be in [0, 1), got " + p);
        }
    }

    static long dim(List<Port> inputs, int i) {
        return inputs.get(i).dim();
    }

    /** The activation of x, a new tensor in {@code t}; x itself for NONE. */
    static Tensor activated(Ops ops, Tensor x, Activation a, Temporaries t) {
        return a == Activation.NONE ? x : t.add(ops.activation(x, a));
    }

    /** The most chunks Block and BlockTucker take (block.bootstrap's defaults are 20). */
    static final int MAX_CHUNKS = 1 << 12;

    /** block.bootstrap's get_sizes_list: chunks of ceil(dim / chunks), the shortfall taken off the last ones. */
    static long[] chunkSizes(int dim, int chunks) {
        if (chunks > dim) throw new IllegalArgumentException("chunks " + chunks + " exceed mm_dim " + dim);
        if (chunks > MAX_CHUNKS) throw new IllegalArgumentException("chunks " + chunks + ": at most " + MAX_CHUNKS);
        int size = (int) (((long) dim + chunks - 1) / chunks);
        long[] sizes = new long[chunks];
        java.util.Arrays.fill(sizes, size);
        long last = size - ((long) size * chunks - dim);
        if (last == 0) {
            throw new IllegalArgumentException("mm_dim " + dim + " in " + chunks + " chunks leaves the last one empty"
                    + " (block.bootstrap's get_sizes_list gives a size 0 there, which its layers cannot run)");
        } else if (last > 0) {
            sizes[chunks - 1] = last;
        } else {
            // the last chunk would be negative: make it as long as the one before and take one off each
            // of the last (size - last) chunks instead
            sizes[chunks - 1] = size;
            for (int j = 0; j < size - last; j++) sizes[chunks - 1 - j] -= 1;
        }
        return sizes;
    }

    /**
     * Rows r * units + j of a [groups * units, ...] tensor moved to j * groups + r: sums over a group
     * strided by units ({@code view(B, groups, units).sum(1)}) become sums of consecutive rows, which
     * {@link Ops#factorizedPool} computes. A new host tensor.
     */
    static Tensor interleaveRows(Tensor t, int groups) {
        long rows = t.size(0);
        int units = (int) (rows / groups), width = (int) (t.numel() / rows);
        float[] in = t.array(), out = new float[in.length];
        for (int r = 0; r < groups; r++) {
            for (int j = 0; j < units; j++) {
                System.arraycopy(in, (r * units + j) * width, out, (j * groups + r) * width, width);
            }
        }
        return Tensor.of(out, t.shape());
    }

    /** {@code nn.Linear} under name with its rows interleaved as {@link #interleaveRows} says. */
    static Linear interleavedLinear(Params p, String name, int groups) {
        return new Linear(p.upload(interleaveRows(p.host(name + ".weight"), groups)),
                p.upload(interleaveRows(p.host(name + ".bias"), groups)));
    }

    /** x [B, N, C] with the positions its mask drops set to zero (never read), or x itself without a mask. */
    static Tensor zeroMasked(Ops ops, Tensor x, Tensor mask, Temporaries t) {
        if (mask == null) return x;
        long b = x.size(0), n = x.size(1), c = x.size(2);
        Tensor kept = t.add(ops.fillAbsent(x.view(b * n, c), mask.view(b * n), null));
        return kept.view(b, n, c);
    }

    /** x [B, C] as a one-position sequence [B, 1, C] (a view), sequences as they are. */
    static Tensor asSequence(Tensor x) {
        return x.rank() == 2 ? x.view(x.size(0), 1, x.size(1)) : x;
    }

    /** The product of one chunk pair in {@link #chunked}: declared under its chunk's names, then built. */
    interface ChunkCore {
        void declare(Plan<Fusion> plan, int chunk, long size);

        ChunkProduct build(Params params, int chunk);
    }

    /** A built chunk product: the chunks a [B, s] and b [B, s] to the chunk's unnormalised z [B, s]. */
    interface ChunkProduct {
        Tensor apply(Ops ops, Tensor a, Tensor b, Temporaries t);
    }

    /**
     * Block's and BlockTucker's shared skeleton: both inputs through linear0 / linear1 (linear1 = linear0
     * when shared) to mm_dim, split into chunks (get_sizes_list), a product per chunk, the power
     * normalisation per chunk (pos_norm before_cat) or of the chunks side by side (after_cat), then
     * linear_out. Reads output_dim, mm_dim, chunks, shared, pos_norm and the dropouts.
     */
    static Plan<Fusion> chunked(Options o, List<Port> in, ChunkCore core) {
        vectors(o, in, 2, 2);
        int out = o.positive("output_dim", null), mm = o.positive("mm_dim", 1600), chunks = o.positive("chunks", 20);
        boolean shared = o.bool("shared", false);
        boolean beforeCat = o.choice("pos_norm", "before_cat", "before_cat", "after_cat").equals("before_cat");
        dropouts(o, "dropout_input", "dropout_pre_lin", "dropout_output");
        if (shared && dim(in, 0) != dim(in, 1)) throw o.error("shared", "needs inputs of one width, got " + in);
        long[] sizes = chunkSizes(mm, chunks);
        Plan<Fusion> plan = new Plan<Fusion>(new Port(out, false)).linear("linear0", dim(in, 0), mm, true);
        if (shared) {
            plan.sharedLinear("linear1", dim(in, 1), mm);
        } else {
            plan.linear("linear1", dim(in, 1), mm, true);
        }
        for (int c = 0; c < chunks; c++) core.declare(plan, c, sizes[c]);
        plan.linear("linear_out", mm, out, true);
        return plan.builder(p -> {
            Linear l0 = p.linear("linear0"), l1 = shared ? l0 : p.linear("linear1"), lOut = p.linear("linear_out");
            List<ChunkProduct> products = new ArrayList<>();
            for (int c = 0; c < chunks; c++) products.add(core.build(p, c));
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    List<Tensor> a = ops.split(t.add(l0.apply(ops, xs.get(0))), sizes, 1);
                    a.forEach(t::add);
                    List<Tensor> b = ops.split(t.add(l1.apply(ops, xs.get(1))), sizes, 1);
                    b.forEach(t::add);
                    List<Tensor> zs = new ArrayList<>();
                    for (int c = 0; c < chunks; c++) {
                        Tensor z = products.get(c).apply(ops, a.get(c), b.get(c), t);
                        zs.add(beforeCat ? t.add(ops.normalizeRows(z, POWER_NORM)) : z);
                    }
                    Tensor z = t.add(ops.concat(zs, 1));
                    if (!beforeCat) z = t.add(ops.normalizeRows(z, POWER_NORM));
                    return lOut.apply(ops, z);
                }
            };
        });
    }

    /** How {@link #throughMlp} forms the MLP's input from the fusion's inputs. */
    interface Joiner {
        Tensor join(Ops ops, List<Tensor> xs, Temporaries t);
    }

    /**
     * A fusion that joins its inputs into one vector of {@code width} features and runs block.bootstrap's
     * MLP ({@code mlp.linears.<j>}, to each of {@code dimensions}) on it: ConcatMLP, the Tensor Fusion Network.
     */
    static Plan<Fusion> throughMlp(long width, List<Integer> dimensions, Activation activation, Joiner joiner) {
        Plan<Mlp> mlp = Mlp.plan(new Port(width, false), dimensions, activation);
        Plan<Fusion> plan = new Plan<>(mlp.output);
        plan.include("mlp.", mlp);
        return plan.builder(p -> {
            Mlp m = mlp.build(p.scope("mlp"));
            return (ops, xs, masks, present) -> {
                try (Temporaries t = new Temporaries()) {
                    return m.apply(ops, joiner.join(ops, xs, t), null);
                }
            };
        });
    }
}
