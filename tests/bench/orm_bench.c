/*
 * orm_bench [ROWS [DIR [ROUNDS]]] - ORM write and change-feed throughput
 * against hand-written SQLite baselines measured next to them.
 *
 * Every write test runs ROWS rows (default 1,000,000) in one transaction,
 * WAL, synchronous=NORMAL, on files in DIR (default $TMPDIR or /tmp); the
 * delete tests remove a tenth of the rows by id, in random order. The ORM
 * runs twice: on the fast path, and in trigger mode (another tracked table
 * has a trigger of the user's, so the handle writes with triggers on).
 *
 * ROUNDS (default 5, also VERSO_BENCH_ROUNDS) rounds each start from fresh
 * files. Inside a round all variants run an operation together (inserts,
 * then the feed and its bare read, updates, deletes): each opens its
 * transaction, they take turns 100 times (10,000 rows a turn for inserts,
 * updates and the feed, 1,000 for deletes; who goes first rotating), then
 * each commits, and a variant's time is the sum of its own turns. A load that comes and goes on the
 * machine thus falls on baseline and subject alike. Each ratio is formed inside a round.
 *
 * Prints `name value` lines: rows/s per variant (median of the rounds), then
 * each ratio as `ratio_x` and `ratio_x_median` (the median of the rounds'
 * ratios), `ratio_x_min` and `ratio_x_max`. One line per round on stderr.
 */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verso/orm.h"
#include "verso/advanced.h"
#include "bench_rounds.h"

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

/* The path of a variant's file, with the file and its WAL removed. */
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

enum { OP_INSERT, OP_UPDATE, OP_DELETE, NOPS };
enum { V_PLAIN, V_RAWV, V_ORM, V_TRIG, NVARIANTS };

/* The variants take turns about TURNS times in each operation. */
enum { TURNS = 100 };

static int64_t slice_rows(int64_t total)
{
    return total / TURNS ? total / TURNS : 1;
}

static const char *const op_names[NOPS] = {"insert", "update", "delete"};

/* Rows an operation writes, in one transaction. */
static int64_t op_rows(int op)
{
    return op == OP_DELETE ? ndel : nrows;
}

/* One variant's database in one round: SQLite for the hand-written ones,
 * a verso handle for the ORM ones. */
typedef struct target {
    sqlite3 *sq;
    sqlite3_stmt *st; /* the open operation's statement */
    sqlite3_stmt *hd; /* versioned: stores the counter at commit */
    verso_db *db;
    int64_t counter; /* the hand-written versions */
} target;

/* An operation as one transaction written a slice at a time. */
typedef struct engine {
    void (*begin)(target *t, const char *sql);
    void (*rows)(target *t, int op, int64_t from, int64_t to);
    void (*commit)(target *t);
} engine;

/* ---- baselines: plain SQLite ---- */

static const char plain_schema[] = "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT,"
                                   " price REAL, qty INTEGER)";
static const char rawv_schema[] = "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT,"
                                  " price REAL, qty INTEGER, version INTEGER);"
                                  "CREATE INDEX item_version ON item(version);"
                                  "CREATE TABLE head(v INTEGER NOT NULL);"
                                  "INSERT INTO head VALUES (0)";

static void open_sql(target *t, const char *tag, const char *schema)
{
    if (sqlite3_open(fresh(tag), &t->sq) != SQLITE_OK)
        die("open", sqlite3_errmsg(t->sq));
    run_sql(t->sq, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
    run_sql(t->sq, schema);
}

static void plain_open(target *t)
{
    open_sql(t, "plain", plain_schema);
}

static void rawv_open(target *t)
{
    open_sql(t, "rawv", rawv_schema);
}

/* ?1 id, ?2 name, ?3 price, ?4 qty and, with a fifth parameter, ?5 a version
 * from the C counter (stored in head at commit); deletes bind ?1 only. */
static void sql_begin(target *t, const char *sql)
{
    t->st = prep(t->sq, sql);
    if (sqlite3_bind_parameter_count(t->st) == 5)
        t->hd = prep(t->sq, "UPDATE head SET v = ?1");
    run_sql(t->sq, "BEGIN");
}

static void sql_rows(target *t, int op, int64_t from, int64_t to)
{
    for (int64_t i = from; i < to; i++) {
        if (op == OP_DELETE) {
            sqlite3_bind_int64(t->st, 1, del_ids[i]);
        } else {
            sqlite3_bind_int64(t->st, 1, i + 1);
            sqlite3_bind_text(t->st, 2, names[i & 7], -1, SQLITE_STATIC);
            sqlite3_bind_double(t->st, 3, (double)i * 0.25);
            sqlite3_bind_int64(t->st, 4, (i & 1023) + (op == OP_UPDATE));
        }
        if (t->hd)
            sqlite3_bind_int64(t->st, 5, ++t->counter);
        step_reset(t->sq, t->st);
    }
}

static void sql_commit(target *t)
{
    if (t->hd) {
        sqlite3_bind_int64(t->hd, 1, t->counter);
        step_reset(t->sq, t->hd);
    }
    run_sql(t->sq, "COMMIT");
    sqlite3_finalize(t->st);
    sqlite3_finalize(t->hd);
    t->st = t->hd = NULL;
}

static const engine sql_engine = {sql_begin, sql_rows, sql_commit};

/* ---- the ORM ---- */

static verso_db *open_orm(const char *tag)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&brow_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db;
    o.tables = tabs;
    o.ntables = 1;
    if (verso_db_open(&db, fresh(tag), &o, open_why, sizeof(open_why)) != 0)
        die("verso_db_open", open_why);
    return db;
}

