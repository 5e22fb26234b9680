/* test_reward_command.c: the external scorer process (reward_command.h), with sh and awk one-liners
 * as scorers: replies and their NANs, a scorer that persists across calls, a request and a reply of
 * about a megabyte each, two replies in one write, and every failure a -1 with its message. */
#include "loraft/reward_command.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Whether err's message has want in it; prints the message when not. */
static int says(const LfError *err, const char *want) {
    if (strstr(err->msg, want)) return 1;
    fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err->msg, want);
    return 0;
}

/* reward_command_start, with a timeout that fails a test that went wrong in seconds, not minutes.
 */
static int start(RewardCommand *rc, const char *command, LfError *err) {
    int r = reward_command_start(rc, command, err);
    rc->timeout_ms = 20 * 1000;
    return r;
}

/* One call to a fresh scorer fails, with want in its message. */
static int fails_with(const char *command, const char *request, int n, const char *want) {
    RewardCommand rc;
    LfError err = {{0}};
    float out[8];
    int ok = start(&rc, command, &err) == 0;
    ok = ok && reward_command_score(&rc, request, n, out, &err) == -1 && says(&err, want);
    reward_command_stop(&rc);
    return ok;
}

static void test_replies(void) {
    RewardCommand rc;
    LfError err = {{0}};
    float out[3];
    CHECK_OK(start(&rc, "while read -r l; do echo '[1.5, null, -2]'; done", &err), &err);
    for (int call = 0; call < 2; call++) {
        CHECK_OK(reward_command_score(&rc, "{\"call\": 1}", 3, out, &err), &err);
        CHECK(out[0] == 1.5f && isnan(out[1]) && out[2] == -2.0f);
    }
    reward_command_stop(&rc);

    /* one process for every call: its count goes on */
    CHECK_OK(start(&rc, "c=0; while read -r l; do c=$((c+1)); echo \"[$c]\"; done", &err), &err);
    for (int call = 1; call <= 2; call++) {
        CHECK_OK(reward_command_score(&rc, "{}", 1, out, &err), &err);
        CHECK(out[0] == (float)call);
    }
    reward_command_stop(&rc);

    /* a '\r' and spaces before the newline are fine */
    CHECK_OK(start(&rc, "while read -r l; do printf ' [4, 5] \\r\\n'; done", &err), &err);
    CHECK_OK(reward_command_score(&rc, "{}", 2, out, &err), &err);
    CHECK(out[0] == 4.0f && out[1] == 5.0f);
    reward_command_stop(&rc);
}

/* A scorer that reads its request: "big N" gets the rewards 0 .. N-1, anything else its number of
 * fields, the sum of the fields and its length. The shell reads each line and hands it to an awk of
 * its own: awk itself would wait for a full input buffer (mawk) before it answered. */
static const char *const reader = "while IFS= read -r l; do printf '%s\\n' \"$l\" | awk '"
                                  "$1 == \"big\" { printf \"[\"; for (i = 0; i < $2; i++) printf "
                                  "\"%s%d\", (i ? \", \" : \"\"), i; "
                                  "print \"]\"; next } "
                                  "{ s = 0; for (i = 1; i <= NF; i++) s += $i; print \"[\" NF \", "
                                  "\" s \", \" length($0) \"]\" }'; "
                                  "done";

static void test_large(void) {
    RewardCommand rc;
    LfError err = {{0}};
    CHECK_OK(start(&rc, reader, &err), &err);
    /* about 1 MB: the fields 0 .. 999, 250 times over */
    enum { FIELDS = 250000 };
    char *req = malloc((size_t)FIELDS * 4 + 1);
    size_t len = 0;
    double sum = 0;
    for (int i = 0; i < FIELDS; i++) {
        len += (size_t)sprintf(req + len, i ? " %d" : "%d", i % 1000);
        sum += i % 1000;
    }
    float out[3];
    CHECK_OK(reward_command_score(&rc, req, 3, out, &err), &err);
    CHECK(out[0] == (float)FIELDS);
    CHECK_CLOSE(out[1], sum, 0, 1e-6);
    CHECK(out[2] == (float)len);
    /* writing to a scorer that is gone: an error, not a SIGPIPE that ends the test */
    CHECK(fails_with("exit 4", req, 3, "exited with status 4"));
    free(req);

    enum { N = 200000 }; /* a reply of about 1.3 MB */
    float *big = malloc(N * sizeof *big);
    CHECK_OK(reward_command_score(&rc, "big 200000", N, big, &err), &err);
    int wrong = 0;
    for (int i = 0; i < N; i++) wrong += big[i] != (float)i;
    CHECK(wrong == 0);
    free(big);

    CHECK_OK(reward_command_score(&rc, "1 2", 3, out, &err), &err); /* the stream still in step */
    CHECK(out[0] == 2.0f && out[1] == 3.0f && out[2] == 3.0f);
    reward_command_stop(&rc);
}

