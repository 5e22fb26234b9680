/* attention.cu: multi-head softmax attention with a padding mask, an optional causal mask and
 * grouped KV heads (GQA), flash-style: the probabilities P [B,NH,T,T] never exist in memory.
 * Each kernel is one launch over all B*NH heads (grid.x, so B*NH may pass 65,535):
 *
 *   forward: a block owns warps * FWD_ROWS query rows of one head and streams the keys past
 *     them in tiles of KEY_TILE in shared memory, with the online softmax (running max m and sum l,
 *     the output rescaled when m grows); it writes out and lse = m + log l.
 *   dq:      the same walk over the keys, recomputing P = exp(s - lse) and dP = dout v^T.
 *   dk, dv:  a block owns warps * KEY_ROWS keys of one KV head and walks the queries of every query
 *     head of its group, so the G = NH/NKV heads sharing a KV head add into registers and the
 *     block is the only writer of its dk, dv rows: no atomics, no per-head copies to reduce,
 *     and results do not depend on the order blocks run in. Recomputing S and dP once more
 *     than a single atomic-dq kernel would costs 2/5 more FLOPs; atomics on dq would cost a
 *     read-modify-write per element per key tile.
 *
 * Both backward kernels need D = rowsum(dout * out) per query row, computed first (a fourth
 * kernel, a warp per row) into the scratch [B,NH,T], O(T) (under bf16 the scratch also holds
 * dout's bf16 copy, and forward leaves those of q, k and v in the saved buffer for backward:
 * AttCopies). Causal blocks skip the key tiles (forward, dq) or
 * query tiles (dk, dv) that the mask hides entirely.
 *
 * Under fp32 and tf32 (cuda_precision()), FP32 CUDA cores, one warp per row: in the query-side
 * kernels lane l takes key j0 + l of a
 * tile for the dot products and owns dimensions l, l+32, ... of the accumulators (HS <= 256:
 * DIMS per lane, compiled for four up to HS 128 and eight above); the key-side kernel mirrors it
 * with lane l taking query i0 + l. Shared memory is dynamic, rows of exactly HS floats (41.5 KB
 * per block at HS = 128, half that at 64, 81 KB at 256). Dot products run over d in a rotated
 * order starting at the lane's own offset, so for HS a multiple of 32 the lanes of a warp read 32
 * different banks. Under bf16, the same three kernels on tensor cores (the *_tc kernels below,
 * where their layout is described).
 *
 * Dropout on P uses index ((b*NH + h)*T + i)*T + j, P's element index, as the CPU does. Scores
 * are ops.h's AttnScore: scale * q . k, soft-capped where softcap > 0 (Gemma 2); the tensor-core
 * and cached kernels compile the cap apart (Capped, CAP), so that the common ones keep their code,
 * the f32 kernels branch on it a score. */
#include "attention_cudnn.h"
#include "cuda_common.cuh"
#include "loraft/activation.h"
#include "mma_bf16.cuh"

#include <type_traits>

enum {
    HS_MAX = 256,     /* head sizes up to this; larger is an error */
    ATT_WARPS = 4,    /* warps per block, at most (fewer when T is short) */
    KEY_TILE = 32,    /* keys per shared tile (forward, dq) = lanes */
    FWD_ROWS = 4,     /* query rows per warp: forward */
    DQ_ROWS = 2,      /* query rows per warp: dq (dout rows in shared too) */
    KEY_ROWS = 2,     /* keys per warp: dk, dv */
    QUERY_TILE = 32,  /* queries per shared tile (dk, dv) = lanes */
    CACHED_WARPS = 8, /* attention_cached: warps (rows) per block */
};

/* Calls launch(std::integral_constant<int, N>()) with N = NARROW up to HS 128, else 2 * NARROW:
 * the kernels that keep a lane's share of a head row in registers (N floats: DIMS, CACHED_DIMS),
 * compiled for both, so that head sizes up to 128 keep the registers they had. */
template <int NARROW, typename F> static void with_row_share(int HS, F launch) {
    if (HS <= 128)
        launch(std::integral_constant<int, NARROW>());
    else
        launch(std::integral_constant<int, 2 * NARROW>());
}

/* The block's tile of query rows (grid.y): under the causal mask a tile sees keys up to its last
 * row, so the last tiles do the most work; they run first (blocks start in blockIdx order), so
 * the longest no longer trail the grid. The dk/dv grid (key tiles, the first see the most
 * queries) has that order already. */
__device__ inline int query_tile(int causal) {
    return causal ? (int)(gridDim.y - 1 - blockIdx.y) : (int)blockIdx.y;
}

/* The shape of one call; ok is 0 (error noted) if it cannot be served; add: backward's gradients
 * are added to (OPS_ADD) or overwrite (OPS_SET) what dq, dk, dv hold; ldq, ldkv: the rows of
 * q and of k and v, and backward's of dq and of dk and dv (ops.h; NH*HS and NKV*HS unless the
 * call sets them); rope:
 * the rotation backward's tensor-core kernels give dq and dk as they store them (half 0: none). */
typedef struct Heads {
    int B, T, NH, NKV, HS, ok, add, ldq, ldkv, ldo; /* ldo: bf16(out)'s rows */
    int window;                                     /* the sliding window (causal), 0: none */
    const OpsStep *step;                            /* its seed XORed into the dropout's */
    Rope rope;
    AttnScore score; /* the scores' scale and soft-capping (ops.h) */
} Heads;

static Heads heads(int B, int T, int NH, int NKV, int HS, AttnScore score) {
    Heads g = {
        B,       T,       NH,       NKV,     HS, B > 0 && T > 0 && NH > 0 && NKV > 0 && HS > 0,
        OPS_ADD, NH * HS, NKV * HS, NH * HS, 0,  NULL,
        {},      score};
    if (g.ok && NH % NKV) {
        CUDA_FAIL("attention: NH is not a multiple of NKV");
        g.ok = 0;
    }
    if (g.ok && HS > HS_MAX) {
        CUDA_FAIL("attention: head size HS > 256 is not supported by the CUDA kernels");
        g.ok = 0;
    }
    return g;
}

/* Key j of sequence b is visible from query i: inside the sequence, not padding, and when
 * causal neither in the future nor (window > 0) window or more positions back. keep is sequence
 * b's mask or NULL. */
__device__ inline bool key_visible(const int32_t *keep, int causal, int window, int i, int j,
                                   int T) {
    return j < T && (!keep || keep[j]) && (!causal || (j <= i && (!window || i - j < window)));
}

/* The first key query i may see (0, or its window's first), rounded down to a tile of n. */
__host__ __device__ inline int first_key_tile(int i, int window, int n) {
    return window && i >= window ? (i - window + 1) / n * n : 0;
}
/* One past the last query that sees key j (T, or where its window ends). */
__host__ __device__ inline int query_end(int j, int window, int T) {
    return window && j + window < T ? j + window : T;
}

/* dst[r*W + d] = rows r0 + r of a head at src (row stride ld) as float or bf16 (rounded), zero
 * past row T and past dimension HS (a row of W >= HS); all threads. */
template <typename E>
__device__ inline void load_rows(E *dst, const float *src, size_t ld, int r0, int n, int T, int HS,
                                 int W) {
    for (int e = threadIdx.x; e < n * W; e += blockDim.x) {
        int r = e / W, d = e % W;
        store_as(dst + e, r0 + r < T && d < HS ? src[(size_t)(r0 + r) * ld + d] : 0.0f);
    }
}

/* x . y over HS dimensions in the lane's rotated order (see the top of the file). */
__device__ inline float dot_rotated(const float *x, const float *y, int HS, int start) {
    float s = 0.0f;
    for (int t = 0, d = start; t < HS; t++) {
        s += x[d] * y[d];
        if (++d == HS) d = 0;
    }
    return s;
}

/* activation.h's soft_cap(s, cap) = cap * tanh(s / cap), tanh(x) as 1 - 2 / (e^2x + 1) with e^2x
 * one ex2_approx: six instructions where tanhf takes some thirty and a branch (on sm_90 a
 * soft-capped forward tile at HS 64 issues 8.1 instructions per HMMA instead of 20.1, at HS 256
 * 4.6 instead of 7.6). Within 3e-7 * cap of it (tanhf: 2e-8 * cap), which exp(score) turns into a
 * relative error far under P's bf16 rounding; +-cap where 2^x overflows or flushes to 0. */
__device__ inline float soft_cap_fast(float s, float cap) {
    return cap - __fdividef(2.0f * cap, ex2_approx(s * (2.0f * LOG2E / cap)) + 1.0f);
}

/* The score of a visible key from its dot product with the query (ops.h AttnScore): scaled, then
 * soft-capped where softcap > 0. */
__device__ inline float score_of(float dot, AttnScore a) {
    float s = dot * a.scale;
    return a.softcap > 0.0f ? soft_cap_fast(s, a.softcap) : s;
}
/* dS's factor from a score s (score_of's): the cap's slope where soft-capped, else 1. */
__device__ inline float score_slope(float s, AttnScore a) {
    return a.softcap > 0.0f ? soft_cap_slope(s, a.softcap) : 1.0f;
}

/* acc[c] += sum_{jj < n} w[jj] * rows[jj*HS + lane + 32c]: the lane's dimensions of a
 * weighted sum of shared rows. The warp's weights go through shared memory (w, written by
 * lane jj before a __syncwarp) rather than 32 shuffles. */
template <int DIMS>
__device__ inline void acc_rows(float acc[DIMS], const float *w, const float *rows, int n, int HS,
                                int lane) {
    for (int jj = 0; jj < n; jj++) {
#pragma unroll
        for (int c = 0; c < DIMS; c++)
            if (lane + 32 * c < HS) acc[c] += w[jj] * rows[jj * HS + lane + 32 * c];
    }
}

/* Offsets of row 0 of query head h of sequence b in out and dout [B,T,NH*HS] (q), and in q, dq
 * (qin) and k, v, dk, dv (kvin) of its KV head (rows g.ldq, g.ldkv apart). */
struct HeadPtrs {
    size_t q, qin, kvin, outh; /* outh: bf16(out)'s, rows g.ldo apart */
    const int32_t *keep;
};
__device__ inline HeadPtrs head_ptrs(const Heads g, int b, int h, const int32_t *mask) {
    HeadPtrs p;
    size_t kvh = (size_t)(h / (g.NH / g.NKV)) * g.HS;
    p.q = (size_t)b * g.T * g.NH * g.HS + (size_t)h * g.HS;
    p.qin = (size_t)b * g.T * g.ldq + (size_t)h * g.HS;
    p.kvin = (size_t)b * g.T * g.ldkv + kvh;
    p.outh = (size_t)b * g.T * g.ldo + (size_t)h * g.HS;
    p.keep = mask ? mask + (size_t)b * g.T : NULL;
    return p;
}

/* Where the dk/dv kernels' block of query head h (of sequence b) puts its sums: under GQA (NH >
 * NKV) its share, [B, T, NH*HS] (overwritten; group_sum_kernel adds a group's in head order, the
 * same bits every run), else dk and dv themselves ((+)= as g.add says). A block a query head,
 * not a KV group: SmolLM2's step at 4 x 2048 tokens made 192 blocks of a group of 3, of uneven
 * causal work, for the H200's 264 slots, and the longest ran 3 heads' tiles in a row. */
struct KvGrads {
    size_t at, ld; /* row 0's offset, the row stride */
    int add;
};
__device__ inline KvGrads kv_grads(const Heads g, int b, int h, const HeadPtrs &hp) {
    if (g.NH == g.NKV) return KvGrads{hp.kvin, (size_t)g.ldkv, g.add};
    return KvGrads{((size_t)b * g.T * g.NH + h) * g.HS, (size_t)g.NH * g.HS, OPS_SET};
}

/* grid (B*NH, query blocks of warps*FWD_ROWS rows). out, lse: see ops.h. DIMS: the accumulator
 * dimensions a lane owns (HS <= 32 * DIMS), as in the other two. */
