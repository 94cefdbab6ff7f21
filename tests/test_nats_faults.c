/*
 * The change stream through NATS JetStream when things break, with real
 * processes: `verso publish` killed (kill -9) and restarted under writes
 * (the stream keeps a contiguous chain per identity and no Nats-Msg-Id
 * twice), nats-server killed and restarted (publisher and follower
 * reconnect by themselves), a 3-node cluster with the stream replicated 3
 * times and its leader killed during writes, the master recreated (new
 * identity: followers resynchronise), a follower behind the stream's
 * retention (resynchronises), the master unreachable (bootstrap from the
 * snapshot stream). Without libnats: skipped, saying why.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "nats_harness.h"

#ifdef VERSO_HAVE_NATS

/* The stream's last Verso-To on <prefix>.changes (-1 when none or unreachable). */
static int64_t stream_last_to(const char *urls, const char *stream, const char *prefix)
{
    char why[256], subj[128];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
    natsMsg *m = NULL;
    int64_t to = -1;

    snprintf(subj, sizeof(subj), "%s.changes", prefix);
    if (nc && (m = hn_last_msg(js, stream, subj))) {
        to = hn_header_int(m, "Verso-To");
        natsMsg_Destroy(m);
    }
    hn_disconnect(nc, js);
    return to;
}

static uint64_t stream_last_seq(const char *urls, const char *stream)
{
    char why[256];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
    uint64_t last = 0;

    if (nc)
        hn_stream_info(js, stream, NULL, &last, NULL);
    hn_disconnect(nc, js);
    return last;
}

/* `verso publish DB URL --stream NAME [extra...]`, its output captured. */
static void publish_proc(hn_proc *p, const char *db, const char *url, const char *stream,
                         const char *extra)
{
    char *argv[12] = {getenv("VERSO_BIN"), "publish",  (char *)db,
                      (char *)url,         "--stream", (char *)stream};
    int n = 6;

    if (extra)
        argv[n++] = (char *)extra;
    argv[n] = NULL;
    assert_non_null(argv[0]);
    hn_proc_spawn(p, argv, true);
}

/* ---- a publisher in a child process with a small chunk ---- */

static volatile sig_atomic_t publisher_stop;

static void publisher_on_term(int sig)
{
    (void)sig;
    publisher_stop = 1;
}

/* main() of "--nats-publisher DB URL STREAM CHUNK": publishes until SIGTERM (exit 0), SIGKILL,
 * 5 minutes, or the test is gone. */
static int publisher_main(char **argv)
{
    verso_nats_publish_options o = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    verso_nats_publisher *p = NULL;
    char why[256] = "";
    pid_t parent = getppid();

    o.chunk = atoi(argv[5]);
    o.snapshot_every_ms = -1;
    o.stream = argv[4];
    o.retry_min_ms = 20;
    o.retry_max_ms = 300;
    if (verso_nats_publish_start(&p, argv[2], argv[3], &o, why, sizeof(why)) < 0) {
        fprintf(stderr, "publisher: %s\n", why);
        return 1;
    }
    signal(SIGTERM, publisher_on_term);
    for (int64_t t0 = h_now_ms();
         !publisher_stop && getppid() == parent && h_now_ms() - t0 < 300000;)
        h_sleep_ms(20);
    verso_nats_publish_stop(p);
    return 0;
}

static void publisher_child(hn_proc *p, const char *db, const char *url, const char *stream,
                            int chunk)
{
    char c[16];
    char *argv[] = {
        "/proc/self/exe", "--nats-publisher", (char *)db, (char *)url, (char *)stream, c, NULL};

    snprintf(c, sizeof(c), "%d", chunk);
    hn_proc_spawn(p, argv, true);
}

/* ---- the publisher killed under writes ---- */

