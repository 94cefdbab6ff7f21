/* End-to-end: REST writes running concurrently with the application's own
 * ORM writes on another handle; optimistic concurrency with If-Match; the
 * query time budget (503) and a busy database (503, nothing changed). */
#include <pthread.h>

#include "rest_common.h"

#define APP_ROWS  400
#define REST_ROWS 200
#define RACERS    6

static rc_env g_env;

static int setup(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    (void)state;
    o.limits.query_budget_ms = 300;
    rc_start_with(&g_env, "rest_writes", &o);
    rc_seed(g_env.db, 10);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

static void *app_writer(void *arg)
{
    verso_db *db = rc_open(arg);
    char name[32];

    for (int i = 0; i < APP_ROWS; i++) {
        rc_item it = {.name = name, .qty = i};
        snprintf(name, sizeof(name), "app-%d", i);
        if (verso_record_insert(db, &rc_item_def, &it) < 0)
            abort();
        if (i % 4 == 0) {
            it.qty = -i;
            if (verso_record_update(db, &rc_item_def, &it, 0) < 0)
                abort();
        }
    }
    verso_db_close(db);
    return NULL;
}

static void *rest_writer(void *arg)
{
    char body[64];
    long *fails = arg;

    for (int i = 0; i < REST_ROWS; i++) {
        snprintf(body, sizeof(body), "{\"name\":\"rest-%d\",\"qty\":%d}", i, i);
        if (rc_status(&g_env, "POST", "/items", body, NULL) != 201)
            (*fails)++;
        if (i % 5 == 0 && rc_status(&g_env, "PATCH", "/items/1", "{\"qty\":1}", NULL) != 200)
            (*fails)++;
    }
    return NULL;
}

/* Every change since 0, in order: versions strictly increase (no repeats). */
static int64_t check_feed(int64_t *rows)
{
    rt_resp r;
    cJSON *j, *e;
    double last = 0;

    assert_int_equal(rc_call(&r, &g_env, "GET", "/_changes?since=0&limit=10000", NULL, NULL), 200);
    j = rc_json(&r);
    *rows = cJSON_GetArraySize(cJSON_GetObjectItem(j, "changes"));
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "changes"))
    {
        double v = cJSON_GetObjectItem(e, "version")->valuedouble;
        assert_true(v > last);
        last = v;
    }
    assert_true(last == cJSON_GetObjectItem(j, "head")->valuedouble);
    cJSON_Delete(j);
    rt_resp_free(&r);
    return (int64_t)last;
}

static void test_concurrent_writers(void **state)
{
    pthread_t a, b;
    long fails = 0;
    int64_t count = 0, rows = 0;
    verso_info info;

    (void)state;
    assert_int_equal(pthread_create(&a, NULL, app_writer, (void *)g_env.path), 0);
    assert_int_equal(pthread_create(&b, NULL, rest_writer, &fails), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(fails, 0);
    assert_int_equal(verso_query_count(&count, g_env.db, "items", NULL, 0), 0);
    assert_int_equal(count, 10 + APP_ROWS + REST_ROWS);
    assert_int_equal(verso_db_info(&info, g_env.db), 0);
    /* 10 seeds, APP_ROWS inserts + APP_ROWS/4 updates, REST_ROWS inserts + REST_ROWS/5 patches. */
    assert_int_equal(info.head, 10 + APP_ROWS + APP_ROWS / 4 + REST_ROWS + REST_ROWS / 5);
    assert_int_equal(check_feed(&rows), info.head);
    assert_int_equal(rows, count);
}

typedef struct racer {
    char ifmatch[64];
    long status;
    int n;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    char body[64];

    snprintf(body, sizeof(body), "{\"qty\":%d}", 1000 + r->n);
    r->status = rc_status(&g_env, "PUT", "/items/2", body, (const char *[]){r->ifmatch, NULL});
    return NULL;
}

static void test_if_match_race(void **state)
{
    pthread_t t[RACERS];
    racer r[RACERS];
    rc_item it = {0};
    int ok = 0, lost = 0;

    (void)state;
    assert_int_equal(verso_record_get(&it, g_env.db, &rc_item_def, 2), 0);
    for (int i = 0; i < RACERS; i++) {
        r[i].n = i;
        snprintf(r[i].ifmatch, sizeof(r[i].ifmatch), "If-Match: \"%lld\"", (long long)it.version);
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
        ok += r[i].status == 200;
        lost += r[i].status == 412;
    }
    assert_int_equal(ok, 1);
    assert_int_equal(lost, RACERS - 1);
    verso_record_clear(&rc_item_def, &it);
}

/* The application holds the write lock: the server waits at most its budget,
 * answers 503 and changes nothing. */
static void test_busy_database(void **state)
{
    rc_item it = {.name = "held"};
    char *before, *after;
    rt_resp r;

    (void)state;
    before = rc_fingerprint(g_env.db);
    assert_int_equal(verso_db_begin(g_env.db), 0);
    assert_int_equal(verso_record_insert(g_env.db, &rc_item_def, &it), 0);
    assert_int_equal(rc_call(&r, &g_env, "POST", "/items", "{\"name\":\"blocked\"}", NULL), 503);
    cJSON *j = rc_json(&r);
    assert_string_equal(rc_error_code(j), "unavailable");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(verso_db_rollback(g_env.db), 0);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
    assert_int_equal(rc_status(&g_env, "POST", "/items", "{\"name\":\"unblocked\"}", NULL), 201);
}

/* A query that needs far more than a 1 ms budget is interrupted; a cheap one
 * on the same server is not. */
static void test_query_budget(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    rc_env e = g_env;
    char why[128];
    rt_resp r;

    (void)state;
    assert_int_equal(verso_db_exec(g_env.db,
                                   "CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT);"
                                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                                   "SELECT i + 1 FROM n WHERE i < 200000) "
                                   "INSERT INTO big(id, v) SELECT i, hex(randomblob(16)) FROM n;"),
                     0);
    assert_int_equal(verso_db_track(g_env.db, "big", NULL), 0);
    o.limits.query_budget_ms = 1;
    o.db_path = g_env.path;
    assert_int_equal(verso_rest_start(&e.srv, NULL, &o, why, sizeof(why)), 0);
    snprintf(e.base, sizeof(e.base), "http://127.0.0.1:%d", verso_rest_port(e.srv));
    assert_int_equal(rc_call(&r, &e, "GET", "/big?v=like.*zz*&order=v.desc&limit=5", NULL, NULL),
                     503);
    assert_non_null(strstr(r.body, "time budget"));
    rt_resp_free(&r);
    assert_int_equal(rc_status(&e, "GET", "/big/7", NULL, NULL), 200);
    verso_rest_stop(e.srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_if_match_race),
        cmocka_unit_test(test_busy_database),
        cmocka_unit_test(test_query_budget),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
