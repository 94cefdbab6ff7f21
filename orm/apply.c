/*
 * Replication apply: a master's changes written with the master's ids and
 * versions, in one transaction with the cursor.
 *
 * Rows carry their master version explicitly and a deletion writes its
 * tombstone with the master's version: the apply transaction runs without
 * triggers, the user's own included (like PostgreSQL's logical
 * replication, whose apply fires no ordinary triggers). At commit
 * _verso_head is the last applied master version: the slave's head equals
 * its cursor and it can serve its own slaves with the original versions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orm/internal.h"

static int need_apply(verso_db *db)
{
    return db->applying ? 0 : verso__err(db, VERSO_ESTATE, "not inside verso_apply_begin()");
}

static int force_head(verso_db *db, int64_t v)
{
    sqlite3_stmt *st = db->q[VERSO__Q_HEAD_FORCE];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, v);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return verso__sqlerr(db, src, "writing the head");
    db->head = db->head_db = v;
    return 0;
}

static int run_text(verso_db *db, const char *sql, const char *text)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, "apply");
}

static int reset_table(verso_db *db, verso_table *t)
{
    verso_buf b = VERSO_BUF_INIT;
    verso_buf_printf(&b, "DELETE FROM %s", t->qname);
    int rc = b.data ? verso__exec(db, b.data) : verso__err(db, VERSO_ENOMEM, "out of memory");
    verso_buf_free(&b);
    if (rc == 0)
        rc = run_text(db, "DELETE FROM _verso_tombstones WHERE tbl = ?1", t->name);
    return rc;
}

static int reset_all(verso_db *db)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < db->ntables; i++)
        if (db->tables[i]->replicated)
            rc = reset_table(db, db->tables[i]);
    if (rc == 0)
        rc = force_head(db, 0);
    if (rc == 0)
        rc = verso__meta_set_int(db, "horizon", 0);
    if (rc == 0)
        rc = verso__meta_set_text(db, "cursor_master", "");
    if (rc == 0)
        rc = verso__meta_set_int(db, "cursor_version", 0);
    if (rc == 0) {
        verso__new_uuid(db->new_identity);
        rc = verso__meta_set_text(db, "identity", db->new_identity);
        db->reset_identity = rc == 0;
    }
    return rc;
}

int verso_apply_begin(verso_db *db, bool reset)
{
    int rc;
    if (db->txn)
        return verso__err(db, VERSO_ESTATE, "a transaction is already open");
    if (db->readonly)
        return verso__err(db, VERSO_EDB, "database was opened read-only");
    if ((rc = verso__txn_open(db)) < 0)
        return rc;
    db->explicit_ = db->applying = true;
    db->apply_last = 0;
    /* Replicated writes carry the master's versions and tombstones: no
     * trigger runs for them, the user's included. */
    if ((rc = verso__triggers_restore(db)) == 0 && reset)
        rc = reset_all(db);
    if (rc < 0)
        verso__txn_rollback(db);
    return rc;
}

/* ---- tables ---- */

static int check_master_columns(verso_db *db, const char *table, const verso_column *cols, size_t n)
{
    size_t nid = 0, nver = 0;
    if (n == 0 || !cols || n > VERSO__MAX_COLUMNS)
        return verso__err(db, VERSO_EINVAL, "table %s: bad column list", table);
    for (size_t i = 0; i < n; i++) {
        if (!cols[i].name || !verso__ident_ok(cols[i].name))
            return verso__err(db, VERSO_ESCHEMA, "table %s: bad column name \"%s\"", table,
                              cols[i].name ? cols[i].name : "(null)");
        if (cols[i].type < VERSO_INT64 || cols[i].type > VERSO_ANY)
            return verso__err(db, VERSO_ESCHEMA, "table %s: column %s has a bad type", table,
                              cols[i].name);
        nid += !!(cols[i].flags & VERSO_FIELD_ID);
        nver += !!(cols[i].flags & VERSO_FIELD_VERSION);
    }
    if (nid != 1 || nver != 1)
        return verso__err(db, VERSO_ESCHEMA,
                          "table %s: need exactly one id and one version "
                          "column",
                          table);
    return 0;
}

static const char *col_decl(const verso_column *c)
{
    return c->type == VERSO_ANY ? "" : verso__type_decl(c->type);
}

