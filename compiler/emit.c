/* emit.c -- checked AST -> one C file for the whole mission set.
 *
 * Design (ARCHITECTURE.md §2.1): configuration becomes DATA, expressions
 * become CODE.  Every mission turns into static const tables of the types
 * in runtime/reqon.h (sources, stores, schemas, transforms, step arrays,
 * stages) that the runtime interprets, and every expression into a small
 * static function of type RqExprFn that calls the runtime's value helpers.
 *
 * Output order: functions first (each one after the functions it calls),
 * then tables, children before parents, so no forward declarations are
 * needed.  Both are built in memory and written at the end, which lets
 * `#line` directives that return to the C file carry the real line.
 *
 * Inside an expression function every intermediate value lives in a slot
 * of the local array t[]; a slot holds a new reference or NULL (missing),
 * and the single exit label releases them all.  Each AST node gets its own
 * slot, so nothing is ever overwritten before it is released.
 *
 * The output is deterministic: the same input gives byte-identical C.
 * Emit cannot fail on user input; an impossible tree is a reqonc bug
 * (emit_bug).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reqonc.h"

/* A growable text buffer (arena-free: freed by emit_program). */
typedef struct {
  char *data;
  size_t len, cap;
} Str;

/* Where a step list goes on when it ends without leaving its scope: a
 * match arm or a validate or-block is not a scope (§4.1), so after it the
 * rest of the enclosing list still sees its `response`. */
typedef struct Cont {
  const Node *rest;        /* the steps after the match / validate */
  const struct Cont *up;   /* the enclosing list's own continuation */
} Cont;

typedef struct {
  Compilation *c;
  const EmitOptions *opt;
  const Cont *cont;   /* of the step list being generated; NULL: it ends
                         its scope (an action or a for body) */
  Str funcs;          /* generated expression functions */
  Str tables;         /* generated tables */
  const char *prefix; /* "rqm_<Mission>_" */
  Mission *m;
  int counter;        /* per-output counter for unique symbol numbers */
  unsigned wait_n;    /* wait steps of the mission numbered so far */
  const char **wait_paths; /* the mission's static wait paths (arena) */
  size_t n_wait_paths;
} Emit;

/* State of the function being generated. */
typedef struct {
  Str body;
  int n_temps;
  int cur_file, cur_line;  /* last #line written; -1 none */
  bool uses_done;          /* a "goto done" was written */
} Fn;

static void str_grow(Str *s, size_t n)
{
  if(s->len + n + 1 <= s->cap)
    return;
  size_t cap = s->cap ? s->cap * 2 : 4096;
  while(cap < s->len + n + 1)
    cap *= 2;
  s->data = realloc(s->data, cap);
  if(!s->data) {
    fputs("reqonc: out of memory\n", stderr);
    abort();
  }
  s->cap = cap;
}

static void str_add(Str *s, const char *p, size_t n)
{
  str_grow(s, n);
  memcpy(s->data + s->len, p, n);
  s->len += n;
  s->data[s->len] = '\0';
}

/* A zeroed array of n elements like *p, from the compilation arena (freed
 * with everything else at the end of main). */
#define ZALLOC(e, n, p) arena_alloc((e)->c->arena, (n) * sizeof *(p))

/* Appends a string literal (its length is known at compile time). */
#define STR_LIT(s, lit) str_add((s), (lit), sizeof(lit) - 1)

