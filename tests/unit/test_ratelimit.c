/* test_ratelimit.c -- the rate limiter of SPEC §6.6 (runtime/ratelimit.c)
 * driven with an injected clock: reset and Retry-After formats, the
 * three header families, blocked / not blocked, the strategies, maxWait,
 * throttle spacing, the logging of long waits, and the process-wide
 * per-source state. */
#include <math.h>
#include <string.h>
#include "rq_internal.h"
#include "rq_limit.h"
#include "check.h"

#define NOW 1.7e12      /* an epoch ms "now" for the injected clock */

static RqSourceDef cfg(RqRateStrategy strategy, double max_wait_s,
                       double rpm)
{
  RqSourceDef s;

  memset(&s, 0, sizeof(s));
  s.name = "API";
  s.rl_strategy = strategy;
  s.rl_max_wait_s = max_wait_s;
  s.rl_fallback_rpm = rpm;
  return s;
}

/* A header object from "name", "value" pairs (lower-cased names, as
 * http.c delivers them); new. */
static json_t *hdrs(const char *n1, const char *v1, const char *n2,
                    const char *v2)
{
  json_t *h = json_object();

  if(n1)
    json_object_set_new(h, n1, json_string(v1));
  if(n2)
    json_object_set_new(h, n2, json_string(v2));
  return h;
}

static bool near(double a, double b)
{
  return fabs(a - b) < 0.5;
}

static void test_parse_reset(void)
{
  double t = 0;

  /* > 10^12: epoch ms; >= 10^9: epoch s; smaller: seconds from now. */
  CHECK(rqi_rl_parse_reset("1700000005000", NOW, &t) && t == 1700000005000);
  CHECK(rqi_rl_parse_reset("1700000005", NOW, &t) && t == 1700000005000);
  CHECK(rqi_rl_parse_reset("1000000000", NOW, &t) && t == 1e12);
  /* exactly 10^12 is not above 10^12: epoch seconds */
  CHECK(rqi_rl_parse_reset("1000000000000", NOW, &t) && t == 1e15);
  CHECK(rqi_rl_parse_reset("999999999", NOW, &t) &&
        t == NOW + 999999999000.0);
  CHECK(rqi_rl_parse_reset("30", NOW, &t) && t == NOW + 30000);
  CHECK(rqi_rl_parse_reset("0", NOW, &t) && t == NOW);
  CHECK(rqi_rl_parse_reset(" 7 ", NOW, &t) && t == NOW + 7000);
  /* HTTP-date and ISO date */
  CHECK(rqi_rl_parse_reset("Sun, 06 Nov 1994 08:49:37 GMT", NOW, &t) &&
        t == 784111777000.0);
  CHECK(rqi_rl_parse_reset("2023-11-14T22:13:25Z", NOW, &t) &&
        t == 1700000005000.0);
  CHECK(!rqi_rl_parse_reset("soon", NOW, &t));
  CHECK(!rqi_rl_parse_reset("-5", NOW, &t));
  CHECK(!rqi_rl_parse_reset("", NOW, &t));
  CHECK(!rqi_rl_parse_reset(NULL, NOW, &t));
  CHECK(!rqi_rl_parse_reset("0x10", NOW, &t));
}

static void test_parse_retry_after(void)
{
  double d = -1;

  CHECK(rqi_rl_parse_retry_after("120", NOW, &d) && d == 120000);
  CHECK(rqi_rl_parse_retry_after("0", NOW, &d) && d == 0);
  /* HTTP-date: relative to now; a past date is no wait */
  CHECK(rqi_rl_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
                                 784111777000.0 - 5000, &d) && d == 5000);
  CHECK(rqi_rl_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOW,
                                 &d) && d == 0);
  CHECK(!rqi_rl_parse_retry_after("later", NOW, &d));
  CHECK(!rqi_rl_parse_retry_after("-1", NOW, &d));
  CHECK(!rqi_rl_parse_retry_after(NULL, NOW, &d));
}

