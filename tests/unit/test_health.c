/* test_health.c -- the /health, /ready and /metrics server of SPEC §10.3
 * and §10.4 (runtime/health.c) with a real HTTP client (libcurl) on
 * loopback: status codes, content types, bodies, HEAD, 404, 405 without
 * reading the body, one port serving both endpoint sets, separate ports,
 * a taken port and a bad address failing with the exit-4 message,
 * stuck clients not holding the server, the connection cap, IPv6, and
 * stop. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_metrics.h"
#include "check.h"

typedef struct {
  long status;
  char ctype[128];
  char allow[64];
  long clen;              /* Content-Length header; -1: none */
  RqBuf body;
  CURLcode rc;
} Reply;

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
  if(strncasecmp(line, "Content-Type: ", 14) == 0)
    snprintf(r->ctype, sizeof(r->ctype), "%s", line + 14);
  else if(strncasecmp(line, "Allow: ", 7) == 0)
    snprintf(r->allow, sizeof(r->allow), "%s", line + 7);
  else if(strncasecmp(line, "Content-Length: ", 16) == 0)
    r->clen = strtol(line + 16, NULL, 10);
  return len;
}

/* method: "GET", "HEAD" or "POST" (with post_len bytes of body). */
static void fetch(Reply *r, const char *host, int port, const char *path,
                  const char *method, size_t post_len)
{
  CURL *c = curl_easy_init();
  char url[256];
  char *post = NULL;

  memset(r, 0, sizeof(*r));
  r->clen = -1;
  r->body.max = 1 << 20;
  snprintf(url, sizeof(url), "http://%s:%d%s", host, port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  if(strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else if(strcmp(method, "POST") == 0) {
    post = rq_calloc(post_len + 1, 1);
    memset(post, 'x', post_len);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)post_len);
  }
  else if(strcmp(method, "GET") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  r->rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_cleanup(c);
  rq_free(post);
}

static const char *body(const Reply *r)
{
  return r->body.data ? r->body.data : "";
}

static void test_one_port(void)
{
  static const char *const ms[] = { "SyncA", "SyncB" };
  char err[256] = "";
  RqHealthServer *s;
  Reply r;
  json_t *doc;
  int port;

  rqi_metrics_init(ms, 2, NULL, 0);
  rqi_metrics_run_started("SyncA", 1700000000000.0);
  rqi_metrics_run_ended("SyncA", RQ_MET_COMPLETED, 2000, 1700000002000.0);
  rqi_metrics_http_attempt("Api", "GET", 200);
  rqi_health_set_ready(RQ_READY_STARTING);
  s = rqi_health_start("127.0.0.1", 0, RQ_EP_HEALTH | RQ_EP_METRICS, err,
                       sizeof(err));
  CHECK(s != NULL);
  if(!s) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  port = rqi_health_port(s);
  CHECK(port > 0);

  fetch(&r, "127.0.0.1", port, "/health", "GET", 0);
  CHECK(r.rc == CURLE_OK);
  CHECK(r.status == 200);
  CHECK_STREQ(r.ctype, "application/json");
  CHECK(strncmp(body(&r), "{\"status\":\"ok\",\"uptime\":", 24) == 0);
  doc = json_loads(body(&r), 0, NULL);
  CHECK(doc != NULL);
  CHECK(json_integer_value(json_object_get(doc, "missionsLoaded")) == 2);
  CHECK_STREQ(json_string_value(json_object_get(doc, "version")),
              RQ_VERSION);
  CHECK(json_array_size(json_object_get(doc, "missions")) == 2);
  CHECK_STREQ(json_string_value(json_object_get(
    json_array_get(json_object_get(doc, "missions"), 0), "lastStatus")),
    "completed");
  json_decref(doc);
  CHECK(strstr(body(&r), "\"uptime\":") < strstr(body(&r),
                                                 "\"missionsLoaded\""));
  rq_buf_free(&r.body);

  /* Degraded is still 200. */
  rqi_metrics_run_ended("SyncB", RQ_MET_FAILED, 1, 1700000003000.0);
  rqi_metrics_run_ended("SyncB", RQ_MET_FAILED, 1, 1700000004000.0);
  rqi_metrics_run_ended("SyncB", RQ_MET_FAILED, 1, 1700000005000.0);
  fetch(&r, "127.0.0.1", port, "/health", "GET", 0);
  CHECK(r.status == 200);
  CHECK(strncmp(body(&r), "{\"status\":\"degraded\",", 21) == 0);
  rq_buf_free(&r.body);

  /* HEAD: same status and length, no body. */
  fetch(&r, "127.0.0.1", port, "/health", "HEAD", 0);
  CHECK(r.rc == CURLE_OK);
  CHECK(r.status == 200);
  CHECK(r.clen > 20);
  CHECK(r.body.len == 0);
  rq_buf_free(&r.body);

  /* /ready: 503 before the scheduler starts, 200, 503 when draining. */
  fetch(&r, "127.0.0.1", port, "/ready", "GET", 0);
  CHECK(r.status == 503);
  rq_buf_free(&r.body);
  rqi_health_set_ready(RQ_READY_UP);
  fetch(&r, "127.0.0.1", port, "/ready", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", port, "/ready", "HEAD", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  rqi_health_set_ready(RQ_READY_DRAINING);
  fetch(&r, "127.0.0.1", port, "/ready", "GET", 0);
  CHECK(r.status == 503);
  rq_buf_free(&r.body);
  /* /health keeps answering while draining. */
  fetch(&r, "127.0.0.1", port, "/health", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);

  /* /metrics on the same port. */
  fetch(&r, "127.0.0.1", port, "/metrics", "GET", 0);
  CHECK(r.status == 200);
  CHECK(strncmp(r.ctype, "text/plain; version=0.0.4", 25) == 0);
  {
    static const char head[] = "# HELP reqon_mission_runs_total Total "
      "mission runs\n# TYPE reqon_mission_runs_total counter\n"
      "reqon_mission_runs_total{mission=\"SyncA\",status=\"success\"} 1\n";
    CHECK(strncmp(body(&r), head, sizeof(head) - 1) == 0);
  }
  CHECK(strstr(body(&r), "\nreqon_http_requests_total{source=\"Api\","
               "method=\"GET\",code=\"200\"} 1\n") != NULL);
  rq_buf_free(&r.body);

  /* Anything else: 404. */
  fetch(&r, "127.0.0.1", port, "/", "GET", 0);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", port, "/health/x", "GET", 0);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", port, "/metricsx", "GET", 0);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);

  /* Only GET and HEAD: 405 with Allow, without reading a large body
   * (the reply comes before it; MHD closes the connection). */
  fetch(&r, "127.0.0.1", port, "/health", "POST", 10);
  CHECK(r.status == 405);
  CHECK_STREQ(r.allow, "GET, HEAD");
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", port, "/metrics", "POST", 8 << 20);
  CHECK(r.status == 405);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", port, "/ready", "DELETE", 0);
  CHECK(r.status == 405);
  rq_buf_free(&r.body);
  /* Still serving afterwards. */
  fetch(&r, "127.0.0.1", port, "/health", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);

  rqi_health_stop(s);
  /* Stopped: nothing listens any more. */
  fetch(&r, "127.0.0.1", port, "/health", "GET", 0);
  CHECK(r.rc == CURLE_COULDNT_CONNECT);
  rq_buf_free(&r.body);
  rqi_metrics_cleanup();
}

