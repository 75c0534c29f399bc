/* reqonc.h -- the one internal header of the reqonc compiler.
 *
 * Types shared by every phase (Loc, Node, Compilation, Arena, Diag), then
 * the prototypes of each compiler file under a banner (chibicc.h, QBE all.h).
 *
 * Memory: everything the compiler allocates lives in Compilation.arena and
 * is released once, by arena_free() at the end of main().  No node is ever
 * freed on its own.
 *
 * Contract between the phases:
 *   parse (grammar/reqon.y + ast.c) builds a raw tree of Node.  Option
 *   blocks are parsed generically as ND_OBJECT literals.
 *   check.c resolves names and NORMALISES every option block into the typed
 *   structs below (SourceOpts, FetchOpts, ...), fills the per-mission
 *   tables of Mission, and sets Program.checked.
 *   emit.c reads only checked trees: the typed structs and resolved
 *   references, never the raw option objects.
 */
#ifndef REQONC_H
#define REQONC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define REQONC_VERSION "0.1.0"

typedef struct Node Node;
typedef struct Mission Mission;
typedef struct Compilation Compilation;

/* Source position as byte offsets into a Source. Line and column are
 * computed only when a diagnostic or #line needs them (jq locfile.c). */
typedef struct {
  int file;   /* index into Compilation.files */
  int start;  /* byte offset of the first byte; -1 if synthesized */
  int end;    /* byte offset one past the last byte */
} Loc;

/* One input file. */
typedef struct {
  const char *path;     /* as found from the command line; never made
                           absolute */
  const char *root;     /* the command-line argument that named it
                           (SPEC §2.8) */
  char *text;           /* whole file, NUL-terminated (BOM stripped) */
  size_t len;
  int *line_starts;     /* byte offset of each line start */
  int n_lines;
  bool is_mission_root; /* file is mission.reqon / mission.vague */
} Source;

/* ---------------------------------------------------------------- arena */
typedef struct Arena Arena;
Arena *arena_new(void);
void *arena_alloc(Arena *a, size_t n);               /* zeroed; aborts on OOM */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
void arena_free(Arena *a);
const char *intern(Compilation *c, const char *s, size_t n); /* pointer-equal */

/* Growable array of Node pointers, arena-backed. */
typedef struct {
  Node **data;
  int len, cap;
} NodeVec;
void vec_push(Compilation *c, NodeVec *v, Node *n);

/* ----------------------------------------------------------------- AST */
typedef enum {
  /* declarations */
  ND_MISSION,    /* mission name { body }; body: list of decls */
  ND_SOURCE,     /* source name [from str] opts */
  ND_STORE,      /* store name: kind("target"); word=kind, str=target */
  ND_SCHEMA,     /* schema name { body }; body: ND_FIELD list */
  ND_FIELD,      /* schema field: name, word=type, flag=optional */
  ND_TRANSFORM,  /* transform name; body: ND_VARIANT list (the one-mapping
                    forms become a single variant, pattern name or "_") */
  ND_VARIANT,    /* (name|_) [where cond] -> word mappings; opts=ND_OBJECT */
  ND_ACTION,     /* action name { body }; body: step list */
  ND_LET,        /* let name = a (mission item, loose decl, or step) */
  ND_PIPELINE,   /* run stages; body: ND_STAGE list */
  ND_STAGE,      /* body: ND_NAME list (action names), flag=bracketed,
                    cond = optional if-expression */
  ND_SCHEDULE,   /* schedule: word=every|cron|at, num=N, word2=unit,
                    str=cron/at text, opts = optional ND_OBJECT */
  /* steps */
  ND_HTTP,       /* word=method as written, a=path expr, opts */
  ND_CALLOP,     /* call name.word2 [opts] */
  ND_FOR,        /* for name in a [where cond] { body } */
  ND_MAP,        /* map a -> word mappings; opts = ND_OBJECT of mappings */
  ND_APPLY,      /* apply name to a [as word2]; word2 NULL without as */
  ND_VALIDATE,   /* validate a { body: ND_ASSUME list } [or { els }];
                    flag = has or-block */
  ND_ASSUME,     /* assume a */
  ND_STORESTEP,  /* store [each] a -> name [opts] */
  ND_MATCH,      /* match a { body: ND_ARM list } */
  ND_ARM,        /* word = "_" | schema name; flag = [Schema] form;
                    cond = where guard; body = step list (a directive, a
                    single step or a block) */
  ND_WAIT,       /* wait opts */
  ND_DIRECTIVE,  /* word = continue|skip|abort|retry|queue|jump;
                    a = abort message, opts = retry block,
                    name = queue target / jump action,
                    word2 = "retry"|"continue" after jump ... then */
  /* expressions */
  ND_NUM,        /* num */
  ND_STR,        /* str, len: decoded bytes (may contain NUL) */
  ND_BOOL,       /* flag */
  ND_NULL,
  ND_RESPONSE,   /* response */
  ND_NAME,       /* bare name: name; check sets ref/decl */
  ND_FIELDREF,   /* .name on the subject */
  ND_MEMBER,     /* a.name */
  ND_INDEX,      /* a[b] */
  ND_CALL,       /* name(body: args); check sets builtin */
  ND_UNARY,      /* op a; op is one of the OP_ codes */
  ND_BINARY,     /* a op b */
  ND_COND,       /* cond ? a : b */
  ND_IS,         /* a is word */
  ND_ARRAY,      /* [ body ] */
  ND_OBJECT,     /* { body: ND_ENTRY list }; also every option block */
  ND_ENTRY,      /* name: a  (name = key text, flag2 = key was a String)
                    or ...a (flag = spread); opts = an option block that
                    follows the value (since: lastSync("k") { ... }) */
  ND_MATCHEXPR,  /* match a { body: ND_MARM list } */
  ND_MARM,       /* word="_" (wildcard), or name (binder, requires cond),
                    or a = pattern expr; cond = where; b = result */
  ND_ANYOF,      /* any of a [where cond] */
} NodeKind;

