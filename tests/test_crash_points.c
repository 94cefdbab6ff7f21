/*
 * kill -9 at chosen points (orm/crashpoint.c): each case arms one named
 * point in one process (`verso replicate`, `verso pull`, a master process,
 * or a forked child writing through the ORM) while the master takes
 * writes. The process must die by a SIGKILL this test did not send, its
 * marker naming the point. Then, without the point: integrity_check ok,
 * the slave's cursor matches its data, the slave converges to the master
 * exactly (rows, versions, tombstones), and no version appears twice.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "sync_harness.h"
#include "support/internal.h"

extern char **environ;

/* ---- processes ---- */

/* Builds the child's environment: ours without VERSO_CRASH_*, plus the point if any. */
static char **child_env(char *at, char *mark)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 3, sizeof(*env));
    assert_non_null(env);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "VERSO_CRASH_", 12) != 0)
            env[k++] = environ[i];
    if (at) {
        env[k++] = at;
        env[k++] = mark;
    }
    return env;
}

/*
 * Starts argv (argv[0] a path) with the point armed (crash may be NULL);
 * its stdout into *out when out is not NULL; stderr into <dir>/<log>.
 */
static pid_t spawn(const char *const *argv, const char *crash, const char *mark_file, int *out,
                   const char *log)
{
    char at[128], mark[700], logp[700];
    char **env;
    int fds[2] = {-1, -1};
    pid_t pid, parent = getpid();

    snprintf(at, sizeof(at), "VERSO_CRASH_AT=%s", crash ? crash : "");
    snprintf(mark, sizeof(mark), "VERSO_CRASH_MARK=%s", mark_file ? mark_file : "");
    h_path(logp, sizeof(logp), log);
    env = child_env(crash ? at : NULL, mark);
    if (out)
        assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int err = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        if (out) {
            dup2(fds[1], STDOUT_FILENO);
            close(fds[0]);
            close(fds[1]);
        }
        dup2(err, STDERR_FILENO);
        execve(argv[0], (char *const *)argv, env);
        _exit(127);
    }
    free(env);
    if (out) {
        close(fds[1]);
        *out = fds[0];
    }
    return pid;
}

/* `verso cmd --quiet [--chunk N] url spath` (cmd may be "pull --chunk=N"). */
static pid_t spawn_cli(const char *cmd, const char *url, const char *spath, const char *crash,
                       const char *mark)
{
    char verb[32], chunk[16] = "";
    const char *argv[] = {getenv("VERSO_BIN"), verb, "--quiet", url, spath, NULL, NULL, NULL};

    if (sscanf(cmd, "%31[a-z] --chunk=%15[0-9]", verb, chunk) == 2) {
        argv[3] = "--chunk";
        argv[4] = chunk;
        argv[5] = url;
        argv[6] = spath;
    }
    return spawn(argv, crash, mark, NULL, "children.log");
}

/* A master process (the harness's "--master") on port (0: any), with the point armed. */
static void master_start(h_master *m, const char *db, int port, const char *crash, const char *mark)
{
    char p[16], line[32] = "";
    const char *argv[] = {"/proc/self/exe", "--master", db, "--port", p, NULL};
    int fd;
    FILE *f;

    snprintf(p, sizeof(p), "%d", port);
    m->pid = spawn(argv, crash, mark, &fd, "masters.log");
    f = fdopen(fd, "r");
    assert_non_null(f);
    if (!fgets(line, sizeof(line), f))
        fail_msg("the master process did not start");
    fclose(f);
    m->port = atoi(line);
    assert_true(m->port > 0);
    snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", m->port);
}

/* Waits (bounded) for pid to end; false on timeout. */
static bool wait_end(pid_t pid, int *status, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (h_now_ms() < deadline) {
        pid_t r = waitpid(pid, status, WNOHANG);
        assert_true(r >= 0);
        if (r == pid)
            return true;
        h_sleep_ms(5);
    }
    return false;
}