/* Each family is read; names arrive lower-cased from http.c. */
static void test_families(void)
{
  static const char *const fam[] = {
    "x-ratelimit-", "ratelimit-", "x-rate-limit-"
  };
  RqSourceDef c = cfg(RQ_RL_PAUSE, 300, 60);
  char rem[64], rst[64], lim[64];
  RqRlState s;
  json_t *h;
  double w;
  size_t i;

  for(i = 0; i < 3; i++) {
    snprintf(rem, sizeof(rem), "%sremaining", fam[i]);
    snprintf(rst, sizeof(rst), "%sreset", fam[i]);
    snprintf(lim, sizeof(lim), "%slimit", fam[i]);
    rqi_rl_init(&s);
    h = hdrs(rem, "0", rst, "5");
    json_object_set_new(h, lim, json_string("100"));
    CHECK(rqi_rl_observe(&s, h, 200, NOW) == -1);
    json_decref(h);
    CHECK(s.remaining == 0 && s.limit == 100 && s.reset == NOW + 5000);
    CHECK(rqi_rl_gate(&s, &c, NOW, &w) == RQ_RL_WAIT && w == 5000);
  }
  /* The first family wins when several are sent. */
  rqi_rl_init(&s);
  h = hdrs("x-ratelimit-remaining", "3", "ratelimit-remaining", "0");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(s.remaining == 3);
  /* A repeated header joined with ", ": the first value counts. */
  rqi_rl_init(&s);
  h = hdrs("x-ratelimit-remaining", "0, 0", "x-ratelimit-reset", "2, 2");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(s.remaining == 0 && s.reset == NOW + 2000);
  /* Garbage is ignored; no headers keep the state. */
  h = hdrs("x-ratelimit-remaining", "many", NULL, NULL);
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(s.remaining == 0 && s.reset == NOW + 2000);
}

static void test_blocked(void)
{
  RqSourceDef pause = cfg(RQ_RL_PAUSE, 300, 60);
  RqSourceDef fail = cfg(RQ_RL_FAIL, 300, 60);
  RqSourceDef shortwait = cfg(RQ_RL_PAUSE, 10, 60);
  RqSourceDef dflt = cfg(RQ_RL_PAUSE, 0, 0);
  RqRlState s;
  json_t *h;
  double w;

  /* A fresh state never blocks, nor does remaining > 0. */
  rqi_rl_init(&s);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_GO && w == 0);
  h = hdrs("x-ratelimit-remaining", "3", "x-ratelimit-reset", "50");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_GO);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_GO);   /* no spacing */

  /* remaining 0, reset ahead: pause waits until the reset, then goes */
  h = hdrs("x-ratelimit-remaining", "0", "x-ratelimit-reset", "5");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_WAIT && w == 5000);
  CHECK(rqi_rl_gate(&s, &pause, NOW + 4000, &w) == RQ_RL_WAIT &&
        w == 1000);
  CHECK(rqi_rl_gate(&s, &pause, NOW + 5000, &w) == RQ_RL_GO);
  /* fail: the step fails with the time to the reset */
  CHECK(rqi_rl_gate(&s, &fail, NOW + 1000, &w) == RQ_RL_LIMITED &&
        w == 4000);
  CHECK(rqi_rl_gate(&s, &fail, NOW + 5000, &w) == RQ_RL_GO);
  /* a wait beyond maxWait fails (pause and throttle) */
  CHECK(rqi_rl_gate(&s, &shortwait, NOW, &w) == RQ_RL_WAIT);
  h = hdrs("x-ratelimit-remaining", "0", "x-ratelimit-reset", "11");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &shortwait, NOW, &w) == RQ_RL_TOO_LONG &&
        w == 11000);
  CHECK(rqi_rl_gate(&s, &shortwait, NOW + 1000, &w) == RQ_RL_WAIT);
  /* maxWait 0 in a table means the default, 300 s */
  h = hdrs("x-ratelimit-remaining", "0", "x-ratelimit-reset", "300");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &dflt, NOW, &w) == RQ_RL_WAIT && w == 300000);
  h = hdrs("x-ratelimit-remaining", "0", "x-ratelimit-reset", "301");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &dflt, NOW, &w) == RQ_RL_TOO_LONG);

  /* remaining 0 with no reset: a 60 s wait from that response */
  rqi_rl_init(&s);
  h = hdrs("ratelimit-remaining", "0", NULL, NULL);
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_WAIT && w == 60000);
  CHECK(rqi_rl_gate(&s, &pause, NOW + 59999, &w) == RQ_RL_WAIT);
  CHECK(rqi_rl_gate(&s, &pause, NOW + 60000, &w) == RQ_RL_GO);
  /* remaining 0 with a reset in the past: not blocked */
  h = hdrs("ratelimit-remaining", "0", "ratelimit-reset",
           "Sun, 06 Nov 1994 08:49:37 GMT");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_GO);
  /* a new count without a reset forgets the old window's reset */
  h = hdrs("x-ratelimit-remaining", "0", "x-ratelimit-reset", "5");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  h = hdrs("x-ratelimit-remaining", "9", NULL, NULL);
  rqi_rl_observe(&s, h, 200, NOW + 1);
  json_decref(h);
  CHECK(s.reset == 0 && rqi_rl_gate(&s, &pause, NOW + 1, &w) == RQ_RL_GO);
  /* a negative count is exhausted */
  h = hdrs("x-ratelimit-remaining", "-1", "x-ratelimit-reset", "3");
  rqi_rl_observe(&s, h, 200, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_WAIT && w == 3000);
}

