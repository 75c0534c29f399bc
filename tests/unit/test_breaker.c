/* test_breaker.c -- the circuit breaker of SPEC §6.7 (runtime/breaker.c)
 * driven with an injected clock: the sliding failure window, opening at
 * the threshold, failing fast while open, one probe at a time when
 * half-open, reopening on a probe failure, closing after the successes,
 * what counts as a failure, the defaults, and the process-wide state. */
#include <string.h>
#include "rq_internal.h"
#include "rq_limit.h"
#include "check.h"

static RqSourceDef cfg(int failures, int successes, double reset_s,
                       double window_s)
{
  RqSourceDef s;

  memset(&s, 0, sizeof(s));
  s.name = "API";
  s.cb_failure_threshold = failures;
  s.cb_success_threshold = successes;
  s.cb_reset_timeout_s = reset_s;
  s.cb_failure_window_s = window_s;
  return s;
}

/* Admits at t and records outcome out; returns the admission. */
static RqCbAdmit req(RqCbState *s, const RqSourceDef *c, double t,
                     RqCbOutcome out)
{
  double r;
  RqCbAdmit a = rqi_cb_admit(s, c, t, &r);

  if(a != RQ_CB_REJECT)
    rqi_cb_record(s, c, t, a, out);
  return a;
}

static void test_classify(void)
{
  CHECK(rqi_cb_classify(0, true) == RQ_CB_FAILURE);
  CHECK(rqi_cb_classify(500, false) == RQ_CB_FAILURE);
  CHECK(rqi_cb_classify(502, false) == RQ_CB_FAILURE);
  CHECK(rqi_cb_classify(503, false) == RQ_CB_FAILURE);
  CHECK(rqi_cb_classify(504, false) == RQ_CB_FAILURE);
  CHECK(rqi_cb_classify(505, false) == RQ_CB_SUCCESS);
  CHECK(rqi_cb_classify(599, false) == RQ_CB_SUCCESS);
  CHECK(rqi_cb_classify(429, false) == RQ_CB_SUCCESS);
  CHECK(rqi_cb_classify(404, false) == RQ_CB_SUCCESS);
  CHECK(rqi_cb_classify(401, false) == RQ_CB_SUCCESS);
  CHECK(rqi_cb_classify(200, false) == RQ_CB_SUCCESS);
}

static void test_open_at_threshold(void)
{
  RqSourceDef c = cfg(3, 2, 10, 60);
  RqCbState s;
  double r;
  int i;

  rqi_cb_init(&s);
  CHECK(s.state == RQ_CB_CLOSED);
  CHECK(req(&s, &c, 0, RQ_CB_FAILURE) == RQ_CB_ALLOW);
  /* successes do not reset a sliding window */
  CHECK(req(&s, &c, 100, RQ_CB_SUCCESS) == RQ_CB_ALLOW);
  CHECK(req(&s, &c, 200, RQ_CB_FAILURE) == RQ_CB_ALLOW);
  CHECK(s.state == RQ_CB_CLOSED && s.n_fails == 2);
  CHECK(req(&s, &c, 300, RQ_CB_FAILURE) == RQ_CB_ALLOW);
  CHECK(s.state == RQ_CB_OPEN && s.opened == 1);
  /* open: fail fast with the time left, counted as rejected */
  CHECK(rqi_cb_admit(&s, &c, 300, &r) == RQ_CB_REJECT && r == 10000);
  CHECK(rqi_cb_admit(&s, &c, 9299, &r) == RQ_CB_REJECT && r == 1001);
  CHECK(s.rejected == 2);
  /* a late failure of a request admitted while closed changes nothing */
  rqi_cb_record(&s, &c, 400, RQ_CB_ALLOW, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_OPEN && s.opened_at == 300);
  rqi_cb_record(&s, &c, 400, RQ_CB_ALLOW, RQ_CB_SUCCESS);
  CHECK(s.state == RQ_CB_OPEN);
  rqi_cb_free(&s);

  /* many failures, one after the other: each opening frees its list */
  rqi_cb_init(&s);
  c = cfg(20, 1, 1, 60);
  for(i = 0; i < 20; i++)
    req(&s, &c, i, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_OPEN && s.n_fails == 0);
  rqi_cb_free(&s);
}

