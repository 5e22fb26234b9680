/* progress.c: the progress line and the JSONL run log (see progress.h). Only this file
 * decides what a terminal sees; it never reads input and never moves the cursor beyond
 * its own line. */
#include "loraft/progress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(Progress *p, FILE *out, const char *label, int total) {
    memset(p, 0, sizeof *p);
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->tty = isatty(fileno(out));
    p->loss = NAN;
    p->t_start = p->t_drawn = now_s();
}

/* "1:02:03" or "2:03" */
static void format_time(double s, char *buf, size_t cap) {
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* The part both kinds of output share: "12/40 (30%) loss 0.6931 | 5.2k tok/s". */
static void format_stats(const Progress *p, double elapsed, char *buf, size_t cap) {
    double rate = elapsed > 0 ? (double)p->tokens / elapsed : 0;
    int n =
        snprintf(buf, cap, "%d/%d (%d%%)", p->done, p->total, (int)(100.0 * p->done / p->total));
    if (!isnan(p->loss)) n += snprintf(buf + n, cap - (size_t)n, " loss %.4f", p->loss);
    if (p->tokens > 0)
        snprintf(buf + n, cap - (size_t)n, rate >= 1000 ? " | %.1fk tok/s" : " | %.0f tok/s",
                 rate >= 1000 ? rate / 1000 : rate);
}

static void draw(Progress *p, double t, int final) {
    char stats[160], elapsed[32], eta[32];
    double e = t - p->t_start;
    format_stats(p, e, stats, sizeof stats);
    format_time(e, elapsed, sizeof elapsed);
    format_time(p->done > 0 ? e * (p->total - p->done) / p->done : 0, eta, sizeof eta);
    if (p->tty) {
        char bar[21];
        int fill = (int)(20.0 * p->done / p->total);
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        fprintf(p->out, "\r\033[2K%s [%s] %s | %s %s%s", p->label, bar, stats,
                final ? "done in" : "eta", final ? elapsed : eta, final ? "\n" : "");
    } else if (final) {
        fprintf(p->out, "%s: %s | done in %s\n", p->label, stats, elapsed);
    } else {
        fprintf(p->out, "%s: %s | elapsed %s | eta %s\n", p->label, stats, elapsed, eta);
    }
    fflush(p->out);
    p->t_drawn = t;
    p->last_printed = p->done;
}

void progress_update(Progress *p, int done, double loss, long tokens) {
    p->done = done < p->total ? done : p->total;
    p->loss = loss;
    p->tokens = tokens;
    double t = now_s();
    int due;
    if (p->tty)
        due = t - p->t_drawn >= 0.1 || p->done == p->total;
    else /* every 10% of total, or every 30 s */
        due = p->done * 10 / p->total > p->last_printed * 10 / p->total || t - p->t_drawn >= 30;
    if (due) draw(p, t, 0);
}

void progress_finish(Progress *p) {
    draw(p, now_s(), 1);
}

int runlog_open(RunLog *l, const char *path, LfError *err) {
    snprintf(l->path, sizeof l->path, "%s", path);
    l->f = fopen(path, "a");
    if (!l->f) return lf_fail(err, "%s: cannot open for appending: %s", path, strerror(errno));
    return 0;
}

int runlog_write_json(RunLog *l, const cJSON *obj, LfError *err) {
    if (!cJSON_IsObject(obj))
        return lf_fail(err, "%s: a log record must be a JSON object", l->path);
    char *line = cJSON_PrintUnformatted(obj);
    if (!line) return lf_fail(err, "%s: out of memory", l->path);
    int bad = fprintf(l->f, "%s\n", line) < 0 || fflush(l->f) != 0;
    free(line);
    return bad ? lf_fail(err, "%s: write failed: %s", l->path, strerror(errno)) : 0;
}

int runlog_write(RunLog *l, const char *json_object_text, LfError *err) {
    cJSON *obj = cJSON_ParseWithOpts(json_object_text, NULL, 1);
    if (!obj)
        return lf_fail(err, "%s: log record is not valid JSON: %.60s", l->path, json_object_text);
    int rc = runlog_write_json(l, obj, err);
    cJSON_Delete(obj);
    return rc;
}

void runlog_close(RunLog *l) {
    if (l->f) fclose(l->f);
    l->f = NULL;
}
