/* rest/query.c in isolation: the query string of GET /<table> parsed into a
 * verso_query (verso__listq_parse) from hand-built requests, case by case
 * from tables: every operator and value type, select/order/limit/offset/
 * after, duplicates, hostile names and the limits of the config. Every
 * accepted query must be one the ORM runs, and the after= cursor must page
 * exactly through rows with NULLs, mixed storage classes and odd text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/internal.h"
#include "support/orm_support.h"

/* Every column type: i int64, d double, b bool, s text, u uuid, bl blob, a any. */
static const char k_schema[] = "CREATE TABLE t(id INTEGER PRIMARY KEY, i INTEGER, d REAL, "
                               "b BOOLEAN, s TEXT, u UUID TEXT, bl BLOB, a);";

static verso_db *g_db;
static const verso_table *g_t;
static verso_rest *g_srv; /* only its cfg.limits is read */

static int setup(void **state)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;

    (void)state;
    if (verso_db_open(&g_db, orm_tmp_path("unit_query"), &o, NULL, 0) < 0)
        return -1;
    if (verso_db_exec(g_db, k_schema) < 0 || verso_db_track(g_db, "t", NULL) < 0)
        return -1;
    g_t = verso_db_table(g_db, "t");
    g_srv = calloc(1, sizeof(*g_srv));
    if (!g_t || !g_srv)
        return -1;
    verso__limits_defaults(&g_srv->cfg.limits);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_srv);
    verso_db_close(g_db);
    return 0;
}

/* ---- a request from a query string, split at '&' and the first '=' ---- */

#define MAXP 64

typedef struct req {
    char text[4096];
    verso__param params[MAXP];
    verso__req rq;
    verso_buf body, location, link;
    verso__resp rs;
} req;

static void req_init(req *r, const char *qs)
{
    size_t n = 0;

    memset(r, 0, sizeof(*r));
    assert_true(strlen(qs) < sizeof(r->text));
    strcpy(r->text, qs);
    for (char *p = r->text, *amp; *p && n < MAXP; p = amp) {
        char *eq;
        amp = strchr(p, '&');
        if (amp)
            *amp++ = 0;
        else
            amp = p + strlen(p);
        eq = strchr(p, '=');
        if (eq)
            *eq++ = 0;
        r->params[n].key = p;
        r->params[n++].value = eq ? eq : "";
    }
    r->rq.srv = g_srv;
    r->rq.method = VERSO__GET;
    r->rq.path = "/t";
    r->rq.params = r->params;
    r->rq.nparams = n;
    r->rs.body = &r->body;
    r->rs.location = &r->location;
    r->rs.link = &r->link;
}

static void req_free(req *r)
{
    verso_buf_free(&r->body);
    verso_buf_free(&r->location);
    verso_buf_free(&r->link);
}

/* ---- the verso_query produced, as one line of text ---- */

static const char *const k_opname[] = {
    [VERSO_EQ] = "eq",           [VERSO_NEQ] = "neq",
    [VERSO_GT] = "gt",           [VERSO_GTE] = "gte",
    [VERSO_LT] = "lt",           [VERSO_LTE] = "lte",
    [VERSO_IN] = "in",           [VERSO_LIKE] = "like",
    [VERSO_IS_NULL] = "is null", [VERSO_IS_NOT_NULL] = "is notnull",
};

static void put_value(verso_buf *b, const verso_value *v)
{
    switch (v->type) {
    case VERSO_INT64:
        verso_buf_printf(b, "i:%lld", (long long)v->u.i);
        break;
    case VERSO_DOUBLE:
        verso_buf_printf(b, "d:%.17g", v->u.d);
        break;
    case VERSO_BOOL:
        verso_buf_printf(b, "b:%lld", (long long)v->u.i);
        break;
    case VERSO_TEXT:
    case VERSO_UUID:
        verso_buf_printf(b, "%s:'%.*s'", v->type == VERSO_TEXT ? "t" : "u", (int)v->u.b.n,
                         (const char *)v->u.b.p);
        break;
    case VERSO_NULL:
        verso_buf_puts(b, "null");
        break;
    default:
        verso_buf_printf(b, "type%d", (int)v->type);
    }
}

static void put_cond(verso_buf *b, const verso_cond *c)
{
    verso_buf_printf(b, "%s %s", c->column, k_opname[c->op]);
    if (c->op == VERSO_IN) {
        verso_buf_puts(b, " (");
        for (size_t k = 0; k < c->nlist; k++) {
            verso_buf_puts(b, k ? "," : "");
            put_value(b, &c->list[k]);
        }
        verso_buf_puts(b, ")");
    } else if (c->op != VERSO_IS_NULL && c->op != VERSO_IS_NOT_NULL) {
        verso_buf_puts(b, " ");
        put_value(b, &c->value);
    }
}

/* "where=[..] order=[..] cols=[..] limit=N offset=N after=N"; a result
 * column the client does not see is marked with '-'. */