static void test_window(void)
{
  RqSourceDef c = cfg(3, 2, 10, 60);
  RqCbState s;

  rqi_cb_init(&s);
  req(&s, &c, 0, RQ_CB_FAILURE);
  req(&s, &c, 1000, RQ_CB_FAILURE);
  /* 60 s after the first one it has left the window */
  req(&s, &c, 60000, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_CLOSED && s.n_fails == 2);
  req(&s, &c, 60999, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_OPEN);
  rqi_cb_free(&s);

  /* out-of-order times (threads finishing late) are pruned too */
  rqi_cb_init(&s);
  req(&s, &c, 5000, RQ_CB_FAILURE);
  req(&s, &c, 1000, RQ_CB_FAILURE);
  req(&s, &c, 64000, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_CLOSED && s.n_fails == 2);
  rqi_cb_free(&s);
}

static void test_half_open(void)
{
  RqSourceDef c = cfg(1, 2, 5, 60);
  RqCbState s;
  double r;

  rqi_cb_init(&s);
  req(&s, &c, 0, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_OPEN);
  CHECK(rqi_cb_admit(&s, &c, 4999, &r) == RQ_CB_REJECT && r == 1);
  /* after resetTimeout: half-open, exactly one probe at a time */
  CHECK(rqi_cb_admit(&s, &c, 5000, &r) == RQ_CB_PROBE);
  CHECK(s.state == RQ_CB_HALF_OPEN);
  CHECK(rqi_cb_admit(&s, &c, 5001, &r) == RQ_CB_REJECT && r == 0);
  CHECK(rqi_cb_admit(&s, &c, 9000, &r) == RQ_CB_REJECT);
  /* the probe fails: open again, from now */
  rqi_cb_record(&s, &c, 9000, RQ_CB_PROBE, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_OPEN && s.opened == 2 && s.opened_at == 9000);
  CHECK(rqi_cb_admit(&s, &c, 13999, &r) == RQ_CB_REJECT && r == 1);
  /* next probe succeeds: still half-open (successThreshold 2) */
  CHECK(rqi_cb_admit(&s, &c, 14000, &r) == RQ_CB_PROBE);
  rqi_cb_record(&s, &c, 14000, RQ_CB_PROBE, RQ_CB_SUCCESS);
  CHECK(s.state == RQ_CB_HALF_OPEN && s.probe_ok == 1);
  /* a probe that was never sent (rate-limit gate failed) hands its turn
   * on without counting */
  CHECK(rqi_cb_admit(&s, &c, 14001, &r) == RQ_CB_PROBE);
  rqi_cb_record(&s, &c, 14001, RQ_CB_PROBE, RQ_CB_NONE);
  CHECK(s.state == RQ_CB_HALF_OPEN && s.probe_ok == 1);
  /* the second consecutive success closes it */
  CHECK(rqi_cb_admit(&s, &c, 14002, &r) == RQ_CB_PROBE);
  rqi_cb_record(&s, &c, 14002, RQ_CB_PROBE, RQ_CB_SUCCESS);
  CHECK(s.state == RQ_CB_CLOSED && s.probe_ok == 0);
  CHECK(rqi_cb_admit(&s, &c, 14003, &r) == RQ_CB_ALLOW);
  CHECK(rqi_cb_admit(&s, &c, 14003, &r) == RQ_CB_ALLOW);
  rqi_cb_free(&s);

  /* successes must be consecutive: a failure in between reopens and
   * starts the count again */
  rqi_cb_init(&s);
  req(&s, &c, 0, RQ_CB_FAILURE);
  CHECK(req(&s, &c, 5000, RQ_CB_SUCCESS) == RQ_CB_PROBE);
  CHECK(req(&s, &c, 5001, RQ_CB_FAILURE) == RQ_CB_PROBE);
  CHECK(s.state == RQ_CB_OPEN);
  CHECK(req(&s, &c, 10001, RQ_CB_SUCCESS) == RQ_CB_PROBE);
  CHECK(s.state == RQ_CB_HALF_OPEN && s.probe_ok == 1);
  CHECK(req(&s, &c, 10002, RQ_CB_SUCCESS) == RQ_CB_PROBE);
  CHECK(s.state == RQ_CB_CLOSED);
  rqi_cb_free(&s);
}

