/* schedule.c -- the schedule arithmetic of SPEC §9.1-§9.2: cron
 * expressions parsed into bitsets and matched against wall-clock time in
 * a zone, the three `at` forms, `every`, and rqi_schedule_next, the one
 * pure decision "when is this mission next due" that the daemon calls
 * with its clock as an input.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "rq_internal.h"
#include "rq_schedule.h"

/* Long enough for the next Feb 29 across a non-leap century year (2096
 * to 2104); nothing later means the expression never matches. */
#define CRON_SEARCH_YEARS 8

/* ------------------------------------------------------------- cron */
static const char *const field_names[5] = {
  "minute", "hour", "day-of-month", "month", "day-of-week",
};
static const int field_lo[5] = { 0, 0, 1, 1, 0 };
static const int field_hi[5] = { 59, 23, 31, 12, 7 };
static const char *const month_names[12] = {
  "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
  "NOV", "DEC",
};
static const char *const wday_names[7] = {
  "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
};
static const struct { const char *name; const char *fields; } macros[] = {
  { "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" },
  { "@monthly", "0 0 1 * *" }, { "@weekly", "0 0 * * 0" },
  { "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
  { "@hourly", "0 * * * *" },
};

/* A number, or a month/day name (any case) in the fields that take one;
 * field -1 is a step (digits only). */
static bool cron_value(const char *s, size_t n, int field, int *out)
{
  long v = 0;

  if (n == 0)
    return false;
  if (s[0] >= '0' && s[0] <= '9') {
    for (size_t i = 0; i < n; i++) {
      if (s[i] < '0' || s[i] > '9')
        return false;
      if (v < 100000)
        v = v * 10 + (s[i] - '0');
    }
    *out = (int)v;
    return true;
  }
  if (n == 3 && (field == 3 || field == 4)) {
    const char *const *names = field == 3 ? month_names : wday_names;
    int count = field == 3 ? 12 : 7;
    for (int i = 0; i < count; i++)
      if (strncasecmp(s, names[i], 3) == 0) {
        *out = field == 3 ? i + 1 : i;
        return true;
      }
  }
  return false;
}

static int cron_error(char *err, size_t errlen, int f, const char *what,
                      const char *s, size_t n)
{
  if (errlen > 0)
    snprintf(err, errlen, "cron field '%s': %s '%.*s'", field_names[f],
             what, (int)(n < 60 ? n : 60), s);
  return -1;
}

/* One comma-list item: *, n, a-b, each optionally /step; `n/step` runs
 * from n to the field maximum. */
static int cron_item(int f, const char *s, size_t n, uint64_t *bits,
                     char *err, size_t errlen)
{
  const char *slash = memchr(s, '/', n);
  size_t bn = slash ? (size_t)(slash - s) : n;
  const char *dash = memchr(s, '-', bn);
  int a, b, step = 1;

  if (slash && (!cron_value(slash + 1, n - bn - 1, -1, &step) || step < 1))
    return cron_error(err, errlen, f, "invalid step in", s, n);
  if (bn == 1 && s[0] == '*') {
    a = field_lo[f];
    b = field_hi[f];
  } else if (dash) {
    size_t an = (size_t)(dash - s);
    if (!cron_value(s, an, f, &a) ||
        !cron_value(dash + 1, bn - an - 1, f, &b))
      return cron_error(err, errlen, f, "invalid value", s, n);
  } else {
    if (!cron_value(s, bn, f, &a))
      return cron_error(err, errlen, f, "invalid value", s, n);
    b = slash ? field_hi[f] : a;
  }
  if (a < field_lo[f] || b > field_hi[f] || a > b)
    return cron_error(err, errlen, f, "out of range or reversed", s, n);
  for (int v = a; v <= b; v += step)
    *bits |= (uint64_t)1 << v;
  return 0;
}

/* A whole field: a comma list of items. */
static int cron_field(int f, const char *s, size_t n, uint64_t *bits,
                      char *err, size_t errlen)
{
  const char *field = s, *end = s + n;

  *bits = 0;
  while (s <= end) {
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *stop = comma ? comma : end;
    if (stop == s)
      return cron_error(err, errlen, f, "empty list item in", field, n);
    if (cron_item(f, s, (size_t)(stop - s), bits, err, errlen) != 0)
      return -1;
    s = stop + 1;
  }
  return 0;
}

static void cron_store(RqCron *c, const uint64_t bits[5], bool star[5])
{
  uint64_t wd = bits[4];

  if (wd & (uint64_t)1 << 7)
    wd = (wd | 1) & ~((uint64_t)1 << 7);     /* 7 is Sunday too */
  c->minutes = bits[0];
  c->hours = (uint32_t)bits[1];
  c->mdays = (uint32_t)bits[2];
  c->months = (uint16_t)bits[3];
  c->wdays = (uint8_t)wd;
  /* crontab(5): a day field is restricted when it does not start with
   * a star, so a stepped star is unrestricted too (Vixie cron and
   * cronie agree). */
  c->mday_restricted = !star[2];
  c->wday_restricted = !star[4];
}

int rqi_cron_parse(const char *expr, RqCron *out, char *err, size_t errlen)
{
  const char *p = expr;
  uint64_t bits[5];
  bool star[5] = { false, false, false, false, false };
  int n = 0;

  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '@') {
    size_t m = strcspn(p, " \t");
    const char *rest = p + m + strspn(p + m, " \t");
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
      if (strlen(macros[i].name) == m && strncmp(p, macros[i].name, m) == 0
          && !*rest)
        return rqi_cron_parse(macros[i].fields, out, err, errlen);
    if (errlen > 0)
      snprintf(err, errlen, "invalid cron macro '%.*s'",
               (int)(m < 60 ? m : 60), p);
    return -1;
  }
  while (*p) {
    size_t m = strcspn(p, " \t");
    if (n < 5 && cron_field(n, p, m, &bits[n], err, errlen) != 0)
      return -1;
    if (n < 5)
      star[n] = *p == '*';
    n++;
    p += m;
    p += strspn(p, " \t");
  }
  if (n != 5) {
    if (errlen > 0)
      snprintf(err, errlen, "cron expression needs 5 fields (minute hour "
               "day-of-month month day-of-week), found %d", n);
    return -1;
  }
  cron_store(out, bits, star);
  return 0;
}

