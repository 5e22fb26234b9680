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
 * kernel, a warp per row) into the scratch [B,NH,T]: the only scratch, O(T). Causal blocks
 * skip the key tiles (forward, dq) or query tiles (dk, dv) that the mask hides entirely.
 *
 * Under fp32 and tf32 (cuda_precision()), FP32 CUDA cores, one warp per row: in the query-side
 * kernels lane l takes key j0 + l of a
 * tile for the dot products and owns dimensions l, l+32, ... of the accumulators (HS <= 128,
 * four per lane); the key-side kernel mirrors it with lane l taking query i0 + l. Shared
 * memory is dynamic, rows of exactly HS floats (41.5 KB per block at HS = 128, half that at
 * 64). Dot products run over d in a rotated order starting at the lane's own offset, so for
 * HS a multiple of 32 the lanes of a warp read 32 different banks. Under bf16, the same three
 * kernels on tensor cores (the *_tc kernels below, where their layout is described).
 *
 * Dropout on P uses index ((b*NH + h)*T + i)*T + j, P's element index, as the CPU does. */
#include <mma.h>

#include "cuda_common.cuh"
#include "loraft/activation.h"

enum {
    HS_MAX = 128,       /* head sizes up to this; larger is an error */
    DIMS = HS_MAX / 32, /* accumulator dimensions per lane */
    ATT_WARPS = 4,      /* warps per block, at most (fewer when T is short) */
    KEY_TILE = 32,      /* keys per shared tile (forward, dq) = lanes */
    FWD_ROWS = 4,       /* query rows per warp: forward */
    DQ_ROWS = 2,        /* query rows per warp: dq (dout rows in shared too) */
    KEY_ROWS = 2,       /* keys per warp: dk, dv */
    QUERY_TILE = 32,    /* queries per shared tile (dk, dv) = lanes */
    CACHED_WARPS = 8,   /* attention_cached's softmax: rows per block */
};

/* The shape of one call; ok is 0 (error noted) if it cannot be served. */
typedef struct Heads {
    int B, T, NH, NKV, HS, ok;
} Heads;

static Heads heads(int B, int T, int NH, int NKV, int HS) {
    Heads g = {B, T, NH, NKV, HS, B > 0 && T > 0 && NH > 0 && NKV > 0 && HS > 0};
    if (g.ok && NH % NKV) {
        CUDA_FAIL("attention: NH is not a multiple of NKV");
        g.ok = 0;
    }
    if (g.ok && HS > HS_MAX) {
        CUDA_FAIL("attention: head size HS > 128 is not supported by the CUDA kernels");
        g.ok = 0;
    }
    return g;
}

/* Key j of sequence b is visible from query i: inside the sequence, not padding, and not in
 * the future when causal. keep is sequence b's mask or NULL. */
__device__ inline bool key_visible(const int32_t *keep, int causal, int i, int j, int T) {
    return j < T && (!keep || keep[j]) && (!causal || j <= i);
}

/* dst[r*W + d] = rows r0 + r of a head at src (row stride ld) as float or bf16 (rounded), zero
 * past row T and past dimension HS (a row of W >= HS); all threads. */
__device__ inline void store_as(float *dst, float x) {
    *dst = x;
}
__device__ inline void store_as(__nv_bfloat16 *dst, float x) {
    *dst = __float2bfloat16(x);
}
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

/* acc[c] += sum_{jj < n} w[jj] * rows[jj*HS + lane + 32c]: the lane's dimensions of a
 * weighted sum of shared rows. The warp's weights go through shared memory (w, written by
 * lane jj before a __syncwarp) rather than 32 shuffles. */
__device__ inline void acc_rows(float acc[DIMS], const float *w, const float *rows, int n, int HS,
                                int lane) {
    for (int jj = 0; jj < n; jj++) {
#pragma unroll
        for (int c = 0; c < DIMS; c++)
            if (lane + 32 * c < HS) acc[c] += w[jj] * rows[jj * HS + lane + 32 * c];
    }
}

/* Pointers to row 0 of query head h of sequence b (q-shaped) and of its KV head. */
struct HeadPtrs {
    size_t q, kv;
    const int32_t *keep;
};
__device__ inline HeadPtrs head_ptrs(const Heads g, int b, int h, const int32_t *mask) {
    HeadPtrs p;
    p.q = (size_t)b * g.T * g.NH * g.HS + (size_t)h * g.HS;
    p.kv = (size_t)b * g.T * g.NKV * g.HS + (size_t)(h / (g.NH / g.NKV)) * g.HS;
    p.keep = mask ? mask + (size_t)b * g.T : NULL;
    return p;
}

