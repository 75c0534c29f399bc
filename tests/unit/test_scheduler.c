/* test_scheduler.c -- unit tests of runtime/scheduler.c, the scheduling
 * decisions of SPEC §9.1, §9.3-§9.5, with an injected clock (nothing
 * sleeps, no thread runs): first runs, `every` from the last start,
 * skipIfRunning, the one deferred run of skipIfRunning: false,
 * maxConcurrency, schedule retry (delay, limit, reset, not after abort,
 * not moving the schedule), --max-parallel in due-time order, and the
 * state file document and its restore (no replay, no forgotten run). */
#include "rq_internal.h"
#include "check.h"

#include <time.h>

#define SEC 1000.0
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* Epoch ms of a UTC civil time, by glibc. */
static double utc(int y, int mo, int d, int h, int mi)
{
  struct tm tm = { 0 };
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (double)timegm(&tm) * 1000.0;
}

static RqMissionDef mission(const char *name, RqSchedKind kind,
                            double every_ms, const char *expr)
{
  RqMissionDef m;
  memset(&m, 0, sizeof m);
  m.name = name;
  m.schedule.kind = kind;
  m.schedule.every_ms = every_ms;
  m.schedule.expr = expr;
  m.schedule.max_concurrency = 1;
  m.schedule.skip_if_running = true;
  m.schedule.retry_max = 3;
  m.schedule.retry_delay_s = 60;
  return m;
}

/* A scheduler over the n missions ms, max_parallel p. */
static void setup(RqScheduler *s, const RqMissionDef *ms, size_t n, int p)
{
  char err[128];
  s->jobs = rq_calloc(n + 1, sizeof *s->jobs);
  s->n = 0;
  s->max_parallel = p;
  s->running = 0;
  s->others = NULL;
  for (size_t i = 0; i < n; i++) {
    int rc = rqi_sched_job_init(&s->jobs[s->n], &ms[i], i, err, sizeof err);
    CHECK(rc == 0);
    if (rc == 0)
      s->n++;
  }
}

/* Steps at now; returns the number of decisions, copies them to out. */
static size_t step(RqScheduler *s, double now, RqSchedAction *out)
{
  return rqi_sched_step(s, now, true, out, 16);
}

static size_t count(const RqSchedAction *a, size_t n, RqSchedActKind k)
{
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += a[i].kind == k;
  return c;
}

static void test_every_skip(void)
{
  RqMissionDef m = mission("E", RQ_SCHED_EVERY, 10 * SEC, NULL);
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 0);
  size_t n;
  setup(&s, &m, 1, 4);
  rqi_sched_begin(&s, t0);
  CHECK(s.jobs[0].has_next && s.jobs[0].next_ms == t0);  /* at start */
  n = step(&s, t0, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START && !a[0].retry);
  CHECK(s.jobs[0].running == 1 && s.running == 1);
  CHECK(s.jobs[0].next_ms == t0 + 10 * SEC);
  CHECK(step(&s, t0 + 5 * SEC, a) == 0);
  /* Due while running: skipped (skipIfRunning default true). */
  n = step(&s, t0 + 10 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_SKIP && !a[0].waiting);
  CHECK(s.jobs[0].next_ms == t0 + 20 * SEC);
  CHECK(rqi_sched_ended(&s, 0, RQ_END_COMPLETED, t0 + 12 * SEC) < 0);
  CHECK(s.running == 0 && s.jobs[0].running == 0);
  CHECK(step(&s, t0 + 15 * SEC, a) == 0);   /* no make-up run */
  /* lastStart + interval: a run starting late moves the next one. */
  n = step(&s, t0 + 23 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START);
  CHECK(s.jobs[0].next_ms == t0 + 33 * SEC);
  rqi_sched_ended(&s, 0, RQ_END_COMPLETED, t0 + 24 * SEC);
  /* Downtime: missed runs are not replayed, one runs now. */
  n = step(&s, t0 + 500 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START);
  CHECK(s.jobs[0].next_ms == t0 + 510 * SEC);
  CHECK(s.jobs[0].run_count == 3);
  rqi_sched_free(&s);
}

