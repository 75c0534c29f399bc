/* test_metrics.c -- the metrics registry of SPEC §10.4 and the data
 * behind /health (§10.3) (runtime/metrics.c): the exact text of a small
 * registry, family order, label escaping, number formatting, summary
 * quantiles over more than 100 runs, the series cap, breaker state and
 * rate-limit waits read from the limiter, degraded status, and
 * concurrent recording. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "rq_internal.h"
#include "rq_limit.h"
#include "rq_metrics.h"
#include "check.h"

#define T0 1700000000000.0   /* epoch ms */

static RqSourceDef src(const char *name)
{
  RqSourceDef s;

  memset(&s, 0, sizeof(s));
  s.name = name;
  s.cb_failure_threshold = 1;
  s.cb_reset_timeout_s = 3600;
  return s;
}

/* How many lines of text start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
  const char *p = text;
  int n = 0;
  size_t len = strlen(prefix);

  while(p && *p) {
    if(strncmp(p, prefix, len) == 0)
      n++;
    p = strchr(p, '\n');
    if(p)
      p++;
  }
  return n;
}

static bool has_line(const char *text, const char *line)
{
  size_t n = strlen(line);
  const char *p = text;

  while((p = strstr(p, line)) != NULL) {
    if((p == text || p[-1] == '\n') && p[n] == '\n')
      return true;
    p += n;
  }
  return false;
}

/* A checker of the text format 0.0.4 grammar: every line is "# HELP
 * name text", "# TYPE name type" or a sample "name{k="v",...} value";
 * label values hold only \\, \" and \n escapes; a value is NaN, +Inf,
 * -Inf or a whole strtod number; every sample follows the HELP and TYPE
 * of its family (name, or name_sum / name_count for a summary) and a
 * family is not declared twice.  Returns the number of bad lines. */
static int format_errors(const char *text)
{
  char family[128] = "", seen[4096] = " ";
  const char *p = text;
  int bad = 0;

  while(*p) {
    const char *eol = strchr(p, '\n'), *q = p;
    char name[128];
    size_t n = 0;

    if(!eol)
      return bad + 1;                   /* the last line ends too */
    if(strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0) {
      q = p + 7;
      while(q < eol && *q != ' ' && n < sizeof(name) - 1)
        name[n++] = *q++;
      name[n] = '\0';
      if(p[2] == 'H') {
        char key[140];
        snprintf(key, sizeof(key), " %s ", name);
        if(strstr(seen, key))
          bad++;
        else if(strlen(seen) + strlen(key) < sizeof(seen))
          memcpy(seen + strlen(seen), key + 1, strlen(key));
        snprintf(family, sizeof(family), "%s", name);
      }
      else if(strcmp(name, family) != 0)
        bad++;
      p = eol + 1;
      continue;
    }
    while(q < eol && (isalnum((unsigned char)*q) || *q == '_' ||
                      *q == ':') && n < sizeof(name) - 1)
      name[n++] = *q++;
    name[n] = '\0';
    if(n == 0 || isdigit((unsigned char)name[0]))
      bad++;
    else if(strcmp(name, family) != 0) {
      size_t fl = strlen(family);
      if(strncmp(name, family, fl) != 0 ||
         (strcmp(name + fl, "_sum") != 0 &&
          strcmp(name + fl, "_count") != 0))
        bad++;
    }
    if(q < eol && *q == '{') {
      q++;
      while(q < eol && *q != '}') {
        while(q < eol && (isalnum((unsigned char)*q) || *q == '_'))
          q++;
        if(q + 1 >= eol || q[0] != '=' || q[1] != '"') {
          bad++;
          break;
        }
        for(q += 2; q < eol && *q != '"'; q++)
          if(*q == '\\') {
            q++;
            if(*q != '\\' && *q != '"' && *q != 'n')
              bad++;
          }
        q++;
        if(q < eol && *q == ',')
          q++;
      }
      q++;
    }
    if(q >= eol || *q != ' ')
      bad++;
    else {
      char num[64], *end;
      size_t k = (size_t)(eol - q - 1);
      if(k >= sizeof(num))
        k = sizeof(num) - 1;
      memcpy(num, q + 1, k);
      num[k] = '\0';
      if(strcmp(num, "NaN") != 0 && strcmp(num, "+Inf") != 0 &&
         strcmp(num, "-Inf") != 0) {
        strtod(num, &end);
        if(k == 0 || *end || strchr(num, 'n') || strchr(num, 'N'))
          bad++;
      }
    }
    p = eol + 1;
  }
  return bad;
}

