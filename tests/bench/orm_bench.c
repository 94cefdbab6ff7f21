/*
 * orm_bench [ROWS] [DIR] - ORM write and change-feed throughput against
 * hand-written SQLite baselines measured in the same run.
 *
 * Every write test runs ROWS rows (default 1,000,000) in one transaction on
 * a fresh file in DIR (default $TMPDIR or /tmp), WAL, synchronous=NORMAL;
 * the delete tests remove a tenth of the rows by id, in random order.
 * The ORM runs twice: on the fast path, and in trigger mode (another tracked
 * table has a trigger of the user's, so the handle writes with triggers on).
 * Prints `name value` lines: rows/s per variant, then the ratios.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verso/orm.h"
#include "verso/advanced.h"

typedef struct brow {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t qty;
} brow;

static const verso_field brow_fields[] = {
    VERSO_FIELD_ID_OF(brow, id),
    VERSO_FIELD_VERSION_OF(brow, version),
    VERSO_FIELD(brow, name, VERSO_TEXT, 0),
    VERSO_FIELD(brow, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(brow, qty, VERSO_INT64, 0),
};
static const verso_table_def brow_def = VERSO_TABLE_DEF("item", brow, brow_fields);

static const char *const names[8] = {"apple", "banana", "cherry", "damson",
                                     "elder", "fig",    "grape",  "hazelnut"};

static int64_t nrows = 1000000;
static int64_t *del_ids; /* ids deleted by the delete tests: a tenth of the rows, random order */
static int64_t ndel;
static char dir[512];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "orm_bench: %s: %s\n", what, detail);
    exit(1);
}

static const char *fresh(const char *tag)
{
    static char path[600];
    char side[620];
    snprintf(path, sizeof path, "%s/orm_bench_%s.db", dir, tag);
    remove(path);
    snprintf(side, sizeof side, "%s-wal", path);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", path);
    remove(side);
    return path;
}

static void run_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err ? err : "?");
}

static sqlite3 *open_plain(const char *tag, const char *schema)
{
    sqlite3 *db;
    if (sqlite3_open(fresh(tag), &db) != SQLITE_OK)
        die("open", sqlite3_errmsg(db));
    run_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
    run_sql(db, schema);
    return db;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(db));
    return st;
}

static void step_reset(sqlite3 *db, sqlite3_stmt *st)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        die("step", sqlite3_errmsg(db));
    sqlite3_reset(st);
}

/* ---- baselines: plain SQLite ---- */

static void bind_row(sqlite3_stmt *st, int64_t i)
{
    sqlite3_bind_int64(st, 1, i + 1);
    sqlite3_bind_text(st, 2, names[i & 7], -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, (double)i * 0.25);
    sqlite3_bind_int64(st, 4, i & 1023);
}

static double bench_sql_delete(sqlite3 *db)
{
    sqlite3_stmt *st = prep(db, "DELETE FROM item WHERE id = ?1");
    double t0 = now_s();
    run_sql(db, "BEGIN");
    for (int64_t i = 0; i < ndel; i++) {
        sqlite3_bind_int64(st, 1, del_ids[i]);
        step_reset(db, st);
    }
    run_sql(db, "COMMIT");
    sqlite3_finalize(st);
    return (double)ndel / (now_s() - t0);
}

/* Plain table: insert, update every row, delete a tenth of the rows. */
static void bench_plain(double *ins, double *upd, double *del)
{
    sqlite3 *db = open_plain("plain", "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT,"
                                      " price REAL, qty INTEGER)");
    sqlite3_stmt *st = prep(db, "INSERT INTO item(id, name, price, qty) VALUES (?, ?, ?, ?)");
    double t0 = now_s();
    run_sql(db, "BEGIN");
    for (int64_t i = 0; i < nrows; i++) {
        bind_row(st, i);
        step_reset(db, st);
    }
    run_sql(db, "COMMIT");
    *ins = (double)nrows / (now_s() - t0);
    sqlite3_finalize(st);

    st = prep(db, "UPDATE item SET name = ?2, price = ?3, qty = ?4 WHERE id = ?1");
    t0 = now_s();
    run_sql(db, "BEGIN");
    for (int64_t i = 0; i < nrows; i++) {
        bind_row(st, i);
        sqlite3_bind_int64(st, 4, (i & 1023) + 1);
        step_reset(db, st);
    }
    run_sql(db, "COMMIT");
    *upd = (double)nrows / (now_s() - t0);
    sqlite3_finalize(st);

    *del = bench_sql_delete(db);
    sqlite3_close(db);
}

/* A hand-written versioned insert: version from a C counter, index on version;
 * then the same deletes without tombstones. */
