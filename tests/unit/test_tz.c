/* test_tz.c -- unit tests of runtime/tz.c: civil-date helpers, UTC and
 * IANA zones from the system tz database (offsets at exact transition
 * instants, the POSIX footer past 2037, round trips, DST gaps and
 * overlaps), hand-made v1 and footer-only TZif files, unknown and unsafe
 * names.  glibc's localtime_r with TZ set is used as an oracle: the test
 * may change TZ, the runtime never does. */
#include "reqon.h"
#include "rq_schedule.h"
#include "rq_util.h"
#include "check.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Epoch seconds of a UTC civil time, by glibc (independent of tz.c). */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
  struct tm tm = { 0 };
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return (int64_t)timegm(&tm);
}

static RqZone *load(const char *name)
{
  char err[200];
  RqZone *z = rqi_tz_load(name, err, sizeof err);
  if (!z)
    fprintf(stderr, "cannot load %s: %s\n", name, err);
  return z;
}

static bool civil_is(const RqCivil *c, int y, int mo, int d, int h, int mi,
                     int s, int off)
{
  return c->year == y && c->month == mo && c->day == d && c->hour == h &&
         c->min == mi && c->sec == s && c->utc_offset == off;
}

static void test_civil_days(void)
{
  int64_t y;
  int m, d;

  CHECK(rqi_days_from_civil(1970, 1, 1) == 0);
  CHECK(rqi_days_from_civil(2000, 3, 1) == utc(2000, 3, 1, 0, 0, 0) / 86400);
  CHECK(rqi_days_from_civil(1969, 12, 31) == -1);
  CHECK(rqi_days_from_civil(1900, 1, 1) == utc(1900, 1, 1, 0, 0, 0) / 86400);
  int bad = 0;
  for (int64_t day = -800000; day <= 800000; day += 997) {
    rqi_civil_from_days(day, &y, &m, &d);
    bad += rqi_days_from_civil(y, m, d) != day || m < 1 || m > 12 ||
           d < 1 || d > rqi_days_in_month(y, m);
  }
  CHECK(bad == 0);
  rqi_civil_from_days(utc(2024, 2, 29, 0, 0, 0) / 86400, &y, &m, &d);
  CHECK(y == 2024 && m == 2 && d == 29);
  CHECK(rqi_days_in_month(2024, 2) == 29);
  CHECK(rqi_days_in_month(2023, 2) == 28);
  CHECK(rqi_days_in_month(2100, 2) == 28);
  CHECK(rqi_days_in_month(2000, 2) == 29);
  CHECK(rqi_days_in_month(2026, 4) == 30);
  CHECK(rqi_days_in_month(2026, 12) == 31);
}

static void test_utc(void)
{
  char err[100];
  RqZone *z = rqi_tz_load(NULL, err, sizeof err);
  RqCivil c;
  int64_t t;

  CHECK(z != NULL);
  CHECK_STREQ(rqi_tz_name(z), "UTC");
  rqi_tz_to_civil(z, utc(2026, 11, 22, 2, 43, 7), &c);
  CHECK(civil_is(&c, 2026, 11, 22, 2, 43, 7, 0));
  CHECK(c.wday == 0 && !c.is_dst);          /* a Sunday */
  rqi_tz_to_civil(z, -1, &c);
  CHECK(civil_is(&c, 1969, 12, 31, 23, 59, 59, 0));
  CHECK(c.wday == 3);
  CHECK(rqi_tz_from_civil(z, 2026, 3, 29, 2, 30, 0, &t));
  CHECK(t == utc(2026, 3, 29, 2, 30, 0));
  rqi_tz_free(z);
  z = rqi_tz_load("UTC", err, sizeof err);
  CHECK(z != NULL && rqi_tz_offset(z, 0, NULL) == 0);
  rqi_tz_free(z);
  rqi_tz_free(NULL);
}

