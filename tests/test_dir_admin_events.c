/* (tests/test_dir_admin_events.c: written by i11-dir as test_dir_admin.c; renamed at the merge
 * into i11-names, whose tests/test_dir_admin.c covers the routes themselves.)
 *
 * The admin routes (rest/admin.c) on a real dir server: creation, adoption
 * and deletion seen by the events channel and the /db/<name>/ routes, a
 * followed database refused deletion unless forced (its slave is cut off),
 * tokens scoped to databases on every path (REST, /_sync, the events list,
 * GET /_databases), and hostile names on the admin routes.
 */
#define _GNU_SOURCE
#include <dirent.h>

#include "dir_common.h"
#include "verso/sync.h"

static const char *const k_tokens[] = {"adm-token", "rep-a-token", "write-b-token"};

/* SHA-256 hex of s, computed by the sha256sum command. */
static void sha256_hex(char out[65], const char *s)
{
    char cmd[256];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | sha256sum", s);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 65, p));
    pclose(p);
    assert_int_equal(strlen(out), 64);
}

static int setup_open(void **state)
{
    (void)state;
    dc_make_dirs("diradmin");
    dc_make_db("a");
    dc_make_db("b");
    dc_start(NULL);
    return 0;
}

/* Tokens: admin (everything), replicate on a only, write on b only. */
static int setup_tokens(void **state)
{
    static const char *const grants[] = {"admin", "replicate db=a", "write db=b"};
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    static char path[700]; /* the server keeps it (verso_rest_reload reads it again) */
    char text[1024] = "", h[65];
    FILE *f;

    (void)state;
    dc_make_dirs("diradmin");
    dc_make_db("a");
    dc_make_db("b");
    for (size_t i = 0; i < 3; i++) {
        sha256_hex(h, k_tokens[i]);
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "token %s %s\n", h, grants[i]);
    }
    snprintf(path, sizeof(path), "%s/verso.conf", DC.root);
    assert_non_null(f = fopen(path, "w"));
    fputs(text, f);
    fclose(f);
    o.config_path = path;
    dc_start(&o);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dc_stop();
    return 0;
}

