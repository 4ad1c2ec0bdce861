package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;

/**
 * The model entry points driven at random: random architectures (every fusion type, random encoders,
 * heads and outputs) on random weights and inputs with random masks and absent samples, each backend
 * against the scalar one and never NaN from finite inputs; invalid inputs refused alike everywhere; and
 * architecture JSON with a character changed either read as an architecture or refused with
 * IllegalArgumentException. Seeded: {@code -Dmmfuse.fuzz.seed=S -Dmmfuse.fuzz.cases=N} replays.
 */
class ModelFuzzTest {
    private SplittableRandom rng;

    @Test
    void randomModelsAgreeAcrossBackendsAndNeverProduceNaN() {
        long seed = Long.getLong("mmfuse.fuzz.seed", System.nanoTime());
        int cases = Integer.getInteger("mmfuse.fuzz.cases", 300);
        Ops reference = MMFuse.ops(Backend.SCALAR);
        List<Ops> others = FusionModelsTest.backends().filter(o -> o.backend() != Backend.SCALAR).toList();
        int predicted = 0, refused = 0;
        for (int c = 0; c < cases; c++) {
            rng = new SplittableRandom(seed + c);
            String what = "case " + c + " (replay with -Dmmfuse.fuzz.seed=" + (seed + c) + " -Dmmfuse.fuzz.cases=1)";
            ModelSpec spec = spec();
            what = spec.fusion().type() + ", " + what + ": " + spec.toJson();
            Map<String, Tensor> state = state(spec);
            int batch = rng.nextInt(6);
            ModelInput input = input(spec, batch, rng.nextInt(8) == 0);
            boolean valid = input != null;
            if (!valid) input = input(spec, batch, false);
            if (!valid) spoil(spec, input, batch);
            float[] want = run(reference, spec, state, input, what);
            if (valid && want == null) fail(what + ": a valid call was refused");
            if (want == null) refused++; else predicted++;
            if (want != null) {
                for (float v : want) if (Float.isNaN(v)) fail(what + ": NaN from finite inputs");
            }
            for (Ops ops : others) {
                float[] got = run(ops, spec, state, input, what);
                if ((want == null) != (got == null)) fail(what + ": " + ops.backend() + " and the reference disagree on refusing");
                if (want == null) continue;
                double scale = 0;
                for (float v : want) scale = Math.max(scale, Math.abs(v));
                for (int i = 0; i < want.length; i++) {
                    if (!(Math.abs(got[i] - want[i]) <= 2e-3 * scale + 1e-4)) {
                        fail(what + ": " + ops.backend() + " gave " + got[i] + " at " + i + ", the reference " + want[i]);
                    }
                }
            }
            // the architecture's JSON with one character changed: read, or refused with IllegalArgumentException
            String json = spec.toJson();
            StringBuilder broken = new StringBuilder(json);
            broken.setCharAt(rng.nextInt(json.length()), "{}[]\\\",:0123456789-.eaxn ".charAt(rng.nextInt(25)));
            try {
                ModelSpec.fromJson(broken.toString());
            } catch (IllegalArgumentException expected) {
                // most changes
            } catch (RuntimeException e) {
                fail(what + ": " + e + " for the JSON " + broken, e);
            }
        }
        // both kinds exercised in earnest (unless a single case is being replayed)
        if (cases >= 100) {
            org.junit.jupiter.api.Assertions.assertTrue(predicted > cases / 2 && refused > cases / 20,
                    predicted + " predicted and " + refused + " refused of " + cases);
        }
    }

    /** The output's values, or null when predict refused the call with IllegalArgumentException. */
    private static float[] run(Ops ops, ModelSpec spec, Map<String, Tensor> state, ModelInput input, String what) {
        try (Model model = Model.build(ops, spec, state)) {
            try (Tensor y = model.predict(input)) {
                return y.toArray();
            } catch (IllegalArgumentException refused) {
                return null;
            }
        } catch (RuntimeException e) {
            throw new AssertionError(what + ": " + ops.backend() + " threw " + e, e);
        }
    }

    private int dim() {
        return 1 + rng.nextInt(9);
    }

