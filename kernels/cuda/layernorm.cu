/* layernorm.cu: layer norm and RMS norm (Llama) over the last dimension,
 * forward and backward. RMS norm is layer norm without centring and bias, so
 * both run the same kernels with `rms` set (mean taken as 0). One warp per row; a lane takes
 * four columns at a time, chunk i of its row being the four at 4 lane + 128 i. The kernels are
 * compiled for V = 1, 2, 4, 8 or 16 chunks a lane, the fewest that hold the row: the whole row
 * is loaded into registers at once (every load in flight before any is used), and the later
 * passes over it read those registers, not memory. A row longer than 2,048 floats reads the
 * chunks past the sixteenth again in every pass (from L1). The backward adds up the
 * weight/bias gradients in its dinp pass, a row of sums a warp in shared memory (a lane owns its
 * columns there: plain adds, where shared atomics were a compare-and-swap loop on sm_90 that the
 * block's warps contended for), the warps' rows joined at the block's end. The
 * forward also takes the residual stream's dropout and add (residual_norm_forward): its first
 * pass forms x = drop(a) + b. Qwen3's norm over each head of q and k (head_norm_forward) is a
 * kernel of its own: rows of at most 256 values, strided, in place. */
#include "cuda_common.cuh"

/* warps a block (a row each at a time); rows a warp when the backward sums columns, so that
 * fewer blocks meet in global atomics */
enum { LN_WARPS = 8, LN_ROWS_PER_WARP = 4, LN_MAX_CHUNKS = 16 };

/* Blocks an SM must hold (__launch_bounds__): two, so that ptxas keeps a kernel of up to 8 chunks
 * a lane within 128 registers (129 put one block of 8 warps on an SM: the H200 measured the norms
 * at 27-35 % of copy bandwidth); 16 chunks would spill there, so they keep one. */
constexpr int ln_min_blocks(int chunks) {
    return chunks <= 8 ? 2 : 1;
}

/* The columns of a warp's row of backward's weight-gradient sums: dweight's, and dbias's after
 * them (if any) */
__host__ __device__ inline int ln_sum_cols(int C, const float *dbias) {
    return dbias ? 2 * C : C;
}

__device__ inline int chunk_col(int lane, int i) {
    return 4 * lane + 128 * i;
}

/* v = drop(v; p, seed) + r for the four columns from c of row n (element n C + c + k) */
__device__ inline void add_dropped(float v[4], const float r[4], size_t n, int c, int C, float p,
                                   uint64_t seed) {
    for (int k = 0; k < 4; k++) v[k] = v[k] * rng_dropout_scale(seed, n * C + c + k, p) + r[k];
}

/* sum of (v - m)^2 over the columns below C */
__device__ inline float squares4(const float v[4], float m, int c, int C) {
    float s = 0.0f;
    for (int k = 0; k < 4 && c + k < C; k++) s += (v[k] - m) * (v[k] - m);
    return s;
}

/* The output pass over four columns of row n: xhat = (x - m) r, y = xhat w + b into out and (not
 * NULL) out_bf16 (rows ldb apart), xhat into xh (not NULL). */
__device__ inline void norm_out4(float *out, uint16_t *out_bf16, int ldb, uint16_t *xh,
                                 const float x[4], float m, float r, const float *weight,
                                 const float *bias, size_t n, int c, int C) {
    float w[4] = {1.0f, 1.0f, 1.0f, 1.0f}, b[4] = {0.0f, 0.0f, 0.0f, 0.0f}, h[4], y[4];
    if (weight) load4(w, weight, c, C);
    if (bias) load4(b, bias, c, C);
    for (int k = 0; k < 4; k++) h[k] = (x[k] - m) * r, y[k] = h[k] * w[k] + b[k];
    if (out) store4(out + n * C, y, c, C);
    if (out_bf16) store4_bf16(out_bf16 + n * ldb, y, c, C);
    if (xh) store4_bf16(xh + n * C, h, c, C);
}

/* out[N,C] and out_bf16 (rows ldb apart; either NULL) = (x - mean) * rstd * weight + bias with
 * x = inp, or (res not NULL) x = drop(inp; p, seed) + res, kept in sum (not NULL); mean[N],
 * rstd[N] and xh [N,C] = bf16((x - mean) * rstd) saved (if not NULL). rms: mean is 0 (not
 * computed). A row past V chunks a lane keeps x's tail in sum, or in out (then not NULL), and
 * reads it again there. */
