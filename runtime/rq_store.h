/* rq_store.h -- store.c and its kinds: the registry of store instances.
 * File stores are process-wide, one instance per resolved path (§7.3);
 * memory stores live for one run.  Each store has its own mutex; a store
 * step is applied as one unit (§7.4). */
#ifndef RQ_STORE_H
#define RQ_STORE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include "reqon.h"

typedef struct RqStore RqStore;

/* Store index of the mission's implicit dead-letter store
 * <data>/<Mission>/_dead_letter.json (the target of a bare `queue`). */
#define RQ_STORE_DEAD_LETTER (-1)

/* The instance of the mission's store number idx (or
 * RQ_STORE_DEAD_LETTER), opened and loaded on first use.  On failure
 * (corrupt file, ...) calls rq_fail and returns -RQ_E_FAIL; a store that
 * failed to load stays broken for the life of the process. */
int rqi_store_open(const RqEnv *env, RqAt at, int idx, RqStore **out);
/* Applies one store step: recs is an array of objects, keys[i] their keys.
 * merge: shallow-merge into existing records; partial: -1 none, 0/1 sets
 * "_partial".  All or nothing; flushes file stores.  recs is borrowed and
 * never modified (the store keeps deep copies).  name is the store's
 * name in the caller's mission, for messages (a file store shared by
 * several missions may have a different name in each).  Returns 0 or
 * -RQ_E_FAIL after rq_fail. */
int rqi_store_put(const RqEnv *env, RqAt at, RqStore *st, const char *name,
                  json_t *recs, const char *const *keys, bool merge,
                  int partial);
/* A unit of work: the records of one store step, staged before they are
 * applied as one unit (§7.4).  A streaming paginated step (§6.5) adds
 * each page's records as the page arrives; rqi_store_put adds them all
 * at once.  Nothing is visible to readers before the commit. */
typedef struct {
  json_t *staged;      /* new object: key -> record (deep copies, merged
                          among the unit's records), first-insertion
                          order */
  bool merge;
  int partial;         /* -1 none, 0/1 sets "_partial" */
  bool nul_name;       /* a record has a NUL in a field name */
  size_t n;            /* records added */
} RqStoreUnit;

void rqi_store_unit_init(RqStoreUnit *u, bool merge, int partial);
/* Stages rec (borrowed, an object; never modified) under key (copied). */
void rqi_store_unit_add(RqStoreUnit *u, json_t *rec, const char *key);
/* Applies the unit to st as one step, exactly as rqi_store_put would:
 * fails first when a record has a NUL in a field name and st is a file
 * store; flushes; rolls back on a failed flush.  The unit stays owned by
 * the caller (rqi_store_unit_free).  Returns 0 or -RQ_E_FAIL after
 * rq_fail. */
int rqi_store_unit_commit(const RqEnv *env, RqAt at, RqStore *st,
                          const char *name, RqStoreUnit *u);
void rqi_store_unit_free(RqStoreUnit *u);

/* New array holding the records in store order.  The records themselves
 * are shared with the store and MUST NOT be modified (stored records are
 * never changed in place, so the snapshot stays valid). */
json_t *rqi_store_list(RqStore *st);
/* New reference to the record at key (shared, read-only), or NULL. */
json_t *rqi_store_lookup(RqStore *st, const char *key);
/* Writes every store of the run's mission to dir/<Mission>/<store>.json
 * (and _dead_letter when it exists), as --output requires.  Stores that
 * failed to load are left out with a WARN.  Returns 0, or -1 when a file
 * could not be written (logged). */
int rqi_store_output(RqRun *run, const char *dir);
/* End of a root run: writes --output (rqi_opts.output_dir, --once mode
 * only, never in --dry-run) and frees the run's memory stores.  Does
 * nothing for the runs of parallel actions. */
void rqi_store_run_end(RqRun *run);
/* Frees the file stores.  Nothing is pending: every step that changed a
 * file store flushed it before succeeding (a failed flush rolls the step
 * back), so memory and disk always agree. */
void rqi_store_shutdown(void);

/* ------------------------------------------- private to store*.c */
/* What differs between kinds.  The records of memory and file stores are
 * kept in one jansson object (insertion ordered); a kind only says how
 * they are loaded and persisted. */
typedef struct {
  const char *kind;                   /* "memory", "file" */
  /* Fills st->recs (new object).  Returns 0, or -1 with the reason in
   * err ("corrupt file <path>"). */
  int (*load)(RqStore *st, char *err, size_t n);
  /* Persists st->recs.  Returns 0, or -1 with errno set. */
  int (*flush)(RqStore *st);
} RqStoreOps;

struct RqStore {
  const RqStoreOps *ops;
  char *id;              /* memory: the target name; file: its path */
  char *name;            /* declared name at first open (rqi_store_put
                            takes the caller's name for messages) */
  json_t *recs;          /* owned object key -> record, or NULL */
  pthread_mutex_t mu;    /* guards everything below */
  bool loaded;
  bool broken;           /* load failed: never flushed nor output */
  bool dir_ready;        /* file: directory and .gitignore prepared */
  char err[512];         /* why it is broken */
  RqStore *next;         /* registry list */
};

/* Writes v as pretty JSON (2-space indent, final newline) to path
 * atomically, creating parent directories.  Returns 0 or -1 with errno.
 * Shared with state.c (checkpoint files). */
int rqi_store_write_json(const char *path, const json_t *v);

extern const RqStoreOps rqi_store_memory_ops;
extern const RqStoreOps rqi_store_file_ops;

#endif
