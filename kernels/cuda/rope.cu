/* rope.cu: rotary position embedding in place on [B,T,NH*HS] (HF Llama's
 * rotate_half layout), forward and its transpose for backward. Thread x takes
 * frequency i (a warp reads 32 consecutive floats of a head half) and works out
 * its inverse frequency once, in the same arithmetic as the CPU reference
 * (rope_inv_freq, a double pow); the block then walks its tokens, and for each
 * rotates that pair in every head thread y visits, so the sinf and cosf of a
 * token are shared by the heads and no index needs a division. Not fused into
 * the q/k projections. */
#include "cuda_common.cuh"
#include "loraft/activation.h"

/* blockDim.y: heads rotated at once; heads a thread loads before it stores; blocks at most
 * (each walks BT / ROPE_BLOCKS tokens, so the pow is rare) */
enum { ROPE_HEADS = 4, ROPE_UNROLL = 3, ROPE_BLOCKS = 2048 };

/* dir = -1 rotates by -angle (the transpose). */
__global__ void rope_kernel(float *x, const int32_t *pos, float theta, int BT, int T, int NH,
                            int HS, float dir) {
    int half = HS / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float inv_freq = rope_inv_freq(theta, i, HS);
        for (int bt = blockIdx.x; bt < BT; bt += gridDim.x) {
            float angle = (float)(pos ? pos[bt] : bt % T) * inv_freq;
            float c = cosf(angle), s = dir * sinf(angle), *row = x + (size_t)bt * NH * HS;
            /* ROPE_UNROLL heads' pairs loaded before any is stored: more loads in flight */
            for (int h0 = threadIdx.y; h0 < NH; h0 += ROPE_UNROLL * blockDim.y) {
                float u[ROPE_UNROLL], v[ROPE_UNROLL];
#pragma unroll
                for (int k = 0, h = h0; k < ROPE_UNROLL; k++, h += blockDim.y)
                    if (h < NH) u[k] = row[h * HS + i], v[k] = row[h * HS + i + half];
#pragma unroll
                for (int k = 0, h = h0; k < ROPE_UNROLL; k++, h += blockDim.y)
                    if (h < NH) {
                        row[h * HS + i] = u[k] * c - v[k] * s;
                        row[h * HS + i + half] = v[k] * c + u[k] * s;
                    }
            }
        }
    }
}

static void rope(float *x, const int32_t *pos, float theta, int B, int T, int NH, int HS,
                 float dir) {
    int BT = B * T;
    if (BT <= 0 || NH <= 0 || HS < 2) return;
    unsigned blocks = BT < ROPE_BLOCKS ? (unsigned)BT : (unsigned)ROPE_BLOCKS;
    rope_kernel<<<blocks, dim3(32, ROPE_HEADS)>>>(x, pos, theta, BT, T, NH, HS, dir);
    CUDA_LAUNCHED("rope");
}

void cuda_rope_forward(float *x, const int32_t *pos, float theta, int B, int T, int NH, int HS) {
    rope(x, pos, theta, B, T, NH, HS, 1.0f);
}

void cuda_rope_backward(float *dx, const int32_t *pos, float theta, int B, int T, int NH, int HS) {
    rope(dx, pos, theta, B, T, NH, HS, -1.0f);
}
