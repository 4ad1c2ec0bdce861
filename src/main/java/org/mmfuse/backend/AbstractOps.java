package org.mmfuse.backend;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;
import org.mmfuse.Activation;
import org.mmfuse.AttentionOptions;
import org.mmfuse.AttentionResult;
import org.mmfuse.CountSketch;
import org.mmfuse.DType;
import org.mmfuse.Device;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.MatmulPrecision;
import org.mmfuse.Ops;
import org.mmfuse.PoolingOptions;
import org.mmfuse.SequencePooling;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;

/**
 * Argument checks and result allocation shared by every backend, so that all of them accept and
 * refuse exactly the same calls with the same messages. A backend supplies allocation, the memory
 * overlap test and the two block-copy directions.
 */
public abstract class AbstractOps implements Ops {

    /** One line for reports: the backend and what it runs on. */
    public String description() {
        return backend().name().toLowerCase() + " on " + device();
    }

    /** fp32: what the CPU backends compute whatever is asked (CUDA overrides both). */
    @Override
    public MatmulPrecision matmulPrecision() {
        return MatmulPrecision.FP32;
    }

    @Override
    public Ops withMatmulPrecision(MatmulPrecision precision) {
        Objects.requireNonNull(precision, "withMatmulPrecision: precision is null");
        return this;
    }

    /** A new F32 tensor on this backend's device, contents unspecified: the caller overwrites it whole. */
    protected abstract Tensor allocate(long[] shape);

    /** As {@link #allocate(long[])} in {@code dtype}; backends with 16-bit kernels take BF16 and F16. */
    protected Tensor allocate(long[] shape, DType dtype) {
        if (dtype != DType.F32) throw new IllegalStateException(backend() + " allocates F32 only, not " + dtype);
        return allocate(shape);
    }

    /** Whether attention takes BF16 and F16 q, k, v (tensor-core kernels), besides F32. */
    protected boolean takesHalfAttention() {
        return false;
    }

    /** Whether two tensors of this backend's device share any memory. */
    protected abstract boolean overlaps(Tensor a, Tensor b);

    /** Copies every piece into its columns of {@code whole} (concatenation). */
    protected abstract void gather(BlockCopy plan, List<Tensor> pieces, Tensor whole);

    /** Copies the columns of {@code whole} into the pieces (split). */
    protected abstract void scatter(BlockCopy plan, Tensor whole, List<Tensor> pieces);

    /** Computes c = a · b (+ bias) as {@code g} describes; c is overwritten whole. Bias may be null. */
    protected abstract void gemm(Gemm g, Tensor a, Tensor b, Tensor bias, Tensor c);

    /**
     * Attention as {@code s} describes, overwriting out [B, Lq, H, Dv], and lse [B, H, Lq] and
     * weights [B, H, Lq, Lk] where not null; mask [B, Lk] and bias (see s.biasStrides) may be null.
     */
    protected abstract void attention(AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor mask, Tensor bias,
            Tensor out, Tensor lse, Tensor weights);

    /**
     * Full bilinear pooling as {@code s} describes into out [B, xDim * yDim]; {@code symmetric} when x
     * and y are the same tensor.
     */
    protected abstract void bilinearPool(PoolShape s, Tensor x, Tensor y, boolean symmetric, PoolingOptions options,
            Tensor out);

    /** {@code nn.Bilinear} into out [rows, out]; bias may be null. */
    protected abstract void bilinear(BilinearShape s, Tensor x1, Tensor x2, Tensor weight, Tensor bias, Tensor out);

    /** Compact bilinear pooling into out [B, d]; the sketches match the shape (checked). */
    protected abstract void compactBilinearPool(PoolShape s, Tensor x, Tensor y, CountSketch sx, CountSketch sy,
            PoolingOptions options, Tensor out);

    /** Factorized (MLB/MFB/MFH) pooling into out [rows, stages * units / factor]. */
    protected abstract void factorizedPool(FactorizedShape s, Tensor x, Tensor y, FactorizedPoolOptions options,
            Tensor out);

    /** x's activation into out (same shape). */
    protected abstract void activation(Tensor x, Activation activation, Tensor out);

    /** Layer norm of x [rows, dim] (flattened leading dims) into out; weight and bias may be null. */
    protected abstract void layerNorm(Tensor x, long rows, int dim, Tensor weight, Tensor bias, float eps, Tensor out);

    /** Softmax of x [rows, dim] (flattened leading dims) into out. */
    protected abstract void softmax(Tensor x, long rows, int dim, Tensor out);

    /** The elementwise operations on two tensors of one shape. */
    protected enum Binary {
        ADD, SUBTRACT, MULTIPLY;

        /** This operation on two floats. */
        public float apply(float a, float b) {
            switch (this) {
                case ADD:
                    return a + b;
                case SUBTRACT:
                    return a - b;
                default:
                    return a * b;
            }
        }
    }