static void test_defer_and_concurrency(void)
{
  RqMissionDef ms[2] = {
    mission("D", RQ_SCHED_EVERY, 10 * SEC, NULL),
    mission("C", RQ_SCHED_EVERY, 10 * SEC, NULL),
  };
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 0);
  size_t n;
  ms[0].schedule.skip_if_running = false;
  ms[1].schedule.max_concurrency = 2;
  setup(&s, ms, 2, 8);
  rqi_sched_begin(&s, t0);
  n = step(&s, t0, a);
  CHECK(n == 2 && count(a, n, RQ_SA_START) == 2);
  /* D at its limit: one run deferred, C starts a second run. */
  n = step(&s, t0 + 10 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START && a[0].job == 1);
  CHECK(s.jobs[0].pending && s.jobs[1].running == 2);
  /* The next due of D while one is deferred: skipped (at most one
   * deferred run); C at maxConcurrency 2: skipped. */
  n = step(&s, t0 + 20 * SEC, a);
  CHECK(n == 2 && count(a, n, RQ_SA_SKIP) == 2);
  CHECK(a[0].job == 0 && !a[0].waiting);
  CHECK(a[1].job == 1 && !a[1].waiting);
  /* D's slot frees: the deferred run starts at once, and `every`
   * counts from that start. */
  rqi_sched_ended(&s, 0, RQ_END_COMPLETED, t0 + 25 * SEC);
  n = step(&s, t0 + 25 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START && a[0].job == 0);
  CHECK(a[0].due_ms == t0 + 10 * SEC);
  CHECK(!s.jobs[0].pending && s.jobs[0].running == 1);
  CHECK(s.jobs[0].next_ms == t0 + 35 * SEC);
  rqi_sched_free(&s);
}

static void test_max_parallel_order(void)
{
  RqMissionDef ms[3] = {
    mission("A", RQ_SCHED_EVERY, HOUR, NULL),
    mission("B", RQ_SCHED_EVERY, 10 * SEC, NULL),
    mission("C", RQ_SCHED_EVERY, 20 * SEC, NULL),
  };
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 0);
  size_t n;
  setup(&s, ms, 3, 1);
  rqi_sched_begin(&s, t0);
  /* All due at start: one runs (declaration order breaks the tie). */
  n = step(&s, t0, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START && a[0].job == 0);
  CHECK(s.jobs[1].pending && s.jobs[2].pending && s.running == 1);
  /* Slot frees: B (due t0) before C (due t0) by order, then C. */
  rqi_sched_ended(&s, 0, RQ_END_COMPLETED, t0 + 1 * SEC);
  n = step(&s, t0 + 1 * SEC, a);
  CHECK(n == 1 && a[0].job == 1);
  /* B's next due (t0+11s) comes while C waits from t0 and B runs: B
   * is skipped; C, waiting, gets the slot first. */
  n = step(&s, t0 + 11 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_SKIP && a[0].job == 1);
  rqi_sched_ended(&s, 1, RQ_END_COMPLETED, t0 + 12 * SEC);
  n = step(&s, t0 + 12 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START && a[0].job == 2);
  /* B falls due (t0+21s) while C holds the only slot: it waits. */
  n = step(&s, t0 + 21 * SEC, a);
  CHECK(n == 0 && s.jobs[1].pending);
  /* At t0+32s B is due again while its run still waits (skipped,
   * "waiting"), and C (its start + 20s) while it runs (skipped). */
  n = step(&s, t0 + 32 * SEC, a);
  CHECK(n == 2 && count(a, n, RQ_SA_SKIP) == 2);
  CHECK(a[0].job == 1 && a[0].waiting);
  CHECK(a[1].job == 2 && !a[1].waiting);
  rqi_sched_ended(&s, 2, RQ_END_COMPLETED, t0 + 33 * SEC);
  n = step(&s, t0 + 33 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START && a[0].job == 1);
  rqi_sched_free(&s);
}

/* Due-time order across missions: the earliest due wins, not the
 * declaration order. */
