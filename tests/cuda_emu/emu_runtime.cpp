/* emu_runtime.cpp: the CUDA runtime, cuBLAS and cuBLASLt of the emulation (tests/cuda_emu).
 * LORAFT_EMU_DEVICES alike devices (default 1), of which a process uses one (the ranks of a
 * data-parallel group are processes: emu_nccl.cpp); device memory is per process,
 * posix_memalign'd host memory (256-byte aligned, exact size, so AddressSanitizer reports the
 * first byte past a buffer), tracked so that memcpy/memset, kernel pointer arguments and GEMM
 * operands can be checked against it; streams and events are ordered no-ops, as every call
 * completes before it returns. cuBLAS GEMMs run on OpenBLAS cblas_sgemm in column-major order with
 * every argument honoured and validated as cuBLAS does (CUBLAS_STATUS_INVALID_VALUE for a bad
 * m/n/k/ld/batch).
 *
 * Stream capture records instead of running: a kernel launch, cudaMemcpyAsync, cudaMemsetAsync,
 * cuBLAS / cuBLASLt call or ncclAllReduce on a capturing stream becomes a node (a closure holding
 * its arguments by value) of the graph, run in order at each cudaGraphLaunch. What a GPU refuses
 * during capture fails here with its error and invalidates the capture (cudaStreamEndCapture then
 * fails): starting one on the legacy default stream; synchronising the capturing stream or the
 * device; under the global and thread-local modes, cudaMalloc / cudaFree / cudaMallocHost /
 * cudaFreeHost and the synchronous cudaMemcpy / cudaMemset; cudaMemcpyAsync with pageable host
 * memory; any use of the legacy stream while a blocking stream captures
 * (cudaErrorStreamCaptureImplicit); querying or waiting for an event recorded in a capture
 * (cudaErrorCapturedEvent); and a cuBLAS call without cublasSetWorkspace (cuBLAS would allocate
 * its workspace; CUBLAS_STATUS_NOT_SUPPORTED), or a cublasLtMatmul without a workspace (the same
 * rule, stricter than cuBLASLt: see cublasLt.h). cudaGraphExecUpdate takes a graph of the same
 * nodes in the same order whose kernels are the same functions, copies the same direction,
 * cuBLAS calls the same shapes (another shape may pick other kernels on a GPU) and collectives
 * the same count; arguments, grids and pointers may change. A captured launch's configuration and
 * resources are checked when it runs, so cudaGraphLaunch reports what a GPU would have refused at
 * the launch. Not emulated (aborts): fork / join across streams, graphs launched into a capture,
 * instantiation flags.
 *
 * Deliberately not: a device allocator (no pooling, no out-of-memory other than the
 * LORAFT_EMU_DEVICE_MEM budget, default 8 GiB), asynchronous, or cuBLAS beyond FP32 GEMMs and
 * BF16 x BF16 -> FP32 or BF16 cublasGemmEx (on widened copies; a BF16 C, unless the handle's
 * math mode has CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION, as cuBLAS may reduce a split K:
 * the first half's sums rounded to BF16 in C, the second's added to them) in host pointer mode, and
 * cublasLtMatmul beyond the same types with the DEFAULT and BIAS epilogues: any other data or
 * compute type, algorithm or mode aborts with a message instead of computing something else. */
#include <cblas.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <map>
#include <string>
#include <vector>

#include "cublasLt.h"
#include "cublas_v2.h"
#include "cuda_bf16.h"

void emu_die(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuda-emu: %s\n", msg);
    fflush(stderr);
    abort();
}

extern "C" int loraft_cuda_emulated(void) { /* tests/gpu ask this to pick a smaller grid */
    return 1;
}

/* ---- errors ---- */
static cudaError_t last_error = cudaSuccess;
static cudaError_t ret(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}
void emu_launch_failed(int e) {
    last_error = (cudaError_t)e;
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) {
    return last_error;
}

static const struct {
    cudaError_t e;
    const char *name, *text;
} error_texts[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInitializationError, "cudaErrorInitializationError", "initialization error"},
    {cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources",
     "too many resources requested for launch"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
     "invalid configuration argument"},
    {cudaErrorInvalidDevicePointer, "cudaErrorInvalidDevicePointer", "invalid device pointer"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection",
     "invalid copy direction for memcpy"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorIllegalState, "cudaErrorIllegalState",
     "the operation cannot be performed in the present state"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
     "operation not permitted when stream is capturing"},
    {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated",
     "operation failed due to a previous error during capture"},
    {cudaErrorStreamCaptureImplicit, "cudaErrorStreamCaptureImplicit",
     "operation would make the legacy stream depend on a capturing blocking stream"},
    {cudaErrorCapturedEvent, "cudaErrorCapturedEvent",
     "operation not permitted on an event last recorded in a capturing stream"},
    {cudaErrorGraphExecUpdateFailure, "cudaErrorGraphExecUpdateFailure",
     "the graph update was not performed because it included changes which violated "
     "constraints specific to instantiated graph update"},
    {cudaErrorUnknown, "cudaErrorUnknown", "unknown error"},
};
const char *cudaGetErrorString(cudaError_t e) {
    for (const auto &t : error_texts)
        if (t.e == e) return t.text;
    return "unrecognized error code";
}
const char *cudaGetErrorName(cudaError_t e) {
    for (const auto &t : error_texts)
        if (t.e == e) return t.name;
    return "cudaErrorUnknown";
}

