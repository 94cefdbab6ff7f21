/*
 * orm.h - versioned SQLite tables declared as C structs.
 *
 * A verso database is an SQLite file in WAL mode in which every tracked
 * table has an INTEGER PRIMARY KEY id column and a version column. One
 * version counter per database is shared by all tracked tables; every
 * insert, update and delete gets a new version, assigned inside the write
 * transaction, increasing in commit order. Deletes leave a tombstone
 * (table, id, version) in a deletion log. Plain SQL run on the same file by
 * any program is tracked too, by triggers installed when a table is tracked.
 *
 * Threads: a verso_db handle is used by one thread at a time (like an
 * sqlite3 connection in multi-thread mode). Open one handle per thread; any
 * number of handles and processes may share a file.
 *
 * Errors common to every call that reads or writes the file, not repeated
 * in each "Errors:" list: VERSO_ENOMEM (out of memory), VERSO_EBUSY (another
 * writer held the lock past busy_timeout_ms), VERSO_EIO (the disk failed a
 * read, write, sync or lock) and VERSO_EFULL (the disk is full). After any
 * of them the file holds the state from before the call or, for a commit
 * that reported an error after its data reached the disk, from after it;
 * never a mix. The handle stays usable: the same call works once the cause
 * is gone (docs/hardening.md).
 */
#ifndef VERSO_ORM_H
#define VERSO_ORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verso.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct verso_db verso_db;       /* a connection to a verso database */
typedef struct verso_table verso_table; /* runtime schema of a tracked table (borrowed) */
typedef struct verso_iter verso_iter;   /* a query cursor */
typedef struct verso_feed verso_feed;   /* a change feed read */

/* ---------------------------------------------------------------------
 * Declaring tables as C structs
 * ------------------------------------------------------------------ */

/* Field flags. */
#define VERSO_FIELD_ID      0x01u /* the INTEGER PRIMARY KEY; type VERSO_INT64; exactly one */
#define VERSO_FIELD_VERSION 0x02u /* the record version; type VERSO_INT64; exactly one */
#define VERSO_FIELD_NOTNULL 0x04u /* NOT NULL column */
#define VERSO_FIELD_INDEX   0x08u /* create an index on this column */
#define VERSO_FIELD_UNIQUE  0x10u /* create a unique index on this column */

/*
 * One struct member mapped to one column. Build with the macros below.
 * C member types by column type:
 *   VERSO_INT64  int64_t        VERSO_DOUBLE double
 *   VERSO_BOOL   bool           VERSO_TEXT   char *  (NULL pointer = SQL NULL)
 *   VERSO_BLOB   verso_blob     (data NULL = SQL NULL)
 *   VERSO_UUID   verso_uuid
 * Scalars (int64, double, bool, uuid) are NULL when the field has a
 * null_offset and the bool member there is true; otherwise never NULL.
 */
typedef struct verso_field {
    const char *name; /* column name: [A-Za-z_][A-Za-z0-9_]{0,63}, not starting with '_' */
    verso_type type;
    size_t offset;         /* offsetof(struct, member) */
    size_t size;           /* sizeof member; checked against type */
    unsigned flags;        /* VERSO_FIELD_* */
    ptrdiff_t null_offset; /* offset of a bool member, true when NULL; -1 if not nullable */
} verso_field;

typedef struct verso_blob {
    void *data;
    size_t size;
} verso_blob;

typedef struct verso_uuid {
    unsigned char bytes[16];
} verso_uuid;

#define VERSO_FIELD(st, member, vtype, flags)                                                      \
    {                                                                                              \
#member, vtype, offsetof(st, member), sizeof(((st *)0)->member), flags, -1                 \
    }
#define VERSO_FIELD_NULLABLE(st, member, vtype, flags, nullmember)                                 \
    {                                                                                              \
#member, vtype, offsetof(st, member), sizeof(((st *)0)->member), flags,                    \
            offsetof(st, nullmember)                                                               \
    }
