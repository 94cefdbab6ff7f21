/*
 * Long blobs in replication (docs/protocol.md, "blob_fetch"): a BLOB
 * longer than VERSO_SYNC_BLOB_INLINE travels as {"blob_fetch":N} and the
 * slave fetches its bytes with GET <table>/<id>/<column>?version=V, written
 * into the row in the same transaction as the batch and the cursor.
 *
 * - the feed never loads such a blob (SQLite's memory high-water mark);
 * - the applier writes a blob from a source in chunks, shows it to the
 *   callback as data NULL + length, and rolls back on a 412;
 * - end to end with `verso serve` as the master: 0 B, 256 KiB, 256 KiB + 1,
 *   1 MB and 64 MiB blobs by `verso pull` (rows) and `verso replicate`
 *   (file snapshot, then live), identical byte for byte, with the peak RSS
 *   (VmHWM, or the child's ru_maxrss) of master and slaves under RSS_BOUND;
 * - a row updated between the read and the fetch (412): the pull reads
 *   again and converges, and gives up with a clear error if it never stops;
 * - a slave killed mid-fetch keeps its old row and cursor (never zeros),
 *   and converges after a restart.
 */
#include <inttypes.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>

#include "support/internal.h"
#include "sync_harness.h"

#define MiB       (1024 * 1024)
#define KiB       1024
#define RSS_BOUND (48 * MiB) /* the stated bound: peak RSS while a 64 MiB blob passes */

#define TOKEN      "s3cret-token"
#define TOKEN_HASH "a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif
/* ThreadSanitizer keeps shadow memory and access histories in the process:
 * its RSS says nothing of verso's own memory, so bounds are only printed. */
#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif
#ifndef TSAN
#define TSAN 0
#endif

typedef struct file_row {
    int64_t id;
    int64_t version;
    char *name;
    verso_blob data;
} file_row;

static const verso_field file_fields[] = {
    VERSO_FIELD_ID_OF(file_row, id),
    VERSO_FIELD_VERSION_OF(file_row, version),
    VERSO_FIELD(file_row, name, VERSO_TEXT, 0),
    VERSO_FIELD(file_row, data, VERSO_BLOB, 0),
};
static const verso_table_def files_table = VERSO_TABLE_DEF("files", file_row, file_fields);
static const verso_table_def *const files_tables[] = {&files_table};

/* ---- helpers ---- */

static unsigned char pattern(int64_t seed, int64_t i)
{
    uint64_t x = (uint64_t)i * 2654435761u + (uint64_t)seed * 40503u + (uint64_t)(i >> 16);
    return (unsigned char)(x >> 11 ^ x ^ 0x5a);
}

static sqlite3 *sq_open(const char *path, bool rw)
{
    sqlite3 *s = NULL;

    assert_int_equal(
        sqlite3_open_v2(path, &s, rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, NULL),
        SQLITE_OK);
    sqlite3_busy_timeout(s, 10000);
    return s;
}

static void sq_exec(sqlite3 *s, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(s, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
}

/* A verso database with the table files (id, version, name, data). */
static void make_master(const char *path)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    char why[256] = "";

    o.tables = files_tables;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, why, sizeof(why)) < 0)
        fail_msg("%s: %s", path, why);
    verso_db_close(db);
}

/* Plain SQL on path, as another program would write it (the triggers give
 * the version): row id gets a blob of size bytes of pattern seed, written
 * with incremental I/O inside the same transaction. */
