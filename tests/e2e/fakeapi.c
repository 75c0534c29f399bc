/* fakeapi.c -- the loopback HTTP/1.1 test server of the e2e and
 * conformance tests (libmicrohttpd + jansson).
 *
 *   fakeapi --script exchanges.json --port-file FILE --report REPORT.json
 *           [--port N]
 *
 * Serves the script format of shared/conformance/README.md with the same
 * semantics as shared/tools/conformance.py: exchanges are consumed in
 * order, except "unordered" and "optional" ones; "times" repeats one;
 * query/headers/body matching with "*", {"regex"} (full match; \d \w \s
 * and their negations are translated to POSIX classes) and arrays for
 * repeated parameters; a request that matches nothing gets 599.
 * Our extensions: a request may also give "body_text" (the raw body,
 * matched like a query value) and "min_gap_ms" (it matches only that
 * long after the previous request arrived); a response may give
 * "body_hex" (raw bytes, hex-encoded; application/octet-stream unless
 * its headers say otherwise); response header values may
 * be time templates, {{now+N}}, {{now_ms+N}} and {{date+N}} (see
 * expand_time).
 *
 * It binds 127.0.0.1 (port 0: any free port), writes the port number to
 * the port file once listening, serves until SIGTERM or SIGINT, then
 * writes the report
 *   {"requests": [...], "unexpected": [...], "pending": [indices]}
 * where a request is {method, path, query (name -> [values]), headers
 * (lower-case names), body (text), t_ms (arrival, ms after start)},
 * and exits 0.
 *
 * One thread per connection; the script and the report lists are guarded
 * by one mutex.  This is a test tool, not runtime code: it uses plain
 * malloc and exits on allocation failure.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* One pending use of an exchange ("times" gives several). */
typedef struct {
  size_t index;          /* position in the script */
  json_t *ex;            /* borrowed from script */
} Slot;

static json_t *script;          /* the exchanges array */
static Slot *left;              /* pending uses, in script order */
static size_t n_left;
static json_t *seen;            /* every request, in order */
static json_t *unexpected;      /* requests that matched nothing */
static json_t *unmatched;       /* the 599 response */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* State of one request, created by the URI log callback. */
typedef struct {
  char *uri;             /* raw request target: path and query */
  char *body;
  size_t len, cap;
  bool started;
} Req;

static void die(const char *what)
{
  fprintf(stderr, "fakeapi: %s\n", what);
  exit(2);
}

static void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);

  if(!p)
    die("out of memory");
  return p;
}

