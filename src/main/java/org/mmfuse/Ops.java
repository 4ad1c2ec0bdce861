package org.mmfuse;

import java.util.List;

/**
 * The operations every backend implements. Arguments are checked before anything runs: a bad
 * argument throws {@link IllegalArgumentException} (or {@link NullPointerException},
 * {@link IllegalStateException} for a closed tensor) naming it and printing the shapes, and leaves
 * every output untouched. All tensors of one call must be on the backend's device.
 *
 * <p>Semantics follow PyTorch where PyTorch has the operation.
 */
public interface Ops {
    /** Which backend this is. */
    Backend backend();

    /** The device this backend's tensors live on. */
    Device device();

    /**
     * Waits until every operation this thread queued on the backend has finished. CPU backends finish
     * before returning, so this does nothing there; the CUDA backend queues work on a per-thread stream.
     */
    void synchronize();

    /**
     * Waits until every operation any thread queued on this backend's device has finished: before freeing
     * memory that other threads' queued work may still read (a shared model's weights, say). Nothing to do
     * on the CPU backends.
     */
    void synchronizeDevice();

    /** The precision this backend's matrix products may use (see {@link #withMatmulPrecision}). */
    MatmulPrecision matmulPrecision();

    /**
     * This backend with its matrix products allowed to run at {@code precision}: on CUDA, cuBLAS on
     * tensor cores with fp32 accumulation for {@link #matmul}, {@link #linear} (and so every layer built
     * on them), {@link #bilinearPool}, {@link #bilinear} and the outer products of
     * {@link #compactBilinearPool}. Attention has its own switch,
     * {@link AttentionOptions#allowTf32}. The CPU backends compute in fp32 whatever is asked, and return
     * themselves. This backend is unchanged; both share the device and its per-thread streams and scratch.
     */
    Ops withMatmulPrecision(MatmulPrecision precision);

    /**
     * {@code torch.cat(inputs, axis)}: a new tensor joining the inputs along {@code axis} (negative counts
     * from the end). All inputs have the same rank and the same sizes off the axis; as in torch, a
     * 1-D input of size 0 is skipped whatever the others' rank.
     */
    Tensor concat(List<Tensor> inputs, int axis);

    /** {@link #concat} into {@code out}, which must have exactly the result's shape and share no memory with an input. */
    void concatInto(Tensor out, List<Tensor> inputs, int axis);

    /**
     * {@code torch.split(input, splitSize, axis)}: pieces of {@code splitSize} along the axis, the last
     * one smaller if the size does not divide. Unlike torch, the pieces are new tensors, not views.
     */
    List<Tensor> split(Tensor input, long splitSize, int axis);

    /** {@code torch.split(input, sizes, axis)}: pieces of the given sizes, which must sum to the axis size. */
    List<Tensor> split(Tensor input, long[] sizes, int axis);

    /** {@code torch.mm(a, b)}: a [M, K] times b [K, N], a new [M, N] tensor. fp32 accumulation. */
    Tensor matmul(Tensor a, Tensor b);

    /**
     * {@code torch.nn.functional.linear(x, weight, bias)}: x [..., in] times weightᵀ plus bias, a new
     * [..., out] tensor, with PyTorch's layout: weight [out, in], bias [out] or null.
     */
    Tensor linear(Tensor x, Tensor weight, Tensor bias);

    /**
     * {@code F.scaled_dot_product_attention}: softmax(scale · q kᵀ + masks) v per batch and head, with
     * q [B, Lq, H, Dh], k [B, Lk, H, Dh], v [B, Lk, H, Dv] (or all packed [B, L, H*D] with
     * {@link AttentionOptions#heads}). A query whose keys are all masked gets zeros (PyTorch gives NaN).
     * NaN in the inputs propagates to the outputs it reaches; whether a NaN in a key or value that a
     * query cannot see (masked, or past the causal limit) reaches it is unspecified: kernels skip whole
     * blocks of hidden keys, as FlashAttention does, but weigh hidden keys inside a block by 0 (0 · NaN is
     * NaN). The weights of hidden keys are always 0. q, k, v are F32, or on the CUDA backend
     * all BF16 or all F16 (tensor cores, fp32 accumulation; the output takes their dtype); the mask,
     * the bias, the lse and the weights are F32.
     */
    AttentionResult attention(Tensor q, Tensor k, Tensor v, AttentionOptions options);

    /**
     * {@code attention(q, linear(key, kWeight, kBias), linear(value, vWeight, vBias), options)}: attention
     * over projected keys and values, as {@code nn.MultiheadAttention} computes it, with the same arguments,
     * checks and results. A backend may fold the projections into the products where that costs fewer flops
     * (the Vector backend, for a few queries per head beside many wide keys: 8 heads of 32 queries over 196
     * regions of 2048 take 0.65 of the flops); the results then differ by float rounding, and a query with
     * no key gets zeros either way.
     */
    AttentionResult projectedAttention(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value, Tensor vWeight,
            Tensor vBias, AttentionOptions options);