static void test_publisher_kill9(void **state)
{
    char mpath[600], spath[600], why[256];
    verso_nats_follower *f;
    verso_slave_state st;
    hn_server ns;
    hn_chain chain;
    hn_proc pub;
    verso_db *db;
    int64_t deadline;

    (void)state;
    h_seed(9);
    hn_start(&ns, "kill9");
    h_path(mpath, sizeof(mpath), "kill9_m.db");
    h_path(spath, sizeof(spath), "kill9_s.db");
    db = h_open(mpath);
    f = hn_follow_start(spath, ns.url, "K9", NULL, NULL);
    for (int round = 0; round < 4; round++) {
        uint64_t seq0 = stream_last_seq(ns.url, "K9");
        publish_proc(&pub, mpath, ns.url, "K9", NULL);
        /* kill it while it publishes: once the stream moved, writes still going */
        deadline = h_now_ms() + 20000;
        while (stream_last_seq(ns.url, "K9") < seq0 + 3) {
            h_orm_workload(db, 2, 3);
            if (h_now_ms() > deadline)
                fail_msg("round %d: `verso publish` published nothing", round);
        }
        h_orm_workload(db, 3, 3);
        assert_int_equal(hn_proc_kill(&pub, SIGKILL), 128 + SIGKILL);
        h_orm_workload(db, 5, 3); /* written while no publisher runs */
    }
    publish_proc(&pub, mpath, ns.url, "K9", NULL);
    deadline = h_now_ms() + 20000;
    while (stream_last_to(ns.url, "K9", "verso.K9") != h_head(mpath))
        if (h_now_ms() > deadline)
            fail_msg("stream at %lld, head %lld",
                     (long long)stream_last_to(ns.url, "K9", "verso.K9"), (long long)h_head(mpath));
        else
            h_sleep_ms(20);
    hn_assert_chain(&chain, ns.url, "K9", "verso.K9");
    assert_int_equal(chain.identities, 1);
    assert_int_equal(chain.last_to, h_head(mpath));
    hn_follow_wait_head(f, mpath, 20000);
    assert_int_equal(verso_nats_follow_state_get(&st, f), 0);
    assert_int_equal(st.resyncs, 0); /* a publisher restart costs a follower nothing */
    verso_nats_follow_stop(f);
    assert_int_equal(hn_proc_kill(&pub, SIGTERM), 0);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
    (void)why;
    hn_kill(&ns, SIGKILL);
}

/* The publisher killed in the middle of a chain (one transaction of 3000 rows in messages of
 * 10): its successor goes on from the torn chain's last message; the follower shows the
 * transaction whole or not at all, and the stream stays one chain with no message twice. */
typedef struct count_watch {
    const char *path;
    atomic_bool stop;
    atomic_long reads, torn;
    int64_t before, after, seen;
} count_watch;

static void *watch_count(void *arg)
{
    count_watch *w = arg;

    while (!atomic_load(&w->stop)) {
        int64_t n = h_count(w->path, "items");
        if (n < 0)
            continue;
        atomic_fetch_add(&w->reads, 1);
        if (n != w->before && n != w->after) {
            w->seen = n;
            atomic_fetch_add(&w->torn, 1);
        }
    }
    return NULL;
}

static bool last_more(const char *urls, const char *stream, const char *prefix)
{
    char why[256], subj[128];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
    natsMsg *m = NULL;
    bool more = false;

    snprintf(subj, sizeof(subj), "%s.changes", prefix);
    if (nc && (m = hn_last_msg(js, stream, subj))) {
        more = hn_header_int(m, "Verso-More") == 1;
        natsMsg_Destroy(m);
    }
    hn_disconnect(nc, js);
    return more;
}

static void test_publisher_kill9_mid_chain(void **state)
{
    char mpath[600], spath[600];
    verso_nats_follower *f;
    count_watch w = {0};
    hn_server ns;
    hn_chain chain;
    hn_proc pub;
    pthread_t t;
    verso_db *db;
    uint64_t seq0;
    int64_t deadline;
    bool torn;

    (void)state;
    h_seed(43);
    hn_start(&ns, "midchain");
    h_path(mpath, sizeof(mpath), "mid_m.db");
    h_path(spath, sizeof(spath), "mid_s.db");
    db = h_open(mpath);
    h_orm_workload(db, 5, 3);
    publisher_child(&pub, mpath, ns.url, "MID", 10);
    f = hn_follow_start(spath, ns.url, "MID", NULL, NULL);
    hn_follow_wait_head(f, mpath, 20000);
    w.path = spath;
    w.before = h_count(mpath, "items");
    w.after = w.before + 3000;
    assert_int_equal(pthread_create(&t, NULL, watch_count, &w), 0);
    seq0 = stream_last_seq(ns.url, "MID");
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < 3000; i++) {
        h_item it = {.name = "chain", .price = i, .qty = i};
        assert_int_equal(verso_record_insert(db, &h_items, &it), 0);
    }
    assert_int_equal(verso_db_commit(db), 0);
    deadline = h_now_ms() + 20000;
    while (stream_last_seq(ns.url, "MID") < seq0 + 5)
        if (h_now_ms() > deadline)
            fail_msg("the publisher did not start the chain");
    assert_int_equal(hn_proc_kill(&pub, SIGKILL), 128 + SIGKILL);
    torn = last_more(ns.url, "MID", "verso.MID");
    publisher_child(&pub, mpath, ns.url, "MID", 10);
    hn_follow_wait_head(f, mpath, 30000);
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    if (atomic_load(&w.torn))
        fail_msg("the follower showed %lld items, between %lld and %lld", (long long)w.seen,
                 (long long)w.before, (long long)w.after);
    hn_assert_chain(&chain, ns.url, "MID", "verso.MID");
    assert_int_equal(chain.identities, 1);
    assert_true(chain.messages >= 300);
    print_message("# killed with the chain %s\n", torn ? "torn (more: 1 last)" : "complete");
    assert_true(torn); /* else the kill came too late to test anything */
    verso_nats_follow_stop(f);
    assert_int_equal(hn_proc_kill(&pub, SIGTERM), 0);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
    hn_kill(&ns, SIGKILL);
}

