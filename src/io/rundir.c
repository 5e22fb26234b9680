/* rundir.c: the run directory: its lock, the fresh / overwrite / resume rules, and
 * versioned checkpoints behind atomically replaced symlinks (see rundir.h). */
#include "loraft/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loraft/checkpoint.h"
#include "loraft/fileio.h"

#define PATH_CAP 4400
#define NAME_CAP 256

static void at(const RunDir *d, const char *rel, char *out) {
    snprintf(out, PATH_CAP, "%s/%s", d->path, rel);
}

/* The name the symlink at path points to, after prefix; "" if none. */
static void link_name(const char *path, const char *prefix, char *name) {
    char buf[NAME_CAP];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    size_t len = strlen(prefix);
    buf[n > 0 ? n : 0] = 0;
    name[0] = 0;
    if (!strncmp(buf, prefix, len)) memcpy(name, buf + len, strlen(buf + len) + 1);
}

/* What OUT/head points to: a links directory and the two checkpoints it names. */
static void referenced(const RunDir *d, char *links, char *last, char *best) {
    char path[PATH_CAP];
    at(d, "head", path);
    link_name(path, RUNDIR_CHECKPOINTS "/", links);
    snprintf(path, sizeof path, "%s/" RUNDIR_CHECKPOINTS "/%s/last", d->path, links);
    link_name(path, "../", last);
    snprintf(path, sizeof path, "%s/" RUNDIR_CHECKPOINTS "/%s/best", d->path, links);
    link_name(path, "../", best);
}

/* Removes every entry of checkpoints/ that OUT/head does not reach. */
static int collect_garbage(const RunDir *d, LfError *err) {
    char dir[PATH_CAP], links[NAME_CAP], last[NAME_CAP], best[NAME_CAP];
    at(d, RUNDIR_CHECKPOINTS, dir);
    referenced(d, links, last, best);
    DIR *dp = opendir(dir);
    if (!dp) return errno == ENOENT ? 0 : lf_fail(err, "%s: cannot list: %s", dir, strerror(errno));
    int removed = 0, rc = 0;
    for (struct dirent *e; !rc && (e = readdir(dp));) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, links) || !strcmp(n, last) ||
            !strcmp(n, best))
            continue;
        char path[PATH_CAP + NAME_CAP];
        snprintf(path, sizeof path, "%s/%s", dir, n);
        crash_point();
        rc = dir_remove(path, err);
        removed = 1;
    }
    closedir(dp);
    return rc || !removed ? rc : dir_sync(dir, err);
}

/* OUT/<name> -> head/<name>, created once; kept from then on. */
static int ensure_link(const RunDir *d, const char *name, LfError *err) {
    char link[PATH_CAP], target[16];
    struct stat sb;
    at(d, name, link);
    snprintf(target, sizeof target, "head/%s", name);
    return lstat(link, &sb) ? symlink_replace(target, link, err) : 0;
}

/* Takes OUT/.lock for the life of the run and writes our pid into it. */
static int take_lock(RunDir *d, LfError *err) {
    char path[PATH_CAP], pid[32] = "";
    at(d, ".lock", path);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->lock_fd < 0) return lf_fail(err, "%s: cannot create: %s", path, strerror(errno));
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        ssize_t n = pread(d->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        rundir_close(d);
        if (e != EWOULDBLOCK) return lf_fail(err, "%s: cannot lock: %s", path, strerror(e));
        return lf_fail(err,
                       "%s is in use by another loraft run (pid %s); wait for it to finish or "
                       "choose another train.output_dir",
                       d->path, pid[0] ? pid : "unknown");
    }
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(d->lock_fd, 0) || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
        return lf_fail(err, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

/* loraft's own entries of OUT (temp files included), which --overwrite removes. */
static int is_ours(const char *n) {
    static const char *const names[] = {"train_config.json", "metrics.jsonl", "last",    "best",
                                        RUNDIR_CHECKPOINTS,  "last.tmp",      "best.tmp"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(n, names[i])) return 1;
    return !strncmp(n, "train_config.json.tmp", 21);
}

/* FRESH: refuse a non-empty OUT; OVERWRITE: remove our entries. */
static int apply_mode(const RunDir *d, RunDirMode mode, LfError *err) {
    DIR *dp = opendir(d->path);
    if (!dp) return lf_fail(err, "%s: cannot list: %s", d->path, strerror(errno));
    char found[NAME_CAP] = "";
    int removed = 0, rc = 0;
    for (struct dirent *e; !rc && (e = readdir(dp));) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ".lock")) continue;
        if (mode == RUNDIR_FRESH && !found[0]) snprintf(found, sizeof found, "%s", n);
        if (mode != RUNDIR_OVERWRITE || !is_ours(n)) continue;
        char path[PATH_CAP];
        at(d, n, path);
        rc = dir_remove(path, err);
        removed = 1;
    }
    closedir(dp);
    if (!rc && found[0])
        rc = lf_fail(err,
                     "%s is not empty (it holds '%s'): pass --overwrite to start the run again, "
                     "or --resume %s/last to continue it",
                     d->path, found, d->path);
    return rc || !removed ? rc : dir_sync(d->path, err);
}

/* OUT/last must be our symlink (a directory there is an earlier loraft's layout); it is
 * restored when a crash came right after the first commit. */