static void test_max_parallel_due_order(void)
{
  RqMissionDef ms[2] = {
    mission("Late", RQ_SCHED_EVERY, 30 * SEC, NULL),
    mission("Early", RQ_SCHED_EVERY, 30 * SEC, NULL),
  };
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 0);
  size_t n;
  json_t *doc = json_pack("{s:{s:{s:s},s:{s:s}}}", "jobs",
                          "Late", "lastRun", "2025-03-04T08:59:50.000Z",
                          "Early", "lastRun", "2025-03-04T08:59:40.000Z");
  setup(&s, ms, 2, 1);
  rqi_sched_restore(&s, doc);
  json_decref(doc);
  rqi_sched_begin(&s, t0);
  CHECK(s.jobs[0].next_ms == t0 + 20 * SEC);
  CHECK(s.jobs[1].next_ms == t0 + 10 * SEC);
  s.running = 1;            /* a run of another mission holds the slot */
  CHECK(step(&s, t0 + 25 * SEC, a) == 0);
  CHECK(s.jobs[0].pending && s.jobs[1].pending);
  s.running = 0;
  n = step(&s, t0 + 26 * SEC, a);
  CHECK(n == 1 && a[0].job == 1 && a[0].due_ms == t0 + 10 * SEC);
  rqi_sched_free(&s);
}

static void test_retry(void)
{
  RqMissionDef m = mission("R", RQ_SCHED_EVERY, HOUR, NULL);
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 0);
  double t;
  size_t n;
  m.schedule.has_retry = true;
  m.schedule.retry_max = 2;
  m.schedule.retry_delay_s = 5;
  setup(&s, &m, 1, 4);
  rqi_sched_begin(&s, t0);
  step(&s, t0, a);
  CHECK(s.jobs[0].next_ms == t0 + HOUR);
  CHECK(rqi_sched_ended(&s, 0, RQ_END_FAILED, t0 + 1 * SEC) == 5 * SEC);
  CHECK(step(&s, t0 + 5 * SEC, a) == 0);     /* not before the delay */
  n = step(&s, t0 + 6 * SEC, a);
  CHECK(n == 1 && a[0].kind == RQ_SA_START && a[0].retry);
  CHECK(s.jobs[0].next_ms == t0 + HOUR);     /* schedule not moved */
  CHECK(rqi_sched_ended(&s, 0, RQ_END_FAILED, t0 + 7 * SEC) == 5 * SEC);
  n = step(&s, t0 + 12 * SEC, a);
  CHECK(n == 1 && a[0].retry);
  /* Third consecutive failure: maxRetries 2 reached, no retry. */
  CHECK(rqi_sched_ended(&s, 0, RQ_END_FAILED, t0 + 13 * SEC) < 0);
  CHECK(s.jobs[0].consecutive_failures == 3);
  CHECK(s.jobs[0].failure_count == 3 && s.jobs[0].run_count == 3);
  CHECK(step(&s, t0 + 30 * MIN, a) == 0);
  CHECK(s.jobs[0].next_ms == t0 + HOUR);
  /* The regular run succeeds: the count resets, and the next failure
   * is retried again. */
  n = step(&s, t0 + HOUR, a);
  CHECK(n == 1 && !a[0].retry);
  CHECK(rqi_sched_ended(&s, 0, RQ_END_COMPLETED, t0 + HOUR + SEC) < 0);
  CHECK(s.jobs[0].consecutive_failures == 0);
  step(&s, t0 + 2 * HOUR, a);
  CHECK(rqi_sched_ended(&s, 0, RQ_END_FAILED, t0 + 2 * HOUR) == 5 * SEC);
  /* A retry time falls in the state's nextRun. */
  {
    json_t *doc = rqi_sched_state_json(&s, t0 + 2 * HOUR);
    json_t *e = json_object_get(json_object_get(doc, "jobs"), "R");
    char iso[40];
    rq_iso_time(t0 + 2 * HOUR + 5 * SEC, iso);
    CHECK_STREQ(json_string_value(json_object_get(e, "nextRun")), iso);
    CHECK_STREQ(json_string_value(json_object_get(e, "lastStatus")),
                "failed");
    CHECK(json_integer_value(json_object_get(e, "consecutiveFailures"))
          == 1);
    json_decref(doc);
  }
  /* abort is never retried; interrupted neither, and it does not
   * count as a failure. */
  t = t0 + 2 * HOUR + 5 * SEC;
  n = step(&s, t, a);
  CHECK(n == 1 && a[0].retry);
  CHECK(rqi_sched_ended(&s, 0, RQ_END_ABORTED, t + SEC) < 0);
  CHECK(!s.jobs[0].has_retry_at && s.jobs[0].consecutive_failures == 2);
  step(&s, t0 + 3 * HOUR, a);
  CHECK(rqi_sched_ended(&s, 0, RQ_END_INTERRUPTED, t0 + 3 * HOUR) < 0);
  CHECK(s.jobs[0].consecutive_failures == 2 && !s.jobs[0].has_retry_at);
  rqi_sched_free(&s);
}

