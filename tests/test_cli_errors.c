/*
 * Errors of the verso command that say what happened and what to do: a
 * wrong master URL for `verso pull` and `verso replicate` (nothing
 * listening, a wrong path, a server that is not verso, https on a plain
 * port, an unknown host), a refused token, `verso serve` on a missing file
 * or on a file with no tracked table, and the exit statuses that tell
 * "retrying may help" (75) from "fix the command" (2, 3, 4). Every child is
 * bounded in time; none talks to anything but 127.0.0.1 (the unknown host
 * is under .invalid, which no resolver answers).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "sync_harness.h"

#define TOKEN      "s3cret-token"
#define TOKEN_HASH "a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e"

typedef struct run_result {
    int status; /* exit status; -1 if killed at the deadline */
    int64_t ms; /* how long it ran */
    char err[8192];
} run_result;

static int g_seq;
static char g_lsan[700]; /* "suppressions=<file>": OpenSSL's own allocations */

static void read_file(char *buf, size_t n, const char *path)
{
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(buf, 1, n - 1, f) : 0;

    if (f)
        fclose(f);
    buf[got] = '\0';
}

/* Runs $VERSO_BIN with args (NULL-terminated, after the program), env
 * "NAME=value" or NULL; kills it after timeout_ms. */
static void run(run_result *r, const char *const *args, const char *env, int timeout_ms)
{
    char *argv[32];
    char errp[600], name[32];
    size_t n = 0;
    pid_t pid, parent = getpid();
    int status = 0;
    int64_t start = h_now_ms();

    argv[n++] = getenv("VERSO_BIN");
    while (*args && n < 31)
        argv[n++] = (char *)*args++;
    argv[n] = NULL;
    snprintf(name, sizeof(name), "run%d.err", g_seq++);
    h_path(errp, sizeof(errp), name);
    fflush(NULL);
    assert_true((pid = fork()) >= 0);
    if (pid == 0) {
        int fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644), null = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        unsetenv("VERSO_TOKEN");
        unsetenv("VERSO_CONFIG");
        unsetenv("VERSO_LWS_LOG");
        /* libwebsockets 4.1 leaves OpenSSL's client context of a destroyed lws
         * context allocated (warmcat/libwebsockets#2044; see test_sync_pull). */
        setenv("LSAN_OPTIONS", g_lsan, 1);
        if (env)
            putenv((char *)env);
        execv(argv[0], argv);
        _exit(127);
    }
    r->status = -1;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (h_now_ms() - start > timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("verso %s ran longer than %d ms", argv[1], timeout_ms);
        }
        h_sleep_ms(10);
    }
    r->ms = h_now_ms() - start;
    if (WIFEXITED(status))
        r->status = WEXITSTATUS(status);
    read_file(r->err, sizeof(r->err), errp);
}

/* No libwebsockets internals, no HTML page, no raw lws text. */
static void assert_plain(const char *err)
{
    static const char *const internals[] = {"HS:",           "SSL err",
                                            "reason(",       "lws_",
                                            "<html",         "<!DOCTYPE",
                                            "network error", "Unable to connect",
                                            "] E: ",         "] W: ",
                                            "] N: " /* libwebsockets' log lines */};

    for (size_t i = 0; i < sizeof(internals) / sizeof(internals[0]); i++)
        if (strstr(err, internals[i]))
            fail_msg("internal text \"%s\" in: %s", internals[i], err);
}

static void assert_has(const char *err, const char *text)
{
    if (!strstr(err, text))
        fail_msg("\"%s\" not in: %s", text, err);
}

/* The first line of err, which must be the only one. */
static void assert_one_line(const char *err)
{
    const char *nl = strchr(err, '\n');

    assert_non_null(nl);
    if (nl[1] != '\0')
        fail_msg("more than one line: %s", err);
}

/* A port on 127.0.0.1 where nothing listens (bound, then released). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---- a server that is not verso: python3 -m http.server ---- */

typedef struct not_verso {
    pid_t pid;
    int port;
} not_verso;

