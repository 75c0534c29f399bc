/* util.c -- the runtime's small utilities: allocation that aborts on OOM
 * (also installed into jansson), RqBuf (a capped growable buffer, like
 * curl's dynbuf), clocks, ISO-8601 / HTTP-date time, and atomic file
 * writes.  Nothing here knows about missions or JSON semantics. */
#include "reqon.h"
#include "rq_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ memory */

/* A supervised daemon should crash loudly rather than limp on: report
 * with plain stdio (the logger may itself need memory) and abort. */
static void oom(size_t n)
{
  fprintf(stderr, "reqon: out of memory allocating %zu bytes\n", n);
  abort();
}

void *rq_malloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p)
    oom(n);
  return p;
}

void *rq_calloc(size_t n, size_t sz)
{
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p)
    oom(n * sz);
  return p;
}

/* Unlike realloc, a size of 0 never frees: it keeps a 1-byte block, so
 * the result is always a valid pointer to release with rq_free. */
void *rq_realloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (!q)
    oom(n);
  return q;
}

void rq_free(void *p)
{
  free(p);
}

char *rq_strdup(const char *s)
{
  return rq_strndup(s, strlen(s));
}

/* Copies at most n bytes of s (stopping at a NUL) and terminates. */
char *rq_strndup(const char *s, size_t n)
{
  const char *end = memchr(s, '\0', n);
  size_t len = end ? (size_t)(end - s) : n;
  char *p = rq_malloc(len + 1);
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

char *rq_asprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (len < 0)
    return rq_strdup("");
  char *p = rq_malloc((size_t)len + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)len + 1, fmt, ap);
  va_end(ap);
  return p;
}

void rqi_util_init(void)
{
  json_set_alloc_funcs(rq_malloc, rq_free);
}

/* ------------------------------------------------------------ RqBuf */

/* Makes room for `extra` more bytes plus the terminating NUL. */
static int buf_reserve(RqBuf *b, size_t extra)
{
  if (b->max && (extra > b->max || b->len > b->max - extra)) {
    rq_buf_free(b);
    return -RQ_E_TOO_LARGE;
  }
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (b->max && cap > b->max + 1)
    cap = b->max + 1;
  b->data = rq_realloc(b->data, cap);
  b->cap = cap;
  return 0;
}

int rq_buf_add(RqBuf *b, const void *p, size_t n)
{
  int rc = buf_reserve(b, n);
  if (rc)
    return rc;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int rq_buf_addf(RqBuf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (len < 0)
    return 0;
  int rc = buf_reserve(b, (size_t)len);
  if (rc)
    return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)len + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)len;
  return 0;
}

void rq_buf_free(RqBuf *b)
{
  rq_free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

/* ------------------------------------------------------------ clocks */

double rq_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

double rq_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------ time */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): exact for any year, no time_t or TZ involved, so it
 * does what timegm does without its range limits. */
int64_t rqi_days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void rqi_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int rqi_days_in_month(int64_t y, int m)
{
  static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                              31 };
  return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* The range of JavaScript dates, ±10^8 days: keeps years at 6 digits. */
#define MAX_TIME_MS 8.64e15

void rq_iso_time(double ms, char *out)
{
  if (!isfinite(ms) || fabs(ms) > MAX_TIME_MS) {
    out[0] = '\0';
    return;
  }
  int64_t t = (int64_t)floor(ms);
  int64_t days = t >= 0 ? t / 86400000 : -((-t + 86399999) / 86400000);
  int64_t rem = t - days * 86400000;
  int64_t y;
  int m, d;
  rqi_civil_from_days(days, &y, &m, &d);
  int hh = (int)(rem / 3600000);
  int mi = (int)(rem / 60000 % 60);
  int ss = (int)(rem / 1000 % 60);
  int fr = (int)(rem % 1000);
  /* Years stay within 6 digits (MAX_TIME_MS), so this fits in 32 bytes;
   * the larger scratch buffer only keeps -Wformat-truncation quiet. */
  char tmp[96];
  int n = snprintf(tmp, sizeof tmp, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
                   (long long)y, m, d, hh, mi, ss, fr);
  if (n < 0 || n > 31)
    n = 0;
  memcpy(out, tmp, (size_t)n);
  out[n] = '\0';
}

/* Reads exactly n digits; returns -1 when they are not all digits. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
  int v = 0;
  for (int k = 0; k < n; k++) {
    if (*i >= len || !isdigit((unsigned char)s[*i]))
      return -1;
    v = v * 10 + (s[(*i)++] - '0');
  }
  return v;
}

bool rqi_util_parse_iso(const char *s, size_t len, bool strict, double *ms)
{
  size_t i = 0;
  int y = digits(s, len, &i, 4);
  if (y < 0 || i >= len || s[i++] != '-')
    return false;
  int mo = digits(s, len, &i, 2);
  if (mo < 1 || mo > 12 || i >= len || s[i++] != '-')
    return false;
  int d = digits(s, len, &i, 2);
  if (d < 1 || d > rqi_days_in_month(y, mo))
    return false;
  double t = (double)rqi_days_from_civil(y, mo, d) * 86400000.0;
  if (i == len) {
    *ms = t;
    return true;
  }
  if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
    return false;
  i++;
  int hh = digits(s, len, &i, 2);
  if (hh < 0 || hh > 23 || i >= len || s[i++] != ':')
    return false;
  int mi = digits(s, len, &i, 2);
  if (mi < 0 || mi > 59)
    return false;
  int ss = 0;
  double frac = 0;
  if (i < len && s[i] == ':') {
    i++;
    ss = digits(s, len, &i, 2);
    if (ss < 0 || ss > 60)   /* 60: a leap second, folded into the next */
      return false;
    if (i < len && (s[i] == '.' || s[i] == ',')) {
      i++;
      double scale = 0.1;
      size_t start = i;
      while (i < len && isdigit((unsigned char)s[i])) {
        frac += (s[i++] - '0') * scale;
        scale /= 10;
      }
      if (i == start)
        return false;
    }
  } else if (strict) {
    return false;
  }
  int off = 0;                /* minutes east of UTC */
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    int sign = s[i++] == '-' ? -1 : 1;
    int oh = digits(s, len, &i, 2);
    if (oh < 0 || oh > 23)
      return false;
    int om = 0;
    if (i < len && s[i] == ':') {
      i++;
      om = digits(s, len, &i, 2);
    } else if (i < len) {
      if (strict)
        return false;
      om = digits(s, len, &i, 2);
    } else if (strict) {
      return false;
    }
    if (om < 0 || om > 59)
      return false;
    off = sign * (oh * 60 + om);
  } else if (strict) {
    return false;
  }
  if (i != len)
    return false;
  /* Without an offset the time is taken as UTC: a daemon's results must
   * not depend on the host's TZ. */
  t += ((double)hh * 3600 + mi * 60 + ss - off * 60) * 1000.0;
  t += floor(frac * 1000.0 + 1e-6);
  *ms = t;
  return true;
}

