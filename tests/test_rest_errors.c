/* Error answers that say what to do: each message's words, hostile input
 * quoted back bounded and as valid UTF-8, nothing written by a refused
 * request, config errors as FILE:LINE: reason (verso_rest_start and
 * `verso serve --config`), and the docs/rest.md examples of the "Error
 * messages" and "CORS" sections (```sh errors blocks) run and answer what
 * the text says. */
#include <pthread.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "rest_common.h"

static rc_env g_env;
static char g_read_hdr[128], g_admin_hdr[128];

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *s = NULL;

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(s));
    sqlite3_close(s);
}

static int count_rows(const char *path, const char *table)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    char sql[128];
    int n = -1;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return n;
}

static void token_hash(char out[65], const char *token)
{
    char cmd[256];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum", token);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 65, p));
    pclose(p);
    assert_int_equal(strlen(out), 64);
}

static int setup(void **state)
{
    (void)state;
    rc_start(&g_env, "rest_errors");
    rc_seed(g_env.db, 3);
    exec_sql(g_env.path, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    snprintf(g_read_hdr, sizeof(g_read_hdr), "Authorization: Bearer reader-secret");
    snprintf(g_admin_hdr, sizeof(g_admin_hdr), "Authorization: Bearer admin-secret");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

/* The message of an error answer, checked: valid UTF-8, bounded. Borrowed from j. */
static const char *message_of(cJSON *j)
{
    cJSON *e = cJSON_GetObjectItem(j, "error"), *m = e ? cJSON_GetObjectItem(e, "message") : NULL;

    assert_true(cJSON_IsString(m));
    assert_true(strlen(m->valuestring) < 400);
    return m->valuestring;
}

/* Sends a request to env e, expects status st, returns the error message (malloc'd). */
static char *error_of(const rc_env *e, const char *method, const char *path, const char *body,
                      const char *const *headers, long st)
{
    rt_resp r;
    cJSON *j;
    char *msg;

    rc_call(&r, e, method, path, body, headers);
    if (r.status != st)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, st);
    j = rc_json(&r);
    msg = strdup(message_of(j));
    cJSON_Delete(j);
    rt_resp_free(&r);
    return msg;
}

static void expect_in(const char *msg, const char *part)
{
    if (!strstr(msg, part))
        fail_msg("\"%s\" not in \"%s\"", part, msg);
}

static void test_unknown_table(void **state)
{
    char *before = rc_fingerprint(g_env.db), *after, *m, want[256];
    const char *file = strrchr(g_env.path, '/') + 1;

    (void)state;
    m = error_of(&g_env, "GET", "/nosuch", NULL, NULL, 404);
    assert_string_equal(m, "no table \"nosuch\": GET /_info lists the tables this server serves");
    free(m);
    /* in the file but untracked: the verso track hint, with the file's name only */
    m = error_of(&g_env, "GET", "/notes?id=eq.1", NULL, NULL, 404);
    snprintf(want, sizeof(want),
             "table \"notes\" exists in the database file but is not tracked: run \"verso track "
             "%s notes\" to serve it",
             file);
    assert_string_equal(m, want);
    assert_null(strstr(m, g_env.path)); /* never the directories */
    free(m);
    m = error_of(&g_env, "POST", "/notes", "{\"body\":\"x\"}", NULL, 404);
    expect_in(m, "verso track");
    free(m);
    m = error_of(&g_env, "POST", "/_batch",
                 "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"a\"}},"
                 "{\"op\":\"insert\",\"table\":\"notes\",\"row\":{\"body\":\"x\"}}]",
                 NULL, 404);
    expect_in(m, "operation 1: table \"notes\" exists in the database file but is not tracked");
    free(m);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    assert_int_equal(count_rows(g_env.path, "notes"), 0);
    verso_free(before);
    verso_free(after);
}

static void test_filters(void **state)
{
    char *m;

    (void)state;
    m = error_of(&g_env, "GET", "/items?qty=foo.1", NULL, NULL, 400);
    assert_string_equal(m,
                        "unknown filter operator \"foo\" for column qty (operators: eq, neq, gt, "
                        "gte, lt, lte, like, in, is)");
    free(m);
    m = error_of(&g_env, "GET", "/items?qty=5", NULL, NULL, 400);
    assert_string_equal(m, "a filter is COLUMN=OP.VALUE, e.g. qty=eq.VALUE (operators: eq, neq, "
                           "gt, gte, lt, lte, like, in, is)");
    free(m);
    m = error_of(&g_env, "GET", "/items?qty=eq.abc", NULL, NULL, 400);
    assert_string_equal(
        m, "bad value \"abc\" for column qty: expected an integer (int64, decimal digits, e.g. 42 "
           "or -7)");
    free(m);
    m = error_of(&g_env, "GET", "/items?price=gt.cheap", NULL, NULL, 400);
    expect_in(m, "bad value \"cheap\" for column price: expected a finite decimal number");
    free(m);
    m = error_of(&g_env, "GET", "/items?active=eq.yes", NULL, NULL, 400);
    expect_in(m, "column active: expected a boolean: true, false, 1 or 0");
    free(m);
    m = error_of(&g_env, "GET", "/items?qty=in.(1,x)", NULL, NULL, 400);
    expect_in(m, "bad value \"x\" in the in list for column qty: expected an integer");
    free(m);
    m = error_of(&g_env, "GET", "/items?qty=like.1*", NULL, NULL, 400);
    assert_string_equal(m, "like compares text: column qty is int64 (use eq, lt, gt, in)");
    free(m);
    m = error_of(&g_env, "GET", "/items?sku=is.nothing", NULL, NULL, 400);
    assert_string_equal(m, "bad value \"nothing\" for is on column sku: write sku=is.null or "
                           "sku=is.notnull");
    free(m);
}

static void test_unknown_columns(void **state)
{
    static const char cols[] = "table items has id, version, name, price, qty, active, sku";
    char *before = rc_fingerprint(g_env.db), *after, *m, want[256];

    (void)state;
    snprintf(want, sizeof(want), "unknown column \"colour\": %s", cols);
    m = error_of(&g_env, "GET", "/items?colour=eq.red", NULL, NULL, 400);
    assert_string_equal(m, want);
    free(m);
    snprintf(want, sizeof(want), "unknown column \"colour\" in order=: %s", cols);
    m = error_of(&g_env, "GET", "/items?order=colour.desc", NULL, NULL, 400);
    assert_string_equal(m, want);
    free(m);
    snprintf(want, sizeof(want), "unknown column \"colour\" in select=: %s", cols);
    m = error_of(&g_env, "GET", "/items?select=id,colour", NULL, NULL, 400);
    assert_string_equal(m, want);
    free(m);
    snprintf(want, sizeof(want), "unknown column \"colour\": %s", cols);
    m = error_of(&g_env, "POST", "/items", "{\"name\":\"x\",\"colour\":\"red\"}", NULL, 400);
    assert_string_equal(m, want);
    free(m);
    m = error_of(&g_env, "PATCH", "/items/1", "{\"colour\":\"red\"}", NULL, 400);
    assert_string_equal(m, want);
    free(m);
    m = error_of(&g_env, "POST", "/items", "{\"name\":\"x\",\"qty\":\"many\"}", NULL, 400);
    expect_in(m, "qty");
    free(m);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
}

/* A table with many long columns: the list is cut, the message stays bounded. */
static void test_column_list_bounded(void **state)
{
    rc_env e;
    char *m;

    (void)state;
    rc_start(&e, "rest_errors_wide");
    exec_sql(e.path, "CREATE TABLE wide(id INTEGER PRIMARY KEY,"
                     " a_rather_long_column_name_number_one TEXT,"
                     " a_rather_long_column_name_number_two TEXT,"
                     " a_rather_long_column_name_number_three TEXT,"
                     " a_rather_long_column_name_number_four TEXT,"
                     " a_rather_long_column_name_number_five TEXT,"
                     " a_rather_long_column_name_number_six TEXT,"
                     " a_rather_long_column_name_number_seven TEXT,"
                     " a_rather_long_column_name_number_eight TEXT)");
    assert_int_equal(verso_db_track(e.db, "wide", NULL), 0);
    m = error_of(&e, "GET", "/wide?zz=eq.1", NULL, NULL, 400);
    expect_in(m, "unknown column \"zz\": table wide has id, a_rather_long_column_name_number_one");
    assert_true(strlen(m) < 300);
    assert_string_equal(m + strlen(m) - 3, "...");
    free(m);
    rc_stop(&e);
}

static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : 3;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n + 1;
    }
    return true;
}