/* --health-port and --metrics-port differ: each serves its own. */
static void test_two_ports(void)
{
  char err[256] = "";
  RqHealthServer *h, *m;
  Reply r;

  rqi_metrics_init(NULL, 0, NULL, 0);
  rqi_health_set_ready(RQ_READY_UP);
  h = rqi_health_start(NULL, 0, RQ_EP_HEALTH, err, sizeof(err));
  m = rqi_health_start("127.0.0.1", 0, RQ_EP_METRICS, err, sizeof(err));
  CHECK(h && m);
  if(!h || !m) {
    rqi_health_stop(h);
    rqi_health_stop(m);
    return;
  }
  CHECK(rqi_health_port(h) != rqi_health_port(m));
  fetch(&r, "127.0.0.1", rqi_health_port(h), "/health", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", rqi_health_port(h), "/ready", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", rqi_health_port(h), "/metrics", "GET", 0);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", rqi_health_port(m), "/metrics", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", rqi_health_port(m), "/health", "GET", 0);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", rqi_health_port(m), "/ready", "GET", 0);
  CHECK(r.status == 404);
  rq_buf_free(&r.body);
  rqi_health_stop(h);
  rqi_health_stop(m);
  rqi_metrics_cleanup();
}

/* A taken port and a bad address fail with the message of §11.3. */
static void test_bind_errors(void)
{
  char err[256] = "", want[128];
  RqHealthServer *a, *b;
  int port;

  a = rqi_health_start("127.0.0.1", 0, RQ_EP_HEALTH, err, sizeof(err));
  CHECK(a != NULL);
  if(!a)
    return;
  port = rqi_health_port(a);
  b = rqi_health_start("127.0.0.1", port, RQ_EP_METRICS, err,
                       sizeof(err));
  CHECK(b == NULL);
  snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: Address "
           "already in use", port);
  CHECK_STREQ(err, want);
  rqi_health_stop(b);
  rqi_health_stop(a);

  err[0] = '\0';
  CHECK(rqi_health_start("localhost.example", 9, RQ_EP_HEALTH, err,
                         sizeof(err)) == NULL);
  CHECK_STREQ(err, "cannot listen on localhost.example:9: not an IPv4 or "
              "IPv6 address");
  CHECK(rqi_health_start("127.0.0.1", 70000, RQ_EP_HEALTH, err,
                         sizeof(err)) == NULL);
  CHECK_STREQ(err, "cannot listen on 127.0.0.1:70000: invalid port");
  /* An address of no local interface. */
  CHECK(rqi_health_start("192.0.2.1", 0, RQ_EP_HEALTH, err,
                         sizeof(err)) == NULL);
  CHECK_STREQ(err, "cannot listen on 192.0.2.1:0: Cannot assign requested "
              "address");
}