/* A table with zeros gets the defaults: 5 failures, 2 successes, 30 s
 * reset, 60 s window. */
static void test_defaults(void)
{
  RqSourceDef c = cfg(0, 0, 0, 0);
  RqCbState s;
  double r;
  int i;

  rqi_cb_init(&s);
  for(i = 0; i < 4; i++)
    req(&s, &c, i * 14000.0, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_CLOSED);
  req(&s, &c, 59999, RQ_CB_FAILURE);
  CHECK(s.state == RQ_CB_OPEN);
  CHECK(rqi_cb_admit(&s, &c, 59999, &r) == RQ_CB_REJECT && r == 30000);
  CHECK(req(&s, &c, 89999, RQ_CB_SUCCESS) == RQ_CB_PROBE);
  CHECK(s.state == RQ_CB_HALF_OPEN);
  CHECK(req(&s, &c, 90000, RQ_CB_SUCCESS) == RQ_CB_PROBE);
  CHECK(s.state == RQ_CB_CLOSED);
  rqi_cb_free(&s);
}

/* Process-wide: one breaker per source, real monotonic clock. */
static void test_process_wide(void)
{
  RqSourceDef a = cfg(2, 1, 3600, 60), b = cfg(2, 1, 3600, 60);
  RqLimitStats st[2];
  double r;
  RqCbAdmit adm;

  b.name = "Other";
  adm = rqi_breaker_enter(&a, NULL, &r);
  CHECK(adm == RQ_CB_ALLOW);
  rqi_breaker_leave(&a, NULL, adm, RQ_CB_FAILURE);
  adm = rqi_breaker_enter(&b, NULL, &r);
  rqi_breaker_leave(&b, NULL, adm, RQ_CB_FAILURE);
  adm = rqi_breaker_enter(&a, NULL, &r);
  rqi_breaker_leave(&a, NULL, adm, RQ_CB_FAILURE);
  CHECK(rqi_breaker_enter(&a, NULL, &r) == RQ_CB_REJECT);
  CHECK(r > 3500000 && r <= 3600000);
  CHECK(rqi_breaker_enter(&b, NULL, &r) == RQ_CB_ALLOW);
  rqi_breaker_leave(&b, NULL, RQ_CB_ALLOW, RQ_CB_NONE);
  CHECK(rqi_limit_stats(st, 2) == 2);
  CHECK_STREQ(st[0].source, "API");
  CHECK(st[0].cb_state == RQ_CB_OPEN && st[0].cb_opened == 1 &&
        st[0].cb_rejected == 1 && st[0].cb_failures == 0);
  CHECK_STREQ(st[1].source, "Other");
  CHECK(st[1].cb_state == RQ_CB_CLOSED && st[1].cb_failures == 1);
  rqi_limit_cleanup();
  CHECK(rqi_breaker_enter(&a, NULL, &r) == RQ_CB_ALLOW);
  rqi_limit_cleanup();
}

int main(void)
{
  rqi_log_configure(RQ_LOG_ERROR, 0, 1);
  rqi_util_init();
  test_classify();
  test_open_at_threshold();
  test_window();
  test_half_open();
  test_defaults();
  test_process_wide();
  return check_report();
}
