/* test_log.c -- unit tests of runtime/log.c: secret redaction (registered
 * values, URL userinfo, credential query parameters, credential fields,
 * credential headers to the end of their line), the text and JSON line
 * formats, level filtering, whole lines under concurrent writers, and
 * the bounded secret registry.  stderr is redirected to a temporary
 * file. */
#include "reqon.h"
#include "rq_util.h"
#include "rq_log.h"
#include "check.h"

#include <jansson.h>
#include <pthread.h>
#include <unistd.h>

static char capture_path[] = "/tmp/reqon_test_log_XXXXXX";
static int saved_fd = -1;
static int cap_fd = -1;

static void capture_start(void)
{
  fflush(stderr);
  cap_fd = mkstemp(capture_path);
  saved_fd = dup(STDERR_FILENO);
  dup2(cap_fd, STDERR_FILENO);
}

/* Restores stderr and returns what was written (malloc'd). */
static char *capture_end(void)
{
  long n;
  char *text;
  FILE *f;

  dup2(saved_fd, STDERR_FILENO);
  close(saved_fd);
  f = fdopen(cap_fd, "r");
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  text = rq_malloc((size_t)n + 1);
  n = (long)fread(text, 1, (size_t)n, f);
  text[n] = '\0';
  fclose(f);
  unlink(capture_path);
  memcpy(capture_path, "/tmp/reqon_test_log_XXXXXX",
         sizeof(capture_path));
  return text;
}

static void test_redact(void)
{
  rqi_log_add_secret("s3cr3t-value");
  rqi_log_add_secret("abc");          /* too short: ignored */
  CHECK_STRFREE(rqi_log_redact("token s3cr3t-value and s3cr3t-value!"),
                "token *** and ***!");
  CHECK_STRFREE(rqi_log_redact("abc stays"), "abc stays");
  CHECK_STRFREE(rqi_log_redact("GET https://bob:pw@api.x.com/a?b=1"),
                "GET https://api.x.com/a?b=1");
  CHECK_STRFREE(rqi_log_redact("http://h/a@b"), "http://h/a@b");
  CHECK_STRFREE(rqi_log_redact("no url here"), "no url here");
  CHECK_STRFREE(rqi_log_redact("{\"id\":1,\"password\":\"hunter2\"}"),
                "{\"id\":1,\"password\":\"***\"}");
  CHECK_STRFREE(rqi_log_redact("{\"access_token\": \"a\\\"b\", \"x\":2}"),
                "{\"access_token\": \"***\", \"x\":2}");
  CHECK_STRFREE(rqi_log_redact("{\"tokens\":3}"), "{\"tokens\":3}");
  CHECK_STRFREE(rqi_log_redact("Authorization: Bearer xyz"),
                "Authorization: ***");
  CHECK_STRFREE(rqi_log_redact(NULL), "");
}

/* URLs: userinfo is dropped; credential-named query values become ***,
 * in whole URLs and in bare paths, whatever the letter case or
 * percent-encoding of the name; other parameters are kept. */
static void test_redact_urls(void)
{
  CHECK_STRFREE(rqi_log_redact("GET https://u:p%40ss@h.io:8443/x failed"),
                "GET https://h.io:8443/x failed");
  CHECK_STRFREE(rqi_log_redact("to http://user@h/x, then"),
                "to http://h/x, then");
  CHECK_STRFREE(rqi_log_redact("a https://x:y@h/1 b ftp://k:v@h2/2"),
                "a https://h/1 b ftp://h2/2");
  CHECK_STRFREE(rqi_log_redact("GET http://h/p?access_token=abc&page=2"),
                "GET http://h/p?access_token=***&page=2");
  CHECK_STRFREE(rqi_log_redact("GET /rows?page=2&API_KEY=k1k1k1#frag"),
                "GET /rows?page=2&API_KEY=***#frag");
  CHECK_STRFREE(rqi_log_redact("/a?api%5Fkey=zz9&q=1"),
                "/a?api%5Fkey=***&q=1");
  CHECK_STRFREE(rqi_log_redact("/a?key=1&sig=2&Signature=3&X-Amz-"
                               "Credential=4&client_secret=5&pass=6"),
                "/a?key=***&sig=***&Signature=***&X-Amz-Credential=***"
                "&client_secret=***&pass=***");
  CHECK_STRFREE(rqi_log_redact("/a?refresh_token=r&id_token=i&password=p"
                               "&passwd=w&apikey=a&api-key=b&auth=c"),
                "/a?refresh_token=***&id_token=***&password=***"
                "&passwd=***&apikey=***&api-key=***&auth=***");
  CHECK_STRFREE(rqi_log_redact("/a?authorization=x&session=s&x_api_key=y"
                               "&private_key=z&sessionid=t"),
                "/a?authorization=***&session=***&x_api_key=***"
                "&private_key=***&sessionid=***");
  /* other names, and secret words that are values, are kept */
  CHECK_STRFREE(rqi_log_redact("/a?monkey=1&keys=2&q=token&tokens"),
                "/a?monkey=1&keys=2&q=token&tokens");
  CHECK_STRFREE(rqi_log_redact("\"url\":\"http://h/?token=t1\",\"n\":1"),
                "\"url\":\"http://h/?token=***\",\"n\":1");
  CHECK_STRFREE(rqi_log_redact("GET http://h/p?token=a b c"),
                "GET http://h/p?token=*** b c");
  CHECK_STRFREE(rqi_log_redact("?=x&token=&key"), "?=x&token=***&key");
  /* the message's ": " or ", " after a URL is not part of the value */
  CHECK_STRFREE(rqi_log_redact("GET http://h/p?sig=a:b: timed out"),
                "GET http://h/p?sig=***: timed out");
  CHECK_STRFREE(rqi_log_redact("/p?token=a,b, retrying; /q?key=z:"),
                "/p?token=***, retrying; /q?key=***:");
}

