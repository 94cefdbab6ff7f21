/*
 * Errors that say what happened and what to do: the exit statuses of every
 * sub-command, and what is wrong with a master URL.
 *
 * When a pull or a live slave cannot talk to its master, the library says
 * what failed on its side ("cannot connect", "HTTP 404"); the user needs to
 * know why and what to do. verso_cli_url_problem() looks at the URL itself
 * with a short probe of its own: the name resolves, something listens on the
 * port, it speaks HTTP (not TLS, or TLS when the URL says http), and its
 * GET <prefix>/_info answers like a verso master. Each step is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "cli.h"
#include "verso/sync.h"
#include "verso/verso.h"

#define PROBE_MS 2000

int verso_cli_status(int rc)
{
    switch (rc) {
    case 0:
        return VERSO_EXIT_OK;
    case VERSO_EINVAL:
        return VERSO_EXIT_USAGE;
    case VERSO_EAUTH:
        return VERSO_EXIT_AUTH;
    case VERSO_ENOTFOUND:
    case VERSO_ESCHEMA:
    case VERSO_ECONSTRAINT:
    case VERSO_EDB:
    case VERSO_EREADONLY:
    case VERSO_EJSON:
    case VERSO_EUTF8:
    case VERSO_ETYPE:
    case VERSO_ETOOBIG:
    case VERSO_EFULL:
        return VERSO_EXIT_DATA;
    case VERSO_ENET:
    case VERSO_ETIMEOUT:
    case VERSO_EBUSY:
    case VERSO_ECONFLICT:
        return VERSO_EXIT_TEMPFAIL;
    default:
        return VERSO_EXIT_FAILURE;
    }
}

const char *verso_cli_token_hint(void)
{
    return "give the token with --token TOKEN, $VERSO_TOKEN or a 'client-token TOKEN' line "
           "in the config file (--config FILE or $VERSO_CONFIG)";
}

/* ---- the URL ---- */

typedef struct url_parts {
    bool tls;
    char host[256];
    char port[8];
    char prefix[512];
} url_parts;

static int parse_url(url_parts *u, const char *url)
{
    const char *p, *end, *colon;
    size_t n;

    memset(u, 0, sizeof(*u));
    if (!strncmp(url, "https://", 8))
        u->tls = true, p = url + 8;
    else if (!strncmp(url, "http://", 7))
        p = url + 7;
    else
        return -1;
    end = p + strcspn(p, "/");
    if (*p == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return -1;
        snprintf(u->host, sizeof(u->host), "%.*s", (int)(close - p - 1), p + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        n = (size_t)((colon ? colon : end) - p);
        snprintf(u->host, sizeof(u->host), "%.*s", (int)n, p);
    }
    if (colon)
        snprintf(u->port, sizeof(u->port), "%.*s", (int)(end - colon - 1), colon + 1);
    else
        snprintf(u->port, sizeof(u->port), "%s", u->tls ? "443" : "80");
    snprintf(u->prefix, sizeof(u->prefix), "%s", end);
    n = strlen(u->prefix);
    if (n && u->prefix[n - 1] == '/')
        u->prefix[n - 1] = '\0';
    return u->host[0] ? 0 : -1;
}

/* ---- the probe ---- */

/* Waits for events on fd, at most PROBE_MS: 1 ready, 0 timed out. */
static int wait_fd(int fd, short events)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int n;

    do
        n = poll(&pfd, 1, PROBE_MS);
    while (n < 0 && errno == EINTR);
    return n > 0;
}

/* A connected socket, else -1 with errno (ETIMEDOUT when nothing answered). */
static int connect_to(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol), err = 0;
    socklen_t len = sizeof(err);

    if (fd < 0)
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
        err = errno;
    else if (!wait_fd(fd, POLLOUT))
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Sends a plain GET <prefix><path> and reads what comes back (NUL-terminated);
 * *silent when nothing came before the deadline. */
