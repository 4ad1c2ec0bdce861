package org.mmfuse;

import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** Shared by the tests: the backends to run on, random tensors, and an independent concat reference. */
final class TestSupport {
    private TestSupport() {}

    /** Every available backend; the scalar one first, as the reference. */
    static Stream<Ops> backends() {
        List<Ops> all = new ArrayList<>();
        for (Backend b : new Backend[] {Backend.SCALAR, Backend.VECTOR, Backend.CUDA}) {
            if (MMFuse.report().isAvailable(b)) all.add(MMFuse.ops(b));
        }
        return all.stream();
    }

    /** A host tensor of the shape with values uniform in [-10, 10), none of them zero or equal by accident. */
    static Tensor random(Random rng, long... shape) {
        float[] data = new float[Math.toIntExact(Shapes.numel("shape", shape))];
        for (int i = 0; i < data.length; i++) data[i] = (rng.nextFloat() - 0.5f) * 20f + 1e-3f * (i % 7 + 1);
        return Tensor.of(data, shape);
    }

    /** {@code t} on the backend's device (a copy the caller owns). */
    static Tensor on(Ops ops, Tensor t) {
        return t.to(ops.device());
    }

    static List<Tensor> on(Ops ops, List<Tensor> ts) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : ts) out.add(on(ops, t));
        return out;
    }

    static void closeAll(List<Tensor> ts) {
        ts.forEach(Tensor::close);
    }

    /**
     * torch.cat by its definition, one output element at a time: the output's multi-index selects the
     * input by its coordinate along the axis. Shares no code with the backends.
     */
    static float[] referenceConcat(List<Tensor> inputs, int axis) {
        List<Tensor> parts = new ArrayList<>();
        for (Tensor t : inputs) if (!(t.rank() == 1 && t.size(0) == 0)) parts.add(t);
        if (parts.isEmpty()) return new float[0];
        long[] shape = parts.get(0).shape();
        int a = axis < 0 ? axis + shape.length : axis;
        long[] starts = new long[parts.size() + 1];
        for (int j = 0; j < parts.size(); j++) starts[j + 1] = starts[j] + parts.get(j).size(a);
        long[] outShape = shape.clone();
        outShape[a] = starts[parts.size()];
        int n = Math.toIntExact(Shapes.numel("out", outShape));
        float[] out = new float[n];
        long[] index = new long[outShape.length];
        for (int o = 0; o < n; o++) {
            long rest = o;
            for (int d = outShape.length - 1; d >= 0; d--) {
                index[d] = rest % outShape[d];
                rest /= outShape[d];
            }
            int j = 0;
            while (index[a] >= starts[j + 1]) j++;
            long[] inShape = parts.get(j).shape();
            long flat = 0;
            for (int d = 0; d < inShape.length; d++) flat = flat * inShape[d] + (d == a ? index[d] - starts[j] : index[d]);
            out[o] = parts.get(j).array()[(int) flat];
        }
        return out;
    }

    /**
     * The class path a child JVM needs to run this test's classes: the JVM's own, plus the URLs of the
     * loader that loaded the tests when it is not the application loader (JUnit's console launcher, as
     * bench/gpu/java.sh runs it, loads its {@code --class-path} that way).
     */
    static String childClassPath() {
        List<String> entries = new ArrayList<>();
        if (TestSupport.class.getClassLoader() instanceof URLClassLoader loader) {
            for (URL url : loader.getURLs()) {
                try {
                    entries.add(Path.of(url.toURI()).toString());
                } catch (URISyntaxException e) {
                    throw new IllegalStateException("class path entry " + url, e);
                }
            }
        }
        entries.add(System.getProperty("java.class.path"));
        return String.join(File.pathSeparator, entries);
    }

    /** A finished child JVM: its exit status and its output (stdout and stderr together). */
    record ChildJvm(int exitStatus, String output) {}

    /**
     * {@code mainClass} run with {@code args} in a JVM of its own (this one's java, the vector module,
     * {@code firstOnClassPath} before this test's class path), its environment plus {@code env}; two
     * minutes at most.
     */
    static ChildJvm runJava(String firstOnClassPath, Map<String, String> env, Class<?> mainClass, String... args)
            throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String classPath = firstOnClassPath == null ? childClassPath() : firstOnClassPath + File.pathSeparator + childClassPath();
        List<String> command = new ArrayList<>(List.of(java, "--add-modules", "jdk.incubator.vector", "-cp", classPath,
                mainClass.getName()));
        command.addAll(List.of(args));
        // Output to a file, not a pipe: reading a pipe to its end would wait forever on a hung child.
        Path log = Files.createTempFile("mmfuse-child", ".log");
        try {
            ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
            pb.environment().putAll(env);
            Process p = pb.start();
            if (!p.waitFor(2, TimeUnit.MINUTES)) {
                // SIGQUIT first: the JVM prints its threads, which say where it hung
                new ProcessBuilder("kill", "-QUIT", Long.toString(p.pid())).start().waitFor();
                p.waitFor(2, TimeUnit.SECONDS);
                p.destroyForcibly().waitFor();
                throw new AssertionError(mainClass.getSimpleName() + " timed out: " + Files.readString(log));
            }
            return new ChildJvm(p.exitValue(), Files.readString(log));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
