package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Bad arguments get a clear exception naming the argument and showing the shapes, on every backend,
 * before anything runs: the output of a refused concatInto keeps its contents.
 */
class ConcatErrorsTest {
    static java.util.stream.Stream<Ops> backends() {
        return TestSupport.backends();
    }

    /** Device memory that is never touched: lets a test hold a tensor on a device the backend does not use. */
    static final class UntouchableMemory implements DeviceMemory {
        private final Device device;

        UntouchableMemory(Device device) {
            this.device = device;
        }

        @Override public long address() { return 0x1000; }
        @Override public long bytes() { return 1 << 20; }
        @Override public Device device() { return device; }
        @Override public void copyFromHost(float[] src) { throw new AssertionError("touched"); }
        @Override public void copyToHost(float[] dst) { throw new AssertionError("touched"); }
        @Override public void copyFromHost(short[] src) { throw new AssertionError("touched"); }
        @Override public void copyToHost(short[] dst) { throw new AssertionError("touched"); }
        @Override public void close() {}
    }

    private static <T extends Throwable> void assertRefused(Class<T> type, Runnable call, String... fragments) {
        T e = assertThrows(type, call::run);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), () -> "message '" + e.getMessage() + "' lacks '" + f + "'");
        }
    }

    /** Runs {@code body} with host tensors moved to the backend and an output of the given shape pre-filled. */
    private static void withTensors(Ops ops, List<long[]> shapes, long[] outShape, Consumer<Fixture> body) {
        Random rng = new Random(42);
        List<Tensor> host = new ArrayList<>();
        for (long[] s : shapes) host.add(TestSupport.random(rng, s));
        Tensor outHost = TestSupport.random(rng, outShape);
        Fixture f = new Fixture(TestSupport.on(ops, host), TestSupport.on(ops, outHost));
        try {
            body.accept(f);
            assertArrayEquals(outHost.array(), f.out.toArray(), "a refused call must leave the output untouched");
        } finally {
            TestSupport.closeAll(f.inputs);
            f.out.close();
        }
    }

    private static final class Fixture {
        final List<Tensor> inputs;
        final Tensor out;

        Fixture(List<Tensor> inputs, Tensor out) {
            this.inputs = inputs;
            this.out = out;
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void nullsAndEmptyList(Ops ops) {
        assertRefused(NullPointerException.class, () -> ops.concat(null, 0), "inputs is null");
        assertRefused(IllegalArgumentException.class, () -> ops.concat(List.of(), 0), "non-empty list");
        withTensors(ops, List.of(new long[] {2, 3}), new long[] {4, 3}, f -> {
            List<Tensor> withNull = Arrays.asList(f.inputs.get(0), null);
            assertRefused(NullPointerException.class, () -> ops.concatInto(f.out, withNull, 0), "inputs[1] is null");
            assertRefused(NullPointerException.class, () -> ops.concatInto(null, f.inputs, 0), "out is null");
            assertRefused(NullPointerException.class, () -> ops.split(null, 1, 0), "input is null");
            assertRefused(NullPointerException.class, () -> ops.split(f.inputs.get(0), null, 0), "sizes is null");
        });
    }

    @ParameterizedTest
    @MethodSource("backends")
    void rankAndShapeMismatch(Ops ops) {
        withTensors(ops, List.of(new long[] {2, 3}, new long[] {2, 3, 1}, new long[] {4, 3}, new long[] {0}),
                new long[] {4, 3}, f -> {
            List<Tensor> ranks = List.of(f.inputs.get(0), f.inputs.get(1));
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, ranks, 0),
                    "same number of dimensions", "inputs[1]", "[2, 3, 1]", "[2, 3]");
            List<Tensor> sizes = List.of(f.inputs.get(0), f.inputs.get(2));
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, sizes, 1),
                    "sizes must match except along axis 1", "inputs[1] has shape [4, 3]");
            // a legacy empty tensor is skipped, the rest must still agree
            List<Tensor> skipped = List.of(f.inputs.get(3), f.inputs.get(0), f.inputs.get(2));
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, skipped, 1),
                    "inputs[1] has shape [2, 3], inputs[2] has shape [4, 3]");
        });
    }

    @ParameterizedTest
    @MethodSource("backends")
    void axisOutOfRange(Ops ops) {
        withTensors(ops, List.of(new long[] {2, 3}), new long[] {2, 3}, f -> {
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, f.inputs, 2),
                    "range of [-2, 1], but got 2");
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, f.inputs, -3),
                    "but got -3");
            assertRefused(IllegalArgumentException.class, () -> ops.split(f.inputs.get(0), 1, 5), "but got 5");
        });
    }

    @ParameterizedTest
    @MethodSource("backends")
    void outputOfWrongShapeOrOverlapping(Ops ops) {
        withTensors(ops, List.of(new long[] {2, 3}, new long[] {2, 4}), new long[] {2, 8}, f -> {
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, f.inputs, 1),
                    "out has shape [2, 8]", "have shape [2, 7]");
        });
        withTensors(ops, List.of(new long[] {2, 3}), new long[] {2, 3}, f -> {
            // the output as its own input: the shapes agree, the overlap is refused
            List<Tensor> self = List.of(f.out);
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, self, 0), "out shares memory",
                    "inputs[0]");
            assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, self, -1), "shares memory");
        });
    }

    @ParameterizedTest
    @MethodSource("backends")
    void closedTensors(Ops ops) {
        withTensors(ops, List.of(new long[] {2, 3}, new long[] {2, 3}), new long[] {4, 3}, f -> {
            Tensor closed = TestSupport.on(ops, Tensor.zeros(2, 3));
            closed.close();
            closed.close(); // idempotent
            List<Tensor> inputs = List.of(f.inputs.get(0), closed);
            assertRefused(IllegalStateException.class, () -> ops.concatInto(f.out, inputs, 0), "inputs[1]", "closed");
            assertRefused(IllegalStateException.class, () -> ops.split(closed, 1, 0), "input", "closed");
        });
        Tensor out = TestSupport.on(ops, Tensor.zeros(4, 3));
        out.close();
        List<Tensor> inputs = TestSupport.on(ops, List.of(Tensor.zeros(2, 3), Tensor.zeros(2, 3)));
        assertRefused(IllegalStateException.class, () -> ops.concatInto(out, inputs, 0), "out", "closed");
        TestSupport.closeAll(inputs);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void mixedDevices(Ops ops) {
        Device other = ops.device().isCpu() ? Device.cuda(7) : Device.CPU;
        try (Tensor foreign = other.isCpu() ? Tensor.zeros(2, 3)
                : Tensor.wrap(new UntouchableMemory(other), DType.F32, 2, 3)) {
            withTensors(ops, List.of(new long[] {2, 3}), new long[] {4, 3}, f -> {
                List<Tensor> mixed = List.of(f.inputs.get(0), foreign);
                assertRefused(IllegalArgumentException.class, () -> ops.concatInto(f.out, mixed, 0),
                        "inputs[1]", "is on " + other, "computes on " + ops.device());
            });
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void badSplitSizes(Ops ops) {
        withTensors(ops, List.of(new long[] {2, 5}), new long[] {1}, f -> {
            Tensor x = f.inputs.get(0);
            assertRefused(IllegalArgumentException.class, () -> ops.split(x, new long[] {2, 2}, 1),
                    "sizes [2, 2] sum to 4", "size 5 along axis 1", "[2, 5]");
            assertRefused(IllegalArgumentException.class, () -> ops.split(x, new long[] {-1, 6}, 1), "non-negative");
            assertRefused(IllegalArgumentException.class, () -> ops.split(x, -2, 1), "non-negative, got -2");
            assertRefused(IllegalArgumentException.class, () -> ops.split(x, 0, 1), "can only be 0");
        });
    }

    @ParameterizedTest
    @MethodSource("backends")
    void zeroDimensionalTensors(Ops ops) {
        withTensors(ops, List.of(new long[] {}), new long[] {1}, f -> {
            assertRefused(IllegalArgumentException.class, () -> ops.concat(f.inputs, 0), "zero-dimensional");
            assertRefused(IllegalArgumentException.class, () -> ops.split(f.inputs.get(0), 1, 0),
                    "at least one dimension");
        });
    }
}