/* ---- stream capture state, and the counts tests read ---- */
struct CUstream_st {
    unsigned flags;      /* cudaStreamNonBlocking: no implicit sync with the legacy stream */
    CUgraph_st *capture; /* the graph being recorded, or NULL */
    cudaStreamCaptureMode mode;
    bool invalidated; /* an illegal call broke the capture */
};
struct CUgraph_st {
    std::vector<EmuNode> nodes;
};
struct CUgraphExec_st {
    std::vector<EmuNode> nodes;
};
static CUstream_st legacy_stream, per_thread_stream;
static std::vector<CUstream_st *> capturing; /* the streams capturing now */

/* Work queued from the host (kernels, async copies and sets, cuBLAS calls) that ran at once,
 * graph launches and the nodes they ran, and calls that make the host wait for the device:
 * synchronisations, synchronous copies, and waits for an event recorded since the last of
 * those (an older one has completed on any GPU). */
static long long n_launches, n_graph_launches, n_graph_nodes, n_blocking;
static long long sync_epoch; /* host waits for the whole device so far */
static void host_waits(void) {
    n_blocking++, sync_epoch++;
}
static long long n_lt_heuristics, n_lt_matmuls; /* cuBLASLt calls, refused ones too */

/* LORAFT_EMU_COUNTS=FILE: every node that ran (launched at once or by a graph), counted by its
 * name (the kernel's, the cuBLAS call's, cudaMemcpyAsync / cudaMemsetAsync) and written to FILE
 * at exit, "count name" a line (bench/launch-count.sh); then the graph launches and the nodes
 * they ran, as "count cudaGraphLaunch" and "count graph_nodes". */
static std::map<std::string, long long> *ran_by_name;
static void write_counts(void) {
    FILE *f = fopen(getenv("LORAFT_EMU_COUNTS"), "w");
    if (!f) emu_die("LORAFT_EMU_COUNTS: cannot write %s", getenv("LORAFT_EMU_COUNTS"));
    for (const auto &kv : *ran_by_name) fprintf(f, "%lld %s\n", kv.second, kv.first.c_str());
    fprintf(f, "%lld cudaGraphLaunch\n%lld graph_nodes\n", n_graph_launches, n_graph_nodes);
    fclose(f);
}
static int run_node(EmuNode &node) {
    static bool counting = getenv("LORAFT_EMU_COUNTS") != NULL;
    if (counting && !ran_by_name) {
        ran_by_name = new std::map<std::string, long long>;
        atexit(write_counts);
    }
    if (counting) (*ran_by_name)[node.name]++;
    return node.run();
}

extern "C" long long loraft_cuda_emu_count(const char *what) {
    if (!strcmp(what, "launches")) return n_launches;
    if (!strcmp(what, "graph_launches")) return n_graph_launches;
    if (!strcmp(what, "graph_nodes")) return n_graph_nodes;
    if (!strcmp(what, "blocking")) return n_blocking;
    if (!strcmp(what, "lt_heuristics")) return n_lt_heuristics;
    if (!strcmp(what, "lt_matmuls")) return n_lt_matmuls;
    return -1;
}

static CUstream_st *resolve(cudaStream_t s) {
    if (!s || s == cudaStreamLegacy) return &legacy_stream;
    return s == cudaStreamPerThread ? &per_thread_stream : s;
}

/* Ends every capture that `pred` names with an error, as a GPU does when a call breaks it. */
template <typename F> static cudaError_t invalidate(cudaError_t e, F pred) {
    cudaError_t r = cudaSuccess;
    for (CUstream_st *s : capturing)
        if (pred(s)) s->invalidated = true, r = e;
    return r ? ret(r) : r;
}
/* Calls that may allocate or synchronise: refused while a non-relaxed capture is under way. */
static cudaError_t unsafe_call(void) {
    return invalidate(cudaErrorStreamCaptureUnsupported,
                      [](CUstream_st *s) { return s->mode != cudaStreamCaptureModeRelaxed; });
}
/* The legacy stream waits for every blocking stream, so it cannot be used while one captures. */
static cudaError_t legacy_use(CUstream_st *s) {
    if (s != &legacy_stream) return cudaSuccess;
    return invalidate(cudaErrorStreamCaptureImplicit,
                      [](CUstream_st *c) { return !(c->flags & cudaStreamNonBlocking); });
}

int emu_enqueue(CUstream_st *stream, EmuNode node) {
    CUstream_st *s = resolve(stream);
    if (cudaError_t e = legacy_use(s)) return e;
    if (s->capture) {
        if (s->invalidated) return cudaErrorStreamCaptureInvalidated;
        s->capture->nodes.push_back(std::move(node));
        return cudaSuccess;
    }
    n_launches++;
    return run_node(node);
}

