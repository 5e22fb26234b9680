/* group.cu: data parallel over NCCL (Ops.group_*): this process as one rank of a group, a
 * device a rank, and the sum of a buffer over the ranks. Host code only; the group is NCCL's
 * communicator, made from an id that one process creates and the trainer hands to the others
 * (data_parallel.h). Without NCCL (LORAFT_HAVE_NCCL undefined) there is no group and ops_cuda's
 * group_* are NULL. */
#include "cuda_common.cuh"

#ifdef LORAFT_HAVE_NCCL
#include <nccl.h>
#include <string.h>

static_assert(sizeof(ncclUniqueId) == OPS_GROUP_ID, "a group id is NCCL's unique id");

static ncclComm_t group;

/* NCCL's result with its own last words (which say more than the code's name). */
static int nccl_fail(ncclResult_t r, const char *what, LfError *err) {
    const char *detail = ncclGetLastError(NULL);
    return lf_fail(err, "%s: %s%s%s", what, ncclGetErrorString(r), detail && detail[0] ? ": " : "",
                   detail ? detail : "");
}

int cuda_group_id(void *id, LfError *err) {
    ncclResult_t r = ncclGetUniqueId((ncclUniqueId *)id);
    return r == ncclSuccess ? 0 : nccl_fail(r, "NCCL cannot make a group id", err);
}

int cuda_group_join(int rank, int ranks, const void *id, LfError *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return lf_fail(err, "CUDA cannot list devices: %s", cudaGetErrorString(e));
    if (ranks > n)
        return lf_fail(err, "model.devices %d: this machine has %d CUDA device%s", ranks, n,
                       n == 1 ? "" : "s");
    if ((e = cudaSetDevice(rank)) != cudaSuccess)
        return lf_fail(err, "cannot use CUDA device %d: %s", rank, cudaGetErrorString(e));
    ncclUniqueId uid;
    memcpy(&uid, id, sizeof uid);
    ncclResult_t r = ncclCommInitRank(&group, ranks, uid, rank);
    if (r == ncclSuccess) return 0;
    group = NULL;
    char what[96];
    snprintf(what, sizeof what, "NCCL: rank %d of %d cannot join its group", rank, ranks);
    return nccl_fail(r, what, err);
}

/* x[0..n) of type t summed over the ranks in place, queued on this thread's stream. */
static void sum_in_place(void *x, size_t n, ncclDataType_t t) {
    if (!n) return;
    ncclResult_t r = ncclAllReduce(x, x, n, t, ncclSum, group, cudaStreamPerThread);
    if (r == ncclSuccess) return;
    char msg[512];
    snprintf(msg, sizeof msg, "ncclAllReduce of %zu %s: %s", n,
             t == ncclFloat ? "floats" : "doubles", ncclGetErrorString(r));
    CUDA_FAIL(msg);
}

void cuda_group_sum(float *x, size_t n) {
    sum_in_place(x, n, ncclFloat);
}

void cuda_group_sum_f64(double *x, size_t n) {
    sum_in_place(x, n, ncclFloat64);
}

void cuda_group_leave(void) {
    if (group) ncclCommDestroy(group);
    group = NULL;
}
#endif
