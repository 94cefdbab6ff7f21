/*
 * sync_harness.c - the bodies of tests/sync_harness.h (see there).
 *
 * Linked into every test executable (through the support library), so it
 * uses only what every test links: cmocka, libcurl, SQLite and the library.
 */
#include "sync_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the test tables ---- */

static const verso_field h_item_fields[] = {
    VERSO_FIELD_ID_OF(h_item, id),
    VERSO_FIELD_VERSION_OF(h_item, version),
    VERSO_FIELD(h_item, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(h_item, price, VERSO_DOUBLE, 0),
    VERSO_FIELD_NULLABLE(h_item, qty, VERSO_INT64, 0, qty_null),
};
const verso_table_def h_items = VERSO_TABLE_DEF("items", h_item, h_item_fields);

static const verso_field h_account_fields[] = {
    VERSO_FIELD_ID_OF(h_account, id),
    VERSO_FIELD_VERSION_OF(h_account, version),
    VERSO_FIELD(h_account, balance, VERSO_INT64, VERSO_FIELD_NOTNULL),
};
const verso_table_def h_accounts = VERSO_TABLE_DEF("accounts", h_account, h_account_fields);

const verso_table_def *const h_tables[2] = {&h_items, &h_accounts};

void h_db_options(verso_db_options *o)
{
    verso_db_options d = VERSO_DB_OPTIONS_INIT;

    *o = d;
    o->tables = h_tables;
    o->ntables = 2;
}

verso_db *h_open(const char *path)
{
    char open_why[256] = "";
    verso_db_options o;
    verso_db *db = NULL;

    h_db_options(&o);
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) < 0)
        fail_msg("open %s: %s", path, open_why);
    return db;
}

/* ---- paths ---- */

char h_dir[512];

void h_init_dir(const char *test)
{
    const char *tmp = getenv("VERSO_TEST_TMP");

    snprintf(h_dir, sizeof(h_dir), "%s/%s.%ld", tmp ? tmp : "/tmp", test, (long)getpid());
    mkdir(h_dir, 0755);
}

void h_remove_dir(int failed)
{
    DIR *d = failed || !h_dir[0] ? NULL : opendir(h_dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char p[1024];
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof(p), "%s/%s", h_dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(h_dir);
}

const char *h_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", h_dir, name);
    return buf;
}

void h_remove_db(const char *path)
{
    char p[700];

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int64_t h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the master process ---- */

static volatile sig_atomic_t h_master_stop;

static void h_master_on_term(int sig)
{
    (void)sig;
    h_master_stop = 1;
}

int h_master_main(int argc, char **argv)
{
    verso_sync_master_options mo = VERSO_SYNC_MASTER_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_sync_master *m = NULL;
    verso_rest *srv = NULL;
    verso_db *db;
    char why[256] = "";
    int port = 0;

    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--chunk"))
            mo.chunk = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ring-segments"))
            mo.ring_segments = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--heartbeat"))
            mo.heartbeat_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--config"))
            ro.config_path = argv[i + 1];
    }
    pid_t parent = getppid();

    signal(SIGTERM, h_master_on_term);
    db = h_open(argv[2]);
    if (verso_sync_master_new(&m, argv[2], &mo, why, sizeof(why)) < 0) {
        fprintf(stderr, "master: %s\n", why);
        return 1;
    }
    verso_sync_master_mount(m, &ro);
    ro.port = port ? port : VERSO_REST_PORT_ANY;
    for (int tries = 0; verso_rest_start(&srv, db, &ro, why, sizeof(why)) < 0; tries++) {
        if (tries == 50) {
            fprintf(stderr, "master: %s\n", why);
            return 1;
        }
        h_sleep_ms(100); /* the port of a killed master may linger briefly */
    }
    printf("%d\n", verso_rest_port(srv));
    fflush(stdout);
    /* Bounded: stops on SIGTERM, when the test process is gone, or after 5 minutes. */
    for (int64_t t0 = h_now_ms();
         !h_master_stop && getppid() == parent && parent != 1 && h_now_ms() - t0 < 300000;)
        h_sleep_ms(20);
    verso_rest_stop(srv);
    verso_sync_master_close(m);
    verso_db_close(db);
    return 0;
}

