/*
 * Bootstrap from a file snapshot: an empty slave receives a consistent
 * copy of the master's database file (made with the backup API inside one
 * read transaction) and installs it with the backup API too, in one write
 * transaction of its own file, so its readers see nothing or everything.
 * Copying pages is several times faster than replaying rows through SQL.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

bool verso__sync_snapshot_fits(verso_db *db)
{
    return verso_db_ntables(db) == 0 && own_objects(verso_db_sqlite(db)) == 0;
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

    if (sqlite3_open_v2(verso_db_path(db), &chk, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(chk, 5000);
        own = own_objects(chk);
    }
    sqlite3_close(chk);
    if (own != 0)
        verso__sync_why(why, whylen, "snapshot: %s",
                        own > 0 ? "the database has objects of its own now: not replaced"
                                : "cannot read the database's schema");
    return own == 0 ? 0 : own > 0 ? VERSO_ESTATE : own;
}

int verso__sync_snapshot_install(verso_db *db, const char *file, const char *master,
                                 int64_t version, char *why, size_t whylen)
{
    char identity[37];
    sqlite3 *src = NULL;
    sqlite3_backup *bk = NULL;
    int rc = VERSO_EDB;

    snprintf(identity, sizeof(identity), "%s", verso_db_identity(db));
    if (!verso__sync_snapshot_fits(db)) {
        verso__sync_why(why, whylen, "snapshot: the database is not empty: not replaced");
        rc = VERSO_ESTATE;
        goto done;
    }
    if (sqlite3_open_v2(file, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        fix_copy(src, identity, master, version) != SQLITE_OK) {
        verso__sync_why(why, whylen, "snapshot: %s", sqlite3_errmsg(src));
        goto done;
    }
    bk = sqlite3_backup_init(verso_db_sqlite(db), "main", src, "main");
    if (!bk || sqlite3_backup_step(bk, 0) != SQLITE_OK) { /* takes db's write lock */
        verso__sync_why(why, whylen, "snapshot install: %s", sqlite3_errmsg(verso_db_sqlite(db)));
        goto done;
    }
    if ((rc = still_fits(db, why, whylen)) < 0)
        goto done; /* a backup finished unfinished leaves db as it was */
    rc = VERSO_EDB;
    if (sqlite3_backup_step(bk, -1) != SQLITE_DONE) {
        verso__sync_why(why, whylen, "snapshot install: %s", sqlite3_errmsg(verso_db_sqlite(db)));
        goto done;
    }
    rc = 0;
done:
    if (bk && sqlite3_backup_finish(bk) != SQLITE_OK && rc == 0)
        rc = VERSO_EDB; /* an unfinished backup is rolled back */
    sqlite3_close(src);
    remove_file(file);
    if (rc == 0 && (rc = verso_db_refresh_schema(db)) < 0)
        verso__sync_why(why, whylen, "snapshot schema: %s", verso_errmsg(db));
    return rc;
}

/* ---- the master side: making a snapshot on a thread of its own ---- */

struct verso__sync_snap {
    pthread_mutex_t lock;
    int refs;
    int state; /* 0 copying, 1 ready, < 0 failed */
    char *src;
    char path[700];
    int fd;
    int64_t size;
    int64_t head;
};

static int64_t snapshot_head(sqlite3 *s)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_prepare_v2(s, "SELECT v FROM _verso_head", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

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

/*
 * Copies src into path with the backup API in one step (one read
 * transaction: a consistent state at its head), keeps only the tracked
 * tables, and returns an open descriptor; the file itself is removed.
 */
static int copy_file(int *fd, int64_t *size, int64_t *head, const char *src, const char *path)
{
    sqlite3 *in = NULL, *out = NULL;
    sqlite3_backup *bk = NULL;
    struct stat sb;
    int rc = VERSO_EDB;

    *fd = -1;
    if (sqlite3_open_v2(src, &in, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_open_v2(path, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        goto done;
    sqlite3_busy_timeout(in, 5000);
    bk = sqlite3_backup_init(out, "main", in, "main");
    if (!bk || sqlite3_backup_step(bk, -1) != SQLITE_DONE) {
        sqlite3_backup_finish(bk);
        goto done;
    }
    if (sqlite3_backup_finish(bk) != SQLITE_OK ||
        sqlite3_exec(out, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK ||
        strip_untracked(out) < 0 || (*head = snapshot_head(out)) < 0)
        goto done;
    sqlite3_close(out);
    out = NULL;
    if ((*fd = open(path, O_RDONLY)) < 0 || fstat(*fd, &sb) < 0)
        goto done;
    *size = sb.st_size;
    rc = 0;
done:
    if (rc < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    sqlite3_close(out);
    sqlite3_close(in);
    remove_file(path);
    return rc;
}

static void *snap_run(void *arg)
{
    verso__sync_snap *j = arg;
    int64_t size = 0, head = 0;
    int fd = -1, rc = copy_file(&fd, &size, &head, j->src, j->path);

    pthread_mutex_lock(&j->lock);
    j->fd = fd;
    j->size = size;
    j->head = head;
    j->state = rc < 0 ? rc : 1;
    pthread_mutex_unlock(&j->lock);
    verso__sync_snap_unref(j);
    return NULL;
}

int verso__sync_snap_start(verso__sync_snap **out, const char *db_path)
{
    static atomic_uint counter;
    verso__sync_snap *j = calloc(1, sizeof(*j));
    pthread_t th;

    *out = NULL;
    if (!j || !(j->src = strdup(db_path))) {
        free(j);
        return VERSO_ENOMEM;
    }
    pthread_mutex_init(&j->lock, NULL);
    j->fd = -1;
    j->refs = 2; /* the thread and the caller */
    snprintf(j->path, sizeof(j->path), "%s.snapshot-%ld-%u", db_path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    if (pthread_create(&th, NULL, snap_run, j) != 0) {
        j->refs = 1;
        verso__sync_snap_unref(j);
        return VERSO_ENOMEM;
    }
    pthread_detach(th);
    *out = j;
    return 0;
}

int verso__sync_snap_state(verso__sync_snap *j, int *fd, int64_t *size, int64_t *head)
{
    int st;

    pthread_mutex_lock(&j->lock);
    st = j->state;
    *fd = j->fd;
    *size = j->size;
    *head = j->head;
    pthread_mutex_unlock(&j->lock);
    return st;
}

void verso__sync_snap_ref(verso__sync_snap *j)
{
    pthread_mutex_lock(&j->lock);
    j->refs++;
    pthread_mutex_unlock(&j->lock);
}

void verso__sync_snap_unref(verso__sync_snap *j)
{
    int refs;

    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    refs = --j->refs;
    pthread_mutex_unlock(&j->lock);
    if (refs > 0)
        return;
    if (j->fd >= 0)
        close(j->fd);
    pthread_mutex_destroy(&j->lock);
    free(j->src);
    free(j);
}
