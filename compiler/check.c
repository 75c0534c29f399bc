/* check.c -- name resolution, semantic checks and option normalisation.
 *
 * check_program() turns the raw parse tree into what emit.c consumes:
 *   - one Mission per `mission` block, with loose top-level declarations
 *     attached per SPEC §2.8 and every per-mission table filled;
 *   - every bare name resolved (variable, store or subject field, §5.2),
 *     every reference to a store, source, action, transform or schema
 *     bound to its declaration (Node.decl);
 *   - every option block (parsed generically as ND_OBJECT) normalised into
 *     the typed structs of reqonc.h with all defaults filled in.
 * It reports every problem it finds (SPEC §11.1 wording) and never exits.
 * Everything it allocates lives in the compilation arena.
 */
#include "reqonc.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------ unsupported features */
/* Constructs the runtime cannot execute yet.  They are rejected with a
 * clear error instead of being silently ignored.  When the runtime learns
 * one, flip its flag to false: the code below already checks and
 * normalises them all, except that 'call' and 'from' still need the
 * OpenAPI loader (§4.13). */
typedef enum {
  F_WAIT, F_CALL, F_FROM, F_SQL, F_POSTGREST, F_OAUTH2, F_RATELIMIT,
  F_CIRCUIT, F_VALIDATE_RESPONSES, F_CRON, F_AT, F_TIMEZONE, F_MAXCONC,
  F_NO_SKIP, F_SCHED_RETRY, F_RETRY, F_QUEUE, F_JUMP, F_WEBHOOKURL,
  F_COUNT
} Feature;

static const struct {
  const char *what;   /* subject and verb of the message */
  bool unsupported;
} features[F_COUNT] = {
  [F_WAIT] = { "'wait' steps are", false },
  [F_CALL] = { "'call' steps are", true },
  [F_FROM] = { "OpenAPI sources ('from') are", true },
  [F_SQL] = { "sql stores are", true },
  [F_POSTGREST] = { "postgrest stores are", true },
  [F_OAUTH2] = { "oauth2 auth is", false },
  [F_RATELIMIT] = { "rateLimit is", false },
  [F_CIRCUIT] = { "circuitBreaker is", false },
  [F_VALIDATE_RESPONSES] = { "validateResponses is", true },
  [F_CRON] = { "cron schedules are", false },
  [F_AT] = { "'at' schedules are", false },
  [F_TIMEZONE] = { "schedule timezone is", false },
  [F_MAXCONC] = { "schedule maxConcurrency other than 1 is", false },
  [F_NO_SKIP] = { "skipIfRunning: false is", false },
  [F_SCHED_RETRY] = { "schedule retry is", false },
  [F_RETRY] = { "the 'retry' directive is", false },
  [F_QUEUE] = { "the 'queue' directive is", false },
  [F_JUMP] = { "the 'jump' directive is", false },
  [F_WEBHOOKURL] = { "webhookUrl() is", false },
};

/* ------------------------------------------------------------ builtins */
static const struct {
  const char *name;
  int min, max;        /* max -1: any number */
} builtins[] = {
#define RQ_BUILTIN(name, fn, min, max) { #name, min, max },
#include "builtins.def"
#undef RQ_BUILTIN
};
#define N_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

/* Type names of schema fields (§4.12); `is` also takes null/undefined. */
static const char *const schema_types[] = {
  "string", "number", "decimal", "float", "double", "int", "integer",
  "boolean", "bool", "date", "datetime", "array", "object", "any",
};
#define N_SCHEMA_TYPES \
  ((int)(sizeof schema_types / sizeof schema_types[0]))

/* ------------------------------------------------------- checker state */
/* A variable binding; the scope chain is a linked list whose head is
 * saved on scope entry and restored on exit. */
typedef struct Var {
  const char *name;
  struct Var *next;
} Var;

typedef struct {
  Compilation *c;
  Mission *m;          /* mission being checked, or NULL */
  Var *vars;           /* innermost binding first */
  NodeVec implicit_first; /* store steps that introduced an implicit store */
  int n_declared_stores;  /* Mission.stores before the implicit ones */
  NodeVec *order;      /* per mission: its items in source order, so that
                          diagnostics come out in reading order */
} Ck;

/* ------------------------------------------------------------- helpers */
static bool streq(const char *a, const char *b)
{
  return a && b && strcmp(a, b) == 0;
}

static bool loc_set(Loc l)
{
  return l.start >= 0 && l.end > l.start;
}

/* The span of a node's name, falling back to the node's span. */
static Loc name_at(const Node *n)
{
  return loc_set(n->name_loc) ? n->name_loc : n->loc;
}

static Loc word_at(const Node *n)
{
  return loc_set(n->word_loc) ? n->word_loc : n->loc;
}

static const char *str_or(const char *s, const char *dflt)
{
  return s ? s : dflt;
}

static Node *new_node(Ck *k, NodeKind kind, Loc loc)
{
  Node *n = arena_alloc(k->c->arena, sizeof *n);
  n->kind = kind;
  n->loc = loc;
  return n;
}

static Node *find_decl(const NodeVec *v, const char *name)
{
  for (int i = 0; i < v->len; i++)
    if (streq(v->data[i]->name, name))
      return v->data[i];
  return NULL;
}

/* "file:line" of a location, for "first defined at F:L". */
static const char *where(Ck *k, Loc l)
{
  int line = 0, col = 0;
  const char *path = "?";

  if (l.file >= 0 && l.file < k->c->n_files)
    path = k->c->files[l.file].path;
  if (l.start >= 0)
    source_linecol(k->c, l, &line, &col);
  return arena_printf(k->c->arena, "%s:%d", path, line);
}

/* Bounded append used to build name lists. */
static void buf_add(char *buf, size_t cap, size_t *len, const char *s)
{
  size_t n = strlen(s);

  if (*len + n + 1 > cap)
    n = cap - *len - 1;
  memcpy(buf + *len, s, n);
  *len += n;
  buf[*len] = '\0';
}

