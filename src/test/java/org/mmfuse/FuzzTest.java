package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * Thousands of seeded random calls of every public operation, valid and invalid, on every backend:
 * each backend must either agree with the scalar reference or throw the same documented exception
 * (IllegalArgumentException, NullPointerException, IllegalStateException for a closed tensor); any
 * other exception, a valid call refused or a wrong result fails with the seed and case that replay it:
 * {@code mvn test -Dtest=FuzzTest -Dmmfuse.fuzz.seed=S -Dmmfuse.fuzz.cases=N}.
 */
class FuzzTest {
    private static final List<Class<? extends RuntimeException>> DOCUMENTED =
            List.of(IllegalArgumentException.class, NullPointerException.class, IllegalStateException.class);

    /** One generated call: run it on a backend; its inputs are host tensors, moved there by {@link #on}. */
    private interface Call {
        List<Tensor> run(Ops ops);
    }

    private static final String[] OPERATIONS = {"concat", "split", "matmul", "linear", "attention", "bilinearPool",
        "bilinear", "compactBilinearPool", "factorizedPool", "activation", "layerNorm", "softmax", "add/subtract/multiply",
        "poolSequence", "fillAbsent", "weightedSum", "normalizeRows", "projectedAttention",
        "projectedAttentionMean"};

    private SplittableRandom rng;
    private final List<Tensor> opened = new ArrayList<>();
    /** Set by a generator whose call only a host tensor's size limit refuses: device backends may run it. */
    private boolean tooLargeForTheHostOnly;

    @Test
    void randomCallsAgreeWithTheReferenceOrAreRefusedAlike() {
        long seed = Long.getLong("mmfuse.fuzz.seed", System.nanoTime());
        int cases = Integer.getInteger("mmfuse.fuzz.cases", 3000);
        Ops reference = MMFuse.ops(Backend.SCALAR);
        List<Ops> others = TestSupport.backends().filter(o -> o.backend() != Backend.SCALAR).toList();
        int valid = 0, refused = 0;
        for (int c = 0; c < cases; c++) {
            rng = new SplittableRandom(seed + c);
            tooLargeForTheHostOnly = false;
            boolean wantValid = rng.nextInt(4) != 0;
            String what = "seed " + seed + ", case " + c + " (replay with -Dmmfuse.fuzz.seed=" + (seed + c)
                    + " -Dmmfuse.fuzz.cases=1)";
            int op = rng.nextInt(OPERATIONS.length);
            what = OPERATIONS[op] + (wantValid ? " (valid)" : " (invalid)") + ", " + what;
            try {
                Call call = generate(op, wantValid);
                Outcome expected = Outcome.of(() -> call.run(reference));
                if (expected.failure != null && !DOCUMENTED.contains(expected.failure.getClass())) {
                    fail(what + ": the reference threw an undocumented " + expected.failure, expected.failure);
                }
                if (wantValid && expected.failure != null) fail(what + ": a valid call was refused: " + expected.failure);
                if (expected.failure == null) valid++; else refused++;
                for (Ops ops : others) {
                    if (tooLargeForTheHostOnly && !ops.device().isCpu()) continue; // no host copy to compare
                    Outcome got = Outcome.of(() -> call.run(ops));
                    got.assertSameAs(expected, ops.backend() + ", " + what);
                }
            } finally {
                opened.forEach(Tensor::close);
                opened.clear();
            }
        }
        // both kinds must have been exercised in earnest (unless a single case is being replayed)
        if (cases >= 100) assertTrue(valid > cases / 2 && refused > cases / 10, valid + " valid and " + refused + " refused of " + cases);
    }

    /** A call's result (host copies) or its exception. */
    private static final class Outcome {
        final List<float[]> values;
        final RuntimeException failure;

        private Outcome(List<float[]> values, RuntimeException failure) {
            this.values = values;
            this.failure = failure;
        }

