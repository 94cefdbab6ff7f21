/*
 * Every value SQLite can hold in a tracked table travels exactly: a seeded
 * differential test writes every storage class (edges included) with plain
 * SQL into columns of every declared type, then compares typeof() and the
 * exact value cell by cell on the master and on slaves fed by a live
 * WebSocket, by incremental pull (rows), by a pull of chosen tables (rows
 * from version 0), by a file snapshot, and through a fixture dump/load. REST
 * writes and reads of the same values are checked against the file too.
 */
#include <float.h>
#include <math.h>

#include <cjson/cJSON.h>

#include "support/rest_http.h"
#include "sync_harness.h"

#define V_COLS  "i, d, t, b, bo, u, a"
#define V_NCOLS 7
#define V_DDL                                                                                      \
    "CREATE TABLE vals(id INTEGER PRIMARY KEY, i INTEGER, d REAL, t TEXT, b BLOB, bo BOOLEAN, "    \
    "u UUID TEXT, a)"

static const char *const v_colnames[V_NCOLS] = {"i", "d", "t", "b", "bo", "u", "a"};

/* ---- the values ---- */

static const int64_t v_ints[] = {
    0,
    1,
    -1,
    INT64_MAX,
    INT64_MIN,
    INT64_MIN + 1,
    9007199254740992LL,
    9007199254740993LL,
    -9007199254740993LL,
    9007199254740991LL,
    2,
    255,
    -1000000007LL,
};

static double v_real_edge(uint32_t k)
{
    switch (k % 16) {
    case 0:
        return 0.0;
    case 1:
        return -0.0;
    case 2:
        return INFINITY;
    case 3:
        return -INFINITY;
    case 4:
        return DBL_MIN;
    case 5:
        return 4.9406564584124654e-324; /* smallest subnormal */
    case 6:
        return -2.2250738585072009e-308; /* largest subnormal, negative */
    case 7:
        return DBL_MAX;
    case 8:
        return -DBL_MAX;
    case 9:
        return 9007199254740993.0; /* rounds to 2^53 */
    case 10:
        return 9007199254740991.0;
    case 11:
        return 0.1;
    case 12:
        return 1e300;
    case 13:
        return 2.0;
    case 14:
        return -1.5;
    default:
        break;
    }
    for (;;) { /* random bits, not NaN */
        uint64_t u = (uint64_t)h_rand() << 32 | h_rand();
        double d;
        memcpy(&d, &u, sizeof d);
        if (!isnan(d))
            return d;
    }
}

