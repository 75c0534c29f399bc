/* cc.c -- runs the C compiler on the emitted C and links the runtime.
 *
 * Command:  CC -std=c11 <build flags> CFLAGS [--cflags] -I<inc> file.c
 *           -o OUT <lib>/libreqonrt.a <dependency libs> LDFLAGS
 *
 * Finding the runtime (first match wins):
 *   1. --runtime-dir DIR or $REQON_RUNTIME_DIR: reqon.h and libreqonrt.a
 *      in DIR (or DIR/include/reqon + DIR/lib/reqon, an install prefix);
 *   2. relative to this executable: <exe>/../include/reqon and
 *      <exe>/../lib/reqon (an installed reqonc, so installs relocate);
 *   3. the build tree: <exe>/include/reqon and <exe>/ (build/reqonc:
 *      the headers the Makefile copied beside the library built with
 *      them, never the source tree's, which may have moved on);
 *   4. the build directory reqonc was built in, by absolute path (a
 *      reqonc copied elsewhere without its runtime).
 * RQ_BUILD_FLAGS (sanitizer flags of the build that produced reqonc) are
 * always passed, so a sanitized runtime library gets sanitized callers.
 * $CC, $CFLAGS and $LDFLAGS are honoured (a sanitizer build of the tests
 * also sanitizes the generated daemons).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reqonc.h"

#ifndef RQ_DEP_LIBS
#define RQ_DEP_LIBS "-lcurl -ljansson -lm -lpthread"
#endif
#ifndef RQ_BUILD_FLAGS
#define RQ_BUILD_FLAGS ""
#endif

enum { RT_MAX = PATH_MAX + 64 };

/* The argument vector grows as needed: $CFLAGS and --cflags may hold any
 * number of words, and a fixed limit that dropped the words past it
 * (the output file, the libraries) built the wrong command. */
typedef struct {
  char **argv;          /* malloc'd, NULL-terminated; entries strdup'd */
  int argc, cap;
  bool failed;          /* out of memory: the command is incomplete */
} Cmd;

static void cmd_add(Cmd *c, const char *s)
{
  if(c->failed)
    return;
  if(c->argc + 1 >= c->cap) {
    int cap = c->cap ? c->cap * 2 : 64;
    char **nv = realloc(c->argv, (size_t)cap * sizeof *nv);
    if(!nv) {
      c->failed = true;
      return;
    }
    c->argv = nv;
    c->cap = cap;
  }
  char *copy = strdup(s);
  if(!copy) {
    c->failed = true;
    return;
  }
  c->argv[c->argc++] = copy;
  c->argv[c->argc] = NULL;
}

/* Adds each whitespace-separated word of s (no quoting, like make). */
static void cmd_add_words(Cmd *c, const char *s)
{
  if(!s)
    return;
  while(*s) {
    while(*s == ' ' || *s == '\t' || *s == '\n')
      s++;
    if(!*s)
      break;
    const char *w = s;
    while(*s && *s != ' ' && *s != '\t' && *s != '\n')
      s++;
    char *word = strndup(w, (size_t)(s - w));   /* any length */
    if(!word) {
      c->failed = true;
      return;
    }
    cmd_add(c, word);
    free(word);
  }
}

static void cmd_free(Cmd *c)
{
  for(int i = 0; i < c->argc; i++)
    free(c->argv[i]);
  free(c->argv);
  c->argv = NULL;
  c->argc = c->cap = 0;
}

