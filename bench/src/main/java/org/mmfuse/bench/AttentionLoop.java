package org.mmfuse.bench;

import java.util.Random;
import org.mmfuse.AttentionOptions;
import org.mmfuse.AttentionResult;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/**
 * CPU attention of one shape in a loop, GFLOP/s per half-second slice, for A/B comparisons of two builds in
 * alternating fresh JVMs (on these noisy VMs the reliable way; within one JVM the JIT's history can favour
 * either side) and for profiling with JFR. Not a JMH benchmark: the first slices include compilation.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp CLASSES:$(cat bench/target/classpath.txt) \
 *     org.mmfuse.bench.AttentionLoop B H Lq Lk Dh [slices]
 * </pre>
 */
public final class AttentionLoop {
    private AttentionLoop() {}

    public static void main(String[] args) {
        if (args.length < 5) {
            System.err.println("usage: AttentionLoop B H Lq Lk Dh [slices, default 7]");
            System.exit(2);
        }
        int b = Integer.parseInt(args[0]), h = Integer.parseInt(args[1]), lq = Integer.parseInt(args[2]);
        int lk = Integer.parseInt(args[3]), dh = Integer.parseInt(args[4]);
        int slices = args.length > 5 ? Integer.parseInt(args[5]) : 7;
        Ops ops = MMFuse.ops(Backend.VECTOR);
        Random rng = new Random(1);
        Tensor q = gaussian(rng, b, lq, h, dh), k = gaussian(rng, b, lk, h, dh), v = gaussian(rng, b, lk, h, dh);
        double flops = 4.0 * b * h * lq * lk * dh;
        for (int slice = 0; slice < slices; slice++) {
            long start = System.nanoTime(), calls = 0;
            while (System.nanoTime() - start < 500_000_000L) {
                try (AttentionResult ignored = ops.attention(q, k, v, AttentionOptions.DEFAULT)) {
                    calls++;
                }
            }
            System.out.printf("slice %d: %.1f GFLOP/s%n", slice, flops * calls / (System.nanoTime() - start));
        }
    }

    private static Tensor gaussian(Random rng, long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        float[] data = new float[Math.toIntExact(n)];
        for (int i = 0; i < data.length; i++) data[i] = (float) rng.nextGaussian();
        return Tensor.of(data, shape);
    }
}
