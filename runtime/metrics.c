/* metrics.c -- the metrics registry of SPEC §10.4 and the per-mission
 * state behind /health (§10.3).  One mutex guards everything: events are
 * a few per HTTP attempt, far below any contention that would matter.
 * Every family is a flat array of series searched linearly; the cap of
 * RQ_METRICS_MAX_SERIES bounds both memory and the search.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rq_internal.h"
#include "rq_limit.h"
#include "rq_metrics.h"

/* One label set of a labelled counter or gauge. */
typedef struct {
  char *l[3];          /* owned label values; unused ones NULL */
  double v;
  unsigned long long touched;  /* family clock at the last update */
} Series;

typedef struct {
  const char *name;    /* family name, for the cap warning */
  int n_labels;
  Series *s;           /* owned */
  size_t n, cap;
  bool warned;         /* the cap warning was logged */
  bool evict;          /* at the cap, replace the least recently updated
                        * series (gauges only: a counter must never
                        * restart from 0 under the same labels) */
  unsigned long long clock;
} Family;

/* Everything known about one mission. */
typedef struct {
  char *name;                      /* owned */
  unsigned long runs[3];           /* success, failure, skipped */
  int in_progress;
  double last_success_ms;          /* 0: never */
  double window[RQ_METRICS_WINDOW]; /* last durations, seconds (ring) */
  size_t n_window, next;
  double dur_sum;                  /* seconds, every run */
  unsigned long dur_count;
  const char *last_status;         /* static text; NULL: none yet */
  double last_run_ms, next_run_ms; /* 0: unknown */
  int consecutive_failures;
} Mission;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static Mission *missions;          /* owned array */
static size_t n_missions, cap_missions;
static bool missions_warned;
static size_t missions_loaded;
static double started_mono;        /* rq_mono_ms() at init */
static bool started;
static Family f_http = { "reqon_http_requests_total", 3, NULL, 0, 0,
                         false, false, 0 };
static Family f_retry = { "reqon_http_retries_total", 1, NULL, 0, 0,
                          false, false, 0 };
static Family f_records = { "reqon_records_written_total", 2, NULL, 0, 0,
                            false, false, 0 };
/* Checkpoint keys include per-item paths (§8.1), so they never stop
 * coming: keep the most recently committed ones. */
static Family f_ckpt = { "reqon_sync_checkpoint_timestamp_seconds", 2,
                         NULL, 0, 0, false, true, 0 };
/* Declared sources (values unused): circuit and rate-limit families. */
static Family f_sources = { "reqon_circuit_state", 1, NULL, 0, 0, false,
                            false, 0 };

static void cap_warning(bool *warned, const char *family, bool evict)
{
  if(*warned)
    return;
  *warned = true;
  rq_log(RQ_LOG_WARN, NULL, "metrics: %s has %d series; %s", family,
         RQ_METRICS_MAX_SERIES, evict ? "the least recently updated are "
         "dropped for new ones" : "events with new label values are not "
         "counted");
}

/* The series of f with labels a, b, c (NULL reads as ""), created at 0
 * when new; NULL past the cap (or, in an evicting family, the slot of
 * the least recently updated series, reset).  Marks it updated.  Call
 * with mu held. */
static Series *series_get(Family *f, const char *a, const char *b,
                          const char *c)
{
  const char *want[3];
  size_t i;
  int k;
  Series *s;

  want[0] = a ? a : "";
  want[1] = b ? b : "";
  want[2] = c ? c : "";
  for(i = 0; i < f->n; i++) {
    for(k = 0; k < f->n_labels; k++)
      if(strcmp(f->s[i].l[k], want[k]) != 0)
        break;
    if(k == f->n_labels) {
      f->s[i].touched = ++f->clock;
      return &f->s[i];
    }
  }
  if(f->n >= RQ_METRICS_MAX_SERIES) {
    cap_warning(&f->warned, f->name, f->evict);
    if(!f->evict)
      return NULL;
    s = &f->s[0];
    for(i = 1; i < f->n; i++)
      if(f->s[i].touched < s->touched)
        s = &f->s[i];
    for(k = 0; k < f->n_labels; k++)
      rq_free(s->l[k]);
  }
  else {
    if(f->n == f->cap) {
      f->cap = f->cap ? f->cap * 2 : 8;
      f->s = rq_realloc(f->s, f->cap * sizeof(*f->s));
    }
    s = &f->s[f->n++];
  }
  memset(s, 0, sizeof(*s));
  s->touched = ++f->clock;
  for(k = 0; k < f->n_labels; k++)
    s->l[k] = rq_strdup(want[k]);
  return s;
}