/* Offsets just before and exactly at each 2026 transition. */
static void test_transitions(void)
{
  RqZone *be = load("Europe/Berlin"), *ny = load("America/New_York");
  bool dst;

  if (!be || !ny) {
    CHECK(!"zones load");
    rqi_tz_free(be);
    rqi_tz_free(ny);
    return;
  }
  CHECK_STREQ(rqi_tz_name(be), "Europe/Berlin");
  int64_t t = utc(2026, 3, 29, 1, 0, 0);
  CHECK(rqi_tz_offset(be, t - 1, &dst) == 3600 && !dst);
  CHECK(rqi_tz_offset(be, t, &dst) == 7200 && dst);
  t = utc(2026, 10, 25, 1, 0, 0);
  CHECK(rqi_tz_offset(be, t - 1, &dst) == 7200 && dst);
  CHECK(rqi_tz_offset(be, t, &dst) == 3600 && !dst);
  t = utc(2026, 3, 8, 7, 0, 0);
  CHECK(rqi_tz_offset(ny, t - 1, NULL) == -18000);
  CHECK(rqi_tz_offset(ny, t, NULL) == -14400);
  t = utc(2026, 11, 1, 6, 0, 0);
  CHECK(rqi_tz_offset(ny, t - 1, NULL) == -14400);
  CHECK(rqi_tz_offset(ny, t, NULL) == -18000);

  RqCivil c;
  rqi_tz_to_civil(be, utc(2026, 3, 29, 0, 59, 59), &c);
  CHECK(civil_is(&c, 2026, 3, 29, 1, 59, 59, 3600));
  rqi_tz_to_civil(be, utc(2026, 3, 29, 1, 0, 0), &c);
  CHECK(civil_is(&c, 2026, 3, 29, 3, 0, 0, 7200) && c.is_dst);
  rqi_tz_to_civil(ny, utc(2026, 11, 1, 5, 30, 0), &c);
  CHECK(civil_is(&c, 2026, 11, 1, 1, 30, 0, -14400));
  rqi_tz_to_civil(ny, utc(2026, 11, 1, 6, 30, 0), &c);
  CHECK(civil_is(&c, 2026, 11, 1, 1, 30, 0, -18000));
  CHECK(c.wday == 0);
  rqi_tz_free(be);
  rqi_tz_free(ny);
}

/* Past the last transition of the file the POSIX footer decides. */
static void test_footer(void)
{
  RqZone *be = load("Europe/Berlin"), *ny = load("America/New_York");
  RqZone *syd = load("Australia/Sydney");
  int64_t t;

  if (!be || !ny || !syd) {
    CHECK(!"zones load");
    rqi_tz_free(be);
    rqi_tz_free(ny);
    rqi_tz_free(syd);
    return;
  }
  /* 2090: last Sunday of March is the 26th, of October the 29th. */
  t = utc(2090, 3, 26, 1, 0, 0);
  CHECK(rqi_tz_offset(be, t - 1, NULL) == 3600);
  CHECK(rqi_tz_offset(be, t, NULL) == 7200);
  t = utc(2090, 10, 29, 1, 0, 0);
  CHECK(rqi_tz_offset(be, t - 1, NULL) == 7200);
  CHECK(rqi_tz_offset(be, t, NULL) == 3600);
  /* US: second Sunday of March (12th), first of November (5th). */
  t = utc(2090, 3, 12, 7, 0, 0);
  CHECK(rqi_tz_offset(ny, t - 1, NULL) == -18000);
  CHECK(rqi_tz_offset(ny, t, NULL) == -14400);
  t = utc(2090, 11, 5, 6, 0, 0);
  CHECK(rqi_tz_offset(ny, t - 1, NULL) == -14400);
  CHECK(rqi_tz_offset(ny, t, NULL) == -18000);
  /* Southern hemisphere: DST across the new year. */
  CHECK(rqi_tz_offset(syd, utc(2090, 1, 15, 0, 0, 0), NULL) == 39600);
  CHECK(rqi_tz_offset(syd, utc(2090, 7, 15, 0, 0, 0), NULL) == 36000);
  RqCivil c;
  rqi_tz_to_civil(be, utc(2090, 7, 1, 12, 0, 0), &c);
  CHECK(civil_is(&c, 2090, 7, 1, 14, 0, 0, 7200) && c.is_dst);
  CHECK(rqi_tz_from_civil(be, 2090, 3, 26, 2, 30, 0, &t) == false);
  rqi_tz_free(be);
  rqi_tz_free(ny);
  rqi_tz_free(syd);
}

/* glibc as the oracle: offsets of many instants 1900-2100 in zones with
 * odd rules (half hours, southern DST, 30-minute DST, no DST). */
