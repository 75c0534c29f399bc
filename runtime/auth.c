/* auth.c -- credentials, auth headers and OAuth2 refresh (SPEC §6.1).
 *
 * Credentials come from the --auth JSON file (keyed by source name, every
 * string env-expanded) or, for a source without an entry there, from the
 * environment variables REQON_<SOURCE>_<FIELD>.  Either way a credential
 * is a JSON object with the file's field names; env credentials are built
 * on first use and cached, so each secret is registered with the logger
 * once.  rqi_auth_apply turns a credential into headers or an api_key
 * query parameter.
 *
 * OAuth2: a refresh persists the new tokens to <data>/tokens/<S>.json and
 * only then installs them, as a NEW credential object (copy on write): a
 * thread still holding the old object from get_cred never sees it change
 * under it.  The token files are read at load time and override the
 * tokens and expiry of the credentials they name.  One OState per source
 * holds the single-flight flag and the generation counter.
 *
 * All state is behind one mutex (mu).  A refresh request is sent without
 * it; other threads that need the same source's refresh wait on ocv.
 * rqi_auth_load may run again (SIGHUP) and replaces the credentials; the
 * OStates survive it.  Ownership: the registries own their objects;
 * get_cred returns a new reference, cred_locked a borrowed one.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rq_internal.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ocv = PTHREAD_COND_INITIALIZER;  /* refresh ended */
static json_t *file_creds;   /* source name -> credential, from --auth */
static json_t *env_creds;    /* source name -> credential (or null) */
static json_t *tok_files;    /* source name -> its tokens/<S>.json */

/* Pure parts of the refresh, exposed for tests/unit/test_auth.c only
 * (declared here, not in rq_http.h: nothing else should call them).
 * rqi_auth_form_body: the refresh request body of cred (borrowed), a new
 * string, or NULL when cred has no refresh token.
 * rqi_auth_expiring: does cred's expiresAt lie less than 60 s after
 * now_ms?  False when the expiry is unknown. */
char *rqi_auth_form_body(const json_t *cred);
bool rqi_auth_expiring(const json_t *cred, double now_ms);

/* ------------------------------------------------- $VAR expansion */
static bool is_name_start(int c)
{
  return isalpha(c) || c == '_';
}

static bool is_name_char(int c)
{
  return isalnum(c) || c == '_';
}

static void expand(RqBuf *b, const char *s, size_t n);

/* ${...}: body is the n bytes between the braces. */
static void expand_braced(RqBuf *b, const char *body, size_t n)
{
  size_t i = 0;
  const char *val;
  char *name;

  while(i < n && is_name_char((unsigned char)body[i]))
    i++;
  name = rq_strndup(body, i);
  val = getenv(name);
  rq_free(name);
  if(i + 1 < n && body[i] == ':' && body[i + 1] == '-') {
    if(val && val[0])
      rq_buf_add(b, val, strlen(val));
    else
      expand(b, body + i + 2, n - i - 2);
  }
  else if(val)
    rq_buf_add(b, val, strlen(val));
}

/* Appends s with $VAR, ${VAR}, ${VAR:-default} expanded and $$ -> $.
 * Unset variables without a default become "". */
static void expand(RqBuf *b, const char *s, size_t n)
{
  size_t i = 0, j, depth;
  const char *val;
  char *name;

  while(i < n) {
    if(s[i] != '$' || i + 1 >= n) {
      rq_buf_add(b, s + i, 1);
      i++;
      continue;
    }
    if(s[i + 1] == '$') {
      rq_buf_add(b, "$", 1);
      i += 2;
    }
    else if(s[i + 1] == '{') {
      depth = 1;
      for(j = i + 2; j < n; j++) {
        if(s[j] == '{')
          depth++;
        else if(s[j] == '}' && --depth == 0)
          break;
      }
      if(j >= n) {        /* unterminated: keep the text */
        rq_buf_add(b, s + i, n - i);
        return;
      }
      expand_braced(b, s + i + 2, j - i - 2);
      i = j + 1;
    }
    else if(is_name_start((unsigned char)s[i + 1])) {
      for(j = i + 1; j < n && is_name_char((unsigned char)s[j]); j++)
        ;
      name = rq_strndup(s + i + 1, j - i - 1);
      val = getenv(name);
      rq_free(name);
      if(val)
        rq_buf_add(b, val, strlen(val));
      i = j;
    }
    else {
      rq_buf_add(b, "$", 1);
      i++;
    }
  }
}

