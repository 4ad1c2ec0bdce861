package org.mmfuse.backend;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.Loader;
import org.mmfuse.Backend;
import org.mmfuse.BackendReport;
import org.mmfuse.BackendReport.Check;
import org.mmfuse.Ops;
import org.mmfuse.cuda.CudaOps;
import org.mmfuse.cuda.MmfNative;

/**
 * Finds the backends this JVM and machine can run, as a list of checks that each record a reason,
 * and picks one: the forced one, else the first available of CUDA, Vector API, scalar. Never throws.
 */
public final class Probe {
    public static final String CUDA_PRESETS = "CUDA presets (org.bytedeco.cuda, need the driver libcuda.so.1)";
    public static final String NATIVE_LIBRARY = "libmmfuse (JNI)";
    public static final String CUDA_DEVICE = "CUDA device";
    public static final String VECTOR_MODULE = "jdk.incubator.vector";
    public static final String SCALAR = "scalar Java";

    /** Loads the native libraries; tests replace it to play a machine that lacks them. */
    public interface NativeLoader {
        /** The presets' cudart JNI library; needs the CUDA driver (libcuda.so.1). */
        void loadCudaPresets();

        /** MMFuse's own libmmfuse and libjnimmfuse; need the CUDA runtime only. */
        void loadMmfuse();
    }

    /** The real loader: JavaCPP's {@link Loader}, from the jars on the class path. */
    public static final NativeLoader JAVACPP = new NativeLoader() {
        @Override
        public void loadCudaPresets() {
            Loader.load(cudart.class);
        }

        @Override
        public void loadMmfuse() {
            Loader.load(MmfNative.class);
        }
    };

    /** The probe's outcome: the report and an instance of every available backend. */
    public record Result(BackendReport report, Map<Backend, Ops> ops) {}

    /**
     * @param forced the backend asked for ({@code cuda}, {@code vector}, {@code scalar}), or null
     * @param forcedBy where that came from (e.g. {@code -Dmmfuse.backend}), for messages
     * @param nativeEnabled false to skip every native library (as if none were installed)
     */
    public static Result run(String forced, String forcedBy, boolean nativeEnabled, NativeLoader loader) {
        List<Check> checks = new ArrayList<>();
        Map<Backend, Ops> ops = new EnumMap<>(Backend.class);
        probeCuda(nativeEnabled, loader, checks, ops);
        probeVector(checks, ops);
        ops.put(Backend.SCALAR, new ScalarOps());
        checks.add(new Check(SCALAR, true, "always available"));

        Backend chosen;
        String reason = null, failure = null;
        if (forced != null) {
            try {
                chosen = Backend.parse(forced);
                reason = "forced by " + forcedBy;
                if (!ops.containsKey(chosen)) {
                    failure = chosen.name().toLowerCase() + " backend forced by " + forcedBy + " is unavailable: "
                            + failedReasons(checks);
                    chosen = null;
                }
            } catch (IllegalArgumentException e) {
                chosen = null;
                failure = forcedBy + ": " + e.getMessage();
            }
        } else {
            chosen = ops.keySet().iterator().next(); // EnumMap: CUDA, VECTOR, SCALAR order
            reason = "first available of cuda, vector, scalar";
        }
        return new Result(new BackendReport(checks, ops.keySet(), chosen, reason, failure), ops);
    }

    private static void probeCuda(boolean nativeEnabled, NativeLoader loader, List<Check> checks, Map<Backend, Ops> ops) {
        if (!nativeEnabled) {
            checks.add(new Check(NATIVE_LIBRARY, false, "native libraries disabled (mmfuse.native=false)"));
            return;
        }
        // The presets first: when they work, libmmfuse then binds to the CUDA runtime they loaded.
        boolean presets = attempt(checks, CUDA_PRESETS, () -> {
            loader.loadCudaPresets();
            return "cudart loaded";
        });
        boolean library = attempt(checks, NATIVE_LIBRARY, () -> {
            loader.loadMmfuse();
            int v = MmfNative.mmf_version();
            int[] runtime = {0};
            String cuda = MmfNative.mmf_cuda_runtime_version(runtime) == MmfNative.MMF_OK
                    ? runtime[0] / 1000 + "." + runtime[0] % 1000 / 10 : "unknown (" + MmfNative.mmf_last_error() + ")";
            return "libmmfuse " + v / 10000 + "." + v / 100 % 100 + "." + v % 100 + ", CUDA runtime " + cuda;
        });
        if (!library) return;
        int[] count = {0};
        if (MmfNative.mmf_device_count(count) != MmfNative.MMF_OK) {
            checks.add(new Check(CUDA_DEVICE, false, MmfNative.mmf_last_error()));
            return;
        }
        if (count[0] == 0) {
            checks.add(new Check(CUDA_DEVICE, false, "the driver reports no device"));
            return;
        }
        if (!presets) return;
        attempt(checks, CUDA_DEVICE, () -> {
            CudaOps cuda = new CudaOps(0);
            String description = cuda.description();
            ops.put(Backend.CUDA, cuda);
            return count[0] + " device(s); using " + description;
        });
    }

    private static void probeVector(List<Check> checks, Map<Backend, Ops> ops) {
        if (ModuleLayer.boot().findModule(VECTOR_MODULE).isEmpty()) {
            checks.add(new Check(VECTOR_MODULE, false, "module not in the boot layer: run java with --add-modules "
                    + VECTOR_MODULE));
            return;
        }
        attempt(checks, VECTOR_MODULE, () -> {
            // By name, so that nothing else needs the incubator module to load.
            AbstractOps vector = (AbstractOps) Class.forName(Probe.class.getPackageName() + ".VectorOps")
                    .getDeclaredConstructor().newInstance();
            ops.put(Backend.VECTOR, vector);
            return vector.description();
        });
    }

    private interface Step {
        String run() throws Throwable;
    }

    /** Runs one check, recording its detail or the reason it failed; true if it passed. */
    private static boolean attempt(List<Check> checks, String name, Step step) {
        try {
            checks.add(new Check(name, true, step.run()));
            return true;
        } catch (Throwable t) {
            Throwable cause = t instanceof java.lang.reflect.InvocationTargetException && t.getCause() != null
                    ? t.getCause() : t;
            checks.add(new Check(name, false, cause.getClass().getSimpleName() + ": " + cause.getMessage()));
            return false;
        }
    }

    private static String failedReasons(List<Check> checks) {
        StringBuilder sb = new StringBuilder();
        for (Check c : checks) {
            if (!c.passed()) sb.append(sb.length() == 0 ? "" : "; ").append(c.name()).append(": ").append(c.detail());
        }
        return sb.toString();
    }
}
