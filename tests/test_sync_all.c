/*
 * The --all slave (sync/all.c): every database of a `verso serve --dir`
 * followed into a directory.
 *
 * Against real servers (children of $VERSO_BIN): 100 databases copied,
 * then followed while databases are created and deleted and rows written,
 * with at most workers + 1 connections of the slave to the master at any
 * moment (its sockets counted in /proc); the master restarted on the same
 * port (reconnect and reconcile); --keep-deleted; a failing database that
 * does not stop the others; a database followed by URL/db/NAME (pull and
 * live); a second tier fed by `verso serve --dir` over the slave's
 * directory and followed by `verso replicate --all`.
 *
 * Against a fake events server (a verso_rest with its own /_databases
 * WebSocket): hostile names, malformed JSON, a message over the limit, a
 * list too long, an entry without a head, a head that goes backwards:
 * nothing outside the directory is touched and the errors say what was
 * wrong.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>

#include "sync_harness.h"

/* ---- child processes ---- */

typedef struct child {
    pid_t pid;
    FILE *out;
} child;

static void spawn(child *c, char *const *argv, bool capture)
{
    pid_t parent = getpid();
    int fds[2] = {-1, -1};

    if (capture)
        assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(null, STDOUT_FILENO);
        if (!getenv("VERSO_TEST_VERBOSE"))
            dup2(null, STDERR_FILENO);
        if (capture) {
            dup2(fds[1], STDOUT_FILENO);
            close(fds[0]);
            close(fds[1]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    c->out = NULL;
    if (capture) {
        close(fds[1]);
        assert_non_null(c->out = fdopen(fds[0], "r"));
    }
}

/* Children to kill whatever happens to the test (by pid: a failed test leaves its frame). */
static pid_t g_children[8];

static void track(child *c)
{
    for (size_t i = 0; i < 8; i++)
        if (!g_children[i]) {
            g_children[i] = c->pid;
            return;
        }
}

static void end_pid(pid_t pid)
{
    int status;

    for (size_t i = 0; i < 8; i++)
        if (g_children[i] == pid)
            g_children[i] = 0;
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
        h_sleep_ms(10);
    if (kill(pid, SIGKILL) == 0)
        waitpid(pid, &status, 0);
}

static void stop(child *c)
{
    end_pid(c->pid);
    if (c->out)
        fclose(c->out);
    c->pid = 0;
    c->out = NULL;
}

static void sampler_stop(void);

static int teardown(void **state)
{
    (void)state;
    sampler_stop();
    for (size_t i = 0; i < 8; i++)
        if (g_children[i])
            end_pid(g_children[i]);
    return 0;
}

/* `verso serve --dir DIR --port PORT` (0: any), or `verso serve FILE` when file; its port. */
static int serve_any(child *c, const char *dir, int port, bool file)
{
    char p[16], line[128] = "";
    char *argv[] = {getenv("VERSO_BIN"), "serve", "--dir", (char *)dir, "--port", p, NULL};
    char *colon;

    if (file) { /* verso serve FILE --port P */
        argv[2] = (char *)dir;
        argv[3] = "--port";
        argv[4] = p;
        argv[5] = NULL;
    }
    snprintf(p, sizeof(p), "%d", port);
    for (int attempt = 0; attempt < 50; attempt++) {
        spawn(c, argv, true);
        track(c);
        if (fgets(line, sizeof(line), c->out))
            break;
        stop(c); /* the port of a server just stopped may take a moment */
        h_sleep_ms(100);
    }
    assert_non_null(colon = strrchr(line, ':'));
    return atoi(colon + 1);
}

static int serve_dir(child *c, const char *dir, int port)
{
    return serve_any(c, dir, port, false);
}

/* Runs the command line cmd (a shell's), its stderr into out; its exit status. */
static int run_capture(const char *cmd, char *out, size_t n)
{
    char full[2048];
    FILE *f;
    size_t got;
    int status;

    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    assert_non_null(f = popen(full, "r"));
    got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- databases ---- */

static void db_in(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%.500s/%.64s.db", dir, name);
}

/* A new database dir/name.db with rows items, made aside and renamed in. */
static void make_db(const char *dir, const char *name, int rows)
{
    char tmp[700], path[700];
    verso_db *db;

    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s.db", dir, name);
    db_in(path, sizeof(path), dir, name);
    db = h_open(tmp);
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < rows; i++) {
        h_item it = {.name = "item", .price = i, .qty = i};
        assert_int_equal(verso_record_insert(db, &h_items, &it), 0);
    }
    assert_int_equal(verso_db_commit(db), 0);
    verso_db_close(db);
    assert_int_equal(rename(tmp, path), 0);
}

static void write_db(const char *dir, const char *name, int ntx)
{
    char path[700];
    verso_db *db;

    db_in(path, sizeof(path), dir, name);
    db = h_open(path);
    h_orm_workload(db, ntx, 3);
    verso_db_close(db);
}

static void drop_db(const char *dir, const char *name)
{
    char path[700];

    db_in(path, sizeof(path), dir, name);
    h_remove_db(path);
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* The database names of dir (valid *.db files), sorted; count returned. */
static int names_of(const char *dir, char names[][65], int max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] != '.' && len > 3 && len < 68 && !strcmp(e->d_name + len - 3, ".db"))
            snprintf(names[n++], 65, "%.*s", (int)len - 3, e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 65, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* Every database of m has its copy in s at the same identity and head (and no other, unless
 * keep); false otherwise, without asserting. */
static bool converged(const char *m, const char *s, bool keep)
{
    static char mn[400][65], sn[400][65];
    int nm = names_of(m, mn, 400), ns = names_of(s, sn, 400);

    if (keep ? ns < nm : ns != nm)
        return false;
    for (int i = 0, j = 0; i < nm; i++, j++) {
        char mp[700], sp[700], id[37];
        verso_db *db;
        verso_info info;
        while (keep && j < ns && strcmp(sn[j], mn[i]) < 0)
            j++;
        if (j >= ns || strcmp(mn[i], sn[j]))
            return false;
        db_in(mp, sizeof(mp), m, mn[i]);
        db_in(sp, sizeof(sp), s, sn[j]);
        db = h_open(mp);
        assert_int_equal(verso_db_info(&info, db), 0);
        verso_db_close(db);
        if (h_cursor(sp, id) != info.head || strcmp(id, info.identity))
            return false;
    }
    return true;
}

static bool wait_converged(const char *m, const char *s, bool keep, int ms)
{
    int64_t t0 = h_now_ms(), deadline = t0 + ms;
    bool ok = false;

    while (!ok && h_now_ms() < deadline) {
        if (!(ok = converged(m, s, keep)))
            h_sleep_ms(100);
    }
    if (getenv("VERSO_TEST_VERBOSE"))
        fprintf(stderr, "# %s converged with %s in %lld ms\n", s, m, (long long)(h_now_ms() - t0));
    return ok || converged(m, s, keep);
}

/* A read-only handle that waits for the server's writers (it opens and closes databases). */
static sqlite3 *open_ro(const char *path)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/* table is the same in both files, row by row, storage classes and versions included. */
static void assert_table_equal(const char *mpath, const char *spath, const char *table)
{
    sqlite3 *a = open_ro(mpath), *b = open_ro(spath);
    sqlite3_stmt *sa = NULL, *sb = NULL;
    char sql[200];

    snprintf(sql, sizeof(sql), "SELECT id, version, * FROM %s ORDER BY id", table);
    if (sqlite3_prepare_v2(a, sql, -1, &sa, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(b, sql, -1, &sb, NULL) != SQLITE_OK)
        fail_msg("%s / %s: %s %s", mpath, spath, sqlite3_errmsg(a), sqlite3_errmsg(b));
    for (;;) {
        int ra = sqlite3_step(sa), rb = sqlite3_step(sb);
        if (ra != rb)
            fail_msg("%s: %s and %s differ (%d, %d)", table, mpath, spath, ra, rb);
        if (ra != SQLITE_ROW)
            break;
        for (int i = 0; i < sqlite3_column_count(sa); i++)
            if (!h_same_value(sa, sb, i))
                fail_msg("%s: %s and %s differ in row %lld", table, mpath, spath,
                         (long long)sqlite3_column_int64(sa, 0));
    }
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    sqlite3_close(a);
    sqlite3_close(b);
}

/* The copy sp holds the rows of mp, at mp's head and identity. */
static void assert_copy(const char *mp, const char *sp)
{
    verso_db *db = h_open(mp);
    verso_info info;
    char id[37];

    assert_int_equal(verso_db_info(&info, db), 0);
    verso_db_close(db);
    assert_int_equal(h_cursor(sp, id), info.head);
    assert_string_equal(id, info.identity);
    assert_table_equal(mp, sp, "items");
    assert_table_equal(mp, sp, "accounts");
}

/* Every database of m has its copy in s (assert_copy). */
static void assert_all_equal(const char *m, const char *s)
{
    static char mn[400][65];
    int nm = names_of(m, mn, 400);

    for (int i = 0; i < nm; i++) {
        char mp[700], sp[700];
        db_in(mp, sizeof(mp), m, mn[i]);
        db_in(sp, sizeof(sp), s, mn[i]);
        assert_copy(mp, sp);
    }
}

/* ---- the slave's connections to a port, from /proc ---- */

/* Inodes of the sockets of this process. */
static int my_sockets(unsigned long *inodes, int max)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) && n < max) {
        char link[64], target[64];
        ssize_t len;
        snprintf(link, sizeof(link), "/proc/self/fd/%.40s", e->d_name);
        if ((len = readlink(link, target, sizeof(target) - 1)) <= 0)
            continue;
        target[len] = '\0';
        if (sscanf(target, "socket:[%lu]", &inodes[n]) == 1)
            n++;
    }
    closedir(d);
    return n;
}

/* Established TCP connections of this process to 127.0.0.1:port. */
static int connections_to(int port)
{
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    unsigned long inodes[1024];
    int n = my_sockets(inodes, 1024), count = 0;

    for (size_t f = 0; f < 2; f++) {
        FILE *in = fopen(files[f], "r");
        char line[512];
        if (!in)
            continue;
        while (fgets(line, sizeof(line), in)) {
            unsigned rport, state;
            unsigned long inode;
            if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%*x %*[0-9A-Fa-f]:%x %x %*s %*s %*s %*s %*s %lu",
                       &rport, &state, &inode) != 3 ||
                (int)rport != port || state != 1)
                continue;
            for (int i = 0; i < n; i++)
                count += inodes[i] == inode;
        }
        fclose(in);
    }
    return count;
}