static const struct {
    const char *p;
    size_t n;
} v_texts[] = {
    {"", 0},
    {"\0", 1},
    {"x\0y", 3},
    {"\xF0\x9F\x98\x80 4-byte", 11},
    {"a\xff"
     "b",
     3},                     /* invalid byte */
    {"\x80", 1},             /* lone continuation */
    {"\xc0\xaf", 2},         /* overlong */
    {"\xed\xa0\x80", 3},     /* surrogate */
    {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
    {"\xe2\x82", 2},         /* truncated */
    {"123", 3},
    {"1.5", 3},
    {" 12 ", 4},
    {"1e5", 3},
    {"Inf", 3},
    {"true", 4},
    {"0d6c6a5e-1b2c-4d3e-8f90-a1b2c3d4e5f6", 36},
    {"0D6C6A5E-1B2C-4D3E-8F90-A1B2C3D4E5F6", 36},
    {"{\"integer\":5}", 13},
    {"quote \" backslash \\ tab \t nl \n del \x7f", 36},
};

static unsigned char v_big[1 << 20];

/* Binds a random value of a random storage class at pos. */
static void v_bind_random(sqlite3_stmt *st, int pos, int *nbig)
{
    uint32_t r = h_rand();
    switch (r % 5) {
    case 0:
        sqlite3_bind_null(st, pos);
        break;
    case 1:
        if (h_rand() % 3)
            sqlite3_bind_int64(st, pos, v_ints[h_rand() % (sizeof v_ints / sizeof v_ints[0])]);
        else
            sqlite3_bind_int64(st, pos, (int64_t)((uint64_t)h_rand() << 32 | h_rand()));
        break;
    case 2:
        sqlite3_bind_double(st, pos, v_real_edge(h_rand()));
        break;
    case 3: {
        size_t k = h_rand() % (sizeof v_texts / sizeof v_texts[0]);
        sqlite3_bind_text(st, pos, v_texts[k].p, (int)v_texts[k].n, SQLITE_TRANSIENT);
        break;
    }
    default: {
        unsigned char tmp[64];
        size_t n = h_rand() % sizeof tmp;
        if (*nbig > 0 && h_rand() % 200 == 0) {
            (*nbig)--;
            sqlite3_bind_blob(st, pos, v_big, (int)(sizeof v_big - h_rand() % 7), SQLITE_STATIC);
            break;
        }
        for (size_t i = 0; i < n; i++)
            tmp[i] = (unsigned char)h_rand();
        sqlite3_bind_blob(st, pos, tmp, (int)n, SQLITE_TRANSIENT);
        break;
    }
    }
}

/* Inserts nrows random rows, then updates nupd random cells, with plain SQL
 * (the tracking triggers give them versions), in transactions of 50. */
static void v_write(const char *path, int nrows, int nupd)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *ins = NULL;
    int nbig = 4;

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 10000);
    assert_int_equal(
        sqlite3_prepare_v2(s, "INSERT INTO vals(" V_COLS ") VALUES(?,?,?,?,?,?,?)", -1, &ins, NULL),
        SQLITE_OK);
    for (int r = 0; r < nrows; r++) {
        if (r % 50 == 0)
            assert_int_equal(sqlite3_exec(s, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
        for (int c = 1; c <= V_NCOLS; c++)
            v_bind_random(ins, c, &nbig);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
        if (r % 50 == 49 || r == nrows - 1)
            assert_int_equal(sqlite3_exec(s, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_finalize(ins);
    for (int u = 0; u < nupd; u++) {
        char sql[96];
        sqlite3_stmt *st = NULL;
        snprintf(sql, sizeof sql, "UPDATE vals SET %s = ? WHERE id = ?",
                 v_colnames[h_rand() % V_NCOLS]);
        assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
        v_bind_random(st, 1, &nbig);
        sqlite3_bind_int64(st, 2, 1 + h_rand() % (uint32_t)nrows);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
    }
    sqlite3_close(s);
}

/* ---- the comparison ---- */

static const char *v_class(int t)
{
    static const char *const names[] = {"?", "integer", "real", "text", "blob", "null"};
    return t >= 1 && t <= 5 ? names[t] : "?";
}

static void v_describe(char *out, size_t n, sqlite3_stmt *st, int i)
{
    int t = sqlite3_column_type(st, i);
    if (t == SQLITE_INTEGER) {
        snprintf(out, n, "integer %lld", (long long)sqlite3_column_int64(st, i));
    } else if (t == SQLITE_FLOAT) {
        snprintf(out, n, "real %.17g", sqlite3_column_double(st, i));
    } else if (t == SQLITE_TEXT || t == SQLITE_BLOB) {
        const unsigned char *p =
            t == SQLITE_TEXT ? sqlite3_column_text(st, i) : sqlite3_column_blob(st, i);
        int len = sqlite3_column_bytes(st, i), k = snprintf(out, n, "%s[%d]", v_class(t), len);
        for (int j = 0; j < len && j < 12 && (size_t)k + 3 < n; j++)
            k += snprintf(out + k, n - (size_t)k, " %02x", p[j]);
    } else {
        snprintf(out, n, "%s", v_class(t));
    }
}

static bool v_cell_equal(sqlite3_stmt *a, sqlite3_stmt *b, int i)
{
    int t = sqlite3_column_type(a, i);
    if (t != sqlite3_column_type(b, i))
        return false;
    if (t == SQLITE_INTEGER)
        return sqlite3_column_int64(a, i) == sqlite3_column_int64(b, i);
    if (t == SQLITE_FLOAT) {
        double x = sqlite3_column_double(a, i), y = sqlite3_column_double(b, i);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    if (t == SQLITE_TEXT || t == SQLITE_BLOB) {
        const void *p =
            t == SQLITE_TEXT ? (const void *)sqlite3_column_text(a, i) : sqlite3_column_blob(a, i);
        const void *q =
            t == SQLITE_TEXT ? (const void *)sqlite3_column_text(b, i) : sqlite3_column_blob(b, i);
        int n = sqlite3_column_bytes(a, i);
        return n == sqlite3_column_bytes(b, i) && (n == 0 || memcmp(p, q, (size_t)n) == 0);
    }
    return true;
}

/* Compares every cell of vals (and the versions when with_versions). */
static void v_assert_same(const char *mpath, const char *spath, bool with_versions, const char *how)
{
    sqlite3 *m = NULL, *s = NULL;
    sqlite3_stmt *a = NULL, *b = NULL;
    const char *sql = "SELECT id, version, " V_COLS " FROM vals ORDER BY id";
    int64_t rows = 0;

    assert_int_equal(sqlite3_open_v2(mpath, &m, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(spath, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(m, sql, -1, &a, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &b, NULL), SQLITE_OK);
    for (;;) {
        int ra = sqlite3_step(a), rb = sqlite3_step(b);
        if (ra != rb)
            fail_msg("%s: row count differs after %lld rows", how, (long long)rows);
        if (ra != SQLITE_ROW)
            break;
        rows++;
        for (int i = with_versions ? 0 : 0; i < V_NCOLS + 2; i++) {
            if (i == 1 && !with_versions)
                continue;
            if (!v_cell_equal(a, b, i)) {
                char x[128], y[128];
                v_describe(x, sizeof x, a, i);
                v_describe(y, sizeof y, b, i);
                fail_msg("%s: row id %lld column %s: master %s, replica %s", how,
                         (long long)sqlite3_column_int64(a, 0),
                         i == 0   ? "id"
                         : i == 1 ? "version"
                                  : v_colnames[i - 2],
                         x, y);
            }
        }
    }
    assert_true(rows > 0);
    sqlite3_finalize(a);
    sqlite3_finalize(b);
    sqlite3_close(m);
    sqlite3_close(s);
}

/* Creates the plain table vals in path and puts it under tracking. */
static void v_create(const char *path)
{
    sqlite3 *s = NULL;
    verso_db *db;

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    assert_int_equal(sqlite3_exec(s, V_DDL, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    db = h_open(path);
    if (verso_db_track(db, "vals", "version") < 0)
        fail_msg("track: %s", verso_db_errmsg(db));
    verso_db_close(db);
}

/* A database with no declared table (a file with no table gets a snapshot). */
static verso_db *v_open_bare(const char *path)
{
    char open_why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) < 0)
        fail_msg("open %s: %s", path, open_why);
    return db;
}

static void v_pull(const char *url, const char *path, const char *const *tables, size_t ntables,
                   bool expect_snapshot)
{
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    verso_pull_result res;
    char why[256] = "";
    verso_db *db = v_open_bare(path);
    int rc;

    c.tables = tables;
    c.ntables = ntables;
    rc = verso_sync_pull(&res, db, url, &c, why, sizeof why);
    if (rc < 0)
        fail_msg("pull into %s: %s: %s", path, verso_strerror(rc), why);
    assert_int_equal(res.snapshot, expect_snapshot);
    verso_db_close(db);
}

/* Runs `verso pull [--table vals] URL path`; returns its exit status. */
static int v_cli_pull(const char *url, const char *path, bool table)
{
    char *argv[] = {getenv("VERSO_BIN"), "pull", "--quiet", (char *)url,
                    (char *)path,        NULL,   NULL,      NULL};
    int status = 0;
    pid_t pid;

    if (table) {
        argv[3] = "--table";
        argv[4] = "vals";
        argv[5] = (char *)url;
        argv[6] = (char *)path;
    }
    assert_non_null(argv[0]);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_values_replicate_exactly(void **state)
{
    char mp[600], lp[600], rp[600], sp[600], tp[600], fp[600], cp[600], ctp[600];
    const char *const only_vals[] = {"vals"};
    verso_slave_options so = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *live = NULL;
    char why[256] = "";
    h_master m;

    (void)state;
    h_seed(7);
    for (size_t i = 0; i < sizeof v_big; i++)
        v_big[i] = (unsigned char)h_rand();
    h_path(mp, sizeof mp, "values-master.db");
    h_path(lp, sizeof lp, "values-live.db");
    h_path(rp, sizeof rp, "values-pull.db");
    h_path(sp, sizeof sp, "values-snap.db");
    h_path(tp, sizeof tp, "values-tables.db");
    h_path(fp, sizeof fp, "values-fixture.db");
    verso_db_close(h_open(mp));
    v_create(mp);
    h_master_start(&m, mp, NULL);

    /* the live slave and the incremental puller start before any value */
    if (verso_slave_start(&live, lp, m.url, &so, why, sizeof why) < 0)
        fail_msg("slave: %s", why);
    v_pull(m.url, rp, NULL, 0, true); /* nothing in it yet */

    v_write(mp, 2000, 600);

    if (verso_slave_wait(live, h_head(mp), 60000) < 0) {
        verso_slave_state st;
        verso_slave_state_get(&st, live);
        fail_msg("live slave stuck at %lld of %lld: %s", (long long)st.cursor,
                 (long long)h_head(mp), st.last_error);
    }
    v_assert_same(mp, lp, true, "live");
    v_pull(m.url, rp, NULL, 0, false);
    v_assert_same(mp, rp, true, "pull");
    v_pull(m.url, tp, only_vals, 1, false);
    v_assert_same(mp, tp, true, "pull --table");
    v_pull(m.url, sp, NULL, 0, true);
    v_assert_same(mp, sp, true, "snapshot");
    /* the command, as a user runs it */
    h_path(cp, sizeof cp, "values-cli.db");
    h_path(ctp, sizeof ctp, "values-cli-table.db");
    assert_int_equal(v_cli_pull(m.url, cp, false), 0);
    v_assert_same(mp, cp, true, "verso pull");
    assert_int_equal(v_cli_pull(m.url, ctp, true), 0);
    v_assert_same(mp, ctp, true, "verso pull --table vals");

    /* a second round on the same slaves: updates over existing rows */
    v_write(mp, 300, 900);
    if (verso_slave_wait(live, h_head(mp), 60000) < 0) {
        verso_slave_state st;
        verso_slave_state_get(&st, live);
        fail_msg("live slave stuck at %lld of %lld in the second round (received %lld, seen head "
                 "%lld, link %d, phase %d, commits %lld): %s",
                 (long long)st.cursor, (long long)h_head(mp), (long long)st.received,
                 (long long)st.master_head, (int)st.link, (int)st.phase, (long long)st.commits,
                 st.last_error);
    }
    v_assert_same(mp, lp, true, "live, second round");
    v_pull(m.url, rp, NULL, 0, false);
    v_assert_same(mp, rp, true, "pull, second round");

    /* a fixture dump of the master loaded into another file */
    {
        verso_db *mdb = h_open(mp), *fdb;
        verso_buf b = VERSO_BUF_INIT;
        verso_db_close(h_open(fp));
        v_create(fp);
        fdb = h_open(fp);
        if (verso_fixture_dump(&b, mdb, "vals") < 0)
            fail_msg("dump: %s", verso_db_errmsg(mdb));
        if (verso_fixture_load(fdb, b.data, b.len) < 0)
            fail_msg("load: %s", verso_db_errmsg(fdb));
        verso_buf_free(&b);
        verso_db_close(fdb);
        verso_db_close(mdb);
        v_assert_same(mp, fp, false, "fixture");
    }

    verso_slave_stop(live);
    h_master_kill(&m, SIGTERM);
}

/* ---- REST ---- */

/* typeof(col) and its bytes (text/blob) for row id. */
static void v_cell(const char *path, const char *col, int64_t id, int *type, char *bytes, size_t *n)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    char sql[96];

    snprintf(sql, sizeof sql, "SELECT %s FROM vals WHERE id = ?", col);
    assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *type = sqlite3_column_type(st, 0);
    *n = 0;
    if (*type == SQLITE_TEXT || *type == SQLITE_BLOB) {
        *n = (size_t)sqlite3_column_bytes(st, 0);
        memcpy(bytes,
               *type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, 0)
                                    : sqlite3_column_blob(st, 0),
               *n);
    }
    sqlite3_finalize(st);
    sqlite3_close(s);
}

/* Follows the server's Link headers from path; returns the rows seen, each
 * id at most once (ids below 100000). */
static int v_walk(const h_master *m, const char *path)
{
    static unsigned char seen[100000];
    char next[600], link[700];
    int rows = 0;

    memset(seen, 0, sizeof seen);
    snprintf(next, sizeof next, "%s", path);
    while (next[0]) {
        char url[800];
        rt_resp r;
        verso_json *doc = NULL;
        const cJSON *row;
        const char *l, *a, *e;
        snprintf(url, sizeof url, "%s%s", m->url, next);
        if (rt_request(&r, "GET", url, NULL, 0, NULL) < 0 || r.status != 200)
            fail_msg("GET %s: %ld %s", url, r.status, r.body ? r.body : "");
        next[0] = '\0';
        if ((l = rt_header(&r, "link", link, sizeof link)) && (a = strchr(l, '<')) &&
            (e = strchr(a, '>')) && (size_t)(e - a) < sizeof next)
            snprintf(next, sizeof next, "%.*s", (int)(e - a - 1), a + 1);
        assert_int_equal(verso_json_parse(&doc, r.body, r.nbody, 0, NULL, 0), 0);
        cJSON_ArrayForEach(row, verso_json_root(doc))
        {
            int64_t id = 0;
            assert_int_equal(verso_json_int64(&id, cJSON_GetObjectItem(row, "id")), 0);
            assert_true(id > 0 && id < 100000);
            if (seen[id]++)
                fail_msg("%s: row %lld seen twice", path, (long long)id);
            rows++;
        }
        verso_json_free(doc);
        rt_resp_free(&r);
    }
    return rows;
}

static void test_values_rest(void **state)
{
    char mp[600], bytes[64];
    verso_buf b = VERSO_BUF_INIT;
    h_master m;
    int type;
    size_t n;

    (void)state;
    h_path(mp, sizeof mp, "values-rest.db");
    verso_db_close(h_open(mp));
    v_create(mp);
    h_master_start(&m, mp, NULL);

    /* U+0000 in text, plain JSON: stored as 3 bytes of TEXT, read back escaped */
    assert_int_equal(h_http(&m, "POST", "/vals", "{\"id\":1,\"t\":\"a\\u0000b\"}", &b), 201);
    v_cell(mp, "t", 1, &type, bytes, &n);
    assert_int_equal(type, SQLITE_TEXT);
    assert_int_equal(n, 3);
    assert_memory_equal(bytes, "a\0b", 3);
    verso_buf_clear(&b);
    assert_int_equal(h_http(&m, "GET", "/vals/1", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"t\":\"a\\u0000b\""));
    verso_buf_clear(&b);

    /* tagged values write the storage class they name */
    assert_int_equal(h_http(&m, "POST", "/vals",
                            "{\"id\":2,\"i\":{\"text\":\"abc\"},\"b\":{\"integer\":5},"
                            "\"t\":{\"text_base64\":\"Yf9i\"},\"d\":{\"real\":\"-Infinity\"},"
                            "\"a\":{\"blob\":\"AAE=\"},\"bo\":{\"integer\":7}}",
                            &b),
                     201);
    verso_buf_clear(&b);
    v_cell(mp, "i", 2, &type, bytes, &n);
    assert_int_equal(type, SQLITE_TEXT);
    assert_memory_equal(bytes, "abc", 3);
    v_cell(mp, "b", 2, &type, bytes, &n);
    assert_int_equal(type, SQLITE_INTEGER);
    v_cell(mp, "t", 2, &type, bytes, &n);
    assert_int_equal(type, SQLITE_TEXT);
    assert_int_equal(n, 3);
    assert_memory_equal(bytes,
                        "a\xff"
                        "b",
                        3);
    v_cell(mp, "d", 2, &type, bytes, &n);
    assert_int_equal(type, SQLITE_FLOAT);
    v_cell(mp, "a", 2, &type, bytes, &n);
    assert_int_equal(type, SQLITE_BLOB);
    assert_int_equal(n, 2);
    assert_int_equal(h_http(&m, "GET", "/vals/2", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"i\":{\"text\":\"abc\"}"));
    assert_non_null(strstr(b.data, "\"b\":{\"integer\":5}"));
    assert_non_null(strstr(b.data, "\"t\":{\"text_base64\":\"Yf9i\"}"));
    assert_non_null(strstr(b.data, "\"d\":{\"real\":\"-Infinity\"}"));
    assert_non_null(strstr(b.data, "\"a\":{\"blob\":\"AAE=\"}"));
    assert_non_null(strstr(b.data, "\"bo\":{\"integer\":7}"));
    verso_buf_clear(&b);

    /* a malformed tag is a 400 naming the column, and writes nothing */
    {
        static const char *const bad[] = {
            "{\"i\":{}}",
            "{\"i\":{\"integer\":1,\"text\":\"x\"}}",
            "{\"i\":{\"integer\":1.5}}",
            "{\"i\":{\"real\":\"NaN\"}}",
            "{\"i\":{\"blob\":\"not base64\"}}",
            "{\"i\":{\"text_base64\":\"Yf9\"}}",
            "{\"i\":{\"real\":1e999}}",
            "{\"i\":{\"integer\":\"5\"}}",
            "{\"i\":{\"text\":5}}",
            "{\"i\":{\"bogus\":1}}",
            "{\"i\":[1]}",
        };
        int64_t head = h_head(mp);
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            long st = h_http(&m, "POST", "/vals", bad[k], &b);
            if (st != 400)
                fail_msg("%s: status %ld, body %s", bad[k], st, b.data ? b.data : "");
            assert_non_null(strstr(b.data, "\\\"i\\\""));
            verso_buf_clear(&b);
        }
        assert_int_equal(h_head(mp), head);
    }

    /* keyset pagination over columns holding every storage class: following
     * the Link headers walks each row exactly once */
    h_seed(11);
    v_write(mp, 300, 0);
    for (int c = 0; c < V_NCOLS; c++) {
        char path[128];
        int total = (int)h_count(mp, "vals");
        if (!strcmp(v_colnames[c], "b"))
            continue; /* blob columns cannot be ordered by */
        snprintf(path, sizeof path, "/vals?limit=7&order=%s", v_colnames[c]);
        assert_int_equal(v_walk(&m, path), total);
        snprintf(path, sizeof path, "/vals?limit=5&order=%s.desc,t", v_colnames[c]);
        assert_int_equal(v_walk(&m, path), total);
    }
    verso_buf_free(&b);
    h_master_kill(&m, SIGTERM);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_replicate_exactly),
        cmocka_unit_test(test_values_rest),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_values");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
