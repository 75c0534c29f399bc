/* daemon.c -- rq_daemon_main(), the main() of every compiled mission set
 * (SPEC §10): command line, env file, logging, credentials, the data-dir
 * lock, the health/metrics listeners (§10.3, §10.4), the webhook
 * listener of `wait` steps (§4.14: --webhook-port, with the static wait
 * paths registered; woken at shutdown so that a waiting run ends as
 * interrupted at once), then one of the modes
 *   --list     print the missions with their schedules and next runs;
 *   --once     run every selected mission once, in declaration order, on
 *              the main thread;
 *   --dry-run  the same, as a plan that writes nothing (no lock either);
 *   (default)  the scheduler (§9): every, cron and `at` schedules.
 *
 * The decisions (what is due, skipped, deferred, retried, which waiting
 * run starts next) are scheduler.c's; this file carries them out.  The
 * main thread owns the scheduler and sleeps in poll() on a self-pipe
 * until the next due time (at most --check-interval ms), a signal, or
 * the end of a run.  Each run executes rqi_exec_run on its own worker
 * thread (at most --max-parallel), with SIGTERM/SIGINT/SIGHUP/SIGALRM
 * blocked, so the handlers only ever interrupt the main thread's poll.
 * A worker touches nothing of the scheduler: it sets its done flag under
 * g_run_mu and writes the pipe; the main thread joins it and books the
 * end (state file, metrics, retry).
 *
 * Signals (§10.5): SIGTERM/SIGINT stop new runs (g_shutdown; /ready
 * answers 503) and give the running ones --shutdown-timeout seconds;
 * then SIGALRM sets rqi_stop_requested, which cancels them at their next
 * step boundary or HTTP attempt (records "interrupted", checkpoints not
 * committed).  A second SIGTERM/SIGINT exits with status 130 from the
 * handler.  SIGHUP reloads the env file and --auth between runs: new
 * runs wait until none is running, because the environment is
 * process-wide and a run reads it.
 *
 * At start each selected mission's newest execution record is checked
 * (§8.3): one left running or interrupted is closed as failed, or with
 * --resume continued by the mission's next run (trigger "resume").
 *
 * Exit codes (§11.3): 0 ok / clean shutdown, 1 a --once mission failed,
 * 2 usage, 3 configuration (--auth, --env, an unknown timezone), 4
 * infrastructure (data dir, a port that cannot be bound).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_metrics.h"
#include "rq_webhook.h"

RqOptions rqi_opts = {
  .data_dir = ".reqon-data",
  .max_parallel = 4,
  .check_interval_ms = 1000,
};
volatile sig_atomic_t rqi_stop_requested;
volatile sig_atomic_t rqi_shutdown_requested;

static volatile sig_atomic_t g_hup;    /* SIGHUP seen, not yet reported */
/* SIGTERM/SIGINT seen: start no more runs (§10.5). */
static volatile sig_atomic_t g_shutdown;
static int g_wake[2] = { -1, -1 };     /* self-pipe written by handlers */
/* Per mission: its next run resumes an unfinished execution record
 * (--resume, SPEC §8.3).  Cleared when that run starts. */
static bool *g_resume;

#define PROG "syncd"
#define ENV_FILE_MAX ((size_t)1 << 20)
/* How long a running mission may go on after SIGTERM/SIGINT, in seconds
 * (--shutdown-timeout, §10.5).  Read by the signal handler. */
static unsigned g_shutdown_timeout = 30;

/* ------------------------------------------------------- options table */
typedef enum {
  O_ONCE, O_MISSION, O_DRY_RUN, O_RESUME, O_DATA_DIR, O_AUTH, O_STORES,
  O_ENV, O_OUTPUT, O_LOG_LEVEL, O_LOG_FORMAT, O_VERBOSE, O_HEALTH_PORT,
  O_METRICS_PORT, O_WEBHOOK_PORT, O_WEBHOOK_URL, O_WEBHOOK_TOKEN,
  O_MAX_PARALLEL, O_CHECK_INTERVAL, O_SHUTDOWN_TIMEOUT, O_LISTEN_ADDRESS,
  O_LOG_UTC, O_DAEMON, O_LIST, O_VERSION, O_HELP,
} OptId;

typedef struct {
  const char *name;       /* without the leading "--" */
  const char *arg;        /* value placeholder; NULL for a flag */
  OptId id;
  bool supported;         /* false: rejected with "not supported yet" */
  const char *help;
} OptDef;

/* One table drives parsing and --help (Redis static_configs). */
static const OptDef opt_table[] = {
  { "once", NULL, O_ONCE, true,
    "run every selected mission once, then exit" },
  { "mission", "NAME", O_MISSION, true,
    "only this mission (repeatable)" },
  { "dry-run", NULL, O_DRY_RUN, true,
    "print each action's first request instead of running; writes "
    "nothing (implies --once)" },
  { "resume", NULL, O_RESUME, true,
    "continue runs left running or interrupted at their first "
    "unfinished stage" },
  { "data-dir", "DIR", O_DATA_DIR, true,
    "state directory (default .reqon-data; env REQON_DATA_DIR)" },
  { "auth", "FILE", O_AUTH, true, "credentials file (JSON)" },
  { "stores", "FILE", O_STORES, false, "store configuration (JSON)" },
  { "env", "FILE", O_ENV, true,
    "load KEY=VALUE lines first (default ./.env if present)" },
  { "output", "DIR", O_OUTPUT, true,
    "with --once: write every store to DIR/<Mission>/<store>.json" },
  { "log-level", "L", O_LOG_LEVEL, true,
    "debug, info, warn or error (default info; env REQON_LOG_LEVEL)" },
  { "log-format", "F", O_LOG_FORMAT, true,
    "text or json (default text; env REQON_LOG_FORMAT)" },
  { "verbose", NULL, O_VERBOSE, true, "same as --log-level debug" },
  { "health-port", "N", O_HEALTH_PORT, true, "serve /health and /ready" },
  { "metrics-port", "N", O_METRICS_PORT, true,
    "serve /metrics (the health port too when equal)" },
  { "webhook-port", "N", O_WEBHOOK_PORT, true,
    "receive the events of `wait` steps on port N" },
  { "webhook-url", "URL", O_WEBHOOK_URL, true,
    "public base URL of the webhook listener, for webhookUrl()" },
  { "webhook-token", "T", O_WEBHOOK_TOKEN, true,
    "require X-Reqon-Token: T on webhook requests" },
  { "max-parallel", "N", O_MAX_PARALLEL, true,
    "runs in progress at once, all missions (default 4)" },
  { "check-interval", "MS", O_CHECK_INTERVAL, true,
    "wake the scheduler at least every MS ms (default 1000)" },
  { "shutdown-timeout", "S", O_SHUTDOWN_TIMEOUT, true,
    "seconds a running mission may go on after SIGTERM (default 30)" },
  { "listen-address", "ADDR", O_LISTEN_ADDRESS, true,
    "address of the health/metrics/webhook listeners (default "
    "127.0.0.1)" },
  { "log-utc", NULL, O_LOG_UTC, true, "log timestamps in UTC" },
  { "daemon", NULL, O_DAEMON, true,
    "run the scheduled missions in the foreground (the default)" },
  { "list", NULL, O_LIST, true,
    "list the missions with schedule and next run, then exit" },
  { "version", NULL, O_VERSION, true, "print the version and exit" },
  { "help", NULL, O_HELP, true, "print this help and exit" },
};
#define N_OPTS (sizeof opt_table / sizeof opt_table[0])

