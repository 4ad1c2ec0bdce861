package org.mmfuse.nn;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;

/** The checks every module makes of the PyTorch state dict it is built from, with messages naming the module. */
final class StateDicts {
    private StateDicts() {}

    /** Refuses a tensor the module has no place for. */
    static void onlyExpected(String module, Map<String, Tensor> state, List<String> expected) {
        for (String name : state.keySet()) {
            if (!expected.contains(name)) {
                throw new IllegalArgumentException(module + ": unexpected tensor '" + name + "' (expected " + expected
                        + ")");
            }
        }
    }

    /** The named tensor, checked for presence and shape. */
    static Tensor checked(String module, Map<String, Tensor> state, String name, long... shape) {
        Tensor t = state.get(name);
        if (t == null) throw new IllegalArgumentException(module + ": missing tensor '" + name + "'");
        if (!Arrays.equals(t.shape(), shape)) {
            throw new IllegalArgumentException(module + ": '" + name + "' has shape " + Shapes.toString(t.shape())
                    + ", expected " + Shapes.toString(shape));
        }
        return t;
    }
}
