package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import org.junit.jupiter.api.Test;

class ScratchTest {
    @Test
    void buffersGrowAndHugeOnesAreNotKeptForSmallCalls() {
        float[] small = new float[100];
        assertSame(small, Scratch.atLeast(small, 60));
        assertEquals(300, Scratch.atLeast(small, 300).length);
        float[] huge = new float[Scratch.KEPT_FLOATS + 2];
        assertSame(huge, Scratch.atLeast(huge, Scratch.KEPT_FLOATS / 2 + 1)); // still half used: kept
        assertEquals(1000, Scratch.atLeast(huge, 1000).length); // a small call lets it go
    }
}
