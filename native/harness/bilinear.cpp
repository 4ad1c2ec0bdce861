// bilinear.cpp - checks the bilinear family's kernels (mmf_finish_rows, mmf_bilinear_row_dots, mmf_sketch,
// mmf_spectrum_product, mmf_outer_sketch, mmf_compact_pool, mmf_compact_exact_rows, mmf_factorized_sums)
// and the elementwise ones (mmf_activate, mmf_layer_norm, mmf_softmax) against double-precision references
// on random and edge-case sizes: empty and single rows, rows longer than one block's chunk, odd d. The
// one-kernel compact pooling is also run on the host, one lane at a time (check_compact_pool_emulated).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compact_fft.h"
#include "harness.h"

namespace {

std::vector<float> random_floats(size_t n, float spread = 1.f) {
    std::uniform_real_distribution<float> u(-spread, spread);
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
}

// Counts a failure (and prints it) when |got - want| > tolerance.
bool close(double got, double want, double tolerance, const std::string& what, int& failures) {
    if (std::fabs(got - want) <= tolerance) return true;
    if (failures++ < 10) std::printf("  FAIL %s: got %.8g, want %.8g (tolerance %.3g)\n", what.c_str(), got, want, tolerance);
    return false;
}

// The hash inverted: bucket u holds units[offsets[u] .. offsets[u + 1]) in increasing order.
void invert(const std::vector<int>& hash, int d, std::vector<int>& offsets, std::vector<int>& units) {
    offsets.assign(d + 1, 0);
    for (int h : hash) offsets[h + 1]++;
    for (int u = 0; u < d; ++u) offsets[u + 1] += offsets[u];
    std::vector<int> next(offsets.begin(), offsets.end() - 1);
    units.assign(hash.size(), 0);
    for (size_t i = 0; i < hash.size(); ++i) units[next[hash[i]]++] = static_cast<int>(i);
}

// A random count sketch of dim units into d buckets: hash, sign, and the hash inverted.
void random_sketch(int dim, int d, std::vector<int>& hash, std::vector<float>& sign, std::vector<int>& offsets,
                   std::vector<int>& units) {
    hash.resize(dim);
    sign.resize(dim);
    for (int i = 0; i < dim; ++i) {
        hash[i] = static_cast<int>(uniform(0, d - 1));
        sign[i] = uniform(0, 1) ? 1.f : -1.f;
    }
    invert(hash, d, offsets, units);
}

void check_finish(int& failures, int& checks) {
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {2, 8192}, {2, 8193}, {5, 20000}, {0, 5}, {4, 0}, {1, 100003}};
    // A spread of 3e20 squares past float's range: the norm must still come out right.
    for (const float spread : {3.f, 3e20f}) {
        for (const auto& shape : shapes) {
            for (int mode = 0; mode < 4; ++mode) {
                const int64_t rows = shape[0], cols = shape[1];
                const int root = mode & 1, l2 = mode >> 1;
                const float scale = 0.37f, eps = 1e-6f;
                std::vector<float> z = random_floats(rows * cols, spread);
                if (rows * cols > 2) z[1] = 0.f;  // zeros stay zero
                float* dz = upload(z);
                const size_t bytes = mmf_finish_rows_workspace_bytes(rows, cols);
                void* ws = nullptr;
                CUDA_OK(cudaMalloc(&ws, std::max<size_t>(bytes, 4)));
                MMF_OK_(mmf_finish_rows(dz, rows, cols, scale, root, eps, l2, ws, bytes, nullptr));
                std::vector<float> got = download(dz, rows * cols);
                for (int64_t r = 0; r < rows; ++r) {
                    std::vector<double> v(cols);
                    double squares = 0;
                    for (int64_t c = 0; c < cols; ++c) {
                        double x = static_cast<double>(z[r * cols + c]) * scale;
                        if (root) x = x > 0 ? std::sqrt(x + eps) : x < 0 ? -std::sqrt(-x + eps) : 0;
                        v[c] = x;
                        squares += x * x;
                    }
                    const double divide = l2 ? std::max(std::sqrt(squares), 1e-12) : 1;
                    for (int64_t c = 0; c < cols; ++c) {
                        close(got[r * cols + c], v[c] / divide, 1e-5 * std::fabs(v[c] / divide) + 1e-7,
                              "finish rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) + " mode=" +
                                  std::to_string(mode) + " spread=" + std::to_string(spread),
                              failures);
                    }
                }
                ++checks;
                CUDA_OK(cudaFree(dz));
                CUDA_OK(cudaFree(ws));
            }
        }
    }
}