        static Outcome of(Supplier<List<Tensor>> call) {
            try {
                List<Tensor> results = call.get();
                List<float[]> values = new ArrayList<>();
                for (Tensor t : results) {
                    if (t != null) values.add(t.toArray());
                    if (t != null) t.close();
                }
                return new Outcome(values, null);
            } catch (RuntimeException e) {
                return new Outcome(null, e);
            }
        }

        void assertSameAs(Outcome expected, String what) {
            if (expected.failure != null || failure != null) {
                if (expected.failure == null || failure == null || expected.failure.getClass() != failure.getClass()) {
                    fail(what + ": the reference " + (expected.failure == null ? "succeeded" : "threw " + expected.failure)
                            + " but this backend " + (failure == null ? "succeeded" : "threw " + failure), failure);
                }
                return;
            }
            if (values.size() != expected.values.size()) fail(what + ": " + values.size() + " results, expected " + expected.values.size());
            for (int r = 0; r < values.size(); r++) {
                float[] want = expected.values.get(r), got = values.get(r);
                if (want.length != got.length) fail(what + ": result " + r + " has " + got.length + " values, expected " + want.length);
                double scale = 0;
                for (float v : want) if (Float.isFinite(v)) scale = Math.max(scale, Math.abs(v));
                for (int i = 0; i < want.length; i++) {
                    boolean same = Float.isNaN(want[i]) ? Float.isNaN(got[i])
                            : Float.isInfinite(want[i]) ? want[i] == got[i]
                            : Math.abs(got[i] - want[i]) <= 2e-3 * scale + 1e-5;
                    if (!same) fail(what + ": result " + r + " element " + i + " is " + got[i] + ", the reference " + want[i]);
                }
            }
        }
    }

    // ---- generators ------------------------------------------------------------------------------------

    private Call generate(int op, boolean valid) {
        switch (op) {
            case 0: return concat(valid);
            case 1: return split(valid);
            case 2: return matmul(valid);
            case 3: return linear(valid);
            case 4: return attention(valid);
            case 5: return bilinearPool(valid);
            case 6: return bilinear(valid);
            case 7: return compact(valid);
            case 8: return factorized(valid);
            case 9: return activation(valid);
            case 10: return layerNorm(valid);
            case 11: return softmax(valid);
            case 12: return binary(valid);
            case 13: return poolSequence(valid);
            case 14: return fillAbsent(valid);
            case 15: return weightedSum(valid);
            case 16: return normalizeRows(valid);
            case 17: return projectedAttention(valid, false);
            default: return projectedAttention(valid, true);
        }
    }

    /** A size: mostly small, sometimes 0 or 1, now and then larger than a vector. */
    private int size() {
        int r = rng.nextInt(10);
        return r == 0 ? 0 : r == 1 ? 1 : r < 8 ? 2 + rng.nextInt(6) : 8 + rng.nextInt(30);
    }

    private int positive() {
        return Math.max(1, size());
    }

    /** A host tensor of random values (sometimes a NaN among them), closed after the case. */
    private Tensor tensor(long... shape) {
        Tensor t = finiteTensor(shape);
        float[] data = t.array();
        if (data.length > 0 && rng.nextInt(20) == 0) data[rng.nextInt(data.length)] = Float.NaN;
        return t;
    }

    /** As {@link #tensor} without NaN: for attention's keys and values, where a hidden key's NaN is unspecified. */
    private Tensor finiteTensor(long... shape) {
        float[] data = new float[Math.toIntExact(Shapes.numel("fuzz", shape))];
        for (int i = 0; i < data.length; i++) data[i] = (float) (rng.nextDouble() * 4 - 2);
        Tensor t = Tensor.of(data, shape);
        opened.add(t);
        return t;
    }

    /** {@code t} on the backend's device, closed after the case; a closed tensor stays closed. */
    private Tensor on(Ops ops, Tensor t) {
        if (t == null || t.isClosed() || t.device().equals(ops.device())) return t;
        Tensor moved = t.to(ops.device());
        opened.add(moved);
        return moved;
    }