static void put_blob(const char *path, int64_t id, int64_t size, int64_t seed)
{
    sqlite3 *s = sq_open(path, true);
    sqlite3_stmt *st = NULL;
    sqlite3_blob *b = NULL;
    unsigned char *buf = malloc(64 * KiB);

    assert_non_null(buf);
    sq_exec(s, "BEGIN IMMEDIATE");
    assert_int_equal(sqlite3_prepare_v2(s,
                                        "INSERT INTO files(id, name, data) VALUES (?1, ?2, "
                                        "zeroblob(?3)) ON CONFLICT(id) DO UPDATE SET "
                                        "name = excluded.name, data = excluded.data",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, "seeded", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, size);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    if (size > 0) {
        assert_int_equal(sqlite3_blob_open(s, "main", "files", "data", id, 1, &b), SQLITE_OK);
        for (int64_t off = 0; off < size; off += 64 * KiB) {
            int n = size - off < 64 * KiB ? (int)(size - off) : 64 * KiB;
            for (int i = 0; i < n; i++)
                buf[i] = pattern(seed, off + i);
            assert_int_equal(sqlite3_blob_write(b, buf, n, (int)off), SQLITE_OK);
        }
        sqlite3_blob_close(b);
    }
    sq_exec(s, "COMMIT");
    sqlite3_close(s);
    free(buf);
}

static int64_t sq_int(const char *path, const char *sql, int64_t bind)
{
    sqlite3 *s = sq_open(path, false);
    int64_t v = h_sql_int(s, sql, bind);

    sqlite3_close(s);
    return v;
}

/* The head of path, read with plain SQL (h_head() would declare its own tables there). */
static int64_t head_of(const char *path)
{
    return sq_int(path, "SELECT v FROM _verso_head", 0);
}

/* The stored cursor of path; -1 before it has one (or before the file exists). */
static int64_t cursor_of(const char *path)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (access(path, F_OK) != 0)
        return -1;

    if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(s, 2000) == SQLITE_OK &&
        sqlite3_prepare_v2(s, "SELECT value FROM _verso_meta WHERE key = 'cursor_version'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

/* Row id of files: same version and same bytes in both files (read in
 * chunks), and the slave's blob is not zeros where the master's is not. */
static void assert_row_equal(const char *mpath, const char *spath, int64_t id)
{
    sqlite3 *m = sq_open(mpath, false), *s = sq_open(spath, false);
    sqlite3_blob *bm = NULL, *bs = NULL;
    unsigned char *x = malloc(64 * KiB), *y = malloc(64 * KiB);
    const char *q = "SELECT version FROM files WHERE id = ?1";
    const char *qt = "SELECT typeof(data) = 'blob' FROM files WHERE id = ?1";
    int len;

    assert_non_null(x);
    assert_non_null(y);
    sq_exec(m, "BEGIN");
    sq_exec(s, "BEGIN");
    assert_int_equal(h_sql_int(m, q, id), h_sql_int(s, q, id));
    assert_int_equal(h_sql_int(s, qt, id), 1);
    assert_int_equal(sqlite3_blob_open(m, "main", "files", "data", id, 0, &bm), SQLITE_OK);
    assert_int_equal(sqlite3_blob_open(s, "main", "files", "data", id, 0, &bs), SQLITE_OK);
    len = sqlite3_blob_bytes(bm);
    assert_int_equal(len, sqlite3_blob_bytes(bs));
    for (int off = 0; off < len; off += 64 * KiB) {
        int n = len - off < 64 * KiB ? len - off : 64 * KiB;
        assert_int_equal(sqlite3_blob_read(bm, x, n, off), SQLITE_OK);
        assert_int_equal(sqlite3_blob_read(bs, y, n, off), SQLITE_OK);
        if (memcmp(x, y, (size_t)n) != 0)
            fail_msg("row %lld: bytes differ in [%d, %d)", (long long)id, off, off + n);
    }
    sqlite3_blob_close(bm);
    sqlite3_blob_close(bs);
    sqlite3_close(m);
    sqlite3_close(s);
    free(x);
    free(y);
}

/* id's blob in path holds size bytes of the pattern of seed (never zeros), read in chunks. */
static void assert_pattern(const char *path, int64_t id, int64_t seed, int64_t size)
{
    sqlite3 *s = sq_open(path, false);
    sqlite3_blob *b = NULL;
    unsigned char *buf = malloc(64 * KiB);

    assert_non_null(buf);
    assert_int_equal(sqlite3_blob_open(s, "main", "files", "data", id, 0, &b), SQLITE_OK);
    assert_int_equal(sqlite3_blob_bytes(b), size);
    for (int64_t off = 0; off < size; off += 64 * KiB) {
        int n = size - off < 64 * KiB ? (int)(size - off) : 64 * KiB;
        assert_int_equal(sqlite3_blob_read(b, buf, n, (int)off), SQLITE_OK);
        for (int i = 0; i < n; i++)
            if (buf[i] != pattern(seed, off + i))
                fail_msg("row %lld: not the bytes of seed %lld at %lld", (long long)id,
                         (long long)seed, (long long)(off + i));
    }
    sqlite3_blob_close(b);
    sqlite3_close(s);
    free(buf);
}

/* VmHWM of pid in bytes (-1 if unreadable). */
static int64_t vm_hwm(pid_t pid)
{
    char path[64], line[256];
    int64_t kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %" SCNd64, &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/*
 * VmHWM of a running child is its own peak since its exec; under ASan the
 * children run with a small quarantine, so it is asserted there too.
 * ru_maxrss of a finished child (forked) also counts the test process's
 * pages it started with: an upper bound, asserted without ASan only (the
 * test process's own quarantine is large).
 */
static void check_rss(const char *who, int64_t bytes, bool forked_peak)
{
    bool asserted = !TSAN && (!SANITIZED || !forked_peak);

    printf("# peak RSS of %s: %.1f MiB (bound %d MiB%s)\n", who, (double)bytes / MiB,
           RSS_BOUND / MiB,
           asserted ? ""
           : TSAN   ? ", not asserted under TSan"
                    : ", not asserted under ASan");
    fflush(stdout);
    assert_true(bytes > 0);
    if (asserted && bytes >= RSS_BOUND)
        fail_msg("%s peaked at %.1f MiB, bound %d MiB", who, (double)bytes / MiB, RSS_BOUND / MiB);
}

/* ---- children ---- */

typedef struct child {
    pid_t pid;
    FILE *out;
} child;

static void spawn(child *c, char *const *argv, const char *env, bool capture)
{
    pid_t parent = getpid();
    int fds[2] = {-1, -1};

    if (capture)
        assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        if (env)
            putenv((char *)env);
        if (SANITIZED) /* freed memory is given back at once: RSS then means something */
            setenv("ASAN_OPTIONS", "quarantine_size_mb=1:thread_local_quarantine_size_kb=64", 1);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (capture) {
            dup2(fds[1], STDOUT_FILENO);
            close(fds[0]);
            close(fds[1]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    c->out = NULL;
    if (capture) {
        close(fds[1]);
        assert_non_null(c->out = fdopen(fds[0], "r"));
    }
}

/* Ends c (sig), reaps it; its peak RSS from the kernel's accounting. */
static int64_t reap(child *c, int sig, int *status, int timeout_ms)
{
    struct rusage ru;
    int st = 0;
    int64_t deadline = h_now_ms() + timeout_ms;

    if (c->pid <= 0)
        return -1;
    if (sig)
        kill(c->pid, sig);
    while (wait4(c->pid, &st, WNOHANG, &ru) == 0) {
        if (h_now_ms() > deadline) {
            kill(c->pid, SIGKILL);
            wait4(c->pid, &st, 0, &ru);
            break;
        }
        h_sleep_ms(5);
    }
    c->pid = -1;
    if (c->out)
        fclose(c->out);
    c->out = NULL;
    if (status)
        *status = st;
    return (int64_t)ru.ru_maxrss * 1024;
}

static child g_kids[4]; /* killed at the end of each test, passed or not */

static void write_config(const char *path)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fprintf(f, "token " TOKEN_HASH " replicate\n");
    fclose(f);
}

static void serve_start(child *c, h_master *m, const char *db)
{
    char cfg[600];
    char line[sizeof(m->url)] = "";
    char *colon;

    h_path(cfg, sizeof(cfg), "server.conf");
    write_config(cfg);
    {
        char *argv[] = {getenv("VERSO_BIN"), "serve", (char *)db, "--port", "0",
                        "--config",          cfg,     NULL};
        spawn(c, argv, NULL, true);
    }
    if (!fgets(line, sizeof(line), c->out))
        fail_msg("verso serve did not start");
    line[strcspn(line, "\n")] = '\0';
    if (line[0] && line[strlen(line) - 1] == '/')
        line[strlen(line) - 1] = '\0';
    assert_non_null(colon = strrchr(line, ':'));
    m->port = atoi(colon + 1);
    m->pid = c->pid;
    assert_true(m->port > 0);
    snprintf(m->url, sizeof(m->url), "%s", line);
}

static bool wait_cursor(const char *spath, int64_t want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (h_now_ms() < deadline) {
        if (access(spath, F_OK) == 0 && cursor_of(spath) >= want)
            return true;
        h_sleep_ms(20);
    }
    return false;
}

static int setup(void **state)
{
    (void)state;
    memset(g_kids, 0, sizeof(g_kids));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(g_kids) / sizeof(g_kids[0]); i++)
        if (g_kids[i].pid > 0)
            reap(&g_kids[i], SIGKILL, NULL, 10000);
    return 0;
}

/* No temporary blob file is left beside the slave. */
static void assert_no_blob_files(void)
{
    DIR *d = opendir(h_dir);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".blob-"))
            fail_msg("left behind: %s", e->d_name);
    closedir(d);
}

/* ---- the feed ---- */

static verso_db *open_files(const char *path)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    o.tables = files_tables;
    o.ntables = 1;
    assert_int_equal(verso_db_open(&db, path, &o, NULL, 0), 0);
    return db;
}

/* The entries of a full read of db, with blob_inline, each checked by fn. */
static void read_feed(verso_db *db, int64_t blob_inline,
                      void (*fn)(const verso_feed_entry *e, verso_buf *json))
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f = NULL;
    const verso_feed_entry *e;
    verso_buf json = VERSO_BUF_INIT;

    fo.blob_inline = blob_inline;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    while (verso_feed_next(&e, f) == 1) {
        verso_buf_clear(&json);
        assert_int_equal(verso_json_feed_entry(&json, e), 0);
        fn(e, &json);
    }
    verso_feed_close(f);
    verso_buf_free(&json);
}

