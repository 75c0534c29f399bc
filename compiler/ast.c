/* ast.c -- AST constructors, list helpers and the --dump-ast printer.
 *
 * Nodes live in the compilation arena (see reqonc.h).  The dump format is
 * part of the golden tests (tests/compile/ast/), so keep it stable: one
 * node per line, "KIND attr=value ... @line:col", children indented by two
 * spaces and labelled with the field that holds them:
 *
 *   BINARY op='+' @3:10
 *     a: NUM 1 @3:10
 *     b: NAME name='x' @3:14
 */
#include <string.h>

#include "reqonc.h"

Node *ast_new(Compilation *c, NodeKind kind, Loc loc)
{
  Node *n = arena_alloc(c->arena, sizeof *n);
  n->kind = kind;
  n->loc = loc;
  n->name_loc = loc;
  n->word_loc = loc;
  return n;
}

/* Appends n (which may itself be a list) to list; NULL n is ignored, so
 * constructs that failed to parse simply drop out of their list. */
Node *ast_append(Node *list, Node *n)
{
  if(!n)
    return list;
  if(!list)
    return n;
  Node *p = list;
  while(p->next)
    p = p->next;
  p->next = n;
  return list;
}

const char *ast_kind_name(NodeKind k)
{
  static const char *const names[] = {
    [ND_MISSION] = "MISSION", [ND_SOURCE] = "SOURCE", [ND_STORE] = "STORE",
    [ND_SCHEMA] = "SCHEMA", [ND_FIELD] = "FIELD",
    [ND_TRANSFORM] = "TRANSFORM", [ND_VARIANT] = "VARIANT",
    [ND_ACTION] = "ACTION", [ND_LET] = "LET", [ND_PIPELINE] = "PIPELINE",
    [ND_STAGE] = "STAGE", [ND_SCHEDULE] = "SCHEDULE", [ND_HTTP] = "HTTP",
    [ND_CALLOP] = "CALLOP", [ND_FOR] = "FOR", [ND_MAP] = "MAP",
    [ND_APPLY] = "APPLY", [ND_VALIDATE] = "VALIDATE",
    [ND_ASSUME] = "ASSUME", [ND_STORESTEP] = "STORESTEP",
    [ND_MATCH] = "MATCH", [ND_ARM] = "ARM", [ND_WAIT] = "WAIT",
    [ND_DIRECTIVE] = "DIRECTIVE", [ND_NUM] = "NUM", [ND_STR] = "STR",
    [ND_BOOL] = "BOOL", [ND_NULL] = "NULL", [ND_RESPONSE] = "RESPONSE",
    [ND_NAME] = "NAME", [ND_FIELDREF] = "FIELDREF", [ND_MEMBER] = "MEMBER",
    [ND_INDEX] = "INDEX", [ND_CALL] = "CALL", [ND_UNARY] = "UNARY",
    [ND_BINARY] = "BINARY", [ND_COND] = "COND", [ND_IS] = "IS",
    [ND_ARRAY] = "ARRAY", [ND_OBJECT] = "OBJECT", [ND_ENTRY] = "ENTRY",
    [ND_MATCHEXPR] = "MATCHEXPR", [ND_MARM] = "MARM", [ND_ANYOF] = "ANYOF",
  };
  if((unsigned)k < sizeof names / sizeof names[0] && names[k])
    return names[k];
  return "?";
}

static const char *op_text(OpKind op)
{
  static const char *const ops[] = {
    [OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
    [OP_MOD] = "%", [OP_EQ] = "==", [OP_NE] = "!=", [OP_LT] = "<",
    [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=", [OP_AND] = "and",
    [OP_OR] = "or", [OP_COALESCE] = "??", [OP_NEG] = "-", [OP_PLUS] = "+",
    [OP_NOT] = "not",
  };
  if((unsigned)op < sizeof ops / sizeof ops[0] && ops[op])
    return ops[op];
  return "?";
}

/* Writes s[0..n) as a C-like quoted string (for STR values). */
static void put_quoted(FILE *out, const char *s, size_t n)
{
  fputc('"', out);
  for(size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    switch(ch) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\t': fputs("\\t", out); break;
    case '\r': fputs("\\r", out); break;
    default:
      if(ch < 0x20 || ch == 0x7f)
        fprintf(out, "\\x%02x", ch);
      else
        fputc(ch, out);
    }
  }
  fputc('"', out);
}

static void indent(FILE *out, int depth)
{
  for(int i = 0; i < depth; i++)
    fputs("  ", out);
}

static bool is_expr_kind(NodeKind k)
{
  return k >= ND_NUM;
}

static void dump_node(Compilation *c, FILE *out, const char *label,
                      const Node *n, int depth);

static void dump_list(Compilation *c, FILE *out, const char *label,
                      const Node *list, int depth)
{
  if(!list)
    return;
  indent(out, depth);
  fprintf(out, "%s:\n", label);
  for(const Node *p = list; p; p = p->next)
    dump_node(c, out, NULL, p, depth + 1);
}

static void dump_node(Compilation *c, FILE *out, const char *label,
                      const Node *n, int depth)
{
  if(!n)
    return;
  indent(out, depth);
  if(label)
    fprintf(out, "%s: ", label);
  fputs(ast_kind_name(n->kind), out);
  switch(n->kind) {
  case ND_NUM:
    fprintf(out, " %.17g", n->num);
    break;
  case ND_STR:
    fputc(' ', out);
    put_quoted(out, n->str ? n->str : "", n->len);
    break;
  case ND_BOOL:
    fputs(n->flag ? " true" : " false", out);
    break;
  case ND_UNARY: case ND_BINARY:
    fprintf(out, " op='%s'", op_text(n->op));
    break;
  default:
    break;
  }
  if(n->name)
    fprintf(out, " name='%s'", n->name);
  if(n->word)
    fprintf(out, " word='%s'", n->word);
  if(n->word2)
    fprintf(out, " word2='%s'", n->word2);
  if(n->kind != ND_STR && n->str) {
    fputs(" str=", out);
    put_quoted(out, n->str, n->len);
  }
  if(n->kind == ND_SCHEDULE && n->word && strcmp(n->word, "every") == 0)
    fprintf(out, " num=%.17g", n->num);
  if(n->kind != ND_BOOL && n->flag)
    fputs(" flag", out);
  if(n->flag2)
    fputs(" flag2", out);
  int line, col;
  source_linecol(c, n->loc, &line, &col);
  fprintf(out, " @%d:%d\n", line, col);

  if(is_expr_kind(n->kind) && n->kind == ND_COND) {
    dump_node(c, out, "cond", n->cond, depth + 1);
    dump_node(c, out, "a", n->a, depth + 1);
    dump_node(c, out, "b", n->b, depth + 1);
  } else {
    dump_node(c, out, "a", n->a, depth + 1);
    dump_node(c, out, "b", n->b, depth + 1);
    dump_node(c, out, "cond", n->cond, depth + 1);
  }
  dump_node(c, out, "opts", n->opts, depth + 1);
  dump_list(c, out, "body", n->body, depth + 1);
  dump_list(c, out, "els", n->els, depth + 1);
}

/* Prints n and its following siblings at the given depth. */
void ast_dump(Compilation *c, FILE *out, const Node *n, int depth)
{
  for(const Node *p = n; p; p = p->next)
    dump_node(c, out, NULL, p, depth);
}