/* Returns a new value: v with every string expanded (keys untouched). */
static json_t *expand_json(json_t *v)
{
  RqBuf b = RQ_BUF_INIT(0);
  json_t *out, *e;
  const char *k;
  size_t i;

  if(json_is_string(v)) {
    expand(&b, json_string_value(v), json_string_length(v));
    out = json_stringn(b.data ? b.data : "", b.len);
    rq_buf_free(&b);
    return out ? out : json_string("");
  }
  if(json_is_array(v)) {
    out = json_array();
    json_array_foreach(v, i, e)
      json_array_append_new(out, expand_json(e));
    return out;
  }
  if(json_is_object(v)) {
    out = json_object();
    json_object_foreach(v, k, e)
      json_object_set_new(out, k, expand_json(e));
    return out;
  }
  return json_incref(v);
}

/* ------------------------------------------------- credential fields */
/* The first non-empty string among the fields named in names (NULL
 * terminated); borrowed. */
static const char *field(const json_t *cred, const char *const *names)
{
  const char *s;

  for(; *names; names++) {
    s = json_string_value(json_object_get(cred, *names));
    if(s && s[0])
      return s;
  }
  return NULL;
}

#define FIELD(cred, ...) field((cred), (const char *const[]){ __VA_ARGS__, \
                                                            NULL })

static const char *const secret_fields[] = {
  "token", "password", "apiKey", "key", "api_key", "accessToken",
  "access_token", "refreshToken", "refresh_token", "clientSecret",
  "client_secret", NULL
};

/* Registers s with the logger, and its percent-encoded form too when that
 * differs: an api_key sent as a query parameter reaches messages (the URL
 * of a transport error) only in encoded form.  Tokens obtained at run time
 * (OAuth2 replies) are `rotating`: the logger keeps only the newest of
 * those, so hourly refreshes over months cannot grow its list or push out
 * the configured credentials. */
static void add_secret_as(const char *s, bool rotating)
{
  void (*add)(const char *) = rotating ? rqi_log_add_rotating_secret
                                       : rqi_log_add_secret;
  RqBuf b = RQ_BUF_INIT(0);

  add(s);
  if(rqi_http_pct_encode(&b, s, strlen(s)) == 0 && b.data &&
     strcmp(b.data, s) != 0)
    add(b.data);
  rq_buf_free(&b);
}

static void add_secret(const char *s)
{
  add_secret_as(s, false);
}

static void register_secrets(const json_t *cred)
{
  const char *const *f;
  const char *s;

  for(f = secret_fields; *f; f++) {
    s = json_string_value(json_object_get(cred, *f));
    if(s)
      add_secret(s);
  }
}

static const char *kind_name(RqAuthKind k)
{
  switch(k) {
  case RQ_AUTH_NONE: return "none";
  case RQ_AUTH_BEARER: return "bearer";
  case RQ_AUTH_BASIC: return "basic";
  case RQ_AUTH_API_KEY: return "api_key";
  case RQ_AUTH_OAUTH2: return "oauth2";
  }
  return "none";
}

/* The effective type of cred for source src (§6.1), as a kind name. */
static const char *cred_type(const json_t *cred, const RqSourceDef *src)
{
  const char *t = FIELD(cred, "type");

  if(!t) {
    /* Env credentials: a token without a type is a bearer token. */
    if(json_is_true(json_object_get(cred, "_env")) && FIELD(cred, "token"))
      return "bearer";
    return kind_name(src->auth);
  }
  if(strcasecmp(t, "apikey") == 0 || strcasecmp(t, "api-key") == 0 ||
     strcasecmp(t, "api_key") == 0)
    return "api_key";
  if(strcasecmp(t, "bearer") == 0)
    return "bearer";
  if(strcasecmp(t, "basic") == 0)
    return "basic";
  if(strcasecmp(t, "oauth2") == 0)
    return "oauth2";
  if(strcasecmp(t, "none") == 0)
    return "none";
  return t;
}

/* --------------------------------------------------- env credentials */
static const struct {
  const char *env;       /* REQON_<SOURCE>_<env> */
  const char *field;
} env_fields[] = {
  { "TYPE", "type" },
  { "TOKEN", "token" },
  { "ACCESS_TOKEN", "accessToken" },
  { "REFRESH_TOKEN", "refreshToken" },
  { "TOKEN_ENDPOINT", "tokenEndpoint" },
  { "CLIENT_ID", "clientId" },
  { "CLIENT_SECRET", "clientSecret" },
  { "API_KEY", "apiKey" },
  { "HEADER_NAME", "headerName" },
  { "USERNAME", "username" },
  { "PASSWORD", "password" },
};

/* A new credential object from REQON_<SOURCE>_* variables, or NULL when
 * none is set. */