typedef struct sampler {
    pthread_t t;
    int port;
    atomic_int stop;
    atomic_int max;
    atomic_long samples;
} sampler;

/* The one sampler (stopped by teardown when a test fails). */
static sampler g_smp;
static bool g_smp_running;

static void *sample(void *arg);

static void sampler_start(int port)
{
    memset(&g_smp, 0, sizeof(g_smp));
    atomic_store(&g_smp.port, port);
    assert_int_equal(pthread_create(&g_smp.t, NULL, sample, &g_smp), 0);
    g_smp_running = true;
}

static void sampler_stop(void)
{
    if (!g_smp_running)
        return;
    atomic_store(&g_smp.stop, 1);
    pthread_join(g_smp.t, NULL);
    g_smp_running = false;
}

static void *sample(void *arg)
{
    sampler *s = arg;

    while (!atomic_load(&s->stop)) {
        int c = connections_to(atomic_load(&s->port));
        if (c > atomic_load(&s->max))
            atomic_store(&s->max, c);
        atomic_fetch_add(&s->samples, 1);
        h_sleep_ms(2);
    }
    return NULL;
}

/* ---- the slave in this process ---- */

static atomic_int g_ignored_events, g_created_events;
static char g_ignored_name[300];

static void on_event(const verso_sync_all_event *e, void *arg)
{
    (void)arg;
    if (e->kind == VERSO_ALL_IGNORED) {
        if (!strcmp(e->name, "../x"))
            snprintf(g_ignored_name, sizeof(g_ignored_name), "%s", e->name);
        atomic_fetch_add(&g_ignored_events, 1);
    }
    if (e->kind == VERSO_ALL_CREATED)
        atomic_fetch_add(&g_created_events, 1);
    if (getenv("VERSO_TEST_VERBOSE"))
        fprintf(stderr, "event %s %s %s rows %lld\n", verso_sync_all_event_name(e->kind), e->name,
                e->detail, (long long)e->rows);
}

