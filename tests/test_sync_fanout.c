/*
 * Fan-out: 50 live slaves follow one master process while it is written
 * to; all converge to the master, versions included, and the master lists
 * them with their lag.
 */
#include "sync_harness.h"

#define NSLAVES 50

static void test_fanout(void **state)
{
    char mp[600], sp[NSLAVES][600], name[32];
    verso_slave *s[NSLAVES];
    verso_buf body = VERSO_BUF_INIT;
    h_master m;
    verso_db *db;
    int64_t head;

    (void)state;
    h_path(mp, sizeof(mp), "fan-master.db");
    db = h_open(mp);
    h_seed(31);
    h_seed_accounts(db, 10);
    h_orm_workload(db, 50, 10);
    h_master_start(&m, mp, NULL);
    for (int i = 0; i < NSLAVES; i++) {
        verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
        char why[256] = "";
        snprintf(name, sizeof(name), "fan-slave-%d.db", i);
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
    for (int i = 0; i < NSLAVES; i++) {
        if (verso_slave_wait(s[i], head, 30000) < 0)
            fail_msg("slave %d did not reach %lld", i, (long long)head);
    }
    assert_int_equal(h_http(&m, "GET", "/_metrics", NULL, &body), 200);
    assert_non_null(strstr(body.data, "verso_sync_slaves 50"));
    verso_buf_free(&body);
    for (int i = 0; i < NSLAVES; i++)
        verso_slave_stop(s[i]);
    for (int i = 0; i < NSLAVES; i++)
        h_assert_converged(mp, sp[i]);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_fanout");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
