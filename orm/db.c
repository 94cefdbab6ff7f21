/* Opening and closing a database, metadata, identity, error detail. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "orm/internal.h"

int verso__err(verso_db *db, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof db->errmsg, fmt, ap);
    va_end(ap);
    db->errkind = VERSO__MSG_OWN;
    return code;
}

int verso__map_sqlite(int src)
{
    switch (src & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CONSTRAINT:
        return VERSO_ECONSTRAINT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return VERSO_EBUSY;
    case SQLITE_NOMEM:
        return VERSO_ENOMEM;
    case SQLITE_INTERRUPT:
        return VERSO_EINTERRUPTED;
    case SQLITE_FULL:
        return VERSO_EFULL;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
        return VERSO_EIO;
    default:
        return VERSO_EDB;
    }
}

/* A write that finds no room fails as SQLITE_FULL from the file's own writes,
 * but as SQLITE_IOERR_* (the shared-memory index growing, a size hint) where
 * SQLite only keeps the system's errno: both mean a full disk. */
static int map_db(verso_db *db, int src)
{
    int code = verso__map_sqlite(src);
    int sys = code == VERSO_EIO ? sqlite3_system_errno(db->sq) : 0;

    return sys == ENOSPC || sys == EDQUOT ? VERSO_EFULL : code;
}

int verso__sqlerr(verso_db *db, int src, const char *what)
{
    int code = map_db(db, src);
    if (code == 0)
        return 0;
    verso__err(db, code, "%s: %s", what, sqlite3_errmsg(db->sq));
    db->errkind = code == VERSO_ECONSTRAINT ? VERSO__MSG_CONSTRAINT : VERSO__MSG_SQLITE;
    return code;
}

int verso__exec(verso_db *db, const char *sql)
{
    char *msg = NULL;
    int src = sqlite3_exec(db->sq, sql, NULL, NULL, &msg);
    if (src == SQLITE_OK)
        return 0;
    int code = map_db(db, src);
    verso__err(db, code, "%s", msg ? msg : sqlite3_errstr(src));
    db->errkind = code == VERSO_ECONSTRAINT ? VERSO__MSG_CONSTRAINT : VERSO__MSG_SQLITE;
    sqlite3_free(msg);
    return code;
}

int verso__triggers(verso_db *db, bool on)
{
    int now;
    if (db->trig_on == on)
        return 0;
    int src = sqlite3_db_config(db->sq, SQLITE_DBCONFIG_ENABLE_TRIGGER, on ? 1 : 0, &now);
    if (src != SQLITE_OK || now != (on ? 1 : 0))
        return verso__err(db, VERSO_EDB, "cannot switch triggers %s", on ? "on" : "off");
    db->trig_on = on;
    return 0;
}

int verso__triggers_restore(verso_db *db)
{
    return verso__triggers(db, db->trig_mode && !db->applying);
}

void verso__new_uuid(char out[37])
{
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, out);
}

/* ---- metadata ---- */

static int meta_step(sqlite3_stmt **out, verso_db *db, const char *key)
{
    sqlite3_stmt *st = db->q[VERSO__Q_META_GET];
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    *out = st;
    if (src == SQLITE_ROW)
        return 1;
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, "reading metadata");
}

int verso__meta_get_int(int64_t *out, verso_db *db, const char *key)
{
    sqlite3_stmt *st;
    int rc = meta_step(&st, db, key);
    *out = 0;
    if (rc == 1) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        rc = 0;
    }
    return rc;
}

int verso__meta_get_text(char *out, size_t outlen, verso_db *db, const char *key)
{
    sqlite3_stmt *st;
    int rc = meta_step(&st, db, key);
    out[0] = '\0';
    if (rc == 1) {
        const unsigned char *s = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", s ? (const char *)s : "");
        sqlite3_reset(st);
        rc = 0;
    }
    return rc;
}

static int meta_set(verso_db *db, const char *key, const verso_value *v)
{
    sqlite3_stmt *st = db->q[VERSO__Q_META_SET];
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    verso__bind_value(st, 2, v);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, "writing metadata");
}

int verso__meta_set_int(verso_db *db, const char *key, int64_t v)
{
    verso_value val = VERSO_VALUE_INT(v);
    return meta_set(db, key, &val);
}

int verso__meta_set_text(verso_db *db, const char *key, const char *v)
{
    verso_value val = VERSO_VALUE_TEXT(v);
    return meta_set(db, key, &val);
}

/* ---- opening ---- */

