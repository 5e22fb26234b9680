/* data_parallel.c: a process a device, and the pipes between them (see data_parallel.h). */
#include "loraft/data_parallel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A rank's exit status when it stopped because another failed first (DpRank.followed), whose
 * message is the one to report. */
enum { EXIT_FOLLOWED = 3 };
/* How long the other ranks get to fail on their own after one failed, in seconds. */
#define DP_GRACE 1.0

static int write_all(int fd, const void *p, size_t n) {
    for (const char *c = p; n;) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

/* Bytes read before EOF or an error, at most n. */
static size_t read_all(int fd, void *p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

int dp_join(DpRank *self, const Ops *ops, LfError *err) {
    if (self->ranks == 1) return 0;
    if (!ops->group_join)
        return lf_fail(err, "model.devices %d: %s", self->ranks,
                       strcmp(ops->name, "cuda") ? "data parallel needs the cuda device"
                                                 : "this loraft was built without NCCL");
    unsigned char id[OPS_GROUP_ID];
    if (self->rank == 0) {
        if (ops->group_id(id, err)) return -1;
        for (int r = 1; r < self->ranks; r++)
            if (write_all(self->id_fd[r], id, sizeof id)) /* device r is gone: it failed */
                return self->followed = 1, lf_fail(err, "cannot hand the group id to device %d: %s",
                                                   r, strerror(errno));
    } else if (read_all(self->id_fd[self->rank], id, sizeof id) != sizeof id) {
        return lf_fail(err, "device 0 handed out no group id"); /* reported: device 0 failed */
    }
    return ops->group_join(self->rank, self->ranks, id, err);
}

/* Rank `rank`'s process after the fork: its pipe ends, its output, fn, and its message into
 * its error pipe. Never returns. */
static void rank_main(int rank, int ranks, int (*id_pipe)[2], int (*err_pipe)[2], DpMain fn,
                      void *arg, FILE *out, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* not outliving the run's process */
    signal(SIGPIPE, SIG_IGN);         /* a pipe to a rank that is gone: an error, not a death */
    if (getppid() != parent) _exit(EXIT_FOLLOWED);
    DpRank self = dp_single();
    self.rank = rank, self.ranks = ranks;
    for (int i = 0; i < ranks; i++) {
        if (rank == 0 && i > 0)
            self.id_fd[i] = id_pipe[i][1];
        else
            close(id_pipe[i][1]);
        if (rank == i && i > 0)
            self.id_fd[i] = id_pipe[i][0];
        else
            close(id_pipe[i][0]);
        close(err_pipe[i][0]);
        if (i != rank) close(err_pipe[i][1]);
    }
    FILE *o = rank == 0 ? out : fopen("/dev/null", "w");
    LfError err = {{0}};
    int rc = o ? fn(&self, o, arg, &err) : lf_fail(&err, "cannot open /dev/null");
    if (o) fflush(o);
    if (!rc) _exit(0);
    write_all(err_pipe[rank][1], err.msg, strlen(err.msg));
    _exit(self.followed ? EXIT_FOLLOWED : 1);
}

/* The threads this process runs, from /proc/self/status; 0 when unknown. */
static int thread_count(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Waits for every rank. After the first failure the others get DP_GRACE seconds to stop on
 * their own, then SIGTERM. Returns the lowest rank that failed on its own (not stopped by us,
 * not DpRank.followed), else the first that failed, else -1; its wait status in *why. */
static int wait_ranks(const pid_t *pid, int ranks, int *why) {
    int alive = ranks, done[DP_MAX_RANKS] = {0}, cause = -1, first = -1, killed = 0;
    double failed_at = -1;
    while (alive) {
        for (int r = 0; r < ranks; r++) {
            int st;
            if (done[r] || waitpid(pid[r], &st, WNOHANG) != pid[r]) continue;
            done[r] = 1, alive--;
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
            if (failed_at < 0) failed_at = now(), first = r, *why = st;
            int stopped_by_us = killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM;
            int followed = WIFEXITED(st) && WEXITSTATUS(st) == EXIT_FOLLOWED;
            if (!stopped_by_us && !followed && (cause < 0 || r < cause)) cause = r, *why = st;
        }
        if (alive && failed_at >= 0 && !killed && now() - failed_at > DP_GRACE) {
            for (int r = 0; r < ranks; r++)
                if (!done[r]) kill(pid[r], SIGTERM);
            killed = 1;
        }
        if (alive) nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    return cause >= 0 ? cause : first;
}

/* The failed rank's message, or what its wait status says. */
static int rank_failure(int rank, int why, int fd, LfError *err) {
    char msg[sizeof err->msg];
    size_t n = read_all(fd, msg, sizeof msg - 1);
    msg[n] = 0;
    const char *who = rank ? "device " : "";
    char num[16] = "";
    if (rank) snprintf(num, sizeof num, "%d: ", rank);
    if (n) return lf_fail(err, "%s%s%s", who, num, msg);
    if (WIFSIGNALED(why))
        return lf_fail(err, "device %d's process was killed by signal %d (%s)", rank, WTERMSIG(why),
                       strsignal(WTERMSIG(why)));
    return lf_fail(err, "device %d's process stopped (exit status %d)", rank,
                   WIFEXITED(why) ? WEXITSTATUS(why) : -1);
}

int dp_run(int ranks, DpMain fn, void *arg, FILE *out, LfError *err) {
    if (ranks < 2 || ranks > DP_MAX_RANKS)
        return lf_fail(err, "model.devices %d: 2 .. %d processes", ranks, DP_MAX_RANKS);
    if (fileno(out) < 0)
        return lf_fail(err, "model.devices %d: the run's output must be a file", ranks);
    /* A fork takes only the calling thread: whatever another holds (OpenMP's idle team, which
     * the children's first parallel loop would wait for) stays held in them for ever. */
    int threads = thread_count();
    if (threads > 1)
        return lf_fail(err,
                       "model.devices %d: this process already runs %d threads (OpenMP's, from "
                       "earlier work), which its processes for the devices could not take along; "
                       "start a data-parallel run first thing in a process, as `loraft train` does",
                       ranks, threads);
    int id_pipe[DP_MAX_RANKS][2], err_pipe[DP_MAX_RANKS][2], made = 0;
    for (; made < ranks; made++)
        if (pipe2(id_pipe[made], O_CLOEXEC))
            break;
        else if (pipe2(err_pipe[made], O_CLOEXEC)) {
            close(id_pipe[made][0]), close(id_pipe[made][1]);
            break;
        }
    pid_t pid[DP_MAX_RANKS], parent = getpid();
    int started = 0;
    if (made == ranks) {
        fflush(out), fflush(stdout), fflush(stderr); /* nothing buffered twice */
        for (; started < ranks; started++) {
            pid[started] = fork();
            if (pid[started] == 0)
                rank_main(started, ranks, id_pipe, err_pipe, fn, arg, out, parent);
            if (pid[started] < 0) break;
        }
    }
    int fork_errno = errno;
    for (int r = 0; r < made; r++)
        close(id_pipe[r][0]), close(id_pipe[r][1]), close(err_pipe[r][1]);
    int rc = 0;
    if (made < ranks || started < ranks) {
        for (int r = 0; r < started; r++) kill(pid[r], SIGTERM);
        for (int r = 0; r < started; r++) waitpid(pid[r], NULL, 0);
        rc = lf_fail(err, "model.devices %d: cannot start the processes: %s", ranks,
                     strerror(fork_errno));
    } else {
        int why = 0, cause = wait_ranks(pid, ranks, &why);
        if (cause >= 0) rc = rank_failure(cause, why, err_pipe[cause][0], err);
    }
    for (int r = 0; r < made; r++) close(err_pipe[r][0]);
    return rc;
}
