/* test_webhook.c -- the webhook listener and wait API of SPEC §4.14
 * (runtime/webhook.c) with a real HTTP client (libcurl) on loopback:
 * 200/401/404/405/413/400 replies, JSON, form and text bodies, the token
 * check (and that the token is never logged), buffered events before a
 * wait and live ones during it, expiry after 15 minutes with an injected
 * clock, the 1000-event cap, waits on two threads, one event for two
 * waits on a path, deadlines, wakeup on a stop request, paths
 * registered by a wait, webhookUrl(), events given back
 * (rqi_webhook_release), the --dry-run listener (rqi_webhook_plan), and
 * bind failures.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_webhook.h"
#include "check.h"

typedef struct {
  long status;
  char allow[64];
  RqBuf body;
  CURLcode rc;
} Reply;

typedef struct {
  const char *method;       /* NULL: POST */
  const char *ctype;        /* NULL: no Content-Type header */
  const char *data;         /* NULL with len: len bytes of 'x' */
  size_t len;
  const char *token;        /* X-Reqon-Token, NULL: none */
  bool chunked;             /* no Content-Length: streamed */
} Req;

typedef struct {
  size_t left;
} Feed;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
  Reply *r = ud;

  if(rq_buf_add(&r->body, p, sz * n) != 0)
    return 0;
  return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
  Reply *r = ud;
  size_t len = sz * n, k;
  char line[256];

  k = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
  memcpy(line, p, k);
  line[k] = '\0';
  while(k > 0 && (line[k - 1] == '\r' || line[k - 1] == '\n'))
    line[--k] = '\0';
  if(strncasecmp(line, "Allow: ", 7) == 0)
    snprintf(r->allow, sizeof(r->allow), "%s", line + 7);
  return len;
}

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
  Feed *f = ud;
  size_t k = sz * n < f->left ? sz * n : f->left;

  memset(p, 'x', k);
  f->left -= k;
  return k;
}

/* Sends one request with c (NULL: a fresh handle) and fills r. */
static void send_on(CURL *c, Reply *r, int port, const char *path,
                    const Req *q)
{
  CURL *own = NULL;
  struct curl_slist *h = NULL;
  char url[512], line[256];
  char *fill = NULL;
  Feed feed;

  if(!c)
    c = own = curl_easy_init();
  else
    curl_easy_reset(c);
  memset(r, 0, sizeof(*r));
  r->body.max = 1 << 20;
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  if(q->ctype) {
    snprintf(line, sizeof(line), "Content-Type: %s", q->ctype);
    h = curl_slist_append(h, line);
  }
  else      /* curl would send its form type for POSTFIELDS */
    h = curl_slist_append(h, "Content-Type:");
  if(q->token) {
    snprintf(line, sizeof(line), "X-Reqon-Token: %s", q->token);
    h = curl_slist_append(h, line);
  }
  if(q->method && (strcmp(q->method, "GET") == 0 ||
                   strcmp(q->method, "HEAD") == 0)) {
    if(strcmp(q->method, "HEAD") == 0)
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  }
  else if(q->chunked) {
    feed.left = q->len;
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &feed);
  }
  else {
    const char *d = q->data;

    if(!d) {
      fill = rq_calloc(q->len + 1, 1);
      memset(fill, 'x', q->len);
      d = fill;
    }
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(q->data && !q->len ? strlen(d) : q->len));
  }
  if(q->method && strcmp(q->method, "POST") != 0 &&
     strcmp(q->method, "HEAD") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  r->rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(h);
  if(own)
    curl_easy_cleanup(own);
  rq_free(fill);
}

/* POSTs text with a content type; returns the status, the event id of a
 * 200 into id (>= 40 bytes) when id is not NULL. */
static long post_on(CURL *c, int port, const char *path,
                    const char *ctype, const char *data, char *id)
{
  Req q = { NULL, ctype, data, 0, NULL, false };
  Reply r;
  long st;

  send_on(c, &r, port, path, &q);
  st = r.rc == CURLE_OK ? r.status : -1;
  if(id) {
    json_t *doc = r.body.data ? json_loads(r.body.data, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(doc, "id"));

    snprintf(id, 40, "%s", s ? s : "");
    json_decref(doc);
  }
  rq_buf_free(&r.body);
  return st;
}

static long post(int port, const char *path, const char *ctype,
                 const char *data, char *id)
{
  return post_on(NULL, port, path, ctype, data, id);
}

/* Sends raw request text on a new connection and never the body it
 * announces; reads the reply until the server closes or 20 s pass.
 * Writes the reply's status line to out.  A server that waited for the
 * body would answer nothing (it drops idle connections after 10 s). */
static void raw_request(int port, const char *text, char *out, size_t n)
{
  struct sockaddr_in sa;
  char buf[2048];
  size_t got = 0;
  double end = rq_mono_ms() + 20000;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  out[0] = '\0';
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if(fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
     write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
    if(fd >= 0)
      close(fd);
    return;
  }
  while(got < sizeof(buf) - 1 && rq_mono_ms() < end) {
    struct pollfd pf = { fd, POLLIN, 0 };
    ssize_t r;

    if(poll(&pf, 1, 200) <= 0)
      continue;
    r = read(fd, buf + got, sizeof(buf) - 1 - got);
    if(r <= 0)
      break;
    got += (size_t)r;
    buf[got] = '\0';
    if(strstr(buf, "\r\n\r\n"))
      break;
  }
  close(fd);
  buf[got] = '\0';
  buf[strcspn(buf, "\r\n")] = '\0';
  snprintf(out, n, "%s", buf);
}

