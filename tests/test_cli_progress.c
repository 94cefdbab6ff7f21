/*
 * What `verso pull`, `verso replicate` and `verso serve` print while they
 * run ($VERSO_BIN, real processes): on a terminal (a pseudo-terminal from
 * forkpty) the status line with its phases; on a pipe one line per event,
 * each starting with an ISO-8601 UTC time, no carriage return, in the order
 * things happened (bootstrap, caught up, the master killed, disconnected,
 * reconnected); --quiet; --log-level; serve --access-log's JSON lines.
 * Every wait is bounded.
 */
#include <poll.h>
#include <pty.h>

#include <cjson/cJSON.h>

#include "sync_harness.h"

/* sha256("s3cret-token"), granted admin in the access-log test. */
#define TOKEN      "s3cret-token"
#define TOKEN_HASH "a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e"

typedef struct child {
    pid_t pid;
    int fd;     /* the child's stderr (a pipe), or the pty's master side; -1 none */
    int out;    /* the child's stdout when captured apart (serve's URL), else -1 */
    char *text; /* everything read from fd so far (NUL-terminated) */
    size_t len, cap;
} child;

static void child_exec(char *const *argv)
{
    execv(argv[0], argv);
    _exit(127);
}

/* argv on a pipe: stderr into c->fd, stdout into c->out. */
static void spawn_pipe(child *c, char *const *argv)
{
    pid_t parent = getpid();
    int err[2], out[2];

    memset(c, 0, sizeof(*c));
    assert_int_equal(pipe(err), 0);
    assert_int_equal(pipe(out), 0);
    fflush(NULL);
    assert_true((c->pid = fork()) >= 0);
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(err[0]);
        close(out[0]);
        child_exec(argv);
    }
    close(err[1]);
    close(out[1]);
    c->fd = err[0];
    c->out = out[0];
}

/* argv on a pseudo-terminal: stdout and stderr both into c->fd. */
static void spawn_pty(child *c, char *const *argv)
{
    pid_t parent = getpid();
    struct winsize ws = {.ws_row = 40, .ws_col = 200};

    memset(c, 0, sizeof(*c));
    c->out = -1;
    fflush(NULL);
    assert_true((c->pid = forkpty(&c->fd, NULL, NULL, &ws)) >= 0);
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        child_exec(argv);
    }
}

/* Reads what is there within ms; false at EOF (or EIO: the pty's child is gone). */
static bool pump(child *c, int ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    char buf[4096];
    ssize_t n;

    if (poll(&p, 1, ms) <= 0)
        return true;
    if ((n = read(c->fd, buf, sizeof(buf))) <= 0)
        return false;
    if (c->len + (size_t)n + 1 > c->cap) {
        c->cap = (c->len + (size_t)n + 1) * 2;
        assert_non_null(c->text = realloc(c->text, c->cap));
    }
    memcpy(c->text + c->len, buf, (size_t)n);
    c->len += (size_t)n;
    c->text[c->len] = '\0';
    return true;
}

/* Waits (at most ms) until the output holds needle after offset *from;
 * *from moves past it, so successive waits check the order. */
static bool wait_for(child *c, const char *needle, size_t *from, int ms)
{
    int64_t deadline = h_now_ms() + ms;
    const char *hit;

    for (;;) {
        if (c->text && *from <= c->len && (hit = strstr(c->text + *from, needle))) {
            *from = (size_t)(hit - c->text) + strlen(needle);
            return true;
        }
        if (h_now_ms() > deadline || !pump(c, 50))
            break;
    }
    if (c->text && (hit = strstr(c->text + *from, needle)))
        *from = (size_t)(hit - c->text) + strlen(needle);
    return hit != NULL;
}

