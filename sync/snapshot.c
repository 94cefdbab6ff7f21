/*
 * Bootstrap from a file snapshot: an empty slave receives a consistent
 * copy of the master's database file and installs it in one write
 * transaction of its own file (orm/snapshot.c makes and installs it; this
 * file runs the master's copy on a thread of its own and shares it between
 * the slaves that ask while it is fresh).
 */
#include <fcntl.h>
#include <pthread.h>
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
    static atomic_uint counter;
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
    snprintf(j->path, sizeof(j->path), "%s.snapshot-%ld-%u", db_path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
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
