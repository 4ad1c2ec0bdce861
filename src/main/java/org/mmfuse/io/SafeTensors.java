package org.mmfuse.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mmfuse.HalfFloats;
import org.mmfuse.Shapes;
import org.mmfuse.Tensor;

/**
 * A safetensors file (the format of Hugging Face's {@code safetensors}, which PyTorch state dicts are
 * saved in): an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
 * and byte range, then the data. {@link #open} reads and checks the header only; {@link #read} reads
 * one tensor into a host F32 tensor (F32, F16, BF16 and F64 convert; other dtypes are named in the
 * header but refused on reading).
 *
 * <p>Files are not trusted: the header length is bounded, every range must lie inside the data and
 * match its dtype and shape, ranges may not overlap, and nothing is allocated before those checks
 * passed; a bad file is an {@link IOException} naming the file and what is wrong with it.
 */
public final class SafeTensors implements AutoCloseable {
    /** The format's own bound on the header (the reference implementation refuses larger ones). */
    static final long MAX_HEADER_BYTES = 100L << 20;

    /** One tensor of the header: its dtype as the file names it, its shape and its bytes in the data. */
    public static final class Entry {
        public final String name;
        public final String dtype;
        private final long[] shape;
        public final long begin;
        public final long end;

        Entry(String name, String dtype, long[] shape, long begin, long end) {
            this.name = name;
            this.dtype = dtype;
            this.shape = shape;
            this.begin = begin;
            this.end = end;
        }

        public long[] shape() {
            return shape.clone();
        }
    }

    private final Path file;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private SafeTensors(Path file, FileChannel channel, long dataStart, Map<String, Entry> entries,
            Map<String, String> metadata) {
        this.file = file;
        this.channel = channel;
        this.dataStart = dataStart;
        this.entries = entries;
        this.metadata = metadata;
    }