    /** out = a op b elementwise, b's elements repeating every b.numel() (a suffix of a's shape, checked). */
    protected abstract void binary(Binary op, Tensor a, Tensor b, Tensor out);

    /** Pooling of x [batch, length, channels] under mask [batch, length] (or null) into out [batch, channels]. */
    protected abstract void poolSequence(long batch, long length, long channels, Tensor x, Tensor mask,
            SequencePooling mode, Tensor out);

    /** out [rows, inner] = x's row where present[row] != 0, else fill [inner] (zeros when null). */
    protected abstract void fillAbsent(long rows, long inner, Tensor x, Tensor present, Tensor fill, Tensor out);

    /** out [rows, inner] = Σ_m weights[row, m] xs[m][row, :], zero weights skipped. */
    protected abstract void weightedSum(long rows, long inner, List<Tensor> xs, Tensor weights, Tensor out);

    /** out [rows, dim] = x's rows finished as options say (no mean). */
    protected abstract void normalizeRows(long rows, long dim, Tensor x, PoolingOptions options, Tensor out);

    // ---- concat -----------------------------------------------------------------------------------

    @Override
    public final Tensor concat(List<Tensor> inputs, int axis) {
        Concat c = checkConcat("concat", inputs, axis);
        return compute(c.shape, out -> gather(c.plan, c.pieces, out));
    }

    @Override
    public final void concatInto(Tensor out, List<Tensor> inputs, int axis) {
        Concat c = checkConcat("concatInto", inputs, axis);
        checkTensor("concatInto", "out", out);
        if (!Arrays.equals(out.shape(), c.shape)) {
            throw new IllegalArgumentException("concatInto: out has shape " + Shapes.toString(out.shape())
                    + " but the inputs joined along axis " + c.axis + " have shape " + Shapes.toString(c.shape));
        }
        for (int i = 0; i < inputs.size(); i++) {
            if (overlaps(out, inputs.get(i))) {
                throw new IllegalArgumentException("concatInto: out shares memory with inputs[" + i + "] "
                        + inputs.get(i).describe() + "; the output must not overlap an input");
            }
        }
        gather(c.plan, c.pieces, out);
    }

    /** A checked concatenation: the pieces that take part, the result's shape and the copy plan. */
    private static final class Concat {
        final int axis;
        final List<Tensor> pieces;
        final long[] shape;
        final BlockCopy plan;

        Concat(int axis, List<Tensor> pieces, long[] shape) {
            this.axis = axis;
            this.pieces = pieces;
            this.shape = shape;
            this.plan = BlockCopy.along(axis, pieces);
        }
    }

    private Concat checkConcat(String op, List<Tensor> inputs, int axis) {
        Objects.requireNonNull(inputs, op + ": inputs is null");
        if (inputs.isEmpty()) throw new IllegalArgumentException(op + ": expected a non-empty list of tensors");
        List<Tensor> pieces = new ArrayList<>(inputs.size());
        int reference = -1;
        for (int i = 0; i < inputs.size(); i++) {
            Tensor t = inputs.get(i);
            checkTensor(op, "inputs[" + i + "]", t);
            if (t.rank() == 0) {
                throw new IllegalArgumentException(op + ": inputs[" + i + "] is zero-dimensional " + t.describe()
                        + " and cannot be concatenated");
            }
            // torch.cat's legacy rule: a 1-D tensor of size 0 is skipped whatever the others' rank.
            if (t.rank() == 1 && t.size(0) == 0) continue;
            if (reference < 0) reference = i;
            pieces.add(t);
        }
        if (reference < 0) { // every input is a legacy empty tensor: the result is one too
            Shapes.axis(op + ": axis", axis, 1);
            return new Concat(0, List.of(), new long[] {0});
        }
        long[] shape = inputs.get(reference).shape();
        int a = Shapes.axis(op + ": axis", axis, shape.length);
        long total = 0;
        for (int i = 0; i < inputs.size(); i++) {
            Tensor t = inputs.get(i);
            if (t.rank() == 1 && t.size(0) == 0) continue;
            boolean matches = t.rank() == shape.length;
            for (int d = 0; d < shape.length && matches; d++) matches = d == a || t.size(d) == shape[d];
            if (!matches) {
                String problem = t.rank() != shape.length ? "tensors must have the same number of dimensions"
                        : "sizes must match except along axis " + a;
                throw new IllegalArgumentException(op + ": " + problem + ": inputs[" + reference + "] has shape "
                        + Shapes.toString(shape) + ", inputs[" + i + "] has shape " + Shapes.toString(t.shape()));
            }
            total = Math.addExact(total, t.size(a));
        }
        shape[a] = total;
        Shapes.numel(op + ": result", shape);
        return new Concat(a, pieces, shape);
    }

    // ---- split ------------------------------------------------------------------------------------