static bool has_bit(uint64_t bits, int v)
{
  return (bits >> v) & 1;
}

/* Standard cron: with both day fields restricted, either may match. */
static bool day_matches(const RqCron *c, int64_t y, int m, int d)
{
  int wd = (int)((rqi_days_from_civil(y, m, d) % 7 + 11) % 7);
  bool md = has_bit(c->mdays, d), w = has_bit(c->wdays, wd);

  if (c->mday_restricted && c->wday_restricted)
    return md || w;
  return md && w;
}

/* A wall-clock minute being searched. */
typedef struct {
  int64_t y;
  int mo, d, h, mi;
} Minute;

/* Carries overflowing fields upwards; each is at most one over. */
static void carry(Minute *t)
{
  if (t->mi > 59) {
    t->mi = 0;
    t->h++;
  }
  if (t->h > 23) {
    t->h = 0;
    t->d++;
  }
  if (t->d > rqi_days_in_month(t->y, t->mo)) {
    t->d = 1;
    t->mo++;
  }
  if (t->mo > 12) {
    t->mo = 1;
    t->y++;
  }
}

/* Advances t to the next wall-clock minute whose fields all match, at
 * or after t, skipping whole months/days/hours that cannot match.
 * Returns false past year `limit`. */
static bool next_match(const RqCron *c, Minute *t, int64_t limit)
{
  for (;;) {
    carry(t);
    if (t->y > limit)
      return false;
    if (!has_bit(c->months, t->mo)) {
      if (++t->mo > 12) {       /* carry() would read day counts of 13 */
        t->mo = 1;
        t->y++;
      }
      t->d = 1;
      t->h = 0;
      t->mi = 0;
    } else if (!day_matches(c, t->y, t->mo, t->d)) {
      t->d++;
      t->h = 0;
      t->mi = 0;
    } else if (!has_bit(c->hours, t->h)) {
      t->h++;
      t->mi = 0;
    } else if (!has_bit(c->minutes, t->mi)) {
      t->mi++;
    } else {
      return true;
    }
  }
}

