package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.mmfuse.Activation;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;
import org.mmfuse.io.SafeTensors;

/** Models as users meet them: missing modalities, files, architecture JSON, errors, threads. */
class ModelTest {
    @TempDir
    Path dir;

    static Stream<Ops> backends() {
        return FusionModelsTest.backends();
    }

    static final int B = 4;

    private static ModelSpec mfb() {
        return ModelSpec.builder().vector("image", 6).vector("text", 5).encoder("text", LayerSpec.linear(4))
                .fusion(FusionSpec.of("mfb", Map.of("output_dim", 3, "mm_dim", 4, "factor", 2, "activ_output", "none")))
                .build();
    }

    private static Tensor gaussian(Random rng, long... shape) {
        float[] v = new float[(int) org.mmfuse.Shapes.numel("shape", shape)];
        for (int i = 0; i < v.length; i++) v[i] = (float) rng.nextGaussian();
        return Tensor.of(v, shape);
    }

    /** MFB's formula on one sample's fusion inputs (the text already encoded). */
    private static double[] mfbRow(Map<String, Tensor> s, double[] image, double[] text) {
        double[][] e = Ref.map2(Ref.act(Ref.linear(s, "fusion.linear0", new double[][] {image}), Activation.RELU),
                Ref.act(Ref.linear(s, "fusion.linear1", new double[][] {text}), Activation.RELU), (a, b) -> a * b);
        return Ref.linear(s, "fusion.linear_out", Ref.sumConsecutive(e, 2))[0];
    }

    @ParameterizedTest
    @MethodSource("backends")
    void absentModalitiesBecomeZerosOrTheLearnedVector(Ops ops) {
        Random rng = new Random(101);
        ModelSpec spec = mfb();
        Map<String, Tensor> state = FusionModelsTest.randomState(spec, rng);
        Tensor image = gaussian(rng, B, 6), text = gaussian(rng, B, 5);
        boolean[] textPresent = {true, false, true, false};
        java.util.Arrays.fill(text.array(), 5, 10, Float.NaN); // sample 1's text is absent: never read
        for (boolean learned : new boolean[] {false, true}) {
            Map<String, Tensor> s = new LinkedHashMap<>(state);
            if (learned) s.put("missing.text", gaussian(rng, 4));
            double[][] encoded = Ref.linear(s, "encoders.text.0", Ref.rows(text));
            try (Model model = Model.build(ops, spec, s);
                    Tensor y = model.predict(new ModelInput().put("image", image).put("text", text).present("text", textPresent))) {
                float[] got = y.toArray();
                for (int b = 0; b < B; b++) {
                    double[] fused = textPresent[b] ? encoded[b] : learned ? Ref.values(s.get("missing.text")) : new double[4];
                    double[] want = mfbRow(s, Ref.rows(image)[b], fused);
                    for (int i = 0; i < 3; i++) {
                        assertEquals(want[i], got[b * 3 + i], 2e-4 * (1 + Math.abs(want[i])), ops.backend() + " learned " + learned
                                + " sample " + b);
                    }
                }
            }
        }
        // a modality given no tensor at all is absent from every sample
        try (Model model = Model.build(ops, spec, state); Tensor y = model.predict(new ModelInput().put("image", image))) {
            float[] got = y.toArray();
            for (int b = 0; b < B; b++) {
                double[] want = mfbRow(state, Ref.rows(image)[b], new double[4]);
                for (int i = 0; i < 3; i++) assertEquals(want[i], got[b * 3 + i], 2e-4 * (1 + Math.abs(want[i])));
            }
        }
    }

