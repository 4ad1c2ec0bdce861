package org.mmfuse.nn;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.mmfuse.Activation;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.Ops;
import org.mmfuse.PoolingOptions;
import org.mmfuse.Tensor;

/**
 * block.bootstrap's MFB and MFH fusions at inference, from their state dicts:
 * {@code MFB(input_dims, output_dim, mm_dim=1200, factor=2, activ_input='relu', activ_output='relu',
 * normalize=False)} and {@code MFH} (the same arguments, two cascaded stages). Per stage s, x0 and x1 go
 * through Linear layers to mm_dim * factor units, the input activation, their product (MFH multiplies
 * stage 2's by stage 1's), sums of {@code factor} consecutive units, and with {@code normalize} the
 * signed square root (without eps, as there) and L2; the stages side by side go through
 * {@code linear_out} and the output activation. Note the reference's default: a ReLU after the output
 * layer ({@code activ_output='relu'}); pass {@link Activation#NONE} for the raw logits. block.bootstrap's
 * MLB ({@code mm_dim=1200}, the same names as MFB) is this with one stage and factor 1.
 *
 * <p>Names: MFB {@code linear0.*}, {@code linear1.*}, {@code linear_out.*}; MFH {@code linear0_0.*},
 * {@code linear1_0.*}, {@code linear0_1.*}, {@code linear1_1.*}, {@code linear_out.*} (weight and bias
 * each). MFH's stage projections are joined at load, so each input takes one matrix product. The module
 * owns device copies of its weights: close it when done. Dropout is the identity at inference.
 */
public final class FactorizedFusion implements AutoCloseable {
    /** How state-dict errors name this module. */
    private static final String NAME = "FactorizedFusion";

    private final Ops ops;
    private final int stages, mmDim, factor;
    private final Activation inputActivation, outputActivation;
    private final boolean normalize;
    private final Tensor w0, b0, w1, b1, wOut, bOut;
    private final boolean ownsWeights; // false inside a Model, which owns (and on the CPU shares) them

    private FactorizedFusion(Ops ops, int stages, int mmDim, int factor, Activation in, Activation out, boolean normalize,
            Tensor[] t, boolean ownsWeights) {
        this.ops = ops;
        this.ownsWeights = ownsWeights;
        this.stages = stages;
        this.mmDim = mmDim;
        this.factor = factor;
        this.inputActivation = in;
        this.outputActivation = out;
        this.normalize = normalize;
        w0 = t[0];
        b0 = t[1];
        w1 = t[2];
        b1 = t[3];
        wOut = t[4];
        bOut = t[5];
    }

    /**
     * MFB (stages = 1) or MFH (stages = 2) from state-dict tensors (host or device), every name and shape
     * checked; the map is left as it was.
     *
     * @throws IllegalArgumentException naming a missing, unexpected or misshapen tensor
     */
    public static FactorizedFusion fromStateDict(Ops ops, Map<String, Tensor> state, int stages, int inputDim0,
            int inputDim1, int outputDim, int mmDim, int factor, Activation inputActivation, Activation outputActivation,
            boolean normalize) {
        Objects.requireNonNull(ops, "ops");
        Objects.requireNonNull(state, "state");
        Objects.requireNonNull(inputActivation, "inputActivation");
        Objects.requireNonNull(outputActivation, "outputActivation");
        if (stages < 1 || stages > 2 || inputDim0 <= 0 || inputDim1 <= 0 || outputDim <= 0 || mmDim <= 0 || factor <= 0) {
            throw new IllegalArgumentException("FactorizedFusion: stages must be 1 (MFB) or 2 (MFH) and every size positive,"
                    + " got stages " + stages + ", input dims " + inputDim0 + ", " + inputDim1 + ", output " + outputDim
                    + ", mm_dim " + mmDim + ", factor " + factor);
        }
        List<String> expected = new ArrayList<>(List.of("linear_out.weight", "linear_out.bias"));
        for (int s = 0; s < stages; s++) {
            for (String input : new String[] {"linear0", "linear1"}) {
                String name = stages == 1 ? input : input + "_" + s;
                expected.add(name + ".weight");
                expected.add(name + ".bias");
            }
        }
        StateDicts.onlyExpected(NAME, state, expected);
        long units = (long) mmDim * factor;
        Tensor[] t = new Tensor[6];
        try {
            t[0] = joined(ops, state, "linear0", stages, units, inputDim0, true);
            t[1] = joined(ops, state, "linear0", stages, units, inputDim0, false);
            t[2] = joined(ops, state, "linear1", stages, units, inputDim1, true);
            t[3] = joined(ops, state, "linear1", stages, units, inputDim1, false);
            t[4] = StateDicts.checked(NAME, state, "linear_out.weight", outputDim, (long) stages * mmDim)
                    .to(ops.device());
            t[5] = StateDicts.checked(NAME, state, "linear_out.bias", outputDim).to(ops.device());
            ops.synchronize(); // the joined stage weights are ready before another thread uses the module
            return new FactorizedFusion(ops, stages, mmDim, factor, inputActivation, outputActivation, normalize, t, true);
        } catch (RuntimeException e) {
            for (Tensor x : t) if (x != null) x.close();
            throw e;
        }
    }

