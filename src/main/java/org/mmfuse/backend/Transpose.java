package org.mmfuse.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Transposes square blocks of floats in registers, one block as wide as the preferred vectors: 16 x 16
 * with 512-bit vectors (AVX-512), 8 x 8 with 256-bit ones (AVX2). Row loads, log2(size) stages of lane
 * exchanges, row stores. Element by element, a transposition is bound by one scalar store a cycle
 * (about 0.8 ns a float measured on AVX-512); 16 x 16 blocks take about 0.25 ns, reading the rows included.
 *
 * <p>Stage s (s = 8, 4, 2, 1) pairs row r with row r + s, for the r with bit s clear, and swaps the
 * lanes with bit s set in r for the lanes with bit s clear in r + s: after the stages, row r holds
 * what was column r. Each exchange is a lane rotation by s and a blend.
 */
final class Transpose {
    /** Rows and columns of a block: the preferred vectors' lanes where they are 16 or 8, else 0 (no block). */
    static final int SIZE = FloatVector.SPECIES_PREFERRED.length() == 16 || FloatVector.SPECIES_PREFERRED.length() == 8
            ? FloatVector.SPECIES_PREFERRED.length() : 0;
    /** Whether {@link #block} runs in registers here. */
    static final boolean AVAILABLE = SIZE > 0;

    private static final VectorSpecies<Float> S16 = FloatVector.SPECIES_512, S8 = FloatVector.SPECIES_256;
    private static final VectorShuffle<Float> UP8 = up(S16, 8), UP4 = up(S16, 4), UP2 = up(S16, 2), UP1 = up(S16, 1);
    private static final VectorShuffle<Float> DOWN8 = up(S16, -8), DOWN4 = up(S16, -4), DOWN2 = up(S16, -2), DOWN1 = up(S16, -1);
    private static final VectorMask<Float> HI8 = bitSet(S16, 8), HI4 = bitSet(S16, 4), HI2 = bitSet(S16, 2), HI1 = bitSet(S16, 1);
    private static final VectorShuffle<Float> UP4_8 = up(S8, 4), UP2_8 = up(S8, 2), UP1_8 = up(S8, 1);
    private static final VectorShuffle<Float> DOWN4_8 = up(S8, -4), DOWN2_8 = up(S8, -2), DOWN1_8 = up(S8, -1);
    private static final VectorMask<Float> HI4_8 = bitSet(S8, 4), HI2_8 = bitSet(S8, 2), HI1_8 = bitSet(S8, 1);

    private Transpose() {}

    /** Lane i takes lane i - shift (mod the lanes). */
    private static VectorShuffle<Float> up(VectorSpecies<Float> species, int shift) {
        int lanes = species.length();
        return VectorShuffle.fromOp(species, i -> (i - shift) & (lanes - 1));
    }

    /** The lanes whose index has {@code bit} set. */
    private static VectorMask<Float> bitSet(VectorSpecies<Float> species, int bit) {
        boolean[] set = new boolean[species.length()];
        for (int i = 0; i < set.length; i++) set[i] = (i & bit) != 0;
        return VectorMask.fromArray(species, set, 0);
    }

    /**
     * to[toAt + c · toStride + r] = scale · from[fromAt + r · fromStride + c] for r, c < {@link #SIZE}.
     * Only where {@link #AVAILABLE}.
     */
    static void block(float[] from, int fromAt, int fromStride, float scale, float[] to, int toAt, int toStride) {
        if (SIZE == 16) block16(from, fromAt, fromStride, scale, to, toAt, toStride);
        else block8(from, fromAt, fromStride, scale, to, toAt, toStride);
    }

