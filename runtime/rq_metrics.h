/* rq_metrics.h -- metrics.c and health.c: the metrics registry of SPEC
 * §10.4 (with the per-mission data behind /health, §10.3) and the
 * health/metrics HTTP server.
 *
 * The registry is process-wide, thread-safe (one mutex) and bounded:
 * each family holds at most RQ_METRICS_MAX_SERIES label sets.  Mission,
 * source, method and store names come from compiled tables and codes
 * outside 100-599 count as 0, so only checkpoint keys are open-ended
 * (per-item paths, §8.1).  Past the cap, one WARN line per family, and:
 *   - counters (and the per-mission families) create no new label set:
 *     events with new labels are dropped, existing series keep counting
 *     (a counter must never restart from 0 under the same labels);
 *   - reqon_sync_checkpoint_timestamp_seconds replaces its least
 *     recently committed series, so the newest keys are always shown.
 *
 * Times passed in are epoch milliseconds (rq_now_ms()); durations are
 * milliseconds.  Names are copied; the caller keeps its strings.
 */
#ifndef RQ_METRICS_H
#define RQ_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>

#define RQ_METRICS_MAX_SERIES 1000  /* label sets per family */
#define RQ_METRICS_WINDOW 100       /* runs behind the duration quantiles */
#define RQ_METRICS_DEGRADED 3       /* consecutive failures: "degraded" */

/* ------------------------------------------------ registry (metrics.c) */

/* How a run ended.  Interrupted runs (shutdown, §10.5) count as failures
 * in reqon_mission_runs_total but neither raise nor reset
 * consecutiveFailures: the API did not fail, the daemon stopped. */
typedef enum {
  RQ_MET_COMPLETED,     /* lastStatus "completed", status="success" */
  RQ_MET_FAILED,        /* lastStatus "failed",    status="failure" */
  RQ_MET_INTERRUPTED    /* lastStatus "interrupted", status="failure" */
} RqMetRunEnd;

/* Empties the registry, then declares the loaded missions and sources
 * (in this order in every family and in /health) so that their series
 * exist, at zero, before the first event; starts the uptime clock.
 * missionsLoaded is n_missions.  Either list may be NULL with n = 0. */
void rqi_metrics_init(const char *const *missions, size_t n_missions,
                      const char *const *sources, size_t n_sources);
/* Frees everything (clean shutdown; also for tests between cases). */
void rqi_metrics_cleanup(void);

/* One call per event.  A mission or source not declared by init is
 * added on first use (up to the cap).  /health's lastRun is the start of
 * the newest run, lastStatus the end of the newest finished run. */
void rqi_metrics_run_started(const char *mission, double now_ms);
void rqi_metrics_run_ended(const char *mission, RqMetRunEnd end,
                           double duration_ms, double now_ms);
/* A due run skipped (§9.3): status="skipped"; no other state changes. */
void rqi_metrics_run_skipped(const char *mission);
/* The scheduler's next due time for /health; <= 0 clears it. */
void rqi_metrics_set_next_run(const char *mission, double epoch_ms);
/* One HTTP attempt that ended with status code (0: transport error). */
void rqi_metrics_http_attempt(const char *source, const char *method,
                              int code);
void rqi_metrics_http_retry(const char *source);
void rqi_metrics_records_written(const char *mission, const char *store,
                                 unsigned long n);
/* A committed `since` checkpoint (§8.1) whose value is epoch_ms. */
void rqi_metrics_checkpoint(const char *mission, const char *key,
                            double epoch_ms);

/* Prometheus text format 0.0.4 of every family of §10.4 (NEW, rq_free
 * it).  reqon_circuit_state and reqon_ratelimit_wait_seconds_total are
 * read from rqi_limit_stats() at this moment; declared sources that
 * sent nothing yet show 0. */
char *rqi_metrics_render(void);
/* The /health document of §10.3 (NEW reference): status, uptime,
 * missionsLoaded, version, missions[].  Unknown times and a mission that
 * never ended a run give null. */
json_t *rqi_metrics_health(const char *version);
/* Formats v as Prometheus parses it (integers without exponent, NaN,
 * +Inf, -Inf, else the shortest text that reads back as v); out >= 32. */
void rqi_metrics_format_number(double v, char *out, size_t n);

/* ------------------------------------------------- server (health.c) */

/* What a listener serves.  RQ_EP_HEALTH is /health and /ready. */
enum { RQ_EP_HEALTH = 1, RQ_EP_METRICS = 2 };

/* /ready: 503 until RQ_READY_UP (the scheduler has started), 503 again
 * from RQ_READY_DRAINING (shutdown, §10.5).  Process-wide. */
typedef enum { RQ_READY_STARTING, RQ_READY_UP, RQ_READY_DRAINING }
  RqReadyState;
void rqi_health_set_ready(RqReadyState s);

typedef struct RqHealthServer RqHealthServer;

/* Starts a listener on addr (an IPv4 or IPv6 literal, IPv6 optionally
 * in brackets; NULL means 127.0.0.1) and port (0: any free port) that
 * serves the endpoints in mask.  On failure returns NULL and writes
 * "cannot listen on ADDR:PORT: <reason>" to err (the daemon prints it
 * and exits 4).  GET and HEAD only; a request body is never read. */
RqHealthServer *rqi_health_start(const char *addr, int port, unsigned mask,
                                 char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int rqi_health_port(const RqHealthServer *s);
/* The listeners of --health-port and --metrics-port (a port < 0: not
 * given), both on addr: one listener serving everything when the ports
 * are equal (§10.3).  Returns 0 with out[0] the health listener (or the
 * shared one) and out[1] the metrics listener, each NULL when not
 * started; on failure -1 with err set and nothing left listening. */
int rqi_health_start_ports(const char *addr, int health_port,
                           int metrics_port, RqHealthServer *out[2],
                           char *err, size_t errlen);
/* Stops the listener (waits for its thread) and frees it; NULL is ok. */
void rqi_health_stop(RqHealthServer *s);

/* The listening socket of health.c, shared with webhook.c: a bound,
 * listening, non-blocking socket on IP literal addr ("[::1]" or "::1"
 * for IPv6) and port (0: any free port; *bound gets the real one), or -1
 * with "cannot listen on ADDR:PORT: <reason>" in err (exit 4). */
int rqi_listen_socket(const char *addr, int port, int *bound, char *err,
                      size_t errlen);
/* "ADDR:PORT" for messages, IPv6 in brackets. */
void rqi_listen_addr_text(const char *addr, int port, char *out, size_t n);

/* libmicrohttpd's external logger for our servers: its messages go to
 * our log at DEBUG; cls is the server's name ("health server"). */
void rqi_mhd_log(void *cls, const char *fmt, va_list ap);

#endif
