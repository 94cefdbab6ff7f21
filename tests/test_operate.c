/*
 * Running `verso serve` as a service: SIGHUP reloads the config file's
 * tokens while an open WebSocket and a keep-alive HTTP connection go on,
 * a config file that does not parse leaves the old one in place and says
 * why (file and line), and SIGTERM drains (a request whose body is still
 * arriving is answered, a WebSocket gets a 1001 close) and exits 0.
 * Children of $VERSO_BIN die with this process (PR_SET_PDEATHSIG); every
 * wait is bounded.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "support/rest_http.h"
#include "sync_harness.h"

#define TOK_ADMIN  "tok-admin"
#define TOK_READ   "tok-read"
#define TOK_NEW    "tok-new"
#define HASH_ADMIN "df6adb0b23fa33235f4aee6a0d62c118b00d71c07c81be87067b4f5892e66dbc"
#define HASH_READ  "a2f0a437be4fd6ceaaa59fac18e495e88345b0aa6fb8ccbddd05a8d88e7a3e56"
#define HASH_NEW   "2cb3e362808c82e72f087acfe6fcb44a6a915d98e502ba256ff6f0cbef847b34"

typedef struct child {
    pid_t pid;
    int port;
    char url[128];
    char log[600]; /* the child's stderr */
} child;

