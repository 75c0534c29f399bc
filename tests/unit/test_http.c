/* test_http.c -- HTTP steps end to end against build/fakeapi: URL, query
 * and header layering, auth, retries and Retry-After, decoding, the
 * pagination forms and guards, since/checkpoints, and the §6.4 messages.
 *
 * Each case starts fakeapi with a script, runs a one-action mission built
 * from hand-written tables with rqi_exec_run, then checks the run's
 * result, the captured response and fakeapi's report (no unexpected
 * request, none pending).  The fakeapi binary is $FAKEAPI, else
 * $BUILD/fakeapi, else build/fakeapi.
 */
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_limit.h"
#include "check.h"

static char tmpdir[256];
static char base_url[128];
static pid_t server;

/* ------------------------------------------------------------ server */
static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");

  if(!f) {
    perror(path);
    exit(2);
  }
  fputs(text, f);
  fclose(f);
}

static void start_server(const char *script)
{
  char spath[300], ppath[300], rpath[300], exe[512];
  const char *fk = getenv("FAKEAPI"), *build = getenv("BUILD");
  FILE *f;
  int port = 0, i;

  snprintf(spath, sizeof(spath), "%s/script.json", tmpdir);
  snprintf(ppath, sizeof(ppath), "%s/port", tmpdir);
  snprintf(rpath, sizeof(rpath), "%s/report.json", tmpdir);
  snprintf(exe, sizeof(exe), "%s/fakeapi", build ? build : "build");
  write_text(spath, script);
  unlink(ppath);
  server = fork();
  if(server == 0) {
    execl(fk ? fk : exe, "fakeapi", "--script", spath, "--port-file", ppath,
          "--report", rpath, (char *)NULL);
    perror("fakeapi");
    _exit(127);
  }
  for(i = 0; i < 500 && port == 0; i++) {
    struct timespec ts = { 0, 10000000L };
    f = fopen(ppath, "r");
    if(f) {
      if(fscanf(f, "%d", &port) != 1)
        port = 0;
      fclose(f);
    }
    if(!port)
      nanosleep(&ts, NULL);
  }
  if(!port) {
    fprintf(stderr, "fakeapi did not start\n");
    exit(2);
  }
  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/", port);
}

/* Stops the server; returns its report (new). */
static json_t *stop_server(void)
{
  char rpath[300];
  int status;
  json_t *rep;

  kill(server, SIGTERM);
  waitpid(server, &status, 0);
  snprintf(rpath, sizeof(rpath), "%s/report.json", tmpdir);
  rep = json_load_file(rpath, 0, NULL);
  CHECK(rep != NULL);
  return rep;
}

/* Checks a report has no unexpected and no pending requests. */
static void check_clean(json_t *rep, const char *name)
{
  size_t unexp = json_array_size(json_object_get(rep, "unexpected"));
  size_t pend = json_array_size(json_object_get(rep, "pending"));

  if(unexp || pend) {
    char *t = json_dumps(rep, JSON_INDENT(1));
    fprintf(stderr, "%s: report:\n%s\n", name, t);
    free(t);
  }
  CHECK(unexp == 0);
  CHECK(pend == 0);
}

/* ------------------------------------------------ the mission tables */
static json_t *g_query, *g_body, *g_since;
static const char *g_path;
static json_t *cap_resp, *cap_headers;
static int cap_status;

static int fn_base(const RqEnv *e, json_t **out)
{
  *out = json_string(base_url);
  return 0;
}

static int fn_path(const RqEnv *e, json_t **out)
{
  *out = json_string(g_path);
  return 0;
}

static int fn_query(const RqEnv *e, json_t **out)
{
  *out = json_incref(g_query);
  return 0;
}

static int fn_body(const RqEnv *e, json_t **out)
{
  *out = json_incref(g_body);
  return 0;
}

static int fn_since(const RqEnv *e, json_t **out)
{
  *out = json_incref(g_since);
  return 0;
}

static int fn_until(const RqEnv *e, json_t **out)
{
  json_t *v = rq_subject_field(e, "last");

  *out = json_boolean(json_is_true(v));
  json_decref(v);
  return 0;
}

static int fn_src_hdr(const RqEnv *e, json_t **out)
{
  *out = json_string("src");
  return 0;
}

static int fn_step_hdr(const RqEnv *e, json_t **out)
{
  *out = json_string("s");
  return 0;
}

static int fn_accept(const RqEnv *e, json_t **out)
{
  *out = json_string("text/plain");
  return 0;
}

