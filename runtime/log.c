/* log.c -- the levelled logger of SPEC §10.2.
 *
 * Every line is formatted completely in memory, passed through secret
 * redaction and written to stderr with ONE write(2) under a mutex, so
 * lines of concurrent actions never interleave.  Two formats:
 *
 *   text  [2025-03-04 09:00:00] [INFO] SyncOrders: Starting run
 *   json  {"timestamp":"2025-03-04T09:00:00Z","level":"info",
 *          "message":"Starting run","mission":"SyncOrders"}
 *
 * Redaction (SPEC §10.2: credentials are never logged): URL userinfo is
 * removed ("https://u:p@h/" becomes "https://h/"), the values of query
 * parameters named like credentials (access_token, api_key, sig, ...:
 * is_secret_param) become ***, as do string values of JSON fields named
 * like token/password/secret, the values of credential headers
 * (Authorization, Cookie, X-Api-Key, ...) to the end of their line, and
 * every value registered with rqi_log_add_secret (a bounded registry with
 * a one-pass scan per line: see "The secret registry" below).
 *
 * A text line escapes CR and LF in the message, so one event is always
 * one line; a JSON line replaces bytes that are not UTF-8 with U+FFFD.
 *
 * Callers write the text form of a message ("M: ..." or "M/A: ...");
 * in JSON format a leading "<mission>: " or "<mission>/<action>: " is
 * dropped from "message" because those values have their own keys.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "rq_internal.h"

#define LINE_MAX_BYTES (64 * 1024)  /* longer messages are cut */
#define MIN_SECRET_LEN 4

int rqi_log_level = RQ_LOG_INFO;
static int log_json;
static int log_utc;

/* Guards the secret registry and serialises writes. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_upper[] = { "DEBUG", "INFO", "WARN", "ERROR" };
static const char *const level_lower[] = { "debug", "info", "warn", "error" };

void rqi_log_configure(int level, int json_format, int utc)
{
  if(level < RQ_LOG_DEBUG)
    level = RQ_LOG_DEBUG;
  if(level > RQ_LOG_ERROR)
    level = RQ_LOG_ERROR;
  rqi_log_level = level;
  log_json = json_format;
  log_utc = utc;
}

/* A growable string local to this file (RqBuf would free itself on
 * overflow; here the input is already bounded). */
typedef struct {
  char *p;
  size_t len;
  size_t cap;
} Str;

static void str_add(Str *s, const char *p, size_t n)
{
  if(s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while(cap < s->len + n + 1)
      cap *= 2;
    s->p = rq_realloc(s->p, cap);
    s->cap = cap;
  }
  memcpy(s->p + s->len, p, n);
  s->len += n;
  s->p[s->len] = '\0';
}

/* Characters that end the authority part of a URL. */
static bool ends_authority(char c)
{
  return c == '\0' || c == '/' || c == '?' || c == '#' || c == ' ' ||
         c == '"' || c == '\'' || c == '\n' || c == '\t' || c == '>' ||
         c == '<' || c == ',' || c == '\\';
}

/* Removes "user:pass@" after every "://": the userinfo is dropped, not
 * masked, because the URL without it is exactly the one a reader needs
 * (and what the request line of the server shows).  Returns malloc'd
 * text. */
static char *strip_userinfo(const char *s)
{
  Str out = { NULL, 0, 0 };
  const char *p = s;

  str_add(&out, "", 0);
  for(;;) {
    const char *sep = strstr(p, "://");
    const char *q;
    const char *at = NULL;

    if(!sep) {
      str_add(&out, p, strlen(p));
      break;
    }
    sep += 3;
    str_add(&out, p, (size_t)(sep - p));
    for(q = sep; !ends_authority(*q); q++) {
      if(*q == '@')
        at = q;
    }
    p = at ? at + 1 : sep;
  }
  return out.p;
}

