package org.mmfuse.backend;

import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.mmfuse.Activation;
import org.mmfuse.AttentionOptions;
import org.mmfuse.AttentionResult;
import org.mmfuse.Backend;
import org.mmfuse.CountSketch;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.PoolingOptions;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;

/**
 * The fast CPU backend: Panama Vector API kernels on all cores. Loaded by name only once the probe has
 * seen {@code jdk.incubator.vector} in the boot layer, so that the rest of the library runs without it.
 */
final class VectorOps extends HostOps {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    /** Refuses JVMs whose vectors are too narrow to be worth it. */
    VectorOps() {
        if (SPECIES.vectorBitSize() < 128) {
            throw new UnsupportedOperationException("the preferred vector size is " + SPECIES.vectorBitSize()
                    + " bits: scalar code is as fast");
        }
    }

    @Override
    public String description() {
        return "vector on cpu: " + SPECIES.vectorBitSize() + "-bit vectors (" + SPECIES.length() + " floats), "
                + CpuThreads.SHARED.threads() + " threads";
    }

    @Override
    public Backend backend() {
        return Backend.VECTOR;
    }

    // Concatenation is a pure copy: bulk copies (vectorised memcpy inside the JVM) beat any vector loop.
    @Override
    protected void gather(BlockCopy plan, List<Tensor> pieces, Tensor whole) {
        HostBlockCopy.copy(plan, pieces, whole, true);
    }

    @Override
    protected void gemm(Gemm g, Tensor a, Tensor b, Tensor bias, Tensor c) {
        VectorGemm.multiply(g, a.array(), b.array(), bias == null ? null : bias.array(), c.array());
    }

    @Override
    protected void attention(AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor mask, Tensor bias, Tensor out,
            Tensor lse, Tensor weights) {
        VectorAttention.run(s, q.array(), k.array(), v.array(), mask == null ? null : mask.array(),
                bias == null ? null : bias.array(), out.array(), lse == null ? null : lse.array(),
                weights == null ? null : weights.array());
    }

    @Override
    protected AttentionResult foldedAttention(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value,
            Tensor vWeight, Tensor vBias, AttentionOptions options) {
        if (!FoldedAttention.takes(q, key, kWeight, kBias, value, vWeight, vBias, options, false, null, device())) {
            return null;
        }
        int batch = (int) q.size(0), lq = (int) q.size(1), lk = (int) key.size(1), heads = options.heads();
        int dh = (int) q.size(2) / heads, kdim = (int) key.size(2), vdim = (int) value.size(2);
        double scale = Double.isNaN(options.scale()) ? 1 / Math.sqrt(dh) : options.scale();
        Tensor mask = options.keyPaddingMask();
        Tensor out = allocate(new long[] {batch, lq, (long) heads * dh}), weights = null;
        try {
            if (options.returnsWeights()) weights = allocate(new long[] {batch, heads, lq, lk});
            FoldedAttention.run(batch, lq, lk, heads, dh, kdim, vdim, (float) scale, q.array(), key.array(), kWeight.array(),
                    value.array(), vWeight.array(), vBias == null ? null : vBias.array(), mask == null ? null : mask.array(),
                    out.array(), weights == null ? null : weights.array());
            return new AttentionResult(out, null, weights);
        } catch (RuntimeException | Error e) {
            out.close();
            if (weights != null) weights.close();
            throw e;
        }
    }

    @Override
    protected Tensor foldedAttentionMean(Tensor q, Tensor key, Tensor kWeight, Tensor kBias, Tensor value, Tensor vWeight,
            Tensor vBias, Tensor queryMask, AttentionOptions options) {
        if (!FoldedAttention.takes(q, key, kWeight, kBias, value, vWeight, vBias, options, true, queryMask, device())) {
            return null;
        }
        int batch = (int) q.size(0), lq = (int) q.size(1), lk = (int) key.size(1), heads = options.heads();
        int dh = (int) q.size(2) / heads, kdim = (int) key.size(2), vdim = (int) value.size(2);
        double scale = Double.isNaN(options.scale()) ? 1 / Math.sqrt(dh) : options.scale();
        Tensor mask = options.keyPaddingMask();
        Tensor out = allocate(new long[] {batch, (long) heads * dh});
        try {
            FoldedAttention.runMean(batch, lq, lk, heads, dh, kdim, vdim, (float) scale, q.array(), key.array(),
                    kWeight.array(), value.array(), vWeight.array(), vBias == null ? null : vBias.array(),
                    mask == null ? null : mask.array(), queryMask == null ? null : queryMask.array(), out.array());
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    @Override
    protected void scatter(BlockCopy plan, Tensor whole, List<Tensor> pieces) {
        HostBlockCopy.copy(plan, pieces, whole, false);
    }

    @Override
    protected void bilinearPool(PoolShape s, Tensor x, Tensor y, boolean symmetric, PoolingOptions options, Tensor out) {
        VectorBilinear.pool(s, x.array(), y.array(), symmetric, options, out.array());
    }

    @Override
    protected void bilinear(BilinearShape s, Tensor x1, Tensor x2, Tensor weight, Tensor bias, Tensor out) {
        VectorBilinear.bilinear(s, x1.array(), x2.array(), weight.array(), bias == null ? null : bias.array(), out.array());
    }

    @Override
    protected void compactBilinearPool(PoolShape s, Tensor x, Tensor y, CountSketch sx, CountSketch sy,
            PoolingOptions options, Tensor out) {
        VectorCompactBilinear.pool(s, x.array(), y.array(), sx, sy, options, out.array(),
                VectorCompactBilinear.choose(s, sx.outputDim()));
    }

    @Override
    protected void factorizedPool(FactorizedShape s, Tensor x, Tensor y, FactorizedPoolOptions options, Tensor out) {
        VectorBilinear.factorized(s, x.array(), y.array(), options, out.array());
    }

    @Override
    protected void activation(Tensor x, Activation activation, Tensor out) {
        VectorElementwise.activation(x.array(), activation, out.array());
    }

    @Override
    protected void layerNorm(Tensor x, long rows, int dim, Tensor weight, Tensor bias, float eps, Tensor out) {
        VectorElementwise.layerNorm(x.array(), (int) rows, dim, weight == null ? null : weight.array(),
                bias == null ? null : bias.array(), eps, out.array());
    }

    @Override
    protected void softmax(Tensor x, long rows, int dim, Tensor out) {
        VectorElementwise.softmax(x.array(), (int) rows, dim, out.array());
    }

    @Override
    protected void poolSequence(long batch, long length, long channels, Tensor x, Tensor mask, SequencePooling mode,
            Tensor out) {
        VectorElementwise.poolSequence(x.array(), mask == null ? null : mask.array(), (int) batch, (int) length,
                (int) channels, mode, out.array());
    }

    @Override
    protected void weightedSum(long rows, long inner, List<Tensor> xs, Tensor weights, Tensor out) {
        float[][] arrays = new float[xs.size()][];
        for (int m = 0; m < arrays.length; m++) arrays[m] = xs.get(m).array();
        VectorElementwise.weightedSum(arrays, weights.array(), (int) rows, (int) inner, out.array());
    }

    @Override
    protected void normalizeRows(long rows, long dim, Tensor x, PoolingOptions options, Tensor out) {
        VectorElementwise.normalizeRows(x.array(), (int) rows, (int) dim, options, out.array());
    }
}
