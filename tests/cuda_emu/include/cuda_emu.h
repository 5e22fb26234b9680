/* cuda_emu.h: the CUDA C++ device dialect as plain host C++, for the emulated test build
 * (tests/cuda_emu/CMakeLists.txt). It gives the kernels in kernels/, after the mechanical pre-pass
 * (preprocess.pl), what nvcc would: execution-space keywords (no-ops), the built-in index
 * variables of the emulated thread, barriers and warp collectives (scheduled by
 * emu_sched.cpp), atomics, device math intrinsics, __ldg and __ldcg, and emu_launch(), which the
 * pre-pass writes in place of K<<<grid, block, shmem, stream>>>(args).
 *
 * Deliberately not a CUDA implementation: no textures, cooperative groups, dynamic
 * parallelism or memory-ordering model (emulated threads are fibers on one OS thread, so
 * memory is sequentially consistent and atomics are plain read-modify-writes); half is not
 * emulated (cuda_fp16.h stops the build with a message); bf16 conversions are (cuda_bf16.h), and
 * the bf16 tensor-core instructions ldmatrix and mma.sync (mma_ptx.h); WMMA is not.
 * One host thread launches kernels. */
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define LORAFT_CUDA_EMU 1

/* ---- keywords ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
/* The pre-pass turns every `__shared__ T a[..];` into a static plus EMU_SHARED(a), which
 * fills it with 0xff bytes (NaN, -1) at the start of every block; this fallback only
 * serves declarations the pre-pass did not see (built by macros). */
#define __shared__ static
#define EMU_SHARED(name)                                                                           \
    static bool emu_shared_##name __attribute__((unused)) =                                        \
        emu_shared_register((void *)&(name), sizeof(name))

/* ---- vector types and the built-in variables ---- */
struct alignas(8) float2 { /* aligned as CUDA's: a vector load needs it */
    float x, y;
};
static inline float2 make_float2(float x, float y) {
    return float2{x, y};
}
struct alignas(16) float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w) {
    return float4{x, y, z, w};
}
struct alignas(8) uint2 {
    unsigned x, y;
};
static inline uint2 make_uint2(unsigned x, unsigned y) {
    return uint2{x, y};
}
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
    return uint4{x, y, z, w};
}
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

extern const uint3 *emu_thread_idx; /* the running emulated thread's threadIdx */
extern uint3 emu_block_idx;
extern dim3 emu_block_dim, emu_grid_dim;
#define threadIdx (*emu_thread_idx)
#define blockIdx ((const uint3 &)emu_block_idx)
#define blockDim ((const dim3 &)emu_block_dim)
#define gridDim ((const dim3 &)emu_grid_dim)
static constexpr int warpSize = 32;

/* ---- scheduler interface (emu_sched.cpp) ---- */
#define EMU_STR2(x) #x
#define EMU_STR(x) EMU_STR2(x)
#define EMU_SITE __FILE__ ":" EMU_STR(__LINE__)
enum EmuWarpOp {
    EMU_SYNCWARP,
    EMU_SHFL_IDX,
    EMU_SHFL_UP,
    EMU_SHFL_DOWN,
    EMU_SHFL_XOR,
    EMU_BALLOT,
    EMU_ANY,
    EMU_ALL,
    EMU_LDMATRIX, /* mma_ptx.h: lock-step steps of a warp's matrix instruction */
    EMU_MMA,
};
void emu_syncthreads(const char *site);
/* Blocks the calling thread until every lane of mask arrived at the same collective (op,
 * mask, value size); returns this lane's result. Aborts with a message when a lane of the
 * mask exited, waits at another collective, or does not exist. */
uint64_t emu_warp_op(EmuWarpOp op, unsigned mask, uint64_t value, int size, int arg, int width,
                     const char *site);
unsigned emu_activemask(void);
bool emu_shared_register(void *p, size_t bytes);
void *emu_dynamic_shared(void);
/* Runs entry(ctx) as every thread of a grid; returns 0, or a cudaError_t value for an
 * invalid launch configuration (nothing runs then). */
int emu_run(const char *kernel, const void *fn, void (*entry)(void *), void *ctx, dim3 grid,
            dim3 block, size_t shmem);