/* Starts it on a free port in the test's directory; false if python3 is missing. */
static bool not_verso_start(not_verso *p)
{
    int fds[2];
    pid_t parent = getpid();
    char line[256] = "";
    size_t got = 0;
    int64_t deadline = h_now_ms() + 10000;

    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    assert_true((p->pid = fork()) >= 0);
    if (p->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(fds[1], STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(fds[0]);
        execlp("python3", "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
               "--directory", h_dir, "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p->port = 0;
    while (!strchr(line, '\n') && got + 1 < sizeof(line) && h_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        ssize_t r;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((r = read(fds[0], line + got, sizeof(line) - 1 - got)) <= 0)
            break;
        got += (size_t)r;
        line[got] = '\0';
    }
    close(fds[0]);
    { /* "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..." */
        const char *at = strstr(line, " port ");
        if (at)
            p->port = atoi(at + 6);
    }
    if (p->port <= 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        return false;
    }
    return true;
}

static void not_verso_stop(not_verso *p)
{
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
}

static void check_replicate(const char *url, const char *cause, int status);

/* ---- pull ---- */

static void test_pull_nothing_listening(void **state)
{
    char url[64], db[600];
    run_result r;

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", free_port());
    h_path(db, sizeof(db), "pull_refused.db");
    run(&r, (const char *[]){"pull", "--quiet", url, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 75);
    assert_one_line(r.err);
    assert_has(r.err, "verso pull: ");
    assert_has(r.err, url);
    assert_has(r.err, "nothing is listening there (connection refused)");
    assert_has(r.err, "is `verso serve` running at");
    assert_plain(r.err);
    assert_int_equal(access(db, F_OK), -1); /* the file it created is removed */
}

static void test_pull_not_verso(void **state)
{
    not_verso p;
    char url[64], surl[64], db[600];
    run_result r;

    (void)state;
    if (!not_verso_start(&p))
        skip();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", p.port);
    snprintf(surl, sizeof(surl), "https://127.0.0.1:%d", p.port);
    h_path(db, sizeof(db), "pull_notverso.db");
    run(&r, (const char *[]){"pull", "--quiet", url, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 2);
    assert_one_line(r.err);
    assert_has(r.err, url);
    assert_has(r.err, "HTTP 404");
    assert_has(r.err, "but is not a verso master");
    assert_plain(r.err);

    run(&r, (const char *[]){"pull", "--quiet", surl, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 2);
    assert_one_line(r.err);
    assert_has(r.err, surl);
    assert_has(r.err, "the master speaks plain HTTP, not HTTPS");
    assert_has(r.err, "use http://127.0.0.1:");
    assert_plain(r.err);
    not_verso_stop(&p);
}

static void test_pull_unknown_host(void **state)
{
    char db[600];
    run_result r;
    static const char url[] = "http://no-such-master.invalid:8080";

    (void)state;
    h_path(db, sizeof(db), "pull_nohost.db");
    run(&r, (const char *[]){"pull", "--quiet", url, db, NULL}, NULL, 30000);
    assert_int_equal(r.status, 2);
    assert_one_line(r.err);
    assert_has(r.err, url);
    assert_has(r.err, "no such host no-such-master.invalid");
    assert_plain(r.err);
}

/* A real master: a wrong path, then a refused token. */
static void test_pull_wrong_path_and_token(void **state)
{
    h_master m;
    char mp[600], cfg[600], db[600], url[128];
    const char *extra[] = {"--config", cfg, NULL};
    FILE *f;
    run_result r;

    (void)state;
    h_path(mp, sizeof(mp), "master_path.db");
    verso_db_close(h_open(mp));
    h_path(cfg, sizeof(cfg), "master.conf");
    assert_non_null(f = fopen(cfg, "w"));
    fprintf(f, "token " TOKEN_HASH " replicate\n");
    fclose(f);
    h_master_start(&m, mp, extra);
    h_path(db, sizeof(db), "pull_path.db");

    snprintf(url, sizeof(url), "%s/api/v1", m.url);
    run(&r, (const char *[]){"pull", "--quiet", "--token", TOKEN, url, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 2);
    assert_one_line(r.err);
    assert_has(r.err, url);
    assert_has(r.err, "a verso master answers there, but not under this path; use ");
    assert_has(r.err, m.url);
    assert_plain(r.err);
    check_replicate(url, "a verso master answers there, but not under this path", 2);

    run(&r, (const char *[]){"pull", "--quiet", m.url, db, NULL}, "VERSO_TOKEN=wrong", 20000);
    assert_int_equal(r.status, 3);
    assert_one_line(r.err);
    assert_has(r.err, m.url);
    assert_has(r.err, "the master refused the token (GET /_info: HTTP 401");
    assert_has(r.err, "--token TOKEN, $VERSO_TOKEN or a 'client-token TOKEN' line");
    assert_plain(r.err);

    run(&r, (const char *[]){"pull", "--quiet", "--token", TOKEN, m.url, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 0);
    h_master_kill(&m, SIGTERM);
}

/* ---- replicate ---- */

/* Says the cause once, that it retries and when, and gives up when told. */
static void check_replicate(const char *url, const char *cause, int status)
{
    char db[600];
    run_result r;

    h_path(db, sizeof(db), "replicate.db");
    run(&r, (const char *[]){"replicate", "--quiet", "--give-up-after", "1500ms", url, db, NULL},
        NULL, 20000);
    assert_int_equal(r.status, status);
    assert_has(r.err, url);
    assert_has(r.err, cause);
    assert_has(r.err, "(retrying: next attempt in ");
    assert_has(r.err, "giving up (--give-up-after)");
    assert_plain(r.err);
    /* Bounded: 1.5 s, plus one probe (at most 2 s to connect, 2 s to read) and a poll. */
    assert_true(r.ms >= 1500);
    assert_true(r.ms < 8000);
    {
        const char *first = strstr(r.err, cause);
        assert_null(strstr(first + 1, cause)); /* once, not at every retry */
    }
}

static void test_replicate_wrong_urls(void **state)
{
    not_verso p;
    char url[64];

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", free_port());
    check_replicate(url, "nothing is listening there (connection refused)", 75);
    check_replicate("http://no-such-master.invalid:8080", "no such host", 2);
    if (!not_verso_start(&p))
        skip();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", p.port);
    check_replicate(url, "but is not a verso master", 2);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", p.port);
    check_replicate(url, "the master speaks plain HTTP, not HTTPS", 2);
    not_verso_stop(&p);
}

static void test_replicate_bad_token(void **state)
{
    h_master m;
    char mp[600], cfg[600], db[600];
    const char *extra[] = {"--config", cfg, NULL};
    FILE *f;
    run_result r;

    (void)state;
    h_path(mp, sizeof(mp), "master_tok.db");
    verso_db_close(h_open(mp));
    h_path(cfg, sizeof(cfg), "master_tok.conf");
    assert_non_null(f = fopen(cfg, "w"));
    fprintf(f, "token " TOKEN_HASH " replicate\n");
    fclose(f);
    h_master_start(&m, mp, extra);
    h_path(db, sizeof(db), "replicate_tok.db");
    run(&r, (const char *[]){"replicate", "--quiet", "--give-up-after", "1s", m.url, db, NULL},
        "VERSO_TOKEN=wrong", 20000);
    assert_int_equal(r.status, 3);
    assert_has(r.err, m.url);
    assert_has(r.err, "not authorized (HTTP 401)");
    assert_has(r.err, "--token TOKEN, $VERSO_TOKEN");
    assert_plain(r.err);
    h_master_kill(&m, SIGTERM);
}

/* An https master whose certificate the slave does not trust, and http:// to it. */
static void test_tls_master(void **state)
{
    h_master m;
    char mp[600], cfg[600], cert[600], key[600], db[600], url[64], cmd[2048];
    const char *extra[] = {"--config", cfg, NULL};
    FILE *f;
    run_result r;

    (void)state;
    h_path(cert, sizeof(cert), "cert.pem");
    h_path(key, sizeof(key), "key.pem");
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 2 "
             "-subj /CN=localhost >/dev/null 2>&1",
             key, cert);
    if (system(cmd) != 0)
        skip();
    h_path(mp, sizeof(mp), "master_tls.db");
    verso_db_close(h_open(mp));
    h_path(cfg, sizeof(cfg), "master_tls.conf");
    assert_non_null(f = fopen(cfg, "w"));
    fprintf(f, "tls-cert %s\ntls-key %s\n", cert, key);
    fclose(f);
    h_master_start(&m, mp, extra);
    h_path(db, sizeof(db), "pull_tls.db");

    snprintf(url, sizeof(url), "https://127.0.0.1:%d", m.port);
    run(&r, (const char *[]){"pull", "--quiet", url, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 2);
    assert_one_line(r.err);
    assert_has(r.err, url);
    assert_has(r.err, "the TLS handshake failed");
    assert_has(r.err, "add --insecure");
    assert_plain(r.err);
    check_replicate(url, "the TLS handshake failed", 2);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", m.port);
    run(&r, (const char *[]){"pull", "--quiet", url, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 2);
    assert_one_line(r.err);
    assert_has(r.err, "does not answer plain HTTP");
    assert_has(r.err, "use https://127.0.0.1:");
    assert_plain(r.err);

    snprintf(url, sizeof(url), "https://127.0.0.1:%d", m.port);
    run(&r, (const char *[]){"pull", "--quiet", "--insecure", url, db, NULL}, NULL, 20000);
    assert_int_equal(r.status, 0);
    h_master_kill(&m, SIGTERM);
}

static void test_usage_statuses(void **state)
{
    run_result r;

    (void)state;
    run(&r, (const char *[]){"replicate", "--give-up-after", "soon", "http://x", "db", NULL}, NULL,
        10000);
    assert_int_equal(r.status, 2);
    run(&r, (const char *[]){"pull", "ftp://127.0.0.1:1", "db", NULL}, NULL, 10000);
    assert_int_equal(r.status, 2);
    assert_has(r.err, "not a master URL");
    run(&r, (const char *[]){"pull", "--config", "/nonexistent/verso.conf", "http://x", "db", NULL},
        NULL, 10000);
    assert_int_equal(r.status, 3);
    run(&r, (const char *[]){"pull", "--help", NULL}, NULL, 10000);
    assert_int_equal(r.status, 0);
}

/* ---- serve ---- */

static void md5ish(const char *path, char *out, size_t n)
{
    read_file(out, n, path); /* small files: the bytes themselves */
}

static void test_serve_missing_file(void **state)
{
    char db[600];
    run_result r;

    (void)state;
    h_path(db, sizeof(db), "no_such.db");
    run(&r, (const char *[]){"serve", db, "--port", "0", NULL}, NULL, 10000);
    assert_int_equal(r.status, 4);
    assert_one_line(r.err);
    assert_has(r.err, "does not exist");
    assert_has(r.err, "verso track FILE TABLE");
    assert_null(strstr(strstr(r.err, db) + 1, db)); /* the path once */
    assert_int_equal(access(db, F_OK), -1);
}

static void test_serve_untracked_file(void **state)
{
    char db[600], path[640], before[65536], after[65536];
    sqlite3 *s;
    struct stat st1, st2;
    run_result r;

    (void)state;
    h_path(db, sizeof(db), "plain.db");
    assert_int_equal(sqlite3_open(db, &s), SQLITE_OK);
    assert_int_equal(sqlite3_exec(s,
                                  "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT);"
                                  "INSERT INTO t(x) VALUES ('a'), ('b');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(s);
    assert_int_equal(stat(db, &st1), 0);
    assert_true(st1.st_size < (off_t)sizeof(before));
    md5ish(db, before, sizeof(before));
    run(&r, (const char *[]){"serve", db, "--port", "0", NULL}, NULL, 10000);
    assert_int_equal(r.status, 4);
    assert_one_line(r.err);
    assert_has(r.err, "has no tracked table");
    assert_has(r.err, "verso track ");
    assert_has(r.err, "--allow-empty");
    assert_int_equal(stat(db, &st2), 0);
    assert_int_equal(st1.st_size, st2.st_size);
    md5ish(db, after, sizeof(after));
    assert_memory_equal(before, after, (size_t)st1.st_size);
    snprintf(path, sizeof(path), "%s-wal", db);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s-shm", db);
    assert_int_equal(access(path, F_OK), -1);
}

/* --allow-empty serves a file with no tracked table: the URL comes on stdout. */
static void test_serve_allow_empty(void **state)
{
    char db[600], line[256] = "";
    int fds[2];
    size_t got = 0;
    pid_t pid, parent = getpid();
    int status = 0;
    int64_t deadline = h_now_ms() + 20000;
    sqlite3 *s;

    (void)state;
    h_path(db, sizeof(db), "empty_ok.db");
    assert_int_equal(sqlite3_open(db, &s), SQLITE_OK);
    assert_int_equal(sqlite3_exec(s, "CREATE TABLE t(id INTEGER PRIMARY KEY)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(s);
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    assert_true((pid = fork()) >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        setenv("LSAN_OPTIONS", g_lsan, 1);
        execl(getenv("VERSO_BIN"), "verso", "serve", db, "--port", "0", "--allow-empty",
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (!strchr(line, '\n') && got + 1 < sizeof(line) && h_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        ssize_t r;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((r = read(fds[0], line + got, sizeof(line) - 1 - got)) <= 0)
            break;
        got += (size_t)r;
        line[got] = '\0';
    }
    close(fds[0]);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    assert_true(strncmp(line, "http://127.0.0.1:", 17) == 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_nothing_listening),
        cmocka_unit_test(test_pull_not_verso),
        cmocka_unit_test(test_pull_unknown_host),
        cmocka_unit_test(test_pull_wrong_path_and_token),
        cmocka_unit_test(test_replicate_wrong_urls),
        cmocka_unit_test(test_replicate_bad_token),
        cmocka_unit_test(test_tls_master),
        cmocka_unit_test(test_usage_statuses),
        cmocka_unit_test(test_serve_missing_file),
        cmocka_unit_test(test_serve_untracked_file),
        cmocka_unit_test(test_serve_allow_empty),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("cli_errors");
    {
        char supp[600];
        FILE *f = fopen(h_path(supp, sizeof(supp), "lsan.supp"), "w");
        if (f) {
            fputs("leak:libcrypto.so\nleak:libssl.so\n", f);
            fclose(f);
        }
        snprintf(g_lsan, sizeof(g_lsan), "suppressions=%s", supp);
    }
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
