package org.mmfuse.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.mmfuse.AttentionOptions;
import org.mmfuse.AttentionResult;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Attention over projected keys and values, nn.MultiheadAttention's core: 8 heads of 64 (E = 512) for
 * Lq text tokens over Lk regions of kdim features, keys and values from the same regions. The Vector
 * backend's {@link Ops#projectedAttention} (which folds the projections in at these shapes), the same
 * backend projecting first ({@code linear}, {@code linear}, {@code attention}), and libtorch's
 * {@code linear}, {@code linear}, {@code scaled_dot_product_attention}. Then the same averaged over the
 * queries, as a mean-pooled cross-attention fusion needs it: {@link Ops#projectedAttentionMean} (which
 * averages the probabilities before the values) beside libtorch's composite followed by {@code mean}.
 * Shapes {@code B,Lq,Lk,kdim}: the cross-attention model's (regions encoded to 512 first) at batch 32 and
 * 256, and raw 2048-wide regions.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms6g", "-Xmx6g", "-XX:+AlwaysPreTouch"})
public class ProjectedAttentionBench {
    private static final int HEADS = 8, E = 512;

    @Param({"32,32,196,512", "256,32,196,512", "32,32,196,2048"})
    public String shape;

    private Ops vector;
    private Tensor q, regions, kWeight, kBias, vWeight, vBias;
    private org.bytedeco.pytorch.Tensor tq, tRegions, tkWeight, tkBias, tvWeight, tvBias;
    private int batch, lq, lk;

    /** Flops when the keys and values are projected first: two projections and the attention. */
    static double flops(String shape) {
        int[] d = AttentionShapes.dims(shape);
        return 2.0 * d[0] * d[2] * E * d[3] * 2 + 4.0 * d[0] * d[1] * d[2] * E;
    }

    @Setup(Level.Trial)
    public void setUp() {
        int[] d = AttentionShapes.dims(shape);
        batch = d[0];
        lq = d[1];
        lk = d[2];
        int kdim = d[3];
        vector = MMFuse.ops(Backend.VECTOR);
        Random rng = new Random(1);
        q = AttentionShapes.random(rng, batch, lq, E);
        regions = AttentionShapes.random(rng, batch, lk, kdim);
        kWeight = AttentionShapes.random(rng, E, kdim);
        vWeight = AttentionShapes.random(rng, E, kdim);
        kBias = AttentionShapes.random(rng, E);
        vBias = AttentionShapes.random(rng, E);
        torch.set_num_threads(Runtime.getRuntime().availableProcessors());
        tq = torch.rand(batch, lq, E);
        tRegions = torch.rand(batch, lk, kdim);
        tkWeight = torch.rand(E, kdim);
        tvWeight = torch.rand(E, kdim);
        tkBias = torch.rand(E);
        tvBias = torch.rand(E);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Tensor t : new Tensor[] {q, regions, kWeight, kBias, vWeight, vBias}) t.close();
        for (org.bytedeco.pytorch.Tensor t : new org.bytedeco.pytorch.Tensor[] {tq, tRegions, tkWeight, tkBias, tvWeight, tvBias}) {
            t.close();
        }
    }

    @Benchmark
    public float folded() {
        try (AttentionResult r = vector.projectedAttention(q, regions, kWeight, kBias, regions, vWeight, vBias,
                AttentionOptions.DEFAULT.heads(HEADS))) {
            return r.output().array()[0];
        }
    }

    @Benchmark
    public float projectFirst() {
        try (Tensor k = vector.linear(regions, kWeight, kBias); Tensor v = vector.linear(regions, vWeight, vBias);
                AttentionResult r = vector.attention(q, k, v, AttentionOptions.DEFAULT.heads(HEADS))) {
            return r.output().array()[0];
        }
    }

    @Benchmark
    public void torch() {
        try (PointerScope scope = new PointerScope()) {
            org.bytedeco.pytorch.Tensor k = torch.linear(tRegions, tkWeight, new TensorOptional(tkBias));
            org.bytedeco.pytorch.Tensor v = torch.linear(tRegions, tvWeight, new TensorOptional(tvBias));
            torch.scaled_dot_product_attention(heads(tq, lq), heads(k, lk), heads(v, lk));
        }
    }

    @Benchmark
    public float foldedMean() {
        try (Tensor mean = vector.projectedAttentionMean(q, regions, kWeight, kBias, regions, vWeight, vBias, null,
                AttentionOptions.DEFAULT.heads(HEADS))) {
            return mean.array()[0];
        }
    }

    @Benchmark
    public void torchMean() {
        try (PointerScope scope = new PointerScope()) {
            org.bytedeco.pytorch.Tensor k = torch.linear(tRegions, tkWeight, new TensorOptional(tkBias));
            org.bytedeco.pytorch.Tensor v = torch.linear(tRegions, tvWeight, new TensorOptional(tvBias));
            torch.scaled_dot_product_attention(heads(tq, lq), heads(k, lk), heads(v, lk)).mean(new long[] {2});
        }
    }

    /** [B, L, 512] as 8 heads [B, 8, L, 64], as SDPA takes them. */
    private org.bytedeco.pytorch.Tensor heads(org.bytedeco.pytorch.Tensor t, long length) {
        return t.view(batch, length, HEADS, E / HEADS).transpose(1, 2);
    }
}
