package org.mmfuse.backend;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Complex FFTs of one length n on as many sequences at once as a vector has lanes: element t of the
 * sequence in lane l lies at {@code [t * LANES + l]} of separate real and imaginary arrays. Working on a
 * batch in the lanes makes every butterfly plain vector arithmetic, without shuffles, for any radix.
 *
 * <p>Stockham's self-sorting algorithm, mixed radix (Govindaraju et al., "High performance discrete
 * Fourier transforms on graphics processors", SC 2008): stage by stage with Ns = the product of the
 * radices done, element j + r n/R goes through a twiddle and a radix-R butterfly to
 * (j / Ns) Ns R + j mod Ns + r Ns, between two pairs of arrays in turn. Radices 4, 2, 3 and 5 have their
 * own butterflies; any other prime factor p is a direct p-point DFT (O(n p) work: fine for 7 or 11,
 * slow for lengths with a large prime factor). Forward is e^{-2πi jk/n}, as numpy and torch; the
 * inverse is unscaled.
 */
final class BatchFft {
    /**
     * At most 8 lanes: a batch's four arrays then take 128 KB per 1000 points (2 MB at d = 16000, this
     * machine's L2). With 16 lanes they spill to L3 and the memory-bound passes took 6.3 ms instead of
     * 4.2 (compact pooling, 64 x 2048 -> 16000); 4 lanes took 4.6.
     */
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED.length() > 8 ? FloatVector.SPECIES_256
            : FloatVector.SPECIES_PREFERRED;
    static final int LANES = S.length();
    private static final ConcurrentHashMap<Integer, BatchFft> PLANS = new ConcurrentHashMap<>();

    final int n;
    private final int[] radices;
    /** Per stage, the twiddles e^{-2πi jj r / (Ns R)} at [jj * (R - 1) + r - 1]. */
    private final float[][] twiddleCos;
    private final float[][] twiddleSin;
    /** Per stage with a direct DFT, cos and sin of 2π t / R for t < R; null for the radices with butterflies. */
    private final float[][] rootCos;
    private final float[][] rootSin;

    private BatchFft(int n) {
        this.n = n;
        // Odd radices first, then 4s and a 2. A stage reads R streams n/R elements apart and writes R streams
        // Ns elements apart; where such a stride is a multiple of 4 KB, the streams fall into the same L1 sets
        // and evict each other. With the odd radices first, Ns is odd while they run, so their writes never
        // fall on those multiples, and the power-of-two stages after them reach one later, if at all (n =
        // 16000 on Zen 4, one core: 1.0 ms for a batch of 8 with the 5s last, 0.5 ms with them first).
        // Lengths that are powers of two still meet such strides (16384: about 9 GFLOP/s against 17 for 16000).
        List<Integer> factors = new ArrayList<>();
        int rest = n, twos = 0;
        while (rest % 2 == 0) {
            twos++;
            rest /= 2;
        }
        for (int p = 3; rest > 1; p += 2) {
            while (rest % p == 0) {
                factors.add(p);
                rest /= p;
            }
        }
        for (; twos >= 2; twos -= 2) factors.add(4);
        if (twos == 1) factors.add(2);
        radices = factors.stream().mapToInt(Integer::intValue).toArray();
        twiddleCos = new float[radices.length][];
        twiddleSin = new float[radices.length][];
        rootCos = new float[radices.length][];
        rootSin = new float[radices.length][];
        int ns = 1;
        for (int s = 0; s < radices.length; s++) {
            int r = radices[s];
            twiddleCos[s] = new float[ns * (r - 1)];
            twiddleSin[s] = new float[ns * (r - 1)];
            for (int jj = 0; jj < ns; jj++) {
                for (int q = 1; q < r; q++) {
                    double angle = -2 * Math.PI * jj * q / ((double) ns * r);
                    twiddleCos[s][jj * (r - 1) + q - 1] = (float) Math.cos(angle);
                    twiddleSin[s][jj * (r - 1) + q - 1] = (float) Math.sin(angle);
                }
            }
            if (r > 5) {
                rootCos[s] = new float[r];
                rootSin[s] = new float[r];
                for (int t = 0; t < r; t++) {
                    rootCos[s][t] = (float) Math.cos(2 * Math.PI * t / r);
                    rootSin[s][t] = (float) Math.sin(2 * Math.PI * t / r);
                }
            }
            ns *= r;
        }
    }

    /** The plan for length n (> 0), built once per length. */
    static BatchFft of(int n) {
        if (n <= 0) throw new IllegalArgumentException("FFT length must be > 0, got " + n);
        return PLANS.computeIfAbsent(n, BatchFft::new);
    }

    /** Floats in each of the four arrays a transform takes. */
    int arrayLength() {
        return n * LANES;
    }

