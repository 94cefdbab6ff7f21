/*
 * Bootstrap from a file snapshot: an empty slave receives a consistent
 * copy of the master's database file (made with the backup API inside one
 * read transaction) and installs it with the backup API too, in one write
 * transaction of its own file, so its readers see nothing or everything.
 * Copying pages is several times faster than replaying rows through SQL.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sync/internal.h"

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

/* Makes the copy ours: our identity, replicated tables, the cursor. */
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
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
    return rc;
}

static void remove_file(const char *file)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[700];

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", file, suffix[i]);
        unlink(p);
    }
}

int verso__sync_snapshot_install(verso_db *db, const char *file, const char *master,
                                 int64_t version, char *why, size_t whylen)
{
    char identity[37];
    sqlite3 *src = NULL;
    sqlite3_backup *bk = NULL;
    int rc = VERSO_EDB;

    snprintf(identity, sizeof(identity), "%s", verso_db_identity(db));
    if (sqlite3_open_v2(file, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        fix_copy(src, identity, master, version) != SQLITE_OK) {
        verso__sync_why(why, whylen, "snapshot: %s", sqlite3_errmsg(src));
        goto done;
    }
    bk = sqlite3_backup_init(verso_db_sqlite(db), "main", src, "main");
    if (!bk || sqlite3_backup_step(bk, -1) != SQLITE_DONE) {
        verso__sync_why(why, whylen, "snapshot install: %s", sqlite3_errmsg(verso_db_sqlite(db)));
        goto done;
    }
    rc = 0;
done:
    if (bk && sqlite3_backup_finish(bk) != SQLITE_OK && rc == 0)
        rc = VERSO_EDB;
    sqlite3_close(src);
    remove_file(file);
    if (rc == 0 && (rc = verso_db_refresh_schema(db)) < 0)
        verso__sync_why(why, whylen, "snapshot schema: %s", verso_errmsg(db));
    return rc;
}