/* ------------------------------------------------------- "did you mean" */
/* Edit distance, bounded: names longer than 63 bytes never match. */
static int edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  int row[64];

  if (la > 63 || lb > 63)
    return INT_MAX;
  for (size_t j = 0; j <= lb; j++)
    row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < best)
        best = row[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

typedef struct {
  const char *name;    /* what was written */
  const char *best;
  int dist;
} Suggest;

static void suggest_init(Suggest *s, const char *name)
{
  s->name = name;
  s->best = NULL;
  s->dist = INT_MAX;
}

/* Within two edits, and closer than the name is long (so "x" never
 * suggests "y"). */
static void suggest_try(Suggest *s, const char *cand)
{
  int d;

  if (!s->name || !cand || streq(s->name, cand))
    return;
  d = edit_distance(s->name, cand);
  if (d <= 2 && d < (int)strlen(s->name) && d < s->dist) {
    s->best = cand;
    s->dist = d;
  }
}

static const char *suggest_text(Ck *k, const Suggest *s)
{
  if (!s->best)
    return "";
  return arena_printf(k->c->arena, "; did you mean '%s'?", s->best);
}

/* "<kind> 'X' is not defined (<kind>s: a, b)" with a suggestion. */
static void undefined(Ck *k, Loc at, const char *kind, const char *name,
                      const NodeVec *v)
{
  char list[400];
  size_t len = 0;
  Suggest s;

  list[0] = '\0';
  suggest_init(&s, name);
  if (!v || v->len == 0) {
    buf_add(list, sizeof list, &len, "no ");
    buf_add(list, sizeof list, &len, kind);
    buf_add(list, sizeof list, &len, "s declared");
  } else {
    buf_add(list, sizeof list, &len, kind);
    buf_add(list, sizeof list, &len, "s: ");
    for (int i = 0; i < v->len; i++) {
      const char *nm = str_or(v->data[i]->name, "?");
      suggest_try(&s, nm);
      if (i == 12) {
        buf_add(list, sizeof list, &len, ", ...");
        continue;
      }
      if (i > 12)
        continue;
      if (i > 0)
        buf_add(list, sizeof list, &len, ", ");
      buf_add(list, sizeof list, &len, nm);
    }
  }
  diag_error(k->c, at, "%s '%s' is not defined (%s)%s", kind,
             str_or(name, "?"), list, suggest_text(k, &s));
}

/* Reports an unsupported construct.  Returns true if it is unsupported. */
static bool unsupported(Ck *k, Feature f, Loc at)
{
  if (!features[f].unsupported)
    return false;
  diag_error(k->c, at, "%s not supported yet by reqonc %s", features[f].what,
             REQONC_VERSION);
  return true;
}

/* -------------------------------------------------------------- scopes */
static void bind(Ck *k, const char *name)
{
  Var *v = arena_alloc(k->c->arena, sizeof *v);

  v->name = name;
  v->next = k->vars;
  k->vars = v;
}

static bool is_var(const Ck *k, const char *name)
{
  for (const Var *v = k->vars; v; v = v->next)
    if (streq(v->name, name))
      return true;
  return false;
}

static Node *find_store(const Ck *k, const char *name)
{
  return k->m ? find_decl(&k->m->stores, name) : NULL;
}

/* Checks that `name` may be bound as a variable, then binds it. */
static void bind_checked(Ck *k, const char *name, Loc at)
{
  if (!name)
    return;
  if (streq(name, "response")) {
    diag_error(k->c, at, "cannot bind 'response'");
    return;
  }
  if (find_store(k, name)) {
    diag_error(k->c, at, "cannot bind '%s': it is a store", name);
    return;
  }
  bind(k, name);
}

/* ---------------------------------------------------------- expressions */
static void check_expr(Ck *k, Node *n);

static void check_expr_list(Ck *k, Node *list)
{
  for (Node *e = list; e; e = e->next)
    check_expr(k, e);
}

static bool is_type_name(const char *t)
{
  for (int i = 0; i < N_SCHEMA_TYPES; i++)
    if (streq(t, schema_types[i]))
      return true;
  return false;
}

static void unknown_type(Ck *k, Loc at, const char *t, bool with_null)
{
  Suggest s;

  suggest_init(&s, t);
  for (int i = 0; i < N_SCHEMA_TYPES; i++)
    suggest_try(&s, schema_types[i]);
  if (with_null) {
    suggest_try(&s, "null");
    suggest_try(&s, "undefined");
  }
  diag_error(k->c, at, "unknown type '%s'%s", str_or(t, "?"),
             suggest_text(k, &s));
}

/* "expects 1 argument", "expects 1 to 2 arguments", "at least 1". */
static const char *arity_text(Ck *k, int min, int max)
{
  if (max < 0)
    return arena_printf(k->c->arena, "at least %d argument%s", min,
                        min == 1 ? "" : "s");
  if (min == max && min == 0)
    return "no arguments";
  if (min == max)
    return arena_printf(k->c->arena, "%d argument%s", min,
                        min == 1 ? "" : "s");
  return arena_printf(k->c->arena, "%d to %d arguments", min, max);
}

/* lookup(S, k): S must name a store; bind it instead of resolving it. */
static void check_lookup(Ck *k, Node *call)
{
  Node *s = call->body;
  Node *st;

  if (!s)
    return;
  if (s->kind != ND_NAME) {
    diag_error(k->c, s->loc, "the first argument of lookup() must be a "
               "store name");
    check_expr(k, s);
  } else {
    st = find_store(k, s->name);
    if (!st) {
      undefined(k, s->loc, "store", s->name, k->m ? &k->m->stores : NULL);
    } else {
      s->ref = REF_STORE;
      s->decl = st;
      call->decl = st;
    }
  }
  check_expr_list(k, s->next);
}

static void check_call(Ck *k, Node *n)
{
  int argc = 0;
  int bi = -1;

  for (Node *a = n->body; a; a = a->next)
    argc++;
  for (int i = 0; i < N_BUILTINS; i++)
    if (streq(n->name, builtins[i].name)) {
      bi = i;
      break;
    }
  if (bi < 0) {
    Suggest s;
    suggest_init(&s, n->name);
    for (int i = 0; i < N_BUILTINS; i++)
      suggest_try(&s, builtins[i].name);
    diag_error(k->c, name_at(n), "unknown function '%s'%s",
               str_or(n->name, "?"), suggest_text(k, &s));
    check_expr_list(k, n->body);
    return;
  }
  n->builtin = bi;
  if (argc < builtins[bi].min ||
      (builtins[bi].max >= 0 && argc > builtins[bi].max))
    diag_error(k->c, n->loc, "function '%s' expects %s", n->name,
               arity_text(k, builtins[bi].min, builtins[bi].max));
  if (streq(n->name, "webhookUrl"))
    unsupported(k, F_WEBHOOKURL, name_at(n));
  if (streq(n->name, "lookup"))
    check_lookup(k, n);
  else
    check_expr_list(k, n->body);
}

static void check_name(Ck *k, Node *n)
{
  Node *st;

  if (is_var(k, n->name)) {
    n->ref = REF_VAR;
    return;
  }
  st = find_store(k, n->name);
  if (st) {
    n->ref = REF_STORE;
    n->decl = st;
    return;
  }
  n->ref = REF_FIELD;
}

static void check_match_expr(Ck *k, Node *n)
{
  check_expr(k, n->a);
  for (Node *arm = n->body; arm; arm = arm->next) {
    Var *saved = k->vars;
    if (arm->kind != ND_MARM) {
      check_expr(k, arm);
      continue;
    }
    if (arm->name && !streq(arm->word, "_"))
      bind_checked(k, arm->name, name_at(arm));  /* n where c => r */
    else if (arm->a)
      check_expr(k, arm->a);
    check_expr(k, arm->cond);
    check_expr(k, arm->b);
    k->vars = saved;
  }
}

static void check_expr(Ck *k, Node *n)
{
  if (!n)
    return;
  switch (n->kind) {
  case ND_NUM: case ND_STR: case ND_BOOL: case ND_NULL: case ND_RESPONSE:
  case ND_FIELDREF:
    break;
  case ND_NAME:
    check_name(k, n);
    break;
  case ND_MEMBER:
    check_expr(k, n->a);
    break;
  case ND_INDEX:
    check_expr(k, n->a);
    check_expr(k, n->b);
    break;
  case ND_CALL:
    check_call(k, n);
    break;
  case ND_UNARY:
    check_expr(k, n->a);
    break;
  case ND_BINARY:
    /* Chained comparisons (a < b < c) are warned about by the parser,
     * which alone knows whether the left side was parenthesised. */
    check_expr(k, n->a);
    check_expr(k, n->b);
    break;
  case ND_COND:
    check_expr(k, n->cond);
    check_expr(k, n->a);
    check_expr(k, n->b);
    break;
  case ND_IS:
    check_expr(k, n->a);
    if (n->word && !is_type_name(n->word) && !streq(n->word, "null") &&
        !streq(n->word, "undefined"))
      unknown_type(k, word_at(n), n->word, true);
    break;
  case ND_ARRAY:
    check_expr_list(k, n->body);
    break;
  case ND_OBJECT:
    for (Node *e = n->body; e; e = e->next)
      check_expr(k, e->kind == ND_ENTRY ? e->a : e);
    break;
  case ND_ENTRY:
    check_expr(k, n->a);
    break;
  case ND_MATCHEXPR:
    check_match_expr(k, n);
    break;
  case ND_ANYOF:
    check_expr(k, n->a);
    check_expr(k, n->cond);
    break;
  default:
    /* A step or declaration where an expression belongs cannot come out
     * of the parser; ignore it rather than crash. */
    break;
  }
}

/* Field mappings of map and transform variants: Word: expr, no spread. */
static void check_mappings(Ck *k, Node *obj)
{
  if (!obj)
    return;
  if (obj->kind != ND_OBJECT) {
    check_expr(k, obj);
    return;
  }
  for (Node *e = obj->body; e; e = e->next) {
    if (e->kind == ND_ENTRY && e->flag)
      diag_error(k->c, e->loc, "'...' is not allowed in mappings; use an "
                 "object literal");
    check_expr(k, e->kind == ND_ENTRY ? e->a : e);
  }
}

/* ------------------------------------------------------- option values */
static const char *key_of(const Node *e)
{
  return str_or(e->name, "");
}

static Loc val_at(const Node *e)
{
  return e->a ? e->a->loc : name_at(e);
}

/* The option keys of each context (§3), for suggestions. */
static const char *const retry_keys[] = {
  "maxAttempts", "backoff", "initialDelay", "maxDelay", NULL,
};
static const char *const rate_limit_keys[] = {
  "strategy", "maxWait", "fallbackRpm", NULL,
};
static const char *const circuit_keys[] = {
  "failureThreshold", "successThreshold", "resetTimeout", "failureWindow",
  NULL,
};
static const char *const source_keys[] = {
  "auth", "base", "authScheme", "headers", "validateResponses", "timeout",
  "rateLimit", "circuitBreaker", NULL,
};
static const char *const since_keys[] = {
  "param", "format", "updateFrom", NULL,
};
static const char *const fetch_keys[] = {
  "source", "body", "headers", "query", "params", "timeout", "paginate",
  "until", "maxPages", "retry", "since", NULL,
};
static const char *const store_keys[] = { "key", "upsert", "partial", NULL };
static const char *const storage_keys[] = { "target", "key", NULL };
static const char *const wait_keys[] = {
  "timeout", "path", "expectedEvents", "eventFilter", "retry",
  "retryOnTimeout", "storage", NULL,
};
static const char *const sched_retry_keys[] = {
  "maxRetries", "delaySeconds", NULL,
};
static const char *const schedule_keys[] = {
  "timezone", "maxConcurrency", "skipIfRunning", "retry", NULL,
};

static void unknown_option(Ck *k, const char *ctx, const Node *e,
                           const char *const *keys)
{
  Suggest s;

  suggest_init(&s, key_of(e));
  for (int i = 0; keys[i]; i++)
    suggest_try(&s, keys[i]);
  diag_error(k->c, name_at(e), "unknown %s option '%s'%s", ctx, key_of(e),
             suggest_text(k, &s));
}

/* Returns the first entry of an option block, reporting a value that is
 * not one; NULL for an empty or missing block. */
static Node *opt_entries(Ck *k, Node *opts, const char *ctx)
{
  if (!opts)
    return NULL;
  if (opts->kind != ND_OBJECT) {
    diag_error(k->c, opts->loc, "%s options must be a { ... } block", ctx);
    return NULL;
  }
  return opts->body;
}

/* An entry usable as an option: a keyed ND_ENTRY.  Reports spreads. */
static bool opt_entry_ok(Ck *k, const Node *e, const char *ctx)
{
  if (e->kind != ND_ENTRY)
    return false;
  if (e->flag) {
    diag_error(k->c, e->loc, "'...' is not allowed in %s options", ctx);
    return false;
  }
  return e->name != NULL;
}

static bool val_number(Ck *k, const Node *e, double min, bool integer,
                       double *out)
{
  const Node *v = e->a;

  if (!v)
    return false;
  if (v->kind != ND_NUM) {
    diag_error(k->c, val_at(e), "option '%s' expects a number", key_of(e));
    return false;
  }
  if (v->num < min || v->num > 1e15 ||
      (integer && v->num != (double)(long long)v->num)) {
    diag_error(k->c, val_at(e), "option '%s' expects %s of at least %g",
               key_of(e), integer ? "a whole number" : "a number", min);
    return false;
  }
  *out = v->num;
  return true;
}

static bool val_int(Ck *k, const Node *e, int min, int *out)
{
  double d;

  if (!val_number(k, e, min, true, &d))
    return false;
  if (d > INT_MAX) {
    diag_error(k->c, val_at(e), "option '%s' is too large", key_of(e));
    return false;
  }
  *out = (int)d;
  return true;
}

static bool val_bool(Ck *k, const Node *e, bool *out)
{
  if (!e->a)
    return false;
  if (e->a->kind != ND_BOOL) {
    diag_error(k->c, val_at(e), "option '%s' expects true or false",
               key_of(e));
    return false;
  }
  *out = e->a->flag;
  return true;
}

static bool val_string(Ck *k, const Node *e, const char **out)
{
  if (!e->a)
    return false;
  if (e->a->kind != ND_STR || !e->a->str) {
    diag_error(k->c, val_at(e), "option '%s' expects a string", key_of(e));
    return false;
  }
  *out = e->a->str;
  return true;
}

/* A Word (bare name) or a String; used for enum values and names. */
static const char *word_or_string(const Node *v)
{
  if (!v)
    return NULL;
  if (v->kind == ND_NAME)
    return v->name;
  if (v->kind == ND_STR)
    return v->str;
  return NULL;
}

/* The generated tables hold durations as C double literals and the
 * runtime converts them to long (curl timeouts, sleeps): a huge value
 * would print as "inf" (C that does not compile) or overflow the
 * conversion, so anything over MAX_DURATION_MS (about 31,700 years) is
 * an error, like val_number's limit. */
#define MAX_DURATION_MS 1e15

static bool duration_in_range(Ck *k, const Node *e, double ms)
{
  if (ms <= MAX_DURATION_MS)
    return true;
  diag_error(k->c, val_at(e), "option '%s' is too large", key_of(e));
  return false;
}

/* Duration (§3): a Number in `unit_ms` units, or "<digits>(ms|s|m|h|d)". */
static bool val_duration(Ck *k, const Node *e, double unit_ms, double *out)
{
  const Node *v = e->a;
  const char *s, *p;
  double n = 0, mul;

  if (!v)
    return false;
  if (v->kind == ND_NUM && v->num >= 0) {
    *out = v->num * unit_ms;
    return duration_in_range(k, e, *out);
  }
  if (v->kind != ND_STR || !v->str) {
    diag_error(k->c, val_at(e), "option '%s' expects a duration (a number "
               "or a string like \"30s\")", key_of(e));
    return false;
  }
  s = v->str;
  for (p = s; *p >= '0' && *p <= '9'; p++)
    if (n < 1e15)
      n = n * 10 + (*p - '0');
  mul = -1;
  if (p > s) {
    if (strcmp(p, "ms") == 0)
      mul = 1;
    else if (strcmp(p, "s") == 0)
      mul = 1000;
    else if (strcmp(p, "m") == 0)
      mul = 60000;
    else if (strcmp(p, "h") == 0)
      mul = 3600000;
    else if (strcmp(p, "d") == 0)
      mul = 86400000;
  }
  if (mul < 0) {
    diag_error(k->c, val_at(e), "invalid duration '%s' (expected digits "
               "followed by ms, s, m, h or d)", s);
    return false;
  }
  *out = n * mul;
  return duration_in_range(k, e, *out);
}

/* Enum (§3): a Word or a String from `names`.  Returns the index or -1. */
static int val_enum(Ck *k, const Node *e, const char *what,
                    const char *const *names, int n_names)
{
  const char *w = word_or_string(e->a);
  char list[200];
  size_t len = 0;

  if (!e->a)
    return -1;
  for (int i = 0; w && i < n_names; i++)
    if (strcmp(w, names[i]) == 0)
      return i;
  list[0] = '\0';
  for (int i = 0; i < n_names; i++) {
    if (i > 0)
      buf_add(list, sizeof list, &len, ", ");
    buf_add(list, sizeof list, &len, names[i]);
  }
  if (w)
    diag_error(k->c, val_at(e), "invalid %s '%s' (expected %s)", what, w,
               list);
  else
    diag_error(k->c, val_at(e), "invalid %s (expected %s)", what, list);
  return -1;
}

/* Headers: { "Name": expr, ... }; the values are expressions. */
static Node *opt_headers(Ck *k, const Node *e)
{
  Node *v = e->a;

  if (!v)
    return NULL;
  if (v->kind != ND_OBJECT) {
    diag_error(k->c, val_at(e), "option 'headers' expects { \"Name\": "
               "value, ... }");
    return NULL;
  }
  for (Node *h = v->body; h; h = h->next) {
    if (h->kind == ND_ENTRY && h->flag)
      diag_error(k->c, h->loc, "'...' is not allowed in headers");
    check_expr(k, h->kind == ND_ENTRY ? h->a : h);
  }
  return v;
}

/* -------------------------------------------------------- retry blocks */
static void retry_defaults(RetryOpts *r)
{
  r->given = false;
  r->max_attempts = 3;
  r->backoff = BACKOFF_EXPONENTIAL;
  r->initial_ms = 1000;
  r->max_ms = 30000;
}

static const char *const backoff_names[] = {
  "exponential", "linear", "constant",
};

static void norm_retry(Ck *k, Node *opts, RetryOpts *r)
{
  retry_defaults(r);
  r->given = true;
  for (Node *e = opt_entries(k, opts, "retry"); e; e = e->next) {
    const char *key;
    int i;
    if (!opt_entry_ok(k, e, "retry"))
      continue;
    key = e->name;
    if (streq(key, "maxAttempts"))
      val_int(k, e, 1, &r->max_attempts);
    else if (streq(key, "backoff")) {
      i = val_enum(k, e, "backoff", backoff_names, 3);
      if (i >= 0)
        r->backoff = (BackoffKind)i;
    } else if (streq(key, "initialDelay"))
      val_duration(k, e, 1, &r->initial_ms);
    else if (streq(key, "maxDelay"))
      val_duration(k, e, 1, &r->max_ms);
    else
      unknown_option(k, "retry", e, retry_keys);
  }
}

/* ------------------------------------------------------------- sources */
static const char *const auth_names[] = {
  "none", "bearer", "basic", "api_key", "oauth2",
};
static const char *const strategy_names[] = { "pause", "throttle", "fail" };

static void norm_rate_limit(Ck *k, const Node *e, SourceOpts *s)
{
  unsupported(k, F_RATELIMIT, name_at(e));
  for (Node *r = opt_entries(k, e->a, "rateLimit"); r; r = r->next) {
    int i;
    if (!opt_entry_ok(k, r, "rateLimit"))
      continue;
    if (streq(r->name, "strategy")) {
      i = val_enum(k, r, "rateLimit strategy", strategy_names, 3);
      if (i >= 0)
        s->rl_strategy = i;
    } else if (streq(r->name, "maxWait")) {
      double ms;
      if (val_duration(k, r, 1000, &ms))   /* bare numbers are seconds */
        s->rl_max_wait_s = ms / 1000;
    }
    else if (streq(r->name, "fallbackRpm"))
      val_number(k, r, 0, false, &s->rl_fallback_rpm);
    else
      unknown_option(k, "rateLimit", r, rate_limit_keys);
  }
}

/* resetTimeout / failureWindow: bare numbers are seconds; a large one is
 * almost always milliseconds written by mistake. */
static void cb_seconds(Ck *k, const Node *e, double *out_s)
{
  double ms;

  if (!val_duration(k, e, 1000, &ms))
    return;
  *out_s = ms / 1000;
  if (e->a && e->a->kind == ND_NUM && e->a->num >= 1000)
    diag_warning(k->c, val_at(e), "circuitBreaker %s %g is in seconds, "
                 "not milliseconds; write a duration such as \"30s\"",
                 e->name, e->a->num);
}

static void norm_circuit(Ck *k, const Node *e, SourceOpts *s)
{
  unsupported(k, F_CIRCUIT, name_at(e));
  for (Node *r = opt_entries(k, e->a, "circuitBreaker"); r; r = r->next) {
    if (!opt_entry_ok(k, r, "circuitBreaker"))
      continue;
    if (streq(r->name, "failureThreshold"))
      val_int(k, r, 1, &s->cb_failure_threshold);
    else if (streq(r->name, "successThreshold"))
      val_int(k, r, 1, &s->cb_success_threshold);
    else if (streq(r->name, "resetTimeout"))
      cb_seconds(k, r, &s->cb_reset_timeout_s);
    else if (streq(r->name, "failureWindow"))
      cb_seconds(k, r, &s->cb_failure_window_s);
    else
      unknown_option(k, "circuitBreaker", r, circuit_keys);
  }
}

static void check_source(Ck *k, Node *src)
{
  SourceOpts *s = arena_alloc(k->c->arena, sizeof *s);
  bool has_base = false;

  src->src = s;
  s->auth = AUTH_NONE;
  s->timeout_ms = -1;
  s->rl_strategy = 0;
  s->rl_max_wait_s = 300;
  s->rl_fallback_rpm = 60;
  s->cb_failure_threshold = 5;
  s->cb_success_threshold = 2;
  s->cb_reset_timeout_s = 30;
  s->cb_failure_window_s = 60;
  if (src->str)
    unsupported(k, F_FROM, src->loc);
  for (Node *e = opt_entries(k, src->opts, "source"); e; e = e->next) {
    const char *key;
    int i;
    if (!opt_entry_ok(k, e, "source"))
      continue;
    key = e->name;
    if (streq(key, "auth")) {
      i = val_enum(k, e, "auth", auth_names, 5);
      if (i >= 0)
        s->auth = (AuthKind)i;
      if (i == AUTH_OAUTH2)
        unsupported(k, F_OAUTH2, val_at(e));
    } else if (streq(key, "base")) {
      s->base = e->a;
      has_base = true;
      check_expr(k, e->a);
    } else if (streq(key, "authScheme"))
      val_string(k, e, &s->auth_scheme);
    else if (streq(key, "headers"))
      s->headers = opt_headers(k, e);
    else if (streq(key, "validateResponses")) {
      if (val_bool(k, e, &s->validate_responses) && s->validate_responses)
        unsupported(k, F_VALIDATE_RESPONSES, name_at(e));
    } else if (streq(key, "timeout"))
      val_duration(k, e, 1, &s->timeout_ms);
    else if (streq(key, "rateLimit"))
      norm_rate_limit(k, e, s);
    else if (streq(key, "circuitBreaker"))
      norm_circuit(k, e, s);
    else
      unknown_option(k, "source", e, source_keys);
  }
  if (!has_base && !src->str)
    diag_error(k->c, name_at(src), "source '%s' needs base (or from)",
               str_or(src->name, "?"));
}

/* -------------------------------------------------------------- stores */
static const char *const store_kind_names[] = {
  "memory", "file", "sql", "nosql", "postgrest",
};

static bool target_char(char ch)
{
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* §7.3 file targets: [A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*, no segment
 * starting with '.' or '_', first segment not a reserved directory. */
static bool valid_target_path(const char *s, size_t len)
{
  static const char *const reserved[] = {
    "sync", "executions", "scheduler", "tokens",
  };
  size_t i = 0, seg = 0;

  if (len == 0)
    return false;
  while (i <= len) {
    size_t start = i;
    while (i < len && s[i] != '/') {
      if (!target_char(s[i]))
        return false;
      i++;
    }
    if (i == start || s[start] == '.' || s[start] == '_')
      return false;
    if (seg == 0)
      for (size_t r = 0; r < sizeof reserved / sizeof reserved[0]; r++)
        if (strlen(reserved[r]) == i - start &&
            memcmp(reserved[r], s + start, i - start) == 0)
          return false;
    seg++;
    i++;  /* skip '/', or step past the end */
  }
  return true;
}

static bool valid_sql_name(const char *s, size_t len)
{
  if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
    return false;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
          (ch >= '0' && ch <= '9') || ch == '_'))
      return false;
  }
  return true;
}

