/* test_auth.c -- unit tests of auth.c's OAuth2 support (SPEC §6.1, §8.4):
 * the refresh form body, the expiry decision, token files overriding the
 * credentials at load time, invalid token and credentials files, and
 * refreshes against $BUILD/fakeapi: the request sent, the token file
 * written (0600 in a 0700 directory), generations, single flight across
 * threads, failures and their messages, --dry-run.  stderr is captured
 * to check that no token ever reaches it.  Runs in a fresh directory
 * under $TMPDIR. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "rq_internal.h"
#include "check.h"

/* Defined in auth.c for these tests (not in rq_http.h). */
char *rqi_auth_form_body(const json_t *cred);
bool rqi_auth_expiring(const json_t *cred, double now_ms);

static char tmpdir[512];
static char base_url[128];
static pid_t server;

/* ------------------------------------------------------------ helpers */
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

/* The whole file at path (malloc'd), or NULL. */
static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  char *s;
  long n;

  if(!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  s = malloc((size_t)n + 1);
  if(fread(s, 1, (size_t)n, f) != (size_t)n)
    n = 0;
  s[n] = '\0';
  fclose(f);
  return s;
}

static json_t *parse(const char *text)
{
  json_error_t je;

  return json_loads(text, 0, &je);
}

static void start_server(const char *script)
{
  char spath[600], ppath[600], rpath[600], exe[512];
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
  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", port);
}

/* Stops the server and checks it saw exactly its script (no unexpected
 * request, none pending).  Returns the number of requests it received. */
static size_t stop_server(const char *name)
{
  char rpath[600];
  int status;
  json_t *rep;
  size_t unexp, pend, n;

  kill(server, SIGTERM);
  waitpid(server, &status, 0);
  snprintf(rpath, sizeof(rpath), "%s/report.json", tmpdir);
  rep = json_load_file(rpath, 0, NULL);
  CHECK(rep != NULL);
  unexp = json_array_size(json_object_get(rep, "unexpected"));
  pend = json_array_size(json_object_get(rep, "pending"));
  n = json_array_size(json_object_get(rep, "requests"));
  if(unexp || pend) {
    char *t = json_dumps(rep, JSON_INDENT(1));
    fprintf(stdout, "%s: report:\n%s\n", name, t);
    free(t);
  }
  CHECK(unexp == 0);
  CHECK(pend == 0);
  json_decref(rep);
  return n;
}

/* Replaces the --auth file with text (@BASE@ -> the server) and loads
 * it.  Returns rqi_auth_load's result. */
static int load_auth(const char *text)
{
  char *t = rq_strdup(text), *p;
  FILE *f = fopen("auth.json", "w");

  if(!f) {
    perror("auth.json");
    exit(2);
  }
  for(p = strstr(t, "@BASE@"); p; p = strstr(t, "@BASE@")) {
    *p = '\0';
    fprintf(f, "%s%s", t, base_url);
    memmove(t, p + 6, strlen(p + 6) + 1);
  }
  fputs(t, f);
  fclose(f);
  rq_free(t);
  return rqi_auth_load("auth.json");
}

/* The Authorization header rqi_auth_apply gives src, malloc'd or NULL. */
static char *auth_header(const RqSourceDef *src)
{
  json_t *h = json_object(), *q = json_object();
  const char *v;
  char *out;

  rqi_auth_apply(src, h, q);
  v = json_string_value(json_object_get(h, "Authorization"));
  out = v ? strdup(v) : NULL;
  json_decref(h);
  json_decref(q);
  return out;
}

static void iso_in(double sec, char *out)
{
  rq_iso_time(rq_now_ms() + sec * 1000.0, out);
}

static void run_init(RqRun *run)
{
  memset(run, 0, sizeof(*run));
}

static RqSourceDef mk_src(const char *name, RqAuthKind kind,
                          const char *scheme)
{
  RqSourceDef s;

  memset(&s, 0, sizeof(s));
  s.name = name;
  s.auth = kind;
  s.auth_scheme = scheme;
  s.timeout_ms = 5000;
  return s;
}

static const RqAt AT = { 0, 1, 1 };

