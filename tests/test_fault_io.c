/*
 * I/O failures (tests/support/faultvfs.c): each operation is run with its
 * Nth read, write, sync, truncate or lock failing, for N = 1, 2, ... until
 * it runs through without meeting a fault. Every failure must be a clean
 * error; the file must then hold the state from before the operation or the
 * one after it, never a mix (checked through a fresh connection while the
 * handle is open, and again after closing it: integrity_check, schema,
 * rows, versions, deletion log, cursor); and once the fault is gone the
 * same handle (or server) must do the operation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "support/faultvfs.h"
#include "support/internal.h"
#include "support/rest_http.h"
#include "verso/advanced.h"
#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"

#define MAX_N 5000 /* no operation here needs more calls of one kind */

typedef struct item {
    int64_t id;
    int64_t version;
    char *name;
    int64_t qty;
    char *note;
} item;

static const verso_field item_fields_v1[] = {
    VERSO_FIELD_ID_OF(item, id),
    VERSO_FIELD_VERSION_OF(item, version),
    VERSO_FIELD(item, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(item, qty, VERSO_INT64, 0),
};
static const verso_field item_fields_v2[] = {
    VERSO_FIELD_ID_OF(item, id),
    VERSO_FIELD_VERSION_OF(item, version),
    VERSO_FIELD(item, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(item, qty, VERSO_INT64, VERSO_FIELD_INDEX),
    VERSO_FIELD(item, note, VERSO_TEXT, 0),
};
static const verso_table_def item_v1 = VERSO_TABLE_DEF("items", item, item_fields_v1);
static const verso_table_def item_v2 = VERSO_TABLE_DEF("items", item, item_fields_v2);
static const verso_table_def *const tables_v1[] = {&item_v1};
static const verso_table_def *const tables_v2[] = {&item_v2};

/* One operation's world. */
typedef struct world {
    char dir[512];
    char tmpl[600]; /* the state each run starts from ("" path: no file) */
    char path[600]; /* the file the operation works on; the faults aim at it */
    bool no_file;   /* the operation starts without a database */
    char *middle;   /* create: the empty verso database a failure may leave */
    verso_db *db;
    verso__sync_applier *ap;
    verso_rest *srv;
    char url[96];
    char mpath[600]; /* a master's file (never faulted) */
    verso_db *mdb;
    verso_rest *msrv;
    char murl[96];
    char *batch; /* the changes an apply applies */
} world;

typedef struct op {
    const char *name;
    void (*build)(world *w);   /* makes w->tmpl (and the master), once */
    void (*prepare)(world *w); /* opens what run needs on w->path, without faults */
    int (*run)(world *w);      /* 0 or a negative verso code */
    void (*finish)(world *w);  /* closes what prepare or run opened */
} op;

static world g_w;
static long g_runs;

/* ---- files ---- */

static void path_in(char *out, size_t n, const world *w, const char *name)
{
    int k = snprintf(out, n, "%s/%s", w->dir, name);

    assert_true(k > 0 && (size_t)k < n);
}

static void remove_db(const char *path)
{
    char side[700];

    remove(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    remove(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    remove(side);
    snprintf(side, sizeof(side), "%s-journal", path);
    remove(side);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;

    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static verso_db *open_db(const char *path, const verso_table_def *const *defs)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    char why[256] = "";

    o.tables = defs;
    o.ntables = defs ? 1 : 0;
    if (verso_db_open(&db, path, &o, why, sizeof(why)) < 0)
        fail_msg("open %s: %s", path, why);
    return db;
}

static void exec_ok(verso_db *db, const char *sql)
{
    if (verso_db_exec(db, sql) < 0)
        fail_msg("%s: %s", sql, verso_db_errmsg(db));
}

/* Rows 1..20, then some updates and deletes: tombstones and a head > 20. */
static void fill(verso_db *db, int from)
{
    char sql[256];

    for (int i = from; i < from + 20; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO items(id, name, qty) VALUES (%d, 'item %d', %d)", i,
                 i, i * 3);
        exec_ok(db, sql);
    }
    snprintf(sql, sizeof(sql), "UPDATE items SET qty = qty + 1 WHERE id %% 3 = 0 AND id >= %d",
             from);
    exec_ok(db, sql);
    snprintf(sql, sizeof(sql), "DELETE FROM items WHERE id %% 7 = 0 AND id >= %d", from);
    exec_ok(db, sql);
}

/* Later master changes: new rows, updates of old ones, deletes. */
static void churn(verso_db *db)
{
    exec_ok(db, "INSERT INTO items(id, name, qty) VALUES (31, 'a', 1), (32, 'b', 2), (33, 'c', 3)");
    exec_ok(db, "UPDATE items SET qty = qty * 2 WHERE id % 4 = 1");
    exec_ok(db, "DELETE FROM items WHERE id IN (2, 10, 32)");
    exec_ok(db, "UPDATE items SET name = 'renamed' WHERE id = 3");
}

/* ---- plain ORM operations ---- */

static void build_items(world *w)
{
    verso_db *db = open_db(w->tmpl, tables_v2);

    fill(db, 1);
    verso_db_close(db);
}

static void prepare_open(world *w)
{
    w->db = open_db(w->path, tables_v2);
}

static void finish_db(world *w)
{
    verso_db_close(w->db);
    w->db = NULL;
}

static void build_v1(world *w)
{
    verso_db *db = open_db(w->tmpl, tables_v1);

    fill(db, 1);
    verso_db_close(db);
}

static void prepare_nothing(world *w)
{
    (void)w;
}

static int run_open(world *w)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    char why[256] = "";

    o.tables = tables_v2;
    o.ntables = 1;
    verso_db_close(w->db);
    w->db = NULL;
    return verso_db_open(&w->db, w->path, &o, why, sizeof(why));
}

static void build_none(world *w)
{
    verso_db *db;

    w->no_file = true;
    db = open_db(w->tmpl, NULL);
    verso_db_close(db);
    w->middle = faultvfs_dump(w->tmpl);
}

static int run_txn(world *w)
{
    const char *cols[] = {"name", "qty"};
    verso_value vals[] = {VERSO_VALUE_TEXT("new"), VERSO_VALUE_INT(7)};
    int64_t id = 0, v = 0;
    int rc = verso_db_begin(w->db);

    if (rc == 0)
        rc = verso_row_insert(&id, &v, w->db, "items", cols, vals, 2);
    if (rc == 0)
        rc = verso_row_update(&v, w->db, "items", 2, cols + 1, vals + 1, 1, 0);
    if (rc == 0)
        rc = verso_row_delete(w->db, "items", 4, 0);
    if (rc == 0)
        rc = verso_db_commit(w->db);
    if (rc < 0 && verso_in_transaction(w->db))
        verso_db_rollback(w->db);
    return rc;
}

/* The transaction, then a checkpoint that truncates the WAL (as the last
 * close does, and a WAL past its size limit): syncs and truncates of both
 * files. SQLite's own call: verso has no checkpoint function of its own. */
static int run_txn_checkpoint(world *w)
{
    int rc = run_txn(w);

    if (rc == 0 && sqlite3_wal_checkpoint_v2(w->db->sq, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                             NULL) != SQLITE_OK)
        rc = VERSO_EIO;
    return rc;
}

static int run_feed(world *w)
{
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_entry *e = NULL;
    verso_feed *f = NULL;
    int n = 0, rc = verso_feed_open(&f, w->db, &o);

    while (rc == 0 && (rc = verso_feed_next(&e, f)) == 1) {
        n++;
        rc = 0;
    }
    verso_feed_close(f);
    return rc == 0 && n == 0 ? VERSO_EPROTO : rc; /* 17 rows and 2 tombstones */
}

static const char k_fixture[] = "{\"verso\":1,\"tables\":{\"items\":["
                                "{\"id\":2,\"name\":\"two\",\"qty\":22},"
                                "{\"id\":50,\"name\":\"fifty\",\"qty\":50,\"note\":\"n\"},"
                                "{\"name\":\"fresh\",\"qty\":1}]}}";

static int run_fixture(world *w)
{
    return verso_fixture_load(w->db, k_fixture, strlen(k_fixture));
}

/* ---- REST ---- */

static void start_server(verso_rest **srv, char *url, size_t n, const char *path)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    o.db_path = path;
    o.port = VERSO_REST_PORT_ANY;
    if (verso_rest_start(srv, NULL, &o, why, sizeof(why)) < 0)
        fail_msg("server on %s: %s", path, why);
    snprintf(url, n, "http://127.0.0.1:%d", verso_rest_port(*srv));
}

static void prepare_rest(world *w)
{
    start_server(&w->srv, w->url, sizeof(w->url), w->path);
}

static void finish_rest(world *w)
{
    verso_rest_stop(w->srv);
    w->srv = NULL;
}

/* 0 for a 2xx answer; a server error with a JSON error body is a clean
 * failure (VERSO_EIO); anything else is not (VERSO_EPROTO). */
static int http(world *w, const char *method, const char *path, const char *body)
{
    char url[256];
    rt_resp r = {0};
    cJSON *doc;
    int rc;

    snprintf(url, sizeof(url), "%s%s", w->url, path);
    if (rt_request(&r, method, url, body, body ? strlen(body) : 0, NULL) < 0)
        return VERSO_ENET;
    doc = cJSON_Parse(r.body ? r.body : "");
    if (r.status >= 200 && r.status < 300)
        rc = 0;
    else if ((r.status == 500 || r.status == 503 || r.status == 507) &&
             cJSON_GetObjectItem(doc, "error"))
        rc = VERSO_EIO;
    else {
        print_message("unexpected answer %ld: %s\n", r.status, r.body ? r.body : "");
        rc = VERSO_EPROTO;
    }
    cJSON_Delete(doc);
    rt_resp_free(&r);
    return rc;
}

static int run_rest_write(world *w)
{
    return http(w, "POST", "/items", "{\"name\":\"posted\",\"qty\":5}");
}

static int run_rest_update(world *w)
{
    return http(w, "PATCH", "/items/3", "{\"qty\":99}");
}

static int run_rest_delete(world *w)
{
    return http(w, "DELETE", "/items/5", NULL);
}

static int run_rest_batch(world *w)
{
    return http(w, "POST", "/_batch",
                "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"b\",\"qty\":1}},"
                "{\"op\":\"update\",\"table\":\"items\",\"id\":1,\"row\":{\"qty\":42}},"
                "{\"op\":\"delete\",\"table\":\"items\",\"id\":6}]");
}

static int run_rest_read(world *w)
{
    return http(w, "GET", "/items?limit=50", NULL);
}

/* ---- a slave: apply (sync/apply.c) and pull (sync/pull.c) ---- */

/* {"schema":[...],"entries":[...],"from":since,"to":V} of the master's changes since since. */
static char *batch_since(verso_db *m, int64_t since, int64_t *to)
{
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_entry *e = NULL;
    verso_feed *f = NULL;
    verso_buf b = VERSO_BUF_INIT;
    int rc, n = 0;

    o.since = since;
    assert_int_equal(verso_feed_open(&f, m, &o), 0);
    verso_buf_puts(&b, "{\"schema\":");
    assert_int_equal(verso__sync_schema_json(&b, m, NULL, 0), 0);
    verso_buf_puts(&b, ",\"entries\":[");
    while ((rc = verso_feed_next(&e, f)) == 1) {
        if (n++)
            verso_buf_puts(&b, ",");
        assert_int_equal(verso_json_feed_entry(&b, e), 0);
    }
    assert_int_equal(rc, 0);
    *to = verso_feed_head(f);
    verso_buf_printf(&b, "],\"from\":%lld,\"to\":%lld}", (long long)since, (long long)*to);
    verso_feed_close(f);
    return verso_buf_detach(&b);
}

static int apply_batch(verso__sync_applier *a, const char *master, const char *text)
{
    verso__sync_schema schema = {0};
    verso_json *doc = NULL;
    const cJSON *root;
    int64_t from = 0, to = 0;
    int rc = verso_json_parse(&doc, text, strlen(text), 0, NULL, 0);

    assert_int_equal(rc, 0);
    root = verso_json_root(doc);
    assert_int_equal(verso__sync_json_get_i64(&from, root, "from"), 0);
    assert_int_equal(verso__sync_json_get_i64(&to, root, "to"), 0);
    assert_int_equal(
        verso__sync_schema_parse(&schema, cJSON_GetObjectItem(root, "schema"), NULL, 0), 0);
    rc = verso__sync_applier_set_schema(a, &schema);
    verso__sync_schema_free(&schema);
    if (rc == 0)
        rc = verso__sync_applier_entries(a, doc, cJSON_GetObjectItem(root, "entries"), false, from,
                                         to);
    else
        verso_json_free(doc);
    if (rc == 0)
        rc = verso__sync_applier_commit(a, master, to);
    if (rc < 0)
        verso__sync_applier_abort(a);
    return rc;
}

static void open_master(world *w)
{
    path_in(w->mpath, sizeof(w->mpath), w, "master.db");
    remove_db(w->mpath);
    w->mdb = open_db(w->mpath, tables_v2);
    fill(w->mdb, 1);
}

static void build_apply(world *w)
{
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    verso__sync_applier *a = NULL;
    verso_db *s = open_db(w->tmpl, NULL);
    int64_t to = 0;
    char *first;

    open_master(w);
    first = batch_since(w->mdb, 0, &to);
    assert_int_equal(verso__sync_applier_new(&a, s, &c), 0);
    assert_int_equal(apply_batch(a, verso_db_identity(w->mdb), first), 0);
    verso__sync_applier_free(a);
    verso_db_close(s);
    free(first);
    churn(w->mdb);
    w->batch = batch_since(w->mdb, to, &to);
}

static void prepare_apply(world *w)
{
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;

    w->db = open_db(w->path, NULL);
    assert_int_equal(verso__sync_applier_new(&w->ap, w->db, &c), 0);
}

static int run_apply(world *w)
{
    return apply_batch(w->ap, verso_db_identity(w->mdb), w->batch);
}

static void finish_apply(world *w)
{
    verso__sync_applier_free(w->ap);
    w->ap = NULL;
    finish_db(w);
}

static int pull(verso_db *db, const char *url)
{
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    char why[256] = "";
    int rc;

    c.chunk = 7; /* several requests, each committed */
    rc = verso_sync_pull(NULL, db, url, &c, why, sizeof(why));
    if (rc < 0 && !why[0])
        fail_msg("pull failed (%s) without a reason", verso_errname(rc));
    return rc;
}

static void build_pull(world *w)
{
    verso_db *s = open_db(w->tmpl, NULL);

    open_master(w);
    start_server(&w->msrv, w->murl, sizeof(w->murl), w->mpath);
    assert_int_equal(pull(s, w->murl), 0);
    verso_db_close(s);
    churn(w->mdb);
}

static void prepare_slave(world *w)
{
    w->db = open_db(w->path, NULL);
}

static int run_pull(world *w)
{
    return pull(w->db, w->murl);
}

/* ---- the sweep ---- */

static const op k_ops[] = {
    {"create", build_none, prepare_nothing, run_open, finish_db},
    {"open and migrate", build_v1, prepare_nothing, run_open, finish_db},
    {"transaction", build_items, prepare_open, run_txn, finish_db},
    {"txn+checkpoint", build_items, prepare_open, run_txn_checkpoint, finish_db},
    {"feed read", build_items, prepare_open, run_feed, finish_db},
    {"fixture load", build_items, prepare_open, run_fixture, finish_db},
    {"REST create", build_items, prepare_rest, run_rest_write, finish_rest},
    {"REST update", build_items, prepare_rest, run_rest_update, finish_rest},
    {"REST delete", build_items, prepare_rest, run_rest_delete, finish_rest},
    {"REST batch", build_items, prepare_rest, run_rest_batch, finish_rest},
    {"REST read", build_items, prepare_rest, run_rest_read, finish_rest},
    {"apply", build_apply, prepare_apply, run_apply, finish_apply},
    {"pull", build_pull, prepare_slave, run_pull, finish_db},
};

/* The file at w->path as it is before the operation. */
static void reset(world *w)
{
    remove_db(w->path);
    if (!w->no_file)
        copy_file(w->tmpl, w->path);
}

static bool clean(int rc)
{
    return rc == VERSO_EIO || rc == VERSO_EFULL || rc == VERSO_EDB || rc == VERSO_EBUSY;
}

static bool same(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* A first open creates verso's metadata and identity in one transaction,
 * the declared tables in a second: a failure between the two leaves a
 * complete verso database without tables, which the next open finishes. */
static bool is_after(const world *w, const char *d, const char *after)
{
    return same(d, after) || (w->middle && same(d, w->middle));
}

/* "absent" and an empty file are the same state: no database yet. */
static bool is_before(const char *d, const char *before)
{
    return same(d, before) || (same(before, "absent") && same(d, "  'ok'\n"));
}

typedef struct sweep_at {
    const op *o;
    unsigned kind;
    bool persistent;
    long n;
} sweep_at;

static void fail_at(const sweep_at *at, const char *what, const char *dump)
{
    const char *keep = getenv("FAULT_IO_KEEP");
    FILE *f = keep ? fopen(keep, "w") : NULL;

    if (f) {
        fputs(dump ? dump : "", f);
        fclose(f);
    }
    fail_msg("%s, %s %s fault at call %ld: %s\n%s", at->o->name,
             at->persistent ? "persistent" : "one-shot", faultvfs_kind_name(at->kind), at->n, what,
             dump ? dump : "");
}

/* After a failed run: the file is before or after, and the same handle
 * (or server) now does the operation. */
static void check_failed(world *w, const sweep_at *at, int rc, const char *before,
                         const char *after)
{
    char *d = faultvfs_dump(w->path);

    if (!clean(rc))
        fail_at(at, verso_errname(rc), NULL);
    if (is_before(d, before)) {
        if ((rc = at->o->run(w)) < 0)
            fail_at(at, "the operation fails once the fault is gone", verso_errname(rc));
    } else if (!is_after(w, d, after))
        fail_at(at, "the file is neither before nor after", d);
    else if (!same(d, after) && (rc = at->o->run(w)) < 0)
        fail_at(at, "the operation fails once the fault is gone", verso_errname(rc));
    free(d);
}

/* One run with the nth call of kind failing. True when no fault was met. */
static bool run_once(world *w, const sweep_at *at, int code, const char *before, const char *after)
{
    bool met;
    char *d;
    int rc;

    reset(w);
    at->o->prepare(w);
    faultvfs_target(w->path);
    faultvfs_arm(at->kind, at->n, at->persistent, code);
    rc = at->o->run(w);
    met = faultvfs_failures() > 0;
    faultvfs_disarm();
    g_runs++;
    if (rc < 0)
        check_failed(w, at, rc, before, after);
    else if (!same(d = faultvfs_dump(w->path), after))
        fail_at(at, "succeeded but the file is not the state after", d);
    else
        free(d);
    at->o->finish(w);
    d = faultvfs_dump(w->path); /* reopened */
    if (!same(d, after) && !(rc < 0 && (is_before(d, before) || is_after(w, d, after))))
        fail_at(at, "after closing, the file is neither before nor after", d);
    free(d);
    if (!met && rc < 0)
        fail_at(at, "failed without a fault", verso_errname(rc));
    return !met;
}

static void sweep(world *w, const op *o, unsigned kind, bool persistent, int code)
{
    char *before, *after;
    sweep_at at = {.o = o, .kind = kind, .persistent = persistent};

    reset(w);
    before = faultvfs_dump(w->path);
    o->prepare(w);
    assert_int_equal(o->run(w), 0);
    o->finish(w);
    after = faultvfs_dump(w->path);
    for (at.n = 1; at.n < MAX_N; at.n++)
        if (run_once(w, &at, code, before, after))
            break;
    assert_true(at.n < MAX_N);
    print_message("  %-16s %-10s %-8s: %ld runs\n", o->name, persistent ? "persistent" : "one-shot",
                  faultvfs_kind_name(kind), at.n);
    free(before);
    free(after);
}

static const struct {
    unsigned kind;
    bool persistent;
    int code;
} k_faults[] = {
    {FAULTVFS_READ, false, SQLITE_IOERR_READ},  {FAULTVFS_WRITE, false, SQLITE_IOERR_WRITE},
    {FAULTVFS_SYNC, false, SQLITE_IOERR_FSYNC}, {FAULTVFS_TRUNCATE, false, SQLITE_IOERR_TRUNCATE},
    {FAULTVFS_LOCK, false, SQLITE_IOERR_LOCK},  {FAULTVFS_WRITE, true, SQLITE_FULL},
    {FAULTVFS_ANY, true, SQLITE_IOERR},
};

static void sweep_op(const op *o)
{
    world *w = &g_w;

    w->no_file = false;
    w->middle = NULL;
    path_in(w->tmpl, sizeof(w->tmpl), w, "template.db");
    path_in(w->path, sizeof(w->path), w, "work.db");
    remove_db(w->tmpl);
    o->build(w);
    for (size_t i = 0; i < sizeof(k_faults) / sizeof(k_faults[0]); i++)
        sweep(w, o, k_faults[i].kind, k_faults[i].persistent, k_faults[i].code);
    verso_rest_stop(w->msrv);
    w->msrv = NULL;
    verso_db_close(w->mdb);
    w->mdb = NULL;
    free(w->batch);
    w->batch = NULL;
    free(w->middle);
    w->middle = NULL;
}

#define OP_TEST(fn, i)                                                                             \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        sweep_op(&k_ops[i]);                                                                       \
    }

OP_TEST(test_create, 0)
OP_TEST(test_open_migrate, 1)
OP_TEST(test_transaction, 2)
OP_TEST(test_checkpoint, 3)
OP_TEST(test_feed_read, 4)
OP_TEST(test_fixture_load, 5)
OP_TEST(test_rest_create, 6)
OP_TEST(test_rest_update, 7)
OP_TEST(test_rest_delete, 8)
OP_TEST(test_rest_batch, 9)
OP_TEST(test_rest_read, 10)
OP_TEST(test_apply, 11)
OP_TEST(test_pull, 12)

/* The shim counts what it should: a write transaction meets writes and syncs. */
static void test_shim_counts(void **state)
{
    world *w = &g_w;
    verso_db *db;

    (void)state;
    path_in(w->path, sizeof(w->path), w, "counts.db");
    remove_db(w->path);
    db = open_db(w->path, tables_v2);
    faultvfs_target(w->path);
    faultvfs_arm(FAULTVFS_WRITE, 0, false, SQLITE_IOERR_WRITE);
    fill(db, 1);
    assert_true(faultvfs_calls() > 0);
    assert_int_equal(faultvfs_failures(), 0);
    faultvfs_disk_full(true);
    assert_int_equal(verso_db_exec(db, "INSERT INTO items(name) VALUES ('x')"), VERSO_EFULL);
    faultvfs_disk_full(false);
    exec_ok(db, "INSERT INTO items(name) VALUES ('x')");
    faultvfs_disarm();
    verso_db_close(db);
    remove_db(w->path);
}

static int setup(void **state)
{
    const char *tmp = getenv("VERSO_TEST_TMP");

    (void)state;
    snprintf(g_w.dir, sizeof(g_w.dir), "%s/fault_io.%ld", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    mkdir(g_w.dir, 0700);
    return faultvfs_install() == SQLITE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[700];

    (void)state;
    print_message("fault_io: %ld faulted runs\n", g_runs);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_w.dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shim_counts),  cmocka_unit_test(test_create),
        cmocka_unit_test(test_open_migrate), cmocka_unit_test(test_transaction),
        cmocka_unit_test(test_checkpoint),   cmocka_unit_test(test_feed_read),
        cmocka_unit_test(test_fixture_load), cmocka_unit_test(test_rest_create),
        cmocka_unit_test(test_rest_update),  cmocka_unit_test(test_rest_delete),
        cmocka_unit_test(test_rest_batch),   cmocka_unit_test(test_rest_read),
        cmocka_unit_test(test_apply),        cmocka_unit_test(test_pull),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
