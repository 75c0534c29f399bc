/* test_util.c -- unit tests of runtime/util.c: allocation helpers, RqBuf
 * caps, clocks, ISO-8601 formatting and parsing (round trips, offsets,
 * HTTP-dates, invalid input), mkdir -p and atomic writes. */
#include "reqon.h"
#include "rq_util.h"
#include "rq_value.h"
#include "check.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void test_alloc(void)
{
  char *p = rq_malloc(0);
  CHECK(p != NULL);
  free(p);
  int *z = rq_calloc(16, sizeof *z);
  int sum = 0;
  for (int i = 0; i < 16; i++)
    sum += z[i];
  CHECK(sum == 0);
  z = rq_realloc(z, 1000 * sizeof *z);
  z[999] = 7;
  CHECK(z[999] == 7);
  rq_free(z);
  CHECK_STRFREE(rq_strdup("abc"), "abc");
  CHECK_STRFREE(rq_strndup("abcdef", 3), "abc");
  CHECK_STRFREE(rq_strndup("ab", 10), "ab");
  CHECK_STRFREE(rq_asprintf("%d-%s", 5, "x"), "5-x");
  CHECK_STRFREE(rq_asprintf("%s", ""), "");
}

static void test_buf(void)
{
  RqBuf b = RQ_BUF_INIT(10);
  CHECK(rq_buf_add(&b, "hello", 5) == 0);
  CHECK(rq_buf_addf(&b, "%d%s", 12, "ab") == 0);
  CHECK(b.len == 9 && strcmp(b.data, "hello12ab") == 0);
  CHECK(rq_buf_add(&b, "c", 1) == 0);
  CHECK(b.len == 10);
  CHECK(rq_buf_add(&b, "d", 1) == -RQ_E_TOO_LARGE);
  CHECK(b.data == NULL && b.len == 0 && b.cap == 0);

  RqBuf f = RQ_BUF_INIT(4);
  CHECK(rq_buf_addf(&f, "%s", "12345") == -RQ_E_TOO_LARGE);
  CHECK(f.data == NULL);

  RqBuf u = RQ_BUF_INIT(0);
  CHECK(rq_buf_add(&u, "", 0) == 0);
  CHECK(u.data && u.data[0] == '\0');
  int rc = 0;
  for (int i = 0; i < 10000; i++)
    rc |= rq_buf_add(&u, "0123456789", 10);
  CHECK(rc == 0);
  CHECK(u.len == 100000 && u.data[u.len] == '\0');
  CHECK(memcmp(u.data + 99990, "0123456789", 10) == 0);
  rq_buf_free(&u);
  rq_buf_free(&u);              /* idempotent */
  CHECK(u.data == NULL);
}

static void test_clocks(void)
{
  double now = rq_now_ms();
  CHECK(now > 1.7e12 && now < 1e13);
  double a = rq_mono_ms();
  double b = rq_mono_ms();
  CHECK(b >= a && a >= 0);
}

static char *iso(double ms)
{
  char out[32];
  rq_iso_time(ms, out);
  return rq_strdup(out);
}

/* Parses s; returns the ms, or -1e300 when it does not parse. */
static double parse(const char *s)
{
  double ms = 0;
  return rq_parse_time(s, &ms) ? ms : -1e300;
}

static double strict(const char *s)
{
  double ms = 0;
  return rqi_util_parse_iso(s, strlen(s), true, &ms) ? ms : -1e300;
}

static void test_time(void)
{
  CHECK_STRFREE(iso(0), "1970-01-01T00:00:00.000Z");
  CHECK_STRFREE(iso(1741064767089), "2025-03-04T05:06:07.089Z");
  CHECK_STRFREE(iso(1741064767089.9), "2025-03-04T05:06:07.089Z");
  CHECK_STRFREE(iso(-1), "1969-12-31T23:59:59.999Z");
  CHECK_STRFREE(iso(951782400000), "2000-02-29T00:00:00.000Z");
  CHECK_STRFREE(iso(253402300799999), "9999-12-31T23:59:59.999Z");
  CHECK_STRFREE(iso(NAN), "");
  CHECK_STRFREE(iso(1e300), "");

  /* Round trips through the formatter. */
  const double samples[] = { 0, 1, -1, 999, 86400000, 951782400000,
                             1741064767089, 4102444800000, -2208988800000,
                             253402300799999, 1709251199999 };
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    char buf[32];
    double back = -1;
    rq_iso_time(samples[i], buf);
    CHECK(rq_parse_time(buf, &back) && back == samples[i]);
    CHECK(strict(buf) == samples[i]);
  }

  /* Many more round trips, years 0001..9999, against gmtime_r too. */
  unsigned long long seed = 12345;
  int n_bad = 0;
  for (int i = 0; i < 20000; i++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    double ms = (double)(long long)(seed >> 20) - 62135596800000.0;
    if (ms > 253402300799999.0)
      continue;
    char buf[32], ref[96];
    double back = -1;
    rq_iso_time(ms, buf);
    time_t secs = (time_t)floor(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(ref, sizeof ref, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms - (double)secs * 1000));
    if (!rq_parse_time(buf, &back) || back != ms || strcmp(buf, ref) != 0)
      n_bad++;
  }
  CHECK(n_bad == 0);

  CHECK(parse("2025-03-04T05:06:07Z") == 1741064767000);
  CHECK(parse("2025-03-04T05:06:07.089Z") == 1741064767089);
  CHECK(parse("2025-03-04t05:06:07.089z") == 1741064767089);
  CHECK(parse("2025-03-04T05:06:07.0899999Z") == 1741064767089);
  CHECK(parse("2025-03-04T05:06:07.1Z") == 1741064767100);
  CHECK(parse("2025-03-04 05:06:07") == 1741064767000);
  CHECK(parse("2025-03-04T05:06:07") == 1741064767000);
  CHECK(parse("2025-03-04T05:06Z") == 1741064760000);
  CHECK(parse("2025-03-04T10:36:07+05:30") == 1741064767000);
  CHECK(parse("2025-03-03T21:06:07-0800") == 1741064767000);
  CHECK(parse("2025-03-04T06:06:07+01") == 1741064767000);
  CHECK(parse("2025-03-04") == 1741046400000);
  CHECK(parse("2024-02-29") == 1709164800000);
  CHECK(parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777000);
  CHECK(parse("Tue, 04 Mar 2025 05:06:07 GMT") == 1741064767000);

  const char *bad[] = {
    "", "2025", "2025-3-4", "2025-02-29", "2025-13-01", "2025-00-10",
    "2025-04-31", "2025-03-04T25:00:00Z", "2025-03-04T05:60:00Z",
    "2025-03-04T05:06:07Zjunk", "2025-03-04T05:06:07.Z",
    "2025-03-04T05", "2025-03-04X05:06:07Z", "2025-03-04T05:06:07+25:00",
    " 2025-03-04", "Sun, 06 Foo 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37", "Sun, 31 Nov 1994 08:49:37 GMT",
    "yesterday",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(parse(bad[i]) == -1e300);
    if (parse(bad[i]) != -1e300)
      fprintf(stderr, "    parsed: '%s'\n", bad[i]);
  }
  CHECK(!rq_parse_time(NULL, &(double){ 0 }));

  /* Strict mode (the `date` type): RFC 3339 date-time or a bare date. */
  CHECK(strict("2025-03-04T05:06:07Z") == 1741064767000);
  CHECK(strict("2025-03-04T05:06:07.5+00:00") == 1741064767500);
  CHECK(strict("2025-03-04") == 1741046400000);
  CHECK(strict("2025-03-04T05:06Z") == -1e300);
  CHECK(strict("2025-03-04T05:06:07") == -1e300);
  CHECK(strict("2025-03-04T05:06:07+0100") == -1e300);
  CHECK(strict("2025-03-04T05:06:07+01") == -1e300);
  CHECK(strict("Sun, 06 Nov 1994 08:49:37 GMT") == -1e300);
}

