package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/**
 * A model's checked host state dict seen from one layer (names relative to its prefix), handing out the
 * layer's tensors on the backend's device. Device copies (and anything else built) are registered with
 * the model, which closes them; on the CPU the host tensors themselves are used, not copied.
 */
final class Params {
    final Ops ops;
    private final Map<String, Tensor> state;
    private final String prefix;
    private final List<AutoCloseable> owned;
    private final Set<String> read;

    Params(Ops ops, Map<String, Tensor> state, List<AutoCloseable> owned, Set<String> read) {
        this(ops, state, "", owned, read);
    }

    private Params(Ops ops, Map<String, Tensor> state, String prefix, List<AutoCloseable> owned, Set<String> read) {
        this.ops = ops;
        this.state = state;
        this.prefix = prefix;
        this.owned = owned;
        this.read = read;
    }

    /** The layer below {@code name}: names relative to {@code name + "."}. */
    Params scope(String name) {
        return new Params(ops, state, prefix + name + ".", owned, read);
    }

    boolean has(String name) {
        return state.containsKey(prefix + name);
    }

    /** The host tensor (owned by the model's state; not to be closed). */
    Tensor host(String name) {
        Tensor t = state.get(prefix + name);
        if (t == null) throw new IllegalStateException("no checked tensor '" + prefix + name + "': a plan and its builder disagree");
        read.add(prefix + name);
        return t;
    }

    /** The tensor on the backend's device. */
    Tensor device(String name) {
        Tensor host = host(name);
        return ops.device().isCpu() ? host : own(host.to(ops.device()));
    }

    /** A host tensor the layer derived at load (closed with the model), on the backend's device. */
    Tensor upload(Tensor derived) {
        own(derived);
        return ops.device().isCpu() ? derived : own(derived.to(ops.device()));
    }

    /** {@code nn.Linear} under {@code name}, its bias if the state has one. */
    Linear linear(String name) {
        String at = name.isEmpty() ? "" : name + ".";
        return new Linear(device(at + "weight"), has(at + "bias") ? device(at + "bias") : null);
    }

    /** Every tensor of this layer, names relative to it (for the modules that take a state dict). */
    Map<String, Tensor> stateDict() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            if (e.getKey().startsWith(prefix)) {
                out.put(e.getKey().substring(prefix.length()), e.getValue());
                read.add(e.getKey());
            }
        }
        return out;
    }

    <T extends AutoCloseable> T own(T resource) {
        owned.add(resource);
        return resource;
    }

    /** Closes everything registered, in reverse order. */
    static void closeAll(List<AutoCloseable> owned) {
        List<AutoCloseable> reversed = new ArrayList<>(owned);
        java.util.Collections.reverse(reversed);
        for (AutoCloseable c : reversed) {
            try {
                c.close();
            } catch (Exception ignored) {
                // closing frees memory; a failure here has nothing left to protect
            }
        }
        owned.clear();
    }
}
