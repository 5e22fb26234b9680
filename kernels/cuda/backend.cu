/* backend.cu: the CUDA op table (ops_cuda) and what it stands on: device
 * memory, the first-error slot and fault word behind status(), the cuBLAS
 * and cuBLASLt handles and GEMM wrappers, CUDA Graph capture of a step, and the device count.
 * The kernels live one op family per file beside it. Deliberately not a device
 * manager: one device a process (group.cu: a rank of a data-parallel group), one stream.
 *
 * The stream is the per-thread default stream: kernels/ is compiled with nvcc
 * --default-stream per-thread, so every launch and copy that names stream 0 (or
 * none) goes to cudaStreamPerThread, which, unlike the legacy default stream,
 * can be captured into a graph; cuBLAS is told to use it too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

static char first_error[768]; /* "" while nothing failed since the last status() */
static int *fault_word;       /* device int, CudaFault bits */
static int *fault_seen;       /* pinned: status()'s copy of it */
static cublasHandle_t blas;
static cublasLtHandle_t blaslt; /* created with blas; shares its workspace (one stream) */
static void *blas_workspace;
static size_t blas_workspace_size;
static cublasComputeType_t blas_compute = CUBLAS_COMPUTE_32F;

void cuda_note_text(const char *what, const char *file, int line) {
    if (first_error[0]) return;
    const char *base = strrchr(file, '/');
    snprintf(first_error, sizeof first_error, "%s:%d: %s", base ? base + 1 : file, line, what);
}

void cuda_note(cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, cudaGetErrorString(e));
    cuda_note_text(msg, file, line);
}

void cuda_note_blas(cublasStatus_t s, const char *what, const char *file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, cublasGetStatusString(s));
    cuda_note_text(msg, file, line);
}

int *cuda_fault_word(void) {
    if (fault_word) return fault_word;
    int *w = NULL, *seen = NULL;
    if (cudaMalloc(&w, sizeof *w) != cudaSuccess || cudaMemset(w, 0, sizeof *w) != cudaSuccess ||
        cudaMallocHost(&seen, sizeof *seen) != cudaSuccess) {
        CUDA_CHECK(cudaGetLastError());
        cudaFree(w);
        cudaFreeHost(seen);
        return NULL;
    }
    *seen = 0;
    fault_seen = seen;
    return fault_word = w;
}

/* cuBLAS's workspace as its documentation recommends (32 MiB on Hopper, 4 MiB before), given
 * to it up front: without one cuBLAS allocates its own, which a graph capture forbids. */
static size_t blas_workspace_bytes(void) {
    cudaDeviceProp prop;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess)
        return (size_t)32 << 20;
    return (size_t)(prop.major >= 9 ? 32 : 4) << 20;
}

/* Lazily created, with the cuBLASLt handle, on the per-thread stream with its workspace; NULL
 * (error noted) if cuBLAS cannot start. The two libraries take turns on the one stream, so one
 * workspace serves both. */
static cublasHandle_t cuda_blas(void) {
    if (blas) return blas;
    size_t bytes = blas_workspace_bytes();
    cublasStatus_t s = cublasCreate(&blas);
    cuda_note_blas(s, "cublasCreate", __FILE__, __LINE__);
    if (s != CUBLAS_STATUS_SUCCESS) return blas = NULL;
    s = cublasLtCreate(&blaslt);
    cuda_note_blas(s, "cublasLtCreate", __FILE__, __LINE__);
    if (s != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(blas);
        return blas = NULL;
    }
    cudaError_t e = cudaMalloc(&blas_workspace, bytes);
    CUDA_CHECK(e);
    if (e == cudaSuccess) s = cublasSetStream(blas, cudaStreamPerThread);
    if (e == cudaSuccess && s == CUBLAS_STATUS_SUCCESS)
        s = cublasSetWorkspace(blas, blas_workspace, bytes);
    /* A bf16 C is f32 sums rounded once: unasked, cuBLAS may split K and add the parts in bf16
     * in C (on the H200, a quarter of a 64-row GEMM's outputs were over half a step off). */
    if (e == cudaSuccess && s == CUBLAS_STATUS_SUCCESS)
        s = cublasSetMathMode(blas, CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
    cuda_note_blas(s, "cublasSetStream / cublasSetWorkspace / cublasSetMathMode", __FILE__,
                   __LINE__);
    if (e == cudaSuccess && s == CUBLAS_STATUS_SUCCESS) {
        blas_workspace_size = bytes;
        return blas;
    }
    cublasDestroy(blas);
    cublasLtDestroy(blaslt);
    cudaFree(blas_workspace);
    blas_workspace = NULL;
    blaslt = NULL;
    return blas = NULL;
}

/* model.precision: TF32 for the f32 GEMMs under tf32 and bf16 (for the GEMMs bf16 leaves in
 * f32); fp32 keeps parity with the CPU tight. Attention reads cuda_precision(). */
static Precision precision = PRECISION_FP32;
static void cuda_set_precision(Precision p) {
    precision = p;
    blas_compute = p == PRECISION_TF32 || p == PRECISION_BF16 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                              : CUBLAS_COMPUTE_32F;
}
Precision cuda_precision(void) {
    return precision;
}

static Precision cuda_best_precision(void) {
    cudaDeviceProp prop;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess)
        return PRECISION_FP32;
    return prop.major >= 8 ? PRECISION_BF16 : PRECISION_FP32;
}