/* Reads to EOF (bounded), then reaps: the exit status. */
static int finish(child *c, int ms)
{
    int64_t deadline = h_now_ms() + ms;
    int status = 0;

    while (h_now_ms() < deadline && pump(c, 50)) {
    }
    while (waitpid(c->pid, &status, WNOHANG) == 0 && h_now_ms() < deadline)
        h_sleep_ms(10);
    if (h_now_ms() >= deadline && waitpid(c->pid, &status, WNOHANG) == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
        fail_msg("pid %ld did not end in time", (long)c->pid);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* SIGTERM (or sig), then the exit status, bounded. */
static int stop(child *c, int sig)
{
    kill(c->pid, sig);
    return finish(c, 10000);
}

static void child_free(child *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->out >= 0)
        close(c->out);
    free(c->text);
    memset(c, 0, sizeof(*c));
    c->fd = c->out = -1;
}

/* ---- the master ---- */

typedef struct master {
    child c;
    char url[128];
    int port;
} master;

/* `verso serve DB --port P` plus extra arguments (NULL-terminated); reads its URL. */
static void serve(master *m, const char *db, int port, char *const *extra)
{
    char portbuf[16], line[128] = "";
    char *argv[16] = {getenv("VERSO_BIN"), "serve", (char *)db, "--port", portbuf};
    size_t n = 5, len = 0;
    int64_t deadline = h_now_ms() + 15000;

    snprintf(portbuf, sizeof(portbuf), "%d", port);
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    spawn_pipe(&m->c, argv);
    while (!strchr(line, '\n') && h_now_ms() < deadline) {
        struct pollfd p = {.fd = m->c.out, .events = POLLIN};
        ssize_t r;
        if (poll(&p, 1, 100) <= 0)
            continue;
        if ((r = read(m->c.out, line + len, sizeof(line) - 1 - len)) <= 0)
            break;
        len += (size_t)r;
        line[len] = '\0';
    }
    if (!strchr(line, '\n'))
        fail_msg("verso serve did not start");
    line[strcspn(line, "\n")] = '\0';
    if (len && line[strlen(line) - 1] == '/')
        line[strlen(line) - 1] = '\0';
    snprintf(m->url, sizeof(m->url), "%s", line);
    m->port = atoi(strrchr(line, ':') + 1);
    assert_true(m->port > 0);
}

/* A master file with rows in both tables: count receives how many. */
static void make_master(const char *path, int64_t *count)
{
    verso_db *db;
    int64_t a = 0, b = 0;

    h_remove_db(path);
    db = h_open(path);
    h_seed(7);
    h_seed_accounts(db, 10);
    h_orm_workload(db, 40, 50);
    assert_int_equal(verso_query_count(&a, db, "items", NULL, 0), 0);
    assert_int_equal(verso_query_count(&b, db, "accounts", NULL, 0), 0);
    verso_db_close(db);
    *count = a + b;
    assert_true(*count > 10);
}

/* ---- lines ---- */

/* "2026-12-06T05:30:07.123Z " at the start of line: a valid UTC time. */
static bool iso_time(const char *line)
{
    int y, mo, d, h, mi, s, ms, n = 0;

    if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %n", &y, &mo, &d, &h, &mi, &s, &ms, &n) != 7 ||
        n != 25)
        return false;
    return y >= 2020 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s < 61;
}

/* Every line of a pipe's output: timestamped, no carriage return. */
static void assert_event_lines(const char *text)
{
    char *copy = strdup(text ? text : ""), *save = NULL;

    assert_null(strchr(copy, '\r'));
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!iso_time(l))
            fail_msg("not an event line: '%s'", l);
    }
    free(copy);
}

/* ---- tests ---- */

static void test_pull_on_a_terminal_shows_its_phases(void **state)
{
    char mp[600], sp[600], want[96];
    char *argv[] = {getenv("VERSO_BIN"), "pull", NULL, sp, NULL};
    master m;
    child c;
    size_t at = 0;
    int64_t count;

    (void)state;
    h_path(mp, sizeof(mp), "tty-master.db");
    h_path(sp, sizeof(sp), "tty-slave.db");
    h_remove_db(sp);
    make_master(mp, &count);
    serve(&m, mp, 0, NULL);
    argv[2] = m.url;
    spawn_pty(&c, argv);
    assert_int_equal(finish(&c, 30000), 0);
    /* the status line: redrawn in place, snapshot then catch-up */
    assert_true(wait_for(&c, "verso pull: snapshot ", &at, 0));
    assert_non_null(strstr(c.text, " of "));
    assert_non_null(strstr(c.text, "%)"));
    assert_true(wait_for(&c, "verso pull: catch-up ", &at, 0));
    assert_non_null(strstr(c.text, "\r\033[K"));
    /* what the snapshot brought, not "0 rows" */
    snprintf(want, sizeof(want), "bootstrapped from a file snapshot: %lld rows", (long long)count);
    assert_non_null(strstr(c.text, want));
    snprintf(want, sizeof(want), "file snapshot of %lld rows, then", (long long)count);
    assert_non_null(strstr(c.text, want));
    child_free(&c);
    assert_int_equal(stop(&m.c, SIGTERM), 0);
    child_free(&m.c);
}

