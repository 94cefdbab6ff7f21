/*
 * Statements run with the tracking triggers live: raw SQL (verso_db_exec), and
 * ORM writes on a connection in trigger mode (a tracked table has triggers of
 * its own). The counter is flushed to _verso_head before them and reloaded
 * after. With hooks registered, the changes are read back from the version
 * range the statements used, and inserts are told from updates by an update
 * hook.
 */
#include <stdlib.h>
#include <string.h>

#include "orm/internal.h"

typedef struct verso__ins {
    const verso_table *t;
    int64_t id;
} inserted;

typedef verso__fired exec_ctx;

static void on_update(void *arg, int op, const char *dbname, const char *tbl, sqlite3_int64 rowid)
{
    exec_ctx *x = arg;
    if (op != SQLITE_INSERT || strcmp(dbname, "main") != 0 || x->oom)
        return;
    const verso_table *t = verso_db_table(x->db, tbl);
    if (!t)
        return;
    if (x->nins == x->capins) {
        size_t cap = x->capins ? x->capins * 2 : 32;
        inserted *v = verso__realloc(x->ins, cap * sizeof *v);
        if (!v) {
            x->oom = true;
            return;
        }
        x->ins = v;
        x->capins = cap;
    }
    x->ins[x->nins++] = (inserted){t, rowid};
}

static bool was_inserted(const exec_ctx *x, const verso_table *t, int64_t id)
{
    for (size_t i = x->nins; i-- > 0;)
        if (x->ins[i].t == t && x->ins[i].id == id)
            return true;
    return false;
}

static int collect_table(verso_db *db, const exec_ctx *x, const verso_table *t, int64_t lo,
                         int64_t hi)
{
    verso_buf b = VERSO_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    unsigned mark = verso__nomem_count();
    verso_buf_printf(&b, "SELECT %s, %s FROM %s WHERE %s > ?1 AND %s <= ?2", t->qcols[t->id_idx],
                     t->qcols[t->ver_idx], t->qname, t->qcols[t->ver_idx], t->qcols[t->ver_idx]);
    if (!b.data || verso__nomem_count() != mark) {
        verso_buf_free(&b);
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    }
    src = sqlite3_prepare_v2(db->sq, b.data, -1, &st, NULL);
    verso_buf_free(&b);
    if (src != SQLITE_OK)
        return verso__sqlerr(db, src, "reading changes");
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi);
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        rc = verso__record_change(db, t, id, sqlite3_column_int64(st, 1),
                                  was_inserted(x, t, id) ? VERSO_CHANGE_INSERT
                                                         : VERSO_CHANGE_UPDATE);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = verso__sqlerr(db, src, "reading changes");
    sqlite3_finalize(st);
    return rc;
}

static int collect_tombstones(verso_db *db, int64_t lo, int64_t hi)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(db->sq,
                                         "SELECT version, tbl, id FROM _verso_tombstones "
                                         "WHERE version > ?1 AND version <= ?2",
                                         -1, &st, NULL);
    if (src != SQLITE_OK)
        return verso__sqlerr(db, src, "reading changes");
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi);
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const verso_table *t = verso_db_table(db, (const char *)sqlite3_column_text(st, 1));
        if (t)
            rc = verso__record_change(db, t, sqlite3_column_int64(st, 2),
                                      sqlite3_column_int64(st, 0), VERSO_CHANGE_DELETE);
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = verso__sqlerr(db, src, "reading changes");
    sqlite3_finalize(st);
    return rc;
}

static int by_version(const void *a, const void *b)
{
    int64_t x = ((const verso_change *)a)->version, y = ((const verso_change *)b)->version;
    return (x > y) - (x < y);
}

static int collect(verso_db *db, const exec_ctx *x, int64_t lo, int64_t hi)
{
    size_t first = db->nchanges;
    int rc = 0;
    if (x->oom)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < db->ntables; i++)
        rc = collect_table(db, x, db->tables[i], lo, hi);
    if (rc == 0)
        rc = collect_tombstones(db, lo, hi);
    if (rc == 0)
        qsort(db->changes + first, db->nchanges - first, sizeof *db->changes, by_version);
    return rc;
}

int verso__fire_begin(verso__fired *x, verso_db *db, int64_t lo)
{
    memset(x, 0, sizeof *x);
    x->db = db;
    x->lo = lo;
    int rc = verso__head_flush(db);
    if (rc == 0 && db->nhooks)
        sqlite3_update_hook(db->sq, on_update, x);
    return rc;
}

