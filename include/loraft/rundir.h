/* rundir.h: a training run's output directory (train.output_dir), locked and crash-safe.
 *
 *   OUT/.lock                      flock'ed by the run that owns OUT; holds its pid
 *   OUT/train_config.json          the effective config
 *   OUT/metrics.jsonl              the run log
 *   OUT/checkpoints/step-N/        one complete checkpoint, never changed once named
 *   OUT/checkpoints/step-N.links/  last -> ../step-N, best -> ../step-M: the pair as of
 *                                  step N (a checkpoint is its own best until an
 *                                  evaluation picked one)
 *   OUT/head -> checkpoints/step-N.links   replaced atomically at every commit
 *   OUT/last -> head/last          created with the first checkpoint
 *   OUT/best -> head/best          created after the first evaluation
 *
 * A checkpoint is written into checkpoints/step-N.tmp/ (every file fsynced); the
 * directory is fsynced, its links directory written and fsynced, both renamed into place
 * and checkpoints/ fsynced; then OUT/head is replaced (symlink + rename) and OUT fsynced.
 * That one rename moves last and best together, so at every instant both are complete
 * checkpoints and last's trainer_state.json names best's directory. Checkpoints head
 * does not reach are removed after it moved, and when a run opens OUT (clearing what a
 * crash left behind). */
#pragma once
#include <stddef.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RUNDIR_CHECKPOINTS "checkpoints"

typedef enum RunDirMode {
    RUNDIR_FRESH,     /* OUT must be empty (or absent) */
    RUNDIR_OVERWRITE, /* loraft's files in OUT are removed first; others are left alone */
    RUNDIR_RESUME,    /* OUT's checkpoints and log are kept */
} RunDirMode;

typedef struct RunDir {
    char path[4096];
    int lock_fd; /* -1 when not open */
} RunDir;

/* Creates OUT (mkdir -p) and locks it; a second run gets an error naming the pid of the
 * first. Then applies mode and removes unreferenced checkpoints. */
int rundir_open(RunDir *d, const char *path, RunDirMode mode, LfError *err);
void rundir_close(RunDir *d); /* releases the lock; safe on a directory never opened */

/* Names the checkpoint of step (step-N, or step-N.K while a pointer still uses step-N)
 * and creates its empty temp directory tmp (cap bytes). */
int rundir_begin(const RunDir *d, int step, char *name, size_t name_cap, char *tmp, size_t cap,
                 LfError *err);

/* Commits the filled temp directory of name: best is "checkpoints/step-M" (name itself
 * allowed); with link_best, OUT/best is created if absent. */
int rundir_commit(const RunDir *d, const char *name, const char *best, int link_best, LfError *err);

/* Creates OUT/best -> last/best if absent (repairs a crash right after the first best). */
int rundir_link_best(const RunDir *d, LfError *err);

/* Whether the checkpoint directory dir is one of OUT's checkpoints. */
int rundir_holds(const RunDir *d, const char *dir);

/* "checkpoints/<name>" with a plain name (no '/', not "." or ".."), or "". */
int rundir_valid_checkpoint_ref(const char *ref);

#ifdef __cplusplus
}
#endif
