package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * Which few-query calls go four queries at a time. AttentionTest's cases with three, four and seven queries
 * check the quad kernel's results only as long as these calls reach it.
 */
class FewQueryAttentionTest {
    private static AttentionShape shape(int queries, int headDim) {
        return new AttentionShape(2, queries, 50, 3, headDim, 16, 0.125f, false, null, false);
    }

    @Test
    void quadsWhereTheyMeasuredFaster() {
        int lanes = FloatVector.SPECIES_PREFERRED.length();
        for (int lq = 1; lq < 8; lq++) {
            boolean expected = lanes == 16 ? lq == 3 || lq == 4 || lq == 7 : lanes == 8 && lq == 4;
            assertEquals(expected, FewQueryAttention.takesQuads(shape(lq, 64)), "Lq " + lq + " with " + lanes + " lanes");
        }
        assertFalse(FewQueryAttention.takesQuads(shape(4, 3)), "Dh not a multiple of the lanes: no sum trees");
    }
}
