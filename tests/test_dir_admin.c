/*
 * The admin routes of a dir server (rest/admin.c) on a real server in the
 * test process: GET /_databases, PUT /_databases/<name> (empty, a SQLite
 * upload, ?from=), DELETE (409 while a live slave follows, ?force=true);
 * non-SQLite uploads and hostile names refused with nothing written inside
 * or outside DIR; tokens scoped to databases.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rest_common.h"
#include "verso/sync.h"

#define SQLITE_CT "Content-Type: application/vnd.sqlite3"

typedef struct world {
    char root[512]; /* a temporary directory: DIR's parent */
    char dir[600];  /* root/dir */
    verso_rest *srv;
    char base[64];
} world;

static world W;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static void make_db(const char *path, const char *name, int rows)
{
    verso_db *db = rc_open(path);

    for (int i = 0; i < rows; i++) {
        rc_item it = {.name = (char *)name, .qty = i};
        assert_int_equal(verso_record_insert(db, &rc_item_def, &it), 0);
    }
    verso_db_close(db);
}

static void start_server(const char *config)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    o.port = VERSO_REST_PORT_ANY;
    o.db_dir = W.dir;
    o.config_path = config;
    if (verso_rest_start(&W.srv, NULL, &o, why, sizeof(why)) != 0)
        fail_msg("start: %s", why);
    snprintf(W.base, sizeof(W.base), "http://127.0.0.1:%d", verso_rest_port(W.srv));
}

