/* auth.c -- credentials and auth headers (SPEC §6.1).
 *
 * Credentials come from the --auth JSON file (keyed by source name, every
 * string env-expanded) or, for a source without an entry there, from the
 * environment variables REQON_<SOURCE>_<FIELD>.  Either way a credential
 * is a JSON object with the file's field names; env credentials are built
 * on first use and cached, so each secret is registered with the logger
 * once.  rqi_auth_apply turns a credential into headers or an api_key
 * query parameter.  OAuth2 refresh is not implemented here yet: an oauth2
 * credential sends its access token.
 *
 * All state is behind one mutex; rqi_auth_load may run again (SIGHUP) and
 * replaces it.  Ownership: both registries own their objects; get_cred
 * returns a new reference.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rq_internal.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *file_creds;   /* source name -> credential, from --auth */
static json_t *env_creds;    /* source name -> credential (or null) */

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
 * of a transport error) only in encoded form. */
static void add_secret(const char *s)
{
  RqBuf b = RQ_BUF_INIT(0);

  rqi_log_add_secret(s);
  if(rqi_http_pct_encode(&b, s, strlen(s)) == 0 && b.data &&
     strcmp(b.data, s) != 0)
    rqi_log_add_secret(b.data);
  rq_buf_free(&b);
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

/* The credential of source `name`: new reference or NULL. */
static json_t *get_cred(const char *name)
{
  json_t *c;

  pthread_mutex_lock(&mu);
  c = file_creds ? json_object_get(file_creds, name) : NULL;
  if(!c) {
    if(!env_creds)
      env_creds = json_object();
    c = json_object_get(env_creds, name);
    if(!c) {
      c = env_cred(name);
      if(c)
        register_secrets(c);
      json_object_set_new(env_creds, name, c ? c : json_null());
      c = json_object_get(env_creds, name);
    }
  }
  if(json_is_null(c))
    c = NULL;
  json_incref(c);
  pthread_mutex_unlock(&mu);
  return c;
}

/* ------------------------------------------------------ public API */

/* Installs creds (steals; NULL for none) as the file credentials, and
 * drops the cached environment credentials so they are read again. */
static void set_creds(json_t *creds)
{
  pthread_mutex_lock(&mu);
  json_decref(file_creds);
  file_creds = creds;
  json_decref(env_creds);
  env_creds = NULL;
  pthread_mutex_unlock(&mu);
}

int rqi_auth_load(const char *path)
{
  json_error_t err;
  json_t *raw, *exp, *v;
  const char *k;

  if(!path) {
    set_creds(NULL);
    return 0;
  }
  raw = json_load_file(path, 0, &err);
  if(!raw) {
    rq_log(RQ_LOG_ERROR, NULL, "cannot load auth file %s: %s (line %d)",
           path, err.text, err.line);
    return -1;
  }
  if(!json_is_object(raw)) {
    rq_log(RQ_LOG_ERROR, NULL,
           "invalid auth file %s: expected an object keyed by source name",
           path);
    json_decref(raw);
    return -1;
  }
  json_object_foreach(raw, k, v) {
    if(!json_is_object(v)) {
      rq_log(RQ_LOG_ERROR, NULL,
             "invalid auth file %s: entry '%s' is not an object", path, k);
      json_decref(raw);
      return -1;
    }
  }
  exp = expand_json(raw);
  json_decref(raw);
  json_object_foreach(exp, k, v)
    register_secrets(v);
  set_creds(exp);
  return 0;
}

void rqi_auth_free(void)
{
  set_creds(NULL);
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
