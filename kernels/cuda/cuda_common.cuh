/* cuda_common.cuh: what every kernel file shares: the first-error slot that
 * status() reports, the device fault flags for bad indices, launch-size
 * helpers, 4-float loads and stores, warp and block reductions, the cuBLAS and cuBLASLt GEMM
 * wrappers, and the launchers that backend.cu puts into ops_cuda. Internal to kernels/: C code sees
 * only ops_cuda through ops.h. */
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "loraft/ops.h"
#include "loraft/quant_block.h" /* qb_bf16 */
#include "loraft/rng.h"

/* ---- errors: kernels cannot return them, so the first one is kept for
 * status() ---- */
void cuda_note(cudaError_t e, const char *what, const char *file, int line);
void cuda_note_blas(cublasStatus_t s, const char *what, const char *file, int line);
void cuda_note_text(const char *what, const char *file, int line);
#define CUDA_CHECK(call) cuda_note((call), #call, __FILE__, __LINE__)
#define CUDA_LAUNCHED(name) cuda_note(cudaGetLastError(), "launching " name, __FILE__, __LINE__)
#define CUDA_FAIL(what) cuda_note_text((what), __FILE__, __LINE__)

/* Bits a kernel sets in the device fault word when an input index is out of
 * range; status() turns them into a message. */
enum CudaFault {
    FAULT_LABEL = 1,      /* cross_entropy, lm_head_cross_entropy: label >= V */
    FAULT_TOKEN_ID = 2,   /* embedding: negative token id */
    FAULT_TOKEN_TYPE = 4, /* embedding: token type not 0 or 1 */
};
/* Device pointer to the fault word (NULL if it could not be allocated). */
int *cuda_fault_word(void);
/* Device pointer to the step's scalars (Ops.set_step; NULL if they could not be allocated): a
 * kernel XORs step_seed(step) into every dropout seed it is given and multiplies a loss's
 * gradient scale by step_grad_scale(step). */
const OpsStep *cuda_step(void);
/* Device counters of the last-block sums (lora_matmul.cu's weight gradients, attention.cu's
 * cached attention), zero between launches: a launch's last block (warp) of a tile (row) puts
 * its counter back (NULL if they could not be allocated). One stream's launches use them one
 * after the other. */
enum { CUDA_COUNTERS = 65536 };
unsigned *cuda_counters(void);
__device__ inline uint64_t step_seed(const OpsStep *step) {
    return step ? step->seed : 0;
}
__device__ inline float step_grad_scale(const OpsStep *step) {
    return step ? step->grad_scale : 1.0f;
}

/* ---- launch sizes ---- */
static const unsigned CUDA_THREADS = 256, CUDA_MAX_BLOCKS = 1u << 16;
/* Blocks for a grid-stride loop over n items; the loop covers whatever the cap
 * leaves. */
static inline unsigned cuda_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < CUDA_MAX_BLOCKS ? (b ? b : 1) : CUDA_MAX_BLOCKS);
}
/* grid.y of the column-tile kernels (block (32, 8), 32 columns each, rows split over
 * threadIdx.y and blockIdx.y, partial sums joined with atomics): about 64 rows per block
 * and at most 128 row groups, enough blocks to fill the GPU for any C. */
static inline unsigned cuda_row_groups(size_t rows) {
    size_t g = (rows + 63) / 64;
    return (unsigned)(g < 128 ? (g ? g : 1) : 128);
}
#define GRID_STRIDE(i, n)                                                                          \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)(n);                \
         i += (size_t)gridDim.x * blockDim.x)
/* i / d of an element index and a row width: in 32 bits where both fit, since a 64-bit division
 * is a software routine of dozens of instructions and the elementwise kernels divide at every
 * group of 4 elements. */
__device__ inline size_t index_div(size_t i, size_t d) {
    return i <= 0xffffffffu && d <= 0xffffffffu ? (uint32_t)i / (uint32_t)d : i / d;
}
/* One warp per row: the warp's row loop for `rows` rows. */
#define WARP_ROWS(row, rows)                                                                       \
    for (size_t row = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;                   \
         row < (size_t)(rows); row += (size_t)gridDim.x * (blockDim.x / 32))

/* ---- 4 consecutive floats a thread (elementwise kernels, AdamW) ---- */
/* v[k] = x[i + k] for those below n (0 for the rest): one float4 load when whole and 16-byte
 * aligned. Callers load all of a thread's values before storing any: in place stays safe. */