template <int DIMS>
__global__ void flash_forward_kernel(float *out, float *lse, const float *q, const float *k,
                                     const float *v, const int32_t *mask, int causal, float p,
                                     uint64_t seed, const Heads g) {
    seed ^= step_seed(g.step);
    int bh = blockIdx.x, T = g.T, HS = g.HS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int rows = (blockDim.x >> 5) * FWD_ROWS, i0 = query_tile(causal) * rows, start = lane % HS;
    extern __shared__ float smem[]; /* fwd_shared_bytes: Qs, Ks, Vs, then W per warp */
    float *Qs = smem, *Ks = Qs + rows * HS, *Vs = Ks + KEY_TILE * HS;
    float *W = Vs + KEY_TILE * HS + warp * KEY_TILE; /* this warp's row of P, dropped */
    HeadPtrs hp = head_ptrs(g, bh / g.NH, bh % g.NH, mask);
    size_t ldo = (size_t)g.NH * HS;
    float m[FWD_ROWS], l[FWD_ROWS], acc[FWD_ROWS][DIMS];
    for (int r = 0; r < FWD_ROWS; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        for (int c = 0; c < DIMS; c++) acc[r][c] = 0.0f;
    }
    load_rows(Qs, q + hp.qin, g.ldq, i0, rows, T, HS, HS);
    int keys = causal ? min(T, i0 + rows) : T;
    for (int j0 = first_key_tile(i0, g.window, KEY_TILE); j0 < keys; j0 += KEY_TILE) {
        __syncthreads(); /* Qs written; the previous tile's readers done */
        load_rows(Ks, k + hp.kvin, g.ldkv, j0, KEY_TILE, T, HS, HS);
        load_rows(Vs, v + hp.kvin, g.ldkv, j0, KEY_TILE, T, HS, HS);
        __syncthreads();
        int j = j0 + lane, n = min(KEY_TILE, keys - j0);
#pragma unroll
        for (int r = 0; r < FWD_ROWS; r++) {
            int i = i0 + warp * FWD_ROWS + r;
            if (i >= T) break; /* warp-uniform */
            float s = key_visible(hp.keep, causal, g.window, i, j, T)
                          ? score_of(dot_rotated(Qs + (warp * FWD_ROWS + r) * HS, Ks + lane * HS,
                                                 HS, start),
                                     g.score)
                          : -INFINITY;
            float m_new = fmaxf(m[r], warp_max(s));
            if (m_new == -INFINITY) continue; /* nothing visible yet: warp-uniform */
            /* exp_approx as the CPU's, but exactly 0 for hidden keys and the first rescale */
            float pj = s == -INFINITY ? 0.0f : exp_approx(s - m_new);
            float rescale = m[r] == -INFINITY ? 0.0f : exp_approx(m[r] - m_new);
            l[r] = l[r] * rescale + warp_sum(pj);
            m[r] = m_new;
            for (int c = 0; c < DIMS; c++) acc[r][c] *= rescale;
            W[lane] = pj * rng_row_dropout(seed, (uint64_t)bh * T + i, j, p);
            __syncwarp();
            acc_rows<DIMS>(acc[r], W, Vs, n, HS, lane);
            __syncwarp(); /* W read before the next row writes it */
        }
    }
    for (int r = 0; r < FWD_ROWS; r++) {
        int i = i0 + warp * FWD_ROWS + r;
        if (i >= T) break;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (int c = 0; c < DIMS; c++)
            if (lane + 32 * c < HS) out[hp.q + i * ldo + lane + 32 * c] = acc[r][c] * inv;
        if (lane == 0) lse[(size_t)bh * T + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : INFINITY;
    }
}

/* grid (B*NH, query blocks of warps*DQ_ROWS rows): dq += scale dS k, dS = P * (dP dropped - D)
 * (times the soft-cap's slope), P = exp(s - lse) recomputed, dP = dout v^T. */
template <int DIMS>
__global__ void flash_dq_kernel(float *dq, const float *dout, const float *q, const float *k,
                                const float *v, const float *lse, const float *D,
                                const int32_t *mask, int causal, float p, uint64_t seed,
                                const Heads g) {
    seed ^= step_seed(g.step);
    int bh = blockIdx.x, T = g.T, HS = g.HS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int rows = (blockDim.x >> 5) * DQ_ROWS, i0 = query_tile(causal) * rows, start = lane % HS;
    extern __shared__ float smem[]; /* dq_shared_bytes: Qs, dOs, Ks, Vs, then W per warp */
    float *Qs = smem, *dOs = Qs + rows * HS, *Ks = dOs + rows * HS, *Vs = Ks + KEY_TILE * HS;
    float *W = Vs + KEY_TILE * HS + warp * KEY_TILE; /* this warp's row of dS */
    HeadPtrs hp = head_ptrs(g, bh / g.NH, bh % g.NH, mask);
    size_t ldo = (size_t)g.NH * HS;
    float row_lse[DQ_ROWS], row_D[DQ_ROWS], acc[DQ_ROWS][DIMS];
    for (int r = 0; r < DQ_ROWS; r++) {
        int i = i0 + warp * DQ_ROWS + r;
        row_lse[r] = i < T ? lse[(size_t)bh * T + i] : INFINITY;
        row_D[r] = i < T ? D[(size_t)bh * T + i] : 0.0f;
        for (int c = 0; c < DIMS; c++) acc[r][c] = 0.0f;
    }
    load_rows(Qs, q + hp.qin, g.ldq, i0, rows, T, HS, HS);
    load_rows(dOs, dout + hp.q, ldo, i0, rows, T, HS, HS);
    int keys = causal ? min(T, i0 + rows) : T;
    for (int j0 = first_key_tile(i0, g.window, KEY_TILE); j0 < keys; j0 += KEY_TILE) {
        __syncthreads();
        load_rows(Ks, k + hp.kvin, g.ldkv, j0, KEY_TILE, T, HS, HS);
        load_rows(Vs, v + hp.kvin, g.ldkv, j0, KEY_TILE, T, HS, HS);
        __syncthreads();
        int j = j0 + lane, n = min(KEY_TILE, keys - j0);
#pragma unroll
        for (int r = 0; r < DQ_ROWS; r++) {
            int i = i0 + warp * DQ_ROWS + r, w = (warp * DQ_ROWS + r) * HS;
            if (i >= T) break; /* warp-uniform */
            float ds = 0.0f;
            if (key_visible(hp.keep, causal, g.window, i, j, T)) {
                float s = score_of(dot_rotated(Qs + w, Ks + lane * HS, HS, start), g.score);
                float P = exp_approx(s - row_lse[r]);
                float dP = dot_rotated(dOs + w, Vs + lane * HS, HS, start) *
                           rng_row_dropout(seed, (uint64_t)bh * T + i, j, p);
                ds = P * (dP - row_D[r]) * score_slope(s, g.score);
            }
            W[lane] = ds;
            __syncwarp();
            acc_rows<DIMS>(acc[r], W, Ks, n, HS, lane);
            __syncwarp();
        }
    }
    for (int r = 0; r < DQ_ROWS; r++) {
        int i = i0 + warp * DQ_ROWS + r;
        if (i >= T) break;
        for (int c = 0; c < DIMS; c++)
            if (lane + 32 * c < HS)
                put_grad(dq + hp.qin + i * g.ldq + lane + 32 * c, acc[r][c] * g.score.scale, g.add);
    }
}

/* grid (B*NH, key blocks of warps*KEY_ROWS keys): for the block's keys and query head h, over
 * every query that can see them, dv += dropout(P)^T dout and dk += scale dS^T q, into kv_grads'
 * place. dk or dv may be NULL. */
template <int DIMS>
__global__ void flash_dkdv_kernel(float *dk, float *dv, const float *dout, const float *q,
                                  const float *k, const float *v, const float *lse, const float *D,
                                  const int32_t *mask, int causal, float p, uint64_t seed,
                                  const Heads g) {
    seed ^= step_seed(g.step);
    int b = blockIdx.x / g.NH, h = blockIdx.x % g.NH, T = g.T, HS = g.HS;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, start = lane % HS;
    int nkeys = (blockDim.x >> 5) * KEY_ROWS, j0 = blockIdx.y * nkeys;
    extern __shared__ float smem[]; /* dkdv_shared_bytes: Qs, dOs, Ks, Vs, then Wp, Wd per warp */
    float *Qs = smem, *dOs = Qs + QUERY_TILE * HS, *Ks = dOs + QUERY_TILE * HS;
    float *Vs = Ks + nkeys * HS, *Wp = Vs + nkeys * HS + warp * 2 * QUERY_TILE;
    float *Wd = Wp + QUERY_TILE; /* this warp's dropped P and dS against one key */
    size_t ldo = (size_t)g.NH * HS;
    float dk_acc[KEY_ROWS][DIMS], dv_acc[KEY_ROWS][DIMS];
    for (int r = 0; r < KEY_ROWS; r++)
        for (int c = 0; c < DIMS; c++) dk_acc[r][c] = dv_acc[r][c] = 0.0f;
    HeadPtrs hp = head_ptrs(g, b, h, mask);
    load_rows(Ks, k + hp.kvin, g.ldkv, j0, nkeys, T, HS, HS);
    load_rows(Vs, v + hp.kvin, g.ldkv, j0, nkeys, T, HS, HS);
    size_t bh = (size_t)b * g.NH + h;
    /* causal: queries before the block's first key see none of its keys, nor those past the
     * window of its last */
    int i_end = causal ? query_end(j0 + nkeys - 1, g.window, T) : T;
    for (int i0 = causal ? j0 / QUERY_TILE * QUERY_TILE : 0; i0 < i_end; i0 += QUERY_TILE) {
        __syncthreads(); /* Ks, Vs written; the previous tile's readers done */
        load_rows(Qs, q + hp.qin, g.ldq, i0, QUERY_TILE, T, HS, HS);
        load_rows(dOs, dout + hp.q, ldo, i0, QUERY_TILE, T, HS, HS);
        __syncthreads();
        int i = i0 + lane, n = min(QUERY_TILE, T - i0);
        float row_lse = i < T ? lse[bh * T + i] : INFINITY, row_D = i < T ? D[bh * T + i] : 0;
#pragma unroll
        for (int r = 0; r < KEY_ROWS; r++) {
            int w = warp * KEY_ROWS + r, j = j0 + w, kw = w * HS;
            if (j >= T) break; /* warp-uniform */
            float pd = 0.0f, ds = 0.0f;
            if (i < T && key_visible(hp.keep, causal, g.window, i, j, T)) {
                float s = score_of(dot_rotated(Qs + lane * HS, Ks + kw, HS, start), g.score);
                float P = exp_approx(s - row_lse);
                float keep = rng_row_dropout(seed, bh * T + i, j, p);
                pd = P * keep;
                ds = P * (dot_rotated(dOs + lane * HS, Vs + kw, HS, start) * keep - row_D) *
                     score_slope(s, g.score);
            }
            Wp[lane] = pd, Wd[lane] = ds;
            __syncwarp();
            if (dv) acc_rows<DIMS>(dv_acc[r], Wp, dOs, n, HS, lane);
            if (dk) acc_rows<DIMS>(dk_acc[r], Wd, Qs, n, HS, lane);
            __syncwarp();
        }
    }
    KvGrads to = kv_grads(g, b, h, hp);
    for (int r = 0; r < KEY_ROWS; r++) {
        int j = j0 + warp * KEY_ROWS + r;
        if (j >= T) break;
        for (int c = 0; c < DIMS; c++) {
            size_t at = to.at + j * to.ld + lane + 32 * c;
            if (lane + 32 * c >= HS) continue;
            if (dv) put_grad(dv + at, dv_acc[r][c], to.add);
            if (dk) put_grad(dk + at, dk_acc[r][c] * g.score.scale, to.add);
        }
    }
}

/* Warps per block for `per_warp` rows each: most (ATT_WARPS unless a kernel's shared memory
 * takes fewer), fewer when T has fewer rows (a short sequence leaves no warp idle). */
static int att_warps(int T, int per_warp, int most) {
    int w = (T + per_warp - 1) / per_warp;
    return w < most ? w : most;
}

/* The launch of a kernel with `per_warp` rows per warp over T rows of `problems` heads, at most
 * `most` warps a block; returns the warps per block. */
static int att_launch_shape(dim3 *grid, unsigned *threads, int problems, int T, int per_warp,
                            int most = ATT_WARPS) {
    int warps = att_warps(T, per_warp, most), rows = warps * per_warp;
    *grid = dim3((unsigned)problems, (unsigned)((T + rows - 1) / rows));
    *threads = 32u * (unsigned)warps;
    return warps;
}

/* Dynamic shared memory of each kernel, in bytes: rows of HS floats and a 32-float row of
 * weights per warp (two for dk, dv). At HS = 128 and four warps, at most 41.5 KB: under
 * the 48 KB any launch may take without cudaFuncSetAttribute; at HS = 256 up to 81 KB, which
 * the launch asks for (allow_shared). */
static size_t fwd_shared_bytes(int warps, int HS) {
    return sizeof(float) * ((size_t)(warps * FWD_ROWS + 2 * KEY_TILE) * HS + warps * KEY_TILE);
}
static size_t dq_shared_bytes(int warps, int HS) {
    return sizeof(float) * ((size_t)(2 * warps * DQ_ROWS + 2 * KEY_TILE) * HS + warps * KEY_TILE);
}
static size_t dkdv_shared_bytes(int warps, int HS) {
    return sizeof(float) *
           ((size_t)(2 * QUERY_TILE + 2 * warps * KEY_ROWS) * HS + 2 * warps * QUERY_TILE);
}

/* ---- model.precision bf16: the same three kernels with their products on tensor cores ----
 * mma.sync m16n8k16 (mma_bf16.cuh): bf16 operands, f32 accumulators, every fragment in
 * registers. q, k, v (forward, into the saved buffer that backward reads them from) and dout
 * (backward, into the scratch) are first rounded to bf16, head by head ([B, heads, T, HP], HP =
 * HS rounded up to 16, zero past HS), so that a tile is whole
 * 16-byte chunks: cp.async copies the next tile into shared memory while the warps compute on
 * this one (two buffers, one barrier a tile). Shared tiles have rows of HP and 8 more elements
 * of stride, so that ldmatrix's eight rows fall in different banks; rows past T are zeros. A warp
 * owns 16 rows, or MT = 2 m16 tiles of them at HP 64 (TcShape), queries or (dk, dv) keys; its
 * scores and dP are the c fragments of mma, so lane 4g + t holds rows g and g + 8 and columns 2t,
 * 2t + 1 of each n8 tile: the softmax, lse, D and dS = P * (M * dP - D) are computed there in
 * f32 (one FFMA and one ex2 a score; masks only on the tiles that hide a key), row statistics
 * joined over the four lanes of a row by two shuffles, and P (dropped) and dS packed to bf16
 * straight into the a fragments of the next product. out, dq, dk and dv accumulate in c fragments
 * over the whole walk. */
/* mma.sync with bf16 needs sm_80: for older targets the kernels below compile to a trap that
 * never runs (Ops.best_precision keeps those devices at fp32). */
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define TC_ARCH 1
#else
#define TC_ARCH 0
#endif
typedef __nv_bfloat16 bf16;
#if TC_ARCH /* (unused in the trap builds) */
static constexpr float LN2 = 0.693147180559945309f;
/* How far, in log2 units, a tile's scores may pass forward's stale running max before it moves
 * (test_gpu_parity's reference mirrors it) */
static constexpr float STALE_MAX = 8.0f;
#endif

enum {
    TC = 16,      /* rows of an mma tile (a warp has TcShape's MT of them) */
    BWD_TILE = 32 /* keys (dq) or queries (dk, dv) per shared tile: backward, up to HP 128 */
};

__host__ __device__ inline int padded_hs(int HS) {
    return (HS + TC - 1) / TC * TC;
}
/* Elements between rows of a bf16 tile in shared memory, for rows of HP (8 more: ldmatrix's eight
 * rows in different banks), and for head size HS. */
__host__ __device__ inline int tile_ld(int HP) {
    return HP + 8;
}
__host__ __device__ inline int tile_stride(int HS) {
    return tile_ld(padded_hs(HS));
}
/* Bytes of one buffer of dk, dv's query tiles of `rows` queries: q and dout rows, then lse, D and
 * the rows' dropout keys (16-byte multiple: a row is, and 16 rows of floats). */
__host__ __device__ inline size_t query_tile_bytes(int rows, int HS) {
    return sizeof(bf16) * 2 * rows * tile_stride(HS) + sizeof(float) * 3 * rows;
}

/* Up to three heads_bf16 copies (forward's q, k, v) of one launch: copy j of src[j]'s H[j] heads,
 * rows ld[j] apart (H[j] 0: none). With rope.half, copies 0 and 1 (q and k) are of the rotated
 * heads (position t); src stays as it is. */
struct HeadCopies {
    bf16 *dst[3];
    const float *src[3];
    int H[3], ld[3];
    Rope rope;
};

/* v[e] = x[e] for e < 8 below n, zeros past it: two 16-byte loads when whole and aligned. */
__device__ inline void load8(float (&v)[8], const float *x, int n) {
    if (n >= 8 && (uintptr_t)x % 16 == 0) {
        float4 lo = *(const float4 *)x, hi = *(const float4 *)(x + 4);
        v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w;
        v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
        return;
    }
#pragma unroll
    for (int e = 0; e < 8; e++) v[e] = e < n ? x[e] : 0.0f;
}

/* load8 of bf16 values, widened: one 16-byte load when whole and aligned */
__device__ inline void load8(float (&v)[8], const bf16 *x, int n) {
    if (n >= 8 && (uintptr_t)x % 16 == 0) {
        uint4 q = *(const uint4 *)x;
        widen_bf16x2(v, q.x), widen_bf16x2(v + 2, q.y), widen_bf16x2(v + 4, q.z),
            widen_bf16x2(v + 6, q.w);
        return;
    }
#pragma unroll
    for (int e = 0; e < 8; e++) v[e] = e < n ? __bfloat162float(x[e]) : 0.0f;
}

/* y[0..8) = bf16 of v: one 16-byte store (y 16-byte aligned: the copies' rows are) */
__device__ inline void store8_bf16(bf16 *y, const float (&v)[8]) {
    *(uint4 *)y = make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]),
                             pack_bf16x2(v[4], v[5]), pack_bf16x2(v[6], v[7]));
}

/* Pairs 8c .. 8c + 7 of token bt = b T + t in every head of q and k (copies 0 and 1): their cos
 * and sin computed once, then each head's two halves read, turned and stored as bf16, two heads'
 * loads in flight before their stores. */
__device__ inline void turn_heads(const HeadCopies &hc, size_t bt, int c, int T, int HS) {
    const Rope &r = hc.rope;
    int HP = padded_hs(HS), b = (int)index_div(bt, T), t = (int)(bt - (size_t)b * T), d = 8 * c;
    float cs[8], sn[8];
#pragma unroll
    for (int e = 0; e < 8; e++) rope_cs(r, t, d + e, &cs[e], &sn[e]);
    for (int j = 0; j < 2; j++) {
        const float *x = hc.src[j] + bt * hc.ld[j] + d;
        bf16 *y = hc.dst[j] + ((size_t)b * hc.H[j] * T + t) * HP + d;
        for (int h = 0; h < hc.H[j]; h += 2) {
            float u[2][8], v[2][8];
            int n = min(2, hc.H[j] - h);
#pragma unroll
            for (int k = 0; k < 2; k++)
                if (k < n)
                    load8(u[k], x + (h + k) * HS, 8), load8(v[k], x + (h + k) * HS + r.half, 8);
#pragma unroll
            for (int k = 0; k < 2; k++) {
                if (k >= n) continue;
#pragma unroll
                for (int e = 0; e < 8; e++) rope_turn(&u[k][e], &v[k][e], cs[e], sn[e]);
                bf16 *row = y + (size_t)(h + k) * T * HP;
                store8_bf16(row, u[k]), store8_bf16(row + r.half, v[k]);
            }
        }
    }
}

/* dst [B, H, T, HP] = bf16 of src [B, T, H*HS] (rows ld apart; zeros past HS) for each copy of
 * hc. With rope, first a thread per token and 8 pairs of rotated dims, which turns them in every
 * head of q and k (turn_heads: their cos and sin once, where a thread per head computed the same
 * NH + NKV times); then a thread per 8 elements of the rest (v, and the dims of q and k past the
 * rotated ones), the copies' in turn, head-major, so that a warp writes whole rows. */
__global__ void heads_bf16_kernel(HeadCopies hc, int B, int T, int HS) {
    int HP = padded_hs(HS), chunks = HP / 8, half = hc.rope.half;
    size_t BT = (size_t)B * T, turners = BT * (half / 8), plain[3];
    for (int j = 0; j < 3; j++) plain[j] = BT * hc.H[j] * (chunks - (j < 2 ? half / 4 : 0));
    GRID_STRIDE(i, turners + plain[0] + plain[1] + plain[2]) {
        if (i < turners) {
            size_t bt = index_div(i, half / 8);
            turn_heads(hc, bt, (int)(i - bt * (half / 8)), T, HS);
            continue;
        }
        size_t c = i - turners;
        int j = c < plain[0] ? 0 : c < plain[0] + plain[1] ? 1 : 2;
        c -= j > 0 ? plain[0] : 0, c -= j > 1 ? plain[1] : 0;
        int H = hc.H[j], skip = j < 2 ? half / 4 : 0, per_row = chunks - skip; /* rotated chunks */
        size_t row = index_div(c, per_row), bh = index_div(row, T); /* row = (b*H + h)*T + t */
        int d = 8 * (skip + (int)(c - row * per_row)), t = (int)(row - bh * T);
        int b = (int)index_div(bh, H);
        size_t at = ((size_t)b * T + t) * hc.ld[j] + (bh - (size_t)b * H) * HS;
        float v[8];
        load8(v, hc.src[j] + at + d, HS - d);
        store8_bf16(hc.dst[j] + row * HP + d, v);
    }
}

