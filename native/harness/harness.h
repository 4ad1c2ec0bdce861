// harness.h - what the harness's sources share: fatal-error checks and the random source.
#pragma once

#include <cuda_runtime.h>

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