static int setup(void **state)
{
    const char *tmp = getenv("VERSO_TEST_TMP");
    char path[700];

    (void)state;
    memset(&W, 0, sizeof(W));
    snprintf(W.root, sizeof(W.root), "%s/diradmin_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(W.root));
    snprintf(W.dir, sizeof(W.dir), "%s/dir", W.root);
    assert_int_equal(mkdir(W.dir, 0700), 0);
    for (const char *const *n = (const char *const[]){"a", "b", "c", NULL}; *n; n++) {
        snprintf(path, sizeof(path), "%s/%s.db", W.dir, *n);
        make_db(path, *n, 2);
    }
    start_server(NULL);
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int teardown(void **state)
{
    (void)state;
    verso_rest_stop(W.srv);
    nftw(W.root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static long req(rt_resp *r, const char *method, const char *path, const void *body, size_t n,
                const char *const *headers)
{
    char url[8192];

    snprintf(url, sizeof(url), "%s%s", W.base, path);
    rt_request(r, method, url, body, n, headers);
    return r->status;
}

static long status_h(const char *method, const char *path, const char *token)
{
    char auth[128];
    const char *h[] = {auth, NULL};
    rt_resp r;
    long st;

    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    st = req(&r, method, path, NULL, 0, token ? h : NULL);
    rt_resp_free(&r);
    return st;
}

static long status(const char *method, const char *path)
{
    return status_h(method, path, NULL);
}

static cJSON *get_json(const char *path, long want, const char *token)
{
    char auth[128];
    const char *h[] = {auth, NULL};
    rt_resp r;
    cJSON *j;

    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    if (req(&r, "GET", path, NULL, 0, token ? h : NULL) != want)
        fail_msg("GET %s: %ld, want %ld: %s", path, r.status, want, r.body);
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    rt_resp_free(&r);
    return j;
}

/* The names in GET /_databases, comma-separated. */
static void names_listed(char *out, size_t n, const char *token)
{
    cJSON *j = get_json("/_databases", 200, token), *e;

    out[0] = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "databases")) snprintf(
        out + strlen(out), n - strlen(out), "%s,", cJSON_GetObjectItem(e, "name")->valuestring);
    cJSON_Delete(j);
}

/* "name size" of each entry of dir, sorted (mtime too for files). */
static void listing(char *out, size_t n, const char *dir)
{
    struct dirent **list = NULL;
    int k = scandir(dir, &list, NULL, alphasort);
    char p[1200];

    out[0] = 0;
    for (int i = 0; i < k; i++) {
        struct stat st = {0};
        snprintf(p, sizeof(p), "%s/%s", dir, list[i]->d_name);
        lstat(p, &st);
        if (strcmp(list[i]->d_name, "..") && !strstr(list[i]->d_name, "-shm") &&
            !strstr(list[i]->d_name, "-wal"))
            snprintf(out + strlen(out), n - strlen(out), "%s:%lld:%lld,", list[i]->d_name,
                     S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size,
                     S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_mtime);
        free(list[i]);
    }
    free(list);
}

typedef struct snap {
    char dir[4096], root[4096];
} snap;

static void take(snap *s)
{
    listing(s->dir, sizeof(s->dir), W.dir);
    listing(s->root, sizeof(s->root), W.root);
}

static void same(const snap *a, const char *what)
{
    snap b;

    take(&b);
    if (strcmp(a->dir, b.dir) || strcmp(a->root, b.root))
        fail_msg("%s changed DIR or its parent:\nbefore %s | %s\nafter  %s | %s", what, a->dir,
                 a->root, b.dir, b.root);
}

static size_t read_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    assert_int_equal(fread(*out, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return (size_t)n;
}

static bool in_dir(const char *file)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", W.dir, file);
    return access(p, F_OK) == 0;
}

/* ---- GET and PUT ---- */

static void test_list_and_create_empty(void **state)
{
    char names[256], loc[128];
    rt_resp r;
    cJSON *j, *e;

    (void)state;
    names_listed(names, sizeof(names), NULL);
    assert_string_equal(names, "a,b,c,");
    assert_int_equal(req(&r, "PUT", "/_databases/t1", NULL, 0, NULL), 201);
    j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "t1");
    assert_int_equal(cJSON_GetObjectItem(j, "head")->valueint, 0);
    assert_int_equal(strlen(cJSON_GetObjectItem(j, "identity")->valuestring), 36);
    assert_string_equal(rt_header(&r, "location", loc, sizeof(loc)), "/db/t1/");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_true(in_dir("t1.db"));
    names_listed(names, sizeof(names), NULL);
    assert_string_equal(names, "a,b,c,t1,");
    j = get_json("/_databases", 200, NULL);
    e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "databases"), 0);
    assert_string_equal(cJSON_GetObjectItem(e, "name")->valuestring, "a");
    assert_true(cJSON_GetObjectItem(e, "size")->valuedouble > 0);
    assert_int_equal(cJSON_GetObjectItem(e, "head")->valueint, 2);
    assert_int_equal(strlen(cJSON_GetObjectItem(e, "identity")->valuestring), 36);
    assert_int_equal(cJSON_GetObjectItem(e, "followers")->valueint, 0);
    cJSON_Delete(j);
    j = get_json("/_databases/t1", 200, NULL);
    assert_int_equal(cJSON_GetObjectItem(j, "head")->valueint, 0);
    cJSON_Delete(j);
    assert_int_equal(status("GET", "/_databases/nope"), 404);
    assert_int_equal(status("GET", "/db/t1/_info"), 200);
    assert_int_equal(status("PUT", "/_databases/t1"), 409);
    assert_int_equal(status("PUT", "/_databases/a"), 409);
    /* a file in DIR that is no database is listed, with what is unknown null */
    {
        char p[700];
        FILE *f;
        snprintf(p, sizeof(p), "%s/broken.db", W.dir);
        f = fopen(p, "w");
        fputs("not a database", f);
        fclose(f);
        j = get_json("/_databases/broken", 200, NULL);
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "head")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "identity")));
        assert_int_equal(cJSON_GetObjectItem(j, "size")->valueint, 14);
        cJSON_Delete(j);
        names_listed(names, sizeof(names), NULL);
        assert_string_equal(names, "a,b,broken,c,t1,");
    }
    assert_int_equal(status("POST", "/_databases"), 405);
    assert_int_equal(status("POST", "/_databases/x"), 405);
    assert_false(in_dir("x.db"));
}