/* 0, or the error a real GPU gives a launch of kernel fn with these threads and dynamic shared
 * bytes: registers, __launch_bounds__ and shared memory from nvcc's own numbers
 * (emu_resources.cpp). emu_resource_record adds a kernel's numbers (tests); emu_resource_kernels
 * counts the rows (0: built without nvcc, only shared memory is checked). */
int emu_launch_resources(const char *kernel, const void *fn, unsigned threads, size_t shmem);
void emu_resource_record(const char *name, int arch, int registers, int static_shared,
                         int max_threads);
size_t emu_resource_kernels(void);
/* Prints "cuda-emu: MESSAGE" and aborts (emu_runtime.cpp; the scheduler's own names the block). */
[[noreturn]] __attribute__((format(printf, 1, 2))) void emu_die(const char *fmt, ...);
/* Aborts when p is neither NULL nor inside a device allocation (emu_runtime.cpp). */
void emu_check_kernel_pointer(const char *kernel, int arg, const void *p);
/* Whether [p, p + bytes) lies inside one cudaMalloc allocation (not cudaMallocHost's): NCCL's
 * buffers (emu_nccl.cpp). */
bool emu_device_range(const void *p, size_t bytes);
/* LORAFT_EMU_DEVICES (default 1; aborts outside 1..64), read at each call. */
int emu_device_count(void);
void emu_launch_failed(int error); /* records a launch error for cudaGetLastError */

/* ---- barriers and warp intrinsics ---- */
#define __syncthreads() emu_syncthreads(EMU_SITE)
#define __syncwarp(...) emu_syncwarp(EMU_SITE __VA_OPT__(, ) __VA_ARGS__)
static inline void emu_syncwarp(const char *site, unsigned mask = 0xffffffffu) {
    emu_warp_op(EMU_SYNCWARP, mask, 0, 0, 0, 32, site);
}
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

template <typename T>
static inline T emu_shfl(const char *site, EmuWarpOp op, unsigned mask, T v, int arg, int width) {
    static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                  "shuffles move 4- or 8-byte values");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = emu_warp_op(op, mask, bits, (int)sizeof v, arg, width, site);
    memcpy(&v, &bits, sizeof v);
    return v;
}
/* width defaults to warpSize, as in CUDA */
static inline int emu_width(int) {
    return 32;
}
static inline int emu_width(int, int w) {
    return w;
}
#define EMU_WIDTH(...) emu_width(0 __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(mask, v, lane, ...)                                                            \
    emu_shfl(EMU_SITE, EMU_SHFL_IDX, mask, v, lane, EMU_WIDTH(__VA_ARGS__))
#define __shfl_up_sync(mask, v, d, ...)                                                            \
    emu_shfl(EMU_SITE, EMU_SHFL_UP, mask, v, (int)(d), EMU_WIDTH(__VA_ARGS__))
#define __shfl_down_sync(mask, v, d, ...)                                                          \
    emu_shfl(EMU_SITE, EMU_SHFL_DOWN, mask, v, (int)(d), EMU_WIDTH(__VA_ARGS__))
#define __shfl_xor_sync(mask, v, m, ...)                                                           \
    emu_shfl(EMU_SITE, EMU_SHFL_XOR, mask, v, m, EMU_WIDTH(__VA_ARGS__))
#define __ballot_sync(mask, pred)                                                                  \
    ((unsigned)emu_warp_op(EMU_BALLOT, mask, (pred) != 0, 4, 0, 32, EMU_SITE))
#define __any_sync(mask, pred) ((int)emu_warp_op(EMU_ANY, mask, (pred) != 0, 4, 0, 32, EMU_SITE))
#define __all_sync(mask, pred) ((int)emu_warp_op(EMU_ALL, mask, (pred) != 0, 4, 0, 32, EMU_SITE))
#define __activemask() emu_activemask()

/* ---- streams: work runs when it is queued, or is recorded while its stream captures ---- */
struct CUstream_st;
#define cudaStreamLegacy ((CUstream_st *)0x1)
#define cudaStreamPerThread ((CUstream_st *)0x2)
/* Stream 0 is the legacy default stream, or the per-thread one in code compiled with nvcc
 * --default-stream per-thread, which defines CUDA_API_PER_THREAD_DEFAULT_STREAM (kernels/ is). */
