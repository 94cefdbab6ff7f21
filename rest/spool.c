/* rest/spool.c - request bodies that go to a file instead of memory.
 *
 * Whether a body is spooled is decided when the request's headers are in,
 * on the path as the client sent it (so before a dir server strips its
 * /db/<name> prefix). Spool files live in the database's directory (the
 * same file system as the database: an adopted file is renamed, not
 * copied) as .verso-spool-<pid>-XXXXXX, and are removed once the request is
 * answered; the pid lets a server starting later remove those of a process
 * that died, and only those: another server may share the directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rest/dir.h"
#include "rest/internal.h"

#define SPOOL_PREFIX "/.verso-spool-"

_Atomic long long verso__spool_room = -1;

/* Where each '/'-separated segment of path starts; their count (max + 1: more). */
static int segments(const char **seg, int max, const char *path)
{
    int n = 0;

    if (*path != '/')
        return 0;
    for (const char *p = path; p; p = strchr(p + 1, '/')) {
        if (n == max)
            return max + 1;
        seg[n++] = p + 1;
    }
    return n;
}

static bool segment_is(const char *seg, const char *word)
{
    size_t n = strlen(word);

    return !strncmp(seg, word, n) && (seg[n] == '/' || !seg[n]);
}

static bool segment_id(const char *seg)
{
    size_t n = strspn(seg, "0123456789");

    return n && (seg[n] == '/' || !seg[n]);
}

bool verso__spool_wanted(unsigned method, const char *path, const char *ct)
{
    const char *buf[5], **seg = buf;
    int n;

    if (method != VERSO__PUT || !path)
        return false;
    n = segments(buf, 5, path);
    if (n == 2 && segment_is(seg[0], "_databases"))
        return ct && !strncasecmp(ct, "application/vnd.sqlite3", 23);
    if (ct && !strncasecmp(ct, "application/json", 16))
        return false;
    if (n == 5 && segment_is(seg[0], "db")) /* /db/<name>/<table>/<id>/<column> */
        seg += 2, n -= 2;
    return n == 3 && seg[0][0] != '_' && segment_id(seg[1]) && seg[2][0] && !strchr(seg[2], '/');
}

const char *verso__spool_dir(char *out, size_t n, const verso_rest *srv)
{
    const char *path = srv->db_path ? srv->db_path : ".";
    const char *slash = strrchr(path, '/');

    if (srv->dir) { /* a dir server: DIR itself, where uploads are renamed into place */
        snprintf(out, n, "%s", verso__dir_path(srv->dir));
        return out;
    }

    if (!slash)
        snprintf(out, n, ".");
    else if (slash == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(slash - path), path);
    return out;
}

static int errno_rc(int e)
{
    return e == ENOSPC || e == EDQUOT ? VERSO_EFULL : e == ENOMEM ? VERSO_ENOMEM : VERSO_EIO;
}

int verso__spool_open(verso__spool *s, const char *dir)
{
    size_t n = strlen(dir) + sizeof(SPOOL_PREFIX) + 32;

    s->fd = -1;
    s->len = 0;
    if (!(s->path = verso__malloc(n)))
        return VERSO_ENOMEM;
    snprintf(s->path, n, "%s" SPOOL_PREFIX "%ld-XXXXXX", dir, (long)getpid());
    if ((s->fd = mkstemp(s->path)) < 0 || fcntl(s->fd, F_SETFD, FD_CLOEXEC) < 0) {
        int rc = errno_rc(errno);
        if (s->fd >= 0) {
            close(s->fd);
            unlink(s->path);
        }
        s->fd = -1;
        verso__free(s->path);
        s->path = NULL;
        return rc;
    }
    return 0;
}

int verso__spool_write(verso__spool *s, const void *p, size_t n)
{
    long long room = verso__spool_room;

    if (room >= 0 && s->len + (int64_t)n > room)
        return VERSO_EFULL;
    for (size_t done = 0; done < n;) {
        ssize_t w = write(s->fd, (const char *)p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return errno_rc(w < 0 ? errno : ENOSPC);
        done += (size_t)w;
    }
    s->len += (int64_t)n;
    return 0;
}

void verso__spool_seal(verso__spool *s)
{
    if (!s->path) /* unopened: fd may be 0, the all-zero state */
        return;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

void verso__spool_close(verso__spool *s)
{
    if (!s->path)
        return;
    if (s->fd >= 0)
        close(s->fd);
    unlink(s->path);
    verso__free(s->path);
    s->path = NULL;
    s->fd = -1;
    s->len = 0;
}

/* The pid in ".verso-spool-<pid>-XXXXXX"; 0 if the name is not a spool file's. */
static long spool_pid(const char *name)
{
    const char *p = name + sizeof(SPOOL_PREFIX) - 2;
    char *end;
    long pid;

    if (strncmp(name, &SPOOL_PREFIX[1], sizeof(SPOOL_PREFIX) - 2))
        return 0;
    pid = strtol(p, &end, 10);
    return end != p && *end == '-' && pid > 0 ? pid : 0;
}

void verso__spool_sweep(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];

    while (d && (e = readdir(d))) {
        long pid = spool_pid(e->d_name);
        if (!pid || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path))
            unlink(path);
    }
    if (d)
        closedir(d);
}