/* ---- the device ---- */
static size_t device_bytes(void) {
    const char *s = getenv("LORAFT_EMU_DEVICE_MEM");
    return s ? (size_t)strtoull(s, NULL, 0) : (size_t)8 << 30;
}
/* LORAFT_EMU_DEVICES, read at every call so that a test may set it before any CUDA call. */
int emu_device_count(void) {
    const char *s = getenv("LORAFT_EMU_DEVICES");
    if (!s) return 1;
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || *end || n < 1 || n > 64)
        emu_die("LORAFT_EMU_DEVICES=%s: the number of emulated devices must be 1 to 64", s);
    return (int)n;
}
static int current_device; /* cudaSetDevice's: only cudaGetDevice and NCCL's ranks see it */
cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return ret(cudaErrorInvalidValue);
    *count = emu_device_count();
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= emu_device_count()) return ret(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *device) {
    if (!device) return ret(cudaErrorInvalidValue);
    *device = current_device;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (!prop) return ret(cudaErrorInvalidValue);
    if (device < 0 || device >= emu_device_count()) return ret(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "loraft CUDA emulator (tests/cuda_emu)");
    prop->totalGlobalMem = device_bytes(), prop->sharedMemPerBlock = 48 << 10;
    prop->warpSize = 32, prop->maxThreadsPerBlock = 1024, prop->multiProcessorCount = 1;
    prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024, prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647, prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->major = 9, prop->minor = 0;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *version) {
    if (!version) return ret(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *version) {
    return cudaDriverGetVersion(version);
}
cudaError_t cudaDeviceSynchronize(void) {
    host_waits();
    return invalidate(cudaErrorStreamCaptureUnsupported, [](CUstream_st *) { return true; });
}
cudaError_t cudaDeviceReset(void) {
    return cudaSuccess;
}

/* ---- memory: every allocation by start address ---- */
struct Block {
    size_t bytes;
    bool host; /* cudaMallocHost: mapped, kernels may read it too */
};
static std::map<uintptr_t, Block> blocks;
static size_t allocated;

/* The allocation [p, p + bytes] lies in (end inclusive: an empty range may sit at its end),
 * or NULL. */
static const std::pair<const uintptr_t, Block> *find_block(const void *p, size_t bytes) {
    auto it = blocks.upper_bound((uintptr_t)p);
    if (it == blocks.begin()) return NULL;
    --it;
    if ((uintptr_t)p + bytes > it->first + it->second.bytes) return NULL;
    return &*it;
}

void emu_check_kernel_pointer(const char *kernel, int arg, const void *p) {
    if (p && !find_block(p, 0))
        emu_die("%s: argument %d (%p) does not point into device memory: a host pointer?", kernel,
                arg + 1, p);
}

bool emu_device_range(const void *p, size_t bytes) {
    auto b = p ? find_block(p, bytes) : NULL;
    return b && !b->second.host;
}

static cudaError_t alloc(void **p, size_t bytes, bool host) {
    if (!p) return ret(cudaErrorInvalidValue);
    *p = NULL;
    if (cudaError_t e = unsafe_call()) return e;
    if (!bytes) return cudaSuccess;
    if (bytes > device_bytes() - allocated) return ret(cudaErrorMemoryAllocation);
    void *q = NULL;
    if (posix_memalign(&q, 256, bytes)) return ret(cudaErrorMemoryAllocation);
    blocks[(uintptr_t)q] = Block{bytes, host};
    allocated += bytes;
    *p = q;
    return cudaSuccess;
}

static cudaError_t release(void *p, bool host) {
    if (cudaError_t e = unsafe_call()) return e;
    if (!p) return cudaSuccess;
    auto it = blocks.find((uintptr_t)p);
    if (it == blocks.end() || it->second.host != host) return ret(cudaErrorInvalidValue);
    allocated -= it->second.bytes;
    blocks.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    return alloc(p, bytes, false);
}
cudaError_t cudaFree(void *p) {
    return release(p, false);
}
cudaError_t cudaMallocHost(void **p, size_t bytes) {
    return alloc(p, bytes, true);
}
cudaError_t cudaFreeHost(void *p) {
    return release(p, true);
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    if (!free_bytes || !total_bytes) return ret(cudaErrorInvalidValue);
    *total_bytes = device_bytes(), *free_bytes = device_bytes() - allocated;
    return cudaSuccess;
}

/* A side of a copy that the kind says is device memory must lie inside one allocation. */
static cudaError_t copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
        return ret(cudaErrorInvalidMemcpyDirection);
    if (!bytes) return cudaSuccess;
    if (!dst || !src) return ret(cudaErrorInvalidValue);
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !find_block(dst, bytes)) || (src_dev && !find_block(src, bytes)))
        return ret(cudaErrorInvalidValue);
    memcpy(dst, src, bytes);
    return cudaSuccess;
}
static cudaError_t set(void *p, int value, size_t bytes) {
    if (!bytes) return cudaSuccess;
    if (!find_block(p, bytes)) return ret(cudaErrorInvalidValue);
    memset(p, value, bytes);
    return cudaSuccess;
}
static bool pinned(const void *p, size_t bytes) {
    auto b = find_block(p, bytes);
    return b && b->second.host;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (cudaError_t e = unsafe_call()) return e;
    host_waits();
    return copy(dst, src, bytes, kind);
}
/* The host side of an asynchronous copy in a capture must be pinned: a pageable copy is
 * synchronous. Outside a capture a pageable device-to-host copy makes the host wait. */
cudaError_t emu_memcpy_async(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                             cudaStream_t stream) {
    CUstream_st *s = resolve(stream);
    bool host_dst = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost,
         host_src = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost;
    bool pageable =
        bytes && ((host_dst && !pinned(dst, bytes)) || (host_src && !pinned(src, bytes)));
    if (s->capture && pageable)
        return invalidate(cudaErrorStreamCaptureUnsupported,
                          [s](CUstream_st *c) { return c == s; });
    if (!s->capture && pageable && host_dst) host_waits();
    return (cudaError_t)emu_enqueue(s, EmuNode{EMU_NODE_MEMCPY, NULL, (uint64_t)kind,
                                               "cudaMemcpyAsync",
                                               [=]() { return (int)copy(dst, src, bytes, kind); }});
}
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    if (cudaError_t e = unsafe_call()) return e;
    return set(p, value, bytes);
}
cudaError_t emu_memset_async(void *p, int value, size_t bytes, cudaStream_t stream) {
    return (cudaError_t)emu_enqueue(resolve(stream),
                                    EmuNode{EMU_NODE_MEMSET, NULL, 1, "cudaMemsetAsync",
                                            [=]() { return (int)set(p, value, bytes); }});
}