static inline CUstream_st *emu_stream(CUstream_st *s) {
#ifdef CUDA_API_PER_THREAD_DEFAULT_STREAM
    return s ? s : cudaStreamPerThread;
#else
    return s ? s : cudaStreamLegacy;
#endif
}
/* One operation on a stream: what cudaGraphExecUpdate compares (kind; fn, the kernel, or the
 * cuBLAS call's shape, which decides its kernels; a copy's direction, a set's element bytes, a
 * collective's count), and the closure that does it, arguments held by value; run returns 0 or a
 * cudaError_t value. */
enum EmuNodeKind {
    EMU_NODE_KERNEL,
    EMU_NODE_MEMCPY,
    EMU_NODE_MEMSET,
    EMU_NODE_BLAS,
    EMU_NODE_COLLECTIVE, /* an NCCL call (emu_nccl.cpp) */
};
struct EmuNode {
    EmuNodeKind kind;
    const void *fn;
    uint64_t shape;
    const char *name;
    std::function<int()> run;
};
/* emu_runtime.cpp: runs the node now, or records it into the stream's capture (it then runs at
 * each cudaGraphLaunch); 0, or a cudaError_t value (a launch that breaks a capture's rules). */
int emu_enqueue(CUstream_st *stream, EmuNode node);

/* ---- launch: the pre-pass writes emu_launch("K", K, grid, block[, shmem[, stream]])(args) */
template <typename... P> struct EmuLaunch {
    const char *name;
    void (*kernel)(P...);
    dim3 grid, block;
    size_t shmem;
    CUstream_st *stream;
    struct Call {
        void (*kernel)(P...);
        std::tuple<P...> args;
    };
    static void entry(void *ctx) { /* one emulated thread: its own copy of the parameters */
        Call *c = (Call *)ctx;
        std::apply(c->kernel, c->args);
    }
    template <size_t... I> void check_pointers(const Call &c, std::index_sequence<I...>) {
        (check_one(I, std::get<I>(c.args)), ...);
    }
    template <typename T> void check_one(size_t i, const T &v) {
        if constexpr (std::is_pointer<T>::value)
            emu_check_kernel_pointer(name, (int)i, (const void *)v);
        else
            (void)i, (void)v;
    }
    /* the parameters' own types, so arguments convert as in a call (NULL to a pointer); the
     * closure keeps them by value, as a captured kernel node does */
    void operator()(P... a) {
        Call c{kernel, std::tuple<P...>(a...)};
        check_pointers(c, std::index_sequence_for<P...>{});
        const char *n = name;
        const void *fn = reinterpret_cast<const void *>(kernel);
        dim3 g = grid, b = block;
        size_t sh = shmem;
        int e = emu_enqueue(stream, EmuNode{EMU_NODE_KERNEL, fn, 0, name, [=]() mutable {
                                                return emu_run(n, fn, entry, &c, g, b, sh);
                                            }});
        if (e) emu_launch_failed(e);
    }
};
template <typename... P>
EmuLaunch<P...> emu_launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block,
                           size_t shmem = 0, CUstream_st *stream = nullptr) {
    return EmuLaunch<P...>{name, kernel, grid, block, shmem, emu_stream(stream)};
}

/* ---- atomics: threads are fibers on one OS thread, so a plain read-modify-write is atomic */
#define EMU_ATOMIC(name, T, expr)                                                                  \
    static inline T name(T *p, T v) {                                                              \
        T old = *p;                                                                                \
        *p = (expr);                                                                               \
        return old;                                                                                \
    }
#define EMU_ATOMIC_ARITH(T)                                                                        \
    EMU_ATOMIC(atomicAdd, T, old + v)                                                              \
    EMU_ATOMIC(atomicExch, T, v)