#define VERSO_FIELD_ID_OF(st, member)      VERSO_FIELD(st, member, VERSO_INT64, VERSO_FIELD_ID)
#define VERSO_FIELD_VERSION_OF(st, member) VERSO_FIELD(st, member, VERSO_INT64, VERSO_FIELD_VERSION)

/* A table: name, struct size and its fields (at most 64). */
typedef struct verso_table_def {
    const char *name; /* same rules as column names */
    size_t struct_size;
    const verso_field *fields;
    size_t nfields;
} verso_table_def;

#define VERSO_TABLE_DEF(tname, st, fieldarray)                                                     \
    {                                                                                              \
        tname, sizeof(st), fieldarray, sizeof(fieldarray) / sizeof((fieldarray)[0])                \
    }

/*
 * Checks a table description without touching any database.
 * 0 if valid; VERSO_ESCHEMA otherwise, with a precise reason written to
 * why (NUL-terminated, truncated to whylen) when why is not NULL.
 * Checks: identifiers, exactly one ID and one VERSION field (both
 * VERSO_INT64), member sizes matching types, offsets inside struct_size,
 * no duplicate column names (case-insensitive), at most 64 fields.
 */
VERSO_API int verso_table_def_check(const verso_table_def *def, char *why, size_t whylen);

/* ---------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------ */

typedef struct verso_db_options {
    unsigned version; /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    const verso_table_def *const *tables; /* tables declared in C; may be NULL */
    size_t ntables;
    int busy_timeout_ms;   /* SQLite busy timeout; 0 = 5000; < 0 = fail at once */
    bool readonly;         /* open read-only: no schema changes, writes fail */
    bool must_exist;       /* fail if the file is missing (VERSO_EDB); default: create it */
    bool synchronous_full; /* PRAGMA synchronous=FULL instead of NORMAL */
} verso_db_options;

#define VERSO_DB_OPTIONS_INIT                                                                      \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION                                                           \
    }

/*
 * Opens (creating if allowed) a verso database at path and brings its schema
 * up to date: metadata (identity UUID, head version, horizon), the deletion
 * log, the tables in opts->tables (created, or migrated additively: missing
 * columns are added, the version column, its index and the tracking
 * triggers are installed). WAL mode.
 *
 * *out receives a handle to release with verso_db_close(); on failure *out
 * is NULL and why (may be NULL) receives one line naming the path and what
 * is wrong (NUL-terminated, cut to whylen). opts may be NULL (defaults).
 *
 * Errors: VERSO_EINVAL, VERSO_ESCHEMA (a table description is wrong, an
 * existing table is incompatible: the message says which column and why,
 * or a read-only open of a file that is not a verso database), VERSO_EDB,
 * VERSO_ENOMEM.
 */
VERSO_API int verso_db_open(verso_db **out, const char *path, const verso_db_options *opts,
                            char *why, size_t whylen);

/* Closes the handle; rolls back an open transaction. NULL is a no-op. */
VERSO_API void verso_db_close(verso_db *db);

/* Detail text of the last error on db ("" if none). Borrowed until the next call on db. */
VERSO_API const char *verso_db_errmsg(const verso_db *db);

/* The path db was opened with. Borrowed for the life of db. */
VERSO_API const char *verso_db_path(const verso_db *db);

/* ---------------------------------------------------------------------
 * Identity, head, horizon
 * ------------------------------------------------------------------ */

typedef struct verso_info {
    char identity[37]; /* database UUID, canonical text */
    int64_t head;      /* highest version handed out by a committed transaction */
    int64_t horizon;   /* tombstones with version <= horizon may have been pruned */
} verso_info;

/* Reads identity, head and horizon in one read. */
VERSO_API int verso_db_info(verso_info *out, verso_db *db);

/* The database identity (36-char UUID). Borrowed for the life of db. */
VERSO_API const char *verso_db_identity(const verso_db *db);

