/* source.c -- input files: reading, directory expansion, line maps.
 *
 * Each input becomes a Source in c->files: the whole text (BOM stripped,
 * NUL-terminated, in the arena) plus the byte offset of every line start,
 * so a Loc (byte offsets) turns into line:column only when a diagnostic or
 * a #line needs it (jq locfile.c).  Lines and columns are 1-based and
 * columns count bytes.
 *
 * source_collect() expands a command-line argument: a file is taken as is;
 * a directory is scanned recursively for *.reqon and *.vague, and the
 * files are added in byte-wise sorted path order (SPEC §2.7).  Paths are
 * kept exactly as derived from the argument, never made absolute.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reqonc.h"

/* Reads all of f into the arena; returns NULL (errno set) on failure. */
static char *read_all(Compilation *c, FILE *f, size_t *len)
{
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  if(!buf)
    return NULL;
  for(;;) {
    if(cap - n < 4096) {
      char *nb = realloc(buf, cap * 2);
      if(!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if(got == 0)
      break;
  }
  if(ferror(f)) {
    int e = errno ? errno : EIO;
    free(buf);
    errno = e;
    return NULL;
  }
  /* A leading UTF-8 BOM is ignored (SPEC §2.1). */
  size_t skip = 0;
  if(n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
    skip = 3;
  char *text = arena_strndup(c->arena, buf + skip, n - skip);
  *len = n - skip;
  free(buf);
  return text;
}

static void build_line_map(Compilation *c, Source *s)
{
  int n = 1;
  for(size_t i = 0; i < s->len; i++)
    if(s->text[i] == '\n')
      n++;
  s->line_starts = arena_alloc(c->arena, (size_t)n * sizeof(int));
  s->line_starts[0] = 0;
  int k = 1;
  for(size_t i = 0; i < s->len; i++)
    if(s->text[i] == '\n')
      s->line_starts[k++] = (int)i + 1;
  s->n_lines = n;
}

static bool is_root_name(const char *path)
{
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  return strcmp(base, "mission.reqon") == 0 ||
         strcmp(base, "mission.vague") == 0;
}

int source_add(Compilation *c, const char *path, const char *root)
{
  FILE *f = fopen(path, "rb");
  if(!f) {
    diag_plain(c, "cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  size_t len = 0;
  char *text = read_all(c, f, &len);
  int e = errno;
  fclose(f);
  if(!text) {
    diag_plain(c, "cannot read '%s': %s", path, strerror(e));
    return -1;
  }
  if(len > (size_t)0x7fffffff) {
    diag_plain(c, "cannot read '%s': file too large", path);
    return -1;
  }
  if(c->n_files == c->cap_files) {
    int cap = c->cap_files ? c->cap_files * 2 : 16;
    Source *files = arena_alloc(c->arena, (size_t)cap * sizeof *files);
    if(c->n_files)
      memcpy(files, c->files, (size_t)c->n_files * sizeof *files);
    c->files = files;
    c->cap_files = cap;
  }
  Source *s = &c->files[c->n_files];
  memset(s, 0, sizeof *s);
  s->path = arena_strndup(c->arena, path, strlen(path));
  s->root = root ? arena_strndup(c->arena, root, strlen(root)) : s->path;
  s->text = text;
  s->len = len;
  s->is_mission_root = is_root_name(path);
  build_line_map(c, s);
  return c->n_files++;
}

/* ----------------------------------------------------- directory scan */

typedef struct {
  char **paths;         /* malloc'd; freed by source_collect */
  size_t len, cap;
} PathList;

static bool has_input_ext(const char *name)
{
  size_t n = strlen(name);
  return (n > 6 && strcmp(name + n - 6, ".reqon") == 0) ||
         (n > 6 && strcmp(name + n - 6, ".vague") == 0);
}

static char *join_path(const char *dir, const char *name)
{
  size_t dl = strlen(dir), nl = strlen(name);
  bool slash = dl > 0 && dir[dl - 1] == '/';
  char *p = malloc(dl + nl + 2);
  if(!p)
    return NULL;
  memcpy(p, dir, dl);
  if(!slash)
    p[dl++] = '/';
  memcpy(p + dl, name, nl + 1);
  return p;
}

static int push_path(PathList *l, char *p)
{
  if(!p)
    return -1;
  if(l->len == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    char **np = realloc(l->paths, cap * sizeof *np);
    if(!np) {
      free(p);
      return -1;
    }
    l->paths = np;
    l->cap = cap;
  }
  l->paths[l->len++] = p;
  return 0;
}

/* Collects the input files below dir.  Entries starting with '.' (hidden
 * files, editor droppings) are skipped.  Returns -1 and reports on an
 * unreadable directory. */
static int scan_dir(Compilation *c, const char *dir, PathList *out,
                    int depth)
{
  if(depth > 64) {
    diag_plain(c, "cannot read '%s': directories nested too deeply", dir);
    return -1;
  }
  DIR *d = opendir(dir);
  if(!d) {
    diag_plain(c, "cannot open '%s': %s", dir, strerror(errno));
    return -1;
  }
  int rc = 0;
  struct dirent *de;
  while(rc == 0 && (de = readdir(d)) != NULL) {
    if(de->d_name[0] == '.')
      continue;
    char *p = join_path(dir, de->d_name);
    if(!p) {
      rc = -1;
      break;
    }
    struct stat st;
    if(stat(p, &st) != 0) {
      /* A dangling symlink is not an input; skip it quietly unless it
       * looks like one. */
      if(has_input_ext(de->d_name)) {
        diag_plain(c, "cannot open '%s': %s", p, strerror(errno));
        rc = -1;
      }
      free(p);
      continue;
    }
    if(S_ISDIR(st.st_mode)) {
      rc = scan_dir(c, p, out, depth + 1);
      free(p);
    } else if(S_ISREG(st.st_mode) && has_input_ext(de->d_name)) {
      rc = push_path(out, p);
    } else {
      free(p);
    }
  }
  closedir(d);
  return rc;
}

static int cmp_path(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int source_collect(Compilation *c, const char *arg)
{
  struct stat st;
  if(stat(arg, &st) != 0) {
    diag_plain(c, "cannot open '%s': %s", arg, strerror(errno));
    return -1;
  }
  if(!S_ISDIR(st.st_mode))
    return source_add(c, arg, arg) < 0 ? -1 : 0;

  PathList l = { NULL, 0, 0 };
  int rc = scan_dir(c, arg, &l, 0);
  if(rc == 0) {
    qsort(l.paths, l.len, sizeof *l.paths, cmp_path);
    if(l.len == 0) {
      diag_plain(c, "no .reqon or .vague files in '%s'", arg);
      rc = -1;
    }
    for(size_t i = 0; rc == 0 && i < l.len; i++)
      if(source_add(c, l.paths[i], arg) < 0)
        rc = -1;
  }
  for(size_t i = 0; i < l.len; i++)
    free(l.paths[i]);
  free(l.paths);
  return rc;
}

/* ------------------------------------------------------------ line map */

void source_linecol(const Compilation *c, Loc loc, int *line, int *col)
{
  *line = 0;
  *col = 0;
  if(loc.file < 0 || loc.file >= c->n_files || loc.start < 0)
    return;
  const Source *s = &c->files[loc.file];
  int lo = 0, hi = s->n_lines - 1;
  while(lo < hi) {              /* last line start <= loc.start */
    int mid = (lo + hi + 1) / 2;
    if(s->line_starts[mid] <= loc.start)
      lo = mid;
    else
      hi = mid - 1;
  }
  *line = lo + 1;
  *col = loc.start - s->line_starts[lo] + 1;
}

const char *source_line(const Compilation *c, int file, int line, int *n)
{
  *n = 0;
  if(file < 0 || file >= c->n_files)
    return "";
  const Source *s = &c->files[file];
  if(line < 1 || line > s->n_lines)
    return "";
  int start = s->line_starts[line - 1];
  int end = line < s->n_lines ? s->line_starts[line] - 1 : (int)s->len;
  if(end > start && s->text[end - 1] == '\r')
    end--;
  *n = end - start;
  return s->text + start;
}