/* Credential headers: the whole value to the end of the line (a Digest
 * value holds commas), or to the closing quote of a quoted header line;
 * names that are Reqon identifiers are not headers. */
static void test_redact_headers(void)
{
  CHECK_STRFREE(rqi_log_redact("Authorization: Digest username=\"u\", "
                               "response=\"r3sp\", nonce=\"n\"\nnext"),
                "Authorization: ***\nnext");
  CHECK_STRFREE(rqi_log_redact("Authorization: Basic dTpw, x=1"),
                "Authorization: ***");
  CHECK_STRFREE(rqi_log_redact("[\"Authorization: Digest a=\\\"b, c\\\"\","
                               " \"Accept: json\"]"),
                "[\"Authorization: ***\", \"Accept: json\"]");
  CHECK_STRFREE(rqi_log_redact("-H 'Proxy-Authorization: Basic a,b' -v"),
                "-H 'Proxy-Authorization: ***' -v");
  CHECK_STRFREE(rqi_log_redact("x-api-key: k, k2\nCookie: s=1; t=2"),
                "x-api-key: ***\nCookie: ***");
  CHECK_STRFREE(rqi_log_redact("X-Auth-Token:abc"), "X-Auth-Token: ***");
  CHECK_STRFREE(rqi_log_redact("TokenSync: Starting run"),
                "TokenSync: Starting run");
  CHECK_STRFREE(rqi_log_redact("store api_tokens: invalid key"),
                "store api_tokens: invalid key");
  CHECK_STRFREE(rqi_log_redact("see https://h/a"), "see https://h/a");
}

/* Whole log lines: the same redaction in both formats, also for a URL
 * whose JSON form escapes characters, and in the context values. */
static void test_line_redaction(void)
{
  RqLogCtx ctx = { .mission = "M",
                   .at = "m.reqon:1:1?token=ctx-secret" };
  char *out;

  rqi_log_configure(RQ_LOG_INFO, 0, 1);
  capture_start();
  rq_log(RQ_LOG_ERROR, NULL, "M: GET https://u:pw1@h/p?api_key=k-9&n=1: "
         "timeout; Authorization: Digest a=\"x\", b=\"y\"");
  out = capture_end();
  CHECK(strstr(out, "GET https://h/p?api_key=***&n=1: timeout; "
                    "Authorization: ***\n") != NULL);
  CHECK(strstr(out, "pw1") == NULL && strstr(out, "k-9") == NULL);
  rq_free(out);

  rqi_log_configure(RQ_LOG_INFO, 1, 0);
  capture_start();
  rq_log(RQ_LOG_ERROR, &ctx, "M: GET http://h/p?q=\"a\"&access_token=t-7 "
         "failed");
  out = capture_end();
  CHECK(strstr(out, "access_token=***") != NULL);
  CHECK(strstr(out, "t-7") == NULL);
  CHECK(strstr(out, "ctx-secret") == NULL);
  CHECK(strstr(out, "\"at\":\"m.reqon:1:1?token=***\"") != NULL);
  rq_free(out);
}

