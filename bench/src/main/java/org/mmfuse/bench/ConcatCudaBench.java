package org.mmfuse.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.bytedeco.cuda.global.cudart;
import org.mmfuse.Backend;
import org.mmfuse.DeviceMemory;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;
import org.mmfuse.cuda.CudaOps;
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
 * Concatenation on the GPU from Java, launch and synchronisation included, beside the limit: a
 * device-to-device cudaMemcpy of the output's size. Run only where the CUDA backend is available.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
public class ConcatCudaBench {
    @Param({"B1:2048+768", "B32:2048+768", "B256:2048+768+512", "B256:4096x8", "B64:64x4", "B4096:3+5",
            "B32:16x512"})
    public String shape;

    private Ops cuda;
    private List<Tensor> inputs;
    private Tensor out;
    private DeviceMemory copySource, copyTarget;

    @Setup(Level.Trial)
    public void setUp() {
        ConcatShape s = ConcatShape.parse(shape);
        cuda = MMFuse.ops(Backend.CUDA);
        inputs = new ArrayList<>();
        for (long w : s.widths) inputs.add(Tensor.zeros(s.rows, w).to(cuda.device()));
        out = Tensor.zeros(s.rows, s.outputWidth()).to(cuda.device());
        copySource = CudaOps.allocate(cuda.device(), s.bytesMoved() / 2);
        copyTarget = CudaOps.allocate(cuda.device(), s.bytesMoved() / 2);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        inputs.forEach(Tensor::close);
        out.close();
        copySource.close();
        copyTarget.close();
    }

    @Benchmark
    public void cudaInto() {
        cuda.concatInto(out, inputs, -1);
        cuda.synchronize();
    }

    @Benchmark
    public void limitDeviceCopy() {
        org.bytedeco.javacpp.Pointer src = new org.bytedeco.javacpp.Pointer() {
            { address = copySource.address(); }
        };
        org.bytedeco.javacpp.Pointer dst = new org.bytedeco.javacpp.Pointer() {
            { address = copyTarget.address(); }
        };
        cudart.cudaMemcpyAsync(dst, src, copySource.bytes(), cudart.cudaMemcpyDeviceToDevice, cudart.cudaStreamPerThread());
        cuda.synchronize();
    }
}