/* ---- streams and events: everything has completed when the call returns ---- */
struct CUevent_st {
    double ms;       /* host time when recorded */
    bool recorded;   /* outside a capture */
    bool captured;   /* last recorded in a capturing stream */
    long long epoch; /* sync_epoch when recorded */
};
cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
    if (!stream || flags > cudaStreamNonBlocking) return ret(cudaErrorInvalidValue);
    *stream = new CUstream_st{flags, NULL, cudaStreamCaptureModeGlobal, false};
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream || stream == cudaStreamLegacy || stream == cudaStreamPerThread)
        return ret(cudaErrorInvalidResourceHandle);
    if (stream->capture) return ret(cudaErrorIllegalState);
    delete stream;
    return cudaSuccess;
}
cudaError_t emu_stream_synchronize(cudaStream_t stream) {
    CUstream_st *s = resolve(stream);
    host_waits();
    if (s->capture)
        return invalidate(cudaErrorStreamCaptureUnsupported,
                          [s](CUstream_st *c) { return c == s; });
    return legacy_use(s);
}
cudaError_t emu_stream_wait_event(cudaStream_t stream, cudaEvent_t event, unsigned) {
    if (!event) return ret(cudaErrorInvalidResourceHandle);
    CUstream_st *s = resolve(stream);
    if (event->captured && !s->capture)
        emu_die(
            "cudaStreamWaitEvent on an event recorded in a capture: joining another stream into "
            "a capture is not emulated");
    return legacy_use(s);
}
cudaError_t cudaEventCreate(cudaEvent_t *event) {
    if (!event) return ret(cudaErrorInvalidValue);
    *event = new CUevent_st();
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned) {
    return cudaEventCreate(event);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (!event) return ret(cudaErrorInvalidResourceHandle);
    delete event;
    return cudaSuccess;
}
cudaError_t emu_event_record(cudaEvent_t event, cudaStream_t stream) {
    if (!event) return ret(cudaErrorInvalidResourceHandle);
    CUstream_st *s = resolve(stream);
    if (cudaError_t e = legacy_use(s)) return e;
    event->captured = s->capture != NULL;
    if (event->captured)
        return s->invalidated ? ret(cudaErrorStreamCaptureInvalidated) : cudaSuccess;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    event->ms = ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6, event->recorded = true;
    event->epoch = sync_epoch;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event) return ret(cudaErrorInvalidResourceHandle);
    if (event->captured) return ret(cudaErrorCapturedEvent);
    if (event->recorded && event->epoch == sync_epoch) host_waits();
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
    if (!event) return ret(cudaErrorInvalidResourceHandle);
    return event->captured ? ret(cudaErrorCapturedEvent) : cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms) return ret(cudaErrorInvalidValue);
    if (!start || !end) return ret(cudaErrorInvalidResourceHandle);
    if (!start->recorded || !end->recorded) return ret(cudaErrorInvalidResourceHandle);
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

/* ---- stream capture and graphs ---- */
cudaError_t emu_stream_begin_capture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    CUstream_st *s = resolve(stream);
    if (mode < cudaStreamCaptureModeGlobal || mode > cudaStreamCaptureModeRelaxed)
        return ret(cudaErrorInvalidValue);
    if (s == &legacy_stream) return ret(cudaErrorStreamCaptureUnsupported);
    if (s->capture) return ret(cudaErrorIllegalState);
    s->capture = new CUgraph_st(), s->mode = mode, s->invalidated = false;
    capturing.push_back(s);
    return cudaSuccess;
}
cudaError_t emu_stream_end_capture(cudaStream_t stream, cudaGraph_t *graph) {
    CUstream_st *s = resolve(stream);
    if (!graph) return ret(cudaErrorInvalidValue);
    *graph = NULL;
    if (!s->capture) return ret(cudaErrorIllegalState);
    for (size_t i = 0; i < capturing.size(); i++)
        if (capturing[i] == s) capturing.erase(capturing.begin() + (long)i);
    CUgraph_st *g = s->capture;
    s->capture = NULL;
    if (s->invalidated) {
        delete g;
        return ret(cudaErrorStreamCaptureInvalidated);
    }
    *graph = g;
    return cudaSuccess;
}
cudaError_t emu_stream_is_capturing(cudaStream_t stream, cudaStreamCaptureStatus *status) {
    CUstream_st *s = resolve(stream);
    if (!status) return ret(cudaErrorInvalidValue);
    if (cudaError_t e = legacy_use(s)) return e;
    *status = !s->capture      ? cudaStreamCaptureStatusNone
              : s->invalidated ? cudaStreamCaptureStatusInvalidated
                               : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags) {
    if (!exec || !graph) return ret(cudaErrorInvalidValue);
    if (flags) emu_die("cudaGraphInstantiate: flags 0x%llx are not emulated", flags);
    *exec = new CUgraphExec_st{graph->nodes};
    return cudaSuccess;
}
/* The rules of cudaGraphExecUpdate that a recording can break (see the top). */
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph,
                                cudaGraphExecUpdateResultInfo *info) {
    if (!exec || !graph || !info) return ret(cudaErrorInvalidValue);
    *info = cudaGraphExecUpdateResultInfo{cudaGraphExecUpdateSuccess, NULL, NULL};
    if (graph->nodes.size() != exec->nodes.size())
        info->result = cudaGraphExecUpdateErrorTopologyChanged;
    for (size_t i = 0; !info->result && i < graph->nodes.size(); i++) {
        const EmuNode &to = graph->nodes[i], &from = exec->nodes[i];
        if (to.kind != from.kind)
            info->result = cudaGraphExecUpdateErrorNodeTypeChanged;
        else if (to.fn != from.fn || (to.kind == EMU_NODE_BLAS && to.shape != from.shape))
            info->result = cudaGraphExecUpdateErrorFunctionChanged;
        else if (to.shape != from.shape)
            info->result = cudaGraphExecUpdateErrorParametersChanged;
        if (info->result) info->errorNode = &graph->nodes[i];
    }
    if (info->result) return ret(cudaErrorGraphExecUpdateFailure);
    exec->nodes = graph->nodes;
    return cudaSuccess;
}
cudaError_t emu_graph_launch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (!exec) return ret(cudaErrorInvalidResourceHandle);
    CUstream_st *s = resolve(stream);
    if (s->capture)
        emu_die("cudaGraphLaunch into a capturing stream (a child graph) is not emulated");
    if (cudaError_t e = legacy_use(s)) return e;
    n_graph_launches++;
    n_graph_nodes += (long long)exec->nodes.size();
    int first = 0;
    for (EmuNode &node : exec->nodes) {
        int e = run_node(node);
        first = first ? first : e;
    }
    return first ? ret((cudaError_t)first) : cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    if (!graph) return ret(cudaErrorInvalidValue);
    delete graph;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    if (!exec) return ret(cudaErrorInvalidValue);
    delete exec;
    return cudaSuccess;
}