/* ---- nats-server killed and restarted ---- */

static void server_restart(int sig, const char *name)
{
    char mpath[600], spath[600], mfile[64], sfile[64];
    verso_nats_publisher *pub;
    verso_nats_follower *f;
    verso_nats_publish_state ps;
    hn_server ns;
    hn_chain chain;
    verso_db *db;

    h_seed(11);
    hn_start(&ns, name);
    snprintf(mfile, sizeof(mfile), "%s_m.db", name);
    snprintf(sfile, sizeof(sfile), "%s_s.db", name);
    h_path(mpath, sizeof(mpath), mfile);
    h_path(spath, sizeof(spath), sfile);
    db = h_open(mpath);
    pub = hn_pub_start(mpath, ns.url, "RS", NULL);
    f = hn_follow_start(spath, ns.url, "RS", NULL, NULL);
    h_orm_workload(db, 20, 3);
    hn_follow_wait_head(f, mpath, 20000);
    for (int i = 0; i < 2; i++) {
        hn_kill(&ns, sig);
        h_orm_workload(db, 20, 3); /* while the server is down */
        hn_restart(&ns);
        h_orm_workload(db, 10, 3);
        hn_pub_wait_head(pub, mpath, 30000);
        hn_follow_wait_head(f, mpath, 30000);
    }
    assert_int_equal(verso_nats_publish_state_get(&ps, pub), 0);
    assert_true(ps.connected);
    hn_assert_chain(&chain, ns.url, "RS", "verso.RS");
    assert_int_equal(chain.identities, 1);
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
    hn_kill(&ns, SIGKILL);
}

static void test_server_kill9(void **state)
{
    (void)state;
    server_restart(SIGKILL, "srvkill");
}

static void test_server_sigterm(void **state)
{
    (void)state;
    server_restart(SIGTERM, "srvterm");
}

/* ---- a 3-node cluster, stream R3, its leader killed during writes ---- */

static int stream_leader(const char *urls, const char *stream, const hn_cluster *c)
{
    char why[256];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int leader = -1;

    if (nc && js_GetStreamInfo(&si, js, stream, NULL, &jerr) == NATS_OK) {
        for (int i = 0; i < HN_NODES && si->Cluster && si->Cluster->Leader; i++)
            if (!strcmp(si->Cluster->Leader, c->node[i].name))
                leader = i;
        if (si->Config->Replicas != 3)
            leader = -2;
        jsStreamInfo_Destroy(si);
    }
    hn_disconnect(nc, js);
    return leader;
}

