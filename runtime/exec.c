/* exec.c -- running a mission: the step interpreter (SPEC §4).
 *
 * rqi_exec_run() executes one run of a compiled mission: it evaluates the
 * mission lets and source bases, then the pipeline stages, each action
 * interpreting its RqStep table and calling the generated RqExprFn
 * functions for every expression.  A bracketed stage runs its actions on
 * pthreads, each with its own RqRun (child of the root run: own error
 * buffer and checkpoint candidates, shared stores and mission scope).
 *
 * Step functions return 0, a negative RQ_E_* code (error recorded in the
 * run with rq_fail), or one of the positive FLOW_* codes below, which
 * carry directives (skip, retry) up to the construct that handles them.
 * They never escape this file.
 *
 * The execution records of §8.2 and the resume of §8.3 live here too,
 * since they follow the stages of a run.
 *
 * Also here: the helpers of reqon.h that need runs and scopes (rq_fail,
 * rq_var, rq_name, rq_lookup, status(), header(), ...).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/random.h>
#include <jansson.h>
#include "rq_internal.h"
#include "rq_webhook.h"

enum {
  FLOW_SKIP = 1,         /* end the iteration, or the action */
  FLOW_RETRY = 2,        /* retry directive: find the anchor */
  FLOW_RETRY_HERE = 3,   /* from a match or validate: the anchor
                            precedes this step */
  FLOW_RETRY_LOOP = 4,   /* no anchor: retry the iteration or action */
  FLOW_END = 5,          /* --dry-run: the action ends as completed */
};

#define MAX_KEY_BYTES 512
#define MAX_JUMP_DEPTH 8
#define MSG_VALUE_BYTES 200

/* Where a step list runs. */
typedef struct {
  RqRun *run;
  RqScope *scope;
  bool has_subject;    /* in a match arm: the subject is `subject` */
  json_t *subject;     /* borrowed; the match value (NULL = missing) */
  bool block_body;     /* this list is a match arm or an or block: a
                          retry directive is anchored by its owner */
} Frame;

static int exec_steps(Frame *f, const RqStep *steps, size_t n);
static int run_action(RqRun *run, int idx);

/* ------------------------------------------------------------ scopes */

RqScope *rqi_scope_new(RqScope *parent)
{
  RqScope *s = rq_calloc(1, sizeof(*s));

  s->parent = parent;
  s->vars = json_object();
  if(parent) {
    s->response = rq_ref(parent->response);
    s->status = parent->status;
    s->headers = rq_ref(parent->headers);
  }
  return s;
}

void rqi_scope_free(RqScope *s)
{
  if(!s)
    return;
  json_decref(s->vars);
  json_decref(s->response);
  json_decref(s->headers);
  rq_free(s);
}

/* Returns a borrowed reference or NULL. */
json_t *rqi_scope_get(const RqScope *s, const char *name)
{
  for(; s; s = s->parent) {
    json_t *v = json_object_get(s->vars, name);
    if(v)
      return v;
  }
  return NULL;
}

/* Steals v; a missing value is bound as null (objects cannot hold the
 * missing state). */
void rqi_scope_set_new(RqScope *s, const char *name, json_t *v)
{
  json_object_set_new(s->vars, name, v ? v : json_null());
}

void rqi_scope_set_response_new(RqScope *s, json_t *v, int status,
                                json_t *h)
{
  json_decref(s->response);
  s->response = v;
  s->status = status;
  json_decref(s->headers);
  s->headers = h;
}

/* Replaces only the response (map, apply): status() and header() keep
 * describing the latest HTTP step.  Steals v. */
static void set_response_only(RqScope *s, json_t *v)
{
  json_decref(s->response);
  s->response = v;
}

/* -------------------------------------------------------- run errors */

RqRun *rqi_exec_root(RqRun *run)
{
  while(run && run->parent)
    run = run->parent;
  return run;
}

void rqi_exec_format_at(const RqRun *run, RqAt at, char *out, size_t n)
{
  const char *file = "?";

  /* RqRun does not carry the length of files[]: the compiler emits only
   * valid indexes, so a non-negative index is trusted. */
  if(run && run->files && at.file >= 0 && run->files[at.file])
    file = run->files[at.file];
  snprintf(out, n, "%s:%d:%d", file, at.line, at.col);
}

/* Records an error in run.  force replaces an earlier one (jump, parallel
 * stage summaries); otherwise the first error is kept. */
static void vset_err(RqRun *run, RqAt at, int code, bool force,
                     const char *fmt, va_list ap)
{
  if(run->failed && !force)
    return;
  vsnprintf(run->err, sizeof(run->err), fmt, ap);
  run->err_at = at;
  run->err_code = code;
  run->failed = true;
}

static void set_err(RqRun *run, RqAt at, int code, bool force,
                    const char *fmt, ...)
  __attribute__((format(printf, 5, 6)));

static void set_err(RqRun *run, RqAt at, int code, bool force,
                    const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vset_err(run, at, code, force, fmt, ap);
  va_end(ap);
}

int rq_fail(const RqEnv *env, RqAt at, const char *fmt, ...)
{
  va_list ap;

  if(!env || !env->run) {
    char buf[1024];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    rq_log(RQ_LOG_ERROR, NULL, "%s", buf);
    return -RQ_E_FAIL;
  }
  va_start(ap, fmt);
  vset_err(env->run, at, RQ_E_FAIL, false, fmt, ap);
  va_end(ap);
  return -RQ_E_FAIL;
}

/* Makes sure a failed step has a message even when a callee returned an
 * error code without calling rq_fail. */
static void ensure_err(RqRun *run, RqAt at, int rc)
{
  if(run->failed) {
    /* A callee may describe an interruption or abort with rq_fail, which
     * records a plain failure: the code decides the run's status. */
    if(rc == -RQ_E_INTERRUPT || rc == -RQ_E_ABORT)
      run->err_code = -rc;
    return;
  }
  if(rc == -RQ_E_TOO_LARGE)
    set_err(run, at, RQ_E_FAIL, false, "value too large");
  else if(rc == -RQ_E_INTERRUPT)
    set_err(run, at, RQ_E_INTERRUPT, false, "interrupted");
  else if(rc == -RQ_E_ABORT)
    set_err(run, at, RQ_E_ABORT, false, "aborted");
  else
    set_err(run, at, RQ_E_FAIL, false, "internal error (code %d)", rc);
}

static void log_ctx(const RqRun *run, const char *at, RqLogCtx *ctx)
{
  memset(ctx, 0, sizeof(*ctx));
  ctx->mission = run->m->name;
  ctx->execution = run->exec_id;
  ctx->action = run->action;
  ctx->at = at;
}

/* The ERROR line of §11.2, written once per failure:
 *   M/A: <label> at file:line:col: <message> */
static void log_failure(RqRun *run, const char *label, RqAt at)
{
  char pos[512];
  RqLogCtx ctx;

  if(run->logged || !run->failed || run->err_code == RQ_E_INTERRUPT)
    return;
  run->logged = true;
  run->err_label = label;
  rqi_exec_format_at(run, at, pos, sizeof(pos));
  log_ctx(run, pos, &ctx);
  ctx.step = label;
  ctx.error = run->err;
  if(run->action)
    rq_log(RQ_LOG_ERROR, &ctx, "%s/%s: %s at %s: %s", run->m->name,
           run->action, label ? label : "step", pos, run->err);
  else
    rq_log(RQ_LOG_ERROR, &ctx, "%s: %s at %s: %s", run->m->name,
           label ? label : "step", pos, run->err);
}

/* ------------------------------------------------------ evaluation */

static RqEnv frame_env(const Frame *f)
{
  RqEnv env;

  env.run = f->run;
  env.scope = f->scope;
  env.subject = f->has_subject ? f->subject : f->scope->response;
  return env;
}

/* Evaluates fn in the frame's scope with subject `subject` (borrowed,
 * NULL = missing).  *out: new reference or NULL.  A NULL fn is missing. */
static int eval_subj(const Frame *f, RqExprFn fn, json_t *subject,
                     json_t **out)
{
  RqEnv env;

  *out = NULL;
  if(!fn)
    return 0;
  env.run = f->run;
  env.scope = f->scope;
  env.subject = subject;
  return fn(&env, out);
}

static int eval(const Frame *f, RqExprFn fn, json_t **out)
{
  RqEnv env = frame_env(f);

  return eval_subj(f, fn, env.subject, out);
}

/* Evaluates fn with `subject` and returns its truthiness in *ok. */
static int eval_truthy(const Frame *f, RqExprFn fn, json_t *subject,
                       bool *ok)
{
  json_t *v = NULL;
  int rc = eval_subj(f, fn, subject, &v);

  *ok = rc == 0 && rq_truthy(v);
  json_decref(v);
  return rc;
}

/* ------------------------------------------------------------ steps */

static int step_for(Frame *f, const RqStep *st);
static int step_retry_sleep(RqRun *run, const RqStep *dir, int attempt,
                            RqAt at, bool *exhausted);

/* Runs the body of one for iteration, retrying it on an unanchored retry
 * directive.  The checkpoint candidates of a retried iteration are
 * dropped (§8.1 rule 5: what commits comes from the execution that
 * succeeded, and a re-execution ending outside 2xx leaves none). */
static int run_iteration(Frame *f, const RqStep *st, json_t *item)
{
  int attempt = 1;
  long mark = rqi_checkpoint_mark(f->run);
  int rc;

  for(;;) {
    RqScope *it = rqi_scope_new(f->scope);
    Frame body = { f->run, it, false, NULL, false };

    rqi_scope_set_new(it, st->var, rq_ref(item));
    rc = exec_steps(&body, st->steps, st->n_steps);
    rqi_scope_free(it);
    if(rc == FLOW_SKIP) {
      rc = 0;
      break;
    }
    if(rc == FLOW_RETRY_LOOP) {
      bool exhausted;
      const RqStep *dir = f->run->retry_dir;
      rc = step_retry_sleep(f->run, dir, attempt, st->at, &exhausted);
      if(rc) {
        log_failure(f->run, dir ? dir->label : "retry",
                    dir ? dir->at : st->at);
        break;
      }
      rqi_checkpoint_rollback(f->run, mark);
      attempt++;
      continue;
    }
    break;
  }
  return rc;
}