    @Override
    public final List<Tensor> split(Tensor input, long splitSize, int axis) {
        int a = splitAxis(input, axis);
        long size = input.size(a);
        if (splitSize < 0) throw new IllegalArgumentException("split: splitSize must be non-negative, got " + splitSize);
        if (splitSize == 0 && size != 0) {
            throw new IllegalArgumentException("split: splitSize can only be 0 if the size along axis " + a
                    + " is 0, but input has shape " + Shapes.toString(input.shape()));
        }
        long count = splitSize == 0 ? 1 : Math.max((size + splitSize - 1) / splitSize, 1);
        if (count > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("split: " + count + " pieces of " + splitSize + " is too many");
        }
        long[] sizes = new long[(int) count];
        Arrays.fill(sizes, splitSize);
        sizes[sizes.length - 1] = size - splitSize * (count - 1);
        return splitChecked(input, sizes, a);
    }

    @Override
    public final List<Tensor> split(Tensor input, long[] sizes, int axis) {
        int a = splitAxis(input, axis);
        Objects.requireNonNull(sizes, "split: sizes is null");
        long size = input.size(a);
        long sum = 0;
        for (long s : sizes) {
            if (s < 0) {
                throw new IllegalArgumentException("split: sizes must be non-negative, got " + Arrays.toString(sizes));
            }
            if (s > size - sum) {
                throw new IllegalArgumentException("split: sizes " + Arrays.toString(sizes) + " add up past the input's size "
                        + size + " along axis " + a + " (shape " + Shapes.toString(input.shape()) + ")");
            }
            sum += s;
        }
        if (sum != size) {
            throw new IllegalArgumentException("split: sizes " + Arrays.toString(sizes) + " sum to " + sum
                    + " but input has size " + size + " along axis " + a + " (shape " + Shapes.toString(input.shape()) + ")");
        }
        return splitChecked(input, sizes.clone(), a);
    }

    private int splitAxis(Tensor input, int axis) {
        checkTensor("split", "input", input);
        if (input.rank() == 0) {
            throw new IllegalArgumentException("split: input must have at least one dimension, got " + input.describe());
        }
        return Shapes.axis("split: axis", axis, input.rank());
    }

    private List<Tensor> splitChecked(Tensor input, long[] sizes, int axis) {
        List<Tensor> pieces = new ArrayList<>(sizes.length);
        try {
            for (long s : sizes) {
                long[] shape = input.shape();
                shape[axis] = s;
                pieces.add(allocate(shape));
            }
            scatter(BlockCopy.along(axis, pieces), input, pieces);
        } catch (RuntimeException | Error e) {
            pieces.forEach(Tensor::close);
            throw e;
        }
        return pieces;
    }

    // ---- matrix products -----------------------------------------------------------------------------

    @Override
    public final Tensor matmul(Tensor a, Tensor b) {
        checkTensor("matmul", "a", a);
        checkTensor("matmul", "b", b);
        if (a.rank() != 2 || b.rank() != 2 || a.size(1) != b.size(0)) {
            throw new IllegalArgumentException("matmul: a " + Shapes.toString(a.shape()) + " and b "
                    + Shapes.toString(b.shape()) + " cannot be multiplied: expected a [M, K] and b [K, N]");
        }
        return product(new Gemm(a.size(0), b.size(1), a.size(1), false), a, b, null, new long[] {a.size(0), b.size(1)});
    }