/* ---------------------------------------------------------------------
 * Runtime schema: every tracked table, whether declared in C, tracked with
 * verso_db_track(), or created by replication.
 * ------------------------------------------------------------------ */

typedef struct verso_column {
    const char *name;
    verso_type type;
    unsigned flags; /* VERSO_FIELD_ID / VERSO_FIELD_VERSION / VERSO_FIELD_NOTNULL */
} verso_column;

/* Reloads the runtime schema from the file (after another process tracked a
 * table). A table whose description did not change keeps its verso_table.
 * Calls that look tables up by name reload by themselves when the file's
 * schema version changed; write transactions check it once the write lock
 * is held. VERSO_ESTATE inside a transaction. */
VERSO_API int verso_db_refresh_schema(verso_db *db);

VERSO_API size_t verso_db_ntables(const verso_db *db);
/* Borrowed; valid until the schema is refreshed or db is closed. NULL if out of range. */
VERSO_API const verso_table *verso_db_table_at(const verso_db *db, size_t i);
/* Case-sensitive lookup; NULL if not a tracked table. */
VERSO_API const verso_table *verso_db_table(const verso_db *db, const char *name);

VERSO_API const char *verso_table_name(const verso_table *t);
VERSO_API size_t verso_table_ncolumns(const verso_table *t);
VERSO_API const verso_column *verso_table_column_at(const verso_table *t, size_t i);
/* Index of column name, or -1. */
VERSO_API int verso_table_column_index(const verso_table *t, const char *name);
/* Index of the id column and of the version column. */
VERSO_API int verso_table_id_index(const verso_table *t);
VERSO_API int verso_table_version_index(const verso_table *t);
/* True when rows of t are written only by replication on this database. */
VERSO_API bool verso_table_is_replicated(const verso_table *t);

/*
 * Puts an existing plain SQLite table under tracking: adds the version column
 * (version_column, NULL = "version") if missing, gives every existing row a
 * version, creates the version index and the triggers. The table must have
 * an INTEGER PRIMARY KEY column. Idempotent.
 * Errors: VERSO_ENOTFOUND (no such table), VERSO_ESCHEMA (no INTEGER
 * PRIMARY KEY, bad name), VERSO_EDB.
 */
VERSO_API int verso_db_track(verso_db *db, const char *table, const char *version_column);

/* ---------------------------------------------------------------------
 * Transactions and hooks
 * ------------------------------------------------------------------ */

/*
 * Starts a write transaction (BEGIN IMMEDIATE). Writes outside an explicit
 * transaction each run in their own. Nested calls are VERSO_ESTATE.
 */
VERSO_API int verso_db_begin(verso_db *db);
/* Commits; on success runs the commit hooks with this transaction's changes. */
VERSO_API int verso_db_commit(verso_db *db);
/* Rolls back; nothing of the transaction is visible and no hook runs. */
VERSO_API int verso_db_rollback(verso_db *db);
/* True inside verso_db_begin() .. commit/rollback. */
VERSO_API bool verso_in_transaction(const verso_db *db);

/*
 * Runs fn inside one transaction: commits if fn returns >= 0, rolls back and
 * returns fn's code if it returns < 0. VERSO_ESTATE inside a transaction.
 */
VERSO_API int verso_db_batch(verso_db *db, int (*fn)(verso_db *db, void *arg), void *arg);

typedef enum verso_change_kind {
    VERSO_CHANGE_INSERT = 1,
    VERSO_CHANGE_UPDATE = 2,
    VERSO_CHANGE_DELETE = 3
} verso_change_kind;

typedef struct verso_change {
    const char *table;
    int64_t id;
    int64_t version;
    verso_change_kind kind;
} verso_change;

/*
 * Called after each successful commit made through this handle, with that
 * transaction's changes in version order (borrowed for the call). Never
 * called for a rolled-back transaction. Commits by other handles or
 * processes are not reported here (read the change feed for those).
 */
