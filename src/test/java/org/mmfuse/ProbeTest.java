package org.mmfuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.mmfuse.backend.Probe;

/** The backend probe never throws, falls back step by step and says why. */
class ProbeTest {
    /** A machine where no native library can be loaded, whatever the reason. */
    private static final Probe.NativeLoader MISSING = new Probe.NativeLoader() {
        @Override
        public void loadCudaPresets() {
            throw new UnsatisfiedLinkError("libcuda.so.1: cannot open shared object file");
        }

        @Override
        public void loadMmfuse() {
            throw new UnsatisfiedLinkError("no jnimmfuse in java.library.path");
        }
    };

    private static final boolean VECTOR_MODULE = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();

    @Test
    void missingNativeLibraryFallsBackToTheCpuAndSaysWhy() {
        BackendReport r = Probe.run(null, null, true, MISSING).report();
        assertFalse(r.isAvailable(Backend.CUDA));
        assertEquals(VECTOR_MODULE ? Backend.VECTOR : Backend.SCALAR, r.chosen());
        assertTrue(r.check(Probe.NATIVE_LIBRARY).detail().contains("UnsatisfiedLinkError: no jnimmfuse"), r.toString());
        assertTrue(r.check(Probe.CUDA_PRESETS).detail().contains("libcuda.so.1"), r.toString());
        assertNull(r.check(Probe.CUDA_DEVICE), "no device query without the library");
        assertTrue(r.toString().contains("[fail] " + Probe.NATIVE_LIBRARY), r.toString());
    }

    @Test
    void disabledNativeLibrariesAreNotLoaded() {
        BackendReport r = Probe.run(null, null, false, MISSING).report();
        assertFalse(r.isAvailable(Backend.CUDA));
        assertTrue(r.check(Probe.NATIVE_LIBRARY).detail().contains("disabled"), r.toString());
        assertNull(r.check(Probe.CUDA_PRESETS));
    }

    @Test
    void forcingAnUnavailableBackendIsAClearError() {
        BackendReport r = Probe.run("CUDA", "-Dmmfuse.backend=CUDA", true, MISSING).report();
        assertNull(r.chosen());
        assertTrue(r.failure().contains("cuda backend forced by -Dmmfuse.backend=CUDA is unavailable"), r.failure());
        assertTrue(r.failure().contains("no jnimmfuse"), r.failure());

        r = Probe.run("gpu", "MMFUSE_BACKEND=gpu", true, MISSING).report();
        assertNull(r.chosen());
        assertTrue(r.failure().contains("MMFUSE_BACKEND=gpu: unknown backend 'gpu'"), r.failure());
    }

    @Test
    void forcingScalarWorksEverywhere() {
        Probe.Result result = Probe.run("scalar", "-Dmmfuse.backend=scalar", true, MISSING);
        assertEquals(Backend.SCALAR, result.report().chosen());
        assertTrue(result.report().reason().contains("forced"));
        assertEquals(Backend.SCALAR, result.ops().get(Backend.SCALAR).backend());
    }

    @Test
    void thisMachine() {
        BackendReport r = MMFuse.report();
        assertNotNull(r.chosen(), r.toString());
        assertTrue(r.isAvailable(Backend.SCALAR));
        assertEquals(VECTOR_MODULE, r.isAvailable(Backend.VECTOR), r.toString());
        if (!gpuDevicePresent()) {
            // The first fallback: the presets' cudart JNI library needs libcuda.so.1, absent without a driver.
            assertFalse(r.isAvailable(Backend.CUDA));
            BackendReport.Check presets = r.check(Probe.CUDA_PRESETS);
            assertFalse(presets.passed(), r.toString());
            assertTrue(presets.detail().startsWith("UnsatisfiedLinkError"), r.toString());
        }
    }

    static boolean gpuDevicePresent() {
        return Files.exists(Path.of("/dev/nvidiactl")) || Files.exists(Path.of("/dev/nvidia0"));
    }
}