/* What the command line said, before the environment fills the gaps. */
typedef struct {
  bool list, version, help, daemon, log_utc;
  int log_level;            /* -1: not given */
  int log_format;           /* -1: not given, 0 text, 1 json */
  const char *data_dir;     /* NULL: not given */
  int health_port;          /* -1: not given */
  int metrics_port;         /* -1: not given */
  const char *listen_addr;  /* NULL: 127.0.0.1 */
  int webhook_port;         /* -1: not given (no listener) */
  const char *webhook_url;  /* NULL: http://localhost:PORT */
  const char *webhook_token; /* NULL: no token */
  bool *selected;           /* per mission, rq_calloc'd; NULL: all */
} Cli;

static void usage_error(const char *fmt, ...)
  __attribute__((format(printf, 1, 2)));

static void usage_error(const char *fmt, ...)
{
  va_list ap;
  fputs(PROG ": ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\nUsage: " PROG " [--once] [--mission NAME]... [options]\n"
        "Try '" PROG " --help' for the list of options.\n", stderr);
}

static void print_help(const RqMissionDef *missions, size_t n_missions)
{
  printf("Usage: " PROG " [--once] [--mission NAME]... [options]\n\n"
         "Runs the compiled Reqon missions: their schedules in the "
         "foreground\n(default), or each selected mission once "
         "(--once).\n\nOptions:\n");
  for (size_t i = 0; i < N_OPTS; i++) {
    const OptDef *o = &opt_table[i];
    char left[40];
    snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "",
             o->arg ? o->arg : "");
    printf("  %-22s %s%s\n", left, o->help,
           o->supported ? "" : " (not supported yet)");
  }
  printf("\nMissions:");
  for (size_t i = 0; i < n_missions; i++)
    printf("%s %s", i ? "," : "", missions[i].name);
  printf("\n");
}

static int parse_level(const char *s)
{
  if (strcmp(s, "debug") == 0)
    return RQ_LOG_DEBUG;
  if (strcmp(s, "info") == 0)
    return RQ_LOG_INFO;
  if (strcmp(s, "warn") == 0 || strcmp(s, "warning") == 0)
    return RQ_LOG_WARN;
  if (strcmp(s, "error") == 0)
    return RQ_LOG_ERROR;
  return -1;
}

static int parse_format(const char *s)
{
  if (strcmp(s, "text") == 0)
    return 0;
  if (strcmp(s, "json") == 0)
    return 1;
  return -1;
}