    private ModelSpec spec() {
        String[] vectorFusions = {"concat_mlp", "linear_sum", "mlb", "mfb", "mfh", "mutan", "tucker", "block", "block_tucker",
            "mcb", "tfn", "lmf", "gmu", "late"};
        String[] sequenceFusions = {"bilinear_pool", "cross_attention", "co_attention", "mcb"};
        boolean sequences = rng.nextInt(3) == 0;
        String type = sequences ? sequenceFusions[rng.nextInt(sequenceFusions.length)] : vectorFusions[rng.nextInt(vectorFusions.length)];
        int inputs = List.of("tfn", "lmf", "gmu", "late", "concat_mlp").contains(type) ? 2 + rng.nextInt(2) : 2;
        ModelSpec.Builder b = ModelSpec.builder();
        int shared = dim(), heads = 1 + rng.nextInt(2);
        for (int i = 0; i < inputs; i++) {
            int d = type.equals("late") || type.equals("co_attention") && rng.nextBoolean() ? shared : dim();
            if (type.endsWith("attention")) d = heads * (1 + rng.nextInt(4));
            if (type.equals("co_attention")) d = shared * heads;
            String name = "m" + i;
            boolean sequence = sequences || rng.nextInt(4) == 0;
            if (sequence) b.sequence(name, d); else b.vector(name, d);
            List<LayerSpec> steps = new ArrayList<>();
            if (sequence && !sequences) steps.add(LayerSpec.pool(SequencePooling.values()[rng.nextInt(4)]));
            if (!type.endsWith("attention") && !type.equals("late") && rng.nextInt(3) == 0) {
                steps.add(rng.nextBoolean() ? LayerSpec.layerNorm() : LayerSpec.activation(org.mmfuse.Activation.GELU));
            }
            if (type.endsWith("attention") && rng.nextInt(3) == 0) {
                // a linear encoder (which the Vector backend may fold into cross-attention), its output
                // a width the fusion takes
                steps.add(LayerSpec.linear(type.equals("co_attention") ? d : heads * (1 + rng.nextInt(4))));
            }
            if (!steps.isEmpty()) b.encoder(name, steps.toArray(new LayerSpec[0]));
        }
        Map<String, Object> o = new LinkedHashMap<>();
        int out = dim();
        switch (type) {
            case "concat_mlp": o.put("output_dim", out); o.put("dimensions", List.of(dim())); break;
            case "mfb": case "mfh": o.put("factor", 1 + rng.nextInt(3)); // fall through
            case "linear_sum": case "mlb": o.put("output_dim", out); o.put("mm_dim", dim()); o.put("normalize", rng.nextBoolean()); break;
            case "mutan": o.put("output_dim", out); o.put("mm_dim", dim()); o.put("rank", 1 + rng.nextInt(3)); break;
            case "tucker": o.put("output_dim", out); o.put("mm_dim", dim()); break;
            case "block": o.put("rank", 1 + rng.nextInt(3)); // fall through
            case "block_tucker": o.put("output_dim", out); o.put("mm_dim", 6 + rng.nextInt(6)); o.put("chunks", 1 + rng.nextInt(3));
                o.put("pos_norm", rng.nextBoolean() ? "before_cat" : "after_cat"); break;
            case "mcb": o.put("output_dim", out); o.put("mm_dim", 1 + rng.nextInt(17)); break;
            case "tfn": o.put("output_dim", out); o.put("dimensions", List.of(dim())); break;
            case "lmf": o.put("output_dim", out); o.put("rank", 1 + rng.nextInt(3)); break;
            case "gmu": o.put("output_dim", out); o.put("bias", rng.nextBoolean()); break;
            case "late": o.put("combine", List.of("mean_logits", "mean_probs", "vote").get(rng.nextInt(3))); break;
            case "bilinear_pool": if (rng.nextBoolean()) o.put("output_dim", out); break;
            case "co_attention": o.put("combine", rng.nextBoolean() ? "concat" : "product"); // fall through
            default: o.put("num_heads", heads);
        }
        b.fusion(FusionSpec.of(type, o));
        if (rng.nextBoolean()) b.head(LayerSpec.linear(dim()));
        b.output(ModelSpec.Output.values()[rng.nextInt(3)]);
        return b.build();
    }

    private Map<String, Tensor> state(ModelSpec spec) {
        ModelPlan plan = spec.plan();
        Map<String, Tensor> state = new LinkedHashMap<>();
        plan.parameters.forEach((name, shape) -> {
            float[] v = new float[(int) org.mmfuse.Shapes.numel(name, shape)];
            Object mm = spec.fusion().options().get("mm_dim");
            for (int i = 0; i < v.length; i++) {
                v[i] = plan.indices.contains(name) ? rng.nextInt(((Number) mm).intValue())
                        : name.contains("sketch") ? (rng.nextBoolean() ? 1 : -1) : (float) (rng.nextDouble() - 0.5);
            }
            state.put(name, Tensor.of(v, shape));
        });
        return state;
    }

    /** Inputs for every modality (sometimes left out), random masks and presence; null when {@code invalid} was asked. */
    private ModelInput input(ModelSpec spec, int batch, boolean invalid) {
        if (invalid) return null;
        ModelInput in = new ModelInput();
        int length = 1 + rng.nextInt(5);
        boolean given = false;
        for (ModelSpec.Input i : spec.inputs()) {
            if (given && rng.nextInt(6) == 0) continue; // absent from the whole batch
            given = true;
            long[] shape = i.sequence() ? new long[] {batch, length, i.dim()} : new long[] {batch, i.dim()};
            float[] v = new float[(int) org.mmfuse.Shapes.numel("x", shape)];
            for (int k = 0; k < v.length; k++) v[k] = (float) (rng.nextDouble() * 4 - 2);
            in.put(i.name(), Tensor.of(v, shape));
            if (i.sequence() && rng.nextBoolean()) {
                float[] m = new float[batch * length];
                for (int k = 0; k < m.length; k++) m[k] = rng.nextInt(3) == 0 ? 0 : 1;
                in.mask(i.name(), Tensor.of(m, batch, length));
            }
            if (rng.nextInt(3) == 0) {
                boolean[] p = new boolean[batch];
                for (int k = 0; k < batch; k++) p[k] = rng.nextInt(3) != 0;
                in.present(i.name(), p);
            }
        }
        return in;
    }

    /** One invalid thing: an input of the wrong width, a presence array of the wrong length, an unknown input. */
    private void spoil(ModelSpec spec, ModelInput in, int batch) {
        ModelSpec.Input i = spec.inputs().get(0);
        switch (rng.nextInt(3)) {
            case 0 -> in.put(i.name(), Tensor.zeros(i.sequence() ? new long[] {batch, 2, i.dim() + 1} : new long[] {batch, i.dim() + 1}));
            case 1 -> in.put(i.name(), Tensor.zeros(i.sequence() ? new long[] {batch, 2, i.dim()} : new long[] {batch, i.dim()}))
                    .present(i.name(), new boolean[batch + 1]);
            default -> in.put("no_such_input", Tensor.zeros(batch, 1));
        }
    }
}
