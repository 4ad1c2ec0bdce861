package org.mmfuse;

import java.util.List;
import java.util.Set;

/**
 * What the backend probe found: each check with its outcome and reason, the backends available, and
 * the one chosen. The probe never throws; a forced backend that cannot work is recorded as the
 * {@link #failure()}, which {@link MMFuse#ops()} then throws.
 */
public final class BackendReport {
    /** One probe step: what was checked, whether it passed, and what was found or why it failed. */
    public record Check(String name, boolean passed, String detail) {
        @Override
        public String toString() {
            return (passed ? "[ok]   " : "[fail] ") + name + ": " + detail;
        }
    }

    private final List<Check> checks;
    private final Set<Backend> available;
    private final Backend chosen;
    private final String reason;
    private final String failure;

    public BackendReport(List<Check> checks, Set<Backend> available, Backend chosen, String reason, String failure) {
        this.checks = List.copyOf(checks);
        this.available = Set.copyOf(available);
        this.chosen = chosen;
        this.reason = reason;
        this.failure = failure;
    }

    public List<Check> checks() {
        return checks;
    }

    /** The check of this name, if the probe ran it. */
    public Check check(String name) {
        return checks.stream().filter(c -> c.name().equals(name)).findFirst().orElse(null);
    }

    public boolean isAvailable(Backend backend) {
        return available.contains(backend);
    }

    /** The backend {@link MMFuse#ops()} uses; null when a forced backend is unavailable. */
    public Backend chosen() {
        return chosen;
    }

    /** Why that backend: forced, or the first available. */
    public String reason() {
        return reason;
    }

    /** Set when a backend was forced but cannot work: the message {@link MMFuse#ops()} throws. */
    public String failure() {
        return failure;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append("backend: ").append(chosen == null ? "none" : chosen.name().toLowerCase()).append(" (")
                .append(failure != null ? failure : reason).append(")\n");
        for (Check c : checks) sb.append("  ").append(c).append('\n');
        return sb.toString();
    }
}
