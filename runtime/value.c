/* value.c -- JSON value semantics of SPEC §5: constructors, field and
 * index access, operators, truthiness, `is`, the builtins of §5.4, text
 * conversion, our own JSON serialiser, schema conformance (§4.12) and
 * content-hash keys (§7.1).  The builtins that need runs or scopes
 * (status, header, webhookUrl, lookup) live in exec.c.
 *
 * Ownership, module-wide (jansson vocabulary): every json_t * argument
 * is BORROWED unless the comment says "steals"; every json_t * result
 * and every *out is a NEW reference; NULL stands for "missing" (§5.1).
 * Functions returning char * return rq_malloc'd text the caller frees.
 */
#include "reqon.h"
#include "rq_util.h"
#include "rq_value.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Magnitude below which an integral double is written as an integer. */
#define INT_LIMIT 9007199254740992.0   /* 2^53 */

/* RqBufs here are unbounded (max 0), so appends cannot fail. */
static void put(RqBuf *b, const char *p, size_t n)
{
  (void)rq_buf_add(b, p, n);
}

static void put_str(RqBuf *b, const char *s)
{
  put(b, s, strlen(s));
}

static char *buf_take(RqBuf *b)
{
  if (!b->data)
    return rq_strdup("");
  return b->data;
}

/* ------------------------------------------------------ constructors */

json_t *rq_num(double v)
{
  if (!isfinite(v))          /* callers check first; never build inf */
    return json_null();
  if (v == floor(v) && fabs(v) < INT_LIMIT)
    return json_integer((json_int_t)v);
  return json_real(v);
}

json_t *rq_str(const char *s, size_t n)
{
  return json_stringn_nocheck(s ? s : "", s ? n : 0);
}

json_t *rq_bool(int b)
{
  return json_boolean(b);
}

json_t *rq_null(void)
{
  return json_null();
}

json_t *rq_ref(json_t *v)
{
  return v ? json_incref(v) : NULL;
}

void rq_release(json_t **t, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    json_decref(t[i]);
    t[i] = NULL;
  }
}

json_t *rq_array(void)
{
  return json_array();
}

void rq_array_add(json_t *arr, json_t *v)
{
  json_array_append_new(arr, v ? v : json_null());
}

json_t *rq_object(void)
{
  return json_object();
}

void rq_object_add(json_t *obj, const char *key, size_t n, json_t *v)
{
  if (v)
    json_object_setn_new_nocheck(obj, key, n, v);
}

/* ------------------------------------------------------ type names */

const char *rqi_type_name(const json_t *v)
{
  if (!v)
    return "missing";
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "null";
}

/* Messages of §5.3 call missing "null" (it behaves like null). */
static const char *op_type_name(const json_t *v)
{
  return v ? rqi_type_name(v) : "null";
}

static bool is_nullish(const json_t *v)
{
  return !v || json_is_null(v);
}

/* ------------------------------------------------------ numbers */

/* Formats d like JavaScript's Number#toString: the shortest digit string
 * that reads back as d (%.15g..%.17g, first exact), fixed notation for
 * exponents in [-7, 21), else 1.5e+300.  out holds >= 40 bytes. */
static void format_double(double d, char *out)
{
  char tmp[40];
  if (d == 0) {
    memcpy(out, "0", 2);
    return;
  }
  /* For normal doubles, 15 digits with trailing zeros dropped is already
   * the shortest form when it reads back; subnormals have less precision
   * and need the full search. */
  for (int p = fabs(d) < DBL_MIN ? 1 : 15; p <= 17; p++) {
    snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
    if (strtod(tmp, NULL) == d)
      break;
  }
  /* tmp is [-]D.DDDDe[+-]XX: collect the digits without trailing zeros. */
  char dig[20];
  size_t k = 0;
  const char *s = tmp;
  bool neg = *s == '-';
  if (neg)
    s++;
  for (; *s && *s != 'e'; s++)
    if (*s >= '0' && *s <= '9' && k < sizeof dig - 1)
      dig[k++] = *s;
  while (k > 1 && dig[k - 1] == '0')
    k--;
  dig[k] = '\0';
  int e = *s == 'e' ? (int)strtol(s + 1, NULL, 10) : 0;
  int n = e + 1;              /* d = 0.DIGITS x 10^n */
  size_t o = 0;
  if (neg)
    out[o++] = '-';
  if ((int)k <= n && n <= 21) {
    memcpy(out + o, dig, k);
    o += k;
    for (int i = 0; i < n - (int)k; i++)
      out[o++] = '0';
  } else if (0 < n && n <= 21) {
    memcpy(out + o, dig, (size_t)n);
    o += (size_t)n;
    out[o++] = '.';
    memcpy(out + o, dig + n, k - (size_t)n);
    o += k - (size_t)n;
  } else if (-6 < n && n <= 0) {
    out[o++] = '0';
    out[o++] = '.';
    for (int i = 0; i < -n; i++)
      out[o++] = '0';
    memcpy(out + o, dig, k);
    o += k;
  } else {
    out[o++] = dig[0];
    if (k > 1) {
      out[o++] = '.';
      memcpy(out + o, dig + 1, k - 1);
      o += k - 1;
    }
    o += (size_t)snprintf(out + o, 8, "e%c%d", n - 1 < 0 ? '-' : '+',
                          abs(n - 1));
  }
  out[o] = '\0';
}

static void put_number(RqBuf *b, const json_t *v)
{
  char tmp[40];
  if (json_is_integer(v))
    snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else
    format_double(json_real_value(v), tmp);
  put_str(b, tmp);
}

static bool is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}

static bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}

/* Number conversion of a string (§5.3): the regex
 * \s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*, and blank means 0. */
