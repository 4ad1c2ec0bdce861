package org.mmfuse.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mmfuse.Backend;
import org.mmfuse.MMFuse;
import org.mmfuse.Ops;
import org.mmfuse.Tensor;

/**
 * Model files that are truncated, corrupted, or lie about their sizes and dtypes: every one either loads
 * (a flipped bit in the data is still a model) or is refused with an IOException or an
 * IllegalArgumentException; nothing else escapes, nothing hangs, nothing allocates what the file merely
 * claims. Seeded; the case number is in the failure message.
 */
class ModelFileFuzzTest {
    @TempDir
    Path dir;

    @Test
    void damagedFilesAreRefusedCleanly() throws IOException {
        Random rng = new Random(121);
        ModelSpec spec = ModelSpec.builder().vector("a", 5).vector("b", 3)
                .fusion(FusionSpec.of("mcb", Map.of("output_dim", 4, "mm_dim", 7))).build();
        Path good = dir.resolve("good.safetensors");
        Model.save(good, spec, FusionModelsTest.randomState(spec, rng));
        byte[] bytes = Files.readAllBytes(good);
        int headerEnd = 8 + (int) ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        Ops ops = MMFuse.ops(Backend.SCALAR);
        Path bad = dir.resolve("bad.safetensors");
        for (int c = 0; c < 1500; c++) {
            byte[] b = damage(bytes, headerEnd, rng, c);
            Files.write(bad, b);
            try (Model m = Model.load(ops, bad); Tensor y = m.predict(new ModelInput().put("a", Tensor.zeros(2, 5)))) {
                assertArrayEquals(new long[] {2, 4}, y.shape(), "case " + c);
            } catch (IOException | IllegalArgumentException refused) {
                // the expected outcome for most damage
            } catch (Throwable other) {
                fail("case " + c + ": " + other + " escaped for a damaged file", other);
            }
        }
    }

    /** One kind of damage per case, cycling: truncation, a random byte, a header number changed, a header rewritten. */
    private static byte[] damage(byte[] bytes, int headerEnd, Random rng, int c) {
        byte[] b = bytes.clone();
        switch (c % 5) {
            case 0:
                return java.util.Arrays.copyOf(b, rng.nextInt(b.length));
            case 1:
                b[rng.nextInt(b.length)] ^= (byte) (1 + rng.nextInt(255));
                return b;
            case 2: // the header length itself
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, rng.nextBoolean() ? rng.nextLong() : rng.nextInt(b.length * 2));
                return b;
            case 3: { // a digit of a shape or offset replaced: sizes that disagree, or huge ones
                String header = new String(b, 8, headerEnd - 8, StandardCharsets.UTF_8);
                StringBuilder h = new StringBuilder(header);
                for (int tries = 0; tries < 100; tries++) {
                    int at = rng.nextInt(h.length());
                    if (Character.isDigit(h.charAt(at))) {
                        h.replace(at, at + 1, rng.nextBoolean() ? String.valueOf(rng.nextInt(10)) : "99999999999");
                        break;
                    }
                }
                return rewrite(b, headerEnd, h.toString());
            }
            default: { // a dtype swapped
                String header = new String(b, 8, headerEnd - 8, StandardCharsets.UTF_8);
                String[] dtypes = {"F16", "BF16", "F64", "I64", "I8", "BOOL", "U8", "I32", "X9"};
                return rewrite(b, headerEnd, header.replaceFirst("\"F32\"", "\"" + dtypes[rng.nextInt(dtypes.length)] + "\""));
            }
        }
    }

    private static byte[] rewrite(byte[] b, int headerEnd, String header) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer out = ByteBuffer.allocate(8 + h.length + b.length - headerEnd).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(h.length).put(h).put(b, headerEnd, b.length - headerEnd);
        return out.array();
    }
}