static int step_for(Frame *f, const RqStep *st)
{
  json_t *coll = NULL;
  json_t *kept = NULL;
  size_t i;
  int rc;

  rc = eval(f, st->expr, &coll);
  if(rc)
    return rc;
  if(!coll || json_is_null(coll)) {
    json_decref(coll);
    return 0;
  }
  if(!json_is_array(coll)) {
    RqEnv env = frame_env(f);
    rc = rq_fail(&env, st->at, "for: collection is %s, expected array",
                 rqi_type_name(coll));
    json_decref(coll);
    return rc;
  }
  /* Filter the whole snapshot first, with the item as subject and the
   * loop variable bound (§4.6). */
  kept = json_array();
  for(i = 0; i < json_array_size(coll); i++) {
    json_t *item = json_array_get(coll, i);
    bool keep = true;

    if(st->where) {
      RqScope *fs = rqi_scope_new(f->scope);
      Frame ff = { f->run, fs, false, NULL, false };
      rqi_scope_set_new(fs, st->var, rq_ref(item));
      rc = eval_truthy(&ff, st->where, item, &keep);
      rqi_scope_free(fs);
      if(rc)
        goto out;
    }
    if(keep)
      json_array_append(kept, item);
  }
  for(i = 0; i < json_array_size(kept); i++) {
    rc = run_iteration(f, st, json_array_get(kept, i));
    if(rc)
      goto out;
  }
  rc = 0;
out:
  json_decref(kept);
  json_decref(coll);
  return rc;
}

/* Builds the object of a mapping: exactly the fields whose value is not
 * missing, in order.  *out: new reference. */
static int build_fields(const Frame *f, const RqKV *fields, size_t n,
                        json_t *src, json_t **out)
{
  json_t *obj = json_object();
  size_t i;

  *out = NULL;
  for(i = 0; i < n; i++) {
    json_t *v = NULL;
    int rc = eval_subj(f, fields[i].value, src, &v);
    if(rc) {
      json_decref(obj);
      return rc;
    }
    if(v)
      json_object_setn_new_nocheck(obj, fields[i].key, fields[i].key_len,
                                   v);
  }
  *out = obj;
  return 0;
}

static int step_map(Frame *f, const RqStep *st)
{
  json_t *src = NULL;
  json_t *res = NULL;
  int rc;

  rc = eval(f, st->expr, &src);
  if(rc)
    return rc;
  rc = build_fields(f, st->fields, st->n_fields, src, &res);
  json_decref(src);
  if(rc)
    return rc;
  set_response_only(f->scope, res);
  return 0;
}

static int step_apply(Frame *f, const RqStep *st)
{
  const RqMissionDef *m = f->run->m;
  const RqTransformDef *t = &m->transforms[st->transform];
  json_t *val = NULL;
  json_t *res = NULL;
  size_t i;
  int rc;

  rc = eval(f, st->expr, &val);
  if(rc)
    return rc;
  for(i = 0; i < t->n_variants; i++) {
    const RqVariantDef *v = &t->variants[i];
    bool ok = true;

    if(v->schema >= 0)
      ok = rqi_conforms(&m->schemas[v->schema], val);
    if(ok && v->guard) {
      rc = eval_truthy(f, v->guard, val, &ok);
      if(rc)
        goto out;
    }
    if(!ok)
      continue;
    rc = build_fields(f, v->fields, v->n_fields, val, &res);
    if(rc)
      goto out;
    if(st->var)
      rqi_scope_set_new(f->scope, st->var, res);
    else
      set_response_only(f->scope, res);
    goto out;
  }
  {
    RqEnv env = frame_env(f);
    rc = rq_fail(&env, st->at, "apply %s: no variant matches (tried %zu)",
                 t->name, t->n_variants);
  }
out:
  json_decref(val);
  return rc;
}

static int step_validate(Frame *f, const RqStep *st)
{
  json_t *target = NULL;
  size_t i;
  int rc;

  rc = eval(f, st->expr, &target);
  if(rc)
    return rc;
  for(i = 0; i < st->n_assumes; i++) {
    const RqAssume *a = &st->assumes[i];
    bool ok;
    char *shown;
    RqEnv env;

    rc = eval_truthy(f, a->test, target, &ok);
    if(rc)
      break;
    if(ok)
      continue;
    if(st->has_or) {
      /* The or block runs in the current scope; its directives (skip,
       * abort, ...) propagate like those of any step list, and a retry
       * is anchored before this validate step, as for a match. */
      Frame of = *f;
      of.block_body = true;
      rc = exec_steps(&of, st->steps, st->n_steps);
      if(rc == FLOW_RETRY)
        rc = FLOW_RETRY_HERE;
      break;
    }
    shown = target ? rqi_compact(target, MSG_VALUE_BYTES)
                   : rq_strdup("null");
    env = frame_env(f);
    rc = rq_fail(&env, a->at, "validation failed: assume %s (value: %s)",
                 a->text ? a->text : "?", shown);
    rq_free(shown);
    break;
  }
  json_decref(target);
  return rc;
}

/* Logs the content-hash WARN once per store step and run. */
static void warn_hash_key(RqRun *run, const RqStep *st, const char *store)
{
  RqRun *root = rqi_exec_root(run);
  bool seen = false;
  size_t i;

  if(root->mu)
    pthread_mutex_lock(root->mu);
  for(i = 0; i < root->n_warned; i++) {
    if(root->warned[i] == st)
      seen = true;
  }
  if(!seen) {
    if(root->n_warned == root->cap_warned) {
      root->cap_warned = root->cap_warned ? root->cap_warned * 2 : 4;
      root->warned = rq_realloc(root->warned,
                                root->cap_warned * sizeof(*root->warned));
    }
    root->warned[root->n_warned++] = st;
  }
  if(root->mu)
    pthread_mutex_unlock(root->mu);
  if(!seen) {
    char pos[512];
    RqLogCtx ctx;
    rqi_exec_format_at(run, st->at, pos, sizeof(pos));
    log_ctx(run, pos, &ctx);
    rq_log(RQ_LOG_WARN, &ctx,
           "%s/%s: store %s: records have no key; using content hash",
           run->m->name, run->action ? run->action : "-", store);
  }
}

/* Does k (borrowed) hold a NUL byte?  Keys are C strings in the stores,
 * so such a key would be cut at the NUL and distinct records would share
 * one key: it is treated as invalid instead. */
static bool has_nul(const json_t *k)
{
  return json_is_string(k) &&
         strlen(json_string_value(k)) != json_string_length(k);
}

/* The key of rec per §7.1 (keyfn NULL: id, else content hash).
 * *out: malloc'd text.  A content-hash key logs the WARN of §7.1, or,
 * when hashed is not NULL, sets *hashed instead (a streaming step logs
 * it when its store step would have run). */
static int record_key(const Frame *f, const RqStep *st, RqExprFn keyfn,
                      const char *store, json_t *rec, char **out,
                      bool *hashed)
{
  RqEnv env = frame_env(f);
  json_t *k = NULL;
  char *text;
  int rc;

  *out = NULL;
  if(keyfn) {
    rc = eval_subj(f, keyfn, rec, &k);
    if(rc)
      return rc;
    if(!k || json_is_null(k) || has_nul(k))
      goto invalid;
  } else {
    json_t *id = json_object_get(rec, "id");
    if(id && !json_is_null(id)) {
      if(json_is_array(id) || json_is_object(id) || has_nul(id))
        goto invalid;
      k = json_incref(id);
    } else {
      char hash[33];
      rqi_content_hash(rec, hash);
      if(hashed)
        *hashed = true;
      else
        warn_hash_key(f->run, st, store);
      *out = rq_strdup(hash);
      return 0;
    }
  }
  text = rqi_text(k);
  json_decref(k);
  if(!text[0] || strlen(text) > MAX_KEY_BYTES) {
    rq_free(text);
    return rq_fail(&env, st->at, "store %s: invalid key", store);
  }
  *out = text;
  return 0;
invalid:
  json_decref(k);
  return rq_fail(&env, st->at, "store %s: invalid key", store);
}

/* Writes the records of val (borrowed: an object or an array of objects)
 * to store idx as one unit.  rqi_store_put copies what it keeps, so the
 * input value is never modified and needs no copy here. */
static int put_records(const Frame *f, const RqStep *st, int idx,
                       const char *name, RqExprFn keyfn, json_t *val,
                       bool merge, int partial)
{
  RqEnv env = frame_env(f);
  json_t *recs = json_array();
  char **keys = NULL;
  size_t n;
  size_t i;
  RqStore *store = NULL;
  int rc = 0;

  if(json_is_array(val))
    n = json_array_size(val);
  else if(json_is_object(val))
    n = 1;
  else {
    rc = rq_fail(&env, st->at, "store %s: record must be an object (got %s)",
                 name, rqi_type_name(val));
    json_decref(recs);
    return rc;
  }
  keys = rq_calloc(n + 1, sizeof(*keys));
  for(i = 0; i < n; i++) {
    json_t *rec = json_is_array(val) ? json_array_get(val, i) : val;
    if(!json_is_object(rec)) {
      rc = rq_fail(&env, st->at,
                   "store %s: record must be an object (got %s)", name,
                   rqi_type_name(rec));
      goto out;
    }
    rc = record_key(f, st, keyfn, name, rec, &keys[i], NULL);
    if(rc)
      goto out;
    json_array_append(recs, rec);
  }
  rc = rqi_store_open(&env, st->at, idx, &store);
  if(rc)
    goto out;
  rc = rqi_store_put(&env, st->at, store, name, recs,
                     (const char *const *)keys, merge, partial);
out:
  for(i = 0; i < n; i++)
    rq_free(keys[i]);
  rq_free(keys);
  json_decref(recs);
  return rc;
}