template <int V>
__global__ void __launch_bounds__(LN_WARPS * 32, ln_min_blocks(V))
    layernorm_forward_kernel(float *out, uint16_t *out_bf16, int ldb, float *sum, float *mean,
                             float *rstd, uint16_t *xh, const float *inp, const float *res, float p,
                             uint64_t seed, const OpsStep *step, const float *weight,
                             const float *bias, float eps, int N, int C, bool rms) {
    int lane = threadIdx.x & 31;
    if (res) seed ^= step_seed(step);
    WARP_ROWS(n, N) {
        const float *a = inp + n * C, *b = res ? res + n * C : NULL;
        float *kept = sum ? sum + n * C : NULL;
        float *tail = b ? (kept ? kept : out + n * C) : NULL; /* where the tail's x is read */
        float v[V][4], s = 0.0f;
#pragma unroll
        for (int i = 0; i < V; i++) load4(v[i], a, chunk_col(lane, i), C); /* zero past C */
        if (b) {
            float r[V][4];
#pragma unroll
            for (int i = 0; i < V; i++) load4(r[i], b, chunk_col(lane, i), C);
#pragma unroll
            for (int i = 0; i < V; i++) {
                add_dropped(v[i], r[i], n, chunk_col(lane, i), C, p, seed);
                if (kept) store4(kept, v[i], chunk_col(lane, i), C);
            }
        }
#pragma unroll
        for (int i = 0; i < V; i++) s += (v[i][0] + v[i][1]) + (v[i][2] + v[i][3]);
        for (int c = chunk_col(lane, V); c < C; c += 128) {
            float t[4], r[4];
            load4(t, a, c, C);
            if (b) load4(r, b, c, C), add_dropped(t, r, n, c, C, p, seed), store4(tail, t, c, C);
            s += (t[0] + t[1]) + (t[2] + t[3]);
        }
        const float *x = tail ? tail : a;
        float m = rms ? 0.0f : warp_sum(s) / C, ss = 0.0f;
#pragma unroll
        for (int i = 0; i < V; i++) ss += squares4(v[i], m, chunk_col(lane, i), C);
        for (int c = chunk_col(lane, V); c < C; c += 128) {
            float t[4];
            load4(t, x, c, C);
            ss += squares4(t, m, c, C);
        }
        float r = 1.0f / sqrtf(warp_sum(ss) / C + eps);
#pragma unroll
        for (int i = 0; i < V; i++)
            norm_out4(out, out_bf16, ldb, xh, v[i], m, r, weight, bias, n, chunk_col(lane, i), C);
        for (int c = chunk_col(lane, V); c < C; c += 128) {
            float t[4];
            load4(t, x, c, C);
            norm_out4(out, out_bf16, ldb, xh, t, m, r, weight, bias, n, c, C);
        }
        if (lane == 0 && mean) mean[n] = m;
        if (lane == 0 && rstd) rstd[n] = r;
    }
}

/* One row's four columns from c, loaded for the backward: g = dout, h = xhat (from x, m and r,
 * or from xh's bf16), zero past C. */
__device__ inline void load_grad4(float g[4], float h[4], const float *dy, const float *x,
                                  const uint16_t *xh, float m, float r, int c, int C) {
    load4(g, dy, c, C);
    load4_saved(h, x, xh, c, C);
    if (x)
        for (int k = 0; k < 4; k++) h[k] = c + k < C ? (h[k] - m) * r : 0.0f;
}

/* sums[c + k] += v[k] for the four columns from c below C: one 16-byte read and write where
 * whole and aligned (a warp's lanes then touch 512 consecutive bytes) */
__device__ inline void add4_shared(float *sums, const float v[4], int c, int C) {
    if (c + 4 <= C && C % 4 == 0) {
        float4 *p = (float4 *)(sums + c), s = *p;
        *p = float4{s.x + v[0], s.y + v[1], s.z + v[2], s.w + v[3]};
        return;
    }
    for (int k = 0; k < 4 && c + k < C; k++) sums[c + k] += v[k];
}

