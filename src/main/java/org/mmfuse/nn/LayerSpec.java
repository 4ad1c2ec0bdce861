package org.mmfuse.nn;

import java.util.List;
import java.util.Map;
import org.mmfuse.Activation;
import org.mmfuse.SequencePooling;

/**
 * One step of an encoder or a head (an {@code nn.Sequential} entry): its type and options. Types, with
 * their tensors (named {@code <index>.<name>} in the Sequential, as PyTorch numbers them):
 * <ul>
 *   <li>{@code linear}: {@code out} (required), {@code bias} (true); weight [out, in], bias [out]. On
 *       vectors and, position by position, on sequences;
 *   <li>{@code layer_norm}: {@code eps} (1e-5), {@code elementwise_affine} (true); weight, bias [dim];
 *   <li>{@code relu}, {@code tanh}, {@code sigmoid}, {@code gelu} (the erf form), {@code softmax} (over the
 *       last dimension);
 *   <li>{@code dropout}: {@code p}; the identity at inference;
 *   <li>{@code pool}: {@code mode} mean, sum, max or first; a sequence to a vector over its mask's kept
 *       positions ({@link org.mmfuse.Ops#poolSequence});
 *   <li>{@code mlp}: block.bootstrap's MLP: {@code dimensions} (required), {@code activation} ("relu")
 *       between its Linear layers and not after the last; {@code linears.<j>.weight} / {@code .bias}.
 * </ul>
 */
public final class LayerSpec extends TypedSpec {
    private LayerSpec(String type, Map<String, Object> options) {
        super(type, options);
    }

    /** A step from its type and options (the JSON form's keys). */
    public static LayerSpec of(String type, Map<String, Object> options) {
        return new LayerSpec(type, options == null ? Map.of() : options);
    }

    public static LayerSpec linear(int out) {
        return of("linear", Map.of("out", out));
    }

    public static LayerSpec layerNorm() {
        return of("layer_norm", Map.of());
    }

    /** relu, tanh, sigmoid or gelu. */
    public static LayerSpec activation(Activation activation) {
        if (activation == Activation.NONE) throw new IllegalArgumentException("LayerSpec: NONE is not a step");
        return of(activation.name().toLowerCase(), Map.of());
    }

    public static LayerSpec pool(SequencePooling mode) {
        return of("pool", Map.of("mode", mode.name().toLowerCase()));
    }

    public static LayerSpec mlp(List<Integer> dimensions, Activation activation) {
        return of("mlp", Map.of("dimensions", dimensions, "activation", activation.name().toLowerCase()));
    }
}