static int step_store(Frame *f, const RqStep *st)
{
  const RqStoreDef *sd = &f->run->m->stores[st->store];
  json_t *val = NULL;
  int rc;

  rc = eval(f, st->expr, &val);
  if(rc)
    return rc;
  rc = put_records(f, st, st->store, sd->name, st->key, val,
                   st->upsert || st->partial == 1, st->partial);
  json_decref(val);
  return rc;
}

/* ------------------------------------------ streaming store steps */
/* A paginated step marked stream_store runs together with the store
 * step that follows it (SPEC §6.5).  Each page's items are checked and
 * keyed as step_store would do it (same order, same messages) and staged
 * into one unit of work (rq_store.h) as the page arrives; the page is
 * then released.  The unit is applied once the last page is in, where
 * the store step would have run, so readers see none or all of it
 * (§7.4) and a failure anywhere stores nothing.
 *
 * Without streaming, the store step's errors can only appear after every
 * page succeeded.  So the first failing record is held back: its error
 * is moved out of the run (a later error must be able to replace it),
 * nothing more is staged, and the remaining pages are still fetched --
 * the same requests, and an HTTP failure on a later page wins, as it
 * would have.  The content-hash WARN is logged at the end likewise.
 *
 * Keys are evaluated in a child scope whose response is null: the
 * compiler streams only when the key expression reads neither response
 * nor status()/header(), and a bare name's fallback to a field of
 * response finds nothing in null, as in the concatenated array. */
typedef struct {
  Frame key_frame;       /* frame for key expressions */
  const RqStep *st;      /* the store step */
  const char *name;      /* its store's declared name */
  RqStoreUnit unit;
  bool hashed;           /* a content-hash key was used */
  bool held;             /* a record failed; nothing more is staged */
  int held_rc;
  bool held_failed;      /* the run's error fields, moved out */
  char held_err[sizeof(((RqRun *)0)->err)];
  RqAt held_at;
  int held_code;
} Stream;

static void stream_hold(Stream *s, int rc)
{
  RqRun *run = s->key_frame.run;

  s->held = true;
  s->held_rc = rc;
  s->held_failed = run->failed;
  if(run->failed) {
    memcpy(s->held_err, run->err, sizeof(s->held_err));
    s->held_at = run->err_at;
    s->held_code = run->err_code;
    run->failed = false;
    run->err[0] = '\0';
    run->err_code = 0;
  }
}

/* RqPageSink.page: stages the records of one page (borrowed). */
static void stream_page(void *ctx, json_t *items)
{
  Stream *s = ctx;
  RqEnv env = frame_env(&s->key_frame);
  size_t i;
  int rc;

  if(!items || s->held)
    return;
  for(i = 0; i < json_array_size(items); i++) {
    json_t *rec = json_array_get(items, i);
    char *key = NULL;

    if(!json_is_object(rec))
      rc = rq_fail(&env, s->st->at,
                   "store %s: record must be an object (got %s)", s->name,
                   rqi_type_name(rec));
    else
      rc = record_key(&s->key_frame, s->st, s->st->key, s->name, rec, &key,
                      &s->hashed);
    if(rc) {
      stream_hold(s, rc);
      return;
    }
    rqi_store_unit_add(&s->unit, rec, key);
    rq_free(key);
  }
}

/* Runs paginated step hst and the store step sst after it as described
 * above.  *in_store tells which of the two a failure belongs to. */
static int step_stream(Frame *f, const RqStep *hst, const RqStep *sst,
                       bool *in_store)
{
  RqRun *run = f->run;
  RqEnv env = frame_env(f);
  RqScope *ks = rqi_scope_new(f->scope);
  RqPageSink sink;
  RqStore *store = NULL;
  Stream s;
  int rc;

  memset(&s, 0, sizeof(s));
  rqi_scope_set_response_new(ks, NULL, 0, NULL);
  s.key_frame.run = run;
  s.key_frame.scope = ks;
  s.st = sst;
  s.name = run->m->stores[sst->store].name;
  rqi_store_unit_init(&s.unit, sst->upsert || sst->partial == 1,
                      sst->partial);
  sink.page = stream_page;
  sink.ctx = &s;
  *in_store = false;
  rc = rqi_http_step_stream(&env, hst, &sink);
  if(rc == 0 && rqi_opts.dry_run)
    rc = FLOW_END;          /* §10.1: printed, not sent (exec_step) */
  if(rc)
    goto out;               /* a held record error is dropped */
  *in_store = true;
  if(rqi_stop_requested) {  /* as between two steps (exec_steps) */
    set_err(run, sst->at, RQ_E_INTERRUPT, false, "interrupted");
    rc = -RQ_E_INTERRUPT;
    goto out;
  }
  if(s.hashed)
    warn_hash_key(run, sst, s.name);
  if(s.held) {
    if(s.held_failed) {
      memcpy(run->err, s.held_err, sizeof(run->err));
      run->err_at = s.held_at;
      run->err_code = s.held_code;
      run->failed = true;
    }
    rc = s.held_rc;
    goto out;
  }
  rc = rqi_store_open(&env, sst->at, sst->store, &store);
  if(rc == 0)
    rc = rqi_store_unit_commit(&env, sst->at, store, s.name, &s.unit);
out:
  rqi_store_unit_free(&s.unit);
  rqi_scope_free(ks);
  return rc;
}

/* Is steps[i] a streaming paginated step followed by its store step?
 * (The compiler guarantees the pair; the check keeps a table from another
 * compiler version harmless.) */
static bool stream_pair(const RqStep *steps, size_t i, size_t n)
{
  const RqStep *st = &steps[i];

  return st->stream_store && st->kind == RQ_ST_HTTP &&
         st->pg_kind != RQ_PG_NONE && !st->next_is_match && i + 1 < n &&
         steps[i + 1].kind == RQ_ST_STORE && steps[i + 1].store >= 0;
}

/* Does the match value v (borrowed) satisfy arm's pattern? */
static bool arm_matches(const RqMissionDef *m, const RqArm *arm, json_t *v)
{
  size_t i;

  switch(arm->kind) {
  case RQ_ARM_WILDCARD:
    return true;
  case RQ_ARM_SCHEMA:
    return arm->schema >= 0 && rqi_conforms(&m->schemas[arm->schema], v);
  case RQ_ARM_SCHEMA_ARRAY:
    if(!json_is_array(v) || arm->schema < 0)
      return false;
    for(i = 0; i < json_array_size(v); i++) {
      if(!rqi_conforms(&m->schemas[arm->schema], json_array_get(v, i)))
        return false;
    }
    return true;
  }
  return false;
}

static int step_match(Frame *f, const RqStep *st)
{
  json_t *val = NULL;
  size_t i;
  int rc;

  rc = eval(f, st->expr, &val);
  if(rc)
    return rc;
  for(i = 0; i < st->n_arms; i++) {
    const RqArm *arm = &st->arms[i];
    bool ok = arm_matches(f->run->m, arm, val);

    if(ok && arm->guard) {
      rc = eval_truthy(f, arm->guard, val, &ok);
      if(rc)
        goto out;
    }
    if(!ok)
      continue;
    {
      /* §5.2: the arm's steps and directive arguments have the match
       * value as subject.  No new scope (§4.1). */
      Frame af = { f->run, f->scope, true, val, true };
      rc = exec_steps(&af, arm->steps, arm->n_steps);
    }
    if(rc == FLOW_RETRY)
      rc = FLOW_RETRY_HERE;
    goto out;
  }
  {
    RqEnv env = frame_env(f);
    char *shown = val ? rqi_compact(val, MSG_VALUE_BYTES)
                      : rq_strdup("null");
    rc = rq_fail(&env, st->at, "match: no arm matched value %s", shown);
    rq_free(shown);
  }
out:
  json_decref(val);
  return rc;
}

static int step_let(Frame *f, const RqStep *st)
{
  json_t *v = NULL;
  int rc = eval(f, st->expr, &v);

  if(rc)
    return rc;
  rqi_scope_set_new(f->scope, st->var, v);
  return 0;
}

/* queue [store]: upsert the subject (the match value in an arm) with
 * _queued_at, keyed before that field is added; then skip (§4.11). */
static int dir_queue(Frame *f, const RqStep *st)
{
  RqEnv env = frame_env(f);
  json_t *rec;
  json_t *val;
  char *key = NULL;
  const char *name = st->store >= 0 ? f->run->m->stores[st->store].name
                                    : "_dead_letter";
  RqStore *store = NULL;
  char ts[40];
  const char *keys[1];
  int rc;

  if(json_is_object(env.subject))
    rec = rqi_copy(env.subject);
  else {
    rec = json_object();
    json_object_set_new(rec, "value",
                        env.subject ? json_incref(env.subject)
                                    : json_null());
  }
  rc = record_key(f, st, NULL, name, rec, &key, NULL);
  if(rc)
    goto out;
  rq_iso_time(rq_now_ms(), ts);
  json_object_set_new(rec, "_queued_at", json_string(ts));
  rc = rqi_store_open(&env, st->at, st->store, &store);
  if(rc)
    goto out;
  val = json_array();
  json_array_append(val, rec);
  keys[0] = key;
  rc = rqi_store_put(&env, st->at, store, name, val, keys, true, -1);
  json_decref(val);
out:
  rq_free(key);
  json_decref(rec);
  return rc ? rc : FLOW_SKIP;
}