static void expect_nul_refused(const char *method, const char *path)
{
    char *before = rc_fingerprint(g_env.db), *after;
    rt_resp r;

    rc_call(&r, &g_env, method, path, "{\"name\":\"nul\"}", NULL);
    if (r.status) {
        cJSON *j = rc_json(&r);
        assert_true(r.status >= 400 && r.status < 500);
        assert_true(utf8_ok(message_of(j)));
        cJSON_Delete(j);
    }
    rt_resp_free(&r);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    assert_int_equal(rc_status(&g_env, "GET", "/_health", NULL, NULL), 200);
    verso_free(before);
    verso_free(after);
}

static void test_hostile_names(void **state)
{
    char path[4096], body[2048], *m;
    size_t n;

    (void)state;
    /* long: cut, with "..." */
    n = (size_t)snprintf(path, sizeof(path), "/items?");
    memset(path + n, 'a', 1000);
    snprintf(path + n + 1000, sizeof(path) - n - 1000, "=eq.1");
    m = error_of(&g_env, "GET", path, NULL, NULL, 400);
    expect_in(m, "aaaa...\": table items has");
    assert_true(strlen(m) < 200);
    free(m);
    /* quotes and control characters: JSON-escaped or replaced, never raw */
    m = error_of(&g_env, "GET", "/items?a%22b=eq.1", NULL, NULL, 400);
    expect_in(m, "unknown column \"a\"b\"");
    free(m);
    m = error_of(&g_env, "POST", "/items", "{\"a\\\"b\\n\\u0001\":1}", NULL, 400);
    expect_in(m, "unknown column \"a\"b??\"");
    free(m);
    /* invalid UTF-8 and NUL: refused whole, before any name is quoted */
    m = error_of(&g_env, "GET", "/items?%ff%fe=eq.1", NULL, NULL, 400);
    assert_string_equal(m, "the URL is not valid UTF-8 or holds a NUL byte");
    free(m);
    /* %00: libwebsockets 4.1.6 drops the connection unanswered, except where
     * it ends the path (/%00 is /); either way nothing is written and the
     * server keeps answering */
    expect_nul_refused("GET", "/items?na%00me=eq.1");
    expect_nul_refused("GET", "/items?qty=eq.1%002");
    expect_nul_refused("GET", "/it%00ems");
    expect_nul_refused("POST", "/items%00");
    expect_nul_refused("PATCH", "/items/1%00");
    expect_nul_refused("POST", "/%00");
    /* a long value of 4-byte characters is cut on a character boundary */
    n = (size_t)snprintf(path, sizeof(path), "/items?qty=eq.");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(path + n, sizeof(path) - n, "%%F0%%9F%%98%%80");
    m = error_of(&g_env, "GET", path, NULL, NULL, 400);
    assert_true(utf8_ok(m));
    expect_in(m, "\xf0\x9f\x98\x80...\" for column qty");
    free(m);
    /* the same for a body member: 3-byte characters, a 64-byte cut falls inside one */
    n = (size_t)snprintf(body, sizeof(body), "{\"x");
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\xe2\x82\xac");
    snprintf(body + n, sizeof(body) - n, "\":1}");
    m = error_of(&g_env, "POST", "/items", body, NULL, 400);
    assert_true(utf8_ok(m));
    expect_in(m, "unknown column \"x\xe2\x82\xac");
    expect_in(m, "\xe2\x82\xac...\": table items has");
    free(m);
    /* an unknown table's name, long and odd */
    n = (size_t)snprintf(path, sizeof(path), "/");
    for (int i = 0; i < 21; i++)
        n += (size_t)snprintf(path + n, sizeof(path) - n, "%%E2%%82%%AC");
    m = error_of(&g_env, "GET", path, NULL, NULL, 404);
    assert_true(utf8_ok(m));
    expect_in(m, "no table \"\xe2\x82\xac");
    free(m);
}