/* ------------------------------------------------------- form bodies */
static void test_form_body(void)
{
  json_t *c;

  c = parse("{\"refreshToken\": \"r t/&=+\\u00e9~\"}");
  CHECK_STRFREE(rqi_auth_form_body(c),
                "grant_type=refresh_token&refresh_token="
                "r%20t%2F%26%3D%2B%C3%A9~");
  json_decref(c);
  c = parse("{\"refreshToken\": \"rt\", \"clientId\": \"id 1\","
            " \"clientSecret\": \"s&c=\"}");
  CHECK_STRFREE(rqi_auth_form_body(c),
                "grant_type=refresh_token&refresh_token=rt"
                "&client_id=id%201&client_secret=s%26c%3D");
  json_decref(c);
  /* Empty client fields count as not set (the reference sends them). */
  c = parse("{\"refreshToken\": \"rt\", \"clientId\": \"\","
            " \"clientSecret\": \"\"}");
  CHECK_STRFREE(rqi_auth_form_body(c),
                "grant_type=refresh_token&refresh_token=rt");
  json_decref(c);
  c = parse("{\"refresh_token\": \"a\", \"client_secret\": \"b\"}");
  CHECK_STRFREE(rqi_auth_form_body(c),
                "grant_type=refresh_token&refresh_token=a&client_secret=b");
  json_decref(c);
  c = parse("{\"accessToken\": \"only\"}");
  CHECK(rqi_auth_form_body(c) == NULL);
  json_decref(c);
}

/* ---------------------------------------------------------- expiry */
static void test_expiring(void)
{
  double now = rq_now_ms();
  char ts[40], text[200];
  json_t *c;

  c = parse("{\"accessToken\": \"a\"}");
  CHECK(!rqi_auth_expiring(c, now));        /* unknown: never */
  json_decref(c);
  rq_iso_time(now + 59000, ts);
  snprintf(text, sizeof(text), "{\"expiresAt\": \"%s\"}", ts);
  c = parse(text);
  CHECK(rqi_auth_expiring(c, now));
  json_decref(c);
  rq_iso_time(now + 61000, ts);
  snprintf(text, sizeof(text), "{\"expiresAt\": \"%s\"}", ts);
  c = parse(text);
  CHECK(!rqi_auth_expiring(c, now));
  CHECK(rqi_auth_expiring(c, now + 1500));  /* time moves on */
  json_decref(c);
  c = parse("{\"expiresAt\": \"2001-01-01T00:00:00Z\"}");
  CHECK(rqi_auth_expiring(c, now));
  json_decref(c);
  c = parse("{\"expires_at\": \"2001-01-01T00:00:00+02:00\"}");
  CHECK(rqi_auth_expiring(c, now));
  json_decref(c);
  c = parse("{\"expiresAt\": \"2999-01-01T00:00:00Z\"}");
  CHECK(!rqi_auth_expiring(c, now));
  json_decref(c);
}

