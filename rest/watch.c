/*
 * rest/watch.c - commits to the database file, seen as file events instead
 * of polled for.
 *
 * A commit, by any process, writes the -wal file (WAL mode) or the database
 * and its -journal (rollback mode); a checkpoint writes the database. The
 * directory is watched rather than the files: the -wal file is deleted when
 * the last connection closes and created again by the next one, and a
 * restored database may be renamed over the old one; a watch on the
 * directory sees all of that with no re-arming. Events on other files of
 * the directory are read and dropped here.
 *
 * A write event comes before the commit is visible: readers see it once
 * the writer has written its last frame, synced the -wal file when
 * synchronous=FULL (the sqlite3 shell's default; tens of milliseconds on
 * a busy disk) and updated the wal-index in shared memory, which raises no
 * event. So one event is not one check: the callback runs at once, again
 * 0.25 ms and 0.5 ms later, then at gaps of an eighth of the time since
 * the last event (1 ms at least) until TAIL_US has passed: a commit that
 * becomes visible t after its last write is seen at about 1.125 t. That
 * is about 45 wake-ups after an isolated commit, at most about 1000 a
 * second under any write load, and none while the files are left alone
 * (the thread sleeps in ppoll() without a timeout).
 *
 * A commit made through verso says so itself: once it is visible, it sets
 * the -wal file's times (orm/txn.c), an IN_ATTRIB event. Those come on a
 * second inotify watch of their own, polled even between re-checks, so
 * such a commit is seen at once; write events alone go on waiting for the
 * re-checks. The server's own service loop polls that second watch
 * (verso__watch_signal_fd): the commit then reaches the tick with no
 * thread in between; until it does, and where it cannot, this thread does.
 */
#define _GNU_SOURCE /* ppoll: re-checks sooner than a millisecond */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/inotify.h>
#endif

#include "rest/internal.h"

#define FIRST_GAP_US 250    /* first re-check after a wake caused by an event */
#define STEP_US      1000   /* shortest gap once the first ones passed */
#define RATIO        8      /* gap = time since the last event / RATIO, once above STEP_US */
#define TAIL_US      512000 /* no re-check this long after the last event: sleep */

atomic_bool verso__watch_disabled;

struct verso__watch {
    int ifd;    /* inotify: writes, creations, deletions, renames */
    int afd;    /* inotify: attribute changes only (a commit made through verso) */
    int stopfd; /* eventfd: stop the thread */
    int wd;
    char *dir;
    char *names[3]; /* "db", "db-wal", "db-journal" */
    void (*fn)(void *arg);
    void *arg;
    pthread_t thread;
    bool started;
    atomic_uint_fast64_t events, ignored, wakes, signals;
    atomic_bool lost;          /* the watch ended (directory removed or unmounted) */
    atomic_bool afd_elsewhere; /* the server's service loop polls afd (verso__watch_signal_fd) */
};

#ifdef __linux__

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool ours(const verso__watch *w, const char *name)
{
    for (size_t i = 0; i < sizeof(w->names) / sizeof(w->names[0]); i++)
        if (strcmp(w->names[i], name) == 0)
            return true;
    return false;
}

/* Reads what is queued on fd: 1 if one event concerns the database's files
 * (or events were lost), 0 if none does, -1 when the watch itself ended. */
static int drain(verso__watch *w, int fd)
{
    _Alignas(struct inotify_event) char buf[4096];
    int found = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            p += sizeof(*e) + e->len;
            if (e->mask & IN_IGNORED) {
                atomic_store(&w->lost, true);
                found = found ? found : -1;
            } else if ((e->mask & IN_Q_OVERFLOW) || (e->len && ours(w, e->name))) {
                atomic_fetch_add(fd == w->afd ? &w->signals : &w->events, 1);
                found = 1;
            } else {
                atomic_fetch_add(&w->ignored, 1);
            }
        }
    }
    return found;
}

static void wake(verso__watch *w)
{
    atomic_fetch_add(&w->wakes, 1);
    w->fn(w->arg);
}

/* The gap to the re-check after the one that just ran, since_event after
 * the last event; 0: sleep until the next event. */
static int64_t next_gap(int64_t gap, int64_t since_event)
{
    int64_t g = gap * 2 < STEP_US ? gap * 2 : STEP_US;

    if (since_event >= TAIL_US)
        return 0;
    return since_event / RATIO > g ? since_event / RATIO : g;
}

