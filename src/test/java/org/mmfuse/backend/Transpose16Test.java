package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The in-register 16 x 16 transposition against the element-by-element one (on any machine: without
 *  16-lane vectors the 512-bit species is emulated, slow but exact). */
class Transpose16Test {
    @Test
    void transposesScaledBlocksBetweenStrides() {
        Random rng = new Random(41);
        for (int trial = 0; trial < 20; trial++) {
            int fromStride = 16 + rng.nextInt(50), toStride = 16 + rng.nextInt(50);
            int fromAt = rng.nextInt(20), toAt = rng.nextInt(20);
            float scale = trial == 0 ? 1f : rng.nextFloat() * 4 - 2;
            float[] from = new float[fromAt + 16 * fromStride], to = new float[toAt + 16 * toStride];
            for (int i = 0; i < from.length; i++) from[i] = rng.nextFloat() * 2 - 1;
            for (int i = 0; i < to.length; i++) to[i] = Float.NaN; // untouched elements must stay so
            Transpose16.block(from, fromAt, fromStride, scale, to, toAt, toStride);
            for (int c = 0; c < 16; c++) { // row c of the result: column c of the block, then what it must not touch
                for (int r = 0; r < toStride; r++) {
                    float expected = r < 16 ? scale * from[fromAt + r * fromStride + c] : Float.NaN;
                    assertEquals(expected, to[toAt + c * toStride + r], "trial " + trial + " row " + r + " column " + c);
                }
            }
        }
    }
}