/* Lanes a row of flash_rowdot_kernel: the power of two at or above HP/8 (8 columns a lane), at
 * most 32 */
static int rowdot_lanes(int HS) {
    int G = 1;
    while (G < 32 && 8 * G < padded_hs(HS)) G *= 2;
    return G;
}

/* D[B*NH*T] = rowsum(dout * out) per query row (row = (b*NH + h)*T + i); out f32 or (bf16
 * forward) its bf16 copy, rows g.ldo apart. With douth (bf16) the same pass writes dout's
 * heads_bf16 copy there, from the values it read. G lanes a row (rowdot_lanes), 8 columns a lane
 * at a time, their sums joined by log2 G shuffles: a warp a row took 64-bit divisions and five
 * shuffles for 64 columns. */
template <typename E>
__global__ void flash_rowdot_kernel(float *D, bf16 *douth, const float *dout, const E *out, int G,
                                    const Heads g) {
    int HS = g.HS, HP = padded_hs(HS), k = threadIdx.x & (G - 1), cols = douth ? HP : HS;
    size_t rows = (size_t)g.B * g.NH * g.T, per_warp = 32 / G;
    size_t warp = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    for (size_t r0 = warp * per_warp; r0 < rows; r0 += (size_t)gridDim.x * blockDim.x / G) {
        size_t row = r0 + (threadIdx.x & 31) / G;
        float s = 0.0f;
        if (row < rows) {
            size_t bh = index_div(row, g.T), b = index_div(bh, g.NH),
                   bt = b * g.T + (row - bh * g.T);
            size_t at = bt * g.NH * HS + (bh - b * g.NH) * HS;
            const E *o = out + (sizeof(E) == 2 ? bt * g.ldo + (bh - b * g.NH) * HS : at);
            for (int d = 8 * k; d < cols; d += 8 * G) {
                float x[8], y[8];
                load8(x, dout + at + d, HS - d), load8(y, o + d, HS - d);
#pragma unroll
                for (int e = 0; e < 8; e++) s += x[e] * y[e];
                if (douth) store8_bf16(douth + row * HP + d, x);
            }
        }
        for (int m = G / 2; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
        if (row < rows && k == 0) D[row] = s;
    }
}

/* Queues the copy of rows r0 .. r0+n-1 of a head's [T, HP] bf16 rows at src into dst (stride
 * lds), zeros past row T. All threads; lands at cp_async_wait_all. */
__device__ inline void load_tile_async(bf16 *dst, int lds, const bf16 *src, int r0, int n, int T,
                                       int HP) {
    int chunks = HP / 8;
    for (int c = threadIdx.x; c < n * chunks; c += blockDim.x) {
        int r = c / chunks, d = 8 * (c % chunks);
        bool ok = r0 + r < T;
        cp_async16(dst + r * lds + d, src + (size_t)(ok ? r0 + r : 0) * HP + d, ok);
    }
}

/* Adds to the n8 tiles of MT m16 tiles, c[t * N/8 + n] for t < MT, the products of MT m16
 * tiles of a (from a, stride ld, the tiles 16 rows apart) and the first N rows of b (stride ld),
 * both [.][HP], HP <= HMAX: c_t += a_t b^T over HP. Each b fragment is loaded once for the MT
 * products (MT = 2 halves the shared-memory reads per product). The whole warp. */
template <int N, int MT, int HMAX>
__device__ inline void mma_abt(float (*c)[4], const bf16 *a, const bf16 *b, int ld, int HP,
                               int lane) {
#pragma unroll
    for (int kc = 0; kc < HMAX / TC; kc++) {
        if (kc * TC >= HP) break;
        uint32_t fa[MT][4], fb[4];
#pragma unroll
        for (int t = 0; t < MT; t++) load_a(fa[t], a + t * TC * ld + kc * TC, ld, lane);
#pragma unroll
        for (int n = 0; n < N / TC; n++) {
            load_b_nk(fb, b + n * TC * ld + kc * TC, ld, lane);
#pragma unroll
            for (int t = 0; t < MT; t++) {
                mma_bf16_16816(c[t * (N / 8) + 2 * n], fa[t], fb);
                mma_bf16_16816(c[t * (N / 8) + 2 * n + 1], fa[t], fb + 2);
            }
        }
    }
}

/* acc[t * HMAX/8 + .] += w_t b over K rows for t < MT: w_t the c tiles of a [16][K] product,
 * w[t * K/8 + .] (made a fragments), b [K][HP] in shared memory (stride ld, HP <= HMAX), each b
 * fragment loaded once for the MT products. The whole warp. */
template <int K, int MT, int HMAX>
__device__ inline void mma_wb(float (*acc)[4], const float (*w)[4], const bf16 *b, int ld, int HP,
                              int lane) {
#pragma unroll
    for (int kc = 0; kc < K / TC; kc++) {
        uint32_t fa[MT][4], fb[4];
#pragma unroll
        for (int t = 0; t < MT; t++)
            c_to_a(fa[t], w[t * (K / 8) + 2 * kc], w[t * (K / 8) + 2 * kc + 1]);
#pragma unroll
        for (int dc = 0; dc < HMAX / TC; dc++) {
            if (dc * TC >= HP) break;
            load_b_kn(fb, b + kc * TC * ld + dc * TC, ld, lane);
#pragma unroll
            for (int t = 0; t < MT; t++) {
                mma_bf16_16816(acc[t * (HMAX / 8) + 2 * dc], fa[t], fb);
                mma_bf16_16816(acc[t * (HMAX / 8) + 2 * dc + 1], fa[t], fb + 2);
            }
        }
    }
}

/* Element q of an n8 tile nt in the lane's c fragments: row 8 * (q >> 1) + g, column 8 nt + 2t +
 * (q & 1) of the warp's tile. */
__device__ inline int c_row(int lane, int q) {
    return (lane >> 2) + 8 * (q >> 1);
}
__device__ inline int c_col(int lane, int nt, int q) {
    return 8 * nt + 2 * (lane & 3) + (q & 1);
}

/* x joined over the four lanes of a row (lanes 4g .. 4g+3). */
__device__ inline float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ inline float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* Bit c: key j0 + c of an N-key tile (N <= 64) is inside T and not padding. A load per lane
 * per 32 keys, joined by ballots, instead of one per score; a 16-key tile's bits from 16 on
 * cleared (tile_hides compares all of them). The whole warp. */
template <int N>
__device__ inline uint64_t visible_keys(const int32_t *keep, int j0, int T, int lane) {
    uint64_t bits = 0;
#pragma unroll
    for (int c0 = 0; c0 < N; c0 += 32)
        bits |= (uint64_t)__ballot_sync(0xffffffffu, key_visible(keep, 0, 0, 0, j0 + c0 + lane, T))
                << c0;
    return N < 32 ? bits & ((1ull << N) - 1) : bits;
}

/* Whether the warp's N-key tile from key j0 hides any score of its `rows` rows from w0: a key
 * past T or padding (visible, from visible_keys, not all ones), or (causal) a key after a row's
 * query or (window) before its window. Warp-uniform; most tiles hide none and skip
 * hide_scores. */
template <int N>
__device__ inline bool tile_hides(uint64_t visible, int causal, int window, int w0, int rows,
                                  int j0) {
    return visible != (N == 64 ? ~0ull : (1ull << N) - 1) ||
           (causal && (j0 + N - 1 > w0 || (window && j0 + window < w0 + rows)));
}

/* Sets the hidden scores of the tile to -inf (see tile_hides). The whole warp. */
template <int N>
__device__ inline void hide_scores(float (*s)[4], uint64_t visible, int causal, int window, int w0,
                                   int j0, int lane) {
#pragma unroll
    for (int nt = 0; nt < N / 8; nt++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
            int j = j0 + c_col(lane, nt, c);
            bool col_ok = visible >> (j - j0) & 1;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int e = 2 * h + c, i = w0 + c_row(lane, e);
                if (!col_ok || (causal && (j > i || (window && i - j >= window))))
                    s[nt][e] = -INFINITY;
            }
        }
}

/* hide_scores for the warp's MT m16 tiles (s[t * N/8 + .], rows from w0, 16 apart), when the
 * tile hides any key of them at all (tile_hides). The whole warp. */
template <int N, int MT>
__device__ inline void hide_tile(float (*s)[4], uint64_t visible, int causal, int window, int w0,
                                 int j0, int lane) {
    if (!tile_hides<N>(visible, causal, window, w0, MT * TC, j0)) return;
#pragma unroll
    for (int t = 0; t < MT; t++)
        hide_scores<N>(s + t * (N / 8), visible, causal, window, w0 + t * TC, j0, lane);
}

/* The factor that takes a tile's scores to log2 units: LOG2E * scale of the raw products q . k,
 * or (CAP) LOG2E of the soft-capped scores cap_tile made, in natural units already. */
template <bool CAP> __device__ inline float log2_scale(AttnScore a) {
    return CAP ? LOG2E : LOG2E * a.scale;
}

/* Soft-capping: the raw products s of the warp's MT m16 tiles of N keys become the capped scores
 * soft_cap(s * scale, cap), in natural units; before hide_tile, whose -inf the cap would make
 * -cap. The whole warp. */
template <int N, int MT> __device__ inline void cap_tile(float (*s)[4], AttnScore a) {
#pragma unroll
    for (int nt = 0; nt < MT * N / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[nt][e] = soft_cap_fast(s[nt][e] * a.scale, a.softcap);
}

/* dS's factor from a capped score s (cap_tile's): tanh's derivative, 0 for a hidden key's -inf
 * (whose P is 0: no -inf * 0). */
__device__ inline float cap_slope(float s, float cap) {
    return fmaxf(soft_cap_slope(s, cap), 0.0f);
}

/* Whether a lane's columns d, d + 1 (even d) of rows ld apart from x are one 8-byte word: then
 * the stores below take them in one (half the store and load instructions). */
__device__ inline bool pairs_aligned(const void *x, size_t ld, int HS) {
    return HS % 2 == 0 && ld % 2 == 0 && (uintptr_t)x % 8 == 0;
}
/* put_grad of x[0] and x[1] (8-byte aligned) */
__device__ inline void put_grad2(float *x, float u, float v, int add) {
    float2 old = add ? *(const float2 *)x : make_float2(0.0f, 0.0f);
    *(float2 *)x = add ? make_float2(old.x + u, old.y + v) : make_float2(u, v);
}
/* put_grad of columns d, d + 1 at x (d + 1 only below HS) */
__device__ inline void put_grads(float *x, float u, float v, int d, int HS, bool pairs, int add) {
    if (pairs) {
        put_grad2(x, u, v, add);
        return;
    }
    put_grad(x, u, add);
    if (d + 1 < HS) put_grad(x + 1, v, add);
}

/* grad[row][d] (+)= scale * the lane's elements of acc (HMAX/8 n8 tiles; put_grad), row = the
 * warp's 16 rows from r0 (at grad + r0 * ld), for rows < T and d < HS: a lane's elements 2h and
 * 2h + 1 of each n8 tile are columns d, d + 1 of its row h (c_row, c_col). */
template <int HMAX>
__device__ inline void add_tiles(float *grad, size_t ld, const float (*acc)[4], float scale, int r0,
                                 int T, int HS, int lane, int add) {
    bool pairs = pairs_aligned(grad, ld, HS);
    int d0 = c_col(lane, 0, 0);
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int r = r0 + c_row(lane, 2 * h);
        if (r >= T) continue;
        float *row = grad + (size_t)r * ld + d0;
#pragma unroll
        for (int c = 0; c < HMAX / 8; c++)
            if (8 * c + d0 < HS)
                put_grads(row + 8 * c, acc[c][2 * h] * scale, acc[c][2 * h + 1] * scale, 8 * c + d0,
                          HS, pairs, add);
    }
}

/* add_tiles of rope's gradient (rope_backward of what is added; position = row): column d < HS/2
 * and its partner d + HS/2 lie in the same lane, n8 tiles PAIR apart (HS = HPC). */
template <int HPC>
__device__ inline void add_tiles_turned(float *grad, size_t ld, const float (*acc)[4], float scale,
                                        int r0, int T, const Rope &rope, int lane, int add) {
    constexpr int PAIR = HPC / 16;
    bool pairs = pairs_aligned(grad, ld, HPC);
    int d0 = c_col(lane, 0, 0);
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int r = r0 + c_row(lane, 2 * h);
        if (r >= T) continue;
        float *row = grad + (size_t)r * ld + d0;
#pragma unroll
        for (int c = 0; c < PAIR; c++) {
            float u[2], v[2];
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float cs, sn;
                u[e] = acc[c][2 * h + e] * scale, v[e] = acc[c + PAIR][2 * h + e] * scale;
                rope_cs(rope, r, 8 * c + d0 + e, &cs, &sn);
                rope_turn(&u[e], &v[e], cs, -sn);
            }
            put_grads(row + 8 * c, u[0], u[1], 8 * c + d0, HPC, pairs, add);
            put_grads(row + 8 * c + HPC / 2, v[0], v[1], 8 * c + d0, HPC, pairs, add);
        }
    }
}

/* The bf16 rows [T, HP] of head h (of H heads) of sequence b in a heads_bf16 copy. */
__device__ inline const bf16 *head_rows(const bf16 *x, int b, int h, int H, int T, int HP) {
    return x + ((size_t)b * H + h) * T * HP;
}

/* A tensor-core kernel's compiled shape: HP up to HMAX (a lane's accumulators of an m16 tile are
 * DIMS = HMAX/8 n8 tiles of four floats), compiled whole at HPC = HP = 64, 128 or 256 (loops
 * unrolled whole, no branches on HP), else HPC 0: HP at run time, HMAX 128 or 256.
 * MT_FWD, MT_DQ, MT_BWD: m16 tiles of rows per warp (queries in forward and dq, keys in dk,
 * dv): two at HP 64 (32 rows), and in forward at HP 128 too, so each fragment of the streamed
 * tiles read from shared memory feeds two products (FlashAttention-2's layout); one at other
 * sizes, but for dq where an SM holds two blocks of 104 KB (DqPairs) and dk/dv in ROLES.
 * ROLES (HMAX 128 and 256): dk and dv in warps of their own, a pair a key tile
 * (flash_dkdv_roles_kernel), so that a warp keeps one accumulator, 128 floats a lane at MT_BWD
 * = 256 / HMAX tiles: at HP 128 two, and each fragment of the streamed tiles feeds two products
 * (one warp keeping both for one tile read 320 bytes of shared memory an mma, 219 in roles); at
 * HP 256 one, and S is computed once (dk and dv in launches of their own recomputed it).
 * FWD_KEYS: keys of forward's streamed tiles: 32 at HP 128, whose two m16 tiles a warp keep 128
 * f32 of out a lane (64 keys' scores would be 64 more: 255 registers and spills on sm_90), and
 * above (one m16 tile, as wide), else 64.
 * Above HP 128 (WIDE) the streamed tiles shrink so that a block fits 99 KB of shared memory (two
 * blocks an SM on sm_90): at HP 256 forward 99 KB (four warps, 32 keys), dq 99 KB (four warps,
 * BWD_ROWS = 16 keys), dk/dv 70 KB (16 queries).
 * CAP: soft-capped scores (Capped). */
template <int HPC_, int HMAX_> struct TcShape {
    static constexpr int HPC = HPC_, HMAX = HMAX_, DIMS = HMAX / 8; /* DIMS: n8 tiles of HMAX */
    static constexpr bool WIDE = HMAX > 128, ROLES = HMAX >= 128;
    static constexpr int MT_FWD = HPC == 64 || HPC == 128 ? 2 : 1, MT_DQ = HPC == 64 ? 2 : 1;
    static constexpr int MT_BWD = ROLES ? 256 / HMAX : 2;
    static constexpr int FWD_KEYS = HPC == 128 || WIDE ? 32 : 64;
    static constexpr int BWD_ROWS = WIDE ? 16 : BWD_TILE; /* dq's keys, dk/dv's queries a tile */
    static constexpr bool CAP = false;
};
/* Shape S with soft-capped scores (AttnScore.softcap > 0): kernels of their own, so that the
 * common ones keep their code (a block-uniform branch on the cap cost their tiles up to 5 % more
 * instructions on sm_90, and spills at HS 64). */