/* The first backward pass over four columns: sg += sum g w, sgn += sum g w h; the column sums
 * dweight += g h and dbias += g into the warp's sums[c], sums[C + c] (params; no other lane of
 * the warp adds to these columns). */
__device__ inline void grad_sums4(float *sg, float *sgn, float *sums, bool params, bool dbias,
                                  const float g[4], const float h[4], const float *weight, int c,
                                  int C) {
    float w[4] = {1.0f, 1.0f, 1.0f, 1.0f}, gh[4];
    if (weight) load4(w, weight, c, C);
    for (int k = 0; k < 4; k++) *sg += g[k] * w[k], *sgn += g[k] * w[k] * h[k], gh[k] = g[k] * h[k];
    if (!params) return;
    add4_shared(sums, gh, c, C);
    if (dbias) add4_shared(sums + C, g, c, C);
}

/* The second: dinp (+)= r (g w - sg - h sgn) over four columns of row n, and (not NULL)
 * dinp_bf16 = bf16 of its new value. */
__device__ inline void grad_out4(float *dinp, uint16_t *dinp_bf16, const float g[4],
                                 const float h[4], const float *weight, float sg, float sgn,
                                 float r, int add, size_t n, int c, int C) {
    float w[4] = {1.0f, 1.0f, 1.0f, 1.0f}, d[4], old[4];
    if (weight) load4(w, weight, c, C);
    if (dinp && add) load4(old, dinp + n * C, c, C);
    for (int k = 0; k < 4; k++)
        d[k] = r * (g[k] * w[k] - sg - h[k] * sgn) + (dinp && add ? old[k] : 0.0f);
    if (dinp) store4(dinp + n * C, d, c, C);
    if (dinp_bf16) store4_bf16(dinp_bf16 + n * C, d, c, C);
}

/* dinp[N,C] (+)= rstd * (g - mean(g) - norm * mean(g * norm)) (add 0: =), g = weight * dout,
 * dinp_bf16 (not NULL, add 0) its bf16 copy, and dweight[c] += sum_n dout * norm, dbias[c] +=
 * sum_n dout in the same pass over dout and inp (norm = (inp - mean) * rstd), or over dout and xh
 * (inp NULL: norm = xh's values): each warp's column sums gather in its row of dynamic shared
 * memory (ln_sum_cols: [0..C) for dweight, [C..2C) for dbias), the rows are added in warp order
 * at the end and reach the outputs in one global atomic per column per block. Any output may be
 * NULL; mean NULL: RMS norm (no centring, no mean(g) term). */
