"""The bilinear family on the GPU: MMFuse's composite (the cuBLAS products and cuFFT transforms that its
CUDA backend calls, here through torch, around libmmfuse's kernels through ctypes) beside PyTorch's own
composite, on the same tensors, in one process.

Run by bench/gpu/bilinear.sh, which builds libmmfuse first. For every shape: checks MMFuse's result
against an fp64 computation of the definition, then times both (calls captured in a CUDA graph, median
of 15 replays, spread = min-max) and reports bytes of temporaries. The last lines are the table.
"""
import ctypes
import os
import sys

import torch
import torch.nn.functional as F

from gputime import time_ms

LIB = ctypes.CDLL(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mmfuse-native", "libmmfuse.so"))
P, I64, I32, F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
LIB.mmf_finish_rows_workspace_bytes.restype = ctypes.c_size_t
LIB.mmf_finish_rows_workspace_bytes.argtypes = [I64, I64]
LIB.mmf_finish_rows.argtypes = [P, I64, I64, F32, I32, F32, I32, P, ctypes.c_size_t, P]
LIB.mmf_bilinear_row_dots.argtypes = [P, P, P, P, I64, I64, I32, I32, P]
LIB.mmf_sketch.argtypes = [P, I64, I32, P, P, P, I32, P, P]
LIB.mmf_spectrum_product.argtypes = [P, P, P, I64, F32, P]
LIB.mmf_outer_sketch.argtypes = [P, I64, I32, I32, P, P, P, P, P, I32, P, P]
LIB.mmf_compact_pool.argtypes = [P, P, I64, I32, I32, P, P, P, P, P, P, I32, F32, I32, F32, I32, P, P]
LIB.mmf_factorized_sums.argtypes = [P, P, I64, I32, I32, I32, I32, P, P]
LIB.mmf_gemm_k_split.argtypes = [I64, I64, I64, I32, ctypes.POINTER(I32), ctypes.POINTER(I64)]
LIB.mmf_sum_slices.argtypes = [P, I32, I64, I64, P, P, P]
LIB.mmf_last_error.restype = ctypes.c_char_p


def ok(status):
    if status != 0:
        raise RuntimeError(LIB.mmf_last_error().decode())


def stream():
    return torch.cuda.current_stream().cuda_stream


def finish(z, scale, root, eps, l2, workspace):
    rows, cols = z.shape
    ok(LIB.mmf_finish_rows(z.data_ptr(), rows, cols, scale, root, eps, l2, workspace.data_ptr(),
                           workspace.numel(), stream()))


def workspace_for(rows, cols):
    return torch.empty(max(LIB.mmf_finish_rows_workspace_bytes(rows, cols), 1), dtype=torch.uint8, device="cuda")


def signed_sqrt(z, eps=1e-12):
    return torch.sign(z) * torch.sqrt(torch.abs(z) + eps)


def inverted(h, d):
    """A count sketch's hash as buckets: offsets [d + 1] and units sorted by bucket (int32)."""
    order = torch.argsort(h, stable=True).to(torch.int32)
    counts = torch.bincount(h, minlength=d)
    offsets = torch.zeros(d + 1, dtype=torch.int32, device=h.device)
    offsets[1:] = torch.cumsum(counts, 0).to(torch.int32)
    return offsets, order


def pool_case(b, n, c1, c2):
    x, y = torch.randn(b, n, c1, device="cuda"), torch.randn(b, n, c2, device="cuda")
    z = torch.empty(b, c1 * c2, device="cuda")
    ws = workspace_for(b, c1 * c2)

    def ours():
        torch.bmm(x.transpose(1, 2), y, out=z.view(b, c1, c2))
        finish(z, 1.0 / n, 1, 1e-12, 1, ws)

    def theirs():
        t = torch.bmm(x.transpose(1, 2), y).div(n).view(b, -1)
        return F.normalize(signed_sqrt(t))

    ours()
    want = F.normalize(signed_sqrt(torch.bmm(x.double().transpose(1, 2), y.double()).div(n).view(b, -1)))
    error = (z.double() - want).abs().max().item()
    return ours, theirs, error, ws.numel(), f"pool B={b} N={n} C={c1}x{c2}"


def layer_case(b, c1, c2, k):
    x1, x2 = torch.randn(b, c1, device="cuda"), torch.randn(b, c2, device="cuda")
    w, bias = torch.randn(k, c1, c2, device="cuda") / c1, torch.randn(k, device="cuda")
    t = torch.empty(b, k * c1, device="cuda")
    y = torch.empty(b, k, device="cuda")

    def ours():
        torch.mm(x2, w.view(k * c1, c2).t(), out=t)
        ok(LIB.mmf_bilinear_row_dots(x1.data_ptr(), t.data_ptr(), bias.data_ptr(), y.data_ptr(), k, b, k, c1, stream()))

    def theirs():
        return F.bilinear(x1, x2, w, bias)

    ours()
    want = F.bilinear(x1.double(), x2.double(), w.double(), bias.double())
    error = ((y.double() - want).abs() / (want.abs() + 1)).max().item()
    return ours, theirs, error, t.numel() * 4, f"nn.Bilinear B={b} {c1}x{c2}->{k}"


def compact_case(b, n, c, d):
    x, y = torch.randn(b * n, c, device="cuda"), torch.randn(b * n, c, device="cuda")
    h1, h2 = torch.randint(d, (c,), device="cuda"), torch.randint(d, (c,), device="cuda")
    s1, s2 = torch.randint(2, (c,), device="cuda").float() * 2 - 1, torch.randint(2, (c,), device="cuda").float() * 2 - 1
    o1, u1 = inverted(h1, d)
    o2, u2 = inverted(h2, d)
    h1i = h1.to(torch.int32)
    out = torch.empty(b, d, device="cuda")
    if n == 1:  # one kernel: sketches, transforms, product and finishing (none here, as in the peer) per block
        temporaries = 0

        def ours():
            ok(LIB.mmf_compact_pool(x.data_ptr(), y.data_ptr(), b, c, c, o1.data_ptr(), u1.data_ptr(), s1.data_ptr(),
                                    o2.data_ptr(), u2.data_ptr(), s2.data_ptr(), d, 1.0, 0, 0.0, 0, out.data_ptr(), stream()))
    else:
        z = torch.empty(b, c, c, device="cuda")
        temporaries = z.numel() * 4

        def product():
            torch.bmm(x.view(b, n, c).transpose(1, 2), y.view(b, n, c), out=z)

        def sketch():
            ok(LIB.mmf_outer_sketch(z.data_ptr(), b, c, c, h1i.data_ptr(), s1.data_ptr(), o2.data_ptr(), u2.data_ptr(),
                                    s2.data_ptr(), d, out.data_ptr(), stream()))

        def ours():
            product()
            sketch()

        # where the time goes: the outer products (cuBLAS) and their sketch (our gather kernel)
        print(f"compact B={b} N={n} C={c} d={d}: product {time_ms(product)[0]:.3f} ms, sketch {time_ms(sketch)[0]:.3f} ms")

    def theirs():
        sa = torch.zeros(b * n, d, device="cuda").index_add_(1, h1, x * s1)
        sb = torch.zeros(b * n, d, device="cuda").index_add_(1, h2, y * s2)
        p = torch.fft.rfft(sa) * torch.fft.rfft(sb)
        if n > 1:
            p = p.view(b, n, -1).sum(1)
        return torch.fft.irfft(p, n=d)

    ours()
    sa = torch.zeros(b * n, d, dtype=torch.float64, device="cuda").index_add_(1, h1, x.double() * s1.double())
    sb = torch.zeros(b * n, d, dtype=torch.float64, device="cuda").index_add_(1, h2, y.double() * s2.double())
    p = torch.fft.rfft(sa) * torch.fft.rfft(sb)
    want = torch.fft.irfft(p.view(b, n, -1).sum(1), n=d)
    error = ((out.double() - want).abs().max() / want.abs().max()).item()
    return ours, theirs, error, temporaries, f"compact B={b} N={n} C={c} d={d}"


def cublas():
    """torch's cuBLAS (found in this process's maps once torch has used it) and its handle on the current
    stream: the library and handle MMFuse's Java backend would call through the presets."""
    torch.mm(torch.ones(2, 2, device="cuda"), torch.ones(2, 2, device="cuda"))
    with open("/proc/self/maps") as maps:
        path = next(line.split()[-1] for line in maps if "libcublas.so" in line and "libcublasLt" not in line)
    lib = ctypes.CDLL(path)
    lib.cublasGemmEx.argtypes = [P, I32, I32, I32, I32, I32, P, P, I32, I32, P, I32, I32, P, P, I32, I32, I32, I32]
    lib.cublasGemmStridedBatchedEx.argtypes = [P, I32, I32, I32, I32, I32, P, P, I32, I32, ctypes.c_longlong, P, I32,
                                               I32, ctypes.c_longlong, P, P, I32, I32, ctypes.c_longlong, I32, I32, I32]
    return lib


OP_N, OP_T, R_32F, COMPUTE_32F, GEMM_DEFAULT = 0, 1, 0, 68, -1
ONE, ZERO = ctypes.c_float(1.0), ctypes.c_float(0.0)


def k_split(m, n, k, slices=None):
    """(slices, slice length) for c [m, n] = a [m, k] b: mmf_gemm_k_split's rule, or `slices` cut as it cuts."""
    count, length = I32(), I64()
    ok(LIB.mmf_gemm_k_split(m, n, k, torch.cuda.get_device_properties(0).multi_processor_count, count, length))
    if slices is None or slices == count.value:
        return count.value, length.value
    length = k if slices == 1 else ((k + slices - 1) // slices + 15) // 16 * 16
    return (k + length - 1) // length, length


def linear_as_java(blas, x, w, bias, out, partials, slices=None):
    """out = x wᵀ + bias with the calls CudaOps.gemm makes: one cublasGemmEx over the bias (copied into out
    first; Java doubles the copied rows, a few more launches), or, where mmf_gemm_k_split says so, k cut into
    slices (one strided-batched call, one more for a shorter last slice) summed by mmf_sum_slices. `slices`
    overrides the rule's count, to sweep it."""
    m, k = x.shape
    n = w.shape[0]
    count, length = k_split(m, n, k, slices)
    handle = ctypes.c_void_p(torch.cuda.current_blas_handle())
    if count == 1:
        out.copy_(bias.expand(m, n))
        status = blas.cublasGemmEx(handle, OP_T, OP_N, n, m, k, ctypes.addressof(ONE), w.data_ptr(), R_32F, k, x.data_ptr(),
                                   R_32F, k, ctypes.addressof(ONE), out.data_ptr(), R_32F, n, COMPUTE_32F, GEMM_DEFAULT)
        if status != 0:
            raise RuntimeError(f"cublasGemmEx: status {status}")
        return
    whole = count if k % length == 0 else count - 1
    rest = k - whole * length
    status = blas.cublasGemmStridedBatchedEx(handle, OP_T, OP_N, n, m, length, ctypes.addressof(ONE), w.data_ptr(), R_32F,
                                             k, length, x.data_ptr(), R_32F, k, length, ctypes.addressof(ZERO),
                                             partials.data_ptr(), R_32F, n, m * n, whole, COMPUTE_32F, GEMM_DEFAULT)
    if status == 0 and rest > 0:
        status = blas.cublasGemmEx(handle, OP_T, OP_N, n, m, rest, ctypes.addressof(ONE), w.data_ptr() + whole * length * 4,
                                   R_32F, k, x.data_ptr() + whole * length * 4, R_32F, k, ctypes.addressof(ZERO),
                                   partials.data_ptr() + whole * m * n * 4, R_32F, n, COMPUTE_32F, GEMM_DEFAULT)
    if status != 0:
        raise RuntimeError(f"cuBLAS: status {status}")
    ok(LIB.mmf_sum_slices(partials.data_ptr(), count, m, n, bias.data_ptr(), out.data_ptr(), stream()))


def mfb_case(b, dx, dy, mm, k, slices=None):
    x, y = torch.randn(b, dx, device="cuda"), torch.randn(b, dy, device="cuda")
    w0, b0 = torch.randn(mm * k, dx, device="cuda") / dx ** 0.5, torch.randn(mm * k, device="cuda")
    w1, b1 = torch.randn(mm * k, dy, device="cuda") / dy ** 0.5, torch.randn(mm * k, device="cuda")
    z = torch.empty(b, mm, device="cuda")
    ws = workspace_for(b, mm)
    blas = cublas()
    px, py = torch.empty(b, mm * k, device="cuda"), torch.empty(b, mm * k, device="cuda")
    partials = torch.empty(16 * b * mm * k, device="cuda")  # mmf_gemm_k_split's most slices

    def ours():
        linear_as_java(blas, x, w0, b0, px, partials, slices)
        linear_as_java(blas, y, w1, b1, py, partials, slices)
        ok(LIB.mmf_factorized_sums(px.data_ptr(), py.data_ptr(), b, 1, mm * k, k, 0, z.data_ptr(), stream()))
        finish(z, 1.0, 1, 0.0, 1, ws)

    def theirs():
        t = (F.linear(x, w0, b0) * F.linear(y, w1, b1)).view(b, mm, k).sum(2)
        return F.normalize(torch.sqrt(F.relu(t)) - torch.sqrt(F.relu(-t)))

    ours()
    t = (F.linear(x.double(), w0.double(), b0.double()) * F.linear(y.double(), w1.double(), b1.double()))
    want = F.normalize(signed_sqrt(t.view(b, mm, k).sum(2), 0.0))
    error = (z.double() - want).abs().max().item()
    # the projections themselves, each element against the sum of its |terms|: the normalisation above
    # would hide a projection scaled as a whole (a slice summed twice, a wrong alpha)
    for got, a, w, bias in ((px, x, w0, b0), (py, y, w1, b1)):
        a, w, bias = a.double(), w.double(), bias.double()
        size = F.linear(a.abs(), w.abs(), bias.abs())
        error = max(error, ((got.double() - F.linear(a, w, bias)).abs() / size).max().item())
    split = "" if slices is None else f" {slices} slices"
    counts = [k_split(b, mm * k, d, slices)[0] for d in (dx, dy)]
    partial_bytes = max(c for c in counts if c > 1) * b * mm * k * 4 if max(counts) > 1 else 0
    return ours, theirs, error, 2 * b * mm * k * 4 + ws.numel() + partial_bytes, f"MFB B={b} {dx},{dy}->{mm}x{k}{split}"


def main():
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    cases = [pool_case(32, 196, 512, 512), pool_case(8, 49, 2048, 768), layer_case(64, 512, 512, 256),
             compact_case(64, 1, 2048, 16000), compact_case(32, 196, 512, 8192), mfb_case(64, 2048, 768, 1200, 5)]
    # the k split's slice count swept (the row above is mmf_gemm_k_split's choice), to set its rule
    cases += [mfb_case(64, 2048, 768, 1200, 5, slices) for slices in (1, 2, 4, 6, 8)]
    rows, failed = [], 0
    for ours, theirs, error, temporaries, name in cases:
        good = error < 1e-4
        failed += 0 if good else 1
        print(f"{name}: max error vs fp64 {error:.2e} {'ok' if good else 'FAIL'}")
        mine, peer = time_ms(ours, calls=10), time_ms(theirs, calls=10)
        rows.append((name, mine, peer, temporaries))
    print()
    print(f"| {'shape':34} | {'mmfuse ms':>22} | {'torch ms':>22} | {'torch/ours':>10} | {'temp MB':>8} |")
    print(f"|{'-' * 36}|{'-' * 24}|{'-' * 24}|{'-' * 12}|{'-' * 10}|")
    for name, (m, mlo, mhi), (t, tlo, thi), temporaries in rows:
        print(f"| {name:34} | {m:8.3f} [{mlo:.3f}-{mhi:.3f}] | {t:8.3f} [{tlo:.3f}-{thi:.3f}] | {t / m:10.2f} |"
              f" {temporaries / 1e6:8.1f} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