static json_t *env_cred(const char *source)
{
  json_t *cred = json_object();
  char *up = rq_strdup(source), *var, *p;
  const char *val;
  size_t i;

  for(p = up; *p; p++)
    *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p)
                                    : '_';
  for(i = 0; i < sizeof(env_fields) / sizeof(env_fields[0]); i++) {
    var = rq_asprintf("REQON_%s_%s", up, env_fields[i].env);
    val = getenv(var);
    rq_free(var);
    if(val && val[0])
      json_object_set_new(cred, env_fields[i].field, json_string(val));
  }
  rq_free(up);
  if(json_object_size(cred) == 0) {
    json_decref(cred);
    return NULL;
  }
  json_object_set_new(cred, "_env", json_true());
  return cred;
}

/* Replaces cred's access token, refresh token (only when rt is given)
 * and expiry (NULL: unknown).  The alias fields that FIELD would read
 * before ours are dropped, so the new values are the ones used. */
static void set_tokens(json_t *cred, const char *at, const char *rt,
                       const char *exp)
{
  json_object_set_new(cred, "accessToken", json_string(at));
  if(rt)
    json_object_set_new(cred, "refreshToken", json_string(rt));
  json_object_del(cred, "expiresAt");
  json_object_del(cred, "expires_at");
  if(exp)
    json_object_set_new(cred, "expiresAt", json_string(exp));
}

/* Applies token file tf (borrowed, may be NULL) to cred (modified): its
 * tokens and expiry win over the credential's (§6.1).  Only oauth2 or
 * untyped credentials (which take the source's auth) are touched; a
 * credential of another type never refreshes, so a token file beside it
 * is stale. */
static void apply_token_file(json_t *cred, const json_t *tf)
{
  const char *t = FIELD(cred, "type");

  if(!tf || (t && strcasecmp(t, "oauth2") != 0))
    return;
  set_tokens(cred, FIELD(tf, "accessToken"), FIELD(tf, "refreshToken"),
             FIELD(tf, "expiresAt"));
}

/* The credential of source `name`, borrowed (valid while mu is held), or
 * NULL.  Call with mu held. */
static json_t *cred_locked(const char *name)
{
  json_t *c = json_object_get(file_creds, name);

  if(!c) {
    if(!env_creds)
      env_creds = json_object();
    c = json_object_get(env_creds, name);
    if(!c) {
      c = env_cred(name);
      if(c) {
        apply_token_file(c, json_object_get(tok_files, name));
        register_secrets(c);
      }
      json_object_set_new(env_creds, name, c ? c : json_null());
      c = json_object_get(env_creds, name);
    }
  }
  return json_is_null(c) ? NULL : c;
}

/* The credential of source `name`: new reference or NULL. */
static json_t *get_cred(const char *name)
{
  json_t *c;

  pthread_mutex_lock(&mu);
  c = json_incref(cred_locked(name));
  pthread_mutex_unlock(&mu);
  return c;
}

/* ------------------------------------------------------- token files */
static char *tokens_dir(void)
{
  return rq_asprintf("%s/tokens",
                     rqi_opts.data_dir ? rqi_opts.data_dir : ".reqon-data");
}

/* jansson's error text quotes the input near the error ("near 'abc'"),
 * which in a credentials or token file may be a secret that is not
 * registered yet: keep only the part before it.  Writes into out. */
static void json_error_text(const json_error_t *err, char *out, size_t n)
{
  const char *near = strstr(err->text, " near ");
  int len = near ? (int)(near - err->text) : (int)strlen(err->text);

  snprintf(out, n, "%.*s", len, err->text);
}

/* Reads and checks one token file.  Returns a new object, or NULL after
 * logging why: a corrupt token file is an error, never skipped, because
 * its rotated refresh token may be the only valid one left. */
static json_t *read_token_file(const char *path)
{
  json_error_t err;
  json_t *tf = json_load_file(path, 0, &err), *v;
  const char *why = NULL;
  char text[160];
  double ms;

  if(!tf) {
    json_error_text(&err, text, sizeof(text));
    rq_log(RQ_LOG_ERROR, NULL, "invalid token file %s: %s (line %d)", path,
           text, err.line);
    return NULL;
  }
  if(!json_is_object(tf))
    why = "expected an object";
  else if(!FIELD(tf, "accessToken"))
    why = "accessToken is missing";
  else if((v = json_object_get(tf, "refreshToken")) && !json_is_string(v))
    why = "refreshToken is not a string";
  else if((v = json_object_get(tf, "expiresAt")) &&
          !(json_is_string(v) && rq_parse_time(json_string_value(v), &ms)))
    why = "expiresAt is not an ISO-8601 time";
  if(why) {
    register_secrets(tf);
    rq_log(RQ_LOG_ERROR, NULL, "invalid token file %s: %s", path, why);
    json_decref(tf);
    return NULL;
  }
  register_secrets(tf);
  return tf;
}