template <typename S> struct Capped : S { static constexpr bool CAP = true; };
/* Shape S with dq's warps on two m16 tiles at HP 128: each streamed fragment feeds two products,
 * 0.42 ldmatrix an mma in the tile loop where one tile took 0.67 (sm_90 SASS), which at the 512
 * bytes of each against an SM's 128 bytes of shared memory a clock bounded the tensor cores. Its
 * 104 KB a block of four warps fit only some GPUs: with_kernel_shape picks it where an SM holds
 * two such blocks (sm_90's 227 KB; sm_80 holds one, sm_86 and sm_89 none). */
template <typename S> struct DqPairs : S { static constexpr int MT_DQ = 2; };

/* grid (B*NH, query blocks of warps*MT*16 rows): flash_forward_kernel on tensor cores,
 * S::FWD_KEYS keys a tile; qh, kh, vh the heads_bf16 copies of q, k, v; outh receives bf16(out).
 * S: its TcShape; DROP: p > 0 (p = 0 compiles no dropout at all). Scores stay unscaled (S::CAP:
 * capped in natural units, cap_tile); the running max m is in log2 units (score * scale2), so P =
 * 2^(s scale2 - m) is one FFMA and one MUFU a score. m moves only when a tile's max passes it by
 * more than STALE_MAX (FlashAttention-4's lazy rescaling): P then stays under 2^STALE_MAX, which
 * f32 sums and bf16 products hold at the same relative precision, and a tile where no row of the
 * warp moved skips out's rescaling, HP/2 multiplies a lane an m16 tile (a quarter of the
 * forward's instructions at HP 128). */
template <typename S, bool DROP>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    flash_forward_tc_kernel(float *out, bf16 *outh, float *lse, const bf16 *qh, const bf16 *kh,
                            const bf16 *vh, const int32_t *mask, int causal, float p, uint64_t seed,
                            const Heads g) {
#if TC_ARCH
    constexpr int MT = S::MT_FWD, KEYS = S::FWD_KEYS;
    if (DROP) seed ^= step_seed(g.step);
    int bh = blockIdx.x, b = bh / g.NH, head = bh % g.NH, kvh = head / (g.NH / g.NKV), T = g.T;
    int HS = g.HS, HP = S::HPC ? S::HPC : padded_hs(HS), ld = tile_ld(HP);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rows = (blockDim.x >> 5) * MT * TC;
    int i0 = query_tile(causal) * rows, w0 = i0 + warp * MT * TC; /* the block's, the warp's */
    extern __shared__ __align__(128) unsigned char tc_smem[];     /* fwd_tc_shared_bytes */
    bf16 *Qs = (bf16 *)tc_smem, *KV = Qs + rows * ld;             /* two buffers of K then V */
    const bf16 *kb = head_rows(kh, b, kvh, g.NKV, T, HP), *vb = head_rows(vh, b, kvh, g.NKV, T, HP);
    HeadPtrs hp = head_ptrs(g, b, head, mask);
    size_t ldq = (size_t)g.NH * HS;
    float scale2 = log2_scale<S::CAP>(g.score), m[MT][2], l[MT][2] = {};
    float o[MT][S::DIMS][4] = {};
    uint32_t row_key[MT][2]; /* rng_row_key of the lane's rows (tile t, h) */
#pragma unroll
    for (int t = 0; t < MT; t++)
        for (int h = 0; h < 2; h++) {
            m[t][h] = -INFINITY;
            row_key[t][h] =
                DROP ? rng_row_key(seed, (uint64_t)bh * T + w0 + t * TC + 8 * h + (lane >> 2)) : 0;
        }
    int j_first = first_key_tile(i0, g.window, KEYS), keys = causal ? min(T, i0 + rows) : T;
    load_tile_async(Qs, ld, head_rows(qh, b, head, g.NH, T, HP), i0, rows, T, HP);
    load_tile_async(KV, ld, kb, j_first, KEYS, T, HP);
    load_tile_async(KV + KEYS * ld, ld, vb, j_first, KEYS, T, HP);
    cp_async_commit();
    for (int j0 = j_first, buf = 0; j0 < keys; j0 += KEYS, buf ^= 1) {
        cp_async_wait_all();
        __syncthreads(); /* this tile landed for all; the other buffer's readers done */
        bf16 *Ks = KV + buf * 2 * KEYS * ld, *Vs = Ks + KEYS * ld;
        if (j0 + KEYS < keys) { /* the next tile into the other buffer, during this one */
            bf16 *next = KV + (buf ^ 1) * 2 * KEYS * ld;
            load_tile_async(next, ld, kb, j0 + KEYS, KEYS, T, HP);
            load_tile_async(next + KEYS * ld, ld, vb, j0 + KEYS, KEYS, T, HP);
            cp_async_commit();
        }
        if (causal && (j0 > w0 + MT * TC - 1 || (g.window && j0 + KEYS - 1 <= w0 - g.window)))
            continue; /* every key hidden: warp-uniform */
        float s[MT][KEYS / 8][4] = {};
        uint64_t visible = visible_keys<KEYS>(hp.keep, j0, T, lane); /* loads under the mma */
        mma_abt<KEYS, MT, S::HMAX>(s[0], Qs + warp * MT * TC * ld, Ks, ld, HP, lane);
        if (S::CAP) cap_tile<KEYS, MT>(s[0], g.score);
        hide_tile<KEYS, MT>(s[0], visible, causal, g.window, w0, j0, lane);
#pragma unroll
        for (int t = 0; t < MT; t++) { /* the online softmax of tile t's rows g, g + 8 (h) */
            float mx[2] = {-INFINITY, -INFINITY}, sum[2] = {0.0f, 0.0f}, rescale[2], ms[2];
            bool moved = false;
#pragma unroll
            for (int nt = 0; nt < KEYS / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) mx[e >> 1] = fmaxf(mx[e >> 1], s[t][nt][e]);
            for (int h = 0; h < 2; h++) {
                float tile_max = quad_max(mx[h]) * scale2;
                rescale[h] = 1.0f;
                if (tile_max > m[t][h] + STALE_MAX) {            /* (always past -inf) */
                    rescale[h] = ex2_approx(m[t][h] - tile_max); /* 0 while m was -inf */
                    m[t][h] = tile_max, moved = true;
                }
                ms[h] = m[t][h] == -INFINITY ? 0.0f : m[t][h]; /* no key visible yet: P = 2^-inf */
            }
#pragma unroll
            for (int nt = 0; nt < KEYS / 8; nt++) {
                uint32_t draw[2]; /* the lane's key pair in rows h */
                for (int h = 0; h < 2 && DROP; h++)
                    draw[h] = rng_row_pair(row_key[t][h], (uint32_t)(j0 + c_col(lane, nt, 0)) >> 1);
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float pj = ex2_approx(fmaf(s[t][nt][e], scale2, -ms[e >> 1]));
                    sum[e >> 1] += pj;
                    if (DROP) pj *= rng_row_scale(draw[e >> 1], e & 1, p);
                    s[t][nt][e] = pj;
                }
            }
            if (__any_sync(0xffffffffu, moved)) /* else every factor is 1 */
#pragma unroll
                for (int c = 0; c < S::DIMS; c++) {
                    if (c * 8 >= HP) break;
#pragma unroll
                    for (int e = 0; e < 4; e++) o[t][c][e] *= rescale[e >> 1];
                }
            for (int h = 0; h < 2; h++) l[t][h] = l[t][h] * rescale[h] + sum[h]; /* the lane's */
        }
        mma_wb<KEYS, MT, S::HMAX>(o[0], s[0], Vs, ld, HP, lane);
    }
    bool out_pairs = pairs_aligned(out, ldq, HS);
    bool outh_pairs = HS % 2 == 0 && g.ldo % 2 == 0 && (uintptr_t)outh % 4 == 0;
    int d0 = c_col(lane, 0, 0);
#pragma unroll
    for (int t = 0; t < MT; t++)
#pragma unroll
        for (int h = 0; h < 2; h++) { /* the lane's row i: elements 2h, 2h + 1 of its n8 tiles */
            float sum = quad_sum(l[t][h]);
            int i = w0 + t * TC + c_row(lane, 2 * h);
            if (i >= T) continue;
            if ((lane & 3) == 0)
                lse[(size_t)bh * T + i] = sum > 0.0f ? (m[t][h] + log2f(sum)) * LN2 : INFINITY;
            float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            float *orow = out ? out + hp.q + i * ldq + d0 : NULL;
            bf16 *hrow = outh + hp.outh + (size_t)i * g.ldo + d0;
#pragma unroll
            for (int c = 0; c < S::DIMS; c++) { /* columns d, d + 1 */
                int d = 8 * c + d0;
                if (d >= HS) continue;
                float x = o[t][c][2 * h] * inv, y = o[t][c][2 * h + 1] * inv;
                if (out) put_grads(orow + 8 * c, x, y, d, HS, out_pairs, OPS_SET);
                if (outh_pairs)
                    *(uint32_t *)(hrow + 8 * c) = pack_bf16x2(x, y);
                else
                    for (int k = 0; k < 2 && d + k < HS; k++)
                        hrow[8 * c + k] = __float2bfloat16(k ? y : x);
            }
        }
#else
    __trap(); /* never launched: best_precision keeps pre-sm_80 devices at fp32 */
#endif
}

/* grid (B*NH, query blocks of warps*MT*16 rows): flash_dq_kernel on tensor cores, KT =
 * S::BWD_ROWS keys a tile; qh, kh, vh, doh the heads_bf16 copies of q, k, v, dout; DROP: p > 0. */
template <typename S, bool DROP>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    flash_dq_tc_kernel(float *dq, const bf16 *doh, const bf16 *qh, const bf16 *kh, const bf16 *vh,
                       const float *lse, const float *D, const int32_t *mask, int causal, float p,
                       uint64_t seed, const Heads g) {
#if TC_ARCH
    constexpr int MT = S::MT_DQ, KT = S::BWD_ROWS;
    if (DROP) seed ^= step_seed(g.step);
    int bh = blockIdx.x, b = bh / g.NH, head = bh % g.NH, kvh = head / (g.NH / g.NKV), T = g.T;
    int HS = g.HS, HP = S::HPC ? S::HPC : padded_hs(HS), ld = tile_ld(HP);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rows = (blockDim.x >> 5) * MT * TC;
    int i0 = query_tile(causal) * rows, w0 = i0 + warp * MT * TC;
    extern __shared__ __align__(128) unsigned char tc_smem[]; /* dq_tc_shared_bytes */
    bf16 *Qs = (bf16 *)tc_smem, *dOs = Qs + rows * ld, *KV = dOs + rows * ld; /* two buffers */
    const bf16 *kb = head_rows(kh, b, kvh, g.NKV, T, HP), *vb = head_rows(vh, b, kvh, g.NKV, T, HP);
    HeadPtrs hp = head_ptrs(g, b, head, mask);
    float scale2 = log2_scale<S::CAP>(g.score), acc[MT][S::DIMS][4] = {};
    float row_lse2[MT][2], row_D[MT][2]; /* lse in log2 units, as the scores below */
    uint32_t row_key[MT][2];             /* rng_row_key of the lane's rows */
#pragma unroll
    for (int t = 0; t < MT; t++)
        for (int h = 0; h < 2; h++) {
            int i = w0 + t * TC + 8 * h + (lane >> 2);
            row_lse2[t][h] = i < T ? lse[(size_t)bh * T + i] * LOG2E : INFINITY;
            row_D[t][h] = i < T ? D[(size_t)bh * T + i] : 0.0f;
            row_key[t][h] = DROP ? rng_row_key(seed, (uint64_t)bh * T + i) : 0;
        }
    load_tile_async(Qs, ld, head_rows(qh, b, head, g.NH, T, HP), i0, rows, T, HP);
    load_tile_async(dOs, ld, head_rows(doh, b, head, g.NH, T, HP), i0, rows, T, HP);
    int j_first = first_key_tile(i0, g.window, KT), keys = causal ? min(T, i0 + rows) : T;
    load_tile_async(KV, ld, kb, j_first, KT, T, HP);
    load_tile_async(KV + KT * ld, ld, vb, j_first, KT, T, HP);
    cp_async_commit();
    for (int j0 = j_first, buf = 0; j0 < keys; j0 += KT, buf ^= 1) {
        cp_async_wait_all();
        __syncthreads(); /* this tile landed for all; the other buffer's readers done */
        bf16 *Ks = KV + buf * 2 * KT * ld, *Vs = Ks + KT * ld;
        if (j0 + KT < keys) {
            bf16 *next = KV + (buf ^ 1) * 2 * KT * ld;
            load_tile_async(next, ld, kb, j0 + KT, KT, T, HP);
            load_tile_async(next + KT * ld, ld, vb, j0 + KT, KT, T, HP);
            cp_async_commit();
        }
        if (causal && (j0 > w0 + MT * TC - 1 || (g.window && j0 + KT - 1 <= w0 - g.window)))
            continue; /* warp-uniform */
        float s[MT][KT / 8][4] = {}, dP[MT][KT / 8][4] = {};
        uint64_t visible = visible_keys<KT>(hp.keep, j0, T, lane);
        mma_abt<KT, MT, S::HMAX>(s[0], Qs + warp * MT * TC * ld, Ks, ld, HP, lane);
        mma_abt<KT, MT, S::HMAX>(dP[0], dOs + warp * MT * TC * ld, Vs, ld, HP, lane);
        if (S::CAP) cap_tile<KT, MT>(s[0], g.score);
        hide_tile<KT, MT>(s[0], visible, causal, g.window, w0, j0, lane);
#pragma unroll
        for (int t = 0; t < MT; t++)
#pragma unroll
            for (int nt = 0; nt < KT / 8; nt++) {
                uint32_t draw[2];
                for (int h = 0; h < 2 && DROP; h++)
                    draw[h] = rng_row_pair(row_key[t][h], (uint32_t)(j0 + c_col(lane, nt, 0)) >> 1);
#pragma unroll
                for (int e = 0; e < 4; e++) { /* hidden keys, rows past T (lse2 = inf): P = 0 */
                    int h = e >> 1;
                    float P = ex2_approx(fmaf(s[t][nt][e], scale2, -row_lse2[t][h]));
                    float dPm = dP[t][nt][e];
                    if (DROP) dPm *= rng_row_scale(draw[h], e & 1, p);
                    if (S::CAP) P *= cap_slope(s[t][nt][e], g.score.softcap);
                    s[t][nt][e] = P * (dPm - row_D[t][h]);
                }
            }
        mma_wb<KT, MT, S::HMAX>(acc[0], s[0], Ks, ld, HP, lane);
    }
#pragma unroll
    for (int t = 0; t < MT; t++)
        if (S::HPC && g.rope.half)
            add_tiles_turned<S::HPC>(dq + hp.qin, g.ldq, acc[t], g.score.scale, w0 + t * TC, T,
                                     g.rope, lane, g.add);
        else
            add_tiles<S::HMAX>(dq + hp.qin, g.ldq, acc[t], g.score.scale, w0 + t * TC, T, HS, lane,
                               g.add);
#else
    __trap(); /* never launched: best_precision keeps pre-sm_80 devices at fp32 */
#endif
}

/* Queues the tile of QT queries from i0 of query head h (q, dout rows; lse, D) into buf: Qs, dOs
 * [QT][ld], then lse_s, D_s [QT] floats and (drop) key_s [QT], the rows' rng_row_key (stored
 * now, seen after the next barrier); rows past T get lse = inf (P = 0) and D = 0. All threads. */
template <int QT>
__device__ inline void load_query_tile(unsigned char *buf, int HP, int h, int i0, const bf16 *qh,
                                       const bf16 *doh, const float *lse, const float *D, bool drop,
                                       uint64_t seed, int b, const Heads g) {
    int T = g.T, ld = tile_ld(HP);
    bf16 *Qs = (bf16 *)buf, *dOs = Qs + QT * ld;
    float *lse_s = (float *)(dOs + QT * ld), *D_s = lse_s + QT;
    uint32_t *key_s = (uint32_t *)(D_s + QT);
    load_tile_async(Qs, ld, head_rows(qh, b, h, g.NH, T, HP), i0, QT, T, HP);
    load_tile_async(dOs, ld, head_rows(doh, b, h, g.NH, T, HP), i0, QT, T, HP);
    size_t row0 = ((size_t)b * g.NH + h) * T + i0;
    for (int t = threadIdx.x; t < QT; t += blockDim.x) {
        if (i0 + t < T) {
            cp_async4(lse_s + t, lse + row0 + t);
            cp_async4(D_s + t, D + row0 + t);
        } else {
            lse_s[t] = INFINITY, D_s[t] = 0.0f;
        }
        if (drop) key_s[t] = rng_row_key(seed, row0 + t);
    }
}