    /**
     * Transforms the batch in (re, im), using (re2, im2) as the other half of the ping-pong; returns
     * true when the result ended in (re2, im2), false when in (re, im).
     */
    boolean transform(float[] re, float[] im, float[] re2, float[] im2, boolean inverse) {
        float[] inRe = re, inIm = im, outRe = re2, outIm = im2;
        int ns = 1;
        for (int s = 0; s < radices.length; s++) {
            int r = radices[s];
            float sign = inverse ? -1f : 1f;
            switch (r) {
                case 4 -> radix4(ns, inRe, inIm, outRe, outIm, twiddleCos[s], twiddleSin[s], sign);
                case 2 -> radix2(ns, inRe, inIm, outRe, outIm, twiddleCos[s], twiddleSin[s], sign);
                case 3 -> radix3(ns, inRe, inIm, outRe, outIm, twiddleCos[s], twiddleSin[s], sign);
                case 5 -> radix5(ns, inRe, inIm, outRe, outIm, twiddleCos[s], twiddleSin[s], sign);
                default -> direct(r, ns, inRe, inIm, outRe, outIm, twiddleCos[s], twiddleSin[s], rootCos[s], rootSin[s], sign);
            }
            float[] t = inRe;
            inRe = outRe;
            outRe = t;
            t = inIm;
            inIm = outIm;
            outIm = t;
            ns *= r;
        }
        return radices.length % 2 == 1;
    }

    // Each butterfly reads element j + q n/R (q < R), multiplies by the twiddle w^q (w = e^{∓2πi jj/(Ns R)},
    // jj = j mod Ns; the sign argument is +1 forward, -1 inverse, and conjugates), transforms, and writes
    // element (j - jj) R + jj + q Ns. The complex multiplies are written out in each butterfly: a helper
    // would return two vectors, which Java can only do through an object the JIT may not remove.

    private void radix2(int ns, float[] ir, float[] ii, float[] or, float[] oi, float[] tc, float[] ts, float sign) {
        int quarter = n / 2 * LANES;
        for (int j = 0; j < n / 2; j++) {
            int jj = j % ns, in = j * LANES, out = ((j - jj) * 2 + jj) * LANES;
            FloatVector ar = FloatVector.fromArray(S, ir, in), ai = FloatVector.fromArray(S, ii, in);
            FloatVector br = FloatVector.fromArray(S, ir, in + quarter), bi = FloatVector.fromArray(S, ii, in + quarter);
            if (jj != 0) {
                float c = tc[jj], sn = sign * ts[jj];
                FloatVector r = br.mul(c).sub(bi.mul(sn));
                bi = br.mul(sn).add(bi.mul(c));
                br = r;
            }
            ar.add(br).intoArray(or, out);
            ai.add(bi).intoArray(oi, out);
            ar.sub(br).intoArray(or, out + ns * LANES);
            ai.sub(bi).intoArray(oi, out + ns * LANES);
        }
    }

    private void radix4(int ns, float[] ir, float[] ii, float[] or, float[] oi, float[] tc, float[] ts, float sign) {
        int step = n / 4 * LANES, outStep = ns * LANES;
        for (int j = 0; j < n / 4; j++) {
            int jj = j % ns, in = j * LANES, out = ((j - jj) * 4 + jj) * LANES;
            FloatVector ar = FloatVector.fromArray(S, ir, in), ai = FloatVector.fromArray(S, ii, in);
            FloatVector br = FloatVector.fromArray(S, ir, in + step), bi = FloatVector.fromArray(S, ii, in + step);
            FloatVector cr = FloatVector.fromArray(S, ir, in + 2 * step), ci = FloatVector.fromArray(S, ii, in + 2 * step);
            FloatVector dr = FloatVector.fromArray(S, ir, in + 3 * step), di = FloatVector.fromArray(S, ii, in + 3 * step);
            if (jj != 0) {
                int t = jj * 3;
                float c1 = tc[t], s1 = sign * ts[t], c2 = tc[t + 1], s2 = sign * ts[t + 1], c3 = tc[t + 2], s3 = sign * ts[t + 2];
                FloatVector r = br.mul(c1).sub(bi.mul(s1));
                bi = br.mul(s1).add(bi.mul(c1));
                br = r;
                r = cr.mul(c2).sub(ci.mul(s2));
                ci = cr.mul(s2).add(ci.mul(c2));
                cr = r;
                r = dr.mul(c3).sub(di.mul(s3));
                di = dr.mul(s3).add(di.mul(c3));
                dr = r;
            }
            FloatVector sumAcR = ar.add(cr), sumAcI = ai.add(ci), difAcR = ar.sub(cr), difAcI = ai.sub(ci);
            FloatVector sumBdR = br.add(dr), sumBdI = bi.add(di), difBdR = br.sub(dr), difBdI = bi.sub(di);
            // -i (b - d) forward, +i (b - d) inverse: (x + iy)(-i) = y - ix
            FloatVector rotR = difBdI.mul(sign), rotI = difBdR.mul(-sign);
            sumAcR.add(sumBdR).intoArray(or, out);
            sumAcI.add(sumBdI).intoArray(oi, out);
            difAcR.add(rotR).intoArray(or, out + outStep);
            difAcI.add(rotI).intoArray(oi, out + outStep);
            sumAcR.sub(sumBdR).intoArray(or, out + 2 * outStep);
            sumAcI.sub(sumBdI).intoArray(oi, out + 2 * outStep);
            difAcR.sub(rotR).intoArray(or, out + 3 * outStep);
            difAcI.sub(rotI).intoArray(oi, out + 3 * outStep);
        }
    }

