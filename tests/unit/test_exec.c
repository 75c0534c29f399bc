/* test_exec.c -- execution records of fresh runs (SPEC §8.2), whose ids
 * are random and so out of reach of the e2e cases: the id format, the
 * trigger, the record written at run start and at each stage transition
 * (read back from disk by an expression while the run is going), the
 * stage statuses (completed, skipped, failed, pending), each error once,
 * a run cancelled by the shutdown timeout ("interrupted"), and no record
 * at all in --dry-run.  Also the rollback of checkpoint candidates that
 * the retry directive uses (§8.1 rule 5), the data-directory lock and
 * the choice of the data directory (§8.4).
 *
 * The missions are hand-written tables without HTTP steps.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "rq_internal.h"
#include "check.h"

static char tmpdir[256];
static char execdir[320];
static json_t *g_snap[4];       /* records read during the run (new refs) */
static int g_n_snap;

/* ------------------------------------------------------------ records */
/* Removes every execution record. */
static void clear_records(void)
{
  DIR *d = opendir(execdir);
  struct dirent *de;

  if(!d)
    return;
  while((de = readdir(d)) != NULL) {
    char path[600];
    if(de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", execdir, de->d_name);
    unlink(path);
  }
  closedir(d);
}

/* The only record on disk (new reference), or NULL when there are none
 * or several; *n gets their number and name the file name. */
static json_t *only_record(int *n, char *name, size_t cap)
{
  DIR *d = opendir(execdir);
  struct dirent *de;
  char path[600];

  *n = 0;
  name[0] = '\0';
  if(!d)
    return NULL;
  while((de = readdir(d)) != NULL) {
    if(de->d_name[0] == '.')
      continue;
    (*n)++;
    snprintf(name, cap, "%s", de->d_name);
  }
  closedir(d);
  if(*n != 1)
    return NULL;
  snprintf(path, sizeof(path), "%s/%s", execdir, name);
  return json_load_file(path, 0, NULL);
}

static const char *str(const json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

static const char *stage_status(const json_t *rec, size_t i)
{
  return str(json_array_get(json_object_get(rec, "stages"), i), "status");
}

/* exec_<base36 ms>_<6 base36>, and the file is <id>.json */
static bool id_ok(const char *id, const char *file)
{
  size_t n;
  const char *us;
  size_t i;
  char want[128];

  if(!id || strncmp(id, "exec_", 5) != 0)
    return false;
  us = strchr(id + 5, '_');
  if(!us || us == id + 5 || strlen(us + 1) != 6)
    return false;
  n = strlen(id);
  for(i = 5; i < n; i++) {
    char c = id[i];
    if(id + i == us)
      continue;
    if(!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')))
      return false;
  }
  snprintf(want, sizeof(want), "%s.json", id);
  return strcmp(want, file) == 0;
}

/* ------------------------------------------------------------ tables */
static int fn_snap(const RqEnv *e, json_t **out)
{
  int n;
  char name[256];
  json_t *rec = only_record(&n, name, sizeof(name));

  if(g_n_snap < 4)
    g_snap[g_n_snap++] = rec;
  else
    json_decref(rec);
  *out = json_null();
  return 0;
}

static int fn_false(const RqEnv *e, json_t **out)
{
  *out = json_false();
  return 0;
}

static int fn_boom(const RqEnv *e, json_t **out)
{
  *out = json_string("boom");
  return 0;
}

static const RqStep snap_steps[] = {
  { .kind = RQ_ST_LET, .at = RQ_AT(0, 2, 3), .label = "let", .var = "s",
    .expr = fn_snap, .store = -1, .partial = -1 },
};
static const RqStep boom_steps[] = {
  { .kind = RQ_ST_DIRECTIVE, .at = RQ_AT(0, 3, 3), .label = "abort",
    .directive = RQ_DIR_ABORT, .message = fn_boom, .store = -1,
    .partial = -1 },
};
static int fn_stop(const RqEnv *e, json_t **out)
{
  rqi_stop_requested = 1;
  *out = json_null();
  return 0;
}
static const RqStep stop_steps[] = {
  { .kind = RQ_ST_LET, .at = RQ_AT(0, 4, 3), .label = "let", .var = "s",
    .expr = fn_stop, .store = -1, .partial = -1 },
  { .kind = RQ_ST_LET, .at = RQ_AT(0, 5, 3), .label = "let", .var = "t",
    .expr = fn_snap, .store = -1, .partial = -1 },
};
static const RqActionDef actions[] = {
  { "Snap", snap_steps, 1, RQ_AT(0, 1, 1) },
  { "Boom", boom_steps, 1, RQ_AT(0, 3, 1) },
  { "Stop", stop_steps, 2, RQ_AT(0, 4, 1) },
};
static const int a_snap[] = { 0 };
static const int a_boom[] = { 1 };
static const RqStageDef good_stages[] = {
  { a_snap, 1, false, NULL, RQ_AT(0, 9, 1) },
};
static const RqStageDef bad_stages[] = {
  { a_snap, 1, false, NULL, RQ_AT(0, 9, 1) },
  { a_snap, 1, false, fn_false, RQ_AT(0, 9, 1) },
  { a_snap, 1, false, NULL, RQ_AT(0, 9, 1) },
  { a_boom, 1, false, NULL, RQ_AT(0, 9, 1) },
  { a_snap, 1, false, NULL, RQ_AT(0, 9, 1) },
};
static const int a_stop[] = { 2 };
static const RqStageDef stop_stages[] = {
  { a_snap, 1, false, NULL, RQ_AT(0, 9, 1) },
  { a_stop, 1, false, NULL, RQ_AT(0, 9, 1) },
  { a_snap, 1, false, NULL, RQ_AT(0, 9, 1) },
};
static const RqMissionDef stopping = {
  .name = "Stopping", .actions = actions, .n_actions = 3,
  .stages = stop_stages, .n_stages = 3,
};
static const RqMissionDef good = {
  .name = "Good", .actions = actions, .n_actions = 2,
  .stages = good_stages, .n_stages = 1,
};
static const RqMissionDef bad = {
  .name = "Bad", .actions = actions, .n_actions = 2,
  .stages = bad_stages, .n_stages = 5,
};
static const char *const files[] = { "t.reqon" };

static void drop_snaps(void)
{
  int i;

  for(i = 0; i < g_n_snap; i++)
    json_decref(g_snap[i]);
  g_n_snap = 0;
}

/* ------------------------------------------------------------- tests */
static void test_completed(const char *trigger)
{
  RqRunResult res;
  json_t *rec;
  json_t *st;
  int n;
  char name[256];

  clear_records();
  drop_snaps();
  CHECK(rqi_exec_run(&good, files, trigger, &res) == 0);
  rec = only_record(&n, name, sizeof(name));
  CHECK(n == 1);
  CHECK(rec != NULL);
  if(!rec)
    return;
  CHECK(id_ok(str(rec, "id"), name));
  CHECK_STREQ(str(rec, "mission"), "Good");
  CHECK_STREQ(str(rec, "status"), "completed");
  CHECK_STREQ(str(rec, "trigger"), trigger);
  CHECK(str(rec, "startedAt") && str(rec, "completedAt"));
  CHECK(json_is_integer(json_object_get(rec, "duration")));
  CHECK(json_array_size(json_object_get(rec, "errors")) == 0);
  CHECK(json_array_size(json_object_get(rec, "stages")) == 1);
  st = json_array_get(json_object_get(rec, "stages"), 0);
  CHECK_STREQ(str(st, "action"), "Snap");
  CHECK_STREQ(str(st, "status"), "completed");
  CHECK(str(st, "startedAt") && str(st, "completedAt"));
  CHECK(json_integer_value(json_object_get(st, "attempt")) == 0);
  /* During the stage, the record on disk said so (written at the
   * transition, under the same id). */
  CHECK(g_n_snap == 1 && g_snap[0]);
  if(g_n_snap == 1 && g_snap[0]) {
    CHECK_STREQ(str(g_snap[0], "id"), str(rec, "id"));
    CHECK_STREQ(str(g_snap[0], "status"), "running");
    CHECK_STREQ(stage_status(g_snap[0], 0), "running");
    CHECK(json_object_get(g_snap[0], "completedAt") == NULL);
  }
  json_decref(rec);
}

static void test_failed(void)
{
  RqRunResult res;
  json_t *rec;
  json_t *errs;
  json_t *e;
  int n;
  char name[256];

  clear_records();
  drop_snaps();
  CHECK(rqi_exec_run(&bad, files, "retry", &res) != 0);
  CHECK_STREQ(res.error, "boom");
  rec = only_record(&n, name, sizeof(name));
  CHECK(n == 1);
  CHECK(rec != NULL);
  if(!rec)
    return;
  CHECK_STREQ(str(rec, "status"), "failed");
  CHECK_STREQ(str(rec, "trigger"), "retry");
  CHECK_STREQ(stage_status(rec, 0), "completed");
  CHECK_STREQ(stage_status(rec, 1), "skipped");
  CHECK_STREQ(stage_status(rec, 2), "completed");
  CHECK_STREQ(stage_status(rec, 3), "failed");
  CHECK_STREQ(stage_status(rec, 4), "pending");
  errs = json_object_get(rec, "errors");
  CHECK(json_array_size(errs) == 1);
  e = json_array_get(errs, 0);
  CHECK(json_integer_value(json_object_get(e, "stageIndex")) == 3);
  CHECK_STREQ(str(e, "action"), "Boom");
  CHECK_STREQ(str(e, "step"), "abort");
  CHECK_STREQ(str(e, "message"), "boom");
  CHECK(str(e, "timestamp") != NULL);
  /* Snapshots: in stage 0, and in stage 2 after the skip. */
  CHECK(g_n_snap == 2);
  if(g_n_snap == 2 && g_snap[0] && g_snap[1]) {
    CHECK_STREQ(stage_status(g_snap[0], 0), "running");
    CHECK_STREQ(stage_status(g_snap[0], 1), "pending");
    CHECK_STREQ(stage_status(g_snap[1], 0), "completed");
    CHECK_STREQ(stage_status(g_snap[1], 1), "skipped");
    CHECK_STREQ(stage_status(g_snap[1], 2), "running");
    CHECK_STREQ(stage_status(g_snap[1], 3), "pending");
    CHECK_STREQ(str(g_snap[1], "status"), "running");
  }
  json_decref(rec);
}

static void test_dry_run(void)
{
  RqRunResult res;
  json_t *rec;
  int n;
  char name[256];

  clear_records();
  drop_snaps();
  rqi_opts.dry_run = true;
  CHECK(rqi_exec_run(&good, files, "once", &res) == 0);
  rqi_opts.dry_run = false;
  rec = only_record(&n, name, sizeof(name));
  CHECK(n == 0);
  json_decref(rec);
  CHECK(g_n_snap == 1 && g_snap[0] == NULL);
}

/* §8.2, §10.5: a run cancelled at a step boundary (the shutdown timeout
 * expired) ends "interrupted", with the error "interrupted" once; the
 * stage after it never runs. */
static void test_interrupted(void)
{
  RqRunResult res;
  json_t *rec;
  json_t *errs;
  int n;
  char name[256];

  clear_records();
  drop_snaps();
  CHECK(rqi_exec_run(&stopping, files, "schedule", &res) != 0);
  rqi_stop_requested = 0;
  rec = only_record(&n, name, sizeof(name));
  CHECK(n == 1);
  CHECK(rec != NULL);
  if(!rec)
    return;
  CHECK_STREQ(str(rec, "status"), "interrupted");
  CHECK_STREQ(stage_status(rec, 0), "completed");
  CHECK_STREQ(stage_status(rec, 2), "pending");
  errs = json_object_get(rec, "errors");
  CHECK(json_array_size(errs) == 1);
  CHECK_STREQ(str(json_array_get(errs, 0), "message"), "interrupted");
  CHECK(json_integer_value(json_object_get(json_array_get(errs, 0),
                                           "stageIndex")) == 1);
  /* Stage 0's snapshot only: the let after the stop never ran. */
  CHECK(g_n_snap == 1);
  json_decref(rec);
}

static double cand_ms(const RqRun *run, const char *key)
{
  json_t *c = json_object_get(run->candidates, key);

  return c ? json_number_value(json_object_get(c, "ms")) : -1;
}

static void test_rollback(void)
{
  RqRun *run = rq_calloc(1, sizeof(*run));
  long m0;
  long m1;

  run->m = &good;
  m0 = rqi_checkpoint_mark(run);
  rqi_checkpoint_candidate(run, "a", 1, 0);
  m1 = rqi_checkpoint_mark(run);
  rqi_checkpoint_candidate(run, "a", 2, 0);   /* replaces a */
  rqi_checkpoint_candidate(run, "b", 3, 0);
  rqi_checkpoint_candidate(run, "a", 4, 0);
  CHECK(cand_ms(run, "a") == 4);
  rqi_checkpoint_rollback(run, m1);           /* back to a = 1 only */
  CHECK(cand_ms(run, "a") == 1);
  CHECK(cand_ms(run, "b") == -1);
  rqi_checkpoint_candidate(run, "b", 5, 0);
  CHECK(cand_ms(run, "b") == 5);
  rqi_checkpoint_rollback(run, m0);           /* nothing left */
  CHECK(json_object_size(run->candidates) == 0);
  rqi_checkpoint_rollback(run, m0);           /* idempotent */
  rqi_checkpoint_discard(run);
  rqi_checkpoint_rollback(run, m0);           /* no candidates at all */
  CHECK(run->candidates == NULL);
  rq_free(run);
}

/* Runs rqi_state_lock(dir) with stderr sent to a file; returns its
 * result and puts what it logged in out. */
static int lock_logged(const char *dir, char *out, size_t cap)
{
  char path[400];
  int saved;
  int fd;
  int rc;
  FILE *f;
  size_t n;

  snprintf(path, sizeof(path), "%s/lock.log", tmpdir);
  fflush(stderr);
  saved = dup(2);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if(saved < 0 || fd < 0 || dup2(fd, 2) < 0) {
    CHECK(!"cannot redirect stderr");
    return -1;
  }
  close(fd);
  rc = rqi_state_lock(dir);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  out[0] = '\0';
  f = fopen(path, "r");
  if(f) {
    n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
  }
  return rc;
}

/* §8.4: <data>/.lock is an exclusive flock; while another open file
 * holds it, taking it fails with 4 and names the holder's pid; once it
 * is released the lock is taken and the file holds our pid. */
static void test_lock(void)
{
  char dir[300];
  char path[400];
  char log[1024];
  char buf[32];
  int fd;
  ssize_t n;

  snprintf(dir, sizeof(dir), "%s/locked", tmpdir);
  CHECK(rq_mkdirs(dir, 0755) == 0);
  snprintf(path, sizeof(path), "%s/.lock", dir);
  fd = open(path, O_RDWR | O_CREAT, 0644);
  CHECK(fd >= 0);
  if(fd < 0)
    return;
  /* Another holder (another open file description of the same file
   * conflicts like another process would) with pid 4242 written. */
  CHECK(flock(fd, LOCK_EX | LOCK_NB) == 0);
  CHECK(pwrite(fd, "4242\n", 5, 0) == 5);
  CHECK(lock_logged(dir, log, sizeof(log)) == 4);
  CHECK(strstr(log, "data dir ") != NULL);
  CHECK(strstr(log, "/locked is in use by pid 4242") != NULL);
  close(fd);                                  /* released */
  CHECK(lock_logged(dir, log, sizeof(log)) == 0);
  CHECK_STREQ(log, "");
  fd = open(path, O_RDONLY);
  CHECK(fd >= 0);
  n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
  buf[n > 0 ? n : 0] = '\0';
  CHECK(strtol(buf, NULL, 10) == (long)getpid());
  /* Held by us now: a second taker fails too. */
  CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0);
  if(fd >= 0)
    close(fd);
  rqi_state_unlock();
  fd = open(path, O_RDONLY);
  CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
  if(fd >= 0)
    close(fd);
}

/* Number of execution records of mission Good under <dir>/executions. */
static int records_in(const char *dir)
{
  char path[400];
  DIR *d;
  struct dirent *de;
  int n = 0;

  snprintf(path, sizeof(path), "%s/executions", dir);
  d = opendir(path);
  if(!d)
    return 0;
  while((de = readdir(d)) != NULL)
    if(strncmp(de->d_name, "exec_", 5) == 0)
      n++;
  closedir(d);
  return n;
}

/* §8.4 through the real entry point: the data directory is
 * ./.reqon-data by default, REQON_DATA_DIR when set, and --data-dir
 * beats both.  Last test: rq_daemon_main shuts the runtime down. */
static void test_data_dir(const char *dflt)
{
  char cwd[300];
  char envdir[300];
  char clidir[300];
  char here[600];
  char a0[] = "syncd";
  char a1[] = "--once";
  char a2[] = "--log-level";
  char a3[] = "error";
  char a4[] = "--data-dir";
  char *once[] = { a0, a1, a2, a3, NULL };
  char *flag[] = { a0, a1, a2, a3, a4, clidir, NULL };

  snprintf(cwd, sizeof(cwd), "%s/cwd", tmpdir);
  snprintf(envdir, sizeof(envdir), "%s/envdir", tmpdir);
  snprintf(clidir, sizeof(clidir), "%s/clidir", tmpdir);
  snprintf(here, sizeof(here), "%s/.reqon-data", cwd);
  CHECK(rq_mkdirs(cwd, 0755) == 0);
  CHECK(chdir(cwd) == 0);
  unsetenv("REQON_DATA_DIR");
  rqi_opts.data_dir = dflt;
  CHECK(rq_daemon_main(4, once, files, 1, &good, 1) == 0);
  CHECK(records_in(here) == 1);
  setenv("REQON_DATA_DIR", envdir, 1);
  CHECK(rq_daemon_main(4, once, files, 1, &good, 1) == 0);
  CHECK(records_in(envdir) == 1);
  CHECK(records_in(here) == 1);
  CHECK(rq_daemon_main(6, flag, files, 1, &good, 1) == 0);
  CHECK(records_in(clidir) == 1);
  CHECK(records_in(envdir) == 1);
  unsetenv("REQON_DATA_DIR");
  CHECK(chdir("/") == 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int main(void)
{
  char data[300];
  /* The built-in default, before the tests point it elsewhere. */
  const char *dflt = rqi_opts.data_dir;

  CHECK_STREQ(dflt, ".reqon-data");
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_exec.XXXXXX");
  if(!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  snprintf(data, sizeof(data), "%s/data", tmpdir);
  snprintf(execdir, sizeof(execdir), "%s/executions", data);
  rqi_opts.data_dir = data;
  rqi_log_configure(getenv("VERBOSE") ? RQ_LOG_DEBUG : RQ_LOG_WARN, 0, 1);
  rqi_util_init();

  test_completed("once");
  test_completed("schedule");
  test_failed();
  test_dry_run();
  test_interrupted();
  test_rollback();
  test_lock();
  test_data_dir(dflt);

  drop_snaps();
  rqi_store_shutdown();
  rqi_state_shutdown();
  rqi_log_shutdown();
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return check_report();
}
