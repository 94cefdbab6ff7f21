/*
 * The proxy's thread owns every socket; the other threads only change the
 * mode or ask for a cut under the lock and wake it through a pipe. A
 * connection is two sockets and one buffer per direction; a side is read
 * only while its buffer has room, so a slow or stalled side holds the
 * other back as TCP would.
 */
#define _GNU_SOURCE
#include "fault_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FP_MAX 64
#define FP_BUF 16384

typedef struct fp_conn {
    int fd[2];       /* client, upstream (-1: none) */
    bool connecting; /* upstream connect in progress */
    bool dead;       /* black-holed for good */
    bool eof[2];     /* fd[d] ended: close once buf[d] is written */
    size_t len[2], off[2];
    unsigned char buf[2][FP_BUF]; /* read from fd[d], to write to fd[!d] */
} fp_conn;

struct fp_proxy {
    pthread_t thread;
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t cond;
    int lfd, port, upstream;
    int wake[2];
    bool stop;
    fp_mode mode;
    int rate;
    int cut_asked, cut_done, cut_last;
    double tokens[2];
    int64_t tokens_us;
    fp_stats st;
    fp_conn *c[FP_MAX];
};

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void close_fd(int fd, bool reset)
{
    struct linger l = {1, 0};

    if (fd < 0)
        return;
    if (reset)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

static void conn_close(fp_proxy *p, int i, bool reset)
{
    close_fd(p->c[i]->fd[0], reset);
    close_fd(p->c[i]->fd[1], reset);
    free(p->c[i]);
    p->c[i] = NULL;
    p->st.open--;
}

static int upstream_connect(fp_proxy *p)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->upstream)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void accept_all(fp_proxy *p)
{
    int fd, i;

    while ((fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        fp_conn *c = NULL;
        for (i = 0; i < FP_MAX && p->c[i]; i++)
            ;
        if (i == FP_MAX || !(c = calloc(1, sizeof(*c)))) {
            close_fd(fd, true);
            continue;
        }
        p->st.accepted++;
        c->fd[0] = fd;
        c->fd[1] = -1;
        c->dead = p->mode == FP_BLACKHOLE;
        if (!c->dead && (c->fd[1] = upstream_connect(p)) < 0) {
            p->st.refused++;
            close_fd(fd, true);
            free(c);
            continue;
        }
        c->connecting = !c->dead;
        p->c[i] = c;
        p->st.open++;
    }
}

/* The events wanted on side s of c in the current mode (0: none). */
static short wanted(const fp_proxy *p, const fp_conn *c, int s)
{
    short ev = 0;

    if (c->fd[s] < 0)
        return 0;
    if (c->dead)
        return POLLIN;
    if (c->connecting)
        return s == 1 ? POLLOUT : 0;
    if (p->mode == FP_STALL)
        return 0;
    if (!c->eof[s] && c->len[s] < FP_BUF)
        ev |= POLLIN;
    if (c->len[!s] > c->off[!s] && (p->mode != FP_THROTTLE || p->tokens[!s] >= 1))
        ev |= POLLOUT;
    return ev;
}

/* Reads and drops; false once the side ended. */
static bool drain(fp_proxy *p, int fd)
{
    unsigned char junk[4096];
    ssize_t n = recv(fd, junk, sizeof(junk), 0);

    if (n > 0)
        p->st.dropped += n;
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* Moves bytes of side s; false when the connection must be reset. */
static bool pump(fp_proxy *p, fp_conn *c, int s, short rev)
{
    int d = !s;

    if ((rev & (POLLIN | POLLHUP | POLLERR)) && !c->eof[s] && c->len[s] < FP_BUF) {
        ssize_t n = recv(c->fd[s], c->buf[s] + c->len[s], FP_BUF - c->len[s], 0);
        if (n > 0)
            c->len[s] += (size_t)n;
        else if (n == 0)
            c->eof[s] = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            return false;
    }
    if ((rev & POLLOUT) && c->len[d] > c->off[d]) {
        size_t want = c->len[d] - c->off[d];
        ssize_t n;
        if (p->mode == FP_THROTTLE && want > (size_t)p->tokens[d])
            want = (size_t)p->tokens[d];
        n = send(c->fd[s], c->buf[d] + c->off[d], want, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return false;
        if (n > 0) {
            c->off[d] += (size_t)n;
            p->st.forwarded += n;
            p->tokens[d] -= (double)n;
        }
        if (c->off[d] == c->len[d])
            c->off[d] = c->len[d] = 0;
    }
    return true;
}

static void service(fp_proxy *p, int i, const short rev[2])
{
    fp_conn *c = p->c[i];
    int err = 0;
    socklen_t el = sizeof(err);

    if (c->dead) {
        for (int s = 0; s < 2; s++) {
            if ((rev[s] & (POLLIN | POLLHUP | POLLERR)) && !drain(p, c->fd[s])) {
                conn_close(p, i, false);
                return;
            }
        }
        return;
    }
    if (c->connecting) {
        if (!(rev[1] & (POLLOUT | POLLERR | POLLHUP)))
            return;
        if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            p->st.refused++;
            conn_close(p, i, true);
            return;
        }
        c->connecting = false;
        return;
    }
    for (int s = 0; s < 2; s++) {
        if (!pump(p, c, s, rev[s])) {
            conn_close(p, i, true);
            return;
        }
    }
    for (int s = 0; s < 2; s++) {
        if (c->eof[s] && c->len[s] == 0) { /* one side ended and all it sent is through */
            conn_close(p, i, false);
            return;
        }
    }
}

/* Under the lock, before each poll: cuts, the black hole, the token buckets. */
static void apply_mode(fp_proxy *p)
{
    int64_t t = now_us();

    if (p->cut_asked > p->cut_done) {
        int n = 0;
        for (int i = 0; i < FP_MAX; i++) {
            if (p->c[i]) {
                conn_close(p, i, true);
                n++;
            }
        }
        p->st.cut += n;
        p->cut_last = n;
        p->cut_done = p->cut_asked;
        pthread_cond_broadcast(&p->cond);
    }
    for (int i = 0; p->mode == FP_BLACKHOLE && i < FP_MAX; i++) {
        if (p->c[i] && !p->c[i]->dead) {
            p->c[i]->dead = true;
            p->c[i]->connecting = false;
            p->st.dropped += (int64_t)(p->c[i]->len[0] + p->c[i]->len[1]);
            p->c[i]->len[0] = p->c[i]->len[1] = p->c[i]->off[0] = p->c[i]->off[1] = 0;
        }
    }
    for (int d = 0; d < 2; d++) {
        double cap = p->rate / 10.0 > 1 ? p->rate / 10.0 : 1; /* bursts of 100 ms at most */
        p->tokens[d] += (double)p->rate * (double)(t - p->tokens_us) / 1e6;
        if (p->tokens[d] > cap)
            p->tokens[d] = cap;
    }
    p->tokens_us = t;
}

static void *run(void *arg)
{
    fp_proxy *p = arg;
    struct pollfd fds[2 + 2 * FP_MAX];

    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        int timeout;
        apply_mode(p);
        fds[0] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        fds[1] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        for (int i = 0; i < FP_MAX; i++) {
            for (int s = 0; s < 2; s++) {
                short ev = p->c[i] ? wanted(p, p->c[i], s) : 0;
                fds[2 + 2 * i + s] = (struct pollfd){.fd = ev ? p->c[i]->fd[s] : -1, .events = ev};
            }
        }
        timeout = p->mode == FP_THROTTLE ? 10 : 200;
        pthread_mutex_unlock(&p->lock);
        poll(fds, 2 + 2 * FP_MAX, timeout);
        pthread_mutex_lock(&p->lock);
        if (fds[0].revents & POLLIN) {
            char junk[64];
            while (read(p->wake[0], junk, sizeof(junk)) > 0)
                ;
        }
        if (fds[1].revents & POLLIN)
            accept_all(p);
        for (int i = 0; i < FP_MAX; i++) {
            short rev[2] = {fds[2 + 2 * i].revents, fds[2 + 2 * i + 1].revents};
            if (p->c[i] && (rev[0] || rev[1]))
                service(p, i, rev);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void wake(fp_proxy *p)
{
    ssize_t n = write(p->wake[1], "x", 1);

    (void)n; /* a full pipe already wakes it */
}

int fp_start(fp_proxy **out, int upstream)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    fp_proxy *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (!p)
        return -1;
    p->lfd = -1;
    p->wake[0] = p->wake[1] = -1;
    p->upstream = upstream;
    p->tokens_us = now_us();
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) < 0 ||
        (p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(p->lfd, 64) < 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &al) < 0 ||
        pthread_create(&p->thread, NULL, run, p) != 0) {
        p->stop = true;
        fp_stop(p);
        return -1;
    }
    p->port = ntohs(a.sin_port);
    *out = p;
    return 0;
}

int fp_port(const fp_proxy *p)
{
    return p->port;
}

void fp_set(fp_proxy *p, fp_mode mode, int rate)
{
    pthread_mutex_lock(&p->lock);
    p->mode = mode;
    p->rate = rate;
    p->tokens[0] = p->tokens[1] = 0;
    pthread_mutex_unlock(&p->lock);
    wake(p);
}

int fp_cut(fp_proxy *p)
{
    int n, asked;

    pthread_mutex_lock(&p->lock);
    asked = ++p->cut_asked;
    wake(p);
    while (p->cut_done < asked)
        pthread_cond_wait(&p->cond, &p->lock);
    n = p->cut_last;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void fp_stats_get(fp_stats *out, fp_proxy *p)
{
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    pthread_mutex_unlock(&p->lock);
}

void fp_stop(fp_proxy *p)
{
    bool started;

    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    started = !p->stop; /* fp_start's failure path sets stop before any thread */
    p->stop = true;
    pthread_mutex_unlock(&p->lock);
    if (started) {
        wake(p);
        pthread_join(p->thread, NULL);
    }
    for (int i = 0; i < FP_MAX; i++) {
        if (p->c[i])
            conn_close(p, i, false);
    }
    close_fd(p->lfd, false);
    close_fd(p->wake[0], false);
    close_fd(p->wake[1], false);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