/* grid (B*NH, query blocks of warps*FWD_ROWS rows). out, lse: see ops.h. */
__global__ void flash_forward_kernel(float *out, float *lse, const float *q, const float *k,
                                     const float *v, const int32_t *mask, int causal, float p,
                                     uint64_t seed, const Heads g) {
    int bh = blockIdx.x, T = g.T, HS = g.HS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int rows = (blockDim.x >> 5) * FWD_ROWS, i0 = blockIdx.y * rows, start = lane % HS;
    extern __shared__ float smem[]; /* fwd_shared_bytes: Qs, Ks, Vs, then W per warp */
    float *Qs = smem, *Ks = Qs + rows * HS, *Vs = Ks + KEY_TILE * HS;
    float *W = Vs + KEY_TILE * HS + warp * KEY_TILE; /* this warp's row of P, dropped */
    HeadPtrs hp = head_ptrs(g, bh / g.NH, bh % g.NH, mask);
    size_t ldq = (size_t)g.NH * HS, ldkv = (size_t)g.NKV * HS;
    float scale = 1.0f / sqrtf((float)HS), m[FWD_ROWS], l[FWD_ROWS], acc[FWD_ROWS][DIMS];
    for (int r = 0; r < FWD_ROWS; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        for (int c = 0; c < DIMS; c++) acc[r][c] = 0.0f;
    }
    load_rows(Qs, q + hp.q, ldq, i0, rows, T, HS, HS);
    int keys = causal ? min(T, i0 + rows) : T;
    for (int j0 = 0; j0 < keys; j0 += KEY_TILE) {
        __syncthreads(); /* Qs written; the previous tile's readers done */
        load_rows(Ks, k + hp.kv, ldkv, j0, KEY_TILE, T, HS, HS);
        load_rows(Vs, v + hp.kv, ldkv, j0, KEY_TILE, T, HS, HS);
        __syncthreads();
        int j = j0 + lane, n = min(KEY_TILE, keys - j0);
#pragma unroll
        for (int r = 0; r < FWD_ROWS; r++) {
            int i = i0 + warp * FWD_ROWS + r;
            if (i >= T) break; /* warp-uniform */
            float s =
                key_visible(hp.keep, causal, i, j, T)
                    ? dot_rotated(Qs + (warp * FWD_ROWS + r) * HS, Ks + lane * HS, HS, start) *
                          scale
                    : -INFINITY;
            float m_new = fmaxf(m[r], warp_max(s));
            if (m_new == -INFINITY) continue; /* nothing visible yet: warp-uniform */
            /* exp_approx as the CPU's, but exactly 0 for hidden keys and the first rescale */
            float pj = s == -INFINITY ? 0.0f : exp_approx(s - m_new);
            float rescale = m[r] == -INFINITY ? 0.0f : exp_approx(m[r] - m_new);
            l[r] = l[r] * rescale + warp_sum(pj);
            m[r] = m_new;
            for (int c = 0; c < DIMS; c++) acc[r][c] *= rescale;
            W[lane] = pj * rng_dropout_scale(seed, ((uint64_t)bh * T + i) * T + j, p);
            __syncwarp();
            acc_rows(acc[r], W, Vs, n, HS, lane);
            __syncwarp(); /* W read before the next row writes it */
        }
    }
    for (int r = 0; r < FWD_ROWS; r++) {
        int i = i0 + warp * FWD_ROWS + r;
        if (i >= T) break;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (int c = 0; c < DIMS; c++)
            if (lane + 32 * c < HS) out[hp.q + i * ldq + lane + 32 * c] = acc[r][c] * inv;
        if (lane == 0) lse[(size_t)bh * T + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : INFINITY;
    }
}

/* D[B*NH*T] = rowsum(dout * out) per query row (row = (b*NH + h)*T + i), a warp per row. */
__global__ void flash_rowdot_kernel(float *D, const float *dout, const float *out, const Heads g) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(row, (size_t)g.B * g.NH * g.T) {
        size_t bh = row / g.T, i = row % g.T, b = bh / g.NH, h = bh % g.NH;
        size_t at = (b * g.T + i) * g.NH * g.HS + h * g.HS;
        float s = 0.0f;
        for (int d = lane; d < g.HS; d += 32) s += dout[at + d] * out[at + d];
        s = warp_sum(s);
        if (lane == 0) D[row] = s;
    }
}

/* grid (B*NH, query blocks of warps*DQ_ROWS rows): dq += dS k / sqrt(HS), dS = P * (dP
 * dropped - D), P = exp(s - lse) recomputed, dP = dout v^T. */