static bool string_to_number(const char *s, size_t n, double *out)
{
  size_t i = 0;
  while (i < n && is_space(s[i]))
    i++;
  size_t start = i;
  if (i == n) {
    *out = 0;
    return true;
  }
  if (s[i] == '+' || s[i] == '-')
    i++;
  size_t int_digits = 0;
  size_t frac_digits = 0;
  while (i < n && is_digit(s[i])) {
    i++;
    int_digits++;
  }
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && is_digit(s[i])) {
      i++;
      frac_digits++;
    }
  }
  if (int_digits == 0 && frac_digits == 0)
    return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    size_t exp_digits = 0;
    while (i < n && is_digit(s[i])) {
      i++;
      exp_digits++;
    }
    if (exp_digits == 0)
      return false;
  }
  size_t end = i;
  while (i < n && is_space(s[i]))
    i++;
  if (i != n)
    return false;
  char *copy = rq_strndup(s + start, end - start);
  *out = strtod(copy, NULL);   /* the syntax was checked above */
  rq_free(copy);
  return true;
}

bool rqi_to_number(const json_t *v, double *out)
{
  if (!v)
    return false;
  switch (json_typeof(v)) {
  case JSON_INTEGER:
  case JSON_REAL:
    *out = json_number_value(v);
    return true;
  case JSON_TRUE:
    *out = 1;
    return true;
  case JSON_FALSE:
    *out = 0;
    return true;
  case JSON_STRING:
    return string_to_number(json_string_value(v), json_string_length(v),
                            out);
  default:
    return false;
  }
}

static bool is_integral(const json_t *v)
{
  if (json_is_integer(v))
    return true;
  if (!json_is_real(v))
    return false;
  double d = json_real_value(v);
  return d == floor(d);
}

/* ------------------------------------------------------ serialisation */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when the
 * bytes there are not valid UTF-8 (overlong, surrogate, > U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return len;
}

/* JSON string literal, escaped like JSON.stringify: ", \, \b \f \n \r \t
 * and other controls as \u00xx; valid UTF-8 is kept as is.  DECIDED
 * HERE: each byte that is not part of valid UTF-8 is written as \ufffd,
 * so the output is always valid JSON and valid UTF-8. */
static void put_json_string(RqBuf *b, const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t run = 0;              /* start of the pending verbatim bytes */
  size_t i = 0;
  put(b, "\"", 1);
  while (i < n) {
    unsigned c = s[i];
    const char *esc = NULL;
    char u[8];
    size_t len = 1;
    if (c == '"')
      esc = "\\\"";
    else if (c == '\\')
      esc = "\\\\";
    else if (c == '\b')
      esc = "\\b";
    else if (c == '\f')
      esc = "\\f";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '\r')
      esc = "\\r";
    else if (c == '\t')
      esc = "\\t";
    else if (c < 0x20) {
      snprintf(u, sizeof u, "\\u%04x", c);
      esc = u;
    } else if (c >= 0x80) {
      len = utf8_len(s + i, n - i);
      if (len == 0) {
        esc = "\\ufffd";
        len = 1;
      }
    }
    if (esc) {
      put(b, str + run, i - run);
      put_str(b, esc);
      run = i + len;
    }
    i += len;
  }
  put(b, str + run, n - run);
  put(b, "\"", 1);
}

static void put_indent(RqBuf *b, int indent, int depth)
{
  static const char spaces[] = "                                ";
  int n = indent * depth;
  put(b, "\n", 1);
  while (n > 0) {
    int k = n < (int)sizeof spaces - 1 ? n : (int)sizeof spaces - 1;
    put(b, spaces, (size_t)k);
    n -= k;
  }
}

typedef struct {
  const char *key;
  size_t len;
  json_t *value;
} Field;

static int field_cmp(const void *pa, const void *pb)
{
  const Field *a = pa;
  const Field *b = pb;
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->key, b->key, n);
  if (c)
    return c;
  return a->len < b->len ? -1 : a->len > b->len;
}

/* Writes v; `sorted` orders object keys bytewise (canonical JSON). */
static void dump(RqBuf *b, const json_t *v, int indent, int depth,
                 bool sorted)
{
  if (!v) {
    put_str(b, "null");
    return;
  }
  switch (json_typeof(v)) {
  case JSON_NULL: put_str(b, "null"); return;
  case JSON_TRUE: put_str(b, "true"); return;
  case JSON_FALSE: put_str(b, "false"); return;
  case JSON_INTEGER:
  case JSON_REAL: put_number(b, v); return;
  case JSON_STRING:
    put_json_string(b, json_string_value(v), json_string_length(v));
    return;
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    if (n == 0) {
      put_str(b, "[]");
      return;
    }
    put(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
      if (i)
        put(b, ",", 1);
      if (indent)
        put_indent(b, indent, depth + 1);
      dump(b, json_array_get(v, i), indent, depth + 1, sorted);
    }
    if (indent)
      put_indent(b, indent, depth);
    put(b, "]", 1);
    return;
  }
  case JSON_OBJECT: {
    size_t n = json_object_size(v);
    if (n == 0) {
      put_str(b, "{}");
      return;
    }
    Field *f = rq_malloc(n * sizeof *f);
    size_t k = 0;
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)v, key, klen, val) {
      if (k < n) {
        f[k].key = key;
        f[k].len = klen;
        f[k].value = val;
        k++;
      }
    }
    if (sorted)
      qsort(f, k, sizeof *f, field_cmp);
    put(b, "{", 1);
    for (size_t i = 0; i < k; i++) {
      if (i)
        put(b, ",", 1);
      if (indent)
        put_indent(b, indent, depth + 1);
      put_json_string(b, f[i].key, f[i].len);
      put_str(b, indent ? ": " : ":");
      dump(b, f[i].value, indent, depth + 1, sorted);
    }
    rq_free(f);
    if (indent)
      put_indent(b, indent, depth);
    put(b, "}", 1);
    return;
  }
  }
}