typedef void (*verso_commit_fn)(verso_db *db, const verso_change *changes, size_t n, void *arg);

/* Registers a hook (at most 16). VERSO_EINVAL if fn is NULL. */
VERSO_API int verso_db_on_commit(verso_db *db, verso_commit_fn fn, void *arg);
/* Removes a hook registered with the same fn and arg. VERSO_ENOTFOUND otherwise. */
VERSO_API int verso_db_on_commit_remove(verso_db *db, verso_commit_fn fn, void *arg);

/* ---------------------------------------------------------------------
 * CRUD on structs
 *
 * Text and blob members of records filled by verso (verso_record_get,
 * verso_iter_record) are allocated by verso; release them with
 * verso_record_clear(). Records passed in for writing are only read.
 * ------------------------------------------------------------------ */

/*
 * Inserts rec. If its id is 0 the database assigns one; the id and the new
 * version are written back into rec. The table must have been declared in
 * the options of verso_db_open (VERSO_EINVAL otherwise).
 * Errors: VERSO_ECONSTRAINT (duplicate id, NOT NULL, UNIQUE),
 * VERSO_EREADONLY (replicated table), VERSO_EDB.
 */
VERSO_API int verso_record_insert(verso_db *db, const verso_table_def *def, void *rec);

/* Reads row id into rec (which the caller zeroes or clears first). VERSO_ENOTFOUND. */
VERSO_API int verso_record_get(void *rec, verso_db *db, const verso_table_def *def, int64_t id);

/*
 * Updates the row with rec's id: all fields if mask is 0, otherwise only the
 * fields whose index in def->fields has its bit set (bit i = 1ull << i; the
 * id and version bits are ignored). The new version is written into rec.
 * Errors: VERSO_ENOTFOUND, VERSO_ECONSTRAINT, VERSO_EREADONLY.
 */
VERSO_API int verso_record_update(verso_db *db, const verso_table_def *def, void *rec,
                                  uint64_t mask);

/* Computes a field mask from column names. VERSO_EINVAL naming an unknown field. */
VERSO_API int verso_record_mask(uint64_t *out, const verso_table_def *def, const char *const *names,
                                size_t n);

/* Deletes row id and writes its tombstone. VERSO_ENOTFOUND, VERSO_EREADONLY. */
VERSO_API int verso_record_delete(verso_db *db, const verso_table_def *def, int64_t id);

/* Frees the text and blob members of rec and zeroes them. def or rec NULL: no-op. */
VERSO_API void verso_record_clear(const verso_table_def *def, void *rec);

/* ---------------------------------------------------------------------
 * Queries (for struct tables and any tracked table)
 * ------------------------------------------------------------------ */

typedef enum verso_cmp {
    VERSO_EQ,
    VERSO_NEQ,
    VERSO_GT,
    VERSO_GTE,
    VERSO_LT,
    VERSO_LTE,
    VERSO_IN,      /* list / nlist */
    VERSO_LIKE,    /* SQL LIKE pattern, value is text */
    VERSO_IS_NULL, /* no value */
    VERSO_IS_NOT_NULL
} verso_cmp;

typedef struct verso_cond {
    const char *column;
    verso_cmp op;
    verso_value value;       /* for all but IN / IS_NULL / IS_NOT_NULL */
    const verso_value *list; /* for IN */
    size_t nlist;
} verso_cond;

typedef struct verso_order {
    const char *column;
    bool desc;
} verso_order;

/*
 * A query. Column names are checked against the table's schema
 * (VERSO_EINVAL with the unknown name in verso_db_errmsg); values are always
 * bound as parameters. Rows are ordered by `order` then by id (ascending,
 * or descending if the last order term is descending), so the order is
 * total and keyset pagination is exact.
 */