static void render(verso_buf *b, const verso__listq *lq)
{
    const verso_query *q = verso__listq_query(lq);

    verso_buf_puts(b, "where=[");
    for (size_t i = 0; i < q->nconds; i++) {
        verso_buf_puts(b, i ? "; " : "");
        put_cond(b, &q->conds[i]);
    }
    verso_buf_puts(b, "] order=[");
    for (size_t i = 0; i < q->norder; i++)
        verso_buf_printf(b, "%s%s%s", i ? "," : "", q->order[i].column,
                         q->order[i].desc ? " desc" : "");
    verso_buf_puts(b, "] cols=[");
    if (!q->columns)
        verso_buf_puts(b, "*");
    for (size_t i = 0; q->columns && i < q->ncolumns; i++)
        verso_buf_printf(b, "%s%s%s", i ? "," : "", verso__listq_emit(lq, i) ? "" : "-",
                         q->columns[i]);
    verso_buf_printf(b, "] limit=%lld offset=%lld after=%zu", (long long)q->limit,
                     (long long)q->offset, q->nafter);
}

/* The ORM must run every query the grammar accepts. */
static void assert_runs(const verso__listq *lq, const char *qs)
{
    verso_iter *it = NULL;
    int rc = verso_query_open(&it, g_db, verso__listq_query(lq));

    if (rc < 0)
        fail_msg("%s: the ORM refused the parsed query: %s", qs, verso_db_errmsg(g_db));
    while ((rc = verso_iter_next(it)) == 1)
        ;
    assert_int_equal(rc, 0);
    verso_iter_close(it);
}

typedef struct ok_case {
    const char *qs;
    const char *want;
} ok_case;

#define D "order=[] cols=[*] limit=100 offset=0 after=0"

static const ok_case k_ok[] = {
    {"", "where=[] " D},
    /* every comparison on every scalar type */
    {"i=eq.5", "where=[i eq i:5] " D},
    {"i=neq.-5", "where=[i neq i:-5] " D},
    {"i=gt.9223372036854775807", "where=[i gt i:9223372036854775807] " D},
    {"i=gte.-9223372036854775808", "where=[i gte i:-9223372036854775808] " D},
    {"i=lt.0", "where=[i lt i:0] " D},
    {"i=lte.007", "where=[i lte i:7] " D},
    {"d=eq.1.5", "where=[d eq d:1.5] " D},
    {"d=gt.-2", "where=[d gt d:-2] " D},
    {"d=lt.1e300", "where=[d lt d:1.0000000000000001e+300] " D},
    {"d=neq.0.1", "where=[d neq d:0.10000000000000001] " D},
    {"d=eq.-.5", "where=[d eq d:-0.5] " D},
    {"d=eq.5.", "where=[d eq d:5] " D},
    {"d=eq.2E-3", "where=[d eq d:0.002] " D},
    {"d=eq.-0", "where=[d eq d:-0] " D},
    {"b=eq.true", "where=[b eq b:1] " D},
    {"b=eq.false", "where=[b eq b:0] " D},
    {"b=neq.1", "where=[b neq b:1] " D},
    {"b=eq.0", "where=[b eq b:0] " D},
    {"s=eq.hello", "where=[s eq t:'hello'] " D},
    {"s=eq.", "where=[s eq t:''] " D},
    {"s=eq.a.b.c", "where=[s eq t:'a.b.c'] " D},
    {"s=eq.a=b", "where=[s eq t:'a=b'] " D},
    {"s=gte.'; DROP TABLE t; --", "where=[s gte t:''; DROP TABLE t; --'] " D},
    {"s=eq.in.(1,2)", "where=[s eq t:'in.(1,2)'] " D},
    {"u=eq.0a1b2c3d-0000-4000-8000-000000000001",
     "where=[u eq u:'0a1b2c3d-0000-4000-8000-000000000001'] " D},
    /* an untyped column takes the narrowest reading */
    {"a=eq.5", "where=[a eq i:5] " D},
    {"a=eq.5.5", "where=[a eq d:5.5] " D},
    {"a=eq.five", "where=[a eq t:'five'] " D},
    {"a=eq.", "where=[a eq t:''] " D},
    {"a=eq.nan", "where=[a eq t:'nan'] " D},
    {"a=eq.-Infinity", "where=[a eq t:'-Infinity'] " D},
    {"a=eq.0x10", "where=[a eq t:'0x10'] " D},
    {"a=eq.-0X1p3", "where=[a eq t:'-0X1p3'] " D},
    {"a=eq. 5", "where=[a eq t:' 5'] " D},
    {"a=eq.+5", "where=[a eq t:'+5'] " D},
    {"a=eq.1e5", "where=[a eq d:100000] " D},
    {"a=eq.-.5", "where=[a eq d:-0.5] " D},
    {"a=eq.5.", "where=[a eq d:5] " D},
    /* in */
    {"i=in.(1,2,3)", "where=[i in (i:1,i:2,i:3)] " D},
    {"i=in.4", "where=[i in (i:4)] " D},
    {"i=in.4,5", "where=[i in (i:4,i:5)] " D},
    {"s=in.(x,y)", "where=[s in (t:'x',t:'y')] " D},
    {"a=in.(1,x,2.5)", "where=[a in (i:1,t:'x',d:2.5)] " D},
    {"b=in.(true,0)", "where=[b in (b:1,b:0)] " D},
    /* is */
    {"s=is.null", "where=[s is null] " D},
    {"s=is.notnull", "where=[s is notnull] " D},
    {"s=is.not.null", "where=[s is notnull] " D},
    {"bl=is.null", "where=[bl is null] " D},
    {"i=is.null", "where=[i is null] " D},
    /* like: '*' is '%' */
    {"s=like.ab*", "where=[s like t:'ab%'] " D},
    {"s=like.*a%b_", "where=[s like t:'%a%b_'] " D},
    {"u=like.0a1b*", "where=[u like t:'0a1b%'] " D},
    {"a=like.x*", "where=[a like t:'x%'] " D},
    /* several filters, the same column twice; names are case-insensitive */
    {"i=gt.1&i=lt.5&s=neq.x", "where=[i gt i:1; i lt i:5; s neq t:'x'] " D},
    {"I=eq.1&S=eq.x", "where=[i eq i:1; s eq t:'x'] " D},
    {"version=gt.3&id=lte.2", "where=[version gt i:3; id lte i:2] " D},
    /* order */
    {"order=d", "where=[] order=[d] cols=[*] limit=100 offset=0 after=0"},
    {"order=d.desc,i.asc,s", "where=[] order=[d desc,i,s] cols=[*] limit=100 offset=0 after=0"},
    {"order=d&order=i.desc", "where=[] order=[d,i desc] cols=[*] limit=100 offset=0 after=0"},
    {"order=S", "where=[] order=[s] cols=[*] limit=100 offset=0 after=0"},
    {"order=,,i,", "where=[] order=[i] cols=[*] limit=100 offset=0 after=0"},
    /* select; the keys of the order and the id are read but not shown */
    {"select=s,i", "where=[] order=[] cols=[s,i,-id] limit=100 offset=0 after=0"},
    {"select=id,s", "where=[] order=[] cols=[id,s] limit=100 offset=0 after=0"},
    {"select=s,s,S", "where=[] order=[] cols=[s,-id] limit=100 offset=0 after=0"},
    {"select=s&order=d.desc", "where=[] order=[d desc] cols=[s,-d,-id] limit=100 offset=0 after=0"},
    {"select=d&order=d", "where=[] order=[d] cols=[d,-id] limit=100 offset=0 after=0"},
    {"select=s&select=i", "where=[] order=[] cols=[s,i,-id] limit=100 offset=0 after=0"},
    {"select=bl", "where=[] order=[] cols=[bl,-id] limit=100 offset=0 after=0"},
    /* limit and offset */
    {"limit=1", "where=[] order=[] cols=[*] limit=1 offset=0 after=0"},
    {"limit=1000", "where=[] order=[] cols=[*] limit=1000 offset=0 after=0"},
    {"limit=1001", "where=[] order=[] cols=[*] limit=1000 offset=0 after=0"},
    {"limit=9223372036854775807", "where=[] order=[] cols=[*] limit=1000 offset=0 after=0"},
    {"offset=0", "where=[] order=[] cols=[*] limit=100 offset=0 after=0"},
    {"offset=10000", "where=[] order=[] cols=[*] limit=100 offset=10000 after=0"},
    /* cursors: [7], [null,1] */
    {"after=Wzdd", "where=[] order=[] cols=[*] limit=100 offset=0 after=1"},
    {"after=W251bGwsMV0&order=d", "where=[] order=[d] cols=[*] limit=100 offset=0 after=2"},
    /* everything at once */
    {"i=gte.2&d=lt.10&order=d.desc&select=id,s,d&limit=7",
     "where=[i gte i:2; d lt d:10] order=[d desc] cols=[id,s,d] limit=7 offset=0 after=0"},
};