/* Two clients sending different wrong names: each answer quotes its own. */
typedef struct hammer {
    const char *name;
    int mismatches;
} hammer;

static void *hammer_run(void *arg)
{
    hammer *h = arg;
    char path[128], want[64];

    snprintf(path, sizeof(path), "/items?%s=eq.1", h->name);
    snprintf(want, sizeof(want), "\\\"%s\\\"", h->name);
    for (int i = 0; i < 40; i++) {
        rt_resp r;
        rc_call(&r, &g_env, "GET", path, NULL, NULL);
        if (r.status != 400 || !strstr(r.body, want)) {
            if (!h->mismatches)
                fprintf(stderr, "%s: %ld %s\n", h->name, r.status, r.body ? r.body : "");
            h->mismatches++;
        }
        rt_resp_free(&r);
    }
    return NULL;
}

static void test_messages_are_the_requests_own(void **state)
{
    hammer h[2] = {{"first_wrong", 0}, {"second_wrong", 0}};
    pthread_t t[2];
    rt_resp r;

    (void)state;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(h[0].mismatches, 0);
    assert_int_equal(h[1].mismatches, 0);
    /* a good request after a bad one carries no error */
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/1", NULL, NULL), 200);
    assert_null(strstr(r.body, "error"));
    rt_resp_free(&r);
}

