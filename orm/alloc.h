/*
 * alloc.h - verso's own allocations (orm/, rest/, sync/; not installed).
 *
 * Every allocation of the library goes through these calls, backed by the
 * allocator set with verso_config_allocator() (libc's by default). Memory
 * they return is released with verso__free() (or verso_free() by a caller);
 * memory from libc (realpath), SQLite or libwebsockets goes back to its own
 * deallocator. A zero size asks for one byte, so NULL always means failure.
 * The first call locks the allocator: verso_config_allocator() then answers
 * VERSO_ESTATE. tests/check_alloc.cmake keeps the direct libc calls out.
 */
#ifndef VERSO_ORM_ALLOC_H
#define VERSO_ORM_ALLOC_H

#include <stddef.h>

void *verso__malloc(size_t n);
/* Zeroed n * size bytes; NULL on overflow too. */
void *verso__calloc(size_t n, size_t size);
/* On failure p is left as it was. */
void *verso__realloc(void *p, size_t n);
void verso__free(void *p);
char *verso__strdup(const char *s);
/* At most n bytes of s, NUL-terminated. */
char *verso__strndup(const char *s, size_t n);

/* How many allocations of the calling thread have failed so far (cJSON's
 * too once verso_config_allocator() installed its hooks): a caller compares
 * it around a call that cannot tell running out of memory from bad input. */
unsigned verso__nomem_count(void);

#endif