static void check_inline(const verso_feed_entry *e, verso_buf *json)
{
    const verso_value *name = &e->values[2], *data = &e->values[3];
    char want[64];

    switch (e->id) {
    case 1: /* 0 B, exactly the limit: inline */
    case 2:
        assert_int_equal(data->type, VERSO_BLOB);
        assert_int_equal(data->u.b.n, e->id == 1 ? 0 : VERSO_SYNC_BLOB_INLINE);
        assert_true(e->id == 1 || data->u.b.p != NULL);
        assert_null(strstr(json->data, "blob_fetch"));
        break;
    case 3: /* one byte more, and 1 MiB: its length only */
    case 4:
        assert_int_equal(data->type, VERSO_BLOB);
        assert_null(data->u.b.p);
        snprintf(want, sizeof(want), "\"data\":{\"blob_fetch\":%d}",
                 e->id == 3 ? VERSO_SYNC_BLOB_INLINE + 1 : MiB);
        assert_non_null(strstr(json->data, want));
        break;
    case 5: /* a long blob in a text column, an integer in the blob column */
        assert_int_equal(name->type, VERSO_BLOB);
        assert_null(name->u.b.p);
        assert_int_equal(name->u.b.n, 300 * KiB);
        assert_non_null(strstr(json->data, "\"name\":{\"blob_fetch\":307200}"));
        assert_int_equal(data->type, VERSO_INT64);
        assert_int_equal(data->u.i, 307201);
        break;
    default: /* long text stays inline */
        assert_int_equal(name->type, VERSO_TEXT);
        assert_int_equal(name->u.b.n, 300 * KiB);
        break;
    }
}

static void check_loaded(const verso_feed_entry *e, verso_buf *json)
{
    (void)json;
    assert_true(e->values[3].type != VERSO_BLOB || e->values[3].u.b.p || !e->values[3].u.b.n);
    assert_true(e->values[2].type != VERSO_BLOB || e->values[2].u.b.p);
}

static void test_feed_long_blob_as_length(void **state)
{
    const int64_t sizes[] = {0, VERSO_SYNC_BLOB_INLINE, VERSO_SYNC_BLOB_INLINE + 1, MiB};
    char mp[600];
    sqlite3 *s;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "feed.db");
    make_master(mp);
    for (int i = 0; i < 4; i++)
        put_blob(mp, i + 1, sizes[i], i);
    s = sq_open(mp, true);
    sq_exec(s, "INSERT INTO files(id, name, data) VALUES (5, zeroblob(307200), 307201),"
               "(6, printf('%.*c', 307200, 'x'), NULL)");
    sqlite3_close(s);
    db = open_files(mp);
    read_feed(db, VERSO_SYNC_BLOB_INLINE, check_inline);
    read_feed(db, 0, check_loaded); /* without the option every value is read, as before */
    verso_db_close(db);
}

static void nothing(const verso_feed_entry *e, verso_buf *json)
{
    (void)e;
    (void)json;
}

/* SQLite's own memory high-water mark while the feed reads a 32 MiB blob:
 * with blob_inline it never holds it; without, it does (the control). */