static void start_with_tokens(rc_env *e, const char *tag)
{
    char hr[65], ha[65], text[400], *cfg;
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    token_hash(hr, "reader-secret");
    token_hash(ha, "admin-secret");
    snprintf(text, sizeof(text), "token %s read\ntoken %s admin\n", hr, ha);
    cfg = rc_write_file("rest_errors_tokens.conf", text);
    o.config_path = cfg;
    rc_start_with(e, tag, &o);
    free(cfg);
    rc_seed(e->db, 2);
    exec_sql(e->path, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
}

static void test_auth_messages(void **state)
{
    const char *const reader[] = {g_read_hdr, NULL}, *const admin[] = {g_admin_hdr, NULL};
    const char *const stranger[] = {"Authorization: Bearer who-knows", NULL};
    rc_env e;
    char *before, *after, *m;

    (void)state;
    start_with_tokens(&e, "rest_errors_auth");
    before = rc_fingerprint(e.db);
    m = error_of(&e, "POST", "/items", "{\"name\":\"x\"}", reader, 403);
    assert_string_equal(m, "writing rows needs the role write on table \"items\" (or admin); this "
                           "token has read (every table)");
    free(m);
    m = error_of(&e, "DELETE", "/items/1", NULL, reader, 403);
    expect_in(m, "needs the role write");
    free(m);
    m = error_of(&e, "GET", "/_status", NULL, reader, 403);
    assert_string_equal(m, "GET /_status needs the role admin; this token has read (every table)");
    free(m);
    m = error_of(&e, "GET", "/_changes?tables=items", NULL, reader, 403);
    assert_string_equal(m, "reading the change feed needs the role replicate on table \"items\" "
                           "(or admin); this token has read (every table)");
    free(m);
    m = error_of(&e, "POST", "/_batch", "[{\"op\":\"delete\",\"table\":\"items\",\"id\":1}]",
                 reader, 403);
    expect_in(m, "operation 0: writing rows needs the role write on table \"items\"");
    free(m);
    m = error_of(&e, "GET", "/items", NULL, NULL, 401);
    assert_string_equal(m, "no bearer token was sent: send the header \"Authorization: Bearer "
                           "TOKEN\" with a token this server knows (the config file holds its "
                           "SHA-256)");
    free(m);
    m = error_of(&e, "GET", "/items", NULL, stranger, 401);
    expect_in(m, "the bearer token is not one this server knows");
    free(m);
    /* whether a table exists untracked is told to admins only */
    m = error_of(&e, "GET", "/notes", NULL, reader, 404);
    assert_string_equal(m, "no table \"notes\": GET /_info lists the tables this server serves");
    free(m);
    m = error_of(&e, "GET", "/notes", NULL, admin, 404);
    expect_in(m, "verso track");
    free(m);
    after = rc_fingerprint(e.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
    rc_stop(&e);
}

static int ws_open(verso_ws *ws, void **conn, void *arg)
{
    (void)ws;
    (void)conn;
    (void)arg;
    return 0;
}

/* A WebSocket refused for its role says which role it needs. */
static void test_ws_role_message(void **state)
{
    static const verso_ws_handler h = {
        .path = "/_sync", .subprotocol = "verso-sync.1", .role = "replicate", .on_open = ws_open};
    const char *const up[] = {"Connection: Upgrade",
                              "Upgrade: websocket",
                              "Sec-WebSocket-Version: 13",
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                              "Sec-WebSocket-Protocol: verso-sync.1",
                              g_read_hdr,
                              NULL};
    char hr[65], text[200], *cfg, *m;
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    rc_env e;

    (void)state;
    token_hash(hr, "reader-secret");
    snprintf(text, sizeof(text), "token %s read\n", hr);
    cfg = rc_write_file("rest_errors_ws.conf", text);
    o.config_path = cfg;
    o.ws_handlers = &h;
    o.nws_handlers = 1;
    rc_start_with(&e, "rest_errors_ws", &o);
    free(cfg);
    m = error_of(&e, "GET", "/_sync", NULL, up, 403);
    assert_string_equal(m, "this WebSocket needs the role replicate for every table (or admin)");
    free(m);
    rc_stop(&e);
}

/* verso_rest_start with a config file: why is "PATH:LINE: reason". */
static void expect_config_error(const char *text, int line, const char *reason)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_rest *srv = NULL;
    char why[512] = "", want[512], *cfg = rc_write_file("rest_errors_bad.conf", text);

    o.port = VERSO_REST_PORT_ANY;
    o.db_path = g_env.path;
    o.config_path = cfg;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), VERSO_EINVAL);
    assert_null(srv);
    snprintf(want, sizeof(want), "%s:%d: %s", cfg, line, reason);
    if (strncmp(why, want, strlen(want)))
        fail_msg("got  %s\nwant %s", why, want);
    assert_true(utf8_ok(why));
    free(cfg);
}

