/* webhook.c -- the inbound webhook listener of SPEC §4.14 and the wait
 * API behind the `wait` step (contract in rq_webhook.h).
 *
 * Like health.c, we bind and listen ourselves so that a bind failure
 * carries its errno (exit 4), then hand the socket to libmicrohttpd with
 * one internal polling thread, capped connections, an idle timeout and
 * a per-connection memory limit.  Everything that can be refused (401,
 * 404, 405, an announced Content-Length over 1 MiB) is refused on the
 * first call of the handler, before any body is read.  A body without a
 * Content-Length (chunked) is buffered up to 1 MiB; past that it is
 * discarded as it arrives (MHD cannot queue a reply mid-body) and
 * answered 413 at its end, and a sender that goes on past
 * WH_DISCARD_MAX is disconnected.
 *
 * State: one mutex per listener guards the path registry, the buffers
 * and the waits.  Each wait has its own condition variable (on
 * CLOCK_MONOTONIC), signalled when an event is queued for it or on a
 * wakeup; the stop flag set by the signal handler cannot signal it, so
 * a blocked wait also looks at rqi_stop_requested every
 * RQ_WEBHOOK_STOP_SLICE_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_metrics.h"
#include "rq_webhook.h"

#define WH_MAX_CONNECTIONS 64
#define WH_TIMEOUT_S 10                 /* idle connection timeout */
#define WH_MEMORY_LIMIT (64 * 1024)     /* per connection: headers, reads */
#define WH_DISCARD_MAX (16 * RQ_WEBHOOK_MAX_BODY)
/* 413: spelled as a number, MHD renamed its constant across versions */
#define WH_TOO_LARGE 413

typedef struct WhEvent {
  struct WhEvent *next;
  char id[40];
  json_t *body;           /* owned */
  size_t bytes;           /* size of the request body: memory caps */
  double received_at;     /* epoch ms */
  double mono;            /* wh->clock() at arrival: buffer ageing */
} WhEvent;

typedef struct {
  WhEvent *head, *tail;
  size_t n;
  size_t bytes;           /* sum of the events' bytes */
} WhQueue;

typedef struct WhPath {
  struct WhPath *next;
  char *path;             /* owned */
  bool dynamic;           /* registered by a wait: removed after it */
  bool warned;            /* buffer overflow WARN given (this episode) */
  WhQueue buffered;       /* events while no wait is active */
  RqWebhookWait *waits;   /* active waits on this path */
} WhPath;

struct RqWebhookWait {
  RqWebhookWait *next;    /* in path->waits */
  RqWebhook *wh;
  WhPath *path;
  WhQueue q;
  WhQueue released;       /* handed out, then given back (eventFilter) */
  bool warned;
  pthread_cond_t cv;
};

struct RqWebhook {
  struct MHD_Daemon *d;
  int port;
  char *public_url;       /* owned; NULL: http://localhost:PORT */
  char *token;            /* owned; NULL: no check */
  size_t token_len;
  pthread_mutex_t mu;
  WhPath *paths;          /* guarded by mu */
  bool woken;             /* rqi_webhook_wakeup was called; mu */
  double (*clock)(void);
};

/* One request being received (MHD's per-request context). */
typedef struct {
  RqBuf body;             /* capped at RQ_WEBHOOK_MAX_BODY + 1 */
  bool too_large;
  size_t discarded;
} WhReq;

static RqWebhook *g_current;

/* -------------------------------------------------------------- queues */

static void q_push(WhQueue *q, WhEvent *e)
{
  e->next = NULL;
  if(q->tail)
    q->tail->next = e;
  else
    q->head = e;
  q->tail = e;
  q->n++;
  q->bytes += e->bytes;
}

static WhEvent *q_pop(WhQueue *q)
{
  WhEvent *e = q->head;

  if(!e)
    return NULL;
  q->head = e->next;
  if(!q->head)
    q->tail = NULL;
  q->n--;
  q->bytes -= e->bytes;
  e->next = NULL;
  return e;
}