static void test_feed_does_not_load_long_blob(void **state)
{
    char mp[600];
    sqlite3_int64 cur, hi;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "feedmem.db");
    make_master(mp);
    put_blob(mp, 1, 32 * MiB, 7);
    db = open_files(mp);
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 1);
    read_feed(db, VERSO_SYNC_BLOB_INLINE, nothing);
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 1);
    printf("# SQLite memory high-water reading a 32 MiB blob's change: %.1f MiB\n",
           (double)hi / MiB);
    assert_true(hi < 8 * MiB);
    read_feed(db, 0, nothing);
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 1);
    assert_true(hi > 32 * MiB); /* the measure sees a load */
    verso_db_close(db);
}

/* ---- the applier, from a local source ---- */

#define IDENT "0d6c0000-0000-4000-8000-000000000001"

typedef struct src_state {
    int gets, conflicts_left, fail_at; /* fail_at: fill fails at this offset (-1 never) */
    int64_t version, n;
} src_state;

static int src_get(void *arg, const char *table, int64_t id, const char *column, int64_t version,
                   int64_t n, char *why, size_t whylen)
{
    src_state *st = arg;

    assert_string_equal(table, "files");
    assert_int_equal(id, 1);
    assert_string_equal(column, "data");
    st->gets++;
    st->version = version;
    st->n = n;
    if (st->conflicts_left > 0) {
        st->conflicts_left--;
        snprintf(why, whylen, "changed (HTTP 412)");
        return VERSO_ECONFLICT;
    }
    return 0;
}

static int src_fill(unsigned char *buf, size_t len, int64_t off, void *arg)
{
    src_state *st = arg;

    if (st->fail_at >= 0 && off >= st->fail_at)
        return VERSO_EIO;
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(9, off + (int64_t)i);
    return 0;
}

static int g_seen_n = -1;

static void on_apply(const verso_sync_change *c, size_t n, int64_t cursor, bool reset, void *arg)
{
    (void)cursor;
    (void)reset;
    (void)arg;
    assert_int_equal(n, 1);
    for (size_t i = 0; i < c[0].ncolumns; i++)
        if (!strcmp(c[0].columns[i], "data")) {
            assert_int_equal(c[0].values[i].type, VERSO_BLOB);
            assert_null(c[0].values[i].u.b.p);
            g_seen_n = (int)c[0].values[i].u.b.n;
        }
}

static const char k_schema[] =
    "[{\"name\":\"files\",\"columns\":[{\"name\":\"id\",\"type\":\"int64\",\"id\":true},"
    "{\"name\":\"version\",\"type\":\"int64\",\"version\":true},{\"name\":\"name\",\"type\":"
    "\"text\"},{\"name\":\"data\",\"type\":\"blob\"}]}]";

/* One batch {id 1, version 3, data: {"blob_fetch": N}} applied with source st; rc of the apply. */
static int apply_one(verso_db *db, src_state *st, bool with_source)
{
    verso_sync_client cl = VERSO_SYNC_CLIENT_INIT;
    verso__sync_blob_source src = {src_get, src_fill, NULL, st};
    verso__sync_applier *a = NULL;
    verso__sync_schema schema = {0};
    verso_json *sdoc = NULL, *doc = NULL;
    char text[256], why[256] = "";
    int rc;

    cl.on_apply = on_apply;
    assert_int_equal(verso__sync_applier_new(&a, db, &cl), 0);
    if (with_source)
        verso__sync_applier_set_blobs(a, &src);
    assert_int_equal(verso_json_parse(&sdoc, k_schema, strlen(k_schema), 0, NULL, 0), 0);
    assert_int_equal(verso__sync_schema_parse(&schema, verso_json_root(sdoc), why, sizeof(why)), 0);
    verso_json_free(sdoc);
    assert_int_equal(verso__sync_applier_set_schema(a, &schema), 0);
    snprintf(text, sizeof(text),
             "[{\"table\":\"files\",\"id\":1,\"version\":3,\"row\":{\"id\":1,\"version\":3,"
             "\"name\":\"big\",\"data\":{\"blob_fetch\":%d}}}]",
             3 * MiB + 5);
    assert_int_equal(verso_json_parse(&doc, text, strlen(text), 0, NULL, 0), 0);
    rc = verso__sync_applier_entries(a, doc, verso_json_root(doc), false, 0, 3);
    if (rc == 0)
        rc = verso__sync_applier_commit(a, IDENT, 3);
    if (rc < 0)
        printf("# apply: %s\n", verso__sync_applier_errmsg(a));
    verso__sync_schema_free(&schema);
    verso__sync_applier_free(a);
    return rc;
}

static void test_applier_writes_blob_from_source(void **state)
{
    char sp[600];
    src_state st = {.fail_at = -1};
    verso_db *db = NULL;
    verso_cursor c;

    (void)state;
    h_path(sp, sizeof(sp), "applier.db");
    assert_int_equal(verso_db_open(&db, sp, NULL, NULL, 0), 0);

    /* no source (a slave with no master URL): refused, nothing written */
    assert_int_equal(apply_one(db, &st, false), VERSO_EPROTO);
    /* the row changed on the master (412): rolled back, the cursor stays */
    st.conflicts_left = 1;
    assert_int_equal(apply_one(db, &st, true), VERSO_ECONFLICT);
    assert_int_equal(verso_db_cursor(&c, db), 0);
    assert_int_equal(c.version, 0);
    /* the source fails mid-blob: rolled back, no zero-filled row */
    st.fail_at = MiB;
    assert_int_equal(apply_one(db, &st, true), VERSO_EIO);
    assert_int_equal(sq_int(sp, "SELECT count(*) FROM sqlite_master WHERE name = 'files'", 0), 0);
    /* and then it works: the bytes, the callback's view, the cursor */
    st.fail_at = -1;
    assert_int_equal(apply_one(db, &st, true), 0);
    assert_int_equal(st.version, 3);
    assert_int_equal(st.n, 3 * MiB + 5);
    assert_int_equal(g_seen_n, 3 * MiB + 5);
    assert_int_equal(verso_db_cursor(&c, db), 0);
    assert_int_equal(c.version, 3);
    verso_db_close(db);
    assert_pattern(sp, 1, 9, 3 * MiB + 5);
    h_assert_integrity(sp);
}

