/* store.c -- the store registry and the operations shared by every kind
 * of store (SPEC §7).
 *
 * Instances:
 *   - file("t") and nosql("t") are one process-wide instance per resolved
 *     path <data>/<t>.json, shared by every mission that names the path
 *     (list g_files);
 *   - memory("t") is one instance per target name and root run, kept in
 *     rqi_exec_root(run)->stores and freed by rqi_store_run_end;
 *   - the dead-letter store of a mission is the file store
 *     <data>/<Mission>/_dead_letter.json.
 * g_mu guards both lists; each instance has its own mutex for its records.
 *
 * Records live in RqStore.recs, a jansson object: it iterates in insertion
 * order and json_object_set on an existing key keeps the key's position,
 * which gives the order rules of §7.1 for free.  A stored record is never
 * modified in place: a write replaces it with a new object, so snapshots
 * handed out by rqi_store_list stay valid without copying.
 *
 * A store step is staged first into a unit of work (RqStoreUnit: all at
 * once by rqi_store_put, or page by page by a streaming paginated step,
 * SPEC §6.5), then applied under the store's mutex, then the file is
 * flushed; if the flush fails the step is rolled back, so memory and
 * disk never disagree and the step is all or nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "rq_internal.h"
#include "rq_metrics.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static RqStore *g_files;          /* file/nosql instances, by path */

static const char *data_dir(void)
{
  return rqi_opts.data_dir ? rqi_opts.data_dir : ".reqon-data";
}

static RqStore *store_new(const RqStoreOps *ops, const char *id,
                          const char *name)
{
  RqStore *st = rq_calloc(1, sizeof *st);
  st->ops = ops;
  st->id = rq_strdup(id);
  st->name = rq_strdup(name);
  pthread_mutex_init(&st->mu, NULL);
  return st;
}

static void store_free(RqStore *st)
{
  json_decref(st->recs);
  pthread_mutex_destroy(&st->mu);
  rq_free(st->id);
  rq_free(st->name);
  rq_free(st);
}

static void store_free_list(RqStore *st)
{
  while (st) {
    RqStore *next = st->next;
    store_free(st);
    st = next;
  }
}

/* The declared name of store idx, for messages and --output. */
static const char *store_name(const RqMissionDef *m, int idx)
{
  return idx == RQ_STORE_DEAD_LETTER ? "_dead_letter" : m->stores[idx].name;
}

/* Finds or creates the instance with this id in *list (g_mu held). */
static RqStore *find_or_add(RqStore **list, const RqStoreOps *ops,
                            const char *id, const char *name)
{
  RqStore *st;
  for (st = *list; st; st = st->next)
    if (strcmp(st->id, id) == 0)
      return st;
  st = store_new(ops, id, name);
  st->next = *list;
  *list = st;
  return st;
}

/* The loaded instance of the mission's store idx, or NULL with the reason
 * (without the "store S: " prefix) in err. */