/* Loads every <data>/tokens/<S>.json into *out, a new object source name
 * -> file contents.  Returns 0, or -1 after logging (*out is NULL). */
static int load_token_files(json_t **out)
{
  char *dir = tokens_dir(), *path, *name;
  DIR *d = opendir(dir);
  struct dirent *de;
  json_t *all = json_object(), *tf;
  size_t n;
  int rc = 0;

  if(!d && errno != ENOENT) {
    rq_log(RQ_LOG_ERROR, NULL, "cannot read token directory %s: %s", dir,
           strerror(errno));
    rc = -1;
  }
  while(d && rc == 0 && (de = readdir(d)) != NULL) {
    n = strlen(de->d_name);
    /* <S>.json only: <S>.json.tmp is a write that never completed. */
    if(de->d_name[0] == '.' || n <= 5 ||
       strcmp(de->d_name + n - 5, ".json") != 0)
      continue;
    path = rq_asprintf("%s/%s", dir, de->d_name);
    tf = read_token_file(path);
    rq_free(path);
    if(!tf) {
      rc = -1;
      break;
    }
    name = rq_strndup(de->d_name, n - 5);
    json_object_set_new(all, name, tf);
    rq_free(name);
  }
  if(d)
    closedir(d);
  rq_free(dir);
  if(rc != 0) {
    json_decref(all);
    all = NULL;
  }
  *out = all;
  return rc;
}

/* Writes the tokens of source name to <data>/tokens/<name>.json, 0600 in
 * a 0700 directory, atomically (tmp, fsync, rename, fsync dir).  Returns
 * 0, or -1 with errno set and *path_out (new) naming the file. */
static int write_token_file(const char *name, const char *at,
                            const char *rt, const char *exp,
                            char **path_out)
{
  char *dir = tokens_dir();
  char *path = rq_asprintf("%s/%s.json", dir, name);
  char *tmp = rq_asprintf("%s.tmp", path);
  char now[40], *text;
  json_t *o = json_object();
  int rc, saved;

  json_object_set_new(o, "accessToken", json_string(at));
  if(rt)
    json_object_set_new(o, "refreshToken", json_string(rt));
  if(exp)
    json_object_set_new(o, "expiresAt", json_string(exp));
  rq_iso_time(rq_now_ms(), now);
  json_object_set_new(o, "updatedAt", json_string(now));
  text = json_dumps(o, JSON_INDENT(2));
  json_decref(o);
  /* A stale tmp file would keep its old mode through O_TRUNC. */
  unlink(tmp);
  rc = rq_mkdirs(dir, 0700);
  if(rc == 0)
    rc = chmod(dir, 0700);
  if(rc == 0 && !text) {
    errno = ENOMEM;
    rc = -1;
  }
  if(rc == 0)
    rc = rq_write_atomic(path, text, strlen(text), 0600);
  saved = errno;
  free(text);      /* jansson's allocator: rq_malloc, or malloc */
  rq_free(tmp);
  rq_free(dir);
  *path_out = path;
  errno = saved;
  return rc;
}

/* ------------------------------------------------------ public API */

/* OAuth2 refresh state of one source; lives until rqi_auth_free. */
typedef struct OState {
  struct OState *next;
  unsigned long gen;       /* bumped by each refresh and each reload */
  unsigned long done;      /* refreshes finished, successful or not */
  bool refreshing;         /* a thread is refreshing; others wait */
  bool last_failed;
  char last_err[512];      /* the message of the last failed refresh */
  char name[];
} OState;

static OState *ostates;

/* The state of source name, created on first use.  Call with mu held. */
static OState *ostate_locked(const char *name)
{
  OState *st;
  size_t n = strlen(name);

  for(st = ostates; st; st = st->next)
    if(strcmp(st->name, name) == 0)
      return st;
  st = rq_calloc(1, sizeof(*st) + n + 1);
  memcpy(st->name, name, n + 1);
  st->next = ostates;
  ostates = st;
  return st;
}

/* Installs creds and toks (both steal; NULL for none) as the file
 * credentials and token files, and drops the cached environment
 * credentials so they are read again.  Every generation moves on: a
 * request that got a 401 with a token from before the reload is re-sent
 * with the reloaded one. */
static void set_creds(json_t *creds, json_t *toks)
{
  OState *st;

  pthread_mutex_lock(&mu);
  json_decref(file_creds);
  file_creds = creds;
  json_decref(tok_files);
  tok_files = toks;
  json_decref(env_creds);
  env_creds = NULL;
  for(st = ostates; st; st = st->next)
    st->gen++;
  pthread_mutex_unlock(&mu);
}

