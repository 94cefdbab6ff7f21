/*
 * Write transactions, the in-memory version counter, commit hooks.
 *
 * The counter is loaded from _verso_head right after BEGIN IMMEDIATE (the
 * write lock is held, so no other writer can move it), incremented in memory
 * for every row the ORM writes, and written back before COMMIT and before
 * any statement whose triggers assign versions. The write-back checks that
 * _verso_head still holds the value this transaction left there: a raw
 * write on the sqlite3 handle in between would otherwise hand out a version
 * twice; the transaction fails instead.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "orm/internal.h"
#include "orm/service.h"

static int step_done(verso_db *db, sqlite3_stmt *st, const char *what)
{
    sqlite3_reset(st);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, what);
}

int verso__head_reload(verso_db *db)
{
    sqlite3_stmt *st = db->q[VERSO__Q_HEAD_GET];
    sqlite3_reset(st);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        sqlite3_reset(st);
        return verso__sqlerr(db, src == SQLITE_DONE ? SQLITE_CORRUPT : src, "reading the head");
    }
    db->head = db->head_db = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

int verso__head_flush(verso_db *db)
{
    int rc = verso__tomb_flush(db);
    if (rc < 0 || db->head == db->head_db)
        return rc;
    sqlite3_stmt *st = db->q[VERSO__Q_HEAD_SET];
    sqlite3_bind_int64(st, 1, db->head);
    sqlite3_bind_int64(st, 2, db->head_db);
    rc = step_done(db, st, "writing the head");
    if (rc == 0 && sqlite3_changes(db->sq) != 1)
        return verso__err(db, VERSO_ESTATE,
                          "the version counter was moved by a write on the raw sqlite3 handle "
                          "inside this transaction (use verso_db_exec)");
    if (rc == 0)
        db->head_db = db->head;
    return rc;
}

static void rollback(verso_db *db);

/* The schema is checked once the write lock is held: nothing can change it
 * afterwards but this transaction. */
/*
 * After a commit that wrote, in WAL mode: the -wal file's times are set to
 * now. The commit is visible by then, and the IN_ATTRIB event tells a
 * server watching the file from another process (rest/watch.c) at once,
 * instead of at its next re-check after the write events, which come
 * before the commit is visible. SQLite reads no file time; one system
 * call per commit, and a failure (rollback mode: no -wal) changes nothing.
 */
static bool commit_wrote(const verso_db *db)
{
    /* rows written (by triggers too) or the schema changed: something to see */
    return db->wal_path &&
           (sqlite3_total_changes64(db->sq) != db->changes_at_begin || db->schema_in_txn);
}