static RqStore *store_get(RqRun *run, int idx, char *err, size_t n)
{
  const RqMissionDef *m = run->m;
  const char *name;
  char *path = NULL;
  RqStore *st;
  bool ok;

  if (idx != RQ_STORE_DEAD_LETTER && (idx < 0 || (size_t)idx >= m->n_stores)) {
    snprintf(err, n, "no store number %d in mission %s", idx, m->name);
    return NULL;
  }
  name = store_name(m, idx);
  if (idx == RQ_STORE_DEAD_LETTER) {
    path = rq_asprintf("%s/%s/_dead_letter.json", data_dir(), m->name);
  } else {
    const RqStoreDef *def = &m->stores[idx];
    const char *target = def->target ? def->target : def->name;
    switch (def->kind) {
    case RQ_STORE_MEMORY: {
      RqRun *root = rqi_exec_root(run);
      RqStore *list;
      pthread_mutex_lock(&g_mu);
      list = root->stores;
      st = find_or_add(&list, &rqi_store_memory_ops, target, name);
      root->stores = list;
      pthread_mutex_unlock(&g_mu);
      goto load;
    }
    case RQ_STORE_FILE:
    case RQ_STORE_NOSQL:
      path = rq_asprintf("%s/%s.json", data_dir(), target);
      break;
    case RQ_STORE_SQL:
    case RQ_STORE_POSTGREST:
    default:
      snprintf(err, n, "%s stores are not supported yet",
               def->kind == RQ_STORE_SQL ? "sql" : "postgrest");
      return NULL;
    }
  }
  pthread_mutex_lock(&g_mu);
  st = find_or_add(&g_files, &rqi_store_file_ops, path, name);
  pthread_mutex_unlock(&g_mu);
  rq_free(path);

load:
  /* Loading happens under the store's own mutex, so a slow file does not
   * hold up other stores; a failed load is final. */
  pthread_mutex_lock(&st->mu);
  if (!st->loaded && !st->broken) {
    if (st->ops->load(st, st->err, sizeof st->err) == 0)
      st->loaded = true;
    else
      st->broken = true;
  }
  ok = !st->broken;
  if (!ok)
    snprintf(err, n, "%s", st->err);
  pthread_mutex_unlock(&st->mu);
  return ok ? st : NULL;
}

int rqi_store_open(const RqEnv *env, RqAt at, int idx, RqStore **out)
{
  char err[600];
  RqStore *st = store_get(env->run, idx, err, sizeof err);
  *out = st;
  if (!st) {
    const RqMissionDef *m = env->run->m;
    const char *name = (idx == RQ_STORE_DEAD_LETTER ||
                        (idx >= 0 && (size_t)idx < m->n_stores))
                       ? store_name(m, idx) : "?";
    return rq_fail(env, at, "store %s: %s", name, err);
  }
  return 0;
}

/* Merges rec's top-level fields onto a shallow copy of prev: old fields
 * keep their place, new ones are appended (§7.1).  Old values are never
 * modified in place.  deep: rec's values are deep-copied, else shared
 * (the caller owns rec and never changes it).  Returns a new reference. */
static json_t *merge_onto(const json_t *prev, json_t *rec, bool deep)
{
  json_t *nw = rqi_copy(prev);
  const char *k;
  json_t *v;
  size_t klen;
  /* keylen: a key may hold NUL bytes ({"a\u0000b": 1}) */
  json_object_keylen_foreach(rec, k, klen, v)
    json_object_setn_new_nocheck(nw, k, klen,
                                 deep ? rqi_deep_copy(v) : json_incref(v));
  return nw;
}

/* Does any object in v have a field name holding a NUL byte?  jansson
 * writes such names but refuses to read them back, so a file store that
 * took one would be unreadable ("corrupt") from the next run on. */
static bool has_nul_name(const json_t *v)
{
  const char *k;
  size_t klen, i;
  json_t *x;
  if (json_is_object(v)) {
    json_object_keylen_foreach((json_t *)v, k, klen, x)
      if (memchr(k, '\0', klen) || has_nul_name(x))
        return true;
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, x)
      if (has_nul_name(x))
        return true;
  }
  return false;
}

/* ---------------------------------------------------- units of work
 * A store step is staged record by record into a unit, without the
 * store's mutex, and applied by rqi_store_unit_commit.  The unit merges
 * records of the same key among themselves; the merge onto the stored
 * record happens at commit, under the mutex, so the result equals
 * applying the records one by one at commit time:
 *   merge(merge(old, r1), r2) == merge(old, merge(r1, r2))
 * for values (later wins) and for field order (old fields in place, then
 * the others in order of first appearance), and "_partial" is set after
 * every record in both forms. */

void rqi_store_unit_init(RqStoreUnit *u, bool merge, int partial)
{
  memset(u, 0, sizeof *u);
  u->staged = json_object();
  u->merge = merge;
  u->partial = partial;
}