/* Operator codes for ND_UNARY / ND_BINARY. */
typedef enum {
  OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD,
  OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
  OP_AND, OP_OR, OP_COALESCE,
  OP_NEG, OP_PLUS, OP_NOT,
} OpKind;

/* How a bare name resolved (SPEC §5.2). */
typedef enum {
  REF_NONE,      /* not yet resolved */
  REF_VAR,       /* a variable in the scope chain */
  REF_STORE,     /* a store: decl = the ND_STORE */
  REF_FIELD,     /* subject field, then response field, else missing */
} RefKind;

/* ------------------------------------------- normalised options (check.c) */
typedef enum { AUTH_NONE, AUTH_BEARER, AUTH_BASIC, AUTH_API_KEY, AUTH_OAUTH2 }
  AuthKind;
typedef enum { BACKOFF_EXPONENTIAL, BACKOFF_LINEAR, BACKOFF_CONSTANT }
  BackoffKind;
typedef enum { PG_NONE, PG_OFFSET, PG_PAGE, PG_CURSOR } PaginateKind;
typedef enum { SINCE_NONE, SINCE_LASTSYNC, SINCE_EXPR } SinceKind;
typedef enum { STK_MEMORY, STK_FILE, STK_SQL, STK_NOSQL, STK_POSTGREST }
  StoreKind;
typedef enum { SCHED_NONE, SCHED_EVERY, SCHED_CRON, SCHED_AT } SchedKind;

/* A retry block; every field has its default filled in by check.c. */
typedef struct {
  bool given;            /* the block was written */
  int max_attempts;      /* default 3 */
  BackoffKind backoff;   /* default exponential */
  double initial_ms;     /* default 1000 */
  double max_ms;         /* default 30000 */
} RetryOpts;

typedef struct {
  AuthKind auth;
  const char *auth_scheme;   /* NULL = default */
  Node *base;                /* expr, or NULL (then from-spec server) */
  Node *headers;             /* ND_OBJECT: entry name = header, a = expr */
  bool validate_responses;
  double timeout_ms;         /* -1: unset (30000) */
  int rl_strategy;           /* 0 pause, 1 throttle, 2 fail */
  double rl_max_wait_s;      /* default 300 */
  double rl_fallback_rpm;    /* default 60 */
  int cb_failure_threshold;  /* default 5 */
  int cb_success_threshold;  /* default 2 */
  double cb_reset_timeout_s; /* default 30 */
  double cb_failure_window_s;/* default 60 */
} SourceOpts;

