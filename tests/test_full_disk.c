/*
 * A full disk, on the master and on a slave.
 *
 * In-process through the fault VFS's disk-full switch (runs everywhere):
 * the REST server answers writes 507 with a JSON error, reads 200, tells
 * its application once, and takes writes again as soon as space returns.
 *
 * On a real small tmpfs (mount(2) needs root or CAP_SYS_ADMIN; without it
 * these cases are skipped and say why), filled with a filler file: a
 * `verso serve` process answers 507 / 200, logs the condition once and its
 * end once; a live slave stops with a clear message, its cursor with its
 * data, and converges by itself once the filler is removed; opening a
 * database there cannot kill the process with SIGBUS (SQLite's WAL index
 * is mmapped; its pages are written, not only mapped, before use).
 */
#define _GNU_SOURCE /* unshare */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "support/faultvfs.h"
#include "support/rest_http.h"
#include "verso/advanced.h"
#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"

typedef struct item {
    int64_t id;
    int64_t version;
    char *name;
    int64_t qty;
} item;

static const verso_field item_fields[] = {
    VERSO_FIELD_ID_OF(item, id),
    VERSO_FIELD_VERSION_OF(item, version),
    VERSO_FIELD(item, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(item, qty, VERSO_INT64, 0),
};
static const verso_table_def item_def = VERSO_TABLE_DEF("items", item, item_fields);
static const verso_table_def *const tables[] = {&item_def};

static char g_dir[512];  /* this run's directory */
static char g_mnt[600];  /* the tmpfs, when mounted */
static bool g_mounted;   /* g_mnt is a tmpfs of ours */
static char g_why[1024]; /* why it is not */
static pid_t g_child;    /* a `verso serve` to kill if a test fails */

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&t, NULL);
}

static void join(char *out, size_t n, const char *dir, const char *name)
{
    int k = snprintf(out, n, "%s/%s", dir, name);

    assert_true(k > 0 && (size_t)k < n);
}

static verso_db *open_db(const char *path, bool readonly)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    char why[256] = "";

    o.tables = readonly ? NULL : tables;
    o.ntables = readonly ? 0 : 1;
    o.readonly = readonly;
    if (verso_db_open(&db, path, &o, why, sizeof(why)) < 0)
        fail_msg("open %s: %s", path, why);
    return db;
}

static void exec_ok(verso_db *db, const char *sql)
{
    if (verso_db_exec(db, sql) < 0)
        fail_msg("%s: %s", sql, verso_db_errmsg(db));
}

static int64_t count_rows(verso_db *db)
{
    int64_t n = -1;

    assert_int_equal(verso_query_count(&n, db, "items", NULL, 0), 0);
    return n;
}

/* One request; the status, and the body in *body when body is not NULL (free()). */
static long request(const char *base, const char *method, const char *path, const char *json,
                    char **body)
{
    char url[256];
    rt_resp r = {0};
    long status;

    snprintf(url, sizeof(url), "%s%s", base, path);
    rt_request(&r, method, url, json, json ? strlen(json) : 0, NULL);
    status = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    rt_resp_free(&r);
    return status;
}

/* A 507 answer's body: {"error":{"code":"insufficient_storage","message":"the disk is full..."}}.
 */
static void check_507_body(const char *body)
{
    cJSON *doc = cJSON_Parse(body);
    cJSON *err = cJSON_GetObjectItem(doc, "error");
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(err, "code"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(err, "message"));

    assert_non_null(code);
    assert_string_equal(code, "insufficient_storage");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "disk is full"));
    assert_non_null(strstr(msg, "free"));
    assert_non_null(strstr(msg, "resume by themselves"));
    cJSON_Delete(doc);
}

static const char k_post[] = "{\"name\":\"posted\",\"qty\":1}";

/* ---- in-process, through the fault VFS ---- */

typedef struct disk_events {
    atomic_int full, back; /* written on the server's thread */
} disk_events;

static void on_disk(verso_rest *srv, bool full, void *arg)
{
    disk_events *e = arg;

    (void)srv;
    atomic_fetch_add(full ? &e->full : &e->back, 1);
}

