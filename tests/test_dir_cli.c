/*
 * `verso serve --dir DIR` as a real process (env VERSO_BIN): it prints its
 * URL, serves /db/<name>/, stops cleanly on SIGTERM; its options are
 * checked (DB and --dir together, --max-open and --idle-close without
 * --dir or out of range, a DIR that is not a directory). The child is
 * killed at the end of each test even when the test fails.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>

#include "dir_common.h"

static pid_t g_child = -1;

static int setup(void **state)
{
    (void)state;
    dc_make_dirs("dircli");
    dc_make_db("a");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_child > 0) {
        kill(g_child, SIGKILL);
        waitpid(g_child, NULL, 0);
        g_child = -1;
    }
    dc_stop();
    return 0;
}

static const char *verso_bin(void)
{
    const char *bin = getenv("VERSO_BIN");

    assert_non_null(bin);
    return bin;
}

/* Runs verso with args (NULL-terminated), stdout to out; its exit status. */
static int run(char *out, size_t n, const char *const *args)
{
    char cmd[4096] = "", *p = cmd;
    FILE *f;
    size_t got;
    int st;

    p += snprintf(p, sizeof(cmd), "'%s'", verso_bin());
    for (; *args; args++)
        p += snprintf(p, sizeof(cmd) - (size_t)(p - cmd), " '%s'", *args);
    snprintf(p, sizeof(cmd) - (size_t)(p - cmd), " 2>&1");
    assert_non_null(f = popen(cmd, "r"));
    got = fread(out, 1, n - 1, f);
    out[got] = 0;
    st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_serves_and_stops(void **state)
{
    char line[256] = "", path[64];
    int fds[2], st;
    FILE *out;
    rt_resp r;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    if ((g_child = fork()) == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(verso_bin(), verso_bin(), "serve", "--dir", DC.dir, "--port", "0", "--max-open", "4",
              "--idle-close", "30", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    assert_non_null(out = fdopen(fds[0], "r"));
    assert_non_null(fgets(line, sizeof(line), out));
    fclose(out);
    line[strcspn(line, "\n")] = 0;
    assert_true(!strncmp(line, "http://127.0.0.1:", 17));
    if (line[strlen(line) - 1] == '/')
        line[strlen(line) - 1] = 0;
    snprintf(DC.base, sizeof(DC.base), "%.63s", line);
    assert_int_equal(dc_status("POST", "/db/a/items", NULL, "{\"name\":\"cli\"}"), 201);
    assert_int_equal(dc_call(&r, "GET", "/_status", NULL, NULL, NULL, 0), 200);
    assert_non_null(strstr(r.body, "\"max_open\":4,\"idle_close_ms\":30000"));
    rt_resp_free(&r);
    assert_int_equal(dc_status("GET", "/items", NULL, NULL), 404);
    snprintf(path, sizeof(path), "/db/a/items/1");
    assert_int_equal(dc_status("GET", path, NULL, NULL), 200);
    kill(g_child, SIGTERM);
    assert_int_equal(waitpid(g_child, &st, 0), g_child);
    g_child = -1;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_refusals(void **state)
{
    char out[4096], db[700], notdir[700];

    (void)state;
    snprintf(db, sizeof(db), "%s/a.db", DC.dir);
    snprintf(notdir, sizeof(notdir), "%s/nope", DC.root);
    assert_int_equal(
        run(out, sizeof(out), (const char *const[]){"serve", db, "--dir", DC.dir, NULL}), 2);
    assert_non_null(strstr(out, "give DB or --dir DIR, not both"));
    assert_int_equal(
        run(out, sizeof(out), (const char *const[]){"serve", db, "--max-open", "3", NULL}), 2);
    assert_non_null(strstr(out, "--max-open and --idle-close go with --dir DIR"));
    assert_int_equal(run(out, sizeof(out),
                         (const char *const[]){"serve", "--dir", DC.dir, "--max-open", "0", NULL}),
                     2);
    assert_non_null(strstr(out, "--max-open needs a number"));
    assert_int_equal(
        run(out, sizeof(out),
            (const char *const[]){"serve", "--dir", DC.dir, "--idle-close", "x", NULL}),
        2);
    assert_non_null(strstr(out, "--idle-close needs a number of seconds"));
    assert_true(run(out, sizeof(out), (const char *const[]){"serve", "--dir", notdir, NULL}) != 0);
    assert_non_null(strstr(out, "is not a directory"));
    assert_int_equal(run(out, sizeof(out), (const char *const[]){"serve", "--help", NULL}), 0);
    assert_non_null(strstr(out, "--dir DIR"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_serves_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