static long put_file(rt_resp *r, const char *name, const void *body, size_t n, const char *ct)
{
    char path[128], hdr[128];
    const char *h[] = {hdr, NULL};

    snprintf(path, sizeof(path), "/_databases/%s", name);
    snprintf(hdr, sizeof(hdr), "Content-Type: %s", ct);
    return req(r, "PUT", path, body, n, h);
}

static void test_adopt_upload(void **state)
{
    char src[700], *bytes, id0[64];
    size_t n;
    rt_resp r;
    cJSON *j;
    verso_db *db;

    (void)state;
    snprintf(src, sizeof(src), "%s/upload.db", W.root);
    make_db(src, "uploaded", 5);
    db = rc_open(src);
    snprintf(id0, sizeof(id0), "%s", verso_db_identity(db));
    verso_db_close(db);
    n = read_file(src, &bytes);
    assert_int_equal(put_file(&r, "up", bytes, n, "application/vnd.sqlite3"), 201);
    j = cJSON_Parse(r.body);
    assert_int_equal(cJSON_GetObjectItem(j, "head")->valueint, 5);
    assert_string_not_equal(cJSON_GetObjectItem(j, "identity")->valuestring, id0);
    cJSON_Delete(j);
    rt_resp_free(&r);
    j = get_json("/db/up/items", 200, NULL);
    assert_int_equal(cJSON_GetArraySize(j), 5);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "name")->valuestring,
                        "uploaded");
    cJSON_Delete(j);
    assert_int_equal(status("POST", "/db/up/items") / 100, 4); /* no body: but the route is there */
    /* the same upload again: the name is taken */
    assert_int_equal(put_file(&r, "up", bytes, n, "application/vnd.sqlite3"), 409);
    rt_resp_free(&r);
    free(bytes);
    /* a SQLite file without verso's tables becomes a verso database */
    snprintf(src, sizeof(src), "%s/plain.db", W.root);
    assert_int_equal(orm_sqlite_shell(src,
                                      "CREATE TABLE notes(id INTEGER PRIMARY KEY, t); "
                                      "INSERT INTO notes(t) VALUES ('x');",
                                      NULL, 0),
                     0);
    n = read_file(src, &bytes);
    assert_int_equal(put_file(&r, "plain", bytes, n, "Application/Vnd.Sqlite3; x=1"), 201);
    rt_resp_free(&r);
    free(bytes);
    j = get_json("/db/plain/_info", 200, NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tables")), 0);
    cJSON_Delete(j);
}

static void corrupt_file(const char *path)
{
    char sql[600];

    snprintf(sql, sizeof(sql),
             "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
             " INSERT INTO t(v) SELECT 'v' || i FROM n;"
             "PRAGMA writable_schema = ON;"
             "UPDATE sqlite_master SET sql = 'CREATE INDEX t_v ON t(id)' WHERE name = 't_v';");
    assert_int_equal(orm_sqlite_shell(path, sql, NULL, 0), 0);
}

