/*
 * faultvfs.h - a SQLite VFS for tests that fails chosen I/O calls.
 *
 * A shim over the default unix VFS, registered as the process's default
 * VFS by faultvfs_install(), so every database verso opens afterwards goes
 * through it. It counts the calls of the kinds armed and fails the Nth
 * one (one-shot), or the Nth and every one after it (persistent), with the
 * code asked for (SQLITE_IOERR_*, SQLITE_FULL, ...). A separate switch
 * makes the disk "full": every write then fails with SQLITE_FULL, as
 * the unix VFS answers when write() finds no room.
 *
 * Only files whose name starts with the target prefix are counted and
 * failed (faultvfs_target; NULL = every named file), so a test can fail
 * a slave's file and leave its in-process master alone. Temporary files
 * without a name are never failed while a target is set.
 *
 * All functions are thread-safe (the REST server and the slave run on
 * threads of their own).
 */
#ifndef VERSO_TESTS_FAULTVFS_H
#define VERSO_TESTS_FAULTVFS_H

#include <stdbool.h>

/* The kinds of I/O call, as bits. */
enum {
    FAULTVFS_READ = 1u << 0,
    FAULTVFS_WRITE = 1u << 1,
    FAULTVFS_SYNC = 1u << 2,
    FAULTVFS_TRUNCATE = 1u << 3,
    FAULTVFS_LOCK = 1u << 4,
    FAULTVFS_ANY = 0x1fu
};

/* Registers the shim as the default VFS (idempotent). 0 or a SQLite code. */
int faultvfs_install(void);

/* Only files whose path starts with prefix are counted and failed; NULL:
 * every named file. The string is copied. */
void faultvfs_target(const char *prefix);

/* Counts calls of the kinds in mask from now on; the nth (1-based) fails
 * with code, and with persistent every later one too. Resets the counters. */
void faultvfs_arm(unsigned mask, long nth, bool persistent, int code);

/* No more injected failures (the disk-full switch is left as it is). */
void faultvfs_disarm(void);

/* Calls counted since faultvfs_arm, and failures injected since then. */
long faultvfs_calls(void);
long faultvfs_failures(void);

/* While on, every write of a targeted file fails with SQLITE_FULL. */
void faultvfs_disk_full(bool on);

/* "read", "write", "sync", "truncate", "lock" for one kind bit. */
const char *faultvfs_kind_name(unsigned kind);

/*
 * The state of the database file at path as the fault tests compare it,
 * read through a fresh read-write connection (so a hot journal is rolled
 * back; faults should be disarmed): "absent"
 * when there is no such database, else PRAGMA integrity_check's verdict,
 * the schema, and every row of every table (verso's metadata, deletion
 * log and cursor included), in a stable order. Values that differ from
 * one run to the next are masked: the database identity and the
 * tombstones' wall-clock times. Returns a malloc'd string (free()).
 */
char *faultvfs_dump(const char *path);

#endif
