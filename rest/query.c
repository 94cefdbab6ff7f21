/* rest/query.c - the query string of GET /<table>: filters `col=op.value`,
 * select=, order=, limit=, offset= and the opaque keyset cursor after=.
 * Every column name is checked against the table; every value is typed by
 * its column and bound by the ORM, never printed into SQL. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rest/internal.h"

#define MAX_ORDER 8

struct verso__listq {
    verso_query q;
    verso_cond *conds;
    verso_value *lists;
    size_t nlists;
    verso_order order[MAX_ORDER];
    const char **cols; /* result columns when select= is given */
    bool *emit;
    size_t ncols;
    size_t nemit;
    int key_index[MAX_ORDER + 1]; /* result column of each order term, then id */
    verso_type key_type[MAX_ORDER + 1];
    const verso_column *key_col[MAX_ORDER + 1];
    verso_value after[MAX_ORDER + 1];
    void *after_store[MAX_ORDER + 1]; /* decoded blobs of after */
    verso_json *after_doc;
    char *arena; /* copies of parameter values we rewrite */
    size_t arena_used;
};

typedef struct op_name {
    const char *name;
    verso_cmp cmp;
} op_name;

static const op_name k_ops[] = {
    {"eq", VERSO_EQ},   {"neq", VERSO_NEQ},   {"gt", VERSO_GT},
    {"gte", VERSO_GTE}, {"lt", VERSO_LT},     {"lte", VERSO_LTE},
    {"in", VERSO_IN},   {"like", VERSO_LIKE}, {"is", VERSO_IS_NULL},
};

static const char *const k_reserved[] = {"select", "order", "limit", "offset", "after"};

/* The after= cursor is base64url without padding. */
static int b64url_encode(verso_buf *b, const void *data, size_t n);
static int b64url_decode(verso_buf *b, const char *s, size_t n);

const char *verso__param_get(const verso__req *rq, const char *key)
{
    for (size_t i = 0; i < rq->nparams; i++)
        if (!strcmp(rq->params[i].key, key))
            return rq->params[i].value;
    return NULL;
}

int verso__parse_i64(int64_t *out, const char *s)
{
    char *end = NULL;
    long long v;

    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return VERSO_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return VERSO_EINVAL;
    *out = v;
    return 0;
}

static bool is_reserved(const char *key)
{
    for (size_t i = 0; i < sizeof(k_reserved) / sizeof(k_reserved[0]); i++)
        if (!strcmp(k_reserved[i], key))
            return true;
    return false;
}

static char *arena_dup(verso__listq *lq, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lq->arena + lq->arena_used;

    memcpy(p, s, n);
    lq->arena_used += n;
    return p;
}

/* Decimal notation only, like integers: strtod alone also takes leading
 * blanks, '+' and hexadecimal, and an untyped column would then compare the
 * text "0x10" as the number 16. */
