/* orm/blob.c - one column's raw value, read and written in pieces (the blob
 * routes of the REST server; contracts in orm/service.h).
 *
 * Reading holds one read snapshot for the whole value, on a connection of
 * its own: SQLite's incremental blob reads walk the value's page chain from
 * its start on every new handle, so a handle per piece makes a download
 * quadratic (64 MiB in 64 KiB pieces: seconds instead of tens of
 * milliseconds). The bytes read are therefore always the value of the
 * version the reader started with. A second connection, outside any
 * transaction, tells whether that version is still the row's: PRAGMA
 * data_version first (one step when nothing was committed anywhere), the
 * row's version only when something was.
 *
 * Writing sets the column to zeroblob(N) with the row's new version in one
 * UPDATE, then fills it through an incremental blob handle, all in one write
 * transaction of the database's own connection. */
#include <stdio.h>
#include <string.h>

#include "orm/internal.h"
#include "orm/service.h"

struct verso__cell {
    sqlite3 *snap;      /* the read snapshot (BEGIN ... until close) */
    sqlite3 *look;      /* autocommit: notices newer versions */
    sqlite3_blob *blob; /* on snap; NULL for a value that is not TEXT or BLOB */
    sqlite3_stmt *dv;   /* PRAGMA data_version, on look */
    sqlite3_stmt *ver;  /* the row's version, on look */
    int64_t data_version;
    int64_t version;
    int64_t id;
};

static int cell_err(verso_db *db, sqlite3 *sq, int src, const char *what)
{
    int code = verso__map_sqlite(src);

    verso__err(db, code ? code : VERSO_EDB, "%s: %s", what,
               sq ? sqlite3_errmsg(sq) : sqlite3_errstr(src));
    db->errkind = VERSO__MSG_SQLITE;
    return code ? code : VERSO_EDB;
}

static int connect_ro(sqlite3 **out, verso_db *db)
{
    int src = sqlite3_open_v2(db->path, out, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);

    if (src != SQLITE_OK)
        return cell_err(db, *out, src, "opening a reader");
    sqlite3_busy_timeout(*out, 2000);
    /* the value's pages are read past the cache (direct overflow reads): keep it small */
    sqlite3_exec(*out, "PRAGMA cache_size=-256", NULL, NULL, NULL);
    return 0;
}

static int prepare(sqlite3_stmt **st, verso_db *db, sqlite3 *sq, verso_buf *sql)
{
    int src;

    if (!sql->data)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    src = sqlite3_prepare_v2(sq, sql->data, -1, st, NULL);
    return src == SQLITE_OK ? 0 : cell_err(db, sq, src, "preparing");
}

/* "SELECT <what> FROM t WHERE id = ?1" prepared on sq. */
static int prepare_row(sqlite3_stmt **st, verso_db *db, sqlite3 *sq, const verso_table *t,
                       const char *what)
{
    verso_buf sql = VERSO_BUF_INIT;
    int rc;

    verso_buf_printf(&sql, "SELECT %s FROM %s WHERE %s = ?1", what, t->qname, t->qcols[t->id_idx]);
    rc = prepare(st, db, sq, &sql);
    verso_buf_free(&sql);
    return rc;
}

static int step_i64(int64_t *out, bool *found, verso_db *db, sqlite3 *sq, sqlite3_stmt *st)
{
    int src = sqlite3_step(st);

    *found = src == SQLITE_ROW;
    if (*found)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : cell_err(db, sq, src, "reading");
}

static const struct {
    const char *name;
    verso_type type;
} k_classes[] = {{"integer", VERSO_INT64},
                 {"real", VERSO_DOUBLE},
                 {"text", VERSO_TEXT},
                 {"blob", VERSO_BLOB},
                 {"null", VERSO_NULL}};

static verso_type class_of(const unsigned char *name)
{
    for (size_t i = 0; name && i < sizeof(k_classes) / sizeof(k_classes[0]); i++)
        if (!strcmp((const char *)name, k_classes[i].name))
            return k_classes[i].type;
    return VERSO_NULL;
}