static void test_adopt_refused(void **state)
{
    char src[700], *good, *bad;
    size_t ngood, nbad;
    snap before;
    rt_resp r;

    (void)state;
    snprintf(src, sizeof(src), "%s/good.db", W.root);
    make_db(src, "g", 3);
    ngood = read_file(src, &good);
    snprintf(src, sizeof(src), "%s/corrupt.db", W.root);
    corrupt_file(src);
    nbad = read_file(src, &bad);
    take(&before);
    static const char text[] = "this is not a database\n";
    assert_int_equal(put_file(&r, "x", text, sizeof(text) - 1, "application/vnd.sqlite3"), 400);
    assert_non_null(strstr(r.body, "is not a SQLite database"));
    assert_null(strstr(r.body, W.root)); /* no server path in the answer */
    rt_resp_free(&r);
    assert_int_equal(put_file(&r, "x", good, 50, "application/vnd.sqlite3"), 400);
    rt_resp_free(&r);
    assert_int_equal(put_file(&r, "x", good, ngood - 10, "application/vnd.sqlite3"), 400);
    rt_resp_free(&r);
    assert_int_equal(put_file(&r, "x", bad, nbad, "application/vnd.sqlite3"), 400);
    assert_non_null(strstr(r.body, "integrity_check"));
    rt_resp_free(&r);
    /* a SQLite file announced with no bytes is an empty upload, not "create" */
    assert_int_equal(put_file(&r, "x", "", 0, "application/vnd.sqlite3"), 400);
    assert_non_null(strstr(r.body, "it is empty (0 bytes)"));
    rt_resp_free(&r);
    /* a SQLite body with another type: 415, saying what is accepted */
    assert_int_equal(put_file(&r, "x", good, ngood, "application/json"), 415);
    assert_non_null(strstr(r.body, "application/vnd.sqlite3"));
    rt_resp_free(&r);
    assert_int_equal(put_file(&r, "x", good, ngood, "application/octet-stream"), 415);
    rt_resp_free(&r);
    same(&before, "refused uploads");
    assert_int_equal(status("GET", "/db/x/items"), 404);
    free(good);
    free(bad);
}

static void test_from(void **state)
{
    char hdr[] = SQLITE_CT;
    const char *h[] = {hdr, NULL};
    snap before;
    rt_resp r;
    cJSON *j;

    (void)state;
    assert_int_equal(status("PUT", "/_databases/tenant?from=a"), 201);
    j = get_json("/db/tenant/items", 200, NULL);
    assert_int_equal(cJSON_GetArraySize(j), 0);
    cJSON_Delete(j);
    j = get_json("/db/tenant/_info", 200, NULL);
    assert_int_equal(cJSON_GetObjectItem(j, "head")->valueint, 0);
    {
        char *t = cJSON_PrintUnformatted(j);
        assert_non_null(strstr(t, "\"items\""));
        free(t);
    }
    cJSON_Delete(j);
    assert_int_equal(status("POST", "/db/tenant/items") / 100, 4);
    j = get_json("/db/a/items", 200, NULL); /* the template keeps its rows */
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    take(&before);
    assert_int_equal(status("PUT", "/_databases/t2?from=nope"), 404);
    assert_int_equal(status("PUT", "/_databases/t2?from=%2e%2e"), 400);
    assert_int_equal(status("PUT", "/_databases/t2?from=a%2fb"), 400);
    assert_int_equal(status("PUT", "/_databases/tenant?from=a"), 409);
    assert_int_equal(req(&r, "PUT", "/_databases/t2?from=a", "x", 1, h), 400);
    rt_resp_free(&r);
    same(&before, "refused ?from=");
}

/* ---- DELETE ---- */

static int followers_of(const char *name)
{
    char path[128];
    cJSON *j;
    int n;

    snprintf(path, sizeof(path), "/_databases/%s", name);
    j = get_json(path, 200, NULL);
    n = cJSON_GetObjectItem(j, "followers")->valueint;
    cJSON_Delete(j);
    return n;
}

static void wait_followers(const char *name, int want)
{
    int64_t deadline = now_ms() + 20000;

    while (followers_of(name) != want) {
        if (now_ms() > deadline)
            fail_msg("%s: %d followers, want %d", name, followers_of(name), want);
        sleep_ms(20);
    }
}

