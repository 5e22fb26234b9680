/* data_parallel.h: one training run, or one evaluation, on several GPUs of this machine, a
 * process each.
 *
 * dp_run forks the processes before any of them touches CUDA (a CUDA context does not survive
 * a fork), runs fn in each as one rank, and waits for them all. The calling process must run
 * one thread (no OpenMP parallel loop before it: its team would not survive the fork either),
 * else dp_run refuses. Rank 0 writes to out, which
 * must be a file with a descriptor (stdout, a regular file: it is flushed before the fork and
 * shared), the others to /dev/null. A rank that fails makes the others stop: they may be
 * waiting for it in a collective, which would never end. dp_run then fails with the failed
 * rank's message; where several failed on their own within a second of each other (a loss that
 * all ranks saw go NaN), with the lowest rank's.
 *
 *   rank r:  fn(self, out, arg) -> run_open -> dp_join(self, ops) -> model on device r -> ...
 *
 * dp_join makes the process rank r of the group on device r (Ops.group_join): rank 0 creates
 * the group's id and hands it to the others through pipes set up before the fork. One process
 * (ranks 1) has no group and dp_join does nothing. */
#pragma once
#include <stdio.h>

#include "loraft/error.h"
#include "loraft/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DP_MAX_RANKS 64

typedef struct DpRank {
    int rank, ranks;
    /* the group id's pipes: rank 0 writes to id_fd[1 .. ranks - 1], rank r > 0 reads
     * id_fd[r]; -1 where this process has no end */
    int id_fd[DP_MAX_RANKS];
    int followed; /* rank 0's dp_join failed because a rank it hands the id to had failed */
} DpRank;

/* The one process of a run without a group. */
static inline DpRank dp_single(void) {
    DpRank d = {0, 1, {0}, 0};
    for (int i = 0; i < DP_MAX_RANKS; i++) d.id_fd[i] = -1;
    return d;
}

typedef int (*DpMain)(DpRank *self, FILE *out, void *arg, LfError *err);

/* Runs fn as ranks 0 .. ranks - 1 (2 .. DP_MAX_RANKS), each in a process of its own; 0 when
 * every rank returned 0. */
int dp_run(int ranks, DpMain fn, void *arg, FILE *out, LfError *err);

/* In a rank, before anything else uses the device: joins the group on device self->rank. */
int dp_join(DpRank *self, const Ops *ops, LfError *err);

#ifdef __cplusplus
}
#endif