static void test_retry_after(void)
{
  RqSourceDef pause = cfg(RQ_RL_PAUSE, 300, 60);
  RqSourceDef fail = cfg(RQ_RL_FAIL, 300, 60);
  RqRlState s;
  json_t *h;
  double w;

  rqi_rl_init(&s);
  /* Only a 429's Retry-After sets a deadline. */
  h = hdrs("retry-after", "2", NULL, NULL);
  CHECK(rqi_rl_observe(&s, h, 503, NOW) == -1);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_GO);
  CHECK(rqi_rl_observe(&s, h, 429, NOW) == 2000);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_WAIT && w == 2000);
  CHECK(rqi_rl_gate(&s, &fail, NOW + 500, &w) == RQ_RL_LIMITED &&
        w == 1500);
  CHECK(rqi_rl_gate(&s, &pause, NOW + 2000, &w) == RQ_RL_GO);
  /* HTTP-date form */
  h = hdrs("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT", NULL, NULL);
  CHECK(rqi_rl_observe(&s, h, 429, 784111777000.0 - 3000) == 3000);
  json_decref(h);
  CHECK(s.retry_until == 784111777000.0);
  /* the newest Retry-After wins, even when shorter */
  rqi_rl_init(&s);
  h = hdrs("retry-after", "100", NULL, NULL);
  rqi_rl_observe(&s, h, 429, NOW);
  json_decref(h);
  h = hdrs("retry-after", "1", NULL, NULL);
  rqi_rl_observe(&s, h, 429, NOW + 10);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW + 10, &w) == RQ_RL_WAIT && w == 1000);
  /* an invalid Retry-After is no deadline */
  rqi_rl_init(&s);
  h = hdrs("retry-after", "whenever", NULL, NULL);
  CHECK(rqi_rl_observe(&s, h, 429, NOW) == -1);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_GO);
  /* with both a deadline and an exhausted window, the later one counts */
  h = hdrs("retry-after", "2", "x-ratelimit-remaining", "0");
  json_object_set_new(h, "x-ratelimit-reset", json_string("9"));
  rqi_rl_observe(&s, h, 429, NOW);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &pause, NOW, &w) == RQ_RL_WAIT && w == 9000);
}

static void test_throttle(void)
{
  RqSourceDef th = cfg(RQ_RL_THROTTLE, 300, 120);   /* 500 ms gap */
  RqSourceDef th0 = cfg(RQ_RL_THROTTLE, 300, 0);    /* default 60 rpm */
  RqSourceDef shortwait = cfg(RQ_RL_THROTTLE, 1, 60);
  RqRlState s;
  json_t *h;
  double w;

  rqi_rl_init(&s);
  CHECK(rqi_rl_gate(&s, &th, NOW, &w) == RQ_RL_GO);   /* first: no gap */
  CHECK(rqi_rl_gate(&s, &th, NOW + 100, &w) == RQ_RL_WAIT && near(w, 400));
  CHECK(rqi_rl_gate(&s, &th, NOW + 500, &w) == RQ_RL_GO);
  CHECK(rqi_rl_gate(&s, &th, NOW + 999, &w) == RQ_RL_WAIT && near(w, 1));
  CHECK(rqi_rl_gate(&s, &th, NOW + 1000, &w) == RQ_RL_GO);
  CHECK(rqi_rl_gate(&s, &th0, NOW + 1500, &w) == RQ_RL_WAIT &&
        near(w, 500));
  /* remaining and reset known: (reset - now) / remaining */
  h = hdrs("x-ratelimit-remaining", "4", "x-ratelimit-reset", "2");
  rqi_rl_observe(&s, h, 200, NOW + 1000);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &th, NOW + 1000, &w) == RQ_RL_WAIT &&
        near(w, 500));
  CHECK(rqi_rl_gate(&s, &th, NOW + 1200, &w) == RQ_RL_WAIT &&
        near(w, 1000 + 1800.0 / 4 - 1200));
  /* the reset passed: the fallback rate again */
  CHECK(rqi_rl_gate(&s, &th, NOW + 3000, &w) == RQ_RL_GO);
  CHECK(rqi_rl_gate(&s, &th, NOW + 3100, &w) == RQ_RL_WAIT &&
        near(w, 400));
  /* a spacing beyond maxWait fails like a long block */
  h = hdrs("x-ratelimit-remaining", "1", "x-ratelimit-reset", "60");
  rqi_rl_observe(&s, h, 200, NOW + 3100);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &shortwait, NOW + 3100, &w) == RQ_RL_TOO_LONG);
  /* throttle blocked by an exhausted window waits for the reset */
  h = hdrs("x-ratelimit-remaining", "0", "x-ratelimit-reset", "3");
  rqi_rl_observe(&s, h, 200, NOW + 4000);
  json_decref(h);
  CHECK(rqi_rl_gate(&s, &th, NOW + 4000, &w) == RQ_RL_WAIT && w == 3000);
}