/* jump A [then retry|continue]: runs action A in a fresh action scope;
 * A commits its own checkpoints (§8.1 rule 5). */
static int dir_jump(Frame *f, const RqStep *st)
{
  RqRun *run = f->run;
  const RqActionDef *a = &run->m->actions[st->action];
  json_t *saved_cand;
  const char *saved_action;
  int rc;

  if(run->jump_depth >= MAX_JUMP_DEPTH) {
    set_err(run, st->at, RQ_E_FAIL, false, "jump depth exceeded");
    return -RQ_E_FAIL;
  }
  saved_cand = run->candidates;
  saved_action = run->action;
  run->candidates = NULL;
  run->jump_depth++;
  rc = run_action(run, st->action);
  run->jump_depth--;
  json_decref(run->candidates);
  run->candidates = saved_cand;
  run->action = saved_action;
  if(rc < 0) {
    if(run->err_code == RQ_E_FAIL) {
      char inner[sizeof(run->err)];
      memcpy(inner, run->err, sizeof(inner));
      set_err(run, st->at, RQ_E_FAIL, true, "jump %s failed: %.1900s",
              a->name, inner);
    }
    return rc;
  }
  if(st->jump_retry) {
    run->retry_dir = NULL;
    return FLOW_RETRY;
  }
  return 0;
}

static const char *directive_name(RqDirective d)
{
  switch(d) {
  case RQ_DIR_CONTINUE: return "continue";
  case RQ_DIR_SKIP: return "skip";
  case RQ_DIR_ABORT: return "abort";
  case RQ_DIR_RETRY: return "retry";
  case RQ_DIR_QUEUE: return "queue";
  case RQ_DIR_JUMP: return "jump";
  }
  return "?";
}

static int step_directive(Frame *f, const RqStep *st)
{
  json_t *msg = NULL;
  char *text;
  int rc;

  switch(st->directive) {
  case RQ_DIR_CONTINUE:
    return 0;
  case RQ_DIR_SKIP:
    return FLOW_SKIP;
  case RQ_DIR_ABORT:
    rc = eval(f, st->message, &msg);
    if(rc)
      return rc;
    text = st->message ? rqi_text(msg) : rq_strdup("aborted");
    json_decref(msg);
    set_err(f->run, st->at, RQ_E_ABORT, false, "%s",
            text[0] ? text : "aborted");
    rq_free(text);
    return -RQ_E_ABORT;
  case RQ_DIR_RETRY:
    f->run->retry_dir = st;
    return FLOW_RETRY;
  case RQ_DIR_QUEUE:
    return dir_queue(f, st);
  case RQ_DIR_JUMP:
    return dir_jump(f, st);
  }
  set_err(f->run, st->at, RQ_E_FAIL, false,
          "internal error: unknown directive %d (%s)", (int)st->directive,
          directive_name(st->directive));
  return -RQ_E_FAIL;
}

/* ------------------------------------------------------------- wait */
/* wait { ... } (SPEC §4.14) on the listener of rq_webhook.h.  The wait
 * takes the path's buffered events, then new ones, until expectedEvents
 * of them pass eventFilter (evaluated in this scope with the body as
 * subject) or the timeout ends it; with `retry` a timeout waits again,
 * at once (the wait itself is the delay), up to maxAttempts waits in
 * all, the counted events carrying over.  Events the filter rejects are
 * given back (rqi_webhook_release): not counted means not consumed, so
 * a later wait on the same static path still gets them.  The counted
 * events are set into storage.target as one store step, then response
 * becomes the body (expectedEvents 1) or the array of bodies.  When the
 * step fails after counting (filter error, storage error, shutdown) the
 * counted events are given back too: nothing is lost. */

/* The first SIGTERM must end a wait promptly (§10.5: the run is then
 * interrupted); rqi_webhook_next itself sees rqi_stop_requested. */
#define WAIT_SLICE_MS 100.0

typedef struct {
  RqWebhookEvent *v;
  size_t n, cap;
} EventList;

