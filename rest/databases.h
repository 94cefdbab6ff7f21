/*
 * rest/databases.h - the named databases of a dir server: the name rule and
 * the files (rest/dbnames.c), and the admin routes (rest/admin.c).
 *
 * A database name is 1 to 64 bytes of [A-Za-z0-9_-], the first a letter or
 * a digit: ASCII only, case-sensitive, no dot. The database <name> is the
 * file DIR/<name>.db. A name is checked before it is used in a path; other
 * files of DIR (names that fail the rule, dot-files, -wal, -shm, the
 * temporary files of these functions) are never listed.
 *
 * Every function returns 0 or a negative VERSO_E*; why (may be NULL) gets a
 * one-line reason that names no path outside what the caller gave. They
 * keep no state: any thread, but one caller at a time per DIR (the dir
 * server calls them from its service thread).
 */
#ifndef VERSO_REST_DATABASES_H
#define VERSO_REST_DATABASES_H

#include <stdbool.h>
#include <stddef.h>

#define VERSO__DBNAME_MAX 64

struct verso__req;
struct verso__resp;

/* Whether name[0..len) follows the rule (a NUL byte inside fails). */
bool verso__dbname_valid(const char *name, size_t len);

/* 0 when valid; else VERSO_EINVAL and why says what the rule is, quoting the
 * name safely ("database names are 1 to 64 letters, digits, '_' or '-' ..."). */
int verso__dbname_check(const char *name, size_t len, char *why, size_t whylen);

/* out (n bytes) gets "dir/name.db". VERSO_EINVAL (bad name), VERSO_ETOOBIG
 * (out too small). */
int verso__dbfile_path(char *out, size_t n, const char *dir, const char *name);

/* Calls fn(name, arg) for each database of dir: each regular file (symbolic
 * links followed) DIR/<name>.db whose name follows the rule, sorted by name
 * (strcmp). A non-zero return of fn stops the scan and is returned.
 * VERSO_EIO (dir unreadable), VERSO_ENOMEM. */
int verso__dbfile_scan(const char *dir, int (*fn)(const char *name, void *arg), void *arg);

/* Creates DIR/name.db: a new empty verso database (no tracked table, WAL,
 * a new identity), made under a temporary name and renamed in.
 * VERSO_EINVAL (name), VERSO_ECONFLICT (name taken), VERSO_EIO. */
int verso__dbfile_create(const char *dir, const char *name, char *why, size_t whylen);

/*
 * Adopts the file src (a temporary file in DIR, written by the caller) as
 * DIR/name.db. Checked first: the SQLite header, then PRAGMA integrity_check
 * (with the schema untrusted); only then is it made a verso database: its
 * tracked tables are kept as they are (rows, versions, tombstones), an
 * untracked file gets verso's metadata (as `verso serve --allow-empty`), and
 * it gets a NEW identity, no slave cursor and no table marked replicated:
 * it is a new master, so slaves of wherever the copy came from notice the
 * change and resynchronise. Its head is raised to its highest version if
 * below. Then src is renamed to DIR/name.db without replacing anything.
 * Nothing is written under DIR/name.db unless it succeeds; src stays (for
 * the caller to remove) on failure, and the side files SQLite made beside
 * it are removed. VERSO_EINVAL ("the upload is not a SQLite database: ..."
 * or a bad name), VERSO_ECONFLICT (name taken), VERSO_EIO.
 */
int verso__dbfile_adopt(const char *dir, const char *name, const char *src, char *why,
                        size_t whylen);

/* Creates DIR/name.db with the schema of DIR/from.db (its tracked tables,
 * their columns, indexes and triggers) but no row, no tombstone, head 0 and
 * a new identity. VERSO_EINVAL (a name), VERSO_ENOTFOUND (no database from),
 * VERSO_ECONFLICT (name taken), VERSO_EIO. */
int verso__dbfile_from(const char *dir, const char *name, const char *from, char *why,
                       size_t whylen);

/* Removes DIR/name.db and its -wal, -shm and -journal. VERSO_EINVAL,
 * VERSO_ENOTFOUND, VERSO_EIO. */
int verso__dbfile_remove(const char *dir, const char *name, char *why, size_t whylen);

/* Removes the temporary files these functions and the admin routes leave
 * in dir when a process dies mid-way (".verso-new-*", ".verso-upload-*"
 * and their side files) once unmodified for min_age_s seconds: the dir
 * server calls it at start. The number removed, or VERSO_EIO. */
int verso__dbfile_sweep(const char *dir, int min_age_s);

/* rest/admin.c: GET /_databases (name NULL), PUT and DELETE
 * /_databases/<name> on a dir server (rq->srv->dir). */
void verso__route_databases(struct verso__req *rq, struct verso__resp *rs, const char *name);

#endif
