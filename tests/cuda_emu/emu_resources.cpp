/* emu_resources.cpp: the launch limits of real GPUs, which the emulation's fibers do not have.
 * A GPU refuses a launch whose block needs more registers than an SM holds (64 K of them,
 * allocated per warp in units of 256), more threads than the kernel's __launch_bounds__, or
 * more dynamic shared memory than the kernel was allowed (48 KB, or what
 * cudaFuncSetAttribute raised it to, up to the architecture's opt-in limit minus the static
 * shared memory). Registers and static shared memory exist only after ptxas: the build runs
 * the real nvcc over kernels/cuda and bench/bench_gpu.cu for each architecture of the default
 * CUDA build (resources.pl -> emu_resources.inc), and a launch must fit on every one of them,
 * or, with LORAFT_EMU_ARCH set (90: sm_90), on that one, whose limits the device then reports
 * (cudaDeviceGetAttribute; else the least of every target's), so that a kernel the code picks
 * by the device's shared memory runs where it would. Without nvcc the table is empty and only
 * the shared-memory attribute is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <string>
#include <vector>

#include "cuda_runtime.h"

namespace {

struct Row {
    const char *name;
    int arch, registers, static_shared, max_threads; /* max_threads 0: no __launch_bounds__ */
};

const Row generated[] = {
#include "emu_resources.inc"
    {NULL, 0, 0, 0, 0},
};

struct Arch {
    int sm;
    /* cudaDevAttrMaxSharedMemoryPerBlockOptin, cudaDevAttrMaxSharedMemoryPerMultiprocessor */
    size_t shared_optin, shared_sm;
};
const Arch archs[] = {{80, 166912, 167936},
                      {86, 101376, 102400},
                      {87, 166912, 167936},
                      {89, 101376, 102400},
                      {90, 232448, 233472}};
/* What each reserves a block (cudaDevAttrReservedSharedMemoryPerBlock) */
const size_t RESERVED_SHARED = 1024;

const size_t REGISTERS_PER_SM = 65536, WARP_REGISTER_UNIT = 256, DEFAULT_SHARED = 48 * 1024;

std::vector<Row> &table() {
    static std::vector<Row> rows(generated, generated + sizeof generated / sizeof *generated - 1);
    return rows;
}

std::map<const void *, size_t> &dynamic_shared_limit() {
    static std::map<const void *, size_t> limits;
    return limits;
}

const Arch *arch_of(int sm) {
    for (const Arch &a : archs)
        if (a.sm == sm) return &a;
    fprintf(stderr, "cuda_emu: no limits for sm_%d in emu_resources.cpp: add them\n", sm);
    abort();
}

size_t warp_registers(int per_thread) {
    size_t r = (size_t)per_thread * 32;
    return (r + WARP_REGISTER_UNIT - 1) / WARP_REGISTER_UNIT * WARP_REGISTER_UNIT;
}

/* LORAFT_EMU_ARCH (read each time: test_emu sets it), or 0: every target */
int emulated_arch(void) {
    const char *s = getenv("LORAFT_EMU_ARCH");
    int sm = s && *s ? atoi(s) : 0;
    if (sm) arch_of(sm); /* a known one, or abort */
    return sm;
}

bool checked(int sm) {
    int e = emulated_arch();
    return !e || sm == e;
}

/* The least of the checked architectures' limits */
size_t least_of(size_t Arch::*limit) {
    size_t least = (size_t)-1;
    for (const Arch &a : archs)
        if (checked(a.sm) && a.*limit < least) least = a.*limit;
    return least;
}

int refuse(int error, const char *kernel, int sm, const char *why) {
    fprintf(stderr, "cuda_emu: launch of %s refused (as on sm_%d): %s\n", kernel, sm, why);
    return error;
}

} // namespace

void emu_resource_record(const char *name, int arch, int registers, int static_shared,
                         int max_threads) {
    table().push_back(Row{name, arch, registers, static_shared, max_threads});
}

size_t emu_resource_kernels(void) {
    return table().size();
}

cudaError_t emu_func_set_attribute(const void *fn, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
    if (value < 0 || (size_t)value > least_of(&Arch::shared_optin)) return cudaErrorInvalidValue;
    dynamic_shared_limit()[fn] = (size_t)value;
    return cudaSuccess;
}

int emu_launch_resources(const char *kernel, const void *fn, unsigned threads, size_t shmem) {
    auto set = dynamic_shared_limit().find(fn);
    bool raised = set != dynamic_shared_limit().end();
    size_t allowed = raised ? set->second : DEFAULT_SHARED;
    if (shmem > allowed) {
        fprintf(stderr,
                "cuda_emu: launch of %s refused: %zu bytes of dynamic shared memory, %zu "
                "allowed (cudaFuncSetAttribute raises it)\n",
                kernel, shmem, allowed);
        return cudaErrorInvalidConfiguration;
    }
    size_t name_len = strcspn(kernel, "<"), warps = (threads + 31) / 32;
    char why[160];
    for (const Row &r : table()) {
        if (strlen(r.name) != name_len || strncmp(r.name, kernel, name_len) || !checked(r.arch))
            continue;
        if (r.max_threads && threads > (unsigned)r.max_threads) {
            snprintf(why, sizeof why, "%u threads, __launch_bounds__ %d", threads, r.max_threads);
            return refuse(cudaErrorLaunchOutOfResources, kernel, r.arch, why);
        }
        if (warps * warp_registers(r.registers) > REGISTERS_PER_SM) {
            snprintf(why, sizeof why, "%zu warps of %d registers per thread exceed %zu", warps,
                     r.registers, REGISTERS_PER_SM);
            return refuse(cudaErrorLaunchOutOfResources, kernel, r.arch, why);
        }
        /* raised: the attribute's bytes must fit beside the static ones (cudaFuncSetAttribute
         * fails on the device otherwise); not raised: both within the default 48 KB */
        size_t limit = raised ? arch_of(r.arch)->shared_optin : DEFAULT_SHARED;
        size_t need = r.static_shared + (raised ? allowed : shmem);
        if (need > limit) {
            snprintf(why, sizeof why, "%zu shared bytes (%d static) exceed %zu", need,
                     r.static_shared, limit);
            return refuse(cudaErrorInvalidConfiguration, kernel, r.arch, why);
        }
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    if (!value || device < 0 || device >= emu_device_count()) return cudaErrorInvalidValue;
    switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
        *value = (int)least_of(&Arch::shared_optin);
        return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
        *value = (int)least_of(&Arch::shared_sm);
        return cudaSuccess;
    case cudaDevAttrReservedSharedMemoryPerBlock:
        *value = (int)RESERVED_SHARED;
        return cudaSuccess;
    }
    return cudaErrorInvalidValue;
}