/* A query tile of dk, dv's kernels in shared memory (load_query_tile's buffer): rows from i0. */
struct QueryTile {
    const bf16 *Qs, *dOs;
    const float *lse, *D;
    const uint32_t *key; /* the rows' rng_row_key (dropout) */
    int i0;
};
__device__ inline QueryTile query_tile_at(const unsigned char *buf, int QT, int ld, int i0) {
    QueryTile q;
    q.Qs = (const bf16 *)buf, q.dOs = q.Qs + QT * ld;
    q.lse = (const float *)(q.dOs + QT * ld), q.D = q.lse + QT;
    q.key = (const uint32_t *)(q.D + QT);
    q.i0 = i0;
    return q;
}

/* A dk/dv block's walk over its query head's tiles of QT rows (two buffers at bufs): from
 * i_start (causal: the first tile that sees the block's first key j0) through `tiles` of them
 * (causal: past its last key's window). */
template <int QT> struct QueryWalk {
    unsigned char *bufs;
    const bf16 *qh, *doh;
    const float *lse, *D;
    uint64_t seed; /* the step's dropout seed (drop) */
    int b, head, HP, i_start, tiles;
    bool drop;
    __device__ unsigned char *buf(int n, const Heads &g) const {
        return bufs + (n & 1) * query_tile_bytes(QT, g.HS);
    }
    /* Commits tile n's loads with any queued before them (n < tiles). All threads. */
    __device__ void load(int n, const Heads &g) const {
        load_query_tile<QT>(buf(n, g), HP, head, i_start + n * QT, qh, doh, lse, D, drop, seed, b,
                            g);
        cp_async_commit();
    }
    /* Tile n, landed for every thread (a barrier: the block is done with the other buffer),
     * with tile n + 1's loads committed. All threads. */
    __device__ QueryTile landed(int n, const Heads &g) const {
        cp_async_wait_all();
        __syncthreads();
        if (n + 1 < tiles) load(n + 1, g);
        return query_tile_at(buf(n, g), QT, tile_ld(HP), i_start + n * QT);
    }
};
/* The walk of the block of nkeys keys from j0 of query head `head` of sequence b; bufs: its
 * buffers, in shared memory. */
template <int QT>
__device__ inline QueryWalk<QT> query_walk(unsigned char *bufs, int j0, int nkeys, int b, int head,
                                           int HP, const bf16 *qh, const bf16 *doh,
                                           const float *lse, const float *D, bool drop,
                                           uint64_t seed, int causal, const Heads &g) {
    int i_start = causal ? j0 / QT * QT : 0;
    int i_end = causal ? query_end(j0 + nkeys - 1, g.window, g.T) : g.T;
    return QueryWalk<QT>{
        bufs, qh, doh, lse, D, seed, b, head, HP, i_start, (i_end - i_start + QT - 1) / QT, drop};
}

/* The keys of a dk, dv warp: MT m16 tiles from w0, which of the lane's (tile t, rows h) are in T
 * and not padding, and whether all of the warp's are (keys_ok). The whole warp. */
template <int MT> struct WarpKeys {
    int w0;
    bool ok[MT][2], all;
};
template <int MT>
__device__ inline WarpKeys<MT> warp_keys(const int32_t *keep, int w0, int T, int lane) {
    WarpKeys<MT> k;
    bool all = true;
    k.w0 = w0;
#pragma unroll
    for (int t = 0; t < MT; t++)
        for (int h = 0; h < 2; h++) {
            k.ok[t][h] = key_visible(keep, 0, 0, 0, w0 + t * TC + 8 * h + (lane >> 2), T);
            all = all && k.ok[t][h];
        }
    k.all = __all_sync(0xffffffffu, all);
    return k;
}

/* Whether the warp's keys see none of tile q's queries (causal: every query before them or past
 * their windows). Warp-uniform. */
template <int MT, int QT>
__device__ inline bool tile_unseen(const WarpKeys<MT> &k, const QueryTile &q, int causal,
                                   int window) {
    return causal && (q.i0 + QT - 1 < k.w0 || (window && q.i0 - (k.w0 + MT * TC - 1) >= window));
}

/* P of the scores st [MT * QT/8][4] (S^T: the warp's keys k against query tile q, c fragments):
 * for each n8 tile (t, nt), f(t, nt, P, Ps, keep, Dq) with the lane's four elements' P = 2^(s
 * scale2 - lse log2 e) (0 where the key is hidden), their dropout multipliers keep (1 without
 * DROP), Ps = P times the cap's slope (S::CAP) for dS, and the D of the lane's two queries (element
 * e's is Dq[e & 1]). The masks are checked only on tiles that hide a score. The whole warp. */
template <typename S, bool DROP, int MT, int QT, typename F>
__device__ inline void tile_probs(const float (*st)[4], const WarpKeys<MT> &k, const QueryTile &q,
                                  float scale2, int causal, float p, const Heads &g, int lane,
                                  F f) {
    bool hides =
        !k.all ||
        (causal && (q.i0 < k.w0 + MT * TC - 1 || (g.window && q.i0 + QT - 1 - k.w0 >= g.window)));
    int own = (lane >> 2) & 1; /* keys g and g ^ 1 share a draw: see below */
#pragma unroll
    for (int nt = 0; nt < QT / 8; nt++) {
        int ii = c_col(lane, nt, 0); /* the lane's two queries: columns ii, ii + 1 */
        float2 lse2 = *(const float2 *)(q.lse + ii), D2 = *(const float2 *)(q.D + ii);
        float nl[2] = {-lse2.x * LOG2E, -lse2.y * LOG2E}, Dq[2] = {D2.x, D2.y};
#pragma unroll
        for (int t = 0; t < MT; t++) {
            int wt = k.w0 + t * TC;
            /* draw[h][c]: keys wt + jj (rows h) of queries ii + c; lanes 4 apart each make the one
             * of their query ii + own and swap */
            uint32_t draw[2][2];
#pragma unroll
            for (int h = 0; h < 2 && DROP; h++) {
                uint32_t mine =
                    rng_row_pair(q.key[ii + own], (uint32_t)(wt + c_row(lane, 2 * h)) >> 1);
                uint32_t other = __shfl_xor_sync(0xffffffffu, mine, 4);
                draw[h][0] = own ? other : mine, draw[h][1] = own ? mine : other;
            }
            float P[4], Ps[4], keep[4];
            const float *s = st[t * (QT / 8) + nt];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int jj = c_row(lane, e), c = e & 1, i = q.i0 + ii + c, j = wt + jj;
                P[e] = ex2_approx(fmaf(s[e], scale2, nl[c])), keep[e] = 1.0f;
                if (hides &&
                    !(k.ok[t][e >> 1] && (!causal || (j <= i && (!g.window || i - j < g.window)))))
                    P[e] = 0.0f;
                if (DROP) keep[e] = rng_row_scale(draw[e >> 1][c], jj & 1, p);
                Ps[e] = S::CAP ? P[e] * cap_slope(s[e], g.score.softcap) : P[e];
            }
            f(t, nt, P, Ps, keep, Dq);
        }
    }
}

/* dS = Ps (dP keep - D) of one n8 tile's four elements, in place over dP */
__device__ inline void tile_ds(float dP[4], const float Ps[4], const float keep[4],
                               const float Dq[2]) {
#pragma unroll
    for (int e = 0; e < 4; e++) dP[e] = Ps[e] * (dP[e] * keep[e] - Dq[e & 1]);
}

/* Where the dk, dv kernels' warp of keys from w0 adds its accumulator: dv's as they are, dk's
 * times the score's scale and, where the stores turn rope's gradient (S::HPC and g.rope),
 * turned. */
template <typename S, int MT>
__device__ inline void put_key_grads(float *grad, const KvGrads &to, const float (*acc)[S::DIMS][4],
                                     bool is_dk, int w0, const Heads &g, int lane) {
#pragma unroll
    for (int t = 0; t < MT; t++) {
        int r0 = w0 + t * TC;
        if (is_dk && S::HPC && g.rope.half)
            add_tiles_turned<S::HPC>(grad + to.at, to.ld, acc[t], g.score.scale, r0, g.T, g.rope,
                                     lane, to.add);
        else
            add_tiles<S::HMAX>(grad + to.at, to.ld, acc[t], is_dk ? g.score.scale : 1.0f, r0, g.T,
                               g.HS, lane, to.add);
    }
}

/* grid (B*NH, key blocks of warps*MT*16 keys): flash_dkdv_kernel on tensor cores for one query
 * head at HP 64 (S::ROLES false); the warp's MT*16 keys against QT = S::BWD_ROWS queries at a time
 * (S^T = K Q^T, dP^T = V dout^T), both accumulators in the warp. A tile with all the warp's keys
 * visible and (causal) no query before them needs no mask: queries past T have lse = inf, so P =
 * 0 there anyway. DROP: p > 0. The sums go where kv_grads says. */
template <typename S, bool DROP>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    flash_dkdv_tc_kernel(float *dk, float *dv, const bf16 *doh, const bf16 *qh, const bf16 *kh,
                         const bf16 *vh, const float *lse, const float *D, const int32_t *mask,
                         int causal, float p, uint64_t seed, const Heads g) {
#if TC_ARCH
    constexpr int MT = S::MT_BWD, QT = S::BWD_ROWS;
    if (DROP) seed ^= step_seed(g.step);
    int b = blockIdx.x / g.NH, head = blockIdx.x % g.NH, kvh = head / (g.NH / g.NKV), T = g.T;
    int HP = S::HPC ? S::HPC : padded_hs(g.HS), ld = tile_ld(HP), lane = threadIdx.x & 31,
        warp = threadIdx.x >> 5;
    int nkeys = (blockDim.x >> 5) * MT * TC, j0 = blockIdx.y * nkeys;
    extern __shared__ __align__(128) unsigned char tc_smem[]; /* dkdv_tc_shared_bytes */
    bf16 *Ks = (bf16 *)tc_smem, *Vs = Ks + nkeys * ld;
    auto walk = query_walk<QT>((unsigned char *)(Vs + nkeys * ld), j0, nkeys, b, head, HP, qh, doh,
                               lse, D, DROP, seed, causal, g);
    float scale2 = log2_scale<S::CAP>(g.score);
    float dk_acc[MT][S::DIMS][4] = {}, dv_acc[MT][S::DIMS][4] = {};
    HeadPtrs hp = head_ptrs(g, b, head, mask);
    WarpKeys<MT> keys = warp_keys<MT>(hp.keep, j0 + warp * MT * TC, T, lane);
    load_tile_async(Ks, ld, head_rows(kh, b, kvh, g.NKV, T, HP), j0, nkeys, T, HP);
    load_tile_async(Vs, ld, head_rows(vh, b, kvh, g.NKV, T, HP), j0, nkeys, T, HP);
    walk.load(0, g);
    for (int n = 0; n < walk.tiles; n++) {
        QueryTile q = walk.landed(n, g);
        if (tile_unseen<MT, QT>(keys, q, causal, g.window)) continue;
        float st[MT][QT / 8][4] = {}, dPt[MT][QT / 8][4] = {};
        mma_abt<QT, MT, S::HMAX>(st[0], Ks + warp * MT * TC * ld, q.Qs, ld, HP, lane);
        mma_abt<QT, MT, S::HMAX>(dPt[0], Vs + warp * MT * TC * ld, q.dOs, ld, HP, lane);
        if (S::CAP) cap_tile<QT, MT>(st[0], g.score);
        tile_probs<S, DROP, MT, QT>(st[0], keys, q, scale2, causal, p, g, lane,
                                    [&](int t, int nt, const float *P, const float *Ps,
                                        const float *keep, const float *Dq) {
#pragma unroll
                                        for (int e = 0; e < 4; e++) st[t][nt][e] = P[e] * keep[e];
                                        tile_ds(dPt[t][nt], Ps, keep, Dq);
                                    });
        if (dv) mma_wb<QT, MT, S::HMAX>(dv_acc[0], st[0], q.dOs, ld, HP, lane);
        if (dk) mma_wb<QT, MT, S::HMAX>(dk_acc[0], dPt[0], q.Qs, ld, HP, lane);
    }
    KvGrads to = kv_grads(g, b, head, hp);
    if (dv) put_key_grads<S, MT>(dv, to, dv_acc, false, keys.w0, g, lane);
    if (dk) put_key_grads<S, MT>(dk, to, dk_acc, true, keys.w0, g, lane);
#else
    __trap(); /* never launched: best_precision keeps pre-sm_80 devices at fp32 */
#endif
}

/* flash_dkdv_tc_kernel in roles (S::ROLES: HMAX 128 and 256): warps w < W/2 (of W) take dv for
 * key tile w, warps W/2 + w dk for the same keys, each with one accumulator (MT*16 keys).
 * Per query tile the dv warp makes S^T = K Q^T, P^T and dv += P^T dout; the dk warp dP^T = V
 * dout^T, meanwhile, then dS^T from the P the dv warp left it in shared memory (Ps, its sign bit
 * set where dropout drops the score: keep is then 0, else 1 / (1 - p) as rng_row_scale's), and
 * dk += dS^T Q: the same sums as the one-warp kernel, in the same order, so the same bits. */
template <typename S, bool DROP>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    flash_dkdv_roles_kernel(float *dk, float *dv, const bf16 *doh, const bf16 *qh, const bf16 *kh,
                            const bf16 *vh, const float *lse, const float *D, const int32_t *mask,
                            int causal, float p, uint64_t seed, const Heads g) {
#if TC_ARCH
    constexpr int MT = S::MT_BWD, QT = S::BWD_ROWS, FRAGS = MT * QT / 8;
    if (DROP) seed ^= step_seed(g.step);
    int b = blockIdx.x / g.NH, head = blockIdx.x % g.NH, kvh = head / (g.NH / g.NKV), T = g.T;
    int HP = S::HPC ? S::HPC : padded_hs(g.HS), ld = tile_ld(HP), lane = threadIdx.x & 31;
    int pairs = blockDim.x >> 6, warp = threadIdx.x >> 5, tile = warp % pairs;
    bool is_dk = warp >= pairs;
    int nkeys = pairs * MT * TC, j0 = blockIdx.y * nkeys;
    extern __shared__ __align__(128) unsigned char tc_smem[]; /* dkdv_tc_shared_bytes */
    bf16 *Ks = (bf16 *)tc_smem, *Vs = Ks + nkeys * ld;
    float4 *Pt = (float4 *)(Vs + nkeys * ld) + (size_t)tile * FRAGS * 32 + lane; /* the pair's */
    auto walk = query_walk<QT>((unsigned char *)((float4 *)(Vs + nkeys * ld) + pairs * FRAGS * 32),
                               j0, nkeys, b, head, HP, qh, doh, lse, D, DROP, seed, causal, g);
    float scale2 = log2_scale<S::CAP>(g.score), keep_scale = DROP ? 1.0f / (1.0f - p) : 1.0f;
    float acc[MT][S::DIMS][4] = {};
    HeadPtrs hp = head_ptrs(g, b, head, mask);
    WarpKeys<MT> keys = warp_keys<MT>(hp.keep, j0 + tile * MT * TC, T, lane);
    float *grad = is_dk ? dk : dv;
    const bf16 *mine = (is_dk ? Vs : Ks) + tile * MT * TC * ld; /* the A rows of S^T or dP^T */
    load_tile_async(Ks, ld, head_rows(kh, b, kvh, g.NKV, T, HP), j0, nkeys, T, HP);
    load_tile_async(Vs, ld, head_rows(vh, b, kvh, g.NKV, T, HP), j0, nkeys, T, HP);
    walk.load(0, g);
    for (int n = 0; n < walk.tiles; n++) {
        QueryTile q = walk.landed(n, g); /* and the pair's P of the last tile read */
        /* the pair's keys see the tile, and the dk warp has a dk to make */
        bool works = !tile_unseen<MT, QT>(keys, q, causal, g.window) && (!is_dk || dk);
        const bf16 *Bs = is_dk ? q.dOs : q.Qs, *Bs2 = is_dk ? q.Qs : q.dOs;
        float w[MT][QT / 8][4] = {}; /* S^T, then P (dv); dP^T, then dS (dk) */
        if (works) mma_abt<QT, MT, S::HMAX>(w[0], mine, Bs, ld, HP, lane);
        if (works && !is_dk) {
            if (S::CAP) cap_tile<QT, MT>(w[0], g.score);
            tile_probs<S, DROP, MT, QT>(w[0], keys, q, scale2, causal, p, g, lane,
                                        [&](int t, int nt, const float *P, const float *Ps,
                                            const float *keep, const float *) {
                                            float x[4];
#pragma unroll
                                            for (int e = 0; e < 4; e++)
                                                w[t][nt][e] = P[e] * keep[e],
                                                x[e] = DROP && keep[e] == 0.0f ? -Ps[e] : Ps[e];
                                            Pt[(t * (QT / 8) + nt) * 32] =
                                                make_float4(x[0], x[1], x[2], x[3]);
                                        });
        }
        __syncthreads(); /* the dv warps' Pt */
        if (works && is_dk)
#pragma unroll
            for (int t = 0; t < MT; t++)
#pragma unroll
                for (int nt = 0; nt < QT / 8; nt++) {
                    float4 x4 = Pt[(t * (QT / 8) + nt) * 32];
                    float x[4] = {x4.x, x4.y, x4.z, x4.w}, Ps[4], keep[4];
                    float2 D2 = *(const float2 *)(q.D + c_col(lane, nt, 0));
                    float Dq[2] = {D2.x, D2.y};
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        Ps[e] = fabsf(x[e]), keep[e] = DROP && signbit(x[e]) ? 0.0f : keep_scale;
                    tile_ds(w[t][nt], Ps, keep, Dq);
                }
        if (works && grad) mma_wb<QT, MT, S::HMAX>(acc[0], w[0], Bs2, ld, HP, lane);
    }
    if (grad) put_key_grads<S, MT>(grad, kv_grads(g, b, head, hp), acc, is_dk, keys.w0, g, lane);
#else
    __trap(); /* never launched: best_precision keeps pre-sm_80 devices at fp32 */
#endif
}

