package org.mmfuse.bench;

import java.util.concurrent.TimeUnit;
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
 * The scalar backend (the double-precision reference, one thread) on {@link BilinearBench}'s shapes,
 * for scale. Without the bilinear layer and the spatial compact shape, whose calls take ten seconds
 * and more there.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xms4g", "-Xmx4g", "-XX:+AlwaysPreTouch"})
public class BilinearScalarBench {
    @Param({BilinearShapes.POOL_196, BilinearShapes.POOL_49, BilinearShapes.COMPACT_VECTORS, BilinearShapes.MFB})
    public String shape;

    private Ops scalar;
    private BilinearShapes.Inputs inputs;

    @Setup(Level.Trial)
    public void setUp() {
        scalar = MMFuse.ops(Backend.SCALAR);
        inputs = new BilinearShapes.Inputs(shape);
    }

    @Benchmark
    public float scalar() {
        try (Tensor z = inputs.run(scalar)) {
            return z.array()[0];
        }
    }
}