static void check_store_decl(Ck *k, Node *st)
{
  const char *t = str_or(st->str, "");
  size_t len = st->str ? st->len : 0;
  int kind = -1;

  if (st->str && len == 0)
    len = strlen(st->str);
  for (int i = 0; i < 5; i++)
    if (streq(st->word, store_kind_names[i]))
      kind = i;
  if (kind < 0) {
    diag_error(k->c, word_at(st), "invalid store kind '%s' (expected memory, "
               "file, sql, nosql, postgrest)", str_or(st->word, "?"));
    return;
  }
  st->store_kind = (StoreKind)kind;
  switch (st->store_kind) {
  case STK_FILE:
  case STK_NOSQL:
    if (!valid_target_path(t, len))
      diag_error(k->c, st->loc, "invalid store target path '%s'", t);
    break;
  case STK_SQL:
    unsupported(k, F_SQL, word_at(st));
    if (!valid_sql_name(t, len))
      diag_error(k->c, st->loc, "invalid sql table name '%s' (expected "
                 "letters, digits and '_', not starting with a digit)", t);
    break;
  case STK_POSTGREST:
    unsupported(k, F_POSTGREST, word_at(st));
    if (len == 0)
      diag_error(k->c, st->loc, "postgrest store needs a table name");
    break;
  case STK_MEMORY:
    if (len == 0)
      diag_error(k->c, st->loc, "memory store needs a name");
    break;
  }
}

