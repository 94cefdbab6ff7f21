/*
 * The change feed: "changes since V" as one stream in version order.
 *
 * One read transaction gives one snapshot. Each requested table has a
 * statement walking its version index upward, the deletion log has one too;
 * the feed merges them in C, always returning the smallest pending version.
 * Statements are stepped lazily, so a read costs what it returns. Every
 * version <= the snapshot's head was committed before the snapshot (versions
 * are assigned under the write lock), so continuing from the cursor never
 * skips a change.
 */
#include <stdlib.h>
#include <string.h>

#include "orm/internal.h"

typedef struct feed_src {
    verso_table *t; /* NULL for the deletion log */
    sqlite3_stmt *st;
    bool masked; /* the last result column says which values are long blobs (blob_inline) */
    bool has;
    size_t ntabs; /* the deletion log's: tables named in its statement */
    int64_t version;
} feed_src;

struct verso_feed {
    verso_db *db;
    feed_src *src; /* src[0] is the deletion log */
    size_t nsrc;
    int last; /* source of the entry handed out last, -1 none */
    int64_t head, horizon, since, limit, count, lastv, seq_horizon, blob_inline;
    bool more, done, began;
    char identity[37];
    verso_feed_entry e;
    verso_value vals[VERSO__MAX_COLUMNS];
};

static int src_step(verso_feed *f, feed_src *s)
{
    int src = sqlite3_step(s->st);
    s->has = src == SQLITE_ROW;
    if (s->has)
        s->version = sqlite3_column_int64(s->st, s->t ? s->t->ver_idx : 0);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0
                                                   : verso__sqlerr(f->db, src, "reading changes");
}

static int read_snapshot(verso_feed *f)
{
    verso_info info;
    int rc = verso_db_info(&info, f->db);
    if (rc < 0)
        return rc;
    f->head = info.head;
    f->horizon = info.horizon;
    memcpy(f->identity, info.identity, sizeof f->identity);
    if (f->since > 0 && f->since < f->horizon && f->seq_horizon != f->horizon)
        return verso__err(f->db, VERSO_EHORIZON,
                          "changes since %lld were pruned (horizon %lld): resynchronise",
                          (long long)f->since, (long long)f->horizon);
    return 0;
}

/*
 * A source's statement: the one its table (or, for the deletion log, the
 * handle) keeps between feeds, else one prepared from sql. Preparing costs
 * more than a small read, and a master reads once per commit.
 */
static sqlite3_stmt **kept_stmt(verso_feed *f, const feed_src *s, size_t ntabs)
{
    if (s->t)
        return &s->t->feed_st[s->masked];
    return f->db->tomb_n == ntabs ? &f->db->tomb_st : NULL;
}

static int prepare_src(verso_feed *f, feed_src *s, verso_buf *sql, verso_table *const *tabs,
                       size_t ntabs)
{
    sqlite3_stmt **kept = kept_stmt(f, s, ntabs);
    int src = SQLITE_OK;
    if (kept && *kept) { /* taken: a second feed open at once prepares its own */
        s->st = *kept;
        *kept = NULL;
    } else {
        src = sqlite3_prepare_v3(f->db->sq, sql->data, (int)sql->len, SQLITE_PREPARE_PERSISTENT,
                                 &s->st, NULL);
    }
    if (src != SQLITE_OK)
        return verso__sqlerr(f->db, src, "preparing the change feed");
    s->ntabs = ntabs;
    sqlite3_bind_int64(s->st, 1, f->since);
    sqlite3_bind_int64(s->st, 2, f->head);
    /* one row more than the limit tells whether more changes follow */
    sqlite3_bind_int64(s->st, 3, f->limit > 0 ? f->limit + 1 : -1);
    for (size_t i = 0; !s->t && i < ntabs; i++)
        sqlite3_bind_text(s->st, (int)i + 4, tabs[i]->name, -1, SQLITE_STATIC);
    if (s->masked)
        sqlite3_bind_int64(s->st, 4, f->blob_inline);
    return src_step(f, s);
}

/*
 * With blob_inline, a long blob is never loaded: typeof() and length() of a
 * column read its header only, and the CASE reads the value only when it is
 * short. Such a value reads as its length; the mask column (bit c for
 * column c) tells it from an integer.
 */
