/*
 * internal.h - shared internals of the ORM (the orm/ sources only; not installed).
 *
 * A verso_db owns one SQLite connection, the runtime schema (one verso_table
 * per tracked table, each with a small cache of prepared statements), the
 * write-transaction state (the in-memory version counter) and the commit
 * hooks with the changes of the open transaction.
 */
#ifndef VERSO_ORM_INTERNAL_H
#define VERSO_ORM_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "verso/orm.h"
#include "verso/advanced.h"
#include "orm/alloc.h"

#define VERSO__MAX_COLUMNS 64
#define VERSO__MAX_HOOKS   16
#define VERSO__STMT_CACHE  16
#define VERSO__ERRLEN      512
#define VERSO__TOMB_BATCH  32 /* tombstones written per statement (see verso__tomb_flush) */

/* Kinds of cached per-table statements; the key is (kind, column mask). */
enum verso__stmt_kind {
    VERSO__ST_INSERT = 1, /* INSERT (mask columns, version) */
    VERSO__ST_UPDATE,     /* UPDATE SET mask columns, version WHERE id */
    VERSO__ST_UPSERT,     /* apply: INSERT .. ON CONFLICT(id) DO UPDATE */
    VERSO__ST_DELETE,     /* DELETE WHERE id */
    VERSO__ST_GET,        /* SELECT all columns WHERE id */
    VERSO__ST_VERSION,    /* SELECT version WHERE id */
    VERSO__ST_EXISTS      /* SELECT 1 WHERE id */
};

typedef struct verso__stmt_slot {
    int kind;
    uint64_t mask;
    sqlite3_stmt *st;
} verso__stmt_slot;

typedef struct verso__hook {
    verso_commit_fn fn;
    void *arg;
} verso__hook;

struct verso_table {
    char *name;
    char *qname; /* "name" quoted for SQL */
    verso_column *cols;
    char **qcols; /* quoted column names */
    size_t ncols;
    int id_idx;
    int ver_idx;
    bool replicated;
    bool user_triggers;         /* has SQL triggers of its own (names not starting with _verso_) */
    bool retired;               /* replaced by a schema reload; kept until close */
    const verso_table_def *def; /* C declaration, or NULL */
    signed char field_of_col[VERSO__MAX_COLUMNS]; /* def field index per column, -1 */
    int col_of_field[VERSO__MAX_COLUMNS];         /* column index per def field */
    uint64_t def_mask;                            /* columns covered by def */
    verso__stmt_slot slots[VERSO__STMT_CACHE];
    unsigned next_victim;
    /* The change feed's statement over this table, without and with the long-blob mask:
     * a feed takes it while open and gives it back at close (feed.c). */
    sqlite3_stmt *feed_st[2];
};

/* Statements of the handle itself, prepared once at open. */
enum verso__dbst {
    VERSO__Q_BEGIN_W,
    VERSO__Q_BEGIN_R,
    VERSO__Q_COMMIT,
    VERSO__Q_ROLLBACK,
    VERSO__Q_HEAD_GET,
    VERSO__Q_HEAD_SET,   /* UPDATE _verso_head SET v = ?1 WHERE v = ?2 */
    VERSO__Q_HEAD_FORCE, /* UPDATE _verso_head SET v = ?1 */
    VERSO__Q_META_GET,
    VERSO__Q_META_SET,
    VERSO__Q_SCHEMA_VER,
    VERSO__Q_DATA_VER,      /* PRAGMA data_version: commits by other connections */
    VERSO__Q_TOMBSTONE,     /* INSERT INTO _verso_tombstones (a duplicate version fails) */
    VERSO__Q_TOMBSTONE_REP, /* INSERT OR REPLACE (apply: re-applying is harmless) */
    VERSO__Q_TOMBSTONE_32,  /* INSERT of VERSO__TOMB_BATCH tombstones */
    VERSO__Q_INFO,          /* head, horizon and identity in one row (verso_db_info) */
    VERSO__Q_COUNT
};

struct verso_db {
    sqlite3 *sq;
    char *path;
    const char *wal_path; /* SQLite's -wal name (owned by SQLite), NULL for a memory database */
    sqlite3_int64 changes_at_begin; /* sqlite3_total_changes64() when the write transaction began */
    char identity[37];
    char errmsg[VERSO__ERRLEN];
    /* Where errmsg came from: verso's own words, SQLite's text of a
     * constraint failure, or other SQLite text (may quote SQL): only the
     * first two are shown to a server's clients (verso__errmsg_public). */
    enum { VERSO__MSG_OWN, VERSO__MSG_CONSTRAINT, VERSO__MSG_SQLITE } errkind;
    bool readonly;
    /* A commit's tail (txn.c verso__commit_tail): the -wal signal to other processes and a
     * checkpoint made due (db.c wal_hook; ckpt_defer during COMMIT), after the in-process
     * hooks; with tail_hold, when the caller says (a slave's applier, after its callback). */
    bool ckpt_defer, ckpt_due, signal_due, tail_hold;
    sqlite3_stmt *q[VERSO__Q_COUNT];
    /* The change feed's deletion-log statement for tomb_n tables, while no feed holds it. */
    sqlite3_stmt *tomb_st;
    size_t tomb_n;