static void test_config_errors(void **state)
{
    char h[65], text[256];

    (void)state;
    token_hash(h, "x");
    expect_config_error("# tokens\ntoken my-plain-secret admin\n", 2,
                        "token: the second word must be the SHA-256 of the token, 64 hex digits "
                        "(this looks like a plain token: only its hash is stored); make it with: "
                        "printf %s TOKEN | sha256sum");
    snprintf(text, sizeof(text), "port 8080\ntoken %s reader\n", h);
    expect_config_error(text, 2,
                        "token: unknown role \"reader\" (roles: read, write, replicate, admin)");
    expect_config_error("max-body 10\nmax-bdy 20\n", 2, "unknown setting \"max-bdy\" (settings: ");
    expect_config_error("port eighty\n", 1,
                        "port: \"eighty\" is not a whole number from 0 to 65535");
    expect_config_error("\n\nhost a b\n", 3, "host takes one value, not 2");
    expect_config_error(
        "token\n", 1,
        "a token line is \"token <sha256-hex> <role> [db=<name>] [<table>]\" (1 words)");
    expect_config_error("cors-origin https://app.example.com/\n", 1,
                        "cors-origin: \"https://app.example.com/\" is not an origin");
    /* the plain token itself is never repeated */
    {
        verso_rest_options o = VERSO_REST_OPTIONS_INIT;
        verso_rest *srv = NULL;
        char why[512], *cfg = rc_write_file("rest_errors_secret.conf", "token hunter2 admin\n");
        o.port = VERSO_REST_PORT_ANY;
        o.db_path = g_env.path;
        o.config_path = cfg;
        assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), VERSO_EINVAL);
        assert_null(strstr(why, "hunter2"));
        free(cfg);
    }
}