static const char meta_schema[] =
    "CREATE TABLE IF NOT EXISTS _verso_head(v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _verso_meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS _verso_tables(name TEXT PRIMARY KEY, id_column TEXT NOT NULL,"
    " version_column TEXT NOT NULL, replicated INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS _verso_tombstones(version INTEGER PRIMARY KEY,"
    " tbl TEXT NOT NULL, id INTEGER NOT NULL, at INTEGER NOT NULL);"
    "INSERT INTO _verso_head(v) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM _verso_head);"
    "INSERT OR IGNORE INTO _verso_meta(key, value) VALUES ('horizon', 0), ('format', 1);";

#define TOMB4  "(?,?,?,?)"
#define TOMB8  TOMB4 "," TOMB4 "," TOMB4 "," TOMB4 "," TOMB4 "," TOMB4 "," TOMB4 "," TOMB4
#define TOMB32 TOMB8 "," TOMB8 "," TOMB8 "," TOMB8
_Static_assert(VERSO__TOMB_BATCH == 32, "VERSO__Q_TOMBSTONE_32 writes 32 rows");

static const char *const db_sql[VERSO__Q_COUNT] = {
    [VERSO__Q_BEGIN_W] = "BEGIN IMMEDIATE",
    [VERSO__Q_BEGIN_R] = "BEGIN",
    [VERSO__Q_COMMIT] = "COMMIT",
    [VERSO__Q_ROLLBACK] = "ROLLBACK",
    [VERSO__Q_HEAD_GET] = "SELECT v FROM _verso_head",
    [VERSO__Q_HEAD_SET] = "UPDATE _verso_head SET v = ?1 WHERE v = ?2",
    [VERSO__Q_HEAD_FORCE] = "UPDATE _verso_head SET v = ?1",
    [VERSO__Q_META_GET] = "SELECT value FROM _verso_meta WHERE key = ?1",
    /* an upsert, not a replace: an update in place leaves the key index alone (one page less
     * per commit that stores a cursor) */
    [VERSO__Q_META_SET] = "INSERT INTO _verso_meta(key, value) VALUES (?1, ?2)"
                          " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [VERSO__Q_SCHEMA_VER] = "PRAGMA schema_version",
    [VERSO__Q_DATA_VER] = "PRAGMA data_version",
    [VERSO__Q_TOMBSTONE] = "INSERT INTO _verso_tombstones(version, tbl, id, at) "
                           "VALUES (?1, ?2, ?3, ?4)",
    [VERSO__Q_TOMBSTONE_REP] = "INSERT OR REPLACE INTO _verso_tombstones(version, tbl, id, at) "
                               "VALUES (?1, ?2, ?3, ?4)",
    [VERSO__Q_TOMBSTONE_32] = "INSERT INTO _verso_tombstones(version, tbl, id, at) VALUES " TOMB32,
    [VERSO__Q_INFO] = "SELECT (SELECT v FROM _verso_head),"
                      " (SELECT value FROM _verso_meta WHERE key = 'horizon'),"
                      " (SELECT value FROM _verso_meta WHERE key = 'identity')",
};

static int prepare_db_statements(verso_db *db)
{
    for (int i = 0; i < VERSO__Q_COUNT; i++) {
        sqlite3_finalize(db->q[i]);
        db->q[i] = NULL;
        int src =
            sqlite3_prepare_v3(db->sq, db_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->q[i], NULL);
        if (src != SQLITE_OK)
            return verso__sqlerr(db, src, "preparing");
    }
    return 0;
}

/*
 * SQLite checkpoints the WAL inside the COMMIT that takes it past 1,000 pages (its
 * wal_autocheckpoint default), before verso's commit hooks run: a master's slaves then heard of
 * that commit a checkpoint later (milliseconds, with a sync when synchronous=FULL). verso keeps
 * the threshold and the PASSIVE mode but runs the checkpoint once the commit's watchers were
 * told (verso__commit_tail: after the hooks; a slave's applier, after its callback). Commits verso
 * does not make (SQL run through verso_db_exec outside a transaction) checkpoint at once, as SQLite
 * would.
 */
#define CKPT_FRAMES 1000