__global__ void flash_dq_kernel(float *dq, const float *dout, const float *q, const float *k,
                                const float *v, const float *lse, const float *D,
                                const int32_t *mask, int causal, float p, uint64_t seed,
                                const Heads g) {
    int bh = blockIdx.x, T = g.T, HS = g.HS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int rows = (blockDim.x >> 5) * DQ_ROWS, i0 = blockIdx.y * rows, start = lane % HS;
    extern __shared__ float smem[]; /* dq_shared_bytes: Qs, dOs, Ks, Vs, then W per warp */
    float *Qs = smem, *dOs = Qs + rows * HS, *Ks = dOs + rows * HS, *Vs = Ks + KEY_TILE * HS;
    float *W = Vs + KEY_TILE * HS + warp * KEY_TILE; /* this warp's row of dS */
    HeadPtrs hp = head_ptrs(g, bh / g.NH, bh % g.NH, mask);
    size_t ldq = (size_t)g.NH * HS, ldkv = (size_t)g.NKV * HS;
    float scale = 1.0f / sqrtf((float)HS), row_lse[DQ_ROWS], row_D[DQ_ROWS], acc[DQ_ROWS][DIMS];
    for (int r = 0; r < DQ_ROWS; r++) {
        int i = i0 + warp * DQ_ROWS + r;
        row_lse[r] = i < T ? lse[(size_t)bh * T + i] : INFINITY;
        row_D[r] = i < T ? D[(size_t)bh * T + i] : 0.0f;
        for (int c = 0; c < DIMS; c++) acc[r][c] = 0.0f;
    }
    load_rows(Qs, q + hp.q, ldq, i0, rows, T, HS, HS);
    load_rows(dOs, dout + hp.q, ldq, i0, rows, T, HS, HS);
    int keys = causal ? min(T, i0 + rows) : T;
    for (int j0 = 0; j0 < keys; j0 += KEY_TILE) {
        __syncthreads();
        load_rows(Ks, k + hp.kv, ldkv, j0, KEY_TILE, T, HS, HS);
        load_rows(Vs, v + hp.kv, ldkv, j0, KEY_TILE, T, HS, HS);
        __syncthreads();
        int j = j0 + lane, n = min(KEY_TILE, keys - j0);
#pragma unroll
        for (int r = 0; r < DQ_ROWS; r++) {
            int i = i0 + warp * DQ_ROWS + r, w = (warp * DQ_ROWS + r) * HS;
            if (i >= T) break; /* warp-uniform */
            float ds = 0.0f;
            if (key_visible(hp.keep, causal, i, j, T)) {
                float P =
                    exp_approx(dot_rotated(Qs + w, Ks + lane * HS, HS, start) * scale - row_lse[r]);
                float dP = dot_rotated(dOs + w, Vs + lane * HS, HS, start) *
                           rng_dropout_scale(seed, ((uint64_t)bh * T + i) * T + j, p);
                ds = P * (dP - row_D[r]);
            }
            W[lane] = ds;
            __syncwarp();
            acc_rows(acc[r], W, Ks, n, HS, lane);
            __syncwarp();
        }
    }
    for (int r = 0; r < DQ_ROWS; r++) {
        int i = i0 + warp * DQ_ROWS + r;
        if (i >= T) break;
        for (int c = 0; c < DIMS; c++)
            if (lane + 32 * c < HS) dq[hp.q + i * ldq + lane + 32 * c] += acc[r][c] * scale;
    }
}

/* grid (B*NKV, key blocks of warps*KEY_ROWS keys): for the block's keys of KV head kvh,
 * over every query head of its group and every query that can see them,
 * dv += dropout(P)^T dout and dk += dS^T q / sqrt(HS). dk or dv may be NULL. */
__global__ void flash_dkdv_kernel(float *dk, float *dv, const float *dout, const float *q,
                                  const float *k, const float *v, const float *lse, const float *D,
                                  const int32_t *mask, int causal, float p, uint64_t seed,
                                  const Heads g) {
    int b = blockIdx.x / g.NKV, kvh = blockIdx.x % g.NKV, G = g.NH / g.NKV, T = g.T, HS = g.HS;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, start = lane % HS;
    int nkeys = (blockDim.x >> 5) * KEY_ROWS, j0 = blockIdx.y * nkeys;
    extern __shared__ float smem[]; /* dkdv_shared_bytes: Qs, dOs, Ks, Vs, then Wp, Wd per warp */
    float *Qs = smem, *dOs = Qs + QUERY_TILE * HS, *Ks = dOs + QUERY_TILE * HS;
    float *Vs = Ks + nkeys * HS, *Wp = Vs + nkeys * HS + warp * 2 * QUERY_TILE;
    float *Wd = Wp + QUERY_TILE; /* this warp's dropped P and dS against one key */
    size_t ldq = (size_t)g.NH * HS, ldkv = (size_t)g.NKV * HS;
    float scale = 1.0f / sqrtf((float)HS), dk_acc[KEY_ROWS][DIMS], dv_acc[KEY_ROWS][DIMS];
    for (int r = 0; r < KEY_ROWS; r++)
        for (int c = 0; c < DIMS; c++) dk_acc[r][c] = dv_acc[r][c] = 0.0f;
    HeadPtrs hp = head_ptrs(g, b, kvh * G, mask);
    load_rows(Ks, k + hp.kv, ldkv, j0, nkeys, T, HS, HS);
    load_rows(Vs, v + hp.kv, ldkv, j0, nkeys, T, HS, HS);
    for (int h = kvh * G; h < (kvh + 1) * G; h++) {
        size_t bh = (size_t)b * g.NH + h, qo = hp.q + (size_t)(h - kvh * G) * HS;
        /* causal: queries before the block's first key see none of its keys */
        for (int i0 = causal ? j0 / QUERY_TILE * QUERY_TILE : 0; i0 < T; i0 += QUERY_TILE) {
            __syncthreads(); /* Ks, Vs written; the previous tile's readers done */
            load_rows(Qs, q + qo, ldq, i0, QUERY_TILE, T, HS, HS);
            load_rows(dOs, dout + qo, ldq, i0, QUERY_TILE, T, HS, HS);
            __syncthreads();
            int i = i0 + lane, n = min(QUERY_TILE, T - i0);
            float row_lse = i < T ? lse[bh * T + i] : INFINITY, row_D = i < T ? D[bh * T + i] : 0;
#pragma unroll
            for (int r = 0; r < KEY_ROWS; r++) {
                int w = warp * KEY_ROWS + r, j = j0 + w, kw = w * HS;
                if (j >= T) break; /* warp-uniform */
                float pd = 0.0f, ds = 0.0f;
                if (i < T && key_visible(hp.keep, causal, i, j, T)) {
                    float P = exp_approx(dot_rotated(Qs + lane * HS, Ks + kw, HS, start) * scale -
                                         row_lse);
                    float keep = rng_dropout_scale(seed, (bh * T + i) * T + j, p);
                    pd = P * keep;
                    ds = P * (dot_rotated(dOs + lane * HS, Vs + kw, HS, start) * keep - row_D);
                }
                Wp[lane] = pd, Wd[lane] = ds;
                __syncwarp();
                if (dv) acc_rows(dv_acc[r], Wp, dOs, n, HS, lane);
                if (dk) acc_rows(dk_acc[r], Wd, Qs, n, HS, lane);
                __syncwarp();
            }
        }
    }
    for (int r = 0; r < KEY_ROWS; r++) {
        int j = j0 + warp * KEY_ROWS + r;
        if (j >= T) break;
        for (int c = 0; c < DIMS; c++) {
            size_t at = hp.kv + j * ldkv + lane + 32 * c;
            if (lane + 32 * c >= HS) continue;
            if (dv) dv[at] += dv_acc[r][c];
            if (dk) dk[at] += dk_acc[r][c] * scale;
        }
    }
}