static void test_cluster_leader_killed(void **state)
{
    char mpath[600], s1[600], s2[600];
    verso_nats_publish_options po = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    verso_nats_publisher *pub;
    verso_nats_follower *f1, *f2;
    hn_cluster c;
    hn_chain chain;
    verso_db *db;
    int leader;

    (void)state;
    h_seed(3);
    hn_cluster_start(&c, "cl");
    h_path(mpath, sizeof(mpath), "cl_m.db");
    h_path(s1, sizeof(s1), "cl_s1.db");
    h_path(s2, sizeof(s2), "cl_s2.db");
    db = h_open(mpath);
    po.replicas = 3;
    po.snapshot_every_ms = -1;
    pub = hn_pub_start(mpath, c.urls, "R3", &po);
    f1 = hn_follow_start(s1, c.urls, "R3", NULL, NULL);
    f2 = hn_follow_start(s2, c.urls, "R3", NULL, NULL);
    h_orm_workload(db, 20, 3);
    hn_pub_wait_head(pub, mpath, 20000);
    leader = stream_leader(c.urls, "R3", &c);
    if (leader < 0)
        fail_msg("stream R3: no leader or not 3 replicas (%d)", leader);
    h_orm_workload(db, 10, 3);
    hn_kill(&c.node[leader], SIGKILL);
    h_orm_workload(db, 30, 3); /* the remaining two elect a new leader meanwhile */
    hn_pub_wait_head(pub, mpath, 30000);
    hn_follow_wait_head(f1, mpath, 30000);
    hn_follow_wait_head(f2, mpath, 30000);
    hn_restart(&c.node[leader]);
    h_orm_workload(db, 10, 3);
    hn_follow_wait_head(f1, mpath, 30000);
    hn_follow_wait_head(f2, mpath, 30000);
    hn_assert_chain(&chain, c.urls, "R3", "verso.R3");
    assert_int_equal(chain.last_to, h_head(mpath));
    verso_nats_follow_stop(f1);
    verso_nats_follow_stop(f2);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_assert_converged(mpath, s1);
    h_assert_converged(mpath, s2);
    hn_cluster_stop(&c);
}

/* ---- the master recreated ---- */

static void test_master_recreated(void **state)
{
    char mpath[600], spath[600], old[37];
    verso_nats_publisher *pub;
    verso_nats_follower *f;
    verso_slave_state st;
    verso_info info;
    hn_server ns;
    hn_chain chain;
    h_master m;
    verso_db *db;
    int port;

    (void)state;
    h_seed(17);
    hn_start(&ns, "recreate");
    h_path(mpath, sizeof(mpath), "rec_m.db");
    h_path(spath, sizeof(spath), "rec_s.db");
    h_master_start(&m, mpath, NULL);
    port = m.port;
    db = h_open(mpath);
    h_orm_workload(db, 20, 4);
    pub = hn_pub_start(mpath, ns.url, "REC", NULL);
    f = hn_follow_start(spath, ns.url, "REC", m.url, NULL);
    h_orm_workload(db, 10, 4);
    hn_follow_wait_head(f, mpath, 20000);
    assert_int_equal(verso_db_info(&info, db), 0);
    snprintf(old, sizeof(old), "%s", info.identity);
    /* a new master file: a new identity, fewer rows, its versions reused */
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_master_kill(&m, SIGTERM);
    h_remove_db(mpath);
    db = h_open(mpath);
    h_orm_workload(db, 5, 2);
    h_master_start_port(&m, mpath, port);
    pub = hn_pub_start(mpath, ns.url, "REC", NULL);
    h_orm_workload(db, 5, 2);
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_string_not_equal(info.identity, old);
    hn_follow_wait_head(f, mpath, 30000);
    assert_int_equal(verso_nats_follow_state_get(&st, f), 0);
    assert_true(st.resyncs >= 1);
    assert_string_equal(st.master, info.identity);
    hn_assert_chain(&chain, ns.url, "REC", "verso.REC");
    assert_int_equal(chain.identities, 2);
    assert_true(chain.masters >= 2);
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
    h_master_kill(&m, SIGTERM);
    hn_kill(&ns, SIGKILL);
}

/* ---- behind the stream's retention ---- */

static void test_behind_retention(void **state)
{
    char mpath[600], spath[600];
    verso_nats_publish_options po = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    verso_nats_publisher *pub;
    verso_nats_follower *f;
    verso_slave_state st;
    hn_server ns;
    h_master m;
    verso_db *db;

    (void)state;
    h_seed(19);
    hn_start(&ns, "retention");
    h_path(mpath, sizeof(mpath), "ret_m.db");
    h_path(spath, sizeof(spath), "ret_s.db");
    h_master_start(&m, mpath, NULL);
    db = h_open(mpath);
    po.max_msgs = 20;
    po.snapshot_every_ms = -1;
    pub = hn_pub_start(mpath, ns.url, "RET", &po);
    f = hn_follow_start(spath, ns.url, "RET", m.url, NULL);
    h_orm_workload(db, 10, 3);
    hn_follow_wait_head(f, mpath, 20000);
    verso_nats_follow_stop(f);
    for (int i = 0; i < 60; i++) { /* 60 messages: the follower's next one is gone */
        h_orm_workload(db, 1, 3);
        hn_pub_wait_head(pub, mpath, 20000);
    }
    f = hn_follow_start(spath, ns.url, "RET", m.url, NULL);
    hn_follow_wait_head(f, mpath, 30000);
    assert_int_equal(verso_nats_follow_state_get(&st, f), 0);
    assert_true(st.resyncs >= 1);
    h_orm_workload(db, 5, 3); /* and it follows the stream again */
    hn_follow_wait_head(f, mpath, 20000);
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
    h_master_kill(&m, SIGTERM);
    hn_kill(&ns, SIGKILL);
}

