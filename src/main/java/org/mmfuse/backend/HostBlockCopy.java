package org.mmfuse.backend;

import java.util.List;
import org.mmfuse.Tensor;

/**
 * Concat and split on host arrays with bulk copies, parallel when the work pays for it.
 *
 * <p>The whole tensor's elements are cut into equal contiguous ranges, one per thread of
 * {@link CpuThreads}. Cutting the whole rather than the rows keeps the threads balanced for every
 * shape: one row of two huge pieces, or a million rows of three-float slices. Within a range, each
 * row's runs of the wide pieces go through {@link System#arraycopy} (a vectorised memcpy); narrow
 * pieces, whose per-row copies would be all call overhead, are copied column by column over blocks of
 * rows.
 */
final class HostBlockCopy {
    /** Below this many elements (32 KiB of floats) one thread is done before a second one would start. */
    static final long PARALLEL_THRESHOLD = 1 << 13;
    /** Runs shorter than this are copied by a loop: System.arraycopy's call costs more than they do. */
    private static final int SHORT_RUN = 16;
    /** Rows per block of the full-row copy: a block of narrow columns stays in L1 while its columns are copied. */
    private static final int ROW_BLOCK = 256;

    private HostBlockCopy() {}

    /** Concatenation (gather = true) or split (gather = false), with every core when large enough. */
    static void copy(BlockCopy plan, List<Tensor> pieces, Tensor whole, boolean gather) {
        long total = plan.elements();
        if (total == 0) return;
        Layout layout = new Layout(plan, pieces, whole);
        // Equal contiguous ranges of the whole, one per thread.
        int tasks = total < PARALLEL_THRESHOLD ? 1 : CpuThreads.SHARED.threads();
        CpuThreads.SHARED.run(tasks, t -> copyRange(layout, (int) (total * t / tasks), (int) (total * (t + 1) / tasks),
                gather));
    }

    /** The arrays and the plan as ints: a host tensor's indices fit in an int. */
    private static final class Layout {
        final float[][] pieces;
        final float[] whole;
        final int[] widths;
        final int[] offsets;
        final int wholeWidth;
        final int[] wide;   // pieces copied row by row with System.arraycopy
        final int[] narrow; // pieces narrower than SHORT_RUN, copied column by column

        Layout(BlockCopy plan, List<Tensor> pieceTensors, Tensor wholeTensor) {
            int n = plan.pieces();
            pieces = new float[n][];
            widths = new int[n];
            offsets = new int[n];
            for (int i = 0; i < n; i++) {
                pieces[i] = pieceTensors.get(i).array();
                widths[i] = (int) plan.width(i);
                offsets[i] = (int) plan.offset(i);
            }
            whole = wholeTensor.array();
            wholeWidth = (int) plan.wholeWidth;
            int wideCount = 0, narrowCount = 0;
            for (int w : widths) {
                if (w >= SHORT_RUN) wideCount++; else if (w > 0) narrowCount++;
            }
            wide = new int[wideCount];
            narrow = new int[narrowCount];
            for (int i = 0, wi = 0, ni = 0; i < n; i++) {
                if (widths[i] >= SHORT_RUN) wide[wi++] = i; else if (widths[i] > 0) narrow[ni++] = i;
            }
        }
    }

    /**
     * Moves the whole's elements [start, end): the rows that lie wholly inside with a tight loop over
     * rows and pieces, the partial rows at either end by walking run by run.
     */
    private static void copyRange(Layout a, int start, int end, boolean gather) {
        int firstFullRow = (int) ((start + (long) a.wholeWidth - 1) / a.wholeWidth), endFullRow = end / a.wholeWidth;
        if (firstFullRow >= endFullRow) {
            walk(a, start, end, gather);
            return;
        }
        walk(a, start, firstFullRow * a.wholeWidth, gather);
        for (int r0 = firstFullRow, r1; r0 < endFullRow; r0 = r1) {
            r1 = (int) Math.min((long) r0 + ROW_BLOCK, endFullRow); // long: r0 may lie near 2^31
            for (int row = r0; row < r1; row++) {
                int rowStart = row * a.wholeWidth;
                for (int i : a.wide) {
                    int width = a.widths[i];
                    if (gather) {
                        System.arraycopy(a.pieces[i], row * width, a.whole, rowStart + a.offsets[i], width);
                    } else {
                        System.arraycopy(a.whole, rowStart + a.offsets[i], a.pieces[i], row * width, width);
                    }
                }
            }
            for (int i : a.narrow) copyNarrow(a, i, r0, r1, gather);
        }
        walk(a, endFullRow * a.wholeWidth, end, gather);
    }

    /**
     * Rows [r0, r1) of a narrow piece, one column at a time: a long strided loop per column costs about
     * a cycle per element, where a short loop per row pays its set-up for every three or five floats.
     */
    private static void copyNarrow(Layout a, int piece, int r0, int r1, boolean gather) {
        float[] p = a.pieces[piece];
        int width = a.widths[piece], wholeWidth = a.wholeWidth;
        for (int c = 0; c < width; c++) {
            int at = r0 * width + c, wholeAt = r0 * wholeWidth + a.offsets[piece] + c;
            if (gather) {
                for (int r = r0; r < r1; r++, at += width, wholeAt += wholeWidth) a.whole[wholeAt] = p[at];
            } else {
                for (int r = r0; r < r1; r++, at += width, wholeAt += wholeWidth) p[at] = a.whole[wholeAt];
            }
        }
    }

    /** Moves the whole's elements [start, end) run by run, a run being the part of one piece in one row. */
    private static void walk(Layout a, int start, int end, boolean gather) {
        if (start >= end) return;
        int row = start / a.wholeWidth;
        int column = start - row * a.wholeWidth;
        int piece = pieceAt(a, column);
        for (int at = start; at < end; ) {
            int width = a.widths[piece];
            int inPiece = column - a.offsets[piece];
            int run = Math.min(width - inPiece, end - at);
            int pieceIndex = row * width + inPiece;
            if (gather) {
                move(a.pieces[piece], pieceIndex, a.whole, at, run);
            } else {
                move(a.whole, at, a.pieces[piece], pieceIndex, run);
            }
            at += run;
            column += run;
            if (column == a.wholeWidth) {
                row++;
                column = 0;
                piece = 0;
            }
            while (piece < a.pieces.length && column >= a.offsets[piece] + a.widths[piece]) piece++;
        }
    }

    /** The piece holding a column: the first whose end lies past it (so empty pieces are skipped). */
    private static int pieceAt(Layout a, int column) {
        int lo = 0, hi = a.pieces.length - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (a.offsets[mid] + a.widths[mid] <= column) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    private static void move(float[] src, int srcAt, float[] dst, int dstAt, int n) {
        if (n >= SHORT_RUN) {
            System.arraycopy(src, srcAt, dst, dstAt, n);
        } else {
            for (int k = 0; k < n; k++) dst[dstAt + k] = src[srcAt + k];
        }
    }
}
