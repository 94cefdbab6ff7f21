/* The process-wide allocator behind verso__malloc & co. and cJSON's hooks. */
#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orm/alloc.h"
#include "verso/advanced.h"

static void *libc_malloc(size_t n, void *user)
{
    (void)user;
    return malloc(n);
}

static void *libc_realloc(void *p, size_t n, void *user)
{
    (void)user;
    return realloc(p, n);
}

static void libc_free(void *p, void *user)
{
    (void)user;
    free(p);
}

static verso_allocator current = {libc_malloc, libc_realloc, libc_free, NULL};
/* Set by the first allocation: from then on the allocator may not change. */
static atomic_bool locked;

/* Failed allocations of this thread (see verso__nomem_count). */
static _Thread_local unsigned nomem;

static void *counted(void *p)
{
    if (!p)
        nomem++;
    return p;
}

unsigned verso__nomem_count(void)
{
    return nomem;
}

static void lock(void)
{
    if (!atomic_load_explicit(&locked, memory_order_relaxed))
        atomic_store_explicit(&locked, true, memory_order_relaxed);
}

void *verso__malloc(size_t n)
{
    lock();
    return counted(current.malloc_fn(n ? n : 1, current.user));
}

void *verso__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return counted(NULL);
    void *p = verso__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *verso__realloc(void *p, size_t n)
{
    lock();
    if (!p)
        return counted(current.malloc_fn(n ? n : 1, current.user));
    return counted(current.realloc_fn(p, n ? n : 1, current.user));
}

void verso__free(void *p)
{
    if (p)
        current.free_fn(p, current.user);
}

char *verso__strdup(const char *s)
{
    return verso__strndup(s, strlen(s));
}

char *verso__strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = verso__malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

int verso_config_allocator(const verso_allocator *a)
{
    if (a && (!a->malloc_fn || !a->realloc_fn || !a->free_fn))
        return VERSO_EINVAL;
    if (atomic_load(&locked))
        return VERSO_ESTATE;
    static const verso_allocator libc = {libc_malloc, libc_realloc, libc_free, NULL};
    current = a ? *a : libc;
    cJSON_Hooks hooks = {verso__malloc, verso__free};
    cJSON_InitHooks(a ? &hooks : NULL);
    return 0;
}