void cuda_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
               const float *A, int lda, long long sA, const float *B, int ldb, long long sB,
               float beta, float *C, int ldc, long long sC, int batch) {
    cublasHandle_t h = cuda_blas();
    if (!h || m <= 0 || n <= 0 || batch <= 0) return;
    cublasStatus_t s;
    if (batch == 1)
        s = cublasGemmEx(h, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta,
                         C, CUDA_R_32F, ldc, blas_compute, CUBLAS_GEMM_DEFAULT);
    else
        s = cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda, sA, B,
                                       CUDA_R_32F, ldb, sB, &beta, C, CUDA_R_32F, ldc, sC, batch,
                                       blas_compute, CUBLAS_GEMM_DEFAULT);
    cuda_note_blas(s, "cublasGemm", __FILE__, __LINE__);
}

void cuda_gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                    const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B, int ldb, float beta,
                    void *C, cudaDataType ctype, int ldc) {
    cublasHandle_t h = cuda_blas();
    if (!h || m <= 0 || n <= 0) return;
    cublasStatus_t s =
        cublasGemmEx(h, ta, tb, m, n, k, &alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, C,
                     ctype, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cuda_note_blas(s, "cublasGemmEx (bf16)", __FILE__, __LINE__);
}

/* The largest power of two up to 256 that divides p: the alignment cuBLASLt's heuristic may
 * assume for an operand (it assumes 256 unless told, and a kernel that needs it fails). */
static uint32_t alignment(const void *p) {
    uint32_t a = 256;
    while (a > 1 && (uintptr_t)p % a) a >>= 1;
    return a;
}

/* ---- cuBLASLt plans for cuda_gemm_bias ----
 * A plan is the descriptors and the heuristic's algorithm for one biased GEMM, made on its first
 * call and kept for the life of the process, like the handle: the steps after the first do no
 * host allocation and no heuristic search. The key is everything the plan is made from, the
 * operands' alignments included (the heuristic is told them: an algorithm picked for 256 bytes
 * cannot run on 16). The bias pointer is not in the key, only its alignment: it is an attribute
 * of the kept descriptor, rewritten each call (host-only; cublasLtMatmul reads it when it
 * launches, so a captured graph keeps the pointer of its own call). */
typedef struct {
    int32_t ta, tb, m, n, k, lda, ldb, ldc, type, compute;
    uint32_t align[4]; /* A, B, C (and D), bias */
} LtKey;
typedef struct {
    LtKey key;
    int used, plain; /* plain: cuBLASLt has no algorithm here; the caller's GEMM + bias pass */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} LtPlan;
enum { LT_PLANS = 64 }; /* a model's few biased GEMM shapes, times the batch lengths in use */
static LtPlan lt_plans[LT_PLANS];
static int lt_victim; /* the slot a new plan takes once all are used */

static void lt_plan_release(LtPlan *p) {
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

static cublasStatus_t lt_set_bias(LtPlan *p, const float *bias) {
    return cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                          sizeof bias);
}

/* Fills p (key set) with its descriptors and the heuristic's first algorithm for them, or marks
 * it plain when the heuristic has none (NOT_SUPPORTED, or no result). Any other failure is
 * returned. */
static cublasStatus_t lt_plan_make(LtPlan *p, const float *bias) {
    const LtKey *key = &p->key;
    uint32_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    uint64_t ws = blas_workspace_size;
    cudaDataType type = (cudaDataType)key->type;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t best = {};
    int found = 0;
    cublasStatus_t s =
        cublasLtMatmulDescCreate(&p->desc, (cublasComputeType_t)key->compute, CUDA_R_32F);
    if (!s) s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &key->ta, 4);
    if (!s) s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &key->tb, 4);
    if (!s)
        s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, 4);
    if (!s) s = lt_set_bias(p, bias); /* the heuristic may look at it */
    if (!s)                           /* stored A is m x k, or k x m under OP_T; B likewise k x n */
        s = cublasLtMatrixLayoutCreate(&p->la, type, key->ta == CUBLAS_OP_N ? key->m : key->k,
                                       key->ta == CUBLAS_OP_N ? key->k : key->m, key->lda);
    if (!s)
        s = cublasLtMatrixLayoutCreate(&p->lb, type, key->tb == CUBLAS_OP_N ? key->k : key->n,
                                       key->tb == CUBLAS_OP_N ? key->n : key->k, key->ldb);
    if (!s) s = cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, key->m, key->n, key->ldc);
    if (!s) s = cublasLtMatmulPreferenceCreate(&pref);
    if (!s)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &ws, sizeof ws);
    for (int i = 0; i < 4 && !s; i++) /* A, B, C, D: D is C */
        s = cublasLtMatmulPreferenceSetAttribute(
            pref,
            (cublasLtMatmulPreferenceAttributes_t)(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i),
            &key->align[i < 3 ? i : 2], sizeof key->align[0]);
    if (!s)
        s = cublasLtMatmulAlgoGetHeuristic(blaslt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1,
                                           &best, &found);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || (!s && !found)) {
        p->plain = 1;
        return CUBLAS_STATUS_SUCCESS;
    }
    p->algo = best.algo;
    return s;
}