void h_master_start(h_master *m, const char *db, const char *const *extra)
{
    char *args[16];
    int fds[2], n = 0;
    char line[32] = "";
    pid_t parent = getpid();
    FILE *f;

    args[n++] = "test";
    args[n++] = "--master";
    args[n++] = (char *)db;
    for (size_t i = 0; extra && extra[i] && n < 14; i++)
        args[n++] = (char *)extra[i];
    args[n] = NULL;
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    m->pid = fork();
    assert_true(m->pid >= 0);
    if (m->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan when a test fails, even a stopped one */
        if (getppid() != parent)          /* the test died before prctl */
            _exit(1);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    assert_non_null(f);
    if (!fgets(line, sizeof(line), f))
        fail_msg("the master process did not start");
    fclose(f);
    m->port = atoi(line);
    assert_true(m->port > 0);
    snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", m->port);
}

void h_master_start_port(h_master *m, const char *db, int port)
{
    char p[16];
    const char *extra[] = {"--port", p, NULL};

    snprintf(p, sizeof(p), "%d", port);
    h_master_start(m, db, extra);
}

void h_master_kill(h_master *m, int sig)
{
    int status;

    if (m->pid <= 0)
        return;
    kill(m->pid, sig);
    waitpid(m->pid, &status, 0);
    if (sig == SIGTERM)
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    m->pid = 0;
}

/* ---- workloads ---- */

uint64_t h_rng;

void h_seed(uint64_t s)
{
    h_rng = s * 6364136223846793005ull + 1442695040888963407ull;
}

uint32_t h_rand(void)
{
    h_rng = h_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(h_rng >> 33);
}

int64_t h_pick_id(sqlite3 *s, const char *table)
{
    char sql[160];
    sqlite3_stmt *st = NULL;
    int64_t id = 0, max = 0;

    /* the seeded generator picks, so a run is reproducible from its seed */
    snprintf(sql, sizeof(sql), "SELECT COALESCE(MAX(id), 0) FROM %s", table);
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        max = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    snprintf(sql, sizeof(sql), "SELECT id FROM %s WHERE id >= ? ORDER BY id LIMIT 1", table);
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (int64_t)(h_rand() % (uint32_t)(max + 1)));
        if (sqlite3_step(st) == SQLITE_ROW)
            id = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return id;
}

int h_orm_account_op(verso_db *db)
{
    h_account a = {0};
    int64_t id = h_pick_id(verso_db_sqlite(db), "accounts");
    uint32_t r = h_rand() % 3;

    if (r == 0 || id == 0) {
        a.balance = h_rand() % 1000;
        return verso_record_insert(db, &h_accounts, &a);
    }
    if (r == 1 || id <= 2) {
        int rc = verso_record_get(&a, db, &h_accounts, id);
        a.balance += 1;
        return rc < 0 ? rc : verso_record_update(db, &h_accounts, &a, 0);
    }
    return verso_record_delete(db, &h_accounts, id);
}

int h_orm_op(verso_db *db)
{
    h_item it = {0};
    uint32_t r = h_rand() % 12;
    int64_t id = h_pick_id(verso_db_sqlite(db), "items");
    char name[48];

    if (r >= 10)
        return h_orm_account_op(db);
    if (r < 5 || id == 0) {
        snprintf(name, sizeof(name), "item-%u", h_rand());
        it.name = name;
        it.price = (h_rand() % 10000) / 100.0;
        it.qty = h_rand() % 100;
        it.qty_null = h_rand() % 7 == 0;
        return verso_record_insert(db, &h_items, &it);
    }
    if (r < 8) {
        int rc = verso_record_get(&it, db, &h_items, id);
        if (rc < 0)
            return rc;
        it.qty = (int64_t)(h_rand() % 1000) - 500;
        it.qty_null = false;
        rc = verso_record_update(db, &h_items, &it, 0);
        verso_record_clear(&h_items, &it);
        return rc;
    }
    return verso_record_delete(db, &h_items, id);
}