bool rqi_cron_next(const RqCron *c, const RqZone *z, double after_ms,
                   double *next_ms)
{
  RqCivil now;
  Minute t;
  int64_t limit;

  if (!(fabs(after_ms) < 8.64e15))   /* NaN, inf, beyond JS dates */
    return false;
  /* Start at the wall-clock minute after the one containing after_ms. */
  rqi_tz_to_civil(z, (int64_t)floor(after_ms / 1000.0), &now);
  t = (Minute){ now.year, now.month, now.day, now.hour, now.min + 1 };
  limit = now.year + CRON_SEARCH_YEARS;
  while (next_match(c, &t, limit)) {
    int64_t inst;
    /* A gap minute does not exist: skip it.  An overlap minute maps to
     * its first occurrence, which is <= after_ms on the second pass, so
     * it fires once. */
    if (rqi_tz_from_civil(z, (int)t.y, t.mo, t.d, t.h, t.mi, 0, &inst) &&
        (double)inst * 1000.0 > after_ms) {
      *next_ms = (double)inst * 1000.0;
      return true;
    }
    t.mi++;
  }
  return false;
}

/* --------------------------------------------------------------- at */
static bool digits(const char **p, int n, int *out)
{
  int v = 0;

  for (int i = 0; i < n; i++) {
    char ch = (*p)[i];
    if (ch < '0' || ch > '9')
      return false;
    v = v * 10 + (ch - '0');
  }
  *p += n;
  *out = v;
  return true;
}

/* HH:MM, with :SS when secs_ok. */
static bool clock_time(const char **p, bool secs_ok, RqAtSpec *a)
{
  a->sec = 0;
  if (!digits(p, 2, &a->hour) || *(*p)++ != ':' || !digits(p, 2, &a->min) ||
      a->hour > 23 || a->min > 59)
    return false;
  if (secs_ok && **p == ':') {
    (*p)++;
    if (!digits(p, 2, &a->sec) || a->sec > 59)
      return false;
  }
  return true;
}

/* What follows the time: nothing (zone wall clock), " UTC" after a
 * space, or Z / +HH:MM / -HH:MM after a T. */
static bool at_offset(const char *p, char sep, RqAtSpec *a)
{
  int hh, mm;
  int sign;

  a->has_offset = *p != '\0';
  a->offset_s = 0;
  if (!*p)
    return true;
  if (sep == ' ')
    return strcmp(p, " UTC") == 0;
  if (strcmp(p, "Z") == 0)
    return true;
  if (*p != '+' && *p != '-')
    return false;
  sign = *p++ == '-' ? -1 : 1;
  if (!digits(&p, 2, &hh) || *p++ != ':' || !digits(&p, 2, &mm) || *p ||
      hh > 23 || mm > 59)
    return false;
  a->offset_s = sign * (hh * 3600 + mm * 60);
  return true;
}

int rqi_at_parse(const char *text, RqAtSpec *out)
{
  const char *p = text;
  RqAtSpec a;
  char sep;

  memset(&a, 0, sizeof a);
  if (strlen(text) == 5) {
    a.daily = true;
    if (!clock_time(&p, false, &a) || *p)
      return -1;
    *out = a;
    return 0;
  }
  if (!digits(&p, 4, &a.year) || *p++ != '-' || !digits(&p, 2, &a.month) ||
      *p++ != '-' || !digits(&p, 2, &a.day))
    return -1;
  if (a.month < 1 || a.month > 12 || a.day < 1 ||
      a.day > rqi_days_in_month(a.year, a.month))
    return -1;
  sep = *p++;
  if ((sep != 'T' && sep != ' ') || !clock_time(&p, true, &a) ||
      !at_offset(p, sep, &a))
    return -1;
  *out = a;
  return 0;
}

bool rqi_at_instant(const RqAtSpec *a, const RqZone *z, double *ms)
{
  int64_t t;

  if (a->has_offset) {
    t = rqi_days_from_civil(a->year, a->month, a->day) * 86400 +
        a->hour * 3600 + a->min * 60 + a->sec - a->offset_s;
  } else if (!rqi_tz_from_civil(z, a->year, a->month, a->day, a->hour,
                                a->min, a->sec, &t)) {
    return false;                   /* §9.2: a gap time never happens */
  }
  *ms = (double)t * 1000.0;
  return true;
}