static int fn_capture(const RqEnv *e, json_t **out)
{
  json_decref(cap_resp);
  json_decref(cap_headers);
  cap_resp = rq_response(e);
  cap_status = e->scope->status;
  cap_headers = json_incref(e->scope->headers);
  *out = json_null();
  return 0;
}

static const RqKV src_hdrs[] = {
  { "X-Src", 5, fn_src_hdr },
  { "x-step", 6, fn_src_hdr },
};
static const RqKV step_hdrs[] = {
  { "X-Step", 6, fn_step_hdr },
  { "accept", 6, fn_accept },
};

static RqSourceDef src;
static RqStep steps[2];
static const RqActionDef action = { "Fetch", steps, 2, RQ_AT(0, 1, 1) };
static const int stage_actions[] = { 0 };
static const RqStageDef stage = { stage_actions, 1, false, NULL,
                                  RQ_AT(0, 1, 1) };
static const RqMissionDef mission = {
  .name = "T", .sources = &src, .n_sources = 1, .actions = &action,
  .n_actions = 1, .stages = &stage, .n_stages = 1,
};
static const char *const files[] = { "t.reqon" };

/* Resets the tables to: GET g_path from source API, then capture. */
static void reset(const char *path)
{
  rqi_limit_cleanup();    /* every case starts with fresh source state */
  memset(&src, 0, sizeof(src));
  src.name = "API";
  src.base = fn_base;
  memset(steps, 0, sizeof(steps));
  steps[0].kind = RQ_ST_HTTP;
  steps[0].at = RQ_LOC(0, 2, 3);
  steps[0].label = "get";
  steps[0].method = "GET";
  steps[0].path = fn_path;
  steps[0].retry.max_attempts = 3;
  steps[0].retry.backoff = RQ_BACKOFF_CONSTANT;
  steps[0].retry.initial_ms = 10;
  steps[0].retry.max_ms = 1000;
  steps[0].store = -1;
  steps[1].kind = RQ_ST_LET;
  steps[1].at = RQ_LOC(0, 3, 3);
  steps[1].label = "let";
  steps[1].var = "captured";
  steps[1].expr = fn_capture;
  steps[1].store = -1;
  g_path = path;
  json_decref(g_query);
  json_decref(g_body);
  json_decref(g_since);
  g_query = g_body = g_since = NULL;
  json_decref(cap_resp);
  json_decref(cap_headers);
  cap_resp = cap_headers = NULL;
  cap_status = 0;
}

static int run(RqRunResult *res)
{
  return rqi_exec_run(&mission, files, "once", res);
}

/* Runs the mission against script; returns the run status; res holds
 * the error.  Checks the server saw exactly the script. */
static int run_case(const char *name, const char *script, RqRunResult *res)
{
  json_t *rep;
  int rc;

  start_server(script);
  rc = run(res);
  rep = stop_server();
  check_clean(rep, name);
  json_decref(rep);
  return rc;
}

static bool contains(const char *s, const char *sub)
{
  bool ok = s && strstr(s, sub) != NULL;

  if(!ok)
    fprintf(stderr, "    '%s' lacks '%s'\n", s ? s : "(null)", sub);
  return ok;
}

/* -------------------------------------------------------------- cases */
static void test_encode(void)
{
  RqBuf b = RQ_BUF_INIT(0);

  CHECK(rqi_http_pct_encode(&b, "a b+c/~_.-\xc3\xa9", 12) == 0);
  CHECK_STRFREE(b.data, "a%20b%2Bc%2F~_.-%C3%A9");
}

static void test_layering(void)
{
  RqRunResult res;

  reset("q?x=1");
  g_query = json_loads("{\"a\":[1,2],\"s\":\"x y\",\"o\":{\"k\":1},"
                       "\"n\":null,\"b\":true,\"f\":1.5,\"p\":\"a+b/c\"}",
                       0, NULL);
  g_body = json_loads("{\"g\":\"h\"}", 0, NULL);
  src.headers = src_hdrs;
  src.n_headers = 2;
  steps[0].headers = step_hdrs;
  steps[0].n_headers = 2;
  steps[0].query = fn_query;
  steps[0].body = fn_body;
  CHECK(run_case("layering",
    "[{\"request\":{\"path\":\"/q\",\"query\":{\"x\":\"1\",\"a\":[\"1\","
    "\"2\"],\"s\":\"x y\",\"o\":\"{\\\"k\\\":1}\",\"b\":\"true\","
    "\"f\":\"1.5\",\"p\":\"a+b/c\",\"g\":\"h\"},\"headers\":{\"X-Step\":"
    "\"s\",\"X-Src\":\"src\",\"Accept\":\"text/plain\",\"User-Agent\":"
    "\"reqon/0.1.0\",\"Content-Type\":null}},\"response\":{\"headers\":"
    "{\"X-Thing\":\"v\"},\"body\":{\"ok\":1}}}]", &res) == 0);
  CHECK(cap_status == 200);
  CHECK(json_integer_value(json_object_get(cap_resp, "ok")) == 1);
  CHECK_STREQ(json_string_value(json_object_get(cap_headers, "x-thing")),
              "v");
}

