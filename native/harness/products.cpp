// products.cpp - the split of a product along k: the rule (mmf_gemm_k_split, on the host, over a grid of shapes
// and SM counts) and the sum of the partials (mmf_sum_slices, on a GPU, against a double-precision sum).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "harness.h"

int check_gemm_split() {
    int failures = 0, checks = 0;
    auto fail = [&](int64_t m, int64_t n, int64_t k, int sms, int slices, int64_t slice_k, const char* why) {
        if (failures++ < 10)
            std::printf("  FAIL gemm split m=%lld n=%lld k=%lld sms=%d: %d slices of %lld: %s\n", (long long)m,
                        (long long)n, (long long)k, sms, slices, (long long)slice_k, why);
    };
    const int64_t sizes[] = {0, 1, 3, 63, 64, 65, 200, 511, 512, 768, 1000, 2048, 4097, 6000, 100000};
    for (const int sms : {1, 2, 46, 108, 132}) {
        for (const int64_t m : sizes) {
            for (const int64_t n : sizes) {
                for (const int64_t k : sizes) {
                    ++checks;
                    int slices = -1;
                    int64_t slice_k = -1;
                    if (mmf_gemm_k_split(m, n, k, sms, &slices, &slice_k) != MMF_OK) {
                        fail(m, n, k, sms, slices, slice_k, mmf_last_error());
                        continue;
                    }
                    const int64_t tiles = (m + 63) / 64 * ((n + 63) / 64);
                    if (slices == 1) {
                        if (slice_k != k) fail(m, n, k, sms, slices, slice_k, "one slice shorter than k");
                        continue;
                    }
                    if (slices < 2 || slices > 16) fail(m, n, k, sms, slices, slice_k, "slices outside 2 .. 16");
                    if (slice_k < 256 || slice_k % 16 != 0) fail(m, n, k, sms, slices, slice_k, "a slice under 256 or unaligned");
                    if ((slices - 1) * slice_k >= k || slices * slice_k < k)
                        fail(m, n, k, sms, slices, slice_k, "the slices do not cover k with a non-empty last one");
                    if (tiles >= sms) fail(m, n, k, sms, slices, slice_k, "split a product that fills the device");
                    if (slices * m * n >= 16 * 4096 * int64_t{sms}) fail(m, n, k, sms, slices, slice_k, "partials past the bound");
                }
            }
        }
    }
    // the case it is for: MFB's projection, 64 x 2048 -> 6000, on an H100
    int slices = 0;
    int64_t slice_k = 0;
    ++checks;
    if (mmf_gemm_k_split(64, 6000, 2048, 132, &slices, &slice_k) != MMF_OK || slices < 2)
        fail(64, 6000, 2048, 132, slices, slice_k, "MFB's projection left whole");
    std::printf("gemm k split rule: %d shapes, %d failed\n", checks, failures);
    return failures;
}

int check_sum_slices() {
    int failures = 0, checks = 0;
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 64, 1000}, {16, 7, 13}, {2, 1, 4097}, {5, 0, 8}, {1, 3, 0}};
    for (const auto& shape : shapes) {
        for (const bool with_bias : {false, true}) {
            const int slices = static_cast<int>(shape[0]);
            const int64_t rows = shape[1], cols = shape[2], count = rows * cols;
            std::vector<float> partials(slices * count), bias(cols);
            for (float& v : partials) v = u(rng) * 1000.f;
            for (float& v : bias) v = u(rng);
            float *dp = upload(partials), *db = upload(bias), *dout = upload(std::vector<float>(count));
            MMF_OK_(mmf_sum_slices(dp, slices, rows, cols, with_bias ? db : nullptr, dout, nullptr));
            const std::vector<float> got = download(dout, count);
            ++checks;
            for (int64_t i = 0; i < count; ++i) {
                double want = with_bias ? bias[i % cols] : 0, magnitude = std::fabs(want);
                for (int s = 0; s < slices; ++s) want += partials[s * count + i], magnitude += std::fabs(partials[s * count + i]);
                if (std::fabs(got[i] - want) > 1e-6 * magnitude && failures++ < 10)
                    std::printf("  FAIL sum slices %d x [%lld, %lld]%s at %lld: got %.8g, want %.8g\n", slices,
                                (long long)rows, (long long)cols, with_bias ? " + bias" : "", (long long)i, got[i], want);
            }
            for (float* p : {dp, db, dout}) CUDA_OK(cudaFree(p));
        }
    }
    std::printf("sum of slices: %d cases, %d failed values\n", checks, failures);
    return failures;
}
