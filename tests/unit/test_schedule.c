/* test_schedule.c -- unit tests of runtime/schedule.c (SPEC §9.1-§9.2)
 * with an injected clock, never sleeping: cron fields, steps, names,
 * macros, the day-of-month/day-of-week OR rule, month ends, leap days,
 * DST gaps and overlaps in Europe/Berlin and America/New_York, "strictly
 * after", the three `at` forms, `every` after downtime, and
 * rqi_schedule_init errors (unknown timezone). */
#include "reqon.h"
#include "rq_schedule.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <time.h>

/* Epoch ms of a UTC civil time, by glibc (independent of tz.c). */
static double utc(int y, int mo, int d, int h, int mi)
{
  struct tm tm = { 0 };
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (double)timegm(&tm) * 1000.0;
}

/* The next cron match strictly after `after` in zone `zone` (NULL: UTC);
 * -1 for never, -2 for a parse or zone error. */
static double next_in(const char *expr, const char *zone, double after)
{
  char err[200];
  RqCron c;
  RqZone *z = rqi_tz_load(zone, err, sizeof err);
  double next;

  if (!z)
    return -2;
  if (rqi_cron_parse(expr, &c, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", expr, err);
    rqi_tz_free(z);
    return -2;
  }
  if (!rqi_cron_next(&c, z, after, &next))
    next = -1;
  rqi_tz_free(z);
  return next;
}

static double next_utc(const char *expr, double after)
{
  return next_in(expr, NULL, after);
}

/* Parse error text for expr, or "" when it parses. */
static const char *cron_err(const char *expr)
{
  static char err[200];
  RqCron c;

  if (rqi_cron_parse(expr, &c, err, sizeof err) == 0)
    return "";
  return err;
}

static void test_cron_parse(void)
{
  RqCron c;
  char err[200];

  CHECK(rqi_cron_parse("*/7 * * * *", &c, err, sizeof err) == 0);
  uint64_t want = 0;
  for (int m = 0; m < 60; m += 7)
    want |= (uint64_t)1 << m;
  CHECK(c.minutes == want);
  CHECK(c.hours == 0xffffff);
  CHECK(!c.mday_restricted && !c.wday_restricted);
  CHECK(rqi_cron_parse("0 0 * * 7", &c, err, sizeof err) == 0);
  CHECK(c.wdays == 1 && c.wday_restricted);
  /* crontab(5): restricted means "does not start with a star", even
   * when the values cover the whole range. */
  CHECK(rqi_cron_parse("0 0 * * 0-7", &c, err, sizeof err) == 0);
  CHECK(c.wdays == 0x7f && c.wday_restricted);
  CHECK(rqi_cron_parse("0 0 1-31 * *", &c, err, sizeof err) == 0);
  CHECK(c.mday_restricted);
  CHECK(rqi_cron_parse("0 0 */2 * 1", &c, err, sizeof err) == 0);
  CHECK(!c.mday_restricted && c.wday_restricted);
  CHECK(rqi_cron_parse("0 0 * jan-Mar,DEC sat,sun", &c, err,
                       sizeof err) == 0);
  CHECK(c.months == (1 << 1 | 1 << 2 | 1 << 3 | 1 << 12));
  CHECK(c.wdays == (1 << 0 | 1 << 6));
  CHECK(rqi_cron_parse("  5/20  20/2\t* * *  ", &c, err, sizeof err) == 0);
  CHECK(c.minutes == ((uint64_t)1 << 5 | (uint64_t)1 << 25 |
                      (uint64_t)1 << 45));
  CHECK(c.hours == (1u << 20 | 1u << 22));

  CHECK_STREQ(cron_err("60 * * * *"),
              "cron field 'minute': out of range or reversed '60'");
  CHECK_STREQ(cron_err("* 24 * * *"),
              "cron field 'hour': out of range or reversed '24'");
  CHECK_STREQ(cron_err("* * 0 * *"),
              "cron field 'day-of-month': out of range or reversed '0'");
  CHECK_STREQ(cron_err("* * * 13 *"),
              "cron field 'month': out of range or reversed '13'");
  CHECK_STREQ(cron_err("* * * * 8"),
              "cron field 'day-of-week': out of range or reversed '8'");
  CHECK_STREQ(cron_err("5-1 * * * *"),
              "cron field 'minute': out of range or reversed '5-1'");
  CHECK_STREQ(cron_err("*/0 * * * *"),
              "cron field 'minute': invalid step in '*/0'");
  CHECK_STREQ(cron_err("MON * * * *"),
              "cron field 'minute': invalid value 'MON'");
  CHECK_STREQ(cron_err("* * * * MONDAY"),
              "cron field 'day-of-week': invalid value 'MONDAY'");
  CHECK_STREQ(cron_err("1,,2 * * * *"),
              "cron field 'minute': empty list item in '1,,2'");
  CHECK_STREQ(cron_err("* * * *"), "cron expression needs 5 fields "
              "(minute hour day-of-month month day-of-week), found 4");
  CHECK_STREQ(cron_err("* * * * * *"), "cron expression needs 5 fields "
              "(minute hour day-of-month month day-of-week), found 6");
  CHECK_STREQ(cron_err("@reboot"), "invalid cron macro '@reboot'");
  CHECK_STREQ(cron_err("@daily 5"), "invalid cron macro '@daily'");
  CHECK_STREQ(cron_err(""), "cron expression needs 5 fields "
              "(minute hour day-of-month month day-of-week), found 0");
  CHECK_STREQ(cron_err("@Daily"), "invalid cron macro '@Daily'");
}

static void test_cron_steps(void)
{
  double t = utc(2026, 11, 22, 10, 0);
  int minutes[10], n = 0;

  /* 0,7,...,56 then the next hour at 0. */
  for (;;) {
    t = next_utc("*/7 * * * *", t);
    if (t < 0 || t >= utc(2026, 11, 22, 11, 1) || n == 10)
      break;
    minutes[n++] = (int)fmod(t / 60000.0, 60.0);
  }
  CHECK(n == 9);
  CHECK(n == 9 && minutes[0] == 7 && minutes[1] == 14 && minutes[6] == 49 &&
        minutes[7] == 56 && minutes[8] == 0);
  CHECK(next_utc("*/7 * * * *", utc(2026, 11, 22, 10, 56)) ==
        utc(2026, 11, 22, 11, 0));
  /* a/s: from a to the field maximum. */
  CHECK(next_utc("5/20 * * * *", utc(2026, 11, 22, 10, 5)) ==
        utc(2026, 11, 22, 10, 25));
  CHECK(next_utc("5/20 * * * *", utc(2026, 11, 22, 10, 45)) ==
        utc(2026, 11, 22, 11, 5));
  CHECK(next_utc("0 20/2 * * *", utc(2026, 11, 22, 20, 0)) ==
        utc(2026, 11, 22, 22, 0));
  CHECK(next_utc("0 20/2 * * *", utc(2026, 11, 22, 22, 0)) ==
        utc(2026, 11, 23, 20, 0));
  /* Ranges with steps, lists. */
  CHECK(next_utc("10-30/10 * * * *", utc(2026, 11, 22, 10, 10)) ==
        utc(2026, 11, 22, 10, 20));
  CHECK(next_utc("10-30/10 * * * *", utc(2026, 11, 22, 10, 30)) ==
        utc(2026, 11, 22, 11, 10));
  CHECK(next_utc("0,15,45 * * * *", utc(2026, 11, 22, 10, 15)) ==
        utc(2026, 11, 22, 10, 45));
  CHECK(next_utc("0,15,45 9-17/4 * * *", utc(2026, 11, 22, 17, 45)) ==
        utc(2026, 11, 23, 9, 0));
  CHECK(next_utc("0,15,45 9-17/4 * * *", utc(2026, 11, 22, 9, 45)) ==
        utc(2026, 11, 22, 13, 0));
}

/* The next run is strictly after the given instant. */
static void test_strictly_after(void)
{
  double noon = utc(2026, 11, 22, 12, 0);

  CHECK(next_utc("0 12 * * *", noon) == utc(2026, 11, 23, 12, 0));
  CHECK(next_utc("0 12 * * *", noon - 1) == noon);
  CHECK(next_utc("0 12 * * *", noon - 0.5) == noon);
  CHECK(next_utc("0 12 * * *", noon + 1) == utc(2026, 11, 23, 12, 0));
  CHECK(next_utc("* * * * *", noon) == noon + 60000);
  CHECK(next_utc("* * * * *", noon + 59999) == noon + 60000);
  CHECK(next_utc("* * * * *", noon - 1) == noon);
  CHECK(next_utc("* * * * *", NAN) == -1);
  CHECK(next_utc("* * * * *", INFINITY) == -1);
  CHECK(next_utc("* * * * *", 1e300) == -1);
  CHECK(next_utc("* * * * *", -1) == 0);
}

static void test_cron_names_and_days(void)
{
  /* 2026-01-02 is a Friday; January and July, Monday to Friday. */
  const char *wk = "0 9 * JAN,jul mon-FRI";
  CHECK(next_utc(wk, utc(2026, 1, 2, 10, 0)) == utc(2026, 1, 5, 9, 0));
  CHECK(next_utc(wk, utc(2026, 1, 30, 10, 0)) == utc(2026, 7, 1, 9, 0));
  /* 7, 0 and SUN are all Sunday; 2026-11-22 is a Sunday. */
  double now = utc(2026, 11, 22, 2, 43);
  CHECK(next_utc("0 0 * * 7", now) == utc(2026, 11, 29, 0, 0));
  CHECK(next_utc("0 0 * * 0", now) == utc(2026, 11, 29, 0, 0));
  CHECK(next_utc("0 0 * * sun", now) == utc(2026, 11, 29, 0, 0));
  CHECK(next_utc("0 0 * * 5-7", now) == utc(2026, 11, 27, 0, 0));
  CHECK(next_utc("0 0 * * 6-7", utc(2026, 11, 28, 1, 0)) ==
        utc(2026, 11, 29, 0, 0));
  /* Both day fields restricted: the 13th OR a Friday. */
  CHECK(next_utc("0 0 13 * 5", now) == utc(2026, 11, 27, 0, 0));
  CHECK(next_utc("0 0 13 * 5", utc(2026, 12, 11, 0, 0)) ==
        utc(2026, 12, 13, 0, 0));       /* a Sunday, by its date */
  CHECK(next_utc("0 0 13 * fri", utc(2026, 12, 13, 0, 0)) ==
        utc(2026, 12, 18, 0, 0));
  /* Only one restricted: that one alone decides. */
  CHECK(next_utc("0 0 13 * *", now) == utc(2026, 12, 13, 0, 0));
  CHECK(next_utc("0 0 * * 5", now) == utc(2026, 11, 27, 0, 0));
  /* A stepped star is not restricted: odd days that are Mondays
   * (2026-11-23 is one; after it, 2026-11-30 is even and 2026-12-07
   * is the next). */
  CHECK(next_utc("0 0 */2 * 1", now) == utc(2026, 11, 23, 0, 0));
  CHECK(next_utc("0 0 */2 * 1", utc(2026, 11, 23, 0, 0)) ==
        utc(2026, 12, 7, 0, 0));
  /* A full range without a star is restricted: OR gives every day. */
  CHECK(next_utc("0 0 1-31 * 5", now) == utc(2026, 11, 23, 0, 0));
  CHECK(next_utc("0 0 13 * 0-7", now) == utc(2026, 11, 23, 0, 0));
}

static void test_macros(void)
{
  double now = utc(2026, 11, 22, 2, 43);

  CHECK(next_utc("@yearly", now) == utc(2027, 1, 1, 0, 0));
  CHECK(next_utc("@annually", now) == utc(2027, 1, 1, 0, 0));
  CHECK(next_utc("@monthly", now) == utc(2026, 12, 1, 0, 0));
  CHECK(next_utc("@weekly", now) == utc(2026, 11, 29, 0, 0));
  CHECK(next_utc("@daily", now) == utc(2026, 11, 23, 0, 0));
  CHECK(next_utc("@midnight", now) == utc(2026, 11, 23, 0, 0));
  CHECK(next_utc("@hourly", now) == utc(2026, 11, 22, 3, 0));
  CHECK(next_utc(" @hourly ", utc(2026, 11, 22, 3, 0)) ==
        utc(2026, 11, 22, 4, 0));
}

static void test_month_ends_and_leap(void)
{
  /* The 31st never matches a 30-day month. */
  CHECK(next_utc("0 0 31 * *", utc(2026, 4, 1, 0, 0)) ==
        utc(2026, 5, 31, 0, 0));
  CHECK(next_utc("0 0 31 * *", utc(2026, 5, 31, 0, 0)) ==
        utc(2026, 7, 31, 0, 0));
  CHECK(next_utc("0 0 30 * *", utc(2026, 1, 30, 0, 0)) ==
        utc(2026, 3, 30, 0, 0));
  CHECK(next_utc("0 0 30 2 *", utc(2026, 1, 1, 0, 0)) == -1);
  CHECK(next_utc("0 0 31 4,6,9,11 *", utc(2026, 1, 1, 0, 0)) == -1);
  /* Leap days: across non-leap years, and across 2100 (not leap). */
  CHECK(next_utc("0 0 29 2 *", utc(2026, 3, 1, 0, 0)) ==
        utc(2028, 2, 29, 0, 0));
  CHECK(next_utc("0 0 29 2 *", utc(2028, 2, 29, 0, 0)) ==
        utc(2032, 2, 29, 0, 0));
  CHECK(next_utc("0 0 29 2 *", utc(2096, 3, 1, 0, 0)) ==
        utc(2104, 2, 29, 0, 0));
  CHECK(next_utc("59 23 28 2 *", utc(2028, 2, 28, 23, 59)) ==
        utc(2029, 2, 28, 23, 59));
  /* Year end. */
  CHECK(next_utc("* * * * *", utc(2026, 12, 31, 23, 59)) ==
        utc(2027, 1, 1, 0, 0));
}

static void test_cron_dst(void)
{
  const char *be = "Europe/Berlin", *ny = "America/New_York";

  /* Berlin spring gap 2026-03-29 02:00-03:00: 02:30 does not exist. */
  CHECK(next_in("30 2 * * *", be, utc(2026, 3, 28, 2, 0)) ==
        utc(2026, 3, 30, 0, 30));
  CHECK(next_in("30 2 * * *", be, utc(2026, 3, 27, 2, 0)) ==
        utc(2026, 3, 28, 1, 30));
  CHECK(next_in("*/15 * * * *", be, utc(2026, 3, 29, 0, 45)) ==
        utc(2026, 3, 29, 1, 0));         /* 01:45 CET -> 03:00 CEST */
  CHECK(next_in("0 3 * * *", be, utc(2026, 3, 28, 12, 0)) ==
        utc(2026, 3, 29, 1, 0));
  /* Berlin fall overlap 2026-10-25 02:00-03:00 twice: once, the first. */
  double first = next_in("30 2 * * *", be, utc(2026, 10, 24, 12, 0));
  CHECK(first == utc(2026, 10, 25, 0, 30));     /* 02:30 CEST */
  CHECK(next_in("30 2 * * *", be, first) == utc(2026, 10, 26, 1, 30));
  CHECK(next_in("30 2 * * *", be, utc(2026, 10, 25, 1, 15)) ==
        utc(2026, 10, 26, 1, 30));     /* started in the second pass */
  CHECK(next_in("*/15 * * * *", be, utc(2026, 10, 25, 0, 45)) ==
        utc(2026, 10, 25, 2, 0));      /* 02:00-02:45 CET were run */
  CHECK(next_in("0 * * * *", be, utc(2026, 10, 24, 23, 30)) ==
        utc(2026, 10, 25, 0, 0));      /* 02:00 CEST */
  /* New York: gap 2026-03-08 02:00-03:00, overlap 2026-11-01 01:00-02:00. */
  CHECK(next_in("30 2 * * *", ny, utc(2026, 3, 7, 12, 0)) ==
        utc(2026, 3, 9, 6, 30));
  first = next_in("30 1 * * *", ny, utc(2026, 10, 31, 12, 0));
  CHECK(first == utc(2026, 11, 1, 5, 30));      /* 01:30 EDT */
  CHECK(next_in("30 1 * * *", ny, first) == utc(2026, 11, 2, 6, 30));
  CHECK(next_in("0 9 * * *", ny, utc(2026, 7, 1, 0, 0)) ==
        utc(2026, 7, 1, 13, 0));
  CHECK(next_in("0 9 * * *", ny, utc(2026, 12, 1, 0, 0)) ==
        utc(2026, 12, 1, 14, 0));
  /* Wall clock with a 45-minute offset. */
  CHECK(next_in("0 9 * * *", "Asia/Kathmandu", utc(2026, 1, 1, 0, 0)) ==
        utc(2026, 1, 1, 3, 15));
  /* The POSIX footer era (2090, past the file's transitions). */
  CHECK(next_in("30 2 * * *", be, utc(2090, 3, 25, 12, 0)) ==
        utc(2090, 3, 27, 0, 30));
  CHECK(next_in("0 0 1 1 *", "Mars/Base", 0) == -2);
}

/* ------------------------------------- brute force as a second opinion */
static uint32_t rng_state = 12345;

static int rnd(int n)
{
  rng_state = rng_state * 1103515245u + 12345u;
  return (int)((rng_state >> 16) % (uint32_t)n);
}

/* A random field: *, n, a-b, * / s, a-b/s, a/s or a list of two. */
static void random_field(char *out, size_t n, int lo, int hi)
{
  int a = lo + rnd(hi - lo + 1), b = a + rnd(hi - a + 1), s = 1 + rnd(9);

  switch (rnd(7)) {
  case 0: snprintf(out, n, "*"); break;
  case 1: snprintf(out, n, "%d", a); break;
  case 2: snprintf(out, n, "%d-%d", a, b); break;
  case 3: snprintf(out, n, "*/%d", s); break;
  case 4: snprintf(out, n, "%d-%d/%d", a, b, s); break;
  case 5: snprintf(out, n, "%d/%d", a, s); break;
  default: snprintf(out, n, "%d,%d", a, b); break;
  }
}

/* The first minute instant after `after` whose wall-clock time matches
 * and is the first occurrence of that wall-clock time, minute by minute
 * over `days` days; -1 if none. */
static double brute_next(const RqCron *c, const RqZone *z, double after,
                         int days)
{
  int64_t t = (int64_t)floor(after / 60000.0) * 60 + 60;

  for (int i = 0; i < days * 1440; i++, t += 60) {
    RqCivil v;
    int64_t first;
    rqi_tz_to_civil(z, t, &v);
    bool dom = (c->mdays >> v.day) & 1, dow = (c->wdays >> v.wday) & 1;
    bool day = c->mday_restricted && c->wday_restricted ? dom || dow
                                                        : dom && dow;
    if (v.sec == 0 && ((c->minutes >> v.min) & 1) &&
        ((c->hours >> v.hour) & 1) && ((c->months >> v.month) & 1) && day &&
        rqi_tz_from_civil(z, v.year, v.month, v.day, v.hour, v.min, 0,
                          &first) && first == t)
      return (double)t * 1000.0;
  }
  return -1;
}

static void test_cron_random(void)
{
  static const char *const zones[] = {
    NULL, "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
  };
  const double starts[] = {
    utc(2026, 3, 28, 20, 0), utc(2026, 10, 24, 20, 0),
    utc(2026, 3, 7, 20, 0), utc(2026, 10, 31, 20, 0),
    utc(2026, 4, 4, 10, 0), utc(2026, 10, 3, 10, 0),
  };
  int mismatches = 0, found = 0;

  for (int i = 0; i < 400; i++) {
    char f[5][32], expr[200], err[200];
    RqCron c;
    RqZone *z = rqi_tz_load(zones[rnd(4)], err, sizeof err);
    random_field(f[0], sizeof f[0], 0, 59);
    random_field(f[1], sizeof f[1], 0, 23);
    snprintf(f[2], sizeof f[2], "%s", rnd(3) ? "*" : "1-28/3");
    snprintf(f[3], sizeof f[3], "*");
    snprintf(f[4], sizeof f[4], "%s", rnd(3) ? "*" : "1-5");
    snprintf(expr, sizeof expr, "%s %s %s %s %s", f[0], f[1], f[2], f[3],
             f[4]);
    if (!z || rqi_cron_parse(expr, &c, err, sizeof err) != 0) {
      fprintf(stderr, "random: %s: %s\n", expr, err);
      mismatches++;
      rqi_tz_free(z);
      continue;
    }
    double after = starts[rnd(6)] + rnd(36 * 60) * 60000.0 + rnd(60000);
    double want = brute_next(&c, z, after, 4), got;
    if (!rqi_cron_next(&c, z, after, &got))
      got = -1;
    if (want >= 0)
      found++;
    if (want >= 0 ? got != want : got >= 0 && got < after + 4 * 86400e3) {
      if (mismatches++ < 5)
        fprintf(stderr, "random: '%s' in %s after %.0f: got %.0f, want "
                "%.0f\n", expr, rqi_tz_name(z), after, got, want);
    }
    rqi_tz_free(z);
  }
  CHECK(mismatches == 0);
  CHECK(found > 300);
}

static double at_ms(const char *text, const char *zone, bool *exists)
{
  char err[100];
  RqAtSpec a;
  RqZone *z = rqi_tz_load(zone, err, sizeof err);
  double ms = -1;

  *exists = false;
  if (z && rqi_at_parse(text, &a) == 0 && !a.daily)
    *exists = rqi_at_instant(&a, z, &ms);
  rqi_tz_free(z);
  return ms;
}

static void test_at_parse(void)
{
  static const char *const good[] = {
    "00:00", "23:59", "2026-01-01T10:00", "2026-01-01T10:00:30",
    "2026-01-01T10:00Z", "2026-01-01T10:00:30+05:30", "2026-01-01T10:00-08:00",
    "2026-01-01 10:00", "2026-01-01 10:00:59 UTC", "2024-02-29 00:00",
  };
  static const char *const bad[] = {
    "24:00", "12:60", "1:00", "12:00:00", "2026-02-29 10:00",
    "2026-13-01T00:00Z", "2026-01-01T10:00 UTC", "2026-01-01 10:00Z",
    "2026-01-01", "2026-01-01X10:00", "2026-01-01T10:00+5:30",
    "2026-01-01T10:00+05:60", "2026-01-01T10:00:60", "", "tomorrow",
    "2026-04-31 10:00", "2026-01-01 10:00 utc",
  };
  RqAtSpec a;

  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    CHECK(rqi_at_parse(good[i], &a) == 0);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(rqi_at_parse(bad[i], &a) == -1);
  CHECK(rqi_at_parse("07:05", &a) == 0 && a.daily && a.hour == 7 &&
        a.min == 5);
  CHECK(rqi_at_parse("2026-01-01T10:00:30-08:00", &a) == 0 && !a.daily &&
        a.has_offset && a.offset_s == -28800 && a.sec == 30);
  CHECK(rqi_at_parse("2026-01-01 10:00", &a) == 0 && !a.has_offset);
  CHECK(rqi_at_parse("2026-01-01 10:00 UTC", &a) == 0 && a.has_offset &&
        a.offset_s == 0);
}

static void test_at_instants(void)
{
  bool ok;

  CHECK(at_ms("2026-07-01T12:00Z", "Europe/Berlin", &ok) ==
        utc(2026, 7, 1, 12, 0) && ok);
  CHECK(at_ms("2026-07-01T12:00:30+05:30", NULL, &ok) ==
        utc(2026, 7, 1, 6, 30) + 30000 && ok);
  /* Without an offset: wall clock in the mission's zone (default UTC). */
  CHECK(at_ms("2026-07-01 12:00", "Europe/Berlin", &ok) ==
        utc(2026, 7, 1, 10, 0) && ok);
  CHECK(at_ms("2026-07-01T12:00", "Europe/Berlin", &ok) ==
        utc(2026, 7, 1, 10, 0) && ok);
  CHECK(at_ms("2026-07-01 12:00", NULL, &ok) == utc(2026, 7, 1, 12, 0) &&
        ok);
  CHECK(at_ms("2026-07-01 12:00 UTC", "Europe/Berlin", &ok) ==
        utc(2026, 7, 1, 12, 0) && ok);
  CHECK(at_ms("2026-12-01 12:00", "America/New_York", &ok) ==
        utc(2026, 12, 1, 17, 0) && ok);
  /* In a gap the time never happens; in an overlap, the first. */
  at_ms("2026-03-29 02:30", "Europe/Berlin", &ok);
  CHECK(!ok);
  CHECK(at_ms("2026-11-01 01:30", "America/New_York", &ok) ==
        utc(2026, 11, 1, 5, 30) && ok);
}

/* rqi_schedule_init + rqi_schedule_next on a fresh schedule. */
static bool decide(RqSchedKind kind, const char *expr, double every_ms,
                   const char *zone, const RqSchedState *st, double now,
                   double *due)
{
  RqScheduleDef def = { 0 };
  RqSchedule s;
  char err[200];
  bool r;

  def.kind = kind;
  def.expr = expr;
  def.every_ms = every_ms;
  def.timezone = zone;
  if (rqi_schedule_init(&def, &s, err, sizeof err) != 0) {
    fprintf(stderr, "init: %s\n", err);
    *due = -2;
    return false;
  }
  r = rqi_schedule_next(&s, st, now, due);
  rqi_schedule_clear(&s);
  return r;
}

static void test_every(void)
{
  RqSchedState none = { 0 }, st = { 0 };
  double now = utc(2026, 11, 22, 12, 0) + 123, due;
  double min = 60000;

  /* First start: at once. */
  CHECK(decide(RQ_SCHED_EVERY, NULL, 5 * min, NULL, &none, now, &due) &&
        due == now);
  /* A run less than one interval ago: lastStart + interval. */
  st.ran = true;
  st.last_run_ms = now - 2 * min;
  CHECK(decide(RQ_SCHED_EVERY, NULL, 5 * min, NULL, &st, now, &due) &&
        due == now + 3 * min);
  /* Exactly one interval ago: due now. */
  st.last_run_ms = now - 5 * min;
  CHECK(decide(RQ_SCHED_EVERY, NULL, 5 * min, NULL, &st, now, &due) &&
        due == now);
  /* After 3 hours of downtime: one immediate run, then the interval
   * counts from that run (nothing replayed). */
  st.last_run_ms = now - 180 * min;
  CHECK(decide(RQ_SCHED_EVERY, NULL, 5 * min, NULL, &st, now, &due) &&
        due == now);
  st.last_run_ms = now;
  CHECK(decide(RQ_SCHED_EVERY, NULL, 5 * min, NULL, &st, now + 1000,
               &due) && due == now + 5 * min);
  /* The clock went back: no more than one interval ahead. */
  st.last_run_ms = now + 60 * min;
  CHECK(decide(RQ_SCHED_EVERY, NULL, 5 * min, NULL, &st, now, &due) &&
        due == now + 5 * min);
  /* Polling does not move it: same answer at any `now` before due. */
  st.last_run_ms = now;
  CHECK(decide(RQ_SCHED_EVERY, NULL, 5 * min, NULL, &st, now + 4 * min,
               &due) && due == now + 5 * min);
}

static void test_schedule_cron(void)
{
  RqSchedState st = { 0 };
  double now = utc(2026, 11, 22, 2, 43), due;

  CHECK(decide(RQ_SCHED_CRON, "*/15 * * * *", 0, NULL, &st, now, &due) &&
        due == utc(2026, 11, 22, 2, 45));
  /* After firing at 02:45 (slightly late), the next is 03:00. */
  st.scheduled = true;
  st.last_scheduled_ms = utc(2026, 11, 22, 2, 45);
  st.ran = true;
  st.last_run_ms = st.last_scheduled_ms + 20;
  CHECK(decide(RQ_SCHED_CRON, "*/15 * * * *", 0, NULL, &st,
               st.last_run_ms, &due) && due == utc(2026, 11, 22, 3, 0));
  /* The later of now and the last scheduled time (clock went back). */
  CHECK(decide(RQ_SCHED_CRON, "*/15 * * * *", 0, NULL, &st, now - 3600000,
               &due) && due == utc(2026, 11, 22, 3, 0));
  /* Downtime: missed occurrences are not replayed. */
  CHECK(decide(RQ_SCHED_CRON, "*/15 * * * *", 0, NULL, &st,
               utc(2026, 11, 22, 9, 7), &due) &&
        due == utc(2026, 11, 22, 9, 15));
  st = (RqSchedState){ .scheduled = false };
  CHECK(decide(RQ_SCHED_CRON, "30 2 * * *", 0, "Europe/Berlin", &st,
               utc(2026, 3, 28, 2, 0), &due) &&
        due == utc(2026, 3, 30, 0, 30));
  CHECK(!decide(RQ_SCHED_CRON, "0 0 30 2 *", 0, NULL, &st, now, &due));
  CHECK(!decide(RQ_SCHED_NONE, NULL, 0, NULL, &st, now, &due));
}

static void test_schedule_at(void)
{
  RqSchedState never = { 0 }, st = { 0 };
  double at = utc(2026, 12, 1, 9, 0), due;
  const char *dated = "2026-12-01T09:00Z";

  /* Future: its instant, whatever the clock says before then. */
  CHECK(decide(RQ_SCHED_AT, dated, 0, NULL, &never, at - 86400000, &due) &&
        due == at);
  /* Past and never ran: now, once. */
  CHECK(decide(RQ_SCHED_AT, dated, 0, NULL, &never, at + 3600000, &due) &&
        due == at + 3600000);
  /* Ran at (or after) it: never again. */
  st.ran = true;
  st.last_run_ms = at + 5;
  CHECK(!decide(RQ_SCHED_AT, dated, 0, NULL, &st, at + 3600000, &due));
  st.ran = false;
  st.scheduled = true;
  st.last_scheduled_ms = at;
  CHECK(!decide(RQ_SCHED_AT, dated, 0, NULL, &st, at + 3600000, &due));
  /* A run from before that time does not count as running it. */
  st.scheduled = false;
  st.ran = true;
  st.last_run_ms = at - 86400000;
  CHECK(decide(RQ_SCHED_AT, dated, 0, NULL, &st, at + 1000, &due) &&
        due == at + 1000);
  /* Offsets and zone wall clock. */
  CHECK(decide(RQ_SCHED_AT, "2026-12-01T09:00+01:00", 0, "America/New_York",
               &never, 0, &due) && due == at - 3600000);
  CHECK(decide(RQ_SCHED_AT, "2026-12-01 10:00", 0, "Europe/Berlin",
               &never, 0, &due) && due == at);
  CHECK(decide(RQ_SCHED_AT, "2026-12-01 09:00 UTC", 0, "Europe/Berlin",
               &never, 0, &due) && due == at);
  CHECK(!decide(RQ_SCHED_AT, "2026-03-29 02:30", 0, "Europe/Berlin",
                &never, 0, &due));
  /* Daily HH:MM, across midnight. */
  CHECK(decide(RQ_SCHED_AT, "23:30", 0, NULL, &never,
               utc(2026, 11, 22, 23, 45), &due) &&
        due == utc(2026, 11, 23, 23, 30));
  CHECK(decide(RQ_SCHED_AT, "23:30", 0, NULL, &never,
               utc(2026, 11, 22, 23, 15), &due) &&
        due == utc(2026, 11, 22, 23, 30));
  CHECK(decide(RQ_SCHED_AT, "00:15", 0, NULL, &never,
               utc(2026, 12, 31, 23, 50), &due) &&
        due == utc(2027, 1, 1, 0, 15));
  /* 23:00 EST on Nov 21 = 04:00 UTC Nov 22; 00:15 EST is 05:15 UTC. */
  CHECK(decide(RQ_SCHED_AT, "00:15", 0, "America/New_York", &never,
               utc(2026, 11, 22, 4, 0), &due) &&
        due == utc(2026, 11, 22, 5, 15));
  st = (RqSchedState){ .scheduled = true,
                       .last_scheduled_ms = utc(2026, 11, 22, 23, 30) };
  CHECK(decide(RQ_SCHED_AT, "23:30", 0, NULL, &st,
               utc(2026, 11, 22, 23, 30) + 10, &due) &&
        due == utc(2026, 11, 23, 23, 30));
}

static void test_init_errors(void)
{
  RqScheduleDef def = { 0 };
  RqSchedule s;
  char err[200];

  def.kind = RQ_SCHED_CRON;
  def.expr = "0 * * * *";
  def.timezone = "Mars/Olympus_Mons";
  CHECK(rqi_schedule_init(&def, &s, err, sizeof err) == RQ_SCHED_EBADZONE);
  CHECK_STREQ(err, "unknown timezone 'Mars/Olympus_Mons'");
  def.timezone = "../../etc/passwd";
  CHECK(rqi_schedule_init(&def, &s, err, sizeof err) == RQ_SCHED_EBADZONE);
  CHECK_STREQ(err, "unknown timezone '../../etc/passwd'");
  def.timezone = "Europe/Berlin";
  def.expr = "0 * * *";
  CHECK(rqi_schedule_init(&def, &s, err, sizeof err) == RQ_SCHED_EBADEXPR);
  def.kind = RQ_SCHED_AT;
  def.expr = "25:00";
  CHECK(rqi_schedule_init(&def, &s, err, sizeof err) == RQ_SCHED_EBADEXPR);
  CHECK_STREQ(err, "invalid at time '25:00'");
  def.kind = RQ_SCHED_EVERY;
  def.every_ms = 0;
  CHECK(rqi_schedule_init(&def, &s, err, sizeof err) == RQ_SCHED_EBADEXPR);
  def.kind = RQ_SCHED_CRON;
  def.expr = "@daily";
  CHECK(rqi_schedule_init(&def, &s, err, sizeof err) == 0);
  CHECK_STREQ(rqi_tz_name(s.zone), "Europe/Berlin");
  rqi_schedule_clear(&s);
  CHECK(s.zone == NULL);
}

int main(void)
{
  unsetenv("TZDIR");
  test_cron_parse();
  test_cron_steps();
  test_strictly_after();
  test_cron_names_and_days();
  test_macros();
  test_month_ends_and_leap();
  test_cron_dst();
  test_cron_random();
  test_at_parse();
  test_at_instants();
  test_every();
  test_schedule_cron();
  test_schedule_at();
  test_init_errors();
  return check_report();
}