static void test_retry_then_ok(void)
{
  RqRunResult res;

  reset("/items");
  CHECK(run_case("retry",
    "[{\"request\":{\"path\":\"/items\"},\"response\":{\"status\":503,"
    "\"body\":{\"error\":\"unavailable\"}}},"
    "{\"request\":{\"path\":\"/items\"},\"response\":{\"status\":429,"
    "\"body\":{\"e\":1},\"headers\":{\"Retry-After\":\"0\"}}},"
    "{\"request\":{\"path\":\"/items\"},\"response\":{\"body\":"
    "[{\"id\":1}]}}]", &res) == 0);
  CHECK(json_array_size(cap_resp) == 1);

  /* Retry-After as an HTTP-date in the past: retry at once. */
  reset("/items");
  steps[0].retry.initial_ms = 20000;
  CHECK(run_case("retry-after-date",
    "[{\"request\":{\"path\":\"/items\"},\"response\":{\"status\":429,"
    "\"body\":{},\"headers\":{\"Retry-After\":"
    "\"Wed, 21 Oct 2015 07:28:00 GMT\"}}},"
    "{\"request\":{\"path\":\"/items\"},\"response\":{\"body\":[]}}]",
    &res) == 0);
}

static void test_5xx_fails(void)
{
  RqRunResult res;

  reset("/items");
  steps[0].retry.max_attempts = 2;
  CHECK(run_case("5xx",
    "[{\"request\":{\"path\":\"/items\"},\"response\":{\"status\":500,"
    "\"body\":{\"error\":\"boom\"}},\"times\":2}]", &res) == 1);
  CHECK(contains(res.error, "HTTP 500 from API GET /items after 2 "
                            "attempts"));

  reset("/items");
  steps[0].retry.max_attempts = 2;
  steps[0].next_is_match = true;
  CHECK(run_case("5xx-match",
    "[{\"request\":{\"path\":\"/items\"},\"response\":{\"status\":502,"
    "\"body\":{\"error\":\"boom\"}},\"times\":2}]", &res) == 0);
  CHECK(cap_status == 502);
  CHECK_STREQ(json_string_value(json_object_get(cap_resp, "error")),
              "boom");
}

static void test_404(void)
{
  RqRunResult res;

  reset("/users/2");
  CHECK(run_case("404",
    "[{\"request\":{\"path\":\"/users/2\"},\"response\":{\"status\":404,"
    "\"body\":{\"error\":\"nf\"}}}]", &res) == 1);
  CHECK(contains(res.error, "HTTP 404 from API GET /users/2"));
  CHECK(!contains(res.error, "attempts"));

  reset("/users/2");
  steps[0].next_is_match = true;
  CHECK(run_case("404-match",
    "[{\"request\":{\"path\":\"/users/2\"},\"response\":{\"status\":404,"
    "\"body\":{\"error\":\"nf\"}}}]", &res) == 0);
  CHECK(cap_status == 404);
  CHECK_STREQ(json_string_value(json_object_get(cap_resp, "error")), "nf");
}

