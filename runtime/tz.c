/* tz.c -- IANA time zones (SPEC §9.2) without touching the process-global
 * TZ: reads TZif files (RFC 8536: v1, and v2+ 64-bit data with the POSIX
 * TZ footer that covers instants after the last transition) from $TZDIR
 * or /usr/share/zoneinfo.  Loaded zones are immutable and thread-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_schedule.h"

#define TZ_MAX_FILE (1 << 20)   /* real TZif files are a few KiB */
#define TZ_MAX_OFFSET (26 * 3600)
#define TZ_MAX_NAME 255

/* A POSIX TZ transition date: Jn, n or Mm.w.d, plus a local time. */
typedef struct {
  char kind;            /* 'J', 'N' or 'M' */
  int day;              /* Jn: 1-365; n: 0-365; M: weekday 0-6 */
  int week;             /* M: 1-5 */
  int month;            /* M: 1-12 */
  int time_s;           /* local time of day; may be < 0 or > 24 h */
} PosixDate;

typedef struct {
  bool has_dst;
  int std_off;          /* seconds east of UTC */
  int dst_off;
  PosixDate start, end; /* DST starts (in standard time), ends (in DST) */
} PosixRule;

struct RqZone {
  char *name;
  size_t n_trans;
  int64_t *trans;       /* transition instants, ascending */
  uint8_t *trans_type;  /* index into the types */
  size_t n_types;
  int32_t *type_off;
  bool *type_dst;
  bool has_rule;        /* the footer applies after the last transition */
  PosixRule rule;
};

/* ------------------------------------------------------ civil dates */
/* rqi_days_from_civil, rqi_civil_from_days and rqi_days_in_month live in
 * util.c (rq_util.h), beside the ISO-8601 code that uses them too. */
/* Floor division: civil arithmetic must round towards -inf before 1970. */
static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int weekday_of_days(int64_t days)
{
  return (int)(((days % 7) + 11) % 7);     /* 1970-01-01 was a Thursday */
}

/* ----------------------------------------------------- POSIX TZ rule */
/* Zone abbreviation: <...> or 3+ letters.  Only skipped. */
static bool posix_name(const char **p)
{
  const char *s = *p;

  if (*s == '<') {
    const char *e = strchr(s, '>');
    if (!e || e - s < 2)
      return false;
    *p = e + 1;
    return true;
  }
  while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
    s++;
  if (s - *p < 3)
    return false;
  *p = s;
  return true;
}

/* [+-]h[h[h]][:mm[:ss]] as seconds; max_h bounds the hours. */
static bool posix_hms(const char **p, int max_h, int *out)
{
  const char *s = *p;
  int sign = 1, part[3] = { 0, 0, 0 }, n = 0;

  if (*s == '+' || *s == '-')
    sign = *s++ == '-' ? -1 : 1;
  for (;;) {
    int digits = 0, v = 0;
    while (*s >= '0' && *s <= '9' && digits < 3) {
      v = v * 10 + (*s++ - '0');
      digits++;
    }
    if (digits == 0 || (n > 0 && (digits != 2 || v > 59)))
      return false;
    part[n++] = v;
    if (n == 3 || *s != ':')
      break;
    s++;
  }
  if (part[0] > max_h)
    return false;
  *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
  *p = s;
  return true;
}

static bool posix_number(const char **p, int lo, int hi, int *out)
{
  int v = 0, digits = 0;

  while (**p >= '0' && **p <= '9' && digits < 4) {
    v = v * 10 + (*(*p)++ - '0');
    digits++;
  }
  *out = v;
  return digits > 0 && v >= lo && v <= hi;
}

static bool posix_date(const char **p, PosixDate *d)
{
  d->time_s = 2 * 3600;            /* POSIX default: 02:00 */
  if (**p == 'J') {
    (*p)++;
    d->kind = 'J';
    if (!posix_number(p, 1, 365, &d->day))
      return false;
  } else if (**p == 'M') {
    (*p)++;
    d->kind = 'M';
    if (!posix_number(p, 1, 12, &d->month) || *(*p)++ != '.' ||
        !posix_number(p, 1, 5, &d->week) || *(*p)++ != '.' ||
        !posix_number(p, 0, 6, &d->day))
      return false;
  } else {
    d->kind = 'N';
    if (!posix_number(p, 0, 365, &d->day))
      return false;
  }
  if (**p == '/') {
    (*p)++;
    return posix_hms(p, 167, &d->time_s);   /* RFC 8536 extension */
  }
  return true;
}

