package org.mmfuse.bench;

import java.util.ArrayList;
import java.util.List;

/**
 * A concatenation along the last axis written as {@code B<rows>:<width>+<width>...}, where a term
 * {@code <width>x<count>} stands for count inputs of that width: {@code B256:2048+768} is an image
 * feature [256, 2048] joined with a text feature [256, 768].
 */
final class ConcatShape {
    final long rows;
    final long[] widths;

    private ConcatShape(long rows, long[] widths) {
        this.rows = rows;
        this.widths = widths;
    }

    static ConcatShape parse(String spec) {
        String[] parts = spec.split(":");
        if (parts.length != 2 || !parts[0].startsWith("B")) throw new IllegalArgumentException("bad shape " + spec);
        List<Long> widths = new ArrayList<>();
        for (String term : parts[1].split("\\+")) {
            String[] wc = term.split("x");
            long width = Long.parseLong(wc[0]);
            int count = wc.length > 1 ? Integer.parseInt(wc[1]) : 1;
            for (int i = 0; i < count; i++) widths.add(width);
        }
        return new ConcatShape(Long.parseLong(parts[0].substring(1)), widths.stream().mapToLong(Long::longValue).toArray());
    }

    long outputWidth() {
        long sum = 0;
        for (long w : widths) sum += w;
        return sum;
    }

    /** Bytes a concatenation moves: every output element read once and written once. */
    long bytesMoved() {
        return 2 * 4 * rows * outputWidth();
    }
}