/* A whole decimal integer in [min, max]. */
static bool parse_int(const char *s, long min, long max, long *out)
{
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

static const OptDef *find_opt(const char *name, size_t len)
{
  for (size_t i = 0; i < N_OPTS; i++)
    if (strlen(opt_table[i].name) == len &&
        memcmp(opt_table[i].name, name, len) == 0)
      return &opt_table[i];
  return NULL;
}

/* Applies option o with value v (NULL for flags).  Returns 0 or 2. */
static int apply_opt(Cli *cli, const OptDef *o, const char *v,
                     const RqMissionDef *missions, size_t n_missions)
{
  long n;
  switch (o->id) {
  case O_ONCE:
    rqi_opts.once = true;
    break;
  case O_DRY_RUN:
    rqi_opts.dry_run = true;
    break;
  case O_RESUME:
    rqi_opts.resume = true;
    break;
  case O_MISSION: {
    size_t i;
    for (i = 0; i < n_missions; i++)
      if (strcmp(missions[i].name, v) == 0)
        break;
    if (i == n_missions) {
      usage_error("unknown mission '%s'", v);
      return 2;
    }
    if (!cli->selected)
      cli->selected = rq_calloc(n_missions, sizeof *cli->selected);
    cli->selected[i] = true;
    break;
  }
  case O_DATA_DIR:
    cli->data_dir = v;
    break;
  case O_AUTH:
    rqi_opts.auth_file = v;
    break;
  case O_ENV:
    rqi_opts.env_file = v;
    break;
  case O_OUTPUT:
    rqi_opts.output_dir = v;
    break;
  case O_LOG_LEVEL:
    cli->log_level = parse_level(v);
    if (cli->log_level < 0) {
      usage_error("invalid --log-level '%s' (debug, info, warn, error)", v);
      return 2;
    }
    break;
  case O_LOG_FORMAT:
    cli->log_format = parse_format(v);
    if (cli->log_format < 0) {
      usage_error("invalid --log-format '%s' (text, json)", v);
      return 2;
    }
    break;
  case O_VERBOSE:
    cli->log_level = RQ_LOG_DEBUG;
    break;
  case O_MAX_PARALLEL:
    if (!parse_int(v, 1, 1024, &n)) {
      usage_error("invalid --max-parallel '%s' (1 to 1024)", v);
      return 2;
    }
    rqi_opts.max_parallel = (int)n;
    break;
  case O_CHECK_INTERVAL:
    if (!parse_int(v, 1, 86400000, &n)) {
      usage_error("invalid --check-interval '%s' (milliseconds)", v);
      return 2;
    }
    rqi_opts.check_interval_ms = (double)n;
    break;
  case O_SHUTDOWN_TIMEOUT:
    if (!parse_int(v, 0, 86400, &n)) {
      usage_error("invalid --shutdown-timeout '%s' (0 to 86400 seconds)",
                  v);
      return 2;
    }
    g_shutdown_timeout = (unsigned)n;
    break;
  case O_HEALTH_PORT:
  case O_METRICS_PORT:
  case O_WEBHOOK_PORT:
    if (!parse_int(v, 0, 65535, &n)) {
      usage_error("invalid --%s '%s' (0 to 65535)", o->name, v);
      return 2;
    }
    *(o->id == O_HEALTH_PORT ? &cli->health_port
      : o->id == O_METRICS_PORT ? &cli->metrics_port
      : &cli->webhook_port) = (int)n;
    break;
  case O_WEBHOOK_URL: {
    char err[256];
    if (rqi_webhook_check_url(v, err, sizeof err) != 0) {
      usage_error("invalid --webhook-url '%s': %s", v, err);
      return 2;
    }
    cli->webhook_url = v;
    break;
  }
  case O_WEBHOOK_TOKEN:
    cli->webhook_token = v;
    break;
  case O_LISTEN_ADDRESS:
    cli->listen_addr = v;
    break;
  case O_LOG_UTC:
    cli->log_utc = true;
    break;
  case O_DAEMON:
    cli->daemon = true;
    break;
  case O_LIST:
    cli->list = true;
    break;
  case O_VERSION:
    cli->version = true;
    break;
  case O_HELP:
    cli->help = true;
    break;
  default:
    /* Every unsupported option is rejected before it gets here. */
    usage_error("--%s is not supported yet", o->name);
    return 2;
  }
  return 0;
}

/* Parses argv into rqi_opts and cli.  Returns 0, or 2 after printing a
 * usage message. */
static int parse_args(int argc, char **argv, Cli *cli,
                      const RqMissionDef *missions, size_t n_missions)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *eq;
    const char *v = NULL;
    const OptDef *o;
    int rc;
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      usage_error("unexpected argument '%s'", a);
      return 2;
    }
    eq = strchr(a + 2, '=');
    o = find_opt(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
    if (!o) {
      usage_error("unknown option '%s'", a);
      return 2;
    }
    if (!o->supported) {
      /* Never ignore an option whose feature does not exist yet. */
      fprintf(stderr, PROG ": --%s is not supported yet\n", o->name);
      return 2;
    }
    if (!o->arg) {
      if (eq) {
        usage_error("option --%s takes no value", o->name);
        return 2;
      }
    } else if (eq) {
      v = eq + 1;
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      v = argv[++i];
    }
    if (o->arg && (!v || !*v)) {
      usage_error("option --%s needs a value (%s)", o->name, o->arg);
      return 2;
    }
    rc = apply_opt(cli, o, v, missions, n_missions);
    if (rc)
      return rc;
  }
  if (rqi_opts.once && cli->daemon) {
    usage_error("--once and --daemon exclude each other");
    return 2;
  }
  return 0;
}

/* ------------------------------------------------------------ env file */
/* The variables this process set from the env file (§10.1: the file never
 * overrides the real environment).  A reload (SIGHUP, §10.5) may change
 * these, and only these; one the file no longer sets is unset. */
static char **g_env_keys;
static size_t g_n_env_keys;

typedef struct {
  char **v;
  size_t n, cap;
} StrList;

static void list_add(StrList *l, char *s)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = rq_realloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = s;
}

static bool list_has(char *const *v, size_t n, const char *s)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0)
      return true;
  return false;
}

static void free_env_keys(void)
{
  for (size_t i = 0; i < g_n_env_keys; i++)
    rq_free(g_env_keys[i]);
  rq_free(g_env_keys);
  g_env_keys = NULL;
  g_n_env_keys = 0;
}

/* Parses one line of an env file in place: *key and *val point into s,
 * *key is NULL for a blank or comment line.  Returns 0, or -1 when the
 * line is malformed. */
static int env_line(char *s, char **key_out, char **val_out)
{
  char *key;
  char *val;
  char *w;
  *key_out = NULL;
  *val_out = NULL;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s == '\0' || *s == '#')
    return 0;
  if (strncmp(s, "export", 6) == 0 && (s[6] == ' ' || s[6] == '\t')) {
    s += 6;
    while (*s == ' ' || *s == '\t')
      s++;
  }
  key = s;
  if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
    return -1;
  while (*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
         (*s >= '0' && *s <= '9'))
    s++;
  w = s;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s != '=')
    return -1;
  *w = '\0';
  s++;
  while (*s == ' ' || *s == '\t')
    s++;
  val = s;
  if (*s == '"' || *s == '\'') {
    char q = *s++;
    /* Unquote in place.  In double quotes only \n, \" and \\ are
     * escapes: any other backslash is kept, so "C:\temp" stays a
     * Windows path. */
    w = val;
    while (*s && *s != q) {
      if (q == '"' && *s == '\\' &&
          (s[1] == 'n' || s[1] == '"' || s[1] == '\\')) {
        s++;
        *w++ = *s == 'n' ? '\n' : *s;
        s++;
      } else {
        *w++ = *s++;
      }
    }
    if (*s != q)
      return -1;
    s++;
    *w = '\0';
    while (*s == ' ' || *s == '\t')
      s++;
    if (*s && *s != '#')
      return -1;
  } else {
    /* Unquoted: up to a " #" comment, trailing blanks dropped. */
    for (w = s; *w; w++)
      if (*w == '#' && w > val && (w[-1] == ' ' || w[-1] == '\t'))
        break;
    *w = '\0';
    while (w > val && (w[-1] == ' ' || w[-1] == '\t'))
      *--w = '\0';
  }
  *key_out = key;
  *val_out = val;
  return 0;
}

/* Reports an env file problem: on stderr at startup (logging is not set
 * up yet), through the log on a reload. */