    @Override
    public final Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        checkTensor("linear", "x", x);
        checkTensor("linear", "weight", weight);
        if (weight.rank() != 2) {
            throw new IllegalArgumentException("linear: weight must be [out, in], got " + Shapes.toString(weight.shape()));
        }
        long out = weight.size(0), in = weight.size(1);
        if (x.rank() < 1 || x.size(-1) != in) {
            throw new IllegalArgumentException("linear: x " + Shapes.toString(x.shape()) + " must end in the weight's in = "
                    + in + " (weight " + Shapes.toString(weight.shape()) + ")");
        }
        if (bias != null) checkBias("linear", bias, out, weight);
        long[] shape = x.shape();
        shape[shape.length - 1] = out;
        Shapes.numel("linear: result", shape);
        long rows = Shapes.product(shape, 0, shape.length - 1);
        return product(new Gemm(rows, out, in, true), x, weight, bias, shape);
    }

    private Tensor product(Gemm g, Tensor a, Tensor b, Tensor bias, long[] shape) {
        return compute(shape, c -> gemm(g, a, b, bias, c));
    }

    // ---- attention -------------------------------------------------------------------------------------

    @Override
    public final AttentionResult attention(Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        Objects.requireNonNull(options, "attention: options is null");
        checkAttentionInput("q", q, q);
        checkAttentionInput("k", k, q);
        checkAttentionInput("v", v, q);
        boolean packed = q.rank() == 3;
        if (q.rank() != 4 && !packed || k.rank() != q.rank() || v.rank() != q.rank()) {
            throw new IllegalArgumentException("attention: q, k, v must all be [B, L, H, D] or all [B, L, H*D], got q "
                    + Shapes.toString(q.shape()) + ", k " + Shapes.toString(k.shape()) + ", v " + Shapes.toString(v.shape()));
        }
        long heads = packed ? options.heads() : q.size(2);
        if (packed && (heads <= 0 || q.size(2) % heads != 0 || k.size(2) % heads != 0 || v.size(2) % heads != 0)) {
            throw new IllegalArgumentException("attention: packed inputs need options.heads(H) dividing every last size, got "
                    + heads + " for q " + Shapes.toString(q.shape()) + ", k " + Shapes.toString(k.shape()) + ", v "
                    + Shapes.toString(v.shape()));
        }
        long batch = q.size(0), lq = q.size(1), lk = k.size(1);
        long dh = packed ? q.size(2) / heads : q.size(3);
        long kdh = packed ? k.size(2) / heads : k.size(3), dv = packed ? v.size(2) / heads : v.size(3);
        boolean headsMatch = packed || k.size(2) == heads && v.size(2) == heads;
        if (k.size(0) != batch || v.size(0) != batch || v.size(1) != lk || kdh != dh || !headsMatch) {
            throw new IllegalArgumentException("attention: expected q [B, Lq, H, Dh], k [B, Lk, H, Dh], v [B, Lk, H, Dv]"
                    + (packed ? " (packed, H = " + heads + ")" : "") + ", got q " + Shapes.toString(q.shape()) + ", k "
                    + Shapes.toString(k.shape()) + ", v " + Shapes.toString(v.shape()));
        }
        Tensor mask = options.keyPaddingMask();
        if (mask != null) {
            checkTensor("attention", "keyPaddingMask", mask);
            if (mask.rank() != 2 || mask.size(0) != batch || mask.size(1) != lk) {
                throw new IllegalArgumentException("attention: keyPaddingMask must be [B, Lk] = [" + batch + ", " + lk
                        + "], got " + Shapes.toString(mask.shape()));
            }
        }
        long[] biasStrides = options.bias() == null ? null
                : biasStrides(options.bias(), new long[] {batch, heads, lq, lk});
        double scale = Double.isNaN(options.scale()) ? 1 / Math.sqrt(Math.max(dh, 1)) : options.scale();
        long[] outShape = packed ? new long[] {batch, lq, heads * dv} : new long[] {batch, lq, heads, dv};
        if (options.returnsWeights()) Shapes.numel("attention: weights", batch, heads, lq, lk);
        AttentionShape s = new AttentionShape(narrow("attention", "B", batch, q, k), narrow("attention", "Lq", lq, q),
                narrow("attention", "Lk", lk, k), narrow("attention", "H", heads, q), narrow("attention", "Dh", dh, q, k),
                narrow("attention", "Dv", dv, v), (float) scale, options.causal(),
                biasStrides, options.allowsTf32());
        Tensor out = null, lse = null, weights = null;
        try {
            out = allocate(outShape, q.dtype());
            if (options.returnsLogSumExp()) lse = allocate(new long[] {batch, heads, lq});
            if (options.returnsWeights()) weights = allocate(new long[] {batch, heads, lq, lk});
            attention(s, q, k, v, mask, options.bias(), out, lse, weights);
            return new AttentionResult(out, lse, weights);
        } catch (RuntimeException | Error e) {
            for (Tensor t : new Tensor[] {out, lse, weights}) if (t != null) t.close();
            throw e;
        }
    }

    @Override
    public final AttentionResult projectedAttention(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value,
            Tensor vWeight, Tensor vBias, AttentionOptions options) {
        Objects.requireNonNull(options, "projectedAttention: options is null");
        // what the projections do not look at is checked before they run
        checkPlacement("projectedAttention", "q", q);
        if (options.keyPaddingMask() != null) checkPlacement("projectedAttention", "keyPaddingMask", options.keyPaddingMask());
        if (options.bias() != null) checkPlacement("projectedAttention", "bias", options.bias());
        AttentionResult folded = foldedAttention(q, key, kWeight, kBias, value, vWeight, vBias, options);
        if (folded != null) return folded;
        try (Tensor k = linear(key, kWeight, kBias); Tensor v = linear(value, vWeight, vBias)) {
            return attention(q, k, v, options);
        }
    }

    @Override
    public final Tensor projectedAttentionMean(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value,
            Tensor vWeight, Tensor vBias, Tensor queryMask, AttentionOptions options) {
        Objects.requireNonNull(options, "projectedAttentionMean: options is null");
        if (options.returnsWeights() || options.returnsLogSumExp()) {
            throw new IllegalArgumentException("projectedAttentionMean: the options ask for the attention weights or the"
                    + " log-sum-exp, which a mean over the queries does not give");
        }
        checkTensor("projectedAttentionMean", "q", q);
        if (q.rank() != 3) {
            throw new IllegalArgumentException("projectedAttentionMean: q must be packed [B, Lq, E], got " + q.describe());
        }
        if (queryMask != null) {
            checkTensor("projectedAttentionMean", "queryMask", queryMask);
            if (queryMask.rank() != 2 || queryMask.size(0) != q.size(0) || queryMask.size(1) != q.size(1)) {
                throw new IllegalArgumentException("projectedAttentionMean: queryMask must be [B, Lq] = [" + q.size(0) + ", "
                        + q.size(1) + "], got " + Shapes.toString(queryMask.shape()));
            }
        }
        Tensor folded = foldedAttentionMean(q, key, kWeight, kBias, value, vWeight, vBias, queryMask, options);
        if (folded != null) return folded;
        try (AttentionResult r = projectedAttention(q, key, kWeight, kBias, value, vWeight, vBias, options)) {
            return poolSequence(r.output(), queryMask, SequencePooling.MEAN);
        }
    }

    /**
     * {@link #projectedAttention} with the projections folded in, where this backend has such a kernel and
     * it takes the call (well-formed arguments, fewer flops); else null, and the projections and the
     * attention run one after the other, checking every argument.
     */
    protected AttentionResult foldedAttention(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value,
            Tensor vWeight, Tensor vBias, AttentionOptions options) {
        return null;
    }

    /**
     * {@link #projectedAttentionMean} with the projections folded in and the probabilities averaged before
     * the values, where this backend has such a kernel and it takes the call; else null (the composite
     * runs, checking every argument). q and queryMask have been checked.
     */
    protected Tensor foldedAttentionMean(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value,
            Tensor vWeight, Tensor vBias, Tensor queryMask, AttentionOptions options) {
        return null;
    }

    // ---- elementwise and normalisation ------------------------------------------------------------------

    @Override
    public final Tensor activation(Tensor x, Activation activation) {
        checkTensor("activation", "x", x);
        Objects.requireNonNull(activation, "activation: activation is null");
        return compute(x.shape(), out -> activation(x, activation, out));
    }

    @Override
    public final Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, double eps) {
        checkTensor("layerNorm", "x", x);
        if (x.rank() < 1) throw new IllegalArgumentException("layerNorm: x must have a last dimension, got " + x.describe());
        long dim = x.size(-1);
        for (Tensor t : new Tensor[] {weight, bias}) {
            if (t == null) continue;
            checkTensor("layerNorm", t == weight ? "weight" : "bias", t);
            if (t.rank() != 1 || t.size(0) != dim) {
                throw new IllegalArgumentException("layerNorm: " + (t == weight ? "weight" : "bias") + " must be [" + dim
                        + "] for x " + Shapes.toString(x.shape()) + ", got " + Shapes.toString(t.shape()));
            }
        }
        // the kernels take eps as a float: it must stay positive and finite there
        if (!((float) eps > 0) || Float.isInfinite((float) eps)) {
            throw new IllegalArgumentException("layerNorm: eps must be a positive finite float32, got " + eps);
        }
        long rows = Shapes.product(x.shape(), 0, x.rank() - 1);
        int width = narrow("layerNorm", "the normalised width", dim, x);
        return compute(x.shape(), out -> layerNorm(x, rows, width, weight, bias, (float) eps, out));
    }

    @Override
    public final Tensor softmax(Tensor x) {
        checkTensor("softmax", "x", x);
        if (x.rank() < 1) throw new IllegalArgumentException("softmax: x must have a last dimension, got " + x.describe());
        long rows = Shapes.product(x.shape(), 0, x.rank() - 1);
        int width = narrow("softmax", "the last dimension", x.size(-1), x);
        return compute(x.shape(), out -> softmax(x, rows, width, out));
    }

    @Override
    public final Tensor add(Tensor a, Tensor b) {
        return binary("add", Binary.ADD, a, b);
    }

    @Override
    public final Tensor subtract(Tensor a, Tensor b) {
        return binary("subtract", Binary.SUBTRACT, a, b);
    }

    @Override
    public final Tensor multiply(Tensor a, Tensor b) {
        return binary("multiply", Binary.MULTIPLY, a, b);
    }

    private Tensor binary(String name, Binary op, Tensor a, Tensor b) {
        checkTensor(name, "a", a);
        checkTensor(name, "b", b);
        long[] as = a.shape(), bs = b.shape();
        if (bs.length > as.length || !Arrays.equals(bs, Arrays.copyOfRange(as, as.length - bs.length, as.length))) {
            throw new IllegalArgumentException(name + ": b must have a's shape or that of a's last dimensions, got a "
                    + Shapes.toString(as) + ", b " + Shapes.toString(bs));
        }
        return compute(a.shape(), out -> binary(op, a, b, out));
    }

    @Override
    public final Tensor poolSequence(Tensor x, Tensor mask, SequencePooling mode) {
        Objects.requireNonNull(mode, "poolSequence: mode is null");
        checkTensor("poolSequence", "x", x);
        if (x.rank() != 3) throw new IllegalArgumentException("poolSequence: x must be [B, N, C], got " + Shapes.toString(x.shape()));
        if (mask != null) {
            checkTensor("poolSequence", "mask", mask);
            if (mask.rank() != 2 || mask.size(0) != x.size(0) || mask.size(1) != x.size(1)) {
                throw new IllegalArgumentException("poolSequence: mask must be [B, N] = [" + x.size(0) + ", " + x.size(1)
                        + "] for x " + Shapes.toString(x.shape()) + ", got " + Shapes.toString(mask.shape()));
            }
        }
        long[] shape = {x.size(0), x.size(2)};
        return compute(shape, out -> poolSequence(x.size(0), x.size(1), x.size(2), x, mask, mode, out));
    }

    @Override
    public final Tensor fillAbsent(Tensor x, Tensor present, Tensor fill) {
        checkTensor("fillAbsent", "x", x);
        checkTensor("fillAbsent", "present", present);
        if (x.rank() < 1 || present.rank() != 1 || present.size(0) != x.size(0)) {
            throw new IllegalArgumentException("fillAbsent: expected x [B, ...] and present [B], got x "
                    + Shapes.toString(x.shape()) + ", present " + Shapes.toString(present.shape()));
        }
        long[] inner = Arrays.copyOfRange(x.shape(), 1, x.rank());
        if (fill != null) {
            checkTensor("fillAbsent", "fill", fill);
            if (!Arrays.equals(fill.shape(), inner)) {
                throw new IllegalArgumentException("fillAbsent: fill must be " + Shapes.toString(inner) + " (x "
                        + Shapes.toString(x.shape()) + " without its first dimension), got " + Shapes.toString(fill.shape()));
            }
        }
        long width = Shapes.product(inner, 0, inner.length);
        return compute(x.shape(), out -> fillAbsent(x.size(0), width, x, present, fill, out));
    }

    @Override
    public final Tensor weightedSum(List<Tensor> xs, Tensor weights) {
        Objects.requireNonNull(xs, "weightedSum: xs is null");
        checkTensor("weightedSum", "weights", weights);
        if (xs.isEmpty()) throw new IllegalArgumentException("weightedSum: xs is empty");
        for (int m = 0; m < xs.size(); m++) checkTensor("weightedSum", "xs[" + m + "]", xs.get(m));
        long[] shape = xs.get(0).shape();
        for (int m = 1; m < xs.size(); m++) {
            if (!Arrays.equals(xs.get(m).shape(), shape)) {
                throw new IllegalArgumentException("weightedSum: every x must have xs[0]'s shape " + Shapes.toString(shape)
                        + ", xs[" + m + "] is " + Shapes.toString(xs.get(m).shape()));
            }
        }
        if (shape.length < 1 || weights.rank() != 2 || weights.size(0) != shape[0] || weights.size(1) != xs.size()) {
            throw new IllegalArgumentException("weightedSum: expected xs [B, ...] and weights [B, M] = [" + (shape.length < 1
                    ? "?" : shape[0]) + ", " + xs.size() + "], got xs " + Shapes.toString(shape) + ", weights "
                    + Shapes.toString(weights.shape()));
        }
        List<Tensor> inputs = List.copyOf(xs);
        long inner = Shapes.product(shape, 1, shape.length);
        return compute(shape, out -> weightedSum(shape[0], inner, inputs, weights, out));
    }

    @Override
    public final Tensor normalizeRows(Tensor x, PoolingOptions options) {
        Objects.requireNonNull(options, "normalizeRows: options is null");
        checkTensor("normalizeRows", "x", x);
        if (x.rank() < 1) throw new IllegalArgumentException("normalizeRows: x must have a last dimension, got " + x.describe());
        if (options.mean()) throw new IllegalArgumentException("normalizeRows: options " + options + " ask for a mean, which rows do not have");
        long rows = Shapes.product(x.shape(), 0, x.rank() - 1);
        return compute(x.shape(), out -> normalizeRows(rows, x.size(-1), x, options, out));
    }

    // ---- bilinear family -------------------------------------------------------------------------------

    @Override
    public final Tensor bilinearPool(Tensor x, Tensor y, PoolingOptions options) {
        Objects.requireNonNull(options, "bilinearPool: options is null");
        checkTensor("bilinearPool", "x", x);
        checkTensor("bilinearPool", "y", y);
        if (x.rank() != 3 || y.rank() != 3 || x.size(0) != y.size(0) || x.size(1) != y.size(1)) {
            throw new IllegalArgumentException("bilinearPool: expected x [B, N, C1] and y [B, N, C2] with the same B and N, got x "
                    + Shapes.toString(x.shape()) + ", y " + Shapes.toString(y.shape()));
        }
        long[] shape = {x.size(0), Shapes.numel("bilinearPool: C1*C2", x.size(2), y.size(2))};
        Shapes.numel("bilinearPool: result", shape);
        PoolShape s = new PoolShape(narrow("bilinearPool", "B", x.size(0), x, y), narrow("bilinearPool", "N", x.size(1), x, y),
                narrow("bilinearPool", "C1", x.size(2), x, y), narrow("bilinearPool", "C2", y.size(2), x, y));
        return compute(shape, out -> bilinearPool(s, x, y, x == y, options, out));
    }

    @Override
    public final Tensor bilinear(Tensor x1, Tensor x2, Tensor weight, Tensor bias) {
        checkTensor("bilinear", "x1", x1);
        checkTensor("bilinear", "x2", x2);
        checkTensor("bilinear", "weight", weight);
        if (weight.rank() != 3) {
            throw new IllegalArgumentException("bilinear: weight must be [out, in1, in2], got " + Shapes.toString(weight.shape()));
        }
        long out = weight.size(0), in1 = weight.size(1), in2 = weight.size(2);
        boolean leadingMatch = x1.rank() >= 1 && x1.rank() == x2.rank();
        for (int d = 0; leadingMatch && d < x1.rank() - 1; d++) leadingMatch = x1.size(d) == x2.size(d);
        if (!leadingMatch || x1.size(-1) != in1 || x2.size(-1) != in2) {
            throw new IllegalArgumentException("bilinear: expected x1 [..., " + in1 + "] and x2 [..., " + in2
                    + "] with the same leading sizes for weight " + Shapes.toString(weight.shape()) + ", got x1 "
                    + Shapes.toString(x1.shape()) + ", x2 " + Shapes.toString(x2.shape()));
        }
        if (bias != null) checkBias("bilinear", bias, out, weight);
        long[] shape = x1.shape();
        shape[shape.length - 1] = out;
        Shapes.numel("bilinear: result", shape);
        long rows = Shapes.product(shape, 0, shape.length - 1);
        BilinearShape s = new BilinearShape(narrow("bilinear", "the rows", rows, x1, x2), narrow("bilinear", "in1", in1, weight),
                narrow("bilinear", "in2", in2, weight), narrow("bilinear", "out", out, weight));
        return compute(shape, c -> bilinear(s, x1, x2, weight, bias, c));
    }

    @Override
    public final Tensor compactBilinearPool(Tensor x, Tensor y, CountSketch sx, CountSketch sy, PoolingOptions options) {
        Objects.requireNonNull(options, "compactBilinearPool: options is null");
        Objects.requireNonNull(sx, "compactBilinearPool: sx is null");
        Objects.requireNonNull(sy, "compactBilinearPool: sy is null");
        checkTensor("compactBilinearPool", "x", x);
        checkTensor("compactBilinearPool", "y", y);
        boolean maps = x.rank() == 3;
        if (x.rank() != 2 && !maps || y.rank() != x.rank() || x.size(0) != y.size(0) || maps && x.size(1) != y.size(1)) {
            throw new IllegalArgumentException("compactBilinearPool: expected x [B, C1] and y [B, C2], or x [B, N, C1] and "
                    + "y [B, N, C2], with the same B and N, got x " + Shapes.toString(x.shape()) + ", y " + Shapes.toString(y.shape()));
        }
        long c1 = x.size(-1), c2 = y.size(-1);
        if (sx.inputDim() != c1 || sy.inputDim() != c2 || sx.outputDim() != sy.outputDim()) {
            throw new IllegalArgumentException("compactBilinearPool: sketches must take x's " + c1 + " and y's " + c2
                    + " units to one d, got sx " + sx.inputDim() + " -> " + sx.outputDim() + " and sy " + sy.inputDim() + " -> "
                    + sy.outputDim() + " for x " + Shapes.toString(x.shape()) + ", y " + Shapes.toString(y.shape()));
        }
        long[] shape = {x.size(0), sx.outputDim()};
        Shapes.numel("compactBilinearPool: result", shape);
        PoolShape s = new PoolShape(narrow("compactBilinearPool", "B", x.size(0), x, y),
                maps ? narrow("compactBilinearPool", "N", x.size(1), x, y) : 1, narrow("compactBilinearPool", "C1", c1, x, y),
                narrow("compactBilinearPool", "C2", c2, x, y));
        return compute(shape, out -> compactBilinearPool(s, x, y, sx, sy, options, out));
    }

    @Override
    public final Tensor factorizedPool(Tensor x, Tensor y, FactorizedPoolOptions options) {
        Objects.requireNonNull(options, "factorizedPool: options is null");
        checkTensor("factorizedPool", "x", x);
        checkTensor("factorizedPool", "y", y);
        if (x.rank() != 2 || !Arrays.equals(x.shape(), y.shape())) {
            throw new IllegalArgumentException("factorizedPool: expected x and y of one shape [B, S*M], got x "
                    + Shapes.toString(x.shape()) + ", y " + Shapes.toString(y.shape()));
        }
        long width = x.size(1), stages = options.stages(), factor = options.factor();
        if (width % stages != 0 || width / stages % factor != 0) {
            throw new IllegalArgumentException("factorizedPool: the width " + width + " of x " + Shapes.toString(x.shape())
                    + " must be stages (" + stages + ") times a multiple of the factor (" + factor + ")");
        }
        FactorizedShape s = new FactorizedShape(narrow("factorizedPool", "B", x.size(0), x), (int) stages,
                narrow("factorizedPool", "the stage width", width / stages, x), (int) factor);
        return compute(new long[] {x.size(0), width / factor}, out -> factorizedPool(s, x, y, options, out));
    }

    /**
     * A size the kernels take as an int, or an exception naming the operation and the shapes: device tensors
     * may pass 2^31 elements along one dimension, and a plain cast would wrap.
     */
    static int narrow(String op, String what, long size, Tensor... of) {
        if (size <= Integer.MAX_VALUE) return (int) size;
        StringBuilder shapes = new StringBuilder();
        for (Tensor t : of) shapes.append(shapes.length() == 0 ? "" : ", ").append(Shapes.toString(t.shape()));
        throw new IllegalArgumentException(op + ": " + what + " = " + size + " is past the kernels' limit of 2^31 - 1 ("
                + shapes + ")");
    }

    /** The bias's strides along [B, H, Lq, Lk] under PyTorch broadcasting, or an exception naming its shape. */
    private long[] biasStrides(Tensor bias, long[] target) {
        checkTensor("attention", "bias", bias);
        long[] shape = bias.shape();
        long[] strides = new long[4];
        long stride = 1;
        boolean ok = shape.length <= 4;
        for (int d = 3, sd = shape.length - 1; d >= 0 && ok; d--, sd--) {
            long size = sd >= 0 ? shape[sd] : 1;
            ok = size == target[d] || size == 1;
            strides[d] = size == 1 ? 0 : stride;
            stride *= size;
        }
        if (!ok) {
            throw new IllegalArgumentException("attention: bias " + Shapes.toString(shape) + " does not broadcast to [B, H, Lq, Lk] = "
                    + Shapes.toString(target));
        }
        return strides;
    }

    /** A new tensor of the shape, filled by {@code fill}; closed again if filling fails. */
    private Tensor compute(long[] shape, Consumer<Tensor> fill) {
        Tensor out = allocate(shape);
        try {
            fill.accept(out);
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
        return out;
    }

    // ---- shared checks ----------------------------------------------------------------------------

    /** q, k and v: placed like every input, F32 or (where the backend takes them) 16-bit, all of q's dtype. */
    private void checkAttentionInput(String argument, Tensor t, Tensor q) {
        checkPlacement("attention", argument, t);
        boolean half = t.dtype() == DType.BF16 || t.dtype() == DType.F16;
        if (t.dtype() != DType.F32 && !(half && takesHalfAttention())) {
            throw new IllegalArgumentException("attention: " + argument + " " + t.describe() + " has dtype " + t.dtype()
                    + "; the " + backend().name().toLowerCase() + " backend takes F32" + (takesHalfAttention()
                            ? ", BF16 or F16" : " (BF16 and F16 run on the CUDA backend)"));
        }
        if (t.dtype() != q.dtype()) {
            throw new IllegalArgumentException("attention: " + argument + " " + t.describe() + " must have q's dtype, "
                    + q.dtype());
        }
    }

    /** A layer's optional bias: a checked tensor of shape [out] (the weight is named in the message). */
    private void checkBias(String op, Tensor bias, long out, Tensor weight) {
        checkTensor(op, "bias", bias);
        if (bias.rank() != 1 || bias.size(0) != out) {
            throw new IllegalArgumentException(op + ": bias must be [" + out + "] for weight " + Shapes.toString(weight.shape())
                    + ", got " + Shapes.toString(bias.shape()));
        }
    }

    /** Null, closed, wrong device and wrong dtype (F32 only), each with a message naming {@code argument}. */
    protected final void checkTensor(String op, String argument, Tensor t) {
        checkPlacement(op, argument, t);
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + ": " + argument + " " + t.describe() + " has dtype " + t.dtype()
                    + "; this operation takes F32");
        }
    }

    /** Not null, open, and on this backend's device. */
    private void checkPlacement(String op, String argument, Tensor t) {
        Objects.requireNonNull(t, op + ": " + argument + " is null");
        t.checkOpen(op + ": " + argument);
        Device device = device();
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(op + ": " + argument + " " + t.describe() + " is on " + t.device()
                    + " but the " + backend().name().toLowerCase() + " backend computes on " + device
                    + "; move it explicitly with Tensor.to(" + device + ")");
        }
    }
}