    /**
     * {@code poolSequence(projectedAttention(q, key, kWeight, kBias, value, vWeight, vBias, options).output(),
     * queryMask, MEAN)} for packed queries q [B, Lq, E]: the attention output [B, E] averaged over each batch
     * element's queries whose queryMask [B, Lq] entry is non-zero (null: all of them), zeros for a batch
     * element with none; what a cross-attention fusion pooled over its querying positions needs. The
     * options may not ask for weights or the log-sum-exp. Averaging is linear, so a backend may average
     * the attention probabilities over the queries before they meet the values (the Vector backend, with
     * the projections folded in: one row of values per head instead of Lq); the results then differ by
     * float rounding.
     */
    Tensor projectedAttentionMean(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value, Tensor vWeight,
            Tensor vBias, Tensor queryMask, AttentionOptions options);

    /**
     * Full bilinear pooling (bilinear CNN): for x [B, N, C1] and y [B, N, C2], the [B, C1*C2] tensor
     * whose row b is the sum over locations n of the outer product x[b, n] y[b, n]ᵀ (flattened row-major,
     * element (i, j) at i * C2 + j), finished as {@code options} says. When x and y are the same tensor
     * the product is symmetric and only half of it is computed.
     */
    Tensor bilinearPool(Tensor x, Tensor y, PoolingOptions options);

    /**
     * {@code nn.Bilinear}: x1 [..., C1] and x2 [..., C2] (same leading sizes), weight [K, C1, C2] and bias
     * [K] or null give [..., K] with y_k = x1ᵀ W_k x2 + b_k. No [..., C1, C2] intermediate is formed.
     */
    Tensor bilinear(Tensor x1, Tensor x2, Tensor weight, Tensor bias);

    /**
     * Compact bilinear pooling (Tensor Sketch, MCB): x [B, C1] and y [B, C2], or maps x [B, N, C1] and
     * y [B, N, C2] summed over the N locations, give [B, d]: the circular convolution of the count
     * sketches {@code sx(x)} and {@code sy(y)} (d = their common outputDim), which is
     * {@code irfft(rfft(sx(x)) * rfft(sy(y)), d)}. Finished as {@code options} says (mean divides by N).
     * No [B, N, d] intermediate is formed. A NaN or infinity anywhere in a sample's x or y makes that
     * sample's whole output NaN, as it does through the transforms (whichever way a backend computes).
     */
    Tensor compactBilinearPool(Tensor x, Tensor y, CountSketch sx, CountSketch sy, PoolingOptions options);

    /**
     * The fused core of MLB, MFB and MFH: x and y are the projections [B, S*M] of the two inputs for S
     * stages side by side (M a multiple of the factor k). Stage s's expansion is
     * e_s = e_{s-1} ∘ act(x_s) ∘ act(y_s) (e_0 = act(x_0) ∘ act(y_0)), its output the sums of k
     * consecutive units of e_s, finished as the options' pooling says; the result [B, S*M/k] holds the
     * stages side by side, as MFH concatenates them.
     */
    Tensor factorizedPool(Tensor x, Tensor y, FactorizedPoolOptions options);

    /** The activation applied to every element: a new tensor of x's shape. */
    Tensor activation(Tensor x, Activation activation);

    /**
     * {@code F.layer_norm(x, [D], weight, bias, eps)} over the last dimension D: (x - mean) / sqrt(var + eps)
     * (biased variance) times weight [D] plus bias [D]; weight and bias may be null (1 and 0).
     */
    Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, double eps);

    /** {@code torch.softmax(x, -1)}: over the last dimension; a row of -infinity gives NaN, as in torch. */
    Tensor softmax(Tensor x);

    /**
     * {@code a + b}: a new tensor of a's shape. b has a's shape, or the shape of a's last dimensions
     * (a bias [C] for a [B, C]), broadcast over the others as in torch.
     */
    Tensor add(Tensor a, Tensor b);

    /** {@code a - b}, b broadcast as in {@link #add}. */
    Tensor subtract(Tensor a, Tensor b);

    /** {@code a * b} (the Hadamard product), b broadcast as in {@link #add}. */
    Tensor multiply(Tensor a, Tensor b);

    /**
     * A sequence x [B, N, C] reduced over its N positions to [B, C] as {@code mode} says, reading only
     * the positions whose mask [B, N] entry is nonzero (a null mask keeps all). Dropped positions never
     * reach the result (a NaN there does not either); a sample with no kept position gets zeros.
     */
    Tensor poolSequence(Tensor x, Tensor mask, SequencePooling mode);

    /**
     * Missing-modality substitution: x [B, ...] with every row b whose {@code present[b]} is 0 replaced
     * by {@code fill} (x's shape without B), or by zeros where fill is null. present is [B]; the replaced
     * rows of x are never read, so they may hold anything, NaN included.
     */
    Tensor fillAbsent(Tensor x, Tensor present, Tensor fill);

    /**
     * Σ_m weights[b, m] · xs[m][b, ...]: a new tensor of the inputs' common shape [B, ...], weights [B, M]
     * for M inputs, the terms added in order m = 0, 1, .... A term whose weight is 0 is skipped: its
     * values (NaN included) never reach the result, and a row whose weights are all 0 is 0.
     */
    Tensor weightedSum(List<Tensor> xs, Tensor weights);

    /**
     * x [..., D] finished row by row as {@code options} say (signed square root, then L2 normalisation),
     * as the pooling operations finish theirs; {@code options.mean()} has no meaning here and must be off.
     */
    Tensor normalizeRows(Tensor x, PoolingOptions options);
}
