/* breaker.c -- the per-source circuit breaker of SPEC §6.7.
 *
 * closed -> open when failureThreshold failures (transport errors,
 * 500-504) fall within the sliding failureWindow; open -> half-open once
 * resetTimeout has passed (checked lazily, at the next admission);
 * half-open lets exactly one probe through at a time, and goes back to
 * open on a probe failure or to closed after successThreshold
 * consecutive probe successes.
 *
 * rqi_cb_* are the decisions, pure functions of (state, now, outcome);
 * rqi_breaker_* apply them to the process-wide state of a source (the
 * registry of ratelimit.c) under its lock and log the state changes.
 * Times are monotonic ms: a wall-clock jump must not open or close a
 * breaker.
 */
#include <pthread.h>
#include <string.h>
#include "rq_internal.h"
#include "rq_limit.h"

#define DEFAULT_FAILURES 5
#define DEFAULT_SUCCESSES 2
#define DEFAULT_RESET_S 30.0
#define DEFAULT_WINDOW_S 60.0

static int failure_threshold(const RqSourceDef *c)
{
  return c->cb_failure_threshold > 0 ? c->cb_failure_threshold
                                     : DEFAULT_FAILURES;
}

static int success_threshold(const RqSourceDef *c)
{
  return c->cb_success_threshold > 0 ? c->cb_success_threshold
                                     : DEFAULT_SUCCESSES;
}

static double reset_ms(const RqSourceDef *c)
{
  return (c->cb_reset_timeout_s > 0 ? c->cb_reset_timeout_s
                                    : DEFAULT_RESET_S) * 1000.0;
}

static double window_ms(const RqSourceDef *c)
{
  return (c->cb_failure_window_s > 0 ? c->cb_failure_window_s
                                     : DEFAULT_WINDOW_S) * 1000.0;
}

void rqi_cb_init(RqCbState *s)
{
  memset(s, 0, sizeof(*s));
  s->state = RQ_CB_CLOSED;
}

void rqi_cb_free(RqCbState *s)
{
  rq_free(s->fails);
  s->fails = NULL;
  s->n_fails = s->cap_fails = 0;
}

static void go_open(RqCbState *s, double now)
{
  s->state = RQ_CB_OPEN;
  s->opened_at = now;
  s->n_fails = 0;
  s->probe_out = false;
  s->probe_ok = 0;
  s->opened++;
}

static void go_closed(RqCbState *s)
{
  s->state = RQ_CB_CLOSED;
  s->n_fails = 0;
  s->probe_out = false;
  s->probe_ok = 0;
}

RqCbAdmit rqi_cb_admit(RqCbState *s, const RqSourceDef *cfg, double now,
                       double *retry_in_ms)
{
  *retry_in_ms = 0;
  if(s->state == RQ_CB_OPEN) {
    if(now - s->opened_at < reset_ms(cfg)) {
      *retry_in_ms = s->opened_at + reset_ms(cfg) - now;
      s->rejected++;
      return RQ_CB_REJECT;
    }
    s->state = RQ_CB_HALF_OPEN;
    s->probe_out = false;
    s->probe_ok = 0;
  }
  if(s->state == RQ_CB_HALF_OPEN) {
    if(s->probe_out) {
      s->rejected++;
      return RQ_CB_REJECT;    /* "as if open": the probe decides */
    }
    s->probe_out = true;
    return RQ_CB_PROBE;
  }
  return RQ_CB_ALLOW;
}

/* Drops the failures that left the window.  The times are not sorted:
 * threads record outcomes in whatever order they finish. */
static void prune(RqCbState *s, double now, double window)
{
  size_t i, n = 0;

  for(i = 0; i < s->n_fails; i++) {
    if(now - s->fails[i] < window)
      s->fails[n++] = s->fails[i];
  }
  s->n_fails = n;
}

