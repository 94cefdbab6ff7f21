/*
 * orm/snapshot.c - file snapshots of a database (contracts in
 * orm/service.h). A snapshot is made with the backup API in one read
 * transaction and installed with it in one write transaction, so a
 * slave's readers see nothing or everything. Copying pages is several
 * times faster than replaying rows through SQL.
 */
#include <stdio.h>
#include <string.h>

#include "orm/internal.h"
#include "orm/service.h"

static void why_set(char *why, size_t whylen, const char *what, const char *detail)
{
    if (why && whylen)
        snprintf(why, whylen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

static int bind_exec(sqlite3 *s, const char *sql, const char *text, int64_t num)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s, sql, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        if (text)
            sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, 1, num);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    return rc;
}

#define META_SET                                                                                   \
    "INSERT INTO _verso_meta(key, value) VALUES('%s', ?1) "                                        \
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"

/* Makes the copy the slave's: its identity, replicated tables, the cursor. */
static int fix_copy(sqlite3 *s, const char *identity, const char *master, int64_t version)
{
    static const struct {
        const char *key;
        int text; /* 1 identity, 2 master, 0 version */
    } meta[] = {{"identity", 1}, {"cursor_master", 2}, {"cursor_version", 0}, {"horizon", 0}};
    char sql[200];
    int rc = sqlite3_exec(s, "BEGIN IMMEDIATE; UPDATE _verso_tables SET replicated = 1", NULL, NULL,
                          NULL);

    for (size_t i = 0; rc == SQLITE_OK && i < sizeof(meta) / sizeof(meta[0]); i++) {
        snprintf(sql, sizeof(sql), META_SET, meta[i].key);
        rc = bind_exec(s, sql,
                       meta[i].text == 1   ? identity
                       : meta[i].text == 2 ? master
                                           : NULL,
                       version);
    }
    if (rc == SQLITE_OK) {
        verso__crashpoint("snapshot.fixing");
        rc = sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
    }
    return rc;
}

/* The integer in the first column of sql's first row (NULL reads 0), -1 on error. */
static int64_t sql_i64(sqlite3 *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t snapshot_head(sqlite3 *s)
{
    return sql_i64(s, "SELECT v FROM _verso_head");
}

static int page_size(sqlite3 *s)
{
    return (int)sql_i64(s, "PRAGMA main.page_size");
}

/*
 * The backup API cannot change the page size of a WAL database: a copy of
 * a master whose pages differ from the slave's is rebuilt at the slave's
 * page size first (once, by VACUUM, in rollback-journal mode).
 */
static int match_page_size(sqlite3 *src, sqlite3 *dst)
{
    char sql[96];
    int want = page_size(dst);

    if (want <= 0)
        return SQLITE_ERROR;
    if (page_size(src) == want)
        return SQLITE_OK;
    snprintf(sql, sizeof(sql), "PRAGMA journal_mode=DELETE; PRAGMA page_size=%d; VACUUM;", want);
    if (sqlite3_exec(src, sql, NULL, NULL, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    return page_size(src) == want ? SQLITE_OK : SQLITE_ERROR;
}

/* 0 when every tracked row and tombstone of s is at most version, else < 0. */
static int versions_within(sqlite3 *s, int64_t version)
{
    sqlite3_stmt *st = NULL;
    int64_t top = sql_i64(s, "SELECT max(version) FROM _verso_tombstones");
    int rc = top >= 0 && top <= version ? 0 : -1; /* -1: unreadable, refused too */

    if (rc == 0 && sqlite3_prepare_v2(s, "SELECT name, version_column FROM _verso_tables", -1, &st,
                                      NULL) != SQLITE_OK)
        rc = -1;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        char *sql = sqlite3_mprintf("SELECT max(\"%w\") FROM \"%w\"", sqlite3_column_text(st, 1),
                                    sqlite3_column_text(st, 0));
        top = sql ? sql_i64(s, sql) : -1;
        sqlite3_free(sql);
        rc = top >= 0 && top <= version ? 0 : -1;
    }
    sqlite3_finalize(st);
    return rc;
}

/*
 * A received file is installed only if it is a sound database holding the
 * state it is announced as: it passes integrity_check, its head is version
 * and nothing in it is newer, so the cursor stored with it names its data.
 */
static int check_copy(sqlite3 *s, int64_t version, char *why, size_t whylen)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *r = NULL;
    bool ok = sqlite3_prepare_v2(s, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW && (r = sqlite3_column_text(st, 0)) &&
              strcmp((const char *)r, "ok") == 0;

    if (!ok)
        why_set(why, whylen, "snapshot: the file is damaged",
                r ? (const char *)r : sqlite3_errmsg(s));
    sqlite3_finalize(st);
    if (ok && (snapshot_head(s) != version || versions_within(s, version) < 0)) {
        why_set(why, whylen, "snapshot", "the file does not hold the announced head");
        ok = false;
    }
    return ok ? 0 : VERSO_EPROTO;
}

/*
 * A sound SQLite file is not yet a database verso can open: its table of tracked tables or its
 * meta table may say what verso cannot read. The copy is opened as verso opens a database
 * (read-only) before it replaces anything; once installed, the same reading must succeed.
 */
static int readable_copy(const char *file, char *why, size_t whylen)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *probe = NULL;
    char err[256] = "";
    int rc;

    o.readonly = true;
    o.must_exist = true;
    rc = verso_db_open(&probe, file, &o, err, sizeof(err));
    verso_db_close(probe);
    if (rc < 0) {
        why_set(why, whylen, "snapshot: the file is not a database verso can read", err);
        return VERSO_EPROTO;
    }
    return 0;
}

/* 1 if the file of s holds an object neither SQLite's nor verso's, 0 if not, < 0 on error. */
static int own_objects(sqlite3 *s)
{
    static const char q[] = "SELECT 1 FROM main.sqlite_master WHERE name NOT LIKE 'sqlite^_%'"
                            " ESCAPE '^' AND name NOT LIKE '^_verso^_%' ESCAPE '^' LIMIT 1";
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s, q, -1, &st, NULL);

    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : VERSO_EDB;
}