static void test_cursor(void)
{
  RqRunResult res;

  reset("/logs");
  steps[0].pg_kind = RQ_PG_CURSOR;
  steps[0].pg_param = "cursor";
  steps[0].pg_size = 2;
  steps[0].pg_cursor_path = "meta.next";
  steps[0].pg_size_param = "limit";
  CHECK(run_case("cursor",
    "[{\"request\":{\"path\":\"/logs\",\"query\":{\"limit\":\"2\"}},"
    "\"response\":{\"body\":{\"data\":[{\"id\":\"l1\"},{\"id\":\"l2\"}],"
    "\"meta\":{\"next\":\"c2\"}}}},"
    "{\"request\":{\"path\":\"/logs\",\"query\":{\"cursor\":\"c2\","
    "\"limit\":\"2\"}},\"response\":{\"headers\":{\"X-Page\":\"2\"},"
    "\"body\":{\"data\":[{\"id\":\"l3\"}],\"meta\":{\"next\":null}}}}]",
    &res) == 0);
  CHECK(json_array_size(cap_resp) == 3);
  CHECK_STREQ(json_string_value(json_object_get(cap_headers, "x-page")),
              "2");

  reset("/logs");
  steps[0].pg_kind = RQ_PG_CURSOR;
  steps[0].pg_param = "cursor";
  steps[0].pg_size = 2;
  steps[0].pg_cursor_path = "next";
  CHECK(run_case("cursor-stuck",
    "[{\"request\":{\"path\":\"/logs\",\"query\":{}},"
    "\"response\":{\"body\":{\"data\":[1],\"next\":\"c1\"}}},"
    "{\"request\":{\"path\":\"/logs\",\"query\":{\"cursor\":\"c1\"}},"
    "\"response\":{\"body\":{\"data\":[2],\"next\":\"c1\"}}}]",
    &res) == 1);
  CHECK(contains(res.error, "pagination is not advancing for API GET "
                            "/logs"));
}

static void test_offset_until(void)
{
  RqRunResult res;

  reset("/o");
  steps[0].pg_kind = RQ_PG_OFFSET;
  steps[0].pg_param = "offset";
  steps[0].pg_size = 2;
  steps[0].until = fn_until;
  CHECK(run_case("offset-until",
    "[{\"request\":{\"path\":\"/o\",\"query\":{\"offset\":\"0\"}},"
    "\"response\":{\"body\":{\"items\":[1,2]}}},"
    "{\"request\":{\"path\":\"/o\",\"query\":{\"offset\":\"2\"}},"
    "\"response\":{\"body\":{\"items\":[3,4],\"last\":true}}}]",
    &res) == 0);
  CHECK(json_array_size(cap_resp) == 4);
}

static void test_page_limits(void)
{
  RqRunResult res;

  reset("/items");
  steps[0].pg_kind = RQ_PG_PAGE;
  steps[0].pg_param = "page";
  steps[0].pg_size = 2;
  steps[0].pg_size_param = "limit";
  CHECK(run_case("page",
    "[{\"request\":{\"path\":\"/items\",\"query\":{\"page\":\"1\","
    "\"limit\":\"2\"}},\"response\":{\"body\":[{\"id\":\"a\"},"
    "{\"id\":\"b\"}]}},"
    "{\"request\":{\"path\":\"/items\",\"query\":{\"page\":\"2\","
    "\"limit\":\"2\"}},\"response\":{\"body\":[{\"id\":\"c\"}]}}]",
    &res) == 0);
  CHECK(json_array_size(cap_resp) == 3);

  reset("/items");
  steps[0].pg_kind = RQ_PG_PAGE;
  steps[0].pg_param = "page";
  steps[0].pg_size = 1;
  steps[0].max_pages = 2;
  CHECK(run_case("max-pages",
    "[{\"request\":{\"path\":\"/items\",\"query\":{\"page\":\"1\"}},"
    "\"response\":{\"body\":[1]}},"
    "{\"request\":{\"path\":\"/items\",\"query\":{\"page\":\"2\"}},"
    "\"response\":{\"body\":[2]}}]", &res) == 1);
  CHECK(contains(res.error, "pagination limit (2 pages) reached for API "
                            "GET /items; raise maxPages"));

  /* The body goes with every page; a numeric cursor is sent as text. */
  reset("/search");
  steps[0].method = "POST";
  steps[0].body = fn_body;
  g_body = json_loads("{\"q\":\"x\"}", 0, NULL);
  steps[0].pg_kind = RQ_PG_CURSOR;
  steps[0].pg_param = "after";
  steps[0].pg_size = 10;
  steps[0].pg_cursor_path = "next";
  CHECK(run_case("post-pages",
    "[{\"request\":{\"method\":\"POST\",\"path\":\"/search\","
    "\"query\":{},\"body\":{\"q\":\"x\"}},\"response\":{\"body\":"
    "{\"next\":7,\"hits\":[1]}}},"
    "{\"request\":{\"method\":\"POST\",\"path\":\"/search\","
    "\"query\":{\"after\":\"7\"},\"body\":{\"q\":\"x\"}},"
    "\"response\":{\"body\":{\"next\":0,\"hits\":[2]}}}]",
    &res) == 0);
  CHECK(json_array_size(cap_resp) == 2);

  /* A non-2xx page ends pagination; with a match it is the response. */
  reset("/items");
  steps[0].pg_kind = RQ_PG_PAGE;
  steps[0].pg_param = "page";
  steps[0].pg_size = 1;
  steps[0].next_is_match = true;
  CHECK(run_case("page-404",
    "[{\"request\":{\"path\":\"/items\",\"query\":{\"page\":\"1\"}},"
    "\"response\":{\"body\":[1]}},"
    "{\"request\":{\"path\":\"/items\",\"query\":{\"page\":\"2\"}},"
    "\"response\":{\"status\":410,\"body\":{\"gone\":true}}}]",
    &res) == 0);
  CHECK(cap_status == 410);
  CHECK(json_is_true(json_object_get(cap_resp, "gone")));
}

