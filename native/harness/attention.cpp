// attention.cpp - checks mmf_attention against a double-precision reference on edge-case and random
// shapes: every dtype, masks, broadcast biases, causal (bottom-right), forced and chosen split-KV,
// lse and weights, odd head dimensions, misaligned pointers (the SIMT path for 16-bit types).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"

namespace {

struct AttentionProblem {
    int dtype, batch, queries, keys, heads, head_dim, value_dim;
    bool tf32;      // fp32 inputs may run in TF32
    bool mask, causal, lse, weights;
    int bias;       // 0 none, 1 [B, H, Lq, Lk], 2 [Lq, Lk] (broadcast over B and H), 3 [B, 1, 1, Lk]
    int splits;     // 0: the library's choice
    int misalign;   // 1: every device pointer moved by one element; 2: only the output's
    float q_scale;  // spread of q: larger gives peakier softmax rows
    bool narrow;    // MMF_ATTENTION_ROWS_64: at most 64 query rows a tensor-core block
};

std::string describe(const AttentionProblem& p) {
    static const char* types[] = {"f32", "bf16", "f16"};
    char s[256];
    std::snprintf(s, sizeof s, "%s%s B=%d Lq=%d Lk=%d H=%d Dh=%d Dv=%d mask=%d causal=%d bias=%d splits=%d lse=%d w=%d "
                  "misalign=%d%s", types[p.dtype], p.tf32 ? "(tf32)" : "", p.batch, p.queries, p.keys, p.heads, p.head_dim, p.value_dim, p.mask,
                  p.causal, p.bias, p.splits, p.lse, p.weights, p.misalign, p.narrow ? " rows<=64" : "");
    return s;
}

size_t element_bytes(int dtype) { return dtype == MMF_F32 ? 4 : 2; }

// Rounds to the dtype and back, so the reference sees exactly the values the kernel reads.
float round_to(int dtype, float x) {
    if (dtype == MMF_BF16) return __bfloat162float(__float2bfloat16_rn(x));
    if (dtype == MMF_F16) return __half2float(__float2half_rn(x));
    return x;
}

std::vector<unsigned char> encode(int dtype, const std::vector<float>& x) {
    std::vector<unsigned char> bytes(x.size() * element_bytes(dtype));
    for (size_t i = 0; i < x.size(); ++i) {
        if (dtype == MMF_F32) {
            std::memcpy(&bytes[i * 4], &x[i], 4);
        } else if (dtype == MMF_BF16) {
            const __nv_bfloat16 h = __float2bfloat16_rn(x[i]);
            std::memcpy(&bytes[i * 2], &h, 2);
        } else {
            const __half h = __float2half_rn(x[i]);
            std::memcpy(&bytes[i * 2], &h, 2);
        }
    }
    return bytes;
}

float decode(int dtype, const unsigned char* at) {
    if (dtype == MMF_F32) {
        float f;
        std::memcpy(&f, at, 4);
        return f;
    }
    if (dtype == MMF_BF16) {
        __nv_bfloat16 h;
        std::memcpy(&h, at, 2);
        return __bfloat162float(h);
    }
    __half h;
    std::memcpy(&h, at, 2);
    return __half2float(h);
}

// A device copy of `bytes`, `misalign` bytes past a fresh allocation's start.
struct DeviceBuffer {
    void* base = nullptr;
    unsigned char* at = nullptr;
    DeviceBuffer(size_t bytes, size_t misalign) {
        CUDA_OK(cudaMalloc(&base, bytes + misalign + 16));
        at = static_cast<unsigned char*>(base) + misalign;
    }
    ~DeviceBuffer() { cudaFree(base); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

std::vector<float> random_values(size_t n, float spread) {
    std::uniform_real_distribution<float> value(-spread, spread);
    std::vector<float> x(n);
    for (float& v : x) v = value(rng);
    return x;
}

bool check(const AttentionProblem& p) {
    const int B = p.batch, Lq = p.queries, Lk = p.keys, H = p.heads, Dh = p.head_dim, Dv = p.value_dim;
    std::vector<float> q = random_values(size_t(B) * Lq * H * Dh, p.q_scale);
    std::vector<float> k = random_values(size_t(B) * Lk * H * Dh, 1.f);
    std::vector<float> v = random_values(size_t(B) * Lk * H * Dv, 1.f);
    for (auto* x : {&q, &k, &v})
        for (float& e : *x) e = round_to(p.dtype, e);
    std::vector<float> mask(size_t(B) * Lk, 1.f);
    if (p.mask) {
        for (float& m : mask) m = uniform(0, 3) == 0 ? 0.f : 1.f;
        if (B > 1) std::fill(mask.begin() + Lk, mask.begin() + 2 * Lk, 0.f);  // batch 1 attends nothing
    }
    int64_t bias_strides[4] = {0, 0, 0, 0};
    size_t bias_size = 0;
    if (p.bias == 1) bias_strides[3] = 1, bias_strides[2] = Lk, bias_strides[1] = int64_t{Lq} * Lk,
                     bias_strides[0] = int64_t{H} * Lq * Lk, bias_size = size_t(B) * H * Lq * Lk;
    if (p.bias == 2) bias_strides[3] = 1, bias_strides[2] = Lk, bias_size = size_t(Lq) * Lk;
    if (p.bias == 3) bias_strides[3] = 1, bias_strides[0] = Lk, bias_size = size_t(B) * Lk;
    std::vector<float> bias = random_values(bias_size, 2.f);
    const double scale = 1.0 / std::sqrt(std::max(Dh, 1));

    // reference
    const size_t rows = size_t(B) * H * Lq;
    std::vector<double> out_ref(size_t(B) * Lq * H * Dv), lse_ref(rows), w_ref(rows * Lk);
    double logit_magnitude = 0, v_max = 1e-30;
    for (float x : v) v_max = std::max(v_max, double(std::fabs(x)));
    std::vector<double> s(Lk);
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
            for (int i = 0; i < Lq; ++i) {
                double max = -INFINITY;
                for (int j = 0; j < Lk; ++j) {
                    double dot = 0, magnitude = 0;
                    for (int d = 0; d < Dh; ++d) {
                        const double term = double(q[((size_t(b) * Lq + i) * H + h) * Dh + d]) *
                                            k[((size_t(b) * Lk + j) * H + h) * Dh + d];
                        dot += term, magnitude += std::fabs(term);
                    }
                    logit_magnitude = std::max(logit_magnitude, scale * magnitude);
                    const bool masked = mask[size_t(b) * Lk + j] == 0.f || (p.causal && j > i + Lk - Lq);
                    const double added = p.bias ? bias[b * bias_strides[0] + h * bias_strides[1] + i * bias_strides[2] +
                                                       j * bias_strides[3]]
                                                : 0.0;
                    s[j] = masked ? -INFINITY : scale * dot + added;
                    max = std::max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < Lk; ++j) sum += max == -INFINITY ? 0 : std::exp(s[j] - max);
                const size_t row = (size_t(b) * H + h) * Lq + i;
                lse_ref[row] = sum == 0 ? -INFINITY : max + std::log(sum);
                for (int j = 0; j < Lk; ++j) {
                    const double w = sum == 0 ? 0 : std::exp(s[j] - max) / sum;
                    w_ref[row * Lk + j] = w;
                    for (int d = 0; d < Dv; ++d)
                        out_ref[((size_t(b) * Lq + i) * H + h) * Dv + d] += w * v[((size_t(b) * Lk + j) * H + h) * Dv + d];
                }
            }

    // device
    const size_t eb = element_bytes(p.dtype), shift = size_t(p.misalign == 1) * eb, out_shift = size_t(p.misalign != 0) * eb;
    DeviceBuffer dq(q.size() * eb, shift), dk(k.size() * eb, shift), dv(v.size() * eb, shift);
    DeviceBuffer dout(out_ref.size() * eb, out_shift), dmask(mask.size() * 4, 0), dbias(bias.size() * 4, 0);
    DeviceBuffer dlse(rows * 4, 0), dw(rows * Lk * 4, 0);
    CUDA_OK(cudaMemcpy(dq.at, encode(p.dtype, q).data(), q.size() * eb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dk.at, encode(p.dtype, k).data(), k.size() * eb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dv.at, encode(p.dtype, v).data(), v.size() * eb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dmask.at, mask.data(), mask.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dbias.at, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dout.at, 0xff, out_ref.size() * eb));  // NaN: a cell the kernel misses shows
    CUDA_OK(cudaMemset(dlse.at, 0xff, rows * 4));
    CUDA_OK(cudaMemset(dw.at, 0xff, rows * Lk * 4));
    const int flags = (p.tf32 ? MMF_ATTENTION_TF32 : 0) | (p.narrow ? MMF_ATTENTION_ROWS_64 : 0);
    const size_t workspace_bytes =
        mmf_attention_workspace_bytes(p.dtype, flags, B, Lq, Lk, H, Dv, p.weights && !p.lse, p.splits);
    DeviceBuffer workspace(workspace_bytes, 0);
    MMF_OK_(mmf_attention(p.dtype, flags, B, Lq, Lk, H, Dh, Dv, dq.at, dk.at, dv.at,
                          p.mask ? reinterpret_cast<float*>(dmask.at) : nullptr,
                          p.bias ? reinterpret_cast<float*>(dbias.at) : nullptr, p.bias ? bias_strides : nullptr,
                          static_cast<float>(scale), p.causal, dout.at, p.lse ? reinterpret_cast<float*>(dlse.at) : nullptr,
                          p.weights ? reinterpret_cast<float*>(dw.at) : nullptr, p.splits, workspace.at,
                          workspace_bytes, nullptr));
    CUDA_OK(cudaDeviceSynchronize());

    // compare: tolerances from the precision of what the kernel rounds (P and the output for 16-bit types)
    // fp32: score errors grow with the logits' magnitude; 16-bit: P and the output are rounded once
    // each (2^-9 relative for bf16, 2^-12 for fp16), the scores are exact products summed in fp32.
    // TF32: products of 10-bit mantissas (inputs truncated), so the scores carry about 2^-10 of the
    // logits' magnitude, and P is rounded to 2^-11.
    const double out_tolerance = p.tf32                ? 2e-3 * (1 + logit_magnitude) * v_max
                                 : p.dtype == MMF_F32    ? 1e-5 * (1 + logit_magnitude) * v_max
                                 : p.dtype == MMF_BF16 ? 8e-3 * v_max
                                                       : 2e-3 * v_max;
    const double lse_tolerance = (p.tf32 ? 2e-3 : 1e-4) * (1 + logit_magnitude);
    std::vector<unsigned char> out_bytes(out_ref.size() * eb);
    CUDA_OK(cudaMemcpy(out_bytes.data(), dout.at, out_bytes.size(), cudaMemcpyDeviceToHost));
    double worst = 0;
    for (size_t e = 0; e < out_ref.size(); ++e) {
        const double got = decode(p.dtype, &out_bytes[e * eb]), error = std::fabs(got - out_ref[e]);
        if (!(error <= out_tolerance)) {
            std::printf("FAIL attention %s: out[%zu] = %g, expected %g (tolerance %g)\n", describe(p).c_str(), e, got,
                        out_ref[e], out_tolerance);
            return false;
        }
        worst = std::max(worst, error);
    }
    if (p.lse) {
        std::vector<float> lse(rows);
        CUDA_OK(cudaMemcpy(lse.data(), dlse.at, rows * 4, cudaMemcpyDeviceToHost));
        for (size_t r = 0; r < rows; ++r) {
            const bool both_empty = std::isinf(lse_ref[r]) && std::isinf(lse[r]) && lse[r] < 0;
            if (!both_empty && !(std::fabs(lse[r] - lse_ref[r]) <= lse_tolerance)) {
                std::printf("FAIL attention %s: lse[%zu] = %g, expected %g\n", describe(p).c_str(), r, lse[r], lse_ref[r]);
                return false;
            }
        }
    }
    if (p.weights) {
        std::vector<float> w(rows * Lk);
        CUDA_OK(cudaMemcpy(w.data(), dw.at, w.size() * 4, cudaMemcpyDeviceToHost));
        for (size_t e = 0; e < w.size(); ++e) {
            if (!(std::fabs(w[e] - w_ref[e]) <= lse_tolerance)) {
                std::printf("FAIL attention %s: weights[%zu] = %g, expected %g\n", describe(p).c_str(), e, w[e],
                            w_ref[e]);
                return false;
            }
        }
    }
    return true;
}

std::vector<AttentionProblem> problems() {
    //                 dtype    B   Lq    Lk  H   Dh   Dv  tf32   mask  causal lse  weights bias splits mis q_scale
    std::vector<AttentionProblem> list = {
        {MMF_F32,  1,   1,    1, 1,   1,   1, false, false, false, true, true,  0, 0, 0, 1.f, false},
        {MMF_F32,  2,   5,    0, 2,  16,  16, false, false, false, true, false, 0, 0, 0, 1.f, false},   // no keys: zeros
        {MMF_BF16, 2,   5,    0, 2,  64,  64, false, false, false, true, false, 0, 0, 0, 1.f, false},
        {MMF_F32,  3,  17,   70, 2,  33,  17, false, true,  false, true, true,  1, 0, 0, 1.f, false},   // odd widths
        {MMF_F32,  2,  70,   20, 3,  64,  64, false, false, true,  true, true,  0, 0, 0, 1.f, false},   // causal, Lq > Lk
        {MMF_F32,  1, 130,  130, 2,  32,  32, false, false, true,  true, false, 2, 0, 0, 3.f, false},   // causal square
        {MMF_F32,  2,   9,  300, 1, 256, 256, false, true,  false, true, true,  3, 0, 0, 1.f, false},   // widest heads
        {MMF_F32,  1,  16, 1000, 2, 128, 128, false, false, false, true, false, 0, 0, 0, 4.f, false},   // split-KV chosen
        {MMF_F32,  2,   3,  300, 2,  64,  48, false, true,  true,  true, true,  1, 7, 0, 1.f, false},   // forced splits
        {MMF_BF16, 2,  64,  256, 4,  64,  64, false, false, false, true, false, 0, 1, 0, 1.f, false},   // tensor cores
        {MMF_BF16, 2, 100,  190, 2, 128, 128, false, true,  true,  true, true,  1, 0, 0, 2.f, false},
        {MMF_BF16, 1,  16, 2000, 2,  64, 128, false, true,  false, true, false, 3, 0, 0, 1.f, false},   // split-KV, Dv > Dh
        {MMF_F16,  3,  33,   97, 2,  32,  32, false, false, true,  true, true,  2, 3, 0, 1.f, false},
        {MMF_F16,  2,  65,  129, 3, 128,  64, false, true,  false, false, true, 0, 0, 0, 2.f, false},
        {MMF_BF16, 2,  20,   50, 2,  64,  64, false, false, false, true, false, 0, 0, 1, 1.f, false},   // misaligned: SIMT
        {MMF_F16,  1,   7,   77, 2,  40,  24, false, true,  false, true, true,  0, 0, 0, 1.f, false},   // Dh % 8 == 0, not 32
        {MMF_BF16, 1,   7,   77, 2,  36,  36, false, false, false, true, false, 0, 0, 0, 1.f, false},   // Dh % 8 != 0: SIMT
        {MMF_F32,  2,  64,  256, 4,  64,  64, true,  false, false, true, false, 0, 1, 0, 1.f, false},   // TF32
        {MMF_F32,  2, 100,  190, 2, 128, 128, true,  true,  true,  true, true,  1, 0, 0, 2.f, false},
        {MMF_F32,  1,  16, 2000, 2,  64, 128, true,  true,  false, true, false, 3, 0, 0, 1.f, false},   // TF32 split-KV
        {MMF_F32,  3,   9,   97, 2,  32,  32, true,  false, true,  true, true,  2, 3, 0, 1.f, false},
        {MMF_F32,  2,  20,   50, 2,  64,  64, true,  false, false, true, false, 0, 0, 1, 1.f, false},   // misaligned: SIMT
        // 16-bit, Lq >= 128: blocks of 128 rows, two 16-row tiles a warp
        {MMF_BF16, 2, 200,  190, 2, 128, 128, false, true,  true,  true, true,  1, 0, 0, 2.f, false},   // a partial 2nd block
        {MMF_F16,  1, 300,   77, 3,  64,  64, false, false, false, true, false, 2, 0, 0, 3.f, false},   // ragged Lk
        {MMF_BF16, 1, 129, 1000, 2,  32,  32, false, false, false, true, false, 0, 0, 0, 1.f, false},   // split-KV chosen
        {MMF_F16,  2, 256,  256, 2, 128,  64, false, true,  false, true, true,  3, 5, 0, 1.f, false},   // forced splits
        {MMF_F16,  1, 140,   50, 1,  40,  24, false, true,  false, true, true,  0, 0, 0, 1.f, false},   // widths padded to 64
        {MMF_BF16, 3, 128,    1, 2,  64,  64, false, true,  false, true, true,  0, 0, 0, 1.f, false},   // one key, masked or not
        {MMF_BF16, 1, 160,  130, 2,  64,  64, false, false, true,  true, false, 0, 0, 0, 4.f, true},    // rows <= 64
        {MMF_F16,  1, 130,   70, 2,  64,  64, false, true,  false, true, false, 0, 0, 2, 1.f, false},   // out misaligned: SIMT
        {MMF_BF16, 1, 150,   90, 2,  64,  64, false, true,  false, true, true,  1, 0, 0, 2.f, false},   // 2nd tile of a warp partly past Lq
        {MMF_F16,  1, 300,   70, 2, 128, 128, false, false, true,  true, false, 0, 0, 0, 1.f, false},   // a block with no key tile
        {MMF_BF16, 1, 256,  640, 2,  64,  64, false, true,  true,  true, false, 0, 4, 0, 1.f, false},   // causal, forced splits
        {MMF_BF16, 1, 200, 2000, 1,  64,  64, false, false, false, true, false, 0, 0, 1, 1.f, false},   // SIMT's 32-row blocks split
    };
    const int dims[] = {1, 8, 16, 24, 32, 40, 64, 72, 96, 128, 130, 256};
    for (int t = 0; t < 60; ++t) {
        AttentionProblem p{};
        p.dtype = static_cast<int>(uniform(0, 2));
        p.tf32 = p.dtype == MMF_F32 && uniform(0, 1);
        p.batch = static_cast<int>(uniform(1, 3));
        p.queries = static_cast<int>(uniform(1, t % 4 == 0 ? 300 : 40));
        p.keys = static_cast<int>(uniform(0, t % 3 == 0 ? 700 : 130));
        p.heads = static_cast<int>(uniform(1, 3));
        p.head_dim = dims[uniform(0, 11)];
        p.value_dim = uniform(0, 2) == 0 ? dims[uniform(0, 11)] : p.head_dim;
        p.mask = uniform(0, 1), p.causal = uniform(0, 2) == 0, p.lse = uniform(0, 1), p.weights = uniform(0, 3) == 0;
        p.bias = static_cast<int>(uniform(0, 3));
        p.splits = uniform(0, 2) == 0 ? static_cast<int>(uniform(1, 6)) : 0;
        p.misalign = uniform(0, 4) == 0 ? 1 : 0;
        p.q_scale = uniform(0, 1) ? 1.f : 3.f;
        p.narrow = uniform(0, 3) == 0;
        list.push_back(p);
    }
    return list;
}

}  // namespace

int check_attention() {
    int failures = 0, checks = 0;
    for (const AttentionProblem& p : problems()) {
        ++checks;
        failures += check(p) ? 0 : 1;
    }
    std::printf("attention: %d passed, %d failed\n", checks - failures, failures);
    return failures;
}