/* dk, dv [B*T, NKV*HS] (rows g.ldkv apart) (+)= (g.add) the sums of flash_dkdv_tc_kernel's
 * shares [B*T, NH*HS] under GQA, each KV head's G query heads added in head order (the same bits
 * every run); NULL: skipped. A thread 4 columns of a row of each, read STEP at a time (4: HS a
 * multiple of 4, so that the 4 lie in one head: 16-byte loads where aligned). */
template <int STEP>
__global__ void group_sum_kernel(float *dk, float *dv, const float *dk_share, const float *dv_share,
                                 const Heads g) {
    int G = g.NH / g.NKV, HS = g.HS, W = g.NKV * HS, per_row = (W + 3) / 4;
    GRID_STRIDE(i, (size_t)g.B * g.T * per_row) {
        size_t row = index_div(i, per_row);
        int c = 4 * (int)(i - row * per_row), n = min(4, W - c);
        float sk[4] = {}, sv[4] = {}, x[4];
#pragma unroll
        for (int e = 0; e < 4; e += STEP) { /* columns c + e .. c + e + m - 1 of one head */
            int m = min(STEP, n - e);
            size_t from = row * g.NH * HS + (size_t)((c + e) / HS) * (G - 1) * HS + c + e;
            for (int h = 0; h < G && m > 0; h++, from += HS) {
                if (dk) load4(x, dk_share, from, from + m);
#pragma unroll
                for (int q = 0; q < STEP; q++) sk[e + q] += dk && q < m ? x[q] : 0.0f;
                if (dv) load4(x, dv_share, from, from + m);
#pragma unroll
                for (int q = 0; q < STEP; q++) sv[e + q] += dv && q < m ? x[q] : 0.0f;
            }
        }
        size_t to = row * g.ldkv + c;
        for (int t = 0; t < 2; t++) {
            float *dst = t ? dv : dk, *sum = t ? sv : sk;
            if (!dst) continue;
            if (g.add) {
                load4(x, dst, to, to + n);
#pragma unroll
                for (int q = 0; q < 4; q++) sum[q] += x[q];
            }
            store4(dst, sum, to, to + n);
        }
    }
}

/* Dynamic shared memory of the tensor-core kernels of shape S, in bytes: bf16 tiles of
 * tile_stride(HS), the streamed ones twice (the tile computed on and the next), and in dk/dv's
 * roles each pair's P (float4 a lane an n8 tile). At four warps forward, dq and dk/dv take 54, 54
 * and 55 KB at HS = 64, 68, 68 and 77 KB at 128, 99, 99 and 68 KB at 256: above the default 48
 * KB, so the launch raises the limit. */
template <typename S> static size_t fwd_tc_shared_bytes(int warps, int HS) {
    return sizeof(bf16) * (warps * S::MT_FWD * TC + 4 * S::FWD_KEYS) * tile_stride(HS);
}
template <typename S> static size_t dq_tc_shared_bytes(int warps, int HS) {
    return sizeof(bf16) * (2 * warps * S::MT_DQ * TC + 4 * S::BWD_ROWS) * tile_stride(HS);
}
template <typename S> static size_t dkdv_tc_shared_bytes(int warps, int HS) {
    int key_warps = S::ROLES ? warps / 2 : warps;
    size_t P = S::ROLES ? sizeof(float4) * 32 * key_warps * S::MT_BWD * (S::BWD_ROWS / 8) : 0;
    return sizeof(bf16) * 2 * key_warps * S::MT_BWD * TC * tile_stride(HS) + P +
           2 * query_tile_bytes(S::BWD_ROWS, HS);
}
/* The tensor-core kernels, for with_kernel_shape. */
enum TcKernel { TC_FORWARD, TC_DQ, TC_DKDV };
/* Whether an SM of this device holds two blocks of `bytes` of dynamic shared memory: within its
 * opt-in limit a block, and twice that with the 1 KB it reserves a block within its SM's. */
static bool two_blocks_fit(size_t bytes) {
    static int block = -1, sm, reserved;
    if (block < 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&block, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
                cudaSuccess ||
            cudaDeviceGetAttribute(&sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) !=
                cudaSuccess ||
            cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev) !=
                cudaSuccess)
            block = sm = reserved = 0;
    }
    return bytes <= (size_t)block && 2 * (bytes + reserved) <= (size_t)sm;
}
/* Calls launch(S(), std::bool_constant<DROP>(), warps) with the tensor-core kernels' compiled
 * shape S (TcShape) for head size HS: HP = 64, 128 and 256 whole, other sizes at run time, up to
 * 128 or 256, Capped where score soft-caps; DROP = p > 0, so that p = 0 runs no dropout code at
 * all; grid and threads set for `problems` heads of T rows at the m16 tiles a warp and the warps
 * a block of kernel KIND (dq at HP 128: DqPairs where two blocks of it fit an SM). */
template <TcKernel KIND, typename F>
static void with_kernel_shape(int HS, AttnScore score, float p, int problems, int T, dim3 *grid,
                              unsigned *threads, F launch) {
    auto drop = [&](auto shape) {
        using S = decltype(shape);
        int per_warp = (KIND == TC_FORWARD ? S::MT_FWD : KIND == TC_DQ ? S::MT_DQ : S::MT_BWD) * TC;
        int warps;
        if (KIND == TC_DKDV && S::ROLES) { /* a pair of warps a key tile */
            warps = 2 * att_launch_shape(grid, threads, problems, T, per_warp, ATT_WARPS / 2);
            *threads *= 2;
        } else {
            warps = att_launch_shape(grid, threads, problems, T, per_warp);
        }
        if (p > 0.0f)
            launch(shape, std::true_type(), warps);
        else
            launch(shape, std::false_type(), warps);
    };
    auto cap = [&](auto shape) {
        if (score.softcap > 0.0f)
            drop(Capped<decltype(shape)>());
        else
            drop(shape);
    };
    int HP = padded_hs(HS);
    if constexpr (KIND == TC_DQ) /* (compiled for dq's launches alone) */
        if (HP == 128 &&
            two_blocks_fit(dq_tc_shared_bytes<DqPairs<TcShape<128, 128>>>(ATT_WARPS, HS))) {
            cap(DqPairs<TcShape<128, 128>>());
            return;
        }
    if (HP == 64)
        cap(TcShape<64, 64>());
    else if (HP == 128)
        cap(TcShape<128, 128>());
    else if (HP == 256)
        cap(TcShape<256, 256>());
    else if (HP < 128)
        cap(TcShape<0, 128>());
    else
        cap(TcShape<0, 256>());
}