json_t *rqi_copy(const json_t *v)
{
  if (!json_is_object(v))
    return json_copy((json_t *)v);
  json_t *out = json_object();
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)v, key, klen, val)
    json_object_setn_nocheck(out, key, klen, val);
  return out;
}

json_t *rqi_deep_copy(const json_t *v)
{
  if (json_is_array(v)) {
    json_t *out = json_array();
    size_t i;
    json_t *el;
    json_array_foreach(v, i, el)
      json_array_append_new(out, rqi_deep_copy(el));
    return out;
  }
  if (!json_is_object(v))
    return json_copy((json_t *)v);   /* scalars */
  json_t *out = json_object();
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)v, key, klen, val)
    json_object_setn_new_nocheck(out, key, klen, rqi_deep_copy(val));
  return out;
}

char *rqi_dumps(const json_t *v, int indent)
{
  RqBuf b = RQ_BUF_INIT(0);
  dump(&b, v, indent < 0 ? 0 : indent, 0, false);
  return buf_take(&b);
}

char *rqi_compact(const json_t *v, size_t max)
{
  char *s = rqi_dumps(v, 0);
  size_t len = strlen(s);
  if (len <= max)
    return s;
  /* Cut at a UTF-8 boundary and mark the cut with "...". */
  size_t cut = max >= 3 ? max - 3 : 0;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
    cut--;
  if (max >= 3) {
    memcpy(s + cut, "...", 3);
    cut += 3;
  }
  s[cut] = '\0';
  return s;
}

/* Text conversion of §5.3 appended to b. */
static void put_text(RqBuf *b, const json_t *v)
{
  if (is_nullish(v))
    return;
  switch (json_typeof(v)) {
  case JSON_STRING:
    put(b, json_string_value(v), json_string_length(v));
    return;
  case JSON_INTEGER:
  case JSON_REAL:
    put_number(b, v);
    return;
  case JSON_TRUE:
    put_str(b, "true");
    return;
  case JSON_FALSE:
    put_str(b, "false");
    return;
  default:
    dump(b, v, 0, 0, false);
    return;
  }
}

char *rqi_text_n(const json_t *v, size_t *n)
{
  RqBuf b = RQ_BUF_INIT(0);
  put_text(&b, v);
  *n = b.len;
  return buf_take(&b);
}

char *rqi_text(const json_t *v)
{
  size_t n;
  return rqi_text_n(v, &n);
}

/* A new string value holding the text of v. */
static json_t *text_value(const json_t *v)
{
  if (json_is_string(v))
    return json_incref((json_t *)v);
  RqBuf b = RQ_BUF_INIT(0);
  put_text(&b, v);
  json_t *s = rq_str(b.data, b.len);
  rq_buf_free(&b);
  return s;
}

/* ------------------------------------------------------ equality */

bool rqi_json_equal(const json_t *a, const json_t *b)
{
  if (is_nullish(a) || is_nullish(b))
    return is_nullish(a) && is_nullish(b);
  if (json_is_integer(a) && json_is_integer(b))
    return json_integer_value(a) == json_integer_value(b);
  if (json_is_number(a) && json_is_number(b))
    return json_number_value(a) == json_number_value(b);
  if (json_typeof(a) != json_typeof(b))
    return false;
  switch (json_typeof(a)) {
  case JSON_STRING:
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b),
                  json_string_length(a)) == 0;
  case JSON_ARRAY: {
    size_t n = json_array_size(a);
    if (n != json_array_size(b))
      return false;
    for (size_t i = 0; i < n; i++)
      if (!rqi_json_equal(json_array_get(a, i), json_array_get(b, i)))
        return false;
    return true;
  }
  case JSON_OBJECT: {
    if (json_object_size(a) != json_object_size(b))
      return false;
    const char *key;
    size_t klen;
    json_t *va;
    json_object_keylen_foreach((json_t *)a, key, klen, va) {
      json_t *vb = json_object_getn(b, key, klen);
      if (!vb || !rqi_json_equal(va, vb))
        return false;
    }
    return true;
  }
  default:
    return true;               /* true, false, null: same type */
  }
}

/* ------------------------------------------------------ access */

json_t *rq_field(const json_t *base, const char *name)
{
  if (!json_is_object(base))
    return NULL;
  return rq_ref(json_object_get(base, name));
}

json_t *rq_subject_field(const RqEnv *env, const char *name)
{
  return rq_field(env->subject, name);
}

json_t *rq_index(const json_t *base, const json_t *idx)
{
  if (json_is_array(base)) {
    if (!json_is_number(idx) || !is_integral(idx))
      return NULL;
    double d = json_number_value(idx);
    double n = (double)json_array_size(base);
    if (d < 0)
      d += n;
    if (d < 0 || d >= n)
      return NULL;
    return rq_ref(json_array_get(base, (size_t)d));
  }
  if (json_is_object(base) && idx) {
    size_t klen;
    char *key = rqi_text_n(idx, &klen);
    json_t *v = rq_ref(json_object_getn(base, key, klen));
    rq_free(key);
    return v;
  }
  return NULL;
}

json_t *rqi_path_get(const json_t *v, const char *dotted)
{
  const char *p = dotted;
  while (v) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (json_is_object(v)) {
      v = json_object_getn(v, p, len);
    } else if (json_is_array(v) && len > 0 && len < 10) {
      size_t i = 0;
      for (size_t k = 0; k < len; k++) {
        if (!is_digit(p[k]))
          return NULL;
        i = i * 10 + (size_t)(p[k] - '0');
      }
      v = json_array_get(v, i);
    } else {
      return NULL;
    }
    if (!dot)
      break;
    p = dot + 1;
  }
  return (json_t *)v;
}

/* ------------------------------------------------------ operators */

bool rq_truthy(const json_t *v)
{
  if (!v)
    return false;
  switch (json_typeof(v)) {
  case JSON_NULL:
  case JSON_FALSE:
    return false;
  case JSON_INTEGER:
  case JSON_REAL:
    return json_number_value(v) != 0;
  case JSON_STRING:
    return json_string_length(v) != 0;
  default:
    return true;
  }
}