    /* Runtime schema. A reload keeps the object of every table whose
     * description did not change; replaced tables are kept until close
     * (retired), so pointers handed out stay valid and addresses are never
     * reused. */
    verso_table **tables;
    size_t ntables;
    verso_table **retired;
    size_t nretired;
    int64_t schema_version; /* -1: reload at the next check */
    bool schema_in_txn;     /* reloaded inside the open transaction */
    /* Triggers: on this connection they run only where needed. trig_mode:
     * some tracked table has triggers of its own, so ORM writes run with
     * triggers on; trig_on: the connection's current setting. */
    bool trig_mode;
    bool trig_on;
    const verso_table_def **defs; /* copy of the options' array */
    size_t ndefs;
    verso_table *last_def_table; /* one-entry cache for struct calls */

    /* Write transaction. */
    bool txn;            /* a write transaction is open */
    bool rollback_due;   /* a ROLLBACK failed (out of memory): SQLite's transaction is still open */
    bool explicit_;      /* opened by verso_db_begin / verso_apply_begin */
    bool applying;       /* opened by verso_apply_begin */
    bool reset_identity; /* apply reset: a new identity is written at commit */
    char new_identity[37];
    int64_t head;       /* the C counter: last version handed out */
    int64_t head_db;    /* value of _verso_head as this transaction left it */
    int64_t apply_last; /* last master version applied in this transaction */

    /* Tombstones of this transaction's deletes not written yet: one statement
     * per VERSO__TOMB_BATCH of them keeps the table's cursor at its end. */
    struct verso__tomb {
        int64_t version, id, at;
        const char *tbl; /* a table's name: kept until close even if the table is retired */
    } tombs[VERSO__TOMB_BATCH];
    size_t ntombs;

    /* Hooks and the current transaction's changes (only kept with hooks). */
    verso__hook hooks[VERSO__MAX_HOOKS];
    size_t nhooks;
    verso_change *changes;
    size_t nchanges, capchanges;

    /* Text of bound UUIDs (bound SQLITE_STATIC until the statement resets). */
    char uuidtext[VERSO__MAX_COLUMNS][37];

    /* Time budget of the servers (orm/service.h): the progress handler stops
     * a statement once CLOCK_MONOTONIC passes budget_ms (0: none). */
    int64_t budget_ms;
    bool budget_spent;
    bool budget_handler; /* the progress handler is installed */
};