static void test_pull_on_a_pipe_prints_event_lines(void **state)
{
    char mp[600], sp[600], want[96];
    char *argv[] = {getenv("VERSO_BIN"), "pull", NULL, sp, NULL};
    master m;
    child c;
    size_t at = 0;
    int64_t count;

    (void)state;
    h_path(mp, sizeof(mp), "pipe-master.db");
    h_path(sp, sizeof(sp), "pipe-slave.db");
    h_remove_db(sp);
    make_master(mp, &count);
    serve(&m, mp, 0, NULL);
    argv[2] = m.url;
    spawn_pipe(&c, argv);
    assert_int_equal(finish(&c, 30000), 0);
    assert_event_lines(c.text);
    assert_true(wait_for(&c, "info verso pull: receiving a file snapshot", &at, 0));
    snprintf(want, sizeof(want), "bootstrapped from a file snapshot: %lld rows", (long long)count);
    assert_true(wait_for(&c, want, &at, 0));
    assert_true(wait_for(&c, "catch-up from version", &at, 0));
    assert_true(wait_for(&c, "changes, cursor", &at, 0));
    assert_null(strstr(c.text, "verso pull: snapshot ")); /* no status line off a terminal */
    child_free(&c);

    /* --quiet: nothing but errors (a second pull has nothing to say) */
    {
        char *q[] = {getenv("VERSO_BIN"), "pull", "--quiet", m.url, sp, NULL};
        spawn_pipe(&c, q);
        assert_int_equal(finish(&c, 30000), 0);
        assert_int_equal(c.len, 0);
        child_free(&c);
    }
    /* --quiet still prints an error */
    {
        char bad[160];
        char *q[] = {getenv("VERSO_BIN"), "pull", "-q", bad, sp, NULL};
        snprintf(bad, sizeof(bad), "%s/nowhere", m.url);
        assert_int_equal(stop(&m.c, SIGTERM), 0);
        child_free(&m.c);
        spawn_pipe(&c, q);
        assert_int_not_equal(finish(&c, 30000), 0);
        assert_true(c.len > 0);
        child_free(&c);
    }
}

static void test_log_level_values(void **state)
{
    char *bad[] = {getenv("VERSO_BIN"),  "replicate", "--log-level", "loud",
                   "http://127.0.0.1:9", "x.db",      NULL};
    char *serve_bad[] = {getenv("VERSO_BIN"), "serve", "x.db", "--log-level", "loud", NULL};
    char *help[] = {getenv("VERSO_BIN"), "serve", "--help", NULL};
    child c;

    (void)state;
    spawn_pipe(&c, bad);
    assert_int_equal(finish(&c, 10000), 2);
    assert_non_null(strstr(c.text, "--log-level takes error, warn, info or debug, not 'loud'"));
    child_free(&c);
    spawn_pipe(&c, serve_bad);
    assert_int_equal(finish(&c, 10000), 2);
    child_free(&c);
    spawn_pipe(&c, help);
    assert_int_equal(finish(&c, 10000), 0);
    {
        char out[4096] = "";
        ssize_t n = read(c.out, out, sizeof(out) - 1);
        out[n > 0 ? n : 0] = '\0';
        assert_non_null(strstr(out, "--access-log FILE"));
        assert_non_null(strstr(out, "--log-level LEVEL"));
        assert_non_null(strstr(out, "--verbose"));
    }
    child_free(&c);
}