/* Warps per block for `per_warp` rows each: ATT_WARPS, fewer when T has fewer rows (a short
 * sequence leaves no warp idle). */
static int att_warps(int T, int per_warp) {
    int w = (T + per_warp - 1) / per_warp;
    return w < ATT_WARPS ? w : ATT_WARPS;
}

/* The launch of a kernel with `per_warp` rows per warp over T rows of `problems` heads;
 * returns the warps per block. */
static int att_launch_shape(dim3 *grid, unsigned *threads, int problems, int T, int per_warp) {
    int warps = att_warps(T, per_warp), rows = warps * per_warp;
    *grid = dim3((unsigned)problems, (unsigned)((T + rows - 1) / rows));
    *threads = 32u * (unsigned)warps;
    return warps;
}

/* Dynamic shared memory of each kernel, in bytes: rows of HS floats and a 32-float row of
 * weights per warp (two for dk, dv). At HS = 128 and four warps, at most 41.5 KB: under
 * the 48 KB any launch may take without cudaFuncSetAttribute. */
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
 * WMMA 16 x 16 x 16 tiles, bf16 operands, f32 accumulators. q, k, v and dout are rounded to bf16
 * as they are loaded into shared memory (rows padded with zeros to HP, HS rounded up to 16);
 * the scores and dP leave the tensor cores in f32 through a per-warp tile in shared memory,
 * where the softmax, lse, D and dS = P * (M * dP - D) are computed in f32, and P (dropped) and
 * dS are rounded to bf16 only as the operands of the next product. A warp owns 16 rows (query
 * rows; keys for dk, dv): lane l takes row l / 2 and half l % 2 of a tile's 32 columns for the
 * softmax, and of each 16 columns of the output for the forward's rescaled accumulator (how a
 * fragment spreads over the lanes is unspecified, so rows are rescaled in registers the lane
 * owns, after a fragment is stored). dq, dk and dv accumulate in fragments over the whole walk.
 * Shared memory: f32 tiles first, then bf16 rows, every piece a multiple of 32 bytes (WMMA's
 * alignment); up to 72 KB at HS = 128 (dk, dv), above the default 48 KB, so the launch raises
 * the limit. */
/* bf16 WMMA needs sm_80: for older targets the kernels below compile to a trap that never runs
 * (Ops.best_precision keeps those devices at fp32). */
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define TC_ARCH 1
#else
#define TC_ARCH 0
#endif
namespace wmma = nvcuda::wmma;
typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> TileA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> TileB;  /* B [k][n] */
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> TileBt; /* B^T [n][k] */
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> TileC;

enum {
    TC = 16,               /* WMMA tile edge: rows per warp */
    TC_TILE = 32,          /* keys (forward, dq) or queries (dk, dv) per shared tile */
    TC_HALF = TC_TILE / 2, /* columns of a tile per lane */
    TC_DIMS = HS_MAX / TC, /* 16-column tiles of a row, at most */
};

__host__ __device__ inline int padded_hs(int HS) {
    return (HS + TC - 1) / TC * TC;
}

#if TC_ARCH
/* acc += A B, A [16][K] row-major (lda), B [K][16] as frag F reads it from b (ldb), with step
 * the elements between B's 16-row slices (16 ldb row-major, 16 col-major); K a multiple of 16.
 * The whole warp. */
