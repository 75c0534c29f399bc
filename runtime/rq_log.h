/* rq_log.h -- log.c: the levelled logger (SPEC §10.2).  The level is
 * checked before anything is formatted (Redis serverLog).  Every line goes
 * through secret redaction: registered secret values become ***. */
#ifndef RQ_LOG_H
#define RQ_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { RQ_LOG_DEBUG, RQ_LOG_INFO, RQ_LOG_WARN, RQ_LOG_ERROR }
  RqLogLevel;

/* Optional structured context of a line: the JSON format's keys after
 * `message`, in the order of SPEC §10.2.  Zero means absent for every
 * field, so a designated initializer or a memset is a valid context. */
typedef struct {
  const char *mission;
  const char *execution;
  const char *action;
  const char *at;        /* "file:line:col" */
  const char *step;      /* the step's label: "get", "store", ... */
  const char *source;
  const char *method;
  const char *path;      /* redacted before it is put here */
  int status;            /* HTTP status */
  int attempt;
  double duration_ms;
  bool has_duration;
  long records;
  bool has_records;
  const char *error;
} RqLogCtx;

extern int rqi_log_level;            /* lines below it are dropped */
void rqi_log_configure(int level, int json_format, int utc);
void rqi_log_write(int level, const RqLogCtx *ctx, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
#define rq_log(level, ctx, ...)                                           \
  do {                                                                    \
    if ((level) >= rqi_log_level)                                         \
      rqi_log_write((level), (ctx), __VA_ARGS__);                         \
  } while (0)
/* Registers a secret value that must never be printed; copies it.
 * Values shorter than 4 bytes are ignored; a value registered again is
 * kept once.  rqi_log_add_secret is for credentials from configuration
 * (kept for the daemon's lifetime, up to 256 of them);
 * rqi_log_add_rotating_secret for tokens obtained at run time (OAuth2
 * refreshes): only the 256 most recently registered are kept, so a
 * daemon refreshing every hour for years stays bounded. */
void rqi_log_add_secret(const char *value);
void rqi_log_add_rotating_secret(const char *value);
/* How many values the registry holds (for tests). */
size_t rqi_log_secret_count(void);
/* Returns a malloc'd copy of s with every registered secret replaced by
 * ***, URL userinfo dropped ("https://u:p@h/x" gives "https://h/x"), and
 * *** for the values of credential-named query parameters ("?api_key=",
 * "&access_token=", "sig", ...), of credential-named JSON string fields
 * ("token", "password", "secret", ...) and of credential headers
 * (Authorization, Proxy-Authorization, Cookie, X-Api-Key, ...: to the end
 * of the line).  rqi_log_write applies the same to every line.  Use it
 * for every URL or server text that goes into an error message. */
char *rqi_log_redact(const char *s);
/* Prints a --dry-run plan block to stdout in one piece, redacted as a
 * log line is. */
void rqi_print_plan(const char *text);
void rqi_log_shutdown(void);   /* empties the secret registry */

#endif