#define EMU_ATOMIC_INT(T)                                                                          \
    EMU_ATOMIC_ARITH(T)                                                                            \
    EMU_ATOMIC(atomicSub, T, old - v)                                                              \
    EMU_ATOMIC(atomicMin, T, v < old ? v : old)                                                    \
    EMU_ATOMIC(atomicMax, T, v > old ? v : old)                                                    \
    EMU_ATOMIC(atomicAnd, T, old &v)                                                               \
    EMU_ATOMIC(atomicOr, T, old | v)                                                               \
    EMU_ATOMIC(atomicXor, T, old ^ v)                                                              \
    static inline T atomicCAS(T *p, T compare, T v) {                                              \
        T old = *p;                                                                                \
        if (old == compare) *p = v;                                                                \
        return old;                                                                                \
    }
EMU_ATOMIC_ARITH(float)
EMU_ATOMIC_ARITH(double)
EMU_ATOMIC_INT(int)
EMU_ATOMIC_INT(unsigned)
EMU_ATOMIC_INT(unsigned long long)
EMU_ATOMIC_INT(long long)
static inline unsigned atomicInc(unsigned *p, unsigned v) {
    unsigned old = *p;
    *p = old >= v ? 0 : old + 1;
    return old;
}
static inline unsigned atomicDec(unsigned *p, unsigned v) {
    unsigned old = *p;
    *p = old == 0 || old > v ? v : old - 1;
    return old;
}

/* ---- math: <math.h> has the float functions; these are CUDA's extra names ---- */
/* glibc declares some __names itself, so these are macros onto emu_ functions */
static inline float emu_fdividef(float x, float y) {
    return x / y;
}
#define __expf expf
#define __logf logf
#define __log2f log2f
#define __sinf sinf
#define __cosf cosf
#define __tanf tanf
#define __powf powf
#define __fdividef emu_fdividef
static inline float rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}
static inline double rsqrt(double x) {
    return 1.0 / sqrt(x);
}
#define __frcp_rn(x) (1.0f / (float)(x))
#define __fsqrt_rn sqrtf
#define __frsqrt_rn rsqrtf
static inline float __saturatef(float x) {
    return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
}
static inline float __fadd_rn(float a, float b) {
    return a + b;
}
static inline float __fmul_rn(float a, float b) {
    return a * b;
}
static inline float __fmaf_rn(float a, float b, float c) {
    return fmaf(a, b, c);
}
static inline int __float2int_rn(float x) {
    return (int)rintf(x);
}
static inline int __float2int_rz(float x) {
    return (int)x;
}
static inline int __float_as_int(float x) {
    int i;
    memcpy(&i, &x, 4);
    return i;
}
static inline unsigned __float_as_uint(float x) {
    unsigned i;
    memcpy(&i, &x, 4);
    return i;
}
static inline float __int_as_float(int i) {
    float x;
    memcpy(&x, &i, 4);
    return x;
}
static inline float __uint_as_float(unsigned i) {
    float x;
    memcpy(&x, &i, 4);
    return x;
}
static inline long long __double_as_longlong(double x) {
    long long i;
    memcpy(&i, &x, 8);
    return i;
}
static inline double __longlong_as_double(long long i) {
    double x;
    memcpy(&x, &i, 8);
    return x;
}
static inline int __popc(unsigned x) {
    return __builtin_popcount(x);
}
static inline int __popcll(unsigned long long x) {
    return __builtin_popcountll(x);
}
static inline int __clz(int x) {
    return x ? __builtin_clz((unsigned)x) : 32;
}
static inline int __ffs(int x) {
    return __builtin_ffs(x);
}
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
/* CUDA's overloaded min/max for device code */
#define EMU_MINMAX(T)                                                                              \
    static inline T min(T a, T b) {                                                                \
        return a < b ? a : b;                                                                      \
    }                                                                                              \
    static inline T max(T a, T b) {                                                                \
        return a > b ? a : b;                                                                      \
    }
EMU_MINMAX(int)
EMU_MINMAX(unsigned)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
EMU_MINMAX(float)
EMU_MINMAX(double)
template <typename T> static inline T __ldg(const T *p) {
    return *p;
}
template <typename T> static inline T __ldcg(const T *p) { /* L2 only: memory is one here */
    return *p;
}
static inline long long clock64(void) {
    static long long t;
    return ++t;
}