bool verso__snapshot_fits(verso_db *db)
{
    return db->ntables == 0 && own_objects(db->sq) == 0;
}

/*
 * Checked again once the backup holds db's write lock (a second
 * connection reads the committed schema, which nobody can change now):
 * a table the user made since the decision to ask for a snapshot is kept.
 */
static int still_fits(verso_db *db, char *why, size_t whylen)
{
    sqlite3 *chk = NULL;
    int own = VERSO_EDB;

    if (sqlite3_open_v2(db->path, &chk, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(chk, 5000);
        own = own_objects(chk);
    }
    sqlite3_close(chk);
    if (own != 0)
        why_set(why, whylen, "snapshot",
                own > 0 ? "the database has objects of its own now: not replaced"
                        : "cannot read the database's schema");
    return own == 0 ? 0 : own > 0 ? VERSO_ESTATE : own;
}

int verso__snapshot_install(verso_db *db, const char *file, const char *master, int64_t version,
                            char *why, size_t whylen)
{
    sqlite3 *src = NULL;
    sqlite3_backup *bk = NULL;
    int rc = VERSO_EDB;

    if (!verso__snapshot_fits(db)) {
        why_set(why, whylen, "snapshot", "the database is not empty: not replaced");
        rc = VERSO_ESTATE;
        goto done;
    }
    if (sqlite3_open_v2(file, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        why_set(why, whylen, "snapshot", sqlite3_errmsg(src));
        goto done;
    }
    if ((rc = check_copy(src, version, why, whylen)) < 0)
        goto done;
    rc = VERSO_EDB;
    if (match_page_size(src, db->sq) != SQLITE_OK ||
        fix_copy(src, db->identity, master, version) != SQLITE_OK) {
        why_set(why, whylen, "snapshot", sqlite3_errmsg(src));
        goto done;
    }
    if ((rc = readable_copy(file, why, whylen)) < 0)
        goto done;
    rc = VERSO_EDB;
    verso__crashpoint("snapshot.fixed");
    bk = sqlite3_backup_init(db->sq, "main", src, "main");
    if (!bk || sqlite3_backup_step(bk, 0) != SQLITE_OK) { /* takes db's write lock */
        why_set(why, whylen, "snapshot install", sqlite3_errmsg(db->sq));
        goto done;
    }
    if ((rc = still_fits(db, why, whylen)) < 0)
        goto done; /* a backup finished unfinished leaves db as it was */
    verso__crashpoint("snapshot.locked");
    rc = VERSO_EDB;
    if (sqlite3_backup_step(bk, -1) != SQLITE_DONE) {
        why_set(why, whylen, "snapshot install", sqlite3_errmsg(db->sq));
        goto done;
    }
    rc = 0;
done:
    if (bk && sqlite3_backup_finish(bk) != SQLITE_OK && rc == 0)
        rc = VERSO_EDB; /* an unfinished backup is rolled back */
    sqlite3_close(src);
    if (rc == 0)
        verso__crashpoint("snapshot.installed");
    if (rc == 0 && (rc = verso_db_refresh_schema(db)) < 0)
        why_set(why, whylen, "snapshot schema", db->errmsg);
    return rc;
}

/* ---- making one ---- */

/* Appends "DROP TABLE "name";" with the name's quotes doubled. */
static int drop_statement(verso_buf *b, const char *name)
{
    int rc = verso_buf_puts(b, "DROP TABLE \"");

    for (const char *p = name; rc == 0 && *p; p++) {
        rc = verso_buf_append(b, p, 1);
        if (rc == 0 && *p == '"')
            rc = verso_buf_append(b, p, 1);
    }
    return rc == 0 ? verso_buf_puts(b, "\";") : rc;
}

/*
 * The copy carries only what replication serves: tables outside tracking
 * are dropped, and secure_delete zeroes their pages.
 */
static int strip_untracked(sqlite3 *s)
{
    static const char q[] = "SELECT name FROM sqlite_master WHERE type = 'table'"
                            " AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"
                            " AND name NOT LIKE '^_verso^_%' ESCAPE '^'"
                            " AND name NOT IN (SELECT name FROM _verso_tables)";
    verso_buf sql = VERSO_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int rc = verso_buf_puts(&sql, "PRAGMA secure_delete = ON; BEGIN;");

    if (rc == 0 && sqlite3_prepare_v2(s, q, -1, &st, NULL) != SQLITE_OK)
        rc = VERSO_EDB;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = drop_statement(&sql, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc == 0)
        rc = verso_buf_puts(&sql, "COMMIT;");
    if (rc == 0 && sqlite3_exec(s, sql.data, NULL, NULL, NULL) != SQLITE_OK)
        rc = VERSO_EDB;
    verso_buf_free(&sql);
    return rc;
}

int verso__snapshot_make(int64_t *head, const char *src, const char *path, char *why, size_t whylen)
{
    sqlite3 *in = NULL, *out = NULL;
    sqlite3_backup *bk = NULL;
    int rc = VERSO_EDB;

    if (sqlite3_open_v2(src, &in, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_open_v2(path, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK) {
        why_set(why, whylen, "snapshot: cannot open", sqlite3_errmsg(out ? out : in));
        goto done;
    }
    sqlite3_busy_timeout(in, 5000);
    bk = sqlite3_backup_init(out, "main", in, "main");
    if (!bk || sqlite3_backup_step(bk, -1) != SQLITE_DONE) {
        sqlite3_backup_finish(bk);
        why_set(why, whylen, "snapshot copy", sqlite3_errmsg(out));
        goto done;
    }
    verso__crashpoint("master.snapshot.copying");
    if (sqlite3_backup_finish(bk) != SQLITE_OK ||
        sqlite3_exec(out, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK ||
        strip_untracked(out) < 0 || (*head = snapshot_head(out)) < 0) {
        why_set(why, whylen, "snapshot", sqlite3_errmsg(out));
        goto done;
    }
    rc = 0;
done:
    sqlite3_close(out);
    sqlite3_close(in);
    return rc;
}
