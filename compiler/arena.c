/* arena.c -- the compilation's one memory pool, string interning and
 * NodeVec.
 *
 * Everything the compiler allocates (source text, nodes, strings, tables)
 * comes from one Arena and is released at once by arena_free() at the end
 * of main() (QBE's pool).  Nothing is freed on its own, so no phase has to
 * track ownership, and LeakSanitizer stays quiet.
 *
 * The intern table maps byte strings to one canonical arena copy, so
 * interned names compare with ==.  It is an open-addressing hash table
 * whose slot array lives in the arena too (old arrays are simply left
 * behind when it grows).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reqonc.h"

#define CHUNK_SIZE (64 * 1024)

typedef struct Chunk Chunk;
struct Chunk {
  Chunk *next;
  size_t used, cap;
  max_align_t data[];   /* the payload; max_align_t keeps it aligned */
};

struct Arena {
  Chunk *head;          /* current chunk; older ones follow via next */
};

static void die_oom(void)
{
  fputs("reqonc: fatal: out of memory\n", stderr);
  abort();
}

Arena *arena_new(void)
{
  Arena *a = calloc(1, sizeof *a);
  if(!a)
    die_oom();
  return a;
}

/* Returns n zeroed bytes aligned for any type.  Never returns NULL. */
void *arena_alloc(Arena *a, size_t n)
{
  const size_t align = sizeof(max_align_t);
  n = (n + align - 1) / align * align;
  if(n == 0)
    n = align;
  Chunk *ch = a->head;
  if(!ch || ch->cap - ch->used < n) {
    size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
    ch = malloc(sizeof *ch + cap);
    if(!ch)
      die_oom();
    ch->next = a->head;
    ch->used = 0;
    ch->cap = cap;
    a->head = ch;
  }
  void *p = (char *)ch->data + ch->used;
  ch->used += n;
  memset(p, 0, n);
  return p;
}

/* A NUL-terminated copy of s[0..n). */
char *arena_strndup(Arena *a, const char *s, size_t n)
{
  char *p = arena_alloc(a, n + 1);
  if(n)
    memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if(n < 0)
    n = 0;
  char *p = arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

void arena_free(Arena *a)
{
  if(!a)
    return;
  Chunk *ch = a->head;
  while(ch) {
    Chunk *next = ch->next;
    free(ch);
    ch = next;
  }
  free(a);
}

/* ------------------------------------------------------------ interning */

typedef struct {
  const char **slots;   /* NULL = empty; each entry NUL-terminated */
  size_t *lens;
  size_t cap, count;    /* cap is a power of two */
} Intern;

static uint32_t hash_bytes(const char *s, size_t n)
{
  uint32_t h = 2166136261u;     /* FNV-1a */
  for(size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

static void intern_grow(Compilation *c, Intern *t)
{
  size_t cap = t->cap ? t->cap * 2 : 256;
  const char **slots = arena_alloc(c->arena, cap * sizeof *slots);
  size_t *lens = arena_alloc(c->arena, cap * sizeof *lens);
  for(size_t i = 0; i < t->cap; i++) {
    if(!t->slots[i])
      continue;
    size_t j = hash_bytes(t->slots[i], t->lens[i]) & (cap - 1);
    while(slots[j])
      j = (j + 1) & (cap - 1);
    slots[j] = t->slots[i];
    lens[j] = t->lens[i];
  }
  t->slots = slots;
  t->lens = lens;
  t->cap = cap;
}

/* The canonical copy of s[0..n): equal strings give the same pointer. */
const char *intern(Compilation *c, const char *s, size_t n)
{
  Intern *t = c->interned;
  if(!t) {
    t = arena_alloc(c->arena, sizeof *t);
    c->interned = t;
  }
  if((t->count + 1) * 2 > t->cap)
    intern_grow(c, t);
  size_t j = hash_bytes(s, n) & (t->cap - 1);
  while(t->slots[j]) {
    if(t->lens[j] == n && memcmp(t->slots[j], s, n) == 0)
      return t->slots[j];
    j = (j + 1) & (t->cap - 1);
  }
  t->slots[j] = arena_strndup(c->arena, s, n);
  t->lens[j] = n;
  t->count++;
  return t->slots[j];
}

/* ------------------------------------------------------------- NodeVec */

void vec_push(Compilation *c, NodeVec *v, Node *n)
{
  if(v->len == v->cap) {
    int cap = v->cap ? v->cap * 2 : 8;
    Node **data = arena_alloc(c->arena, (size_t)cap * sizeof *data);
    if(v->len)
      memcpy(data, v->data, (size_t)v->len * sizeof *data);
    v->data = data;
    v->cap = cap;
  }
  v->data[v->len++] = n;
}
