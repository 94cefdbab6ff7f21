/*
 * Queries: conditions, ordering, limit/offset and keyset pagination over any
 * tracked table. Column names are checked against the runtime schema and
 * quoted; values are only ever bound.
 *
 * Keyset: a row is "after" the key (k1..km, id) when, for some j, it equals
 * k1..k(j-1) and is after kj in column j's direction, or equals all keys and
 * its id is after the key's id. SQLite sorts NULL first ascending and last
 * descending, and "equal" uses IS, so NULL keys page exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "orm/internal.h"

struct verso_iter {
    verso_db *db;
    verso_table *t;
    sqlite3_stmt *st;
    int ncols;
    int colidx[VERSO__MAX_COLUMNS];
    const verso_table_def *rec_def;
    int rec_map[VERSO__MAX_COLUMNS];
};

/* SQL text under construction and the values to bind, in order. */
typedef struct qbuild {
    verso_buf sql;
    const verso_value **params;
    size_t nparams, cap;
    verso_value limit, offset;
    unsigned nomem; /* verso__nomem_count() when the SQL was started */
} qbuild;

static int param(verso_db *db, qbuild *q, const verso_value *v)
{
    if (q->nparams == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        const verso_value **p = verso__realloc(q->params, cap * sizeof *p);
        if (!p)
            return verso__err(db, VERSO_ENOMEM, "out of memory");
        q->params = p;
        q->cap = cap;
    }
    q->params[q->nparams++] = v;
    return 0;
}

static int column_of(int *out, verso_db *db, const verso_table *t, const char *name)
{
    *out = verso_table_column_index(t, name);
    if (*out < 0)
        return verso__err(db, VERSO_EINVAL, "table %s has no column \"%s\"", t->name,
                          name ? name : "(null)");
    return 0;
}

static int cond_in(verso_db *db, qbuild *q, const char *qc, const verso_cond *c)
{
    int rc = 0;
    if (c->nlist == 0) {
        verso_buf_puts(&q->sql, "0");
        return 0;
    }
    if (!c->list)
        return verso__err(db, VERSO_EINVAL, "IN condition on %s has no list", c->column);
    verso_buf_printf(&q->sql, "%s IN (", qc);
    for (size_t i = 0; rc == 0 && i < c->nlist; i++) {
        verso_buf_puts(&q->sql, i ? ",?" : "?");
        rc = param(db, q, &c->list[i]);
    }
    verso_buf_puts(&q->sql, ")");
    return rc;
}

static const char *const cmp_sql[] = {
    [VERSO_EQ] = "=",   [VERSO_NEQ] = "<>", [VERSO_GT] = ">",
    [VERSO_GTE] = ">=", [VERSO_LT] = "<",   [VERSO_LTE] = "<=",
};

static int cond_sql(verso_db *db, qbuild *q, const verso_table *t, const verso_cond *c)
{
    int ci, rc = column_of(&ci, db, t, c->column);
    const char *qc = rc == 0 ? t->qcols[ci] : NULL;
    bool null = c->value.type == VERSO_NULL;
    if (rc < 0)
        return rc;
    switch (c->op) {
    case VERSO_IS_NULL:
    case VERSO_IS_NOT_NULL:
        verso_buf_printf(&q->sql, "%s IS %sNULL", qc, c->op == VERSO_IS_NULL ? "" : "NOT ");
        return 0;
    case VERSO_IN:
        return cond_in(db, q, qc, c);
    case VERSO_LIKE:
        if (c->value.type != VERSO_TEXT)
            return verso__err(db, VERSO_EINVAL, "LIKE on %s needs a text pattern", c->column);
        verso_buf_printf(&q->sql, "%s LIKE ?", qc);
        return param(db, q, &c->value);
    case VERSO_EQ:
    case VERSO_NEQ:
        if (null) {
            verso_buf_printf(&q->sql, "%s IS %sNULL", qc, c->op == VERSO_EQ ? "" : "NOT ");
            return 0;
        }
        /* fall through */
    case VERSO_GT:
    case VERSO_GTE:
    case VERSO_LT:
    case VERSO_LTE:
        if (null)
            return verso__err(db, VERSO_EINVAL, "comparison with NULL on %s", c->column);
        verso_buf_printf(&q->sql, "%s %s ?", qc, cmp_sql[c->op]);
        return param(db, q, &c->value);
    default:
        return verso__err(db, VERSO_EINVAL, "unknown operator %d on %s", (int)c->op, c->column);
    }
}