__device__ inline void load4(float v[4], const float *x, size_t i, size_t n) {
    if (i + 4 <= n && (uintptr_t)(x + i) % 16 == 0) {
        float4 q = *(const float4 *)(x + i);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        return;
    }
    for (int k = 0; k < 4; k++) v[k] = i + k < n ? x[i + k] : 0.0f;
}

/* x[i + k] = v[k] for those below n */
__device__ inline void store4(float *x, const float v[4], size_t i, size_t n) {
    if (i + 4 <= n && (uintptr_t)(x + i) % 16 == 0) {
        *(float4 *)(x + i) = float4{v[0], v[1], v[2], v[3]};
        return;
    }
    for (int k = 0; k < 4 && i + k < n; k++) x[i + k] = v[k];
}

/* ---- saved inputs (ops.h): f32, or (f32 pointer NULL) their bf16 copies (qb_bf16 widens) ---- */
/* One value as f32: an f32 itself, or a bf16 one (its bits, or CUDA's type) widened */
__device__ inline float as_f32(float x) {
    return x;
}
__device__ inline float as_f32(uint16_t x) {
    return qb_bf16(x);
}
__device__ inline float as_f32(__nv_bfloat16 x) {
    return __bfloat162float(x);
}
/* A backward op's gradient element: added to what dst holds (add: OPS_ADD), or written over it
 * without reading it (OPS_SET, the buffer's first writer) */
__device__ inline void put_grad(float *dst, float x, int add) {
    *dst = add ? *dst + x : x;
}
/* x stored as the destination's type: f32, or bf16 rounded to nearest even */
__device__ inline void store_as(float *dst, float x) {
    *dst = x;
}
__device__ inline void store_as(__nv_bfloat16 *dst, float x) {
    *dst = __float2bfloat16(x);
}
/* The two bf16 values of a 32-bit word (low half first) as f32 */
__device__ inline void widen_bf16x2(float *v, uint32_t w) {
    v[0] = __uint_as_float(w << 16), v[1] = __uint_as_float(w & 0xffff0000u);
}
/* load4 from x, or from its bf16 copy xb when x is NULL (one 8-byte load when aligned) */
__device__ inline void load4_saved(float v[4], const float *x, const uint16_t *xb, size_t i,
                                   size_t n) {
    if (x) return load4(v, x, i, n);
    if (i + 4 <= n && (uintptr_t)(xb + i) % 8 == 0) {
        uint2 q = *(const uint2 *)(xb + i);
        widen_bf16x2(v, q.x), widen_bf16x2(v + 2, q.y);
        return;
    }
    for (int k = 0; k < 4; k++) v[k] = i + k < n ? qb_bf16(xb[i + k]) : 0.0f;
}

/* xb[i + k] = bf16(v[k]) (nearest even) for those below n; one 8-byte store when aligned */
__device__ inline void store4_bf16(uint16_t *xb, const float v[4], size_t i, size_t n) {
    uint16_t h[4];
    for (int k = 0; k < 4; k++) h[k] = __bfloat16_as_ushort(__float2bfloat16(v[k]));
    if (i + 4 <= n && (uintptr_t)(xb + i) % 8 == 0) {
        *(uint2 *)(xb + i) = make_uint2(h[0] | (uint32_t)h[1] << 16, h[2] | (uint32_t)h[3] << 16);
        return;
    }
    for (int k = 0; k < 4 && i + k < n; k++) xb[i + k] = h[k];
}

/* ---- reductions (blockDim.x a multiple of 32, at most 1024) ---- */
template <typename T> __device__ inline T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Every thread of the block gets the total. Safe to call repeatedly in a loop.
 */
template <typename T> __device__ inline T block_sum(T v) {
    __shared__ T part[32];
    int lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* the previous call's readers are done with part[] */
    if (lane == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    return warp_sum(lane < nwarps ? part[lane] : (T)0);
}
__device__ inline float block_max(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    return warp_max(lane < nwarps ? part[lane] : -INFINITY);
}

/* ---- cuBLAS, column-major: C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C,
 * batched with element strides sA, sB, sC (batch 1 ignores them). FP32 compute,
 * TF32 under set_precision(TF32 or BF16). Errors go to the slot. ----
 */
void cuda_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
               const float *A, int lda, long long sA, const float *B, int ldb, long long sB,
               float beta, float *C, int ldc, long long sC, int batch);