/* rqi_health_start_ports: equal ports share one listener; a port not
 * given starts nothing; a failure leaves nothing listening. */
static void test_start_ports(void)
{
  char err[256] = "", want[128];
  RqHealthServer *sv[2], *taken;
  Reply r;
  int hp;

  rqi_metrics_init(NULL, 0, NULL, 0);
  rqi_health_set_ready(RQ_READY_UP);
  CHECK(rqi_health_start_ports(NULL, 0, 0, sv, err, sizeof(err)) == 0);
  CHECK(sv[0] != NULL && sv[1] == NULL);
  if(sv[0]) {
    fetch(&r, "127.0.0.1", rqi_health_port(sv[0]), "/metrics", "GET", 0);
    CHECK(r.status == 200);
    rq_buf_free(&r.body);
    fetch(&r, "127.0.0.1", rqi_health_port(sv[0]), "/ready", "GET", 0);
    CHECK(r.status == 200);
    rq_buf_free(&r.body);
  }
  rqi_health_stop(sv[0]);

  CHECK(rqi_health_start_ports(NULL, -1, -1, sv, err, sizeof(err)) == 0);
  CHECK(sv[0] == NULL && sv[1] == NULL);
  CHECK(rqi_health_start_ports(NULL, -1, 0, sv, err, sizeof(err)) == 0);
  CHECK(sv[0] == NULL && sv[1] != NULL);
  rqi_health_stop(sv[1]);

  /* The metrics port is taken: the health listener started first is
   * stopped again. */
  taken = rqi_health_start("127.0.0.1", 0, RQ_EP_HEALTH, err, sizeof(err));
  CHECK(taken != NULL);
  if(!taken)
    return;
  CHECK(rqi_health_start_ports("127.0.0.1", 0, rqi_health_port(taken), sv,
                               err, sizeof(err)) == -1);
  CHECK(sv[0] == NULL && sv[1] == NULL);
  snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: Address "
           "already in use", rqi_health_port(taken));
  CHECK_STREQ(err, want);
  /* And the health port taken: nothing is started at all. */
  hp = rqi_health_port(taken);
  CHECK(rqi_health_start_ports("127.0.0.1", hp, 0, sv, err,
                               sizeof(err)) == -1);
  CHECK(sv[0] == NULL && sv[1] == NULL);
  rqi_health_stop(taken);
  rqi_metrics_cleanup();
}

