/*
 * The master's ring of encoded commits (docs/protocol.md, "The ring"):
 * slaves at the head share one read and one encoding per commit, and a
 * live slave under writers that never pause commits a state of the master
 * at least every 100 ms, never in steps of seconds.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include <cjson/cJSON.h>

#include "support/fault_proxy.h"
#include "sync_harness.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLOW 1
#endif
#endif
#ifndef SLOW
#define SLOW 0
#endif

/* ---- one encoding per commit ---- */

/* The value of a counter of the master's /_metrics. */
static int64_t metric(const h_master *m, const char *name)
{
    verso_buf body = VERSO_BUF_INIT;
    const char *p;
    int64_t v = -1;
    size_t len = strlen(name);

    assert_int_equal(h_http(m, "GET", "/_metrics", NULL, &body), 200);
    for (p = body.data; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, name, len) && p[len] == ' ') {
            v = strtoll(p + len + 1, NULL, 10);
            break;
        }
    }
    verso_buf_free(&body);
    if (v < 0)
        fail_msg("no %s in /_metrics", name);
    return v;
}

#define NSHARED  10
#define NCOMMITS 20

static void wait_all(verso_slave **s, int n, int64_t head)
{
    for (int i = 0; i < n; i++) {
        if (verso_slave_wait(s[i], head, 30000) < 0)
            fail_msg("slave %d did not reach %lld", i, (long long)head);
    }
}

static void test_one_encoding(void **state)
{
    char mp[600], sp[NSHARED][600], name[32];
    verso_slave *s[NSHARED];
    int64_t enc0, sends0, enc, sends;
    h_master m;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "ring-master.db");
    db = h_open(mp);
    h_seed(7);
    h_orm_workload(db, 20, 10);
    h_master_start(&m, mp, NULL);
    for (int i = 0; i < NSHARED; i++) {
        verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
        char why[256] = "";
        snprintf(name, sizeof(name), "ring-slave-%d.db", i);
        h_path(sp[i], sizeof(sp[i]), name);
        o.retry_min_ms = 50;
        h_db_options(&o.db);
        if (verso_slave_start(&s[i], sp[i], m.url, &o, why, sizeof(why)) < 0)
            fail_msg("slave %d: %s", i, why);
    }
    wait_all(s, NSHARED, h_head(mp));
    enc0 = metric(&m, "verso_sync_encodings_total");
    sends0 = metric(&m, "verso_sync_ring_sends_total");
    for (int k = 0; k < NCOMMITS; k++) { /* one commit at a time, every slave at its head */
        h_orm_workload(db, 1, 10);
        wait_all(s, NSHARED, h_head(mp));
    }
    enc = metric(&m, "verso_sync_encodings_total") - enc0;
    sends = metric(&m, "verso_sync_ring_sends_total") - sends0;
    /* each commit was read and encoded once for all ten, and sent to each from the ring */
    if (enc != NCOMMITS || sends < NSHARED * NCOMMITS)
        fail_msg("%d commits, %d slaves: %lld encodings, %lld ring sends", NCOMMITS, NSHARED,
                 (long long)enc, (long long)sends);
    for (int i = 0; i < NSHARED; i++)
        verso_slave_stop(s[i]);
    for (int i = 0; i < NSHARED; i++)
        h_assert_converged(mp, sp[i]);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* A slave that comes back at a boundary of the ring gets the commits it
 * missed merged: a few messages for twenty commits, with no read of its own,
 * and applies them to the master's state. */
/*
 * A master at <name>-master.db (seeded, 200 changes; extra: its command-line options) and two
 * slaves of it, <name>-live.db and <name>-back.db (options *o, retried after 50 ms), both at
 * its head; the second is stopped there. Returns the master's handle for writes.
 */