/* pid dies of SIGKILL (not ours) within the deadline, its marker naming the point. */
static void expect_crash(pid_t pid, const char *mark, const char *point)
{
    char line[128] = "", want[128];
    int status;
    FILE *f;

    if (!wait_end(pid, &status, 30000)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("crash point %s was not reached in 30 s", point);
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("%s: the process ended otherwise than by SIGKILL (status %#x)", point, status);
    snprintf(want, sizeof(want), "%.*s", (int)strcspn(point, ":"), point); /* "name:N" */
    f = fopen(mark, "r");
    if (!f || !fgets(line, sizeof(line), f))
        fail_msg("%s: no marker", point);
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    assert_string_equal(line, want);
    unlink(mark);
}

/* Runs a process to its end (bounded) and returns its exit code. */
static int run_to_end(pid_t pid)
{
    int status;

    if (!wait_end(pid, &status, 30000)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("process %ld did not end in 30 s", (long)pid);
    }
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void stop(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    assert_true(wait_end(pid, &status, 20000));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the master's writer ---- */

typedef struct load {
    verso_db *db;
    pthread_mutex_t lock;
    pthread_t th;
    atomic_int stop;
    atomic_int txns;
} load;

static void *load_run(void *arg)
{
    load *l = arg;

    while (!atomic_load(&l->stop)) {
        pthread_mutex_lock(&l->lock);
        h_orm_workload(l->db, 1, 8);
        pthread_mutex_unlock(&l->lock);
        atomic_fetch_add(&l->txns, 1);
        h_sleep_ms(2);
    }
    return NULL;
}

static void load_start(load *l, verso_db *db)
{
    l->db = db;
    atomic_store(&l->stop, 0);
    assert_int_equal(pthread_create(&l->th, NULL, load_run, l), 0);
}

static void load_stop(load *l)
{
    atomic_store(&l->stop, 1);
    pthread_join(l->th, NULL);
}

/* ---- checks ---- */

/* No version twice among the rows and tombstones of path, none above its head. */
static void assert_versions_unique(const char *path)
{
    sqlite3 *s = NULL;
    static const char all[] = "(SELECT version FROM items UNION ALL SELECT version FROM accounts "
                              "UNION ALL SELECT version FROM _verso_tombstones)";
    char sql[300];

    assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) - COUNT(DISTINCT version) FROM %s", all);
    assert_int_equal(h_sql_int(s, sql, 0), 0);
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM %s WHERE version > (SELECT v FROM _verso_head)", all);
    assert_int_equal(h_sql_int(s, sql, 0), 0);
    sqlite3_close(s);
}

/* The deletion log: the slave's tombstones are the master's, and it holds
 * every master tombstone newer than its horizon. */
static void assert_tombstones(const char *mpath, const char *spath)
{
    sqlite3 *s = NULL;
    char att[700];

    assert_int_equal(sqlite3_open_v2(spath, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    snprintf(att, sizeof(att), "ATTACH '%s' AS m", mpath);
    assert_int_equal(sqlite3_exec(s, att, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(h_sql_int(s,
                               "SELECT COUNT(*) FROM main._verso_tombstones AS t WHERE NOT EXISTS "
                               "(SELECT 1 FROM m._verso_tombstones AS u WHERE u.version = "
                               "t.version AND u.tbl = t.tbl AND u.id = t.id)",
                               0),
                     0);
    assert_int_equal(h_sql_int(s,
                               "SELECT COUNT(*) FROM m._verso_tombstones AS u WHERE u.version > "
                               "(SELECT value FROM main._verso_meta WHERE key = 'horizon') AND "
                               "NOT EXISTS (SELECT 1 FROM main._verso_tombstones AS t WHERE "
                               "t.version = u.version AND t.tbl = u.tbl AND t.id = u.id)",
                               0),
                     0);
    sqlite3_close(s);
}

/* An integer read from path without opening it through the ORM (which would
 * create the test's tables in a slave file and so turn it away from a file
 * snapshot); -1 if there is none. */
static int64_t read_int(const char *path, const char *sql)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(s, 5000);
        if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

static int64_t cursor_of(const char *path)
{
    return read_int(path, "SELECT value FROM _verso_meta WHERE key = 'cursor_version'");
}

static int64_t head_of(const char *path)
{
    return read_int(path, "SELECT v FROM _verso_head");
}

/* Waits (bounded) until the slave's cursor reaches the master's head. */
static bool wait_cursor(const char *mpath, const char *spath, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (h_now_ms() < deadline) {
        if (cursor_of(spath) == head_of(mpath))
            return true;
        h_sleep_ms(10);
    }
    return false;
}

/* Nothing of a snapshot (made or received) is left beside path's file. */
static void assert_no_snapshot_files(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char prefix[300];
    DIR *d = opendir(h_dir);
    struct dirent *e;

    assert_non_null(d);
    snprintf(prefix, sizeof(prefix), "%s.snapshot", base);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            fail_msg("%s/%s was left behind", h_dir, e->d_name);
    closedir(d);
}

/* The slave's file right after the crash (the master at rest). */
static void check_after_crash(const char *mpath, const char *spath)
{
    if (access(spath, F_OK) != 0)
        return;
    h_assert_integrity(spath);
    if (h_count(spath, "_verso_meta") > 0)
        h_assert_cursor_matches_data(mpath, spath);
}

/* The slave follows again without the point: the master's exact copy. */
static void converge(const h_master *m, const char *mpath, const char *spath, verso_db *db)
{
    pid_t pid = spawn_cli("replicate", m->url, spath, NULL, NULL);

    h_orm_workload(db, 3, 5);
    if (!wait_cursor(mpath, spath, 30000))
        fail_msg("the slave did not catch up after the crash");
    stop(pid);
    h_assert_converged(mpath, spath);
    assert_tombstones(mpath, spath);
    assert_versions_unique(mpath);
    assert_versions_unique(spath);
    assert_no_snapshot_files(spath);
    assert_no_snapshot_files(mpath);
}

/* ---- the cases ---- */

typedef struct fixture {
    char mpath[600], spath[600], mark[600];
    verso_db *db;
    h_master m;
    load l;
} fixture;

static void fixture_up(fixture *f, const char *base, int rows)
{
    static int cases;
    char n[128], name[64];

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->l.lock, NULL);
    snprintf(name, sizeof(name), "%s%d", base, ++cases); /* a fresh pair of files per case */
    snprintf(n, sizeof(n), "%s-master.db", name);
    h_path(f->mpath, sizeof(f->mpath), n);
    snprintf(n, sizeof(n), "%s-slave.db", name);
    h_path(f->spath, sizeof(f->spath), n);
    snprintf(n, sizeof(n), "%s.mark", name);
    h_path(f->mark, sizeof(f->mark), n);
    f->db = h_open(f->mpath);
    h_seed_accounts(f->db, 10);
    h_orm_workload(f->db, rows, 10);
}

static void fixture_down(fixture *f)
{
    h_master_kill(&f->m, SIGTERM);
    verso_db_close(f->db);
    pthread_mutex_destroy(&f->l.lock);
}

/* A slave brought to the master's head by a plain pull (a file snapshot). */
static void bootstrap(fixture *f)
{
    assert_int_equal(run_to_end(spawn_cli("pull", f->m.url, f->spath, NULL, NULL)), 0);
    assert_int_equal(cursor_of(f->spath), head_of(f->mpath));
}

/*
 * A slave process (cmd: replicate or pull) applying rows dies at point;
 * before_commit: the point precedes the apply's COMMIT, so the stored
 * cursor must not have moved.
 */
static void slave_apply_case(const char *cmd, const char *point, bool before_commit)
{
    fixture f;
    int64_t cursor;
    pid_t pid;

    h_seed(31);
    fixture_up(&f, "apply", 40);
    master_start(&f.m, f.mpath, 0, NULL, NULL);
    bootstrap(&f);
    cursor = cursor_of(f.spath);
    h_orm_workload(f.db, 30, 10); /* rows and deletions to apply */
    h_sql_workload(f.mpath, 3);
    load_start(&f.l, f.db);
    pid = spawn_cli(cmd, f.m.url, f.spath, point, f.mark);
    expect_crash(pid, f.mark, point);
    pthread_mutex_lock(&f.l.lock);
    check_after_crash(f.mpath, f.spath);
    if (before_commit)
        assert_int_equal(cursor_of(f.spath), cursor);
    else
        assert_true(cursor_of(f.spath) > cursor);
    pthread_mutex_unlock(&f.l.lock);
    load_stop(&f.l);
    converge(&f.m, f.mpath, f.spath, f.db);
    fixture_down(&f);
}

static void test_replicate_apply_begin(void **state)
{
    (void)state;
    slave_apply_case("replicate", "slave.apply.begin", true);
}

static void test_replicate_apply_delete(void **state)
{
    (void)state;
    slave_apply_case("replicate", "slave.apply.delete", true);
}

static void test_replicate_apply_written(void **state)
{
    (void)state;
    slave_apply_case("replicate", "slave.apply.written", true);
}

static void test_replicate_apply_cursor(void **state)
{
    (void)state;
    slave_apply_case("replicate", "slave.apply.cursor", true);
}

static void test_replicate_apply_committed(void **state)
{
    (void)state;
    slave_apply_case("replicate", "slave.apply.committed", false);
}

static void test_pull_apply_delete(void **state)
{
    (void)state;
    slave_apply_case("pull", "slave.apply.delete:2", true);
}

static void test_pull_apply_cursor(void **state)
{
    (void)state;
    slave_apply_case("pull", "slave.apply.cursor", true);
}

/* Pages of one master transaction are one slave transaction: a kill on a later page keeps none. */
static void test_pull_pages_delete(void **state)
{
    (void)state;
    slave_apply_case("pull --chunk=3", "slave.apply.delete:4", true);
}

static void test_pull_apply_committed(void **state)
{
    (void)state;
    slave_apply_case("pull", "slave.apply.committed", false);
}

/* `verso replicate --port P url spath` serving spath; its URL read from its log into out. */
static pid_t spawn_cascade(char out[64], const char *url, const char *spath, int port,
                           const char *crash, const char *mark)
{
    char p[16], log[64], logp[700], line[256];
    const char *argv[] = {getenv("VERSO_BIN"), "replicate", "--port", p, url, spath, NULL};
    int64_t deadline = h_now_ms() + 20000;
    pid_t pid;

    snprintf(p, sizeof(p), "%d", port);
    snprintf(log, sizeof(log), "cascade-%d.log", port);
    h_path(logp, sizeof(logp), log);
    unlink(logp);
    pid = spawn(argv, crash, mark, NULL, log);
    for (out[0] = '\0'; !out[0] && h_now_ms() < deadline; h_sleep_ms(10)) {
        FILE *f = fopen(logp, "r");
        while (f && fgets(line, sizeof(line), f))
            if (strstr(line, "serving") && strstr(line, "http://"))
                snprintf(out, 64, "%.*s", (int)strcspn(strstr(line, "http://"), " \r\n"),
                         strstr(line, "http://"));
        if (f)
            fclose(f);
    }
    if (!out[0])
        fail_msg("the cascading slave did not say where it serves");
    return pid;
}

/*
 * A cascading slave B (A -> B -> C) dies inside an apply while C follows
 * it; started again on its port, A, B and C converge, C never ahead of B.
 */
static void test_cascade_apply_cursor(void **state)
{
    fixture f;
    char burl[64], bpath[600], bmark[600];
    pid_t b, c;
    int port;

    (void)state;
    h_seed(38);
    fixture_up(&f, "cascade", 40);
    h_path(bpath, sizeof(bpath), "cascade-b.db");
    h_path(bmark, sizeof(bmark), "cascade-b.mark");
    master_start(&f.m, f.mpath, 0, NULL, NULL);
    assert_int_equal(run_to_end(spawn_cli("pull", f.m.url, bpath, NULL, NULL)), 0);
    b = spawn_cascade(burl, f.m.url, bpath, 0, "slave.apply.cursor:3", bmark);
    port = atoi(strrchr(burl, ':') + 1);
    c = spawn_cli("replicate", burl, f.spath, NULL, NULL);
    if (!wait_cursor(bpath, f.spath, 30000))
        fail_msg("C did not follow B");
    load_start(&f.l, f.db);
    expect_crash(b, bmark, "slave.apply.cursor");
    load_stop(&f.l);
    h_assert_integrity(bpath);
    h_assert_cursor_matches_data(f.mpath, bpath);
    h_assert_cursor_matches_data(bpath, f.spath); /* C is not ahead of what B kept */
    b = spawn_cascade(burl, f.m.url, bpath, port, NULL, NULL);
    h_orm_workload(f.db, 3, 5);
    if (!wait_cursor(f.mpath, bpath, 30000) || !wait_cursor(bpath, f.spath, 30000))
        fail_msg("the cascade did not catch up after B's crash");
    stop(c);
    stop(b);
    h_assert_converged(f.mpath, bpath);
    h_assert_converged(bpath, f.spath);
    assert_tombstones(f.mpath, bpath);
    assert_tombstones(bpath, f.spath);
    assert_no_snapshot_files(bpath);
    fixture_down(&f);
}

/*
 * A slave that finds another master (another identity) on its URL
 * resynchronises in one transaction: killed once that transaction removed
 * its rows, it keeps the former master's exact copy; started again, it
 * becomes the new master's.
 */
static void test_resync_apply_begin(void **state)
{
    fixture old, f;
    pid_t pid;
    int port;

    (void)state;
    h_seed(37);
    fixture_up(&old, "former", 40);
    master_start(&old.m, old.mpath, 0, NULL, NULL);
    bootstrap(&old);
    port = old.m.port;
    h_master_kill(&old.m, SIGTERM);
    fixture_up(&f, "resync", 25);
    master_start(&f.m, f.mpath, port, NULL, NULL);
    pid = spawn_cli("replicate", f.m.url, old.spath, "slave.apply.begin", f.mark);
    expect_crash(pid, f.mark, "slave.apply.begin");
    h_assert_converged(old.mpath, old.spath);
    converge(&f.m, f.mpath, old.spath, f.db);
    fixture_down(&f);
    fixture_down(&old);
}

/*
 * An empty slave (cmd) dies at point while installing the master's file
 * snapshot; the master then grows (the next snapshot differs in size and
 * content) before the slave starts again.
 */
static void snapshot_case(const char *cmd, const char *point)
{
    fixture f;
    pid_t pid;

    h_seed(32);
    fixture_up(&f, "snap", 60);
    master_start(&f.m, f.mpath, 0, NULL, NULL);
    load_start(&f.l, f.db);
    pid = spawn_cli(cmd, f.m.url, f.spath, point, f.mark);
    expect_crash(pid, f.mark, point);
    pthread_mutex_lock(&f.l.lock);
    check_after_crash(f.mpath, f.spath);
    pthread_mutex_unlock(&f.l.lock);
    load_stop(&f.l);
    h_orm_workload(f.db, 150, 20);
    converge(&f.m, f.mpath, f.spath, f.db);
    fixture_down(&f);
}

static void test_snapshot_received(void **state)
{
    (void)state;
    snapshot_case("replicate", "snapshot.received");
}

static void test_snapshot_received_pull(void **state)
{
    (void)state;
    snapshot_case("pull", "snapshot.received");
}

static void test_snapshot_fixing(void **state)
{
    (void)state;
    snapshot_case("replicate", "snapshot.fixing");
}

static void test_snapshot_fixed(void **state)
{
    (void)state;
    snapshot_case("pull", "snapshot.fixed");
}

static void test_snapshot_locked(void **state)
{
    (void)state;
    snapshot_case("replicate", "snapshot.locked");
}

static void test_snapshot_installed(void **state)
{
    (void)state;
    snapshot_case("pull", "snapshot.installed");
}

/*
 * The master process dies at point while a live slave (or, for pull, a
 * pull) reads from it and the file takes writes; it is started again on
 * the same port without the point and the slave converges.
 */
static void master_case(const char *cmd, const char *point)
{
    fixture f;
    pid_t pid;
    int port;

    h_seed(33);
    fixture_up(&f, "master", 40);
    master_start(&f.m, f.mpath, 0, NULL, NULL);
    bootstrap(&f);
    h_master_kill(&f.m, SIGTERM);
    master_start(&f.m, f.mpath, 0, point, f.mark);
    port = f.m.port;
    load_start(&f.l, f.db);
    pid = spawn_cli(cmd, f.m.url, f.spath, NULL, NULL);
    expect_crash(f.m.pid, f.mark, point);
    f.m.pid = 0;
    load_stop(&f.l);
    h_assert_integrity(f.mpath);
    assert_versions_unique(f.mpath);
    if (!strcmp(cmd, "pull"))
        run_to_end(pid); /* failed or finished: its file is checked either way */
    check_after_crash(f.mpath, f.spath);
    master_start(&f.m, f.mpath, port, NULL, NULL);
    if (!strcmp(cmd, "replicate")) {
        h_orm_workload(f.db, 3, 5);
        if (!wait_cursor(f.mpath, f.spath, 30000)) /* it reconnected by itself */
            fail_msg("the live slave did not resume after the master's crash");
        stop(pid);
    }
    converge(&f.m, f.mpath, f.spath, f.db);
    fixture_down(&f);
}

/* The master dies while it copies its file for an empty slave's snapshot. */
static void test_master_snapshot_copying(void **state)
{
    fixture f;
    pid_t pid;
    int port;

    (void)state;
    h_seed(36);
    fixture_up(&f, "msnap", 60);
    master_start(&f.m, f.mpath, 0, "master.snapshot.copying", f.mark);
    port = f.m.port;
    pid = spawn_cli("replicate", f.m.url, f.spath, NULL, NULL);
    expect_crash(f.m.pid, f.mark, "master.snapshot.copying");
    f.m.pid = 0;
    h_assert_integrity(f.mpath);
    h_orm_workload(f.db, 20, 10);
    master_start(&f.m, f.mpath, port, NULL, NULL);
    if (!wait_cursor(f.mpath, f.spath, 30000))
        fail_msg("the empty slave did not get its snapshot after the master's crash");
    stop(pid);
    converge(&f.m, f.mpath, f.spath, f.db);
    fixture_down(&f);
}

/* Rows of about 1 KiB, so that a snapshot takes several messages. */
static void grow(const char *path, int rows)
{
    sqlite3 *s = NULL;
    char sql[300];

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < %d) "
             "INSERT INTO items(name, price, qty) SELECT hex(randomblob(500)), x, x FROM n",
             rows);
    assert_int_equal(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
}

/* The master dies between two messages of a snapshot: the empty slave keeps nothing of it. */
static void test_master_mid_snapshot(void **state)
{
    fixture f;
    pid_t pid;
    int port;

    (void)state;
    h_seed(39);
    fixture_up(&f, "midsnap", 20);
    grow(f.mpath, 3000);
    master_start(&f.m, f.mpath, 0, "master.ws.queued:3", f.mark);
    port = f.m.port;
    pid = spawn_cli("replicate", f.m.url, f.spath, NULL, NULL);
    expect_crash(f.m.pid, f.mark, "master.ws.queued");
    f.m.pid = 0;
    check_after_crash(f.mpath, f.spath);
    assert_true(cursor_of(f.spath) <= 0); /* nothing installed */
    grow(f.mpath, 500);
    master_start(&f.m, f.mpath, port, NULL, NULL);
    if (!wait_cursor(f.mpath, f.spath, 30000))
        fail_msg("the empty slave did not get its snapshot after the master's crash");
    stop(pid);
    converge(&f.m, f.mpath, f.spath, f.db);
    fixture_down(&f);
}

static void test_master_changes_built(void **state)
{
    (void)state;
    master_case("replicate", "master.changes.built:2");
}

static void test_master_ws_queued(void **state)
{
    (void)state;
    master_case("replicate", "master.ws.queued:5");
}

static void test_rest_changes_built(void **state)
{
    (void)state;
    master_case("pull", "rest.changes.built");
}

/*
 * The master process dies inside a REST write, versions written and not
 * committed: the write is gone, versions go on above the head, and a
 * slave that followed before converges.
 */
static void test_serve_orm_commit(void **state)
{
    fixture f;
    int port, n = 0;
    int64_t head;

    (void)state;
    h_seed(34);
    fixture_up(&f, "serve", 30);
    master_start(&f.m, f.mpath, 0, NULL, NULL);
    bootstrap(&f);
    h_master_kill(&f.m, SIGTERM);
    master_start(&f.m, f.mpath, 0, "orm.commit:3", f.mark);
    port = f.m.port;
    for (; n < 3; n++) {
        char json[80];
        snprintf(json, sizeof(json), "{\"name\":\"rest-%d\",\"qty\":%d}", n, n);
        head = head_of(f.mpath);
        if (h_http(&f.m, "POST", "/items", json, NULL) != 201)
            break;
    }
    assert_int_equal(n, 2); /* the third did not answer */
    expect_crash(f.m.pid, f.mark, "orm.commit");
    f.m.pid = 0;
    h_assert_integrity(f.mpath);
    assert_int_equal(head_of(f.mpath), head);
    assert_versions_unique(f.mpath);
    {
        sqlite3 *s = NULL;
        assert_int_equal(sqlite3_open_v2(f.mpath, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(h_sql_int(s, "SELECT COUNT(*) FROM items WHERE name = 'rest-1'", 0), 1);
        assert_int_equal(h_sql_int(s, "SELECT COUNT(*) FROM items WHERE name = 'rest-2'", 0), 0);
        sqlite3_close(s);
    }
    master_start(&f.m, f.mpath, port, NULL, NULL);
    h_orm_workload(f.db, 2, 3);
    assert_versions_unique(f.mpath);
    converge(&f.m, f.mpath, f.spath, f.db);
    fixture_down(&f);
}

/* A forked child writing through the ORM dies before its 5th COMMIT while a live slave follows. */
static void orm_child(const char *path, const char *mark)
{
    verso_db *db;

    if (verso__crashpoint_arm("orm.commit:5", mark) < 0)
        _exit(2);
    db = h_open(path);
    for (int k = 1;; k++) {
        h_item it = {.price = 1.5, .qty = k};
        char name[32];
        snprintf(name, sizeof(name), "orm-%d", k);
        it.name = name;
        if (verso_db_begin(db) < 0 || verso_record_insert(db, &h_items, &it) < 0 ||
            h_orm_op(db) < 0 || h_orm_op(db) < 0 || verso_db_commit(db) < 0)
            _exit(3);
    }
}

static void test_orm_commit_child(void **state)
{
    fixture f;
    pid_t slave, pid, parent = getpid();
    int64_t head;
    sqlite3 *s = NULL;

    (void)state;
    h_seed(35);
    fixture_up(&f, "orm", 30);
    master_start(&f.m, f.mpath, 0, NULL, NULL);
    bootstrap(&f);
    slave = spawn_cli("replicate", f.m.url, f.spath, NULL, NULL);
    head = head_of(f.mpath);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        orm_child(f.mpath, f.mark);
    }
    expect_crash(pid, f.mark, "orm.commit");
    h_assert_integrity(f.mpath);
    assert_versions_unique(f.mpath);
    assert_int_equal(sqlite3_open_v2(f.mpath, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(h_sql_int(s, "SELECT COUNT(*) FROM items WHERE name = 'orm-4'", 0), 1);
    assert_int_equal(h_sql_int(s, "SELECT COUNT(*) FROM items WHERE name = 'orm-5'", 0), 0);
    sqlite3_close(s);
    assert_true(head_of(f.mpath) > head);
    h_orm_workload(f.db, 2, 3); /* versions go on above the head */
    assert_versions_unique(f.mpath);
    if (!wait_cursor(f.mpath, f.spath, 30000))
        fail_msg("the live slave did not follow the writes around the crash");
    stop(slave);
    converge(&f.m, f.mpath, f.spath, f.db);
    fixture_down(&f);
}

/* The facility itself: a bad spec is refused, an unarmed process is not killed. */
static void test_arm_spec(void **state)
{
    (void)state;
    assert_int_equal(verso__crashpoint_arm("", NULL), VERSO_EINVAL);
    assert_int_equal(verso__crashpoint_arm("x:0", NULL), VERSO_EINVAL);
    assert_int_equal(verso__crashpoint_arm("x:2y", NULL), VERSO_EINVAL);
    assert_int_equal(verso__crashpoint_arm("x:", NULL), VERSO_EINVAL);
    assert_int_equal(verso__crashpoint_arm("no.such.point:3", NULL), 0);
    verso__crashpoint("orm.commit"); /* armed for another name: nothing happens */
    assert_int_equal(verso__crashpoint_arm(NULL, NULL), 0);
    verso__crashpoint("no.such.point");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arm_spec),
        cmocka_unit_test(test_replicate_apply_begin),
        cmocka_unit_test(test_replicate_apply_delete),
        cmocka_unit_test(test_replicate_apply_written),
        cmocka_unit_test(test_replicate_apply_cursor),
        cmocka_unit_test(test_replicate_apply_committed),
        cmocka_unit_test(test_pull_apply_delete),
        cmocka_unit_test(test_pull_apply_cursor),
        cmocka_unit_test(test_pull_pages_delete),
        cmocka_unit_test(test_pull_apply_committed),
        cmocka_unit_test(test_resync_apply_begin),
        cmocka_unit_test(test_cascade_apply_cursor),
        cmocka_unit_test(test_snapshot_received),
        cmocka_unit_test(test_snapshot_received_pull),
        cmocka_unit_test(test_snapshot_fixing),
        cmocka_unit_test(test_snapshot_fixed),
        cmocka_unit_test(test_snapshot_locked),
        cmocka_unit_test(test_snapshot_installed),
        cmocka_unit_test(test_master_snapshot_copying),
        cmocka_unit_test(test_master_mid_snapshot),
        cmocka_unit_test(test_master_changes_built),
        cmocka_unit_test(test_master_ws_queued),
        cmocka_unit_test(test_rest_changes_built),
        cmocka_unit_test(test_serve_orm_commit),
        cmocka_unit_test(test_orm_commit_child),
    };

    H_MAIN_DISPATCH(argc, argv);
#ifndef VERSO_CRASHPOINTS
    puts("built without VERSO_CRASHPOINTS: nothing to test");
    return 0;
#endif
    h_init_dir("crash_points");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
