/* emu_sched.cpp: the thread scheduler of the CUDA emulation (tests/cuda_emu). A launch runs
 * its blocks one after another (in a seeded random order); the threads of a block are fibers
 * on a minimal x86-64 context switch that give way only at __syncthreads and at warp
 * collectives. Which runnable thread goes next is drawn at random from LORAFT_EMU_SEED (0 or
 * unset: thread order), so any interleaving a GPU may produce between two barriers can come
 * up, and a missing barrier, a shared-memory race or a divergent shuffle changes the result
 * or aborts with a message. A thread that ends without blocking hands its stack straight to
 * the next fresh thread (no switch), so element-wise kernels cost a function call per thread.
 * Shared memory starts every block filled with 0xff bytes (NaN floats, -1 ints).
 *
 * Deliberately not: preemptive (a thread runs until it blocks), parallel (one OS thread;
 * static __shared__ variables are plain statics), or portable beyond x86-64 SysV. Carries
 * AddressSanitizer fiber annotations so ASan follows the stack switches. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cuda_runtime.h"
#include "mma_ptx.h"

/* The build compiles this file without ASan instrumentation (it is the hot path) and
 * defines EMU_ASAN=1 so that it still tells the ASan runtime about every stack switch. */
#ifndef EMU_ASAN
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif
#endif
#if EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* emu_switch(save, next): saves the callee-saved registers and the stack pointer of the
 * running context into *save and resumes the context whose stack pointer is next. */
extern "C" void emu_switch(void **save, void *next);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

/* ---- state ---- */
enum State : uint8_t { FRESH, READY, RUNNING, AT_BARRIER, AT_WARP, EXITED };
static const char *const op_names[] = {
    "__syncwarp",    "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
    "__ballot_sync", "__any_sync",  "__all_sync",     "ldmatrix",         "mma.sync"};

struct Thread {
    uint3 idx;
    unsigned tid;
    State state;
    uint8_t op, size; /* the collective it waits at (AT_WARP) */
    unsigned mask;
    int arg, width;
    uint64_t value, result;
    const char *site; /* of the barrier or collective it waits at */
    void *sp;         /* saved context while suspended */
    char *stack;      /* owned from first run to exit */
};

/* Lanes of one warp by where they are, as bit masks (the per-thread fields hold the rest). */
struct Warp {
    unsigned waiting, at_barrier, exited;
};

const uint3 *emu_thread_idx;
uint3 emu_block_idx;
dim3 emu_block_dim, emu_grid_dim;

static struct {
    const char *kernel;
    void (*entry)(void *);
    void *ctx;
    Thread *thr;
    Warp *warps;
    unsigned n, cap;
    unsigned *ring, ring_mask, head, count; /* runnable threads (FRESH or READY) */
    unsigned live, at_barrier;
    const char *barrier_site;
    Thread *cur;
    void *sched_sp;
    char *dyn_shared;
    size_t dyn_bytes;
    uint64_t rng;
    int random, in_kernel;
} S;

/* ---- messages ---- */
[[noreturn]] __attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuda-emu: %s: block (%u,%u,%u): %s\n", S.kernel ? S.kernel : "?",
            emu_block_idx.x, emu_block_idx.y, emu_block_idx.z, msg);
    fflush(stderr);
    abort();
}

static const char *who(const Thread *t) {
    static char buf[4][64];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 64, "thread (%u,%u,%u) [warp %u lane %u]", t->idx.x, t->idx.y, t->idx.z,
             t->tid / 32, t->tid % 32);
    return b;
}

static const char *where(const Thread *t) {
    static char buf[2][256];
    static int k;
    char *b = buf[k++ & 1];
    if (t->state == AT_BARRIER)
        snprintf(b, 256, "__syncthreads at %s", t->site);
    else if (t->state == AT_WARP)
        snprintf(b, 256, "%s(mask 0x%08x, %d-byte value) at %s", op_names[t->op], t->mask,
                 (int)t->size, t->site);
    else
        snprintf(b, 256, "%s", t->state == EXITED ? "exited" : "running");
    return b;
}

