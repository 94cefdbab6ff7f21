/*
 * orm/dbfile.h - whole database files for the named databases of a dir
 * server (rest/dbnames.c): what SQLite must say about a file before it
 * becomes a database. Internal; not installed. No path is checked here:
 * the caller gives files it made.
 */
#ifndef VERSO_ORM_DBFILE_H
#define VERSO_ORM_DBFILE_H

#include <stddef.h>

/*
 * Whether the file at path is a sound SQLite database: its first 100 bytes
 * are a SQLite header (magic, a valid page size), then PRAGMA
 * integrity_check answers "ok", read on a connection that trusts nothing
 * of the file's schema (trusted_schema off, defensive). why gets the
 * reason, without the path. A zero-length file is refused (SQLite would
 * take it for an empty database). The file is not changed; a WAL-mode file
 * leaves no -wal or -shm once this returns.
 * Errors: VERSO_EINVAL (not SQLite, or damaged), VERSO_EIO (unreadable).
 */
int verso__dbfile_sqlite_check(const char *path, char *why, size_t whylen);

/*
 * Makes the checked SQLite file at path a verso database of its own: the
 * metadata when it has none (tracked tables kept as they are), a new
 * identity, no slave cursor, no table marked replicated, and a head at
 * least its highest row or tombstone version. Closed again on return (no
 * -wal left). Errors: VERSO_EINVAL (the ORM refuses the file: why says
 * why), VERSO_EDB, VERSO_ENOMEM.
 */
int verso__dbfile_make_own(const char *path, char *why, size_t whylen);

/*
 * Writes at path (a new or empty file) a copy of the verso database src with
 * its tracked tables (columns, indexes, triggers) and none of their rows or
 * tombstones, head 0, horizon 0, a new identity, no cursor, nothing marked
 * replicated; tables outside tracking are left out. Closed on return.
 * Errors: VERSO_EINVAL (src is not a verso database), VERSO_EDB, VERSO_ENOMEM.
 */
int verso__dbfile_schema_copy(const char *src, const char *path, char *why, size_t whylen);

#endif
