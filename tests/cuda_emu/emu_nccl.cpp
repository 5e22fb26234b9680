/* emu_nccl.cpp: NCCL for the CUDA emulation (include/nccl.h): the ranks of a communicator are
 * processes on this machine that meet in a POSIX shared-memory segment, named by the unique id.
 * The segment holds a barrier (lock-free std::atomic counters, which work across processes), each
 * rank's device, and a slot of LORAFT_EMU_NCCL_CHUNK floats' bytes per rank. ncclAllReduce copies a
 * chunk into this rank's slot, waits for all, sums the slots in rank order into its output (so
 * every rank computes the same bits, as NCCL guarantees), and waits again before the next chunk
 * refills the slots. Rank 0 unlinks the name once all have joined: the mappings stay, and nothing
 * is left in /dev/shm when a process is killed later.
 *
 * Deliberately not NCCL: only sums of floats and doubles; a barrier that spins with short sleeps;
 * and where NCCL would hang for a rank that never comes, an abort after LORAFT_EMU_NCCL_TIMEOUT
 * seconds (default 600), so that a dead rank fails CI instead of stopping it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "nccl.h"

/* ---- the last error, per process as NCCL's is per thread (one host thread here) ---- */
static char last_error[512];
__attribute__((format(printf, 2, 3))) static ncclResult_t fail(ncclResult_t r, const char *fmt,
                                                               ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return r;
}
const char *ncclGetLastError(ncclComm_t) {
    return last_error;
}
const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess:
        return "no error";
    case ncclUnhandledCudaError:
        return "unhandled cuda error";
    case ncclSystemError:
        return "unhandled system error";
    case ncclInternalError:
        return "internal error";
    case ncclInvalidArgument:
        return "invalid argument";
    case ncclInvalidUsage:
        return "invalid usage";
    case ncclRemoteError:
        return "remote process exited or there was a network error";
    case ncclInProgress:
        return "NCCL operation in progress";
    default:
        return "unknown result code";
    }
}

/* ---- the shared segment ---- */
enum { MAX_RANKS = 64 };
static const size_t CHUNK = LORAFT_EMU_NCCL_CHUNK;
static const char PREFIX[] = "/loraft-emu-nccl-";
/* Zero bytes are a valid std::atomic here (trivial, lock-free), so ftruncate's zeros need no
 * construction; lock-free is what makes the counters atomic between processes. */
static_assert(std::atomic<uint32_t>::is_always_lock_free, "process-shared counters");
static_assert(std::atomic<int32_t>::is_always_lock_free, "process-shared counters");
struct Segment {
    std::atomic<uint32_t> arrived, generation; /* the barrier */
    std::atomic<int32_t> nranks;               /* the first rank's, checked by the others */
    int32_t device[MAX_RANKS];
};
/* The slots start on a page of their own; everything depends on nranks only, so every rank
 * computes the same size. */
static const size_t SLOTS_AT = (sizeof(Segment) + 4095) & ~(size_t)4095;
static size_t segment_bytes(int nranks) {
    return SLOTS_AT + (size_t)nranks * CHUNK * sizeof(float);
}