static void test_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(k_ok) / sizeof(k_ok[0]); i++) {
        req r;
        verso__listq *lq = NULL;
        verso_buf got = VERSO_BUF_INIT;
        int rc;

        req_init(&r, k_ok[i].qs);
        rc = verso__listq_parse(&lq, &r.rq, g_t, &r.rs);
        if (rc < 0)
            fail_msg("\"%s\": refused (%d %s)", k_ok[i].qs, r.rs.status, r.rs.errmsg);
        assert_non_null(lq);
        render(&got, lq);
        if (strcmp(got.data, k_ok[i].want))
            fail_msg("\"%s\":\n  got  %s\n  want %s", k_ok[i].qs, got.data, k_ok[i].want);
        assert_int_equal(r.rs.status, 0);
        assert_int_equal(r.body.len, 0);
        assert_runs(lq, k_ok[i].qs);
        verso_buf_free(&got);
        verso__listq_free(lq);
        req_free(&r);
    }
}

typedef struct bad_case {
    const char *qs;
    const char *msg; /* the whole message */
} bad_case;

static const bad_case k_bad[] = {
    /* columns */
    {"zzz=eq.1", "unknown column \"zzz\": table t has id, i, d, b, s, u, bl, a, version"},
    {"id2=eq.1", "unknown column \"id2\": table t has id, i, d, b, s, u, bl, a, version"},
    {"bad;name=eq.1", "unknown column \"bad;name\": table t has id, i, d, b, s, u, bl, a, version"},
    {"=eq.1", "unknown column \"\": table t has id, i, d, b, s, u, bl, a, version"},
    {"s t=eq.1", "unknown column \"s t\": table t has id, i, d, b, s, u, bl, a, version"},
    {"\"s\"=eq.1", "unknown column \"\"s\"\": table t has id, i, d, b, s, u, bl, a, version"},
    {"s%00=eq.1", "unknown column \"s%00\": table t has id, i, d, b, s, u, bl, a, version"},
    {"\xc3\xa9=eq.1", "unknown column \"\xc3\xa9"
                      "\": table t has id, i, d, b, s, u, bl, a, version"},
    {"<script>=eq.1", "unknown column \"<script>\": table t has id, i, d, b, s, u, bl, a, version"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaa=eq.1",
     "unknown column \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
     "table t has id, i, d, b, s, u, bl, a, version"},
    /* operators */
    {"i=5", "a filter is COLUMN=OP.VALUE, e.g. i=eq.VALUE (operators: eq, neq, gt, gte, lt, lte, "
            "like, in, is)"},
    {"i=", "a filter is COLUMN=OP.VALUE, e.g. i=eq.VALUE (operators: eq, neq, gt, gte, lt, lte, "
           "like, in, is)"},
    {"i=eq", "a filter is COLUMN=OP.VALUE, e.g. i=eq.VALUE (operators: eq, neq, gt, gte, lt, lte, "
             "like, in, is)"},
    {"i=.5", "unknown filter operator \"\" for column i (operators: eq, neq, gt, gte, lt, lte, "
             "like, in, is)"},
    {"i=EQ.5", "unknown filter operator \"EQ\" for column i (operators: eq, neq, gt, gte, lt, lte, "
               "like, in, is)"},
    {"i=ne.5", "unknown filter operator \"ne\" for column i (operators: eq, neq, gt, gte, lt, lte, "
               "like, in, is)"},
    {"i=ilike.5", "unknown filter operator \"ilike\" for column i (operators: eq, neq, gt, gte, "
                  "lt, lte, like, in, is)"},
    {"i=not.eq.5", "unknown filter operator \"not\" for column i (operators: eq, neq, gt, gte, lt, "
                   "lte, like, in, is)"},
    {"i=eq .5", "unknown filter operator \"eq \" for column i (operators: eq, neq, gt, gte, lt, "
                "lte, like, in, is)"},
    /* typed values */
    {"i=eq.abc",
     "bad value \"abc\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.",
     "bad value \"\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.1.5",
     "bad value \"1.5\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq. 5",
     "bad value \" 5\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.5 ",
     "bad value \"5 \" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.+5",
     "bad value \"+5\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.0x10",
     "bad value \"0x10\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.9223372036854775808", "bad value \"9223372036854775808\" for column i: expected an "
                                 "integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.-9223372036854775809", "bad value \"-9223372036854775809\" for column i: expected an "
                                  "integer (int64, decimal digits, e.g. 42 or -7)"},
    {"i=eq.1e3",
     "bad value \"1e3\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"d=eq.abc",
     "bad value \"abc\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.",
     "bad value \"\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.nan",
     "bad value \"nan\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.inf",
     "bad value \"inf\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.-Infinity", "bad value \"-Infinity\" for column d: expected a finite decimal number "
                       "(e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.1e999",
     "bad value \"1e999\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.1.5x",
     "bad value \"1.5x\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq. 1.5",
     "bad value \" 1.5\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.\t1.5",
     "bad value \"?1.5\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.+1.5",
     "bad value \"+1.5\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.0x10",
     "bad value \"0x10\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.-0x1p3",
     "bad value \"-0x1p3\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.-",
     "bad value \"-\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"d=eq.e5",
     "bad value \"e5\" for column d: expected a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {"b=eq.yes", "bad value \"yes\" for column b: expected a boolean: true, false, 1 or 0"},
    {"b=eq.TRUE", "bad value \"TRUE\" for column b: expected a boolean: true, false, 1 or 0"},
    {"b=eq.2", "bad value \"2\" for column b: expected a boolean: true, false, 1 or 0"},
    {"b=eq.", "bad value \"\" for column b: expected a boolean: true, false, 1 or 0"},
    {"bl=eq.x", "bad value \"x\" for column bl: expected nothing: a blob column cannot be compared "
                "in a filter"},
    {"bl=gt.", "bad value \"\" for column bl: expected nothing: a blob column cannot be compared "
               "in a filter"},
    /* is */
    {"s=is.nul", "bad value \"nul\" for is on column s: write s=is.null or s=is.notnull"},
    {"s=is.", "bad value \"\" for is on column s: write s=is.null or s=is.notnull"},
    {"s=is.NULL", "bad value \"NULL\" for is on column s: write s=is.null or s=is.notnull"},
    {"s=is.true", "bad value \"true\" for is on column s: write s=is.null or s=is.notnull"},
    {"s=is.not.notnull",
     "bad value \"not.notnull\" for is on column s: write s=is.null or s=is.notnull"},
    /* like */
    {"i=like.1*", "like compares text: column i is int64 (use eq, lt, gt, in)"},
    {"d=like.1*", "like compares text: column d is double (use eq, lt, gt, in)"},
    {"b=like.1", "like compares text: column b is bool (use eq, lt, gt, in)"},
    {"bl=like.x", "like compares text: column bl is blob (use eq, lt, gt, in)"},
    /* in */
    {"i=in.()", "empty in list for column: i"},
    {"i=in.", "empty in list for column: i"},
    {"i=in.(,,)", "empty in list for column: i"},
    {"i=in.(1,x)", "bad value \"x\" in the in list for column i: expected an integer (int64, "
                   "decimal digits, e.g. 42 or -7)"},
    {"i=in.(1,2", "unbalanced parentheses in list for column: i"},
    {"i=in.1,2)", "unbalanced parentheses in list for column: i"},
    {"s=in.(a,b", "unbalanced parentheses in list for column: s"},
    {"s=in.a)", "unbalanced parentheses in list for column: s"},
    {"s=in.(", "unbalanced parentheses in list for column: s"},
    {"i=in.((1))", "bad value \"(1)\" in the in list for column i: expected an integer (int64, "
                   "decimal digits, e.g. 42 or -7)"},
    {"bl=in.(x)", "bad value \"x\" in the in list for column bl: expected nothing: a blob column "
                  "cannot be compared in a filter"},
    {"d=in.(1,nan)", "bad value \"nan\" in the in list for column d: expected a finite decimal "
                     "number (e.g. 1.5, -2 or 2e-3)"},
    /* order */
    {"order=zzz",
     "unknown column \"zzz\" in order=: table t has id, i, d, b, s, u, bl, a, version"},
    {"order=i,zzz",
     "unknown column \"zzz\" in order=: table t has id, i, d, b, s, u, bl, a, version"},
    {"order=i.up", "order terms are col, col.asc or col.desc"},
    {"order=i.DESC", "order terms are col, col.asc or col.desc"},
    {"order=i.desc.x", "order terms are col, col.asc or col.desc"},
    {"order=i.", "order terms are col, col.asc or col.desc"},
    {"order=.desc", "unknown column \"\" in order=: table t has id, i, d, b, s, u, bl, a, version"},
    {"order=bl", "cannot order by a blob column: bl"},
    {"order=i;drop",
     "unknown column \"i;drop\" in order=: table t has id, i, d, b, s, u, bl, a, version"},
    {"order=i,d,s,b,u,a,id,i,d", "too many order terms"},
    {"order=i,d,s,b&order=u,a,id,i,d", "too many order terms"},
    /* select */
    {"select=zzz",
     "unknown column \"zzz\" in select=: table t has id, i, d, b, s, u, bl, a, version"},
    {"select=s,zzz",
     "unknown column \"zzz\" in select=: table t has id, i, d, b, s, u, bl, a, version"},
    {"select=*", "unknown column \"*\" in select=: table t has id, i, d, b, s, u, bl, a, version"},
    {"select=", "empty select"},
    {"select=,,", "empty select"},
    /* limit, offset, after */
    {"limit=0", "limit must be a positive integer"},
    {"limit=-1", "limit must be a positive integer"},
    {"limit=", "limit must be a positive integer"},
    {"limit=ten", "limit must be a positive integer"},
    {"limit=1.5", "limit must be a positive integer"},
    {"limit=99999999999999999999", "limit must be a positive integer"},
    {"offset=-1", "offset must be an integer between 0 and the configured maximum"},
    {"offset=10001", "offset must be an integer between 0 and the configured maximum"},
    {"offset=", "offset must be an integer between 0 and the configured maximum"},
    {"offset=x", "offset must be an integer between 0 and the configured maximum"},
    {"offset=1&after=WzFd", "after and offset cannot be combined"},
    {"after=", "bad after cursor (it belongs to the same query)"},
    {"after=!!!!", "bad after cursor (it belongs to the same query)"},
    {"after=W", "bad after cursor (it belongs to the same query)"},
    {"after=WzFd=", "bad after cursor (it belongs to the same query)"},
    {"after=bm90IGpzb24", "bad after cursor (it belongs to the same query)"}, /* not json */
    {"after=e30", "bad after cursor (it belongs to the same query)"},         /* {} */
    {"after=W10", "bad after cursor (it belongs to the same query)"},         /* [] */
    {"after=WzEsMl0", "bad after cursor (it belongs to the same query)"},     /* [1,2] */
    {"after=WyJ4Il0", "bad after cursor (it belongs to the same query)"},     /* ["x"] */
    {"after=W251bGxd", "bad after cursor (it belongs to the same query)"},    /* [null] */
    /* only the server's own spelling of a cursor (fuzz_cursor) */
    {"after=W3siaW50ZWdlciI6N31d", "bad after cursor (it belongs to the same query)"}, /* tagged */
    {"after=WyA3XQ", "bad after cursor (it belongs to the same query)"},               /* [ 7] */
    {"after=WzEwXR", "bad after cursor (it belongs to the same query)"},  /* [10], stray bits */
    {"after=WzEuNV0", "bad after cursor (it belongs to the same query)"}, /* [1.5] */
    {"after=W3sicmVhbCI6MX1d", "bad after cursor (it belongs to the same query)"},    /* real */
    {"after=W3sidGV4dCI6IjEifV0", "bad after cursor (it belongs to the same query)"}, /* text */
    {"after=W3RydWVd", "bad after cursor (it belongs to the same query)"},            /* [true] */
    {"after=WyIxIl0", "bad after cursor (it belongs to the same query)"},             /* ["1"] */
    {"after=WzFlNDAwLDFd&order=d", "bad after cursor (it belongs to the same query)"},
    {"after=WzFd&order=i", "bad after cursor (it belongs to the same query)"}, /* [1] */
    {"after=W1tbWzFdXV1d", "bad after cursor (it belongs to the same query)"}, /* [[[[1]]]] */
    /* the first error wins, in parameter order */
    {"zzz=eq.1&i=eq.x", "unknown column \"zzz\": table t has id, i, d, b, s, u, bl, a, version"},
    {"i=eq.x&zzz=eq.1",
     "bad value \"x\" for column i: expected an integer (int64, decimal digits, e.g. 42 or -7)"},
    {"limit=0&zzz=eq.1", "unknown column \"zzz\": table t has id, i, d, b, s, u, bl, a, version"},
};