static void env_error(bool reload, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static void env_error(bool reload, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (reload)
    rq_log(RQ_LOG_ERROR, NULL, "SIGHUP: %s; keeping the current "
           "configuration", msg);
  else
    fprintf(stderr, PROG ": %s\n", msg);
}

/* Loads path (--env FILE, or ./.env when given is false).  The whole file
 * is parsed before anything is set, so a bad file changes nothing.
 * Returns 0, or 3 after reporting why. */
static int load_env_file(const char *path, bool given, bool reload)
{
  RqBuf b = RQ_BUF_INIT(ENV_FILE_MAX);
  char chunk[4096];
  char *line;
  int lineno = 0;
  int rc = 0;
  size_t n;
  StrList keys = { NULL, 0, 0 };
  StrList vals = { NULL, 0, 0 };
  StrList set = { NULL, 0, 0 };   /* the new g_env_keys */
  FILE *f = fopen(path, "re");
  if (!f) {
    if (!given && errno == ENOENT) {
      b.data = NULL;              /* no file: it sets nothing */
      goto apply;
    }
    env_error(reload, "cannot read env file %s: %s", path,
              strerror(errno));
    return 3;
  }
  for (;;) {
    n = fread(chunk, 1, sizeof chunk, f);
    if (n == 0)
      break;
    if (rq_buf_add(&b, chunk, n) != 0) {      /* b is freed on failure */
      env_error(reload, "env file %s is too large", path);
      fclose(f);
      return 3;
    }
  }
  if (ferror(f)) {
    env_error(reload, "cannot read env file %s: %s", path,
              strerror(errno));
    fclose(f);
    rq_buf_free(&b);
    return 3;
  }
  fclose(f);
  line = b.data;
  /* A UTF-8 byte-order mark (editors on Windows) is not part of the
   * first key. */
  if (line && strncmp(line, "\xef\xbb\xbf", 3) == 0)
    line += 3;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    char *next = nl ? nl + 1 : NULL;
    char *key;
    char *val;
    if (nl) {
      *nl = '\0';
      if (nl > line && nl[-1] == '\r')
        nl[-1] = '\0';
    }
    lineno++;
    if (env_line(line, &key, &val) != 0) {
      env_error(reload, "%s:%d: invalid line (expected "
                "[export ]KEY=VALUE)", path, lineno);
      rc = 3;
      goto out;
    }
    if (key) {
      list_add(&keys, key);
      list_add(&vals, val);
    }
    line = next;
  }

apply:
  /* A variable is ours to set when the real environment did not have it
   * (or an earlier load, or an earlier line of this one, set it). */
  for (size_t i = 0; i < keys.n; i++) {
    bool ours = list_has(g_env_keys, g_n_env_keys, keys.v[i]) ||
                list_has(set.v, set.n, keys.v[i]);
    if (!ours && getenv(keys.v[i]))
      continue;
    setenv(keys.v[i], vals.v[i], 1);
    if (!list_has(set.v, set.n, keys.v[i]))
      list_add(&set, rq_strdup(keys.v[i]));
  }
  for (size_t i = 0; i < g_n_env_keys; i++)
    if (!list_has(set.v, set.n, g_env_keys[i]))
      unsetenv(g_env_keys[i]);
  free_env_keys();
  g_env_keys = set.v;
  g_n_env_keys = set.n;
out:
  if (rc != 0) {
    for (size_t i = 0; i < set.n; i++)
      rq_free(set.v[i]);
    rq_free(set.v);
  }
  rq_free(keys.v);
  rq_free(vals.v);
  rq_buf_free(&b);
  return rc;
}

/* ----------------------------------------------------------- schedules */
/* "every 15 minutes", "cron \"0 * * * *\"", "none" into out. */
static void describe_schedule(const RqScheduleDef *s, char *out, size_t n)
{
  static const struct { double ms; const char *unit; } units[] = {
    { 604800000, "week" }, { 86400000, "day" }, { 3600000, "hour" },
    { 60000, "minute" }, { 1000, "second" }, { 1, "millisecond" },
  };
  switch (s->kind) {
  case RQ_SCHED_EVERY:
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      double c = s->every_ms / units[i].ms;
      if (c >= 1 && c == floor(c)) {
        snprintf(out, n, "every %.0f %s%s", c, units[i].unit,
                 c == 1 ? "" : "s");
        return;
      }
    }
    snprintf(out, n, "every %g ms", s->every_ms);
    return;
  case RQ_SCHED_CRON:
    snprintf(out, n, "cron \"%s\"", s->expr ? s->expr : "");
    return;
  case RQ_SCHED_AT:
    snprintf(out, n, "at \"%s\"", s->expr ? s->expr : "");
    return;
  case RQ_SCHED_NONE:
  default:
    snprintf(out, n, "none");
    return;
  }
}

/* Formats the wall-clock time ms as "HH:MM:SS", or with its date when it
 * is not today (§10.2), in local time or UTC like the log lines. */
