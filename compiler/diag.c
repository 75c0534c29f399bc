/* diag.c -- compiler diagnostics (SPEC §11.1).
 *
 *   path:line:col: error: message
 *      12 |     for inv in invoice where .open {
 *         |                ^~~~~~~
 *
 * Columns are 1-based byte counts.  The caret line copies the tabs of the
 * line's prefix so it lines up in any terminal, and underlines the span
 * with '^' then '~', clipped to the first line of the span.  Warnings are
 * counted apart from errors; -Werror turns them into errors.  After
 * MAX_ERRORS errors one "too many errors" line is printed and everything
 * later is suppressed.  Nothing here exits: main() decides.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "reqonc.h"

#define MAX_ERRORS 50

static void print_snippet(Compilation *c, Loc loc, int line, int col)
{
  FILE *out = c->err;
  int n;
  const char *text = source_line(c, loc.file, line, &n);
  fprintf(out, "%5d | %.*s\n", line, n, text);
  fputs("      | ", out);
  int pre = col - 1;
  if(pre > n)
    pre = n;
  for(int i = 0; i < pre; i++)
    fputc(text[i] == '\t' ? '\t' : ' ', out);
  fputc('^', out);
  /* The span, clipped to this line; '~' for every byte after the first. */
  int width = loc.end - loc.start;
  if(width > n - pre)
    width = n - pre;
  for(int i = 1; i < width; i++)
    fputc('~', out);
  fputc('\n', out);
}

/* Writes the formatted message with its control bytes escaped the way a
 * Reqon string writes them (\n, \t, \r, \u001b): messages quote user
 * strings and paths, and a raw newline or terminal escape in one would
 * break the one-line-per-diagnostic format (SPEC §11.1) or the user's
 * terminal. */
static void write_message(FILE *out, const char *fmt, va_list ap)
{
  char small[512];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap2);
  va_end(ap2);
  if(n < 0)
    return;
  char *msg = small;
  if((size_t)n >= sizeof small) {
    msg = malloc((size_t)n + 1);
    if(!msg) {          /* out of memory: the message unescaped */
      vfprintf(out, fmt, ap);
      return;
    }
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
  }
  for(int i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)msg[i];
    if(ch == '\n')
      fputs("\\n", out);
    else if(ch == '\t')
      fputs("\\t", out);
    else if(ch == '\r')
      fputs("\\r", out);
    else if(ch < 0x20 || ch == 0x7f)
      fprintf(out, "\\u%04x", ch);
    else
      fputc(ch, out);
  }
  if(msg != small)
    free(msg);
}

void diag_at(Compilation *c, DiagLevel lv, Loc loc, const char *fmt, ...)
{
  if(lv == DG_WARNING && c->werror)
    lv = DG_ERROR;
  if(c->too_many)
    return;
  if(lv == DG_ERROR) {
    if(c->n_errors >= MAX_ERRORS) {
      c->too_many = true;
      c->n_errors++;
      fputs("reqonc: too many errors, stopping\n", c->err);
      return;
    }
    c->n_errors++;
  } else if(lv == DG_WARNING) {
    c->n_warnings++;
  }
  static const char *const names[] = { "error", "warning", "note" };
  FILE *out = c->err;
  int line = 0, col = 0;
  bool located = loc.file >= 0 && loc.file < c->n_files && loc.start >= 0;
  if(located) {
    source_linecol(c, loc, &line, &col);
    fprintf(out, "%s:%d:%d: %s: ", c->files[loc.file].path, line, col,
            names[lv]);
  } else {
    fprintf(out, "reqonc: %s: ", names[lv]);
  }
  va_list ap;
  va_start(ap, fmt);
  write_message(out, fmt, ap);
  va_end(ap);
  fputc('\n', out);
  if(located)
    print_snippet(c, loc, line, col);
}

void diag_plain(Compilation *c, const char *fmt, ...)
{
  c->n_errors++;
  fputs("reqonc: error: ", c->err);
  va_list ap;
  va_start(ap, fmt);
  write_message(c->err, fmt, ap);
  va_end(ap);
  fputc('\n', c->err);
}
