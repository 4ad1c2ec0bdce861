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
 * Eight threads sharing inputs and one backend get bit-identical results to one thread: the CPU
 * worker team runs one job at a time and a caller that finds it busy computes alone, in the same order.
 */
class ConcurrencyTest {
    static java.util.stream.Stream<Ops> backends() {
        return TestSupport.backends();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void eightThreadsMatchOne(Ops ops) throws Exception {
        Random rng = new Random(21);
        List<Tensor> parts = TestSupport.on(ops, List.of(TestSupport.random(rng, 300, 700),
                TestSupport.random(rng, 300, 5), TestSupport.random(rng, 300, 400)));
        Tensor a = TestSupport.on(ops, TestSupport.random(rng, 150, 300));
        Tensor w = TestSupport.on(ops, TestSupport.random(rng, 200, 300));
        Tensor bias = TestSupport.on(ops, TestSupport.random(rng, 200));
        float[] joined, projected;
        try (Tensor j = ops.concat(parts, 1); Tensor p = ops.linear(a, w, bias)) {
            joined = j.toArray();
            projected = p.toArray();
        }
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                futures.add(pool.submit(() -> {
                    for (int round = 0; round < 15; round++) {
                        try (Tensor j = ops.concat(parts, 1); Tensor p = ops.linear(a, w, bias)) {
                            assertArrayEquals(joined, j.toArray());
                            assertArrayEquals(projected, p.toArray());
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) f.get(2, TimeUnit.MINUTES); // rethrows a failed assertion, times out a deadlock
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(1, TimeUnit.MINUTES));
            TestSupport.closeAll(parts);
            a.close();
            w.close();
            bias.close();
        }
    }
}