/* ---- cuBLAS ---- */
struct cublasContext {
    cudaStream_t stream; /* NULL: the legacy default stream (cuBLAS is not built per-thread) */
    cublasMath_t math;
    void *workspace; /* cublasSetWorkspace's; without one a captured call fails */
};

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext{NULL, CUBLAS_DEFAULT_MATH, NULL};
    return CUBLAS_STATUS_SUCCESS;
}
/* The workspace must be device memory, 256-byte aligned, as cuBLAS requires. */
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && (!workspace || (uintptr_t)workspace % 256 || !find_block(workspace, bytes) ||
                  find_block(workspace, bytes)->second.host))
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->workspace = bytes ? workspace : NULL;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t *stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base < CUBLAS_DEFAULT_MATH || base > CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode; /* TF32 runs as FP32 here */
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetPointerMode(cublasHandle_t handle, cublasPointerMode_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST)
        emu_die("cublasSetPointerMode: only CUBLAS_POINTER_MODE_HOST is emulated");
    return CUBLAS_STATUS_SUCCESS;
}

static const struct {
    cublasStatus_t s;
    const char *name, *text;
} status_texts[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "success"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED",
     "the library was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE",
     "an invalid numeric value was used as an argument"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH",
     "an absent device architectural feature is required"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR",
     "an access to GPU memory space failed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED",
     "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED",
     "the functionality requested is not supported"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR",
     "error detected trying to check the license"},
};
const char *cublasGetStatusString(cublasStatus_t status) {
    for (const auto &t : status_texts)
        if (t.s == status) return t.text;
    return "unknown error";
}
const char *cublasGetStatusName(cublasStatus_t status) {
    for (const auto &t : status_texts)
        if (t.s == status) return t.name;
    return "CUBLAS_STATUS_UNKNOWN";
}

/* A column-major rows x cols operand of `es`-byte elements with leading dimension ld must lie
 * inside one device allocation: OpenBLAS is not instrumented, so this is the bounds check ASan
 * cannot do. */
static void check_operand(const char *fn, const char *name, int batch, const void *p, size_t es,
                          int rows, int cols, int ld) {
    size_t span = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * es;
    if (!find_block(p, 0))
        emu_die("%s: %s of batch %d (%p) is not in device memory", fn, name, batch, p);
    if (!find_block(p, span)) {
        auto b = find_block(p, 0);
        emu_die("%s: %s of batch %d (%d x %d, ld %d: %zu bytes) reaches %zu bytes past the end of "
                "its %zu-byte allocation",
                fn, name, batch, rows, cols, ld, span,
                (size_t)((uintptr_t)p + span - b->first - b->second.bytes), b->second.bytes);
    }
}

/* A bf16 operand widened to a packed f32 copy (ld = rows): every product of two bf16 values is
 * exact in f32, so sgemm on the copies is a GEMM with f32 accumulation, as tensor cores do. */
static std::vector<float> widen_bf16(const void *p, int rows, int cols, int ld) {
    std::vector<float> out((size_t)rows * cols);
    const uint16_t *h = (const uint16_t *)p;
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) {
            uint32_t u = (uint32_t)h[(size_t)c * ld + r] << 16;
            memcpy(&out[(size_t)c * rows + r], &u, sizeof u);
        }
    return out;
}

/* The m x n column-major f32 sums y (ld m) into the bf16 C (ld ldc), rounded to nearest even as
 * a GEMM's epilogue rounds its accumulators once. */
static void round_into_bf16(void *C, const std::vector<float> &y, int m, int n, int ldc) {
    uint16_t *h = (uint16_t *)C;
    for (int c = 0; c < n; c++)
        for (int r = 0; r < m; r++)
            h[(size_t)c * ldc + r] = __bfloat16_as_ushort(__float2bfloat16(y[(size_t)c * m + r]));
}

/* C[r,c] += bias[r] for the m x n column-major C (bias NULL: nothing) */
static void add_bias(float *C, const float *bias, int m, int n, int ldc) {
    if (!bias) return;
    for (int c = 0; c < n; c++)
        for (int r = 0; r < m; r++) C[(size_t)c * ldc + r] += bias[r];
}

/* The data types emulated: FP32 A, B and C (compute 32F, 32F_PEDANTIC or 32F_FAST_TF32, all
 * computed as FP32), and BF16 A and B with an FP32 C, or in cublasGemmEx a BF16 one (compute 32F
 * or 32F_PEDANTIC, one GEMM). Anything else aborts. */
