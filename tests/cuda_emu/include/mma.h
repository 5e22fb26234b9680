/* mma.h (emulation): the WMMA API (nvcuda::wmma) for what the kernels use: 16 x 16 x 16 tiles
 * of __nv_bfloat16 operands (matrix_a, matrix_b; row_major or col_major) and float
 * accumulators, with fill_fragment, load_matrix_sync, store_matrix_sync and mma_sync. Other
 * shapes and types stop the build.
 *
 * As on a GPU, load, store and mma are warp collectives: all 32 lanes of the warp must arrive
 * (a partial or divergent warp aborts, as the other collectives do), and each runs in lock
 * step: every lane arrives before any lane touches memory or another lane's fragment, and every
 * lane is done before any lane goes on. mma_sync accumulates in f32 the exact products of bf16
 * values, in k order. The ldm and 256-bit pointer alignment rules of real WMMA are checked.
 *
 * Which elements of a tile a lane's fragment x[] holds is unspecified by CUDA: seed 0 (and no
 * LORAFT_EMU_SEED) maps element (r, c) of each 16 x 16 tile to x[(16 r + c) % 8] of lane
 * (16 r + c) / 8; every other seed draws a permutation per fragment kind and layout, so a kernel
 * that relies on the mapping (rather than storing a fragment to memory) fails under some seed.
 */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <type_traits>

#include "cuda_bf16.h"
#include "cuda_emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

enum { EMU_TILE = 16, EMU_SLOTS = 8 }; /* 256 elements of a tile: 8 per lane */

/* Mapping kinds: a row/col, b row/col, accumulator. */
template <typename Use, typename Layout> constexpr int emu_kind() {
    return std::is_same<Use, accumulator>::value
               ? 4
               : 2 * std::is_same<Use, matrix_b>::value + std::is_same<Layout, col_major>::value;
}

/* map[kind][16 r + c] = lane * 8 + slot of element (r, c); inv the other way. */
struct EmuMapping {
    uint16_t map[5][256], inv[5][256];
    EmuMapping() {
        const char *s = getenv("LORAFT_EMU_SEED");
        uint64_t seed = s ? strtoull(s, NULL, 0) : 0,
                 rng = seed * 0x9E3779B97F4A7C15ull ^ 0x5bd1e995u;
        for (int k = 0; k < 5; k++) {
            for (int e = 0; e < 256; e++) map[k][e] = (uint16_t)e;
            for (int e = 255; seed && e > 0; e--) { /* Fisher-Yates, xorshift64* */
                rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
                int j = (int)((rng * 0x2545F4914F6CDD1Dull >> 33) % (uint64_t)(e + 1));
                uint16_t t = map[k][e];
                map[k][e] = map[k][j], map[k][j] = t;
            }
            for (int e = 0; e < 256; e++) inv[k][map[k][e]] = (uint16_t)e;
        }
    }
};
inline const EmuMapping &emu_mapping() {
    static const EmuMapping m;
    return m;
}

template <typename Use, int M, int N, int K, typename T, typename Layout = void> class fragment {
    static_assert(M == 16 && N == 16 && K == 16, "emulated WMMA: only 16 x 16 x 16 tiles");
    static_assert(std::is_same<Use, accumulator>::value
                      ? std::is_same<T, float>::value && std::is_void<Layout>::value
                      : std::is_same<T, __nv_bfloat16>::value && !std::is_void<Layout>::value,
                  "emulated WMMA: bf16 row_major/col_major operands, float accumulators");

  public:
    typedef T element_type;
    enum { num_elements = EMU_SLOTS, kind = emu_kind<Use, Layout>() };
    T x[num_elements];
};

/* ---- the lock step: each lane's published pointer, by thread of the block ---- */
inline const void *emu_wmma_slot[1024][2]; /* its a and b of mma_sync */

inline unsigned emu_wmma_tid() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
inline void emu_wmma_step(EmuWarpOp op, const char *site) {
    emu_warp_op(op, 0xffffffffu, 0, 0, 0, 32, site);
}
[[noreturn]] inline void emu_wmma_die(const char *what, const char *site, const char *why,
                                      unsigned long long v) {
    fprintf(stderr, "cuda-emu: %s at %s: %s (%llu)\n", what, site, why, v);
    fflush(stderr);
    abort();
}
template <typename T>
inline void emu_wmma_check(const char *what, const char *site, const T *p, unsigned ldm) {
    if (ldm % (sizeof(T) == 2 ? 8 : 4))
        emu_wmma_die(what, site,
                     sizeof(T) == 2 ? "ldm is not a multiple of 8 (16-bit elements)"
                                    : "ldm is not a multiple of 4 (float elements)",
                     ldm);
    if ((uintptr_t)p % 32)
        emu_wmma_die(what, site, "the pointer is not 256-bit aligned", (uintptr_t)p % 32);
}
/* Offset of element (r, c) of a tile in memory of leading dimension ldm. */
inline size_t emu_at(int r, int c, unsigned ldm, bool col) {
    return col ? (size_t)c * ldm + r : (size_t)r * ldm + c;
}