static void ev_free(WhEvent *e)
{
  if(!e)
    return;
  json_decref(e->body);
  rq_free(e);
}

static void q_clear(WhQueue *q)
{
  WhEvent *e;

  while((e = q_pop(q)))
    ev_free(e);
}

/* Drops buffered events older than RQ_WEBHOOK_BUFFER_MS.  Arrival order
 * is clock order, so the expired ones are at the head.  Caller holds
 * wh->mu. */
static void expire(RqWebhook *wh, WhPath *p)
{
  double now = wh->clock();

  while(p->buffered.head &&
        now - p->buffered.head->mono >= RQ_WEBHOOK_BUFFER_MS) {
    WhEvent *e = q_pop(&p->buffered);

    rq_log(RQ_LOG_DEBUG, NULL, "webhook: buffered event %s on %s "
           "expired unclaimed", e->id, p->path);
    ev_free(e);
  }
}

/* ---------------------------------------------------------------- paths */

/* path with a leading '/' (NEW text). */
static char *norm_path(const char *path)
{
  if(!path)
    path = "";
  if(path[0] == '/')
    return rq_strdup(path);
  return rq_asprintf("/%s", path);
}

/* Caller holds wh->mu. */
static WhPath *find_path(RqWebhook *wh, const char *path)
{
  WhPath *p;

  for(p = wh->paths; p; p = p->next) {
    if(strcmp(p->path, path) == 0)
      return p;
  }
  return NULL;
}

/* Adds path (steals it); caller holds wh->mu and checked it is new. */
static WhPath *add_path(RqWebhook *wh, char *path, bool dynamic)
{
  WhPath *p = rq_calloc(1, sizeof(*p));

  p->path = path;
  p->dynamic = dynamic;
  p->next = wh->paths;
  wh->paths = p;
  return p;
}

/* Unlinks and frees p (and its buffer); caller holds wh->mu. */
static void remove_path(RqWebhook *wh, WhPath *p)
{
  WhPath **pp;

  for(pp = &wh->paths; *pp; pp = &(*pp)->next) {
    if(*pp == p) {
      *pp = p->next;
      break;
    }
  }
  q_clear(&p->buffered);
  rq_free(p->path);
  rq_free(p);
}

void rqi_webhook_register_path(RqWebhook *wh, const char *path)
{
  char *np;
  WhPath *p;

  if(!wh)
    return;
  np = norm_path(path);
  pthread_mutex_lock(&wh->mu);
  p = find_path(wh, np);
  if(p) {
    p->dynamic = false;     /* now static: outlives the wait */
    rq_free(np);
  }
  else
    add_path(wh, np, false);
  pthread_mutex_unlock(&wh->mu);
}

bool rqi_webhook_default_path(const char *exec_id, unsigned n, char *out,
                              size_t outlen)
{
  int k = snprintf(out, outlen, "/webhook/%s/%u", exec_id ? exec_id : "",
                   n);

  return k > 0 && (size_t)k < outlen;
}

size_t rqi_webhook_buffered(RqWebhook *wh, const char *path)
{
  char *np = norm_path(path);
  WhPath *p;
  size_t n = 0;

  pthread_mutex_lock(&wh->mu);
  p = find_path(wh, np);
  if(p) {
    expire(wh, p);
    n = p->buffered.n;
  }
  pthread_mutex_unlock(&wh->mu);
  rq_free(np);
  return n;
}

/* --------------------------------------------------------------- events */

/* Fills buf with n random bytes: getrandom, else /dev/urandom. */
static bool random_bytes(unsigned char *buf, size_t n)
{
  size_t got = 0;
  int fd;

  while(got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);

    if(r < 0) {
      if(errno == EINTR)
        continue;
      break;
    }
    got += (size_t)r;
  }
  if(got == n)
    return true;
  fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if(fd < 0)
    return false;
  got = 0;
  while(got < n) {
    ssize_t r = read(fd, buf + got, n - got);

    if(r <= 0) {
      if(r < 0 && errno == EINTR)
        continue;
      break;
    }
    got += (size_t)r;
  }
  close(fd);
  return got == n;
}