template <int V>
__global__ void __launch_bounds__(LN_WARPS * 32, ln_min_blocks(V))
    layernorm_backward_kernel(float *dinp, uint16_t *dinp_bf16, float *dweight, float *dbias,
                              const float *dout, const float *inp, const uint16_t *xh,
                              const float *weight, const float *mean, const float *rstd, int N,
                              int C, int add) {
    extern __shared__ float shared_sums[];
    bool params = dweight || dbias, dx = dinp || dinp_bf16;
    int cols = ln_sum_cols(C, dbias), warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    float *sums = shared_sums + (threadIdx.x >> 5) * cols; /* this warp's */
    if (params)
        for (int c = threadIdx.x; c < warps * cols; c += blockDim.x) shared_sums[c] = 0.0f;
    __syncthreads();
    WARP_ROWS(n, N) {
        const float *x = inp ? inp + n * C : NULL, *dy = dout + n * C;
        const uint16_t *h = x ? NULL : xh + n * C;
        float m = mean && x ? mean[n] : 0.0f, r = rstd[n], sg = 0.0f, sgn = 0.0f;
        float g[V][4], hn[V][4];
#pragma unroll
        for (int i = 0; i < V; i++) load_grad4(g[i], hn[i], dy, x, h, m, r, chunk_col(lane, i), C);
#pragma unroll
        for (int i = 0; i < V; i++)
            grad_sums4(&sg, &sgn, sums, params, dbias, g[i], hn[i], weight, chunk_col(lane, i), C);
        for (int c = chunk_col(lane, V); c < C; c += 128) {
            float gt[4], ht[4];
            load_grad4(gt, ht, dy, x, h, m, r, c, C);
            grad_sums4(&sg, &sgn, sums, params, dbias, gt, ht, weight, c, C);
        }
        if (!dx) continue;
        sg = mean ? warp_sum(sg) / C : 0.0f;
        sgn = warp_sum(sgn) / C;
#pragma unroll
        for (int i = 0; i < V; i++)
            grad_out4(dinp, dinp_bf16, g[i], hn[i], weight, sg, sgn, r, add, n, chunk_col(lane, i),
                      C);
        for (int c = chunk_col(lane, V); c < C; c += 128) {
            float gt[4], ht[4];
            load_grad4(gt, ht, dy, x, h, m, r, c, C);
            grad_out4(dinp, dinp_bf16, gt, ht, weight, sg, sgn, r, add, n, c, C);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; params && c < cols; c += blockDim.x) {
        float sum = 0.0f;
        for (int w = 0; w < warps; w++) sum += shared_sums[w * cols + c];
        float *out = c >= C ? dbias + (c - C) : dweight ? dweight + c : NULL;
        if (out) atomicAdd(out, sum);
    }
}

/* log2 of the chunks a lane for rows of C floats: the fewest of 1, 2, 4, 8, 16 that hold the row
 * (16 for longer rows) */
static int chunks_log2(int C) {
    int l = 0;
    while ((128 << l) < C && (1 << l) < LN_MAX_CHUNKS) l++;
    return l;
}

template <int V>
static void forward_launch(float *out, uint16_t *out_bf16, int ldb, float *sum, float *mean,
                           float *rstd, uint16_t *xh, const float *a, const float *b, float p,
                           uint64_t seed, const float *weight, const float *bias, float eps, int N,
                           int C) {
    layernorm_forward_kernel<V><<<cuda_blocks((size_t)N, LN_WARPS), LN_WARPS * 32>>>(
        out, out_bf16, ldb, sum, mean, rstd, xh, a, b, p, seed, b ? cuda_step() : NULL, weight,
        bias, eps, N, C, mean == NULL);
}

/* x = b ? drop(a) + b : a (sum = x), out = its layer norm, or RMS norm when mean is NULL */
static void norm_forward(float *out, uint16_t *out_bf16, int ldb, float *sum, float *mean,
                         float *rstd, uint16_t *xh, const float *a, const float *b, float p,
                         uint64_t seed, const float *weight, const float *bias, float eps, int N,
                         int C) {
    static void (*const launch[])(float *, uint16_t *, int, float *, float *, float *, uint16_t *,
                                  const float *, const float *, float, uint64_t, const float *,
                                  const float *, float, int,
                                  int) = {forward_launch<1>, forward_launch<2>, forward_launch<4>,
                                          forward_launch<8>, forward_launch<16>};
    if (N <= 0 || C <= 0) return;
    launch[chunks_log2(C)](out, out_bf16, ldb, sum, mean, rstd, xh, a, b, p, seed, weight, bias,
                           eps, N, C);
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, uint16_t *xh, const float *inp,
                            const float *weight, const float *bias, float eps, int N, int C) {
    norm_forward(out, NULL, C, NULL, mean, rstd, xh, inp, NULL, 0.0f, 0, weight, bias, eps, N, C);
    CUDA_LAUNCHED("layernorm_forward");
}

void cuda_residual_norm_forward(float *out, uint16_t *out_bf16, int ldb, float *sum, float *mean,
                                float *rstd, uint16_t *xh, const float *a, const float *b, float p,
                                uint64_t seed, const float *weight, const float *bias, float eps,
                                int N, int C) {
    if (!out && b && !sum) /* the kernel keeps a long row's x in one of them */
        CUDA_FAIL("residual_norm_forward: out NULL with b but no sum");
    else
        norm_forward(out, out_bf16, ldb, sum, mean, rstd, xh, a, b, p, seed, weight, bias, eps, N,
                     C);
    CUDA_LAUNCHED("residual_norm_forward");
}

/* Each head (H of HS values a row, rows ld apart) RMS-normalised in place, a warp a head: its
 * values into raw [N*H, HS] and its rstd into rstd[N*H] first. A lane holds the values lane + 32 i
 * of its head: HS at most HEAD_MAX (RoPE's largest head). */
enum { HEAD_MAX = 256 };
__global__ void head_norm_kernel(float *x, int ld, float *raw, float *rstd, const float *weight,
                                 float eps, int N, int H, int HS) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(r, (size_t)N * H) {
        float *head = x + r / H * ld + r % H * HS, v[HEAD_MAX / 32], ss = 0.0f;
#pragma unroll
        for (int i = 0; i < HEAD_MAX / 32; i++) {
            int c = lane + 32 * i;
            v[i] = c < HS ? head[c] : 0.0f;
            ss += v[i] * v[i];
            if (c < HS) raw[r * HS + c] = v[i];
        }
        float s = 1.0f / sqrtf(warp_sum(ss) / HS + eps);
#pragma unroll
        for (int i = 0; i < HEAD_MAX / 32; i++) {
            int c = lane + 32 * i;
            if (c < HS) head[c] = v[i] * s * weight[c];
        }
        if (lane == 0) rstd[r] = s;
    }
}

