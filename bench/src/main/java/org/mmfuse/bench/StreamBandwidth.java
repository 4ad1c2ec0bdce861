package org.mmfuse.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The memory bandwidth the JVM reaches here: each of N threads sums its own 64 MB array four times with
 * vector loads, GB/s over all threads. Against it, a kernel's bytes per call say how much of its time
 * memory alone would take (see bench/results/2026-12-07-cpu-few-queries-quads.md).
 *
 * <pre>
 * java -Xmx2g --add-modules jdk.incubator.vector -cp $(cat bench/target/classpath.txt):bench/target/classes \
 *     org.mmfuse.bench.StreamBandwidth [threads, default 2]
 * </pre>
 */
public final class StreamBandwidth {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int FLOATS = 1 << 24, PASSES = 4;

    private StreamBandwidth() {}

    public static void main(String[] args) throws InterruptedException {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        float[][] arrays = new float[threads][FLOATS];
        for (float[] a : arrays) java.util.Arrays.fill(a, 1f);
        float[] sums = new float[threads];
        for (int round = 0; round < 6; round++) {
            Thread[] workers = new Thread[threads];
            long start = System.nanoTime();
            for (int t = 0; t < threads; t++) {
                int id = t;
                workers[t] = new Thread(() -> sums[id] = sum(arrays[id]));
                workers[t].start();
            }
            for (Thread w : workers) w.join();
            double bytes = (double) threads * PASSES * FLOATS * Float.BYTES;
            System.out.printf("%d threads: %.1f GB/s (checksum %.0f)%n", threads, bytes / (System.nanoTime() - start), sums[0]);
        }
    }

    private static float sum(float[] a) {
        FloatVector acc = FloatVector.zero(S);
        for (int pass = 0; pass < PASSES; pass++) {
            for (int i = 0; i < a.length; i += S.length()) acc = acc.add(FloatVector.fromArray(S, a, i));
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }
}
