package org.mmfuse.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict JSON reader for file headers (RFC 8259): objects become {@code LinkedHashMap<String, Object>}
 * in file order, arrays {@code List<Object>}, integers that fit {@code Long}, other numbers
 * {@code Double}, then String, Boolean and null. Duplicate keys, trailing text and nesting deeper than
 * {@link #MAX_DEPTH} are refused, so a hostile header can neither overflow the stack nor hide a key.
 * {@link #write} gives the same kinds of values back as compact JSON text.
 */
public final class Json {
    static final int MAX_DEPTH = 64;

    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    /** The value {@code text} holds; {@link IllegalArgumentException} with the offset where it is not JSON. */
    public static Object parse(String text) {
        Json json = new Json(text);
        json.skipSpace();
        Object value = json.value(0);
        json.skipSpace();
        if (json.at != text.length()) throw json.error("text after the value");
        return value;
    }

    private Object value(int depth) {
        if (depth > MAX_DEPTH) throw error("nesting deeper than " + MAX_DEPTH);
        if (at >= text.length()) throw error("a value expected");
        char c = text.charAt(at);
        switch (c) {
            case '{': return object(depth);
            case '[': return array(depth);
            case '"': return string();
            case 't': return literal("true", Boolean.TRUE);
            case 'f': return literal("false", Boolean.FALSE);
            case 'n': return literal("null", null);
            default:
                if (c == '-' || c >= '0' && c <= '9') return number();
                throw error("unexpected '" + c + "'");
        }
    }

    private Map<String, Object> object(int depth) {
        Map<String, Object> map = new LinkedHashMap<>();
        at++; // {
        skipSpace();
        if (peek('}')) return map;
        while (true) {
            skipSpace();
            if (at >= text.length() || text.charAt(at) != '"') throw error("a string key expected");
            int keyAt = at;
            String key = string();
            skipSpace();
            expect(':');
            skipSpace();
            Object value = value(depth + 1);
            if (map.containsKey(key)) {
                at = keyAt;
                throw error("duplicate key \"" + key + "\"");
            }
            map.put(key, value);
            skipSpace();
            if (peek('}')) return map;
            expect(',');
        }
    }

    private List<Object> array(int depth) {
        List<Object> list = new ArrayList<>();
        at++; // [
        skipSpace();
        if (peek(']')) return list;
        while (true) {
            skipSpace();
            list.add(value(depth + 1));
            skipSpace();
            if (peek(']')) return list;
            expect(',');
        }
    }

    private String string() {
        StringBuilder out = new StringBuilder();
        at++; // "
        while (true) {
            if (at >= text.length()) throw error("unterminated string");
            char c = text.charAt(at++);
            if (c == '"') return out.toString();
            if (c < 0x20) throw error("control character in a string");
            if (c != '\\') {
                out.append(c);
                continue;
            }
            if (at >= text.length()) throw error("unterminated escape");
            char e = text.charAt(at++);
            switch (e) {
                case '"': case '\\': case '/': out.append(e); break;
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'n': out.append('\n'); break;
                case 'r': out.append('\r'); break;
                case 't': out.append('\t'); break;
                case 'u':
                    if (at + 4 > text.length()) throw error("short \\u escape");
                    int code = 0;
                    for (int i = at; i < at + 4; i++) { // four ASCII hex digits (parseInt would take a sign, digit other scripts)
                        char h = text.charAt(i);
                        int digit = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                        if (digit < 0) throw error("bad \\u escape");
                        code = code * 16 + digit;
                    }
                    out.append((char) code);
                    at += 4;
                    break;
                default: throw error("bad escape \\" + e);
            }
        }
    }

    private Object number() {
        int start = at;
        peek('-'); // an optional sign
        if (at < text.length() && text.charAt(at) == '0') {
            at++;
        } else if (!digits()) {
            throw error("a digit expected");
        }
        boolean integral = true;
        if (peek('.')) {
            integral = false;
            if (!digits()) throw error("a digit expected after '.'");
        }
        if (at < text.length() && (text.charAt(at) == 'e' || text.charAt(at) == 'E')) {
            integral = false;
            at++;
            if (!peek('+')) peek('-');
            if (!digits()) throw error("a digit expected in the exponent");
        }
        String literal = text.substring(start, at);
        if (integral) {
            try {
                return Long.parseLong(literal);
            } catch (NumberFormatException tooLong) {
                // below: a double, which callers wanting integers refuse
            }
        }
        return Double.parseDouble(literal);
    }

    private boolean digits() {
        int start = at;
        while (at < text.length() && text.charAt(at) >= '0' && text.charAt(at) <= '9') at++;
        return at > start;
    }

    private Object literal(String word, Object value) {
        if (!text.startsWith(word, at)) throw error("unexpected text");
        at += word.length();
        return value;
    }

    private boolean peek(char c) {
        if (at < text.length() && text.charAt(at) == c) {
            at++;
            return true;
        }
        return false;
    }

    private void expect(char c) {
        if (!peek(c)) throw error("'" + c + "' expected");
    }

    private void skipSpace() {
        while (at < text.length()) {
            char c = text.charAt(at);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
            at++;
        }
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException("JSON: " + what + " at offset " + at);
    }

    /**
     * Compact JSON for a value of the kinds {@link #parse} returns (maps with string keys, lists, strings,
     * booleans, null, and numbers; integral values print without a fraction).
     */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out, 0);
        return out.toString();
    }

    private static void write(Object value, StringBuilder out, int depth) {
        if (depth > MAX_DEPTH) throw new IllegalArgumentException("JSON: nesting deeper than " + MAX_DEPTH);
        if (value == null || value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Integer || value instanceof Long) {
            out.append(value);
        } else if (value instanceof Number) {
            double d = ((Number) value).doubleValue();
            if (!Double.isFinite(d)) throw new IllegalArgumentException("JSON: " + d + " has no JSON form");
            out.append(d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d));
        } else if (value instanceof CharSequence) {
            quote(value.toString(), out);
        } else if (value instanceof Map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!(e.getKey() instanceof String)) throw new IllegalArgumentException("JSON: key " + e.getKey() + " is not a string");
                if (!first) out.append(',');
                first = false;
                quote((String) e.getKey(), out);
                out.append(':');
                write(e.getValue(), out, depth + 1);
            }
            out.append('}');
        } else if (value instanceof List) {
            out.append('[');
            boolean first = true;
            for (Object item : (List<?>) value) {
                if (!first) out.append(',');
                first = false;
                write(item, out, depth + 1);
            }
            out.append(']');
        } else {
            throw new IllegalArgumentException("JSON: cannot write a " + value.getClass().getName());
        }
    }

    private static void quote(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        out.append('"');
    }
}