static int create_replica(verso_db *db, const char *table, const verso_column *cols, size_t n)
{
    verso_buf b = VERSO_BUF_INIT;
    char *qt = verso__quote(table);
    verso_buf_printf(&b, "CREATE TABLE IF NOT EXISTS %s(", qt ? qt : "");
    for (size_t i = 0; i < n; i++) {
        char *qc = verso__quote(cols[i].name);
        if (cols[i].flags & VERSO_FIELD_ID)
            verso_buf_printf(&b, "%s%s INTEGER PRIMARY KEY", i ? ", " : "", qc ? qc : "");
        else
            verso_buf_printf(&b, "%s%s %s", i ? ", " : "", qc ? qc : "",
                             (cols[i].flags & VERSO_FIELD_VERSION) ? "INTEGER"
                                                                   : col_decl(&cols[i]));
        free(qc);
    }
    verso_buf_puts(&b, ")");
    int rc = qt && b.data ? verso__exec(db, b.data) : verso__err(db, VERSO_ENOMEM, "no memory");
    verso_buf_free(&b);
    free(qt);
    return rc;
}

static int add_replica_column(verso_db *db, verso_table *t, const verso_column *c)
{
    verso_buf b = VERSO_BUF_INIT;
    char *qc = verso__quote(c->name);
    verso_buf_printf(&b, "ALTER TABLE %s ADD COLUMN %s %s", t->qname, qc ? qc : "", col_decl(c));
    int rc = qc && b.data ? verso__exec(db, b.data) : verso__err(db, VERSO_ENOMEM, "no memory");
    verso_buf_free(&b);
    free(qc);
    return rc;
}

/* Compares the local table with the master's columns; adds missing ones. */
static int match_replica(bool *changed, verso_db *db, verso_table *t, const verso_column *cols,
                         size_t n)
{
    char diff[VERSO__ERRLEN] = "";
    size_t len = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int k = verso_table_column_index(t, cols[i].name);
        unsigned key = cols[i].flags & (VERSO_FIELD_ID | VERSO_FIELD_VERSION);
        if (k < 0 && !key) {
            rc = add_replica_column(db, t, &cols[i]);
            *changed = true;
        } else if (k < 0 || (t->cols[k].flags & (VERSO_FIELD_ID | VERSO_FIELD_VERSION)) != key ||
                   (t->cols[k].type != cols[i].type && t->cols[k].type != VERSO_ANY &&
                    cols[i].type != VERSO_ANY)) {
            len += (size_t)snprintf(diff + len, len < sizeof diff ? sizeof diff - len : 0,
                                    "%s%s (local %s, master %s)", len ? "; " : "", cols[i].name,
                                    k < 0 ? "missing" : verso_type_name(t->cols[k].type),
                                    verso_type_name(cols[i].type));
        }
    }
    if (rc == 0 && len)
        rc = verso__err(db, VERSO_ESCHEMA, "table %s differs from the master: %s", t->name, diff);
    return rc;
}

static int id_and_version(const char **idc, const char **verc, const verso_column *cols, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cols[i].flags & VERSO_FIELD_ID)
            *idc = cols[i].name;
        if (cols[i].flags & VERSO_FIELD_VERSION)
            *verc = cols[i].name;
    }
    return 0;
}

int verso_apply_table(verso_db *db, const char *table, const verso_column *columns, size_t n)
{
    const char *idc = NULL, *verc = NULL;
    verso_table *t;
    bool changed = false;
    int rc = need_apply(db);
    if (rc == 0 && (!table || !verso__ident_ok(table)))
        rc = verso__err(db, VERSO_ESCHEMA, "bad table name \"%s\"", table ? table : "(null)");
    if (rc == 0)
        rc = check_master_columns(db, table, columns, n);
    if (rc < 0)
        return rc;
    id_and_version(&idc, &verc, columns, n);
    t = (verso_table *)verso_db_table(db, table);
    if (!t || !t->replicated) {
        rc = verso__head_flush(db);
        if (rc == 0 && !t)
            rc = create_replica(db, table, columns, n);
        if (rc == 0)
            rc = verso__track_table(db, table, t ? t->cols[t->id_idx].name : idc,
                                    t ? t->cols[t->ver_idx].name : verc, true);
        if (rc == 0 && (rc = verso__schema_load(db)) == 0)
            t = (verso_table *)verso_db_table(db, table);
    }
    if (rc == 0 && !t)
        rc = verso__err(db, VERSO_ESCHEMA, "table %s could not be created", table);
    if (rc == 0) {
        changed = false;
        rc = match_replica(&changed, db, t, columns, n);
    }
    if (rc == 0 && changed)
        rc = verso__schema_load(db);
    if (rc < 0)
        verso__after_error(db);
    return rc;
}