/* ------------------------------------------------------------- schemas */
static void check_schema(Ck *k, Node *sc)
{
  for (Node *f = sc->body; f; f = f->next) {
    if (f->kind != ND_FIELD)
      continue;
    for (Node *g = sc->body; g != f; g = g->next)
      if (g->kind == ND_FIELD && streq(g->name, f->name)) {
        diag_error(k->c, name_at(f), "duplicate field '%s' in schema '%s' "
                   "(first defined at %s)", f->name, str_or(sc->name, "?"),
                   where(k, name_at(g)));
        break;
      }
    if (f->word && !is_type_name(f->word))
      unknown_type(k, word_at(f), f->word, false);
  }
}

static Node *resolve_schema(Ck *k, const char *name, Loc at)
{
  Node *sc;

  if (!name || streq(name, "_"))
    return NULL;
  sc = find_decl(&k->m->schemas, name);
  if (!sc)
    undefined(k, at, "schema", name, &k->m->schemas);
  return sc;
}

/* Transforms are checked in mission scope; the variant's subject is the
 * applied value. */
static void check_transform(Ck *k, Node *tf)
{
  const Node *first = NULL;

  for (Node *v = tf->body; v; v = v->next) {
    const char *pat;
    if (v->kind != ND_VARIANT)
      continue;
    pat = v->name ? v->name : "_";
    v->decl = resolve_schema(k, pat, name_at(v));
    check_expr(k, v->cond);
    check_mappings(k, v->opts);
    if (!first) {
      first = v;
    } else if (v->word && first->word && !streq(v->word, first->word)) {
      diag_error(k->c, word_at(v), "transform '%s': all variants must have "
                 "the same target ('%s' here, '%s' in the first)",
                 str_or(tf->name, "?"), v->word, first->word);
    }
  }
}

/* --------------------------------------------------------------- fetch */
static const char *const since_format_names[] = {
  "iso", "unix", "unix-ms", "date-only",
};

static void norm_since(Ck *k, Node *e, FetchOpts *f)
{
  Node *v = e->a;

  if (!v)
    return;
  if (v->kind == ND_NAME && streq(v->name, "lastSync") &&
      !is_var(k, "lastSync")) {
    f->since_kind = SINCE_LASTSYNC;
  } else if (v->kind == ND_CALL && streq(v->name, "lastSync")) {
    f->since_kind = SINCE_LASTSYNC;
    if (v->body && (v->body->kind != ND_STR || v->body->next))
      diag_error(k->c, v->loc, "lastSync expects one string key: "
                 "lastSync(\"key\")");
    else if (v->body)
      f->since_key = v->body->str;
  } else {
    f->since_kind = SINCE_EXPR;
    f->since_expr = v;
    check_expr(k, v);
  }
  for (Node *o = opt_entries(k, e->opts, "since"); o; o = o->next) {
    int i;
    if (!opt_entry_ok(k, o, "since"))
      continue;
    if (streq(o->name, "param"))
      val_string(k, o, &f->since_param);
    else if (streq(o->name, "format")) {
      i = val_enum(k, o, "since format", since_format_names, 4);
      if (i >= 0)
        f->since_format = since_format_names[i];
    } else if (streq(o->name, "updateFrom"))
      val_string(k, o, &f->since_update_from);
    else
      unknown_option(k, "since", o, since_keys);
  }
}

