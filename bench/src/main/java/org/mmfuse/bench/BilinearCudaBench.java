package org.mmfuse.bench;

import java.util.concurrent.TimeUnit;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.MatmulPrecision;
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
 * The bilinear family on the GPU from Java, as a caller sees it (checks, allocation, cuBLAS/cuFFT and
 * kernel launches, synchronisation per call), on {@link BilinearBench}'s shapes. Run only where the CUDA
 * backend is available; the kernels beside PyTorch's composites are timed by bench/gpu/bilinear.py.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms4g", "-Xmx4g", "-XX:+AlwaysPreTouch"})
public class BilinearCudaBench {
    @Param({BilinearShapes.POOL_196, BilinearShapes.POOL_49, BilinearShapes.LAYER, BilinearShapes.COMPACT_VECTORS,
        BilinearShapes.COMPACT_MAPS, BilinearShapes.MFB})
    public String shape;

    private Ops cuda, cudaBf16;
    private BilinearShapes.Inputs inputs;

    @Setup(Level.Trial)
    public void setUp() {
        cuda = MMFuse.ops(Backend.CUDA);
        cudaBf16 = cuda.withMatmulPrecision(MatmulPrecision.BF16);
        inputs = new BilinearShapes.Inputs(shape).on(cuda.device());
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        inputs.close();
    }

    @Benchmark
    public void cuda() {
        try (Tensor z = inputs.run(cuda)) {
            cuda.synchronize();
        }
    }

    /** The same with the cuBLAS products on tensor cores in bf16 (fp32 sums). */
    @Benchmark
    public void cudaBf16() {
        try (Tensor z = inputs.run(cudaBf16)) {
            cudaBf16.synchronize();
        }
    }
}