template <typename F>
__device__ inline void mma_rows(TileC &acc, const bf16 *a, int lda, const bf16 *b, int ldb,
                                int step, int K) {
    TileA fa;
    F fb;
    for (int k0 = 0; k0 < K; k0 += TC) {
        wmma::load_matrix_sync(fa, a + k0, lda);
        wmma::load_matrix_sync(fb, b + (size_t)(k0 / TC) * step, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
    }
}

/* tile[16][TC_TILE] = A B^T for A's 16 rows and B's TC_TILE rows, both [.][HP] bf16: scores,
 * or dP (the warp's). */
__device__ inline void mma_scores(float *tile, const bf16 *a, const bf16 *b, int HP) {
    for (int c = 0; c < TC_TILE; c += TC) {
        TileC acc;
        wmma::fill_fragment(acc, 0.0f);
        mma_rows<TileBt>(acc, a, HP, b + (size_t)c * HP, HP, TC, HP);
        wmma::store_matrix_sync(tile + c, acc, TC_TILE, wmma::mem_row_major);
    }
}

/* The 16 x 16 tile acc through the warp's f32 tile, to the lane's row (lane / 2): its 8
 * columns (lane % 2) * 8 + t, passed to add(t, value). The whole warp. */
template <typename Add>
__device__ inline void drain_tile(const TileC &acc, float *tile, int lane, Add add) {
    wmma::store_matrix_sync(tile, acc, TC, wmma::mem_row_major);
    __syncwarp();
    for (int t = 0; t < TC / 2; t++) add(t, tile[(lane >> 1) * TC + (lane & 1) * (TC / 2) + t]);
    __syncwarp(); /* read before the tile is written again */
}
#endif

/* grid (B*NH, query blocks of warps*16 rows): flash_forward_kernel on tensor cores. */
__global__ void flash_forward_tc_kernel(float *out, float *lse, const float *q, const float *k,
                                        const float *v, const int32_t *mask, int causal, float p,
                                        uint64_t seed, const Heads g) {
#if TC_ARCH
    int bh = blockIdx.x, T = g.T, HS = g.HS, HP = padded_hs(HS);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int rows = warps * TC, i0 = blockIdx.y * rows, r = lane >> 1, half = lane & 1;
    int i = i0 + warp * TC + r;                               /* the lane's query row */
    extern __shared__ __align__(128) unsigned char tc_smem[]; /* fwd_tc_shared_bytes */
    float *S = (float *)tc_smem + warp * TC * TC_TILE; /* the warp's scores, then PV staging */
    bf16 *Qs = (bf16 *)((float *)tc_smem + warps * TC * TC_TILE), *Ks = Qs + rows * HP;
    bf16 *Vs = Ks + TC_TILE * HP, *P = Vs + TC_TILE * HP + warp * TC * TC_TILE;
    HeadPtrs hp = head_ptrs(g, bh / g.NH, bh % g.NH, mask);
    size_t ldq = (size_t)g.NH * HS, ldkv = (size_t)g.NKV * HS;
    float scale = 1.0f / sqrtf((float)HS), m = -INFINITY, l = 0.0f, o[TC_DIMS][TC / 2];
    for (int c = 0; c < TC_DIMS; c++)
        for (int t = 0; t < TC / 2; t++) o[c][t] = 0.0f;
    load_rows(Qs, q + hp.q, ldq, i0, rows, T, HS, HP);
    int keys = causal ? min(T, i0 + rows) : T;
    for (int j0 = 0; j0 < keys; j0 += TC_TILE) {
        __syncthreads(); /* Qs written; the previous tile's readers done */
        load_rows(Ks, k + hp.kv, ldkv, j0, TC_TILE, T, HS, HP);
        load_rows(Vs, v + hp.kv, ldkv, j0, TC_TILE, T, HS, HP);
        __syncthreads();
        mma_scores(S, Qs + warp * TC * HP, Ks, HP);
        __syncwarp();
        /* online softmax of the lane's 16 keys of row i, the row's two lanes joined */
        float s[TC_HALF], mx = -INFINITY, sum = 0.0f;
        for (int t = 0; t < TC_HALF; t++) {
            int j = j0 + half * TC_HALF + t;
            s[t] = key_visible(hp.keep, causal, i, j, T)
                       ? S[r * TC_TILE + half * TC_HALF + t] * scale
                       : -INFINITY;
            mx = fmaxf(mx, s[t]);
        }
        float m_new = fmaxf(m, fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1)));
        float rescale = m == -INFINITY ? 0.0f : exp_approx(m - m_new);
        for (int t = 0; t < TC_HALF; t++) {
            int j = j0 + half * TC_HALF + t;
            float pj = s[t] == -INFINITY ? 0.0f : exp_approx(s[t] - m_new);
            sum += pj;
            if (pj != 0.0f) pj *= rng_dropout_scale(seed, ((uint64_t)bh * T + i) * T + j, p);
            P[r * TC_TILE + half * TC_HALF + t] = __float2bfloat16(pj);
        }
        l = l * rescale + sum + __shfl_xor_sync(0xffffffffu, sum, 1);
        m = m_new;
        for (int c = 0; c < TC_DIMS; c++)
            for (int t = 0; t < TC / 2; t++) o[c][t] *= rescale;
        __syncwarp(); /* P written, S read: S stages P V next */
#pragma unroll
        for (int c = 0; c < TC_DIMS; c++) { /* o += P V, 16 columns at a time */
            if (c * TC >= HP) break;
            TileC pv;
            wmma::fill_fragment(pv, 0.0f);
            mma_rows<TileB>(pv, P, TC_TILE, Vs + c * TC, HP, TC * HP, TC_TILE);
            drain_tile(pv, S, lane, [&](int t, float x) { o[c][t] += x; });
        }
    }
    if (i >= T) return;
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int c = 0; c < TC_DIMS; c++)
        for (int t = 0; t < TC / 2; t++) {
            int d = c * TC + half * (TC / 2) + t;
            if (d < HS) out[hp.q + i * ldq + d] = o[c][t] * inv;
        }
    if (!half) lse[(size_t)bh * T + i] = l > 0.0f ? m + logf(l) : INFINITY;
#else
    __trap(); /* never launched: best_precision keeps pre-sm_80 devices at fp32 */
#endif
}

