/* test_value.c -- unit tests of runtime/value.c: operators, equality and
 * ordering, truthiness, `is`, every builtin of value.c, serialisation,
 * text conversion, access helpers, schema conformance, content hash.
 * Values are written as JSON text; NULL stands for "missing". */
#include "reqon.h"
#include "rq_exec.h"
#include "rq_util.h"
#include "rq_value.h"
#include "check.h"

#include <math.h>

static RqRun run;
static RqEnv env = { &run, NULL, NULL };
static const RqAt at = { 0, 1, 1 };

typedef int (*BiFn)(const RqEnv *, RqAt, int, json_t *const *, json_t **);

/* JSON text -> new value; NULL -> missing. */
static json_t *J(const char *text)
{
  if (!text)
    return NULL;
  json_error_t err;
  json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!v)
    fprintf(stderr, "bad test JSON %s: %s\n", text, err.text);
  return v;
}

/* The outcome of an evaluation as text: compact JSON of the result,
 * "missing", or "ERR <message>".  Consumes out; resets the error. */
static char *show(int rc, json_t *out)
{
  char *s;
  if (rc) {
    s = out ? rq_strdup("ERR with a result")
        : rq_asprintf("ERR %s", run.failed ? run.err : "(no message)");
  } else if (!out) {
    s = rq_strdup("missing");
  } else {
    s = rqi_dumps(out, 0);
  }
  json_decref(out);
  run.failed = false;
  run.err[0] = '\0';
  return s;
}

static char *op2(RqOp op, const char *a, const char *b)
{
  json_t *va = J(a);
  json_t *vb = J(b);
  json_t *out = NULL;
  int rc = rq_binop(&env, at, op, va, vb, &out);
  json_decref(va);
  json_decref(vb);
  return show(rc, out);
}

static char *op1(RqOp op, const char *a)
{
  json_t *va = J(a);
  json_t *out = NULL;
  int rc = rq_unop(&env, at, op, va, &out);
  json_decref(va);
  return show(rc, out);
}

/* Calls a builtin with up to 3 arguments given as JSON text. */
static char *bi(BiFn fn, int argc, const char *a0, const char *a1,
                const char *a2)
{
  json_t *argv[3] = { J(a0), J(a1), J(a2) };
  json_t *out = NULL;
  int rc = fn(&env, at, argc, argv, &out);
  rq_release(argv, 3);
  return show(rc, out);
}

static char *dumps_text(const char *text, int indent)
{
  json_t *v = J(text);
  char *s = rqi_dumps(v, indent);
  json_decref(v);
  return s;
}

static char *dumps_real(double d)
{
  json_t *v = json_real(d);
  char *s = rqi_dumps(v, 0);
  json_decref(v);
  return s;
}

static bool truthy(const char *text)
{
  json_t *v = J(text);
  bool r = rq_truthy(v);
  json_decref(v);
  return r;
}

static bool is(const char *text, RqType t)
{
  json_t *v = J(text);
  json_t *r = rq_is(v, t);
  bool b = json_is_true(r);
  json_decref(r);
  json_decref(v);
  return b;
}

static void test_arithmetic(void)
{
  CHECK_STRFREE(op2(RQ_OP_ADD, "1", "2"), "3");
  CHECK_STRFREE(op2(RQ_OP_ADD, "0.1", "0.2"), "0.30000000000000004");
  CHECK_STRFREE(op2(RQ_OP_ADD, "\"a\"", "1"), "\"a1\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "1", "\"a\""), "\"1a\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "\"x\"", "null"), "\"x\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "\"x\"", NULL), "\"x\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "\"x\"", "1.5"), "\"x1.5\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "\"x\"", "10.0"), "\"x10\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "\"x\"", "[1,\"a\"]"), "\"x[1,\\\"a\\\"]\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "{\"a\":1}", "\"\""), "\"{\\\"a\\\":1}\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "\"x\"", "true"), "\"xtrue\"");
  CHECK_STRFREE(op2(RQ_OP_ADD, "1", "null"), "ERR cannot apply '+' to null");
  CHECK_STRFREE(op2(RQ_OP_ADD, NULL, "1"), "ERR cannot apply '+' to null");
  CHECK_STRFREE(op2(RQ_OP_ADD, "[1]", "1"),
                "ERR cannot apply '+' to array");
  CHECK_STRFREE(op2(RQ_OP_MUL, "{}", "2"), "ERR cannot apply '*' to object");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"abc\"", "2"),
                "ERR cannot apply '*' to string");
  CHECK_STRFREE(op2(RQ_OP_ADD, "true", "1"), "2");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"3\"", "\"4\""), "12");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\" 3 \"", "2"), "6");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"\"", "5"), "0");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\" \\t\"", "5"), "0");
  CHECK_STRFREE(op2(RQ_OP_SUB, "\"1e3\"", "1"), "999");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\".5\"", "2"), "1");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"5.\"", "2"), "10");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"+3\"", "1"), "3");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"-2E2\"", "1"), "-200");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"1e\"", "1"),
                "ERR cannot apply '*' to string");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"0x10\"", "1"),
                "ERR cannot apply '*' to string");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\"inf\"", "1"),
                "ERR cannot apply '*' to string");
  CHECK_STRFREE(op2(RQ_OP_MUL, "\".\"", "1"),
                "ERR cannot apply '*' to string");
  CHECK_STRFREE(op2(RQ_OP_DIV, "10", "4"), "2.5");
  CHECK_STRFREE(op2(RQ_OP_DIV, "1", "0"), "ERR division by zero");
  CHECK_STRFREE(op2(RQ_OP_MOD, "5", "0"), "ERR division by zero");
  CHECK_STRFREE(op2(RQ_OP_MOD, "-7", "3"), "-1");
  CHECK_STRFREE(op2(RQ_OP_MOD, "7.5", "2"), "1.5");
  CHECK_STRFREE(op2(RQ_OP_MUL, "1e308", "10"), "ERR arithmetic overflow");
  CHECK_STRFREE(op2(RQ_OP_SUB, "\"1e999\"", "1"), "ERR arithmetic overflow");
  CHECK_STRFREE(op2(RQ_OP_SUB, "null", "1"), "ERR cannot apply '-' to null");

  /* Integral results are JSON integers, others reals. */
  json_t *a = json_integer(10), *b = json_integer(2), *out = NULL;
  CHECK(rq_binop(&env, at, RQ_OP_DIV, a, b, &out) == 0);
  CHECK(json_is_integer(out) && json_integer_value(out) == 5);
  json_decref(out);
  CHECK(rq_binop(&env, at, RQ_OP_DIV, b, a, &out) == 0);
  CHECK(json_is_real(out));
  json_decref(out);
  json_decref(a);
  json_decref(b);
  CHECK(rq_binop(&env, at, RQ_OP_DIV, NULL, NULL, &out) == -RQ_E_FAIL);
  CHECK(out == NULL);
  run.failed = false;

  CHECK_STRFREE(op1(RQ_OP_NEG, "3"), "-3");
  CHECK_STRFREE(op1(RQ_OP_NEG, "null"), "ERR cannot apply '-' to null");
  CHECK_STRFREE(op1(RQ_OP_NEG, NULL), "ERR cannot apply '-' to null");
  CHECK_STRFREE(op1(RQ_OP_NEG, "[]"), "ERR cannot apply '-' to array");
  CHECK_STRFREE(op1(RQ_OP_PLUS, "\"4\""), "4");
  CHECK_STRFREE(op1(RQ_OP_PLUS, "true"), "1");
  CHECK_STRFREE(op1(RQ_OP_NOT, "0"), "true");
  CHECK_STRFREE(op1(RQ_OP_NOT, "\"\""), "true");
  CHECK_STRFREE(op1(RQ_OP_NOT, "[]"), "false");
  CHECK_STRFREE(op1(RQ_OP_NOT, NULL), "true");
}

