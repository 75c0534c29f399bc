/* rq_limit.h -- ratelimit.c and breaker.c: the per-source rate limiter
 * (SPEC §6.6) and circuit breaker (SPEC §6.7).
 *
 * Each module has two layers:
 *   - pure decisions, rqi_rl_* and rqi_cb_*: functions of (state, now,
 *     inputs) with no clock, no lock and no sleeping, so that the unit
 *     tests drive them with an injected clock;
 *   - the process-wide registry, rqi_ratelimit_* and rqi_breaker_*: one
 *     state per source, keyed by the address of its RqSourceDef (a static
 *     table entry per compiled source), shared by every thread under one
 *     mutex.  http.c calls these around each attempt and does the
 *     waiting itself (its sleeps wake on a stop request).
 *
 * Configuration comes from the RqSourceDef; a value <= 0 (a table not
 * written by reqonc) means the default of the spec.
 */
#ifndef RQ_LIMIT_H
#define RQ_LIMIT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include "reqon.h"
#include "rq_log.h"

/* ------------------------------------------------------ rate limiter */
typedef struct {
  double retry_until;  /* epoch ms of a Retry-After deadline; 0: none */
  double remaining;    /* last remaining count; < 0: unknown */
  double limit;        /* last window limit; < 0: unknown */
  double reset;        /* epoch ms the window resets; 0: unknown */
  double last_sent;    /* epoch ms the gate last let a request pass; 0 */
} RqRlState;

typedef enum {
  RQ_RL_GO,         /* send now (last_sent updated) */
  RQ_RL_WAIT,       /* wait *wait_ms, then ask again */
  RQ_RL_LIMITED,    /* strategy fail: "rate limited on S (resets in Ns)" */
  RQ_RL_TOO_LONG    /* "rate limit wait Ns exceeds maxWait Ms for S" */
} RqRlVerdict;

void rqi_rl_init(RqRlState *s);
/* The gate before an attempt at epoch ms now (§6.6).  Blocked means a
 * Retry-After deadline in the future, or remaining <= 0 with a reset in
 * the future (rqi_rl_observe turns an unknown reset into now + 60 s).
 * Blocked: WAIT (pause, throttle), LIMITED (fail) or TOO_LONG (the wait
 * exceeds maxWait); *wait_ms is the time until unblocked.  Not blocked,
 * with throttle: WAIT until the gap since last_sent has passed (the gap
 * is (reset - now) / remaining when both are known and the reset is
 * ahead, else 60000 / fallbackRpm).  GO records now in last_sent. */
RqRlVerdict rqi_rl_gate(RqRlState *s, const RqSourceDef *cfg, double now,
                        double *wait_ms);
/* Reads the rate-limit headers of a response received at now (headers:
 * an object of lower-cased names, borrowed; the X-RateLimit-,
 * RateLimit- and X-Rate-Limit- families).  On a 429 with a valid
 * Retry-After, sets the deadline and returns the delay in ms; otherwise
 * returns -1. */
double rqi_rl_observe(RqRlState *s, const json_t *headers, int status,
                      double now);
/* A reset header value as epoch ms: an integer above 10^12 is epoch ms,
 * at least 10^9 epoch seconds, a smaller one seconds from now; anything
 * else an HTTP-date or ISO date.  false when unparseable. */
bool rqi_rl_parse_reset(const char *v, double now, double *epoch_ms);
/* A Retry-After value (seconds, or an HTTP-date; a past date is 0) as a
 * delay in ms.  false when unparseable. */
bool rqi_rl_parse_retry_after(const char *v, double now, double *delay_ms);

/* Logging of one wait (§6.6): waits of 10 s or more are logged when they
 * start and every 30 s while they last.  Call before each slice of the
 * wait with the monotonic time and the time left; returns
 * RQ_RL_LOG_START or RQ_RL_LOG_STILL when a line is due, else
 * RQ_RL_LOG_NONE. */
typedef struct {
  bool logged;
  double next_log;
} RqRlWaitLog;
#define RQ_RL_WAIT_LOG_INIT { false, 0 }
enum { RQ_RL_LOG_NONE, RQ_RL_LOG_START, RQ_RL_LOG_STILL };
int rqi_rl_wait_log(RqRlWaitLog *w, double now, double left_ms);

