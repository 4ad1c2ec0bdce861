// harness.cpp - checks every kernel of libmmfuse against a CPU reference on a GPU, then times it.
// Needs no Java: build with native/build.sh (or `make -C native harness`), run target/native/mmfuse_harness.
// Exit status: 0 when every check passed (or no GPU is present: it then says so and checks nothing),
// 1 on any mismatch or CUDA error. `--host-only` stops after the checks that need no GPU, `--checks-only`
// after the kernel checks (no timing: the run bench/gpu/sanitizer.sh gives compute-sanitizer).
//
// Sections: helpers, host checks, concat/split checks, timing, main; the attention checks are in
// attention.cpp (attention is timed beside PyTorch by bench/gpu/attention.py).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "kernels.h"
#include "mmfuse.h"

// ---------------------------------------------------------------------------------------------------------------------
// helpers

// One concat problem: rows x sum(widths); `misalign` shifts every device pointer by that many floats.
struct Problem {
    int64_t rows;
    std::vector<int64_t> widths;
    int misalign;
};

static std::string describe(const Problem& p) {
    std::string s = "rows=" + std::to_string(p.rows) + " pieces=" + std::to_string(p.widths.size()) + " widths=[";
    for (size_t i = 0; i < p.widths.size() && i < 6; ++i) s += (i ? "," : "") + std::to_string(p.widths[i]);
    if (p.widths.size() > 6) s += ",...";
    return s + "] misalign=" + std::to_string(p.misalign);
}

// ---------------------------------------------------------------------------------------------------------------------
// host checks (need no GPU): the magic numbers of FastDivider, against plain division

static bool check_fast_divider() {
    auto divide = [](const mmf::FastDivider& f, uint32_t n) {  // the device's __umulhi, on the host
        return static_cast<uint32_t>(((static_cast<uint64_t>(n) * f.magic >> 32) + n) >> f.shift);
    };
    int checks = 0;
    std::vector<uint32_t> divisors = {1, 2, 3, 4, 5, 7, 8, 9, 255, 256, 257, 1000, 4095, 4096, 4097, 0x7fffffffu};
    for (int i = 0; i < 2000; ++i) divisors.push_back(static_cast<uint32_t>(uniform(1, 0x7fffffff)));
    for (uint32_t d : divisors) {
        const mmf::FastDivider f = mmf::FastDivider::of(d);
        std::vector<uint32_t> numerators = {0, 1, d - 1, d, d + 1, 2 * d - 1, 0x7fffffffu, 0x7ffffffeu};
        for (int i = 0; i < 500; ++i) numerators.push_back(static_cast<uint32_t>(uniform(0, 0x7fffffff)));
        for (uint32_t n : numerators) {
            if (n > 0x7fffffffu) continue;  // the divider's domain is n < 2^31
            ++checks;
            if (divide(f, n) != n / d) {
                std::printf("FAIL fast divider: %u / %u gave %u\n", n, d, divide(f, n));
                return false;
            }
        }
    }
    std::printf("fast divider: %d checks passed\n", checks);
    return true;
}

// ---------------------------------------------------------------------------------------------------------------------
// concat / split checks: the kernel's output must equal the CPU reference exactly (it is a copy)

std::mt19937_64 rng(20261122);

