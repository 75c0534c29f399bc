/* test_store_file.c -- unit tests of store.c, store_file.c,
 * store_memory.c and state.c: file format and order rules (§7.1-§7.3),
 * merge and partial writes, atomic steps with rollback, corrupt files,
 * memory stores per run, --output, units of work (a streaming store
 * step, §6.5), checkpoints (§8.1) and the data-dir lock (§8.4).  Runs in
 * a fresh directory under $TMPDIR. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rq_internal.h"
#include "check.h"

static const RqStoreDef stores[] = {
  { "customers", RQ_STORE_FILE, "customers", RQ_AT(0, 2, 3) },
  { "mem", RQ_STORE_MEMORY, "mem", RQ_AT(0, 3, 3) },
  { "nested", RQ_STORE_NOSQL, "a/b", RQ_AT(0, 4, 3) },
  { "broken", RQ_STORE_FILE, "broken", RQ_AT(0, 5, 3) },
  { "alias", RQ_STORE_NOSQL, "customers", RQ_AT(0, 6, 3) },
};
static const RqMissionDef mission = {
  .name = "M",
  .stores = stores,
  .n_stores = sizeof stores / sizeof stores[0],
};
static const char *const files[] = { "m.reqon" };

static void run_init(RqRun *run, RqRun *parent)
{
  memset(run, 0, sizeof *run);
  run->m = &mission;
  run->files = files;
  run->parent = parent;
  snprintf(run->exec_id, sizeof run->exec_id, "exec_test_1");
}

/* The whole file at path (malloc'd), or NULL. */
static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  char *s;
  long n;
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  s = malloc((size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n)
    n = 0;
  s[n] = '\0';
  fclose(f);
  return s;
}

static json_t *parse(const char *text)
{
  json_error_t je;
  return json_loads(text, 0, &je);
}

/* Puts the records of the JSON array text, keyed by their "id" text. */
static int put(RqRun *run, RqStore *st, const char *text, bool merge,
               int partial)
{
  RqEnv env = { run, NULL, NULL };
  json_t *recs = parse(text);
  size_t n = json_array_size(recs);
  char **keys = calloc(n + 1, sizeof *keys);
  int rc;
  for (size_t i = 0; i < n; i++)
    keys[i] = rqi_text(json_object_get(json_array_get(recs, i), "id"));
  rc = rqi_store_put(&env, RQ_LOC(0, 9, 5), st, NULL, recs,
                     (const char *const *)keys, merge, partial);
  for (size_t i = 0; i < n; i++)
    free(keys[i]);
  free(keys);
  json_decref(recs);
  return rc;
}

/* Compact dump of the store's records. */
static char *listing(RqStore *st)
{
  json_t *a = rqi_store_list(st);
  char *s = rqi_dumps(a, 0);
  json_decref(a);
  return s;
}

static RqStore *open_store(RqRun *run, int idx)
{
  RqEnv env = { run, NULL, NULL };
  RqStore *st = NULL;
  if (rqi_store_open(&env, RQ_LOC(0, 8, 5), idx, &st) != 0)
    return NULL;
  return st;
}