static const char expected[] =
  "# HELP reqon_mission_runs_total Total mission runs\n"
  "# TYPE reqon_mission_runs_total counter\n"
  "reqon_mission_runs_total{mission=\"A\",status=\"success\"} 1\n"
  "reqon_mission_runs_total{mission=\"A\",status=\"failure\"} 1\n"
  "reqon_mission_runs_total{mission=\"A\",status=\"skipped\"} 1\n"
  "reqon_mission_runs_total{mission=\"B\",status=\"success\"} 0\n"
  "reqon_mission_runs_total{mission=\"B\",status=\"failure\"} 0\n"
  "reqon_mission_runs_total{mission=\"B\",status=\"skipped\"} 0\n"
  "# HELP reqon_mission_duration_seconds Mission run duration "
  "(quantiles: last 100 runs)\n"
  "# TYPE reqon_mission_duration_seconds summary\n"
  "reqon_mission_duration_seconds{mission=\"A\",quantile=\"0.5\"} 0.25\n"
  "reqon_mission_duration_seconds{mission=\"A\",quantile=\"0.9\"} 1.5\n"
  "reqon_mission_duration_seconds{mission=\"A\",quantile=\"0.99\"} 1.5\n"
  "reqon_mission_duration_seconds_sum{mission=\"A\"} 1.75\n"
  "reqon_mission_duration_seconds_count{mission=\"A\"} 2\n"
  "reqon_mission_duration_seconds{mission=\"B\",quantile=\"0.5\"} NaN\n"
  "reqon_mission_duration_seconds{mission=\"B\",quantile=\"0.9\"} NaN\n"
  "reqon_mission_duration_seconds{mission=\"B\",quantile=\"0.99\"} NaN\n"
  "reqon_mission_duration_seconds_sum{mission=\"B\"} 0\n"
  "reqon_mission_duration_seconds_count{mission=\"B\"} 0\n"
  "# HELP reqon_mission_runs_in_progress Mission runs currently in "
  "progress\n"
  "# TYPE reqon_mission_runs_in_progress gauge\n"
  "reqon_mission_runs_in_progress{mission=\"A\"} 0\n"
  "reqon_mission_runs_in_progress{mission=\"B\"} 1\n"
  "# HELP reqon_last_success_timestamp_seconds End of the last "
  "successful run (epoch seconds, 0: never)\n"
  "# TYPE reqon_last_success_timestamp_seconds gauge\n"
  "reqon_last_success_timestamp_seconds{mission=\"A\"} 1700000000\n"
  "reqon_last_success_timestamp_seconds{mission=\"B\"} 0\n"
  "# HELP reqon_http_requests_total HTTP attempts by status code "
  "(0: transport error)\n"
  "# TYPE reqon_http_requests_total counter\n"
  "reqon_http_requests_total{source=\"API\",method=\"GET\",code=\"200\"}"
  " 2\n"
  "reqon_http_requests_total{source=\"API\",method=\"GET\",code=\"0\"}"
  " 2\n"
  "reqon_http_requests_total{source=\"API\",method=\"POST\",code=\"503\"}"
  " 1\n"
  "# HELP reqon_http_retries_total HTTP retries\n"
  "# TYPE reqon_http_retries_total counter\n"
  "reqon_http_retries_total{source=\"API\"} 3\n"
  "# HELP reqon_records_written_total Records written to stores\n"
  "# TYPE reqon_records_written_total counter\n"
  "reqon_records_written_total{mission=\"A\",store=\"items\"} 7\n"
  "# HELP reqon_circuit_state Circuit breaker state (0 closed, "
  "1 half-open, 2 open)\n"
  "# TYPE reqon_circuit_state gauge\n"
  "reqon_circuit_state{source=\"API\"} 2\n"
  "reqon_circuit_state{source=\"Idle\"} 0\n"
  "reqon_circuit_state{source=\"Other\"} 0\n"
  "# HELP reqon_ratelimit_wait_seconds_total Time spent waiting on rate "
  "limits\n"
  "# TYPE reqon_ratelimit_wait_seconds_total counter\n"
  "reqon_ratelimit_wait_seconds_total{source=\"API\"} 1.5\n"
  "reqon_ratelimit_wait_seconds_total{source=\"Idle\"} 0\n"
  "reqon_ratelimit_wait_seconds_total{source=\"Other\"} 0.25\n"
  "# HELP reqon_sync_checkpoint_timestamp_seconds Value of the last "
  "committed sync checkpoint (epoch seconds)\n"
  "# TYPE reqon_sync_checkpoint_timestamp_seconds gauge\n"
  "reqon_sync_checkpoint_timestamp_seconds{mission=\"A\",key=\"since\"}"
  " 1700000000.5\n";

