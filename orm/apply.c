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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orm/internal.h"
#include "orm/service.h"

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

/* Removes every row and tombstone of t; *removed counts them. */
static int reset_table(int64_t *removed, verso_db *db, verso_table *t)
{
    verso_buf b = VERSO_BUF_INIT;
    verso_buf_printf(&b, "DELETE FROM %s", t->qname);
    int rc = b.data ? verso__exec(db, b.data) : verso__err(db, VERSO_ENOMEM, "out of memory");
    verso_buf_free(&b);
    *removed = rc == 0 ? sqlite3_changes64(db->sq) : 0;
    if (rc == 0 &&
        (rc = run_text(db, "DELETE FROM _verso_tombstones WHERE tbl = ?1", t->name)) == 0)
        *removed += sqlite3_changes64(db->sq);
    return rc;
}

/* A new identity, installed at commit: readers of this database's feed see
 * a new database. */
static int renew_identity(verso_db *db)
{
    verso__new_uuid(db->new_identity);
    int rc = verso__meta_set_text(db, "identity", db->new_identity);
    db->reset_identity = rc == 0;
    return rc;
}

static int reset_all(verso_db *db)
{
    int64_t removed;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < db->ntables; i++)
        if (db->tables[i]->replicated)
            rc = reset_table(&removed, db, db->tables[i]);
    if (rc == 0)
        rc = force_head(db, 0);
    if (rc == 0)
        rc = verso__meta_set_int(db, "horizon", 0);
    if (rc == 0)
        rc = verso__meta_set_text(db, "cursor_master", "");
    if (rc == 0)
        rc = verso__meta_set_int(db, "cursor_version", 0);
    if (rc == 0)
        rc = renew_identity(db);
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

#define KEY_FLAGS (VERSO_FIELD_ID | VERSO_FIELD_VERSION)

/* A column as the master declares it: NOT NULL columns added to a table
 * that has rows need a default; it is the one the ORM's migrations give
 * the master's own rows, so both sides hold the same value. */
static int column_decl(verso_buf *b, const verso_column *c, bool adding)
{
    static const char *const zero[] = {
        [VERSO_INT64] = "0", [VERSO_DOUBLE] = "0.0", [VERSO_TEXT] = "''", [VERSO_BLOB] = "x''",
        [VERSO_BOOL] = "0",  [VERSO_UUID] = "''",    [VERSO_ANY] = "0"};
    const char *type = c->type == VERSO_ANY ? "" : verso__type_decl(c->type);
    char *qc = verso__quote(c->name);
    int rc;
    if (!qc)
        return VERSO_ENOMEM;
    if (c->flags & VERSO_FIELD_ID)
        rc = verso_buf_printf(b, "%s INTEGER PRIMARY KEY", qc);
    else if (c->flags & VERSO_FIELD_VERSION)
        rc = verso_buf_printf(b, "%s INTEGER", qc);
    else if (c->flags & VERSO_FIELD_NOTNULL)
        rc = verso_buf_printf(b, "%s %s NOT NULL%s%s", qc, type, adding ? " DEFAULT " : "",
                              adding ? zero[c->type] : "");
    else
        rc = verso_buf_printf(b, "%s %s", qc, type);
    verso__free(qc);
    return rc;
}

static int create_replica(verso_db *db, const char *table, const verso_column *cols, size_t n)
{
    verso_buf b = VERSO_BUF_INIT;
    char *qt = verso__quote(table);
    int rc = qt ? verso_buf_printf(&b, "CREATE TABLE IF NOT EXISTS %s(", qt) : VERSO_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = verso_buf_puts(&b, ", ");
        if (rc == 0)
            rc = column_decl(&b, &cols[i], false);
    }
    if (rc == 0)
        rc = verso_buf_puts(&b, ")");
    rc = rc == 0 ? verso__exec(db, b.data) : verso__err(db, VERSO_ENOMEM, "out of memory");
    verso_buf_free(&b);
    verso__free(qt);
    return rc;
}

