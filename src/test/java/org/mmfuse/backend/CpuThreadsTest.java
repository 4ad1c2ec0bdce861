package org.mmfuse.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.ref.WeakReference;
import org.junit.jupiter.api.Test;

class CpuThreadsTest {
    /** The team keeps its last job; that job must not keep the arrays its tasks wrote (a user's weights, say). */
    @Test
    void aFinishedJobLetsItsArraysGo() throws InterruptedException {
        WeakReference<float[]> written = writtenByAJob();
        for (int i = 0; i < 50 && written.get() != null; i++) {
            System.gc();
            Thread.sleep(20);
        }
        assertTrue(written.get() == null, "the finished job still holds the array");
    }

    /** An array only a finished job refers to, once this frame is gone. */
    private static WeakReference<float[]> writtenByAJob() {
        float[] array = new float[1 << 20];
        CpuThreads.SHARED.run(4, t -> array[t] = t + 1);
        assertEquals(4f, array[3]);
        return new WeakReference<>(array);
    }

    @Test
    void splitsCoverTheItemsWithoutOverflow() {
        int items = Integer.MAX_VALUE - 8;
        assertEquals(0, CpuThreads.split(items, 0, 2));
        assertEquals(items / 2, CpuThreads.split(items, 1, 2));
        assertEquals(items, CpuThreads.split(items, 2, 2));
        assertEquals(65536, CpuThreads.tasks(items, 1 << 15));
        assertEquals(items, CpuThreads.end(items, 65535, 1 << 15));
    }
}
