package org.mmfuse.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
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

/**
 * The scalar backend (the double-precision reference) on {@link AttentionBench}'s shapes, for scale.
 * Without 4,8,1024,1024,128: at about a GFLOP/s one call would take some 17 seconds.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
public class AttentionScalarBench {
    @Param({"32,8,32,196,64", "8,8,64,256,64", "1,16,16,4096,64", "64,12,128,128,64"})
    public String shape;

    private Ops scalar;
    private Tensor q, k, v;

    @Setup(Level.Trial)
    public void setUp() {
        int[] d = AttentionShapes.dims(shape);
        scalar = MMFuse.ops(Backend.SCALAR);
        Random rng = new Random(1);
        q = AttentionShapes.random(rng, d[0], d[2], d[1], d[4]);
        k = AttentionShapes.random(rng, d[0], d[3], d[1], d[4]);
        v = AttentionShapes.random(rng, d[0], d[3], d[1], d[4]);
    }

    @Benchmark
    public float scalarAttention() {
        try (AttentionResult r = scalar.attention(q, k, v, AttentionOptions.DEFAULT)) {
            return r.output().array()[0];
        }
    }
}