/* Does the query parameter name n (already percent-decoded, n bytes)
 * carry a credential?  The list is what real APIs put in URLs: OAuth2
 * (access_token, refresh_token, id_token, client_secret, code_verifier
 * is not secret-bearing alone and stays), API keys (key, api_key,
 * apikey, api-key, x-api-key, app_key, access_key...: every name that
 * is "key" or ends in "_key"/"-key"), passwords (password, passwd, pwd,
 * pass), pre-signed URLs (signature, sig, X-Amz-Signature,
 * X-Amz-Credential, X-Amz-Security-Token), and session ids (session,
 * sessionid, jsessionid).  Any name CONTAINING token, secret, password,
 * passwd, apikey, api_key, api-key, signature, credential or session
 * matches too, so vendor spellings (authToken, X-Goog-Signature) are
 * covered.  Over-redacting a harmless parameter only costs a log reader
 * one value; missing one leaks a credential into logs kept for months. */
static bool is_secret_param(const char *n, size_t len)
{
  static const char *const contains[] = {
    "token", "secret", "password", "passwd", "apikey", "api_key",
    "api-key", "signature", "credential", "session"
  };
  static const char *const exact[] = {
    "key", "sig", "auth", "authorization", "pwd", "pass", "jwt", "code"
  };
  size_t i;
  size_t j;

  for(i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
    if(strlen(exact[i]) == len && !strncasecmp(n, exact[i], len))
      return true;
  }
  if(len > 4 && !strncasecmp(n + len - 3, "key", 3) &&
     (n[len - 4] == '_' || n[len - 4] == '-'))
    return true;
  for(i = 0; i < sizeof(contains) / sizeof(contains[0]); i++) {
    size_t wl = strlen(contains[i]);
    for(j = 0; j + wl <= len; j++) {
      if(!strncasecmp(n + j, contains[i], wl))
        return true;
    }
  }
  return false;
}

/* Characters that end a query parameter's name or value in log text:
 * the next parameter, the fragment, and whatever cannot be part of a URL
 * written in a message (spaces, quotes, angle brackets, and the
 * backslash of a JSON escape in a finished JSON line). */
static bool ends_param(char c)
{
  return c == '\0' || c == '&' || c == '#' || c == ' ' || c == '"' ||
         c == '\'' || c == '\n' || c == '\r' || c == '\t' || c == '<' ||
         c == '>' || c == '\\' || c == ';';
}

/* Does a query value end at p?  At ends_param, and also at a ':' or ','
 * followed by white space or the end: messages put them right after a
 * URL ("GET <url>: timed out", "<url>, retrying"), and a URL cannot
 * hold the white space after them, so they are the message's, not the
 * value's (masking them would garble the message). */
static bool ends_value(const char *p)
{
  if(ends_param(*p))
    return true;
  return (*p == ':' || *p == ',') &&
         (p[1] == '\0' || p[1] == ' ' || p[1] == '\n' || p[1] == '\r' ||
          p[1] == '\t');
}

/* Replaces the value of every query parameter named like a credential
 * (is_secret_param) with ***: "?access_token=abc&x=1" becomes
 * "?access_token=***&x=1".  Any "?name=" or "&name=" in the text counts,
 * so bare paths ("/p?key=...") are covered as well as whole URLs.  Names
 * are compared after percent-decoding ("api%5Fkey").  Returns malloc'd
 * text. */
static char *redact_query(const char *s)
{
  Str out = { NULL, 0, 0 };
  const char *p = s;

  str_add(&out, "", 0);
  while(*p) {
    const char *n;
    const char *e;
    char name[64];
    size_t nl = 0;

    str_add(&out, p, 1);
    if(*p != '?' && *p != '&') {
      p++;
      continue;
    }
    n = ++p;
    for(e = n; !ends_param(*e) && *e != '=' && *e != '?'; e++) {
      int hi;
      int lo;
      char c = *e;
      if(c == '%' && (hi = rq_hexval(e[1])) >= 0 &&
         (lo = rq_hexval(e[2])) >= 0) {
        c = (char)(hi * 16 + lo);
        e += 2;
      }
      if(nl < sizeof(name))
        name[nl] = c;
      nl++;
    }
    if(*e != '=' || nl == 0 || nl > sizeof(name) ||
       !is_secret_param(name, nl))
      continue;                 /* p is at the name: copied normally */
    str_add(&out, n, (size_t)(e + 1 - n));
    str_add(&out, "***", 3);
    for(p = e + 1; !ends_value(p); p++)
      ;
  }
  return out.p;
}