static void test_against_libc(void)
{
  static const char *const zones[] = {
    "Europe/Berlin", "America/New_York", "Australia/Sydney",
    "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns",
    "Pacific/Chatham", "Asia/Tokyo", "America/Santiago", "Africa/Casablanca",
    "Pacific/Apia", "Europe/Dublin",
  };
  int bad = 0, checked = 0;
  char *saved = getenv("TZ") ? rq_strdup(getenv("TZ")) : NULL;

  for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
    RqZone *z = load(zones[i]);
    if (!z) {
      bad++;
      continue;
    }
    setenv("TZ", zones[i], 1);
    tzset();
    for (int64_t t = utc(1901, 1, 1, 0, 0, 0); t < utc(2100, 1, 1, 0, 0, 0);
         t += 86400 * 3 + 3599) {
      time_t tt = (time_t)t;
      struct tm tm;
      RqCivil c;
      localtime_r(&tt, &tm);
      rqi_tz_to_civil(z, t, &c);
      checked++;
      if (c.utc_offset != tm.tm_gmtoff || c.hour != tm.tm_hour ||
          c.day != tm.tm_mday || c.wday != tm.tm_wday ||
          c.is_dst != (tm.tm_isdst > 0)) {
        if (bad++ < 5)
          fprintf(stderr, "%s at %lld: ours %d libc %ld\n", zones[i],
                  (long long)t, c.utc_offset, (long)tm.tm_gmtoff);
      }
      int64_t back;
      if (!rqi_tz_from_civil(z, c.year, c.month, c.day, c.hour, c.min,
                             c.sec, &back) || back > t) {
        if (bad++ < 5)
          fprintf(stderr, "%s: %lld does not round-trip\n", zones[i],
                  (long long)t);
      }
    }
    rqi_tz_free(z);
  }
  if (saved) {
    setenv("TZ", saved, 1);
    rq_free(saved);
  } else {
    unsetenv("TZ");
  }
  tzset();
  CHECK(checked > 200000);
  CHECK(bad == 0);
}

/* Wall clock to instant: plain, gap (none), overlap (first). */
static void test_from_civil(void)
{
  RqZone *be = load("Europe/Berlin"), *ny = load("America/New_York");
  int64_t t;

  if (!be || !ny) {
    CHECK(!"zones load");
    rqi_tz_free(be);
    rqi_tz_free(ny);
    return;
  }
  CHECK(rqi_tz_from_civil(be, 2026, 7, 1, 12, 0, 0, &t));
  CHECK(t == utc(2026, 7, 1, 10, 0, 0));
  CHECK(rqi_tz_from_civil(be, 2026, 1, 1, 0, 0, 0, &t));
  CHECK(t == utc(2025, 12, 31, 23, 0, 0));
  /* Spring gap 02:00-03:00 does not exist. */
  CHECK(!rqi_tz_from_civil(be, 2026, 3, 29, 2, 0, 0, &t));
  CHECK(!rqi_tz_from_civil(be, 2026, 3, 29, 2, 59, 59, &t));
  CHECK(rqi_tz_from_civil(be, 2026, 3, 29, 1, 59, 59, &t));
  CHECK(t == utc(2026, 3, 29, 0, 59, 59));
  CHECK(rqi_tz_from_civil(be, 2026, 3, 29, 3, 0, 0, &t));
  CHECK(t == utc(2026, 3, 29, 1, 0, 0));
  /* Fall overlap 02:00-03:00 happens twice: the first (CEST) wins. */
  CHECK(rqi_tz_from_civil(be, 2026, 10, 25, 2, 30, 0, &t));
  CHECK(t == utc(2026, 10, 25, 0, 30, 0));
  CHECK(rqi_tz_from_civil(be, 2026, 10, 25, 3, 0, 0, &t));
  CHECK(t == utc(2026, 10, 25, 2, 0, 0));
  CHECK(!rqi_tz_from_civil(ny, 2026, 3, 8, 2, 30, 0, &t));
  CHECK(rqi_tz_from_civil(ny, 2026, 11, 1, 1, 30, 0, &t));
  CHECK(t == utc(2026, 11, 1, 5, 30, 0));
  CHECK(rqi_tz_from_civil(ny, 2026, 11, 1, 0, 59, 0, &t));
  CHECK(t == utc(2026, 11, 1, 4, 59, 0));
  CHECK(rqi_tz_from_civil(ny, 2026, 11, 1, 2, 0, 0, &t));
  CHECK(t == utc(2026, 11, 1, 7, 0, 0));
  rqi_tz_free(be);
  rqi_tz_free(ny);
}

