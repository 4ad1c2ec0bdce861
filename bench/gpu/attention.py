"""MMFuse's CUDA attention (libmmfuse through ctypes) beside PyTorch's scaled_dot_product_attention.

Run on a GPU machine by bench/gpu/attention.sh, which builds libmmfuse first. For every shape and
type: checks MMFuse's output against an fp64 reference, then times MMFuse and PyTorch on the same
tensors (20 calls captured in a CUDA graph, replays timed with CUDA events, median of 15 replays,
spread = min-max).
The peer is the fastest of PyTorch's SDPA backends that take the call (FlashAttention-2, cuDNN,
memory-efficient; for fp32 only the last), each timed the same way; the TF32 rows face PyTorch's
fp32 call. The last lines printed are the table. MMFUSE_DTYPES (e.g. "bfloat16") and MMFUSE_SHAPES (indices
into SHAPES, e.g. "0,4") narrow the run, for profiling; MMFUSE_SPLIT_SWEEP=1 adds a table of times
under forced split-KV counts. The "bfloat16 64 rows" rows run the 16-bit kernel with at most 64 query
rows a block (MMF_ATTENTION_ROWS_64) on the shapes where the default takes 128 (Lq >= 128).
"""
import ctypes
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from gputime import time_ms

LIB = ctypes.CDLL(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mmfuse-native", "libmmfuse.so"))
LIB.mmf_attention_workspace_bytes.restype = ctypes.c_size_t
LIB.mmf_attention_workspace_bytes.argtypes = [ctypes.c_int] * 9
LIB.mmf_attention.argtypes = [ctypes.c_int] * 8 + [ctypes.c_void_p] * 6 + [ctypes.c_float, ctypes.c_int] + \
    [ctypes.c_void_p] * 3 + [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
LIB.mmf_last_error.restype = ctypes.c_char_p
DTYPES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
TF32, ROWS_64 = 1, 2  # MMF_ATTENTION_TF32, MMF_ATTENTION_ROWS_64
# What each row runs: name -> (torch dtype, MMFuse flags, dense peak of an H100 SXM in TFLOP/s from
# NVIDIA's datasheet: fp32 on CUDA cores, TF32 and 16-bit on tensor cores).
VARIANTS = {
    "bfloat16": (torch.bfloat16, 0, 989.0),
    "float16": (torch.float16, 0, 989.0),
    "float32": (torch.float32, 0, 67.0),
    "tf32": (torch.float32, TF32, 494.0),
    # the 16-bit kernel as before its 128-row blocks, on the shapes that take them (Lq >= 128)
    "bfloat16 64 rows": (torch.bfloat16, ROWS_64, 989.0),
}


class Attention:
    """One MMFuse call on [B, L, H, D] tensors, with its workspace allocated once."""

    def __init__(self, q, k, v, causal=False, splits=0, flags=0):
        self.q, self.k, self.v, self.causal, self.splits = q, k, v, causal, splits
        b, lq, h, dh = q.shape
        lk, dv = k.shape[1], v.shape[3]
        self.dims = (DTYPES[q.dtype], flags, b, lq, lk, h, dh, dv)
        self.out = torch.empty(b, lq, h, dv, dtype=q.dtype, device=q.device)
        self.lse = torch.empty(b, h, lq, dtype=torch.float32, device=q.device)
        size = LIB.mmf_attention_workspace_bytes(DTYPES[q.dtype], flags, b, lq, lk, h, dv, 0, splits)
        self.workspace = torch.empty(max(size, 1), dtype=torch.uint8, device=q.device)
        self.workspace_bytes = size
        self.scale = dh ** -0.5

    def __call__(self):
        status = LIB.mmf_attention(*self.dims, self.q.data_ptr(), self.k.data_ptr(), self.v.data_ptr(), None, None,
                                   None, self.scale, int(self.causal), self.out.data_ptr(), self.lse.data_ptr(), None,
                                   self.splits, self.workspace.data_ptr(), self.workspace_bytes,
                                   torch.cuda.current_stream().cuda_stream)
        if status != 0:
            raise RuntimeError(LIB.mmf_last_error().decode())
        return self.out


def torch_sdpa(q, k, v, causal, backend):
    """PyTorch's SDPA with one backend on the same [B, L, H, D] tensors (it takes [B, H, L, D] views)."""
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    lq, lk = q.shape[1], k.shape[1]
    square = lq == lk
    mask = None
    if causal and not square:  # bottom-right aligned, as MMFuse
        mask = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(diagonal=lk - lq)

    def call():
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, is_causal=causal and square)
    return call


def best_torch(q, k, v, causal):
    """The fastest of PyTorch's SDPA backends that take this call: (name, (median, min, max) ms)."""
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}
    best = None
    for name, backend in backends.items():
        call = torch_sdpa(q, k, v, causal, backend)
        try:
            call()
            timing = time_ms(call)
        except RuntimeError:  # this backend does not take the dtype or shape
            continue
        if best is None or timing[0] < best[1][0]:
            best = (name, timing)
    return best


