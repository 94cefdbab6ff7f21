/*
 * sync_harness.h - shared by the tests/test_sync_*.c programs; the bodies
 * are in tests/support/sync_harness.c.
 *
 * A master is a real process: the test binary re-executes itself with
 * "--master DB [--chunk N] [--port P]"; the child opens DB with the test
 * tables, serves REST + /_sync on 127.0.0.1 and prints its port on stdout.
 * Slaves run in the test process (verso_slave_start) or as `verso
 * replicate` processes ($VERSO_BIN). Workloads are seeded and go through
 * the ORM, plain SQL (sqlite3 on the master file) and REST (libcurl).
 */
#ifndef VERSO_TEST_SYNC_HARNESS_H
#define VERSO_TEST_SYNC_HARNESS_H

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sqlite3.h>

#include "verso/orm.h"
#include "verso/advanced.h"
#include "verso/rest.h"
#include "verso/sync.h"

/* ---- the test tables ---- */

typedef struct h_item {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t qty;
    bool qty_null;
} h_item;

typedef struct h_account {
    int64_t id;
    int64_t version;
    int64_t balance;
} h_account;

/* "items" (h_item) and "accounts" (h_account). The ORM knows a declared
 * table by the address of its verso_table_def: these are the only copies. */
extern const verso_table_def h_items;
extern const verso_table_def h_accounts;
extern const verso_table_def *const h_tables[2];

/* Default options with both tables. */
void h_db_options(verso_db_options *o);
/* Opens path with both tables; fails the test otherwise. */
verso_db *h_open(const char *path);

/* ---- paths ---- */

/* The test's directory, set by h_init_dir(). */
extern char h_dir[512];

/* Creates "$VERSO_TEST_TMP/<test>.<pid>" (or under /tmp) and sets h_dir. */
void h_init_dir(const char *test);
/* Removes the test's directory (flat) after a run that passed; kept otherwise. */
void h_remove_dir(int failed);
/* Writes "<dir>/<name>" into buf (n bytes) and returns buf. */
const char *h_path(char *buf, size_t n, const char *name);
/* Removes path and its -wal and -shm files. */
void h_remove_db(const char *path);
void h_sleep_ms(int ms);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t h_now_ms(void);

/* ---- the master process ---- */

typedef struct h_master {
    pid_t pid;
    int port;
    char url[64];
} h_master;

/* main() of the "--master DB [--chunk N] [--port P] [--heartbeat MS] [--config F]" child. */
int h_master_main(int argc, char **argv);
/* Starts "--master db" (extra: NULL-terminated options) and reads its port. */
void h_master_start(h_master *m, const char *db, const char *const *extra);
void h_master_start_port(h_master *m, const char *db, int port);
/* Sends sig and reaps the child; after SIGTERM it must have exited with 0. */
void h_master_kill(h_master *m, int sig);

/* Dispatches "--master" before cmocka runs. */
#define H_MAIN_DISPATCH(argc, argv)                                                                \
    do {                                                                                           \
        if ((argc) > 2 && !strcmp((argv)[1], "--master"))                                          \
            return h_master_main((argc), (argv));                                                  \
    } while (0)

/* ---- workloads ---- */

/* The seeded generator's state (h_seed, h_rand). */
extern uint64_t h_rng;

void h_seed(uint64_t s);
uint32_t h_rand(void);
/* Picks an existing id of table (0 if none). */
int64_t h_pick_id(sqlite3 *s, const char *table);
/* One random ORM operation on accounts (ids 1 and 2 are never deleted). */
int h_orm_account_op(verso_db *db);
/* One random ORM operation on items or accounts (inside the caller's transaction). */
int h_orm_op(verso_db *db);
/* A seeded ORM workload: ntx transactions of 1..maxrows operations. */
void h_orm_workload(verso_db *db, int ntx, int maxrows);
/* Plain SQL on the master file from this process (tracked by the triggers). */
void h_sql_workload(const char *path, int ntx);
/* A libcurl write callback: appends to the verso_buf arg, or drops the bytes if arg is NULL. */
size_t h_discard(char *p, size_t size, size_t n, void *arg);
/* An HTTP request to the master; returns the status. body may be NULL. */
long h_http(const h_master *m, const char *method, const char *path, const char *json,
            verso_buf *body);
/* Writes through the master's REST API: inserts, updates and deletes of items. */
void h_rest_workload(const h_master *m, const char *mpath, int n);

/* ---- checks ---- */

int64_t h_head(const char *path);
/* The stored replication cursor of path; its master identity into master (may be NULL). */
int64_t h_cursor(const char *path, char master[37]);
/* Column i of the current rows of a and b holds the same value, storage class included. */
bool h_same_value(sqlite3_stmt *a, sqlite3_stmt *b, int i);
/* Number of rows of table in path, comparing nothing (-1 on error). */
int64_t h_count(const char *path, const char *table);
/* Asserts table is equal in both files, row by row, versions included. */
void h_assert_table_equal(const char *mpath, const char *spath, const char *table);
/* True if the bytes of text occur anywhere in the file (or its WAL). */
bool h_file_contains(const char *path, const char *text);
void h_assert_integrity(const char *path);
/* Both tables equal, the slave's cursor at the master's head and identity. */
void h_assert_converged(const char *mpath, const char *spath);
/* The first column of the first row of sql (its parameter, if any, bound to bind); -1 if none. */
int64_t h_sql_int(sqlite3 *s, const char *sql, int64_t bind);
/*
 * The slave file's data is exactly the master's state at the slave's
 * cursor C, as far as the master's file still shows it (the master may
 * have moved on): no row or tombstone newer than C, every master row of
 * version <= C present with that version, and every other slave row
 * changed on the master after C. Catches a cursor stored ahead of or
 * behind its data (a crash between the two). Nothing may write the
 * master meanwhile.
 */
void h_assert_cursor_matches_data(const char *mpath, const char *spath);
/* Waits (bounded) until the slave file's cursor reaches the master's head. */
bool h_wait_cursor(const char *mpath, const char *spath, int timeout_ms);
/* Inserts accounts 1 and 2 with balance each. */
void h_seed_accounts(verso_db *db, int64_t each);
/* Moves a random amount from one account to the other in one transaction. */
void h_transfer(verso_db *db);
/* Sum and count of accounts read in one read transaction of path (-1 on error). */
void h_accounts_sum(const char *path, int64_t *sum, int64_t *count);

#endif
