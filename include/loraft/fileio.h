/* fileio.h: whole-file reads, crash-safe (atomic) writes, mkdir -p and path
 * joining. Atomic writes go to `<path>.tmp.<pid>` in the same directory, are
 * fsynced, renamed over the target and the directory is fsynced: a crash leaves
 * either the old file or the new one, never a half-written mix. */
#pragma once
#include <stddef.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens a regular file for reading (a directory is an error) and gives its size. */
int file_open_read(const char *path, int *fd, size_t *size, LfError *err);

/* Reads the whole file into a malloc'd, NUL-terminated buffer (*len excludes
 * the NUL). The caller frees *data. */
int file_read_all(const char *path, char **data, size_t *len, LfError *err);

/* Replaces path with exactly len bytes of data, atomically. */
int file_write_atomic(const char *path, const void *data, size_t len, LfError *err);

/* Streaming variant for large files: open, write any number of times, then
 * commit (rename into place) or abort (remove the temp file). After a failed
 * write or commit the temp file is already removed; abort is then a harmless
 * no-op. */
typedef struct AtomicFile {
    int fd; /* -1 when not open */
    char path[4096];
    char tmp_path[4096 + 32];
} AtomicFile;

int atomic_file_open(AtomicFile *f, const char *path, LfError *err);
int atomic_file_write(AtomicFile *f, const void *data, size_t len, LfError *err);
int atomic_file_commit(AtomicFile *f, LfError *err);
void atomic_file_abort(AtomicFile *f);

/* fsync a directory, so entries created or renamed in it survive a crash. */
int dir_sync(const char *dir, LfError *err);

/* Points link at target atomically: a symlink named link.tmp, renamed over link, then
 * the parent directory fsynced. link is never missing once it existed. */
int symlink_replace(const char *target, const char *link, LfError *err);

/* Crash injection for the durability test (tests/test_crash_resume.sh): with
 * LORAFT_CRASH_AT=N in the environment, the Nth durable step of the process (creating a
 * temp file, fsync, rename, symlink, removal of a checkpoint) kills it with SIGKILL, as
 * kill -9 would. Writes into a temp file nobody can see yet are not steps: a crash
 * between two of them leaves the same state as one right after its creation. */
void crash_point(void);

/* mkdir -p: creates path and its missing parents (mode 0755); ok when it
 * already exists as a directory. */
int dir_create(const char *path, LfError *err);

/* out = dir + "/" + name (no doubled slash; name alone when dir is "" or NULL).
 * Fails when the result does not fit in cap bytes. */
int path_join(char *out, size_t cap, const char *dir, const char *name, LfError *err);

/* The float as the shortest decimal that reads back to it (0.1f -> 0.1, not
 * 0.10000000149011612), for JSON files that look like the ones transformers and peft write. */
double float_shortest(float f);

#ifdef __cplusplus
}
#endif