static void test_create_adopt_delete(void **state)
{
    char names[256], path[700];
    dc_events ev;
    int at = 0;
    rt_resp r;
    cJSON *j;

    (void)state;
    dc_events_start(&ev, "/_databases", NULL);
    j = dc_wait_msg(&ev, &at, "databases", NULL);
    assert_string_equal(dc_list_names(names, sizeof(names), j), "a,b");
    cJSON_Delete(j);
    /* empty: announced, served (no table yet) */
    assert_int_equal(dc_status("PUT", "/_databases/t1", NULL, NULL), 201);
    assert_int_equal(dc_status("PUT", "/_databases/t1", NULL, NULL), 409);
    j = dc_wait_msg(&ev, &at, "database", "t1");
    assert_int_equal(dc_head_in(j), 0);
    cJSON_Delete(j);
    assert_int_equal(dc_status("GET", "/db/t1/_info", NULL, NULL), 200);
    assert_int_equal(dc_status("GET", "/db/t1/items", NULL, NULL), 404);
    /* the schema of a, no rows: writable at once */
    assert_int_equal(dc_status("POST", "/db/a/items", NULL, "{\"name\":\"only-in-a\"}"), 201);
    assert_int_equal(dc_status("PUT", "/_databases/t2?from=a", NULL, NULL), 201);
    assert_int_equal(dc_status("GET", "/db/t2/items", NULL, NULL), 200);
    assert_int_equal(dc_status("POST", "/db/t2/items", NULL, "{\"name\":\"in-t2\"}"), 201);
    j = dc_wait_msg(&ev, &at, "database", "t2");
    cJSON_Delete(j);
    /* not SQLite: 400, nothing written */
    assert_int_equal(dc_call(&r, "PUT", "/_databases/t3", NULL, "application/vnd.sqlite3",
                             "this is not a database", 22),
                     400);
    rt_resp_free(&r);
    snprintf(path, sizeof(path), "%s/t3.db", DC.dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(dc_status("GET", "/db/t3/items", NULL, NULL), 404);
    /* the list */
    assert_int_equal(dc_call(&r, "GET", "/_databases", NULL, NULL, NULL, 0), 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(dc_list_names(names, sizeof(names), j), "a,b,t1,t2");
    cJSON_Delete(j);
    rt_resp_free(&r);
    /* deleted: announced, gone from the routes */
    assert_int_equal(dc_status("DELETE", "/_databases/t2", NULL, NULL), 204);
    cJSON_Delete(dc_wait_msg(&ev, &at, "deleted", "t2"));
    assert_int_equal(dc_status("GET", "/db/t2/items", NULL, NULL), 404);
    assert_int_equal(dc_status("DELETE", "/_databases/t2", NULL, NULL), 404);
    dc_events_stop(&ev);
}

static verso_slave *start_slave(const char *name, const char *token, char *spath, size_t n)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    char url[128], why[256] = "";
    verso_slave *s = NULL;

    snprintf(spath, n, "%s/slave-%s.db", DC.root, name);
    snprintf(url, sizeof(url), "%s/db/%s", DC.base, name);
    o.heartbeat_ms = 1000;
    o.retry_min_ms = 20;
    o.retry_max_ms = 300;
    o.client.token = token;
    if (verso_slave_start(&s, spath, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    return s;
}

/* Waits until cond(state) holds (10 s at most). */
static void wait_state(verso_slave *s, bool (*cond)(const verso_slave_state *), const char *what)
{
    int64_t deadline = dc_now_ms() + 10000;
    verso_slave_state st;

    for (;;) {
        assert_int_equal(verso_slave_state_get(&st, s), 0);
        if (cond(&st))
            return;
        if (dc_now_ms() > deadline)
            fail_msg("slave never %s (cursor %lld, connected %d, error '%s')", what,
                     (long long)st.cursor, st.connected, st.last_error);
        dc_sleep_ms(10);
    }
}

static bool at_one(const verso_slave_state *st)
{
    return st->cursor >= 1 && st->phase == VERSO_PHASE_LIVE;
}

static bool cut_off(const verso_slave_state *st)
{
    return !st->connected;
}

static int followers(const char *name)
{
    char path[128];
    rt_resp r;
    cJSON *j;
    int n;

    snprintf(path, sizeof(path), "/_databases/%s", name);
    assert_int_equal(dc_call(&r, "GET", path, NULL, NULL, NULL, 0), 200);
    j = cJSON_Parse(r.body);
    n = cJSON_GetObjectItem(j, "followers")->valueint;
    cJSON_Delete(j);
    rt_resp_free(&r);
    return n;
}

static void test_delete_followed(void **state)
{
    char spath[700];
    verso_slave *s;
    rt_resp r;

    (void)state;
    assert_int_equal(dc_status("POST", "/db/a/items", NULL, "{\"name\":\"x\"}"), 201);
    s = start_slave("a", NULL, spath, sizeof(spath));
    wait_state(s, at_one, "caught up");
    assert_int_equal(followers("a"), 1);
    assert_int_equal(followers("b"), 0);
    assert_int_equal(dc_call(&r, "DELETE", "/_databases/a", NULL, NULL, NULL, 0), 409);
    assert_non_null(strstr(r.body, "1 slave follows it; ?force=true deletes anyway"));
    rt_resp_free(&r);
    assert_int_equal(dc_status("GET", "/db/a/items", NULL, NULL), 200);
    assert_int_equal(dc_status("DELETE", "/_databases/a?force=true", NULL, NULL), 204);
    wait_state(s, cut_off, "cut off");
    assert_int_equal(dc_status("GET", "/db/a/items", NULL, NULL), 404);
    verso_slave_stop(s);
}

static void test_scoped_tokens(void **state)
{
    const char *adm = k_tokens[0], *repa = k_tokens[1], *wb = k_tokens[2];
    char names[256], spath[700];
    dc_events ev;
    verso_slave *s;
    int at = 0;
    rt_resp r;
    cJSON *j;

    (void)state;
    /* REST */
    assert_int_equal(dc_status("POST", "/db/b/items", wb, "{\"name\":\"b1\"}"), 201);
    assert_int_equal(dc_status("POST", "/db/a/items", wb, "{\"name\":\"a1\"}"), 403);
    assert_int_equal(dc_status("POST", "/db/a/items", adm, "{\"name\":\"a1\"}"), 201);
    assert_int_equal(dc_status("GET", "/db/a/_changes", repa, NULL), 200);
    assert_int_equal(dc_status("GET", "/db/b/_changes", repa, NULL), 403);
    assert_int_equal(dc_status("GET", "/db/a/_changes", NULL, NULL), 401);
    assert_int_equal(dc_status("GET", "/_status", wb, NULL), 403);
    assert_int_equal(dc_status("GET", "/_status", adm, NULL), 200);
    assert_int_equal(dc_status("GET", "/_metrics", repa, NULL), 403);
    assert_int_equal(dc_status("PUT", "/_databases/x", repa, NULL), 403);
    assert_int_equal(dc_status("PUT", "/_databases/x", adm, NULL), 201);
    /* the list: only what the token may replicate */
    assert_int_equal(dc_call(&r, "GET", "/_databases", repa, NULL, NULL, 0), 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(dc_list_names(names, sizeof(names), j), "a");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(dc_status("GET", "/_databases", wb, NULL), 403);
    dc_events_start(&ev, "/_databases", repa);
    j = dc_wait_msg(&ev, &at, "databases", NULL);
    assert_string_equal(dc_list_names(names, sizeof(names), j), "a");
    cJSON_Delete(j);
    assert_int_equal(dc_status("POST", "/db/b/items", wb, "{\"name\":\"b2\"}"), 201);
    assert_int_equal(dc_status("POST", "/db/a/items", adm, "{\"name\":\"a2\"}"), 201);
    j = dc_wait_msg(&ev, &at, "database", "a");
    cJSON_Delete(j);
    pthread_mutex_lock(&ev.lock);
    for (int i = 0; i < ev.n; i++)
        assert_null(strstr(ev.msgs[i], "\"b\""));
    pthread_mutex_unlock(&ev.lock);
    dc_events_stop(&ev);
    dc_events_start(&ev, "/_databases", wb); /* may replicate nothing */
    assert_false(dc_events_wait_open(&ev));
    dc_events_stop(&ev);
    /* /_sync: a yes, b no */
    s = start_slave("a", repa, spath, sizeof(spath));
    wait_state(s, at_one, "caught up");
    verso_slave_stop(s);
    s = start_slave("b", repa, spath, sizeof(spath));
    {
        int64_t deadline = dc_now_ms() + 10000;
        verso_slave_state st;
        do {
            dc_sleep_ms(20);
            assert_int_equal(verso_slave_state_get(&st, s), 0);
        } while (!strstr(st.last_error, "403") && dc_now_ms() < deadline);
        assert_non_null(strstr(st.last_error, "403"));
        assert_int_equal(st.cursor, 0);
    }
    verso_slave_stop(s);
}

/* A reload of the config reaches every database, open or not: the
 * instances share the server's config. */
static void test_reload_reaches_databases(void **state)
{
    const char *adm = k_tokens[0], *repa = k_tokens[1];
    char path[700], h[65], why[256] = "";
    FILE *f;

    (void)state;
    assert_int_equal(dc_status("GET", "/db/a/_changes", repa, NULL), 200); /* a is open */
    sha256_hex(h, adm);
    snprintf(path, sizeof(path), "%s/verso.conf", DC.root);
    assert_non_null(f = fopen(path, "w"));
    fprintf(f, "token %s admin\n", h); /* the replicate token is gone */
    fclose(f);
    if (verso_rest_reload(DC.srv, why, sizeof(why)) < 0)
        fail_msg("reload: %s", why);
    assert_int_equal(dc_status("GET", "/db/a/_changes", repa, NULL), 401);
    assert_int_equal(dc_status("GET", "/db/b/_changes", repa, NULL), 401);
    assert_int_equal(dc_status("GET", "/db/a/_changes", adm, NULL), 200);
    assert_int_equal(dc_status("GET", "/_databases", repa, NULL), 401);
}

static void test_hostile_admin_names(void **state)
{
    static const char *const names[] = {
        "..", "%2e%2e", "a%2fb", "..%2fa", "a%00b",  "%EF%BD%81",   "%D0%B0",
        "a.", "a.db",   "-a",    "a%5cb",  "con%20", "..%2f..%2fx",
    };
    static const char *const methods[] = {"GET", "PUT", "DELETE"};
    char path[300], before[2048] = "", after[2048] = "";
    struct dirent **list = NULL;
    int k;

    (void)state;
    k = scandir(DC.dir, &list, NULL, alphasort);
    for (int i = 0; i < k; i++) {
        snprintf(before + strlen(before), sizeof(before) - strlen(before), "%s,", list[i]->d_name);
        free(list[i]);
    }
    free(list);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (size_t m = 0; m < 3; m++) {
            long st;
            snprintf(path, sizeof(path), "/_databases/%s", names[i]);
            st = dc_status(methods[m], path, NULL, NULL);
            if (st != 400 && st != 404 && st != 0)
                fail_msg("%s %s: %ld", methods[m], path, st);
        }
    }
    k = scandir(DC.dir, &list, NULL, alphasort);
    for (int i = 0; i < k; i++) {
        snprintf(after + strlen(after), sizeof(after) - strlen(after), "%s,", list[i]->d_name);
        free(list[i]);
    }
    free(list);
    assert_string_equal(before, after);
    assert_int_equal(dc_status("GET", "/db/a/items", NULL, NULL), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_adopt_delete, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_delete_followed, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_scoped_tokens, setup_tokens, teardown),
        cmocka_unit_test_setup_teardown(test_reload_reaches_databases, setup_tokens, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_admin_names, setup_open, teardown),
    };

    lws_set_log_level(0, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