/* `verso serve DB --port 0 --config CFG`, stderr into c->log; reads the URL. */
static void serve(child *c, const char *db, const char *cfg)
{
    char *argv[] = {getenv("VERSO_BIN"), "serve",     (char *)db, "--port", "0",
                    "--config",          (char *)cfg, NULL};
    pid_t parent = getpid();
    char line[128] = "";
    int fds[2];
    FILE *out;

    assert_non_null(argv[0]);
    h_path(c->log, sizeof(c->log), "serve.log");
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    assert_true((c->pid = fork()) >= 0);
    if (c->pid == 0) {
        int err = open(c->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || err < 0)
            _exit(1);
        dup2(fds[1], STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    assert_non_null(out = fdopen(fds[0], "r"));
    if (!fgets(line, sizeof(line), out))
        fail_msg("verso serve did not start");
    fclose(out);
    line[strcspn(line, "\n")] = '\0'; /* "http://127.0.0.1:P/" */
    if (line[0] && line[strlen(line) - 1] == '/')
        line[strlen(line) - 1] = '\0';
    snprintf(c->url, sizeof(c->url), "%s", line);
    c->port = atoi(strrchr(line, ':') + 1);
    assert_true(c->port > 0);
}

/* Sends sig; the child must exit with status 0 within 15 s. */
static void stop(child *c, int sig)
{
    int status = 0;
    int64_t deadline = h_now_ms() + 15000;

    kill(c->pid, sig);
    while (waitpid(c->pid, &status, WNOHANG) == 0) {
        if (h_now_ms() > deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            fail_msg("verso serve ignored signal %d", sig);
        }
        h_sleep_ms(10);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Waits (at most 10 s) until the child's stderr has said text. */
static void wait_log(const child *c, const char *text)
{
    int64_t deadline = h_now_ms() + 10000;
    char buf[8192];

    for (;;) {
        FILE *f = fopen(c->log, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        if (strstr(buf, text))
            return;
        if (h_now_ms() > deadline)
            fail_msg("the child never said \"%s\"; it said:\n%s", text, buf);
        h_sleep_ms(10);
    }
}

static void write_file(const char *path, const char *text)
{
    char tmp[700];
    FILE *f;

    /* renamed into place, as an editor or a deployment tool would */
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    assert_non_null(f = fopen(tmp, "w"));
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

/* GET url path with token (may be NULL): the HTTP status, 0 if none. */
static long get(const child *c, const char *path, const char *token, char **body)
{
    char url[256], auth[128];
    const char *hdr[] = {auth, NULL};
    rt_resp r;
    long st;

    snprintf(url, sizeof(url), "%s%s", c->url, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    rt_request(&r, "GET", url, NULL, 0, token ? hdr : NULL);
    st = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    rt_resp_free(&r);
    return st;
}

/* ---- a raw TCP connection, for keep-alive and WebSocket frames ---- */

typedef struct sock {
    int fd;
    char buf[65536];
    size_t len;
} sock;

static void sock_open(sock *s, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->len = 0;
    assert_true((s->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(connect(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void sock_send(sock *s, const void *p, size_t n)
{
    assert_int_equal(send(s->fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads what arrives within ms; false on EOF or timeout. */
static bool sock_fill(sock *s, int ms)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    ssize_t n;

    if (s->len == sizeof(s->buf) || poll(&p, 1, ms) != 1)
        return false;
    n = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
    if (n <= 0)
        return false;
    s->len += (size_t)n;
    return true;
}

static void sock_drop(sock *s, size_t n)
{
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
}

/* Reads one HTTP response (headers and Content-Length body); its status. */
static int http_response(sock *s)
{
    int64_t deadline = h_now_ms() + 10000;
    char *end = NULL, *cl;
    size_t head, body = 0;
    int status = 0;

    while (!(end = memmem(s->buf, s->len, "\r\n\r\n", 4)))
        if (!sock_fill(s, 200) && h_now_ms() > deadline)
            fail_msg("no HTTP answer");
    head = (size_t)(end + 4 - s->buf);
    end[2] = '\0';
    sscanf(s->buf, "HTTP/1.1 %d", &status);
    if ((cl = strcasestr(s->buf, "content-length:")))
        body = strtoul(cl + 15, NULL, 10);
    while (s->len < head + body)
        if (!sock_fill(s, 10000))
            fail_msg("HTTP body cut short");
    sock_drop(s, head + body);
    return status;
}

static void ws_open(sock *s, int port)
{
    static const char req[] =
        "GET /_sync HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: verso-sync.1\r\n"
        "Authorization: Bearer " TOK_ADMIN "\r\n\r\n";
    char *end;

    sock_open(s, port);
    sock_send(s, req, sizeof(req) - 1);
    while (!(end = memmem(s->buf, s->len, "\r\n\r\n", 4)))
        if (!sock_fill(s, 10000))
            fail_msg("no WebSocket handshake answer");
    assert_memory_equal(s->buf, "HTTP/1.1 101", 12);
    sock_drop(s, (size_t)(end + 4 - s->buf));
}

/* The next frame from the server (unmasked): its opcode, payload in p. */
static int ws_frame(sock *s, char *p, size_t cap, size_t *n)
{
    size_t hdr = 2, len;

    while (s->len < 2 || s->len < hdr)
        if (!sock_fill(s, 10000))
            fail_msg("WebSocket closed without a close frame");
    len = (unsigned char)s->buf[1] & 0x7f;
    hdr = len == 126 ? 4 : len == 127 ? 10 : 2;
    while (s->len < hdr)
        assert_true(sock_fill(s, 10000));
    if (len == 126)
        len = (size_t)((unsigned char)s->buf[2] << 8 | (unsigned char)s->buf[3]);
    else if (len == 127)
        fail_msg("unexpected 64-bit frame length");
    while (s->len < hdr + len)
        assert_true(sock_fill(s, 10000));
    *n = len < cap ? len : cap;
    memcpy(p, s->buf + hdr, *n);
    {
        int op = s->buf[0] & 0x0f;
        sock_drop(s, hdr + len);
        return op;
    }
}

/* A ping (masked with a zero key) is answered with its pong: the link lives. */
static void ws_assert_alive(sock *s)
{
    static const unsigned char ping[] = {0x89, 0x84, 0, 0, 0, 0, 'p', 'i', 'n', 'g'};
    char p[256];
    size_t n;

    sock_send(s, ping, sizeof(ping));
    while (ws_frame(s, p, sizeof(p), &n) != 0xA)
        ;
    assert_int_equal(n, 4);
    assert_memory_equal(p, "ping", 4);
}

static void make_db(char *db, size_t n)
{
    h_path(db, n, "master.db");
    h_remove_db(db);
    verso_db_close(h_open(db));
}

static const char k_config[] =
    "# two tokens\ntoken " HASH_ADMIN " admin\ntoken " HASH_READ " read\n";

static void test_sighup_reloads_tokens_keeping_connections(void **state)
{
    char db[600], cfg[600], p[256];
    static const char req[] =
        "GET /items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOK_ADMIN "\r\n\r\n";
    sock keep, ws;
    child c;
    size_t n;

    (void)state;
    make_db(db, sizeof(db));
    h_path(cfg, sizeof(cfg), "serve.conf");
    write_file(cfg, k_config);
    serve(&c, db, cfg);
    assert_int_equal(get(&c, "/items", TOK_READ, NULL), 200);
    assert_int_equal(get(&c, "/items", TOK_NEW, NULL), 401);
    sock_open(&keep, c.port);
    sock_send(&keep, req, sizeof(req) - 1);
    assert_int_equal(http_response(&keep), 200);
    ws_open(&ws, c.port);
    assert_int_equal(ws_frame(&ws, p, sizeof(p), &n), 1); /* the master's hello */

    /* tok-read goes, tok-new comes */
    write_file(cfg, "token " HASH_ADMIN " admin\ntoken " HASH_NEW " read\n");
    kill(c.pid, SIGHUP);
    wait_log(&c, "verso serve: reloaded");
    assert_int_equal(get(&c, "/items", TOK_NEW, NULL), 200);
    assert_int_equal(get(&c, "/items", TOK_READ, NULL), 401);
    sock_send(&keep, req, sizeof(req) - 1); /* the same keep-alive connection */
    assert_int_equal(http_response(&keep), 200);
    ws_assert_alive(&ws);

    /* a file that does not parse: the old config stays, the log names file and line */
    write_file(cfg, "token " HASH_ADMIN " admin\nthis is not a setting\n");
    kill(c.pid, SIGHUP);
    wait_log(&c, "config not reloaded");
    {
        char at[700];

        snprintf(at, sizeof(at), "%s:2: unknown setting", cfg); /* FILE:LINE: reason */
        wait_log(&c, at);
    }
    assert_int_equal(get(&c, "/items", TOK_NEW, NULL), 200);
    ws_assert_alive(&ws);

    close(keep.fd);
    close(ws.fd);
    stop(&c, SIGTERM);
}

/* The value of a metric line "name value" in /_metrics; -1 if absent. */
static long long metric(const child *c, const char *name)
{
    char *body = NULL, *at;
    long long v = -1;

    assert_int_equal(get(c, "/_metrics", TOK_ADMIN, &body), 200);
    for (at = body; (at = strstr(at, name)); at++)
        if ((at == body || at[-1] == '\n') && at[strlen(name)] == ' ') {
            v = atoll(at + strlen(name) + 1);
            break;
        }
    free(body);
    return v;
}

static void test_sigterm_drains_and_exits_0(void **state)
{
    static const char body[] = "{\"name\":\"sent while stopping\",\"price\":1.5,\"qty\":2}";
    char db[600], cfg[600], head[256], p[256];
    int64_t deadline = h_now_ms() + 10000;
    sock up, ws;
    child c;
    size_t n;

    (void)state;
    make_db(db, sizeof(db));
    h_path(cfg, sizeof(cfg), "serve.conf");
    write_file(cfg, k_config);
    serve(&c, db, cfg);
    ws_open(&ws, c.port);
    assert_int_equal(ws_frame(&ws, p, sizeof(p), &n), 1);

    /* an upload under way: its headers and part of its body are in */
    snprintf(head, sizeof(head),
             "POST /items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOK_ADMIN "\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             sizeof(body) - 1);
    sock_open(&up, c.port);
    sock_send(&up, head, strlen(head));
    sock_send(&up, body, 10);
    while (metric(&c, "verso_http_requests_reading") != 1)
        if (h_now_ms() > deadline)
            fail_msg("the server never started reading the body");
        else
            h_sleep_ms(10);

    kill(c.pid, SIGTERM);
    /* the WebSocket is told the server goes away (1001) */
    while (ws_frame(&ws, p, sizeof(p), &n) != 0x8)
        ;
    assert_true(n >= 2);
    assert_int_equal((unsigned char)p[0] << 8 | (unsigned char)p[1], 1001);
    /* the upload is finished and answered */
    sock_send(&up, body + 10, sizeof(body) - 1 - 10);
    assert_int_equal(http_response(&up), 201);
    close(up.fd);
    close(ws.fd);
    stop(&c, 0); /* already signalled: exits 0 by itself */
    assert_true(h_file_contains(db, "sent while stopping"));
}

/* `verso replicate --quiet --name NAME --port 0 URL DB` with stderr into
 * r->log; its own server's URL is read from the "serving" line. */
static void replicate(child *r, const child *master, const char *db, const char *name,
                      const char *host)
{
    char *argv[] = {getenv("VERSO_BIN"),
                    "replicate",
                    "--quiet",
                    "--name",
                    (char *)name,
                    "--port",
                    "0",
                    "--token",
                    TOK_ADMIN,
                    (char *)master->url,
                    (char *)db,
                    NULL,
                    NULL,
                    NULL};
    if (host) { /* after the positional arguments: options may come anywhere */
        argv[11] = "--host";
        argv[12] = (char *)host;
    }
    pid_t parent = getpid();
    int64_t deadline = h_now_ms() + 10000;
    char buf[4096], *at;

    h_path(r->log, sizeof(r->log), "replicate.log");
    unlink(r->log);
    fflush(NULL);
    assert_true((r->pid = fork()) >= 0);
    if (r->pid == 0) {
        int err = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || err < 0)
            _exit(1);
        dup2(null, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    for (;;) {
        FILE *f = fopen(r->log, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        if ((at = strstr(buf, " on http://")) && strchr(at, '\n'))
            break;
        if (h_now_ms() > deadline)
            fail_msg("verso replicate did not serve; it said:\n%s", buf);
        h_sleep_ms(10);
    }
    at += 4;
    at[strcspn(at, "\n")] = '\0';
    snprintf(r->url, sizeof(r->url), "%s", at);
    r->port = atoi(strrchr(at, ':') + 1);
}

/* The integer member key of the object "upstream" of GET /_status: a crude
 * scan is enough, the names are unique in that object. */
static long long upstream_field(const child *c, const char *key, char *text, size_t n)
{
    char *body = NULL, *at, pat[64];
    long long v = -1;

    assert_int_equal(get(c, "/_status", NULL, &body), 200);
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    if ((at = strstr(body, "\"upstream\":{")) && (at = strstr(at, pat))) {
        at += strlen(pat);
        v = atoll(at);
        if (text)
            snprintf(text, n, "%.*s", (int)strcspn(at, ",}"), at);
    }
    free(body);
    return v;
}

/* Every family has HELP then TYPE, no name carries a millisecond unit, and
 * promtool (Debian's prometheus package), when installed, finds nothing to
 * say about the page. */
static void check_metrics(const child *c, const char *what)
{
    char *body = NULL, path[600], cmd[1400], out[4096] = "";
    const char *promtool = access("/usr/bin/promtool", X_OK) == 0 ? "/usr/bin/promtool" : NULL;
    FILE *f;
    size_t n;

    assert_int_equal(get(c, "/_metrics", TOK_ADMIN, &body), 200);
    for (char *t = body; (t = strstr(t, "# TYPE ")); t++) {
        char name[128], help[160];
        sscanf(t + 7, "%127s", name);
        snprintf(help, sizeof(help), "# HELP %s ", name);
        if (!strstr(body, help) || strstr(body, help) > t)
            fail_msg("%s: %s has no HELP line before its TYPE", what, name);
        if (strstr(name, "_ms") || strstr(name, "milli"))
            fail_msg("%s: %s is not in base units", what, name);
    }
    h_path(path, sizeof(path), "metrics.txt");
    assert_non_null(f = fopen(path, "w"));
    fputs(body, f);
    fclose(f);
    free(body);
    if (!promtool) {
        print_message("skipped: promtool not found (scripts/setup.sh installs Debian's "
                      "prometheus package when it can); %s checked for HELP and units only\n",
                      what);
        return;
    }
    snprintf(cmd, sizeof(cmd), "%s check metrics < '%s' 2>&1; echo \"exit $?\"", promtool, path);
    assert_non_null(f = popen(cmd, "r"));
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    if (strcmp(out, "exit 0\n"))
        fail_msg("promtool check metrics on %s said:\n%s", what, out);
}

static bool caught_up(const child *r, const char *db)
{
    char text[16];

    upstream_field(r, "connected", text, sizeof(text));
    return !strcmp(text, "true") && upstream_field(r, "lag_versions", NULL, 0) == 0 &&
           upstream_field(r, "cursor", NULL, 0) == h_head(db);
}

static void test_slave_shows_its_upstream_and_its_name(void **state)
{
    char db[600], sdb[600], cfg[600], text[64];
    int64_t deadline = h_now_ms() + 20000;
    child m, r;
    char *body = NULL;
    verso_db *w;

    (void)state;
    make_db(db, sizeof(db));
    h_path(sdb, sizeof(sdb), "slave.db");
    h_remove_db(sdb);
    h_path(cfg, sizeof(cfg), "serve.conf");
    write_file(cfg, k_config);
    w = h_open(db);
    h_orm_workload(w, 10, 5);
    serve(&m, db, cfg);
    replicate(&r, &m, sdb, "edge-1", NULL);

    while (!caught_up(&r, db))
        if (h_now_ms() > deadline)
            fail_msg("the slave's /_status never showed it caught up");
        else
            h_sleep_ms(20);
    assert_int_equal(upstream_field(&r, "master_head", NULL, 0), h_head(db));
    assert_int_equal(upstream_field(&r, "resyncs", NULL, 0), 0);
    assert_int_equal(upstream_field(&r, "reconnects", NULL, 0), 0);
    upstream_field(&r, "name", text, sizeof(text));
    assert_string_equal(text, "\"edge-1\"");
    assert_int_equal(metric(&r, "verso_upstream_connected"), 1);
    assert_int_equal(metric(&r, "verso_upstream_lag_versions"), 0);
    assert_int_equal(metric(&r, "verso_upstream_cursor"), h_head(db));
    assert_int_equal(metric(&r, "verso_upstream_resyncs_total"), 0);

    /* the master lists it under its name */
    assert_int_equal(get(&m, "/_status", TOK_ADMIN, &body), 200);
    assert_non_null(strstr(body, "{\"name\":\"edge-1\""));
    free(body);
    check_metrics(&m, "the master's /_metrics");
    check_metrics(&r, "the slave's /_metrics");

    /* a reload request does not stop a slave; SIGTERM does, with status 0 */
    kill(r.pid, SIGHUP);
    wait_log(&r, "nothing to reload");
    assert_int_equal(upstream_field(&r, "reconnects", NULL, 0), 0);
    stop(&r, SIGTERM);
    verso_db_close(w);
    stop(&m, SIGTERM);
}

/* Runs "$VERSO_BIN ARGS" through the shell; out receives stdout and stderr.
 * Returns the exit status. */
static int verso(char *out, size_t n, const char *args)
{
    char cmd[2048];
    FILE *f;
    size_t got;
    int status;

    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", getenv("VERSO_BIN"), args);
    assert_non_null(f = popen(cmd, "r"));
    got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int64_t horizon_of(const char *path)
{
    verso_db *db = h_open(path);
    verso_info info;

    assert_int_equal(verso_db_info(&info, db), 0);
    verso_db_close(db);
    return info.horizon;
}

static void delete_items(const char *db, const char *where)
{
    char sql[256], out[512];

    snprintf(sql, sizeof(sql), "/usr/bin/sqlite3 -cmd '.timeout 5000' '%s' 'DELETE FROM items %s'",
             db, where);
    {
        FILE *f = popen(sql, "r");
        size_t n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        assert_int_equal(pclose(f), 0);
    }
}

static void test_prune_command(void **state)
{
    char db[600], args[800], out[2048];
    int64_t head;
    verso_db *w;

    (void)state;
    make_db(db, sizeof(db));
    w = h_open(db);
    h_seed(7);
    h_orm_workload(w, 20, 5);
    verso_db_close(w);
    delete_items(db, "WHERE id % 2 = 0");
    head = h_head(db);

    snprintf(args, sizeof(args), "prune '%s' --keep-versions 2", db);
    assert_int_equal(verso(out, sizeof(out), args), 0);
    assert_non_null(strstr(out, "verso prune: horizon "));
    assert_int_equal(horizon_of(db), head - 2);
    assert_int_equal(verso(out, sizeof(out), args), 0); /* again: nothing older is left */
    assert_non_null(strstr(out, "nothing to prune"));
    snprintf(args, sizeof(args), "prune '%s' --older-than 0s", db);
    assert_int_equal(verso(out, sizeof(out), args), 0);
    assert_true(horizon_of(db) >= head - 2);

    snprintf(args, sizeof(args), "prune '%s' --older-than 5x", db);
    assert_int_equal(verso(out, sizeof(out), args), 2);
    assert_non_null(
        strstr(out, "--older-than needs a duration such as 90s, 15m, 12h or 7d, not 5x"));
    snprintf(args, sizeof(args), "prune '%s' --keep-versions 1 --older-than 1d", db);
    assert_int_equal(verso(out, sizeof(out), args), 2);
    assert_non_null(strstr(out, "give one of --keep-versions N or --older-than DURATION"));
    snprintf(args, sizeof(args), "prune '%s/missing.db' --keep-versions 1", h_dir);
    assert_int_equal(verso(out, sizeof(out), args), 4); /* data: no such database */
    assert_non_null(strstr(out, "verso prune: cannot open "));
}

static long post_prune(const child *c, const char *token, const char *json, char **body)
{
    char url[256], auth[128];
    const char *hdr[] = {auth, "Content-Type: application/json", NULL};
    rt_resp r;
    long st;

    snprintf(url, sizeof(url), "%s/_prune", c->url);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    rt_request(&r, "POST", url, json, strlen(json), hdr);
    st = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    rt_resp_free(&r);
    return st;
}

static void test_prune_route_and_slave_resync(void **state)
{
    char db[600], sdb[600], cfg[600], args[1200], out[4096];
    char *body = NULL;
    int64_t head;
    child m;
    verso_db *w;

    (void)state;
    make_db(db, sizeof(db));
    h_path(sdb, sizeof(sdb), "pulled.db");
    h_remove_db(sdb);
    h_path(cfg, sizeof(cfg), "serve.conf");
    write_file(cfg, k_config);
    w = h_open(db);
    h_seed(11);
    h_orm_workload(w, 20, 5);
    verso_db_close(w);
    serve(&m, db, cfg);
    snprintf(args, sizeof(args), "pull --quiet --token %s %s '%s'", TOK_ADMIN, m.url, sdb);
    assert_int_equal(verso(out, sizeof(out), args), 0);

    /* the master deletes rows, then prunes their tombstones */
    delete_items(db, "WHERE id % 3 = 0");
    head = h_head(db);
    assert_int_equal(post_prune(&m, TOK_READ, "{\"keep_versions\":0}", NULL), 403);
    assert_int_equal(post_prune(&m, TOK_ADMIN, "{\"keep\":1}", &body), 400);
    assert_non_null(strstr(body, "keep_versions"));
    free(body);
    assert_int_equal(post_prune(&m, TOK_ADMIN, "{\"keep_versions\":0}", &body), 200);
    snprintf(args, sizeof(args), "{\"horizon\":%lld,\"previous_horizon\":0}", (long long)head);
    assert_string_equal(body, args);
    free(body);
    assert_int_equal(post_prune(&m, TOK_ADMIN, "{\"older_than_seconds\":3600}", &body), 200);
    free(body);

    /* the slave's cursor is behind the horizon: it resynchronises and converges */
    snprintf(args, sizeof(args), "pull --token %s %s '%s'", TOK_ADMIN, m.url, sdb);
    assert_int_equal(verso(out, sizeof(out), args), 0);
    assert_non_null(strstr(out, "full resync"));
    h_assert_converged(db, sdb);
    stop(&m, SIGTERM);
}

static void test_replicate_host(void **state)
{
    char db[600], sdb[600], cfg[600], args[1200], out[2048];
    child m, r;

    (void)state;
    make_db(db, sizeof(db));
    h_path(sdb, sizeof(sdb), "slave-host.db");
    h_remove_db(sdb);
    h_path(cfg, sizeof(cfg), "serve.conf");
    write_file(cfg, k_config);
    serve(&m, db, cfg);
    replicate(&r, &m, sdb, "edge-2", "127.0.0.2");
    assert_non_null(strstr(r.url, "http://127.0.0.2:"));
    assert_int_equal(get(&r, "/_health", NULL, NULL), 200);
    stop(&r, SIGTERM);

    /* any other address needs tokens, as for verso serve */
    snprintf(args, sizeof(args), "replicate --quiet --port 0 --host 0.0.0.0 %s '%s'", m.url, sdb);
    assert_int_equal(verso(out, sizeof(out), args), 3); /* access: the config needs tokens */
    assert_non_null(strstr(out, "verso replicate: cannot serve: "));
    assert_non_null(strstr(out, "0.0.0.0"));
    assert_int_equal(verso(out, sizeof(out), "replicate --help"), 0);
    assert_non_null(strstr(out, "  --host H           with --port: bind address"));
    assert_non_null(strstr(out, "  --name NAME        the name the master lists"));
    stop(&m, SIGTERM);
}

static bool file_has(const char *path, const char *text)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

    if (f)
        fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

/* The units install under share/verso/systemd, run the installed verso, and
 * pass `systemd-analyze verify` without a word (when it is there). */
static void test_systemd_units(void **state)
{
    static const char *const units[] = {"verso-serve@", "verso-replicate@"};
    char args[2048], out[4096], unit[700], exec[700];

    (void)state;
    assert_non_null(getenv("VERSO_BUILD_DIR"));
    snprintf(args, sizeof(args), "cmake --install '%s' --prefix '%s/prefix' 2>&1",
             getenv("VERSO_BUILD_DIR"), h_dir);
    {
        FILE *f = popen(args, "r");
        size_t n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        if (pclose(f) != 0)
            fail_msg("cmake --install failed:\n%s", out);
    }
    snprintf(exec, sizeof(exec), "ExecStart=%s/prefix/bin/verso ", h_dir);
    for (size_t i = 0; i < 2; i++) {
        snprintf(unit, sizeof(unit), "%s/prefix/share/verso/systemd/%s.service", h_dir, units[i]);
        assert_int_equal(access(unit, R_OK), 0);
        assert_true(file_has(unit, exec));
        assert_true(file_has(unit, "\nExecReload=/bin/kill -HUP $MAINPID\n"));
        assert_true(file_has(unit, "\nRestart=on-failure\n"));
        assert_true(file_has(unit, "\nNoNewPrivileges=yes\n"));
        assert_true(file_has(unit, "\nProtectSystem=strict\n"));
        if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
            print_message("skipped: systemd-analyze not found; %s checked by content only\n",
                          units[i]);
            continue;
        }
        /* an instance of the template, as systemctl would start it */
        snprintf(args, sizeof(args),
                 "cp '%s' '%s/%sdemo.service' && cd '%s' && "
                 "systemd-analyze verify './%sdemo.service' 2>&1; echo \"exit $?\"",
                 unit, h_dir, units[i], h_dir, units[i]);
        {
            FILE *f = popen(args, "r");
            size_t n = fread(out, 1, sizeof(out) - 1, f);
            out[n] = '\0';
            pclose(f);
        }
        if (strcmp(out, "exit 0\n"))
            fail_msg("systemd-analyze verify %s said:\n%s", units[i], out);
    }
    snprintf(args, sizeof(args), "rm -rf '%s/prefix'", h_dir); /* h_remove_dir() is flat */
    assert_int_equal(system(args), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sighup_reloads_tokens_keeping_connections),
        cmocka_unit_test(test_sigterm_drains_and_exits_0),
        cmocka_unit_test(test_slave_shows_its_upstream_and_its_name),
        cmocka_unit_test(test_prune_command),
        cmocka_unit_test(test_replicate_host),
        cmocka_unit_test(test_systemd_units),
        cmocka_unit_test(test_prune_route_and_slave_resync),
    };

    (void)argc;
    (void)argv;
    h_init_dir("operate");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