/* URL redaction: userinfo dropped, credential query values masked. */
static char *redact_urls(const char *s)
{
  char *a = strip_userinfo(s);
  char *b = redact_query(a);

  rq_free(a);
  return b;
}

/* Does the JSON key k (n bytes) name a credential? */
static bool is_secret_key(const char *k, size_t n)
{
  static const char *const words[] = { "token", "password", "passwd",
                                       "secret", "authorization", "apikey",
                                       "api_key", "api-key" };
  size_t i;
  size_t j;

  for(i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
    size_t wl = strlen(words[i]);
    for(j = 0; j + wl <= n; j++) {
      if(!strncasecmp(k + j, words[i], wl))
        return true;
    }
  }
  return false;
}

/* Characters of an HTTP header name as they appear in messages. */
static bool is_name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Is the header name n (len bytes) one that carries a credential?
 * Authorization, Proxy-Authorization, Cookie and Set-Cookie, and any
 * name with a '-' that contains token/secret/password/api-key/...
 * (X-Api-Key, X-Auth-Token).  The '-' keeps Reqon identifiers out:
 * "TokenSync: Starting run" or "store api_tokens: invalid key" name a
 * mission or a store, never a header, and must stay readable. */
static bool is_secret_header(const char *n, size_t len)
{
  static const char *const names[] = {
    "authorization", "proxy-authorization", "cookie", "set-cookie"
  };
  size_t i;

  for(i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if(strlen(names[i]) == len && !strncasecmp(n, names[i], len))
      return true;
  }
  return memchr(n, '-', len) != NULL && is_secret_key(n, len);
}

/* When a header line "Name: value" whose name carries a credential
 * (Authorization, Proxy-Authorization, Cookie, X-Api-Key, X-Auth-Token,
 * ...) starts at p (a name boundary inside s), returns where its value
 * ends; else NULL.  The value runs to the end of the line: values such
 * as Digest's (username="u", response="...") hold commas, spaces and
 * quotes, so no other character can end them safely.  Only a header
 * written inside a quoted string ("Authorization: Bearer x" in a JSON
 * array, or '...' in a shell line) ends at that string's closing quote,
 * escaped quotes skipped. */
static const char *header_value_end(const char *s, const char *p)
{
  const char *e = p;
  char quote = 0;

  while(is_name_char(*e))
    e++;
  if(*e != ':' || !is_secret_header(p, (size_t)(e - p)))
    return NULL;
  if(p > s && (p[-1] == '"' || p[-1] == '\''))
    quote = p[-1];
  for(e++; *e && *e != '\n' && *e != '\r'; e++) {
    if(quote && *e == '\\' && e[1])
      e++;
    else if(quote && *e == quote)
      break;
  }
  return e;
}

/* Replaces credential values in text: the string value of a JSON field
 * whose name contains token/password/secret/... ("password":"x" becomes
 * "password":"***"), and the value of a header line whose name names
 * a credential ("Authorization: Bearer x" becomes "Authorization: ***";
 * see header_value_end).  Returns malloc'd text. */
static char *redact_fields(const char *s)
{
  Str out = { NULL, 0, 0 };
  const char *p = s;

  str_add(&out, "", 0);
  while(*p) {
    if(*p == '"') {
      const char *k = p + 1;
      const char *ke = strchr(k, '"');
      const char *v;
      if(ke && is_secret_key(k, (size_t)(ke - k))) {
        v = ke + 1;
        while(*v == ' ')
          v++;
        if(*v == ':') {
          v++;
          while(*v == ' ')
            v++;
          if(*v == '"') {
            const char *e = v + 1;
            while(*e && *e != '"') {
              if(*e == '\\' && e[1])
                e++;
              e++;
            }
            str_add(&out, p, (size_t)(v + 1 - p));
            str_add(&out, "***", 3);
            p = e;     /* the closing quote (or the end) is copied next */
            continue;
          }
        }
      }
    }
    if((p == s || !is_name_char(p[-1])) && is_name_char(*p)) {
      const char *e = header_value_end(s, p);
      if(e) {
        const char *colon = strchr(p, ':');
        str_add(&out, p, (size_t)(colon + 1 - p));
        str_add(&out, " ***", 4);
        p = e;
        continue;
      }
    }
    str_add(&out, p, 1);
    p++;
  }
  return out.p;
}

