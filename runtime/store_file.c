/* store_file.c -- file("target") and nosql("target") stores (SPEC §7.3).
 *
 * The store is the file <data>/<target>.json: one JSON object mapping
 * keys to records in insertion order, pretty-printed with 2-space
 * indentation (compatible with the reference).  A missing file is an
 * empty store; anything that is not a JSON object is "corrupt" and the
 * store is never written (store.c marks it broken).  Every flush rewrites
 * the whole file atomically (tmp + fsync + rename, rq_write_atomic), so a
 * crash leaves either the old or the new content.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "rq_internal.h"

static int file_load(RqStore *st, char *err, size_t n)
{
  json_error_t je;
  json_t *doc;
  int fd = open(st->id, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      st->recs = json_object();
      return 0;
    }
    snprintf(err, n, "cannot read %s: %s", st->id, strerror(errno));
    return -1;
  }
  /* JSON_ALLOW_NUL: strings may hold NUL bytes (written as \u0000). */
  doc = json_loadfd(fd, JSON_ALLOW_NUL, &je);
  close(fd);
  if (!doc || !json_is_object(doc)) {
    json_decref(doc);
    snprintf(err, n, "corrupt file %s", st->id);
    return -1;
  }
  st->recs = doc;
  return 0;
}

/* Creates the store's directory and, when it has none, a .gitignore
 * holding "*.json" there, as the reference does.  Once per store. */
static int prepare_dir(RqStore *st)
{
  const char *slash = strrchr(st->id, '/');
  char *dir;
  char *gi;
  int fd;
  int rc = 0;
  if (st->dir_ready)
    return 0;
  dir = slash ? rq_strndup(st->id, (size_t)(slash - st->id))
              : rq_strdup(".");
  if (rq_mkdirs(dir, 0755) != 0) {
    rq_free(dir);
    return -1;
  }
  gi = rq_asprintf("%s/.gitignore", dir);
  fd = open(gi, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    static const char text[] = "*.json\n";
    if (write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1))
      rc = -1;
    if (close(fd) != 0)
      rc = -1;
  } else if (errno != EEXIST) {
    rc = -1;
  }
  rq_free(gi);
  rq_free(dir);
  if (rc == 0)
    st->dir_ready = true;
  return rc;
}

int rqi_store_write_json(const char *path, const json_t *v)
{
  char *text = rqi_dumps(v, 2);
  size_t len = strlen(text);
  int rc;
  int saved;
  /* Text files end with a newline (rqi_dumps may leave none). */
  if (len == 0 || text[len - 1] != '\n') {
    text = rq_realloc(text, len + 2);
    text[len++] = '\n';
    text[len] = '\0';
  }
  rc = rq_write_atomic(path, text, len, 0644);
  saved = errno;
  rq_free(text);
  errno = saved;
  return rc;
}

static int file_flush(RqStore *st)
{
  if (prepare_dir(st) != 0)
    return -1;
  return rqi_store_write_json(st->id, st->recs);
}

const RqStoreOps rqi_store_file_ops = {
  "file", file_load, file_flush,
};