/* ----------------------------------------------- token file overrides */
static void test_token_file_override(void)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqSourceDef cmw = mk_src("Cmw", RQ_AUTH_OAUTH2, "CMW");
  RqSourceDef envy = mk_src("Envy", RQ_AUTH_OAUTH2, NULL);
  RqSourceDef bear = mk_src("Bear", RQ_AUTH_BEARER, NULL);
  RqSourceDef none = mk_src("Untouched", RQ_AUTH_OAUTH2, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };

  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:1");
  CHECK(mkdir("d", 0700) == 0 && mkdir("d/tokens", 0700) == 0);
  write_text("d/tokens/Api.json",
             "{\"accessToken\": \"file-at-1\", \"refreshToken\": "
             "\"file-rt-1\", \"expiresAt\": \"2999-01-01T00:00:00Z\"}");
  write_text("d/tokens/Cmw.json", "{\"accessToken\": \"file-at-2\"}");
  write_text("d/tokens/Envy.json", "{\"accessToken\": \"file-at-3\"}");
  write_text("d/tokens/Bear.json", "{\"accessToken\": \"file-at-4\"}");
  /* An interrupted write's leftover is not a token file. */
  write_text("d/tokens/Api.json.tmp", "{\"accessToken\": ");
  setenv("REQON_ENVY_ACCESS_TOKEN", "env-at-3", 1);
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"cred-at-1\","
    "  \"refreshToken\": \"cred-rt-1\", \"tokenEndpoint\": \"@BASE@/t\","
    "  \"expiresAt\": \"2001-01-01T00:00:00Z\"},"
    " \"Cmw\": {\"accessToken\": \"cred-at-2\", \"expiresAt\":"
    "  \"2001-01-01T00:00:00Z\", \"refreshToken\": \"cred-rt-2\","
    "  \"tokenUrl\": \"@BASE@/t\"},"
    " \"Bear\": {\"type\": \"bearer\", \"token\": \"cred-tok-4\"},"
    " \"Untouched\": {\"type\": \"oauth2\", \"accessToken\": \"cred-at-5\"}"
    "}") == 0);
  CHECK_STRFREE(auth_header(&api), "Bearer file-at-1");
  /* Untyped: the source's oauth2; its authScheme applies. */
  CHECK_STRFREE(auth_header(&cmw), "CMW file-at-2");
  CHECK_STRFREE(auth_header(&envy), "Bearer file-at-3");
  CHECK_STRFREE(auth_header(&bear), "Bearer cred-tok-4");
  CHECK_STRFREE(auth_header(&none), "Bearer cred-at-5");
  /* The file's expiry replaced the past one: no refresh (the endpoint,
   * a closed port, would fail).  Cmw's file has no expiry: unknown, so
   * no refresh either although the credential's own expiry is past. */
  run_init(&run);
  CHECK(rqi_auth_before_request(&env, &api, AT) == 0);
  CHECK(rqi_auth_before_request(&env, &cmw, AT) == 0);
  CHECK(!run.failed);
  CHECK(rqi_auth_generation(&api) == rqi_auth_generation(&api));
  unsetenv("REQON_ENVY_ACCESS_TOKEN");
  unlink("d/tokens/Api.json.tmp");
  unlink("d/tokens/Cmw.json");
  unlink("d/tokens/Envy.json");
  unlink("d/tokens/Bear.json");
  unlink("d/tokens/Api.json");
}

/* Appends stderr.txt (the current piece) to stderr-all.txt. */
static void keep_stderr(void)
{
  char *s = slurp("stderr.txt");
  FILE *f = fopen("stderr-all.txt", "a");

  if(f && s)
    fputs(s, f);
  if(f)
    fclose(f);
  free(s);
}

/* Starts a new piece of stderr (the old one is kept for
 * check_no_secrets). */
static void fresh_stderr(void)
{
  keep_stderr();
  CHECK(truncate("stderr.txt", 0) == 0);
}

/* A failed load logs `want`, keeps the previous credentials and never
 * shows `secret`. */
static void check_bad_load(const char *tokfile, const char *auth,
                           const char *want, const char *secret)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  char *err;

  if(tokfile)
    write_text("d/tokens/Api.json", tokfile);
  fresh_stderr();
  CHECK(load_auth(auth) == -1);
  err = slurp("stderr.txt");
  CHECK(err && strstr(err, want));
  if(err && !strstr(err, want))
    printf("    stderr: %s    want: %s\n", err, want);
  CHECK(!err || !strstr(err, secret));
  free(err);
  CHECK_STRFREE(auth_header(&api), "Bearer good-at");
  unlink("d/tokens/Api.json");
}

