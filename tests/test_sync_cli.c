/*
 * The real commands end to end: `verso serve` (REST + /_sync) as the
 * master, `verso replicate` as a live slave, both processes of $VERSO_BIN,
 * with writes through the ORM, REST and the sqlite3 shell on the master's
 * file; the master's view of its slave (acks, lag) in /_status and
 * /_metrics; and how fast another process's commit reaches a live slave.
 * Every child dies with this process (PR_SET_PDEATHSIG) and is stopped by
 * SIGTERM at the end of its test.
 */
#include <poll.h>

#include <cjson/cJSON.h>

#include "sync_harness.h"

/* sha256("s3cret-token"): one token with both roles. */
#define TOKEN      "s3cret-token"
#define TOKEN_HASH "a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e"

typedef struct child {
    pid_t pid;
    FILE *out; /* the child's stdout (or stderr with to_stderr), NULL if not captured */
} child;

/* Starts argv (argv[0] is the program path); env "NAME=value" may be NULL. */
static void spawn(child *c, char *const *argv, const char *env, bool capture, bool from_stderr)
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
        if (getppid() != parent) /* the test died before prctl */
            _exit(1);
        if (env)
            putenv((char *)env);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (capture) {
            dup2(fds[1], from_stderr ? STDERR_FILENO : STDOUT_FILENO);
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

/* SIGTERM, then asserts a clean exit (bounded: SIGKILL after 10 s). */
static void stop(child *c)
{
    int status = 0;
    int64_t deadline = h_now_ms() + 10000;

    kill(c->pid, SIGTERM);
    while (waitpid(c->pid, &status, WNOHANG) == 0) {
        if (h_now_ms() > deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            fail_msg("pid %ld ignored SIGTERM", (long)c->pid);
        }
        h_sleep_ms(10);
    }
    if (c->out)
        fclose(c->out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Runs argv to its end; returns its exit status. */
static int run(char *const *argv)
{
    child c;
    int status = 0;

    spawn(&c, argv, NULL, false, false);
    waitpid(c.pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `verso serve DB --port 0 --config CFG`; m receives its URL and port. */
static void serve_start(child *c, h_master *m, const char *db, const char *cfg)
{
    char *argv[] = {getenv("VERSO_BIN"), "serve",     (char *)db, "--port", "0",
                    "--config",          (char *)cfg, NULL};
    char line[sizeof(((h_master *)0)->url)] = "";
    char *colon;

    spawn(c, argv, NULL, true, false);
    if (!fgets(line, sizeof(line), c->out))
        fail_msg("verso serve did not start");
    line[strcspn(line, "\n")] = '\0';
    if (line[0] && line[strlen(line) - 1] == '/')
        line[strlen(line) - 1] = '\0';
    assert_non_null(colon = strrchr(line, ':'));
    m->port = atoi(colon + 1);
    m->pid = c->pid;
    assert_true(m->port > 0);
    snprintf(m->url, sizeof(m->url), "%s", line);
}

/* The sqlite3 shell, as another program would write: one transaction. */
static void shell(const char *db, const char *sql)
{
    char *argv[] = {"/usr/bin/sqlite3", "-bail",     "-cmd", ".timeout 5000",
                    (char *)db,         (char *)sql, NULL};

    assert_int_equal(run(argv), 0);
}

/* GET path with the token; body receives the answer. */
static long get(const h_master *m, const char *path, verso_buf *body)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    char url[256];
    long status = 0;

    verso_buf_clear(body);
    snprintf(url, sizeof(url), "%s%s", m->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return status;
}

/* The one slave /_status lists: its acked version and lag. false if none. */
static bool status_slave(const h_master *m, int64_t *acked, int64_t *lag)
{
    verso_buf body = VERSO_BUF_INIT;
    verso_json *doc = NULL;
    const cJSON *slaves;
    bool found = false;

    assert_int_equal(get(m, "/_status", &body), 200);
    assert_int_equal(verso_json_parse(&doc, body.data, body.len, 0, NULL, 0), 0);
    slaves = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "replication"), "slaves");
    assert_true(cJSON_IsArray(slaves));
    if (cJSON_GetArraySize(slaves) == 1) {
        const cJSON *sl = cJSON_GetArrayItem(slaves, 0);
        assert_int_equal(verso_json_int64(acked, cJSON_GetObjectItemCaseSensitive(sl, "acked")), 0);
        assert_int_equal(
            verso_json_int64(lag, cJSON_GetObjectItemCaseSensitive(sl, "lag_versions")), 0);
        found = true;
    }
    verso_json_free(doc);
    verso_buf_free(&body);
    return found;
}

static void write_config(const char *path)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fprintf(f, "token " TOKEN_HASH " replicate\ntoken " TOKEN_HASH " admin\n");
    fclose(f);
}

static void test_serve_and_replicate_commands(void **state)
{
    char mp[600], sp[600], pp[600], cfg[600];
    char *rargs[] = {getenv("VERSO_BIN"), "replicate", "--quiet", NULL, sp, NULL};
    verso_buf body = VERSO_BUF_INIT;
    child srv, rep;
    h_master m;
    verso_db *db;
    int64_t acked = -1, lag = -1, deadline;

    (void)state;
    assert_non_null(getenv("VERSO_BIN"));
    h_path(mp, sizeof(mp), "cmd-master.db");
    h_path(sp, sizeof(sp), "cmd-slave.db");
    h_path(pp, sizeof(pp), "cmd-pull.db");
    h_path(cfg, sizeof(cfg), "cmd-server.conf");
    write_config(cfg);
    db = h_open(mp);
    h_seed(31);
    h_seed_accounts(db, 10);
    h_orm_workload(db, 30, 10);
    serve_start(&srv, &m, mp, cfg);
    rargs[3] = m.url;
    spawn(&rep, rargs, "VERSO_TOKEN=" TOKEN, false, false); /* the token from the environment */

    h_orm_workload(db, 20, 10);
    shell(mp, "BEGIN; INSERT INTO items(name, price, qty) VALUES ('from the shell', 1.5, 7);"
              "UPDATE accounts SET balance = balance + 1 WHERE id = 1;"
              "DELETE FROM items WHERE id = (SELECT MIN(id) FROM items); COMMIT;");
    if (!h_wait_cursor(mp, sp, 20000))
        fail_msg("verso replicate did not follow verso serve");
    h_assert_converged(mp, sp);
    assert_true(h_file_contains(sp, "from the shell"));

    /* the master learns from the acks that its slave caught up */
    deadline = h_now_ms() + 10000;
    while ((!status_slave(&m, &acked, &lag) || lag != 0) && h_now_ms() < deadline)
        h_sleep_ms(20);
    assert_int_equal(lag, 0);
    assert_int_equal(acked, h_head(mp));
    assert_int_equal(get(&m, "/_metrics", &body), 200);
    assert_non_null(strstr(body.data, "verso_sync_slaves 1\n"));
    assert_non_null(strstr(body.data, "verso_sync_slave_lag_versions{"));
    /* other processes' commits are seen as file events, not polled for */
    assert_non_null(strstr(body.data, "\nverso_commit_watch 1\n"));
    verso_buf_free(&body);

    /* and a one-shot pull from the same server */
    {
        char *pargs[] = {getenv("VERSO_BIN"), "pull", "--quiet", "--token", TOKEN, m.url, pp, NULL};
        assert_int_equal(run(pargs), 0);
        h_assert_table_equal(mp, pp, "items");
        h_assert_table_equal(mp, pp, "accounts");
    }

    stop(&rep);
    stop(&srv);
    verso_db_close(db);
}

/*
 * Commits of another process (the sqlite3 shell) reach a live slave within
 * 100 ms: measured from the shell's exit (its commit is durable then) to
 * the slave's commit of that version, median of several commits.
 */
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void test_external_commit_pushed(void **state)
{
    enum { N = 9 };
    char mp[600], sp[600], cfg[600], why[256] = "";
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    int64_t ms[N];
    verso_slave *s = NULL;
    child srv;
    h_master m;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "ext-master.db");
    h_path(sp, sizeof(sp), "ext-slave.db");
    h_path(cfg, sizeof(cfg), "ext-server.conf");
    write_config(cfg);
    db = h_open(mp);
    h_seed(32);
    h_orm_workload(db, 10, 5);
    verso_db_close(db); /* from now on only the shell writes */
    serve_start(&srv, &m, mp, cfg);
    o.client.token = TOKEN;
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    assert_int_equal(verso_slave_wait(s, h_head(mp), 20000), 0);
    for (int i = 0; i < N; i++) {
        int64_t t0, v;
        shell(mp, "INSERT INTO items(name, price) VALUES ('shell', 2.5);");
        t0 = h_now_ms();
        v = h_head(mp);
        if (verso_slave_wait(s, v, 10000) < 0)
            fail_msg("the shell's commit %lld never reached the slave", (long long)v);
        ms[i] = h_now_ms() - t0;
    }
    qsort(ms, N, sizeof(ms[0]), cmp_i64);
    print_message("shell commit -> slave commit: median %lld ms, max %lld ms\n",
                  (long long)ms[N / 2], (long long)ms[N - 1]);
    if (ms[N / 2] > 100)
        fail_msg("median %lld ms from the shell's commit to the slave (max %lld)",
                 (long long)ms[N / 2], (long long)ms[N - 1]);
    verso_slave_stop(s);
    h_assert_converged(mp, sp);
    stop(&srv);
}

/* The README's main command: the demo runs a master and a live slave, and
 * exits by itself (bounded here) with a summary saying both files agree. */
static void test_demo_exits_with_summary(void **state)
{
    const char *build = getenv("VERSO_BUILD_DIR");
    char bin[600], text[8192] = "";
    char *argv[] = {bin, NULL};
    size_t len = 0, n;
    int64_t deadline = h_now_ms() + 60000;
    int status = 0;
    child c;

    (void)state;
    assert_non_null(build);
    snprintf(bin, sizeof(bin), "%s/samples/demo", build);
    if (access(bin, X_OK) != 0)
        skip(); /* samples not built */
    spawn(&c, argv, NULL, true, false);
    while (len + 1 < sizeof(text) && (n = fread(text + len, 1, sizeof(text) - 1 - len, c.out)) > 0)
        len += n;
    text[len] = '\0';
    fclose(c.out);
    while (waitpid(c.pid, &status, WNOHANG) == 0) {
        if (h_now_ms() > deadline) {
            kill(c.pid, SIGKILL);
            waitpid(c.pid, &status, 0);
            fail_msg("the demo did not exit by itself");
        }
        h_sleep_ms(10);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the demo failed:\n%s", text);
    assert_non_null(strstr(text, "\nsummary\n"));
    assert_non_null(strstr(text, "lag 0 versions"));
    assert_non_null(strstr(text, "the two files hold the same rows with the same versions"));
}

/* Reads lines of c's output until one contains text (bounded); false if none did. */
static bool read_until(child *c, const char *text, int timeout_ms, char *last, size_t n)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int fd = fileno(c->out);
    char line[1024];

    while (h_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (!fgets(line, sizeof(line), c->out))
            return false;
        snprintf(last, n, "%s", line);
        if (strstr(line, text))
            return true;
    }
    return false;
}

/* samples/master, samples/pull and samples/slave do what their comments say. */
static void test_samples(void **state)
{
    const char *build = getenv("VERSO_BUILD_DIR");
    char mbin[600], pbin[600], sbin[600], mp[600], pp[600], sp[600], line[1024] = "";
    char *margs[] = {mbin, mp, "0", NULL}, *pargs[] = {pbin, NULL, pp, NULL};
    char *sargs[] = {sbin, NULL, sp, NULL};
    child master, slave;
    h_master m = {0};
    char *url;

    (void)state;
    assert_non_null(build);
    snprintf(mbin, sizeof(mbin), "%s/samples/master", build);
    snprintf(pbin, sizeof(pbin), "%s/samples/pull", build);
    snprintf(sbin, sizeof(sbin), "%s/samples/slave", build);
    if (access(mbin, X_OK) != 0)
        skip(); /* samples not built */
    h_path(mp, sizeof(mp), "sample-master.db");
    h_path(pp, sizeof(pp), "sample-pull.db");
    h_path(sp, sizeof(sp), "sample-slave.db");

    spawn(&master, margs, NULL, true, false);
    if (!read_until(&master, "serving", 20000, line, sizeof(line)))
        fail_msg("samples/master did not start: %s", line);
    assert_non_null(url = strstr(line, "http://"));
    url[strcspn(url, " \n")] = '\0';
    /* "0" is a free port (the kernel's ephemeral range), not the default 8080 */
    assert_null(strstr(url, ":8080"));
    snprintf(m.url, sizeof(m.url), "%s", url);
    pargs[1] = sargs[1] = m.url;

    assert_int_equal(run(pargs), 0);
    h_assert_table_equal(mp, pp, "product");

    spawn(&slave, sargs, NULL, true, false);
    if (!read_until(&slave, "slave: transaction", 20000, line, sizeof(line)))
        fail_msg("samples/slave applied nothing; last line: %s", line); /* its bootstrap */
    assert_int_equal(
        h_http(&m, "POST", "/product", "{\"name\":\"kiwi\",\"price\":1.5,\"stock\":3}", NULL), 201);
    if (!read_until(&slave, "\"kiwi\"", 20000, line, sizeof(line)))
        fail_msg("samples/slave did not print the new row; last line: %s", line);
    stop(&slave);
    stop(&master);
    h_assert_table_equal(mp, sp, "product");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serve_and_replicate_commands),
        cmocka_unit_test(test_external_commit_pushed),
        cmocka_unit_test(test_demo_exits_with_summary),
        cmocka_unit_test(test_samples),
    };

    (void)argc;
    (void)argv;
    h_init_dir("sync_cli");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