static void test_equality_ordering(void)
{
  CHECK_STRFREE(op2(RQ_OP_EQ, "1", "\"1\""), "false");
  CHECK_STRFREE(op2(RQ_OP_EQ, "1", "1.0"), "true");
  CHECK_STRFREE(op2(RQ_OP_EQ, "null", NULL), "true");
  CHECK_STRFREE(op2(RQ_OP_EQ, NULL, NULL), "true");
  CHECK_STRFREE(op2(RQ_OP_EQ, "null", "0"), "false");
  CHECK_STRFREE(op2(RQ_OP_EQ, "\"\"", NULL), "false");
  CHECK_STRFREE(op2(RQ_OP_EQ, "true", "1"), "false");
  CHECK_STRFREE(op2(RQ_OP_EQ, "{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"),
                "true");
  CHECK_STRFREE(op2(RQ_OP_EQ, "{\"a\":null}", "{\"b\":null}"), "false");
  CHECK_STRFREE(op2(RQ_OP_EQ, "{\"a\":1}", "{\"a\":1,\"b\":1}"), "false");
  CHECK_STRFREE(op2(RQ_OP_EQ, "[1,2]", "[2,1]"), "false");
  CHECK_STRFREE(op2(RQ_OP_EQ, "[1,[2]]", "[1,[2.0]]"), "true");
  CHECK_STRFREE(op2(RQ_OP_EQ, "9007199254740993", "9007199254740992"),
                "false");
  CHECK_STRFREE(op2(RQ_OP_NE, "\"a\"", "\"b\""), "true");
  CHECK_STRFREE(op2(RQ_OP_NE, "null", NULL), "false");

  CHECK_STRFREE(op2(RQ_OP_LT, "2", "10"), "true");
  CHECK_STRFREE(op2(RQ_OP_LT, "\"2\"", "\"10\""), "true");
  CHECK_STRFREE(op2(RQ_OP_LT, "\"abc\"", "\"abd\""), "true");
  CHECK_STRFREE(op2(RQ_OP_LT, "\"ab\"", "\"abc\""), "true");
  CHECK_STRFREE(op2(RQ_OP_LT, "\"b\"", "\"a\""), "false");
  CHECK_STRFREE(op2(RQ_OP_LT, "\"\"", "\"a\""), "true");
  CHECK_STRFREE(op2(RQ_OP_GT, "\"2025-01-02T00:00:00Z\"",
                    "\"2025-01-01T23:59:59Z\""), "true");
  CHECK_STRFREE(op2(RQ_OP_LT, "5", "\"10\""), "true");
  CHECK_STRFREE(op2(RQ_OP_LT, "5", "\"x\""), "ERR cannot compare string");
  CHECK_STRFREE(op2(RQ_OP_LT, "\"x\"", "true"), "ERR cannot compare string");
  CHECK_STRFREE(op2(RQ_OP_LT, "null", "1"), "ERR cannot compare null");
  CHECK_STRFREE(op2(RQ_OP_LT, NULL, "1"), "ERR cannot compare null");
  CHECK_STRFREE(op2(RQ_OP_LT, "1", "[1]"), "ERR cannot compare array");
  CHECK_STRFREE(op2(RQ_OP_GE, "{}", "1"), "ERR cannot compare object");
  CHECK_STRFREE(op2(RQ_OP_GT, "true", "false"), "true");
  CHECK_STRFREE(op2(RQ_OP_LT, "true", "2"), "true");
  CHECK_STRFREE(op2(RQ_OP_LE, "1", "1"), "true");
  CHECK_STRFREE(op2(RQ_OP_GE, "\"a\"", "\"a\""), "true");
  CHECK_STRFREE(op2(RQ_OP_GT, "1.5", "1"), "true");
  CHECK_STRFREE(op2(RQ_OP_LE, "2", "1"), "false");
}

