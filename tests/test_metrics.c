/* test_metrics.c: classification metrics on small hand-worked cases, then the progress
 * line's non-terminal output and the JSONL run log. Expected accuracy/F1 values were
 * worked out by hand and cross-checked once with scikit-learn 1.9.1 (accuracy_score,
 * f1_score with average="binary" / "macro", default zero_division). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "loraft/metrics.h"
#include "loraft/progress.h"

static void check_case(const int *pred, const int *label, int n, int classes, double acc,
                       double f1) {
    ClassMetrics m;
    metrics_classification(pred, label, n, classes, 0.5, &m);
    CHECK(m.n == n && m.loss == 0.5);
    CHECK_CLOSE(m.accuracy, acc, 1e-12, 0);
    CHECK_CLOSE(m.f1, f1, 1e-12, 0);
}

static void test_metrics(void) {
    /* binary, all correct */
    int p1[] = {0, 1, 1, 0}, l1[] = {0, 1, 1, 0};
    check_case(p1, l1, 4, 2, 1.0, 1.0);
    /* binary, no positive predicted: tp = 0 -> F1 0 */
    int p2[] = {0, 0, 0, 0}, l2[] = {1, 0, 1, 0};
    check_case(p2, l2, 4, 2, 0.5, 0.0);
    /* binary, no positive anywhere: F1 undefined -> 0 (zero_division) */
    int p3[] = {0, 0, 0}, l3[] = {0, 0, 0};
    check_case(p3, l3, 3, 2, 1.0, 0.0);
    /* binary: tp 2, fp 1, fn 1 -> F1 4/6 */
    int p4[] = {1, 0, 0, 1, 1, 0}, l4[] = {1, 1, 0, 0, 1, 0};
    check_case(p4, l4, 6, 2, 4.0 / 6, 4.0 / 6);
    /* 3 classes: F1 per class 4/5, 0, 0 -> macro 4/15 */
    int p5[] = {0, 2, 1, 0, 0, 1}, l5[] = {0, 1, 2, 0, 1, 2};
    check_case(p5, l5, 6, 3, 2.0 / 6, 4.0 / 15);
    /* 4 classes, only 0 and 1 occur: macro over those two, (2/3 + 4/5) / 2 */
    int p6[] = {0, 1, 1, 1}, l6[] = {0, 1, 0, 1};
    check_case(p6, l6, 4, 4, 0.75, (2.0 / 3 + 4.0 / 5) / 2);
    /* 4 classes, a class only predicted (3) still counts: (0 + 0 + 1 + 0) / 4 */
    int p7[] = {3, 3, 2}, l7[] = {0, 1, 2};
    check_case(p7, l7, 3, 4, 1.0 / 3, 0.25);
    /* ids out of range are wrong answers, not crashes */
    int p8[] = {5, 1}, l8[] = {5, 1};
    check_case(p8, l8, 2, 2, 0.5, 1.0);
    check_case(NULL, NULL, 0, 2, 0.0, 0.0);
}

/* Reads a whole stream from the start into buf. */
static void slurp(FILE *f, char *buf, size_t cap) {
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_progress_plain(void) {
    FILE *f = tmpfile();
    if (!f) skip("no tmpfile");
    Progress p;
    progress_start(&p, f, "train", 20);
    CHECK(p.tty == 0);
    for (int i = 1; i <= 20; i++) progress_update(&p, i, i < 3 ? NAN : 1.0 / i, 100L * i);
    progress_finish(&p);
    char buf[8192];
    slurp(f, buf, sizeof buf);
    fclose(f);
    /* a line at every 10% (2, 4, ..., 20 of 20) and the final one */
    CHECK(count_lines(buf) == 11);
    CHECK(strchr(buf, '\033') == NULL && strchr(buf, '\r') == NULL);
    CHECK(!strncmp(buf, "train: 2/20 (10%) |", 19)); /* no loss yet: none shown */
    CHECK(strstr(buf, "\ntrain: 4/20 (20%) loss 0.2500 |") != NULL);
    CHECK(strstr(buf, "tok/s | elapsed ") != NULL && strstr(buf, " | eta ") != NULL);
    const char *last = strstr(buf, "\ntrain: 20/20 (100%) loss 0.0500 | ");
    CHECK(last && strstr(last + 1, "\ntrain: 20/20 (100%) loss 0.0500 | ") != NULL);
    CHECK(strstr(buf, "| done in ") != NULL);
    /* few steps: every update is a new 10% */
    f = tmpfile();
    progress_start(&p, f, "eval", 3);
    for (int i = 1; i <= 3; i++) progress_update(&p, i, NAN, 0);
    progress_finish(&p);
    slurp(f, buf, sizeof buf);
    fclose(f);
    CHECK(count_lines(buf) == 4 && strstr(buf, "eval: 1/3 (33%) | elapsed") == buf);
}

static void test_runlog(void) {
    char dir[] = "/tmp/loraft-log-XXXXXX", path[64];
    if (!mkdtemp(dir)) skip("cannot create a temp directory");
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    RunLog l;
    LfError err;
    CHECK(runlog_open(&l, path, &err) == 0);
    CHECK(runlog_write(&l, "{\n  \"step\": 10,\n  \"loss\": 0.25\n}", &err) == 0);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", 1);
    cJSON_AddStringToObject(o, "split", "validation");
    CHECK(runlog_write_json(&l, o, &err) == 0);
    cJSON_Delete(o);
    CHECK(runlog_write(&l, "[1, 2]", &err) == -1 && strstr(err.msg, "must be a JSON object"));
    CHECK(runlog_write(&l, "{\"a\": ", &err) == -1 && strstr(err.msg, "not valid JSON"));
    runlog_close(&l);
    CHECK(runlog_open(&l, path, &err) == 0); /* reopening appends */
    CHECK(runlog_write(&l, "{\"step\": 20}", &err) == 0);
    runlog_close(&l);
    runlog_close(&l);

    FILE *f = fopen(path, "r");
    char line[256];
    int n = 0;
    double steps = 0;
    while (f && fgets(line, sizeof line, f)) {
        cJSON *r = cJSON_Parse(line);
        CHECK(cJSON_IsObject(r));
        cJSON *s = cJSON_GetObjectItem(r, "step");
        if (cJSON_IsNumber(s)) steps += s->valuedouble;
        if (n == 0) CHECK_CLOSE(cJSON_GetObjectItem(r, "loss")->valuedouble, 0.25, 0, 0);
        if (n == 1) CHECK(!strcmp(cJSON_GetObjectItem(r, "split")->valuestring, "validation"));
        cJSON_Delete(r);
        n++;
    }
    if (f) fclose(f);
    CHECK(n == 3 && steps == 30);
    CHECK(runlog_open(&l, "/nonexistent/dir/log.jsonl", &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/dir/log.jsonl: cannot open") != NULL);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_metrics();
    test_progress_plain();
    test_runlog();
    return check_report();
}
