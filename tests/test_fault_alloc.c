/*
 * Allocation failure (issue 9), in the manner of SQLite's malloc tests: each
 * operation runs with its Nth allocation failing (verso's, cJSON's and
 * SQLite's, counted by tests/support/faultalloc.c), for N = 1, 2, ... until
 * it succeeds, in one-shot and persistent mode. Every failure must give a
 * clean error (VERSO_ENOMEM or the operation's own error wrapping it; a
 * server answers a JSON 503), leak nothing (LeakSanitizer, and the
 * injector's count of live blocks), and leave the database as before or as
 * after (a dump of every table, integrity_check) with no version reused.
 *
 * Operations: open (new file; existing file with a migration), writes in a
 * transaction, a feed read to JSON, a fixture load, a batch through the
 * slave's applier (sync/apply.c), one request of each REST route (server in
 * this process; a 503 must be JSON saying the server is out of memory), a
 * pull from a master in this process (rows; snapshot bootstrap), and a live
 * slave receiving batches (it must get each one by itself). Every N is
 * tried up to 400; the longest loops then take every 4th or 5th N (time).
 * FA_DEBUG=1 prints each run and writes a mismatching dump to /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/faultalloc.h"
#include "support/internal.h"
#include "support/orm_support.h"
#include "support/rest_http.h"
#include "verso/advanced.h"
#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"

#define CAP 20000 /* no operation here needs more allocations than this */

typedef struct fa_item {
    int64_t id;
    int64_t version;
    char *name;
    int64_t qty;
    char *note;
} fa_item;

