package org.mmfuse.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** {@code mmfuse stress} runs, reports each second, finds no mismatch and no growth in two seconds. */
class StressTest {
    @Test
    void twoSecondsOfRandomCallsPass() throws InterruptedException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        int status = Stress.run(new String[] {"stress", "--seconds", "2", "--seed", "7"},
                new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, status, out);
        assertTrue(out.contains("calls/s") && out.contains("no mismatch"), out);
    }
}
