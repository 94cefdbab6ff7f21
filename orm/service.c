/* orm/service.c - the calls rest/ and sync/ make instead of their own SQL
 * (contracts in orm/service.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "orm/internal.h"
#include "orm/service.h"

int64_t verso__monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int verso__db_schema_sync(bool *reloaded, verso_db *db)
{
    int64_t before = db->schema_version;
    int rc = verso__schema_check(db);
    if (reloaded)
        *reloaded = rc == 0 && db->schema_version != before;
    return rc;
}

static int pragma_i64(int64_t *out, verso_db *db, int q)
{
    sqlite3_stmt *st = db->q[q];
    int src;

    sqlite3_reset(st);
    src = sqlite3_step(st);
    *out = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return src == SQLITE_ROW ? 0 : verso__sqlerr(db, src, "reading the file's version");
}

int verso__db_changed(bool *data, bool *schema, verso_db *db, verso__db_mark *mark)
{
    int64_t dv, sv;
    int rc;

    *data = *schema = true;
    if ((rc = pragma_i64(&dv, db, VERSO__Q_DATA_VER)) < 0)
        return rc;
    if (dv == mark->data) {
        *data = *schema = false;
        return 0;
    }
    if ((rc = pragma_i64(&sv, db, VERSO__Q_SCHEMA_VER)) < 0)
        return rc;
    *schema = sv != mark->schema;
    *mark = (verso__db_mark){dv, sv};
    return 0;
}

/* Appends the current row of st (every column of t) as a JSON object. */
static int row_object(verso_buf *b, sqlite3_stmt *st, const verso_table *t)
{
    verso_value vals[VERSO__MAX_COLUMNS];

    for (size_t i = 0; i < t->ncols; i++)
        verso__column_value(&vals[i], st, (int)i, t->cols[i].type);
    return verso__json_row(b, t, vals, t->ncols);
}

/* One read; *stale when SQLite had to prepare the statement again (or could
 * not): the file's schema changed since the runtime schema was loaded. */
static int read_once(verso_buf *b, int64_t *version, bool *stale, verso_db *db, verso_table *t,
                     int64_t id)
{
    sqlite3_stmt *st;
    uint64_t all = t->ncols >= 64 ? ~0ull : (1ull << t->ncols) - 1;
    int rc = verso__stmt(&st, db, t, VERSO__ST_GET, all), src;
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    src = sqlite3_step(st);
    *stale = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_REPREPARE, 1) > 0 || src == SQLITE_ERROR ||
             src == SQLITE_SCHEMA;
    if (src == SQLITE_ROW) {
        *version = sqlite3_column_int64(st, t->ver_idx);
        rc = row_object(b, st, t);
    } else if (src == SQLITE_DONE) {
        rc = verso__err(db, VERSO_ENOTFOUND, "%s: no row with id %lld", t->name, (long long)id);
    } else {
        rc = verso__sqlerr(db, src, t->name);
    }
    sqlite3_reset(st);
    return rc;
}

int verso__row_json(verso_buf *b, int64_t *version, bool *reloaded, verso_db *db, const char *table,
                    int64_t id)
{
    size_t mark = b->len;
    verso_table *t = verso__table_lookup(db, table);
    bool stale = false;
    int rc;

    if (reloaded)
        *reloaded = false;
    if (!t)
        return verso__err(db, VERSO_ENOTFOUND, "no tracked table named \"%s\"", table);
    rc = read_once(b, version, &stale, db, t, id);
    /* Inside a transaction the schema cannot have changed since it began. */
    if (!stale || db->txn)
        goto done;
    if (b->data) {
        b->len = mark;
        b->data[mark] = '\0';
    }
    if ((rc = verso__schema_load(db)) < 0)
        goto done;
    if (reloaded)
        *reloaded = true;
    if (!(t = verso__table_lookup(db, table)))
        rc = verso__err(db, VERSO_ENOTFOUND, "no tracked table named \"%s\"", table);
    else
        rc = read_once(b, version, &stale, db, t, id);
done:
    if (rc < 0 && b->data) {
        b->len = mark;
        b->data[mark] = '\0';
    }
    return rc;
}

static int progress(void *arg)
{
    verso_db *db = arg;
    if (!db->budget_ms || verso__monotonic_ms() < db->budget_ms)
        return 0;
    db->budget_spent = true;
    return 1;
}

void verso__budget_set(verso_db *db, int64_t deadline_ms)
{
    if (!db)
        return;
    if (!db->budget_handler && deadline_ms) {
        sqlite3_progress_handler(db->sq, 1000, progress, db);
        db->budget_handler = true;
    }
    db->budget_ms = deadline_ms;
    if (deadline_ms)
        db->budget_spent = false;
}

bool verso__budget_spent(const verso_db *db)
{
    return db && db->budget_spent;
}

const char *verso__errmsg_public(char *out, size_t n, const verso_db *db)
{
    static const char check[] = "CHECK constraint failed";
    const char *at;

    if (!db || !n || db->errkind == VERSO__MSG_SQLITE || !db->errmsg[0])
        return NULL;
    at = db->errkind == VERSO__MSG_CONSTRAINT ? strstr(db->errmsg, check) : NULL;
    if (at)
        snprintf(out, n, "%.*s", (int)(at - db->errmsg + sizeof(check) - 1), db->errmsg);
    else
        snprintf(out, n, "%s", db->errmsg);
    return out;
}

int verso__row_exists(bool *exists, verso_db *db, const char *table, int64_t id)
{
    verso_table *t = verso__table_lookup(db, table);
    int64_t version;

    *exists = false;
    if (!t)
        return verso__err(db, VERSO_ENOTFOUND, "no tracked table named \"%s\"", table);
    return verso__row_version(&version, exists, db, t, id);
}

int verso__table_untracked(bool *exists, verso_db *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(
        db->sq, "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1", -1, &st,
        NULL);

    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    *exists = src == SQLITE_ROW && !verso__table_lookup(db, name);
    sqlite3_finalize(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, "reading schema");
}

int verso__horizon_raise(verso_db *db, int64_t version)
{
    if (!db->txn)
        return verso__err(db, VERSO_ESTATE, "the horizon is raised inside a transaction");
    return verso__meta_set_int(db, "horizon", version);
}