void rqi_cb_record(RqCbState *s, const RqSourceDef *cfg, double now,
                   RqCbAdmit adm, RqCbOutcome out)
{
  if(adm == RQ_CB_PROBE) {
    /* Only the probe moves a half-open breaker; NONE hands its turn to
     * the next request. */
    s->probe_out = false;
    if(s->state != RQ_CB_HALF_OPEN)
      return;
    if(out == RQ_CB_FAILURE)
      go_open(s, now);
    else if(out == RQ_CB_SUCCESS && ++s->probe_ok >= success_threshold(cfg))
      go_closed(s);
    return;
  }
  /* A request admitted while closed counts only while still closed. */
  if(adm != RQ_CB_ALLOW || s->state != RQ_CB_CLOSED ||
     out != RQ_CB_FAILURE)
    return;
  prune(s, now, window_ms(cfg));
  if(s->n_fails == s->cap_fails) {
    /* Never more than failureThreshold entries: reaching it opens. */
    s->cap_fails = s->cap_fails ? s->cap_fails * 2 : 8;
    s->fails = rq_realloc(s->fails, s->cap_fails * sizeof(*s->fails));
  }
  s->fails[s->n_fails++] = now;
  if(s->n_fails >= (size_t)failure_threshold(cfg))
    go_open(s, now);
}

RqCbOutcome rqi_cb_classify(int status, bool transport_error)
{
  if(transport_error || (status >= 500 && status <= 504))
    return RQ_CB_FAILURE;
  return RQ_CB_SUCCESS;
}

/* ------------------------------------------------- process-wide */
static void log_change(const RqSourceDef *src, const RqLogCtx *ctx,
                       RqCbStateKind from, RqCbStateKind to)
{
  if(from == to)
    return;
  if(to == RQ_CB_OPEN && from == RQ_CB_CLOSED)
    rq_log(RQ_LOG_WARN, ctx, "circuit breaker for source %s opened after "
           "%d failure%s within %gs; requests fail fast for %gs",
           src->name, failure_threshold(src),
           failure_threshold(src) == 1 ? "" : "s", window_ms(src) / 1000.0,
           reset_ms(src) / 1000.0);
  else if(to == RQ_CB_OPEN)
    rq_log(RQ_LOG_WARN, ctx, "circuit breaker for source %s opened again: "
           "the probe failed; requests fail fast for %gs", src->name,
           reset_ms(src) / 1000.0);
  else if(to == RQ_CB_HALF_OPEN)
    rq_log(RQ_LOG_INFO, ctx, "circuit breaker for source %s half-open: "
           "sending a probe", src->name);
  else
    rq_log(RQ_LOG_INFO, ctx, "circuit breaker for source %s closed",
           src->name);
}

RqCbAdmit rqi_breaker_enter(const RqSourceDef *src, const RqLogCtx *ctx,
                            double *retry_in_ms)
{
  RqLimitEntry *e;
  RqCbStateKind from, to;
  RqCbAdmit adm;

  pthread_mutex_lock(&rqi_limit_mu);
  e = rqi_limit_entry(src);
  from = e->cb.state;
  adm = rqi_cb_admit(&e->cb, src, rq_mono_ms(), retry_in_ms);
  to = e->cb.state;
  pthread_mutex_unlock(&rqi_limit_mu);
  log_change(src, ctx, from, to);
  return adm;
}

void rqi_breaker_leave(const RqSourceDef *src, const RqLogCtx *ctx,
                       RqCbAdmit adm, RqCbOutcome out)
{
  RqLimitEntry *e;
  RqCbStateKind from, to;

  if(adm == RQ_CB_REJECT)
    return;
  pthread_mutex_lock(&rqi_limit_mu);
  e = rqi_limit_entry(src);
  from = e->cb.state;
  rqi_cb_record(&e->cb, src, rq_mono_ms(), adm, out);
  to = e->cb.state;
  pthread_mutex_unlock(&rqi_limit_mu);
  log_change(src, ctx, from, to);
}