static void events_add(EventList *l, const RqWebhookEvent *ev)
{
  if(l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 4;
    l->v = rq_realloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = *ev;
}

/* Writes the counted events to the storage target as one step. */
static int wait_store(Frame *f, const RqStep *st, const EventList *l)
{
  const RqStoreDef *sd = &f->run->m->stores[st->store];
  RqEnv env = frame_env(f);
  json_t *recs = json_array();
  char **keys = rq_calloc(l->n + 1, sizeof(*keys));
  RqStore *store = NULL;
  size_t i;
  int rc = 0;

  for(i = 0; i < l->n && rc == 0; i++) {
    json_t *body = l->v[i].body;
    if(!json_is_object(body)) {
      rc = rq_fail(&env, st->at,
                   "store %s: record must be an object (got %s)", sd->name,
                   rqi_type_name(body));
      break;
    }
    if(st->key)
      rc = record_key(f, st, st->key, sd->name, body, &keys[i], NULL);
    else
      keys[i] = rq_strdup(l->v[i].id);
    if(rc == 0)
      json_array_append(recs, body);
  }
  if(rc == 0)
    rc = rqi_store_open(&env, st->at, st->store, &store);
  if(rc == 0)
    rc = rqi_store_put(&env, st->at, store, sd->name, recs,
                       (const char *const *)keys, false, -1);
  for(i = 0; i < l->n; i++)
    rq_free(keys[i]);
  rq_free(keys);
  json_decref(recs);
  return rc;
}

/* --dry-run: the wait is printed like a request (nothing waits for an
 * event that the plan's requests never caused); the action ends. */
static void wait_plan(Frame *f, const RqStep *st, const char *path)
{
  RqRun *run = f->run;
  char pos[512];
  char *url;
  char err[128];
  RqBuf b = RQ_BUF_INIT(0);

  rqi_exec_format_at(run, st->at, pos, sizeof(pos));
  url = rqi_webhook_url(rqi_webhook_current(), path, err, sizeof(err));
  rq_buf_addf(&b, "DRY RUN %s/%s at %s\n  WAIT %s\n"
              "  expectedEvents: %d, timeout: %.0fms\n", run->m->name,
              run->action ? run->action : "-", pos, url ? url : path,
              st->wait_expected, st->wait_timeout_ms);
  rq_free(url);
  rqi_print_plan(b.data);
  rq_buf_free(&b);
}

static int step_wait(Frame *f, const RqStep *st)
{
  RqRun *run = f->run;
  RqEnv env = frame_env(f);
  RqWebhook *wh = rqi_webhook_current();
  RqWebhookWait *w;
  EventList got = { NULL, 0, 0 };
  char dpath[128];
  const char *path = st->wait_path;
  int waits = st->retry.max_attempts > 0 ? st->retry.max_attempts : 1;
  int expected = st->wait_expected > 0 ? st->wait_expected : 1;
  int rc = 0;
  int attempt;
  size_t i;
  char pos[512];
  RqLogCtx ctx;

  if(!path) {
    if(!rqi_webhook_default_path(rqi_exec_root(run)->exec_id, st->wait_n,
                                 dpath, sizeof(dpath)))
      return rq_fail(&env, st->at, "wait: path too long");
    path = dpath;
  }
  if(rqi_opts.dry_run) {
    wait_plan(f, st, path);
    return FLOW_END;
  }
  if(!wh)
    return rq_fail(&env, st->at, "wait: webhook listener not enabled");
  rqi_exec_format_at(run, st->at, pos, sizeof(pos));
  log_ctx(run, pos, &ctx);
  ctx.step = st->label;
  rq_log(RQ_LOG_INFO, &ctx, "%s/%s: waiting for %d event%s on %s "
         "(timeout %.0fms)", run->m->name, run->action ? run->action : "-",
         expected, expected == 1 ? "" : "s", path, st->wait_timeout_ms);
  w = rqi_webhook_wait_begin(wh, path);
  for(attempt = 1; rc == 0; attempt++) {
    double deadline = rq_mono_ms() + st->wait_timeout_ms;

    while(rc == 0 && got.n < (size_t)expected) {
      RqWebhookEvent ev;
      double now = rq_mono_ms();
      double until = now + WAIT_SLICE_MS;
      bool ok = false;
      int r;

      if(until > deadline)
        until = deadline;
      r = rqi_webhook_next(w, until, &ev);
      if(r == RQ_WH_STOPPED ||
         (r == RQ_WH_TIMEOUT && rqi_shutdown_requested)) {
        set_err(run, st->at, RQ_E_INTERRUPT, false, "interrupted");
        rc = -RQ_E_INTERRUPT;
        break;
      }
      if(r == RQ_WH_TIMEOUT) {
        if(rq_mono_ms() >= deadline)
          break;
        continue;
      }
      if(st->where) {
        rc = eval_truthy(f, st->where, ev.body, &ok);
        if(rc) {
          rqi_webhook_release(w, &ev);
          break;
        }
      } else {
        ok = true;
      }
      if(!ok) {
        rq_log(RQ_LOG_DEBUG, &ctx, "%s/%s: wait: event %s on %s not "
               "counted (eventFilter)", run->m->name,
               run->action ? run->action : "-", ev.id, path);
        rqi_webhook_release(w, &ev);
        continue;
      }
      rq_log(RQ_LOG_DEBUG, &ctx, "%s/%s: wait: event %s on %s counted "
             "(%zu of %d)", run->m->name, run->action ? run->action : "-",
             ev.id, path, got.n + 1, expected);
      events_add(&got, &ev);
    }
    if(rc || got.n >= (size_t)expected || attempt >= waits)
      break;
    rq_log(RQ_LOG_INFO, &ctx, "%s/%s: wait: %zu of %d events within "
           "%.0fms on %s; waiting again (attempt %d of %d)", run->m->name,
           run->action ? run->action : "-", got.n, expected,
           st->wait_timeout_ms, path, attempt + 1, waits);
  }
  if(rc == 0 && got.n == 0)
    rc = rq_fail(&env, st->at, "wait: no events within %.0fms",
                 st->wait_timeout_ms);
  if(rc == 0 && got.n < (size_t)expected)
    rq_log(RQ_LOG_WARN, &ctx, "%s/%s: wait: %zu of %d events within "
           "%.0fms on %s; continuing with them", run->m->name,
           run->action ? run->action : "-", got.n, expected,
           st->wait_timeout_ms, path);
  if(rc == 0 && st->store >= 0)
    rc = wait_store(f, st, &got);
  if(rc == 0) {
    json_t *resp;
    if(expected == 1) {
      resp = json_incref(got.v[0].body);
    } else {
      resp = json_array();
      for(i = 0; i < got.n; i++)
        json_array_append(resp, got.v[i].body);
    }
    set_response_only(f->scope, resp);
    for(i = 0; i < got.n; i++)
      json_decref(got.v[i].body);
  } else {
    /* Not consumed after all: back to the path, in arrival order. */
    for(i = 0; i < got.n; i++)
      rqi_webhook_release(w, &got.v[i]);
  }
  rqi_webhook_wait_end(w);
  rq_free(got.v);
  return rc;
}

static int exec_step(Frame *f, const RqStep *st)
{
  RqEnv env = frame_env(f);

  switch(st->kind) {
  case RQ_ST_HTTP:
  case RQ_ST_CALL: {   /* resolved to a method and path by the compiler */
    int rc = rqi_http_step(&env, st);
    /* §10.1: in --dry-run the first HTTP step is printed, not sent (by
     * http.c), and its action ends there as completed. */
    if(rc == 0 && rqi_opts.dry_run)
      return FLOW_END;
    return rc;
  }
  case RQ_ST_FOR:
    return step_for(f, st);
  case RQ_ST_MAP:
    return step_map(f, st);
  case RQ_ST_APPLY:
    return step_apply(f, st);
  case RQ_ST_VALIDATE:
    return step_validate(f, st);
  case RQ_ST_STORE:
    return step_store(f, st);
  case RQ_ST_MATCH:
    return step_match(f, st);
  case RQ_ST_LET:
    return step_let(f, st);
  case RQ_ST_WAIT:
    return step_wait(f, st);
  case RQ_ST_DIRECTIVE:
    return step_directive(f, st);
  }
  return rq_fail(&env, st->at, "internal error: unknown step kind %d",
                 (int)st->kind);
}

/* --------------------------------------------------- retry directive */

/* Sleeps ms, waking early on shutdown.  Returns -RQ_E_INTERRUPT then. */
static int sleep_ms(RqRun *run, RqAt at, double ms)
{
  double end = rq_mono_ms() + ms;

  for(;;) {
    double left;
    struct timespec ts;

    if(rqi_stop_requested) {
      set_err(run, at, RQ_E_INTERRUPT, false, "interrupted");
      return -RQ_E_INTERRUPT;
    }
    left = end - rq_mono_ms();
    if(left <= 0)
      return 0;
    if(left > 100)
      left = 100;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(left * 1e6);
    nanosleep(&ts, NULL);
  }
}

static double jitter(void)
{
  unsigned int r = 0;

  if(getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
    r = (unsigned int)rq_mono_ms();
  return (double)r / (double)0xffffffffu * 0.2 - 0.1;
}

/* After `attempt` executions (1-based) of a retried region: fails with
 * "retry limit (N) reached" when they are exhausted, else sleeps the
 * backoff delay of §6.4.  dir NULL means the default configuration. */
static int step_retry_sleep(RqRun *run, const RqStep *dir, int attempt,
                            RqAt at, bool *exhausted)
{
  int max = 3;
  RqBackoff kind = RQ_BACKOFF_EXPONENTIAL;
  double initial = 1000;
  double max_ms = 30000;
  double base;
  double delay;

  if(dir && dir->retry.max_attempts > 0) {
    max = dir->retry.max_attempts;
    kind = dir->retry.backoff;
    initial = dir->retry.initial_ms >= 0 ? dir->retry.initial_ms : 1000;
    if(dir->retry.max_ms > 0)
      max_ms = dir->retry.max_ms;
  }
  *exhausted = attempt >= max;
  if(*exhausted) {
    set_err(run, dir ? dir->at : at, RQ_E_FAIL, false,
            "retry limit (%d) reached", max);
    return -RQ_E_FAIL;
  }
  if(kind == RQ_BACKOFF_EXPONENTIAL)
    base = initial * pow(2, attempt - 1);
  else if(kind == RQ_BACKOFF_LINEAR)
    base = initial * attempt;
  else
    base = initial;
  delay = base * (1 + jitter());
  if(delay > max_ms)
    delay = max_ms;
  return sleep_ms(run, at, floor(delay + 0.5));
}

/* ------------------------------------------------------ step lists */

static int exec_steps(Frame *f, const RqStep *steps, size_t n)
{
  RqRun *run = f->run;
  size_t i = 0;
  size_t anchor = (size_t)-1;   /* the retried anchor, if any */
  size_t region_end = 0;
  int attempts = 0;
  long mark = 0;                /* candidates before the latest HTTP step */
  int rc = 0;

  while(i < n) {
    const RqStep *st = &steps[i];

    if(rqi_stop_requested) {
      set_err(run, st->at, RQ_E_INTERRUPT, false, "interrupted");
      rc = -RQ_E_INTERRUPT;
      break;
    }
    if(anchor != (size_t)-1 && i > region_end) {
      anchor = (size_t)-1;    /* left the retried region normally */
      attempts = 0;
    }
    if(st->kind == RQ_ST_HTTP || st->kind == RQ_ST_CALL)
      mark = rqi_checkpoint_mark(run);
    if(stream_pair(steps, i, n)) {
      bool in_store;

      rc = step_stream(f, st, &steps[i + 1], &in_store);
      if(rc == 0) {
        i += 2;
        continue;
      }
      if(rc < 0) {
        const RqStep *at = in_store ? &steps[i + 1] : st;
        ensure_err(run, at->at, rc);
        log_failure(run, at->label, at->at);
      }
      break;                    /* an error, or FLOW_END (--dry-run) */
    }
    rc = exec_step(f, st);
    if(rc < 0) {
      ensure_err(run, st->at, rc);
      log_failure(run, st->label, st->at);
      break;
    }
    if(rc == FLOW_RETRY && f->block_body)
      break;                    /* the match/validate anchors it */
    if(rc == FLOW_RETRY || rc == FLOW_RETRY_HERE) {
      size_t j = i;
      bool found = false;
      bool exhausted;

      while(j > 0) {
        j--;
        if(steps[j].kind == RQ_ST_HTTP || steps[j].kind == RQ_ST_CALL) {
          found = true;
          break;
        }
      }
      if(!found) {
        rc = FLOW_RETRY_LOOP;
        break;
      }
      if(anchor != j) {
        anchor = j;
        attempts = 1;
      }
      region_end = i;
      rc = step_retry_sleep(run, run->retry_dir, attempts, st->at,
                            &exhausted);
      if(rc) {
        /* Point at the retry directive itself (in its arm), not at the
         * match that holds it; `jump A then retry` has none. */
        const RqStep *dir = run->retry_dir;
        log_failure(run, dir ? dir->label : st->label,
                    dir ? dir->at : st->at);
        break;
      }
      /* steps[j] is the latest HTTP step run in this list, so mark is
       * from just before its execution: its candidates, and those of
       * the steps up to here, belong to the execution being retried. */
      rqi_checkpoint_rollback(run, mark);
      attempts++;
      i = j;
      continue;
    }
    if(rc)
      break;                    /* skip, retry without anchor */
    i++;
  }
  return rc;
}

/* ------------------------------------------------ execution records */
/* <data>/executions/<id>.json (§8.2): written atomically at run start, at
 * each stage transition and at the end, never in --dry-run.  Only the
 * root run touches run->record.  The newest RECORDS_KEPT records of each
 * mission are kept. */

#define RECORDS_KEPT 50

static void stage_label(const RqMissionDef *m, const RqStageDef *sg,
                        char *out, size_t n);

static const char *data_dir(void)
{
  return rqi_opts.data_dir ? rqi_opts.data_dir : ".reqon-data";
}

/* Returns a new string: the current time in ISO form. */
static json_t *iso_now(void)
{
  char ts[40];

  rq_iso_time(rq_now_ms(), ts);
  return json_string(ts);
}

/* json_string that never fails: text that is not UTF-8 (a server's bytes
 * in a message) is replaced rather than dropped. New reference. */
static json_t *safe_string(const char *s)
{
  json_t *v = json_string(s ? s : "");

  return v ? v : json_string("(message is not valid UTF-8)");
}

static void record_write(const RqMissionDef *m, json_t *doc)
{
  const char *id = json_string_value(json_object_get(doc, "id"));
  char *path;
  char *text;

  if(!id || rqi_opts.dry_run)
    return;
  path = rq_asprintf("%s/executions/%s.json", data_dir(), id);
  text = rqi_dumps(doc, 2);
  if(rq_write_atomic(path, text, strlen(text), 0644) != 0)
    rq_log(RQ_LOG_WARN, NULL, "%s: cannot write execution record %s: %s",
           m->name, path, strerror(errno));
  rq_free(text);
  rq_free(path);
}

static void record_save(const RqRun *run)
{
  if(run->record)
    record_write(run->m, run->record);
}

/* A fresh record: running, every stage pending.  New reference. */
static json_t *record_new(const RqRun *run, const char *trigger)
{
  const RqMissionDef *m = run->m;
  json_t *doc = json_object();
  json_t *stages = json_array();
  char ts[40];
  char label[512];
  size_t i;

  rq_iso_time(run->started_ms, ts);
  json_object_set_new(doc, "id", json_string(run->exec_id));
  json_object_set_new(doc, "mission", safe_string(m->name));
  json_object_set_new(doc, "status", json_string("running"));
  json_object_set_new(doc, "startedAt", json_string(ts));
  json_object_set_new(doc, "trigger", safe_string(trigger));
  for(i = 0; i < m->n_stages; i++) {
    json_t *st = json_object();
    stage_label(m, &m->stages[i], label, sizeof(label));
    json_object_set_new(st, "action", safe_string(label));
    json_object_set_new(st, "status", json_string("pending"));
    json_object_set_new(st, "attempt", json_integer(0));
    json_array_append_new(stages, st);
  }
  json_object_set_new(doc, "stages", stages);
  json_object_set_new(doc, "errors", json_array());
  return doc;
}

/* Borrowed stage entry idx of the record, or NULL. */
static json_t *record_stage(const RqRun *run, size_t idx)
{
  if(!run->record)
    return NULL;
  return json_array_get(json_object_get(run->record, "stages"), idx);
}

static void record_stage_status(RqRun *run, size_t idx, const char *status)
{
  json_t *st = record_stage(run, idx);

  if(!st)
    return;
  json_object_set_new(st, "status", json_string(status));
  if(!strcmp(status, "running")) {
    json_object_set_new(st, "startedAt", iso_now());
    json_object_del(st, "completedAt");
  } else {
    json_object_set_new(st, "completedAt", iso_now());
  }
  record_save(run);
}

/* Appends one error entry; stage < 0 means outside any stage. */
static void record_error(RqRun *run, long stage, const char *action,
                         const char *step, const char *msg)
{
  json_t *errs;
  json_t *e;
  json_t *st = stage >= 0 ? record_stage(run, (size_t)stage) : NULL;

  if(!run->record)
    return;
  errs = json_object_get(run->record, "errors");
  e = json_object();
  json_object_set_new(e, "stageIndex",
                      stage >= 0 ? json_integer(stage) : json_null());
  json_object_set_new(e, "action", action ? safe_string(action)
                                          : json_null());
  json_object_set_new(e, "step", step ? safe_string(step) : json_null());
  /* Execution records are read by people and tools like logs are:
   * secrets in a message (a server echoing a token) never reach them. */
  char *clean = rqi_log_redact(msg ? msg : "");
  json_object_set_new(e, "message", safe_string(clean));
  rq_free(clean);
  json_object_set_new(e, "timestamp", iso_now());
  json_object_set_new(e, "attempt",
                      json_integer(st ? json_integer_value(
                                          json_object_get(st, "attempt"))
                                      : 0));
  json_array_append_new(errs, e);
}

static void record_finish(RqRun *run, const char *status, double ms)
{
  if(!run->record)
    return;
  json_object_set_new(run->record, "status", json_string(status));
  json_object_set_new(run->record, "completedAt", iso_now());
  json_object_set_new(run->record, "duration",
                      json_integer((json_int_t)(ms + 0.5)));
  record_save(run);
}

typedef struct {
  char *started;
  char *id;
} RecEnt;

/* Newest first: by startedAt, then by id. */
static int rec_cmp(const void *pa, const void *pb)
{
  const RecEnt *a = pa;
  const RecEnt *b = pb;
  int c = strcmp(b->started, a->started);

  return c ? c : strcmp(b->id, a->id);
}

static void rec_free(RecEnt *e, size_t n)
{
  size_t i;

  for(i = 0; i < n; i++) {
    rq_free(e[i].started);
    rq_free(e[i].id);
  }
  rq_free(e);
}

/* Is name an execution record file "exec_*.json"?  Sets *idlen. */
static bool is_record_name(const char *name, size_t *idlen)
{
  size_t n = strlen(name);

  if(n < 11 || strncmp(name, "exec_", 5) || strcmp(name + n - 5, ".json"))
    return false;
  *idlen = n - 5;
  return true;
}

/* The records of mission (all when NULL), newest first, into *out
 * (rec_free).  Returns their number. */
static size_t scan_records(const char *mission, RecEnt **out)
{
  char *dir = rq_asprintf("%s/executions", data_dir());
  DIR *d = opendir(dir);
  struct dirent *de;
  RecEnt *ents = NULL;
  size_t n = 0;
  size_t cap = 0;

  *out = NULL;
  if(!d) {
    rq_free(dir);
    return 0;
  }
  while((de = readdir(d)) != NULL) {
    size_t idlen;
    char *path;
    json_t *doc;
    const char *mis;
    const char *started;

    if(!is_record_name(de->d_name, &idlen))
      continue;
    path = rq_asprintf("%s/%s", dir, de->d_name);
    doc = json_load_file(path, 0, NULL);
    rq_free(path);
    mis = json_string_value(json_object_get(doc, "mission"));
    started = json_string_value(json_object_get(doc, "startedAt"));
    if(mis && (!mission || !strcmp(mis, mission))) {
      if(n == cap) {
        cap = cap ? cap * 2 : 64;
        ents = rq_realloc(ents, cap * sizeof(*ents));
      }
      ents[n].started = rq_strdup(started ? started : "");
      ents[n].id = rq_strndup(de->d_name, idlen);
      n++;
    }
    json_decref(doc);
  }
  closedir(d);
  rq_free(dir);
  if(n)
    qsort(ents, n, sizeof(*ents), rec_cmp);
  *out = ents;
  return n;
}

/* Deletes the records of mission beyond the newest RECORDS_KEPT. */
static void prune_records(const char *mission)
{
  char *dir;
  DIR *d;
  struct dirent *de;
  size_t total = 0;
  RecEnt *ents;
  size_t n;
  size_t i;

  if(rqi_opts.dry_run)
    return;
  /* Cheap test first: no mission can exceed the limit if the directory
   * holds no more files than that. */
  dir = rq_asprintf("%s/executions", data_dir());
  d = opendir(dir);
  if(d) {
    size_t idlen;
    while((de = readdir(d)) != NULL)
      total += is_record_name(de->d_name, &idlen);
    closedir(d);
  }
  if(total > RECORDS_KEPT) {
    n = scan_records(mission, &ents);
    for(i = RECORDS_KEPT; i < n; i++) {
      char *path = rq_asprintf("%s/%s.json", dir, ents[i].id);
      unlink(path);
      rq_free(path);
    }
    rec_free(ents, n);
  }
  rq_free(dir);
}

/* The newest record of mission: new reference or NULL. */
static json_t *newest_record(const char *mission)
{
  RecEnt *ents;
  size_t n = scan_records(mission, &ents);
  json_t *doc = NULL;

  if(n) {
    char *path = rq_asprintf("%s/executions/%s.json", data_dir(),
                             ents[0].id);
    doc = json_load_file(path, 0, NULL);
    rq_free(path);
  }
  rec_free(ents, n);
  return doc;
}

static bool record_unfinished(const json_t *doc)
{
  const char *st = json_string_value(json_object_get(doc, "status"));

  return st && (!strcmp(st, "running") || !strcmp(st, "interrupted"));
}

/* The memory instance a store index names: its target (store.c keeps
 * one instance per memory target and run, so two store names may share
 * it), or NULL when the index is not a memory store. */
static const char *memory_target(const RqMissionDef *m, int store)
{
  const RqStoreDef *d;

  if(store < 0 || (size_t)store >= m->n_stores)
    return NULL;
  d = &m->stores[store];
  if(d->kind != RQ_STORE_MEMORY)
    return NULL;
  return d->target ? d->target : d->name;
}

/* Does stage k read the memory instance `target`? */
static bool stage_reads(const RqMissionDef *m, size_t k, const char *target)
{
  const RqStoreUse *u = &m->stage_stores[k];
  size_t i;

  for(i = 0; i < u->n_reads; i++) {
    const char *t = memory_target(m, u->reads[i]);
    if(t && !strcmp(t, target))
      return true;
  }
  return false;
}

/* Does stage w write a memory store that one of the stages from..n-1
 * reads?  The compiler emits each stage's read and write sets, jump
 * targets included (RqMissionDef.stage_stores). */
static bool stage_feeds(const RqMissionDef *m, size_t w, size_t from)
{
  const RqStoreUse *wu;
  size_t i;
  size_t k;

  if(!m->stage_stores)
    return false;
  wu = &m->stage_stores[w];
  for(i = 0; i < wu->n_writes; i++) {
    const char *t = memory_target(m, wu->writes[i]);
    if(!t)
      continue;
    for(k = from; k < m->n_stages; k++)
      if(stage_reads(m, k, t))
        return true;
  }
  return false;
}

/* The first stage a resumed run executes, or -1 when doc cannot be
 * resumed.  Stages recorded completed or skipped are not re-run, except
 * that memory stores start empty (§8.3): when a completed stage before
 * the start wrote a memory store that a stage from the start on reads,
 * the run starts at the first such writer instead, and so on until no
 * stage that runs reads a memory store that only a skipped-over stage
 * filled. */
static long resume_point(const RqMissionDef *m, const json_t *doc)
{
  json_t *stages = json_object_get(doc, "stages");
  size_t start = m->n_stages;
  size_t i;
  bool moved;

  if(!record_unfinished(doc) || !json_is_array(stages) ||
     json_array_size(stages) != m->n_stages)
    return -1;
  for(i = 0; i < m->n_stages; i++) {
    const char *st = json_string_value(
      json_object_get(json_array_get(stages, i), "status"));
    if(!st || (strcmp(st, "completed") && strcmp(st, "skipped"))) {
      start = i;
      break;
    }
  }
  /* Each move adds stages to the run, whose reads may need an earlier
   * writer: repeat until stable (at most n_stages moves). */
  do {
    moved = false;
    for(i = 0; i < start; i++) {
      const char *st = json_string_value(
        json_object_get(json_array_get(stages, i), "status"));
      if(st && !strcmp(st, "completed") && stage_feeds(m, i, start)) {
        start = i;
        moved = true;
        break;
      }
    }
  } while(moved);
  return (long)start;
}

/* Turns the unfinished record doc into the record of a resumed run that
 * starts at stage `start`. */
static void record_resume(json_t *doc, size_t start)
{
  json_t *stages = json_object_get(doc, "stages");
  size_t i;

  json_object_set_new(doc, "status", json_string("running"));
  json_object_set_new(doc, "trigger", json_string("resume"));
  json_object_del(doc, "completedAt");
  json_object_del(doc, "duration");
  for(i = start; i < json_array_size(stages); i++) {
    json_t *st = json_array_get(stages, i);
    json_int_t att = json_integer_value(json_object_get(st, "attempt"));
    json_object_set_new(st, "status", json_string("pending"));
    json_object_set_new(st, "attempt", json_integer(att + 1));
    json_object_del(st, "startedAt");
    json_object_del(st, "completedAt");
  }
}

bool rqi_exec_recover(const RqMissionDef *m, bool resume)
{
  json_t *doc = newest_record(m->name);
  json_t *e;
  size_t i;
  bool unfinished = doc && record_unfinished(doc);

  /* A record whose stages no longer match the mission (it was changed
   * and recompiled since) cannot be resumed: it is closed like one
   * found without --resume, and a fresh run starts. */
  if(!unfinished || (resume && resume_point(m, doc) >= 0)) {
    json_decref(doc);
    return unfinished;
  }
  json_object_set_new(doc, "status", json_string("failed"));
  if(!json_object_get(doc, "completedAt"))
    json_object_set_new(doc, "completedAt", iso_now());
  if(!json_is_array(json_object_get(doc, "errors")))
    json_object_set_new(doc, "errors", json_array());
  /* An interrupted run recorded its interruption already: each error
   * appears once (§8.2). */
  json_array_foreach(json_object_get(doc, "errors"), i, e) {
    if(json_is_string(json_object_get(e, "message")) &&
       !strcmp(json_string_value(json_object_get(e, "message")),
               "interrupted")) {
      record_write(m, doc);
      json_decref(doc);
      return false;
    }
  }
  e = json_object();
  json_object_set_new(e, "stageIndex", json_null());
  json_object_set_new(e, "action", json_null());
  json_object_set_new(e, "step", json_null());
  json_object_set_new(e, "message", json_string("interrupted"));
  json_object_set_new(e, "timestamp", iso_now());
  json_object_set_new(e, "attempt", json_integer(0));
  json_array_append_new(json_object_get(doc, "errors"), e);
  record_write(m, doc);
  json_decref(doc);
  return false;
}

/* ------------------------------------------------------------- runs */

/* Runs action idx in a fresh scope under the mission scope; commits its
 * checkpoint candidates when it succeeds (a skip outside loops is
 * success), discards them otherwise.  Returns 0 or a negative RQ_E_*. */
static int run_action(RqRun *run, int idx)
{
  const RqActionDef *a = &run->m->actions[idx];
  int attempt = 1;
  int rc;

  run->action = a->name;
  for(;;) {
    RqScope *s = rqi_scope_new(run->mission_scope);
    Frame f = { run, s, false, NULL, false };

    rc = exec_steps(&f, a->steps, a->n_steps);
    rqi_scope_free(s);
    if(rc == FLOW_SKIP || rc == FLOW_END)
      rc = 0;
    if(rc == FLOW_RETRY_LOOP) {
      bool exhausted;
      rqi_checkpoint_discard(run);
      rc = step_retry_sleep(run, run->retry_dir, attempt, a->at,
                            &exhausted);
      if(rc) {
        log_failure(run, "retry", run->retry_dir ? run->retry_dir->at
                                                 : a->at);
        break;
      }
      attempt++;
      continue;
    }
    break;
  }
  if(rc == 0)
    rqi_checkpoint_commit(run);
  else
    rqi_checkpoint_discard(run);
  return rc;
}

typedef struct {
  RqRun run;
  int action;
  int rc;
  pthread_t thread;
  bool threaded;
} Worker;

static void *worker_main(void *arg)
{
  Worker *w = arg;

  w->rc = run_action(&w->run, w->action);
  return NULL;
}

/* Appends formatted text to buf (size cap) at *len, truncating. */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
  va_list ap;
  int k;

  if(*len + 1 >= cap)
    return;
  va_start(ap, fmt);
  k = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if(k < 0)
    return;
  *len += (size_t)k;
  if(*len >= cap)
    *len = cap - 1;
}

/* A bracketed stage: each action on its own thread with its own child
 * run; all finish, then failures are summarised (§4.3). */
static int run_parallel(RqRun *run, size_t idx, const RqStageDef *sg)
{
  Worker *w = rq_calloc(sg->n_actions, sizeof(*w));
  char msg[sizeof(run->err)];
  size_t len = 0;
  int code = 0;
  size_t i;

  for(i = 0; i < sg->n_actions; i++) {
    RqRun *c = &w[i].run;
    c->m = run->m;
    c->files = run->files;
    memcpy(c->exec_id, run->exec_id, sizeof(c->exec_id));
    c->parent = run;
    c->mission_scope = run->mission_scope;
    c->bases = run->bases;
    c->mu = run->mu;
    c->started_ms = run->started_ms;
    w[i].action = sg->actions[i];
    w[i].threaded = pthread_create(&w[i].thread, NULL, worker_main,
                                   &w[i]) == 0;
    if(!w[i].threaded)
      worker_main(&w[i]);
  }
  for(i = 0; i < sg->n_actions; i++) {
    if(w[i].threaded)
      pthread_join(w[i].thread, NULL);
  }
  append(msg, sizeof(msg), &len, "parallel stage failed: ");
  for(i = 0; i < sg->n_actions; i++) {
    RqRun *c = &w[i].run;
    if(w[i].rc == 0)
      continue;
    ensure_err(c, run->m->actions[w[i].action].at, w[i].rc);
    append(msg, sizeof(msg), &len, "%s%s: %s", code ? "; " : "",
           run->m->actions[w[i].action].name, c->err);
    record_error(run, (long)idx, run->m->actions[w[i].action].name,
                 c->err_label, c->err);
    /* interrupted > aborted > failed */
    if(c->err_code == RQ_E_INTERRUPT || code == RQ_E_INTERRUPT)
      code = RQ_E_INTERRUPT;
    else if(c->err_code == RQ_E_ABORT || code == RQ_E_ABORT)
      code = RQ_E_ABORT;
    else
      code = RQ_E_FAIL;
  }
  for(i = 0; i < sg->n_actions; i++)
    json_decref(w[i].run.candidates);
  rq_free(w);
  if(!code)
    return 0;
  set_err(run, sg->at, code, true, "%s", msg);
  run->logged = true;     /* each action logged and recorded its own */
  return -code;
}

static void stage_label(const RqMissionDef *m, const RqStageDef *sg,
                        char *out, size_t n)
{
  size_t len = 0;
  size_t i;

  out[0] = '\0';
  if(!sg->parallel && sg->n_actions == 1) {
    append(out, n, &len, "%s", m->actions[sg->actions[0]].name);
    return;
  }
  append(out, n, &len, "[");
  for(i = 0; i < sg->n_actions; i++)
    append(out, n, &len, "%s%s", i ? ", " : "",
           m->actions[sg->actions[i]].name);
  append(out, n, &len, "]");
}

static int run_stage(RqRun *run, size_t idx)
{
  const RqMissionDef *m = run->m;
  const RqStageDef *sg = &m->stages[idx];
  char label[512];
  RqLogCtx ctx;
  double t0 = rq_mono_ms();
  int rc;

  stage_label(m, sg, label, sizeof(label));
  log_ctx(run, NULL, &ctx);
  if(sg->cond) {
    Frame f = { run, run->mission_scope, false, NULL, false };
    bool ok;
    rc = eval_truthy(&f, sg->cond, run->mission_scope->response, &ok);
    if(rc) {
      ensure_err(run, sg->at, rc);
      log_failure(run, "if", sg->at);
      record_error(run, (long)idx, NULL, "if", run->err);
      record_stage_status(run, idx, "failed");
      return rc;
    }
    if(!ok) {
      rq_log(RQ_LOG_INFO, &ctx, "%s: Stage %zu %s skipped", m->name,
             idx + 1, label);
      record_stage_status(run, idx, "skipped");
      return 0;
    }
  }
  rq_log(RQ_LOG_INFO, &ctx, "%s: Stage %zu %s started", m->name, idx + 1,
         label);
  record_stage_status(run, idx, "running");
  if(sg->n_actions == 1) {
    const char *name = m->actions[sg->actions[0]].name;
    rc = run_action(run, sg->actions[0]);
    run->action = NULL;
    if(rc) {
      ensure_err(run, sg->at, rc);
      record_error(run, (long)idx, name, run->err_label, run->err);
    }
  } else {
    rc = run_parallel(run, idx, sg);
  }
  rq_log(RQ_LOG_INFO, &ctx, "%s: Stage %zu %s %s (%.1fs)", m->name, idx + 1,
         label, rc ? "failed" : "completed", (rq_mono_ms() - t0) / 1000.0);
  record_stage_status(run, idx, rc ? "failed" : "completed");
  return rc;
}

/* exec_<base36 epoch ms>_<6 random base36> (§8.2). */
static void make_exec_id(char *out, size_t n)
{
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  unsigned long long ms = (unsigned long long)rq_now_ms();
  char num[32];
  char rnd[7];
  unsigned char bytes[6];
  size_t k = 0;
  size_t i;

  do {
    num[k++] = digits[ms % 36];
    ms /= 36;
  } while(ms && k < sizeof(num) - 1);
  if(getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes)) {
    unsigned long long t = (unsigned long long)(rq_mono_ms() * 1000.0);
    for(i = 0; i < sizeof(bytes); i++)
      bytes[i] = (unsigned char)(t >> (i * 5));
  }
  for(i = 0; i < 6; i++)
    rnd[i] = digits[bytes[i] % 36];
  rnd[6] = '\0';
  {
    char rev[32];
    for(i = 0; i < k; i++)
      rev[i] = num[k - 1 - i];
    rev[k] = '\0';
    snprintf(out, n, "exec_%s_%s", rev, rnd);
  }
}

