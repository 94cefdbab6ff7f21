/*
 * The progress a pull and a live slave report through the C API: the
 * phases and their figures in verso_sync_progress (snapshot bytes of the
 * announced total, then the catch-up towards the head), the rows a file
 * snapshot brought (verso_pull_result.snapshot_rows,
 * verso_slave_state.snapshot_rows), and the slave's events in order
 * (connected, bootstrapped, caught up, disconnected when the master dies,
 * connected and caught up again, a resync with its reason when the
 * master's file is another one). Bounded waits only.
 */
#include <pthread.h>

#include "sync_harness.h"

typedef struct seen {
    pthread_mutex_t lock;
    verso_slave_event_kind kinds[64];
    char details[64][128];
    int64_t rows[64];
    int n;
    /* pull */
    int snapshot_calls, catchup_calls;
    int64_t last_bytes, total, target, snapshot_rows;
    bool bytes_backwards;
} seen;

static void on_event(const verso_slave_event *e, void *arg)
{
    seen *s = arg;

    pthread_mutex_lock(&s->lock);
    if (s->n < 64) {
        s->kinds[s->n] = e->kind;
        snprintf(s->details[s->n], sizeof(s->details[0]), "%s", e->detail);
        s->rows[s->n++] = e->rows;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Waits (bounded) until event kind is seen at index >= *from; *from moves past it. */
static bool wait_event(seen *s, verso_slave_event_kind kind, int *from, int ms)
{
    int64_t deadline = h_now_ms() + ms;

    do {
        pthread_mutex_lock(&s->lock);
        for (int i = *from; i < s->n; i++) {
            if (s->kinds[i] == kind) {
                *from = i + 1;
                pthread_mutex_unlock(&s->lock);
                return true;
            }
        }
        pthread_mutex_unlock(&s->lock);
        h_sleep_ms(10);
    } while (h_now_ms() < deadline);
    return false;
}

static void on_progress(const verso_sync_progress *p, void *arg)
{
    seen *s = arg;

    if (p->phase == VERSO_PHASE_SNAPSHOT) {
        s->snapshot_calls++;
        s->bytes_backwards |= p->snapshot_bytes < s->last_bytes;
        s->last_bytes = p->snapshot_bytes;
        s->total = p->snapshot_total;
        assert_true(p->snapshot_bytes <= p->snapshot_total);
    } else {
        assert_int_equal(p->phase, VERSO_PHASE_CATCHUP);
        s->catchup_calls++;
        s->target = p->catchup_target;
        s->snapshot_rows = p->snapshot_rows;
        assert_true(p->cursor >= p->catchup_from);
        assert_true(p->received >= p->cursor);
        assert_true(p->received <= p->catchup_target);
    }
}

static int64_t rows_of(const char *path)
{
    verso_db *db = h_open(path);
    int64_t a = 0, b = 0;

    assert_int_equal(verso_query_count(&a, db, "items", NULL, 0), 0);
    assert_int_equal(verso_query_count(&b, db, "accounts", NULL, 0), 0);
    verso_db_close(db);
    return a + b;
}

static void test_pull_reports_snapshot_then_catchup(void **state)
{
    char mp[600], sp[600], why[256] = "";
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    verso_pull_result res;
    verso_db *db;
    h_master m;
    int64_t rows;

    (void)state;
    h_path(mp, sizeof(mp), "pull-master.db");
    h_path(sp, sizeof(sp), "pull-slave.db");
    db = h_open(mp);
    h_seed(5);
    h_seed_accounts(db, 10);
    h_orm_workload(db, 60, 40);
    verso_db_close(db);
    rows = rows_of(mp);
    h_master_start(&m, mp, NULL);
    c.on_progress = on_progress;
    c.progress_arg = &s;
    assert_int_equal(verso_db_open(&db, sp, NULL, why, sizeof(why)), 0);
    if (verso_sync_pull(&res, db, m.url, &c, why, sizeof(why)) < 0)
        fail_msg("pull: %s", why);
    verso_db_close(db);
    assert_true(res.snapshot);
    assert_int_equal(res.snapshot_rows, rows); /* what the snapshot brought, not 0 */
    assert_true(s.snapshot_calls >= 1);
    assert_false(s.bytes_backwards);
    assert_true(s.total > 0);
    assert_int_equal(s.last_bytes, s.total); /* the last chunk said so */
    assert_true(s.catchup_calls >= 1);
    assert_int_equal(s.snapshot_rows, rows);
    assert_int_equal(s.target, res.master_head);
    h_master_kill(&m, SIGTERM);
}

static void test_slave_events_and_phases(void **state)
{
    char mp[600], sp[600], why[256] = "";
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    verso_slave_state st;
    verso_slave *sl;
    verso_db *db;
    h_master m;
    int at = 0, port;
    int64_t rows;

    (void)state;
    h_path(mp, sizeof(mp), "live-master.db");
    h_path(sp, sizeof(sp), "live-slave.db");
    db = h_open(mp);
    h_seed(6);
    h_seed_accounts(db, 10);
    h_orm_workload(db, 30, 20);
    verso_db_close(db);
    rows = rows_of(mp);
    h_master_start(&m, mp, NULL);
    port = m.port;
    o.on_event = on_event;
    o.event_arg = &s;
    o.retry_max_ms = 200;
    assert_int_equal(verso_slave_start(&sl, sp, m.url, &o, why, sizeof(why)), 0);
    assert_true(wait_event(&s, VERSO_EVENT_CONNECTED, &at, 20000));
    assert_true(wait_event(&s, VERSO_EVENT_BOOTSTRAPPED, &at, 20000));
    assert_int_equal(s.rows[at - 1], rows);
    assert_true(wait_event(&s, VERSO_EVENT_CAUGHT_UP, &at, 20000));
    assert_int_equal(verso_slave_state_get(&st, sl), 0);
    assert_int_equal(st.phase, VERSO_PHASE_LIVE);
    assert_int_equal(st.snapshot_rows, rows);
    assert_int_equal(st.lag_versions, 0);
    assert_string_equal(verso_sync_phase_name(st.phase), "live");

    h_master_kill(&m, SIGKILL);
    assert_true(wait_event(&s, VERSO_EVENT_DISCONNECTED, &at, 20000));
    assert_true(s.details[at - 1][0] != '\0'); /* why */
    assert_int_equal(verso_slave_state_get(&st, sl), 0);
    assert_int_equal(st.phase, VERSO_PHASE_CONNECTING);

    /* another master file on the same port: a resync, with its reason */
    h_remove_db(mp);
    db = h_open(mp);
    h_seed_accounts(db, 3);
    verso_db_close(db);
    h_master_start_port(&m, mp, port);
    assert_true(wait_event(&s, VERSO_EVENT_RESYNC, &at, 30000));
    assert_non_null(strstr(s.details[at - 1], "identity"));
    assert_true(wait_event(&s, VERSO_EVENT_CONNECTED, &at, 20000));
    assert_true(wait_event(&s, VERSO_EVENT_CAUGHT_UP, &at, 20000));
    assert_string_equal(verso_slave_event_name(VERSO_EVENT_CAUGHT_UP), "caught up");
    verso_slave_stop(sl);
    h_master_kill(&m, SIGTERM);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_reports_snapshot_then_catchup),
        cmocka_unit_test(test_slave_events_and_phases),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_progress");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
