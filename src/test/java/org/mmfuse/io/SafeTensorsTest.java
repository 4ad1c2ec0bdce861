package org.mmfuse.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mmfuse.HalfFloats;
import org.mmfuse.Tensor;

class SafeTensorsTest {
    @TempDir
    Path dir;

    /** A file as the format lays it out: the header's length, the header, the data. */
    private Path write(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer out = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(h.length).put(h).put(data);
        Path file = dir.resolve(name);
        Files.write(file, out.array());
        return file;
    }

    private static byte[] littleEndian(float[] f32, short[] halves, double[] f64) {
        ByteBuffer b = ByteBuffer.allocate(f32.length * 4 + halves.length * 2 + f64.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : f32) b.putFloat(x);
        for (short x : halves) b.putShort(x);
        for (double x : f64) b.putDouble(x);
        return b.array();
    }

    /** Hash and sign buffers of a compact-bilinear model: int64 hashes, float signs, int8 values. */
    @Test
    void readsIntegerTensorsAsInts() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(3 * 8 + 3 * 4 + 2).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0).putLong(15999).putLong(7);
        b.putFloat(1f).putFloat(-1f).putFloat(1f);
        b.put((byte) -3).put((byte) 5);
        String header = "{\"h\": {\"dtype\": \"I64\", \"shape\": [3], \"data_offsets\": [0, 24]},"
                + "\"s\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [24, 36]},"
                + "\"small\": {\"dtype\": \"I8\", \"shape\": [2], \"data_offsets\": [36, 38]}}";
        try (SafeTensors st = SafeTensors.open(write("sketch.safetensors", header, b.array()))) {
            assertArrayEquals(new int[] {0, 15999, 7}, st.readInts("h"));
            assertArrayEquals(new int[] {1, -1, 1}, st.readInts("s"));
            assertArrayEquals(new int[] {-3, 5}, st.readInts("small"));
            org.mmfuse.CountSketch sketch = org.mmfuse.CountSketch.of(st.readInts("h"), st.readInts("s"), 16000);
            assertEquals(15999, sketch.hash(1));
            assertThrows(UnsupportedOperationException.class, () -> st.read("h")); // not silently rounded to F32
        }
        ByteBuffer wide = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).putFloat(0.5f).putFloat(2f);
        String wideHeader = "{\"big\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]},"
                + "\"half\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}";
        try (SafeTensors st = SafeTensors.open(write("wide.safetensors", wideHeader, wide.array()))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> st.readInts("big"));
            assertTrue(e.getMessage().contains("big"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> st.readInts("half"));
        }
    }

    @Test
    void readsEveryFloatTypeAsF32() throws IOException {
        Random rng = new Random(4);
        float[] weight = new float[6];
        for (int i = 0; i < weight.length; i++) weight[i] = rng.nextFloat() * 20 - 10;
        float[] f16 = {1.5f, -0.333f, 65504f, 1e-6f}, bf16 = {3.14159f, -2e20f, 0f, -1f};
        short[] halves = new short[8];
        for (int i = 0; i < 4; i++) {
            halves[i] = HalfFloats.toF16(f16[i]);
            halves[4 + i] = HalfFloats.toBf16(bf16[i]);
        }
        double[] f64 = {Math.PI, -1e-3, 7};
        // offsets: weight 0-24, half 24-32, brain 32-40, wide 40-64, scalar 64-68, empty 68-68
        String header = "{\"__metadata__\": {\"format\": \"pt\", \"note\": \"caf\\u00e9\"},"
                + "\"weight\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
                + "\"half\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [24, 32]},"
                + "\"brain\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [32, 40]},"
                + "\"wide\": {\"dtype\": \"F64\", \"shape\": [3], \"data_offsets\": [40, 64]},"
                + "\"scalar\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [64, 68]},"
                + "\"empty\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [68, 68]}}";
        byte[] data = concat(littleEndian(weight, halves, f64), littleEndian(new float[] {42f}, new short[0], new double[0]));
        try (SafeTensors st = SafeTensors.open(write("all.safetensors", header, data))) {
            assertEquals(List.of("weight", "half", "brain", "wide", "scalar", "empty"), st.names());
            assertEquals(Map.of("format", "pt", "note", "café"), st.metadata());
            assertArrayEquals(new long[] {2, 3}, st.entry("weight").shape());
            assertNull(st.entry("missing"));
            Map<String, Tensor> all = st.readAll();
            assertArrayEquals(weight, all.get("weight").array());
            for (int i = 0; i < 4; i++) {
                assertEquals(HalfFloats.fromF16(halves[i]), all.get("half").array()[i]);
                assertEquals(HalfFloats.fromBf16(halves[4 + i]), all.get("brain").array()[i]);
            }
            assertEquals(1.5f, all.get("half").array()[0]);
            assertArrayEquals(new float[] {(float) Math.PI, -1e-3f, 7f}, all.get("wide").array());
            assertEquals(0, all.get("scalar").rank());
            assertEquals(42f, all.get("scalar").array()[0]);
            assertArrayEquals(new long[] {0, 5}, all.get("empty").shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> st.read("missing"));
            assertTrue(e.getMessage().contains("no tensor \"missing\""), e.getMessage());
        }
    }

    /** Tensors of more than one read chunk (2^20 elements): F32, BF16 and I64 after an odd-sized first tensor. */
    @Test
    void readsTensorsLongerThanOneChunk() throws IOException {
        Random rng = new Random(5);
        int n = (1 << 21) + 12_345;
        float[] f32 = new float[n];
        short[] bf16 = new short[n];
        for (int i = 0; i < n; i++) {
            f32[i] = (float) rng.nextGaussian();
            bf16[i] = HalfFloats.toBf16((float) rng.nextGaussian());
        }
        ByteBuffer b = ByteBuffer.allocate(3 + n * 4 + n * 2 + n * 8).order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 1).put((byte) 2).put((byte) 3);
        for (float x : f32) b.putFloat(x);
        for (short x : bf16) b.putShort(x);
        for (int i = 0; i < n; i++) b.putLong(i * 7L - n);
        long f32At = 3, bf16At = f32At + 4L * n, i64At = bf16At + 2L * n, end = i64At + 8L * n;
        String header = "{\"odd\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [0, 3]},"
                + "\"f\": {\"dtype\": \"F32\", \"shape\": [" + n + "], \"data_offsets\": [" + f32At + ", " + bf16At + "]},"
                + "\"b\": {\"dtype\": \"BF16\", \"shape\": [" + n + "], \"data_offsets\": [" + bf16At + ", " + i64At + "]},"
                + "\"i\": {\"dtype\": \"I64\", \"shape\": [" + n + "], \"data_offsets\": [" + i64At + ", " + end + "]}}";
        try (SafeTensors st = SafeTensors.open(write("long.safetensors", header, b.array()))) {
            assertArrayEquals(f32, st.read("f").array());
            float[] brain = st.read("b").array();
            for (int i = 0; i < n; i++) assertEquals(HalfFloats.fromBf16(bf16[i]), brain[i], "at " + i);
            int[] ints = st.readInts("i");
            for (int i = 0; i < n; i++) assertEquals(i * 7L - n, ints[i], "at " + i);
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(a);
        out.writeBytes(b);
        return out.toByteArray();
    }

    /** Each bad file is refused at open with an IOException whose message says what is wrong. */
    @Test
    void malformedFilesAreRefusedWithTheReason() throws IOException {
        byte[] eight = new byte[8];
        String ok = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}";
        assertRefused(write("ok-but-short.safetensors", ok, new byte[4]), "at bytes [0, 8) of 4 data bytes");
        assertRefused(write("not-json.safetensors", "{\"a\": ", eight), "not JSON");
        assertRefused(write("array.safetensors", "[1, 2]", eight), "not a JSON object");
        assertRefused(write("no-dtype.safetensors", "{\"a\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", eight),
                "without a string dtype");
        assertRefused(write("dtype.safetensors", "{\"a\": {\"dtype\": \"F33\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                eight), "unknown dtype F33");
        assertRefused(write("size.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}",
                new byte[12]), "(12 bytes) in a range of 8 bytes");
        assertRefused(write("negative.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}",
                eight), "not a non-negative integer");
        assertRefused(write("huge.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296],"
                + " \"data_offsets\": [0, 8]}}", eight), "too large");
        assertRefused(write("backwards.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 0]}}",
                eight), "at bytes [8, 0)");
        assertRefused(write("overlap.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                + " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", new byte[12]),
                "overlapping tensors \"a\" [0, 8) and \"b\" [4, 12)");
        assertRefused(write("duplicate.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                + " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", eight), "duplicate key \"a\"");
        assertRefused(write("metadata.safetensors", "{\"__metadata__\": {\"n\": 3}}", new byte[0]), "not a string");
        assertRefused(write("deep.safetensors", "{\"x\": " + "[".repeat(1000) + "]".repeat(1000) + "}", new byte[0]),
                "nesting deeper");

        Path tiny = dir.resolve("tiny.safetensors");
        Files.write(tiny, new byte[5]);
        assertRefused(tiny, "shorter than the 8-byte header length");
        Path lying = dir.resolve("lying.safetensors"); // declares a header far past the file's end
        Files.write(lying, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array());
        assertRefused(lying, "declares a header of 1099511627776 bytes");
        Path latin = dir.resolve("latin1.safetensors"); // a header byte that is not UTF-8
        Files.write(latin, ByteBuffer.allocate(11).order(ByteOrder.LITTLE_ENDIAN).putLong(3).put((byte) '{')
                .put((byte) 0xE9).put((byte) '}').array());
        assertRefused(latin, "not UTF-8");
    }

    private static void assertRefused(Path file, String reason) {
        IOException e = assertThrows(IOException.class, () -> SafeTensors.open(file).close());
        assertTrue(e.getMessage().contains(reason) && e.getMessage().contains(file.getFileName().toString()),
                "message '" + e.getMessage() + "' lacks '" + reason + "'");
    }

    @Test
    void integerTensorsAreListedButNotRead() throws IOException {
        String header = "{\"steps\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}";
        try (SafeTensors st = SafeTensors.open(write("int.safetensors", header, new byte[8]))) {
            assertEquals("I64", st.entry("steps").dtype);
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> st.read("steps"));
            assertTrue(e.getMessage().contains("is I64"), e.getMessage());
        }
    }
}
