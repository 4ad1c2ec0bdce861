package org.mmfuse.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mmfuse.Tensor;

class NpyTest {
    @TempDir
    Path dir;

    @Test
    void roundTripsEveryRank() throws IOException {
        Random rng = new Random(6);
        // the last shape's data spans several of the reader's 4 MB chunks
        for (long[] shape : new long[][] {{}, {7}, {2, 3}, {0, 5}, {3, 1, 4}, {2, 2, 2, 2}, {3, 1_000_003}}) {
            float[] data = new float[(int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b)];
            for (int i = 0; i < data.length; i++) data[i] = rng.nextFloat() * 200 - 100;
            Path file = dir.resolve("a" + shape.length + ".npy");
            Npy.write(file, Tensor.of(data, shape));
            assertEquals(0, (Files.size(file) - data.length * 4L) % 64, "the header pads the data to 64 bytes");
            Tensor back = Npy.read(file);
            assertArrayEquals(shape, back.shape());
            assertArrayEquals(data, back.array());
        }
    }

    /** What np.save writes for np.arange(6, dtype='<f4').reshape(2, 3), in version 2.0 framing. */
    @Test
    void readsVersionTwoHeaders() throws IOException {
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        String header = dict + " ".repeat(64 - (12 + dict.length() + 1) % 64) + "\n";
        ByteBuffer b = ByteBuffer.allocate(12 + header.length() + 24).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0}).putInt(header.length());
        b.put(header.getBytes(StandardCharsets.ISO_8859_1));
        for (int i = 0; i < 6; i++) b.putFloat(i);
        Path file = dir.resolve("v2.npy");
        Files.write(file, b.array());
        Tensor t = Npy.read(file);
        assertArrayEquals(new long[] {2, 3}, t.shape());
        assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, t.array());
    }

    private Path file(String name, String dict, int dataBytes) throws IOException {
        String header = dict + "\n";
        ByteBuffer b = ByteBuffer.allocate(10 + header.length() + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) header.length());
        b.put(header.getBytes(StandardCharsets.ISO_8859_1));
        Path file = dir.resolve(name);
        Files.write(file, b.array());
        return file;
    }

    @Test
    void refusesAnythingButLittleEndianFloat32InCOrder() throws IOException {
        assertRefused(file("f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16), "dtype <f8");
        assertRefused(file("be.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8), "dtype >f4");
        assertRefused(file("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16),
                "Fortran order");
        assertRefused(file("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8),
                "(3 floats) and 8 data bytes");
        assertRefused(file("long.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 8),
                "(1 floats) and 8 data bytes");
        assertRefused(file("huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", 0),
                "too large");
        assertRefused(file("negative.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 0),
                "not a size");
        assertRefused(file("nokey.npy", "{'descr': '<f4', 'shape': (1,), }", 4), "lacks one of");
        assertRefused(file("extra.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4),
                "unknown header key 'x'");
        assertRefused(file("list.npy", "[1, 2]", 0), "not a dict");
        Path magic = dir.resolve("magic.npy");
        Files.write(magic, "NUMPY not really, but long enough".getBytes(StandardCharsets.US_ASCII));
        assertRefused(magic, "magic string");
        Path lying = dir.resolve("lying.npy");
        Files.write(lying, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN)
                .put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) 5000).array());
        assertRefused(lying, "declares a header of 5000 bytes in a file of 16");
    }

    private static void assertRefused(Path file, String reason) {
        IOException e = assertThrows(IOException.class, () -> Npy.read(file));
        assertTrue(e.getMessage().contains(reason) && e.getMessage().contains(file.getFileName().toString()),
                "message '" + e.getMessage() + "' lacks '" + reason + "'");
    }
}