static verso_db *start_pair(h_master *m, char *mp, char sp[2][600], verso_slave *s[2],
                            verso_slave_options *o, const char *name, unsigned seed,
                            const char *const *extra)
{
    char file[64], why[256] = "";
    verso_db *db;

    snprintf(file, sizeof(file), "%s-master.db", name);
    h_path(mp, 600, file);
    snprintf(file, sizeof(file), "%s-live.db", name);
    h_path(sp[0], 600, file);
    snprintf(file, sizeof(file), "%s-back.db", name);
    h_path(sp[1], 600, file);
    db = h_open(mp);
    h_seed(seed);
    h_orm_workload(db, 20, 10);
    h_master_start(m, mp, extra);
    o->retry_min_ms = 50;
    h_db_options(&o->db);
    for (int i = 0; i < 2; i++)
        if (verso_slave_start(&s[i], sp[i], m->url, o, why, sizeof(why)) < 0)
            fail_msg("slave %d: %s", i, why);
    wait_all(s, 2, h_head(mp));
    verso_slave_stop(s[1]);
    return db;
}

static void test_merged_catch_up(void **state)
{
    char mp[600], sp[2][600];
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s[2];
    int64_t enc0, merged0, sends0, enc, merged, sends;
    char why[256] = "";
    h_master m;
    verso_db *db;

    (void)state;
    db = start_pair(&m, mp, sp, s, &o, "merge", 11, NULL); /* s[1] at the ring's end: a boundary */
    for (int k = 0; k < NCOMMITS; k++) { /* one segment per commit: the live slave takes each */
        h_orm_workload(db, 1, 10);
        wait_all(s, 1, h_head(mp));
    }
    enc0 = metric(&m, "verso_sync_encodings_total");
    merged0 = metric(&m, "verso_sync_ring_merged_total");
    sends0 = metric(&m, "verso_sync_ring_sends_total");
    if (verso_slave_start(&s[1], sp[1], m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    wait_all(&s[1], 1, h_head(mp));
    enc = metric(&m, "verso_sync_encodings_total") - enc0;
    merged = metric(&m, "verso_sync_ring_merged_total") - merged0;
    sends = metric(&m, "verso_sync_ring_sends_total") - sends0;
    if (enc != 0 || merged < 1 || sends >= NCOMMITS)
        fail_msg("%d commits missed: %lld reads of its own, %lld merged messages of %lld sent",
                 NCOMMITS, (long long)enc, (long long)merged, (long long)sends);
    for (int i = 0; i < 2; i++)
        verso_slave_stop(s[i]);
    for (int i = 0; i < 2; i++)
        h_assert_converged(mp, sp[i]);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* ---- no stalls under writers that never pause ---- */

#define NWRITERS    3
#define WRITE_MS    3000
#define MAX_COMMITS 200000

/* What the slave's callback saw: when each commit came, and whether it was a master state. */
typedef struct seen {
    const char *path;
    sqlite3 *rd; /* the slave's file, read on the slave's thread right after each commit */
    int64_t *at_ms;
    atomic_int n;
    atomic_int broken; /* commits that showed a state the master never had */
    char why[160];
} seen;

/*
 * Every writer's transaction inserts 98 items and moves accounts 1 and 2
 * by +98 and -98: the last item's id (ids are given in commit order) is
 * account 1's balance, and minus account 2's. Cheap to check (no scan)
 * after every commit, on both tables, of rows rewritten by every commit.
 */
static void on_apply(const verso_sync_change *c, size_t n, int64_t cursor, bool reset, void *arg)
{
    seen *sn = arg;
    int i = atomic_load(&sn->n);
    int64_t items, plus, minus;

    (void)c;
    (void)n;
    (void)reset;
    if (i < MAX_COMMITS)
        sn->at_ms[i] = h_now_ms();
    atomic_store(&sn->n, i + 1);
    if (!sn->rd && sqlite3_open_v2(sn->path, &sn->rd, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return;
    sqlite3_exec(sn->rd, "BEGIN", NULL, NULL, NULL); /* the three from one state */
    items = h_sql_int(sn->rd, "SELECT COALESCE(MAX(id), 0) + ? FROM items", 0);
    plus = h_sql_int(sn->rd, "SELECT balance FROM accounts WHERE id = ?", 1);
    minus = h_sql_int(sn->rd, "SELECT balance FROM accounts WHERE id = ?", 2);
    sqlite3_exec(sn->rd, "COMMIT", NULL, NULL, NULL);
    if ((items != plus || plus != -minus) && atomic_fetch_add(&sn->broken, 1) == 0)
        snprintf(sn->why, sizeof(sn->why), "at %lld: last item %lld, accounts %lld and %lld",
                 (long long)cursor, (long long)items, (long long)plus, (long long)minus);
}

/* When the writers' transactions committed. */
static int64_t commit_ms[MAX_COMMITS];
static atomic_int ncommits;

typedef struct writer {
    pthread_t t;
    const char *path;
    atomic_int *stop;
    int64_t rows;
    unsigned seed;
    atomic_int tid; /* its thread id, not counted as the slave's (see starvation) */
} writer;

/* 100-row transactions as fast as they go: 98 items, and accounts 1 and 2 moved to match. */
static void *write_loop(void *arg)
{
    writer *w = arg;
    sqlite3 *s = NULL;
    char sql[900];

    atomic_store(&w->tid, (int)syscall(SYS_gettid));
    if (sqlite3_open(w->path, &s) != SQLITE_OK)
        return NULL;
    sqlite3_busy_timeout(s, 10000);
    while (!atomic_load(w->stop)) {
        unsigned k = (w->seed = w->seed * 1103515245u + 12345u) % 1000;
        snprintf(sql, sizeof(sql),
                 "BEGIN IMMEDIATE;"
                 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 98) "
                 "INSERT INTO items(name, price, qty) SELECT 'w', 1.5, %u FROM c;"
                 "UPDATE accounts SET balance = balance + 98 WHERE id = 1;"
                 "UPDATE accounts SET balance = balance - 98 WHERE id = 2;"
                 "COMMIT;",
                 k);
        if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK) {
            sqlite3_exec(s, "ROLLBACK", NULL, NULL, NULL);
            continue;
        }
        w->rows += 100;
        int i = atomic_fetch_add(&ncommits, 1);
        if (i < MAX_COMMITS)
            commit_ms[i] = h_now_ms();
    }
    sqlite3_close(s);
    return NULL;
}

/* The first master commit after ms (a time of the commits' order), or INT64_MAX. */
static int64_t next_commit(int64_t ms)
{
    int n = atomic_load(&ncommits) < MAX_COMMITS ? atomic_load(&ncommits) : MAX_COMMITS;
    int64_t first = INT64_MAX;

    for (int i = 0; i < n; i++) /* writers race to the array: not quite sorted */
        if (commit_ms[i] > ms && commit_ms[i] < first)
            first = commit_ms[i];
    return first;
}

/*
 * The longest time the slave had changes to apply and committed none:
 * between two of its commits a and b, from the first master commit after
 * a (when it had something again) to b.
 */
static int64_t longest_gap(const seen *sn, int64_t from_ms, int64_t to_ms, int64_t *at)
{
    int n = atomic_load(&sn->n) < MAX_COMMITS ? atomic_load(&sn->n) : MAX_COMMITS;
    int64_t gap = 0, prev = from_ms;

    for (int i = 0; i < n && sn->at_ms[i] <= to_ms; i++) {
        int64_t since;
        if (sn->at_ms[i] < from_ms)
            continue;
        since = next_commit(prev);
        if (since < sn->at_ms[i] && sn->at_ms[i] - since > gap) {
            gap = sn->at_ms[i] - since;
            *at = since - from_ms;
        }
        prev = sn->at_ms[i];
    }
    return gap;
}

/* The longest time without a master commit while the writers ran. */
static int64_t master_gap(int64_t from_ms, int64_t to_ms)
{
    int64_t gap = 0, prev = from_ms, next;

    while ((next = next_commit(prev)) <= to_ms) {
        gap = next - prev > gap ? next - prev : gap;
        prev = next;
    }
    return gap;
}

/*
 * What the machine took from the slave and the master: on two shared cores a thread may wait
 * for a CPU for hundreds of milliseconds while other processes run, and nothing in verso can
 * commit meanwhile. A sampler reads every 5 ms how long each thread of this process (the
 * slave's, not the writers') and of the master process has waited on a run queue
 * (/proc/.../task/TID/schedstat, second field); starvation() is, over a window, the longest
 * such wait of a thread of each process, added.
 */
#define ST_SAMPLES 1200
#define ST_THREADS 48

typedef struct starve {
    pthread_t t;
    atomic_int stop, self;
    pid_t master;
    const writer *w; /* NWRITERS, skipped */
    int n;
    int64_t at_ms[ST_SAMPLES];
    int tids[ST_THREADS]; /* index k: a thread seen; tid < 0: the master's (-tid) */
    int ntids;
    int64_t wait_us[ST_SAMPLES][ST_THREADS]; /* cumulative; -1 not seen at that sample */
} starve;

static int64_t read_wait_us(pid_t pid, int tid)
{
    char path[96];
    unsigned long long run = 0, wait = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, tid);
    if (!(f = fopen(path, "r")))
        return -1;
    if (fscanf(f, "%llu %llu", &run, &wait) != 2)
        wait = 0;
    fclose(f);
    return (int64_t)(wait / 1000);
}

static bool skipped(const starve *st, int tid)
{
    for (int i = 0; i < NWRITERS; i++)
        if (atomic_load(&st->w[i].tid) == tid)
            return true;
    return tid == atomic_load(&st->self);
}

static int tid_index(starve *st, int key)
{
    for (int k = 0; k < st->ntids; k++)
        if (st->tids[k] == key)
            return k;
    if (st->ntids == ST_THREADS)
        return -1;
    st->tids[st->ntids] = key;
    for (int i = 0; i < ST_SAMPLES; i++)
        st->wait_us[i][st->ntids] = -1;
    return st->ntids++;
}

static void sample_process(starve *st, pid_t pid, int sign)
{
    char dir[64];
    struct dirent *e;
    DIR *d;

    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    if (!(d = opendir(dir)))
        return;
    while ((e = readdir(d))) {
        int tid = atoi(e->d_name), k;
        if (tid <= 0 || (sign > 0 && skipped(st, tid)) || (k = tid_index(st, sign * tid)) < 0)
            continue;
        st->wait_us[st->n][k] = read_wait_us(pid, tid);
    }
    closedir(d);
}

static void *starve_loop(void *arg)
{
    starve *st = arg;

    atomic_store(&st->self, (int)syscall(SYS_gettid));
    while (!atomic_load(&st->stop) && st->n < ST_SAMPLES) {
        st->at_ms[st->n] = h_now_ms();
        sample_process(st, getpid(), 1);
        sample_process(st, st->master, -1);
        st->n++;
        h_sleep_ms(5);
    }
    return NULL;
}

/* The longest run-queue wait of one thread of the slave's process plus one of the master's,
 * within [from, to] (ms), as far as the samples cover it. */
static int64_t starvation(const starve *st, int64_t from, int64_t to)
{
    int i0 = 0, i1 = st->n - 1;
    int64_t most[2] = {0, 0};

    while (i0 + 1 < st->n && st->at_ms[i0 + 1] <= from)
        i0++;
    while (i1 > 0 && st->at_ms[i1 - 1] >= to)
        i1--;
    for (int k = 0; i1 > i0 && k < st->ntids; k++) {
        int64_t a = st->wait_us[i0][k], b = st->wait_us[i1][k];
        int side = st->tids[k] < 0;
        if (a >= 0 && b >= a && (b - a) / 1000 > most[side])
            most[side] = (b - a) / 1000;
    }
    return most[0] + most[1];
}

/* Writers that never pause for WRITE_MS, a live slave; the master started with extra.
 * Returns how many of the slave's own catch-up sequences went on from the ring. */
static int64_t no_stall(const char *const *extra, bool bounded)
{
    char mp[600], sp[600], why[256] = "";
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    writer w[NWRITERS];
    atomic_int stop = 0;
    seen sn = {.path = sp};
    int64_t t0, t1, t2, gap, pause, at = 0, rows = 0, limit, joins, merged, starved;
    static starve st;
    verso_slave *s;
    h_master m;
    static int run;

    snprintf(why, sizeof(why), "stall-master-%d.db", run);
    h_path(mp, sizeof(mp), why);
    snprintf(why, sizeof(why), "stall-slave-%d.db", run++);
    h_path(sp, sizeof(sp), why);
    atomic_store(&ncommits, 0);
    verso_db_close(h_open(mp));
    {
        sqlite3 *q = NULL;
        assert_int_equal(sqlite3_open(mp, &q), SQLITE_OK);
        assert_int_equal(sqlite3_exec(q, "INSERT INTO accounts(id, balance) VALUES (1, 0), (2, 0)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(q);
    }
    assert_non_null(sn.at_ms = calloc(MAX_COMMITS, sizeof(int64_t)));
    h_master_start(&m, mp, extra);
    h_db_options(&o.db);
    o.client.on_apply = on_apply;
    o.client.apply_arg = &sn;
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    assert_int_equal(verso_slave_wait(s, h_head(mp), 30000), 0);
    t0 = h_now_ms();
    memset(&st, 0, sizeof(st));
    st.master = m.pid;
    st.w = w;
    for (int i = 0; i < NWRITERS; i++) {
        w[i] = (writer){.path = mp, .stop = &stop, .seed = 11u * (unsigned)i + 1};
        assert_int_equal(pthread_create(&w[i].t, NULL, write_loop, &w[i]), 0);
    }
    assert_int_equal(pthread_create(&st.t, NULL, starve_loop, &st), 0);
    h_sleep_ms(WRITE_MS);
    atomic_store(&stop, 1);
    for (int i = 0; i < NWRITERS; i++) {
        pthread_join(w[i].t, NULL);
        rows += w[i].rows;
    }
    t1 = h_now_ms();
    if (verso_slave_wait(s, h_head(mp), 120000) < 0)
        fail_msg("the slave did not reach %lld", (long long)h_head(mp));
    t2 = h_now_ms();
    atomic_store(&st.stop, 1);
    pthread_join(st.t, NULL);
    verso_slave_stop(s);
    if (sn.rd)
        sqlite3_close(sn.rd);
    gap = longest_gap(&sn, t0, t2, &at);
    /* 100 ms and a margin, plus what the machine took from everyone: the writers' own longest
     * pause (a loaded 2-core machine stops processes for 100-200 ms; main's stall is seconds) */
    pause = master_gap(t0, t1);
    starved = starvation(&st, t0 + at, t0 + at + gap);
    limit = (SLOW ? 400 : 150) + (pause > starved ? pause : starved);
    print_message("%lld rows in %lld ms (%d commits, longest pause %lld ms); slave done %lld ms "
                  "later; %d slave commits; longest without one while behind %lld ms (at %lld "
                  "ms; slave and master waited %lld ms for a CPU then)\n",
                  (long long)rows, (long long)(t1 - t0), atomic_load(&ncommits), (long long)pause,
                  (long long)(t2 - t1), atomic_load(&sn.n), (long long)gap, (long long)at,
                  (long long)starved);
    if (atomic_load(&sn.broken))
        fail_msg("%d commits were not master states: %s", atomic_load(&sn.broken), sn.why);
    if (bounded && gap > limit)
        fail_msg("no commit for %lld ms (at %lld ms of %lld; limit %lld)", (long long)gap,
                 (long long)at, (long long)(t2 - t0), (long long)limit);
    h_assert_converged(mp, sp);
    joins = metric(&m, "verso_sync_ring_joins_total");
    merged = metric(&m, "verso_sync_ring_merged_total");
    print_message("ring: %lld merged messages, %lld catch-ups joined\n", (long long)merged,
                  (long long)joins);
    h_master_kill(&m, SIGTERM);
    free(sn.at_ms);
    return joins;
}

static void test_no_stall(void **state)
{
    (void)state;
    (void)no_stall(NULL, true);
}

/* Each commit's segment is several messages (40 changes each): slaves are sent them part-way, and
 * commit only at segment ends. */
static void test_no_stall_small_messages(void **state)
{
    const char *extra[] = {"--chunk", "40", NULL};

    (void)state;
    (void)no_stall(extra, true);
}

/* A ring of four segments: the slave, behind it whenever the writers outrun it, catches up with
 * reads of its own, which go on from the ring when they reach into it. Every commit is still a
 * state of the master (the invariant checked after each), and the slave converges. No bound on
 * the time between commits here: a slave further behind than the ring commits when its reads
 * reach the head (docs/protocol.md). */
static void test_small_ring_states(void **state)
{
    const char *extra[] = {"--chunk", "40", "--ring-segments", "4", NULL};

    (void)state;
    (void)no_stall(extra, false);
}

/* A copy of path's committed state (VACUUM INTO on a connection of its own). */
static void copy_db(const char *path, const char *to)
{
    sqlite3 *q = NULL;
    char sql[700];

    unlink(to);
    snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", to);
    assert_int_equal(sqlite3_open_v2(path, &q, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(q, 5000);
    if (sqlite3_exec(q, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(q));
    sqlite3_close(q);
}

/* The slave's commits (its on_apply): each cursor, and a copy of the file as committed. */
typedef struct cursors {
    const char *path;
    int64_t at[64];
    atomic_int n;
} cursors;

static void copy_name(char *out, size_t n, const char *what, int i)
{
    char name[64];

    snprintf(name, sizeof(name), "join-%s-%d.db", what, i);
    h_path(out, n, name);
}

static void on_commit(const verso_sync_change *c, size_t n, int64_t cursor, bool reset, void *arg)
{
    cursors *k = arg;
    int i = atomic_load(&k->n);
    char to[600];

    (void)c;
    (void)n;
    (void)reset;
    if (i < 64) {
        k->at[i] = cursor;
        copy_name(to, sizeof(to), "slave", i);
        copy_db(k->path, to);
        atomic_store(&k->n, i + 1);
    }
}

/* A slave far behind the ring's tail, the master idle: its reads from its cursor (20 changes,
 * doubling every 8 messages) reach into the ring before its head, and the sequence goes on from
 * the ring's messages (the entries above its cursor, more until the head of its last read). */
static void test_catch_up_joins_ring(void **state)
{
    const char *extra[] = {"--chunk", "20", "--ring-segments", "32", NULL};
    char mp[600], sp[2][600], why[256] = "";
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s[2];
    int64_t joins0, joins, heads[101];
    static cursors seen;
    char copy[600], scopy[600], url[64];
    fp_proxy *proxy = NULL;
    h_master m;
    verso_db *db;

    (void)state;
    db = start_pair(&m, mp, sp, s, &o, "join", 13, extra);
    heads[0] = h_head(mp);
    for (int k = 1; k <= 100; k++) { /* one segment each; the ring keeps the last 32 */
        h_orm_workload(db, 1, 10);
        wait_all(s, 1, heads[k] = h_head(mp));
        copy_name(copy, sizeof(copy), "master", k); /* the master's state at that head */
        copy_db(mp, copy);
    }
    seen.path = sp[1];
    joins0 = metric(&m, "verso_sync_ring_joins_total");
    o.client.on_apply = on_commit;
    o.client.apply_arg = &seen;
    /* through a proxy at 64 KB/s: the slave finds its socket empty at many boundaries and
     * commits there, so a commit made too early would be seen */
    assert_int_equal(fp_start(&proxy, m.port), 0);
    fp_set(proxy, FP_THROTTLE, 64 * 1024);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fp_port(proxy));
    if (verso_slave_start(&s[1], sp[1], url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    wait_all(&s[1], 1, h_head(mp));
    joins = metric(&m, "verso_sync_ring_joins_total") - joins0;
    print_message("catch-up of 100 commits behind a ring of 32: %lld joins\n", (long long)joins);
    assert_true(joins >= 1);
    for (int i = 0; i < 2; i++)
        verso_slave_stop(s[i]);
    fp_stop(proxy);
    print_message("the slave committed %d times\n", atomic_load(&seen.n));
    assert_true(atomic_load(&seen.n) >= 1);
    for (int i = 0; i < atomic_load(&seen.n); i++) { /* each commit the master's state then */
        int k = 1;
        while (k <= 100 && seen.at[i] != heads[k])
            k++;
        if (k > 100)
            fail_msg("commit %d of the slave at %lld: not a head of the master", i,
                     (long long)seen.at[i]);
        copy_name(copy, sizeof(copy), "master", k);
        copy_name(scopy, sizeof(scopy), "slave", i);
        h_assert_converged(copy, scopy);
    }
    for (int i = 0; i < 2; i++)
        h_assert_converged(mp, sp[i]);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_encoding),      cmocka_unit_test(test_merged_catch_up),
        cmocka_unit_test(test_no_stall),          cmocka_unit_test(test_no_stall_small_messages),
        cmocka_unit_test(test_small_ring_states), cmocka_unit_test(test_catch_up_joins_ring),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_ring");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
