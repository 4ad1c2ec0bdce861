package org.mmfuse.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mmfuse.Tensor;

/**
 * .npy files against NumPy itself: what {@link Npy#write} writes, np.load reads as the same float32
 * array, and what np.save writes, {@link Npy#read} reads back, or refuses by name when it is not
 * float32, little-endian, C order. Needs a python3 with numpy; skipped where there is none.
 */
class NpyNumpyTest {
    /** Loads every java_*.npy, checks it is C-ordered float32, and saves it reversed along its first
     *  axis as py_*.npy; then saves the kinds of array MMFuse refuses. */
    private static final String SCRIPT = String.join("\n",
            "import os, sys",
            "import numpy as np",
            "d = sys.argv[1]",
            "for name in sorted(os.listdir(d)):",
            "    if name.startswith('java_'):",
            "        a = np.load(os.path.join(d, name))",
            "        assert a.dtype == np.dtype('<f4') and a.flags.c_contiguous, (name, a.dtype)",
            "        np.save(os.path.join(d, 'py_' + name[5:]), np.ascontiguousarray(a[::-1]) if a.ndim else a)",
            "x = np.arange(6, dtype='<f4').reshape(2, 3)",
            "np.save(os.path.join(d, 'float64.npy'), x.astype(np.float64))",
            "np.save(os.path.join(d, 'int32.npy'), x.astype('<i4'))",
            "np.save(os.path.join(d, 'bigendian.npy'), x.astype('>f4'))",
            "np.save(os.path.join(d, 'fortran.npy'), np.asfortranarray(x))");

    @TempDir
    Path dir;

    @Test
    void numpyReadsWhatWeWriteAndWeReadWhatItWrites() throws Exception {
        Assumptions.assumeTrue(pythonHasNumpy(), "no python3 with numpy here");
        Random rng = new Random(11);
        long[][] shapes = {{}, {7}, {2, 3}, {0, 5}, {3, 1, 4}, {2, 3, 2, 5}};
        float[][] written = new float[shapes.length][];
        for (int s = 0; s < shapes.length; s++) {
            float[] data = new float[(int) Arrays.stream(shapes[s]).reduce(1, (a, b) -> a * b)];
            for (int i = 0; i < data.length; i++) data[i] = (float) (rng.nextGaussian() * Math.pow(10, rng.nextInt(9) - 4));
            if (data.length > 3) { // the values that a text round trip would lose
                data[0] = Float.NaN;
                data[1] = Float.NEGATIVE_INFINITY;
                data[2] = -0f;
                data[3] = Float.MIN_VALUE;
            }
            written[s] = data;
            Npy.write(dir.resolve("java_" + s + ".npy"), Tensor.of(data, shapes[s]));
        }

        Process p = new ProcessBuilder("python3", "-c", SCRIPT, dir.toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "python timed out");
        assertEquals(0, p.exitValue(), log);

        for (int s = 0; s < shapes.length; s++) {
            Tensor back = Npy.read(dir.resolve("py_" + s + ".npy"));
            assertArrayEquals(shapes[s], back.shape());
            assertArrayEquals(reversedRows(written[s], shapes[s]), back.array(), "shape " + Arrays.toString(shapes[s]));
        }
        Map<String, String> refusals = Map.of("float64.npy", "dtype <f8", "int32.npy", "dtype <i4", "bigendian.npy",
                "dtype >f4", "fortran.npy", "Fortran order");
        refusals.forEach((file, reason) -> {
            IOException e = assertThrows(IOException.class, () -> Npy.read(dir.resolve(file)));
            assertTrue(e.getMessage().contains(file) && e.getMessage().contains(reason), e.getMessage());
        });
    }

    /** The rows (slices along the first axis) of a C-ordered array in reverse order. */
    private static float[] reversedRows(float[] data, long[] shape) {
        if (shape.length == 0 || shape[0] == 0) return data;
        int row = (int) (data.length / shape[0]);
        float[] out = new float[data.length];
        for (int r = 0; r < shape[0]; r++) System.arraycopy(data, r * row, out, (int) ((shape[0] - 1 - r) * row), row);
        return out;
    }

    private static boolean pythonHasNumpy() {
        try {
            Process p = new ProcessBuilder("python3", "-c", "import numpy").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
