package org.mmfuse;

/**
 * How {@link Ops#poolSequence} reduces a sequence [B, N, C] to [B, C] over the positions its mask keeps.
 * A sample with no kept position gets zeros, whichever the mode.
 */
public enum SequencePooling {
    /** The mean over the kept positions. */
    MEAN,
    /** The sum over the kept positions. */
    SUM,
    /** The largest value per channel over the kept positions; NaN if any of them is NaN (as torch.max). */
    MAX,
    /** Position 0 (a CLS token), or zeros where the mask drops it. */
    FIRST
}
