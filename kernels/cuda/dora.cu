/* dora.cu: DoRA's ops (lora.use_dora): the weight norm per output feature, and the rescaling of
 * an adapted linear's output by mag / norm with its gradients (under lora dropout, with the rest
 * that lora_matmul.cu's lora_dropout_rest feeds). The norm is a block a row (its sum of squares in
 * double, reduced in a fixed order); forward is elementwise; backward's dmag is a column sum over
 * the rows, split over the rows as lora_backward_bf16's weight gradients are, the splits' partials
 * added in split order by a second launch: no atomics, the same bits every run. */
#include "cuda_common.cuh"

/* norm[j] = || W[j] + scale * B[j] @ A ||, a block for row j: B's row in shared memory (R
 * floats, read as broadcasts), a thread a column i at a time walking A down the column
 * (coalesced across the block); t summed in k order and written as the CPU writes it, so that
 * the two round alike but for the GPU's contractions into fma. */
__global__ void dora_norm_kernel(float *norm, const float *W, int ldw, const float *A,
                                 const float *B, float scale, int C, int R) {
    extern __shared__ float b[];
    size_t j = blockIdx.x;
    for (int k = threadIdx.x; k < R; k += blockDim.x) b[k] = B[j * R + k];
    __syncthreads();
    const float *w = W + j * ldw;
    double sum = 0.0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float t = 0.0f;
        for (int k = 0; k < R; k++) t += b[k] * A[(size_t)k * C + i];
        float v = w[i] + scale * t;
        sum += (double)v * v;
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) norm[j] = (float)sqrt(sum);
}

void cuda_dora_norm(float *norm, const float *W, int ldw, const float *A, const float *B,
                    float scale, int rows, int C, int R) {
    if (rows <= 0) return;
    dora_norm_kernel<<<rows, CUDA_THREADS, (size_t)R * sizeof(float)>>>(norm, W, ldw, A, B, scale,
                                                                        C, R);
    CUDA_LAUNCHED("dora_norm");
}

/* A thread takes 4 consecutive columns of a row (one float4 each where aligned): pre = (y -
 * bias) - rest, out = (mag / norm * pre + bias) + rest, y's values all loaded before out's
 * stored (out may be y). Each product and sum rounded apart (__fmul_rn, __fadd_rn: no fma), as
 * the CPU rounds them. */
__global__ void dora_forward_kernel(float *out, float *pre, const float *y, int ldy,
                                    const float *mag, const float *norm, const float *bias,
                                    const float *rest, int N, int OC) {
    size_t groups = ((size_t)OC + 3) / 4;
    GRID_STRIDE(t, N * groups) {
        size_t n = index_div(t, groups), c = 4 * (t - n * groups);
        float v[4], b[4] = {}, r[4] = {}, m[4], d[4];
        load4(v, y + n * ldy, c, OC);
        if (bias) load4(b, bias, c, OC);
        if (rest) load4(r, rest + n * OC, c, OC);
        for (int k = 0; k < 4; k++) v[k] = v[k] - b[k] - r[k];
        store4(pre + n * OC, v, c, OC);
        if (!out) continue;
        load4(m, mag, c, OC), load4(d, norm, c, OC);
        for (int k = 0; k < 4 && c + k < (size_t)OC; k++)
            v[k] = __fadd_rn(__fadd_rn(__fmul_rn(m[k] / d[k], v[k]), b[k]), r[k]);
        store4(out + n * ldy, v, c, OC);
    }
}

void cuda_dora_forward(float *out, float *pre, const float *y, int ldy, const float *mag,
                       const float *norm, const float *bias, const float *rest, int N, int OC) {
    if (N <= 0 || OC <= 0) return;
    size_t groups = (size_t)N * ((OC + 3) / 4);
    dora_forward_kernel<<<cuda_blocks(groups, CUDA_THREADS), CUDA_THREADS>>>(
        out, pre, y, ldy, mag, norm, bias, rest, N, OC);
    CUDA_LAUNCHED("dora_forward");
}

/* A thread a column j of split blockIdx.y (rows n0.. n0 + split_rows): gs = mag / norm * g and
 * grest = g - gs over them, and partial[split, j] = their sum of g * pre, in double, stored as
 * f32 (coalesced across j). gs and grest alias no input (__restrict__), so later rows' loads
 * need not wait for a row's stores. */
__global__ void dora_backward_kernel(float *__restrict__ gs, float *__restrict__ grest,
                                     float *partial, const float *g, int ldg, const float *pre,
                                     const float *mag, const float *norm, int N, int OC,
                                     int split_rows) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= OC) return;
    int n0 = blockIdx.y * split_rows, n1 = min(N, n0 + split_rows);
    float c = mag[j] / norm[j];
    double sum = 0.0;
    for (size_t n = n0; n < (size_t)n1; n++) {
        float d = g[n * ldg + j], s = __fmul_rn(c, d);
        gs[n * OC + j] = s;
        if (grest) grest[n * OC + j] = d - s;
        sum += (double)d * pre[n * OC + j];
    }
    partial[(size_t)blockIdx.y * OC + j] = (float)sum;
}

/* dmag[j] += the splits' partials, added in split order in double, / norm[j] */
__global__ void dora_dmag_kernel(float *dmag, const float *partial, const float *norm, int OC,
                                 int splits) {
    GRID_STRIDE(j, OC) {
        double sum = 0.0;
        for (int s = 0; s < splits; s++) sum += partial[(size_t)s * OC + j];
        dmag[j] += (float)(sum / norm[j]);
    }
}

/* At most ops_lora_grad_splits(N) splits (the scratch's rows) of split_rows rows, the last
 * maybe fewer, none empty. */
void cuda_dora_backward(float *gs, float *grest, float *dmag, const float *g, int ldg,
                        const float *pre, const float *mag, const float *norm, float *scratch,
                        int N, int OC) {
    if (N <= 0 || OC <= 0) return;
    int splits = (int)ops_lora_grad_splits((size_t)N);
    int split_rows = (N + splits - 1) / splits;
    splits = (N + split_rows - 1) / split_rows;
    dim3 grid(((unsigned)OC + CUDA_THREADS - 1) / CUDA_THREADS, (unsigned)splits);
    dora_backward_kernel<<<grid, CUDA_THREADS>>>(gs, grest, scratch, g, ldg, pre, mag, norm, N, OC,
                                                 split_rows);
    CUDA_LAUNCHED("dora_backward");
    dora_dmag_kernel<<<cuda_blocks((size_t)OC, CUDA_THREADS), CUDA_THREADS>>>(dmag, scratch, norm,
                                                                              OC, splits);
    CUDA_LAUNCHED("dora_backward (dmag)");
}