int verso__txn_open(verso_db *db)
{
    if (db->rollback_due)
        rollback(db);
    int rc = step_done(db, db->q[VERSO__Q_BEGIN_W], "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    db->txn = true;
    db->schema_in_txn = false;
    db->nchanges = 0;
    db->changes_at_begin = sqlite3_total_changes64(db->sq);
    if ((rc = verso__head_reload(db)) < 0 || (rc = verso__schema_recheck(db)) < 0)
        verso__txn_rollback(db);
    return rc;
}

static void clear_state(verso_db *db, bool committed)
{
    bool applied = db->applying;
    if (db->schema_in_txn && !committed)
        db->schema_version = -1; /* the cache may describe what was rolled back */
    db->txn = db->explicit_ = db->applying = db->reset_identity = db->schema_in_txn = false;
    db->nchanges = db->ntombs = 0;
    db->apply_last = 0;
    if (applied) /* cannot fail: the option is known to SQLite */
        verso__triggers_restore(db);
}

/* Ends SQLite's transaction; when even that fails (out of memory), the next
 * write transaction tries again first, or it would never begin. */
static void rollback(verso_db *db)
{
    if (!sqlite3_get_autocommit(db->sq) &&
        step_done(db, db->q[VERSO__Q_ROLLBACK], "ROLLBACK") < 0 && !sqlite3_get_autocommit(db->sq))
        sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
    db->rollback_due = !sqlite3_get_autocommit(db->sq);
}

void verso__settle(verso_db *db)
{
    if (!db->txn && db->rollback_due)
        rollback(db);
}

void verso__txn_rollback(verso_db *db)
{
    rollback(db);
    clear_state(db, false);
}

static void run_hooks(verso_db *db)
{
    if (!db->nhooks || !db->nchanges)
        return;
    verso_change *ch = db->changes;
    size_t n = db->nchanges, cap = db->capchanges, nhooks = db->nhooks;
    verso__hook hooks[VERSO__MAX_HOOKS];
    memcpy(hooks, db->hooks, sizeof hooks); /* a hook may add or remove hooks */
    db->changes = NULL;
    db->nchanges = db->capchanges = 0;
    for (size_t i = 0; i < nhooks; i++)
        hooks[i].fn(db, ch, n, hooks[i].arg);
    if (!db->changes) {
        db->changes = ch;
        db->capchanges = cap;
    } else {
        verso__free(ch);
    }
    db->nchanges = 0;
}

void verso__commit_tail_hold(verso_db *db, bool hold)
{
    db->tail_hold = hold;
}

void verso__commit_tail(verso_db *db)
{
    if (db->signal_due && db->wal_path)
        (void)utimensat(AT_FDCWD, db->wal_path, NULL, 0);
    db->signal_due = false;
    verso__checkpoint_due(db);
}

int verso__txn_commit(verso_db *db)
{
    int rc = verso__head_flush(db);
    if (rc == 0 && !db->applying)
        verso__crashpoint("orm.commit");
    db->ckpt_defer = true; /* after the hooks and the signal below */
    if (rc == 0)
        rc = step_done(db, db->q[VERSO__Q_COMMIT], "COMMIT");
    db->ckpt_defer = false;
    if (rc < 0) {
        verso__txn_rollback(db);
        return rc;
    }
    bool wrote = commit_wrote(db);
    if (db->reset_identity)
        memcpy(db->identity, db->new_identity, sizeof db->identity);
    size_t n = db->nchanges;
    clear_state(db, true);
    db->nchanges = n;
    run_hooks(db); /* in-process watchers (a master's) first: they need no file event */
    db->nchanges = 0;
    db->signal_due = wrote;
    if (!db->tail_hold)
        verso__commit_tail(db);
    return 0;
}

void verso__after_error(verso_db *db)
{
    if (db->txn && sqlite3_get_autocommit(db->sq))
        clear_state(db, false);
}

int verso__wbegin(verso_db *db, bool *implicit)
{
    *implicit = false;
    if (db->txn)
        return 0;
    if (db->readonly)
        return verso__err(db, VERSO_EDB, "database was opened read-only");
    int rc = verso__txn_open(db);
    *implicit = rc == 0;
    return rc;
}

int verso__wend(verso_db *db, bool implicit, int rc)
{
    if (!implicit) {
        if (rc < 0)
            verso__after_error(db);
        return rc;
    }
    if (rc < 0) {
        verso__txn_rollback(db);
        return rc;
    }
    int crc = verso__txn_commit(db);
    return crc < 0 ? crc : rc;
}

int verso__record_change(verso_db *db, const verso_table *t, int64_t id, int64_t version,
                         verso_change_kind kind)
{
    if (!db->nhooks)
        return 0;
    if (db->nchanges == db->capchanges) {
        size_t cap = db->capchanges ? db->capchanges * 2 : 64;
        verso_change *c = verso__realloc(db->changes, cap * sizeof *c);
        if (!c)
            return verso__err(db, VERSO_ENOMEM, "out of memory");
        db->changes = c;
        db->capchanges = cap;
    }
    db->changes[db->nchanges++] = (verso_change){t->name, id, version, kind};
    return 0;
}

/* ---- public API ---- */

int verso_db_begin(verso_db *db)
{
    if (db->txn)
        return verso__err(db, VERSO_ESTATE, "a transaction is already open");
    if (db->readonly)
        return verso__err(db, VERSO_EDB, "database was opened read-only");
    int rc = verso__txn_open(db);
    if (rc == 0)
        db->explicit_ = true;
    return rc;
}

int verso_db_commit(verso_db *db)
{
    if (!db->txn || !db->explicit_ || db->applying)
        return verso__err(db, VERSO_ESTATE, "no transaction opened with verso_db_begin");
    return verso__txn_commit(db);
}

int verso_db_rollback(verso_db *db)
{
    if (!db->txn || !db->explicit_ || db->applying)
        return verso__err(db, VERSO_ESTATE, "no transaction opened with verso_db_begin");
    verso__txn_rollback(db);
    return 0;
}

bool verso_in_transaction(const verso_db *db)
{
    return db->txn && db->explicit_;
}

int verso_db_batch(verso_db *db, int (*fn)(verso_db *db, void *arg), void *arg)
{
    if (!fn)
        return verso__err(db, VERSO_EINVAL, "fn is NULL");
    int rc = verso_db_begin(db);
    if (rc < 0)
        return rc;
    rc = fn(db, arg);
    if (!db->txn) /* the transaction ended inside fn (an error rolled it back) */
        return rc < 0 ? rc : verso__err(db, VERSO_ESTATE, "transaction ended inside batch");
    if (rc < 0) {
        verso__txn_rollback(db);
        return rc;
    }
    int crc = verso__txn_commit(db);
    return crc < 0 ? crc : rc;
}

int verso_db_on_commit(verso_db *db, verso_commit_fn fn, void *arg)
{
    if (!fn)
        return verso__err(db, VERSO_EINVAL, "hook function is NULL");
    if (db->nhooks == VERSO__MAX_HOOKS)
        return verso__err(db, VERSO_EINVAL, "at most %d hooks", VERSO__MAX_HOOKS);
    db->hooks[db->nhooks].fn = fn;
    db->hooks[db->nhooks].arg = arg;
    db->nhooks++;
    return 0;
}

int verso_db_on_commit_remove(verso_db *db, verso_commit_fn fn, void *arg)
{
    for (size_t i = 0; i < db->nhooks; i++) {
        if (db->hooks[i].fn == fn && db->hooks[i].arg == arg) {
            memmove(&db->hooks[i], &db->hooks[i + 1], (db->nhooks - i - 1) * sizeof db->hooks[0]);
            db->nhooks--;
            return 0;
        }
    }
    return verso__err(db, VERSO_ENOTFOUND, "no such hook");
}
