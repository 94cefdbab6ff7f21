/*
 * Fan-out: 50 live slaves follow one master process while it is written
 * to; all converge to the master, versions included, and the master lists
 * them with their lag: each at the head, lag 0, in /_status and /_metrics.
 * Then 100 (MAXSLAVES) in one process, served from the master's ring.
 */
#include <cjson/cJSON.h>

#include "sync_harness.h"

#define NSLAVES   50
#define MAXSLAVES 100

/* One slave of /_status is behind head: acked, lag in versions and ms. */
static bool behind(const cJSON *sl, int64_t head, char *why, size_t n)
{
    int64_t v[3] = {-1, -1, -1};
    static const char *const names[] = {"acked", "lag_versions", "lag_ms"};

    for (int k = 0; k < 3; k++)
        verso_json_int64(&v[k], cJSON_GetObjectItemCaseSensitive(sl, names[k]));
    snprintf(why, n, "acked %lld of %lld, lag %lld versions %lld ms", (long long)v[0],
             (long long)head, (long long)v[1], (long long)v[2]);
    return v[0] != head || v[1] != 0 || v[2] != 0;
}

/* How many slaves /_status lists, and how many of them are behind head
 * (why: the first one's figures). */
static int status_lags(const h_master *m, int64_t head, int *nbehind, char *why, size_t n)
{
    verso_buf body = VERSO_BUF_INIT;
    verso_json *doc = NULL;
    const cJSON *sl, *slaves;
    char one[128];
    int listed = 0;

    *nbehind = 0;
    assert_int_equal(h_http(m, "GET", "/_status", NULL, &body), 200);
    assert_int_equal(verso_json_parse(&doc, body.data, body.len, 0, NULL, 0), 0);
    slaves = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "replication"), "slaves");
    cJSON_ArrayForEach(sl, slaves)
    {
        listed++;
        if (behind(sl, head, one, sizeof(one)) && (*nbehind)++ == 0)
            snprintf(why, n, "slave %d: %s", listed - 1, one);
    }
    verso_json_free(doc);
    verso_buf_free(&body);
    return listed;
}

/* Lines "metric{...} value" of text: how many, and how many say 0. */
static int metric_lines(const char *text, const char *metric, int *zero)
{
    size_t len = strlen(metric);
    int count = 0;

    *zero = 0;
    for (const char *p = text, *v; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, metric, len) && p[len] == '{' && (v = strstr(p, "} "))) {
            count++;
            *zero += strtoll(v + 2, NULL, 10) == 0;
        }
    }
    return count;
}

/* The master's view agrees: every slave listed at head with no lag (its
 * acks reach the master after the commit verso_slave_wait() saw). */
static void assert_lags(const h_master *m, int64_t head, int nslaves)
{
    char line[40];
    int64_t deadline = h_now_ms() + 10000;
    verso_buf body = VERSO_BUF_INIT;
    char why[160] = "";
    int listed, nbehind, zero;

    while ((listed = status_lags(m, head, &nbehind, why, sizeof(why))) != nslaves || nbehind) {
        if (h_now_ms() > deadline)
            fail_msg("/_status lists %d slaves, %d behind (%s)", listed, nbehind, why);
        h_sleep_ms(20);
    }
    assert_int_equal(h_http(m, "GET", "/_metrics", NULL, &body), 200);
    snprintf(line, sizeof(line), "verso_sync_slaves %d\n", nslaves);
    assert_non_null(strstr(body.data, line));
    assert_int_equal(metric_lines(body.data, "verso_sync_slave_lag_versions", &zero), nslaves);
    assert_int_equal(zero, nslaves);
    assert_int_equal(metric_lines(body.data, "verso_sync_slave_lag_seconds", &zero), nslaves);
    assert_int_equal(zero, nslaves);
    verso_buf_free(&body);
}

static void fanout(int nslaves)
{
    static char sp[MAXSLAVES][600];
    char mp[600], name[32];
    verso_slave *s[MAXSLAVES];
    h_master m;
    verso_db *db;
    int64_t head;

    snprintf(name, sizeof(name), "fan-master-%d.db", nslaves);
    h_path(mp, sizeof(mp), name);
    db = h_open(mp);
    h_seed(31);
    h_seed_accounts(db, 10);
    h_orm_workload(db, 50, 10);
    h_master_start(&m, mp, NULL);
    for (int i = 0; i < nslaves; i++) {
        verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
        char why[256] = "";
        snprintf(name, sizeof(name), "fan-slave-%d-%d.db", nslaves, i);
        h_path(sp[i], sizeof(sp[i]), name);
        o.heartbeat_ms = 1000;
        o.retry_min_ms = 50;
        if (i % 2) /* half declare the tables (rows), half start empty (file snapshot) */
            h_db_options(&o.db);
        if (verso_slave_start(&s[i], sp[i], m.url, &o, why, sizeof(why)) < 0)
            fail_msg("slave %d: %s", i, why);
    }
    for (int round = 0; round < 5; round++) {
        h_orm_workload(db, 20, 10);
        h_sql_workload(mp, 2);
    }
    head = h_head(mp);
    for (int i = 0; i < nslaves; i++) {
        if (verso_slave_wait(s[i], head, 30000) < 0)
            fail_msg("slave %d did not reach %lld", i, (long long)head);
    }
    assert_lags(&m, head, nslaves);
    for (int i = 0; i < nslaves; i++)
        verso_slave_stop(s[i]);
    for (int i = 0; i < nslaves; i++)
        h_assert_converged(mp, sp[i]);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

static void test_fanout(void **state)
{
    (void)state;
    fanout(NSLAVES);
}

static void test_hundred(void **state)
{
    (void)state;
    fanout(MAXSLAVES);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_hundred),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_fanout");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