static int wal_hook(void *arg, sqlite3 *sq, const char *name, int frames)
{
    verso_db *db = arg;

    if (frames < CKPT_FRAMES)
        return SQLITE_OK;
    if (db->ckpt_defer || db->tail_hold)
        db->ckpt_due = true;
    else
        (void)sqlite3_wal_checkpoint_v2(sq, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

void verso__checkpoint_due(verso_db *db)
{
    if (!db->ckpt_due)
        return;
    db->ckpt_due = false;
    /* errors (SQLITE_BUSY under a reader) are SQLite's own autocheckpoint's: the next one
     * retries */
    (void)sqlite3_wal_checkpoint_v2(db->sq, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static int connect(verso_db *db, const char *path, const verso_db_options *o)
{
    int flags = o->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (!o->must_exist && !o->readonly)
        flags |= SQLITE_OPEN_CREATE;
    flags |= SQLITE_OPEN_NOMUTEX;
    int src = sqlite3_open_v2(path, &db->sq, flags, NULL);
    if (src != SQLITE_OK) {
        int code = db->sq ? verso__sqlerr(db, src, "opening")
                          : verso__err(db, VERSO_ENOMEM, "opening: out of memory");
        return code == VERSO_EIO ? VERSO_EDB : code;
    }
    sqlite3_extended_result_codes(db->sq, 0);
    sqlite3_busy_timeout(db->sq, o->busy_timeout_ms > 0    ? o->busy_timeout_ms
                                 : o->busy_timeout_ms == 0 ? 5000
                                                           : 0);
    db->trig_on = true; /* SQLite's default */
    int rc = verso__triggers(db, false);
    if (rc < 0 || o->readonly)
        return rc;
    rc = verso__exec(db, "PRAGMA journal_mode=WAL");
    if (rc == 0 && sqlite3_db_filename(db->sq, "main") && *sqlite3_db_filename(db->sq, "main"))
        db->wal_path = sqlite3_filename_wal(sqlite3_db_filename(db->sq, "main"));
    if (rc == 0)
        sqlite3_wal_hook(db->sq, wal_hook, db);
    if (rc == 0)
        rc = verso__exec(db, o->synchronous_full ? "PRAGMA synchronous=FULL"
                                                 : "PRAGMA synchronous=NORMAL");
    return rc;
}

static int create_identity(verso_db *db)
{
    char id[37];
    int rc = verso__meta_get_text(id, sizeof id, db, "identity");
    if (rc == 0 && id[0] == '\0') {
        verso__new_uuid(id);
        rc = verso__meta_set_text(db, "identity", id);
    }
    return rc;
}

/* The metadata and the identity come in one transaction: a failed first
 * open leaves the file as it found it, not half a verso database. */
static int create_meta(verso_db *db)
{
    int rc = verso__exec(db, "BEGIN IMMEDIATE");

    if (rc == 0 && (rc = verso__exec(db, meta_schema)) == 0 &&
        (rc = prepare_db_statements(db)) == 0 && (rc = create_identity(db)) == 0)
        rc = verso__exec(db, "COMMIT");
    if (rc < 0 && !sqlite3_get_autocommit(db->sq))
        sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int setup_schema(verso_db *db)
{
    bool implicit;
    int rc = verso__wbegin(db, &implicit);
    if (rc < 0)
        return rc;
    if ((rc = create_identity(db)) < 0)
        goto done;
    for (size_t i = 0; i < db->ndefs && rc == 0; i++)
        rc = verso__migrate_def(db, db->defs[i]);
    if (rc == 0)
        rc = verso__schema_load(db);
done:
    return verso__wend(db, implicit, rc);
}

static int check_defs(verso_db *db, const verso_db_options *o)
{
    if (o->ntables && !o->tables)
        return verso__err(db, VERSO_EINVAL, "tables is NULL but ntables is %zu", o->ntables);
    for (size_t i = 0; i < o->ntables; i++) {
        char why[256];
        if (!o->tables[i])
            return verso__err(db, VERSO_EINVAL, "tables[%zu] is NULL", i);
        if (verso_table_def_check(o->tables[i], why, sizeof why) < 0)
            return verso__err(db, VERSO_ESCHEMA, "%s", why);
        for (size_t j = 0; j < i; j++)
            if (sqlite3_stricmp(o->tables[i]->name, o->tables[j]->name) == 0)
                return verso__err(db, VERSO_ESCHEMA, "table %s declared twice", o->tables[i]->name);
    }
    if (o->ntables) {
        db->defs = verso__malloc(o->ntables * sizeof *db->defs);
        if (!db->defs)
            return verso__err(db, VERSO_ENOMEM, "out of memory");
        memcpy(db->defs, o->tables, o->ntables * sizeof *db->defs);
        db->ndefs = o->ntables;
    }
    return 0;
}

static int load_identity(verso_db *db)
{
    int rc = verso__meta_get_text(db->identity, sizeof db->identity, db, "identity");
    if (rc == 0 && strlen(db->identity) != 36)
        rc = verso__err(db, VERSO_ESCHEMA, "%s is not a verso database (no identity)", db->path);
    return rc;
}

/* A read-only handle cannot create the metadata: say what the file is. */
static int not_verso(verso_db *db, int rc)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq,
                                 "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name IN "
                                 "('_verso_head', '_verso_meta', '_verso_tables')",
                                 -1, &st, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return rc;
    return verso__err(db, VERSO_ESCHEMA,
                      "%s is not a verso database (no _verso_ metadata); open it read-write, "
                      "or run verso track on a table, to make it one",
                      db->path);
}

static bool up_to_date(verso_db *db)
{
    char id[37];
    if (verso__meta_get_text(id, sizeof id, db, "identity") < 0 || strlen(id) != 36)
        return false;
    for (size_t i = 0; i < db->ndefs; i++)
        if (!verso__def_current(db, db->defs[i]))
            return false;
    return true;
}

static int open_steps(verso_db *db, const char *path, const verso_db_options *o)
{
    int rc;
    if (!(db->path = verso__strdup(path)))
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    if ((rc = check_defs(db, o)) < 0 || (rc = connect(db, path, o)) < 0)
        return rc;
    /* A file that already holds everything is opened without a write lock,
     * so opening never waits for another process's long transaction. */
    if ((rc = prepare_db_statements(db)) < 0 && !o->readonly)
        rc = create_meta(db);
    if (rc < 0 && o->readonly)
        return not_verso(db, rc);
    if (rc == 0)
        rc = verso__schema_load(db);
    if (rc == 0 && !o->readonly && !up_to_date(db))
        rc = setup_schema(db);
    return rc < 0 ? rc : load_identity(db);
}

static void why_set(char *why, size_t whylen, const char *fmt, const char *a, const char *b)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, a, b);
}

int verso_db_open(verso_db **out, const char *path, const verso_db_options *opts, char *why,
                  size_t whylen)
{
    verso_db_options defaults = VERSO_DB_OPTIONS_INIT;
    const verso_db_options *o = opts ? opts : &defaults;
    int rc;
    *out = NULL;
    why_set(why, whylen, "%s%s", "", "");
    if (!path || o->version > VERSO_OPTIONS_VERSION) {
        why_set(why, whylen, "%s%s",
                path ? "options of a newer verso (version field)" : "path is NULL", "");
        return VERSO_EINVAL;
    }
    verso_db *db = verso__calloc(1, sizeof *db);
    if (!db) {
        why_set(why, whylen, "%s: %s", path, "out of memory");
        return VERSO_ENOMEM;
    }
    db->readonly = o->readonly;
    rc = open_steps(db, path, o);
    if (rc < 0) {
        why_set(why, whylen, "%s: %s", path, db->errmsg);
        verso_db_close(db);
        return rc;
    }
    db->errmsg[0] = '\0'; /* errors met and handled while opening */
    *out = db;
    return 0;
}

void verso_db_close(verso_db *db)
{
    if (!db)
        return;
    if (db->txn)
        verso__txn_rollback(db);
    verso__schema_free(db);
    for (int i = 0; i < VERSO__Q_COUNT; i++)
        sqlite3_finalize(db->q[i]);
    sqlite3_finalize(db->tomb_st);
    sqlite3_close_v2(db->sq);
    verso__free(db->changes);
    verso__free(db->defs);
    verso__free(db->path);
    verso__free(db);
}

const char *verso_db_errmsg(const verso_db *db)
{
    return db ? db->errmsg : "";
}

const char *verso_db_path(const verso_db *db)
{
    return db->path;
}

struct sqlite3 *verso_db_sqlite(verso_db *db)
{
    return db->sq;
}

const char *verso_db_identity(const verso_db *db)
{
    return db->identity;
}

int verso_db_info(verso_info *out, verso_db *db)
{
    sqlite3_stmt *st = db->q[VERSO__Q_INFO];

    verso__settle(db);
    memset(out, 0, sizeof *out);
    sqlite3_reset(st);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW ? 0 : verso__sqlerr(db, src, "reading info");
    if (rc == 0) {
        out->head = sqlite3_column_int64(st, 0);
        out->horizon = sqlite3_column_int64(st, 1);
        const unsigned char *id = sqlite3_column_text(st, 2);
        snprintf(out->identity, sizeof out->identity, "%s", id ? (const char *)id : "");
    }
    sqlite3_reset(st);
    return rc;
}