static const char *op_symbol(RqOp op)
{
  switch (op) {
  case RQ_OP_ADD: return "+";
  case RQ_OP_SUB: return "-";
  case RQ_OP_MUL: return "*";
  case RQ_OP_DIV: return "/";
  case RQ_OP_MOD: return "%";
  case RQ_OP_EQ: return "==";
  case RQ_OP_NE: return "!=";
  case RQ_OP_LT: return "<";
  case RQ_OP_LE: return "<=";
  case RQ_OP_GT: return ">";
  case RQ_OP_GE: return ">=";
  case RQ_OP_NEG: return "-";
  case RQ_OP_PLUS: return "+";
  case RQ_OP_NOT: return "not";
  }
  return "?";
}

static int operand(const RqEnv *env, RqAt at, RqOp op, const json_t *v,
                   double *d)
{
  if (rqi_to_number(v, d))
    return 0;
  return rq_fail(env, at, "cannot apply '%s' to %s", op_symbol(op),
                 op_type_name(v));
}

/* Stores a numeric result, refusing inf and NaN. */
static int num_result(const RqEnv *env, RqAt at, double d, json_t **out)
{
  if (!isfinite(d))
    return rq_fail(env, at, "arithmetic overflow");
  *out = rq_num(d);
  return 0;
}

int rq_unop(const RqEnv *env, RqAt at, RqOp op, const json_t *a,
            json_t **out)
{
  double d;
  *out = NULL;
  if (op == RQ_OP_NOT) {
    *out = json_boolean(!rq_truthy(a));
    return 0;
  }
  int rc = operand(env, at, op, a, &d);
  if (rc)
    return rc;
  return num_result(env, at, op == RQ_OP_NEG ? -d : d, out);
}

/* Ordering of §5.3; *res is <0, 0 or >0. */
static int compare(const RqEnv *env, RqAt at, const json_t *a,
                   const json_t *b, int *res)
{
  const json_t *both[2] = { a, b };
  for (int i = 0; i < 2; i++) {
    const json_t *v = both[i];
    if (is_nullish(v) || json_is_array(v) || json_is_object(v))
      return rq_fail(env, at, "cannot compare %s", op_type_name(v));
  }
  double da, db;
  bool na = rqi_to_number(a, &da);
  bool nb = rqi_to_number(b, &db);
  if (json_is_string(a) && json_is_string(b) && !(na && nb)) {
    size_t la = json_string_length(a);
    size_t lb = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b),
                   la < lb ? la : lb);
    *res = c ? c : (la < lb ? -1 : la > lb);
    return 0;
  }
  if (!na || !nb)              /* a number against a non-numeric string */
    return rq_fail(env, at, "cannot compare string");
  *res = da < db ? -1 : da > db;
  return 0;
}

static int add(const RqEnv *env, RqAt at, const json_t *a, const json_t *b,
               json_t **out)
{
  if (json_is_string(a) || json_is_string(b)) {
    RqBuf buf = RQ_BUF_INIT(0);
    put_text(&buf, a);
    put_text(&buf, b);
    *out = rq_str(buf.data, buf.len);
    rq_buf_free(&buf);
    return 0;
  }
  double da, db;
  int rc = operand(env, at, RQ_OP_ADD, a, &da);
  if (!rc)
    rc = operand(env, at, RQ_OP_ADD, b, &db);
  if (rc)
    return rc;
  return num_result(env, at, da + db, out);
}

int rq_binop(const RqEnv *env, RqAt at, RqOp op, const json_t *a,
             const json_t *b, json_t **out)
{
  double da, db;
  int rc, c;
  *out = NULL;
  switch (op) {
  case RQ_OP_ADD:
    return add(env, at, a, b, out);
  case RQ_OP_EQ:
  case RQ_OP_NE:
    *out = json_boolean(rqi_json_equal(a, b) == (op == RQ_OP_EQ));
    return 0;
  case RQ_OP_LT:
  case RQ_OP_LE:
  case RQ_OP_GT:
  case RQ_OP_GE:
    rc = compare(env, at, a, b, &c);
    if (rc)
      return rc;
    *out = json_boolean(op == RQ_OP_LT ? c < 0 : op == RQ_OP_LE ? c <= 0
                        : op == RQ_OP_GT ? c > 0 : c >= 0);
    return 0;
  case RQ_OP_SUB:
  case RQ_OP_MUL:
  case RQ_OP_DIV:
  case RQ_OP_MOD:
    rc = operand(env, at, op, a, &da);
    if (!rc)
      rc = operand(env, at, op, b, &db);
    if (rc)
      return rc;
    if ((op == RQ_OP_DIV || op == RQ_OP_MOD) && db == 0)
      return rq_fail(env, at, "division by zero");
    return num_result(env, at, op == RQ_OP_SUB ? da - db
                      : op == RQ_OP_MUL ? da * db
                      : op == RQ_OP_DIV ? da / db : fmod(da, db), out);
  default:
    return rq_unop(env, at, op, a, out);
  }
}

/* ------------------------------------------------------ types */

static bool is_date_string(const json_t *v)
{
  double ms;
  return json_is_string(v) &&
         rqi_util_parse_iso(json_string_value(v), json_string_length(v),
                            true, &ms);
}

bool rqi_type_test(RqType t, const json_t *v)
{
  switch (t) {
  case RQ_TY_ANY: return true;
  case RQ_TY_STRING: return json_is_string(v);
  case RQ_TY_NUMBER: return json_is_number(v);
  case RQ_TY_INT: return is_integral(v);
  case RQ_TY_BOOLEAN: return json_is_boolean(v);
  case RQ_TY_DATE: return is_date_string(v);
  case RQ_TY_ARRAY: return json_is_array(v);
  case RQ_TY_OBJECT: return json_is_object(v);
  case RQ_TY_NULL: return is_nullish(v);
  case RQ_TY_UNDEFINED: return v == NULL;
  }
  return false;
}