static int where_sql(verso_db *db, qbuild *q, const verso_table *t, const verso_cond *conds,
                     size_t n, bool *any)
{
    int rc = 0;
    if (n && !conds)
        return verso__err(db, VERSO_EINVAL, "conds is NULL");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        verso_buf_puts(&q->sql, *any ? " AND " : " WHERE ");
        *any = true;
        rc = cond_sql(db, q, t, &conds[i]);
    }
    return rc;
}

/* Column j of the key is "after" value v in direction desc. */
static int key_after(verso_db *db, qbuild *q, const char *qc, bool desc, const verso_value *v)
{
    if (v->type == VERSO_NULL) {
        verso_buf_printf(&q->sql, desc ? "0" : "%s IS NOT NULL", qc);
        return 0;
    }
    if (desc)
        verso_buf_printf(&q->sql, "(%s < ? OR %s IS NULL)", qc, qc);
    else
        verso_buf_printf(&q->sql, "%s > ?", qc);
    return param(db, q, v);
}

static int key_equal(verso_db *db, qbuild *q, const char *qc, const verso_value *v)
{
    if (v->type == VERSO_NULL) {
        verso_buf_printf(&q->sql, "%s IS NULL AND ", qc);
        return 0;
    }
    verso_buf_printf(&q->sql, "%s = ? AND ", qc);
    return param(db, q, v);
}

static int keyset_sql(verso_db *db, qbuild *q, const verso_table *t, const verso_query *qq,
                      const int *ocols, bool id_desc, bool *any)
{
    int rc = 0;
    if (qq->nafter != qq->norder + 1 || !qq->after)
        return verso__err(db, VERSO_EINVAL, "keyset needs %zu values (order terms and the id)",
                          qq->norder + 1);
    if (qq->after[qq->norder].type != VERSO_INT64)
        return verso__err(db, VERSO_EINVAL, "the last keyset value must be the int64 id");
    verso_buf_puts(&q->sql, *any ? " AND (" : " WHERE (");
    *any = true;
    for (size_t k = 0; rc == 0 && k <= qq->norder; k++) {
        verso_buf_puts(&q->sql, k ? " OR (" : "(");
        for (size_t j = 0; rc == 0 && j < k; j++)
            rc = key_equal(db, q, t->qcols[ocols[j]], &qq->after[j]);
        if (rc == 0 && k < qq->norder)
            rc = key_after(db, q, t->qcols[ocols[k]], qq->order[k].desc, &qq->after[k]);
        if (rc == 0 && k == qq->norder) {
            verso_buf_printf(&q->sql, "%s %s ?", t->qcols[t->id_idx], id_desc ? "<" : ">");
            rc = param(db, q, &qq->after[k]);
        }
        verso_buf_puts(&q->sql, ")");
    }
    verso_buf_puts(&q->sql, ")");
    return rc;
}

static int order_sql(verso_db *db, const verso_table *t, const verso_query *qq, int *ocols,
                     bool *id_desc)
{
    int rc = 0;
    if (qq->norder && !qq->order)
        return verso__err(db, VERSO_EINVAL, "order is NULL");
    *id_desc = qq->norder && qq->order[qq->norder - 1].desc;
    if (qq->norder > VERSO__MAX_COLUMNS)
        return verso__err(db, VERSO_EINVAL, "too many order terms");
    for (size_t i = 0; rc == 0 && i < qq->norder; i++)
        rc = column_of(&ocols[i], db, t, qq->order[i].column);
    return rc;
}

