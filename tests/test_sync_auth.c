/*
 * A live slave whose token the master refuses: the master answers the
 * WebSocket upgrade with 401 or 403, the slave says so in its state, never
 * connects, and keeps retrying at its longest interval only; with the right
 * token it follows the master.
 */
#include <fcntl.h>
#include <sys/wait.h>

#include "sync_harness.h"

/* sha256 of "s3cret-token" (replicate), "read-secret" (read), "admin-secret" (admin). */
#define REPL_TOKEN  "s3cret-token"
#define READ_TOKEN  "read-secret"
#define ADMIN_TOKEN "admin-secret"
#define SERVER_CONF                                                                                \
    "token a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e replicate\n"           \
    "token f0fd6c09405cb6d3707d04067d8509cb924e62ae66fa02067c2bc467b0d721e4 read\n"                \
    "token 16175223c8ddce5ace0493c948569c211b03c4c6bb3d3e484434999448cffe01 admin\n"

#define RETRY_MAX_MS 1000

typedef struct env {
    char mp[600], sp[600], cfg[600];
    h_master m;
    verso_db *db;
} env;

static void env_start(env *e, const char *tag)
{
    char name[64];
    const char *extra[] = {"--config", e->cfg, NULL};
    FILE *f;

    snprintf(name, sizeof(name), "%s-master.db", tag);
    h_path(e->mp, sizeof(e->mp), name);
    snprintf(name, sizeof(name), "%s-slave.db", tag);
    h_path(e->sp, sizeof(e->sp), name);
    snprintf(name, sizeof(name), "%s.conf", tag);
    h_path(e->cfg, sizeof(e->cfg), name);
    assert_non_null(f = fopen(e->cfg, "w"));
    fputs(SERVER_CONF, f);
    fclose(f);
    e->db = h_open(e->mp);
    h_seed(21);
    h_orm_workload(e->db, 20, 5);
    h_master_start(&e->m, e->mp, extra);
}

static void env_stop(env *e)
{
    h_master_kill(&e->m, SIGTERM);
    verso_db_close(e->db);
}

static verso_slave *start_slave(const env *e, const char *token)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256] = "";

    o.client.token = token;
    o.heartbeat_ms = 1000;
    o.retry_min_ms = 20;
    o.retry_max_ms = RETRY_MAX_MS;
    if (verso_slave_start(&s, e->sp, e->m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    return s;
}

/* Waits (at most 10 s) until the slave's last_error holds text; returns its state. */
static verso_slave_state wait_error(verso_slave *s, const char *text)
{
    verso_slave_state st;
    int64_t deadline = h_now_ms() + 10000;

    do {
        assert_int_equal(verso_slave_state_get(&st, s), 0);
        if (strstr(st.last_error, text))
            return st;
        h_sleep_ms(10);
    } while (h_now_ms() < deadline);
    fail_msg("no '%s' error; last_error '%s'", text, st.last_error);
    return st;
}

/* Refused upgrades the master counted (its /_metrics, with the admin token). */
static long refusals(const env *e, int status)
{
    static const char name[] = "verso_http_requests_total{route=\"websocket\",status=\"";
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Authorization: Bearer " ADMIN_TOKEN);
    verso_buf body = VERSO_BUF_INIT;
    char url[128], key[128];
    const char *at;
    long n = 0, code = 0;

    snprintf(url, sizeof(url), "%s/_metrics", e->m.url);
    snprintf(key, sizeof(key), "%s%d\"} ", name, status);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 200);
    verso_buf_puts(&body, "");
    if ((at = strstr(body.data, key)))
        n = strtol(at + strlen(key), NULL, 10);
    verso_buf_free(&body);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return n;
}

static void assert_never_connected(verso_slave *s, const env *e)
{
    verso_slave_state st;

    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_false(st.connected);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.cursor, 0);
    assert_true(h_count(e->sp, "items") <= 0); /* no table, or an empty one */
}

