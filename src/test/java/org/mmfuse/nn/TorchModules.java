package org.mmfuse.nn;

import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BilinearImpl;
import org.bytedeco.pytorch.LayerNormImpl;
import org.bytedeco.pytorch.LinearImpl;
import org.bytedeco.pytorch.LongVector;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.MultiheadAttentionImpl;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.StringTensorDict;
import org.bytedeco.pytorch.global.torch;
import org.mmfuse.Tensor;

/**
 * libtorch's own modules through the JavaCPP presets, for {@link TorchParityTest}: each builds one with
 * libtorch's initialisation, runs it on a random input, and hands back its named parameters, the input
 * and the output as MMFuse host tensors. Kept apart so that the test class loads without libtorch.
 */
final class TorchModules {
    private TorchModules() {}

    /** Parameters by PyTorch's names, then "input", "input2" (bilinear) and "output". */
    static Map<String, Tensor> linear(long seed, int in, int out, int rows) {
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            torch.manual_seed(seed);
            LinearImpl m = new LinearImpl(in, out);
            org.bytedeco.pytorch.Tensor x = torch.randn(rows, in);
            return collect(m, x, null, m.forward(x));
        }
    }

    static Map<String, Tensor> bilinear(long seed, int in1, int in2, int out, int rows) {
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            torch.manual_seed(seed);
            BilinearImpl m = new BilinearImpl(in1, in2, out);
            org.bytedeco.pytorch.Tensor x1 = torch.randn(rows, in1), x2 = torch.randn(rows, in2);
            return collect(m, x1, x2, m.forward(x1, x2));
        }
    }

    /** LayerNorm over the last dimension, its affine parameters perturbed from their 1/0 initial values. */
    static Map<String, Tensor> layerNorm(long seed, int dim, int rows) {
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            torch.manual_seed(seed);
            LayerNormImpl m = new LayerNormImpl(new LongVector(new long[] {dim}));
            m.weight().add_(torch.randn(dim).mul(new org.bytedeco.pytorch.Scalar(0.3)));
            m.bias().add_(torch.randn(dim));
            org.bytedeco.pytorch.Tensor x = torch.randn(rows, dim).mul(new org.bytedeco.pytorch.Scalar(3.0));
            return collect(m, x, null, m.forward(x));
        }
    }

    /**
     * nn.MultiheadAttention(embed, heads) (libtorch's C++ module takes kdim == vdim == embed) on a query
     * [batch, lq, embed] and a key/value sequence [batch, lk, embed]; libtorch's sequence-first layout is
     * transposed here, so the tensors handed back are batch-first. "input" is the query, "input2" the keys.
     */
    static Map<String, Tensor> multiheadAttention(long seed, int embed, int heads, int batch, int lq, int lk) {
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            torch.manual_seed(seed);
            MultiheadAttentionImpl m = new MultiheadAttentionImpl(embed, heads);
            m.in_proj_bias().add_(torch.randn(3L * embed).mul(new org.bytedeco.pytorch.Scalar(0.1)));
            org.bytedeco.pytorch.Tensor q = torch.randn(batch, lq, embed), kv = torch.randn(batch, lk, embed);
            org.bytedeco.pytorch.Tensor out = m.forward(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1)).get0()
                    .transpose(0, 1);
            return collect(m, q, kv, out);
        }
    }

    private static Map<String, Tensor> collect(Module m, org.bytedeco.pytorch.Tensor in, org.bytedeco.pytorch.Tensor in2,
            org.bytedeco.pytorch.Tensor out) {
        Map<String, Tensor> all = new LinkedHashMap<>();
        StringTensorDict params = m.named_parameters();
        for (long i = 0; i < params.size(); i++) {
            all.put(params.get(i).key().getString(), host(params.get(i).value()));
        }
        all.put("input", host(in));
        if (in2 != null) all.put("input2", host(in2));
        all.put("output", host(out));
        return all;
    }

    /** A libtorch float tensor's values as a new MMFuse host tensor of its shape. */
    private static Tensor host(org.bytedeco.pytorch.Tensor t) {
        org.bytedeco.pytorch.Tensor c = t.detach().contiguous();
        long[] shape = new long[(int) c.dim()];
        for (int d = 0; d < shape.length; d++) shape[d] = c.size(d);
        float[] values = new float[(int) c.numel()];
        c.data_ptr_float().get(values);
        return Tensor.of(values, shape);
    }
}