/* The plan for key: a kept one, or a new one in a free slot (all taken: the next in turn); NULL
 * (error noted) when cuBLASLt fails to make it. */
static LtPlan *lt_plan(const LtKey *key, const float *bias) {
    LtPlan *p = NULL;
    for (int i = 0; i < LT_PLANS; i++) {
        if (lt_plans[i].used && !memcmp(&lt_plans[i].key, key, sizeof *key)) return &lt_plans[i];
        if (!lt_plans[i].used && !p) p = &lt_plans[i];
    }
    if (!p) {
        p = &lt_plans[lt_victim];
        lt_victim = (lt_victim + 1) % LT_PLANS;
        lt_plan_release(p);
    }
    p->key = *key;
    cublasStatus_t s = lt_plan_make(p, bias);
    cuda_note_blas(s, "cuBLASLt plan (bias epilogue)", __FILE__, __LINE__);
    if (s) {
        lt_plan_release(p);
        return NULL;
    }
    p->used = 1;
    return p;
}

/* cublasLtMatmul with the bias epilogue, on the plan for this GEMM. Declines (0) a bias under 16
 * bytes aligned: the heuristic is told the bias pointer, yet a kernel it picks may assume 16 and
 * fault (PyTorch falls back there too); and a GEMM cuBLASLt has no algorithm for, or refuses to
 * run (NOT_SUPPORTED), which its plan remembers so the heuristic is not asked again. */
int cuda_gemm_bias(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                   cudaDataType type, const void *A, int lda, const void *B, int ldb, float *C,
                   int ldc, const float *bias) {
    if (!bias || alignment(bias) < 16) return 0;
    if (!cuda_blas() || m <= 0 || n <= 0) return 1;
    int compute = type == CUDA_R_16BF ? CUBLAS_COMPUTE_32F : blas_compute;
    LtKey key = {ta, tb, m, n, k, lda, ldb, ldc, type, compute, {}};
    const void *operands[4] = {A, B, C, bias};
    for (int i = 0; i < 4; i++) key.align[i] = alignment(operands[i]);
    LtPlan *p = lt_plan(&key, bias);
    if (!p) return 1;
    if (p->plain) return 0;
    float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = lt_set_bias(p, bias);
    if (!s)
        s = cublasLtMatmul(blaslt, p->desc, &one, A, p->la, B, p->lb, &zero, C, p->lc, C, p->lc,
                           &p->algo, blas_workspace, blas_workspace_size, cudaStreamPerThread);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED) { /* not run: the caller's two passes, from now on */
        p->plain = 1;
        return 0;
    }
    cuda_note_blas(s, "cublasLtMatmul (bias epilogue)", __FILE__, __LINE__);
    return 1;
}

