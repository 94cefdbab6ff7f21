/*
 * advanced.h - escape hatches: the SQLite connection under a database, the
 * replication apply calls, the JSON parser with its cJSON trees, and the
 * allocator.
 *
 * They are public and stable, but they bypass what the rest of the API
 * guarantees, so they live apart and each states its caveats:
 *   - SQL run on verso_db_sqlite()'s connection is not reliably tracked;
 *   - the apply calls write replicated tables, which every other writer is
 *     refused, and keep the replication cursor: a program that uses them is
 *     a replication client and must follow docs/protocol.md;
 *   - the JSON calls hand out cJSON types (struct cJSON from
 *     <cjson/cJSON.h>), whose library and version verso chose.
 */
#ifndef VERSO_ADVANCED_H
#define VERSO_ADVANCED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orm.h"
#include "verso.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------
 * The allocator
 * ------------------------------------------------------------------ */

/*
 * Where verso's memory comes from: malloc_fn, realloc_fn and free_fn take user as
 * their last argument. malloc_fn and realloc_fn return NULL on failure (verso
 * then fails with VERSO_ENOMEM, or the error that documents it; a server
 * answers 503); realloc_fn(p, n) with p non-NULL keeps p on failure; verso
 * never asks for 0 bytes nor passes NULL to free.
 */
typedef struct verso_allocator {
    void *(*malloc_fn)(size_t n, void *user);
    void *(*realloc_fn)(void *p, size_t n, void *user);
    void (*free_fn)(void *p, void *user);
    void *user;
} verso_allocator;

/*
 * Sets the process-wide allocator of every allocation verso makes itself
 * (memory freed with verso_free() included) and of cJSON's (through
 * cJSON_InitHooks: that affects the program's own cJSON calls too; cJSON
 * then never reallocates). a is copied; NULL restores libc's. SQLite and
 * libwebsockets keep their own allocators (sqlite3_config(SQLITE_CONFIG_MALLOC)
 * and lws_set_allocator() set them).
 *
 * Call it first, before any other verso call and before any thread uses
 * verso or cJSON; it is not thread-safe. Errors: VERSO_EINVAL (a member is
 * NULL), VERSO_ESTATE (too late: verso has already allocated memory, which
 * must not go to another allocator's free; nothing changed).
 */
VERSO_API int verso_config_allocator(const verso_allocator *a);

/* ---------------------------------------------------------------------
 * The SQLite connection
 * ------------------------------------------------------------------ */

/*
 * The underlying SQLite connection (borrowed), for reads and statements verso
 * does not offer. Writes to tracked tables made directly on it are NOT
 * reliably tracked: run such SQL through verso_db_exec(), which runs it with the
 * tracking triggers on and keeps the version counter right. Every other
 * connection and program is tracked by the triggers.
 *
 * Triggers on this connection. While no tracked table has an SQL trigger of
 * its own, triggers are off on it: the ORM sets versions from a C counter and
 * writes tombstones itself, without the cost of a trigger program per row.
 * When some tracked table has a trigger whose name does not start with
 * _verso_ (found when the schema is loaded, and again whenever the file's
 * schema changes), triggers are on for all ORM writes of the handle, so the
 * user's triggers fire for ORM and REST writes as they do for the sqlite3
 * shell. The price, for every table of that database: inserts and updates
 * run the tracking triggers' programs too (their WHEN clauses are false,
 * about 40% of a plain insert), deletes write their tombstone through the
 * tracking trigger, and writes to a table with triggers of its own write the
 * counter to _verso_head around each statement (its triggers may write
 * tracked tables; those rows get the versions after the ORM row's). The
 * setting is per connection, not per table, because SQLite compiles triggers
 * into prepared statements and changing it re-prepares every statement.
 * Replication apply (verso_apply_*) always runs with triggers off: the
 * user's triggers do not fire for replicated writes (as in PostgreSQL's
 * logical replication).
 */
VERSO_API struct sqlite3 *verso_db_sqlite(verso_db *db);

/* ---------------------------------------------------------------------
 * Replication apply (used by sync/; bypasses the read-only rule)
 * ------------------------------------------------------------------ */

/*
 * Starts applying a master's changes: one write transaction. If reset is
 * true, every row and tombstone of every replicated table is removed first
 * inside the same transaction (full resynchronisation: readers keep seeing
 * the old state until verso_apply_commit()).
 */
VERSO_API int verso_apply_begin(verso_db *db, bool reset);

