/* rope.cu: rotary position embedding in place on q [B,T,NH*HS] and k [B,T,NKV*HS] (HF Llama's
 * rotate_half layout; forward's rows ldq and ldk apart, as one GEMM may write them side by
 * side), forward and its transpose for backward, both tensors in one launch.
 * Thread x takes frequency i (a warp reads 32 consecutive floats of a head half) and works out
 * its inverse frequency once, in the same arithmetic as the CPU reference (rope_inv_freq, a
 * double pow); the block then walks its tokens, and for each rotates that pair in every head of
 * q and k thread y visits, so the sinf and cosf of a token are shared by the heads of both and
 * no index needs a division. Not fused into the q/k projections. */
#include "cuda_common.cuh"
#include "loraft/activation.h"

/* blockDim.y: heads rotated at once; heads a thread loads before it stores; blocks at most
 * (each walks BT / ROPE_BLOCKS tokens, so the pow is rare) */
enum { ROPE_HEADS = 4, ROPE_UNROLL = 3, ROPE_BLOCKS = 2048 };

/* The first element of head h of token bt: q's heads 0..NH-1, then k's. */
__device__ inline float *rope_head(float *q, int ldq, float *k, int ldk, int bt, int h, int NH,
                                   int HS) {
    return h < NH ? q + (size_t)bt * ldq + (size_t)h * HS
                  : k + (size_t)bt * ldk + (size_t)(h - NH) * HS;
}

/* dir = -1 rotates by -angle (the transpose); NKV 0: q alone. */
__global__ void rope_kernel(float *q, int ldq, float *k, int ldk, const int32_t *pos, float theta,
                            int BT, int T, int NH, int NKV, int HS, float dir) {
    int half = HS / 2, heads = NH + NKV;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float inv_freq = rope_inv_freq(theta, i, HS);
        for (int bt = blockIdx.x; bt < BT; bt += gridDim.x) {
            float angle = (float)(pos ? pos[bt] : bt % T) * inv_freq;
            float c = cosf(angle), s = dir * sinf(angle);
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
                        x[i] = u[j] * c - v[j] * s;
                        x[i + half] = v[j] * c + u[j] * s;
                    }
            }
        }
    }
}

static void rope(float *q, int ldq, float *k, int ldk, const int32_t *pos, float theta, int B,
                 int T, int NH, int NKV, int HS, float dir) {
    int BT = B * T;
    if (BT <= 0 || NH <= 0 || HS < 2) return;
    unsigned blocks = BT < ROPE_BLOCKS ? (unsigned)BT : (unsigned)ROPE_BLOCKS;
    rope_kernel<<<blocks, dim3(32, ROPE_HEADS)>>>(q, ldq, k, ldk, pos, theta, BT, T, NH,
                                                  k ? NKV : 0, HS, dir);
    CUDA_LAUNCHED("rope");
}

void cuda_rope_forward(float *q, int ldq, float *k, int ldk, const int32_t *pos, float theta, int B,
                       int T, int NH, int NKV, int HS) {
    rope(q, ldq, k, ldk, pos, theta, B, T, NH, NKV, HS, 1.0f);
}

void cuda_rope_backward(float *dq, float *dk, const int32_t *pos, float theta, int B, int T, int NH,
                        int NKV, int HS) {
    rope(dq, NH * HS, dk, NKV * HS, pos, theta, B, T, NH, NKV, HS, -1.0f);
}