static void test_delete(void **state)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    char url[128], spath[700], why[256] = "";
    verso_slave *s = NULL;
    rt_resp r;

    (void)state;
    assert_int_equal(status("DELETE", "/_databases/c"), 204);
    assert_false(in_dir("c.db"));
    assert_int_equal(status("GET", "/db/c/items"), 404);
    assert_int_equal(status("DELETE", "/_databases/c"), 404);
    assert_int_equal(status("DELETE", "/_databases/a?force=maybe"), 400);
    /* a live slave follows a */
    snprintf(spath, sizeof(spath), "%s/slave-a.db", W.root);
    snprintf(url, sizeof(url), "%s/db/a", W.base);
    o.heartbeat_ms = 1000;
    o.retry_min_ms = 50;
    o.retry_max_ms = 500;
    assert_int_equal(verso_slave_start(&s, spath, url, &o, why, sizeof(why)), 0);
    wait_followers("a", 1);
    assert_int_equal(req(&r, "DELETE", "/_databases/a", NULL, 0, NULL), 409);
    assert_non_null(strstr(r.body, "1 slave follows it; ?force=true deletes anyway"));
    rt_resp_free(&r);
    assert_true(in_dir("a.db"));
    assert_int_equal(status("DELETE", "/_databases/a?force=false"), 409);
    assert_int_equal(status("DELETE", "/_databases/a?force=true"), 204);
    assert_false(in_dir("a.db"));
    assert_false(in_dir("a.db-wal"));
    assert_int_equal(status("GET", "/db/a/items"), 404);
    verso_slave_stop(s);
    /* the name can be used again: a new database */
    assert_int_equal(status("PUT", "/_databases/a"), 201);
    assert_int_equal(followers_of("a"), 0);
}

/* ---- hostile names ---- */

/* Names libwebsockets takes apart before any route sees them: dot segments
 * (normalised away), slashes (another path), NUL (the connection is
 * dropped), a CR or LF (libwebsockets 4.1.6 cuts the path there:
 * "/_databases/a%0ab" arrives as "/_databases/a", a database that exists).
 * Every other hostile name must reach the name rule: 400. */
static bool may_vanish(const char *name)
{
    static const char *const k[] = {
        "..",  "%2e%2e", "%2E%2E", ".",    "%2e", "a%2fb", "..%2f..%2fx", "%2e%2e%2fsecret",
        "a/b", "a%00b",  "%00",    "a%0a", "a%0d"};

    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
        if (!strcmp(k[i], name))
            return true;
    return false;
}

static void test_hostile_names(void **state)
{
    static const char *const names[] = {
        "..",
        "%2e%2e",
        "%2E%2E",
        ".",
        "%2e",
        "a%2fb",
        "a%00b",
        "%00",
        "a%5cb",
        "%EF%BD%81",
        "%D0%B0",
        "a.",
        "a%20",
        "a.db",
        "-a",
        "_a",
        "a%2e",
        "..%2f..%2fx",
        "%252e%252e",
        "a%0a",
        "a%0d",
        "con%2e",
        "%2e%2e%2fsecret",
        "a/b",
    };
    static const char *const methods[] = {"GET", "PUT", "DELETE"};
    char path[6000], long_name[5001], hdr[] = SQLITE_CT, *good;
    const char *h[] = {hdr, NULL};
    size_t ngood;
    snap before;
    rt_resp r;
    long st;

    (void)state;
    snprintf(path, sizeof(path), "%s/good.db", W.root);
    make_db(path, "g", 1);
    ngood = read_file(path, &good);
    take(&before);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (size_t m = 0; m < 3; m++) {
            if (m == 2 && (strstr(names[i], "%0a") || strstr(names[i], "%0d")))
                continue; /* would delete "a": see test_crlf_cut */
            snprintf(path, sizeof(path), "/_databases/%s", names[i]);
            st = status(methods[m], path);
            if (getenv("VERBOSE"))
                printf("%s %s: %ld\n", methods[m], path, st);
            /* 400 for a name that fails the rule; a name libwebsockets
             * takes apart may answer anything: DIR is checked below */
            if (st != 400 && !may_vanish(names[i]))
                fail_msg("%s %s: %ld, want 400", methods[m], path, st);
        }
        snprintf(path, sizeof(path), "/_databases/%s", names[i]);
        req(&r, "PUT", path, good, ngood, h);
        assert_true(r.status == 400 || may_vanish(names[i]));
        rt_resp_free(&r);
        if (strstr(names[i], "%0a") || strstr(names[i], "%0d")) {
            same(&before, names[i]);
            continue; /* ?from=a%0a is ?from=a: see test_crlf_cut */
        }
        snprintf(path, sizeof(path), "/_databases/ok?from=%s", names[i]);
        st = status("PUT", path);
        if (st != 400 && !(st == 0 && strstr(names[i], "%00")))
            fail_msg("PUT %s: %ld", path, st);
        same(&before, names[i]);
    }
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[5000] = 0;
    snprintf(path, sizeof(path), "/_databases/%.65s", long_name);
    assert_int_equal(status("PUT", path), 400);
    snprintf(path, sizeof(path), "/_databases/%s", long_name);
    st = status("PUT", path);
    assert_true(st == 400 || st == 414);
    same(&before, "long names");
    free(good);
}

