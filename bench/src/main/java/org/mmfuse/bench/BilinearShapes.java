package org.mmfuse.bench;

import java.util.Random;
import org.mmfuse.CountSketch;
import org.mmfuse.FactorizedPoolOptions;
import org.mmfuse.Ops;
import org.mmfuse.PoolingOptions;
import org.mmfuse.Tensor;

/**
 * The bilinear family's benchmark shapes ({@code op:dims}, sizes joined by x as JMH's -p takes them) and one MMFuse call per
 * shape, shared by the benchmarks of every backend.
 *
 * <ul>
 *   <li>{@code pool:BxNxC1xC2}: full bilinear pooling, finished as a bilinear CNN (mean, signed root, L2);
 *   <li>{@code layer:BxC1xC2xK}: nn.Bilinear with bias;
 *   <li>{@code compact:BxNxCxd}: compact bilinear pooling of two C-wide inputs (N = 1: vectors [B, C]);
 *   <li>{@code mfb:BxXxYxMxk}: MFB from x [B, X] and y [B, Y]: two Linear projections to M k units,
 *       the product summed in groups of k, signed root, L2 (block.bootstrap's MFB with normalize=True).
 * </ul>
 */
final class BilinearShapes {
    static final String POOL_196 = "pool:32x196x512x512";
    static final String POOL_49 = "pool:8x49x2048x768";
    static final String LAYER = "layer:64x512x512x256";
    static final String COMPACT_VECTORS = "compact:64x1x2048x16000";
    static final String COMPACT_MAPS = "compact:32x196x512x8192";
    static final String MFB = "mfb:64x2048x768x1200x5";

    static final PoolingOptions MFB_FINISH = PoolingOptions.NONE.signedSqrt(0).l2Normalize(true);

    final String op;
    final int[] d;

    BilinearShapes(String shape) {
        String[] parts = shape.split(":");
        op = parts[0];
        String[] dims = parts[1].split("x");
        d = new int[dims.length];
        for (int i = 0; i < dims.length; i++) d[i] = Integer.parseInt(dims[i]);
    }

    /** Multiply-adds times two of the shape's products (its GEMM work); 0 for compact pooling, which has no fixed count. */
    static double flops(String shape) {
        BilinearShapes s = new BilinearShapes(shape);
        int[] d = s.d;
        switch (s.op) {
            case "pool":
                return 2.0 * d[0] * d[1] * d[2] * d[3];
            case "layer":
                return 2.0 * d[0] * d[1] * d[2] * d[3];
            case "mfb":
                return 2.0 * d[0] * (d[1] + d[2]) * d[3] * d[4];
            default:
                return 0;
        }
    }

    /** The inputs of one shape on the host, and the call that the MMFuse benchmarks time. */
    static final class Inputs {
        final BilinearShapes shape;
        final Tensor a, b, w0, b0, w1, b1;
        final CountSketch sx, sy;

        Inputs(String name) {
            shape = new BilinearShapes(name);
            int[] d = shape.d;
            Random rng = new Random(1);
            switch (shape.op) {
                case "pool":
                    a = random(rng, d[0], d[1], d[2]);
                    b = random(rng, d[0], d[1], d[3]);
                    w0 = b0 = w1 = b1 = null;
                    sx = sy = null;
                    break;
                case "layer":
                    a = random(rng, d[0], d[1]);
                    b = random(rng, d[0], d[2]);
                    w0 = random(rng, d[3], d[1], d[2]);
                    b0 = random(rng, d[3]);
                    w1 = b1 = null;
                    sx = sy = null;
                    break;
                case "compact":
                    a = d[1] == 1 ? random(rng, d[0], d[2]) : random(rng, d[0], d[1], d[2]);
                    b = d[1] == 1 ? random(rng, d[0], d[2]) : random(rng, d[0], d[1], d[2]);
                    w0 = b0 = w1 = b1 = null;
                    sx = CountSketch.random(d[2], d[3], 1);
                    sy = CountSketch.random(d[2], d[3], 2);
                    break;
                case "mfb":
                    a = random(rng, d[0], d[1]);
                    b = random(rng, d[0], d[2]);
                    w0 = random(rng, d[3] * d[4], d[1]);
                    b0 = random(rng, d[3] * d[4]);
                    w1 = random(rng, d[3] * d[4], d[2]);
                    b1 = random(rng, d[3] * d[4]);
                    sx = sy = null;
                    break;
                default:
                    throw new IllegalArgumentException("unknown bilinear benchmark shape " + name);
            }
        }

        /** The same inputs on {@code device} (new tensors the caller closes; host inputs are returned as they are). */
        Inputs on(org.mmfuse.Device device) {
            return new Inputs(this, device);
        }

        private Inputs(Inputs host, org.mmfuse.Device device) {
            shape = host.shape;
            a = moved(host.a, device);
            b = moved(host.b, device);
            w0 = moved(host.w0, device);
            b0 = moved(host.b0, device);
            w1 = moved(host.w1, device);
            b1 = moved(host.b1, device);
            sx = host.sx;
            sy = host.sy;
        }

        private static Tensor moved(Tensor t, org.mmfuse.Device device) {
            return t == null ? null : t.to(device);
        }

        /** Closes the tensors (for inputs made by {@link #on}). */
        void close() {
            for (Tensor t : new Tensor[] {a, b, w0, b0, w1, b1}) if (t != null) t.close();
        }

        /** Runs the shape's operation; the caller closes the result. */
        Tensor run(Ops ops) {
            switch (shape.op) {
                case "pool":
                    return ops.bilinearPool(a, b, PoolingOptions.BILINEAR_CNN);
                case "layer":
                    return ops.bilinear(a, b, w0, b0);
                case "compact":
                    return ops.compactBilinearPool(a, b, sx, sy, PoolingOptions.NONE);
                default:
                    try (Tensor x = ops.linear(a, w0, b0); Tensor y = ops.linear(b, w1, b1)) {
                        return ops.factorizedPool(x, y, FactorizedPoolOptions.DEFAULT.factor(shape.d[4]).pooling(MFB_FINISH));
                    }
            }
        }
    }

    static Tensor random(Random rng, long... shape) {
        long n = 1;
        for (long s : shape) n *= s;
        float[] data = new float[Math.toIntExact(n)];
        for (int i = 0; i < data.length; i++) data[i] = rng.nextFloat() - 0.5f;
        return Tensor.of(data, shape);
    }
}