static void format_clock(double ms, bool utc, char *out, size_t n)
{
  time_t t = (time_t)(ms / 1000);
  time_t now = time(NULL);
  struct tm tm;
  struct tm today;
  if (utc) {
    gmtime_r(&t, &tm);
    gmtime_r(&now, &today);
  } else {
    localtime_r(&t, &tm);
    localtime_r(&now, &today);
  }
  if (tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday)
    strftime(out, n, "%H:%M:%S", &tm);
  else
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static bool is_selected(const Cli *cli, size_t i)
{
  return !cli->selected || cli->selected[i];
}

/* --list: one line per selected mission, with its next run as the
 * daemon would schedule it now, from the scheduler state (read only). */
static void list_missions(const Cli *cli, const RqMissionDef *missions,
                          size_t n_missions, const RqScheduler *sched)
{
  int w = 7;
  double now = rq_now_ms();
  for (size_t i = 0; i < n_missions; i++)
    if (is_selected(cli, i) && (int)strlen(missions[i].name) > w)
      w = (int)strlen(missions[i].name);
  printf("%-*s  %-24s  %s\n", w, "MISSION", "SCHEDULE", "NEXT RUN");
  for (size_t i = 0; i < n_missions; i++) {
    const RqMissionDef *m = &missions[i];
    const RqSchedJob *j = NULL;
    char sched_text[160];
    char next[64];
    if (!is_selected(cli, i))
      continue;
    for (size_t k = 0; k < sched->n; k++)
      if (sched->jobs[k].mission == i)
        j = &sched->jobs[k];
    describe_schedule(&m->schedule, sched_text, sizeof sched_text);
    if (!j) {
      snprintf(next, sizeof next, "only with --once");
    } else if (!j->has_next) {
      snprintf(next, sizeof next, "never (done)");
    } else if (j->next_ms <= now) {
      snprintf(next, sizeof next, "at daemon start");
    } else {
      time_t t = (time_t)(j->next_ms / 1000);
      struct tm tm;
      if (cli->log_utc)
        gmtime_r(&t, &tm);
      else
        localtime_r(&t, &tm);
      strftime(next, sizeof next, "%Y-%m-%d %H:%M:%S", &tm);
    }
    printf("%-*s  %-24s  %s\n", w, m->name, sched_text, next);
  }
}

/* ------------------------------------------------------------- signals */
static void wake(void)
{
  if (g_wake[1] >= 0) {
    ssize_t r = write(g_wake[1], "x", 1);
    (void)r;            /* a full pipe is already a pending wake-up */
  }
}

/* SIGTERM/SIGINT (§10.5): no new runs; the running one gets
 * g_shutdown_timeout seconds (the alarm) before it is cancelled.  The
 * second signal exits at once. */
static void on_stop(int sig)
{
  int saved = errno;
  if (g_shutdown) {
    static const char msg[] = PROG ": second signal, exiting now\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(130);
  }
  g_shutdown = 1;
  rqi_shutdown_requested = 1;
  if (g_shutdown_timeout > 0)
    alarm(g_shutdown_timeout);
  else
    rqi_stop_requested = 1;     /* no grace period */
  wake();
  errno = saved;
}

/* The shutdown timeout expired: cancel the running mission. */
static void on_alarm(int sig)
{
  int saved = errno;
  rqi_stop_requested = 1;
  wake();
  errno = saved;
}

static void on_hup(int sig)
{
  int saved = errno;
  g_hup = 1;
  wake();
  errno = saved;
}

static int install_signals(void)
{
  struct sigaction sa;
  if (pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0)
    return -1;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  /* Blocking calls elsewhere (file I/O, libcurl) resume after a handler;
   * the scheduler's poll() still returns, and the self-pipe wakes it. */
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  return 0;
}

/* SIGHUP (§10.5), between runs: reloads the env file, then the --auth
 * file (whose ${VAR}s, and the REQON_* credentials, come from the
 * environment).  rqi_auth_load keeps the old credentials when the new
 * file is bad; a bad env file changes nothing and stops the reload. */
static void check_hup(void)
{
  if (!g_hup)
    return;
  g_hup = 0;
  rq_log(RQ_LOG_INFO, NULL, "SIGHUP: reloading the configuration");
  if (load_env_file(rqi_opts.env_file ? rqi_opts.env_file : ".env",
                    rqi_opts.env_file != NULL, true) != 0)
    return;
  if (rqi_auth_load(rqi_opts.auth_file) != 0) {
    rq_log(RQ_LOG_ERROR, NULL, "SIGHUP: keeping the current credentials");
    return;
  }
  rq_log(RQ_LOG_INFO, NULL, "SIGHUP: configuration reloaded");
}

/* Waits up to ms milliseconds or until a signal handler writes the pipe. */
static void wait_ms(double ms)
{
  struct pollfd p = { g_wake[0], POLLIN, 0 };
  char buf[64];
  int timeout = ms < 1 ? 1 : ms > 86400000 ? 86400000 : (int)ceil(ms);
  if (poll(&p, 1, timeout) > 0)
    while (read(g_wake[0], buf, sizeof buf) > 0)
      ;
}

/* --------------------------------------------------------------- modes */
/* The trigger of mission i's next run: "resume" once after recovery found
 * its newest record unfinished, else dflt. */
static const char *next_trigger(size_t i, const char *dflt)
{
  if (g_resume && g_resume[i]) {
    g_resume[i] = false;
    return "resume";
  }
  return dflt;
}

static RqMetRunEnd met_end(int status)
{
  return status == 0 ? RQ_MET_COMPLETED : status == 3 ?
    RQ_MET_INTERRUPTED : RQ_MET_FAILED;
}

/* --once: each selected mission, sequentially.  Returns the exit code. */
static int run_once(const Cli *cli, const char *const *files,
                    const RqMissionDef *missions, size_t n_missions)
{
  int code = 0;
  for (size_t i = 0; i < n_missions; i++) {
    RqRunResult res;
    if (!is_selected(cli, i))
      continue;
    check_hup();
    if (g_shutdown) {
      code = 1;                 /* a mission was left out */
      break;
    }
    memset(&res, 0, sizeof res);
    rqi_metrics_run_started(missions[i].name, rq_now_ms());
    /* --output is written at the end of the run (rqi_store_run_end). */
    if (rqi_exec_run(&missions[i], files, next_trigger(i, "once"),
                     &res) != 0)
      code = 1;
    rqi_metrics_run_ended(missions[i].name, met_end(res.status),
                          res.duration_ms, rq_now_ms());
  }
  return code;
}

/* One run on a worker thread.  The main thread owns the scheduler; a
 * worker only runs its mission and then says so under g_run_mu. */
typedef struct {
  pthread_t thread;
  bool used;                /* a thread was started and not yet joined */
  bool done;                /* under g_run_mu */
  size_t job;               /* index in the scheduler */
  const RqMissionDef *m;
  const char *const *files;
  const char *trigger;
  RqRunResult res;
} Worker;

static pthread_mutex_t g_run_mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker_main(void *arg)
{
  Worker *w = arg;
  memset(&w->res, 0, sizeof w->res);
  /* A failed run is logged and recorded by exec.c; it never stops the
   * daemon. */
  rqi_exec_run(w->m, w->files, w->trigger, &w->res);
  pthread_mutex_lock(&g_run_mu);
  w->done = true;
  pthread_mutex_unlock(&g_run_mu);
  wake();
  return NULL;
}

/* Runs fn on a new thread with the daemon's signals blocked, so that
 * the handlers (and the self-pipe) stay with the main thread's poll()
 * wherever the kernel would deliver them.  Threads started by that
 * thread (parallel stages, the resolver) inherit the mask. */
static int spawn_blocked(pthread_t *t, void *(*fn)(void *), void *arg)
{
  sigset_t set, old;
  int rc;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  rc = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

typedef struct {
  const Cli *cli;
  const char *const *files;
  const RqMissionDef *missions;
  RqScheduler *s;
  Worker *workers;          /* s->max_parallel of them */
  bool *deferred;           /* per job: its waiting run was logged */
} Daemon;

/* Publishes job j's next due time (or retry) to /health and, when log,
 * logs it (§10.2: with its date when it is not today). */
static void log_next(const Daemon *d, const RqSchedJob *j, bool log)
{
  RqLogCtx ctx = { .mission = j->name };
  char when[40];
  double next = j->next_ms;
  bool has = j->has_next;
  if (j->has_retry_at && (!has || j->retry_at_ms < next)) {
    next = j->retry_at_ms;
    has = true;
  }
  rqi_metrics_set_next_run(j->name, has ? next : 0);
  if (!log)
    return;
  if (!has) {
    rq_log(RQ_LOG_INFO, &ctx, "%s: No next run", j->name);
    return;
  }
  format_clock(next < rq_now_ms() ? rq_now_ms() : next, d->cli->log_utc,
               when, sizeof when);
  rq_log(RQ_LOG_INFO, &ctx, "%s: Next run at %s", j->name, when);
}

/* Joins the workers that finished and books their ends.  Returns how
 * many. */
static int reap(Daemon *d)
{
  int n = 0;
  for (int i = 0; i < d->s->max_parallel; i++) {
    Worker *w = &d->workers[i];
    RqSchedJob *j;
    bool done;
    double delay;
    double now;
    if (!w->used)
      continue;
    pthread_mutex_lock(&g_run_mu);
    done = w->done;
    pthread_mutex_unlock(&g_run_mu);
    if (!done)
      continue;
    pthread_join(w->thread, NULL);
    w->used = false;
    n++;
    now = rq_now_ms();
    j = &d->s->jobs[w->job];
    rqi_metrics_run_ended(j->name, met_end(w->res.status),
                          w->res.duration_ms, now);
    delay = rqi_sched_ended(d->s, w->job, w->res.status, now);
    if (delay >= 0) {
      RqLogCtx ctx = { .mission = j->name };
      rq_log(RQ_LOG_INFO, &ctx, "%s: retry %d of %d in %.0fs", j->name,
             j->consecutive_failures, j->retry_max, delay / 1000.0);
    } else if (w->res.status == 1 && j->has_retry) {
      RqLogCtx ctx = { .mission = j->name };
      rq_log(RQ_LOG_INFO, &ctx, "%s: no retry: %d consecutive failures "
             "(maxRetries %d)", j->name, j->consecutive_failures,
             j->retry_max);
    }
    rqi_sched_state_write(d->s, now);
    if (!g_shutdown)
      log_next(d, j, true);
  }
  return n;
}

static int start_run(Daemon *d, const RqSchedAction *a)
{
  RqSchedJob *j = &d->s->jobs[a->job];
  Worker *w = NULL;
  for (int i = 0; i < d->s->max_parallel && !w; i++)
    if (!d->workers[i].used)
      w = &d->workers[i];
  if (!w) {
    /* rqi_sched_step never starts more than max_parallel runs. */
    rq_log(RQ_LOG_ERROR, NULL, "scheduler: no free worker");
    rqi_sched_ended(d->s, a->job, RQ_END_INTERRUPTED, rq_now_ms());
    return -1;
  }
  w->job = a->job;
  w->m = &d->missions[j->mission];
  w->files = d->files;
  w->trigger = a->retry ? "retry" : next_trigger(j->mission, "schedule");
  w->done = false;
  rqi_metrics_run_started(j->name, rq_now_ms());
  if (spawn_blocked(&w->thread, worker_main, w) != 0) {
    RqLogCtx ctx = { .mission = j->name };
    rq_log(RQ_LOG_ERROR, &ctx, "%s: cannot start a thread for the run: "
           "%s", j->name, strerror(errno));
    rqi_metrics_run_ended(j->name, RQ_MET_FAILED, 0, rq_now_ms());
    rqi_sched_ended(d->s, a->job, RQ_END_FAILED, rq_now_ms());
    return -1;
  }
  w->used = true;
  log_next(d, j, false);
  return 0;
}

/* The scheduler loop (§9): due runs start on worker threads; the main
 * thread sleeps in poll() until the next due time (at most
 * --check-interval), a run's end or a signal.  Returns 0. */
static int run_daemon(const Cli *cli, const char *const *files,
                      const RqMissionDef *missions, RqScheduler *s)
{
  Daemon d = { cli, files, missions, s, NULL, NULL };
  size_t cap = s->n * 2 + (size_t)s->max_parallel;
  RqSchedAction *acts = rq_calloc(cap, sizeof *acts);
  double now = rq_now_ms();

  d.workers = rq_calloc((size_t)s->max_parallel, sizeof *d.workers);
  d.deferred = rq_calloc(s->n + 1, sizeof *d.deferred);
  rq_log(RQ_LOG_INFO, NULL, "Starting Reqon daemon");
  rq_log(RQ_LOG_INFO, NULL, "Loaded %zu missions", s->n);
  rqi_sched_begin(s, now);
  for (size_t i = 0; i < s->n; i++)
    log_next(&d, &s->jobs[i], true);
  rqi_health_set_ready(RQ_READY_UP);
  while (!g_shutdown) {
    size_t n;
    double at;
    double wait;
    bool started = false;
    reap(&d);
    /* SIGHUP reloads between runs (§10.5): hold new runs until the
     * running ones end, since the environment is process-wide. */
    if (g_hup && s->running == 0)
      check_hup();
    now = rq_now_ms();
    n = rqi_sched_step(s, now, !g_hup, acts, cap);
    for (size_t i = 0; i < n; i++) {
      RqSchedJob *j = &s->jobs[acts[i].job];
      if (acts[i].kind == RQ_SA_SKIP) {
        RqLogCtx ctx = { .mission = j->name };
        rq_log(RQ_LOG_INFO, &ctx, acts[i].waiting ?
               "%s: skipped: previous run still waiting to start" :
               "%s: skipped: previous run still in progress", j->name);
        rqi_metrics_run_skipped(j->name);
      } else if (start_run(&d, &acts[i]) == 0) {
        started = true;
      }
    }
    /* §10.2: scheduler decisions are logged; a due run that has to
     * wait is one (once per waiting run). */
    for (size_t i = 0; i < s->n; i++) {
      RqSchedJob *j = &s->jobs[i];
      if (j->pending && !d.deferred[i]) {
        RqLogCtx ctx = { .mission = j->name };
        if (j->running >= j->max_concurrency)
          rq_log(RQ_LOG_INFO, &ctx, "%s: deferred: previous run still "
                 "in progress", j->name);
        else
          rq_log(RQ_LOG_INFO, &ctx, "%s: waiting: %d runs in progress "
                 "(--max-parallel)", j->name, s->running);
      }
      d.deferred[i] = j->pending;
    }
    if (started)
      rqi_sched_state_write(s, now);
    wait = rqi_opts.check_interval_ms;
    if (rqi_sched_wake_at(s, &at) && at - now < wait)
      wait = at - now;
    if (n == 0 || wait > 0)
      wait_ms(wait);
  }
  /* §10.5: no new runs; the running ones get --shutdown-timeout seconds
   * (the alarm of on_stop), then rqi_stop_requested cancels them. */
  rqi_health_set_ready(RQ_READY_DRAINING);
  rq_log(RQ_LOG_INFO, NULL, "Shutting down");
  /* A wait may be minutes from its event: it ends now, interrupted
   * (its own check of rqi_shutdown_requested does too; this also wakes
   * it at once, and any wait begun during the grace period). */
  rqi_webhook_wakeup(rqi_webhook_current());
  reap(&d);
  if (s->running > 0)
    rq_log(RQ_LOG_INFO, NULL, "waiting for %d running mission%s", s->running,
           s->running == 1 ? "" : "s");
  while (s->running > 0) {
    if (reap(&d) == 0)
      wait_ms(rqi_opts.check_interval_ms);
  }
  rq_free(d.workers);
  rq_free(d.deferred);
  rq_free(acts);
  return 0;
}

/* ---------------------------------------------------------------- main */
/* Fills rqi_opts and the logger from the environment where the command
 * line left gaps (the command line wins, §10.1). */
static void apply_env(Cli *cli)
{
  const char *level = getenv("REQON_LOG_LEVEL");
  const char *format = getenv("REQON_LOG_FORMAT");
  const char *dir = getenv("REQON_DATA_DIR");
  if (cli->log_level < 0 && level && *level) {
    cli->log_level = parse_level(level);
    if (cli->log_level < 0)
      fprintf(stderr, PROG ": ignoring REQON_LOG_LEVEL=%s (debug, info, "
              "warn, error)\n", level);
  }
  if (cli->log_format < 0 && format && *format) {
    cli->log_format = parse_format(format);
    if (cli->log_format < 0)
      fprintf(stderr, PROG ": ignoring REQON_LOG_FORMAT=%s (text, json)\n",
              format);
  }
  if (cli->data_dir)
    rqi_opts.data_dir = cli->data_dir;
  else if (dir && *dir)
    rqi_opts.data_dir = dir;
}

/* The webhook listener of §4.14 (--webhook-port), with every static
 * wait path of the selected missions registered, so that events sent
 * before their wait begins are buffered.  A dry run binds nothing (it
 * may run next to the daemon that owns the port) but still knows the
 * URL webhookUrl() gives.  Returns 0, or 4 when the port cannot be
 * bound (§11.3). */
static int start_webhook(const Cli *cli, const RqMissionDef *missions,
                         size_t n_missions, RqWebhook **out)
{
  char err[512];
  sigset_t set, old;

  *out = NULL;
  if (cli->webhook_port < 0) {
    if (cli->webhook_url || cli->webhook_token)
      rq_log(RQ_LOG_WARN, NULL, "--webhook-url and --webhook-token need "
             "--webhook-port; no webhook listener");
    return 0;
  }
  if (rqi_opts.dry_run) {
    *out = rqi_webhook_plan(cli->webhook_port, cli->webhook_url);
    return 0;
  }
  /* The listener thread must not take the daemon's signals. */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  *out = rqi_webhook_start(cli->listen_addr, cli->webhook_port,
                           cli->webhook_url, cli->webhook_token, err,
                           sizeof err);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!*out) {
    rq_log(RQ_LOG_ERROR, NULL, "%s", err);
    return 4;
  }
  for (size_t i = 0; i < n_missions; i++) {
    if (!is_selected(cli, i) ||
        (!rqi_opts.once && missions[i].schedule.kind == RQ_SCHED_NONE))
      continue;
    for (size_t k = 0; k < missions[i].n_wait_paths; k++)
      rqi_webhook_register_path(*out, missions[i].wait_paths[k]);
  }
  return 0;
}

int rq_daemon_main(int argc, char **argv, const char *const *files,
                   size_t n_files, const RqMissionDef *missions,
                   size_t n_missions)
{
  Cli cli = { .log_level = -1, .log_format = -1, .health_port = -1,
              .metrics_port = -1, .webhook_port = -1 };
  RqWebhook *webhook = NULL;
  RqScheduler sched = { NULL, 0, 4, 0, NULL };
  RqHealthServer *servers[2] = { NULL, NULL };
  const char **names = NULL;
  bool metrics_up = false;
  bool http_up = false;
  bool auth_up = false;
  bool locked = false;
  int code;

  code = parse_args(argc, argv, &cli, missions, n_missions);
  if (code)
    goto out_early;
  if (cli.help) {
    print_help(missions, n_missions);
    goto out_early;
  }
  if (cli.version) {
    printf(PROG " (reqon %s, ABI %d)\n", RQ_VERSION, RQ_ABI_VERSION);
    goto out_early;
  }
  code = load_env_file(rqi_opts.env_file ? rqi_opts.env_file : ".env",
                       rqi_opts.env_file != NULL, false);
  if (code)
    goto out_early;
  apply_env(&cli);
  /* A dry run is a plan of one run of each selected mission (§10.1). */
  if (rqi_opts.dry_run)
    rqi_opts.once = true;
  rqi_log_configure(cli.log_level < 0 ? RQ_LOG_INFO : cli.log_level,
                    cli.log_format == 1, cli.log_utc);
  /* Redacted from every log line even when no listener starts. */
  if (cli.webhook_token)
    rqi_log_add_secret(cli.webhook_token);
  rqi_util_init();

  /* Every scheduled mission's zone and expression, checked before
   * anything starts (§9.2: an unknown timezone is exit 3). */
  sched.jobs = rq_calloc(n_missions + 1, sizeof *sched.jobs);
  sched.max_parallel = rqi_opts.max_parallel;
  if (!rqi_opts.once)
    for (size_t i = 0; i < n_missions; i++) {
      char err[256];
      int rc;
      if (!is_selected(&cli, i) ||
          missions[i].schedule.kind == RQ_SCHED_NONE)
        continue;
      rc = rqi_sched_job_init(&sched.jobs[sched.n], &missions[i], i, err,
                              sizeof err);
      if (rc != 0) {
        RqLogCtx ctx = { .mission = missions[i].name };
        rq_log(RQ_LOG_ERROR, &ctx, "%s: %s", missions[i].name, err);
        code = rc == RQ_SCHED_EBADZONE ? 3 : 2;
        goto out;
      }
      sched.n++;
    }
  if (cli.list) {
    /* Read-only: works while a daemon holds the data directory. */
    json_t *doc = rqi_sched_state_read();
    rqi_sched_restore(&sched, doc);
    json_decref(doc);
    rqi_sched_begin(&sched, rq_now_ms());
    list_missions(&cli, missions, n_missions, &sched);
    goto out;
  }
  if (!rqi_opts.once) {
    if (sched.n == 0) {
      fprintf(stderr, PROG ": no scheduled missions; use --once\n");
      code = 2;
      goto out;
    }
    if (rqi_opts.output_dir)
      rq_log(RQ_LOG_WARN, NULL, "--output applies to --once only; "
             "ignored in daemon mode");
  }

  if (rqi_http_global_init() != 0) {
    rq_log(RQ_LOG_ERROR, NULL, "cannot initialise the HTTP library");
    code = 4;
    goto out;
  }
  http_up = true;
  auth_up = true;       /* rqi_auth_free is safe after a failed load */
  if (rqi_auth_load(rqi_opts.auth_file) != 0) {
    code = 3;
    goto out;
  }
  /* A dry run writes nothing (§10.1), not even the lock file or the
   * data directory: it only reads, and every file it reads is replaced
   * atomically by the daemon that may own the directory. */
  if (!rqi_opts.dry_run) {
    code = rqi_state_lock(rqi_opts.data_dir);
    if (code)
      goto out;
    locked = true;
  }
  g_resume = rq_calloc(n_missions + 1, sizeof *g_resume);
  for (size_t i = 0; i < n_missions; i++)
    if (is_selected(&cli, i) &&
        (rqi_opts.once || missions[i].schedule.kind != RQ_SCHED_NONE)) {
      rqi_auth_check_mission(&missions[i]);
      /* A run left "running" by a crash, or "interrupted", is resumed by
       * the mission's next run with --resume, else closed as failed
       * ("interrupted") before anything else runs (SPEC §8.3). */
      if (!rqi_opts.dry_run)
        g_resume[i] = rqi_exec_recover(&missions[i], rqi_opts.resume);
    }
  if (install_signals() != 0) {
    rq_log(RQ_LOG_ERROR, NULL, "cannot create the wake-up pipe: %s",
           strerror(errno));
    code = 4;
    goto out;
  }

  if (!rqi_opts.once) {
    /* A restart neither replays a run nor forgets one (§9.5). */
    json_t *doc = rqi_sched_state_read();
    rqi_sched_restore(&sched, doc);
    json_decref(doc);
  }
  /* Metrics and /health list the missions of this process (§10.3). */
  {
    size_t n_names = 0;
    size_t n_src = 0;
    const char **srcs;
    names = rq_calloc(n_missions + 1, sizeof *names);
    for (size_t i = 0; i < n_missions; i++)
      if (is_selected(&cli, i) &&
          (rqi_opts.once || missions[i].schedule.kind != RQ_SCHED_NONE)) {
        names[n_names++] = missions[i].name;
        n_src += missions[i].n_sources;
      }
    srcs = rq_calloc(n_src + 1, sizeof *srcs);
    n_src = 0;
    for (size_t i = 0; i < n_missions; i++) {
      if (!is_selected(&cli, i) ||
          (!rqi_opts.once && missions[i].schedule.kind == RQ_SCHED_NONE))
        continue;
      for (size_t k = 0; k < missions[i].n_sources; k++) {
        const char *sn = missions[i].sources[k].name;
        bool seen = false;
        for (size_t q = 0; q < n_src && !seen; q++)
          seen = strcmp(srcs[q], sn) == 0;
        if (!seen)
          srcs[n_src++] = sn;
      }
    }
    rqi_metrics_init(names, n_names, srcs, n_src);
    rq_free(srcs);
    metrics_up = true;
  }
  if (cli.health_port >= 0 || cli.metrics_port >= 0) {
    char err[512];
    sigset_t set, old;
    int rc;
    /* The listener threads must not take the daemon's signals. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    rc = rqi_health_start_ports(cli.listen_addr, cli.health_port,
                                cli.metrics_port, servers, err,
                                sizeof err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
      rq_log(RQ_LOG_ERROR, NULL, "%s", err);
      code = 4;
      goto out;
    }
  }
  code = start_webhook(&cli, missions, n_missions, &webhook);
  if (code)
    goto out;

  if (rqi_opts.once) {
    rqi_health_set_ready(RQ_READY_UP);
    code = run_once(&cli, files, missions, n_missions);
  } else {
    code = run_daemon(&cli, files, missions, &sched);
  }

out:
  alarm(0);                     /* the shutdown timeout is moot now */
  /* Every run has ended, so no wait is active. */
  rqi_webhook_stop(webhook);
  rqi_health_set_ready(RQ_READY_DRAINING);
  rqi_health_stop(servers[1]);
  rqi_health_stop(servers[0]);
  if (metrics_up)
    rqi_metrics_cleanup();
  rq_free(names);
  /* Clean shutdown frees everything, so LeakSanitizer stays quiet. */
  rqi_store_shutdown();
  rqi_state_shutdown();
  if (locked)
    rqi_state_unlock();
  if (auth_up)
    rqi_auth_free();
  if (http_up)
    rqi_http_global_cleanup();
  rqi_log_shutdown();
  rqi_sched_free(&sched);
  rq_free(g_resume);
  g_resume = NULL;
  if (g_wake[0] >= 0) {
    int r = g_wake[0];
    int w = g_wake[1];
    g_wake[1] = -1;             /* a late signal must not write to it */
    g_wake[0] = -1;
    close(r);
    close(w);
  }
out_early:
  free_env_keys();
  rq_free(cli.selected);
  fflush(stdout);
  return code;
}