/* RFC 4122 version-4 UUID text into out (>= 37 bytes). */
static bool uuid4(char *out, size_t n)
{
  unsigned char u[16];

  if(!random_bytes(u, sizeof(u)))
    return false;
  u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
  u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
  snprintf(out, n, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
           u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
           u[15]);
  return true;
}

/* True when q must drop its oldest event to take one of `bytes`. */
static bool q_full(const WhQueue *q, size_t bytes)
{
  return q->head && (q->n >= RQ_WEBHOOK_MAX_EVENTS ||
                     q->bytes + bytes > RQ_WEBHOOK_MAX_BUFFER_BYTES);
}

/* Queues e on wait w (caller holds mu), dropping the oldest past the
 * caps: a wait whose filter is slower than the sender stays bounded. */
static void wait_push(RqWebhookWait *w, WhEvent *e)
{
  while(q_full(&w->q, e->bytes)) {
    if(!w->warned)
      rq_log(RQ_LOG_WARN, NULL, "webhook: %zu events (%zu bytes) waiting "
             "on %s; dropping the oldest", w->q.n, w->q.bytes,
             w->path->path);
    w->warned = true;
    ev_free(q_pop(&w->q));
  }
  q_push(&w->q, e);
  pthread_cond_signal(&w->cv);
}

/* Hands a decoded event to path (steals e): to every active wait on it
 * (the first gets e, the others a deep copy of the body), else to its
 * buffer.  Returns false when the path is no longer registered (e is
 * freed).  Caller holds wh->mu. */
static bool deliver(RqWebhook *wh, const char *path, WhEvent *e)
{
  WhPath *p = find_path(wh, path);
  RqWebhookWait *w;

  if(!p) {
    ev_free(e);
    return false;
  }
  if(p->waits) {
    for(w = p->waits->next; w; w = w->next) {
      WhEvent *c = rq_malloc(sizeof(*c));

      *c = *e;
      c->body = json_deep_copy(e->body);
      if(!c->body) {
        rq_free(c);
        continue;
      }
      wait_push(w, c);
    }
    wait_push(p->waits, e);
    return true;
  }
  expire(wh, p);
  while(q_full(&p->buffered, e->bytes)) {
    if(!p->warned)
      rq_log(RQ_LOG_WARN, NULL, "webhook: %zu events (%zu bytes) "
             "buffered on %s with no wait active; dropping the oldest",
             p->buffered.n, p->buffered.bytes, p->path);
    p->warned = true;
    ev_free(q_pop(&p->buffered));
  }
  q_push(&p->buffered, e);
  return true;
}

/* ------------------------------------------------------------- decoding */

/* Decodes n bytes of one form component into out (>= n bytes): '+' is
 * a space, %XX a byte, a malformed escape is kept as it is.  Returns
 * the decoded length. */
static size_t form_unescape(const char *s, size_t n, char *out)
{
  size_t i, k = 0;

  for(i = 0; i < n; i++) {
    int hi, lo;

    if(s[i] == '+')
      out[k++] = ' ';
    else if(s[i] == '%' && i + 2 < n && (hi = rq_hexval(s[i + 1])) >= 0 &&
            (lo = rq_hexval(s[i + 2])) >= 0) {
      out[k++] = (char)(hi * 16 + lo);
      i += 2;
    }
    else
      out[k++] = s[i];
  }
  return k;
}

/* True when the n bytes at s are valid UTF-8 (as jansson judges it). */
static bool utf8_ok(const char *s, size_t n)
{
  json_t *t = json_stringn(s, n);

  json_decref(t);
  return t != NULL;
}

/* Adds name=value to obj: a repeated name turns into an array of its
 * values in order.  Steals v. */