void check_row_dots(int& failures, int& checks) {
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {64, 17, 100}, {7, 3, 513}, {0, 4, 4}, {5, 0, 3}, {4, 6, 0}};
    for (const auto& s : shapes) {
        const int rows = s[0], outs = s[1], in1 = s[2];
        const int64_t ldy = outs + 3;
        std::vector<float> x1 = random_floats(static_cast<size_t>(rows) * in1), t = random_floats(static_cast<size_t>(rows) * outs * in1);
        std::vector<float> bias = random_floats(outs), y(static_cast<size_t>(rows) * ldy, 42.f);
        float *dx = upload(x1), *dt = upload(t), *db = upload(bias), *dy = upload(y);
        MMF_OK_(mmf_bilinear_row_dots(dx, dt, db, dy, ldy, rows, outs, in1, nullptr));
        std::vector<float> got = download(dy, y.size());
        for (int r = 0; r < rows; ++r) {
            for (int64_t k = 0; k < ldy; ++k) {
                double want = 42, magnitude = 0;
                if (k < outs) {
                    want = bias[k];
                    for (int i = 0; i < in1; ++i) {
                        const double term = static_cast<double>(x1[r * in1 + i]) * t[(static_cast<size_t>(r) * outs + k) * in1 + i];
                        want += term;
                        magnitude += std::fabs(term);
                    }
                }
                close(got[r * ldy + k], want, 1e-5 * (magnitude + std::fabs(want)) + 1e-7,
                      "row_dots " + std::to_string(rows) + "x" + std::to_string(outs) + "x" + std::to_string(in1), failures);
            }
        }
        ++checks;
        for (float* p : {dx, dt, db, dy}) CUDA_OK(cudaFree(p));
    }
}

void check_sketches(int& failures, int& checks) {
    const int shapes[][4] = {{1, 1, 1, 1}, {3, 20, 11, 30}, {64, 2048, 300, 16000}, {2, 7, 9, 49}, {0, 5, 5, 8}, {5, 40, 3, 7}};
    for (const auto& s : shapes) {
        const int items = s[0], dim1 = s[1], dim2 = s[2], d = s[3];
        std::vector<int> h1, h2, offsets1, units1, offsets2, units2;
        std::vector<float> s1, s2;
        random_sketch(dim1, d, h1, s1, offsets1, units1);
        random_sketch(dim2, d, h2, s2, offsets2, units2);
        int *dh1 = upload(h1), *do1 = upload(offsets1), *du1 = upload(units1), *do2 = upload(offsets2), *du2 = upload(units2);
        float *ds1 = upload(s1), *ds2 = upload(s2);

        // the sketch of x [items, dim1]
        std::vector<float> x = random_floats(static_cast<size_t>(items) * dim1);
        float *dx = upload(x), *dout = upload(std::vector<float>(static_cast<size_t>(items) * d));
        MMF_OK_(mmf_sketch(dx, items, dim1, do1, du1, ds1, d, dout, nullptr));
        std::vector<float> got = download(dout, static_cast<size_t>(items) * d);
        for (int it = 0; it < items; ++it) {
            std::vector<double> want(d), magnitude(d);
            for (int i = 0; i < dim1; ++i) {
                want[h1[i]] += s1[i] * static_cast<double>(x[static_cast<size_t>(it) * dim1 + i]);
                magnitude[h1[i]] += std::fabs(x[static_cast<size_t>(it) * dim1 + i]);
            }
            for (int u = 0; u < d; ++u) close(got[static_cast<size_t>(it) * d + u], want[u], 1e-5 * magnitude[u] + 1e-7, "sketch d=" + std::to_string(d), failures);
        }
        ++checks;

        // the sketch of outer products z [items, dim1, dim2]
        std::vector<float> z = random_floats(static_cast<size_t>(items) * dim1 * dim2);
        float* dz = upload(z);
        MMF_OK_(mmf_outer_sketch(dz, items, dim1, dim2, dh1, ds1, do2, du2, ds2, d, dout, nullptr));
        got = download(dout, static_cast<size_t>(items) * d);
        for (int it = 0; it < items; ++it) {
            std::vector<double> want(d), magnitude(d);
            for (int i = 0; i < dim1; ++i) {
                for (int j = 0; j < dim2; ++j) {
                    const double term = s1[i] * s2[j] * static_cast<double>(z[(static_cast<size_t>(it) * dim1 + i) * dim2 + j]);
                    want[(h1[i] + h2[j]) % d] += term;
                    magnitude[(h1[i] + h2[j]) % d] += std::fabs(term);
                }
            }
            for (int u = 0; u < d; ++u) close(got[static_cast<size_t>(it) * d + u], want[u], 1e-5 * magnitude[u] + 1e-7, "outer sketch d=" + std::to_string(d), failures);
        }
        ++checks;
        for (void* p : std::vector<void*>{dh1, do1, du1, do2, du2, ds1, ds2, dx, dout, dz}) CUDA_OK(cudaFree(p));
    }
}