/* The secret registry.
 *
 * Every value registered here becomes *** in every log line and in
 * rqi_log_redact's result.  Two tiers keep it bounded:
 *
 * - PERMANENT (rqi_log_add_secret): credentials from configuration
 *   (--auth, REQON_* variables, token files read at start).  Their number
 *   is fixed by the configuration, and they stay valid for months, so
 *   they are never evicted -- up to PERMANENT_MAX values; past that (a
 *   configuration with hundreds of secrets, or a caller registering
 *   run-time tokens here) new values are treated as rotating.
 * - ROTATING (rqi_log_add_rotating_secret): tokens obtained at run time
 *   (OAuth2 refreshes: an access token and a refresh token, sometimes in
 *   two spellings, every hour or so: about 17 000 values a year).  Only
 *   the ROTATING_MAX most recently registered are kept; registering a
 *   value again makes it the newest.  A token that fell off the list was
 *   followed by at least ROTATING_MAX / 4 refreshes (at most 4 values
 *   each: 2 tokens, 2 spellings; so 64 refreshes, nearly 3 days with
 *   hourly ones), so it has long expired or been rotated out; an expired
 *   token shown once is far less dangerous than a daemon whose memory
 *   and per-line cost grow without bound.
 *
 * Both tiers together hold at most PERMANENT_MAX + ROTATING_MAX values,
 * each registered once (duplicates are found in the index).
 *
 * Cost per line: every value is at least MIN_SECRET_LEN bytes, so the
 * index maps the first 4 bytes of each value to the values starting with
 * them.  A line is scanned once, looking up the 4 bytes at each position
 * (a hash probe, almost always an empty bucket), instead of searching the
 * line once per secret.  Every byte covered by an occurrence of any
 * secret is replaced: overlapping or adjacent occurrences become one ***,
 * so no part of either survives. */
#define PERMANENT_MAX 256
#define ROTATING_MAX 256
#define SECRETS_MAX (PERMANENT_MAX + ROTATING_MAX)
#define INDEX_BITS 10                    /* 1024 buckets for <= 512 */
#define INDEX_SIZE (1u << INDEX_BITS)

typedef struct {
  char *value;
  size_t len;
  uint32_t prefix;        /* the first 4 bytes, for the index */
  bool permanent;
  unsigned long long seq; /* registration order (rotating: recency) */
  int next;               /* next value in the same bucket, or -1 */
} Secret;

/* All guarded by log_mu. */
static Secret secrets[SECRETS_MAX];
static size_t n_secrets;
static size_t n_permanent;
static unsigned long long secret_seq;
static int index_head[INDEX_SIZE];      /* bucket -> first value or -1 */
static bool index_ready;

static uint32_t prefix_of(const char *p)
{
  return (uint32_t)(unsigned char)p[0] |
         (uint32_t)(unsigned char)p[1] << 8 |
         (uint32_t)(unsigned char)p[2] << 16 |
         (uint32_t)(unsigned char)p[3] << 24;
}

static unsigned bucket_of(uint32_t prefix)
{
  return (unsigned)((prefix * 2654435761u) >> (32 - INDEX_BITS));
}

/* Rebuilds the index after the list changed (rare: a registration). */
static void index_rebuild(void)
{
  size_t i;

  for(i = 0; i < INDEX_SIZE; i++)
    index_head[i] = -1;
  for(i = 0; i < n_secrets; i++) {
    unsigned b = bucket_of(secrets[i].prefix);
    secrets[i].next = index_head[b];
    index_head[b] = (int)i;
  }
  index_ready = true;
}

/* The index of value (len bytes) in the list, or -1. */
static int secret_find(const char *value, size_t len)
{
  int i;

  if(!index_ready)
    return -1;
  for(i = index_head[bucket_of(prefix_of(value))]; i >= 0;
      i = secrets[i].next) {
    if(secrets[i].len == len && !memcmp(secrets[i].value, value, len))
      return i;
  }
  return -1;
}