/* Evaluates each source's base in mission scope into run->bases. */
static int eval_bases(RqRun *run)
{
  const RqMissionDef *m = run->m;
  size_t i;

  run->bases = rq_calloc(m->n_sources + 1, sizeof(*run->bases));
  for(i = 0; i < m->n_sources; i++) {
    const RqSourceDef *src = &m->sources[i];
    RqEnv env = { run, run->mission_scope, run->mission_scope->response };
    json_t *v = NULL;
    char *t;
    size_t len;
    int rc;

    if(!src->base)
      continue;
    rc = src->base(&env, &v);
    if(rc) {
      ensure_err(run, src->at, rc);
      log_failure(run, "source", src->at);
      return rc;
    }
    t = rqi_text(v);
    json_decref(v);
    len = strlen(t);
    if(len == 0) {
      rq_free(t);
      rc = rq_fail(&env, src->at, "source %s: base is empty", src->name);
      log_failure(run, "source", src->at);
      return rc;
    }
    if(t[len - 1] == '/')
      t[len - 1] = '\0';
    run->bases[i] = t;
  }
  return 0;
}

int rqi_exec_run(const RqMissionDef *m, const char *const *files,
                 const char *trigger, RqRunResult *res)
{
  RqRun *run = rq_calloc(1, sizeof(*run));
  pthread_mutex_t mu;
  double t0 = rq_mono_ms();
  RqLogCtx ctx;
  size_t first = 0;
  size_t i;
  int rc = 0;

  memset(res, 0, sizeof(*res));
  pthread_mutex_init(&mu, NULL);
  run->m = m;
  run->files = files;
  run->mu = &mu;
  run->started_ms = rq_now_ms();
  if(!trigger)
    trigger = "once";
  if(!strcmp(trigger, "resume")) {
    /* §8.3: continue the unfinished record, under its id. */
    json_t *old = newest_record(m->name);
    long start = old ? resume_point(m, old) : -1;
    const char *id = json_string_value(json_object_get(old, "id"));
    if(start >= 0 && id && strlen(id) < sizeof(run->exec_id)) {
      snprintf(run->exec_id, sizeof(run->exec_id), "%s", id);
      record_resume(old, (size_t)start);
      run->record = old;
      first = (size_t)start;
    } else {
      json_decref(old);
    }
  }
  if(!run->record) {
    make_exec_id(run->exec_id, sizeof(run->exec_id));
    run->record = record_new(run, trigger);
  }
  record_save(run);
  log_ctx(run, NULL, &ctx);
  rq_log(RQ_LOG_INFO, &ctx, "%s: Starting run", m->name);
  rq_log(RQ_LOG_DEBUG, &ctx, "%s: execution %s (trigger %s%s)", m->name,
         run->exec_id, trigger, first ? ", from a later stage" : "");

  run->mission_scope = rqi_scope_new(NULL);
  run->mission_scope->response = json_null();
  {
    Frame f = { run, run->mission_scope, false, NULL, false };
    rc = exec_steps(&f, m->lets, m->n_lets);
  }
  if(!rc)
    rc = eval_bases(run);
  if(rc < 0) {
    ensure_err(run, m->at, rc);
    record_error(run, -1, NULL, run->err_label, run->err);
  }
  for(i = first; !rc && i < m->n_stages; i++)
    rc = run_stage(run, i);
  if(rc > 0)
    rc = 0;   /* a directive outside any action cannot happen; be safe */

  res->duration_ms = rq_mono_ms() - t0;
  if(rc == 0) {
    res->status = 0;
    rq_log(RQ_LOG_INFO, &ctx, "%s: Completed (%.1fs)", m->name,
           res->duration_ms / 1000.0);
    record_finish(run, "completed", res->duration_ms);
  } else {
    ensure_err(run, m->at, rc);
    res->status = run->err_code == RQ_E_ABORT ? 2
                : run->err_code == RQ_E_INTERRUPT ? 3 : 1;
    snprintf(res->error, sizeof(res->error), "%s", run->err);
    rq_log(RQ_LOG_INFO, &ctx, "%s: %s (%.1fs): %s", m->name,
           res->status == 3 ? "Interrupted" : "Failed",
           res->duration_ms / 1000.0, run->err);
    record_finish(run, res->status == 3 ? "interrupted" : "failed",
                  res->duration_ms);
  }
  prune_records(m->name);

  rqi_store_run_end(run);
  rqi_scope_free(run->mission_scope);
  if(run->bases) {
    for(i = 0; i < m->n_sources; i++)
      rq_free(run->bases[i]);
    rq_free(run->bases);
  }
  json_decref(run->candidates);
  json_decref(run->record);
  rq_free(run->warned);
  pthread_mutex_destroy(&mu);
  rq_free(run);
  return res->status;
}