static verso_sync_all *all_start(const char *dir, int port, int workers, bool keep)
{
    verso_sync_all_options o = VERSO_SYNC_ALL_OPTIONS_INIT;
    verso_sync_all *a = NULL;
    char url[64], why[256] = "";

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    o.workers = workers;
    o.keep_deleted = keep;
    o.retry_max_ms = 500;
    o.on_event = on_event;
    if (verso_sync_all_start(&a, dir, url, &o, why, sizeof(why)) < 0)
        fail_msg("verso_sync_all_start: %s", why);
    return a;
}

static void sub(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", h_dir, name);
    mkdir(out, 0755);
}

/* ---- real servers ---- */

/* The slave's state says n databases, every one in sync, no pull running. */
static bool wait_state(verso_sync_all *a, int64_t n, int ms)
{
    verso_sync_all_state st;

    for (int64_t deadline = h_now_ms() + ms; h_now_ms() < deadline; h_sleep_ms(20)) {
        assert_int_equal(verso_sync_all_state_get(&st, a), 0);
        if (st.connected && st.databases == n && st.in_sync == n && !st.pulling)
            return true;
    }
    return false;
}

static void test_follow_100(void **state)
{
    char m[600], s[600], name[32], p[700];
    child master = {0};
    verso_sync_all *a;
    verso_sync_all_state st;
    int port;

    (void)state;
    sub(m, sizeof(m), "m100");
    sub(s, sizeof(s), "s100");
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "db%03d", i);
        make_db(m, name, 5);
    }
    port = serve_dir(&master, m, 0);
    sampler_start(port);
    a = all_start(s, port, 2, false);
    if (!wait_state(a, 100, 120000) || !wait_converged(m, s, false, 10000))
        fail_msg("the copy of 100 databases did not converge");
    /* followed while databases come and go and rows are written */
    for (int round = 0; round < 20; round++) {
        snprintf(name, sizeof(name), "new%02d", round);
        make_db(m, name, 3);
        snprintf(name, sizeof(name), "db%03d", round);
        drop_db(m, name);
        snprintf(name, sizeof(name), "db%03d", 50 + (int)(h_rand() % 50));
        write_db(m, name, 2);
        h_sleep_ms(10);
    }
    if (!wait_state(a, 100, 120000) || !wait_converged(m, s, false, 10000))
        fail_msg("the --all slave did not converge after creations and deletions");
    /* enough samples to mean something, however fast it converged (bounded wait) */
    for (int i = 0; i < 1000 && atomic_load(&g_smp.samples) <= 100; i++)
        h_sleep_ms(10);
    sampler_stop();
    printf("# connections of the slave to the master at most %d (%ld samples)\n",
           atomic_load(&g_smp.max), (long)atomic_load(&g_smp.samples));
    assert_true(atomic_load(&g_smp.samples) > 100);
    assert_true(atomic_load(&g_smp.max) >= 1);
    assert_true(atomic_load(&g_smp.max) <= 2 + 1); /* workers + the events link */
    assert_all_equal(m, s);
    assert_int_equal(verso_sync_all_state_get(&st, a), 0);
    assert_int_equal(st.errors, 0);
    assert_true(st.created >= 120 && st.removed >= 20);
    db_in(p, sizeof(p), s, "db000"); /* removed */
    assert_false(exists(p));

    /* the link killed: the master restarts on the same port, changed meanwhile */
    stop(&master);
    drop_db(m, "db050");
    make_db(m, "late", 4);
    write_db(m, "db060", 3);
    assert_int_equal(serve_dir(&master, m, port), port);
    if (!wait_state(a, 100, 120000) || !wait_converged(m, s, false, 10000))
        fail_msg("no reconcile after the master restarted");
    assert_int_equal(verso_sync_all_state_get(&st, a), 0);
    assert_true(st.reconnects >= 1);
    assert_all_equal(m, s);
    db_in(p, sizeof(p), s, "db050");
    assert_false(exists(p));
    verso_sync_all_stop(a);
    stop(&master);
}