/* ---- memory ---- */
static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is the caller's NULL, not a sticky op
                               error */
        return NULL;
    }
    if (cudaMemset(p, 0, bytes) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_free(void *p) {
    CUDA_CHECK(cudaFree(p));
}

/* Small uploads (a batch's ids, types, mask, labels) go through a ring of pinned staging
 * slots as cudaMemcpyAsync: they queue behind the work already launched instead of waiting for
 * it, as a copy from pageable memory does. A slot is refilled only once its last copy is done
 * (its event; in training the step's loss read has long waited for it). Larger uploads (the
 * weights, at load) are plain copies. */
enum { STAGE_SLOTS = 8, STAGE_BYTES = 256 << 10 };
static char *stage_mem; /* pinned, STAGE_SLOTS * STAGE_BYTES; NULL until first use */
static cudaEvent_t stage_done[STAGE_SLOTS];
static int stage_next;

/* Allocates the ring on first use; 0 when pinned memory or events are not to be had. */
static int stage_ready(void) {
    static int tried;
    if (tried) return stage_mem != NULL;
    tried = 1;
    if (cudaMallocHost(&stage_mem, STAGE_SLOTS * STAGE_BYTES) != cudaSuccess) {
        cudaGetLastError(); /* plain copies still work */
        stage_mem = NULL;
        return 0;
    }
    for (int i = 0; i < STAGE_SLOTS; i++)
        if (cudaEventCreateWithFlags(&stage_done[i], cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError();
            while (i--) cudaEventDestroy(stage_done[i]);
            cudaFreeHost(stage_mem);
            stage_mem = NULL;
            return 0;
        }
    return 1;
}

static void cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return;
    if (bytes > STAGE_BYTES || !stage_ready()) {
        CUDA_CHECK(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
        return;
    }
    int slot = stage_next;
    stage_next = (slot + 1) % STAGE_SLOTS;
    char *staged = stage_mem + (size_t)slot * STAGE_BYTES;
    CUDA_CHECK(cudaEventSynchronize(stage_done[slot]));
    memcpy(staged, host_src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, 0));
    CUDA_CHECK(cudaEventRecord(stage_done[slot], 0));
}

static void cuda_download(void *host_dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}

static void cuda_zero(void *p, size_t bytes) { /* queued on the stream: a graph captures it */
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, 0));
}

static void cuda_copy(void *dst, const void *src, size_t bytes) { /* queued, as cuda_zero */
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}

/* Turns the fault bits raised by kernels since the last status() (status() has read them
 * back) into the error message. */
static void cuda_collect_faults(void) {
    int bits = fault_seen ? *fault_seen : 0;
    if (!bits) return;
    *fault_seen = 0;
    CUDA_CHECK(cudaMemset(fault_word, 0, sizeof bits));
    if (bits & FAULT_LABEL)
        CUDA_FAIL("cross_entropy / lm_head_cross_entropy: a label is >= V (the number of classes)");
    if (bits & FAULT_TOKEN_ID) CUDA_FAIL("embedding_forward/backward: a token id is negative");
    if (bits & FAULT_TOKEN_TYPE)
        CUDA_FAIL("embedding_forward/backward: a token type is not 0 or 1");
}

