/*
 * Bootstrap from a file snapshot: an empty slave receives a consistent
 * copy of the master's database file and installs it in one write
 * transaction of its own file (orm/snapshot.c makes and installs it; this
 * file runs the master's copy on a thread of its own and shares it between
 * the slaves that ask while it is fresh).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orm/service.h"
#include "sync/internal.h"

static void remove_file(const char *file)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[700];

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", file, suffix[i]);
        unlink(p);
    }
}

/* ---- names, and what a killed process left ---- */

void verso__sync_snapshot_name(char *out, size_t n, const char *db_path)
{
    static atomic_uint counter;

    snprintf(out, n, "%s.snapshot-%ld-%u", db_path, (long)getpid(), atomic_fetch_add(&counter, 1));
}

/* Whether name (after "<base>.snapshot") is a file whose maker is gone. */
static bool left_behind(const char *rest)
{
    char *end = NULL;
    long pid;

    if (!*rest || strcmp(rest, "-journal") == 0) /* the one name earlier versions used */
        return true;
    if (rest[0] != '-' || (pid = strtol(rest + 1, &end, 10)) <= 0 || *end != '-')
        return false;
    /* a pid reused since is taken for alive: the file waits for the next sweep */
    return pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

void verso__sync_snapshot_sweep(const char *db_path)
{
    const char *slash = strrchr(db_path, '/');
    char dir[700], prefix[300], p[1000];
    size_t n;
    struct dirent *e;
    DIR *d;

    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - db_path) + 1 : 2,
             slash ? db_path : "./");
    n = (size_t)snprintf(prefix, sizeof(prefix), "%s.snapshot", slash ? slash + 1 : db_path);
    if (n >= sizeof(prefix) || !(d = opendir(dir)))
        return;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, n) == 0 && left_behind(e->d_name + n)) {
            snprintf(p, sizeof(p), "%s%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

bool verso__sync_snapshot_fits(verso_db *db)
{
    return verso__snapshot_fits(db);
}

int verso__sync_snapshot_install(verso_db *db, const char *file, const char *master,
                                 int64_t version, char *why, size_t whylen)
{
    int rc = verso__snapshot_install(db, file, master, version, why, whylen);

    remove_file(file);
    return rc;
}

/* ---- the master side: making a snapshot on a thread of its own ---- */

struct verso__sync_snap {
    pthread_mutex_t lock;
    int refs;
    int state; /* 0 copying, 1 ready, < 0 failed */
    char *src;
    char path[700];
    int fd;
    int64_t size;
    int64_t head;
};

/* Copies src into path (a consistent state at its head, tracked tables
 * only) and returns an open descriptor; the file itself is removed. */
static int copy_file(int *fd, int64_t *size, int64_t *head, const char *src, const char *path)
{
    struct stat sb;
    int rc = verso__snapshot_make(head, src, path, NULL, 0);

    *fd = -1;
    if (rc == 0 && ((*fd = open(path, O_RDONLY)) < 0 || fstat(*fd, &sb) < 0))
        rc = VERSO_EIO;
    if (rc == 0)
        *size = sb.st_size;
    if (rc < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    remove_file(path);
    return rc;
}

static void *snap_run(void *arg)
{
    verso__sync_snap *j = arg;
    int64_t size = 0, head = 0;
    int fd = -1, rc = copy_file(&fd, &size, &head, j->src, j->path);

    pthread_mutex_lock(&j->lock);
    j->fd = fd;
    j->size = size;
    j->head = head;
    j->state = rc < 0 ? rc : 1;
    pthread_mutex_unlock(&j->lock);
    verso__sync_snap_unref(j);
    return NULL;
}

int verso__sync_snap_start(verso__sync_snap **out, const char *db_path)
{
    verso__sync_snap *j = verso__calloc(1, sizeof(*j));
    pthread_t th;

    *out = NULL;
    if (!j || !(j->src = verso__strdup(db_path))) {
        verso__free(j);
        return VERSO_ENOMEM;
    }
    pthread_mutex_init(&j->lock, NULL);
    j->fd = -1;
    j->refs = 2; /* the thread and the caller */
    verso__sync_snapshot_name(j->path, sizeof(j->path), db_path);
    if (pthread_create(&th, NULL, snap_run, j) != 0) {
        j->refs = 1;
        verso__sync_snap_unref(j);
        return VERSO_ENOMEM;
    }
    pthread_detach(th);
    *out = j;
    return 0;
}

int verso__sync_snap_state(verso__sync_snap *j, int *fd, int64_t *size, int64_t *head)
{
    int st;

    pthread_mutex_lock(&j->lock);
    st = j->state;
    *fd = j->fd;
    *size = j->size;
    *head = j->head;
    pthread_mutex_unlock(&j->lock);
    return st;
}

void verso__sync_snap_ref(verso__sync_snap *j)
{
    pthread_mutex_lock(&j->lock);
    j->refs++;
    pthread_mutex_unlock(&j->lock);
}

void verso__sync_snap_unref(verso__sync_snap *j)
{
    int refs;

    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    refs = --j->refs;
    pthread_mutex_unlock(&j->lock);
    if (refs > 0)
        return;
    if (j->fd >= 0)
        close(j->fd);
    pthread_mutex_destroy(&j->lock);
    verso__free(j->src);
    verso__free(j);
}
