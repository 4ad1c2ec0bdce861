package org.mmfuse.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.global.torch;
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
 * fp32 matrix products on the CPU: the Vector backend's {@code matmul} and {@code linear} beside
 * libtorch's {@code mm} and {@code linear} (same threads). Shapes {@code MxKxN}: squares, and the
 * projections of fusion models (a batch of 64 through 2048 -> 1200, 32 tokens through 768 -> 512).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
public class GemmBench {
    @Param({"512x512x512", "1024x1024x1024", "2048x2048x2048", "64x2048x1200", "32x768x512"})
    public String shape;

    private Ops vector;
    private Tensor a, b, weight, bias;
    private org.bytedeco.pytorch.Tensor ta, tb, tWeight, tBias;

    /** M, K, N of a shape written MxKxN. */
    static long[] dims(String shape) {
        String[] p = shape.split("x");
        return new long[] {Long.parseLong(p[0]), Long.parseLong(p[1]), Long.parseLong(p[2])};
    }

    @Setup(Level.Trial)
    public void setUp() {
        long[] d = dims(shape);
        long m = d[0], k = d[1], n = d[2];
        vector = MMFuse.ops(Backend.VECTOR);
        Random rng = new Random(1);
        a = random(rng, m, k);
        b = random(rng, k, n);
        weight = random(rng, n, k);
        bias = random(rng, n);
        torch.set_num_threads(Runtime.getRuntime().availableProcessors());
        ta = torch.rand(m, k);
        tb = torch.rand(k, n);
        tWeight = torch.rand(n, k);
        tBias = torch.rand(n);
    }

    private static Tensor random(Random rng, long... shape) {
        float[] data = new float[Math.toIntExact(shape.length == 1 ? shape[0] : shape[0] * shape[1])];
        for (int i = 0; i < data.length; i++) data[i] = rng.nextFloat() - 0.5f;
        return Tensor.of(data, shape);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ta.close();
        tb.close();
        tWeight.close();
        tBias.close();
    }

    @Benchmark
    public float vectorMatmul() {
        try (Tensor c = vector.matmul(a, b)) {
            return c.array()[0];
        }
    }

    @Benchmark
    public void torchMm() {
        torch.mm(ta, tb).close();
    }

    @Benchmark
    public float vectorLinear() {
        try (Tensor c = vector.linear(a, weight, bias)) {
            return c.array()[0];
        }
    }

    @Benchmark
    public void torchLinear() {
        torch.linear(ta, tWeight, new org.bytedeco.pytorch.TensorOptional(tBias)).close();
    }
}