void h_orm_workload(verso_db *db, int ntx, int maxrows)
{
    for (int t = 0; t < ntx; t++) {
        int n = 1 + (int)(h_rand() % (uint32_t)maxrows);
        assert_int_equal(verso_db_begin(db), 0);
        for (int i = 0; i < n; i++) {
            int rc = h_orm_op(db);
            if (rc < 0)
                fail_msg("orm op: %s %s", verso_strerror(rc), verso_db_errmsg(db));
        }
        assert_int_equal(verso_db_commit(db), 0);
    }
}

void h_sql_workload(const char *path, int ntx)
{
    sqlite3 *s = NULL;

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    for (int t = 0; t < ntx; t++) {
        char sql[512];
        int64_t id = h_pick_id(s, "items");
        snprintf(sql, sizeof(sql),
                 "BEGIN IMMEDIATE;"
                 "INSERT INTO items(name, price, qty) VALUES('sql-%u', %u.5, %u);"
                 "UPDATE items SET qty = COALESCE(qty, 0) + 1 WHERE id = %lld;"
                 "DELETE FROM items WHERE id = (SELECT MIN(id) FROM items WHERE id > %lld);"
                 "COMMIT;",
                 h_rand(), h_rand() % 100, h_rand() % 100, (long long)id, (long long)id);
        if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
            fail_msg("sql: %s", sqlite3_errmsg(s));
    }
    sqlite3_close(s);
}

size_t h_discard(char *p, size_t size, size_t n, void *arg)
{
    verso_buf *b = arg;

    if (b)
        verso_buf_append(b, p, size * n);
    return size * n;
}

long h_http(const h_master *m, const char *method, const char *path, const char *json,
            verso_buf *body)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char url[512];
    long status = 0;

    snprintf(url, sizeof(url), "%s%s", m->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return status;
}

void h_rest_workload(const h_master *m, const char *mpath, int n)
{
    sqlite3 *s = NULL;

    assert_int_equal(sqlite3_open_v2(mpath, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    for (int i = 0; i < n; i++) {
        char json[160], path[64];
        int64_t id = h_pick_id(s, "items");
        uint32_t r = h_rand() % 4;
        long st;
        if (r < 2 || id == 0) {
            snprintf(json, sizeof(json), "{\"name\":\"rest-%u\",\"price\":%u.25,\"qty\":%u}",
                     h_rand(), h_rand() % 100, h_rand() % 100);
            st = h_http(m, "POST", "/items", json, NULL);
        } else if (r == 2) {
            snprintf(path, sizeof(path), "/items/%lld", (long long)id);
            snprintf(json, sizeof(json), "{\"qty\":%u}", h_rand() % 100);
            st = h_http(m, "PATCH", path, json, NULL);
        } else {
            snprintf(path, sizeof(path), "/items/%lld", (long long)id);
            st = h_http(m, "DELETE", path, NULL, NULL);
        }
        if (st < 200 || st > 204)
            fail_msg("REST write: HTTP %ld", st);
    }
    sqlite3_close(s);
}

/* ---- checks ---- */

int64_t h_head(const char *path)
{
    verso_db *db = h_open(path);
    verso_info info;

    assert_int_equal(verso_db_info(&info, db), 0);
    verso_db_close(db);
    return info.head;
}

int64_t h_cursor(const char *path, char master[37])
{
    verso_db *db = h_open(path);
    verso_cursor c;

    assert_int_equal(verso_db_cursor(&c, db), 0);
    verso_db_close(db);
    if (master)
        memcpy(master, c.master, 37);
    return c.version;
}

bool h_same_value(sqlite3_stmt *a, sqlite3_stmt *b, int i)
{
    int t = sqlite3_column_type(a, i);

    if (t != sqlite3_column_type(b, i))
        return false;
    switch (t) {
    case SQLITE_INTEGER:
        return sqlite3_column_int64(a, i) == sqlite3_column_int64(b, i);
    case SQLITE_FLOAT:
        return sqlite3_column_double(a, i) == sqlite3_column_double(b, i);
    case SQLITE_NULL:
        return true;
    default: {
        int n = sqlite3_column_bytes(a, i);
        return n == sqlite3_column_bytes(b, i) &&
               (n == 0 || /* an empty value's pointer is NULL: memcmp may not take it */
                memcmp(sqlite3_column_blob(a, i), sqlite3_column_blob(b, i), (size_t)n) == 0);
    }
    }
}

int64_t h_count(const char *path, const char *table)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    char sql[128];
    int64_t n = -1;

    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL);
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return n;
}