static void test_post_env_auth(void)
{
  RqRunResult res;

  reset("/records/DEMO/tasks");
  src.name = "CRM";
  src.auth = RQ_AUTH_BEARER;
  src.auth_scheme = "CMW_AUTH_CODE";
  steps[0].method = "POST";
  steps[0].body = fn_body;
  g_body = json_loads("{\"title\":\"Call back\",\"priority\":2}", 0, NULL);
  setenv("REQON_CRM_TOKEN", "secret-tok-9", 1);
  rqi_auth_check_mission(&mission);
  CHECK(run_case("post-auth",
    "[{\"request\":{\"method\":\"POST\",\"path\":\"/records/DEMO/tasks\","
    "\"headers\":{\"Authorization\":\"CMW_AUTH_CODE secret-tok-9\","
    "\"Content-Type\":{\"regex\":\"application/json.*\"}},"
    "\"body\":{\"title\":\"Call back\",\"priority\":2}},"
    "\"response\":{\"status\":201,\"body\":{\"id\":\"r-1\"}}}]",
    &res) == 0);
  CHECK(cap_status == 201);
  unsetenv("REQON_CRM_TOKEN");
}

static void test_auth_file(void)
{
  RqRunResult res;
  char path[300];

  snprintf(path, sizeof(path), "%s/creds.json", tmpdir);
  setenv("T_KEY", "k-123456", 1);
  write_text(path, "{\"API\":{\"type\":\"api_key\",\"apiKey\":\"${T_KEY}\","
                   "\"query\":\"${T_Q:-api_key}\"},"
                   "\"B\":{\"type\":\"basic\",\"username\":\"u$$\","
                   "\"password\":\"$T_KEY\"}}");
  CHECK(rqi_auth_load(path) == 0);
  reset("/k");
  CHECK(run_case("api-key-query",
    "[{\"request\":{\"path\":\"/k\",\"query\":{\"api_key\":\"k-123456\"}},"
    "\"response\":{\"body\":1}}]", &res) == 0);
  reset("/b");
  src.name = "B";
  src.auth = RQ_AUTH_BASIC;
  /* base64("u$:k-123456") */
  CHECK(run_case("basic",
    "[{\"request\":{\"path\":\"/b\",\"headers\":{\"Authorization\":"
    "\"Basic dSQ6ay0xMjM0NTY=\"}},\"response\":{\"body\":1}}]",
    &res) == 0);
  write_text(path, "[1]");
  CHECK(rqi_auth_load(path) == -1);
  CHECK(rqi_auth_load(NULL) == 0);
  unsetenv("T_KEY");
}

static void test_since(void)
{
  RqRunResult res;
  const char *script =
    "[{\"request\":{\"path\":\"/c/\",\"query\":{\"since\":"
    "\"1970-01-01T00:00:00.000Z\"}},\"response\":{\"body\":[{\"id\":1}]}},"
    "{\"request\":{\"path\":\"/c/\",\"query\":{\"since\":{\"regex\":"
    "\"20\\\\d\\\\d-\\\\d\\\\d-\\\\d\\\\dT\\\\d\\\\d:\\\\d\\\\d:\\\\d\\\\d"
    "\\\\.\\\\d{3}Z\"}}},\"response\":{\"body\":[]}},"
    "{\"request\":{\"path\":\"/c/\",\"query\":{\"updated\":\"1970-01-01\"}},"
    "\"response\":{\"body\":{\"x\":\"2025-03-04T05:06:07Z\"}}},"
    "{\"request\":{\"path\":\"/c/\",\"query\":{\"updated\":\"2025-03-04\"}},"
    "\"response\":{\"body\":[]}},"
    "{\"request\":{\"path\":\"/c/\",\"query\":{\"since\":\"abc\"}},"
    "\"response\":{\"body\":[]}}]";
  json_t *rep;

  reset("/c/");
  steps[0].since_kind = RQ_SINCE_LASTSYNC;
  start_server(script);
  CHECK(run(&res) == 0);
  CHECK(run(&res) == 0);
  /* An explicit key, date-only format, the time taken from the body. */
  steps[0].since_key = "fixed";
  steps[0].since_param = "updated";
  steps[0].since_format = "date-only";
  steps[0].since_update_from = "x";
  CHECK(run(&res) == 0);
  CHECK(run(&res) == 0);
  steps[0].since_kind = RQ_SINCE_EXPR;
  steps[0].since_param = NULL;
  steps[0].since_expr = fn_since;
  g_since = json_string("abc");
  CHECK(run(&res) == 0);
  rep = stop_server();
  check_clean(rep, "since");
  json_decref(rep);
}