json_t *rq_is(const json_t *v, RqType ty)
{
  return json_boolean(rqi_type_test(ty, v));
}

bool rqi_conforms(const RqSchemaDef *s, const json_t *v)
{
  if (!json_is_object(v))
    return false;
  for (size_t i = 0; i < s->n_fields; i++) {
    const RqSchemaField *f = &s->fields[i];
    json_t *fv = json_object_get(v, f->name);
    if (is_nullish(fv)) {
      if (!f->optional)
        return false;
    } else if (!rqi_type_test(f->type, fv)) {
      return false;
    }
  }
  return true;
}

/* ------------------------------------------------------ building */

int rq_object_spread(const RqEnv *env, RqAt at, json_t *obj,
                     const json_t *v)
{
  if (is_nullish(v))
    return 0;
  if (!json_is_object(v))
    return rq_fail(env, at, "cannot spread %s", rqi_type_name(v));
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)v, key, klen, val)
    json_object_setn_nocheck(obj, key, klen, val);
  return 0;
}

void rq_str_append(json_t *s, const char *lit, size_t n)
{
  if (!json_is_string(s) || n == 0)
    return;
  size_t len = json_string_length(s);
  char *p = rq_malloc(len + n + 1);
  memcpy(p, json_string_value(s), len);
  memcpy(p + len, lit, n);
  json_string_setn_nocheck(s, p, len + n);
  rq_free(p);
}

void rq_str_append_enc(json_t *s, json_t *v)
{
  static const char hex[] = "0123456789ABCDEF";
  RqBuf b = RQ_BUF_INIT(0);
  size_t n;
  char *text = rqi_text_n(v, &n);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
        c == '-' || c == '.' || c == '_' || c == '~') {
      put(&b, text + i, 1);
    } else {
      char e[3] = { '%', hex[c >> 4], hex[c & 15] };
      put(&b, e, 3);
    }
  }
  if (b.len)
    rq_str_append(s, b.data, b.len);
  rq_buf_free(&b);
  rq_free(text);
  json_decref(v);
}

/* ------------------------------------------------------ builtins */

static const json_t *arg(int argc, json_t *const *argv, int i)
{
  return i < argc ? argv[i] : NULL;
}

/* A number argument; null, missing and non-numeric values fail. */
static int num_arg(const RqEnv *env, RqAt at, const char *fn,
                   const json_t *v, double *d)
{
  if (rqi_to_number(v, d))
    return 0;
  return rq_fail(env, at, "builtin %s: expected a number, got %s", fn,
                 op_type_name(v));
}

static int str_arg_err(const RqEnv *env, RqAt at, const char *fn,
                       const json_t *v)
{
  return rq_fail(env, at, "builtin %s: expected a string, got %s", fn,
                 op_type_name(v));
}

int rq_bi_length(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                 json_t **out)
{
  const json_t *v = arg(argc, argv, 0);
  size_t n = 0;
  if (json_is_array(v)) {
    n = json_array_size(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; i < len; i++)
      n += ((unsigned char)s[i] & 0xC0) != 0x80;
  }
  *out = json_integer((json_int_t)n);
  return 0;
}

int rq_bi_count(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  const json_t *v = arg(argc, argv, 0);
  *out = json_integer(json_is_array(v) ? (json_int_t)json_array_size(v) : 0);
  return 0;
}

/* Converts element i of an aggregate builtin's array. */
static int elem_num(const RqEnv *env, RqAt at, const char *fn,
                    const json_t *e, size_t i, double *d)
{
  if (rqi_to_number(e, d))
    return 0;
  return rq_fail(env, at, "builtin %s: element %zu is %s, expected a number",
                 fn, i, op_type_name(e));
}

int rq_bi_sum(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
              json_t **out)
{
  const json_t *a = arg(argc, argv, 0);
  *out = NULL;
  if (!json_is_array(a))
    return rq_fail(env, at, "builtin sum: expected an array, got %s",
                   op_type_name(a));
  double sum = 0;
  for (size_t i = 0; i < json_array_size(a); i++) {
    double d;
    int rc = elem_num(env, at, "sum", json_array_get(a, i), i, &d);
    if (rc)
      return rc;
    sum += d;
  }
  return num_result(env, at, sum, out);
}

/* min and max: one array argument, or two or more numbers.  The result
 * is the winning element itself when it is a number (so big integers
 * keep their exact value), else its number conversion. */
static int min_max(const RqEnv *env, RqAt at, const char *fn, bool want_max,
                   int argc, json_t *const *argv, json_t **out)
{
  json_t *const *items = argv;
  size_t n = (size_t)argc;
  const json_t *a = arg(argc, argv, 0);
  *out = NULL;
  if (argc == 1) {
    if (is_nullish(a)) {
      *out = json_null();
      return 0;
    }
    if (!json_is_array(a))
      return rq_fail(env, at, "builtin %s: expected an array or at least 2 "
                     "numbers, got %s", fn, op_type_name(a));
    n = json_array_size(a);
    if (n == 0) {
      *out = json_null();
      return 0;
    }
  }
  size_t best = 0;
  double best_d = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *e = argc == 1 ? json_array_get(a, i) : items[i];
    double d;
    int rc = elem_num(env, at, fn, e, i, &d);
    if (rc)
      return rc;
    if (i == 0 || (want_max ? d > best_d : d < best_d)) {
      best = i;
      best_d = d;
    }
  }
  json_t *e = argc == 1 ? json_array_get(a, best) : items[best];
  *out = json_is_number(e) ? json_incref(e) : rq_num(best_d);
  return 0;
}