void h_assert_table_equal(const char *mpath, const char *spath, const char *table)
{
    sqlite3 *a = NULL, *b = NULL;
    sqlite3_stmt *sa = NULL, *sb = NULL;
    char sql[200];
    int64_t rows = 0;

    snprintf(sql, sizeof(sql), "SELECT id, version, * FROM %s ORDER BY id", table);
    assert_int_equal(sqlite3_open_v2(mpath, &a, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(spath, &b, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(a, sql, -1, &sa, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(b, sql, -1, &sb, NULL) != SQLITE_OK)
        fail_msg("%s: %s", spath, sqlite3_errmsg(b));
    assert_int_equal(sqlite3_column_count(sa), sqlite3_column_count(sb));
    for (;;) {
        int ra = sqlite3_step(sa), rb = sqlite3_step(sb);
        if (ra != rb)
            fail_msg("%s: %s has %s rows than the master", table, spath,
                     ra == SQLITE_ROW ? "fewer" : "more");
        if (ra != SQLITE_ROW)
            break;
        rows++;
        for (int i = 0; i < sqlite3_column_count(sa); i++) {
            if (!h_same_value(sa, sb, i))
                fail_msg("%s id %lld differs in column %s (master version %lld, slave %lld)", table,
                         (long long)sqlite3_column_int64(sa, 0), sqlite3_column_name(sa, i),
                         (long long)sqlite3_column_int64(sa, 1),
                         (long long)sqlite3_column_int64(sb, 1));
        }
    }
    (void)rows;
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    sqlite3_close(a);
    sqlite3_close(b);
}

bool h_file_contains(const char *path, const char *text)
{
    static const char *const suffix[] = {"", "-wal"};
    size_t n = strlen(text);
    bool found = false;

    for (size_t i = 0; i < 2 && !found; i++) {
        char p[700], *buf;
        long size;
        FILE *f;
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        if (!(f = fopen(p, "rb")))
            continue;
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc((size_t)size + 1);
        if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size)
            for (long k = 0; k + (long)n <= size && !found; k++)
                found = memcmp(buf + k, text, n) == 0;
        free(buf);
        fclose(f);
    }
    return found;
}

void h_assert_integrity(const char *path)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;

    /* read-write (never create): a WAL file left by a killed process may need
     * its recovery, which a read-only connection cannot run */
    assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    assert_int_equal(sqlite3_prepare_v2(s, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(s);
}

void h_assert_converged(const char *mpath, const char *spath)
{
    verso_db *m = h_open(mpath);
    verso_info info;
    char master[37];

    assert_int_equal(verso_db_info(&info, m), 0);
    verso_db_close(m);
    assert_int_equal(h_cursor(spath, master), info.head);
    assert_string_equal(master, info.identity);
    assert_int_equal(h_head(spath), info.head);
    h_assert_table_equal(mpath, spath, "items");
    h_assert_table_equal(mpath, spath, "accounts");
    h_assert_integrity(spath);
}

int64_t h_sql_int(sqlite3 *s, const char *sql, int64_t bind)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(s));
    if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_int64(st, 1, bind);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

void h_assert_cursor_matches_data(const char *mpath, const char *spath)
{
    static const char *const tables[] = {"items", "accounts"};
    sqlite3 *s = NULL;
    char sql[600], att[700];
    int64_t c;

    assert_int_equal(sqlite3_open_v2(spath, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    snprintf(att, sizeof(att), "ATTACH '%s' AS m", mpath);
    assert_int_equal(sqlite3_exec(s, att, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(s, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    c = h_sql_int(s,
                  "SELECT COALESCE((SELECT value FROM main._verso_meta WHERE key = "
                  "'cursor_version'), 0)",
                  0);
    assert_int_equal(h_sql_int(s, "SELECT v FROM main._verso_head", 0), c);
    assert_int_equal(
        h_sql_int(s, "SELECT COUNT(*) FROM main._verso_tombstones WHERE version > ?", c), 0);
    for (size_t i = 0; c > 0 && i < sizeof(tables) / sizeof(tables[0]); i++) {
        const char *t = tables[i];
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM main.%s WHERE version > ?", t);
        if (h_sql_int(s, sql, c) != 0)
            fail_msg("%s: %s has rows newer than its cursor %lld", t, spath, (long long)c);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM m.%s AS r WHERE r.version <= ?1 AND NOT EXISTS "
                 "(SELECT 1 FROM main.%s AS x WHERE x.id = r.id AND x.version = r.version)",
                 t, t);
        if (h_sql_int(s, sql, c) != 0)
            fail_msg("%s: %s lacks master rows at or below its cursor %lld", t, spath,
                     (long long)c);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM main.%s AS x WHERE NOT EXISTS (SELECT 1 FROM m.%s AS r "
                 "WHERE r.id = x.id AND (r.version = x.version OR r.version > ?1)) AND NOT EXISTS "
                 "(SELECT 1 FROM m._verso_tombstones AS d WHERE d.tbl = '%s' AND d.id = x.id "
                 "AND d.version > ?1)",
                 t, t, t);
        if (h_sql_int(s, sql, c) != 0)
            fail_msg("%s: %s has rows the master never had at its cursor %lld", t, spath,
                     (long long)c);
    }
    sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(s);
}

bool h_wait_cursor(const char *mpath, const char *spath, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (h_now_ms() < deadline) {
        if (h_cursor(spath, NULL) == h_head(mpath))
            return true;
        h_sleep_ms(20);
    }
    return false;
}

void h_seed_accounts(verso_db *db, int64_t each)
{
    h_account a = {.id = 1, .balance = each}, b = {.id = 2, .balance = each};

    assert_int_equal(verso_record_insert(db, &h_accounts, &a), 0);
    assert_int_equal(verso_record_insert(db, &h_accounts, &b), 0);
}

void h_transfer(verso_db *db)
{
    h_account a = {0}, b = {0};
    int64_t amount = (int64_t)(h_rand() % 50) - 25;

    assert_int_equal(verso_db_begin(db), 0);
    assert_int_equal(verso_record_get(&a, db, &h_accounts, 1), 0);
    assert_int_equal(verso_record_get(&b, db, &h_accounts, 2), 0);
    a.balance -= amount;
    b.balance += amount;
    assert_int_equal(verso_record_update(db, &h_accounts, &a, 0), 0);
    assert_int_equal(verso_record_update(db, &h_accounts, &b, 0), 0);
    assert_int_equal(verso_db_commit(db), 0);
}

void h_accounts_sum(const char *path, int64_t *sum, int64_t *count)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;

    *sum = *count = -1;
    if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto done;
    sqlite3_busy_timeout(s, 2000);
    if (sqlite3_prepare_v2(s, "SELECT COALESCE(SUM(balance), 0), COUNT(*) FROM accounts", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        *sum = sqlite3_column_int64(st, 0);
        *count = sqlite3_column_int64(st, 1);
    }
done:
    sqlite3_finalize(st);
    sqlite3_close(s);
}