static void test_shim_master(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    disk_events ev;
    verso_rest *srv = NULL;
    char path[700], base[64], why[256] = "", *body = NULL;
    verso_db *db;

    (void)state;
    atomic_init(&ev.full, 0);
    atomic_init(&ev.back, 0);
    join(path, sizeof(path), g_dir, "shim.db");
    db = open_db(path, false);
    exec_ok(db, "INSERT INTO items(id, name, qty) VALUES (1, 'one', 1), (2, 'two', 2)");
    o.db_path = path;
    o.port = VERSO_REST_PORT_ANY;
    o.on_disk_full = on_disk;
    o.disk_full_arg = &ev;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), 0);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", verso_rest_port(srv));

    faultvfs_target(path);
    faultvfs_disk_full(true);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(request(base, "POST", "/items", k_post, &body), 507);
        check_507_body(body);
        free(body);
    }
    assert_int_equal(request(base, "PATCH", "/items/1", "{\"qty\":5}", NULL), 507);
    assert_int_equal(request(base, "DELETE", "/items/2", NULL, NULL), 507);
    assert_int_equal(request(base, "GET", "/items", NULL, NULL), 200);
    assert_int_equal(request(base, "GET", "/items/1", NULL, NULL), 200);
    assert_int_equal(atomic_load(&ev.full), 1); /* once, not per request */
    assert_int_equal(atomic_load(&ev.back), 0);

    faultvfs_disk_full(false);
    assert_int_equal(request(base, "POST", "/items", k_post, NULL), 201);
    assert_int_equal(request(base, "DELETE", "/items/2", NULL, NULL), 204);
    assert_int_equal(atomic_load(&ev.full), 1);
    assert_int_equal(atomic_load(&ev.back), 1);
    verso_rest_stop(srv);
    assert_int_equal(count_rows(db), 2); /* 1 and the posted one: nothing of the refused writes */
    verso_db_close(db);
}

/* An ORM write on a full disk is VERSO_EFULL, with its own message. */
static void test_shim_orm(void **state)
{
    char path[700];
    verso_db *db;
    int64_t id = 0, v = 0;
    const char *cols[] = {"name"};
    verso_value vals[] = {VERSO_VALUE_TEXT("x")};

    (void)state;
    join(path, sizeof(path), g_dir, "orm.db");
    db = open_db(path, false);
    faultvfs_target(path);
    faultvfs_disk_full(true);
    assert_int_equal(verso_row_insert(&id, &v, db, "items", cols, vals, 1), VERSO_EFULL);
    assert_string_equal(verso_strerror(VERSO_EFULL), "disk is full");
    assert_string_equal(verso_errname(VERSO_EFULL), "EFULL");
    assert_int_equal(count_rows(db), 0);
    faultvfs_disk_full(false);
    assert_int_equal(verso_row_insert(&id, &v, db, "items", cols, vals, 1), 0);
    assert_int_equal(count_rows(db), 1);
    verso_db_close(db);
}

/* ---- a real full tmpfs ---- */

static void need_tmpfs(void)
{
    if (!g_mounted) {
        print_message("skipped: %s\n", g_why);
        skip();
    }
}

/* Fills the tmpfs up to its last byte with path. */
static void fill_disk(const char *path)
{
    static char chunk[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t sizes[] = {sizeof(chunk), 4096, 1};

    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        while (write(fd, chunk, sizes[i]) == (ssize_t)sizes[i])
            ;
    assert_int_equal(errno, ENOSPC);
    close(fd);
}

static void free_disk(const char *path)
{
    assert_int_equal(unlink(path), 0);
}

/* Makes a fresh database on the tmpfs with n rows; closed. */
static void make_db(const char *path, int n)
{
    verso_db *db;
    char sql[128];

    remove(path);
    db = open_db(path, false);
    for (int i = 1; i <= n; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO items(id, name, qty) VALUES (%d, 'r%d', %d)", i, i,
                 i);
        exec_ok(db, sql);
    }
    verso_db_close(db);
}

/* ---- `verso serve` on a full disk ---- */

static void system_cat(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    while (f && fgets(line, sizeof(line), f))
        print_message("  log: %s", line);
    if (f)
        fclose(f);
}

typedef struct serve_proc {
    pid_t pid;
    FILE *out;
    char log[700];
    char base[96];
} serve_proc;

static void serve_start(serve_proc *p, const char *db)
{
    const char *bin = getenv("VERSO_BIN");
    int fds[2];

    if (!bin)
        fail_msg("VERSO_BIN must name the built verso command");
    join(p->log, sizeof(p->log), g_dir, "serve.log");
    assert_int_equal(pipe(fds), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        int err = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fds[1], 1);
        dup2(err, 2);
        close(fds[0]);
        unsetenv("VERSO_CONFIG");
        execl(bin, bin, "serve", db, "--port", "0", (char *)NULL);
        _exit(127);
    }
    g_child = p->pid;
    close(fds[1]);
    p->out = fdopen(fds[0], "r");
    assert_non_null(fgets(p->base, sizeof(p->base), p->out));
    p->base[strcspn(p->base, "\n")] = 0;
    if (p->base[0] && p->base[strlen(p->base) - 1] == '/') /* "http://127.0.0.1:PORT/" */
        p->base[strlen(p->base) - 1] = 0;
}