/* Without a retry block a failure is not retried. */
static void test_no_retry_block(void)
{
  RqMissionDef m = mission("N", RQ_SCHED_EVERY, HOUR, NULL);
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 0);
  setup(&s, &m, 1, 4);
  rqi_sched_begin(&s, t0);
  step(&s, t0, a);
  CHECK(rqi_sched_ended(&s, 0, RQ_END_FAILED, t0 + SEC) < 0);
  CHECK(step(&s, t0 + 2 * MIN, a) == 0);
  rqi_sched_free(&s);
}

static void test_restore(void)
{
  RqMissionDef ms[4] = {
    mission("Recent", RQ_SCHED_EVERY, HOUR, NULL),
    mission("Old", RQ_SCHED_EVERY, HOUR, NULL),
    mission("Cron", RQ_SCHED_CRON, 0, "0 * * * *"),
    mission("Once", RQ_SCHED_AT, 0, "2025-03-04T08:00:00Z"),
  };
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 30);
  json_t *doc = json_pack(
    "{s:{s:{s:s,s:s,s:i,s:i,s:i},s:{s:s},s:{s:s},s:{s:s}},s:s}", "jobs",
    "Recent", "lastRun", "2025-03-04T09:10:00.000Z", "lastStatus",
    "failed", "runCount", 7, "failureCount", 2, "consecutiveFailures", 1,
    "Old", "lastRun", "2025-03-04T07:00:00.000Z",
    "Cron", "lastRun", "2025-03-04T07:00:00.000Z",
    "Once", "lastRun", "2025-03-04T08:00:01.000Z",
    "updatedAt", "2025-03-04T09:10:01.000Z");
  size_t n;
  setup(&s, ms, 4, 4);
  rqi_sched_restore(&s, doc);
  json_decref(doc);
  rqi_sched_begin(&s, t0);
  /* every: lastStart + interval; overdue -> once, now. */
  CHECK(s.jobs[0].next_ms == utc(2025, 3, 4, 10, 10));
  CHECK(s.jobs[1].next_ms == t0);
  /* cron: the 08:00 and 09:00 runs were missed; next is 10:00. */
  CHECK(s.jobs[2].next_ms == utc(2025, 3, 4, 10, 0));
  /* the dated at already ran: never again. */
  CHECK(!s.jobs[3].has_next);
  CHECK(s.jobs[0].run_count == 7 && s.jobs[0].failure_count == 2 &&
        s.jobs[0].consecutive_failures == 1 &&
        s.jobs[0].last_status == RQ_END_FAILED);
  n = step(&s, t0, a);
  CHECK(n == 1 && a[0].job == 1);
  rqi_sched_free(&s);

  /* No state: every and a passed dated `at` run at start; cron waits. */
  setup(&s, ms, 4, 4);
  rqi_sched_restore(&s, NULL);
  rqi_sched_begin(&s, t0);
  n = step(&s, t0, a);
  CHECK(n == 3 && count(a, n, RQ_SA_START) == 3);
  CHECK(!s.jobs[3].has_next);       /* done once it started */
  CHECK(s.jobs[2].next_ms == utc(2025, 3, 4, 10, 0));
  rqi_sched_free(&s);
}