/* Removes the least recently registered rotating value. */
static void evict_oldest_rotating(void)
{
  size_t i;
  size_t old = SECRETS_MAX;

  for(i = 0; i < n_secrets; i++) {
    if(!secrets[i].permanent &&
       (old == SECRETS_MAX || secrets[i].seq < secrets[old].seq))
      old = i;
  }
  if(old == SECRETS_MAX)
    return;
  rq_free(secrets[old].value);
  secrets[old] = secrets[--n_secrets];
}

static void add_secret(const char *value, bool permanent)
{
  size_t len;
  int at;

  if(!value || (len = strlen(value)) < MIN_SECRET_LEN)
    return;
  pthread_mutex_lock(&log_mu);
  at = secret_find(value, len);
  if(at >= 0) {
    /* Known: it becomes the newest, and a permanent registration of a
     * rotating value pins it while there is room. */
    secrets[at].seq = ++secret_seq;
    if(permanent && !secrets[at].permanent && n_permanent < PERMANENT_MAX) {
      secrets[at].permanent = true;
      n_permanent++;
    }
    pthread_mutex_unlock(&log_mu);
    return;
  }
  if(permanent && n_permanent >= PERMANENT_MAX)
    permanent = false;
  if(!permanent && n_secrets - n_permanent >= ROTATING_MAX)
    evict_oldest_rotating();
  secrets[n_secrets].value = rq_strdup(value);
  secrets[n_secrets].len = len;
  secrets[n_secrets].prefix = prefix_of(value);
  secrets[n_secrets].permanent = permanent;
  secrets[n_secrets].seq = ++secret_seq;
  n_secrets++;
  if(permanent)
    n_permanent++;
  index_rebuild();
  pthread_mutex_unlock(&log_mu);
}

void rqi_log_add_secret(const char *value)
{
  add_secret(value, true);
}

void rqi_log_add_rotating_secret(const char *value)
{
  add_secret(value, false);
}

size_t rqi_log_secret_count(void)
{
  size_t n;

  pthread_mutex_lock(&log_mu);
  n = n_secrets;
  pthread_mutex_unlock(&log_mu);
  return n;
}

void rqi_log_shutdown(void)
{
  size_t i;

  pthread_mutex_lock(&log_mu);
  for(i = 0; i < n_secrets; i++)
    rq_free(secrets[i].value);
  n_secrets = 0;
  n_permanent = 0;
  index_ready = false;
  pthread_mutex_unlock(&log_mu);
}

/* Replaces every byte covered by an occurrence of a registered secret
 * with ***, one *** per run of covered bytes (see the registry comment).
 * Called with log_mu held. Returns malloc'd text. */
static char *replace_secrets(const char *s)
{
  Str out = { NULL, 0, 0 };
  size_t n = strlen(s);
  size_t i;
  size_t copied = 0;      /* s[0 .. copied) is in out */
  size_t run_start = 0;
  size_t run_end = 0;     /* the covered run [run_start, run_end) */
  bool in_run = false;

  str_add(&out, "", 0);
  if(n_secrets == 0 || n < MIN_SECRET_LEN) {
    str_add(&out, s, n);
    return out.p;
  }
  for(i = 0; i + MIN_SECRET_LEN <= n; i++) {
    int k;

    if(in_run && i > run_end) {
      str_add(&out, s + copied, run_start - copied);
      str_add(&out, "***", 3);
      copied = run_end;
      in_run = false;
    }
    for(k = index_head[bucket_of(prefix_of(s + i))]; k >= 0;
        k = secrets[k].next) {
      const Secret *sec = &secrets[k];
      if(sec->len > n - i || memcmp(s + i, sec->value, sec->len) != 0)
        continue;
      if(!in_run) {
        in_run = true;
        run_start = i;
        run_end = i + sec->len;
      } else if(i + sec->len > run_end) {
        run_end = i + sec->len;
      }
    }
  }
  if(in_run) {
    str_add(&out, s + copied, run_start - copied);
    str_add(&out, "***", 3);
    copied = run_end;
  }
  str_add(&out, s + copied, n - copied);
  return out.p;
}

char *rqi_log_redact(const char *s)
{
  char *tmp;
  char *out;

  if(!s)
    return rq_strdup("");
  tmp = redact_urls(s);
  out = redact_fields(tmp);
  rq_free(tmp);
  pthread_mutex_lock(&log_mu);
  tmp = replace_secrets(out);
  pthread_mutex_unlock(&log_mu);
  rq_free(out);
  return tmp;
}