static void family_free(Family *f)
{
  size_t i;
  int k;

  for(i = 0; i < f->n; i++)
    for(k = 0; k < f->n_labels; k++)
      rq_free(f->s[i].l[k]);
  rq_free(f->s);
  f->s = NULL;
  f->n = f->cap = 0;
  f->warned = false;
  f->clock = 0;
}

/* The mission named name, created when new; NULL past the cap.  Call
 * with mu held. */
static Mission *mission_get(const char *name)
{
  size_t i;
  Mission *m;

  if(!name)
    name = "";
  for(i = 0; i < n_missions; i++)
    if(strcmp(missions[i].name, name) == 0)
      return &missions[i];
  if(n_missions >= RQ_METRICS_MAX_SERIES) {
    cap_warning(&missions_warned, "reqon_mission_runs_total", false);
    return NULL;
  }
  if(n_missions == cap_missions) {
    cap_missions = cap_missions ? cap_missions * 2 : 8;
    missions = rq_realloc(missions, cap_missions * sizeof(*missions));
  }
  m = &missions[n_missions++];
  memset(m, 0, sizeof(*m));
  m->name = rq_strdup(name);
  return m;
}

/* Frees the registry; call with mu held. */
static void reset_locked(void)
{
  size_t i;

  for(i = 0; i < n_missions; i++)
    rq_free(missions[i].name);
  rq_free(missions);
  missions = NULL;
  n_missions = cap_missions = 0;
  missions_warned = false;
  missions_loaded = 0;
  family_free(&f_http);
  family_free(&f_retry);
  family_free(&f_records);
  family_free(&f_ckpt);
  family_free(&f_sources);
  started = false;
}