/* libwebsockets 4.1.6 cuts a request path at a percent-encoded CR or LF
 * and drops the rest: the request names the prefix. This pins that
 * behaviour (and that nothing leaves DIR): if libwebsockets changes, the
 * names with CR or LF get the 400 of the name rule instead. */
static void test_crlf_cut(void **state)
{
    char outside[700];
    long st;

    (void)state;
    snprintf(outside, sizeof(outside), "%s/x.db", W.root);
    st = status("PUT", "/_databases/zz%0a..%2f..%2fx");
    assert_true(st == 201 || st == 400);
    assert_true(st == 400 || in_dir("zz.db"));
    assert_int_equal(access(outside, F_OK), -1);
    st = status("PUT", "/_databases/yy%0d%0aX-Injected:%201");
    assert_true(st == 201 || st == 400);
    assert_int_equal(status("GET", "/_databases/a%0aignored"), 200);
    st = status("PUT", "/_databases/ok?from=a%0a..%2fx");
    assert_true(st == 201 || st == 400);
    assert_int_equal(access(outside, F_OK), -1);
}

/* ---- tokens ---- */

static void token_hash(char out[65], const char *token)
{
    char cmd[256];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum", token);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 65, p));
    pclose(p);
}

static void restart_with_tokens(void)
{
    static const struct {
        const char *token, *rest;
    } lines[] = {
        {"root", "admin"},
        {"tenant-x", "admin db=x"},
        {"read-a", "read db=a"},
        {"rep-b", "replicate db=b"},
    };
    char config[700], h[65];
    FILE *f;

    snprintf(config, sizeof(config), "%s/verso.conf", W.root);
    f = fopen(config, "w");
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        token_hash(h, lines[i].token);
        fprintf(f, "token %s %s\n", h, lines[i].rest);
    }
    fclose(f);
    verso_rest_stop(W.srv);
    start_server(config);
}

/* The status line's code of a WebSocket upgrade to path with token. */
static int upgrade_status(const char *path, const char *proto, const char *token)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)verso_rest_port(W.srv))};
    struct timeval tv = {5, 0};
    char rq[1024], ans[256] = "";
    int fd = socket(AF_INET, SOCK_STREAM, 0), n, got = 0;

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = snprintf(rq, sizeof(rq),
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
                 "Authorization: Bearer %s\r\n\r\n",
                 path, proto, token);
    assert_int_equal(send(fd, rq, (size_t)n, MSG_NOSIGNAL), n);
    while (got < (int)sizeof(ans) - 1 && !strstr(ans, "\r\n") &&
           (n = (int)recv(fd, ans + got, sizeof(ans) - 1 - got, 0)) > 0)
        ans[got += n] = 0;
    close(fd);
    if (getenv("VERBOSE"))
        printf("upgrade %s: [%s]\n", path, ans);
    return strncmp(ans, "HTTP/1.", 7) ? 0 : atoi(ans + 9);
}