// ---- compact pooling in one kernel: the same cases on the GPU and in the host emulation ----------------

// One lane that runs every item of a step in turn: compact_fft.h's loops on the host.
struct SerialLanes {
    int first() const { return 0; }
    int step() const { return 1; }
    void sync() const {}
    bool any(bool v) const { return v; }
    double sum(double v) const { return v; }
};

// Runs compact pooling of p.batch samples (host arrays in p) into p.out.
using CompactRunner = std::function<void(const mmf::CompactPoolParams& p)>;

// Lengths with factors 2, 3 and 5 only, from 1 to the 16,000 of MCB; the stage orders each takes differ.
const int kCompactLengths[] = {1, 2, 3, 4, 5, 6, 8, 9, 12, 15, 16, 25, 30, 32, 45, 64, 81, 100, 125, 128, 243, 250,
                               480, 1000, 2400, 4096, 6000, 8192, 16000};

// Compact pooling of random x [batch, dim_x] and y [batch, dim_y] at length d, finished each way, against
// the convolution of the sketches in double; sample 1 of 3 gets a NaN or an infinity in x or y.
void check_compact_case(int d, int dim_x, int dim_y, const CompactRunner& run, int& failures, int& checks) {
    const int batch = 3;
    std::vector<int> hx, hy, offsets_x, units_x, offsets_y, units_y;
    std::vector<float> sx, sy;
    random_sketch(dim_x, d, hx, sx, offsets_x, units_x);
    random_sketch(dim_y, d, hy, sy, offsets_y, units_y);
    std::vector<float> x = random_floats(static_cast<size_t>(batch) * dim_x), y = random_floats(static_cast<size_t>(batch) * dim_y);
    const bool poisoned = dim_x + dim_y > 0;
    if (poisoned) {
        const bool in_x = dim_y == 0 || (dim_x > 0 && uniform(0, 1));
        const float bad = uniform(0, 1) ? NAN : -INFINITY;
        if (in_x) x[dim_x + uniform(0, dim_x - 1)] = bad; else y[dim_y + uniform(0, dim_y - 1)] = bad;
    }
    // (scale, signed square root, eps, l2)
    const struct { float scale; int root; float eps; int l2; } finishes[] = {{1, 0, 0, 0}, {0.25f, 1, 1e-3f, 0}, {1, 0, 0, 1}, {2, 1, 0, 1}};
    for (const auto& f : finishes) {
        std::vector<float> out(static_cast<size_t>(batch) * d, 7.f);
        const mmf::CompactPoolParams p{x.data(), y.data(), offsets_x.data(), units_x.data(), sx.data(), offsets_y.data(),
                                       units_y.data(), sy.data(), out.data(), batch, dim_x, dim_y, d, f.scale, f.eps,
                                       f.root, f.l2};
        run(p);
        const std::string what = "compact pool d=" + std::to_string(d) + " dims " + std::to_string(dim_x) + "x" +
                                 std::to_string(dim_y) + " scale=" + std::to_string(f.scale) + " root=" +
                                 std::to_string(f.root) + " l2=" + std::to_string(f.l2);
        for (int b = 0; b < batch; ++b) {
            const float* got = out.data() + static_cast<size_t>(b) * d;
            if (poisoned && b == 1) {
                for (int k = 0; k < d; ++k) {
                    if (!std::isnan(got[k])) {
                        if (failures++ < 10) std::printf("  FAIL %s: sample with a non-finite input, [%d] = %g\n", what.c_str(), k, got[k]);
                        break;
                    }
                }
                continue;
            }
            // the sketches in double, their circular convolution over the non-zero buckets
            // (and each bucket's sum of magnitudes, which bounds the rounding of its float sum)
            std::vector<double> a(d), c(d), conv(d), mass_a(d), mass_c(d);
            for (int i = 0; i < dim_x; ++i) {
                a[hx[i]] += sx[i] * static_cast<double>(x[static_cast<size_t>(b) * dim_x + i]);
                mass_a[hx[i]] += std::fabs(x[static_cast<size_t>(b) * dim_x + i]);
            }
            for (int j = 0; j < dim_y; ++j) {
                c[hy[j]] += sy[j] * static_cast<double>(y[static_cast<size_t>(b) * dim_y + j]);
                mass_c[hy[j]] += std::fabs(y[static_cast<size_t>(b) * dim_y + j]);
            }
            double norm_a = 0, norm_c = 0, norm_mass_a = 0, norm_mass_c = 0;
            std::vector<int> used;
            for (int v = 0; v < d; ++v) {
                norm_a += a[v] * a[v];
                norm_c += c[v] * c[v];
                norm_mass_a += mass_a[v] * mass_a[v];
                norm_mass_c += mass_c[v] * mass_c[v];
                if (c[v] != 0) used.push_back(v);
            }
            for (int u = 0; u < d; ++u) {
                if (a[u] == 0) continue;
                for (int v : used) conv[(u + v) % d] += a[u] * c[v];
            }
            // Rounding adds up like a random walk: an FFT's is relative to the norms of its operands, spread
            // over d outputs, the sketches' reaches the convolution through the norms of their buckets'
            // magnitudes; about fp32's epsilon times sqrt(log2 d) of each. 50 times that unit: over seven seeds
            // of these cases on the host the largest error was 8 units (sparse sketches, where a few products
            // make an output), the others' largest about 2.
            const double unit = 6e-8 * std::sqrt(1 + std::log2(static_cast<double>(d))) / std::sqrt(static_cast<double>(d)) *
                                (std::sqrt(norm_a * norm_c) + std::sqrt(norm_mass_a * norm_c) + std::sqrt(norm_a * norm_mass_c));
            std::vector<double> finished(d);
            double squares = 0;
            for (int k = 0; k < d; ++k) {
                const double v = f.scale * conv[k];
                finished[k] = f.root ? (v > 0 ? 1 : v < 0 ? -1 : 0) * std::sqrt(std::fabs(v) + f.eps) : v;
                squares += finished[k] * finished[k];
            }
            const double norm = f.l2 ? std::max(std::sqrt(squares), 1e-12) : 1.0;
            for (int k = 0; k < d; ++k) {
                // compared before the root and the normalisation, which would magnify rounding near 0
                double g = got[k] * norm;
                if (f.root) g = (g > 0 ? 1 : g < 0 ? -1 : 0) * (g * g - f.eps);
                const double want = f.scale * conv[k];  // and the output's own rounding, squared by the root
                close(g, want, 50 * (f.scale * unit + 3e-7 * (std::fabs(want) + f.eps)), what, failures);
            }
        }
        ++checks;
    }
}

