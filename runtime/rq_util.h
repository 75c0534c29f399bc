/* rq_util.h -- util.c: allocation that aborts on OOM, RqBuf (a byte
 * buffer with a cap, like curl's dynbuf), clocks and ISO-8601 time. */
#ifndef RQ_UTIL_H
#define RQ_UTIL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

void *rq_malloc(size_t n);          /* never NULL: logs and aborts on OOM */
void *rq_calloc(size_t n, size_t sz);
void *rq_realloc(void *p, size_t n);
void rq_free(void *p);              /* free(); the pair of rq_malloc */
char *rq_strdup(const char *s);
char *rq_strndup(const char *s, size_t n);
char *rq_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer that refuses to grow past `max` bytes. */
typedef struct {
  char *data;    /* NUL-terminated when non-NULL */
  size_t len;
  size_t cap;
  size_t max;    /* 0: unbounded */
} RqBuf;
#define RQ_BUF_INIT(max) { NULL, 0, 0, (max) }
/* Appends n bytes; returns 0, or -RQ_E_TOO_LARGE (the buffer is freed). */
int rq_buf_add(RqBuf *b, const void *p, size_t n);
int rq_buf_addf(RqBuf *b, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
void rq_buf_free(RqBuf *b);

double rq_now_ms(void);             /* wall clock, ms since the epoch */
double rq_mono_ms(void);            /* monotonic clock, ms */
/* Formats ms since the epoch as 2025-03-04T05:06:07.089Z (out >= 32),
 * truncating to the millisecond.  Writes "" when ms is not finite or
 * beyond +-8.64e15 (the range of JavaScript dates). */
void rq_iso_time(double ms, char *out);
/* Parses RFC 3339 / ISO-8601 (with or without time, Z or offset; a time
 * without an offset is UTC) and HTTP IMF-fixdates ("Sun, 06 Nov 1994
 * 08:49:37 GMT").  Returns true and sets *ms on success. */
bool rq_parse_time(const char *s, double *ms);

/* ISO-8601 parse of the n bytes at s.  Strict: RFC 3339 date-time
 * (seconds and Z or +hh:mm required).  Lenient: seconds optional, no
 * offset = UTC, offsets +hh:mm, +hhmm or +hh.  A bare YYYY-MM-DD is
 * accepted in both modes (the `date` type of §4.12 uses strict). */
bool rqi_util_parse_iso(const char *s, size_t n, bool strict, double *ms);

/* Installs rq_malloc/rq_free into jansson.  Call once at startup, before
 * any json_t is created (a value must be freed by the allocator that
 * made it). */
void rqi_util_init(void);

/* Writes data to path atomically: path.tmp, fsync, rename, fsync dir.
 * Creates parent directories.  Returns 0 or -1 with errno set. */
int rq_write_atomic(const char *path, const void *data, size_t n, int mode);
/* mkdir -p; returns 0 or -1. */
int rq_mkdirs(const char *dir, int mode);

/* Proleptic Gregorian calendar (Howard Hinnant's algorithms): days since
 * 1970-01-01 and back, exact for any year; days in month m (1-12). */
int64_t rqi_days_from_civil(int64_t y, int m, int d);
void rqi_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int rqi_days_in_month(int64_t y, int m);

/* The value of hex digit c, or -1 (percent-decoding). */
int rq_hexval(char c);

#endif
