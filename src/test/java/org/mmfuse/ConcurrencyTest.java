package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Eight threads sharing inputs and one backend get bit-identical results to one thread, for every
 * operation: the CPU worker team runs one job at a time and a caller that finds it busy computes alone,
 * in the same order; per-thread scratch is never shared.
 */
class ConcurrencyTest {
    static java.util.stream.Stream<Ops> backends() {
        return TestSupport.backends();
    }

    /** One operation on fixed inputs, giving its result on the host. */
    private interface Computation {
        float[] compute() throws Exception;
    }

    private static float[] once(Tensor result) {
        try (Tensor r = result) {
            return r.toArray();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void eightThreadsMatchOne(Ops ops) throws Exception {
        Random rng = new Random(21);
        List<Tensor> held = new ArrayList<>();
        java.util.function.Function<long[], Tensor> input = shape -> {
            Tensor t = TestSupport.on(ops, TestSupport.random(rng, shape));
            held.add(t);
            return t;
        };
        List<Tensor> parts = List.of(input.apply(new long[] {300, 700}), input.apply(new long[] {300, 5}),
                input.apply(new long[] {300, 400}));
        Tensor a = input.apply(new long[] {150, 300}), w = input.apply(new long[] {200, 300}), bias = input.apply(new long[] {200});
        Tensor q = input.apply(new long[] {4, 33, 2, 16}), k = input.apply(new long[] {4, 70, 2, 16});
        Tensor maps = input.apply(new long[] {6, 20, 40}), other = input.apply(new long[] {6, 20, 30});
        Tensor w3 = input.apply(new long[] {9, 40, 30}), x1 = input.apply(new long[] {17, 40}), x2 = input.apply(new long[] {17, 30});
        // vectors wide enough for the transforms, maps small enough for the outer-product route
        Tensor vectors = input.apply(new long[] {20, 400}), vectors2 = input.apply(new long[] {20, 300});
        CountSketch s400 = CountSketch.random(400, 300, 3), s300 = CountSketch.random(300, 300, 4);
        CountSketch s40 = CountSketch.random(40, 300, 1), s30 = CountSketch.random(30, 300, 2);
        Tensor mapMask = input.apply(new long[] {6, 20}), x1Again = input.apply(new long[] {17, 40});
        Tensor mix = input.apply(new long[] {17, 2}), row = input.apply(new long[] {300});
        List<Computation> computations = List.of(
                () -> once(ops.concat(parts, 1)),
                () -> once(ops.linear(a, w, bias)),
                () -> once(ops.attention(q, k, k, AttentionOptions.DEFAULT.causal(true)).output()),
                () -> once(ops.bilinearPool(maps, other, PoolingOptions.BILINEAR_CNN)),
                () -> once(ops.bilinearPool(maps, maps, PoolingOptions.BILINEAR_CNN)),
                () -> once(ops.bilinear(x1, x2, w3, null)),
                () -> once(ops.compactBilinearPool(vectors, vectors2, s400, s300, PoolingOptions.NONE)),
                () -> once(ops.compactBilinearPool(maps, other, s40, s30, PoolingOptions.NONE)),
                () -> once(ops.factorizedPool(a, a, FactorizedPoolOptions.DEFAULT.factor(5).stages(2))),
                () -> once(ops.poolSequence(maps, mapMask, SequencePooling.MEAN)),
                () -> once(ops.weightedSum(List.of(x1, x1Again), mix)),
                () -> once(ops.normalizeRows(a, PoolingOptions.NONE.signedSqrt(0).l2Normalize(true))),
                () -> once(ops.activation(w, Activation.GELU)),
                () -> once(ops.add(w, row)));
        List<float[]> expected = new ArrayList<>();
        for (Computation c : computations) expected.add(c.compute());
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                futures.add(pool.submit(() -> {
                    for (int round = 0; round < 6; round++) {
                        for (int c = 0; c < computations.size(); c++) {
                            assertArrayEquals(expected.get(c), computations.get(c).compute(), "computation " + c);
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) f.get(2, TimeUnit.MINUTES); // rethrows a failed assertion, times out a deadlock
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(1, TimeUnit.MINUTES));
            TestSupport.closeAll(held);
        }
    }
}
