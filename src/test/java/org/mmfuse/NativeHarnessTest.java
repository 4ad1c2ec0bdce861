package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
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

    /**
     * The JNI glue (JavaCPP's generated code) and the C ABI's host code, built under AddressSanitizer and
     * UBSan, loaded into a JVM with the ASan runtime preloaded: {@link JniChecks} passes there with no
     * report, and a deliberate overflow in the same setting is reported (the sanitizer is live).
     */
    @Test
    void jniGluePassesUnderSanitizers() throws IOException, InterruptedException {
        Path sanitized = Path.of(System.getProperty("mmfuse.sanitized", "target/native/sanitized"));
        assumeTrue(Files.exists(sanitized.resolve("org/mmfuse/cuda/linux-x86_64/libjnimmfuse.so")),
                "no sanitized JNI glue under " + sanitized + " (built only with nvcc and a g++ with ASan)");
        Process probe = new ProcessBuilder("g++", "-print-file-name=libasan.so").start();
        String asan = new String(probe.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertTrue(probe.waitFor(1, TimeUnit.MINUTES) && Files.exists(Path.of(asan)), "no ASan runtime: " + asan);

        String clean = runSanitizedJvm(sanitized, asan);
        assertTrue(clean.contains("jni checks: 0 failed") && !clean.contains("AddressSanitizer")
                && !clean.contains("runtime error"), clean);
        String overflow = runSanitizedJvm(sanitized, asan, "--overflow");
        assertTrue(overflow.contains("AddressSanitizer: heap-buffer-overflow") && !overflow.contains("not detected"), overflow);
    }

    /** JniChecks in a JVM that loads the sanitized libraries; the output, with the exit status checked. */
    private static String runSanitizedJvm(Path sanitized, String asan, String... args) throws IOException, InterruptedException {
        // the JVM handles its own SEGVs (implicit null checks) and never frees much; CUDA needs the shadow gap
        TestSupport.ChildJvm run = TestSupport.runJava(sanitized.toAbsolutePath().toString(), Map.of("LD_PRELOAD", asan,
                "ASAN_OPTIONS", "handle_segv=0:allow_user_segv_handler=1:detect_leaks=0:protect_shadow_gap=0"),
                JniChecks.class, args);
        assertEquals(args.length == 0, run.exitStatus() == 0, "exit status " + run.exitStatus() + ": " + run.output());
        return run.output();
    }
}
