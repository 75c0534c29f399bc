/* rq_webhook.h -- webhook.c: the inbound webhook listener of SPEC §4.14
 * and §10.1 (--webhook-port, --webhook-url, --webhook-token), the wait
 * API the `wait` step is built on, and webhookUrl() of §5.4.
 *
 * The listener (libmicrohttpd, one internal thread) accepts POST and PUT
 * on registered paths and replies
 *   200 {"accepted":true,"id":"<uuid v4>"}  event accepted
 *   400 {"accepted":false,"error":"..."}    body not decodable (below)
 *   401 (empty)  a token is configured and X-Reqon-Token differs
 *   404 (empty)  unknown path
 *   405 (empty, Allow: POST, PUT)  another method on a registered path
 *   413 (empty)  body over RQ_WEBHOOK_MAX_BODY
 * checked in this order, so that a client without the token learns
 * nothing about which paths exist.  401, 404, 405 and a Content-Length
 * over the cap are answered before the body is read.
 *
 * Bodies: JSON when the content type contains "json" (any JSON value;
 * invalid JSON, an empty body included, is a 400); an object of strings
 * for application/x-www-form-urlencoded (a repeated name gives an array
 * of its values in order; '+' is a space; a malformed %-escape is kept
 * as it is, as browsers do; a name or value that is not UTF-8 once
 * decoded is a 400); otherwise the body as a string, which must be UTF-8
 * (else 400: an event is either delivered exactly as sent or refused
 * where the sender sees it, never silently altered).
 *
 * Paths: the daemon registers every static `wait` path at start
 * (rqi_webhook_register_path).  Events on a registered path while no
 * wait is active on it are buffered for RQ_WEBHOOK_BUFFER_MS, at most
 * RQ_WEBHOOK_MAX_EVENTS and RQ_WEBHOOK_MAX_BUFFER_BYTES per path (beyond:
 * the oldest are dropped, with one WARN per overflow episode, until a
 * wait takes the buffer).  rqi_webhook_wait_begin on a path that
 * is not registered (the default /webhook/<execution id>/<n>) registers
 * it for the life of the wait.
 *
 * Waits: a wait takes the path's buffered events first (oldest first),
 * then the events that arrive while it is active.  Several waits may be
 * active at once, on different paths or on the same one: an event that
 * arrives while waits are active is delivered to every active wait on
 * its path (each gets its own copy of the body), so that two parallel
 * waits on one static path, each with its own eventFilter, never steal
 * each other's events.  Buffered events go to the first wait that
 * begins.  An event handed out by rqi_webhook_next is the caller's:
 * it either consumes it, or gives it back with rqi_webhook_release
 * (an event the step's eventFilter rejected, or one counted by a step
 * that then failed), and then it survives the wait's end like an event
 * never handed out: a later wait on the same static path -- another
 * step looking for another kind of event -- still gets it.
 *
 * Thread safety: every function may be called from any thread, except
 * that rqi_webhook_stop must come after every wait has ended.  Secrets:
 * the token is registered with the logger's redaction (rqi_log_add_secret)
 * and never printed.
 */
#ifndef RQ_WEBHOOK_H
#define RQ_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define RQ_WEBHOOK_MAX_BODY (1024 * 1024)     /* bytes; 413 beyond */
#define RQ_WEBHOOK_MAX_EVENTS 1000            /* buffered per path */
#define RQ_WEBHOOK_BUFFER_MS (15 * 60 * 1000.0)  /* buffered event life */
/* DEFINED HERE: request-body bytes held per path buffer and per wait, so
 * that 1000 events of 1 MiB cannot hold gigabytes of parsed JSON. */
#define RQ_WEBHOOK_MAX_BUFFER_BYTES (64 * 1024 * 1024)

typedef struct RqWebhook RqWebhook;
typedef struct RqWebhookWait RqWebhookWait;

/* One event handed to a wait. */
typedef struct {
  char id[40];          /* the uuid v4 of the 200 reply */
  json_t *body;         /* NEW reference: the caller json_decref()s it */
  double received_at;   /* epoch ms (rq_now_ms) when it arrived */
  double mono;          /* for rqi_webhook_release: arrival (ageing) */
  size_t bytes;         /* for rqi_webhook_release: body size (caps) */
} RqWebhookEvent;

/* Results of rqi_webhook_next. */
enum { RQ_WH_EVENT = 0, RQ_WH_TIMEOUT = 1, RQ_WH_STOPPED = 2 };

/* Starts the listener on addr (IPv4 or IPv6 literal, IPv6 optionally in
 * brackets; NULL or "" means 127.0.0.1) and port (0: any free port).
 * public_url is --webhook-url (NULL: http://localhost:PORT), token is
 * --webhook-token (NULL or "": no token check); both are copied.  On
 * failure returns NULL and writes "cannot listen on ADDR:PORT: <reason>"
 * to err (the daemon prints it and exits 4).  The started listener also
 * becomes rqi_webhook_current(). */