static void serve_stop(serve_proc *p)
{
    int status = 0;

    kill(p->pid, SIGTERM);
    assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
    g_child = 0;
    fclose(p->out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Lines of the log holding needle. */
static int log_lines(const char *log, const char *needle)
{
    FILE *f = fopen(log, "r");
    char line[1024];
    int n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* POSTs rows of about 2 KiB until one is refused (the WAL can take a few
 * into space it already holds); then every write is refused. */
static void writes_refused(const serve_proc *p)
{
    char big[2300], *body = NULL;
    long st = 201;
    int i;

    memset(big, 0, sizeof(big));
    snprintf(big, sizeof(big), "{\"name\":\"%02000d\",\"qty\":1}", 7);
    for (i = 0; i < 400 && st == 201; i++)
        st = request(p->base, "POST", "/items", big, &body), free(st == 201 ? body : NULL);
    if (st != 507)
        fail_msg("write %d on a full disk: %ld, expected 507: %s", i, st, body ? body : "");
    print_message("the first write refused on a full disk: #%d\n", i);
    check_507_body(body);
    free(body);
    for (i = 0; i < 5; i++)
        assert_int_equal(request(p->base, "POST", "/items", big, NULL), 507);
    assert_int_equal(request(p->base, "PATCH", "/items/1", "{\"qty\":9}", NULL), 507);
}

static void test_serve_full_disk(void **state)
{
    char db[700], filler[700];
    serve_proc p;
    int64_t deadline;

    (void)state;
    need_tmpfs();
    join(db, sizeof(db), g_mnt, "serve.db");
    join(filler, sizeof(filler), g_mnt, "filler");
    make_db(db, 20);
    serve_start(&p, db);
    assert_int_equal(request(p.base, "POST", "/items", k_post, NULL), 201);
    fill_disk(filler);
    writes_refused(&p);
    assert_int_equal(request(p.base, "GET", "/items?limit=100", NULL, NULL), 200);
    assert_int_equal(request(p.base, "GET", "/items/1", NULL, NULL), 200);
    assert_int_equal(request(p.base, "GET", "/_changes?since=0", NULL, NULL), 200);

    free_disk(filler);
    assert_int_equal(request(p.base, "POST", "/items", k_post, NULL), 201);
    assert_int_equal(request(p.base, "PATCH", "/items/1", "{\"qty\":9}", NULL), 200);
    /* The log lines come from the server thread before its answers. */
    deadline = now_ms() + 5000;
    while (log_lines(p.log, "writes work again") == 0 && now_ms() < deadline)
        nap_ms(10);
    assert_int_equal(log_lines(p.log, "is full"), 1);
    assert_int_equal(log_lines(p.log, "writes work again"), 1);
    serve_stop(&p);
    if (getenv("FULL_DISK_SHOW_LOG"))
        system_cat(p.log);
}

/* ---- no SIGBUS: a database opened on a full tmpfs ---- */

/* In a child: opens db (its WAL index must be created) and reads. Exit 0
 * when that worked, 1 on a clean error. */
static int open_on_full(const char *db)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *h = NULL;
    int64_t n = -1;
    int rc;

    o.tables = tables;
    o.ntables = 1;
    o.must_exist = true;
    rc = verso_db_open(&h, db, &o, NULL, 0);
    if (rc == 0)
        rc = verso_query_count(&n, h, "items", NULL, 0);
    verso_db_close(h);
    if (rc < 0)
        fprintf(stderr, "open on a full tmpfs: %s\n", verso_errname(rc));
    if (rc < 0 && rc != VERSO_EFULL && rc != VERSO_EIO && rc != VERSO_EDB)
        return 2;
    return rc < 0 ? 1 : 0;
}

static void test_no_sigbus(void **state)
{
    char db[700], filler[700], shm[720];
    int status = 0;
    pid_t pid;

    (void)state;
    need_tmpfs();
    join(db, sizeof(db), g_mnt, "bus.db");
    join(filler, sizeof(filler), g_mnt, "filler");
    snprintf(shm, sizeof(shm), "%s-shm", db);
    make_db(db, 5);
    remove(shm); /* no connection: the next one makes it anew on the full disk */
    fill_disk(filler);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(open_on_full(db));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    free_disk(filler);
    if (WIFSIGNALED(status))
        fail_msg("opening a database on a full tmpfs killed the process: signal %d",
                 WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_true(WEXITSTATUS(status) <= 1);
    print_message("open on a full tmpfs: %s\n",
                  WEXITSTATUS(status) == 0 ? "worked" : "a clean error");
}

/* ---- a live slave on a full disk ---- */

typedef struct master {
    char path[700];
    verso_db *db;
    verso_sync_master *sm;
    verso_rest *srv;
    char url[96];
} master;

static void master_start(master *m, const char *name)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    join(m->path, sizeof(m->path), g_dir, name);
    m->db = open_db(m->path, false);
    assert_int_equal(verso_sync_master_new(&m->sm, m->path, NULL, why, sizeof(why)), 0);
    assert_int_equal(verso_sync_master_watch(m->sm, m->db), 0);
    o.port = VERSO_REST_PORT_ANY;
    o.db_path = m->path;
    assert_int_equal(verso_sync_master_mount(m->sm, &o), 0);
    assert_int_equal(verso_rest_start(&m->srv, NULL, &o, why, sizeof(why)), 0);
    snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", verso_rest_port(m->srv));
}

static void master_stop(master *m)
{
    verso_rest_stop(m->srv);
    verso_sync_master_unwatch(m->sm, m->db);
    verso_sync_master_close(m->sm);
    verso_db_close(m->db);
}

/* One master transaction of n rows of about 2 KiB; the head after it. */
static int64_t master_batch(master *m, int first, int n)
{
    char sql[2300];
    verso_info info;

    assert_int_equal(verso_db_begin(m->db), 0);
    for (int i = first; i < first + n; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO items(id, name, qty) VALUES (%d, '%02000d', %d)", i,
                 i, i);
        exec_ok(m->db, sql);
    }
    assert_int_equal(verso_db_commit(m->db), 0);
    assert_int_equal(verso_db_info(&info, m->db), 0);
    return info.head;
}

typedef struct slave_view {
    int64_t cursor;
    int64_t rows;
} slave_view;

/* The slave's file as another reader sees it: its stored cursor and rows. */
static slave_view slave_file(const char *path)
{
    verso_db *db = open_db(path, true);
    verso_cursor c;
    slave_view v;

    assert_int_equal(verso_db_cursor(&c, db), 0);
    v.cursor = c.version;
    v.rows = count_rows(db);
    verso_db_close(db);
    return v;
}

/* Waits (bounded) until the slave's last_error starts with prefix. */
static void wait_error(verso_slave *s, const char *prefix, verso_slave_state *st)
{
    int64_t deadline = now_ms() + 20000;

    do {
        assert_int_equal(verso_slave_state_get(st, s), 0);
        if (!strncmp(st->last_error, prefix, strlen(prefix)))
            return;
        nap_ms(10);
    } while (now_ms() < deadline);
    fail_msg("the slave never said \"%s...\"; last error: \"%s\"", prefix, st->last_error);
}

/* Waits until the slave made `more` more connection attempts: the time it took. */
static int64_t attempts_time(verso_slave *s, int64_t more)
{
    verso_slave_state st;
    int64_t t0 = now_ms(), a0, deadline = t0 + 20000;

    assert_int_equal(verso_slave_state_get(&st, s), 0);
    a0 = st.attempts;
    while (st.attempts < a0 + more && now_ms() < deadline) {
        nap_ms(5);
        assert_int_equal(verso_slave_state_get(&st, s), 0);
    }
    assert_true(st.attempts >= a0 + more);
    return now_ms() - t0;
}

static void test_slave_full_disk(void **state)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    char spath[700], filler[700], why[256] = "";
    verso_slave *s = NULL;
    verso_slave_state st;
    master m;
    int64_t head1, head2, took;
    slave_view v;

    (void)state;
    need_tmpfs();
    memset(&m, 0, sizeof(m));
    join(spath, sizeof(spath), g_mnt, "slave.db");
    join(filler, sizeof(filler), g_mnt, "filler");
    master_start(&m, "master.db");
    head1 = master_batch(&m, 1, 10);
    o.retry_min_ms = 50;
    o.retry_max_ms = 400;
    o.heartbeat_ms = 500;
    assert_int_equal(verso_slave_start(&s, spath, m.url, &o, why, sizeof(why)), 0);
    assert_int_equal(verso_slave_wait(s, head1, 20000), 0);

    fill_disk(filler);
    head2 = master_batch(&m, 11, 1500); /* about 3 MiB: more than the slave's WAL holds */
    wait_error(s, "disk full", &st);
    assert_non_null(strstr(st.last_error, "resumes by itself"));
    assert_int_equal(st.cursor, head1);
    v = slave_file(spath); /* the stored cursor goes with the data */
    assert_int_equal(v.cursor, head1);
    assert_int_equal(v.rows, 10);
    /* No reconnect storm: once the backoff reached its cap (400 ms, less a
     * quarter of jitter), three more attempts take at least 900 ms. */
    attempts_time(s, 4);
    took = attempts_time(s, 3);
    print_message("3 attempts on a full disk took %lld ms\n", (long long)took);
    assert_true(took >= 3 * 300 - 50);

    free_disk(filler);
    assert_int_equal(verso_slave_wait(s, head2, 20000), 0);
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_string_equal(st.last_error, ""); /* the condition is over */
    verso_slave_stop(s);
    v = slave_file(spath);
    assert_int_equal(v.cursor, head2);
    assert_int_equal(v.rows, 1510);
    master_stop(&m);
}