/* Lets kernel f take `bytes` of dynamic shared memory: above 48 KB a launch must ask. */
template <typename F> static size_t allow_shared(F *f, size_t bytes) {
    if (bytes > 48 * 1024)
        CUDA_CHECK(
            cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return bytes;
}

/* The heads_bf16 copies the tensor-core kernels read: q, k, v in the saved buffer (forward
 * writes them, backward reads them: B*NH*T rows of HP, then B*NKV*T rows each), then bf16(out)
 * as out is laid out (for D); dout in the scratch after D [B*NH*T] (backward), then under GQA
 * the dk/dv kernel's shares of dk and dv (share_floats each). Each part is 16-byte aligned (HP
 * is a multiple of 16). */
typedef struct AttCopies {
    float *D, *dk_share, *dv_share;
    bf16 *q, *k, *v, *out, *dout;
} AttCopies;

static size_t D_floats(int B, int T, int NH) { /* rounded up to a multiple of 16 bytes */
    return ((size_t)B * NH * T + 3) / 4 * 4;
}
static size_t copy_elems(int B, int T, int H, int HS) { /* a heads_bf16 copy of H heads */
    return (size_t)B * H * T * padded_hs(HS);
}
static size_t share_floats(int B, int T, int NH, int HS) { /* dk's or dv's shares of NH heads */
    return (size_t)B * T * NH * HS;
}
/* bf16(out) [B*T, NH*HS] first in saved, then q's, k's and v's copies (16-byte aligned): out
 * stays where it is for every batch shape, so a GEMM given its place once (the model's
 * Linear.in_bf16, planned for the largest batch) reads it at any smaller B or T. Where the
 * caller keeps bf16(out) apart (out_bf16 not that place) the copies start saved, but under cuDNN,
 * which writes its own and reads it in backward. */
static size_t out_elems(int B, int T, int NH, int HS) {
    return ((size_t)B * T * NH * HS + 7) / 8 * 8;
}
static AttCopies att_copies(float *saved, float *scratch, const Heads g, bool own_out) {
    AttCopies a;
    a.out = (bf16 *)saved;
    a.q = a.out + (own_out ? out_elems(g.B, g.T, g.NH, g.HS) : 0);
    a.k = a.q + copy_elems(g.B, g.T, g.NH, g.HS);
    a.v = a.k + copy_elems(g.B, g.T, g.NKV, g.HS);
    a.D = scratch;
    a.dout = (bf16 *)(scratch + D_floats(g.B, g.T, g.NH));
    a.dk_share = scratch + D_floats(g.B, g.T, g.NH) + copy_elems(g.B, g.T, g.NH, g.HS) / 2;
    a.dv_share = a.dk_share + share_floats(g.B, g.T, g.NH, g.HS);
    return a;
}

/* ---- model.attention cudnn: cuDNN's fused attention (attention_cudnn.h) on the same copies of
 * q, k, v (saved) and dout, its O written as bf16(out) and its stats as lse; the ops' f32 out,
 * dq, dk, dv then widened from its bf16 ones. ---- */
static AttentionImpl attention_impl = ATTENTION_LORAFT;

int cuda_set_attention(AttentionImpl a, LfError *err) {
    const char *why = a == ATTENTION_CUDNN ? cudnn_sdpa_unavailable() : NULL;
    if (why) return lf_fail(err, "%s", why);
    attention_impl = a;
    return 0;
}

static bool use_cudnn(void) {
    return attention_impl == ATTENTION_CUDNN && cuda_precision() == PRECISION_BF16;
}

/* g for a call with this causal mask and window (an error where the window is not causal's). */
static Heads masked(Heads g, int causal, int window) {
    g.window = window;
    if (g.ok && (window < 0 || (window && !causal))) {
        CUDA_FAIL("attention: a sliding window needs the causal mask (and a window >= 0)");
        g.ok = 0;
    }
    return g;
}

/* Whether saved holds bf16(out) (att_copies' own_out): forward given out_bf16 elsewhere keeps it
 * there, but cuDNN. */
static bool out_in_saved(const float *saved, const uint16_t *out_bf16) {
    return use_cudnn() || !out_bf16 || out_bf16 == (const uint16_t *)saved;
}

/* The scratch under cudnn, each part 16-byte aligned: CudnnSdpaInputs (the sequences' lengths,
 * the dropout's seed and offset), dout's heads_bf16 copy, then cuDNN's bf16 dq, dk, dv
 * (token-major). */
typedef struct CudnnParts {
    int32_t *seq_q, *seq_kv;
    int64_t *seed, *offset;
    bf16 *dout, *dq, *dk, *dv;
} CudnnParts;
enum { CUDNN_PARTS = 8 };

static size_t bf16_floats(size_t n) { /* n bf16 in whole 16-byte chunks, in floats */
    return (n + 7) / 8 * 4;
}
/* The parts' offsets in floats (at[CUDNN_PARTS]); returns the floats of them all. */
static size_t cudnn_layout(const Heads g, size_t at[CUDNN_PARTS]) {
    size_t tokens = (size_t)g.B * g.T, n = 0, lengths = ((size_t)g.B + 3) / 4 * 4;
    size_t sizes[CUDNN_PARTS] = {lengths,
                                 lengths,
                                 4,
                                 4,
                                 bf16_floats(copy_elems(g.B, g.T, g.NH, g.HS)),
                                 bf16_floats(tokens * g.NH * g.HS),
                                 bf16_floats(tokens * g.NKV * g.HS),
                                 bf16_floats(tokens * g.NKV * g.HS)};
    for (int i = 0; i < CUDNN_PARTS; i++) at[i] = n, n += sizes[i];
    return n;
}
static CudnnParts cudnn_parts(float *scratch, const Heads g) {
    size_t at[CUDNN_PARTS];
    cudnn_layout(g, at);
    CudnnParts c = {(int32_t *)(scratch + at[0]), (int32_t *)(scratch + at[1]),
                    (int64_t *)(scratch + at[2]), (int64_t *)(scratch + at[3]),
                    (bf16 *)(scratch + at[4]),    (bf16 *)(scratch + at[5]),
                    (bf16 *)(scratch + at[6]),    (bf16 *)(scratch + at[7])};
    return c;
}
static size_t cudnn_scratch(const Heads g) {
    size_t at[CUDNN_PARTS];
    return cudnn_layout(g, at);
}
static CudnnSdpaInputs cudnn_inputs(const CudnnParts c) {
    CudnnSdpaInputs in = {c.seq_q, c.seq_kv, c.seed, c.offset};
    return in;
}

/* Every sequence's queries (T) and keys (the mask's 1s: a prefix, the model checks), and the
 * dropout's seed with offset 0. A warp per sequence. */
__global__ void sdpa_inputs_kernel(CudnnParts c, const int32_t *mask, uint64_t seed,
                                   const OpsStep *step, int B, int T) {
    int lane = threadIdx.x & 31;
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *c.seed = (int64_t)(seed ^ step_seed(step)), *c.offset = 0;
    WARP_ROWS(b, (size_t)B) {
        int keys = 0;
        for (int t = lane; t < T && mask; t += 32) keys += mask[b * T + t] != 0;
        keys = warp_sum(keys);
        if (lane == 0) c.seq_q[b] = T, c.seq_kv[b] = keys;
    }
}

/* dst[r*ld + c] (+)= src[r*C + c] (acc 0: =) over rows r < n: a bf16 result of cuDNN's [n,C]
 * widened into an op's f32 output, whose rows lie ld apart. */
__global__ void widen_bf16_kernel(float *dst, int ld, const bf16 *src, size_t n, int C, int add) {
    GRID_STRIDE(i, n * C) put_grad(dst + i / C * ld + i % C, __bfloat162float(src[i]), add);
}
static void widen_bf16(float *dst, int ld, const bf16 *src, size_t n, int C, int add) {
    if (!dst) return;
    widen_bf16_kernel<<<cuda_blocks(n * C, CUDA_THREADS), CUDA_THREADS>>>(dst, ld, src, n, C, add);
    CUDA_LAUNCHED("attention (cudnn: widen)");
}

static CudnnSdpa sdpa_shape(const Heads g, const int32_t *mask, int causal, float p) {
    CudnnSdpa s = {g.B,    g.T,          g.NH, g.NKV,    g.HS,          padded_hs(g.HS),
                   causal, mask != NULL, p,    g.window, g.score.scale, g.score.softcap};
    return s;
}
static void sdpa_inputs(const CudnnParts c, const int32_t *mask, float p, uint64_t seed,
                        const Heads g) {
    if (!mask && p <= 0) return; /* neither read */
    sdpa_inputs_kernel<<<cuda_blocks((size_t)g.B, ATT_WARPS), ATT_WARPS * 32>>>(c, mask, seed,
                                                                                g.step, g.B, g.T);
    CUDA_LAUNCHED("attention (cudnn: lengths)");
}

size_t cuda_attention_scratch(int B, int T, int NH, int NKV, int HS) {
    size_t own = D_floats(B, T, NH) + copy_elems(B, T, NH, HS) / 2 + /* bf16: half a float */
                 (NH > NKV ? 2 * share_floats(B, T, NH, HS) : 0);
    if (attention_impl != ATTENTION_CUDNN) return own;
    Heads g = {B, T, NH, NKV, HS, 1, OPS_ADD, NH * HS, NKV * HS, NH * HS, 0, NULL, {}, {}};
    return own > cudnn_scratch(g) ? own : cudnn_scratch(g);
}

size_t cuda_attention_saved(Precision p, int B, int T, int NH, int NKV, int HS, int out_apart) {
    if (p != PRECISION_BF16) return 0;
    size_t out = out_apart && attention_impl != ATTENTION_CUDNN ? 0 : out_elems(B, T, NH, HS);
    return (copy_elems(B, T, NH, HS) + 2 * copy_elems(B, T, NKV, HS) + out + 1) / 2;
}

uint16_t *cuda_attention_saved_out(Precision p, float *saved) {
    return p == PRECISION_BF16 && saved ? (uint16_t *)saved : NULL; /* att_copies */
}

/* hc's heads_bf16 copies of [B,T,H*HS] tensors, in one launch. */
static void heads_bf16(const HeadCopies &hc, const Heads g) {
    size_t heads = (size_t)hc.H[0] + hc.H[1] + hc.H[2], BT = (size_t)g.B * g.T;
    size_t threads = BT * (heads * (padded_hs(g.HS) / 8) -
                           (hc.H[0] + hc.H[1]) * (hc.rope.half / 4) + hc.rope.half / 8);
    heads_bf16_kernel<<<cuda_blocks(threads, CUDA_THREADS), CUDA_THREADS>>>(hc, g.B, g.T, g.HS);
    CUDA_LAUNCHED("attention (bf16 copy)");
}

/* dst = heads_bf16 copy of src [B,T,H*HS]. */
static void heads_bf16(bf16 *dst, const float *src, const Heads g, int H) {
    heads_bf16(HeadCopies{{dst}, {src}, {H}, {H * g.HS}, {}}, g);
}

/* The tensor-core kernels' cp.async reads the copies in 16-byte chunks. */
static int copies_aligned(const float *saved, const float *scratch) {
    if (!saved) {
        CUDA_FAIL("attention: bf16 needs the saved buffer (Ops.attention_saved)");
        return 0;
    }
    if ((uintptr_t)saved % 16 == 0 && (uintptr_t)scratch % 16 == 0) return 1;
    CUDA_FAIL("attention: the saved buffer or the scratch is not 16-byte aligned");
    return 0;
}

/* q, out [B,T,NH*HS]; k, v [B,T,NKV*HS] (q's rows ldq apart, k's and v's ldkv); mask [B,T] or
 * NULL; lse [B,NH,T] saved; scores as score says. Rope turns q and k as the bf16 copies are made
 * (q and k left as given: backward reads the copies), else in place in a pass of its own first.
 * bf16(out) into out_bf16 (rows ldo apart) or its place in saved. */
void cuda_attention_forward(float *out, uint16_t *out_bf16, int ldo, float *lse, float *saved,
                            float *q, int ldq, float *k, const float *v, int ldkv,
                            const int32_t *mask, int causal, int window,
                            const RopeFreqs *rope_freqs, AttnScore score, float p, uint64_t seed,
                            float *scratch, int B, int T, int NH, int NKV, int HS) {
    Heads g = masked(heads(B, T, NH, NKV, HS, score), causal, window);
    g.step = p > 0.0f ? cuda_step() : NULL;
    g.ldq = ldq, g.ldkv = ldkv, g.ldo = out_bf16 ? ldo : NH * HS;
    int rope_ok = 0;
    Rope rope = g.ok ? cuda_rope_table(rope_freqs, HS, &rope_ok) : Rope{};
    if (!g.ok || !rope_ok) return;
    /* the copies turn whole chunks of 8: a half of whole chunks (partial rotary's too) */
    int tc = cuda_precision() == PRECISION_BF16,
        copy_turns = tc && HS % 16 == 0 && rope.half % 8 == 0;
    if (!tc && !out) {
        CUDA_FAIL("attention: out NULL needs bf16 (the f32 kernels write out)");
        return;
    }
    if (rope.half && !copy_turns) cuda_rope(q, ldq, k, ldkv, NULL, rope, B, T, NH, NKV, HS, 1.0f);
    dim3 grid;
    unsigned threads;
    if (tc) {
        if (!copies_aligned(saved, scratch)) return;
        AttCopies a = att_copies(saved, scratch, g, out_in_saved(saved, out_bf16));
        Rope turn = copy_turns ? rope : Rope{};
        heads_bf16(HeadCopies{{a.q, a.k, a.v}, {q, k, v}, {NH, NKV, NKV}, {ldq, ldkv, ldkv}, turn},
                   g);
        if (use_cudnn()) {
            CudnnParts c = cudnn_parts(scratch, g);
            CudnnSdpa s = sdpa_shape(g, mask, causal, p);
            sdpa_inputs(c, mask, p, seed, g);
            CudnnSdpaInputs in = cudnn_inputs(c);
            const char *why = cudnn_sdpa_forward(&s, a.out, lse, a.q, a.k, a.v, &in);
            if (why) {
                CUDA_FAIL(why);
                return;
            }
            widen_bf16(out, NH * HS, a.out, (size_t)B * T, NH * HS, OPS_SET);
            if (out_bf16 && out_bf16 != (uint16_t *)a.out) /* backward reads its own, in saved */
                cuda_dequantize_rows_bf16(out_bf16, a.out, GGML_BF16, 0, B * T, NH * HS, ldo);
            return;
        }
        if (out_bf16) a.out = (bf16 *)out_bf16;
        with_kernel_shape<TC_FORWARD>(
            HS, g.score, p, B * NH, T, &grid, &threads, [&](auto shape, auto drop, int warps) {
                using S = decltype(shape);
                constexpr bool DROP = decltype(drop)::value;
                auto *kernel = flash_forward_tc_kernel<S, DROP>;
                size_t bytes = allow_shared(kernel, fwd_tc_shared_bytes<S>(warps, HS));
                flash_forward_tc_kernel<S, DROP><<<grid, threads, bytes>>>(
                    out, a.out, lse, a.q, a.k, a.v, mask, causal, p, seed, g);
            });
    } else {
        int warps = att_launch_shape(&grid, &threads, B * NH, T, FWD_ROWS);
        with_row_share<4>(HS, [&](auto dims) {
            constexpr int DIMS = decltype(dims)::value;
            size_t bytes = allow_shared(flash_forward_kernel<DIMS>, fwd_shared_bytes(warps, HS));
            flash_forward_kernel<DIMS>
                <<<grid, threads, bytes>>>(out, lse, q, k, v, mask, causal, p, seed, g);
        });
        if (out_bf16) cuda_dequantize_rows_bf16(out_bf16, out, GGML_F32, 0, B * T, NH * HS, ldo);
    }
    CUDA_LAUNCHED("attention_forward");
}

/* dq [B,T,NH*HS], dk, dv [B,T,NKV*HS] (+)= gradients (acc 0: =), their rows and q's, k's, v's
 * g.ldq and g.ldkv apart; scratch: D [B,NH,T] (and dout's bf16 copy); under bf16 q, k, v and out
 * are forward's copies in saved, out's in out_bf16 (rows g.ldo apart) where forward wrote it
 * there. */
static void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out,
                               const uint16_t *out_bf16, const float *lse, const float *saved,
                               const int32_t *mask, int causal, float p, uint64_t seed,
                               float *scratch, Heads g) {
    int B = g.B, T = g.T, NH = g.NH, NKV = g.NKV, HS = g.HS, acc = g.add;
    int tc = cuda_precision() == PRECISION_BF16;
    if (tc && !copies_aligned(saved, scratch)) return;
    AttCopies a = att_copies((float *)saved, scratch, g, out_in_saved(saved, out_bf16));
    if (tc && use_cudnn()) {
        CudnnParts c = cudnn_parts(scratch, g);
        CudnnSdpa s = sdpa_shape(g, mask, causal, p);
        heads_bf16(c.dout, dout, g, NH);
        sdpa_inputs(c, mask, p, seed, g);
        CudnnSdpaInputs in = cudnn_inputs(c);
        const char *why =
            cudnn_sdpa_backward(&s, c.dq, c.dk, c.dv, a.q, a.k, a.v, a.out, c.dout, lse, &in);
        if (why) {
            CUDA_FAIL(why);
            return;
        }
        size_t n = (size_t)B * T;
        widen_bf16(dq, g.ldq, c.dq, n, NH * HS, acc),
            widen_bf16(dk, g.ldkv, c.dk, n, NKV * HS, acc),
            widen_bf16(dv, g.ldkv, c.dv, n, NKV * HS, acc);
        return;
    }
    if (out_bf16) a.out = (bf16 *)out_bf16;
    int G = rowdot_lanes(HS);
    dim3 grid;
    unsigned threads;
    unsigned blocks = cuda_blocks((size_t)B * NH * T * G, ATT_WARPS * 32);
    if (tc) /* and dout's bf16 copy */
        flash_rowdot_kernel<bf16><<<blocks, ATT_WARPS * 32>>>(a.D, a.dout, dout, a.out, G, g);
    else
        flash_rowdot_kernel<float><<<blocks, ATT_WARPS * 32>>>(a.D, NULL, dout, out, G, g);
    CUDA_LAUNCHED("attention_backward (D)");
    if (dq) {
        if (tc) {
            with_kernel_shape<TC_DQ>(
                HS, g.score, p, B * NH, T, &grid, &threads, [&](auto shape, auto drop, int warps) {
                    using S = decltype(shape);
                    constexpr bool DROP = decltype(drop)::value;
                    auto *kernel = flash_dq_tc_kernel<S, DROP>;
                    size_t bytes = allow_shared(kernel, dq_tc_shared_bytes<S>(warps, HS));
                    flash_dq_tc_kernel<S, DROP><<<grid, threads, bytes>>>(
                        dq, a.dout, a.q, a.k, a.v, lse, a.D, mask, causal, p, seed, g);
                });
        } else {
            int warps = att_launch_shape(&grid, &threads, B * NH, T, DQ_ROWS);
            with_row_share<4>(HS, [&](auto dims) {
                constexpr int DIMS = decltype(dims)::value;
                size_t bytes = allow_shared(flash_dq_kernel<DIMS>, dq_shared_bytes(warps, HS));
                flash_dq_kernel<DIMS><<<grid, threads, bytes>>>(dq, dout, q, k, v, lse, a.D, mask,
                                                                causal, p, seed, g);
            });
        }
        CUDA_LAUNCHED("attention_backward (dq)");
    }
    if (dk || dv) {
        bool share = NH > NKV; /* a block a query head: the heads' shares, then their sums */
        float *dk_to = share && dk ? a.dk_share : dk, *dv_to = share && dv ? a.dv_share : dv;
        if (tc) {
            with_kernel_shape<TC_DKDV>(
                HS, g.score, p, B * NH, T, &grid, &threads, [&](auto shape, auto drop, int warps) {
                    using S = decltype(shape);
                    constexpr bool DROP = decltype(drop)::value;
                    auto run = [&](auto *kernel) {
                        size_t bytes = allow_shared(kernel, dkdv_tc_shared_bytes<S>(warps, HS));
                        kernel<<<grid, threads, bytes>>>(dk_to, dv_to, a.dout, a.q, a.k, a.v, lse,
                                                         a.D, mask, causal, p, seed, g);
                    };
                    if constexpr (S::ROLES)
                        run(flash_dkdv_roles_kernel<S, DROP>);
                    else
                        run(flash_dkdv_tc_kernel<S, DROP>);
                });
        } else {
            int warps = att_launch_shape(&grid, &threads, B * NH, T, KEY_ROWS);
            with_row_share<4>(HS, [&](auto dims) {
                constexpr int DIMS = decltype(dims)::value;
                size_t bytes = allow_shared(flash_dkdv_kernel<DIMS>, dkdv_shared_bytes(warps, HS));
                flash_dkdv_kernel<DIMS><<<grid, threads, bytes>>>(dk_to, dv_to, dout, q, k, v, lse,
                                                                  a.D, mask, causal, p, seed, g);
            });
        }
        if (share) {
            unsigned n = cuda_blocks((size_t)B * T * ((NKV * HS + 3) / 4), CUDA_THREADS);
            if (HS % 4 == 0)
                group_sum_kernel<4><<<n, CUDA_THREADS>>>(dk, dv, a.dk_share, a.dv_share, g);
            else
                group_sum_kernel<1><<<n, CUDA_THREADS>>>(dk, dv, a.dk_share, a.dv_share, g);
        }
        CUDA_LAUNCHED("attention_backward (dk, dv)");
    }
}

/* Rope's gradients: the tensor-core kernels turn dq and dk as they store them where a head's
 * halves are whole n8 tiles of their own (HS 64, 128 and 256); elsewhere a pass over dq and dk
 * afterwards, with acc preceded by the forward rotation of what they held, which the pass puts
 * back (to float rounding). */
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, int ldq, int ldkv, const float *out,
                             const uint16_t *out_bf16, int ldo, const float *lse,
                             const float *saved, const int32_t *mask, int causal, int window,
                             const RopeFreqs *rope_freqs, AttnScore score, float p, uint64_t seed,
                             float *scratch, int B, int T, int NH, int NKV, int HS, int acc) {
    Heads g = masked(heads(B, T, NH, NKV, HS, score), causal, window);
    g.step = p > 0.0f ? cuda_step() : NULL;
    g.add = acc, g.ldq = ldq, g.ldkv = ldkv, g.ldo = out_bf16 ? ldo : NH * HS;
    int rope_ok = 0;
    Rope rope = g.ok ? cuda_rope_table(rope_freqs, HS, &rope_ok) : Rope{};
    if (!g.ok || !rope_ok || (!dq && !dk && !dv)) return;
    int tc = cuda_precision() == PRECISION_BF16 && !use_cudnn();
    /* the stores pair lanes' columns d and d + HS/2: a whole head's rotation alone */
    int stores_turn = tc && (HS == 64 || HS == 128 || HS == 256) && 2 * rope.half == HS;
    int pass = rope.half && !stores_turn;
    if (stores_turn) g.rope = rope;
    Rope undo = rope; /* the inverse of the transposed turn below, for what dq and dk hold */
    undo.scale = rope.half ? 1.0f / rope.scale : 1.0f;
    if (pass && acc) cuda_rope(dq, ldq, dk, ldkv, NULL, undo, B, T, NH, NKV, HS, 1.0f);
    attention_backward(dq, dk, dv, dout, q, k, v, out, out_bf16, lse, saved, mask, causal, p, seed,
                       scratch, g);
    if (pass) cuda_rope(dq, ldq, dk, ldkv, NULL, rope, B, T, NH, NKV, HS, -1.0f);
}

/* Attention over a KV cache (generation), two ways by the number of query rows n * NH:
 * - few (a decode step, a short prompt): flash-decoding. A warp a query row, head and split of
 *   the keys streams the keys past the online softmax, reading only those up to the query's
 *   position (the positions are on the device: a recorded decode step, over the whole cache,
 *   reads what its position needs). Four keys at a time, eight lanes a key (lane sub owns
 *   dimensions sub, sub + 8, ..: 32 bytes a key a load), the four running sums joined at the
 *   end. The keys split in CACHED_KEYS, so that enough warps run; each split writes its partial
 *   sums (o unnormalised, m, l: HS + 2 floats) and counts itself done (cuda_counters, a counter
 *   a row), and the row's last joins them in split order: one launch, the same bits whichever
 *   warp is last. Splits past the position add nothing, so a step gives the same bits over the
 *   whole cache as over its own keys.
 * - many (a long prompt): cuBLAS GEMMs over all L keys with a softmax between them (the scores
 *   [NH,n,L] in scratch), where each key's load serves many queries. */
enum {
    CACHED_SPLIT_ROWS = 512, /* query rows from which the GEMMs run (<= CUDA_COUNTERS) */
    CACHED_KEYS = 64,        /* keys a split */
    CACHED_LANES = 8,        /* lanes a key (each owns CACHED_DIMS, HS <= 8 * CACHED_DIMS) */
};

/* Whether this warp's split is the last of its row's `used` to be done (its partial fenced
 * first, by every lane that wrote); the last puts the row's counter back to 0. */
__device__ inline bool last_split(unsigned *counter, int used) {
    __threadfence();
    __syncwarp();
    unsigned last = 0;
    if ((threadIdx.x & 31) == 0) { /* fences either side of the count: release, then acquire */
        last = atomicAdd(counter, 1u) == (unsigned)used - 1;
        __threadfence();
        if (last) *counter = 0;
    }
    return __shfl_sync(0xffffffffu, last, 0);
}