/* IMF-fixdate of RFC 9110: "Sun, 06 Nov 1994 08:49:37 GMT".  The weekday
 * is not checked against the date (senders get it wrong; it adds no
 * information). */
static bool parse_http_date(const char *s, double *ms)
{
  static const char *const mon[12] = { "Jan", "Feb", "Mar", "Apr", "May",
                                       "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec" };
  size_t len = strlen(s);
  size_t i = 0;
  if (len < 29 || !isalpha((unsigned char)s[0]))
    return false;
  while (i < len && isalpha((unsigned char)s[i]))
    i++;
  if (i >= len || s[i++] != ',')
    return false;
  while (i < len && s[i] == ' ')
    i++;
  int d = digits(s, len, &i, 2);
  if (d < 1 || i + 5 > len || s[i++] != ' ')
    return false;
  int mo = 0;
  while (mo < 12 && strncmp(s + i, mon[mo], 3) != 0)
    mo++;
  if (mo == 12)
    return false;
  mo++;
  i += 3;
  if (i >= len || s[i++] != ' ')
    return false;
  int y = digits(s, len, &i, 4);
  if (y < 0 || d > rqi_days_in_month(y, mo) || i >= len || s[i++] != ' ')
    return false;
  int hh = digits(s, len, &i, 2);
  if (hh < 0 || hh > 23 || i >= len || s[i++] != ':')
    return false;
  int mi = digits(s, len, &i, 2);
  if (mi < 0 || mi > 59 || i >= len || s[i++] != ':')
    return false;
  int ss = digits(s, len, &i, 2);
  if (ss < 0 || ss > 60)
    return false;
  if (strcmp(s + i, " GMT") != 0 && strcmp(s + i, " UTC") != 0)
    return false;
  *ms = ((double)rqi_days_from_civil(y, mo, d) * 86400.0 + hh * 3600.0 +
         mi * 60.0 + ss) * 1000.0;
  return true;
}

bool rq_parse_time(const char *s, double *ms)
{
  if (!s)
    return false;
  if (rqi_util_parse_iso(s, strlen(s), false, ms))
    return true;
  return parse_http_date(s, ms);
}

/* ------------------------------------------------------------ files */

/* Directory mode matching a file mode: x wherever r is set, so 0600
 * files get 0700 directories and 0644 files 0755 ones. */
static int dir_mode_for(int mode)
{
  return (mode | ((mode & 0444) >> 2) | 0700) & 0777;
}

int rq_mkdirs(const char *dir, int mode)
{
  size_t len = strlen(dir);
  if (len == 0)
    return 0;
  char *p = rq_strdup(dir);
  int rc = 0;
  for (size_t i = 1; i <= len && rc == 0; i++) {
    if (p[i] != '/' && p[i] != '\0')
      continue;
    char saved = p[i];
    p[i] = '\0';
    if (mkdir(p, (mode_t)mode) != 0) {
      struct stat st;
      if (errno != EEXIST)
        rc = -1;
      else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        rc = -1;
      }
    }
    p[i] = saved;
  }
  rq_free(p);
  return rc;
}

static int write_all(int fd, const char *data, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    data += w;
    n -= (size_t)w;
  }
  return 0;
}

/* fsync of the directory makes the rename itself durable. */
static int sync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

int rq_write_atomic(const char *path, const void *data, size_t n, int mode)
{
  const char *slash = strrchr(path, '/');
  char *dir = slash == path ? rq_strdup("/")
            : slash ? rq_strndup(path, (size_t)(slash - path))
            : rq_strdup(".");
  char *tmp = rq_asprintf("%s.tmp", path);
  int rc = -1;
  int saved = 0;
  int fd = -1;
  if (rq_mkdirs(dir, dir_mode_for(mode)) != 0)
    goto out;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
  if (fd < 0)
    goto out;
  if (write_all(fd, data, n) != 0 || fsync(fd) != 0)
    goto fail;
  if (close(fd) != 0) {
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0)
    goto fail;
  rc = sync_dir(dir);
  goto out;
fail:
  saved = errno;
  if (fd >= 0)
    close(fd);
  fd = -1;
  unlink(tmp);
  errno = saved;
out:
  saved = errno;
  rq_free(dir);
  rq_free(tmp);
  errno = saved;
  return rc;
}

int rq_hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}
