package org.mmfuse;

/** What {@link Ops#attention} (and the attention modules) return; closing it closes every tensor in it. */
public final class AttentionResult implements AutoCloseable {
    private final Tensor output;
    private final Tensor logSumExp;
    private final Tensor weights;

    public AttentionResult(Tensor output, Tensor logSumExp, Tensor weights) {
        this.output = output;
        this.logSumExp = logSumExp;
        this.weights = weights;
    }

    /** [B, Lq, H, Dv], or [B, Lq, H*Dv] for packed inputs. */
    public Tensor output() {
        return output;
    }

    /** [B, H, Lq] when requested, else null; -infinity for a query whose keys are all masked. */
    public Tensor logSumExp() {
        return logSumExp;
    }

    /**
     * [B, H, Lq, Lk] when requested (or [B, Lq, Lk] where the producer averages over heads), else null;
     * all zero for a query whose keys are all masked.
     */
    public Tensor weights() {
        return weights;
    }

    @Override
    public void close() {
        output.close();
        if (logSumExp != null) logSumExp.close();
        if (weights != null) weights.close();
    }
}