static void test_refused(void **state)
{
    verso_buf wantj = VERSO_BUF_INIT;

    (void)state;
    for (size_t i = 0; i < sizeof(k_bad) / sizeof(k_bad[0]); i++) {
        req r;
        verso__listq *lq = (verso__listq *)&r; /* must be reset */
        int rc;

        req_init(&r, k_bad[i].qs);
        rc = verso__listq_parse(&lq, &r.rq, g_t, &r.rs);
        if (rc >= 0)
            fail_msg("\"%s\": accepted", k_bad[i].qs);
        assert_int_equal(rc, VERSO_EINVAL);
        assert_null(lq);
        assert_int_equal(r.rs.status, 400);
        if (strcmp(r.rs.errmsg, k_bad[i].msg))
            fail_msg("\"%s\":\n  got  %s\n  want %s", k_bad[i].qs, r.rs.errmsg, k_bad[i].msg);
        verso_buf_clear(&wantj);
        verso_buf_puts(&wantj, "{\"error\":{\"code\":\"bad_request\",\"message\":");
        verso_json_string(&wantj, k_bad[i].msg, strlen(k_bad[i].msg));
        verso_buf_puts(&wantj, "}}");
        assert_string_equal(r.body.data, wantj.data);
        req_free(&r);
    }
    verso_buf_free(&wantj);
}

