package org.mmfuse.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.mmfuse.Activation;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.SequencePooling;
import org.mmfuse.Tensor;
import org.mmfuse.nn.FusionSpec;
import org.mmfuse.nn.LayerSpec;
import org.mmfuse.nn.Model;
import org.mmfuse.nn.ModelInput;
import org.mmfuse.nn.ModelSpec;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * End-to-end {@link Model#predict} on the Vector backend beside the same model written in libtorch ops
 * (same shapes, same threads, weights drawn on each side: timing does not depend on the values, and
 * parity is tested elsewhere). Models:
 * <ul>
 *   <li>{@code mfb_vqa}: MFB VQA-sized: image [B, 2048], question [B, 2400], mm_dim 1200, factor 5,
 *       power and L2 normalisation, 3000 answers, softmax (30.3 M weights, 121 MB);
 *   <li>{@code cross_attention}: text [B, 32, 768] and regions [B, 196, 2048] projected to 512, 8-head
 *       cross-attention of the text over the regions, mean over the text, a 2-layer head (512, 100);
 *   <li>{@code late}: three modalities (512, 256 and 128 features) each scored over 100 classes by its
 *       own Linear layer, the scores' softmax averaged.
 * </ul>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xms6g", "-Xmx6g", "-XX:+AlwaysPreTouch"})
public class ModelBench {
    @Param({"mfb_vqa", "cross_attention", "late"})
    public String model;

    @Param({"1", "32", "256"})
    public int batch;

    private Model ours;
    private ModelInput input;
    /** Our model's weights cut into pieces of at most 256 K floats, for {@link #weightFloor}. */
    private final List<float[]> weightPieces = new ArrayList<>();
    private final Map<String, org.bytedeco.pytorch.Tensor> w = new LinkedHashMap<>();
    private final List<org.bytedeco.pytorch.Tensor> x = new ArrayList<>();

    /** The architectures above as specs. */
    static ModelSpec spec(String model) {
        switch (model) {
            case "mfb_vqa":
                return ModelSpec.builder().vector("image", 2048).vector("question", 2400)
                        .fusion(FusionSpec.of("mfb", Map.of("output_dim", 3000, "mm_dim", 1200, "factor", 5, "normalize", true,
                                "activ_output", "none")))
                        .output(ModelSpec.Output.SOFTMAX).build();
            case "cross_attention":
                return ModelSpec.builder().sequence("text", 768).sequence("regions", 2048)
                        .encoder("text", LayerSpec.linear(512)).encoder("regions", LayerSpec.linear(512))
                        .fusion(FusionSpec.of("cross_attention", Map.of("num_heads", 8)))
                        .head(LayerSpec.linear(512), LayerSpec.activation(Activation.RELU), LayerSpec.linear(100)).build();
            default:
                return ModelSpec.builder().vector("a", 512).vector("b", 256).vector("c", 128)
                        .encoder("a", LayerSpec.linear(100)).encoder("b", LayerSpec.linear(100)).encoder("c", LayerSpec.linear(100))
                        .fusion(FusionSpec.of("late", Map.of("combine", "mean_probs"))).build();
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        torch.set_num_threads(Runtime.getRuntime().availableProcessors());
        Random rng = new Random(1);
        ModelSpec spec = spec(model);
        Map<String, Tensor> state = new LinkedHashMap<>();
        spec.parameters().forEach((name, shape) -> {
            Tensor weight = gaussian(rng, 0.02, shape);
            state.put(name, weight);
            float[] all = weight.array();
            for (int at = 0; at < all.length; at += 1 << 18) {
                weightPieces.add(java.util.Arrays.copyOfRange(all, at, Math.min(all.length, at + (1 << 18))));
            }
            w.put(name, torch.randn(shape).mul(new Scalar(0.02)));
        });
        ours = Model.build(MMFuse.ops(Backend.VECTOR), spec, state);
        input = new ModelInput();
        for (ModelSpec.Input in : spec.inputs()) {
            long[] shape = in.sequence() ? new long[] {batch, in.name().equals("text") ? 32 : 196, in.dim()}
                    : new long[] {batch, in.dim()};
            input.put(in.name(), gaussian(rng, 1, shape));
            x.add(torch.randn(shape));
        }
        // past the JIT's first compilations before JMH's own warm-up starts timing
        long until = System.nanoTime() + 2_000_000_000L;
        while (System.nanoTime() < until) {
            ours();
            torch();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ours.close();
        w.values().forEach(org.bytedeco.pytorch.Tensor::close);
        x.forEach(org.bytedeco.pytorch.Tensor::close);
        w.clear();
        x.clear();
    }

    private static Tensor gaussian(Random rng, double scale, long... shape) {
        float[] v = new float[(int) org.mmfuse.Shapes.numel("shape", shape)];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rng.nextGaussian() * scale);
        return Tensor.of(v, shape);
    }

    @Benchmark
    public float ours() {
        try (Tensor y = ours.predict(input)) {
            return y.array()[0];
        }
    }

    /**
     * The memory floor of a predict at batch 1: every weight read once, on every core, summed and nothing
     * else (weightPieces hold the same number of floats as the model). A call can go no faster than this
     * while each weight is used once per call.
     */
    @Benchmark
    public float weightFloor() {
        return (float) weightPieces.parallelStream().mapToDouble(ModelBench::sum).sum();
    }

    private static double sum(float[] a) {
        VectorSpecies<Float> s = FloatVector.SPECIES_PREFERRED;
        FloatVector s0 = FloatVector.zero(s), s1 = s0, s2 = s0, s3 = s0;
        int i = 0, step = 4 * s.length();
        for (; i <= a.length - step; i += step) {
            s0 = s0.add(FloatVector.fromArray(s, a, i));
            s1 = s1.add(FloatVector.fromArray(s, a, i + s.length()));
            s2 = s2.add(FloatVector.fromArray(s, a, i + 2 * s.length()));
            s3 = s3.add(FloatVector.fromArray(s, a, i + 3 * s.length()));
        }
        double total = s0.add(s1).add(s2).add(s3).reduceLanes(VectorOperators.ADD);
        for (; i < a.length; i++) total += a[i];
        return total;
    }

    @Benchmark
    public void torch() {
        try (PointerScope scope = new PointerScope()) {
            switch (model) {
                case "mfb_vqa": {
                    org.bytedeco.pytorch.Tensor z = torch.relu(linear("fusion.linear0", x.get(0)))
                            .mul(torch.relu(linear("fusion.linear1", x.get(1)))).view(batch, 1200, 5).sum(2);
                    z = torch.normalize(torch.sqrt(torch.relu(z)).sub(torch.sqrt(torch.relu(z.neg()))));
                    torch.softmax(linear("fusion.linear_out", z), 1);
                    break;
                }
                case "cross_attention": {
                    org.bytedeco.pytorch.Tensor t = linear("encoders.text.0", x.get(0));
                    org.bytedeco.pytorch.Tensor r = linear("encoders.regions.0", x.get(1));
                    org.bytedeco.pytorch.Tensor wqkv = w.get("fusion.attention.in_proj_weight");
                    org.bytedeco.pytorch.Tensor bqkv = w.get("fusion.attention.in_proj_bias");
                    org.bytedeco.pytorch.Tensor q = heads(torch.linear(t, wqkv.narrow(0, 0, 512), new TensorOptional(bqkv.narrow(0, 0, 512))), 32);
                    org.bytedeco.pytorch.Tensor k = heads(torch.linear(r, wqkv.narrow(0, 512, 512), new TensorOptional(bqkv.narrow(0, 512, 512))), 196);
                    org.bytedeco.pytorch.Tensor v = heads(torch.linear(r, wqkv.narrow(0, 1024, 512), new TensorOptional(bqkv.narrow(0, 1024, 512))), 196);
                    org.bytedeco.pytorch.Tensor a = torch.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, 32, 512);
                    org.bytedeco.pytorch.Tensor pooled = linear("fusion.attention.out_proj", a).mean(1);
                    linear("head.2", torch.relu(linear("head.0", pooled)));
                    break;
                }
                default: {
                    org.bytedeco.pytorch.Tensor sum = null;
                    String[] names = {"a", "b", "c"};
                    for (int m = 0; m < 3; m++) {
                        org.bytedeco.pytorch.Tensor p = torch.softmax(linear("encoders." + names[m] + ".0", x.get(m)), 1);
                        sum = sum == null ? p : sum.add(p);
                    }
                    sum.div(new Scalar(3.0));
                }
            }
        }
    }

    private org.bytedeco.pytorch.Tensor linear(String name, org.bytedeco.pytorch.Tensor in) {
        return torch.linear(in, w.get(name + ".weight"), new TensorOptional(w.get(name + ".bias")));
    }

    /** [B, L, 512] as 8 heads [B, 8, L, 64], as SDPA takes them. */
    private org.bytedeco.pytorch.Tensor heads(org.bytedeco.pytorch.Tensor t, long length) {
        return t.view(batch, length, 8, 64).transpose(1, 2);
    }
}
