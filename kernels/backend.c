/* backend.c: picks an op table by name ("cpu", "cuda", "auto"). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loraft/ops.h"

#ifndef LORAFT_HAVE_CUDA
int ops_cuda_device_count(LfError *err) {
    (void)err;
    return 0;
}
#endif

const Ops *ops_by_name(const char *device, LfError *err) {
    if (!strcmp(device, "cpu")) return &ops_cpu;
    if (!strcmp(device, "cuda") || !strcmp(device, "auto")) {
#ifdef LORAFT_HAVE_CUDA
        int n = ops_cuda_device_count(err);
        if (n < 0) return NULL;
        if (n > 0) return &ops_cuda;
        if (!strcmp(device, "auto")) return &ops_cpu;
        lf_fail(err, "device 'cuda': no CUDA device found");
        return NULL;
#else
        if (!strcmp(device, "auto")) return &ops_cpu;
        lf_fail(err, "device 'cuda': this loraft was built without CUDA (LORAFT_CUDA=OFF)");
        return NULL;
#endif
    }
    lf_fail(err, "unknown device '%s' (expected cpu, cuda or auto)", device);
    return NULL;
}

/* Debian 12's OpenBLAS (0.3.21) does not recognise recent Xeon and EPYC models and falls
 * back to its SSE3 "Prescott" kernels, 3-4x slower. It picks kernels when it loads, so when
 * that happened on a CPU with AVX-512 or AVX2 and the user set no OPENBLAS_CORETYPE, name
 * the right kernel family and start again (once: the variable is then set). */
void ops_cpu_select_blas_kernels(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || strcmp(openblas_get_corename(), "Prescott")) return;
    __builtin_cpu_init();
    const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                         : NULL;
    if (!core) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    execv("/proc/self/exe", argv); /* on failure, carry on with the slow kernels */
}
