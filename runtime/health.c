/* health.c -- the /health, /ready and /metrics HTTP server of SPEC
 * §10.3 and §10.4 (libmicrohttpd).
 *
 * We create, bind and listen on the socket ourselves, so that a bind
 * failure carries its errno ("cannot listen on ADDR:PORT: Address
 * already in use", exit 4 in the daemon), then hand it to MHD.  One
 * internal polling thread serves every connection: each reply is built
 * in memory from the registry in microseconds, so nothing blocks it.
 * A stuck client cannot hold the daemon: connections are capped, idle
 * ones time out, headers are bounded by the connection memory limit, and
 * every reply is queued on the first call of the handler, before any
 * request body, so a body is never read (MHD closes such a connection
 * after the reply).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_metrics.h"

#define HEALTH_MAX_CONNECTIONS 32
#define HEALTH_TIMEOUT_S 10       /* idle connection timeout */
#define HEALTH_MEMORY_LIMIT (32 * 1024)  /* per connection: headers */

struct RqHealthServer {
  struct MHD_Daemon *d;
  unsigned mask;
  int port;
};

static volatile int ready_state = RQ_READY_STARTING;

void rqi_health_set_ready(RqReadyState s)
{
  __atomic_store_n(&ready_state, (int)s, __ATOMIC_SEQ_CST);
}

/* MHD's own diagnostics (malformed requests, ...) at DEBUG: they are
 * about clients, not about the daemon.  cls names the server. */
void rqi_mhd_log(void *cls, const char *fmt, va_list ap)
{
  char line[512];
  size_t n;

  vsnprintf(line, sizeof(line), fmt, ap);
  n = strlen(line);
  while(n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  rq_log(RQ_LOG_DEBUG, NULL, "%s: %s", (const char *)cls, line);
}

/* Queues a reply; body is NEW text that this function frees (NULL: an
 * empty body). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *ctype, char *body)
{
  struct MHD_Response *r;
  enum MHD_Result ret;
  size_t len = body ? strlen(body) : 0;

  r = MHD_create_response_from_buffer(len, body ? body : (void *)"",
                                      MHD_RESPMEM_MUST_COPY);
  rq_free(body);
  if(!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", ctype);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  if(status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, "Allow", "GET, HEAD");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload, size_t *upload_size,
                                  void **cc)
{
  const RqHealthServer *s = cls;
  static const char text[] = "text/plain; charset=utf-8";

  /* Everything is answered on the first call, before any body arrives
   * (and without "100 Continue"), so no body is ever read. */
  if(*cc)
    return MHD_NO;
  *cc = (void *)1;
  if(strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text,
                 rq_strdup("method not allowed\n"));
  if((s->mask & RQ_EP_HEALTH) && strcmp(url, "/health") == 0) {
    json_t *doc = rqi_metrics_health(RQ_VERSION);
    /* jansson allocates with rq_malloc (rqi_util_init) or malloc, and
     * rq_free is free() either way. */
    char *body = json_dumps(doc, JSON_PRESERVE_ORDER | JSON_COMPACT);

    json_decref(doc);
    if(!body)
      return MHD_NO;
    return reply(c, MHD_HTTP_OK, "application/json", body);
  }
  if((s->mask & RQ_EP_HEALTH) && strcmp(url, "/ready") == 0) {
    int st = __atomic_load_n(&ready_state, __ATOMIC_SEQ_CST);

    if(st == RQ_READY_UP)
      return reply(c, MHD_HTTP_OK, text, rq_strdup("ready\n"));
    return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text,
                 rq_strdup(st == RQ_READY_DRAINING ? "shutting down\n"
                                                   : "starting\n"));
  }
  if((s->mask & RQ_EP_METRICS) && strcmp(url, "/metrics") == 0)
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; "
                 "charset=utf-8", rqi_metrics_render());
  return reply(c, MHD_HTTP_NOT_FOUND, text, rq_strdup("not found\n"));
}

/* Parses addr into *ss; false when it is not an IP literal. */
static bool parse_addr(const char *addr, int port,
                       struct sockaddr_storage *ss, socklen_t *len)
{
  char buf[64];
  size_t n = strlen(addr);
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

  memset(ss, 0, sizeof(*ss));
  if(inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof(*v4);
    return true;
  }
  if(n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
    if(n - 2 >= sizeof(buf))
      return false;
    memcpy(buf, addr + 1, n - 2);
    buf[n - 2] = '\0';
  }
  else {
    if(n >= sizeof(buf))
      return false;
    memcpy(buf, addr, n + 1);
  }
  if(inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*v6);
    return true;
  }
  return false;
}

