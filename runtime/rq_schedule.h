/* rq_schedule.h -- tz.c and schedule.c: IANA time zones read from the
 * system tz database, and the schedule arithmetic of SPEC §9.1-§9.2
 * (cron, `at`, `every`).
 *
 * Both modules are pure: no process-global TZ (the logger uses local
 * time and missions run on threads), no clock, no sleeping.  A loaded
 * zone is immutable, so threads may share it.  Times are seconds since
 * the epoch (int64_t) in tz.c and epoch milliseconds (double, the unit of
 * rq_now_ms() and rq_parse_time()) in schedule.c.
 */
#ifndef RQ_SCHEDULE_H
#define RQ_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "reqon.h"
#include "rq_util.h"

/* ------------------------------------------------------------- tz.c */
typedef struct RqZone RqZone;

/* A wall-clock (civil) time in some zone. */
typedef struct {
  int year;
  int month;          /* 1-12 */
  int day;            /* 1-31 */
  int hour;           /* 0-23 */
  int min;
  int sec;
  int wday;           /* 0 = Sunday */
  int utc_offset;     /* seconds east of UTC */
  bool is_dst;
} RqCivil;

/* Loads the zone `name` ("Area/City") from $TZDIR or /usr/share/zoneinfo.
 * NULL and "UTC" give UTC without reading a file.  Returns a new zone
 * (free it with rqi_tz_free), or NULL with "unknown timezone 'X'" in err
 * (always NUL-terminated when errlen > 0) for a name that is unsafe
 * (empty, a leading '/', a ".." component), missing or not a valid TZif
 * file. */
RqZone *rqi_tz_load(const char *name, char *err, size_t errlen);
void rqi_tz_free(RqZone *z);          /* NULL is fine */
const char *rqi_tz_name(const RqZone *z);   /* "UTC" for UTC */

/* Offset east of UTC, in seconds, at instant t; *is_dst may be NULL. */
int rqi_tz_offset(const RqZone *z, int64_t t, bool *is_dst);
/* The wall-clock time at instant t. */
void rqi_tz_to_civil(const RqZone *z, int64_t t, RqCivil *out);
/* The instant of a wall-clock time (SPEC §9.2).  Returns false when that
 * time does not exist (a daylight-saving gap); in an overlap *out is the
 * FIRST occurrence.  Fields must be in range (month 1-12, ...). */
bool rqi_tz_from_civil(const RqZone *z, int year, int month, int day,
                       int hour, int min, int sec, int64_t *out);

/* The proleptic Gregorian helpers rqi_days_from_civil,
 * rqi_civil_from_days and rqi_days_in_month are in rq_util.h. */

/* ------------------------------------------------------- schedule.c */

/* A parsed cron expression: one bit per allowed value. */
typedef struct {
  uint64_t minutes;     /* bits 0-59 */
  uint32_t hours;       /* bits 0-23 */
  uint32_t mdays;       /* bits 1-31 */
  uint16_t months;      /* bits 1-12 */
  uint8_t wdays;        /* bits 0-6, Sunday = 0 (7 is folded into 0) */
  /* A day field is restricted when its text does not start with '*'
   * (crontab(5)); with both restricted a day matches if EITHER does
   * (standard cron, SPEC §9.1). */
  bool mday_restricted;
  bool wday_restricted;
} RqCron;

/* Parses 5 fields or a macro.  Returns 0, or -1 with a message in err
 * (same wording as the compile-time check). */
int rqi_cron_parse(const char *expr, RqCron *out, char *err, size_t errlen);
/* The first matching wall-clock minute in zone z strictly after
 * after_ms.  Nonexistent local times (a DST gap) are skipped; a time in
 * an overlap matches once, at its first occurrence.  Returns false when
 * nothing matches within the next 8 years ("0 0 30 2 *"). */
bool rqi_cron_next(const RqCron *c, const RqZone *z, double after_ms,
                   double *next_ms);

/* A parsed `at` value (SPEC §9.1). */
typedef struct {
  bool daily;           /* "HH:MM": every day at that time */
  int year, month, day, hour, min, sec;
  bool has_offset;      /* Z, +HH:MM or " UTC"; else zone wall clock */
  int offset_s;         /* seconds east of UTC when has_offset */
} RqAtSpec;

/* Returns 0, or -1 for text that is none of the three forms. */
int rqi_at_parse(const char *text, RqAtSpec *out);
/* The instant (epoch ms) of a dated `at` in zone z (used only without an
 * explicit offset).  Returns false when the wall-clock time falls in a
 * DST gap and so never happens. */
bool rqi_at_instant(const RqAtSpec *a, const RqZone *z, double *ms);

/* A mission schedule ready for rqi_schedule_next. */
typedef struct {
  RqSchedKind kind;
  double every_ms;      /* RQ_SCHED_EVERY */
  RqCron cron;          /* RQ_SCHED_CRON, and a daily `at` */
  bool at_daily;
  bool at_exists;       /* dated `at`: false when it falls in a gap */
  double at_ms;         /* dated `at`: its instant */
  RqZone *zone;         /* owned */
} RqSchedule;

enum {
  RQ_SCHED_EBADZONE = -1,   /* unknown timezone: exit 3 (SPEC §11.3) */
  RQ_SCHED_EBADEXPR = -2,   /* malformed cron/at/every (reqonc checks) */
};

/* Prepares `out` from a compiled schedule: loads the zone, parses the
 * text.  Returns 0, or an RQ_SCHED_E* with the message in err ("unknown
 * timezone 'X'", ...); on error nothing needs freeing. */
int rqi_schedule_init(const RqScheduleDef *def, RqSchedule *out, char *err,
                      size_t errlen);
void rqi_schedule_clear(RqSchedule *s);

/* What the scheduler state (SPEC §9.5) says about past runs. */
typedef struct {
  bool ran;                 /* a run has started (lastRun is known) */
  double last_run_ms;       /* start of the last run */
  bool scheduled;           /* a due time has been used */
  double last_scheduled_ms; /* the last due time that was run */
} RqSchedState;

/* THE scheduling decision: the next due instant (epoch ms) given the
 * state and the clock, or false for "never".
 *   every: lastStart + interval, or now when that has passed or at a
 *          first start (missed runs are not replayed);
 *   cron, daily at: the first matching minute strictly after the later
 *          of now and last_scheduled_ms;
 *   dated at: its instant when still ahead; now when it has passed and
 *          no run started (and no due time was used) at or after it;
 *          else never.
 * Call it at startup and after each due run starts (with that due time
 * in last_scheduled_ms and the run in last_run_ms), and keep the answer
 * while waiting: for cron, asking again later with a later `now` moves
 * past a due time that was not yet run. */
bool rqi_schedule_next(const RqSchedule *s, const RqSchedState *st,
                       double now_ms, double *due_ms);

#endif