static bool is_file(const char *dir, const char *name)
{
  char p[RT_MAX + 32];
  struct stat st;
  if(snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
    return false;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Tries inc/lib as a runtime location; copies them out on success. */
static bool try_dirs(const char *inc, const char *lib, char *inc_out,
                     char *lib_out)
{
  if(!is_file(inc, "reqon.h") || !is_file(lib, "libreqonrt.a"))
    return false;
  snprintf(inc_out, RT_MAX, "%s", inc);
  snprintf(lib_out, RT_MAX, "%s", lib);
  return true;
}

static bool find_runtime(const CcOptions *o, char *inc, char *lib)
{
  char a[RT_MAX], b[RT_MAX];
  const char *dir = o->runtime_dir;
  if(!dir)
    dir = getenv("REQON_RUNTIME_DIR");
  if(dir && *dir) {
    if(try_dirs(dir, dir, inc, lib))
      return true;
    snprintf(a, sizeof a, "%s/include/reqon", dir);
    snprintf(b, sizeof b, "%s/lib/reqon", dir);
    return try_dirs(a, b, inc, lib);
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if(n <= 0) {
    if(!o->argv0 || !realpath(o->argv0, exe))
      return false;
  } else {
    exe[n] = '\0';
  }
  char *slash = strrchr(exe, '/');
  if(!slash)
    return false;
  *slash = '\0';   /* exe is now the directory of reqonc */
  snprintf(a, sizeof a, "%s/../include/reqon", exe);
  snprintf(b, sizeof b, "%s/../lib/reqon", exe);
  if(try_dirs(a, b, inc, lib))
    return true;
  snprintf(a, sizeof a, "%s/include/reqon", exe);
  if(try_dirs(a, exe, inc, lib))
    return true;
#if defined(RQ_BUILD_INCDIR) && defined(RQ_BUILD_LIBDIR)
  return try_dirs(RQ_BUILD_INCDIR, RQ_BUILD_LIBDIR, inc, lib);
#else
  return false;
#endif
}

static void print_cmd(FILE *f, const Cmd *c)
{
  for(int i = 0; i < c->argc; i++) {
    const char *s = c->argv[i];
    bool quote = strpbrk(s, " \t\"'\\$") != NULL;
    fprintf(f, "%s%s%s%s", i ? " " : "", quote ? "'" : "", s,
            quote ? "'" : "");
  }
  fputc('\n', f);
}

int cc_build(const CcOptions *o, const char *c_path, const char *out_path)
{
  char inc[RT_MAX], lib[RT_MAX], arg[RT_MAX + 16];
  if(!find_runtime(o, inc, lib)) {
    fprintf(stderr, "reqonc: error: cannot find the Reqon runtime (reqon.h "
            "and libreqonrt.a); use --runtime-dir or REQON_RUNTIME_DIR\n");
    return 4;
  }
  Cmd c = { NULL, 0, 0, false };
  const char *cc = o->cc;
  if(!cc || !*cc)
    cc = getenv("CC");
  if(!cc || !*cc)
    cc = "cc";
  cmd_add_words(&c, cc);
  cmd_add(&c, "-std=c11");
  cmd_add_words(&c, RQ_BUILD_FLAGS);
  const char *cflags = getenv("CFLAGS");
  cmd_add_words(&c, cflags && *cflags ? cflags : "-O2");
  cmd_add_words(&c, o->cflags);
  snprintf(arg, sizeof arg, "-I%s", inc);
  cmd_add(&c, arg);
  cmd_add(&c, c_path);
  cmd_add(&c, "-o");
  cmd_add(&c, out_path);
  snprintf(arg, sizeof arg, "%s/libreqonrt.a", lib);
  cmd_add(&c, arg);
  cmd_add_words(&c, RQ_DEP_LIBS);
  cmd_add_words(&c, getenv("LDFLAGS"));
  if(c.failed) {
    fprintf(stderr, "reqonc: error: out of memory building the C compiler "
            "command\n");
    cmd_free(&c);
    return 4;
  }

  if(o->print_only) {
    print_cmd(stdout, &c);
    cmd_free(&c);
    return 0;
  }
  fflush(NULL);
  pid_t pid = fork();
  if(pid < 0) {
    fprintf(stderr, "reqonc: error: cannot run the C compiler: %s\n",
            strerror(errno));
    cmd_free(&c);
    return 4;
  }
  if(pid == 0) {
    /* the compiler's own diagnostics go to our stderr */
    if(dup2(2, 1) < 0)
      _exit(127);
    execvp(c.argv[0], c.argv);
    fprintf(stderr, "reqonc: error: cannot run '%s': %s\n", c.argv[0],
            strerror(errno));
    _exit(127);
  }
  int status;
  while(waitpid(pid, &status, 0) < 0) {
    if(errno != EINTR) {
      status = -1;
      break;
    }
  }
  int rc = 0;
  if(status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "reqonc: error: the C compiler failed on the generated "
            "code (a reqonc bug, or a broken toolchain); command:\n  ");
    print_cmd(stderr, &c);
    rc = 4;
  }
  cmd_free(&c);
  return rc;
}
