/*
 * apply_bench - the slave's apply path against a hand-written prepared
 * upsert of the same rows, printed as "name value" lines.
 *
 *   apply_baseline_rows_per_s  the rows, parsed already, written by a loop of
 *       prepared INSERT ... ON CONFLICT(id) DO UPDATE, one transaction per
 *       100-row batch (plain SQLite, WAL, synchronous=NORMAL like the slave,
 *       the table with the index on its version column a tracked table has)
 *   apply_slave_rows_per_s     the same batches as the master encodes them
 *       (verso_feed + verso_json_feed_entry + the changes trailer, as
 *       sync/master.c writes them), each handed as its JSON text to the live
 *       slave's message handler (verso__slave_receive: parse, checks, apply,
 *       commit with the cursor), one commit per message
 *   apply_ratio                slave / baseline, formed inside each round
 *   lag_1row_baseline_us, lag_1row_slave_us  the same for a 1-row message
 *       (one transaction each), mean per message
 *
 * Usage: apply_bench [BATCHES [ROUNDS [PART]]] (default 500 batches of 100 rows,
 * 5 rounds; also VERSO_BENCH_ROWS / VERSO_BENCH_ROUNDS; PART: rows, lag or
 * all, the default; a part left out prints zeros, for profiling the other). Every round starts
 * from fresh slave files; baseline and slave alternate which goes first.
 * The items table: int64 id, text, double, int64 (sync_bench's).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sync/internal.h"
#include "verso/orm.h"
#include "bench_rounds.h"

typedef struct row {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t qty;
} row;

static const verso_field row_fields[] = {
    VERSO_FIELD_ID_OF(row, id),
    VERSO_FIELD_VERSION_OF(row, version),
    VERSO_FIELD(row, name, VERSO_TEXT, 0),
    VERSO_FIELD(row, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(row, qty, VERSO_INT64, 0),
};
static const verso_table_def items = VERSO_TABLE_DEF("items", row, row_fields);
static const verso_table_def *const tables[] = {&items};

/* What the master sent, and the same rows parsed. */
typedef struct batch {
    verso_buf msg;
    row *rows;
    size_t n;
} batch;

static char dir[256];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "apply_bench: %s: %s\n", what, detail);
    exit(1);
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static verso_db *open_db(const char *path)
{
    char why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    o.tables = tables;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, why, sizeof(why)) < 0)
        die(path, why);
    return db;
}

/* n transactions of per rows each on the master, ids from *next on. */
static void master_write(verso_db *db, int n, int per, int64_t *next)
{
    char name[32];
    row r;

    for (int t = 0; t < n; t++) {
        if (verso_db_begin(db) < 0)
            die("begin", verso_db_errmsg(db));
        for (int i = 0; i < per; i++, (*next)++) {
            snprintf(name, sizeof(name), "item %lld", (long long)*next);
            r = (row){.id = *next, .name = name, .price = (double)*next * 0.25, .qty = *next % 97};
            if (verso_record_insert(db, &items, &r) < 0)
                die("insert", verso_db_errmsg(db));
        }
        if (verso_db_commit(db) < 0)
            die("commit", verso_db_errmsg(db));
    }
}

static void keep_row(batch *b, const verso_feed_entry *e)
{
    row *r = &b->rows[b->n++];

    r->id = e->id;
    r->version = e->version;
    for (size_t c = 0; c < e->ncolumns; c++) {
        const char *col = verso_table_column_at(e->table, c)->name;
        const verso_value *v = &e->values[c];
        if (strcmp(col, "name") == 0)
            r->name = strndup(v->u.b.p, v->u.b.n);
        else if (strcmp(col, "price") == 0)
            r->price = v->u.d;
        else if (strcmp(col, "qty") == 0)
            r->qty = v->u.i;
    }
}

/* One changes message from since, as sync/master.c writes it. */
static int64_t encode(batch *b, verso_db *db, int64_t since, int limit)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_entry *e;
    verso_feed *f;
    int64_t n = 0, to;

    fo.since = since;
    fo.limit = limit;
    fo.blob_inline = VERSO_SYNC_BLOB_INLINE;
    b->rows = calloc((size_t)limit, sizeof(row));
    if (!b->rows || verso_feed_open(&f, db, &fo) < 0)
        die("feed", verso_db_errmsg(db));
    verso_buf_puts(&b->msg, "{\"type\":\"changes\",\"entries\":[");
    while (verso_feed_next(&e, f) == 1) {
        if (n++)
            verso_buf_puts(&b->msg, ",");
        verso_json_feed_entry(&b->msg, e);
        keep_row(b, e);
    }
    to = verso_feed_cursor(f);
    verso_buf_printf(&b->msg,
                     "],\"from\":%lld,\"to\":%lld,\"more\":false,\"head\":%lld,"
                     "\"time\":%lld}",
                     (long long)since, (long long)to, (long long)verso_feed_head(f),
                     (long long)time(NULL) * 1000);
    verso_feed_close(f);
    return to;
}

