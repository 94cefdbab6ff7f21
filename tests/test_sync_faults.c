/*
 * Self-healing of the live slave (design invariant 8): whatever ends a
 * link - a connection accepted and never answered, a master paused under
 * writes, connections reset, stalled, throttled or black-holed by a proxy
 * (tests/support/fault_proxy.h) - leads to a retry with backoff, the
 * slave's state says what happened, and the slave converges once the
 * faults stop. A reader polls the slave throughout: the sum of two
 * accounts that only ever exchange money must never be wrong.
 *
 * The pause and the black hole last 30 s and 20 s (heartbeats of 300 ms);
 * VERSO_FAULTS_QUICK=1 shortens them to 8 s and 6 s while developing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "support/fault_proxy.h"
#include "sync_harness.h"

#define SUM 2000 /* the two accounts' total */

static bool full_run(void)
{
    const char *v = getenv("VERSO_FAULTS_QUICK");

    return !(v && *v && strcmp(v, "0") != 0);
}

static verso_slave *start_slave(const char *url, const char *spath, int heartbeat_ms,
                                int retry_max_ms)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256] = "";

    o.heartbeat_ms = heartbeat_ms;
    o.retry_min_ms = 20;
    o.retry_max_ms = retry_max_ms;
    if (verso_slave_start(&s, spath, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    return s;
}

static verso_slave_state state_of(verso_slave *s)
{
    verso_slave_state st;

    assert_int_equal(verso_slave_state_get(&st, s), 0);
    return st;
}

/* Waits until the slave equals the master's head (identity included); returns the time taken. */
static int64_t wait_head(verso_slave *s, const char *mpath, int timeout_ms)
{
    verso_db *db = h_open(mpath);
    verso_info info;
    int64_t t0 = h_now_ms();

    assert_int_equal(verso_db_info(&info, db), 0);
    verso_db_close(db);
    for (;;) {
        verso_slave_state st = state_of(s);
        if (st.cursor == info.head && !strcmp(st.master, info.identity))
            return h_now_ms() - t0;
        if (h_now_ms() - t0 > timeout_ms)
            fail_msg("slave at %lld, master head %lld after %d ms (link %s, %lld attempts, "
                     "error '%s')",
                     (long long)st.cursor, (long long)info.head, timeout_ms,
                     verso_slave_link_name(st.link), (long long)st.attempts, st.last_error);
        h_sleep_ms(10);
    }
}

/* ---- load: transfers on the master, a reader of the slave ---- */

typedef struct load {
    const char *mpath, *spath;
    pthread_t writer, reader;
    atomic_int stop;
    atomic_llong transfers, reads, bad, bad_sum, errors;
    unsigned seed;
} load;

/* One transfer between accounts 1 and 2 in one transaction (no cmocka here: not the main thread).
 */
static int transfer(verso_db *db, unsigned *seed)
{
    h_account a = {0}, b = {0};
    int64_t amount = (int64_t)(rand_r(seed) % 50) - 25;
    int rc;

    if ((rc = verso_db_begin(db)) < 0)
        return rc;
    if ((rc = verso_record_get(&a, db, &h_accounts, 1)) == 0 &&
        (rc = verso_record_get(&b, db, &h_accounts, 2)) == 0) {
        a.balance -= amount;
        b.balance += amount;
        if ((rc = verso_record_update(db, &h_accounts, &a, 0)) == 0)
            rc = verso_record_update(db, &h_accounts, &b, 0);
    }
    if (rc == 0)
        return verso_db_commit(db);
    verso_db_rollback(db);
    return rc;
}

static void *write_loop(void *arg)
{
    load *l = arg;
    verso_db_options o;
    verso_db *db = NULL;

    h_db_options(&o);
    if (verso_db_open(&db, l->mpath, &o, NULL, 0) < 0) {
        l->errors++;
        return NULL;
    }
    while (!atomic_load(&l->stop)) {
        if (transfer(db, &l->seed) < 0)
            l->errors++;
        else
            l->transfers++;
        h_sleep_ms(3);
    }
    verso_db_close(db);
    return NULL;
}

static void *read_loop(void *arg)
{
    load *l = arg;

    while (!atomic_load(&l->stop)) {
        int64_t sum, count;
        h_accounts_sum(l->spath, &sum, &count);
        if (count == 2) {
            l->reads++;
            if (sum != SUM) {
                l->bad++;
                l->bad_sum = sum;
            }
        }
        h_sleep_ms(1);
    }
    return NULL;
}

static void load_start(load *l, const char *mpath, const char *spath, unsigned seed)
{
    l->mpath = mpath;
    l->spath = spath;
    l->seed = seed;
    assert_int_equal(pthread_create(&l->writer, NULL, write_loop, l), 0);
    assert_int_equal(pthread_create(&l->reader, NULL, read_loop, l), 0);
}

static void load_stop(load *l)
{
    atomic_store(&l->stop, 1);
    pthread_join(l->writer, NULL);
    pthread_join(l->reader, NULL);
    assert_int_equal(l->errors, 0);
    assert_true(l->transfers > 0);
    assert_true(l->reads > 0);
    if (l->bad)
        fail_msg("%lld of %lld reads of the slave saw a wrong sum (%lld)", (long long)l->bad,
                 (long long)l->reads, (long long)l->bad_sum);
}

static void make_master_db(const char *mpath, uint64_t seed)
{
    verso_db *db = h_open(mpath);

    h_seed(seed);
    h_seed_accounts(db, SUM / 2);
    verso_db_close(db);
    h_sql_workload(mpath, 30); /* items only: the accounts keep their sum */
}

/* ---- a listener that accepts and never answers ---- */

static void test_faults_never_answered(void **state)
{
    const char *extra[] = {"--heartbeat", "200", NULL};
    char mp[600], sp[600], url[64];
    verso_slave_state st;
    fp_proxy *p = NULL;
    fp_stats ps;
    h_master m;
    verso_slave *s;
    int64_t deadline;

    (void)state;
    h_path(mp, sizeof(mp), "hole-master.db");
    h_path(sp, sizeof(sp), "hole-slave.db");
    make_master_db(mp, 31);
    h_master_start(&m, mp, extra);
    assert_int_equal(fp_start(&p, m.port), 0);
    fp_set(p, FP_BLACKHOLE, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fp_port(p));
    s = start_slave(url, sp, 200, 300);

    /* each attempt is accepted, never answered, given up on and followed by another */
    deadline = h_now_ms() + 15000;
    do {
        h_sleep_ms(20);
        st = state_of(s);
        fp_stats_get(&ps, p);
    } while ((st.attempts < 5 || ps.accepted < 5) && h_now_ms() < deadline);
    if (st.attempts < 5 || ps.accepted < 5)
        fail_msg("%lld attempts, %lld accepted in 15 s (link %s, error '%s')",
                 (long long)st.attempts, (long long)ps.accepted, verso_slave_link_name(st.link),
                 st.last_error);
    assert_false(st.connected);
    assert_int_equal(st.commits, 0);
    if (!strstr(st.last_error, "did not answer the WebSocket upgrade"))
        fail_msg("last_error '%s'", st.last_error);
    if (ps.open > 2) /* the attempts given up on are closed, not left hanging */
        fail_msg("%lld connections open at the proxy after %lld attempts", (long long)ps.open,
                 (long long)st.attempts);

    fp_set(p, FP_PASS, 0);
    print_message("never answered: %lld attempts; converged %lld ms after the hole closed\n",
                  (long long)st.attempts, (long long)wait_head(s, mp, 20000));
    st = state_of(s);
    assert_true(st.connected);
    assert_int_equal(st.link, VERSO_LINK_LIVE);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    fp_stop(p);
    h_master_kill(&m, SIGTERM);
}

/* ---- each step's deadline: refused, SYN never answered, no hello ---- */

/* Waits until the slave made `more` further attempts; returns its state. */
static verso_slave_state wait_attempts(verso_slave *s, int64_t more, const char *what)
{
    verso_slave_state st = state_of(s);
    int64_t target = st.attempts + more, deadline = h_now_ms() + 15000;

    while (st.attempts < target && h_now_ms() < deadline) {
        h_sleep_ms(10);
        st = state_of(s);
    }
    if (st.attempts < target)
        fail_msg("%s: %lld attempts in 15 s (link %s, error '%s')", what, (long long)st.attempts,
                 verso_slave_link_name(st.link), st.last_error);
    assert_false(st.connected);
    return st;
}

static int listener(int backlog, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A non-blocking connect to port (the socket, to close later). */
static int connect_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    connect(fd, (struct sockaddr *)&a, sizeof(a));
    return fd;
}

static atomic_int mute_opened;

static int mute_open(verso_ws *ws, void **conn, void *arg)
{
    (void)ws;
    (void)arg;
    *conn = NULL;
    atomic_fetch_add(&mute_opened, 1);
    return 0;
}

static int mute_message(verso_ws *ws, void *conn, const void *data, size_t len, void *arg)
{
    (void)ws, (void)conn, (void)data, (void)len, (void)arg;
    return 0;
}

static int mute_writeable(verso_ws *ws, void *conn, void *arg)
{
    (void)ws, (void)conn, (void)arg;
    return 0;
}

static void mute_close(verso_ws *ws, void *conn, void *arg)
{
    (void)ws, (void)conn, (void)arg;
}

static void test_faults_each_step(void **state)
{
    static const verso_ws_handler mute = {
        VERSO_SYNC_PATH, VERSO_SYNC_SUBPROTOCOL, NULL,       mute_open,
        mute_message,    mute_writeable,         mute_close, NULL};
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    ro.port = VERSO_REST_PORT_ANY;
    char sp[600], mp[600], url[64], why[256] = "";
    verso_slave_state st;
    verso_rest *srv = NULL;
    verso_slave *s = NULL;
    int lfd, port, fill[2];

    (void)state;
    h_path(sp, sizeof(sp), "steps-slave.db");
    h_path(mp, sizeof(mp), "steps-mute.db");
    o.heartbeat_ms = 200;
    o.connect_timeout_ms = 300;
    o.retry_min_ms = 20;
    o.retry_max_ms = 100;

    /* refused: nothing listens */
    lfd = listener(1, &port);
    close(lfd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    if (verso_slave_start(&s, sp, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    st = wait_attempts(s, 3, "refused");
    assert_true(st.last_error[0] != '\0');
    verso_slave_stop(s);

    /* a full accept queue: the SYN is dropped, the connect never completes */
    lfd = listener(0, &port);
    fill[0] = connect_to(port);
    fill[1] = connect_to(port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    if (verso_slave_start(&s, sp, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    st = wait_attempts(s, 3, "SYN dropped");
    if (!strstr(st.last_error, "timed out connecting"))
        fail_msg("SYN dropped: last_error '%s'", st.last_error);
    verso_slave_stop(s);
    close(fill[0]);
    close(fill[1]);
    close(lfd);

    /* the upgrade answered, then nothing: no hello */
    verso_db_close(h_open(mp));
    ro.db_path = mp;
    ro.ws_handlers = &mute;
    ro.nws_handlers = 1;
    if (verso_rest_start(&srv, NULL, &ro, why, sizeof(why)) < 0)
        fail_msg("mute master: %s", why);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", verso_rest_port(srv));
    if (verso_slave_start(&s, sp, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    st = wait_attempts(s, 3, "no hello");
    if (!strstr(st.last_error, "timed out waiting for the master's hello"))
        fail_msg("no hello: last_error '%s'", st.last_error);
    /* the attempt counted last may still be upgrading: wait for the server's side */
    for (int64_t deadline = h_now_ms() + 10000;
         atomic_load(&mute_opened) < 3 && h_now_ms() < deadline;)
        h_sleep_ms(10);
    assert_true(atomic_load(&mute_opened) >= 3);
    verso_slave_stop(s);
    verso_rest_stop(srv);
}

/* ---- a master paused (SIGSTOP) under writes, then resumed ---- */

static void test_faults_master_paused(void **state)
{
    const char *extra[] = {"--heartbeat", "300", "--chunk", "1", NULL};
    const int pause_ms = full_run() ? 30000 : 8000;
    char mp[600], sp[600];
    verso_slave_state st;
    load l = {0};
    h_master m;
    verso_slave *s;
    int64_t t0, detected, attempts0, converged, commits0;

    (void)state;
    h_path(mp, sizeof(mp), "pause-master.db");
    h_path(sp, sizeof(sp), "pause-slave.db");
    make_master_db(mp, 32);
    h_master_start(&m, mp, extra);
    s = start_slave(m.url, sp, 300, 500);
    wait_head(s, mp, 20000);
    commits0 = state_of(s).commits;
    load_start(&l, mp, sp, 32);
    t0 = h_now_ms();
    do { /* some live transfers first */
        h_sleep_ms(10);
        st = state_of(s);
    } while (st.commits < commits0 + 5 && h_now_ms() - t0 < 10000);
    if (st.commits < commits0 + 5)
        fail_msg("%lld live transfers applied in 10 s", (long long)(st.commits - commits0));

    kill(m.pid, SIGSTOP);
    t0 = h_now_ms();
    do {
        h_sleep_ms(10);
        st = state_of(s);
    } while (st.connected && h_now_ms() - t0 < 10000);
    if (st.connected)
        fail_msg("the slave did not notice the paused master in 10 s");
    detected = h_now_ms() - t0;
    attempts0 = st.attempts;
    while (h_now_ms() - t0 < pause_ms) { /* the master stays paused; writes go on */
        h_sleep_ms(20);
        st = state_of(s);
        assert_false(st.connected);
    }
    /* the listen backlog accepts every attempt; none may wait for good */
    if (st.attempts - attempts0 < 3)
        fail_msg("%lld attempts in %d ms of pause (link %s, error '%s')",
                 (long long)(st.attempts - attempts0), pause_ms - (int)detected,
                 verso_slave_link_name(st.link), st.last_error);
    if (!strstr(st.last_error, "timed out"))
        fail_msg("paused master: last_error '%s'", st.last_error);

    kill(m.pid, SIGCONT);
    t0 = h_now_ms();
    do { /* live again, under writes */
        h_sleep_ms(10);
        st = state_of(s);
    } while (!(st.connected && st.lag_versions == 0) && h_now_ms() - t0 < 30000);
    converged = h_now_ms() - t0;
    load_stop(&l);
    if (!st.connected)
        fail_msg("not live 30 s after SIGCONT (link %s, error '%s')",
                 verso_slave_link_name(st.link), st.last_error);
    wait_head(s, mp, 30000);
    st = state_of(s);
    print_message("paused %d ms: noticed after %lld ms, %lld attempts while paused, live and "
                  "caught up %lld ms after SIGCONT; %lld transfers, %lld reads\n",
                  pause_ms, (long long)detected, (long long)(st.attempts - attempts0 - 1),
                  (long long)converged, (long long)l.transfers, (long long)l.reads);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
}

/* ---- a fault-injecting proxy between slave and master ---- */

typedef struct watch {
    verso_slave *s;
    bool saw_down;     /* the slave said it was not connected */
    int64_t attempts0; /* attempts when the fault began */
    char error[128];   /* last_error seen while down */
} watch;

/* Lets a fault last ms, watching the slave's state meanwhile. */
static void hold(watch *w, int ms)
{
    int64_t end = h_now_ms() + ms;

    while (h_now_ms() < end) {
        verso_slave_state st = state_of(w->s);
        if (!st.connected) {
            w->saw_down = true;
            snprintf(w->error, sizeof(w->error), "%s", st.last_error);
        }
        h_sleep_ms(10);
    }
}

static void begin_fault(watch *w)
{
    w->saw_down = false;
    w->attempts0 = state_of(w->s).attempts;
    w->error[0] = '\0';
}

static void test_faults_network(void **state)
{
    const char *extra[] = {"--heartbeat", "300", "--chunk", "1", NULL};
    const int hole_ms = full_run() ? 20000 : 6000;
    unsigned seed = 33;
    char mp[600], sp[600], url[64];
    verso_slave_state st;
    load l = {0};
    fp_proxy *p = NULL;
    fp_stats ps;
    h_master m;
    watch w = {0};
    int64_t t0, converged, cuts = 0;

    (void)state;
    h_path(mp, sizeof(mp), "net-master.db");
    h_path(sp, sizeof(sp), "net-slave.db");
    make_master_db(mp, 33);
    h_master_start(&m, mp, extra);
    assert_int_equal(fp_start(&p, m.port), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fp_port(p));
    w.s = start_slave(url, sp, 300, 500);
    wait_head(w.s, mp, 20000);
    load_start(&l, mp, sp, 33);
    t0 = h_now_ms();

    /* resets: some while live, some while the slave reconnects or catches up */
    for (int i = 0; i < 6; i++) {
        hold(&w, 100 + (int)(rand_r(&seed) % 900));
        cuts += fp_cut(p);
    }
    hold(&w, 1000 + (int)(rand_r(&seed) % 1000));

    /* a stall of 2-5 s: nothing moves, then everything flows again */
    begin_fault(&w);
    fp_set(p, FP_STALL, 0);
    hold(&w, 2000 + (int)(rand_r(&seed) % 3000));
    fp_set(p, FP_PASS, 0);
    hold(&w, 1000 + (int)(rand_r(&seed) % 1000));

    /* a few KB/s for 4 s */
    fp_set(p, FP_THROTTLE, 2048 + (int)(rand_r(&seed) % 4096));
    hold(&w, 4000);
    fp_set(p, FP_PASS, 0);
    hold(&w, 1000 + (int)(rand_r(&seed) % 1000));

    /* a black hole: the link goes silent, every new connection is accepted and never answered */
    begin_fault(&w);
    fp_set(p, FP_BLACKHOLE, 0);
    hold(&w, hole_ms);
    st = state_of(w.s);
    if (!w.saw_down || st.attempts - w.attempts0 < 2)
        fail_msg("black hole of %d ms: down %d, %lld attempts (link %s, error '%s')", hole_ms,
                 w.saw_down, (long long)(st.attempts - w.attempts0), verso_slave_link_name(st.link),
                 st.last_error);
    assert_true(w.error[0] != '\0');
    fp_set(p, FP_PASS, 0);
    fp_stats_get(&ps, p);

    /* the faults stop: caught up within 30 s, writes going on */
    t0 = h_now_ms();
    do {
        h_sleep_ms(10);
        st = state_of(w.s);
    } while (!(st.connected && st.lag_versions == 0) && h_now_ms() - t0 < 30000);
    converged = h_now_ms() - t0;
    load_stop(&l);
    if (!st.connected)
        fail_msg("not live 30 s after the faults (link %s, error '%s')",
                 verso_slave_link_name(st.link), st.last_error);
    wait_head(w.s, mp, 30000);
    st = state_of(w.s);
    print_message("network faults: %lld cuts, proxy accepted %lld, dropped %lld bytes; slave "
                  "%lld attempts, %lld reconnects; converged %lld ms after the faults stopped; "
                  "%lld transfers, %lld reads\n",
                  (long long)cuts, (long long)ps.accepted, (long long)ps.dropped,
                  (long long)st.attempts, (long long)st.reconnects, (long long)converged,
                  (long long)l.transfers, (long long)l.reads);
    assert_true(cuts >= 3);
    assert_true(ps.dropped > 0);
    assert_true(st.reconnects >= 4);
    h_assert_converged(mp, sp);
    verso_slave_stop(w.s);
    fp_stop(p);
    h_master_kill(&m, SIGTERM);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_never_answered),
        cmocka_unit_test(test_faults_each_step),
        cmocka_unit_test(test_faults_master_paused),
        cmocka_unit_test(test_faults_network),
    };

    H_MAIN_DISPATCH(argc, argv);
    if (argc > 1) /* one test by name (a pattern), for a run by hand */
        cmocka_set_test_filter(argv[1]);
    h_init_dir("sync_faults");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