static size_t ask(int fd, const url_parts *u, const char *path, char *buf, size_t n, bool *silent)
{
    char req[1024];
    size_t got = 0;
    int len = snprintf(req, sizeof(req), "GET %s%s HTTP/1.0\r\nHost: %s\r\n\r\n", u->prefix, path,
                       u->host);

    *silent = false;
    buf[0] = '\0';
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
        return 0;
    while (got + 1 < n) {
        ssize_t r;
        if (!wait_fd(fd, POLLIN)) {
            *silent = got == 0;
            break;
        }
        if ((r = recv(fd, buf + got, n - 1 - got, 0)) <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

typedef struct diag {
    int status;
    const char *path; /* what is asked: "/_info" (a database), "/_databases" (--all) */
    const char *url;
    const url_parts *u;
    char *msg;
    size_t n;
} diag;

static int say(diag *d, int status, const char *cause, const char *hint_fmt, const char *arg)
{
    int k = snprintf(d->msg, d->n, "%s: %s; ", d->url, cause);

    if (k > 0 && (size_t)k < d->n)
        snprintf(d->msg + k, d->n - (size_t)k, hint_fmt, arg);
    return d->status = status;
}

static int answered_dir(diag *d, int code, const char *reply);
static int server_error(diag *d, int code, const char *said);

/* The message of a verso JSON error in reply ("" when none), printable, cut. */
static bool server_says(const char *reply, char *out, size_t n)
{
    const char *m = strstr(reply, "{\"error\":{");
    size_t o = 0;

    out[0] = '\0';
    if (!m || !(m = strstr(m, "\"message\":\"")))
        return false;
    for (m += 11; *m && *m != '"' && o + 1 < n && o < 200; m++) {
        if (*m == '\\' && m[1])
            m++;
        out[o++] = (unsigned char)*m >= 0x20 && *m != 0x7f ? *m : '?';
    }
    out[o] = '\0';
    return o > 0;
}

static int answered(diag *d, const char *reply, size_t got)
{
    char cause[700];
    int code = 0;

    if (d->u->tls && got > 5 && !strncmp(reply, "HTTP/", 5))
        return say(d, VERSO_EXIT_USAGE, "the master speaks plain HTTP, not HTTPS",
                   "use http://%s instead", d->url + 8);
    if (d->u->tls)
        return 0; /* a TLS server: the library's own reason stands */
    if (got < 5 || strncmp(reply, "HTTP/", 5))
        return say(d, VERSO_EXIT_USAGE, "something listens there but does not answer plain HTTP",
                   "if it is an HTTPS master, use https://%s", d->url + 7);
    sscanf(reply, "HTTP/%*s %d", &code);
    if (code == 401 || code == 403)
        return 0; /* the token's business */
    if (!strcmp(d->path, VERSO_DATABASES_PATH))
        return code == 200 && strstr(reply, "\"databases\"") ? 0 : answered_dir(d, code, reply);
    if (code == 200 && strstr(reply, "\"identity\"") && strstr(reply, "\"head\""))
        return 0; /* a verso master: the URL is right */
    if (server_says(reply, cause, 220))
        return server_error(d, code, cause);
    snprintf(cause, sizeof(cause),
             "it answered (HTTP %d to GET %s/_info) but is not a verso master", code, d->u->prefix);
    return say(d, VERSO_EXIT_USAGE, cause,
               "check the URL's host, port and path: it must be the base URL `verso serve` "
               "printed, such as http://127.0.0.1:8080%s",
               "");
}

static int resolve(diag *d, struct addrinfo **res)
{
    struct addrinfo hints;
    char cause[400];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(d->u->host, d->u->port, &hints, res);
    if (rc == 0)
        return 0;
    if (rc == EAI_AGAIN) {
        snprintf(cause, sizeof(cause), "the name %s cannot be resolved now (%s)", d->u->host,
                 gai_strerror(rc));
        return say(d, VERSO_EXIT_TEMPFAIL, cause, "%scheck the network and DNS, then retry", "");
    }
    snprintf(cause, sizeof(cause), "no such host %s", d->u->host);
    return say(d, VERSO_EXIT_USAGE, cause, "%scheck the host name in the URL", "");
}

/* A verso master answers GET <u's prefix><path> (a second, short probe). */
static bool verso_at(const url_parts *u, const char *path)
{
    struct addrinfo hints, *res = NULL;
    char reply[4096];
    int fd = -1;
    bool silent;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
        return false;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_to(ai);
    freeaddrinfo(res);
    if (fd < 0)
        return false;
    ask(fd, u, path, reply, sizeof(reply), &silent);
    close(fd);
    if (strncmp(reply, "HTTP/", 5))
        return false;
    if (strstr(reply, " 401 ") ||
        strstr(reply, " 403 ")) /* verso's JSON error: a token is needed */
        return strstr(reply, "{\"error\":{\"code\":") != NULL;
    if (!strcmp(path, VERSO_DATABASES_PATH))
        return strstr(reply, " 200 ") && strstr(reply, "\"databases\"");
    return strstr(reply, " 200 ") && strstr(reply, "\"identity\"") && strstr(reply, "\"head\"");
}

/* The URL without its path (d->url up to the prefix), into out. */
static void base_url(char *out, size_t n, const diag *d, const char *prefix_end)
{
    size_t keep = strlen(d->url) - strlen(d->u->prefix) - (d->url[strlen(d->url) - 1] == '/');

    snprintf(out, n, "%.*s%.*s", (int)keep, d->url, (int)(prefix_end - d->u->prefix), d->u->prefix);
}

/* A verso server answered with an error of its own: say it, with what to do. */
static int server_error(diag *d, int code, const char *said)
{
    char cause[600], base[600];
    const char *db = strstr(d->u->prefix, "/db/");

    snprintf(cause, sizeof(cause), "the server answered HTTP %d to GET %s%s: %s", code,
             d->u->prefix, d->path, said);
    if (db && !strchr(db + 4, '/')) {
        base_url(base, sizeof(base), d, db);
        return say(d, VERSO_EXIT_USAGE, cause,
                   "GET %s/_databases lists the databases of that server", base);
    }
    if (strstr(said, "serves databases"))
        return say(d, VERSO_EXIT_USAGE, cause,
                   "follow one of its databases at %s/db/NAME, or all of them with "
                   "`verso replicate --all URL DIR`",
                   d->url);
    return say(d, VERSO_EXIT_USAGE, cause, "check the URL's path%s", "");
}

/* --all at a URL that is not a server of databases: a one-database server, or nothing verso. */
static int answered_dir(diag *d, int code, const char *reply)
{
    char cause[700];

    if (verso_at(d->u, "/_info"))
        return say(d, VERSO_EXIT_USAGE,
                   "a one-database server answers there (GET /_info), not a server of databases",
                   "follow it with `verso replicate %s FILE`, without --all", d->url);
    if (server_says(reply, cause, 220))
        return server_error(d, code, cause);
    snprintf(cause, sizeof(cause),
             "it answered (HTTP %d to GET %s" VERSO_DATABASES_PATH ") but is not a verso server "
             "of databases",
             code, d->u->prefix);
    return say(d, VERSO_EXIT_USAGE, cause,
               "check the URL's host, port and path: it must be the base URL `verso serve --dir` "
               "printed, such as http://127.0.0.1:8080%s",
               "");
}

/* Not a verso master at the URL's path, but one at the root: the path is wrong. */
static int wrong_path(diag *d)
{
    url_parts root = *d->u;
    char fixed[600];
    size_t hostlen = strlen(d->url) - strlen(d->u->prefix) - (d->url[strlen(d->url) - 1] == '/');

    root.prefix[0] = '\0';
    if (!d->u->prefix[0] || d->u->tls || !verso_at(&root, "/_info"))
        return d->status;
    snprintf(fixed, sizeof(fixed), "%.*s", (int)hostlen, d->url);
    return say(d, VERSO_EXIT_USAGE, "a verso master answers there, but not under this path",
               "use %s", fixed);
}

static int probe(diag *d)
{
    struct addrinfo *res = NULL, *ai;
    char reply[4096];
    int fd = -1, err = 0;
    bool silent;
    size_t got;

    if (resolve(d, &res) != 0)
        return d->status;
    for (ai = res; ai && fd < 0; ai = ai->ai_next)
        if ((fd = connect_to(ai)) < 0)
            err = errno;
    freeaddrinfo(res);
    if (fd < 0 && err == ECONNREFUSED)
        return say(d, VERSO_EXIT_TEMPFAIL, "nothing is listening there (connection refused)",
                   "is `verso serve` running at %s?", d->url);
    if (fd < 0 && err == ETIMEDOUT)
        return say(d, VERSO_EXIT_TEMPFAIL, "no answer from the host (connection timed out)",
                   "is the host up, and %s reachable from here?", d->url);
    if (fd < 0)
        return say(d, VERSO_EXIT_TEMPFAIL, strerror(err), "is `verso serve` running at %s?",
                   d->url);
    got = ask(fd, d->u, d->path, reply, sizeof(reply), &silent);
    close(fd);
    if (silent && !d->u->tls)
        return say(d, VERSO_EXIT_TEMPFAIL, "it accepted the connection but sent no answer",
                   "is `verso serve` at %s overloaded or stopped?", d->url);
    if (answered(d, reply, got) == VERSO_EXIT_USAGE && !strncmp(reply, "HTTP/", 5) &&
        strcmp(d->path, VERSO_DATABASES_PATH))
        return wrong_path(d);
    return d->status;
}

int verso_cli_dir_url_problem(char *msg, size_t n, const char *url)
{
    url_parts u;
    diag d = {.status = 0, .path = VERSO_DATABASES_PATH, .url = url, .u = &u, .msg = msg, .n = n};

    msg[0] = '\0';
    if (parse_url(&u, url) < 0) {
        snprintf(msg, n, "%s: not a server URL; write it as http://HOST:PORT (or https://)", url);
        return VERSO_EXIT_USAGE;
    }
    return probe(&d);
}

int verso_cli_url_problem(char *msg, size_t n, const char *url)
{
    url_parts u;
    diag d = {.status = 0, .path = "/_info", .url = url, .u = &u, .msg = msg, .n = n};

    msg[0] = '\0';
    if (parse_url(&u, url) < 0) {
        snprintf(msg, n, "%s: not a master URL; write it as http://HOST:PORT (or https://)", url);
        return VERSO_EXIT_USAGE;
    }
    return probe(&d);
}

/* ---- durations ---- */

int verso_cli_parse_duration(int64_t *ms, const char *s)
{
    char *end;
    double v;
    double unit = 1000.0;

    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !(v >= 0))
        return -1;
    if (!strcmp(end, "ms"))
        unit = 1.0;
    else if (!strcmp(end, "s") || !*end)
        unit = 1000.0;
    else if (!strcmp(end, "m"))
        unit = 60000.0;
    else if (!strcmp(end, "h"))
        unit = 3600000.0;
    else
        return -1;
    if (v * unit > 1e15)
        return -1;
    *ms = (int64_t)(v * unit);
    return 0;
}

const char *verso_cli_exit_help(void)
{
    return "exit status:\n"
           "  0   success\n"
           "  1   failure of another kind (I/O, internal)\n"
           "  2   usage: fix the command (options, arguments, a URL that is not a verso master)\n"
           "  3   access: the token or the config file\n"
           "  4   data: the database (missing, not tracked, schema conflict, disk full)\n"
           "  75  temporary: network or busy database; retrying later may help\n";
}