static void test_tokens(void **state)
{
    char names[128];

    (void)state;
    restart_with_tokens();
    assert_int_equal(status_h("PUT", "/_databases/x", "root"), 201);
    assert_int_equal(status("GET", "/_databases"), 401);
    assert_int_equal(status_h("GET", "/_databases", "nobody"), 401);
    /* an admin scoped to x: its database's routes, none of the server's */
    assert_int_equal(status_h("PUT", "/_databases/y", "tenant-x"), 403);
    assert_int_equal(status_h("DELETE", "/_databases/x", "tenant-x"), 403);
    assert_int_equal(status_h("PUT", "/_databases/x", "tenant-x"), 403);
    assert_int_equal(status_h("GET", "/_status", "tenant-x"), 403);
    assert_int_equal(status_h("GET", "/_metrics", "tenant-x"), 403);
    assert_int_equal(status_h("GET", "/db/x/_status", "tenant-x"), 200);
    assert_int_equal(status_h("GET", "/db/a/_status", "tenant-x"), 403);
    assert_int_equal(status_h("GET", "/db/a/items", "tenant-x"), 403);
    names_listed(names, sizeof(names), "tenant-x"); /* it may replicate x: it sees x */
    assert_string_equal(names, "x,");
    assert_false(in_dir("y.db"));
    /* read scoped to a */
    assert_int_equal(status_h("GET", "/db/a/items", "read-a"), 200);
    assert_int_equal(status_h("GET", "/db/a/items/1", "read-a"), 200);
    assert_int_equal(status_h("GET", "/db/b/items", "read-a"), 403);
    assert_int_equal(status_h("GET", "/db/b/items/1", "read-a"), 403);
    assert_int_equal(status_h("DELETE", "/db/a/items/1", "read-a"), 403);
    assert_int_equal(status_h("GET", "/db/a/_changes", "read-a"), 403);
    assert_int_equal(status_h("GET", "/_databases", "read-a"), 403);
    /* replicate scoped to b: the list shows b only */
    names_listed(names, sizeof(names), "rep-b");
    assert_string_equal(names, "b,");
    assert_int_equal(status_h("GET", "/_databases/b", "rep-b"), 200);
    assert_int_equal(status_h("GET", "/_databases/a", "rep-b"), 403);
    assert_int_equal(status_h("GET", "/db/b/_changes", "rep-b"), 200);
    assert_int_equal(status_h("GET", "/db/a/_changes", "rep-b"), 403);
    assert_int_equal(status_h("DELETE", "/_databases/b", "rep-b"), 403);
    /* WebSocket upgrades: the database's grants decide /db/<name>/_sync;
     * the events channel takes a token that may replicate some database */
    assert_int_equal(upgrade_status("/db/b/_sync", "verso-sync.1", "rep-b"), 101);
    assert_int_equal(upgrade_status("/db/a/_sync", "verso-sync.1", "rep-b"), 403);
    assert_int_equal(upgrade_status("/db/a/_sync", "verso-sync.1", "read-a"), 403);
    assert_int_equal(upgrade_status("/_databases", "verso-databases.1", "rep-b"), 101);
    assert_int_equal(upgrade_status("/_databases", "verso-databases.1", "read-a"), 403);
    /* the server's admin sees and does everything */
    names_listed(names, sizeof(names), "root");
    assert_string_equal(names, "a,b,c,x,");
    assert_int_equal(status_h("DELETE", "/_databases/x", "root"), 204);
}

/* A live slave with a token scoped to its database gets in; to another, not. */
static void test_scoped_slave(void **state)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    char url[128], spath[700], why[256] = "";
    verso_slave *s = NULL;
    int64_t deadline;

    (void)state;
    restart_with_tokens();
    snprintf(spath, sizeof(spath), "%s/slave-b.db", W.root);
    snprintf(url, sizeof(url), "%s/db/b", W.base);
    o.client.token = "rep-b";
    o.heartbeat_ms = 1000;
    o.retry_min_ms = 50;
    o.retry_max_ms = 500;
    assert_int_equal(verso_slave_start(&s, spath, url, &o, why, sizeof(why)), 0);
    deadline = now_ms() + 20000;
    do {
        assert_int_equal(verso_slave_state_get(&st, s), 0);
        if (now_ms() > deadline)
            fail_msg("slave of b with a token for b: cursor %lld, '%s'", (long long)st.cursor,
                     st.last_error);
        sleep_ms(20);
    } while (st.cursor < 2);
    verso_slave_stop(s);
    snprintf(spath, sizeof(spath), "%s/slave-a.db", W.root);
    snprintf(url, sizeof(url), "%s/db/a", W.base);
    assert_int_equal(verso_slave_start(&s, spath, url, &o, why, sizeof(why)), 0);
    deadline = now_ms() + 20000;
    do {
        assert_int_equal(verso_slave_state_get(&st, s), 0);
        assert_int_equal(st.cursor, 0);
        if (now_ms() > deadline)
            fail_msg("slave of a with a token for b: no refusal seen");
        sleep_ms(20);
    } while (!strstr(st.last_error, "403"));
    verso_slave_stop(s);
}