/* verso replicate --all --keep-deleted: deleted databases stay, no longer followed. */
static void test_keep_deleted(void **state)
{
    char m[600], k[600], p[700], url[64], name[16];
    child master = {0}, kept = {0};
    int port;

    (void)state;
    sub(m, sizeof(m), "mkeep");
    sub(k, sizeof(k), "kkeep");
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        make_db(m, name, 3);
    }
    port = serve_dir(&master, m, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    {
        char *argv[] = {getenv("VERSO_BIN"),
                        "replicate",
                        "--all",
                        "--keep-deleted",
                        "--workers",
                        "1",
                        url,
                        k,
                        NULL};
        spawn(&kept, argv, false);
        track(&kept);
    }
    assert_true(wait_converged(m, k, false, 60000));
    drop_db(m, "k0");
    drop_db(m, "k1");
    make_db(m, "k-new", 2);
    write_db(m, "k5", 3);
    if (!wait_converged(m, k, true, 60000))
        fail_msg("the --keep-deleted slave did not converge");
    db_in(p, sizeof(p), k, "k0");
    assert_true(exists(p));
    assert_int_equal(h_count(p, "items"), 3);
    assert_all_equal(m, k);
    stop(&kept);
    stop(&master);
}

/*
 * A slave stopped and started again reads its directory: copies resume from
 * their cursors (nothing copied again), one deleted meanwhile is removed, a
 * file that is not a replica is left alone, a copy left half made is
 * finished or dropped.
 */
static void test_slave_restart(void **state)
{
    char m[600], s[600], p[700], name[16];
    child master = {0};
    verso_sync_all *a;
    verso_sync_all_state st;
    sqlite3 *db;
    FILE *f;
    int port;

    (void)state;
    sub(m, sizeof(m), "mrestart");
    sub(s, sizeof(s), "srestart");
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        make_db(m, name, 3);
    }
    port = serve_dir(&master, m, 0);
    a = all_start(s, port, 2, false);
    assert_true(wait_state(a, 5, 60000));
    verso_sync_all_stop(a);
    drop_db(m, "r0");
    write_db(m, "r1", 3);
    make_db(m, "r9", 2);
    db_in(p, sizeof(p), s, "mine"); /* the user's own file, not a replica */
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    snprintf(p, sizeof(p), "%s/.verso-new-gone.db", s); /* a copy left half made, of nothing */
    assert_non_null(f = fopen(p, "w"));
    fclose(f);
    a = all_start(s, port, 2, false);
    assert_true(wait_state(a, 5, 60000));
    assert_true(wait_converged(m, s, true, 10000));
    assert_int_equal(verso_sync_all_state_get(&st, a), 0);
    assert_int_equal(st.created, 1); /* r9 only */
    assert_int_equal(st.removed, 1); /* r0 */
    db_in(p, sizeof(p), s, "r0");
    assert_false(exists(p));
    db_in(p, sizeof(p), s, "mine");
    assert_true(exists(p));
    snprintf(p, sizeof(p), "%s/.verso-new-gone.db", s);
    assert_false(exists(p));
    assert_all_equal(m, s);
    verso_sync_all_stop(a);
    stop(&master);
}

/* A database whose copy cannot be made (a table of the slave's own in the way) fails alone. */
static void test_failure_isolated(void **state)
{
    char m[600], s[600], p[700];
    child master = {0};
    verso_sync_all *a;
    verso_sync_all_db *dbs = NULL;
    size_t n = 0;
    sqlite3 *db;
    bool bad_failed = false;
    int port;

    (void)state;
    sub(m, sizeof(m), "miso");
    sub(s, sizeof(s), "siso");
    make_db(m, "bad", 2);
    make_db(m, "good1", 2);
    make_db(m, "good2", 2);
    db_in(p, sizeof(p), s, "bad");
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE TABLE items(x); INSERT INTO items VALUES(42)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    port = serve_dir(&master, m, 0);
    a = all_start(s, port, 2, false);
    for (int64_t deadline = h_now_ms() + 30000; h_now_ms() < deadline && !bad_failed;) {
        h_sleep_ms(50);
        assert_int_equal(verso_sync_all_databases(&dbs, &n, a), 0);
        for (size_t i = 0; i < n; i++)
            bad_failed = bad_failed || (!strcmp(dbs[i].name, "bad") && dbs[i].failures >= 2 &&
                                        strstr(dbs[i].last_error, "items"));
        verso_free(dbs);
    }
    assert_true(bad_failed);
    for (int i = 1; i <= 2; i++) {
        char mp[700], sp[700], nm[8];
        snprintf(nm, sizeof(nm), "good%d", i);
        db_in(mp, sizeof(mp), m, nm);
        db_in(sp, sizeof(sp), s, nm);
        assert_true(h_wait_cursor(mp, sp, 30000));
        assert_copy(mp, sp);
    }
    assert_int_equal(h_count(p, "items"), 1); /* the slave's own table untouched */
    verso_sync_all_stop(a);
    stop(&master);
}