static void str_printf(Str *s, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static void str_printf(Str *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  str_grow(s, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s->len += (size_t)n;
}

static void emit_bug(const char *what)
{
  fprintf(stderr, "reqonc: internal error at compiler/emit.c: %s\n", what);
  abort();
}

/* The one function that writes a C string literal: escapes \ " ? and
 * every byte outside printable ASCII (octal, so a following digit can
 * never join the escape), and splits long literals across lines. */
static void emit_cstring_ex(Str *s, const char *p, size_t n, bool wrap);

static void emit_cstring(Str *s, const char *p, size_t n)
{
  emit_cstring_ex(s, p, n, true);
}

/* wrap=false for #line, where a literal must stay one piece. */
static void emit_cstring_ex(Str *s, const char *p, size_t n, bool wrap)
{
  STR_LIT(s, "\"");
  size_t col = 0;
  for(size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    char tmp[8];
    if(ch == '\\' || ch == '"' || ch == '?') {
      tmp[0] = '\\';
      tmp[1] = (char)ch;
      str_add(s, tmp, 2);
      col += 2;
    } else if(ch == '\n') {
      STR_LIT(s, "\\n");
      col += 2;
    } else if(ch < 0x20 || ch >= 0x7f) {
      snprintf(tmp, sizeof tmp, "\\%03o", ch);
      str_add(s, tmp, 4);
      col += 4;
    } else {
      tmp[0] = (char)ch;
      str_add(s, tmp, 1);
      col++;
    }
    if(wrap && col >= 60 && i + 1 < n) {
      STR_LIT(s, "\"\n    \"");
      col = 0;
    }
  }
  STR_LIT(s, "\"");
}

static void emit_cstr0(Str *s, const char *p)
{
  if(!p)
    STR_LIT(s, "NULL");
  else
    emit_cstring(s, p, strlen(p));
}

/* Nim-style mangling: [A-Za-z0-9_] pass through, other bytes become _XX;
 * a leading digit gets an X prefix. */
static void mangle(Str *s, const char *name)
{
  if(name[0] >= '0' && name[0] <= '9')
    STR_LIT(s, "X");
  for(const char *p = name; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
       (ch >= '0' && ch <= '9') || ch == '_')
      str_add(s, (const char *)p, 1);
    else
      str_printf(s, "_%02X", ch);
  }
}

static void linecol(Emit *e, Loc loc, int *line, int *col)
{
  if(loc.start < 0) {
    *line = 1;
    *col = 1;
    return;
  }
  source_linecol(e->c, loc, line, col);
}

/* RQ_AT / RQ_LOC text for loc. */
static void emit_at(Emit *e, Str *s, Loc loc, bool code)
{
  int line, col;
  linecol(e, loc, &line, &col);
  str_printf(s, "%s(%d, %d, %d)", code ? "RQ_LOC" : "RQ_AT",
             loc.file < 0 ? 0 : loc.file, line, col);
}

/* A new symbol name: prefix + role + number. */
static char *new_sym(Emit *e, const char *role)
{
  Str s = { 0 };
  str_printf(&s, "%s%s%d", e->prefix, role, e->counter++);
  char *r = arena_strndup(e->c->arena, s.data, s.len);
  free(s.data);
  return r;
}

/* Writes text inside a C comment: a path can hold any byte, so comment
 * terminators and control bytes are defused, and so is "??": C11 still
 * translates trigraphs, and a "??/" that ends a comment line (a command
 * line whose last argument is "dir??/") is a backslash-newline that
 * -Wall -Werror rejects. */
static void emit_comment_text(Str *s, const char *text)
{
  for(const char *p = text; *p; p++) {
    if((p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*')) {
      str_add(s, p, 1);
      STR_LIT(s, "_");    /* neither ends nor opens a comment */
      p++;
    } else if(p[0] == '?' && p[1] == '?') {
      STR_LIT(s, "?_");   /* the next '?' is written on its own */
    } else if((unsigned char)*p < 0x20) {
      STR_LIT(s, "?");
    } else {
      str_add(s, p, 1);
    }
  }
}

/* Writes "file:line:col" of loc, safe inside a C comment. */
static void emit_where(Emit *e, Str *s, Loc loc)
{
  int line, col;
  linecol(e, loc, &line, &col);
  emit_comment_text(s, loc.file >= 0 && loc.file < e->c->n_files
                         ? e->c->files[loc.file].path : "?");
  str_printf(s, ":%d:%d", line, col);
}

/* ------------------------------------------------------- expressions */

static int gen(Emit *e, Fn *f, const Node *n);
static const char *gen_function(Emit *e, const Node *n, const char *what);

/* Writes a #line for loc when its line differs from the last one. */
static void fn_line(Emit *e, Fn *f, Loc loc)
{
  if(e->opt->no_line || loc.start < 0)
    return;
  int line, col;
  linecol(e, loc, &line, &col);
  if(f->cur_file == loc.file && f->cur_line == line)
    return;
  f->cur_file = loc.file;
  f->cur_line = line;
  str_printf(&f->body, "#line %d ", line);
  const char *path = e->c->files[loc.file].path;
  emit_cstring_ex(&f->body, path, strlen(path), false);
  STR_LIT(&f->body, "\n");
}

static int temp(Fn *f)
{
  return f->n_temps++;
}

static size_t list_len(const Node *n)
{
  size_t len = 0;
  for(; n; n = n->next)
    len++;
  return len;
}

#define OUT(...) str_printf(&f->body, __VA_ARGS__)

static void check_rc(Fn *f)
{
  OUT("  if(rc)\n    goto done;\n");
  f->uses_done = true;
}

/* Moves slot `from` into slot `to`. */
static void move(Fn *f, int to, int from)
{
  OUT("  t[%d] = t[%d];\n  t[%d] = NULL;\n", to, from, from);
}

static const char *rq_op_name(OpKind op)
{
  switch(op) {
  case OP_ADD: return "RQ_OP_ADD";
  case OP_SUB: return "RQ_OP_SUB";
  case OP_MUL: return "RQ_OP_MUL";
  case OP_DIV: return "RQ_OP_DIV";
  case OP_MOD: return "RQ_OP_MOD";
  case OP_EQ: return "RQ_OP_EQ";
  case OP_NE: return "RQ_OP_NE";
  case OP_LT: return "RQ_OP_LT";
  case OP_LE: return "RQ_OP_LE";
  case OP_GT: return "RQ_OP_GT";
  case OP_GE: return "RQ_OP_GE";
  case OP_NEG: return "RQ_OP_NEG";
  case OP_PLUS: return "RQ_OP_PLUS";
  case OP_NOT: return "RQ_OP_NOT";
  default: emit_bug("operator has no runtime code");
  }
  return NULL;
}

/* Maps a type name of `is` / schema fields to its RqType (SPEC §4.12,
 * §5.3).  check.c has rejected unknown names. */
static const char *rq_type_name(const char *t)
{
  static const struct { const char *name, *code; } tab[] = {
    { "string", "RQ_TY_STRING" }, { "number", "RQ_TY_NUMBER" },
    { "decimal", "RQ_TY_NUMBER" }, { "float", "RQ_TY_NUMBER" },
    { "double", "RQ_TY_NUMBER" }, { "int", "RQ_TY_INT" },
    { "integer", "RQ_TY_INT" }, { "boolean", "RQ_TY_BOOLEAN" },
    { "bool", "RQ_TY_BOOLEAN" }, { "date", "RQ_TY_DATE" },
    { "datetime", "RQ_TY_DATE" }, { "array", "RQ_TY_ARRAY" },
    { "object", "RQ_TY_OBJECT" }, { "any", "RQ_TY_ANY" },
    { "null", "RQ_TY_NULL" }, { "undefined", "RQ_TY_UNDEFINED" },
  };
  for(size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if(t && strcmp(tab[i].name, t) == 0)
      return tab[i].code;
  emit_bug("unknown type name survived check");
  return NULL;
}

/* Builtin C function names, in builtins.def order. */
static const char *const builtin_fn[] = {
#define RQ_BUILTIN(name, fn, min, max) #fn,
#include "builtins.def"
#undef RQ_BUILTIN
};
static const char *const builtin_name[] = {
#define RQ_BUILTIN(name, fn, min, max) #name,
#include "builtins.def"
#undef RQ_BUILTIN
};

static void gen_number(Fn *f, int r, double v)
{
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", v);
  /* keep it a C floating literal */
  OUT("  t[%d] = rq_num(%s%s);\n", r, buf, strpbrk(buf, ".eEn") ? "" : ".0");
}

/* The store a path placeholder's first segment names (p[0..n) up to the
 * first '.'), or NULL.  A name cannot be both a variable and a store
 * (binding a store name is a compile error), so a store name in a
 * placeholder always means the store, as in any expression (§5.2 step
 * 2). */
static const Node *placeholder_store(const Mission *m, const char *p,
                                     size_t n)
{
  size_t i = 0;
  while(i < n && p[i] != '.')
    i++;
  for(int k = 0; m && k < m->stores.len; k++) {
    const Node *st = m->stores.data[k];
    if(st->name && strlen(st->name) == i && memcmp(st->name, p, i) == 0)
      return st;
  }
  return NULL;
}

/* Resolves a name path inside a path placeholder like a bare name
 * (SPEC §5.2): `response`, a store, else a variable, falling back to
 * the subject and response fields at run time. */
static void gen_path_name(Emit *e, Fn *f, int r, const char *p, size_t n,
                          Loc at)
{
  /* first segment */
  size_t i = 0;
  while(i < n && p[i] != '.')
    i++;
  const Node *store = placeholder_store(e->m, p, n);
  if(store) {
    OUT("  rc = rq_store_records(env, ");
    emit_at(e, &f->body, at, true);
    OUT(", %d, &t[%d]);\n", store->index, r);
    check_rc(f);
  } else if(i == 8 && memcmp(p, "response", 8) == 0) {
    /* the keyword, as in any expression (SPEC §5.2): never a variable,
     * and not a field called "response" */
    OUT("  t[%d] = rq_response(env);\n", r);
  } else {
    OUT("  t[%d] = rq_var(env, ", r);
    emit_cstring(&f->body, p, i);
    OUT(");\n  if(t[%d] == NULL)\n    t[%d] = rq_name(env, ", r, r);
    emit_cstring(&f->body, p, i);
    OUT(");\n");
  }
  while(i < n) {
    size_t j = ++i;
    while(j < n && p[j] != '.')
      j++;
    int s = temp(f);
    OUT("  t[%d] = rq_field(t[%d], ", s, r);
    emit_cstring(&f->body, p + i, j - i);
    OUT(");\n");
    OUT("  rq_release(&t[%d], 1);\n", r);
    move(f, r, s);
    i = j;
  }
}

static bool is_ident_start(char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static bool is_ident_char(char ch)
{
  return is_ident_start(ch) || (ch >= '0' && ch <= '9');
}

/* Is p[0..n) a dotted name path "a.b.c"? */
static bool is_name_path(const char *p, size_t n)
{
  if(n == 0 || !is_ident_start(p[0]))
    return false;
  for(size_t i = 1; i < n; i++) {
    if(p[i] == '.') {
      if(i + 1 >= n || !is_ident_start(p[i + 1]))
        return false;
    } else if(!is_ident_char(p[i])) {
      return false;
    }
  }
  return true;
}

/* A string-literal HTTP path with {a.b} placeholders (SPEC §4.4): literal
 * pieces are appended as they are, placeholder values percent-encoded. */
static int gen_path_template(Emit *e, Fn *f, const Node *n)
{
  int r = temp(f);
  const char *p = n->str;
  size_t len = n->len;
  fn_line(e, f, n->loc);
  OUT("  t[%d] = rq_str(\"\", 0);\n", r);
  size_t lit = 0;
  for(size_t i = 0; i < len; i++) {
    if(p[i] != '{')
      continue;
    size_t j = i + 1;
    while(j < len && p[j] != '}')
      j++;
    if(j >= len || !is_name_path(p + i + 1, j - i - 1))
      continue;
    if(i > lit) {
      OUT("  rq_str_append(t[%d], ", r);
      emit_cstring(&f->body, p + lit, i - lit);
      OUT(", %zu);\n", i - lit);
    }
    int v = temp(f);
    gen_path_name(e, f, v, p + i + 1, j - i - 1, n->loc);
    OUT("  rq_str_append_enc(t[%d], t[%d]);\n  t[%d] = NULL;\n", r, v, v);
    lit = j + 1;
    i = j;
  }
  if(len > lit) {
    OUT("  rq_str_append(t[%d], ", r);
    emit_cstring(&f->body, p + lit, len - lit);
    OUT(", %zu);\n", len - lit);
  }
  return r;
}

static bool has_placeholder(const Node *n)
{
  for(size_t i = 0; i < n->len; i++) {
    if(n->str[i] != '{')
      continue;
    size_t j = i + 1;
    while(j < n->len && n->str[j] != '}')
      j++;
    if(j < n->len && is_name_path(n->str + i + 1, j - i - 1))
      return true;
  }
  return false;
}

static int gen_call(Emit *e, Fn *f, const Node *n)
{
  int r = temp(f);
  int argc = 0;
  if(n->builtin < 0 ||
     (size_t)n->builtin >= sizeof builtin_fn / sizeof builtin_fn[0])
    emit_bug("call without a builtin");
  const char *bname = builtin_name[n->builtin];
  if(strcmp(bname, "lookup") == 0) {
    const Node *st = n->body;
    const Node *key = st ? st->next : NULL;
    if(!st || !key || !st->decl)
      emit_bug("lookup without a resolved store");
    int k = gen(e, f, key);
    fn_line(e, f, n->loc);
    OUT("  rc = rq_lookup(env, ");
    emit_at(e, &f->body, n->loc, true);
    OUT(", %d, t[%d], &t[%d]);\n", st->decl->index, k, r);
    check_rc(f);
    return r;
  }
  /* variadic builtins (concat, min, max) take any number of arguments,
   * so the slot list is sized from the call, not fixed */
  int n_args = 0;
  for(const Node *a = n->body; a; a = a->next)
    n_args++;
  int *args = ZALLOC(e, (size_t)(n_args ? n_args : 1), args);
  for(const Node *a = n->body; a; a = a->next)
    args[argc++] = gen(e, f, a);
  fn_line(e, f, n->loc);
  if(argc == 0) {
    OUT("  rc = %s(env, ", builtin_fn[n->builtin]);
    emit_at(e, &f->body, n->loc, true);
    OUT(", 0, NULL, &t[%d]);\n", r);
  } else {
    OUT("  {\n    json_t *const argv[] = {");
    for(int i = 0; i < argc; i++)
      OUT("%s t[%d]", i ? "," : "", args[i]);
    OUT(" };\n    rc = %s(env, ", builtin_fn[n->builtin]);
    emit_at(e, &f->body, n->loc, true);
    OUT(", %d, argv, &t[%d]);\n  }\n", argc, r);
  }
  check_rc(f);
  return r;
}

static int gen_matchexpr(Emit *e, Fn *f, const Node *n)
{
  int r = temp(f);
  int s = gen(e, f, n->a);
  int done = temp(f);   /* a slot number used as a unique flag name */
  OUT("  int m%d = 0;\n", done);
  for(const Node *arm = n->body; arm; arm = arm->next) {
    OUT("  if(!m%d) {\n", done);
    if(arm->word && strcmp(arm->word, "_") == 0 && !arm->cond) {
      OUT("  m%d = 1;\n", done);
      int v = gen(e, f, arm->b);
      move(f, r, v);
    } else if(arm->word && strcmp(arm->word, "_") == 0) {
      const char *g = gen_function(e, arm->cond, "match guard");
      int gv = temp(f);
      OUT("  rc = rq_with_subject(env, t[%d], NULL, %s, &t[%d]);\n", s, g,
          gv);
      check_rc(f);
      OUT("  if(rq_truthy(t[%d])) {\n  m%d = 1;\n", gv, done);
      int v = gen(e, f, arm->b);
      move(f, r, v);
      OUT("  }\n");
    } else if(arm->name) {
      /* n where c => r: n is bound to the value in c and r */
      const char *g = gen_function(e, arm->cond, "match guard");
      const char *res = gen_function(e, arm->b, "match result");
      int gv = temp(f);
      OUT("  rc = rq_with_subject(env, t[%d], ", s);
      emit_cstr0(&f->body, arm->name);
      OUT(", %s, &t[%d]);\n", g, gv);
      check_rc(f);
      OUT("  if(rq_truthy(t[%d])) {\n  m%d = 1;\n", gv, done);
      OUT("  rc = rq_with_subject(env, t[%d], ", s);
      emit_cstr0(&f->body, arm->name);
      OUT(", %s, &t[%d]);\n", res, r);
      check_rc(f);
      OUT("  }\n");
    } else {
      int p = gen(e, f, arm->a);
      int eq = temp(f);
      OUT("  rc = rq_binop(env, ");
      emit_at(e, &f->body, arm->loc, true);
      OUT(", RQ_OP_EQ, t[%d], t[%d], &t[%d]);\n", s, p, eq);
      check_rc(f);
      OUT("  if(rq_truthy(t[%d])) {\n  m%d = 1;\n", eq, done);
      int v = gen(e, f, arm->b);
      move(f, r, v);
      OUT("  }\n");
    }
    OUT("  }\n");
  }
  OUT("  (void)m%d;\n", done);
  return r;
}

/* Generates code computing n into a fresh slot; returns the slot. */
static int gen(Emit *e, Fn *f, const Node *n)
{
  int r, a, b;
  if(!n)
    emit_bug("missing expression");
  fn_line(e, f, n->loc);
  switch(n->kind) {
  case ND_NUM:
    r = temp(f);
    gen_number(f, r, n->num);
    return r;
  case ND_STR:
    r = temp(f);
    OUT("  t[%d] = rq_str(", r);
    emit_cstring(&f->body, n->str ? n->str : "", n->len);
    OUT(", %zu);\n", n->len);
    return r;
  case ND_BOOL:
    r = temp(f);
    OUT("  t[%d] = rq_bool(%d);\n", r, n->flag ? 1 : 0);
    return r;
  case ND_NULL:
    r = temp(f);
    OUT("  t[%d] = rq_null();\n", r);
    return r;
  case ND_RESPONSE:
    r = temp(f);
    OUT("  t[%d] = rq_response(env);\n", r);
    return r;
  case ND_NAME:
    r = temp(f);
    if(n->ref == REF_VAR) {
      OUT("  t[%d] = rq_var(env, ", r);
      emit_cstr0(&f->body, n->name);
      OUT(");\n");
    } else if(n->ref == REF_STORE && n->decl) {
      OUT("  rc = rq_store_records(env, ");
      emit_at(e, &f->body, n->loc, true);
      OUT(", %d, &t[%d]);\n", n->decl->index, r);
      check_rc(f);
    } else {
      OUT("  t[%d] = rq_name(env, ", r);
      emit_cstr0(&f->body, n->name);
      OUT(");\n");
    }
    return r;
  case ND_FIELDREF:
    r = temp(f);
    OUT("  t[%d] = rq_subject_field(env, ", r);
    emit_cstr0(&f->body, n->name);
    OUT(");\n");
    return r;
  case ND_MEMBER:
    a = gen(e, f, n->a);
    r = temp(f);
    OUT("  t[%d] = rq_field(t[%d], ", r, a);
    emit_cstr0(&f->body, n->name);
    OUT(");\n");
    return r;
  case ND_INDEX:
    a = gen(e, f, n->a);
    b = gen(e, f, n->b);
    r = temp(f);
    OUT("  t[%d] = rq_index(t[%d], t[%d]);\n", r, a, b);
    return r;
  case ND_CALL:
    return gen_call(e, f, n);
  case ND_UNARY:
    a = gen(e, f, n->a);
    r = temp(f);
    if(n->op == OP_NOT) {
      OUT("  t[%d] = rq_bool(!rq_truthy(t[%d]));\n", r, a);
      return r;
    }
    OUT("  rc = rq_unop(env, ");
    emit_at(e, &f->body, n->loc, true);
    OUT(", %s, t[%d], &t[%d]);\n", rq_op_name(n->op), a, r);
    check_rc(f);
    return r;
  case ND_BINARY:
    r = temp(f);
    a = gen(e, f, n->a);
    if(n->op == OP_AND || n->op == OP_OR) {
      /* value-returning, short-circuit (SPEC §5.3) */
      OUT("  if(%srq_truthy(t[%d])) {\n", n->op == OP_AND ? "" : "!", a);
      b = gen(e, f, n->b);
      move(f, r, b);
      OUT("  } else {\n");
      move(f, r, a);
      OUT("  }\n");
      return r;
    }
    if(n->op == OP_COALESCE) {
      OUT("  if(t[%d] == NULL || json_is_null(t[%d])) {\n", a, a);
      b = gen(e, f, n->b);
      move(f, r, b);
      OUT("  } else {\n");
      move(f, r, a);
      OUT("  }\n");
      return r;
    }
    b = gen(e, f, n->b);
    fn_line(e, f, n->loc);
    OUT("  rc = rq_binop(env, ");
    emit_at(e, &f->body, n->loc, true);
    OUT(", %s, t[%d], t[%d], &t[%d]);\n", rq_op_name(n->op), a, b, r);
    check_rc(f);
    return r;
  case ND_COND:
    r = temp(f);
    a = gen(e, f, n->cond);
    OUT("  if(rq_truthy(t[%d])) {\n", a);
    b = gen(e, f, n->a);
    move(f, r, b);
    OUT("  } else {\n");
    b = gen(e, f, n->b);
    move(f, r, b);
    OUT("  }\n");
    return r;
  case ND_IS:
    a = gen(e, f, n->a);
    r = temp(f);
    OUT("  t[%d] = rq_is(t[%d], %s);\n", r, a, rq_type_name(n->word));
    return r;
  case ND_ARRAY:
    r = temp(f);
    OUT("  t[%d] = rq_array();\n", r);
    for(const Node *el = n->body; el; el = el->next) {
      a = gen(e, f, el);
      OUT("  rq_array_add(t[%d], t[%d]);\n  t[%d] = NULL;\n", r, a, a);
    }
    return r;
  case ND_OBJECT:
    r = temp(f);
    OUT("  t[%d] = rq_object();\n", r);
    for(const Node *en = n->body; en; en = en->next) {
      a = gen(e, f, en->a);
      if(en->flag) {
        OUT("  rc = rq_object_spread(env, ");
        emit_at(e, &f->body, en->loc, true);
        OUT(", t[%d], t[%d]);\n", r, a);
        check_rc(f);
      } else {
        /* a String key's length counts its NUL bytes (reqon.y) */
        size_t kl = en->flag2 ? en->len : strlen(en->name ? en->name : "");
        OUT("  rq_object_add(t[%d], ", r);
        emit_cstring(&f->body, en->name ? en->name : "", kl);
        OUT(", %zu, t[%d]);\n  t[%d] = NULL;\n", kl, a, a);
      }
    }
    return r;
  case ND_MATCHEXPR:
    return gen_matchexpr(e, f, n);
  case ND_ANYOF: {
    a = gen(e, f, n->a);
    r = temp(f);
    const char *w = n->cond ? gen_function(e, n->cond, "any-of filter")
                            : NULL;
    OUT("  rc = rq_any_of(env, ");
    emit_at(e, &f->body, n->loc, true);
    OUT(", t[%d], %s, &t[%d]);\n", a, w ? w : "NULL", r);
    check_rc(f);
    return r;
  }
  default:
    emit_bug("node is not an expression");
  }
  return -1;
}

/* Source text of n, for comments and validation messages. */
static const char *node_text(Emit *e, const Node *n, size_t *len)
{
  if(!n || n->loc.start < 0 || n->loc.file < 0) {
    *len = 0;
    return "";
  }
  const Source *src = &e->c->files[n->loc.file];
  *len = (size_t)(n->loc.end - n->loc.start);
  return src->text + n->loc.start;
}

/* Writes a comment quoting the source of n on one line (at most 70
 * bytes; no comment terminators). */
static void emit_quote(Emit *e, Str *s, const Node *n)
{
  size_t len;
  const char *p = node_text(e, n, &len);
  size_t out = 0;
  for(size_t i = 0; i < len && out < 70; i++, out++) {
    char ch = p[i];
    if(ch == '\n' || ch == '\r' || ch == '\t')
      ch = ' ';
    /* defuse comment delimiters: neither "*" + "/" nor "/" + "*" */
    if(ch == '*' && i + 1 < len && p[i + 1] == '/')
      ch = '+';
    if(ch == '*' && i > 0 && p[i - 1] == '/')
      ch = '+';
    if((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f)
      ch = '?';
    str_add(s, &ch, 1);
  }
  if(len > 70)
    STR_LIT(s, "...");
}

/* Appends a generated function body with its indentation recomputed from
 * the braces, so nested branches read like hand-written C.  Statements
 * are generated flat; only "{" / "}" line ends and braceless if-bodies
 * change the depth. */
static void reindent(Str *s, const char *body)
{
  int depth = 1;
  bool braceless_if = false;
  const char *p = body;
  while(*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    const char *q = p;
    while(q < p + len && *q == ' ')
      q++;
    size_t n = len - (size_t)(q - p);
    if(n > 0 && q[0] == '#') {            /* #line: column 0 */
      str_add(s, q, n);
    } else if(n > 0) {
      if(q[0] == '}')
        depth--;
      int d = depth + (braceless_if ? 1 : 0);
      for(int i = 0; i < d; i++)
        STR_LIT(s, "  ");
      str_add(s, q, n);
      braceless_if = strncmp(q, "if(", 3) == 0 && q[n - 1] != '{';
      if(q[n - 1] == '{')
        depth++;
    }
    STR_LIT(s, "\n");
    p += len + (nl ? 1 : 0);
  }
}

/* Slots above which a function is marked RQ_BIG_FN. */
#define BIG_FN_TEMPS 1000

/* Generates a whole RqExprFn for expression n; returns its name. The path
 * flag selects the placeholder treatment of string-literal HTTP paths. */
static const char *gen_function_ex(Emit *e, const Node *n, const char *what,
                                   bool path)
{
  Fn f = { { 0 }, 0, -1, -1, false };
  int r;
  if(path && n->kind == ND_STR && has_placeholder(n))
    r = gen_path_template(e, &f, n);
  else
    r = gen(e, &f, n);
  const char *name = new_sym(e, "e");
  Str *s = &e->funcs;
  str_printf(s, "/* %s at ", what);
  emit_where(e, s, n->loc);
  STR_LIT(s, ": ");
  emit_quote(e, s, n);
  STR_LIT(s, " */\n");
  /* Every call in a function passes its slot array t (or &t[i]) along,
   * and GCC's points-to analysis is then superlinear in the number of
   * calls: a 5000-element array literal took minutes at -O2.  Such
   * functions opt out of that one pass (RQ_BIG_FN, from reqon.h). */
  if(f.n_temps > BIG_FN_TEMPS)
    STR_LIT(s, "RQ_BIG_FN\n");
  str_printf(s, "static int %s(const RqEnv *env, json_t **out)\n{\n",
             name);
  str_printf(s, "  json_t *t[%d] = { NULL };\n  int rc = 0;\n  (void)env;\n",
             f.n_temps);
  reindent(s, f.body.data ? f.body.data : "");
  if(!e->opt->no_line && f.cur_line >= 0)
    STR_LIT(s, "#line @C@\n");  /* resolved in emit_program */
  str_printf(s, "  *out = t[%d];\n  t[%d] = NULL;\n", r, r);
  str_printf(s, "%s  rq_release(t, %d);\n  return rc;\n}\n\n",
             f.uses_done ? "done:\n" : "", f.n_temps);
  free(f.body.data);
  return name;
}

static const char *gen_function(Emit *e, const Node *n, const char *what)
{
  return gen_function_ex(e, n, what, false);
}

/* "fn" or "NULL" */
static const char *opt_fn(Emit *e, const Node *n, const char *what)
{
  return n ? gen_function(e, n, what) : "NULL";
}

/* ------------------------------------------------------------ tables */

/* An RqKV table for the entries of an ND_OBJECT; returns its name, or
 * NULL when there are none.  *count gets the number of entries. */
static const char *gen_kv(Emit *e, const Node *obj, const char *what,
                          size_t *count)
{
  *count = 0;
  if(!obj)
    return NULL;
  size_t n = list_len(obj->body);
  if(n == 0)
    return NULL;
  const char **fns = ZALLOC(e, n, fns);
  size_t i = 0;
  for(const Node *en = obj->body; en; en = en->next)
    fns[i++] = gen_function(e, en->a, what);
  const char *name = new_sym(e, "kv");
  Str *s = &e->tables;
  str_printf(s, "/* %s at ", what);
  emit_where(e, s, obj->loc);
  str_printf(s, " */\nstatic const RqKV %s[] = {\n", name);
  i = 0;
  for(const Node *en = obj->body; en; en = en->next) {
    const char *k = en->name ? en->name : "";
    STR_LIT(s, "  { ");
    emit_cstring(s, k, strlen(k));
    str_printf(s, ", %zu, %s },\n", strlen(k), fns[i++]);
  }
  STR_LIT(s, "};\n\n");
  *count = n;
  return name;
}

static const char *backoff_name(BackoffKind b)
{
  switch(b) {
  case BACKOFF_LINEAR: return "RQ_BACKOFF_LINEAR";
  case BACKOFF_CONSTANT: return "RQ_BACKOFF_CONSTANT";
  default: return "RQ_BACKOFF_EXPONENTIAL";
  }
}

static void emit_retry(Str *s, const RetryOpts *r)
{
  RetryOpts d = { false, 3, BACKOFF_EXPONENTIAL, 1000, 30000 };
  if(!r)
    r = &d;
  str_printf(s, "{ %d, %s, %.17g, %.17g }", r->max_attempts,
             backoff_name(r->backoff), r->initial_ms, r->max_ms);
}

static const char *gen_steps(Emit *e, const Node *list, const char *what,
                             size_t *count);

static const char *step_label(const Node *st)
{
  switch(st->kind) {
  case ND_HTTP: return "fetch";
  case ND_CALLOP: return "call";
  case ND_FOR: return "for";
  case ND_MAP: return "map";
  case ND_APPLY: return "apply";
  case ND_VALIDATE: return "validate";
  case ND_STORESTEP: return "store";
  case ND_MATCH: return "match";
  case ND_LET: return "let";
  case ND_WAIT: return "wait";
  case ND_DIRECTIVE: return st->word ? st->word : "directive";
  default: return "step";
  }
}

static void upper(char *dst, const char *src, size_t n)
{
  size_t i = 0;
  for(; src[i] && i + 1 < n; i++)
    dst[i] = (char)((src[i] >= 'a' && src[i] <= 'z') ? src[i] - 32
                                                     : src[i]);
  dst[i] = '\0';
}

/* Per-step sub-tables (generated before the step array). */
typedef struct {
  const char *path, *body, *query, *until, *since_expr, *headers;
  size_t n_headers;
  const char *expr, *where, *key, *message;
  const char *steps;
  size_t n_steps;
  const char *fields;
  size_t n_fields;
  const char *assumes;
  size_t n_assumes;
  const char *arms;
  size_t n_arms;
  unsigned wait_n;
} StepParts;

static const char *gen_assumes(Emit *e, const Node *list, size_t *count)
{
  size_t n = list_len(list);
  *count = n;
  if(n == 0)
    return NULL;
  const char **fns = ZALLOC(e, n, fns);
  size_t i = 0;
  for(const Node *a = list; a; a = a->next)
    fns[i++] = gen_function(e, a->a, "assume");
  const char *name = new_sym(e, "assume");
  Str *s = &e->tables;
  str_printf(s, "static const RqAssume %s[] = {\n", name);
  i = 0;
  for(const Node *a = list; a; a = a->next) {
    size_t len;
    const char *txt = node_text(e, a->a, &len);
    str_printf(s, "  { %s, ", fns[i++]);
    emit_cstring(s, txt, len);
    STR_LIT(s, ", ");
    emit_at(e, s, a->loc, false);
    STR_LIT(s, " },\n");
  }
  STR_LIT(s, "};\n\n");
  return name;
}

static const char *gen_arms(Emit *e, const Node *list, size_t *count)
{
  size_t n = list_len(list);
  *count = n;
  if(n == 0)
    return NULL;
  const char **guards = ZALLOC(e, n, guards);
  const char **steps = ZALLOC(e, n, steps);
  size_t *nsteps = ZALLOC(e, n, nsteps);
  size_t i = 0;
  for(const Node *a = list; a; a = a->next, i++) {
    guards[i] = a->cond ? gen_function(e, a->cond, "arm guard") : "NULL";
    steps[i] = gen_steps(e, a->body, "match arm", &nsteps[i]);
  }
  const char *name = new_sym(e, "arms");
  Str *s = &e->tables;
  str_printf(s, "static const RqArm %s[] = {\n", name);
  i = 0;
  for(const Node *a = list; a; a = a->next, i++) {
    const char *kind = "RQ_ARM_WILDCARD";
    int schema = -1;
    if(!(a->word && strcmp(a->word, "_") == 0)) {
      kind = a->flag ? "RQ_ARM_SCHEMA_ARRAY" : "RQ_ARM_SCHEMA";
      if(!a->decl)
        emit_bug("match arm without a resolved schema");
      schema = a->decl->index;
    }
    str_printf(s, "  { %s, %d, %s, %s, %zu, ", kind, schema, guards[i],
               steps[i] ? steps[i] : "NULL", nsteps[i]);
    emit_at(e, s, a->loc, false);
    STR_LIT(s, " },\n");
  }
  STR_LIT(s, "};\n\n");
  return name;
}

static const char *directive_name(const char *w)
{
  if(strcmp(w, "continue") == 0) return "RQ_DIR_CONTINUE";
  if(strcmp(w, "skip") == 0) return "RQ_DIR_SKIP";
  if(strcmp(w, "abort") == 0) return "RQ_DIR_ABORT";
  if(strcmp(w, "retry") == 0) return "RQ_DIR_RETRY";
  if(strcmp(w, "queue") == 0) return "RQ_DIR_QUEUE";
  if(strcmp(w, "jump") == 0) return "RQ_DIR_JUMP";
  emit_bug("unknown directive");
  return NULL;
}

static const char *pg_name(PaginateKind k)
{
  switch(k) {
  case PG_OFFSET: return "RQ_PG_OFFSET";
  case PG_PAGE: return "RQ_PG_PAGE";
  case PG_CURSOR: return "RQ_PG_CURSOR";
  default: return "RQ_PG_NONE";
  }
}

static const char *since_name(SinceKind k)
{
  switch(k) {
  case SINCE_LASTSYNC: return "RQ_SINCE_LASTSYNC";
  case SINCE_EXPR: return "RQ_SINCE_EXPR";
  default: return "RQ_SINCE_NONE";
  }
}

/* ------------------------------------------------- streaming (§6.5)
 * A paginated HTTP step streams its pages into the store step after it
 * (RqStep.stream_store) when its result is used ONLY by that step, i.e.
 * nothing that runs later could tell the concatenated item array from
 * the null a streaming step leaves in `response`:
 *
 *   1. the next step in the same list is `store response -> S` (the
 *      keyword response itself, not a part of it), and its key
 *      expression uses neither `response` (keys are computed page by
 *      page, before the array exists) nor status()/header() (the last
 *      page is not known yet): key_sees_step;
 *   2. no later step reads `response` before an HTTP step replaces it
 *      (an HTTP step either sets response or fails the action): the rest
 *      of the list, and, when the list is a match arm or a validate
 *      or-block, the rest of each enclosing list (Cont), up to the end of
 *      the for body or action, since each iteration and each action
 *      attempt starts from a new scope and `jump` runs its action in a
 *      fresh one.  A retry re-runs from an HTTP step, which replaces
 *      response before anything reads it.
 *
 * A step "reads response" when an expression in it or in any step nested
 * in it may read it (reads_step): the keyword `response`; a bare name
 * that resolves to a field (it falls back to a field of response, §5.2);
 * `.field` wherever the subject may be response (all step operands; not
 * a store key, a for filter, an assumption, an arm guard, map or
 * transform fields, whose subject is something else); a path
 * placeholder that is not a store; `queue` (it stores the subject) and
 * `wait`.  Nested step lists are judged as a whole, conservatively.
 *
 * status() and header() used after the store step do not prevent
 * streaming: the streaming step sets them from the last page exactly as
 * the non-streaming one does.  Everything else (a following match, a
 * later reader of response, an unpaginated step) keeps the concatenated
 * array. */

static bool reads_expr(const Emit *e, const Node *n, bool subj);
static bool reads_list(const Emit *e, const Node *list);

/* Could key expression n (and its siblings) tell a streaming step from
 * a non-streaming one?  It could through `response`, status() and
 * header().  A bare name's fallback to a field of response cannot: the
 * runtime evaluates streamed keys with response null, which has no
 * fields, like the concatenated array. */
static bool key_sees_step(const Node *n)
{
  for(; n; n = n->next) {
    if(n->kind == ND_RESPONSE)
      return true;
    if(n->kind == ND_CALL && n->name && (strcmp(n->name, "status") == 0 ||
                                         strcmp(n->name, "header") == 0))
      return true;
    if(key_sees_step(n->a) || key_sees_step(n->b) ||
       key_sees_step(n->cond) || key_sees_step(n->body) ||
       key_sees_step(n->els) || key_sees_step(n->opts))
      return true;
  }
  return false;
}

/* May expression n (and its siblings) read response?  subj: the subject
 * of n's context may be response. */
static bool reads_expr(const Emit *e, const Node *n, bool subj)
{
  for(; n; n = n->next) {
    switch(n->kind) {
    case ND_RESPONSE:
      return true;
    case ND_FIELDREF:
      if(subj)
        return true;
      break;
    case ND_NAME:
      if(n->ref == REF_FIELD)
        return true;
      break;
    case ND_ANYOF:
      if(reads_expr(e, n->a, subj) || reads_expr(e, n->cond, false))
        return true;
      continue;
    case ND_MATCHEXPR:
      if(reads_expr(e, n->a, subj))
        return true;
      for(const Node *arm = n->body; arm; arm = arm->next) {
        if(reads_expr(e, arm->a, subj) || reads_expr(e, arm->cond, false) ||
           reads_expr(e, arm->b, subj))
          return true;
      }
      continue;
    default:
      break;
    }
    if(reads_expr(e, n->a, subj) || reads_expr(e, n->b, subj) ||
       reads_expr(e, n->cond, subj) || reads_expr(e, n->body, subj) ||
       reads_expr(e, n->els, subj) || reads_expr(e, n->opts, subj))
      return true;
  }
  return false;
}

/* Does a string-literal path have a placeholder that is not a store
 * (a variable, else a subject or response field at run time)? */
static bool path_reads(const Emit *e, const Node *path)
{
  const char *p = path->str;
  for(size_t i = 0; p && i < path->len; i++) {
    if(p[i] != '{')
      continue;
    size_t j = i + 1;
    while(j < path->len && p[j] != '}')
      j++;
    if(j >= path->len || !is_name_path(p + i + 1, j - i - 1))
      continue;
    if(!placeholder_store(e->m, p + i + 1, j - i - 1))
      return true;
    i = j;
  }
  return false;
}

/* May step st (alone, with everything nested in it) read response? */
static bool reads_step(const Emit *e, const Node *st)
{
  switch(st->kind) {
  case ND_HTTP: {
    const FetchOpts *fo = st->fetch;
    if(!fo)
      return true;
    if(st->a && st->a->kind == ND_STR ? path_reads(e, st->a)
                                      : reads_expr(e, st->a, true))
      return true;
    /* `until` sees the page as subject and response: not ours. */
    return reads_expr(e, fo->body, true) || reads_expr(e, fo->query, true) ||
           reads_expr(e, fo->headers, true) ||
           reads_expr(e, fo->since_expr, true);
  }
  case ND_FOR:
    return reads_expr(e, st->a, true) || reads_expr(e, st->cond, false) ||
           reads_list(e, st->body);
  case ND_MAP:
    return reads_expr(e, st->a, true) || reads_expr(e, st->opts, false);
  case ND_APPLY:
    return reads_expr(e, st->a, true) ||
           (st->decl && reads_expr(e, st->decl->body, false));
  case ND_VALIDATE:
    return reads_expr(e, st->a, true) || reads_expr(e, st->body, false) ||
           reads_list(e, st->els);
  case ND_STORESTEP:
    return reads_expr(e, st->a, true) ||
           (st->store && reads_expr(e, st->store->key, false));
  case ND_MATCH:
    if(reads_expr(e, st->a, true))
      return true;
    for(const Node *arm = st->body; arm; arm = arm->next) {
      if(reads_expr(e, arm->cond, false) || reads_list(e, arm->body))
        return true;
    }
    return false;
  case ND_LET:
    return reads_expr(e, st->a, true);
  case ND_DIRECTIVE:
    if(st->word && strcmp(st->word, "queue") == 0)
      return true;
    return reads_expr(e, st->a, true);
  default:                      /* wait, and anything new */
    return true;
  }
}

static bool reads_list(const Emit *e, const Node *list)
{
  for(; list; list = list->next) {
    if(reads_step(e, list))
      return true;
  }
  return false;
}

/* Rules 1 and 2 above for HTTP step st of the list being generated. */
static bool stream_ok(const Emit *e, const Node *st)
{
  const Node *ss = st->next;
  const Cont *cont = e->cont;

  if(st->kind != ND_HTTP || !st->fetch || st->fetch->pg_kind == PG_NONE)
    return false;
  if(!ss || ss->kind != ND_STORESTEP || !ss->decl || !ss->a ||
     ss->a->kind != ND_RESPONSE)
    return false;
  if(ss->store && key_sees_step(ss->store->key))
    return false;
  for(const Node *n = ss->next;;) {
    for(; n; n = n->next) {
      if(reads_step(e, n))
        return false;
      if(n->kind == ND_HTTP)
        return true;            /* replaces response */
    }
    if(!cont)
      return true;              /* the scope ends */
    n = cont->rest;
    cont = cont->up;
  }
}

/* Adds path to the mission's static wait paths (once each). */
static void add_wait_path(Emit *e, const char *path)
{
  for(size_t i = 0; i < e->n_wait_paths; i++) {
    if(strcmp(e->wait_paths[i], path) == 0)
      return;
  }
  const char **v = arena_alloc(e->c->arena,
                               (e->n_wait_paths + 1) * sizeof *v);
  if(e->n_wait_paths)
    memcpy(v, e->wait_paths, e->n_wait_paths * sizeof *v);
  v[e->n_wait_paths++] = path;
  e->wait_paths = v;
}

/* Generates the sub-tables of one step into *p. */
static void gen_step_parts(Emit *e, const Node *st, StepParts *p)
{
  memset(p, 0, sizeof *p);
  switch(st->kind) {
  case ND_HTTP: {
    const FetchOpts *fo = st->fetch;
    if(!fo)
      emit_bug("HTTP step without normalised options");
    p->path = gen_function_ex(e, st->a, "path", true);
    p->body = opt_fn(e, fo->body, "body");
    p->query = opt_fn(e, fo->query, "query");
    p->until = opt_fn(e, fo->until, "until");
    p->since_expr = opt_fn(e, fo->since_expr, "since");
    p->headers = gen_kv(e, fo->headers, "step headers", &p->n_headers);
    break;
  }
  case ND_FOR: {
    const Cont *saved = e->cont;
    p->expr = gen_function(e, st->a, "for collection");
    p->where = opt_fn(e, st->cond, "for filter");
    e->cont = NULL;             /* each iteration is a new scope */
    p->steps = gen_steps(e, st->body, "for body", &p->n_steps);
    e->cont = saved;
    break;
  }
  case ND_MAP:
    p->expr = gen_function(e, st->a, "map source");
    p->fields = gen_kv(e, st->opts, "map field", &p->n_fields);
    break;
  case ND_APPLY:
    p->expr = gen_function(e, st->a, "apply source");
    break;
  case ND_VALIDATE:
    p->expr = gen_function(e, st->a, "validate target");
    p->assumes = gen_assumes(e, st->body, &p->n_assumes);
    if(st->flag) {
      const Cont *saved = e->cont;
      Cont c = { st->next, saved };
      e->cont = &c;             /* not a scope */
      p->steps = gen_steps(e, st->els, "validate or-block", &p->n_steps);
      e->cont = saved;
    }
    break;
  case ND_STORESTEP:
    p->expr = gen_function(e, st->a, "store source");
    p->key = st->store ? opt_fn(e, st->store->key, "store key") : "NULL";
    break;
  case ND_MATCH: {
    const Cont *saved = e->cont;
    Cont c = { st->next, saved };
    p->expr = gen_function(e, st->a, "match target");
    e->cont = &c;               /* arms are not scopes */
    p->arms = gen_arms(e, st->body, &p->n_arms);
    e->cont = saved;
    break;
  }
  case ND_LET:
    p->expr = gen_function(e, st->a, "let value");
    break;
  case ND_DIRECTIVE:
    p->message = st->a ? gen_function(e, st->a, "abort message") : "NULL";
    break;
  case ND_WAIT: {
    const WaitOpts *wo = st->wait;
    if(!wo)
      emit_bug("wait step without normalised options");
    /* Numbered here, in source order (nested lists are generated while
     * their owner's parts are), for the default path of §4.14. */
    p->wait_n = ++e->wait_n;
    p->where = opt_fn(e, wo->filter, "wait eventFilter");
    p->key = opt_fn(e, wo->storage_key, "wait storage key");
    if(wo->path)
      add_wait_path(e, wo->path);
    break;
  }
  default:
    emit_bug("step kind not supported by emit");
  }
}

static void emit_step(Emit *e, Str *s, const Node *st, const StepParts *p)
{
  str_printf(s, "  { /* %s at ", step_label(st));
  emit_where(e, s, st->loc);
  STR_LIT(s, " */\n    .kind = ");
  switch(st->kind) {
  case ND_HTTP: STR_LIT(s, "RQ_ST_HTTP"); break;
  case ND_FOR: STR_LIT(s, "RQ_ST_FOR"); break;
  case ND_MAP: STR_LIT(s, "RQ_ST_MAP"); break;
  case ND_APPLY: STR_LIT(s, "RQ_ST_APPLY"); break;
  case ND_VALIDATE: STR_LIT(s, "RQ_ST_VALIDATE"); break;
  case ND_STORESTEP: STR_LIT(s, "RQ_ST_STORE"); break;
  case ND_MATCH: STR_LIT(s, "RQ_ST_MATCH"); break;
  case ND_LET: STR_LIT(s, "RQ_ST_LET"); break;
  case ND_DIRECTIVE: STR_LIT(s, "RQ_ST_DIRECTIVE"); break;
  case ND_WAIT: STR_LIT(s, "RQ_ST_WAIT"); break;
  default: emit_bug("step kind");
  }
  STR_LIT(s, ",\n    .at = ");
  emit_at(e, s, st->loc, false);
  STR_LIT(s, ",\n    .label = ");
  emit_cstr0(s, step_label(st));
  STR_LIT(s, ",\n");
  if(st->kind != ND_STORESTEP && st->kind != ND_WAIT &&
     !(st->kind == ND_DIRECTIVE && st->decl &&
       strcmp(st->word, "queue") == 0))
    STR_LIT(s, "    .store = -1,\n");
  if(st->kind != ND_STORESTEP)
    STR_LIT(s, "    .partial = -1,\n");
  switch(st->kind) {
  case ND_HTTP: {
    const FetchOpts *fo = st->fetch;
    char method[16];
    upper(method, st->word ? st->word : "get", sizeof method);
    STR_LIT(s, "    .method = ");
    emit_cstr0(s, method);
    str_printf(s, ",\n    .source = %d,\n", fo->source ? fo->source->index
                                                        : 0);
    str_printf(s, "    .path = %s,\n    .body = %s,\n    .query = %s,\n",
               p->path, p->body, p->query);
    str_printf(s, "    .headers = %s,\n    .n_headers = %zu,\n",
               p->headers ? p->headers : "NULL", p->n_headers);
    str_printf(s, "    .timeout_ms = %.17g,\n", fo->timeout_ms);
    str_printf(s, "    .pg_kind = %s,\n", pg_name(fo->pg_kind));
    if(fo->pg_kind != PG_NONE) {
      STR_LIT(s, "    .pg_param = ");
      emit_cstr0(s, fo->pg_param);
      str_printf(s, ",\n    .pg_size = %d,\n", (int)fo->pg_size);
      STR_LIT(s, "    .pg_cursor_path = ");
      emit_cstr0(s, fo->pg_cursor_path);
      STR_LIT(s, ",\n    .pg_size_param = ");
      emit_cstr0(s, fo->pg_size_param);
      STR_LIT(s, ",\n");
    }
    str_printf(s, "    .until = %s,\n    .max_pages = %d,\n", p->until,
               fo->max_pages);
    STR_LIT(s, "    .retry = ");
    emit_retry(s, &fo->retry);
    str_printf(s, ",\n    .since_kind = %s,\n", since_name(fo->since_kind));
    if(fo->since_kind != SINCE_NONE) {
      STR_LIT(s, "    .since_key = ");
      emit_cstr0(s, fo->since_key);
      STR_LIT(s, ",\n    .since_param = ");
      emit_cstr0(s, fo->since_param);
      STR_LIT(s, ",\n    .since_format = ");
      emit_cstr0(s, fo->since_format);
      STR_LIT(s, ",\n    .since_update_from = ");
      emit_cstr0(s, fo->since_update_from);
      str_printf(s, ",\n    .since_expr = %s,\n", p->since_expr);
    }
    bool nm = st->next && st->next->kind == ND_MATCH;
    str_printf(s, "    .next_is_match = %s,\n", nm ? "true" : "false");
    if(stream_ok(e, st))
      STR_LIT(s, "    .stream_store = true,\n");
    break;
  }
  case ND_FOR:
    STR_LIT(s, "    .var = ");
    emit_cstr0(s, st->name);
    str_printf(s, ",\n    .expr = %s,\n    .where = %s,\n", p->expr,
               p->where);
    str_printf(s, "    .steps = %s,\n    .n_steps = %zu,\n",
               p->steps ? p->steps : "NULL", p->n_steps);
    break;
  case ND_MAP:
    str_printf(s, "    .expr = %s,\n    .target = ", p->expr);
    emit_cstr0(s, st->word);
    str_printf(s, ",\n    .fields = %s,\n    .n_fields = %zu,\n",
               p->fields ? p->fields : "NULL", p->n_fields);
    break;
  case ND_APPLY:
    if(!st->decl)
      emit_bug("apply without a resolved transform");
    str_printf(s, "    .expr = %s,\n    .transform = %d,\n    .var = ",
               p->expr, st->decl->index);
    emit_cstr0(s, st->word2);
    STR_LIT(s, ",\n");
    break;
  case ND_VALIDATE:
    str_printf(s, "    .expr = %s,\n    .assumes = %s,\n"
               "    .n_assumes = %zu,\n", p->expr,
               p->assumes ? p->assumes : "NULL", p->n_assumes);
    str_printf(s, "    .has_or = %s,\n    .steps = %s,\n"
               "    .n_steps = %zu,\n", st->flag ? "true" : "false",
               p->steps ? p->steps : "NULL", p->n_steps);
    break;
  case ND_STORESTEP: {
    if(!st->decl)
      emit_bug("store step without a resolved store");
    const StoreOpts *so = st->store;
    str_printf(s, "    .expr = %s,\n    .store = %d,\n    .key = %s,\n",
               p->expr, st->decl->index, p->key);
    str_printf(s, "    .upsert = %s,\n    .partial = %d,\n",
               so && so->upsert ? "true" : "false", so ? so->partial : -1);
    break;
  }
  case ND_MATCH:
    str_printf(s, "    .expr = %s,\n    .arms = %s,\n    .n_arms = %zu,\n",
               p->expr, p->arms ? p->arms : "NULL", p->n_arms);
    break;
  case ND_LET:
    STR_LIT(s, "    .var = ");
    emit_cstr0(s, st->name);
    str_printf(s, ",\n    .expr = %s,\n", p->expr);
    break;
  case ND_DIRECTIVE:
    str_printf(s, "    .directive = %s,\n", directive_name(st->word));
    if(strcmp(st->word, "abort") == 0)
      str_printf(s, "    .message = %s,\n", p->message);
    if(strcmp(st->word, "retry") == 0) {
      STR_LIT(s, "    .retry = ");
      emit_retry(s, st->retry);
      STR_LIT(s, ",\n");
    }
    if(strcmp(st->word, "queue") == 0 && st->decl)
      str_printf(s, "    .store = %d,\n", st->decl->index);
    if(strcmp(st->word, "jump") == 0) {
      if(!st->decl)
        emit_bug("jump without a resolved action");
      str_printf(s, "    .action = %d,\n    .jump_retry = %s,\n",
                 st->decl->index,
                 st->word2 && strcmp(st->word2, "retry") == 0 ? "true"
                                                              : "false");
    }
    break;
  case ND_WAIT: {
    const WaitOpts *wo = st->wait;
    STR_LIT(s, "    .wait_path = ");
    emit_cstr0(s, wo->path);
    str_printf(s, ",\n    .wait_n = %u,\n    .wait_timeout_ms = %.17g,\n"
               "    .wait_expected = %d,\n", p->wait_n, wo->timeout_ms,
               wo->expected);
    str_printf(s, "    .where = %s,\n    .store = %d,\n    .key = %s,\n",
               p->where, st->decl ? st->decl->index : -1, p->key);
    if(wo->retry.given) {
      STR_LIT(s, "    .retry = ");
      emit_retry(s, &wo->retry);
      STR_LIT(s, ",\n");
    }
    break;
  }
  default:
    emit_bug("step kind");
  }
  STR_LIT(s, "  },\n");
}

/* Generates the table for a step list; returns its name (NULL if the
 * list is empty) and the count. */
static const char *gen_steps(Emit *e, const Node *list, const char *what,
                             size_t *count)
{
  size_t n = list_len(list);
  *count = n;
  if(n == 0)
    return NULL;
  StepParts *parts = ZALLOC(e, n, parts);
  size_t i = 0;
  for(const Node *st = list; st; st = st->next)
    gen_step_parts(e, st, &parts[i++]);
  const char *name = new_sym(e, "steps");
  Str *s = &e->tables;
  str_printf(s, "/* %s at ", what);
  emit_where(e, s, list->loc);
  str_printf(s, " */\nstatic const RqStep %s[] = {\n", name);
  i = 0;
  for(const Node *st = list; st; st = st->next)
    emit_step(e, s, st, &parts[i++]);
  STR_LIT(s, "};\n\n");
  return name;
}

static const char *auth_name(AuthKind a)
{
  switch(a) {
  case AUTH_BEARER: return "RQ_AUTH_BEARER";
  case AUTH_BASIC: return "RQ_AUTH_BASIC";
  case AUTH_API_KEY: return "RQ_AUTH_API_KEY";
  case AUTH_OAUTH2: return "RQ_AUTH_OAUTH2";
  default: return "RQ_AUTH_NONE";
  }
}

static const char *store_kind_name(StoreKind k)
{
  switch(k) {
  case STK_FILE: return "RQ_STORE_FILE";
  case STK_SQL: return "RQ_STORE_SQL";
  case STK_NOSQL: return "RQ_STORE_NOSQL";
  case STK_POSTGREST: return "RQ_STORE_POSTGREST";
  default: return "RQ_STORE_MEMORY";
  }
}

static const char *sched_name(SchedKind k)
{
  switch(k) {
  case SCHED_EVERY: return "RQ_SCHED_EVERY";
  case SCHED_CRON: return "RQ_SCHED_CRON";
  case SCHED_AT: return "RQ_SCHED_AT";
  default: return "RQ_SCHED_NONE";
  }
}

static const char *gen_sources(Emit *e, Mission *m)
{
  int n = m->sources.len;
  if(n == 0)
    return NULL;
  const char **base = ZALLOC(e, (size_t)n, base);
  const char **hdr = ZALLOC(e, (size_t)n, hdr);
  size_t *nh = ZALLOC(e, (size_t)n, nh);
  for(int i = 0; i < n; i++) {
    Node *src = m->sources.data[i];
    const SourceOpts *so = src->src;
    if(!so)
      emit_bug("source without normalised options");
    base[i] = opt_fn(e, so->base, "source base");
    hdr[i] = gen_kv(e, so->headers, "source headers", &nh[i]);
  }
  const char *name = new_sym(e, "sources");
  Str *s = &e->tables;
  str_printf(s, "static const RqSourceDef %s[] = {\n", name);
  for(int i = 0; i < n; i++) {
    Node *src = m->sources.data[i];
    const SourceOpts *so = src->src;
    STR_LIT(s, "  { /* source at ");
    emit_where(e, s, src->loc);
    STR_LIT(s, " */\n    .name = ");
    emit_cstr0(s, src->name);
    str_printf(s, ",\n    .auth = %s,\n    .auth_scheme = ",
               auth_name(so->auth));
    emit_cstr0(s, so->auth_scheme);
    str_printf(s, ",\n    .base = %s,\n    .headers = %s,\n"
               "    .n_headers = %zu,\n", base[i], hdr[i] ? hdr[i] : "NULL",
               nh[i]);
    str_printf(s, "    .validate_responses = %s,\n    .timeout_ms = %.17g,\n",
               so->validate_responses ? "true" : "false", so->timeout_ms);
    static const char *const strat[] = { "RQ_RL_PAUSE", "RQ_RL_THROTTLE",
                                         "RQ_RL_FAIL" };
    int k = so->rl_strategy >= 0 && so->rl_strategy <= 2 ? so->rl_strategy
                                                         : 0;
    str_printf(s, "    .rl_strategy = %s,\n    .rl_max_wait_s = %.17g,\n"
               "    .rl_fallback_rpm = %.17g,\n", strat[k], so->rl_max_wait_s,
               so->rl_fallback_rpm);
    str_printf(s, "    .cb_failure_threshold = %d,\n"
               "    .cb_success_threshold = %d,\n"
               "    .cb_reset_timeout_s = %.17g,\n"
               "    .cb_failure_window_s = %.17g,\n",
               so->cb_failure_threshold, so->cb_success_threshold,
               so->cb_reset_timeout_s, so->cb_failure_window_s);
    STR_LIT(s, "    .at = ");
    emit_at(e, s, src->loc, false);
    STR_LIT(s, ",\n  },\n");
  }
  STR_LIT(s, "};\n\n");
  return name;
}

static const char *gen_stores(Emit *e, Mission *m)
{
  if(m->stores.len == 0)
    return NULL;
  const char *name = new_sym(e, "stores");
  Str *s = &e->tables;
  str_printf(s, "static const RqStoreDef %s[] = {\n", name);
  for(int i = 0; i < m->stores.len; i++) {
    Node *st = m->stores.data[i];
    STR_LIT(s, "  { ");
    emit_cstr0(s, st->name);
    str_printf(s, ", %s, ", store_kind_name(st->store_kind));
    emit_cstring(s, st->str ? st->str : "", st->str ? st->len : 0);
    STR_LIT(s, ", ");
    emit_at(e, s, st->loc, false);
    STR_LIT(s, " },\n");
  }
  STR_LIT(s, "};\n\n");
  return name;
}

static const char *gen_schemas(Emit *e, Mission *m)
{
  int n = m->schemas.len;
  if(n == 0)
    return NULL;
  const char **fields = ZALLOC(e, (size_t)n, fields);
  size_t *nf = ZALLOC(e, (size_t)n, nf);
  Str *s = &e->tables;
  for(int i = 0; i < n; i++) {
    Node *sc = m->schemas.data[i];
    nf[i] = list_len(sc->body);
    if(nf[i] == 0)
      continue;
    fields[i] = new_sym(e, "fields");
    str_printf(s, "static const RqSchemaField %s[] = {\n", fields[i]);
    for(const Node *fd = sc->body; fd; fd = fd->next) {
      STR_LIT(s, "  { ");
      emit_cstr0(s, fd->name);
      str_printf(s, ", %s, %s },\n", rq_type_name(fd->word),
                 fd->flag ? "true" : "false");
    }
    STR_LIT(s, "};\n\n");
  }
  const char *name = new_sym(e, "schemas");
  str_printf(s, "static const RqSchemaDef %s[] = {\n", name);
  for(int i = 0; i < n; i++) {
    STR_LIT(s, "  { ");
    emit_cstr0(s, m->schemas.data[i]->name);
    str_printf(s, ", %s, %zu },\n", fields[i] ? fields[i] : "NULL", nf[i]);
  }
  STR_LIT(s, "};\n\n");
  return name;
}

static const char *gen_transforms(Emit *e, Mission *m)
{
  int n = m->transforms.len;
  if(n == 0)
    return NULL;
  const char **vars = ZALLOC(e, (size_t)n, vars);
  size_t *nv = ZALLOC(e, (size_t)n, nv);
  const char **target = ZALLOC(e, (size_t)n, target);
  Str *s = &e->tables;
  for(int i = 0; i < n; i++) {
    Node *tr = m->transforms.data[i];
    size_t k = list_len(tr->body);
    nv[i] = k;
    if(k == 0)
      continue;
    const char **guard = ZALLOC(e, k, guard);
    const char **fl = ZALLOC(e, k, fl);
    size_t *nfl = ZALLOC(e, k, nfl);
    size_t j = 0;
    for(const Node *v = tr->body; v; v = v->next, j++) {
      guard[j] = v->cond ? gen_function(e, v->cond, "variant guard")
                         : "NULL";
      fl[j] = gen_kv(e, v->opts, "variant mapping", &nfl[j]);
      if(!target[i])
        target[i] = v->word;
    }
    vars[i] = new_sym(e, "variants");
    str_printf(s, "static const RqVariantDef %s[] = {\n", vars[i]);
    j = 0;
    for(const Node *v = tr->body; v; v = v->next, j++) {
      int schema = -1;
      if(v->name && strcmp(v->name, "_") != 0) {
        if(!v->decl)
          emit_bug("variant without a resolved schema");
        schema = v->decl->index;
      }
      str_printf(s, "  { %d, %s, %s, %zu, ", schema, guard[j],
                 fl[j] ? fl[j] : "NULL", nfl[j]);
      emit_at(e, s, v->loc, false);
      STR_LIT(s, " },\n");
    }
    STR_LIT(s, "};\n\n");
  }
  const char *name = new_sym(e, "transforms");
  str_printf(s, "static const RqTransformDef %s[] = {\n", name);
  for(int i = 0; i < n; i++) {
    STR_LIT(s, "  { ");
    emit_cstr0(s, m->transforms.data[i]->name);
    STR_LIT(s, ", ");
    emit_cstr0(s, target[i]);
    str_printf(s, ", %s, %zu },\n", vars[i] ? vars[i] : "NULL", nv[i]);
  }
  STR_LIT(s, "};\n\n");
  return name;
}

static const char *gen_actions(Emit *e, Mission *m)
{
  int n = m->actions.len;
  if(n == 0)
    return NULL;
  const char **steps = ZALLOC(e, (size_t)n, steps);
  size_t *ns = ZALLOC(e, (size_t)n, ns);
  for(int i = 0; i < n; i++) {
    Node *a = m->actions.data[i];
    Str what = { 0 };
    str_printf(&what, "action %s", a->name);
    e->cont = NULL;             /* an action attempt is a new scope */
    steps[i] = gen_steps(e, a->body, what.data, &ns[i]);
    free(what.data);
  }
  const char *name = new_sym(e, "actions");
  Str *s = &e->tables;
  str_printf(s, "static const RqActionDef %s[] = {\n", name);
  for(int i = 0; i < n; i++) {
    Node *a = m->actions.data[i];
    STR_LIT(s, "  { ");
    emit_cstr0(s, a->name);
    str_printf(s, ", %s, %zu, ", steps[i] ? steps[i] : "NULL", ns[i]);
    emit_at(e, s, a->loc, false);
    STR_LIT(s, " },\n");
  }
  STR_LIT(s, "};\n\n");
  return name;
}

static int action_index(Mission *m, const Node *ref)
{
  if(ref->decl && ref->decl->kind == ND_ACTION)
    return ref->decl->index;
  for(int i = 0; i < m->actions.len; i++)
    if(m->actions.data[i]->name == ref->name ||
       strcmp(m->actions.data[i]->name, ref->name) == 0)
      return i;
  emit_bug("stage names an unknown action");
  return -1;
}

static const char *gen_stages(Emit *e, Mission *m)
{
  int n = m->stages.len;
  if(n == 0)
    return NULL;
  const char **idx = ZALLOC(e, (size_t)n, idx);
  const char **cond = ZALLOC(e, (size_t)n, cond);
  size_t *na = ZALLOC(e, (size_t)n, na);
  Str *s = &e->tables;
  for(int i = 0; i < n; i++) {
    Node *sg = m->stages.data[i];
    cond[i] = opt_fn(e, sg->cond, "stage condition");
    idx[i] = new_sym(e, "stage");
    str_printf(s, "static const int %s[] = {", idx[i]);
    for(const Node *a = sg->body; a; a = a->next) {
      str_printf(s, " %d,", action_index(m, a));
      na[i]++;
    }
    STR_LIT(s, " };\n");
  }
  STR_LIT(s, "\n");
  const char *name = new_sym(e, "stages");
  str_printf(s, "static const RqStageDef %s[] = {\n", name);
  for(int i = 0; i < n; i++) {
    Node *sg = m->stages.data[i];
    str_printf(s, "  { %s, %zu, %s, %s, ", idx[i], na[i],
               sg->flag ? "true" : "false", cond[i]);
    emit_at(e, s, sg->loc, false);
    STR_LIT(s, " },\n");
  }
  STR_LIT(s, "};\n\n");
  return name;
}

/* ------------------------------------------- store use (SPEC §8.3) */
/* Which stores a stage reads and writes, so that a resumed run knows
 * whether a completed stage filled a memory store a later stage needs.
 * Reads: bare store names and lookup() in any expression of the stage
 * (its condition, its steps, the transforms they apply, the headers of
 * the sources they fetch from, which are evaluated per request).
 * Writes: store steps and queue targets.  Both follow jump targets
 * transitively.  Source bases and mission-level lets are evaluated at
 * run start, when memory stores are empty in any run, so they do not
 * count. */
typedef struct {
  bool *reads;          /* indexed by store index */
  bool *writes;
  bool *walked;         /* indexed by action index: jump targets done */
} StoreUse;

static void mark_store(bool *set, const Mission *m, const Node *decl)
{
  if(decl && decl->kind == ND_STORE && decl->index >= 0 &&
     decl->index < m->stores.len)
    set[decl->index] = true;
}

/* Marks the stores named by the placeholders of a string-literal path
 * as read; the same scan as gen_path_template's. */
static void use_path(StoreUse *u, const Mission *m, const Node *path)
{
  const char *p = path->str;
  size_t len = path->len;
  for(size_t i = 0; p && i < len; i++) {
    if(p[i] != '{')
      continue;
    size_t j = i + 1;
    while(j < len && p[j] != '}')
      j++;
    if(j >= len || !is_name_path(p + i + 1, j - i - 1))
      continue;
    mark_store(u->reads, m, placeholder_store(m, p + i + 1, j - i - 1));
    i = j;
  }
}

/* Walks n, its siblings and every child. */
static void use_walk(Emit *e, StoreUse *u, const Node *n)
{
  const Mission *m = e->m;
  for(; n; n = n->next) {
    switch(n->kind) {
    case ND_NAME:
      if(n->ref == REF_STORE)
        mark_store(u->reads, m, n->decl);
      break;
    case ND_STORESTEP:
    case ND_WAIT:                /* storage: target */
      mark_store(u->writes, m, n->decl);
      break;
    case ND_DIRECTIVE:
      if(n->word && strcmp(n->word, "queue") == 0)
        mark_store(u->writes, m, n->decl);
      if(n->word && strcmp(n->word, "jump") == 0 && n->decl &&
         n->decl->kind == ND_ACTION && n->decl->index >= 0 &&
         n->decl->index < m->actions.len && !u->walked[n->decl->index]) {
        u->walked[n->decl->index] = true;
        use_walk(e, u, n->decl->body);
      }
      break;
    case ND_APPLY:
      if(n->decl && n->decl->kind == ND_TRANSFORM)
        use_walk(e, u, n->decl->body);
      break;
    case ND_HTTP:
    case ND_CALLOP:
      if(n->fetch && n->fetch->source && n->fetch->source->src)
        use_walk(e, u, n->fetch->source->src->headers);
      if(n->kind == ND_HTTP && n->a && n->a->kind == ND_STR)
        use_path(u, m, n->a);
      break;
    default:
      break;
    }
    use_walk(e, u, n->a);
    use_walk(e, u, n->b);
    use_walk(e, u, n->cond);
    use_walk(e, u, n->body);
    use_walk(e, u, n->els);
    use_walk(e, u, n->opts);
  }
}

/* Emits `static const int X[] = { ... };` for the marked stores; returns
 * X, or "NULL" when none is marked. */
static const char *gen_store_set(Emit *e, const bool *set, int n,
                                 size_t *count)
{
  *count = 0;
  for(int i = 0; i < n; i++)
    *count += set[i];
  if(*count == 0)
    return "NULL";
  const char *name = new_sym(e, "stores_used");
  Str *s = &e->tables;
  str_printf(s, "static const int %s[] = {", name);
  for(int i = 0; i < n; i++)
    if(set[i])
      str_printf(s, " %d,", i);
  STR_LIT(s, " };\n");
  return name;
}

static const char *gen_stage_stores(Emit *e, Mission *m)
{
  int n = m->stages.len;
  int ns = m->stores.len;
  if(n == 0 || ns == 0)
    return NULL;
  const char **rd = ZALLOC(e, (size_t)n, rd);
  const char **wr = ZALLOC(e, (size_t)n, wr);
  size_t *nrd = ZALLOC(e, (size_t)n, nrd);
  size_t *nwr = ZALLOC(e, (size_t)n, nwr);
  for(int i = 0; i < n; i++) {
    Node *sg = m->stages.data[i];
    StoreUse u;
    u.reads = ZALLOC(e, (size_t)ns, u.reads);
    u.writes = ZALLOC(e, (size_t)ns, u.writes);
    u.walked = ZALLOC(e, (size_t)m->actions.len + 1, u.walked);
    use_walk(e, &u, sg->cond);
    for(const Node *a = sg->body; a; a = a->next) {
      int k = action_index(m, a);
      if(!u.walked[k]) {
        u.walked[k] = true;
        use_walk(e, &u, m->actions.data[k]->body);
      }
    }
    rd[i] = gen_store_set(e, u.reads, ns, &nrd[i]);
    wr[i] = gen_store_set(e, u.writes, ns, &nwr[i]);
  }
  const char *name = new_sym(e, "stage_stores");
  Str *s = &e->tables;
  str_printf(s, "\nstatic const RqStoreUse %s[] = {\n", name);
  for(int i = 0; i < n; i++)
    str_printf(s, "  { %s, %zu, %s, %zu },\n", rd[i], nrd[i], wr[i], nwr[i]);
  STR_LIT(s, "};\n\n");
  return name;
}

/* Mission-level lets become an array of RQ_ST_LET steps. */
static const char *gen_lets(Emit *e, Mission *m, size_t *count)
{
  *count = (size_t)m->lets.len;
  if(m->lets.len == 0)
    return NULL;
  StepParts *parts = ZALLOC(e, (size_t)m->lets.len, parts);
  for(int i = 0; i < m->lets.len; i++)
    gen_step_parts(e, m->lets.data[i], &parts[i]);
  const char *name = new_sym(e, "lets");
  Str *s = &e->tables;
  str_printf(s, "static const RqStep %s[] = {\n", name);
  for(int i = 0; i < m->lets.len; i++)
    emit_step(e, s, m->lets.data[i], &parts[i]);
  STR_LIT(s, "};\n\n");
  return name;
}

/* Everything of one mission; appends its RqMissionDef initializer to
 * `defs`. */
static void gen_mission(Emit *e, Mission *m, Str *defs)
{
  Str prefix = { 0 };
  STR_LIT(&prefix, "rqm_");
  mangle(&prefix, m->name);
  STR_LIT(&prefix, "_");
  e->prefix = arena_strndup(e->c->arena, prefix.data, prefix.len);
  free(prefix.data);
  e->m = m;
  e->wait_n = 0;
  e->wait_paths = NULL;
  e->n_wait_paths = 0;

  str_printf(&e->tables, "/* ---- mission %s (", m->name);
  emit_where(e, &e->tables, m->decl->loc);
  STR_LIT(&e->tables, ") ---- */\n\n");

  const char *sources = gen_sources(e, m);
  const char *stores = gen_stores(e, m);
  const char *schemas = gen_schemas(e, m);
  const char *transforms = gen_transforms(e, m);
  const char *actions = gen_actions(e, m);
  size_t n_lets;
  const char *lets = gen_lets(e, m, &n_lets);
  const char *stages = gen_stages(e, m);
  const char *stage_stores = gen_stage_stores(e, m);
  const char *wait_paths = NULL;
  if(e->n_wait_paths) {
    wait_paths = new_sym(e, "wait_paths");
    str_printf(&e->tables, "static const char *const %s[] = {\n",
               wait_paths);
    for(size_t i = 0; i < e->n_wait_paths; i++) {
      STR_LIT(&e->tables, "  ");
      emit_cstr0(&e->tables, e->wait_paths[i]);
      STR_LIT(&e->tables, ",\n");
    }
    STR_LIT(&e->tables, "};\n\n");
  }

  Str *s = defs;
  STR_LIT(s, "  { /* mission ");
  str_add(s, m->name, strlen(m->name));
  STR_LIT(s, " */\n    .name = ");
  emit_cstr0(s, m->name);
  str_printf(s, ",\n    .sources = %s,\n    .n_sources = %d,\n",
             sources ? sources : "NULL", m->sources.len);
  str_printf(s, "    .stores = %s,\n    .n_stores = %d,\n",
             stores ? stores : "NULL", m->stores.len);
  str_printf(s, "    .schemas = %s,\n    .n_schemas = %d,\n",
             schemas ? schemas : "NULL", m->schemas.len);
  str_printf(s, "    .transforms = %s,\n    .n_transforms = %d,\n",
             transforms ? transforms : "NULL", m->transforms.len);
  str_printf(s, "    .actions = %s,\n    .n_actions = %d,\n",
             actions ? actions : "NULL", m->actions.len);
  str_printf(s, "    .lets = %s,\n    .n_lets = %zu,\n",
             lets ? lets : "NULL", n_lets);
  str_printf(s, "    .stages = %s,\n    .n_stages = %d,\n",
             stages ? stages : "NULL", m->stages.len);
  str_printf(s, "    .stage_stores = %s,\n",
             stage_stores ? stage_stores : "NULL");
  const ScheduleOpts *so = &m->sched;
  str_printf(s, "    .schedule = { %s, %.17g, ", sched_name(so->kind),
             so->every_ms);
  emit_cstr0(s, so->expr);
  STR_LIT(s, ", ");
  emit_cstr0(s, so->timezone);
  str_printf(s, ", %d, %s, %s, %d, %.17g },\n", so->max_concurrency,
             so->skip_if_running ? "true" : "false",
             so->has_retry ? "true" : "false", so->retry_max,
             so->retry_delay_s);
  if(wait_paths)
    str_printf(s, "    .wait_paths = %s,\n    .n_wait_paths = %zu,\n",
               wait_paths, e->n_wait_paths);
  STR_LIT(s, "    .at = ");
  emit_at(e, s, m->decl->loc, false);
  STR_LIT(s, ",\n  },\n");
}

/* Writes text to out, replacing each "#line @C@" placeholder with the
 * real line of the generated file that follows it. */
static void write_resolved(FILE *out, const char *text, int *line,
                           const char *c_name)
{
  const char *p = text;
  while(*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
    if(len >= 9 && strncmp(p, "#line @C@", 9) == 0) {
      fprintf(out, "#line %d \"", *line + 1);
      for(const char *q = c_name; *q; q++) {
        if(*q == '"' || *q == '\\')
          fputc('\\', out);
        fputc(*q, out);
      }
      fputs("\"\n", out);
    } else {
      fwrite(p, 1, len, out);
    }
    (*line)++;
    p += len;
  }
}

void emit_program(Compilation *c, FILE *out, const EmitOptions *opt)
{
  assert(c->prog.checked);
  Emit e = { 0 };
  e.c = c;
  e.opt = opt;
  Str head = { 0 }, defs = { 0 };

  STR_LIT(&head, "/* Generated by reqonc");
  if(!opt->no_version)
    str_printf(&head, " %s", REQONC_VERSION);
  STR_LIT(&head, " from:\n");
  for(int i = 0; i < c->n_files; i++) {
    STR_LIT(&head, " *   ");
    emit_comment_text(&head, c->files[i].path);
    STR_LIT(&head, "\n");
  }
  STR_LIT(&head, " * Do not edit; edit the .reqon files instead.\n");
  if(opt->cmdline) {
    STR_LIT(&head, " * command line: ");
    emit_comment_text(&head, opt->cmdline);
    STR_LIT(&head, "\n");
  }
  STR_LIT(&head, " */\n#include \"reqon.h\"\n");
  /* Keep in step with RQ_ABI_VERSION in runtime/reqon.h. */
  STR_LIT(&head, "#if RQ_ABI_VERSION != 2\n#error \"reqon.h ABI mismatch: "
          "rebuild with the matching reqonc\"\n#endif\n\n");
  STR_LIT(&head, "static const char *const rqm_files[] = {\n");
  for(int i = 0; i < c->n_files; i++) {
    STR_LIT(&head, "  ");
    emit_cstr0(&head, c->files[i].path);
    STR_LIT(&head, ",\n");
  }
  if(c->n_files == 0)
    STR_LIT(&head, "  NULL,\n");
  STR_LIT(&head, "};\n\n");

  for(int i = 0; i < c->prog.n_missions; i++)
    gen_mission(&e, c->prog.missions[i], &defs);

  int line = 1;
  const char *c_name = opt->c_name ? opt->c_name : "missions.c";
  write_resolved(out, head.data, &line, c_name);
  if(e.funcs.data)
    write_resolved(out, e.funcs.data, &line, c_name);
  if(e.tables.data)
    write_resolved(out, e.tables.data, &line, c_name);
  fprintf(out, "static const RqMissionDef rqm_missions[] = {\n");
  if(defs.data)
    fputs(defs.data, out);
  if(c->prog.n_missions == 0)
    fprintf(out, "  { .name = NULL },\n");
  fprintf(out, "};\n\nint main(int argc, char **argv)\n{\n"
          "  return rq_daemon_main(argc, argv, rqm_files, %d, rqm_missions,"
          " %d);\n}\n", c->n_files, c->prog.n_missions);
  free(head.data);
  free(defs.data);
  free(e.funcs.data);
  free(e.tables.data);
}