static void test_truthy_is(void)
{
  CHECK(!truthy("false"));
  CHECK(!truthy("null"));
  CHECK(!truthy(NULL));
  CHECK(!truthy("0"));
  CHECK(!truthy("0.0"));
  CHECK(!truthy("\"\""));
  CHECK(truthy("[]"));
  CHECK(truthy("{}"));
  CHECK(truthy("\"0\""));
  CHECK(truthy("\"false\""));
  CHECK(truthy("-1"));
  CHECK(truthy("0.5"));
  CHECK(truthy("true"));

  CHECK(is("1", RQ_TY_INT));
  CHECK(is("2.0", RQ_TY_INT));
  CHECK(!is("1.5", RQ_TY_INT));
  CHECK(!is("\"1\"", RQ_TY_INT));
  CHECK(is("1.5", RQ_TY_NUMBER));
  CHECK(!is("\"1\"", RQ_TY_NUMBER));
  CHECK(is("\"x\"", RQ_TY_STRING));
  CHECK(is("false", RQ_TY_BOOLEAN));
  CHECK(is("[]", RQ_TY_ARRAY));
  CHECK(!is("{}", RQ_TY_ARRAY));
  CHECK(is("{}", RQ_TY_OBJECT));
  CHECK(is("null", RQ_TY_NULL));
  CHECK(is(NULL, RQ_TY_NULL));
  CHECK(!is("0", RQ_TY_NULL));
  CHECK(is(NULL, RQ_TY_UNDEFINED));
  CHECK(!is("null", RQ_TY_UNDEFINED));
  CHECK(is(NULL, RQ_TY_ANY));
  CHECK(is("3", RQ_TY_ANY));
  CHECK(is("\"2025-03-04\"", RQ_TY_DATE));
  CHECK(is("\"2025-03-04T05:06:07Z\"", RQ_TY_DATE));
  CHECK(is("\"2025-03-04T05:06:07.089+01:00\"", RQ_TY_DATE));
  CHECK(is("\"2024-02-29\"", RQ_TY_DATE));
  CHECK(!is("\"2025-02-29\"", RQ_TY_DATE));
  CHECK(!is("\"2025-13-01\"", RQ_TY_DATE));
  CHECK(!is("\"2025-03-04T05:06Z\"", RQ_TY_DATE));
  CHECK(!is("\"2025-03-04T05:06:07\"", RQ_TY_DATE));
  CHECK(!is("\"yesterday\"", RQ_TY_DATE));
  CHECK(!is("5", RQ_TY_DATE));
}

static void test_serialise(void)
{
  CHECK_STRFREE(dumps_real(10.0), "10");
  CHECK_STRFREE(dumps_real(0.1), "0.1");
  CHECK_STRFREE(dumps_real(-2.5), "-2.5");
  CHECK_STRFREE(dumps_real(123.456), "123.456");
  CHECK_STRFREE(dumps_real(1.0 / 3), "0.3333333333333333");
  CHECK_STRFREE(dumps_real(-0.0), "0");
  CHECK_STRFREE(dumps_real(1e21), "1e+21");
  CHECK_STRFREE(dumps_real(1e20), "100000000000000000000");
  CHECK_STRFREE(dumps_real(9007199254740992.0), "9007199254740992");
  CHECK_STRFREE(dumps_real(1e-7), "1e-7");
  CHECK_STRFREE(dumps_real(1.5e-6), "0.0000015");
  CHECK_STRFREE(dumps_real(1e300), "1e+300");
  CHECK_STRFREE(dumps_real(-1.25e-300), "-1.25e-300");
  CHECK_STRFREE(dumps_real(5e-324), "5e-324");
  CHECK_STRFREE(dumps_real(1.7976931348623157e308),
                "1.7976931348623157e+308");
  CHECK_STRFREE(dumps_text("9007199254740993", 0), "9007199254740993");
  CHECK_STRFREE(dumps_text("-5", 0), "-5");
  CHECK_STRFREE(dumps_text("100", 0), "100");

  json_t *n = rq_num(10.0);
  CHECK(json_is_integer(n) && json_integer_value(n) == 10);
  json_decref(n);
  n = rq_num(2.5);
  CHECK(json_is_real(n));
  json_decref(n);
  n = rq_num(9007199254740992.0);
  CHECK(json_is_real(n));
  json_decref(n);
  n = rq_num(-0.0);
  CHECK(json_is_integer(n) && json_integer_value(n) == 0);
  json_decref(n);
  n = rq_num(NAN);
  CHECK(json_is_null(n));
  json_decref(n);

  /* Strings: escapes, UTF-8 kept, bad bytes -> \ufffd, NUL inside. */
  json_t *s = rq_str("a\"b\\c\n\t\x01\x7f \xc3\xa9/", 13);
  CHECK_STRFREE(rqi_dumps(s, 0),
                "\"a\\\"b\\\\c\\n\\t\\u0001\x7f \xc3\xa9/\"");
  json_decref(s);
  s = rq_str("\b\f\r\x1f", 4);
  CHECK_STRFREE(rqi_dumps(s, 0), "\"\\b\\f\\r\\u001f\"");
  json_decref(s);
  s = rq_str("a\0b", 3);
  CHECK_STRFREE(rqi_dumps(s, 0), "\"a\\u0000b\"");
  json_decref(s);
  s = rq_str("x\xffy\xed\xa0\x80z\xc3", 8);
  CHECK_STRFREE(rqi_dumps(s, 0),
                "\"x\\ufffdy\\ufffd\\ufffd\\ufffdz\\ufffd\"");
  json_decref(s);
  s = rq_str("\xf0\x9f\x98\x80", 4);
  CHECK_STRFREE(rqi_dumps(s, 0), "\"\xf0\x9f\x98\x80\"");
  json_decref(s);

  CHECK_STRFREE(dumps_text("{\"b\":1,\"a\":[true,false,null]}", 0),
                "{\"b\":1,\"a\":[true,false,null]}");
  CHECK_STRFREE(dumps_text("{\"a\":1,\"b\":[1,2.5],\"c\":{},\"d\":[],"
                           "\"e\":{\"f\":null}}", 2),
                "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2.5\n  ],\n"
                "  \"c\": {},\n  \"d\": [],\n  \"e\": {\n"
                "    \"f\": null\n  }\n}");
  CHECK_STRFREE(dumps_text("[]", 2), "[]");
  CHECK_STRFREE(dumps_text("[{}]", 2), "[\n  {}\n]");
  CHECK_STRFREE(dumps_text("\"x\"", 2), "\"x\"");
  CHECK_STRFREE(rqi_dumps(NULL, 0), "null");

  json_t *o = J("{\"a\":\"xxxxxxxxxx\"}");
  CHECK_STRFREE(rqi_compact(o, 10), "{\"a\":\"x...");
  CHECK_STRFREE(rqi_compact(o, 100), "{\"a\":\"xxxxxxxxxx\"}");
  json_decref(o);
  o = rq_str("\xc3\xa9\xc3\xa9\xc3\xa9", 6);
  CHECK_STRFREE(rqi_compact(o, 5), "\"...");   /* never splits a char */
  CHECK_STRFREE(rqi_compact(o, 6), "\"\xc3\xa9...");
  CHECK_STRFREE(rqi_compact(o, 7), "\"\xc3\xa9...");
  json_decref(o);

  CHECK_STRFREE(rqi_text(NULL), "");
  o = J("null");
  CHECK_STRFREE(rqi_text(o), "");
  json_decref(o);
  o = json_real(1.0);
  CHECK_STRFREE(rqi_text(o), "1");
  json_decref(o);
  o = J("[1,\"a\",{\"k\":0.5}]");
  CHECK_STRFREE(rqi_text(o), "[1,\"a\",{\"k\":0.5}]");
  json_decref(o);
  o = J("\"plain \\\"q\\\"\"");
  CHECK_STRFREE(rqi_text(o), "plain \"q\"");
  json_decref(o);
  o = rq_str("a\0b", 3);
  size_t len = 0;
  char *t = rqi_text_n(o, &len);
  CHECK(len == 3 && memcmp(t, "a\0b", 3) == 0);
  free(t);
  json_decref(o);

  CHECK_STREQ(rqi_type_name(NULL), "missing");
  o = J("1.5");
  CHECK_STREQ(rqi_type_name(o), "number");
  json_decref(o);
  o = J("{}");
  CHECK_STREQ(rqi_type_name(o), "object");
  json_decref(o);
}