static void test_state_json(void)
{
  RqMissionDef ms[2] = {
    mission("A", RQ_SCHED_EVERY, HOUR, NULL),
    mission("B", RQ_SCHED_CRON, 0, "@daily"),
  };
  RqScheduler s;
  RqSchedAction a[16];
  double t0 = utc(2025, 3, 4, 9, 0);
  json_t *doc;
  json_t *e;
  char *text;
  setup(&s, ms, 2, 4);
  rqi_sched_begin(&s, t0);
  step(&s, t0, a);
  rqi_sched_ended(&s, 0, RQ_END_COMPLETED, t0 + 2 * SEC);
  doc = rqi_sched_state_json(&s, t0 + 2 * SEC);
  e = json_object_get(json_object_get(doc, "jobs"), "A");
  CHECK_STREQ(json_string_value(json_object_get(e, "lastRun")),
              "2025-03-04T09:00:00.000Z");
  CHECK_STREQ(json_string_value(json_object_get(e, "nextRun")),
              "2025-03-04T10:00:00.000Z");
  CHECK_STREQ(json_string_value(json_object_get(e, "lastStatus")),
              "completed");
  CHECK(json_integer_value(json_object_get(e, "runCount")) == 1);
  CHECK(json_integer_value(json_object_get(e, "failureCount")) == 0);
  CHECK_STREQ(json_string_value(json_object_get(doc, "updatedAt")),
              "2025-03-04T09:00:02.000Z");
  e = json_object_get(json_object_get(doc, "jobs"), "B");
  CHECK(json_is_null(json_object_get(e, "lastRun")));
  CHECK(json_is_null(json_object_get(e, "lastStatus")));
  CHECK_STREQ(json_string_value(json_object_get(e, "nextRun")),
              "2025-03-05T00:00:00.000Z");
  /* Key order of the §9.5 example. */
  text = json_dumps(e, JSON_PRESERVE_ORDER | JSON_COMPACT);
  {
    static const char want[] = "{\"lastRun\":null,\"lastStatus\":null,"
                               "\"nextRun\":";
    CHECK(text && strncmp(text, want, sizeof want - 1) == 0);
  }
  free(text);
  json_decref(doc);
  rqi_sched_free(&s);
}

/* Missions this process does not schedule (--mission) keep their
 * entries in the file. */
static void test_state_keeps_others(void)
{
  RqMissionDef m = mission("Mine", RQ_SCHED_EVERY, HOUR, NULL);
  RqScheduler s;
  json_t *doc = json_pack("{s:{s:{s:s,s:i},s:{s:i}}}", "jobs",
                          "Other", "lastRun", "2020-01-01T00:00:00.000Z",
                          "runCount", 9, "Mine", "runCount", 2);
  json_t *out;
  json_t *jobs;
  setup(&s, &m, 1, 4);
  rqi_sched_restore(&s, doc);
  rqi_sched_begin(&s, utc(2025, 3, 4, 9, 0));
  out = rqi_sched_state_json(&s, utc(2025, 3, 4, 9, 0));
  jobs = json_object_get(out, "jobs");
  CHECK(json_object_size(jobs) == 2);
  CHECK(json_equal(json_object_get(jobs, "Other"),
                   json_object_get(json_object_get(doc, "jobs"), "Other")));
  CHECK(json_integer_value(json_object_get(json_object_get(jobs, "Mine"),
                                           "runCount")) == 2);
  json_decref(out);
  json_decref(doc);
  rqi_sched_free(&s);
}

static void test_bad_zone(void)
{
  RqMissionDef m = mission("Z", RQ_SCHED_CRON, 0, "0 * * * *");
  RqSchedJob j;
  char err[128];
  m.schedule.timezone = "Mars/Olympus_Mons";
  CHECK(rqi_sched_job_init(&j, &m, 0, err, sizeof err) ==
        RQ_SCHED_EBADZONE);
  CHECK_STREQ(err, "unknown timezone 'Mars/Olympus_Mons'");
}

int main(void)
{
  test_every_skip();
  test_defer_and_concurrency();
  test_max_parallel_order();
  test_max_parallel_due_order();
  test_retry();
  test_no_retry_block();
  test_restore();
  test_state_json();
  test_state_keeps_others();
  test_bad_zone();
  return check_report();
}
