package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The in-register transpositions, both sizes, against the element-by-element one (on any machine: a
 *  species wider than the hardware's is emulated, slow but exact). */
class TransposeTest {
    @ParameterizedTest
    @ValueSource(ints = {8, 16})
    void transposesScaledBlocksBetweenStrides(int size) {
        Random rng = new Random(41 + size);
        for (int trial = 0; trial < 20; trial++) {
            int fromStride = size + rng.nextInt(50), toStride = size + rng.nextInt(50);
            int fromAt = rng.nextInt(20), toAt = rng.nextInt(20);
            float scale = trial == 0 ? 1f : rng.nextFloat() * 4 - 2;
            float[] from = new float[fromAt + size * fromStride], to = new float[toAt + size * toStride];
            for (int i = 0; i < from.length; i++) from[i] = rng.nextFloat() * 2 - 1;
            for (int i = 0; i < to.length; i++) to[i] = Float.NaN; // untouched elements must stay so
            if (size == 8) Transpose.block8(from, fromAt, fromStride, scale, to, toAt, toStride);
            else Transpose.block16(from, fromAt, fromStride, scale, to, toAt, toStride);
            for (int c = 0; c < size; c++) { // row c of the result: column c of the block, then what it must not touch
                for (int r = 0; r < toStride; r++) {
                    float expected = r < size ? scale * from[fromAt + r * fromStride + c] : Float.NaN;
                    assertEquals(expected, to[toAt + c * toStride + r], "trial " + trial + " row " + r + " column " + c);
                }
            }
        }
    }
}