struct ncclComm {
    Segment *seg;
    size_t bytes;
    int rank, nranks;
    long long calls;  /* ncclAllReduce runs so far, for the timeout's message */
    double timeout_s; /* LORAFT_EMU_NCCL_TIMEOUT */
    char name[NCCL_UNIQUE_ID_BYTES];
    template <typename T> T *slot(int r) {
        return (T *)((char *)seg + SLOTS_AT + (size_t)r * CHUNK * sizeof(float));
    }
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits until every rank arrived: the last one to arrive resets the count and moves the
 * generation on, which releases the others (and publishes what all wrote before arriving). The
 * generation is read before arriving, so a fast rank's next barrier cannot be mistaken for this
 * one. what names the call for the timeout's message; join says the name is still linked. */
static void barrier(ncclComm *c, const char *what, bool join) {
    Segment *s = c->seg;
    uint32_t gen = s->generation.load(std::memory_order_acquire);
    if (s->arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == (uint32_t)c->nranks) {
        s->arrived.store(0, std::memory_order_relaxed);
        s->generation.store(gen + 1, std::memory_order_release);
        return;
    }
    double deadline = now_s() + c->timeout_s;
    const struct timespec nap = {0, 20000}; /* 20 us: idle enough, and quick to see the last */
    while (s->generation.load(std::memory_order_acquire) == gen) {
        nanosleep(&nap, NULL);
        if (now_s() > deadline) {
            if (join) shm_unlink(c->name); /* nobody else will: leave nothing in /dev/shm */
            emu_die("NCCL rank %d of %d: %s: the other ranks did not arrive within %g s (a rank "
                    "died, or called something else?); NCCL would hang here "
                    "(LORAFT_EMU_NCCL_TIMEOUT)",
                    c->rank, c->nranks, what, c->timeout_s);
        }
    }
}

static double timeout_s(void) {
    const char *s = getenv("LORAFT_EMU_NCCL_TIMEOUT");
    if (!s) return 600;
    char *end;
    double t = strtod(s, &end);
    if (end == s || *end || !(t > 0))
        emu_die(
            "LORAFT_EMU_NCCL_TIMEOUT=%s: seconds (more than 0) that a rank waits for the others",
            s);
    return t;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    static unsigned counter;
    if (!id) return fail(ncclInvalidArgument, "ncclGetUniqueId: NULL id");
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint64_t)(now_s() * 1e9); /* unique enough beside pid and counter */
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "%s%ld-%u-%016llx", PREFIX, (long)getpid(),
             counter++, (unsigned long long)r);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    if (!comm) return fail(ncclInvalidArgument, "ncclCommInitRank: NULL comm");
    *comm = NULL;
    if (nranks < 1 || nranks > MAX_RANKS)
        return fail(ncclInvalidArgument, "ncclCommInitRank: nranks %d: the emulation takes 1 to %d",
                    nranks, MAX_RANKS);
    if (rank < 0 || rank >= nranks)
        return fail(ncclInvalidArgument, "ncclCommInitRank: rank %d is not in 0..%d", rank,
                    nranks - 1);
    if (!memchr(id.internal, 0, sizeof id.internal) ||
        strncmp(id.internal, PREFIX, sizeof PREFIX - 1))
        return fail(ncclInvalidArgument, "ncclCommInitRank: the id is not one of ncclGetUniqueId");
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess)
        return fail(ncclUnhandledCudaError, "ncclCommInitRank: cudaGetDevice failed");
    double timeout = timeout_s();

    int fd = shm_open(id.internal, O_CREAT | O_RDWR, 0600);
    if (fd < 0) return fail(ncclSystemError, "shm_open %s: %s", id.internal, strerror(errno));
    size_t bytes = segment_bytes(nranks);
    struct stat st;
    /* only ever grow it: shrinking it under a rank that passed another nranks would fault
     * there (SIGBUS) before the check below could say so */
    bool sized =
        fstat(fd, &st) == 0 && ((size_t)st.st_size >= bytes || ftruncate(fd, (off_t)bytes) == 0);
    void *m = sized ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    int saved = errno;
    close(fd);
    if (m == MAP_FAILED) {
        shm_unlink(id.internal);
        return fail(ncclSystemError, "shared memory %s of %zu bytes: %s", id.internal, bytes,
                    strerror(saved));
    }
    ncclComm *c = new ncclComm{(Segment *)m, bytes, rank, nranks, 0, timeout, {0}};
    memcpy(c->name, id.internal, sizeof c->name);
    int32_t first = 0;
    if (!c->seg->nranks.compare_exchange_strong(first, nranks) && first != nranks)
        emu_die(
            "ncclCommInitRank: rank %d joins a group of %d ranks that another rank joined as %d "
            "ranks",
            rank, nranks, first);
    c->seg->device[rank] = device;
    barrier(c, "join (ncclCommInitRank)", true);
    if (rank == 0) shm_unlink(c->name); /* all have it mapped */

    for (int i = 0; i < nranks; i++)
        for (int j = i + 1; j < nranks; j++)
            if (c->seg->device[i] == c->seg->device[j]) {
                int d = c->seg->device[i]; /* every rank finds the same first pair */
                ncclCommDestroy(c);
                return fail(ncclInvalidUsage,
                            "Duplicate GPU detected: rank %d and rank %d both on device %d", i, j,
                            d);
            }
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm) return ncclSuccess; /* as NCCL */
    munmap(comm->seg, comm->bytes);
    delete comm;
    return ncclSuccess;
}