/* The same through the fault VFS (runs everywhere): a pull and a live slave. */
static void test_shim_slave(void **state)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    char spath[700], ppath[700], why[256] = "";
    verso_slave *s = NULL;
    verso_slave_state st;
    verso_db *pdb;
    master m;
    int64_t head1, head2;
    slave_view v;

    (void)state;
    memset(&m, 0, sizeof(m));
    join(spath, sizeof(spath), g_dir, "shim-slave.db");
    join(ppath, sizeof(ppath), g_dir, "shim-pulled.db");
    master_start(&m, "shim-master.db");
    head1 = master_batch(&m, 1, 10);
    pdb = open_db(ppath, false);
    c.tables = (const char *const[]){"items"};
    c.ntables = 1;
    assert_int_equal(verso_sync_pull(NULL, pdb, m.url, &c, why, sizeof(why)), 0);
    o.retry_min_ms = 50;
    o.retry_max_ms = 400;
    assert_int_equal(verso_slave_start(&s, spath, m.url, &o, why, sizeof(why)), 0);
    assert_int_equal(verso_slave_wait(s, head1, 20000), 0);

    faultvfs_target(spath);
    faultvfs_disk_full(true);
    head2 = master_batch(&m, 11, 20);
    wait_error(s, "disk full", &st);
    assert_int_equal(st.cursor, head1);
    faultvfs_target(ppath);
    assert_int_equal(verso_sync_pull(NULL, pdb, m.url, &c, why, sizeof(why)), VERSO_EFULL);
    assert_non_null(strstr(why, "disk of the slave's database is full"));
    assert_non_null(strstr(why, "free space"));
    assert_int_equal(count_rows(pdb), 10);
    faultvfs_disk_full(false);
    assert_int_equal(verso_sync_pull(NULL, pdb, m.url, &c, why, sizeof(why)), 0);
    assert_int_equal(count_rows(pdb), 30);
    verso_db_close(pdb);

    assert_int_equal(verso_slave_wait(s, head2, 20000), 0);
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_string_equal(st.last_error, "");
    verso_slave_stop(s);
    v = slave_file(spath);
    assert_int_equal(v.cursor, head2);
    assert_int_equal(v.rows, 30);
    master_stop(&m);
}