static void test_access_build(void)
{
  json_t *o = J("{\"a\":1,\"1\":\"x\",\"items\":[10,20,30],"
                "\"meta\":{\"next\":\"c\"}}");
  json_t *arr = json_object_get(o, "items");
  json_t *v, *i;

  CHECK_STRFREE(show(0, rq_field(o, "a")), "1");
  CHECK_STRFREE(show(0, rq_field(o, "zz")), "missing");
  CHECK_STRFREE(show(0, rq_field(arr, "a")), "missing");
  CHECK_STRFREE(show(0, rq_field(NULL, "a")), "missing");
  env.subject = o;
  CHECK_STRFREE(show(0, rq_subject_field(&env, "a")), "1");
  env.subject = NULL;
  CHECK_STRFREE(show(0, rq_subject_field(&env, "a")), "missing");

  const char *idx[][2] = {
    { "1", "20" }, { "-1", "30" }, { "-3", "10" }, { "3", "missing" },
    { "-4", "missing" }, { "1.5", "missing" }, { "\"1\"", "missing" },
    { "1.0", "20" }, { "null", "missing" },
  };
  for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
    i = J(idx[k][0]);
    CHECK_STRFREE(show(0, rq_index(arr, i)), idx[k][1]);
    json_decref(i);
  }
  i = J("1");
  CHECK_STRFREE(show(0, rq_index(o, i)), "\"x\"");
  CHECK_STRFREE(show(0, rq_index(NULL, i)), "missing");
  json_decref(i);
  i = J("\"a\"");
  CHECK_STRFREE(show(0, rq_index(o, i)), "1");
  CHECK_STRFREE(show(0, rq_index(arr, i)), "missing");
  json_decref(i);
  CHECK_STRFREE(show(0, rq_index(o, NULL)), "missing");

  CHECK(json_is_string(rqi_path_get(o, "meta.next")));
  CHECK(rqi_path_get(o, "meta.x") == NULL);
  CHECK(rqi_path_get(o, "a.b") == NULL);
  CHECK(json_integer_value(rqi_path_get(o, "items.1")) == 20);
  CHECK(rqi_path_get(o, "items.9") == NULL);
  CHECK(rqi_path_get(NULL, "a") == NULL);

  /* Objects omit missing values; arrays turn them into null. */
  v = rq_object();
  rq_object_add(v, "a", 1, rq_num(1));
  rq_object_add(v, "b", 1, NULL);
  rq_object_add(v, "k\0x", 3, rq_null());
  CHECK_STRFREE(rqi_dumps(v, 0), "{\"a\":1,\"k\\u0000x\":null}");
  json_t *sp = J("{\"c\":2,\"a\":3}");
  CHECK(rq_object_spread(&env, at, v, sp) == 0);
  json_decref(sp);
  CHECK(rq_object_spread(&env, at, v, NULL) == 0);
  sp = J("null");
  CHECK(rq_object_spread(&env, at, v, sp) == 0);
  json_decref(sp);
  CHECK_STRFREE(rqi_dumps(v, 0), "{\"a\":3,\"k\\u0000x\":null,\"c\":2}");
  sp = J("5");
  CHECK_STRFREE(show(rq_object_spread(&env, at, v, sp), NULL),
                "ERR cannot spread number");
  json_decref(sp);
  sp = J("[1]");
  CHECK_STRFREE(show(rq_object_spread(&env, at, v, sp), NULL),
                "ERR cannot spread array");
  json_decref(sp);
  json_decref(v);

  v = rq_array();
  rq_array_add(v, NULL);
  rq_array_add(v, rq_bool(1));
  rq_array_add(v, rq_str("s", 1));
  CHECK_STRFREE(rqi_dumps(v, 0), "[null,true,\"s\"]");
  json_decref(v);

  json_t *t[2] = { rq_num(1), rq_ref(o) };
  rq_release(t, 2);
  CHECK(t[0] == NULL && t[1] == NULL);
  CHECK(rq_ref(NULL) == NULL);

  /* Path templates. */
  v = rq_str("/users/", 7);
  rq_str_append_enc(v, rq_str("a b/\xc3\xa9?&=", 9));
  rq_str_append(v, "/x", 2);
  rq_str_append_enc(v, NULL);
  rq_str_append_enc(v, rq_null());
  rq_str_append(v, "/", 1);
  rq_str_append_enc(v, rq_num(42));
  rq_str_append_enc(v, rq_str("-._~Az9", 7));
  rq_str_append_enc(v, rq_num(1.5));
  CHECK_STREQ(json_string_value(v), "/users/a%20b%2F%C3%A9%3F%26%3D/x/"
              "42-._~Az91.5");
  json_decref(v);
  json_decref(o);
}