    /** Opens {@code file} and checks its header; the caller closes the result. */
    public static SafeTensors open(Path file) throws IOException {
        FileChannel channel = FileChannel.open(file, StandardOpenOption.READ);
        try {
            long size = channel.size();
            if (size < 8) throw bad(file, "is " + size + " bytes, shorter than the 8-byte header length");
            ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, lengthBytes, 0);
            long headerBytes = lengthBytes.getLong(0);
            if (headerBytes <= 0 || headerBytes > Math.min(MAX_HEADER_BYTES, size - 8)) {
                throw bad(file, "declares a header of " + headerBytes + " bytes; the file has " + (size - 8)
                        + " after the length, and headers are at most " + MAX_HEADER_BYTES);
            }
            ByteBuffer headerBuffer = ByteBuffer.allocate((int) headerBytes);
            readFully(channel, headerBuffer, 8);
            String header;
            try {
                header = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .decode(headerBuffer.flip()).toString();
            } catch (CharacterCodingException e) {
                throw bad(file, "has a header that is not UTF-8");
            }
            long dataStart = 8 + headerBytes;
            SafeTensors opened = parseHeader(file, channel, header, dataStart, size - dataStart);
            channel = null; // owned by the result now
            return opened;
        } finally {
            if (channel != null) channel.close();
        }
    }

    private static SafeTensors parseHeader(Path file, FileChannel channel, String header, long dataStart, long dataBytes)
            throws IOException {
        Object root;
        try {
            root = Json.parse(header);
        } catch (IllegalArgumentException e) {
            throw bad(file, "has a header that is not JSON (" + e.getMessage() + ")");
        }
        if (!(root instanceof Map)) throw bad(file, "has a header that is not a JSON object");
        Map<String, Entry> entries = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : ((Map<?, ?>) root).entrySet()) {
            String name = (String) e.getKey();
            if (name.equals("__metadata__")) {
                if (!(e.getValue() instanceof Map)) throw bad(file, "has __metadata__ that is not an object");
                for (Map.Entry<?, ?> m : ((Map<?, ?>) e.getValue()).entrySet()) {
                    if (!(m.getValue() instanceof String)) {
                        throw bad(file, "has __metadata__ value for \"" + m.getKey() + "\" that is not a string");
                    }
                    metadata.put((String) m.getKey(), (String) m.getValue());
                }
                continue;
            }
            entries.put(name, entry(file, name, e.getValue(), dataBytes));
        }
        List<Entry> byOffset = new ArrayList<>(entries.values());
        byOffset.sort(Comparator.comparingLong((Entry x) -> x.begin).thenComparingLong(x -> x.end));
        for (int i = 1; i < byOffset.size(); i++) {
            Entry previous = byOffset.get(i - 1), next = byOffset.get(i);
            if (next.begin < previous.end) {
                throw bad(file, "has overlapping tensors \"" + previous.name + "\" [" + previous.begin + ", "
                        + previous.end + ") and \"" + next.name + "\" [" + next.begin + ", " + next.end + ")");
            }
        }
        return new SafeTensors(file, channel, dataStart, Collections.unmodifiableMap(entries),
                Collections.unmodifiableMap(metadata));
    }

    /** One header entry, checked: a known dtype, a shape of non-negative sizes, a range that fits it and the data. */
    private static Entry entry(Path file, String name, Object value, long dataBytes) throws IOException {
        String what = "tensor \"" + name + "\"";
        if (!(value instanceof Map)) throw bad(file, "has " + what + " that is not an object");
        Map<?, ?> fields = (Map<?, ?>) value;
        if (!(fields.get("dtype") instanceof String)) throw bad(file, "has " + what + " without a string dtype");
        String dtype = (String) fields.get("dtype");
        int elementBytes = elementBytes(dtype);
        if (elementBytes == 0) throw bad(file, "has " + what + " of unknown dtype " + dtype);
        long[] shape = integers(file, what + " shape", fields.get("shape"), -1);
        long[] offsets = integers(file, what + " data_offsets", fields.get("data_offsets"), 2);
        long begin = offsets[0], end = offsets[1];
        if (begin > end || end > dataBytes) {
            throw bad(file, "has " + what + " at bytes [" + begin + ", " + end + ") of " + dataBytes + " data bytes");
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(Shapes.numel(what, shape), (long) elementBytes);
        } catch (ArithmeticException | IllegalArgumentException e) {
            throw bad(file, "has " + what + " of shape " + Shapes.toString(shape) + ", too large");
        }
        if (bytes != end - begin) {
            throw bad(file, "has " + what + " of " + dtype + " " + Shapes.toString(shape) + " (" + bytes
                    + " bytes) in a range of " + (end - begin) + " bytes");
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    /** A JSON array of non-negative integers ({@code length} of them, or any number when negative). */
    private static long[] integers(Path file, String what, Object value, int length) throws IOException {
        if (!(value instanceof List)) throw bad(file, "has " + what + " that is not an array");
        List<?> list = (List<?>) value;
        if (length >= 0 && list.size() != length) throw bad(file, "has " + what + " of " + list.size() + " numbers");
        long[] out = new long[list.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(list.get(i) instanceof Long) || (Long) list.get(i) < 0) {
                throw bad(file, "has " + what + " with " + list.get(i) + ", not a non-negative integer");
            }
            out[i] = (Long) list.get(i);
        }
        return out;
    }

    /** Bytes per element of a safetensors dtype, 0 if unknown. */
    static int elementBytes(String dtype) {
        switch (dtype) {
            case "F64": case "I64": case "U64": return 8;
            case "F32": case "I32": case "U32": return 4;
            case "F16": case "BF16": case "I16": case "U16": return 2;
            case "I8": case "U8": case "BOOL": case "F8_E4M3": case "F8_E5M2": return 1;
            default: return 0;
        }
    }

    /** The tensors' names, in the header's order. */
    public List<String> names() {
        return List.copyOf(entries.keySet());
    }

    /** The header entry of {@code name}, or null if the file has no such tensor. */
    public Entry entry(String name) {
        return entries.get(name);
    }

    /** The header's {@code __metadata__} (string to string; empty if absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Tensor {@code name} as a host F32 tensor, owned by the caller. */
    public Tensor read(String name) throws IOException {
        Entry e = entries.get(name);
        if (e == null) throw new IllegalArgumentException(file + " has no tensor \"" + name + "\"; it has " + names());
        long n = Shapes.numel(name, e.shape);
        if (n > Shapes.MAX_HOST_ELEMENTS) {
            throw new IllegalArgumentException(file + ": tensor \"" + name + "\" " + Shapes.toString(e.shape)
                    + " has more elements than a host tensor holds (" + Shapes.MAX_HOST_ELEMENTS + ")");
        }
        if (!e.dtype.equals("F32") && !e.dtype.equals("F16") && !e.dtype.equals("BF16") && !e.dtype.equals("F64")) {
            throw new UnsupportedOperationException(file + ": tensor \"" + name + "\" is " + e.dtype
                    + "; MMFuse reads F32, F16, BF16 and F64 tensors (as F32)");
        }
        float[] values = new float[(int) n];
        readChunks(e, (bytes, first, count) -> {
            switch (e.dtype) {
                case "F32": bytes.asFloatBuffer().get(values, first, count); break;
                case "F64": for (int i = 0; i < count; i++) values[first + i] = (float) bytes.getDouble(i * 8); break;
                case "F16": for (int i = 0; i < count; i++) values[first + i] = HalfFloats.fromF16(bytes.getShort(i * 2)); break;
                default: for (int i = 0; i < count; i++) values[first + i] = HalfFloats.fromBf16(bytes.getShort(i * 2)); break;
            }
        });
        return Tensor.of(values, e.shape);
    }

    /**
     * Tensor {@code name}'s values as ints, flattened: integer tensors (I64, I32, I16, I8, U8), such as a
     * compact-bilinear model's hash buffers, and float tensors holding whole numbers (signs saved as
     * floats). A value that is not a whole number or does not fit an int is refused, naming the tensor.
     */
    public int[] readInts(String name) throws IOException {
        Entry e = entries.get(name);
        if (e == null) throw new IllegalArgumentException(file + " has no tensor \"" + name + "\"; it has " + names());
        long n = Shapes.numel(name, e.shape);
        if (n > Shapes.MAX_HOST_ELEMENTS) {
            throw new IllegalArgumentException(file + ": tensor \"" + name + "\" " + Shapes.toString(e.shape)
                    + " has more elements than an int[] holds");
        }
        int[] values = new int[(int) n];
        switch (e.dtype) {
            case "I64": case "I32": case "I16": case "I8": case "U8": {
                readChunks(e, (bytes, first, count) -> {
                    for (int i = 0; i < count; i++) {
                        long v = switch (e.dtype) {
                            case "I64" -> bytes.getLong(i * 8);
                            case "I32" -> bytes.getInt(i * 4);
                            case "I16" -> bytes.getShort(i * 2);
                            case "I8" -> bytes.get(i);
                            default -> bytes.get(i) & 0xFF;
                        };
                        if (v != (int) v) {
                            throw new IllegalArgumentException(file + ": tensor \"" + name + "\" holds " + v + " at "
                                    + (first + i) + ", outside the int range");
                        }
                        values[first + i] = (int) v;
                    }
                });
                return values;
            }
            default: {
                try (Tensor t = read(name)) {
                    float[] f = t.array();
                    for (int i = 0; i < values.length; i++) {
                        if (f[i] != Math.rint(f[i]) || Math.abs(f[i]) > 1 << 24) {
                            throw new IllegalArgumentException(file + ": tensor \"" + name + "\" holds " + f[i] + " at " + i
                                    + ", not a whole number below 2^24");
                        }
                        values[i] = (int) f[i];
                    }
                    return values;
                }
            }
        }
    }

    /** Every tensor, by name in the header's order, as host F32 tensors owned by the caller. */
    public Map<String, Tensor> readAll() throws IOException {
        Map<String, Tensor> all = new LinkedHashMap<>();
        for (String name : entries.keySet()) all.put(name, read(name));
        return all;
    }

    /**
     * Writes {@code tensors} (any device, as F32, in the map's order) and {@code metadata} as a safetensors
     * file that {@code safetensors.torch.load_file} and {@link #open} read. The file is written whole to a
     * sibling first and moved into place, so a failed write leaves no half file under the name.
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) header.put("__metadata__", new LinkedHashMap<>(metadata));
        long offset = 0;
        List<float[]> data = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            if (e.getKey().equals("__metadata__")) throw new IllegalArgumentException("a tensor cannot be named __metadata__");
            float[] values = e.getValue().toArray();
            List<Long> shape = new ArrayList<>();
            for (long size : e.getValue().shape()) shape.add(size);
            Map<String, Object> fields = new LinkedHashMap<>();
            fields.put("dtype", "F32");
            fields.put("shape", shape);
            fields.put("data_offsets", List.of(offset, offset + 4L * values.length));
            header.put(e.getKey(), fields);
            data.add(values);
            offset += 4L * values.length;
        }
        byte[] json = Json.write(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8; // the format pads the header with spaces to 8 bytes
        Path partial = file.resolveSibling(file.getFileName() + ".partial");
        try (FileChannel out = FileChannel.open(partial, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(padded).put(json);
            while (head.hasRemaining()) head.put((byte) ' ');
            writeFully(out, head.flip());
            for (float[] values : data) {
                ByteBuffer bytes = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
                bytes.asFloatBuffer().put(values);
                writeFully(out, bytes);
            }
        }
        java.nio.file.Files.move(partial, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    private static void writeFully(FileChannel channel, ByteBuffer from) throws IOException {
        while (from.hasRemaining()) channel.write(from);
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }

    /** A tensor's data, a chunk of whole elements at a time (see {@link ChunkedRead}). */
    private void readChunks(Entry e, ChunkedRead.Chunk chunk) throws IOException {
        ChunkedRead.read(channel, dataStart + e.begin, e.end - e.begin, elementBytes(e.dtype), chunk);
    }

    private static void readFully(FileChannel channel, ByteBuffer into, long position) throws IOException {
        while (into.hasRemaining()) {
            int n = channel.read(into, position);
            if (n < 0) throw new IOException("unexpected end of file at byte " + position);
            position += n;
        }
    }

    private static IOException bad(Path file, String what) {
        return new IOException("safetensors file " + file + " " + what);
    }
}