static bool check_concat_split(const Problem& p) {
    const int n = static_cast<int>(p.widths.size());
    int64_t whole_width = 0;
    for (int64_t w : p.widths) whole_width += w;
    std::uniform_real_distribution<float> value(-100.f, 100.f);

    std::vector<std::vector<float>> host_pieces(n);
    std::vector<float*> device_pieces(n);
    std::vector<float*> allocations;
    for (int i = 0; i < n; ++i) {
        host_pieces[i].resize(p.rows * p.widths[i]);
        for (float& x : host_pieces[i]) x = value(rng);
        float* d;
        CUDA_OK(cudaMalloc(&d, (host_pieces[i].size() + p.misalign + 1) * sizeof(float)));
        allocations.push_back(d);
        device_pieces[i] = d + p.misalign;
        CUDA_OK(cudaMemcpy(device_pieces[i], host_pieces[i].data(), host_pieces[i].size() * sizeof(float),
                           cudaMemcpyHostToDevice));
    }
    std::vector<float> expected(p.rows * whole_width);
    for (int64_t r = 0, off = 0; r < p.rows; ++r, off = 0)
        for (int i = 0; i < n; off += p.widths[i], ++i)
            std::copy_n(host_pieces[i].data() + r * p.widths[i], p.widths[i], expected.data() + r * whole_width + off);

    float* whole_alloc;
    CUDA_OK(cudaMalloc(&whole_alloc, (expected.size() + p.misalign + 1) * sizeof(float)));
    float* whole = whole_alloc + p.misalign;
    CUDA_OK(cudaMemset(whole, 0xff, expected.size() * sizeof(float)));  // NaN fill: untouched cells show
    void* workspace;
    const size_t workspace_bytes = mmf_concat_workspace_bytes(n);
    CUDA_OK(cudaMalloc(&workspace, std::max<size_t>(workspace_bytes, 1)));

    bool ok = true;
    MMF_OK_(mmf_concat_f32(n, device_pieces.data(), p.widths.data(), p.rows, whole, whole_width, workspace,
                           workspace_bytes, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> got(expected.size());
    CUDA_OK(cudaMemcpy(got.data(), whole, got.size() * sizeof(float), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < got.size() && ok; ++i) {
        if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0) {
            std::printf("FAIL concat %s: element %zu is %g, expected %g\n", describe(p).c_str(), i, got[i], expected[i]);
            ok = false;
        }
    }

    // split the whole back into cleared pieces: each must equal its original
    for (int i = 0; i < n; ++i) CUDA_OK(cudaMemset(device_pieces[i], 0xff, host_pieces[i].size() * sizeof(float)));
    MMF_OK_(mmf_split_f32(n, device_pieces.data(), p.widths.data(), p.rows, whole, whole_width, workspace,
                          workspace_bytes, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    for (int i = 0; i < n && ok; ++i) {
        std::vector<float> piece(host_pieces[i].size());
        CUDA_OK(cudaMemcpy(piece.data(), device_pieces[i], piece.size() * sizeof(float), cudaMemcpyDeviceToHost));
        if (std::memcmp(piece.data(), host_pieces[i].data(), piece.size() * sizeof(float)) != 0) {
            std::printf("FAIL split %s: piece %d differs\n", describe(p).c_str(), i);
            ok = false;
        }
    }
    for (float* d : allocations) CUDA_OK(cudaFree(d));
    CUDA_OK(cudaFree(whole_alloc));
    CUDA_OK(cudaFree(workspace));
    return ok;
}

static std::vector<Problem> check_problems() {
    std::vector<Problem> problems = {
        {1, {1}, 0},
        {0, {3, 5}, 0},                  // no rows
        {7, {0, 0}, 0},                  // no columns
        {5, {4, 0, 8}, 0},               // an empty piece in the middle
        {3, {3, 5}, 0},                  // small slices, unaligned widths
        {64, {64, 128, 4096}, 0},        // aligned: 16-byte path
        {64, {64, 128, 4096}, 1},        // same, pointers off by one float: scalar path
        {33, {12, 7, 16}, 0},            // mixed: some pieces vectorisable, offsets break it
        {1, {1 << 20, 3}, 0},            // one long row
        {100003, {1}, 0},                // many rows of one float
    };
    Problem many{9, {}, 0};
    for (int i = 0; i < 3000; ++i) many.widths.push_back(uniform(0, 9));
    problems.push_back(many);
    for (int t = 0; t < 40; ++t) {
        Problem p{uniform(0, 300), {}, static_cast<int>(uniform(0, 3))};
        const int n = static_cast<int>(uniform(1, t % 5 == 0 ? 600 : 8));
        for (int i = 0; i < n; ++i) p.widths.push_back(uniform(0, t % 2 ? 9 : 2100));
        problems.push_back(p);
    }
    return problems;
}

// ---------------------------------------------------------------------------------------------------------------------
// timing: median of repeated launches with L2 flushed before each, beside cudaMemcpy device-to-device

// Writes a buffer larger than L2 (50 MB on an H100) before each timed launch, so that no launch finds
// its inputs cached by the previous one.
static void flush_l2() {
    static void* buffer = nullptr;
    static const size_t bytes = size_t{256} << 20;
    if (buffer == nullptr) CUDA_OK(cudaMalloc(&buffer, bytes));
    CUDA_OK(cudaMemsetAsync(buffer, 0, bytes));
}

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static void time_concat(const char* name, int64_t rows, const std::vector<int64_t>& widths, float copy_gbps) {
    const int n = static_cast<int>(widths.size());
    int64_t whole_width = 0;
    for (int64_t w : widths) whole_width += w;
    std::vector<float*> pieces(n);
    for (int i = 0; i < n; ++i) CUDA_OK(cudaMalloc(&pieces[i], std::max<int64_t>(rows * widths[i], 1) * sizeof(float)));
    float* whole;
    CUDA_OK(cudaMalloc(&whole, rows * whole_width * sizeof(float)));
    void* workspace;
    const size_t workspace_bytes = mmf_concat_workspace_bytes(n);
    CUDA_OK(cudaMalloc(&workspace, workspace_bytes));
    cudaEvent_t start, stop;
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    std::vector<float> ms;
    for (int rep = 0; rep < 30; ++rep) {
        flush_l2();
        CUDA_OK(cudaEventRecord(start));
        MMF_OK_(mmf_concat_f32(n, pieces.data(), widths.data(), rows, whole, whole_width, workspace, workspace_bytes,
                               nullptr));
        CUDA_OK(cudaEventRecord(stop));
        CUDA_OK(cudaEventSynchronize(stop));
        float t;
        CUDA_OK(cudaEventElapsedTime(&t, start, stop));
        if (rep >= 5) ms.push_back(t);
    }
    const double bytes = 2.0 * rows * whole_width * sizeof(float);  // read + write
    const double gbps = bytes / (median(ms) * 1e-3) / 1e9;
    std::printf("| %-34s | %10.1f | %8.1f | %6.2f |\n", name, median(ms) * 1e3, gbps, gbps / copy_gbps);
    for (float* p : pieces) CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(whole));
    CUDA_OK(cudaFree(workspace));
    CUDA_OK(cudaEventDestroy(start));
    CUDA_OK(cudaEventDestroy(stop));
}

// Device-to-device copy bandwidth (read + write bytes per second) on a buffer far larger than L2.
static float copy_bandwidth_gbps() {
    const size_t bytes = size_t{1} << 30;
    void *a, *b;
    CUDA_OK(cudaMalloc(&a, bytes));
    CUDA_OK(cudaMalloc(&b, bytes));
    cudaEvent_t start, stop;
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    std::vector<float> ms;
    for (int rep = 0; rep < 20; ++rep) {
        CUDA_OK(cudaEventRecord(start));
        CUDA_OK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
        CUDA_OK(cudaEventRecord(stop));
        CUDA_OK(cudaEventSynchronize(stop));
        float t;
        CUDA_OK(cudaEventElapsedTime(&t, start, stop));
        if (rep >= 3) ms.push_back(t);
    }
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaFree(b));
    CUDA_OK(cudaEventDestroy(start));
    CUDA_OK(cudaEventDestroy(stop));
    return static_cast<float>(2.0 * bytes / (median(ms) * 1e-3) / 1e9);
}

// ---------------------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
    std::printf("mmfuse %d harness\n", mmf_version());
    if (!check_fast_divider()) return 1;
    if (check_arguments() != 0) return 1;
    if (check_compact_pool_emulated() != 0) return 1;
    if (check_gemm_split() != 0) return 1;
    if (argc > 1 && std::strcmp(argv[1], "--host-only") == 0) return 0;  // the sanitized build's run
    int count = 0;
    if (mmf_device_count(&count) != MMF_OK || count == 0) {
        std::printf("no CUDA device (%s): nothing checked\n", count == 0 && mmf_last_cuda_error() == 0
                                                                   ? "none found"
                                                                   : mmf_cuda_error_name(mmf_last_cuda_error()));
        return 0;
    }
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);

    int failures = 0, checks = 0;
    for (const Problem& p : check_problems()) {
        ++checks;
        failures += check_concat_split(p) ? 0 : 1;
    }
    std::printf("concat/split: %d passed, %d failed\n", checks - failures, failures);
    failures += check_attention();
    failures += check_bilinear();
    failures += check_sum_slices();
    if (argc > 1 && std::strcmp(argv[1], "--checks-only") == 0) return failures == 0 ? 0 : 1;  // compute-sanitizer

    const float copy_gbps = copy_bandwidth_gbps();
    std::printf("\ncudaMemcpy device-to-device: %.1f GB/s (read + write)\n\n", copy_gbps);
    std::printf("| %-34s | %10s | %8s | %6s |\n", "concat shape", "median us", "GB/s", "/copy");
    std::printf("|%s|%s|%s|%s|\n", std::string(36, '-').c_str(), std::string(12, '-').c_str(),
                std::string(10, '-').c_str(), std::string(8, '-').c_str());
    time_concat("B=256 [2048|768] (image|text)", 256, {2048, 768}, copy_gbps);
    time_concat("B=256 x8 inputs of 4096", 256, std::vector<int64_t>(8, 4096), copy_gbps);
    time_concat("rows=65536 [3|5] small slices", 65536, {3, 5}, copy_gbps);
    time_concat("rows=65536 x4 of 64", 65536, std::vector<int64_t>(4, 64), copy_gbps);
    time_concat("rows=1 x2 of 2^26 (axis 0)", 1, {1 << 26, 1 << 26}, copy_gbps);
    time_concat("rows=4096 x2048 inputs of 8", 4096, std::vector<int64_t>(2048, 8), copy_gbps);
    time_concat("rows=8192 x4 of 8192 (1 GiB out)", 8192, std::vector<int64_t>(4, 8192), copy_gbps);
    time_concat("rows=2^24 [3|5] (512 MiB out)", 1 << 24, {3, 5}, copy_gbps);
    return failures == 0 ? 0 : 1;
}