void rqi_store_unit_add(RqStoreUnit *u, json_t *rec, const char *key)
{
  json_t *prev = json_object_get(u->staged, key);
  json_t *nw;
  if (!u->nul_name && has_nul_name(rec))
    u->nul_name = true;
  if (u->merge && json_is_object(prev))
    nw = merge_onto(prev, rec, true);
  else
    nw = rqi_deep_copy(rec);
  if (u->partial >= 0)
    json_object_set_new(nw, "_partial", json_boolean(u->partial));
  /* _nocheck: a key is any text (§7.1); jansson's UTF-8 check would
   * drop the record silently. */
  json_object_set_new_nocheck(u->staged, key, nw);
  u->n++;
}

void rqi_store_unit_free(RqStoreUnit *u)
{
  json_decref(u->staged);
  memset(u, 0, sizeof *u);
}

/* One applied change of a step, for the rollback. */
typedef struct {
  const char *key;     /* borrowed from the staged object */
  json_t *old;         /* owned previous record; NULL: key was new */
} Undo;

int rqi_store_unit_commit(const RqEnv *env, RqAt at, RqStore *st,
                          const char *name, RqStoreUnit *u)
{
  Undo *undo = NULL;
  size_t n_undo = 0;
  const char *key;
  json_t *rec;
  int write_errno = 0;              /* the flush failed */

  if (!name)
    name = st->name;
  if (u->nul_name && st->ops == &rqi_store_file_ops)
    return rq_fail(env, at, "store %s: a field name holds a NUL byte "
                   "(\\u0000), which a file store cannot read back", name);

  pthread_mutex_lock(&st->mu);
  /* Apply, remembering what was there. */
  undo = rq_calloc(json_object_size(u->staged) + 1, sizeof *undo);
  json_object_foreach(u->staged, key, rec) {
    json_t *old = json_object_get(st->recs, key);
    json_t *nw;
    if (u->merge && json_is_object(old)) {
      /* rec is owned by the unit and never changed: share its values. */
      nw = merge_onto(old, rec, false);
      if (u->partial >= 0)
        json_object_set_new(nw, "_partial", json_boolean(u->partial));
    } else {
      nw = json_incref(rec);
    }
    if (old && json_equal(old, nw)) {
      json_decref(nw);
      continue;                     /* unchanged: keep the old object */
    }
    undo[n_undo].key = key;
    undo[n_undo].old = json_incref(old);
    n_undo++;
    json_object_set_new_nocheck(st->recs, key, nw);
  }

  /* --dry-run: stores are read-only, their records in memory are copies
   * that are never written back (§10.1).  Nothing changed: nothing to
   * write. */
  if (n_undo > 0 && !rqi_opts.dry_run && st->ops->flush(st) != 0) {
    write_errno = errno ? errno : EIO;
    /* Roll back in reverse: re-deleting new keys restores the order. */
    for (size_t i = n_undo; i-- > 0;) {
      if (undo[i].old)
        json_object_set_new_nocheck(st->recs, undo[i].key, undo[i].old);
      else
        json_object_del(st->recs, undo[i].key);
      undo[i].old = NULL;
    }
  }
  pthread_mutex_unlock(&st->mu);
  for (size_t i = 0; i < n_undo; i++)
    json_decref(undo[i].old);
  rq_free(undo);
  /* Errors are recorded outside the store's mutex.  st->id never changes
   * after creation. */
  if (write_errno)
    return rq_fail(env, at, "store %s: cannot write %s: %s", name,
                   st->id, strerror(write_errno));
  /* reqon_records_written_total (§10.4): every record of the step,
   * changed or not, as the step wrote them. */
  if (!rqi_opts.dry_run && env->run)
    rqi_metrics_records_written(env->run->m->name, name,
                                json_object_size(u->staged));
  return 0;
}

