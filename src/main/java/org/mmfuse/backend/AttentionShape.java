package org.mmfuse.backend;

/**
 * One checked attention call as the backends see it. Element (b, position, h, d) of q, k or v lies at
 * ((b * L + position) * heads + h) * D + d, for both the 4-D and the packed 3-D layouts.
 */
public final class AttentionShape {
    public final int batch;
    public final int queries;
    public final int keys;
    public final int heads;
    public final int headDim;
    public final int valueDim;
    public final float scale;
    public final boolean causal;
    /** Elements between successive b, h, i and j of the bias; 0 along broadcast dimensions; null without a bias. */
    public final long[] biasStrides;
    /** F32 inputs may run in TF32 (backends with tensor cores). */
    public final boolean allowTf32;

    AttentionShape(int batch, int queries, int keys, int heads, int headDim, int valueDim, float scale, boolean causal,
            long[] biasStrides, boolean allowTf32) {
        this.batch = batch;
        this.queries = queries;
        this.keys = keys;
        this.heads = heads;
        this.headDim = headDim;
        this.valueDim = valueDim;
        this.scale = scale;
        this.causal = causal;
        this.biasStrides = biasStrides;
        this.allowTf32 = allowTf32;
    }

    /** Where the bias of (b, h, query i, key 0) lies; keys follow at {@code biasStrides[3]}. */
    public int biasAt(int b, int h, int i) {
        return (int) (b * biasStrides[0] + h * biasStrides[1] + i * biasStrides[2]);
    }

    /** biasStrides[d] for the host kernels: a host tensor holds fewer than 2^31 elements, so it fits an int. */
    public int biasStride(int d) {
        return (int) biasStrides[d];
    }

    /** The last key query i may attend under the causal mask (bottom-right aligned); keys - 1 otherwise. */
    public int lastKey(int query) {
        return causal ? Math.min(keys - 1, query + keys - queries) : keys - 1;
    }

    /** Multiply-adds of q kᵀ and p v, twice for flops: 2 (Dh + Dv) per query-key pair. */
    public long flops() {
        return 2L * batch * heads * queries * keys * (headDim + valueDim);
    }
}