/* Row r of out (and out_bf16 from ob, the row's place there) = sum_s e_s o_s / sum_s e_s l_s,
 * e_s = 2^(m_s - max m), over the row's `used` partials pr (split order; read past L1: other
 * warps wrote them), lane l owning dimensions l, l + 32, .. (DIMS of them, HS <= 32 * DIMS) */
template <int DIMS>
__device__ inline void join_splits(float *out, __nv_bfloat16 *out_bf16, size_t ob,
                                   const volatile float *pr, int used, size_t r, int HS) {
    int lane = threadIdx.x & 31;
    float mx = -INFINITY, den = 0.0f, acc[DIMS] = {};
    for (int s = 0; s < used; s++) mx = fmaxf(mx, pr[s * (HS + 2) + HS]);
    for (int s = 0; s < used; s++) {
        const volatile float *ps = pr + s * (HS + 2);
        float e = exp2f(ps[HS] - mx);
        den += e * ps[HS + 1];
#pragma unroll
        for (int c = 0; c < DIMS; c++)
            if (lane + 32 * c < HS) acc[c] += e * ps[lane + 32 * c];
    }
#pragma unroll
    for (int c = 0; c < DIMS; c++) {
        size_t at = r * HS + lane + 32 * c;
        if (lane + 32 * c >= HS) continue;
        float y = acc[c] / den;
        out[at] = y;
        if (out_bf16) out_bf16[ob + lane + 32 * c] = __float2bfloat16(y);
    }
}

/* Warp w: query row r = w / splits (query i = r / NH, head h = r % NH), keys of split w % splits
 * up to pos[i] (from its window's first) of its sequence (seq[i] stride rows in; seq NULL: one
 * sequence), scored as score says (CAP: soft-capped, a kernel of its
 * own: the branch cost the common one 21-31 registers on sm_90); out and out_bf16 (directly with
 * one split, else by the row's last split from part [n*NH, splits, HS + 2]). */
template <int CACHED_DIMS, bool CAP>
__global__ void attention_cached_kernel(float *out, __nv_bfloat16 *out_bf16, int ldo, float *part,
                                        unsigned *counters, const float *q, int ldq, const float *k,
                                        const float *v, const int32_t *pos, const int32_t *seq,
                                        int stride, int window, AttnScore score, int n, int splits,
                                        int NH, int NKV, int HS) {
    int lane = threadIdx.x & 31, sub = lane % CACHED_LANES, group = lane / CACHED_LANES;
    int ldkv = NKV * HS;
    /* scores in log2 units: q's products taken there by its factor, or (CAP) capped first */
    float q_scale = CAP ? score.scale : LOG2E * score.scale;
    WARP_ROWS(w, (size_t)n * NH * splits) {
        size_t r = w / splits;
        int i = (int)(r / NH), h = (int)(r % NH), j0 = (int)(w % splits) * CACHED_KEYS;
        int j1 = splits == 1 ? pos[i] + 1 : min(pos[i] + 1, j0 + CACHED_KEYS);
        int first = first_key_tile(pos[i], window, 1), first_split = first / CACHED_KEYS;
        if (j0 >= j1 || j0 + CACHED_KEYS <= first) continue; /* outside the window: not counted */
        j0 = max(j0, first);
        const float *qr = q + (size_t)i * ldq + (size_t)h * HS;
        size_t kv = (seq ? (size_t)seq[i] * stride * ldkv : 0) /* its sequence's cache */
                    + (size_t)(h / (NH / NKV)) * HS;           /* the query head's KV head */
        const float *kh = k + kv, *vh = v + kv;
        float qd[CACHED_DIMS], o[CACHED_DIMS], m = -INFINITY, l = 0.0f;
#pragma unroll
        for (int c = 0; c < CACHED_DIMS; c++) {
            int d = sub + CACHED_LANES * c;
            qd[c] = d < HS ? qr[d] * q_scale : 0.0f, o[c] = 0.0f;
        }
        for (int base = j0; base < j1; base += 32 / CACHED_LANES) {
            int j = base + group;
            bool valid = j < j1;
            const float *kj = kh + (size_t)(valid ? j : j0) * ldkv;
            float s = 0.0f;
#pragma unroll
            for (int c = 0; c < CACHED_DIMS; c++)
                if (sub + CACHED_LANES * c < HS) s += qd[c] * kj[sub + CACHED_LANES * c];
            for (int off = 1; off < CACHED_LANES; off <<= 1)
                s += __shfl_xor_sync(0xffffffffu, s, off);
            if (!valid) continue; /* past the split: its group's sums stay */
            if (CAP) s = soft_cap_fast(s, score.softcap) * LOG2E;
            float m_new = fmaxf(m, s), rescale = exp2f(m - m_new), p = exp2f(s - m_new);
            l = l * rescale + p, m = m_new;
            const float *vj = vh + (size_t)j * ldkv;
#pragma unroll
            for (int c = 0; c < CACHED_DIMS; c++)
                if (sub + CACHED_LANES * c < HS)
                    o[c] = o[c] * rescale + p * vj[sub + CACHED_LANES * c];
        }
        for (int off = CACHED_LANES; off < 32; off <<= 1) { /* the four groups' sums joined */
            float m_other = __shfl_xor_sync(0xffffffffu, m, off);
            float l_other = __shfl_xor_sync(0xffffffffu, l, off), m_new = fmaxf(m, m_other);
            float mine = m == -INFINITY ? 0.0f : exp2f(m - m_new);
            float theirs = m_other == -INFINITY ? 0.0f : exp2f(m_other - m_new);
            l = l * mine + l_other * theirs, m = m_new;
#pragma unroll
            for (int c = 0; c < CACHED_DIMS; c++)
                o[c] = o[c] * mine + __shfl_xor_sync(0xffffffffu, o[c], off) * theirs;
        }
        float *dst = splits == 1 ? out + r * HS : part + w * (HS + 2);
        size_t ob = (size_t)i * ldo + (size_t)h * HS; /* the row's place in out_bf16 */
#pragma unroll
        for (int c = 0; c < CACHED_DIMS && !group; c++) {
            int d = sub + CACHED_LANES * c;
            if (d >= HS) continue;
            float y = splits == 1 ? o[c] / l : o[c];
            dst[d] = y;
            if (splits == 1 && out_bf16) out_bf16[ob + d] = __float2bfloat16(y);
        }
        if (splits == 1) continue;
        if (lane == 0) dst[HS] = m, dst[HS + 1] = l;
        int used = pos[i] / CACHED_KEYS + 1 - first_split; /* the splits holding keys */
        if (last_split(counters + r, used)) /* a lane of the join: HS / 32 dimensions, not / 8 */
            join_splits<CACHED_DIMS / 4>(out, out_bf16, ob,
                                         part + (r * splits + first_split) * (HS + 2), used, r, HS);
    }
}

/* In place on the NH*n rows of scores [NH,n,L] (row = h*n + i, query position pos[i]): the
 * softmax over keys pos[i] - window < j <= pos[i] (window 0: j <= pos[i]) of the scores
 * soft-capped first where softcap > 0, other keys exactly 0. */
__global__ void softmax_cached_kernel(float *s, int rows, int n, const int32_t *pos, int window,
                                      float softcap, int L) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(row, rows) {
        float *a = s + row * L;
        int limit = pos[row % n] + 1, first = first_key_tile(limit - 1, window, 1);
        float mx = -INFINITY, sum = 0.0f;
        if (softcap > 0.0f) { /* the lanes' own keys, as the passes below read them */
            for (int j = first + lane; j < limit; j += 32) a[j] = soft_cap_fast(a[j], softcap);
            __syncwarp(); /* the last pass reads other lanes' */
        }
        for (int j = first + lane; j < limit; j += 32) mx = fmaxf(mx, a[j]);
        mx = warp_max(mx);
        for (int j = first + lane; j < limit; j += 32) sum += expf(a[j] - mx);
        float inv = 1.0f / warp_sum(sum);
        for (int j = lane; j < L; j += 32)
            a[j] = j >= first && j < limit ? expf(a[j] - mx) * inv : 0.0f;
    }
}

/* Many query rows: GEMMs batched over the KV heads, one per member j of a group (query heads j,
 * j+G, ... at a constant stride), or for a single query one for the whole group, whose G heads
 * are then the columns of one [HS, G] matrix. */
static void attention_cached_gemms(float *out, const float *q, int ldq, const float *k,
                                   const float *v, const int32_t *pos, int window, AttnScore score,
                                   float *scratch, int n, int L, int NH, int NKV, int HS) {
    int G = NH / NKV, ldkv = NKV * HS, parts = n == 1 ? 1 : G, cols = n == 1 ? G : n;
    int ldqc = n == 1 ? HS : ldq, ldo = n == 1 ? HS : NH * HS; /* a single query's heads: columns */
    long long nL = (long long)n * L;
    for (int j = 0; j < parts; j++) /* s_h^T (L x n) = k_kv q_h^T */
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, L, cols, HS, score.scale, k, ldkv, HS,
                  q + (size_t)j * HS, ldqc, (long long)G * HS, 0.0f, scratch + j * nL, L, G * nL,
                  NKV);
    softmax_cached_kernel<<<cuda_blocks((size_t)NH * n, CACHED_WARPS), CACHED_WARPS * 32>>>(
        scratch, NH * n, n, pos, window, score.softcap, L);
    CUDA_LAUNCHED("attention_cached (softmax)");
    for (int j = 0; j < parts; j++) /* out_h^T (HS x n) = v_kv^T P_h^T */
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, HS, cols, L, 1.0f, v, ldkv, HS, scratch + j * nL, L,
                  G * nL, 0.0f, out + (size_t)j * HS, ldo, (long long)G * HS, NKV);
}

static int cached_splits(int L) {
    return (L + CACHED_KEYS - 1) / CACHED_KEYS;
}

/* The most either way takes for up to n queries over up to L keys. */
size_t cuda_attention_cached_scratch(int n, int L, int NH, int HS) {
    size_t rows = (size_t)n * NH, few = CACHED_SPLIT_ROWS - 1;
    size_t splits = (rows < few ? rows : few) * cached_splits(L) * (HS + 2);
    size_t scores = rows >= CACHED_SPLIT_ROWS ? rows * L : 0;
    return splits > scores ? splits : scores;
}

/* Generation: q, out [n,NH*HS] at positions pos[i] (out_bf16's rows ldo apart); k, v
 * [L,NKV*HS], or with seq query i's at seq[i] * stride rows; scores as score says. Many rows of
 * one sequence run as GEMMs; many of several, a warp a row and head over all its keys. */
void cuda_attention_cached(float *out, uint16_t *out_bf16, int ldo, const float *q, int ldq,
                           const float *k, const float *v, const int32_t *pos, const int32_t *seq,
                           int stride, int window, AttnScore score, float *scratch, int n, int L,
                           int NH, int NKV, int HS) {
    Heads g = masked(heads(1, n, NH, NKV, HS, score), 1, window);
    bool few_keys = !seq && L < n; /* one sequence's n positions need n keys */
    if (g.ok && few_keys) CUDA_FAIL("attention_cached: fewer cached keys than queries");
    if (!g.ok || few_keys) return;
    bool many = (size_t)n * NH >= CACHED_SPLIT_ROWS;
    if (many && !seq) {
        attention_cached_gemms(out, q, ldq, k, v, pos, window, score, scratch, n, L, NH, NKV, HS);
        if (out_bf16) cuda_dequantize_rows_bf16(out_bf16, out, GGML_F32, 0, n, NH * HS, ldo);
        return;
    }
    int splits = many ? 1 : cached_splits(L); /* many rows: warps enough without splits */
    unsigned *counters = cuda_counters();
    if (!counters) return;
    size_t warps = (size_t)n * NH * splits;
    with_row_share<16>(HS, [&](auto dims) {
        constexpr int CACHED_DIMS = decltype(dims)::value;
        auto launch = [&](auto cap) {
            constexpr bool CAP = decltype(cap)::value;
            attention_cached_kernel<CACHED_DIMS, CAP>
                <<<cuda_blocks(warps, CACHED_WARPS), CACHED_WARPS * 32>>>(
                    out, (__nv_bfloat16 *)out_bf16, ldo, scratch, counters, q, ldq, k, v, pos, seq,
                    stride, window, score, n, splits, NH, NKV, HS);
        };
        if (score.softcap > 0.0f)
            launch(std::true_type());
        else
            launch(std::false_type());
    });
    CUDA_LAUNCHED("attention_cached");
}

/* Row i of k and v (rows ld apart) to row pos[i] of the caches (of sequence seq[i], stride rows
 * a sequence; seq NULL: one), vec (1 or 4) floats a thread,
 * then with rope.half, a thread a pair of the rows' NQ heads of q (turned in place) and of k
 * (turned into the cache): copies first, k's among them only without rope or (partial rotary)
 * its dims past the turned ones. */
/* The cache row of new token i: its position in its sequence's rows. */
__device__ inline size_t cache_row(const int32_t *pos, const int32_t *seq, int stride, size_t i) {
    return (seq ? (size_t)seq[i] * stride : 0) + (size_t)pos[i];
}

template <int vec>
__global__ void cache_write_kernel(float *kc, float *vc, float *q, int ldq, const float *k,
                                   const float *v, int ld, const int32_t *pos, const int32_t *seq,
                                   int stride, const Rope r, int n, int NQ, int NKV, int HS) {
    int W = NKV * HS, half = r.half, heads = NQ + NKV, k_copied = 2 * half < HS;
    size_t per_row = (size_t)W / vec, per_part = (size_t)n * per_row;
    size_t copied = (k_copied ? 2 : 1) * per_part, pairs = half ? (size_t)n * heads * half : 0;
    GRID_STRIDE(e, copied + pairs) {
        if (e < copied) {
            int which = !k_copied || e >= per_part; /* 1: v */
            size_t i = e % per_part / per_row, col = e % per_row * vec;
            if (!which && (int)(col % HS) < 2 * half) continue; /* turned below */
            const float *src = (which ? v : k) + i * ld + col;
            float *dst = (which ? vc : kc) + cache_row(pos, seq, stride, i) * W + col;
            if (vec == 4)
                *(float4 *)dst = *(const float4 *)src;
            else
                *dst = *src;
            continue;
        }
        size_t x = e - copied, row = x / half;
        int f = (int)(x % half), h = (int)(row % heads), i = (int)(row / heads);
        const float *src = h < NQ ? q + (size_t)i * ldq + (size_t)h * HS
                                  : k + (size_t)i * ld + (size_t)(h - NQ) * HS;
        float *dst = h < NQ ? q + (size_t)i * ldq + (size_t)h * HS
                            : kc + cache_row(pos, seq, stride, i) * W + (size_t)(h - NQ) * HS;
        float c, s, a = src[f], b = src[f + half];
        rope_cs(r, pos[i], f, &c, &s);
        rope_turn(&a, &b, c, s);
        dst[f] = a, dst[f + half] = b;
    }
}

void cuda_cache_write(float *kc, float *vc, float *q, int ldq, const float *k, const float *v,
                      int ld, const int32_t *pos, const int32_t *seq, int stride,
                      const RopeFreqs *rope, int n, int NH, int NKV, int HS) {
    int W = NKV * HS, ok;
    Rope r = cuda_rope_table(rope, HS, &ok);
    if (n <= 0 || W <= 0 || !ok) return;
    int NQ = r.half && q ? NH : 0;
    int k_copied = 2 * r.half < HS; /* a chunk of 4 lies in k's turned dims or past them */
    bool wide =
        W % 4 == 0 && ld % 4 == 0 && (!r.half || !k_copied || (HS % 4 == 0 && r.half % 2 == 0));
    const void *p[4] = {kc, vc, k, v};
    for (int i = 0; i < 4; i++) wide = wide && (uintptr_t)p[i] % 16 == 0;
    size_t copies = (size_t)(k_copied ? 2 : 1) * n * W / (wide ? 4 : 1);
    size_t threads = copies + (size_t)n * (NQ + NKV) * r.half;
    unsigned blocks = cuda_blocks(threads, CUDA_THREADS);
    if (wide)
        cache_write_kernel<4><<<blocks, CUDA_THREADS>>>(kc, vc, q, ldq, k, v, ld, pos, seq, stride,
                                                        r, n, NQ, NKV, HS);
    else
        cache_write_kernel<1><<<blocks, CUDA_THREADS>>>(kc, vc, q, ldq, k, v, ld, pos, seq, stride,
                                                        r, n, NQ, NKV, HS);
    CUDA_LAUNCHED("cache_write");
}