/* The slave database's size when the applier's callback ran (a checkpoint grows it). */
static const char *g_ckpt_path;
static off_t g_ckpt_at_callback;

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void on_apply_size(const verso_sync_change *c, size_t n, int64_t cursor, bool reset,
                          void *arg)
{
    (void)c;
    (void)n;
    (void)cursor;
    (void)reset;
    (void)arg;
    g_ckpt_at_callback = file_size(g_ckpt_path);
}

/*
 * A slave's commit that takes its WAL past SQLite's checkpoint threshold checkpoints after the
 * applier's callback (the moment a slave's reader hears of the commit), not inside the commit;
 * and the WAL stays bounded.
 */
static void test_applier_checkpoints_after_callback(void **state)
{
    char sp[600], wal[700], *text = malloc(500000);
    verso_sync_client cl = VERSO_SYNC_CLIENT_INIT;
    verso__sync_applier *a = NULL;
    verso__sync_schema schema = {0};
    verso_json *sdoc = NULL;
    verso_db *db = NULL;
    char why[256] = "";
    int after = 0;
    off_t wal_max = 0;

    (void)state;
    assert_non_null(text);
    h_path(sp, sizeof(sp), "ckpt.db");
    snprintf(wal, sizeof(wal), "%s-wal", sp);
    g_ckpt_path = sp;
    assert_int_equal(verso_db_open(&db, sp, NULL, NULL, 0), 0);
    cl.on_apply = on_apply_size;
    assert_int_equal(verso__sync_applier_new(&a, db, &cl), 0);
    assert_int_equal(verso_json_parse(&sdoc, k_schema, strlen(k_schema), 0, NULL, 0), 0);
    assert_int_equal(verso__sync_schema_parse(&schema, verso_json_root(sdoc), why, sizeof(why)), 0);
    verso_json_free(sdoc);
    assert_int_equal(verso__sync_applier_set_schema(a, &schema), 0);
    for (int i = 1; i <= 40; i++) { /* ~100 pages a commit */
        verso_json *doc = NULL;
        int n = snprintf(text, 500000,
                         "[{\"table\":\"files\",\"id\":%d,\"version\":%d,\"row\":{\"id\":%d,"
                         "\"version\":%d,\"name\":\"",
                         i, i, i, i);
        memset(text + n, 'x', 400000);
        snprintf(text + n + 400000, 100, "\"}}]");
        assert_int_equal(verso_json_parse(&doc, text, strlen(text), 0, NULL, 0), 0);
        assert_int_equal(verso__sync_applier_entries(a, doc, verso_json_root(doc), false, i - 1, i),
                         0);
        assert_int_equal(verso__sync_applier_commit(a, IDENT, i), 0); /* it took doc */
        after += file_size(sp) != g_ckpt_at_callback;
        wal_max = file_size(wal) > wal_max ? file_size(wal) : wal_max;
    }
    assert_true(after >= 2);
    assert_true(wal_max < (off_t)1200 * (4096 + 24) + 32);
    verso__sync_schema_free(&schema);
    verso__sync_applier_free(a);
    verso_db_close(db);
    free(text);
    h_assert_integrity(sp);
}

/* ---- end to end: verso serve, verso pull, verso replicate ---- */

enum { K_SERVE, K_SLAVE };

static void serve(h_master *m, const char *mp)
{
    serve_start(&g_kids[K_SERVE], m, mp);
}

static void pull_child(const h_master *m, const char *sp, bool rows)
{
    char *argv[] = {getenv("VERSO_BIN"), "pull",     "--quiet", "--token", TOKEN,
                    (char *)m->url,      (char *)sp, NULL,      NULL,      NULL};
    if (rows) { /* a table filter: rows, not a file snapshot */
        argv[5] = "--table";
        argv[6] = "files";
        argv[7] = (char *)m->url;
        argv[8] = (char *)sp;
    }
    spawn(&g_kids[K_SLAVE], argv, NULL, false);
}

static void replicate_child(const h_master *m, const char *sp, const char *env)
{
    char *argv[] = {getenv("VERSO_BIN"), "replicate", "--quiet", "--token", TOKEN,
                    (char *)m->url,      (char *)sp,  NULL};
    spawn(&g_kids[K_SLAVE], argv, env, false);
}

/* verso serve ends on SIGTERM, promptly and cleanly: no download left
 * counted (a slave killed mid-fetch left one, and every stop then waited
 * the whole 10 s drain). */
static void serve_stop(void)
{
    int64_t t0 = h_now_ms();
    int status = -1;

    reap(&g_kids[K_SERVE], SIGTERM, &status, 10000);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || h_now_ms() - t0 > 5000)
        fail_msg("verso serve took %lld ms to stop (status %d)", (long long)(h_now_ms() - t0),
                 status);
}

static void assert_rows_equal(const char *mp, const char *sp, int64_t nrows)
{
    for (int64_t id = 1; id <= nrows; id++)
        assert_row_equal(mp, sp, id);
    h_assert_integrity(sp);
    assert_int_equal(cursor_of(sp), head_of(mp));
}