static void test_invalid_files(void)
{
  const char *good = "{\"Api\": {\"type\": \"oauth2\", "
                     "\"accessToken\": \"good-at\"}}";

  CHECK(load_auth(good) == 0);
  check_bad_load("{\"accessToken\": \"leaky-at-1", good,
                 "invalid token file d/tokens/Api.json: ", "leaky-at-1");
  check_bad_load("[\"leaky-at-2\"]", good,
                 "invalid token file d/tokens/Api.json: expected an object",
                 "leaky-at-2");
  check_bad_load("{\"refreshToken\": \"leaky-rt-3\"}", good,
                 "invalid token file d/tokens/Api.json: accessToken is "
                 "missing", "leaky-rt-3");
  check_bad_load("{\"accessToken\": \"leaky-at-4\", \"refreshToken\": 5}",
                 good, "refreshToken is not a string", "leaky-at-4");
  check_bad_load("{\"accessToken\": \"leaky-at-5\", \"expiresAt\": "
                 "\"soon\"}", good, "expiresAt is not an ISO-8601 time",
                 "leaky-at-5");
  check_bad_load("{\"accessToken\": \"leaky-at-6\", \"expiresAt\": 7}",
                 good, "expiresAt is not an ISO-8601 time", "leaky-at-6");
  check_bad_load(NULL,
                 "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": "
                 "\"leaky-at-7\", \"expiresAt\": \"tomorrow\"}}",
                 "invalid auth file auth.json: Api.expiresAt is not an "
                 "ISO-8601 time", "leaky-at-7");
  check_bad_load(NULL,
                 "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": "
                 "\"leaky-at-9\", \"expiresAt\": 1700000000}}",
                 "invalid auth file auth.json: Api.expiresAt is not an "
                 "ISO-8601 time", "leaky-at-9");
  check_bad_load(NULL, "{\"Api\": {\"accessToken\": \"leaky-at-8",
                 "cannot load auth file auth.json: ", "leaky-at-8");
  /* A token directory that cannot be read is an error too. */
  if(geteuid() != 0) {
    CHECK(chmod("d/tokens", 0) == 0);
    check_bad_load(NULL, good, "cannot read token directory d/tokens",
                   "good-at-x");
    CHECK(chmod("d/tokens", 0700) == 0);
  }
}

/* --------------------------------------------- refresh against fakeapi */
static void test_refresh(void)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };
  unsigned long g0, g1;
  struct stat sb;
  json_t *tf;
  char auth[1024], past[40];
  double exp_ms;
  const char *e;

  start_server(
    "[{\"request\": {\"method\": \"POST\", \"path\": \"/oauth/token\","
    "   \"body_text\": \"grant_type=refresh_token&refresh_token=old-rt-1"
    "&client_id=cid%201&client_secret=csec-1%2B\","
    "   \"headers\": {\"Content-Type\": "
    "     \"application/x-www-form-urlencoded\","
    "     \"Accept\": \"application/json\", \"Authorization\": null}},"
    "  \"response\": {\"body\": {\"access_token\": \"new-at-1\","
    "    \"refresh_token\": \"new-rt-1\", \"expires_in\": 3600,"
    "    \"token_type\": \"Bearer\"}}},"
    " {\"request\": {\"method\": \"POST\", \"path\": \"/oauth/token\","
    "   \"body_text\": \"grant_type=refresh_token&refresh_token=new-rt-1"
    "&client_id=cid%201&client_secret=csec-1%2B\"},"
    "  \"response\": {\"body\": {\"access_token\": \"new-at-2\"}}}]");
  iso_in(30, past);        /* < 60 s away: due */
  snprintf(auth, sizeof(auth),
           "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"old-at-1\","
           " \"refreshToken\": \"old-rt-1\", \"clientId\": \"cid 1\","
           " \"clientSecret\": \"csec-1+\","
           " \"tokenEndpoint\": \"@BASE@/oauth/token\","
           " \"expiresAt\": \"%s\"}}", past);
  CHECK(load_auth(auth) == 0);
  CHECK_STRFREE(auth_header(&api), "Bearer old-at-1");
  g0 = rqi_auth_generation(&api);
  run_init(&run);
  CHECK(rqi_auth_before_request(&env, &api, AT) == 0);
  CHECK(!run.failed);
  g1 = rqi_auth_generation(&api);
  CHECK(g1 != g0);
  CHECK_STRFREE(auth_header(&api), "Bearer new-at-1");
  /* Persisted: 0600 in a 0700 directory, the rotated refresh token. */
  CHECK(stat("d/tokens/Api.json", &sb) == 0 && (sb.st_mode & 0777) == 0600);
  CHECK(stat("d/tokens", &sb) == 0 && (sb.st_mode & 0777) == 0700);
  tf = json_load_file("d/tokens/Api.json", 0, NULL);
  CHECK_STREQ(json_string_value(json_object_get(tf, "accessToken")),
              "new-at-1");
  CHECK_STREQ(json_string_value(json_object_get(tf, "refreshToken")),
              "new-rt-1");
  e = json_string_value(json_object_get(tf, "expiresAt"));
  CHECK(e && rq_parse_time(e, &exp_ms) &&
        exp_ms > rq_now_ms() + 3500e3 && exp_ms < rq_now_ms() + 3700e3);
  json_decref(tf);
  /* Fresh for an hour now: no second refresh. */
  CHECK(rqi_auth_before_request(&env, &api, AT) == 0);
  /* A 401 for a request built before that refresh: re-send, no refresh. */
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT, g0) == 1);
  /* A 401 with the current token: refresh (the rotated token is sent),
   * then re-send. */
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT, g1) == 1);
  CHECK(!run.failed);
  CHECK(rqi_auth_generation(&api) != g1);
  CHECK_STRFREE(auth_header(&api), "Bearer new-at-2");
  /* No refresh_token in the reply: the old one stays; no expires_in:
   * the expiry is unknown (the old, near one must not stay). */
  tf = json_load_file("d/tokens/Api.json", 0, NULL);
  CHECK_STREQ(json_string_value(json_object_get(tf, "accessToken")),
              "new-at-2");
  CHECK_STREQ(json_string_value(json_object_get(tf, "refreshToken")),
              "new-rt-1");
  CHECK(json_object_get(tf, "expiresAt") == NULL);
  json_decref(tf);
  CHECK(stop_server("refresh") == 2);

  /* A second start (or SIGHUP) reads the token file: the rotated tokens
   * win, and the generation moves on (a 401 for a token from before the
   * reload is re-sent with the reloaded one). */
  g1 = rqi_auth_generation(&api);
  CHECK(load_auth(auth) == 0);
  CHECK(rqi_auth_generation(&api) != g1);
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT, g1) == 1);
  CHECK_STRFREE(auth_header(&api), "Bearer new-at-2");
  CHECK(rqi_auth_before_request(&env, &api, AT) == 0);   /* no expiry */
  unlink("d/tokens/Api.json");
}