/* One chunk at a time: into my slot, wait, sum the slots in rank order, wait (nobody refills a
 * slot before all have read it). send may be recv: my slot holds my part before I write. */
template <typename T> static int all_reduce(ncclComm *c, const T *send, T *recv, size_t count) {
    const size_t chunk = CHUNK * sizeof(float) / sizeof(T);
    long long k = ++c->calls;
    char what[64];
    snprintf(what, sizeof what, "ncclAllReduce number %lld", k);
    for (size_t at = 0; at < count; at += chunk) {
        size_t n = count - at < chunk ? count - at : chunk;
        memcpy(c->slot<T>(c->rank), send + at, n * sizeof(T));
        barrier(c, what, false);
        T *out = recv + at;
        memcpy(out, c->slot<T>(0), n * sizeof(T));
        for (int r = 1; r < c->nranks; r++) {
            const T *in = c->slot<T>(r);
            for (size_t i = 0; i < n; i++) out[i] += in[i];
        }
        barrier(c, what, false);
    }
    return 0;
}

/* The queued sum of count Ts from sendbuff into recvbuff. */
template <typename T>
static int enqueue_sum(const void *sendbuff, void *recvbuff, size_t count, ncclComm_t comm,
                       cudaStream_t stream) {
    const T *send = (const T *)sendbuff;
    T *recv = (T *)recvbuff;
    return emu_enqueue(stream, EmuNode{EMU_NODE_COLLECTIVE, NULL, (uint64_t)count, "ncclAllReduce",
                                       [=]() { return all_reduce(comm, send, recv, count); }});
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
    if (!comm) return fail(ncclInvalidArgument, "ncclAllReduce: NULL comm");
    if ((datatype != ncclFloat && datatype != ncclFloat64) || op != ncclSum)
        return fail(ncclInvalidArgument,
                    "ncclAllReduce: data type %d, operation %d: the emulation sums floats and "
                    "doubles only (ncclFloat, ncclFloat64; ncclSum)",
                    (int)datatype, (int)op);
    if (!count) return ncclSuccess;
    size_t size = datatype == ncclFloat ? sizeof(float) : sizeof(double), bytes = count * size;
    if (count > (size_t)-1 / size || !emu_device_range(sendbuff, bytes) ||
        !emu_device_range(recvbuff, bytes))
        emu_die("ncclAllReduce on rank %d: sendbuff %p or recvbuff %p, %zu values, does not lie in "
                "device memory (cudaMalloc): a host pointer, or past the end?",
                comm->rank, sendbuff, recvbuff, count);
    const char *s = (const char *)sendbuff, *r = (const char *)recvbuff;
    if (s != r && s < r + bytes && r < s + bytes)
        emu_die(
            "ncclAllReduce on rank %d: sendbuff %p and recvbuff %p overlap (%zu values) without "
            "being the same: NCCL's in place is sendbuff == recvbuff",
            comm->rank, sendbuff, recvbuff, count);
    int e = datatype == ncclFloat ? enqueue_sum<float>(sendbuff, recvbuff, count, comm, stream)
                                  : enqueue_sum<double>(sendbuff, recvbuff, count, comm, stream);
    if (e)
        return fail(ncclUnhandledCudaError, "ncclAllReduce: the stream refused it: %s",
                    cudaGetErrorString((cudaError_t)e));
    return ncclSuccess;
}