/* verso pull by rows: every size, the 64 MiB blob included, within the bound; and
 * again from that slave (cascading). */
static void test_pull_by_rows(void **state)
{
    const int64_t sizes[] = {0, VERSO_SYNC_BLOB_INLINE, VERSO_SYNC_BLOB_INLINE + 1, MiB, 64 * MiB};
    char mp[600], sp[600], sp2[600];
    h_master m;
    int status = -1;
    int64_t rss, t0;

    (void)state;
    h_path(mp, sizeof(mp), "pull-master.db");
    h_path(sp, sizeof(sp), "pull-slave.db");
    make_master(mp);
    for (int i = 0; i < 5; i++)
        put_blob(mp, i + 1, sizes[i], 100 + i);
    serve(&m, mp);
    t0 = h_now_ms();
    pull_child(&m, sp, true);
    rss = reap(&g_kids[K_SLAVE], 0, &status, 60000);
    printf("# verso pull of 65.8 MiB of blobs by rows: %lld ms\n", (long long)(h_now_ms() - t0));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    check_rss("verso pull", rss, true);
    check_rss("verso serve (pull)", vm_hwm(m.pid), false);
    assert_rows_equal(mp, sp, 5);
    assert_pattern(sp, 5, 104, 64 * MiB);
    assert_no_blob_files();
    serve_stop();

    /* cascading: the slave's file served in turn, a second tier pulls from it */
    h_path(sp2, sizeof(sp2), "pull-slave2.db");
    serve(&m, sp);
    pull_child(&m, sp2, true);
    reap(&g_kids[K_SLAVE], 0, &status, 60000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_rows_equal(sp, sp2, 5);
    assert_int_equal(cursor_of(sp2), cursor_of(sp));
    assert_no_blob_files();
    serve_stop();
}

/* verso replicate: a file snapshot holding a 64 MiB blob, then long blobs live. */
static void test_replicate_snapshot_then_live(void **state)
{
    const int64_t sizes[] = {0, VERSO_SYNC_BLOB_INLINE + 1, MiB, 64 * MiB};
    char mp[600], sp[600];
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "live-master.db");
    h_path(sp, sizeof(sp), "live-slave.db");
    make_master(mp);
    put_blob(mp, 1, KiB, 200);
    put_blob(mp, 2, 64 * MiB, 201);
    serve(&m, mp);
    replicate_child(&m, sp, NULL);
    if (!wait_cursor(sp, head_of(mp), 60000))
        fail_msg("the live slave did not bootstrap");
    assert_rows_equal(mp, sp, 2);
    check_rss("verso replicate (file snapshot)", vm_hwm(g_kids[K_SLAVE].pid), false);
    check_rss("verso serve (file snapshot)", vm_hwm(m.pid), false);

    for (int i = 0; i < 4; i++) /* rows 3..6, then row 2 replaced: live batches */
        put_blob(mp, i + 3, sizes[i], 300 + i);
    put_blob(mp, 2, VERSO_SYNC_BLOB_INLINE + 7, 202);
    if (!wait_cursor(sp, head_of(mp), 60000))
        fail_msg("the live slave did not follow");
    assert_rows_equal(mp, sp, 6);
    assert_pattern(sp, 6, 303, 64 * MiB);
    check_rss("verso replicate (live)", vm_hwm(g_kids[K_SLAVE].pid), false);
    check_rss("verso serve (live)", vm_hwm(m.pid), false);
    assert_no_blob_files();
    reap(&g_kids[K_SLAVE], SIGTERM, NULL, 10000);
    serve_stop();
}

/* The hook of the slave's fetch: the row changes on the master first. */
typedef struct hook_state {
    const char *mp;
    int calls, changes; /* changes: how many calls update the row (-1: all) */
    bool delete;        /* delete the row instead */
    int64_t at;         /* acts before the GET (-1), or once this many bytes arrived */
    bool fired;
} hook_state;

static void change_row(const char *table, int64_t id, const char *column, int64_t received,
                       void *arg)
{
    hook_state *h = arg;
    sqlite3 *s;

    (void)table;
    (void)column;
    if (received == -1) /* before a GET */
        h->fired = false;
    if (h->at < 0 ? received != -1 : (received < h->at || h->fired))
        return;
    h->fired = true; /* once per GET */
    if (h->changes >= 0 && h->calls++ >= h->changes)
        return;
    if (h->changes < 0)
        h->calls++;
    s = sq_open(h->mp, true);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s,
                                        h->delete ? "DELETE FROM files WHERE id = ?1"
                                                  : "UPDATE files SET name = 'changed ' || "
                                                    "version WHERE id = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(s);
}

static int g_fetched_shown;

static void count_fetched(const verso_sync_change *c, size_t n, int64_t cursor, bool reset,
                          void *arg)
{
    (void)cursor;
    (void)reset;
    (void)arg;
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < c[k].ncolumns; i++)
            if (c[k].values[i].type == VERSO_BLOB && !c[k].values[i].u.b.p &&
                c[k].values[i].u.b.n > VERSO_SYNC_BLOB_INLINE)
                g_fetched_shown++;
}

static int pull_in_process(const h_master *m, const char *sp, char *why, size_t whylen)
{
    static const char *const tables[] = {"files"};
    verso_sync_client cl = VERSO_SYNC_CLIENT_INIT;
    verso_db *db = NULL;
    int rc;

    cl.token = TOKEN;
    cl.tables = tables;
    cl.ntables = 1;
    cl.on_apply = count_fetched;
    assert_int_equal(verso_db_open(&db, sp, NULL, NULL, 0), 0);
    rc = verso_sync_pull(NULL, db, m->url, &cl, why, whylen);
    verso_db_close(db);
    return rc;
}

/* A row updated between the read and the fetch: 412, read again, converge;
 * a row that never stops changing: a clear error, nothing committed. */
