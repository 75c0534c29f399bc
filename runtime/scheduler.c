/* scheduler.c -- the scheduling decisions of SPEC §9 and the scheduler
 * state file (§9.5).
 *
 * Everything here is pure bookkeeping with the clock passed in, so the
 * unit tests drive it with an injected clock; daemon.c owns the threads,
 * the sleeping and the logging, and calls these with its mutex held.
 *
 * A job moves through: due (its regular time, or a retry time) ->
 * pending (at most one run waiting to start) -> running -> ended.
 *   - A due run while the mission is at maxConcurrency is skipped when
 *     skipIfRunning (default), else it becomes the one pending run; a
 *     due run while one is already pending is skipped (§9.3).
 *   - Pending runs start in due-time order (ties: declaration order)
 *     while fewer than --max-parallel runs are in progress.
 *   - The regular due time advances when a due time is consumed, and is
 *     recomputed from the actual start when a regular run starts
 *     (`every` counts from lastStart).  Retries never touch it (§9.4); a
 *     regular run that starts supersedes a retry still to come.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "rq_internal.h"

int rqi_sched_job_init(RqSchedJob *j, const RqMissionDef *m, size_t idx,
                       char *err, size_t errlen)
{
  const RqScheduleDef *d = &m->schedule;
  int rc;
  memset(j, 0, sizeof *j);
  rc = rqi_schedule_init(d, &j->sched, err, errlen);
  if (rc != 0)
    return rc;
  j->name = m->name;
  j->mission = idx;
  j->max_concurrency = d->max_concurrency >= 1 ? d->max_concurrency : 1;
  j->skip_if_running = d->skip_if_running;
  j->has_retry = d->has_retry;
  j->retry_max = d->retry_max;
  j->retry_delay_ms = d->retry_delay_s * 1000.0;
  j->last_status = -1;
  return 0;
}

void rqi_sched_free(RqScheduler *s)
{
  for (size_t i = 0; i < s->n; i++)
    rqi_schedule_clear(&s->jobs[i].sched);
  rq_free(s->jobs);
  s->jobs = NULL;
  s->n = 0;
  json_decref(s->others);
  s->others = NULL;
}

/* lastStatus by RQ_END_*: an aborted run is "failed", as in its
 * execution record (§8.2). */
static const char *const status_names[] = {
  "completed", "failed", "failed", "interrupted",
};

static bool json_time(const json_t *v, double *ms)
{
  const char *s = json_string_value(v);
  return s && rq_parse_time(s, ms);
}

void rqi_sched_restore(RqScheduler *s, const json_t *doc)
{
  const json_t *jobs = json_object_get(doc, "jobs");
  const char *key;
  const json_t *v;
  json_decref(s->others);
  s->others = json_object();
  /* Missions left out by --mission keep their state. */
  json_object_foreach((json_t *)jobs, key, v) {
    bool ours = false;
    for (size_t i = 0; i < s->n && !ours; i++)
      ours = strcmp(s->jobs[i].name, key) == 0;
    if (!ours && json_is_object(v))
      json_object_set_new(s->others, key, json_deep_copy(v));
  }
  for (size_t i = 0; i < s->n; i++) {
    RqSchedJob *j = &s->jobs[i];
    const json_t *e = json_object_get(jobs, j->name);
    const char *st;
    double t;
    if (!json_is_object(e))
      continue;
    if (json_time(json_object_get(e, "lastRun"), &t)) {
      /* The last start is what `every` counts from, and the last due
       * time a cron or dated `at` served (no replay, §9.1). */
      j->ran = true;
      j->last_run_ms = t;
      j->st.ran = true;
      j->st.last_run_ms = t;
      j->st.scheduled = true;
      j->st.last_scheduled_ms = t;
    }
    st = json_string_value(json_object_get(e, "lastStatus"));
    for (int k = 0; st && k < 4; k++)
      if (strcmp(st, status_names[k]) == 0) {
        j->last_status = k;
        break;
      }
    if (json_integer_value(json_object_get(e, "runCount")) > 0)
      j->run_count = (long)json_integer_value(json_object_get(e,
                                                              "runCount"));
    if (json_integer_value(json_object_get(e, "failureCount")) > 0)
      j->failure_count =
        (long)json_integer_value(json_object_get(e, "failureCount"));
    if (json_integer_value(json_object_get(e, "consecutiveFailures")) > 0)
      j->consecutive_failures = (int)json_integer_value(
        json_object_get(e, "consecutiveFailures"));
  }
}