static const verso_field fa_fields_v1[] = {
    VERSO_FIELD_ID_OF(fa_item, id),
    VERSO_FIELD_VERSION_OF(fa_item, version),
    VERSO_FIELD(fa_item, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(fa_item, qty, VERSO_INT64, VERSO_FIELD_INDEX),
};
static const verso_field fa_fields_v2[] = {
    VERSO_FIELD_ID_OF(fa_item, id),
    VERSO_FIELD_VERSION_OF(fa_item, version),
    VERSO_FIELD(fa_item, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(fa_item, qty, VERSO_INT64, VERSO_FIELD_INDEX),
    VERSO_FIELD(fa_item, note, VERSO_TEXT, 0),
};
static const verso_table_def fa_def_v1 = VERSO_TABLE_DEF("items", fa_item, fa_fields_v1);
static const verso_table_def fa_def_v2 = VERSO_TABLE_DEF("items", fa_item, fa_fields_v2);
static const verso_table_def *const fa_tables_v1[] = {&fa_def_v1};
static const verso_table_def *const fa_tables_v2[] = {&fa_def_v2};

static char template_path[512]; /* items with rows, a tombstone */

/* ---- files and dumps (run disarmed) ---- */

static void copy_file(const char *src, const char *dst)
{
    char buf[65536];
    size_t n;
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void remove_db(const char *path)
{
    char p[600];
    remove(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    remove(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    remove(p);
    snprintf(p, sizeof(p), "%s-journal", path);
    remove(p);
}

static void append(char **s, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    *s = realloc(*s, *len + (size_t)n + 1);
    assert_non_null(*s);
    va_start(ap, fmt);
    vsnprintf(*s + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

static void dump_value(char **s, size_t *len, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        append(s, len, "%lld,", (long long)sqlite3_column_int64(st, i));
        break;
    case SQLITE_FLOAT:
        append(s, len, "%.17g,", sqlite3_column_double(st, i));
        break;
    case SQLITE_NULL:
        append(s, len, "NULL,");
        break;
    default:
        append(s, len, "'%.*s',", sqlite3_column_bytes(st, i), sqlite3_column_text(st, i));
    }
}

/* Whether a value varies between runs of the same operation: the time of a
 * tombstone, and (mask_identity) the identity made when a file is created. */
static bool masked(sqlite3_stmt *st, const char *table, int i, bool mask_identity)
{
    const char *col = sqlite3_column_name(st, i);
    if (strcmp(table, "_verso_tombstones") == 0 && strcmp(col, "at") == 0)
        return true;
    return mask_identity && strcmp(table, "_verso_meta") == 0 && strcmp(col, "value") == 0 &&
           strcmp((const char *)sqlite3_column_text(st, 0), "identity") == 0;
}

static void dump_table(char **s, size_t *len, sqlite3 *sq, const char *table, bool mask_identity)
{
    char sql[300];
    sqlite3_stmt *st;
    snprintf(sql, sizeof(sql), "SELECT * FROM \"%.200s\" ORDER BY 1", table);
    assert_int_equal(sqlite3_prepare_v2(sq, sql, -1, &st, NULL), SQLITE_OK);
    append(s, len, "[%s]\n", table);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            if (masked(st, table, i, mask_identity))
                append(s, len, "*,");
            else
                dump_value(s, len, st, i);
        }
        append(s, len, "\n");
    }
    sqlite3_finalize(st);
}

/* Schema and every row of every table of path ("" when the file is absent);
 * PRAGMA integrity_check must say ok. Free with free(). */
static char *dump_db(const char *path, bool mask_identity)
{
    char *s = NULL;
    size_t len = 0;
    sqlite3 *sq;
    sqlite3_stmt *st;
    append(&s, &len, "");
    if (access(path, F_OK) != 0)
        return s;
    assert_int_equal(sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(sq, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(sq,
                                        "SELECT type, name, tbl_name, sql FROM sqlite_master"
                                        " ORDER BY type, name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    char names[64][128];
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *sql = (const char *)sqlite3_column_text(st, 3);
        append(&s, &len, "%s %s %s\n", type, name, sql ? sql : "");
        if (strcmp(type, "table") == 0 && n < 64)
            snprintf(names[n++], sizeof(names[0]), "%s", name);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++)
        dump_table(&s, &len, sq, names[i], mask_identity);
    sqlite3_close(sq);
    return s;
}

/* The version counter of the file (0 when absent). */
static int64_t file_head(const char *path)
{
    sqlite3 *sq;
    sqlite3_stmt *st;
    int64_t v = 0;
    if (access(path, F_OK) != 0)
        return 0;
    assert_int_equal(sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(sq, "SELECT v FROM _verso_head", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(sq);
    return v;
}

static verso_db *open_db(const char *path, const verso_table_def *const *tables)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tables;
    o.ntables = tables ? 1 : 0;
    assert_int_equal(verso_db_open(&db, path, &o, NULL, 0), 0);
    return db;
}

/* A write on db after a failure: it works, and its version is new. */
static void write_after(verso_db *db, const char *path)
{
    int64_t head = file_head(path);
    fa_item it = {.name = "after", .qty = 1};
    assert_int_equal(verso_record_insert(db, &fa_def_v1, &it), 0);
    assert_true(it.version > head);
}

static void make_template(void)
{
    snprintf(template_path, sizeof(template_path), "%s", orm_tmp_path("fa_template"));
    verso_db *db = open_db(template_path, fa_tables_v1);
    for (int i = 1; i <= 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "item%d", i);
        fa_item it = {.name = name, .qty = i * 10};
        assert_int_equal(verso_record_insert(db, &fa_def_v1, &it), 0);
    }
    assert_int_equal(verso_record_delete(db, &fa_def_v1, 6), 0);
    verso_db_close(db);
}

/* ---- the loop ---- */

typedef struct fa_ctx {
    char path[512];
    verso_db *db;
    void *state; /* per operation */
    int64_t head_before;
} fa_ctx;

typedef struct fa_op {
    const char *name;
    void (*prepare)(fa_ctx *c);                     /* disarmed: the state before */
    int (*run)(fa_ctx *c);                          /* armed */
    void (*finish)(fa_ctx *c, int rc, bool failed); /* disarmed: checks, closes */
    const int *errors;                              /* allowed failure codes, 0-terminated */
    bool mask_identity;
    bool meta_ok;          /* a file holding only verso's metadata is acceptable too */
    bool exact_blocks;     /* the live block count is back where it was after finish */
    int stride;            /* past N = 400, only every stride-th N (time; 0: every N) */
    const char *alt_after; /* another acceptable state after (NULL: none) */
} fa_op;

static const int only_enomem[] = {VERSO_ENOMEM, 0};

static bool allowed(const fa_op *op, int rc)
{
    for (const int *e = op->errors ? op->errors : only_enomem; *e; e++)
        if (rc == *e)
            return true;
    return false;
}

static void record_dump(char ***dumps, size_t *n, char *d)
{
    *dumps = realloc(*dumps, (*n + 1) * sizeof(char *));
    assert_non_null(*dumps);
    (*dumps)[(*n)++] = d;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *last_after; /* the state after the last loop's success */

/* Runs op for N = 1, 2, ... until no allocation fails; returns how many
 * allocations the operation made then. */
static long fa_loop(const fa_op *op, faultalloc_mode mode)
{
    char **dumps = NULL, *before = NULL, *after = NULL;
    size_t ndumps = 0;
    long n, total = 0, runs = 0;
    double t0 = now_s();
    for (n = 1;; n += n >= 400 && op->stride > 1 ? op->stride : 1) {
        fa_ctx c = {0};
        runs++;
        snprintf(c.path, sizeof(c.path), "%s", orm_tmp_path(op->name));
        long blocks = faultalloc_outstanding();
        op->prepare(&c);
        if (!before)
            before = dump_db(c.path, op->mask_identity);
        c.head_before = file_head(c.path);
        faultalloc_arm(n, mode);
        int rc = op->run(&c);
        long nfail = faultalloc_disarm();
        if (nfail > 0 && rc != 0 && !allowed(op, rc))
            fail_msg("%s: N=%ld: rc %s (%d)", op->name, n, verso_errname(rc), rc);
        char *d = dump_db(c.path, op->mask_identity);
        op->finish(&c, rc, nfail > 0);
        if (getenv("FA_DEBUG"))
            fprintf(stderr, "%s N=%ld rc=%d failures=%ld count=%ld\n", op->name, n, rc, nfail,
                    faultalloc_count());
        if (op->exact_blocks && faultalloc_outstanding() != blocks)
            fail_msg("%s: N=%ld: %ld blocks leaked", op->name, n,
                     faultalloc_outstanding() - blocks);
        remove_db(c.path);
        if (nfail == 0) {
            total = faultalloc_count();
            if (rc != 0)
                fail_msg("%s: N=%ld: no failure but rc %d", op->name, n, rc);
            after = d;
            break;
        }
        record_dump(&dumps, &ndumps, d);
        if (n >= CAP)
            fail_msg("%s: still failing at N=%ld", op->name, n);
    }
    for (size_t i = 0; i < ndumps; i++) {
        bool meta_only = op->meta_ok && !strstr(dumps[i], "table items ");
        meta_only = meta_only || (op->alt_after && strcmp(dumps[i], op->alt_after) == 0);
        if (strcmp(dumps[i], before) != 0 && strcmp(dumps[i], after) != 0 && !meta_only &&
            getenv("FA_DEBUG")) {
            FILE *f1 = fopen("/tmp/fa_got.txt", "w"), *f2 = fopen("/tmp/fa_after.txt", "w");
            fputs(dumps[i], f1);
            fputs(after, f2);
            fclose(f1);
            fclose(f2);
        }
        if (strcmp(dumps[i], before) != 0 && strcmp(dumps[i], after) != 0 && !meta_only)
            fail_msg("%s: N=%zu: the database is neither as before nor as after:\n%s\n--- before:\n"
                     "%s\n--- after:\n%s",
                     op->name, i + 1, dumps[i], before, after);
        free(dumps[i]);
    }
    free(dumps);
    free(before);
    free(last_after);
    last_after = after;
    print_message("%-16s %-10s %5ld allocations, %5ld runs, %5.1f s\n", op->name,
                  mode == FAULTALLOC_ONESHOT ? "one-shot" : "persistent", total, runs,
                  now_s() - t0);
    return total;
}

static void fa_both(const fa_op *op)
{
    assert_int_equal(fa_loop(op, FAULTALLOC_ONESHOT), fa_loop(op, FAULTALLOC_PERSIST));
}

/* ---- open and migrate ---- */

static void prep_nothing(fa_ctx *c)
{
    remove_db(c->path);
}

static void prep_copy(fa_ctx *c)
{
    remove_db(c->path);
    copy_file(template_path, c->path);
}

static int run_open(fa_ctx *c, const verso_table_def *const *tables)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    char why[256] = "";
    o.tables = tables;
    o.ntables = 1;
    int rc = verso_db_open(&c->db, c->path, &o, why, sizeof(why));
    if (rc < 0 && getenv("FA_DEBUG"))
        fprintf(stderr, "open: %s\n", why);
    return rc;
}

static int run_open_v1(fa_ctx *c)
{
    return run_open(c, fa_tables_v1);
}

static int run_open_v2(fa_ctx *c)
{
    return run_open(c, fa_tables_v2);
}

static void finish_open(fa_ctx *c, int rc, bool failed)
{
    (void)failed;
    assert_true(rc == 0 ? c->db != NULL : c->db == NULL);
    verso_db_close(c->db);
    c->db = NULL;
}

static const int open_errors[] = {VERSO_ENOMEM, 0};

static void test_open_new(void **state)
{
    (void)state;
    const fa_op op = {.name = "open_new",
                      .prepare = prep_nothing,
                      .run = run_open_v1,
                      .finish = finish_open,
                      .errors = open_errors,
                      .mask_identity = true,
                      .meta_ok = true,
                      .exact_blocks = true,
                      .stride = 5};
    fa_both(&op);
}

static void test_open_migrate(void **state)
{
    (void)state;
    const fa_op op = {.name = "open_migrate",
                      .prepare = prep_copy,
                      .run = run_open_v2,
                      .finish = finish_open,
                      .errors = open_errors,
                      .exact_blocks = true,
                      .stride = 5};
    fa_both(&op);
}

/* ---- writes in a transaction ---- */

static void prep_open(fa_ctx *c)
{
    prep_copy(c);
    c->db = open_db(c->path, fa_tables_v1);
}

static int txn_body(verso_db *db)
{
    fa_item it = {.name = "new", .qty = 7};
    int rc = verso_record_insert(db, &fa_def_v1, &it);
    if (rc == 0) {
        it.id = 2;
        it.name = "second, renamed";
        it.qty = 22;
        rc = verso_record_update(db, &fa_def_v1, &it, 0);
    }
    if (rc == 0)
        rc = verso_record_delete(db, &fa_def_v1, 3);
    return rc;
}

static int run_txn(fa_ctx *c)
{
    int rc = verso_db_begin(c->db);
    if (rc < 0)
        return rc;
    if ((rc = txn_body(c->db)) == 0)
        return verso_db_commit(c->db);
    verso_db_rollback(c->db);
    return rc;
}

static void finish_write(fa_ctx *c, int rc, bool failed)
{
    (void)rc;
    if (failed)
        write_after(c->db, c->path);
    verso_db_close(c->db);
    c->db = NULL;
}

static void test_txn(void **state)
{
    (void)state;
    const fa_op op = {.name = "txn",
                      .prepare = prep_open,
                      .run = run_txn,
                      .finish = finish_write,
                      .exact_blocks = true};
    fa_both(&op);
}

/* ---- a feed read to JSON ---- */

static int feed_json(verso_buf *b, verso_db *db)
{
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f = NULL;
    const verso_feed_entry *e;
    int rc = verso_feed_open(&f, db, &o);
    while (rc == 0 && (rc = verso_feed_next(&e, f)) > 0)
        rc = verso_json_feed_entry(b, e);
    verso_feed_close(f);
    return rc;
}

static char *feed_expected;

static int run_feed(fa_ctx *c)
{
    verso_buf b = VERSO_BUF_INIT;
    int rc = feed_json(&b, c->db);
    if (rc == 0)
        assert_string_equal(b.data, feed_expected);
    verso_buf_free(&b);
    return rc;
}

static void finish_close(fa_ctx *c, int rc, bool failed)
{
    (void)rc;
    (void)failed;
    verso_db_close(c->db);
    c->db = NULL;
}

static void test_feed(void **state)
{
    (void)state;
    verso_db *db = open_db(template_path, fa_tables_v1);
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(feed_json(&b, db), 0);
    assert_true(b.len > 100);
    feed_expected = verso_buf_detach(&b);
    verso_db_close(db);
    const fa_op op = {.name = "feed_json",
                      .prepare = prep_open,
                      .run = run_feed,
                      .finish = finish_close,
                      .exact_blocks = true};
    fa_both(&op);
    verso_free(feed_expected);
}

/* ---- a fixture load ---- */

static const char fixture[] =
    "{\"verso\":1,\"tables\":{\"items\":[{\"id\":1,\"name\":\"one again\",\"qty\":11},"
    "{\"name\":\"brand new\",\"qty\":99},{\"id\":40,\"name\":\"forty\",\"qty\":40}]}}";

static int run_fixture(fa_ctx *c)
{
    return verso_fixture_load(c->db, fixture, strlen(fixture));
}

static void test_fixture(void **state)
{
    (void)state;
    const fa_op op = {.name = "fixture_load",
                      .prepare = prep_open,
                      .run = run_fixture,
                      .finish = finish_write,
                      .exact_blocks = true};
    fa_both(&op);
}

/* ---- a batch applied on a slave (sync/apply.c) ---- */

static char *apply_schema, *apply_entries, master_identity[37];
static int64_t master_head;

static void on_apply(const verso_sync_change *changes, size_t n, int64_t cursor, bool reset,
                     void *arg)
{
    (void)changes;
    (void)cursor;
    (void)reset;
    *(size_t *)arg += n;
}

static void make_apply_input(void)
{
    verso_db *db = open_db(template_path, fa_tables_v1);
    verso_buf b = VERSO_BUF_INIT;
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f = NULL;
    const verso_feed_entry *e;
    int rc;
    assert_int_equal(verso__sync_schema_json(&b, db, NULL, 0), 0);
    apply_schema = verso_buf_detach(&b);
    assert_int_equal(verso_feed_open(&f, db, &o), 0);
    verso_buf_puts(&b, "[");
    while ((rc = verso_feed_next(&e, f)) > 0) {
        if (b.len > 1)
            verso_buf_puts(&b, ",");
        assert_int_equal(verso_json_feed_entry(&b, e), 0);
    }
    assert_int_equal(rc, 0);
    verso_buf_puts(&b, "]");
    master_head = verso_feed_head(f);
    verso_feed_close(f);
    apply_entries = verso_buf_detach(&b);
    snprintf(master_identity, sizeof(master_identity), "%s", verso_db_identity(db));
    verso_db_close(db);
}

static void prep_slave(fa_ctx *c)
{
    remove_db(c->path);
    c->db = open_db(c->path, NULL);
}

static int apply_schema_to(verso__sync_applier *a)
{
    verso__sync_schema schema = {0};
    verso_json *doc = NULL;
    int rc = verso_json_parse(&doc, apply_schema, strlen(apply_schema), 0, NULL, 0);
    if (rc == 0 && (rc = verso__sync_schema_parse(&schema, verso_json_root(doc), NULL, 0)) == 0)
        rc = verso__sync_applier_set_schema(a, &schema);
    verso__sync_schema_free(&schema);
    verso_json_free(doc);
    return rc;
}

static int apply_batch(verso__sync_applier *a)
{
    verso_json *doc = NULL;
    int rc = verso_json_parse(&doc, apply_entries, strlen(apply_entries), 0, NULL, 0);
    if (rc < 0)
        return rc;
    if ((rc = verso__sync_applier_entries(a, doc, verso_json_root(doc), false, 0, master_head)) ==
        0)
        rc = verso__sync_applier_commit(a, master_identity, master_head);
    return rc;
}

static int run_apply(fa_ctx *c)
{
    verso_sync_client o = VERSO_SYNC_CLIENT_INIT;
    verso__sync_applier *a = NULL;
    size_t seen = 0;
    o.on_apply = on_apply;
    o.apply_arg = &seen;
    int rc = verso__sync_applier_new(&a, c->db, &o);
    if (rc == 0 && (rc = apply_schema_to(a)) == 0)
        rc = apply_batch(a);
    if (rc < 0 && a)
        verso__sync_applier_abort(a);
    verso__sync_applier_free(a);
    if (rc == 0 && seen != 5) /* the tombstone of a row it never had is not reported */
        fail_msg("apply: rc 0 but %zu changes reported (count %ld)", seen, faultalloc_count());
    return rc;
}

static void finish_slave(fa_ctx *c, int rc, bool failed)
{
    (void)rc;
    (void)failed;
    verso_db_close(c->db);
    c->db = NULL;
}

static const int apply_errors[] = {VERSO_ENOMEM, 0};

static void test_apply(void **state)
{
    (void)state;
    make_apply_input();
    const fa_op op = {.name = "apply_batch",
                      .prepare = prep_slave,
                      .run = run_apply,
                      .finish = finish_slave,
                      .errors = apply_errors,
                      .mask_identity = true,
                      .exact_blocks = true,
                      .stride = 4};
    fa_both(&op);
    verso_free(apply_schema);
    verso_free(apply_entries);
}

/* ---- REST: one request of each route, the server in this process ---- */

typedef struct fa_rest {
    verso_rest *srv;
    const char *method, *path, *body;
} fa_rest;

static const fa_rest *rest_req; /* the request of the running loop */

static void prep_server(fa_ctx *c)
{
    static fa_rest r;
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";
    prep_open(c);
    r = *rest_req;
    o.port = VERSO_REST_PORT_ANY;
    assert_int_equal(verso_rest_start(&r.srv, c->db, &o, why, sizeof(why)), 0);
    c->state = &r;
}

/* Whether an answer is the out-of-memory 503: JSON naming the cause. */
static bool is_nomem_answer(const rt_resp *r)
{
    char ct[64];
    return r->status == 503 && rt_header(r, "content-type", ct, sizeof(ct)) &&
           strstr(ct, "application/json") && r->body[0] == '{' &&
           strstr(r->body, "\"unavailable\"") && strstr(r->body, "out of memory") &&
           strstr(r->body, "retry");
}

static int run_request(fa_ctx *c)
{
    fa_rest *r = c->state;
    char url[512];
    rt_resp resp;
    int rc = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", verso_rest_port(r->srv), r->path);
    rt_request(&resp, r->method, url, r->body, r->body ? strlen(r->body) : 0, NULL);
    if (is_nomem_answer(&resp)) {
        rc = VERSO_ENOMEM;
    } else if (resp.status < 200 || resp.status >= 300) {
        fprintf(stderr, "%s %s: %ld %s\n", r->method, r->path, resp.status,
                resp.body ? resp.body : "");
        rc = VERSO_EPROTO;
    }
    rt_resp_free(&resp);
    return rc;
}

static void finish_server(fa_ctx *c, int rc, bool failed)
{
    fa_rest *r = c->state;
    verso_rest_stop(r->srv);
    r->srv = NULL;
    finish_write(c, rc, failed);
}

static void rest_loop(const char *name, const char *method, const char *path, const char *body)
{
    const fa_rest r = {NULL, method, path, body};
    rest_req = &r;
    const fa_op op = {.name = name,
                      .prepare = prep_server,
                      .run = run_request,
                      .finish = finish_server,
                      .exact_blocks = true};
    fa_both(&op);
}

static void test_rest_reads(void **state)
{
    (void)state;
    rest_loop("GET list", "GET", "/items?qty=gte.20&order=qty.desc&limit=2", NULL);
    rest_loop("GET list select", "GET", "/items?name=like.item*&id=in.(1,3,4)&select=id,name",
              NULL);
    rest_loop("GET list after", "GET", "/items?limit=2&order=qty.desc&after=WzUwLDVd", NULL);
    rest_loop("GET row", "GET", "/items/2", NULL);
    rest_loop("GET _changes", "GET", "/_changes?since=0&limit=3&tables=items", NULL);
    rest_loop("GET _info", "GET", "/_info", NULL);
    rest_loop("GET _health", "GET", "/_health", NULL);
    rest_loop("GET _status", "GET", "/_status", NULL);
    rest_loop("GET _metrics", "GET", "/_metrics", NULL);
}

static void test_rest_writes(void **state)
{
    (void)state;
    rest_loop("POST row", "POST", "/items", "{\"name\":\"lamp\",\"qty\":4}");
    rest_loop("POST rows", "POST", "/items", "[{\"name\":\"bulb\",\"qty\":10},{\"name\":\"c\"}]");
    rest_loop("PATCH row", "PATCH", "/items/4", "{\"qty\":17}");
    rest_loop("PUT row", "PUT", "/items/4", "{\"name\":\"four\",\"qty\":0}");
    rest_loop("DELETE row", "DELETE", "/items/5", NULL);
    rest_loop("POST _batch", "POST", "/_batch",
              "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"desk\",\"qty\":1}},"
              "{\"op\":\"update\",\"table\":\"items\",\"id\":1,\"row\":{\"qty\":42}},"
              "{\"op\":\"delete\",\"table\":\"items\",\"id\":2}]");
}

/* ---- a pull from a master in this process ---- */

static struct {
    char path[512], url[128];
    verso_db *db;
    verso_sync_master *m;
    verso_rest *srv;
    const char *const *tables;
    size_t ntables;
} master;

static void master_start(void)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";
    snprintf(master.path, sizeof(master.path), "%s", orm_tmp_path("fa_master"));
    copy_file(template_path, master.path);
    master.db = open_db(master.path, fa_tables_v1);
    assert_int_equal(verso_sync_master_new(&master.m, master.path, NULL, why, sizeof(why)), 0);
    o.port = VERSO_REST_PORT_ANY;
    assert_int_equal(verso_sync_master_mount(master.m, &o), 0);
    assert_int_equal(verso_rest_start(&master.srv, master.db, &o, why, sizeof(why)), 0);
    snprintf(master.url, sizeof(master.url), "http://127.0.0.1:%d", verso_rest_port(master.srv));
}

static void master_stop(void)
{
    verso_rest_stop(master.srv);
    verso_sync_master_close(master.m);
    verso_db_close(master.db);
    remove_db(master.path);
}

static int run_pull(fa_ctx *c)
{
    verso_sync_client o = VERSO_SYNC_CLIENT_INIT;
    verso_pull_result res;
    char why[256] = "";
    o.tables = master.tables;
    o.ntables = master.ntables;
    int rc = verso_sync_pull(&res, c->db, master.url, &o, why, sizeof(why));
    if (rc < 0 && getenv("FA_DEBUG"))
        fprintf(stderr, "pull: %s: %s\n", verso_errname(rc), why);
    return rc;
}

/* The master's 503 reaches a pull as a protocol error (an unexpected answer). */
static const int pull_errors[] = {VERSO_ENOMEM, VERSO_EPROTO, 0};

static void test_pull(void **state)
{
    (void)state;
    static const char *const items[] = {"items"};
    master_start();
    master.tables = items;
    master.ntables = 1;
    const fa_op rows = {.name = "pull rows",
                        .prepare = prep_slave,
                        .run = run_pull,
                        .finish = finish_slave,
                        .errors = pull_errors,
                        .mask_identity = true,
                        .stride = 5};
    fa_loop(&rows, FAULTALLOC_ONESHOT);
    fa_loop(&rows, FAULTALLOC_PERSIST);
    master.tables = NULL;
    master.ntables = 0;
    /* When the snapshot cannot be had, the pull reads rows instead: the
     * same data, without the master's indexes and with horizon 0. */
    char *rows_after = strdup(last_after);
    const fa_op snap = {.alt_after = rows_after,
                        .name = "pull snapshot",
                        .prepare = prep_slave,
                        .run = run_pull,
                        .finish = finish_slave,
                        .errors = pull_errors,
                        .mask_identity = true,
                        .stride = 5};
    fa_loop(&snap, FAULTALLOC_ONESHOT);
    free(rows_after);
    master_stop();
}

/* ---- a live slave receiving batches ---- */

/* The rows of items (with versions) of the file at path. */
static char *dump_items(const char *path)
{
    char *s = NULL;
    size_t len = 0;
    sqlite3 *sq;
    append(&s, &len, "");
    assert_int_equal(sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    dump_table(&s, &len, sq, "items", false);
    sqlite3_close(sq);
    return s;
}

/* Writes on the master from another process (its allocations are not
 * counted); returns the master's new head. */
static int64_t master_write(void)
{
    char out[256] = "";
    assert_int_equal(orm_sqlite_shell(master.path,
                                      "UPDATE items SET qty = qty + 1 WHERE id = 1;"
                                      "SELECT v FROM _verso_head;",
                                      out, sizeof(out)),
                     0);
    return strtoll(out, NULL, 10);
}

static verso_slave *live_start(const char *path)
{
    static const char *const items[] = {"items"};
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256] = "";
    o.client.tables = items;
    o.client.ntables = 1;
    o.retry_min_ms = 1;
    o.retry_max_ms = 20;
    assert_int_equal(verso_slave_start(&s, path, master.url, &o, why, sizeof(why)), 0);
    return s;
}

/* One batch with the Nth allocation failing: the slave must get it anyway
 * (it retries by itself), with its file consistent. Returns the failures. */
static long live_round(verso_slave *s, const char *path, long n, faultalloc_mode mode)
{
    faultalloc_arm(n, mode);
    int64_t head = master_write();
    int rc = mode == FAULTALLOC_ONESHOT ? verso_slave_wait(s, head, 20000) : 0;
    /* persistent: until the Nth allocation failed, or the batch got through first */
    for (double end = now_s() + 5; mode == FAULTALLOC_PERSIST && faultalloc_count() < n &&
                                   verso_slave_wait(s, head, 1) != 0 && now_s() < end;)
        ;
    long nfail = faultalloc_disarm();
    if (rc == 0)
        rc = verso_slave_wait(s, head, 20000);
    if (rc != 0) {
        verso_slave_state st;
        verso_slave_state_get(&st, s);
        fail_msg("live slave: N=%ld: the batch to version %lld never arrived (%s): link %s,"
                 " cursor %lld, master head %lld, reconnects %lld, last error: %s",
                 n, (long long)head, verso_errname(rc), verso_slave_link_name(st.link),
                 (long long)st.cursor, (long long)st.master_head, (long long)st.reconnects,
                 st.last_error);
    }
    char *a = dump_items(master.path), *b = dump_items(path), *d = dump_db(path, false);
    if (strcmp(a, b) != 0) {
        verso_slave_state st;
        verso_slave_state_get(&st, s);
        fail_msg("live slave, N=%ld (%s): the slave's cursor %lld (master head %lld, head written "
                 "%lld, commits %lld, reconnects %lld, last error %s) but its rows differ:\n%s\n"
                 "master:\n%s",
                 n, mode == FAULTALLOC_ONESHOT ? "one-shot" : "persistent", (long long)st.cursor,
                 (long long)st.master_head, (long long)head, (long long)st.commits,
                 (long long)st.reconnects, st.last_error, b, a);
    }
    free(a);
    free(b);
    free(d);
    return nfail;
}

static void live_loop(faultalloc_mode mode)
{
    char path[512];
    snprintf(path, sizeof(path), "%s", orm_tmp_path("fa_live"));
    verso_slave *s = live_start(path);
    double t0 = now_s();
    long n, runs = 0;
    assert_int_equal(verso_slave_wait(s, file_head(master.path), 20000), 0);
    for (n = 1; live_round(s, path, n, mode) > 0; n += n < 100 ? 1 : 5) {
        runs++;
        if (n > CAP)
            fail_msg("live slave: still failing at N=%ld", n);
    }
    verso_slave_stop(s);
    remove_db(path);
    print_message("%-16s %-10s %5ld runs, %5.1f s\n", "live slave",
                  mode == FAULTALLOC_ONESHOT ? "one-shot" : "persistent", runs + 1, now_s() - t0);
}

static void test_live(void **state)
{
    (void)state;
    master_start();
    live_loop(FAULTALLOC_ONESHOT);
    live_loop(FAULTALLOC_PERSIST);
    master_stop();
}

/* ---- verso_config_allocator ---- */

static void *never_malloc(size_t n, void *user)
{
    (void)n;
    (void)user;
    return NULL;
}

static void *never_realloc(void *p, size_t n, void *user)
{
    (void)p;
    (void)n;
    (void)user;
    return NULL;
}

static void never_free(void *p, void *user)
{
    (void)p;
    (void)user;
}

static void test_config_allocator(void **state)
{
    (void)state;
    verso_allocator a = {never_malloc, never_realloc, never_free, NULL};
    /* too late: verso has allocated (the template was made) */
    assert_int_equal(verso_config_allocator(&a), VERSO_ESTATE);
    assert_int_equal(verso_config_allocator(NULL), VERSO_ESTATE);
    a.free_fn = NULL;
    assert_int_equal(verso_config_allocator(&a), VERSO_EINVAL);
    verso_buf b = VERSO_BUF_INIT; /* still the injector's */
    long before = faultalloc_outstanding();
    assert_int_equal(verso_buf_puts(&b, "x"), 0);
    assert_int_equal(faultalloc_outstanding(), before + 1);
    verso_buf_free(&b);
    assert_int_equal(faultalloc_outstanding(), before);
}

/* A live slave started and caught up (hello, schema, batch, ack) with the
 * Nth allocation failing: a clean error from the start, or a slave that
 * gets there by itself. */
static long live_start_round(long n)
{
    static const char *const items[] = {"items"};
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char path[512], why[256] = "";
    snprintf(path, sizeof(path), "%s", orm_tmp_path("fa_live_start"));
    o.client.tables = items;
    o.client.ntables = 1;
    o.retry_min_ms = 1;
    o.retry_max_ms = 20;
    faultalloc_arm(n, FAULTALLOC_ONESHOT);
    int rc = verso_slave_start(&s, path, master.url, &o, why, sizeof(why));
    if (rc == 0)
        rc = verso_slave_wait(s, master_head, 20000);
    long nfail = faultalloc_disarm();
    if (rc == VERSO_ENOMEM && !s) {
        remove_db(path);
        return nfail;
    }
    if (rc != 0)
        fail_msg("live start: N=%ld: %s %s", n, verso_errname(rc), why);
    char *a = dump_items(master.path), *b = dump_items(path);
    assert_string_equal(a, b);
    free(a);
    free(b);
    verso_slave_stop(s);
    remove_db(path);
    return nfail;
}

static void test_live_start(void **state)
{
    (void)state;
    double t0 = now_s();
    long n, runs = 1;
    master_start();
    master_head = file_head(master.path);
    for (n = 1; live_start_round(n) > 0; n += n < 100 ? 1 : 10)
        if (++runs > CAP)
            fail_msg("live start: still failing at N=%ld", n);
    master_stop();
    print_message("%-16s %-10s %5ld runs, %5.1f s\n", "live start", "one-shot", runs, now_s() - t0);
}

/* ---- starting and stopping a server (with a replication master mounted) ---- */

static int run_server_start(fa_ctx *c)
{
    static fa_rest r;
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_sync_master *m = NULL;
    char why[256] = "";
    o.port = VERSO_REST_PORT_ANY;
    o.tick_on_change = true;
    int rc = verso_sync_master_new(&m, c->path, NULL, why, sizeof(why));
    if (rc == 0 && (rc = verso_sync_master_mount(m, &o)) == 0)
        rc = verso_rest_start(&r.srv, c->db, &o, why, sizeof(why));
    if (rc < 0 && getenv("FA_DEBUG"))
        fprintf(stderr, "start: %s: %s\n", verso_errname(rc), why);
    verso_rest_stop(r.srv);
    r.srv = NULL;
    verso_sync_master_close(m);
    return rc;
}

static const int start_errors[] = {VERSO_ENOMEM, 0};

static void test_server_start(void **state)
{
    (void)state;
    const fa_op op = {.name = "server start",
                      .prepare = prep_open,
                      .run = run_server_start,
                      .finish = finish_close,
                      .errors = start_errors,
                      .exact_blocks = true,
                      .stride = 5};
    fa_both(&op);
}

int main(void)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "/dev/shm/verso_fault_alloc_%d", (int)getpid());
    if (mkdir(tmp, 0700) == 0) /* thousands of small files: spare the disk */
        setenv("VERSO_TEST_TMP", tmp, 1);
    if (faultalloc_install() != 0) {
        fprintf(stderr, "cannot install the allocators\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_new),
        cmocka_unit_test(test_open_migrate),
        cmocka_unit_test(test_txn),
        cmocka_unit_test(test_feed),
        cmocka_unit_test(test_fixture),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_rest_reads),
        cmocka_unit_test(test_rest_writes),
        cmocka_unit_test(test_pull),
        cmocka_unit_test(test_live),
        cmocka_unit_test(test_live_start),
        cmocka_unit_test(test_server_start),
        cmocka_unit_test(test_config_allocator),
    };
    make_template();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(last_after);
    remove_db(template_path);
    rmdir(tmp);
    return rc;
}
