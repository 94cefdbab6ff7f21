/* Counting allocators that fail on demand (see faultalloc.h). */
#include "support/faultalloc.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "verso/advanced.h"

static atomic_long seen;        /* allocations since arming */
static atomic_long target;      /* the first one to fail; 0: disarmed */
static atomic_bool persistent;  /* all after target fail too */
static atomic_long failed;      /* failures injected since arming */
static atomic_long outstanding; /* live blocks */
static sqlite3_mem_methods sqlite_base;

/* Whether the allocation being made must fail. */
static bool must_fail(void)
{
    long t = atomic_load(&target);
    if (t <= 0)
        return false;
    long n = atomic_fetch_add(&seen, 1) + 1;
    if (n == t || (n > t && atomic_load(&persistent))) {
        atomic_fetch_add(&failed, 1);
        return true;
    }
    return false;
}

static void *fa_malloc(size_t n, void *user)
{
    (void)user;
    void *p = must_fail() ? NULL : malloc(n);
    if (p)
        atomic_fetch_add(&outstanding, 1);
    return p;
}

static void *fa_realloc(void *p, size_t n, void *user)
{
    (void)user;
    return must_fail() ? NULL : realloc(p, n);
}

static void fa_free(void *p, void *user)
{
    (void)user;
    atomic_fetch_sub(&outstanding, 1);
    free(p);
}

static void *sq_malloc(int n)
{
    void *p = must_fail() ? NULL : sqlite_base.xMalloc(n);
    if (p)
        atomic_fetch_add(&outstanding, 1);
    return p;
}

static void sq_free(void *p)
{
    if (p)
        atomic_fetch_sub(&outstanding, 1);
    sqlite_base.xFree(p);
}

static void *sq_realloc(void *p, int n)
{
    return must_fail() ? NULL : sqlite_base.xRealloc(p, n);
}

static int sq_size(void *p)
{
    return sqlite_base.xSize(p);
}

static int sq_roundup(int n)
{
    return sqlite_base.xRoundup(n);
}

static int sq_init(void *app)
{
    return sqlite_base.xInit(app);
}

static void sq_shutdown(void *app)
{
    sqlite_base.xShutdown(app);
}

static int install_sqlite(void)
{
    static const sqlite3_mem_methods wrap = {sq_malloc,  sq_free, sq_realloc,  sq_size,
                                             sq_roundup, sq_init, sq_shutdown, NULL};
    sqlite3_shutdown();
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_base) != SQLITE_OK)
        return -1;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &wrap) != SQLITE_OK)
        return -1;
    return sqlite3_initialize() == SQLITE_OK ? 0 : -1;
}

int faultalloc_install(void)
{
    static const verso_allocator a = {fa_malloc, fa_realloc, fa_free, NULL};
    if (verso_config_allocator(&a) != 0)
        return -1;
    return install_sqlite();
}

void faultalloc_arm(long n, faultalloc_mode mode)
{
    atomic_store(&target, 0);
    atomic_store(&seen, 0);
    atomic_store(&failed, 0);
    atomic_store(&persistent, mode == FAULTALLOC_PERSIST);
    atomic_store(&target, n);
}

long faultalloc_disarm(void)
{
    atomic_store(&target, 0);
    return atomic_load(&failed);
}

long faultalloc_count(void)
{
    return atomic_load(&seen);
}

long faultalloc_outstanding(void)
{
    return atomic_load(&outstanding);
}
