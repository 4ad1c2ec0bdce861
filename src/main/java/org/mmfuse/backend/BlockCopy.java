package org.mmfuse.backend;

import java.util.List;
import org.mmfuse.Tensor;

/**
 * Concatenation and split seen as block copies: the whole tensor is a matrix [rows, wholeWidth] and
 * piece i is a matrix [rows, widths[i]] occupying columns [offsets[i], offsets[i] + widths[i]) of it.
 * For a concat along axis a, rows is the product of the sizes before a and a piece's width is its size
 * along a times the product of the sizes after a. Every backend implements both directions on this.
 */
public final class BlockCopy {
    public final long rows;
    public final long wholeWidth;
    private final long[] widths;
    private final long[] offsets;

    BlockCopy(long rows, long[] widths) {
        this.rows = rows;
        this.widths = widths;
        this.offsets = new long[widths.length];
        long offset = 0;
        for (int i = 0; i < widths.length; i++) {
            offsets[i] = offset;
            offset += widths[i];
        }
        this.wholeWidth = offset;
    }

    /** The plan for pieces of shapes like {@code pieces} joined along {@code axis} (already checked to match). */
    static BlockCopy along(int axis, List<Tensor> pieces) {
        long[] widths = new long[pieces.size()];
        long rows = 1;
        for (int i = 0; i < widths.length; i++) {
            Tensor t = pieces.get(i);
            rows = 1;
            for (int d = 0; d < axis; d++) rows *= t.size(d);
            widths[i] = 1;
            for (int d = axis; d < t.rank(); d++) widths[i] *= t.size(d);
        }
        return new BlockCopy(rows, widths);
    }

    public int pieces() {
        return widths.length;
    }

    /** Elements per row of piece i. */
    public long width(int piece) {
        return widths[piece];
    }

    /** First column of piece i in the whole. */
    public long offset(int piece) {
        return offsets[piece];
    }

    /** A copy of all widths, in piece order. */
    public long[] widths() {
        return widths.clone();
    }

    /** Elements moved in one direction: rows times the whole width. */
    public long elements() {
        return rows * wholeWidth;
    }
}