/* Not refreshable: a 401 is final; an expired token is just sent. */
static void test_not_refreshable(void)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqSourceDef bear = mk_src("Bear", RQ_AUTH_BEARER, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };

  start_server("[]");
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"a-1\","
    "  \"tokenEndpoint\": \"@BASE@/t\","
    "  \"expiresAt\": \"2001-01-01T00:00:00Z\"},"
    " \"Bear\": {\"type\": \"bearer\", \"token\": \"b-1\","
    "  \"refreshToken\": \"r-1\", \"tokenEndpoint\": \"@BASE@/t\","
    "  \"expiresAt\": \"2001-01-01T00:00:00Z\"}}") == 0);
  run_init(&run);
  CHECK(rqi_auth_before_request(&env, &api, AT) == 0);
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT,
                                   rqi_auth_generation(&api)) == 0);
  CHECK(rqi_auth_before_request(&env, &bear, AT) == 0);
  CHECK(rqi_auth_refresh_after_401(&env, &bear, AT,
                                   rqi_auth_generation(&bear)) == 0);
  CHECK(!run.failed);
  CHECK(stop_server("not-refreshable") == 0);
}

/* One failing refresh: its message, no token file, the old token kept. */
static void check_failure(const char *reply, const char *want_prefix,
                          const char *absent)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };
  char script[2048];
  struct stat sb;

  snprintf(script, sizeof(script),
           "[{\"request\": {\"method\": \"POST\", \"path\": \"/t\"},"
           "  \"response\": %s}]", reply);
  start_server(script);
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"fail-at-1\","
    "  \"refreshToken\": \"fail-rt-1\", \"tokenEndpoint\": \"@BASE@/t\"}}")
    == 0);
  run_init(&run);
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT,
                                   rqi_auth_generation(&api)) ==
        -RQ_E_FAIL);
  CHECK(run.failed);
  CHECK(strncmp(run.err, want_prefix, strlen(want_prefix)) == 0);
  if(strncmp(run.err, want_prefix, strlen(want_prefix)) != 0)
    printf("    got:  %s\n    want: %s...\n", run.err, want_prefix);
  CHECK(!absent || !strstr(run.err, absent));
  CHECK(strstr(run.err, "fail-rt-1") == NULL);
  CHECK(stat("d/tokens/Api.json", &sb) != 0 && errno == ENOENT);
  CHECK_STRFREE(auth_header(&api), "Bearer fail-at-1");
  stop_server("failure");
}