/* ---- rows ---- */

static int replica_table(verso_table **t, verso_db *db, const char *table)
{
    int rc = need_apply(db);
    if (rc == 0 && !(*t = (verso_table *)verso_db_table(db, table ? table : "")))
        rc = verso__err(db, VERSO_ENOTFOUND, "no table \"%s\" (call verso_apply_table first)",
                        table ? table : "(null)");
    if (rc == 0 && !(*t)->replicated)
        rc = verso__err(db, VERSO_ESTATE, "table %s is not replicated here", table);
    return rc;
}

static int check_order(verso_db *db, int64_t version)
{
    if (version <= db->apply_last)
        return verso__err(db, VERSO_EINVAL, "applied versions must increase (%lld after %lld)",
                          (long long)version, (long long)db->apply_last);
    return 0;
}

static int row_exists(bool *out, verso_db *db, verso_table *t, int64_t id)
{
    sqlite3_stmt *st;
    int rc = verso__stmt(&st, db, t, VERSO__ST_VERSION, 0);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    *out = src == SQLITE_ROW;
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, t->name);
}

static int id_of(int64_t *id, const verso_table *t, const char *const *cols,
                 const verso_value *vals, size_t n)
{
    *id = 0;
    for (size_t i = 0; cols && vals && i < n; i++)
        if (cols[i] && sqlite3_stricmp(cols[i], t->cols[t->id_idx].name) == 0 &&
            vals[i].type == VERSO_INT64)
            *id = vals[i].u.i;
    return 0;
}

int verso_apply_upsert(verso_db *db, const char *table, const char *const *columns,
                       const verso_value *values, size_t n)
{
    verso_table *t;
    int64_t id = 0, version = 0;
    bool existed = true;
    int rc = replica_table(&t, db, table);
    if (rc == 0 && db->nhooks) {
        id_of(&id, t, columns, values, n);
        rc = row_exists(&existed, db, t, id);
    }
    if (rc == 0)
        rc = verso__row_upsert(db, t, columns, values, n, &id, &version);
    if (rc == 0 && (rc = check_order(db, version)) == 0) {
        db->apply_last = version;
        rc = verso__record_change(db, t, id, version,
                                  existed ? VERSO_CHANGE_UPDATE : VERSO_CHANGE_INSERT);
    }
    if (rc < 0)
        verso__after_error(db);
    return rc;
}

static int delete_row(verso_db *db, verso_table *t, int64_t id, int64_t version)
{
    sqlite3_stmt *st;
    int rc = verso__stmt(&st, db, t, VERSO__ST_DELETE, 0);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return verso__sqlerr(db, src, t->name);
    /* kept even for a row never seen here: cascaded slaves get the same stream */
    return verso__tombstone(db, t, id, version);
}

int verso_apply_delete(verso_db *db, const char *table, int64_t id, int64_t version)
{
    verso_table *t;
    int rc = replica_table(&t, db, table);
    if (rc == 0)
        rc = check_order(db, version);
    if (rc == 0)
        rc = delete_row(db, t, id, version);
    if (rc == 0) {
        db->apply_last = version;
        rc = verso__record_change(db, t, id, version, VERSO_CHANGE_DELETE);
    }
    if (rc < 0)
        verso__after_error(db);
    return rc;
}

/* ---- commit, abort, cursor ---- */

int verso_apply_commit(verso_db *db, const char *master_identity, int64_t version)
{
    int rc = need_apply(db);
    if (rc == 0 && (!master_identity || strlen(master_identity) > 36))
        rc = verso__err(db, VERSO_EINVAL, "bad master identity");
    if (rc < 0)
        return rc;
    if (version < db->apply_last)
        version = db->apply_last;
    rc = verso__meta_set_text(db, "cursor_master", master_identity);
    if (rc == 0)
        rc = verso__meta_set_int(db, "cursor_version", version);
    if (rc == 0)
        rc = force_head(db, version);
    if (rc < 0) {
        verso__txn_rollback(db);
        return rc;
    }
    return verso__txn_commit(db);
}

int verso_apply_abort(verso_db *db)
{
    int rc = need_apply(db);
    if (rc == 0)
        verso__txn_rollback(db);
    return rc;
}

int verso_cursor_get(verso_cursor *out, verso_db *db)
{
    memset(out, 0, sizeof *out);
    int rc = verso__meta_get_text(out->master, sizeof out->master, db, "cursor_master");
    if (rc == 0)
        rc = verso__meta_get_int(&out->version, db, "cursor_version");
    return rc;
}
