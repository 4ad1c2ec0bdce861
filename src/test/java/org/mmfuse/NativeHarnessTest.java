package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Runs the native harness that the build made: its host checks everywhere, and on a GPU machine its
 * kernel checks against the CPU reference too. The exit status says whether everything passed.
 */
class NativeHarnessTest {
    @Test
    void harnessPasses() throws IOException, InterruptedException {
        String path = System.getProperty("mmfuse.harness", "target/native/mmfuse_harness");
        assumeTrue(Files.isExecutable(Path.of(path)), "no native harness at " + path + " (built only with nvcc)");
        Process p = new ProcessBuilder(path).redirectErrorStream(true).start();
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "harness timed out");
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), output);
        assertTrue(output.contains("fast divider:") && output.contains("checks passed"), output);
        if (ProbeTest.gpuDevicePresent()) {
            assertTrue(output.contains("concat/split:") && output.contains(" 0 failed"), output);
        } else {
            assertTrue(output.contains("no CUDA device"), output);
        }
    }

    /**
     * The harness with the C ABI's host code under AddressSanitizer and UBSan (leak checking on where
     * no GPU runtime holds allocations): its host checks, which exercise every entry point's argument
     * validation, must pass with no report.
     */
    @Test
    void hostCodePassesUnderSanitizers() throws IOException, InterruptedException {
        String path = System.getProperty("mmfuse.harness", "target/native/mmfuse_harness") + "_sanitized";
        assumeTrue(Files.isExecutable(Path.of(path)), "no sanitized harness at " + path + " (built only with nvcc)");
        ProcessBuilder pb = new ProcessBuilder(path, "--host-only").redirectErrorStream(true);
        // CUDA's runtime needs the shadow gap unprotected, and keeps allocations LeakSanitizer would report
        pb.environment().put("ASAN_OPTIONS", "protect_shadow_gap=0:detect_leaks=" + (ProbeTest.gpuDevicePresent() ? 0 : 1));
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "sanitized harness timed out");
        assertEquals(0, p.exitValue(), output);
        assertTrue(output.contains("argument checks:") && output.contains(" 0 failed") && !output.contains("runtime error")
                && !output.contains("AddressSanitizer"), output);
    }
}