void rqi_sched_begin(RqScheduler *s, double now_ms)
{
  for (size_t i = 0; i < s->n; i++) {
    RqSchedJob *j = &s->jobs[i];
    j->has_next = rqi_schedule_next(&j->sched, &j->st, now_ms, &j->next_ms);
  }
}

/* The regular due time d was consumed without a run starting at it
 * (yet): move on to the next one, never replaying missed ones. */
static void advance(RqSchedJob *j, double d, double now)
{
  RqSchedState st = j->st;
  j->st.scheduled = true;
  j->st.last_scheduled_ms = d;
  if (j->sched.kind == RQ_SCHED_EVERY) {
    /* From the due time; recomputed from the start when it starts. */
    j->next_ms = d + j->sched.every_ms;
    if (j->next_ms <= now)
      j->next_ms = now + j->sched.every_ms;
    j->has_next = true;
    return;
  }
  st.scheduled = true;
  st.last_scheduled_ms = d;
  j->has_next = rqi_schedule_next(&j->sched, &st, now, &j->next_ms);
  /* cron is strictly after the later of now and d; a dated `at` is
   * done; both are > now or absent. */
}

/* A run fell due at d: pending, or skipped (one SKIP into out). */
static size_t fall_due(RqSchedJob *j, size_t idx, double d, bool retry,
                       RqSchedAction *out, size_t max)
{
  bool full = j->running >= j->max_concurrency;
  if (!j->pending && (!full || !j->skip_if_running)) {
    j->pending = true;
    j->pending_retry = retry;
    j->pending_due_ms = d;
    return 0;
  }
  if (retry && j->pending)
    return 0;   /* a run is about to start anyway: it serves the retry */
  if (max == 0)
    return 0;
  out->kind = RQ_SA_SKIP;
  out->job = idx;
  out->retry = retry;
  out->due_ms = d;
  out->waiting = j->pending && j->running < j->max_concurrency;
  return 1;
}

static void start(RqScheduler *s, RqSchedJob *j, double now)
{
  j->pending = false;
  j->running++;
  s->running++;
  j->ran = true;
  j->last_run_ms = now;
  j->run_count++;
  if (j->pending_retry)
    return;     /* retries do not move the regular schedule (§9.4) */
  j->has_retry_at = false;    /* this run supersedes a retry to come */
  j->st.ran = true;
  j->st.last_run_ms = now;
  j->st.scheduled = true;
  if (j->pending_due_ms > j->st.last_scheduled_ms)
    j->st.last_scheduled_ms = j->pending_due_ms;
  j->has_next = rqi_schedule_next(&j->sched, &j->st, now, &j->next_ms);
  if (j->has_next && j->next_ms <= now && j->sched.kind == RQ_SCHED_EVERY)
    j->next_ms = now + j->sched.every_ms;
}

size_t rqi_sched_step(RqScheduler *s, double now_ms, bool may_start,
                      RqSchedAction *out, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++) {
    RqSchedJob *j = &s->jobs[i];
    if (j->has_next && j->next_ms <= now_ms) {
      double d = j->next_ms;
      advance(j, d, now_ms);
      n += fall_due(j, i, d, false, out + n, max - n);
    }
    if (j->has_retry_at && j->retry_at_ms <= now_ms) {
      j->has_retry_at = false;
      n += fall_due(j, i, j->retry_at_ms, true, out + n, max - n);
    }
  }
  while (may_start && s->running < s->max_parallel && n < max) {
    RqSchedJob *best = NULL;
    size_t bi = 0;
    for (size_t i = 0; i < s->n; i++) {
      RqSchedJob *j = &s->jobs[i];
      if (!j->pending || j->running >= j->max_concurrency)
        continue;
      if (!best || j->pending_due_ms < best->pending_due_ms) {
        best = j;
        bi = i;
      }
    }
    if (!best)
      break;
    out[n].kind = RQ_SA_START;
    out[n].job = bi;
    out[n].retry = best->pending_retry;
    out[n].due_ms = best->pending_due_ms;
    out[n].waiting = false;
    n++;
    start(s, best, now_ms);
  }
  return n;
}