/* The precision set_precision last set (backend.cu). */
Precision cuda_precision(void);
/* The same with bf16 A and B, f32 accumulation (tensor cores), C of ctype: f32, or bf16 (the
 * sums rounded once). */
void cuda_gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                    const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B, int ldb, float beta,
                    void *C, cudaDataType ctype, int ldc);

/* C[m,n] = op(A) op(B) + bias[r] per row r for FP32 (precision's compute type) or BF16 (FP32
 * compute) A and B, FP32 C: the bias in cuBLASLt's epilogue, so C is written once. Returns 0,
 * having done nothing, for a bias it cannot take (NULL, or under 16 bytes aligned) and a GEMM
 * cuBLASLt declines (no algorithm, or NOT_SUPPORTED): the caller's GEMM + bias pass then. */
int cuda_gemm_bias(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                   cudaDataType type, const void *A, int lda, const void *B, int ldb, float *C,
                   int ldc, const float *bias);

/* ---- rotary position embedding (HF Llama's rotate_half), rotated where a kernel loads or
 * stores q and k: the pairs (x[i], x[i + half]) of each head turn by position * inv_freq[i],
 * half = HS/2, or less under partial rotary embeddings (Phi-4-mini), whose last HS - 2 half
 * dims pass through ---- */
enum { ROPE_MAX_HALF = 128 };
/* The inverse frequencies as a kernel parameter (no device memory, nothing to copy before a
 * launch): the model's RopeFreqs, which the CPU's rotation reads too; half at most HS/2, 0: no
 * rotation. */
struct Rope {
    int half;
    float scale; /* cos and sin times it (YaRN's attention factor; else 1) */
    float inv_freq[ROPE_MAX_HALF];
};
/* f NULL or f->half 0: none; a head size over 2 * ROPE_MAX_HALF fails (the attention kernels'
 * limit too), as do more than HS/2 frequencies (*ok 0 then). */
Rope cuda_rope_table(const RopeFreqs *f, int HS, int *ok);
/* cos and sin of position p's angle at frequency i, as the CPU computes them */
__device__ inline void rope_cs(const Rope &r, int p, int i, float *c, float *s) {
    float angle = (float)p * r.inv_freq[i];
    *c = cosf(angle) * r.scale, *s = sinf(angle) * r.scale;
}
/* The pair (u, v) turned by the angle of cosine c and sine s (-s: the transposed turn) */
__device__ inline void rope_turn(float *u, float *v, float c, float s) {
    float a = *u, b = *v;
    *u = a * c - b * s, *v = b * c + a * s;
}
/* In place on q [B*T, NH heads of HS] (rows ldq apart) and k [B*T, NKV heads] (ldk; either may be
 * NULL):
 * the rotation (dir 1) or its transpose (dir -1, for gradients), position pos[bt] (pos NULL:
 * bt % T). One launch for both. */
void cuda_rope(float *q, int ldq, float *k, int ldk, const int32_t *pos, const Rope &r, int B,
               int T, int NH, int NKV, int HS, float dir);

/* ---- the launchers behind ops_cuda (same arguments as the Ops members) ----
 */
void cuda_embedding_forward(float *out, const int32_t *ids, const int32_t *types,
                            const int32_t *pos, const float *wte, const uint16_t *wte_bf16,
                            const float *wpe, const float *wtt, int B, int T, int C);
void cuda_embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                             const int32_t *ids, const int32_t *types, int pad, int B, int T,
                             int C);
void cuda_embedding_lora_forward(float *out, float *u, const int32_t *ids, const float *AT,
                                 const float *B, float scale, int N, int C, int R);
void cuda_embedding_lora_backward(float *dAT, float *dB, const float *dout, const float *u,
                                  const int32_t *ids, const float *B, float scale, int pad,
                                  float *scratch, int N, int C, int R);
void cuda_layernorm_forward(float *out, float *mean, float *rstd, uint16_t *xh, const float *inp,
                            const float *weight, const float *bias, float eps, int N, int C);
void cuda_layernorm_backward(float *dinp, uint16_t *dinp_bf16, float *dweight, float *dbias,
                             const float *dout, const float *inp, const uint16_t *xh,
                             const float *weight, const float *mean, const float *rstd, int N,
                             int C, int acc);
void cuda_rmsnorm_backward(float *dinp, uint16_t *dinp_bf16, float *dweight, const float *dout,
                           const float *inp, const uint16_t *xh, const float *weight,
                           const float *rstd, int N, int C, int acc);