static void test_row_changed_before_fetch(void **state)
{
    char mp[600], sp[600], why[256] = "";
    hook_state h = {.changes = 1, .at = -1};
    h_master m;
    int64_t cursor;

    (void)state;
    h_path(mp, sizeof(mp), "c412-master.db");
    h_path(sp, sizeof(sp), "c412-slave.db");
    make_master(mp);
    put_blob(mp, 1, MiB, 400);
    serve(&m, mp);
    h.mp = mp;
    verso__blobfetch_hook = change_row;
    verso__blobfetch_hook_arg = &h;
    if (pull_in_process(&m, sp, why, sizeof(why)) < 0)
        fail_msg("pull: %s", why);
    assert_true(h.calls >= 2); /* the first fetch was refused, the second one taken */
    assert_int_equal(g_fetched_shown, 1);
    assert_rows_equal(mp, sp, 1);
    assert_int_equal(sq_int(sp, "SELECT name LIKE 'changed %' FROM files WHERE id = 1", 0), 1);

    /* deleted between the read and the fetch (the master answers 404): read again */
    put_blob(mp, 2, MiB, 402);
    h.changes = 1;
    h.calls = 0;
    h.delete = true;
    if (pull_in_process(&m, sp, why, sizeof(why)) < 0)
        fail_msg("pull: %s", why);
    assert_int_equal(h.calls, 1);
    assert_int_equal(sq_int(sp, "SELECT count(*) FROM files WHERE id = 2", 0), 0);
    assert_int_equal(cursor_of(sp), head_of(mp));
    h.delete = false;

    cursor = cursor_of(sp);
    put_blob(mp, 1, 2 * MiB, 401);
    h.changes = -1; /* every fetch finds the row changed */
    h.calls = 0;
    assert_int_equal(pull_in_process(&m, sp, why, sizeof(why)), VERSO_ECONFLICT);
    printf("# %s\n", why);
    assert_non_null(strstr(why, "changed on the master"));
    assert_true(h.calls >= 4);
    assert_int_equal(cursor_of(sp), cursor); /* nothing committed */
    assert_pattern(sp, 1, 400, MiB);
    verso__blobfetch_hook = NULL;
    h_assert_integrity(sp);
    assert_no_blob_files();
    serve_stop();
}

/* The row changes while its blob is being sent: the master ends the body
 * early, and the slave reads again. */
static void test_row_changed_mid_stream(void **state)
{
    char mp[600], sp[600], why[256] = "";
    hook_state h = {.changes = 1, .at = 64 * KiB};
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "cmid-master.db");
    h_path(sp, sizeof(sp), "cmid-slave.db");
    make_master(mp);
    put_blob(mp, 1, 32 * MiB, 700);
    serve(&m, mp);
    h.mp = mp;
    verso__blobfetch_hook = change_row;
    verso__blobfetch_hook_arg = &h;
    if (pull_in_process(&m, sp, why, sizeof(why)) < 0) {
        verso__blobfetch_hook = NULL;
        fail_msg("pull: %s", why);
    }
    verso__blobfetch_hook = NULL;
    assert_int_equal(h.calls, 2); /* changed once, mid-body; then a whole fetch */
    assert_rows_equal(mp, sp, 1);
    assert_int_equal(sq_int(sp, "SELECT name LIKE 'changed %' FROM files WHERE id = 1", 0), 1);
    assert_no_blob_files();
    serve_stop();
}

/* The same for a live slave: the link is dropped, the slave resubscribes
 * from its cursor and converges. */
static void test_live_row_changed_before_fetch(void **state)
{
    static const char *const tables[] = {"files"};
    char mp[600], sp[600], why[256] = "";
    hook_state h = {.changes = 1, .at = -1};
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    verso_slave *s = NULL;
    h_master m;
    int64_t want;

    (void)state;
    h_path(mp, sizeof(mp), "l412-master.db");
    h_path(sp, sizeof(sp), "l412-slave.db");
    make_master(mp);
    put_blob(mp, 1, MiB, 600);
    serve(&m, mp);
    h.mp = mp;
    verso__blobfetch_hook = change_row;
    verso__blobfetch_hook_arg = &h;
    o.client.token = TOKEN;
    o.client.tables = tables; /* rows, not a file snapshot */
    o.client.ntables = 1;
    want = head_of(mp) + 1; /* the first fetch finds the row changed: the later head */
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    if (verso_slave_wait(s, want, 30000) < 0) {
        verso_slave_state_get(&st, s);
        verso_slave_stop(s);
        fail_msg("live slave stuck at %lld: %s", (long long)st.cursor, st.last_error);
    }
    verso_slave_state_get(&st, s);
    verso_slave_stop(s);
    verso__blobfetch_hook = NULL;
    assert_true(h.calls >= 2);
    assert_true(st.reconnects >= 1 || st.attempts >= 2); /* it read again from its cursor */
    assert_rows_equal(mp, sp, 1);
    assert_no_blob_files();
    serve_stop();
}

/* The same for a slave of every table, served from the master's ring of
 * encoded commits: the segment that names the old version must not be sent
 * again to the slave that goes back to its cursor (it would fetch that
 * version forever), and a second slave that joins at the old boundary must
 * not be sent it either. */