typedef struct {
  Node *source;              /* ND_SOURCE decl (explicit or the default) */
  Node *body;                /* expr or NULL */
  Node *query;               /* expr or NULL (query: or params:) */
  Node *headers;             /* ND_OBJECT or NULL */
  Node *until;               /* expr or NULL; subject = the page body */
  double timeout_ms;         /* -1: unset */
  PaginateKind pg_kind;
  const char *pg_param;      /* offset/page/cursor parameter name */
  double pg_size;            /* page size N */
  const char *pg_cursor_path;/* cursor: dotted path in the page body */
  const char *pg_size_param; /* optional size parameter name */
  int max_pages;             /* default 1000 */
  RetryOpts retry;
  SinceKind since_kind;
  const char *since_key;     /* lastSync("k"); NULL = derived at run time */
  const char *since_param;   /* default "since" */
  const char *since_format;  /* iso|unix|unix-ms|date-only; default iso */
  const char *since_update_from; /* NULL if absent */
  Node *since_expr;          /* SINCE_EXPR */
} FetchOpts;

typedef struct {
  Node *key;                 /* key: expr or NULL */
  bool upsert;
  int partial;               /* -1 absent, 0 false, 1 true */
} StoreOpts;

/* A `wait` step (SPEC §4.14); defaults filled in by check.c.  The
 * storage target is the step's Node.decl (NULL: no storage). */
typedef struct {
  const char *path;          /* NULL: /webhook/<execution id>/<n> */
  double timeout_ms;         /* default 300000 (5 min) */
  int expected;              /* expectedEvents, default 1 */
  Node *filter;              /* eventFilter expr or NULL; subject = body */
  Node *storage_key;         /* storage.key expr or NULL (the event id) */
  RetryOpts retry;           /* given = false: a timeout is final */
} WaitOpts;

typedef struct {
  SchedKind kind;
  double every_ms;           /* SCHED_EVERY */
  const char *expr;          /* cron text or at text */
  const char *timezone;      /* NULL = UTC */
  int max_concurrency;       /* default 1 */
  bool skip_if_running;      /* default true */
  bool has_retry;
  int retry_max;             /* default 3 */
  double retry_delay_s;      /* default 60 */
} ScheduleOpts;

struct Node {
  NodeKind kind;
  Loc loc;            /* representative span: diagnostics and #line */
  Node *next;         /* next sibling in a list */

  /* -- filled by the parser -- */
  const char *name;   /* interned: declared name, variable, field, key,
                         function name, arm binder */
  Loc name_loc;       /* span of `name` */
  const char *word;   /* interned: kind words (method, store kind, type,
                         schedule form, directive, arm pattern) */
  Loc word_loc;
  const char *word2;  /* second word: unit, apply-as, jump-then, call op */
  const char *str;    /* ND_STR / from-spec / store target / cron text */
  size_t len;         /* length of str in bytes */
  double num;
  bool flag;          /* see the kind comments */
  bool flag2;
  OpKind op;
  Node *a, *b;        /* operands / main expression */
  Node *cond;         /* where / if guards, ?: condition */
  Node *body;         /* child list */
  Node *els;          /* validate or-block */
  Node *opts;         /* ND_OBJECT option block, or NULL */

  /* -- filled by check.c -- */
  RefKind ref;        /* ND_NAME */
  Node *decl;         /* resolved declaration: store for REF_STORE and
                         store steps, schema for arms/variants, action for
                         stages and jumps, transform for apply, store for
                         queue targets and lookup() */
  int index;          /* declarations: index within the mission's table */
  int builtin;        /* ND_CALL: index into runtime/builtins.def order */
  Mission *mission;   /* declarations: the mission they belong to */
  SourceOpts *src;    /* ND_SOURCE */
  FetchOpts *fetch;   /* ND_HTTP, ND_CALLOP */
  StoreOpts *store;   /* ND_STORESTEP */
  RetryOpts *retry;   /* ND_DIRECTIVE retry (defaults filled) */
  WaitOpts *wait;     /* ND_WAIT */
  StoreKind store_kind; /* ND_STORE */
};

/* A mission after check.c: everything it owns, in declaration order,
 * including loose declarations attached to it (§2.8), implicit stores
 * (§4.3) and a synthesised pipeline when it has no `run` line. */