/* A name that does not fit the message is cut, and never breaks the JSON. */
static void test_error_json_stays_valid(void **state)
{
    static const char *const qs[] = {"order=\x01", "order=\"\\", "select=\xff\xfe"};

    (void)state;
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        req r;
        verso__listq *lq = NULL;
        verso_json *doc = NULL;

        req_init(&r, qs[i]);
        assert_int_equal(verso__listq_parse(&lq, &r.rq, g_t, &r.rs), VERSO_EINVAL);
        assert_int_equal(verso_json_parse(&doc, r.body.data, r.body.len, 8, NULL, 0), 0);
        assert_null(strchr(r.rs.errmsg, '\x01'));
        assert_true(verso__utf8_valid(r.rs.errmsg, strlen(r.rs.errmsg)));
        verso_json_free(doc);
        req_free(&r);
    }
}

/* The limits come from the server's config, whatever it holds. */
static void test_limits_from_config(void **state)
{
    static const struct {
        int default_limit, max_limit, max_filters;
        int64_t max_offset;
        const char *qs;
        int status;
        const char *want; /* rendering, or the error message */
    } cases[] = {
        {7, 20, 2, 50, "", 0, "where=[] order=[] cols=[*] limit=7 offset=0 after=0"},
        {7, 20, 2, 50, "limit=20", 0, "where=[] order=[] cols=[*] limit=20 offset=0 after=0"},
        {7, 20, 2, 50, "limit=21", 0, "where=[] order=[] cols=[*] limit=20 offset=0 after=0"},
        {7, 20, 2, 50, "offset=50", 0, "where=[] order=[] cols=[*] limit=7 offset=50 after=0"},
        {7, 20, 2, 50, "offset=51", 400,
         "offset must be an integer between 0 and the configured maximum"},
        {7, 20, 2, 50, "i=eq.1&s=eq.x", 0,
         "where=[i eq i:1; s eq t:'x'] order=[] cols=[*] limit=7 offset=0 after=0"},
        {7, 20, 2, 50, "i=eq.1&s=eq.x&d=eq.1", 400, "too many filters"},
        /* unknown columns count as filters: the count comes first */
        {7, 20, 2, 50, "i=eq.1&i=eq.2&zzz=eq.3", 400, "too many filters"},
        /* reserved keys are not filters */
        {7, 20, 2, 50, "i=eq.1&s=eq.x&limit=3&order=i&select=i&offset=1", 0,
         "where=[i eq i:1; s eq t:'x'] order=[i] cols=[i,-id] limit=3 offset=1 after=0"},
        {1, 1, 1, 1, "limit=1000&offset=1", 0,
         "where=[] order=[] cols=[*] limit=1 offset=1 after=0"},
        /* a default above the maximum is lowered to it */
        {500, 10, 32, 0, "", 0, "where=[] order=[] cols=[*] limit=10 offset=0 after=0"},
    };
    verso_rest_limits saved = g_srv->cfg.limits;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req r;
        verso__listq *lq = NULL;
        verso_buf got = VERSO_BUF_INIT;
        verso_rest_limits *l = &g_srv->cfg.limits;
        int rc;

        *l = saved;
        l->default_limit = cases[i].default_limit;
        l->max_limit = cases[i].max_limit;
        l->max_filters = cases[i].max_filters;
        l->max_offset = cases[i].max_offset;
        req_init(&r, cases[i].qs);
        rc = verso__listq_parse(&lq, &r.rq, g_t, &r.rs);
        if (cases[i].status) {
            assert_int_equal(rc, VERSO_EINVAL);
            assert_int_equal(r.rs.status, cases[i].status);
            assert_string_equal(r.rs.errmsg, cases[i].want);
        } else {
            if (rc < 0)
                fail_msg("case %zu \"%s\": %s", i, cases[i].qs, r.rs.errmsg);
            render(&got, lq);
            if (strcmp(got.data, cases[i].want))
                fail_msg("case %zu \"%s\":\n  got  %s\n  want %s", i, cases[i].qs, got.data,
                         cases[i].want);
        }
        verso_buf_free(&got);
        verso__listq_free(lq);
        req_free(&r);
    }
    g_srv->cfg.limits = saved;
}