/* ---- the master unreachable: the snapshot stream ---- */

static void test_bootstrap_from_snapshot_stream(void **state)
{
    char mpath[600], spath[600], other[600], dead[64];
    verso_nats_publish_options po = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    verso_nats_publisher *pub;
    verso_nats_follower *f;
    verso_nats_publish_state ps;
    verso_slave_state st;
    hn_server ns;
    verso_db *db;
    int64_t deadline;

    (void)state;
    h_seed(23);
    hn_start(&ns, "snap");
    h_path(mpath, sizeof(mpath), "snap_m.db");
    h_path(spath, sizeof(spath), "snap_s.db");
    /* the stream exists, written by another master: this one's chain starts at its head */
    h_path(other, sizeof(other), "snap_other.db");
    db = h_open(other);
    h_orm_workload(db, 2, 2);
    verso_db_close(db);
    pub = hn_pub_start(other, ns.url, "SNAP", NULL);
    hn_pub_wait_head(pub, other, 20000);
    verso_nats_publish_stop(pub);
    db = h_open(mpath);
    h_orm_workload(db, 40, 5); /* before its chain: only a snapshot has these */
    po.snapshot_every_ms = 0;  /* at start (and every 10 min) */
    pub = hn_pub_start(mpath, ns.url, "SNAP", &po);
    deadline = h_now_ms() + 20000;
    do {
        assert_int_equal(verso_nats_publish_state_get(&ps, pub), 0);
        if (h_now_ms() > deadline)
            fail_msg("no snapshot stored (error '%s')", ps.last_error);
        h_sleep_ms(20);
    } while (ps.snapshots < 1);
    h_orm_workload(db, 10, 3);
    /* a master URL where nothing listens */
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", hn_free_port());
    f = hn_follow_start(spath, ns.url, "SNAP", dead, NULL);
    hn_follow_wait_head(f, mpath, 30000);
    h_orm_workload(db, 10, 3);
    hn_follow_wait_head(f, mpath, 20000);
    assert_int_equal(verso_nats_follow_state_get(&st, f), 0);
    if (st.snapshot_rows <= 0)
        fail_msg("converged without a snapshot? resyncs %lld, commits %lld, applied %lld, "
                 "error '%s'",
                 (long long)st.resyncs, (long long)st.commits, (long long)st.applied_rows,
                 st.last_error);
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
    hn_kill(&ns, SIGKILL);
}

/* ---- two publishers on one stream ---- */

/* Two publishers of the same database (a restart overlapping the old one): the chain stays one
 * contiguous chain, no message twice; the follower converges. */
static void test_sibling_publishers(void **state)
{
    char mpath[600], spath[600];
    verso_nats_publisher *a, *b;
    verso_nats_follower *f;
    hn_server ns;
    hn_chain chain;
    verso_db *db;

    (void)state;
    h_seed(29);
    hn_start(&ns, "siblings");
    h_path(mpath, sizeof(mpath), "sib_m.db");
    h_path(spath, sizeof(spath), "sib_s.db");
    db = h_open(mpath);
    a = hn_pub_start(mpath, ns.url, "SIB", NULL);
    b = hn_pub_start(mpath, ns.url, "SIB", NULL);
    f = hn_follow_start(spath, ns.url, "SIB", NULL, NULL);
    for (int i = 0; i < 40; i++)
        h_orm_workload(db, 1, 4);
    hn_pub_wait_head(a, mpath, 20000);
    hn_pub_wait_head(b, mpath, 20000);
    hn_follow_wait_head(f, mpath, 20000);
    hn_chain_allow_redundant = true; /* two publishers may both publish a range; no gap */
    hn_assert_chain(&chain, ns.url, "SIB", "verso.SIB");
    hn_chain_allow_redundant = false;
    assert_int_equal(chain.identities, 1);
    assert_int_equal(chain.last_to, h_head(mpath));
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(a);
    verso_nats_publish_stop(b);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
    hn_kill(&ns, SIGKILL);
}