static bool file_is(const char *path, const char *want)
{
  char buf[256];
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strcmp(buf, want) == 0;
}

static void test_files(void)
{
  char tmpl[] = "/tmp/rq-unit-XXXXXX";
  char *root = mkdtemp(tmpl);
  CHECK(root != NULL);
  if (!root)
    return;
  char *deep = rq_asprintf("%s/a/b/c", root);
  CHECK(rq_mkdirs(deep, 0755) == 0);
  CHECK(rq_mkdirs(deep, 0755) == 0);
  struct stat st;
  CHECK(stat(deep, &st) == 0 && S_ISDIR(st.st_mode));
  char *trail = rq_asprintf("%s/a/b/c/", root);
  CHECK(rq_mkdirs(trail, 0755) == 0);

  char *path = rq_asprintf("%s/d1/d2/f.json", root);
  CHECK(rq_write_atomic(path, "hello", 5, 0600) == 0);
  CHECK(file_is(path, "hello"));
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  char *dir = rq_asprintf("%s/d1/d2", root);
  CHECK(stat(dir, &st) == 0 && (st.st_mode & 0700) == 0700);
  char *tmp = rq_asprintf("%s.tmp", path);
  CHECK(access(tmp, F_OK) != 0);
  CHECK(rq_write_atomic(path, "bye", 3, 0600) == 0);
  CHECK(file_is(path, "bye"));
  CHECK(rq_write_atomic(path, "", 0, 0600) == 0);
  CHECK(file_is(path, ""));

  /* A file where a directory should be. */
  char *under = rq_asprintf("%s/x", path);
  errno = 0;
  CHECK(rq_mkdirs(under, 0755) == -1 && errno == ENOTDIR);
  char *under_file = rq_asprintf("%s/x/y.json", path);
  CHECK(rq_write_atomic(under_file, "z", 1, 0644) == -1);

  /* Relative path in the current directory. */
  char *cwd = getcwd(NULL, 0);
  CHECK(chdir(root) == 0);
  CHECK(rq_write_atomic("rel.json", "r", 1, 0644) == 0);
  CHECK(file_is("rel.json", "r"));
  unlink("rel.json");
  CHECK(cwd && chdir(cwd) == 0);
  free(cwd);

  unlink(path);
  rmdir(dir);
  char *d1 = rq_asprintf("%s/d1", root);
  rmdir(d1);
  rmdir(deep);
  char *ab = rq_asprintf("%s/a/b", root);
  rmdir(ab);
  char *a = rq_asprintf("%s/a", root);
  rmdir(a);
  CHECK(rmdir(root) == 0);
  free(deep);
  free(trail);
  free(path);
  free(dir);
  free(tmp);
  free(under);
  free(under_file);
  free(d1);
  free(ab);
  free(a);
}

static void test_jansson_alloc(void)
{
  /* After rqi_util_init, jansson allocates through rq_malloc/rq_free;
   * building and freeing values must stay balanced under LSan. */
  json_t *o = json_pack("{s:[i,s,f]}", "k", 1, "two", 3.5);
  CHECK(o != NULL);
  char *s = rqi_dumps(o, 0);
  CHECK_STREQ(s, "{\"k\":[1,\"two\",3.5]}");
  free(s);
  json_decref(o);
}

int main(void)
{
  rqi_util_init();
  test_alloc();
  test_buf();
  test_clocks();
  test_time();
  test_files();
  test_jansson_alloc();
  return check_report();
}