void check_compact_cases(const CompactRunner& run, int& failures, int& checks) {
    for (int d : kCompactLengths) {
        const int wide = d >= 4096 ? 2048 : static_cast<int>(uniform(0, 300));
        check_compact_case(d, wide, d >= 4096 ? 768 : static_cast<int>(uniform(0, 300)), run, failures, checks);
    }
    check_compact_case(30, 0, 5, run, failures, checks);  // an empty x: all zeros, unnormalised
    check_compact_case(16, 1, 1, run, failures, checks);
}

void check_compact_pool(int& failures, int& checks) {
    int supported = 0;
    MMF_OK_(mmf_compact_pool_supported(16000, &supported));
    if (!supported) {
        std::printf("  FAIL compact pool: d = 16000 not supported on this device\n");
        ++failures;
    }
    for (int d : {7, 97, 8191, 1 << 20}) {  // a prime factor above 5, or past shared memory
        MMF_OK_(mmf_compact_pool_supported(d, &supported));
        const float one = 1.f;
        const int status = mmf_compact_pool(&one, &one, 1, 1, 1, &d, &d, &one, &d, &d, &one, d, 1.f, 0, 0.f, 0,
                                            const_cast<float*>(&one), nullptr);
        if (supported || status != MMF_ERR_UNSUPPORTED) {
            std::printf("  FAIL compact pool: d = %d supported = %d, status %d\n", d, supported, status);
            ++failures;
        }
        ++checks;
    }
    check_compact_cases([](const mmf::CompactPoolParams& p) {
        const size_t dx = static_cast<size_t>(p.dim_x), dy = static_cast<size_t>(p.dim_y), b = static_cast<size_t>(p.batch);
        const float *x = upload(std::vector<float>(p.x, p.x + b * dx)), *y = upload(std::vector<float>(p.y, p.y + b * dy));
        const int *ox = upload(std::vector<int>(p.offsets_x, p.offsets_x + p.d + 1)), *ux = upload(std::vector<int>(p.units_x, p.units_x + dx));
        const int *oy = upload(std::vector<int>(p.offsets_y, p.offsets_y + p.d + 1)), *uy = upload(std::vector<int>(p.units_y, p.units_y + dy));
        const float *sx = upload(std::vector<float>(p.sign_x, p.sign_x + dx)), *sy = upload(std::vector<float>(p.sign_y, p.sign_y + dy));
        float* out = upload(std::vector<float>(b * p.d, 7.f));
        MMF_OK_(mmf_compact_pool(x, y, p.batch, p.dim_x, p.dim_y, ox, ux, sx, oy, uy, sy, p.d, p.scale, p.signed_sqrt, p.eps,
                                 p.l2, out, nullptr));
        const std::vector<float> got = download(out, b * p.d);
        std::copy(got.begin(), got.end(), p.out);
        for (const void* q : std::vector<const void*>{x, y, ox, ux, oy, uy, sx, sy, out}) CUDA_OK(cudaFree(const_cast<void*>(q)));
    }, failures, checks);
}

