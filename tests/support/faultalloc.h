/*
 * faultalloc.h - allocation failure injection for the tests, in the manner
 * of SQLite's malloc tests (test/malloc_common.tcl).
 *
 * faultalloc_install() routes verso's allocator (and so cJSON's) and
 * SQLite's through counting wrappers; call it first in main(), before any
 * verso or SQLite call. Once armed, the Nth allocation from then on (any of
 * the three, any thread; realloc counts) fails: only that one (ONESHOT) or
 * that one and all after it (PERSIST), until faultalloc_disarm().
 */
#ifndef VERSO_TESTS_FAULTALLOC_H
#define VERSO_TESTS_FAULTALLOC_H

#include <stdbool.h>

typedef enum faultalloc_mode { FAULTALLOC_ONESHOT, FAULTALLOC_PERSIST } faultalloc_mode;

/* 0, or -1 when verso's or SQLite's allocator could not be set. */
int faultalloc_install(void);
/* Fails the nth allocation (n >= 1) counted from now. */
void faultalloc_arm(long n, faultalloc_mode mode);
/* Stops failing; returns how many allocations failed while armed. */
long faultalloc_disarm(void);
/* Allocations seen since the last faultalloc_arm(). */
long faultalloc_count(void);
/* Allocations made and not freed yet (verso, cJSON and SQLite together). */
long faultalloc_outstanding(void);

#endif
