/* rq_store.h -- store.c and its kinds: the registry of store instances.
 * File stores are process-wide, one instance per resolved path (§7.3);
 * memory stores live for one run.  Each store has its own mutex; a store
 * step is applied as one unit (§7.4). */
#ifndef RQ_STORE_H
#define RQ_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include "reqon.h"

typedef struct RqStore RqStore;

/* The instance of the mission's store number idx, opened and loaded on
 * first use.  On failure (corrupt file, ...) calls rq_fail and returns
 * -RQ_E_FAIL. */
int rqi_store_open(const RqEnv *env, RqAt at, int idx, RqStore **out);
/* Applies one store step: recs is an array of objects, keys[i] their keys.
 * merge: shallow-merge into existing records; partial: -1 none, 0/1 sets
 * "_partial".  All or nothing; flushes file stores.  Returns 0 or
 * -RQ_E_FAIL after rq_fail. */
int rqi_store_put(const RqEnv *env, RqAt at, RqStore *st, json_t *recs,
                  const char *const *keys, bool merge, int partial);
json_t *rqi_store_list(RqStore *st);                 /* new array */
json_t *rqi_store_lookup(RqStore *st, const char *key); /* new or NULL */
/* Writes every store of the run's mission to dir/<Mission>/<store>.json
 * (and _dead_letter), as --output requires. */
int rqi_store_output(RqRun *run, const char *dir);
void rqi_store_run_end(RqRun *run);    /* frees the run's memory stores */
void rqi_store_shutdown(void);         /* flushes and frees file stores */

#endif
