/* reqon.y -- the Reqon grammar (SPEC §3).
 *
 * A pure LALR(1) parser with byte-offset locations (Loc).  Actions stay
 * short: they build nodes with ast_new() and the small helpers below, and
 * report with diag_*().  All semantic values are arena pointers, so no
 * %destructor is needed.
 *
 * Design points (see grammar/README.md):
 *   - every `{ key: value ... }` option block and every object literal is
 *     one generic ND_OBJECT of ND_ENTRY nodes; check.c interprets them;
 *   - commas are optional between the items of any {} list; a key that is
 *     a binary-operator keyword (and, or, is) needs a comma before it;
 *   - context the grammar cannot see (same-line '[', queue targets, abort
 *     messages, top-level import) is decided by the scanner (reqon.l);
 *   - syntax errors are reported as "expected X, found Y" by
 *     yyreport_syntax_error(); `error` productions at the entry, step, arm,
 *     mission-item and declaration level resynchronise, and what failed to
 *     parse is left out of its list so check.c never sees it.
 */
%define api.pure full
%define api.prefix {rq_yy}
%define api.location.type {Loc}
%define parse.error custom
%locations
%expect 0
%param {yyscan_t scanner} {Compilation *c}

%code requires {
#include "reqonc.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
}

%code provides {
/* The scanner (reqon.l).  rq_yylex takes the Compilation as well, because
 * the parser passes both %param values to it. */
int rq_yylex(RQ_YYSTYPE *yylval_param, RQ_YYLTYPE *yylloc_param,
             yyscan_t yyscanner, Compilation *c);
void lex_begin(int file);            /* reset the scanner for one file */
int lex_file(void);                  /* the file being scanned */
char lex_innermost_open(Loc *loc);   /* innermost unclosed bracket, or 0 */
/* --dump-tokens: prints every token of every file. */
int lex_dump_tokens(Compilation *c, FILE *out);
/* Display name of a token code, for messages and --dump-tokens. */
const char *rq_token_name(int tok);
}

%code {
#include <string.h>

#define YYSTYPE RQ_YYSTYPE
#define YYLTYPE RQ_YYLTYPE
#define YY_DECL int rq_yylex(RQ_YYSTYPE *yylval_param, \
                             RQ_YYLTYPE *yylloc_param, yyscan_t yyscanner, \
                             Compilation *c)
#include "reqon.lex.h"

/* A rule's span runs from its first to its last symbol; an empty rule
 * gets a zero-width span at the end of the previous symbol (jq). */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                  \
  do {                                                               \
    if(N) {                                                          \
      (Cur).file = YYRHSLOC(Rhs, 1).file;                            \
      (Cur).start = YYRHSLOC(Rhs, 1).start;                          \
      (Cur).end = YYRHSLOC(Rhs, N).end;                              \
    } else {                                                         \
      (Cur).file = YYRHSLOC(Rhs, 0).file;                            \
      (Cur).start = (Cur).end = YYRHSLOC(Rhs, 0).end;                \
    }                                                                \
  } while(0)

static void rq_yyerror(RQ_YYLTYPE *loc, yyscan_t scanner, Compilation *c,
                       const char *msg);
static Node *named(Compilation *c, NodeKind k, Loc loc, const char *name,
                   Loc name_loc);
static Node *unop(Compilation *c, OpKind op, Node *a, Loc loc);
static Node *binop(Compilation *c, OpKind op, Node *a, Node *b, Loc loc);
static Node *cmpop(Compilation *c, OpKind op, Node *a, Loc aloc, Node *b,
                   Loc loc);
static Node *entry(Compilation *c, Loc loc, const char *key, Loc key_loc,
                   bool str_key, Node *val, Node *opts);
static Node *str_entry(Compilation *c, Loc loc, Node *key, Node *val,
                       Node *opts);
static Node *directive(Compilation *c, Loc loc, const char *word);
static Node *variant(Compilation *c, Loc loc, const char *pat, Loc pat_loc,
                     Node *cond, const char *target, Loc target_loc,
                     Node *map);
static Node *schedule(Compilation *c, Loc loc, const char *form,
                      Loc form_loc, double num, const char *unit,
                      Node *text, Node *opts);
static Node *unsupported(Compilation *c, Loc loc);
static Node *misplaced(Compilation *c, Loc loc, const char *what);

#define N(kind, loc) ast_new(c, (kind), (loc))

/* Entries that failed to parse so far (see `object`).  Only compared,
 * never reset, so one counter serves every file. */
static unsigned long entry_errors;
}

%initial-action {
  @$.file = lex_file();
  @$.start = @$.end = 0;
}

%union {
  const char *s;    /* interned identifier or keyword text */
  double num;
  Node *node;
}

