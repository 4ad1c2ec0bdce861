package org.mmfuse.nn;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import org.mmfuse.Tensor;

/**
 * One batch for {@link Model#predict}: a tensor per modality ([B, C] or [B, N, C], on any device), an
 * optional mask per sequence ([B, N], non-zero = a real position, 0 = padding), and an optional
 * per-sample presence per modality ({@code present[b]} false = sample b lacks it). A modality given no
 * tensor at all is absent from every sample. The caller keeps owning the tensors.
 */
public final class ModelInput {
    final Map<String, Tensor> tensors = new LinkedHashMap<>();
    final Map<String, Tensor> masks = new LinkedHashMap<>();
    final Map<String, boolean[]> present = new LinkedHashMap<>();

    public ModelInput put(String name, Tensor x) {
        tensors.put(Objects.requireNonNull(name, "name"), Objects.requireNonNull(x, "tensor for " + name));
        return this;
    }

    public ModelInput mask(String name, Tensor mask) {
        masks.put(Objects.requireNonNull(name, "name"), Objects.requireNonNull(mask, "mask for " + name));
        return this;
    }

    public ModelInput present(String name, boolean[] samples) {
        present.put(Objects.requireNonNull(name, "name"), Objects.requireNonNull(samples, "presence for " + name).clone());
        return this;
    }
}