static void test_text_format(void)
{
  char *out;

  rqi_log_configure(RQ_LOG_INFO, 0, 1);
  capture_start();
  rq_log(RQ_LOG_INFO, NULL, "M: Starting run %d", 7);
  rq_log(RQ_LOG_DEBUG, NULL, "dropped");
  rq_log(RQ_LOG_ERROR, NULL, "key s3cr3t-value");
  out = capture_end();
  /* [YYYY-MM-DD HH:MM:SS] [INFO] ... */
  CHECK(strlen(out) > 22 && out[0] == '[' && out[5] == '-' &&
        out[11] == ' ' && out[20] == ']');
  CHECK(strstr(out, "] [INFO] M: Starting run 7\n") != NULL);
  CHECK(strstr(out, "dropped") == NULL);
  CHECK(strstr(out, "] [ERROR] key ***\n") != NULL);
  rq_free(out);
}

static void test_json_format(void)
{
  RqLogCtx ctx = { .mission = "M", .execution = "exec_1_abc",
                   .action = "Fetch", .at = "m.reqon:3:5" };
  json_error_t err;
  json_t *o;
  const char *key;
  json_t *v;
  const char *order[8];
  size_t n = 0;
  char *out;
  char *nl;

  rqi_log_configure(RQ_LOG_DEBUG, 1, 0);
  capture_start();
  rq_log(RQ_LOG_WARN, &ctx, "M/Fetch: store S: \"password\":\"pw\"");
  out = capture_end();
  nl = strchr(out, '\n');
  CHECK(nl != NULL && nl[1] == '\0');
  o = json_loads(out, JSON_DISABLE_EOF_CHECK, &err);
  CHECK(o != NULL);
  if(o) {
    json_object_foreach(o, key, v) {
      if(n < 8)
        order[n++] = key;
    }
    CHECK(n == 7);
    if(n == 7) {
      CHECK_STREQ(order[0], "timestamp");
      CHECK_STREQ(order[1], "level");
      CHECK_STREQ(order[2], "message");
      CHECK_STREQ(order[3], "mission");
      CHECK_STREQ(order[4], "execution");
      CHECK_STREQ(order[5], "action");
      CHECK_STREQ(order[6], "at");
    }
    CHECK_STREQ(json_string_value(json_object_get(o, "level")), "warn");
    /* the "M/Fetch: " prefix is dropped: mission and action have keys */
    CHECK_STREQ(json_string_value(json_object_get(o, "message")),
                "store S: \"password\":\"***\"");
    CHECK(strlen(json_string_value(json_object_get(o, "timestamp"))) ==
          20);
    json_decref(o);
  }
  rq_free(out);
}