%token <s> IDENT "name"
%token <s> METHOD "HTTP method"
%token <num> NUMBER "number"
%token <node> STRING "string"
%token <s> MISSION "'mission'" SOURCE "'source'" STORE "'store'"
%token <s> SCHEMA "'schema'" ACTION "'action'" TRANSFORM "'transform'"
%token <s> RUN "'run'" THEN "'then'" IF "'if'" SCHEDULE "'schedule'"
%token <s> LET "'let'" FOR "'for'" IN "'in'" WHERE "'where'"
%token <s> MAP "'map'" APPLY "'apply'" TO "'to'" AS "'as'"
%token <s> VALIDATE "'validate'" ASSUME "'assume'" OR "'or'" AND "'and'"
%token <s> NOT "'not'" MATCH "'match'" IS "'is'" CALL "'call'"
%token <s> CONTINUE "'continue'" SKIP "'skip'" ABORT "'abort'"
%token <s> ABORT_MSG "'abort' with message" RETRY "'retry'"
%token <s> QUEUE "'queue'" QUEUE_T "'queue' with target" JUMP "'jump'"
%token <s> WAIT "'wait'" TRUE "'true'" FALSE "'false'" NULL_ "'null'"
%token <s> RESPONSE "'response'" ANY "'any'" OF "'of'" FROM "'from'"
%token <s> EACH "'each'" IMPORT "'import'" UNDERSCORE "'_'"
%token ELLIPSIS "'...'" DOTDOT "'..'" ARROW "'->'" FATARROW "'=>'"
%token EQ "'=='" NE "'!='" LE "'<='" GE "'>='" COALESCE "'??'"
%token PIPE "'|'" CARET "'^'" LBRACKET "'[' (new line)"

%type <s> name word key_nc kw
%type <node> toplevel mission mission_items mission_item source_decl
%type <node> opt_from store_decl schema_decl fields field transform_decl
%type <node> variants variant action_decl let_decl pipeline stages stage
%type <node> stage_names name_list opt_if schedule block steps step
%type <node> step_core http_step call_step for_step opt_where map_step
%type <node> apply_step validate_step assumes assume store_step match_step
%type <node> arms arm arm_body wait_step directive object opt_object
%type <node> entries entries1 entry entry_nc expr postfix primary args
%type <node> args1 elems elems1 elem marms marms1 marm

/* Lowest first.  OF < WHERE makes `any of xs where c` take the where
 * (inside `for x in any of xs where c {` too). */
%precedence OF
%precedence WHERE
%right '?' ':'
%left PIPE
%left COALESCE
%left OR
%left AND
%precedence NOT
%left EQ NE '<' LE '>' GE IS
%nonassoc DOTDOT
%left '+' '-'
%left '*' '/' '%'
%precedence UNARY

%%

unit
  : %empty
  | unit toplevel        { c->prog.decls = ast_append(c->prog.decls, $2); }
  ;

toplevel
  : mission
  | action_decl
  | schema_decl
  | transform_decl
  | let_decl
  | source_decl          { $$ = misplaced(c, @1, "source"); }
  | store_decl           { $$ = misplaced(c, @1, "store"); }
  | IMPORT STRING        { $$ = misplaced(c, @1, "import"); }
  | error                { $$ = NULL; }
  ;

/* ---------------------------------------------------------- missions */

mission
  : MISSION name '{' mission_items '}'
      { $$ = named(c, ND_MISSION, @$, $2, @2); $$->body = $4; }
  ;

mission_items
  : %empty                                  { $$ = NULL; }
  | mission_items mission_item opt_comma    { $$ = ast_append($1, $2); }
  ;

mission_item
  : source_decl
  | store_decl
  | schema_decl
  | transform_decl
  | action_decl
  | let_decl
  | pipeline
  | schedule
  | error                { $$ = NULL; }
  ;

opt_comma
  : %empty
  | ','
  ;

source_decl
  : SOURCE name opt_from opt_object
      { $$ = named(c, ND_SOURCE, @$, $2, @2); $$->opts = $4;
        if($3) { $$->str = $3->str; $$->len = $3->len; } }
  ;

opt_from
  : %empty               { $$ = NULL; }
  | FROM STRING          { $$ = $2; }
  ;

store_decl
  : STORE name ':' IDENT '(' STRING ')'
      { $$ = named(c, ND_STORE, @$, $2, @2); $$->word = $4;
        $$->word_loc = @4; $$->str = $6->str; $$->len = $6->len; }
  ;

schema_decl
  : SCHEMA name '{' fields '}'
      { $$ = named(c, ND_SCHEMA, @$, $2, @2); $$->body = $4; }
  ;

fields
  : %empty                       { $$ = NULL; }
  | fields field opt_comma       { $$ = ast_append($1, $2); }
  ;

field
  : word ':' word                { $$ = named(c, ND_FIELD, @$, $1, @1);
                                   $$->word = $3; $$->word_loc = @3; }
  | word ':' word '?'            { $$ = named(c, ND_FIELD, @$, $1, @1);
                                   $$->word = $3; $$->word_loc = @3;
                                   $$->flag = true; }
  | error                        { $$ = NULL; }
  ;

/* transform T: A -> B {..} | transform T -> B {..} | transform T { .. } */
transform_decl
  : TRANSFORM name ':' name ARROW name object
      { $$ = named(c, ND_TRANSFORM, @$, $2, @2);
        $$->body = variant(c, @4, $4, @4, NULL, $6, @6, $7); }
  | TRANSFORM name ARROW name object
      { $$ = named(c, ND_TRANSFORM, @$, $2, @2);
        $$->body = variant(c, @3, "_", @3, NULL, $4, @4, $5); }
  | TRANSFORM name '{' variants '}'
      { $$ = named(c, ND_TRANSFORM, @$, $2, @2); $$->body = $4; }
  ;

