package org.mmfuse.backend;

import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;
import org.mmfuse.Tensor;

/**
 * Concat and split on host arrays with bulk copies, parallel when the work pays for it.
 *
 * <p>The whole tensor's elements are cut into equal contiguous ranges, one task each; a task walks its
 * range row by row and piece by piece, copying each run with {@link System#arraycopy} (a vectorised
 * memcpy), or a plain loop for runs too short to amortise the call. Cutting the whole rather than the
 * rows keeps the tasks balanced for every shape: one row of two huge pieces, or a million rows of
 * three-float slices.
 */
final class HostBlockCopy {
    /** Below this many elements (4 MiB of floats) one thread copies faster than a fork/join round trip. */
    static final long PARALLEL_THRESHOLD = 1 << 20;
    /** Runs shorter than this are copied by a loop: System.arraycopy's call costs more than they do. */
    private static final int SHORT_RUN = 16;

    private HostBlockCopy() {}

    /** Concatenation (gather = true) or split (gather = false), with every core when large enough. */
    static void copy(BlockCopy plan, List<Tensor> pieces, Tensor whole, boolean gather) {
        long total = plan.elements();
        if (total == 0) return;
        float[][] arrays = new float[pieces.size()][];
        for (int i = 0; i < arrays.length; i++) arrays[i] = pieces.get(i).array();
        float[] wholeArray = whole.array();
        int threads = ForkJoinPool.getCommonPoolParallelism() + 1; // the caller works too
        int tasks = total < PARALLEL_THRESHOLD || threads < 2 ? 1 : (int) Math.min(threads * 4L, total / (PARALLEL_THRESHOLD / 4));
        if (tasks == 1) {
            copyRange(plan, arrays, wholeArray, 0, total, gather);
            return;
        }
        IntStream.range(0, tasks).parallel().forEach(t -> copyRange(plan, arrays, wholeArray,
                total * t / tasks, total * (t + 1) / tasks, gather));
    }

    /** Moves the whole's elements [start, end) between the whole and the pieces. */
    private static void copyRange(BlockCopy plan, float[][] pieces, float[] whole, long start, long end, boolean gather) {
        long wholeWidth = plan.wholeWidth;
        long row = start / wholeWidth;
        long column = start - row * wholeWidth;
        int piece = pieceAt(plan, column);
        for (long at = start; at < end; ) {
            long width = plan.width(piece);
            long inPiece = column - plan.offset(piece);
            int run = (int) Math.min(width - inPiece, end - at);
            int pieceIndex = (int) (row * width + inPiece);
            if (gather) {
                move(pieces[piece], pieceIndex, whole, (int) at, run);
            } else {
                move(whole, (int) at, pieces[piece], pieceIndex, run);
            }
            at += run;
            column += run;
            if (column == wholeWidth) {
                row++;
                column = 0;
                piece = 0;
            }
            while (piece < plan.pieces() && column >= plan.offset(piece) + plan.width(piece)) piece++;
        }
    }

    /** The piece holding a column, skipping empty pieces: the last piece whose offset is <= column and width > 0. */
    private static int pieceAt(BlockCopy plan, long column) {
        int lo = 0, hi = plan.pieces() - 1;
        while (lo < hi) { // first piece whose end is past the column
            int mid = (lo + hi) >>> 1;
            if (plan.offset(mid) + plan.width(mid) <= column) lo = mid + 1; else hi = mid;
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
