/* tests/support/faultvfs.c - a SQLite VFS that fails chosen I/O calls (see faultvfs.h). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "support/faultvfs.h"

typedef struct fault_file {
    sqlite3_file base;
    const char *name;   /* SQLite keeps it valid until xClose; NULL for temporary files */
    sqlite3_file *real; /* follows this struct in the same allocation */
} fault_file;

static struct {
    pthread_mutex_t lock;
    sqlite3_vfs vfs;
    sqlite3_vfs *real;
    char *prefix;
    unsigned mask;
    long nth;
    bool persistent;
    int code;
    long calls;
    long failures;
    bool full;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* 0, or the code the call of this kind on f fails with. */
static bool targeted(const char *name)
{
    return g.prefix ? name && strncmp(name, g.prefix, strlen(g.prefix)) == 0 : name != NULL;
}

static int inject(fault_file *f, unsigned kind)
{
    int rc = 0;

    pthread_mutex_lock(&g.lock);
    if (targeted(f->name) && kind == FAULTVFS_WRITE && g.full)
        rc = SQLITE_FULL;
    else if (targeted(f->name) && (g.mask & kind)) {
        g.calls++;
        if (g.calls == g.nth || (g.persistent && g.nth > 0 && g.calls > g.nth))
            rc = g.code;
    }
    if (rc)
        g.failures++;
    pthread_mutex_unlock(&g.lock);
    return rc;
}

static fault_file *ff(sqlite3_file *f)
{
    return (fault_file *)f;
}

static int f_close(sqlite3_file *f)
{
    return ff(f)->real->pMethods->xClose(ff(f)->real);
}

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    int rc = inject(ff(f), FAULTVFS_READ);

    return rc ? rc : ff(f)->real->pMethods->xRead(ff(f)->real, buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    int rc = inject(ff(f), FAULTVFS_WRITE);

    return rc ? rc : ff(f)->real->pMethods->xWrite(ff(f)->real, buf, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = inject(ff(f), FAULTVFS_TRUNCATE);

    return rc ? rc : ff(f)->real->pMethods->xTruncate(ff(f)->real, size);
}

static int f_sync(sqlite3_file *f, int flags)
{
    int rc = inject(ff(f), FAULTVFS_SYNC);

    return rc ? rc : ff(f)->real->pMethods->xSync(ff(f)->real, flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return ff(f)->real->pMethods->xFileSize(ff(f)->real, size);
}

static int f_lock(sqlite3_file *f, int level)
{
    int rc = inject(ff(f), FAULTVFS_LOCK);

    return rc ? rc : ff(f)->real->pMethods->xLock(ff(f)->real, level);
}

static int f_unlock(sqlite3_file *f, int level)
{
    return ff(f)->real->pMethods->xUnlock(ff(f)->real, level);
}

static int f_check(sqlite3_file *f, int *out)
{
    return ff(f)->real->pMethods->xCheckReservedLock(ff(f)->real, out);
}

static int f_control(sqlite3_file *f, int op, void *arg)
{
    return ff(f)->real->pMethods->xFileControl(ff(f)->real, op, arg);
}

static int f_sector(sqlite3_file *f)
{
    return ff(f)->real->pMethods->xSectorSize(ff(f)->real);
}

static int f_caps(sqlite3_file *f)
{
    return ff(f)->real->pMethods->xDeviceCharacteristics(ff(f)->real);
}

static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return ff(f)->real->pMethods->xShmMap(ff(f)->real, pg, pgsz, extend, pp);
}

static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return ff(f)->real->pMethods->xShmLock(ff(f)->real, off, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
    ff(f)->real->pMethods->xShmBarrier(ff(f)->real);
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
    return ff(f)->real->pMethods->xShmUnmap(ff(f)->real, del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return ff(f)->real->pMethods->xFetch(ff(f)->real, off, n, pp);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return ff(f)->real->pMethods->xUnfetch(ff(f)->real, off, p);
}

static const sqlite3_io_methods k_methods = {
    .iVersion = 3,
    .xClose = f_close,
    .xRead = f_read,
    .xWrite = f_write,
    .xTruncate = f_truncate,
    .xSync = f_sync,
    .xFileSize = f_size,
    .xLock = f_lock,
    .xUnlock = f_unlock,
    .xCheckReservedLock = f_check,
    .xFileControl = f_control,
    .xSectorSize = f_sector,
    .xDeviceCharacteristics = f_caps,
    .xShmMap = f_shm_map,
    .xShmLock = f_shm_lock,
    .xShmBarrier = f_shm_barrier,
    .xShmUnmap = f_shm_unmap,
    .xFetch = f_fetch,
    .xUnfetch = f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    fault_file *p = ff(f);
    int rc;

    (void)vfs;
    p->real = (sqlite3_file *)(p + 1);
    p->name = name;
    rc = g.real->xOpen(g.real, name, p->real, flags, out);
    /* The unix VFS supplies every method of version 3; a file it refused has none. */
    p->base.pMethods = rc == SQLITE_OK && p->real->pMethods ? &k_methods : NULL;
    return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    (void)vfs;
    return g.real->xDelete(g.real, name, sync);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return g.real->xAccess(g.real, name, flags, out);
}

static int v_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return g.real->xFullPathname(g.real, name, n, out);
}

static int v_random(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g.real->xRandomness(g.real, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return g.real->xSleep(g.real, us);
}

static int v_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return g.real->xCurrentTime(g.real, out);
}

static int v_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g.real->xGetLastError(g.real, n, out);
}

static int v_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return g.real->xCurrentTimeInt64(g.real, out);
}

static int v_set_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr p)
{
    (void)vfs;
    return g.real->xSetSystemCall(g.real, name, p);
}