/* verso replicate / pull URL/db/NAME FILE: a database of a server of databases. */
static void test_one_database_by_prefix(void **state)
{
    char m[600], s[600], mp[700], sp[700], pp[700], url[128];
    child master = {0}, slave = {0};
    int port, status;

    (void)state;
    sub(m, sizeof(m), "mone");
    sub(s, sizeof(s), "sone");
    make_db(m, "tenant-1", 3);
    make_db(m, "tenant-2", 7);
    port = serve_dir(&master, m, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/db/tenant-1", port);
    db_in(mp, sizeof(mp), m, "tenant-1");
    db_in(sp, sizeof(sp), s, "live");
    db_in(pp, sizeof(pp), s, "pulled");
    {
        char *argv[] = {getenv("VERSO_BIN"), "replicate", url, sp, NULL};
        spawn(&slave, argv, false);
        track(&slave);
    }
    assert_true(h_wait_cursor(mp, sp, 30000));
    write_db(m, "tenant-1", 5);
    write_db(m, "tenant-2", 5);
    assert_true(h_wait_cursor(mp, sp, 30000));
    assert_copy(mp, sp);
    {
        char *argv[] = {getenv("VERSO_BIN"), "pull", url, pp, NULL};
        child c;
        spawn(&c, argv, false);
        waitpid(c.pid, &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_copy(mp, pp);
    stop(&slave);
    stop(&master);
}

/* Two tiers: the --all slave's directory served with --dir feeds `verso replicate --all`. */
static void test_cascade(void **state)
{
    char m[600], s[600], t[600], url[64], wk[8] = "2", name[16];
    child master = {0}, tier = {0}, cli = {0};
    verso_sync_all *a;
    int port, port2;

    (void)state;
    sub(m, sizeof(m), "mcas");
    sub(s, sizeof(s), "scas");
    sub(t, sizeof(t), "tcas");
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        make_db(m, name, 4);
    }
    port = serve_dir(&master, m, 0);
    a = all_start(s, port, 2, false);
    assert_true(wait_converged(m, s, false, 30000));
    port2 = serve_dir(&tier, s, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port2);
    {
        char *argv[] = {getenv("VERSO_BIN"), "replicate", "--all", "--workers", wk, url, t, NULL};
        spawn(&cli, argv, false);
        track(&cli);
    }
    /* the second tier's cursors belong to the first tier's copies: each tier against its own */
    assert_true(wait_converged(s, t, false, 30000));
    make_db(m, "c-new", 2);
    drop_db(m, "c3");
    write_db(m, "c5", 4);
    if (!wait_converged(m, s, false, 30000) || !wait_converged(s, t, false, 30000))
        fail_msg("the second tier did not converge");
    assert_all_equal(m, s);
    assert_all_equal(s, t);
    stop(&cli);
    stop(&tier);
    verso_sync_all_stop(a);
    stop(&master);
}

/* ---- a fake events server ---- */

typedef struct fake {
    verso_rest *srv;
    verso_db *db;
    int port;
    const char *const *script; /* messages sent at each connection, then silence */
    size_t nscript;
    char *big; /* a built message sent first when set */
    atomic_int connections;
} fake;

static fake g_fake;

typedef struct fconn {
    size_t next;
} fconn;

static int fake_open(verso_ws *ws, void **conn, void *arg)
{
    fconn *c = calloc(1, sizeof(*c));

    (void)arg;
    atomic_fetch_add(&g_fake.connections, 1);
    *conn = c;
    verso_ws_want_write(ws);
    return c ? 0 : -1;
}

static int fake_message(verso_ws *ws, void *conn, const void *data, size_t len, void *arg)
{
    (void)ws, (void)conn, (void)data, (void)len, (void)arg;
    return 0;
}

static int fake_writeable(verso_ws *ws, void *conn, void *arg)
{
    fconn *c = conn;
    size_t total = g_fake.nscript + (g_fake.big != NULL);

    (void)arg;
    if (c->next >= total)
        return 0;
    if (g_fake.big && c->next == 0)
        verso_ws_write(ws, g_fake.big, strlen(g_fake.big));
    else {
        const char *m = g_fake.script[c->next - (g_fake.big != NULL)];
        verso_ws_write(ws, m, strlen(m));
    }
    c->next++;
    verso_ws_want_write(ws);
    return 0;
}

static void fake_close(verso_ws *ws, void *conn, void *arg)
{
    (void)ws, (void)arg;
    free(conn);
}

static const verso_ws_handler k_fake = {
    .path = VERSO_DATABASES_PATH,
    .subprotocol = VERSO_DATABASES_SUBPROTOCOL,
    .role = NULL,
    .on_open = fake_open,
    .on_message = fake_message,
    .on_writeable = fake_writeable,
    .on_close = fake_close,
};

static void fake_start_dir(const char *const *script, size_t n, char *big, const char *dir)
{
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    char path[700], why[256] = "";

    memset(&g_fake, 0, sizeof(g_fake));
    g_fake.script = script;
    g_fake.nscript = n;
    g_fake.big = big;
    snprintf(path, sizeof(path), "%s/fake.db", h_dir);
    if (!dir)
        g_fake.db = h_open(path);
    ro.db_dir = dir; /* the real databases behind the fake events */
    ro.port = VERSO_REST_PORT_ANY;
    ro.ws_handlers = &k_fake;
    ro.nws_handlers = 1;
    if (verso_rest_start(&g_fake.srv, g_fake.db, &ro, why, sizeof(why)) < 0)
        fail_msg("fake server: %s", why);
    g_fake.port = verso_rest_port(g_fake.srv);
}

static void fake_start(const char *const *script, size_t n, char *big)
{
    fake_start_dir(script, n, big, NULL);
}

static void fake_stop(void)
{
    verso_rest_stop(g_fake.srv);
    verso_db_close(g_fake.db);
    free(g_fake.big);
    memset(&g_fake, 0, sizeof(g_fake));
}

/* Waits until the slave's link error holds text. */
static bool wait_error(verso_sync_all *a, const char *text, int ms)
{
    verso_sync_all_state st;

    for (int64_t deadline = h_now_ms() + ms; h_now_ms() < deadline; h_sleep_ms(20)) {
        assert_int_equal(verso_sync_all_state_get(&st, a), 0);
        if (strstr(st.last_error, text))
            return true;
    }
    return false;
}

/* Every entry of dir is a database or a copy being made of a valid name. */
static void assert_only_valid(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        if (!strncmp(n, ".verso-new-", 11))
            n += 11;
        if (!strchr(n, '.') || n[0] == '.' ||
            n[strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789-_")] != '.')
            fail_msg("unexpected file %s in %s", e->d_name, dir);
    }
    closedir(d);
}

static void test_hostile_names(void **state)
{
    static const char *const script[] = {
        "{\"type\":\"databases\",\"databases\":["
        "{\"name\":\"../x\",\"identity\":\"00000000-0000-0000-0000-000000000001\",\"head\":1},"
        "{\"name\":\"..\"},{\"name\":\".\"},{\"name\":\"a/b\"},{\"name\":\"%2e%2e\"},"
        "{\"name\":\"a\\u0000b\"},{\"name\":\"\"},{\"name\":\"-a\"},{\"name\":\"a.db\"},"
        "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},"
        "{\"name\":\"\\uff41\"},{\"name\":\"\\u0430\"},{\"name\":\"a \"},{\"name\":\"a.\"},"
        "{\"name\":\"a\\\\b\"},{\"name\":\"/etc/passwd\"},{\"name\":\"_x\"},"
        "{\"name\":\"ok\",\"identity\":\"00000000-0000-0000-0000-000000000002\",\"head\":3}]}",
        "{\"type\":\"database\",\"name\":\"../../y\","
        "\"identity\":\"00000000-0000-0000-0000-000000000003\",\"head\":2}",
        "{\"type\":\"deleted\",\"name\":\"../x\"}",
        "{\"type\":\"heartbeat\"}",
    };
    char dir[600], sentinel[700], y[700];
    verso_sync_all *a;
    verso_sync_all_state st;
    verso_sync_all_db *dbs;
    size_t n;
    FILE *f;

    (void)state;
    sub(dir, sizeof(dir), "hostile");
    snprintf(sentinel, sizeof(sentinel), "%s/x.db", h_dir);
    assert_non_null(f = fopen(sentinel, "w"));
    fputs("not to be touched", f);
    fclose(f);
    snprintf(y, sizeof(y), "%s/../y.db", h_dir);
    atomic_store(&g_ignored_events, 0);
    g_ignored_name[0] = '\0';
    fake_start(script, sizeof(script) / sizeof(script[0]), NULL);
    a = all_start(dir, g_fake.port, 2, false);
    for (int64_t deadline = h_now_ms() + 20000; h_now_ms() < deadline; h_sleep_ms(20)) {
        assert_int_equal(verso_sync_all_state_get(&st, a), 0);
        if (st.ignored >= 19 && st.errors >= 1)
            break;
    }
    assert_true(st.connected);
    assert_int_equal(st.ignored, 19); /* 17 names of the list, the announcement, the deletion */
    assert_int_equal(st.databases, 1);
    assert_int_equal(st.errors, 1); /* "ok" cannot be pulled from this server: said, retried */
    assert_int_equal(verso_sync_all_databases(&dbs, &n, a), 0);
    assert_int_equal(n, 1);
    assert_string_equal(dbs[0].name, "ok");
    assert_true(strstr(dbs[0].last_error, "404") != NULL);
    verso_free(dbs);
    assert_string_equal(g_ignored_name, "../x");
    assert_true(atomic_load(&g_ignored_events) >= 11); /* ten said one by one, then a summary */
    verso_sync_all_stop(a);
    fake_stop();
    assert_true(h_file_contains(sentinel, "not to be touched"));
    assert_false(exists(y));
    assert_only_valid(dir);
}

static void test_malformed(void **state)
{
    static const char *const bad_json[] = {"{\"type\":\"databases\",\"databases\":[{"};
    static const char *const no_head[] = {
        "{\"type\":\"databases\",\"databases\":[{\"name\":\"a\","
        "\"identity\":\"00000000-0000-0000-0000-000000000001\"}]}"};
    static const char *const not_array[] = {"{\"type\":\"databases\",\"databases\":{}}"};
    static const char *const no_type[] = {"[1,2,3]"};
    static const struct {
        const char *const *script;
        const char *error;
    } cases[] = {
        {bad_json, "malformed JSON"},
        {no_head, "no identity or head"},
        {not_array, "not an array"},
        {no_type, "without a type"},
    };
    char dir[600];

    (void)state;
    sub(dir, sizeof(dir), "malformed");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso_sync_all *a;
        verso_sync_all_state st;
        fake_start(cases[i].script, 1, NULL);
        a = all_start(dir, g_fake.port, 1, false);
        if (!wait_error(a, cases[i].error, 20000))
            fail_msg("case %zu: no error saying \"%s\"", i, cases[i].error);
        for (int64_t deadline = h_now_ms() + 20000;
             h_now_ms() < deadline && atomic_load(&g_fake.connections) < 2;)
            h_sleep_ms(20); /* it retries */
        assert_true(atomic_load(&g_fake.connections) >= 2);
        assert_int_equal(verso_sync_all_state_get(&st, a), 0);
        assert_false(st.connected);
        assert_int_equal(st.databases, 0);
        verso_sync_all_stop(a);
        fake_stop();
    }
    assert_only_valid(dir);
}

static char *big_list(int n, int pad)
{
    verso_buf b = VERSO_BUF_INIT;
    char *out;

    assert_int_equal(verso_buf_puts(&b, "{\"type\":\"databases\",\"databases\":["), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(verso_buf_printf(&b,
                                          "%s{\"name\":\"d%07d\",\"identity\":"
                                          "\"00000000-0000-0000-0000-000000000001\",\"head\":%d}",
                                          i ? "," : "", i, pad),
                         0);
    assert_int_equal(verso_buf_puts(&b, "]}"), 0);
    out = strdup(b.data);
    verso_buf_free(&b);
    return out;
}

static void test_huge(void **state)
{
    char dir[600];
    verso_sync_all_options o = VERSO_SYNC_ALL_OPTIONS_INIT;
    verso_sync_all *a = NULL;
    char url[64], why[256];

    (void)state;
    sub(dir, sizeof(dir), "huge");
    /* a message over the limit */
    fake_start(NULL, 0, big_list(3000, 1));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", g_fake.port);
    o.max_message = 65536;
    assert_int_equal(verso_sync_all_start(&a, dir, url, &o, why, sizeof(why)), 0);
    assert_true(wait_error(a, "over 65536 bytes", 20000));
    verso_sync_all_stop(a);
    fake_stop();
    /* a list too long */
    fake_start(NULL, 0, big_list(100001, 1));
    a = all_start(dir, g_fake.port, 2, false);
    assert_true(wait_error(a, "more than 100000", 30000));
    verso_sync_all_stop(a);
    fake_stop();
    assert_only_valid(dir);
    {
        char names[4][65];
        assert_int_equal(names_of(dir, names, 4), 0); /* nothing of a refused list applied */
    }
}

/* Removes dir and what it holds (directories of files). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char p[1024];
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/*
 * A server that announces heads going backwards (and never reached) for a
 * real database: each announcement costs one pull at most, the copy stays
 * at the master's true head, and nothing loops.
 */
static void test_head_backwards(void **state)
{
    static char list[300], back1[300], back2[300], other[300];
    const char *const script[] = {list, back1, back2, other};
    char m[600], s[600], mp[700], sp[700];
    verso_sync_all *a;
    verso_sync_all_state st;
    verso_db *db;
    char id[37];
    int64_t pulls;

    (void)state;
    sub(m, sizeof(m), "mback");
    sub(s, sizeof(s), "sback");
    make_db(m, "a", 5);
    make_db(m, "b", 2);
    db_in(mp, sizeof(mp), m, "a");
    db_in(sp, sizeof(sp), s, "a");
    db = h_open(mp);
    snprintf(id, sizeof(id), "%s", verso_db_identity(db));
    verso_db_close(db);
    snprintf(
        list, sizeof(list),
        "{\"type\":\"databases\",\"databases\":[{\"name\":\"a\",\"identity\":\"%s\",\"head\":5}]}",
        id);
    snprintf(back1, sizeof(back1),
             "{\"type\":\"database\",\"name\":\"a\",\"identity\":\"%s\",\"head\":2}", id);
    snprintf(back2, sizeof(back2),
             "{\"type\":\"database\",\"name\":\"a\",\"identity\":\"%s\",\"head\":1}", id);
    db_in(mp, sizeof(mp), m, "b");
    db = h_open(mp);
    snprintf(other, sizeof(other),
             "{\"type\":\"database\",\"name\":\"b\",\"identity\":\"%s\",\"head\":2}",
             verso_db_identity(db));
    verso_db_close(db);
    db_in(mp, sizeof(mp), m, "a");
    fake_start_dir(script, 4, NULL, m);
    a = all_start(s, g_fake.port, 1, false);
    for (int64_t deadline = h_now_ms() + 30000; h_now_ms() < deadline; h_sleep_ms(20)) {
        assert_int_equal(verso_sync_all_state_get(&st, a), 0);
        if (st.created == 2 && st.pulling == 0)
            break;
    }
    assert_int_equal(st.created, 2);
    assert_copy(mp, sp);
    pulls = st.pulls;
    assert_true(pulls <= 4); /* a, b, and one per announcement of a at most */
    for (int64_t until = h_now_ms() + 500; h_now_ms() < until; h_sleep_ms(20)) {
        assert_int_equal(verso_sync_all_state_get(&st, a), 0);
        assert_true(st.pulls <= 4); /* no loop chasing a head the master does not have */
    }
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.in_sync, 1); /* b; a is not at the head announced last */
    assert_int_equal(h_cursor(sp, NULL), 5);
    verso_sync_all_stop(a);
    fake_stop();
}

/* ---- docs/databases-all.md stays true ---- */

static char *slurp(const char *path)
{
    verso_buf b = VERSO_BUF_INIT;
    char chunk[4096];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (!f)
        fail_msg("cannot read %s", path);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(verso_buf_append(&b, chunk, n), 0);
    fclose(f);
    return verso_buf_detach(&b);
}

/* The body of the first ```tag block at or after *from (malloc'd). */
static char *block(const char **from, const char *tag)
{
    char fence[32];
    const char *start, *end;
    char *s;

    snprintf(fence, sizeof(fence), "```%s\n", tag);
    assert_non_null(start = strstr(*from, fence));
    start += strlen(fence);
    assert_non_null(end = strstr(start, "\n```"));
    *from = end + 4;
    assert_non_null(s = strndup(start, (size_t)(end - start) + 1));
    return s;
}

/* The program under "A complete example" compiles, runs and prints the block after it. */
static void test_doc_example(void **state)
{
    const char *src = getenv("VERSO_SOURCE_DIR"), *build = getenv("VERSO_BUILD_DIR"), *p;
    const char *flags = getenv("VERSO_SANITIZE_FLAGS");
    char path[1024], prog[1100], exe[1100], cmd[4096], chunk[512], scratch[600];
    verso_buf got = VERSO_BUF_INIT;
    char *doc, *code, *expect;
    size_t n;
    FILE *f;

    (void)state;
    if (!src || !build)
        fail_msg("VERSO_SOURCE_DIR and VERSO_BUILD_DIR must be set (run under ctest)");
    snprintf(path, sizeof(path), "%s/docs/databases-all.md", src);
    doc = slurp(path);
    assert_non_null(p = strstr(doc, "### A complete example"));
    code = block(&p, "c");
    expect = block(&p, "text");
    sub(scratch, sizeof(scratch), "doc");
    snprintf(prog, sizeof(prog), "%s/example.c", scratch);
    snprintf(exe, sizeof(exe), "%s/example", scratch);
    assert_non_null(f = fopen(prog, "wb"));
    fputs(code, f);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof(cmd),
             "cc -std=c11 -Wall -Wextra -Wpedantic -Werror %s -I'%s/include' '%s' -o '%s' "
             "'%s/libverso.a' $(pkg-config --libs sqlite3 uuid libcjson libwebsockets) -lm "
             "-lpthread",
             flags ? flags : "", src, prog, exe, build);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' '%s'", exe, scratch);
    assert_non_null(f = popen(cmd, "r"));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(verso_buf_append(&got, chunk, n), 0);
    assert_int_equal(pclose(f), 0);
    assert_non_null(got.data);
    assert_string_equal(got.data, expect);
    verso_buf_free(&got);
    free(code);
    free(expect);
    free(doc);
}

/* What the commands say when the URL is not the right one (cli/hints.c). */
static void test_cli_diagnosis(void **state)
{
    char m[600], s[600], one[700], cmd[1500], out[4096];
    child dirsrv = {0}, onesrv = {0};
    const char *bin = getenv("VERSO_BIN");
    int port, port1;

    (void)state;
    sub(m, sizeof(m), "mdiag");
    sub(s, sizeof(s), "sdiag");
    make_db(m, "acme", 1);
    snprintf(one, sizeof(one), "%s/one.db", s);
    make_db(s, "one", 1);
    port = serve_dir(&dirsrv, m, 0);
    port1 = serve_any(&onesrv, one, 0, true);
    /* a database the server does not have */
    snprintf(cmd, sizeof(cmd), "'%s' pull http://127.0.0.1:%d/db/acmee '%s/x.db'", bin, port, s);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "no database"));
    assert_non_null(strstr(out, "/_databases lists the databases of that server"));
    /* the root of a server of databases given where a database is expected */
    snprintf(cmd, sizeof(cmd), "'%s' pull http://127.0.0.1:%d '%s/x.db'", bin, port, s);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "/db/NAME"));
    assert_non_null(strstr(out, "--all"));
    /* --all at a one-database server */
    snprintf(cmd, sizeof(cmd), "'%s' replicate --all --give-up-after 2s http://127.0.0.1:%d '%s/d'",
             bin, port1, s);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "a one-database server answers there"));
    /* options that do not go with --all, and --workers out of range */
    snprintf(cmd, sizeof(cmd), "'%s' replicate --all --table t http://127.0.0.1:%d '%s/d'", bin,
             port, s);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "do not apply"));
    snprintf(cmd, sizeof(cmd), "'%s' replicate --all --workers 65 http://127.0.0.1:%d '%s/d'", bin,
             port, s);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 2);
    snprintf(cmd, sizeof(cmd),
             "'%s' replicate --keep-deleted http://127.0.0.1:%d/db/acme '%s/a.db'", bin, port, s);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "go with --all"));
    stop(&onesrv);
    stop(&dirsrv);
}