void check_spectrum_product(int& failures, int& checks) {
    for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{513 * 64}}) {
        std::vector<float> a = random_floats(2 * n), b = random_floats(2 * n);
        float *da = upload(a), *db = upload(b), *dp = upload(std::vector<float>(2 * n));
        MMF_OK_(mmf_spectrum_product(da, db, dp, n, 0.25f, nullptr));
        std::vector<float> got = download(dp, 2 * n);
        for (int64_t i = 0; i < n; ++i) {
            const double re = (static_cast<double>(a[2 * i]) * b[2 * i] - static_cast<double>(a[2 * i + 1]) * b[2 * i + 1]) * 0.25;
            const double im = (static_cast<double>(a[2 * i]) * b[2 * i + 1] + static_cast<double>(a[2 * i + 1]) * b[2 * i]) * 0.25;
            close(got[2 * i], re, 1e-6, "spectrum product re", failures);
            close(got[2 * i + 1], im, 1e-6, "spectrum product im", failures);
        }
        ++checks;
        for (float* p : {da, db, dp}) CUDA_OK(cudaFree(p));
    }
}

void check_factorized(int& failures, int& checks) {
    const int shapes[][4] = {{1, 1, 1, 1}, {4, 1, 30, 5}, {3, 2, 20, 4}, {5, 3, 21, 7}, {64, 1, 6000, 5}, {0, 1, 10, 5}};
    for (const auto& s : shapes) {
        for (int activation = 0; activation < 3; ++activation) {
            const int rows = s[0], stages = s[1], units = s[2], factor = s[3], pooled = units / factor;
            const size_t width = static_cast<size_t>(stages) * units;
            std::vector<float> x = random_floats(rows * width), y = random_floats(rows * width);
            float *dx = upload(x), *dy = upload(y), *dout = upload(std::vector<float>(static_cast<size_t>(rows) * stages * pooled));
            MMF_OK_(mmf_factorized_sums(dx, dy, rows, stages, units, factor, activation, dout, nullptr));
            std::vector<float> got = download(dout, static_cast<size_t>(rows) * stages * pooled);
            auto act = [activation](double v) { return activation == 1 ? (v > 0 ? v : 0) : activation == 2 ? std::tanh(v) : v; };
            for (int r = 0; r < rows; ++r) {
                std::vector<double> e(units, 1.0);
                for (int st = 0; st < stages; ++st) {
                    for (int u = 0; u < units; ++u) e[u] *= act(x[r * width + st * units + u]) * act(y[r * width + st * units + u]);
                    for (int p = 0; p < pooled; ++p) {
                        double want = 0, magnitude = 0;
                        for (int t = 0; t < factor; ++t) { want += e[p * factor + t]; magnitude += std::fabs(e[p * factor + t]); }
                        close(got[(static_cast<size_t>(r) * stages + st) * pooled + p], want, 1e-5 * magnitude + 1e-7,
                              "factorized stages=" + std::to_string(stages) + " factor=" + std::to_string(factor), failures);
                    }
                }
            }
            ++checks;
            for (float* p : {dx, dy, dout}) CUDA_OK(cudaFree(p));
        }
    }
}

