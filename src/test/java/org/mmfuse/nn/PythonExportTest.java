package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;
import org.mmfuse.io.Json;
import org.mmfuse.io.Npy;

/**
 * Parity with PyTorch itself: tools/export_parity.py builds models from torch.nn modules (Linear,
 * LayerNorm, GELU, Bilinear, MultiheadAttention with kdim != embed_dim, FFT-based compact pooling) and
 * every block.bootstrap fusion, exports them with tools/export_model.py, and saves inputs and PyTorch's
 * outputs; each model file must load here and give those outputs on every backend. Needs a Python with torch (MMFUSE_PYTHON,
 * else python3, else /usr/bin/python3); skipped where there is none.
 */
class PythonExportTest {
    @TempDir
    Path dir;

    @Test
    void pytorchModelsExportedByTheToolGivePyTorchsOutputs() throws Exception {
        String python = pythonWithTorch();
        Assumptions.assumeTrue(python != null, "no Python with torch here (set MMFUSE_PYTHON)");
        Process p = new ProcessBuilder(python, "tools/export_parity.py", dir.toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "export_parity.py timed out");
        assertEquals(0, p.exitValue(), log);
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> cases = (List<Map<String, Object>>) Json.parse(Files.readString(dir.resolve("cases.json")));
        assertEquals(16, cases.size());
        for (Ops ops : FusionModelsTest.backends().toList()) {
            for (Map<String, Object> c : cases) check(ops, c);
        }
    }

    @SuppressWarnings("unchecked")
    private void check(Ops ops, Map<String, Object> c) throws IOException {
        ModelInput input = new ModelInput();
        ((Map<String, Object>) c.get("inputs")).forEach((name, file) -> input.put(name, read((String) file)));
        ((Map<String, Object>) c.get("masks")).forEach((name, file) -> input.mask(name, read((String) file)));
        try (Model model = Model.load(ops, dir.resolve((String) c.get("model"))); Tensor got = model.predict(input);
                Tensor want = Npy.read(dir.resolve((String) c.get("expected")))) {
            assertArrayEquals(want.shape(), got.shape(), (String) c.get("name"));
            float[] w = want.array(), g = got.toArray();
            for (int i = 0; i < w.length; i++) {
                assertEquals(w[i], g[i], 1e-4 * (1 + Math.abs(w[i])), ops.backend() + " " + c.get("name") + " at " + i);
            }
        }
    }

    private Tensor read(String file) {
        try {
            return Npy.read(dir.resolve(file));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** The first of MMFUSE_PYTHON, python3, /usr/bin/python3 that imports torch, or null. */
    private static String pythonWithTorch() {
        for (String candidate : new String[] {System.getenv("MMFUSE_PYTHON"), "python3", "/usr/bin/python3"}) {
            if (candidate == null) continue;
            try {
                Process p = new ProcessBuilder(candidate, "-c", "import torch, numpy").redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                if (p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0) return candidate;
            } catch (IOException | InterruptedException e) {
                // not this one
            }
        }
        return null;
    }
}
