package org.mmfuse.bench;

import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * The machine's limit for fp32 arithmetic as the JVM reaches it: one thread running 12 independent
 * chains of vector FMAs in registers (enough to cover the FMA latency). {@link #FLOPS} per call.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class PeakBench {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int STEPS = 1 << 14;
    private static final int CHAINS = 12;
    /** Floating-point operations per call: 2 per lane per FMA. */
    static final double FLOPS = 2.0 * S.length() * CHAINS * STEPS;

    private float scale = 0.999999f, shift = 1e-7f;

    @Benchmark
    public float fmaPeakOneThread() {
        FloatVector m = FloatVector.broadcast(S, scale), s = FloatVector.broadcast(S, shift);
        FloatVector c0 = FloatVector.broadcast(S, 1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        FloatVector c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int i = 0; i < STEPS; i++) {
            c0 = c0.fma(m, s);
            c1 = c1.fma(m, s);
            c2 = c2.fma(m, s);
            c3 = c3.fma(m, s);
            c4 = c4.fma(m, s);
            c5 = c5.fma(m, s);
            c6 = c6.fma(m, s);
            c7 = c7.fma(m, s);
            c8 = c8.fma(m, s);
            c9 = c9.fma(m, s);
            c10 = c10.fma(m, s);
            c11 = c11.fma(m, s);
        }
        return c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11)
                .reduceLanes(VectorOperators.ADD);
    }
}