    /** One way to spoil a call's tensor argument: null, closed, or (returned as is) a different shape. */
    private Tensor spoil(Tensor t, long... otherShape) {
        switch (rng.nextInt(3)) {
            case 0:
                return null;
            case 1:
                Tensor closed = tensor(t.shape());
                closed.close();
                return closed;
            default:
                return tensor(otherShape);
        }
    }

    /** A shape like {@code shape} with one size changed (to a different value, at least 0). */
    private long[] bent(long[] shape) {
        long[] s = shape.clone();
        if (s.length == 0) return new long[] {2};
        int d = rng.nextInt(s.length);
        s[d] = s[d] + 1 + rng.nextInt(3);
        return s;
    }

    private Call concat(boolean valid) {
        int rank = 1 + rng.nextInt(3), axis = rng.nextInt(rank);
        long[] base = new long[rank];
        for (int d = 0; d < rank; d++) base[d] = size();
        List<Tensor> inputs = new ArrayList<>();
        for (int i = 0, n = 1 + rng.nextInt(4); i < n; i++) {
            long[] s = base.clone();
            s[axis] = size();
            inputs.add(tensor(s));
        }
        int a = valid ? axis - (rng.nextBoolean() ? rank : 0) : axis;
        if (!valid) {
            int which = rng.nextInt(inputs.size());
            switch (rng.nextInt(3)) {
                case 0: a = rank + rng.nextInt(3); break; // axis out of range
                case 1: inputs.set(which, spoil(inputs.get(which), rank == 1 ? new long[] {1, 1} : new long[] {base[0] + 1}));
                        if (rank == 1 && inputs.get(which) != null && inputs.get(which).rank() == 1) a = 5;
                        break;
                default: {
                    if (rank == 1) { a = -3; break; }
                    long[] s = inputs.get(which).shape();
                    int d = (axis + 1) % rank;
                    s[d] += 1;
                    inputs.set(which, tensor(s));
                }
            }
        }
        int finalAxis = a;
        return ops -> {
            List<Tensor> moved = new ArrayList<>();
            for (Tensor t : inputs) moved.add(on(ops, t));
            return List.of(ops.concat(moved, finalAxis));
        };
    }

    private Call split(boolean valid) {
        long[] shape = {size(), size()};
        int axis = rng.nextInt(2);
        long total = shape[axis];
        Tensor input = tensor(shape);
        boolean bySizes = rng.nextBoolean();
        long[] sizes;
        if (total == 0) {
            sizes = new long[] {0};
        } else {
            sizes = new long[1 + rng.nextInt((int) Math.min(total, 4))];
            long left = total;
            for (int i = 0; i < sizes.length - 1; i++) {
                sizes[i] = rng.nextInt((int) left + 1);
                left -= sizes[i];
            }
            sizes[sizes.length - 1] = left;
        }
        long each = 1 + rng.nextInt(4);
        if (!valid) {
            if (bySizes) sizes[rng.nextInt(sizes.length)] += rng.nextBoolean() ? 1 : -total - 1;
            else each = total == 0 ? -1 : rng.nextBoolean() ? 0 : -each;
        }
        long[] finalSizes = sizes;
        long finalEach = each;
        return ops -> {
            List<Tensor> pieces = bySizes ? ops.split(on(ops, input), finalSizes, axis) : ops.split(on(ops, input), finalEach, axis);
            return pieces;
        };
    }

    private Call matmul(boolean valid) {
        int m = size(), k = size(), n = size();
        Tensor a = tensor(m, k), b = tensor(valid ? k : k + 1, n);
        if (!valid && rng.nextBoolean()) b = spoil(tensor(k, n), k, n, 1);
        Tensor fb = b;
        return ops -> List.of(ops.matmul(on(ops, a), on(ops, fb)));
    }