variants
  : %empty                       { $$ = NULL; }
  | variants variant opt_comma   { $$ = ast_append($1, $2); }
  ;

variant
  : '(' name ')' opt_where ARROW name object
      { $$ = variant(c, @$, $2, @2, $4, $6, @6, $7); }
  | '(' UNDERSCORE ')' opt_where ARROW name object
      { $$ = variant(c, @$, "_", @2, $4, $6, @6, $7); }
  | error                        { $$ = NULL; }
  ;

action_decl
  : ACTION name block
      { $$ = named(c, ND_ACTION, @$, $2, @2); $$->body = $3; }
  ;

let_decl
  : LET name '=' expr    { $$ = named(c, ND_LET, @$, $2, @2); $$->a = $4; }
  ;

/* run A then [B, C] then D if cond */
pipeline
  : RUN stages           { $$ = N(ND_PIPELINE, @$); $$->body = $2; }
  ;

stages
  : stage                { $$ = $1; }
  | stages THEN stage    { $$ = ast_append($1, $3); }
  ;

stage
  : stage_names opt_if   { $$ = $1; $$->cond = $2; $$->loc = @$; }
  ;

stage_names
  : name                 { $$ = N(ND_STAGE, @$);
                           $$->body = named(c, ND_NAME, @1, $1, @1); }
  | LBRACKET name_list ']'
                         { $$ = N(ND_STAGE, @$); $$->body = $2;
                           $$->flag = true; }
  ;

name_list
  : name                 { $$ = named(c, ND_NAME, @1, $1, @1); }
  | name_list ',' name   { $$ = ast_append($1, named(c, ND_NAME, @3, $3, @3)); }
  ;

opt_if
  : %empty               { $$ = NULL; }
  | IF expr              { $$ = $2; }
  ;

/* schedule: every N unit [opts] | cron "..." [opts] | at "..." [opts] */
schedule
  : SCHEDULE ':' IDENT NUMBER IDENT opt_object
      { $$ = schedule(c, @$, $3, @3, $4, $5, NULL, $6); }
  | SCHEDULE ':' IDENT STRING opt_object
      { $$ = schedule(c, @$, $3, @3, 0, NULL, $4, $5); }
  ;

/* ------------------------------------------------------------- steps */

block
  : '{' steps '}'        { $$ = $2; }
  ;

steps
  : %empty                       { $$ = NULL; }
  | steps step opt_comma         { $$ = ast_append($1, $2); }
  ;

step
  : step_core
  | error                        { $$ = NULL; }
  ;

step_core
  : http_step
  | call_step
  | for_step
  | map_step
  | apply_step
  | validate_step
  | store_step
  | match_step
  | let_decl
  | wait_step
  | directive
  ;

http_step
  : METHOD expr opt_object
      { $$ = N(ND_HTTP, @$); $$->word = $1; $$->word_loc = @1;
        $$->a = $2; $$->opts = $3; }
  ;

call_step
  : CALL name '.' word opt_object
      { $$ = named(c, ND_CALLOP, @$, $2, @2); $$->word2 = $4;
        $$->word_loc = @4; $$->opts = $5; }
  ;

for_step
  : FOR name IN expr opt_where block
      { $$ = named(c, ND_FOR, @$, $2, @2); $$->a = $4; $$->cond = $5;
        $$->body = $6; }
  ;

opt_where
  : %empty               { $$ = NULL; }
  | WHERE expr           { $$ = $2; }
  ;

map_step
  : MAP expr ARROW name object
      { $$ = N(ND_MAP, @$); $$->a = $2; $$->word = $4; $$->word_loc = @4;
        $$->opts = $5; }
  ;

apply_step
  : APPLY name TO expr
      { $$ = named(c, ND_APPLY, @$, $2, @2); $$->a = $4; }
  | APPLY name TO expr AS name
      { $$ = named(c, ND_APPLY, @$, $2, @2); $$->a = $4; $$->word2 = $6;
        $$->word_loc = @6; }
  ;

validate_step
  : VALIDATE expr '{' assumes '}'
      { $$ = N(ND_VALIDATE, @$); $$->a = $2; $$->body = $4; }
  | VALIDATE expr '{' assumes '}' OR block
      { $$ = N(ND_VALIDATE, @$); $$->a = $2; $$->body = $4;
        $$->els = $7; $$->flag = true; }
  ;

assumes
  : %empty                       { $$ = NULL; }
  | assumes assume opt_comma     { $$ = ast_append($1, $2); }
  ;

assume
  : ASSUME expr          { $$ = N(ND_ASSUME, @$); $$->a = $2; }
  | error                { $$ = NULL; }
  ;

store_step
  : STORE expr ARROW name opt_object
      { $$ = named(c, ND_STORESTEP, @$, $4, @4); $$->a = $2; $$->opts = $5; }
  | STORE EACH expr ARROW name opt_object
      { $$ = named(c, ND_STORESTEP, @$, $5, @5); $$->a = $3; $$->opts = $6;
        $$->flag = true; }
  ;

match_step
  : MATCH expr '{' arms '}'
      { $$ = N(ND_MATCH, @$); $$->a = $2; $$->body = $4; }
  ;