/* ---- setup ---- */

static void try_mount(void)
{
    join(g_mnt, sizeof(g_mnt), g_dir, "mnt");
    mkdir(g_mnt, 0700);
    /* In a mount namespace of this process where allowed: the tmpfs goes
     * away with it, even when a failed test never reaches its teardown. */
    if (unshare(CLONE_NEWNS) == 0)
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (mount("tmpfs", g_mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0700") == 0) {
        g_mounted = true;
        return;
    }
    snprintf(g_why, sizeof(g_why),
             "cannot mount a small tmpfs at %s (%s): the real full-disk cases need root or "
             "CAP_SYS_ADMIN",
             g_mnt, strerror(errno));
}

static int setup(void **state)
{
    const char *tmp = getenv("VERSO_TEST_TMP");

    (void)state;
    snprintf(g_dir, sizeof(g_dir), "%s/full_disk.%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    mkdir(g_dir, 0700);
    try_mount();
    return faultvfs_install() == SQLITE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[700];

    (void)state;
    if (g_child > 0)
        kill(g_child, SIGKILL);
    if (g_mounted && umount2(g_mnt, MNT_DETACH) < 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shim_orm),        cmocka_unit_test(test_shim_master),
        cmocka_unit_test(test_serve_full_disk), cmocka_unit_test(test_no_sigbus),
        cmocka_unit_test(test_slave_full_disk), cmocka_unit_test(test_shim_slave),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