int rq_bi_min(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
              json_t **out)
{
  return min_max(env, at, "min", false, argc, argv, out);
}

int rq_bi_max(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
              json_t **out)
{
  return min_max(env, at, "max", true, argc, argv, out);
}

int rq_bi_avg(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
              json_t **out)
{
  const json_t *a = arg(argc, argv, 0);
  *out = NULL;
  if (is_nullish(a) || (json_is_array(a) && json_array_size(a) == 0)) {
    *out = json_null();
    return 0;
  }
  if (!json_is_array(a))
    return rq_fail(env, at, "builtin avg: expected an array, got %s",
                   op_type_name(a));
  double sum = 0;
  size_t n = json_array_size(a);
  for (size_t i = 0; i < n; i++) {
    double d;
    int rc = elem_num(env, at, "avg", json_array_get(a, i), i, &d);
    if (rc)
      return rc;
    sum += d;
  }
  return num_result(env, at, sum / (double)n, out);
}

int rq_bi_first(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  const json_t *a = arg(argc, argv, 0);
  *out = json_is_array(a) ? rq_ref(json_array_get(a, 0)) : NULL;
  return 0;
}

int rq_bi_last(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
               json_t **out)
{
  const json_t *a = arg(argc, argv, 0);
  size_t n = json_array_size(a);
  *out = n ? rq_ref(json_array_get(a, n - 1)) : NULL;
  return 0;
}

int rq_bi_round(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  double x, d = 0;
  *out = NULL;
  int rc = num_arg(env, at, "round", arg(argc, argv, 0), &x);
  if (!rc && argc > 1)
    rc = num_arg(env, at, "round", arg(argc, argv, 1), &d);
  if (rc)
    return rc;
  double scale = pow(10, d);
  return num_result(env, at, floor(x * scale + 0.5) / scale, out);
}

/* floor, ceil and abs share the shape number -> number. */
static int unary_math(const RqEnv *env, RqAt at, const char *fn,
                      double (*f)(double), int argc, json_t *const *argv,
                      json_t **out)
{
  double x;
  *out = NULL;
  int rc = num_arg(env, at, fn, arg(argc, argv, 0), &x);
  if (rc)
    return rc;
  return num_result(env, at, f(x), out);
}

int rq_bi_floor(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  return unary_math(env, at, "floor", floor, argc, argv, out);
}

int rq_bi_ceil(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
               json_t **out)
{
  return unary_math(env, at, "ceil", ceil, argc, argv, out);
}

int rq_bi_abs(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
              json_t **out)
{
  return unary_math(env, at, "abs", fabs, argc, argv, out);
}

int rq_bi_now(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
              json_t **out)
{
  char iso[32];
  rq_iso_time(rq_now_ms(), iso);
  *out = json_string(iso);
  return 0;
}

int rq_bi_env(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
              json_t **out)
{
  char *name = rqi_text(arg(argc, argv, 0));
  const char *val = name[0] ? getenv(name) : NULL;
  *out = rq_str(val ? val : "", val ? strlen(val) : 0);
  rq_free(name);
  return 0;
}

int rq_bi_concat(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                 json_t **out)
{
  bool all_arrays = argc > 0;
  for (int i = 0; i < argc; i++)
    all_arrays = all_arrays && json_is_array(argv[i]);
  if (all_arrays) {
    json_t *r = json_array();
    for (int i = 0; i < argc; i++)
      json_array_extend(r, argv[i]);
    *out = r;
    return 0;
  }
  RqBuf b = RQ_BUF_INIT(0);
  for (int i = 0; i < argc; i++)
    put_text(&b, argv[i]);
  *out = rq_str(b.data, b.len);
  rq_buf_free(&b);
  return 0;
}

/* lower, upper, trim: string -> string, null/missing -> null. */
static int str_map(const RqEnv *env, RqAt at, const char *fn, int mode,
                   int argc, json_t *const *argv, json_t **out)
{
  const json_t *v = arg(argc, argv, 0);
  *out = NULL;
  if (is_nullish(v)) {
    *out = json_null();
    return 0;
  }
  if (!json_is_string(v))
    return str_arg_err(env, at, fn, v);
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (mode == 2) {
    size_t i = 0;
    while (i < n && is_space(s[i]))
      i++;
    while (n > i && is_space(s[n - 1]))
      n--;
    *out = rq_str(s + i, n - i);
    return 0;
  }
  char *p = rq_malloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (mode == 0 && c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    else if (mode == 1 && c >= 'a' && c <= 'z')
      c = (char)(c - 'a' + 'A');
    p[i] = c;
  }
  *out = rq_str(p, n);
  rq_free(p);
  return 0;
}

int rq_bi_lower(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  return str_map(env, at, "lower", 0, argc, argv, out);
}

int rq_bi_upper(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  return str_map(env, at, "upper", 1, argc, argv, out);
}

int rq_bi_trim(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
               json_t **out)
{
  return str_map(env, at, "trim", 2, argc, argv, out);
}

int rq_bi_contains(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                   json_t **out)
{
  const json_t *h = arg(argc, argv, 0);
  const json_t *n = arg(argc, argv, 1);
  bool r = false;
  if (json_is_array(h)) {
    for (size_t i = 0; i < json_array_size(h) && !r; i++)
      r = rqi_json_equal(json_array_get(h, i), n);
  } else if (json_is_string(h) && !is_nullish(n)) {
    size_t len;
    char *needle = rqi_text_n(n, &len);
    r = memmem(json_string_value(h), json_string_length(h), needle, len)
        != NULL;
    rq_free(needle);
  } else if (json_is_object(h) && !is_nullish(n)) {
    size_t len;
    char *key = rqi_text_n(n, &len);
    r = json_object_getn(h, key, len) != NULL;
    rq_free(key);
  }
  *out = json_boolean(r);
  return 0;
}