arms
  : %empty                       { $$ = NULL; }
  | arms arm opt_comma           { $$ = ast_append($1, $2); }
  ;

/* Pattern [where e] -> directive | block | step */
arm
  : name opt_where ARROW arm_body
      { $$ = N(ND_ARM, @$); $$->word = $1; $$->word_loc = @1;
        $$->cond = $2; $$->body = $4; }
  | UNDERSCORE opt_where ARROW arm_body
      { $$ = N(ND_ARM, @$); $$->word = $1; $$->word_loc = @1;
        $$->cond = $2; $$->body = $4; }
  | LBRACKET name ']' opt_where ARROW arm_body
      { $$ = N(ND_ARM, @$); $$->word = $2; $$->word_loc = @2;
        $$->flag = true; $$->cond = $4; $$->body = $6; }
  | error                        { $$ = NULL; }
  ;

arm_body
  : block
  | step_core
  ;

wait_step
  : WAIT object          { $$ = N(ND_WAIT, @$); $$->opts = $2; }
  ;

directive
  : CONTINUE             { $$ = directive(c, @$, "continue"); }
  | SKIP                 { $$ = directive(c, @$, "skip"); }
  | ABORT                { $$ = directive(c, @$, "abort"); }
  | ABORT_MSG expr       { $$ = directive(c, @$, "abort"); $$->a = $2; }
  | RETRY                { $$ = directive(c, @$, "retry"); }
  | RETRY object         { $$ = directive(c, @$, "retry"); $$->opts = $2; }
  | QUEUE                { $$ = directive(c, @$, "queue"); }
  | QUEUE_T name         { $$ = directive(c, @$, "queue"); $$->name = $2;
                           $$->name_loc = @2; }
  | JUMP name            { $$ = directive(c, @$, "jump"); $$->name = $2;
                           $$->name_loc = @2; }
  | JUMP name THEN RETRY { $$ = directive(c, @$, "jump"); $$->name = $2;
                           $$->name_loc = @2; $$->word2 = $4; }
  | JUMP name THEN CONTINUE
                         { $$ = directive(c, @$, "jump"); $$->name = $2;
                           $$->name_loc = @2; $$->word2 = $4; }
  ;

/* ------------------------------------------- objects and option blocks */

/* flag2 marks a block in which an entry failed to parse, so check.c can
 * skip "missing key" checks that would only repeat the syntax error. */
object
  : '{' { $<num>$ = entry_errors; } entries '}'
      { $$ = N(ND_OBJECT, @$); $$->body = $3;
        $$->flag2 = entry_errors != $<num>2; }
  ;

opt_object
  : %empty               { $$ = NULL; }
  | object
  ;

entries
  : %empty               { $$ = NULL; }
  | entries1
  | entries1 ','
  ;

/* Commas between entries are optional, except before a key that is a
 * binary-operator keyword (and, or, is): `x: a\n or: b` would continue
 * the expression. */
entries1
  : entry
  | entries1 ',' entry   { $$ = ast_append($1, $3); }
  | entries1 entry_nc    { $$ = ast_append($1, $2); }
  ;

entry
  : word ':' expr opt_object     { $$ = entry(c, @$, $1, @1, false, $3, $4); }
  | STRING ':' expr opt_object   { $$ = str_entry(c, @$, $1, $3, $4); }
  | ELLIPSIS expr                { $$ = entry(c, @$, NULL, @1, false, $2,
                                              NULL); $$->flag = true; }
  | error                        { $$ = NULL; entry_errors++; }
  ;

entry_nc
  : key_nc ':' expr opt_object   { $$ = entry(c, @$, $1, @1, false, $3, $4); }
  | STRING ':' expr opt_object   { $$ = str_entry(c, @$, $1, $3, $4); }
  | ELLIPSIS expr                { $$ = entry(c, @$, NULL, @1, false, $2,
                                              NULL); $$->flag = true; }
  | error                        { $$ = NULL; entry_errors++; }
  ;

/* ------------------------------------------------------- expressions */

expr
  : postfix
  | '-' expr %prec UNARY         { $$ = unop(c, OP_NEG, $2, @$); }
  | '+' expr %prec UNARY         { $$ = unop(c, OP_PLUS, $2, @$); }
  | NOT expr                     { $$ = unop(c, OP_NOT, $2, @$); }
  | expr '*' expr                { $$ = binop(c, OP_MUL, $1, $3, @$); }
  | expr '/' expr                { $$ = binop(c, OP_DIV, $1, $3, @$); }
  | expr '%' expr                { $$ = binop(c, OP_MOD, $1, $3, @$); }
  | expr '+' expr                { $$ = binop(c, OP_ADD, $1, $3, @$); }
  | expr '-' expr                { $$ = binop(c, OP_SUB, $1, $3, @$); }
  | expr EQ expr                 { $$ = cmpop(c, OP_EQ, $1, @1, $3, @$); }
  | expr NE expr                 { $$ = cmpop(c, OP_NE, $1, @1, $3, @$); }
  | expr '<' expr                { $$ = cmpop(c, OP_LT, $1, @1, $3, @$); }
  | expr LE expr                 { $$ = cmpop(c, OP_LE, $1, @1, $3, @$); }
  | expr '>' expr                { $$ = cmpop(c, OP_GT, $1, @1, $3, @$); }
  | expr GE expr                 { $$ = cmpop(c, OP_GE, $1, @1, $3, @$); }
  | expr IS word                 { $$ = N(ND_IS, @$); $$->a = $1;
                                   $$->word = $3; $$->word_loc = @3; }
  | expr AND expr                { $$ = binop(c, OP_AND, $1, $3, @$); }
  | expr OR expr                 { $$ = binop(c, OP_OR, $1, $3, @$); }
  | expr COALESCE expr           { $$ = binop(c, OP_COALESCE, $1, $3, @$); }
  | expr '?' expr ':' expr       { $$ = N(ND_COND, @$); $$->cond = $1;
                                   $$->a = $3; $$->b = $5; }
  | ANY OF postfix %prec OF      { $$ = N(ND_ANYOF, @$); $$->a = $3; }
  | ANY OF postfix WHERE expr    { $$ = N(ND_ANYOF, @$); $$->a = $3;
                                   $$->cond = $5; }
  | expr PIPE expr               { $$ = unsupported(c, @$); }
  | expr DOTDOT expr             { $$ = unsupported(c, @$); }
  ;