static void test_builtins_1(void)
{
  CHECK_STRFREE(bi(rq_bi_length, 1, "\"h\xc3\xa9llo\"", 0, 0), "5");
  CHECK_STRFREE(bi(rq_bi_length, 1, "[1,2,3]", 0, 0), "3");
  CHECK_STRFREE(bi(rq_bi_length, 1, "{\"a\":1}", 0, 0), "0");
  CHECK_STRFREE(bi(rq_bi_length, 1, "null", 0, 0), "0");
  CHECK_STRFREE(bi(rq_bi_length, 1, NULL, 0, 0), "0");
  CHECK_STRFREE(bi(rq_bi_length, 1, "5", 0, 0), "0");
  CHECK_STRFREE(bi(rq_bi_count, 1, "[1,2]", 0, 0), "2");
  CHECK_STRFREE(bi(rq_bi_count, 1, "\"abc\"", 0, 0), "0");
  CHECK_STRFREE(bi(rq_bi_count, 1, NULL, 0, 0), "0");

  CHECK_STRFREE(bi(rq_bi_sum, 1, "[1,2,3.5]", 0, 0), "6.5");
  CHECK_STRFREE(bi(rq_bi_sum, 1, "[]", 0, 0), "0");
  CHECK_STRFREE(bi(rq_bi_sum, 1, "[\"2\",3,true]", 0, 0), "6");
  CHECK_STRFREE(bi(rq_bi_sum, 1, "null", 0, 0),
                "ERR builtin sum: expected an array, got null");
  CHECK_STRFREE(bi(rq_bi_sum, 1, NULL, 0, 0),
                "ERR builtin sum: expected an array, got null");
  CHECK_STRFREE(bi(rq_bi_sum, 1, "[1,null]", 0, 0),
                "ERR builtin sum: element 1 is null, expected a number");
  CHECK_STRFREE(bi(rq_bi_sum, 1, "[1e308,1e308]", 0, 0),
                "ERR arithmetic overflow");

  CHECK_STRFREE(bi(rq_bi_min, 1, "[3,1,2]", 0, 0), "1");
  CHECK_STRFREE(bi(rq_bi_max, 1, "[3,1,2]", 0, 0), "3");
  CHECK_STRFREE(bi(rq_bi_min, 3, "4", "2", "8"), "2");
  CHECK_STRFREE(bi(rq_bi_max, 2, "4", "9.5", 0), "9.5");
  CHECK_STRFREE(bi(rq_bi_max, 2, "\"12\"", "9", 0), "12");
  CHECK_STRFREE(bi(rq_bi_min, 1, "[]", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_min, 1, "null", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_max, 1, NULL, 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_max, 1, "[9007199254740993,1]", 0, 0),
                "9007199254740993");
  CHECK_STRFREE(bi(rq_bi_min, 1, "5", 0, 0),
                "ERR builtin min: expected an array or at least 2 numbers, "
                "got number");
  CHECK_STRFREE(bi(rq_bi_min, 1, "[\"a\"]", 0, 0),
                "ERR builtin min: element 0 is string, expected a number");
  CHECK_STRFREE(bi(rq_bi_max, 2, "1", "null", 0),
                "ERR builtin max: element 1 is null, expected a number");

  CHECK_STRFREE(bi(rq_bi_avg, 1, "[1,2,3,4]", 0, 0), "2.5");
  CHECK_STRFREE(bi(rq_bi_avg, 1, "[]", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_avg, 1, "null", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_avg, 1, "\"x\"", 0, 0),
                "ERR builtin avg: expected an array, got string");
  CHECK_STRFREE(bi(rq_bi_avg, 1, "[1,null]", 0, 0),
                "ERR builtin avg: element 1 is null, expected a number");

  CHECK_STRFREE(bi(rq_bi_first, 1, "[1,2]", 0, 0), "1");
  CHECK_STRFREE(bi(rq_bi_first, 1, "[]", 0, 0), "missing");
  CHECK_STRFREE(bi(rq_bi_first, 1, "\"x\"", 0, 0), "missing");
  CHECK_STRFREE(bi(rq_bi_first, 1, NULL, 0, 0), "missing");
  CHECK_STRFREE(bi(rq_bi_last, 1, "[1,{\"a\":2}]", 0, 0), "{\"a\":2}");
  CHECK_STRFREE(bi(rq_bi_last, 1, "null", 0, 0), "missing");
  CHECK_STRFREE(bi(rq_bi_last, 1, "{\"a\":1}", 0, 0), "missing");

  CHECK_STRFREE(bi(rq_bi_round, 1, "2.5", 0, 0), "3");
  CHECK_STRFREE(bi(rq_bi_round, 1, "-2.5", 0, 0), "-2");
  CHECK_STRFREE(bi(rq_bi_round, 1, "2.4", 0, 0), "2");
  CHECK_STRFREE(bi(rq_bi_round, 2, "1.2345", "2", 0), "1.23");
  CHECK_STRFREE(bi(rq_bi_round, 2, "1234.5678", "-2", 0), "1200");
  CHECK_STRFREE(bi(rq_bi_round, 1, "null", 0, 0),
                "ERR builtin round: expected a number, got null");
  CHECK_STRFREE(bi(rq_bi_round, 1, NULL, 0, 0),
                "ERR builtin round: expected a number, got null");
  CHECK_STRFREE(bi(rq_bi_round, 2, "1", "\"x\"", 0),
                "ERR builtin round: expected a number, got string");
  CHECK_STRFREE(bi(rq_bi_floor, 1, "1.7", 0, 0), "1");
  CHECK_STRFREE(bi(rq_bi_floor, 1, "-1.2", 0, 0), "-2");
  CHECK_STRFREE(bi(rq_bi_floor, 1, "\"2.5\"", 0, 0), "2");
  CHECK_STRFREE(bi(rq_bi_ceil, 1, "1.2", 0, 0), "2");
  CHECK_STRFREE(bi(rq_bi_ceil, 1, "[]", 0, 0),
                "ERR builtin ceil: expected a number, got array");
  CHECK_STRFREE(bi(rq_bi_abs, 1, "-3", 0, 0), "3");
  CHECK_STRFREE(bi(rq_bi_abs, 1, "null", 0, 0),
                "ERR builtin abs: expected a number, got null");
}

