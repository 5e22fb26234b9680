/* rope.cu: rotary position embedding in place on [B,T,NH*HS] (HF Llama's
 * rotate_half layout), forward and its transpose for backward. One thread per
 * rotated pair; the angle is recomputed per pair (sin/cos are cheap next to the
 * memory traffic), in the same float arithmetic as the CPU reference. Not fused
 * into the q/k projections. */
#include "cuda_common.cuh"

/* n = B*T*NH*(HS/2) pairs; dir = -1 rotates by -angle (the transpose). */
__global__ void rope_kernel(float *x, const int32_t *pos, float theta, int T, int NH, int HS,
                            float dir, size_t n) {
    int half = HS / 2;
    GRID_STRIDE(idx, n) {
        size_t i = idx % half, head = idx / half, bt = head / NH;
        float p = (float)(pos ? pos[bt] : (int)(bt % T));
        float angle = p * (1.0f / powf(theta, (float)(2 * i) / (float)HS));
        float c = cosf(angle), s = dir * sinf(angle);
        float *a = x + head * HS + i, *b = a + half;
        float u = *a, v = *b;
        *a = u * c - v * s;
        *b = v * c + u * s;
    }
}

static void rope(float *x, const int32_t *pos, float theta, int B, int T, int NH, int HS,
                 float dir) {
    size_t n = (size_t)B * T * NH * (HS / 2);
    if (!n) return;
    rope_kernel<<<cuda_blocks(n, CUDA_THREADS), CUDA_THREADS>>>(x, pos, theta, T, NH, HS, dir, n);
    CUDA_LAUNCHED("rope");
}

void cuda_rope_forward(float *x, const int32_t *pos, float theta, int B, int T, int NH, int HS) {
    rope(x, pos, theta, B, T, NH, HS, 1.0f);
}

void cuda_rope_backward(float *dx, const int32_t *pos, float theta, int B, int T, int NH, int HS) {
    rope(dx, pos, theta, B, T, NH, HS, -1.0f);
}