RqWebhook *rqi_webhook_start(const char *addr, int port,
                             const char *public_url, const char *token,
                             char *err, size_t errlen);
/* For --dry-run: a listener that does not listen (no port is bound, so
 * a plan can run next to the daemon that owns the port), only so that
 * webhookUrl() gives the URL the real run would.  It becomes
 * rqi_webhook_current(); stop it with rqi_webhook_stop.  No wait may
 * begin on it. */
RqWebhook *rqi_webhook_plan(int port, const char *public_url);
/* The port actually bound (useful with port 0); 0 for NULL. */
int rqi_webhook_port(const RqWebhook *wh);
/* The listener most recently started and not yet stopped, or NULL (for
 * webhookUrl() and the wait step, which have no other way to it). */
RqWebhook *rqi_webhook_current(void);
/* Stops the server (joins its thread), frees every buffered event and
 * the listener.  Every wait must have ended (rqi_webhook_wakeup first
 * makes them return).  NULL is ok. */
void rqi_webhook_stop(RqWebhook *wh);

/* Checks a --webhook-url value: 0, or -1 with a message in err (for a
 * usage error at option parsing): it must be an absolute http:// or
 * https:// URL with a host. */
int rqi_webhook_check_url(const char *url, char *err, size_t errlen);

/* Registers a static `wait` path (copied; a missing leading '/' is
 * added).  Registering a path twice is harmless. */
void rqi_webhook_register_path(RqWebhook *wh, const char *path);
/* Writes the default path /webhook/<exec_id>/<n> of a wait step to out
 * (n: the step's number, from 1).  Returns false if it does not fit. */
bool rqi_webhook_default_path(const char *exec_id, unsigned n, char *out,
                              size_t outlen);

/* Begins a wait on path (registering it for the life of the wait when it
 * is not registered) and moves the path's unexpired buffered events into
 * it.  Never fails; wh must not be NULL (the caller reports "wait:
 * webhook listener not enabled" itself). */
RqWebhookWait *rqi_webhook_wait_begin(RqWebhook *wh, const char *path);
/* Takes the next event of the wait, blocking until one arrives, until
 * deadline_mono_ms (an rq_mono_ms() time; the wait may be reused with a
 * new deadline after a timeout, e.g. for `retry`), or until a stop:
 * rqi_stop_requested (noticed within RQ_WEBHOOK_STOP_SLICE_MS) or
 * rqi_webhook_wakeup.  Returns RQ_WH_EVENT with *ev filled (the caller
 * owns ev->body), RQ_WH_TIMEOUT or RQ_WH_STOPPED (*ev untouched).
 * Events already queued are returned even after the deadline. */
int rqi_webhook_next(RqWebhookWait *w, double deadline_mono_ms,
                     RqWebhookEvent *ev);
#define RQ_WEBHOOK_STOP_SLICE_MS 50
/* Ends the wait.  Events queued in it and never taken go back to the
 * path's buffer when no other wait is active there (they keep their
 * arrival time for expiry), so the next wait on the path gets them; on
 * a path the wait registered they are dropped with the path, and later
 * requests to it get 404.  NULL is ok. */
void rqi_webhook_wait_end(RqWebhookWait *w);
/* Gives an event taken from w back (steals ev->body, sets it NULL): it
 * is never returned by w again, and at rqi_webhook_wait_end it goes back
 * to the path's buffer before the events never taken, keeping its
 * arrival time (same rules as those).  Used for events an eventFilter
 * rejects (SPEC §4.14: they are not counted, so not consumed either). */
void rqi_webhook_release(RqWebhookWait *w, RqWebhookEvent *ev);
/* Makes every current and future rqi_webhook_next on wh return
 * RQ_WH_STOPPED at once (the daemon calls it when it cancels running
 * missions; the signal handler cannot signal a condition variable). */
void rqi_webhook_wakeup(RqWebhook *wh);

/* webhookUrl(path) of §5.4: "<public URL or http://localhost:PORT>" and
 * path joined by exactly one '/'.  Returns NEW text (rq_free it), or
 * NULL with "webhook listener not enabled" in err when wh is NULL. */
char *rqi_webhook_url(const RqWebhook *wh, const char *path, char *err,
                      size_t errlen);

/* For tests: replaces the monotonic clock (ms) that ages buffered events
 * (NULL: rq_mono_ms).  Set it before the first event. */
void rqi_webhook_set_clock(RqWebhook *wh, double (*mono_ms)(void));
/* For tests and metrics: the number of events buffered on path (after
 * dropping expired ones); 0 for an unknown path. */
size_t rqi_webhook_buffered(RqWebhook *wh, const char *path);

#endif
