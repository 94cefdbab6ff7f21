/* scan.h - a changes message read without a JSON tree (scan.c), for the applier's fast path. */
#ifndef VERSO_SYNC_SCAN_H
#define VERSO_SYNC_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A member value as written: the applier converts it for its column. */
typedef enum verso__scan_kind {
    VERSO__SCAN_NULL,
    VERSO__SCAN_INT, /* an integer literal in the int64 range: i */
    VERSO__SCAN_NUM, /* any other number literal: p, n (followed by a delimiter) */
    VERSO__SCAN_STR, /* a string: its decoded bytes p, n (valid UTF-8, may hold U+0000) */
    VERSO__SCAN_TRUE,
    VERSO__SCAN_FALSE,
} verso__scan_kind;

typedef struct verso__scan_val {
    verso__scan_kind kind;
    const char *p;
    size_t n;
    int64_t i;
} verso__scan_val;

typedef struct verso__scan_entry {
    const char *table; /* NUL-terminated */
    int64_t id, version;
    bool deleted;
    size_t first, n;      /* its row's members: keys[first..first+n), vals[...] */
    const void *resolved; /* the reader's own: what the table name resolved to */
} verso__scan_entry;

/* One message; the arrays are kept from message to message (no allocation once warm). */
typedef struct verso__sync_scan {
    int64_t from, to, head;
    bool more;
    verso__scan_entry *e;
    size_t ne, cape;
    const char **keys; /* NUL-terminated member names */
    verso__scan_val *v;
    size_t nv, capv;
    char *arena; /* names and strings with escapes; never moves during a scan */
    size_t used, cap;
} verso__sync_scan;

/*
 * Reads text (len bytes, which must outlive the result) when it is a
 * changes message in the form the master writes: members in its order
 * (type, entries, from, to, more, head, time, optional reset), entries of
 * table, id, version and row or deleted:true, row values null, numbers,
 * strings or booleans, names without escapes, no whitespace. 1 = read
 * into *s; 0 = another form (or invalid): the general parser decides;
 * VERSO_ENOMEM. Nothing is refused here.
 */
int verso__sync_scan_changes(verso__sync_scan *s, const char *text, size_t len);
void verso__sync_scan_free(verso__sync_scan *s);

#endif