/* Exactly max-filters filters pass; one more is refused, for every maximum. */
static void test_filter_count_boundary(void **state)
{
    verso_rest_limits saved = g_srv->cfg.limits;

    (void)state;
    for (int max = 1; max <= 40; max++) {
        for (int n = max; n <= max + 1; n++) {
            char qs[1024] = "";
            req r;
            verso__listq *lq = NULL;
            int rc;

            g_srv->cfg.limits.max_filters = max;
            for (int k = 0; k < n; k++)
                snprintf(qs + strlen(qs), sizeof(qs) - strlen(qs), "%si=neq.%d", k ? "&" : "", k);
            req_init(&r, qs);
            rc = verso__listq_parse(&lq, &r.rq, g_t, &r.rs);
            if (n == max) {
                assert_int_equal(rc, 0);
                assert_int_equal(verso__listq_query(lq)->nconds, (size_t)n);
                assert_runs(lq, qs);
            } else {
                assert_int_equal(rc, VERSO_EINVAL);
                assert_string_equal(r.rs.errmsg, "too many filters");
            }
            verso__listq_free(lq);
            req_free(&r);
        }
    }
    g_srv->cfg.limits = saved;
}

/* ---- the after= cursor pages exactly ---- */

static const char *const k_rows[] = {
    "INSERT INTO t(i, d, b, s, u, bl, a) VALUES"
    "(1, 1.5, 1, 'a', '00000000-0000-4000-8000-000000000001', x'00', 1),"
    "(1, 1.5, 0, 'a', NULL, NULL, 1.5),"
    "(NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    "(NULL, -0.0, 1, '', NULL, x'', 'text'),"
    "(-9223372036854775808, -1e308, 0, 'zz', NULL, NULL, x'ff00'),"
    "(9223372036854775807, 1e308, 1, 'z' || char(0) || 'z', NULL, NULL, -7),"
    "(2, 0.1, 1, '\xc3\xa9t\xc3\xa9', NULL, NULL, ''),"
    "(2, 0.30000000000000004, 0, 'a\"b\\\\c', NULL, NULL, 'a'),"
    "(3, 2.5, 1, '\xf0\x9f\x98\x80', NULL, NULL, 2),"
    "(3, 2.5, 1, 'a', NULL, NULL, 2.0),"
    "(NULL, 7, 0, NULL, NULL, NULL, NULL),"
    "(5, 5, 1, 'x', NULL, NULL, 5);",
    /* text in numeric columns keeps its storage class */
    "INSERT INTO t(i, d, s, a) VALUES ('abc', 'def', 'q', 'abc'), ('5x', '1.5y', 'q', '5');",
    /* a text that is not UTF-8 */
    "INSERT INTO t(s, a) VALUES (CAST(x'ff' AS TEXT), CAST(x'c3' AS TEXT));",
};

