/* mma_bf16.cuh: the tensor-core and asynchronous-copy instructions of the bf16 attention
 * kernels, as PTX documents them, so that a lane knows which elements of a tile it holds and the
 * softmax can work on the products where they land, in registers (WMMA leaves that
 * unspecified):
 *
 *   mma_bf16_16816(c, a, b)  c[16x8] += a[16x16] b[16x8]: mma.sync.m16n8k16, bf16 a and b,
 *                            f32 c. Lane l = 4g + t holds
 *                              a: a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..),
 *                                 a[3] = (g+8, 2t+8..), two bf16 a register, the lower column low;
 *                              b: b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8.., n g);
 *                              c: c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1).
 *                            So the c of two n8 tiles side by side is, packed to bf16, the a of
 *                            the next product over those 16 columns (pack_bf16x2).
 *   ldmatrix_x4(r, row)      four 8x8 bf16 matrices from shared memory; lane 8i + j gives the
 *                            address of row j of matrix i (16-byte aligned), and r[i] of lane
 *                            l = 4g + t is matrix i's (row g, columns 2t..2t+1).
 *   ldmatrix_x4_trans        the same, transposed: r[i] = (rows 2t..2t+1, column g).
 *   ex2_approx(x)            2^x in one MUFU instruction (ex2.approx.ftz.f32: relative error
 *                            about 2^-22, results below 2^-126 flushed to 0), where exp2f adds
 *                            a range check and two multiplies.
 *   cp_async16(dst, src, ok) one thread's asynchronous copy of 16 bytes from global to shared
 *                            memory (both 16-byte aligned), zeros instead where !ok (src is
 *                            then not read); cp_async4 copies 4 bytes. Copies land in shared
 *                            memory only by the thread's cp_async_wait_all after
 *                            cp_async_commit, and other threads see them after a barrier.
 *
 * sm_80 and later. The emulated build (tests/cuda_emu) supplies the same, the matrix
 * instructions as lock-step warp collectives with these layouts, the copies deferred to the
 * wait; the loaders below are shared. */
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

#ifdef LORAFT_CUDA_EMU
#include <mma_ptx.h>
#else
__device__ inline void ldmatrix_x4(uint32_t r[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"((unsigned)__cvta_generic_to_shared(row)));
}
__device__ inline void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"((unsigned)__cvta_generic_to_shared(row)));
}
__device__ inline void mma_bf16_16816(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ inline float ex2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ inline void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                     (unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ inline void cp_async4(void *dst, const void *src) {
    asm volatile(
        "cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)),
        "l"(src)
        : "memory");
}
__device__ inline void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ inline void cp_async_wait_all() {
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}
#endif

/* ex2_approx(x * LOG2E) = e^x */
static constexpr float LOG2E = 1.44269504088896341f;

/* Two floats as the two bf16 of a register, lo in the low half (rounded to nearest even). */
__device__ inline uint32_t pack_bf16x2(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16(lo)) |
           (uint32_t)__bfloat16_as_ushort(__float2bfloat16(hi)) << 16;
}

/* The a fragment of the 16 x 16 tile at t (row-major, ld elements a row). */
__device__ inline void load_a(uint32_t a[4], const __nv_bfloat16 *t, int ld, int lane) {
    ldmatrix_x4(a, t + (lane & 15) * ld + (lane >> 4) * 8);
}

/* The b fragments of two n8 tiles, b[0..1] for n 0-7 and b[2..3] for n 8-15, of B[k][n] =
 * t[n][k]: t row-major with a row per n (keys for Q K^T). */
__device__ inline void load_b_nk(uint32_t b[4], const __nv_bfloat16 *t, int ld, int lane) {
    ldmatrix_x4(b, t + ((lane & 7) + (lane >> 4) * 8) * ld + (lane >> 3 & 1) * 8);
}

/* The same for B[k][n] = t[k][n]: t row-major with a row per k (values for P V). */
__device__ inline void load_b_kn(uint32_t b[4], const __nv_bfloat16 *t, int ld, int lane) {
    ldmatrix_x4_trans(b, t + ((lane & 7) + (lane >> 3 & 1) * 8) * ld + (lane >> 4) * 8);
}

/* a of the next product from the c of n8 tiles c0 (columns 0-7) and c1 (8-15). */
__device__ inline void c_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = pack_bf16x2(c0[0], c0[1]), a[1] = pack_bf16x2(c0[2], c0[3]);
    a[2] = pack_bf16x2(c1[0], c1[1]), a[3] = pack_bf16x2(c1[2], c1[3]);
}
