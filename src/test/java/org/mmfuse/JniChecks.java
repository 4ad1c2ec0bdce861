package org.mmfuse;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntSupplier;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.mmfuse.backend.Probe;
import org.mmfuse.cuda.MmfNative;

/**
 * Every entry point of the JNI glue (JavaCPP's generated code over the C ABI) called with arguments that
 * need no device: ones the C side refuses before touching CUDA, empty calls, and the queries that answer
 * on the host. It passes Java arrays, strings and every kind of JavaCPP pointer across the glue, so that
 * run in a JVM with AddressSanitizer preloaded ({@link NativeHarnessTest}) the glue's own memory handling
 * is checked too. In-process in {@link NativeBindingTest}; as a program in the sanitized JVM.
 */
public final class JniChecks {
    private record Case(String what, int expected, IntSupplier call) {}

    private JniChecks() {}

    /** Runs every case; returns a line for each that did not give its expected status and message. */
    static List<String> failures() {
        Probe.JAVACPP.loadMmfuse();
        List<String> failures = new ArrayList<>();
        int bad = MmfNative.MMF_ERR_INVALID_ARGUMENT, ok = MmfNative.MMF_OK;
        long big = Long.MAX_VALUE / 2;
        try (FloatPointer scratch = new FloatPointer(64); IntPointer ints = new IntPointer(16);
                LongPointer widths = new LongPointer(3L, 4L); LongPointer strides = new LongPointer(4);
                PointerPointer<FloatPointer> pieces = new PointerPointer<>(scratch, scratch)) {
            List<Case> cases = List.of(
                    new Case("concat: negative piece count", bad,
                            () -> MmfNative.mmf_concat_f32(-1, pieces, widths, 2, scratch, 7, null, 0, null)),
                    new Case("concat: widths past the whole", bad,
                            () -> MmfNative.mmf_concat_f32(2, pieces, widths, 2, scratch, 5, null, 0, null)),
                    new Case("split: NULL piece table", bad,
                            () -> MmfNative.mmf_split_f32(2, null, widths, 2, scratch, 7, null, 0, null)),
                    new Case("split: empty", ok, () -> MmfNative.mmf_split_f32(2, pieces, widths, 0, scratch, 7, null, 0, null)),
                    new Case("attention: negative batch", bad,
                            () -> MmfNative.mmf_attention(MmfNative.MMF_F32, 0, -1, 4, 4, 1, 8, 8, scratch, scratch, scratch,
                                    null, scratch, strides, 1f, 0, scratch, null, null, 0, null, 0, null)),
                    new Case("finish rows: negative rows", bad,
                            () -> MmfNative.mmf_finish_rows(scratch, -1, 4, 1f, 1, 0f, 1, null, 0, null)),
                    new Case("row dots: negative rows", bad,
                            () -> MmfNative.mmf_bilinear_row_dots(scratch, scratch, null, scratch, 4, -2, 4, 4, null)),
                    new Case("sketch: negative items", bad,
                            () -> MmfNative.mmf_sketch(scratch, -1, 4, ints, ints, scratch, 8, scratch, null)),
                    new Case("spectrum: negative n", bad,
                            () -> MmfNative.mmf_spectrum_product(scratch, scratch, scratch, -3, 1f, null)),
                    new Case("outer sketch: d = 0", bad,
                            () -> MmfNative.mmf_outer_sketch(scratch, 1, 2, 2, ints, scratch, ints, ints, scratch, 0, scratch,
                                    null)),
                    new Case("compact pool: negative batch", bad,
                            () -> MmfNative.mmf_compact_pool(scratch, scratch, -1, 4, 4, ints, ints, scratch, ints, ints, scratch,
                                    16, 1f, 0, 0f, 0, scratch, null)),
                    new Case("exact rows: negative samples", bad,
                            () -> MmfNative.mmf_compact_exact_rows(scratch, 1, scratch, 1, scratch, -1, 4, null)),
                    new Case("factorized: units not a multiple of factor", bad,
                            () -> MmfNative.mmf_factorized_sums(scratch, scratch, 2, 1, 7, 2, 0, scratch, null)),
                    new Case("activate: unknown activation", bad, () -> MmfNative.mmf_activate(scratch, 4, 5, scratch, null)),
                    new Case("layer norm: eps 0", bad,
                            () -> MmfNative.mmf_layer_norm(scratch, 2, 4, null, null, 0f, scratch, null)),
                    new Case("softmax: empty", ok, () -> MmfNative.mmf_softmax(null, 0, 8, null, null)),
                    new Case("binary: b does not divide a", bad,
                            () -> MmfNative.mmf_binary(MmfNative.MMF_ADD, scratch, scratch, 10, 3, scratch, null)),
                    new Case("pool: sizes past 2^63", bad,
                            () -> MmfNative.mmf_pool_sequence(scratch, null, big, 4, 1, MmfNative.MMF_POOL_SUM, scratch, null)),
                    new Case("fill: NULL present", bad, () -> MmfNative.mmf_fill_absent(scratch, null, null, 3, 2, scratch, null)),
                    new Case("weighted: term past count", bad,
                            () -> MmfNative.mmf_weighted_accumulate(scratch, scratch, 2, 2, 2, 2, scratch, null)),
                    new Case("gemm split: no SMs", bad,
                            () -> MmfNative.mmf_gemm_k_split(4, 4, 4096, 0, new int[1], new long[1])),
                    new Case("sum slices: no slices", bad, () -> MmfNative.mmf_sum_slices(scratch, 0, 2, 2, null, scratch, null)),
                    new Case("sum slices: empty", ok, () -> MmfNative.mmf_sum_slices(null, 3, 0, 5, null, null, null)),
                    new Case("runtime version: NULL", bad, () -> MmfNative.mmf_cuda_runtime_version(null)),
                    new Case("runtime version", ok, () -> MmfNative.mmf_cuda_runtime_version(new int[1])));
            for (Case c : cases) {
                int status = c.call().getAsInt();
                String message = MmfNative.mmf_last_error();
                boolean passed = status == c.expected() && (status == ok ? message.isEmpty() : !message.isEmpty());
                if (!passed) failures.add(c.what() + ": status " + status + " (expected " + c.expected() + "), \"" + message + "\"");
            }
            // host-only answers: sizes, version, names (a known error and one CUDA does not know)
            expect(failures, "version", MmfNative.mmf_version() == 100);
            expect(failures, "concat workspace", MmfNative.mmf_concat_workspace_bytes(4) == 4 * MmfNative.mmf_concat_workspace_bytes(1));
            expect(failures, "attention workspace of nothing", MmfNative.mmf_attention_workspace_bytes(0, 0, 0, 1, 1, 1, 8, 0, 0) == 0);
            expect(failures, "finish rows workspace", MmfNative.mmf_finish_rows_workspace_bytes(3, 1000) > 0);
            int[] slices = {0};
            long[] sliceK = {0};
            expect(failures, "gemm split of MFB's projection (64 x 2048 -> 6000, 132 SMs)",
                    MmfNative.mmf_gemm_k_split(64, 6000, 2048, 132, slices, sliceK) == ok && slices[0] > 1
                            && (slices[0] - 1) * sliceK[0] < 2048 && slices[0] * sliceK[0] >= 2048);
            expect(failures, "error name", "cudaErrorMemoryAllocation".equals(MmfNative.mmf_cuda_error_name(2)));
            expect(failures, "unknown error name", MmfNative.mmf_cuda_error_name(987654) != null);
            int[] count = {-1};
            int status = MmfNative.mmf_device_count(count);
            expect(failures, "device count", status == ok ? count[0] > 0 : count[0] == 0 && !MmfNative.mmf_last_error().isEmpty());
        }
        return failures;
    }

    private static void expect(List<String> failures, String what, boolean holds) {
        if (!holds) failures.add(what);
    }

    /**
     * Prints the failures and a summary line; exits non-zero if any case failed. With {@code --overflow},
     * instead writes past a native allocation through JavaCPP, which a JVM with AddressSanitizer preloaded
     * must stop: the proof that the sanitizer is live there.
     */
    public static void main(String[] args) {
        if (args.length > 0 && args[0].equals("--overflow")) {
            try (FloatPointer small = new FloatPointer(4); FloatPointer large = new FloatPointer(64)) {
                Pointer.memcpy(small, large, 64L * Float.BYTES);
            }
            System.out.println("overflow not detected");
            return;
        }
        List<String> failures = failures();
        failures.forEach(f -> System.out.println("FAIL jni: " + f));
        System.out.println("jni checks: " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}