/* A parameter name in a paginate form: a Word (or a String). */
static const char *pg_word(const Node *a)
{
  return word_or_string(a);
}

static void norm_paginate(Ck *k, Node *e, FetchOpts *f)
{
  static const char usage[] = "invalid paginate (expected offset(Param, N"
    "[, SizeParam]), page(Param, N[, SizeParam]) or cursor(Param, N[, "
    "\"path\"[, SizeParam]]))";
  Node *v = e->a;
  Node *args[5] = { NULL };
  int argc = 0;
  bool ok = true;

  if (!v)
    return;
  if (v->kind != ND_CALL) {
    diag_error(k->c, val_at(e), "%s", usage);
    return;
  }
  for (Node *a = v->body; a; a = a->next)
    if (argc < 5)
      args[argc++] = a;
    else
      ok = false;
  if (streq(v->name, "offset"))
    f->pg_kind = PG_OFFSET;
  else if (streq(v->name, "page"))
    f->pg_kind = PG_PAGE;
  else if (streq(v->name, "cursor"))
    f->pg_kind = PG_CURSOR;
  else {
    diag_error(k->c, name_at(v), "unknown pagination form '%s' (expected "
               "offset, page, cursor)", str_or(v->name, "?"));
    return;
  }
  if (argc < 2 || argc > (f->pg_kind == PG_CURSOR ? 4 : 3))
    ok = false;
  if (ok) {
    f->pg_param = pg_word(args[0]);
    /* the size is emitted as an int (RqStep.pg_size); the bound also
     * keeps the (long long) conversion defined */
    ok = f->pg_param != NULL && args[1]->kind == ND_NUM &&
         args[1]->num >= 1 && args[1]->num <= INT_MAX &&
         args[1]->num == (double)(long long)args[1]->num;
  }
  if (ok) {
    f->pg_size = args[1]->num;
    if (f->pg_kind == PG_CURSOR) {
      if (argc >= 3) {
        ok = args[2]->kind == ND_STR && args[2]->str;
        if (ok)
          f->pg_cursor_path = args[2]->str;
      }
      if (ok && argc == 4) {
        f->pg_size_param = pg_word(args[3]);
        ok = f->pg_size_param != NULL;
      }
    } else if (argc == 3) {
      f->pg_size_param = pg_word(args[2]);
      ok = f->pg_size_param != NULL;
    }
  }
  if (!ok) {
    f->pg_kind = PG_NONE;
    diag_error(k->c, v->loc, "%s", usage);
  }
}

static FetchOpts *new_fetch(Ck *k)
{
  FetchOpts *f = arena_alloc(k->c->arena, sizeof *f);

  f->timeout_ms = -1;
  f->pg_kind = PG_NONE;
  f->max_pages = 1000;
  retry_defaults(&f->retry);
  f->since_kind = SINCE_NONE;
  f->since_param = "since";
  f->since_format = "iso";
  return f;
}

/* Options of get/post/put/patch/delete and call. */
static void norm_fetch(Ck *k, Node *step, FetchOpts *f)
{
  for (Node *e = opt_entries(k, step->opts, "fetch"); e; e = e->next) {
    const char *key;
    if (!opt_entry_ok(k, e, "fetch"))
      continue;
    key = e->name;
    if (streq(key, "source")) {
      const char *nm = word_or_string(e->a);
      if (!e->a)
        continue;
      if (!nm || e->a->kind != ND_NAME) {
        diag_error(k->c, val_at(e), "option 'source' expects a source name");
        continue;
      }
      f->source = find_decl(&k->m->sources, nm);
      if (!f->source)
        undefined(k, val_at(e), "source", nm, &k->m->sources);
    } else if (streq(key, "body")) {
      f->body = e->a;
      if (step->kind == ND_HTTP && step->word &&
          strcasecmp(step->word, "get") == 0)
        diag_warning(k->c, name_at(e), "body on GET is sent as query "
                     "parameters; use query:");
      check_expr(k, e->a);
    } else if (streq(key, "headers"))
      f->headers = opt_headers(k, e);
    else if (streq(key, "query") || streq(key, "params")) {
      f->query = e->a;
      check_expr(k, e->a);
    } else if (streq(key, "timeout"))
      val_duration(k, e, 1, &f->timeout_ms);
    else if (streq(key, "paginate"))
      norm_paginate(k, e, f);
    else if (streq(key, "until")) {
      f->until = e->a;
      check_expr(k, e->a);
    } else if (streq(key, "maxPages"))
      val_int(k, e, 1, &f->max_pages);
    else if (streq(key, "retry"))
      norm_retry(k, e->a, &f->retry);
    else if (streq(key, "since"))
      norm_since(k, e, f);
    else
      unknown_option(k, "fetch", e, fetch_keys);
  }
  if (!f->source && !step->name) {
    if (k->m->sources.len > 0)
      f->source = k->m->sources.data[0];
    else
      diag_error(k->c, step->loc, "HTTP step needs a source; the mission "
                 "declares none");
  }
}

/* --------------------------------------------------------------- steps */
static void check_steps(Ck *k, Node *list);

/* A directive that ends the step list it is in (so what follows in the
 * same list never runs). */
static bool ends_list(const Node *s)
{
  if (s->kind != ND_DIRECTIVE || !s->word)
    return false;
  if (streq(s->word, "continue"))
    return false;
  if (streq(s->word, "jump"))
    return streq(s->word2, "retry");
  return true;
}

static void check_store_step(Ck *k, Node *s)
{
  StoreOpts *o = arena_alloc(k->c->arena, sizeof *o);

  s->store = o;
  o->partial = -1;
  check_expr(k, s->a);
  if (s->name) {
    s->decl = find_store(k, s->name);
    for (int i = 0; i < k->implicit_first.len; i++)
      if (k->implicit_first.data[i] == s) {
        Suggest sg;
        suggest_init(&sg, s->name);
        for (int j = 0; j < k->n_declared_stores; j++)
          suggest_try(&sg, k->m->stores.data[j]->name);
        diag_warning(k->c, name_at(s), "store '%s' is not declared; using "
                     "file(\"%s\")%s", s->name, s->name,
                     suggest_text(k, &sg));
        if (!valid_target_path(s->name, strlen(s->name)))
          diag_error(k->c, name_at(s), "invalid store target path '%s'",
                     s->name);
      }
  }
  for (Node *e = opt_entries(k, s->opts, "store"); e; e = e->next) {
    bool b;
    if (!opt_entry_ok(k, e, "store"))
      continue;
    if (streq(e->name, "key")) {
      o->key = e->a;
      check_expr(k, e->a);
    } else if (streq(e->name, "upsert"))
      val_bool(k, e, &o->upsert);
    else if (streq(e->name, "partial")) {
      if (val_bool(k, e, &b))
        o->partial = b ? 1 : 0;
    } else
      unknown_option(k, "store", e, store_keys);
  }
}

static void check_wait(Ck *k, Node *s)
{
  WaitOpts *w = arena_alloc(k->c->arena, sizeof *w);

  s->wait = w;
  w->timeout_ms = 300000;
  w->expected = 1;
  retry_defaults(&w->retry);
  unsupported(k, F_WAIT, s->loc);
  for (Node *e = opt_entries(k, s->opts, "wait"); e; e = e->next) {
    double d;
    const char *str;
    if (!opt_entry_ok(k, e, "wait"))
      continue;
    if (streq(e->name, "timeout")) {
      if (val_duration(k, e, 1, &d))
        w->timeout_ms = d;
    } else if (streq(e->name, "path")) {
      /* The listener matches the request path exactly, without query
       * or fragment: a path that cannot match would wait in vain. */
      if (val_string(k, e, &str)) {
        if (!str[0] || strcspn(str, "?# \t\r\n") != strlen(str))
          diag_error(k->c, val_at(e), "invalid wait path '%s'", str);
        else
          w->path = str;
      }
    } else if (streq(e->name, "expectedEvents")) {
      val_int(k, e, 1, &w->expected);
    } else if (streq(e->name, "eventFilter")) {
      w->filter = e->a;
      check_expr(k, e->a);
    } else if (streq(e->name, "retry") || streq(e->name, "retryOnTimeout"))
      norm_retry(k, e->a, &w->retry);
    else if (streq(e->name, "storage")) {
      Node *v = e->a;
      const char *target = NULL;
      bool has_target = false;
      Loc tat = val_at(e);
      if (v && v->kind == ND_NAME) {
        target = v->name;
      } else if (v && v->kind == ND_OBJECT) {
        for (Node *o = v->body; o; o = o->next) {
          if (!opt_entry_ok(k, o, "storage"))
            continue;
          if (streq(o->name, "target")) {
            has_target = true;
            if (o->a && o->a->kind == ND_NAME) {
              target = o->a->name;
              tat = o->a->loc;
            } else if (o->a) {
              diag_error(k->c, val_at(o), "storage target must be a store "
                         "name");
            }
          } else if (streq(o->name, "key")) {
            w->storage_key = o->a;
            check_expr(k, o->a);
          } else
            unknown_option(k, "storage", o, storage_keys);
        }
        if (!has_target)
          diag_error(k->c, v->loc, "wait storage needs a target");
      } else if (v) {
        diag_error(k->c, val_at(e), "option 'storage' expects a store name "
                   "or { target: S, key: ... }");
      }
      if (target) {
        s->decl = find_store(k, target);
        if (!s->decl)
          undefined(k, tat, "store", target, &k->m->stores);
      }
    } else
      unknown_option(k, "wait", e, wait_keys);
  }
}

