/* End-to-end: the `verso serve` command ($VERSO_BIN) as a separate process:
 * the URL it prints, writes by the sqlite3 shell visible at once, the
 * config file from --config and $VERSO_CONFIG, the refusal to serve a
 * network address without tokens, and a clean stop on SIGTERM / SIGINT. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rest_common.h"

typedef struct proc {
    pid_t pid;
    FILE *out;
    char url[128];
} proc;

static const char *g_db;
static pid_t g_child; /* killed after each test, even one that failed half-way */

static int kill_child(void **state)
{
    (void)state;
    if (g_child > 0) {
        kill(g_child, SIGKILL);
        waitpid(g_child, NULL, 0);
    }
    g_child = 0;
    return 0;
}

static int setup(void **state)
{
    verso_db *db;

    (void)state;
    g_db = strdup(orm_tmp_path("rest_serve.db"));
    db = rc_open(g_db);
    rc_seed(db, 3);
    verso_db_close(db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free((char *)g_db);
    return 0;
}

/* Starts verso with args (NULL-terminated), env "VERSO_CONFIG=..." or NULL. */
static void spawn(proc *p, const char *const *args, const char *config_env)
{
    const char *bin = getenv("VERSO_BIN");
    char *argv[16];
    int fds[2];
    size_t n = 0;

    assert_non_null(bin);
    assert_int_equal(pipe(fds), 0);
    argv[n++] = (char *)bin;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        if (config_env)
            setenv("VERSO_CONFIG", config_env, 1);
        else
            unsetenv("VERSO_CONFIG");
        execv(bin, argv);
        _exit(127);
    }
    close(fds[1]);
    g_child = p->pid;
    p->out = fdopen(fds[0], "r");
    p->url[0] = 0;
}

/* Reads the URL line; false if the process ended without printing one. */
static bool read_url(proc *p)
{
    if (!fgets(p->url, sizeof(p->url), p->out))
        return false;
    p->url[strcspn(p->url, "\n")] = 0;
    return true;
}

/* Waits (bounded: 15 s) for the process; returns its exit status, -1 if killed by us. */
static int finish(proc *p, int sig)
{
    int status = 0;
    int64_t deadline = verso_now_ms() + 15000;

    if (sig)
        kill(p->pid, sig);
    while (waitpid(p->pid, &status, WNOHANG) == 0) {
        struct timespec t = {0, 10 * 1000 * 1000};
        if (verso_now_ms() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            fclose(p->out);
            g_child = 0;
            return -1;
        }
        nanosleep(&t, NULL);
    }
    fclose(p->out);
    g_child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static long get(const proc *p, const char *path, const char *token, char **body)
{
    char url[256], authz[128];
    const char *headers[] = {authz, NULL};
    rt_resp r;

    snprintf(url, sizeof(url), "%s%s", p->url, path[0] == '/' ? path + 1 : path);
    snprintf(authz, sizeof(authz), "Authorization: Bearer %s", token ? token : "");
    long status;

    rt_request(&r, "GET", url, NULL, 0, token ? headers : NULL);
    if (body)
        *body = strdup(r.body);
    status = r.status;
    rt_resp_free(&r);
    return status;
}

static void test_serve_and_stop(void **state)
{
    proc p;
    char *body = NULL, out[128];

    (void)state;
    spawn(&p, (const char *[]){"serve", g_db, "--port", "0", NULL}, NULL);
    assert_true(read_url(&p));
    assert_int_equal(strncmp(p.url, "http://127.0.0.1:", 17), 0);
    assert_int_equal(get(&p, "/items/2", NULL, &body), 200);
    assert_non_null(strstr(body, "item-2"));
    free(body);
    assert_int_equal(orm_sqlite_shell(g_db, "UPDATE items SET name = 'shell-edit' WHERE id = 2;",
                                      out, sizeof(out)),
                     0);
    assert_int_equal(get(&p, "/items/2", NULL, &body), 200);
    assert_non_null(strstr(body, "shell-edit"));
    free(body);
    assert_int_equal(finish(&p, SIGTERM), 0);
}

static void test_config_from_env_and_flag(void **state)
{
    proc p;
    char *cfg;

    (void)state;
    /* sha256("serve-secret") */
    cfg = rc_write_file(
        "rest_serve.conf",
        "port 0\n"
        "token 9ef4489cd5d9968d84e434431ddb9f2674d666d1a9a40543d7698af42496e13d read\n");
    spawn(&p, (const char *[]){"serve", g_db, NULL}, cfg);
    assert_true(read_url(&p));
    assert_int_equal(get(&p, "/items", NULL, NULL), 401);
    assert_int_equal(get(&p, "/_health", NULL, NULL), 200);
    assert_int_equal(finish(&p, SIGINT), 0);

    /* --config wins over $VERSO_CONFIG; the flag --port wins over the file. */
    spawn(&p, (const char *[]){"serve", g_db, "--config", cfg, "--port", "0", NULL},
          "/nonexistent/verso.conf");
    assert_true(read_url(&p));
    assert_int_equal(get(&p, "/items", "wrong-token", NULL), 401);
    assert_int_equal(get(&p, "/items", "serve-secret", NULL), 200);
    assert_int_equal(finish(&p, SIGTERM), 0);
    free(cfg);
}

static void test_refusals(void **state)
{
    proc p;

    (void)state;
    spawn(&p, (const char *[]){"serve", g_db, "--host", "0.0.0.0", "--port", "0", NULL}, NULL);
    assert_false(read_url(&p));
    assert_int_equal(finish(&p, 0), 3); /* access: the config file needs a token */
    spawn(&p, (const char *[]){"serve", NULL}, NULL);
    assert_false(read_url(&p));
    assert_int_equal(finish(&p, 0), 2);
    spawn(&p, (const char *[]){"serve", g_db, "--port", "http", NULL}, NULL);
    assert_false(read_url(&p));
    assert_int_equal(finish(&p, 0), 2);
    spawn(&p, (const char *[]){"serve", "/nonexistent/dir/x.db", "--port", "0", NULL}, NULL);
    assert_false(read_url(&p));
    assert_int_equal(finish(&p, 0), 4); /* data: no such database file */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_serve_and_stop, kill_child),
        cmocka_unit_test_teardown(test_config_from_env_and_flag, kill_child),
        cmocka_unit_test_teardown(test_refusals, kill_child),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