static void check(verso_db *db, int rc, const char *what)
{
    if (rc != 0)
        die(what, verso_db_errmsg(db));
}

static void orm_open(target *t)
{
    t->db = open_orm("orm");
}

/* A database where another tracked table has a trigger of the user's: the
 * handle runs its ORM writes with triggers on (trigger mode). */
static void trig_open(target *t)
{
    verso_db *db = open_orm("ormtrig");
    check(db, verso_db_exec(db, "CREATE TABLE side(id INTEGER PRIMARY KEY, x TEXT)"), "side");
    check(db, verso_db_track(db, "side", NULL), "track side");
    check(db,
          verso_db_exec(db, "CREATE TRIGGER side_guard BEFORE INSERT ON side WHEN NEW.x IS NULL "
                            "BEGIN SELECT RAISE(ABORT, 'x is required'); END"),
          "trigger");
    t->db = db;
}

static void orm_begin(target *t, const char *sql)
{
    (void)sql;
    check(t->db, verso_db_begin(t->db), "begin");
}

static void orm_rows(target *t, int op, int64_t from, int64_t to)
{
    for (int64_t i = from; i < to; i++) {
        if (op == OP_DELETE) {
            check(t->db, verso_record_delete(t->db, &brow_def, del_ids[i]), "delete");
            continue;
        }
        brow r = {i + 1, 0, (char *)names[i & 7], (double)i * 0.25, (i & 1023) + (op == OP_UPDATE)};
        check(t->db,
              op == OP_INSERT ? verso_record_insert(t->db, &brow_def, &r)
                              : verso_record_update(t->db, &brow_def, &r, 0),
              op_names[op]);
    }
}

static void orm_commit(target *t)
{
    check(t->db, verso_db_commit(t->db), "commit");
}

static const engine orm_engine = {orm_begin, orm_rows, orm_commit};

/* ---- the change feed against a bare read ---- */

/* The change feed as JSON lines, or a bare read of the same rows with the
 * same query shape, both in pages of 1000 from a cursor. */
typedef struct reader {
    int64_t since, n;
    bool done;
    sqlite3_stmt *st; /* the bare read */
    verso_buf out;    /* the feed's JSON */
    size_t bytes;
} reader;

static void changes_slice(verso_db *db, reader *rd)
{
    for (int64_t n0 = rd->n; !rd->done && rd->n - n0 < slice_rows(nrows);) {
        verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
        verso_feed *f;
        const verso_feed_entry *e;
        fo.since = rd->since;
        fo.limit = 1000;
        check(db, verso_feed_open(&f, db, &fo), "feed");
        verso_buf_clear(&rd->out);
        while (verso_feed_next(&e, f) == 1) {
            check(db, verso_json_feed_entry(&rd->out, e), "json");
            verso_buf_append(&rd->out, "\n", 1);
            rd->n++;
        }
        rd->bytes += rd->out.len;
        rd->done = !verso_feed_more(f);
        rd->since = verso_feed_cursor(f);
        verso_feed_close(f);
    }
}

static double read_sink; /* keeps the bare read's column reads */

static void read_slice(verso_db *db, reader *rd)
{
    (void)db;
    for (int64_t n0 = rd->n; !rd->done && rd->n - n0 < slice_rows(nrows);) {
        int64_t got = 0;
        sqlite3_bind_int64(rd->st, 1, rd->since);
        while (sqlite3_step(rd->st) == SQLITE_ROW) {
            read_sink += (double)sqlite3_column_int64(rd->st, 0) +
                         sqlite3_column_double(rd->st, 3) +
                         (double)sqlite3_column_int64(rd->st, 4) + sqlite3_column_bytes(rd->st, 2);
            rd->since = sqlite3_column_int64(rd->st, 1);
            got++;
        }
        sqlite3_reset(rd->st);
        rd->n += got;
        rd->done = got == 0;
    }
}

