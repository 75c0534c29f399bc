/* rq_daemon.h -- daemon.c: process-wide options (SPEC §10.1), set once at
 * startup and read everywhere. */
#ifndef RQ_DAEMON_H
#define RQ_DAEMON_H

#include <signal.h>
#include <stdbool.h>

typedef struct {
  const char *data_dir;      /* default .reqon-data */
  const char *auth_file;
  const char *stores_file;
  const char *env_file;
  const char *output_dir;
  bool once;
  bool dry_run;
  bool resume;
  int max_parallel;
  double check_interval_ms;
} RqOptions;

extern RqOptions rqi_opts;
/* Cancels the running missions: set when the shutdown timeout after
 * SIGTERM/SIGINT expires (§10.5); checked at step boundaries, in sleeps
 * and by the curl progress callback. */
extern volatile sig_atomic_t rqi_stop_requested;

#endif