/* --------------------------------------------------------- schedules */
static int bad_expr(char *err, size_t errlen, const char *what,
                    const char *text)
{
  if (errlen > 0)
    snprintf(err, errlen, "invalid %s '%.100s'", what, text ? text : "");
  return RQ_SCHED_EBADEXPR;
}

/* Fills the kind-specific part of s; the zone is already loaded. */
static int schedule_parse(const RqScheduleDef *def, RqSchedule *s,
                          char *err, size_t errlen)
{
  RqAtSpec at;

  switch (def->kind) {
  case RQ_SCHED_EVERY:
    if (!(def->every_ms >= 1))
      return bad_expr(err, errlen, "every interval", "");
    s->every_ms = def->every_ms;
    return 0;
  case RQ_SCHED_CRON:
    if (!def->expr ||
        rqi_cron_parse(def->expr, &s->cron, err, errlen) != 0)
      return RQ_SCHED_EBADEXPR;
    return 0;
  case RQ_SCHED_AT:
    if (!def->expr || rqi_at_parse(def->expr, &at) != 0)
      return bad_expr(err, errlen, "at time", def->expr);
    if (at.daily) {
      /* Every day at HH:MM is the cron "MM HH * * *". */
      char expr[32];
      snprintf(expr, sizeof expr, "%d %d * * *", at.min, at.hour);
      s->at_daily = true;
      return rqi_cron_parse(expr, &s->cron, err, errlen) == 0
             ? 0 : RQ_SCHED_EBADEXPR;
    }
    s->at_exists = rqi_at_instant(&at, s->zone, &s->at_ms);
    return 0;
  case RQ_SCHED_NONE:
    return 0;
  }
  return bad_expr(err, errlen, "schedule kind", "");
}

int rqi_schedule_init(const RqScheduleDef *def, RqSchedule *out, char *err,
                      size_t errlen)
{
  int rc;

  memset(out, 0, sizeof *out);
  if (errlen > 0)
    err[0] = '\0';
  out->kind = def->kind;
  out->zone = rqi_tz_load(def->timezone, err, errlen);
  if (!out->zone)
    return RQ_SCHED_EBADZONE;
  rc = schedule_parse(def, out, err, errlen);
  if (rc != 0)
    rqi_schedule_clear(out);
  return rc;
}

void rqi_schedule_clear(RqSchedule *s)
{
  rqi_tz_free(s->zone);
  memset(s, 0, sizeof *s);
}

/* every: lastStart + interval, but never in the past (no replay) and, if
 * the clock went back, never more than one interval ahead. */
static double next_every(const RqSchedule *s, const RqSchedState *st,
                         double now)
{
  double due;

  if (!st->ran)
    return now;
  due = st->last_run_ms + s->every_ms;
  if (due < now)
    return now;
  return due > now + s->every_ms ? now + s->every_ms : due;
}

/* Dated at: runs once.  Past and not yet run at or after it: now. */
static bool next_dated_at(const RqSchedule *s, const RqSchedState *st,
                          double now, double *due)
{
  if (!s->at_exists)
    return false;
  if ((st->ran && st->last_run_ms >= s->at_ms) ||
      (st->scheduled && st->last_scheduled_ms >= s->at_ms))
    return false;
  *due = s->at_ms > now ? s->at_ms : now;
  return true;
}

bool rqi_schedule_next(const RqSchedule *s, const RqSchedState *st,
                       double now_ms, double *due_ms)
{
  double base = now_ms;

  switch (s->kind) {
  case RQ_SCHED_EVERY:
    *due_ms = next_every(s, st, now_ms);
    return true;
  case RQ_SCHED_CRON:
    break;
  case RQ_SCHED_AT:
    if (!s->at_daily)
      return next_dated_at(s, st, now_ms, due_ms);
    break;
  case RQ_SCHED_NONE:
    return false;
  }
  if (st->scheduled && st->last_scheduled_ms > base)
    base = st->last_scheduled_ms;
  return rqi_cron_next(&s->cron, s->zone, base, due_ms);
}
