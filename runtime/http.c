/* http.c -- HTTP steps (SPEC §4.4, §6.2-§6.5, §8.1 since).
 *
 * Two layers:
 *   - rqi_http_send(): one transport-neutral request over libcurl (one
 *     attempt): a request description in; status, lower-cased headers and
 *     a capped body out.  A curl share handle keeps DNS and connections
 *     warm across the easy handles of all threads.
 *   - rqi_http_step(): the whole step: evaluates path, query, body and
 *     headers, layers the headers, adds auth, since and pagination
 *     parameters, runs the attempts (circuit breaker, rate-limit gate,
 *     OAuth2 refresh, backoff and Retry-After), decodes bodies, paginates
 *     through paginate.c, sets the scope's response and records the
 *     checkpoint candidate.  In --dry-run it prints the request instead
 *     (SPEC §10.1).
 *
 * Ownership: every json_t * field of Call is a new reference owned by the
 * Call and released by call_free().
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "rq_internal.h"
#include "rq_limit.h"
#include "rq_metrics.h"

#define CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 30000.0
#define MAX_REDIRECTS 10        /* same-origin hops followed per request */
#define DEFAULT_MAX_WAIT_S 300.0
#define SLEEP_SLICE_MS 50.0
#define WAIT_SLICE_MS 1000.0    /* rate-limit waits re-check the gate */

/* ------------------------------------------------ global curl state */
/* libcurl does not support sharing a connection cache between threads
 * that run transfers concurrently, so each thread keeps its own multi
 * handle (which owns the thread's connection cache, keeping connections
 * alive between requests) and one reusable easy handle.  DNS and TLS
 * sessions are shared process-wide through a share handle.  The multi
 * interface also lets a transfer notice a stop request within
 * POLL_SLICE_MS instead of curl's once-a-second progress callback. */
#define POLL_SLICE_MS 100

typedef struct {
  CURLM *multi;
  CURL *easy;
} ThreadConn;

static CURLSH *share;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a,
                       void *u)
{
  if(d >= 0 && d < CURL_LOCK_DATA_LAST)
    pthread_mutex_lock(&share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
  if(d >= 0 && d < CURL_LOCK_DATA_LAST)
    pthread_mutex_unlock(&share_mu[d]);
}

/* pthread key destructor: runs when a thread that made requests exits. */
static void conn_free(void *p)
{
  ThreadConn *tc = p;

  if(!tc)
    return;
  if(tc->easy)
    curl_easy_cleanup(tc->easy);
  if(tc->multi)
    curl_multi_cleanup(tc->multi);
  rq_free(tc);
}

static void conn_key_init(void)
{
  pthread_key_create(&conn_key, conn_free);
}

/* The calling thread's handles, created on first use; NULL on failure. */
static ThreadConn *thread_conn(void)
{
  ThreadConn *tc;

  pthread_once(&conn_once, conn_key_init);
  tc = pthread_getspecific(conn_key);
  if(tc)
    return tc;
  tc = rq_calloc(1, sizeof(*tc));
  tc->multi = curl_multi_init();
  tc->easy = curl_easy_init();
  if(!tc->multi || !tc->easy) {
    conn_free(tc);
    return NULL;
  }
  pthread_setspecific(conn_key, tc);
  return tc;
}

int rqi_http_global_init(void)
{
  int i;

  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -1;
  pthread_once(&conn_once, conn_key_init);
  for(i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&share_mu[i], NULL);
  share = curl_share_init();
  if(!share)
    return 0;    /* optional: requests work without it */
  curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  return 0;
}

/* Call after every other thread that made requests has exited. */
void rqi_http_global_cleanup(void)
{
  int i;

  pthread_once(&conn_once, conn_key_init);
  conn_free(pthread_getspecific(conn_key));
  pthread_setspecific(conn_key, NULL);
  rqi_limit_cleanup();
  if(share) {
    curl_share_cleanup(share);
    share = NULL;
    for(i = 0; i < CURL_LOCK_DATA_LAST; i++)
      pthread_mutex_destroy(&share_mu[i]);
  }
  curl_global_cleanup();
}

/* ------------------------------------------------------ one request */
static size_t on_body(char *p, size_t size, size_t n, void *u)
{
  RqHttpResponse *rs = u;
  size_t len = size * n;

  if(len == 0)
    return 0;
  if(rq_buf_add(&rs->body, p, len) != 0) {
    rs->too_large = true;    /* rq_buf_add freed the buffer */
    return 0;                /* makes curl fail with a write error */
  }
  return len;
}

/* Collects response headers: lower-cased names, repeated headers joined
 * with ", ".  A status line starts a new response (redirects, 100). */
static size_t on_header(char *p, size_t size, size_t n, void *u)
{
  RqHttpResponse *rs = u;
  size_t len = size * n, i, nlen, vbeg, vend;
  char name[128];
  json_t *old, *v;

  if(len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    json_object_clear(rs->headers);
    return len;
  }
  for(nlen = 0; nlen < len && p[nlen] != ':'; nlen++)
    ;
  if(nlen == 0 || nlen == len || nlen >= sizeof(name))
    return len;
  for(i = 0; i < nlen; i++)
    name[i] = (char)tolower((unsigned char)p[i]);
  name[nlen] = '\0';
  vbeg = nlen + 1;
  vend = len;
  while(vbeg < vend && (p[vbeg] == ' ' || p[vbeg] == '\t'))
    vbeg++;
  while(vend > vbeg && isspace((unsigned char)p[vend - 1]))
    vend--;
  old = json_object_get(rs->headers, name);
  if(old) {
    char *j = rq_asprintf("%s, %.*s", json_string_value(old),
                          (int)(vend - vbeg), p + vbeg);
    v = json_string(j);
    rq_free(j);
  }
  else
    v = json_stringn(p + vbeg, vend - vbeg);
  if(v)    /* NULL: not UTF-8; such a header is dropped */
    json_object_set_new(rs->headers, name, v);
  return len;
}

static int on_progress(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                       curl_off_t un)
{
  RqHttpResponse *rs = u;

  if(rqi_stop_requested) {
    rs->interrupted = true;
    return 1;
  }
  return 0;
}

/* Runs the transfer of h on the thread's multi handle, checking for a stop
 * request between polls.  Returns curl's result for the transfer. */
static CURLcode perform(ThreadConn *tc, RqHttpResponse *rs)
{
  CURLMcode mc;
  CURLMsg *msg;
  CURLcode cc = CURLE_OK;
  int running = 1, left;

  if(curl_multi_add_handle(tc->multi, tc->easy) != CURLM_OK)
    return CURLE_FAILED_INIT;
  for(;;) {
    mc = curl_multi_perform(tc->multi, &running);
    if(mc != CURLM_OK) {
      cc = CURLE_FAILED_INIT;
      break;
    }
    if(!running)
      break;
    if(rqi_stop_requested) {
      rs->interrupted = true;
      cc = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    mc = curl_multi_poll(tc->multi, NULL, 0, POLL_SLICE_MS, NULL);
    if(mc != CURLM_OK) {
      cc = CURLE_FAILED_INIT;
      break;
    }
  }
  if(!running) {
    while((msg = curl_multi_info_read(tc->multi, &left))) {
      if(msg->msg == CURLMSG_DONE && msg->easy_handle == tc->easy)
        cc = msg->data.result;
    }
  }
  curl_multi_remove_handle(tc->multi, tc->easy);
  return cc;
}

/* Do two absolute URLs share scheme, host and port?  Credentials are sent
 * with every request to a source, so a redirect may only be followed
 * within the source's own origin: curl would re-send custom credential
 * headers (X-API-Key, a bearer `header:`) to any host it is sent to. */
static bool same_origin(const char *a, const char *b)
{
  static const CURLUPart parts[] = { CURLUPART_SCHEME, CURLUPART_HOST,
                                     CURLUPART_PORT };
  CURLU *ua = curl_url(), *ub = curl_url();
  bool same = ua && ub &&
              curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
              curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK;
  for(size_t i = 0; same && i < sizeof parts / sizeof parts[0]; i++) {
    char *x = NULL, *y = NULL;
    same = curl_url_get(ua, parts[i], &x, CURLU_DEFAULT_PORT) ==
             CURLUE_OK &&
           curl_url_get(ub, parts[i], &y, CURLU_DEFAULT_PORT) ==
             CURLUE_OK &&
           strcasecmp(x, y) == 0;
    curl_free(x);
    curl_free(y);
  }
  curl_url_cleanup(ua);
  curl_url_cleanup(ub);
  return same;
}

static bool is_redirect(long status)
{
  return status == 301 || status == 302 || status == 303 ||
         status == 307 || status == 308;
}

/* Does rq carry header `name` (lower case)? */
static bool has_header(const RqHttpRequest *rq, const char *name)
{
  size_t n = strlen(name);

  for(size_t i = 0; i < rq->n_headers; i++)
    if(strncasecmp(rq->headers[i], name, n) == 0 &&
       rq->headers[i][n] == ':')
      return true;
  return false;
}

int rqi_http_send(const RqHttpRequest *rq, RqHttpResponse *rs)
{
  ThreadConn *tc;
  CURL *h;
  CURLcode cc;
  struct curl_slist *sl = NULL, *t;
  char errbuf[CURL_ERROR_SIZE];
  double t0 = rq_mono_ms();
  long status = 0;
  size_t i;
  int rc = -1;
  char *hop_url = NULL;   /* URL of the current redirect hop, if any */

  memset(rs, 0, sizeof(*rs));
  rs->body.max = RQ_HTTP_MAX_BODY;
  rs->headers = json_object();
  errbuf[0] = '\0';
  tc = thread_conn();
  if(!tc) {
    snprintf(rs->error, sizeof(rs->error), "cannot create a curl handle");
    return -1;
  }
  h = tc->easy;
  curl_easy_reset(h);
  for(i = 0; i < rq->n_headers; i++) {
    t = curl_slist_append(sl, rq->headers[i]);
    if(!t)
      goto oom;
    sl = t;
  }
  /* Never wait for "100 Continue": small test servers do not send it. */
  t = curl_slist_append(sl, "Expect:");
  if(!t)
    goto oom;
  sl = t;
  /* Without a body, no Content-Type (SPEC §6.2): libcurl would add
   * application/x-www-form-urlencoded to the empty POST body below.  A
   * Content-Type the step sets itself is kept. */
  if(!rq->body && !has_header(rq, "content-type")) {
    t = curl_slist_append(sl, "Content-Type:");
    if(!t)
      goto oom;
    sl = t;
  }

  curl_easy_setopt(h, CURLOPT_URL, rq->url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, sl);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                   (long)(rq->timeout_ms > 0 ? rq->timeout_ms
                                             : DEFAULT_TIMEOUT_MS));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, rs);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, rs);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, rs);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  /* Redirects are followed below, one hop at a time (same_origin). */
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
  /* Only http and https, for the request and any redirect: a base or
   * Location of file://, ftp://, ... must never make the daemon read
   * local files or speak another protocol with the credentials. */