/* startsWith / endsWith: false unless s is a string and p has a value. */
static bool affix(const json_t *s, const json_t *p, bool at_end)
{
  if (!json_is_string(s) || is_nullish(p))
    return false;
  size_t plen;
  char *pre = rqi_text_n(p, &plen);
  size_t slen = json_string_length(s);
  bool r = plen <= slen &&
           memcmp(json_string_value(s) + (at_end ? slen - plen : 0), pre,
                  plen) == 0;
  rq_free(pre);
  return r;
}

int rq_bi_startsWith(const RqEnv *env, RqAt at, int argc,
                     json_t *const *argv, json_t **out)
{
  *out = json_boolean(affix(arg(argc, argv, 0), arg(argc, argv, 1), false));
  return 0;
}

int rq_bi_endsWith(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                   json_t **out)
{
  *out = json_boolean(affix(arg(argc, argv, 0), arg(argc, argv, 1), true));
  return 0;
}

int rq_bi_split(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  const json_t *s = arg(argc, argv, 0);
  const json_t *sep = arg(argc, argv, 1);
  *out = NULL;
  if (is_nullish(s)) {
    *out = json_null();
    return 0;
  }
  if (!json_is_string(s))
    return str_arg_err(env, at, "split", s);
  const char *p = json_string_value(s);
  size_t n = json_string_length(s);
  json_t *r = json_array();
  if (is_nullish(sep)) {       /* as in JavaScript: the whole string */
    json_array_append_new(r, rq_str(p, n));
    *out = r;
    return 0;
  }
  size_t slen;
  char *sp = rqi_text_n(sep, &slen);
  size_t i = 0;
  if (slen == 0) {             /* one element per code point */
    while (i < n) {
      size_t len = utf8_len((const unsigned char *)p + i, n - i);
      if (len == 0)
        len = 1;
      json_array_append_new(r, rq_str(p + i, len));
      i += len;
    }
  } else {
    for (;;) {
      const char *hit = memmem(p + i, n - i, sp, slen);
      size_t end = hit ? (size_t)(hit - p) : n;
      json_array_append_new(r, rq_str(p + i, end - i));
      if (!hit)
        break;
      i = end + slen;
    }
  }
  rq_free(sp);
  *out = r;
  return 0;
}

int rq_bi_join(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
               json_t **out)
{
  const json_t *a = arg(argc, argv, 0);
  *out = NULL;
  if (is_nullish(a)) {
    *out = json_null();
    return 0;
  }
  if (!json_is_array(a))
    return rq_fail(env, at, "builtin join: expected an array, got %s",
                   op_type_name(a));
  size_t slen;
  char *sep = rqi_text_n(arg(argc, argv, 1), &slen);
  RqBuf b = RQ_BUF_INIT(0);
  for (size_t i = 0; i < json_array_size(a); i++) {
    if (i)
      put(&b, sep, slen);
    put_text(&b, json_array_get(a, i));
  }
  *out = rq_str(b.data, b.len);
  rq_buf_free(&b);
  rq_free(sep);
  return 0;
}

int rq_bi_toString(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                   json_t **out)
{
  *out = text_value(arg(argc, argv, 0));
  return 0;
}

int rq_bi_toNumber(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                   json_t **out)
{
  const json_t *v = arg(argc, argv, 0);
  double d;
  *out = NULL;
  if (is_nullish(v)) {
    *out = json_null();
    return 0;
  }
  if (json_is_number(v)) {
    *out = json_incref((json_t *)v);
    return 0;
  }
  if (!rqi_to_number(v, &d)) {
    if (json_is_string(v)) {
      char *s = rqi_compact(v, 60);
      int rc = rq_fail(env, at, "builtin toNumber: %s is not a number", s);
      rq_free(s);
      return rc;
    }
    return num_arg(env, at, "toNumber", v, &d);
  }
  return num_result(env, at, d, out);
}

int rq_bi_exists(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                 json_t **out)
{
  *out = json_boolean(!is_nullish(arg(argc, argv, 0)));
  return 0;
}

/* keys and values: an array of an object's keys or values, else []. */
static json_t *keys_values(const json_t *o, bool want_values)
{
  json_t *r = json_array();
  if (!json_is_object(o))
    return r;
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)o, key, klen, val) {
    if (want_values)
      json_array_append(r, val);
    else
      json_array_append_new(r, rq_str(key, klen));
  }
  return r;
}

int rq_bi_keys(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
               json_t **out)
{
  *out = keys_values(arg(argc, argv, 0), false);
  return 0;
}

int rq_bi_values(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                 json_t **out)
{
  *out = keys_values(arg(argc, argv, 0), true);
  return 0;
}

/* epochMs: a timestamp string -> ms.  A number is taken to be ms already
 * and passes through (DECIDED HERE; it makes epochMs idempotent). */
int rq_bi_epochMs(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                  json_t **out)
{
  const json_t *v = arg(argc, argv, 0);
  double ms;
  *out = NULL;
  if (is_nullish(v)) {
    *out = json_null();
    return 0;
  }
  if (json_is_number(v)) {
    *out = json_incref((json_t *)v);
    return 0;
  }
  if (!json_is_string(v))
    return str_arg_err(env, at, "epochMs", v);
  const char *s = json_string_value(v);
  if (strlen(s) != json_string_length(v) || !rq_parse_time(s, &ms)) {
    char *c = rqi_compact(v, 60);
    int rc = rq_fail(env, at, "builtin epochMs: cannot parse %s", c);
    rq_free(c);
    return rc;
  }
  *out = rq_num(ms);
  return 0;
}