/* ------------------------------------------- reqon.h helpers (ABI) */

json_t *rq_response(const RqEnv *env)
{
  return rq_ref(env->scope ? env->scope->response : NULL);
}

json_t *rq_var(const RqEnv *env, const char *name)
{
  return rq_ref(rqi_scope_get(env->scope, name));
}

json_t *rq_name(const RqEnv *env, const char *name)
{
  json_t *v;

  if(json_is_object(env->subject)) {
    v = json_object_get(env->subject, name);
    if(v)
      return json_incref(v);
  }
  if(env->scope && json_is_object(env->scope->response)) {
    v = json_object_get(env->scope->response, name);
    if(v)
      return json_incref(v);
  }
  return NULL;
}

int rq_store_records(const RqEnv *env, RqAt at, int store, json_t **out)
{
  RqStore *st = NULL;
  int rc;

  *out = NULL;
  rc = rqi_store_open(env, at, store, &st);
  if(rc)
    return rc;
  *out = rqi_store_list(st);
  return 0;
}

int rq_lookup(const RqEnv *env, RqAt at, int store, const json_t *key,
              json_t **out)
{
  RqStore *st = NULL;
  char *text;
  json_t *rec;
  int rc;

  *out = NULL;
  if(!key || json_is_null(key) || has_nul(key)) {
    *out = json_null();         /* no record can have such a key */
    return 0;
  }
  rc = rqi_store_open(env, at, store, &st);
  if(rc)
    return rc;
  text = rqi_text(key);
  rec = rqi_store_lookup(st, text);
  rq_free(text);
  *out = rec ? rec : json_null();
  return 0;
}

