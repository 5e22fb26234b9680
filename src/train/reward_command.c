/* reward_command.c: the user's scorer process (reward_command.h). One socket of a socketpair is
 * the child's stdin and stdout: writing to a scorer that died gives EPIPE (MSG_NOSIGNAL) instead of
 * a SIGPIPE that would end the trainer, and one fd lets one poll loop write the request and read
 * the reply together, so a scorer that starts answering before it has read a long request cannot
 * deadlock against a full socket buffer. */
#include "loraft/reward_command.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    TIMEOUT_MS = 600 * 1000,
    GRACE_MS = 2000, /* for the child to exit after EOF, and again after SIGTERM */
    READ_CHUNK = 64 * 1024,
    EXCERPT = 80, /* bytes of a bad reply quoted in a message */
};
#define MAX_REPLY ((size_t)1 << 30) /* a longer line is a runaway scorer, not a reply */

/* lf_fail, its message prefixed with the command's name. */
__attribute__((format(printf, 3, 4))) static int fail(const RewardCommand *rc, LfError *err,
                                                      const char *fmt, ...) {
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lf_fail(err, "train.reward_command \"%s\": %s", rc->command ? rc->command : "", msg);
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* In the child, between fork and exec: async-signal-safe calls only (the trainer has threads).
 * The socket becomes stdin and stdout; F_DUPFD first because s may itself be 0 or 1, and dup2 of
 * an fd onto itself would leave it close-on-exec. Both socket ends are close-on-exec, so exec
 * closes them. The scorer gets default SIGPIPE and no blocked signals, whatever the trainer set
 * (a data-parallel rank ignores SIGPIPE), so SIGTERM reaches it. */
__attribute__((noreturn)) static void run_child(int s, const char *command) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int d = fcntl(s, F_DUPFD, 3);
    if (d < 0 || dup2(d, 0) < 0 || dup2(d, 1) < 0) _exit(127);
    close(d);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    _exit(127);
}

/* Reaps pid within ms milliseconds: 1 and its wait status, or 0 while it still runs. A pid the
 * kernel reaped itself (the trainer ignores SIGCHLD) counts as reaped, status -1: unknown. */
static int wait_for(pid_t pid, int ms, int *status) {
    for (long long end = now_ms() + ms;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno != EINTR) return *status = -1, 1;
        if (now_ms() >= end) return 0;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
}

/* Closes loraft's end (EOF on the child's stdin) and reaps the child: SIGTERM after GRACE_MS,
 * SIGKILL after as long again. The struct is stopped then, its buffer and command kept for the
 * messages of later calls. Returns the wait status (-1: unknown); *killed: whether it took one of
 * our signals. */
static int end_child(RewardCommand *rc, int *killed) {
    pid_t pid = rc->pid;
    close(rc->fd);
    rc->fd = -1;
    rc->pid = 0;
    int st;
    *killed = 1;
    if (wait_for(pid, GRACE_MS, &st)) return *killed = 0, st;
    kill(pid, SIGTERM);
    if (wait_for(pid, GRACE_MS, &st)) return st;
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return st;
}

/* The child closed its end (or broke the connection) before a whole reply: stops it and says how
 * it ended. */
static int child_gone(RewardCommand *rc, LfError *err) {
    int killed, st = end_child(rc, &killed);
    if (killed)
        return fail(rc, err, "closed its stdout before replying and did not exit (stopped it)");
    if (st == -1) return fail(rc, err, "ended before replying");
    if (WIFSIGNALED(st))
        return fail(rc, err, "was killed by signal %d (%s) before replying", WTERMSIG(st),
                    strsignal(WTERMSIG(st)));
    int code = WEXITSTATUS(st);
    return fail(rc, err, "exited with status %d before replying%s", code,
                code == 127   ? " (127: the shell did not find the command)"
                : code == 126 ? " (126: the command is not executable)"
                              : "");
}

int reward_command_start(RewardCommand *rc, const char *command, LfError *err) {
    *rc = (RewardCommand){.fd = -1, .timeout_ms = TIMEOUT_MS, .command = strdup(command)};
    if (!rc->command) return lf_fail(err, "train.reward_command: out of memory");
    int sv[2]; /* close-on-exec: no later child of the trainer inherits them */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        fail(rc, err, "cannot start: socketpair: %s", strerror(errno));
        reward_command_stop(rc);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) run_child(sv[1], command);
    int e = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        fail(rc, err, "cannot start: fork: %s", strerror(e));
        reward_command_stop(rc);
        return -1;
    }
    rc->pid = pid;
    rc->fd = sv[0];
    return 0;
}

void reward_command_stop(RewardCommand *rc) {
    int killed;
    if (rc->pid > 0) end_child(rc, &killed);
    free(rc->buf);
    free(rc->command);
    *rc = (RewardCommand){.fd = -1};
}

/* Reads what the child has written into buf: 1, or 0 at EOF (or a broken connection), -1 with
 * errno on another error or a line past MAX_REPLY (EMSGSIZE), or no memory (ENOMEM). */
