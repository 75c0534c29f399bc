/* store_memory.c -- memory("name") stores (SPEC §7.3): an in-process map
 * that lives for one run.  The records live in RqStore.recs like every
 * other kind (store.c); a memory store just starts empty and is never
 * persisted. */
#include "rq_internal.h"

static int memory_load(RqStore *st, char *err, size_t n)
{
  st->recs = json_object();
  return 0;
}

/* Nothing to persist: the map dies with the run. */
static int memory_flush(RqStore *st)
{
  return 0;
}

const RqStoreOps rqi_store_memory_ops = {
  "memory", memory_load, memory_flush,
};