typedef struct verso_query {
    const char *table;
    const verso_cond *conds; /* ANDed */
    size_t nconds;
    const verso_order *order;
    size_t norder;
    const char *const *columns; /* columns to return; NULL = all, in schema order */
    size_t ncolumns;
    int64_t limit;  /* <= 0: no limit */
    int64_t offset; /* >= 0 */
    /* Keyset pagination: return rows strictly after the row whose order
     * values are after[0..norder-1] and whose id is after[norder].
     * nafter is 0 (no keyset) or norder + 1. */
    const verso_value *after;
    size_t nafter;
} verso_query;

#define VERSO_QUERY_INIT                                                                           \
    {                                                                                              \
        0                                                                                          \
    }

/*
 * Runs q. *out receives a cursor to release with verso_iter_close(); rows are
 * read one at a time, never all into memory.
 * Errors: VERSO_ENOTFOUND (unknown table), VERSO_EINVAL (unknown column,
 * bad condition), VERSO_EDB.
 */
VERSO_API int verso_query_open(verso_iter **out, verso_db *db, const verso_query *q);

/* Steps: 1 = a row is available, 0 = no more rows, < 0 = error. */
VERSO_API int verso_iter_next(verso_iter *it);

VERSO_API size_t verso_iter_ncolumns(const verso_iter *it);
VERSO_API const char *verso_iter_column_name(const verso_iter *it, size_t i);
/* The table's column descriptor for result column i. */
VERSO_API const verso_column *verso_iter_column(const verso_iter *it, size_t i);

/* Value of result column i of the current row; borrowed until the next step. */
VERSO_API int verso_iter_value(verso_value *out, const verso_iter *it, size_t i);

/* Fills rec (zeroed first by the caller) from the current row; the query must
 * select all columns of def. Release with verso_record_clear(). */
VERSO_API int verso_iter_record(void *rec, const verso_iter *it, const verso_table_def *def);

/* Frees the cursor. NULL is a no-op. */
VERSO_API void verso_iter_close(verso_iter *it);

/* Number of rows matching conds (ANDed) in table. */
VERSO_API int verso_query_count(int64_t *out, verso_db *db, const char *table,
                                const verso_cond *conds, size_t nconds);

/* ---------------------------------------------------------------------
 * Generic rows (any tracked table, by column name)
 * ------------------------------------------------------------------ */

/*
 * Inserts a row from n (column, value) pairs. An "id" of 0 or absent is
 * assigned. As in SQLite, a value of any storage class may go into any
 * column (the column's affinity applies); only the id takes an integer and
 * a VERSO_UUID value must be a canonical UUID (VERSO_ETYPE naming the
 * column). The version column may not be given (VERSO_EINVAL).
 * *out_id and *out_version (each may be NULL) receive the new id and version.
 */
VERSO_API int verso_row_insert(int64_t *out_id, int64_t *out_version, verso_db *db,
                               const char *table, const char *const *columns,
                               const verso_value *values, size_t n);

/*
 * Updates the given columns of row id. If expect_version > 0 and the row's
 * version differs: VERSO_ECONFLICT and nothing changes.
 * Errors: VERSO_ENOTFOUND, VERSO_ETYPE, VERSO_EINVAL, VERSO_ECONSTRAINT.
 */
VERSO_API int verso_row_update(int64_t *out_version, verso_db *db, const char *table, int64_t id,
                               const char *const *columns, const verso_value *values, size_t n,
                               int64_t expect_version);

/* Deletes row id (with the same expect_version rule). VERSO_ENOTFOUND, VERSO_ECONFLICT. */
VERSO_API int verso_row_delete(verso_db *db, const char *table, int64_t id, int64_t expect_version);

/* ---------------------------------------------------------------------
 * Raw SQL
 * ------------------------------------------------------------------ */

/*
 * Runs one or more SQL statements on db. Writes to tracked tables get
 * versions and tombstones (from the triggers) and are reported to the
 * commit hooks. Outside an explicit transaction the statements run in one
 * transaction of their own. `PRAGMA foreign_keys=ON|OFF` takes effect on
 * db's connection when that transaction commits; inside verso_db_begin() it
 * is refused (VERSO_ESTATE: SQLite ignores it in a transaction).
 */
