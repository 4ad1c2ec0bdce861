package org.mmfuse;

/**
 * Options of {@link Ops#attention}, as {@code F.scaled_dot_product_attention} has them. Immutable:
 * each method returns a new instance. {@code AttentionOptions.DEFAULT} is scale 1/sqrt(Dh), no mask,
 * not causal, the output alone.
 */
public final class AttentionOptions {
    public static final AttentionOptions DEFAULT = new AttentionOptions(Double.NaN, false, null, null, 0, false, false, false);

    private final double scale;
    private final boolean causal;
    private final Tensor keyPaddingMask;
    private final Tensor bias;
    private final int heads;
    private final boolean returnLse;
    private final boolean returnWeights;
    private final boolean allowTf32;

    private AttentionOptions(double scale, boolean causal, Tensor keyPaddingMask, Tensor bias, int heads,
            boolean returnLse, boolean returnWeights, boolean allowTf32) {
        this.scale = scale;
        this.causal = causal;
        this.keyPaddingMask = keyPaddingMask;
        this.bias = bias;
        this.heads = heads;
        this.returnLse = returnLse;
        this.returnWeights = returnWeights;
        this.allowTf32 = allowTf32;
    }

    /** The factor applied to q·k; default 1/sqrt(Dh). */
    public AttentionOptions scale(double scale) {
        return new AttentionOptions(scale, causal, keyPaddingMask, bias, heads, returnLse, returnWeights, allowTf32);
    }

    /**
     * Causal masking, aligned bottom-right: query i attends key j iff j <= i + (Lk - Lq), as in
     * FlashAttention. For Lq == Lk that is the usual lower triangle; for Lq != Lk PyTorch's
     * {@code is_causal} aligns top-left instead (j <= i), so results differ there.
     */
    public AttentionOptions causal(boolean causal) {
        return new AttentionOptions(scale, causal, keyPaddingMask, bias, heads, returnLse, returnWeights, allowTf32);
    }

    /**
     * Key padding mask [B, Lk]: key j of batch b takes part iff mask[b, j] != 0 (PyTorch's boolean
     * "true = attend", held in a float tensor until MMFuse has boolean tensors). Null: every key. A query
     * whose keys are all hidden gives zeros; a hidden key otherwise enters P·V with weight 0, as in PyTorch,
     * so a NaN or infinity in its value row makes the query rows NaN: keep padding finite.
     */
    public AttentionOptions keyPaddingMask(Tensor mask) {
        return new AttentionOptions(scale, causal, mask, bias, heads, returnLse, returnWeights, allowTf32);
    }

    /**
     * An additive bias on the scaled scores, broadcastable to [B, H, Lq, Lk] as PyTorch broadcasts
     * (sizes aligned right, each equal or 1; -infinity masks). Null: none.
     */
    public AttentionOptions bias(Tensor bias) {
        return new AttentionOptions(scale, causal, keyPaddingMask, bias, heads, returnLse, returnWeights, allowTf32);
    }

    /** The head count, needed only for packed [B, L, H*D] inputs. */
    public AttentionOptions heads(int heads) {
        return new AttentionOptions(scale, causal, keyPaddingMask, bias, heads, returnLse, returnWeights, allowTf32);
    }

    /** Also return the natural log of each query's softmax denominator, [B, H, Lq]. */
    public AttentionOptions withLogSumExp() {
        return new AttentionOptions(scale, causal, keyPaddingMask, bias, heads, true, returnWeights, allowTf32);
    }

    /** Also return the attention weights [B, H, Lq, Lk] (Lq x Lk memory per head: only on request). */
    public AttentionOptions withWeights() {
        return new AttentionOptions(scale, causal, keyPaddingMask, bias, heads, returnLse, true, allowTf32);
    }

    /**
     * Lets F32 inputs run on tensor cores in TF32 (10-bit mantissa products, fp32 accumulation):
     * about 1e-3 relative error instead of fp32's 1e-6, for several times the speed on large shapes.
     * PyTorch's {@code torch.backends.cuda.matmul.allow_tf32}, per call. The CPU backends compute in
     * fp32 whatever this says; the CUDA backend takes it where its tensor-core kernel takes the shape
     * (Dh and Dv multiples of 8 up to 128). Weights asked for with it are recomputed in fp32 against the
     * TF32 pass's log-sum-exp, so their rows sum to 1 only within TF32's error.
     */
    public AttentionOptions allowTf32(boolean allow) {
        return new AttentionOptions(scale, causal, keyPaddingMask, bias, heads, returnLse, returnWeights, allow);
    }

    public boolean allowsTf32() {
        return allowTf32;
    }

    /** The scale, or NaN for the default. */
    public double scale() {
        return scale;
    }

    public boolean causal() {
        return causal;
    }

    public Tensor keyPaddingMask() {
        return keyPaddingMask;
    }

    public Tensor bias() {
        return bias;
    }

    /** 0 when not given. */
    public int heads() {
        return heads;
    }

    public boolean returnsLogSumExp() {
        return returnLse;
    }

    public boolean returnsWeights() {
        return returnWeights;
    }
}
