/* ratelimit.c -- the per-source rate limiter of SPEC §6.6, and the
 * process-wide registry of limiter and breaker states (rq_limit.h).
 *
 * The decisions (rqi_rl_*) are functions of the state, the time and the
 * response headers; the clock, the lock and the waiting belong to the
 * callers, so the unit tests can inject time.  Times are wall-clock epoch
 * ms because servers announce resets as epoch times and dates.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "rq_internal.h"
#include "rq_limit.h"

#define DEFAULT_MAX_WAIT_MS 300000.0
#define DEFAULT_RPM 60.0
#define UNKNOWN_RESET_MS 60000.0     /* §6.6: an unknown reset is 60 s */
#define WAIT_LOG_MIN_MS 10000.0      /* §6.6: waits this long are logged */
#define WAIT_LOG_EVERY_MS 30000.0

/* ------------------------------------------------------- registry */
pthread_mutex_t rqi_limit_mu = PTHREAD_MUTEX_INITIALIZER;
static RqLimitEntry **entries;      /* owned, in first-use order */
static size_t n_entries, cap_entries;

RqLimitEntry *rqi_limit_entry(const RqSourceDef *src)
{
  RqLimitEntry *e;
  size_t i;

  for(i = 0; i < n_entries; i++) {
    if(entries[i]->src == src)
      return entries[i];
  }
  if(n_entries == cap_entries) {
    cap_entries = cap_entries ? cap_entries * 2 : 8;
    entries = rq_realloc(entries, cap_entries * sizeof(*entries));
  }
  e = rq_calloc(1, sizeof(*e));
  e->src = src;
  rqi_rl_init(&e->rl);
  rqi_cb_init(&e->cb);
  entries[n_entries++] = e;
  return e;
}

size_t rqi_limit_stats(RqLimitStats *out, size_t max)
{
  size_t i, n;

  pthread_mutex_lock(&rqi_limit_mu);
  n = n_entries;
  for(i = 0; i < n && i < max; i++) {
    const RqLimitEntry *e = entries[i];
    out[i].source = e->src->name;
    out[i].cb_state = e->cb.state;
    out[i].cb_failures = e->cb.n_fails;
    out[i].cb_probe_successes = e->cb.probe_ok;
    out[i].cb_opened = e->cb.opened;
    out[i].cb_rejected = e->cb.rejected;
    out[i].rl_remaining = e->rl.remaining;
    out[i].rl_wait_ms_total = e->waited_ms;
  }
  pthread_mutex_unlock(&rqi_limit_mu);
  return n;
}

void rqi_limit_cleanup(void)
{
  size_t i;

  pthread_mutex_lock(&rqi_limit_mu);
  for(i = 0; i < n_entries; i++) {
    rqi_cb_free(&entries[i]->cb);
    rq_free(entries[i]);
  }
  rq_free(entries);
  entries = NULL;
  n_entries = cap_entries = 0;
  pthread_mutex_unlock(&rqi_limit_mu);
}

/* ------------------------------------------------- header values */
/* A plain decimal number ("12", "1.5", "-3"), optionally followed by
 * blanks or by ", ..." (a repeated header joined by http.c: the first
 * value counts).  No hex, no exponent, no "inf": those are not counts. */
static bool parse_num(const char *s, double *out, bool *integral)
{
  const char *p = s, *digits, *end, *rest;

  while(*p == ' ' || *p == '\t')
    p++;
  digits = p;
  if(*digits == '-' || *digits == '+')
    digits++;
  if(*digits < '0' || *digits > '9')
    return false;
  for(end = digits; *end >= '0' && *end <= '9'; end++)
    ;
  *integral = *end != '.';
  if(*end == '.') {
    for(end++; *end >= '0' && *end <= '9'; end++)
      ;
  }
  for(rest = end; *rest == ' ' || *rest == '\t'; rest++)
    ;
  if(*rest != '\0' && *rest != ',')
    return false;
  *out = strtod(p, NULL);
  return isfinite(*out);
}

bool rqi_rl_parse_reset(const char *v, double now, double *epoch_ms)
{
  double x;
  bool integral;

  if(!v)
    return false;
  if(parse_num(v, &x, &integral)) {
    if(x < 0)
      return false;
    if(x > 1e12)
      *epoch_ms = x;                  /* epoch milliseconds */
    else if(x >= 1e9)
      *epoch_ms = x * 1000.0;         /* epoch seconds */
    else
      *epoch_ms = now + x * 1000.0;   /* seconds from now */
    return true;
  }
  return rq_parse_time(v, epoch_ms);  /* HTTP-date or ISO date */
}

bool rqi_rl_parse_retry_after(const char *v, double now, double *delay_ms)
{
  double x;
  bool integral;

  if(!v)
    return false;
  if(parse_num(v, &x, &integral)) {
    if(x < 0)
      return false;
    *delay_ms = x * 1000.0;
    return true;
  }
  while(*v == ' ')
    v++;
  if(!rq_parse_time(v, &x))
    return false;
  *delay_ms = x > now ? x - now : 0;
  return true;
}

/* The value of the first header of the three families (§6.6 table) with
 * this suffix: "remaining", "limit" or "reset"; NULL when none. */