static RqWebhook *start(const char *url, const char *token)
{
  char err[256] = "";
  RqWebhook *wh = rqi_webhook_start("127.0.0.1", 0, url, token, err,
                                    sizeof(err));

  if(!wh)
    fprintf(stderr, "start: %s\n", err);
  return wh;
}

/* Takes one event with a deadline ms from now; returns the result and
 * the body as compact JSON text in *text (NEW) for an event. */
static int take(RqWebhookWait *w, double ms, char **text,
                RqWebhookEvent *ev)
{
  int r = rqi_webhook_next(w, rq_mono_ms() + ms, ev);

  *text = NULL;
  if(r == RQ_WH_EVENT) {
    *text = json_dumps(ev->body, JSON_COMPACT | JSON_ENCODE_ANY |
                                 JSON_SORT_KEYS);
    json_decref(ev->body);
    ev->body = NULL;
  }
  return r;
}

static bool is_uuid4(const char *s)
{
  size_t i;

  if(strlen(s) != 36 || s[14] != '4' || !strchr("89ab", s[19]))
    return false;
  for(i = 0; i < 36; i++) {
    if(i == 8 || i == 13 || i == 18 || i == 23) {
      if(s[i] != '-')
        return false;
    }
    else if(!strchr("0123456789abcdef", s[i]))
      return false;
  }
  return true;
}

/* ------------------------------------------------------------- replies */

static void test_replies(void)
{
  RqWebhook *wh = start(NULL, NULL);
  Reply r;
  Req q = { NULL, "application/json", "{\"a\":1}", 0, NULL, false };
  char id[40], *text;
  RqWebhookWait *w;
  RqWebhookEvent ev;
  int port;
  json_t *doc;

  CHECK(wh != NULL);
  if(!wh)
    return;
  CHECK(rqi_webhook_current() == wh);
  port = rqi_webhook_port(wh);
  CHECK(port > 0);
  rqi_webhook_register_path(wh, "/hooks/a");
  rqi_webhook_register_path(wh, "hooks/b");     /* '/' added */
  rqi_webhook_register_path(wh, "/hooks/a");    /* twice: harmless */

  /* 200 with {"accepted":true,"id":"<uuid>"} exactly. */
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.rc == CURLE_OK);
  CHECK(r.status == 200);
  doc = r.body.data ? json_loads(r.body.data, 0, NULL) : NULL;
  CHECK(json_object_size(doc) == 2);
  CHECK(json_is_true(json_object_get(doc, "accepted")));
  CHECK(is_uuid4(json_string_value(json_object_get(doc, "id")) ?
                 json_string_value(json_object_get(doc, "id")) : ""));
  CHECK(r.body.data && strncmp(r.body.data, "{\"accepted\":true,\"id\":\"",
                               23) == 0);
  json_decref(doc);
  rq_buf_free(&r.body);

  /* PUT is an event too; the two ids differ. */
  q.method = "PUT";
  send_on(NULL, &r, port, "/hooks/b", &q);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  CHECK(rqi_webhook_buffered(wh, "/hooks/b") == 1);
  CHECK(rqi_webhook_buffered(wh, "hooks/b") == 1);

  /* 404: unknown path, a prefix of a known one, the query ignored. */
  CHECK(post(port, "/hooks/c", "application/json", "{}", NULL) == 404);
  CHECK(post(port, "/hooks", "application/json", "{}", NULL) == 404);
  CHECK(post(port, "/hooks/a/", "application/json", "{}", NULL) == 404);
  CHECK(post(port, "/hooks/a?x=1", "application/json", "{}", id) == 200);
  CHECK(is_uuid4(id));
  /* 404 for a GET on an unknown path: nothing says whether it exists. */
  q.method = "GET";
  send_on(NULL, &r, port, "/nope", &q);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);

  /* 405 with Allow for GET, HEAD and DELETE on a registered path. */
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.status == 405);
  CHECK_STREQ(r.allow, "POST, PUT");
  CHECK(r.body.len == 0);
  rq_buf_free(&r.body);
  q.method = "HEAD";
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.status == 405);
  rq_buf_free(&r.body);
  q.method = "DELETE";
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.status == 405);
  rq_buf_free(&r.body);
  CHECK(rqi_webhook_buffered(wh, "/hooks/a") == 2);

  /* Refusals come before the body is read: the client below announces
   * 2 MiB and sends none of it. */
  {
    char line[128], req[256];

    snprintf(req, sizeof(req), "POST /hooks/a HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n",
             2 * RQ_WEBHOOK_MAX_BODY);
    raw_request(port, req, line, sizeof(line));
    /* the reason phrase differs between libmicrohttpd versions */
    CHECK(strncmp(line, "HTTP/1.1 413 ", 13) == 0);
    snprintf(req, sizeof(req), "POST /nope HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 100\r\n\r\n");
    raw_request(port, req, line, sizeof(line));
    CHECK(strncmp(line, "HTTP/1.1 404 ", 13) == 0);
  }

  /* 413: an announced body over 1 MiB is refused before it is read;
   * exactly 1 MiB is fine; a streamed (chunked) body over the cap is
   * refused at its end; the server goes on serving. */
  q.method = NULL;
  q.ctype = "text/plain";
  q.data = NULL;
  q.len = RQ_WEBHOOK_MAX_BODY + 1;
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.status == 413);
  rq_buf_free(&r.body);
  q.chunked = true;
  q.len = 2 * RQ_WEBHOOK_MAX_BODY;
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.status == 413);
  rq_buf_free(&r.body);
  /* A sender that streams on and on is disconnected (webhook.c drops
   * it after 16 MiB) instead of being read forever. */
  q.len = 20 * RQ_WEBHOOK_MAX_BODY;
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.rc != CURLE_OK && r.status != 200);
  rq_buf_free(&r.body);
  q.len = 3000;                 /* chunked under the cap: accepted */
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  q.chunked = false;
  q.len = RQ_WEBHOOK_MAX_BODY;
  send_on(NULL, &r, port, "/hooks/a", &q);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  CHECK(rqi_webhook_buffered(wh, "/hooks/a") == 4);

  /* The buffered events, oldest first: the JSON one, the ?x=1 one, the
   * chunked 3000 bytes, then the 1 MiB text. */
  w = rqi_webhook_wait_begin(wh, "/hooks/a");
  CHECK(rqi_webhook_buffered(wh, "/hooks/a") == 0);
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "{\"a\":1}");
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "{}");
  CHECK_STREQ(ev.id, id);
  CHECK(ev.received_at > 1.7e12 && ev.received_at <= rq_now_ms());
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK(text && strlen(text) == 3002 && text[0] == '"');
  rq_free(text);
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK(text && strlen(text) == RQ_WEBHOOK_MAX_BODY + 2);
  rq_free(text);
  CHECK(take(w, 50, &text, &ev) == RQ_WH_TIMEOUT);
  rqi_webhook_wait_end(w);

  rqi_webhook_stop(wh);     /* /hooks/b still holds an event: freed */
  CHECK(rqi_webhook_current() == NULL);
}