int rqi_store_put(const RqEnv *env, RqAt at, RqStore *st, const char *name,
                  json_t *recs, const char *const *keys, bool merge,
                  int partial)
{
  size_t n = json_array_size(recs);
  RqStoreUnit u;
  int rc;

  if (!name)
    name = st->name;
  rqi_store_unit_init(&u, merge, partial);
  /* Stage: later records of the step see the earlier ones.  The first
   * bad record in step order decides the message. */
  for (size_t i = 0; i < n; i++) {
    json_t *rec = json_array_get(recs, i);
    if (!json_is_object(rec)) {
      rqi_store_unit_free(&u);
      return rq_fail(env, at, "store %s: record must be an object "
                     "(got %s)", name, rqi_type_name(rec));
    }
    rqi_store_unit_add(&u, rec, keys[i]);
    if (u.nul_name && st->ops == &rqi_store_file_ops)
      break;                        /* the commit fails with the message */
  }
  rc = rqi_store_unit_commit(env, at, st, name, &u);
  rqi_store_unit_free(&u);
  return rc;
}

json_t *rqi_store_list(RqStore *st)
{
  json_t *arr = json_array();
  const char *key;
  json_t *rec;
  pthread_mutex_lock(&st->mu);
  json_object_foreach(st->recs, key, rec)
    json_array_append(arr, rec);
  pthread_mutex_unlock(&st->mu);
  return arr;
}

json_t *rqi_store_lookup(RqStore *st, const char *key)
{
  json_t *rec;
  pthread_mutex_lock(&st->mu);
  rec = json_incref(json_object_get(st->recs, key));
  pthread_mutex_unlock(&st->mu);
  return rec;
}

/* Writes store idx of the run's mission to dir/<Mission>/<name>.json as a
 * pretty JSON array.  Returns 0 or -1 (logged). */
static int output_store(RqRun *run, const char *dir, int idx)
{
  const RqMissionDef *m = run->m;
  RqLogCtx ctx = { .mission = m->name, .execution = run->exec_id };
  const char *name = store_name(m, idx);
  char err[600];
  RqStore *st = store_get(run, idx, err, sizeof err);
  json_t *arr;
  char *path;
  int rc;
  int saved;

  if (!st) {
    rq_log(RQ_LOG_WARN, &ctx, "%s: store %s: %s; left out of --output",
           m->name, name, err);
    return 0;
  }
  arr = rqi_store_list(st);
  path = rq_asprintf("%s/%s/%s.json", dir, m->name, name);
  rc = rqi_store_write_json(path, arr);
  saved = errno;
  json_decref(arr);
  if (rc != 0)
    rq_log(RQ_LOG_ERROR, &ctx, "%s: cannot write --output file %s: %s",
           m->name, path, strerror(saved));
  rq_free(path);
  return rc;
}

/* True when the mission's dead-letter store has an instance or a file. */
static bool dead_letter_exists(const RqMissionDef *m)
{
  char *path = rq_asprintf("%s/%s/_dead_letter.json", data_dir(), m->name);
  bool found = access(path, F_OK) == 0;
  pthread_mutex_lock(&g_mu);
  for (RqStore *st = g_files; st && !found; st = st->next)
    found = strcmp(st->id, path) == 0;
  pthread_mutex_unlock(&g_mu);
  rq_free(path);
  return found;
}

int rqi_store_output(RqRun *run, const char *dir)
{
  int rc = 0;
  for (size_t i = 0; i < run->m->n_stores; i++)
    if (output_store(run, dir, (int)i) != 0)
      rc = -1;
  if (dead_letter_exists(run->m) &&
      output_store(run, dir, RQ_STORE_DEAD_LETTER) != 0)
    rc = -1;
  return rc;
}

void rqi_store_run_end(RqRun *run)
{
  RqStore *list;
  if (run->parent)
    return;
  /* --output is written here because the run's memory stores die with
   * it; rqi_exec_run does not hand the run back to daemon.c. */
  if (rqi_opts.once && rqi_opts.output_dir && !rqi_opts.dry_run)
    rqi_store_output(run, rqi_opts.output_dir);
  pthread_mutex_lock(&g_mu);
  list = run->stores;
  run->stores = NULL;
  pthread_mutex_unlock(&g_mu);
  store_free_list(list);
}

void rqi_store_shutdown(void)
{
  RqStore *list;
  pthread_mutex_lock(&g_mu);
  list = g_files;
  g_files = NULL;
  pthread_mutex_unlock(&g_mu);
  store_free_list(list);
}