/* "ADDR:PORT" for messages, IPv6 in brackets (rq_metrics.h). */
void rqi_listen_addr_text(const char *addr, int port, char *out, size_t n)
{
  bool v6 = strchr(addr, ':') && addr[0] != '[';

  snprintf(out, n, "%s%s%s:%d", v6 ? "[" : "", addr, v6 ? "]" : "",
           port);
}

/* A bound, listening, non-blocking socket, or -1 with err set; shared
 * with the webhook listener (rq_metrics.h). */
int rqi_listen_socket(const char *addr, int port, int *bound, char *err,
                     size_t errlen)
{
  struct sockaddr_storage ss;
  socklen_t len = 0;
  char where[128];
  int fd, one = 1, e;

  rqi_listen_addr_text(addr, port, where, sizeof(where));
  if(port < 0 || port > 65535) {
    snprintf(err, errlen, "cannot listen on %s: invalid port", where);
    return -1;
  }
  if(!parse_addr(addr, port, &ss, &len)) {
    snprintf(err, errlen, "cannot listen on %s: not an IPv4 or IPv6 "
             "address", where);
    return -1;
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if(fd < 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", where,
             strerror(errno));
    return -1;
  }
  /* SO_REUSEADDR lets a restarted daemon bind past TIME_WAIT; on Linux
   * it never lets two listeners share a port. */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if(ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if(bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) {
    e = errno;
    close(fd);
    snprintf(err, errlen, "cannot listen on %s: %s", where, strerror(e));
    return -1;
  }
  *bound = port;
  if(getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
    *bound = ntohs(ss.ss_family == AF_INET6 ?
                   ((struct sockaddr_in6 *)&ss)->sin6_port :
                   ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

RqHealthServer *rqi_health_start(const char *addr, int port, unsigned mask,
                                 char *err, size_t errlen)
{
  char where[128];
  RqHealthServer *s;
  int fd, bound = port;

  if(!addr || !*addr)
    addr = "127.0.0.1";
  fd = rqi_listen_socket(addr, port, &bound, err, errlen);
  if(fd < 0)
    return NULL;
  s = rq_calloc(1, sizeof(*s));
  s->mask = mask;
  s->port = bound;
  rqi_listen_addr_text(addr, s->port, where, sizeof(where));
  s->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG,
                          0, NULL, NULL, on_request, s,
                          /* First, so MHD's own option warnings reach
                           * our logger too. */
                          MHD_OPTION_EXTERNAL_LOGGER, rqi_mhd_log,
                          (void *)"health server",
                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                          MHD_OPTION_CONNECTION_LIMIT,
                          (unsigned int)HEALTH_MAX_CONNECTIONS,
                          MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned int)HEALTH_TIMEOUT_S,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                          (size_t)HEALTH_MEMORY_LIMIT,
                          MHD_OPTION_END);
  if(!s->d) {
    /* MHD may already have closed fd on its failure path; closing it
     * again could close another thread's descriptor, so it is left
     * alone (the daemon exits 4 right after). */
    snprintf(err, errlen, "cannot listen on %s: cannot start the HTTP "
             "server", where);
    rq_free(s);
    return NULL;
  }
  rq_log(RQ_LOG_INFO, NULL, "Listening on %s (%s%s%s)", where,
         (mask & RQ_EP_HEALTH) ? "/health /ready" : "",
         (mask & RQ_EP_HEALTH) && (mask & RQ_EP_METRICS) ? " " : "",
         (mask & RQ_EP_METRICS) ? "/metrics" : "");
  return s;
}

int rqi_health_start_ports(const char *addr, int health_port,
                           int metrics_port, RqHealthServer *out[2],
                           char *err, size_t errlen)
{
  out[0] = out[1] = NULL;
  if(health_port >= 0 && health_port == metrics_port) {
    out[0] = rqi_health_start(addr, health_port,
                              RQ_EP_HEALTH | RQ_EP_METRICS, err, errlen);
    return out[0] ? 0 : -1;
  }
  if(health_port >= 0) {
    out[0] = rqi_health_start(addr, health_port, RQ_EP_HEALTH, err,
                              errlen);
    if(!out[0])
      return -1;
  }
  if(metrics_port >= 0) {
    out[1] = rqi_health_start(addr, metrics_port, RQ_EP_METRICS, err,
                              errlen);
    if(!out[1]) {
      rqi_health_stop(out[0]);
      out[0] = NULL;
      return -1;
    }
  }
  return 0;
}

int rqi_health_port(const RqHealthServer *s)
{
  return s ? s->port : 0;
}

void rqi_health_stop(RqHealthServer *s)
{
  if(!s)
    return;
  MHD_stop_daemon(s->d);   /* joins its thread, closes the socket */
  rq_free(s);
}
