package org.mmfuse;

import java.util.Map;
import org.mmfuse.backend.Probe;
import org.mmfuse.cuda.CudaContext;
import org.mmfuse.cuda.CudaOps;

/**
 * The entry point: the backend probe, run once, and the operations of the chosen backend.
 *
 * <pre>{@code
 * Ops ops = MMFuse.ops();                       // CUDA, else Vector API, else scalar
 * try (Tensor joint = ops.concat(List.of(image, text), -1)) { ... }
 * }</pre>
 *
 * <p>Force a backend with {@code -Dmmfuse.backend=cuda|vector|scalar} or the environment variable
 * {@code MMFUSE_BACKEND}; skip every native library with {@code -Dmmfuse.native=false}.
 */
public final class MMFuse {
    public static final String BACKEND_PROPERTY = "mmfuse.backend";
    public static final String BACKEND_ENV = "MMFUSE_BACKEND";
    public static final String NATIVE_PROPERTY = "mmfuse.native";

    private MMFuse() {}

    private static final class Holder {
        static final Probe.Result PROBE = probe();

        private static Probe.Result probe() {
            String forced = System.getProperty(BACKEND_PROPERTY);
            String forcedBy = "-D" + BACKEND_PROPERTY + "=" + forced;
            if (forced == null && System.getenv(BACKEND_ENV) != null) {
                forced = System.getenv(BACKEND_ENV);
                forcedBy = BACKEND_ENV + "=" + forced;
            }
            boolean nativeEnabled = !"false".equalsIgnoreCase(System.getProperty(NATIVE_PROPERTY));
            Probe.Result result = Probe.run(forced, forcedBy, nativeEnabled, Probe.JAVACPP);
            System.getLogger("org.mmfuse").log(System.Logger.Level.DEBUG, result.report().toString());
            return result;
        }
    }

    /** What the probe found (it runs on the first call of any method here). */
    public static BackendReport report() {
        return Holder.PROBE.report();
    }

    /**
     * The operations of the chosen backend. Once a sticky CUDA error has made CUDA unusable in this
     * process (see {@link CudaContext}), the next available backend instead, unless CUDA was forced.
     *
     * @throws IllegalStateException if a backend was forced that cannot work here, with the reasons
     */
    public static Ops ops() {
        BackendReport report = report();
        if (report.chosen() == null) throw new IllegalStateException(report.failure());
        boolean forced = System.getProperty(BACKEND_PROPERTY) != null || System.getenv(BACKEND_ENV) != null;
        if (report.chosen() == Backend.CUDA && !forced && CudaContext.lossReason() != null) {
            // a sticky CUDA error has left this process without CUDA: the next backend, as if none were found
            return Holder.PROBE.ops().entrySet().stream().filter(e -> e.getKey() != Backend.CUDA).findFirst()
                    .orElseThrow(() -> new IllegalStateException(CudaContext.lossReason())).getValue();
        }
        return Holder.PROBE.ops().get(report.chosen());
    }

    /**
     * The operations of a given backend.
     *
     * @throws IllegalStateException if it is unavailable here, with the probe's reasons
     */
    public static Ops ops(Backend backend) {
        Ops ops = Holder.PROBE.ops().get(backend);
        if (ops == null) {
            throw new IllegalStateException(backend.name().toLowerCase() + " backend is unavailable:\n" + report());
        }
        return ops;
    }

    /** All available backends' operations, fastest first. */
    public static Map<Backend, Ops> available() {
        return Map.copyOf(Holder.PROBE.ops());
    }

    /** Device memory for {@link Tensor#to}; the CUDA backend must be available. */
    static DeviceMemory allocate(Device device, long bytes) {
        ops(Backend.CUDA);
        return CudaOps.allocate(device, bytes);
    }

    /** The library version, e.g. {@code 0.1.0}. */
    public static String version() {
        Package p = MMFuse.class.getPackage();
        return p.getImplementationVersion() != null ? p.getImplementationVersion() : "0.1.0-SNAPSHOT";
    }
}
