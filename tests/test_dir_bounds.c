/*
 * Bounded open databases on a dir server: with more databases than
 * max_open, every one still answers while the open file descriptors of the
 * process stay bounded (least recently used closed first); an idle
 * database is closed after idle_close_ms and reopened by its next request;
 * when every open database is held by a live slave, a request for another
 * gets 503 with Retry-After, naming --max-open.
 */
#define _GNU_SOURCE
#include <dirent.h>

#include "dir_common.h"
#include "verso/sync.h"

#define NDB      40
#define MAX_OPEN 8

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the one opendir holds */
}

static int status_int(const char *member)
{
    rt_resp r;
    cJSON *j;
    int v;

    assert_int_equal(dc_call(&r, "GET", "/_status", NULL, NULL, NULL, 0), 200);
    j = cJSON_Parse(r.body);
    v = cJSON_GetObjectItem(j, member)->valueint;
    cJSON_Delete(j);
    rt_resp_free(&r);
    return v;
}

static int setup_cap(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char name[16];

    (void)state;
    dc_make_dirs("dirbounds");
    for (int i = 0; i < NDB; i++) {
        snprintf(name, sizeof(name), "db%02d", i);
        dc_make_db(name);
    }
    o.max_open = MAX_OPEN;
    o.idle_close_ms = 600000;
    dc_start(&o);
    return 0;
}

static int setup_idle(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    (void)state;
    dc_make_dirs("dirbounds");
    dc_make_db("a");
    dc_make_db("b");
    dc_make_db("c");
    o.idle_close_ms = 300;
    dc_start(&o);
    return 0;
}

static int setup_pinned(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    (void)state;
    dc_make_dirs("dirbounds");
    dc_make_db("a");
    dc_make_db("b");
    dc_make_db("c");
    o.max_open = 2;
    dc_start(&o);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dc_stop();
    return 0;
}

static int count_items(const char *name)
{
    char path[64];
    rt_resp r;
    cJSON *j;
    int n;

    snprintf(path, sizeof(path), "/db/%s/items", name);
    assert_int_equal(dc_call(&r, "GET", path, NULL, NULL, NULL, 0), 200);
    j = cJSON_Parse(r.body);
    n = cJSON_GetArraySize(j);
    cJSON_Delete(j);
    rt_resp_free(&r);
    return n;
}

/* Three rounds over 40 databases with room for 8: every request answered,
 * fds bounded, writes kept across the closes. */
static void test_cap_lru(void **state)
{
    int base = open_fds(), peak = base;
    char path[64], name[16];

    (void)state;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < NDB; i++) {
            snprintf(name, sizeof(name), "db%02d", i);
            snprintf(path, sizeof(path), "/db/%s/items", name);
            assert_int_equal(dc_status("POST", path, NULL, "{\"name\":\"r\"}"), 201);
            assert_int_equal(count_items(name), round + 1);
            if (open_fds() > peak)
                peak = open_fds();
        }
        assert_true(status_int("open") <= MAX_OPEN);
    }
    /* each open database holds its file, -wal and -shm; a few sockets besides */
    if (peak - base > MAX_OPEN * 3 + 8)
        fail_msg("open fds went from %d to %d with %d databases open at most", base, peak,
                 MAX_OPEN);
    assert_true(status_int("closed") >= 3 * NDB - MAX_OPEN);
    assert_int_equal(status_int("databases"), NDB);
}

static void test_idle_close(void **state)
{
    int64_t deadline;

    (void)state;
    assert_int_equal(count_items("a"), 0);
    assert_int_equal(dc_status("POST", "/db/b/items", NULL, "{\"name\":\"x\"}"), 201);
    assert_true(status_int("open") >= 1);
    deadline = dc_now_ms() + 10000;
    while (status_int("open") > 0 && dc_now_ms() < deadline)
        dc_sleep_ms(20);
    assert_int_equal(status_int("open"), 0);
    assert_int_equal(count_items("b"), 1); /* reopened */
    assert_int_equal(status_int("open"), 1);
}

static verso_slave *start_slave(const char *name)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    char url[128], spath[700], why[256] = "";
    verso_slave *s = NULL;

    snprintf(spath, sizeof(spath), "%s/slave-%s.db", DC.root, name);
    snprintf(url, sizeof(url), "%s/db/%s", DC.base, name);
    o.heartbeat_ms = 1000;
    o.retry_min_ms = 20;
    o.retry_max_ms = 300;
    if (verso_slave_start(&s, spath, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    return s;
}

static void wait_followers(int n)
{
    int64_t deadline = dc_now_ms() + 10000;

    while (status_int("followers") != n && dc_now_ms() < deadline)
        dc_sleep_ms(10);
    assert_int_equal(status_int("followers"), n);
}

static void test_pinned_503(void **state)
{
    verso_slave *sa = start_slave("a"), *sb;
    char ra[16];
    int64_t deadline;
    rt_resp r;
    long st;

    (void)state;
    sb = start_slave("b");
    wait_followers(2);
    assert_int_equal(dc_call(&r, "GET", "/db/c/items", NULL, NULL, NULL, 0), 503);
    assert_non_null(strstr(r.body, "--max-open 2"));
    assert_string_equal(rt_header(&r, "retry-after", ra, sizeof(ra)), "1");
    rt_resp_free(&r);
    assert_int_equal(dc_status("GET", "/db/a/items", NULL, NULL), 200); /* open ones answer */
    assert_true(status_int("refused") >= 1);
    verso_slave_stop(sb);
    deadline = dc_now_ms() + 10000;
    while ((st = dc_status("GET", "/db/c/items", NULL, NULL)) == 503 && dc_now_ms() < deadline)
        dc_sleep_ms(20);
    assert_int_equal(st, 200);
    assert_int_equal(status_int("followers"), 1);
    verso_slave_stop(sa);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cap_lru, setup_cap, teardown),
        cmocka_unit_test_setup_teardown(test_idle_close, setup_idle, teardown),
        cmocka_unit_test_setup_teardown(test_pinned_503, setup_pinned, teardown),
    };

    lws_set_log_level(0, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