    private Call linear(boolean valid) {
        int rows = size(), in = size(), out = size();
        Tensor x = rng.nextBoolean() ? tensor(rows, in) : tensor(2, rows, in);
        Tensor w = tensor(out, in);
        Tensor bias = rng.nextBoolean() ? tensor(out) : null;
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: w = tensor(out, in + 1); break;
                case 1: bias = tensor(out + 1); break;
                default: x = spoil(x, in + 2);
            }
        }
        Tensor fx = x, fw = w, fb = bias;
        return ops -> List.of(ops.linear(on(ops, fx), on(ops, fw), on(ops, fb)));
    }

    private Call attention(boolean valid) {
        int b = positive(), lq = positive(), lk = size(), h = 1 + rng.nextInt(3), dh = positive(), dv = positive();
        Tensor q = tensor(b, lq, h, dh), k = finiteTensor(b, lk, h, dh), v = finiteTensor(b, lk, h, dv);
        AttentionOptions options = AttentionOptions.DEFAULT.causal(rng.nextInt(4) == 0);
        if (rng.nextBoolean()) {
            Tensor mask = tensor(b, lk);
            for (int i = 0; i < mask.array().length; i++) mask.array()[i] = rng.nextInt(3) == 0 ? 0 : 1;
            options = options.keyPaddingMask(mask);
        }
        if (rng.nextInt(3) == 0) options = options.bias(rng.nextBoolean() ? finiteTensor(lq, lk) : finiteTensor(b, 1, 1, lk));
        if (rng.nextBoolean()) options = options.withLogSumExp();
        if (rng.nextBoolean()) options = options.withWeights();
        if (!valid) {
            switch (rng.nextInt(4)) {
                case 0: k = tensor(b, lk, h, dh + 1); break;
                case 1: v = tensor(b, lk + 1, h, dv); break;
                case 2: options = options.keyPaddingMask(tensor(b, lk + 1)); break;
                default: q = spoil(q, b, lq, h);
            }
        }
        Tensor fq = q, fk = k, fv = v;
        AttentionOptions fo = options;
        return ops -> {
            AttentionOptions moved = fo.keyPaddingMask(on(ops, fo.keyPaddingMask())).bias(on(ops, fo.bias()));
            AttentionResult r = ops.attention(on(ops, fq), on(ops, fk), on(ops, fv), moved);
            List<Tensor> all = new ArrayList<>(Arrays.asList(r.output(), r.logSumExp(), r.weights()));
            all.removeIf(t -> t == null);
            return all;
        };
    }

    /**
     * A few queries over wider keys and values, the shapes where the Vector backend folds the projections
     * in; with {@code mean}, averaged over the queries a query mask keeps.
     */
    private Call projectedAttention(boolean valid, boolean mean) {
        int b = positive(), lq = 1 + rng.nextInt(3), lk = positive(), h = 1 + rng.nextInt(3), dh = positive(), e = h * dh;
        boolean shared = rng.nextInt(4) == 0; // keys and values from one tensor, as a model's regions
        int kdim = e + positive(), vdim = shared ? kdim : e + positive();
        Tensor q = finiteTensor(b, lq, e), key = finiteTensor(b, lk, kdim), value = shared ? key : finiteTensor(b, lk, vdim);
        Tensor kWeight = finiteTensor(e, kdim), vWeight = finiteTensor(e, vdim);
        Tensor kBias = rng.nextBoolean() ? finiteTensor(e) : null, vBias = rng.nextBoolean() ? finiteTensor(e) : null;
        AttentionOptions options = AttentionOptions.DEFAULT.heads(h);
        if (rng.nextBoolean()) options = options.keyPaddingMask(zerosAndOnes(b, lk));
        Tensor queryMask = mean && rng.nextBoolean() ? zerosAndOnes(b, lq) : null;
        if (!mean && rng.nextBoolean()) options = options.withWeights();
        if (!valid) {
            switch (rng.nextInt(mean ? 6 : 4)) {
                case 0: kWeight = tensor(e, kdim + 1); break;
                case 1: vBias = tensor(e + 1); break;
                case 2: value = tensor(b, lk + 1, vdim); break;
                case 3: options = options.keyPaddingMask(tensor(b + 1, lk)); break;
                case 4: queryMask = tensor(b, lq + 1); break;
                default: options = options.withWeights();
            }
        }
        Tensor fq = q, fKey = key, fValue = value, fkw = kWeight, fvw = vWeight, fkb = kBias, fvb = vBias, fMask = queryMask;
        AttentionOptions fo = options;
        return ops -> {
            AttentionOptions o = fo.keyPaddingMask(on(ops, fo.keyPaddingMask()));
            if (mean) {
                return List.of(ops.projectedAttentionMean(on(ops, fq), on(ops, fKey), on(ops, fkw), on(ops, fkb),
                        on(ops, fValue), on(ops, fvw), on(ops, fvb), on(ops, fMask), o));
            }
            AttentionResult r = ops.projectedAttention(on(ops, fq), on(ops, fKey), on(ops, fkw), on(ops, fkb), on(ops, fValue),
                    on(ops, fvw), on(ops, fvb), o);
            List<Tensor> all = new ArrayList<>(Arrays.asList(r.output(), r.weights()));
            all.removeIf(t -> t == null);
            return all;
        };
    }

    /** A mask of zeros (a third of the entries) and ones. */
    private Tensor zerosAndOnes(long... shape) {
        Tensor mask = tensor(shape);
        for (int i = 0; i < mask.array().length; i++) mask.array()[i] = rng.nextInt(3) == 0 ? 0 : 1;
        return mask;
    }

    private PoolingOptions pooling() {
        PoolingOptions o = PoolingOptions.NONE.mean(rng.nextBoolean()).l2Normalize(rng.nextBoolean());
        return rng.nextBoolean() ? o.signedSqrt(rng.nextBoolean() ? 0 : 1e-6) : o;
    }

    private Call bilinearPool(boolean valid) {
        int b = size(), n = size(), c1 = size(), c2 = size();
        Tensor x = tensor(b, n, c1);
        Tensor y = rng.nextInt(4) == 0 ? x : tensor(b, n, c2);
        PoolingOptions o = pooling();
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: y = tensor(b, n + 1, c2); break;
                case 1: // 2^32 outputs: too many for a host tensor
                    y = tensor(1, 1, 1 << 16);
                    x = tensor(1, 1, 1 << 16);
                    tooLargeForTheHostOnly = true;
                    break;
                default: x = spoil(x, b, c1);
            }
        }
        Tensor fx = x, fy = y;
        return ops -> {
            Tensor mx = on(ops, fx);
            return List.of(ops.bilinearPool(mx, fy == fx ? mx : on(ops, fy), o));
        };
    }

    private Call bilinear(boolean valid) {
        int rows = size(), in1 = size(), in2 = size(), out = size();
        Tensor x1 = tensor(rows, in1), x2 = tensor(rows, in2), w = tensor(out, in1, in2);
        Tensor bias = rng.nextBoolean() ? tensor(out) : null;
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: x2 = tensor(rows + 1, in2); break;
                case 1: w = tensor(out, in2 + 1, in1); if (in1 == in2 + 1) w = tensor(out, in1, in2 + 1); break;
                default: bias = spoil(tensor(out), out + 1);
            }
            if (bias != null && bias.isClosed() == false && bias.rank() == 1 && bias.size(0) == out) bias = tensor(out + 1);
        }
        Tensor fx1 = x1, fx2 = x2, fw = w, fb = bias;
        return ops -> List.of(ops.bilinear(on(ops, fx1), on(ops, fx2), on(ops, fw), on(ops, fb)));
    }

    private Call compact(boolean valid) {
        int b = size(), n = positive(), c1 = size(), c2 = size(), d = 1 + rng.nextInt(rng.nextBoolean() ? 12 : 200);
        boolean maps = rng.nextBoolean();
        Tensor x = maps ? tensor(b, n, c1) : tensor(b, c1), y = maps ? tensor(b, n, c2) : tensor(b, c2);
        CountSketch sx = CountSketch.random(c1, d, rng.nextLong()), sy = CountSketch.random(c2, d, rng.nextLong());
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: sy = CountSketch.random(c2, d + 1, 1); break;
                case 1: sx = CountSketch.random(c1 + 1, d, 2); break;
                default: y = maps ? tensor(b, n + 1, c2) : tensor(b + 1, c2);
            }
        }
        Tensor fx = x, fy = y;
        CountSketch fsx = sx, fsy = sy;
        PoolingOptions o = pooling();
        return ops -> {
            Tensor z = ops.compactBilinearPool(on(ops, fx), on(ops, fy), fsx, fsy, o);
            return List.of(o.signedSqrt() ? rootUndone(z) : z);
        };
    }

    /**
     * sign(g) g² of a signed root's output, on the host (z is closed). A transform's rounding leaves about
     * 1e-8 where exact arithmetic has 0, and the root makes that 1e-4 (with eps 1e-6, 1e-3): compared
     * unsquared, right results would differ by more than any fair tolerance.
     */
    private Tensor rootUndone(Tensor z) {
        float[] g = z.toArray();
        long[] shape = z.shape();
        z.close();
        for (int i = 0; i < g.length; i++) g[i] = Math.signum(g[i]) * g[i] * g[i];
        return Tensor.of(g, shape);
    }

    private long[] anyShape() {
        long[] shape = new long[1 + rng.nextInt(3)];
        for (int d = 0; d < shape.length; d++) shape[d] = size();
        return shape;
    }

    private Call activation(boolean valid) {
        Tensor x = tensor(anyShape());
        Activation act = valid || rng.nextBoolean() ? Activation.values()[rng.nextInt(Activation.values().length)] : null;
        Tensor fx = valid || act == null ? x : spoil(x, 1);
        return ops -> List.of(ops.activation(on(ops, fx), act));
    }

    private Call layerNorm(boolean valid) {
        long[] shape = anyShape();
        int dim = (int) shape[shape.length - 1];
        Tensor x = tensor(shape), w = rng.nextBoolean() ? tensor(dim) : null, b = rng.nextBoolean() ? tensor(dim) : null;
        double eps = 1e-5;
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: w = tensor(dim + 1); break;
                case 1: eps = new double[] {0, -1, Double.NaN, 1e-50, 1e300}[rng.nextInt(5)]; break; // the last two as float32: 0, inf
                default: x = spoil(x, 2, 2, 2);
            }
            if (x != null && !x.isClosed() && x.rank() == 3 && x.size(2) == dim && eps > 0 && (w == null || w.size(0) == dim)) {
                eps = 0;
            }
        }
        Tensor fx = x, fw = w, fb = b;
        double feps = eps;
        return ops -> List.of(ops.layerNorm(on(ops, fx), on(ops, fw), on(ops, fb), feps));
    }

    private Call softmax(boolean valid) {
        Tensor x = valid ? tensor(anyShape()) : spoil(tensor(anyShape()));
        if (!valid && x != null && !x.isClosed()) x = Tensor.zeros(); // rank 0: no last dimension
        if (x != null && x.rank() == 0) opened.add(x);
        Tensor fx = x;
        return ops -> List.of(ops.softmax(on(ops, fx)));
    }

    private Call factorized(boolean valid) {
        int rows = size(), stages = 1 + rng.nextInt(3), factor = 1 + rng.nextInt(5), pooled = size();
        int width = stages * pooled * factor;
        Tensor x = tensor(rows, width), y = tensor(rows, width);
        if (!valid) {
            switch (rng.nextInt(2)) {
                case 0: x = tensor(rows, width + 1); y = tensor(rows, width + 1); if ((width + 1) % (stages * factor) == 0) y = tensor(rows, width + 2); break;
                default: y = spoil(y, rows + 1, width);
            }
        }
        FactorizedPoolOptions o = FactorizedPoolOptions.DEFAULT.factor(factor).stages(stages)
                .activation(Activation.values()[rng.nextInt(Activation.values().length)]).pooling(pooling());
        Tensor fx = x, fy = y;
        return ops -> List.of(ops.factorizedPool(on(ops, fx), on(ops, fy), o));
    }

    private Call binary(boolean valid) {
        long[] shape = anyShape();
        Tensor a = tensor(shape);
        // b: a's shape, or that of its last dimensions (broadcast)
        Tensor b = tensor(Arrays.copyOfRange(shape, rng.nextInt(shape.length + 1), shape.length));
        if (!valid) b = rng.nextBoolean() ? tensor(bent(shape)) : spoil(b, bent(shape));
        Tensor fa = a, fb = b;
        int which = rng.nextInt(3);
        return ops -> List.of(which == 0 ? ops.add(on(ops, fa), on(ops, fb))
                : which == 1 ? ops.subtract(on(ops, fa), on(ops, fb)) : ops.multiply(on(ops, fa), on(ops, fb)));
    }

    /** A 0/1 mask, mostly ones. */
    private Tensor mask(long... shape) {
        Tensor m = finiteTensor(shape);
        float[] v = m.array();
        for (int i = 0; i < v.length; i++) v[i] = rng.nextInt(4) == 0 ? 0 : 1;
        return m;
    }

    private Call poolSequence(boolean valid) {
        int b = size(), n = size(), c = size();
        Tensor x = tensor(b, n, c), m = rng.nextBoolean() ? mask(b, n) : null;
        SequencePooling mode = SequencePooling.values()[rng.nextInt(SequencePooling.values().length)];
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: m = mask(b, n + 1); break;
                case 1: x = spoil(x, b, c); break;
                default: mode = null;
            }
        }
        Tensor fx = x, fm = m;
        SequencePooling fmode = mode;
        return ops -> List.of(ops.poolSequence(on(ops, fx), on(ops, fm), fmode));
    }

    private Call fillAbsent(boolean valid) {
        long[] shape = anyShape();
        Tensor x = tensor(shape), present = mask(shape[0]);
        Tensor fill = rng.nextBoolean() ? tensor(Arrays.copyOfRange(shape, 1, shape.length)) : null;
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: present = mask(shape[0] + 1); break;
                case 1: fill = tensor(bent(Arrays.copyOfRange(shape, 1, shape.length))); break;
                default: present = spoil(present, 1, 1);
            }
        }
        Tensor fx = x, fp = present, ff = fill;
        return ops -> List.of(ops.fillAbsent(on(ops, fx), on(ops, fp), on(ops, ff)));
    }

    private Call weightedSum(boolean valid) {
        long[] shape = anyShape();
        int m = 1 + rng.nextInt(3);
        List<Tensor> xs = new ArrayList<>();
        for (int i = 0; i < m; i++) xs.add(tensor(shape));
        Tensor w = finiteTensor(shape[0], m);
        for (int i = 0; i < w.array().length; i++) if (rng.nextInt(3) == 0) w.array()[i] = 0;
        if (!valid) {
            switch (rng.nextInt(3)) {
                case 0: w = finiteTensor(shape[0], m + 1); break;
                case 1: xs.set(rng.nextInt(m), tensor(bent(shape))); break;
                default: xs.set(rng.nextInt(m), spoil(xs.get(0), 1));
            }
        }
        Tensor fw = w;
        return ops -> {
            List<Tensor> moved = new ArrayList<>();
            for (Tensor x : xs) moved.add(on(ops, x));
            return List.of(ops.weightedSum(moved, on(ops, fw)));
        };
    }

    private Call normalizeRows(boolean valid) {
        Tensor x = tensor(anyShape());
        PoolingOptions o = pooling().mean(false);
        if (!valid) {
            if (rng.nextBoolean()) o = o.mean(true); else x = spoil(x, 1);
        }
        Tensor fx = x;
        PoolingOptions fo = o;
        return ops -> List.of(ops.normalizeRows(on(ops, fx), fo));
    }
}