static void order_tail(qbuild *q, const verso_table *t, const verso_query *qq, const int *ocols,
                       bool id_desc)
{
    verso_buf_puts(&q->sql, " ORDER BY ");
    for (size_t i = 0; i < qq->norder; i++)
        verso_buf_printf(&q->sql, "%s%s, ", t->qcols[ocols[i]], qq->order[i].desc ? " DESC" : "");
    verso_buf_printf(&q->sql, "%s%s", t->qcols[t->id_idx], id_desc ? " DESC" : "");
    if (qq->limit > 0 || qq->offset > 0) {
        q->limit = VERSO_VALUE_INT(qq->limit > 0 ? qq->limit : -1);
        q->offset = VERSO_VALUE_INT(qq->offset > 0 ? qq->offset : 0);
        verso_buf_puts(&q->sql, " LIMIT ? OFFSET ?");
    }
}

static int select_cols(verso_iter *it, verso_db *db, const verso_query *qq, qbuild *q)
{
    const verso_table *t = it->t;
    int rc = 0;
    if (qq->ncolumns > VERSO__MAX_COLUMNS || (qq->ncolumns && !qq->columns))
        return verso__err(db, VERSO_EINVAL, "bad column list");
    if (!qq->columns) {
        it->ncols = (int)t->ncols;
        for (size_t i = 0; i < t->ncols; i++)
            it->colidx[i] = (int)i;
    } else {
        it->ncols = (int)qq->ncolumns;
        for (size_t i = 0; rc == 0 && i < qq->ncolumns; i++)
            rc = column_of(&it->colidx[i], db, t, qq->columns[i]);
    }
    verso_buf_puts(&q->sql, "SELECT ");
    for (int i = 0; rc == 0 && i < it->ncols; i++)
        verso_buf_printf(&q->sql, "%s%s", i ? ", " : "", t->qcols[it->colidx[i]]);
    if (rc == 0 && it->ncols == 0)
        rc = verso__err(db, VERSO_EINVAL, "no columns selected");
    verso_buf_printf(&q->sql, " FROM %s", t->qname);
    return rc;
}

/* Query values are copied: the caller's memory may change while rows are read. */
static void bind_copy(sqlite3_stmt *st, int pos, const verso_value *v)
{
    if (v->type == VERSO_TEXT || v->type == VERSO_UUID)
        sqlite3_bind_text64(st, pos, v->u.b.p ? v->u.b.p : "", v->u.b.n, SQLITE_TRANSIENT,
                            SQLITE_UTF8);
    else if (v->type == VERSO_BLOB)
        sqlite3_bind_blob64(st, pos, v->u.b.p ? v->u.b.p : "", v->u.b.n, SQLITE_TRANSIENT);
    else
        verso__bind_value(st, pos, v);
}

static int prepare_bound(sqlite3_stmt **out, verso_db *db, qbuild *q)
{
    int src;
    *out = NULL;
    if (!q->sql.data || verso__nomem_count() != q->nomem)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    if ((src = sqlite3_prepare_v2(db->sq, q->sql.data, (int)q->sql.len, out, NULL)) != SQLITE_OK)
        return verso__sqlerr(db, src, "preparing query");
    size_t i = 0;
    for (; i < q->nparams; i++)
        bind_copy(*out, (int)i + 1, q->params[i]);
    if (q->limit.type == VERSO_INT64) {
        sqlite3_bind_int64(*out, (int)i + 1, q->limit.u.i);
        sqlite3_bind_int64(*out, (int)i + 2, q->offset.u.i);
    }
    return 0;
}

static int query_build(verso_iter *it, verso_db *db, const verso_query *qq, qbuild *q)
{
    int ocols[VERSO__MAX_COLUMNS];
    bool any = false, id_desc = false;
    int rc = select_cols(it, db, qq, q);
    if (rc == 0)
        rc = where_sql(db, q, it->t, qq->conds, qq->nconds, &any);
    if (rc == 0)
        rc = order_sql(db, it->t, qq, ocols, &id_desc);
    if (rc == 0 && qq->nafter)
        rc = keyset_sql(db, q, it->t, qq, ocols, id_desc, &any);
    if (rc == 0)
        order_tail(q, it->t, qq, ocols, id_desc);
    if (rc == 0)
        rc = prepare_bound(&it->st, db, q);
    return rc;
}

