package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** concat, concatInto and split on every available backend against the definition of torch.cat. */
class ConcatTest {
    static java.util.stream.Stream<Ops> backends() {
        return TestSupport.backends();
    }

    /** Concatenates on the backend and checks bit-exact equality with the reference, and the shape. */
    private static void checkConcat(Ops ops, List<Tensor> host, int axis, long[] expectedShape) {
        List<Tensor> inputs = TestSupport.on(ops, host);
        try (Tensor out = ops.concat(inputs, axis)) {
            assertArrayEquals(expectedShape, out.shape(), "shape of concat along " + axis);
            assertArrayEquals(TestSupport.referenceConcat(host, axis), out.toArray(),
                    () -> ops.backend() + ": concat of " + shapes(host) + " along " + axis);
        } finally {
            TestSupport.closeAll(inputs);
        }
    }

    private static String shapes(List<Tensor> ts) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ts.size() && i < 8; i++) sb.append(Shapes.toString(ts.get(i).shape())).append(' ');
        return ts.size() > 8 ? sb + "... (" + ts.size() + " tensors)" : sb.toString();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void randomShapesEveryAxis(Ops ops) {
        Random rng = new Random(1);
        for (int trial = 0; trial < 200; trial++) {
            int rank = 1 + rng.nextInt(4);
            long[] base = new long[rank];
            for (int d = 0; d < rank; d++) base[d] = rng.nextInt(4) == 0 ? rng.nextInt(2) : 1 + rng.nextInt(9);
            int axis = rng.nextInt(rank);
            int count = 1 + rng.nextInt(5);
            List<Tensor> host = new ArrayList<>();
            long total = 0;
            for (int i = 0; i < count; i++) {
                long[] s = base.clone();
                s[axis] = rng.nextInt(6) == 0 ? 0 : 1 + rng.nextInt(13);
                total += s[axis];
                host.add(TestSupport.random(rng, s));
            }
            long[] expected = base.clone();
            expected[axis] = total;
            // negative axes half of the time
            checkConcat(ops, host, rng.nextBoolean() ? axis : axis - rank, expected);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void fusionShapesLastAxis(Ops ops) {
        Random rng = new Random(2);
        // image [B, 2048] | text [B, 768] | audio [B, 3]: odd widths and offsets not multiples of 4 floats
        for (int b : new int[] {1, 7, 64}) {
            checkConcat(ops, List.of(TestSupport.random(rng, b, 2048), TestSupport.random(rng, b, 3),
                    TestSupport.random(rng, b, 768), TestSupport.random(rng, b, 1)), -1, new long[] {b, 2820});
        }
        // sequences: [B, N, C] along the token axis and along features
        checkConcat(ops, List.of(TestSupport.random(rng, 3, 49, 17), TestSupport.random(rng, 3, 5, 17)), 1,
                new long[] {3, 54, 17});
        checkConcat(ops, List.of(TestSupport.random(rng, 3, 5, 17), TestSupport.random(rng, 3, 5, 4)), 2,
                new long[] {3, 5, 21});
    }

    @ParameterizedTest
    @MethodSource("backends")
    void thousandsOfInputs(Ops ops) {
        Random rng = new Random(3);
        List<Tensor> host = new ArrayList<>();
        long total = 0;
        for (int i = 0; i < 3000; i++) {
            long w = rng.nextInt(5); // zero widths included
            total += w;
            host.add(TestSupport.random(rng, 4, w));
        }
        checkConcat(ops, host, 1, new long[] {4, total});
        List<Tensor> rows = new ArrayList<>();
        for (int i = 0; i < 2000; i++) rows.add(TestSupport.random(rng, 1, 3));
        checkConcat(ops, rows, 0, new long[] {2000, 3});
    }

    @ParameterizedTest
    @MethodSource("backends")
    void largeEnoughToRunInParallel(Ops ops) {
        Random rng = new Random(4);
        // 1.5 M floats: past the CPU backend's parallel threshold, cut across rows and pieces
        checkConcat(ops, List.of(TestSupport.random(rng, 500, 1000), TestSupport.random(rng, 500, 7),
                TestSupport.random(rng, 500, 2000)), 1, new long[] {500, 3007});
        checkConcat(ops, List.of(TestSupport.random(rng, 1, 700_001), TestSupport.random(rng, 1, 900_000)), 1,
                new long[] {1, 1_600_001});
    }

    @ParameterizedTest
    @MethodSource("backends")
    void legacyEmptyInputsAreSkipped(Ops ops) {
        Random rng = new Random(5);
        // torch.cat([x of [2, 3], empty of [0]], 1) is x: a 1-D size-0 tensor joins anything
        checkConcat(ops, List.of(TestSupport.random(rng, 2, 3), Tensor.zeros(0), TestSupport.random(rng, 2, 2)), 1,
                new long[] {2, 5});
        checkConcat(ops, List.of(Tensor.zeros(0), Tensor.zeros(0)), 0, new long[] {0});
        checkConcat(ops, List.of(TestSupport.random(rng, 1)), 0, new long[] {1});
    }

    @ParameterizedTest
    @MethodSource("backends")
    void concatIntoWritesEveryElement(Ops ops) {
        Random rng = new Random(6);
        List<Tensor> host = List.of(TestSupport.random(rng, 5, 3, 2), TestSupport.random(rng, 5, 1, 2));
        float[] stale = new float[5 * 4 * 2];
        java.util.Arrays.fill(stale, Float.NaN);
        List<Tensor> inputs = TestSupport.on(ops, host);
        try (Tensor out = TestSupport.on(ops, Tensor.of(stale, 5, 4, 2))) {
            ops.concatInto(out, inputs, -2);
            assertArrayEquals(TestSupport.referenceConcat(host, 1), out.toArray());
        } finally {
            TestSupport.closeAll(inputs);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void splitInvertsConcatExactly(Ops ops) {
        Random rng = new Random(7);
        for (int trial = 0; trial < 100; trial++) {
            int rank = 1 + rng.nextInt(3);
            int axis = rng.nextInt(rank);
            long[] base = new long[rank];
            for (int d = 0; d < rank; d++) base[d] = rng.nextInt(5) == 0 ? 1 : 1 + rng.nextInt(7);
            List<Tensor> host = new ArrayList<>();
            long[] sizes = new long[1 + rng.nextInt(6)];
            for (int i = 0; i < sizes.length; i++) {
                long[] s = base.clone();
                s[axis] = sizes[i] = rng.nextInt(5);
                host.add(TestSupport.random(rng, s));
            }
            List<Tensor> inputs = TestSupport.on(ops, host);
            try (Tensor joined = ops.concat(inputs, axis)) {
                List<Tensor> pieces = ops.split(joined, sizes, axis - rank);
                try {
                    assertEquals(host.size(), pieces.size());
                    for (int i = 0; i < pieces.size(); i++) {
                        assertArrayEquals(host.get(i).shape(), pieces.get(i).shape());
                        assertArrayEquals(host.get(i).array(), pieces.get(i).toArray(), "piece " + i);
                    }
                } finally {
                    TestSupport.closeAll(pieces);
                }
            } finally {
                TestSupport.closeAll(inputs);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void splitBySizeFollowsTorch(Ops ops) {
        Random rng = new Random(8);
        Tensor host = TestSupport.random(rng, 3, 10);
        try (Tensor input = TestSupport.on(ops, host)) {
            // torch.split(x, 4, 1) -> widths 4, 4, 2
            List<Tensor> pieces = ops.split(input, 4, 1);
            try {
                assertEquals(3, pieces.size());
                assertArrayEquals(new long[] {3, 2}, pieces.get(2).shape());
                assertArrayEquals(host.array(), TestSupport.referenceConcat(hostCopies(pieces), 1));
            } finally {
                TestSupport.closeAll(pieces);
            }
            // a size larger than the axis gives the whole tensor as one piece
            List<Tensor> one = ops.split(input, 100, -1);
            assertEquals(1, one.size());
            assertArrayEquals(host.array(), one.get(0).toArray());
            TestSupport.closeAll(one);
        }
        // an empty axis splits into one empty piece, also with size 0
        try (Tensor empty = TestSupport.on(ops, Tensor.zeros(2, 0))) {
            for (long size : new long[] {0, 3}) {
                List<Tensor> pieces = ops.split(empty, size, 1);
                assertEquals(1, pieces.size());
                assertArrayEquals(new long[] {2, 0}, pieces.get(0).shape());
                TestSupport.closeAll(pieces);
            }
        }
    }

    private static List<Tensor> hostCopies(List<Tensor> ts) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : ts) out.add(Tensor.of(t.toArray(), t.shape()));
        return out;
    }
}