struct Mission {
  Node *decl;          /* the ND_MISSION */
  const char *name;
  NodeVec sources;     /* ND_SOURCE; index = position */
  NodeVec stores;      /* ND_STORE; implicit ones appended (loc of first use) */
  NodeVec schemas;     /* ND_SCHEMA */
  NodeVec transforms;  /* ND_TRANSFORM */
  NodeVec actions;     /* ND_ACTION */
  NodeVec lets;        /* mission-level ND_LET, in evaluation order */
  NodeVec stages;      /* ND_STAGE; synthesised one per action if no run */
  ScheduleOpts sched;  /* kind SCHED_NONE when unscheduled */
};

typedef struct {
  Node *decls;         /* every top-level node of every file, in order */
  Mission **missions;
  int n_missions;
  bool checked;        /* set at the end of check.c; emit asserts it */
} Program;

/* ------------------------------------------------------------ diag.c */
typedef enum { DG_ERROR, DG_WARNING, DG_NOTE } DiagLevel;

struct Compilation {
  Arena *arena;
  Source *files;
  int n_files, cap_files;
  Program prog;
  int n_errors, n_warnings;
  bool werror;         /* -Werror */
  bool too_many;       /* error cap reached */
  FILE *err;           /* where diagnostics go (stderr) */
  void *interned;      /* intern table (arena.c) */
};

/* Report at loc: "file:line:col: level: message", the source line and a
 * caret line underlining loc.  Never exits. */
void diag_at(Compilation *c, DiagLevel lv, Loc loc, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
#define diag_error(c, loc, ...) diag_at((c), DG_ERROR, (loc), __VA_ARGS__)
#define diag_warning(c, loc, ...) diag_at((c), DG_WARNING, (loc), __VA_ARGS__)
#define diag_note(c, loc, ...) diag_at((c), DG_NOTE, (loc), __VA_ARGS__)
/* "reqonc: error: ..." without a position (files, usage). */
void diag_plain(Compilation *c, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------- source.c */
/* Adds a file; returns its index or -1 (after a diag_plain) if unreadable. */
int source_add(Compilation *c, const char *path, const char *root);
/* Expands command-line paths: files, and directories scanned recursively
 * for .reqon and .vague in byte-wise sorted order.  Returns -1 on an
 * unreadable path. */
int source_collect(Compilation *c, const char *arg);
void source_linecol(const Compilation *c, Loc loc, int *line, int *col);
/* The text of line `line` (1-based) without its newline; sets *n. */
const char *source_line(const Compilation *c, int file, int line, int *n);

/* ------------------------------------------------------ parse / ast.c */
/* Parses every file in c->files into c->prog.decls. Returns errors seen. */
int parse_all(Compilation *c);
Node *ast_new(Compilation *c, NodeKind kind, Loc loc);
Node *ast_append(Node *list, Node *n);      /* returns the list head */
void ast_dump(Compilation *c, FILE *out, const Node *n, int depth);
const char *ast_kind_name(NodeKind k);

/* ----------------------------------------------------------- check.c */
/* Resolves, checks and normalises c->prog.  Returns c->n_errors. */
int check_program(Compilation *c);

/* ------------------------------------------------------------ emit.c */
typedef struct {
  bool no_line;        /* --no-line */
  bool no_version;     /* --no-version */
  const char *cmdline; /* for the file header, may be NULL */
  const char *c_name;  /* name of the .c written, for #line; NULL:
                          "missions.c" */
} EmitOptions;
/* Writes the C for the whole checked program to out.  Cannot fail on user
 * input. */
void emit_program(Compilation *c, FILE *out, const EmitOptions *opt);

/* -------------------------------------------------------------- cc.c */
typedef struct {
  const char *cc;          /* --cc, $CC, or "cc" */
  const char *cflags;      /* --cflags, $CFLAGS */
  const char *runtime_dir; /* --runtime-dir / $REQON_RUNTIME_DIR */
  const char *argv0;
  bool print_only;         /* -### */
  bool keep_c;
} CcOptions;
/* Compiles c_path into out_path.  Returns 0, or 4 (SPEC §11.3) after the
 * C compiler's output has been shown. */
int cc_build(const CcOptions *o, const char *c_path, const char *out_path);

#endif