void cuda_residual_norm_forward(float *out, uint16_t *out_bf16, int ldb, float *sum, float *mean,
                                float *rstd, uint16_t *xh, const float *a, const float *b, float p,
                                uint64_t seed, const float *weight, const float *bias, float eps,
                                int N, int C);
void cuda_head_norm_forward(float *x, int ld, float *raw, float *rstd, const float *weight,
                            float eps, int N, int H, int HS);
void cuda_glu_forward(Activation act, float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                      const float *gate, const float *up, size_t n, int F, int ld);
void cuda_glu_backward(Activation act, float *dgate, float *dup, uint16_t *dgu_bf16,
                       const float *dout, const uint16_t *dout_bf16, const float *gate,
                       const float *up, const uint16_t *saved, size_t n, int F, int ld, int acc);
void cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC);
void cuda_matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC, int acc);
void cuda_bias_backward(float *dbias, const float *dout, const uint16_t *dout_bf16, int ld,
                        float *scratch, int N, int OC);
void cuda_dequantize_rows(float *out, const void *packed, int type, int row0, int rows, int cols);
void cuda_round_bf16_many(const OpsBf16Copy *copies, int n);
void cuda_dequantize_rows_bf16(uint16_t *out, const void *packed, int type, int row0, int rows,
                               int cols, int ld);
void cuda_matmul_forward_bf16(float *out, uint16_t *out_bf16, int ldo, const uint16_t *inp, int ldi,
                              const uint16_t *weight, int ldw, const float *bias, float *scratch,
                              int N, int C, int OC);
void cuda_matmul_backward_bf16(float *dinp, uint16_t *dinp_bf16, const uint16_t *dd, int ldd,
                               const uint16_t *weight, int ldw, float *scratch, int N, int C, int K,
                               int acc);
size_t cuda_matmul_bf16_scratch(int N, int C, int OC);
void cuda_lora_down_bf16(uint16_t *xb, float *const *u, const float *const *A,
                         const uint64_t *seeds, int n, const float *inp, float scale, float p,
                         float *scratch, int N, int C, int R);
void cuda_lora_forward(float *out, float *u, const float *inp, const float *A, const float *B,
                       float scale, float p, uint64_t seed, float *scratch, int N, int C, int OC,
                       int R);
void cuda_lora_backward(float *dinp, float *dA, float *dB, const float *dout, const float *inp,
                        const float *u, const float *A, const float *B, float scale, float p,
                        uint64_t seed, float *scratch, int N, int C, int OC, int R);
void cuda_lora_backward_bf16(uint16_t *dd, int ldd, const OpsLoraBackward *lin, int n,
                             const float *inp, const uint16_t *xb, int ldx, float scale, float p,
                             float *scratch, int N, int C, int R);
void cuda_lora_dinp_bf16(float *dinp, uint16_t *dinp_bf16, const float *const *du,
                         const float *const *A, const uint64_t *seeds, int n, float p, int N, int C,
                         int R, int acc);
void cuda_dora_norm(float *norm, const float *W, int ldw, const float *A, const float *B,
                    float scale, int rows, int C, int R);
void cuda_dora_forward(float *out, float *pre, const float *y, int ldy, const float *mag,
                       const float *norm, const float *bias, const float *rest, int N, int OC);
void cuda_dora_backward(float *gs, float *grest, float *dmag, const float *g, int ldg,
                        const float *pre, const float *mag, const float *norm, float *scratch,
                        int N, int OC);
void cuda_lora_dropout_rest(float *out, const float *x, const uint16_t *xb, int ldx, float p,
                            uint64_t seed, int N, int C, int acc);
void cuda_attention_forward(float *out, uint16_t *out_bf16, int ldo, float *lse, float *saved,
                            float *q, int ldq, float *k, const float *v, int ldkv,
                            const int32_t *mask, int causal, int window, const RopeFreqs *rope,
                            AttnScore score, float p, uint64_t seed, float *scratch, int B, int T,
                            int NH, int NKV, int HS);
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, int ldq, int ldkv, const float *out,
                             const uint16_t *out_bf16, int ldo, const float *lse,
                             const float *saved, const int32_t *mask, int causal, int window,
                             const RopeFreqs *rope, AttnScore score, float p, uint64_t seed,
                             float *scratch, int B, int T, int NH, int NKV, int HS, int acc);