/* ---- stacks: mmap'd with a guard page below, reused for the whole process ---- */
enum { STACK_BYTES = 256 << 10, GUARD = 4096 };
static char **free_stacks;
static unsigned n_free, cap_free;

static char *stack_get(void) {
    if (n_free) return free_stacks[--n_free];
    char *m = (char *)mmap(NULL, STACK_BYTES + GUARD, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) die("cannot map a fiber stack");
    mprotect(m, GUARD, PROT_NONE);
    return m + GUARD;
}

static void stack_put(char *s) {
    if (n_free == cap_free) {
        cap_free = cap_free ? 2 * cap_free : 64;
        free_stacks = (char **)realloc(free_stacks, cap_free * sizeof *free_stacks);
    }
    free_stacks[n_free++] = s;
}

/* ---- AddressSanitizer: tell it which stack runs ---- */
static const void *main_bottom;
static size_t main_size;
static void asan_start(void **fake, const void *bottom, size_t size) {
#if EMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}
static void asan_finish(void *fake, const void **bottom, size_t *size) {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

/* ---- run queue ---- */
static uint64_t rng_next(void) { /* xorshift64* */
    S.rng ^= S.rng >> 12, S.rng ^= S.rng << 25, S.rng ^= S.rng >> 27;
    return S.rng * 0x2545F4914F6CDD1Dull;
}

static void make_ready(Thread *t) {
    t->state = t->state == FRESH ? FRESH : READY;
    S.ring[(S.head + S.count++) & S.ring_mask] = t->tid;
}

/* Takes the runnable thread to go next out of the queue: the first, or a random one. */
static Thread *draw(void) {
    if (!S.count) return NULL;
    if (S.random && S.count > 1) {
        unsigned j = (S.head + (unsigned)((rng_next() >> 32) * S.count >> 32)) & S.ring_mask;
        unsigned tmp = S.ring[j];
        S.ring[j] = S.ring[S.head], S.ring[S.head] = tmp;
    }
    Thread *t = &S.thr[S.ring[S.head]];
    S.head = (S.head + 1) & S.ring_mask, S.count--;
    return t;
}

static void set_current(Thread *t) {
    S.cur = t;
    emu_thread_idx = &t->idx;
    t->state = RUNNING;
}

/* ---- fibers ---- */
static void release_barrier(void) {
    for (unsigned i = 0; i < S.n; i++)
        if (S.thr[i].state == AT_BARRIER) make_ready(&S.thr[i]);
    for (unsigned i = 0; i < (S.n + 31) / 32; i++) S.warps[i].at_barrier = 0;
    S.at_barrier = 0;
}

/* Aborts when a lane of t's warp waits at a collective that needs t, which t (now at
 * `doing`) will never reach. */
static void check_no_lane_waits_for(const Thread *t, const char *doing) {
    unsigned base = t->tid & ~31u, lane = t->tid & 31u;
    for (unsigned w = S.warps[t->tid >> 5].waiting & ~(1u << lane); w; w &= w - 1) {
        const Thread *o = &S.thr[base + (unsigned)__builtin_ctz(w)];
        if (o->mask >> lane & 1u)
            die("%s %s while %s waits for it at %s (divergent warp collective)", who(t), doing,
                who(o), where(o));
    }
}

static void thread_exited(Thread *t) {
    if (unsigned n = emu_copy_count[t->tid]) /* mma_ptx.h: they would land in the next block */
        die("%s exited with %u cp.async copies it never waited for", who(t), n);
    t->state = EXITED;
    S.warps[t->tid >> 5].exited |= 1u << (t->tid & 31u);
    S.live--;
    check_no_lane_waits_for(t, "exited");
    if (S.at_barrier && S.at_barrier == S.live) release_barrier();
}

static void *fiber_init(char *stack);

/* Leaves the running context for thread n (already drawn), or for the scheduler when n is
 * NULL. save: where this context is kept until it runs again; NULL when it is done (its
 * stack is then free, so n must not be FRESH: that would take this very stack). */
static void switch_to(Thread *n, void **save) {
    if (n && save && n == S.cur) { /* drawn itself: carry on */
        n->state = RUNNING;
        return;
    }
    void *sp = S.sched_sp, *fake = NULL, *dead;
    const void *bottom = main_bottom;
    size_t size = main_size;
    if (n) {
        if (n->state == FRESH) n->stack = stack_get(), n->sp = fiber_init(n->stack);
        set_current(n);
        sp = n->sp, bottom = n->stack, size = STACK_BYTES;
    }
    asan_start(save ? &fake : NULL, bottom, size);
    emu_switch(save ? save : &dead, sp);
    asan_finish(fake, NULL, NULL);
}

/* Every fiber starts here and never returns: it runs threads until one of them blocks. */
static void fiber_main(void) {
    asan_finish(NULL, main_size ? NULL : &main_bottom, main_size ? NULL : &main_size);
    for (;;) {
        Thread *t = S.cur;
        S.entry(S.ctx);
        thread_exited(t);
        Thread *n = draw();
        if (n && n->state == FRESH) { /* start it on this stack: no switch */
            n->stack = t->stack, t->stack = NULL;
            set_current(n);
            continue;
        }
        /* the stack is free once we are off it: the next stack_get runs on another stack */
        stack_put(t->stack);
        t->stack = NULL;
        switch_to(n, NULL);
        __builtin_unreachable();
    }
}

static void *fiber_init(char *stack) {
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;                             /* fiber_main's return address: ends stack walks */
    *--sp = (void *)&fiber_main;              /* where emu_switch returns to */
    for (int i = 0; i < 6; i++) *--sp = NULL; /* rbp rbx r12-r15 */
    return sp;
}

/* The calling thread (state already set) gives way; returns when it runs again. */
static void block_current(void) {
    switch_to(draw(), &S.cur->sp);
}

static void run_block(void) {
    Thread *t = draw();
    if (t) {
        t->stack = stack_get(), t->sp = fiber_init(t->stack);
        set_current(t);
        void *fake = NULL;
        asan_start(&fake, t->stack, STACK_BYTES);
        emu_switch(&S.sched_sp, t->sp);
        asan_finish(fake, NULL, NULL);
    }
    if (S.live) {
        for (unsigned i = 0; i < S.n; i++)
            if (S.thr[i].state != EXITED)
                fprintf(stderr, "cuda-emu:   %s: %s\n", who(&S.thr[i]), where(&S.thr[i]));
        die("deadlock: %u threads wait and none can run", S.live);
    }
}

/* ---- barriers and collectives ---- */
void emu_syncthreads(const char *site) {
    Thread *t = S.cur;
    if (!S.in_kernel) die("__syncthreads outside a kernel");
    t->state = AT_BARRIER, t->site = site;
    S.warps[t->tid >> 5].at_barrier |= 1u << (t->tid & 31u);
    check_no_lane_waits_for(t, "waits at __syncthreads");
    if (S.at_barrier++ == 0)
        S.barrier_site = site;
    else if (S.barrier_site != site && strcmp(S.barrier_site, site))
        die("divergent __syncthreads: %s waits at %s, others at %s", who(t), site, S.barrier_site);
    if (S.at_barrier == S.live) release_barrier();
    block_current();
}

static void complete_warp_op(unsigned base, unsigned mask) {
    uint64_t votes = 0;
    for (unsigned l = 0; l < 32; l++)
        if (mask >> l & 1u) votes |= (uint64_t)(S.thr[base + l].value != 0) << l;
    for (unsigned l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        Thread *o = &S.thr[base + l];
        unsigned w = (unsigned)o->width, seg = l & ~(w - 1), src = l;
        switch (o->op) {
        case EMU_SHFL_IDX:
            src = seg + ((unsigned)o->arg & (w - 1));
            break;
        case EMU_SHFL_UP:
            src = l >= seg + (unsigned)o->arg ? l - (unsigned)o->arg : l;
            break;
        case EMU_SHFL_DOWN:
            src = l + (unsigned)o->arg < seg + w ? l + (unsigned)o->arg : l;
            break;
        case EMU_SHFL_XOR:
            src = (l ^ (unsigned)o->arg) < seg + w ? l ^ (unsigned)o->arg : l;
            break;
        case EMU_BALLOT:
            o->result = votes;
            break;
        case EMU_ANY:
            o->result = votes != 0;
            break;
        case EMU_ALL:
            o->result = votes == mask;
            break;
        default:
            break;
        }
        if (o->op >= EMU_SHFL_IDX && o->op <= EMU_SHFL_XOR) {
            if (src > 31 || !(mask >> src & 1u))
                die("%s: %s reads lane %u, which is not in the mask 0x%08x", op_names[o->op],
                    who(o), src, mask);
            o->result = S.thr[base + src].value;
        }
        make_ready(o);
    }
}

uint64_t emu_warp_op(EmuWarpOp op, unsigned mask, uint64_t value, int size, int arg, int width,
                     const char *site) {
    Thread *t = S.cur;
    if (!S.in_kernel) die("%s outside a kernel", op_names[op]);
    unsigned base = t->tid & ~31u, lane = t->tid & 31u;
    t->state = AT_WARP, t->op = (uint8_t)op, t->size = (uint8_t)size, t->mask = mask;
    t->value = value, t->arg = arg, t->width = width, t->site = site;
    if (!(mask >> lane & 1u))
        die("%s calls %s with mask 0x%08x, which does not name its own lane (at %s)", who(t),
            op_names[op], mask, site);
    if (width < 1 || width > 32 || (width & (width - 1)))
        die("%s: width %d is not a power of two up to 32 (at %s)", op_names[op], width, site);
    Warp *w = &S.warps[t->tid >> 5];
    unsigned present = base + 32 <= S.n ? ~0u : (1u << (S.n - base)) - 1u;
    if (mask & ~present)
        die("%s at %s: mask 0x%08x names lane %d, which does not exist (the block has %u "
            "threads: a partial warp)",
            op_names[op], site, mask, __builtin_ctz(mask & ~present), S.n);
    if (unsigned gone = mask & (w->exited | w->at_barrier)) {
        const Thread *o = &S.thr[base + (unsigned)__builtin_ctz(gone)];
        die("%s waits at %s for %s, which is %s (divergent warp collective)", who(t), where(t),
            who(o), where(o));
    }
    /* lanes of the mask already waiting must wait at this same collective; one stands for
     * all (a mismatch among the others was checked when they arrived, or ends in the
     * deadlock report) */
    if (unsigned others = mask & w->waiting) {
        const Thread *o = &S.thr[base + (unsigned)__builtin_ctz(others)];
        if (o->op != op || o->mask != mask || o->size != size)
            die("%s waits at %s, but %s waits at %s (divergent warp collective)", who(t), where(t),
                who(o), where(o));
    }
    w->waiting |= 1u << lane;
    if ((w->waiting & mask) == mask) {
        w->waiting &= ~mask;
        complete_warp_op(base, mask);
    }
    block_current();
    return t->result;
}

unsigned emu_activemask(void) {
    unsigned base = S.cur->tid & ~31u, m = 0;
    for (unsigned l = 0; l < 32 && base + l < S.n; l++)
        if (S.thr[base + l].state != EXITED) m |= 1u << l;
    return m;
}

/* ---- shared memory ---- */
static struct {
    void *p;
    size_t bytes;
} * shared_vars;
static unsigned n_shared, cap_shared;

bool emu_shared_register(void *p, size_t bytes) {
    if (n_shared == cap_shared) {
        cap_shared = cap_shared ? 2 * cap_shared : 32;
        shared_vars = (decltype(shared_vars))realloc(shared_vars, cap_shared * sizeof *shared_vars);
    }
    shared_vars[n_shared].p = p, shared_vars[n_shared++].bytes = bytes;
    memset(p, 0xff, bytes); /* first use: this block has not touched it yet */
    return true;
}

void *emu_dynamic_shared(void) {
    return S.dyn_shared;
}

/* ---- launch ---- */
static unsigned long long gcd(unsigned long long a, unsigned long long b) {
    while (b) {
        unsigned long long r = a % b;
        a = b, b = r;
    }
    return a;
}

int emu_run(const char *kernel, const void *fn, void (*entry)(void *), void *ctx, dim3 g, dim3 b,
            size_t shmem) {
    if (S.in_kernel) die("kernel %s launched from device code (not emulated)", kernel);
    unsigned long long nthreads = (unsigned long long)b.x * b.y * b.z;
    if (!nthreads || nthreads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || !g.x || !g.y ||
        !g.z || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
        return cudaErrorInvalidConfiguration;
    if (int e = emu_launch_resources(kernel, fn, (unsigned)nthreads, shmem)) return e;
    static int seeded;
    if (!seeded) {
        const char *s = getenv("LORAFT_EMU_SEED");
        uint64_t seed = s ? strtoull(s, NULL, 0) : 0;
        S.random = seed != 0;
        S.rng = seed * 0x9E3779B97F4A7C15ull | 1;
        seeded = 1;
    }
    S.kernel = kernel, S.entry = entry, S.ctx = ctx, S.n = (unsigned)nthreads;
    if (S.n > S.cap) {
        free(S.thr), free(S.ring), free(S.warps);
        S.thr = (Thread *)calloc(S.n, sizeof *S.thr);
        S.warps = (Warp *)calloc((S.n + 31) / 32, sizeof *S.warps);
        for (S.ring_mask = 1; S.ring_mask < S.n; S.ring_mask *= 2) {
        }
        S.ring = (unsigned *)calloc(S.ring_mask, sizeof *S.ring);
        S.ring_mask--;
        S.cap = S.n;
    }
    for (unsigned i = 0; i < S.n; i++)
        S.thr[i].tid = i, S.thr[i].idx = uint3{i % b.x, i / b.x % b.y, i / (b.x * b.y)};
    S.dyn_bytes = shmem;
    /* 256-byte aligned as on a GPU (ldmatrix needs 16); malloc(0): any access is an ASan error */
    void *dyn = NULL;
    if (shmem ? posix_memalign(&dyn, 256, shmem) : !(dyn = malloc(0))) die("out of memory");
    S.dyn_shared = (char *)dyn;
    emu_block_dim = b, emu_grid_dim = g;
    unsigned long long blocks = (unsigned long long)g.x * g.y * g.z;
    /* blocks in the order k -> (k * stride + offset) mod blocks, stride coprime to blocks */
    unsigned long long stride = 1, offset = 0;
    if (S.random && blocks > 1 && blocks < (1ull << 32)) {
        offset = rng_next() % blocks;
        do stride = 1 + rng_next() % (blocks - 1);
        while (gcd(stride, blocks) != 1);
    }
    S.in_kernel = 1;
    for (unsigned long long k = 0; k < blocks; k++) {
        unsigned long long id = (k * stride + offset) % blocks;
        emu_block_idx = uint3{(unsigned)(id % g.x), (unsigned)(id / g.x % g.y),
                              (unsigned)(id / ((unsigned long long)g.x * g.y))};
        for (unsigned i = 0; i < n_shared; i++)
            memset(shared_vars[i].p, 0xff, shared_vars[i].bytes);
        if (shmem) memset(S.dyn_shared, 0xff, shmem);
        S.head = S.count = 0;
        for (unsigned i = 0; i < S.n; i++) {
            S.thr[i].state = FRESH;
            S.ring[S.count++] = i;
        }
        memset(S.warps, 0, (S.n + 31) / 32 * sizeof *S.warps);
        S.live = S.n, S.at_barrier = 0;
        run_block();
    }
    S.in_kernel = 0;
    free(S.dyn_shared);
    S.dyn_shared = NULL;
    S.kernel = NULL;
    return 0;
}