/* A scorer that writes two replies at once: the second waits in the buffer for the next call. */
static void test_two_replies(void) {
    RewardCommand rc;
    LfError err = {{0}};
    float out[1];
    CHECK_OK(start(&rc, "while read -r l; do printf '[1]\\n[2]\\n'; read -r l; done", &err), &err);
    for (int call = 1; call <= 4; call++) {
        CHECK_OK(reward_command_score(&rc, "{}", 1, out, &err), &err);
        CHECK(out[0] == (float)(2 - call % 2));
    }
    reward_command_stop(&rc);
}

static void test_bad_replies(void) {
    const char *three = "while read -r l; do echo '[1, 2, 3]'; done";
    CHECK(fails_with(three, "{}", 4, "its reply has 3 rewards for 4 completions"));
    CHECK(fails_with("while read -r l; do echo '{\"a\":1}'; done", "{}", 1,
                     "reply is not a JSON array: {\"a\":1}"));
    CHECK(fails_with("while read -r l; do echo '[1, \"abc\"]'; done", "{}", 2,
                     "reward 1 is \"abc\", not null or a number within a float's range"));
    CHECK(fails_with("while read -r l; do echo '[1e300]'; done", "{}", 1, /* inf as a float */
                     "reward 0 is 1e+300, not null or a number"));
    CHECK(fails_with("while read -r l; do echo '[1, 2'; done", "{}", 2, "not valid JSON: [1, 2"));
    CHECK(fails_with("while read -r l; do echo '[1] x'; done", "{}", 1, "not valid JSON"));
    CHECK(fails_with("while read -r l; do echo; done", "{}", 1, "empty line"));

    /* a bad reply leaves the scorer in step and running; a request with '\n' is not sent */
    RewardCommand rc;
    LfError err = {{0}};
    float out[3];
    CHECK_OK(start(&rc, three, &err), &err);
    CHECK(reward_command_score(&rc, "{}", 2, out, &err) == -1 && says(&err, "3 rewards for 2"));
    CHECK(reward_command_score(&rc, "{\n}", 3, out, &err) == -1 && says(&err, "newline"));
    CHECK_OK(reward_command_score(&rc, "{}", 3, out, &err), &err);
    CHECK(out[0] == 1.0f && out[2] == 3.0f);
    CHECK(says(&err, "train.reward_command \"while read")); /* the message names the command */
    reward_command_stop(&rc);
}

static void test_dead_scorers(void) {
    CHECK(fails_with("exit 3", "{}", 1, "exited with status 3 before replying"));
    CHECK(fails_with("/nonexistent/prog", "{}", 1, "exited with status 127"));
    CHECK(fails_with("kill -9 $$", "{}", 1, "killed by signal 9"));

    RewardCommand rc;
    LfError err = {{0}};
    float out[1];
    CHECK_OK(start(&rc, "read -r l; echo '[7]'", &err), &err); /* one reply only */
    CHECK_OK(reward_command_score(&rc, "{}", 1, out, &err), &err);
    CHECK(out[0] == 7.0f);
    CHECK(reward_command_score(&rc, "{}", 1, out, &err) == -1 && says(&err, "status 0"));
    CHECK(reward_command_score(&rc, "{}", 1, out, &err) == -1 && says(&err, "not running"));
    reward_command_stop(&rc);
    reward_command_stop(&rc);
    CHECK(rc.pid == 0 && rc.buf == NULL && rc.command == NULL);

    CHECK_OK(start(&rc, "exec sleep 30", &err), &err);
    rc.timeout_ms = 300;
    CHECK(reward_command_score(&rc, "{}", 1, out, &err) == -1 &&
          says(&err, "did not reply within 0.3 s"));
    CHECK(rc.pid == 0);
    CHECK(reward_command_score(&rc, "{}", 1, out, &err) == -1 && says(&err, "not running"));
    reward_command_stop(&rc);

    /* a zeroed struct's fd is 0: stop must leave stdin alone */
    int stdin_open = fcntl(0, F_GETFD) >= 0 || open("/dev/null", O_RDONLY) == 0;
    RewardCommand zero = {0};
    reward_command_stop(&zero);
    CHECK(stdin_open && fcntl(0, F_GETFD) >= 0);
}

int main(void) {
    test_replies();
    test_large();
    test_two_replies();
    test_bad_replies();
    test_dead_scorers();
    return check_report();
}
