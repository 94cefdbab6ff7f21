/*
 * rest/dbnames.c - database names and their files in a dir server's
 * directory (contracts in rest/databases.h).
 *
 * A name is checked before it becomes part of a path, and the rule leaves
 * no way out of DIR: no '/', no '.', no byte outside ASCII letters, digits,
 * '_' and '-'. A new file is made under a temporary dot-name in DIR (never
 * listed) and linked to its name only when complete: link() fails when the
 * name exists, so nothing is ever replaced, and a reader never sees half a
 * database. What SQLite must say about a file is asked of orm/dbfile.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "orm/dbfile.h"
#include "rest/databases.h"
#include "rest/internal.h"

static const char k_rule[] = "database names are 1 to 64 letters, digits, '_' or '-' (ASCII), "
                             "starting with a letter or a digit";

static bool name_byte(unsigned char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (!first && (c == '_' || c == '-'));
}

bool verso__dbname_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > VERSO__DBNAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_byte((unsigned char)name[i], i == 0))
            return false;
    return true;
}

int verso__dbname_check(const char *name, size_t len, char *why, size_t whylen)
{
    char shown[52], quoted[80];
    size_t n = name ? (len < sizeof(shown) - 1 ? len : sizeof(shown) - 1) : 0;

    if (verso__dbname_valid(name, len))
        return 0;
    if (!why || !whylen)
        return VERSO_EINVAL;
    for (size_t i = 0; i < n; i++) /* a NUL byte is shown, not taken for the end */
        shown[i] = name[i] ? name[i] : '?';
    shown[n] = 0;
    if (len > sizeof(shown) - 1 && n > 3)
        memcpy(shown + n - 3, "...", 3);
    verso__rest_quote(quoted, sizeof(quoted), shown, sizeof(shown));
    if (len == 0)
        snprintf(why, whylen, "the database name is empty: %s", k_rule);
    else if (len > VERSO__DBNAME_MAX)
        snprintf(why, whylen, "\"%s\" (%zu bytes) is not a database name: %s", quoted, len, k_rule);
    else
        snprintf(why, whylen, "\"%s\" is not a database name: %s", quoted, k_rule);
    return VERSO_EINVAL;
}

int verso__dbfile_path(char *out, size_t n, const char *dir, const char *name)
{
    int w;

    if (!name || !dir || !verso__dbname_valid(name, strlen(name)))
        return VERSO_EINVAL;
    w = snprintf(out, n, "%s/%s.db", dir, name);
    return w < 0 || (size_t)w >= n ? VERSO_ETOOBIG : 0;
}

/* ---- listing ---- */

typedef char name_slot[VERSO__DBNAME_MAX + 1];

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const name_slot *)a, *(const name_slot *)b);
}

/* Whether entry e of dir names a database: "<valid name>.db", a regular file. */
static bool is_database(int dfd, const char *e, size_t *base)
{
    size_t len = strlen(e);
    struct stat st;

    if (len < 4 || strcmp(e + len - 3, ".db") || !verso__dbname_valid(e, len - 3))
        return false;
    *base = len - 3;
    return fstatat(dfd, e, &st, 0) == 0 && S_ISREG(st.st_mode);
}

static int collect(DIR *d, name_slot **out, size_t *count)
{
    name_slot *names = NULL, *grown;
    size_t n = 0, cap = 0, base = 0;
    struct dirent *e;

    while ((e = readdir(d))) {
        if (!is_database(dirfd(d), e->d_name, &base))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            if (!(grown = verso__realloc(names, cap * sizeof(*names)))) {
                verso__free(names);
                return VERSO_ENOMEM;
            }
            names = grown;
        }
        memcpy(names[n], e->d_name, base);
        names[n++][base] = 0;
    }
    *out = names;
    *count = n;
    return 0;
}

int verso__dbfile_scan(const char *dir, int (*fn)(const char *name, void *arg), void *arg)
{
    DIR *d = opendir(dir);
    name_slot *names = NULL;
    size_t n = 0;
    int rc;

    if (!d)
        return VERSO_EIO;
    rc = collect(d, &names, &n);
    closedir(d);
    if (rc < 0)
        return rc;
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fn(names[i], arg);
    verso__free(names);
    return rc;
}

/* ---- files ---- */

static void why_set(char *why, size_t whylen, const char *fmt, const char *a, const char *b)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, a, b ? b : "");
}