/* Parses e.g. "CET-1CEST,M3.5.0,M10.5.0/3".  POSIX offsets are west of
 * UTC, so their sign is flipped. */
static bool posix_parse(const char *s, PosixRule *r)
{
  int off;

  memset(r, 0, sizeof *r);
  if (!posix_name(&s) || !posix_hms(&s, 24, &off))
    return false;
  r->std_off = -off;
  if (!*s)
    return true;
  if (!posix_name(&s))
    return false;
  r->has_dst = true;
  r->dst_off = r->std_off + 3600;
  if (*s && *s != ',') {
    if (!posix_hms(&s, 24, &off))
      return false;
    r->dst_off = -off;
  }
  if (!*s) {
    /* No rule: POSIX leaves it to the implementation; use the US rule
     * like glibc and tzcode. */
    r->start = (PosixDate){ 'M', 0, 2, 3, 7200 };
    r->end = (PosixDate){ 'M', 0, 1, 11, 7200 };
    return true;
  }
  if (*s++ != ',' || !posix_date(&s, &r->start) || *s++ != ',' ||
      !posix_date(&s, &r->end))
    return false;
  return *s == '\0';
}

/* Local-midnight day number (days since 1970-01-01) of a rule date. */
static int64_t posix_day(const PosixDate *d, int64_t y)
{
  int64_t jan1 = rqi_days_from_civil(y, 1, 1);

  if (d->kind == 'J')
    return jan1 + d->day - 1 + (rqi_days_in_month(y, 2) == 29 && d->day >= 60);
  if (d->kind == 'N')
    return jan1 + d->day;
  int64_t first = rqi_days_from_civil(y, d->month, 1);
  int64_t day = first + (d->day - weekday_of_days(first) + 7) % 7 +
                (int64_t)(d->week - 1) * 7;
  while (day >= first + rqi_days_in_month(y, d->month))
    day -= 7;                       /* week 5: the last such weekday */
  return day;
}

static bool posix_is_dst(const PosixRule *r, int64_t t)
{
  int64_t y;
  int m, d;

  if (!r->has_dst)
    return false;
  rqi_civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
  int64_t start = posix_day(&r->start, y) * 86400 + r->start.time_s -
                  r->std_off;
  int64_t end = posix_day(&r->end, y) * 86400 + r->end.time_s - r->dst_off;
  if (start < end)
    return t >= start && t < end;
  return !(t >= end && t < start);  /* southern hemisphere */
}

/* ------------------------------------------------------ TZif files */
typedef struct {
  const unsigned char *p;
  size_t left;
} Reader;

static bool rd_skip(Reader *r, size_t n)
{
  if (n > r->left)
    return false;
  r->p += n;
  r->left -= n;
  return true;
}

static int64_t be(const unsigned char *p, int bytes)
{
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v = v << 8 | p[i];
  if (bytes == 4)
    return (int32_t)(uint32_t)v;
  return (int64_t)v;
}

typedef struct {
  char version;
  size_t isut, isstd, leap, time, type, chars;
} TzHeader;

static bool read_header(Reader *r, TzHeader *h)
{
  size_t c[6];

  if (r->left < 44 || memcmp(r->p, "TZif", 4) != 0)
    return false;
  h->version = (char)r->p[4];
  for (int i = 0; i < 6; i++) {
    int64_t v = be(r->p + 20 + 4 * i, 4);
    if (v < 0 || v > TZ_MAX_FILE)
      return false;
    c[i] = (size_t)v;
  }
  h->isut = c[0];
  h->isstd = c[1];
  h->leap = c[2];
  h->time = c[3];
  h->type = c[4];
  h->chars = c[5];
  return rd_skip(r, 44) && h->type >= 1 && h->type <= 256;
}

static size_t block_size(const TzHeader *h, int tsize)
{
  return h->time * (size_t)tsize + h->time + h->type * 6 + h->chars +
         h->leap * (size_t)(tsize + 4) + h->isstd + h->isut;
}

