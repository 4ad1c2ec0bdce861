package org.mmfuse.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;
import org.mmfuse.io.Npy;
import org.mmfuse.nn.FusionSpec;
import org.mmfuse.nn.LayerSpec;
import org.mmfuse.nn.Model;
import org.mmfuse.nn.ModelInput;
import org.mmfuse.nn.ModelSpec;

/** {@code ./mmfuse predict} and {@code describe} on a model file and .npy inputs, in batches. */
class PredictTest {
    @TempDir
    Path dir;

    @Test
    void predictsInBatchesWhatTheModelPredictsAtOnce() throws Exception {
        Random rng = new Random(111);
        ModelSpec spec = ModelSpec.builder().sequence("image", 6).vector("text", 5)
                .encoder("image", LayerSpec.pool(SequencePooling.MEAN))
                .fusion(FusionSpec.of("linear_sum", Map.of("output_dim", 4, "mm_dim", 8))).output(ModelSpec.Output.SOFTMAX).build();
        Map<String, Tensor> state = new LinkedHashMap<>();
        spec.parameters().forEach((name, shape) -> state.put(name, gaussian(rng, shape)));
        Path file = dir.resolve("m.safetensors");
        Model.save(file, spec, state);
        int samples = 23;
        Tensor image = gaussian(rng, samples, 3, 6), text = gaussian(rng, samples, 5);
        float[] mask = new float[samples * 3], present = new float[samples];
        for (int i = 0; i < mask.length; i++) mask[i] = i % 4 == 3 ? 0 : 1;
        for (int i = 0; i < samples; i++) present[i] = i % 5 == 2 ? 0 : 1;
        Npy.write(dir.resolve("image.npy"), image);
        Npy.write(dir.resolve("text.npy"), text);
        Npy.write(dir.resolve("mask.npy"), Tensor.of(mask, samples, 3));
        Npy.write(dir.resolve("present.npy"), Tensor.of(present, samples));
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = Predict.run(new String[] {"predict", "--model", file.toString(), "--input", "image=" + dir.resolve("image.npy"),
                "--input", "text=" + dir.resolve("text.npy"), "--mask", "image=" + dir.resolve("mask.npy"), "--present",
                "text=" + dir.resolve("present.npy"), "--out", dir.resolve("y.npy").toString(), "--batch", "5", "--backend", "scalar", "--precision", "bf16"},
                new PrintStream(out), new PrintStream(err));
        assertEquals(0, code, err.toString(StandardCharsets.UTF_8));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("23 samples"), out.toString(StandardCharsets.UTF_8));
        // bf16 is a permission: the CPU backends compute fp32 products, and say so
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("FP32 products"), out.toString(StandardCharsets.UTF_8));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("batch 5/5"), err.toString(StandardCharsets.UTF_8));
        boolean[] flags = new boolean[samples];
        for (int i = 0; i < samples; i++) flags[i] = present[i] != 0;
        try (Model model = Model.load(MMFuse.ops(Backend.SCALAR), file); Tensor want = model.predict(new ModelInput()
                .put("image", image).put("text", text).mask("image", Tensor.of(mask, samples, 3)).present("text", flags));
                Tensor got = Npy.read(dir.resolve("y.npy"))) {
            assertArrayEquals(want.shape(), got.shape());
            assertArrayEquals(want.toArray(), got.toArray(), 1e-6f);
        }

        // the same weights as a plain state dict, the architecture in a JSON file beside them
        Path plain = dir.resolve("plain.safetensors"), arch = dir.resolve("arch.json");
        org.mmfuse.io.SafeTensors.write(plain, state, Map.of());
        java.nio.file.Files.writeString(arch, spec.toJson());
        assertEquals(0, Predict.run(new String[] {"predict", "--model", plain.toString(), "--spec", arch.toString(), "--input",
                "image=" + dir.resolve("image.npy"), "--input", "text=" + dir.resolve("text.npy"), "--mask",
                "image=" + dir.resolve("mask.npy"), "--present", "text=" + dir.resolve("present.npy"), "--out",
                dir.resolve("y2.npy").toString(), "--backend", "scalar"}, new PrintStream(out), new PrintStream(err)),
                err.toString(StandardCharsets.UTF_8));
        try (Tensor a = Npy.read(dir.resolve("y.npy")); Tensor b = Npy.read(dir.resolve("y2.npy"))) {
            assertArrayEquals(a.toArray(), b.toArray());
        }

        ByteArrayOutputStream described = new ByteArrayOutputStream();
        assertEquals(0, Predict.describe(new String[] {"describe", file.toString()}, new PrintStream(described), new PrintStream(err)));
        String text2 = described.toString(StandardCharsets.UTF_8);
        assertTrue(text2.contains("linear_sum") && text2.contains("fusion.linear_out.weight") && text2.contains("parameters: "), text2);
    }

    @Test
    void badArgumentsExplainThemselves() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertEquals(2, Predict.run(new String[] {"predict", "--model", "m"}, new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err)));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("usage"));
        err.reset();
        assertEquals(2, Predict.run(new String[] {"predict", "--model", "m", "--input", "a=b.npy", "--out", "y.npy",
                "--precision", "fp8"}, new PrintStream(new ByteArrayOutputStream()), new PrintStream(err)));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("FP8"), err.toString(StandardCharsets.UTF_8));
        err.reset();
        assertEquals(1, Predict.run(new String[] {"predict", "--model", dir.resolve("none").toString(), "--input", "a=b.npy",
                "--out", "y.npy"}, new PrintStream(new ByteArrayOutputStream()), new PrintStream(err)));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("none"), err.toString(StandardCharsets.UTF_8));
    }

    private static Tensor gaussian(Random rng, long... shape) {
        float[] v = new float[(int) org.mmfuse.Shapes.numel("shape", shape)];
        for (int i = 0; i < v.length; i++) v[i] = (float) rng.nextGaussian();
        return Tensor.of(v, shape);
    }
}