/* grid (B*NH, query blocks of warps*16 rows): flash_dq_kernel on tensor cores. */
__global__ void flash_dq_tc_kernel(float *dq, const float *dout, const float *q, const float *k,
                                   const float *v, const float *lse, const float *D,
                                   const int32_t *mask, int causal, float p, uint64_t seed,
                                   const Heads g) {
#if TC_ARCH
    int bh = blockIdx.x, T = g.T, HS = g.HS, HP = padded_hs(HS);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int rows = warps * TC, i0 = blockIdx.y * rows, r = lane >> 1, half = lane & 1;
    int i = i0 + warp * TC + r;
    extern __shared__ __align__(128) unsigned char tc_smem[]; /* dq_tc_shared_bytes */
    float *S = (float *)tc_smem + warp * 2 * TC * TC_TILE, *dP = S + TC * TC_TILE;
    bf16 *Qs = (bf16 *)((float *)tc_smem + warps * 2 * TC * TC_TILE), *dOs = Qs + rows * HP;
    bf16 *Ks = dOs + rows * HP, *Vs = Ks + TC_TILE * HP,
         *dS = Vs + TC_TILE * HP + warp * TC * TC_TILE;
    HeadPtrs hp = head_ptrs(g, bh / g.NH, bh % g.NH, mask);
    size_t ldq = (size_t)g.NH * HS, ldkv = (size_t)g.NKV * HS;
    float scale = 1.0f / sqrtf((float)HS);
    float row_lse = i < T ? lse[(size_t)bh * T + i] : INFINITY,
          row_D = i < T ? D[(size_t)bh * T + i] : 0.0f;
    TileC acc[TC_DIMS];
    for (int c = 0; c < TC_DIMS; c++) wmma::fill_fragment(acc[c], 0.0f);
    load_rows(Qs, q + hp.q, ldq, i0, rows, T, HS, HP);
    load_rows(dOs, dout + hp.q, ldq, i0, rows, T, HS, HP);
    int keys = causal ? min(T, i0 + rows) : T;
    for (int j0 = 0; j0 < keys; j0 += TC_TILE) {
        __syncthreads();
        load_rows(Ks, k + hp.kv, ldkv, j0, TC_TILE, T, HS, HP);
        load_rows(Vs, v + hp.kv, ldkv, j0, TC_TILE, T, HS, HP);
        __syncthreads();
        mma_scores(S, Qs + warp * TC * HP, Ks, HP);
        mma_scores(dP, dOs + warp * TC * HP, Vs, HP);
        __syncwarp();
        for (int t = 0; t < TC_HALF; t++) {
            int j = j0 + half * TC_HALF + t, at = r * TC_TILE + half * TC_HALF + t;
            float ds = 0.0f;
            if (i < T && key_visible(hp.keep, causal, i, j, T)) {
                float P = exp_approx(S[at] * scale - row_lse);
                ds = P *
                     (dP[at] * rng_dropout_scale(seed, ((uint64_t)bh * T + i) * T + j, p) - row_D);
            }
            dS[at] = __float2bfloat16(ds);
        }
        __syncwarp();
#pragma unroll
        for (int c = 0; c < TC_DIMS; c++)
            if (c * TC < HP)
                mma_rows<TileB>(acc[c], dS, TC_TILE, Ks + c * TC, HP, TC * HP, TC_TILE);
    }
#pragma unroll
    for (int c = 0; c < TC_DIMS; c++) {
        if (c * TC >= HP) break;
        drain_tile(acc[c], S, lane, [&](int t, float x) {
            int d = c * TC + half * (TC / 2) + t;
            if (i < T && d < HS) dq[hp.q + i * ldq + d] += x * scale;
        });
    }
#else
    __trap(); /* never launched: best_precision keeps pre-sm_80 devices at fp32 */
#endif
}

/* grid (B*NKV, key blocks of warps*16 keys): flash_dkdv_kernel on tensor cores; the warp's 16
 * keys against TC_TILE queries at a time (S^T = K Q^T, dP^T = V dout^T). */