/* ---- variants, figures, ratios ---- */

typedef struct variant {
    const char *name; /* in the figure names */
    const char *tag;  /* in the file name */
    void (*open)(target *t);
    const engine *eng;
    const char *sql[NOPS]; /* hand-written: the statement of each operation */
} variant;

static const variant variants[NVARIANTS] = {
    [V_PLAIN] = {"plain",
                 "plain",
                 plain_open,
                 &sql_engine,
                 {"INSERT INTO item(id, name, price, qty) VALUES (?, ?, ?, ?)",
                  "UPDATE item SET name = ?2, price = ?3, qty = ?4 WHERE id = ?1",
                  "DELETE FROM item WHERE id = ?1"}},
    [V_RAWV] = {"raw_versioned",
                "rawv",
                rawv_open,
                &sql_engine,
                {"INSERT INTO item(id, name, price, qty, version) VALUES (?, ?, ?, ?, ?)",
                 "UPDATE item SET name = ?2, price = ?3, qty = ?4, version = ?5 WHERE id = ?1",
                 "DELETE FROM item WHERE id = ?1"}},
    [V_ORM] = {"orm", "orm", orm_open, &orm_engine, {NULL}},
    [V_TRIG] = {"orm_trigger_mode", "ormtrig", trig_open, &orm_engine, {NULL}},
};

/* Figures: rows/s of each variant and operation, then the feed's two. */
#define FIG(v, op) ((op)*NVARIANTS + (v))
enum { F_READ = NOPS * NVARIANTS, F_CHANGES, NFIGS };

static const struct {
    const char *name;
    int subject, baseline;
} ratios[] = {
    {"ratio_insert_vs_plain", FIG(V_ORM, OP_INSERT), FIG(V_PLAIN, OP_INSERT)},
    {"ratio_insert_vs_raw_versioned", FIG(V_ORM, OP_INSERT), FIG(V_RAWV, OP_INSERT)},
    {"ratio_update_vs_plain", FIG(V_ORM, OP_UPDATE), FIG(V_PLAIN, OP_UPDATE)},
    {"ratio_update_vs_raw_versioned", FIG(V_ORM, OP_UPDATE), FIG(V_RAWV, OP_UPDATE)},
    {"ratio_delete_vs_plain", FIG(V_ORM, OP_DELETE), FIG(V_PLAIN, OP_DELETE)},
    {"ratio_delete_vs_raw_versioned", FIG(V_ORM, OP_DELETE), FIG(V_RAWV, OP_DELETE)},
    {"ratio_changes_vs_read", F_CHANGES, F_READ},
    {"ratio_trigger_mode_insert_vs_raw_versioned", FIG(V_TRIG, OP_INSERT), FIG(V_RAWV, OP_INSERT)},
    {"ratio_trigger_mode_update_vs_raw_versioned", FIG(V_TRIG, OP_UPDATE), FIG(V_RAWV, OP_UPDATE)},
    {"ratio_trigger_mode_delete_vs_raw_versioned", FIG(V_TRIG, OP_DELETE), FIG(V_RAWV, OP_DELETE)},
};
#define NRATIOS (sizeof ratios / sizeof ratios[0])

static void figure_name(char *out, size_t n, int f)
{
    if (f == F_READ || f == F_CHANGES)
        snprintf(out, n, "%s_rows_per_s", f == F_READ ? "read" : "changes");
    else
        snprintf(out, n, "%s_%s_rows_per_s", variants[f % NVARIANTS].name, op_names[f / NVARIANTS]);
}

/* One operation in every variant: each opens its transaction, then they
 * take turns a slice at a time (the first of each turn rotating), then each
 * commits. A variant's rate counts only its own calls. */
static void run_op(int op, target t[NVARIANTS], bench_series fig[NFIGS])
{
    const int64_t total = op_rows(op), slice = slice_rows(total);
    double secs[NVARIANTS] = {0}, t0;

    for (int v = 0; v < NVARIANTS; v++) {
        t0 = now_s();
        variants[v].eng->begin(&t[v], variants[v].sql[op]);
        secs[v] += now_s() - t0;
    }
    for (int64_t from = 0, k = 0; from < total; from += slice, k++) {
        int64_t to = from + slice < total ? from + slice : total;
        for (int j = 0; j < NVARIANTS; j++) {
            int v = (int)((j + k) % NVARIANTS);
            t0 = now_s();
            variants[v].eng->rows(&t[v], op, from, to);
            secs[v] += now_s() - t0;
        }
    }
    for (int v = 0; v < NVARIANTS; v++) {
        t0 = now_s();
        variants[v].eng->commit(&t[v]);
        secs[v] += now_s() - t0;
    }
    for (int v = 0; v < NVARIANTS; v++)
        bench_add(&fig[FIG(v, op)], (double)total / secs[v]);
}

