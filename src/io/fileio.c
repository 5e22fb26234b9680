/* fileio.c: whole-file reads, atomic writes, mkdir -p, path joining (POSIX).
 * Not a buffered I/O layer: callers hand over whole buffers or large chunks. */
#include "loraft/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void crash_point(void) {
    static long left = -1; /* -1: not read yet; 0: never */
    if (left < 0) {
        const char *at = getenv("LORAFT_CRASH_AT");
        left = at ? strtol(at, NULL, 10) : 0;
        if (left < 0) left = 0;
    }
    if (left && --left == 0) raise(SIGKILL);
}

int file_open_read(const char *path, int *fd_out, size_t *size, LfError *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int e = fstat(fd, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? EISDIR : 0;
    if (e) {
        close(fd);
        return lf_fail(err, "%s: cannot read: %s", path, strerror(e));
    }
    *fd_out = fd;
    *size = (size_t)sb.st_size;
    return 0;
}

int file_read_all(const char *path, char **data, size_t *len, LfError *err) {
    *data = NULL;
    *len = 0;
    int fd;
    size_t hint;
    if (file_open_read(path, &fd, &hint, err)) return -1;
    /* Grow as needed: st_size is only a hint (pipes and /proc files report 0). */
    size_t cap = hint + 1, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            close(fd);
            return lf_fail(err, "%s: out of memory reading %zu bytes", path, cap);
        }
        if (n + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) free(buf);
            buf = bigger;
            cap *= 2;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return lf_fail(err, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, LfError *err) {
    AtomicFile f;
    if (atomic_file_open(&f, path, err) != 0) return -1;
    if (atomic_file_write(&f, data, len, err) != 0) return -1;
    return atomic_file_commit(&f, err);
}

int atomic_file_open(AtomicFile *f, const char *path, LfError *err) {
    f->fd = -1;
    int n = snprintf(f->path, sizeof f->path, "%s", path);
    if (n < 0 || (size_t)n >= sizeof f->path) return lf_fail(err, "%s: path too long", path);
    snprintf(f->tmp_path, sizeof f->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    crash_point();
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) return lf_fail(err, "%s: cannot create: %s", f->tmp_path, strerror(errno));
    return 0;
}

/* Fails with the current errno, after removing the temp file. */
static int atomic_file_fail(AtomicFile *f, const char *what, LfError *err) {
    int e = errno;
    atomic_file_abort(f);
    return lf_fail(err, "%s: %s: %s", f->tmp_path, what, strerror(e));
}

int atomic_file_write(AtomicFile *f, const void *data, size_t len, LfError *err) {
    if (f->fd < 0) return lf_fail(err, "%s: write to a closed atomic file", f->path);
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return atomic_file_fail(f, "write failed", err);
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int dir_sync(const char *dir, LfError *err) {
    crash_point();
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return lf_fail(err, "%s: cannot open directory: %s", dir, strerror(errno));
    /* Some file systems cannot sync directories (EINVAL); nothing more to do there. */
    int rc = fsync(fd) != 0 && errno != EINVAL ? -1 : 0;
    int e = errno;
    close(fd);
    if (rc) return lf_fail(err, "%s: fsync of directory failed: %s", dir, strerror(e));
    return 0;
}

/* fsync the directory holding path, so a rename or a new entry survives a crash. */
static int sync_parent_dir(const char *path, LfError *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    return dir_sync(dir, err);
}

int symlink_replace(const char *target, const char *link, LfError *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", link);
    unlink(tmp); /* left by a crash */
    crash_point();
    if (symlink(target, tmp))
        return lf_fail(err, "%s: cannot create symlink: %s", tmp, strerror(errno));
    crash_point();
    if (rename(tmp, link)) {
        int e = errno;
        unlink(tmp);
        return lf_fail(err, "%s: cannot replace with a symlink: %s", link, strerror(e));
    }
    return sync_parent_dir(link, err);
}

int atomic_file_commit(AtomicFile *f, LfError *err) {
    if (f->fd < 0) return lf_fail(err, "%s: commit of a closed atomic file", f->path);
    crash_point();
    if (fsync(f->fd) != 0) return atomic_file_fail(f, "fsync failed", err);
    int rc = close(f->fd);
    f->fd = -1;
    crash_point();
    if (rc != 0 || rename(f->tmp_path, f->path) != 0) {
        int e = errno;
        unlink(f->tmp_path);
        return lf_fail(err, "%s: cannot replace with %s: %s", f->path, f->tmp_path, strerror(e));
    }
    return sync_parent_dir(f->path, err);
}

void atomic_file_abort(AtomicFile *f) {
    if (f->fd < 0) return;
    close(f->fd);
    unlink(f->tmp_path);
    f->fd = -1;
}

int dir_create(const char *path, LfError *err) {
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n <= 0 || (size_t)n >= sizeof buf) return lf_fail(err, "'%s': bad directory path", path);
    /* Create every prefix ending before a '/', then the whole path. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return lf_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = saved;
        if (saved == '\0') break;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lf_fail(err, "%s: exists and is not a directory", path);
    return 0;
}

int path_join(char *out, size_t cap, const char *dir, const char *name, LfError *err) {
    size_t dl = dir ? strlen(dir) : 0;
    const char *sep = dl > 0 && dir[dl - 1] != '/' ? "/" : "";
    int n = snprintf(out, cap, "%s%s%s", dl ? dir : "", sep, name);
    if (n < 0 || (size_t)n >= cap)
        return lf_fail(err, "%s%s%s: path longer than %zu bytes", dl ? dir : "", sep, name,
                       cap - 1);
    return 0;
}

double float_shortest(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}