VERSO_API int verso_db_exec(verso_db *db, const char *sql);

/* ---------------------------------------------------------------------
 * The change feed
 * ------------------------------------------------------------------ */

typedef struct verso_feed_options {
    unsigned version;          /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    int64_t since;             /* changes with version > since */
    int64_t limit;             /* at most this many changes; <= 0: no limit */
    const char *const *tables; /* only these tables; NULL = all tracked */
    size_t ntables;
    /* A read in pages continues from each page's cursor. When its first
     * page was read from since 0 (or from at or above the horizon), pass
     * the horizon that first page reported: a later page may then read
     * from below the horizon as long as the horizon is still that one
     * (nothing those pages need was pruned since). 0 = no such claim. */
    int64_t sequence_horizon;
    /* 0: every value is read. > 0: a BLOB longer than this many bytes is
     * not read (its length only): the entry's value has type VERSO_BLOB,
     * data NULL and n its length, and verso_json_feed_entry() writes it
     * {"blob_fetch":N} (replication fetches the bytes apart; see
     * VERSO_SYNC_BLOB_INLINE in verso/sync.h). */
    int64_t blob_inline;
} verso_feed_options;

#define VERSO_FEED_OPTIONS_INIT                                                                    \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION                                                           \
    }

/*
 * One change: an upsert (deleted == false; the row's current columns in
 * values[0..ncolumns-1], named by the table's schema) or a deletion
 * (deleted == true; ncolumns == 0). Borrowed until the next call.
 */
typedef struct verso_feed_entry {
    const verso_table *table; /* runtime schema */
    const char *table_name;
    int64_t id;
    int64_t version;
    bool deleted;
    size_t ncolumns;
    const verso_value *values;
} verso_feed_entry;

/*
 * Opens a read of "changes since V": upserts and deletions of the requested
 * tables merged in version order, all from one consistent snapshot (a read
 * transaction held until verso_feed_close()).
 * Errors: VERSO_EHORIZON when 0 < since < horizon (the reader missed pruned
 * deletions and must resynchronise; since = 0 is a full read, always
 * allowed), VERSO_ENOTFOUND (unknown table), VERSO_ESTATE (db is inside a
 * write transaction). While a feed is open the same handle cannot start a
 * write transaction; two feeds open on one handle share one snapshot.
 */
VERSO_API int verso_feed_open(verso_feed **out, verso_db *db, const verso_feed_options *opts);

/* 1 = *out holds a change, 0 = done (limit reached or no more), < 0 error. */
VERSO_API int verso_feed_next(const verso_feed_entry **out, verso_feed *f);

/* Head and horizon of the snapshot the feed reads. */
VERSO_API int64_t verso_feed_head(const verso_feed *f);
VERSO_API int64_t verso_feed_horizon(const verso_feed *f);
VERSO_API const char *verso_feed_identity(const verso_feed *f);

/*
 * The cursor to continue from: the version of the last change returned
 * while more may follow; the snapshot's head once the feed is exhausted
 * below the limit. Reading again with since = cursor never skips a change.
 */
VERSO_API int64_t verso_feed_cursor(const verso_feed *f);

/* True if the limit stopped the read before the snapshot's head, and before
 * verso_feed_next() returned 0 (the end is not known yet). */
VERSO_API bool verso_feed_more(const verso_feed *f);

/* Ends the read. NULL is a no-op. */
VERSO_API void verso_feed_close(verso_feed *f);

/* ---------------------------------------------------------------------
 * Tombstone pruning
 * ------------------------------------------------------------------ */

/*
 * Deletes tombstones with version <= up_to (clamped to the head) and moves
 * the horizon there. *out_horizon (may be NULL) receives the new horizon.
 */
