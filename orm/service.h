/*
 * service.h - what rest/ and sync/ ask of the ORM (internal; not installed).
 *
 * orm/ is the only code that speaks SQL to verso's tables: the servers go
 * through these calls instead of running statements on the ORM's
 * connection. Each call is for the thread that uses db.
 */
#ifndef VERSO_ORM_SERVICE_H
#define VERSO_ORM_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "verso/orm.h"

/*
 * Reloads db's runtime schema when another connection changed the file's
 * schema since the last load (one PRAGMA when nothing changed). *reloaded
 * (may be NULL) says whether it did. Inside a transaction nothing is done.
 * Errors: VERSO_EDB, VERSO_ENOMEM.
 */
int verso__db_schema_sync(bool *reloaded, verso_db *db);

/*
 * Appends the row `id` of the tracked table named `table` to b as a JSON
 * object (verso_json_value for each column), and gives its version. Reads
 * through the table's cached statement; when the file's schema changed
 * under it (SQLite prepared it again), the runtime schema is reloaded and
 * the row read once more. On error b is as it was; the detail
 * (verso_db_errmsg) names the table and id. *reloaded (may be NULL) says
 * whether the schema was reloaded.
 * Errors: VERSO_ENOTFOUND (no such table or row), VERSO_EINTERRUPTED (the
 * time budget ran out), VERSO_EDB, VERSO_ENOMEM.
 */
int verso__row_json(verso_buf *b, int64_t *version, bool *reloaded, verso_db *db, const char *table,
                    int64_t id);

/*
 * A time budget for the statements run on db: once CLOCK_MONOTONIC passes
 * deadline_ms (milliseconds), a running statement stops and its call fails
 * with VERSO_EINTERRUPTED. 0 removes the budget. Setting one also clears
 * verso__budget_spent().
 */
void verso__budget_set(verso_db *db, int64_t deadline_ms);

/* Whether the budget stopped a statement since it was last set. */
bool verso__budget_spent(const verso_db *db);

/*
 * The detail of db's last error in words fit for a server's client: verso's
 * own messages, and SQLite's constraint messages with a CHECK constraint's
 * expression cut off (it is SQL from the schema), written to out (n bytes).
 * NULL when the detail is other SQLite text (it may quote SQL or paths):
 * the caller then shows the code's generic text.
 */
const char *verso__errmsg_public(char *out, size_t n, const verso_db *db);

/* ---- one column's raw value, in pieces (orm/blob.c; the blob routes) ---- */

typedef struct verso__cell verso__cell;

typedef struct verso__cell_info {
    verso_type type; /* the value's storage class: VERSO_NULL, INT64, DOUBLE, TEXT or BLOB */
    int64_t len;     /* bytes of a TEXT or BLOB value, else 0 */
    int64_t version; /* the row's version */
} verso__cell_info;

/*
 * Opens column of row id of the tracked table for reading, on two read-only
 * connections of its own to db's file: one holds a read snapshot until
 * verso__cell_close() (what is read is the value of info->version, whatever
 * commits later), the other notices a newer version. info is filled for
 * any value; only TEXT and BLOB values can be read. The caller closes *out
 * (also when the value is not readable). Independent of db afterwards but
 * for error details. Errors: VERSO_ENOTFOUND (no such table, column or row:
 * the detail says which), VERSO_EBUSY, VERSO_EDB, VERSO_ENOMEM.
 */
int verso__cell_open(verso__cell **out, verso__cell_info *info, verso_db *db, const char *table,
                     int64_t id, const char *column);

/*
 * Reads n bytes at off of the value. First checks that the row still has
 * the version it had at open (one PRAGMA when nothing was committed since
 * the last check, plus a read of the version when something was). Needs
 * nothing of the verso_db it was opened with (which may be closed by now).
 * Errors (no detail): VERSO_ECONFLICT (the row was changed or deleted),
 * VERSO_EINVAL (not a TEXT or BLOB value, or off/n outside it), VERSO_EBUSY,
 * VERSO_EDB.
 */
int verso__cell_read(verso__cell *c, void *buf, size_t n, int64_t off);

/* Ends the snapshot and closes the connections. NULL: no-op. */
void verso__cell_close(verso__cell *c);

/*
 * Sets column (declared BLOB, or untyped) of row id of the tracked table to
 * len bytes supplied by fill (called in order for pieces of at most 64 KiB;
 * returns 0 or a negative VERSO_E*), in one write transaction (or inside
 * the open one): zeroblob(len) with the row's new version, then
 * incremental writes. expect > 0: the row must have that version. *version
 * gets the new one. Memory stays bounded when the column is the row's last
 * with data; SQLite builds the row in memory otherwise.
 * Errors: VERSO_ENOTFOUND (table, column, row), VERSO_ECONFLICT (expect),
 * VERSO_EREADONLY (replicated table), VERSO_ETYPE (column type),
 * VERSO_ETOOBIG (len above 2 GiB - 1), fill's error, VERSO_EFULL, VERSO_EDB.
 */
int verso__cell_write(int64_t *version, verso_db *db, const char *table, int64_t id,
                      const char *column, int64_t len, int64_t expect,
                      int (*fill)(void *buf, size_t n, void *arg), void *arg);

/* ---- replication (sync/) ---- */

/* Where verso__db_changed() last looked: the file's data and schema
 * versions. VERSO__DB_MARK_INIT matches no file. */
typedef struct verso__db_mark {
    int64_t data;
    int64_t schema;
} verso__db_mark;
#define VERSO__DB_MARK_INIT ((verso__db_mark){-1, -1})

