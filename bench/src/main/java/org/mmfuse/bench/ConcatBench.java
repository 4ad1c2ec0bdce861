package org.mmfuse.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.bytedeco.pytorch.TensorVector;
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
 * Concatenation along the last axis on the CPU: the scalar reference, the Vector backend (into a
 * preallocated output and allocating), libtorch's {@code cat_out} and {@code cat} on the same shapes
 * with the same number of threads, and the limit: one {@link System#arraycopy} of the output's size.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
public class ConcatBench {
    /** Fusion shapes: batch 1-256, 2-8 inputs of 64-4096 features, small slices, and many small inputs. */
    @Param({"B1:2048+768", "B32:2048+768", "B256:2048+768+512", "B256:4096x8", "B64:64x4", "B4096:3+5",
            "B32:16x512"})
    public String shape;

    private Ops scalar, vector;
    private List<Tensor> inputs;
    private Tensor out;
    private float[] copySource, copyTarget;
    private TensorVector torchInputs;
    private org.bytedeco.pytorch.Tensor torchOut;

    @Setup(Level.Trial)
    public void setUp() {
        ConcatShape s = ConcatShape.parse(shape);
        scalar = MMFuse.ops(Backend.SCALAR);
        vector = MMFuse.ops(Backend.VECTOR);
        Random rng = new Random(1);
        inputs = new ArrayList<>();
        List<org.bytedeco.pytorch.Tensor> torchList = new ArrayList<>();
        for (long w : s.widths) {
            float[] data = new float[Math.toIntExact(s.rows * w)];
            for (int i = 0; i < data.length; i++) data[i] = rng.nextFloat();
            inputs.add(Tensor.of(data, s.rows, w));
            torchList.add(torch.rand(s.rows, w));
        }
        out = Tensor.zeros(s.rows, s.outputWidth());
        copySource = new float[Math.toIntExact(s.rows * s.outputWidth())];
        copyTarget = new float[copySource.length];
        torch.set_num_threads(Runtime.getRuntime().availableProcessors());
        torchInputs = new TensorVector(torchList.toArray(new org.bytedeco.pytorch.Tensor[0]));
        torchOut = torch.empty(s.rows, s.outputWidth());
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        torchInputs.close();
        torchOut.close();
    }

    @Benchmark
    public void limitArraycopy() {
        System.arraycopy(copySource, 0, copyTarget, 0, copySource.length);
    }

    @Benchmark
    public void scalarInto() {
        scalar.concatInto(out, inputs, -1);
    }

    @Benchmark
    public void vectorInto() {
        vector.concatInto(out, inputs, -1);
    }

    @Benchmark
    public float vectorAllocating() {
        try (Tensor t = vector.concat(inputs, -1)) {
            return t.array()[0];
        }
    }

    @Benchmark
    public void torchCatOut() {
        torch.cat_out(torchOut, torchInputs, -1).close();
    }

    @Benchmark
    public void torchCat() {
        torch.cat(torchInputs, -1).close();
    }
}