template <typename Use, typename T, typename L>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, const T &v) {
    for (int s = 0; s < EMU_SLOTS; s++) f.x[s] = v;
}

#define load_matrix_sync(...) emu_load_matrix_sync(EMU_SITE, __VA_ARGS__)
#define store_matrix_sync(...) emu_store_matrix_sync(EMU_SITE, __VA_ARGS__)
#define mma_sync(...) emu_mma_sync(EMU_SITE, __VA_ARGS__)

template <bool Store, typename Tile, typename Elem>
inline void emu_copy_tile(const char *what, const char *site, Tile &f, Elem *p, unsigned ldm,
                          bool col, EmuWarpOp op) {
    emu_wmma_check(what, site, p, ldm);
    emu_wmma_step(op, site); /* all arrive, then all access */
    unsigned lane = emu_wmma_tid() & 31u;
    for (int s = 0; s < EMU_SLOTS; s++) {
        int e = emu_mapping().inv[Tile::kind][lane * EMU_SLOTS + s];
        Elem *at = p + emu_at(e / EMU_TILE, e % EMU_TILE, ldm, col);
        if constexpr (Store)
            *at = f.x[s];
        else
            f.x[s] = *at;
    }
    emu_wmma_step(op, site); /* all done before any goes on */
}

template <typename Use, typename L>
inline void emu_load_matrix_sync(const char *site, fragment<Use, 16, 16, 16, __nv_bfloat16, L> &f,
                                 const __nv_bfloat16 *p, unsigned ldm) {
    emu_copy_tile<false>("wmma::load_matrix_sync", site, f, p, ldm,
                         std::is_same<L, col_major>::value, EMU_WMMA_LOAD);
}
inline void emu_load_matrix_sync(const char *site, fragment<accumulator, 16, 16, 16, float> &f,
                                 const float *p, unsigned ldm, layout_t layout) {
    emu_copy_tile<false>("wmma::load_matrix_sync", site, f, p, ldm, layout == mem_col_major,
                         EMU_WMMA_LOAD);
}
inline void emu_store_matrix_sync(const char *site, float *p,
                                  const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm,
                                  layout_t layout) {
    emu_copy_tile<true>("wmma::store_matrix_sync", site, f, p, ldm, layout == mem_col_major,
                        EMU_WMMA_STORE);
}

/* d = a b + c over the whole warp's tiles; d may be c. */
template <typename LA, typename LB>
inline void emu_mma_sync(const char *site, fragment<accumulator, 16, 16, 16, float> &d,
                         const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                         const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                         const fragment<accumulator, 16, 16, 16, float> &c) {
    typedef fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> A;
    typedef fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> B;
    typedef fragment<accumulator, 16, 16, 16, float> C;
    unsigned tid = emu_wmma_tid(), lane = tid & 31u, base = tid - lane;
    emu_wmma_slot[tid][0] = &a, emu_wmma_slot[tid][1] = &b;
    emu_wmma_step(EMU_WMMA_MMA, site); /* every lane's a and b published */
    const EmuMapping &m = emu_mapping();
    float out[EMU_SLOTS];
    for (int s = 0; s < EMU_SLOTS; s++) {
        int e = m.inv[C::kind][lane * EMU_SLOTS + s], r = e / EMU_TILE, col = e % EMU_TILE;
        float sum = c.x[s];
        for (int k = 0; k < EMU_TILE; k++) {
            int ea = m.map[A::kind][r * EMU_TILE + k], eb = m.map[B::kind][k * EMU_TILE + col];
            const A *fa = (const A *)emu_wmma_slot[base + ea / EMU_SLOTS][0];
            const B *fb = (const B *)emu_wmma_slot[base + eb / EMU_SLOTS][1];
            sum +=
                __bfloat162float(fa->x[ea % EMU_SLOTS]) * __bfloat162float(fb->x[eb % EMU_SLOTS]);
        }
        out[s] = sum;
    }
    emu_wmma_step(EMU_WMMA_MMA, site); /* every lane done reading the others' fragments */
    for (int s = 0; s < EMU_SLOTS; s++) d.x[s] = out[s];
}

} // namespace wmma
} // namespace nvcuda