    /** The 8 x 8 block: three stages on 256-bit vectors. */
    static void block8(float[] from, int fromAt, int fromStride, float scale, float[] to, int toAt, int toStride) {
        FloatVector r0 = row8(from, fromAt, scale), r1 = row8(from, fromAt + fromStride, scale);
        FloatVector r2 = row8(from, fromAt + 2 * fromStride, scale), r3 = row8(from, fromAt + 3 * fromStride, scale);
        FloatVector r4 = row8(from, fromAt + 4 * fromStride, scale), r5 = row8(from, fromAt + 5 * fromStride, scale);
        FloatVector r6 = row8(from, fromAt + 6 * fromStride, scale), r7 = row8(from, fromAt + 7 * fromStride, scale);
        FloatVector t;
        t = r0; r0 = r0.blend(r4.rearrange(UP4_8), HI4_8); r4 = t.rearrange(DOWN4_8).blend(r4, HI4_8);
        t = r1; r1 = r1.blend(r5.rearrange(UP4_8), HI4_8); r5 = t.rearrange(DOWN4_8).blend(r5, HI4_8);
        t = r2; r2 = r2.blend(r6.rearrange(UP4_8), HI4_8); r6 = t.rearrange(DOWN4_8).blend(r6, HI4_8);
        t = r3; r3 = r3.blend(r7.rearrange(UP4_8), HI4_8); r7 = t.rearrange(DOWN4_8).blend(r7, HI4_8);
        t = r0; r0 = r0.blend(r2.rearrange(UP2_8), HI2_8); r2 = t.rearrange(DOWN2_8).blend(r2, HI2_8);
        t = r1; r1 = r1.blend(r3.rearrange(UP2_8), HI2_8); r3 = t.rearrange(DOWN2_8).blend(r3, HI2_8);
        t = r4; r4 = r4.blend(r6.rearrange(UP2_8), HI2_8); r6 = t.rearrange(DOWN2_8).blend(r6, HI2_8);
        t = r5; r5 = r5.blend(r7.rearrange(UP2_8), HI2_8); r7 = t.rearrange(DOWN2_8).blend(r7, HI2_8);
        t = r0; r0 = r0.blend(r1.rearrange(UP1_8), HI1_8); r1 = t.rearrange(DOWN1_8).blend(r1, HI1_8);
        t = r2; r2 = r2.blend(r3.rearrange(UP1_8), HI1_8); r3 = t.rearrange(DOWN1_8).blend(r3, HI1_8);
        t = r4; r4 = r4.blend(r5.rearrange(UP1_8), HI1_8); r5 = t.rearrange(DOWN1_8).blend(r5, HI1_8);
        t = r6; r6 = r6.blend(r7.rearrange(UP1_8), HI1_8); r7 = t.rearrange(DOWN1_8).blend(r7, HI1_8);
        r0.intoArray(to, toAt);
        r1.intoArray(to, toAt + toStride);
        r2.intoArray(to, toAt + 2 * toStride);
        r3.intoArray(to, toAt + 3 * toStride);
        r4.intoArray(to, toAt + 4 * toStride);
        r5.intoArray(to, toAt + 5 * toStride);
        r6.intoArray(to, toAt + 6 * toStride);
        r7.intoArray(to, toAt + 7 * toStride);
    }

    private static FloatVector row8(float[] from, int at, float scale) {
        return FloatVector.fromArray(S8, from, at).mul(scale);
    }