    private void radix3(int ns, float[] ir, float[] ii, float[] or, float[] oi, float[] tc, float[] ts, float sign) {
        int step = n / 3 * LANES, outStep = ns * LANES;
        float half3 = (float) (Math.sqrt(3) / 2) * sign;
        for (int j = 0; j < n / 3; j++) {
            int jj = j % ns, in = j * LANES, out = ((j - jj) * 3 + jj) * LANES;
            FloatVector ar = FloatVector.fromArray(S, ir, in), ai = FloatVector.fromArray(S, ii, in);
            FloatVector br = FloatVector.fromArray(S, ir, in + step), bi = FloatVector.fromArray(S, ii, in + step);
            FloatVector cr = FloatVector.fromArray(S, ir, in + 2 * step), ci = FloatVector.fromArray(S, ii, in + 2 * step);
            if (jj != 0) {
                int t = jj * 2;
                float c1 = tc[t], s1 = sign * ts[t], c2 = tc[t + 1], s2 = sign * ts[t + 1];
                FloatVector r = br.mul(c1).sub(bi.mul(s1));
                bi = br.mul(s1).add(bi.mul(c1));
                br = r;
                r = cr.mul(c2).sub(ci.mul(s2));
                ci = cr.mul(s2).add(ci.mul(c2));
                cr = r;
            }
            FloatVector sumR = br.add(cr), sumI = bi.add(ci);
            FloatVector midR = ar.sub(sumR.mul(0.5f)), midI = ai.sub(sumI.mul(0.5f));
            // ∓i (√3/2)(b - c): (x + iy)(-i) = y - ix
            FloatVector rotR = bi.sub(ci).mul(half3), rotI = br.sub(cr).mul(-half3);
            ar.add(sumR).intoArray(or, out);
            ai.add(sumI).intoArray(oi, out);
            midR.add(rotR).intoArray(or, out + outStep);
            midI.add(rotI).intoArray(oi, out + outStep);
            midR.sub(rotR).intoArray(or, out + 2 * outStep);
            midI.sub(rotI).intoArray(oi, out + 2 * outStep);
        }
    }

    private static final float C1 = (float) Math.cos(2 * Math.PI / 5), C2 = (float) Math.cos(4 * Math.PI / 5);
    private static final float S1 = (float) Math.sin(2 * Math.PI / 5), S2 = (float) Math.sin(4 * Math.PI / 5);