/* A small registry, rendered exactly; this also fixes the family order
 * (the first two are the interpreter's, §10.4). */
static void test_exact_text(void)
{
  static const char *const ms[] = { "A", "B" };
  static const char *const ss[] = { "API", "Idle" };
  RqSourceDef api = src("API"), other = src("Other");
  double r;
  RqCbAdmit a;
  char *text;

  rqi_metrics_init(ms, 2, ss, 2);
  rqi_metrics_run_started("A", T0 - 1500);
  rqi_metrics_run_ended("A", RQ_MET_COMPLETED, 1500, T0);
  rqi_metrics_run_started("A", T0 + 1000);
  rqi_metrics_run_ended("A", RQ_MET_FAILED, 250, T0 + 1250);
  rqi_metrics_run_skipped("A");
  rqi_metrics_run_started("B", T0);
  rqi_metrics_http_attempt("API", "GET", 200);
  rqi_metrics_http_attempt("API", "GET", 200);
  rqi_metrics_http_attempt("API", "GET", 0);
  rqi_metrics_http_attempt("API", "GET", 42);   /* not a status: 0 */
  rqi_metrics_http_attempt("API", "POST", 503);
  rqi_metrics_http_retry("API");
  rqi_metrics_http_retry("API");
  rqi_metrics_http_retry("API");
  rqi_metrics_records_written("A", "items", 5);
  rqi_metrics_records_written("A", "items", 2);
  rqi_metrics_checkpoint("A", "since", T0 + 500);
  /* The limiter's registry: API's breaker opens after one failure;
   * Other (not declared) is used and waits 250 ms. */
  a = rqi_breaker_enter(&api, NULL, &r);
  CHECK(a == RQ_CB_ALLOW);
  rqi_breaker_leave(&api, NULL, a, RQ_CB_FAILURE);
  rqi_ratelimit_add_wait(&api, 1500);
  a = rqi_breaker_enter(&other, NULL, &r);
  rqi_breaker_leave(&other, NULL, a, RQ_CB_SUCCESS);
  rqi_ratelimit_add_wait(&other, 250);

  text = rqi_metrics_render();
  CHECK_STREQ(text, expected);
  CHECK(format_errors(text) == 0);
  CHECK(format_errors(expected) == 0);
  /* The checker itself rejects what Prometheus would. */
  CHECK(format_errors("# HELP a x\n# TYPE a gauge\na{k=\"\\q\"} 1\n"));
  CHECK(format_errors("# HELP a x\n# TYPE a gauge\na 1e\n") == 1);
  CHECK(format_errors("# HELP a x\n# TYPE a gauge\nb 1\n") == 1);
  rq_free(text);
  rqi_limit_cleanup();
  rqi_metrics_cleanup();
}