postfix
  : primary
  | postfix '.' word             { $$ = named(c, ND_MEMBER, @$, $3, @3);
                                   $$->a = $1; }
  | postfix '[' expr ']'         { $$ = N(ND_INDEX, @$); $$->a = $1;
                                   $$->b = $3; }
  ;

primary
  : NUMBER                       { $$ = N(ND_NUM, @$); $$->num = $1; }
  | STRING
  | TRUE                         { $$ = N(ND_BOOL, @$); $$->flag = true; }
  | FALSE                        { $$ = N(ND_BOOL, @$); }
  | NULL_                        { $$ = N(ND_NULL, @$); }
  | RESPONSE                     { $$ = N(ND_RESPONSE, @$); }
  | name                         { $$ = named(c, ND_NAME, @$, $1, @1); }
  | '.' word                     { $$ = named(c, ND_FIELDREF, @$, $2, @2); }
  | IDENT '(' args ')'           { $$ = named(c, ND_CALL, @$, $1, @1);
                                   $$->body = $3; }
  | '(' expr ')'                 { $$ = $2; }
  | LBRACKET elems ']'           { $$ = N(ND_ARRAY, @$); $$->body = $2; }
  | object
  | MATCH postfix '{' marms '}'  { $$ = N(ND_MATCHEXPR, @$); $$->a = $2;
                                   $$->body = $4; }
  | CARET word                   { $$ = unsupported(c, @$); }
  ;

args
  : %empty               { $$ = NULL; }
  | args1
  | args1 ','
  ;

args1
  : expr
  | args1 ',' expr       { $$ = ast_append($1, $3); }
  ;

elems
  : %empty               { $$ = NULL; }
  | elems1
  | elems1 ','
  ;

elems1
  : elem
  | elems1 ',' elem      { $$ = ast_append($1, $3); }
  ;

/* `0.7: "x"` is a weighted option of the reference's data generator. */
elem
  : expr
  | NUMBER ':' expr      { $$ = unsupported(c, @$); }
  ;

/* Commas between match-expression arms are required. */
marms
  : %empty               { $$ = NULL; }
  | marms1
  | marms1 ','
  ;

marms1
  : marm
  | marms1 ',' marm      { $$ = ast_append($1, $3); }
  ;

marm
  : UNDERSCORE FATARROW expr
      { $$ = N(ND_MARM, @$); $$->word = $1; $$->word_loc = @1; $$->b = $3; }
  | UNDERSCORE WHERE expr FATARROW expr
      { $$ = N(ND_MARM, @$); $$->word = $1; $$->word_loc = @1;
        $$->cond = $3; $$->b = $5; }
  | name WHERE expr FATARROW expr
      { $$ = named(c, ND_MARM, @$, $1, @1); $$->cond = $3; $$->b = $5; }
  | expr FATARROW expr
      { $$ = N(ND_MARM, @$); $$->a = $1; $$->b = $3; }
  ;

/* ------------------------------------------------------------- words */

/* Name: an identifier that is not reserved, or an HTTP method word. */
name
  : IDENT
  | METHOD
  ;

/* Word: any identifier or keyword (member names, keys, types). */
word
  : key_nc
  | AND
  | OR
  | IS
  ;

key_nc
  : IDENT
  | METHOD
  | kw
  ;

kw
  : MISSION | SOURCE | STORE | SCHEMA | ACTION | TRANSFORM | RUN | THEN
  | IF | SCHEDULE | LET | FOR | IN | WHERE | MAP | APPLY | TO | AS
  | VALIDATE | ASSUME | NOT | MATCH | CALL | CONTINUE | SKIP | ABORT
  | ABORT_MSG | RETRY | QUEUE | QUEUE_T | JUMP | WAIT | TRUE | FALSE
  | NULL_ | RESPONSE | ANY | OF | FROM | EACH | IMPORT
  ;

%%

/* ------------------------------------------------------ node helpers */

static Node *named(Compilation *c, NodeKind k, Loc loc, const char *name,
                   Loc name_loc)
{
  Node *n = ast_new(c, k, loc);
  n->name = name;
  n->name_loc = name_loc;
  return n;
}