void rqi_metrics_init(const char *const *mission_names, size_t n_m,
                      const char *const *source_names, size_t n_s)
{
  size_t i;

  pthread_mutex_lock(&mu);
  reset_locked();
  for(i = 0; i < n_m; i++)
    mission_get(mission_names[i]);
  for(i = 0; i < n_s; i++)
    series_get(&f_sources, source_names[i], NULL, NULL);
  missions_loaded = n_m;
  started_mono = rq_mono_ms();
  started = true;
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_cleanup(void)
{
  pthread_mutex_lock(&mu);
  reset_locked();
  pthread_mutex_unlock(&mu);
}

/* ------------------------------------------------------------ events */

void rqi_metrics_run_started(const char *mission, double now_ms)
{
  Mission *m;

  pthread_mutex_lock(&mu);
  m = mission_get(mission);
  if(m) {
    m->in_progress++;
    m->last_run_ms = now_ms;
  }
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_run_ended(const char *mission, RqMetRunEnd end,
                           double duration_ms, double now_ms)
{
  Mission *m;
  double secs = duration_ms > 0 && isfinite(duration_ms) ?
                duration_ms / 1000.0 : 0;

  pthread_mutex_lock(&mu);
  m = mission_get(mission);
  if(!m) {
    pthread_mutex_unlock(&mu);
    return;
  }
  if(m->in_progress > 0)
    m->in_progress--;
  m->window[m->next] = secs;
  m->next = (m->next + 1) % RQ_METRICS_WINDOW;
  if(m->n_window < RQ_METRICS_WINDOW)
    m->n_window++;
  m->dur_sum += secs;
  m->dur_count++;
  switch(end) {
  case RQ_MET_COMPLETED:
    m->runs[0]++;
    m->last_success_ms = now_ms;
    m->last_status = "completed";
    m->consecutive_failures = 0;
    break;
  case RQ_MET_FAILED:
    m->runs[1]++;
    m->last_status = "failed";
    m->consecutive_failures++;
    break;
  case RQ_MET_INTERRUPTED:
  default:
    m->runs[1]++;
    m->last_status = "interrupted";
    break;
  }
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_run_skipped(const char *mission)
{
  Mission *m;

  pthread_mutex_lock(&mu);
  m = mission_get(mission);
  if(m)
    m->runs[2]++;
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_set_next_run(const char *mission, double epoch_ms)
{
  Mission *m;

  pthread_mutex_lock(&mu);
  m = mission_get(mission);
  if(m)
    m->next_run_ms = epoch_ms > 0 ? epoch_ms : 0;
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_http_attempt(const char *source, const char *method,
                              int code)
{
  char c[16];
  Series *s;

  /* Anything that is not an HTTP status is a transport error (§10.4),
   * which also bounds the code label to 501 values. */
  if(code < 100 || code > 599)
    code = 0;
  snprintf(c, sizeof(c), "%d", code);
  pthread_mutex_lock(&mu);
  s = series_get(&f_http, source, method, c);
  if(s)
    s->v += 1;
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_http_retry(const char *source)
{
  Series *s;

  pthread_mutex_lock(&mu);
  s = series_get(&f_retry, source, NULL, NULL);
  if(s)
    s->v += 1;
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_records_written(const char *mission, const char *store,
                                 unsigned long n)
{
  Series *s;

  pthread_mutex_lock(&mu);
  s = series_get(&f_records, mission, store, NULL);
  if(s)
    s->v += (double)n;
  pthread_mutex_unlock(&mu);
}

void rqi_metrics_checkpoint(const char *mission, const char *key,
                            double epoch_ms)
{
  Series *s;

  if(!isfinite(epoch_ms))
    return;
  pthread_mutex_lock(&mu);
  s = series_get(&f_ckpt, mission, key, NULL);
  if(s)
    s->v = epoch_ms / 1000.0;
  pthread_mutex_unlock(&mu);
}

/* --------------------------------------------------------- rendering */

void rqi_metrics_format_number(double v, char *out, size_t n)
{
  int prec;

  if(isnan(v)) {
    snprintf(out, n, "NaN");
    return;
  }
  if(isinf(v)) {
    snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  /* Counters and epoch seconds: plain integers up to 2^53. */
  if(v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, n, "%.0f", v);
    return;
  }
  /* Shortest %g text that reads back as v (Go's ParseFloat accepts the
   * exponent form for very large or small values). */
  for(prec = 6; prec < 17; prec++) {
    snprintf(out, n, "%.*g", prec, v);
    if(strtod(out, NULL) == v)
      return;
  }
  snprintf(out, n, "%.17g", v);
}

/* The length of the valid UTF-8 sequence at p (1-4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
  size_t n, i;
  unsigned cp;

  if(p[0] < 0x80)
    return 1;
  if(p[0] >= 0xc2 && p[0] <= 0xdf)
    n = 2, cp = p[0] & 0x1f;
  else if(p[0] >= 0xe0 && p[0] <= 0xef)
    n = 3, cp = p[0] & 0x0f;
  else if(p[0] >= 0xf0 && p[0] <= 0xf4)
    n = 4, cp = p[0] & 0x07;
  else
    return 0;
  for(i = 1; i < n; i++) {
    if((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 ||
     cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/* Appends a label value with \\, \" and \n escaped (format 0.0.4).
 * Prometheus rejects a whole scrape over one invalid UTF-8 label, so a
 * bad byte becomes U+FFFD. */
static void add_label_value(RqBuf *b, const char *v)
{
  const char *p;
  size_t n;

  for(p = v; *p; p++) {
    n = utf8_len((const unsigned char *)p);
    if(n == 0)
      rq_buf_add(b, "\xef\xbf\xbd", 3);
    else if(n > 1) {
      rq_buf_add(b, p, n);
      p += n - 1;
    }
    else if(*p == '\\')
      rq_buf_add(b, "\\\\", 2);
    else if(*p == '"')
      rq_buf_add(b, "\\\"", 2);
    else if(*p == '\n')
      rq_buf_add(b, "\\n", 2);
    else
      rq_buf_add(b, p, 1);
  }
}

/* One sample line: name{k0="v0",...} value.  names/vals have n items. */
static void add_sample(RqBuf *b, const char *name, const char *const *keys,
                       const char *const *vals, int n, double v)
{
  char num[40];
  int i;

  rq_buf_add(b, name, strlen(name));
  if(n > 0) {
    rq_buf_add(b, "{", 1);
    for(i = 0; i < n; i++) {
      rq_buf_addf(b, "%s%s=\"", i ? "," : "", keys[i]);
      add_label_value(b, vals[i]);
      rq_buf_add(b, "\"", 1);
    }
    rq_buf_add(b, "}", 1);
  }
  rqi_metrics_format_number(v, num, sizeof(num));
  rq_buf_addf(b, " %s\n", num);
}

static void add_head(RqBuf *b, const char *name, const char *help,
                     const char *type)
{
  rq_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

/* The q-quantile of the n sorted values (nearest rank); NaN when n is
 * 0. */
static double quantile(const double *sorted, size_t n, double q)
{
  size_t rank;

  if(n == 0)
    return NAN;
  rank = (size_t)ceil(q * (double)n);
  if(rank < 1)
    rank = 1;
  if(rank > n)
    rank = n;
  return sorted[rank - 1];
}

static void render_family(RqBuf *b, const Family *f, const char *help,
                          const char *type, const char *const *keys)
{
  size_t i;

  add_head(b, f->name, help, type);
  for(i = 0; i < f->n; i++)
    add_sample(b, f->name, keys, (const char *const *)f->s[i].l,
               f->n_labels, f->s[i].v);
}

/* The limiter entry for source name in st, or NULL. */
static const RqLimitStats *find_stats(const RqLimitStats *st, size_t n,
                                      const char *name)
{
  size_t i;

  for(i = 0; i < n; i++)
    if(st[i].source && strcmp(st[i].source, name) == 0)
      return &st[i];
  return NULL;
}

static double circuit_value(RqCbStateKind k)
{
  return k == RQ_CB_OPEN ? 2 : k == RQ_CB_HALF_OPEN ? 1 : 0;
}

char *rqi_metrics_render(void)
{
  static const char *const k_ms[] = { "mission", "status" };
  static const char *const st_names[] = { "success", "failure",
                                          "skipped" };
  static const char *const k_m[] = { "mission", "quantile" };
  static const char *const k_http[] = { "source", "method", "code" };
  static const char *const k_src[] = { "source" };
  static const char *const k_rec[] = { "mission", "store" };
  static const char *const k_ckpt[] = { "mission", "key" };
  static const double qs[] = { 0.5, 0.9, 0.99 };
  static const char *const q_text[] = { "0.5", "0.9", "0.99" };
  RqBuf b = RQ_BUF_INIT(0);
  RqLimitStats *st;
  size_t n_st, i, j;
  int k;

  /* The limiter has its own lock: copy its state first, never holding
   * both locks at once. */
  n_st = rqi_limit_stats(NULL, 0);
  st = rq_calloc(n_st ? n_st : 1, sizeof(*st));
  n_st = rqi_limit_stats(st, n_st);

  pthread_mutex_lock(&mu);
  add_head(&b, "reqon_mission_runs_total", "Total mission runs",
           "counter");
  for(i = 0; i < n_missions; i++)
    for(k = 0; k < 3; k++) {
      const char *v[2];
      v[0] = missions[i].name;
      v[1] = st_names[k];
      add_sample(&b, "reqon_mission_runs_total", k_ms, v, 2,
                 (double)missions[i].runs[k]);
    }

  add_head(&b, "reqon_mission_duration_seconds",
           "Mission run duration (quantiles: last 100 runs)",
           "summary");
  for(i = 0; i < n_missions; i++) {
    const Mission *m = &missions[i];
    double sorted[RQ_METRICS_WINDOW];
    const char *v[2];

    memcpy(sorted, m->window, m->n_window * sizeof(double));
    qsort(sorted, m->n_window, sizeof(double), cmp_double);
    v[0] = m->name;
    for(k = 0; k < 3; k++) {
      v[1] = q_text[k];
      add_sample(&b, "reqon_mission_duration_seconds", k_m, v, 2,
                 quantile(sorted, m->n_window, qs[k]));
    }
    add_sample(&b, "reqon_mission_duration_seconds_sum", k_m, v, 1,
               m->dur_sum);
    add_sample(&b, "reqon_mission_duration_seconds_count", k_m, v, 1,
               (double)m->dur_count);
  }

  add_head(&b, "reqon_mission_runs_in_progress",
           "Mission runs currently in progress", "gauge");
  for(i = 0; i < n_missions; i++)
    add_sample(&b, "reqon_mission_runs_in_progress", k_m,
               (const char *const *)&missions[i].name, 1,
               (double)missions[i].in_progress);

  add_head(&b, "reqon_last_success_timestamp_seconds",
           "End of the last successful run (epoch seconds, 0: never)",
           "gauge");
  for(i = 0; i < n_missions; i++)
    add_sample(&b, "reqon_last_success_timestamp_seconds", k_m,
               (const char *const *)&missions[i].name, 1,
               floor(missions[i].last_success_ms / 1000.0));

  render_family(&b, &f_http, "HTTP attempts by status code (0: transport "
                "error)", "counter", k_http);
  render_family(&b, &f_retry, "HTTP retries", "counter", k_src);
  render_family(&b, &f_records, "Records written to stores", "counter",
                k_rec);

  /* Declared sources first, then any other the limiter knows. */
  add_head(&b, "reqon_circuit_state",
           "Circuit breaker state (0 closed, 1 half-open, 2 open)",
           "gauge");
  for(i = 0; i < f_sources.n; i++) {
    const RqLimitStats *s = find_stats(st, n_st, f_sources.s[i].l[0]);
    add_sample(&b, "reqon_circuit_state", k_src,
               (const char *const *)f_sources.s[i].l, 1,
               s ? circuit_value(s->cb_state) : 0);
  }
  for(j = 0; j < n_st; j++)
    if(st[j].source && !find_stats(st, j, st[j].source)) {
      bool declared = false;
      for(i = 0; i < f_sources.n && !declared; i++)
        declared = strcmp(f_sources.s[i].l[0], st[j].source) == 0;
      if(!declared)
        add_sample(&b, "reqon_circuit_state", k_src, &st[j].source, 1,
                   circuit_value(st[j].cb_state));
    }

  add_head(&b, "reqon_ratelimit_wait_seconds_total",
           "Time spent waiting on rate limits", "counter");
  for(i = 0; i < f_sources.n; i++) {
    const RqLimitStats *s = find_stats(st, n_st, f_sources.s[i].l[0]);
    add_sample(&b, "reqon_ratelimit_wait_seconds_total", k_src,
               (const char *const *)f_sources.s[i].l, 1,
               s ? s->rl_wait_ms_total / 1000.0 : 0);
  }
  for(j = 0; j < n_st; j++)
    if(st[j].source && !find_stats(st, j, st[j].source)) {
      bool declared = false;
      for(i = 0; i < f_sources.n && !declared; i++)
        declared = strcmp(f_sources.s[i].l[0], st[j].source) == 0;
      if(!declared)
        add_sample(&b, "reqon_ratelimit_wait_seconds_total", k_src,
                   &st[j].source, 1, st[j].rl_wait_ms_total / 1000.0);
    }

  render_family(&b, &f_ckpt, "Value of the last committed sync checkpoint "
                "(epoch seconds)", "gauge", k_ckpt);
  pthread_mutex_unlock(&mu);
  rq_free(st);
  if(!b.data)
    return rq_strdup("");
  return b.data;
}

/* ------------------------------------------------------------ health */

static json_t *iso_or_null(double ms)
{
  char t[40];

  if(ms <= 0)
    return json_null();
  rq_iso_time(ms, t);
  return t[0] ? json_string(t) : json_null();
}

json_t *rqi_metrics_health(const char *version)
{
  json_t *doc = json_object(), *list = json_array();
  bool degraded = false;
  double up;
  size_t i;

  pthread_mutex_lock(&mu);
  for(i = 0; i < n_missions; i++) {
    const Mission *m = &missions[i];
    json_t *o = json_object();

    if(m->consecutive_failures >= RQ_METRICS_DEGRADED)
      degraded = true;
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "running", json_integer(m->in_progress));
    json_object_set_new(o, "lastStatus", m->last_status ?
                        json_string(m->last_status) : json_null());
    json_object_set_new(o, "lastRun", iso_or_null(m->last_run_ms));
    json_object_set_new(o, "nextRun", iso_or_null(m->next_run_ms));
    json_object_set_new(o, "consecutiveFailures",
                        json_integer(m->consecutive_failures));
    json_array_append_new(list, o);
  }
  up = started ? (rq_mono_ms() - started_mono) / 1000.0 : 0;
  json_object_set_new(doc, "status",
                      json_string(degraded ? "degraded" : "ok"));
  json_object_set_new(doc, "uptime", json_integer((json_int_t)up));
  json_object_set_new(doc, "missionsLoaded",
                      json_integer((json_int_t)missions_loaded));
  pthread_mutex_unlock(&mu);
  json_object_set_new(doc, "version", json_string(version ? version : ""));
  json_object_set_new(doc, "missions", list);
  return doc;
}