static int add_replica_column(verso_db *db, verso_table *t, const verso_column *c)
{
    verso_buf b = VERSO_BUF_INIT;
    int rc = verso_buf_printf(&b, "ALTER TABLE %s ADD COLUMN ", t->qname);
    if (rc == 0)
        rc = column_decl(&b, c, true);
    rc = rc == 0 ? verso__exec(db, b.data) : verso__err(db, VERSO_ENOMEM, "out of memory");
    verso_buf_free(&b);
    return rc;
}

/* The differences found so far, "; "-separated. */
typedef struct diffs {
    char text[VERSO__ERRLEN];
    size_t len;
} diffs;

static void diff_add(diffs *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void diff_add(diffs *d, const char *fmt, ...)
{
    va_list ap;
    if (d->len + 3 >= sizeof d->text)
        return;
    if (d->len)
        d->len += (size_t)snprintf(d->text + d->len, sizeof d->text - d->len, "; ");
    va_start(ap, fmt);
    int w = vsnprintf(d->text + d->len, sizeof d->text - d->len, fmt, ap);
    va_end(ap);
    d->len = w < 0 ? d->len : d->len + (size_t)w;
}

static const char *role_name(unsigned flags)
{
    return (flags & VERSO_FIELD_ID)        ? "the id"
           : (flags & VERSO_FIELD_VERSION) ? "the version"
                                           : "an ordinary column";
}

static const char *null_name(unsigned flags)
{
    return (flags & VERSO_FIELD_NOTNULL) ? "NOT NULL" : "nullable";
}

/* One master column against the local table; a column missing here is not
 * a difference unless it is the id or the version (it gets added). */
static void compare_column(diffs *d, const verso_table *t, const verso_column *m)
{
    int k = verso_table_column_index(t, m->name);
    const verso_column *l = k < 0 ? NULL : &t->cols[k];
    if (!l) {
        if (m->flags & KEY_FLAGS)
            diff_add(d, "column %s: %s on the master, missing here", m->name, role_name(m->flags));
    } else if ((l->flags & KEY_FLAGS) != (m->flags & KEY_FLAGS)) {
        diff_add(d, "column %s: %s on the master, %s here", m->name, role_name(m->flags),
                 role_name(l->flags));
    } else if (!(m->flags & KEY_FLAGS)) {
        if (l->type != m->type && l->type != VERSO_ANY && m->type != VERSO_ANY)
            diff_add(d, "column %s: %s on the master, %s here", m->name, verso_type_name(m->type),
                     verso_type_name(l->type));
        if ((l->flags ^ m->flags) & VERSO_FIELD_NOTNULL)
            diff_add(d, "column %s: %s on the master, %s here", m->name, null_name(m->flags),
                     null_name(l->flags));
    }
}

static bool has_column(const verso_column *cols, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (sqlite3_stricmp(cols[i].name, name) == 0)
            return true;
    return false;
}

/* VERSO_ESCHEMA naming every difference, or 0. */
static int compare_replica(verso_db *db, const verso_table *t, const verso_column *cols, size_t n)
{
    diffs d = {.len = 0};
    for (size_t i = 0; i < n; i++)
        compare_column(&d, t, &cols[i]);
    for (size_t i = 0; i < t->ncols; i++)
        if (!has_column(cols, n, t->cols[i].name))
            diff_add(&d, "column %s exists here but not on the master", t->cols[i].name);
    return d.len ? verso__err(db, VERSO_ESCHEMA, "table %s: %s", t->name, d.text) : 0;
}

/* Adds the master's columns missing here (an additive migration on the master). */
static int add_missing(bool *added, verso_db *db, verso_table *t, const verso_column *cols,
                       size_t n)
{
    int rc = 0;
    *added = false;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (verso_table_column_index(t, cols[i].name) < 0) {
            rc = add_replica_column(db, t, &cols[i]);
            *added = true;
        }
    }
    return rc;
}

/* Makes the table replicated here: created from the master's columns if
 * missing, tracked, marked. */
