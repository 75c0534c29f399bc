/* paginate.c -- the pagination strategies of SPEC §6.5 as an iterator.
 *
 * http.c owns the request loop; for each page it asks the pager which
 * parameters to send (rqi_pager_params), fetches the page with retries,
 * and feeds the decoded body back (rqi_pager_feed).  The pager evaluates
 * `until`, collects items (or only counts them when the step streams its
 * pages into a store step), applies the stop rules in the order the spec
 * gives (successful stops first, then maxPages, then the not-advancing
 * guard) and advances to the next page.
 */
#include <string.h>
#include "rq_internal.h"

#define DEFAULT_MAX_PAGES 1000

void rqi_pager_init(RqPager *pg, const RqStep *st, bool collect)
{
  memset(pg, 0, sizeof(*pg));
  pg->st = st;
  pg->sent = json_object();
  /* A streaming step hands each page's items to its store step instead
   * (SPEC §6.5): nothing is concatenated. */
  pg->items = collect ? json_array() : NULL;
}

void rqi_pager_free(RqPager *pg)
{
  json_decref(pg->cursor);
  json_decref(pg->sent);
  json_decref(pg->items);
  memset(pg, 0, sizeof(*pg));
}

void rqi_pager_params(const RqPager *pg, json_t *query)
{
  const RqStep *st = pg->st;

  if(!st->pg_param)    /* the checker always sets it; be safe */
    return;
  switch(st->pg_kind) {
  case RQ_PG_OFFSET:
    json_object_set_new(query, st->pg_param,
                        json_integer((json_int_t)pg->page * st->pg_size));
    break;
  case RQ_PG_PAGE:
    json_object_set_new(query, st->pg_param,
                        json_integer((json_int_t)pg->page + 1));
    break;
  case RQ_PG_CURSOR:
    if(pg->cursor)
      json_object_set(query, st->pg_param, pg->cursor);
    break;
  case RQ_PG_NONE:
    return;
  }
  if(st->pg_size_param)
    json_object_set_new(query, st->pg_size_param,
                        json_integer(st->pg_size));
}

json_t *rqi_page_items(const json_t *body)
{
  const char *k;
  json_t *v;

  if(json_is_array(body))
    return (json_t *)body;
  if(!json_is_object(body))
    return NULL;
  /* jansson keeps insertion order, so this is document order. */
  json_object_foreach((json_t *)body, k, v) {
    if(json_is_array(v))
      return v;
  }
  return NULL;
}

/* Evaluates `until` with the page body as subject and as response, in a
 * temporary child scope.  Returns 0 and sets *stop, or a negative code. */
static int eval_until(const RqEnv *env, const RqStep *st, json_t *body,
                      int status, json_t *headers, bool *stop)
{
  RqScope *child;
  RqEnv e;
  json_t *out = NULL;
  int rc;

  *stop = false;
  if(!st->until)
    return 0;
  child = rqi_scope_new(env->scope);
  rqi_scope_set_response_new(child, json_incref(body), status,
                             headers ? json_incref(headers) : NULL);
  e.run = env->run;
  e.scope = child;
  e.subject = body;
  rc = st->until(&e, &out);
  if(rc == 0)
    *stop = rq_truthy(out);
  json_decref(out);
  rqi_scope_free(child);
  return rc;
}

/* A digest of a page body for the not-advancing guard, so that only one
 * page is held at a time.  Equal digests mean json_equal bodies: keys are
 * sorted (object order does not count), integers and reals print
 * differently (1 and 1.0 are not equal), and a real prints all 17
 * digits.  (Only 0.0 and -0.0 differ here and not for json_equal, which
 * at worst lets one more page be requested.) */
static void body_digest(const json_t *body, char out[65])
{
  char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS |
                          JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));

  rqi_sha256_hex(text ? text : "", text ? strlen(text) : 0, out);
  rq_free(text);       /* jansson allocates with rq_malloc */
}

/* True when a cursor value ends cursor pagination: missing, null, "",
 * false or 0. */
static bool cursor_ends(const json_t *c)
{
  if(!c || json_is_null(c) || json_is_false(c))
    return true;
  if(json_is_string(c))
    return json_string_length(c) == 0;
  if(json_is_number(c))
    return json_number_value(c) == 0;
  return false;
}

int rqi_pager_feed(RqPager *pg, const RqEnv *env, json_t *body, int status,
                   json_t *headers, const char *what)
{
  const RqStep *st = pg->st;
  json_t *items, *next = NULL;
  size_t n_items = 0;
  bool stop = false;
  int rc, max_pages;
  char *text;
  char digest[65];

  rc = eval_until(env, st, body, status, headers, &stop);
  if(rc)
    return rc;

  items = rqi_page_items(body);
  if(items) {
    n_items = json_array_size(items);
    pg->n_items += n_items;
    if(pg->items)
      json_array_extend(pg->items, items);
  }

  /* Successful stops first. */
  if(stop)
    return 0;
  switch(st->pg_kind) {
  case RQ_PG_OFFSET:
  case RQ_PG_PAGE:
    if(st->pg_size > 0 ? n_items < (size_t)st->pg_size : n_items == 0)
      return 0;
    break;
  case RQ_PG_CURSOR:
    if(!st->pg_cursor_path)
      return 0;
    next = rqi_path_get(body, st->pg_cursor_path);
    if(cursor_ends(next))
      return 0;
    break;
  case RQ_PG_NONE:
    return 0;
  }

  /* Another page would be requested: the failing stops. */
  max_pages = st->max_pages > 0 ? st->max_pages : DEFAULT_MAX_PAGES;
  if(pg->page + 1 >= max_pages) {
    rq_log(RQ_LOG_WARN, NULL, "%s/%s: pagination limit (%d pages) "
           "reached for %s", env->run->m->name,
           env->run->action ? env->run->action : "-", max_pages, what);
    return rq_fail(env, st->at,
                   "pagination limit (%d pages) reached for %s; "
                   "raise maxPages", max_pages, what);
  }
  body_digest(body, digest);
  if(pg->page > 0 && strcmp(pg->prev, digest) == 0)
    return rq_fail(env, st->at, "pagination is not advancing for %s", what);
  if(next) {
    text = rqi_text(next);
    if(json_object_get(pg->sent, text)) {
      rq_free(text);
      return rq_fail(env, st->at, "pagination is not advancing for %s",
                     what);
    }
    json_object_set_new(pg->sent, text, json_true());
    json_decref(pg->cursor);
    /* rqi_text of a JSON value is valid UTF-8, so this cannot fail. */
    pg->cursor = json_string(text);
    rq_free(text);
  }
  memcpy(pg->prev, digest, sizeof(pg->prev));
  pg->page++;
  return 1;
}