static void form_add(json_t *obj, const char *name, json_t *v)
{
  json_t *old = json_object_get(obj, name);

  if(!old) {
    json_object_set_new(obj, name, v);
    return;
  }
  if(json_is_array(old)) {
    json_array_append_new(old, v);
    return;
  }
  {
    json_t *a = json_array();

    json_array_append(a, old);
    json_array_append_new(a, v);
    json_object_set_new(obj, name, a);
  }
}

/* application/x-www-form-urlencoded (WHATWG URL "urlencoded parser").
 * Returns a NEW object of strings (or arrays of strings), or NULL with
 * a reason in why. */
static json_t *form_decode(const char *s, size_t n, char *why,
                           size_t whylen)
{
  json_t *obj = json_object();
  char *buf = rq_malloc(n + 1);
  size_t pos = 0;

  while(pos < n) {
    const char *pair = s + pos;
    const char *amp = memchr(pair, '&', n - pos);
    size_t plen = amp ? (size_t)(amp - pair) : n - pos;
    const char *eq = memchr(pair, '=', plen);
    size_t nlen = eq ? (size_t)(eq - pair) : plen;
    size_t k;
    json_t *v;

    pos += plen + 1;
    if(plen == 0)
      continue;
    k = form_unescape(pair, nlen, buf);
    buf[k] = '\0';
    if(memchr(buf, '\0', k) || !utf8_ok(buf, k)) {
      snprintf(why, whylen, "form field name is not UTF-8 text");
      goto fail;
    }
    {
      /* buf is reused for the value: keep the name. */
      char *name = rq_strndup(buf, k);

      k = eq ? form_unescape(eq + 1, plen - nlen - 1, buf) : 0;
      v = json_stringn(buf, k);
      if(!v) {
        rq_free(name);
        snprintf(why, whylen, "form field value is not UTF-8 text");
        goto fail;
      }
      form_add(obj, name, v);
      rq_free(name);
    }
  }
  rq_free(buf);
  return obj;
fail:
  rq_free(buf);
  json_decref(obj);
  return NULL;
}

/* True when the media type (before any ';') is exactly t, ignoring case
 * and surrounding blanks. */
