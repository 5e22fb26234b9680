/* reward_command.h: a user's program that scores completions (train.reward_command), for GRPO and
 * RLOO. It is started once per run and kept alive, so a scorer that loads something slow (a
 * verifier, a model) pays for it once. The protocol is lockstep, one line each way: loraft writes
 * one request line (a JSON text the caller builds) and reads back one line, a JSON array of exactly
 * n rewards, each a number or null ("this scorer cannot score this completion", NAN here). Messages
 * name the command and count rewards from 0. */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct RewardCommand {
    pid_t pid;      /* the shell's; 0: not running (never started, stopped, or it ended) */
    int fd;         /* loraft's end of the socket that is the child's stdin and stdout */
    int timeout_ms; /* how long one exchange may take: 600 s, set by start (tests lower it) */
    char *buf; /* bytes read and not yet taken: a reply may arrive with the next one behind it */
    size_t len, cap;
    char *command; /* for messages */
} RewardCommand;

/* Starts `/bin/sh -c command` with its stdin/stdout connected to loraft; its stderr stays the
 * terminal's, for the scorer's own messages. A command that cannot run (not found: sh's status
 * 127) shows at the first reward_command_score. */
int reward_command_start(RewardCommand *rc, const char *command, LfError *err);

/* Sends request (one JSON text, no newline in it: one that has '\n' is refused) and reads the
 * reply: n rewards into out (NAN for null). A reply that does not parse, or has the wrong count,
 * fails and leaves the scorer running; a scorer that exits, breaks the connection or times out is
 * stopped, and every later call fails. */
int reward_command_score(RewardCommand *rc, const char *request, int n, float *out, LfError *err);

/* Closes its stdin, waits for it (kills it with SIGTERM if it has not exited after ~2 s, then
 * SIGKILL); safe on a zeroed or stopped struct. */
void reward_command_stop(RewardCommand *rc);

#ifdef __cplusplus
}
#endif