/* A publisher of another database on the same stream: the first one stops saying so (two
 * databases cannot share a stream), the stream keeps a contiguous chain per identity; a
 * follower bootstrapping from the first database's master says it cannot go on, one from the
 * second's converges to it. */
static void test_two_databases_one_stream(void **state)
{
    char apath[600], bpath[600], s1[600], s2[600];
    verso_nats_publisher *a, *b;
    verso_nats_follower *fa, *fb;
    verso_nats_publish_state as;
    verso_slave_state st;
    hn_server ns;
    hn_chain chain;
    h_master ma, mb;
    verso_db *da, *dbb;
    int64_t deadline;

    (void)state;
    h_seed(37);
    hn_start(&ns, "twodbs");
    h_path(apath, sizeof(apath), "two_a.db");
    h_path(bpath, sizeof(bpath), "two_b.db");
    h_path(s1, sizeof(s1), "two_s1.db");
    h_path(s2, sizeof(s2), "two_s2.db");
    da = h_open(apath);
    dbb = h_open(bpath);
    h_orm_workload(dbb, 10, 3);
    h_master_start(&ma, apath, NULL);
    h_master_start(&mb, bpath, NULL);
    a = hn_pub_start(apath, ns.url, "TWO", NULL);
    fa = hn_follow_start(s1, ns.url, "TWO", ma.url, NULL);
    h_orm_workload(da, 10, 3);
    hn_follow_wait_head(fa, apath, 20000);
    b = hn_pub_start(bpath, ns.url, "TWO", NULL);
    deadline = h_now_ms() + 20000;
    do { /* a keeps writing; it must notice b and stop */
        h_orm_workload(da, 1, 2);
        assert_int_equal(verso_nats_publish_state_get(&as, a), 0);
        if (h_now_ms() > deadline)
            fail_msg("the first publisher did not notice the second (error '%s')", as.last_error);
        h_sleep_ms(20);
    } while (!strstr(as.last_error, "another"));
    h_orm_workload(dbb, 5, 3);
    fb = hn_follow_start(s2, ns.url, "TWO", mb.url, NULL);
    hn_follow_wait_head(fb, bpath, 30000);
    deadline = h_now_ms() + 20000;
    do { /* fa's master is not the stream's any more: it says so and keeps a's state */
        assert_int_equal(verso_nats_follow_state_get(&st, fa), 0);
        if (h_now_ms() > deadline)
            fail_msg("follower of a: cursor %lld of %s, error '%s'", (long long)st.cursor,
                     st.master, st.last_error);
        h_sleep_ms(20);
    } while (!strstr(st.last_error, "stream follows"));
    hn_assert_chain(&chain, ns.url, "TWO", "verso.TWO");
    assert_int_equal(chain.identities, 2);
    verso_nats_follow_stop(fa);
    verso_nats_follow_stop(fb);
    verso_nats_publish_stop(a);
    verso_nats_publish_stop(b);
    verso_db_close(da);
    verso_db_close(dbb);
    h_assert_converged(bpath, s2);
    h_assert_integrity(s1);
    h_master_kill(&ma, SIGTERM);
    h_master_kill(&mb, SIGTERM);
    hn_kill(&ns, SIGKILL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publisher_kill9),
        cmocka_unit_test(test_publisher_kill9_mid_chain),
        cmocka_unit_test(test_server_kill9),
        cmocka_unit_test(test_server_sigterm),
        cmocka_unit_test(test_cluster_leader_killed),
        cmocka_unit_test(test_master_recreated),
        cmocka_unit_test(test_behind_retention),
        cmocka_unit_test(test_bootstrap_from_snapshot_stream),
        cmocka_unit_test(test_sibling_publishers),
        cmocka_unit_test(test_two_databases_one_stream),
    };
    int failed;

    if (argc == 6 && !strcmp(argv[1], "--nats-publisher"))
        return publisher_main(argv);
    H_MAIN_DISPATCH(argc, argv);
    if (!hn_have_server()) {
        printf("# skipped: nats-server is not installed (scripts/setup.sh installs it)\n");
        return 0;
    }
    if (getenv("VERSO_TEST_ONLY")) /* a development aid: one test by name (glob) */
        cmocka_set_test_filter(getenv("VERSO_TEST_ONLY"));
    if (getenv("VERSO_TEST_SKIP"))
        cmocka_set_skip_filter(getenv("VERSO_TEST_SKIP"));
    h_init_dir("nats_faults");
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    hn_kill_all();
    if (!failed)
        hn_remove_tree(h_dir); /* the servers' stores too */
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