static void test_failures(void)
{
  char reply[1024], big[600];
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };
  const char *p;

  check_failure("{\"status\": 400, \"body\": {\"error\": \"invalid_grant\"}}",
                "oauth2 refresh for Api failed: HTTP 400 "
                "{\"error\": \"invalid_grant\"}", NULL);
  /* 2xx without access_token; tokens in the reply are redacted. */
  check_failure("{\"body\": {\"refresh_token\": \"leak-rt-9x\"}}",
                "oauth2 refresh for Api failed: HTTP 200 ", "leak-rt-9x");
  check_failure("{\"body\": {\"access_token\": \"\"}}",
                "oauth2 refresh for Api failed: HTTP 200 ", NULL);
  check_failure("{\"body_text\": \"not json\"}",
                "oauth2 refresh for Api failed: HTTP 200 not json", NULL);
  check_failure("{\"status\": 503}",
                "oauth2 refresh for Api failed: HTTP 503", NULL);
  check_failure("{\"status\": 401, \"body\": [\"access_token\"]}",
                "oauth2 refresh for Api failed: HTTP 401 ", NULL);
  /* A long body is cut to 200 bytes. */
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  snprintf(reply, sizeof(reply), "{\"status\": 500, \"body_text\": \"%s\"}",
           big);
  check_failure(reply, "oauth2 refresh for Api failed: HTTP 500 xxxx", NULL);

  /* Only http and https endpoints get the refresh token. */
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"f-at-1\","
    "  \"refreshToken\": \"f-rt-1\", \"tokenEndpoint\": \"file:///x\"}}")
    == 0);
  run_init(&run);
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT,
                                   rqi_auth_generation(&api)) ==
        -RQ_E_FAIL);
  CHECK_STREQ(run.err, "oauth2 refresh for Api failed: tokenEndpoint is "
              "not an http or https URL");

  /* Transport error: the endpoint is a closed port. */
  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:1");
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"t-at-1\","
    "  \"refreshToken\": \"t-rt-1\", \"tokenEndpoint\": \"@BASE@/t\","
    "  \"expiresAt\": \"2001-01-01T00:00:00Z\"}}") == 0);
  run_init(&run);
  CHECK(rqi_auth_before_request(&env, &api, AT) == -RQ_E_FAIL);
  p = "oauth2 refresh for Api failed: POST http://127.0.0.1:1/t: ";
  CHECK(strncmp(run.err, p, strlen(p)) == 0);
  CHECK_STRFREE(auth_header(&api), "Bearer t-at-1");
}

static void test_excerpt_length(void)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };
  char script[1024], big[400];
  const char *pre = "oauth2 refresh for Api failed: HTTP 500 ";
  size_t n;

  memset(big, 'y', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  snprintf(script, sizeof(script),
           "[{\"request\": {\"method\": \"POST\", \"path\": \"/t\"},"
           "  \"response\": {\"status\": 500, \"body_text\": \"%s\"}}]", big);
  start_server(script);
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"x-at-1\","
    "  \"refreshToken\": \"x-rt-1\", \"tokenEndpoint\": \"@BASE@/t\"}}")
    == 0);
  run_init(&run);
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT,
                                   rqi_auth_generation(&api)) ==
        -RQ_E_FAIL);
  n = strlen(run.err);
  CHECK(strncmp(run.err, pre, strlen(pre)) == 0);
  CHECK(n == strlen(pre) + 200);
  stop_server("excerpt");
}

/* ----------------------------------------------------- single flight */
typedef struct {
  const RqSourceDef *src;
  bool after_401;
  unsigned long gen;
  int rc;
  RqRun run;
} Job;

static void *job_main(void *p)
{
  Job *j = p;
  RqEnv env = { &j->run, NULL, NULL };

  if(j->after_401)
    j->rc = rqi_auth_refresh_after_401(&env, j->src, AT, j->gen);
  else
    j->rc = rqi_auth_before_request(&env, j->src, AT);
  return NULL;
}