static int read_some(RewardCommand *rc) {
    if (rc->cap - rc->len < READ_CHUNK) {
        size_t cap = rc->cap ? rc->cap * 2 : 2 * READ_CHUNK;
        if (cap > MAX_REPLY) return errno = EMSGSIZE, -1;
        char *bigger = realloc(rc->buf, cap);
        if (!bigger) return errno = ENOMEM, -1;
        rc->buf = bigger;
        rc->cap = cap;
    }
    ssize_t r = recv(rc->fd, rc->buf + rc->len, rc->cap - rc->len, MSG_DONTWAIT);
    if (r > 0) rc->len += (size_t)r;
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (r < 0 && errno == ECONNRESET) return 0;
    return r < 0 ? -1 : r > 0;
}

/* Sends what it can of the request line from byte *sent (the '\n' at len): 1, or 0 if the child
 * is gone, -1 with errno on another error. */
static int send_some(RewardCommand *rc, const char *req, size_t len, size_t *sent) {
    const char *p = *sent < len ? req + *sent : "\n";
    size_t n = *sent < len ? len - *sent : 1;
    ssize_t w = send(rc->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) *sent += (size_t)w;
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) return 0;
    return w < 0 ? -1 : 1;
}

/* Writes request and '\n' while reading, until all of it is sent and a whole line is buffered
 * (maybe there already: a scorer may write two replies at once); *line: its length, '\n' not
 * counted. Any failure stops the child: the lockstep is lost. */
static int exchange(RewardCommand *rc, const char *req, size_t *line, LfError *err) {
    size_t len = strlen(req), sent = 0, scanned = 0;
    long long deadline = now_ms() + rc->timeout_ms;
    for (;;) {
        char *nl = rc->len > scanned ? memchr(rc->buf + scanned, '\n', rc->len - scanned) : NULL;
        scanned = nl ? (size_t)(nl - rc->buf) : rc->len;
        if (nl && sent > len) return *line = scanned, 0;
        long long left = deadline - now_ms();
        struct pollfd p = {.fd = rc->fd, .events = POLLIN | (sent > len ? 0 : POLLOUT)};
        int r = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno, killed;
            end_child(rc, &killed);
            if (r < 0) return fail(rc, err, "poll: %s (stopped it)", strerror(e));
            return fail(rc, err, "did not reply within %g s (stopped it)", rc->timeout_ms / 1000.0);
        }
        int ok = p.revents & POLLOUT ? send_some(rc, req, len, &sent) : 1;
        if (ok > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) ok = read_some(rc);
        if (ok == 0) return child_gone(rc, err);
        if (ok < 0) {
            int e = errno, killed;
            end_child(rc, &killed);
            return fail(rc, err, "%s (stopped it)",
                        e == EMSGSIZE ? "a reply line is longer than 1 GiB" : strerror(e));
        }
    }
}

/* The first EXCERPT bytes of a bad reply, for its message. */
static int excerpt_len(size_t len) {
    return len < EXCERPT ? (int)len : EXCERPT;
}

/* line (len bytes, '\n' not counted) as n rewards into out. */
static int parse_reply(const RewardCommand *rc, const char *line, size_t len, int n, float *out,
                       LfError *err) {
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    if (!len) return fail(rc, err, "reply is an empty line");
    const char *end = NULL;
    cJSON *a = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    const char *more = len > EXCERPT ? "..." : "";
    int e = excerpt_len(len);
    if (!a || end != line + len) {
        cJSON_Delete(a);
        return fail(rc, err, "reply is not valid JSON: %.*s%s", e, line, more);
    }
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return fail(rc, err, "reply is not a JSON array: %.*s%s", e, line, more);
    }
    int got = cJSON_GetArraySize(a), i = 0, bad = -1;
    if (got != n) {
        cJSON_Delete(a);
        return fail(rc, err, "its reply has %d rewards for %d completions", got, n);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, a) {
        if (cJSON_IsNumber(item) && isfinite((float)item->valuedouble))
            out[i] = (float)item->valuedouble;
        else if (cJSON_IsNull(item))
            out[i] = NAN;
        else if (bad < 0)
            bad = i;
        i++;
    }
    if (bad < 0) return cJSON_Delete(a), 0;
    char *text = cJSON_PrintUnformatted(cJSON_GetArrayItem(a, bad));
    size_t tl = text ? strlen(text) : 0;
    fail(rc, err, "reward %d is %.*s%s, not null or a number within a float's range", bad,
         excerpt_len(tl), text ? text : "?", tl > EXCERPT ? "..." : "");
    free(text);
    cJSON_Delete(a);
    return -1;
}

int reward_command_score(RewardCommand *rc, const char *request, int n, float *out, LfError *err) {
    if (rc->pid <= 0) return fail(rc, err, "is not running (it stopped earlier)");
    if (strchr(request, '\n'))
        return fail(rc, err, "the request has a newline in it: the protocol is one line each way");
    size_t line = 0; /* set by exchange where it succeeds */
    if (exchange(rc, request, &line, err)) return -1;
    int r = parse_reply(rc, rc->buf, line, n, out, err);
    rc->len -= line + 1; /* the reply and its '\n' taken; whatever came after it kept */
    memmove(rc->buf, rc->buf + line + 1, rc->len);
    return r;
}
