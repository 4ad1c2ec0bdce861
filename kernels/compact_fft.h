// compact_fft.h - compact bilinear pooling of one sample inside one thread block: both count sketches,
// one FFT, the spectrum product, one inverse FFT and the finishing, all in shared memory, so that a
// sample costs one read of its inputs and one write of its output instead of the eight launches and
// the B x d temporaries of the cuFFT route.
//
// The algorithm, for a transform length n whose prime factors are 2, 3 and 5:
//   1. z[u] = sketch_x(x)[u] + i sketch_y(y)[u]: two real sequences in one complex one, each first scaled
//      by a power of two to a norm in [0.5, 1), so that neither is lost in the other's rounding;
//   2. Z = DFT(z) by decimation in frequency, in place: stage s takes radix r_s and leaves the spectrum in
//      mixed-radix digit-reversed order (see mirror_position); nothing reorders it;
//   3. P[k] = A[k] B[k], with A = DFT(sketch_x) and B = DFT(sketch_y) taken out of Z by its symmetry:
//      A[k] = (Z[k] + conj Z[-k]) / 2, B[k] = (Z[k] - conj Z[-k]) / 2i. Elementwise, so in the same
//      scrambled order; each thread takes the pair of positions holding k and -k;
//   4. the unnormalised inverse DFT of P by the same stages undone in reverse order (decimation in time),
//      which takes the scrambled order back to the natural one; its real part over n is the circular
//      convolution of the two sketches, which is compact bilinear pooling;
//   5. finishing: scale, signed square root and L2 normalisation, as launch_finish_rows does; a sample with
//      a NaN or an infinity among its inputs gets a NaN row, as the CPU backends define it.
//
// Every step is a loop over independent items (buckets, butterflies, pairs, outputs) that the block's
// threads share, with a barrier between steps. The loops are written once against a `Lanes` policy: on
// the GPU (bilinear.cu) the block's threads and __syncthreads; on the host (the harness's emulation, built
// by g++) one lane that runs every item in turn, which gives the same result, since no step's items
// depend on each other. That emulation checks the index arithmetic here on machines with no GPU.
#pragma once

#include <cuda_runtime.h>  // float2 and make_float2, on the host too
#include <float.h>
#include <math.h>

#include "kernels.h"

#ifdef __CUDACC__
#define MMF_FFT_FN __device__ __forceinline__
#else
#define MMF_FFT_FN inline
#endif