    /**
     * The fusion inside a model, from its checked tensors: no copies on the CPU (the model's own tensors are
     * used), MFH's stage projections joined on the host once; the model owns and closes them all.
     */
    static FactorizedFusion fromParams(Params p, int stages, int mmDim, int factor, Activation inputActivation,
            Activation outputActivation, boolean normalize) {
        Tensor[] t = {stacked(p, "linear0", stages, ".weight"), stacked(p, "linear0", stages, ".bias"),
            stacked(p, "linear1", stages, ".weight"), stacked(p, "linear1", stages, ".bias"), p.device("linear_out.weight"),
            p.device("linear_out.bias")};
        return new FactorizedFusion(p.ops, stages, mmDim, factor, inputActivation, outputActivation, normalize, t, false);
    }

    /** An input's stage tensors one after the other (rows of the weights, entries of the biases). */
    private static Tensor stacked(Params p, String input, int stages, String part) {
        if (stages == 1) return p.device(input + part);
        List<float[]> parts = new ArrayList<>();
        long[] shape = p.host(input + "_0" + part).shape();
        int length = 0;
        for (int s = 0; s < stages; s++) {
            parts.add(p.host(input + "_" + s + part).array());
            length += parts.get(s).length;
        }
        float[] all = new float[length];
        for (int s = 0, at = 0; s < stages; at += parts.get(s).length, s++) System.arraycopy(parts.get(s), 0, all, at, parts.get(s).length);
        shape[0] *= stages;
        return p.upload(Tensor.of(all, shape));
    }

    /** One input's stage weights (or biases), checked, stacked stage after stage on the backend's device. */
    private static Tensor joined(Ops ops, Map<String, Tensor> state, String input, int stages, long units, int inputDim,
            boolean weight) {
        List<Tensor> parts = new ArrayList<>();
        try {
            for (int s = 0; s < stages; s++) {
                String name = (stages == 1 ? input : input + "_" + s) + (weight ? ".weight" : ".bias");
                Tensor t = weight ? StateDicts.checked(NAME, state, name, units, inputDim)
                        : StateDicts.checked(NAME, state, name, units);
                parts.add(t.to(ops.device()));
            }
            return stages == 1 ? parts.remove(0) : ops.concat(parts, 0);
        } finally {
            parts.forEach(Tensor::close);
        }
    }

    /** The fusion of x0 [B, inputDim0] and x1 [B, inputDim1]: [B, outputDim], a new tensor the caller closes. */
    public Tensor forward(Tensor x0, Tensor x1) {
        FactorizedPoolOptions pooling = FactorizedPoolOptions.DEFAULT.factor(factor).stages(stages)
                .activation(inputActivation)
                .pooling(normalize ? PoolingOptions.NONE.signedSqrt(0).l2Normalize(true) : PoolingOptions.NONE);
        try (Tensor p0 = ops.linear(x0, w0, b0); Tensor p1 = ops.linear(x1, w1, b1);
                Tensor z = ops.factorizedPool(p0, p1, pooling)) {
            Tensor out = ops.linear(z, wOut, bOut);
            if (outputActivation == Activation.NONE) return out;
            try (out) {
                return ops.activation(out, outputActivation);
            }
        }
    }

    /** mm_dim: the units each stage pools to. */
    public int mmDim() {
        return mmDim;
    }

    @Override
    public void close() {
        if (!ownsWeights) return;
        for (Tensor t : new Tensor[] {w0, b0, w1, b1, wOut, bOut}) t.close();
    }
}