/* ---------------------------------------------------------------- bodies */

typedef struct {
  const char *ctype;
  const char *data;
  long status;
  const char *want;         /* compact, sorted JSON of the body */
} BodyCase;

static void test_bodies(void)
{
  static const BodyCase cases[] = {
    { "application/json", "{\"b\":[1,2],\"a\":\"x\"}", 200,
      "{\"a\":\"x\",\"b\":[1,2]}" },
    { "application/json; charset=utf-8", "42", 200, "42" },
    { "application/vnd.api+json", "[true,null]", 200, "[true,null]" },
    { "APPLICATION/JSON", "\"s\"", 200, "\"s\"" },
    { "text/json", "{}", 200, "{}" },
    { "application/x-www-form-urlencoded",
      "a=1&b=two+words&a=2&c=%41%2b%zz&d&=e&&f=%C3%A9&a=3", 200,
      "{\"\":\"e\",\"a\":[\"1\",\"2\",\"3\"],\"b\":\"two words\","
      "\"c\":\"A+%zz\",\"d\":\"\",\"f\":\"\xc3\xa9\"}" },
    { "Application/X-WWW-Form-Urlencoded; charset=UTF-8", "x=%", 200,
      "{\"x\":\"%\"}" },
    { "application/x-www-form-urlencoded", "", 200, "{}" },
    { "text/plain", "hello\nworld", 200, "\"hello\\nworld\"" },
    { NULL, "raw", 200, "\"raw\"" },
    { "application/octet-stream", "a=1", 200, "\"a=1\"" },
    { "application/x-www-form-urlencoded-not", "a=1", 200, "\"a=1\"" },
    { "text/plain", "", 200, "\"\"" },
    /* Refused with 400 and a reason: nothing is altered silently. */
    { "application/json", "{\"a\":", 400, NULL },
    { "application/json", "", 400, NULL },
    { "text/plain", "caf\xe9", 400, NULL },
    { "application/x-www-form-urlencoded", "a=%FF", 400, NULL },
    { "application/x-www-form-urlencoded", "%FF=1", 400, NULL },
    { "application/x-www-form-urlencoded", "a%00b=1", 400, NULL },
  };
  RqWebhook *wh = start(NULL, NULL);
  RqWebhookWait *w;
  RqWebhookEvent ev;
  CURL *c = curl_easy_init();
  size_t i;
  char *text;
  int port;

  CHECK(wh != NULL);
  if(!wh) {
    curl_easy_cleanup(c);
    return;
  }
  port = rqi_webhook_port(wh);
  rqi_webhook_register_path(wh, "/b");
  w = rqi_webhook_wait_begin(wh, "/b");
  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const BodyCase *k = &cases[i];
    Req q = { NULL, k->ctype, k->data, strlen(k->data), NULL, false };
    Reply r;

    send_on(c, &r, port, "/b", &q);
    check_result(r.status == k->status, __FILE__, __LINE__, k->data);
    if(k->status == 400) {
      json_t *doc = r.body.data ? json_loads(r.body.data, 0, NULL) : NULL;
      const char *e = json_string_value(json_object_get(doc, "error"));

      CHECK(json_is_false(json_object_get(doc, "accepted")));
      CHECK(e && *e);
      json_decref(doc);
    }
    rq_buf_free(&r.body);
    if(k->want) {
      CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
      CHECK_STRFREE(text, k->want);
    }
  }
  /* A refused body produced no event. */
  CHECK(take(w, 50, &text, &ev) == RQ_WH_TIMEOUT);
  rqi_webhook_wait_end(w);
  curl_easy_cleanup(c);
  rqi_webhook_stop(wh);
}