static Node *unop(Compilation *c, OpKind op, Node *a, Loc loc)
{
  Node *n = ast_new(c, ND_UNARY, loc);
  n->op = op;
  n->a = a;
  return n;
}

static Node *binop(Compilation *c, OpKind op, Node *a, Node *b, Loc loc)
{
  Node *n = ast_new(c, ND_BINARY, loc);
  n->op = op;
  n->a = a;
  n->b = b;
  return n;
}

static bool is_comparison(const Node *n)
{
  return n->kind == ND_BINARY && n->op >= OP_EQ && n->op <= OP_GE;
}

static const char *cmp_text(OpKind op)
{
  static const char *const t[] = { "==", "!=", "<", "<=", ">", ">=" };
  return t[op - OP_EQ];
}

/* A comparison; warns about an unparenthesised chain `a < b < c` (the
 * left operand's node starts where its grammar symbol starts only when
 * no parenthesis precedes it). */
static Node *cmpop(Compilation *c, OpKind op, Node *a, Loc aloc, Node *b,
                   Loc loc)
{
  if(is_comparison(a) && a->loc.start == aloc.start)
    diag_warning(c, loc, "chained comparison is evaluated as "
                 "'(a %s b) %s c'; use 'and' to combine tests",
                 cmp_text(a->op), cmp_text(op));
  return binop(c, op, a, b, loc);
}

static Node *entry(Compilation *c, Loc loc, const char *key, Loc key_loc,
                   bool str_key, Node *val, Node *opts)
{
  Node *n = named(c, ND_ENTRY, loc, key, key_loc);
  n->flag2 = str_key;
  n->a = val;
  n->opts = opts;
  return n;
}

/* A String key may hold "\u0000": the interned name is NUL-terminated,
 * so its byte length is kept in len for the object it builds. */
static Node *str_entry(Compilation *c, Loc loc, Node *key, Node *val,
                       Node *opts)
{
  Node *n = entry(c, loc, intern(c, key->str, key->len), key->loc, true,
                  val, opts);
  n->len = key->len;
  return n;
}

static Node *directive(Compilation *c, Loc loc, const char *word)
{
  Node *n = ast_new(c, ND_DIRECTIVE, loc);
  n->word = intern(c, word, strlen(word));
  return n;
}

static Node *variant(Compilation *c, Loc loc, const char *pat, Loc pat_loc,
                     Node *cond, const char *target, Loc target_loc,
                     Node *map)
{
  Node *n = named(c, ND_VARIANT, loc, intern(c, pat, strlen(pat)), pat_loc);
  n->cond = cond;
  n->word = target;
  n->word_loc = target_loc;
  n->opts = map;
  return n;
}

/* schedule: every N unit | cron "..." | at "..."; the form word is checked
 * here because it decides the shape, the unit and texts in check.c. */
static Node *schedule(Compilation *c, Loc loc, const char *form,
                      Loc form_loc, double num, const char *unit,
                      Node *text, Node *opts)
{
  bool every = strcmp(form, "every") == 0;
  bool textual = strcmp(form, "cron") == 0 || strcmp(form, "at") == 0;
  if(text ? !textual : !every) {
    diag_error(c, form_loc, "expected %s, found '%s'",
               text ? "'cron' or 'at'" : "'every'", form);
    return NULL;
  }
  Node *n = ast_new(c, ND_SCHEDULE, loc);
  n->word = form;
  n->word_loc = form_loc;
  n->num = num;
  n->word2 = unit;
  if(text) {
    n->str = text->str;
    n->len = text->len;
  }
  n->opts = opts;
  return n;
}

/* The reference's data-generation forms (a | b, a..b, ^parent, weighted
 * options).  Returns a null literal so the rest of the tree stays
 * well-formed. */
static Node *unsupported(Compilation *c, Loc loc)
{
  diag_error(c, loc, "construct not supported in reqon");
  return ast_new(c, ND_NULL, loc);
}

/* Top-level source, store and import (SPEC §2.8 rule 5). */
static Node *misplaced(Compilation *c, Loc loc, const char *what)
{
  if(strcmp(what, "import") == 0)
    diag_error(c, loc, "'import' is not supported in reqon; pass every "
               "file on the command line");
  else
    diag_error(c, loc, "'%s' must be declared inside a mission", what);
  return NULL;
}

/* ---------------------------------------------------- syntax errors */

static void rq_yyerror(RQ_YYLTYPE *loc, yyscan_t scanner, Compilation *c,
                       const char *msg)
{
  diag_error(c, *loc, "%s", msg);
}

const char *rq_token_name(int tok)
{
  return yysymbol_name(YYTRANSLATE(tok));
}

/* A growing "A, B or C" list in a fixed buffer. */
typedef struct {
  char buf[512];
  const char *items[24];
  int n;
} Expect;

static void expect_add(Expect *e, const char *s)
{
  for(int i = 0; i < e->n; i++)
    if(strcmp(e->items[i], s) == 0)
      return;
  if(e->n < (int)(sizeof e->items / sizeof e->items[0]))
    e->items[e->n++] = s;
}

