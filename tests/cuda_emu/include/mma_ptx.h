/* mma_ptx.h (emulation): the warp-level matrix instructions of kernels/cuda/mma_bf16.cuh,
 * ldmatrix_x4 (plain and .trans) and mma_bf16_16816 (mma.sync.m16n8k16, bf16 operands, f32
 * accumulators), with the fragment layouts PTX documents (see that file).
 *
 * As on a GPU they are warp collectives: all 32 lanes of the warp must arrive (a partial or
 * divergent warp aborts, as the other collectives do), and each runs in lock step: every lane
 * publishes its operand (its row address; its a and b registers), then every lane reads the
 * others', then every lane is done before any goes on. mma accumulates in f32 the exact products
 * of the bf16 values, in k order, onto c. ldmatrix checks that each row address is 16-byte
 * aligned, as PTX requires. */
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_bf16.h"
#include "cuda_emu.h"

inline const void *emu_ptx_slot[1024][2]; /* each thread's published operands */

inline unsigned emu_ptx_tid() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
inline void emu_ptx_step(EmuWarpOp op, const char *site) {
    emu_warp_op(op, 0xffffffffu, 0, 0, 0, 32, site);
}
inline float emu_bf16_bits(uint32_t bits) {
    uint32_t u = bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define ldmatrix_x4(r, row) emu_ldmatrix_x4(EMU_SITE, r, row, false)
#define ldmatrix_x4_trans(r, row) emu_ldmatrix_x4(EMU_SITE, r, row, true)
#define mma_bf16_16816(c, a, b) emu_mma_bf16_16816(EMU_SITE, c, a, b)

inline void emu_ldmatrix_x4(const char *site, uint32_t r[4], const void *row, bool trans) {
    if ((uintptr_t)row % 16) {
        fprintf(stderr, "cuda-emu: ldmatrix at %s: a row address is not 16-byte aligned (%p)\n",
                site, row);
        fflush(stderr);
        abort();
    }
    unsigned tid = emu_ptx_tid(), lane = tid & 31u, base = tid - lane, g = lane >> 2, t = lane & 3;
    emu_ptx_slot[tid][0] = row;
    emu_ptx_step(EMU_LDMATRIX, site); /* every lane's row address published */
    for (unsigned i = 0; i < 4; i++) {
        uint16_t lo, hi;
        if (trans) { /* rows 2t and 2t+1 of matrix i, column g */
            lo = ((const uint16_t *)emu_ptx_slot[base + 8 * i + 2 * t][0])[g];
            hi = ((const uint16_t *)emu_ptx_slot[base + 8 * i + 2 * t + 1][0])[g];
        } else { /* row g of matrix i, columns 2t and 2t+1 */
            const uint16_t *p = (const uint16_t *)emu_ptx_slot[base + 8 * i + g][0];
            lo = p[2 * t], hi = p[2 * t + 1];
        }
        r[i] = (uint32_t)lo | (uint32_t)hi << 16;
    }
    emu_ptx_step(EMU_LDMATRIX, site); /* every lane done reading */
}

/* Element (row, k) of the warp's a, and (k, n) of its b, from the lane that holds it. */
inline float emu_mma_a(unsigned base, unsigned row, unsigned k) {
    const uint32_t *a = (const uint32_t *)emu_ptx_slot[base + 4 * (row & 7) + (k & 7) / 2][0];
    return emu_bf16_bits(a[(row >> 3) + 2 * (k >> 3)] >> 16 * (k & 1) & 0xffffu);
}
inline float emu_mma_b(unsigned base, unsigned k, unsigned n) {
    const uint32_t *b = (const uint32_t *)emu_ptx_slot[base + 4 * n + (k & 7) / 2][1];
    return emu_bf16_bits(b[k >> 3] >> 16 * (k & 1) & 0xffffu);
}

inline void emu_mma_bf16_16816(const char *site, float c[4], const uint32_t a[4],
                               const uint32_t b[2]) {
    unsigned tid = emu_ptx_tid(), lane = tid & 31u, base = tid - lane, g = lane >> 2, t = lane & 3;
    emu_ptx_slot[tid][0] = a, emu_ptx_slot[tid][1] = b;
    emu_ptx_step(EMU_MMA, site); /* every lane's a and b published */
    float out[4];
    for (unsigned q = 0; q < 4; q++) {
        unsigned row = g + 8 * (q >> 1), n = 2 * t + (q & 1);
        float sum = c[q];
        for (unsigned k = 0; k < 16; k++) sum += emu_mma_a(base, row, k) * emu_mma_b(base, k, n);
        out[q] = sum;
    }
    emu_ptx_step(EMU_MMA, site); /* every lane done reading the others' registers */
    for (int q = 0; q < 4; q++) c[q] = out[q];
}

/* ex2.approx.ftz.f32: 2^x, results below the smallest normal float flushed to 0 (the GPU's is
 * within about 2^-22 of it, relative). */
inline float ex2_approx(float x) {
    float y = exp2f(x);
    return y < 1.17549435e-38f ? 0.0f : y;
}

/* cp.async: each thread's copies wait in its queue until its cp_async_wait_all, which does
 * those of its committed groups, so a kernel that reads a tile before waiting for it reads what
 * was there before (0xff bytes at a block's start) and fails its test. Copies not committed when
 * the thread waits stay queued, as PTX's wait_group leaves them. A thread that exits with copies
 * queued aborts (emu_sched.cpp). */
struct EmuCopy {
    void *dst;
    const void *src; /* NULL: zeros */
    unsigned bytes, group;
};
inline EmuCopy emu_copies[1024][256];
inline unsigned emu_copy_count[1024], emu_copy_group[1024];

inline void emu_cp_async(const char *site, void *dst, const void *src, unsigned bytes) {
    unsigned tid = emu_ptx_tid(), n = emu_copy_count[tid];
    if ((uintptr_t)dst % bytes || (src && (uintptr_t)src % bytes) || n == 256) {
        fprintf(stderr, "cuda-emu: cp.async at %s: %s\n", site,
                n == 256 ? "more than 256 copies pending in one thread"
                         : "an address is not aligned to the copy's size");
        fflush(stderr);
        abort();
    }
    emu_copies[tid][n] = EmuCopy{dst, src, bytes, emu_copy_group[tid]};
    emu_copy_count[tid] = n + 1;
}
#define cp_async16(dst, src, ok) emu_cp_async(EMU_SITE, dst, (ok) ? (const void *)(src) : NULL, 16)
#define cp_async4(dst, src) emu_cp_async(EMU_SITE, dst, src, 4)
inline void cp_async_commit() {
    emu_copy_group[emu_ptx_tid()]++;
}
inline void cp_async_wait_all() {
    unsigned tid = emu_ptx_tid(), kept = 0;
    for (unsigned i = 0; i < emu_copy_count[tid]; i++) {
        EmuCopy c = emu_copies[tid][i];
        if (c.group == emu_copy_group[tid]) { /* not committed yet */
            emu_copies[tid][kept++] = c;
            continue;
        }
        if (c.src)
            memcpy(c.dst, c.src, c.bytes);
        else
            memset(c.dst, 0, c.bytes);
    }
    emu_copy_count[tid] = kept;
}