namespace mmf {

// The radices of a transform of length n, in stage order: powers of two first, in radix 8 (then one 4 or 2),
// then 3s, then 5s. The last stages work on the shortest strides, where an odd radix spreads a warp's
// accesses over the shared-memory banks. Stage s works on sub-transforms of span[s] * radix[s] values
// span[s] apart, span[s] = n / (radix[0] ... radix[s]); the same span is the place value of digit s of a
// frequency in the scrambled order the forward transform leaves. Dividing by it takes a multiply-high.
struct FftPlan {
    int n;
    int stages;
    int radix[kFftMaxStages];
    int span[kFftMaxStages];
    FastDivider by_span[kFftMaxStages];
};

// The plan for length n >= 1, or false when n has a prime factor above 5.
inline bool make_fft_plan(int n, FftPlan* plan) {
    if (n < 1) return false;
    plan->n = n;
    plan->stages = 0;
    int rest = n;
    auto take = [&](int radix) {
        while (rest % radix == 0 && plan->stages < kFftMaxStages) {
            rest /= radix;
            plan->radix[plan->stages] = radix;
            plan->span[plan->stages] = rest;  // n over the radices so far
            plan->by_span[plan->stages] = FastDivider::of(static_cast<uint32_t>(rest));
            ++plan->stages;
        }
    };
    take(8);
    take(4);
    take(2);
    take(3);
    take(5);
    return rest == 1;
}

namespace fft {

// i / divider's d, for 0 <= i < 2^31.
MMF_FFT_FN int divide(int i, const FastDivider& by) {
#ifdef __CUDACC__
    return static_cast<int>(by.div(static_cast<uint32_t>(i)));
#else
    return static_cast<int>(((static_cast<uint64_t>(i) * by.magic >> 32) + static_cast<uint32_t>(i)) >> by.shift);
#endif
}

MMF_FFT_FN float2 add(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
MMF_FFT_FN float2 sub(float2 a, float2 b) { return make_float2(a.x - b.x, a.y - b.y); }
MMF_FFT_FN float2 mul(float2 a, float2 b) { return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
MMF_FFT_FN float2 scale(float2 a, float s) { return make_float2(a.x * s, a.y * s); }
// a times i (sign +1) or times -i (sign -1).
MMF_FFT_FN float2 times_i(float2 a, float sign) { return make_float2(-sign * a.y, sign * a.x); }

// exp(sign 2 pi i t / m) for 0 <= t < m.
MMF_FFT_FN float2 root_of_unity(int t, int m, float sign) {
#ifdef __CUDACC__
    float s, c;
    sincospif(2.f * static_cast<float>(t) / static_cast<float>(m), &s, &c);
    return make_float2(c, sign * s);
#else
    const double angle = 2 * M_PI * t / m;
    return make_float2(static_cast<float>(cos(angle)), static_cast<float>(sign * sin(angle)));
#endif
}

// In place: v[k] = sum over j of v[j] exp(sign 2 pi i j k / R), for R in {2, 3, 4, 5, 8}.
template <int R>
MMF_FFT_FN void small_dft(float2* v, float sign);

template <>
MMF_FFT_FN void small_dft<2>(float2* v, float) {
    const float2 a = v[0], b = v[1];
    v[0] = add(a, b);
    v[1] = sub(a, b);
}

template <>
MMF_FFT_FN void small_dft<3>(float2* v, float sign) {
    const float c = -0.5f, s = 0.86602540378443865f;  // cos and sin of 2 pi / 3
    const float2 sum = add(v[1], v[2]), mid = add(v[0], scale(sum, c)), turn = times_i(scale(sub(v[1], v[2]), s), sign);
    v[0] = add(v[0], sum);
    v[1] = add(mid, turn);
    v[2] = sub(mid, turn);
}

template <>
MMF_FFT_FN void small_dft<4>(float2* v, float sign) {
    const float2 a = add(v[0], v[2]), b = sub(v[0], v[2]), c = add(v[1], v[3]), d = times_i(sub(v[1], v[3]), sign);
    v[0] = add(a, c);
    v[1] = add(b, d);
    v[2] = sub(a, c);
    v[3] = sub(b, d);
}

template <>
MMF_FFT_FN void small_dft<5>(float2* v, float sign) {
    // cos and sin of 2 pi / 5 and 4 pi / 5
    const float c1 = 0.30901699437494742f, c2 = -0.80901699437494742f;
    const float s1 = 0.95105651629515357f, s2 = 0.58778525229247313f;
    const float2 a1 = add(v[1], v[4]), b1 = sub(v[1], v[4]), a2 = add(v[2], v[3]), b2 = sub(v[2], v[3]);
    const float2 m1 = add(v[0], add(scale(a1, c1), scale(a2, c2)));
    const float2 m2 = add(v[0], add(scale(a1, c2), scale(a2, c1)));
    const float2 t1 = times_i(add(scale(b1, s1), scale(b2, s2)), sign);
    const float2 t2 = times_i(sub(scale(b1, s2), scale(b2, s1)), sign);
    v[0] = add(v[0], add(a1, a2));
    v[1] = add(m1, t1);
    v[4] = sub(m1, t1);
    v[2] = add(m2, t2);
    v[3] = sub(m2, t2);
}

template <>
MMF_FFT_FN void small_dft<8>(float2* v, float sign) {
    // two DFTs of 4 over the even and odd terms, joined by the roots exp(sign 2 pi i k / 8)
    float2 even[4] = {v[0], v[2], v[4], v[6]}, odd[4] = {v[1], v[3], v[5], v[7]};
    small_dft<4>(even, sign);
    small_dft<4>(odd, sign);
    const float h = 0.70710678118654752f;
    odd[1] = scale(add(odd[1], times_i(odd[1], sign)), h);   // times (1 + sign i) / sqrt 2
    odd[2] = times_i(odd[2], sign);
    odd[3] = scale(sub(times_i(odd[3], sign), odd[3]), h);   // times (-1 + sign i) / sqrt 2
    for (int k = 0; k < 4; ++k) {
        v[k] = add(even[k], odd[k]);
        v[k + 4] = sub(even[k], odd[k]);
    }
}

// Butterfly j of a stage of radix R over sub-transforms of length `span` * R: the R values `span` apart
// from base = (j / span) * span * R + j % span. Forward (decimation in frequency): DFT of the R values, then
// output k times exp(-2 pi i (j % span) k / (span R)). Inverse: the same undone, the conjugate twiddles first.
template <int R>
MMF_FFT_FN void butterfly(float2* z, int j, int span, const FastDivider& by_span, bool inverse) {
    const int group = divide(j, by_span), offset = j - group * span;
    float2* base = z + group * span * R + offset;
    const float sign = inverse ? 1.f : -1.f;
    float2 v[R];
    for (int k = 0; k < R; ++k) v[k] = base[k * span];
    if (!inverse) small_dft<R>(v, sign);
    if (offset != 0) {
        const float2 w = root_of_unity(offset, span * R, sign);
        float2 wk = w;
        for (int k = 1; k < R; ++k) {
            v[k] = mul(v[k], wk);
            wk = mul(wk, w);
        }
    }
    if (inverse) small_dft<R>(v, sign);
    for (int k = 0; k < R; ++k) base[k * span] = v[k];
}

template <class Lanes, int R>
MMF_FFT_FN void stage(const Lanes& lanes, float2* z, const FftPlan& plan, int s, bool inverse) {
    for (int j = lanes.first(); j < plan.n / R; j += lanes.step()) butterfly<R>(z, j, plan.span[s], plan.by_span[s], inverse);
}

template <class Lanes>
MMF_FFT_FN void stage(const Lanes& lanes, float2* z, const FftPlan& plan, int s, bool inverse) {
    switch (plan.radix[s]) {
        case 2: stage<Lanes, 2>(lanes, z, plan, s, inverse); break;
        case 3: stage<Lanes, 3>(lanes, z, plan, s, inverse); break;
        case 4: stage<Lanes, 4>(lanes, z, plan, s, inverse); break;
        case 5: stage<Lanes, 5>(lanes, z, plan, s, inverse); break;
        default: stage<Lanes, 8>(lanes, z, plan, s, inverse); break;
    }
}

// Forward: natural order in, scrambled order out, stages first to last. Inverse (unnormalised): scrambled
// in, natural out, each stage undone, last to first.
template <class Lanes>
MMF_FFT_FN void transform(const Lanes& lanes, float2* z, const FftPlan& plan, bool inverse) {
    for (int t = 0; t < plan.stages; ++t) {
        stage(lanes, z, plan, inverse ? plan.stages - 1 - t : t, inverse);
        lanes.sync();
    }
}

// Where the forward transform leaves frequency n - k (mod n), given where it leaves k. Frequency k's digits
// in the plan's mixed radix, least significant first, are the position's digits in place values span[0],
// span[1], ...; those of -k are the digits' complement plus one: 0 while k's are 0, then r - d once, then
// r - 1 - d.
MMF_FFT_FN int mirror_position(const FftPlan& plan, int position) {
    int mirror = 0;
    bool carry = true;
    for (int s = 0; s < plan.stages; ++s) {
        const int digit = divide(position, plan.by_span[s]), r = plan.radix[s];
        position -= digit * plan.span[s];
        const int negated = carry ? (digit == 0 ? 0 : r - digit) : r - 1 - digit;
        carry = carry && digit == 0;
        mirror += negated * plan.span[s];
    }
    return mirror;
}

}  // namespace fft

MMF_FFT_FN float signed_sqrt(float v, float eps) {
    const float root = sqrtf(fabsf(v) + eps);
    return v > 0.f ? root : v < 0.f ? -root : v;  // 0 stays 0 and NaN stays NaN, as torch.sign gives
}

// 1 / max(norm, 1e-12) for a row's sum of squares, in double (past a norm of 8.5e37 a float inverse is
// subnormal, short of bits); a NaN norm stays NaN, where fmax would drop it for 1e-12.
MMF_FFT_FN double inverse_norm(double squares) {
    const double norm = sqrt(squares);
    return 1.0 / (norm < 1e-12 ? 1e-12 : norm);
}

// Bucket u of a count sketch of one sample's x: sum of sign[i] x[i] over the bucket's units, in their order;
// `bad` is set when one of those x is a NaN or an infinity.
MMF_FFT_FN float sketch_bucket(const float* x, const int* offsets, const int* units, const float* sign, int u,
                               bool& bad) {
    float sum = 0.f;
    for (int e = offsets[u]; e < offsets[u + 1]; ++e) {
        const float v = x[units[e]];
        bad |= !(fabsf(v) <= FLT_MAX);
        sum = fmaf(sign[units[e]], v, sum);
    }
    return sum;
}

// 2^-e for the e that brings a sum of squares' root into [0.5, 1) (an exact scaling), e kept within
// float's range; 1 for a sum that is 0 or not finite.
MMF_FFT_FN float unit_scale(double squares, int& e) {
    e = 0;
    if (squares > 0 && squares <= DBL_MAX) frexp(sqrt(squares), &e);
    e = e < -120 ? -120 : e > 120 ? 120 : e;
    return ldexpf(1.f, -e);
}

// Compact bilinear pooling of sample `sample` (see the top of this file); z: plan.n complex values of
// scratch (the block's shared memory on a GPU).
template <class Lanes>
MMF_FFT_FN void compact_pool_sample(const Lanes& lanes, float2* z, const FftPlan& plan, const CompactPoolParams& p,
                                    int64_t sample) {
    const int n = plan.n;
    const float* x = p.x + sample * p.dim_x;
    const float* y = p.y + sample * p.dim_y;
    bool bad = false;
    double squares_x = 0, squares_y = 0;
    for (int u = lanes.first(); u < n; u += lanes.step()) {
        const float a = sketch_bucket(x, p.offsets_x, p.units_x, p.sign_x, u, bad);
        const float b = sketch_bucket(y, p.offsets_y, p.units_y, p.sign_y, u, bad);
        z[u] = make_float2(a, b);
        squares_x += static_cast<double>(a) * a;
        squares_y += static_cast<double>(b) * b;
    }
    // The transform's rounding is relative to the norm of z = a + ib, and it reaches A and B alike: with
    // ||a|| << ||b||, A would carry an error of ulps of ||b||. Both sketches are brought to norms in
    // [0.5, 1) by powers of two (exactly), and the product scaled back at the end.
    squares_x = lanes.sum(squares_x);
    squares_y = lanes.sum(squares_y);
    int ex = 0, ey = 0;
    const float fx = unit_scale(squares_x, ex), fy = unit_scale(squares_y, ey);
    for (int u = lanes.first(); u < n; u += lanes.step()) z[u] = make_float2(z[u].x * fx, z[u].y * fy);
    lanes.sync();
    fft::transform(lanes, z, plan, false);

    for (int at = lanes.first(); at < n; at += lanes.step()) {
        const int mirror = fft::mirror_position(plan, at);
        if (mirror < at) continue;  // the pair's other position takes it
        const float2 zk = z[at], zm = z[mirror];
        const float2 a = make_float2(0.5f * (zk.x + zm.x), 0.5f * (zk.y - zm.y));
        const float2 b = make_float2(0.5f * (zk.y + zm.y), 0.5f * (zm.x - zk.x));
        const float2 product = fft::mul(a, b);
        z[at] = product;
        if (mirror != at) z[mirror] = make_float2(product.x, -product.y);  // P[-k] = conj P[k]: real sketches
    }
    lanes.sync();
    fft::transform(lanes, z, plan, true);

    // 1 / n: the inverse transform's normalisation; a zero sketch makes every output 0, not rounding
    const double scale = squares_x == 0 || squares_y == 0 ? 0.0 : ldexp(static_cast<double>(p.scale) / n, ex + ey);
    double squares = 0;
    for (int i = lanes.first(); i < n; i += lanes.step()) {
        float v = static_cast<float>(z[i].x * scale);
        if (p.signed_sqrt) v = signed_sqrt(v, p.eps);
        z[i].x = v;
        squares += static_cast<double>(v) * v;
    }
    bad = lanes.any(bad);
    const double inverse = p.l2 ? inverse_norm(lanes.sum(squares)) : 1.0;
    float* out = p.out + sample * n;
    for (int i = lanes.first(); i < n; i += lanes.step()) {
        out[i] = bad ? NAN : p.l2 ? static_cast<float>(z[i].x * inverse) : z[i].x;
    }
}

}  // namespace mmf