/* ---- errors (db.c) ---- */
int verso__err(verso_db *db, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Maps an SQLite result code to VERSO_E*, with sqlite3_errmsg() as detail. */
int verso__sqlerr(verso_db *db, int src, const char *what);
int verso__map_sqlite(int src);

/* ---- identifiers and types (schema.c) ---- */
bool verso__ident_ok(const char *s);
char *verso__quote(const char *s); /* malloc'd "s"; NULL on ENOMEM */
verso_type verso__decl_type(const char *decl);
const char *verso__type_decl(verso_type t);

/* ---- runtime schema (schema.c) ---- */
int verso__schema_load(verso_db *db);
void verso__schema_free(verso_db *db);
/* Reloads the schema if another connection changed it (outside transactions). */
int verso__schema_check(verso_db *db);
/* Reloads the schema if its version changed, inside a transaction too (the
 * caller holds the write lock, or the schema is its own). */
int verso__schema_recheck(verso_db *db);
/* Finds which tracked tables have triggers of their own; sets trig_mode and
 * the connection's trigger setting accordingly. */
int verso__detect_triggers(verso_db *db);
/* The current object of t's table after a reload retired t (VERSO_ENOTFOUND if gone). */
int verso__table_current(verso_table **t, verso_db *db);
/* Looks a table up by name, refreshing first; VERSO_ENOTFOUND with detail. */
int verso__table_find(verso_table **out, verso_db *db, const char *name);
/* The tracked table of that name in the runtime schema as loaded (no reload,
 * no error text); NULL if none. */
verso_table *verso__table_lookup(verso_db *db, const char *name);
/* The runtime table of a C declaration; VERSO_EINVAL if not declared. */
int verso__table_of_def(verso_table **out, verso_db *db, const verso_table_def *def);
/* True when the file holds the declared table as declared (nothing to migrate). */
bool verso__def_current(verso_db *db, const verso_table_def *def);
/* Creates or migrates a declared table (inside a write transaction). */
int verso__migrate_def(verso_db *db, const verso_table_def *def);
/* Installs version column, index, triggers and the _verso_tables row. */
int verso__track_table(verso_db *db, const char *table, const char *id_col, const char *ver_col,
                       bool replicated);
/* Column type check of a value for writing. */
int verso__value_check(verso_db *db, const verso_table *t, size_t col, const verso_value *v);

/* ---- statement cache (crud.c) ---- */
int verso__stmt(sqlite3_stmt **out, verso_db *db, verso_table *t, int kind, uint64_t mask);
void verso__stmt_cache_free(verso_table *t);
int verso__bind_value(sqlite3_stmt *st, int pos, const verso_value *v);
/* Reads column i of st as a verso_value of column type ct (borrowed). */
void verso__column_value(verso_value *out, sqlite3_stmt *st, int i, verso_type ct);
/* Appends {"col": value, ...} for the first n columns of t (orm/json.c). */
int verso__json_row(verso_buf *b, const verso_table *t, const verso_value *vals, size_t n);
/* Fills rec from the current row of st; result column k holds def field
 * field_of_result[k] (-1: skip). Clears rec on failure. */
int verso__read_record(verso_db *db, sqlite3_stmt *st, const verso_table_def *def,
                       const int *field_of_result, int nresult, void *rec);
/* Apply: upserts a row carrying its master id and version (crud.c). */
int verso__row_upsert(verso_db *db, verso_table *t, const char *const *cols,
                      const verso_value *vals, size_t n, int64_t *id, int64_t *version);
/* Runs SQL text (one or more statements) on db->sq. */
int verso__exec(verso_db *db, const char *sql);

/* ---- transactions (txn.c) ---- */
/* Opens a write transaction if none is open; *implicit tells the caller to close it. */
int verso__wbegin(verso_db *db, bool *implicit);
/* Closes an implicit transaction: commit if rc >= 0, else rollback. Returns rc or the commit error.
 */
int verso__wend(verso_db *db, bool implicit, int rc);
/* Handles a failed statement inside a write transaction: notices an automatic rollback. */
void verso__after_error(verso_db *db);
int verso__txn_open(verso_db *db);
int verso__txn_commit(verso_db *db);
void verso__txn_rollback(verso_db *db);
/* Outside a verso transaction, ends the one SQLite still holds after a ROLLBACK that failed
 * (rollback_due): a read must not see what that transaction wrote. */
void verso__settle(verso_db *db);
/* Runs the WAL checkpoint a commit made due, if any (db.c wal_hook; verso__commit_tail). */
void verso__checkpoint_due(verso_db *db);
/* Writes the C counter to _verso_head (before statements that fire triggers). */
int verso__head_flush(verso_db *db);
/* Re-reads _verso_head into the counter (after statements that fired triggers). */
int verso__head_reload(verso_db *db);
/* Records a change for the hooks (no-op without hooks). */
int verso__record_change(verso_db *db, const verso_table *t, int64_t id, int64_t version,
                         verso_change_kind kind);

/* Writes a tombstone at once, replacing one of that version (apply:
 * re-applying is harmless). ORM deletes queue theirs (verso__tomb_add). */
int verso__tombstone(verso_db *db, const verso_table *t, int64_t id, int64_t version);
/* Version of row id of t; *found is false (and *version untouched) without such a row. */
int verso__row_version(int64_t *version, bool *found, verso_db *db, verso_table *t, int64_t id);
/* Queues the tombstone of a delete made with triggers off; writes the queue when full. */
int verso__tomb_add(verso_db *db, const verso_table *t, int64_t id, int64_t version);
/* Writes the queued tombstones: before COMMIT and before any statement that
 * fires triggers or reads or prunes the deletion log (verso__head_flush does
 * it). On failure the transaction is rolled back: a row is never left
 * deleted without its tombstone. */
int verso__tomb_flush(verso_db *db);
/* Turns triggers on or off for this connection. Changing the setting expires
 * every prepared statement (SQLite compiles triggers into them), so it is
 * only changed when it differs. */
int verso__triggers(verso_db *db, bool on);
/* Sets triggers as ORM writes need them: on in trig_mode, off while applying. */
int verso__triggers_restore(verso_db *db);

/* ---- statements run with the tracking triggers live (exec.c) ----
 * verso__fire_begin writes the counter to _verso_head (and watches inserts
 * when hooks are registered); verso__fire_end reloads the counter and
 * records for the hooks the changes with versions in (lo, head]: just (own,
 * id, kind) when it is the only one, else what the rows and tombstones in
 * that range say. own may be NULL. Returns rc or the first error. */
typedef struct verso__fired {
    verso_db *db;
    int64_t lo;
    struct verso__ins *ins; /* rows inserted meanwhile (with hooks only) */
    size_t nins, capins;
    bool oom;
} verso__fired;
int verso__fire_begin(verso__fired *x, verso_db *db, int64_t lo);
int verso__fire_end(verso__fired *x, int rc, const verso_table *own, int64_t id,
                    verso_change_kind kind);

/* ---- metadata (db.c) ---- */
int verso__meta_get_int(int64_t *out, verso_db *db, const char *key);
int verso__meta_get_text(char *out, size_t outlen, verso_db *db, const char *key);
int verso__meta_set_int(verso_db *db, const char *key, int64_t v);
int verso__meta_set_text(verso_db *db, const char *key, const char *v);
void verso__new_uuid(char out[37]);

#endif