/* The master's hello and schema messages. */
static void preamble(verso_buf *hello, verso_buf *schema, verso_db *db, int64_t head)
{
    verso_buf_printf(hello,
                     "{\"type\":\"hello\",\"protocol\":1,\"identity\":\"%s\",\"head\":%lld,"
                     "\"horizon\":0,\"heartbeat_ms\":600000,\"time\":0}",
                     verso_db_identity(db), (long long)head);
    verso_buf_puts(schema, "{\"type\":\"schema\",\"tables\":");
    if (verso__sync_schema_json(schema, db, NULL, 0) < 0)
        die("schema", verso_db_errmsg(db));
    verso_buf_puts(schema, "}");
}

/* ---- the baseline ---- */

static void sq_exec(sqlite3 *q, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(q, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err ? err : "?");
}

static double run_baseline(const batch *bs, size_t nb, const char *path)
{
    sqlite3 *q;
    sqlite3_stmt *up;
    int64_t t0, rows = 0;

    if (sqlite3_open(path, &q) != SQLITE_OK)
        die(path, sqlite3_errmsg(q));
    sq_exec(q, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
               "CREATE TABLE items(id INTEGER PRIMARY KEY, version INTEGER, name TEXT,"
               " price REAL, qty INTEGER);"
               "CREATE INDEX items_version ON items(version)"); /* as a tracked table */
    if (sqlite3_prepare_v2(q,
                           "INSERT INTO items(id, version, name, price, qty) VALUES(?,?,?,?,?)"
                           " ON CONFLICT(id) DO UPDATE SET version=excluded.version,"
                           " name=excluded.name, price=excluded.price, qty=excluded.qty",
                           -1, &up, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(q));
    t0 = mono_ns();
    for (size_t b = 0; b < nb; b++) {
        sq_exec(q, "BEGIN");
        for (size_t i = 0; i < bs[b].n; i++) {
            const row *r = &bs[b].rows[i];
            sqlite3_bind_int64(up, 1, r->id);
            sqlite3_bind_int64(up, 2, r->version);
            sqlite3_bind_text(up, 3, r->name, -1, SQLITE_STATIC);
            sqlite3_bind_double(up, 4, r->price);
            sqlite3_bind_int64(up, 5, r->qty);
            if (sqlite3_step(up) != SQLITE_DONE)
                die("upsert", sqlite3_errmsg(q));
            sqlite3_reset(up);
        }
        sq_exec(q, "COMMIT");
        rows += (int64_t)bs[b].n;
    }
    t0 = mono_ns() - t0;
    sqlite3_finalize(up);
    sqlite3_close(q);
    return (double)rows * 1e9 / (double)t0;
}

/* ---- the slave ---- */

static void receive(verso_slave *s, const verso_buf *m, verso_buf *out)
{
    if (verso__slave_receive(s, m->data, m->len, out) < 0)
        die("slave refused", m->data);
}

static double run_slave(const batch *bs, size_t nb, const char *path, const verso_buf *hello,
                        const verso_buf *schema)
{
    verso_buf out = VERSO_BUF_INIT;
    verso_slave *s;
    char why[256] = "";
    int64_t t0, rows = 0;

    if (verso__slave_detached(&s, path, NULL, why, sizeof(why)) < 0)
        die("slave", why);
    receive(s, hello, &out);
    receive(s, schema, &out);
    t0 = mono_ns();
    for (size_t b = 0; b < nb; b++) {
        receive(s, &bs[b].msg, &out);
        rows += (int64_t)bs[b].n;
    }
    t0 = mono_ns() - t0;
    verso__slave_detached_free(s);
    verso_buf_free(&out);
    return (double)rows * 1e9 / (double)t0;
}

static void remove_db(const char *path)
{
    char side[600];

    unlink(path);
    for (int i = 0; i < 2; i++) {
        snprintf(side, sizeof(side), "%s%s", path, i ? "-shm" : "-wal");
        unlink(side);
    }
}

/* One figure pair: rows/s of baseline and slave, in the order of the round. */
static void pair(double *base, double *slave, int round, const batch *bs, size_t nb,
                 const verso_buf *hello, const verso_buf *schema)
{
    char bp[300], sp[300];

    snprintf(bp, sizeof(bp), "%s/base.db", dir);
    snprintf(sp, sizeof(sp), "%s/slave.db", dir);
    remove_db(bp);
    remove_db(sp);
    if (round % 2) {
        *slave = run_slave(bs, nb, sp, hello, schema);
        *base = run_baseline(bs, nb, bp);
    } else {
        *base = run_baseline(bs, nb, bp);
        *slave = run_slave(bs, nb, sp, hello, schema);
    }
}

/* The master's batches of per rows, nb of them, encoded from since. */
static batch *make_batches(verso_db *db, size_t nb, int per, int64_t *since)
{
    batch *bs = calloc(nb, sizeof(*bs));
    int64_t next = *since + 1;

    if (!bs)
        die("batches", "out of memory");
    master_write(db, (int)nb, per, &next);
    for (size_t b = 0; b < nb; b++)
        *since = encode(&bs[b], db, *since, per);
    return bs;
}

/* One stream of the master's messages: nb batches of per rows, with its hello and schema. */
typedef struct stream {
    verso_db *db;
    batch *bs;
    verso_buf hello, schema;
} stream;

static void stream_make(stream *st, const char *name, size_t nb, int per)
{
    char path[300];
    int64_t since = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    st->db = open_db(path);
    st->bs = make_batches(st->db, nb, per, &since);
    st->hello = (verso_buf)VERSO_BUF_INIT;
    st->schema = (verso_buf)VERSO_BUF_INIT;
    preamble(&st->hello, &st->schema, st->db, since);
}

int main(int argc, char **argv)
{
    const char *env = getenv("VERSO_BENCH_ROWS"), *renv = getenv("VERSO_BENCH_ROUNDS");
    size_t nb = argc > 1 ? strtoul(argv[1], NULL, 10) : env ? strtoul(env, NULL, 10) / 100 : 500;
    int rounds = argc > 2 ? atoi(argv[2]) : renv ? atoi(renv) : BENCH_DEFAULT_ROUNDS;
    bench_series base = {0}, slave = {0}, ratio, lbase = {0}, lslave = {0}, lratio;
    const char *tmp = getenv("TMPDIR"), *part = argc > 3 ? argv[3] : "all";
    stream big, one;

    snprintf(dir, sizeof(dir), "%s/apply_bench_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        die("mkdtemp", dir);
    nb = nb ? nb : 1;
    rounds = rounds < 1 ? 1 : rounds > BENCH_MAX_ROUNDS ? BENCH_MAX_ROUNDS : rounds;
    stream_make(&big, "master.db", nb, 100);
    stream_make(&one, "master1.db", nb, 1);
    for (int r = 0; r < rounds; r++) {
        double b1, s1, b2, s2;
        b1 = s1 = b2 = s2 = 1;
        if (strcmp(part, "lag") != 0)
            pair(&b1, &s1, r, big.bs, nb, &big.hello, &big.schema);
        if (strcmp(part, "rows") != 0)
            pair(&b2, &s2, r + 1, one.bs, nb, &one.hello, &one.schema);
        bench_add(&base, b1);
        bench_add(&slave, s1);
        bench_add(&lbase, 1e6 / b2);
        bench_add(&lslave, 1e6 / s2);
        fprintf(stderr,
                "round %d: baseline %.0f rows/s, slave %.0f rows/s (%.3f); 1-row message: "
                "baseline %.1f us, slave %.1f us\n",
                r + 1, b1, s1, s1 / b1, 1e6 / b2, 1e6 / s2);
    }
    bench_ratio(&ratio, &slave, &base);
    bench_ratio(&lratio, &lslave, &lbase);
    bench_print_spread("apply_baseline_rows_per_s", &base, 0);
    bench_print_spread("apply_slave_rows_per_s", &slave, 0);
    bench_print_spread("apply_ratio", &ratio, 3);
    bench_print_spread("lag_1row_baseline_us", &lbase, 1);
    bench_print_spread("lag_1row_slave_us", &lslave, 1);
    bench_print_spread("lag_1row_ratio", &lratio, 3);
    verso_db_close(big.db);
    verso_db_close(one.db);
    return 0;
}