void check_exact_rows(int& failures, int& checks) {
    const int64_t samples = 6, x_len = 300, y_len = 7, d = 11;
    std::vector<float> x = random_floats(samples * x_len), y = random_floats(samples * y_len), out = random_floats(samples * d);
    x[1 * x_len + 299] = NAN;                                      // sample 1: NaN in x
    y[3 * y_len] = INFINITY;                                       // sample 3: infinity in y
    std::fill(x.begin() + 2 * x_len, x.begin() + 3 * x_len, 0.f);  // sample 2: x all zeros
    std::fill(y.begin() + 4 * y_len, y.begin() + 5 * y_len, 0.f);  // sample 4: y all zeros
    std::fill(x.begin() + 5 * x_len, x.begin() + 6 * x_len, 0.f);  // sample 5: x all zeros, NaN in y
    y[5 * y_len + 6] = NAN;
    float *dx = upload(x), *dy = upload(y), *dout = upload(out);
    MMF_OK_(mmf_compact_exact_rows(dx, x_len, dy, y_len, dout, samples, d, nullptr));
    std::vector<float> got = download(dout, out.size());
    for (int64_t b = 0; b < samples; ++b) {
        for (int64_t k = 0; k < d; ++k) {
            const float g = got[b * d + k];
            const bool nan = b == 1 || b == 3 || b == 5, zero = b == 2 || b == 4;
            if (nan != std::isnan(g) || (zero && g != 0.f) || (!nan && !zero && g != out[b * d + k])) {
                if (failures++ < 10) std::printf("  FAIL exact rows: sample %lld value %lld is %g\n", (long long)b, (long long)k, g);
            }
        }
    }
    ++checks;
    for (float* p : {dx, dy, dout}) CUDA_OK(cudaFree(p));
}