static void test_file_store(void)
{
  RqRun run;
  RqStore *st;
  RqStore *again;
  json_t *caller;
  json_t *rec;
  RqEnv env;

  run_init(&run, NULL);
  env = (RqEnv){ &run, NULL, NULL };
  st = open_store(&run, 0);
  CHECK(st != NULL);
  if (!st)
    return;
  CHECK_STRFREE(listing(st), "[]");
  CHECK(access("d/customers.json", F_OK) != 0);    /* opening writes nothing */

  CHECK(put(&run, st, "[{\"id\":1,\"name\":\"Ada\",\"tier\":\"gold\"},"
            "{\"id\":2,\"name\":\"Grace\"}]", false, -1) == 0);
  CHECK_STRFREE(slurp("d/customers.json"),
                "{\n"
                "  \"1\": {\n"
                "    \"id\": 1,\n"
                "    \"name\": \"Ada\",\n"
                "    \"tier\": \"gold\"\n"
                "  },\n"
                "  \"2\": {\n"
                "    \"id\": 2,\n"
                "    \"name\": \"Grace\"\n"
                "  }\n"
                "}\n");
  CHECK_STRFREE(slurp("d/.gitignore"), "*.json\n");

  /* merge: old fields keep their place, new ones are appended; the key
   * keeps its position */
  CHECK(put(&run, st, "[{\"id\":1,\"name\":\"Ada L.\",\"extra\":true}]",
            true, -1) == 0);
  /* set replaces the whole record */
  CHECK(put(&run, st, "[{\"id\":2,\"x\":1}]", false, -1) == 0);
  /* partial: true merges and marks */
  CHECK(put(&run, st, "[{\"id\":3}]", false, 1) == 0);
  CHECK_STRFREE(listing(st),
                "[{\"id\":1,\"name\":\"Ada L.\",\"tier\":\"gold\","
                "\"extra\":true},{\"id\":2,\"x\":1},"
                "{\"id\":3,\"_partial\":true}]");
  /* partial: false on a merge keeps the fields, the marker changes in
   * place */
  CHECK(put(&run, st, "[{\"id\":3,\"n\":7}]", true, 0) == 0);
  /* the same key twice in one step: applied in order */
  CHECK(put(&run, st, "[{\"id\":5,\"a\":1},{\"id\":5,\"b\":2}]", true, -1)
        == 0);
  CHECK(put(&run, st, "[{\"id\":6,\"a\":1},{\"id\":6,\"b\":2}]", false, -1)
        == 0);
  CHECK_STRFREE(listing(st),
                "[{\"id\":1,\"name\":\"Ada L.\",\"tier\":\"gold\","
                "\"extra\":true},{\"id\":2,\"x\":1},"
                "{\"id\":3,\"_partial\":false,\"n\":7},"
                "{\"id\":5,\"a\":1,\"b\":2},{\"id\":6,\"b\":2}]");

  /* the caller's objects are never modified */
  caller = parse("[{\"id\":7,\"k\":{\"z\":1}}]");
  {
    const char *keys[] = { "7" };
    CHECK(rqi_store_put(&env, RQ_LOC(0, 1, 1), st, NULL, caller, keys,
                        true, 1) == 0);
  }
  CHECK_STRFREE(rqi_dumps(caller, 0), "[{\"id\":7,\"k\":{\"z\":1}}]");
  json_object_set_new(json_object_get(json_array_get(caller, 0), "k"),
                      "z", json_integer(2));
  rec = rqi_store_lookup(st, "7");
  CHECK_STRFREE(rqi_dumps(rec, 0), "{\"id\":7,\"k\":{\"z\":1},"
                "\"_partial\":true}");
  json_decref(rec);
  json_decref(caller);
  CHECK(rqi_store_lookup(st, "nope") == NULL);

  /* a non-object record fails the step and changes nothing */
  CHECK(put(&run, st, "[{\"id\":8},3]", false, -1) != 0);
  CHECK_STREQ(run.err, "store customers: record must be an object "
              "(got number)");
  CHECK(rqi_store_lookup(st, "8") == NULL);
  run.failed = false;
  run.err[0] = '\0';

  /* nosql("customers") is the same instance as file("customers") */
  again = open_store(&run, 4);
  CHECK(again == st);

  /* a failed flush rolls the whole step back */
  CHECK(mkdir("d/customers.json.tmp", 0755) == 0);
  CHECK(put(&run, st, "[{\"id\":1,\"name\":\"X\"},{\"id\":9}]", false, -1)
        != 0);
  CHECK(strncmp(run.err, "store customers: cannot write d/customers.json",
                strlen("store customers: cannot write d/customers.json"))
        == 0);
  run.failed = false;
  run.err[0] = '\0';
  CHECK(rqi_store_lookup(st, "9") == NULL);
  rec = rqi_store_lookup(st, "1");
  CHECK_STREQ(json_string_value(json_object_get(rec, "name")), "Ada L.");
  json_decref(rec);
  CHECK(rmdir("d/customers.json.tmp") == 0);

  /* nested targets create directories, each with a .gitignore */
  st = open_store(&run, 2);
  CHECK(st && put(&run, st, "[{\"id\":\"x\"}]", false, -1) == 0);
  CHECK_STRFREE(slurp("d/a/.gitignore"), "*.json\n");
  CHECK(access("d/a/b.json", F_OK) == 0);
}

/* A new process (simulated by freeing the instances) reads the file back
 * in the same order. */
static void test_reload(void)
{
  RqRun run;
  RqStore *st;
  rqi_store_shutdown();
  run_init(&run, NULL);
  st = open_store(&run, 0);
  CHECK(st != NULL);
  if (st)
    CHECK_STRFREE(listing(st),
                  "[{\"id\":1,\"name\":\"Ada L.\",\"tier\":\"gold\","
                  "\"extra\":true},{\"id\":2,\"x\":1},"
                  "{\"id\":3,\"_partial\":false,\"n\":7},"
                  "{\"id\":5,\"a\":1,\"b\":2},{\"id\":6,\"b\":2},"
                  "{\"id\":7,\"k\":{\"z\":1},\"_partial\":true}]");
}

