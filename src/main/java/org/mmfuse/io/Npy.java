package org.mmfuse.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;

/**
 * NumPy's {@code .npy} files of float32, little endian, C order: what {@code np.save} writes for a
 * float32 array. Versions 1.0 to 3.0 are read; 1.0 is written. Any other dtype or order, a short or
 * long data section, or a malformed header is an {@link IOException} that names the file and says
 * what it found; nothing is allocated before the header checked out.
 */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    /** np.save's bound on the header (larger ones are refused there too). */
    private static final int MAX_HEADER_BYTES = 10_000;

    private Npy() {}

    /** The array in {@code file} as a host F32 tensor of its shape. */
    public static Tensor read(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            ByteBuffer prefix = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, prefix, 0, file);
            for (int i = 0; i < MAGIC.length; i++) {
                if (prefix.get(i) != MAGIC[i]) throw bad(file, "does not start with the .npy magic string");
            }
            int major = prefix.get(6);
            if (major < 1 || major > 3) throw bad(file, "is .npy version " + major + "." + prefix.get(7) + "; 1 to 3 are read");
            long headerBytes = major == 1 ? prefix.getShort(8) & 0xffff : prefix.getInt(8) & 0xffffffffL;
            long headerStart = major == 1 ? 10 : 12;
            if (headerBytes > MAX_HEADER_BYTES || headerStart + headerBytes > size) {
                throw bad(file, "declares a header of " + headerBytes + " bytes in a file of " + size);
            }
            ByteBuffer headerBuffer = ByteBuffer.allocate((int) headerBytes);
            readFully(channel, headerBuffer, headerStart, file);
            String header = new String(headerBuffer.array(), major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
            long[] shape = parseHeader(file, header);
            long n;
            try {
                n = Shapes.numel("shape", shape);
            } catch (IllegalArgumentException e) {
                throw bad(file, "has shape " + Shapes.toString(shape) + ", too large");
            }
            long dataStart = headerStart + headerBytes, dataBytes = size - dataStart;
            if (n > Shapes.MAX_HOST_ELEMENTS || n * 4 != dataBytes) {
                throw bad(file, "has shape " + Shapes.toString(shape) + " (" + n + " floats) and " + dataBytes
                        + " data bytes");
            }
            float[] values = new float[(int) n];
            ChunkedRead.read(channel, dataStart, dataBytes, 4, (bytes, first, count) -> bytes.asFloatBuffer().get(values, first, count));
            return Tensor.of(values, shape);
        }
    }

    /** Writes {@code t} (an F32 tensor; a device tensor is copied to the host) as a version 1.0 .npy file. */
    public static void write(Path file, Tensor t) throws IOException {
        float[] values = t.toArray();
        StringBuilder shape = new StringBuilder("(");
        for (long s : t.shape()) shape.append(s).append(", ");
        if (t.rank() == 1) shape.setLength(shape.length() - 1); // "(7,)"
        else if (t.rank() > 1) shape.setLength(shape.length() - 2);
        shape.append(')');
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
        int unpadded = 10 + dict.length() + 1; // the prefix, the dict, the newline
        String header = dict + " ".repeat((64 - unpadded % 64) % 64) + "\n";
        ByteBuffer out = ByteBuffer.allocate(10 + header.length() + values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).put((byte) 1).put((byte) 0).putShort((short) header.length());
        out.put(header.getBytes(StandardCharsets.ISO_8859_1));
        out.asFloatBuffer().put(values);
        Files.write(file, out.array());
    }

    /**
     * The shape of a header dict such as {@code {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }},
     * checking that it describes little-endian float32 in C order.
     */
    private static long[] parseHeader(Path file, String header) throws IOException {
        String h = header.trim();
        if (!h.startsWith("{") || !h.endsWith("}")) throw bad(file, "has a header that is not a dict: " + h);
        String descr = null, order = null, shape = null;
        for (String part : splitTopLevel(h.substring(1, h.length() - 1))) {
            if (part.isBlank()) continue;
            int colon = part.indexOf(':');
            if (colon < 0) throw bad(file, "has a header entry without a key: " + part.trim());
            String key = unquote(part.substring(0, colon).trim()), value = part.substring(colon + 1).trim();
            if (key == null) throw bad(file, "has a header key that is not a string: " + part.trim());
            switch (key) {
                case "descr": descr = unquote(value); break;
                case "fortran_order": order = value; break;
                case "shape": shape = value; break;
                default: throw bad(file, "has an unknown header key '" + key + "'");
            }
        }
        if (descr == null || order == null || shape == null) {
            throw bad(file, "lacks one of descr, fortran_order, shape in its header: " + h);
        }
        if (!descr.equals("<f4")) throw bad(file, "holds dtype " + descr + "; MMFuse reads float32 ('<f4') only");
        if (!order.equals("False")) throw bad(file, "is in Fortran order; MMFuse reads C order only");
        if (!shape.startsWith("(") || !shape.endsWith(")")) throw bad(file, "has a shape that is not a tuple: " + shape);
        List<Long> sizes = new ArrayList<>();
        String inner = shape.substring(1, shape.length() - 1).trim();
        if (!inner.isEmpty()) {
            String[] items = inner.split(",", -1);
            for (int i = 0; i < items.length; i++) {
                String item = items[i].trim();
                if (item.isEmpty() && i == items.length - 1 && i > 0) continue; // "(7,)"
                try {
                    long size = Long.parseLong(item);
                    if (size < 0) throw new NumberFormatException();
                    sizes.add(size);
                } catch (NumberFormatException e) {
                    throw bad(file, "has a shape with '" + item + "', not a size: " + shape);
                }
            }
        }
        return sizes.stream().mapToLong(Long::longValue).toArray();
    }

    /** Splits a dict's body at the commas outside parentheses and quotes. */
    private static List<String> splitTopLevel(String body) {
        List<String> parts = new ArrayList<>();
        int depth = 0, start = 0;
        char quote = 0;
        for (int i = 0; i < body.length(); i++) {
            char c = body.charAt(i);
            if (quote != 0) {
                if (c == quote) quote = 0;
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == '(') {
                depth++;
            } else if (c == ')') {
                depth--;
            } else if (c == ',' && depth == 0) {
                parts.add(body.substring(start, i));
                start = i + 1;
            }
        }
        parts.add(body.substring(start));
        return parts;
    }

    /** The text inside single or double quotes, or null if {@code s} is not quoted. */
    private static String unquote(String s) {
        if (s.length() >= 2 && (s.charAt(0) == '\'' || s.charAt(0) == '"') && s.charAt(s.length() - 1) == s.charAt(0)) {
            return s.substring(1, s.length() - 1);
        }
        return null;
    }

    private static void readFully(FileChannel channel, ByteBuffer into, long position, Path file) throws IOException {
        while (into.hasRemaining()) {
            int n = channel.read(into, position);
            if (n < 0) throw bad(file, "ends at byte " + position + ", inside its header");
            position += n;
        }
    }

    private static IOException bad(Path file, String what) {
        return new IOException(".npy file " + file + " " + what);
    }
}