/* The ids in the order of a query, read with verso__listq_parse(qs). */
static size_t list_ids(int64_t *ids, size_t max, const char *qs, int limit, int *pages)
{
    char cursor[2048] = "";
    size_t n = 0;

    *pages = 0;
    for (;;) {
        char full[4096];
        req r;
        verso__listq *lq = NULL;
        verso_iter *it = NULL;
        int64_t got = 0;
        int rc, id_col;

        snprintf(full, sizeof(full), "%s&limit=%d%s%s", qs, limit, cursor[0] ? "&after=" : "",
                 cursor);
        req_init(&r, full);
        if (verso__listq_parse(&lq, &r.rq, g_t, &r.rs) < 0)
            fail_msg("%s: %s", full, r.rs.errmsg);
        assert_int_equal(verso_query_open(&it, g_db, verso__listq_query(lq)), 0);
        id_col = -1;
        for (size_t c = 0; c < verso_iter_ncolumns(it); c++)
            if (!strcmp(verso_iter_column_name(it, c), "id"))
                id_col = (int)c;
        assert_true(id_col >= 0);
        verso_buf_clear(&r.link);
        while ((rc = verso_iter_next(it)) == 1) {
            verso_value v;
            assert_int_equal(verso_iter_value(&v, it, (size_t)id_col), 0);
            assert_true(n < max);
            ids[n++] = v.u.i;
            got++;
            verso_buf_clear(&r.link);
            assert_int_equal(verso__listq_cursor(&r.link, lq, it), 0);
        }
        assert_int_equal(rc, 0);
        assert_true(got <= limit);
        (*pages)++;
        verso_iter_close(it);
        verso__listq_free(lq);
        if (got < limit || !r.link.len) {
            req_free(&r);
            return n;
        }
        assert_true(r.link.len < sizeof(cursor));
        /* base64url without padding: nothing the query string must escape */
        assert_int_equal(strspn(r.link.data, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                             "0123456789-_"),
                         r.link.len);
        memcpy(cursor, r.link.data, r.link.len + 1);
        req_free(&r);
    }
}

