/*
 * orm/dbfile.c - whole database files for the named databases of a dir
 * server (contracts in orm/dbfile.h).
 *
 * An uploaded file is checked on a bare connection that trusts nothing the
 * file declares, before the ORM (which runs the file's schema) opens it.
 * An adopted or copied file becomes a database of its own with a new
 * identity: a copy that kept its origin's identity would let a slave of the
 * origin take it for the same history and apply the copy's later versions
 * over its own (design: replication invariant 4).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orm/dbfile.h"
#include "orm/internal.h"
#include "orm/service.h"

static void why_set(char *why, size_t whylen, const char *fmt, const char *detail)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, detail ? detail : "");
}

/* The page size of a header (bytes 16-17, big-endian, 1 = 65536); 0 if invalid. */
static long header_page_size(const unsigned char *h)
{
    long n = (long)h[16] << 8 | h[17];

    if (n == 1)
        n = 65536;
    return n >= 512 && n <= 65536 && !(n & (n - 1)) ? n : 0;
}

/* SQLite's "SQLite format 3\0", a page size, whole pages: anything else is
 * refused before SQLite sees it (a zero-length file would open as empty). */
static int header_check(const char *path, char *why, size_t whylen)
{
    static const char magic[16] = "SQLite format 3";
    unsigned char h[100];
    struct stat st;
    ssize_t got = -1;
    long page;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = VERSO_EINVAL;

    if (fd < 0 || fstat(fd, &st) < 0) {
        why_set(why, whylen, "cannot read the upload: %s", strerror(errno));
        rc = VERSO_EIO;
    } else if (st.st_size == 0) {
        why_set(why, whylen, "%sit is empty (0 bytes)", "");
    } else if ((got = read(fd, h, sizeof(h))) != (ssize_t)sizeof(h)) {
        why_set(why, whylen, "%sit is shorter than a SQLite header (100 bytes)", "");
    } else if (memcmp(h, magic, sizeof(magic))) {
        why_set(why, whylen, "%sit does not begin with the SQLite header \"SQLite format 3\"", "");
    } else if (!(page = header_page_size(h)) || st.st_size % page) {
        why_set(why, whylen, "%sits header is damaged or the file is cut short (not whole pages)",
                "");
    } else {
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* A connection that runs none of the file's functions or triggers on its own. */
static int bare_open(sqlite3 **out, const char *path)
{
    int src = sqlite3_open_v2(path, out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

    if (src == SQLITE_OK)
        src = sqlite3_db_config(*out, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_db_config(*out, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_db_config(*out, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
    if (src == SQLITE_OK)
        sqlite3_busy_timeout(*out, 5000);
    return src;
}

static int integrity(sqlite3 *s, char *why, size_t whylen)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *r = NULL;
    int src = sqlite3_prepare_v2(s, "PRAGMA integrity_check(1)", -1, &st, NULL);

    if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        r = sqlite3_column_text(st, 0);
    if (r && !strcmp((const char *)r, "ok")) {
        sqlite3_finalize(st);
        return 0;
    }
    if (src == SQLITE_NOMEM) {
        sqlite3_finalize(st);
        return VERSO_ENOMEM;
    }
    why_set(why, whylen, "integrity_check fails: %s", r ? (const char *)r : sqlite3_errmsg(s));
    sqlite3_finalize(st);
    return VERSO_EINVAL;
}

int verso__dbfile_sqlite_check(const char *path, char *why, size_t whylen)
{
    sqlite3 *s = NULL;
    int rc = header_check(path, why, whylen), src;

    if (rc < 0)
        return rc;
    if ((src = bare_open(&s, path)) != SQLITE_OK) {
        why_set(why, whylen, "SQLite cannot open it: %s", s ? sqlite3_errmsg(s) : "out of memory");
        rc = src == SQLITE_NOMEM ? VERSO_ENOMEM : VERSO_EINVAL;
    } else {
        rc = integrity(s, why, whylen);
    }
    sqlite3_close(s);
    return rc;
}

/* ---- making it a database of its own ---- */

/* The highest version of the tracked rows and tombstones of db, into *top. */
static int top_version(int64_t *top, verso_db *db)
{
    int rc = 0;

    *top = 0;
    for (size_t i = 0; rc == 0 && i <= db->ntables; i++) {
        verso_table *t = i < db->ntables ? db->tables[i] : NULL;
        char *sql = t ? sqlite3_mprintf("SELECT max(%s) FROM %s", t->qcols[t->ver_idx], t->qname)
                      : sqlite3_mprintf("SELECT max(version) FROM _verso_tombstones");
        sqlite3_stmt *st = NULL;
        int src = sql ? sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL) : SQLITE_NOMEM;

        if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
            if (sqlite3_column_int64(st, 0) > *top)
                *top = sqlite3_column_int64(st, 0);
            src = SQLITE_OK;
        }
        rc = src == SQLITE_OK ? 0 : verso__sqlerr(db, src, "reading the versions");
        sqlite3_finalize(st);
        sqlite3_free(sql);
    }
    return rc;
}

/* One write transaction, triggers off: no statement of the file's runs. */
static int own_steps(verso_db *db)
{
    char id[37];
    int64_t top = 0;
    bool implicit = false;
    int rc = verso__wbegin(db, &implicit);

    if (rc == 0)
        rc = verso__triggers(db, false);
    if (rc == 0)
        rc = verso__exec(db, "UPDATE _verso_tables SET replicated = 0");
    if (rc == 0 && (rc = verso__meta_set_text(db, "cursor_master", "")) == 0)
        rc = verso__meta_set_int(db, "cursor_version", 0);
    verso__new_uuid(id);
    if (rc == 0)
        rc = verso__meta_set_text(db, "identity", id);
    if (rc == 0 && (rc = top_version(&top, db)) == 0 && top > db->head)
        db->head = top;
    return implicit ? verso__wend(db, implicit, rc) : rc;
}

/* verso_db_open's reason starts with the path: the caller's client must not
 * see where the server keeps its files. */
static void why_from_open(char *why, size_t whylen, const char *path, const char *text)
{
    size_t n = strlen(path);

    if (!strncmp(text, path, n) && !strncmp(text + n, ": ", 2))
        text += n + 2;
    why_set(why, whylen, "verso cannot use it: %s", text);
}

int verso__dbfile_make_own(const char *path, char *why, size_t whylen)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    char text[512] = "";
    int rc;

    o.must_exist = true;
    if ((rc = verso_db_open(&db, path, &o, text, sizeof(text))) < 0) {
        why_from_open(why, whylen, path, text);
        return rc == VERSO_ENOMEM ? rc : VERSO_EINVAL;
    }
    if ((rc = own_steps(db)) < 0)
        why_set(why, whylen, "making it a verso database: %s", db->errmsg);
    verso_db_close(db);
    return rc;
}

/* ---- a copy with the schema and no rows ---- */

static int exec_fmt(sqlite3 *s, char *sql)
{
    int src = sql ? sqlite3_exec(s, sql, NULL, NULL, NULL) : SQLITE_NOMEM;

    sqlite3_free(sql);
    return src;
}

/* Empties every tracked table (triggers are off on s: no tombstone). */
static int empty_tables(sqlite3 *s)
{
    sqlite3_stmt *st = NULL;
    int step = SQLITE_DONE,
        src = sqlite3_prepare_v2(s, "SELECT name FROM _verso_tables", -1, &st, NULL);

    while (src == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        src = exec_fmt(s, sqlite3_mprintf("DELETE FROM \"%w\"", sqlite3_column_text(st, 0)));
    if (src == SQLITE_OK && step != SQLITE_DONE)
        src = step;
    sqlite3_finalize(st);
    return src;
}

static int blank_copy(sqlite3 *s)
{
    char id[37];
    int src = sqlite3_exec(s, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    verso__new_uuid(id);
    if (src == SQLITE_OK)
        src = empty_tables(s);
    if (src == SQLITE_OK)
        src = sqlite3_exec(s,
                           "DELETE FROM _verso_tombstones; UPDATE _verso_head SET v = 0;"
                           "UPDATE _verso_tables SET replicated = 0;"
                           "UPDATE _verso_meta SET value = 0 WHERE key IN ('horizon', "
                           "'cursor_version');"
                           "UPDATE _verso_meta SET value = '' WHERE key = 'cursor_master';",
                           NULL, NULL, NULL);
    if (src == SQLITE_OK)
        src = exec_fmt(s, sqlite3_mprintf("UPDATE _verso_meta SET value = %Q WHERE key = "
                                          "'identity'",
                                          id));
    if (src == SQLITE_OK && sqlite3_table_column_metadata(s, "main", "sqlite_sequence", NULL, NULL,
                                                          NULL, NULL, NULL, NULL) == SQLITE_OK)
        src = sqlite3_exec(s, "DELETE FROM sqlite_sequence", NULL, NULL, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_exec(s, "COMMIT; VACUUM", NULL, NULL, NULL);
    if (src != SQLITE_OK && !sqlite3_get_autocommit(s))
        sqlite3_exec(s, "ROLLBACK", NULL, NULL, NULL);
    return src;
}

int verso__dbfile_schema_copy(const char *src, const char *path, char *why, size_t whylen)
{
    sqlite3 *s = NULL;
    int64_t head = 0;
    char text[256] = "";
    int rc = verso__snapshot_make(&head, src, path, text, sizeof(text));

    if (rc < 0) {
        why_set(why, whylen, "cannot copy the schema: %s", text);
        return rc;
    }
    if (bare_open(&s, path) != SQLITE_OK || blank_copy(s) != SQLITE_OK) {
        why_set(why, whylen, "cannot empty the copy: %s", s ? sqlite3_errmsg(s) : "out of memory");
        rc = VERSO_EDB;
    }
    sqlite3_close(s);
    return rc < 0 ? rc : verso__dbfile_make_own(path, why, whylen);
}