static const char *family(const json_t *headers, const char *suffix)
{
  static const char *const prefixes[] = {
    "x-ratelimit-", "ratelimit-", "x-rate-limit-"
  };
  char name[64];
  const char *v;
  size_t i;

  for(i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
    snprintf(name, sizeof(name), "%s%s", prefixes[i], suffix);
    v = json_string_value(json_object_get(headers, name));
    if(v)
      return v;
  }
  return NULL;
}

/* -------------------------------------------------------- decisions */
void rqi_rl_init(RqRlState *s)
{
  memset(s, 0, sizeof(*s));
  s->remaining = -1;
  s->limit = -1;
}

double rqi_rl_observe(RqRlState *s, const json_t *headers, int status,
                      double now)
{
  const char *rem = family(headers, "remaining");
  const char *lim = family(headers, "limit");
  const char *rst = family(headers, "reset");
  double r = 0, l = 0, t = 0, d;
  bool integral;
  bool has_rem = rem && parse_num(rem, &r, &integral);
  bool has_reset = rst && rqi_rl_parse_reset(rst, now, &t);

  if(lim && parse_num(lim, &l, &integral))
    s->limit = l;
  if(has_rem) {
    s->remaining = r > 0 ? r : 0;
    /* A count without a reset: the old reset belongs to another window.
     * Exhausted with no reset known means a 60 s wait from now. */
    s->reset = has_reset ? t : 0;
    if(s->remaining <= 0 && !has_reset)
      s->reset = now + UNKNOWN_RESET_MS;
  }
  else if(has_reset)
    s->reset = t;
  /* Only a 429's Retry-After is a rate limit (§6.4 step 4); the newest
   * one wins, so a server may shorten its own earlier deadline. */
  if(status == 429 &&
     rqi_rl_parse_retry_after(json_string_value(
                                json_object_get(headers, "retry-after")),
                              now, &d)) {
    s->retry_until = now + d;
    return d;
  }
  return -1;
}

RqRlVerdict rqi_rl_gate(RqRlState *s, const RqSourceDef *cfg, double now,
                        double *wait_ms)
{
  double max_wait = cfg->rl_max_wait_s > 0 ? cfg->rl_max_wait_s * 1000.0
                                           : DEFAULT_MAX_WAIT_MS;
  double rpm = cfg->rl_fallback_rpm > 0 ? cfg->rl_fallback_rpm
                                        : DEFAULT_RPM;
  double block = 0, gap;

  *wait_ms = 0;
  if(s->retry_until > now)
    block = s->retry_until - now;
  if(s->remaining == 0 && s->reset > now && s->reset - now > block)
    block = s->reset - now;
  if(block > 0) {
    *wait_ms = block;
    if(cfg->rl_strategy == RQ_RL_FAIL)
      return RQ_RL_LIMITED;
    return block > max_wait ? RQ_RL_TOO_LONG : RQ_RL_WAIT;
  }
  if(cfg->rl_strategy == RQ_RL_THROTTLE && s->last_sent > 0) {
    /* Spread what is left of the window evenly; without a live window,
     * the fallback rate. */
    if(s->remaining > 0 && s->reset > now)
      gap = (s->reset - now) / s->remaining;
    else
      gap = 60000.0 / rpm;
    if(s->last_sent + gap > now) {
      *wait_ms = s->last_sent + gap - now;
      return *wait_ms > max_wait ? RQ_RL_TOO_LONG : RQ_RL_WAIT;
    }
  }
  s->last_sent = now;
  return RQ_RL_GO;
}

int rqi_rl_wait_log(RqRlWaitLog *w, double now, double left_ms)
{
  if(!w->logged) {
    if(left_ms < WAIT_LOG_MIN_MS)
      return RQ_RL_LOG_NONE;
    w->logged = true;
    w->next_log = now + WAIT_LOG_EVERY_MS;
    return RQ_RL_LOG_START;
  }
  if(now < w->next_log)
    return RQ_RL_LOG_NONE;
  w->next_log += WAIT_LOG_EVERY_MS;
  return RQ_RL_LOG_STILL;
}

/* ------------------------------------------------- process-wide */
RqRlVerdict rqi_ratelimit_gate(const RqSourceDef *src, double now,
                               double *wait_ms)
{
  RqRlVerdict v;

  pthread_mutex_lock(&rqi_limit_mu);
  v = rqi_rl_gate(&rqi_limit_entry(src)->rl, src, now, wait_ms);
  pthread_mutex_unlock(&rqi_limit_mu);
  return v;
}

double rqi_ratelimit_observe(const RqSourceDef *src, const json_t *headers,
                             int status, double now)
{
  double d;

  pthread_mutex_lock(&rqi_limit_mu);
  d = rqi_rl_observe(&rqi_limit_entry(src)->rl, headers, status, now);
  pthread_mutex_unlock(&rqi_limit_mu);
  return d;
}

void rqi_ratelimit_add_wait(const RqSourceDef *src, double ms)
{
  if(ms <= 0)
    return;
  pthread_mutex_lock(&rqi_limit_mu);
  rqi_limit_entry(src)->waited_ms += ms;
  pthread_mutex_unlock(&rqi_limit_mu);
}