static void test_cursor_pages_exactly(void **state)
{
    static const char *const orders[] = {
        "order=id",
        "order=i",
        "order=i.desc",
        "order=d",
        "order=d.desc",
        "order=s",
        "order=s.desc",
        "order=a",
        "order=a.desc",
        "order=b,i.desc",
        "order=i,d,s",
        "order=s.desc,a",
        "order=u,b.desc",
        "order=a,s.desc,i",
        "order=id.desc",
        "select=s&order=d",
        "select=bl&order=a.desc,i",
        "i=is.notnull&order=i.desc",
        "s=like.*a*&order=s,d.desc",
    };
    int64_t all[64], paged[64];

    (void)state;
    assert_int_equal(verso_db_begin(g_db), 0);
    for (size_t i = 0; i < sizeof(k_rows) / sizeof(k_rows[0]); i++)
        if (verso_db_exec(g_db, k_rows[i]) < 0)
            fail_msg("%s", verso_db_errmsg(g_db));
    assert_int_equal(verso_db_commit(g_db), 0);
    for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
        int pages;
        size_t nall = list_ids(all, 64, orders[o], 1000, &pages);

        assert_int_equal(pages, 1);
        assert_true(nall > 0);
        for (int limit = 1; limit <= (int)nall + 1; limit++) {
            size_t n = list_ids(paged, 64, orders[o], limit, &pages);
            if (n != nall || memcmp(paged, all, n * sizeof(*all)))
                fail_msg("%s, limit %d: %zu rows in %d pages, %zu in one", orders[o], limit, n,
                         pages, nall);
            assert_true(pages >= (int)(nall / (size_t)limit));
        }
    }
    assert_int_equal(verso_db_exec(g_db, "DELETE FROM t"), 0);
}

/* The Link header's query string: everything but after= and offset=, encoded. */
static void test_query_string_without_cursor(void **state)
{
    static const struct {
        const char *qs, *want;
    } cases[] = {
        {"", ""},
        {"limit=2&after=abc", "limit=2"},
        {"after=abc&offset=3&limit=2", "limit=2"},
        {"s=eq.a b&order=i.desc", "s=eq.a%20b&order=i.desc"},
        {"s=in.(x,y)&select=s,i", "s=in.(x,y)&select=s,i"},
        {"s=eq.a&b", "s=eq.a&b="},
        {"s=like.*%25&x=\xc3\xa9", "s=like.%2A%2525&x=%C3%A9"},
        {"k%3D=v=w", "k%253D=v%3Dw"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req r;
        verso_buf b = VERSO_BUF_INIT;

        req_init(&r, cases[i].qs);
        assert_int_equal(verso__query_string_without_cursor(&b, &r.rq), 0);
        if (strcmp(b.data ? b.data : "", cases[i].want))
            fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].qs, b.data ? b.data : "",
                     cases[i].want);
        verso_buf_free(&b);
        req_free(&r);
    }
}

/* verso__parse_i64: a whole decimal int64, nothing else. */
static void test_parse_i64(void **state)
{
    static const struct {
        const char *s;
        int rc;
        int64_t v;
    } cases[] = {
        {"0", 0, 0},
        {"-0", 0, 0},
        {"42", 0, 42},
        {"-42", 0, -42},
        {"0042", 0, 42},
        {"9223372036854775807", 0, INT64_MAX},
        {"-9223372036854775808", 0, INT64_MIN},
        {"9223372036854775808", VERSO_EINVAL, 0},
        {"-9223372036854775809", VERSO_EINVAL, 0},
        {"", VERSO_EINVAL, 0},
        {"-", VERSO_EINVAL, 0},
        {"+1", VERSO_EINVAL, 0},
        {" 1", VERSO_EINVAL, 0},
        {"1 ", VERSO_EINVAL, 0},
        {"1x", VERSO_EINVAL, 0},
        {"0x1", VERSO_EINVAL, 0},
        {"1e2", VERSO_EINVAL, 0},
        {"--1", VERSO_EINVAL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = 12345;
        int rc = verso__parse_i64(&v, cases[i].s);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].s, rc, cases[i].rc);
        assert_int_equal(v, cases[i].rc ? 12345 : cases[i].v);
    }
    assert_int_equal(verso__parse_i64(&(int64_t){0}, NULL), VERSO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_error_json_stays_valid),
        cmocka_unit_test(test_limits_from_config),
        cmocka_unit_test(test_filter_count_boundary),
        cmocka_unit_test(test_cursor_pages_exactly),
        cmocka_unit_test(test_query_string_without_cursor),
        cmocka_unit_test(test_parse_i64),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