__global__ void flash_dkdv_tc_kernel(float *dk, float *dv, const float *dout, const float *q,
                                     const float *k, const float *v, const float *lse,
                                     const float *D, const int32_t *mask, int causal, float p,
                                     uint64_t seed, const Heads g) {
#if TC_ARCH
    int b = blockIdx.x / g.NKV, kvh = blockIdx.x % g.NKV, G = g.NH / g.NKV, T = g.T, HS = g.HS;
    int HP = padded_hs(HS), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5, nkeys = warps * TC, j0 = blockIdx.y * nkeys;
    int r = lane >> 1, half = lane & 1, j = j0 + warp * TC + r; /* the lane's key */
    extern __shared__ __align__(128) unsigned char tc_smem[];   /* dkdv_tc_shared_bytes */
    float *St = (float *)tc_smem + warp * 2 * TC * TC_TILE, *dPt = St + TC * TC_TILE;
    float *lse_s = (float *)tc_smem + warps * 2 * TC * TC_TILE, *D_s = lse_s + TC_TILE;
    bf16 *Ks = (bf16 *)(D_s + TC_TILE), *Vs = Ks + nkeys * HP, *Qs = Vs + nkeys * HP;
    bf16 *dOs = Qs + TC_TILE * HP, *Pd = dOs + TC_TILE * HP + warp * 2 * TC * TC_TILE;
    bf16 *dS = Pd + TC * TC_TILE; /* the warp's dropped P^T and dS^T */
    size_t ldq = (size_t)g.NH * HS, ldkv = (size_t)g.NKV * HS;
    float scale = 1.0f / sqrtf((float)HS);
    TileC dk_acc[TC_DIMS], dv_acc[TC_DIMS];
    for (int c = 0; c < TC_DIMS; c++)
        wmma::fill_fragment(dk_acc[c], 0.0f), wmma::fill_fragment(dv_acc[c], 0.0f);
    HeadPtrs hp = head_ptrs(g, b, kvh * G, mask);
    load_rows(Ks, k + hp.kv, ldkv, j0, nkeys, T, HS, HP);
    load_rows(Vs, v + hp.kv, ldkv, j0, nkeys, T, HS, HP);
    for (int h = kvh * G; h < (kvh + 1) * G; h++) {
        size_t bh = (size_t)b * g.NH + h, qo = hp.q + (size_t)(h - kvh * G) * HS;
        for (int i0 = causal ? j0 / TC_TILE * TC_TILE : 0; i0 < T; i0 += TC_TILE) {
            __syncthreads(); /* Ks, Vs written; the previous tile's readers done */
            load_rows(Qs, q + qo, ldq, i0, TC_TILE, T, HS, HP);
            load_rows(dOs, dout + qo, ldq, i0, TC_TILE, T, HS, HP);
            for (int t = threadIdx.x; t < TC_TILE; t += blockDim.x) {
                lse_s[t] = i0 + t < T ? lse[bh * T + i0 + t] : INFINITY;
                D_s[t] = i0 + t < T ? D[bh * T + i0 + t] : 0.0f;
            }
            __syncthreads();
            mma_scores(St, Ks + warp * TC * HP, Qs, HP);
            mma_scores(dPt, Vs + warp * TC * HP, dOs, HP);
            __syncwarp();
            for (int t = 0; t < TC_HALF; t++) {
                int ii = half * TC_HALF + t, i = i0 + ii, at = r * TC_TILE + ii;
                float pd = 0.0f, ds = 0.0f;
                if (j < T && i < T && key_visible(hp.keep, causal, i, j, T)) {
                    float P = exp_approx(St[at] * scale - lse_s[ii]);
                    float keep = rng_dropout_scale(seed, (bh * T + i) * T + j, p);
                    pd = P * keep;
                    ds = P * (dPt[at] * keep - D_s[ii]);
                }
                Pd[at] = __float2bfloat16(pd), dS[at] = __float2bfloat16(ds);
            }
            __syncwarp();
#pragma unroll
            for (int c = 0; c < TC_DIMS; c++) {
                if (c * TC >= HP) break;
                if (dv) mma_rows<TileB>(dv_acc[c], Pd, TC_TILE, dOs + c * TC, HP, TC * HP, TC_TILE);
                if (dk) mma_rows<TileB>(dk_acc[c], dS, TC_TILE, Qs + c * TC, HP, TC * HP, TC_TILE);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < TC_DIMS; c++) {
        if (c * TC >= HP) break;
        auto add_to = [&](float *grad, float s) {
            return [=](int t, float x) {
                int d = c * TC + half * (TC / 2) + t;
                if (j < T && d < HS) grad[hp.kv + j * ldkv + d] += x * s;
            };
        };
        if (dv) drain_tile(dv_acc[c], St, lane, add_to(dv, 1.0f));
        if (dk) drain_tile(dk_acc[c], St, lane, add_to(dk, scale));
    }
#else
    __trap(); /* never launched: best_precision keeps pre-sm_80 devices at fp32 */
#endif
}

/* Dynamic shared memory of the tensor-core kernels, in bytes: f32 tiles, then bf16 rows. */
static size_t fwd_tc_shared_bytes(int warps, int HS) {
    size_t HP = padded_hs(HS);
    return sizeof(float) * warps * TC * TC_TILE +
           sizeof(bf16) * ((warps * TC + 2 * TC_TILE) * HP + warps * TC * TC_TILE);
}
static size_t dq_tc_shared_bytes(int warps, int HS) {
    size_t HP = padded_hs(HS);
    return sizeof(float) * 2 * warps * TC * TC_TILE +
           sizeof(bf16) * ((2 * warps * TC + 2 * TC_TILE) * HP + warps * TC * TC_TILE);
}
static size_t dkdv_tc_shared_bytes(int warps, int HS) {
    size_t HP = padded_hs(HS);
    return sizeof(float) * (2 * warps * TC * TC_TILE + 2 * TC_TILE) +
           sizeof(bf16) * ((2 * warps * TC + 2 * TC_TILE) * HP + 2 * warps * TC * TC_TILE);
}

/* Lets kernel f take `bytes` of dynamic shared memory: above 48 KB a launch must ask. */
template <typename F> static size_t allow_shared(F *f, size_t bytes) {
    if (bytes > 48 * 1024)
        CUDA_CHECK(
            cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return bytes;
}

size_t cuda_attention_scratch(int B, int T, int NH, int NKV) {
    (void)NKV;
    return (size_t)B * NH * T; /* D, for backward */
}

/* q, out [B,T,NH*HS]; k, v [B,T,NKV*HS]; mask [B,T] or NULL; lse [B,NH,T] saved */
void cuda_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                            const int32_t *mask, int causal, float p, uint64_t seed, float *scratch,
                            int B, int T, int NH, int NKV, int HS) {
    (void)scratch;
    Heads g = heads(B, T, NH, NKV, HS);
    if (!g.ok) return;
    dim3 grid;
    unsigned threads;
    if (cuda_precision() == PRECISION_BF16) {
        int warps = att_launch_shape(&grid, &threads, B * NH, T, TC);
        size_t bytes = allow_shared(flash_forward_tc_kernel, fwd_tc_shared_bytes(warps, HS));
        flash_forward_tc_kernel<<<grid, threads, bytes>>>(out, lse, q, k, v, mask, causal, p, seed,
                                                          g);
    } else {
        int warps = att_launch_shape(&grid, &threads, B * NH, T, FWD_ROWS);
        flash_forward_kernel<<<grid, threads, fwd_shared_bytes(warps, HS)>>>(
            out, lse, q, k, v, mask, causal, p, seed, g);
    }
    CUDA_LAUNCHED("attention_forward");
}

/* dq [B,T,NH*HS], dk, dv [B,T,NKV*HS] += gradients; scratch: D [B,NH,T] */
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *out, const float *lse,
                             const int32_t *mask, int causal, float p, uint64_t seed,
                             float *scratch, int B, int T, int NH, int NKV, int HS) {
    Heads g = heads(B, T, NH, NKV, HS);
    if (!g.ok || (!dq && !dk && !dv)) return;
    size_t rows = (size_t)B * NH * T;
    dim3 grid;
    unsigned threads;
    flash_rowdot_kernel<<<cuda_blocks(rows, ATT_WARPS), ATT_WARPS * 32>>>(scratch, dout, out, g);
    CUDA_LAUNCHED("attention_backward (D)");
    int tc = cuda_precision() == PRECISION_BF16;
    if (dq) {
        int warps = att_launch_shape(&grid, &threads, B * NH, T, tc ? (int)TC : (int)DQ_ROWS);
        if (tc) {
            size_t bytes = allow_shared(flash_dq_tc_kernel, dq_tc_shared_bytes(warps, HS));
            flash_dq_tc_kernel<<<grid, threads, bytes>>>(dq, dout, q, k, v, lse, scratch, mask,
                                                         causal, p, seed, g);
        } else {
            flash_dq_kernel<<<grid, threads, dq_shared_bytes(warps, HS)>>>(
                dq, dout, q, k, v, lse, scratch, mask, causal, p, seed, g);
        }
        CUDA_LAUNCHED("attention_backward (dq)");
    }
    if (dk || dv) {
        int warps = att_launch_shape(&grid, &threads, B * NKV, T, tc ? (int)TC : (int)KEY_ROWS);
        if (tc) {
            size_t bytes = allow_shared(flash_dkdv_tc_kernel, dkdv_tc_shared_bytes(warps, HS));
            flash_dkdv_tc_kernel<<<grid, threads, bytes>>>(dk, dv, dout, q, k, v, lse, scratch,
                                                           mask, causal, p, seed, g);
        } else {
            flash_dkdv_kernel<<<grid, threads, dkdv_shared_bytes(warps, HS)>>>(
                dk, dv, dout, q, k, v, lse, scratch, mask, causal, p, seed, g);
        }
        CUDA_LAUNCHED("attention_backward (dk, dv)");
    }
}

/* In place on the NH*n rows of scores [NH,n,L] (row = h*n + i, query position pos0 + i): the
 * softmax over keys j <= pos0 + i, later keys exactly 0. */
__global__ void softmax_cached_kernel(float *s, int rows, int n, int pos0, int L) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(row, rows) {
        float *a = s + row * L;
        int limit = pos0 + (int)(row % n) + 1;
        float mx = -INFINITY, sum = 0.0f;
        for (int j = lane; j < limit; j += 32) mx = fmaxf(mx, a[j]);
        mx = warp_max(mx);
        for (int j = lane; j < limit; j += 32) sum += expf(a[j] - mx);
        float inv = 1.0f / warp_sum(sum);
        for (int j = lane; j < L; j += 32) a[j] = j < limit ? expf(a[j] - mx) * inv : 0.0f;
    }
}