static sqlite3_syscall_ptr v_get_call(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return g.real->xGetSystemCall(g.real, name);
}

static const char *v_next_call(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return g.real->xNextSystemCall(g.real, name);
}

int faultvfs_install(void)
{
    sqlite3_vfs *real;
    int rc = sqlite3_initialize();

    if (rc != SQLITE_OK)
        return rc;
    if (sqlite3_vfs_find("faultvfs"))
        return sqlite3_vfs_register(sqlite3_vfs_find("faultvfs"), 1);
    if (!(real = sqlite3_vfs_find(NULL)))
        return SQLITE_ERROR;
    g.real = real;
    g.vfs = (sqlite3_vfs){
        .iVersion = 3,
        .szOsFile = (int)sizeof(fault_file) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = "faultvfs",
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full,
        .xDlOpen = real->xDlOpen,
        .xDlError = real->xDlError,
        .xDlSym = real->xDlSym,
        .xDlClose = real->xDlClose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_error,
        .xCurrentTimeInt64 = v_time64,
        .xSetSystemCall = v_set_call,
        .xGetSystemCall = v_get_call,
        .xNextSystemCall = v_next_call,
    };
    return sqlite3_vfs_register(&g.vfs, 1);
}

void faultvfs_target(const char *prefix)
{
    char *copy = prefix ? strdup(prefix) : NULL;

    pthread_mutex_lock(&g.lock);
    free(g.prefix);
    g.prefix = copy;
    pthread_mutex_unlock(&g.lock);
}

void faultvfs_arm(unsigned mask, long nth, bool persistent, int code)
{
    pthread_mutex_lock(&g.lock);
    g.mask = mask;
    g.nth = nth;
    g.persistent = persistent;
    g.code = code;
    g.calls = 0;
    g.failures = 0;
    pthread_mutex_unlock(&g.lock);
}

void faultvfs_disarm(void)
{
    pthread_mutex_lock(&g.lock);
    g.mask = 0;
    g.nth = 0;
    pthread_mutex_unlock(&g.lock);
}

static long read_counter(const long *p)
{
    long v;

    pthread_mutex_lock(&g.lock);
    v = *p;
    pthread_mutex_unlock(&g.lock);
    return v;
}

long faultvfs_calls(void)
{
    return read_counter(&g.calls);
}

long faultvfs_failures(void)
{
    return read_counter(&g.failures);
}

void faultvfs_disk_full(bool on)
{
    pthread_mutex_lock(&g.lock);
    g.full = on;
    pthread_mutex_unlock(&g.lock);
}

const char *faultvfs_kind_name(unsigned kind)
{
    static const char *const names[] = {"read", "write", "sync", "truncate", "lock"};

    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (kind == 1u << i)
            return names[i];
    return "any";
}

/* ---- dumps ---- */

typedef struct dump_buf {
    char *p;
    size_t n, cap;
} dump_buf;

static void put(dump_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(dump_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* One value: its storage class and bytes; the masked ones by name. */
static void put_value(dump_buf *b, sqlite3_stmt *st, int i, bool mask)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p;
    char c[3];
    int n;

    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        puts_(b, "null");
        return;
    case SQLITE_BLOB:
        puts_(b, "x'");
        p = sqlite3_column_blob(st, i);
        n = sqlite3_column_bytes(st, i);
        for (int k = 0; k < n; k++) {
            c[0] = hex[p[k] >> 4], c[1] = hex[p[k] & 15], c[2] = 0;
            puts_(b, c);
        }
        puts_(b, "'");
        return;
    default:
        puts_(b, sqlite3_column_type(st, i) == SQLITE_TEXT ? "'" : "");
        if (mask)
            puts_(b, "<masked>");
        else
            put(b, (const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
        puts_(b, sqlite3_column_type(st, i) == SQLITE_TEXT ? "'" : "");
    }
}

/* Rows of one query, one line each. mask_col masks that column (-1: none);
 * mask_key masks column 1 of rows whose column 0 is that text. */
static int put_rows(dump_buf *b, sqlite3 *db, const char *sql, int mask_col, const char *mask_key)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool keyed = mask_key && sqlite3_column_text(st, 0) &&
                     !strcmp((const char *)sqlite3_column_text(st, 0), mask_key);
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            puts_(b, i ? "|" : "  ");
            put_value(b, st, i, i == mask_col || (keyed && i == 1));
        }
        puts_(b, "\n");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int dump_tables(dump_buf *b, sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", -1, &st, NULL);

    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        char *sql = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY rowid", name);
        puts_(b, "table ");
        puts_(b, name);
        puts_(b, "\n");
        rc = sql ? put_rows(b, db, sql, strcmp(name, "_verso_tombstones") ? -1 : 3,
                            strcmp(name, "_verso_meta") ? NULL : "identity")
                 : SQLITE_NOMEM;
        sqlite3_free(sql);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

char *faultvfs_dump(const char *path)
{
    dump_buf b = {0};
    sqlite3 *db = NULL;
    /* Read-write: a hot journal a failed transaction left is rolled back,
     * as the next program to open the file would. */
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = put_rows(&b, db, "PRAGMA integrity_check", -1, NULL);
    if (rc == SQLITE_OK)
        rc = put_rows(&b, db, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name",
                      -1, NULL);
    if (rc == SQLITE_OK)
        rc = dump_tables(&b, db);
    if (rc != SQLITE_OK) {
        b.n = 0;
        puts_(&b, rc == SQLITE_CANTOPEN ? "absent" : "error: ");
        if (rc != SQLITE_CANTOPEN)
            puts_(&b, sqlite3_errstr(rc));
    }
    sqlite3_close(db);
    return b.p;
}
