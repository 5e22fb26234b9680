/* rope.cu: rotary position embedding in place on q [B,T,NH*HS] and k [B,T,NKV*HS] (HF Llama's
 * rotate_half layout; rows ldq and ldk apart, as one GEMM may write them side by side), the
 * rotation or its transpose, both tensors in one launch. The ops rotate where they load or store
 * q and k anyway (attention's bf16 copies and its gradients' epilogues, the KV cache's write);
 * this pass serves the shapes those do not.
 * Thread x takes frequency i (a warp reads 32 consecutive floats of a head half); the block then
 * walks its tokens, and for each rotates that pair in every head of q and k thread y visits, so
 * the sinf and cosf of a token are shared by the heads of both and no index needs a division. */
#include "cuda_common.cuh"

/* blockDim.y: heads rotated at once; heads a thread loads before it stores; blocks at most */
enum { ROPE_HEADS = 4, ROPE_UNROLL = 3, ROPE_BLOCKS = 2048 };

Rope cuda_rope_table(const RopeFreqs *f, int HS, int *ok) {
    Rope r = {0, 1.0f, {0}};
    *ok = 1;
    if (!f || !f->half) return r;
    if (HS < 2 || HS / 2 > ROPE_MAX_HALF || f->half < 1 || f->half > HS / 2) {
        CUDA_FAIL(
            "rope: the CUDA kernels turn head sizes up to 256, with at most HS/2 frequencies");
        *ok = 0;
        return r;
    }
    r.half = f->half, r.scale = f->scale;
    for (int i = 0; i < r.half; i++) r.inv_freq[i] = f->inv_freq[i];
    return r;
}

/* The first element of head h of token bt: q's heads 0..NH-1, then k's. */
__device__ inline float *rope_head(float *q, int ldq, float *k, int ldk, int bt, int h, int NH,
                                   int HS) {
    return h < NH ? q + (size_t)bt * ldq + (size_t)h * HS
                  : k + (size_t)bt * ldk + (size_t)(h - NH) * HS;
}

/* dir = -1 rotates by -angle (the transpose). */
__global__ void rope_kernel(float *q, int ldq, float *k, int ldk, const int32_t *pos, const Rope r,
                            int BT, int T, int NH, int NKV, int HS, float dir) {
    int half = r.half, heads = NH + NKV;
    for (int i = threadIdx.x; i < half; i += blockDim.x)
        for (int bt = blockIdx.x; bt < BT; bt += gridDim.x) {
            float c, s;
            rope_cs(r, pos ? pos[bt] : bt % T, i, &c, &s);
            /* ROPE_UNROLL heads' pairs loaded before any is stored: more loads in flight */
            for (int h0 = threadIdx.y; h0 < heads; h0 += ROPE_UNROLL * blockDim.y) {
                float u[ROPE_UNROLL], v[ROPE_UNROLL];
#pragma unroll
                for (int j = 0, h = h0; j < ROPE_UNROLL; j++, h += blockDim.y)
                    if (h < heads) {
                        const float *x = rope_head(q, ldq, k, ldk, bt, h, NH, HS);
                        u[j] = x[i], v[j] = x[i + half];
                    }
#pragma unroll
                for (int j = 0, h = h0; j < ROPE_UNROLL; j++, h += blockDim.y)
                    if (h < heads) {
                        float *x = rope_head(q, ldq, k, ldk, bt, h, NH, HS);
                        rope_turn(&u[j], &v[j], c, dir * s);
                        x[i] = u[j], x[i + half] = v[j];
                    }
            }
        }
}

void cuda_rope(float *q, int ldq, float *k, int ldk, const int32_t *pos, const Rope &r, int B,
               int T, int NH, int NKV, int HS, float dir) {
    int BT = B * T;
    if (!q) q = k, ldq = ldk, NH = NKV, k = NULL; /* k alone: as q */
    if (BT <= 0 || !q || NH <= 0 || r.half < 1) return;
    unsigned blocks = BT < ROPE_BLOCKS ? (unsigned)BT : (unsigned)ROPE_BLOCKS;
    rope_kernel<<<blocks, dim3(32, ROPE_HEADS)>>>(q, ldq, k, ldk, pos, r, BT, T, NH, k ? NKV : 0,
                                                  HS, dir);
    CUDA_LAUNCHED("rope");
}