/* ----------------------------------------------------------------- token */

static void test_token(void)
{
  static const char tok[] = "s3cr3t-webhook-token";
  char path[64], errlog[] = "/tmp/test_webhook_XXXXXX";
  RqWebhook *wh;
  Reply r;
  Req q = { NULL, "application/json", "{}", 0, NULL, false };
  int port, fd, saved;
  FILE *f;
  char buf[8192];
  size_t n;

  /* Everything the listener logs (DEBUG) goes to a file we search. */
  fd = mkstemp(errlog);
  CHECK(fd >= 0);
  if(fd < 0)
    return;
  fflush(stderr);
  saved = dup(2);
  dup2(fd, 2);
  close(fd);
  rqi_log_configure(RQ_LOG_DEBUG, 0, 1);
  wh = start(NULL, tok);
  CHECK(wh != NULL);
  if(!wh) {
    dup2(saved, 2);
    close(saved);
    unlink(errlog);
    return;
  }
  port = rqi_webhook_port(wh);
  rqi_webhook_register_path(wh, "/t");

  send_on(NULL, &r, port, "/t", &q);      /* no token */
  CHECK(r.status == 401);
  CHECK(r.body.len == 0);
  rq_buf_free(&r.body);
  q.token = "s3cr3t-webhook-tokeN";       /* same length, last differs */
  send_on(NULL, &r, port, "/t", &q);
  CHECK(r.status == 401);
  rq_buf_free(&r.body);
  q.token = "s3cr3t-webhook-token2";      /* longer */
  send_on(NULL, &r, port, "/t", &q);
  CHECK(r.status == 401);
  rq_buf_free(&r.body);
  q.token = "s3cr3t";                     /* a prefix */
  send_on(NULL, &r, port, "/t", &q);
  CHECK(r.status == 401);
  rq_buf_free(&r.body);
  /* Without the token, unknown paths and methods are 401 too: a client
   * without it learns nothing about which paths exist. */
  q.token = NULL;
  send_on(NULL, &r, port, "/unknown", &q);
  CHECK(r.status == 401);
  rq_buf_free(&r.body);
  q.method = "GET";
  send_on(NULL, &r, port, "/t", &q);
  CHECK(r.status == 401);
  rq_buf_free(&r.body);
  CHECK(rqi_webhook_buffered(wh, "/t") == 0);

  q.method = NULL;
  q.token = tok;
  send_on(NULL, &r, port, "/t", &q);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  send_on(NULL, &r, port, "/unknown", &q);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);
  CHECK(rqi_webhook_buffered(wh, "/t") == 1);
  /* A log line that quotes the token anyway is redacted. */
  snprintf(path, sizeof(path), "/t-%s", tok);
  rq_log(RQ_LOG_INFO, NULL, "probe %s", path);
  rqi_webhook_stop(wh);

  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rqi_log_configure(RQ_LOG_WARN, 0, 1);
  f = fopen(errlog, "r");
  n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
  buf[n] = '\0';
  if(f)
    fclose(f);
  unlink(errlog);
  CHECK(strstr(buf, "Listening on 127.0.0.1:") != NULL);
  CHECK(strstr(buf, "probe /t-***") != NULL);
  CHECK(strstr(buf, tok) == NULL);
  CHECK(strstr(buf, "s3cr3t") == NULL);
}

/* ---------------------------------------------- buffering and expiry */

static double fake_ms;

static double fake_clock(void)
{
  return fake_ms;
}