static int mark_replicated(verso_table **t, verso_db *db, const char *table,
                           const verso_column *cols, size_t n)
{
    const char *idc = NULL, *verc = NULL;
    for (size_t i = 0; i < n; i++) {
        if (cols[i].flags & VERSO_FIELD_ID)
            idc = cols[i].name;
        if (cols[i].flags & VERSO_FIELD_VERSION)
            verc = cols[i].name;
    }
    int rc = verso__head_flush(db);
    if (rc == 0 && !*t)
        rc = create_replica(db, table, cols, n);
    if (rc == 0)
        rc = verso__track_table(db, table, *t ? (*t)->cols[(*t)->id_idx].name : idc,
                                *t ? (*t)->cols[(*t)->ver_idx].name : verc, true);
    if (rc == 0 && (rc = verso__schema_load(db)) == 0 &&
        !(*t = (verso_table *)verso_db_table(db, table)))
        rc = verso__err(db, VERSO_ESCHEMA, "table %s could not be created", table);
    return rc;
}

static int is_empty(bool *empty, verso_db *db, const verso_table *t)
{
    verso_buf b = VERSO_BUF_INIT;
    sqlite3_stmt *st = NULL;
    verso_buf_printf(&b, "SELECT EXISTS(SELECT 1 FROM %s)", t->qname);
    if (!b.data)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    int src = sqlite3_prepare_v2(db->sq, b.data, -1, &st, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        *empty = sqlite3_column_int(st, 0) == 0;
    sqlite3_finalize(st);
    verso_buf_free(&b);
    return src == SQLITE_ROW ? 0 : verso__sqlerr(db, src, t->name);
}

/* Drops the table and makes it again from the master's columns. */
static int rebuild_replica(verso_table **t, verso_db *db, const char *table,
                           const verso_column *cols, size_t n)
{
    verso_buf b = VERSO_BUF_INIT;
    verso_buf_printf(&b, "DROP TABLE %s", (*t)->qname);
    int rc = b.data ? verso__exec(db, b.data) : verso__err(db, VERSO_ENOMEM, "out of memory");
    verso_buf_free(&b);
    if (rc == 0)
        rc = run_text(db, "DELETE FROM _verso_tables WHERE name = ?1", table);
    *t = NULL;
    return rc == 0 ? mark_replicated(t, db, table, cols, n) : rc;
}

/* Compares the table with the master's columns. A table without a C
 * declaration and without rows holds nothing of its own: if it differs it
 * is made again from the master's columns (a master recreated with another
 * schema, followed through a reset). */
static int match_replica(verso_table **t, verso_db *db, const char *table, const verso_column *cols,
                         size_t n)
{
    bool empty = false;
    int rc = compare_replica(db, *t, cols, n);
    if (rc == VERSO_ESCHEMA && !(*t)->def) {
        int erc = is_empty(&empty, db, *t);
        rc = erc < 0 ? erc : empty ? rebuild_replica(t, db, table, cols, n) : rc;
    }
    return rc;
}

/* A table that becomes replicated holds only what the master sends: rows
 * and tombstones written here before are removed. If there were any, this
 * database's history changed: it gets a new identity at commit, so its own
 * slaves resynchronise. */
static int clear_replica(verso_db *db, verso_table *t)
{
    int64_t removed = 0;
    int rc = reset_table(&removed, db, t);
    if (rc == 0 && removed && !db->reset_identity)
        rc = renew_identity(db);
    return rc;
}

/* ---- what replication does not own ---- */

/* The object of this database named like table (SQLite names ignore case):
 * 1 with its type and name copied, 0 if none. */
static int find_object(char type[16], char name[256], verso_db *db, const char *table)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq,
                                 "SELECT type, name FROM main.sqlite_master"
                                 " WHERE name = ?1 COLLATE NOCASE LIMIT 1",
                                 -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_ROW) {
        snprintf(type, 16, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(name, 256, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (src == SQLITE_ROW || src == SQLITE_DONE)
        return src == SQLITE_ROW;
    return verso__sqlerr(db, src, "schema");
}

/* A table that is not tracked here is the user's: a replica never takes
 * its name over without an explicit opt-in (verso_apply_replace). */
static int refuse_collision(verso_db *db, const char *table)
{
    char type[16], name[256];
    int found = find_object(type, name, db, table);
    if (found <= 0)
        return found;
    return verso__err(db, VERSO_ESCHEMA,
                      "table %s: the %s %s of this database is not a replica; not replaced (opt in "
                      "with --replace-tables)",
                      table, type, name);
}

/* Drops the object; a tracked table (named in another case) leaves the
 * change feed, which changes this database's history: new identity. */
static int drop_object(verso_db *db, const char *type, const char *name)
{
    static const struct {
        const char *type, *sql;
    } drops[] = {{"table", "DROP TABLE %s"},
                 {"view", "DROP VIEW %s"},
                 {"index", "DROP INDEX %s"},
                 {"trigger", "DROP TRIGGER %s"}};
    verso_buf b = VERSO_BUF_INIT;
    char *q = verso__quote(name);
    int rc = q ? verso__err(db, VERSO_ESCHEMA, "cannot replace the %s %s", type, name)
               : verso__err(db, VERSO_ENOMEM, "out of memory");
    for (size_t i = 0; q && i < sizeof drops / sizeof drops[0]; i++)
        if (!strcmp(drops[i].type, type))
            rc = verso_buf_printf(&b, drops[i].sql, q) < 0
                     ? verso__err(db, VERSO_ENOMEM, "out of memory")
                     : verso__exec(db, b.data);
    if (rc == 0 && !strcmp(type, "table") &&
        (rc = run_text(db, "DELETE FROM _verso_tables WHERE name = ?1", name)) == 0 &&
        sqlite3_changes64(db->sq) > 0) {
        rc = run_text(db, "DELETE FROM _verso_tombstones WHERE tbl = ?1", name);
        if (rc == 0 && !db->reset_identity)
            rc = renew_identity(db);
    }
    verso_buf_free(&b);
    verso__free(q);
    return rc;
}

int verso_apply_replace(verso_db *db, const char *table)
{
    char type[16], name[256];
    int found = 0, rc = need_apply(db);
    if (rc == 0 && table && !verso_db_table(db, table) &&
        (rc = found = find_object(type, name, db, table)) > 0)
        rc = drop_object(db, type, name);
    if (rc == 0 && found)
        rc = verso__schema_load(db);
    if (rc < 0)
        verso__after_error(db);
    return rc;
}

int verso_apply_table(verso_db *db, const char *table, const verso_column *columns, size_t n)
{
    verso_table *t;
    bool fresh, added = false;
    int rc = need_apply(db);
    if (rc == 0 && (!table || !verso__ident_ok(table)))
        rc = verso__err(db, VERSO_ESCHEMA, "bad table name \"%s\"", table ? table : "(null)");
    if (rc == 0)
        rc = check_master_columns(db, table, columns, n);
    if (rc < 0)
        return rc;
    t = (verso_table *)verso_db_table(db, table);
    fresh = !t || !t->replicated;
    if (!t)
        rc = refuse_collision(db, table);
    if (rc == 0 && fresh)
        rc = mark_replicated(&t, db, table, columns, n);
    if (rc == 0)
        rc = match_replica(&t, db, table, columns, n);
    if (rc == 0 && fresh)
        rc = clear_replica(db, t);
    if (rc == 0)
        rc = add_missing(&added, db, t, columns, n);
    if (rc == 0 && added)
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
        int64_t ignored;
        rc = verso__row_version(&ignored, &existed, db, t, id);
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
    verso__crashpoint("slave.apply.cursor");
    return verso__txn_commit(db);
}

int verso_apply_abort(verso_db *db)
{
    int rc = need_apply(db);
    if (rc == 0)
        verso__txn_rollback(db);
    return rc;
}

int verso_db_cursor(verso_cursor *out, verso_db *db)
{
    memset(out, 0, sizeof *out);
    verso__settle(db); /* never the cursor of a transaction that failed to end */
    int rc = verso__meta_get_text(out->master, sizeof out->master, db, "cursor_master");
    if (rc == 0)
        rc = verso__meta_get_int(&out->version, db, "cursor_version");
    return rc;
}