static bool media_is(const char *ctype, const char *t)
{
  size_t n, tl = strlen(t);

  while(*ctype == ' ' || *ctype == '\t')
    ctype++;
  n = strcspn(ctype, ";");
  while(n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
    n--;
  return n == tl && strncasecmp(ctype, t, n) == 0;
}

/* The event body of §4.14 (NEW), or NULL with the reason in why. */
static json_t *decode_body(const char *ctype, const char *data, size_t n,
                           char *why, size_t whylen)
{
  json_t *v;

  if(!data)
    data = "";
  if(ctype && strcasestr(ctype, "json")) {
    json_error_t je;

    v = json_loadb(data, n, JSON_DECODE_ANY, &je);
    if(!v)
      snprintf(why, whylen, "invalid JSON: %s at line %d, column %d",
               je.text, je.line, je.column);
    return v;
  }
  if(ctype && media_is(ctype, "application/x-www-form-urlencoded"))
    return form_decode(data, n, why, whylen);
  v = json_stringn(data, n);
  if(!v)
    snprintf(why, whylen, "body is not UTF-8 text");
  return v;
}

/* ---------------------------------------------------------------- HTTP */

/* Queues a reply; body is NEW text that this function frees (NULL: an
 * empty body). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             char *body)
{
  struct MHD_Response *r;
  enum MHD_Result ret;
  size_t len = body ? strlen(body) : 0;

  r = MHD_create_response_from_buffer(len, body ? body : (void *)"",
                                      MHD_RESPMEM_MUST_COPY);
  rq_free(body);
  if(!r)
    return MHD_NO;
  if(len)
    MHD_add_response_header(r, "Content-Type", "application/json");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  if(status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, "Allow", "POST, PUT");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* Constant-time in the length of the configured token: how long the
 * comparison takes says nothing about how much of the guess matched. */
static bool token_ok(const RqWebhook *wh, const char *got)
{
  size_t glen, i;
  unsigned char diff;

  if(!wh->token)
    return true;
  if(!got)
    return false;
  glen = strlen(got);
  diff = (unsigned char)(glen != wh->token_len);
  for(i = 0; i < wh->token_len; i++) {
    unsigned char g = i < glen ? (unsigned char)got[i] : 0;

    diff |= (unsigned char)(g ^ (unsigned char)wh->token[i]);
  }
  return diff == 0;
}

static bool path_registered(RqWebhook *wh, const char *url)
{
  bool found;

  pthread_mutex_lock(&wh->mu);
  found = find_path(wh, url) != NULL;
  pthread_mutex_unlock(&wh->mu);
  return found;
}

/* The first call of a request: everything refusable is refused here,
 * before any body is read.  Returns true (with *res set) when a reply
 * was queued. */
static bool refuse_early(RqWebhook *wh, struct MHD_Connection *c,
                         const char *url, const char *method,
                         enum MHD_Result *res)
{
  const char *cl;
  unsigned status = 0;

  if(!token_ok(wh, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                "X-Reqon-Token")))
    status = MHD_HTTP_UNAUTHORIZED;
  else if(!path_registered(wh, url))
    status = MHD_HTTP_NOT_FOUND;
  else if(strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
  else {
    cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if(cl) {
      char *end;
      unsigned long long v;

      errno = 0;
      v = strtoull(cl, &end, 10);
      if(errno == ERANGE || v > RQ_WEBHOOK_MAX_BODY)
        status = WH_TOO_LARGE;
    }
  }
  if(!status)
    return false;
  rq_log(RQ_LOG_DEBUG, NULL, "webhook: %s %s: %u", method, url, status);
  *res = reply(c, status, NULL);
  return true;
}

/* The whole body is in: decode it, hand the event over, reply. */
static enum MHD_Result finish(RqWebhook *wh, struct MHD_Connection *c,
                              const char *url, const char *method,
                              WhReq *rq)
{
  char why[256] = "";
  const char *ctype;
  json_t *body;
  WhEvent *e;
  bool ok;

  if(rq->too_large) {
    rq_log(RQ_LOG_DEBUG, NULL, "webhook: %s %s: body over %d bytes",
           method, url, RQ_WEBHOOK_MAX_BODY);
    return reply(c, WH_TOO_LARGE, NULL);
  }
  ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_CONTENT_TYPE);
  body = decode_body(ctype, rq->body.data, rq->body.len, why, sizeof(why));
  if(!body) {
    json_t *doc = json_pack("{s:b, s:s}", "accepted", 0, "error", why);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER)
                     : NULL;

    json_decref(doc);
    rq_log(RQ_LOG_INFO, NULL, "webhook: %s %s refused: %s", method, url,
           why);
    return reply(c, MHD_HTTP_BAD_REQUEST, text);
  }
  e = rq_calloc(1, sizeof(*e));
  e->body = body;
  e->bytes = rq->body.len;
  if(!uuid4(e->id, sizeof(e->id))) {
    ev_free(e);
    rq_log(RQ_LOG_ERROR, NULL, "webhook: no source of randomness");
    return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL);
  }
  e->received_at = rq_now_ms();
  pthread_mutex_lock(&wh->mu);
  e->mono = wh->clock();
  {
    char id[40];

    memcpy(id, e->id, sizeof(id));
    ok = deliver(wh, url, e);     /* e is stolen */
    pthread_mutex_unlock(&wh->mu);
    if(!ok)   /* the wait that registered the path ended meanwhile */
      return reply(c, MHD_HTTP_NOT_FOUND, NULL);
    rq_log(RQ_LOG_DEBUG, NULL, "webhook: event %s on %s %s (%zu bytes)",
           id, method, url, rq->body.len);
    return reply(c, MHD_HTTP_OK,
                 rq_asprintf("{\"accepted\":true,\"id\":\"%s\"}", id));
  }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload, size_t *upload_size,
                                  void **cc)
{
  RqWebhook *wh = cls;
  WhReq *rq = *cc;
  enum MHD_Result res;

  if(!rq) {
    if(refuse_early(wh, c, url, method, &res))
      return res;
    rq = rq_calloc(1, sizeof(*rq));
    rq->body.max = RQ_WEBHOOK_MAX_BODY;
    *cc = rq;
    return MHD_YES;           /* MHD sends "100 Continue" if asked */
  }
  if(*upload_size) {
    size_t n = *upload_size;

    *upload_size = 0;
    if(!rq->too_large && rq_buf_add(&rq->body, upload, n) != 0)
      rq->too_large = true;   /* rq_buf_add freed what it held */
    if(rq->too_large) {
      rq->discarded += n;
      if(rq->discarded > WH_DISCARD_MAX)
        return MHD_NO;        /* endless: drop the connection */
    }
    return MHD_YES;
  }
  return finish(wh, c, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **cc,
                         enum MHD_RequestTerminationCode toe)
{
  WhReq *rq = *cc;

  if(!rq)
    return;
  rq_buf_free(&rq->body);
  rq_free(rq);
  *cc = NULL;
}

/* ------------------------------------------------------------ listening */

RqWebhook *rqi_webhook_start(const char *addr, int port,
                             const char *public_url, const char *token,
                             char *err, size_t errlen)
{
  char where[128];
  RqWebhook *wh;
  int fd, bound = port;

  if(!addr || !*addr)
    addr = "127.0.0.1";
  fd = rqi_listen_socket(addr, port, &bound, err, errlen);
  if(fd < 0)
    return NULL;
  rqi_listen_addr_text(addr, bound, where, sizeof(where));
  wh = rq_calloc(1, sizeof(*wh));
  wh->port = bound;
  wh->clock = rq_mono_ms;
  pthread_mutex_init(&wh->mu, NULL);
  if(public_url && *public_url)
    wh->public_url = rq_strdup(public_url);
  if(token && *token) {
    wh->token = rq_strdup(token);
    wh->token_len = strlen(token);
    rqi_log_add_secret(token);
  }
  wh->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG,
                           0, NULL, NULL, on_request, wh,
                           /* first, or MHD logs its own way before it */
                           MHD_OPTION_EXTERNAL_LOGGER, rqi_mhd_log,
                           (void *)"webhook server",
                           MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                           MHD_OPTION_CONNECTION_LIMIT,
                           (unsigned int)WH_MAX_CONNECTIONS,
                           MHD_OPTION_CONNECTION_TIMEOUT,
                           (unsigned int)WH_TIMEOUT_S,
                           MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                           (size_t)WH_MEMORY_LIMIT,
                           MHD_OPTION_NOTIFY_COMPLETED, on_completed, wh,
                           MHD_OPTION_END);
  if(!wh->d) {
    /* MHD may already have closed fd on its failure path; closing it
     * again could close another thread's descriptor (see health.c). */
    snprintf(err, errlen, "cannot listen on %s: cannot start the HTTP "
             "server", where);
    pthread_mutex_destroy(&wh->mu);
    rq_free(wh->public_url);
    rq_free(wh->token);
    rq_free(wh);
    return NULL;
  }
  __atomic_store_n(&g_current, wh, __ATOMIC_SEQ_CST);
  rq_log(RQ_LOG_INFO, NULL, "Listening on %s (webhooks%s)", where,
         wh->token ? ", token required" : "");
  return wh;
}