#if LIBCURL_VERSION_NUM >= 0x075500    /* 7.85.0: the _STR options */
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS,
                   (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS,
                   (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                   (curl_off_t)RQ_HTTP_MAX_BODY);
  if(share)
    curl_easy_setopt(h, CURLOPT_SHARE, share);

  if(strcmp(rq->method, "GET") == 0 && !rq->body)
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  else if(strcmp(rq->method, "HEAD") == 0)
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else {
    if(strcmp(rq->method, "POST") != 0)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    if(rq->body) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       (curl_off_t)rq->body_len);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
    }
    else if(strcmp(rq->method, "POST") == 0 ||
            strcmp(rq->method, "PUT") == 0 ||
            strcmp(rq->method, "PATCH") == 0) {
      /* An empty body, sent with Content-Length: 0. */
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
  }

  for(int hops = 0;; hops++) {
    char *loc = NULL;
    cc = perform(tc, rs);
    if(cc != CURLE_OK)
      break;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if(!is_redirect(status) || hops >= MAX_REDIRECTS ||
       curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK ||
       !loc)
      break;
    if(!same_origin(rq->url, loc)) {
      char *shown = rqi_log_redact(loc);
      rq_log(RQ_LOG_WARN, NULL, "redirect to another origin not followed "
             "(HTTP %ld to %s): credentials go only to the source's own "
             "host", status, shown);
      rq_free(shown);
      break;
    }
    /* Next hop: 303, and 301/302 after a POST, continue as GET without
     * the body, as browsers and curl do. */
    char *next = rq_strdup(loc);
    curl_easy_setopt(h, CURLOPT_URL, next);
    if(status == 303 || ((status == 301 || status == 302) &&
                         strcmp(rq->method, "POST") == 0)) {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    rq_free(hop_url);
    hop_url = next;
    rs->body.len = 0;
    if(rs->body.data)
      rs->body.data[0] = '\0';
    json_object_clear(rs->headers);
  }
  rs->elapsed_ms = rq_mono_ms() - t0;
  if(cc == CURLE_OK) {
    rs->status = (int)status;
    rc = 0;
  }
  else if(rs->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
    rs->too_large = true;
    snprintf(rs->error, sizeof(rs->error),
             "response body exceeds %zu MiB", RQ_HTTP_MAX_BODY >> 20);
  }
  else if(rs->interrupted || cc == CURLE_ABORTED_BY_CALLBACK) {
    rs->interrupted = true;
    snprintf(rs->error, sizeof(rs->error), "interrupted");
  }
  else
    snprintf(rs->error, sizeof(rs->error), "%s",
             errbuf[0] ? errbuf : curl_easy_strerror(cc));
  /* Drop every pointer into this call's memory, and detach the share so
   * that rqi_http_global_cleanup can free it. */
  curl_easy_reset(h);
  curl_slist_free_all(sl);
  rq_free(hop_url);
  return rc;

oom:
  curl_slist_free_all(sl);
  snprintf(rs->error, sizeof(rs->error), "out of memory");
  return -1;
}

