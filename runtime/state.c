/* state.c -- run state kept in the data directory: checkpoints (SPEC
 * §8.1) and the data-directory lock (§8.4).
 *
 * Checkpoints of mission M live in <data>/sync/M.json, an object keyed by
 * checkpoint key:
 *   { "Desk:/tickets": { "key": "Desk:/tickets", "syncedAt": "<ISO>",
 *       "recordCount": 120, "mission": "M", "executionId": "exec_…" } }
 * The file is read once and cached (the daemon owns the data directory);
 * a commit writes a copy of the cached object atomically and swaps it in
 * only when the write succeeded.  g_cp_mu serialises everything, since the
 * actions of a parallel stage commit on their own.
 *
 * Candidates of the current action are kept in run->candidates (an object
 * key -> {"ms": time, "count": records, "seq": n, "prev": entry}); only
 * the action's own thread touches them.  seq numbers the candidates of a
 * run in order, and prev is the entry a candidate replaced, so a retried
 * region can roll back to a mark in time proportional to the entries it
 * finds, without copying them all up front (rqi_checkpoint_rollback).
 *
 * A commit also sets reqon_sync_checkpoint_timestamp_seconds (§10.4).
 *
 * The lock is an flock on <data>/.lock held for the life of the process;
 * the file holds the owner's pid for the "in use" message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_metrics.h"

typedef struct CpFile {
  char *mission;
  json_t *doc;               /* owned object key -> entry */
  struct CpFile *next;
} CpFile;

static pthread_mutex_t g_cp_mu = PTHREAD_MUTEX_INITIALIZER;
static CpFile *g_cp;             /* checkpoint files read so far */
static int g_lock_fd = -1;

static const char *data_dir(void)
{
  return rqi_opts.data_dir ? rqi_opts.data_dir : ".reqon-data";
}

static char *cp_path(const char *mission)
{
  return rq_asprintf("%s/sync/%s.json", data_dir(), mission);
}

/* The cached checkpoint object of mission (g_cp_mu held); borrowed.  An
 * unreadable or corrupt file is logged and treated as empty: checkpoints
 * only save work, and the next commit rewrites the file. */
static json_t *cp_doc(const char *mission)
{
  CpFile *f;
  char *path;
  json_error_t je;
  json_t *doc;
  int fd;

  for (f = g_cp; f; f = f->next)
    if (strcmp(f->mission, mission) == 0)
      return f->doc;
  path = cp_path(mission);
  doc = NULL;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    doc = json_loadfd(fd, JSON_ALLOW_NUL, &je);
    close(fd);
    if (!json_is_object(doc)) {
      RqLogCtx ctx = { .mission = mission };
      rq_log(RQ_LOG_WARN, &ctx, "%s: checkpoint file %s is corrupt (%s); "
             "starting without checkpoints", mission, path,
             doc ? "not an object" : je.text);
      json_decref(doc);
      doc = NULL;
    }
  } else if (errno != ENOENT) {
    RqLogCtx ctx = { .mission = mission };
    rq_log(RQ_LOG_WARN, &ctx, "%s: cannot read checkpoint file %s: %s",
           mission, path, strerror(errno));
  }
  rq_free(path);
  f = rq_calloc(1, sizeof *f);
  f->mission = rq_strdup(mission);
  f->doc = doc ? doc : json_object();
  f->next = g_cp;
  g_cp = f;
  return f->doc;
}

bool rqi_checkpoint_get(RqRun *run, const char *key, double *ms)
{
  bool found = false;
  json_t *entry;
  const char *at;
  pthread_mutex_lock(&g_cp_mu);
  entry = json_object_get(cp_doc(run->m->name), key);
  at = json_string_value(json_object_get(entry, "syncedAt"));
  if (at)
    found = rq_parse_time(at, ms);
  pthread_mutex_unlock(&g_cp_mu);
  return found;
}

void rqi_checkpoint_candidate(RqRun *run, const char *key, double ms,
                              int record_count)
{
  json_t *c = json_object();
  json_t *prev;
  json_object_set_new(c, "ms", json_real(ms));
  json_object_set_new(c, "count", json_integer(record_count));
  json_object_set_new(c, "seq", json_integer(++run->cand_seq));
  if (!run->candidates)
    run->candidates = json_object();
  prev = json_object_get(run->candidates, key);
  if (prev)
    json_object_set_nocheck(c, "prev", prev);
  /* A later execution of the same key in the action replaces the earlier
   * one: it started later and succeeded too (§8.1 rule 5). */
  json_object_set_new_nocheck(run->candidates, key, c);
}

long rqi_checkpoint_mark(const RqRun *run)
{
  return run->cand_seq;
}

void rqi_checkpoint_rollback(RqRun *run, long mark)
{
  const char *key;
  json_t *c;
  void *tmp;
  if (!run->candidates)
    return;
  json_object_foreach_safe(run->candidates, tmp, key, c) {
    json_t *e = c;
    while (e && json_integer_value(json_object_get(e, "seq")) > mark)
      e = json_object_get(e, "prev");
    if (e == c)
      continue;
    if (e)
      json_object_set_nocheck(run->candidates, key, e);
    else
      json_object_del(run->candidates, key);
  }
}