static void check_directive(Ck *k, Node *s)
{
  const char *w = str_or(s->word, "");

  if (streq(w, "abort")) {
    check_expr(k, s->a);
  } else if (streq(w, "retry")) {
    unsupported(k, F_RETRY, s->loc);
    s->retry = arena_alloc(k->c->arena, sizeof *s->retry);
    if (s->opts)
      norm_retry(k, s->opts, s->retry);
    else
      retry_defaults(s->retry);
  } else if (streq(w, "queue")) {
    unsupported(k, F_QUEUE, s->loc);
    if (s->name) {
      s->decl = find_store(k, s->name);
      if (!s->decl)
        undefined(k, name_at(s), "store", s->name, &k->m->stores);
    }
  } else if (streq(w, "jump")) {
    unsupported(k, F_JUMP, s->loc);
    if (s->name) {
      s->decl = find_decl(&k->m->actions, s->name);
      if (!s->decl)
        undefined(k, name_at(s), "action", s->name, &k->m->actions);
    }
  }
}

static void check_step(Ck *k, Node *s)
{
  Var *saved;

  switch (s->kind) {
  case ND_HTTP:
    check_expr(k, s->a);
    s->fetch = new_fetch(k);
    norm_fetch(k, s, s->fetch);
    break;
  case ND_CALLOP:
    unsupported(k, F_CALL, s->loc);
    s->fetch = new_fetch(k);
    norm_fetch(k, s, s->fetch);
    if (s->name) {
      s->fetch->source = find_decl(&k->m->sources, s->name);
      if (!s->fetch->source)
        undefined(k, name_at(s), "source", s->name, &k->m->sources);
    }
    break;
  case ND_FOR:
    if (s->a && s->a->kind == ND_NAME && !is_var(k, s->a->name) &&
        !find_store(k, s->a->name))
      undefined(k, s->a->loc, "store", s->a->name, &k->m->stores);
    else
      check_expr(k, s->a);
    saved = k->vars;
    bind_checked(k, s->name, name_at(s));
    check_expr(k, s->cond);
    check_steps(k, s->body);
    k->vars = saved;
    break;
  case ND_MAP:
    check_expr(k, s->a);
    check_mappings(k, s->opts);
    break;
  case ND_APPLY:
    check_expr(k, s->a);
    if (s->name) {
      s->decl = find_decl(&k->m->transforms, s->name);
      if (!s->decl)
        undefined(k, name_at(s), "transform", s->name, &k->m->transforms);
    }
    if (s->word2)
      bind_checked(k, s->word2, s->loc);
    break;
  case ND_VALIDATE:
    check_expr(k, s->a);
    for (Node *a = s->body; a; a = a->next)
      check_expr(k, a->kind == ND_ASSUME ? a->a : a);
    check_steps(k, s->els);
    break;
  case ND_STORESTEP:
    check_store_step(k, s);
    break;
  case ND_MATCH:
    check_expr(k, s->a);
    for (Node *arm = s->body; arm; arm = arm->next) {
      if (arm->kind != ND_ARM)
        continue;
      arm->decl = resolve_schema(k, arm->word, word_at(arm));
      check_expr(k, arm->cond);
      check_steps(k, arm->body);
    }
    break;
  case ND_LET:
    check_expr(k, s->a);
    bind_checked(k, s->name, name_at(s));
    break;
  case ND_WAIT:
    check_wait(k, s);
    break;
  case ND_DIRECTIVE:
    check_directive(k, s);
    break;
  default:
    break;
  }
}

static void check_steps(Ck *k, Node *list)
{
  bool dead = false, warned = false;

  for (Node *s = list; s; s = s->next) {
    if (dead && !warned) {
      diag_warning(k->c, s->loc, "unreachable step");
      warned = true;
    }
    check_step(k, s);
    if (ends_list(s))
      dead = true;
  }
}

/* Implicit stores (§4.3): every store-step target that is not declared
 * becomes file("X") in Mission.stores, created in first-use order before
 * names are resolved so that bare uses anywhere in the mission see it. */
static void collect_implicit(Ck *k, Node *list)
{
  for (Node *s = list; s; s = s->next) {
    if (s->kind == ND_STORESTEP && s->name && !find_store(k, s->name)) {
      Node *st = new_node(k, ND_STORE, name_at(s));
      st->name = s->name;
      st->name_loc = name_at(s);
      st->word = intern(k->c, "file", 4);
      st->str = s->name;
      st->len = strlen(s->name);
      st->store_kind = STK_FILE;
      st->mission = k->m;
      st->index = k->m->stores.len;
      vec_push(k->c, &k->m->stores, st);
      vec_push(k->c, &k->implicit_first, s);
    }
    collect_implicit(k, s->body);
    collect_implicit(k, s->els);
  }
}

/* ----------------------------------------------------------- schedules */
static const char *const cron_fields[5] = {
  "minute", "hour", "day-of-month", "month", "day-of-week",
};
static const int cron_lo[5] = { 0, 0, 1, 1, 0 };
static const int cron_hi[5] = { 59, 23, 31, 12, 7 };
static const char *const month_names[12] = {
  "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
  "NOV", "DEC",
};
static const char *const dow_names[7] = {
  "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
};

/* A cron value: digits, or a month/day name in the fields that take them.
 * Returns false if it is neither. */
static bool cron_value(const char *s, size_t n, int field, int *out)
{
  long v = 0;

  if (n == 0)
    return false;
  if (s[0] >= '0' && s[0] <= '9') {
    for (size_t i = 0; i < n; i++) {
      if (s[i] < '0' || s[i] > '9')
        return false;
      if (v < 100000)
        v = v * 10 + (s[i] - '0');
    }
    *out = (int)v;
    return true;
  }
  if (n == 3 && (field == 3 || field == 4)) {
    const char *const *names = field == 3 ? month_names : dow_names;
    int count = field == 3 ? 12 : 7;
    for (int i = 0; i < count; i++)
      if (strncasecmp(s, names[i], 3) == 0) {
        *out = field == 3 ? i + 1 : i;
        return true;
      }
  }
  return false;
}

/* Checks one comma-list item `base[/step]`; reports and returns false. */
static bool cron_item(Ck *k, Loc at, int f, const char *s, size_t n)
{
  const char *slash = memchr(s, '/', n);
  size_t bn = slash ? (size_t)(slash - s) : n;
  const char *dash = memchr(s, '-', bn);
  int a, b, step;
  char text[64];

  snprintf(text, sizeof text, "%.*s", (int)(n < 60 ? n : 60), s);
  if (n == 0) {
    diag_error(k->c, at, "cron field '%s': empty list item", cron_fields[f]);
    return false;
  }
  if (slash && !cron_value(slash + 1, n - bn - 1, -1, &step)) {
    diag_error(k->c, at, "cron field '%s': invalid step in '%s'",
               cron_fields[f], text);
    return false;
  }
  if (slash && step < 1) {
    diag_error(k->c, at, "cron field '%s': step must be at least 1",
               cron_fields[f]);
    return false;
  }
  if (bn == 1 && s[0] == '*')
    return true;
  if (dash) {
    size_t an = (size_t)(dash - s);
    if (!cron_value(s, an, f, &a) || !cron_value(dash + 1, bn - an - 1, f,
                                                 &b)) {
      diag_error(k->c, at, "cron field '%s': invalid value '%s'",
                 cron_fields[f], text);
      return false;
    }
  } else {
    if (!cron_value(s, bn, f, &a)) {
      diag_error(k->c, at, "cron field '%s': invalid value '%s'",
                 cron_fields[f], text);
      return false;
    }
    b = a;
  }
  if (a < cron_lo[f] || a > cron_hi[f] || b < cron_lo[f] ||
      b > cron_hi[f]) {
    diag_error(k->c, at, "cron field '%s': %d out of range %d-%d",
               cron_fields[f], (a < cron_lo[f] || a > cron_hi[f]) ? a : b,
               cron_lo[f], cron_hi[f]);
    return false;
  }
  if (a > b) {
    diag_error(k->c, at, "cron field '%s': range %d-%d is reversed",
               cron_fields[f], a, b);
    return false;
  }
  return true;
}