/* Copies one data block into z; tsize is 4 (v1) or 8 (v2+). */
static bool read_block(Reader *r, const TzHeader *h, int tsize, RqZone *z)
{
  const unsigned char *p = r->p;

  if (block_size(h, tsize) > r->left)
    return false;
  z->n_trans = h->time;
  z->n_types = h->type;
  z->trans = rq_calloc(h->time + 1, sizeof *z->trans);
  z->trans_type = rq_calloc(h->time + 1, 1);
  z->type_off = rq_calloc(h->type, sizeof *z->type_off);
  z->type_dst = rq_calloc(h->type, sizeof *z->type_dst);
  for (size_t i = 0; i < h->time; i++, p += tsize) {
    z->trans[i] = be(p, tsize);
    if (i > 0 && z->trans[i] <= z->trans[i - 1])
      return false;
  }
  for (size_t i = 0; i < h->time; i++, p++) {
    if (*p >= h->type)
      return false;
    z->trans_type[i] = *p;
  }
  for (size_t i = 0; i < h->type; i++, p += 6) {
    int64_t off = be(p, 4);
    if (off < -TZ_MAX_OFFSET || off > TZ_MAX_OFFSET || p[4] > 1)
      return false;
    z->type_off[i] = (int32_t)off;
    z->type_dst[i] = p[4] == 1;
  }
  return rd_skip(r, block_size(h, tsize));
}

static void free_data(RqZone *z)
{
  rq_free(z->trans);
  rq_free(z->trans_type);
  rq_free(z->type_off);
  rq_free(z->type_dst);
  z->trans = NULL;
  z->trans_type = NULL;
  z->type_off = NULL;
  z->type_dst = NULL;
}

/* The footer "\n<POSIX TZ>\n" of a v2+ file; empty means none. */
static bool read_footer(Reader *r, RqZone *z)
{
  const char *s = (const char *)r->p;
  const char *nl;
  char buf[128];

  if (r->left < 2 || s[0] != '\n')
    return false;
  nl = memchr(s + 1, '\n', r->left - 1);
  if (!nl || (size_t)(nl - s - 1) >= sizeof buf)
    return false;
  if (nl == s + 1)
    return true;
  memcpy(buf, s + 1, (size_t)(nl - s - 1));
  buf[nl - s - 1] = '\0';
  if (!posix_parse(buf, &z->rule))
    return false;
  z->has_rule = true;
  return true;
}

static bool parse_tzif(const unsigned char *data, size_t n, RqZone *z)
{
  Reader r = { data, n };
  TzHeader h;

  if (!read_header(&r, &h))
    return false;
  if (h.version == '\0')
    return read_block(&r, &h, 4, z);
  /* v2+: skip the 32-bit block, use the 64-bit one and the footer. */
  if (!rd_skip(&r, block_size(&h, 4)) || !read_header(&r, &h))
    return false;
  return read_block(&r, &h, 8, z) && read_footer(&r, z);
}

/* Reads the whole file into a new buffer; NULL if missing, not a regular
 * file or implausibly large. */
static unsigned char *slurp(const char *path, size_t *n)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  unsigned char *buf;
  size_t got = 0;

  if (fd < 0)
    return NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size > TZ_MAX_FILE) {
    close(fd);
    return NULL;
  }
  buf = rq_malloc((size_t)st.st_size + 1);
  while (got < (size_t)st.st_size) {
    ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  close(fd);
  *n = got;
  return buf;
}

/* Names are relative paths below the tz directory: refuse anything that
 * could leave it or that no IANA name contains. */
static bool name_is_safe(const char *name)
{
  size_t n = strlen(name);

  if (n == 0 || n > TZ_MAX_NAME || name[0] == '/' || strstr(name, ".."))
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '-' ||
          c == '+' || c == '.'))
      return false;
  }
  return true;
}

static RqZone *new_utc(void)
{
  RqZone *z = rq_calloc(1, sizeof *z);
  z->name = rq_strdup("UTC");
  z->n_types = 1;
  z->type_off = rq_calloc(1, sizeof *z->type_off);
  z->type_dst = rq_calloc(1, sizeof *z->type_dst);
  return z;
}

static RqZone *unknown_zone(const char *name, char *err, size_t errlen)
{
  if (errlen > 0)
    snprintf(err, errlen, "unknown timezone '%.100s'", name);
  return NULL;
}

