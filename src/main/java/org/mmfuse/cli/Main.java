package org.mmfuse.cli;

import java.io.PrintStream;
import java.util.Locale;
import org.mmfuse.Backend;
import org.mmfuse.BackendReport;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;

/** {@code ./mmfuse} commands that run inside the library jar. {@code bench} lives in the launcher (it runs JMH). */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws InterruptedException {
        String command = args.length == 0 ? "help" : args[0];
        switch (command) {
            case "info":
                info(System.out);
                break;
            case "stress":
                System.exit(Stress.run(args, System.out));
                break;
            case "predict":
                System.exit(Predict.run(args, System.out, System.err));
                break;
            case "describe":
                System.exit(Predict.describe(args, System.out, System.err));
                break;
            case "help":
            case "--help":
            case "-h":
                usage(System.out);
                break;
            default:
                System.err.println("mmfuse: unknown command '" + command + "'");
                usage(System.err);
                System.exit(2);
        }
    }

    private static void usage(PrintStream out) {
        out.println("usage: mmfuse <command>");
        out.println("  info    Java version, vector shape, the backends found and why others were not");
        out.println("  bench   a quick run of the JMH benchmarks, as a table (run by the ./mmfuse launcher)");
        out.println("  stress [--seconds N] [--seed S]");
        out.println("          random calls of every operation on all cores, checked against the scalar reference,");
        out.println("          with calls/s and memory each second; exit 1 on a mismatch, 2 on native memory growth");
        out.println("  " + Predict.USAGE);
        out.println("  describe M.safetensors [--spec ARCH.json]");
        out.println("          a model file's inputs, layers, tensors and parameter count");
    }

    static void info(PrintStream out) {
        Runtime rt = Runtime.getRuntime();
        out.printf(Locale.ROOT, "MMFuse %s%n", MMFuse.version());
        out.printf(Locale.ROOT, "Java %s (%s), %d cores, max heap %d MiB%n", System.getProperty("java.version"),
                System.getProperty("java.vm.name"), rt.availableProcessors(), rt.maxMemory() >> 20);
        BackendReport report = MMFuse.report();
        out.print(report);
        out.println("available backends:");
        for (Backend b : Backend.values()) {
            if (!report.isAvailable(b)) continue;
            Ops ops = MMFuse.ops(b);
            out.println("  " + (ops instanceof org.mmfuse.backend.AbstractOps
                    ? ((org.mmfuse.backend.AbstractOps) ops).description() : b.name().toLowerCase()));
        }
    }
}