static void check_types(const char *fn, cudaDataType At, cudaDataType Bt, cudaDataType Ct,
                        cublasComputeType_t compute, int batched) {
    int f32 = At == CUDA_R_32F && Bt == CUDA_R_32F && Ct == CUDA_R_32F;
    int ex = !strcmp(fn, "cublasGemmEx");
    int bf16 =
        At == CUDA_R_16BF && Bt == CUDA_R_16BF && (Ct == CUDA_R_32F || (Ct == CUDA_R_16BF && ex));
    if (!f32 && !(bf16 && !batched))
        emu_die("%s: data types A %d, B %d, C %d: only CUDA_R_32F, and CUDA_R_16BF A and B with a "
                "CUDA_R_32F C (or a CUDA_R_16BF one in cublasGemmEx), are emulated",
                fn, (int)At, (int)Bt, (int)Ct);
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
        (bf16 || compute != CUBLAS_COMPUTE_32F_FAST_TF32))
        emu_die(
            "%s: compute type %d: only CUBLAS_COMPUTE_32F[_PEDANTIC|_FAST_TF32] (FP32 data) and "
            "CUBLAS_COMPUTE_32F[_PEDANTIC] (BF16 data) are emulated",
            fn, (int)compute);
}

/* Where a GEMM runs: the stream, whether a workspace was given (a captured call needs one),
 * cuBLASLt's bias epilogue (an FP32 vector of m added to each column of C, or NULL), and whether
 * a BF16 C may hold partial sums (the handle's math mode allows reduced-precision reductions). */
struct GemmOn {
    cudaStream_t stream;
    bool workspace;
    const float *bias;
    bool reduce_in_c;
};

static cublasStatus_t gemm_on(const char *fn, GemmOn on, cublasOperation_t ta, cublasOperation_t tb,
                              int m, int n, int k, const void *alpha, const void *A,
                              cudaDataType At, int lda, long long sA, const void *B,
                              cudaDataType Bt, int ldb, long long sB, const void *beta, void *C,
                              cudaDataType Ct, int ldc, long long sC, int batch,
                              cublasComputeType_t compute, int algo) {
    check_types(fn, At, Bt, Ct, compute, strstr(fn, "Batched") != NULL);
    if (!(algo >= -1 && algo <= 23) && !(algo >= 99 && algo <= 115))
        emu_die("%s: algorithm %d is not a cublasGemmAlgo_t the emulation knows", fn, algo);
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T && ta != CUBLAS_OP_C) ||
        (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T && tb != CUBLAS_OP_C))
        return CUBLAS_STATUS_INVALID_VALUE;
    int rows_a = ta == CUBLAS_OP_N ? m : k, cols_a = ta == CUBLAS_OP_N ? k : m;
    int rows_b = tb == CUBLAS_OP_N ? k : n, cols_b = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (rows_a > 1 ? rows_a : 1) ||
        ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1) || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!m || !n || !batch) return CUBLAS_STATUS_SUCCESS;
    auto pa = find_block(alpha, 0), pb = find_block(beta, 0);
    if ((pa && !pa->second.host) || (pb && !pb->second.host))
        emu_die("%s: alpha or beta is a device pointer, but the pointer mode is HOST", fn);
    float a = *(const float *)alpha, b = *(const float *)beta;
    cudaStream_t stream = on.stream;
    const float *bias = on.bias;
    if (resolve(stream)->capture && !on.workspace) { /* cuBLAS would allocate one */
        unsafe_call();
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    /* what decides the kernels cuBLAS picks: a graph update needs them unchanged */
    uint64_t shape = 0;
    for (uint64_t v :
         {(uint64_t)(uintptr_t)fn, (uint64_t)ta, (uint64_t)tb, (uint64_t)m, (uint64_t)n,
          (uint64_t)k, (uint64_t)batch, (uint64_t)At, (uint64_t)compute, (uint64_t)(bias != NULL)})
        shape = (shape ^ v) * 0x100000001B3ull; /* FNV-1a over the values */
    auto run = [=]() {
        int bf16 = At == CUDA_R_16BF, half_c = Ct == CUDA_R_16BF;
        size_t es = bf16 ? 2 : 4;
        for (int i = 0; i < batch; i++) {
            const char *Ai = (const char *)A + i * sA * es, *Bi = (const char *)B + i * sB * es;
            float *Ci = (float *)C + i * sC;
            check_operand(fn, "C", i, Ci, half_c ? 2 : 4, m, n, ldc);
            std::vector<float> y; /* a bf16 C: the sums in f32 first (batch 1: Ci is C) */
            int ldy = ldc;
            if (half_c) {
                y = b == 0.0f ? std::vector<float>((size_t)m * n) : widen_bf16(C, m, n, ldc);
                Ci = y.data(), ldy = m;
            }
            if (bias) check_operand(fn, "bias", i, bias, 4, m, 1, m);
            if (k == 0 || a == 0.0f) { /* A and B are not read: C = beta C */
                for (int c = 0; c < n; c++)
                    for (int r = 0; r < m; r++)
                        Ci[(size_t)c * ldy + r] = b == 0.0f ? 0.0f : b * Ci[(size_t)c * ldy + r];
                add_bias(Ci, bias, m, n, ldy);
                if (half_c) round_into_bf16(C, y, m, n, ldc);
                continue;
            }
            check_operand(fn, "A", i, Ai, es, rows_a, cols_a, lda);
            check_operand(fn, "B", i, Bi, es, rows_b, cols_b, ldb);
            std::vector<float> wa, wb;
            const float *fa = (const float *)Ai, *fb = (const float *)Bi;
            int la = lda, lb = ldb;
            if (bf16) {
                wa = widen_bf16(Ai, rows_a, cols_a, lda), wb = widen_bf16(Bi, rows_b, cols_b, ldb);
                fa = wa.data(), fb = wb.data(), la = rows_a, lb = rows_b;
            }
            CBLAS_TRANSPOSE ca = ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                            cb = tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
            int k1 = half_c && on.reduce_in_c ? k / 2 : 0; /* split K: a part's sums in C first */
            float beta_rest = b;
            if (k1) {
                cblas_sgemm(CblasColMajor, ca, cb, m, n, k1, a, fa, la, fb, lb, b, Ci, ldy);
                round_into_bf16(C, y, m, n, ldc);
                y = widen_bf16(C, m, n, ldc);
                Ci = y.data(), beta_rest = 1.0f;
                fa += (size_t)k1 * (ca == CblasNoTrans ? la : 1);
                fb += (size_t)k1 * (cb == CblasNoTrans ? 1 : lb);
            }
            cblas_sgemm(CblasColMajor, ca, cb, m, n, k - k1, a, fa, la, fb, lb, beta_rest, Ci, ldy);
            add_bias(Ci, bias, m, n, ldy);
            if (half_c) round_into_bf16(C, y, m, n, ldc);
        }
        return 0;
    };
    return emu_enqueue(stream, EmuNode{EMU_NODE_BLAS, NULL, shape, fn, run})
               ? CUBLAS_STATUS_EXECUTION_FAILED
               : CUBLAS_STATUS_SUCCESS;
}

