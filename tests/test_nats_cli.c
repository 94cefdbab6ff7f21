/*
 * The NATS commands as real processes ($VERSO_BIN) against a real
 * nats-server: `verso publish` (runs until SIGTERM, exit 0; a stream that
 * exists with other subjects or another retention is refused with exit 1
 * and a message naming the field; bad URLs and missing options are usage
 * errors, exit 2), `verso serve --publish`, `verso replicate nats://...`
 * (follows, serves its copy with --port, exit 0 on SIGTERM; a URL without a
 * stream is refused). Without libnats: skipped, saying why.
 */
#include "nats_harness.h"

#ifdef VERSO_HAVE_NATS

static hn_server ns;

static char *bin(void)
{
    char *b = getenv("VERSO_BIN");

    assert_non_null(b);
    return b;
}

static void add_stream(const char *name, const char *subject, jsRetentionPolicy retention)
{
    char why[256];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(ns.url, &js, why, sizeof(why));
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    const char *subjects[] = {subject};
    jsErrCode jerr = 0;

    if (!nc)
        fail_msg("connect: %s", why);
    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = retention;
    assert_int_equal(js_AddStream(&si, js, &cfg, NULL, &jerr), NATS_OK);
    jsStreamInfo_Destroy(si);
    hn_disconnect(nc, js);
}

static int64_t stream_last_to(const char *stream)
{
    char why[256], subj[128];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(ns.url, &js, why, sizeof(why));
    natsMsg *m = NULL;
    int64_t to = -1;

    snprintf(subj, sizeof(subj), "verso.%s.changes", stream);
    if (nc && (m = hn_last_msg(js, stream, subj))) {
        to = hn_header_int(m, "Verso-To");
        natsMsg_Destroy(m);
    }
    hn_disconnect(nc, js);
    return to;
}

static void wait_stream_head(const char *stream, const char *mpath)
{
    int64_t deadline = h_now_ms() + 20000;

    while (stream_last_to(stream) != h_head(mpath)) {
        if (h_now_ms() > deadline)
            fail_msg("stream %s at %lld, head %lld", stream, (long long)stream_last_to(stream),
                     (long long)h_head(mpath));
        h_sleep_ms(20);
    }
}

static void test_publish_runs_and_stops(void **state)
{
    char mpath[600], out[4096] = "";
    char *argv[] = {bin(), "publish", mpath, ns.url, "--stream", "CLI1", NULL};
    hn_chain chain;
    hn_proc p;
    verso_db *db;

    (void)state;
    h_seed(2);
    h_path(mpath, sizeof(mpath), "cli1.db");
    db = h_open(mpath);
    h_orm_workload(db, 5, 3);
    hn_proc_spawn(&p, argv, true);
    /* a line per state change: started, then connected */
    if (!hn_proc_read_until(&p, "stream connected", 20000, out, sizeof(out)) ||
        !strstr(out, "CLI1"))
        fail_msg("verso publish said: %s", out);
    h_orm_workload(db, 10, 3);
    wait_stream_head("CLI1", mpath);
    hn_shell(mpath, "INSERT INTO items(name, price, qty) VALUES ('from the shell', 1.5, 2)");
    wait_stream_head("CLI1", mpath); /* another process's commit is published too */
    hn_assert_chain(&chain, ns.url, "CLI1", "verso.CLI1");
    assert_int_equal(chain.masters, 1);
    assert_int_equal(hn_proc_kill(&p, SIGTERM), 0);
    verso_db_close(db);
}

