package org.mmfuse.bench;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * {@code ./mmfuse bench}: a short JMH run of the benchmarks, then one table per benchmark class with
 * GB/s or GFLOP/s (at the median of the measured iterations, and their min-max spread) and the ratios
 * the goals are stated in. {@code --long} measures longer; {@code --rounds N} runs the whole selection N
 * times over and pools each benchmark's iterations across the rounds, as JMH pools forks; {@code -p
 * shape=A,B} runs only those values of a parameter (as JMH's own -p); any other argument is a JMH
 * include regex.
 *
 * <p>Rounds are for noisy machines: a shared VM here runs the same code 30% slower for seconds to minutes
 * at a time, and one fork per benchmark, minutes apart from its peer's, can land in different such spells.
 * With N rounds each benchmark and its peer are measured at N times spread over the whole run.
 *
 * <p>Benchmark classes are named by string, not class literal, so that a run without libtorch on the
 * class path (a GPU machine's bundle) never loads the classes that need it.
 */
public final class QuickBench {
    private QuickBench() {}

    public static void main(String[] args) throws RunnerException {
        boolean longRun = false;
        int rounds = 1;
        List<String> includes = new ArrayList<>();
        Map<String, String[]> params = new TreeMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--long")) {
                longRun = true;
            } else if (a.equals("--rounds") && i + 1 < args.length && args[i + 1].matches("[1-9][0-9]*")) {
                rounds = Integer.parseInt(args[++i]);
            } else if (a.equals("-p") && i + 1 < args.length && args[i + 1].indexOf('=') > 0) {
                String[] pair = args[++i].split("=", 2);
                params.put(pair[0], pair[1].split(","));
            } else if (a.equals("--help") || a.equals("-p") || a.equals("--rounds")) {
                System.out.println("usage: mmfuse bench [--long] [--rounds N] [-p PARAM=V1,V2 ...] [JMH include regex ...]");
                return;
            } else {
                includes.add(a);
            }
        }
        if (includes.isEmpty()) {
            includes.add("ConcatBench");
            includes.add("GemmBench");
            includes.add("AttentionBench");
            includes.add("AttentionScalarBench");
            includes.add("BilinearBench");
            includes.add("BilinearScalarBench");
            includes.add("ProjectedAttentionBench");
            includes.add("ModelBench");
            includes.add("PeakBench");
            if (MMFuse.report().isAvailable(Backend.CUDA)) {
                includes.add("ConcatCudaBench");
                includes.add("AttentionCudaBench");
                includes.add("BilinearCudaBench");
            }
        }
        // Five warm-up iterations even in the short run: C2 compiles the Vector API kernels while the two
        // cores of a small machine run them interpreted, and a 32 x 768 x 512 product was still at 5 GFLOP/s
        // after 0.9 s (2026-12-07), which three iterations left inside the measurement.
        ChainedOptionsBuilder options = new OptionsBuilder()
                .warmupIterations(5).warmupTime(TimeValue.milliseconds(longRun ? 1000 : 300))
                .measurementIterations(longRun ? 10 : 5).measurementTime(TimeValue.milliseconds(longRun ? 1000 : 300))
                .forks(1);
        for (String include : includes) options.include(include);
        params.forEach(options::param);
        Collection<RunResult> results = runRounds(new Runner(options.build()), rounds);
        System.out.println();
        System.out.println(MMFuse.report());
        printConcat(results);
        printGemm(results);
        printAttention(results);
        printBilinear(results);
        printProjectedAttention(results);
        printModels(results);
    }

    /** The selection run {@code rounds} times; each benchmark's results of every round as one (as forks are). */
    private static Collection<RunResult> runRounds(Runner runner, int rounds) throws RunnerException {
        Map<String, List<RunResult>> byBenchmark = new java.util.LinkedHashMap<>();
        for (int round = 0; round < rounds; round++) {
            for (RunResult r : runner.run()) byBenchmark.computeIfAbsent(r.getParams().id(), k -> new ArrayList<>()).add(r);
        }
        List<RunResult> pooled = new ArrayList<>();
        for (List<RunResult> same : byBenchmark.values()) {
            List<org.openjdk.jmh.results.BenchmarkResult> forks = new ArrayList<>();
            for (RunResult r : same) forks.addAll(r.getBenchmarkResults());
            pooled.add(new RunResult(same.get(0).getParams(), forks));
        }
        return pooled;
    }

    private static void printProjectedAttention(Collection<RunResult> results) {
        Map<String, Map<String, RunResult>> table = byShape(results, "ProjectedAttentionBench");
        if (table.isEmpty()) return;
        System.out.println();
        System.out.println("Attention over projected keys and values (see ProjectedAttentionBench; B,Lq,Lk,kdim, 8 heads of 64)."
                + " GFLOP/s = projecting-first flops / median time [min-max].");
        System.out.printf(Locale.ROOT, "%-20s %21s %21s %21s %8s %8s %21s %21s %8s%n", "shape", "folded", "project first",
                "torch", "tor/fold", "1st/fold", "mean: folded", "mean: torch", "tor/fold");
        for (Map.Entry<String, Map<String, RunResult>> e : table.entrySet()) {
            double flops = ProjectedAttentionBench.flops(e.getKey());
            RunResult folded = e.getValue().get("folded"), first = e.getValue().get("projectFirst");
            RunResult peer = e.getValue().get("torch");
            RunResult foldedMean = e.getValue().get("foldedMean"), peerMean = e.getValue().get("torchMean");
            System.out.printf(Locale.ROOT, "%-20s %21s %21s %21s %8s %8s %21s %21s %8s%n", e.getKey(), rate(folded, flops),
                    rate(first, flops), rate(peer, flops), ratio(peer, folded), ratio(first, folded),
                    rate(foldedMean, flops), rate(peerMean, flops), ratio(peerMean, foldedMean));
        }
        System.out.println("tor/fold, 1st/fold: libtorch's (projecting first's) median time / the folded route's; mean: the"
                + " same averaged over the queries (projectedAttentionMean; libtorch's composite, then mean).");
    }

    private static void printModels(Collection<RunResult> results) {
        Map<String, Map<String, RunResult>> table = new java.util.LinkedHashMap<>();
        for (RunResult r : results) {
            String name = r.getParams().getBenchmark();
            if (!name.contains(".ModelBench.")) continue;
            String row = r.getParams().getParam("model") + ", batch " + r.getParams().getParam("batch");
            table.computeIfAbsent(row, k -> new TreeMap<>()).put(name.substring(name.lastIndexOf('.') + 1), r);
        }
        if (table.isEmpty()) return;
        System.out.println();
        System.out.println("End-to-end predict (see ModelBench). Milliseconds at the median [min-max].");
        System.out.printf(Locale.ROOT, "%-28s %24s %24s %8s %24s %9s%n", "model", "mmfuse (vector)", "libtorch", "tor/ours",
                "weight-read floor", "floor/ours");
        for (Map.Entry<String, Map<String, RunResult>> e : table.entrySet()) {
            Map<String, RunResult> m = e.getValue();
            System.out.printf(Locale.ROOT, "%-28s %24s %24s %8s %24s %9s%n", e.getKey(), millis(m.get("ours")),
                    millis(m.get("torch")), ratio(m.get("torch"), m.get("ours")), millis(m.get("weightFloor")),
                    ratio(m.get("weightFloor"), m.get("ours")));
        }
        System.out.println("tor/ours: libtorch's median time / ours. weight-read floor: every weight of the model read once"
                + " on every core, nothing computed; floor/ours: its time / ours (at batch 1 the weights are most of the"
                + " memory a call touches).");
    }

    /** shape -> benchmark method -> result, for one benchmark class. */
    private static Map<String, Map<String, RunResult>> byShape(Collection<RunResult> results, String benchClass) {
        return byShape(results, benchClass, r -> {
            String name = r.getParams().getBenchmark();
            return name.substring(name.lastIndexOf('.') + 1);
        });
    }

    /** shape -> column (what {@code column} names a result) -> result, for one benchmark class. */
    private static Map<String, Map<String, RunResult>> byShape(Collection<RunResult> results, String benchClass,
            Function<RunResult, String> column) {
        Map<String, Map<String, RunResult>> table = new TreeMap<>();
        for (RunResult r : results) {
            if (!r.getParams().getBenchmark().contains("." + benchClass + ".")) continue;
            table.computeIfAbsent(r.getParams().getParam("shape"), k -> new TreeMap<>()).put(column.apply(r), r);
        }
        return table;
    }

    private static void printConcat(Collection<RunResult> results) {
        Map<String, Map<String, RunResult>> cpu = byShape(results, "ConcatBench");
        if (!cpu.isEmpty()) {
            System.out.println("Concatenation along the last axis, CPU. GB/s = (read + write bytes) / median time;");
            System.out.println("[min-max] over the measured iterations. limit = one System.arraycopy of the output's size.");
            System.out.printf(Locale.ROOT, "%-20s %9s %21s %21s %21s %21s %21s %8s %8s %8s%n", "shape", "MB moved",
                    "limit", "scalar", "vector into", "torch cat_out", "vector alloc", "vec/lim", "vec/tor", "alloc/tor");
            for (Map.Entry<String, Map<String, RunResult>> e : cpu.entrySet()) {
                double bytes = ConcatShape.parse(e.getKey()).bytesMoved();
                Map<String, RunResult> m = e.getValue();
                System.out.printf(Locale.ROOT, "%-20s %9.2f %21s %21s %21s %21s %21s %8s %8s %8s%n", e.getKey(), bytes / 1e6,
                        rate(m.get("limitArraycopy"), bytes), rate(m.get("scalarInto"), bytes),
                        rate(m.get("vectorInto"), bytes), rate(m.get("torchCatOut"), bytes),
                        rate(m.get("vectorAllocating"), bytes), ratio(m.get("limitArraycopy"), m.get("vectorInto")),
                        ratio(m.get("torchCatOut"), m.get("vectorInto")), ratio(m.get("torchCat"), m.get("vectorAllocating")));
            }
            System.out.println("vec/lim = vector into / limit; vec/tor = vector into / torch cat_out;"
                    + " alloc/tor = vector allocating / torch cat (ratios of median throughput).");
        }
        Map<String, Map<String, RunResult>> gpu = byShape(results, "ConcatCudaBench");
        if (!gpu.isEmpty()) {
            System.out.println();
            System.out.println("Concatenation on the GPU from Java (launch + sync). limit = cudaMemcpy device to device.");
            System.out.printf(Locale.ROOT, "%-20s %9s %21s %21s %8s%n", "shape", "MB moved", "limit", "cuda into", "cuda/lim");
            for (Map.Entry<String, Map<String, RunResult>> e : gpu.entrySet()) {
                double bytes = ConcatShape.parse(e.getKey()).bytesMoved();
                Map<String, RunResult> m = e.getValue();
                System.out.printf(Locale.ROOT, "%-20s %9.2f %21s %21s %8s%n", e.getKey(), bytes / 1e6,
                        rate(m.get("limitDeviceCopy"), bytes), rate(m.get("cudaInto"), bytes),
                        ratio(m.get("limitDeviceCopy"), m.get("cudaInto")));
            }
        }
    }

    private static void printGemm(Collection<RunResult> results) {
        Map<String, Map<String, RunResult>> table = byShape(results, "GemmBench");
        if (table.isEmpty()) return;
        int threads = Runtime.getRuntime().availableProcessors();
        double peakGflops = peakGflops(results);
        System.out.println();
        System.out.printf(Locale.ROOT, "fp32 matrix products, CPU (MxKxN). GFLOP/s at the median time [min-max]. peak = %d x"
                + " one core's FMA peak measured in this run = %.0f GFLOP/s.%n", threads, peakGflops);
        System.out.printf(Locale.ROOT, "%-16s %21s %21s %21s %21s %8s %8s %8s%n", "shape", "vector matmul", "torch mm",
                "vector linear", "torch linear", "mm/tor", "lin/tor", "mm/peak");
        for (Map.Entry<String, Map<String, RunResult>> e : table.entrySet()) {
            long[] d = GemmBench.dims(e.getKey());
            double flops = 2.0 * d[0] * d[1] * d[2];
            Map<String, RunResult> m = e.getValue();
            RunResult mm = m.get("vectorMatmul");
            String ofPeak = mm == null || Double.isNaN(peakGflops) ? "-" : String.format(Locale.ROOT, "%.2f",
                    flops / 1e3 / mm.getPrimaryResult().getStatistics().getPercentile(50) / peakGflops);
            System.out.printf(Locale.ROOT, "%-16s %21s %21s %21s %21s %8s %8s %8s%n", e.getKey(), rate(mm, flops),
                    rate(m.get("torchMm"), flops), rate(m.get("vectorLinear"), flops),
                    rate(m.get("torchLinear"), flops), ratio(m.get("torchMm"), mm),
                    ratio(m.get("torchLinear"), m.get("vectorLinear")), ofPeak);
        }
        System.out.println("mm/tor, lin/tor: ours / libtorch (median throughput); mm/peak: vector matmul / peak.");
    }

    private static void printAttention(Collection<RunResult> results) {
        printCudaAttention(results);
        Map<String, Map<String, RunResult>> table = byShape(results, "AttentionBench");
        if (table.isEmpty()) return;
        Map<String, Map<String, RunResult>> scalar = byShape(results, "AttentionScalarBench");
        double peak = peakGflops(results);
        System.out.println();
        System.out.printf(Locale.ROOT, "Attention, CPU (B,H,Lq,Lk,Dh). GFLOP/s = 4 B H Lq Lk Dh / median time [min-max];"
                + " peak as above = %.0f GFLOP/s.%n", peak);
        System.out.println("torch: libtorch on contiguous [B,H,L,D] tensors (its layout); torch*: on [B,L,H,D] tensors"
                + " (ours) seen through transpose(1, 2).");
        System.out.printf(Locale.ROOT, "%-20s %21s %21s %21s %21s %8s %8s %8s%n", "shape", "scalar", "vector", "torch sdpa",
                "torch* sdpa", "vec/tor", "vec/tor*", "vec/peak");
        for (Map.Entry<String, Map<String, RunResult>> e : table.entrySet()) {
            double flops = AttentionShapes.flops(e.getKey());
            RunResult ours = e.getValue().get("vectorAttention");
            String ofPeak = ours == null || Double.isNaN(peak) ? "-" : String.format(Locale.ROOT, "%.2f",
                    flops / 1e3 / ours.getPrimaryResult().getStatistics().getPercentile(50) / peak);
            RunResult reference = scalar.getOrDefault(e.getKey(), Map.of()).get("scalarAttention");
            RunResult sameLayout = e.getValue().get("torchSdpaOurs");
            System.out.printf(Locale.ROOT, "%-20s %21s %21s %21s %21s %8s %8s %8s%n", e.getKey(), rate(reference, flops),
                    rate(ours, flops), rate(e.getValue().get("torchSdpa"), flops), rate(sameLayout, flops),
                    ratio(e.getValue().get("torchSdpa"), ours), ratio(sameLayout, ours), ofPeak);
        }
    }

    private static void printCudaAttention(Collection<RunResult> results) {
        Map<String, Map<String, RunResult>> table =
                byShape(results, "AttentionCudaBench", r -> r.getParams().getParam("precision"));
        if (table.isEmpty()) return;
        System.out.println();
        System.out.println("Attention on the GPU from Java (checks, allocation, launch, sync per call)."
                + " GFLOP/s = 4 B H Lq Lk Dh / median time [min-max].");
        System.out.printf(Locale.ROOT, "%-20s %21s %21s %21s%n", "shape", "f32", "tf32", "bf16");
        for (Map.Entry<String, Map<String, RunResult>> e : table.entrySet()) {
            double flops = AttentionShapes.flops(e.getKey());
            Map<String, RunResult> m = e.getValue();
            System.out.printf(Locale.ROOT, "%-20s %21s %21s %21s%n", e.getKey(), rate(m.get("f32"), flops),
                    rate(m.get("tf32"), flops), rate(m.get("bf16"), flops));
        }
    }

    private static void printBilinear(Collection<RunResult> results) {
        Map<String, Map<String, RunResult>> cpu = byShape(results, "BilinearBench");
        Map<String, Map<String, RunResult>> scalar = byShape(results, "BilinearScalarBench");
        Map<String, Map<String, RunResult>> gpu = byShape(results, "BilinearCudaBench");
        java.util.Set<String> shapes = new java.util.TreeSet<>(cpu.keySet());
        shapes.addAll(gpu.keySet()); // a GPU machine's run has no libtorch, hence no CPU rows
        if (shapes.isEmpty()) return;
        double peak = peakGflops(results);
        System.out.println();
        System.out.printf(Locale.ROOT, "Bilinear family (see BilinearShapes). Milliseconds at the median [min-max];"
                + " GFLOP/s of the CPU products where the op is one; peak as above = %.0f GFLOP/s.%n", peak);
        System.out.printf(Locale.ROOT, "%-26s %12s %24s %24s %8s %8s %8s %22s %9s %24s %24s%n", "shape", "scalar",
                "vector", "torch", "vec/tor", "GFLOP/s", "vec/peak", "memory floor", "floor/vec", "cuda (from Java)",
                "cuda, bf16 products");
        for (String shape : shapes) {
            Map<String, RunResult> m = cpu.getOrDefault(shape, Map.of());
            RunResult ours = m.get("vector");
            double flops = BilinearShapes.flops(shape);
            double median = ours == null ? Double.NaN : ours.getPrimaryResult().getStatistics().getPercentile(50);
            String gflops = flops == 0 || ours == null ? "-" : String.format(Locale.ROOT, "%.0f", flops / 1e3 / median);
            String ofPeak = flops == 0 || ours == null || Double.isNaN(peak) ? "-"
                    : String.format(Locale.ROOT, "%.2f", flops / 1e3 / median / peak);
            RunResult floor = shape.startsWith("pool") ? m.get("outputFloor") : null;
            Map<String, RunResult> g = gpu.getOrDefault(shape, Map.of());
            System.out.printf(Locale.ROOT, "%-26s %12s %24s %24s %8s %8s %8s %22s %9s %24s %24s%n", shape,
                    millis(scalar.getOrDefault(shape, Map.of()).get("scalar")), millis(ours), millis(m.get("torch")),
                    ratio(m.get("torch"), ours), gflops, ofPeak, millis(floor), ratio(floor, ours), millis(g.get("cuda")),
                    millis(g.get("cudaBf16")));
        }
        System.out.println("vec/tor: torch's median time / ours. memory floor (pooling): writing the output and scaling"
                + " it in place, on every core, no arithmetic; floor/vec: its time / ours.");
    }

    /** "12.3 [11.0-12.9]": milliseconds per operation at the median, fastest and slowest iterations. */
    private static String millis(RunResult r) {
        if (r == null) return "-";
        var stats = r.getPrimaryResult().getStatistics();
        return String.format(Locale.ROOT, "%.2f [%.2f-%.2f]", stats.getPercentile(50) / 1e3, stats.getMin() / 1e3,
                stats.getMax() / 1e3);
    }

    /** Every core's FMA peak: the one-thread PeakBench result times the core count; NaN if it did not run. */
    private static double peakGflops(Collection<RunResult> results) {
        RunResult peak = results.stream().filter(r -> r.getParams().getBenchmark().endsWith("fmaPeakOneThread"))
                .findFirst().orElse(null);
        return peak == null ? Double.NaN : Runtime.getRuntime().availableProcessors() * PeakBench.FLOPS / 1e3
                / peak.getPrimaryResult().getStatistics().getPercentile(50);
    }

    /**
     * "12.3 [11.0-12.9]": {@code work} (bytes or flops) per nanosecond, i.e. GB/s or GFLOP/s, at the
     * median time, and at the slowest and fastest measured iterations.
     */
    private static String rate(RunResult r, double work) {
        if (r == null) return "-";
        var stats = r.getPrimaryResult().getStatistics();
        double perUs = work / 1e3; // times are in microseconds
        return String.format(Locale.ROOT, "%.1f [%.1f-%.1f]", perUs / stats.getPercentile(50), perUs / stats.getMax(),
                perUs / stats.getMin());
    }

    /** Median throughput of {@code ours} over that of {@code peer} (times are per operation). */
    private static String ratio(RunResult peer, RunResult ours) {
        if (peer == null || ours == null) return "-";
        return String.format(Locale.ROOT, "%.2f", peer.getPrimaryResult().getStatistics().getPercentile(50)
                / ours.getPrimaryResult().getStatistics().getPercentile(50));
    }
}