static bool is_iso(const char *s)
{
  const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (strlen(s) != strlen(pat))
    return false;
  for (size_t i = 0; pat[i]; i++)
    if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pat[i])
      return false;
  return true;
}

static void test_builtins_2(void)
{
  json_t *out = NULL;
  CHECK(rq_bi_now(&env, at, 0, NULL, &out) == 0);
  CHECK(json_is_string(out) && is_iso(json_string_value(out)));
  double ms;
  CHECK(rq_parse_time(json_string_value(out), &ms) &&
        fabs(ms - rq_now_ms()) < 5000);
  json_decref(out);

  setenv("RQ_UNIT_TEST_VAR", "hello", 1);
  unsetenv("RQ_UNIT_TEST_NOPE");
  CHECK_STRFREE(bi(rq_bi_env, 1, "\"RQ_UNIT_TEST_VAR\"", 0, 0),
                "\"hello\"");
  CHECK_STRFREE(bi(rq_bi_env, 1, "\"RQ_UNIT_TEST_NOPE\"", 0, 0), "\"\"");
  CHECK_STRFREE(bi(rq_bi_env, 1, "null", 0, 0), "\"\"");
  CHECK_STRFREE(bi(rq_bi_env, 1, NULL, 0, 0), "\"\"");

  CHECK_STRFREE(bi(rq_bi_concat, 3, "\"a\"", "1", "null"), "\"a1\"");
  CHECK_STRFREE(bi(rq_bi_concat, 3, "\"a\"", NULL, "true"), "\"atrue\"");
  CHECK_STRFREE(bi(rq_bi_concat, 2, "[1]", "[2,[3]]", 0), "[1,2,[3]]");
  CHECK_STRFREE(bi(rq_bi_concat, 1, "[1]", 0, 0), "[1]");
  CHECK_STRFREE(bi(rq_bi_concat, 2, "[1]", "\"x\"", 0), "\"[1]x\"");
  CHECK_STRFREE(bi(rq_bi_concat, 1, NULL, 0, 0), "\"\"");

  CHECK_STRFREE(bi(rq_bi_lower, 1, "\"AbC \xc3\x89\"", 0, 0),
                "\"abc \xc3\x89\"");
  CHECK_STRFREE(bi(rq_bi_upper, 1, "\"abc-1\"", 0, 0), "\"ABC-1\"");
  CHECK_STRFREE(bi(rq_bi_trim, 1, "\" \\t a b \\n\"", 0, 0), "\"a b\"");
  CHECK_STRFREE(bi(rq_bi_trim, 1, "\"   \"", 0, 0), "\"\"");
  CHECK_STRFREE(bi(rq_bi_lower, 1, "null", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_upper, 1, NULL, 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_trim, 1, NULL, 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_lower, 1, "5", 0, 0),
                "ERR builtin lower: expected a string, got number");

  CHECK_STRFREE(bi(rq_bi_contains, 2, "\"hello\"", "\"ell\"", 0), "true");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "\"hello\"", "\"x\"", 0), "false");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "\"hello\"", "\"\"", 0), "true");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "\"a1b\"", "1", 0), "true");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "[1,{\"a\":2}]", "{\"a\":2.0}", 0),
                "true");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "[1,2]", "\"1\"", 0), "false");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "{\"a\":1}", "\"a\"", 0), "true");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "{\"a\":1}", "\"b\"", 0), "false");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "null", "\"a\"", 0), "false");
  CHECK_STRFREE(bi(rq_bi_contains, 2, NULL, "\"a\"", 0), "false");
  CHECK_STRFREE(bi(rq_bi_contains, 2, "\"abc\"", NULL, 0), "false");

  CHECK_STRFREE(bi(rq_bi_startsWith, 2, "\"hello\"", "\"he\"", 0), "true");
  CHECK_STRFREE(bi(rq_bi_startsWith, 2, "\"hello\"", "\"lo\"", 0),
                "false");
  CHECK_STRFREE(bi(rq_bi_startsWith, 2, "\"abc\"", "\"\"", 0), "true");
  CHECK_STRFREE(bi(rq_bi_startsWith, 2, "null", "\"a\"", 0), "false");
  CHECK_STRFREE(bi(rq_bi_startsWith, 2, "\"abc\"", NULL, 0), "false");
  CHECK_STRFREE(bi(rq_bi_endsWith, 2, "\"hello\"", "\"lo\"", 0), "true");
  CHECK_STRFREE(bi(rq_bi_endsWith, 2, "\"lo\"", "\"hello\"", 0), "false");
  CHECK_STRFREE(bi(rq_bi_endsWith, 2, NULL, "\"a\"", 0), "false");

  CHECK_STRFREE(bi(rq_bi_split, 2, "\"a,b,,c\"", "\",\"", 0),
                "[\"a\",\"b\",\"\",\"c\"]");
  CHECK_STRFREE(bi(rq_bi_split, 2, "\"a::b\"", "\"::\"", 0),
                "[\"a\",\"b\"]");
  CHECK_STRFREE(bi(rq_bi_split, 2, "\"\"", "\",\"", 0), "[\"\"]");
  CHECK_STRFREE(bi(rq_bi_split, 2, "\"h\xc3\xa9j\"", "\"\"", 0),
                "[\"h\",\"\xc3\xa9\",\"j\"]");
  CHECK_STRFREE(bi(rq_bi_split, 2, "\"a b\"", NULL, 0), "[\"a b\"]");
  CHECK_STRFREE(bi(rq_bi_split, 2, "null", "\",\"", 0), "null");
  CHECK_STRFREE(bi(rq_bi_split, 2, NULL, "\",\"", 0), "null");
  CHECK_STRFREE(bi(rq_bi_split, 2, "5", "\",\"", 0),
                "ERR builtin split: expected a string, got number");

  CHECK_STRFREE(bi(rq_bi_join, 2, "[\"a\",1,null,true]", "\"-\"", 0),
                "\"a-1--true\"");
  CHECK_STRFREE(bi(rq_bi_join, 2, "[]", "\",\"", 0), "\"\"");
  CHECK_STRFREE(bi(rq_bi_join, 2, "[1,2]", NULL, 0), "\"12\"");
  CHECK_STRFREE(bi(rq_bi_join, 2, "null", "\",\"", 0), "null");
  CHECK_STRFREE(bi(rq_bi_join, 2, "\"x\"", "\",\"", 0),
                "ERR builtin join: expected an array, got string");
}