/* Waits of 10 s or more: a line at the start and every 30 s. */
static void test_wait_log(void)
{
  RqRlWaitLog w = RQ_RL_WAIT_LOG_INIT, w2 = RQ_RL_WAIT_LOG_INIT;

  /* a short wait is never logged, even as it goes on */
  CHECK(rqi_rl_wait_log(&w2, 0, 9999) == RQ_RL_LOG_NONE);
  CHECK(rqi_rl_wait_log(&w2, 5000, 4999) == RQ_RL_LOG_NONE);
  /* a long one: at once, then every 30 s while it lasts */
  CHECK(rqi_rl_wait_log(&w, 100, 70000) == RQ_RL_LOG_START);
  CHECK(rqi_rl_wait_log(&w, 1100, 69000) == RQ_RL_LOG_NONE);
  CHECK(rqi_rl_wait_log(&w, 30099, 40001) == RQ_RL_LOG_NONE);
  CHECK(rqi_rl_wait_log(&w, 30100, 40000) == RQ_RL_LOG_STILL);
  CHECK(rqi_rl_wait_log(&w, 31100, 39000) == RQ_RL_LOG_NONE);
  CHECK(rqi_rl_wait_log(&w, 60100, 10000) == RQ_RL_LOG_STILL);
  CHECK(rqi_rl_wait_log(&w, 69100, 1000) == RQ_RL_LOG_NONE);
  /* a wait that grows past 10 s (a later reset) starts its log then */
  w = (RqRlWaitLog)RQ_RL_WAIT_LOG_INIT;
  CHECK(rqi_rl_wait_log(&w, 0, 500) == RQ_RL_LOG_NONE);
  CHECK(rqi_rl_wait_log(&w, 500, 10000) == RQ_RL_LOG_START);
}

/* The process-wide state is per source (per RqSourceDef). */
static void test_per_source(void)
{
  RqSourceDef a = cfg(RQ_RL_FAIL, 300, 60), b = cfg(RQ_RL_FAIL, 300, 60);
  RqLimitStats st[4];
  json_t *h;
  double w, now = rq_now_ms();

  b.name = "Other";
  h = hdrs("x-ratelimit-remaining", "0", "x-ratelimit-reset", "30");
  CHECK(rqi_ratelimit_observe(&a, h, 200, now) == -1);
  json_decref(h);
  CHECK(rqi_ratelimit_gate(&a, now, &w) == RQ_RL_LIMITED && w == 30000);
  CHECK(rqi_ratelimit_gate(&b, now, &w) == RQ_RL_GO);
  rqi_ratelimit_add_wait(&b, 250);
  CHECK(rqi_limit_stats(st, 4) == 2);
  CHECK_STREQ(st[0].source, "API");
  CHECK(st[0].rl_remaining == 0 && st[0].rl_wait_ms_total == 0);
  CHECK_STREQ(st[1].source, "Other");
  CHECK(st[1].rl_remaining < 0 && st[1].rl_wait_ms_total == 250);
  CHECK(rqi_limit_stats(st, 1) == 2);    /* counts all, copies 1 */
  rqi_limit_cleanup();
  CHECK(rqi_limit_stats(st, 4) == 0);
  CHECK(rqi_ratelimit_gate(&a, now, &w) == RQ_RL_GO);
  rqi_limit_cleanup();
}

int main(void)
{
  rqi_log_configure(RQ_LOG_ERROR, 0, 1);
  rqi_util_init();
  test_parse_reset();
  test_parse_retry_after();
  test_families();
  test_blocked();
  test_retry_after();
  test_throttle();
  test_wait_log();
  test_per_source();
  return check_report();
}
