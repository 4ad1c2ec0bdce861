package org.mmfuse.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.mmfuse.AttentionOptions;
import org.mmfuse.AttentionResult;
import org.mmfuse.Backend;
import org.mmfuse.DType;
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
 * Attention on the GPU from Java, as a Java caller sees it: argument checks, output allocation,
 * launch and synchronisation per call. {@code precision}: f32 (CUDA cores), tf32 (F32 inputs on
 * tensor cores), bf16. The same shapes as {@link AttentionBench}. Run only where the CUDA backend is
 * available; the kernels alone, beside PyTorch's, are timed by bench/gpu/attention.py.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
public class AttentionCudaBench {
    @Param({"32,8,32,196,64", "8,8,64,256,64", "1,16,16,4096,64", "64,12,128,128,64", "4,8,1024,1024,128"})
    public String shape;

    @Param({"f32", "tf32", "bf16"})
    public String precision;

    private Ops cuda;
    private Tensor q, k, v;
    private AttentionOptions options;

    @Setup(Level.Trial)
    public void setUp() {
        int[] d = AttentionShapes.dims(shape);
        int b = d[0], h = d[1], lq = d[2], lk = d[3], dh = d[4];
        cuda = MMFuse.ops(Backend.CUDA);
        DType dtype = precision.equals("bf16") ? DType.BF16 : DType.F32;
        Random rng = new Random(1);
        q = AttentionShapes.random(rng, b, lq, h, dh).to(cuda.device(), dtype);
        k = AttentionShapes.random(rng, b, lk, h, dh).to(cuda.device(), dtype);
        v = AttentionShapes.random(rng, b, lk, h, dh).to(cuda.device(), dtype);
        options = AttentionOptions.DEFAULT.allowTf32(precision.equals("tf32"));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        q.close();
        k.close();
        v.close();
    }

    @Benchmark
    public void cudaAttention() {
        try (AttentionResult r = cuda.attention(q, k, v, options)) {
            cuda.synchronize();
        }
    }
}