static double bench_raw_versioned(double *upd, double *del)
{
    sqlite3 *db = open_plain("rawv", "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT,"
                                     " price REAL, qty INTEGER, version INTEGER);"
                                     "CREATE INDEX item_version ON item(version);"
                                     "CREATE TABLE head(v INTEGER NOT NULL);"
                                     "INSERT INTO head VALUES (0)");
    sqlite3_stmt *st =
        prep(db, "INSERT INTO item(id, name, price, qty, version) VALUES (?, ?, ?, ?, ?)");
    sqlite3_stmt *hd = prep(db, "UPDATE head SET v = ?1");
    double t0 = now_s();
    int64_t counter = 0;
    run_sql(db, "BEGIN IMMEDIATE");
    for (int64_t i = 0; i < nrows; i++) {
        bind_row(st, i);
        sqlite3_bind_int64(st, 5, ++counter);
        step_reset(db, st);
    }
    sqlite3_bind_int64(hd, 1, counter);
    step_reset(db, hd);
    run_sql(db, "COMMIT");
    double r = (double)nrows / (now_s() - t0);
    sqlite3_finalize(st);
    st = prep(db, "UPDATE item SET name = ?2, price = ?3, qty = ?4, version = ?5 WHERE id = ?1");
    t0 = now_s();
    run_sql(db, "BEGIN IMMEDIATE");
    for (int64_t i = 0; i < nrows; i++) {
        bind_row(st, i);
        sqlite3_bind_int64(st, 4, (i & 1023) + 1);
        sqlite3_bind_int64(st, 5, ++counter);
        step_reset(db, st);
    }
    sqlite3_bind_int64(hd, 1, counter);
    step_reset(db, hd);
    run_sql(db, "COMMIT");
    *upd = (double)nrows / (now_s() - t0);
    sqlite3_finalize(st);
    sqlite3_finalize(hd);
    *del = bench_sql_delete(db);
    sqlite3_close(db);
    return r;
}

/* ---- the ORM ---- */