/* Type and version of the row as the snapshot holds it. */
static int snap_row(verso__cell_info *info, verso_db *db, verso__cell *c, const verso_table *t,
                    size_t col)
{
    verso_buf what = VERSO_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int rc, src;

    verso_buf_printf(&what, "typeof(%s), %s", t->qcols[col], t->qcols[t->ver_idx]);
    rc = what.data ? prepare_row(&st, db, c->snap, t, what.data)
                   : verso__err(db, VERSO_ENOMEM, "out of memory");
    verso_buf_free(&what);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, c->id);
    if ((src = sqlite3_step(st)) == SQLITE_ROW) {
        info->type = class_of(sqlite3_column_text(st, 0));
        info->version = c->version = sqlite3_column_int64(st, 1);
    } else if (src == SQLITE_DONE) {
        rc = verso__err(db, VERSO_ENOTFOUND, "%s: no row with id %lld", t->name, (long long)c->id);
    } else {
        rc = cell_err(db, c->snap, src, t->name);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The change test's baseline is taken before the snapshot: a commit in
 * between is in the snapshot, and the test then only reads the version. */
static int cell_setup(verso__cell_info *info, verso_db *db, verso__cell *c, const verso_table *t,
                      size_t col)
{
    bool found;
    int rc, src;

    if ((rc = connect_ro(&c->look, db)) < 0 || (rc = connect_ro(&c->snap, db)) < 0)
        return rc;
    if ((src = sqlite3_prepare_v2(c->look, "PRAGMA data_version", -1, &c->dv, NULL)) != SQLITE_OK)
        return cell_err(db, c->look, src, "preparing");
    if ((rc = prepare_row(&c->ver, db, c->look, t, t->qcols[t->ver_idx])) < 0 ||
        (rc = step_i64(&c->data_version, &found, db, c->look, c->dv)) < 0)
        return rc;
    sqlite3_bind_int64(c->ver, 1, c->id);
    if ((src = sqlite3_exec(c->snap, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK)
        return cell_err(db, c->snap, src, "BEGIN");
    if ((rc = snap_row(info, db, c, t, col)) < 0 ||
        (info->type != VERSO_TEXT && info->type != VERSO_BLOB))
        return rc;
    src = sqlite3_blob_open(c->snap, "main", t->name, t->cols[col].name, c->id, 0, &c->blob);
    if (src != SQLITE_OK)
        return cell_err(db, c->snap, src, "opening the value");
    info->len = sqlite3_blob_bytes(c->blob);
    return 0;
}

int verso__cell_open(verso__cell **out, verso__cell_info *info, verso_db *db, const char *table,
                     int64_t id, const char *column)
{
    verso_table *t = verso__table_lookup(db, table);
    int col = t ? verso_table_column_index(t, column) : -1;
    verso__cell *c;
    int rc;

    *out = NULL;
    memset(info, 0, sizeof(*info));
    if (!t)
        return verso__err(db, VERSO_ENOTFOUND, "no tracked table named \"%s\"", table);
    if (col < 0)
        return verso__err(db, VERSO_ENOTFOUND, "table %s has no column \"%s\"", t->name, column);
    if (!(c = verso__calloc(1, sizeof(*c))))
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    c->id = id;
    if ((rc = cell_setup(info, db, c, t, (size_t)col)) < 0) {
        verso__cell_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* One integer from st on sq: 1 found, 0 none, or a negative VERSO_E*. */
static int look_i64(int64_t *out, sqlite3_stmt *st)
{
    int src = sqlite3_step(st), rc = src == SQLITE_ROW ? 1 : 0;

    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (src != SQLITE_DONE)
        rc = verso__map_sqlite(src) ? verso__map_sqlite(src) : VERSO_EDB;
    sqlite3_reset(st);
    return rc;
}

/* Whether the row still has the snapshot's version (the look connection sees
 * the newest commit). */
static int cell_current(verso__cell *c)
{
    int64_t dv = 0, v = 0;
    int rc = look_i64(&dv, c->dv);

    if (rc < 0 || dv == c->data_version)
        return rc < 0 ? rc : 0;
    if ((rc = look_i64(&v, c->ver)) < 0)
        return rc;
    c->data_version = dv;
    return rc == 1 && v == c->version ? 0 : VERSO_ECONFLICT;
}

int verso__cell_read(verso__cell *c, void *buf, size_t n, int64_t off)
{
    int rc, src;

    if (!c->blob || n > (size_t)INT32_MAX || off < 0 || off > INT32_MAX)
        return VERSO_EINVAL;
    if ((rc = cell_current(c)) < 0)
        return rc;
    src = sqlite3_blob_read(c->blob, buf, (int)n, (int)off);
    if (src == SQLITE_OK)
        return 0;
    return verso__map_sqlite(src) ? verso__map_sqlite(src) : VERSO_EDB;
}

void verso__cell_close(verso__cell *c)
{
    if (!c)
        return;
    sqlite3_blob_close(c->blob);
    sqlite3_finalize(c->dv);
    sqlite3_finalize(c->ver);
    sqlite3_close_v2(c->snap); /* its read transaction ends with it */
    sqlite3_close_v2(c->look);
    verso__free(c);
}

/* ---- writing ---- */

static int cell_target(verso_table **t, int *col, verso_db *db, const char *table,
                       const char *column)
{
    int rc = verso__table_find(t, db, table);

    if (rc < 0)
        return rc;
    if ((*t)->replicated)
        return verso__err(db, VERSO_EREADONLY, "table %s is replicated (read-only here)",
                          (*t)->name);
    if ((*col = verso_table_column_index(*t, column)) < 0)
        return verso__err(db, VERSO_ENOTFOUND, "table %s has no column \"%s\"", (*t)->name, column);
    if ((*t)->cols[*col].type != VERSO_BLOB && (*t)->cols[*col].type != VERSO_ANY)
        return verso__err(db, VERSO_ETYPE,
                          "column %s.%s is %s: raw bytes go to BLOB or untyped columns", (*t)->name,
                          (*t)->cols[*col].name, verso_type_name((*t)->cols[*col].type));
    return 0;
}

/* Fills the zeroblob in pieces of at most 64 KiB. */
static int cell_fill(verso_db *db, const char *table, const char *column, int64_t id, int64_t len,
                     int (*fill)(void *buf, size_t n, void *arg), void *arg)
{
    sqlite3_blob *b = NULL;
    char buf[65536];
    int rc = 0, src;

    if (!len)
        return 0;
    src = sqlite3_blob_open(db->sq, "main", table, column, id, 1, &b);
    if (src != SQLITE_OK)
        return verso__sqlerr(db, src, "opening the value");
    for (int64_t off = 0; rc == 0 && off < len; off += (int64_t)sizeof(buf)) {
        size_t n = len - off < (int64_t)sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
        if ((rc = fill(buf, n, arg)) < 0)
            verso__err(db, rc, "reading the new value");
        else if ((src = sqlite3_blob_write(b, buf, (int)n, (int)off)) != SQLITE_OK)
            rc = verso__sqlerr(db, src, "writing the value");
    }
    sqlite3_blob_close(b);
    return rc;
}

int verso__cell_write(int64_t *version, verso_db *db, const char *table, int64_t id,
                      const char *column, int64_t len, int64_t expect,
                      int (*fill)(void *buf, size_t n, void *arg), void *arg)
{
    verso_value zero = {.type = VERSO_BLOB, .u.b = {NULL, (size_t)len}};
    const char *cols[1] = {column};
    verso_table *t;
    bool implicit;
    int col, rc;

    if (len < 0 || len > INT32_MAX)
        return verso__err(db, VERSO_ETOOBIG, "a value holds at most 2 GiB");
    if ((rc = cell_target(&t, &col, db, table, column)) < 0 ||
        (rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    if ((rc = verso_row_update(version, db, table, id, cols, &zero, 1, expect)) == 0)
        rc = cell_fill(db, t->name, column, id, len, fill, arg);
    return verso__wend(db, implicit, rc);
}
