/* check.h -- the unit-test harness: CHECK(cond), CHECK_STREQ(a, b),
 * CHECK_STRFREE(a, b) (frees a, for results of functions returning
 * malloc'd text) and check_report(), which prints the final line
 * "N passed, M failed" that tests/run-unit.sh reads.  A failed check
 * prints file:line and the expression and the test keeps going. */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed;
static int check_failed;

__attribute__((unused))
static void check_result(int ok, const char *file, int line,
                         const char *expr)
{
  if (ok) {
    check_passed++;
    return;
  }
  check_failed++;
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
}

__attribute__((unused))
static void check_streq(const char *a, const char *b, const char *file,
                        int line, const char *expr)
{
  int ok = a && b ? strcmp(a, b) == 0 : a == b;
  check_result(ok, file, line, expr);
  if (!ok)
    fprintf(stderr, "    got:  %s\n    want: %s\n", a ? a : "(null)",
            b ? b : "(null)");
}

__attribute__((unused))
static void check_strfree(char *a, const char *b, const char *file,
                          int line, const char *expr)
{
  check_streq(a, b, file, line, expr);
  free(a);
}

#define CHECK(cond) check_result(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_STREQ(a, b) check_streq((a), (b), __FILE__, __LINE__, #a)
#define CHECK_STRFREE(a, b) check_strfree((a), (b), __FILE__, __LINE__, #a)

/* Prints the summary line; returns the exit status for main. */
__attribute__((unused))
static int check_report(void)
{
  printf("%d passed, %d failed\n", check_passed, check_failed);
  fflush(stdout);
  return check_failed ? 1 : 0;
}

#endif