static int cuda_status(LfError *err) {
    if (fault_word) /* read back behind the queued work, so the one sync below covers it */
        CUDA_CHECK(
            cudaMemcpyAsync(fault_seen, fault_word, sizeof *fault_seen, cudaMemcpyDeviceToHost, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    cuda_collect_faults();
    if (!first_error[0]) return 0;
    lf_fail(err, "cuda: %s", first_error);
    first_error[0] = 0;
    return -1;
}

/* ---- the step's scalars (Ops.set_step), in device memory where the kernels read them ----
 * Written by a one-thread kernel, so in stream order and with its value copied at the launch:
 * a graph recorded before runs with the scalars set before its launch. */
static OpsStep *step_dev;
static OpsStep step_set = {0, 1.0f}; /* what step_dev holds once the queue gets there */

__global__ void set_step_kernel(OpsStep *dst, OpsStep s) {
    *dst = s;
}

const OpsStep *cuda_step(void) {
    if (step_dev) return step_dev;
    OpsStep *d = NULL;
    if (cudaMalloc(&d, sizeof *d) != cudaSuccess) {
        CUDA_CHECK(cudaGetLastError());
        return NULL;
    }
    set_step_kernel<<<1, 1>>>(d, step_set);
    CUDA_LAUNCHED("set_step");
    return step_dev = d;
}

static unsigned *counters;

unsigned *cuda_counters(void) {
    if (counters) return counters;
    unsigned *d = NULL;
    size_t bytes = CUDA_COUNTERS * sizeof *d;
    if (cudaMalloc(&d, bytes) != cudaSuccess || cudaMemset(d, 0, bytes) != cudaSuccess) {
        CUDA_CHECK(cudaGetLastError());
        cudaFree(d);
        return NULL;
    }
    return counters = d;
}

static bool capturing(void) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(cudaStreamPerThread, &st) == cudaSuccess &&
           st != cudaStreamCaptureStatusNone;
}

static void cuda_set_step(const OpsStep *s) {
    uint32_t a, b;
    memcpy(&a, &s->grad_scale, sizeof a), memcpy(&b, &step_set.grad_scale, sizeof b);
    if (s->seed == step_set.seed && a == b) return;
    if (capturing()) {
        CUDA_FAIL("set_step: the step's scalars changed while a graph recorded (set them before "
                  "graph_begin)");
        return;
    }
    step_set = *s;
    OpsStep *d = (OpsStep *)cuda_step();
    if (!d) return;
    set_step_kernel<<<1, 1>>>(d, step_set);
    CUDA_LAUNCHED("set_step");
}

/* ---- CUDA Graphs: a training step recorded once per shape and replayed ----
 * A recording is kept in its slot's executable graph: updated in place when the slot held one
 * of the same kernels in the same order (cudaGraphExecUpdate), instantiated anew otherwise
 * (another batch shape, whose GEMMs cuBLAS may run with other kernels). A replay launches it
 * again: every argument as recorded, the step's scalars (the dropout seeds' key, the losses'
 * gradient scale) read from step_dev, so the host does none of the step's launches. Ops that
 * allocate, synchronise or read back cannot be recorded (the model's step has none between
 * model_set_batch and model_read_loss). */
static cudaGraphExec_t graph_exec[OPS_GRAPH_SLOTS];
static OpsGraphCounts graph_counts;

static int cuda_graph_begin(void) {
    /* they allocate: not inside a capture */
    if (!cuda_blas() || !cuda_fault_word() || !cuda_step() || !cuda_counters()) return -1;
    cudaError_t e = cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal);
    CUDA_CHECK(e);
    return e == cudaSuccess ? 0 : -1;
}

/* The recording into the slot's executable graph: updated in place, or instantiated anew. */
static cudaError_t graph_into_slot(cudaGraphExec_t *exec, cudaGraph_t g) {
    cudaGraphExecUpdateResultInfo info;
    if (*exec && cudaGraphExecUpdate(*exec, g, &info) == cudaSuccess) {
        graph_counts.updated++;
        return cudaSuccess;
    }
    cudaGetLastError(); /* a refused update is not an error of the ops */
    if (*exec) cudaGraphExecDestroy(*exec);
    *exec = NULL;
    cudaError_t e = cudaGraphInstantiate(exec, g, 0);
    graph_counts.instantiated += e == cudaSuccess;
    return e;
}

static int cuda_graph_end(int slot) {
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(cudaStreamPerThread, &g);
    if (e == cudaSuccess && slot < 0) { /* dropped */
        CUDA_CHECK(cudaGraphDestroy(g));
        return 0;
    }
    if (e == cudaSuccess && slot >= OPS_GRAPH_SLOTS) e = cudaErrorInvalidValue;
    if (e == cudaSuccess) e = graph_into_slot(&graph_exec[slot], g);
    if (g) cudaGraphDestroy(g);
    if (e == cudaSuccess) e = cudaGraphLaunch(graph_exec[slot], cudaStreamPerThread);
    graph_counts.launches += e == cudaSuccess;
    CUDA_CHECK(e);
    return e == cudaSuccess ? 0 : -1;
}

static int cuda_graph_replay(int slot) {
    if (slot < 0 || slot >= OPS_GRAPH_SLOTS || !graph_exec[slot]) return 1;
    cudaError_t e = cudaGraphLaunch(graph_exec[slot], cudaStreamPerThread);
    graph_counts.launches += e == cudaSuccess;
    graph_counts.replayed += e == cudaSuccess;
    CUDA_CHECK(e);
    return e == cudaSuccess ? 0 : -1;
}

/* A graph in flight is freed when it completes. C linkage: attention_cudnn.h declares it. */
extern "C" void cuda_graph_drop(void) {
    for (int i = 0; i < OPS_GRAPH_SLOTS; i++) {
        if (graph_exec[i]) CUDA_CHECK(cudaGraphExecDestroy(graph_exec[i]));
        graph_exec[i] = NULL;
    }
}