/* ---- the examples of docs/databases-admin.md ---- */

static char *read_doc(void)
{
    const char *src = getenv("VERSO_SOURCE_DIR");
    char path[1024], *text;

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/docs/databases-admin.md", src);
    read_file(path, &text);
    return text;
}

/* Runs one example with sh -e; its output (stdout and stderr) into out. */
static void run_example(const char *block, size_t n, char *out, size_t outlen)
{
    char script[700], cmd[2000];
    const char *bin = getenv("VERSO_BIN");
    size_t got = 0;
    FILE *f;

    snprintf(script, sizeof(script), "%s/example.sh", W.root);
    f = fopen(script, "w");
    assert_non_null(f);
    fwrite(block, 1, n, f);
    fclose(f);
    assert_non_null(bin);
    snprintf(cmd, sizeof(cmd), "PATH=\"$(dirname '%s'):$PATH\" VERSO_URL='%s' sh -e '%s' 2>&1", bin,
             W.base, script);
    f = popen(cmd, "r");
    assert_non_null(f);
    got = fread(out, 1, outlen - 1, f);
    out[got] = 0;
    if (pclose(f) != 0)
        fail_msg("example failed:\n%.*s\noutput:\n%s", (int)n, block, out);
}

/* Whether the pieces of want between "…" appear in out, in order. */
static bool matches(const char *out, const char *want, size_t n)
{
    static const char ellipsis[] = "\xe2\x80\xa6";
    const char *at = out, *end = want + n;

    while (want < end) {
        const char *cut = strstr(want, ellipsis);
        size_t len = (cut && cut < end ? cut : end) - want;
        char piece[1024];
        snprintf(piece, sizeof(piece), "%.*s", (int)len, want);
        if (!(at = strstr(at, piece)))
            return false;
        at += len;
        want += len + (cut && cut < end ? sizeof(ellipsis) - 1 : 0);
    }
    return true;
}

/* The text block right after an example, if any: its lines must show. */
static bool check_text(const char *after, const char *out, int example)
{
    const char *text = after + strspn(after, "\n"), *end;

    if (strncmp(text, "```text\n", 8))
        return false;
    text += 8;
    end = strstr(text, "\n```");
    assert_non_null(end);
    while (text < end) {
        const char *nl = memchr(text, '\n', (size_t)(end - text + 1));
        size_t len = (size_t)((nl ? nl : end) - text);
        if (!matches(out, text, len))
            fail_msg("example %d: output\n%s\nlacks\n%.*s", example, out, (int)len, text);
        text += len + 1;
    }
    return true;
}

static void test_doc_examples(void **state)
{
    char *doc = read_doc(), out[8192];
    const char *p = doc, *start, *end;
    int blocks = 0, checked = 0;

    (void)state;
    while ((p = strstr(p, "\n```sh\n"))) {
        start = p + 7;
        end = strstr(start, "\n```\n");
        assert_non_null(end);
        run_example(start, (size_t)(end - start + 1), out, sizeof(out));
        blocks++;
        p = end + 4;
        checked += check_text(p, out, blocks);
    }
    assert_true(blocks >= 7);
    assert_true(checked >= 7);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_and_create_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scoped_slave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doc_examples, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
