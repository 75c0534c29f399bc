/* main.c -- the reqonc driver (SPEC §10.6, §11.3).
 *
 * Reads the command line, then runs the phases in order, each followed by
 * an optional dump and an early return on errors (QBE's func()):
 *
 *   collect -> parse -> [--dump-ast] -> check -> [--check: stop]
 *     -> emit (into --emit-c DIR/missions.c, or a temporary file)
 *     -> cc (link with the runtime into -o OUT) -> remove the temp .c
 *
 * Exit status: 0 ok, 1 errors in the input, 2 usage, 3 unreadable input,
 * 4 the C compiler failed.  No phase exits on its own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reqonc.h"
#include "reqon.tab.h"   /* lex_dump_tokens() */

enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_UNREADABLE = 3,
       EXIT_CC = 4 };

typedef struct {
  const char *out;          /* -o */
  const char *emit_dir;     /* --emit-c */
  bool check_only;          /* --check */
  bool dump_tokens, dump_ast;
  EmitOptions emit;
  CcOptions cc;
  const char **paths;
  int n_paths;
} Options;

static void usage(FILE *f)
{
  fputs(
    "usage: reqonc [options] PATH...\n"
    "\n"
    "Compiles the Reqon missions in PATH (files, or directories scanned\n"
    "recursively for .reqon and .vague files) into one executable.\n"
    "\n"
    "options:\n"
    "  -o OUT           write the executable to OUT (default ./syncd)\n"
    "  --emit-c DIR     write the generated C to DIR/missions.c and stop\n"
    "  --check          parse and check only; produce no output\n"
    "  --cc CC          C compiler to use (default $CC, else cc)\n"
    "  --cflags FLAGS   extra C compiler flags, after $CFLAGS (default -O2)\n"
    "  -Werror          treat warnings as errors\n"
    "  --version        print the version and exit\n"
    "  --help           print this help and exit\n"
    "\n"
    "developer options (for working on reqonc itself):\n"
    "  --dump-tokens    print the tokens of every input file and stop\n"
    "  --dump-ast       print the parsed syntax tree and stop\n"
    "  --no-line        emit no #line directives\n"
    "  --no-version     leave the version out of the generated C\n"
    "  -###             print the C compiler command instead of running it\n"
    "  --keep-c         keep the temporary generated C file\n"
    "  --runtime-dir DIR\n"
    "                   where reqon.h and libreqonrt.a are\n"
    "                   (default $REQON_RUNTIME_DIR, else next to reqonc)\n"
    "\n"
    "exit status: 0 ok, 1 errors in the input, 2 usage error,\n"
    "3 unreadable input, 4 the C compiler failed\n",
    f);
}

static int usage_error(const char *fmt, const char *arg)
{
  fputs("reqonc: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nsee 'reqonc --help'\n", stderr);
  return EXIT_USAGE;
}

/* Matches "--name VALUE" and "--name=VALUE"; on a match stores the value
 * in *val (NULL when missing) and advances *i past what it used. */
static bool opt_value(int argc, char **argv, int *i, const char *name,
                      const char **val)
{
  const char *a = argv[*i];
  size_t n = strlen(name);
  if(strncmp(a, name, n) != 0)
    return false;
  if(a[n] == '=') {
    *val = a + n + 1;
    return true;
  }
  if(a[n] != '\0')
    return false;
  *val = *i + 1 < argc ? argv[++*i] : NULL;
  return true;
}

/* The command line as one string, for the generated file's header.
 * argv[0] is written as "reqonc" so the output does not depend on where
 * the compiler was run from. */
static const char *join_cmdline(Compilation *c, int argc, char **argv)
{
  size_t len = strlen("reqonc") + 1;
  for(int i = 1; i < argc; i++)
    len += strlen(argv[i]) + 1;
  char *s = arena_alloc(c->arena, len);
  size_t k = 0;
  memcpy(s, "reqonc", 6);
  k = 6;
  for(int i = 1; i < argc; i++) {
    size_t n = strlen(argv[i]);
    s[k++] = ' ';
    memcpy(s + k, argv[i], n);
    k += n;
  }
  s[k] = '\0';
  return s;
}