/* Opens a TCP connection to 127.0.0.1:port; -1 on failure. */
static int raw_connect(int port)
{
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  if(fd < 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Clients that send half a request, or nothing, do not hold the server:
 * other requests are still answered. */
static void test_stuck_clients(void)
{
  static const char half[] = "GET /health HTTP/1.1\r\nHost: x\r\n";
  char err[256] = "";
  RqHealthServer *s;
  Reply r;
  int fds[8], i, port;

  rqi_metrics_init(NULL, 0, NULL, 0);
  s = rqi_health_start("127.0.0.1", 0, RQ_EP_HEALTH | RQ_EP_METRICS, err,
                       sizeof(err));
  CHECK(s != NULL);
  if(!s)
    return;
  port = rqi_health_port(s);
  for(i = 0; i < 8; i++) {
    fds[i] = raw_connect(port);
    CHECK(fds[i] >= 0);
    if(fds[i] >= 0 && i % 2 == 0)
      CHECK(write(fds[i], half, sizeof(half) - 1) ==
            (ssize_t)(sizeof(half) - 1));
  }
  fetch(&r, "127.0.0.1", port, "/metrics", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  fetch(&r, "127.0.0.1", port, "/health", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  for(i = 0; i < 8; i++)
    if(fds[i] >= 0)
      close(fds[i]);

  /* Connections are capped: past the cap the server stops accepting
   * (the kernel queues them), so idle clients cost it bounded memory;
   * when they leave, a queued client is served. */
  {
    static const char get[] = "GET /ready HTTP/1.0\r\n\r\n";
    int many[48], n = 0;
    struct pollfd pf;
    char reply_text[64];
    ssize_t got = 0;

    for(i = 0; i < 48; i++) {
      many[i] = raw_connect(port);
      if(many[i] >= 0)
        n++;
    }
    CHECK(n == 48);
    rqi_health_set_ready(RQ_READY_UP);
    if(n == 48) {
      CHECK(write(many[47], get, sizeof(get) - 1) ==
            (ssize_t)(sizeof(get) - 1));
      pf.fd = many[47];
      pf.events = POLLIN;
      pf.revents = 0;
      /* Not served while 47 idle connections hold every slot (a lower
       * bound on time: a slow machine only makes this easier). */
      CHECK(poll(&pf, 1, 300) == 0);
      for(i = 0; i < 47; i++)
        close(many[i]);
      if(poll(&pf, 1, 5000) == 1)
        got = read(many[47], reply_text, sizeof(reply_text) - 1);
      CHECK(got > 12);
      if(got > 0) {
        reply_text[got] = '\0';
        CHECK(strncmp(reply_text, "HTTP/1.", 7) == 0 &&
              strncmp(reply_text + 8, " 200", 4) == 0);
      }
    }
    for(i = n == 48 ? 47 : 0; i < 48; i++)
      if(many[i] >= 0)
        close(many[i]);
  }

  /* Stopping with a stuck connection open returns. */
  fds[0] = raw_connect(port);
  if(fds[0] >= 0)
    CHECK(write(fds[0], half, sizeof(half) - 1) ==
          (ssize_t)(sizeof(half) - 1));
  rqi_health_stop(s);
  if(fds[0] >= 0)
    close(fds[0]);
  rqi_metrics_cleanup();
}

static void test_ipv6(void)
{
  char err[256] = "";
  RqHealthServer *s;
  Reply r;

  rqi_metrics_init(NULL, 0, NULL, 0);
  s = rqi_health_start("::1", 0, RQ_EP_HEALTH, err, sizeof(err));
  if(!s) {
    /* A host without IPv6 loopback: the message must still be ours. */
    CHECK(strncmp(err, "cannot listen on [::1]:0: ", 26) == 0);
    fprintf(stderr, "note: no IPv6 loopback (%s)\n", err);
    rqi_metrics_cleanup();
    return;
  }
  fetch(&r, "[::1]", rqi_health_port(s), "/health", "GET", 0);
  CHECK(r.status == 200);
  rq_buf_free(&r.body);
  /* The IPv4 loopback is not served by an IPv6 listener. */
  fetch(&r, "127.0.0.1", rqi_health_port(s), "/health", "GET", 0);
  CHECK(r.rc != CURLE_OK);
  rq_buf_free(&r.body);
  rqi_health_stop(s);
  /* Bracketed form. */
  s = rqi_health_start("[::1]", 0, RQ_EP_HEALTH, err, sizeof(err));
  CHECK(s != NULL);
  rqi_health_stop(s);
  rqi_metrics_cleanup();
}

int main(void)
{
  rqi_util_init();
  rqi_log_configure(RQ_LOG_ERROR, 0, 1);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  test_one_port();
  test_two_ports();
  test_bind_errors();
  test_start_ports();
  test_stuck_clients();
  test_ipv6();
  curl_global_cleanup();
  return check_report();
}