static void *writer(void *arg)
{
  int i;

  for(i = 0; i < 200; i++)
    rq_log(RQ_LOG_INFO, NULL, "thread %d line %d %s", *(int *)arg, i,
           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  return NULL;
}

static void test_concurrent(void)
{
  pthread_t t[4];
  int ids[4] = { 0, 1, 2, 3 };
  char *out;
  char *line;
  char *save = NULL;
  int lines = 0;
  int good = 0;
  int i;

  rqi_log_configure(RQ_LOG_INFO, 0, 0);
  capture_start();
  for(i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, writer, &ids[i]);
  for(i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  out = capture_end();
  for(line = strtok_r(out, "\n", &save); line;
      line = strtok_r(NULL, "\n", &save)) {
    lines++;
    good += line[0] == '[' && strstr(line, "] [INFO] thread ") != NULL &&
            strlen(line) > 61 && line[strlen(line) - 1] == 'x';
  }
  CHECK(lines == 800);
  CHECK(good == 800);
  rq_free(out);
}

/* Regressions: a registered secret holding characters that JSON escapes
 * (quote, backslash, control) must not reach a JSON line in its escaped
 * form; bytes that are not UTF-8 must not cost the line its message; a
 * text line is one line even when the message holds newlines. */
static void test_awkward_messages(void)
{
  RqLogCtx ctx = { .mission = "M" };
  json_error_t err;
  json_t *o;
  char *out;
  const char *msg;

  rqi_log_add_secret("pa\"ss\\wd\t1");
  rqi_log_configure(RQ_LOG_INFO, 1, 0);
  capture_start();
  rq_log(RQ_LOG_ERROR, &ctx, "M: bad pa\"ss\\wd\t1 here");
  out = capture_end();
  CHECK(strstr(out, "pa\\\"ss") == NULL);
  CHECK(strstr(out, "ss\\\\wd") == NULL);
  o = json_loads(out, JSON_DISABLE_EOF_CHECK, &err);
  CHECK(o != NULL);
  CHECK_STREQ(json_string_value(json_object_get(o, "message")),
              "bad *** here");
  json_decref(o);
  rq_free(out);

  capture_start();
  rq_log(RQ_LOG_ERROR, &ctx, "M: invalid \xff\xfe bytes");
  out = capture_end();
  o = json_loads(out, JSON_DISABLE_EOF_CHECK, &err);
  CHECK(o != NULL);
  msg = json_string_value(json_object_get(o, "message"));
  CHECK(msg && strncmp(msg, "invalid ", 8) == 0 &&
        strstr(msg, " bytes") != NULL);
  CHECK_STREQ(json_string_value(json_object_get(o, "mission")), "M");
  json_decref(o);
  rq_free(out);

  rqi_log_configure(RQ_LOG_INFO, 0, 1);
  capture_start();
  rq_log(RQ_LOG_ERROR, NULL, "M: abort two\nlines\r\n[x] [INFO] fake");
  out = capture_end();
  CHECK(strchr(out, '\n') == out + strlen(out) - 1);
  CHECK(strstr(out, "] [ERROR] M: abort two") != NULL);
  rq_free(out);
}

/* The secret registry stays bounded: a value registered again is kept
 * once; rotating values (OAuth2 refreshes) keep only the newest 256,
 * the newest always redacted and re-registration making a value the
 * newest; configured (permanent) values survive any number of
 * refreshes; a full permanent tier spills into the rotating one.  And
 * the one-pass scan: a secret that is a prefix of another, overlapping
 * and adjacent occurrences leave no byte of either. */
static void test_secret_registry(void)
{
  char v[64];
  int i;

  rqi_log_shutdown();
  CHECK(rqi_log_secret_count() == 0);
  for(i = 0; i < 1000; i++)
    rqi_log_add_secret("same-secret-1");
  for(i = 0; i < 1000; i++)
    rqi_log_add_rotating_secret("same-secret-1");
  CHECK(rqi_log_secret_count() == 1);

  rqi_log_add_secret("client-secret-permanent");
  for(i = 0; i < 10000; i++) {
    snprintf(v, sizeof(v), "access-%05d", i);
    rqi_log_add_rotating_secret(v);
  }
  CHECK(rqi_log_secret_count() == 2 + 256);
  CHECK_STRFREE(rqi_log_redact("t=access-09999 c=client-secret-permanent "
                               "s=same-secret-1"), "t=*** c=*** s=***");
  CHECK_STRFREE(rqi_log_redact("t=access-09744"), "t=***");
  /* the 257th newest fell off: the documented price of the bound */
  CHECK_STRFREE(rqi_log_redact("t=access-09743"), "t=access-09743");
  CHECK_STRFREE(rqi_log_redact("t=access-00100"), "t=access-00100");
  rqi_log_add_rotating_secret("access-09744");   /* bumped: survives */
  rqi_log_add_rotating_secret("access-new-1");
  CHECK_STRFREE(rqi_log_redact("access-09744 access-new-1 access-09745"),
                "*** *** access-09745");

  /* 300 permanent values: 256 pinned, the rest rotate out */
  rqi_log_shutdown();
  for(i = 0; i < 300; i++) {
    snprintf(v, sizeof(v), "cfg-%03d", i);
    rqi_log_add_secret(v);
  }
  CHECK(rqi_log_secret_count() == 300);
  for(i = 0; i < 300; i++) {
    snprintf(v, sizeof(v), "tok-%03d", i);
    rqi_log_add_rotating_secret(v);
  }
  CHECK(rqi_log_secret_count() == 512);
  CHECK_STRFREE(rqi_log_redact("cfg-000 cfg-255 cfg-256 tok-299 tok-044 "
                               "tok-043"),
                "*** *** cfg-256 *** *** tok-043");

  /* prefixes, overlaps, adjacency, and a value at the very end */
  rqi_log_shutdown();
  rqi_log_add_secret("abcd");
  rqi_log_add_secret("abcdefgh");
  rqi_log_add_secret("fghijk");
  CHECK_STRFREE(rqi_log_redact("x abcdefghijk y"), "x *** y");
  CHECK_STRFREE(rqi_log_redact("abcdabcd-abcde"), "***-***e");
  CHECK_STRFREE(rqi_log_redact("abc abcdefg"), "abc ***efg");
  CHECK_STRFREE(rqi_log_redact("fghijkfghij"), "***fghij");
  rqi_log_shutdown();
  CHECK_STRFREE(rqi_log_redact("abcd"), "abcd");
}

int main(void)
{
  rqi_util_init();
  test_redact();
  test_redact_urls();
  test_redact_headers();
  test_line_redaction();
  test_text_format();
  test_json_format();
  test_concurrent();
  test_awkward_messages();
  test_secret_registry();
  rqi_log_shutdown();
  return check_report();
}