/* `verso serve --config` prints the same FILE:LINE: reason and exits non-zero. */
static void test_serve_config_error(void **state)
{
    const char *bin = getenv("VERSO_BIN");
    char *cfg = rc_write_file("rest_errors_serve.conf", "port 0\n\ntoken hunter2 admin\n");
    char cmd[2048], out[2048], want[600];
    size_t n;
    FILE *p;
    int status;

    (void)state;
    assert_non_null(bin);
    snprintf(cmd, sizeof(cmd), "timeout 20 '%s' serve '%s' --port 0 --config '%s' 2>&1 </dev/null",
             bin, g_env.path, cfg);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    status = pclose(p);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 0);
    assert_int_not_equal(WEXITSTATUS(status), 124); /* not the timeout */
    snprintf(want, sizeof(want), "%s:3: token: the second word must be the SHA-256", cfg);
    expect_in(out, want);
    expect_in(out, "printf %s TOKEN | sha256sum");
    assert_null(strstr(out, "hunter2"));
    free(cfg);
}

/* ---- docs/rest.md: the ```sh errors blocks ---- */

static char *read_doc(void)
{
    const char *src = getenv("VERSO_SOURCE_DIR");
    char path[1024], chunk[4096];
    verso_buf b = VERSO_BUF_INIT;
    size_t n;
    FILE *f;

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/docs/rest.md", src);
    assert_non_null(f = fopen(path, "r"));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(verso_buf_append(&b, chunk, n), 0);
    fclose(f);
    return verso_buf_detach(&b);
}

static void run_block(const char *block, size_t n, verso_buf *all)
{
    char *script = strndup(block, n), *path = rc_write_file("rest_errors_doc.sh", script);
    char cmd[1100], line[4096];
    FILE *p;
    int status;

    snprintf(cmd, sizeof(cmd), "timeout 30 sh -e '%s' 2>&1", path);
    assert_non_null(p = popen(cmd, "r"));
    while (fgets(line, sizeof(line), p))
        verso_buf_puts(all, line);
    status = pclose(p);
    if (status != 0)
        fprintf(stderr, "example failed (%d):\n%s\n", status, script);
    assert_int_equal(status, 0);
    free(script);
    free(path);
}

static void test_doc_examples(void **state)
{
    static const char *const origins[] = {"https://app.example.com"};
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_buf all = VERSO_BUF_INIT;
    char url[96], *doc = read_doc();
    int blocks = 0;
    rc_env e;

    (void)state;
    o.cors_origins = origins;
    o.ncors_origins = 1;
    rc_start_with(&e, "shop.db", &o);
    rc_seed(e.db, 3);
    exec_sql(e.path, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", verso_rest_port(e.srv));
    setenv("VERSO_URL", url, 1);
    for (char *p = strstr(doc, "\n```sh errors\n"); p; p = strstr(p, "\n```sh errors\n")) {
        char *start = p + 14, *end = strstr(start, "\n```");
        assert_non_null(end);
        run_block(start, (size_t)(end - start + 1), &all);
        blocks++;
        p = end + 4;
    }
    assert_true(blocks >= 3);
    expect_in(all.data, "is not tracked: run \\\"verso track ");
    expect_in(all.data, "unknown filter operator \\\"between\\\" for column qty (operators: eq");
    expect_in(all.data, "bad value \\\"many\\\" for column qty: expected an integer");
    expect_in(all.data, "unknown column \\\"colour\\\": table items has id, version, name");
    expect_in(all.data, "access-control-allow-origin: https://app.example.com");
    expect_in(all.data, "access-control-max-age: 600");
    expect_in(all.data, "HTTP/1.1 204");
    expect_in(all.data, "HTTP/1.1 403");
    verso_buf_free(&all);
    free(doc);
    rc_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_table),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_unknown_columns),
        cmocka_unit_test(test_column_list_bounded),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_messages_are_the_requests_own),
        cmocka_unit_test(test_auth_messages),
        cmocka_unit_test(test_ws_role_message),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_serve_config_error),
        cmocka_unit_test(test_doc_examples),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
