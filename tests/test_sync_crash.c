/*
 * Crashes: `verso replicate` slaves killed with SIGKILL many times during a
 * write load (half of the kills caught inside an apply transaction, the
 * others at random moments), and a master killed with SIGKILL and restarted on the same
 * file while a live slave follows. Every slave converges, nothing is lost
 * or applied twice (versions compared row by row), integrity_check is ok.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "sync_harness.h"

static pid_t spawn_replicate(const char *url, const char *spath)
{
    const char *bin = getenv("VERSO_BIN");
    const char *args[] = {"verso", "replicate", "--quiet", url, spath, NULL};
    pid_t pid, parent = getpid();

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the test died before prctl */
            _exit(1);
        dup2(devnull, STDERR_FILENO);
        execv(bin, (char *const *)args);
        _exit(127);
    }
    return pid;
}

static void reap(pid_t pid, int sig)
{
    int status;

    kill(pid, sig);
    waitpid(pid, &status, 0);
    if (sig == SIGTERM)
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    else
        assert_true(WIFSIGNALED(status));
}

/* The committed cursor of the slave file at path; -1 before it has one. */
static int64_t cursor_of(const char *path)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(s, "SELECT value FROM _verso_meta WHERE key = 'cursor_version'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

/* Another connection holds the write lock of path: BEGIN IMMEDIATE is busy (no waiting). */
static bool write_locked(const char *path)
{
    sqlite3 *s = NULL;
    int rc = SQLITE_CANTOPEN;

    if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
        rc = sqlite3_exec(s, "BEGIN IMMEDIATE; ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(s);
    return rc == SQLITE_BUSY;
}

/*
 * SIGKILLs the `verso replicate` process pid inside an apply transaction.
 * Once its cursor moved past `from` (it follows the master), it is stopped
 * (SIGSTOP) at random moments until it is caught holding the write lock of
 * spath, which it only takes to apply (BEGIN IMMEDIATE), and killed there.
 * false if it was not caught within 10 s (it is killed anyway).
 */
static bool kill_mid_apply(pid_t pid, const char *spath, int64_t from, unsigned *seed)
{
    int64_t deadline = h_now_ms() + 10000;
    bool caught = false;
    int status;

    while (cursor_of(spath) <= from && h_now_ms() < deadline)
        h_sleep_ms(5);
    while (!caught && h_now_ms() < deadline) {
        kill(pid, SIGSTOP);
        assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
        assert_true(WIFSTOPPED(status));
        if (!(caught = write_locked(spath))) {
            kill(pid, SIGCONT);
            h_sleep_ms((int)(rand_r(seed) % 3));
        }
    }
    reap(pid, SIGKILL);
    return caught;
}

/* Writes on the master without pause; the lock is held per transaction so
 * the test can look at both files while nothing is written. */
typedef struct load {
    verso_db *db;
    pthread_mutex_t lock;
    atomic_int stop;
    atomic_int txns;
} load;

static void *load_run(void *arg)
{
    load *l = arg;

    while (!atomic_load(&l->stop)) {
        pthread_mutex_lock(&l->lock); /* also serialises the seeded generator */
        h_orm_workload(l->db, 1, 20);
        pthread_mutex_unlock(&l->lock);
        atomic_fetch_add(&l->txns, 1);
    }
    return NULL;
}

static void test_slave_killed_repeatedly(void **state)
{
    char mp[600], sp[600];
    load l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    unsigned kill_seed = 21;
    pthread_t th;
    h_master m;
    verso_db *db;
    pid_t pid;

    (void)state;
    h_path(mp, sizeof(mp), "kill-master.db");
    h_path(sp, sizeof(sp), "kill-slave.db");
    db = h_open(mp);
    h_seed(21);
    h_seed_accounts(db, 10);
    h_orm_workload(db, 300, 20);
    h_master_start(&m, mp, NULL);
    l.db = db;
    assert_int_equal(pthread_create(&th, NULL, load_run, &l), 0);
    /* even rounds kill inside an apply transaction, odd ones at any moment
     * (connecting, bootstrapping, catching up, idle) */
    for (int round = 0; round < 12; round++) {
        int txns = atomic_load(&l.txns);
        int64_t from = cursor_of(sp);
        pid = spawn_replicate(m.url, sp);
        h_sleep_ms(20 + (int)(rand_r(&kill_seed) % 80));
        pthread_mutex_lock(&l.lock);
        h_sql_workload(mp, 2);
        pthread_mutex_unlock(&l.lock);
        if (round % 2) {
            h_sleep_ms((int)(rand_r(&kill_seed) % 60));
            reap(pid, SIGKILL); /* while the writer goes on */
        } else if (!kill_mid_apply(pid, sp, from, &kill_seed)) {
            fail_msg("round %d: the slave (cursor %lld, was %lld) was not caught inside an "
                     "apply transaction in 10 s",
                     round, (long long)cursor_of(sp), (long long)from);
        }
        assert_true(atomic_load(&l.txns) > txns);
        pthread_mutex_lock(&l.lock); /* the master at rest while both files are read */
        if (access(sp, F_OK) == 0)   /* absent when killed before it made its file */
            h_assert_integrity(sp);
        if (h_count(sp, "_verso_meta") > 0) /* created once the first connection got going */
            h_assert_cursor_matches_data(mp, sp);
        pthread_mutex_unlock(&l.lock);
    }
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    pid = spawn_replicate(m.url, sp);
    h_orm_workload(db, 1, 1); /* the slave must be up to apply it: its signals are set */
    if (!h_wait_cursor(mp, sp, 20000))
        fail_msg("the slave did not catch up after the kills");
    reap(pid, SIGTERM);
    h_assert_converged(mp, sp);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

static void test_master_killed_during_load(void **state)
{
    char mp[600], sp[600];
    h_master m;
    verso_db *db;
    pid_t pid;
    int port;

    (void)state;
    h_path(mp, sizeof(mp), "mkill-master.db");
    h_path(sp, sizeof(sp), "mkill-slave.db");
    db = h_open(mp);
    h_seed(22);
    h_orm_workload(db, 100, 10);
    h_master_start(&m, mp, NULL);
    port = m.port;
    pid = spawn_replicate(m.url, sp);
    for (int round = 0; round < 4; round++) {
        h_orm_workload(db, 40, 10);
        h_master_kill(&m, SIGKILL);
        h_orm_workload(db, 20, 10);
        h_assert_integrity(mp);
        h_master_start_port(&m, mp, port);
    }
    h_orm_workload(db, 10, 10); /* after the restarts: the slave is up when it has these */
    if (!h_wait_cursor(mp, sp, 20000))
        fail_msg("the slave did not catch up after the master restarts");
    reap(pid, SIGTERM);
    h_assert_converged(mp, sp);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slave_killed_repeatedly),
        cmocka_unit_test(test_master_killed_during_load),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_crash");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
