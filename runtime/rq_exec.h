/* rq_exec.h -- exec.c: one mission run.  RqRun holds the state of a run,
 * RqScope the scopes of SPEC §4.1; exec.c interprets the step tables of
 * reqon.h and calls the generated expression functions. */
#ifndef RQ_EXEC_H
#define RQ_EXEC_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include "reqon.h"

struct RqScope {
  RqScope *parent;
  json_t *vars;        /* owned object: variable name -> value */
  json_t *response;    /* owned; NULL = none */
  int status;          /* status() of the latest HTTP step, 0 if none */
  json_t *headers;     /* owned object of lower-cased response headers */
};

struct RqRun {
  const RqMissionDef *m;
  const char *const *files;   /* .reqon paths, indexed by RqAt.file */
  char exec_id[48];
  RqRun *parent;              /* the run of a parallel stage's action */
  RqScope *mission_scope;
  char **bases;               /* evaluated source bases (per run) */
  json_t *candidates;         /* checkpoint candidates of the action */
  long cand_seq;              /* the last candidate's number (state.c) */
  const char *action;         /* current action name */
  int jump_depth;
  /* the error of the failing step */
  char err[2048];
  RqAt err_at;
  bool failed;
  void *stores;               /* per-run memory stores (store.c); only the
                                 root run's is used: see rqi_exec_root */
  pthread_mutex_t *mu;        /* the root run's mutex, shared by the runs
                                 of a parallel stage's actions; guards
                                 shared run state (stores, warned) */
  /* exec.c bookkeeping */
  bool logged;                /* the ERROR line of err was written */
  int err_code;               /* RQ_E_* of err (FAIL, ABORT, INTERRUPT) */
  const RqStep **warned;      /* root only: store steps that logged the
                                 content-hash WARN in this run */
  size_t n_warned;
  size_t cap_warned;
  double started_ms;          /* wall clock at run start */
  const RqStep *retry_dir;    /* the retry directive being propagated;
                                 NULL: defaults (jump ... then retry) */
  const char *err_label;      /* label of the step that failed */
  json_t *record;             /* root only: the execution record (§8.2) */
};

/* The root run of run (itself unless run belongs to an action of a
 * parallel stage).  Run-wide state -- memory stores, the mutex -- lives
 * there; store.c must use rqi_exec_root(run)->stores. */
RqRun *rqi_exec_root(RqRun *run);

/* Scopes. rqi_scope_get walks the chain; returns borrowed or NULL. */
RqScope *rqi_scope_new(RqScope *parent);       /* response inherited */
void rqi_scope_free(RqScope *s);
json_t *rqi_scope_get(const RqScope *s, const char *name);
void rqi_scope_set_new(RqScope *s, const char *name, json_t *v); /* steals */
/* Sets response (steals v), status and headers (steals h; may be NULL). */
void rqi_scope_set_response_new(RqScope *s, json_t *v, int status,
                                json_t *h);

/* Result of one run. */
typedef struct {
  int status;                 /* 0 completed, 1 failed, 2 aborted,
                                 3 interrupted */
  double duration_ms;
  char error[2048];
} RqRunResult;

/* Runs mission m once.  trigger: "once", "schedule", "retry", "resume".
 * Returns 0 if the run completed. */
int rqi_exec_run(const RqMissionDef *m, const char *const *files,
                 const char *trigger, RqRunResult *res);

/* At daemon start (SPEC §8.3): looks at the newest execution record of
 * m.  If its status is running (a crash) or interrupted: with resume,
 * returns true and the caller runs m with trigger "resume", which skips
 * the stages recorded as completed or skipped; without resume, the record
 * is rewritten as failed with the error "interrupted" and false is
 * returned.  Returns false in every other case. */
bool rqi_exec_recover(const RqMissionDef *m, bool resume);

/* "file:line:col" of at, into out (size n). */
void rqi_exec_format_at(const RqRun *run, RqAt at, char *out, size_t n);

#endif