static char *xstrndup(const char *s, size_t n)
{
  char *p = xmalloc(n + 1);

  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* ----------------------------------------------------------- text */
/* A JSON string of n bytes; invalid UTF-8 bytes become U+FFFD, as
 * Python's decode("utf-8", "replace") does. */
static json_t *text_value(const char *s, size_t n)
{
  json_t *v = json_stringn(s, n);
  char *out, *o;
  size_t i;

  if(v)
    return v;
  out = xmalloc(n * 3 + 1);
  o = out;
  for(i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    size_t k, need = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14
                     ? 2 : (c >> 3) == 30 ? 3 : 9;
    bool ok = need != 9 && i + need < n;
    for(k = 1; ok && k <= need; k++)
      ok = ((unsigned char)s[i + k] >> 6) == 2;
    if(ok && need) {
      json_t *t = json_stringn(s + i, need + 1);   /* overlongs etc. */
      ok = t != NULL;
      json_decref(t);
    }
    if(ok) {
      memcpy(o, s + i, need + 1);
      o += need + 1;
      i += need;
    }
    else {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
    }
  }
  v = json_stringn(out, (size_t)(o - out));
  free(out);
  return v ? v : json_string("");
}

static int hexval(int c)
{
  if(c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  if(c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Percent-decodes n bytes ('+' stays '+'); a new JSON string. */
static json_t *unquote(const char *s, size_t n)
{
  char *out = xmalloc(n + 1);
  size_t i, o = 0;
  json_t *v;

  for(i = 0; i < n; i++) {
    if(s[i] == '%' && i + 2 < n &&
       hexval((unsigned char)s[i + 1]) >= 0 &&
       hexval((unsigned char)s[i + 2]) >= 0) {
      out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
                        hexval((unsigned char)s[i + 2]));
      i += 2;
    }
    else
      out[o++] = s[i];
  }
  v = text_value(out, o);
  free(out);
  return v;
}

/* Parses the query of a raw target into {name: [values]}; new. */
static json_t *parse_query(const char *q)
{
  json_t *query = json_object(), *k, *v, *arr;
  const char *p = q, *amp, *eq;
  size_t n;

  if(!q || !*q)
    return query;
  for(;;) {
    amp = strchr(p, '&');
    n = amp ? (size_t)(amp - p) : strlen(p);
    eq = memchr(p, '=', n);
    k = unquote(p, eq ? (size_t)(eq - p) : n);
    v = eq ? unquote(eq + 1, n - (size_t)(eq - p) - 1) : json_string("");
    arr = json_object_get(query, json_string_value(k));
    if(!arr) {
      arr = json_array();
      json_object_set_new(query, json_string_value(k), arr);
    }
    json_array_append_new(arr, v);
    json_decref(k);
    if(!amp)
      break;
    p = amp + 1;
  }
  return query;
}

/* --------------------------------------------------------- matching */
/* Translates a Python regex to a POSIX ERE anchored at both ends. */
static char *translate_regex(const char *re)
{
  size_t n = strlen(re), i, o = 0;
  char *out = xmalloc(n * 16 + 8);
  bool in_class = false;
  const char *rep;

  out[o++] = '^';
  out[o++] = '(';
  for(i = 0; i < n; i++) {
    char c = re[i];
    if(c == '\\' && i + 1 < n) {
      char d = re[i + 1];
      rep = NULL;
      if(in_class) {
        if(d == 'd')
          rep = "0-9";
        else if(d == 'w')
          rep = "A-Za-z0-9_";
        else if(d == 's')
          rep = "[:space:]";
      }
      else {
        if(d == 'd')
          rep = "[0-9]";
        else if(d == 'w')
          rep = "[A-Za-z0-9_]";
        else if(d == 's')
          rep = "[[:space:]]";
        else if(d == 'D')
          rep = "[^0-9]";
        else if(d == 'W')
          rep = "[^A-Za-z0-9_]";
        else if(d == 'S')
          rep = "[^[:space:]]";
      }
      if(rep) {
        memcpy(out + o, rep, strlen(rep));
        o += strlen(rep);
      }
      else if(in_class && d != ']' && d != '\\' && d != '-' && d != '^') {
        out[o++] = d;    /* \. inside [...] is just '.' in POSIX */
      }
      else if(in_class) {
        /* POSIX has no escapes inside brackets; keep the char literal
         * where it is harmless. */
        out[o++] = d;
      }
      else {
        out[o++] = '\\';
        out[o++] = d;
      }
      i++;
      continue;
    }
    if(!in_class && c == '[') {
      in_class = true;
      out[o++] = c;
      if(i + 1 < n && re[i + 1] == '^')
        out[o++] = re[++i];
      if(i + 1 < n && re[i + 1] == ']')
        out[o++] = re[++i];
      continue;
    }
    if(in_class && c == ']')
      in_class = false;
    out[o++] = c;
  }
  out[o++] = ')';
  out[o++] = '$';
  out[o] = '\0';
  return out;
}

static bool regex_full_match(const char *re, const char *s)
{
  regex_t rx;
  char *ere = translate_regex(re);
  bool ok;

  if(regcomp(&rx, ere, REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "fakeapi: bad regex '%s'\n", re);
    free(ere);
    return false;
  }
  ok = regexec(&rx, s, 0, NULL, 0) == 0;
  regfree(&rx);
  free(ere);
  return ok;
}

/* _value_ok of conformance.py: got is a string, an array of strings, or
 * NULL (absent). */
static bool value_ok(const json_t *want, const json_t *got)
{
  const json_t *re;

  if(json_is_array(got) && !json_is_array(want))
    return false;
  if(json_is_string(want) && strcmp(json_string_value(want), "*") == 0)
    return got != NULL;
  if(json_is_object(want) && (re = json_object_get(want, "regex"))) {
    return json_is_string(got) && json_is_string(re) &&
           regex_full_match(json_string_value(re), json_string_value(got));
  }
  if(!got)
    return false;
  return json_equal((json_t *)want, (json_t *)got);
}

static bool query_ok(const json_t *want, const json_t *query)
{
  const char *k;
  json_t *v, *got;

  if(json_object_size(want) != json_object_size(query))
    return false;
  json_object_foreach((json_t *)want, k, v) {
    got = json_object_get(query, k);
    if(!got)
      return false;
    if(json_array_size(got) == 1 && !json_is_array(v))
      got = json_array_get(got, 0);
    if(!value_ok(v, got))
      return false;
  }
  return true;
}

static bool matches(const json_t *req, const char *method, const char *path,
                    const json_t *query, const json_t *headers,
                    const char *body, size_t body_len, double gap_ms)
{
  const char *want_m = json_string_value(json_object_get(req, "method"));
  const char *k;
  json_t *v, *want, *got;
  char lower[256];
  size_t i;
  bool ok;

  if(strcasecmp(want_m ? want_m : "GET", method) != 0)
    return false;
  if(!json_is_string(json_object_get(req, "path")) ||
     strcmp(json_string_value(json_object_get(req, "path")), path) != 0)
    return false;
  want = json_object_get(req, "query");
  if(want && !query_ok(want, query))
    return false;
  json_object_foreach(json_object_get(req, "headers"), k, v) {
    for(i = 0; k[i] && i + 1 < sizeof(lower); i++)
      lower[i] = (char)tolower((unsigned char)k[i]);
    lower[i] = '\0';
    got = json_object_get(headers, lower);
    if(json_is_null(v)) {
      if(got)
        return false;
    }
    else if(!value_ok(v, got))
      return false;
  }
  want = json_object_get(req, "body");
  if(want) {
    json_t *b = body_len ? json_loadb(body, body_len, JSON_DECODE_ANY, NULL)
                         : json_null();
    ok = b && json_equal(b, want);
    json_decref(b);
    if(!ok)
      return false;
  }
  /* The raw body as text: for form bodies (OAuth2 token requests). */
  want = json_object_get(req, "body_text");
  if(want) {
    json_t *b = json_stringn_nocheck(body ? body : "", body_len);
    ok = value_ok(want, b);
    json_decref(b);
    if(!ok)
      return false;
  }
  /* A lower bound on the time since the previous request: spacing tests
   * stay immune to a slow machine, which only makes gaps longer. */
  want = json_object_get(req, "min_gap_ms");
  if(json_is_number(want) && gap_ms < json_number_value(want))
    return false;
  return true;
}

static double mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double start_ms, last_ms = -1;   /* under mu */

/* Records the request and takes the matching exchange's response (a
 * borrowed reference, NULL when nothing matches).  Steals rec. */
static json_t *take(json_t *rec, const char *method, const char *path,
                    const json_t *query, const json_t *headers,
                    const char *body, size_t len)
{
  json_t *resp = NULL, *ex;
  bool first_ordered_seen = false, free_slot;
  double now, gap;
  size_t i;

  pthread_mutex_lock(&mu);
  now = mono_ms();
  gap = last_ms < 0 ? 1e18 : now - last_ms;
  last_ms = now;
  json_object_set_new(rec, "t_ms", json_real(now - start_ms));
  json_array_append(seen, rec);
  for(i = 0; i < n_left; i++) {
    ex = left[i].ex;
    free_slot = json_is_true(json_object_get(ex, "unordered")) ||
                json_is_true(json_object_get(ex, "optional"));
    if(!free_slot) {
      if(first_ordered_seen)
        continue;
      first_ordered_seen = true;
    }
    if(matches(json_object_get(ex, "request"), method, path, query,
               headers, body, len, gap)) {
      resp = json_object_get(ex, "response");
      memmove(left + i, left + i + 1, (n_left - i - 1) * sizeof(*left));
      n_left--;
      break;
    }
  }
  if(!resp)
    json_array_append(unexpected, rec);
  pthread_mutex_unlock(&mu);
  json_decref(rec);
  return resp;
}

/* ------------------------------------------------------------ MHD */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
  Req *r = xmalloc(sizeof(*r));

  memset(r, 0, sizeof(*r));
  r->uri = xstrndup(uri, strlen(uri));
  return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **cc,
                         enum MHD_RequestTerminationCode toe)
{
  Req *r = *cc;

  if(r) {
    free(r->uri);
    free(r->body);
    free(r);
    *cc = NULL;
  }
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
  json_t *h = cls;
  char lower[256];
  size_t i;

  for(i = 0; key[i] && i + 1 < sizeof(lower); i++)
    lower[i] = (char)tolower((unsigned char)key[i]);
  lower[i] = '\0';
  json_object_set_new(h, lower, text_value(value ? value : "",
                                           value ? strlen(value) : 0));
  return MHD_YES;
}

static void sleep_ms(long ms)
{
  struct timespec ts;

  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while(nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Expands a time template in a response header value, so a script can
 * say "resets in 2 s" without knowing when it runs:
 *   {{now+N}}     epoch seconds, N seconds from now (N may be negative)
 *   {{now_ms+N}}  epoch milliseconds
 *   {{date+N}}    an HTTP-date (RFC 7231 IMF-fixdate)
 * Anything else is returned unchanged.  Returns a malloc'd string. */
static char *expand_time(const char *v)
{
  char kind[16], out[64];
  long off = 0;
  int n = 0;
  struct timespec ts;
  time_t t;
  struct tm tm;

  if(strncmp(v, "{{", 2) != 0 ||
     sscanf(v + 2, "%15[a-z_]%n", kind, &n) != 1)
    return xstrndup(v, strlen(v));
  v += 2 + n;
  if((*v == '+' || *v == '-') && sscanf(v, "%ld%n", &off, &n) == 1)
    v += n;
  if(strcmp(v, "}}") != 0)
    die("bad time template in a response header");
  clock_gettime(CLOCK_REALTIME, &ts);
  if(strcmp(kind, "now") == 0)
    snprintf(out, sizeof(out), "%lld", (long long)ts.tv_sec + off);
  else if(strcmp(kind, "now_ms") == 0)
    snprintf(out, sizeof(out), "%lld",
             ((long long)ts.tv_sec + off) * 1000 + ts.tv_nsec / 1000000);
  else if(strcmp(kind, "date") == 0) {
    t = ts.tv_sec + off;
    gmtime_r(&t, &tm);
    strftime(out, sizeof(out), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  else
    die("unknown time template in a response header");
  return xstrndup(out, strlen(out));
}

static enum MHD_Result send_reply(struct MHD_Connection *c, json_t *resp)
{
  struct MHD_Response *mr;
  const char *ctype = NULL, *k;
  char *data = NULL;
  size_t len = 0;
  json_t *v, *hdrs;
  long status;
  bool have_ct = false;
  enum MHD_Result ret;

  if(!resp)
    resp = unmatched;
  status = json_is_integer(json_object_get(resp, "status"))
           ? (long)json_integer_value(json_object_get(resp, "status"))
           : 200;
  v = json_object_get(resp, "delay_ms");
  if(json_is_number(v) && json_number_value(v) > 0)
    sleep_ms((long)json_number_value(v));
  if((v = json_object_get(resp, "body_hex")) && json_is_string(v)) {
    /* Raw bytes, e.g. invalid UTF-8 for the non-text response test. */
    const char *h = json_string_value(v);
    size_t i, n = strlen(h) / 2;
    unsigned int byte;
    data = xmalloc(n + 1);
    for(i = 0; i < n; i++) {
      if(sscanf(h + 2 * i, "%2x", &byte) != 1)
        die("body_hex is not hexadecimal");
      data[i] = (char)byte;
    }
    len = n;
    ctype = "application/octet-stream";
  }
  else if((v = json_object_get(resp, "body_text")) && json_is_string(v)) {
    data = xstrndup(json_string_value(v), json_string_length(v));
    len = json_string_length(v);
    ctype = "text/plain";
  }
  else if((v = json_object_get(resp, "body"))) {
    data = json_dumps(v, JSON_ENCODE_ANY);
    if(!data)
      die("cannot serialise a response body");
    len = strlen(data);
    ctype = "application/json";
  }
  if(status == 204 || status == 304 || status < 200) {
    free(data);
    data = NULL;
    len = 0;
    ctype = NULL;
  }
  mr = MHD_create_response_from_buffer(len, data ? data : (void *)"",
                                       data ? MHD_RESPMEM_MUST_FREE
                                            : MHD_RESPMEM_PERSISTENT);
  if(!mr)
    die("cannot create a response");
  hdrs = json_object_get(resp, "headers");
  json_object_foreach(hdrs, k, v) {
    char *text = json_is_string(v) ? expand_time(json_string_value(v))
                                   : json_dumps(v, JSON_ENCODE_ANY);
    if(strcasecmp(k, "content-type") == 0)
      have_ct = true;
    MHD_add_response_header(mr, k, text ? text : "");
    free(text);
  }
  if(ctype && !have_ct)
    MHD_add_response_header(mr, "Content-Type", ctype);
  ret = MHD_queue_response(c, (unsigned int)status, mr);
  MHD_destroy_response(mr);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload, size_t *upload_size,
                                  void **cc)
{
  Req *r = *cc;
  const char *q, *hash;
  char *path;
  json_t *query, *headers, *rec, *resp;

  if(!r)
    return MHD_NO;
  if(!r->started) {
    r->started = true;
    return MHD_YES;
  }
  if(*upload_size) {
    if(r->len + *upload_size + 1 > r->cap) {
      r->cap = (r->len + *upload_size + 1) * 2;
      r->body = realloc(r->body, r->cap);
      if(!r->body)
        die("out of memory");
    }
    memcpy(r->body + r->len, upload, *upload_size);
    r->len += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }

  hash = strchr(r->uri, '#');
  if(hash)
    *(char *)hash = '\0';
  q = strchr(r->uri, '?');
  path = q ? xstrndup(r->uri, (size_t)(q - r->uri))
           : xstrndup(r->uri, strlen(r->uri));
  query = parse_query(q ? q + 1 : NULL);
  headers = json_object();
  MHD_get_connection_values(c, MHD_HEADER_KIND, add_header, headers);
  rec = json_object();
  json_object_set_new(rec, "method", json_string(method));
  json_object_set_new(rec, "path", text_value(path, strlen(path)));
  json_object_set(rec, "query", query);
  json_object_set(rec, "headers", headers);
  json_object_set_new(rec, "body", text_value(r->body ? r->body : "",
                                              r->len));
  resp = take(rec, method, path, query, headers, r->body, r->len);
  json_decref(query);
  json_decref(headers);
  free(path);
  return send_reply(c, resp);
}

/* --------------------------------------------------------- main */
static int write_file(const char *path, const char *data)
{
  char tmp[4096];
  FILE *f;

  if(snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
    return -1;
  f = fopen(tmp, "w");
  if(!f)
    return -1;
  if(fputs(data, f) == EOF) {
    fclose(f);
    return -1;
  }
  if(fclose(f) != 0)
    return -1;
  return rename(tmp, path);
}

static int load_script(const char *path)
{
  json_error_t err;
  json_t *ex;
  size_t i, t, times, n = 0;

  script = json_load_file(path, 0, &err);
  if(!script) {
    fprintf(stderr, "fakeapi: %s:%d: %s\n", path, err.line, err.text);
    return -1;
  }
  if(!json_is_array(script)) {
    fprintf(stderr, "fakeapi: %s: expected an array of exchanges\n", path);
    return -1;
  }
  json_array_foreach(script, i, ex) {
    json_t *tv = json_object_get(ex, "times");
    if(!json_is_object(ex) || !json_is_object(json_object_get(ex,
                                                              "request"))) {
      fprintf(stderr, "fakeapi: %s: exchange %zu needs a request\n", path,
              i);
      return -1;
    }
    if(!json_is_object(json_object_get(ex, "response")))
      json_object_set_new(ex, "response", json_object());
    n += json_is_integer(tv) && json_integer_value(tv) >= 0
         ? (size_t)json_integer_value(tv) : 1;
  }
  left = xmalloc((n + 1) * sizeof(*left));
  json_array_foreach(script, i, ex) {
    json_t *tv = json_object_get(ex, "times");
    times = json_is_integer(tv) && json_integer_value(tv) >= 0
            ? (size_t)json_integer_value(tv) : 1;
    for(t = 0; t < times; t++) {
      left[n_left].index = i;
      left[n_left].ex = ex;
      n_left++;
    }
  }
  return 0;
}

static int write_report(const char *path)
{
  json_t *rep = json_object(), *pending = json_array();
  size_t i, last = (size_t)-1;
  char *text;
  int rc;

  pthread_mutex_lock(&mu);
  for(i = 0; i < n_left; i++) {
    if(json_is_true(json_object_get(left[i].ex, "optional")))
      continue;
    if(left[i].index != last)
      json_array_append_new(pending,
                            json_integer((json_int_t)left[i].index));
    last = left[i].index;
  }
  json_object_set(rep, "requests", seen);
  json_object_set(rep, "unexpected", unexpected);
  json_object_set_new(rep, "pending", pending);
  pthread_mutex_unlock(&mu);
  text = json_dumps(rep, JSON_INDENT(1));
  json_decref(rep);
  if(!text)
    return -1;
  rc = write_file(path, text);
  free(text);
  return rc;
}

static void usage(void)
{
  fprintf(stderr, "usage: fakeapi --script exchanges.json --port-file FILE"
                  " --report REPORT.json [--port N]\n");
  exit(2);
}

int main(int argc, char **argv)
{
  const char *script_path = NULL, *port_file = NULL, *report = NULL;
  long port = 0;
  struct sockaddr_in addr;
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *info;
  sigset_t set;
  char buf[32], *end;
  int i, sig;

  start_ms = mono_ms();
  for(i = 1; i < argc; i++) {
    if(i + 1 >= argc)
      usage();
    if(strcmp(argv[i], "--script") == 0)
      script_path = argv[++i];
    else if(strcmp(argv[i], "--port-file") == 0)
      port_file = argv[++i];
    else if(strcmp(argv[i], "--report") == 0)
      report = argv[++i];
    else if(strcmp(argv[i], "--port") == 0) {
      port = strtol(argv[++i], &end, 10);
      if(*end || port < 0 || port > 65535)
        usage();
    }
    else
      usage();
  }
  if(!script_path || !port_file || !report)
    usage();
  if(load_script(script_path) != 0)
    return 2;
  seen = json_array();
  unexpected = json_array();
  unmatched = json_pack("{si s{ss}}", "status", 599, "body", "error",
                        "unexpected request");

  /* Block the stop signals in every thread; main waits for them. */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
                       MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                       (uint16_t)port, NULL, NULL, on_request, NULL,
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                       MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
                       MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
                       MHD_OPTION_END);
  if(!d) {
    fprintf(stderr, "fakeapi: cannot listen on 127.0.0.1:%ld\n", port);
    return 2;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if(!info || !info->port) {
    fprintf(stderr, "fakeapi: cannot tell the bound port\n");
    MHD_stop_daemon(d);
    return 2;
  }
  snprintf(buf, sizeof(buf), "%u\n", (unsigned)info->port);
  if(write_file(port_file, buf) != 0) {
    fprintf(stderr, "fakeapi: cannot write %s\n", port_file);
    MHD_stop_daemon(d);
    return 2;
  }
  if(sigwait(&set, &sig) != 0)
    die("sigwait failed");
  MHD_stop_daemon(d);
  if(write_report(report) != 0) {
    fprintf(stderr, "fakeapi: cannot write %s\n", report);
    return 2;
  }
  json_decref(seen);
  json_decref(unexpected);
  json_decref(script);
  json_decref(unmatched);
  free(left);
  return 0;
}