// Activations, layer norm and softmax (elementwise.cu) against double references.
void check_elementwise(int& failures, int& checks) {
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {5, 1000}, {2, 4097}, {0, 5}, {7, 0}};
    for (const auto& shape : shapes) {
        const int64_t rows = shape[0], dim = shape[1], n = rows * dim;
        std::vector<float> x = random_floats(n, 8.f), w = random_floats(dim), b = random_floats(dim);
        const std::vector<float> around_zero = x;
        float* raw = upload(around_zero);  // activations see values around 0, where they bend
        for (float& v : x) v += 100.f;  // layer norm sees an offset that a one-pass variance would cancel
        float *dx = upload(x), *dw = upload(w), *db = upload(b), *dout = upload(std::vector<float>(n));
        for (int act = 0; act < 4; ++act) {
            MMF_OK_(mmf_activate(raw, n, act, dout, nullptr));
            std::vector<float> got = download(dout, n);
            for (int64_t i = 0; i < n; ++i) {
                const double v = around_zero[i];
                const double want = act == 1 ? (v > 0 ? v : 0) : act == 2 ? std::tanh(v) : act == 3 ? 1 / (1 + std::exp(-v)) : v;
                close(got[i], want, 2e-6 * std::fabs(want) + 1e-30, "activation " + std::to_string(act), failures);
            }
        }
        MMF_OK_(mmf_layer_norm(dx, rows, static_cast<int>(dim), dw, db, 1e-5f, dout, nullptr));
        std::vector<float> got = download(dout, n);
        for (int64_t r = 0; r < rows; ++r) {
            double mean = 0, variance = 0;
            for (int64_t i = 0; i < dim; ++i) mean += x[r * dim + i];
            mean /= dim;
            for (int64_t i = 0; i < dim; ++i) variance += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
            const double inverse = 1 / std::sqrt(variance / dim + 1e-5);
            for (int64_t i = 0; i < dim; ++i) {
                const double want = (x[r * dim + i] - mean) * inverse * w[i] + b[i];
                close(got[r * dim + i], want, 1e-4 * (1 + std::fabs(want)), "layer norm dim=" + std::to_string(dim), failures);
            }
        }
        MMF_OK_(mmf_softmax(dx, rows, static_cast<int>(dim), dout, nullptr));
        got = download(dout, n);
        for (int64_t r = 0; r < rows; ++r) {
            double max = -INFINITY, sum = 0;
            for (int64_t i = 0; i < dim; ++i) max = std::max(max, static_cast<double>(x[r * dim + i]));
            for (int64_t i = 0; i < dim; ++i) sum += std::exp(x[r * dim + i] - max);
            for (int64_t i = 0; i < dim; ++i) {
                const double want = std::exp(x[r * dim + i] - max) / sum;
                close(got[r * dim + i], want, 1e-5 * want + 1e-9, "softmax dim=" + std::to_string(dim), failures);
            }
        }
        checks += 3;
        for (float* p : {raw, dx, dw, db, dout}) CUDA_OK(cudaFree(p));
    }
}

}  // namespace

int check_bilinear() {
    int failures = 0, checks = 0;
    check_finish(failures, checks);
    check_row_dots(failures, checks);
    check_sketches(failures, checks);
    check_compact_pool(failures, checks);
    check_spectrum_product(failures, checks);
    check_factorized(failures, checks);
    check_exact_rows(failures, checks);
    check_elementwise(failures, checks);
    std::printf("bilinear family and elementwise kernels: %d cases, %d failed values\n", checks, failures);
    return failures;
}

int check_compact_pool_emulated() {
    int failures = 0, checks = 0;
    for (int d : {0, 7, 14, 97, 8191}) {
        mmf::FftPlan plan;
        if (mmf::make_fft_plan(d, &plan)) {
            std::printf("  FAIL fft plan: d = %d has a plan\n", d);
            ++failures;
        }
    }
    check_compact_cases([](const mmf::CompactPoolParams& p) {
        mmf::FftPlan plan;
        if (!mmf::make_fft_plan(p.d, &plan)) {
            std::printf("  FAIL fft plan: none for d = %d\n", p.d);
            std::exit(1);
        }
        std::vector<float2> z(p.d);
        for (int64_t b = 0; b < p.batch; ++b) mmf::compact_pool_sample(SerialLanes{}, z.data(), plan, p, b);
    }, failures, checks);
    std::printf("compact pooling in one block, emulated on the host: %d cases, %d failed values\n", checks, failures);
    return failures;
}