static void test_ring_row_changed_before_fetch(void **state)
{
    char mp[600], sp[600], sp2[600], why[256] = "";
    hook_state h = {.changes = 1, .at = -1};
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    verso_slave *s = NULL, *s2 = NULL;
    h_master m;
    int64_t want, boundary;

    (void)state;
    h_path(mp, sizeof(mp), "r412-master.db");
    h_path(sp, sizeof(sp), "r412-slave.db");
    h_path(sp2, sizeof(sp2), "r412-slave2.db");
    make_master(mp);
    put_blob(mp, 1, 1024, 800); /* short: inline */
    serve(&m, mp);
    o.client.token = TOKEN; /* every table: file snapshot, then the ring */
    o.retry_min_ms = 20;
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    if (verso_slave_wait(s, head_of(mp), 30000) < 0)
        fail_msg("slave did not reach the head");
    if (verso_slave_start(&s2, sp2, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave 2: %s", why);
    if (verso_slave_wait(s2, head_of(mp), 30000) < 0)
        fail_msg("slave 2 did not reach the head");
    verso_slave_stop(s2); /* at a boundary of the ring */
    boundary = cursor_of(sp2);
    assert_int_equal(boundary, head_of(mp));

    h.mp = mp;
    verso__blobfetch_hook = change_row;
    verso__blobfetch_hook_arg = &h;
    put_blob(mp, 1, MiB, 801); /* one commit: one segment of the ring, with a blob_fetch */
    want = head_of(mp) + 1;    /* the first fetch finds the row changed: the later head */
    if (verso_slave_wait(s, want, 30000) < 0) {
        verso_slave_state_get(&st, s);
        verso_slave_stop(s);
        verso__blobfetch_hook = NULL;
        fail_msg("live slave stuck at %lld of %lld (fetches %d): %s", (long long)st.cursor,
                 (long long)want, h.calls, st.last_error);
    }
    verso__blobfetch_hook = NULL;
    assert_true(h.calls >= 2);
    assert_rows_equal(mp, sp, 1);

    /* the second slave joins at the old boundary: the stale segment is still in the ring */
    if (verso_slave_start(&s2, sp2, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave 2: %s", why);
    if (verso_slave_wait(s2, head_of(mp), 30000) < 0) {
        verso_slave_state_get(&st, s2);
        verso_slave_stop(s2);
        fail_msg("slave 2 stuck at %lld of %lld: %s", (long long)st.cursor, (long long)head_of(mp),
                 st.last_error);
    }
    verso_slave_state_get(&st, s2);
    assert_int_equal(st.resyncs, 0); /* it went on from its cursor */
    verso_slave_stop(s2);
    verso_slave_stop(s);
    assert_rows_equal(mp, sp, 1);
    assert_rows_equal(mp, sp2, 1);
    assert_no_blob_files();
    serve_stop();
}

/* A slave killed at a crash point of the fetch keeps its old row and
 * cursor (never zeros in their place), and converges once restarted. */
static void kill_mid_fetch(const char *point)
{
    char mp[600], sp[600], env[128];
    h_master m;
    int64_t old_version, old_cursor;
    int status = 0;

    h_path(mp, sizeof(mp), "kill-master.db");
    h_path(sp, sizeof(sp), "kill-slave.db");
    h_remove_db(mp);
    h_remove_db(sp);
    make_master(mp);
    put_blob(mp, 1, MiB, 500);
    serve(&m, mp);
    replicate_child(&m, sp, NULL);
    if (!wait_cursor(sp, head_of(mp), 30000))
        fail_msg("the slave did not start");
    reap(&g_kids[K_SLAVE], SIGTERM, NULL, 10000);
    old_version = sq_int(sp, "SELECT version FROM files WHERE id = ?1", 1);
    old_cursor = cursor_of(sp);

    put_blob(mp, 1, 16 * MiB, 501);
    snprintf(env, sizeof(env), "VERSO_CRASH_AT=%s", point);
    replicate_child(&m, sp, env);
    reap(&g_kids[K_SLAVE], 0, &status, 30000);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    h_assert_integrity(sp);
    assert_int_equal(cursor_of(sp), old_cursor);
    assert_int_equal(sq_int(sp, "SELECT version FROM files WHERE id = ?1", 1), old_version);
    assert_pattern(sp, 1, 500, MiB);
    assert_no_blob_files(); /* the temporary file was unlinked when made */

    replicate_child(&m, sp, NULL);
    if (!wait_cursor(sp, head_of(mp), 30000))
        fail_msg("the slave did not converge after the crash");
    assert_rows_equal(mp, sp, 1);
    assert_pattern(sp, 1, 501, 16 * MiB);
    reap(&g_kids[K_SLAVE], SIGTERM, NULL, 10000);
    serve_stop();
}

static void test_kill_mid_fetch(void **state)
{
    (void)state;
    kill_mid_fetch("slave.blob.received:40"); /* the body part-way in */
    kill_mid_fetch("slave.apply.blob");       /* the row written with zeros, before the fetch */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feed_long_blob_as_length),
        cmocka_unit_test(test_feed_does_not_load_long_blob),
        cmocka_unit_test(test_applier_writes_blob_from_source),
        cmocka_unit_test(test_applier_checkpoints_after_callback),
        cmocka_unit_test_setup_teardown(test_pull_by_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_snapshot_then_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_changed_before_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_changed_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_row_changed_before_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_row_changed_before_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_mid_fetch, setup, teardown),
    };
    int failed;

    H_MAIN_DISPATCH(argc, argv);
    /* a few hundred MiB of blobs, WAL files included: in memory when possible
     * (syncing them to a shared disk takes most of the time otherwise), and
     * removed even after a failure */
    if (access("/dev/shm", W_OK) == 0) {
        snprintf(h_dir, sizeof(h_dir), "/dev/shm/verso_sync_blobs.%ld", (long)getpid());
        assert_int_equal(mkdir(h_dir, 0755), 0);
    } else {
        h_init_dir("sync_blobs");
    }
    failed = cmocka_run_group_tests(tests, setup, teardown);
    h_remove_dir(strncmp(h_dir, "/dev/shm/", 9) == 0 ? 0 : failed);
    return failed;
}
