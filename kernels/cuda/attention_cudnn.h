/* attention_cudnn.h: model.attention cudnn, cuDNN's fused scaled-dot-product attention (the
 * flash-attention engines cuDNN 9 matches to cudnn-frontend's SDPA graphs) behind the CUDA
 * backend's attention ops under bf16 (attention.cu prepares the copies it reads, and turns its
 * bf16 results into the ops' f32 ones).
 *
 * Built where cudnn-frontend's headers and cuDNN 9 were found at configure time
 * (LORAFT_CUDNN_ATTENTION; scripts/setup.sh fetches the headers); elsewhere every call reports
 * cudnn_sdpa_unavailable(). A graph is described, checked and planned once per shape, on its
 * first use, and kept (the 64 used last: padding to each batch's longest sequence makes a
 * shape per length); its workspace is the module's own, grown then. Not inside a CUDA graph
 * capture, which cannot take the allocation (an error says so).
 *
 * Tensors, device memory: q, k, v, dout as the heads_bf16 copies [B, heads, T, ld] (rows of
 * ld >= HS elements, the first HS used); o, dq, dk, dv token-major bf16 [B, T, heads*HS];
 * stats f32 [B, NH, T], lse (natural log) per query row, forward's for backward; and the small
 * inputs of CudnnSdpaInputs. Every pointer 16-byte aligned, as cuDNN's tensors must be. Dropout
 * masks are cuDNN's own (the same in forward and backward for the same seed and offset), not
 * loraft's rng_row_dropout. */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CudnnSdpa {
    int B, T, NH, NKV, HS, ld; /* ld: row stride of the heads-major copies */
    int causal, padded;        /* padded: keys limited by CudnnSdpaInputs.seq_kv */
    float p;                   /* dropout on P */
    int window; /* causal: the sliding window (0: none), cuDNN's diagonal band's left bound */
    float scale, softcap; /* ops.h AttnScore: cuDNN's attention scale; soft-capping is refused */
} CudnnSdpa;

/* Device memory: every sequence's queries (T) and keys (those of a mask's prefix), [B] int32
 * each, read when padded; the dropout's Philox seed and offset, one int64 each, when p > 0. */
typedef struct CudnnSdpaInputs {
    const int32_t *seq_q, *seq_kv;
    const int64_t *seed, *offset;
} CudnnSdpaInputs;

/* NULL when this build has cuDNN attention, else why not. */
const char *cudnn_sdpa_unavailable(void);

/* Queue the attention on the per-thread stream; NULL, or the error's message. */
const char *cudnn_sdpa_forward(const CudnnSdpa *s, void *o, float *stats, const void *q,
                               const void *k, const void *v, const CudnnSdpaInputs *in);
const char *cudnn_sdpa_backward(const CudnnSdpa *s, void *dq, void *dk, void *dv, const void *q,
                                const void *k, const void *v, const void *o, const void *dout,
                                const float *stats, const CudnnSdpaInputs *in);

/* The backend's (backend.cu): drops every recorded CUDA graph. Called before the workspace
 * moves or a plan is let go, whose memory and kernels a recording holds. */
void cuda_graph_drop(void);

/* Whether cuDNN's support rules take this shape on a GPU of compute capability sm (90 for
 * Hopper): the graphs described and validated on the host, no GPU needed (tests). */
const char *cudnn_sdpa_check(const CudnnSdpa *s, int backward, int sm);

#ifdef __cplusplus
}
#endif
