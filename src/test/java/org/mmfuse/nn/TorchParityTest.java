package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;
import org.mmfuse.io.SafeTensors;

/**
 * Parity with libtorch's own Linear, Bilinear, LayerNorm and MultiheadAttention (JavaCPP presets): each
 * module's parameters travel through a safetensors file, as a trained model's would, and MMFuse's
 * operation or module must give libtorch's output on every backend. Skipped where libtorch is not on
 * the class path (the GPU bundle). kdim != vdim, which libtorch's C++ module refuses, is covered against
 * the formula in FusionModelsTest and against Python's nn.MultiheadAttention in PythonExportTest.
 */
class TorchParityTest {
    @TempDir
    Path dir;

    @Test
    void libtorchModulesAndOursAgree() throws IOException {
        try {
            Class.forName("org.bytedeco.pytorch.global.torch");
        } catch (ClassNotFoundException | LinkageError e) {
            Assumptions.abort("libtorch (org.bytedeco:pytorch) is not on the class path");
        }
        Map<String, Map<String, Tensor>> modules = new LinkedHashMap<>();
        modules.put("linear", TorchModules.linear(1, 37, 19, 5));
        modules.put("bilinear", TorchModules.bilinear(2, 7, 9, 6, 4));
        modules.put("layer_norm", TorchModules.layerNorm(3, 33, 6));
        modules.put("attention", TorchModules.multiheadAttention(4, 16, 4, 3, 5, 7));
        for (Map.Entry<String, Map<String, Tensor>> e : modules.entrySet()) {
            Path file = dir.resolve(e.getKey() + ".safetensors");
            SafeTensors.write(file, e.getValue(), Map.of());
            Map<String, Tensor> read;
            try (SafeTensors st = SafeTensors.open(file)) {
                read = st.readAll();
            }
            for (Ops ops : FusionModelsTest.backends().toList()) check(ops, e.getKey(), read);
        }
    }

    private static void check(Ops ops, String module, Map<String, Tensor> s) {
        Tensor want = s.get("output");
        List<Tensor> on = new java.util.ArrayList<>();
        try {
            java.util.function.Function<String, Tensor> dev = name -> {
                Tensor t = s.get(name).to(ops.device());
                on.add(t);
                return t;
            };
            Tensor got;
            switch (module) {
                case "linear": got = ops.linear(dev.apply("input"), dev.apply("weight"), dev.apply("bias")); break;
                case "bilinear": got = ops.bilinear(dev.apply("input"), dev.apply("input2"), dev.apply("weight"), dev.apply("bias")); break;
                case "layer_norm": got = ops.layerNorm(dev.apply("input"), dev.apply("weight"), dev.apply("bias"), 1e-5); break;
                default: {
                    Map<String, Tensor> state = new LinkedHashMap<>(s);
                    state.keySet().removeAll(List.of("input", "input2", "output"));
                    try (MultiHeadCrossAttention m = MultiHeadCrossAttention.fromStateDict(ops, state, 16, 4, 16, 16, true)) {
                        Tensor kv = dev.apply("input2");
                        try (org.mmfuse.AttentionResult r = m.forward(dev.apply("input"), kv, kv, null, false, false)) {
                            got = r.output().to(ops.device());
                        }
                    }
                }
            }
            on.add(got);
            assertArrayEquals(want.shape(), got.shape(), module);
            float[] w = want.array(), g = got.toArray();
            for (int i = 0; i < w.length; i++) {
                assertEquals(w[i], g[i], 2e-5 * (1 + Math.abs(w[i])), ops.backend() + " " + module + " at " + i);
            }
        } finally {
            on.forEach(Tensor::close);
        }
    }
}