static void test_bad_names(void)
{
  static const char *const bad[] = {
    "Mars/Olympus_Mons", "../zoneinfo/Europe/Berlin", "Europe/../Europe/Berlin",
    "/usr/share/zoneinfo/Europe/Berlin", "", "Europe", "Europe/Berlin ",
    "zone.tab", "Europe/Berlin\n",
  };
  char err[200];

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(err, sizeof err, "x");
    CHECK(rqi_tz_load(bad[i], err, sizeof err) == NULL);
    CHECK(strncmp(err, "unknown timezone '", 18) == 0);
  }
  CHECK(rqi_tz_load("Mars/Olympus_Mons", err, sizeof err) == NULL);
  CHECK_STREQ(err, "unknown timezone 'Mars/Olympus_Mons'");
  CHECK(rqi_tz_load("Mars", err, 0) == NULL);   /* errlen 0: no write */
}

/* ---------------------------------------------- hand-made TZif files */
typedef struct {
  unsigned char b[512];
  size_t n;
} Bytes;

static void put(Bytes *o, const void *p, size_t n)
{
  memcpy(o->b + o->n, p, n);
  o->n += n;
}

static void put_be(Bytes *o, int64_t v, int bytes)
{
  for (int i = bytes - 1; i >= 0; i--)
    o->b[o->n++] = (unsigned char)((uint64_t)v >> (8 * i));
}

/* Header and one data block: n transitions at[] to types[] among two
 * types (offset off0 std, off1 dst). */
static void put_block(Bytes *o, char version, int tsize, int n,
                      const int64_t *at, const unsigned char *types,
                      int off0, int off1)
{
  unsigned char zero[15] = { 0 };
  put(o, "TZif", 4);
  o->b[o->n++] = (unsigned char)version;
  put(o, zero, 15);
  put_be(o, 0, 4);                  /* isutcnt */
  put_be(o, 0, 4);                  /* isstdcnt */
  put_be(o, 0, 4);                  /* leapcnt */
  put_be(o, n, 4);                  /* timecnt */
  put_be(o, 2, 4);                  /* typecnt */
  put_be(o, 8, 4);                  /* charcnt */
  for (int i = 0; i < n; i++)
    put_be(o, at[i], tsize);
  put(o, types, (size_t)n);
  put_be(o, off0, 4);
  o->b[o->n++] = 0;
  o->b[o->n++] = 0;
  put_be(o, off1, 4);
  o->b[o->n++] = 1;
  o->b[o->n++] = 4;
  put(o, "AAA\0BBB\0", 8);
}

static void write_file(const char *dir, const char *name, const Bytes *o)
{
  char path[300];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(o->b, 1, o->n, f);
    fclose(f);
  }
}