/* What verso_sync_all_start refuses. */
static void test_start_errors(void **state)
{
    verso_sync_all_options o = VERSO_SYNC_ALL_OPTIONS_INIT;
    verso_sync_all *a = (verso_sync_all *)1;
    char file[700], why[256], url[400];
    FILE *f;

    (void)state;
    snprintf(file, sizeof(file), "%s/a-file", h_dir);
    assert_non_null(f = fopen(file, "w"));
    fclose(f);
    assert_int_equal(verso_sync_all_start(&a, file, "http://127.0.0.1:1", NULL, why, sizeof(why)),
                     VERSO_EIO);
    assert_null(a);
    assert_true(strstr(why, "not a directory") != NULL);
    assert_int_equal(verso_sync_all_start(&a, h_dir, "ftp://h", NULL, why, sizeof(why)),
                     VERSO_EINVAL);
    o.workers = 65;
    assert_int_equal(verso_sync_all_start(&a, h_dir, "http://127.0.0.1:1", &o, why, sizeof(why)),
                     VERSO_EINVAL);
    assert_true(strstr(why, "workers") != NULL);
    memset(url, 'p', sizeof(url));
    memcpy(url, "http://h/", 9);
    url[9 + 200] = '\0'; /* a prefix with no room left for /db/<name> */
    assert_int_equal(verso_sync_all_start(&a, h_dir, url, NULL, why, sizeof(why)), VERSO_EINVAL);
    verso_sync_all_stop(NULL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hostile_names, teardown),
        cmocka_unit_test_teardown(test_malformed, teardown),
        cmocka_unit_test_teardown(test_huge, teardown),
        cmocka_unit_test_teardown(test_head_backwards, teardown),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_doc_example),
        cmocka_unit_test_teardown(test_cli_diagnosis, teardown),
        cmocka_unit_test_teardown(test_follow_100, teardown),
        cmocka_unit_test_teardown(test_keep_deleted, teardown),
        cmocka_unit_test_teardown(test_slave_restart, teardown),
        cmocka_unit_test_teardown(test_failure_isolated, teardown),
        cmocka_unit_test_teardown(test_one_database_by_prefix, teardown),
        cmocka_unit_test_teardown(test_cascade, teardown),
    };
    int failed;

    if (argc > 1) /* a pattern: the tests to run */
        cmocka_set_test_filter(argv[1]);
    h_init_dir("sync_all");
    h_seed(11);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed)
        remove_tree(h_dir);
    return failed;
}
