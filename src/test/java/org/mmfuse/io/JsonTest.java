package org.mmfuse.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
    @Test
    void parsesEveryKindOfValue() {
        Object v = Json.parse(" {\"a\": [1, -2, 3.5, 1e3, -0], \"b\": {\"c\": \"x\\ny\\u0041\\\"\"},"
                + " \"d\": true, \"e\": false, \"f\": null, \"big\": 123456789012345678901234567890} ");
        Map<?, ?> m = (Map<?, ?>) v;
        assertEquals(List.of(1L, -2L, 3.5, 1000.0, 0L), m.get("a"));
        assertEquals(Map.of("c", "x\nyA\""), m.get("b"));
        assertEquals(Boolean.TRUE, m.get("d"));
        assertEquals(Boolean.FALSE, m.get("e"));
        assertTrue(m.containsKey("f") && m.get("f") == null);
        assertEquals(1.2345678901234568e29, m.get("big"));
        assertEquals(Arrays.asList("a", "b", "d", "e", "f", "big"), List.copyOf(m.keySet())); // file order
    }

    @Test
    void refusesWhatIsNotJson() {
        for (String bad : new String[] {"", "{", "{\"a\" 1}", "{\"a\": 1,}", "[1 2]", "01", "1.", "-", "tru",
                "\"open", "\"bad \\q escape\"", "{\"a\": 1} x", "{a: 1}", "\"tab\there\"", "\"\\u+041\"", "\"\\u004\uFF11\""}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(bad), bad);
            assertTrue(e.getMessage().startsWith("JSON: ") && e.getMessage().contains("at offset"), e.getMessage());
        }
    }
}