static const char *expect_text(Expect *e)
{
  size_t len = 0;
  e->buf[0] = '\0';
  int n = e->n > 6 ? 6 : e->n;
  for(int i = 0; i < n; i++) {
    const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
    int w = snprintf(e->buf + len, sizeof e->buf - len, "%s%s", sep,
                     e->items[i]);
    if(w < 0 || (size_t)w >= sizeof e->buf - len)
      break;
    len += (size_t)w;
  }
  return e->buf;
}

static bool sym_is(yysymbol_kind_t k, const char *name)
{
  return strcmp(yysymbol_name(k), name) == 0;
}

/* Tokens that can begin an expression. */
static bool starts_expr(yysymbol_kind_t k)
{
  switch(k) {
  case YYSYMBOL_IDENT: case YYSYMBOL_METHOD: case YYSYMBOL_NUMBER:
  case YYSYMBOL_STRING: case YYSYMBOL_TRUE: case YYSYMBOL_FALSE:
  case YYSYMBOL_NULL_: case YYSYMBOL_RESPONSE: case YYSYMBOL_LBRACKET:
  case YYSYMBOL_NOT: case YYSYMBOL_MATCH: case YYSYMBOL_ANY:
  case YYSYMBOL_CARET:
    return true;
  default:
    return sym_is(k, "'('") || sym_is(k, "'{'") || sym_is(k, "'.'") ||
           sym_is(k, "'-'") || sym_is(k, "'+'");
  }
}

/* Tokens that can begin a step. */
static bool starts_step(yysymbol_kind_t k)
{
  switch(k) {
  case YYSYMBOL_METHOD: case YYSYMBOL_CALL: case YYSYMBOL_FOR:
  case YYSYMBOL_MAP: case YYSYMBOL_APPLY: case YYSYMBOL_VALIDATE:
  case YYSYMBOL_STORE: case YYSYMBOL_MATCH: case YYSYMBOL_LET:
  case YYSYMBOL_WAIT: case YYSYMBOL_CONTINUE: case YYSYMBOL_SKIP:
  case YYSYMBOL_ABORT: case YYSYMBOL_ABORT_MSG: case YYSYMBOL_RETRY:
  case YYSYMBOL_QUEUE: case YYSYMBOL_QUEUE_T: case YYSYMBOL_JUMP:
    return true;
  default:
    return false;
  }
}

static bool starts_item(yysymbol_kind_t k)
{
  switch(k) {
  case YYSYMBOL_SOURCE: case YYSYMBOL_STORE: case YYSYMBOL_SCHEMA:
  case YYSYMBOL_TRANSFORM: case YYSYMBOL_ACTION: case YYSYMBOL_LET:
  case YYSYMBOL_RUN: case YYSYMBOL_SCHEDULE:
    return true;
  default:
    return false;
  }
}

static bool starts_decl(yysymbol_kind_t k)
{
  return k == YYSYMBOL_MISSION || k == YYSYMBOL_ACTION ||
         k == YYSYMBOL_SCHEMA || k == YYSYMBOL_TRANSFORM ||
         k == YYSYMBOL_LET || k == YYSYMBOL_SOURCE || k == YYSYMBOL_STORE ||
         k == YYSYMBOL_IMPORT;
}

/* Keywords, identifiers: anything the `word` rule accepts. */
static bool is_word(yysymbol_kind_t k)
{
  return k == YYSYMBOL_IDENT || k == YYSYMBOL_METHOD ||
         (k >= YYSYMBOL_MISSION && k <= YYSYMBOL_UNDERSCORE &&
          k != YYSYMBOL_UNDERSCORE);
}

static bool is_operator(yysymbol_kind_t k)
{
  switch(k) {
  case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE: case YYSYMBOL_GE:
  case YYSYMBOL_AND: case YYSYMBOL_OR: case YYSYMBOL_IS:
  case YYSYMBOL_COALESCE: case YYSYMBOL_PIPE: case YYSYMBOL_DOTDOT:
    return true;
  default:
    return sym_is(k, "'+'") || sym_is(k, "'-'") || sym_is(k, "'*'") ||
           sym_is(k, "'/'") || sym_is(k, "'%'") || sym_is(k, "'<'") ||
           sym_is(k, "'>'") || sym_is(k, "'?'") || sym_is(k, "'.'") ||
           sym_is(k, "'['");
  }
}

/* `{ a: 1 <newline> or: 2 }` reads as `1 or 2` followed by a stray ':'.
 * Returns a hint when the word before the ':' at pos is such a key. */
static const char *operator_key_hint(const Source *s, int pos)
{
  int e = pos;
  while(e > 0 && (s->text[e - 1] == ' ' || s->text[e - 1] == '\t'))
    e--;
  int b = e;
  while(b > 0 && ((s->text[b - 1] >= 'a' && s->text[b - 1] <= 'z') ||
                  (s->text[b - 1] >= 'A' && s->text[b - 1] <= 'Z') ||
                  (s->text[b - 1] >= '0' && s->text[b - 1] <= '9') ||
                  s->text[b - 1] == '_'))
    b--;
  const char *w = s->text + b;
  int n = e - b;
  if((n == 2 && memcmp(w, "or", 2) == 0) ||
     (n == 3 && memcmp(w, "and", 3) == 0) ||
     (n == 2 && memcmp(w, "is", 2) == 0))
    return "; a key named 'and', 'or' or 'is' needs a comma before it";
  return "";
}

