package org.mmfuse.bench;

import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.StringViewOptional;
import org.bytedeco.pytorch.TensorOptional;
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
 * The bilinear family on the CPU: the Vector backend beside PyTorch's composites in libtorch (same
 * threads), on {@link BilinearShapes}. The torch side is what a PyTorch model runs: {@code bmm}, then
 * sign · sqrt(|z| + eps) and {@code normalize}; {@code torch.bilinear}; count sketches by
 * {@code index_add}, {@code rfft}, product (summed over locations), {@code irfft}; two {@code linear}s,
 * product, grouped sum, signed root, {@code normalize}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms4g", "-Xmx4g", "-XX:+AlwaysPreTouch"})
public class BilinearBench {
    @Param({BilinearShapes.POOL_196, BilinearShapes.POOL_49, BilinearShapes.LAYER, BilinearShapes.COMPACT_VECTORS,
        BilinearShapes.COMPACT_MAPS, BilinearShapes.MFB})
    public String shape;

    private Ops vector;
    private BilinearShapes.Inputs inputs;
    private float[] pooled; // for outputFloor: an output the size of full pooling's
    private org.bytedeco.pytorch.Tensor ta, tb, tw0, tb0, tw1, tb1, th1, ts1, th2, ts2;

    @Setup(Level.Trial)
    public void setUp() {
        vector = MMFuse.ops(Backend.VECTOR);
        inputs = new BilinearShapes.Inputs(shape);
        torch.set_num_threads(Runtime.getRuntime().availableProcessors());
        int[] d = inputs.shape.d;
        switch (inputs.shape.op) {
            case "pool":
                ta = torch.rand(d[0], d[1], d[2]);
                tb = torch.rand(d[0], d[1], d[3]);
                pooled = new float[d[0] * d[2] * d[3]];
                break;
            case "layer":
                ta = torch.rand(d[0], d[1]);
                tb = torch.rand(d[0], d[2]);
                tw0 = torch.rand(d[3], d[1], d[2]);
                tb0 = torch.rand(d[3]);
                break;
            case "compact":
                ta = torch.rand((long) d[0] * d[1], d[2]);
                tb = torch.rand((long) d[0] * d[1], d[2]);
                th1 = torch.randint(d[3], new long[] {d[2]});
                th2 = torch.randint(d[3], new long[] {d[2]});
                ts1 = torch.rand(d[2]).sign();
                ts2 = torch.rand(d[2]).sign().neg();
                break;
            default:
                ta = torch.rand(d[0], d[1]);
                tb = torch.rand(d[0], d[2]);
                tw0 = torch.rand((long) d[3] * d[4], d[1]);
                tb0 = torch.rand((long) d[3] * d[4]);
                tw1 = torch.rand((long) d[3] * d[4], d[2]);
                tb1 = torch.rand((long) d[3] * d[4]);
        }
        // ./mmfuse bench warms up for under a second, which left the FFT passes' compilation unfinished in
        // some runs (compact pooling measured 4.2 to 7 ms from run to run): two seconds of calls each first.
        for (long end = System.nanoTime() + 2_000_000_000L; System.nanoTime() < end; ) vector();
        for (long end = System.nanoTime() + 2_000_000_000L; System.nanoTime() < end; ) torch();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (org.bytedeco.pytorch.Tensor t : new org.bytedeco.pytorch.Tensor[] {ta, tb, tw0, tb0, tw1, tb1, th1, ts1, th2, ts2}) {
            if (t != null) t.close();
        }
    }

    @Benchmark
    public float vector() {
        try (Tensor z = inputs.run(vector)) {
            return z.array()[0];
        }
    }

    /**
     * The memory floor of full pooling with L2 normalisation, measured beside it: each sample's output
     * written, then scaled in place (the norm is known only once the whole sample is), on every core,
     * with no arithmetic to speak of. Nothing for the other operations, whose outputs are small.
     */
    @Benchmark
    public float outputFloor() {
        if (pooled == null) return 0f;
        int batch = inputs.shape.d[0], size = pooled.length / batch;
        java.util.stream.IntStream.range(0, batch).parallel().forEach(b -> {
            int at = b * size;
            for (int i = 0; i < size; i++) pooled[at + i] = i;
            for (int i = 0; i < size; i++) pooled[at + i] *= 0.5f;
        });
        return pooled[0];
    }

    @Benchmark
    public void torch() {
        int[] d = inputs.shape.d;
        try (PointerScope scope = new PointerScope()) {
            switch (inputs.shape.op) {
                case "pool": {
                    org.bytedeco.pytorch.Tensor z = torch.bmm(ta.transpose(1, 2), tb).div(new Scalar((double) d[1])).view(d[0], -1);
                    z = torch.sign(z).mul(torch.sqrt(torch.abs(z).add(new Scalar(1e-12))));
                    torch.normalize(z);
                    break;
                }
                case "layer":
                    torch.bilinear(ta, tb, tw0, new TensorOptional(tb0));
                    break;
                case "compact": {
                    long items = (long) d[0] * d[1];
                    org.bytedeco.pytorch.Tensor a = torch.zeros(items, d[3]).index_add(1, th1, ta.mul(ts1));
                    org.bytedeco.pytorch.Tensor b = torch.zeros(items, d[3]).index_add(1, th2, tb.mul(ts2));
                    org.bytedeco.pytorch.Tensor p = torch.fft_rfft(a).mul(torch.fft_rfft(b));
                    if (d[1] > 1) p = p.view(d[0], d[1], -1).sum(1);
                    torch.fft_irfft(p, new LongOptional(d[3]), -1, new StringViewOptional());
                    break;
                }
                default: {
                    org.bytedeco.pytorch.Tensor z = torch.linear(ta, tw0, new TensorOptional(tb0))
                            .mul(torch.linear(tb, tw1, new TensorOptional(tb1))).view(d[0], d[3], d[4]).sum(2);
                    z = torch.sqrt(torch.relu(z)).sub(torch.sqrt(torch.relu(z.neg())));
                    torch.normalize(z);
                }
            }
        }
    }
}
