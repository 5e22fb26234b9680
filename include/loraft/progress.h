/* progress.h: what a long loop shows while it runs, and the run's JSONL metrics log.
 * Progress draws one redrawn bar line on a terminal and plain, escape-free lines
 * otherwise (log files, CI). RunLog appends one JSON object per line, flushed at once,
 * so a crashed run keeps every record written before the crash. */
#pragma once
#include <stdio.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Progress {
    FILE *out;
    char label[48];
    int total, done, tty, last_printed;
    long tokens;    /* tokens so far */
    double loss;    /* latest loss; NAN = none yet */
    double t_start; /* monotonic seconds */
    double t_drawn; /* last redraw (terminal) or last line (not a terminal) */
} Progress;

/* Starts counting `total` units (steps, batches) under `label`; out is usually stderr. */
void progress_start(Progress *p, FILE *out, const char *label, int total);

/* done: units finished so far (1..total); loss: latest loss, NAN if none; tokens: tokens
 * processed so far. On a terminal the line is redrawn at most ~10 times a second; else a
 * line is written each time another 10% is done or 30 s have passed. */
void progress_update(Progress *p, int done, double loss, long tokens);

/* Draws the final state and ends the line: "label: 20/20 (100%) ... done in 1:02". */
void progress_finish(Progress *p);

typedef struct RunLog {
    FILE *f;
    char path[4096];
} RunLog;

struct cJSON;

/* Opens path for appending (a resumed run continues its log). */
int runlog_open(RunLog *l, const char *path, LfError *err);

/* Appends one JSON object given as text (re-printed compactly onto one line) and flushes.
 * Text that is not a JSON object is an error. */
int runlog_write(RunLog *l, const char *json_object_text, LfError *err);

/* Same for an object built with cJSON. */
int runlog_write_json(RunLog *l, const struct cJSON *obj, LfError *err);

/* Closes the file; safe on a log that failed to open. */
void runlog_close(RunLog *l);

#ifdef __cplusplus
}
#endif