enum { NJOBS = 4 };

static void run_jobs(Job *jobs, const RqSourceDef *src, bool after_401,
                     unsigned long gen)
{
  pthread_t th[NJOBS];
  int i;

  for(i = 0; i < NJOBS; i++) {
    memset(&jobs[i], 0, sizeof(jobs[i]));
    jobs[i].src = src;
    jobs[i].after_401 = after_401;
    jobs[i].gen = gen;
    CHECK(pthread_create(&th[i], NULL, job_main, &jobs[i]) == 0);
  }
  for(i = 0; i < NJOBS; i++)
    pthread_join(th[i], NULL);
}

static void test_single_flight(void)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  Job jobs[NJOBS];
  unsigned long g;
  int i, ok;

  /* The endpoint answers slowly, so every thread arrives while the
   * first refresh is still running.  A second refresh would be an
   * unexpected request. */
  start_server(
    "[{\"request\": {\"method\": \"POST\", \"path\": \"/t\","
    "   \"body_text\": \"grant_type=refresh_token&refresh_token=sf-rt-1\"},"
    "  \"response\": {\"delay_ms\": 300, \"body\": {\"access_token\":"
    "    \"sf-at-2\", \"refresh_token\": \"sf-rt-2\", \"expires_in\": 600}}},"
    " {\"request\": {\"method\": \"POST\", \"path\": \"/t\","
    "   \"body_text\": \"grant_type=refresh_token&refresh_token=sf-rt-2\"},"
    "  \"response\": {\"delay_ms\": 300, \"body\": {\"access_token\":"
    "    \"sf-at-3\"}}},"
    " {\"request\": {\"method\": \"POST\", \"path\": \"/t\","
    "   \"body_text\": \"grant_type=refresh_token&refresh_token=sf-rt-2\"},"
    "  \"response\": {\"delay_ms\": 300, \"status\": 400, \"body\":"
    "    {\"error\": \"invalid_grant\"}}}]");
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"sf-at-1\","
    "  \"refreshToken\": \"sf-rt-1\", \"tokenEndpoint\": \"@BASE@/t\","
    "  \"expiresAt\": \"2001-01-01T00:00:00Z\"}}") == 0);
  /* Expired: four requests, one refresh, all proceed. */
  run_jobs(jobs, &api, false, 0);
  for(i = 0; i < NJOBS; i++)
    CHECK(jobs[i].rc == 0 && !jobs[i].run.failed);
  CHECK_STRFREE(auth_header(&api), "Bearer sf-at-2");
  /* Four 401s with the same token: one refresh, all re-send. */
  g = rqi_auth_generation(&api);
  run_jobs(jobs, &api, true, g);
  for(i = 0; i < NJOBS; i++)
    CHECK(jobs[i].rc == 1 && !jobs[i].run.failed);
  CHECK_STRFREE(auth_header(&api), "Bearer sf-at-3");
  /* Four 401s, the refresh fails: one request, all fail with its
   * message. */
  g = rqi_auth_generation(&api);
  run_jobs(jobs, &api, true, g);
  ok = 0;
  for(i = 0; i < NJOBS; i++) {
    CHECK(jobs[i].rc == -RQ_E_FAIL);
    ok += strcmp(jobs[i].run.err, "oauth2 refresh for Api failed: HTTP 400 "
                 "{\"error\": \"invalid_grant\"}") == 0;
  }
  CHECK(ok == NJOBS);
  CHECK(stop_server("single-flight") == 3);
  unlink("d/tokens/Api.json");
}

/* --dry-run: no refresh even when due, nothing written. */
static void test_dry_run(void)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };
  struct stat sb;

  start_server("[]");
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"dr-at-1\","
    "  \"refreshToken\": \"dr-rt-1\", \"tokenEndpoint\": \"@BASE@/t\","
    "  \"expiresAt\": \"2001-01-01T00:00:00Z\"}}") == 0);
  rqi_opts.dry_run = true;
  run_init(&run);
  CHECK(rqi_auth_before_request(&env, &api, AT) == 0);
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT,
                                   rqi_auth_generation(&api)) == 0);
  rqi_opts.dry_run = false;
  CHECK(!run.failed);
  CHECK(stat("d/tokens/Api.json", &sb) != 0);
  CHECK(stop_server("dry-run") == 0);
}

