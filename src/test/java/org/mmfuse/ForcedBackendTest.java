package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The switches a user sets, each in a fresh JVM (the probe runs once per JVM): the system property,
 * the environment variable, and the native kill switch, seen through {@code mmfuse info}.
 */
class ForcedBackendTest {
    private static String info(Map<String, String> env, String... jvmOptions) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.add("--add-modules");
        command.add("jdk.incubator.vector");
        command.addAll(List.of(jvmOptions));
        command.add("-cp");
        command.add(classPath());
        command.add("org.mmfuse.cli.Main");
        command.add("info");
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().remove(MMFuse.BACKEND_ENV);
        pb.environment().putAll(env);
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(2, TimeUnit.MINUTES));
        assertEquals(0, p.exitValue(), output);
        return output;
    }

    /**
     * This JVM's class path: java.class.path under Maven, plus the class loader's URLs where a launcher
     * (the JUnit console on a GPU machine) loads the tests and the library through its own loader.
     */
    private static String classPath() {
        StringBuilder path = new StringBuilder(System.getProperty("java.class.path"));
        if (Thread.currentThread().getContextClassLoader() instanceof URLClassLoader) {
            for (URL url : ((URLClassLoader) Thread.currentThread().getContextClassLoader()).getURLs()) {
                try {
                    path.append(java.io.File.pathSeparator).append(Path.of(url.toURI()));
                } catch (URISyntaxException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        return path.toString();
    }

    @Test
    void environmentVariableForcesScalar() throws Exception {
        String out = info(Map.of(MMFuse.BACKEND_ENV, "scalar"));
        assertTrue(out.contains("backend: scalar (forced by MMFUSE_BACKEND=scalar)"), out);
    }

    @Test
    void systemPropertyWinsOverTheEnvironment() throws Exception {
        String out = info(Map.of(MMFuse.BACKEND_ENV, "scalar"), "-Dmmfuse.backend=vector");
        assertTrue(out.contains("backend: vector (forced by -Dmmfuse.backend=vector)"), out);
    }

    @Test
    void forcingCudaWithoutNativeLibrariesSaysWhy() throws Exception {
        String out = info(Map.of(), "-Dmmfuse.backend=cuda", "-Dmmfuse.native=false");
        assertTrue(out.contains("backend: none (cuda backend forced by -Dmmfuse.backend=cuda is unavailable: "
                + "libmmfuse (JNI): native libraries disabled (mmfuse.native=false)"), out);
    }
}
