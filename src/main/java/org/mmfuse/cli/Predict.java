package org.mmfuse.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.MatmulPrecision;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;
import org.mmfuse.backend.AbstractOps;
import org.mmfuse.io.Npy;
import org.mmfuse.nn.Model;
import org.mmfuse.nn.ModelInput;
import org.mmfuse.nn.ModelSpec;

/**
 * {@code ./mmfuse predict} and {@code ./mmfuse describe}: a model file run on .npy inputs, batch by batch,
 * and a model file's architecture and tensors.
 */
final class Predict {
    private Predict() {}

    static final String USAGE = "predict --model M.safetensors [--spec ARCH.json] --input NAME=X.npy ... [--mask NAME=M.npy ...]\n"
            + "          [--present NAME=P.npy ...] --out Y.npy [--batch N] [--backend scalar|vector|cuda]\n"
            + "          [--precision fp32|tf32|bf16|fp16]\n"
            + "          the model's output for every sample, written as float32 .npy; masks are [B, N] (0 = padding),\n"
            + "          presence arrays [B] (0 = the sample lacks that input); --spec for a plain state dict;\n"
            + "          --precision: what the matrix products may round their inputs to on CUDA (the CPU stays fp32)";

    /** Runs the command; returns the exit code (0 ok, 1 failure, 2 usage). */
    static int run(String[] args, PrintStream out, PrintStream err) {
        Path model = null, output = null, spec = null;
        Map<String, Path> inputs = new LinkedHashMap<>(), masks = new LinkedHashMap<>(), present = new LinkedHashMap<>();
        int batch = 256;
        Backend backend = null;
        MatmulPrecision precision = MatmulPrecision.FP32;
        try {
            for (int i = 1; i < args.length; i++) {
                String flag = args[i];
                if (i + 1 >= args.length) throw new IllegalArgumentException(flag + " needs a value");
                String value = args[++i];
                switch (flag) {
                    case "--model": model = Path.of(value); break;
                    case "--out": output = Path.of(value); break;
                    case "--spec": spec = Path.of(value); break;
                    case "--input": named(inputs, value, flag); break;
                    case "--mask": named(masks, value, flag); break;
                    case "--present": named(present, value, flag); break;
                    case "--batch": batch = Integer.parseInt(value); break;
                    case "--backend": backend = Backend.valueOf(value.toUpperCase(Locale.ROOT)); break;
                    case "--precision": precision = MatmulPrecision.valueOf(value.toUpperCase(Locale.ROOT)); break;
                    default: throw new IllegalArgumentException("unknown option " + flag);
                }
            }
            if (model == null || output == null || inputs.isEmpty()) throw new IllegalArgumentException("--model, --out and an --input are required");
            if (batch <= 0) throw new IllegalArgumentException("--batch must be positive");
        } catch (IllegalArgumentException e) {
            err.println("mmfuse predict: " + e.getMessage());
            err.println("usage: mmfuse " + USAGE);
            return 2;
        }
        Ops ops = (backend == null ? MMFuse.ops() : MMFuse.ops(backend)).withMatmulPrecision(precision);
        Map<String, Tensor> x = new LinkedHashMap<>(), m = new LinkedHashMap<>(), p = new LinkedHashMap<>();
        try (Model net = load(ops, model, spec)) {
            for (Map.Entry<String, Path> e : inputs.entrySet()) x.put(e.getKey(), Npy.read(e.getValue()));
            for (Map.Entry<String, Path> e : masks.entrySet()) m.put(e.getKey(), Npy.read(e.getValue()));
            for (Map.Entry<String, Path> e : present.entrySet()) p.put(e.getKey(), Npy.read(e.getValue()));
            long samples = x.values().iterator().next().size(0);
            for (Map<String, Tensor> group : List.of(x, m, p)) {
                for (Map.Entry<String, Tensor> e : group.entrySet()) {
                    if (e.getValue().rank() < 1 || e.getValue().size(0) != samples) {
                        throw new IllegalArgumentException(e.getKey() + ": " + e.getValue().describe() + " does not have the "
                                + samples + " samples of the first input");
                    }
                }
            }
            long start = System.nanoTime();
            List<float[]> results = new ArrayList<>();
            long width = net.spec().outputDim();
            int batches = (int) ((samples + batch - 1) / batch);
            for (int k = 0; k < batches; k++) {
                long from = (long) k * batch, to = Math.min(samples, from + batch);
                ModelInput in = new ModelInput();
                x.forEach((name, t) -> in.put(name, rows(t, from, to)));
                m.forEach((name, t) -> in.mask(name, rows(t, from, to)));
                p.forEach((name, t) -> in.present(name, flags(rows(t, from, to))));
                try (Tensor y = net.predict(in)) {
                    results.add(y.toArray());
                }
                if (batches > 1) {
                    double seconds = (System.nanoTime() - start) / 1e9;
                    err.printf(Locale.ROOT, "\rmmfuse predict: batch %d/%d, %.0f samples/s", k + 1, batches, to / seconds);
                }
            }
            if (batches > 1) err.println();
            float[] all = new float[Math.toIntExact(samples * width)];
            int at = 0;
            for (float[] r : results) {
                System.arraycopy(r, 0, all, at, r.length);
                at += r.length;
            }
            Npy.write(output, Tensor.of(all, samples, width));
            double seconds = (System.nanoTime() - start) / 1e9;
            out.printf(Locale.ROOT, "%d samples in %.3f s (%.0f samples/s) on %s, %s products; output [%d, %d] written to %s%n",
                    samples, seconds, samples / Math.max(seconds, 1e-9), ((AbstractOps) ops).description(),
                    ops.matmulPrecision(), samples, width, output);
            return 0;
        } catch (IOException | RuntimeException e) {
            err.println("mmfuse predict: " + e.getMessage());
            return 1;
        }
    }

