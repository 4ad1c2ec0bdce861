package org.mmfuse.bench;

import java.util.Random;
import org.mmfuse.Tensor;

/**
 * The attention benchmarks' shape parameter, {@code "B,H,Lq,Lk,Dh"} ({@link ProjectedAttentionBench}'s is
 * {@code "B,Lq,Lk,kdim"}); also read with x for the commas ({@code 32x8x32x196x64}), the form {@code ./mmfuse
 * bench -p} takes, since it splits its value lists at commas. Kept apart from the benchmark classes so that
 * reading it loads no libtorch class (a GPU machine's bundle has none).
 */
final class AttentionShapes {
    private AttentionShapes() {}

    /** The shape's numbers in order: B, H, Lq, Lk, Dh. */
    static int[] dims(String shape) {
        String[] p = shape.split("[,x]");
        int[] d = new int[p.length];
        for (int i = 0; i < p.length; i++) d[i] = Integer.parseInt(p[i]);
        return d;
    }

    /** 4 B H Lq Lk Dh: two products of Lq x Lk x Dh multiply-adds. */
    static double flops(String shape) {
        int[] d = dims(shape);
        return 4.0 * d[0] * d[1] * d[2] * d[3] * d[4];
    }

    /** A host tensor of uniform values in [-0.5, 0.5). */
    static Tensor random(Random rng, long... shape) {
        float[] data = new float[Math.toIntExact(org.mmfuse.Shapes.numel("shape", shape))];
        for (int i = 0; i < data.length; i++) data[i] = rng.nextFloat() - 0.5f;
        return Tensor.of(data, shape);
    }
}