void rqi_checkpoint_discard(RqRun *run)
{
  json_decref(run->candidates);
  run->candidates = NULL;
}

/* The execution id of the run, or of its root when the run of a parallel
 * action carries none. */
static const char *exec_id(RqRun *run)
{
  if (run->exec_id[0])
    return run->exec_id;
  return rqi_exec_root(run)->exec_id;
}

int rqi_checkpoint_commit(RqRun *run)
{
  const char *mission = run->m->name;
  RqLogCtx ctx = { .mission = mission, .execution = exec_id(run),
                   .action = run->action };
  json_t *doc;
  json_t *c;
  const char *key;
  char *path;
  int rc = 0;

  if (!run->candidates || json_object_size(run->candidates) == 0 ||
      rqi_opts.dry_run) {
    rqi_checkpoint_discard(run);
    return 0;
  }
  pthread_mutex_lock(&g_cp_mu);
  /* A shallow copy: entries are replaced, never modified. */
  doc = rqi_copy(cp_doc(mission));
  json_object_foreach(run->candidates, key, c) {
    char iso[40];
    json_t *e = json_object();
    rq_iso_time(json_number_value(json_object_get(c, "ms")), iso);
    json_object_set_new(e, "key", json_string_nocheck(key));
    json_object_set_new(e, "syncedAt", json_string(iso));
    json_object_set(e, "recordCount", json_object_get(c, "count"));
    json_object_set_new(e, "mission", json_string_nocheck(mission));
    json_object_set_new(e, "executionId",
                        json_string_nocheck(exec_id(run)));
    json_object_set_new_nocheck(doc, key, e);
  }
  path = cp_path(mission);
  if (rqi_store_write_json(path, doc) != 0) {
    rq_log(RQ_LOG_ERROR, &ctx, "%s: cannot write checkpoint file %s: %s",
           mission, path, strerror(errno));
    json_decref(doc);
    rc = -1;
  } else {
    CpFile *f;
    for (f = g_cp; f; f = f->next)
      if (strcmp(f->mission, mission) == 0)
        break;
    json_decref(f->doc);
    f->doc = doc;
    json_object_foreach(run->candidates, key, c) {
      rq_log(RQ_LOG_DEBUG, &ctx, "%s/%s: checkpoint %s = %s", mission,
             run->action ? run->action : "-", key,
             json_string_value(json_object_get(json_object_get(doc, key),
                                               "syncedAt")));
      /* reqon_sync_checkpoint_timestamp_seconds (§10.4): committed
       * checkpoints only, like the file. */
      rqi_metrics_checkpoint(mission, key,
                             json_number_value(json_object_get(c, "ms")));
    }
  }
  pthread_mutex_unlock(&g_cp_mu);
  rq_free(path);
  rqi_checkpoint_discard(run);
  return rc;
}

void rqi_state_shutdown(void)
{
  CpFile *f;
  pthread_mutex_lock(&g_cp_mu);
  f = g_cp;
  g_cp = NULL;
  pthread_mutex_unlock(&g_cp_mu);
  while (f) {
    CpFile *next = f->next;
    json_decref(f->doc);
    rq_free(f->mission);
    rq_free(f);
    f = next;
  }
}

/* The pid written in the lock file fd, or 0 when unreadable. */
static long lock_owner(int fd)
{
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  char *end;
  long pid;
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  errno = 0;
  pid = strtol(buf, &end, 10);
  if (errno || end == buf || pid <= 0)
    return 0;
  return pid;
}

int rqi_state_lock(const char *dir)
{
  char *path;
  char pid[32];
  int fd;
  int n;

  if (rq_mkdirs(dir, 0755) != 0) {
    rq_log(RQ_LOG_ERROR, NULL, "data dir %s cannot be created: %s", dir,
           strerror(errno));
    return 4;
  }
  path = rq_asprintf("%s/.lock", dir);
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    rq_log(RQ_LOG_ERROR, NULL, "data dir %s is not writable: %s", dir,
           strerror(errno));
    rq_free(path);
    return 4;
  }
  rq_free(path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int saved = errno;
    long owner = lock_owner(fd);
    close(fd);
    if (saved == EWOULDBLOCK) {
      if (owner > 0)
        rq_log(RQ_LOG_ERROR, NULL, "data dir %s is in use by pid %ld", dir,
               owner);
      else
        rq_log(RQ_LOG_ERROR, NULL, "data dir %s is in use by another "
               "process", dir);
    } else {
      rq_log(RQ_LOG_ERROR, NULL, "cannot lock data dir %s: %s", dir,
             strerror(saved));
    }
    return 4;
  }
  /* The lock is the flock; the pid is only informative. */
  n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    rq_log(RQ_LOG_ERROR, NULL, "data dir %s is not writable: %s", dir,
           strerror(errno));
    close(fd);
    return 4;
  }
  g_lock_fd = fd;
  return 0;
}

void rqi_state_unlock(void)
{
  if (g_lock_fd < 0)
    return;
  /* The file and its pid stay: removing it would race with a starting
   * process that already opened it, and the pid is only read while the
   * flock is held.  Closing releases the flock. */
  close(g_lock_fd);
  g_lock_fd = -1;
}