/* cuBLAS: on the handle's stream (NULL: the legacy one) and workspace, no epilogue. */
static cublasStatus_t gemm(const char *fn, cublasHandle_t h, cublasOperation_t ta,
                           cublasOperation_t tb, int m, int n, int k, const void *alpha,
                           const void *A, cudaDataType At, int lda, long long sA, const void *B,
                           cudaDataType Bt, int ldb, long long sB, const void *beta, void *C,
                           cudaDataType Ct, int ldc, long long sC, int batch,
                           cublasComputeType_t compute, int algo) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    GemmOn on = {h->stream ? h->stream : cudaStreamLegacy, h->workspace != NULL, NULL,
                 !(h->math & CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)};
    return gemm_on(fn, on, ta, tb, m, n, k, alpha, A, At, lda, sA, B, Bt, ldb, sB, beta, C, Ct, ldc,
                   sC, batch, compute, algo);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
    return gemm("cublasGemmEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype,
                ldb, 0, beta, C, Ctype, ldc, 0, 1, computeType, algo);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long strideA, const void *B,
                                          cudaDataType Btype, int ldb, long long strideB,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    return gemm("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda,
                strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount,
                computeType, algo);
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    return gemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B,
                CUDA_R_32F, ldb, 0, beta, C, CUDA_R_32F, ldc, 0, 1, CUBLAS_COMPUTE_32F,
                CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb,
                                         long long strideB, const float *beta, float *C, int ldc,
                                         long long strideC, int batchCount) {
    return gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F,
                lda, strideA, B, CUDA_R_32F, ldb, strideB, beta, C, CUDA_R_32F, ldc, strideC,
                batchCount, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

/* ---- cuBLASLt: descriptors are host structs; one GEMM through gemm_on ---- */
struct cublasLtContext {
    int unused;
};
struct LtDesc {
    cublasComputeType_t compute;
    cublasOperation_t ta, tb;
    uint32_t epilogue;
    const float *bias;
};
struct LtLayout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};
/* The alignments (bytes) an algorithm was chosen for: A, B, C, D, bias. */
enum { LT_ALIGNMENTS = 5 };
struct LtPreference {
    uint64_t max_workspace;
    uint32_t align[4]; /* A, B, C, D */
};
static LtDesc *lt(cublasLtMatmulDesc_t d) {
    return (LtDesc *)d;
}
static LtLayout *lt(cublasLtMatrixLayout_t l) {
    return (LtLayout *)l;
}
static LtPreference *lt(cublasLtMatmulPreference_t p) {
    return (LtPreference *)p;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasLtContext();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    if (scale != CUDA_R_32F)
        emu_die("cublasLtMatmulDescCreate: scale type %d: only CUDA_R_32F is emulated", (int)scale);
    *desc = (cublasLtMatmulDesc_t) new LtDesc{compute, CUBLAS_OP_N, CUBLAS_OP_N,
                                              CUBLASLT_EPILOGUE_DEFAULT, NULL};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete lt(desc);
    return CUBLAS_STATUS_SUCCESS;
}
/* The value of an attribute that must be exactly `bytes` long, as cuBLASLt checks. */
template <typename T> static bool attribute(T *dst, const void *buf, size_t bytes) {
    if (!buf || bytes != sizeof *dst) return false;
    memcpy(dst, buf, sizeof *dst);
    return true;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t bytes) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    LtDesc *d = lt(desc);
    int32_t v = 0;
    bool ok;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
        ok = attribute(&v, buf, bytes);
        if (ok && v != CUBLAS_OP_N && v != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
        if (ok) (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = (cublasOperation_t)v;
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        ok = attribute(&d->epilogue, buf, bytes);
        if (ok && d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
            emu_die(
                "cublasLtMatmulDescSetAttribute: epilogue %u: only CUBLASLT_EPILOGUE_DEFAULT and "
                "CUBLASLT_EPILOGUE_BIAS are emulated",
                d->epilogue);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        ok = attribute(&d->bias, buf, bytes);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        ok = attribute(&v, buf, bytes);
        if (ok && v != CUDA_R_32F)
            emu_die(
                "cublasLtMatmulDescSetAttribute: bias data type %d: only CUDA_R_32F is emulated",
                (int)v);
        break;
    default:
        emu_die("cublasLtMatmulDescSetAttribute: attribute %d is not emulated", (int)attr);
    }
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    *layout = (cublasLtMatrixLayout_t) new LtLayout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete lt(layout);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = (cublasLtMatmulPreference_t) new LtPreference{0, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete lt(pref);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t bytes) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    LtPreference *p = lt(pref);
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
        return attribute(&p->max_workspace, buf, bytes) ? CUBLAS_STATUS_SUCCESS
                                                        : CUBLAS_STATUS_INVALID_VALUE;
    if (attr < CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES ||
        attr > CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES)
        emu_die("cublasLtMatmulPreferenceSetAttribute: attribute %d is not emulated", (int)attr);
    uint32_t *a = &p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES];
    return attribute(a, buf, bytes) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

/* The GEMM the descriptors describe, as cublasGemmEx's arguments: false if the layouts do not
 * fit op(A) [m,k], op(B) [k,n], C = D [m,n], or are not single column-major matrices. */
struct LtGemm {
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    cudaDataType At, Bt, Ct;
};
static bool lt_gemm(const char *fn, const LtDesc *d, const LtLayout *a, const LtLayout *b,
                    const LtLayout *c, const LtLayout *dd, LtGemm *g) {
    if (!d || !a || !b || !c || !dd) return false;
    if (c->type != dd->type || c->rows != dd->rows || c->cols != dd->cols || c->ld != dd->ld)
        emu_die("%s: C and D layouts differ: only D in place of C is emulated", fn);
    uint64_t m = d->ta == CUBLAS_OP_N ? a->rows : a->cols,
             k = d->ta == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t kb = d->tb == CUBLAS_OP_N ? b->rows : b->cols,
             n = d->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (k != kb || c->rows != m || c->cols != n || m > INT32_MAX || n > INT32_MAX ||
        k > INT32_MAX || a->ld > INT32_MAX || b->ld > INT32_MAX || c->ld > INT32_MAX)
        return false;
    *g = LtGemm{d->ta,      d->tb,      (int)m,  (int)n,  (int)k, (int)a->ld,
                (int)b->ld, (int)c->ld, a->type, b->type, c->type};
    return true;
}
/* LORAFT_EMU_LT_REFUSE names the call that declines every GEMM (cublasLt.h). */
static bool lt_refuses(const char *call) {
    const char *s = getenv("LORAFT_EMU_LT_REFUSE");
    return s && !strcmp(s, call);
}
static uint64_t alignment(const void *p) {
    uint64_t a = 256;
    while (a > 1 && (uintptr_t)p % a) a >>= 1;
    return a;
}

/* One algorithm: no workspace, and the alignments the preference allows (and the bias
 * pointer's) recorded in it. */
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                                              cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned) {
    const char *fn = "cublasLtMatmulAlgoGetHeuristic";
    n_lt_heuristics++;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    LtGemm g;
    if (!pref || requested < 1 || !results || !returned ||
        !lt_gemm(fn, lt(desc), lt(A), lt(B), lt(C), lt(D), &g))
        return CUBLAS_STATUS_INVALID_VALUE;
    check_types(fn, g.At, g.Bt, g.Ct, lt(desc)->compute, 0);
    *returned = 0;
    if (lt_refuses("heuristic")) return CUBLAS_STATUS_NOT_SUPPORTED; /* as cuBLASLt finding none */
    memset(results, 0, sizeof *results);
    for (int i = 0; i < 4; i++) results->algo.data[i] = lt(pref)->align[i];
    results->algo.data[4] = alignment(lt(desc)->bias);
    results->state = CUBLAS_STATUS_SUCCESS, results->wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
    const char *fn = "cublasLtMatmul";
    n_lt_matmuls++;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    LtGemm g;
    if (!lt_gemm(fn, lt(desc), lt(Adesc), lt(Bdesc), lt(Cdesc), lt(Ddesc), &g))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (C != D) emu_die("%s: C and D differ: only D in place of C is emulated", fn);
    if (workspace_bytes && !find_block(workspace, workspace_bytes))
        return CUBLAS_STATUS_INVALID_VALUE;
    const LtDesc *d = lt(desc);
    bool bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (bias && !d->bias) return CUBLAS_STATUS_INVALID_VALUE;
    if (bias && (uintptr_t)d->bias % 16)
        emu_die(
            "%s: the bias (%p) is not 16-byte aligned: a kernel the heuristic picks may assume it "
            "whatever the heuristic was told, and fault on a GPU (misaligned address)",
            fn, (const void *)d->bias);
    const void *ptrs[LT_ALIGNMENTS] = {A, B, C, D, bias ? d->bias : NULL};
    for (int i = 0; i < LT_ALIGNMENTS; i++) /* NULL algo: the default preference, 256 */
        if (ptrs[i] && (uintptr_t)ptrs[i] % (algo ? algo->data[i] : 256))
            return CUBLAS_STATUS_NOT_SUPPORTED;
    if (lt_refuses("matmul")) return CUBLAS_STATUS_NOT_SUPPORTED;
    GemmOn on = {stream, workspace_bytes > 0, bias ? d->bias : NULL, false};
    return gemm_on(fn, on, g.ta, g.tb, g.m, g.n, g.k, alpha, A, g.At, g.lda, 0, B, g.Bt, g.ldb, 0,
                   beta, D, g.Ct, g.ldc, 0, 1, d->compute, CUBLAS_GEMM_DEFAULT);
}
