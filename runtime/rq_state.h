/* rq_state.h -- state.c: checkpoints (SPEC §8.1) and the data-directory
 * lock (§8.4).  Files live under the data directory of rq_daemon.h. */
#ifndef RQ_STATE_H
#define RQ_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include "reqon.h"

/* The stored checkpoint time of key for the run's mission, as ms since the
 * epoch; false when there is none. */
bool rqi_checkpoint_get(RqRun *run, const char *key, double *ms);
/* Records a candidate (first request time, or updateFrom) for the current
 * action; committed by rqi_checkpoint_commit when the action succeeds. */
void rqi_checkpoint_candidate(RqRun *run, const char *key, double ms,
                              int record_count);
/* Commits the action's candidates atomically (never in --dry-run) and
 * clears them.  Returns 0 or -1 after logging. */
int rqi_checkpoint_commit(RqRun *run);
/* A mark of the candidates so far, and the rollback to it: candidates
 * recorded after the mark are dropped (those they replaced come back).
 * For retried regions (§8.1 rule 5). */
long rqi_checkpoint_mark(const RqRun *run);
void rqi_checkpoint_rollback(RqRun *run, long mark);
void rqi_checkpoint_discard(RqRun *run);
/* Frees the cached checkpoint files (clean shutdown). */
void rqi_state_shutdown(void);

/* Takes the exclusive lock <data>/.lock.  Returns 0; 4 with the message
 * "data dir <path> is in use by pid N" printed when held elsewhere; or 4
 * when the directory cannot be created. */
int rqi_state_lock(const char *data_dir);
void rqi_state_unlock(void);

#endif