/* bootstrap, caught up, summary, master killed, disconnected, reconnected, caught up */
static void test_replicate_events_in_order(void **state)
{
    char mp[600], sp[600];
    char *argv[] = {getenv("VERSO_BIN"), "replicate", "--stats-interval", "1", NULL, sp, NULL};
    master m;
    child c;
    size_t at = 0;
    int64_t count;
    int port;

    (void)state;
    h_path(mp, sizeof(mp), "ev-master.db");
    h_path(sp, sizeof(sp), "ev-slave.db");
    h_remove_db(sp);
    make_master(mp, &count);
    serve(&m, mp, 0, NULL);
    port = m.port;
    argv[4] = m.url;
    spawn_pipe(&c, argv);
    assert_true(wait_for(&c, "info verso replicate: connected to master ", &at, 20000));
    assert_true(wait_for(&c, "bootstrapped from a file snapshot: ", &at, 20000));
    assert_true(wait_for(&c, "caught up: cursor ", &at, 20000));
    assert_true(wait_for(&c, "summary: live, cursor ", &at, 20000));
    assert_int_equal(stop(&m.c, SIGKILL), -1); /* killed: no exit status */
    child_free(&m.c);
    assert_true(wait_for(&c, "warn verso replicate: disconnected: ", &at, 20000));
    serve(&m, mp, port, NULL);
    assert_true(wait_for(&c, "info verso replicate: connected to master ", &at, 30000));
    assert_true(wait_for(&c, "caught up: cursor ", &at, 20000));
    assert_int_equal(stop(&c, SIGTERM), 0);
    assert_true(wait_for(&c, "stopped: cursor ", &at, 0));
    assert_event_lines(c.text);
    child_free(&c);
    assert_int_equal(stop(&m.c, SIGTERM), 0);
    child_free(&m.c);
}

static void test_replicate_on_a_terminal_shows_live(void **state)
{
    char mp[600], sp[600];
    char *argv[] = {getenv("VERSO_BIN"), "replicate", NULL, sp, NULL};
    master m;
    child c;
    size_t at = 0;
    int64_t count;

    (void)state;
    h_path(mp, sizeof(mp), "ttyr-master.db");
    h_path(sp, sizeof(sp), "ttyr-slave.db");
    h_remove_db(sp);
    make_master(mp, &count);
    serve(&m, mp, 0, NULL);
    argv[2] = m.url;
    spawn_pty(&c, argv);
    assert_true(wait_for(&c, "verso replicate: connected to master", &at, 20000));
    assert_true(wait_for(&c, "verso replicate: live  cursor ", &at, 20000));
    assert_true(wait_for(&c, "rows/s (last 5 s)  lag 0 versions, ", &at, 20000));
    assert_true(wait_for(&c, "\r\033[Kverso replicate: live  cursor ", &at, 20000));
    assert_false(iso_time(c.text)); /* no timestamps on a terminal */
    assert_int_equal(stop(&c, SIGTERM), 0);
    child_free(&c);
    assert_int_equal(stop(&m.c, SIGTERM), 0);
    child_free(&m.c);
}

/* --quiet: a slave that bootstraps, catches up and stops says nothing */
static void test_replicate_quiet(void **state)
{
    char mp[600], sp[600];
    char *argv[] = {getenv("VERSO_BIN"), "replicate", "--quiet", NULL, sp, NULL};
    master m;
    child c;
    int64_t count;

    (void)state;
    h_path(mp, sizeof(mp), "quiet-master.db");
    h_path(sp, sizeof(sp), "quiet-slave.db");
    h_remove_db(sp);
    make_master(mp, &count);
    serve(&m, mp, 0, NULL);
    argv[3] = m.url;
    spawn_pipe(&c, argv);
    if (!h_wait_cursor(mp, sp, 20000))
        fail_msg("verso replicate --quiet did not follow");
    assert_int_equal(stop(&c, SIGTERM), 0);
    assert_int_equal(c.len, 0);
    child_free(&c);
    assert_int_equal(stop(&m.c, SIGTERM), 0);
    child_free(&m.c);
}