int rq_with_subject(const RqEnv *env, json_t *subject, const char *bind,
                    RqExprFn fn, json_t **out)
{
  RqEnv e = *env;
  RqScope *tmp = NULL;
  int rc;

  *out = NULL;
  e.subject = subject;
  if(bind) {
    tmp = rqi_scope_new(env->scope);
    rqi_scope_set_new(tmp, bind, rq_ref(subject));
    e.scope = tmp;
  }
  rc = fn(&e, out);
  rqi_scope_free(tmp);
  return rc;
}

/* The first element of coll satisfying where (or the first element);
 * missing for an empty or non-array collection. */
int rq_any_of(const RqEnv *env, RqAt at, const json_t *coll, RqExprFn where,
              json_t **out)
{
  size_t i;

  *out = NULL;
  if(!json_is_array(coll))
    return 0;
  for(i = 0; i < json_array_size(coll); i++) {
    json_t *item = json_array_get(coll, i);
    json_t *v = NULL;
    RqEnv e = *env;
    bool ok;
    int rc;

    if(!where) {
      *out = json_incref(item);
      return 0;
    }
    e.subject = item;
    rc = where(&e, &v);
    if(rc)
      return rc;
    ok = rq_truthy(v);
    json_decref(v);
    if(ok) {
      *out = json_incref(item);
      return 0;
    }
  }
  return 0;
}

int rq_bi_status(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                 json_t **out)
{
  *out = rq_num(env->scope ? env->scope->status : 0);
  return 0;
}

int rq_bi_header(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                 json_t **out)
{
  const char *name;
  json_t *h;
  const char *k;
  json_t *v;

  *out = json_null();
  if(argc < 1 || !json_is_string(argv[0]) || !env->scope ||
     !json_is_object(env->scope->headers))
    return 0;
  name = json_string_value(argv[0]);
  h = env->scope->headers;
  json_object_foreach(h, k, v) {
    if(!strcasecmp(k, name)) {
      json_decref(*out);
      *out = json_incref(v);
      return 0;
    }
  }
  return 0;
}

/* webhookUrl(path) (§5.4): the listener's public base and path. */
int rq_bi_webhookUrl(const RqEnv *env, RqAt at, int argc,
                     json_t *const *argv, json_t **out)
{
  char err[128];
  char *url;
  const json_t *p = argc > 0 ? argv[0] : NULL;

  *out = NULL;
  if(!json_is_string(p))
    return rq_fail(env, at, "builtin webhookUrl: path is %s, expected "
                   "string", rqi_type_name(p));
  url = rqi_webhook_url(rqi_webhook_current(), json_string_value(p), err,
                        sizeof(err));
  if(!url)
    return rq_fail(env, at, "builtin webhookUrl: %s", err);
  *out = json_string(url);
  rq_free(url);
  return 0;
}

int rq_bi_lookup(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                 json_t **out)
{
  *out = NULL;
  return rq_fail(env, at,
                 "builtin lookup: internal error: store not resolved");
}
