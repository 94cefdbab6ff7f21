/*
 * The events WebSocket of a dir server (/_databases, subprotocol
 * verso-databases.1): the list at open, a message when a database is
 * written (through the server or by another handle on the file), created
 * or removed in DIR (seen through the one DIR watch), coalesced under a
 * burst of commits, and a heartbeat after 5 s of silence.
 */
#define _GNU_SOURCE
#include "dir_common.h"
#include "verso/sync.h"

static int setup(void **state)
{
    (void)state;
    dc_make_dirs("direvents");
    dc_make_db("b");
    dc_make_db("a");
    dc_make_db("c");
    dc_start(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dc_stop();
    return 0;
}

static void assert_list(const cJSON *j, const char *const *names, size_t n)
{
    const cJSON *dbs = cJSON_GetObjectItem(j, "databases");

    assert_int_equal(cJSON_GetArraySize(dbs), (int)n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(dbs, (int)i);
        assert_string_equal(cJSON_GetObjectItem(e, "name")->valuestring, names[i]);
        assert_int_equal(strlen(cJSON_GetObjectItem(e, "identity")->valuestring), 36);
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(e, "head")));
    }
}

/* ---- tests ---- */

static void test_list_then_changes(void **state)
{
    static const char *const abc[] = {"a", "b", "c"};
    dc_events c;
    int at = 0;
    cJSON *j;
    char path[700];

    (void)state;
    dc_events_start(&c, "/_databases", NULL);
    j = dc_wait_msg(&c, &at, "databases", NULL);
    assert_list(j, abc, 3);
    cJSON_Delete(j);
    /* a write through the server */
    assert_int_equal(dc_status("POST", "/db/a/items", NULL, "{\"name\":\"x\"}"), 201);
    j = dc_wait_msg(&c, &at, "database", "a");
    assert_int_equal(dc_head_in(j), 1);
    cJSON_Delete(j);
    /* a write by another handle on the file: seen through the DIR watch */
    snprintf(path, sizeof(path), "%s/b.db", DC.dir);
    {
        verso_db *db = rc_open(path);
        rc_item it = {.name = "by-hand"};
        assert_int_equal(verso_record_insert(db, &rc_item_def, &it), 0);
        verso_db_close(db);
    }
    j = dc_wait_msg(&c, &at, "database", "b");
    assert_int_equal(dc_head_in(j), 1);
    cJSON_Delete(j);
    /* a database created in DIR, and one removed */
    dc_make_db("d");
    j = dc_wait_msg(&c, &at, "database", "d");
    assert_int_equal(dc_head_in(j), 0);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "%s/c.db", DC.dir);
    assert_int_equal(unlink(path), 0);
    j = dc_wait_msg(&c, &at, "deleted", "c");
    cJSON_Delete(j);
    /* files that are not databases are not announced */
    snprintf(path, sizeof(path), "%s/.hidden.db", DC.dir);
    dc_make_db(".hidden");
    snprintf(path, sizeof(path), "%s/x.y.db", DC.dir);
    dc_make_db("x.y");
    assert_int_equal(dc_status("POST", "/db/a/items", NULL, "{\"name\":\"y\"}"), 201);
    j = dc_wait_msg(&c, &at, "database", "a");
    assert_int_equal(dc_head_in(j), 2);
    cJSON_Delete(j);
    pthread_mutex_lock(&c.lock);
    for (int i = 0; i < c.n; i++) {
        assert_null(strstr(c.msgs[i], "hidden"));
        assert_null(strstr(c.msgs[i], "x.y"));
    }
    pthread_mutex_unlock(&c.lock);
    dc_events_stop(&c);
    /* a new subscriber gets the list as it is now */
    {
        static const char *const abd[] = {"a", "b", "d"};
        dc_events_start(&c, "/_databases", NULL);
        at = 0;
        j = dc_wait_msg(&c, &at, "databases", NULL);
        assert_list(j, abd, 3);
        assert_int_equal(dc_head_in(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "databases"), 0)), 2);
        cJSON_Delete(j);
        dc_events_stop(&c);
    }
}

/* A burst of commits gives fewer messages than commits, the last one at the final head. */
static void test_coalesced(void **state)
{
    char path[700];
    dc_events c;
    int at = 0, count = 0;
    int64_t last = -1, deadline;
    cJSON *j;
    verso_db *db;

    (void)state;
    dc_events_start(&c, "/_databases", NULL);
    cJSON_Delete(dc_wait_msg(&c, &at, "databases", NULL));
    snprintf(path, sizeof(path), "%s/a.db", DC.dir);
    db = rc_open(path);
    for (int i = 0; i < 200; i++) {
        rc_item it = {.name = "burst"};
        assert_int_equal(verso_record_insert(db, &rc_item_def, &it), 0);
    }
    verso_db_close(db);
    deadline = dc_now_ms() + 10000;
    while (last != 200 && dc_now_ms() < deadline) {
        j = dc_wait_msg(&c, &at, "database", "a");
        last = dc_head_in(j);
        count++;
        cJSON_Delete(j);
    }
    assert_int_equal(last, 200);
    assert_true(count < 200);
    dc_events_stop(&c);
}