static void test_corrupt(void)
{
  RqRun run;
  FILE *f = fopen("d/broken.json", "w");
  fputs("[1, 2]", f);
  fclose(f);
  run_init(&run, NULL);
  CHECK(open_store(&run, 3) == NULL);
  CHECK_STREQ(run.err, "store broken: corrupt file d/broken.json");
  /* still broken on the next use, and the file is untouched */
  run_init(&run, NULL);
  CHECK(open_store(&run, 3) == NULL);
  CHECK_STREQ(run.err, "store broken: corrupt file d/broken.json");
  CHECK_STRFREE(slurp("d/broken.json"), "[1, 2]");
}

static void test_memory_and_output(void)
{
  RqRun run;
  RqRun child;
  RqStore *st;
  RqStore *dl;

  run_init(&run, NULL);
  run_init(&child, &run);
  st = open_store(&run, 1);
  CHECK(st != NULL);
  if (!st)
    return;
  CHECK(put(&run, st, "[{\"id\":\"m1\",\"v\":1}]", false, -1) == 0);
  /* the runs of a parallel stage's actions share the root's stores */
  CHECK(open_store(&child, 1) == st);
  rqi_store_run_end(&child);               /* not the root: no effect */
  CHECK(open_store(&run, 1) == st);
  CHECK(access("d/mem.json", F_OK) != 0);  /* memory is never written */

  dl = open_store(&run, RQ_STORE_DEAD_LETTER);
  CHECK(dl && put(&run, dl, "[{\"id\":\"q\",\"value\":3}]", false, -1)
        == 0);
  CHECK(access("d/M/_dead_letter.json", F_OK) == 0);

  rqi_opts.once = true;
  rqi_opts.output_dir = "out";
  rqi_store_run_end(&run);                 /* writes --output, frees mem */
  rqi_opts.output_dir = NULL;
  rqi_opts.once = false;
  CHECK_STRFREE(slurp("out/M/mem.json"),
                "[\n  {\n    \"id\": \"m1\",\n    \"v\": 1\n  }\n]\n");
  CHECK_STRFREE(slurp("out/M/nested.json"),
                "[\n  {\n    \"id\": \"x\"\n  }\n]\n");
  CHECK_STRFREE(slurp("out/M/_dead_letter.json"),
                "[\n  {\n    \"id\": \"q\",\n    \"value\": 3\n  }\n]\n");
  CHECK(access("out/M/customers.json", F_OK) == 0);
  CHECK(access("out/M/alias.json", F_OK) == 0);
  CHECK(access("out/M/broken.json", F_OK) != 0);   /* left out */
  CHECK(run.stores == NULL);

  /* the next run starts with an empty memory store */
  run_init(&run, NULL);
  st = open_store(&run, 1);
  CHECK(st != NULL);
  if (st) {
    json_t *a = rqi_store_list(st);
    CHECK(json_array_size(a) == 0);
    json_decref(a);
  }
  rqi_store_run_end(&run);
}

static void test_checkpoints(void)
{
  RqRun run;
  double ms = 0;
  json_t *doc;
  json_t *e;

  run_init(&run, NULL);
  run.action = "Sync";
  CHECK(!rqi_checkpoint_get(&run, "API:/c", &ms));
  rqi_checkpoint_candidate(&run, "API:/c", 1741064400000.0, 120);
  CHECK(!rqi_checkpoint_get(&run, "API:/c", &ms));   /* not committed */
  CHECK(rqi_checkpoint_commit(&run) == 0);
  CHECK(run.candidates == NULL);
  CHECK(rqi_checkpoint_get(&run, "API:/c", &ms));
  CHECK(ms == 1741064400000.0);

  doc = json_load_file("d/sync/M.json", 0, NULL);
  e = json_object_get(doc, "API:/c");
  CHECK_STREQ(json_string_value(json_object_get(e, "key")), "API:/c");
  CHECK_STREQ(json_string_value(json_object_get(e, "syncedAt")),
              "2025-03-04T05:00:00.000Z");
  CHECK(json_integer_value(json_object_get(e, "recordCount")) == 120);
  CHECK_STREQ(json_string_value(json_object_get(e, "mission")), "M");
  CHECK_STREQ(json_string_value(json_object_get(e, "executionId")),
              "exec_test_1");
  json_decref(doc);

  /* a failed action discards its candidates */
  rqi_checkpoint_candidate(&run, "API:/c", 1741064500000.0, 1);
  rqi_checkpoint_discard(&run);
  CHECK(rqi_checkpoint_commit(&run) == 0);
  CHECK(rqi_checkpoint_get(&run, "API:/c", &ms) && ms == 1741064400000.0);

  /* --dry-run never commits */
  rqi_opts.dry_run = true;
  rqi_checkpoint_candidate(&run, "API:/d", 1741064500000.0, 1);
  CHECK(rqi_checkpoint_commit(&run) == 0);
  rqi_opts.dry_run = false;
  CHECK(!rqi_checkpoint_get(&run, "API:/d", &ms));

  /* other keys are kept; the file is read back after a restart */
  rqi_checkpoint_candidate(&run, "API:/e", 1741064500000.0, 2);
  CHECK(rqi_checkpoint_commit(&run) == 0);
  rqi_state_shutdown();
  CHECK(rqi_checkpoint_get(&run, "API:/c", &ms) && ms == 1741064400000.0);
  CHECK(rqi_checkpoint_get(&run, "API:/e", &ms) && ms == 1741064500000.0);
}