static void test_expiry_and_cap(void)
{
  RqWebhook *wh = start(NULL, NULL);
  RqWebhookWait *w;
  RqWebhookEvent ev;
  CURL *c = curl_easy_init();
  char num[32], *text;
  int port, i, ok = 0;

  CHECK(wh != NULL);
  if(!wh) {
    curl_easy_cleanup(c);
    return;
  }
  port = rqi_webhook_port(wh);
  fake_ms = 1e6;
  rqi_webhook_set_clock(wh, fake_clock);
  rqi_webhook_register_path(wh, "/e");

  /* Kept for 15 minutes, gone after. */
  CHECK(post_on(c, port, "/e", "application/json", "1", NULL) == 200);
  fake_ms += 5 * 60 * 1000.0;
  CHECK(post_on(c, port, "/e", "application/json", "2", NULL) == 200);
  fake_ms += 10 * 60 * 1000.0 - 1;        /* the first is 15 min - 1 ms */
  CHECK(rqi_webhook_buffered(wh, "/e") == 2);
  fake_ms += 1;                           /* exactly 15 minutes */
  CHECK(rqi_webhook_buffered(wh, "/e") == 1);
  w = rqi_webhook_wait_begin(wh, "/e");
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "2");
  CHECK(take(w, 20, &text, &ev) == RQ_WH_TIMEOUT);
  rqi_webhook_wait_end(w);

  fake_ms += 10 * 60 * 1000.0;            /* "2" was taken: not back */
  CHECK(rqi_webhook_buffered(wh, "/e") == 0);
  CHECK(post_on(c, port, "/e", "application/json", "3", NULL) == 200);
  fake_ms += RQ_WEBHOOK_BUFFER_MS + 1;
  w = rqi_webhook_wait_begin(wh, "/e");   /* expired before the wait */
  CHECK(take(w, 20, &text, &ev) == RQ_WH_TIMEOUT);
  rqi_webhook_wait_end(w);

  /* 1000 per path: the oldest is dropped beyond. */
  for(i = 0; i < RQ_WEBHOOK_MAX_EVENTS + 5; i++) {
    snprintf(num, sizeof(num), "%d", i);
    ok += post_on(c, port, "/e", "application/json", num, NULL) == 200;
  }
  CHECK(ok == RQ_WEBHOOK_MAX_EVENTS + 5);
  CHECK(rqi_webhook_buffered(wh, "/e") == RQ_WEBHOOK_MAX_EVENTS);
  w = rqi_webhook_wait_begin(wh, "/e");
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "5");
  for(i = 6; i < RQ_WEBHOOK_MAX_EVENTS + 4; i++) {
    if(take(w, 1000, &text, &ev) != RQ_WH_EVENT)
      break;
    rq_free(text);
  }
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "1004");
  CHECK(take(w, 20, &text, &ev) == RQ_WH_TIMEOUT);
  /* Live events go to the wait, not the buffer; the ones still queued
   * when the wait ends, never taken, go back to the buffer for the next
   * wait, ahead of later ones, and still expire on time. */
  CHECK(post_on(c, port, "/e", "application/json", "7", NULL) == 200);
  CHECK(post_on(c, port, "/e", "application/json", "8", NULL) == 200);
  CHECK(rqi_webhook_buffered(wh, "/e") == 0);
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "7");
  rqi_webhook_wait_end(w);
  CHECK(rqi_webhook_buffered(wh, "/e") == 1);
  fake_ms += 60 * 1000.0;
  CHECK(post_on(c, port, "/e", "application/json", "9", NULL) == 200);
  CHECK(rqi_webhook_buffered(wh, "/e") == 2);
  w = rqi_webhook_wait_begin(wh, "/e");
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "8");
  rqi_webhook_wait_end(w);                /* "9" back in the buffer */
  fake_ms += RQ_WEBHOOK_BUFFER_MS - 60 * 1000.0;   /* "9": 14 min old */
  CHECK(rqi_webhook_buffered(wh, "/e") == 1);
  fake_ms += 60 * 1000.0;
  CHECK(rqi_webhook_buffered(wh, "/e") == 0);

  /* A wait that does not keep up holds at most 1000 events too. */
  rqi_webhook_register_path(wh, "/q");
  w = rqi_webhook_wait_begin(wh, "/q");
  ok = 0;
  for(i = 0; i < RQ_WEBHOOK_MAX_EVENTS + 3; i++) {
    snprintf(num, sizeof(num), "%d", i);
    ok += post_on(c, port, "/q", "application/json", num, NULL) == 200;
  }
  CHECK(ok == RQ_WEBHOOK_MAX_EVENTS + 3);
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "3");
  rqi_webhook_wait_end(w);
  CHECK(rqi_webhook_buffered(wh, "/q") == RQ_WEBHOOK_MAX_EVENTS - 1);

  /* And at most RQ_WEBHOOK_MAX_BUFFER_BYTES of bodies per path. */
  {
    size_t per = RQ_WEBHOOK_MAX_BODY;
    int fit = (int)(RQ_WEBHOOK_MAX_BUFFER_BYTES / per);
    char *big = rq_malloc(per + 1);
    Reply r;

    memset(big, 'x', per);
    big[per] = '\0';
    rqi_webhook_register_path(wh, "/big");
    ok = 0;
    for(i = 0; i < fit + 2; i++) {
      Req q = { NULL, "text/plain", big, per, NULL, false };

      snprintf(num, sizeof(num), "%04d", i);
      memcpy(big, num, 4);
      send_on(c, &r, port, "/big", &q);
      ok += r.status == 200;
      rq_buf_free(&r.body);
    }
    CHECK(ok == fit + 2);
    CHECK(rqi_webhook_buffered(wh, "/big") == (size_t)fit);
    w = rqi_webhook_wait_begin(wh, "/big");
    CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
    CHECK(text && strncmp(text, "\"0002x", 6) == 0);
    rq_free(text);
    rqi_webhook_wait_end(w);          /* the rest go back, then freed */
    rq_free(big);
  }
  curl_easy_cleanup(c);
  rqi_webhook_stop(wh);
}

/* ----------------------------------------------------- waits on threads */

typedef struct {
  RqWebhook *wh;
  const char *path;
  double ms;
  int result[2];
  char *text[2];
  char id[2][40];
  int n;
  volatile int begun;
} Waiter;

static void *waiter_main(void *arg)
{
  Waiter *t = arg;
  RqWebhookWait *w = rqi_webhook_wait_begin(t->wh, t->path);
  RqWebhookEvent ev;
  int i;

  __atomic_store_n(&t->begun, 1, __ATOMIC_SEQ_CST);
  for(i = 0; i < t->n; i++) {
    t->result[i] = take(w, t->ms, &t->text[i], &ev);
    if(t->result[i] == RQ_WH_EVENT)
      memcpy(t->id[i], ev.id, sizeof(ev.id));
  }
  rqi_webhook_wait_end(w);
  return NULL;
}