RqZone *rqi_tz_load(const char *name, char *err, size_t errlen)
{
  const char *dir = getenv("TZDIR");
  char path[4096];
  unsigned char *data;
  size_t n = 0;
  RqZone *z;
  int len;

  if (errlen > 0)
    err[0] = '\0';
  if (!name || strcmp(name, "UTC") == 0)
    return new_utc();
  if (!name_is_safe(name))
    return unknown_zone(name, err, errlen);
  if (!dir || !*dir)
    dir = "/usr/share/zoneinfo";
  len = snprintf(path, sizeof path, "%s/%s", dir, name);
  if (len < 0 || (size_t)len >= sizeof path)
    return unknown_zone(name, err, errlen);
  data = slurp(path, &n);
  if (!data)
    return unknown_zone(name, err, errlen);
  z = rq_calloc(1, sizeof *z);
  if (!parse_tzif(data, n, z)) {
    rq_free(data);
    free_data(z);
    rq_free(z);
    return unknown_zone(name, err, errlen);
  }
  rq_free(data);
  z->name = rq_strdup(name);
  return z;
}

void rqi_tz_free(RqZone *z)
{
  if (!z)
    return;
  free_data(z);
  rq_free(z->name);
  rq_free(z);
}

const char *rqi_tz_name(const RqZone *z)
{
  return z->name;
}

/* ------------------------------------------------------ conversions */
int rqi_tz_offset(const RqZone *z, int64_t t, bool *is_dst)
{
  size_t lo = 0, hi = z->n_trans;
  bool dst;
  int off;

  if (z->has_rule && (z->n_trans == 0 || t >= z->trans[z->n_trans - 1])) {
    dst = posix_is_dst(&z->rule, t);
    off = dst ? z->rule.dst_off : z->rule.std_off;
  } else if (z->n_trans == 0 || t < z->trans[0]) {
    dst = z->type_dst[0];           /* RFC 8536: type 0 before the first */
    off = z->type_off[0];
  } else {
    while (hi - lo > 1) {           /* last transition at or before t */
      size_t mid = lo + (hi - lo) / 2;
      if (z->trans[mid] <= t)
        lo = mid;
      else
        hi = mid;
    }
    dst = z->type_dst[z->trans_type[lo]];
    off = z->type_off[z->trans_type[lo]];
  }
  if (is_dst)
    *is_dst = dst;
  return off;
}

void rqi_tz_to_civil(const RqZone *z, int64_t t, RqCivil *out)
{
  bool dst;
  int off = rqi_tz_offset(z, t, &dst);
  int64_t local = t + off;
  int64_t days = floor_div(local, 86400);
  int64_t secs = local - days * 86400;
  int64_t y;

  rqi_civil_from_days(days, &y, &out->month, &out->day);
  out->year = (int)y;
  out->hour = (int)(secs / 3600);
  out->min = (int)(secs / 60 % 60);
  out->sec = (int)(secs % 60);
  out->wday = weekday_of_days(days);
  out->utc_offset = off;
  out->is_dst = dst;
}

/* The instant L - off is a valid reading of local time L when the zone's
 * offset at that instant is off. */
static void try_offset(const RqZone *z, int64_t local, int off, bool *found,
                       int64_t *best)
{
  int64_t t = local - off;

  if (rqi_tz_offset(z, t, NULL) != off)
    return;
  if (!*found || t < *best)
    *best = t;                      /* overlap: the earliest instant */
  *found = true;
}

bool rqi_tz_from_civil(const RqZone *z, int year, int month, int day,
                       int hour, int min, int sec, int64_t *out)
{
  int64_t local = rqi_days_from_civil(year, month, day) * 86400 +
                  hour * 3600 + min * 60 + sec;
  int cand[4];
  bool found = false;
  int64_t best = 0;

  /* Transitions are at least days apart, so the offsets in effect a day
   * either side (and the ones they lead to) cover every reading. */
  cand[0] = rqi_tz_offset(z, local - 86400, NULL);
  cand[1] = rqi_tz_offset(z, local + 86400, NULL);
  cand[2] = rqi_tz_offset(z, local - cand[0], NULL);
  cand[3] = rqi_tz_offset(z, local - cand[1], NULL);
  for (int i = 0; i < 4; i++)
    try_offset(z, local, cand[i], &found, &best);
  if (found)
    *out = best;
  return found;
}