/* A token file that cannot be written fails the refresh: the new tokens
 * are not used unpersisted. */
static void test_unwritable(void)
{
  RqSourceDef api = mk_src("Api", RQ_AUTH_OAUTH2, NULL);
  RqRun run;
  RqEnv env = { &run, NULL, NULL };
  const char *p = "oauth2 refresh for Api failed: cannot write "
                  "d/tokens/Api.json: ";

  if(geteuid() == 0)
    return;              /* root writes anyway */
  start_server(
    "[{\"request\": {\"method\": \"POST\", \"path\": \"/t\"},"
    "  \"response\": {\"body\": {\"access_token\": \"uw-at-2\"}}}]");
  CHECK(load_auth(
    "{\"Api\": {\"type\": \"oauth2\", \"accessToken\": \"uw-at-1\","
    "  \"refreshToken\": \"uw-rt-1\", \"tokenEndpoint\": \"@BASE@/t\"}}")
    == 0);
  CHECK(chmod("d/tokens", 0500) == 0);
  run_init(&run);
  CHECK(rqi_auth_refresh_after_401(&env, &api, AT,
                                   rqi_auth_generation(&api)) ==
        -RQ_E_FAIL);
  CHECK(strncmp(run.err, p, strlen(p)) == 0);
  CHECK(chmod("d/tokens", 0700) == 0);
  CHECK_STRFREE(auth_header(&api), "Bearer uw-at-1");
  stop_server("unwritable");
}

/* No token of any test reached stderr (redirected to stderr.txt). */
static void check_no_secrets(void)
{
  static const char *const secrets[] = {
    "old-at-1", "old-rt-1", "new-at-1", "new-rt-1", "new-at-2", "csec-1",
    "leak-rt-9x", "fail-rt-1", "fail-at-1", "sf-at-2", "sf-rt-2", "sf-at-3",
    "uw-at-2", "uw-rt-1", "leaky-",
  };
  char *err = slurp("stderr-all.txt"), *line, *nl = NULL;
  size_t i;

  CHECK(err != NULL);
  /* check.h reports failures on stderr, which is the file: show them. */
  for(line = err; line && *line; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if(line[0] != '[')
      printf("%.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
  }
  for(i = 0; err && i < sizeof(secrets) / sizeof(secrets[0]); i++) {
    CHECK(strstr(err, secrets[i]) == NULL);
    if(strstr(err, secrets[i]))
      printf("    secret in stderr: %s\n", secrets[i]);
  }
  free(err);
}

int main(void)
{
  const char *tmp = getenv("TMPDIR");
  char *path;
  int fd;

  path = rq_asprintf("%s/rq-test-auth-XXXXXX",
                     tmp && *tmp ? tmp : "/tmp");
  rqi_util_init();
  if(!mkdtemp(path) || chdir(path) != 0) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(tmpdir, sizeof(tmpdir), "%s", path);
  rqi_http_global_init();
  rqi_log_configure(RQ_LOG_DEBUG, 0, 1);
  rqi_opts.data_dir = "d";
  /* Logs go to a file this test reads: fd 2 is the logger's. */
  fflush(stderr);
  fd = open("stderr.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
            0600);
  if(fd < 0 || dup2(fd, 2) < 0) {
    perror("stderr.txt");
    return 1;
  }
  close(fd);

  test_form_body();
  test_expiring();
  test_token_file_override();
  test_invalid_files();
  fresh_stderr();
  test_refresh();
  test_not_refreshable();
  test_failures();
  test_excerpt_length();
  test_single_flight();
  test_dry_run();
  test_unwritable();
  keep_stderr();
  check_no_secrets();

  rqi_auth_free();
  rqi_http_global_cleanup();
  rqi_log_shutdown();
  if(chdir("/") == 0) {
    char *cmd = rq_asprintf("rm -rf '%s'", path);
    if(system(cmd) != 0)
      printf("cannot remove %s\n", path);
    rq_free(cmd);
  }
  rq_free(path);
  return check_report();
}
