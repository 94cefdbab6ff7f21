/*
 * The nats-server harness itself (tests/nats_harness.h): a standalone
 * JetStream server keeps its stream across kill -9 and SIGTERM restarts on
 * the same port and store; a 3-node cluster elects a meta leader and keeps a
 * 3-replica stream writable with one node killed; every child is gone when
 * the harness says so. Without libnats: skipped, saying why.
 */
#include "nats_harness.h"

#ifdef VERSO_HAVE_NATS

static bool pid_alive(pid_t pid)
{
    return pid > 0 && kill(pid, 0) == 0;
}

static void add_stream(jsCtx *js, const char *name, const char *subject, int replicas)
{
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    const char *subjects[] = {subject};
    jsErrCode jerr = 0;
    natsStatus s;

    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (s != NATS_OK)
        fail_msg("add stream %s: %s (%d)", name, natsStatus_GetText(s), (int)jerr);
    jsStreamInfo_Destroy(si);
}

/* Publishes n messages, retrying each (bounded) while the cluster moves its leaders. */
static void publish_n(jsCtx *js, const char *subject, int n)
{
    for (int i = 0; i < n; i++) {
        char body[32];
        int64_t deadline = h_now_ms() + 20000;
        jsPubAck *ack = NULL;
        jsErrCode jerr = 0;
        snprintf(body, sizeof(body), "m%d", i);
        while (js_Publish(&ack, js, subject, body, (int)strlen(body), NULL, &jerr) != NATS_OK) {
            if (h_now_ms() > deadline)
                fail_msg("publish %d to %s: %d", i, subject, (int)jerr);
            h_sleep_ms(50);
        }
        jsPubAck_Destroy(ack);
    }
}

static uint64_t stream_msgs(const char *urls, const char *stream)
{
    char why[256];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
    uint64_t msgs = 0;
    int64_t deadline = h_now_ms() + 20000;

    if (!nc)
        fail_msg("connect: %s", why);
    while (!hn_stream_info(js, stream, NULL, NULL, &msgs) && h_now_ms() < deadline)
        h_sleep_ms(50);
    hn_disconnect(nc, js);
    return msgs;
}

static void test_standalone_restart(void **state)
{
    hn_server s;
    char why[256];
    jsCtx *js = NULL;
    natsConnection *nc;
    pid_t first;

    (void)state;
    hn_start(&s, "solo");
    first = s.pid;
    nc = hn_connect(s.url, &js, why, sizeof(why));
    if (!nc)
        fail_msg("connect: %s", why);
    add_stream(js, "H", "h.x", 1);
    publish_n(js, "h.x", 5);
    hn_disconnect(nc, js);

    hn_kill(&s, SIGKILL);
    assert_false(pid_alive(first));
    assert_false(hn_wait_info(s.port, 200)); /* really gone */
    hn_restart(&s);
    assert_true(hn_js_wait(s.url, 1, 15000));
    assert_int_equal(stream_msgs(s.url, "H"), 5); /* the store survived kill -9 */

    hn_kill(&s, SIGTERM);
    hn_restart(&s);
    assert_true(hn_js_wait(s.url, 1, 15000));
    assert_int_equal(stream_msgs(s.url, "H"), 5);
    hn_kill(&s, SIGKILL);
    hn_remove_tree(s.dir);
}

static void test_cluster_node_killed(void **state)
{
    hn_cluster c;
    char why[256];
    jsCtx *js = NULL;
    natsConnection *nc;

    (void)state;
    hn_cluster_start(&c, "hc");
    nc = hn_connect(c.urls, &js, why, sizeof(why));
    if (!nc)
        fail_msg("connect: %s", why);
    add_stream(js, "R3", "r3.x", 3);
    publish_n(js, "r3.x", 10);
    hn_kill(&c.node[1], SIGKILL);
    publish_n(js, "r3.x", 10); /* two of three: still a quorum */
    hn_disconnect(nc, js);
    assert_int_equal(stream_msgs(c.urls, "R3"), 20);
    hn_restart(&c.node[1]);
    hn_cluster_stop(&c);
    for (int i = 0; i < HN_NODES; i++) {
        assert_int_equal(c.node[i].pid, 0);
        hn_remove_tree(c.node[i].dir);
    }
}

static void test_kill_all(void **state)
{
    hn_server a, b;
    pid_t pa, pb;

    (void)state;
    hn_start(&a, "ka");
    hn_start(&b, "kb");
    pa = a.pid;
    pb = b.pid;
    assert_true(pid_alive(pa) && pid_alive(pb));
    hn_kill_all();
    assert_false(pid_alive(pa));
    assert_false(pid_alive(pb));
    hn_remove_tree(a.dir);
    hn_remove_tree(b.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standalone_restart),
        cmocka_unit_test(test_cluster_node_killed),
        cmocka_unit_test(test_kill_all),
    };
    int failed;

    if (!hn_have_server()) {
        printf("# skipped: nats-server is not installed (scripts/setup.sh installs it)\n");
        return 0;
    }
    if (getenv("VERSO_TEST_ONLY")) /* a development aid: one test by name (glob) */
        cmocka_set_test_filter(getenv("VERSO_TEST_ONLY"));
    if (getenv("VERSO_TEST_SKIP"))
        cmocka_set_skip_filter(getenv("VERSO_TEST_SKIP"));
    h_init_dir("nats_harness");
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    hn_kill_all();
    if (!failed)
        hn_remove_tree(h_dir); /* the servers' stores too */
    nats_Close();
    return failed;
}

#else

static void test_skipped(void **state)
{
    (void)state;
    printf("# skipped: verso was built without libnats (install libnats-dev and rebuild)\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_skipped)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