static void check_cron(Ck *k, Loc at, const char *expr)
{
  static const char *const macros[] = {
    "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
    "@hourly",
  };
  const char *p = expr, *start[6];
  size_t len[6];
  int n = 0;

  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '@') {
    size_t m = strcspn(p, " \t");
    const char *q = p + m;
    while (*q == ' ' || *q == '\t')
      q++;
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
      if (strlen(macros[i]) == m && strncmp(p, macros[i], m) == 0 && !*q)
        return;
    diag_error(k->c, at, "invalid cron macro '%.*s' (expected @yearly, "
               "@annually, @monthly, @weekly, @daily, @midnight, @hourly)",
               (int)(m < 60 ? m : 60), p);
    return;
  }
  while (*p) {
    size_t m = strcspn(p, " \t");
    if (n < 6) {
      start[n] = p;
      len[n] = m;
    }
    n++;
    p += m;
    while (*p == ' ' || *p == '\t')
      p++;
  }
  if (n != 5) {
    diag_error(k->c, at, "cron expression needs 5 fields (minute hour "
               "day-of-month month day-of-week), found %d", n);
    return;
  }
  for (int f = 0; f < 5; f++) {
    const char *s = start[f], *end = s + len[f];
    while (s <= end) {
      const char *comma = memchr(s, ',', (size_t)(end - s));
      const char *stop = comma ? comma : end;
      if (!cron_item(k, at, f, s, (size_t)(stop - s)))
        return;
      s = stop + 1;
    }
  }
}

/* Reads exactly `n` digits. */
static bool at_digits(const char **p, int n, int *out)
{
  int v = 0;

  for (int i = 0; i < n; i++) {
    char ch = (*p)[i];
    if (ch < '0' || ch > '9')
      return false;
    v = v * 10 + (ch - '0');
  }
  *p += n;
  *out = v;
  return true;
}

static bool at_time(const char **p, bool secs_ok)
{
  int h, m, s;

  if (!at_digits(p, 2, &h) || **p != ':')
    return false;
  (*p)++;
  if (!at_digits(p, 2, &m) || h > 23 || m > 59)
    return false;
  if (secs_ok && **p == ':') {
    (*p)++;
    if (!at_digits(p, 2, &s) || s > 59)
      return false;
  }
  return true;
}

/* §9.1 at formats. */
static bool at_valid(const char *s)
{
  static const int mdays[12] = {
    31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
  };
  const char *p = s;
  int y, mo, d, hh, mm;
  char sep;

  if (strlen(s) == 5)
    return at_time(&p, false) && !*p;
  if (!at_digits(&p, 4, &y) || *p++ != '-' || !at_digits(&p, 2, &mo) ||
      *p++ != '-' || !at_digits(&p, 2, &d))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
    return false;
  if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return false;
  sep = *p++;
  if (sep != 'T' && sep != ' ')
    return false;
  if (!at_time(&p, true))
    return false;
  if (!*p)
    return true;
  if (sep == ' ')
    return strcmp(p, " UTC") == 0;
  if (strcmp(p, "Z") == 0)
    return true;
  if (*p != '+' && *p != '-')
    return false;
  p++;
  if (!at_digits(&p, 2, &hh) || *p++ != ':' || !at_digits(&p, 2, &mm))
    return false;
  return !*p && hh <= 23 && mm <= 59;
}

static void norm_sched_retry(Ck *k, const Node *e, ScheduleOpts *o)
{
  double d;

  unsupported(k, F_SCHED_RETRY, name_at(e));
  o->has_retry = true;
  for (Node *r = opt_entries(k, e->a, "retry"); r; r = r->next) {
    if (!opt_entry_ok(k, r, "retry"))
      continue;
    if (streq(r->name, "maxRetries"))
      val_int(k, r, 0, &o->retry_max);
    else if (streq(r->name, "delaySeconds")) {
      if (val_number(k, r, 0, false, &d))
        o->retry_delay_s = d;
    } else
      unknown_option(k, "retry", r, sched_retry_keys);
  }
}

static void check_schedule(Ck *k, Node *sc)
{
  static const struct { const char *unit; double ms; } units[] = {
    { "second", 1e3 }, { "seconds", 1e3 }, { "minute", 6e4 },
    { "minutes", 6e4 }, { "hour", 3.6e6 }, { "hours", 3.6e6 },
    { "day", 8.64e7 }, { "days", 8.64e7 }, { "week", 6.048e8 },
    { "weeks", 6.048e8 },
  };
  ScheduleOpts *o = &k->m->sched;

  if (streq(sc->word, "every")) {
    double ms = -1;
    o->kind = SCHED_EVERY;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
      if (streq(sc->word2, units[i].unit))
        ms = units[i].ms;
    if (ms < 0)
      diag_error(k->c, sc->loc, "invalid schedule unit '%s' (expected "
                 "seconds, minutes, hours, days, weeks)",
                 str_or(sc->word2, ""));
    else if (sc->num < 1)
      diag_error(k->c, sc->loc, "schedule interval must be at least 1");
    else if (sc->num * ms > MAX_DURATION_MS)
      diag_error(k->c, sc->loc, "schedule interval is too large");
    else
      o->every_ms = sc->num * ms;
  } else if (streq(sc->word, "cron")) {
    o->kind = SCHED_CRON;
    o->expr = str_or(sc->str, "");
    unsupported(k, F_CRON, sc->loc);
    check_cron(k, sc->loc, o->expr);
  } else if (streq(sc->word, "at")) {
    o->kind = SCHED_AT;
    o->expr = str_or(sc->str, "");
    unsupported(k, F_AT, sc->loc);
    if (!at_valid(o->expr))
      diag_error(k->c, sc->loc, "invalid at time '%s' (expected "
                 "YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM], YYYY-MM-DD HH:MM[:SS]"
                 "[ UTC] or HH:MM)", o->expr);
  } else {
    diag_error(k->c, sc->loc, "invalid schedule '%s' (expected every, cron, "
               "at)", str_or(sc->word, ""));
  }
  for (Node *e = opt_entries(k, sc->opts, "schedule"); e; e = e->next) {
    if (!opt_entry_ok(k, e, "schedule"))
      continue;
    if (streq(e->name, "timezone")) {
      if (val_string(k, e, &o->timezone))
        unsupported(k, F_TIMEZONE, name_at(e));
    } else if (streq(e->name, "maxConcurrency")) {
      if (val_int(k, e, 1, &o->max_concurrency) && o->max_concurrency != 1)
        unsupported(k, F_MAXCONC, name_at(e));
    } else if (streq(e->name, "skipIfRunning")) {
      if (val_bool(k, e, &o->skip_if_running) && !o->skip_if_running)
        unsupported(k, F_NO_SKIP, name_at(e));
    } else if (streq(e->name, "retry"))
      norm_sched_retry(k, e, o);
    else
      unknown_option(k, "schedule", e, schedule_keys);
  }
}

/* ----------------------------------------------------- mission building */
static NodeVec *table_for(Mission *m, NodeKind kind, const char **what)
{
  switch (kind) {
  case ND_SOURCE: *what = "source"; return &m->sources;
  case ND_STORE: *what = "store"; return &m->stores;
  case ND_SCHEMA: *what = "schema"; return &m->schemas;
  case ND_TRANSFORM: *what = "transform"; return &m->transforms;
  case ND_ACTION: *what = "action"; return &m->actions;
  case ND_LET: *what = "let"; return &m->lets;
  default: return NULL;
  }
}

/* Adds a declaration to its mission's table, reporting duplicates. */
static void add_decl(Ck *k, Mission *m, Node *d)
{
  const char *what = NULL;
  NodeVec *v = table_for(m, d->kind, &what);
  Node *prev;

  if (!v) {
    /* run lines and schedules are checked in place */
    if (d->kind == ND_PIPELINE || d->kind == ND_SCHEDULE)
      vec_push(k->c, &k->order[m->decl->index], d);
    return;
  }
  if (d->kind != ND_LET && d->name) {
    prev = find_decl(v, d->name);
    if (prev) {
      diag_error(k->c, name_at(d), "duplicate %s '%s' (first defined at %s)",
                 what, d->name, where(k, name_at(prev)));
      return;
    }
  }
  d->mission = m;
  d->index = v->len;
  vec_push(k->c, v, d);
  vec_push(k->c, &k->order[m->decl->index], d);
}