/* The creation options reach the stream's configuration. */
static void test_publish_options(void **state)
{
    char mpath[600], why[256];
    char *argv[] = {bin(),       "publish",     mpath,         ns.url,      "--stream",
                    "OPTS",      "--max-msgs",  "50",          "--max-age", "3600",
                    "--subject", "shop.events", "--max-bytes", "1000000",   NULL};
    jsCtx *js = NULL;
    natsConnection *nc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    hn_proc p;
    int64_t deadline = h_now_ms() + 20000;

    (void)state;
    h_path(mpath, sizeof(mpath), "opts.db");
    verso_db_close(h_open(mpath));
    hn_proc_spawn(&p, argv, true);
    if (!(nc = hn_connect(ns.url, &js, why, sizeof(why))))
        fail_msg("connect: %s", why);
    while (js_GetStreamInfo(&si, js, "OPTS", NULL, &jerr) != NATS_OK) {
        if (h_now_ms() > deadline)
            fail_msg("verso publish did not create stream OPTS");
        h_sleep_ms(20);
    }
    assert_int_equal(si->Config->MaxMsgs, 50);
    assert_int_equal(si->Config->MaxBytes, 1000000);
    assert_int_equal(si->Config->MaxAge, (int64_t)3600 * 1000000000);
    assert_int_equal(si->Config->SubjectsLen, 2);
    assert_true(!strcmp(si->Config->Subjects[0], "shop.events.changes") ||
                !strcmp(si->Config->Subjects[1], "shop.events.changes"));
    jsStreamInfo_Destroy(si);
    hn_disconnect(nc, js);
    assert_int_equal(hn_proc_kill(&p, SIGTERM), 0);
}

static void expect_refused(const char *stream, const char *field)
{
    char mpath[600], out[4096];
    char *argv[] = {bin(), "publish", mpath, ns.url, "--stream", (char *)stream, NULL};
    int rc;

    h_path(mpath, sizeof(mpath), "refused.db");
    verso_db_close(h_open(mpath));
    rc = hn_run(argv, 20000, out, sizeof(out));
    if (rc != 1 || !strstr(out, stream) || !strstr(out, field))
        fail_msg("verso publish on stream %s: exit %d, said: %s", stream, rc, out);
}

static void test_publish_refuses_stream(void **state)
{
    (void)state;
    add_stream("OTHER_SUBJ", "elsewhere.>", js_LimitsPolicy);
    expect_refused("OTHER_SUBJ", "subjects");
    add_stream("WORKQ", "verso.WORKQ.>", js_WorkQueuePolicy);
    expect_refused("WORKQ", "retention");
}

static void expect_usage(char **argv, const char *says)
{
    char out[4096];
    int rc = hn_run(argv, 20000, out, sizeof(out));

    if (rc != 2 || !strstr(out, says))
        fail_msg("verso %s %s ...: exit %d (expected 2 and '%s'), said: %s", argv[1], argv[2], rc,
                 says, out);
}

static void test_bad_arguments(void **state)
{
    char mpath[600], dead[64];

    (void)state;
    h_path(mpath, sizeof(mpath), "usage.db");
    verso_db_close(h_open(mpath));
    {
        char *a[] = {bin(), "publish", mpath, ns.url, NULL}; /* no --stream */
        expect_usage(a, "--stream");
    }
    {
        char *a[] = {bin(), "publish", mpath, "http://127.0.0.1:1", "--stream", "S", NULL};
        expect_usage(a, "nats://");
    }
    {
        char *a[] = {bin(), "publish", mpath, ns.url, "--stream", "bad name!", NULL};
        expect_usage(a, "bad name!");
    }
    {
        char spath[600];
        char *a[] = {bin(), "replicate", ns.url, spath, NULL}; /* nats://h:p without /STREAM */
        h_path(spath, sizeof(spath), "nostream.db");
        expect_usage(a, "stream");
    }
    /* nothing listens: not a usage error, and not a success */
    snprintf(dead, sizeof(dead), "nats://127.0.0.1:%d", hn_free_port());
    {
        char *a[] = {bin(), "publish", mpath, dead, "--stream", "S", NULL};
        hn_proc p;
        int rc;
        hn_proc_spawn(&p, a, true);
        if ((rc = hn_proc_wait(&p, 3000)) == -1) /* still retrying: SIGTERM ends it cleanly */
            assert_int_equal(hn_proc_kill(&p, SIGTERM), 0);
        else if (rc == 0 || rc == 2)
            fail_msg("verso publish to %s: exit %d", dead, rc);
    }
}