static void test_lock(void)
{
  char want[32];
  CHECK(rqi_state_lock("d") == 0);
  snprintf(want, sizeof want, "%ld\n", (long)getpid());
  CHECK_STRFREE(slurp("d/.lock"), want);
  /* a second open file description conflicts, as another process would */
  fprintf(stderr, "(an \"in use\" error line is expected here)\n");
  CHECK(rqi_state_lock("d") == 4);
  rqi_state_unlock();
  CHECK(rqi_state_lock("d") == 0);
  rqi_state_unlock();
}

/* A unit of work staged over two "pages" and committed once (the
 * streaming store step of §6.5) must leave exactly what applying its
 * records one step at a time leaves: values, key positions, field
 * order and "_partial", in every write mode; and nothing is visible
 * before the commit. */
static void test_units(void)
{
  static const char *const recs[] = {
    "{\"id\":1,\"a\":1,\"b\":1}", "{\"id\":2,\"x\":1}", "{\"id\":3}",
    "{\"id\":1,\"b\":2,\"c\":2}", "{\"id\":2,\"y\":2,\"_partial\":7}",
  };
  static const struct { bool merge; int partial; } modes[] = {
    { false, -1 }, { true, -1 }, { true, 1 }, { false, 0 }, { true, 0 },
  };
  const char *seed = "[{\"id\":1,\"z\":0,\"a\":0},{\"id\":9}]";
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    RqRun ra, rb;
    RqEnv env;
    RqStoreUnit u;
    RqStore *a, *b;
    char *before;
    run_init(&ra, NULL);
    run_init(&rb, NULL);
    a = open_store(&ra, 1);         /* memory: one instance per run */
    b = open_store(&rb, 1);
    CHECK(a && b && a != b);
    if (!a || !b)
      return;
    CHECK(put(&ra, a, seed, false, -1) == 0);
    CHECK(put(&rb, b, seed, false, -1) == 0);
    before = listing(b);
    rqi_store_unit_init(&u, modes[m].merge, modes[m].partial);
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
      char *one = rq_asprintf("[%s]", recs[i]);
      json_t *rec = parse(recs[i]);
      char *key = rqi_text(json_object_get(rec, "id"));
      CHECK(put(&ra, a, one, modes[m].merge, modes[m].partial) == 0);
      rqi_store_unit_add(&u, rec, key);
      rq_free(key);
      json_decref(rec);
      rq_free(one);
    }
    CHECK(u.n == 5);
    CHECK_STRFREE(listing(b), before);        /* staged: not visible */
    rq_free(before);
    env = (RqEnv){ &rb, NULL, NULL };
    CHECK(rqi_store_unit_commit(&env, RQ_LOC(0, 9, 5), b, NULL, &u) == 0);
    rqi_store_unit_free(&u);
    before = listing(a);
    CHECK_STRFREE(listing(b), before);
    rq_free(before);
    rqi_store_run_end(&ra);
    rqi_store_run_end(&rb);
  }
}

int main(void)
{
  char dir[] = "/tmp/rq-test-store-XXXXXX";
  const char *tmp = getenv("TMPDIR");
  char *path;
  if (tmp && *tmp)
    path = rq_asprintf("%s/rq-test-store-XXXXXX", tmp);
  else
    path = rq_strdup(dir);
  rqi_util_init();
  rqi_log_configure(RQ_LOG_ERROR, 0, 1);
  if (!mkdtemp(path) || chdir(path) != 0) {
    perror("mkdtemp");
    return 1;
  }
  rqi_opts.data_dir = "d";

  test_file_store();
  test_reload();
  test_corrupt();
  test_memory_and_output();
  test_units();
  test_checkpoints();
  test_lock();

  rqi_store_shutdown();
  rqi_state_shutdown();
  rqi_log_shutdown();
  if (chdir("/") == 0) {
    char *cmd = rq_asprintf("rm -rf '%s'", path);
    if (system(cmd) != 0)
      fprintf(stderr, "cannot remove %s\n", path);
    rq_free(cmd);
  }
  rq_free(path);
  return check_report();
}