/* A counter of GET /_metrics. */
static long long metric(const char *name)
{
    char pat[128];
    rt_resp r;
    const char *at;
    long long v = -1;

    assert_int_equal(dc_call(&r, "GET", "/_metrics", NULL, NULL, NULL, 0), 200);
    snprintf(pat, sizeof(pat), "\n%s ", name);
    if ((at = strstr(r.body, pat)))
        v = atoll(at + strlen(pat));
    rt_resp_free(&r);
    return v;
}

/* With a subscriber and every database closed, the server goes quiet:
 * reading a closed database's head (which opens it) must not itself make
 * the events that call for another read. */
static void test_quiet_when_idle(void **state)
{
    dc_events c;
    int at = 0;
    long long reads, watch;
    int64_t deadline;

    (void)state;
    dc_events_start(&c, "/_databases", NULL);
    cJSON_Delete(dc_wait_msg(&c, &at, "databases", NULL));
    deadline = dc_now_ms() + 8000;
    do { /* quiet: no read and no file event over a whole second */
        reads = metric("verso_databases_head_reads_total");
        watch = metric("verso_dir_watch_events_total");
        dc_sleep_ms(1000);
    } while ((metric("verso_databases_head_reads_total") != reads ||
              metric("verso_dir_watch_events_total") != watch) &&
             dc_now_ms() < deadline);
    assert_int_equal(metric("verso_databases_head_reads_total"), reads);
    assert_int_equal(metric("verso_dir_watch_events_total"), watch);
    assert_int_equal(reads, 3); /* the list's, once each */
    dc_events_stop(&c);
}

/* Stopping the server closes the events WebSocket and a live slave's
 * /db/<name>/_sync (1001), with nothing left behind. */
static void test_stop_with_subscribers(void **state)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    char url[128], spath[700], why[256] = "";
    verso_slave *s = NULL;
    verso_slave_state st;
    int64_t deadline;
    dc_events c;
    int at = 0;

    (void)state;
    snprintf(spath, sizeof(spath), "%s/slave.db", DC.root);
    snprintf(url, sizeof(url), "%s/db/a", DC.base);
    o.retry_min_ms = 20;
    o.retry_max_ms = 300;
    assert_int_equal(verso_slave_start(&s, spath, url, &o, why, sizeof(why)), 0);
    dc_events_start(&c, "/_databases", NULL);
    cJSON_Delete(dc_wait_msg(&c, &at, "databases", NULL));
    deadline = dc_now_ms() + 10000;
    do {
        dc_sleep_ms(10);
        assert_int_equal(verso_slave_state_get(&st, s), 0);
    } while (st.phase != VERSO_PHASE_LIVE && dc_now_ms() < deadline);
    assert_int_equal(st.phase, VERSO_PHASE_LIVE);
    verso_rest_stop(DC.srv);
    DC.srv = NULL;
    deadline = dc_now_ms() + 10000;
    while (!atomic_load(&c.closed) && dc_now_ms() < deadline)
        dc_sleep_ms(10);
    assert_true(atomic_load(&c.closed));
    dc_events_stop(&c);
    verso_slave_stop(s);
}

static void test_heartbeat(void **state)
{
    dc_events c;
    int at = 0;
    int64_t t0;

    (void)state;
    dc_events_start(&c, "/_databases", NULL);
    cJSON_Delete(dc_wait_msg(&c, &at, "databases", NULL));
    t0 = dc_now_ms();
    cJSON_Delete(dc_wait_msg(&c, &at, "heartbeat", NULL));
    assert_true(dc_now_ms() - t0 >= 4000);
    dc_events_stop(&c);
}

/* The upgrade needs the subprotocol; the path is exact. */
static void test_refusals(void **state)
{
    dc_events c;

    (void)state;
    int64_t deadline = dc_now_ms() + 10000;

    dc_events_start(&c, "/_databases/x", NULL);
    while (!atomic_load(&c.failed) && !atomic_load(&c.closed) && !atomic_load(&c.established) &&
           dc_now_ms() < deadline)
        dc_sleep_ms(5);
    assert_false(atomic_load(&c.established));
    dc_events_stop(&c);
    {
        char url[128];
        rt_resp r;
        snprintf(url, sizeof(url), "%s/_databases", DC.base);
        const char *h[] = {
            "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", NULL};
        rt_request(&r, "GET", url, NULL, 0, h);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "verso-databases.1"));
        rt_resp_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_then_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quiet_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_subscribers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };

    lws_set_log_level(0, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