double rqi_sched_ended(RqScheduler *s, size_t i, int end, double now_ms)
{
  RqSchedJob *j = &s->jobs[i];
  if (j->running > 0)
    j->running--;
  if (s->running > 0)
    s->running--;
  j->last_status = end;
  switch (end) {
  case RQ_END_COMPLETED:
    j->consecutive_failures = 0;
    j->has_retry_at = false;
    return -1;
  case RQ_END_INTERRUPTED:
    /* The daemon stopped it; the API did not fail (as in metrics.c). */
    return -1;
  case RQ_END_ABORTED:
    j->failure_count++;
    j->consecutive_failures++;
    return -1;     /* `abort` is deliberate: never retried (§9.4) */
  default:
    j->failure_count++;
    j->consecutive_failures++;
    if (!j->has_retry || j->consecutive_failures > j->retry_max)
      return -1;
    j->has_retry_at = true;
    j->retry_at_ms = now_ms + j->retry_delay_ms;
    return j->retry_delay_ms;
  }
}

bool rqi_sched_wake_at(const RqScheduler *s, double *at_ms)
{
  bool any = false;
  for (size_t i = 0; i < s->n; i++) {
    const RqSchedJob *j = &s->jobs[i];
    if (j->has_next && (!any || j->next_ms < *at_ms)) {
      *at_ms = j->next_ms;
      any = true;
    }
    if (j->has_retry_at && (!any || j->retry_at_ms < *at_ms)) {
      *at_ms = j->retry_at_ms;
      any = true;
    }
  }
  return any;
}

static json_t *time_or_null(bool known, double ms)
{
  char iso[40];
  if (!known)
    return json_null();
  rq_iso_time(ms, iso);
  return iso[0] ? json_string(iso) : json_null();
}

json_t *rqi_sched_state_json(const RqScheduler *s, double now_ms)
{
  json_t *doc = json_object();
  json_t *jobs = json_object();
  const char *key;
  json_t *v;
  json_object_foreach(s->others, key, v)
    json_object_set(jobs, key, v);
  for (size_t i = 0; i < s->n; i++) {
    const RqSchedJob *j = &s->jobs[i];
    json_t *e = json_object();
    double next = j->next_ms;
    bool has = j->has_next;
    if (j->has_retry_at && (!has || j->retry_at_ms < next)) {
      next = j->retry_at_ms;
      has = true;
    }
    json_object_set_new(e, "lastRun", time_or_null(j->ran, j->last_run_ms));
    json_object_set_new(e, "lastStatus", j->last_status >= 0 ?
                        json_string(status_names[j->last_status]) :
                        json_null());
    json_object_set_new(e, "nextRun", time_or_null(has, next));
    json_object_set_new(e, "runCount", json_integer(j->run_count));
    json_object_set_new(e, "failureCount", json_integer(j->failure_count));
    json_object_set_new(e, "consecutiveFailures",
                        json_integer(j->consecutive_failures));
    json_object_set_new(jobs, j->name, e);
  }
  json_object_set_new(doc, "jobs", jobs);
  json_object_set_new(doc, "updatedAt", time_or_null(true, now_ms));
  return doc;
}

static char *state_path(void)
{
  return rq_asprintf("%s/scheduler/state.json", rqi_opts.data_dir ?
                     rqi_opts.data_dir : ".reqon-data");
}

json_t *rqi_sched_state_read(void)
{
  char *path = state_path();
  json_error_t je;
  json_t *doc = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    doc = json_loadfd(fd, 0, &je);
    close(fd);
    if (!json_is_object(doc)) {
      /* Only saves a replay; the next write replaces it. */
      rq_log(RQ_LOG_WARN, NULL, "scheduler state %s is corrupt (%s); "
             "starting without it", path, doc ? "not an object" : je.text);
      json_decref(doc);
      doc = NULL;
    }
  } else if (errno != ENOENT) {
    rq_log(RQ_LOG_WARN, NULL, "cannot read scheduler state %s: %s", path,
           strerror(errno));
  }
  rq_free(path);
  return doc;
}

int rqi_sched_state_write(const RqScheduler *s, double now_ms)
{
  char *path = state_path();
  json_t *doc = rqi_sched_state_json(s, now_ms);
  int rc = rqi_store_write_json(path, doc);
  if (rc != 0)
    rq_log(RQ_LOG_ERROR, NULL, "cannot write scheduler state %s: %s", path,
           strerror(errno));
  json_decref(doc);
  rq_free(path);
  return rc;
}