/* Parses argv into o; returns -1 to go on, or an exit status. */
static int parse_args(Compilation *c, int argc, char **argv, Options *o)
{
  o->out = "./syncd";
  o->paths = arena_alloc(c->arena, (size_t)argc * sizeof *o->paths);
  o->cc.cc = getenv("CC");
  if(!o->cc.cc || !*o->cc.cc)
    o->cc.cc = "cc";
  o->cc.runtime_dir = getenv("REQON_RUNTIME_DIR");
  if(o->cc.runtime_dir && !*o->cc.runtime_dir)
    o->cc.runtime_dir = NULL;
  o->cc.argv0 = argv[0];
  bool only_paths = false;
  for(int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = NULL;
    if(only_paths || a[0] != '-' || strcmp(a, "-") == 0) {
      o->paths[o->n_paths++] = a;
    } else if(strcmp(a, "--") == 0) {
      only_paths = true;
    } else if(strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return EXIT_OK;
    } else if(strcmp(a, "--version") == 0) {
      printf("reqonc %s\n", REQONC_VERSION);
      return EXIT_OK;
    } else if(strcmp(a, "-o") == 0) {
      if(i + 1 >= argc)
        return usage_error("option '%s' needs a value", a);
      o->out = argv[++i];
    } else if(strncmp(a, "-o", 2) == 0 && a[2] != '\0') {
      o->out = a + 2;
    } else if(strcmp(a, "--check") == 0) {
      o->check_only = true;
    } else if(strcmp(a, "-Werror") == 0) {
      c->werror = true;
    } else if(strcmp(a, "--dump-tokens") == 0) {
      o->dump_tokens = true;
    } else if(strcmp(a, "--dump-ast") == 0) {
      o->dump_ast = true;
    } else if(strcmp(a, "--no-line") == 0) {
      o->emit.no_line = true;
    } else if(strcmp(a, "--no-version") == 0) {
      o->emit.no_version = true;
    } else if(strcmp(a, "-###") == 0) {
      o->cc.print_only = true;
    } else if(strcmp(a, "--keep-c") == 0) {
      o->cc.keep_c = true;
    } else if(opt_value(argc, argv, &i, "--emit-c", &v)) {
      if(!v || !*v)
        return usage_error("option '%s' needs a value", "--emit-c");
      o->emit_dir = v;
    } else if(opt_value(argc, argv, &i, "--cc", &v)) {
      if(!v || !*v)
        return usage_error("option '%s' needs a value", "--cc");
      o->cc.cc = v;
    } else if(opt_value(argc, argv, &i, "--cflags", &v)) {
      if(!v)
        return usage_error("option '%s' needs a value", "--cflags");
      o->cc.cflags = v;
    } else if(opt_value(argc, argv, &i, "--runtime-dir", &v)) {
      if(!v || !*v)
        return usage_error("option '%s' needs a value", "--runtime-dir");
      o->cc.runtime_dir = v;
    } else {
      return usage_error("unknown option '%s'", a);
    }
  }
  if(o->n_paths == 0)
    return usage_error("%s", "no input files");
  o->emit.cmdline = join_cmdline(c, argc, argv);
  return -1;
}