size_t cuda_attention_scratch(int B, int T, int NH, int NKV, int HS);
int cuda_set_attention(AttentionImpl a, LfError *err);
size_t cuda_attention_saved(Precision p, int B, int T, int NH, int NKV, int HS, int out_apart);
uint16_t *cuda_attention_saved_out(Precision p, float *saved);
void cuda_attention_cached(float *out, uint16_t *out_bf16, int ldo, const float *q, int ldq,
                           const float *k, const float *v, const int32_t *pos, const int32_t *seq,
                           int stride, int window, AttnScore score, float *scratch, int n, int L,
                           int NH, int NKV, int HS);
size_t cuda_attention_cached_scratch(int n, int L, int NH, int HS);
void cuda_cache_write(float *kc, float *vc, float *q, int ldq, const float *k, const float *v,
                      int ld, const int32_t *pos, const int32_t *seq, int stride,
                      const RopeFreqs *rope, int n, int NH, int NKV, int HS);
void cuda_activation_forward(float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                             const float *inp, const float *bias, Activation act, size_t n, int F);
void cuda_activation_backward(float *dinp, uint16_t *dinp_bf16, const float *inp,
                              const uint16_t *saved, const float *bias, const float *dout,
                              const uint16_t *dout_bf16, Activation act, size_t n, int F, int acc);
void cuda_dropout_forward(float *out, const float *inp, float p, uint64_t seed, size_t n);
void cuda_uniform_noise(float *x, float bound, uint64_t seed, size_t n);
void cuda_dropout_backward(float *dinp, uint16_t *dinp_bf16, const float *dout, float p,
                           uint64_t seed, size_t n, int acc);
#ifdef LORAFT_HAVE_NCCL /* group.cu */
int cuda_group_id(void *id, LfError *err);
int cuda_group_join(int rank, int ranks, const void *id, LfError *err);
void cuda_group_sum(float *x, size_t n);
void cuda_group_sum_f64(double *x, size_t n);
void cuda_group_leave(void);
#endif
void cuda_add(float *out, const float *a, const float *b, size_t n);
void cuda_axpy(float *dst, const float *src, float alpha, size_t n);
void cuda_scale(float *x, float s, size_t n);
void cuda_first_token_forward(float *out, const float *inp, int B, int T, int C);
void cuda_first_token_backward(float *dinp, const float *dout, int B, int T, int C);
void cuda_cross_entropy(float *losses, float *dlogits, const float *logits, const int32_t *labels,
                        float grad_scale, int N, int V);
/* cuda_cross_entropy with row n's gradient scaled by row_scale[n] too (NULL: 1), of the logits
 * mapped by map first (lm_head_cross_entropy's), with the entropy (ent: ops.h OpsEntropy; NULL:
 * none); rows (not NULL): row n's label, loss, row_scale and entropy at rows[n], its logits at n */
void cuda_cross_entropy_rows(float *losses, float *dlogits, const float *logits,
                             const int32_t *labels, const int32_t *rows, float grad_scale,
                             const float *row_scale, const OpsEntropy *ent, OpsLogitMap map, int N,
                             int V);
/* The same over bf16 logits [N,V], their gradient (grads) written over them in bf16 */
void cuda_cross_entropy_rows_bf16(float *losses, __nv_bfloat16 *logits, int grads,
                                  const int32_t *labels, const int32_t *rows, float grad_scale,
                                  const float *row_scale, const OpsEntropy *ent, OpsLogitMap map,
                                  int N, int V);
void cuda_lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h, const float *W,
                                const uint16_t *Wb, const OpsHeadLora *lora, const int32_t *labels,
                                const int32_t *rows, float grad_scale, const float *row_scale,
                                const OpsEntropy *entropy, OpsLogitMap map, float *scratch, int N,
                                int C, int V, int chunk);
void cuda_dpo_loss(double *stats, float *logps, float *row_scale, const float *losses,
                   const int32_t *labels, const float *ref, float beta, float label_smoothing,
                   int ipo, float grad_scale, int B, int T);
void cuda_reward_loss(double *stats, float *rewards, float *dscores, const float *scores,
                      const int32_t *pos, float grad_scale, int B, int T);
void cuda_grpo_weights(double *stats, float *row_scale, float *entropy_scale, const float *share,
                       const float *adv, const float *losses, const float *entropy,
                       const float *ref, const float *old, OpsGrpoTerms t, int B, int T);
void cuda_adamw_step(const AdamWTensor *tensors, int n_tensors, const float *grads, float *m,
                     float *v, size_t n, AdamWHyper h, double *norm, double *scratch);