static void test_decoding(void)
{
  RqRunResult res;

  reset("/bad");
  CHECK(run_case("invalid-json",
    "[{\"request\":{\"path\":\"/bad\"},\"response\":{\"body_text\":"
    "\"nope\",\"headers\":{\"Content-Type\":\"application/json\"}}}]",
    &res) == 1);
  CHECK(contains(res.error, "invalid JSON from API GET /bad: "));

  reset("/t");
  CHECK(run_case("text",
    "[{\"request\":{\"path\":\"/t\"},\"response\":{\"body_text\":"
    "\"hi\"}}]", &res) == 0);
  CHECK_STREQ(json_string_value(cap_resp), "hi");

  reset("/n");
  CHECK(run_case("204",
    "[{\"request\":{\"path\":\"/n\"},\"response\":{\"status\":204}}]",
    &res) == 0);
  CHECK(json_is_null(cap_resp));
  CHECK(cap_status == 204);
}

static void test_transport(void)
{
  RqRunResult res;

  reset("/r");
  CHECK(run_case("retry-after-cap",
    "[{\"request\":{\"path\":\"/r\"},\"response\":{\"status\":429,"
    "\"headers\":{\"Retry-After\":\"1000\"},\"body\":{}}}]", &res) == 1);
  CHECK(contains(res.error, "rate limit wait 1000s exceeds maxWait 300s "
                            "for API"));

  reset("/r");
  steps[0].retry.max_attempts = 2;
  steps[0].timeout_ms = 200;
  CHECK(run_case("timeout",
    "[{\"request\":{\"path\":\"/r\"},\"response\":{\"delay_ms\":600,"
    "\"body\":1},\"times\":2}]", &res) == 1);
  CHECK(contains(res.error, "GET http://127.0.0.1:"));
  CHECK(contains(res.error, "timed out"));

  reset("/r");
  steps[0].retry.max_attempts = 1;
  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:1");
  CHECK(run(&res) == 1);
  CHECK(contains(res.error, "GET http://127.0.0.1:1/r: "));
}

/* §6.5: without maxPages the limit is 1000 pages (the reference stopped
 * silently at 100): 1000 full pages are fetched, and needing page 1001
 * fails the step without requesting it. */
static void test_default_max_pages(void)
{
  RqBuf b = RQ_BUF_INIT(0);
  RqRunResult res;
  int i;

  reset("/many");
  steps[0].pg_kind = RQ_PG_PAGE;
  steps[0].pg_param = "page";
  steps[0].pg_size = 1;
  rq_buf_add(&b, "[", 1);
  for(i = 1; i <= 1000; i++)
    rq_buf_addf(&b, "%s{\"request\":{\"path\":\"/many\",\"query\":"
                "{\"page\":\"%d\"}},\"response\":{\"body\":[%d]}}",
                i > 1 ? "," : "", i, i);
  rq_buf_add(&b, "]", 1);
  CHECK(run_case("default-max-pages", b.data, &res) == 1);
  CHECK(contains(res.error, "pagination limit (1000 pages) reached for "
                            "API GET /many; raise maxPages"));
  CHECK(cap_resp == NULL);
  rq_buf_free(&b);
}

/* ------------------------------------------------ a raw HTTP server */
/* fakeapi always sends a Content-Type and holds its bodies in memory, so
 * responses without a Content-Type and bodies beyond the 64 MiB cap come
 * from this one-thread server: it answers each of raw.conns connections
 * with raw.head and then raw.body_len bytes of 'x' (closing the
 * connection ends a body without Content-Length). */