/* `verso serve DB --publish nats://... --stream S`: REST writes reach the stream. */
static void test_serve_publish(void **state)
{
    char mpath[600], port[16], line[512] = "";
    h_master m = {0};
    hn_proc p;
    int pnum = hn_free_port();

    (void)state;
    h_path(mpath, sizeof(mpath), "servepub.db");
    verso_db_close(h_open(mpath));
    snprintf(port, sizeof(port), "%d", pnum);
    {
        char *a[] = {bin(),       "serve", mpath,      "--port",   port,
                     "--publish", ns.url,  "--stream", "SERVEPUB", NULL};
        hn_proc_spawn(&p, a, true);
    }
    m.port = pnum;
    snprintf(m.url, sizeof(m.url), "http://127.0.0.1:%d", pnum);
    if (!hn_proc_read_until(&p, "http://", 20000, line, sizeof(line)))
        fail_msg("verso serve --publish did not start: %s", line);
    h_seed(8);
    h_rest_workload(&m, mpath, 20);
    wait_stream_head("SERVEPUB", mpath);
    assert_int_equal(hn_proc_kill(&p, SIGTERM), 0);
}

/* `verso replicate nats://h:p/STREAM FILE --master URL --port P`: follows and serves its copy. */
static void test_replicate_nats(void **state)
{
    char mpath[600], spath[600], cpath[600], url[256], port[16], why[256] = "";
    verso_nats_publisher *pub;
    verso_pull_result res;
    h_master m;
    hn_proc p;
    verso_db *db, *cdb;
    int sport = hn_free_port();

    (void)state;
    h_seed(21);
    h_path(mpath, sizeof(mpath), "rep_m.db");
    h_path(spath, sizeof(spath), "rep_s.db");
    h_path(cpath, sizeof(cpath), "rep_c.db");
    db = h_open(mpath);
    h_orm_workload(db, 20, 4);
    h_master_start(&m, mpath, NULL);
    pub = hn_pub_start(mpath, ns.url, "REP", NULL);
    snprintf(url, sizeof(url), "%s/REP", ns.url);
    snprintf(port, sizeof(port), "%d", sport);
    {
        char *a[] = {bin(), "replicate", url, spath, "--master", m.url, "--port", port, NULL};
        hn_proc_spawn(&p, a, true);
    }
    h_orm_workload(db, 10, 4);
    if (!h_wait_cursor(mpath, spath, 30000))
        fail_msg("verso replicate %s did not follow", url);
    /* its copy, served: a pull from it equals the master */
    {
        char surl[64];
        snprintf(surl, sizeof(surl), "http://127.0.0.1:%d", sport);
        assert_non_null(cdb = h_open(cpath));
        if (verso_sync_pull(&res, cdb, surl, NULL, why, sizeof(why)) < 0)
            fail_msg("pull from the follower: %s", why);
        verso_db_close(cdb);
    }
    assert_int_equal(hn_proc_kill(&p, SIGTERM), 0);
    verso_nats_publish_stop(pub);
    h_assert_converged(mpath, spath);
    h_assert_table_equal(mpath, cpath, "items");
    verso_db_close(db);
    h_master_kill(&m, SIGTERM);
}

static int setup_server(void **state)
{
    (void)state;
    hn_start(&ns, "nats");
    return 0;
}

static int teardown_server(void **state)
{
    (void)state;
    hn_kill(&ns, SIGKILL);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_runs_and_stops), cmocka_unit_test(test_publish_options),
        cmocka_unit_test(test_publish_refuses_stream), cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_serve_publish),          cmocka_unit_test(test_replicate_nats),
    };
    int failed;

    H_MAIN_DISPATCH(argc, argv);
    if (!hn_have_server()) {
        printf("# skipped: nats-server is not installed (scripts/setup.sh installs it)\n");
        return 0;
    }
    if (getenv("VERSO_TEST_ONLY")) /* a development aid: one test by name (glob) */
        cmocka_set_test_filter(getenv("VERSO_TEST_ONLY"));
    if (getenv("VERSO_TEST_SKIP"))
        cmocka_set_skip_filter(getenv("VERSO_TEST_SKIP"));
    h_init_dir("nats_cli");
    failed = cmocka_run_group_tests(tests, setup_server, teardown_server);
    hn_kill_all();
    if (!failed)
        hn_remove_tree(h_dir); /* the servers' stores too */
    return failed;
}

#else

/* Without libnats the commands exist and say why they cannot run. */
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