static void select_columns(verso_buf *sql, const verso_table *t, bool masked)
{
    for (size_t c = 0; c < t->ncols; c++) {
        const char *q = t->qcols[c];
        if (!masked || (int)c == t->id_idx || (int)c == t->ver_idx)
            verso_buf_printf(sql, "%s%s", c ? ", " : "", q);
        else
            verso_buf_printf(sql,
                             "%sCASE WHEN typeof(%s) = 'blob' AND length(%s) > ?4 "
                             "THEN length(%s) ELSE %s END",
                             c ? ", " : "", q, q, q, q);
    }
    if (!masked)
        return;
    verso_buf_puts(sql, ", 0");
    for (size_t c = 0; c < t->ncols; c++)
        if ((int)c != t->id_idx && (int)c != t->ver_idx)
            verso_buf_printf(sql, " | ((typeof(%s) = 'blob' AND length(%s) > ?4) << %zu)",
                             t->qcols[c], t->qcols[c], c);
}

static int open_table_src(verso_feed *f, feed_src *s, verso_table *t)
{
    verso_buf sql = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    const char *qv = t->qcols[t->ver_idx];
    s->t = t;
    s->masked = f->blob_inline > 0;
    bool kept = *kept_stmt(f, s, 0) != NULL;
    if (!kept) {
        verso_buf_puts(&sql, "SELECT ");
        select_columns(&sql, t, s->masked);
        verso_buf_printf(&sql, " FROM %s WHERE %s > ?1 AND %s <= ?2 ORDER BY %s LIMIT ?3", t->qname,
                         qv, qv, qv);
    }
    int rc = (sql.data || kept) && verso__nomem_count() == mark
                 ? prepare_src(f, s, &sql, NULL, 0)
                 : verso__err(f->db, VERSO_ENOMEM, "oom");
    verso_buf_free(&sql);
    return rc;
}

static int open_tomb_src(verso_feed *f, feed_src *s, verso_table *const *tabs, size_t ntabs)
{
    verso_buf sql = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    sqlite3_stmt **slot = kept_stmt(f, s, ntabs);
    bool kept = slot && *slot;
    if (!kept) {
        verso_buf_puts(&sql, "SELECT version, tbl, id FROM _verso_tombstones WHERE version > ?1 "
                             "AND version <= ?2 AND tbl IN (''");
        for (size_t i = 0; i < ntabs; i++)
            verso_buf_printf(&sql, ",?%zu", i + 4);
        verso_buf_puts(&sql, ") ORDER BY version LIMIT ?3");
    }
    int rc = (sql.data || kept) && verso__nomem_count() == mark
                 ? prepare_src(f, s, &sql, tabs, ntabs)
                 : verso__err(f->db, VERSO_ENOMEM, "out of memory");
    verso_buf_free(&sql);
    return rc;
}

static int pick_tables(verso_table ***out, size_t *n, verso_feed *f, const verso_feed_options *o)
{
    verso_db *db = f->db;
    *n = o->tables ? o->ntables : db->ntables;
    *out = verso__calloc(*n ? *n : 1, sizeof **out);
    if (!*out)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        verso_table *t =
            o->tables ? (verso_table *)verso_db_table(db, o->tables[i]) : db->tables[i];
        if (!t)
            return verso__err(db, VERSO_ENOTFOUND, "no tracked table named \"%s\"",
                              o->tables[i] ? o->tables[i] : "(null)");
        bool dup = false;
        for (size_t j = 0; j < k; j++)
            dup = dup || (*out)[j] == t;
        if (!dup)
            (*out)[k++] = t; /* a table named twice is read once */
    }
    *n = k;
    return 0;
}

