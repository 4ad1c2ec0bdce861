package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.mmfuse.CountSketch;
import org.mmfuse.PoolingOptions;

/**
 * Both routes of compact bilinear pooling, forced, on shapes each would not choose by itself, against
 * the bucket sums written out here: term x_i y_j into (h_x(i) + h_y(j)) mod d with sign s_x(i) s_y(j).
 * Shapes with few channels beside d leave buckets that no term reaches.
 */
class VectorCompactBilinearTest {
    /** The cost model prices a large prime factor of d as the direct DFT it becomes, not as n log n. */
    @Test
    void aPrimeOutputSizeTakesTheOuterProduct() {
        double smooth = VectorCompactBilinear.transformFlops(16000), prime = VectorCompactBilinear.transformFlops(8191);
        assertTrue(Math.abs(smooth - 5.0 * 16000 * Math.log(16000) / Math.log(2)) < 1, "16000 = 2^7 5^3: " + smooth);
        assertTrue(prime == 8.0 * 8191 * 8191, "8191 is prime: " + prime);
        assertTrue(VectorCompactBilinear.transformFlops(7 * 1024) > 5.0 * 7 * 1024 * 10, "7 x 2^10");
        PoolShape issueShape = new PoolShape(64, 1, 2048, 2048);
        assertTrue(VectorCompactBilinear.choose(issueShape, 16000) == VectorCompactBilinear.Route.TRANSFORMS);
        assertTrue(VectorCompactBilinear.choose(issueShape, 8191) == VectorCompactBilinear.Route.OUTER_PRODUCT);
    }

    @Test
    void bothRoutesGiveTheSketchOfTheOuterProducts() {
        Random rng = new Random(31);
        // {B, N, C1, C2, d}: vectors and maps, batches that fill part of a lane group and several, odd and prime d
        int[][] shapes = {{1, 1, 5, 4, 1}, {3, 1, 20, 11, 30}, {17, 1, 40, 33, 77}, {40, 1, 64, 64, 128}, {2, 5, 9, 7, 49},
            {3, 19, 13, 6, 125}, {1, 33, 8, 8, 16}, {5, 2, 70, 3, 7}, {2, 1, 2048, 10, 16000}};
        for (int[] sh : shapes) {
            int b = sh[0], n = sh[1], c1 = sh[2], c2 = sh[3], d = sh[4];
            float[] x = random(rng, b * n * c1), y = random(rng, b * n * c2);
            CountSketch sx = CountSketch.random(c1, d, rng.nextLong()), sy = CountSketch.random(c2, d, rng.nextLong());
            PoolShape s = new PoolShape(b, n, c1, c2);
            for (VectorCompactBilinear.Route route : VectorCompactBilinear.Route.values()) {
                float[] out = new float[b * d];
                VectorCompactBilinear.pool(s, x, y, sx, sy, PoolingOptions.NONE, out, route);
                for (int sample = 0; sample < b; sample++) {
                    double[] sum = new double[d], magnitude = new double[d];
                    for (int l = 0; l < n; l++) {
                        for (int i = 0; i < c1; i++) {
                            for (int j = 0; j < c2; j++) {
                                int bucket = (sx.hash(i) + sy.hash(j)) % d;
                                double term = sx.sign(i) * sy.sign(j) * (double) x[(sample * n + l) * c1 + i]
                                        * y[(sample * n + l) * c2 + j];
                                sum[bucket] += term;
                                magnitude[bucket] += Math.abs(term);
                            }
                        }
                    }
                    double largest = 0;
                    for (double m : magnitude) largest = Math.max(largest, m);
                    for (int k = 0; k < d; k++) {
                        // A bucket no term reaches is exactly 0 by either route: a signed square root would
                        // raise the transforms' round-off there (1e-6 of the largest) to 1e-3.
                        double tolerance = magnitude[k] == 0 ? 0 : 1e-5 * magnitude[k] + 1e-5 * largest;
                        double got = out[sample * d + k];
                        assertTrue(Math.abs(got - sum[k]) <= tolerance, route + " " + java.util.Arrays.toString(sh)
                                + " sample " + sample + " bucket " + k + ": " + got + " vs " + sum[k] + " within " + tolerance);
                    }
                }
            }
        }
    }

    /**
     * The transforms reuse scratch across calls: what an earlier call with another d left in it must not
     * reach a later one (lanes past the batch once carried it into their partner lanes; found by FuzzTest).
     */
    @Test
    void earlierCallsLeaveNothingBehind() {
        Random rng = new Random(32);
        int[][] shapes = {{9, 1, 30, 20, 77}, {31, 2, 6, 19, 3}, {5, 3, 8, 8, 10}, {31, 2, 6, 19, 3}};
        for (int[] sh : shapes) {
            int b = sh[0], n = sh[1], c1 = sh[2], c2 = sh[3], d = sh[4];
            float[] x = random(rng, b * n * c1), y = random(rng, b * n * c2);
            CountSketch sx = CountSketch.random(c1, d, rng.nextLong()), sy = CountSketch.random(c2, d, rng.nextLong());
            PoolShape s = new PoolShape(b, n, c1, c2);
            float[] transforms = new float[b * d], outer = new float[b * d];
            VectorCompactBilinear.pool(s, x, y, sx, sy, PoolingOptions.NONE, transforms, VectorCompactBilinear.Route.TRANSFORMS);
            VectorCompactBilinear.pool(s, x, y, sx, sy, PoolingOptions.NONE, outer, VectorCompactBilinear.Route.OUTER_PRODUCT);
            for (int i = 0; i < b * d; i++) {
                assertTrue(Math.abs(transforms[i] - outer[i]) <= 1e-4 * (1 + Math.abs(outer[i])),
                        java.util.Arrays.toString(sh) + " at " + i + ": " + transforms[i] + " vs " + outer[i]);
            }
        }
    }

    private static float[] random(Random rng, int size) {
        float[] a = new float[size];
        for (int i = 0; i < size; i++) a[i] = rng.nextFloat() * 2 - 1;
        return a;
    }
}