/*
 * Makes table a replica of the master's table whose columns are given
 * (exactly one VERSO_FIELD_ID and one VERSO_FIELD_VERSION column; NOT NULL
 * as VERSO_FIELD_NOTNULL). Must be called inside apply before rows of that
 * table are applied; calling it again with the same columns is harmless.
 *
 * - Missing here: the table is created with the master's columns (types,
 *   NOT NULL).
 * - Owned by someone else: an object of this database that is not a
 *   tracked table and whose name equals table ignoring case (a plain
 *   table, view, index or trigger of the user's) is never taken over:
 *   VERSO_ESCHEMA ("table T: the table T of this database is not a
 *   replica; ..."), nothing changed. verso_apply_replace() first replaces
 *   it.
 * - Present (tracked: declared as a C struct, tracked with verso_db_track(),
 *   or replicated before): its
 *   columns must match the master's: same id and version columns, and for
 *   every other column the master has and this table has, the same type
 *   (VERSO_ANY matches any) and the same NOT NULL. A column this table has
 *   and the master lacks is a difference too. Otherwise VERSO_ESCHEMA,
 *   with a message naming the table and each difference, e.g. "table
 *   product: column name: NOT NULL on the master, nullable here; column
 *   note exists here but not on the master"; the caller then abandons the
 *   apply transaction (verso_apply_abort()). Exception: a table with no C
 *   declaration that holds no row (after a reset, say) is dropped and made
 *   again from the master's columns, so a replica follows a master
 *   recreated with another schema (indexes and triggers added to it here
 *   go with it).
 * - A column the master has and this table lacks is added (ALTER TABLE ADD
 *   COLUMN), on a table declared as a C struct as well: that is how a
 *   replica follows an additive migration of the master; a struct that
 *   lacks the column simply does not read it. A NOT NULL column is added
 *   with the default the ORM's own migrations use (0, 0.0, '', x''), the
 *   value the master's existing rows got.
 * - A table that was not replicated before (first apply, or one that joins
 *   during a reset) holds only what the master sends: its rows and
 *   tombstones are removed in this transaction (readers see them until
 *   the commit). If there were any, the database gets a new identity at
 *   commit, as after a reset, so its own slaves resynchronise.
 */
VERSO_API int verso_apply_table(verso_db *db, const char *table, const verso_column *columns,
                                size_t n);

/*
 * The explicit opt-in for a name collision: inside apply, drops the object
 * named table (ignoring case) that verso_apply_table() would refuse (see
 * there), so that the next verso_apply_table() makes the replica; a table's
 * indexes and triggers go with it. A tracked table of another case leaves
 * the change feed with its tombstones, and the database gets a new
 * identity at commit. Rolled back with the apply transaction. 0 when there
 * is nothing to replace (no such object, or a tracked table of that exact
 * name). Errors: VERSO_ESTATE (not inside apply), VERSO_EDB.
 */
VERSO_API int verso_apply_replace(verso_db *db, const char *table);

/* Upserts a row with the master's id and version. Versions must increase. */
VERSO_API int verso_apply_upsert(verso_db *db, const char *table, const char *const *columns,
                                 const verso_value *values, size_t n);
/* Deletes a row, recording the tombstone with the master's version. */
VERSO_API int verso_apply_delete(verso_db *db, const char *table, int64_t id, int64_t version);

/* Stores the cursor (master identity, version) and commits; hooks run. */
VERSO_API int verso_apply_commit(verso_db *db, const char *master_identity, int64_t version);
/* Abandons the apply transaction. */
VERSO_API int verso_apply_abort(verso_db *db);

/* ---------------------------------------------------------------------
 * JSON parsing (cJSON trees; the writers are in orm.h)
 * ------------------------------------------------------------------ */

/*
 * A parsed JSON document with exact 64-bit integers. Parse limits:
 * max_depth nesting (<= 0: 64). Errors: VERSO_EJSON (with position),
 * VERSO_EUTF8, VERSO_ETOOBIG (nesting). On error why (may be NULL) receives
 * what is wrong and at which byte (NUL-terminated, cut to whylen).
 */
typedef struct verso_json verso_json;
VERSO_API int verso_json_parse(verso_json **out, const char *text, size_t len, int max_depth,
                               char *why, size_t whylen);
VERSO_API void verso_json_free(verso_json *doc);
/* The root as a cJSON tree (borrowed; struct cJSON from <cjson/cJSON.h>). */
VERSO_API struct cJSON *verso_json_root(const verso_json *doc);
/* Exact integer value of a number node: 0 and *out set if it is an integer
 * in int64 range, VERSO_ETYPE if fractional/exponent/out of range. */
VERSO_API int verso_json_int64(int64_t *out, const struct cJSON *number);
/* Byte length of a string node's value: a parsed string may hold U+0000
 * (valuestring is then not a plain C string). 0 if not a string. */
VERSO_API size_t verso_json_strlen(const struct cJSON *s);
/* s's valuestring when it is a string without U+0000, else NULL: for names
 * and identifiers that are used as C strings. */
VERSO_API const char *verso_json_cstr(const struct cJSON *s);

/*
 * Converts a JSON object into (column, value) pairs for table t, checking
 * names and types. *cols and *vals are allocated (free both with
 * verso_free()); values borrow strings from obj, blobs are decoded into
 * memory owned by *vals's allocation. Accepted per column type: int64 an
 * exact integer; double any finite number; bool true/false; text a string;
 * uuid a canonical 8-4-4-4-12 hex string in either case (given as
 * VERSO_UUID, lower case); blob a padded base64 string; any column type:
 * any scalar (true/false as 1/0); null always (NOT NULL is left to the
 * database); in every column a tagged object (see above), which gives the
 * value of the storage class it names. The version column is converted like
 * any int64 column. Errors: VERSO_EINVAL (unknown or repeated column, not an
 * object), VERSO_ETYPE (wrong type, naming the column), VERSO_EUTF8 (text of
 * a tree built in C), VERSO_ENOMEM; the reason goes to why (may be NULL).
 */
VERSO_API int verso_json_to_values(const char ***cols, verso_value **vals, size_t *n,
                                   const verso_table *t, const struct cJSON *obj, char *why,
                                   size_t whylen);

/*
 * Converts one JSON value for column c with the rules of
 * verso_json_to_values. A decoded blob or normalised UUID lives in *store
 * (free with verso_free(); NULL when none was needed); text borrows from j.
 * Errors as verso_json_to_values.
 */
VERSO_API int verso_json_to_value(verso_value *out, void **store, const struct cJSON *j,
                                  const verso_column *c, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif
