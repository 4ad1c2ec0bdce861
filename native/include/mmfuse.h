/*
 * mmfuse.h - the C ABI of MMFuse's CUDA kernels.
 *
 * Every kernel is reached through this header: from Java (JavaCPP binds it, see
 * org.mmfuse.cuda.MmfNative), from the native harness (native/harness), and from Python
 * on a GPU machine (ctypes). Conventions:
 *   - every function returns an mmf_status; on failure mmf_last_error() gives a message and, for
 *     MMF_ERR_CUDA, mmf_last_cuda_error() the cudaError_t (both per calling thread);
 *   - tensors are row-major and contiguous; pointers passed to kernels are device pointers;
 *   - work is enqueued on the given stream (a cudaStream_t; NULL is the legacy default stream)
 *     and nothing synchronises it: the caller does;
 *   - nothing allocates device memory: launchers that need scratch take a caller-provided
 *     workspace, sized by the matching *_workspace_bytes function.
 */
#ifndef MMFUSE_H
#define MMFUSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMF_VERSION_MAJOR 0
#define MMF_VERSION_MINOR 1
#define MMF_VERSION_PATCH 0

typedef enum mmf_status {
    MMF_OK = 0,
    MMF_ERR_INVALID_ARGUMENT = 1, /* a precondition of the call does not hold; nothing was enqueued */
    MMF_ERR_CUDA = 2,             /* the CUDA runtime reported an error; see mmf_last_cuda_error() */
    MMF_ERR_WORKSPACE = 3         /* the workspace is missing or smaller than *_workspace_bytes asks */
} mmf_status;

/* MAJOR * 10000 + MINOR * 100 + PATCH of this library. Needs no device. */
int mmf_version(void);

/* The CUDA runtime version this library runs with (e.g. 13000). Needs no device or driver. */
int mmf_cuda_runtime_version(int* version);

/* Number of CUDA devices. Without a driver or a device this fails with MMF_ERR_CUDA and
 * mmf_last_cuda_error() says why (cudaErrorInsufficientDriver, cudaErrorNoDevice, ...). */
int mmf_device_count(int* count);

/* The message of this thread's last failed call ("" if none). Valid until the thread's next call. */
const char* mmf_last_error(void);

/* The cudaError_t of this thread's last MMF_ERR_CUDA (0 if none) and its name ("cudaErrorNoDevice"). */
int mmf_last_cuda_error(void);
const char* mmf_cuda_error_name(int cuda_error);

/* ---- concatenation and split (fp32) ----------------------------------------------------------
 * Both move blocks between one "whole" tensor viewed as [rows, whole_width] and n pieces viewed as
 * [rows, piece_widths[i]], piece i occupying columns [sum of earlier widths, + piece_widths[i]).
 * For torch.cat(pieces, dim): rows = product of the sizes before dim, piece_widths[i] = size of
 * piece i along dim times the product of the sizes after dim. The widths must sum to whole_width.
 * One kernel launch moves all pieces, however many. Pieces and whole must not overlap. */
size_t mmf_concat_workspace_bytes(int n_pieces);

int mmf_concat_f32(int n_pieces, const float* const* pieces, const int64_t* piece_widths,
                   int64_t rows, float* whole, int64_t whole_width,
                   void* workspace, size_t workspace_bytes, void* stream);

int mmf_split_f32(int n_pieces, float* const* pieces, const int64_t* piece_widths,
                  int64_t rows, const float* whole, int64_t whole_width,
                  void* workspace, size_t workspace_bytes, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* MMFUSE_H */