/* "expected X, found Y": X names a construct when the parser would
 * accept a whole class of tokens (any step, any expression, ...) and
 * lists the remaining tokens; Y is the offending token's text.  When a
 * closing bracket is among X, a note points at the unclosed opener. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner,
                                 Compilation *c)
{
  yysymbol_kind_t exp[YYNTOKENS];
  int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
  if(n < 0)
    n = 0;
  bool saw_not = false, saw_number = false;
  bool has_step = false, has_item = false;
  bool has_decl = false, has_op = false;
  int n_words = 0, n_ops = 0;
  bool has_ellipsis = false, has_string = false;
  for(int i = 0; i < n; i++) {
    yysymbol_kind_t k = exp[i];
    if(k == YYSYMBOL_NOT)
      saw_not = true;
    if(k == YYSYMBOL_NUMBER)
      saw_number = true;
    if(k == YYSYMBOL_FOR)
      has_step = true;
    if(k == YYSYMBOL_RUN)
      has_item = true;
    if(k == YYSYMBOL_MISSION)
      has_decl = true;
    if(k == YYSYMBOL_COALESCE)
      has_op = true;
    if(k == YYSYMBOL_ELLIPSIS)
      has_ellipsis = true;
    if(k == YYSYMBOL_STRING)
      has_string = true;
    if(is_word(k))
      n_words++;
    if(is_operator(k))
      n_ops++;
  }
  bool has_expr = saw_not && saw_number;   /* any expression can start */
  bool has_key = has_ellipsis && has_string && n_words > 20;
  bool has_fieldname = !has_key && !has_expr && n_words > 20;
  if(has_key || has_fieldname)    /* keywords there are just words */
    has_decl = has_item = has_step = false;
  bool has_name = !has_expr && !has_key && !has_fieldname &&
                  !has_step && !has_item;

  Expect e = { .n = 0 };
  if(has_decl)
    expect_add(&e, "declaration");
  if(has_item)
    expect_add(&e, "mission item");
  if(has_step)
    expect_add(&e, "step");
  if(has_key)
    expect_add(&e, "key");
  if(has_fieldname)
    expect_add(&e, "field name");
  if(has_expr)
    expect_add(&e, "expression");
  for(int i = 0; i < n; i++) {
    yysymbol_kind_t k = exp[i];
    if(has_decl && starts_decl(k))
      continue;
    if(has_item && starts_item(k))
      continue;
    if(has_step && starts_step(k))
      continue;
    if((has_key || has_fieldname) && (is_word(k) || k == YYSYMBOL_STRING ||
                                      k == YYSYMBOL_ELLIPSIS))
      continue;
    if(has_expr && starts_expr(k))
      continue;
    if(has_op && is_operator(k))
      continue;
    if(has_name && (k == YYSYMBOL_IDENT || k == YYSYMBOL_METHOD)) {
      expect_add(&e, "name");
      continue;
    }
    expect_add(&e, k == YYSYMBOL_LBRACKET ? "'['" : yysymbol_name(k));
  }
  if(e.n == 0 && n_ops > 0)
    expect_add(&e, "operator");

  const Loc *loc = yypcontext_location(ctx);
  yysymbol_kind_t la = yypcontext_token(ctx);
  if(la == YYSYMBOL_YYEOF) {
    diag_error(c, *loc, "expected %s, found end of file", expect_text(&e));
  } else {
    const Source *s = &c->files[loc->file];
    int len = loc->end - loc->start;
    const char *text = s->text + loc->start;
    const char *nl = memchr(text, '\n', (size_t)len);
    if(nl)
      len = (int)(nl - text);
    bool cut = len > 40;
    diag_error(c, *loc, "expected %s, found '%.*s%s'%s", expect_text(&e),
               cut ? 40 : len, text, cut ? "..." : "",
               sym_is(la, "':'") ? operator_key_hint(s, loc->start) : "");
  }

  /* A missing closer: point at the opener (Lua check_match). */
  Loc open;
  char ch = lex_innermost_open(&open);
  if(ch) {
    const char *closer = ch == '{' ? "'}'" : ch == '(' ? "')'" : "']'";
    bool want = false;
    for(int i = 0; i < n; i++)
      if(sym_is(exp[i], closer))
        want = true;
    bool at_end = la == YYSYMBOL_YYEOF || sym_is(la, "'}'") ||
                  sym_is(la, "')'") || sym_is(la, "']'");
    if(want && (at_end || n <= 2))
      diag_note(c, open, "to match this '%c'", ch);
  }
  return 0;
}

/* ------------------------------------------------------------ driver */

int parse_all(Compilation *c)
{
  for(int f = 0; f < c->n_files && !c->too_many; f++) {
    const Source *s = &c->files[f];
    yyscan_t scanner;
    if(rq_yylex_init_extra(c, &scanner) != 0) {
      diag_plain(c, "cannot initialise the scanner");
      return c->n_errors;
    }
    lex_begin(f);
    YY_BUFFER_STATE b = rq_yy_scan_bytes(s->text, (int)s->len, scanner);
    rq_yyparse(scanner, c);
    rq_yy_delete_buffer(b, scanner);
    rq_yylex_destroy(scanner);
  }
  return c->n_errors;
}
