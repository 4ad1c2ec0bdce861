package org.mmfuse.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
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
 * Cross-attention on the CPU: the Vector backend beside libtorch's {@code scaled_dot_product_attention}
 * (same threads), libtorch twice: on contiguous [B, H, L, D] tensors, its own layout, where each head's rows
 * are one run, and on ours, [B, L, H, D] seen as [B, H, L, D] through {@code transpose(1, 2)} (as
 * {@code nn.MultiheadAttention} hands them over), where a head's rows lie H D floats apart. Shapes
 * {@code B,H,Lq,Lk,Dh}: text tokens over image regions, latents over a long sequence, self-attention sizes
 * (issue 3's five), then a few queries over image regions and one query per sample over ViT-L/14's 577
 * tokens (605 MB of keys and values: bound by memory).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
public class AttentionBench {
    @Param({"32,8,32,196,64", "8,8,64,256,64", "1,16,16,4096,64", "64,12,128,128,64", "4,8,1024,1024,128",
        "32,8,4,196,64", "256,8,1,577,64"})
    public String shape;

    private Ops vector;
    private Tensor q, k, v;
    /** libtorch's inputs in its layout, and in ours (views). */
    private org.bytedeco.pytorch.Tensor tq, tk, tv, sq, sk, sv;

    @Setup(Level.Trial)
    public void setUp() {
        int[] d = AttentionShapes.dims(shape);
        int b = d[0], h = d[1], lq = d[2], lk = d[3], dh = d[4];
        vector = MMFuse.ops(Backend.VECTOR);
        Random rng = new Random(1);
        q = AttentionShapes.random(rng, b, lq, h, dh);
        k = AttentionShapes.random(rng, b, lk, h, dh);
        v = AttentionShapes.random(rng, b, lk, h, dh);
        torch.set_num_threads(Runtime.getRuntime().availableProcessors());
        tq = torch.rand(b, h, lq, dh);
        tk = torch.rand(b, h, lk, dh);
        tv = torch.rand(b, h, lk, dh);
        sq = headsSecond(b, lq, h, dh);
        sk = headsSecond(b, lk, h, dh);
        sv = headsSecond(b, lk, h, dh);
    }

    /** A [B, H, L, D] view of a new [B, L, H, D] tensor; the view keeps the storage alive. */
    private static org.bytedeco.pytorch.Tensor headsSecond(long b, long l, long h, long d) {
        try (org.bytedeco.pytorch.Tensor rows = torch.rand(b, l, h, d)) {
            return rows.transpose(1, 2);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        tq.close();
        tk.close();
        tv.close();
        sq.close();
        sk.close();
        sv.close();
    }

    @Benchmark
    public float vectorAttention() {
        try (AttentionResult r = vector.attention(q, k, v, AttentionOptions.DEFAULT)) {
            return r.output().array()[0];
        }
    }

    @Benchmark
    public void torchSdpa() {
        torch.scaled_dot_product_attention(tq, tk, tv).close();
    }

    @Benchmark
    public void torchSdpaOurs() {
        torch.scaled_dot_product_attention(sq, sk, sv).close();
    }
}