/* Removes path's -wal, -shm and -journal (those that exist). */
static void remove_sides(const char *path)
{
    static const char *const k_sides[] = {"-wal", "-shm", "-journal"};
    char side[PATH_MAX];

    for (size_t i = 0; i < sizeof(k_sides) / sizeof(k_sides[0]); i++)
        if (snprintf(side, sizeof(side), "%s%s", path, k_sides[i]) < (int)sizeof(side))
            unlink(side);
}

/* The checks every creation starts with: a valid name, its path, not taken. */
static int target(char *dest, size_t n, const char *dir, const char *name, char *why, size_t whylen)
{
    int rc;

    if (!name || (rc = verso__dbname_check(name, strlen(name), why, whylen)) < 0)
        return VERSO_EINVAL;
    if ((rc = verso__dbfile_path(dest, n, dir, name)) < 0) {
        why_set(why, whylen, "%s%s", "the directory's path is too long", NULL);
        return rc;
    }
    if (access(dest, F_OK) == 0) {
        why_set(why, whylen,
                "a database named \"%s\" exists; delete it first or choose another name", name,
                NULL);
        return VERSO_ECONFLICT;
    }
    return 0;
}

/* A new empty file DIR/.verso-new-<name>-XXXXXX (a dot-name: never listed). */
static int temp_file(char *tmp, size_t n, const char *dir, const char *name, char *why,
                     size_t whylen)
{
    int fd, w = snprintf(tmp, n, "%s/.verso-new-%s-XXXXXX", dir, name);

    if (w < 0 || (size_t)w >= n) {
        why_set(why, whylen, "%s%s", "the directory's path is too long", NULL);
        return VERSO_ETOOBIG;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        why_set(why, whylen, "cannot create a file in the directory: %s", strerror(errno), NULL);
        tmp[0] = 0;
        return VERSO_EIO;
    }
    close(fd);
    return 0;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Gives the complete file tmp its name dest, never replacing one. Side files
 * left by a database once deleted would be taken for the new one's. */
static int install(const char *tmp, const char *dest, const char *dir, const char *name, char *why,
                   size_t whylen)
{
    int err;

    remove_sides(tmp);
    remove_sides(dest);
    if (link(tmp, dest) < 0) {
        err = errno;
        if (err == EEXIST)
            why_set(why, whylen,
                    "a database named \"%s\" exists; delete it first or choose "
                    "another name",
                    name, NULL);
        else
            why_set(why, whylen, "cannot name the new database \"%s\": %s", name, strerror(err));
        return err == EEXIST ? VERSO_ECONFLICT : VERSO_EIO;
    }
    unlink(tmp);
    sync_dir(dir);
    return 0;
}

static void discard(const char *tmp)
{
    if (!tmp[0])
        return;
    unlink(tmp);
    remove_sides(tmp);
}

static int new_empty(const char *tmp, char *why, size_t whylen)
{
    verso_db *db = NULL;
    char text[512];
    int rc = verso_db_open(&db, tmp, NULL, text, sizeof(text));

    /* text names the temporary file: not for the client */
    if (rc < 0)
        why_set(why, whylen, "%s%s", "cannot create the database file in the directory", NULL);
    verso_db_close(db);
    return rc == VERSO_ENOMEM ? rc : rc < 0 ? VERSO_EIO : 0;
}

int verso__dbfile_create(const char *dir, const char *name, char *why, size_t whylen)
{
    char dest[PATH_MAX], tmp[PATH_MAX] = "";
    int rc;

    if ((rc = target(dest, sizeof(dest), dir, name, why, whylen)) < 0 ||
        (rc = temp_file(tmp, sizeof(tmp), dir, name, why, whylen)) < 0)
        return rc;
    if ((rc = new_empty(tmp, why, whylen)) == 0)
        rc = install(tmp, dest, dir, name, why, whylen);
    discard(tmp);
    return rc;
}

/* Whether the file src and the directory dir are on one file system (a
 * link from one to the other can be made). */
static bool same_fs(const char *src, const char *dir)
{
    struct stat a, b;

    return stat(src, &a) == 0 && stat(dir, &b) == 0 && a.st_dev == b.st_dev;
}

static int copy_bytes(int in, int out)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        for (ssize_t done = 0, k; n > 0 && done < n; done += k)
            if ((k = write(out, buf + done, (size_t)(n - done))) <= 0)
                return VERSO_EIO;
        if (n < 0)
            return VERSO_EIO;
    }
    return fsync(out) == 0 ? 0 : VERSO_EIO;
}

