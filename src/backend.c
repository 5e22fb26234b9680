/* backend.c: picks an op table by name ("cpu", "cuda", "auto"). */
#include <string.h>

#include "loraft/ops.h"

#ifndef LORAFT_HAVE_CUDA
int ops_cuda_device_count(void) {
    return 0;
}
#endif

const Ops *ops_by_name(const char *device, LfError *err) {
    if (!strcmp(device, "cpu")) return &ops_cpu;
    if (!strcmp(device, "cuda") || !strcmp(device, "auto")) {
#ifdef LORAFT_HAVE_CUDA
        if (ops_cuda_device_count() > 0) return &ops_cuda;
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