/* Process-wide: the same on the state of source src, under the lock. */
RqRlVerdict rqi_ratelimit_gate(const RqSourceDef *src, double now,
                               double *wait_ms);
double rqi_ratelimit_observe(const RqSourceDef *src, const json_t *headers,
                             int status, double now);
/* Adds ms to the source's total rate-limit wait (a metric of §10.4). */
void rqi_ratelimit_add_wait(const RqSourceDef *src, double ms);

/* --------------------------------------------------- circuit breaker */
typedef enum { RQ_CB_CLOSED, RQ_CB_OPEN, RQ_CB_HALF_OPEN } RqCbStateKind;

typedef struct {
  RqCbStateKind state;
  double *fails;       /* owned: times of the failures counted (closed) */
  size_t n_fails, cap_fails;
  double opened_at;    /* ms when it last opened */
  bool probe_out;      /* half-open: the one probe is in flight */
  int probe_ok;        /* consecutive probe successes */
  unsigned long opened, rejected;   /* counters for metrics */
} RqCbState;

typedef enum {
  RQ_CB_ALLOW,      /* closed: send */
  RQ_CB_PROBE,      /* half-open: send as the one probe */
  RQ_CB_REJECT      /* fail fast: "circuit open for source S ..." */
} RqCbAdmit;

typedef enum {
  RQ_CB_NONE,       /* nothing was sent, or the outcome does not count */
  RQ_CB_SUCCESS,    /* any completed response but 500-504 */
  RQ_CB_FAILURE     /* transport error, or 500-504 */
} RqCbOutcome;

void rqi_cb_init(RqCbState *s);
void rqi_cb_free(RqCbState *s);
/* Admission of a request at monotonic ms now.  An open breaker whose
 * resetTimeout has passed becomes half-open.  On REJECT *retry_in_ms is
 * the time until the breaker lets a request through (0 when half-open
 * with its probe out). */
RqCbAdmit rqi_cb_admit(RqCbState *s, const RqSourceDef *cfg, double now,
                       double *retry_in_ms);
/* The outcome of a request admitted as adm.  Closed: failures within
 * failureWindow are counted, failureThreshold of them open the breaker.
 * A probe failure reopens it; successThreshold consecutive probe
 * successes close it.  Outcomes of requests admitted before the breaker
 * opened do not count once it is open. */
void rqi_cb_record(RqCbState *s, const RqSourceDef *cfg, double now,
                   RqCbAdmit adm, RqCbOutcome out);
RqCbOutcome rqi_cb_classify(int status, bool transport_error);

/* Process-wide, on the breaker of src (monotonic clock inside); log the
 * state changes (WARN open, INFO half-open and closed). */
RqCbAdmit rqi_breaker_enter(const RqSourceDef *src, const RqLogCtx *ctx,
                            double *retry_in_ms);
void rqi_breaker_leave(const RqSourceDef *src, const RqLogCtx *ctx,
                       RqCbAdmit adm, RqCbOutcome out);

/* ------------------------------------------------ read-only accessor */
typedef struct {
  const char *source;        /* the source's name (static) */
  RqCbStateKind cb_state;
  size_t cb_failures;        /* failures counted in the window */
  int cb_probe_successes;
  unsigned long cb_opened;   /* times the breaker opened */
  unsigned long cb_rejected; /* requests failed fast */
  double rl_remaining;       /* < 0: unknown */
  double rl_wait_ms_total;   /* time spent waiting on the limiter */
} RqLimitStats;

/* Copies the state of up to max sources (in first-use order) into out;
 * returns how many sources there are. */
size_t rqi_limit_stats(RqLimitStats *out, size_t max);
/* Frees every state (clean shutdown, after all request threads). */
void rqi_limit_cleanup(void);

/* Private to ratelimit.c and breaker.c: the registry entry of src,
 * created on first use (never NULL); call with rqi_limit_mu held. */
typedef struct {
  const RqSourceDef *src;
  RqRlState rl;
  RqCbState cb;
  double waited_ms;
} RqLimitEntry;
extern pthread_mutex_t rqi_limit_mu;
RqLimitEntry *rqi_limit_entry(const RqSourceDef *src);

#endif
