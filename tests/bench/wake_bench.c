/*
 * wake_bench - what an idle `verso serve` costs, and how soon it pushes a
 * commit made by another process. Prints "name value" lines:
 *
 *   idle_cpu_pct_alone   CPU of the serve process (utime + stime from
 *       /proc/PID/stat) over the idle window, no client, % of one core
 *   idle_cpu_pct_slave   the same with one live slave connected
 *   ext_commit_p50_us / ext_commit_p99_us / ext_commit_max_us
 *       a one-row commit by this process's own SQLite connection (another
 *       process for the server; synchronous=FULL, as the sqlite3 shell)
 *       -> the live slave's commit of that version; commits spaced 30-70 ms
 *       apart so each finds the server idle
 *   ext_cpu_pct          CPU of the serve process during those commits
 *
 * Usage: wake_bench VERSO_BIN [DIR [COMMITS [IDLE_S]]]
 * (defaults /tmp, 50 commits, 10 s). VERSO_BIN is the `verso` command to
 * measure, so that two builds can be compared in the same run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"

typedef struct row {
    int64_t id;
    int64_t version;
    char *name;
    double price;
} row;

static const verso_field row_fields[] = {
    VERSO_FIELD_ID_OF(row, id),
    VERSO_FIELD_VERSION_OF(row, version),
    VERSO_FIELD(row, name, VERSO_TEXT, 0),
    VERSO_FIELD(row, price, VERSO_DOUBLE, 0),
};
static const verso_table_def items = VERSO_TABLE_DEF("items", row, row_fields);
static const verso_table_def *const tables[] = {&items};

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "wake_bench: %s: %s\n", what, detail);
    exit(1);
}

/* `bin serve db --port 0`; *pid and url (from its first output line). */
static void serve(pid_t *pid, char *url, size_t n, const char *bin, const char *db)
{
    int fds[2];
    FILE *out;

    if (pipe(fds) != 0)
        die("pipe", strerror(errno));
    if ((*pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(bin, bin, "serve", db, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (!(out = fdopen(fds[0], "r")) || !fgets(url, (int)n, out))
        die(bin, "serve did not start");
    url[strcspn(url, "\n")] = '\0';
    if (url[0] && url[strlen(url) - 1] == '/')
        url[strlen(url) - 1] = '\0';
    fclose(out);
}

/* utime + stime of pid, in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (!(f = fopen(path, "r")) || !fgets(buf, sizeof(buf), f))
        die(path, "unreadable");
    fclose(f);
    /* fields after the command name (which may hold spaces): state is field 3 */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        die(path, "unexpected format");
    return (long long)(ut + st);
}

static double idle_cpu_pct(pid_t pid, int seconds)
{
    long long t0 = cpu_ticks(pid);
    int64_t w0 = mono_us();

    sleep_us((int64_t)seconds * 1000000);
    return 100.0 * (double)(cpu_ticks(pid) - t0) / (double)sysconf(_SC_CLK_TCK) /
           ((double)(mono_us() - w0) / 1e6);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* One commit through a plain SQLite connection, as the sqlite3 shell would
 * do it; returns the master's head after it. */
static int64_t external_commit(sqlite3 *s, verso_db *reader, int i)
{
    char sql[128];
    verso_info info;

    snprintf(sql, sizeof(sql), "INSERT INTO items(name, price) VALUES ('ext %d', %d.5)", i, i);
    if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
        die("insert", sqlite3_errmsg(s));
    if (verso_db_info(&info, reader) < 0)
        die("info", verso_db_errmsg(reader));
    return info.head;
}

static void latency(verso_slave *sl, pid_t pid, const char *mpath, verso_db *reader, int n)
{
    int64_t *us = calloc((size_t)n, sizeof(*us)), w0 = mono_us();
    long long t0 = cpu_ticks(pid);
    sqlite3 *s = NULL;

    if (!us || sqlite3_open(mpath, &s) != SQLITE_OK)
        die(mpath, "cannot open");
    sqlite3_busy_timeout(s, 5000);
    srand(7);
    for (int i = 0; i < n; i++) {
        int64_t v, t0;
        sleep_us(30000 + rand() % 40000);
        v = external_commit(s, reader, i);
        t0 = mono_us();
        if (verso_slave_wait(sl, v, 10000) < 0)
            die("slave", "a commit did not arrive within 10 s");
        us[i] = mono_us() - t0;
    }
    printf("ext_cpu_pct %.3f\n", 100.0 * (double)(cpu_ticks(pid) - t0) /
                                     (double)sysconf(_SC_CLK_TCK) /
                                     ((double)(mono_us() - w0) / 1e6));
    qsort(us, (size_t)n, sizeof(*us), cmp_i64);
    printf("ext_commit_p50_us %lld\next_commit_p99_us %lld\next_commit_max_us %lld\n",
           (long long)us[n / 2], (long long)us[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1],
           (long long)us[n - 1]);
    sqlite3_close(s);
    free(us);
}

int main(int argc, char **argv)
{
    char open_why[256] = "";
    const char *bin = argc > 1 ? argv[1] : NULL, *dir = argc > 2 ? argv[2] : "/tmp";
    int commits = argc > 3 ? atoi(argv[3]) : 50, idle_s = argc > 4 ? atoi(argv[4]) : 10;
    verso_db_options dbo = VERSO_DB_OPTIONS_INIT;
    verso_slave_options so = VERSO_SLAVE_OPTIONS_INIT;
    char mpath[600], spath[600], url[256], why[256] = "";
    verso_slave *sl = NULL;
    verso_db *db = NULL;
    verso_info info;
    pid_t pid;
    int status;

    if (!bin || commits < 1 || idle_s < 1)
        die("usage", "wake_bench VERSO_BIN [DIR [COMMITS [IDLE_S]]]");
    snprintf(mpath, sizeof(mpath), "%s/wake-master.%ld.db", dir, (long)getpid());
    snprintf(spath, sizeof(spath), "%s/wake-slave.%ld.db", dir, (long)getpid());
    dbo.tables = tables;
    dbo.ntables = 1;
    if (verso_db_open(&db, mpath, &dbo, open_why, sizeof(open_why)) < 0)
        die(mpath, open_why);
    serve(&pid, url, sizeof(url), bin, mpath);
    sleep_us(500000); /* past start-up */
    printf("idle_cpu_pct_alone %.3f\n", idle_cpu_pct(pid, idle_s));
    fflush(stdout);
    if (verso_slave_start(&sl, spath, url, &so, why, sizeof(why)) < 0)
        die("slave", why);
    if (verso_db_info(&info, db) < 0 || verso_slave_wait(sl, info.head, 20000) < 0)
        die("slave", "did not catch up");
    printf("idle_cpu_pct_slave %.3f\n", idle_cpu_pct(pid, idle_s));
    fflush(stdout);
    latency(sl, pid, mpath, db, commits);
    verso_slave_stop(sl);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    verso_db_close(db);
    for (const char *const *p = (const char *const[]){"", "-wal", "-shm", NULL}; *p; p++) {
        char f[640];
        snprintf(f, sizeof(f), "%s%s", mpath, *p);
        unlink(f);
        snprintf(f, sizeof(f), "%s%s", spath, *p);
        unlink(f);
    }
    return 0;
}