static void await_begun(Waiter *t)
{
  while(!__atomic_load_n(&t->begun, __ATOMIC_SEQ_CST))
    usleep(1000);
}

static void test_threads(void)
{
  RqWebhook *wh = start(NULL, NULL);
  Waiter a = { 0 }, b = { 0 }, s1 = { 0 }, s2 = { 0 };
  pthread_t ta, tb;
  char id1[40], id2[40], idb[40];
  int port;

  CHECK(wh != NULL);
  if(!wh)
    return;
  port = rqi_webhook_port(wh);
  rqi_webhook_register_path(wh, "/a");
  rqi_webhook_register_path(wh, "/b");

  /* Two waits on different paths, each blocked in next(), woken by its
   * own event only; one event was buffered before its wait began. */
  CHECK(post(port, "/a", "application/json", "\"early\"", id1) == 200);
  a.wh = b.wh = wh;
  a.path = "/a";
  b.path = "/b";
  a.ms = b.ms = 20000;
  a.n = 2;
  b.n = 1;
  pthread_create(&ta, NULL, waiter_main, &a);
  pthread_create(&tb, NULL, waiter_main, &b);
  await_begun(&a);
  await_begun(&b);
  usleep(20000);
  CHECK(post(port, "/b", "application/json", "\"for b\"", idb) == 200);
  CHECK(post(port, "/a", "application/json", "\"for a\"", id2) == 200);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(a.result[0] == RQ_WH_EVENT && a.result[1] == RQ_WH_EVENT);
  CHECK_STRFREE(a.text[0], "\"early\"");
  CHECK_STRFREE(a.text[1], "\"for a\"");
  CHECK_STREQ(a.id[0], id1);
  CHECK_STREQ(a.id[1], id2);
  CHECK(b.result[0] == RQ_WH_EVENT);
  CHECK_STRFREE(b.text[0], "\"for b\"");
  CHECK_STREQ(b.id[0], idb);

  /* Two waits on one path: each gets every event (its own copy), so
   * neither can steal what the other's eventFilter wants. */
  s1.wh = s2.wh = wh;
  s1.path = s2.path = "/a";
  s1.ms = s2.ms = 20000;
  s1.n = s2.n = 1;
  pthread_create(&ta, NULL, waiter_main, &s1);
  pthread_create(&tb, NULL, waiter_main, &s2);
  await_begun(&s1);
  await_begun(&s2);
  CHECK(post(port, "/a", "application/json", "{\"k\":[1]}", id1) == 200);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(s1.result[0] == RQ_WH_EVENT && s2.result[0] == RQ_WH_EVENT);
  CHECK_STRFREE(s1.text[0], "{\"k\":[1]}");
  CHECK_STRFREE(s2.text[0], "{\"k\":[1]}");
  CHECK_STREQ(s1.id[0], id1);
  CHECK_STREQ(s2.id[0], id1);
  CHECK(rqi_webhook_buffered(wh, "/a") == 0);
  rqi_webhook_stop(wh);
}

/* ------------------------------------------ deadlines, stop, wakeup */