void cuda_head_norm_forward(float *x, int ld, float *raw, float *rstd, const float *weight,
                            float eps, int N, int H, int HS) {
    if (HS > HEAD_MAX)
        CUDA_FAIL("head_norm_forward: a head of more than 256 values");
    else if (N > 0 && H > 0 && HS > 0)
        head_norm_kernel<<<cuda_blocks((size_t)N * H, LN_WARPS), LN_WARPS * 32>>>(
            x, ld, raw, rstd, weight, eps, N, H, HS);
    CUDA_LAUNCHED("head_norm_forward");
}

template <int V>
static void backward_launch(float *dinp, uint16_t *dinp_bf16, float *dweight, float *dbias,
                            const float *dout, const float *inp, const uint16_t *xh,
                            const float *weight, const float *mean, const float *rstd, int N, int C,
                            int acc) {
    /* the weight gradients' sums: a row a warp, as many warps as 48 KB hold (8 up to 768
     * columns with a bias, 1,536 without; one at least, asking for more shared memory) */
    bool params = dweight || dbias;
    size_t row = (size_t)ln_sum_cols(C, dbias) * sizeof(float);
    int warps = params ? (int)((48 << 10) / row) : LN_WARPS;
    warps = warps < 1 ? 1 : warps > LN_WARPS ? LN_WARPS : warps;
    unsigned blocks = cuda_blocks((size_t)N, warps * (params ? LN_ROWS_PER_WARP : 1));
    size_t shared = params ? warps * row : 0;
    if (shared > (48 << 10) && cudaFuncSetAttribute(layernorm_backward_kernel<V>,
                                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    (int)shared) != cudaSuccess) {
        CUDA_FAIL("layernorm_backward: C too large for the column sums in shared memory");
        return;
    }
    layernorm_backward_kernel<V><<<blocks, warps * 32, shared>>>(
        dinp, dinp_bf16, dweight, dbias, dout, inp, xh, weight, mean, rstd, N, C, acc);
}

void cuda_layernorm_backward(float *dinp, uint16_t *dinp_bf16, float *dweight, float *dbias,
                             const float *dout, const float *inp, const uint16_t *xh,
                             const float *weight, const float *mean, const float *rstd, int N,
                             int C, int acc) {
    static void (*const launch[])(float *, uint16_t *, float *, float *, const float *,
                                  const float *, const uint16_t *, const float *, const float *,
                                  const float *, int, int, int) = {
        backward_launch<1>, backward_launch<2>, backward_launch<4>, backward_launch<8>,
        backward_launch<16>};
    if (N <= 0 || C <= 0) return;
    launch[chunks_log2(C)](dinp, dinp_bf16, dweight, dbias, dout, inp, xh, weight, mean, rstd, N, C,
                           acc);
    CUDA_LAUNCHED("layernorm_backward");
}

void cuda_rmsnorm_backward(float *dinp, uint16_t *dinp_bf16, float *dweight, const float *dout,
                           const float *inp, const uint16_t *xh, const float *weight,
                           const float *rstd, int N, int C, int acc) {
    cuda_layernorm_backward(dinp, dinp_bf16, dweight, NULL, dout, inp, xh, weight, NULL, rstd, N, C,
                            acc);
}