static struct {
  int fd;
  int conns;          /* connections to answer */
  int served;         /* connections accepted */
  const char *head;   /* status line and headers, "\r\n\r\n" included */
  const char *body;   /* NULL: body_len bytes of 'x' */
  size_t body_len;
  pthread_t thread;
} raw;

static void raw_send(int fd, const char *p, size_t n)
{
  ssize_t w;

  while(n > 0 && (w = send(fd, p, n, MSG_NOSIGNAL)) > 0) {
    p += w;
    n -= (size_t)w;
  }
}

static void *raw_main(void *arg)
{
  static char chunk[65536];
  char req[4096];
  size_t left;
  int fd;

  memset(chunk, 'x', sizeof(chunk));
  while(raw.served < raw.conns) {
    fd = accept(raw.fd, NULL, NULL);
    if(fd < 0)
      break;
    raw.served++;
    /* The requests are small GETs: one read holds the headers. */
    if(recv(fd, req, sizeof(req), 0) > 0) {
      raw_send(fd, raw.head, strlen(raw.head));
      if(raw.body)
        raw_send(fd, raw.body, raw.body_len);
      for(left = raw.body ? 0 : raw.body_len; left > 0;) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        raw_send(fd, chunk, n);
        left -= n;
      }
    }
    close(fd);
  }
  return NULL;
}

/* Starts the raw server for conns connections; base_url points to it. */
static void raw_start(int conns, const char *head, const char *body,
                      size_t body_len)
{
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);

  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  raw.fd = socket(AF_INET, SOCK_STREAM, 0);
  if(raw.fd < 0 || bind(raw.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
     listen(raw.fd, 8) != 0 ||
     getsockname(raw.fd, (struct sockaddr *)&sa, &sl) != 0) {
    perror("raw server");
    exit(2);
  }
  raw.conns = conns;
  raw.served = 0;
  raw.head = head;
  raw.body = body;
  raw.body_len = body_len;
  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d",
           ntohs(sa.sin_port));
  pthread_create(&raw.thread, NULL, raw_main, NULL);
}

/* Stops the raw server; returns the number of connections it accepted. */
static int raw_stop(void)
{
  shutdown(raw.fd, SHUT_RDWR);    /* wakes a pending accept() */
  pthread_join(raw.thread, NULL);
  close(raw.fd);
  return raw.served;
}

/* §6.4 step 6: with no Content-Type at all the body is parsed as JSON,
 * and a parse failure is `invalid JSON ...: <reason> at line:col`. */
static void test_no_content_type(void)
{
  static const char good[] = "{\"a\":[1,\"t\"]}";
  static const char bad[] = "{\"a\": 1,\n \"b\": }";
  static char head[160];
  RqRunResult res;

  reset("/j");
  snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
           "Connection: close\r\n\r\n", sizeof(good) - 1);
  raw_start(1, head, good, sizeof(good) - 1);
  CHECK(run(&res) == 0);
  CHECK(raw_stop() == 1);
  CHECK(json_is_object(cap_resp));
  CHECK(json_integer_value(json_array_get(json_object_get(cap_resp, "a"),
                                          0)) == 1);

  reset("/j");
  snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
           "Connection: close\r\n\r\n", sizeof(bad) - 1);
  raw_start(3, head, bad, sizeof(bad) - 1);
  CHECK(run(&res) == 1);
  CHECK(raw_stop() == 1);    /* not retried */
  CHECK(contains(res.error, "invalid JSON from API GET /j: "));
  CHECK(contains(res.error, " at 2:7"));
}

/* §6.4: a body beyond RQ_HTTP_MAX_BODY (64 MiB) is refused, whether the
 * server announces it (Content-Length) or just keeps sending; a body of
 * exactly the cap is read.  The failure is not retried. */