/* isoTime / fromUnix: a number of ms (scale 1) or s (1000) -> ISO. */
static int to_iso(const RqEnv *env, RqAt at, const char *fn, double scale,
                  int argc, json_t *const *argv, json_t **out)
{
  const json_t *v = arg(argc, argv, 0);
  double d;
  *out = NULL;
  if (is_nullish(v)) {
    *out = json_null();
    return 0;
  }
  int rc = num_arg(env, at, fn, v, &d);
  if (rc)
    return rc;
  char iso[32];
  rq_iso_time(d * scale, iso);
  if (!iso[0])
    return rq_fail(env, at, "builtin %s: time out of range", fn);
  *out = json_string(iso);
  return 0;
}

int rq_bi_isoTime(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                  json_t **out)
{
  return to_iso(env, at, "isoTime", 1, argc, argv, out);
}

int rq_bi_fromUnix(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                   json_t **out)
{
  return to_iso(env, at, "fromUnix", 1000, argc, argv, out);
}

static int duration(const RqEnv *env, RqAt at, const char *fn, double unit,
                    int argc, json_t *const *argv, json_t **out)
{
  double d;
  *out = NULL;
  int rc = num_arg(env, at, fn, arg(argc, argv, 0), &d);
  if (rc)
    return rc;
  return num_result(env, at, d * unit, out);
}

int rq_bi_seconds(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                  json_t **out)
{
  return duration(env, at, "seconds", 1000, argc, argv, out);
}

int rq_bi_minutes(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                  json_t **out)
{
  return duration(env, at, "minutes", 60000, argc, argv, out);
}

int rq_bi_hours(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
                json_t **out)
{
  return duration(env, at, "hours", 3600000, argc, argv, out);
}

int rq_bi_days(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
               json_t **out)
{
  return duration(env, at, "days", 86400000, argc, argv, out);
}

/* Fills buf with n random bytes: getrandom, else /dev/urandom. */
static bool random_bytes(unsigned char *buf, size_t n)
{
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    got += (size_t)r;
  }
  if (got == n)
    return true;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0 && !(r < 0 && errno == EINTR))
      break;
    if (r > 0)
      got += (size_t)r;
  }
  close(fd);
  return got == n;
}

int rq_bi_uuid(const RqEnv *env, RqAt at, int argc, json_t *const *argv,
               json_t **out)
{
  unsigned char u[16];
  *out = NULL;
  if (!random_bytes(u, sizeof u))
    return rq_fail(env, at, "builtin uuid: no source of randomness");
  u[6] = (unsigned char)((u[6] & 0x0F) | 0x40);   /* version 4 */
  u[8] = (unsigned char)((u[8] & 0x3F) | 0x80);   /* RFC 4122 variant */
  char s[37];
  size_t o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      s[o++] = '-';
    o += (size_t)snprintf(s + o, sizeof s - o, "%02x", u[i]);
  }
  *out = json_stringn(s, 36);
  return 0;
}

/* ------------------------------------------------------ SHA-256 */

/* FIPS 180-4 SHA-256, enough for content-hash keys; no OpenSSL. */
typedef struct {
  uint32_t h[8];
  uint64_t len;               /* bytes hashed so far */
  unsigned char block[64];
  size_t fill;
} Sha256;

static const uint32_t sha_k[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
  0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
  0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n)
{
  return (x >> n) | (x << (32 - n));
}

static void sha_block(Sha256 *c, const unsigned char *p)
{
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
  uint32_t e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t s1 = ror(e, 6) ^ ror(e, 11) ^ ror(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + s1 + ch + sha_k[i] + w[i];
    uint32_t s0 = ror(a, 2) ^ ror(a, 13) ^ ror(a, 22);
    uint32_t maj = (a & b) ^ (a & cc) ^ (b & cc);
    uint32_t t2 = s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = cc;
    cc = b;
    b = a;
    a = t1 + t2;
  }
  c->h[0] += a;
  c->h[1] += b;
  c->h[2] += cc;
  c->h[3] += d;
  c->h[4] += e;
  c->h[5] += f;
  c->h[6] += g;
  c->h[7] += h;
}

static void sha_init(Sha256 *c)
{
  static const uint32_t h0[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                  0xa54ff53a, 0x510e527f, 0x9b05688c,
                                  0x1f83d9ab, 0x5be0cd19 };
  memcpy(c->h, h0, sizeof h0);
  c->len = 0;
  c->fill = 0;
}

static void sha_update(Sha256 *c, const void *data, size_t n)
{
  const unsigned char *p = data;
  c->len += n;
  while (n > 0) {
    size_t take = 64 - c->fill < n ? 64 - c->fill : n;
    memcpy(c->block + c->fill, p, take);
    c->fill += take;
    p += take;
    n -= take;
    if (c->fill == 64) {
      sha_block(c, c->block);
      c->fill = 0;
    }
  }
}

static void sha_final(Sha256 *c, unsigned char out[32])
{
  uint64_t bits = c->len * 8;
  unsigned char pad[72] = { 0x80 };
  size_t padlen = c->fill < 56 ? 56 - c->fill : 120 - c->fill;
  for (int i = 0; i < 8; i++)
    pad[padlen + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
  sha_update(c, pad, padlen + 8);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(c->h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
    out[4 * i + 3] = (unsigned char)c->h[i];
  }
}

void rqi_sha256_hex(const void *data, size_t n, char out[65])
{
  static const char hex[] = "0123456789abcdef";
  unsigned char dig[32];
  Sha256 c;
  sha_init(&c);
  sha_update(&c, data, n);
  sha_final(&c, dig);
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[dig[i] >> 4];
    out[2 * i + 1] = hex[dig[i] & 15];
  }
  out[64] = '\0';
}

char *rqi_canonical(const json_t *v)
{
  RqBuf b = RQ_BUF_INIT(0);
  dump(&b, v, 0, 0, true);
  return buf_take(&b);
}

void rqi_content_hash(const json_t *rec, char *out)
{
  char *canon = rqi_canonical(rec);
  char hex[65];
  rqi_sha256_hex(canon, strlen(canon), hex);
  memcpy(out, hex, 32);
  out[32] = '\0';
  rq_free(canon);
}