VERSO_API int verso_db_prune_version(int64_t *out_horizon, verso_db *db, int64_t up_to);

/* Deletes tombstones written more than max_age_ms ago; the horizon moves to
 * the highest pruned version. */
VERSO_API int verso_db_prune_age(int64_t *out_horizon, verso_db *db, int64_t max_age_ms);

/* ---------------------------------------------------------------------
 * Replication cursor (the apply calls are in verso/advanced.h)
 * ------------------------------------------------------------------ */

/* The replication cursor stored in the database: master identity ("" if
 * none) and the last applied master version. */
typedef struct verso_cursor {
    char master[37];
    int64_t version;
} verso_cursor;

VERSO_API int verso_db_cursor(verso_cursor *out, verso_db *db);

/* ---------------------------------------------------------------------
 * JSON
 *
 * Every value SQLite can store is written exactly (docs/protocol.md,
 * "Values in JSON"). A value of the class its column type implies is plain
 * JSON: an integer in an int64 column a number (exact over the full int64
 * range), a finite real in a double column a number, valid UTF-8 text in a
 * text column a string (U+0000 included, as \u0000), a blob in a blob column
 * a standard base64 string, 0/1 in a bool column false/true, canonical
 * lower-case text in a uuid column a string; in an untyped (any) column
 * integers, finite reals and valid UTF-8 text are plain. NULL is null. Any
 * other value is a one-member object naming its storage class:
 * {"integer":N}, {"real":X} (or "Infinity", "-Infinity"), {"text":"..."},
 * {"text_base64":"..."} (text that is not valid UTF-8), {"blob":"..."}.
 * A blob value with data NULL and n > 0 (a feed read with blob_inline)
 * is written {"blob_fetch":n}: its bytes are not in the JSON.
 * ------------------------------------------------------------------ */

/* Appends v as the JSON of a value in a column of type column_type. */
VERSO_API int verso_json_value(verso_buf *b, const verso_value *v, verso_type column_type);
/* Appends s (n bytes) as a JSON string with escaping. VERSO_EUTF8 if invalid. */
VERSO_API int verso_json_string(verso_buf *b, const char *s, size_t n);
/* Appends the current row of it as a JSON object {"col": value, ...}. */
VERSO_API int verso_json_iter_row(verso_buf *b, const verso_iter *it);
/*
 * Appends one change as a JSON object:
 * {"table":"t","id":1,"version":7,"row":{...}} or
 * {"table":"t","id":1,"version":8,"deleted":true}
 */
VERSO_API int verso_json_feed_entry(verso_buf *b, const verso_feed_entry *e);

/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------ */

/*
 * Writes tracked tables as a JSON fixture to b:
 * {"verso":1,"tables":{"t":[{row},...],...}} ; table NULL = all tables.
 * Rows are in id order, without the version column (a fixture is data, not
 * history), all read from one snapshot. On error b is left as it was.
 * Errors: VERSO_ENOTFOUND (no such tracked table), VERSO_EDB.
 */
VERSO_API int verso_fixture_dump(verso_buf *b, verso_db *db, const char *table);

/*
 * Loads a fixture (the format of verso_fixture_dump) in one transaction: rows are
 * upserted by id and get new versions. All or nothing.
 * A row whose id exists is updated (only the columns it names); another row
 * is inserted with its id, or a new id when it has none; a version column in
 * a row is ignored. The tables must be tracked already.
 * Errors: VERSO_EJSON, VERSO_EUTF8 (malformed text), VERSO_EINVAL (not a
 * fixture, unknown column), VERSO_ENOTFOUND (unknown table), VERSO_ETYPE,
 * VERSO_ECONSTRAINT, VERSO_EREADONLY, VERSO_ESTATE (inside a transaction);
 * verso_db_errmsg() names the table and the row index.
 */
VERSO_API int verso_fixture_load(verso_db *db, const char *json, size_t len);

#ifdef __cplusplus
}
#endif

#endif