/* The feed and its baseline on the ORM's database just filled, taking
 * turns a slice at a time. */
static void run_feed(verso_db *db, bench_series fig[NFIGS], size_t *bytes)
{
    void (*const step[2])(verso_db *, reader *) = {read_slice, changes_slice};
    reader rd[2] = {{0}, {0}};
    double secs[2] = {0};

    rd[0].st = prep(verso_db_sqlite(db), "SELECT id, version, name, price, qty FROM item"
                                         " WHERE version > ?1 ORDER BY version LIMIT 1000");
    for (int k = 0; !rd[0].done || !rd[1].done; k++)
        for (int j = 0; j < 2; j++) {
            int i = (j + k) % 2;
            double t0 = now_s();
            step[i](db, &rd[i]);
            secs[i] += now_s() - t0;
        }
    sqlite3_finalize(rd[0].st);
    verso_buf_free(&rd[1].out);
    if (rd[0].n != nrows || rd[1].n != nrows || read_sink < 0)
        die("feed", "wrong number of rows");
    bench_add(&fig[F_READ], (double)nrows / secs[0]);
    bench_add(&fig[F_CHANGES], (double)nrows / secs[1]);
    *bytes = rd[1].bytes;
}

static void run_round(bench_series fig[NFIGS], size_t *bytes)
{
    target t[NVARIANTS] = {{0}};

    for (int v = 0; v < NVARIANTS; v++)
        variants[v].open(&t[v]);
    for (int op = 0; op < NOPS; op++) {
        run_op(op, t, fig);
        if (op == OP_INSERT)
            run_feed(t[V_ORM].db, fig, bytes);
    }
    for (int v = 0; v < NVARIANTS; v++) {
        sqlite3_close(t[v].sq);
        verso_db_close(t[v].db);
        fresh(variants[v].tag); /* removes the file */
    }
}

static void print_round(int round, int rounds, double secs, bench_series fig[NFIGS])
{
    fprintf(stderr, "orm_bench: round %d/%d (%.1f s):", round + 1, rounds, secs);
    for (size_t i = 0; i < NRATIOS; i++) {
        const char *short_name = ratios[i].name + strlen("ratio_");
        double b = fig[ratios[i].baseline].v[round];
        fprintf(stderr, " %s %.3f", short_name, b > 0 ? fig[ratios[i].subject].v[round] / b : 0);
    }
    fputc('\n', stderr);
}

static void report(int rounds, bench_series fig[NFIGS], size_t bytes)
{
    char name[128];

    printf("rows %lld\ndeleted_rows %lld\nrounds %d\n", (long long)nrows, (long long)ndel, rounds);
    for (int f = 0; f < NFIGS; f++) {
        figure_name(name, sizeof name, f);
        printf("%s %.0f\n", name, bench_median(&fig[f]));
    }
    printf("changes_json_bytes %zu\n", bytes);
    for (size_t i = 0; i < NRATIOS; i++) {
        bench_series r;
        bench_ratio(&r, &fig[ratios[i].subject], &fig[ratios[i].baseline]);
        bench_print_spread(ratios[i].name, &r, 3);
    }
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
    static bench_series fig[NFIGS];
    size_t bytes = 0;
    int rounds = bench_rounds(argc > 3 ? argv[3] : NULL);

    if ((argc > 1 && (nrows = strtoll(argv[1], NULL, 10)) <= 0) || rounds < 0) {
        fprintf(stderr,
                "usage: orm_bench [ROWS [DIR [ROUNDS]]]  (ROUNDS 1-%d, default %d,"
                " also VERSO_BENCH_ROUNDS)\n",
                BENCH_MAX_ROUNDS, BENCH_DEFAULT_ROUNDS);
        return 2;
    }
    const char *tmp = argc > 2 ? argv[2] : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s", tmp && tmp[0] ? tmp : "/tmp");

    pick_deletes();
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        run_round(fig, &bytes);
        print_round(r, rounds, now_s() - t0, fig);
    }
    report(rounds, fig, bytes);
    free(del_ids);
    return 0;
}