    /** A model file, or a plain state dict with the architecture in a JSON file. */
    private static Model load(Ops ops, Path weights, Path spec) throws IOException {
        return spec == null ? Model.load(ops, weights) : Model.load(ops, weights, ModelSpec.fromJson(Files.readString(spec)));
    }

    /** {@code ./mmfuse describe FILE [--spec ARCH.json]}. */
    static int describe(String[] args, PrintStream out, PrintStream err) {
        boolean withSpec = args.length == 4 && args[2].equals("--spec");
        if (args.length != 2 && !withSpec) {
            err.println("usage: mmfuse describe M.safetensors [--spec ARCH.json]");
            return 2;
        }
        try (Model net = load(MMFuse.ops(Backend.SCALAR), Path.of(args[1]), withSpec ? Path.of(args[3]) : null)) {
            out.print(net.describe());
            return 0;
        } catch (IOException | RuntimeException e) {
            err.println("mmfuse describe: " + e.getMessage());
            return 1;
        }
    }

    private static void named(Map<String, Path> into, String value, String flag) {
        int eq = value.indexOf('=');
        if (eq <= 0 || eq == value.length() - 1) throw new IllegalArgumentException(flag + " takes NAME=FILE, got " + value);
        into.put(value.substring(0, eq), Path.of(value.substring(eq + 1)));
    }

    /** Rows [from, to) of a host tensor, as a new tensor. */
    private static Tensor rows(Tensor t, long from, long to) {
        long[] shape = t.shape();
        int rest = (int) (t.numel() / Math.max(shape[0], 1));
        shape[0] = to - from;
        return Tensor.of(Arrays.copyOfRange(t.array(), (int) from * rest, (int) to * rest), shape);
    }

    private static boolean[] flags(Tensor t) {
        float[] v = t.array();
        boolean[] out = new boolean[v.length];
        for (int i = 0; i < v.length; i++) out[i] = v[i] != 0;
        return out;
    }
}