static void cuda_graph_counts(OpsGraphCounts *out) {
    *out = graph_counts;
}

/* No GPU and no driver at all are "0 devices"; a driver that is there but cannot run this
 * build is an error, so "auto" does not quietly train on the CPU and GPU tests do not skip. */
int ops_cuda_device_count(LfError *err) {
    int n = 0, driver = 0, runtime = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess) return n;
    cudaGetLastError();
    cudaDriverGetVersion(&driver); /* 0 when no driver is installed */
    cudaRuntimeGetVersion(&runtime);
    if (e == cudaErrorNoDevice || driver == 0) return 0;
    if (e == cudaErrorInsufficientDriver)
        return lf_fail(err,
                       "CUDA driver too old for this build: the driver supports CUDA %d.%d, "
                       "loraft was built with CUDA %d.%d (update the NVIDIA driver, or use "
                       "--device cpu)",
                       driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
    return lf_fail(err, "CUDA cannot list devices: %s (driver CUDA %d.%d, runtime %d.%d)",
                   cudaGetErrorString(e), driver / 1000, driver % 1000 / 10, runtime / 1000,
                   runtime % 1000 / 10);
}

extern "C" const Ops ops_cuda = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .zero = cuda_zero,
    .copy = cuda_copy,
    .status = cuda_status,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .embedding_lora_forward = cuda_embedding_lora_forward,
    .embedding_lora_backward = cuda_embedding_lora_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .residual_norm_forward = cuda_residual_norm_forward,
    .head_norm_forward = cuda_head_norm_forward,
    .glu_forward = cuda_glu_forward,
    .glu_backward = cuda_glu_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .bias_backward = cuda_bias_backward,
    .dequantize_rows = cuda_dequantize_rows,
    .dequantize_rows_bf16 = cuda_dequantize_rows_bf16,
    .round_bf16_many = cuda_round_bf16_many,
    .matmul_forward_bf16 = cuda_matmul_forward_bf16,
    .matmul_backward_bf16 = cuda_matmul_backward_bf16,
    .matmul_bf16_scratch = cuda_matmul_bf16_scratch,
    .lora_down_bf16 = cuda_lora_down_bf16,
    .set_precision = cuda_set_precision,
    .best_precision = cuda_best_precision,
    .set_attention = cuda_set_attention,
    .set_step = cuda_set_step,
    .lora_forward = cuda_lora_forward,
    .lora_backward = cuda_lora_backward,
    .lora_backward_bf16 = cuda_lora_backward_bf16,
    .lora_dinp_bf16 = cuda_lora_dinp_bf16,
    .dora_norm = cuda_dora_norm,
    .dora_forward = cuda_dora_forward,
    .dora_backward = cuda_dora_backward,
    .lora_dropout_rest = cuda_lora_dropout_rest,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .attention_scratch = cuda_attention_scratch,
    .attention_saved = cuda_attention_saved,
    .attention_saved_out = cuda_attention_saved_out,
    .attention_cached = cuda_attention_cached,
    .attention_cached_scratch = cuda_attention_cached_scratch,
    .cache_write = cuda_cache_write,
    .activation_forward = cuda_activation_forward,
    .activation_backward = cuda_activation_backward,
    .dropout_forward = cuda_dropout_forward,
    .uniform_noise = cuda_uniform_noise,
    .dropout_backward = cuda_dropout_backward,
    .add = cuda_add,
    .axpy = cuda_axpy,
    .scale = cuda_scale,
    .first_token_forward = cuda_first_token_forward,
    .first_token_backward = cuda_first_token_backward,
    .cross_entropy = cuda_cross_entropy,
    .lm_head_cross_entropy = cuda_lm_head_cross_entropy,
    .dpo_loss = cuda_dpo_loss,
    .reward_loss = cuda_reward_loss,
    .grpo_weights = cuda_grpo_weights,
    .adamw_step = cuda_adamw_step,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_replay = cuda_graph_replay,
    .graph_drop = cuda_graph_drop,
    .graph_counts = cuda_graph_counts,
#ifdef LORAFT_HAVE_NCCL
    .group_id = cuda_group_id,
    .group_join = cuda_group_join,
    .group_sum = cuda_group_sum,
    .group_sum_f64 = cuda_group_sum_f64,
    .group_leave = cuda_group_leave,
#else /* no data parallel: dp_join says so */
    .group_id = NULL,
    .group_join = NULL,
    .group_sum = NULL,
    .group_sum_f64 = NULL,
    .group_leave = NULL,
#endif
};