/* A wrong token: 401 in the state, and retries no faster than the longest interval. */
static void test_wrong_token(void **state)
{
    env e;
    verso_slave *s;
    verso_slave_state st;
    long before, after;
    int64_t t0, deadline;

    (void)state;
    env_start(&e, "wrong");
    s = start_slave(&e, "not-the-token");
    st = wait_error(s, "HTTP 401");
    assert_string_equal(st.last_error, "not authorized (HTTP 401): check the replication token");
    /* still trying: the token may be fixed in the master's configuration */
    before = refusals(&e, 401);
    assert_true(before >= 1);
    deadline = h_now_ms() + 10000;
    while ((after = refusals(&e, 401)) == before && h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_true(after > before);
    /* but not hammering: an interval of at least 3/4 of the maximum from now on */
    t0 = h_now_ms();
    before = after;
    h_sleep_ms(RETRY_MAX_MS + RETRY_MAX_MS / 2);
    after = refusals(&e, 401);
    assert_true(after - before <= 1 + (h_now_ms() - t0) / (RETRY_MAX_MS * 3 / 4));
    assert_never_connected(s, &e);
    st = wait_error(s, "HTTP 401"); /* kept over the retries */
    verso_slave_stop(s);
    env_stop(&e);
}

/* A token without the replicate role: 403. */
static void test_read_only_token(void **state)
{
    env e;
    verso_slave *s;
    verso_slave_state st;

    (void)state;
    env_start(&e, "readonly");
    s = start_slave(&e, READ_TOKEN);
    st = wait_error(s, "HTTP 403");
    assert_non_null(strstr(st.last_error, "not authorized"));
    assert_never_connected(s, &e);
    verso_slave_stop(s);
    env_stop(&e);
}

/* The right token after a refused one: the slave follows the master. */
static void test_right_token_converges(void **state)
{
    env e;
    verso_slave *s;

    (void)state;
    env_start(&e, "right");
    s = start_slave(&e, NULL);
    wait_error(s, "HTTP 401");
    verso_slave_stop(s);
    s = start_slave(&e, REPL_TOKEN);
    h_orm_workload(e.db, 10, 5);
    if (verso_slave_wait(s, h_head(e.mp), 20000) < 0)
        fail_msg("the slave with the right token did not follow");
    verso_slave_stop(s);
    h_assert_converged(e.mp, e.sp);
    env_stop(&e);
}

/* Occurrences of text in the file at path. */
static int occurrences(const char *path, const char *text)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    int count = 0;

    if (f)
        fclose(f);
    buf[n] = '\0';
    for (const char *p = buf; (p = strstr(p, text)); p += strlen(text))
        count++;
    return count;
}

/* `verso replicate` with a wrong token says so on stderr, once. */
static void test_cli_reports_once(void **state)
{
    static const char msg[] = "not authorized (HTTP 401)";
    char errp[600], *args[] = {getenv("VERSO_BIN"), "replicate", "--quiet", NULL, NULL, NULL};
    env e;
    pid_t pid;
    int status = 0;
    int64_t deadline;
    long refused;

    (void)state;
    env_start(&e, "cli");
    h_path(errp, sizeof(errp), "cli-replicate.err");
    args[3] = e.m.url;
    args[4] = e.sp;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDERR_FILENO);
        putenv("VERSO_TOKEN=not-the-token");
        execv(args[0], args);
        _exit(127);
    }
    deadline = h_now_ms() + 10000;
    while (occurrences(errp, msg) == 0 && h_now_ms() < deadline)
        h_sleep_ms(20);
    /* Two more refused attempts, at the longest interval (5 s, less jitter):
     * the command polled its slave's state every 200 ms over a whole retry. */
    refused = refusals(&e, 401);
    deadline = h_now_ms() + 15000;
    while (refusals(&e, 401) < refused + 2 && h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_true(refusals(&e, 401) >= refused + 2);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(occurrences(errp, msg), 1);
    assert_int_equal(occurrences(errp, "bad HTTP response"), 0); /* no lws warning either */
    env_stop(&e);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrong_token),
        cmocka_unit_test(test_read_only_token),
        cmocka_unit_test(test_right_token_converges),
        cmocka_unit_test(test_cli_reports_once),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_auth");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
