/* rq_value.h -- value.c: JSON value semantics of SPEC §5 shared by the
 * runtime (equality, text conversion, serialisation, schema tests). */
#ifndef RQ_VALUE_H
#define RQ_VALUE_H

#include <jansson.h>
#include <stdbool.h>
#include "reqon.h"

/* Deep equality of §5.3: numbers numerically, key order ignored, null
 * equals missing (NULL). */
bool rqi_json_equal(const json_t *a, const json_t *b);
/* Text conversion of §5.3 (null/missing -> "", integers without .0,
 * arrays/objects as compact JSON).  Returns malloc'd text. */
char *rqi_text(const json_t *v);
/* Text conversion that keeps strings with NUL bytes whole: sets *n to the
 * length.  Returns malloc'd text. */
char *rqi_text_n(const json_t *v, size_t *n);
/* Serialises v: compact when indent is 0, else pretty with that indent;
 * numbers in shortest round-trip form, integral doubles below 2^53 as
 * integers (§5.1).  Returns malloc'd text. */
char *rqi_dumps(const json_t *v, int indent);
/* Compact JSON cut to at most max bytes (for messages).  malloc'd. */
char *rqi_compact(const json_t *v, size_t max);
/* "null", "boolean", "number", "string", "array", "object", "missing". */
const char *rqi_type_name(const json_t *v);
bool rqi_type_test(RqType t, const json_t *v);
bool rqi_conforms(const RqSchemaDef *s, const json_t *v);
/* First 32 hex digits of SHA-256 of the canonical JSON (sorted keys, no
 * whitespace) of rec (SPEC §7.1). out must hold 33 bytes. */
void rqi_content_hash(const json_t *rec, char *out);
/* Canonical JSON of §7.1: keys sorted bytewise, no whitespace, numbers
 * as rqi_dumps.  malloc'd. */
char *rqi_canonical(const json_t *v);
/* Lowercase hex SHA-256 of n bytes; out holds 65 bytes. */
void rqi_sha256_hex(const void *data, size_t n, char out[65]);
/* Shallow copy of a value; for objects, keys holding NUL bytes are kept
 * (jansson's json_copy cuts them at the NUL).  Returns a new reference. */
json_t *rqi_copy(const json_t *v);
json_t *rqi_deep_copy(const json_t *v);     /* the same, all the way down */
/* Reads a dotted path ("meta.next") in v; a segment of digits indexes
 * an array ("items.0").  Borrowed or NULL. */
json_t *rqi_path_get(const json_t *v, const char *dotted);
/* Number conversion of §5.3; returns false for non-numeric values. */
bool rqi_to_number(const json_t *v, double *out);

#endif