/* src lives elsewhere (a spool on another file system): copied to a
 * temporary file of DIR, then named; src goes as a rename would take it. */
static int install_copy(const char *src, const char *dest, const char *dir, const char *name,
                        char *why, size_t whylen)
{
    char tmp[PATH_MAX] = "";
    int in = -1, out = -1, rc = temp_file(tmp, sizeof(tmp), dir, name, why, whylen);

    if (rc == 0 && ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0 ||
                    (out = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0))
        rc = VERSO_EIO;
    if (rc == 0)
        rc = copy_bytes(in, out);
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) < 0 && rc == 0)
        rc = VERSO_EIO;
    if (rc == VERSO_EIO && why && whylen && tmp[0])
        snprintf(why, whylen, "cannot copy the upload into the server's directory");
    if (rc == 0 && (rc = install(tmp, dest, dir, name, why, whylen)) == 0)
        unlink(src);
    discard(tmp);
    return rc;
}

int verso__dbfile_adopt(const char *dir, const char *name, const char *src, char *why,
                        size_t whylen)
{
    char dest[PATH_MAX], reason[400] = "";
    int rc;

    if ((rc = target(dest, sizeof(dest), dir, name, why, whylen)) < 0)
        return rc;
    if ((rc = verso__dbfile_sqlite_check(src, reason, sizeof(reason))) < 0) {
        why_set(why, whylen, "the upload is not a SQLite database: %s", reason, NULL);
        return rc;
    }
    rc = verso__dbfile_make_own(src, reason, sizeof(reason));
    remove_sides(src);
    if (rc < 0) {
        why_set(why, whylen, "the upload is a SQLite database but %s", reason, NULL);
        return rc;
    }
    return same_fs(src, dir) ? install(src, dest, dir, name, why, whylen)
                             : install_copy(src, dest, dir, name, why, whylen);
}

int verso__dbfile_from(const char *dir, const char *name, const char *from, char *why,
                       size_t whylen)
{
    char dest[PATH_MAX], origin[PATH_MAX], tmp[PATH_MAX] = "";
    int rc;

    if (!from || verso__dbname_check(from, strlen(from), why, whylen) < 0)
        return VERSO_EINVAL;
    if ((rc = target(dest, sizeof(dest), dir, name, why, whylen)) < 0 ||
        (rc = verso__dbfile_path(origin, sizeof(origin), dir, from)) < 0)
        return rc;
    if (access(origin, F_OK) < 0) {
        why_set(why, whylen, "no database named \"%s\" to copy the schema of", from, NULL);
        return VERSO_ENOTFOUND;
    }
    if ((rc = temp_file(tmp, sizeof(tmp), dir, name, why, whylen)) < 0)
        return rc;
    if ((rc = verso__dbfile_schema_copy(origin, tmp, why, whylen)) == 0)
        rc = install(tmp, dest, dir, name, why, whylen);
    discard(tmp);
    return rc;
}

int verso__dbfile_remove(const char *dir, const char *name, char *why, size_t whylen)
{
    char path[PATH_MAX];
    int rc;

    if (!name || verso__dbname_check(name, strlen(name), why, whylen) < 0)
        return VERSO_EINVAL;
    if ((rc = verso__dbfile_path(path, sizeof(path), dir, name)) < 0)
        return rc;
    if (unlink(path) < 0) {
        rc = errno;
        if (rc == ENOENT)
            why_set(why, whylen, "no database named \"%s\"", name, NULL);
        else
            why_set(why, whylen, "cannot remove the database \"%s\": %s", name, strerror(rc));
        return rc == ENOENT ? VERSO_ENOTFOUND : VERSO_EIO;
    }
    remove_sides(path);
    sync_dir(dir);
    return 0;
}

/* ---- leftovers ---- */

static bool is_leftover(int dfd, const char *e, time_t before)
{
    struct stat st;

    if (strncmp(e, ".verso-new-", 11) && strncmp(e, ".verso-upload-", 14))
        return false;
    return fstatat(dfd, e, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_mtime <= before;
}

int verso__dbfile_sweep(const char *dir, int min_age_s)
{
    DIR *d = opendir(dir);
    time_t before = time(NULL) - min_age_s;
    struct dirent *e;
    int n = 0;

    if (!d)
        return VERSO_EIO;
    while ((e = readdir(d)))
        if (is_leftover(dirfd(d), e->d_name, before) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
    closedir(d);
    return n;
}