int verso_query_open(verso_iter **out, verso_db *db, const verso_query *q)
{
    qbuild b = {0};
    verso_iter *it = NULL;
    int rc = 0;
    *out = NULL;
    if (!q)
        return verso__err(db, VERSO_EINVAL, "query is NULL");
    if (!(it = verso__calloc(1, sizeof *it)))
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    it->db = db;
    if ((rc = verso__table_find(&it->t, db, q->table)) < 0)
        goto done;
    if (q->offset < 0 || q->nafter > VERSO__MAX_COLUMNS + 1) {
        rc = verso__err(db, VERSO_EINVAL, "bad offset or keyset");
        goto done;
    }
    rc = query_build(it, db, q, &b);
done:
    verso_buf_free(&b.sql);
    verso__free(b.params);
    if (rc < 0)
        verso_iter_close(it);
    else
        *out = it;
    return rc;
}

int verso_iter_next(verso_iter *it)
{
    int src = sqlite3_step(it->st);
    if (src == SQLITE_ROW)
        return 1;
    if (src == SQLITE_DONE)
        return 0;
    return verso__sqlerr(it->db, src, "reading rows");
}

size_t verso_iter_ncolumns(const verso_iter *it)
{
    return (size_t)it->ncols;
}

const char *verso_iter_column_name(const verso_iter *it, size_t i)
{
    return i < (size_t)it->ncols ? it->t->cols[it->colidx[i]].name : NULL;
}

const verso_column *verso_iter_column(const verso_iter *it, size_t i)
{
    return i < (size_t)it->ncols ? &it->t->cols[it->colidx[i]] : NULL;
}

int verso_iter_value(verso_value *out, const verso_iter *it, size_t i)
{
    if (i >= (size_t)it->ncols) {
        *out = VERSO_VALUE_NULL;
        return VERSO_EINVAL;
    }
    verso__column_value(out, it->st, (int)i, it->t->cols[it->colidx[i]].type);
    return 0;
}

static int record_map(verso_iter *it, const verso_table_def *def)
{
    size_t found = 0;
    for (int i = 0; i < it->ncols; i++) {
        it->rec_map[i] = -1;
        for (size_t f = 0; f < def->nfields; f++) {
            if (sqlite3_stricmp(def->fields[f].name, it->t->cols[it->colidx[i]].name) == 0) {
                it->rec_map[i] = (int)f;
                found++;
                break;
            }
        }
    }
    if (found < def->nfields)
        return verso__err(it->db, VERSO_EINVAL, "the query does not select every column of %s",
                          def->name);
    it->rec_def = def;
    return 0;
}

int verso_iter_record(void *rec, const verso_iter *cit, const verso_table_def *def)
{
    verso_iter *it = (verso_iter *)cit;
    int rc = 0;
    if (!rec || !def)
        return verso__err(it->db, VERSO_EINVAL, "record or def is NULL");
    if (it->rec_def != def)
        rc = record_map(it, def);
    if (rc == 0)
        rc = verso__read_record(it->db, it->st, def, it->rec_map, it->ncols, rec);
    return rc;
}

void verso_iter_close(verso_iter *it)
{
    if (!it)
        return;
    sqlite3_finalize(it->st);
    verso__free(it);
}

int verso_query_count(int64_t *out, verso_db *db, const char *table, const verso_cond *conds,
                      size_t nconds)
{
    qbuild q = {.nomem = verso__nomem_count()};
    verso_table *t;
    sqlite3_stmt *st = NULL;
    bool any = false;
    int rc = verso__table_find(&t, db, table);
    *out = 0;
    if (rc < 0)
        return rc;
    verso_buf_printf(&q.sql, "SELECT count(*) FROM %s", t->qname);
    rc = where_sql(db, &q, t, conds, nconds, &any);
    if (rc == 0)
        rc = prepare_bound(&st, db, &q);
    if (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
        else
            rc = verso__sqlerr(db, src, "counting");
    }
    sqlite3_finalize(st);
    verso_buf_free(&q.sql);
    verso__free(q.params);
    return rc;
}