/* Loads and checks the --auth file; returns a new object or NULL after
 * logging. */
static json_t *load_auth_file(const char *path)
{
  json_error_t err;
  json_t *raw, *exp, *v, *ev;
  const char *k, *e;
  char text[160];
  double ms;

  raw = json_load_file(path, 0, &err);
  if(!raw) {
    json_error_text(&err, text, sizeof(text));
    rq_log(RQ_LOG_ERROR, NULL, "cannot load auth file %s: %s (line %d)",
           path, text, err.line);
    return NULL;
  }
  if(!json_is_object(raw)) {
    rq_log(RQ_LOG_ERROR, NULL,
           "invalid auth file %s: expected an object keyed by source name",
           path);
    json_decref(raw);
    return NULL;
  }
  json_object_foreach(raw, k, v) {
    if(!json_is_object(v)) {
      rq_log(RQ_LOG_ERROR, NULL,
             "invalid auth file %s: entry '%s' is not an object", path, k);
      json_decref(raw);
      return NULL;
    }
  }
  exp = expand_json(raw);
  json_decref(raw);
  json_object_foreach(exp, k, v) {
    register_secrets(v);
    /* An expiry we cannot read would silently disable the refresh
     * before expiry: refuse it like any other invalid entry. */
    e = FIELD(v, "expiresAt", "expires_at");
    ev = json_object_get(v, "expiresAt");
    if(!ev)
      ev = json_object_get(v, "expires_at");
    if((ev && !json_is_string(ev)) || (e && !rq_parse_time(e, &ms))) {
      rq_log(RQ_LOG_ERROR, NULL,
             "invalid auth file %s: %s.expiresAt is not an ISO-8601 time",
             path, k);
      json_decref(exp);
      return NULL;
    }
  }
  return exp;
}

int rqi_auth_load(const char *path)
{
  json_t *exp = NULL, *toks, *v;
  const char *k;

  if(path && !(exp = load_auth_file(path)))
    return -1;
  if(load_token_files(&toks) != 0) {
    json_decref(exp);
    return -1;
  }
  json_object_foreach(exp, k, v)
    apply_token_file(v, json_object_get(toks, k));
  set_creds(exp, toks);
  return 0;
}

void rqi_auth_free(void)
{
  OState *st;

  set_creds(NULL, NULL);
  pthread_mutex_lock(&mu);
  while((st = ostates) != NULL) {
    ostates = st->next;
    rq_free(st);
  }
  pthread_mutex_unlock(&mu);
}

void rqi_auth_check_mission(const RqMissionDef *m)
{
  const RqSourceDef *src;
  const char *have;
  json_t *cred;
  size_t i;

  for(i = 0; i < m->n_sources; i++) {
    src = &m->sources[i];
    cred = get_cred(src->name);
    if(!cred) {
      if(src->auth != RQ_AUTH_NONE)
        rq_log(RQ_LOG_WARN, NULL,
               "source %s declares auth %s but credentials are missing",
               src->name, kind_name(src->auth));
      continue;
    }
    have = cred_type(cred, src);
    if(strcmp(have, kind_name(src->auth)) != 0)
      rq_log(RQ_LOG_WARN, NULL,
             "source %s declares auth %s but credentials are %s",
             src->name, kind_name(src->auth), have);
    json_decref(cred);
  }
}