int rqi_webhook_port(const RqWebhook *wh)
{
  return wh ? wh->port : 0;
}

RqWebhook *rqi_webhook_current(void)
{
  return __atomic_load_n(&g_current, __ATOMIC_SEQ_CST);
}

void rqi_webhook_stop(RqWebhook *wh)
{
  RqWebhook *expect = wh;

  if(!wh)
    return;
  __atomic_compare_exchange_n(&g_current, &expect, NULL, false,
                              __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  if(wh->d)                  /* NULL: rqi_webhook_plan */
    MHD_stop_daemon(wh->d);  /* joins its thread, closes the socket */
  pthread_mutex_lock(&wh->mu);
  while(wh->paths) {
    if(wh->paths->waits)     /* a contract breach: leak, do not crash */
      rq_log(RQ_LOG_ERROR, NULL, "webhook: stopped with a wait active "
             "on %s", wh->paths->path);
    remove_path(wh, wh->paths);
  }
  pthread_mutex_unlock(&wh->mu);
  pthread_mutex_destroy(&wh->mu);
  rq_free(wh->public_url);
  rq_free(wh->token);
  rq_free(wh);
}

int rqi_webhook_check_url(const char *url, char *err, size_t errlen)
{
  const char *host;

  if(!url || (strncasecmp(url, "http://", 7) != 0 &&
              strncasecmp(url, "https://", 8) != 0)) {
    snprintf(err, errlen, "--webhook-url must start with http:// or "
             "https://");
    return -1;
  }
  host = strstr(url, "://") + 3;
  if(*host == '\0' || *host == '/' || *host == '?' || *host == '#') {
    snprintf(err, errlen, "--webhook-url has no host");
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- waits */

RqWebhookWait *rqi_webhook_wait_begin(RqWebhook *wh, const char *path)
{
  RqWebhookWait *w = rq_calloc(1, sizeof(*w));
  pthread_condattr_t ca;
  char *np = norm_path(path);
  WhPath *p;
  WhEvent *e;

  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  w->wh = wh;
  pthread_mutex_lock(&wh->mu);
  p = find_path(wh, np);
  if(p)
    rq_free(np);
  else
    p = add_path(wh, np, true);
  w->path = p;
  /* The buffer closes the race of a callback that beats its wait. */
  expire(wh, p);
  while((e = q_pop(&p->buffered)))
    q_push(&w->q, e);
  p->warned = false;
  w->next = p->waits;
  p->waits = w;
  pthread_mutex_unlock(&wh->mu);
  return w;
}

/* abs time on CLOCK_MONOTONIC for ms from rq_mono_ms(). */
static struct timespec mono_ts(double ms)
{
  struct timespec ts;

  if(ms < 0)
    ms = 0;
  ts.tv_sec = (time_t)(ms / 1000.0);
  ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000.0) * 1e6);
  if(ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  if(ts.tv_nsec < 0)
    ts.tv_nsec = 0;
  return ts;
}

int rqi_webhook_next(RqWebhookWait *w, double deadline_mono_ms,
                     RqWebhookEvent *ev)
{
  RqWebhook *wh = w->wh;
  int res;

  pthread_mutex_lock(&wh->mu);
  for(;;) {
    double now, until;
    struct timespec ts;

    /* set by a signal handler or another thread: read it atomically */
    if(wh->woken || __atomic_load_n(&rqi_stop_requested,
                                    __ATOMIC_SEQ_CST)) {
      res = RQ_WH_STOPPED;
      break;
    }
    if(w->q.head) {
      WhEvent *e = q_pop(&w->q);

      memcpy(ev->id, e->id, sizeof(ev->id));
      ev->body = e->body;       /* the reference moves to the caller */
      ev->received_at = e->received_at;
      ev->mono = e->mono;
      ev->bytes = e->bytes;
      rq_free(e);
      res = RQ_WH_EVENT;
      break;
    }
    now = rq_mono_ms();
    if(now >= deadline_mono_ms) {
      res = RQ_WH_TIMEOUT;
      break;
    }
    until = now + RQ_WEBHOOK_STOP_SLICE_MS;
    if(until > deadline_mono_ms)
      until = deadline_mono_ms;
    ts = mono_ts(until);
    pthread_cond_timedwait(&w->cv, &wh->mu, &ts);
  }
  pthread_mutex_unlock(&wh->mu);
  return res;
}

void rqi_webhook_wait_end(RqWebhookWait *w)
{
  RqWebhook *wh;
  WhPath *p;
  RqWebhookWait **pp;

  if(!w)
    return;
  wh = w->wh;
  pthread_mutex_lock(&wh->mu);
  p = w->path;
  for(pp = &p->waits; *pp; pp = &(*pp)->next) {
    if(*pp == w) {
      *pp = w->next;
      break;
    }
  }
  if(p->dynamic && !p->waits)
    remove_path(wh, p);
  else if(!p->waits) {
    /* Events that arrived for this wait but were never taken, or were
     * given back, go back to the buffer (empty while a wait was active),
     * oldest first: the next wait on the path -- the next iteration of
     * a `for`, say -- may be the one they are for.  Given-back events
     * were taken before any still queued, so they come first.  Other
     * waits still active have copies. */
    WhEvent *e;

    while((e = q_pop(&w->released)))
      q_push(&p->buffered, e);
    while((e = q_pop(&w->q)))
      q_push(&p->buffered, e);
    expire(wh, p);
    while(p->buffered.n > RQ_WEBHOOK_MAX_EVENTS ||
          p->buffered.bytes > RQ_WEBHOOK_MAX_BUFFER_BYTES)
      ev_free(q_pop(&p->buffered));
  }
  pthread_mutex_unlock(&wh->mu);
  q_clear(&w->q);
  q_clear(&w->released);
  pthread_cond_destroy(&w->cv);
  rq_free(w);
}

void rqi_webhook_release(RqWebhookWait *w, RqWebhookEvent *ev)
{
  WhEvent *e;

  if(!ev->body)
    return;
  e = rq_calloc(1, sizeof(*e));
  memcpy(e->id, ev->id, sizeof(e->id));
  e->body = ev->body;           /* the reference moves back */
  e->bytes = ev->bytes;
  e->received_at = ev->received_at;
  e->mono = ev->mono;
  ev->body = NULL;
  pthread_mutex_lock(&w->wh->mu);
  q_push(&w->released, e);
  pthread_mutex_unlock(&w->wh->mu);
}

RqWebhook *rqi_webhook_plan(int port, const char *public_url)
{
  RqWebhook *wh = rq_calloc(1, sizeof(*wh));

  wh->port = port;
  wh->clock = rq_mono_ms;
  pthread_mutex_init(&wh->mu, NULL);
  if(public_url && *public_url)
    wh->public_url = rq_strdup(public_url);
  __atomic_store_n(&g_current, wh, __ATOMIC_SEQ_CST);
  return wh;
}

void rqi_webhook_wakeup(RqWebhook *wh)
{
  WhPath *p;
  RqWebhookWait *w;

  if(!wh)
    return;
  pthread_mutex_lock(&wh->mu);
  wh->woken = true;
  for(p = wh->paths; p; p = p->next) {
    for(w = p->waits; w; w = w->next)
      pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&wh->mu);
}

/* ------------------------------------------------------------ the URL */

char *rqi_webhook_url(const RqWebhook *wh, const char *path, char *err,
                      size_t errlen)
{
  char base[64];
  const char *b;
  size_t bl;

  if(!wh) {
    snprintf(err, errlen, "webhook listener not enabled");
    return NULL;
  }
  if(wh->public_url)
    b = wh->public_url;
  else {
    snprintf(base, sizeof(base), "http://localhost:%d", wh->port);
    b = base;
  }
  bl = strlen(b);
  while(bl > 0 && b[bl - 1] == '/')
    bl--;
  if(!path)
    path = "";
  while(*path == '/')
    path++;
  return rq_asprintf("%.*s/%s", (int)bl, b, path);
}

void rqi_webhook_set_clock(RqWebhook *wh, double (*mono_ms)(void))
{
  pthread_mutex_lock(&wh->mu);
  wh->clock = mono_ms ? mono_ms : rq_mono_ms;
  pthread_mutex_unlock(&wh->mu);
}
