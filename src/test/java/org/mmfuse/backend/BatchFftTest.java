package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The batched FFT against a direct O(n²) DFT in double, lane by lane, forward and inverse. */
class BatchFftTest {
    private static final int LANES = BatchFft.LANES;

    @Test
    void matchesTheDirectDftForMixedRadixLengths() {
        Random rng = new Random(21);
        // powers of 2 and 4, 3s, 5s, 7s, other primes (direct radix), mixed, and 16000 = 2^7 5^3
        int[] lengths = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 15, 16, 27, 30, 32, 49, 64, 77, 100, 125, 128, 210, 243, 1000,
            1024, 16000};
        for (int n : lengths) {
            for (boolean inverse : new boolean[] {false, true}) {
                BatchFft fft = BatchFft.of(n);
                float[] re = new float[fft.arrayLength()], im = new float[fft.arrayLength()];
                for (int i = 0; i < re.length; i++) {
                    re[i] = rng.nextFloat() * 2 - 1;
                    im[i] = rng.nextFloat() * 2 - 1;
                }
                float[] inRe = re.clone(), inIm = im.clone();
                float[] re2 = new float[re.length], im2 = new float[re.length];
                boolean second = fft.transform(re, im, re2, im2, inverse);
                float[] outRe = second ? re2 : re, outIm = second ? im2 : im;
                int[] lanes = n > 1000 ? new int[] {0, LANES - 1} : laneRange();
                for (int lane : lanes) check(n, lane, inRe, inIm, outRe, outIm, inverse);
            }
        }
    }

    private static int[] laneRange() {
        int[] all = new int[LANES];
        for (int i = 0; i < LANES; i++) all[i] = i;
        return all;
    }

    private static void check(int n, int lane, float[] inRe, float[] inIm, float[] outRe, float[] outIm, boolean inverse) {
        double sign = inverse ? 1 : -1, norm = 0;
        for (int t = 0; t < n; t++) norm += sq(inRe[t * LANES + lane]) + sq(inIm[t * LANES + lane]);
        // fp32 FFT error grows like log n; the direct sums' scale is the input's norm
        double tolerance = 2e-6 * Math.sqrt(norm) * (1 + Math.log(n));
        // long transforms: a spread of outputs, so the O(n²) check stays quick
        for (int k = 0; k < n; k += n > 1024 ? 97 : 1) {
            double sr = 0, si = 0;
            for (int t = 0; t < n; t++) {
                double angle = sign * 2 * Math.PI * ((long) k * t % n) / n;
                double c = Math.cos(angle), s = Math.sin(angle);
                double xr = inRe[t * LANES + lane], xi = inIm[t * LANES + lane];
                sr += xr * c - xi * s;
                si += xr * s + xi * c;
            }
            double er = Math.abs(outRe[k * LANES + lane] - sr), ei = Math.abs(outIm[k * LANES + lane] - si);
            assertTrue(er <= tolerance && ei <= tolerance, "n = " + n + (inverse ? " inverse" : " forward") + ", lane "
                    + lane + ", k = " + k + ": (" + outRe[k * LANES + lane] + ", " + outIm[k * LANES + lane] + ") vs ("
                    + sr + ", " + si + ") within " + tolerance);
        }
    }

    private static double sq(double v) {
        return v * v;
    }
}
