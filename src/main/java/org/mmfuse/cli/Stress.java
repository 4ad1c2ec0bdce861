package org.mmfuse.cli;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.bytedeco.javacpp.Pointer;
import org.mmfuse.Activation;
import org.mmfuse.AttentionOptions;
import org.mmfuse.AttentionResult;
import org.mmfuse.Backend;
import org.mmfuse.CountSketch;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.PoolingOptions;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;
import org.mmfuse.cuda.CudaOps;

/**
 * {@code ./mmfuse stress --seconds N [--seed S]}: random valid calls of every operation on the default
 * backend from one thread per core, one call in eight also on the scalar reference and compared; once a
 * second a line with calls per second, heap in use, JavaCPP's native bytes and, on a GPU, the device's
 * memory in use. Exits 1 on a mismatch (printing the seed and call that replay it), 2 if native or
 * device memory grew by more than 64 MB between the end of the first second and the end.
 */
final class Stress {
    private static final long MEMORY_GROWTH_LIMIT = 64L << 20;

    private final Ops ops = MMFuse.ops();
    private final Ops reference = MMFuse.ops(Backend.SCALAR);
    private final AtomicLong calls = new AtomicLong();
    private final AtomicReference<String> mismatch = new AtomicReference<>();

    static int run(String[] args, PrintStream out) throws InterruptedException {
        double seconds = 10;
        long seed = System.nanoTime();
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--seconds" -> seconds = Double.parseDouble(args[++i]);
                case "--seed" -> seed = Long.parseLong(args[++i]);
                default -> throw new IllegalArgumentException("stress: unknown argument " + args[i]
                        + " (usage: mmfuse stress [--seconds N] [--seed S])");
            }
        }
        return new Stress().run(seconds, seed, out);
    }

    private int run(double seconds, long seed, PrintStream out) throws InterruptedException {
        int threads = Runtime.getRuntime().availableProcessors();
        out.printf(Locale.ROOT, "stress: %s, %d threads, %.0f s, seed %d%n", ops.backend().name().toLowerCase(), threads,
                seconds, seed);
        long end = System.nanoTime() + (long) (seconds * 1e9);
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            long threadSeed = seed + 1_000_003L * t;
            Thread w = new Thread(() -> work(threadSeed, end), "mmfuse-stress-" + t);
            w.setDaemon(true);
            workers.add(w);
            w.start();
        }
        long baseline = -1, deviceBaseline = -1, lastCalls = 0, last = System.nanoTime();
        while (System.nanoTime() < end && mismatch.get() == null) {
            Thread.sleep(Math.max(1, Math.min(1000, (end - System.nanoTime()) / 1_000_000)));
            long now = System.nanoTime(), done = calls.get(), device = deviceBytes();
            Runtime rt = Runtime.getRuntime();
            out.printf(Locale.ROOT, "%6.1f s  %8.0f calls/s  heap %6d MB  native %6d MB (physical %6d MB)%s%n",
                    (now - end) / 1e9 + seconds, (done - lastCalls) / ((now - last) / 1e9),
                    (rt.totalMemory() - rt.freeMemory()) >> 20, Pointer.totalBytes() >> 20, Pointer.physicalBytes() >> 20,
                    device < 0 ? "" : String.format(Locale.ROOT, "  device %6d MB", device >> 20));
            if (baseline < 0) {
                baseline = Pointer.totalBytes();
                deviceBaseline = device;
            }
            lastCalls = done;
            last = now;
        }
        for (Thread w : workers) w.join();
        if (mismatch.get() != null) {
            out.println("stress: MISMATCH " + mismatch.get());
            return 1;
        }
        long growth = Pointer.totalBytes() - Math.max(baseline, 0);
        long deviceGrowth = deviceBaseline < 0 ? 0 : deviceBytes() - deviceBaseline;
        out.printf(Locale.ROOT, "stress: %d calls, no mismatch; native memory grew by %d MB%s%n", calls.get(), growth >> 20,
                deviceBaseline < 0 ? "" : String.format(Locale.ROOT, ", device memory by %d MB", deviceGrowth >> 20));
        return growth > MEMORY_GROWTH_LIMIT || deviceGrowth > MEMORY_GROWTH_LIMIT ? 2 : 0;
    }

    /** The stressed GPU's memory in use (all of the device's users), or -1 on a CPU backend. */
    private long deviceBytes() {
        return ops.backend() == Backend.CUDA ? CudaOps.deviceMemoryInUse(ops.device().index()) : -1;
    }

    private void work(long seed, long end) {
        for (long n = 0; System.nanoTime() < end && mismatch.get() == null; n++) {
            SplittableRandom rng = new SplittableRandom(seed + n);
            int op = rng.nextInt(8);
            boolean check = rng.nextInt(8) == 0;
            long inputSeed = rng.nextLong();
            try {
                float[][] fast = call(op, new SplittableRandom(inputSeed), ops);
                if (check) {
                    compare(fast, call(op, new SplittableRandom(inputSeed), reference), "seed " + (seed + n)
                            + " (operation " + op + ")");
                }
            } catch (RuntimeException e) {
                mismatch.compareAndSet(null, "seed " + (seed + n) + " (operation " + op + ") threw " + e);
            }
            calls.incrementAndGet();
        }
    }

    /**
     * Operation {@code op} on inputs drawn from rng, on {@code on}; returns the results as host arrays and
     * closes every tensor it made. The same rng state gives the same inputs on any backend.
     */
    private static float[][] call(int op, SplittableRandom rng, Ops on) {
        List<Tensor> made = new ArrayList<>();
        try {
            Inputs in = new Inputs(rng, on, made);
            List<Tensor> results = new ArrayList<>();
            switch (op) {
                case 0 -> {
                    int rows = in.n();
                    results.add(on.concat(List.of(in.tensor(rows, in.n()), in.tensor(rows, in.n())), 1));
                }
                case 1 -> {
                    int rows = in.n(), k = in.n();
                    results.add(on.linear(in.tensor(rows, k), in.tensor(in.n(), k), null));
                }
                case 2 -> {
                    int b = in.n(), h = 1 + rng.nextInt(4), d = in.n(), lq = in.n(), lk = in.n();
                    AttentionResult r = on.attention(in.tensor(b, lq, h, d), in.tensor(b, lk, h, d),
                            in.tensor(b, lk, h, in.n()), AttentionOptions.DEFAULT.causal(rng.nextBoolean()));
                    results.add(r.output());
                }
                case 3 -> {
                    int b = in.n(), n = in.n();
                    results.add(on.bilinearPool(in.tensor(b, n, in.n()), in.tensor(b, n, in.n()), PoolingOptions.BILINEAR_CNN));
                }
                case 4 -> {
                    int rows = in.n(), c1 = in.n(), c2 = in.n();
                    results.add(on.bilinear(in.tensor(rows, c1), in.tensor(rows, c2), in.tensor(in.n(), c1, c2), null));
                }
                case 5 -> {
                    int b = in.n(), n = 1 + rng.nextInt(3), c1 = in.n(), c2 = in.n(), d = 1 + rng.nextInt(300);
                    CountSketch sx = CountSketch.random(c1, d, rng.nextLong()), sy = CountSketch.random(c2, d, rng.nextLong());
                    results.add(on.compactBilinearPool(in.tensor(b, n, c1), in.tensor(b, n, c2), sx, sy, PoolingOptions.NONE));
                }
                case 6 -> { // the fusion layers' helpers, chained: masked pooling, gelu, a weighted sum
                    int b = in.n(), n = in.n(), c = in.n();
                    Tensor mask = in.tensor(b, n);
                    Tensor pooled = on.poolSequence(in.tensor(b, n, c), mask, SequencePooling.values()[rng.nextInt(4)]);
                    made.add(pooled);
                    Tensor activated = on.activation(pooled, Activation.GELU);
                    made.add(activated);
                    Tensor scaled = on.multiply(activated, in.tensor(c));
                    made.add(scaled);
                    results.add(on.weightedSum(List.of(activated, scaled), in.tensor(b, 2)));
                }
                default -> {
                    int rows = in.n(), factor = 1 + rng.nextInt(5), width = 2 * factor * in.n();
                    results.add(on.factorizedPool(in.tensor(rows, width), in.tensor(rows, width), FactorizedPoolOptions.DEFAULT
                            .factor(factor).stages(2).activation(Activation.RELU).pooling(PoolingOptions.NONE.signedSqrt(0))));
                }
            }
            made.addAll(results);
            float[][] values = new float[results.size()][];
            for (int i = 0; i < values.length; i++) values[i] = results.get(i).toArray();
            return values;
        } finally {
            made.forEach(Tensor::close);
        }
    }

    /** Inputs on a backend's device: random sizes and values. */
    private static final class Inputs {
        final SplittableRandom rng;
        final Ops on;
        final List<Tensor> made;

        Inputs(SplittableRandom rng, Ops on, List<Tensor> made) {
            this.rng = rng;
            this.on = on;
            this.made = made;
        }

        /** A size from 1 to about 100, small ones more often. */
        int n() {
            return 1 + (int) (Math.pow(rng.nextInt(1000) / 1000.0, 2) * 100);
        }

        Tensor tensor(long... shape) {
            long count = 1;
            for (long s : shape) count *= s;
            float[] data = new float[Math.toIntExact(count)];
            for (int i = 0; i < data.length; i++) data[i] = (float) (rng.nextDouble() * 2 - 1);
            Tensor host = Tensor.of(data, shape);
            Tensor t = host.to(on.device());
            made.add(t);
            return t;
        }
    }

    private void compare(float[][] got, float[][] expected, String what) {
        for (int r = 0; r < expected.length; r++) {
            double scale = 0;
            for (float v : expected[r]) scale = Math.max(scale, Math.abs(v));
            for (int i = 0; i < expected[r].length; i++) {
                if (!(Math.abs(got[r][i] - expected[r][i]) <= 2e-3 * scale + 1e-5)) {
                    mismatch.compareAndSet(null, what + ": result " + r + " element " + i + " is " + got[r][i]
                            + ", the reference " + expected[r][i]);
                    return;
                }
            }
        }
    }
}