static void test_body_cap(void)
{
  static char head[160];
  RqHttpRequest rq;
  RqHttpResponse rs;
  RqRunResult res;
  char url[200];
  int rc;

  memset(&rq, 0, sizeof(rq));
  rq.method = "GET";
  rq.url = url;

  snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: "
           "text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
           RQ_HTTP_MAX_BODY);
  raw_start(1, head, NULL, RQ_HTTP_MAX_BODY);
  snprintf(url, sizeof(url), "%s/exact", base_url);
  rc = rqi_http_send(&rq, &rs);
  CHECK(rc == 0);
  CHECK(rs.status == 200 && rs.body.len == RQ_HTTP_MAX_BODY);
  rqi_http_response_free(&rs);
  raw_stop();

  snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: "
           "text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
           RQ_HTTP_MAX_BODY + 1);
  raw_start(1, head, NULL, RQ_HTTP_MAX_BODY + 1);
  snprintf(url, sizeof(url), "%s/announced", base_url);
  rc = rqi_http_send(&rq, &rs);
  CHECK(rc == -1 && rs.too_large);
  CHECK(contains(rs.error, "response body exceeds 64 MiB"));
  rqi_http_response_free(&rs);
  raw_stop();

  /* No Content-Length: the body ends when the connection closes. */
  reset("/big");
  raw_start(3, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            "Connection: close\r\n\r\n", NULL, RQ_HTTP_MAX_BODY + 1);
  CHECK(run(&res) == 1);
  CHECK(raw_stop() == 1);
  CHECK(contains(res.error, "GET http://127.0.0.1:"));
  CHECK(contains(res.error, "/big: response body exceeds 64 MiB"));
}

/* Only http and https: a file:// URL is refused by libcurl itself (it
 * would otherwise read the local file), and a step whose base is
 * file://... fails at once with a clear message, without attempts. */
static void test_protocols(void)
{
  RqHttpRequest rq;
  RqHttpResponse rs;
  RqRunResult res;
  char path[300], url[400];

  snprintf(path, sizeof(path), "%s/local.json", tmpdir);
  write_text(path, "{\"local\": true}");
  snprintf(url, sizeof(url), "file://%s", path);
  memset(&rq, 0, sizeof(rq));
  rq.method = "GET";
  rq.url = url;
  CHECK(rqi_http_send(&rq, &rs) == -1);
  CHECK(rs.status == 0 && rs.body.len == 0);
  CHECK(rs.error[0] != '\0');
  rqi_http_response_free(&rs);

  reset("/local.json");
  snprintf(base_url, sizeof(base_url), "file://%.100s", tmpdir);
  CHECK(run(&res) == 1);
  CHECK(contains(res.error, "GET file://"));
  CHECK(contains(res.error, "/local.json: unsupported protocol \"file\" "
                            "(only http and https)"));
  CHECK(cap_resp == NULL);
}

static void *stop_later(void *arg)
{
  struct timespec ts = { 0, 200000000L };

  nanosleep(&ts, NULL);
  rqi_stop_requested = 1;
  return NULL;
}

/* A stop request aborts a transfer in progress, and a backoff sleep. */
static void check_interrupt(const char *name, const char *script)
{
  RqRunResult res;
  pthread_t t;
  double t0, took;
  json_t *rep;

  start_server(script);
  pthread_create(&t, NULL, stop_later, NULL);
  t0 = rq_mono_ms();
  CHECK(run(&res) != 0);
  took = rq_mono_ms() - t0;
  pthread_join(t, NULL);
  rqi_stop_requested = 0;
  rep = stop_server();
  json_decref(rep);
  CHECK(res.status == 3);
  CHECK(took < 1000);
  if(res.status != 3 || took >= 1000)
    fprintf(stderr, "    %s: status %d after %.0fms: %s\n", name,
            res.status, took, res.error);
}

static void test_interrupt(void)
{
  reset("/slow");
  check_interrupt("interrupt-transfer",
    "[{\"request\":{\"path\":\"/slow\"},\"response\":{\"delay_ms\":"
    "1500,\"body\":1}}]");
  reset("/slow");
  steps[0].retry.initial_ms = 5000;
  check_interrupt("interrupt-sleep",
    "[{\"request\":{\"path\":\"/slow\"},\"response\":{\"status\":"
    "503,\"body\":1}}]");
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
  return remove(path);
}

int main(void)
{
  char data[300];

  snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_http.XXXXXX");
  if(!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  snprintf(data, sizeof(data), "%s/data", tmpdir);
  rqi_opts.data_dir = data;
  rqi_log_configure(getenv("VERBOSE") ? RQ_LOG_DEBUG : RQ_LOG_WARN, 0, 1);
  rqi_util_init();
  rqi_http_global_init();

  test_encode();
  test_layering();
  test_retry_then_ok();
  test_5xx_fails();
  test_404();
  test_cursor();
  test_offset_until();
  test_page_limits();
  test_post_env_auth();
  test_auth_file();
  test_since();
  test_decoding();
  test_transport();
  test_default_max_pages();
  test_no_content_type();
  test_body_cap();
  test_protocols();
  test_interrupt();

  reset("/");
  rqi_auth_free();
  rqi_http_global_cleanup();
  rqi_store_shutdown();
  rqi_log_shutdown();
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return check_report();
}