static int check_layout(const RunDir *d, LfError *err) {
    char path[PATH_CAP];
    struct stat sb;
    at(d, "last", path);
    if (!lstat(path, &sb) && !S_ISLNK(sb.st_mode))
        return lf_fail(err,
                       "%s is a directory written by an earlier loraft; rename it (e.g. to "
                       "%s.old) and resume from there into a new train.output_dir",
                       path, path);
    at(d, "head", path);
    return lstat(path, &sb) ? 0 : ensure_link(d, "last", err);
}

int rundir_open(RunDir *d, const char *path, RunDirMode mode, LfError *err) {
    d->lock_fd = -1;
    if ((size_t)snprintf(d->path, sizeof d->path, "%s", path) >= sizeof d->path)
        return lf_fail(err, "%s: path too long", path);
    if (dir_create(path, err) || take_lock(d, err)) return -1;
    if (apply_mode(d, mode, err) || (mode == RUNDIR_RESUME && check_layout(d, err)) ||
        collect_garbage(d, err))
        return rundir_close(d), -1;
    return 0;
}

void rundir_close(RunDir *d) {
    if (d->lock_fd >= 0) close(d->lock_fd);
    d->lock_fd = -1;
}

int rundir_begin(const RunDir *d, int step, char *name, size_t name_cap, char *tmp, size_t cap,
                 LfError *err) {
    char links[NAME_CAP], last[NAME_CAP], best[NAME_CAP];
    referenced(d, links, last, best);
    snprintf(name, name_cap, "step-%d", step);
    for (int k = 2; !strcmp(name, last) || !strcmp(name, best); k++)
        snprintf(name, name_cap, "step-%d.%d", step, k);
    if ((size_t)snprintf(tmp, cap, "%s/" RUNDIR_CHECKPOINTS "/%s.tmp", d->path, name) >= cap)
        return lf_fail(err, "%s: path too long", d->path);
    if (dir_remove(tmp, err)) return -1;
    crash_point();
    return dir_create(tmp, err);
}

/* checkpoints/name.links.tmp/ holding last -> ../name and best -> ../<best's name>. */
static int write_links(const char *dir, const char *name, const char *best, LfError *err) {
    char links[PATH_CAP + NAME_CAP], link[PATH_CAP + 2 * NAME_CAP], target[NAME_CAP + 8];
    const char *names[] = {"last", "best"};
    const char *targets[] = {name, best + strlen(RUNDIR_CHECKPOINTS "/")};
    snprintf(links, sizeof links, "%s/%s.links.tmp", dir, name);
    if (dir_remove(links, err)) return -1;
    crash_point();
    if (dir_create(links, err)) return -1;
    for (int i = 0; i < 2; i++) {
        snprintf(link, sizeof link, "%s/%s", links, names[i]);
        snprintf(target, sizeof target, "../%s", targets[i]);
        crash_point();
        if (symlink(target, link))
            return lf_fail(err, "%s: cannot create: %s", link, strerror(errno));
    }
    return dir_sync(links, err);
}

/* Renames checkpoints/<name><suffix>.tmp to checkpoints/<name><suffix>. */
static int publish(const char *dir, const char *name, const char *suffix, LfError *err) {
    char from[PATH_CAP + NAME_CAP], to[PATH_CAP + NAME_CAP];
    snprintf(from, sizeof from, "%s/%s%s.tmp", dir, name, suffix);
    snprintf(to, sizeof to, "%s/%s%s", dir, name, suffix);
    crash_point();
    if (rename(from, to))
        return lf_fail(err, "%s: cannot rename to %s: %s", from, to, strerror(errno));
    return 0;
}

int rundir_commit(const RunDir *d, const char *name, const char *best, int link_best,
                  LfError *err) {
    char dir[PATH_CAP], tmp[PATH_CAP + NAME_CAP], head[PATH_CAP], target[NAME_CAP + 32];
    at(d, RUNDIR_CHECKPOINTS, dir);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    if (dir_sync(tmp, err) || write_links(dir, name, best, err) || publish(dir, name, "", err) ||
        publish(dir, name, ".links", err) || dir_sync(dir, err))
        return -1;
    snprintf(target, sizeof target, RUNDIR_CHECKPOINTS "/%s.links", name);
    at(d, "head", head);
    if (symlink_replace(target, head, err) || ensure_link(d, "last", err) ||
        (link_best && ensure_link(d, "best", err)))
        return -1;
    return collect_garbage(d, err);
}

int rundir_link_best(const RunDir *d, LfError *err) {
    return ensure_link(d, "best", err);
}

int rundir_holds(const RunDir *d, const char *dir) {
    char ckpt[PATH_CAP], a[PATH_MAX], b[PATH_MAX];
    at(d, RUNDIR_CHECKPOINTS, ckpt);
    if (!realpath(ckpt, a) || !realpath(dir, b)) return 0;
    char *slash = strrchr(b, '/');
    return slash && (*slash = 0, !strcmp(a, b));
}

int rundir_valid_checkpoint_ref(const char *ref) {
    const char *prefix = RUNDIR_CHECKPOINTS "/";
    if (!ref[0]) return 1;
    if (strncmp(ref, prefix, strlen(prefix)) || strlen(ref) >= 200) return 0;
    const char *name = ref + strlen(prefix);
    return name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}