def reference(q, k, v, causal):
    qd, kd, vd = (x.double().transpose(1, 2) for x in (q, k, v))
    s = qd @ kd.transpose(-1, -2) * q.shape[-1] ** -0.5
    if causal:
        lq, lk = q.shape[1], k.shape[1]
        keep = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(diagonal=lk - lq)
        s = s.masked_fill(~keep, float("-inf"))
    return (torch.softmax(s, -1) @ vd).transpose(1, 2)


SHAPES = [  # B, H, Lq, Lk, D, causal, what it stands for
    (1, 16, 16, 4096, 64, False, "16 latents over long audio"),
    (32, 8, 32, 196, 64, False, "text over 14x14 image patches"),
    (256, 8, 1, 577, 64, False, "one query over ViT-L/14 tokens"),
    (64, 12, 128, 128, 64, False, "token-to-token fusion"),
    (8, 8, 64, 256, 64, False, "queries over regions"),
    (4, 8, 1024, 1024, 128, False, "long x long"),
    (2, 16, 4096, 4096, 128, False, "large, for the peak"),
    (2, 16, 2048, 2048, 64, True, "causal square"),
]


def split_sweep(variants, shapes):
    """Per-call time (us) for forced split-KV counts beside the library's choice: the data behind
    the heuristic in kernels/attention_simt.cu (attention_splits)."""
    counts = (1, 2, 4, 8, 16, 32, 64)
    print("\n| type | B x H  Lq x Lk  D | chosen | " + " | ".join(f"splits {c}" for c in counts) + " |")
    print("|---|---|---|" + "---|" * len(counts))
    for name in variants:
        dtype, flags, _ = VARIANTS[name]
        for b, h, lq, lk, d, causal, _ in shapes:
            if b * h * lq * lk > 1 << 26 or flags & ROWS_64 and lq < 128:
                continue
            q = torch.randn(b, lq, h, d, device="cuda").to(dtype)
            k = torch.randn(b, lk, h, d, device="cuda").to(dtype)
            v = torch.randn(b, lk, h, d, device="cuda").to(dtype)
            times = [time_ms(Attention(q, k, v, causal, c, flags), groups=7)[0] * 1e3 for c in counts]
            chosen = time_ms(Attention(q, k, v, causal, 0, flags), groups=7)[0] * 1e3
            print(f"| {name} | {b}x{h} {lq}x{lk} d{d} | {chosen:.1f} | "
                  + " | ".join(f"{t:.1f}" for t in times) + " |")


def main():
    torch.manual_seed(0)
    name = torch.cuda.get_device_name()
    print(f"device: {name}, torch {torch.__version__}")
    rows, failures = [], 0
    variants = os.environ.get("MMFUSE_DTYPES", ",".join(VARIANTS)).split(",")
    shapes = [SHAPES[int(i)] for i in os.environ["MMFUSE_SHAPES"].split(",")] if "MMFUSE_SHAPES" in os.environ else SHAPES
    for name in variants:
        dtype, flags, peak = VARIANTS[name]
        tolerance = {torch.float32: 4e-3 if flags & TF32 else 1e-4, torch.bfloat16: 1.6e-2, torch.float16: 4e-3}[dtype]
        for b, h, lq, lk, d, causal, what in shapes:
            if flags & ROWS_64 and lq < 128:
                continue  # the same kernel as the default row
            q = torch.randn(b, lq, h, d, device="cuda").to(dtype)
            k = torch.randn(b, lk, h, d, device="cuda").to(dtype)
            v = torch.randn(b, lk, h, d, device="cuda").to(dtype)
            ours = Attention(q, k, v, causal, 0, flags)
            error = (ours().double() - reference(q, k, v, causal)).abs().max().item()
            if not error <= tolerance * 4:  # |v| reaches about 4 for standard normal values
                print(f"FAIL {dtype} {(b, h, lq, lk, d)}: max error {error:.3g}")
                failures += 1
            peer_name, peer_ms = best_torch(q, k, v, causal)
            ours_ms = time_ms(ours)
            flops = 4 * b * h * lq * lk * d * (0.5 if causal else 1)
            rows.append((name, f"{b}x{h} {lq}x{lk} d{d}{' causal' if causal else ''}",
                         what, ours_ms, (peer_name, peer_ms), flops / ours_ms[0] / 1e9, peak, error))
    if os.environ.get("MMFUSE_SPLIT_SWEEP"):
        split_sweep(variants, shapes)
    print()
    print("| type | B x H  Lq x Lk  D | stands for | mmfuse us [min-max] | best torch backend us [min-max] | torch/mmfuse | TFLOP/s | /peak | max err |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t, shape, what, ours_ms, (peer_name, peer_ms), tflops, peak, error in rows:
        print(f"| {t} | {shape} | {what} | {ours_ms[0]*1e3:.1f} [{ours_ms[1]*1e3:.1f}-{ours_ms[2]*1e3:.1f}] "
              f"| {peer_name} {peer_ms[0]*1e3:.1f} [{peer_ms[1]*1e3:.1f}-{peer_ms[2]*1e3:.1f}] | {peer_ms[0]/ours_ms[0]:.2f} "
              f"| {tflops:.1f} | {tflops/peak:.2f} | {error:.1e} |")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