static void test_handmade(void)
{
  char dir[] = "/tmp/test_tz.XXXXXX";
  char *saved = getenv("TZDIR") ? rq_strdup(getenv("TZDIR")) : NULL;
  int64_t at[2] = { 1000000, 2000000 };
  unsigned char types[2] = { 1, 0 };
  Bytes v1 = { .n = 0 }, v2 = { .n = 0 }, jul = { .n = 0 };
  Bytes junk = { .n = 0 };
  char err[100];
  RqZone *z;

  if (!mkdtemp(dir)) {
    CHECK(!"mkdtemp");
    rq_free(saved);
    return;
  }
  /* v1 only: +1 h, +2 h from 1000000 to 2000000, +1 h after. */
  put_block(&v1, '\0', 4, 2, at, types, 3600, 7200);
  write_file(dir, "V1", &v1);
  /* v2 with an empty v1 block, no transitions and only a footer. */
  put_block(&v2, '2', 4, 0, at, types, 0, 0);
  put_block(&v2, '2', 8, 0, at, types, -10800, -7200);
  {
    static const char footer[] = "\n<-03>3<-02>,M3.5.0/-2,M10.5.0/-1\n";
    put(&v2, footer, sizeof footer - 1);
  }
  write_file(dir, "Footer", &v2);
  /* Julian rule forms: Jn never counts Feb 29, n (from 0) does. */
  put_block(&jul, '2', 4, 0, at, types, 0, 0);
  put_block(&jul, '2', 8, 0, at, types, 3600, 7200);
  {
    static const char footer[] = "\n<+01>-1<+02>,J60,300/1\n";
    put(&jul, footer, sizeof footer - 1);
  }
  write_file(dir, "Julian", &jul);
  put(&junk, "TZif2 but then nothing", 22);
  write_file(dir, "Junk", &junk);
  setenv("TZDIR", dir, 1);

  z = rqi_tz_load("V1", err, sizeof err);
  CHECK(z != NULL);
  if (z) {
    CHECK(rqi_tz_offset(z, 999999, NULL) == 3600);     /* type 0 first */
    CHECK(rqi_tz_offset(z, 1000000, NULL) == 7200);
    CHECK(rqi_tz_offset(z, 1999999, NULL) == 7200);
    CHECK(rqi_tz_offset(z, 2000000, NULL) == 3600);
    CHECK(rqi_tz_offset(z, (int64_t)1 << 40, NULL) == 3600);
    rqi_tz_free(z);
  }
  z = rqi_tz_load("Footer", err, sizeof err);
  CHECK(z != NULL);
  if (z) {
    /* Rule times in local time, negative: last Sunday of March 2030
     * (the 31st) at -2:00 local = Mar 30 22:00 -03 = Mar 31 01:00 UTC. */
    int64_t t = utc(2030, 3, 31, 1, 0, 0);
    CHECK(rqi_tz_offset(z, t - 1, NULL) == -10800);
    CHECK(rqi_tz_offset(z, t, NULL) == -7200);
    /* Ends Oct 27 at -1:00 DST = Oct 26 23:00 -02 = Oct 27 01:00 UTC. */
    t = utc(2030, 10, 27, 1, 0, 0);
    CHECK(rqi_tz_offset(z, t - 1, NULL) == -7200);
    CHECK(rqi_tz_offset(z, t, NULL) == -10800);
    rqi_tz_free(z);
  }
  z = rqi_tz_load("Julian", err, sizeof err);
  CHECK(z != NULL);
  if (z) {
    /* 2028 is a leap year: J60 is March 1 (02:00 +01 = 01:00 UTC). */
    int64_t t = utc(2028, 3, 1, 1, 0, 0);
    CHECK(rqi_tz_offset(z, utc(2028, 2, 29, 12, 0, 0), NULL) == 3600);
    CHECK(rqi_tz_offset(z, t - 1, NULL) == 3600);
    CHECK(rqi_tz_offset(z, t, NULL) == 7200);
    /* Day 300 from 0 is Oct 27 in 2028, Oct 28 in 2027; at 01:00 +02. */
    t = utc(2028, 10, 26, 23, 0, 0);
    CHECK(rqi_tz_offset(z, t - 1, NULL) == 7200);
    CHECK(rqi_tz_offset(z, t, NULL) == 3600);
    t = utc(2027, 10, 27, 23, 0, 0);
    CHECK(rqi_tz_offset(z, t - 1, NULL) == 7200);
    CHECK(rqi_tz_offset(z, t, NULL) == 3600);
    CHECK(rqi_tz_offset(z, utc(2027, 3, 1, 1, 0, 0), NULL) == 7200);
    rqi_tz_free(z);
  }
  CHECK(rqi_tz_load("Junk", err, sizeof err) == NULL);
  CHECK_STREQ(err, "unknown timezone 'Junk'");
  CHECK(rqi_tz_load("Europe/Berlin", err, sizeof err) == NULL);

  if (saved) {
    setenv("TZDIR", saved, 1);
    rq_free(saved);
  } else {
    unsetenv("TZDIR");
  }
  for (const char *const *n = (const char *const[]){ "V1", "Footer", "Julian",
                                                      "Junk", NULL }; *n; n++) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, *n);
    unlink(path);
  }
  rmdir(dir);
}

/* Zones are shared by threads: nothing in them changes after load. */
static void test_utc_offsets_shared(void)
{
  RqZone *z = load("Asia/Kathmandu");
  if (!z) {
    CHECK(!"zone loads");
    return;
  }
  CHECK(rqi_tz_offset(z, utc(2026, 1, 1, 0, 0, 0), NULL) == 20700);
  RqCivil c;
  rqi_tz_to_civil(z, utc(2026, 1, 1, 0, 0, 0), &c);
  CHECK(civil_is(&c, 2026, 1, 1, 5, 45, 0, 20700));
  rqi_tz_free(z);
}

int main(void)
{
  unsetenv("TZDIR");
  test_civil_days();
  test_utc();
  test_transitions();
  test_footer();
  test_from_civil();
  test_against_libc();
  test_bad_names();
  test_handmade();
  test_utc_offsets_shared();
  return check_report();
}