static void test_deadline_and_stop(void)
{
  RqWebhook *wh = start(NULL, NULL);
  Waiter t = { 0 };
  pthread_t th;
  RqWebhookWait *w;
  RqWebhookEvent ev;
  double t0;
  char *text;
  int port;

  CHECK(wh != NULL);
  if(!wh)
    return;
  port = rqi_webhook_port(wh);
  rqi_webhook_register_path(wh, "/d");

  /* A short deadline: a timeout no earlier than asked; the same wait
   * then takes an event that arrives later with a new deadline. */
  w = rqi_webhook_wait_begin(wh, "/d");
  t0 = rq_mono_ms();
  CHECK(take(w, 150, &text, &ev) == RQ_WH_TIMEOUT);
  CHECK(rq_mono_ms() - t0 >= 149);
  CHECK(take(w, -5, &text, &ev) == RQ_WH_TIMEOUT);   /* already past */
  CHECK(post(port, "/d", "application/json", "1", NULL) == 200);
  /* queued events come out even with a deadline already past */
  CHECK(take(w, -5, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "1");
  rqi_webhook_wait_end(w);

  /* A stop request wakes a wait with a long deadline: without it the
   * thread would get RQ_WH_TIMEOUT after a minute. */
  t.wh = wh;
  t.path = "/d";
  t.ms = 60000;
  t.n = 1;
  pthread_create(&th, NULL, waiter_main, &t);
  await_begun(&t);
  usleep(30000);
  __atomic_store_n(&rqi_stop_requested, 1, __ATOMIC_SEQ_CST);
  pthread_join(th, NULL);
  __atomic_store_n(&rqi_stop_requested, 0, __ATOMIC_SEQ_CST);
  CHECK(t.result[0] == RQ_WH_STOPPED);
  CHECK(t.text[0] == NULL);

  /* rqi_webhook_wakeup does the same, and for later calls too. */
  memset(&t, 0, sizeof(t));
  t.wh = wh;
  t.path = "/d";
  t.ms = 60000;
  t.n = 2;
  pthread_create(&th, NULL, waiter_main, &t);
  await_begun(&t);
  usleep(30000);
  rqi_webhook_wakeup(wh);
  pthread_join(th, NULL);
  CHECK(t.result[0] == RQ_WH_STOPPED);
  CHECK(t.result[1] == RQ_WH_STOPPED);
  rqi_webhook_stop(wh);
}

/* ---------------------------------------------- paths registered by waits */

static void test_dynamic_paths(void)
{
  RqWebhook *wh = start(NULL, NULL);
  RqWebhookWait *w;
  RqWebhookEvent ev;
  char path[128], *text;
  int port;

  CHECK(wh != NULL);
  if(!wh)
    return;
  port = rqi_webhook_port(wh);
  CHECK(rqi_webhook_default_path("exec_lx2a3b_k9q2zz", 3, path,
                                 sizeof(path)));
  CHECK_STREQ(path, "/webhook/exec_lx2a3b_k9q2zz/3");
  CHECK(!rqi_webhook_default_path("exec_lx2a3b_k9q2zz", 3, path, 10));

  rqi_webhook_default_path("exec_1", 1, path, sizeof(path));
  CHECK(post(port, path, "application/json", "0", NULL) == 404);
  w = rqi_webhook_wait_begin(wh, path);
  CHECK(post(port, path, "application/json", "{\"ok\":1}", NULL) == 200);
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK_STRFREE(text, "{\"ok\":1}");
  CHECK(post(port, path, "application/json", "5", NULL) == 200);
  rqi_webhook_wait_end(w);          /* "5" freed with the wait */
  CHECK(post(port, path, "application/json", "0", NULL) == 404);

  /* A static path outlives its waits and buffers again after them. */
  rqi_webhook_register_path(wh, "/s");
  w = rqi_webhook_wait_begin(wh, "/s");
  rqi_webhook_wait_end(w);
  CHECK(post(port, "/s", "application/json", "0", NULL) == 200);
  CHECK(rqi_webhook_buffered(wh, "/s") == 1);
  /* A path a wait registered, then registered statically, stays. */
  w = rqi_webhook_wait_begin(wh, "/later");
  rqi_webhook_register_path(wh, "/later");
  rqi_webhook_wait_end(w);
  CHECK(post(port, "/later", "application/json", "0", NULL) == 200);
  rqi_webhook_stop(wh);
}

/* ------------------------------------------------------------ the URL */

static void test_url(void)
{
  char err[128] = "";
  RqWebhook *wh;
  char want[64];

  CHECK(rqi_webhook_url(NULL, "/x", err, sizeof(err)) == NULL);
  CHECK_STREQ(err, "webhook listener not enabled");

  wh = start(NULL, NULL);
  CHECK(wh != NULL);
  if(!wh)
    return;
  snprintf(want, sizeof(want), "http://localhost:%d/hooks/p",
           rqi_webhook_port(wh));
  CHECK_STRFREE(rqi_webhook_url(wh, "/hooks/p", err, sizeof(err)), want);
  CHECK_STRFREE(rqi_webhook_url(wh, "hooks/p", err, sizeof(err)), want);
  rqi_webhook_stop(wh);

  wh = start("https://hooks.example.com/base/", NULL);
  CHECK(wh != NULL);
  if(!wh)
    return;
  CHECK_STRFREE(rqi_webhook_url(wh, "/hooks/p", err, sizeof(err)),
                "https://hooks.example.com/base/hooks/p");
  CHECK_STRFREE(rqi_webhook_url(wh, "hooks/p", err, sizeof(err)),
                "https://hooks.example.com/base/hooks/p");
  CHECK_STRFREE(rqi_webhook_url(wh, "", err, sizeof(err)),
                "https://hooks.example.com/base/");
  CHECK(rqi_webhook_current() == wh);
  rqi_webhook_stop(wh);
  wh = start("https://h.example", NULL);
  CHECK(wh != NULL);
  if(!wh)
    return;
  CHECK_STRFREE(rqi_webhook_url(wh, "/p", err, sizeof(err)),
                "https://h.example/p");
  rqi_webhook_stop(wh);

  CHECK(rqi_webhook_check_url("https://h.example/x", err,
                              sizeof(err)) == 0);
  CHECK(rqi_webhook_check_url("HTTP://h", err, sizeof(err)) == 0);
  CHECK(rqi_webhook_check_url("ftp://h", err, sizeof(err)) == -1);
  CHECK_STREQ(err, "--webhook-url must start with http:// or https://");
  CHECK(rqi_webhook_check_url("h.example", err, sizeof(err)) == -1);
  CHECK(rqi_webhook_check_url("http:///x", err, sizeof(err)) == -1);
  CHECK_STREQ(err, "--webhook-url has no host");
}

/* ------------------------------------------------------------ binding */

static void test_bind(void)
{
  char err[256] = "", want[128];
  RqWebhook *a = start(NULL, NULL), *b;
  int port;

  CHECK(a != NULL);
  if(!a)
    return;
  port = rqi_webhook_port(a);
  b = rqi_webhook_start("127.0.0.1", port, NULL, NULL, err, sizeof(err));
  CHECK(b == NULL);
  snprintf(want, sizeof(want),
           "cannot listen on 127.0.0.1:%d: Address already in use", port);
  CHECK_STREQ(err, want);
  CHECK(rqi_webhook_current() == a);
  rqi_webhook_stop(a);

  b = rqi_webhook_start("not-an-ip", 8080, NULL, NULL, err, sizeof(err));
  CHECK(b == NULL);
  CHECK_STREQ(err, "cannot listen on not-an-ip:8080: not an IPv4 or IPv6 "
                   "address");
  b = rqi_webhook_start(NULL, 70000, NULL, NULL, err, sizeof(err));
  CHECK(b == NULL);
  CHECK_STREQ(err, "cannot listen on 127.0.0.1:70000: invalid port");

  /* IPv6 loopback, when the host has it. */
  b = rqi_webhook_start("::1", 0, NULL, NULL, err, sizeof(err));
  if(b) {
    CHECK(rqi_webhook_port(b) > 0);
    rqi_webhook_stop(b);
  }
  else
    CHECK(strncmp(err, "cannot listen on [::1]:0: ", 26) == 0);
}

/* rqi_webhook_release: an event given back (an eventFilter rejected it)
 * is not returned by the same wait again, and at the wait's end goes back
 * to the buffer before the events never taken, in arrival order, with
 * its arrival time kept; on a path a wait registered it is dropped with
 * the path.  rqi_webhook_plan: a listener that binds nothing but gives
 * webhookUrl() its URL. */
static void test_release_and_plan(void)
{
  RqWebhook *wh = start(NULL, NULL);
  RqWebhookWait *w;
  RqWebhookEvent ev, ev2;
  char *text;
  int port;
  double first_at;

  CHECK(wh != NULL);
  if(!wh)
    return;
  port = rqi_webhook_port(wh);
  rqi_webhook_register_path(wh, "/hooks/r");
  CHECK(post(port, "/hooks/r", "application/json", "{\"n\":1}", NULL) ==
        200);
  CHECK(post(port, "/hooks/r", "application/json", "{\"n\":2}", NULL) ==
        200);
  CHECK(post(port, "/hooks/r", "application/json", "{\"n\":3}", NULL) ==
        200);
  w = rqi_webhook_wait_begin(wh, "/hooks/r");
  CHECK(rqi_webhook_next(w, rq_mono_ms() + 1000, &ev) == RQ_WH_EVENT);
  CHECK(json_integer_value(json_object_get(ev.body, "n")) == 1);
  CHECK(ev.bytes == 7);
  first_at = ev.received_at;
  rqi_webhook_release(w, &ev);
  CHECK(ev.body == NULL);
  rqi_webhook_release(w, &ev);          /* nothing left: harmless */
  CHECK(rqi_webhook_next(w, rq_mono_ms() + 1000, &ev2) == RQ_WH_EVENT);
  CHECK(json_integer_value(json_object_get(ev2.body, "n")) == 2);
  json_decref(ev2.body);                /* consumed */
  CHECK(rqi_webhook_buffered(wh, "/hooks/r") == 0);
  rqi_webhook_wait_end(w);
  /* 1 (given back) then 3 (never taken); 2 was consumed */
  CHECK(rqi_webhook_buffered(wh, "/hooks/r") == 2);
  w = rqi_webhook_wait_begin(wh, "/hooks/r");
  CHECK(rqi_webhook_next(w, rq_mono_ms() + 1000, &ev) == RQ_WH_EVENT);
  CHECK(json_integer_value(json_object_get(ev.body, "n")) == 1);
  CHECK(ev.received_at == first_at);
  json_decref(ev.body);
  CHECK(take(w, 1000, &text, &ev) == RQ_WH_EVENT);
  CHECK(text && strcmp(text, "{\"n\":3}") == 0);
  rq_free(text);
  CHECK(take(w, 30, &text, &ev) == RQ_WH_TIMEOUT);
  rqi_webhook_wait_end(w);
  CHECK(rqi_webhook_buffered(wh, "/hooks/r") == 0);

  /* a path registered by the wait: given-back events go with it */
  w = rqi_webhook_wait_begin(wh, "/webhook/x/1");
  CHECK(post(port, "/webhook/x/1", "application/json", "{}", NULL) == 200);
  CHECK(rqi_webhook_next(w, rq_mono_ms() + 1000, &ev) == RQ_WH_EVENT);
  rqi_webhook_release(w, &ev);
  rqi_webhook_wait_end(w);
  CHECK(post(port, "/webhook/x/1", "application/json", "{}", NULL) == 404);
  rqi_webhook_stop(wh);

  wh = rqi_webhook_plan(8123, NULL);
  CHECK(rqi_webhook_current() == wh);
  {
    char err[64];
    char *url = rqi_webhook_url(wh, "/hooks/p", err, sizeof(err));
    CHECK(url && strcmp(url, "http://localhost:8123/hooks/p") == 0);
    rq_free(url);
  }
  rqi_webhook_stop(wh);
  CHECK(rqi_webhook_current() == NULL);
  wh = rqi_webhook_plan(0, "https://h.example/base/");
  {
    char err[64];
    char *url = rqi_webhook_url(wh, "x", err, sizeof(err));
    CHECK(url && strcmp(url, "https://h.example/base/x") == 0);
    rq_free(url);
  }
  rqi_webhook_stop(wh);
}

int main(void)
{
  rqi_util_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  rqi_log_configure(RQ_LOG_WARN, 0, 1);
  test_replies();
  test_bodies();
  test_token();
  test_expiry_and_cap();
  test_threads();
  test_deadline_and_stop();
  test_dynamic_paths();
  test_url();
  test_release_and_plan();
  test_bind();
  curl_global_cleanup();
  rqi_log_shutdown();
  return check_report();
}