/* Formats the message into malloc'd text, at most LINE_MAX_BYTES. */
static char *format_message(const char *fmt, va_list ap)
{
  char small[1024];
  va_list ap2;
  int n;
  char *big;
  size_t len;

  va_copy(ap2, ap);
  n = vsnprintf(small, sizeof(small), fmt, ap2);
  va_end(ap2);
  if(n < 0)
    return rq_strdup("(unformattable log message)");
  if((size_t)n < sizeof(small))
    return rq_strdup(small);
  len = (size_t)n < LINE_MAX_BYTES ? (size_t)n : LINE_MAX_BYTES;
  big = rq_malloc(len + 1);
  vsnprintf(big, len + 1, fmt, ap);
  return big;
}

/* Writes all of buf to fd 2, retrying short writes and EINTR. */
static void write_all(const char *buf, size_t n)
{
  while(n > 0) {
    ssize_t w = write(STDERR_FILENO, buf, n);
    if(w < 0) {
      if(errno == EINTR)
        continue;
      return;
    }
    buf += w;
    n -= (size_t)w;
  }
}

/* In JSON format, drops "mission: " or "mission/action: " in front of
 * msg when the context carries the mission. Returns a pointer into msg. */
static const char *strip_ctx_prefix(const char *msg, const RqLogCtx *ctx)
{
  size_t ml;
  const char *p;

  if(!ctx || !ctx->mission)
    return msg;
  ml = strlen(ctx->mission);
  if(strncmp(msg, ctx->mission, ml) != 0)
    return msg;
  p = msg + ml;
  if(*p == '/' && ctx->action) {
    size_t al = strlen(ctx->action);
    if(strncmp(p + 1, ctx->action, al) != 0)
      return msg;
    p += 1 + al;
  }
  if(p[0] == ':' && p[1] == ' ')
    return p + 2;
  return msg;
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0
 * when the bytes there are not one (RFC 3629: no overlongs, surrogates
 * or code points above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
  size_t len;
  unsigned cp;
  size_t i;

  if(p[0] < 0x80)
    return 1;
  if(p[0] >= 0xc2 && p[0] <= 0xdf) {
    len = 2;
    cp = p[0] & 0x1fu;
  } else if(p[0] >= 0xe0 && p[0] <= 0xef) {
    len = 3;
    cp = p[0] & 0x0fu;
  } else if(p[0] >= 0xf0 && p[0] <= 0xf4) {
    len = 4;
    cp = p[0] & 0x07u;
  } else {
    return 0;
  }
  if(n < len)
    return 0;
  for(i = 1; i < len; i++) {
    if((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3fu);
  }
  if((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
     (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/* A JSON string of s, whose bytes that are not UTF-8 (a server's text in
 * an error message) become U+FFFD: jansson refuses to dump invalid UTF-8,
 * which would cost the line its whole content.  New reference. */
static json_t *utf8_string(const char *s)
{
  Str out = { NULL, 0, 0 };
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  json_t *v;

  str_add(&out, "", 0);
  while(n > 0) {
    size_t k = utf8_seq(p, n);
    if(k == 0) {
      str_add(&out, "\xef\xbf\xbd", 3);
      k = 1;
    } else {
      str_add(&out, (const char *)p, k);
    }
    p += k;
    n -= k;
  }
  v = json_stringn_nocheck(out.p, out.len);
  rq_free(out.p);
  return v;
}

static char *json_line(int level, const RqLogCtx *ctx, const char *msg,
                       time_t now)
{
  struct tm tm;
  char ts[40];
  json_t *o = json_object();
  char *dump;
  char *line;
  size_t n;
  const char *body = strip_ctx_prefix(msg, ctx);

  gmtime_r(&now, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_object_set_new(o, "timestamp", json_string(ts));
  json_object_set_new(o, "level", json_string(level_lower[level]));
  json_object_set_new(o, "message", utf8_string(body));
  if(ctx && ctx->mission)
    json_object_set_new(o, "mission", utf8_string(ctx->mission));
  if(ctx && ctx->execution)
    json_object_set_new(o, "execution", utf8_string(ctx->execution));
  if(ctx && ctx->action)
    json_object_set_new(o, "action", utf8_string(ctx->action));
  if(ctx && ctx->step)
    json_object_set_new(o, "step", utf8_string(ctx->step));
  if(ctx && ctx->source)
    json_object_set_new(o, "source", utf8_string(ctx->source));
  if(ctx && ctx->method)
    json_object_set_new(o, "method", utf8_string(ctx->method));
  if(ctx && ctx->path)
    json_object_set_new(o, "path", utf8_string(ctx->path));
  if(ctx && ctx->status)
    json_object_set_new(o, "status", json_integer(ctx->status));
  if(ctx && ctx->attempt)
    json_object_set_new(o, "attempt", json_integer(ctx->attempt));
  if(ctx && ctx->has_duration)
    json_object_set_new(o, "duration_ms",
                        json_integer((json_int_t)(ctx->duration_ms + 0.5)));
  if(ctx && ctx->has_records)
    json_object_set_new(o, "records", json_integer(ctx->records));
  if(ctx && ctx->error)
    json_object_set_new(o, "error", utf8_string(ctx->error));
  if(ctx && ctx->at)
    json_object_set_new(o, "at", utf8_string(ctx->at));
  dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if(!dump)
    return rq_strdup("{\"level\":\"error\",\"message\":\"log failure\"}\n");
  n = strlen(dump);
  line = rq_malloc(n + 2);
  memcpy(line, dump, n);
  line[n] = '\n';
  line[n + 1] = '\0';
  rq_free(dump);
  return line;
}

/* One event is one line (§10.2): a CR or LF inside the message (an
 * abort message, a server's text) is written as the two characters \r
 * or \n, so it can neither split the event nor forge another line. */
static char *text_line(int level, const char *msg, time_t now)
{
  struct tm tm;
  char ts[40];
  char head[80];
  Str out = { NULL, 0, 0 };
  const char *p;

  if(log_utc)
    gmtime_r(&now, &tm);
  else
    localtime_r(&now, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
  snprintf(head, sizeof(head), "[%s] [%s] ", ts, level_upper[level]);
  str_add(&out, head, strlen(head));
  for(p = msg; *p; p++) {
    if(*p == '\n')
      str_add(&out, "\\n", 2);
    else if(*p == '\r')
      str_add(&out, "\\r", 2);
    else
      str_add(&out, p, 1);
  }
  str_add(&out, "\n", 1);
  return out.p;
}

void rqi_log_write(int level, const RqLogCtx *ctx, const char *fmt, ...)
{
  va_list ap;
  char *raw;
  char *msg;
  char *line;
  time_t now = time(NULL);

  if(level < RQ_LOG_DEBUG)
    level = RQ_LOG_DEBUG;
  if(level > RQ_LOG_ERROR)
    level = RQ_LOG_ERROR;
  if(level < rqi_log_level)
    return;
  va_start(ap, fmt);
  raw = format_message(fmt, ap);
  va_end(ap);
  /* Credential fields and registered secrets are redacted before a JSON
   * line escapes quotes and backslashes, which would hide a secret holding
   * them from the search on the finished line. */
  msg = redact_urls(raw);
  rq_free(raw);
  raw = msg;
  msg = redact_fields(raw);
  rq_free(raw);
  pthread_mutex_lock(&log_mu);
  raw = replace_secrets(msg);
  pthread_mutex_unlock(&log_mu);
  rq_free(msg);
  msg = raw;
  line = log_json ? json_line(level, ctx, msg, now)
                  : text_line(level, msg, now);
  rq_free(msg);
  /* Redact the finished line so context values are covered too. */
  msg = redact_urls(line);
  rq_free(line);
  pthread_mutex_lock(&log_mu);
  line = replace_secrets(msg);
  write_all(line, strlen(line));
  pthread_mutex_unlock(&log_mu);
  rq_free(msg);
  rq_free(line);
}

void rqi_print_plan(const char *text)
{
  char *shown = rqi_log_redact(text);

  /* Parallel stages print whole blocks, never interleaved lines. */
  flockfile(stdout);
  fputs(shown, stdout);
  fflush(stdout);
  funlockfile(stdout);
  rq_free(shown);
}