static int open_sources(verso_feed *f, const verso_feed_options *o)
{
    verso_table **tabs = NULL;
    size_t n = 0;
    int rc = pick_tables(&tabs, &n, f, o);
    if (rc == 0 && !(f->src = verso__calloc(n + 1, sizeof *f->src)))
        rc = verso__err(f->db, VERSO_ENOMEM, "out of memory");
    if (rc == 0) {
        f->nsrc = n + 1;
        rc = open_tomb_src(f, &f->src[0], tabs, n);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = open_table_src(f, &f->src[i + 1], tabs[i]);
    verso__free(tabs);
    return rc;
}

static int begin_read(verso_feed *f)
{
    verso_db *db = f->db;
    sqlite3_stmt *st = db->q[VERSO__Q_BEGIN_R];
    if (!sqlite3_get_autocommit(db->sq))
        return 0; /* already inside a read (another feed): share its snapshot */
    sqlite3_reset(st);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return verso__sqlerr(db, src, "BEGIN");
    f->began = true;
    return verso__schema_check(db);
}

int verso_feed_open(verso_feed **out, verso_db *db, const verso_feed_options *opts)
{
    verso_feed_options defaults = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_options *o = opts ? opts : &defaults;
    verso_feed *f;
    int rc;
    *out = NULL;
    if (db->txn)
        return verso__err(db, VERSO_ESTATE,
                          "the change feed cannot be read inside a write "
                          "transaction");
    verso__settle(db);
    if (o->ntables && !o->tables)
        return verso__err(db, VERSO_EINVAL, "tables is NULL but ntables is %zu", o->ntables);
    if (!(f = verso__calloc(1, sizeof *f)))
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    f->db = db;
    f->since = o->since > 0 ? o->since : 0;
    f->lastv = f->since;
    f->limit = o->limit;
    f->seq_horizon = o->sequence_horizon > 0 ? o->sequence_horizon : -1;
    f->blob_inline = o->blob_inline > 0 ? o->blob_inline : 0;
    f->last = -1;
    rc = begin_read(f);
    if (rc == 0)
        rc = read_snapshot(f);
    if (rc == 0)
        rc = open_sources(f, o);
    if (rc < 0) {
        verso_feed_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

static void fill_entry(verso_feed *f, feed_src *s)
{
    verso_feed_entry *e = &f->e;
    e->version = s->version;
    if (!s->t) {
        e->table_name = (const char *)sqlite3_column_text(s->st, 1);
        e->table = verso_db_table(f->db, e->table_name);
        if (e->table)
            e->table_name = e->table->name;
        e->id = sqlite3_column_int64(s->st, 2);
        e->deleted = true;
        e->ncolumns = 0;
        e->values = NULL;
        return;
    }
    e->table = s->t;
    e->table_name = s->t->name;
    e->id = sqlite3_column_int64(s->st, s->t->id_idx);
    e->deleted = false;
    e->ncolumns = s->t->ncols;
    uint64_t big = s->masked ? (uint64_t)sqlite3_column_int64(s->st, (int)s->t->ncols) : 0;
    for (size_t c = 0; c < s->t->ncols; c++) {
        if (big >> c & 1) /* a long blob: its length only (verso_feed_options.blob_inline) */
            f->vals[c] = (verso_value){.type = VERSO_BLOB,
                                       .u.b = {NULL, (size_t)sqlite3_column_int64(s->st, (int)c)}};
        else
            verso__column_value(&f->vals[c], s->st, (int)c, s->t->cols[c].type);
    }
    e->values = f->vals;
}

static int smallest(const verso_feed *f)
{
    int best = -1;
    for (size_t i = 0; i < f->nsrc; i++)
        if (f->src[i].has && (best < 0 || f->src[i].version < f->src[best].version))
            best = (int)i;
    return best;
}

int verso_feed_next(const verso_feed_entry **out, verso_feed *f)
{
    int rc;
    *out = NULL;
    if (f->done)
        return 0;
    if (f->last >= 0 && (rc = src_step(f, &f->src[f->last])) < 0)
        return rc;
    f->last = -1;
    int best = smallest(f);
    if (best < 0 || (f->limit > 0 && f->count >= f->limit)) {
        f->done = true;
        f->more = best >= 0;
        return 0;
    }
    fill_entry(f, &f->src[best]);
    f->last = best;
    f->lastv = f->e.version;
    f->count++;
    *out = &f->e;
    return 1;
}

int64_t verso_feed_head(const verso_feed *f)
{
    return f->head;
}

int64_t verso_feed_horizon(const verso_feed *f)
{
    return f->horizon;
}

const char *verso_feed_identity(const verso_feed *f)
{
    return f->identity;
}

int64_t verso_feed_cursor(const verso_feed *f)
{
    return f->done && !f->more ? f->head : f->lastv;
}

/* Until verso_feed_next() said 0 the end is not known: a reader that stops
 * early has more to read from its cursor. */
bool verso_feed_more(const verso_feed *f)
{
    return f->more || !f->done;
}

/* Keeps s's statement for the next feed, unless one is kept already or its table was replaced
 * by a schema reload (a retired table keeps no statements). */
static void give_back(verso_feed *f, feed_src *s)
{
    sqlite3_stmt **kept = s->t && s->t->retired ? NULL : kept_stmt(f, s, s->ntabs);
    if (!s->st)
        return;
    if (!s->t && !f->db->tomb_st) { /* the deletion log's slot is for any number of tables */
        f->db->tomb_n = s->ntabs;
        kept = &f->db->tomb_st;
    }
    if (kept && !*kept) {
        sqlite3_reset(s->st);
        sqlite3_clear_bindings(s->st);
        *kept = s->st;
    } else {
        sqlite3_finalize(s->st);
    }
    s->st = NULL;
}

void verso_feed_close(verso_feed *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nsrc; i++)
        give_back(f, &f->src[i]);
    verso__free(f->src);
    if (f->began && !sqlite3_get_autocommit(f->db->sq)) {
        sqlite3_stmt *st = f->db->q[VERSO__Q_COMMIT];
        sqlite3_reset(st);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    verso__free(f);
}