void rqi_http_response_free(RqHttpResponse *rs)
{
  json_decref(rs->headers);
  rs->headers = NULL;
  rq_buf_free(&rs->body);
}

/* --------------------------------------------------- URL building */
static bool is_unreserved(unsigned char ch)
{
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
         (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
         ch == '~';
}

int rqi_http_pct_encode(RqBuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789ABCDEF";
  char esc[3];
  size_t i, run = 0;
  int rc;

  for(i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if(is_unreserved(ch)) {
      run++;
      continue;
    }
    if(run) {
      rc = rq_buf_add(b, s + i - run, run);
      if(rc)
        return rc;
      run = 0;
    }
    esc[0] = '%';
    esc[1] = hex[ch >> 4];
    esc[2] = hex[ch & 15];
    rc = rq_buf_add(b, esc, 3);
    if(rc)
      return rc;
  }
  return run ? rq_buf_add(b, s + n - run, run) : 0;
}

/* Appends sep (when not NUL; then clears it, so that later parameters use
 * '&') and name=value for one scalar or object value (§6.3); null and
 * missing values are omitted.  mask: the value is a secret, shown as
 * *** (the --dry-run plan). */
static void add_param(RqBuf *b, char *sep, const char *name,
                      const json_t *v, bool mask)
{
  char *text;

  if(!v || json_is_null(v))
    return;
  if(*sep)
    rq_buf_add(b, sep, 1);
  *sep = '&';
  rqi_http_pct_encode(b, name, strlen(name));
  rq_buf_add(b, "=", 1);
  if(mask) {
    rq_buf_add(b, "***", 3);
    return;
  }
  if(json_is_string(v)) {
    if(json_string_length(v))
      rqi_http_pct_encode(b, json_string_value(v), json_string_length(v));
    return;
  }
  text = rqi_text(v);
  rqi_http_pct_encode(b, text, strlen(text));
  rq_free(text);
}

/* Builds base + path + query into a new string.  The buffer is
 * unbounded, so rq_buf_add cannot fail (allocation failure aborts).
 * masked (may be NULL): names of parameters whose values are shown as
 * ***. */
static char *build_url(const char *base, const char *path,
                       const json_t *query, const json_t *masked)
{
  RqBuf b = RQ_BUF_INIT(0);
  const char *k, *q = strchr(path, '?');
  size_t blen = strlen(base), plen = strlen(path), i;
  json_t *v, *e;
  char sep;

  /* exec.c already removed the base's one trailing '/' (§6.2); removing
   * another here would turn a base ".../api//" into ".../api". */
  rq_buf_add(&b, base, blen);
  rq_buf_add(&b, path, plen);
  /* A path that already has a query gets '&' (none after "?" or "&"). */
  sep = !q ? '?' : (path[plen - 1] == '?' || path[plen - 1] == '&')
                   ? '\0' : '&';
  json_object_foreach((json_t *)query, k, v) {
    bool mask = masked && json_object_get(masked, k);
    if(json_is_array(v)) {
      json_array_foreach(v, i, e)
        add_param(&b, &sep, k, e, mask);
    }
    else
      add_param(&b, &sep, k, v, mask);
  }
  return b.data;    /* never NULL: base or path is non-empty */
}

/* ----------------------------------------------------- the step call */
typedef struct {
  const RqEnv *env;
  const RqStep *st;
  const RqSourceDef *src;
  const char *base;
  char *path;          /* evaluated; leading '/' ensured */
  char *bare;          /* path without the query: "/p" */
  char *what;          /* "S GET /p", for messages */
  json_t *query;       /* params sent on every page */
  char *body;          /* serialised body, NULL: none */
  size_t body_len;
  json_t *hdrs;        /* lower-cased name -> "Name: value": sent */
  json_t *hdr_pre;     /* layers 1-2 of §6.2 (defaults, source) */
  json_t *hdr_step;    /* layer 4 (step headers), evaluated once */
  json_t *auth_names;  /* lower-cased auth header names -> true */
  json_t *auth_query;  /* api_key query parameter names -> true */
  unsigned long auth_gen;   /* rqi_auth_generation when hdrs was built */
  double timeout_ms;
  double first_ms;     /* wall time the first request was sent; 0 */
  bool all_2xx;
  bool paginated;
  const RqPageSink *sink;   /* streaming (§6.5); NULL: collect */
  char at[256];
  RqLogCtx ctx;
} Call;

/* A final page: status, headers and decoded body (all new). */
typedef struct {
  int status;
  json_t *headers;
  json_t *value;
} Page;

static void page_free(Page *p)
{
  json_decref(p->headers);
  json_decref(p->value);
  memset(p, 0, sizeof(*p));
}

static void call_free(Call *c)
{
  rq_free(c->path);
  rq_free(c->bare);
  rq_free(c->what);
  json_decref(c->query);
  rq_free(c->body);
  json_decref(c->hdrs);
  json_decref(c->hdr_pre);
  json_decref(c->hdr_step);
  json_decref(c->auth_names);
  json_decref(c->auth_query);
}

/* Lower-cases the n bytes of name into out (cap bytes); false when the
 * name is empty or too long (such a header is dropped). */
static bool lower_name(const char *name, size_t n, char *out, size_t cap)
{
  size_t i;

  if(n == 0 || n >= cap)
    return false;
  for(i = 0; i < n; i++)
    out[i] = (char)tolower((unsigned char)name[i]);
  out[n] = '\0';
  return true;
}

/* Sets header name (n bytes) to value, replacing any earlier layer's
 * header of the same name, whatever its case. */
static void hdr_set(json_t *hdrs, const char *name, size_t n,
                    const char *value)
{
  char lower[256];
  char *line;
  size_t i;

  if(!lower_name(name, n, lower, sizeof(lower)))
    return;
  /* curl drops "Name:" with an empty value; "Name;" sends it empty. */
  if(value[0])
    line = rq_asprintf("%.*s: %s", (int)n, name, value);
  else
    line = rq_asprintf("%.*s;", (int)n, name);
  /* A value computed from data must not smuggle in more header lines. */
  for(i = 0; line[i]; i++) {
    if(line[i] == '\r' || line[i] == '\n')
      line[i] = ' ';
  }
  json_object_set_new(hdrs, lower, json_string(line));
  rq_free(line);
}

/* Evaluates a header layer in env into hdrs (missing or null values
 * omitted). */
static int hdr_layer(json_t *hdrs, const RqEnv *env, const RqKV *kv,
                     size_t n)
{
  size_t i;
  json_t *v;
  char *text;
  int rc;

  for(i = 0; i < n; i++) {
    v = NULL;
    rc = kv[i].value(env, &v);
    if(rc)
      return rc;
    if(v && !json_is_null(v)) {
      text = rqi_text(v);
      hdr_set(hdrs, kv[i].key, kv[i].key_len, text);
      rq_free(text);
    }
    json_decref(v);
  }
  return 0;
}

/* (Re)builds c->hdrs from the layers of §6.2: the evaluated layers 1-2,
 * the auth layer as it is now, then the step layer.  An OAuth2 refresh
 * changes only the auth layer, so the expressions of the others are not
 * evaluated again.  query (NULL on a rebuild): receives an api_key query
 * parameter (layer 2 of §6.3). */
static void compose_headers(Call *c, json_t *query)
{
  json_t *auth = json_object(), *aq = json_object(), *v;
  const char *k;
  char lower[256];

  json_decref(c->hdrs);
  c->hdrs = json_copy(c->hdr_pre);
  /* Read before applying: a refresh in between shows up next attempt. */
  c->auth_gen = rqi_auth_generation(c->src);
  rqi_auth_apply(c->src, auth, aq);
  json_object_foreach(auth, k, v) {
    hdr_set(c->hdrs, k, strlen(k), json_string_value(v));
    if(lower_name(k, strlen(k), lower, sizeof(lower)))
      json_object_set_new(c->auth_names, lower, json_true());
  }
  json_object_foreach(aq, k, v) {
    json_object_set_new(c->auth_query, k, json_true());
    if(query)
      json_object_set(query, k, v);
  }
  json_object_foreach(c->hdr_step, k, v)
    json_object_set(c->hdrs, k, v);
  json_decref(auth);
  json_decref(aq);
}

static int build_headers(Call *c)
{
  RqRun *run = c->env->run;
  RqEnv menv;
  char *ua;
  int rc;

  c->hdr_pre = json_object();
  c->hdr_step = json_object();
  c->auth_names = json_object();
  c->auth_query = json_object();
  hdr_set(c->hdr_pre, "Accept", 6, "application/json");
  ua = rq_asprintf("reqon/%s", RQ_VERSION);
  hdr_set(c->hdr_pre, "User-Agent", 10, ua);
  rq_free(ua);
  /* With the defaults, so that a source or step header can override it. */
  if(c->body)
    hdr_set(c->hdr_pre, "Content-Type", 12, "application/json");
  /* Source headers: mission scope, subject = its response. */
  menv.run = run;
  menv.scope = run->mission_scope;
  menv.subject = run->mission_scope ? run->mission_scope->response : NULL;
  rc = hdr_layer(c->hdr_pre, &menv, c->src->headers, c->src->n_headers);
  if(rc == 0)
    rc = hdr_layer(c->hdr_step, c->env, c->st->headers, c->st->n_headers);
  if(rc == 0)
    compose_headers(c, c->query);
  return rc;
}

/* Copies the fields of object o into the query, in order. */
static void query_merge(json_t *query, json_t *o)
{
  const char *k;
  json_t *v;

  json_object_foreach(o, k, v)
    json_object_set(query, k, v);
}

/* Evaluates path, query and body. */
static int prepare(Call *c)
{
  const RqEnv *env = c->env;
  const RqStep *st = c->st;
  json_t *v = NULL;
  char *text, *q;
  int rc;

  rc = st->path(env, &v);
  if(rc)
    return rc;
  text = rqi_text(v);
  json_decref(v);
  c->path = text[0] == '/' ? rq_strdup(text) : rq_asprintf("/%s", text);
  rq_free(text);
  q = strchr(c->path, '?');
  c->bare = q ? rq_strndup(c->path, (size_t)(q - c->path))
              : rq_strdup(c->path);
  c->what = rq_asprintf("%s %s %s", c->src->name, st->method, c->bare);

  /* Layer 1 of §6.3: the step's query object. */
  c->query = json_object();
  if(st->query) {
    v = NULL;
    rc = st->query(env, &v);
    if(rc)
      return rc;
    if(json_is_object(v))
      query_merge(c->query, v);
    else if(v && !json_is_null(v)) {
      rc = rq_fail(env, st->at, "query must be an object (got %s)",
                   rqi_type_name(v));
      json_decref(v);
      return rc;
    }
    json_decref(v);
  }
  if(st->body) {
    v = NULL;
    rc = st->body(env, &v);
    if(rc)
      return rc;
    if(strcmp(st->method, "GET") == 0 && json_is_object(v))
      query_merge(c->query, v);   /* §4.4: GET sends a body as query */
    else if(v && !json_is_null(v)) {
      c->body = rqi_dumps(v, 0);
      c->body_len = strlen(c->body);
    }
    json_decref(v);
  }
  return 0;
}

/* The checkpoint key of §8.1; new string. */
static char *since_key(const Call *c)
{
  size_t n = strlen(c->bare);

  if(c->st->since_key)
    return rq_strdup(c->st->since_key);
  if(n > 1 && c->bare[n - 1] == '/')
    n--;
  return rq_asprintf("%s:%.*s", c->src->name, (int)n, c->bare);
}

/* Formats ms per the since format (iso, unix, unix-ms, date-only). */
static json_t *since_text(double ms, const char *fmt)
{
  char buf[64];

  if(fmt && strcmp(fmt, "unix") == 0)
    snprintf(buf, sizeof(buf), "%lld", (long long)(ms / 1000.0));
  else if(fmt && strcmp(fmt, "unix-ms") == 0)
    snprintf(buf, sizeof(buf), "%lld", (long long)ms);
  else {
    rq_iso_time(ms, buf);
    if(fmt && strcmp(fmt, "date-only") == 0)
      buf[10] = '\0';
  }
  return json_string(buf);
}

/* Layer 3 of §6.3: since parameters. */
static int add_since(Call *c)
{
  const RqStep *st = c->st;
  const char *param = st->since_param ? st->since_param : "since";
  json_t *v = NULL;
  double ms = 0;
  char *key;
  int rc;

  if(st->since_kind == RQ_SINCE_LASTSYNC) {
    key = since_key(c);
    if(!rqi_checkpoint_get(c->env->run, key, &ms))
      ms = 0;    /* the epoch, as the reference sends */
    rq_free(key);
    json_object_set_new(c->query, param, since_text(ms, st->since_format));
  }
  else if(st->since_kind == RQ_SINCE_EXPR && st->since_expr) {
    rc = st->since_expr(c->env, &v);
    if(rc)
      return rc;
    /* Encoded by the query rules: text, and null or missing omitted. */
    json_object_set_new(c->query, param, v ? v : json_null());
  }
  return 0;
}

/* --------------------------------------------------------- attempts */
static double rand_unit(void)
{
  static __thread unsigned int seed;

  if(seed == 0)
    seed = (unsigned int)rq_now_ms() ^ (unsigned int)(uintptr_t)&seed ^ 1u;
  return (double)rand_r(&seed) / ((double)RAND_MAX + 1.0);
}

/* The delay after failed attempt k (1-based), §6.4 step 4. */
static double backoff_ms(const RqRetryDef *r, int k)
{
  double base = r->initial_ms > 0 ? r->initial_ms : 0;
  double cap = r->max_ms > 0 ? r->max_ms : 30000.0;
  double d;
  int i;

  switch(r->backoff) {
  case RQ_BACKOFF_EXPONENTIAL:
    for(i = 1; i < k && base < cap * 2; i++)
      base *= 2;
    break;
  case RQ_BACKOFF_LINEAR:
    base *= k;
    break;
  case RQ_BACKOFF_CONSTANT:
    break;
  }
  d = base * (1.0 + (rand_unit() * 0.2 - 0.1));
  if(d > cap)
    d = cap;
  return (double)(long long)(d + 0.5);
}

/* Sleeps ms, waking early when a stop is requested.  Returns 0, or -1
 * when interrupted. */
static int sleep_ms(double ms)
{
  double end = rq_mono_ms() + ms, left;
  struct timespec ts;

  for(;;) {
    if(rqi_stop_requested)
      return -1;
    left = end - rq_mono_ms();
    if(left <= 0)
      return 0;
    if(left > SLEEP_SLICE_MS)
      left = SLEEP_SLICE_MS;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(left * 1e6);
    nanosleep(&ts, NULL);
  }
}

/* Whole seconds for messages, rounded up: "resets in 1s", never "0s"
 * for a wait that is still ahead. */
static double secs_up(double ms)
{
  double s = ceil(ms / 1000.0 - 1e-9);

  return s < 1 ? 1 : s;
}

/* Logs a rate-limit wait when rqi_rl_wait_log says a line is due. */
static void wait_log(Call *c, RqRlWaitLog *w, double left_ms)
{
  RqRun *run = c->env->run;
  int due = rqi_rl_wait_log(w, rq_mono_ms(), left_ms);

  if(due == RQ_RL_LOG_START)
    rq_log(RQ_LOG_INFO, &c->ctx, "%s/%s: rate limit on %s: waiting %.0fs "
           "before %s", run->m->name, run->action ? run->action : "-",
           c->src->name, secs_up(left_ms), c->what);
  else if(due == RQ_RL_LOG_STILL)
    rq_log(RQ_LOG_INFO, &c->ctx, "%s/%s: rate limit on %s: still waiting, "
           "%.0fs left before %s", run->m->name,
           run->action ? run->action : "-", c->src->name,
           secs_up(left_ms), c->what);
}

/* One slice of a rate-limit wait: at most WAIT_SLICE_MS, so that the
 * caller re-checks (another thread's response may change the limit) and
 * logs.  Returns 0, or -RQ_E_INTERRUPT on a stop request. */
static int wait_slice(Call *c, RqRlWaitLog *w, double left_ms)
{
  double t0 = rq_mono_ms(), slice;
  int rc;

  wait_log(c, w, left_ms);
  slice = left_ms < WAIT_SLICE_MS ? left_ms : WAIT_SLICE_MS;
  rc = sleep_ms(slice);
  rqi_ratelimit_add_wait(c->src, rq_mono_ms() - t0);
  return rc ? -RQ_E_INTERRUPT : 0;
}

static int fail_max_wait(Call *c, double wait_ms, double max_wait_ms)
{
  return rq_fail(c->env, c->st->at,
                 "rate limit wait %.0fs exceeds maxWait %gs for %s",
                 secs_up(wait_ms), max_wait_ms / 1000.0, c->src->name);
}

/* The rate-limit gate of §6.6 before an attempt: waits while the source
 * is blocked (pause, throttle) or its requests must be spaced
 * (throttle).  Returns 0 to send, or a negative code after rq_fail (or
 * -RQ_E_INTERRUPT). */
static int rate_gate(Call *c, double max_wait_ms)
{
  RqRlWaitLog w = RQ_RL_WAIT_LOG_INIT;
  double wait;
  int rc = 0;

  for(;;) {
    switch(rqi_ratelimit_gate(c->src, rq_now_ms(), &wait)) {
    case RQ_RL_GO:
      return 0;
    case RQ_RL_LIMITED:
      return rq_fail(c->env, c->st->at, "rate limited on %s (resets in "
                     "%.0fs)", c->src->name, secs_up(wait));
    case RQ_RL_TOO_LONG:
      return fail_max_wait(c, wait, max_wait_ms);
    case RQ_RL_WAIT:
      rc = wait_slice(c, &w, wait);
      if(rc)
        return rc;
      break;
    }
  }
}

/* Sleeps until the wall-clock deadline of a 429's Retry-After, so that
 * the gate, which compares the same deadline with the wall clock, lets
 * the next attempt pass.  Returns 0 or -RQ_E_INTERRUPT. */
static int wait_retry_after(Call *c, double deadline)
{
  RqRlWaitLog w = RQ_RL_WAIT_LOG_INIT;
  double left;
  int rc;

  while((left = deadline - rq_now_ms()) > 0) {
    rc = wait_slice(c, &w, left);
    if(rc)
      return rc;
  }
  return 0;
}

static bool is_retryable(int status)
{
  return status == 429 || (status >= 500 && status <= 599);
}

static bool content_is_json(const json_t *headers)
{
  const char *ct = json_string_value(json_object_get(headers,
                                                     "content-type"));
  size_t i;

  if(!ct)
    return true;
  for(i = 0; ct[i]; i++) {
    if(strncasecmp(ct + i, "json", 4) == 0)
      return true;
  }
  return false;
}

/* jansson refuses integers beyond 64 bits although the text is valid
 * JSON.  Values are doubles (§5.1), so such a body is read with ".0"
 * appended to each integer literal outside the int64 range: those become
 * doubles while every other integer still passes through unchanged.
 * Returns the new text (its length in *out_n). */
static char *widen_big_ints(const char *data, size_t n, size_t *out_n)
{
  RqBuf b = RQ_BUF_INIT(0);
  char tok[64];
  size_t i = 0, j, k;
  bool in_str = false, integral;

  while(i < n) {
    char ch = data[i];
    if(in_str || (ch != '-' && !isdigit((unsigned char)ch))) {
      if(in_str && ch == '\\' && i + 1 < n) {
        rq_buf_add(&b, data + i, 2);
        i += 2;
        continue;
      }
      if(ch == '"')
        in_str = !in_str;
      rq_buf_add(&b, data + i, 1);
      i++;
      continue;
    }
    /* A number token: copy it, then widen it if it is a big integer. */
    integral = true;
    for(j = i; j < n && (isdigit((unsigned char)data[j]) ||
                         (data[j] && strchr("+-.eE", data[j]))); j++) {
      if(data[j] == '.' || data[j] == 'e' || data[j] == 'E')
        integral = false;
    }
    rq_buf_add(&b, data + i, j - i);
    k = j - i;
    if(integral && k >= 19) {
      bool big = k >= sizeof(tok);
      if(!big) {
        memcpy(tok, data + i, k);
        tok[k] = '\0';
        errno = 0;
        (void)strtoll(tok, NULL, 10);
        big = errno == ERANGE;
      }
      if(big)
        rq_buf_add(&b, ".0", 2);
    }
    i = j;
  }
  *out_n = b.len;
  return b.data ? b.data : rq_strdup("");
}

/* Decodes a final body (§6.4 step 6) into *out (new).  lenient: an error
 * body that does not parse becomes a string (or null) instead of failing.
 */
static int decode(Call *c, RqHttpResponse *rs, bool lenient, json_t **out)
{
  json_error_t err;
  const char *data = rs->body.data;
  size_t len = rs->body.len;
  json_t *v;

  *out = NULL;
  if(len == 0 || rs->status == 204 || rs->status == 205 ||
     rs->status == 304) {
    *out = json_null();
    return 0;
  }
  v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if(!v && strstr(err.text, "too big")) {
    size_t wlen;
    char *wide = widen_big_ints(data, len, &wlen);
    v = json_loadb(wide, wlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    rq_free(wide);
  }
  if(v) {
    *out = v;
    return 0;
  }
  if(!lenient && content_is_json(rs->headers))
    return rq_fail(c->env, c->st->at, "invalid JSON from %s: %s at %d:%d",
                   c->what, err.text, err.line, err.column);
  v = json_stringn(data, len);
  if(v) {
    *out = v;
    return 0;
  }
  if(lenient) {
    *out = json_null();
    return 0;
  }
  return rq_fail(c->env, c->st->at, "non-text response from %s",
                 c->src->name);
}

static void log_attempt(Call *c, int page, int attempt,
                        const RqHttpResponse *rs, long items)
{
  RqRun *run = c->env->run;
  char pg[32] = "", at[32] = "", it[32] = "", st[300];
  char *path;
  RqLogCtx ctx = c->ctx;

  if(RQ_LOG_DEBUG < rqi_log_level)
    return;
  if(c->paginated)
    snprintf(pg, sizeof(pg), " page=%d", page + 1);
  if(attempt > 1)
    snprintf(at, sizeof(at), " attempt=%d", attempt);
  if(items >= 0)
    snprintf(it, sizeof(it), " items=%ld", items);
  if(rs->status)
    snprintf(st, sizeof(st), " status=%d", rs->status);
  else
    snprintf(st, sizeof(st), " error=\"%s\"", rs->error);
  path = rqi_log_redact(c->bare);
  /* The JSON format's keys of §10.2 for an HTTP attempt. */
  ctx.step = c->st->method;
  ctx.source = c->src->name;
  ctx.method = c->st->method;
  ctx.path = path;
  ctx.status = rs->status;
  ctx.attempt = attempt;
  ctx.duration_ms = rs->elapsed_ms;
  ctx.has_duration = true;
  ctx.records = items;
  ctx.has_records = items >= 0;
  ctx.error = rs->status ? NULL : rs->error;
  rq_log(RQ_LOG_DEBUG, &ctx, "%s/%s: %s %s%s%s%s%s (%.0fms)",
         run->m->name, run->action ? run->action : "-", c->st->method,
         path, pg, at, st, it, rs->elapsed_ms);
  rq_free(path);
}

/* The item count of a body (§8.1 recordCount); -1 when it has none. */
static long count_items(const json_t *v)
{
  json_t *items = rqi_page_items(v);

  return items ? (long)json_array_size(items) : -1;
}

/* The header lines of c->hdrs for an RqHttpRequest (borrowed strings;
 * the array is owned by the caller). */
static const char **header_lines(const Call *c, size_t *n)
{
  const char **lines;
  const char *k;
  json_t *v;

  *n = 0;
  lines = rq_calloc(json_object_size(c->hdrs) + 1, sizeof(*lines));
  json_object_foreach(c->hdrs, k, v)
    lines[(*n)++] = json_string_value(v);
  return lines;
}

/* Fetches one page with its attempts (§6.4).  Per attempt: OAuth2
 * pre-refresh, the circuit breaker (open: fail at once, no attempt
 * used), the rate-limit gate, the send; the outcome goes to the breaker
 * and the response headers to the limiter.  On 0, *pg holds the final
 * response: a 2xx, or another status when the next step is a match.
 * Otherwise returns a negative code after rq_fail, or -RQ_E_INTERRUPT
 * without a message on a stop request (exec.c records "interrupted" with
 * the interrupt code; rq_fail would record a plain failure). */
static int fetch_page(Call *c, const json_t *query, int page, Page *pg)
{
  const RqStep *st = c->st;
  const RqEnv *env = c->env;
  RqHttpRequest rq;
  RqHttpResponse rs;
  RqCbAdmit adm;
  const char **lines;
  char *url, *safe;
  size_t n = 0;
  int attempt, max_attempts, rc = 0;
  double delay, max_wait, retry_in, ra, t_resp;
  bool ok, retry, refreshed = false;

  memset(pg, 0, sizeof(*pg));
  url = build_url(c->base, c->path, query, NULL);
  lines = header_lines(c, &n);
  memset(&rq, 0, sizeof(rq));
  rq.method = st->method;
  rq.url = url;
  rq.headers = lines;
  rq.n_headers = n;
  rq.body = c->body;
  rq.body_len = c->body_len;
  rq.timeout_ms = c->timeout_ms;
  max_attempts = st->retry.max_attempts > 0 ? st->retry.max_attempts : 3;
  max_wait = (c->src->rl_max_wait_s > 0 ? c->src->rl_max_wait_s
                                        : DEFAULT_MAX_WAIT_S) * 1000.0;

  for(attempt = 1;; attempt++) {
    if(rqi_stop_requested) {
      rc = -RQ_E_INTERRUPT;
      break;
    }
    rc = rqi_auth_before_request(env, c->src, st->at);
    if(rc)
      break;
    if(rqi_auth_generation(c->src) != c->auth_gen) {
      /* Refreshed (here or by another thread): new auth layer. */
      compose_headers(c, NULL);
      rq_free(lines);
      lines = header_lines(c, &n);
      rq.headers = lines;
      rq.n_headers = n;
    }
    adm = rqi_breaker_enter(c->src, &c->ctx, &retry_in);
    if(adm == RQ_CB_REJECT) {
      rc = rq_fail(env, st->at, "circuit open for source %s (retry in "
                   "%.0fs)", c->src->name, secs_up(retry_in));
      break;
    }
    rc = rate_gate(c, max_wait);
    if(rc) {
      rqi_breaker_leave(c->src, &c->ctx, adm, RQ_CB_NONE);
      break;
    }
    if(c->first_ms == 0)
      c->first_ms = rq_now_ms();
    if(rqi_http_send(&rq, &rs) != 0) {
      if(!rs.interrupted)
        rqi_metrics_http_attempt(c->src->name, st->method, 0);
      /* An interrupted or oversized transfer says nothing about the
       * server's health. */
      rqi_breaker_leave(c->src, &c->ctx, adm,
                        rs.interrupted || rs.too_large ? RQ_CB_NONE
                                                       : RQ_CB_FAILURE);
      log_attempt(c, page, attempt, &rs, -1);
      if(rs.interrupted) {
        rc = -RQ_E_INTERRUPT;
      }
      else if(rs.too_large || attempt >= max_attempts) {
        safe = rqi_log_redact(url);
        rc = rq_fail(env, st->at, "%s %s: %s", st->method, safe, rs.error);
        rq_free(safe);
      }
      else {
        rqi_http_response_free(&rs);
        rqi_metrics_http_retry(c->src->name);
        if(sleep_ms(backoff_ms(&st->retry, attempt)) != 0) {
          rc = -RQ_E_INTERRUPT;
          break;
        }
        continue;
      }
      rqi_http_response_free(&rs);
      break;
    }
    rqi_metrics_http_attempt(c->src->name, st->method, rs.status);
    rqi_breaker_leave(c->src, &c->ctx, adm,
                      rqi_cb_classify(rs.status, false));
    t_resp = rq_now_ms();
    ra = rqi_ratelimit_observe(c->src, rs.headers, rs.status, t_resp);

    /* §6.1, §6.4: one refresh and re-send per request after a 401; the
     * re-send is not an attempt. */
    if(rs.status == 401 && !refreshed) {
      rc = rqi_auth_refresh_after_401(env, c->src, st->at, c->auth_gen);
      if(rc < 0) {
        log_attempt(c, page, attempt, &rs, -1);
        rqi_http_response_free(&rs);
        break;
      }
      if(rc == 1) {
        refreshed = true;
        log_attempt(c, page, attempt, &rs, -1);
        rqi_http_response_free(&rs);
        attempt--;
        rc = 0;
        continue;
      }
    }

    ok = rs.status >= 200 && rs.status <= 299;
    retry = is_retryable(rs.status) && attempt < max_attempts;
    if(retry) {
      log_attempt(c, page, attempt, &rs, -1);
      rqi_http_response_free(&rs);
      rqi_metrics_http_retry(c->src->name);
      if(rs.status == 429 && ra >= 0) {
        /* Retry-After replaces the backoff, capped by maxWait. */
        if(ra > max_wait) {
          rc = fail_max_wait(c, ra, max_wait);
          break;
        }
        rc = wait_retry_after(c, t_resp + ra);
        if(rc)
          break;
        continue;
      }
      delay = backoff_ms(&st->retry, attempt);
      if(sleep_ms(delay) != 0) {
        rc = -RQ_E_INTERRUPT;
        break;
      }
      continue;
    }

    /* Final response. */
    if(!ok && !st->next_is_match) {
      log_attempt(c, page, attempt, &rs, -1);
      if(is_retryable(rs.status))
        rc = rq_fail(env, st->at, "HTTP %d from %s after %d attempts",
                     rs.status, c->what, attempt);
      else
        rc = rq_fail(env, st->at, "HTTP %d from %s", rs.status, c->what);
      rqi_http_response_free(&rs);
      break;
    }
    rc = decode(c, &rs, !ok, &pg->value);
    log_attempt(c, page, attempt, &rs, rc == 0 && ok
                ? count_items(pg->value) : -1);
    if(rc == 0) {
      if(!ok && is_retryable(rs.status))
        rq_log(RQ_LOG_WARN, &c->ctx,
               "%s/%s: HTTP %d from %s after %d attempts; passing the "
               "response to match", env->run->m->name,
               env->run->action ? env->run->action : "-", rs.status,
               c->what, attempt);
      pg->status = rs.status;
      pg->headers = json_incref(rs.headers);
    }
    rqi_http_response_free(&rs);
    break;
  }
  rq_free(lines);
  rq_free(url);
  if(rc)
    page_free(pg);
  return rc;
}

/* ------------------------------------------------------------- step */
static void record_candidate(Call *c, const json_t *last, size_t count)
{
  const RqStep *st = c->st;
  double ms = c->first_ms, t;
  json_t *u;
  char *key;

  if(st->since_kind == RQ_SINCE_NONE || !c->all_2xx)
    return;
  /* Only a timestamp string counts (§8.1): guessing seconds or ms from a
   * number could move the checkpoint years ahead (an id read as a time)
   * and make every later sync skip data. */
  if(st->since_update_from) {
    u = rqi_path_get(last, st->since_update_from);
    if(json_is_string(u) && rq_parse_time(json_string_value(u), &t))
      ms = t;
  }
  key = since_key(c);
  rqi_checkpoint_candidate(c->env->run, key, ms, (int)count);
  rq_free(key);
}

static int run_single(Call *c)
{
  Page pg;
  long n;
  int rc;

  rc = fetch_page(c, c->query, 0, &pg);
  if(rc)
    return rc;
  c->all_2xx = pg.status >= 200 && pg.status <= 299;
  n = count_items(pg.value);
  record_candidate(c, pg.value, n > 0 ? (size_t)n : 0);
  rqi_scope_set_response_new(c->env->scope, pg.value, pg.status,
                             pg.headers);
  return 0;
}

static int run_pages(Call *c)
{
  RqPager pager;
  Page pg;
  json_t *q, *items;
  int rc, more;

  rqi_pager_init(&pager, c->st, c->sink == NULL);
  c->all_2xx = true;
  for(;;) {
    q = rqi_copy(c->query);
    rqi_pager_params(&pager, q);
    rc = fetch_page(c, q, pager.page, &pg);
    json_decref(q);
    if(rc)
      break;
    if(pg.status < 200 || pg.status > 299) {
      /* A non-2xx page ends pagination; the match sees its body. */
      c->all_2xx = false;
      rqi_scope_set_response_new(c->env->scope, pg.value, pg.status,
                                 pg.headers);
      break;
    }
    more = rqi_pager_feed(&pager, c->env, pg.value, pg.status, pg.headers,
                          c->what);
    if(more < 0) {
      rc = more;
      page_free(&pg);
      break;
    }
    if(c->sink)
      c->sink->page(c->sink->ctx, rqi_page_items(pg.value));
    if(more == 0) {
      /* Streaming: the items went to the store step, and nothing reads
       * response (the compiler's rule), so it is null. */
      items = c->sink ? json_null() : json_incref(pager.items);
      record_candidate(c, pg.value, pager.n_items);
      rqi_scope_set_response_new(c->env->scope, items, pg.status,
                                 pg.headers);
      json_decref(pg.value);
      break;
    }
    page_free(&pg);     /* one page at a time */
  }
  rqi_pager_free(&pager);
  return rc;
}

/* --dry-run (§10.1): prints the request of this step as it would be
 * sent -- page 0 of a paginated step -- and sends nothing.  Secret values
 * are shown as ***: auth-layer headers, Authorization headers, api_key
 * query values, and (through rqi_log_redact) every registered secret and
 * credential-named JSON field.  The format, one block per action:
 *
 *   DRY RUN Mission/Action at file:line:col
 *     GET http://host/p?since=...&page=1
 *     Accept: application/json
 *     Authorization: ***
 *     body: {"a":1}
 */
static int dry_run_plan(Call *c)
{
  RqRun *run = c->env->run;
  RqBuf b = RQ_BUF_INIT(0);
  RqPager pager;
  json_t *q = json_copy(c->query), *v;
  const char *k, *line, *val;
  char *url;
  size_t nlen;
  bool secret;

  if(c->paginated) {
    rqi_pager_init(&pager, c->st, false);
    rqi_pager_params(&pager, q);
    rqi_pager_free(&pager);
  }
  url = build_url(c->base, c->path, q, c->auth_query);
  json_decref(q);
  rq_buf_addf(&b, "DRY RUN %s/%s at %s\n  %s %s\n", run->m->name,
              run->action ? run->action : "-", c->at, c->st->method, url);
  rq_free(url);
  json_object_foreach(c->hdrs, k, v) {
    /* Lines are "Name: value", or "Name;" for an empty value. */
    line = json_string_value(v);
    nlen = strcspn(line, ":;");
    val = line[nlen] == ':' ? line + nlen + 1 : "";
    while(*val == ' ')
      val++;
    secret = json_object_get(c->auth_names, k) ||
             strcmp(k, "authorization") == 0 ||
             strcmp(k, "proxy-authorization") == 0;
    rq_buf_addf(&b, "  %.*s: %s\n", (int)nlen, line, secret ? "***" : val);
  }
  if(c->body)
    rq_buf_addf(&b, "  body: %s\n", c->body);
  rqi_print_plan(b.data);
  rq_buf_free(&b);
  return 0;
}

/* Fails the step at once when the URL's scheme is not http or https
 * (a base of file://..., ftp://...): libcurl refuses those anyway (see
 * rqi_http_send), but that would be a "transport error", retried and
 * counted by the circuit breaker although no attempt can succeed. */
static int check_scheme(Call *c)
{
  CURLU *u = curl_url();
  char *url, *scheme = NULL, *safe;
  int rc = 0;

  url = build_url(c->base, c->path, c->query, c->auth_query);
  if(u && curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME |
                       CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
     curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
     strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
    safe = rqi_log_redact(url);
    rc = rq_fail(c->env, c->st->at, "%s %s: unsupported protocol \"%s\" "
                 "(only http and https)", c->st->method, safe, scheme);
    rq_free(safe);
  }
  curl_free(scheme);
  curl_url_cleanup(u);
  rq_free(url);
  return rc;
}

static int http_step(const RqEnv *env, const RqStep *st,
                     const RqPageSink *sink)
{
  RqRun *run = env->run;
  Call c;
  int rc;

  memset(&c, 0, sizeof(c));
  c.sink = sink;
  c.env = env;
  c.st = st;
  c.src = &run->m->sources[st->source];
  c.base = run->bases && run->bases[st->source] ? run->bases[st->source]
                                                : "";
  c.paginated = st->pg_kind != RQ_PG_NONE;
  c.timeout_ms = st->timeout_ms > 0 ? st->timeout_ms
               : c.src->timeout_ms > 0 ? c.src->timeout_ms
               : DEFAULT_TIMEOUT_MS;
  rqi_exec_format_at(run, st->at, c.at, sizeof(c.at));
  c.ctx.mission = run->m->name;
  c.ctx.execution = run->exec_id;
  c.ctx.action = run->action;
  c.ctx.at = c.at;

  /* Query layers in §6.3 order: step query (prepare), api_key (with the
   * auth headers), since; pagination parameters are added per page. */
  rc = prepare(&c);
  if(rc == 0)
    rc = build_headers(&c);
  if(rc == 0)
    rc = add_since(&c);
  if(rc == 0)
    rc = check_scheme(&c);
  if(rc == 0 && rqi_opts.dry_run)
    rc = dry_run_plan(&c);    /* no response, no checkpoint candidate */
  else if(rc == 0)
    rc = c.paginated ? run_pages(&c) : run_single(&c);
  call_free(&c);
  return rc;
}

int rqi_http_step(const RqEnv *env, const RqStep *st)
{
  return http_step(env, st, NULL);
}

int rqi_http_step_stream(const RqEnv *env, const RqStep *st,
                         const RqPageSink *sink)
{
  /* Only paginated steps stream; the compiler marks no other. */
  return http_step(env, st, st->pg_kind != RQ_PG_NONE ? sink : NULL);
}