static verso_db *open_orm(const char *tag)
{
    const verso_table_def *tabs[] = {&brow_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db;
    o.tables = tabs;
    o.ntables = 1;
    if (verso_db_open(&db, fresh(tag), &o) != 0)
        die("verso_db_open", verso_open_errmsg());
    return db;
}

static void check(verso_db *db, int rc, const char *what)
{
    if (rc != 0)
        die(what, verso_errmsg(db));
}

/* A database where another tracked table has a trigger of the user's: the
 * handle runs its ORM writes with triggers on (trigger mode). */
static verso_db *open_orm_trigger_mode(void)
{
    verso_db *db = open_orm("ormtrig");
    check(db, verso_exec(db, "CREATE TABLE side(id INTEGER PRIMARY KEY, x TEXT)"), "side");
    check(db, verso_track(db, "side", NULL), "track side");
    check(db,
          verso_exec(db, "CREATE TRIGGER side_guard BEFORE INSERT ON side WHEN NEW.x IS NULL "
                         "BEGIN SELECT RAISE(ABORT, 'x is required'); END"),
          "trigger");
    return db;
}

static double bench_orm_insert(verso_db *db)
{
    double t0 = now_s();
    check(db, verso_begin(db), "begin");
    for (int64_t i = 0; i < nrows; i++) {
        brow r = {i + 1, 0, (char *)names[i & 7], (double)i * 0.25, i & 1023};
        check(db, verso_insert(db, &brow_def, &r), "insert");
    }
    check(db, verso_commit(db), "commit");
    return (double)nrows / (now_s() - t0);
}

static double bench_orm_update(verso_db *db)
{
    double t0 = now_s();
    check(db, verso_begin(db), "begin");
    for (int64_t i = 0; i < nrows; i++) {
        brow r = {i + 1, 0, (char *)names[i & 7], (double)i * 0.25, (i & 1023) + 1};
        check(db, verso_update(db, &brow_def, &r, 0), "update");
    }
    check(db, verso_commit(db), "commit");
    return (double)nrows / (now_s() - t0);
}

static double bench_orm_delete(verso_db *db)
{
    double t0 = now_s();
    check(db, verso_begin(db), "begin");
    for (int64_t i = 0; i < ndel; i++)
        check(db, verso_delete(db, &brow_def, del_ids[i]), "delete");
    check(db, verso_commit(db), "commit");
    return (double)ndel / (now_s() - t0);
}

/* The change feed as JSON lines, in pages of 1000, against a bare read of
 * the same rows with the same query shape. */
static double bench_changes(verso_db *db, size_t *bytes)
{
    verso_buf out = VERSO_BUF_INIT;
    int64_t since = 0, n = 0;
    bool more = true;
    double t0 = now_s();
    *bytes = 0;
    while (more) {
        verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
        verso_feed *f;
        const verso_feed_entry *e;
        fo.since = since;
        fo.limit = 1000;
        check(db, verso_feed_open(&f, db, &fo), "feed");
        verso_buf_clear(&out);
        while (verso_feed_next(&e, f) == 1) {
            check(db, verso_json_feed_entry(&out, e), "json");
            verso_buf_append(&out, "\n", 1);
            n++;
        }
        *bytes += out.len;
        more = verso_feed_more(f);
        since = verso_feed_cursor(f);
        verso_feed_close(f);
    }
    double r = (double)n / (now_s() - t0);
    verso_buf_free(&out);
    if (n != nrows)
        die("feed", "wrong number of changes");
    return r;
}

static double bench_read(verso_db *db)
{
    sqlite3 *sq = verso_db_sqlite(db);
    sqlite3_stmt *st = prep(sq, "SELECT id, version, name, price, qty FROM item WHERE version > ?1"
                                " ORDER BY version LIMIT 1000");
    int64_t since = 0, n = 0, got;
    double sink = 0, t0 = now_s();
    do {
        got = 0;
        sqlite3_bind_int64(st, 1, since);
        while (sqlite3_step(st) == SQLITE_ROW) {
            sink += (double)sqlite3_column_int64(st, 0) + sqlite3_column_double(st, 3) +
                    (double)sqlite3_column_int64(st, 4) + sqlite3_column_bytes(st, 2);
            since = sqlite3_column_int64(st, 1);
            got++;
        }
        sqlite3_reset(st);
        n += got;
    } while (got);
    double r = (double)n / (now_s() - t0);
    sqlite3_finalize(st);
    if (sink < 0)
        puts("");
    return r;
}

/* A tenth of the ids (at least one), in a seeded random order. */
static void pick_deletes(void)
{
    int64_t *perm = malloc((size_t)nrows * sizeof *perm);
    uint64_t x = 88172645463325252ull;
    if (!perm)
        die("malloc", "out of memory");
    for (int64_t i = 0; i < nrows; i++)
        perm[i] = i + 1;
    for (int64_t i = nrows - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t j = (int64_t)(x % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    del_ids = perm;
    ndel = nrows / 10 ? nrows / 10 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (nrows = strtoll(argv[1], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: orm_bench [ROWS] [DIR]\n");
        return 2;
    }
    const char *tmp = argc > 2 ? argv[2] : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s", tmp && tmp[0] ? tmp : "/tmp");

    pick_deletes();
    double plain_ins, plain_upd, plain_del, rawv_upd, rawv_del;
    bench_plain(&plain_ins, &plain_upd, &plain_del);
    double rawv = bench_raw_versioned(&rawv_upd, &rawv_del);
    verso_db *db = open_orm("orm");
    double ins = bench_orm_insert(db);
    size_t bytes;
    double changes = bench_changes(db, &bytes);
    double read = bench_read(db);
    double upd = bench_orm_update(db);
    double del = bench_orm_delete(db);
    verso_db_close(db);
    fresh("orm");
    db = open_orm_trigger_mode();
    double tins = bench_orm_insert(db);
    double tupd = bench_orm_update(db);
    double tdel = bench_orm_delete(db);
    verso_db_close(db);

    printf("rows %lld\n", (long long)nrows);
    printf("plain_insert_rows_per_s %.0f\n", plain_ins);
    printf("raw_versioned_insert_rows_per_s %.0f\n", rawv);
    printf("orm_insert_rows_per_s %.0f\n", ins);
    printf("plain_update_rows_per_s %.0f\n", plain_upd);
    printf("raw_versioned_update_rows_per_s %.0f\n", rawv_upd);
    printf("orm_update_rows_per_s %.0f\n", upd);
    printf("deleted_rows %lld\n", (long long)ndel);
    printf("plain_delete_rows_per_s %.0f\n", plain_del);
    printf("raw_versioned_delete_rows_per_s %.0f\n", rawv_del);
    printf("orm_delete_rows_per_s %.0f\n", del);
    printf("orm_trigger_mode_insert_rows_per_s %.0f\n", tins);
    printf("orm_trigger_mode_update_rows_per_s %.0f\n", tupd);
    printf("orm_trigger_mode_delete_rows_per_s %.0f\n", tdel);
    printf("read_rows_per_s %.0f\n", read);
    printf("changes_rows_per_s %.0f\n", changes);
    printf("changes_json_bytes %zu\n", bytes);
    printf("ratio_insert_vs_plain %.3f\n", ins / plain_ins);
    printf("ratio_insert_vs_raw_versioned %.3f\n", ins / rawv);
    printf("ratio_update_vs_plain %.3f\n", upd / plain_upd);
    printf("ratio_update_vs_raw_versioned %.3f\n", upd / rawv_upd);
    printf("ratio_delete_vs_plain %.3f\n", del / plain_del);
    printf("ratio_delete_vs_raw_versioned %.3f\n", del / rawv_del);
    printf("ratio_changes_vs_read %.3f\n", changes / read);
    printf("ratio_trigger_mode_insert_vs_raw_versioned %.3f\n", tins / rawv);
    printf("ratio_trigger_mode_update_vs_raw_versioned %.3f\n", tupd / rawv_upd);
    printf("ratio_trigger_mode_delete_vs_raw_versioned %.3f\n", tdel / rawv_del);
    static const char *const files[] = {"plain", "rawv", "orm", "ormtrig"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        fresh(files[i]); /* removes the file */
    free(del_ids);
    return 0;
}