static void test_escaping(void)
{
  char *text;

  rqi_metrics_init(NULL, 0, NULL, 0);
  rqi_metrics_records_written("M\"q\\b\nz", "s", 1);
  text = rqi_metrics_render();
  CHECK(has_line(text, "reqon_records_written_total"
                 "{mission=\"M\\\"q\\\\b\\nz\",store=\"s\"} 1"));
  /* Missions added by events appear like declared ones. */
  CHECK(!has_line(text, "reqon_mission_runs_total"
                  "{mission=\"M\\\"q\\\\b\\nz\",status=\"success\"} 0"));
  rq_free(text);
  /* Invalid UTF-8 would make Prometheus reject the whole scrape. */
  rqi_metrics_records_written("M", "caf\xc3\xa9\xff|\xc3|\xed\xa0\x80", 1);
  text = rqi_metrics_render();
  CHECK(has_line(text, "reqon_records_written_total{mission=\"M\","
                 "store=\"caf\xc3\xa9\xef\xbf\xbd|\xef\xbf\xbd|"
                 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} 1"));
  rq_free(text);
  rqi_metrics_run_skipped("x\ny");
  text = rqi_metrics_render();
  CHECK(has_line(text, "reqon_mission_runs_total"
                 "{mission=\"x\\ny\",status=\"skipped\"} 1"));
  CHECK(has_line(text, "reqon_mission_runs_total"
                 "{mission=\"x\\ny\",status=\"success\"} 0"));
  /* Every line is a comment or a sample: no raw newline leaked. */
  CHECK(count_lines(text, "reqon_") + count_lines(text, "# ") ==
        count_lines(text, ""));
  CHECK(format_errors(text) == 0);
  rq_free(text);
  rqi_metrics_cleanup();
}

static void test_numbers(void)
{
  char b[40];

  rqi_metrics_format_number(0, b, sizeof(b));
  CHECK_STREQ(b, "0");
  rqi_metrics_format_number(-3, b, sizeof(b));
  CHECK_STREQ(b, "-3");
  rqi_metrics_format_number(1700000000, b, sizeof(b));
  CHECK_STREQ(b, "1700000000");
  rqi_metrics_format_number(123456789012345.0, b, sizeof(b));
  CHECK_STREQ(b, "123456789012345");
  rqi_metrics_format_number(0.1, b, sizeof(b));
  CHECK_STREQ(b, "0.1");
  rqi_metrics_format_number(1700000000.5, b, sizeof(b));
  CHECK_STREQ(b, "1700000000.5");
  rqi_metrics_format_number(1.0 / 3, b, sizeof(b));
  CHECK(strtod(b, NULL) == 1.0 / 3);
  rqi_metrics_format_number(NAN, b, sizeof(b));
  CHECK_STREQ(b, "NaN");
  rqi_metrics_format_number(INFINITY, b, sizeof(b));
  CHECK_STREQ(b, "+Inf");
  rqi_metrics_format_number(-INFINITY, b, sizeof(b));
  CHECK_STREQ(b, "-Inf");
}

/* 150 runs: the quantiles (nearest rank) cover the last 100, given in
 * descending order so that they need sorting; _sum and _count cover
 * every run. */
static void test_summary_window(void)
{
  static const char *const ms[] = { "S" };
  char *text;
  int i;

  rqi_metrics_init(ms, 1, NULL, 0);
  for(i = 150; i >= 1; i--) {
    int v = i <= 100 ? i : 1000 + i;   /* the first 50 runs: outliers */
    rqi_metrics_run_ended("S", RQ_MET_COMPLETED, (double)v * 1000, T0);
  }
  text = rqi_metrics_render();
  /* Window: runs 51..150, durations 100 down to 1 s. */
  CHECK(has_line(text, "reqon_mission_duration_seconds"
                 "{mission=\"S\",quantile=\"0.5\"} 50"));
  CHECK(has_line(text, "reqon_mission_duration_seconds"
                 "{mission=\"S\",quantile=\"0.9\"} 90"));
  CHECK(has_line(text, "reqon_mission_duration_seconds"
                 "{mission=\"S\",quantile=\"0.99\"} 99"));
  /* sum: 1..100 = 5050 plus 1101..1150 = 56275. */
  CHECK(has_line(text, "reqon_mission_duration_seconds_sum"
                 "{mission=\"S\"} 61325"));
  CHECK(has_line(text, "reqon_mission_duration_seconds_count"
                 "{mission=\"S\"} 150"));
  CHECK(has_line(text, "reqon_mission_runs_total"
                 "{mission=\"S\",status=\"success\"} 150"));
  rq_free(text);
  rqi_metrics_cleanup();
}

/* Past RQ_METRICS_MAX_SERIES label sets a counter family stops growing
 * and its existing series keep counting; the checkpoint gauge (per-item
 * keys never stop coming) replaces its least recently updated series. */
static void test_cap(void)
{
  char key[32], *text;
  int i;

  rqi_metrics_init(NULL, 0, NULL, 0);
  for(i = 0; i < RQ_METRICS_MAX_SERIES; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    rqi_metrics_checkpoint("M", key, T0);
  }
  rqi_metrics_checkpoint("M", "k0", T0 + 2000);   /* k1 is now oldest */
  for(i = RQ_METRICS_MAX_SERIES; i < RQ_METRICS_MAX_SERIES + 50; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    rqi_metrics_checkpoint("M", key, T0 + 3000);
  }
  for(i = 0; i < 2 * RQ_METRICS_MAX_SERIES; i++)
    rqi_metrics_http_attempt("S", "GET", 1000 + i);   /* all code 0 */
  rqi_metrics_http_attempt("S", "GET", 600);
  rqi_metrics_http_attempt("S", "GET", 99);
  for(i = 0; i < RQ_METRICS_MAX_SERIES + 5; i++) {
    snprintf(key, sizeof(key), "m%d", i);
    rqi_metrics_run_skipped(key);
  }
  text = rqi_metrics_render();
  CHECK(count_lines(text, "reqon_sync_checkpoint_timestamp_seconds{") ==
        RQ_METRICS_MAX_SERIES);
  CHECK(has_line(text, "reqon_sync_checkpoint_timestamp_seconds"
                 "{mission=\"M\",key=\"k0\"} 1700000002"));
  CHECK(has_line(text, "reqon_sync_checkpoint_timestamp_seconds"
                 "{mission=\"M\",key=\"k1049\"} 1700000003"));
  CHECK(has_line(text, "reqon_sync_checkpoint_timestamp_seconds"
                 "{mission=\"M\",key=\"k1000\"} 1700000003"));
  CHECK(has_line(text, "reqon_sync_checkpoint_timestamp_seconds"
                 "{mission=\"M\",key=\"k51\"} 1700000000"));
  CHECK(!strstr(text, "key=\"k1\""));
  CHECK(!strstr(text, "key=\"k50\""));
  CHECK(count_lines(text, "reqon_http_requests_total{") == 1);
  CHECK(has_line(text, "reqon_http_requests_total"
                 "{source=\"S\",method=\"GET\",code=\"0\"} 2002"));
  CHECK(count_lines(text, "reqon_mission_runs_total{") ==
        3 * RQ_METRICS_MAX_SERIES);
  CHECK(count_lines(text, "reqon_mission_runs_in_progress{") ==
        RQ_METRICS_MAX_SERIES);
  rq_free(text);
  rqi_metrics_cleanup();
}

/* consecutiveFailures, lastStatus, degraded at 3 failures, reset by a
 * success, untouched by interrupted runs; key order of /health. */
static void test_health(void)
{
  static const char *const ms[] = { "One", "Two" };
  json_t *h, *m;
  char *s;

  rqi_metrics_init(ms, 2, NULL, 0);
  h = rqi_metrics_health("9.9.9");
  s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
  /* The interpreter's three keys first, then ours. */
  CHECK(s && strncmp(s, "{\"status\":\"ok\",\"uptime\":", 24) == 0);
  CHECK(s && strstr(s, ",\"missionsLoaded\":2,\"version\":\"9.9.9\","
                    "\"missions\":[{"));
  /* uptime is whole seconds, directly followed by missionsLoaded. */
  if(s) {
    char *end;
    long up = strtol(s + 24, &end, 10);
    CHECK(up >= 0 && up < 60);
    CHECK(strncmp(end, ",\"missionsLoaded\":2,", 20) == 0);
  }
  CHECK(s && strstr(s, "{\"name\":\"One\",\"running\":0,"
                    "\"lastStatus\":null,\"lastRun\":null,"
                    "\"nextRun\":null,\"consecutiveFailures\":0}"));
  rq_free(s);
  json_decref(h);

  rqi_metrics_run_started("One", T0);
  rqi_metrics_run_started("One", T0 + 1);
  rqi_metrics_set_next_run("Two", T0 + 60000);
  h = rqi_metrics_health("v");
  m = json_array_get(json_object_get(h, "missions"), 0);
  CHECK(json_integer_value(json_object_get(m, "running")) == 2);
  CHECK_STREQ(json_string_value(json_object_get(m, "lastRun")),
              "2023-11-14T22:13:20.001Z");
  m = json_array_get(json_object_get(h, "missions"), 1);
  CHECK_STREQ(json_string_value(json_object_get(m, "nextRun")),
              "2023-11-14T22:14:20.000Z");
  json_decref(h);

  rqi_metrics_run_ended("One", RQ_MET_FAILED, 10, T0);
  rqi_metrics_run_ended("One", RQ_MET_FAILED, 10, T0);
  rqi_metrics_run_started("One", T0);
  rqi_metrics_run_ended("One", RQ_MET_INTERRUPTED, 10, T0);
  h = rqi_metrics_health("v");
  CHECK_STREQ(json_string_value(json_object_get(h, "status")), "ok");
  m = json_array_get(json_object_get(h, "missions"), 0);
  CHECK(json_integer_value(json_object_get(m, "consecutiveFailures"))
        == 2);
  CHECK(json_integer_value(json_object_get(m, "running")) == 0);
  CHECK_STREQ(json_string_value(json_object_get(m, "lastStatus")),
              "interrupted");
  json_decref(h);

  rqi_metrics_run_ended("One", RQ_MET_FAILED, 10, T0);
  h = rqi_metrics_health("v");
  CHECK_STREQ(json_string_value(json_object_get(h, "status")),
              "degraded");
  m = json_array_get(json_object_get(h, "missions"), 0);
  CHECK(json_integer_value(json_object_get(m, "consecutiveFailures"))
        == 3);
  CHECK_STREQ(json_string_value(json_object_get(m, "lastStatus")),
              "failed");
  /* running never goes below 0 on an unmatched end. */
  CHECK(json_integer_value(json_object_get(m, "running")) == 0);
  json_decref(h);

  rqi_metrics_run_ended("One", RQ_MET_COMPLETED, 10, T0);
  h = rqi_metrics_health("v");
  CHECK_STREQ(json_string_value(json_object_get(h, "status")), "ok");
  m = json_array_get(json_object_get(h, "missions"), 0);
  CHECK(json_integer_value(json_object_get(m, "consecutiveFailures"))
        == 0);
  CHECK_STREQ(json_string_value(json_object_get(m, "lastStatus")),
              "completed");
  json_decref(h);
  rqi_metrics_set_next_run("Two", 0);
  h = rqi_metrics_health("v");
  m = json_array_get(json_object_get(h, "missions"), 1);
  CHECK(json_is_null(json_object_get(m, "nextRun")));
  json_decref(h);
  rqi_metrics_cleanup();
}

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
  int i;

  for(i = 0; i < PER_THREAD; i++) {
    rqi_metrics_http_attempt("S", (i & 1) ? "GET" : "PUT", 200);
    if(i % 100 == 0) {
      char *t = rqi_metrics_render();
      rq_free(t);
    }
  }
  rqi_metrics_records_written("M", "s", 1);
  return arg;
}

static void test_threads(void)
{
  pthread_t t[THREADS];
  char *text;
  int i;

  rqi_metrics_init(NULL, 0, NULL, 0);
  for(i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer, NULL);
  for(i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  text = rqi_metrics_render();
  CHECK(has_line(text, "reqon_http_requests_total"
                 "{source=\"S\",method=\"GET\",code=\"200\"} 40000"));
  CHECK(has_line(text, "reqon_http_requests_total"
                 "{source=\"S\",method=\"PUT\",code=\"200\"} 40000"));
  CHECK(has_line(text, "reqon_records_written_total"
                 "{mission=\"M\",store=\"s\"} 4"));
  rq_free(text);
  rqi_metrics_cleanup();
}

int main(void)
{
  rqi_util_init();
  rqi_log_configure(RQ_LOG_ERROR, 0, 1);
  test_exact_text();
  test_escaping();
  test_numbers();
  test_summary_window();
  test_cap();
  test_health();
  test_threads();
  return check_report();
}