    /** Learned late-fusion weights are held to what fixed ones are: finite and >= 0 (a weighted mean's weights). */
    @Test
    void learnedLateWeightsMustBeFiniteAndNonNegative() {
        ModelSpec spec = ModelSpec.builder().vector("a", 3).vector("b", 3)
                .fusion(FusionSpec.of("late", Map.of("weights", "learned"))).build();
        for (float[] bad : new float[][] {{-0.5f, 1}, {Float.NaN, 1}, {1, Float.POSITIVE_INFINITY}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Model.build(MMFuse.ops(Backend.SCALAR), spec, Map.of("fusion.weights", Tensor.of(bad, 2))));
            assertTrue(e.getMessage().contains("learned weights must be finite numbers >= 0"), e.getMessage());
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void lateFusionDropsAbsentModalities(Ops ops) {
        ModelSpec spec = ModelSpec.builder().vector("a", 3).vector("b", 3)
                .fusion(FusionSpec.of("late", Map.of("weights", List.of(1, 3)))).build();
        Tensor a = Tensor.of(new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9}, 3, 3);
        Tensor b = Tensor.of(new float[] {10, 20, 30, Float.NaN, Float.NaN, Float.NaN, Float.NaN, 0, 0}, 3, 3);
        boolean[] aPresent = {true, true, false}, bPresent = {true, false, false};
        try (Model model = Model.build(ops, spec, Map.of());
                Tensor y = model.predict(new ModelInput().put("a", a).put("b", b).present("a", aPresent).present("b", bPresent))) {
            assertArrayEquals(new float[] {(1 + 30) / 4f, (2 + 60) / 4f, (3 + 90) / 4f, 4, 5, 6, 0, 0, 0}, y.toArray(), 1e-5f);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void absentSequenceIsMaskedOut(Ops ops) {
        Random rng = new Random(102);
        ModelSpec spec = ModelSpec.builder().vector("query", 4).sequence("context", 6)
                .fusion(FusionSpec.of("cross_attention", Map.of("num_heads", 2))).build();
        Map<String, Tensor> s = FusionModelsTest.randomState(spec, rng);
        Tensor q = gaussian(rng, B, 4), ctx = gaussian(rng, B, 3, 6);
        boolean[] present = {true, false, true, true};
        java.util.Arrays.fill(ctx.array(), 18, 36, Float.NaN);
        try (Model model = Model.build(ops, spec, s);
                Tensor y = model.predict(new ModelInput().put("query", q).put("context", ctx).present("context", present))) {
            float[] got = y.toArray();
            for (int b = 0; b < B; b++) {
                double[][] context = new double[3][6];
                for (int p = 0; p < 3; p++) for (int c = 0; c < 6; c++) context[p][c] = ctx.array()[(b * 3 + p) * 6 + c];
                boolean[] keep = {present[b], present[b], present[b]};
                double[] want = Ref.attention(s, "fusion.attention", new double[][] {Ref.rows(q)[b]}, context, keep, 2)[0];
                for (int i = 0; i < 4; i++) {
                    assertFalse(Float.isNaN(got[b * 4 + i]), "NaN for sample " + b);
                    assertEquals(want[i], got[b * 4 + i], 2e-4 * (1 + Math.abs(want[i])), ops.backend() + " sample " + b);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void filesRoundTripAndPlainStateDictsLoadAgainstASpec(Ops ops) throws IOException {
        Random rng = new Random(103);
        ModelSpec spec = mfb();
        Map<String, Tensor> state = FusionModelsTest.randomState(spec, rng);
        Tensor image = gaussian(rng, B, 6), text = gaussian(rng, B, 5);
        ModelInput input = new ModelInput().put("image", image).put("text", text);
        Path file = dir.resolve("m.safetensors"), plain = dir.resolve("plain.safetensors");
        Model.save(file, spec, state);
        SafeTensors.write(plain, state, Map.of());
        try (Model built = Model.build(ops, spec, state); Model loaded = Model.load(ops, file);
                Model fromPlain = Model.load(ops, plain, spec); Tensor a = built.predict(input); Tensor b = loaded.predict(input);
                Tensor c = fromPlain.predict(input)) {
            assertEquals(spec.toJson(), loaded.spec().toJson());
            assertArrayEquals(a.toArray(), b.toArray());
            assertArrayEquals(a.toArray(), c.toArray());
            String description = loaded.describe();
            assertTrue(description.contains("fusion.linear0.weight") && description.contains(String.format("%,d", loaded.parameterCount())),
                    description);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Model.load(ops, plain));
        assertTrue(e.getMessage().contains("metadata"), e.getMessage());
    }

    @Test
    void movesBetweenBackendsWithTheSameResults() {
        Random rng = new Random(104);
        ModelSpec spec = mfb();
        Map<String, Tensor> state = FusionModelsTest.randomState(spec, rng);
        ModelInput input = new ModelInput().put("image", gaussian(rng, B, 6)).put("text", gaussian(rng, B, 5));
        try (Model scalar = Model.build(MMFuse.ops(Backend.SCALAR), spec, state); Tensor want = scalar.predict(input)) {
            for (Ops ops : backends().toList()) {
                try (Model moved = scalar.to(ops); Tensor got = moved.predict(input)) {
                    assertEquals(ops.device(), got.device());
                    assertArrayEquals(want.toArray(), got.toArray(), 1e-5f, ops.backend().toString());
                }
            }
        }
    }

    @Test
    void everyTensorProblemIsListedInOneMessage() throws IOException {
        ModelSpec spec = ModelSpec.builder().vector("a", 2)
                .fusion(FusionSpec.of("concat_mlp", Map.of("output_dim", 3, "dimensions", List.of(4)))).build();
        // linears.0.weight stored as I64 of the right shape, linears.0.bias [5] (should be [4]), linears.1.* absent,
        // and a stray tensor
        String header = "{\"fusion.mlp.linears.0.weight\": {\"dtype\": \"I64\", \"shape\": [4, 2], \"data_offsets\": [0, 64]},"
                + "\"fusion.mlp.linears.0.bias\": {\"dtype\": \"F32\", \"shape\": [5], \"data_offsets\": [64, 84]},"
                + "\"stray\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [84, 88]}}";
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bytes = ByteBuffer.allocate(8 + h.length + 88).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(h.length).put(h);
        Path file = dir.resolve("bad.safetensors");
        Files.write(file, bytes.array());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Model.load(MMFuse.ops(Backend.SCALAR), file, spec));
        String m = e.getMessage();
        for (String part : new String[] {"missing: [fusion.mlp.linears.1.weight, fusion.mlp.linears.1.bias]", "unexpected: [stray]",
                "fusion.mlp.linears.0.bias is [5], expected [4]", "fusion.mlp.linears.0.weight has dtype I64"}) {
            assertTrue(m.contains(part), "'" + part + "' not in: " + m);
        }
    }

    @Test
    void absurdArchitecturesFailBeforeAnyAllocation() throws IOException {
        // a 2^31-wide input and output: ~4.6e18 weights declared; the check refuses the file before reading
        String json = "{\"format\": \"mmfuse.model\", \"version\": 1, \"inputs\": [{\"name\": \"a\", \"dim\": 2147483647}],"
                + "\"fusion\": {\"type\": \"concat_mlp\", \"output_dim\": 2147483647, \"dimensions\": []}}";
        ModelSpec spec = ModelSpec.fromJson(json);
        Path file = dir.resolve("empty.safetensors");
        SafeTensors.write(file, Map.of(), Map.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Model.load(MMFuse.ops(Backend.SCALAR), file, spec));
        assertTrue(e.getMessage().contains("missing"), e.getMessage());
        // a product of widths past 2^63 is refused when the spec is read
        String overflow = json.replace("\"concat_mlp\", \"output_dim\": 2147483647, \"dimensions\": []",
                "\"tfn\", \"output_dim\": 2, \"dimensions\": [2147483647]").replace("[{\"name\": \"a\", \"dim\": 2147483647}]",
                "[{\"name\": \"a\", \"dim\": 2147483647}, {\"name\": \"b\", \"dim\": 2147483647}, {\"name\": \"c\", \"dim\": 2147483647}]");
        e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.fromJson(overflow));
        assertTrue(e.getMessage().contains("fusion tfn"), e.getMessage());
    }

    @Test
    void architecturesThatWouldDeclareMillionsOfLayersAreRefused() {
        String two = "{\"format\": \"mmfuse.model\", \"version\": 1, \"inputs\": [{\"name\": \"a\", \"dim\": 6}, {\"name\": \"b\", \"dim\": 5}],";
        // 2^31 - 1 chunks: an array of their sizes alone would be 16 GB
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.fromJson(two
                + "\"fusion\": {\"type\": \"block\", \"output_dim\": 1, \"mm_dim\": 2147483647, \"chunks\": 2147483647}}"));
        assertTrue(e.getMessage().contains("chunks 2147483647: at most " + Fusions.MAX_CHUNKS), e.getMessage());
        // an MLP of 40,000 layers: 80,000 tensors declared by one layer
        StringBuilder dims = new StringBuilder();
        for (int i = 0; i < 40_000; i++) dims.append(i == 0 ? "" : ", ").append(3);
        e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.fromJson(two
                + "\"fusion\": {\"type\": \"concat_mlp\", \"output_dim\": 3, \"dimensions\": [" + dims + "]}}"));
        assertTrue(e.getMessage().contains("more than " + Plan.MAX_PARAMETERS + " tensors"), e.getMessage());
        // more JSON than any architecture takes
        String padded = two + "\"fusion\": {\"type\": \"mfb\", \"output_dim\": 2}, \"head\": [" + " ".repeat(ModelSpec.MAX_JSON_CHARS) + "]}";
        e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.fromJson(padded));
        assertTrue(e.getMessage().contains("an architecture is at most " + ModelSpec.MAX_JSON_CHARS), e.getMessage());
    }

    @Test
    void architectureJsonRoundTripsAndNamesItsMistakes() {
        ModelSpec spec = ModelSpec.builder().sequence("image", 12).vector("text", 8)
                .encoder("image", LayerSpec.pool(org.mmfuse.SequencePooling.MAX), LayerSpec.layerNorm())
                .fusion(FusionSpec.of("block", Map.of("output_dim", 5, "mm_dim", 10, "chunks", 3, "rank", 2)))
                .head(LayerSpec.activation(Activation.GELU), LayerSpec.linear(4)).output(ModelSpec.Output.SOFTMAX).build();
        assertEquals(spec.toJson(), ModelSpec.fromJson(spec.toJson()).toJson());
        assertEquals(4, spec.outputDim());
        String base = "{\"format\": \"mmfuse.model\", \"version\": 1, \"inputs\": [{\"name\": \"a\", \"dim\": 4}, {\"name\": \"b\", \"dim\": 3}],";
        String[][] mistakes = {
                {"\"fusion\": {\"type\": \"mfb\", \"output_dim\": 2, \"mm_dims\": 3}}", "unknown option [mm_dims]"},
                {"\"fusion\": {\"type\": \"mfx\", \"output_dim\": 2}}", "unknown fusion type 'mfx'"},
                {"\"fusion\": {\"type\": \"mfb\", \"output_dim\": 2, \"input_dims\": [4, 5]}}", "input_dims' is [4, 5] but the inputs give [4, 3]"},
                {"\"fusion\": {\"type\": \"mfb\", \"output_dim\": -2}}", "'output_dim' must be a positive integer"},
                {"\"fusion\": {\"type\": \"mfb\"}}", "'output_dim' is required"},
                {"\"encoders\": {\"a\": [{\"type\": \"linear\", \"out\": 2, \"in\": 5}]}, \"fusion\": {\"type\": \"mfb\", \"output_dim\": 2}}",
                        "encoders.a[0] linear: option 'in' is 5 but the inputs give 4"},
                {"\"encoders\": {\"a\": [{\"type\": \"pool\"}]}, \"fusion\": {\"type\": \"mfb\", \"output_dim\": 2}}", "pools a sequence"},
                {"\"encoders\": {\"c\": []}, \"fusion\": {\"type\": \"mfb\", \"output_dim\": 2}}", "not an input"},
                {"\"fusion\": {\"type\": \"mfb\", \"output_dim\": 2}, \"output\": \"logsoftmax\"}", "output must be none, softmax or sigmoid"},
                {"\"fusion\": {\"type\": \"bilinear_pool\"}}", "takes two sequences"},
        };
        for (String[] m : mistakes) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.fromJson(base + m[0]), m[0]);
            assertTrue(e.getMessage().contains(m[1]), "'" + m[1] + "' not in: " + e.getMessage());
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void badPredictInputsAreNamed(Ops ops) {
        try (Model model = Model.build(ops, mfb(), FusionModelsTest.randomState(mfb(), new Random(105)))) {
            Tensor image = Tensor.zeros(2, 6), text = Tensor.zeros(3, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> model.predict(new ModelInput().put("image", image).put("text", text)));
            assertTrue(e.getMessage().contains("batch"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> model.predict(new ModelInput().put("audio", image)));
            assertTrue(e.getMessage().contains("'audio'"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> model.predict(new ModelInput().put("image", Tensor.zeros(2, 7))));
            assertTrue(e.getMessage().contains("[B, 6]") && e.getMessage().contains("[2, 7]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> model.predict(new ModelInput().put("image", image).present("image", new boolean[3])));
            assertTrue(e.getMessage().contains("3 entries"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> model.predict(new ModelInput()));
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void sharedModulesMayKeepTheirSecondNames(Ops ops) {
        Random rng = new Random(107);
        ModelSpec spec = ModelSpec.builder().vector("a", 6).vector("b", 6)
                .fusion(FusionSpec.of("mutan", Map.of("output_dim", 3, "mm_dim", 4, "rank", 2, "shared", true))).build();
        Map<String, Tensor> state = FusionModelsTest.randomState(spec, rng);
        Map<String, Tensor> withAliases = new LinkedHashMap<>(state); // as module.state_dict() lists them
        for (String name : new String[] {"linear", "merge_linear"}) {
            for (String part : new String[] {".weight", ".bias"}) withAliases.put("fusion." + name + "1" + part, state.get("fusion." + name + "0" + part));
        }
        ModelInput input = new ModelInput().put("a", gaussian(rng, B, 6)).put("b", gaussian(rng, B, 6));
        try (Model plain = Model.build(ops, spec, state); Model aliased = Model.build(ops, spec, withAliases);
                Tensor y = plain.predict(input); Tensor z = aliased.predict(input)) {
            assertArrayEquals(y.toArray(), z.toArray());
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void pooledSequencesAndOmittedMapsFuse(Ops ops) {
        Random rng = new Random(108);
        // a masked sequence pooled by its encoder, then cross-attention: the mask stays with the encoder
        ModelSpec pooled = ModelSpec.builder().sequence("q", 8).sequence("kv", 8).encoder("q", LayerSpec.pool(org.mmfuse.SequencePooling.MEAN))
                .fusion(FusionSpec.of("cross_attention", Map.of("num_heads", 2))).build();
        Tensor q = gaussian(rng, B, 3, 8), kv = gaussian(rng, B, 5, 8);
        float[] m = new float[B * 3];
        java.util.Arrays.fill(m, 1f);
        m[1] = 0;
        try (Model model = Model.build(ops, pooled, FusionModelsTest.randomState(pooled, rng));
                Tensor y = model.predict(new ModelInput().put("q", q).mask("q", Tensor.of(m, B, 3)).put("kv", kv))) {
            assertArrayEquals(new long[] {B, 8}, y.shape());
        }
        // a whole feature map left out of bilinear pooling: absent, with its partner's length
        ModelSpec maps = ModelSpec.builder().sequence("x", 4).sequence("y", 3)
                .fusion(FusionSpec.of("bilinear_pool", Map.of("l2", false))).build();
        try (Model model = Model.build(ops, maps, Map.of()); Tensor y = model.predict(new ModelInput().put("x", gaussian(rng, B, 5, 4)))) {
            assertArrayEquals(new float[B * 12], y.toArray()); // x ⊗ 0 is 0, and so is its signed root (sign 0)
        }
    }

    @Test
    void threadsSharingAModelGetBitIdenticalResults() throws Exception {
        Random rng = new Random(106);
        ModelSpec spec = ModelSpec.builder().sequence("a", 16).vector("b", 12).encoder("a", LayerSpec.pool(org.mmfuse.SequencePooling.MEAN))
                .fusion(FusionSpec.of("block", Map.of("output_dim", 10, "mm_dim", 20, "chunks", 3, "rank", 3))).build();
        for (Ops ops : backends().toList()) {
            try (Model model = Model.build(ops, spec, FusionModelsTest.randomState(spec, rng))) {
                List<ModelInput> inputs = new ArrayList<>();
                List<float[]> want = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    ModelInput in = new ModelInput().put("a", gaussian(rng, 5, 7, 16)).put("b", gaussian(rng, 5, 12));
                    inputs.add(in);
                    try (Tensor y = model.predict(in)) {
                        want.add(y.toArray());
                    }
                }
                ExecutorService pool = Executors.newFixedThreadPool(8);
                try {
                    List<Future<Boolean>> results = new ArrayList<>();
                    for (int t = 0; t < 8; t++) {
                        results.add(pool.submit(() -> {
                            for (int round = 0; round < 20; round++) {
                                for (int i = 0; i < inputs.size(); i++) {
                                    try (Tensor y = model.predict(inputs.get(i))) {
                                        if (!java.util.Arrays.equals(want.get(i), y.toArray())) return false;
                                    }
                                }
                            }
                            return true;
                        }));
                    }
                    for (Future<Boolean> f : results) assertTrue(f.get(60, TimeUnit.SECONDS), ops.backend() + ": a thread saw other bits");
                } finally {
                    pool.shutdownNow();
                }
            }
        }
    }

    /**
     * Closing a model while another thread predicts with it: close waits for the prediction, which completes
     * with the right values, and later predictions throw. The backend is wrapped so that the prediction can
     * be held inside its first matrix product while close is called. (Before close waited, it freed the
     * weights at once: on the CPU the library-made ones, such as the cross-attention projections, went back
     * to the array pool and out again as other calls' outputs.)
     */
    @ParameterizedTest
    @MethodSource("backends")
    void closeWaitsForAPredictionUnderWay(Ops ops) throws Exception {
        Random rng = new Random(107);
        ModelSpec spec = ModelSpec.builder().sequence("text", 24).sequence("image", 40)
                .fusion(FusionSpec.of("cross_attention", Map.of("num_heads", 2))).build();
        ModelInput in = new ModelInput().put("text", gaussian(rng, 3, 5, 24)).put("image", gaussian(rng, 3, 9, 40));
        java.util.concurrent.CountDownLatch inside = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.atomic.AtomicBoolean hold = new java.util.concurrent.atomic.AtomicBoolean();
        Ops held = (Ops) java.lang.reflect.Proxy.newProxyInstance(Ops.class.getClassLoader(), new Class<?>[] {Ops.class},
                (proxy, method, args) -> {
                    if (method.getName().equals("linear") && hold.compareAndSet(true, false)) {
                        inside.countDown();
                        release.await();
                    }
                    try {
                        return method.invoke(ops, args);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        Model model = Model.build(held, spec, FusionModelsTest.randomState(spec, rng));
        float[] want;
        try (Tensor y = model.predict(in)) {
            want = y.toArray();
        }
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            hold.set(true);
            Future<float[]> prediction = pool.submit(() -> {
                try (Tensor y = model.predict(in)) {
                    return y.toArray();
                }
            });
            assertTrue(inside.await(30, TimeUnit.SECONDS));
            Future<?> closing = pool.submit(() -> model.close());
            assertThrows(java.util.concurrent.TimeoutException.class, () -> closing.get(200, TimeUnit.MILLISECONDS),
                    "close returned while a prediction was under way");
            release.countDown();
            assertArrayEquals(want, prediction.get(30, TimeUnit.SECONDS));
            closing.get(30, TimeUnit.SECONDS);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.predict(in));
            assertTrue(e.getMessage().contains("the model is closed"), e.getMessage());
            model.close(); // twice is harmless
        } finally {
            release.countDown();
            pool.shutdownNow();
        }
    }
}
