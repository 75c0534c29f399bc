/* rq_http.h -- http.c, paginate.c, auth.c: everything between a step and
 * the network.  http.c keeps a transport-neutral request interface. */
#ifndef RQ_HTTP_H
#define RQ_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include "reqon.h"
#include "rq_util.h"

int rqi_http_global_init(void);     /* curl_global_init; 0 or -1 */
void rqi_http_global_cleanup(void);

/* Credentials (SPEC §6.1): loads the --auth file (NULL: none).  Returns 0,
 * or -1 after logging why (the caller exits 3). */
int rqi_auth_load(const char *path);
void rqi_auth_free(void);
/* Logs the startup WARN of §6.1 for each source whose credentials are
 * missing or of another type. */
void rqi_auth_check_mission(const RqMissionDef *m);
/* Adds the auth of source src (§6.1) to a request: header pairs go into
 * hdrs (an object name -> string, in insertion order), an api_key query
 * parameter into query (an object name -> value).  Both borrowed and
 * modified. */
void rqi_auth_apply(const RqSourceDef *src, json_t *hdrs, json_t *query);

/* OAuth2 refresh (SPEC §6.1).  State is per source name, shared by every
 * thread; at most one refresh per source runs at a time and the others
 * wait for it.  Refreshed tokens are written to <data>/tokens/<S>.json
 * (0600, atomically) before they are used; that file, when present,
 * overrides the credentials file at load time.
 *
 * rqi_auth_generation: a counter bumped by every successful refresh of
 * src's credential (0 when it has none).  http.c reads it when it builds
 * an attempt's headers.
 * rqi_auth_before_request: called before every attempt (never in
 * --dry-run).  Refreshes when the credential is refreshable and its
 * expiresAt is known and less than 60 s away.  Returns 0, or -RQ_E_FAIL
 * after rq_fail(env, at, "oauth2 refresh for S failed: ...").
 * rqi_auth_refresh_after_401: called once per request after a 401.
 * Returns 1 when the request should be re-sent with fresh headers (this
 * call refreshed, or another thread already did since generation gen was
 * read), 0 when the credential is not refreshable (the 401 is final), or
 * -RQ_E_FAIL after rq_fail as above. */
unsigned long rqi_auth_generation(const RqSourceDef *src);
int rqi_auth_before_request(const RqEnv *env, const RqSourceDef *src,
                            RqAt at);
int rqi_auth_refresh_after_401(const RqEnv *env, const RqSourceDef *src,
                               RqAt at, unsigned long gen);

/* Runs HTTP step st (RQ_ST_HTTP) in env: evaluates path, query, body and
 * headers; adds auth, since and pagination parameters; retries (§6.4);
 * paginates (§6.5).  On success sets env->scope's response, status and
 * headers and records checkpoint candidates (rq_state.h).  A final non-2xx
 * is an error unless st->next_is_match.  Returns 0 or -RQ_E_*. */
int rqi_http_step(const RqEnv *env, const RqStep *st);

/* The streaming form of a paginated step (SPEC §6.5, st->stream_store):
 * the consumer of its pages.  page is called with the items of each page
 * (a borrowed array, NULL when the page has none) once the page is final,
 * 2xx and accepted by the pager, in page order; the page is released
 * after the call. */
typedef struct {
  void (*page)(void *ctx, json_t *items);
  void *ctx;
} RqPageSink;

/* Runs paginated HTTP step st like rqi_http_step, except that the items
 * are handed to sink page by page instead of being concatenated.  On
 * success status() and header() are those of the last page, as without
 * streaming, and the checkpoint candidate counts every item; response is
 * set to null (the compiler streams only when nothing reads it).  In
 * --dry-run the sink is never called.  Returns 0 or -RQ_E_*. */
int rqi_http_step_stream(const RqEnv *env, const RqStep *st,
                         const RqPageSink *sink);

/* ------------------------------------------- transport-neutral requests */
#define RQ_HTTP_MAX_BODY ((size_t)64 << 20)    /* response body cap */

typedef struct {
  const char *method;          /* "GET", "POST", ... */
  const char *url;             /* complete, query included */
  const char *const *headers;  /* "Name: value" lines */
  size_t n_headers;
  const char *body;            /* NULL: no body */
  size_t body_len;
  double timeout_ms;           /* total per attempt; <= 0: 30000 */
} RqHttpRequest;

typedef struct {
  int status;                  /* HTTP status; 0 on transport error */
  json_t *headers;             /* new: object of lower-cased names */
  RqBuf body;                  /* capped at RQ_HTTP_MAX_BODY */
  char error[256];             /* transport error text, "" if none */
  bool too_large;              /* the body exceeded the cap */
  bool interrupted;            /* aborted by rqi_stop_requested */
  double elapsed_ms;
} RqHttpResponse;

/* Sends one request (one attempt, no retry).  Fills *rs, which the caller
 * releases with rqi_http_response_free.  Returns 0 when a response was
 * received (any status), -1 on transport error (rs->error says why). */
int rqi_http_send(const RqHttpRequest *rq, RqHttpResponse *rs);
void rqi_http_response_free(RqHttpResponse *rs);

/* Appends the RFC 3986 percent-encoding of n bytes of s (unreserved
 * characters kept) to b.  Returns 0 or -RQ_E_TOO_LARGE. */
int rqi_http_pct_encode(RqBuf *b, const char *s, size_t n);

/* --------------------------------------------------------- paginate.c */
/* The pagination iterator of SPEC §6.5 for one step execution. */
typedef struct {
  const RqStep *st;
  int page;            /* 0-based page counter */
  json_t *cursor;      /* new string: cursor to send; NULL on page 0 */
  json_t *sent;        /* new object: cursors already sent (set) */
  char prev[65];       /* SHA-256 digest of the previous page body
                          (valid from page 1 on): only its digest is
                          kept, so a step holds one page at a time */
  json_t *items;       /* new array: concatenated items; NULL when the
                          pager does not collect (a streaming step) */
  size_t n_items;      /* items of every page fed so far */
} RqPager;

/* collect: concatenate the items (the step's result); false for a step
 * that streams its pages into a store step (§6.5). */
void rqi_pager_init(RqPager *pg, const RqStep *st, bool collect);
void rqi_pager_free(RqPager *pg);
/* Adds the parameters of the current page to query (borrowed, modified):
 * offset/page number or cursor, and the size parameter. */
void rqi_pager_params(const RqPager *pg, json_t *query);
/* Feeds the decoded body of the current page (borrowed), its status and
 * lower-cased headers (borrowed).  Evaluates `until`, appends the page's
 * items and decides.  Returns 1 when another page must be fetched (the
 * pager has advanced), 0 when pagination is complete, or a negative
 * RQ_E_* after rq_fail(env, st->at, ...).  what is "S GET /p". */
int rqi_pager_feed(RqPager *pg, const RqEnv *env, json_t *body, int status,
                   json_t *headers, const char *what);
/* The items of a page body (§6.5 step 2): the body if it is an array, else
 * its first array field; borrowed, or NULL when there is none. */
json_t *rqi_page_items(const json_t *body);

#endif
