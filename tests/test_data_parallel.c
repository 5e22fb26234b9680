/* test_data_parallel.c: dp_run and dp_join, the processes of model.devices, without a GPU: the
 * ranks run fn with their own rank, rank 0 alone writes to out, every rank joins with the one
 * id rank 0 made (a stand-in op table), and a failure ends the run with the right message:
 * - one rank fails: its message, prefixed with its device;
 * - every rank fails at once (a NaN all saw): the lowest rank's;
 * - rank 0 fails while rank 1 would wait for ever: rank 1 is stopped after the grace second,
 *   and rank 0's message is reported (tolerance: the run returns within 20 s);
 * - rank 0 fails before handing out the id: rank 1 follows, and rank 0's message is reported;
 *   rank 1 fails before reading it: rank 0 follows (a broken pipe), and rank 1's is reported;
 * - a rank killed by a signal: the signal is named;
 * - a caller that already runs a second thread is refused, forking nothing. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "loraft/data_parallel.h"

/* What each rank does (the test's fn): fails before dp_join, or waits before it; joins with
 * the stand-in ops; then acts. */
typedef enum Act { ACT_OK, ACT_FAIL, ACT_HANG, ACT_KILLED } Act;
typedef struct Plan {
    Act act[4];
    int fail_before_join[4];
    int wait_ms[4];
} Plan;

static int made; /* group_id ran in this process */
static unsigned char joined_id[OPS_GROUP_ID];

/* The id's bytes: not zeros, so that a rank that joined without it shows. */
static unsigned char id_byte(int i) {
    return (unsigned char)(i * 7 + 13);
}
static int fake_group_id(void *id, LfError *err) {
    (void)err;
    made = 1;
    for (int i = 0; i < OPS_GROUP_ID; i++) ((unsigned char *)id)[i] = id_byte(i);
    return 0;
}
static int fake_group_join(int rank, int ranks, const void *id, LfError *err) {
    (void)err, (void)rank, (void)ranks;
    memcpy(joined_id, id, OPS_GROUP_ID);
    return 0;
}
static const Ops fake_ops = {
    .name = "fake", .group_id = fake_group_id, .group_join = fake_group_join};

static int rank_fn(DpRank *self, FILE *out, void *arg, LfError *err) {
    const Plan *p = arg;
    fprintf(out, "rank %d of %d\n", self->rank, self->ranks);
    if (p->fail_before_join[self->rank])
        return lf_fail(err, "rank %d failed before joining", self->rank);
    if (p->wait_ms[self->rank])
        nanosleep(&(struct timespec){0, p->wait_ms[self->rank] * 1000000L}, NULL);
    if (dp_join(self, &fake_ops, err)) return -1;
    /* rank 0 alone made the id, and every rank joined with it */
    if (made != (self->rank == 0))
        return lf_fail(err, "rank %d: group_id ran %d", self->rank, made);
    for (int i = 0; i < OPS_GROUP_ID; i++)
        if (joined_id[i] != id_byte(i)) return lf_fail(err, "rank %d: another id", self->rank);
    switch (p->act[self->rank]) {
    case ACT_FAIL:
        return lf_fail(err, "rank %d failed", self->rank);
    case ACT_HANG:
        for (;;) pause();
    case ACT_KILLED:
        raise(SIGKILL);
        return 0;
    case ACT_OK:
        break;
    }
    return 0;
}

/* dp_run with plan; its output in buf (cap), its message in err; seconds taken in *secs. */
static int run(int ranks, const Plan *plan, char *buf, size_t cap, LfError *err, double *secs) {
    FILE *out = tmpfile();
    CHECK(out != NULL);
    if (!out) return -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = dp_run(ranks, rank_fn, (void *)plan, out, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    rewind(out);
    size_t n = fread(buf, 1, cap - 1, out);
    buf[n] = 0;
    fclose(out);
    return rc;
}

static void check_message(const char *what, int ranks, Plan plan, const char *want) {
    char buf[4096];
    LfError err = {{0}};
    double secs;
    int rc = run(ranks, &plan, buf, sizeof buf, &err, &secs);
    CHECK(rc != 0);
    CHECK(strcmp(err.msg, want) == 0);
    CHECK(secs < 20);
    if (strcmp(err.msg, want))
        fprintf(stderr, "%s: \"%s\", expected \"%s\"\n", what, err.msg, want);
    printf("%s: \"%s\" (%.1f s)\n", what, err.msg, secs);
}

static void *sleeper(void *arg) {
    (void)arg;
    sleep(30);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char buf[4096];
    LfError err = {{0}};
    double secs;

    /* every rank runs and joins with rank 0's id (else it fails); rank 0 alone writes to out */
    Plan ok = {0};
    CHECK_OK(run(3, &ok, buf, sizeof buf, &err, &secs), &err);
    CHECK(strstr(buf, "rank 0 of 3\n") && !strstr(buf, "rank 1") && !strstr(buf, "rank 2"));

    Plan one = {0};
    one.act[2] = ACT_FAIL;
    check_message("device 2 fails", 3, one, "device 2: rank 2 failed");
    Plan all = {0};
    all.act[0] = all.act[1] = all.act[2] = ACT_FAIL;
    check_message("every device fails", 3, all, "rank 0 failed");
    Plan waits = {0};
    waits.act[0] = ACT_FAIL, waits.act[1] = ACT_HANG;
    check_message("device 0 fails, device 1 waits", 2, waits, "rank 0 failed");
    Plan no_id = {0};
    no_id.fail_before_join[0] = 1;
    check_message("device 0 fails before the id", 3, no_id, "rank 0 failed before joining");
    Plan no_reader = {0}; /* rank 0 writes after rank 1 is gone: a broken pipe, not a death */
    no_reader.fail_before_join[1] = 1, no_reader.wait_ms[0] = 300;
    check_message("device 1 fails before reading the id", 2, no_reader,
                  "device 1: rank 1 failed before joining");
    Plan killed = {0};
    killed.act[1] = ACT_KILLED;
    check_message("device 1 is killed", 2, killed,
                  "device 1's process was killed by signal 9 (Killed)");

    /* the ranks' count is checked, and a process with a second thread is refused */
    CHECK(dp_run(1, rank_fn, &ok, stdout, &err) != 0 && strstr(err.msg, "2 .. 64"));
    DpRank single = dp_single();
    CHECK_OK(dp_join(&single, &ops_cpu, &err), &err); /* one process: no group, nothing to do */
    DpRank two = dp_single();
    two.ranks = 2;
    CHECK(dp_join(&two, &ops_cpu, &err) != 0 &&
          !strcmp(err.msg, "model.devices 2: data parallel needs the cuda device"));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sleeper, NULL) == 0);
    FILE *out = tmpfile();
    CHECK(out && dp_run(2, rank_fn, &ok, out, &err) != 0 &&
          strstr(err.msg, "this process already runs 2 threads"));
    printf("a second thread: \"%s\"\n", err.msg);
    if (out) fclose(out);
    pthread_cancel(t);
    pthread_join(t, NULL);
    return check_report();
}
