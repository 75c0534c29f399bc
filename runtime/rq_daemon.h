/* rq_daemon.h -- daemon.c: process-wide options (SPEC §10.1), set once at
 * startup and read everywhere; scheduler.c: the scheduling decisions of
 * §9 (pure: the clock is a parameter, nothing sleeps or runs here) and
 * the scheduler state file of §9.5. */
#ifndef RQ_DAEMON_H
#define RQ_DAEMON_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include "reqon.h"
#include "rq_schedule.h"

typedef struct {
  const char *data_dir;      /* default .reqon-data */
  const char *auth_file;
  const char *stores_file;
  const char *env_file;
  const char *output_dir;
  bool once;
  bool dry_run;
  bool resume;
  int max_parallel;
  double check_interval_ms;
} RqOptions;

extern RqOptions rqi_opts;
/* Cancels the running missions: set when the shutdown timeout after
 * SIGTERM/SIGINT expires (§10.5); checked at step boundaries, in sleeps
 * and by the curl progress callback. */
extern volatile sig_atomic_t rqi_stop_requested;
/* Set by the first SIGTERM/SIGINT (§10.5), before the shutdown timeout
 * sets rqi_stop_requested: a `wait` step ends at once on it (its run is
 * interrupted), since an inbound event may be minutes away. */
extern volatile sig_atomic_t rqi_shutdown_requested;

/* ------------------------------------------------------- scheduler.c */

/* How a run ended (RqRunResult.status of rq_exec.h). */
enum { RQ_END_COMPLETED, RQ_END_FAILED, RQ_END_ABORTED,
       RQ_END_INTERRUPTED };

/* One scheduled mission.  Times are epoch ms (rq_now_ms()). */
typedef struct {
  const char *name;          /* borrowed from the mission table */
  size_t mission;            /* index in the mission table */
  RqSchedule sched;          /* owned (rqi_schedule_init) */
  int max_concurrency;       /* >= 1 */
  bool skip_if_running;
  bool has_retry;
  int retry_max;
  double retry_delay_ms;
  /* the regular schedule: what rqi_schedule_next is given */
  RqSchedState st;
  bool has_next;
  double next_ms;            /* the next regular due time */
  /* a retry after a failed run (§9.4); never moves next_ms */
  bool has_retry_at;
  double retry_at_ms;
  /* a due run that has not started: waiting for the mission's own slot
   * (skipIfRunning: false) or for --max-parallel.  At most one. */
  bool pending;
  bool pending_retry;        /* it is a retry (trigger "retry") */
  double pending_due_ms;
  int running;
  /* §9.5 counters */
  bool ran;
  double last_run_ms;        /* start of the newest run, retries too */
  int last_status;           /* -1 none, else RQ_END_* */
  long run_count;            /* runs started */
  long failure_count;        /* runs failed or aborted */
  int consecutive_failures;
} RqSchedJob;

typedef struct {
  RqSchedJob *jobs;          /* owned array of n */
  size_t n;
  int max_parallel;          /* --max-parallel */
  int running;               /* runs in progress, all missions */
  json_t *others;            /* owned: state entries of missions not
                                scheduled by this process (--mission),
                                written back unchanged */
} RqScheduler;

typedef enum { RQ_SA_START, RQ_SA_SKIP } RqSchedActKind;

/* One decision of rqi_sched_step for the caller to carry out. */
typedef struct {
  RqSchedActKind kind;
  size_t job;                /* index in RqScheduler.jobs */
  bool retry;                /* START: trigger "retry" */
  double due_ms;             /* the due time it serves */
  bool waiting;              /* SKIP: because a run was still waiting
                                for a slot (not one in progress) */
} RqSchedAction;

/* Prepares job j for mission m (index idx).  Returns 0, or an
 * RQ_SCHED_E* of rq_schedule.h with the message in err (an unknown
 * timezone: exit 3). */
int rqi_sched_job_init(RqSchedJob *j, const RqMissionDef *m, size_t idx,
                       char *err, size_t errlen);
void rqi_sched_free(RqScheduler *s);  /* the jobs, zones and others */

/* Takes the counters and last run of each job from a scheduler state
 * document (§9.5; NULL is fine), so that a restart neither replays a
 * run nor forgets one (§9.1).  Entries of other missions are kept in
 * s->others for rqi_sched_state_json. */
void rqi_sched_restore(RqScheduler *s, const json_t *doc);
/* Computes every job's first due time; call once, after restore. */
void rqi_sched_begin(RqScheduler *s, double now_ms);
/* Consumes what fell due by now_ms and, when may_start, starts pending
 * runs (in due-time order, up to --max-parallel and each mission's
 * maxConcurrency).  Writes at most max decisions to out and returns
 * their number; a START has already been counted as running. */
size_t rqi_sched_step(RqScheduler *s, double now_ms, bool may_start,
                      RqSchedAction *out, size_t max);
/* Records the end of a run of job i (an RQ_END_*).  Returns the delay
 * in ms of the retry it scheduled, or -1 for none. */
double rqi_sched_ended(RqScheduler *s, size_t i, int end, double now_ms);
/* When rqi_sched_step has something to do next (a due time or a
 * retry); false when nothing is scheduled.  A run that ends also makes
 * work (a freed slot): the caller wakes then too. */
bool rqi_sched_wake_at(const RqScheduler *s, double *at_ms);
/* The §9.5 document (NEW reference). */
json_t *rqi_sched_state_json(const RqScheduler *s, double now_ms);
/* <data>/scheduler/state.json: read (NEW reference, NULL when missing
 * or corrupt, logged) and written atomically (0 or -1, logged). */
json_t *rqi_sched_state_read(void);
int rqi_sched_state_write(const RqScheduler *s, double now_ms);

#endif