static long http_get(const char *url, const char *token)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = token ? curl_slist_append(NULL, "Authorization: Bearer " TOKEN) : NULL;
    verso_buf body = VERSO_BUF_INIT;
    long status = 0;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    verso_buf_free(&body);
    return status;
}

/* One access-log line: JSON with every field; no token, no query. */
static void check_access_line(const char *line, const char **path, int *status, const char **role)
{
    static char p[256], r[32];
    cJSON *j = cJSON_Parse(line);
    const cJSON *f;

    assert_non_null(j);
    assert_true(cJSON_IsString(f = cJSON_GetObjectItem(j, "time")));
    snprintf(p, sizeof(p), "%s ", f->valuestring);
    assert_true(iso_time(p));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "method")), "GET");
    assert_true(cJSON_IsNumber(f = cJSON_GetObjectItem(j, "bytes")) && f->valuedouble > 0);
    assert_true(cJSON_IsNumber(f = cJSON_GetObjectItem(j, "duration")) && f->valuedouble >= 0 &&
                f->valuedouble < 10);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "remote")), "127.0.0.1");
    assert_true(cJSON_IsNumber(f = cJSON_GetObjectItem(j, "status")));
    *status = f->valueint;
    f = cJSON_GetObjectItem(j, "role");
    assert_true(cJSON_IsNull(f) || cJSON_IsString(f));
    snprintf(r, sizeof(r), "%s", cJSON_IsString(f) ? f->valuestring : "");
    *role = r;
    snprintf(p, sizeof(p), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "path")));
    *path = p;
    cJSON_Delete(j);
}

static void test_serve_access_log(void **state)
{
    char mp[600], cfg[600], log[600], url[256], line[1024];
    char *extra[] = {"--config", cfg, "--access-log", log, NULL};
    const char *path, *role;
    int status, n = 0;
    long got[2];
    master m;
    FILE *f;
    int64_t count;

    (void)state;
    h_path(mp, sizeof(mp), "acc-master.db");
    h_path(cfg, sizeof(cfg), "acc.conf");
    h_path(log, sizeof(log), "access.log");
    make_master(mp, &count);
    assert_non_null(f = fopen(cfg, "w"));
    fprintf(f, "token " TOKEN_HASH " admin\n");
    fclose(f);
    assert_non_null(f = fopen(log, "w"));
    fprintf(f, "{\"earlier\":true}\n"); /* appended to, not replaced */
    fclose(f);
    serve(&m, mp, 0, extra);
    snprintf(url, sizeof(url), "%s/items?limit=1&name=hush", m.url);
    assert_true((got[0] = http_get(url, TOKEN)) >= 200);
    snprintf(url, sizeof(url), "%s/items", m.url);
    assert_int_equal(got[1] = http_get(url, NULL), 401);
    assert_int_equal(stop(&m.c, SIGTERM), 0);
    assert_int_equal(m.c.len, 0); /* nothing on stderr at the default level */
    child_free(&m.c);
    assert_non_null(f = fopen(log, "r"));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_string_equal(line, "{\"earlier\":true}\n");
    while (fgets(line, sizeof(line), f)) {
        assert_null(strstr(line, TOKEN));
        assert_null(strstr(line, "hush"));
        assert_null(strstr(line, "Bearer"));
        check_access_line(line, &path, &status, &role);
        assert_string_equal(path, "/items");
        assert_true(n < 2);
        assert_int_equal(status, got[n]);
        assert_string_equal(role, n == 0 ? "admin" : "");
        n++;
    }
    fclose(f);
    assert_int_equal(n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_on_a_terminal_shows_its_phases),
        cmocka_unit_test(test_pull_on_a_pipe_prints_event_lines),
        cmocka_unit_test(test_log_level_values),
        cmocka_unit_test(test_replicate_events_in_order),
        cmocka_unit_test(test_replicate_on_a_terminal_shows_live),
        cmocka_unit_test(test_replicate_quiet),
        cmocka_unit_test(test_serve_access_log),
    };

    signal(SIGPIPE, SIG_IGN);
    h_init_dir("cli_progress");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