/* Generation: q, out [n,NH*HS] at positions pos0..; k, v [L,NKV*HS], L = pos0 + n; scratch
 * [NH,n,L] (a few queries over the cache: no T x T here). One batched cuBLAS GEMM per member j
 * of a group: query heads j, j+G, ... at a constant stride, each with its own KV head. */
void cuda_attention_cached(float *out, const float *q, const float *k, const float *v,
                           float *scratch, int n, int pos0, int NH, int NKV, int HS) {
    Heads g = heads(1, n, NH, NKV, HS);
    if (!g.ok || pos0 < 0) return;
    int L = pos0 + n, G = NH / NKV, ldq = NH * HS, ldkv = NKV * HS;
    long long nL = (long long)n * L;
    for (int j = 0; j < G; j++) /* s_h^T (L x n) = k_kv q_h^T */
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, L, n, HS, 1.0f / sqrtf((float)HS), k, ldkv, HS,
                  q + (size_t)j * HS, ldq, (long long)G * HS, 0.0f, scratch + j * nL, L, G * nL,
                  NKV);
    softmax_cached_kernel<<<cuda_blocks((size_t)NH * n, CACHED_WARPS), CACHED_WARPS * 32>>>(
        scratch, NH * n, n, pos0, L);
    CUDA_LAUNCHED("attention_cached (softmax)");
    for (int j = 0; j < G; j++) /* out_h^T (HS x n) = v_kv^T P_h^T */
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, HS, n, L, 1.0f, v, ldkv, HS, scratch + j * nL, L,
                  G * nL, 0.0f, out + (size_t)j * HS, ldq, (long long)G * HS, NKV);
}