/* Directory part of a path ("." when it has none), into buf. */
static void dir_of(const char *path, char *buf, size_t cap)
{
  const char *slash = strrchr(path, '/');

  if (!slash)
    snprintf(buf, cap, ".");
  else if (slash == path)
    snprintf(buf, cap, "/");
  else
    snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

/* Is directory `dir` the root argument or below it? */
static bool under_root(const char *dir, const char *root, size_t rl)
{
  if (rl == 1 && root[0] == '.')
    return dir[0] != '/' && strncmp(dir, "..", 2) != 0;
  return strncmp(dir, root, rl) == 0 && (dir[rl] == '\0' || dir[rl] == '/');
}

/* The mission-root file of file f's mission folder (§2.8): the nearest
 * enclosing directory holding a mission.reqon|mission.vague that is part
 * of the compilation, searching upward but not above the command-line
 * argument that named f.  Returns its file index, or -1. */
static int folder_root(Ck *k, int f)
{
  const Source *src = &k->c->files[f];
  char dir[4096], root[4096], other[4096];
  size_t rl;
  bool file_arg;

  snprintf(root, sizeof root, "%s", src->root ? src->root : src->path);
  rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/')
    root[--rl] = '\0';
  file_arg = strcmp(root, src->path) == 0;
  dir_of(src->path, dir, sizeof dir);
  for (;;) {
    char *slash;
    for (int g = 0; g < k->c->n_files; g++) {
      if (!k->c->files[g].is_mission_root)
        continue;
      dir_of(k->c->files[g].path, other, sizeof other);
      if (strcmp(other, dir) == 0)
        return g;
    }
    if (file_arg || strcmp(dir, root) == 0 || !under_root(dir, root, rl))
      return -1;
    slash = strrchr(dir, '/');
    if (slash && slash != dir)
      *slash = '\0';
    else if (!slash && strcmp(dir, ".") != 0)
      snprintf(dir, sizeof dir, ".");
    else
      return -1;
    if (!under_root(dir, root, rl))
      return -1;
  }
}

typedef struct {
  int n_missions;      /* missions defined in the file */
  Mission *only;       /* the first of them */
  Node *second;        /* the second one, if any */
  int root;            /* folder_root(), computed once */
} FileInfo;

static void build_missions(Ck *k)
{
  Compilation *c = k->c;
  /* After a syntax error a mission may be missing from the tree; counting
   * it as absent would only add confusing follow-up errors. */
  bool parse_failed = c->n_errors > 0;
  Program *p = &c->prog;
  FileInfo *fi = arena_alloc(c->arena, sizeof *fi * (size_t)(c->n_files + 1));
  int n = 0, i = 0;

  for (Node *d = p->decls; d; d = d->next)
    if (d->kind == ND_MISSION)
      n++;
  p->missions = arena_alloc(c->arena, sizeof *p->missions * (size_t)(n + 1));
  k->order = arena_alloc(c->arena, sizeof *k->order * (size_t)(n + 1));
  p->n_missions = 0;
  for (int f = 0; f < c->n_files; f++)
    fi[f].root = folder_root(k, f);

  /* 1. missions, unique names, their own bodies */
  for (Node *d = p->decls; d; d = d->next) {
    Mission *m;
    if (d->kind != ND_MISSION)
      continue;
    for (i = 0; i < p->n_missions; i++)
      if (streq(p->missions[i]->name, d->name)) {
        diag_error(c, name_at(d), "duplicate mission '%s' (first defined "
                   "at %s)", d->name, where(k, name_at(p->missions[i]->decl)));
        break;
      }
    if (i < p->n_missions)
      continue;
    m = arena_alloc(c->arena, sizeof *m);
    m->decl = d;
    m->name = d->name;
    d->mission = m;
    d->index = p->n_missions;
    p->missions[p->n_missions++] = m;
    if (d->loc.file >= 0 && d->loc.file < c->n_files) {
      if (fi[d->loc.file].n_missions++ == 0)
        fi[d->loc.file].only = m;
      else if (!fi[d->loc.file].second)
        fi[d->loc.file].second = d;
    }
    for (Node *item = d->body; item; item = item->next)
      add_decl(k, m, item);
  }

  /* 2. folder rules */
  for (int f = 0; f < c->n_files; f++) {
    int r = fi[f].root;
    if (c->files[f].is_mission_root && fi[f].n_missions != 1 &&
        !(parse_failed && fi[f].n_missions == 0)) {
      Loc at = { f, 0, 0 };
      if (fi[f].second)
        at = name_at(fi[f].second);
      diag_error(c, at, "a mission folder's root file must define exactly "
                 "one mission (this one defines %d)", fi[f].n_missions);
    }
    if (r < 0 || r == f || fi[r].n_missions != 1 || fi[f].n_missions == 0)
      continue;
    for (i = 0; i < p->n_missions; i++) {
      Node *md = p->missions[i]->decl;
      if (md->loc.file == f)
        diag_error(c, name_at(md), "mission '%s' is inside the mission "
                   "folder of '%s'", md->name, fi[r].only->name);
    }
  }

  /* 3. loose declarations */
  for (Node *d = p->decls; d; d = d->next) {
    int f = d->loc.file;
    Mission *m = NULL;
    if (d->kind == ND_MISSION)
      continue;
    if (d->kind == ND_SOURCE || d->kind == ND_STORE) {
      diag_error(c, d->loc, "'%s' declarations must be inside a mission",
                 d->kind == ND_SOURCE ? "source" : "store");
      continue;
    }
    if (d->kind != ND_ACTION && d->kind != ND_SCHEMA &&
        d->kind != ND_TRANSFORM && d->kind != ND_LET)
      continue;
    if (f < 0 || f >= c->n_files)
      continue;
    if (fi[f].root >= 0 && fi[fi[f].root].n_missions == 1)
      m = fi[fi[f].root].only;
    else if (fi[f].n_missions == 1)
      m = fi[f].only;
    if (!m && !(parse_failed && fi[f].n_missions == 0)) {
      diag_error(c, name_at(d), "cannot attach '%s': no mission folder and "
                 "the file defines %d missions", str_or(d->name, "?"),
                 fi[f].n_missions);
      continue;
    }
    if (m)
      add_decl(k, m, d);
  }
}

/* ------------------------------------------------------------ missions */
static void check_pipeline(Ck *k, Node *run)
{
  Mission *m = k->m;

  for (Node *st = run->body; st; st = st->next) {
    if (st->kind != ND_STAGE)
      continue;
    for (Node *a = st->body; a; a = a->next) {
      Node *act = find_decl(&m->actions, a->name);
      if (!act) {
        Suggest s;
        suggest_init(&s, a->name);
        for (int i = 0; i < m->actions.len; i++)
          suggest_try(&s, m->actions.data[i]->name);
        diag_error(k->c, a->loc, "pipeline references unknown action '%s'%s",
                   str_or(a->name, "?"), suggest_text(k, &s));
        continue;
      }
      a->decl = act;
      if (!st->decl)
        st->decl = act;
    }
    check_expr(k, st->cond);
    st->mission = m;
    st->index = m->stages.len;
    vec_push(k->c, &m->stages, st);
  }
}

static void check_mission(Ck *k, Mission *m)
{
  Node *run = NULL, *sched = NULL;

  k->m = m;
  k->vars = NULL;
  k->implicit_first.len = 0;
  k->n_declared_stores = m->stores.len;

  for (int i = 0; i < m->actions.len; i++)
    collect_implicit(k, m->actions.data[i]->body);

  /* Mission lets are visible to the whole mission. */
  for (int i = 0; i < m->lets.len; i++)
    bind_checked(k, m->lets.data[i]->name, name_at(m->lets.data[i]));

  m->sched.kind = SCHED_NONE;
  m->sched.max_concurrency = 1;
  m->sched.skip_if_running = true;
  m->sched.retry_max = 3;
  m->sched.retry_delay_s = 60;
  for (int i = 0; i < k->order[m->decl->index].len; i++) {
    Node *d = k->order[m->decl->index].data[i];
    Var *saved = k->vars;
    switch (d->kind) {
    case ND_SOURCE:
      check_source(k, d);
      break;
    case ND_STORE:
      check_store_decl(k, d);
      break;
    case ND_SCHEMA:
      check_schema(k, d);
      break;
    case ND_TRANSFORM:
      check_transform(k, d);
      break;
    case ND_LET:
      check_expr(k, d->a);
      break;
    case ND_ACTION:
      check_steps(k, d->body);
      k->vars = saved;
      break;
    case ND_SCHEDULE:
      if (sched)
        diag_error(k->c, d->loc, "mission '%s' has more than one "
                   "schedule (first at %s)", m->name, where(k, sched->loc));
      else {
        check_schedule(k, d);
        sched = d;
      }
      break;
    case ND_PIPELINE:
      if (run)
        diag_error(k->c, d->loc, "mission '%s' has more than one run "
                   "line (first at %s)", m->name, where(k, run->loc));
      else {
        check_pipeline(k, d);
        run = d;
      }
      break;
    default:
      break;
    }
  }

  if (!run) {
    /* §4.3: no run line runs every action once, in declaration order. */
    for (int i = 0; i < m->actions.len; i++) {
      Node *act = m->actions.data[i];
      Node *st = new_node(k, ND_STAGE, act->loc);
      Node *nm = new_node(k, ND_NAME, name_at(act));
      nm->name = act->name;
      nm->name_loc = name_at(act);
      nm->decl = act;
      st->body = nm;
      st->decl = act;
      st->mission = m;
      st->index = m->stages.len;
      vec_push(k->c, &m->stages, st);
    }
  }
  k->m = NULL;
}

int check_program(Compilation *c)
{
  Ck k;
  int errors_before = c->n_errors;

  memset(&k, 0, sizeof k);
  k.c = c;
  build_missions(&k);
  for (int i = 0; i < c->prog.n_missions; i++)
    check_mission(&k, c->prog.missions[i]);
  c->prog.checked = c->n_errors == errors_before && c->n_errors == 0;
  return c->n_errors;
}