static void test_builtins_3(void)
{
  CHECK_STRFREE(bi(rq_bi_toString, 1, "1.0", 0, 0), "\"1\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, "0.1", 0, 0), "\"0.1\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, "1e21", 0, 0), "\"1e+21\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, "123456789012", 0, 0),
                "\"123456789012\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, "null", 0, 0), "\"\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, NULL, 0, 0), "\"\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, "true", 0, 0), "\"true\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, "\"s\"", 0, 0), "\"s\"");
  CHECK_STRFREE(bi(rq_bi_toString, 1, "{\"a\":[1,2]}", 0, 0),
                "\"{\\\"a\\\":[1,2]}\"");

  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "\"42\"", 0, 0), "42");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "\" 4.5 \"", 0, 0), "4.5");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "\"\"", 0, 0), "0");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "7", 0, 0), "7");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "true", 0, 0), "1");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "null", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, NULL, 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "\"abc\"", 0, 0),
                "ERR builtin toNumber: \"abc\" is not a number");
  CHECK_STRFREE(bi(rq_bi_toNumber, 1, "[1]", 0, 0),
                "ERR builtin toNumber: expected a number, got array");

  CHECK_STRFREE(bi(rq_bi_exists, 1, "0", 0, 0), "true");
  CHECK_STRFREE(bi(rq_bi_exists, 1, "\"\"", 0, 0), "true");
  CHECK_STRFREE(bi(rq_bi_exists, 1, "null", 0, 0), "false");
  CHECK_STRFREE(bi(rq_bi_exists, 1, NULL, 0, 0), "false");

  CHECK_STRFREE(bi(rq_bi_keys, 1, "{\"b\":1,\"a\":2}", 0, 0),
                "[\"b\",\"a\"]");
  CHECK_STRFREE(bi(rq_bi_values, 1, "{\"b\":1,\"a\":[2]}", 0, 0),
                "[1,[2]]");
  CHECK_STRFREE(bi(rq_bi_keys, 1, "null", 0, 0), "[]");
  CHECK_STRFREE(bi(rq_bi_keys, 1, "[1]", 0, 0), "[]");
  CHECK_STRFREE(bi(rq_bi_values, 1, NULL, 0, 0), "[]");

  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "\"2025-03-04T05:06:07.089Z\"", 0, 0),
                "1741064767089");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "\"2025-03-04T06:06:07.089+01:00\"",
                   0, 0), "1741064767089");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "\"1970-01-01T00:00:01.5Z\"", 0, 0),
                "1500");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "\"2025-03-04\"", 0, 0),
                "1741046400000");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "\"Sun, 06 Nov 1994 08:49:37 GMT\"",
                   0, 0), "784111777000");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "null", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, NULL, 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "1500", 0, 0), "1500");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "\"nope\"", 0, 0),
                "ERR builtin epochMs: cannot parse \"nope\"");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "\"2025-01-01\\u0000x\"", 0, 0),
                "ERR builtin epochMs: cannot parse \"2025-01-01\\u0000x\"");
  CHECK_STRFREE(bi(rq_bi_epochMs, 1, "[]", 0, 0),
                "ERR builtin epochMs: expected a string, got array");

  CHECK_STRFREE(bi(rq_bi_isoTime, 1, "1741064767089", 0, 0),
                "\"2025-03-04T05:06:07.089Z\"");
  CHECK_STRFREE(bi(rq_bi_isoTime, 1, "0", 0, 0),
                "\"1970-01-01T00:00:00.000Z\"");
  CHECK_STRFREE(bi(rq_bi_isoTime, 1, "-1", 0, 0),
                "\"1969-12-31T23:59:59.999Z\"");
  CHECK_STRFREE(bi(rq_bi_isoTime, 1, "null", 0, 0), "null");
  CHECK_STRFREE(bi(rq_bi_isoTime, 1, "\"x\"", 0, 0),
                "ERR builtin isoTime: expected a number, got string");
  CHECK_STRFREE(bi(rq_bi_isoTime, 1, "1e300", 0, 0),
                "ERR builtin isoTime: time out of range");
  CHECK_STRFREE(bi(rq_bi_fromUnix, 1, "1741064767", 0, 0),
                "\"2025-03-04T05:06:07.000Z\"");
  CHECK_STRFREE(bi(rq_bi_fromUnix, 1, "1.5", 0, 0),
                "\"1970-01-01T00:00:01.500Z\"");
  CHECK_STRFREE(bi(rq_bi_fromUnix, 1, NULL, 0, 0), "null");

  CHECK_STRFREE(bi(rq_bi_seconds, 1, "2", 0, 0), "2000");
  CHECK_STRFREE(bi(rq_bi_minutes, 1, "1.5", 0, 0), "90000");
  CHECK_STRFREE(bi(rq_bi_hours, 1, "1", 0, 0), "3600000");
  CHECK_STRFREE(bi(rq_bi_days, 1, "1", 0, 0), "86400000");
  CHECK_STRFREE(bi(rq_bi_seconds, 1, "null", 0, 0),
                "ERR builtin seconds: expected a number, got null");
  CHECK_STRFREE(bi(rq_bi_days, 1, NULL, 0, 0),
                "ERR builtin days: expected a number, got null");

  json_t *u1 = NULL, *u2 = NULL;
  CHECK(rq_bi_uuid(&env, at, 0, NULL, &u1) == 0);
  CHECK(rq_bi_uuid(&env, at, 0, NULL, &u2) == 0);
  const char *s = json_string_value(u1);
  CHECK(s && strlen(s) == 36 && s[8] == '-' && s[13] == '-' &&
        s[18] == '-' && s[23] == '-' && s[14] == '4' &&
        strchr("89ab", s[19]) != NULL);
  CHECK(strspn(s, "0123456789abcdef-") == 36);
  CHECK(!rqi_json_equal(u1, u2));
  json_decref(u1);
  json_decref(u2);
}