/*
 * Whether db's file changed since mark, which then moves to now: *data when
 * another connection (of this process or another) committed, *schema when
 * that commit also changed the file's schema. Commits made through db itself
 * do not count. One statement when nothing changed, two otherwise; from
 * VERSO__DB_MARK_INIT both are true. On error both are true (look again) and
 * mark is unchanged. Errors: VERSO_EDB.
 */
int verso__db_changed(bool *data, bool *schema, verso_db *db, verso__db_mark *mark);

/*
 * *exists says whether table (a tracked table's name) has a row with this id,
 * through the table's cached statement. Errors: VERSO_ENOTFOUND (no such
 * table), VERSO_EDB.
 */
int verso__row_exists(bool *exists, verso_db *db, const char *table, int64_t id);

/* *exists says whether db's file has a table named name (exact spelling)
 * that db does not track. Errors: VERSO_EDB. */
int verso__table_untracked(bool *exists, verso_db *db, const char *name);

/*
 * What a commit does once its in-process hooks ran (txn.c): it sets the -wal file's times for
 * other processes' watches (a commit that wrote), then runs the WAL checkpoint SQLite would
 * have run inside the COMMIT at 1,000 pages (db.c). With hold set, verso__commit_tail() waits
 * for the caller: a slave's applier calls it after its callback, so a reader in the slave's
 * process hears of the commit first.
 */
void verso__commit_tail_hold(verso_db *db, bool hold);
void verso__commit_tail(verso_db *db);

/*
 * Raises db's tombstone horizon to version inside the open transaction
 * (after a full resynchronisation the slave holds no tombstone older than
 * the master version it now equals, so its own slaves behind that must
 * resynchronise). Errors: VERSO_ESTATE (no transaction), VERSO_EDB.
 */
int verso__horizon_raise(verso_db *db, int64_t version);

/* Whether db's file holds nothing but verso's metadata: no tracked table
 * and no table, view, index or trigger of the user's. */
bool verso__snapshot_fits(verso_db *db);

/*
 * Makes a file snapshot of the database file src at path: a copy made with
 * the backup API in one read transaction (a consistent state), in rollback
 * journal mode, holding only verso's tables and the tracked tables (others
 * are dropped, their pages zeroed). *head is the version it holds. On error
 * path may be left behind (the caller removes it); why (may be NULL) gets a
 * reason. Errors: VERSO_EDB, VERSO_ENOMEM.
 */
int verso__snapshot_make(int64_t *head, const char *src, const char *path, char *why,
                         size_t whylen);

/*
 * Installs the snapshot file into db in one write transaction (backup API):
 * the copy gets db's identity, every table marked replicated, the cursor
 * (master, version) and horizon version. Only into a file that
 * verso__snapshot_fits(), checked again once the write lock is held, and
 * only a file that passes integrity_check and holds head version with
 * nothing newer. Reloads db's runtime schema. The file is modified (not
 * removed). Errors: VERSO_ESTATE (db holds something of its own),
 * VERSO_EPROTO (the file is damaged or holds another state), VERSO_EDB.
 */
int verso__snapshot_install(verso_db *db, const char *file, const char *master, int64_t version,
                            char *why, size_t whylen);

/*
 * Where the bytes of an applied blob come from: fills buf with the len bytes
 * at offset. 0, or a negative VERSO_E* that ends the write.
 */
typedef int (*verso__blob_fill_fn)(unsigned char *buf, size_t len, int64_t offset, void *arg);

/*
 * Inside the apply transaction (orm/applyblob.c): writes the n bytes fill()
 * gives into column of row id of the replicated table, which must hold a
 * blob of exactly n bytes (the zeroblob verso_apply_upsert() wrote for a
 * blob value with data NULL). Incremental blob I/O in chunks of 64 KiB: no
 * buffer of the blob's size. Does not move any version. On failure the
 * caller aborts the transaction. Errors: VERSO_ESTATE (not applying),
 * VERSO_ENOTFOUND (no such table or row), VERSO_EPROTO (the value is not a
 * blob of n bytes), fill()'s error, VERSO_EDB, VERSO_EFULL, VERSO_ENOMEM.
 */
int verso__apply_blob(verso_db *db, const char *table, int64_t id, const char *column, int64_t n,
                      verso__blob_fill_fn fill, void *arg);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t verso__monotonic_ms(void);

/* ---- crash points (orm/crashpoint.c) ---- */

/*
 * verso__crashpoint(name) marks a place where a kill -9 is worth testing
 * (stable names, listed in orm/crashpoint.c). Unarmed it costs one relaxed
 * load and one branch. Armed by the environment (VERSO_CRASH_AT=name or
 * name:N, read once) or by verso__crashpoint_arm(), the Nth time the
 * process reaches that point it writes the name (to the file named by
 * VERSO_CRASH_MARK, else to stderr) and sends itself SIGKILL.
 * Built without VERSO_CRASHPOINTS the hooks compile to nothing.
 */
#ifdef VERSO_CRASHPOINTS
extern atomic_int verso__crash_state; /* 0 unread, 1 unarmed, 2 armed */
void verso__crashpoint_reached(const char *name);
#define verso__crashpoint(name)                                                                    \
    do {                                                                                           \
        if (atomic_load_explicit(&verso__crash_state, memory_order_relaxed) != 1)                  \
            verso__crashpoint_reached(name);                                                       \
    } while (0)
#else
#define verso__crashpoint(name) ((void)0)
#endif

/*
 * Arms the points of this process as VERSO_CRASH_AT would ("name" or
 * "name:N"; NULL disarms), the marker going to the file mark (NULL:
 * stderr), whatever the environment says. For a forked test child before
 * it runs library calls. Errors: VERSO_EINVAL (bad spec), VERSO_ESTATE
 * (built without crash points).
 */
int verso__crashpoint_arm(const char *spec, const char *mark);

#endif