static int parse_double(double *out, const char *s)
{
    const char *digits = s + (*s == '-');
    char *end = NULL;

    if (!*digits || !strchr("0123456789.", *digits) ||
        (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')))
        return VERSO_EINVAL;
    errno = 0;
    *out = strtod(s, &end);
    return errno || *end || !isfinite(*out) ? VERSO_EINVAL : 0;
}

/* Types a filter value by its column. */
static int typed_value(verso_value *v, const verso_column *c, const char *s)
{
    switch (c->type) {
    case VERSO_INT64:
        v->type = VERSO_INT64;
        return verso__parse_i64(&v->u.i, s);
    case VERSO_DOUBLE:
        v->type = VERSO_DOUBLE;
        return parse_double(&v->u.d, s);
    case VERSO_BOOL:
        *v = VERSO_VALUE_BOOL(!strcmp(s, "true") || !strcmp(s, "1"));
        return strcmp(s, "true") && strcmp(s, "false") && strcmp(s, "1") && strcmp(s, "0")
                   ? VERSO_EINVAL
                   : 0;
    case VERSO_TEXT:
    case VERSO_UUID:
        *v = VERSO_VALUE_TEXT(s);
        v->type = c->type;
        return 0;
    case VERSO_ANY:
        if (verso__parse_i64(&v->u.i, s) == 0)
            v->type = VERSO_INT64;
        else if (parse_double(&v->u.d, s) == 0)
            v->type = VERSO_DOUBLE;
        else
            *v = VERSO_VALUE_TEXT(s);
        return 0;
    default:
        return VERSO_EINVAL;
    }
}

static int bad(verso__resp *rs, const char *what, const char *name)
{
    verso__error(rs, 400, "%s%s%s", what, name ? ": " : "", name ? name : "");
    return VERSO_EINVAL;
}

static const char k_op_list[] = "eq, neq, gt, gte, lt, lte, like, in, is";

/* Names the unknown column (quoted, bounded) and lists the table's columns. */
static int bad_column(verso__resp *rs, const verso_table *t, const char *name, const char *where)
{
    char quoted[80], list[240];

    verso__columns_list(list, sizeof(list), t);
    verso__error(rs, 400, "unknown column \"%s\"%s: table %s has %s",
                 verso__rest_quote(quoted, sizeof(quoted), name, 64), where, verso_table_name(t),
                 list);
    return VERSO_EINVAL;
}

static int bad_value(verso__resp *rs, const verso_column *c, const char *value, const char *where)
{
    char quoted[80];

    verso__error(rs, 400, "bad value \"%s\"%s for column %s: expected %s",
                 verso__rest_quote(quoted, sizeof(quoted), value, 64), where, c->name,
                 verso__type_expect(c->type));
    return VERSO_EINVAL;
}

/* `in.(a,b,c)` or `in.a,b,c`: the list is split in the arena. */
static int parse_in(verso__listq *lq, verso_cond *cd, const verso_column *c, char *s,
                    verso__resp *rs)
{
    size_t len = strlen(s);

    if (len >= 2 && s[0] == '(' && s[len - 1] == ')') {
        s[len - 1] = 0;
        s++;
    } else if (len && (s[0] == '(' || s[len - 1] == ')')) {
        return bad(rs, "unbalanced parentheses in list for column", c->name);
    }
    cd->list = lq->lists + lq->nlists;
    for (char *save = NULL, *p = strtok_r(s, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (typed_value(&lq->lists[lq->nlists], c, p) < 0)
            return bad_value(rs, c, p, " in the in list");
        lq->nlists++;
        cd->nlist++;
    }
    return cd->nlist ? 0 : bad(rs, "empty in list for column", c->name);
}

static int parse_is(verso_cond *cd, const char *v)
{
    if (!strcmp(v, "null"))
        cd->op = VERSO_IS_NULL;
    else if (!strcmp(v, "notnull") || !strcmp(v, "not.null"))
        cd->op = VERSO_IS_NOT_NULL;
    else
        return VERSO_EINVAL;
    return 0;
}

static int bad_is(verso__resp *rs, const verso_column *c, const char *value)
{
    char quoted[48];

    verso__error(rs, 400, "bad value \"%s\" for is on column %s: write %s=is.null or %s=is.notnull",
                 verso__rest_quote(quoted, sizeof(quoted), value, 32), c->name, c->name, c->name);
    return VERSO_EINVAL;
}

static int parse_filter(verso__listq *lq, const verso_table *t, const verso__param *p,
                        verso__resp *rs)
{
    int ci = verso_table_column_index(t, p->key);
    verso_cond *cd = &lq->conds[lq->q.nconds];
    const verso_column *c;
    char *v, *dot;
    size_t k;

    if (ci < 0)
        return bad_column(rs, t, p->key, "");
    c = verso_table_column_at(t, (size_t)ci);
    v = arena_dup(lq, p->value);
    if (!(dot = strchr(v, '.'))) {
        verso__error(rs, 400, "a filter is COLUMN=OP.VALUE, e.g. %s=eq.VALUE (operators: %s)",
                     c->name, k_op_list);
        return VERSO_EINVAL;
    }
    *dot++ = 0;
    for (k = 0; k < sizeof(k_ops) / sizeof(k_ops[0]) && strcmp(k_ops[k].name, v); k++)
        ;
    if (k == sizeof(k_ops) / sizeof(k_ops[0])) {
        char quoted[48];
        verso__error(rs, 400, "unknown filter operator \"%s\" for column %s (operators: %s)",
                     verso__rest_quote(quoted, sizeof(quoted), v, 32), c->name, k_op_list);
        return VERSO_EINVAL;
    }
    cd->column = c->name;
    cd->op = k_ops[k].cmp;
    lq->q.nconds++;
    if (cd->op == VERSO_IS_NULL)
        return parse_is(cd, dot) < 0 ? bad_is(rs, c, dot) : 0;
    if (cd->op == VERSO_IN)
        return parse_in(lq, cd, c, dot, rs);
    if (cd->op == VERSO_LIKE) {
        if (c->type != VERSO_TEXT && c->type != VERSO_ANY && c->type != VERSO_UUID) {
            verso__error(rs, 400, "like compares text: column %s is %s (use eq, lt, gt, in)",
                         c->name, verso_type_name(c->type));
            return VERSO_EINVAL;
        }
        for (char *s = dot; *s; s++)
            *s = *s == '*' ? '%' : *s;
        cd->value = VERSO_VALUE_TEXT(dot);
        return 0;
    }
    return typed_value(&cd->value, c, dot) < 0 ? bad_value(rs, c, dot, "") : 0;
}

static int parse_order(verso__listq *lq, const verso_table *t, const char *spec, verso__resp *rs)
{
    char *s = arena_dup(lq, spec);

    for (char *save = NULL, *p = strtok_r(s, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char *dot = strchr(p, '.');
        int ci;
        bool desc = false;
        if (dot) {
            *dot++ = 0;
            if (strcmp(dot, "asc") && strcmp(dot, "desc"))
                return bad(rs, "order terms are col, col.asc or col.desc", NULL);
            desc = !strcmp(dot, "desc");
        }
        if ((ci = verso_table_column_index(t, p)) < 0)
            return bad_column(rs, t, p, " in order=");
        if (verso_table_column_at(t, (size_t)ci)->type == VERSO_BLOB)
            return bad(rs, "cannot order by a blob column",
                       verso_table_column_at(t, (size_t)ci)->name);
        if (lq->q.norder == MAX_ORDER)
            return bad(rs, "too many order terms", NULL);
        lq->order[lq->q.norder++] = (verso_order){verso_table_column_at(t, (size_t)ci)->name, desc};
    }
    return 0;
}

static int add_result_column(verso__listq *lq, const char *name, bool emit)
{
    for (size_t i = 0; i < lq->ncols; i++)
        if (!strcmp(lq->cols[i], name)) {
            lq->emit[i] = lq->emit[i] || emit;
            return (int)i;
        }
    lq->cols[lq->ncols] = name;
    lq->emit[lq->ncols] = emit;
    return (int)lq->ncols++;
}

static int parse_select(verso__listq *lq, const verso_table *t, const char *spec, verso__resp *rs)
{
    char *s = arena_dup(lq, spec);

    for (char *save = NULL, *p = strtok_r(s, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int ci = verso_table_column_index(t, p);
        if (ci < 0)
            return bad_column(rs, t, p, " in select=");
        if (lq->ncols == verso_table_ncolumns(t) + MAX_ORDER + 1)
            return bad(rs, "too many select terms", NULL);
        add_result_column(lq, verso_table_column_at(t, (size_t)ci)->name, true);
    }
    return lq->ncols ? 0 : bad(rs, "empty select", NULL);
}

/* Where each keyset value (order columns, then id) sits in the result row. */
static void locate_keys(verso__listq *lq, const verso_table *t)
{
    const verso_column *idc = verso_table_column_at(t, (size_t)verso_table_id_index(t));

    for (size_t i = 0; i <= lq->q.norder; i++) {
        const char *name = i < lq->q.norder ? lq->order[i].column : idc->name;
        int ci = verso_table_column_index(t, name);
        lq->key_col[i] = verso_table_column_at(t, (size_t)ci);
        lq->key_type[i] = lq->key_col[i]->type;
        lq->key_index[i] = lq->cols ? add_result_column(lq, name, false) : ci;
    }
    if (lq->cols) {
        lq->q.columns = lq->cols;
        lq->q.ncolumns = lq->ncols;
    }
}

/* Only the server's own encoding of its keys is accepted: one text per
 * position, so blanks, other number spellings or stray base64 bits do not
 * make a second cursor for the same place. */
/* 0 when s is the server's own spelling of the keys it decoded to,
 * VERSO_EINVAL when not, VERSO_ENOMEM when re-encoding them ran out. */
static int cursor_canonical(const verso__listq *lq, const char *s)
{
    verso_buf again = VERSO_BUF_INIT;
    int rc = verso__listq_cursor_of(&again, lq, lq->after);

    if (rc == 0 && (again.len != strlen(s) || memcmp(again.data, s, again.len)))
        rc = VERSO_EINVAL;
    verso_buf_free(&again);
    return rc == VERSO_ENOMEM ? rc : rc < 0 ? VERSO_EINVAL : 0;
}

/* after= is base64url of a JSON array: the order values and the id of the last row. */
static int parse_after(verso__listq *lq, const char *s, verso__resp *rs)
{
    verso_buf text = VERSO_BUF_INIT;
    const cJSON *root, *j;
    size_t i = 0;
    int rc = VERSO_EINVAL;

    if ((rc = b64url_decode(&text, s, strlen(s))) < 0 || (rc = text.len ? 0 : VERSO_EINVAL) < 0 ||
        (rc = verso_json_parse(&lq->after_doc, text.data, text.len, 4, NULL, 0)) < 0)
        goto done;
    rc = VERSO_EINVAL;
    root = verso_json_root(lq->after_doc);
    if (!cJSON_IsArray(root) || (size_t)cJSON_GetArraySize(root) != lq->q.norder + 1)
        goto done;
    cJSON_ArrayForEach(j, root)
    {
        if ((rc = verso_json_to_value(&lq->after[i], &lq->after_store[i], j, lq->key_col[i], NULL,
                                      0)) < 0)
            goto done;
        i++;
    }
    /* the ORM takes only an integer id last: anything else is this client's error */
    rc = VERSO_EINVAL;
    if (lq->after[lq->q.norder].type != VERSO_INT64)
        goto done;
    lq->q.after = lq->after;
    lq->q.nafter = i;
    rc = cursor_canonical(lq, s);
done:
    verso_buf_free(&text);
    if (rc == VERSO_ENOMEM)
        verso__error_nomem(rs);
    else if (rc < 0)
        return bad(rs, "bad after cursor (it belongs to the same query)", NULL);
    return rc;
}

static int parse_limits(verso__listq *lq, const verso__req *rq, verso__resp *rs)
{
    const verso_rest_limits *l = &rq->srv->cfg.limits;
    const char *limit = verso__param_get(rq, "limit"), *offset = verso__param_get(rq, "offset");

    lq->q.limit = l->default_limit;
    if (limit && (verso__parse_i64(&lq->q.limit, limit) < 0 || lq->q.limit < 1))
        return bad(rs, "limit must be a positive integer", NULL);
    if (lq->q.limit > l->max_limit)
        lq->q.limit = l->max_limit;
    if (offset && (verso__parse_i64(&lq->q.offset, offset) < 0 || lq->q.offset < 0 ||
                   lq->q.offset > l->max_offset))
        return bad(rs, "offset must be an integer between 0 and the configured maximum", NULL);
    if (offset && verso__param_get(rq, "after"))
        return bad(rs, "after and offset cannot be combined", NULL);
    return 0;
}

static int alloc_listq(verso__listq **out, const verso__req *rq, const verso_table *t)
{
    size_t arena = 1, ncols = verso_table_ncolumns(t) + MAX_ORDER + 2;
    verso__listq *lq = verso__calloc(1, sizeof(*lq));

    for (size_t i = 0; i < rq->nparams; i++)
        arena += strlen(rq->params[i].value) + 1;
    *out = lq;
    if (!lq)
        return VERSO_ENOMEM;
    lq->conds = verso__calloc(rq->nparams + 1, sizeof(*lq->conds));
    lq->lists = verso__calloc(arena, sizeof(*lq->lists));
    lq->cols = verso__calloc(ncols, sizeof(*lq->cols));
    lq->emit = verso__calloc(ncols, sizeof(*lq->emit));
    lq->arena = verso__malloc(arena);
    lq->q.conds = lq->conds;
    lq->q.order = lq->order;
    return lq->conds && lq->lists && lq->cols && lq->emit && lq->arena ? 0 : VERSO_ENOMEM;
}

static int parse_params(verso__listq *lq, const verso__req *rq, const verso_table *t,
                        verso__resp *rs)
{
    int rc = 0, nfilters = 0;

    for (size_t i = 0; rc == 0 && i < rq->nparams; i++) {
        const verso__param *p = &rq->params[i];
        if (!strcmp(p->key, "order"))
            rc = parse_order(lq, t, p->value, rs);
        else if (!strcmp(p->key, "select"))
            rc = parse_select(lq, t, p->value, rs);
        else if (is_reserved(p->key))
            continue;
        else if (++nfilters > rq->srv->cfg.limits.max_filters)
            rc = bad(rs, "too many filters", NULL);
        else
            rc = parse_filter(lq, t, p, rs);
    }
    return rc;
}

int verso__listq_parse(verso__listq **out, const verso__req *rq, const verso_table *t,
                       verso__resp *rs)
{
    verso__listq *lq = NULL;
    const char *after = verso__param_get(rq, "after");
    int rc;

    *out = NULL;
    if ((rc = alloc_listq(&lq, rq, t)) < 0) {
        verso__error_nomem(rs);
        goto done;
    }
    lq->q.table = verso_table_name(t);
    if ((rc = parse_params(lq, rq, t, rs)) < 0 || (rc = parse_limits(lq, rq, rs)) < 0)
        goto done;
    if (!lq->ncols) {
        verso__free(lq->cols);
        lq->cols = NULL;
    }
    locate_keys(lq, t);
    if (after && (rc = parse_after(lq, after, rs)) < 0)
        goto done;
    *out = lq;
    lq = NULL;
done:
    verso__listq_free(lq);
    return rc;
}

void verso__listq_free(verso__listq *lq)
{
    if (!lq)
        return;
    verso_json_free(lq->after_doc);
    for (size_t i = 0; i <= MAX_ORDER; i++)
        verso__free(lq->after_store[i]);
    verso__free(lq->conds);
    verso__free(lq->lists);
    verso__free(lq->cols);
    verso__free(lq->emit);
    verso__free(lq->arena);
    verso__free(lq);
}

const verso_query *verso__listq_query(const verso__listq *lq)
{
    return &lq->q;
}

bool verso__listq_emit(const verso__listq *lq, size_t i)
{
    return !lq->cols || (i < lq->ncols && lq->emit[i]);
}

int verso__listq_cursor_of(verso_buf *b, const verso__listq *lq, const verso_value *keys)
{
    verso_buf json = VERSO_BUF_INIT;
    int rc = verso_buf_puts(&json, "[");

    for (size_t i = 0; rc == 0 && i <= lq->q.norder; i++)
        if ((rc = verso_buf_puts(&json, i ? "," : "")) == 0)
            rc = verso_json_value(&json, &keys[i], lq->key_type[i]);
    if (rc == 0 && (rc = verso_buf_puts(&json, "]")) == 0)
        rc = b64url_encode(b, json.data, json.len);
    verso_buf_free(&json);
    return rc;
}

int verso__listq_cursor(verso_buf *b, const verso__listq *lq, const verso_iter *it)
{
    verso_value keys[MAX_ORDER + 1];
    int rc = 0;

    for (size_t i = 0; rc == 0 && i <= lq->q.norder; i++)
        rc = verso_iter_value(&keys[i], it, (size_t)lq->key_index[i]);
    return rc < 0 ? rc : verso__listq_cursor_of(b, lq, keys);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == ',' || c == '(' || c == ')';
}

static int put_encoded(verso_buf *b, const char *s)
{
    int rc = 0;

    for (; rc == 0 && *s; s++)
        rc = unreserved((unsigned char)*s) ? verso_buf_append(b, s, 1)
                                           : verso_buf_printf(b, "%%%02X", (unsigned char)*s);
    return rc;
}

int verso__query_string_without_cursor(verso_buf *b, const verso__req *rq)
{
    int rc = 0;
    bool first = true;

    for (size_t i = 0; rc == 0 && i < rq->nparams; i++) {
        if (!strcmp(rq->params[i].key, "after") || !strcmp(rq->params[i].key, "offset"))
            continue;
        if ((rc = verso_buf_puts(b, first ? "" : "&")) < 0 ||
            (rc = put_encoded(b, rq->params[i].key)) < 0 || (rc = verso_buf_puts(b, "=")) < 0)
            break;
        rc = put_encoded(b, rq->params[i].value);
        first = false;
    }
    return rc;
}

static const char k_b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_encode(verso_buf *b, const void *data, size_t n)
{
    const unsigned char *p = data;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char out[4] = {k_b64url[v >> 18 & 63], k_b64url[v >> 12 & 63], k_b64url[v >> 6 & 63],
                       k_b64url[v & 63]};
        rc = verso_buf_append(b, out, n - i >= 3 ? 4 : n - i + 1);
    }
    return rc;
}

static int b64url_decode(verso_buf *b, const char *s, size_t n)
{
    uint32_t acc = 0;
    int bits = 0, rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *pos = memchr(k_b64url, s[i], 64);
        if (!pos || !s[i])
            return VERSO_EINVAL;
        acc = acc << 6 | (uint32_t)(pos - k_b64url);
        bits += 6;
        if (bits >= 8) {
            unsigned char c = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
            rc = verso_buf_append(b, &c, 1);
        }
    }
    return n % 4 == 1 ? VERSO_EINVAL : rc;
}