/* Standard base64 of n bytes of s; new string. */
static char *base64(const char *s, size_t n)
{
  static const char tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = rq_malloc((n + 2) / 3 * 4 + 1), *o = out;
  const unsigned char *u = (const unsigned char *)s;
  size_t i;
  unsigned long w;

  for(i = 0; i + 2 < n; i += 3) {
    w = ((unsigned long)u[i] << 16) | ((unsigned long)u[i + 1] << 8) |
        u[i + 2];
    *o++ = tab[(w >> 18) & 63];
    *o++ = tab[(w >> 12) & 63];
    *o++ = tab[(w >> 6) & 63];
    *o++ = tab[w & 63];
  }
  if(i < n) {
    w = (unsigned long)u[i] << 16;
    if(i + 1 < n)
      w |= (unsigned long)u[i + 1] << 8;
    *o++ = tab[(w >> 18) & 63];
    *o++ = tab[(w >> 12) & 63];
    *o++ = i + 1 < n ? tab[(w >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o = '\0';
  return out;
}

static void set_header(json_t *hdrs, const char *name, const char *value)
{
  json_object_set_new(hdrs, name, json_string(value));
}

void rqi_auth_apply(const RqSourceDef *src, json_t *hdrs, json_t *query)
{
  json_t *cred = get_cred(src->name);
  const char *type, *tok, *scheme, *hdr, *user, *pass, *key, *q, *prefix;
  char *v, *b64;

  if(!cred)
    return;
  type = cred_type(cred, src);
  scheme = FIELD(cred, "scheme");
  if(!scheme)
    scheme = src->auth_scheme ? src->auth_scheme : "Bearer";
  if(strcmp(type, "bearer") == 0 || strcmp(type, "oauth2") == 0) {
    if(strcmp(type, "bearer") == 0)
      tok = FIELD(cred, "token", "accessToken", "access_token");
    else
      tok = FIELD(cred, "accessToken", "access_token", "token");
    hdr = FIELD(cred, "header");
    if(tok) {
      v = rq_asprintf("%s %s", scheme, tok);
      set_header(hdrs, hdr ? hdr : "Authorization", v);
      rq_free(v);
    }
  }
  else if(strcmp(type, "basic") == 0) {
    user = FIELD(cred, "username", "user");
    pass = FIELD(cred, "password");
    if(user || pass) {
      v = rq_asprintf("%s:%s", user ? user : "", pass ? pass : "");
      b64 = base64(v, strlen(v));
      rq_free(v);
      rqi_log_add_secret(b64);
      v = rq_asprintf("Basic %s", b64);
      set_header(hdrs, "Authorization", v);
      rq_free(v);
      rq_free(b64);
    }
  }
  else if(strcmp(type, "api_key") == 0) {
    key = FIELD(cred, "apiKey", "key", "api_key");
    q = FIELD(cred, "query");
    prefix = FIELD(cred, "prefix");
    hdr = FIELD(cred, "headerName", "header", "header_name");
    if(key && q)
      json_object_set_new(query, q, json_string(key));
    else if(key) {
      v = prefix ? rq_asprintf("%s %s", prefix, key) : rq_strdup(key);
      set_header(hdrs, hdr ? hdr : "X-API-Key", v);
      rq_free(v);
    }
  }
  json_decref(cred);
}


/* ---------------------------------------------------- OAuth2 refresh */
#define F_REFRESH "refreshToken", "refresh_token"
#define F_ENDPOINT "tokenEndpoint", "tokenUrl", "token_endpoint", "token_url"
#define REFRESH_MARGIN_MS 60000.0   /* §6.1: refresh when < 60 s left */

char *rqi_auth_form_body(const json_t *cred)
{
  static const struct {
    const char *param;
    const char *f1, *f2;
  } opt[] = {
    { "&client_id=", "clientId", "client_id" },
    { "&client_secret=", "clientSecret", "client_secret" },
  };
  RqBuf b = RQ_BUF_INIT(0);
  const char *rt = FIELD(cred, F_REFRESH), *v;
  size_t i;

  if(!rt)
    return NULL;
  rq_buf_add(&b, "grant_type=refresh_token&refresh_token=", 39);
  rqi_http_pct_encode(&b, rt, strlen(rt));
  /* Only when set: an empty client_secret= is not "no client secret" to
   * every token endpoint (§6.1 departs from the reference here). */
  for(i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
    v = FIELD(cred, opt[i].f1, opt[i].f2);
    if(v) {
      rq_buf_add(&b, opt[i].param, strlen(opt[i].param));
      rqi_http_pct_encode(&b, v, strlen(v));
    }
  }
  return b.data;
}

bool rqi_auth_expiring(const json_t *cred, double now_ms)
{
  const char *e = FIELD(cred, "expiresAt", "expires_at");
  double ms;

  return e && rq_parse_time(e, &ms) && ms - now_ms < REFRESH_MARGIN_MS;
}

/* Can cred (borrowed, may be NULL) of source src be refreshed? */
static bool refreshable(const json_t *cred, const RqSourceDef *src)
{
  return cred && strcmp(cred_type(cred, src), "oauth2") == 0 &&
         FIELD(cred, F_REFRESH) && FIELD(cred, F_ENDPOINT);
}

/* Registers the token fields of a token endpoint's reply (borrowed, any
 * JSON or NULL) as secrets: an error reply may carry tokens too, and
 * part of it goes into the step's message. */
static void register_reply_secrets(const json_t *reply)
{
  static const char *const names[] = { "access_token", "refresh_token",
                                       "id_token" };
  const char *s;
  size_t i;

  for(i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    s = json_string_value(json_object_get(reply, names[i]));
    if(s && s[0])
      add_secret_as(s, true);
  }
}

/* The first 200 bytes of a response body for a message, redacted before
 * it is cut (a cut secret would no longer match the redaction), not cut
 * inside a UTF-8 sequence, control characters as spaces.  out >= 201. */
static void body_excerpt(const RqBuf *body, char *out, size_t n)
{
  char *raw = rq_strndup(body->data ? body->data : "", body->len);
  char *red = rqi_log_redact(raw);
  size_t len = strlen(red), cut = len > 200 ? 200 : len, i;

  while(cut > 0 && cut < len && ((unsigned char)red[cut] & 0xC0) == 0x80)
    cut--;
  for(i = 0; i < cut && i + 1 < n; i++)
    out[i] = (unsigned char)red[i] < 0x20 ? ' ' : red[i];
  out[i] = '\0';
  rq_free(red);
  rq_free(raw);
}

/* The outcome of a successful refresh: new strings, NULL when absent. */
typedef struct {
  char *access;
  char *refresh;          /* NULL: the old refresh token stays */
  char expires[40];       /* ISO, "" when unknown */
} Tokens;

/* Seconds of an expires_in value (number or numeric string); 0 when
 * absent or unusable. */
static double expires_in_s(const json_t *v)
{
  const char *s = json_string_value(v);
  char *end;
  double d = 0;

  if(json_is_number(v))
    d = json_number_value(v);
  else if(s && s[0]) {
    d = strtod(s, &end);
    if(*end)
      d = 0;
  }
  return d > 0 && d < 1e12 ? d : 0;
}

/* Sends the refresh request of §6.1 for src with cred (borrowed) and
 * persists the result.  Returns 0 with *tk filled, or -RQ_E_FAIL (or
 * -RQ_E_INTERRUPT on a stop request) with the step's message in err. */
static int do_refresh(const RqSourceDef *src, const json_t *cred,
                      Tokens *tk, char *err, size_t errn)
{
  static const char *const hdrs[] = {
    "Content-Type: application/x-www-form-urlencoded",
    "Accept: application/json",
    "User-Agent: reqon/" RQ_VERSION,
  };
  const char *ep = FIELD(cred, F_ENDPOINT), *at, *rt;
  char *form = rqi_auth_form_body(cred), *shown, *path = NULL;
  char excerpt[256];
  RqHttpRequest rq;
  RqHttpResponse rs;
  json_t *reply = NULL;
  double secs;
  int rc = -RQ_E_FAIL;

  memset(tk, 0, sizeof(*tk));
  /* The refresh token must not go to a file: or gopher: URL, nor any
   * other protocol curl would speak. */
  if(strncasecmp(ep, "http://", 7) != 0 &&
     strncasecmp(ep, "https://", 8) != 0) {
    snprintf(err, errn, "oauth2 refresh for %s failed: tokenEndpoint is "
             "not an http or https URL", src->name);
    rq_free(form);
    return -RQ_E_FAIL;
  }
  memset(&rq, 0, sizeof(rq));
  rq.method = "POST";
  rq.url = ep;
  rq.headers = hdrs;
  rq.n_headers = sizeof(hdrs) / sizeof(hdrs[0]);
  rq.body = form;
  rq.body_len = strlen(form);
  rq.timeout_ms = src->timeout_ms > 0 ? src->timeout_ms : 30000;
  if(rqi_http_send(&rq, &rs) != 0) {
    if(rs.interrupted)
      rc = -RQ_E_INTERRUPT;
    shown = rqi_log_redact(ep);
    snprintf(err, errn, "oauth2 refresh for %s failed: POST %s: %s",
             src->name, shown, rs.error);
    rq_free(shown);
    goto out;
  }
  if(rs.body.len > 0 && !rs.too_large)
    reply = json_loadb(rs.body.data, rs.body.len, 0, NULL);
  register_reply_secrets(reply);
  at = json_string_value(json_object_get(reply, "access_token"));
  if(rs.status < 200 || rs.status > 299 || !json_is_object(reply) ||
     !at || !at[0]) {
    body_excerpt(&rs.body, excerpt, sizeof(excerpt));
    snprintf(err, errn, "oauth2 refresh for %s failed: HTTP %d%s%s",
             src->name, rs.status, excerpt[0] ? " " : "", excerpt);
    goto out;
  }
  tk->access = rq_strdup(at);
  rt = json_string_value(json_object_get(reply, "refresh_token"));
  if(rt && rt[0])
    tk->refresh = rq_strdup(rt);
  /* Without expires_in the new token's expiry is unknown; keeping the
   * old, passed expiry would refresh before every request. */
  secs = expires_in_s(json_object_get(reply, "expires_in"));
  if(secs > 0)
    rq_iso_time(rq_now_ms() + secs * 1000.0, tk->expires);
  /* Persisted before use: once the endpoint rotated the refresh token,
   * the old one may be dead, and a restart must find the new one. */
  if(write_token_file(src->name, tk->access,
                      tk->refresh ? tk->refresh : FIELD(cred, F_REFRESH),
                      tk->expires[0] ? tk->expires : NULL, &path) != 0) {
    snprintf(err, errn, "oauth2 refresh for %s failed: cannot write %s: %s",
             src->name, path, strerror(errno));
    rq_free(tk->access);
    rq_free(tk->refresh);
    memset(tk, 0, sizeof(*tk));
    goto out;
  }
  rc = 0;
out:
  rq_free(path);
  json_decref(reply);
  rqi_http_response_free(&rs);
  rq_free(form);
  return rc;
}

/* Installs the refreshed tokens into a copy of the CURRENT credential of
 * name (a reload may have replaced the one the refresh started from).
 * Call with mu held. */
static void install_locked(const char *name, const Tokens *tk)
{
  json_t *cur = cred_locked(name), *c;

  if(!cur)
    return;               /* removed by a reload meanwhile */
  c = json_copy(cur);
  set_tokens(c, tk->access, tk->refresh,
             tk->expires[0] ? tk->expires : NULL);
  if(json_object_get(file_creds, name))
    json_object_set_new(file_creds, name, c);
  else
    json_object_set_new(env_creds, name, c);
}

unsigned long rqi_auth_generation(const RqSourceDef *src)
{
  unsigned long g;

  pthread_mutex_lock(&mu);
  g = ostate_locked(src->name)->gen;
  pthread_mutex_unlock(&mu);
  return g;
}

/* The single-flight refresh of §6.1.  after_401: the caller got a 401
 * with a token of generation gen; otherwise this is the check before a
 * request.  Returns 1 (re-send), 0 (nothing to do) or a negative RQ_E_*
 * after rq_fail. */
static int oauth_flow(const RqEnv *env, const RqSourceDef *src, RqAt at,
                      bool after_401, unsigned long gen)
{
  OState *st;
  json_t *cred;
  unsigned long seen;
  bool waited = false;
  char msg[sizeof(st->last_err)];
  Tokens tk;
  int rc;

  if(rqi_opts.dry_run)
    return 0;             /* §10.1: nothing is sent or written */
  pthread_mutex_lock(&mu);
  st = ostate_locked(src->name);
  seen = st->done;
  while(st->refreshing) {
    waited = true;
    pthread_cond_wait(&ocv, &mu);
  }
  if(waited && st->done != seen && st->last_failed) {
    /* The refresh we waited for failed: it would fail again (an
     * invalid_grant stays invalid), so fail with its message instead of
     * sending one more refresh per waiting request. */
    snprintf(msg, sizeof(msg), "%s", st->last_err);
    pthread_mutex_unlock(&mu);
    return rq_fail(env, at, "%s", msg);
  }
  if(after_401 && st->gen != gen) {
    pthread_mutex_unlock(&mu);
    return 1;             /* refreshed since that request was built */
  }
  cred = cred_locked(src->name);
  if(!refreshable(cred, src) ||
     (!after_401 && !rqi_auth_expiring(cred, rq_now_ms()))) {
    pthread_mutex_unlock(&mu);
    return 0;
  }
  json_incref(cred);
  st->refreshing = true;
  pthread_mutex_unlock(&mu);

  rc = do_refresh(src, cred, &tk, msg, sizeof(msg));
  json_decref(cred);

  pthread_mutex_lock(&mu);
  st->refreshing = false;
  st->done++;
  st->last_failed = rc != 0;
  if(rc == 0) {
    install_locked(src->name, &tk);
    st->gen++;
  }
  else
    snprintf(st->last_err, sizeof(st->last_err), "%s", msg);
  pthread_cond_broadcast(&ocv);
  pthread_mutex_unlock(&mu);

  if(rc == 0) {
    rq_log(RQ_LOG_INFO, NULL, "source %s: oauth2 access token refreshed%s%s",
           src->name, tk.expires[0] ? ", expires " : "", tk.expires);
    rq_free(tk.access);
    rq_free(tk.refresh);
    return after_401 ? 1 : 0;
  }
  if(rc == -RQ_E_INTERRUPT)
    return rc;            /* exec.c records "interrupted" */
  return rq_fail(env, at, "%s", msg);
}

int rqi_auth_before_request(const RqEnv *env, const RqSourceDef *src,
                            RqAt at)
{
  return oauth_flow(env, src, at, false, 0);
}

int rqi_auth_refresh_after_401(const RqEnv *env, const RqSourceDef *src,
                               RqAt at, unsigned long gen)
{
  return oauth_flow(env, src, at, true, gen);
}