/* mkdir -p for --emit-c DIR. */
static int make_dirs(const char *dir)
{
  char path[4096];
  size_t n = strlen(dir);
  if(n == 0 || n >= sizeof path)
    return -1;
  memcpy(path, dir, n + 1);
  for(size_t i = 1; i <= n; i++) {
    if(path[i] != '/' && path[i] != '\0')
      continue;
    char saved = path[i];
    path[i] = '\0';
    if(mkdir(path, 0777) != 0 && errno != EEXIST)
      return -1;
    path[i] = saved;
  }
  struct stat st;
  return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* Writes the program's C to path; returns 0, or an exit status. */
static int write_c(Compilation *c, const char *path, FILE *f, Options *o)
{
  o->emit.c_name = path;
  emit_program(c, f, &o->emit);
  bool bad = ferror(f) != 0;
  if(fclose(f) != 0 || bad) {
    diag_plain(c, "cannot write '%s': %s", path, strerror(errno));
    return EXIT_INPUT;
  }
  return 0;
}

static int emit_to_dir(Compilation *c, Options *o)
{
  /* "--emit-c -" writes to stdout (golden tests of the emitter) */
  if(strcmp(o->emit_dir, "-") == 0) {
    o->emit.c_name = "missions.c";
    emit_program(c, stdout, &o->emit);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_UNREADABLE;
  }
  if(make_dirs(o->emit_dir) != 0) {
    diag_plain(c, "cannot create directory '%s': %s", o->emit_dir,
               strerror(errno));
    return EXIT_UNREADABLE;
  }
  size_t n = strlen(o->emit_dir);
  const char *sep = o->emit_dir[n - 1] == '/' ? "" : "/";
  const char *path = arena_printf(c->arena, "%s%smissions.c", o->emit_dir,
                                  sep);
  FILE *f = fopen(path, "w");
  if(!f) {
    diag_plain(c, "cannot open '%s': %s", path, strerror(errno));
    return EXIT_UNREADABLE;
  }
  return write_c(c, path, f, o);
}

/* Emits into a temporary file, compiles it, and removes it unless
 * --keep-c (rerun with --keep-c to inspect C that failed to compile). */
static int build(Compilation *c, Options *o)
{
  const char *tmp = getenv("TMPDIR");
  if(!tmp || !*tmp)
    tmp = "/tmp";
  char *path = arena_printf(c->arena, "%s/reqonc-XXXXXX.c", tmp);
  int fd = mkstemps(path, 2);
  if(fd < 0) {
    diag_plain(c, "cannot create a temporary file in '%s': %s", tmp,
               strerror(errno));
    return EXIT_UNREADABLE;
  }
  FILE *f = fdopen(fd, "w");
  if(!f) {
    close(fd);
    unlink(path);
    diag_plain(c, "cannot write '%s': %s", path, strerror(errno));
    return EXIT_UNREADABLE;
  }
  int rc = write_c(c, path, f, o);
  if(rc == 0)
    rc = cc_build(&o->cc, path, o->out);
  /* C that failed to compile is kept: it is what a bug report needs */
  if(o->cc.keep_c || rc == EXIT_CC)
    fprintf(stderr, "reqonc: note: generated C kept in '%s'\n", path);
  else
    unlink(path);
  return rc;
}

static int run(Compilation *c, Options *o)
{
  for(int i = 0; i < o->n_paths; i++)
    if(source_collect(c, o->paths[i]) != 0)
      return EXIT_UNREADABLE;

  if(o->dump_tokens) {
    lex_dump_tokens(c, stdout);
    return c->n_errors ? EXIT_INPUT : EXIT_OK;
  }

  parse_all(c);
  if(o->dump_ast) {
    ast_dump(c, stdout, c->prog.decls, 0);
    return c->n_errors ? EXIT_INPUT : EXIT_OK;
  }

  /* The checker runs even after syntax errors, on what parsed, so one
   * compile reports both (SPEC §11.1). */
  if(!c->too_many)
    check_program(c);
  if(c->n_errors)
    return EXIT_INPUT;
  if(o->check_only)
    return EXIT_OK;

  if(o->emit_dir)
    return emit_to_dir(c, o);
  return build(c, o);
}

int main(int argc, char **argv)
{
  Compilation comp;
  memset(&comp, 0, sizeof comp);
  Compilation *c = &comp;
  c->arena = arena_new();
  c->err = stderr;

  Options o;
  memset(&o, 0, sizeof o);
  int rc = parse_args(c, argc, argv, &o);
  if(rc < 0)
    rc = run(c, &o);
  fflush(stdout);
  arena_free(c->arena);
  return rc;
}