static void test_conforms(void)
{
  static const RqSchemaField fields[] = {
    { "id", RQ_TY_INT, false },
    { "name", RQ_TY_STRING, false },
    { "tags", RQ_TY_ARRAY, true },
    { "when", RQ_TY_DATE, true },
    { "extra", RQ_TY_ANY, true },
  };
  static const RqSchemaDef schema = { "Rec", fields, 5 };
  static const RqSchemaDef empty = { "Any", NULL, 0 };
  const struct { const char *v; bool ok; } cases[] = {
    { "{\"id\":1,\"name\":\"a\"}", true },
    { "{\"id\":1,\"name\":\"a\",\"other\":[1]}", true },
    { "{\"id\":1.0,\"name\":\"a\"}", true },
    { "{\"id\":1.5,\"name\":\"a\"}", false },
    { "{\"id\":\"1\",\"name\":\"a\"}", false },
    { "{\"id\":1}", false },
    { "{\"id\":1,\"name\":null}", false },
    { "{\"id\":1,\"name\":\"a\",\"tags\":null}", true },
    { "{\"id\":1,\"name\":\"a\",\"tags\":\"x\"}", false },
    { "{\"id\":1,\"name\":\"a\",\"tags\":[]}", true },
    { "{\"id\":1,\"name\":\"a\",\"when\":\"2025-01-01\"}", true },
    { "{\"id\":1,\"name\":\"a\",\"when\":\"2025-01-01T00:00:00Z\"}", true },
    { "{\"id\":1,\"name\":\"a\",\"when\":\"yesterday\"}", false },
    { "{\"id\":1,\"name\":\"a\",\"extra\":{}}", true },
    { "[{\"id\":1,\"name\":\"a\"}]", false },
    { "\"x\"", false },
    { "null", false },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *v = J(cases[i].v);
    bool ok = rqi_conforms(&schema, v);
    CHECK(ok == cases[i].ok);
    if (ok != cases[i].ok)
      fprintf(stderr, "    conforms(%s)\n", cases[i].v);
    json_decref(v);
  }
  json_t *v = J("{}");
  CHECK(rqi_conforms(&empty, v));
  json_decref(v);
  CHECK(!rqi_conforms(&empty, NULL));
}

static char *hash_of(const char *text)
{
  json_t *v = J(text);
  char out[33];
  rqi_content_hash(v, out);
  json_decref(v);
  return rq_strdup(out);
}

static char *sha_of(const char *data, size_t n)
{
  char out[65];
  rqi_sha256_hex(data, n, out);
  return rq_strdup(out);
}

static void test_hash(void)
{
  /* printf '%s' '{"a":1}' | sha256sum, and so on. */
  CHECK_STRFREE(hash_of("{\"a\":1}"), "015abd7f5cc57a2dd94b7590f04ad808");
  CHECK_STRFREE(hash_of("{\"b\":2,\"a\":1}"),
                "43258cff783fe7036d8a43033f830adf");
  CHECK_STRFREE(hash_of("{\"b\":[{\"d\":1,\"c\":2}],\"a\":0.5}"),
                "bd9ea4b74f3d2d788593f523790e5a02");
  CHECK_STRFREE(hash_of("{\"a\":1.0}"), "015abd7f5cc57a2dd94b7590f04ad808");
  json_t *v = J("{\"b\":[{\"d\":1,\"c\":2}],\"a\":0.5}");
  CHECK_STRFREE(rqi_canonical(v), "{\"a\":0.5,\"b\":[{\"c\":2,\"d\":1}]}");
  json_decref(v);
  v = J("{\"b\":1,\"a\":2,\"ab\":3,\"B\":4}");
  CHECK_STRFREE(rqi_canonical(v), "{\"B\":4,\"a\":2,\"ab\":3,\"b\":1}");
  json_decref(v);

  CHECK_STRFREE(sha_of("", 0),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK_STRFREE(sha_of("abc", 3),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  char big[1000];
  memset(big, 'x', sizeof big);
  CHECK_STRFREE(sha_of(big, 1000),
    "44f8354494a5ba03ba1792a8d3e9c534c47a9181980fde7a3f44b06ef2ae7c7f");
  memset(big, 'y', sizeof big);
  CHECK_STRFREE(sha_of(big, 55),
    "fb66d40c3bfff05b0d5af8612d0abfbfacc6f5f26c330bc7ad634f1f44bc20ad");
  CHECK_STRFREE(sha_of(big, 56),
    "4877e564e5e36e367c7c8d59670774becd3350610b6df4c399c9fa9b66da5813");
  CHECK_STRFREE(sha_of(big, 64),
    "ffbf30ab94107b2c14d75cfb455ec94f200400ddc5ce304e0c21894090db055f");
}

static void test_to_number(void)
{
  double d = -1;
  json_t *v = J("\"  12.5e1\\n\"");
  CHECK(rqi_to_number(v, &d) && d == 125);
  json_decref(v);
  v = J("\"12 5\"");
  CHECK(!rqi_to_number(v, &d));
  json_decref(v);
  v = J("[]");
  CHECK(!rqi_to_number(v, &d));
  json_decref(v);
  CHECK(!rqi_to_number(NULL, &d));
  v = J("false");
  CHECK(rqi_to_number(v, &d) && d == 0);
  json_decref(v);
}

int main(void)
{
  rqi_util_init();
  test_arithmetic();
  test_equality_ordering();
  test_truthy_is();
  test_serialise();
  test_access_build();
  test_builtins_1();
  test_builtins_2();
  test_builtins_3();
  test_conforms();
  test_hash();
  test_to_number();
  return check_report();
}