static void *watch_main(void *arg)
{
    verso__watch *w = arg;
    int64_t next = 0, last_event = 0, gap = 0; /* gap == 0: asleep */

    for (;;) {
        struct pollfd p[3] = {
            {.fd = w->stopfd, .events = POLLIN},
            {.fd = atomic_load(&w->afd_elsewhere) ? -1 : w->afd, .events = POLLIN},
            {.fd = w->ifd, .events = POLLIN}};
        int64_t now = mono_us(), left = next > now ? next - now : 0;
        struct timespec ts = {(time_t)(left / 1000000), (long)(left % 1000000) * 1000};
        /* a re-check is due within a millisecond: events can wait for it
         * (under a stream of commits the thread wakes once a millisecond,
         * not once a write) */
        bool fast = gap && gap <= STEP_US, lost = atomic_load(&w->lost);
        int found = 0, committed = 0;

        if (ppoll(p, lost ? 1 : fast ? 2 : 3, gap ? &ts : NULL, NULL) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (!lost && p[1].revents)
            committed = drain(w, w->afd);
        if (!lost && (fast || p[2].revents))
            found = drain(w, w->ifd);
        if (committed < 0)
            found = -1;
        now = mono_us();
        if (found > 0)
            last_event = now;
        if (found && (gap == 0 || gap > STEP_US)) { /* asleep or slowing down: at once */
            wake(w);
            gap = found > 0 ? FIRST_GAP_US : 0;
            next = now + gap;
        } else if (gap && now >= next) {
            wake(w);
            gap = next_gap(gap, now - last_event);
            next = now + gap;
        } else if (committed > 0) { /* a commit visible now: one look, no re-checks after it */
            wake(w);
        }
    }
    return NULL;
}

static int split_path(verso__watch *w, const char *path)
{
    char real[PATH_MAX], *slash;
    static const char *const suffix[] = {"", "-wal", "-journal"};
    int rc = 0;

    if (!realpath(path, real))
        return errno == ENOMEM ? VERSO_ENOMEM : VERSO_EIO;
    slash = strrchr(real, '/');
    *slash = '\0';
    if (!(w->dir = verso__strdup(real[0] ? real : "/")))
        rc = VERSO_ENOMEM;
    for (size_t i = 0; rc == 0 && i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        size_t n = strlen(slash + 1) + strlen(suffix[i]) + 1;
        if (!(w->names[i] = verso__malloc(n)))
            rc = VERSO_ENOMEM;
        else
            snprintf(w->names[i], n, "%s%s", slash + 1, suffix[i]);
    }
    return rc;
}

static int arm(verso__watch *w)
{
    const uint32_t mask =
        IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR;

    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->afd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->ifd < 0 || w->afd < 0 || w->stopfd < 0)
        return errno == ENOMEM ? VERSO_ENOMEM : VERSO_EIO;
    if ((w->wd = inotify_add_watch(w->ifd, w->dir, mask)) < 0 ||
        inotify_add_watch(w->afd, w->dir, IN_ATTRIB | IN_ONLYDIR) < 0)
        return errno == ENOMEM ? VERSO_ENOMEM : VERSO_EIO;
    return 0;
}

int verso__watch_start(verso__watch **out, const char *path, void (*fn)(void *arg), void *arg)
{
    verso__watch *w = verso__calloc(1, sizeof(*w));
    int rc = 0;

    *out = NULL;
    if (atomic_load(&verso__watch_disabled)) {
        verso__free(w);
        return VERSO_EIO;
    }
    if (!w)
        return VERSO_ENOMEM;
    w->ifd = w->afd = w->stopfd = -1;
    w->fn = fn;
    w->arg = arg;
    if ((rc = split_path(w, path)) < 0 || (rc = arm(w)) < 0)
        goto done;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        rc = VERSO_ENOMEM;
        goto done;
    }
    w->started = true;
    *out = w;
done:
    if (rc < 0)
        verso__watch_stop(w);
    return rc;
}

int verso__watch_signal_fd(verso__watch *w)
{
    return w ? w->afd : -1;
}

void verso__watch_signals_elsewhere(verso__watch *w)
{
    atomic_store(&w->afd_elsewhere, true);
}

int verso__watch_signalled(verso__watch *w)
{
    int found = drain(w, w->afd);

    if (found)
        atomic_fetch_add(&w->wakes, 1);
    return found;
}

void verso__watch_stop(verso__watch *w)
{
    uint64_t one = 1;

    if (!w)
        return;
    if (w->started) {
        while (write(w->stopfd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
        pthread_join(w->thread, NULL);
    }
    if (w->ifd >= 0)
        close(w->ifd);
    if (w->afd >= 0)
        close(w->afd);
    if (w->stopfd >= 0)
        close(w->stopfd);
    for (size_t i = 0; i < sizeof(w->names) / sizeof(w->names[0]); i++)
        verso__free(w->names[i]);
    verso__free(w->dir);
    verso__free(w);
}

#else /* no file events here: the caller's poll does it all */

int verso__watch_start(verso__watch **out, const char *path, void (*fn)(void *arg), void *arg)
{
    (void)path;
    (void)fn;
    (void)arg;
    *out = NULL;
    return VERSO_EIO;
}

void verso__watch_stop(verso__watch *w)
{
    (void)w;
}

int verso__watch_signal_fd(verso__watch *w)
{
    (void)w;
    return -1;
}

void verso__watch_signals_elsewhere(verso__watch *w)
{
    (void)w;
}

int verso__watch_signalled(verso__watch *w)
{
    (void)w;
    return 0;
}

#endif

void verso__watch_stats_get(verso__watch_stats *out, const verso__watch *w)
{
    memset(out, 0, sizeof(*out));
    if (!w)
        return;
    out->events = atomic_load(&w->events);
    out->ignored = atomic_load(&w->ignored);
    out->wakes = atomic_load(&w->wakes);
    out->signals = atomic_load(&w->signals);
    out->active = !atomic_load(&w->lost);
#ifdef __linux__
    out->in_loop = atomic_load(&w->afd_elsewhere);
#endif
}
