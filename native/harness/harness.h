// harness.h - what the harness's sources share: fatal-error checks and the random source.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "mmfuse.h"

#define CUDA_OK(call)                                                                                            \
    do {                                                                                                         \
        cudaError_t e_ = (call);                                                                                 \
        if (e_ != cudaSuccess) {                                                                                 \
            std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorName(e_));             \
            std::exit(1);                                                                                        \
        }                                                                                                        \
    } while (0)

#define MMF_OK_(call)                                                                                            \
    do {                                                                                                         \
        int s_ = (call);                                                                                         \
        if (s_ != MMF_OK) {                                                                                      \
            std::fprintf(stderr, "%s:%d %s: status %d: %s\n", __FILE__, __LINE__, #call, s_, mmf_last_error());  \
            std::exit(1);                                                                                        \
        }                                                                                                        \
    } while (0)

// One seeded source for every check, so a failure reproduces.
extern std::mt19937_64 rng;

inline int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// A device copy of v (at least 4 bytes, so that empty arrays still have an address); freed by the caller.
template <typename T>
T* upload(const std::vector<T>& v) {
    T* p = nullptr;
    CUDA_OK(cudaMalloc(&p, std::max<size_t>(v.size() * sizeof(T), 4)));
    if (!v.empty()) CUDA_OK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return p;
}

// n floats from the device, once the work queued before has finished.
inline std::vector<float> download(const float* p, size_t n) {
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> v(n);
    if (n > 0) CUDA_OK(cudaMemcpy(v.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return v;
}

// Attention: random and edge-case shapes against a double-precision reference (attention.cpp).
// Returns the number of failed checks; prints one line per failure and a summary.
int check_attention();

// The bilinear family's kernels against double-precision references (bilinear.cpp). Returns the number
// of failed values.
int check_bilinear();

// Compact pooling in one block (kernels/compact_fft.h) run on the host one lane at a time, against the same
// references as on the GPU: its index arithmetic, checked without a GPU (bilinear.cpp). Returns the number
// of failed values.
int check_compact_pool_emulated();

// The C ABI's argument checks, without a GPU (arguments.cpp). Returns the number of failed checks.
int check_arguments();

// The split of a product along k (products.cpp): the rule, without a GPU (returns the number of failed
// shapes), and the sum of the partials against a double sum (returns the number of failed values).
int check_gemm_split();
int check_sum_slices();
