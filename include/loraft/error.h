/* error.h: how every libloraft function reports failure.
 * Functions return 0 on success and -1 on failure, after filling an LfError with one
 * message that says what failed and where (file, line, tensor name). The library never
 * prints and never exits; only the CLI decides that. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef struct LfError {
    char msg[1024];
} LfError;

/* Formats the message into err (if err is not NULL) and returns -1, so a failing path
 * reads `return lf_fail(err, "%s: truncated header", path);`. */
int lf_fail(LfError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message with more context ("loading model: <old message>"). */
int lf_wrap(LfError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