    /**
     * With t1 = b + e, t2 = c + d, t3 = b - e, t4 = c - d: y0 = a + t1 + t2, y1,4 = m1 ∓ i n1 and
     * y2,3 = m2 ∓ i n2 for m1 = a + C1 t1 + C2 t2, m2 = a + C2 t1 + C1 t2, n1 = S1 t3 + S2 t4,
     * n2 = S2 t3 - S1 t4 (the signs of i flip for the inverse).
     */
    private void radix5(int ns, float[] ir, float[] ii, float[] or, float[] oi, float[] tc, float[] ts, float sign) {
        int step = n / 5 * LANES, outStep = ns * LANES;
        for (int j = 0; j < n / 5; j++) {
            int jj = j % ns, in = j * LANES, out = ((j - jj) * 5 + jj) * LANES;
            FloatVector ar = FloatVector.fromArray(S, ir, in), ai = FloatVector.fromArray(S, ii, in);
            FloatVector br = FloatVector.fromArray(S, ir, in + step), bi = FloatVector.fromArray(S, ii, in + step);
            FloatVector cr = FloatVector.fromArray(S, ir, in + 2 * step), ci = FloatVector.fromArray(S, ii, in + 2 * step);
            FloatVector dr = FloatVector.fromArray(S, ir, in + 3 * step), di = FloatVector.fromArray(S, ii, in + 3 * step);
            FloatVector er = FloatVector.fromArray(S, ir, in + 4 * step), ei = FloatVector.fromArray(S, ii, in + 4 * step);
            if (jj != 0) {
                int t = jj * 4;
                FloatVector r = br.mul(tc[t]).sub(bi.mul(sign * ts[t]));
                bi = br.mul(sign * ts[t]).add(bi.mul(tc[t]));
                br = r;
                r = cr.mul(tc[t + 1]).sub(ci.mul(sign * ts[t + 1]));
                ci = cr.mul(sign * ts[t + 1]).add(ci.mul(tc[t + 1]));
                cr = r;
                r = dr.mul(tc[t + 2]).sub(di.mul(sign * ts[t + 2]));
                di = dr.mul(sign * ts[t + 2]).add(di.mul(tc[t + 2]));
                dr = r;
                r = er.mul(tc[t + 3]).sub(ei.mul(sign * ts[t + 3]));
                ei = er.mul(sign * ts[t + 3]).add(ei.mul(tc[t + 3]));
                er = r;
            }
            FloatVector t1r = br.add(er), t1i = bi.add(ei), t2r = cr.add(dr), t2i = ci.add(di);
            FloatVector t3r = br.sub(er), t3i = bi.sub(ei), t4r = cr.sub(dr), t4i = ci.sub(di);
            ar.add(t1r).add(t2r).intoArray(or, out);
            ai.add(t1i).add(t2i).intoArray(oi, out);
            FloatVector m1r = ar.add(t1r.mul(C1)).add(t2r.mul(C2)), m1i = ai.add(t1i.mul(C1)).add(t2i.mul(C2));
            FloatVector m2r = ar.add(t1r.mul(C2)).add(t2r.mul(C1)), m2i = ai.add(t1i.mul(C2)).add(t2i.mul(C1));
            // -i n forward, +i n inverse: (x + iy)(-i) = y - ix
            FloatVector r1r = t3i.mul(S1).add(t4i.mul(S2)).mul(sign), r1i = t3r.mul(S1).add(t4r.mul(S2)).mul(-sign);
            FloatVector r2r = t3i.mul(S2).sub(t4i.mul(S1)).mul(sign), r2i = t3r.mul(S2).sub(t4r.mul(S1)).mul(-sign);
            m1r.add(r1r).intoArray(or, out + outStep);
            m1i.add(r1i).intoArray(oi, out + outStep);
            m2r.add(r2r).intoArray(or, out + 2 * outStep);
            m2i.add(r2i).intoArray(oi, out + 2 * outStep);
            m2r.sub(r2r).intoArray(or, out + 3 * outStep);
            m2i.sub(r2i).intoArray(oi, out + 3 * outStep);
            m1r.sub(r1r).intoArray(or, out + 4 * outStep);
            m1i.sub(r1i).intoArray(oi, out + 4 * outStep);
        }
    }

    /** Any radix R as a direct DFT: the twiddled inputs go to a small scratch, then each output sums them. */
    private void direct(int r, int ns, float[] ir, float[] ii, float[] or, float[] oi, float[] tc, float[] ts,
            float[] rc, float[] rs, float sign) {
        int step = n / r * LANES, outStep = ns * LANES;
        float[] vr = new float[r * LANES], vi = new float[r * LANES];
        for (int j = 0; j < n / r; j++) {
            int jj = j % ns, in = j * LANES, out = ((j - jj) * r + jj) * LANES;
            for (int q = 0; q < r; q++) {
                FloatVector xr = FloatVector.fromArray(S, ir, in + q * step), xi = FloatVector.fromArray(S, ii, in + q * step);
                if (q > 0 && jj != 0) {
                    float c = tc[jj * (r - 1) + q - 1], sn = sign * ts[jj * (r - 1) + q - 1];
                    FloatVector t = xr.mul(c).sub(xi.mul(sn));
                    xi = xr.mul(sn).add(xi.mul(c));
                    xr = t;
                }
                xr.intoArray(vr, q * LANES);
                xi.intoArray(vi, q * LANES);
            }
            for (int k = 0; k < r; k++) sumRoots(r, k, vr, vi, rc, rs, sign, or, oi, out + k * outStep);
        }
    }

    /** Output k of a direct R-point DFT: Σ_q v_q e^{∓2πi kq/R}. */
    private static void sumRoots(int r, int k, float[] vr, float[] vi, float[] rc, float[] rs, float sign, float[] or,
            float[] oi, int out) {
        FloatVector accR = FloatVector.fromArray(S, vr, 0), accI = FloatVector.fromArray(S, vi, 0);
        for (int q = 1; q < r; q++) {
            int t = (int) ((long) k * q % r);
            float c = rc[t], sn = -sign * rs[t];
            FloatVector xr = FloatVector.fromArray(S, vr, q * LANES), xi = FloatVector.fromArray(S, vi, q * LANES);
            accR = accR.add(xr.mul(c)).sub(xi.mul(sn));
            accI = accI.add(xr.mul(sn)).add(xi.mul(c));
        }
        accR.intoArray(or, out);
        accI.intoArray(oi, out);
    }
}
