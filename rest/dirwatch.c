/*
 * rest/dirwatch.c - one inotify watch on DIR for a dir server: which
 * databases were written, created or removed, by any process.
 *
 * One watch for the whole directory, not one per database: a thread reads
 * the events, keeps the names of the databases they concern (DIR/<name>.db
 * and its -wal and -journal; other files are dropped) and wakes the
 * service thread, which takes them (verso__dirwatch_take). What a name
 * means (written, created, gone) is decided there, by looking at the file:
 * events only say where to look. When the kernel's queue overflowed, or
 * more names are pending than kept, the taker is told to look at
 * everything.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/inotify.h>
#endif

#include "rest/dirint.h"

#define MAX_PENDING 1024

struct verso__dirwatch {
    int ifd;
    int stopfd;
    pthread_t thread;
    bool started;
    void (*fn)(void *arg);
    void *arg;
    pthread_mutex_t lock; /* guards what follows */
    char (*pending)[VERSO__DBNAME_MAX + 1];
    size_t npending;
    bool overflow;
    uint64_t events;
};

/* The database name of a file of DIR ("a.db", "a.db-wal", "a.db-journal"); false for others. */
static bool name_of(char *out, const char *file)
{
    static const char *const suffix[] = {".db", ".db-wal", ".db-journal"};
    size_t n = strlen(file);

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        size_t k = strlen(suffix[i]);
        if (n > k && !strcmp(file + n - k, suffix[i]) && verso__dbname_valid(file, n - k)) {
            memcpy(out, file, n - k);
            out[n - k] = 0;
            return true;
        }
    }
    return false;
}

/* Under w->lock. */
static void add_pending(verso__dirwatch *w, const char *name)
{
    for (size_t i = 0; i < w->npending; i++)
        if (!strcmp(w->pending[i], name))
            return;
    if (w->npending == MAX_PENDING) {
        w->overflow = true;
        return;
    }
    snprintf(w->pending[w->npending++], VERSO__DBNAME_MAX + 1, "%s", name);
}

#ifdef __linux__

/* Reads what is queued; true when something concerned a database. */
static bool drain(verso__dirwatch *w)
{
    _Alignas(struct inotify_event) char buf[4096];
    char name[VERSO__DBNAME_MAX + 1];
    bool found = false;
    ssize_t n;

    while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
        pthread_mutex_lock(&w->lock);
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            p += sizeof(*e) + e->len;
            if (e->mask & (IN_Q_OVERFLOW | IN_IGNORED)) {
                w->overflow = found = true;
            } else if (e->len && name_of(name, e->name)) {
                add_pending(w, name);
                w->events++;
                found = true;
            }
        }
        pthread_mutex_unlock(&w->lock);
    }
    return found;
}

static void *watch_main(void *arg)
{
    verso__dirwatch *w = arg;

    for (;;) {
        struct pollfd p[2] = {{.fd = w->stopfd, .events = POLLIN},
                              {.fd = w->ifd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (p[1].revents && drain(w))
            w->fn(w->arg);
    }
    return NULL;
}

static int arm(verso__dirwatch *w, const char *dir)
{
    /* not IN_CLOSE_WRITE: a reader closes the -wal it opened read-write */
    const uint32_t mask =
        IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR;

    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->ifd < 0 || w->stopfd < 0 || inotify_add_watch(w->ifd, dir, mask) < 0)
        return errno == ENOMEM ? VERSO_ENOMEM : VERSO_EIO;
    return 0;
}

int verso__dirwatch_start(verso__dirwatch **out, const char *dir, void (*fn)(void *arg), void *arg)
{
    verso__dirwatch *w = verso__calloc(1, sizeof(*w));
    int rc;

    *out = NULL;
    if (!w)
        return VERSO_ENOMEM;
    w->ifd = w->stopfd = -1;
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_init(&w->lock, NULL);
    if (!(w->pending = verso__calloc(MAX_PENDING, sizeof(*w->pending))))
        rc = VERSO_ENOMEM;
    else if ((rc = arm(w, dir)) == 0 && pthread_create(&w->thread, NULL, watch_main, w) != 0)
        rc = VERSO_ENOMEM;
    if (rc < 0) {
        verso__dirwatch_stop(w);
        return rc;
    }
    w->started = true;
    *out = w;
    return 0;
}

void verso__dirwatch_stop(verso__dirwatch *w)
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
    if (w->stopfd >= 0)
        close(w->stopfd);
    pthread_mutex_destroy(&w->lock);
    verso__free(w->pending);
    verso__free(w);
}

#else /* no file events: the dir server sees only its own writes */

int verso__dirwatch_start(verso__dirwatch **out, const char *dir, void (*fn)(void *arg), void *arg)
{
    (void)dir;
    (void)fn;
    (void)arg;
    (void)add_pending;
    (void)name_of;
    *out = NULL;
    return VERSO_EIO;
}

void verso__dirwatch_stop(verso__dirwatch *w)
{
    (void)w;
}

#endif

bool verso__dirwatch_take(verso__dirwatch *w, void (*fn)(const char *name, void *arg), void *arg)
{
    char(*names)[VERSO__DBNAME_MAX + 1] = NULL;
    size_t n = 0;
    bool overflow = false;

    if (!w)
        return false;
    pthread_mutex_lock(&w->lock);
    if (w->npending && (names = verso__malloc(w->npending * sizeof(*names)))) {
        memcpy(names, w->pending, w->npending * sizeof(*names));
        n = w->npending;
    }
    overflow = w->overflow || (w->npending && !names);
    w->npending = 0;
    w->overflow = false;
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++) /* outside the lock: fn may take its time */
        fn(names[i], arg);
    verso__free(names);
    return overflow;
}

uint64_t verso__dirwatch_events(verso__dirwatch *w)
{
    uint64_t n;

    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    n = w->events;
    pthread_mutex_unlock(&w->lock);
    return n;
}