    /** The 16 x 16 block: four stages on 512-bit vectors. */
    static void block16(float[] from, int fromAt, int fromStride, float scale, float[] to, int toAt, int toStride) {
        FloatVector r0 = row16(from, fromAt, scale), r1 = row16(from, fromAt + fromStride, scale);
        FloatVector r2 = row16(from, fromAt + 2 * fromStride, scale), r3 = row16(from, fromAt + 3 * fromStride, scale);
        FloatVector r4 = row16(from, fromAt + 4 * fromStride, scale), r5 = row16(from, fromAt + 5 * fromStride, scale);
        FloatVector r6 = row16(from, fromAt + 6 * fromStride, scale), r7 = row16(from, fromAt + 7 * fromStride, scale);
        FloatVector r8 = row16(from, fromAt + 8 * fromStride, scale), r9 = row16(from, fromAt + 9 * fromStride, scale);
        FloatVector r10 = row16(from, fromAt + 10 * fromStride, scale), r11 = row16(from, fromAt + 11 * fromStride, scale);
        FloatVector r12 = row16(from, fromAt + 12 * fromStride, scale), r13 = row16(from, fromAt + 13 * fromStride, scale);
        FloatVector r14 = row16(from, fromAt + 14 * fromStride, scale), r15 = row16(from, fromAt + 15 * fromStride, scale);
        FloatVector t;
        // s = 8: the off-diagonal 8 x 8 quarters trade places
        t = r0; r0 = r0.blend(r8.rearrange(UP8), HI8); r8 = t.rearrange(DOWN8).blend(r8, HI8);
        t = r1; r1 = r1.blend(r9.rearrange(UP8), HI8); r9 = t.rearrange(DOWN8).blend(r9, HI8);
        t = r2; r2 = r2.blend(r10.rearrange(UP8), HI8); r10 = t.rearrange(DOWN8).blend(r10, HI8);
        t = r3; r3 = r3.blend(r11.rearrange(UP8), HI8); r11 = t.rearrange(DOWN8).blend(r11, HI8);
        t = r4; r4 = r4.blend(r12.rearrange(UP8), HI8); r12 = t.rearrange(DOWN8).blend(r12, HI8);
        t = r5; r5 = r5.blend(r13.rearrange(UP8), HI8); r13 = t.rearrange(DOWN8).blend(r13, HI8);
        t = r6; r6 = r6.blend(r14.rearrange(UP8), HI8); r14 = t.rearrange(DOWN8).blend(r14, HI8);
        t = r7; r7 = r7.blend(r15.rearrange(UP8), HI8); r15 = t.rearrange(DOWN8).blend(r15, HI8);
        // s = 4: within each quarter, its 4 x 4 blocks
        t = r0; r0 = r0.blend(r4.rearrange(UP4), HI4); r4 = t.rearrange(DOWN4).blend(r4, HI4);
        t = r1; r1 = r1.blend(r5.rearrange(UP4), HI4); r5 = t.rearrange(DOWN4).blend(r5, HI4);
        t = r2; r2 = r2.blend(r6.rearrange(UP4), HI4); r6 = t.rearrange(DOWN4).blend(r6, HI4);
        t = r3; r3 = r3.blend(r7.rearrange(UP4), HI4); r7 = t.rearrange(DOWN4).blend(r7, HI4);
        t = r8; r8 = r8.blend(r12.rearrange(UP4), HI4); r12 = t.rearrange(DOWN4).blend(r12, HI4);
        t = r9; r9 = r9.blend(r13.rearrange(UP4), HI4); r13 = t.rearrange(DOWN4).blend(r13, HI4);
        t = r10; r10 = r10.blend(r14.rearrange(UP4), HI4); r14 = t.rearrange(DOWN4).blend(r14, HI4);
        t = r11; r11 = r11.blend(r15.rearrange(UP4), HI4); r15 = t.rearrange(DOWN4).blend(r15, HI4);
        // s = 2
        t = r0; r0 = r0.blend(r2.rearrange(UP2), HI2); r2 = t.rearrange(DOWN2).blend(r2, HI2);
        t = r1; r1 = r1.blend(r3.rearrange(UP2), HI2); r3 = t.rearrange(DOWN2).blend(r3, HI2);
        t = r4; r4 = r4.blend(r6.rearrange(UP2), HI2); r6 = t.rearrange(DOWN2).blend(r6, HI2);
        t = r5; r5 = r5.blend(r7.rearrange(UP2), HI2); r7 = t.rearrange(DOWN2).blend(r7, HI2);
        t = r8; r8 = r8.blend(r10.rearrange(UP2), HI2); r10 = t.rearrange(DOWN2).blend(r10, HI2);
        t = r9; r9 = r9.blend(r11.rearrange(UP2), HI2); r11 = t.rearrange(DOWN2).blend(r11, HI2);
        t = r12; r12 = r12.blend(r14.rearrange(UP2), HI2); r14 = t.rearrange(DOWN2).blend(r14, HI2);
        t = r13; r13 = r13.blend(r15.rearrange(UP2), HI2); r15 = t.rearrange(DOWN2).blend(r15, HI2);
        // s = 1
        t = r0; r0 = r0.blend(r1.rearrange(UP1), HI1); r1 = t.rearrange(DOWN1).blend(r1, HI1);
        t = r2; r2 = r2.blend(r3.rearrange(UP1), HI1); r3 = t.rearrange(DOWN1).blend(r3, HI1);
        t = r4; r4 = r4.blend(r5.rearrange(UP1), HI1); r5 = t.rearrange(DOWN1).blend(r5, HI1);
        t = r6; r6 = r6.blend(r7.rearrange(UP1), HI1); r7 = t.rearrange(DOWN1).blend(r7, HI1);
        t = r8; r8 = r8.blend(r9.rearrange(UP1), HI1); r9 = t.rearrange(DOWN1).blend(r9, HI1);
        t = r10; r10 = r10.blend(r11.rearrange(UP1), HI1); r11 = t.rearrange(DOWN1).blend(r11, HI1);
        t = r12; r12 = r12.blend(r13.rearrange(UP1), HI1); r13 = t.rearrange(DOWN1).blend(r13, HI1);
        t = r14; r14 = r14.blend(r15.rearrange(UP1), HI1); r15 = t.rearrange(DOWN1).blend(r15, HI1);
        r0.intoArray(to, toAt);
        r1.intoArray(to, toAt + toStride);
        r2.intoArray(to, toAt + 2 * toStride);
        r3.intoArray(to, toAt + 3 * toStride);
        r4.intoArray(to, toAt + 4 * toStride);
        r5.intoArray(to, toAt + 5 * toStride);
        r6.intoArray(to, toAt + 6 * toStride);
        r7.intoArray(to, toAt + 7 * toStride);
        r8.intoArray(to, toAt + 8 * toStride);
        r9.intoArray(to, toAt + 9 * toStride);
        r10.intoArray(to, toAt + 10 * toStride);
        r11.intoArray(to, toAt + 11 * toStride);
        r12.intoArray(to, toAt + 12 * toStride);
        r13.intoArray(to, toAt + 13 * toStride);
        r14.intoArray(to, toAt + 14 * toStride);
        r15.intoArray(to, toAt + 15 * toStride);
    }

    private static FloatVector row16(float[] from, int at, float scale) {
        return FloatVector.fromArray(S16, from, at).mul(scale);
    }
}