int verso__fire_end(verso__fired *x, int rc, const verso_table *own, int64_t id,
                    verso_change_kind kind)
{
    verso_db *db = x->db;
    if (db->nhooks)
        sqlite3_update_hook(db->sq, NULL, NULL);
    if (sqlite3_get_autocommit(db->sq)) {
        if (rc == 0)
            rc =
                verso__err(db, VERSO_ESTATE, "the SQL ended the transaction verso_db_exec runs in");
        goto done;
    }
    int lrc = verso__head_reload(db); /* the triggers moved _verso_head */
    if (rc == 0)
        rc = lrc;
    if (lrc < 0 || !db->nhooks || db->head <= x->lo)
        goto done;
    if (rc == 0 && own && db->head == x->lo + 1)
        rc = verso__record_change(db, own, id, db->head, kind);
    else if (rc == 0)
        rc = collect(db, x, x->lo, db->head);
    else
        collect(db, x, x->lo, db->head); /* what a failed statement left is reported too */
done:
    verso__free(x->ins);
    x->ins = NULL;
    return rc;
}

/* PRAGMA foreign_keys is a no-op inside a transaction, and verso_db_exec
 * always runs in one: the setting is noted while the SQL is prepared and
 * applied on the connection once the implicit transaction has committed;
 * inside an explicit transaction it is refused before it runs. */
typedef struct fk_pragma {
    bool refuse; /* an explicit transaction is open */
    int value;   /* -1: not set by the SQL, else 0 or 1 */
    bool refused;
} fk_pragma;

static int fk_boolean(const char *v)
{
    static const char *const yes[] = {"on", "yes", "true"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (sqlite3_stricmp(v, yes[i]) == 0)
            return 1;
    return atoi(v) != 0;
}

static int on_authorize(void *arg, int action, const char *name, const char *value,
                        const char *schema, const char *trigger)
{
    fk_pragma *fk = arg;
    (void)schema;
    (void)trigger;
    if (action != SQLITE_PRAGMA || !name || !value || sqlite3_stricmp(name, "foreign_keys") != 0)
        return SQLITE_OK;
    if (fk->refuse) {
        fk->refused = true;
        return SQLITE_DENY;
    }
    fk->value = fk_boolean(value);
    return SQLITE_OK;
}

static int fk_apply(verso_db *db, const fk_pragma *fk, int rc)
{
    if (fk->refused)
        return verso__err(db, VERSO_ESTATE,
                          "PRAGMA foreign_keys takes effect only outside a transaction: run it "
                          "with verso_db_exec() before verso_db_begin() or after the commit");
    if (rc < 0 || fk->value < 0)
        return rc;
    return verso__exec(db, fk->value ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF");
}

static int exec_steps(verso_db *db, const char *sql)
{
    verso__fired x;
    int rc = verso__fire_begin(&x, db, db->head);
    if (rc == 0)
        rc = verso__triggers(db, true);
    if (rc == 0)
        rc = verso__exec(db, sql);
    if (!sqlite3_get_autocommit(db->sq)) {
        /* the statements may have created or dropped tables or triggers (a
         * TEMP trigger leaves the file's schema version as it was) */
        int64_t before = db->schema_version;
        int src = verso__schema_recheck(db);
        if (src == 0 && db->schema_version == before)
            src = verso__detect_triggers(db);
        if (rc == 0)
            rc = src;
    }
    int trc = verso__triggers_restore(db);
    if (rc == 0)
        rc = trc;
    return verso__fire_end(&x, rc, NULL, 0, VERSO_CHANGE_UPDATE);
}

int verso_db_exec(verso_db *db, const char *sql)
{
    bool implicit;
    int rc;
    if (!sql)
        return verso__err(db, VERSO_EINVAL, "sql is NULL");
    if ((rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    fk_pragma fk = {.refuse = !implicit, .value = -1};
    /* setting an authorizer expires the connection's statements: only when
     * the SQL may hold the pragma */
    bool fk_watch = sqlite3_strlike("%foreign_keys%", sql, 0) == 0;
    if (fk_watch)
        sqlite3_set_authorizer(db->sq, on_authorize, &fk);
    rc = exec_steps(db, sql);
    if (fk_watch)
        sqlite3_set_authorizer(db->sq, NULL, NULL);
    if (fk.refused)
        rc = fk_apply(db, &fk, rc);
    rc = verso__wend(db, implicit, rc);
    return fk.refused ? rc : fk_apply(db, &fk, rc);
}
