/* nccl.h (emulation): the part of NCCL's API that kernels/cuda/group.cu uses, with NCCL's names
 * and values, for the emulated test build (tests/cuda_emu). A rank is a process on this machine
 * (LORAFT_EMU_DEVICES devices, one per rank: cuda_runtime.h); the ranks of a communicator meet in
 * a POSIX shared-memory segment named by the unique id, and ncclAllReduce sums through it, chunk
 * by chunk, in rank order 0, 1, ..., so every rank gets the same bits. It runs when it is queued,
 * or at each cudaGraphLaunch when its stream captures, like other stream work. Implemented in
 * emu_nccl.cpp.
 *
 * Emulated: ncclGetUniqueId (a segment name; it creates nothing), ncclCommInitRank (refuses two
 * ranks on one device with ncclInvalidUsage, as NCCL does), ncclAllReduce of ncclFloat or
 * ncclFloat64 with ncclSum on cudaMalloc'd buffers (in place or not; a buffer outside device memory
 * aborts), and ncclCommDestroy, ncclGetErrorString, ncclGetLastError. Any other type or operation
 * returns ncclInvalidArgument with a last error that says so. Where NCCL would hang (a rank never
 * comes) a rank aborts after LORAFT_EMU_NCCL_TIMEOUT seconds (default 600) instead. Deliberately
 * not NCCL: no other collectives, no groups (ncclGroupStart), no config, no asynchronous errors,
 * and no communication beyond one machine. */
#pragma once
#include <stddef.h>

#include "cuda_runtime.h"

/* floats per rank that the shared segment holds: ncclAllReduce sums in chunks of this many
 * floats' bytes */
#define LORAFT_EMU_NCCL_CHUNK (1 << 20)

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;
typedef struct ncclComm *ncclComm_t;

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclNumResults = 8
} ncclResult_t;

typedef enum {
    ncclInt8 = 0,
    ncclChar = 0,
    ncclUint8 = 1,
    ncclInt32 = 2,
    ncclInt = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6,
    ncclHalf = 6,
    ncclFloat32 = 7,
    ncclFloat = 7,
    ncclFloat64 = 8,
    ncclDouble = 8,
    ncclBfloat16 = 9,
    ncclFloat8e4m3 = 10,
    ncclFloat8e5m2 = 11,
    ncclNumTypes = 12
} ncclDataType_t;

typedef enum {
    ncclSum = 0,
    ncclProd = 1,
    ncclMax = 2,
    ncclMin = 3,
    ncclAvg = 4,
    ncclNumOps = 5
} ncclRedOp_t;

#ifdef __cplusplus
extern "C" {
#endif
ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId);
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank);
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
const char *ncclGetErrorString(ncclResult_t result);
/* the last failure this process recorded, whatever comm is ("" if none) */
const char *ncclGetLastError(ncclComm_t comm);
#ifdef __cplusplus
}
#endif
