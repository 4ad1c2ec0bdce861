// arguments.cpp - host checks of the C ABI's argument validation (no GPU needed): every entry point refuses
// negative sizes, NULL arrays that have elements, size products past 2^63 and unknown enum values with
// MMF_ERR_INVALID_ARGUMENT and a message naming it, before touching the CUDA runtime; and empty calls
// succeed without touching it. Run under AddressSanitizer/UBSan by the sanitized harness build.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "harness.h"

namespace {

struct Case {
    const char* what;
    int expected;                 // MMF_OK or MMF_ERR_INVALID_ARGUMENT
    std::function<int()> call;
};

float scratch[64];  // a valid host address for the arrays the checks never get to read
int ints[16];       // and for int arrays
int64_t slice_k;    // and for one int64_t

}  // namespace

int check_arguments() {
    const int64_t big = INT64_MAX / 2;
    const int64_t widths[2] = {3, 4};
    const float* pieces[2] = {scratch, nullptr};
    const int bad = MMF_ERR_INVALID_ARGUMENT;
    std::vector<Case> cases = {
        {"concat: negative piece count", bad, [&] { return mmf_concat_f32(-1, pieces, widths, 2, scratch, 7, nullptr, 0, nullptr); }},
        {"concat: NULL piece table", bad, [&] { return mmf_concat_f32(2, nullptr, widths, 2, scratch, 7, nullptr, 0, nullptr); }},
        {"concat: widths past the whole", bad, [&] { return mmf_concat_f32(2, pieces, widths, 2, scratch, 5, nullptr, 0, nullptr); }},
        {"binary: unknown op", bad, [&] { return mmf_binary(7, scratch, scratch, 4, 4, scratch, nullptr); }},
        {"binary: negative n", bad, [&] { return mmf_binary(MMF_ADD, scratch, scratch, -1, 1, scratch, nullptr); }},
        {"binary: b does not divide a", bad, [&] { return mmf_binary(MMF_ADD, scratch, scratch, 10, 3, scratch, nullptr); }},
        {"binary: NULL a", bad, [&] { return mmf_binary(MMF_MULTIPLY, nullptr, scratch, 4, 4, scratch, nullptr); }},
        {"binary: empty", MMF_OK, [&] { return mmf_binary(MMF_SUBTRACT, nullptr, nullptr, 0, 0, nullptr, nullptr); }},
        {"pool: negative batch", bad, [&] { return mmf_pool_sequence(scratch, nullptr, -1, 2, 2, MMF_POOL_MEAN, scratch, nullptr); }},
        {"pool: unknown mode", bad, [&] { return mmf_pool_sequence(scratch, nullptr, 1, 2, 2, 9, scratch, nullptr); }},
        {"pool: sizes past 2^63", bad, [&] { return mmf_pool_sequence(scratch, nullptr, big, 4, 1, MMF_POOL_SUM, scratch, nullptr); }},
        {"pool: batch x channels past 2^63", bad, [&] { return mmf_pool_sequence(scratch, nullptr, big, 0, 4, MMF_POOL_SUM, scratch, nullptr); }},
        {"pool: NULL x", bad, [&] { return mmf_pool_sequence(nullptr, nullptr, 2, 2, 2, MMF_POOL_MAX, scratch, nullptr); }},
        {"pool: empty", MMF_OK, [&] { return mmf_pool_sequence(nullptr, nullptr, 0, 5, 3, MMF_POOL_FIRST, nullptr, nullptr); }},
        {"fill: negative rows", bad, [&] { return mmf_fill_absent(scratch, scratch, nullptr, -1, 2, scratch, nullptr); }},
        {"fill: sizes past 2^63", bad, [&] { return mmf_fill_absent(scratch, scratch, nullptr, INT64_MAX, 2, scratch, nullptr); }},
        {"fill: NULL present", bad, [&] { return mmf_fill_absent(scratch, nullptr, nullptr, 3, 2, scratch, nullptr); }},
        {"fill: empty", MMF_OK, [&] { return mmf_fill_absent(nullptr, nullptr, nullptr, 0, 7, nullptr, nullptr); }},
        {"weighted: no inputs", bad, [&] { return mmf_weighted_accumulate(scratch, scratch, 0, 0, 2, 2, scratch, nullptr); }},
        {"weighted: term past count", bad, [&] { return mmf_weighted_accumulate(scratch, scratch, 2, 2, 2, 2, scratch, nullptr); }},
        {"weighted: negative term", bad, [&] { return mmf_weighted_accumulate(scratch, scratch, 2, -1, 2, 2, scratch, nullptr); }},
        {"weighted: sizes past 2^63", bad, [&] { return mmf_weighted_accumulate(scratch, scratch, 2, 0, big, 3, scratch, nullptr); }},
        {"weighted: weights past 2^63", bad, [&] { return mmf_weighted_accumulate(scratch, scratch, 4, 0, big, 0, scratch, nullptr); }},
        {"weighted: empty", MMF_OK, [&] { return mmf_weighted_accumulate(nullptr, nullptr, 3, 1, 0, 4, nullptr, nullptr); }},
        {"activate: unknown activation", bad, [&] { return mmf_activate(scratch, 4, 5, scratch, nullptr); }},
        {"activate: negative n", bad, [&] { return mmf_activate(scratch, -4, MMF_ACTIVATION_GELU, scratch, nullptr); }},
        {"activate: empty", MMF_OK, [&] { return mmf_activate(nullptr, 0, MMF_ACTIVATION_RELU, nullptr, nullptr); }},
        {"layer norm: eps 0", bad, [&] { return mmf_layer_norm(scratch, 2, 4, nullptr, nullptr, 0.f, scratch, nullptr); }},
        {"layer norm: negative rows", bad, [&] { return mmf_layer_norm(scratch, -1, 4, nullptr, nullptr, 1e-5f, scratch, nullptr); }},
        {"layer norm: rows x dim past 2^63", bad, [&] { return mmf_layer_norm(scratch, big, 4, nullptr, nullptr, 1e-5f, scratch, nullptr); }},
        {"softmax: rows x dim past 2^63", bad, [&] { return mmf_softmax(scratch, big, 4, scratch, nullptr); }},
        {"softmax: negative dim", bad, [&] { return mmf_softmax(scratch, 2, -1, scratch, nullptr); }},
        {"softmax: empty", MMF_OK, [&] { return mmf_softmax(nullptr, 0, 8, nullptr, nullptr); }},
        {"factorized: units not a multiple of factor", bad, [&] { return mmf_factorized_sums(scratch, scratch, 2, 1, 7, 2, 0, scratch, nullptr); }},
        {"factorized: unknown activation", bad, [&] { return mmf_factorized_sums(scratch, scratch, 2, 1, 8, 2, 9, scratch, nullptr); }},
        {"finish rows: negative rows", bad, [&] { return mmf_finish_rows(scratch, -1, 4, 1.f, 1, 0.f, 1, nullptr, 0, nullptr); }},
        {"row dots: negative rows", bad, [&] { return mmf_bilinear_row_dots(scratch, scratch, nullptr, scratch, 4, -2, 4, 4, nullptr); }},
        {"sketch: negative items", bad, [&] { return mmf_sketch(scratch, -1, 4, nullptr, nullptr, scratch, 8, scratch, nullptr); }},
        {"spectrum: negative n", bad, [&] { return mmf_spectrum_product(scratch, scratch, scratch, -3, 1.f, nullptr); }},
        {"compact pool: negative batch", bad, [&] {
             return mmf_compact_pool(scratch, scratch, -1, 4, 4, ints, ints, scratch, ints, ints, scratch, 16, 1.f, 0, 0.f, 0,
                                     scratch, nullptr);
         }},
        {"compact pool: d = 0", bad, [&] {
             return mmf_compact_pool(scratch, scratch, 1, 4, 4, ints, ints, scratch, ints, ints, scratch, 0, 1.f, 0, 0.f, 0,
                                     scratch, nullptr);
         }},
        {"compact pool: units NULL", bad, [&] {
             return mmf_compact_pool(scratch, scratch, 1, 4, 4, ints, nullptr, scratch, ints, ints, scratch, 16, 1.f, 0, 0.f,
                                     0, scratch, nullptr);
         }},
        {"compact pool supported: NULL answer", bad, [&] { return mmf_compact_pool_supported(16, nullptr); }},
        {"exact rows: negative samples", bad, [&] { return mmf_compact_exact_rows(scratch, 1, scratch, 1, scratch, -1, 4, nullptr); }},
        {"gemm split: negative k", bad, [&] { return mmf_gemm_k_split(4, 4, -1, 132, ints, &slice_k); }},
        {"gemm split: no SMs", bad, [&] { return mmf_gemm_k_split(4, 4, 4096, 0, ints, &slice_k); }},
        {"gemm split: m past cuBLAS's int", bad, [&] { return mmf_gemm_k_split(int64_t{1} << 31, 4, 4096, 132, ints, &slice_k); }},
        {"sum slices: no slices", bad, [&] { return mmf_sum_slices(scratch, 0, 2, 2, nullptr, scratch, nullptr); }},
        {"sum slices: sizes past 2^63", bad, [&] { return mmf_sum_slices(scratch, 4, big, 2, nullptr, scratch, nullptr); }},
        {"sum slices: NULL partials", bad, [&] { return mmf_sum_slices(nullptr, 2, 2, 2, nullptr, scratch, nullptr); }},
        {"sum slices: empty", MMF_OK, [&] { return mmf_sum_slices(nullptr, 3, 0, 5, nullptr, nullptr, nullptr); }},
        {"attention: unknown flag", bad, [&] {
             return mmf_attention(MMF_BF16, 4, 1, 4, 4, 1, 8, 8, scratch, scratch, scratch, nullptr, nullptr, nullptr,
                                  1.f, 0, scratch, nullptr, nullptr, 0, nullptr, 0, nullptr);
         }},
        {"attention: negative batch", bad, [&] {
             return mmf_attention(MMF_F32, 0, -1, 4, 4, 1, 8, 8, scratch, scratch, scratch, nullptr, nullptr, nullptr,
                                  1.f, 0, scratch, nullptr, nullptr, 0, nullptr, 0, nullptr);
         }},
    };
    int failures = 0;
    for (const Case& c : cases) {
        const int status = c.call();
        const char* message = mmf_last_error();
        const bool ok = status == c.expected && (c.expected == MMF_OK || (message != nullptr && std::strlen(message) > 0));
        if (!ok) {
            std::printf("FAIL arguments: %s: status %d (expected %d), message \"%s\"\n", c.what, status, c.expected,
                        message == nullptr ? "(null)" : message);
            ++failures;
        }
    }
    std::printf("argument checks: %d passed, %d failed\n", static_cast<int>(cases.size()) - failures, failures);
    return failures;
}
